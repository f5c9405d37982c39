/*
 * mtbench.c - allocators across threads: C ports of four of
 * mimalloc-bench's workloads (larson, cache-scratch, xmalloc-test, which
 * it took from their original authors, and its own mstress), plus a
 * thread churn that times the 1,000th short-lived thread (tchurn).  Every allocator is
 * called through the same beamalloc_allocator vtable; the GPA also
 * through the front-end, as NIF code calls it.  Each workload runs at 1
 * thread and at --threads (default: the CPUs online), threads pinned to
 * separate CPUs when there are enough, interleaved: for each repetition,
 * for each workload and thread count, every allocator in turn, rotating
 * who goes first.  Medians; ratios against glibc and the best peer.
 *
 *   mtbench [--threads=N] [--reps=N] [--scale=F] [--only=a,b]
 *           [--workloads=x,y] [--csv=FILE] [--list]
 *
 * Origins, kept with their notices in the functions ported:
 *   larson        Paul Larson (Microsoft Research), with Wolfram Gloger's
 *                 lran2 generator; mimalloc-bench bench/larson/larson.cpp
 *   cache-scratch Emery Berger, Hoard (GNU LGPL); mimalloc-bench
 *                 bench/cache-scratch/cache-scratch.cpp
 *   xmalloc-test  C. Lever and D. Boreham, Christian Eder (GNU GPL v3);
 *                 mimalloc-bench bench/xmalloc-test/xmalloc-test.c
 *   mstress       Daan Leijen, Microsoft Research (MIT licence);
 *                 mimalloc-bench bench/mstress/mstress.c
 * The ports keep each program's algorithm and default arguments as
 * mimalloc-bench runs them; they count operations instead of running for
 * a fixed time, so every allocator does the same work.  See
 * bench/README.md.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "beamalloc.h"
#include "bench.h"
#include "adapters.h"

/* ------------------------------------------------------------------------
 * Allocators
 * ---------------------------------------------------------------------- */

enum skind { S_GLIBC, S_EXT, S_GPA };

struct subject {
	const char *name, *what;
	enum skind kind;
	int ext;
	bool fe;			/* through the front-end */
	bool safety;			/* S_GPA */
	unsigned guard;			/* S_GPA: guard_sample */
	bool avail, sel;
	char why[200];
	beamalloc_gpa *gpa;
	beamalloc_allocator a;
};

#define SUBJ(n, k, w) .name = (n), .kind = (k), .what = (w)

static struct subject subjects[] = {
	{ SUBJ("gpa-fast-vt", S_GPA, "GPA: safety off, thread-safe; "
	    "through its vtable like every peer") },
	{ SUBJ("gpa-fast", S_GPA, "the same GPA through the front-end "
	    "(no indirect call)"), .fe = true },
	{ SUBJ("gpa-safe", S_GPA, "GPA: safety on, thread-safe (the "
	    "global's config), front-end"), .fe = true, .safety = true },
	{ SUBJ("gpa-guard", S_GPA, "gpa-fast with 1 block in 1000 "
	    "against a guard page, front-end"), .fe = true, .guard = 1000 },
	{ SUBJ("glibc", S_GLIBC, "malloc/free") },
	{ SUBJ("mimalloc", S_EXT, "mimalloc via dlopen"),
	    .ext = EXT_MIMALLOC },
	{ SUBJ("jemalloc", S_EXT, "jemalloc via dlopen"),
	    .ext = EXT_JEMALLOC },
	{ SUBJ("tcmalloc", S_EXT, "tcmalloc_minimal via dlopen"),
	    .ext = EXT_TCMALLOC },
};
#define NS (sizeof(subjects) / sizeof(subjects[0]))

static inline void *
s_alloc(const struct subject *s, size_t n)
{
	if (s->fe)
		return beamalloc_alloc(s->a, n);
	return s->a.vtable->alloc(s->a.ctx, n, BEAMALLOC_MIN_ALIGN, 0);
}

static inline void
s_free(const struct subject *s, void *p, size_t n)
{
	if (s->fe)
		beamalloc_free(s->a, p, n);
	else
		s->a.vtable->free(s->a.ctx, p, n, BEAMALLOC_MIN_ALIGN, 0);
}

