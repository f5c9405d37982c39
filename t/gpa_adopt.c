/*
 * gpa_adopt.c - a thread that frees what an ended thread left takes that
 * thread's cache over, so that its frees are its own again (larson's
 * successors, a NIF thread handing its work to the next): a slot it
 * frees comes back to it at its next allocation of the size.
 *   1. Its first call a free: the claim takes the freed block's cache,
 *      not the one given back last.
 *   2. A cache claimed before the other thread ended: taken over once
 *      the frees going home to the ended one fill an outbox.
 *   3. Not back and forth: the cache given up, once its blocks are
 *      freed too, is not taken back while the one taken holds more.
 * The counts stay exact and nothing leaks.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define N 2000			/* the ended thread's blocks */
#define OWN 300			/* the successor's own, made first */
#define LEN 64

static beamalloc_allocator A;
static void *made[N];
static void *own[OWN];
static pthread_t maker;
static size_t back, own_back, bad;

static void *
make(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < N; i++)
		if ((made[i] = beamalloc_alloc(A, LEN)) != NULL)
			memset(made[i], (int)(i & 0xff), LEN);
	return NULL;
}

/* A thread with a cache of its own, which it gives back after the
 * maker's: the one a claim would take first (the last given back). */
static void *
touch(void *arg)
{
	pthread_t t;

	(void)arg;
	beamalloc_free(A, beamalloc_alloc(A, LEN), LEN);
	if (pthread_create(&t, NULL, make, NULL) != 0 ||
	    pthread_join(t, NULL) != 0)
		bail("pthread");
	return NULL;
}

static bool
in(void *const *set, size_t n, const void *p)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == p)
			return true;
	return false;
}

/* Frees the maker's blocks (checking what it wrote), then allocates as
 * many: how many of them are slots it just freed. */
static void
free_and_take(void)
{
	void **again = malloc(N * sizeof(*again));

	if (again == NULL)
		bail("malloc");
	for (size_t i = 0; i < N; i++) {
		for (size_t k = 0; k < LEN; k++)
			bad += ((unsigned char *)made[i])[k] != (i & 0xff);
		beamalloc_free(A, made[i], LEN);
	}
	for (size_t i = 0; i < N; i++)
		again[i] = beamalloc_alloc(A, LEN);
	back = 0;
	for (size_t i = 0; i < N; i++)
		back += in(made, N, again[i]);
	memcpy(made, again, N * sizeof(*again));
	free(again);
}

static void *
successor_first_free(void *arg)
{
	(void)arg;
	free_and_take();
	return NULL;
}

/* Case 2 and 3: a cache of its own, with OWN blocks out, before the
 * maker ends; then the maker's blocks, then its own. */
static void *
successor_early(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < OWN; i++)
		own[i] = beamalloc_alloc(A, LEN);
	/* The maker starts once this thread has its cache, and has given
	 * its own back when the join returns (its exit). */
	if (pthread_create(&maker, NULL, make, NULL) != 0 ||
	    pthread_join(maker, NULL) != 0)
		bail("pthread");
	free_and_take();
	for (size_t i = 0; i < OWN; i++)
		beamalloc_free(A, own[i], LEN);
	own_back = 0;
	for (size_t i = 0; i < OWN; i++) {
		void *p = beamalloc_alloc(A, LEN);

		own_back += in(own, OWN, p);
		beamalloc_free(A, p, LEN);
	}
	return NULL;
}

static beamalloc_gpa *
make_gpa(void)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	/* Slots straight back to the cache (BEAMALLOC_GPA_OPTIONS may set
	 * these for the whole suite): held back or guarded, a freed slot
	 * would not be the next one handed out. */
	cfg.quarantine = 0;
	cfg.guard_sample = 0;
	cfg.trace_sample = 0;
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

static void
finish(beamalloc_gpa *g, size_t live, const char *what)
{
	beamalloc_gpa_stats st;

	for (size_t i = 0; i < N; i++)
		beamalloc_free(A, made[i], LEN);
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_blocks, live, "%s: blocks counted live", what);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: no leak at destroy", what);
}

int
main(void)
{
	beamalloc_gpa *g;
	pthread_t t;

	plan(4 + 5);

	/* 1. The maker ends, then another thread's cache is given back
	 * after it; the successor's first call frees a maker's block. */
	A = beamalloc_gpa_allocator(g = make_gpa());
	if (pthread_create(&t, NULL, touch, NULL) != 0 ||
	    pthread_join(t, NULL) != 0 ||
	    pthread_create(&t, NULL, successor_first_free, NULL) != 0 ||
	    pthread_join(t, NULL) != 0)
		bail("pthread");
	is_size(bad, 0, "first free: every block held what its maker wrote");
	/* The slots come back from its magazines, last freed first: all
	 * of them, as a thread's own frees do. */
	is_size(back, N, "first free: the successor took the maker's "
	    "cache, its %d slots came back to it", N);
	finish(g, 0, "first free");

	/* 2, 3. The successor has a cache of its own before the maker
	 * ends. */
	A = beamalloc_gpa_allocator(g = make_gpa());
	if (pthread_create(&t, NULL, successor_early, NULL) != 0 ||
	    pthread_join(t, NULL) != 0)
		bail("pthread");
	is_size(bad, 0, "early: every block held what its maker wrote");
	/* An outbox's worth goes home to the ended cache before it is
	 * taken over (a magazine of 64 B slots: 255 at most); the rest
	 * are the successor's own frees. */
	ok(back >= N / 2, "early: the successor took the ended cache over "
	    "(%zu of %d slots came back)", back, N);
	/* Its own first cache, given up, held fewer blocks than the one it
	 * took: the frees of its own first blocks went home to it, and did
	 * not take it back. */
	is_size(own_back, 0, "early: its first cache was not taken back");
	finish(g, 0, "early");
	return done_testing();
}
