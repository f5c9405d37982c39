/*
 * fixed.c - the fixed buffer: exhaustion (NULL + ENOMEM, nothing
 * damaged), last-block free and resize, reset, alignment by placement,
 * empty buffers.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

/* native_align() of allocators that place blocks themselves */
#define ANY_ALIGN ((size_t)1 << (sizeof(size_t) * 8 - 1))

static int
inside(const void *p, size_t len, const unsigned char *buf, size_t size)
{
	const unsigned char *q = p;

	return q >= buf && q + len <= buf + size;
}

static void
exhaustion(void)
{
	alignas(16) unsigned char buf[256];
	beamalloc_fixed fb;
	beamalloc_allocator a;
	unsigned char *p, *first = NULL, *last = NULL;
	size_t n = 0, outside = 0;

	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	a = beamalloc_fixed_allocator(&fb);
	errno = 0;
	while ((p = beamalloc_alloc(a, 32)) != NULL) {
		if (!inside(p, 32, buf, sizeof(buf)))
			outside++;
		if (first == NULL)
			first = p;
		memset(p, (int)n, 32);
		last = p;
		n++;
	}
	ok(errno == ENOMEM, "full: NULL + ENOMEM");
	is_size(n, 8, "a 256-byte buffer holds eight 32-byte blocks");
	ok(first == buf && outside == 0, "all of them inside the buffer");
	ok(last == buf + 224 && last[0] == 7 && last[31] == 7 && buf[0] == 0,
	    "the failed allocation damaged nothing");
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 1, 1) == NULL && errno == ENOMEM,
	    "not even one byte fits");
	ok(beamalloc_alloc(a, 0) != NULL, "a zero-length block still does");

	beamalloc_free(a, last, 32);
	is_ptr(beamalloc_alloc(a, 32), last,
	    "freeing the last block gives its bytes back");
	beamalloc_free(a, buf, 32);
	ok(beamalloc_alloc(a, 8) == NULL,
	    "freeing another block is a no-op: still full");

	beamalloc_fixed_reset(&fb);
	is_ptr(beamalloc_alloc(a, sizeof(buf)), buf,
	    "after reset the whole buffer fits, exactly");
	ok(beamalloc_alloc(a, 1) == NULL, "and then nothing more");
}

static void
resizing(void)
{
	alignas(16) unsigned char buf[1024];
	beamalloc_fixed fb;
	beamalloc_allocator a;
	unsigned char *p, *q, *r;

	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	a = beamalloc_fixed_allocator(&fb);
	p = beamalloc_alloc(a, 16);
	ok(beamalloc_resize(a, p, 16, 8, 64), "the last block grows in place");
	q = beamalloc_alloc(a, 8);
	is_ptr(q, p + 64, "the next block follows the grown one");
	ok(!beamalloc_resize(a, p, 64, 8, 128), "another block cannot grow");
	ok(beamalloc_resize(a, p, 64, 8, 32), "but it can shrink");
	is_ptr(beamalloc_remap(a, q, 8, 8, 1024 - 64), q,
	    "remap grows the last block up to the end of the buffer");
	memset(q, 0x33, 1024 - 64);
	errno = 0;
	ok(beamalloc_remap(a, q, 1024 - 64, 8, 1024 - 63) == NULL &&
	    errno == ENOMEM, "one byte more: NULL + ENOMEM");
	r = beamalloc_realloc(a, q, 1024 - 64, 8, 2000);
	ok(r == NULL && q[0] == 0x33 && q[1024 - 65] == 0x33,
	    "a realloc that cannot fit keeps the old block intact");
	ok(beamalloc_resize(a, q, 1024 - 64, 8, 100) &&
	    (r = beamalloc_alloc(a, 8)) == q + 104,
	    "shrinking the last block gives the tail back");
	memset(p, 0x44, 32);
	r = beamalloc_realloc(a, p, 32, 8, 48);
	ok(r != NULL && r != p && r[0] == 0x44 && r[31] == 0x44,
	    "realloc of another block moves it, contents kept");
}

static void
alignment(void)
{
	static alignas(4096) unsigned char buf[16384];
	beamalloc_fixed fb;
	beamalloc_allocator a;
	size_t bad = 0;

	beamalloc_fixed_init(&fb, buf + 1, sizeof(buf) - 1);
	a = beamalloc_fixed_allocator(&fb);
	for (int s = 0; s <= 12; s++) {
		size_t align = (size_t)1 << s;
		void *p = beamalloc_alloc_aligned(a, 3, align);

		if (p == NULL || !is_aligned(p, align) ||
		    !inside(p, 3, buf, sizeof(buf)))
			bad++;
	}
	is_size(bad, 0, "alignments 1..4096 from an odd start, all inside");
	is_size(beamalloc_native_align(a), ANY_ALIGN,
	    "native_align(fixed): any alignment, by placement");

	beamalloc_fixed_init(&fb, buf + 1, 100);
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 1, 128) == NULL && errno == ENOMEM,
	    "no 128-aligned byte in the buffer: ENOMEM");
	ok(beamalloc_alloc_aligned(a, 99, 1) == buf + 1,
	    "the failed aligned request used nothing");
}

static void
empty(void)
{
	beamalloc_fixed fb;
	beamalloc_allocator a;
	unsigned char one[1];

	beamalloc_fixed_init(&fb, NULL, 0);
	a = beamalloc_fixed_allocator(&fb);
	errno = 0;
	ok(beamalloc_alloc(a, 1) == NULL && errno == ENOMEM,
	    "NULL buffer: every allocation fails with ENOMEM");
	beamalloc_fixed_reset(&fb);
	ok(beamalloc_alloc(a, 0) != NULL, "a zero-length one still works");

	beamalloc_fixed_init(&fb, one, 0);
	ok(beamalloc_alloc(a, 1) == NULL, "zero-length buffer: full");
	beamalloc_fixed_init(&fb, one, 1);
	is_ptr(beamalloc_alloc_aligned(a, 1, 1), one,
	    "one-byte buffer: one byte");
}

/* A free or resize of the last block with a wrong length near SIZE_MAX
 * is a no-op, as any wrong length is; bump.h added it to the block's
 * address first (clang's UBSan: "addition of unsigned offset ...
 * overflowed"), and a resize of NULL added 16 to NULL ("applying
 * non-zero offset 16 to null pointer"). */
static void
wrong_lengths(void)
{
	static unsigned char buf[256];
	beamalloc_fixed fb;
	beamalloc_allocator a;
	unsigned char *p, *q;

	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	a = beamalloc_fixed_allocator(&fb);
	ok(!beamalloc_resize(a, NULL, 16, 8, 32),
	    "resize of NULL with no block given out: false");
	p = beamalloc_alloc(a, 16);
	beamalloc_free(a, p, SIZE_MAX - 8);
	beamalloc_free(a, p, (size_t)PTRDIFF_MAX + 1);
	ok(beamalloc_resize(a, p, SIZE_MAX - 8, 8, 16 + 240),
	    "resize with a length near SIZE_MAX: a shrink of a block that "
	    "is not the last, kept as it is");
	q = beamalloc_alloc(a, 16);
	ok(p != NULL && q == p + 16,
	    "frees with lengths near SIZE_MAX: no-ops, the block stays");
	beamalloc_free(a, q, 16);
	beamalloc_free(a, p, 16);
}

int
main(void)
{
	wrong_lengths();
	exhaustion();
	resizing();
	alignment();
	empty();
	return done_testing();
}