/* A fresh GPA per cell, over wide over the BEAM base as in a NIF. */
static int
subject_open(struct subject *s)
{
	switch (s->kind) {
	case S_GLIBC:
		s->a = bench_glibc();
		return 0;
	case S_EXT:
		s->a = bench_ext(s->ext);
		return 0;
	case S_GPA:
		if (s->guard != 0) {
			beamalloc_gpa_config cfg;

			beamalloc_gpa_config_init(&cfg);
			cfg.safety = false;
			cfg.guard_sample = s->guard;
			s->gpa = beamalloc_gpa_create(beamalloc_wide(), &cfg);
		} else
			s->gpa = bench_gpa_new(beamalloc_wide(), s->safety,
			    true, 0);
		if (s->gpa == NULL)
			return -1;
		s->a = beamalloc_gpa_allocator(s->gpa);
		return 0;
	}
	return -1;
}

static void
subject_close(struct subject *s)
{
	if (s->gpa != NULL) {
		bench_gpa_done("mtbench", s->name, s->gpa);
		s->gpa = NULL;
	}
}

/* ------------------------------------------------------------------------
 * Threads: pinned to CPU i when every thread can have its own
 * ---------------------------------------------------------------------- */

#define MAX_THREADS 64			/* --threads at most */

static int ncpu;

static void
pin(int i, int nthreads)
{
	cpu_set_t set;

	if (nthreads > ncpu)
		return;
	CPU_ZERO(&set);
	CPU_SET(i % ncpu, &set);
	/* Ignored where not allowed: the scheduler places the thread. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void
spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	if (pthread_create(t, NULL, fn, arg) != 0) {
		perror("mtbench: pthread_create");
		exit(1);
	}
}

static uint64_t
cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
	    1000000000u + ((uint64_t)ru.ru_utime.tv_usec +
	    (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

struct result {
	double value;			/* what the workload reports */
};

static double scale = 1.0;

/* ------------------------------------------------------------------------
 * larson: Paul Larson's "Test driver for memory allocators" (Microsoft
 * Research), as mimalloc-bench runs it: larson 5 8 1000 5000 100 4141 N.
 * Each thread owns 5000 slots; it frees a random one, allocates 8-999
 * bytes there and writes two bytes; after NumBlocks (rounds x slots)
 * such steps it starts a successor on the same slots and ends, unjoined.
 * The slots are filled first by the main thread (warmup), so blocks
 * pass between threads.  Here each thread line runs a fixed number of
 * generations instead of 5 seconds.  Reports allocations per second.
 *
 * lran2: "A small, portable pseudo-random number generator", Wolfram
 * Gloger 1996, as in larson.cpp.
 * ---------------------------------------------------------------------- */

#define LRAN2_MAX 714025l
#define IA 1366l
#define IC 150889l

struct lran2_st {
	long x, y, v[97];
};

static void
lran2_init(struct lran2_st *d, long seed)
{
	long x = (IC - seed) % LRAN2_MAX;

	if (x < 0)
		x = -x;
	for (int j = 0; j < 97; j++) {
		x = (IA * x + IC) % LRAN2_MAX;
		d->v[j] = x;
	}
	d->x = (IA * x + IC) % LRAN2_MAX;
	d->y = d->x;
}

static long
lran2(struct lran2_st *d)
{
	int j = (int)(d->y % 97);

	d->y = d->v[j];
	d->x = (IA * d->x + IC) % LRAN2_MAX;
	d->v[j] = d->x;
	return d->y;
}

#undef IA
#undef IC

#define LA_MIN 8
#define LA_MAX 1000
#define LA_CHUNKS 5000			/* per thread */
#define LA_ROUNDS 100			/* NumBlocks = rounds x chunks */
#define LA_SEED 4141
#define LA_GENS 4			/* successors per thread line */

/* One thread line's state, on cache lines of its own: each step writes
 * allocs and rgen and reads array and blksize, and with the records side
 * by side one thread's count shared a line with the next one's pointers,
 * a line bouncing between the CPUs at every step, whatever the allocator
 * (bench/README.md, "larson: the harness's own false sharing"). */
struct larson {
	_Alignas(64) const struct subject *s;
	char **array;
	size_t *blksize;
	long numblocks;
	int gens_left, cpu, nthreads;
	struct lran2_st rgen;
	long allocs;
	atomic_int *running;
};

