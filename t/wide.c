/*
 * wide.c - the wide alignment allocator on every backing: the BEAM base
 * (malloc fallback), libc, and the strict test allocator (8 only, checked
 * frees, moving remaps).
 */
#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
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

/* ------------------------------------------------------------------------
 * Bad frees, resizes and remaps: reported through the default handler
 * and ignored (issue 13)
 * ---------------------------------------------------------------------- */

static size_t nseen;
static beamalloc_report seen;

static void
record(void *user, const beamalloc_report *r)
{
	(void)user;
	nseen++;
	seen = *r;
}

/* Exactly one report since the last call, of this kind, about mem. */
static int
reported(beamalloc_report_kind kind, const void *mem)
{
	int got = nseen == 1 && seen.kind == kind && seen.addr == mem;

	nseen = 0;
	return got;
}

#define FAILS_WITH(expr, err) (errno = 0, !(expr) && errno == (err))

static void
bad_calls(beamalloc_allocator w, const char *name)
{
	static alignas(4096) unsigned char foreign[8192];
	unsigned char *p = beamalloc_alloc_aligned(w, 100, 64), *q;
	int got;

	if (p == NULL)
		bail("%s: alloc 100 at 64 failed", name);
	ta_fill(p, 100, 5);
	nseen = 0;

	/* The scenario: align 8 passes through with the inner
	 * pointer, and the backing's free() died on it. */
	beamalloc_free(w, p, 100);
	got = reported(BEAMALLOC_REPORT_ALIGN_MISMATCH, p) &&
	    seen.size == 100 && seen.align == 64 && seen.given_size == 100 &&
	    seen.given_align == 8 && seen.ret_addr != 0;
	ok(got && ta_intact(p, 100, 5), "%s: allocated at 64, freed at 8: "
	    "\"alignment mismatch\" (100 bytes, align 64, given 100, 8), "
	    "ignored", name);
	beamalloc_free_aligned(w, p, 100, 128);
	got = reported(BEAMALLOC_REPORT_ALIGN_MISMATCH, p);
	beamalloc_free_aligned(w, p, 200, 64);
	got = got && reported(BEAMALLOC_REPORT_SIZE_MISMATCH, p) &&
	    seen.size == 100 && seen.given_size == 200;
	ok(got && ta_intact(p, 100, 5), "%s: freed at 128, or with 200 "
	    "bytes: alignment and size mismatch, ignored", name);

	beamalloc_free_aligned(w, foreign + 64, 100, 64);
	got = reported(BEAMALLOC_REPORT_INVALID_FREE, foreign + 64);
	beamalloc_free_aligned(w, foreign + 4096, 100, 4096);
	got = got && reported(BEAMALLOC_REPORT_INVALID_FREE, foreign + 4096);
	ok(got, "%s: pointers never given out, at 64 and at a page start: "
	    "\"invalid free\", nothing read or freed", name);

	ok(FAILS_WITH(beamalloc_resize(w, p, 100, 8, 50), EINVAL) &&
	    reported(BEAMALLOC_REPORT_ALIGN_MISMATCH, p) &&
	    FAILS_WITH(beamalloc_resize(w, p, 90, 64, 50), EINVAL) &&
	    reported(BEAMALLOC_REPORT_SIZE_MISMATCH, p) &&
	    FAILS_WITH(beamalloc_remap(w, p, 100, 8, 300), EINVAL) &&
	    reported(BEAMALLOC_REPORT_ALIGN_MISMATCH, p) &&
	    FAILS_WITH(beamalloc_remap(w, foreign + 64, 100, 64, 300),
	    EINVAL) && reported(BEAMALLOC_REPORT_INVALID_FREE, foreign + 64)
	    && ta_intact(p, 100, 5), "%s: resize and remap of a misnamed "
	    "block: one report each, false/NULL + EINVAL, block intact",
	    name);

	/* A plain "cannot": no report, and never EINVAL (the front end
	 * reads EINVAL as "refused, do nothing more"). */
	errno = EINVAL;
	got = !beamalloc_resize(w, p, 100, 64, (size_t)1 << 40) &&
	    errno != EINVAL && nseen == 0;
	errno = EINVAL;
	q = beamalloc_remap(w, p, 100, 64, (size_t)1 << 40);
	ok(got && q == NULL && errno != EINVAL && nseen == 0,
	    "%s: a resize or remap that cannot be done: no report, errno "
	    "not EINVAL", name);

	q = beamalloc_realloc(w, p, 100, 64, 5000);
	ok(q != NULL && is_aligned(q, 64) && ta_intact(q, 100, 5) &&
	    nseen == 0, "%s: the block is still good: realloc to 5000 "
	    "keeps it, no report", name);
	beamalloc_free_aligned(w, q, 5000, 64);
	ok(nseen == 0, "%s: and it frees cleanly", name);
	beamalloc_free_aligned(w, q, 5000, 64);
	ok(reported(BEAMALLOC_REPORT_INVALID_FREE, q),
	    "%s: a second free of it: \"invalid free\", ignored", name);
}

