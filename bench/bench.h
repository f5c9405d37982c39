/*
 * bench.h - what the native benchmark (allocbench) and the benchmark NIF
 * (nifbench) share: the workload description, a fixed-seed PRNG, the
 * precomputed size and slot sequences, and the clock.
 *
 * Every random choice is made before timing starts and is the same for
 * every allocator, so all of them serve exactly the same requests.
 */
#ifndef BEAMALLOC_BENCH_H
#define BEAMALLOC_BENCH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

enum wl_kind {
	W_PAIR,		/* ops x (alloc size, touch, free) */
	W_LIFO,		/* ops batches: alloc batch blocks, free in reverse */
	W_RAND,		/* live blocks, ops random replacements, drain */
	W_BATCH,	/* ops rounds: alloc live blocks, free all (or reset) */
	W_GROW,		/* ops sequences: 16 B grown to 1 MiB by doubling */
	W_THREADS	/* two threads, each a W_PAIR or W_RAND of its own */
};

struct wl {
	const char *name;
	const char *unit;	/* what one "operation" is */
	enum wl_kind kind;
	enum wl_kind inner;	/* W_THREADS: what each thread runs */
	size_t size;		/* fixed size (0: from sizes[]) */
	size_t align;
	size_t live;		/* blocks live at once (W_RAND, W_BATCH) */
	size_t batch;		/* W_LIFO */
	size_t ops;
	/* Precomputed, shared by every allocator. */
	uint32_t *sizes;	/* live + ops request sizes */
	uint32_t *slots;	/* ops slot indices in [0, live) */
	uint32_t *order;	/* a permutation of [0, live): drain order */
	/* Scratch. */
	void **ptrs;
	uint32_t *lens;
	int memset_all;		/* memory pass: write every byte */
};

#define GROW_FROM 16
#define GROW_TO (1u << 20)
#define GROW_STEPS 16		/* 16 B -> 1 MiB: 16 doublings */

/* xorshift64*: fast, fixed seed, same sequence everywhere. */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(2685821657736338717);
}

static inline double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Log-uniform in [lo, hi]: as many requests of 8-16 B as of 2-4 KiB. */
static inline uint32_t
rng_logsize(uint64_t *s, uint32_t lo, uint32_t hi)
{
	double l = log((double)lo), h = log((double)hi + 1.0);
	uint32_t v = (uint32_t)exp(l + (h - l) * rng_unit(s));

	return v < lo ? lo : v > hi ? hi : v;
}

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Fill w's sequences: sizes log-uniform in [lo, hi] (or w->size), slots
 * and the drain order from the same seed.  Returns 0, or -1 out of memory.
 */
static inline int
wl_prepare(struct wl *w, uint32_t lo, uint32_t hi, uint64_t seed)
{
	size_t nsizes = w->live + w->ops, i;
	uint64_t s = seed;

	w->ptrs = calloc(w->live ? w->live : w->batch ? w->batch : 1,
	    sizeof(*w->ptrs));
	w->lens = calloc(w->live ? w->live : 1, sizeof(*w->lens));
	w->sizes = malloc((nsizes ? nsizes : 1) * sizeof(*w->sizes));
	w->slots = malloc((w->ops ? w->ops : 1) * sizeof(*w->slots));
	w->order = malloc((w->live ? w->live : 1) * sizeof(*w->order));
	if (w->ptrs == NULL || w->lens == NULL || w->sizes == NULL ||
	    w->slots == NULL || w->order == NULL)
		return -1;
	for (i = 0; i < nsizes; i++)
		w->sizes[i] = w->size ? (uint32_t)w->size :
		    rng_logsize(&s, lo, hi);
	for (i = 0; i < w->ops; i++)
		w->slots[i] = w->live ? (uint32_t)(rng_next(&s) % w->live) : 0;
	for (i = 0; i < w->live; i++)
		w->order[i] = (uint32_t)i;
	for (i = w->live; i > 1; i--) {	/* Fisher-Yates */
		size_t j = rng_next(&s) % i;
		uint32_t t = w->order[i - 1];

		w->order[i - 1] = w->order[j];
		w->order[j] = t;
	}
	return 0;
}

static inline void
wl_release(struct wl *w)
{
	free(w->ptrs);
	free(w->lens);
	free(w->sizes);
	free(w->slots);
	free(w->order);
	w->ptrs = NULL;
	w->lens = NULL;
	w->sizes = w->slots = w->order = NULL;
}

/* Keep a block's first byte written even when the allocator is inlined. */
#define BENCH_TOUCH(p, v) do { \
	*(volatile unsigned char *)(p) = (unsigned char)(v); \
} while (0)

#endif /* BEAMALLOC_BENCH_H */