static void *
larson_thread(void *arg)
{
	struct larson *d = arg;
	int range = LA_MAX - LA_MIN;

	pin(d->cpu, d->nthreads);
	for (long i = 0; i < d->numblocks; i++) {
		int victim = (int)(lran2(&d->rgen) % LA_CHUNKS);
		size_t sz;
		volatile char *ch;

		s_free(d->s, d->array[victim], d->blksize[victim]);
		sz = (size_t)(LA_MIN + lran2(&d->rgen) % range);
		d->array[victim] = s_alloc(d->s, sz);
		d->blksize[victim] = sz;
		if (d->array[victim] == NULL)
			abort();
		d->allocs++;
		/* Write something! */
		ch = d->array[victim];
		*ch++ = 'a';
		(void)*(volatile char *)d->array[victim];
		*ch = 'b';
	}
	if (--d->gens_left > 0) {
		pthread_t t;
		pthread_attr_t at;

		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, larson_thread, d) != 0)
			abort();
		pthread_attr_destroy(&at);
	} else
		atomic_fetch_sub(d->running, 1);
	return NULL;
}

static void
larson(const struct subject *s, int nthreads, struct result *r)
{
	size_t n = (size_t)nthreads * LA_CHUNKS;
	char **blkp = calloc(n, sizeof(*blkp));
	size_t *blksize = calloc(n, sizeof(*blksize));
	struct larson *d = aligned_alloc(_Alignof(struct larson),
	    (size_t)nthreads * sizeof(*d));
	struct lran2_st rgen;
	atomic_int running = nthreads;
	long total = 0;
	uint64_t t0;

	if (blkp == NULL || blksize == NULL || d == NULL)
		abort();
	lran2_init(&rgen, LA_SEED);
	/* warmup(): fill, shuffle, then 4 x n random replacements. */
	for (size_t i = 0; i < n; i++) {
		blksize[i] = (size_t)(LA_MIN + lran2(&rgen) % (LA_MAX - LA_MIN));
		blkp[i] = s_alloc(s, blksize[i]);
	}
	for (size_t i = n; i > 0; i--) {
		size_t v = (size_t)lran2(&rgen) % i;
		char *tp = blkp[v];
		size_t ts = blksize[v];

		blkp[v] = blkp[i - 1];
		blksize[v] = blksize[i - 1];
		blkp[i - 1] = tp;
		blksize[i - 1] = ts;
	}
	for (size_t i = 0; i < 4 * n; i++) {
		size_t v = (size_t)lran2(&rgen) % n;

		s_free(s, blkp[v], blksize[v]);
		blksize[v] = (size_t)(LA_MIN + lran2(&rgen) % (LA_MAX - LA_MIN));
		blkp[v] = s_alloc(s, blksize[v]);
	}
	t0 = now_ns();
	for (int i = 0; i < nthreads; i++) {
		pthread_t t;
		pthread_attr_t at;

		d[i] = (struct larson){ s, &blkp[i * LA_CHUNKS],
		    &blksize[i * LA_CHUNKS],
		    (long)(LA_ROUNDS * LA_CHUNKS * scale), LA_GENS, i,
		    nthreads, { 0 }, 0, &running };
		lran2_init(&d[i].rgen, lran2(&rgen));
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, larson_thread, &d[i]) != 0)
			abort();
		pthread_attr_destroy(&at);
	}
	while (atomic_load(&running) != 0)
		usleep(100);
	for (int i = 0; i < nthreads; i++)
		total += d[i].allocs;
	r->value = (double)total / ((double)(now_ns() - t0) / 1e9);
	for (size_t i = 0; i < n; i++)
		s_free(s, blkp[i], blksize[i]);
	free(blkp);
	free(blksize);
	free(d);
}

/* ------------------------------------------------------------------------
 * cache-scratch: Emery Berger's Hoard benchmark (GNU Library GPL), as
 * mimalloc-bench runs it: cache-scratch N 1000 1 2000000 N.  The main
 * thread allocates N 1-byte objects back to back; thread i frees object
 * i, then 1000 times allocates 1 byte, writes it 2,000,000 / N times and
 * frees it.  An allocator that hands threads neighbouring objects makes
 * their cores fight over one cache line.  Reports the process's CPU
 * seconds.
 * ---------------------------------------------------------------------- */

