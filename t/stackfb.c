/*
 * stackfb.c - the stack fallback: the buffer first, the backing after;
 * every free, resize and remap reaches the owner of its block (the strict
 * backing checks each one it sees); realloc moves out of the buffer.
 * The buffers are static: a stack buffer freed by a tail call to free()
 * kept valgrind seeing its bytes as inaccessible in free's frame.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

static int
inside(const void *p, const unsigned char *buf, size_t size)
{
	const unsigned char *q = p;

	return q >= buf && q < buf + size;
}

static void
owners(void)
{
	static alignas(16) unsigned char buf[256];
	testalloc *t = testalloc_new();
	beamalloc_allocator back = testalloc_allocator(t), a;
	beamalloc_stackfb s;
	unsigned char *x, *y, *z;

	beamalloc_stackfb_init(&s, buf, sizeof(buf), back);
	a = beamalloc_stackfb_allocator(&s);
	x = beamalloc_alloc(a, 100);
	ok(inside(x, buf, sizeof(buf)) && t->allocs == 0,
	    "100 bytes come from the buffer");
	y = beamalloc_alloc(a, 200);
	ok(y != NULL && !inside(y, buf, sizeof(buf)) && t->nblocks == 1,
	    "200 more do not fit: the backing gives them");
	z = beamalloc_alloc(a, 100);
	ok(inside(z, buf, sizeof(buf)), "100 more fit in the buffer again");
	ta_fill(z, 100, 1);
	ok(beamalloc_resize(a, z, 100, 8, 150), "the buffer's last block "
	    "grows in place");
	ok(!beamalloc_resize(a, z, 150, 8, 300), "not past the buffer");
	ta_fill(y, 200, 2);
	ok(beamalloc_resize(a, y, 200, 8, 100) && t->resizes == 1,
	    "a backing block's resize goes to the backing");
	z = beamalloc_realloc(a, z, 150, 8, 1000);
	ok(z != NULL && !inside(z, buf, sizeof(buf)) && ta_intact(z, 100, 1),
	    "realloc beyond the buffer moves to the backing, bytes kept");
	is_size(t->nblocks, 2, "the backing holds 2 blocks");
	beamalloc_free(a, z, 1000);
	beamalloc_free(a, y, 100);
	beamalloc_free(a, x, 100);
	ok(t->nblocks == 0 && t->bad_calls == 0,
	    "frees reach the backing for its blocks only, exactly");
	x = beamalloc_alloc(a, 64);
	ok(inside(x, buf, sizeof(buf)), "the buffer serves again");
	beamalloc_free(a, x, 64);
	beamalloc_free(a, x, 64);
	ok(t->frees == 2 && t->bad_calls == 0,
	    "a double free of a buffer block never reaches the backing");
	free(t);
}

static void
careless(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator back = testalloc_allocator(t), wide, a;
	beamalloc_stackfb s;
	static unsigned char buf[64];
	unsigned char *x;

	beamalloc_stackfb_init(&s, NULL, 0, back);
	a = beamalloc_stackfb_allocator(&s);
	x = beamalloc_alloc(a, 8);
	ok(x != NULL && t->nblocks == 1, "no buffer: the backing serves all");
	beamalloc_free(a, x, 8);
	is_size(t->nblocks, 0, "and gets the free");
	ok(beamalloc_alloc(a, 0) != NULL && t->allocs == 1,
	    "length 0: a pointer, no call");
	errno = 0;
	ok(beamalloc_alloc(a, (size_t)1 << 62) == NULL && errno == ENOMEM,
	    "2^62 bytes: NULL + ENOMEM");
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 8, 3) == NULL && errno == EINVAL,
	    "alignment 3: NULL + EINVAL");
	is_size(beamalloc_native_align(a), BEAMALLOC_MIN_ALIGN,
	    "native alignment: the backing's");
	beamalloc_free(a, NULL, 8);

	/* Over wide: alignments the buffer cannot place go to the backing. */
	wide = beamalloc_wide_on(&back);
	beamalloc_stackfb_init(&s, buf, sizeof(buf), wide);
	a = beamalloc_stackfb_allocator(&s);
	x = beamalloc_alloc_aligned(a, 32, 4096);
	ok(x != NULL && is_aligned(x, 4096) && !inside(x, buf, sizeof(buf)),
	    "32 bytes at 4096 from the backing");
	beamalloc_free_aligned(a, x, 32, 4096);
	ok(t->nblocks == 0 && t->bad_calls == 0, "freed there, exactly");
	free(t);
}

int
main(void)
{
	owners();
	careless();
	return done_testing();
}