/* Blocks of one wide allocator named to another, over another backing. */
static void
cross_allocators(beamalloc_allocator w1, beamalloc_allocator w2)
{
	unsigned char *p = beamalloc_alloc_aligned(w1, 100, 256);

	nseen = 0;
	beamalloc_free_aligned(w2, p, 100, 256);
	ok(reported(BEAMALLOC_REPORT_INVALID_FREE, p),
	    "a block freed through a wide allocator over another backing: "
	    "\"invalid free\", ignored");
	beamalloc_free_aligned(w1, p, 100, 256);
	ok(nseen == 0, "freed through its own, cleanly");
}

/* With no handler: the report is printed to stderr; abort_on_error makes
 * the call abort after it.  In a child, whose stderr is a pipe. */
static int
free_misaligned(void *unused)
{
	beamalloc_allocator w = beamalloc_wide();
	void *p;

	(void)unused;
	beamalloc_report_set_default(NULL, NULL, true);
	p = beamalloc_alloc_aligned(w, 100, 64);
	beamalloc_free(w, p, 100);
	return 0;
}

static void
default_handler_aborts(void)
{
	char out[1024], how[32];
	int st = child_run(free_misaligned, NULL, 0, out, sizeof(out));

	if (!ok(child_killed(st, SIGABRT),
	    "abort_on_error: the bad free aborts after its report"))
		diag("  child: %s", child_how(st, how));
	if (!ok(strstr(out, "beamalloc: alignment mismatch: 100 bytes at") !=
	    NULL && strstr(out, "(align 64), but the call gave 100 bytes, "
	    "align 8") != NULL, "handler NULL: the GPA's text on stderr"))
		diag("  got: %s", out);
}

static void
misuse(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator strict = testalloc_allocator(t);
	beamalloc_allocator libc = beamalloc_libc();

	beamalloc_report_set_default(record, NULL, false);
	bad_calls(beamalloc_wide(), "wide(beam)");
	bad_calls(beamalloc_wide_on(&libc), "wide_on(libc)");
	bad_calls(beamalloc_wide_on(&strict), "wide_on(strict)");
	ok(t->nblocks == 0 && t->bad_calls == 0, "strict: no bad call ever "
	    "reached the backing, nothing left in it");
	cross_allocators(beamalloc_wide_on(&libc), beamalloc_wide_on(&strict));
	beamalloc_report_set_default(NULL, NULL, false);
	default_handler_aborts();
	free(t);
}

/* A remap whose backing frees the old block before the registry hears
 * of the move, while the address goes to another block: the backing
 * below moves every remapped block, and as it does (the old block freed,
 * the remap not yet back) allocates another over-aligned block, which
 * the backing places where the old one was, as a malloc may hand a
 * freed block to another thread.  That block's entry once went with the
 * old one's (found by a review): its correct free was called invalid. */
static beamalloc_allocator race_wide;
static unsigned char *race_old, *race_other;
static size_t race_other_base;

static void *
race_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	(void)ctx, (void)ra;
	/* The block just freed, if it fits: at once, as a free list would. */
	if (race_old != NULL && len <= race_other_base) {
		p = race_old;
		race_old = NULL;
		return p;
	}
	return aligned_alloc(align < 16 ? 16 : align, (len + 15) & ~(size_t)15);
}

static bool
race_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static void *
race_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	unsigned char *n = aligned_alloc(16, (new_len + 15) & ~(size_t)15);

	(void)ctx, (void)align, (void)ra;
	if (n == NULL)
		return NULL;
	memcpy(n, mem, len < new_len ? len : new_len);
	/* "Freed": kept for the next allocation, which comes now. */
	race_old = mem;
	race_other_base = len;
	race_other = beamalloc_alloc_aligned(race_wide, 200, 64);
	return n;
}

static void
race_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	free(mem);
}

static const beamalloc_vtable race_vtable = { race_alloc, race_resize,
	race_remap, race_free };

static void
remap_race(void)
{
	static beamalloc_allocator back = { NULL, &race_vtable };
	unsigned char *p, *q;

	race_wide = beamalloc_wide_on(&back);
	beamalloc_report_set_default(record, NULL, false);
	nseen = 0;
	p = beamalloc_alloc_aligned(race_wide, 1000, 64);
	q = p != NULL ? beamalloc_remap(race_wide, p, 1000, 64, 5000) : NULL;
	ok(q != NULL && q != p && race_other == p,
	    "remap moved the block, and its old address went to another one");
	beamalloc_free_aligned(race_wide, race_other, 200, 64);
	ok(nseen == 0, "that block's free is taken, not reported (%zu)",
	    nseen);
	beamalloc_free_aligned(race_wide, q, 5000, 64);
	ok(nseen == 0, "and the moved one's");
	beamalloc_report_set_default(NULL, NULL, false);
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
	misuse();
	remap_race();
	return done_testing();
}
