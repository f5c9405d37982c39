/*
 * gpa_fork.c - a child of fork() can use the GPAs its parent's threads
 * were inside at the fork.
 *
 * fork() copies only the calling thread: a lock another thread held then
 * stays held in the child, whose first call needing it waits forever.
 * The library takes its locks around a fork (pthread_atfork()), as
 * glibc's malloc does.  A child that hangs is killed by its alarm (far
 * beyond what its few calls take) and fails its test; no assertion
 * depends on timing.
 */
#define _GNU_SOURCE
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "beamalloc.h"
#include "child.h"
#include "plant.h"
#include "slowbacking.h"
#include "tap.h"
#include "under.h"

#define CHILD_ALARM 30

/* A child of a fork made while other threads ran has their memory but
 * not them: memcheck, at the child's exit, calls it lost (their caches'
 * notes, their stacks' pointers), and fails the child. */
#define MEMCHECK_FORK "memcheck: the other threads' memory is lost in the " \
	"child"

/* The backing's first call from the thread "holder" stays inside for
 * 200 ms (slowbacking.h): the GPA calls it with a lock held. */
static pthread_t holder;
static atomic_bool armed, inside;

static void
hold(bool is_free)
{
	if (!is_free && atomic_load(&armed) &&
	    pthread_equal(pthread_self(), holder)) {
		atomic_store(&armed, false);
		atomic_store(&inside, true);
		sleep_ms(200);
	}
}

/* The child's work on g: blocks of every size (a new thread cache, new
 * slabs, large blocks), a trim, the stats, a leak check. */
static int
use(beamalloc_gpa *g, size_t leaks_before)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];
	beamalloc_gpa_stats st;
	void *p[64];

	alarm(CHILD_ALARM);
	for (int r = 0; r < 3; r++) {
		for (size_t i = 0; i < 64; i++)
			if ((p[i] = beamalloc_alloc(a, 1 + i * 997 % 70000)) ==
			    NULL)
				return 2;
		for (size_t i = 0; i < 64; i++)
			beamalloc_free(a, p[i], 1 + i * 997 % 70000);
	}
	(void)beamalloc_gpa_trim(g);
	beamalloc_gpa_get_stats(g, &st);
	(void)beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS,
	    NULL);
	(void)beamalloc_gpa_reset_peak(g);
	if (leaks_before != SIZE_MAX &&
	    beamalloc_gpa_detect_leaks(g) != leaks_before)
		return 3;
	return 0;
}

/* ---- a thread inside the GPA, a lock held, at the fork ------------------ */

static beamalloc_gpa *held_gpa;

static void *
holder_main(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(held_gpa);
	void *p;

	(void)arg;
	/* Its first block makes its cache, from the backing, under the
	 * GPA's lock. */
	p = beamalloc_alloc(a, 100);
	beamalloc_free(a, p, 100);
	return NULL;
}

static int
held_child(void *arg)
{
	(void)arg;
	return use(held_gpa, 0);
}

static void
test_held(void)
{
	beamalloc_allocator slow = slow_backing(hold);
	char how[32];
	int st;

	held_gpa = beamalloc_gpa_create(slow, NULL);
	if (held_gpa == NULL)
		bail("beamalloc_gpa_create");
	atomic_store(&armed, true);
	if (pthread_create(&holder, NULL, holder_main, NULL) != 0)
		bail("pthread_create");
	while (!atomic_load(&inside))
		sleep_ms(1);
	st = child_run(held_child, NULL, 0, NULL, 0);
	if (!ok(child_exited(st, 0), "a thread held the GPA's lock at the "
	    "fork: the child allocates, frees, trims, reads the stats and "
	    "checks for leaks"))
		diag("child: %s", child_how(st, how));
	pthread_join(holder, NULL);
	is_size(beamalloc_gpa_destroy(held_gpa), 0, "the parent's GPA: no leak");
}

/* ---- forks while threads allocate from the global GPA and one with
 * decay ------------------------------------------------------------------ */

#define NTHR 3
#define NFORK 20

