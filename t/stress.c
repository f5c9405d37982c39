/*
 * stress.c - the thread-safe GPA under several threads and millions of
 * operations, blocks freed (or reallocated) by another thread than the
 * one that allocated them, with exact accounting: at a pause half way and
 * at the end, the GPA's live bytes and blocks equal what the threads
 * hold, and nothing leaks.  Run on a GPA made with thread_safe = true and
 * on the process-wide beamalloc_general_purpose().
 *
 * Blocks travel between threads through outboxes of slots, swapped
 * atomically: each thread publishes into its own and takes from its
 * neighbour's, so what it takes was allocated (or last reallocated) by
 * another thread.  Threads take now and then while the neighbour runs,
 * and all of the neighbour's outbox at the end of each round, so the
 * cross-thread traffic does not depend on how the threads are scheduled.  Each block starts with a header (its length, alignment,
 * allocating thread and a check word tied to its address) and ends with a
 * tag byte; whoever frees or reallocates it checks both, so a block handed
 * out twice, or overwritten, shows up.  Under valgrind, which runs one
 * thread at a time, the operations are divided by 20.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "under.h"

#define NTHREADS 4
#define OPS_PER_THREAD 600000UL	/* 2.4 million per GPA */
#define NSHARED 512		/* each thread's outbox */
#define ROUNDS 200		/* each ends with a takeover of outboxes */
#define NLOCAL 128		/* blocks a thread holds */

struct hdr {
	size_t len;
	uint32_t check;		/* derived from address and length */
	uint16_t lalign;	/* log2 of the alignment */
	uint16_t owner;		/* allocating thread */
};

struct run {
	beamalloc_allocator a;
	/* Thread t publishes into shared[t], takes from shared[t + 1]. */
	_Atomic(unsigned char *) shared[NTHREADS][NSHARED];
	pthread_barrier_t pause, resume, round;
	unsigned long ops;	/* per thread */
};

struct worker {
	pthread_t tid;
	struct run *run;
	uint16_t id;
	uint64_t rng;
	unsigned char *held[NLOCAL];	/* NULL: empty */
	unsigned long bad, failures, foreign, reallocs;
};

static uint64_t
rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Mostly small, some up to the 16 KiB slab limit, a few large. */
static size_t
pick_len(struct worker *w)
{
	uint64_t r = rnd(w);

	switch (r % 32) {
	case 0:
		return 16385 + (size_t)(r >> 8) % 100000;
	case 1: case 2: case 3: case 4: case 5: case 6:
		return 16 + (size_t)(r >> 8) % 16369;
	default:
		return 16 + (size_t)(r >> 8) % 241;
	}
}

static unsigned
pick_lalign(struct worker *w)
{
	uint64_t r = rnd(w);

	return r % 8 == 0 ? 3 + (unsigned)((r >> 8) % 10) : 3;
}

static uint32_t
check_of(const unsigned char *p, size_t len)
{
	return (uint32_t)(((uintptr_t)p ^ len) * 0x9E3779B1u);
}

static void
stamp(unsigned char *p, size_t len, unsigned lalign, uint16_t owner)
{
	struct hdr h = { len, check_of(p, len), (uint16_t)lalign, owner };

	memcpy(p, &h, sizeof(h));
	p[len - 1] = (unsigned char)(h.check ^ 0x5a);
}

/* The block's header, or len 0 when it does not hold up. */
static struct hdr
read_hdr(const unsigned char *p)
{
	struct hdr h;

	memcpy(&h, p, sizeof(h));
	if (h.len < sizeof(h) || h.check != check_of(p, h.len) ||
	    p[h.len - 1] != (unsigned char)(h.check ^ 0x5a))
		h.len = 0;
	return h;
}

static void
drop(struct worker *w, unsigned char *p)
{
	struct hdr h = read_hdr(p);

	if (h.len == 0) {
		w->bad++;
		return;		/* leaks it: the accounting will say so */
	}
	if (h.owner != w->id)
		w->foreign++;
	beamalloc_free_aligned(w->run->a, p, h.len, (size_t)1 << h.lalign);
}

static unsigned char *
fresh(struct worker *w)
{
	size_t len = pick_len(w);
	unsigned lalign = pick_lalign(w);
	unsigned char *p = beamalloc_alloc_aligned(w->run->a, len,
	    (size_t)1 << lalign);

	if (p == NULL) {
		w->failures++;
		return NULL;
	}
	stamp(p, len, lalign, w->id);
	return p;
}

