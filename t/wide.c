/*
 * wide.c - the wide alignment allocator on every backing: the BEAM base
 * (malloc fallback), libc, and the strict test allocator (8 only, checked
 * frees, moving remaps).
 */
#include <errno.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

#define MAX_SHIFT 20	/* alignments 1 .. 1 MiB */

/* Every alignment from 1 to 1 MiB: alloc, fill, resize, remap, free. */
static void
every_alignment(beamalloc_allocator w, const char *name)
{
	size_t bad_align = 0, bad_data = 0, bad_remap = 0;

	for (int s = 0; s <= MAX_SHIFT; s++) {
		size_t align = (size_t)1 << s, len = 100 + (size_t)s * 7;
		unsigned char *p = beamalloc_alloc_aligned(w, len, align);

		if (p == NULL || !is_aligned(p, align)) {
			bad_align++;
			continue;
		}
		ta_fill(p, len, (unsigned)s);
		if (beamalloc_resize(w, p, len, align, len / 2))
			len /= 2;
		if (!ta_intact(p, len, (unsigned)s))
			bad_data++;
		p = beamalloc_realloc(w, p, len, align, len * 40);
		if (p == NULL || !is_aligned(p, align) ||
		    !ta_intact(p, len, (unsigned)s))
			bad_remap++;
		if (p != NULL)
			beamalloc_free_aligned(w, p, len * 40, align);
	}
	is_size(bad_align, 0, "%s: alignments 1..1MiB all honoured", name);
	is_size(bad_data, 0, "%s: contents kept across resize", name);
	is_size(bad_remap, 0, "%s: realloc keeps alignment and contents",
	    name);
}

static void
on_strict(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_allocator w = beamalloc_wide_on(&b);
	unsigned char *p;
	size_t align;

	every_alignment(w, "strict");
	is_size(t->nblocks, 0, "strict: nothing left in the backing");
	is_size(t->bad_calls, 0,
	    "strict: every free/resize named the backing's exact block");

	/* pass-through: alignment <= 8 costs no header and no waste */
	p = beamalloc_alloc_aligned(w, 40, 8);
	ok(t->nblocks == 1 && t->blocks[0].p == p && t->blocks[0].len == 40,
	    "strict: alignment 8 passes straight through, no header");
	beamalloc_free_aligned(w, p, 40, 8);

	/* over-aligned: the backing block is len + align, one word at most
	 * beyond len + align - 1 */
	for (align = 16; align <= 65536; align *= 4) {
		p = beamalloc_alloc_aligned(w, 1000, align);
		if (!ok(t->nblocks == 1 && t->blocks[0].len == 1000 + align,
		    "strict: align %zu takes len + align from the backing",
		    align))
			diag("  backing len %zu", t->blocks[0].len);
		beamalloc_free_aligned(w, p, 1000, align);
	}

	/* remap through a backing that moves blocks to other residues */
	t->move_on_remap = 1;
	for (align = 16; align <= 4096; align *= 2) {
		size_t moved_ok = 0;

		for (int k = 0; k < 4; k++) {
			p = beamalloc_alloc_aligned(w, 300, align);
			ta_fill(p, 300, 9);
			p = beamalloc_remap(w, p, 300, align, 700);
			if (p && is_aligned(p, align) && ta_intact(p, 300, 9))
				moved_ok++;
			if (p)
				beamalloc_free_aligned(w, p, 700, align);
		}
		is_size(moved_ok, 4, "strict: moving remap at %zu keeps "
		    "alignment, header and contents", align);
	}
	is_size(t->nblocks, 0, "strict: nothing leaked after remaps");
	is_size(t->bad_calls, 0, "strict: remaps freed exact blocks");

	/* bad input */
	errno = 0;
	ok(beamalloc_alloc_aligned(w, 10, 48) == NULL && errno == EINVAL,
	    "strict: alignment 48 -> EINVAL");
	errno = 0;
	ok(beamalloc_alloc_aligned(w, PTRDIFF_MAX - 100, 4096) == NULL &&
	    errno == ENOMEM, "strict: len + align overflow -> ENOMEM");
	errno = 0;
	ok(beamalloc_alloc_aligned(w, (size_t)PTRDIFF_MAX, (size_t)1 << 62)
	    == NULL && errno == ENOMEM,
	    "strict: len + align past SIZE_MAX -> ENOMEM");
	is_size(t->nblocks, 0, "strict: failed allocations leaked nothing");
	free(t);
}

int
main(void)
{
	beamalloc_allocator libc = beamalloc_libc();
	unsigned char *p;

	every_alignment(beamalloc_wide(), "wide(beam)");
	every_alignment(beamalloc_wide_on(&libc), "wide_on(libc)");
	on_strict();

	p = beamalloc_alloc_aligned(beamalloc_wide(), 3, 4096);
	ok(p != NULL && ((uintptr_t)p % 4096) == 0,
	    "allocate_large_aligned(3) is 0 mod 4096");
	beamalloc_free_aligned(beamalloc_wide(), p, 3, 4096);
	ok(beamalloc_native_align(beamalloc_wide()) >= ((size_t)1 << 20),
	    "wide reports any alignment as native");
	return done_testing();
}
