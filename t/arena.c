/*
 * arena.c - the arena: the seed's with_arena and arena_sum as C, chunk
 * accounting against the strict counting backing (t/testalloc.h: 8-byte
 * blocks only, every free checked), alignment across chunk boundaries,
 * last-block free/resize, reset, backing failures, composition.
 * The seed's functions are in t/seed.h.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "seed.h"
#include "testalloc.h"

/* native_align() of allocators that place blocks themselves */
#define ANY_ALIGN ((size_t)1 << (sizeof(size_t) * 8 - 1))

#define NBLOCKS 3000

static unsigned char *blocks[NBLOCKS];
static size_t lens[NBLOCKS];

/* ------------------------------------------------------------------------
 * The seed, in C
 * ---------------------------------------------------------------------- */

static void
seed(void)
{
	static const long list[] = { 1, 2, 3 };
	struct seed_sum sum = { list, 3, 0, 99 };
	testalloc *t = testalloc_new();
	uint16_t out[4] = { 9, 9, 9, 9 };

	ok(seed_with_arena(beamalloc_beam(), out) == 0 && out[0] == 0 &&
	    out[1] == 1 && out[2] == 2 && out[3] == 3,
	    "with_arena over beamalloc_beam() gives [0, 1, 2, 3]");
	ok(seed_arena_sum(beamalloc_beam(), &sum) == 0 && sum.sum == 6,
	    "arena_sum([1, 2, 3]) over beamalloc_beam() == 6");
	is_size(sum.moves, 0, "arena_sum: the growing last block never moved");

	out[3] = 9;
	ok(seed_with_arena(testalloc_allocator(t), out) == 0 && out[3] == 3,
	    "with_arena over the strict backing");
	sum.sum = 0;
	ok(seed_arena_sum(testalloc_allocator(t), &sum) == 0 && sum.sum == 6,
	    "arena_sum over the strict backing == 6");
	ok(t->nblocks == 0 && t->live_bytes == 0 && t->bad_calls == 0 &&
	    t->allocs == 2 && t->frees == 2,
	    "seed: one backing block per arena, each given back exactly");
	free(t);
}

/* ------------------------------------------------------------------------
 * Chunks
 * ---------------------------------------------------------------------- */

/* Many small blocks, twice with a reset between: capacity is kept. */
static size_t
small_blocks(beamalloc_allocator a, size_t *bad)
{
	size_t total = 0;

	for (size_t i = 0; i < 20000; i++) {
		size_t len = 1 + i % 100;
		unsigned char *p = beamalloc_alloc(a, len);

		if (p == NULL || !is_aligned(p, 8))
			++*bad;
		else
			memset(p, 0x5a, len);
		total += (len + 7) & ~(size_t)7;
	}
	return total;
}

static void
accounting(void)
{
	testalloc *t = testalloc_new();
	beamalloc_arena *arena = beamalloc_arena_create(testalloc_allocator(t));
	beamalloc_allocator a = beamalloc_arena_allocator(arena);
	size_t bad = 0, total, chunks, allocs, bound = 3;

	ok(arena != NULL && t->nblocks == 1 && t->live_bytes == 4096,
	    "create takes one 4 KiB chunk, header inside");
	is_size(beamalloc_arena_capacity(arena), t->live_bytes,
	    "capacity == bytes held from the backing");

	total = small_blocks(a, &bad);
	is_size(bad, 0, "20000 small blocks, all 8-aligned");
	is_size(beamalloc_arena_capacity(arena), t->live_bytes,
	    "capacity still == bytes held from the backing (%zu)",
	    t->live_bytes);
	chunks = t->nblocks;
	for (size_t c = 4096; c < total; c *= 2)
		bound++;
	ok(chunks >= 2 && chunks <= bound,
	    "growth is geometric: %zu chunks for %zu bytes", chunks, total);
	ok(t->live_bytes <= 2 * total + 8192,
	    "capacity %zu within twice the %zu bytes used", t->live_bytes,
	    total);

	allocs = t->allocs;
	beamalloc_arena_reset(arena);
	ok(t->nblocks == chunks && t->frees == 0 &&
	    beamalloc_arena_capacity(arena) == t->live_bytes,
	    "reset keeps every chunk");
	total = small_blocks(a, &bad);
	is_size(bad, 0, "the same blocks again after reset");
	is_size(t->allocs, allocs,
	    "and they took nothing more from the backing");

	beamalloc_arena_destroy(arena);
	ok(t->nblocks == 0 && t->live_bytes == 0,
	    "destroy gives back every chunk (%zu allocs, %zu frees)",
	    t->allocs, t->frees);
	is_size(t->bad_calls, 0,
	    "every free named the backing's exact block, length, alignment");
	free(t);
}

