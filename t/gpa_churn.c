/*
 * gpa_churn.c - short-lived threads give their thread caches back: 2,000
 * threads, one after another, each with a stack (so a thread pointer) of
 * its own among 600, use a thread-safe GPA; what the GPA holds from its
 * backing stays bounded, and leak detection stays exact.  A GPA destroyed
 * before a thread that used it ends is left alone by that thread's exit,
 * and the global GPA takes part too.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "beamalloc.h"
#include "tap.h"

#define NTHR 2000
#define NSTACK 600		/* distinct thread pointers: > 256 slots */
#define STACK (256 * 1024)
#define NBLK 200		/* blocks per thread, all classes */
#define KEEP_EVERY 500		/* threads whose last block is kept */

static char *stacks;
static atomic_size_t reports;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	atomic_fetch_add(&reports, 1);
}

struct job {
	beamalloc_allocator a;
	int id;
	void *kept;			/* one block left live, for main */
	size_t kept_len;
	bool bad;
};

static size_t
len_of(int id, int i)
{
	return (size_t)8 << ((id + i) % 10);	/* 8 B .. 4 KiB */
}

static void *
worker(void *arg)
{
	struct job *j = arg;
	void *p[NBLK];

	for (int i = 0; i < NBLK; i++) {
		p[i] = beamalloc_alloc(j->a, len_of(j->id, i));
		if (p[i] == NULL)
			j->bad = true;
		else
			memset(p[i], i, len_of(j->id, i));
	}
	for (int i = 0; i < NBLK - 1; i++)
		beamalloc_free(j->a, p[i], len_of(j->id, i));
	j->kept = p[NBLK - 1];
	j->kept_len = len_of(j->id, NBLK - 1);
	return NULL;
}

/* One thread on stack number id % NSTACK, joined. */
static void
run_one(struct job *j)
{
	pthread_attr_t at;
	pthread_t t;

	pthread_attr_init(&at);
	pthread_attr_setstack(&at, stacks + (size_t)(j->id % NSTACK) * STACK,
	    STACK);
	if (pthread_create(&t, &at, worker, j) != 0)
		bail("pthread_create");
	pthread_attr_destroy(&at);
	pthread_join(t, NULL);
}

static size_t
backing(beamalloc_gpa *g)
{
	beamalloc_gpa_stats st;

	beamalloc_gpa_get_stats(g, &st);
	return st.backing_bytes;
}

static void
churn(bool safety)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_gpa_stats st;
	size_t b100 = 0, bmax = 0, nkept = 0, freed_other = 0;
	bool bad = false;
	void *kept[NTHR / KEEP_EVERY];
	size_t kept_len[NTHR / KEEP_EVERY];
	const char *cf = safety ? "safety on" : "safety off";

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.report = count_report;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	atomic_store(&reports, 0);
	for (int i = 0; i < NTHR; i++) {
		struct job j = { beamalloc_gpa_allocator(g), i, NULL, 0,
		    false };

		run_one(&j);
		bad |= j.bad;
		/* Every kept block but a few is freed here, on another
		 * thread than the one that made it. */
		if (i % KEEP_EVERY == 0) {
			kept[nkept] = j.kept;
			kept_len[nkept++] = j.kept_len;
		} else {
			beamalloc_free(j.a, j.kept, j.kept_len);
			freed_other++;
		}
		if (i == 99)
			b100 = backing(g);
		if (i >= 99 && backing(g) > bmax)
			bmax = backing(g);
	}
	ok(!bad, "%s: %d threads, each %d blocks of 8 B-4 KiB", cf, NTHR,
	    NBLK);
	diag("%s: backing bytes after 100 threads %zu, most after %zu", cf,
	    b100, bmax);
	/* One thread's caches hold at most 256 KiB of free slots, plus
	 * magazines and the cache itself; the depot's trims move the total
	 * by a few slabs.  When slots were never given back, 256 threads'
	 * stranded caches held 100 MB here (after 100 threads, 40). */
	ok(bmax <= b100 + (2u << 20), "%s: what the GPA holds stays bounded "
	    "(most %zu <= %zu + 2 MiB)", cf, bmax, b100);
	ok(bmax <= 4u << 20, "%s: and small (most %zu <= 4 MiB)", cf, bmax);
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_blocks, nkept, "%s: live blocks counted exactly",
	    cf);
	is_size(beamalloc_gpa_detect_leaks(g), nkept,
	    "%s: leak detection finds exactly the kept blocks", cf);
	is_size(atomic_load(&reports), nkept, "%s: one report each, "
	    "nothing else", cf);
	for (size_t i = 0; i < nkept; i++)
		beamalloc_free(beamalloc_gpa_allocator(g), kept[i],
		    kept_len[i]);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: none left at destroy", cf);
	is_size(atomic_load(&reports), nkept, "%s: no bad free among the "
	    "%zu freed by another thread", cf, freed_other);
}

