/*
 * gpa_decay.c - memory goes back without trim or destroy (decay_ms).
 *
 * No assertion here depends on timing: the decayed GPA is polled until
 * its backing bytes come down (for up to a minute, far beyond the few
 * hundred milliseconds it takes), and what must not happen (a GPA
 * without decay giving memory back) cannot happen at any speed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "tap.h"

#define NBLK 10000

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static size_t
backing(beamalloc_gpa *g)
{
	beamalloc_gpa_stats st;

	beamalloc_gpa_get_stats(g, &st);
	return st.backing_bytes;
}

static beamalloc_gpa *
make(unsigned decay_ms, bool thread_safe)
{
	beamalloc_gpa_config c;

	beamalloc_gpa_config_init(&c);
	c.decay_ms = decay_ms;
	c.thread_safe = thread_safe;
	return beamalloc_gpa_create(beamalloc_libc(), &c);
}

/* NBLK random blocks of 8..4096 B taken, then all freed; the backing
 * bytes at the peak. */
static size_t
churn(beamalloc_gpa *g)
{
	static void *p[NBLK];
	static size_t len[NBLK];
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	uint32_t x = 12345;
	size_t peak;

	for (int i = 0; i < NBLK; i++) {
		x = x * 1103515245u + 12345u;
		len[i] = 8 + (x >> 8) % 4089;
		p[i] = beamalloc_alloc(a, len[i]);
		memset(p[i], 1, len[i]);
	}
	peak = backing(g);
	for (int i = 0; i < NBLK; i++)
		beamalloc_free(a, p[i], len[i]);
	return peak;
}

/* Poll until g's backing bytes are at most want: the bytes then. */
static size_t
wait_down(beamalloc_gpa *g, size_t want)
{
	size_t b = backing(g);

	for (int i = 0; i < 6000 && b > want; i++) {
		sleep_ms(10);
		b = backing(g);
	}
	return b;
}

static unsigned reports;

static void
count(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED);
}

/* Two threads allocate and free while the decay thread trims at every
 * tick (decay_ms=1); each leaves 100 blocks live. */
static beamalloc_gpa *busy_gpa;

static void *
busy(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(busy_gpa);
	void *keep[100];
	uint32_t x = (uint32_t)(uintptr_t)arg;

	for (int i = 0; i < 100; i++)
		keep[i] = beamalloc_alloc(a, 48);
	for (int i = 0; i < 200000; i++) {
		size_t n;
		void *q;

		x = x * 1103515245u + 12345u;
		n = 8 + (x >> 8) % 2000;
		if ((q = beamalloc_alloc(a, n)) == NULL)
			return (void *)1;
		memset(q, 2, n);
		beamalloc_free(a, q, n);
	}
	(void)keep;
	return NULL;
}

/* busy() on two threads over a GPA made from c: 3 tests. */
static void
busy_pair(beamalloc_gpa_config *c, const char *what)
{
	pthread_t t[2];
	void *rv[2];

	c->report = count;
	__atomic_store_n(&reports, 0, __ATOMIC_RELAXED);
	if ((busy_gpa = beamalloc_gpa_create(beamalloc_libc(), c)) == NULL)
		bail("gpa_create failed");
	pthread_create(&t[0], NULL, busy, (void *)1);
	pthread_create(&t[1], NULL, busy, (void *)2);
	pthread_join(t[0], &rv[0]);
	pthread_join(t[1], &rv[1]);
	ok(rv[0] == NULL && rv[1] == NULL, "%stwo threads, 200,000 pairs "
	    "each, trimmed by decay at every tick: every allocation "
	    "succeeded", what);
	is_size(beamalloc_gpa_detect_leaks(busy_gpa), 200,
	    "%sthe leak check is exact afterwards: the 200 kept blocks", what);
	is_int(__atomic_load_n(&reports, __ATOMIC_RELAXED), 200,
	    "%sand nothing but those was reported", what);
	(void)beamalloc_gpa_destroy(busy_gpa);
}