#define CS_ITER 1000
#define CS_SIZE 1
#define CS_REPS 2000000

struct scratch {
	const struct subject *s;
	char *obj;
	int reps, cpu, nthreads;
	pthread_barrier_t *bar;
};

static void *
scratch_thread(void *arg)
{
	struct scratch *w = arg;

	pin(w->cpu, w->nthreads);
	pthread_barrier_wait(w->bar);
	s_free(w->s, w->obj, CS_SIZE);
	for (int i = 0; i < CS_ITER; i++) {
		char *obj = s_alloc(w->s, CS_SIZE);

		for (int j = 0; j < w->reps; j++)
			for (int k = 0; k < CS_SIZE; k++) {
				volatile char ch;

				obj[k] = (char)k;
				ch = obj[k];
				ch++;
				(void)ch;
			}
		s_free(w->s, obj, CS_SIZE);
	}
	return NULL;
}

static void
cache_scratch(const struct subject *s, int nthreads, struct result *r)
{
	struct scratch w[MAX_THREADS];
	pthread_t t[MAX_THREADS];
	pthread_barrier_t bar;
	uint64_t c0;

	pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		w[i] = (struct scratch){ s, s_alloc(s, CS_SIZE),
		    (int)(CS_REPS * scale) / nthreads, i, nthreads, &bar };
	c0 = cpu_ns();
	for (int i = 0; i < nthreads; i++)
		spawn(&t[i], scratch_thread, &w[i]);
	pthread_barrier_wait(&bar);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	r->value = (double)(cpu_ns() - c0) / 1e9;
	pthread_barrier_destroy(&bar);
}

/* ------------------------------------------------------------------------
 * xmalloc-test: Lever and Boreham's test from "malloc() Performance in a
 * Multithreaded Linux Environment" (USENIX 2000), as in Christian Eder's
 * XMALLOC (GNU GPL v3), run by mimalloc-bench as xmalloc-test -w N -t 5
 * -s 64.  N producers allocate batches of 4096 objects of 64 bytes
 * (writing each) and queue them (at most 100 queued); N consumers free
 * them.  Here each producer makes a fixed number of batches.  Reports
 * nanoseconds per free.
 * ---------------------------------------------------------------------- */

#define XM_OBJS 4096
#define XM_SIZE 64
#define XM_LIMIT 100
#define XM_BATCHES 400			/* per producer */

struct batch {
	struct batch *next_batch;
	void *objects[XM_OBJS];
};

struct xm {
	const struct subject *s;
	pthread_mutex_t lock;
	pthread_cond_t empty_cv, full_cv;
	struct batch *batches;
	int batch_count, producers;
	long per_producer;
};

struct xm_arg {
	struct xm *x;
	int cpu, nthreads;
	long frees;
};

static void
enqueue_batch(struct xm *x, struct batch *b)
{
	pthread_mutex_lock(&x->lock);
	while (x->batch_count >= XM_LIMIT)
		pthread_cond_wait(&x->full_cv, &x->lock);
	b->next_batch = x->batches;
	x->batches = b;
	x->batch_count++;
	pthread_cond_signal(&x->empty_cv);
	pthread_mutex_unlock(&x->lock);
}

/* NULL once every producer is done and the queue is empty. */
static struct batch *
dequeue_batch(struct xm *x)
{
	struct batch *b;

	pthread_mutex_lock(&x->lock);
	while (x->batches == NULL && x->producers != 0)
		pthread_cond_wait(&x->empty_cv, &x->lock);
	if ((b = x->batches) != NULL) {
		x->batches = b->next_batch;
		x->batch_count--;
		pthread_cond_signal(&x->full_cv);
	}
	pthread_mutex_unlock(&x->lock);
	return b;
}