/* Reallocate a block that may be another thread's, checking it first. */
static unsigned char *
grow_or_shrink(struct worker *w, unsigned char *p)
{
	struct hdr h = read_hdr(p);
	size_t len = pick_len(w);
	unsigned char *q;

	if (h.len == 0) {
		w->bad++;
		return NULL;
	}
	if (h.owner != w->id)
		w->foreign++;
	q = beamalloc_realloc(w->run->a, p, h.len, (size_t)1 << h.lalign,
	    len);
	if (q == NULL) {
		w->failures++;
		return p;
	}
	w->reallocs++;
	stamp(q, len, h.lalign, w->id);
	return q;
}

/* A block taken from another thread: free it, reallocate it or keep it
 * (returned). */
static unsigned char *
dispose(struct worker *w, unsigned char *got)
{
	switch (rnd(w) % 3) {
	case 0:
		drop(w, got);
		return NULL;
	case 1:
		return grow_or_shrink(w, got);
	default:
		return got;
	}
}

static void
step(struct worker *w)
{
	size_t i = (size_t)(rnd(w) % NLOCAL);
	unsigned char **slot = &w->held[i], *got;

	switch (rnd(w) % 10) {
	case 0: case 1: case 2:
		if (*slot != NULL)
			drop(w, *slot);
		*slot = fresh(w);
		break;
	case 3: case 4:
		if (*slot != NULL)
			drop(w, *slot);
		*slot = NULL;
		break;
	case 5:
		if (*slot != NULL)
			*slot = grow_or_shrink(w, *slot);
		break;
	case 6: case 7:
		/* Publish; a slot still full gives back our own block. */
		if (*slot != NULL)
			*slot = atomic_exchange(
			    &w->run->shared[w->id][rnd(w) % NSHARED], *slot);
		break;
	default:
		/* Take the neighbour's, if there is one here. */
		if (*slot != NULL)
			break;
		got = atomic_exchange(&w->run->shared[(w->id + 1) % NTHREADS]
		    [rnd(w) % NSHARED], NULL);
		if (got != NULL)
			*slot = dispose(w, got);
		break;
	}
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	_Atomic(unsigned char *) *in = r->shared[(w->id + 1) % NTHREADS];

	for (unsigned k = 0; k < ROUNDS; k++) {
		if (k == ROUNDS / 2) {
			pthread_barrier_wait(&r->pause);
			pthread_barrier_wait(&r->resume);
		}
		for (unsigned long n = 0; n < r->ops / ROUNDS; n++)
			step(w);
		pthread_barrier_wait(&r->round);
		for (size_t i = 0; i < NSHARED; i++) {
			unsigned char *got = atomic_exchange(&in[i], NULL);

			if (got == NULL)
				continue;
			got = dispose(w, got);
			for (size_t j = 0; got != NULL && j < NLOCAL; j++)
				if (w->held[j] == NULL) {
					w->held[j] = got;
					got = NULL;
				}
			if (got != NULL)
				drop(w, got);
		}
		pthread_barrier_wait(&r->round);
	}
	return NULL;
}

/* What the threads and the table hold: bytes and blocks. */
static void
held(struct run *r, struct worker *ws, size_t *bytes, size_t *blocks)
{
	*bytes = *blocks = 0;
	for (int t = 0; t < NTHREADS; t++)
		for (size_t i = 0; i < NLOCAL; i++)
			if (ws[t].held[i] != NULL) {
				*bytes += read_hdr(ws[t].held[i]).len;
				++*blocks;
			}
	for (int t = 0; t < NTHREADS; t++)
		for (size_t i = 0; i < NSHARED; i++) {
			unsigned char *p = atomic_load(&r->shared[t][i]);

			if (p != NULL) {
				*bytes += read_hdr(p).len;
				++*blocks;
			}
		}
}

static void
check_stats(beamalloc_gpa *g, const beamalloc_gpa_stats *base,
    size_t bytes, size_t blocks, const char *name, const char *when)
{
	beamalloc_gpa_stats s;

	beamalloc_gpa_get_stats(g, &s);
	is_size(s.live_bytes - base->live_bytes, bytes,
	    "%s, %s: live bytes equal what the threads hold", name, when);
	is_size(s.live_blocks - base->live_blocks, blocks,
	    "%s, %s: live blocks equal what the threads hold", name, when);
}