/* ---- a GPA destroyed before a thread that used it ends ---------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;
static beamalloc_gpa *g1, *g2;

static void
wait_phase(int p)
{
	pthread_mutex_lock(&mu);
	while (phase < p)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void
set_phase(int p)
{
	pthread_mutex_lock(&mu);
	phase = p;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void *
outliver(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(g1);

	(void)arg;
	beamalloc_free(a, beamalloc_alloc(a, 64), 64);
	set_phase(1);
	wait_phase(2);			/* g1 destroyed, g2 made */
	a = beamalloc_gpa_allocator(g2);
	beamalloc_free(a, beamalloc_alloc(a, 64), 64);
	return NULL;
}

static void
destroyed_first(void)
{
	beamalloc_gpa_config cfg;
	pthread_t t;
	void *p;

	beamalloc_gpa_config_init(&cfg);
	g1 = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	if (pthread_create(&t, NULL, outliver, NULL) != 0)
		bail("pthread_create");
	wait_phase(1);
	is_size(beamalloc_gpa_destroy(g1), 0, "a GPA destroyed while a "
	    "thread that used it lives");
	/* Often at g1's address: the thread's note of g1 must not match. */
	g2 = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	set_phase(2);
	pthread_join(t, NULL);
	p = beamalloc_alloc(beamalloc_gpa_allocator(g2), 100);
	ok(p != NULL, "the next GPA works after that thread ended");
	beamalloc_free(beamalloc_gpa_allocator(g2), p, 100);
	is_size(beamalloc_gpa_destroy(g2), 0, "and has no leak");
}

/* ---- the global GPA ---------------------------------------------------- */

static void
global(void)
{
	beamalloc_gpa *g = beamalloc_gpa_global();
	size_t b0, bmax = 0;
	bool bad = false;

	for (int i = 0; i < 20; i++) {
		struct job j = { beamalloc_general_purpose(), i, NULL, 0,
		    false };

		run_one(&j);
		beamalloc_free(j.a, j.kept, j.kept_len);
	}
	b0 = backing(g);
	for (int i = 20; i < NSTACK; i++) {
		struct job j = { beamalloc_general_purpose(), i, NULL, 0,
		    false };

		run_one(&j);
		bad |= j.bad;
		beamalloc_free(j.a, j.kept, j.kept_len);
		if (backing(g) > bmax)
			bmax = backing(g);
	}
	ok(!bad, "global GPA: %d threads", NSTACK);
	ok(bmax <= b0 + (2u << 20), "global GPA: what it holds stays "
	    "bounded (most %zu <= %zu + 2 MiB)", bmax, b0);
}

int
main(void)
{
	stacks = mmap(NULL, (size_t)NSTACK * STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (stacks == MAP_FAILED)
		bail("mmap");
	plan(2 * 8 + 3 + 2);
	churn(false);
	churn(true);
	destroyed_first();
	global();
	munmap(stacks, (size_t)NSTACK * STACK);
	return done_testing();
}