static void *
mem_allocator(void *arg)
{
	struct xm_arg *a = arg;
	struct xm *x = a->x;

	pin(a->cpu, a->nthreads);
	for (long n = 0; n < x->per_producer; n++) {
		struct batch *b = s_alloc(x->s, sizeof(*b));

		for (int i = 0; i < XM_OBJS; i++) {
			b->objects[i] = s_alloc(x->s, XM_SIZE);
			memset(b->objects[i], i % 256, XM_SIZE);
		}
		enqueue_batch(x, b);
	}
	pthread_mutex_lock(&x->lock);
	if (--x->producers == 0)
		pthread_cond_broadcast(&x->empty_cv);
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

static void *
mem_releaser(void *arg)
{
	struct xm_arg *a = arg;
	struct batch *b;

	pin(a->cpu, a->nthreads);
	while ((b = dequeue_batch(a->x)) != NULL) {
		for (int i = 0; i < XM_OBJS; i++)
			s_free(a->x->s, b->objects[i], XM_SIZE);
		s_free(a->x->s, b, sizeof(*b));
		a->frees += XM_OBJS;
	}
	return NULL;
}

/* nthreads is the number of workers (-w): as many producers as
 * consumers, 2 x nthreads threads. */
static void
xmalloc_test(const struct subject *s, int nthreads, struct result *r)
{
	int n = 2 * nthreads;
	struct xm x = { .s = s, .producers = nthreads,
	    .per_producer = (long)(XM_BATCHES * scale) };
	struct xm_arg a[2 * MAX_THREADS];
	pthread_t t[2 * MAX_THREADS];
	long frees = 0;
	uint64_t t0;

	if (x.per_producer < 1)
		x.per_producer = 1;
	pthread_mutex_init(&x.lock, NULL);
	pthread_cond_init(&x.empty_cv, NULL);
	pthread_cond_init(&x.full_cv, NULL);
	t0 = now_ns();
	for (int i = 0; i < nthreads; i++) {
		a[2 * i] = (struct xm_arg){ &x, 2 * i, n, 0 };
		a[2 * i + 1] = (struct xm_arg){ &x, 2 * i + 1, n, 0 };
		spawn(&t[2 * i], mem_releaser, &a[2 * i]);
		spawn(&t[2 * i + 1], mem_allocator, &a[2 * i + 1]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		frees += a[i].frees;
	}
	r->value = (double)(now_ns() - t0) / (double)frees;
	pthread_cond_destroy(&x.empty_cv);
	pthread_cond_destroy(&x.full_cv);
	pthread_mutex_destroy(&x.lock);
}

/* ------------------------------------------------------------------------
 * mstress: "a stress test for the allocator, using multiple threads and
 * transferring objects between threads", Copyright (c) 2018,2019
 * Microsoft Research, Daan Leijen, MIT licence; as mimalloc-bench runs
 * it: mstress N 50 25.  Each of 25 rounds starts N threads (the main
 * thread is thread 0) that allocate blocks of 1-16 words (1% large, 0.1%
 * huge, 0.01% giant), keep some, free two thirds at random, and swap a
 * quarter with a shared transfer array; half the transfer array outlives
 * each round.  Every block is filled and checked.  Reports milliseconds
 * for the whole run.  The block's first word gives its length back, so
 * the port frees with sizes, as the vtable wants.
 * ---------------------------------------------------------------------- */

#define MS_TRANSFERS 1000
#define MS_SCALE 50
#define MS_ITER 25

static const uintptr_t ms_cookie = 0xbf58476d1ce4e5b9UL;
static void *_Atomic ms_transfer[MS_TRANSFERS];

/* splitmix64's finalizer, by Sebastiano Vigna, as in mstress.c. */
static uintptr_t
ms_pick(uintptr_t *r)
{
	uintptr_t x = *r;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9UL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebUL;
	x ^= x >> 31;
	*r = x;
	return x;
}

static bool
ms_chance(unsigned perc, uintptr_t *r)
{
	return ms_pick(r) % 100 <= perc;
}

static void *
ms_alloc_items(const struct subject *s, size_t items, uintptr_t *r)
{
	uintptr_t *p;

	if (ms_chance(1, r)) {
		if (ms_chance(1, r))
			items *= 10000;		/* 0.01% giant */
		else if (ms_chance(10, r))
			items *= 1000;		/* 0.1% huge */
		else
			items *= 100;		/* 1% large */
	}
	if (items == 40)
		items++;	/* pthreads uses that size for stack increases */
	p = s_alloc(s, items * sizeof(uintptr_t));
	if (p == NULL)
		abort();
	for (uintptr_t i = 0; i < items; i++)
		p[i] = (items - i) ^ ms_cookie;
	return p;
}

static void
ms_free_items(const struct subject *s, void *p)
{
	uintptr_t *q = p, items;

	if (p == NULL)
		return;
	items = q[0] ^ ms_cookie;
	for (uintptr_t i = 0; i < items; i++)
		if ((q[i] ^ ms_cookie) != items - i) {
			fprintf(stderr, "mtbench: mstress: memory corruption "
			    "at block %p at %zu\n", p, (size_t)i);
			abort();
		}
	s_free(s, p, items * sizeof(uintptr_t));
}

/* CUSTOM_REALLOC of the pointer array, as alloc + copy + free. */
static void **
ms_grow(const struct subject *s, void **old, size_t n, size_t m)
{
	void **p = s_alloc(s, m * sizeof(*p));

	if (p == NULL)
		abort();
	if (old != NULL) {
		memcpy(p, old, n * sizeof(*p));
		s_free(s, old, n * sizeof(*p));
	}
	return p;
}

struct ms_arg {
	const struct subject *s;
	intptr_t tid;
	int nthreads;
};

static void *
ms_stress(void *arg)
{
	struct ms_arg *a = arg;
	const struct subject *s = a->s;
	uintptr_t r = (uintptr_t)(a->tid + 1) * 43;
	const size_t max_item_shift = 5, max_item_retained_shift = 7;
	size_t allocs = (size_t)(100 * MS_SCALE * scale) *
	    (size_t)(a->tid % 8 + 1);
	size_t retain = allocs / 2, nretained = retain;
	void **data = NULL, **retained;
	size_t data_size = 0, data_top = 0, retain_top = 0;

	if (a->tid != 0)
		pin((int)a->tid, a->nthreads);
	retained = s_alloc(s, (nretained ? nretained : 1) * sizeof(void *));
	while (allocs > 0 || retain > 0) {
		if (retain == 0 || (ms_chance(50, &r) && allocs > 0)) {
			allocs--;
			if (data_top >= data_size) {
				data = ms_grow(s, data, data_size,
				    data_size + 100000);
				data_size += 100000;
			}
			data[data_top++] = ms_alloc_items(s, (size_t)1 <<
			    (ms_pick(&r) % max_item_shift), &r);
		} else {
			retained[retain_top++] = ms_alloc_items(s, (size_t)1 <<
			    (ms_pick(&r) % max_item_retained_shift), &r);
			retain--;
		}
		if (ms_chance(66, &r) && data_top > 0) {
			size_t idx = ms_pick(&r) % data_top;

			ms_free_items(s, data[idx]);
			data[idx] = NULL;
		}
		if (ms_chance(25, &r) && data_top > 0) {
			size_t di = ms_pick(&r) % data_top;
			size_t ti = ms_pick(&r) % MS_TRANSFERS;

			data[di] = atomic_exchange_explicit(&ms_transfer[ti],
			    data[di], memory_order_acquire);
		}
	}
	for (size_t i = 0; i < retain_top; i++)
		ms_free_items(s, retained[i]);
	for (size_t i = 0; i < data_top; i++)
		ms_free_items(s, data[i]);
	s_free(s, retained, (nretained ? nretained : 1) * sizeof(void *));
	if (data != NULL)
		s_free(s, data, data_size * sizeof(void *));
	return NULL;
}

static void
mstress(const struct subject *s, int nthreads, struct result *r)
{
	uintptr_t rr = 43 * 43;
	uint64_t t0 = now_ns();

	for (int n = 0; n < MS_ITER; n++) {
		struct ms_arg a[MAX_THREADS];
		pthread_t t[MAX_THREADS];

		for (int i = 0; i < nthreads; i++)
			a[i] = (struct ms_arg){ s, i, nthreads };
		for (int i = 1; i < nthreads; i++)
			spawn(&t[i], ms_stress, &a[i]);
		ms_stress(&a[0]);	/* main runs as well */
		for (int i = 1; i < nthreads; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < MS_TRANSFERS; i++)
			if (ms_chance(50, &rr) || n + 1 == MS_ITER)
				ms_free_items(s, atomic_exchange(
				    &ms_transfer[i], NULL));
	}
	r->value = (double)(now_ns() - t0) / 1e6;
}

/* ------------------------------------------------------------------------
 * tchurn: short-lived threads, one after another (each joined before
 * the next starts), as mstress re-creates its threads.  Each does 1,000
 * pairs of 64 B and times them.  Reports the median time of threads
 * 991-1000 over that of threads 1-10 (1.0: the 1,000th thread is as fast
 * as the first; an allocator whose per-thread state runs out slows down).
 * nthreads: how many run at once (each wave joined before the next).
 * Each thread gets a stack of its own: glibc would give a joined
 * thread's stack, and with it the same thread pointer, to the next one,
 * where a NIF's threads (unjoined, or alive at once) have distinct ones.
 * ---------------------------------------------------------------------- */

#define TC_THREADS 1000
#define TC_PAIRS 1000
#define TC_STACK (256 * 1024)

struct churn {
	const struct subject *s;
	int cpu, nthreads;
	uint64_t ns;
};

static void *
churn_thread(void *arg)
{
	struct churn *c = arg;
	uint64_t t0;

	pin(c->cpu, c->nthreads);
	t0 = now_ns();
	for (int i = 0; i < TC_PAIRS; i++) {
		void *p = s_alloc(c->s, 64);

		BENCH_TOUCH(p, i);
		s_free(c->s, p, 64);
	}
	c->ns = now_ns() - t0;
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
median10(uint64_t *v)
{
	qsort(v, 10, sizeof(*v), cmp_u64);
	return (v[4] + v[5]) / 2;
}

static void
tchurn(const struct subject *s, int nthreads, struct result *r)
{
	uint64_t first[10], last[10];
	int waves = TC_THREADS / nthreads;
	size_t len = (size_t)TC_THREADS * TC_STACK;
	/* Address space only: a thread touches a few pages of its stack. */
	char *stacks = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (stacks == MAP_FAILED) {
		perror("mtbench: mmap");
		exit(1);
	}
	for (int w = 0; w < waves; w++) {
		struct churn c[MAX_THREADS];
		pthread_t t[MAX_THREADS];

		for (int i = 0; i < nthreads; i++) {
			pthread_attr_t at;

			c[i] = (struct churn){ s, i, nthreads, 0 };
			pthread_attr_init(&at);
			pthread_attr_setstack(&at, stacks + (size_t)(w *
			    nthreads + i) * TC_STACK, TC_STACK);
			if (pthread_create(&t[i], &at, churn_thread,
			    &c[i]) != 0) {
				perror("mtbench: pthread_create");
				exit(1);
			}
			pthread_attr_destroy(&at);
		}
		for (int i = 0; i < nthreads; i++) {
			pthread_join(t[i], NULL);
			if (w * nthreads + i < 10)
				first[w * nthreads + i] = c[i].ns;
			else if (w * nthreads + i >= waves * nthreads - 10)
				last[w * nthreads + i - (waves * nthreads -
				    10)] = c[i].ns;
		}
	}
	munmap(stacks, len);
	r->value = (double)median10(last) / (double)median10(first);
}

/* ------------------------------------------------------------------------
 * Driver
 * ---------------------------------------------------------------------- */

struct workload {
	const char *name, *unit;
	bool higher_better;
	void (*run)(const struct subject *, int, struct result *);
	bool sel;
};

static struct workload wls[] = {
	{ "larson", "allocs/s", true, larson, true },
	{ "cache-scratch", "CPU s", false, cache_scratch, true },
	{ "xmalloc-test", "ns/free", false, xmalloc_test, true },
	{ "mstress", "ms", false, mstress, true },
	{ "tchurn", "1000th/1st", false, tchurn, true },
};
#define NWL (sizeof(wls) / sizeof(wls[0]))

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: mtbench [--threads=N] [--reps=N] [--scale=F] "
	    "[--only=a,b] [--workloads=x,y] [--csv=FILE] [--list]\n"
	    "  --threads   the second thread count (default: CPUs online)\n"
	    "  --reps      interleaved repetitions, medians reported (5)\n"
	    "  --scale     work per cell, 1.0 = the ports' defaults (0.25)\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "scale", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "workloads", required_argument, NULL, 'w' },
		{ "csv", required_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *only = NULL, *wsel = NULL, *csvpath = NULL;
	int reps = 5, nthr, c, tc[2];
	bool list = false;
	FILE *csv = NULL;

	ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	nthr = ncpu > 0 ? ncpu : 1;
	scale = 0.25;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		switch (c) {
		case 't': nthr = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 's': scale = atof(optarg); break;
		case 'o': only = optarg; break;
		case 'w': wsel = optarg; break;
		case 'c': csvpath = optarg; break;
		case 'l': list = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	if (reps < 1 || nthr < 1 || nthr > MAX_THREADS || scale <= 0) {
		usage(stderr);
		return 2;
	}
	if (bench_ext_load())
		bench_reexec_static_tls(argv);
	for (size_t i = 0; i < NS; i++) {
		struct subject *s = &subjects[i];

		s->sel = only == NULL || bench_in_list(only, s->name);
		s->avail = s->kind != S_EXT ||
		    bench_ext_ready(s->ext, s->why, sizeof(s->why));
	}
	for (size_t i = 0; i < NWL; i++)
		wls[i].sel = wsel == NULL || bench_in_list(wsel, wls[i].name);
	if (list) {
		for (size_t i = 0; i < NS; i++)
			printf("%-12s %-4s %s%s%s\n", subjects[i].name,
			    subjects[i].avail ? "" : "n/a", subjects[i].what,
			    subjects[i].avail ? "" : ": ", subjects[i].why);
		for (size_t i = 0; i < NWL; i++)
			printf("workload %s (%s)\n", wls[i].name, wls[i].unit);
		return 0;
	}
	if (csvpath != NULL && (csv = fopen(csvpath, "w")) == NULL) {
		perror(csvpath);
		return 1;
	}
	tc[0] = 1;
	tc[1] = nthr;

	static double val[NWL][2][NS][64];
	int nt = nthr > 1 ? 2 : 1;

	if (reps > 64)
		reps = 64;
	for (int rep = 0; rep < reps; rep++)
		for (size_t w = 0; w < NWL; w++)
			for (int k = 0; k < nt && wls[w].sel; k++)
				for (size_t j = 0; j < NS; j++) {
					struct subject *s =
					    &subjects[(j + (size_t)rep) % NS];
					struct result r = { 0 };

					if (!s->sel || !s->avail)
						continue;
					if (subject_open(s) != 0) {
						fprintf(stderr, "mtbench: %s: "
						    "cannot create\n", s->name);
						return 1;
					}
					wls[w].run(s, tc[k], &r);
					subject_close(s);
					val[w][k][s - subjects][rep] = r.value;
				}
	if (csv != NULL)
		fprintf(csv, "workload,threads,alloc,unit,median,vs_glibc,"
		    "vs_best_peer\n");
	printf("mtbench: %d CPUs, medians of %d interleaved runs, scale %g\n",
	    ncpu, reps, scale);
	for (size_t w = 0; w < NWL; w++)
		for (int k = 0; k < nt && wls[w].sel; k++) {
			double med[NS], best = 0, glibc = 0;
			const char *bestn = "-";

			for (size_t j = 0; j < NS; j++) {
				if (!subjects[j].sel || !subjects[j].avail)
					continue;
				med[j] = median(val[w][k][j], reps);
				if (subjects[j].kind == S_GLIBC)
					glibc = med[j];
				if (subjects[j].kind == S_EXT && (best == 0 ||
				    (wls[w].higher_better ? med[j] > best :
				    med[j] < best))) {
					best = med[j];
					bestn = subjects[j].name;
				}
			}
			printf("\n%s, %d thread%s (%s, %s better; best peer "
			    "%s)\n", wls[w].name, tc[k], tc[k] > 1 ? "s" : "",
			    wls[w].unit, wls[w].higher_better ? "higher" :
			    "lower", bestn);
			for (size_t j = 0; j < NS; j++) {
				if (!subjects[j].sel || !subjects[j].avail)
					continue;
				printf("  %-12s %12.4g  vs glibc %6.2f  vs best "
				    "peer %6.2f\n", subjects[j].name, med[j],
				    glibc > 0 ? med[j] / glibc : 0,
				    best > 0 ? med[j] / best : 0);
				if (csv != NULL)
					fprintf(csv, "%s,%d,%s,%s,%.6g,%.4f,"
					    "%.4f\n", wls[w].name, tc[k],
					    subjects[j].name, wls[w].unit,
					    med[j], glibc > 0 ? med[j] /
					    glibc : 0, best > 0 ? med[j] /
					    best : 0);
			}
		}
	if (csv != NULL)
		fclose(csv);
	return 0;
}