/* Alignments 1..4096, then 64 KiB and 1 MiB, over a backing that only
 * gives 8 (and only 8 mod 16): chunks are asked at 8, blocks placed. */
static void
alignment(void)
{
	testalloc *t = testalloc_new();
	beamalloc_arena *arena = beamalloc_arena_create(testalloc_allocator(t));
	beamalloc_allocator a = beamalloc_arena_allocator(arena);
	size_t misaligned = 0, failed = 0, damaged = 0;
	unsigned char *big[2];

	for (size_t i = 0; i < NBLOCKS; i++) {
		size_t align = (size_t)1 << (i % 13);

		lens[i] = 1 + (i * 37) % 700;
		blocks[i] = beamalloc_alloc_aligned(a, lens[i], align);
		if (blocks[i] == NULL) {
			failed++;
			continue;
		}
		if (!is_aligned(blocks[i], align))
			misaligned++;
		ta_fill(blocks[i], lens[i], (unsigned)i);
	}
	big[0] = beamalloc_alloc_aligned(a, 100, 65536);
	big[1] = beamalloc_alloc_aligned(a, 100, 1 << 20);
	for (size_t i = 0; i < NBLOCKS; i++)
		if (blocks[i] != NULL && !ta_intact(blocks[i], lens[i],
		    (unsigned)i))
			damaged++;
	is_size(failed, 0, "%d blocks at alignments 1..4096", NBLOCKS);
	is_size(misaligned, 0, "every block aligned, across %zu chunks",
	    t->nblocks);
	ok(t->nblocks >= 6, "the blocks did cross chunk boundaries");
	is_size(damaged, 0, "no two blocks overlap");
	ok(big[0] != NULL && is_aligned(big[0], 65536) && big[1] != NULL &&
	    is_aligned(big[1], 1 << 20),
	    "64 KiB and 1 MiB alignment from a backing that gives 8");
	is_size(beamalloc_native_align(a), ANY_ALIGN,
	    "native_align(arena): any alignment, by placement");
	beamalloc_arena_destroy(arena);
	ok(t->nblocks == 0 && t->bad_calls == 0,
	    "destroy: everything back, exactly");
	free(t);
}

/* ------------------------------------------------------------------------
 * Blocks: last-block free and resize, other frees are no-ops
 * ---------------------------------------------------------------------- */

static void
last_block(void)
{
	beamalloc_arena *arena = beamalloc_arena_create(beamalloc_libc());
	beamalloc_allocator a = beamalloc_arena_allocator(arena);
	unsigned char *p, *q, *r, *s, *t, *z;

	p = beamalloc_alloc(a, 100);
	q = beamalloc_alloc(a, 100);
	ok(p != NULL && q == p + 104, "blocks are bumped (%p, %p)",
	    (void *)p, (void *)q);
	beamalloc_free(a, q, 100);
	r = beamalloc_alloc(a, 100);
	is_ptr(r, q, "freeing the last block gives its bytes back");
	beamalloc_free(a, p, 100);
	s = beamalloc_alloc(a, 8);
	is_ptr(s, r + 104, "freeing another block is a no-op");

	z = beamalloc_alloc(a, 0);
	t = beamalloc_alloc(a, 8);
	ok(z != NULL && t == s + 8, "a zero-length block takes no room");
	beamalloc_free(a, t, 8);
	/* Only the most recent allocation is last: its start is the only
	 * one known, so freeing it does not make the one before last. */
	ok(!beamalloc_resize(a, s, 8, 8, 16),
	    "after the last block is freed, the one before cannot grow");
	is_ptr(beamalloc_alloc(a, 8), t, "the freed bytes came back once");
	s = t;

	/* Lengths stay multiples of 8: a block freed after padding gives
	 * back its own bytes, not the padding before it. */
	ok(beamalloc_resize(a, s, 8, 8, 304), "the last block grows in place");
	ta_fill(s, 304, 1);
	ok(beamalloc_resize(a, s, 304, 8, 40) &&
	    (t = beamalloc_alloc(a, 8)) == s + 40,
	    "a shrink of the last block gives bytes back, and the bump "
	    "pointer follows");
	s = t;
	errno = 0;
	ok(!beamalloc_resize(a, r, 100, 8, 200) && errno == ENOMEM,
	    "another block cannot grow (ENOMEM)");
	ok(beamalloc_resize(a, r, 100, 8, 50), "but it can shrink");
	ok(!beamalloc_resize(a, s, 8, 8, 1 << 20),
	    "the last block cannot grow past its chunk");
	is_ptr(beamalloc_remap(a, s, 8, 8, 1000), s,
	    "remap of the last block grows it in place");
	ta_fill(s, 1000, 2);
	q = beamalloc_realloc(a, s, 1000, 8, 100000);
	ok(q != NULL && q != s && ta_intact(q, 1000, 2),
	    "realloc past the chunk moves to a new one, contents kept");
	ta_fill(r, 50, 3);
	p = beamalloc_realloc(a, r, 50, 8, 60);
	ok(p != NULL && p != r && ta_intact(p, 50, 3),
	    "realloc of another block moves it, contents kept");

	errno = 0;
	ok(beamalloc_alloc_aligned(a, 8, 24) == NULL && errno == EINVAL,
	    "alignment 24: EINVAL");
	beamalloc_arena_destroy(arena);
}

