/*
 * kit_misc.c - the arena's reset modes (Zig's ResetMode) against the
 * strict counting backing, and zeroed allocation in the front-end.
 */
#include <errno.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

#define FIRST_CHUNK 4096	/* documented in beamalloc_arena(3) */

/* Grow the arena to several chunks; the capacity reached. */
static size_t
grow(beamalloc_allocator a, beamalloc_arena *arena)
{
	for (int i = 0; i < 100; i++) {
		unsigned char *p = beamalloc_alloc(a, 1000);

		if (p == NULL)
			bail("arena alloc failed");
		memset(p, 0xff, 1000);
	}
	return beamalloc_arena_capacity(arena);
}

static void
reset_modes(void)
{
	testalloc *t = testalloc_new();
	beamalloc_arena *arena = beamalloc_arena_create(testalloc_allocator(t));
	beamalloc_allocator a;
	size_t cap, kept, chunks;
	unsigned char *first, *p;

	if (arena == NULL)
		bail("arena_create");
	a = beamalloc_arena_allocator(arena);
	first = beamalloc_alloc(a, 8);
	cap = grow(a, arena);
	chunks = t->nblocks;
	ok(chunks > 3, "grown to %zu chunks, %zu bytes", chunks, cap);
	is_size(beamalloc_arena_reset_with(arena,
	    BEAMALLOC_ARENA_RETAIN_CAPACITY, 0), cap,
	    "retain_capacity: returns the capacity, all of it kept");
	ok(t->nblocks == chunks && beamalloc_alloc(a, 8) == first,
	    "no chunk given back, blocks start over");
	grow(a, arena);
	kept = beamalloc_arena_reset_with(arena,
	    BEAMALLOC_ARENA_RETAIN_WITH_LIMIT, cap / 2);
	ok(kept <= cap / 2 && kept >= FIRST_CHUNK && kept < cap,
	    "retain_with_limit %zu: keeps %zu bytes", cap / 2, kept);
	ok(t->live_bytes == kept && beamalloc_arena_capacity(arena) == kept &&
	    t->bad_calls == 0, "the backing holds exactly that, and got "
	    "exact frees");
	is_ptr(beamalloc_alloc(a, 8), first, "blocks start over");
	ok(grow(a, arena) >= 100 * 1000, "the arena grows again");
	is_size(beamalloc_arena_reset_with(arena,
	    BEAMALLOC_ARENA_RETAIN_WITH_LIMIT, 1), FIRST_CHUNK,
	    "a limit below the first chunk keeps the first chunk only");
	grow(a, arena);
	is_size(beamalloc_arena_reset_with(arena, BEAMALLOC_ARENA_FREE_ALL,
	    12345), FIRST_CHUNK, "free_all: only the first chunk (the arena's "
	    "own) is left, whatever the limit");
	ok(t->nblocks == 1 && t->live_bytes == FIRST_CHUNK,
	    "the backing holds one block of 4096");
	p = beamalloc_alloc(a, 3000);
	ok(p == first, "blocks start over");
	beamalloc_alloc(a, 3000);
	errno = 0;
	is_size(beamalloc_arena_reset_with(arena,
	    (beamalloc_arena_reset_mode)99, 0), beamalloc_arena_capacity(arena),
	    "an unknown mode keeps the capacity");
	ok(errno == EINVAL && beamalloc_alloc(a, 8) == first,
	    "sets EINVAL, and still frees every block");
	beamalloc_arena_reset(arena);
	is_ptr(beamalloc_alloc(a, 8), first, "beamalloc_arena_reset as before");
	is_size(beamalloc_arena_reset_with(NULL, BEAMALLOC_ARENA_FREE_ALL, 0),
	    0, "NULL arena: 0, nothing done");
	beamalloc_arena_destroy(arena);
	ok(t->nblocks == 0 && t->bad_calls == 0, "destroy: all back, exactly");
	free(t);
}

static void
zeroed(void)
{
	beamalloc_arena *arena = beamalloc_arena_create(beamalloc_libc());
	beamalloc_allocator a = beamalloc_arena_allocator(arena);
	unsigned char *p, *q;
	size_t nonzero = 0;

	p = beamalloc_alloc(a, 4000);
	memset(p, 0xa5, 4000);
	beamalloc_arena_reset(arena);
	q = beamalloc_alloc_zeroed(a, 500, 8, 8);
	for (size_t i = 0; i < 4000; i++)
		nonzero += q[i] != 0;
	ok(q == p && nonzero == 0,
	    "500 x 8 over dirty arena bytes: all 4000 zero");
	errno = 0;
	ok(beamalloc_alloc_zeroed(a, SIZE_MAX / 2 + 2, 2, 8) == NULL &&
	    errno == ENOMEM, "n*size overflowing: NULL + ENOMEM");
	errno = 0;
	ok(beamalloc_alloc_zeroed(a, 1, 8, 12) == NULL && errno == EINVAL,
	    "alignment 12: NULL + EINVAL");
	ok(beamalloc_alloc_zeroed(a, 0, 8, 8) != NULL &&
	    beamalloc_alloc_zeroed(a, 8, 0, 8) != NULL,
	    "0 items, or items of 0 bytes: a zero-length pointer");
	errno = 0;
	ok(beamalloc_alloc_zeroed(a, (size_t)1 << 62, 1, 8) == NULL &&
	    errno == ENOMEM, "2^62 bytes: NULL + ENOMEM");
	q = beamalloc_alloc_zeroed(beamalloc_wide(), 3, 1000, 64);
	ok(q != NULL && is_aligned(q, 64) && q[0] == 0 && q[2999] == 0,
	    "3 x 1000 at 64 over wide: aligned, zero");
	beamalloc_free_aligned(beamalloc_wide(), q, 3000, 64);
	beamalloc_arena_destroy(arena);
}

int
main(void)
{
	reset_modes();
	zeroed();
	return done_testing();
}