static beamalloc_gpa *busy_gpa;
static atomic_bool stop;
/* A block of each thread of busy_gpa's, live until it ends: the child
 * frees them, the first frees of another thread's blocks in busy_gpa
 * (which then waits for the fast frees in flight in other threads). */
static void *_Atomic pub[NTHR];
static atomic_int npub;

static void *
churn(void *arg)
{
	beamalloc_allocator a = arg != NULL ? beamalloc_gpa_allocator(busy_gpa)
	    : beamalloc_general_purpose();
	unsigned seed = (unsigned)(uintptr_t)&a;
	void *p[64] = { 0 };
	size_t len[64] = { 0 };
	void *mine = NULL;

	if (arg != NULL) {
		mine = beamalloc_alloc(a, 48);
		atomic_store(&pub[(intptr_t)arg - 1], mine);
		atomic_fetch_add(&npub, 1);
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t i = (size_t)rand_r(&seed) % 64;

		if (p[i] != NULL) {
			beamalloc_free(a, p[i], len[i]);
			p[i] = NULL;
			continue;
		}
		len[i] = rand_r(&seed) % 8 == 0 ?
		    16385 + (size_t)rand_r(&seed) % 100000 :
		    1 + (size_t)rand_r(&seed) % 16000;
		p[i] = beamalloc_alloc(a, len[i]);
		if (rand_r(&seed) % 512 == 0)
			(void)beamalloc_gpa_trim(arg != NULL ? busy_gpa :
			    beamalloc_gpa_global());
	}
	for (size_t i = 0; i < 64; i++)
		if (p[i] != NULL)
			beamalloc_free(a, p[i], len[i]);
	if (mine != NULL)
		beamalloc_free(a, mine, 48);
	return NULL;
}

static int
busy_child(void *arg)
{
	int rc;

	(void)arg;
	alarm(CHILD_ALARM);
	for (int i = 0; i < NTHR; i++)
		if (pub[i] != NULL)
			beamalloc_free(beamalloc_gpa_allocator(busy_gpa), pub[i],
			    48);
	if ((rc = use(busy_gpa, SIZE_MAX)) != 0)
		return rc;
	return use(beamalloc_gpa_global(), SIZE_MAX);
}