/* ------------------------------------------------------------------------
 * Backing failures and composition
 * ---------------------------------------------------------------------- */

static void
backing_failures(void)
{
	testalloc *t = testalloc_new();
	beamalloc_failing f;
	beamalloc_arena *arena;
	beamalloc_allocator a;
	beamalloc_fixed fb;
	static unsigned char buf[65536];
	size_t got = 0;
	void *p;

	beamalloc_failing_init(&f, testalloc_allocator(t), 0, BEAMALLOC_NEVER);
	errno = 0;
	ok(beamalloc_arena_create(beamalloc_failing_allocator(&f)) == NULL &&
	    errno == ENOMEM, "create: NULL + ENOMEM when the backing fails");

	beamalloc_failing_init(&f, testalloc_allocator(t), 1, BEAMALLOC_NEVER);
	arena = beamalloc_arena_create(beamalloc_failing_allocator(&f));
	a = beamalloc_arena_allocator(arena);
	ok(arena != NULL && beamalloc_alloc(a, 1000) != NULL,
	    "small blocks come from the first chunk");
	errno = 0;
	ok(beamalloc_alloc(a, 10000) == NULL && errno == ENOMEM,
	    "a block needing a new chunk: NULL + ENOMEM");
	ok(beamalloc_alloc(a, 1000) != NULL, "the arena still works after");
	beamalloc_arena_destroy(arena);
	ok(f.allocations == 1 && f.deallocations == 1 &&
	    f.allocated_bytes == f.freed_bytes && t->nblocks == 0,
	    "and gives back its one chunk");

	/* A bounded backing: geometric growth falls back to what is needed,
	 * so nearly the whole buffer is usable. */
	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	arena = beamalloc_arena_create(beamalloc_fixed_allocator(&fb));
	a = beamalloc_arena_allocator(arena);
	while (beamalloc_alloc(a, 1000) != NULL)
		got += 1000;
	ok(got >= 56000, "arena over a 64 KiB fixed buffer served %zu bytes",
	    got);
	errno = 0;
	p = beamalloc_alloc(a, (size_t)PTRDIFF_MAX);
	ok(p == NULL && errno == ENOMEM, "PTRDIFF_MAX bytes: ENOMEM");
	errno = 0;
	p = beamalloc_alloc_aligned(a, (size_t)PTRDIFF_MAX,
	    (size_t)1 << (sizeof(size_t) * 8 - 1));
	ok(p == NULL && errno == ENOMEM,
	    "a length + alignment that overflows: ENOMEM");
	beamalloc_arena_destroy(arena);
	free(t);
}

static void
composition(void)
{
	testalloc *t = testalloc_new();
	beamalloc_arena *outer = beamalloc_arena_create(testalloc_allocator(t));
	beamalloc_allocator oa = beamalloc_arena_allocator(outer);
	beamalloc_arena *inner = beamalloc_arena_create(oa);
	beamalloc_allocator ia = beamalloc_arena_allocator(inner);
	beamalloc_allocator w = beamalloc_wide_on(&ia);
	size_t bad = 0;
	unsigned char *p;

	small_blocks(ia, &bad);
	is_size(bad, 0, "an arena over an arena");
	p = beamalloc_alloc_aligned(w, 64, 4096);
	ok(p != NULL && is_aligned(p, 4096),
	    "wide over an arena passes 4096 straight through");
	beamalloc_free_aligned(w, p, 64, 4096);
	beamalloc_arena_destroy(inner);
	beamalloc_arena_destroy(outer);
	ok(t->nblocks == 0 && t->bad_calls == 0,
	    "destroying both gives the strict backing everything back");
	beamalloc_arena_destroy(NULL);
	beamalloc_arena_reset(NULL);
	ok(beamalloc_arena_capacity(NULL) == 0,
	    "destroy/reset/capacity accept NULL");
	free(t);
}

int
main(void)
{
	seed();
	accounting();
	alignment();
	last_block();
	backing_failures();
	composition();
	return done_testing();
}