/* In a child of fork(), made while g's decay thread runs. */
static int
forked(void *g)
{
	beamalloc_gpa *h;

	alarm(60);
	h = make(1, true);
	(void)churn(h);
	sleep_ms(20);
	/* CHILD_EXIT: the library's destructor joins the child's decay
	 * thread, as at any normal exit. */
	return beamalloc_gpa_destroy(h) == 0 &&
	    beamalloc_gpa_destroy(g) == 0 ? 0 : 1;
}

int
main(void)
{
	beamalloc_gpa_config c;
	beamalloc_gpa *g, *ref;
	size_t peak, target, got, before;
	char how[32];
	int st;

	plan(15);
	beamalloc_gpa_config_init(&c);
	is_int((long long)c.decay_ms, 0,
	    "outside the VM, decay_ms defaults to 0 (no thread)");

	/* The reference: the same blocks, then an explicit trim. */
	ref = make(0, true);
	g = make(20, true);
	if (ref == NULL || g == NULL)
		bail("gpa_create failed");
	(void)churn(ref);
	beamalloc_gpa_trim(ref);
	target = backing(ref);
	peak = churn(g);
	got = wait_down(g, target + 64 * 1024);
	ok(got <= target + 64 * 1024,
	    "decay_ms=20: backing bytes come down by themselves, %zu -> %zu "
	    "(an explicit trim leaves %zu)", peak, got, target);
	ok(peak > target + 4 * 1024 * 1024, "the peak held much more (%zu)",
	    peak);
	is_size(beamalloc_gpa_destroy(g), 0, "destroy: no leak");
	(void)beamalloc_gpa_destroy(ref);

	/* Without decay (explicitly, or on a GPA that is not thread-safe,
	 * where no other thread may enter), nothing goes back. */
	g = make(0, true);
	(void)churn(g);
	before = backing(g);
	sleep_ms(300);
	is_size(backing(g), before, "decay_ms=0: the memory stays until trim");
	(void)beamalloc_gpa_destroy(g);
	g = make(1, false);
	(void)churn(g);
	before = backing(g);
	sleep_ms(300);
	is_size(backing(g), before,
	    "thread_safe off: decay_ms is ignored, the memory stays");
	(void)beamalloc_gpa_destroy(g);

	/* Busy threads while the decay thread trims every millisecond;
	 * then the same with every corruption check on, so that the decay
	 * thread drains the quarantine while the threads fill it. */
	beamalloc_gpa_config_init(&c);
	c.decay_ms = 1;
	busy_pair(&c, "");
	c.canary = c.junk = true;
	c.quarantine = 64 << 10;
	c.guard_sample = 50;
	busy_pair(&c, "canary, junk, quarantine, guard_sample=50: ");

	/* Made and destroyed while the thread runs: unregistered safely. */
	got = 0;
	for (int i = 0; i < 300; i++) {
		beamalloc_gpa *h = make(1, true);
		void *q = beamalloc_alloc(beamalloc_gpa_allocator(h), 100);

		beamalloc_free(beamalloc_gpa_allocator(h), q, 100);
		if (i % 50 == 0)
			sleep_ms(2);
		got += beamalloc_gpa_destroy(h);
	}
	is_size(got, 0, "300 GPAs with decay made and destroyed: no leak");

	/* fork() while the thread exists: the child makes a decaying GPA
	 * (a thread of its own), uses it and exits; no hang, no crash. */
	g = make(1, true);
	st = child_run(forked, g, CHILD_EXIT, NULL, 0);
	ok(child_exited(st, 0), "fork: the child uses decay and exits "
	    "cleanly (%s)", child_how(st, how));
	(void)churn(g);
	got = wait_down(g, 512 * 1024);
	ok(got <= 512 * 1024, "the parent's thread still decays (%zu bytes)",
	    got);
	(void)beamalloc_gpa_destroy(g);
	return done_testing();
}