static void
stress(beamalloc_gpa *g, unsigned long ops, const char *name)
{
	static struct run r;
	static struct worker ws[NTHREADS];
	beamalloc_gpa_stats base;
	size_t bytes, blocks;
	unsigned long bad = 0, failures = 0, foreign = 0, reallocs = 0;

	memset(&r, 0, sizeof(r));
	memset(ws, 0, sizeof(ws));
	r.a = beamalloc_gpa_allocator(g);
	r.ops = ops;
	beamalloc_gpa_get_stats(g, &base);
	pthread_barrier_init(&r.pause, NULL, NTHREADS + 1);
	pthread_barrier_init(&r.resume, NULL, NTHREADS + 1);
	pthread_barrier_init(&r.round, NULL, NTHREADS);
	for (int t = 0; t < NTHREADS; t++) {
		ws[t].run = &r;
		ws[t].id = (uint16_t)t;
		ws[t].rng = 0x2545F4914F6CDD1DULL * (uint64_t)(t + 1);
		if (pthread_create(&ws[t].tid, NULL, work, &ws[t]) != 0)
			bail("pthread_create failed");
	}
	pthread_barrier_wait(&r.pause);
	held(&r, ws, &bytes, &blocks);
	check_stats(g, &base, bytes, blocks, name, "half way");
	pthread_barrier_wait(&r.resume);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(ws[t].tid, NULL);
	pthread_barrier_destroy(&r.pause);
	pthread_barrier_destroy(&r.resume);
	pthread_barrier_destroy(&r.round);

	held(&r, ws, &bytes, &blocks);
	check_stats(g, &base, bytes, blocks, name, "at the end");
	diag("%s: %lu operations, %zu blocks (%zu bytes) held at the end",
	    name, ops / ROUNDS * ROUNDS * NTHREADS, blocks, bytes);
	/* The main thread frees everything, mostly others' blocks. */
	for (int t = 0; t < NTHREADS; t++) {
		for (size_t i = 0; i < NLOCAL; i++)
			if (ws[t].held[i] != NULL)
				drop(&ws[t], ws[t].held[i]);
	}
	for (int t = 0; t < NTHREADS; t++)
		for (size_t i = 0; i < NSHARED; i++) {
			unsigned char *p = atomic_exchange(&r.shared[t][i],
			    NULL);

			if (p != NULL)
				drop(&ws[0], p);
		}
	for (int t = 0; t < NTHREADS; t++) {
		bad += ws[t].bad;
		failures += ws[t].failures;
		foreign += ws[t].foreign;
		reallocs += ws[t].reallocs;
	}
	is_int(bad, 0, "%s: every block freed had its header and tag intact",
	    name);
	is_int(failures, 0, "%s: no allocation or realloc failed", name);
	ok(foreign > ops / 8, "%s: %lu frees/reallocs of blocks allocated "
	    "by another thread (%lu reallocs in all)", name, foreign,
	    reallocs);
	check_stats(g, &base, 0, 0, name, "after freeing all");
}

static atomic_ulong nreports;

static void
count_report(void *user, const beamalloc_report *rp)
{
	(void)user;
	if (atomic_fetch_add(&nreports, 1) < 5)
		beamalloc_report_print(NULL, rp);
}

int
main(void)
{
	static beamalloc_allocator libc;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	unsigned long ops = OPS_PER_THREAD;

	if (UNDER_VALGRIND())
		ops /= 20;
	plan(3 * 9 + 5);
	libc = beamalloc_libc();
	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = true;
	/* Over wide(libc): large blocks take any alignment too. */
	g = beamalloc_gpa_create(beamalloc_wide_on(&libc), &cfg);
	ok(g != NULL, "thread-safe GPA over wide(libc) created");
	if (g == NULL)
		return done_testing();
	stress(g, ops, "private GPA");
	is_size(beamalloc_gpa_destroy(g), 0,
	    "private GPA: destroy finds no leak");

	stress(beamalloc_gpa_global(), ops, "global GPA");

	/* Every corruption check on: blocks handed between threads meet
	 * the canary, the junk, the shared quarantine and guarded slots of
	 * other threads, and none of it may report a correct program. */
	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = cfg.safety = true;
	cfg.canary = cfg.junk = true;
	cfg.quarantine = 256 << 10;
	cfg.guard_sample = 64;
	cfg.report = count_report;
	g = beamalloc_gpa_create(beamalloc_wide_on(&libc), &cfg);
	ok(g != NULL, "thread-safe GPA with canary, junk, quarantine and "
	    "guard_sample=64 created");
	if (g == NULL)
		return done_testing();
	stress(g, ops / 4, "checking GPA");
	is_size(beamalloc_gpa_destroy(g), 0,
	    "checking GPA: destroy finds no leak");
	is_int(atomic_load(&nreports), 0, "checking GPA: no report of a "
	    "correct program");
	return done_testing();
}
