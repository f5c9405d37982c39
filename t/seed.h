/*
 * seed.h - the seed's with_arena and arena_sum, written in C the way a NIF
 * author would (header-only, for the tests).  Both have the shape of a
 * beamalloc_check_fn: 0 on success, -1 when out of memory, everything
 * freed on every path, so the failure checker can run them too.
 */
#ifndef BEAMALLOC_SEED_H
#define BEAMALLOC_SEED_H

#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"

/* with_arena: a u16 slice of 4 from an arena over a; out gets
 * [0, 1, 2, 3]. */
static int
seed_with_arena(beamalloc_allocator backing, void *out)
{
	beamalloc_arena *arena = beamalloc_arena_create(backing);
	beamalloc_allocator a;
	uint16_t *slice;

	if (arena == NULL)
		return -1;
	a = beamalloc_arena_allocator(arena);
	slice = beamalloc_alloc_array(a, 4, sizeof(*slice), alignof(uint16_t));
	if (slice == NULL) {
		beamalloc_arena_destroy(arena);
		return -1;
	}
	for (uint16_t i = 0; i < 4; i++)
		slice[i] = i;
	memcpy(out, slice, 4 * sizeof(*slice));
	beamalloc_free_aligned(a, slice, 4 * sizeof(*slice), alignof(uint16_t));
	beamalloc_arena_destroy(arena);
	return 0;
}

struct seed_sum {
	const long *list;	/* the "term": a list of integers */
	size_t n;
	uint64_t sum;		/* out */
	size_t moves;		/* out: times the growing array moved */
};

/* arena_sum: the list decoded into a u64 array allocated from an arena
 * over a, element by element (as a decoder that does not know the length
 * would), then summed.  Nothing is freed one by one: destroy does it. */
static int
seed_arena_sum(beamalloc_allocator backing, void *arg)
{
	struct seed_sum *s = arg;
	beamalloc_arena *arena = beamalloc_arena_create(backing);
	beamalloc_allocator a;
	uint64_t *arr = NULL, *grown;

	if (arena == NULL)
		return -1;
	a = beamalloc_arena_allocator(arena);
	s->moves = 0;
	for (size_t i = 0; i < s->n; i++) {
		grown = beamalloc_realloc(a, arr, i * sizeof(*arr),
		    alignof(uint64_t), (i + 1) * sizeof(*arr));
		if (grown == NULL) {
			beamalloc_arena_destroy(arena);
			return -1;
		}
		if (arr != NULL && grown != arr)
			s->moves++;
		arr = grown;
		arr[i] = (uint64_t)s->list[i];
	}
	s->sum = 0;
	for (size_t i = 0; i < s->n; i++)
		s->sum += arr[i];
	beamalloc_arena_destroy(arena);
	return 0;
}

#endif /* BEAMALLOC_SEED_H */