static void
test_busy(void)
{
	beamalloc_gpa_config cfg;
	pthread_t t[NTHR];
	int hung = 0, failed = 0, st;
	char how[32];

	beamalloc_gpa_config_init(&cfg);
	cfg.decay_ms = 1;
	busy_gpa = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	if (busy_gpa == NULL)
		bail("beamalloc_gpa_create");
	for (int i = 0; i < NTHR; i++)
		if (pthread_create(&t[i], NULL, churn,
		    i % 2 == 0 ? (void *)(intptr_t)(i + 1) : NULL) != 0)
			bail("pthread_create");
	while (atomic_load(&npub) < (NTHR + 1) / 2)
		sleep_ms(1);
	for (int k = 0; k < NFORK; k++) {
		sleep_ms(2);
		st = child_run(busy_child, NULL, 0, NULL, 0);
		if (child_killed(st, SIGALRM))
			hung++;
		else if (!child_exited(st, 0)) {
			failed++;
			diag("child %d: %s", k, child_how(st, how));
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	is_int(hung, 0, "%d forks while 3 threads allocate (the global GPA, "
	    "one with decay): no child hangs", NFORK);
	is_int(failed, 0, "and every child's calls succeed");
	is_size(beamalloc_gpa_destroy(busy_gpa), 0, "the parent's GPA: no leak");
}

/* ---- a report callback of the decay thread forks ---------------------- */

/* Written by the process the decay thread reported in (the test's
 * child): the callback's fork returned there, and its child exited 0. */
static _Atomic int *cb_done;
static beamalloc_gpa *cb_gpa;

static void
forking_report(void *user, const beamalloc_report *r)
{
	pid_t pid;
	int st;

	(void)user;
	if (r->kind != BEAMALLOC_REPORT_WRITE_AFTER_FREE ||
	    atomic_load(cb_done) != 0)
		return;
	if ((pid = fork()) == 0) {
		void *p = beamalloc_alloc(beamalloc_gpa_allocator(cb_gpa), 100);

		beamalloc_free(beamalloc_gpa_allocator(cb_gpa), p, 100);
		_exit(p != NULL ? 0 : 1);
	}
	atomic_store(cb_done, pid > 0 && waitpid(pid, &st, 0) == pid &&
	    child_exited(st, 0) ? 1 : 2);
}

/* A block written after its free waits in quarantine for the decay's
 * trim, whose check reports it from the decay thread. */
static int
decay_fork_child(void *arg)
{
	beamalloc_gpa_config cfg;
	unsigned char *p;

	(void)arg;
	alarm(CHILD_ALARM);
	beamalloc_gpa_config_init(&cfg);
	cfg.quarantine = 1 << 20;
	cfg.decay_ms = 1;
	cfg.report = forking_report;
	if ((cb_gpa = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		return 2;
	p = beamalloc_alloc(beamalloc_gpa_allocator(cb_gpa), 100);
	if (p == NULL)
		return 2;
	beamalloc_free(beamalloc_gpa_allocator(cb_gpa), p, 100);
	plant(p + 10, 1, 0x5a);
	while (atomic_load(cb_done) == 0)
		sleep_ms(10);
	return atomic_load(cb_done) == 1 ? 0 : 3;
}

static void
test_decay_report_fork(void)
{
	char how[32];
	int st;

	cb_done = child_shared(sizeof(*cb_done));
	st = child_run(decay_fork_child, NULL, 0, NULL, 0);
	if (!ok(child_exited(st, 0), "a report callback on the decay thread "
	    "forks: the fork returns, and its child allocates and frees"))
		diag("child: %s", child_how(st, how));
}

/* ---- forks while threads make over-aligned blocks of beamalloc_wide() -- */

static void *
wide_churn(void *arg)
{
	beamalloc_allocator a = beamalloc_wide();
	void *p[8];

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (size_t i = 0; i < 8; i++)
			p[i] = beamalloc_alloc_aligned(a, 100 + i, 64);
		for (size_t i = 0; i < 8; i++)
			beamalloc_free_aligned(a, p[i], 100 + i, 64);
	}
	return NULL;
}

static int
wide_child(void *arg)
{
	beamalloc_allocator a = beamalloc_wide();
	void *p;

	(void)arg;
	alarm(CHILD_ALARM);
	if ((p = beamalloc_alloc_aligned(a, 1000, 64)) == NULL)
		return 2;
	beamalloc_free_aligned(a, p, 1000, 64);
	return 0;
}

static void
test_wide(void)
{
	pthread_t t[2];
	int hung = 0, failed = 0, st;
	char how[32];

	atomic_store(&stop, false);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, wide_churn, NULL) != 0)
			bail("pthread_create");
	for (int k = 0; k < NFORK * 5; k++) {
		sleep_ms(1);
		st = child_run(wide_child, NULL, 0, NULL, 0);
		if (child_killed(st, SIGALRM))
			hung++;
		else if (!child_exited(st, 0)) {
			failed++;
			diag("child %d: %s", k, child_how(st, how));
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	is_int(hung + failed, 0, "%d forks while 2 threads make blocks of "
	    "beamalloc_wide() at alignment 64: every child makes one",
	    NFORK * 5);
}

/* ---- a fork while another thread is in a leak check --------------------- */

static beamalloc_gpa *scan_gpa;
static atomic_bool scan_in, scan_go;

/* The checking thread stays inside its check until the fork is done. */
static void
waiting_report(void *user, const beamalloc_report *r)
{
	(void)user;
	(void)r;
	atomic_store(&scan_in, true);
	while (!atomic_load(&scan_go))
		sleep_ms(1);
}

static void *
scan_main(void *arg)
{
	(void)arg;
	(void)beamalloc_gpa_detect_leaks(scan_gpa);
	return NULL;
}

/* 4 MB of small blocks made and freed, then a trim: the slabs go back
 * (the check that kept them walks in the parent only). */
static int
scan_child(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(scan_gpa);
	beamalloc_gpa_stats full, trimmed;
	static void *p[20000];

	(void)arg;
	alarm(CHILD_ALARM);
	for (size_t i = 0; i < 20000; i++)
		if ((p[i] = beamalloc_alloc(a, 200)) == NULL)
			return 2;
	beamalloc_gpa_get_stats(scan_gpa, &full);
	for (size_t i = 0; i < 20000; i++)
		beamalloc_free(a, p[i], 200);
	(void)beamalloc_gpa_trim(scan_gpa);
	beamalloc_gpa_get_stats(scan_gpa, &trimmed);
	return trimmed.backing_bytes < full.backing_bytes / 2 ? 0 : 3;
}

static void
test_scan(void)
{
	beamalloc_gpa_config cfg;
	pthread_t t;
	void *leak;
	char how[32];
	int st;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = waiting_report;
	if ((scan_gpa = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL ||
	    (leak = beamalloc_alloc(beamalloc_gpa_allocator(scan_gpa), 10)) ==
	    NULL)
		bail("beamalloc_gpa_create");
	if (pthread_create(&t, NULL, scan_main, NULL) != 0)
		bail("pthread_create");
	while (!atomic_load(&scan_in))
		sleep_ms(1);
	st = child_run(scan_child, NULL, 0, NULL, 0);
	atomic_store(&scan_go, true);
	pthread_join(t, NULL);
	if (!ok(child_exited(st, 0), "a fork while another thread is in a "
	    "leak check: the child's trim gives its empty slabs back"))
		diag("child: %s", child_how(st, how));
	beamalloc_free(beamalloc_gpa_allocator(scan_gpa), leak, 10);
	is_size(beamalloc_gpa_destroy(scan_gpa), 0, "the parent's GPA: no leak");
}

/* ---- forks while a thread symbolizes, as a report does ----------------- */

static void *
sym_churn(void *arg)
{
	beamalloc_symbol s;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		(void)beamalloc_symbolize((uintptr_t)&sym_churn + 1, &s);
	return NULL;
}

static int
sym_child(void *arg)
{
	beamalloc_symbol s;

	(void)arg;
	alarm(CHILD_ALARM);
	(void)beamalloc_symbolize((uintptr_t)&sym_child + 1, &s);
	return 0;
}

static void
test_symbolize(void)
{
	pthread_t t;
	int hung = 0, st;
	char how[32];

	atomic_store(&stop, false);
	if (pthread_create(&t, NULL, sym_churn, NULL) != 0)
		bail("pthread_create");
	for (int k = 0; k < NFORK; k++) {
		sleep_ms(2);
		st = child_run(sym_child, NULL, 0, NULL, 0);
		if (!child_exited(st, 0)) {
			hung++;
			diag("child %d: %s", k, child_how(st, how));
		}
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	is_int(hung, 0, "%d forks while a thread symbolizes: every child's "
	    "beamalloc_symbolize() returns", NFORK);
}

int
main(void)
{
	plan(10);
	if (UNDER_VALGRIND())
		skip(2, MEMCHECK_FORK);
	else
		test_held();
	/* The block is written after its free while the decay thread may
	 * check it: a race by design, which TSan reports. */
	if (UNDER_TSAN)
		skip(1, "a write after free on purpose; TSan and a fork in a "
		    "child of fork");
	else if (UNDER_VALGRIND())
		skip(1, MEMCHECK_FORK);
	else
		test_decay_report_fork();
	if (UNDER_VALGRIND())
		skip(2, MEMCHECK_FORK);
	else
		test_scan();
	/* ASan's malloc (GCC 12's runtime) takes no lock around fork(): a
	 * child forked while another thread was inside it hung there. */
	if (UNDER_VALGRIND())
		skip(5, MEMCHECK_FORK);
	else if (UNDER_ASAN)
		skip(5, "ASan's malloc is not fork-safe with threads");
	else if (UNDER_TSAN)
		/* Its deadlock detector holds 64 locks a thread at most; the
		 * fork takes 40 a thread cache. */
		skip(5, "TSan's deadlock detector: 64 locks held at most");
	else {
		test_busy();
		test_wide();
		test_symbolize();
	}
	return done_testing();
}
