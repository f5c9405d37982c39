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
 *   4. Racing: successors with caches of their own free every ended
 *      maker's blocks at once (two may want one cache) while the main
 *      thread trims; blocks keep their contents.
 * The counts stay exact and nothing leaks.
 */
#include <pthread.h>
#include <stdatomic.h>
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

/* 4. Racing: makers that all end, then successors that each free a
 * share of every maker's blocks at once (each may take over a maker's
 * cache, and two may want the same one), and allocate and free more,
 * while the main thread trims. */
#define NMAKER 4
#define PER 3000
#define NFREER 4

static struct {
	unsigned char *p;
	size_t len;
} race[NMAKER * PER];
static size_t race_bad[NFREER];
static atomic_int racing;
static pthread_barrier_t race_go;

static size_t
race_len(size_t i)
{
	return 8 + (i * 2654435761u) % 3000;
}

static void *
race_make(void *arg)
{
	size_t base = (size_t)(uintptr_t)arg * PER;

	for (size_t i = base; i < base + PER; i++) {
		race[i].len = race_len(i);
		if ((race[i].p = beamalloc_alloc(A, race[i].len)) != NULL)
			memset(race[i].p, (int)(i & 0xff), race[i].len);
	}
	return NULL;
}

static void *
race_free(void *arg)
{
	size_t f = (size_t)(uintptr_t)arg;
	void *mine[64];

	/* A cache of its own first; the makers start and end after. */
	beamalloc_free(A, beamalloc_alloc(A, 24), 24);
	pthread_barrier_wait(&race_go);
	pthread_barrier_wait(&race_go);
	for (size_t i = f; i < NMAKER * PER; i += NFREER) {
		for (size_t k = 0; k < race[i].len; k++)
			if (race[i].p[k] != (unsigned char)(i & 0xff)) {
				race_bad[f]++;
				break;
			}
		beamalloc_free(A, race[i].p, race[i].len);
		/* Blocks of its own between the frees, in whichever cache
		 * it holds by then. */
		if (i % 64 == f) {
			for (size_t k = 0; k < 64; k++)
				if ((mine[k] = beamalloc_alloc(A, race_len(k))) !=
				    NULL)
					memset(mine[k], (int)k, race_len(k));
			for (size_t k = 0; k < 64; k++) {
				if (mine[k] == NULL)
					continue;
				if (((unsigned char *)mine[k])[race_len(k) - 1] !=
				    (unsigned char)k)
					race_bad[f]++;
				beamalloc_free(A, mine[k], race_len(k));
			}
		}
	}
	atomic_fetch_sub(&racing, 1);
	return NULL;
}

static void
race_case(beamalloc_gpa *g)
{
	pthread_t t[NFREER];
	beamalloc_gpa_stats st;
	size_t nmade = 0, nbad = 0;
	unsigned trims = 0;

	pthread_t mk[NMAKER];

	pthread_barrier_init(&race_go, NULL, NFREER + 1);
	atomic_store(&racing, NFREER);
	for (uintptr_t f = 0; f < NFREER; f++)
		if (pthread_create(&t[f], NULL, race_free, (void *)f) != 0)
			bail("pthread_create");
	pthread_barrier_wait(&race_go);
	for (uintptr_t m = 0; m < NMAKER; m++)
		if (pthread_create(&mk[m], NULL, race_make, (void *)m) != 0)
			bail("pthread_create");
	for (size_t m = 0; m < NMAKER; m++)
		pthread_join(mk[m], NULL);
	for (size_t i = 0; i < NMAKER * PER; i++)
		nmade += race[i].p != NULL;
	is_size(nmade, NMAKER * PER, "racing: %d makers made %d blocks "
	    "and ended", NMAKER, NMAKER * PER);
	pthread_barrier_wait(&race_go);
	while (atomic_load(&racing) != 0) {
		beamalloc_gpa_trim(g);
		trims++;
	}
	for (size_t f = 0; f < NFREER; f++) {
		pthread_join(t[f], NULL);
		nbad += race_bad[f];
	}
	pthread_barrier_destroy(&race_go);
	diag("racing: %u trims while %d threads freed", trims, NFREER);
	is_size(nbad, 0, "racing: every block held what was written");
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_blocks, 0, "racing: none counted live");
	is_size(beamalloc_gpa_detect_leaks(g), 0, "racing: no leak found");
	beamalloc_gpa_trim(g);
	beamalloc_gpa_get_stats(g, &st);
	/* What a trim cannot give back: the GPA's own metadata, a few
	 * caches and their magazines (the slabs all go). */
	ok(st.backing_bytes < 2u << 20, "racing: a trim gives the slabs "
	    "back (%zu bytes held)", st.backing_bytes);
	is_size(beamalloc_gpa_destroy(g), 0, "racing: no leak at destroy");
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

	plan(4 + 5 + 6);

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

	A = beamalloc_gpa_allocator(g = make_gpa());
	race_case(g);
	return done_testing();
}
