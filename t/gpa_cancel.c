/*
 * gpa_cancel.c - a thread cancelled (pthread_cancel(), deferred) inside
 * the library leaves no lock held.
 *
 * Deferred cancellation acts at the next cancellation point: a write(2)
 * of a report, an open(2) of the symbolizer, a condition wait.  A thread
 * cancelled there while holding a lock left it held for good, and the
 * next thread to need it waited forever.  Each case runs in a child whose
 * alarm (far beyond what its few calls take) turns a hang into a failed
 * test; the cancel is made pending before the thread reaches the library,
 * and no assertion depends on timing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "slowbacking.h"
#include "tap.h"

#define CHILD_ALARM 30

/* Runs fn in a thread with a cancel pending from its start (it reaches
 * no cancellation point before the library's); whether it was
 * cancelled. */
static atomic_bool go;

struct victim {
	void (*fn)(void *);
	void *arg;
};

static void *
victim_main(void *arg)
{
	struct victim *v = arg;

	while (!atomic_load(&go))
		;			/* no cancellation point */
	v->fn(v->arg);
	return NULL;
}

static bool
cancelled_in(void (*fn)(void *), void *arg)
{
	struct victim v = { fn, arg };
	pthread_t t;
	void *res;

	atomic_store(&go, false);
	if (pthread_create(&t, NULL, victim_main, &v) != 0)
		bail("pthread_create");
	pthread_cancel(t);
	atomic_store(&go, true);
	pthread_join(t, &res);
	return res == PTHREAD_CANCELED;
}

/* ---- a report to stderr ------------------------------------------------- */

static void
double_free(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(arg);
	void *p = beamalloc_alloc(a, 100);

	beamalloc_free(a, p, 100);
	beamalloc_free(a, p, 100);	/* reported to stderr */
}

/* The report held stderr's lock (flockfile()) across its writes. */
static int
report_child(void *arg)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;

	(void)arg;
	alarm(CHILD_ALARM);
	beamalloc_gpa_config_init(&cfg);
	cfg.stack_trace_depth = 4;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		return 2;
	(void)cancelled_in(double_free, g);
	fprintf(stderr, "stderr after the cancel\n");
	(void)cancelled_in(double_free, g);	/* and a report again */
	return beamalloc_gpa_destroy(g) == 0 ? 0 : 3;
}

static void
test_report(void)
{
	char err[8192], how[32];
	int st;

	/* exit(): what the report's symbolizer read is released. */
	st = child_run(report_child, NULL, CHILD_EXIT, err, sizeof(err));
	if (!ok(child_exited(st, 0), "a thread cancelled as it reports a "
	    "double free to stderr: stderr and the next report still work"))
		diag("child: %s", child_how(st, how));
	ok(strstr(err, "stderr after the cancel") != NULL,
	    "the line written after the cancel is there");
}

/* ---- a symbol lookup ---------------------------------------------------- */

static void
symbolize(void *arg)
{
	beamalloc_symbol s;

	(void)arg;
	(void)beamalloc_symbolize((uintptr_t)&symbolize + 1, &s);
}

/* The process's first lookup reads its objects under the symbolizer's
 * lock. */
static int
symbolize_child(void *arg)
{
	beamalloc_symbol s;

	(void)arg;
	alarm(CHILD_ALARM);
	(void)cancelled_in(symbolize, NULL);
	(void)beamalloc_symbolize((uintptr_t)&symbolize + 1, &s);
	return 0;
}

static void
test_symbolize(void)
{
	char how[32];
	int st;

	st = child_run(symbolize_child, NULL, 0, NULL, 0);
	if (!ok(child_exited(st, 0), "a thread cancelled in "
	    "beamalloc_symbolize(): the next lookup returns"))
		diag("child: %s", child_how(st, how));
}

/* ---- beamalloc_gpa_destroy() waiting for the decay's trim --------------- */

/* A backing over malloc's whose free, once armed, takes 200 ms: the
 * decay thread's trim is inside it while destroy waits for the trim. */
static atomic_bool slow, trimming;

static void
slow_once(bool is_free)
{
	if (is_free && atomic_exchange(&slow, false)) {
		atomic_store(&trimming, true);
		sleep_ms(200);
	}
}

static void
destroy(void *arg)
{
	while (!atomic_load(&trimming))
		;			/* no cancellation point */
	(void)beamalloc_gpa_destroy(arg);
}

static int
destroy_child(void *arg)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g, *h;
	beamalloc_allocator a;
	void *p[64];

	(void)arg;
	alarm(CHILD_ALARM);
	beamalloc_gpa_config_init(&cfg);
	cfg.decay_ms = 1;
	g = beamalloc_gpa_create(slow_backing(slow_once), &cfg);
	if (g == NULL)
		return 2;
	a = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < 64; i++)
		p[i] = beamalloc_alloc(a, 1000);
	for (size_t i = 0; i < 64; i++)
		beamalloc_free(a, p[i], 1000);
	atomic_store(&slow, true);	/* the decay's next trim waits */
	(void)cancelled_in(destroy, g);
	/* A GPA with decay registers with the decay thread. */
	if ((h = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		return 3;
	(void)beamalloc_gpa_destroy(h);
	return 0;
}

static void
test_destroy(void)
{
	char how[32];
	int st;

	st = child_run(destroy_child, NULL, CHILD_EXIT, NULL, 0);
	if (!ok(child_exited(st, 0), "a thread cancelled in "
	    "beamalloc_gpa_destroy() as the decay trims its GPA: the next "
	    "GPA with decay is made, and the process exits"))
		diag("child: %s", child_how(st, how));
}

int
main(void)
{
	plan(4);
	test_report();
	test_symbolize();
	test_destroy();
	return done_testing();
}
