/*
 * gpa_threads.c - one thread-safe GPA hammered by several threads: blocks
 * freed by the thread that made them and by the other one, none lost or
 * handed out twice, leaks counted exactly while the threads are parked;
 * and more threads at once than the GPA has thread caches; a report made
 * on a thread past the caches, whose callback allocates from the GPA.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "plant.h"
#include "tap.h"

#define WINDOW 400		/* live blocks per thread */
#define ROUNDS 200000
#define QUEUE 256		/* blocks handed to the other thread */

struct block {
	unsigned char *p;
	size_t len;
	uint32_t tag;
};

static beamalloc_allocator A;
static beamalloc_gpa *G;
static atomic_size_t reports;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	atomic_fetch_add(&reports, 1);
}

/* A fresh thread-safe GPA over libc as G and A, its reports counted. */
static void
start_gpa_cfg(beamalloc_gpa_config *cfg)
{
	cfg->report = count_report;
	G = beamalloc_gpa_create(beamalloc_libc(), cfg);
	A = beamalloc_gpa_allocator(G);
	atomic_store(&reports, 0);
}

static void
start_gpa(bool safety)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	start_gpa_cfg(&cfg);
}

/* The block's tag in every byte, its address in the first word. */
static void
stamp(struct block *b)
{
	memset(b->p, (int)(b->tag & 0xff), b->len);
	if (b->len >= sizeof(uintptr_t))
		memcpy(b->p, &b->p, sizeof(uintptr_t));
}

static int
stamped(const struct block *b)
{
	size_t from = 0;

	if (b->len >= sizeof(uintptr_t)) {
		uintptr_t self;

		memcpy(&self, b->p, sizeof(self));
		if (self != (uintptr_t)b->p)
			return 0;
		from = sizeof(uintptr_t);
	}
	for (size_t i = from; i < b->len; i++)
		if (b->p[i] != (unsigned char)(b->tag & 0xff))
			return 0;
	return 1;
}

/* A queue of blocks one thread allocates and the other frees. */
static struct {
	pthread_mutex_t lock;
	struct block b[QUEUE];
	size_t n;
} queue = { PTHREAD_MUTEX_INITIALIZER, { { 0 } }, 0 };

static pthread_barrier_t park, resume;

struct worker {
	int id;
	struct block live[WINDOW];
	size_t bad, failed;
	size_t handed, taken;
};

static struct worker workers[2];

static uint32_t
next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void
release(struct worker *w, struct block *b)
{
	if (!stamped(b))
		w->bad++;
	beamalloc_free(A, b->p, b->len);
	b->p = NULL;
}

static void *
hammer(void *arg)
{
	struct worker *w = arg;
	uint32_t x = 2463534242u + (uint32_t)w->id * 7919;

	for (int r = 0; r < ROUNDS; r++) {
		uint32_t v = next(&x);
		struct block *b = &w->live[v % WINDOW];

		if (r == ROUNDS / 2) {
			pthread_barrier_wait(&park);	/* main counts */
			pthread_barrier_wait(&resume);
		}
		if (b->p != NULL) {
			/* Now and then the other thread frees it. */
			if ((v >> 20) % 8 == 0) {
				pthread_mutex_lock(&queue.lock);
				if (queue.n < QUEUE) {
					queue.b[queue.n++] = *b;
					b->p = NULL;
					w->handed++;
				}
				pthread_mutex_unlock(&queue.lock);
			}
			if (b->p != NULL)
				release(w, b);
		} else {
			b->len = 1 + (v >> 8) % ((v >> 30) ? 2048 : 40000);
			b->tag = v;
			b->p = beamalloc_alloc(A, b->len);
			if (b->p == NULL) {
				w->failed++;
				continue;
			}
			stamp(b);
		}
		/* Free what the other thread handed over. */
		if ((v & 15) == 0) {
			struct block got = { NULL, 0, 0 };

			pthread_mutex_lock(&queue.lock);
			if (queue.n > 0)
				got = queue.b[--queue.n];
			pthread_mutex_unlock(&queue.lock);
			if (got.p != NULL) {
				release(w, &got);
				w->taken++;
			}
		}
	}
	for (int i = 0; i < WINDOW; i++)
		if (w->live[i].p != NULL)
			release(w, &w->live[i]);
	return NULL;
}

static int
by_addr(const void *a, const void *b)
{
	const struct block *x = a, *y = b;

	return x->p < y->p ? -1 : x->p > y->p;
}

/* Every live block, sorted: none may overlap the next. */
static size_t
overlaps(size_t *nlive)
{
	static struct block all[2 * WINDOW + QUEUE];
	size_t n = 0, bad = 0;

	for (int t = 0; t < 2; t++)
		for (int i = 0; i < WINDOW; i++)
			if (workers[t].live[i].p != NULL)
				all[n++] = workers[t].live[i];
	for (size_t i = 0; i < queue.n; i++)
		all[n++] = queue.b[i];
	qsort(all, n, sizeof(all[0]), by_addr);
	for (size_t i = 1; i < n; i++)
		if (all[i - 1].p + all[i - 1].len > all[i].p)
			bad++;
	*nlive = n;
	return bad;
}

static void
two_threads(bool safety)
{
	const char *m = safety ? "safety on" : "safety off";
	pthread_t th[2];
	size_t nlive, leaks, bad, failed = 0, handed = 0, taken = 0;
	beamalloc_gpa_stats st;

	start_gpa(safety);
	memset(workers, 0, sizeof(workers));
	queue.n = 0;
	pthread_barrier_init(&park, NULL, 3);
	pthread_barrier_init(&resume, NULL, 3);
	for (int t = 0; t < 2; t++) {
		workers[t].id = t;
		pthread_create(&th[t], NULL, hammer, &workers[t]);
	}
	pthread_barrier_wait(&park);
	bad = overlaps(&nlive);
	leaks = beamalloc_gpa_detect_leaks(G);
	beamalloc_gpa_get_stats(G, &st);
	pthread_barrier_wait(&resume);
	for (int t = 0; t < 2; t++) {
		pthread_join(th[t], NULL);
		failed += workers[t].failed;
		handed += workers[t].handed;
		taken += workers[t].taken;
	}
	is_size(bad, 0, "%s: no two live blocks overlap (%zu live)", m,
	    nlive);
	is_size(leaks, nlive, "%s: mid-run leak count = live blocks", m);
	is_size(st.live_blocks, nlive, "%s: stats agree", m);
	is_size(atomic_load(&reports), nlive,
	    "%s: one report per live block, nothing else", m);
	ok(workers[0].bad + workers[1].bad == 0 && failed == 0,
	    "%s: every block intact when freed, no allocation failed", m);
	ok(handed > 1000 && taken > 1000,
	    "%s: blocks freed by the other thread (%zu)", m, taken);
	/* the queue's rest */
	for (size_t i = 0; i < queue.n; i++)
		beamalloc_free(A, queue.b[i].p, queue.b[i].len);
	queue.n = 0;
	atomic_store(&reports, 0);
	is_size(beamalloc_gpa_detect_leaks(G), 0, "%s: no leak at the end", m);
	beamalloc_gpa_get_stats(G, &st);
	ok(st.live_bytes == 0 && st.live_blocks == 0,
	    "%s: stats back to 0 (%zu bytes, %zu blocks)", m, st.live_bytes,
	    st.live_blocks);
	is_size(atomic_load(&reports), 0, "%s: no report at all", m);
	beamalloc_gpa_destroy(G);
	pthread_barrier_destroy(&park);
	pthread_barrier_destroy(&resume);
}

/* More threads alive at once than the GPA has thread caches. */
#define CROWD 80
#define KEEP 10

static pthread_barrier_t crowd_in, crowd_out;
static atomic_size_t crowd_bad;

static void *
crowd_member(void *arg)
{
	void *keep[KEEP];
	uint32_t x = 88172645u + (uint32_t)(uintptr_t)arg;

	for (int i = 0; i < 2000; i++) {
		size_t len = 1 + next(&x) % 3000;
		unsigned char *p = beamalloc_alloc(A, len);

		if (p == NULL) {
			atomic_fetch_add(&crowd_bad, 1);
			continue;
		}
		p[0] = p[len - 1] = 1;
		beamalloc_free(A, p, len);
	}
	for (int i = 0; i < KEEP; i++)
		keep[i] = beamalloc_alloc(A, 100 + (size_t)i);
	pthread_barrier_wait(&crowd_in);
	pthread_barrier_wait(&crowd_out);
	for (int i = 0; i < KEEP; i++)
		beamalloc_free(A, keep[i], 100 + (size_t)i);
	return NULL;
}

static void
crowd(void)
{
	pthread_t th[CROWD];
	size_t leaks;

	start_gpa(true);
	pthread_barrier_init(&crowd_in, NULL, CROWD + 1);
	pthread_barrier_init(&crowd_out, NULL, CROWD + 1);
	for (int t = 0; t < CROWD; t++)
		pthread_create(&th[t], NULL, crowd_member,
		    (void *)(uintptr_t)t);
	pthread_barrier_wait(&crowd_in);
	leaks = beamalloc_gpa_detect_leaks(G);
	pthread_barrier_wait(&crowd_out);
	for (int t = 0; t < CROWD; t++)
		pthread_join(th[t], NULL);
	is_size(atomic_load(&crowd_bad), 0, "%d threads: no failure", CROWD);
	is_size(leaks, CROWD * KEEP, "%d threads: exact leak count", CROWD);
	atomic_store(&reports, 0);
	is_size(beamalloc_gpa_destroy(G), 0, "%d threads: none at the end",
	    CROWD);
	is_size(atomic_load(&reports), 0, "%d threads: no report", CROWD);
	pthread_barrier_destroy(&crowd_in);
	pthread_barrier_destroy(&crowd_out);
}

/* Past the GPA's 256 thread caches, threads share one under a lock.  A
 * write after free found there (as its slot is handed out again, or as
 * the block leaves the quarantine) is reported with that lock held, and
 * the report callback may allocate from the same GPA: small and large
 * blocks, here.  In a child, so that a deadlock is an alarm, not a hung
 * suite. */
#define PAST 264		/* threads alive: more than the caches */

static pthread_barrier_t past_in, past_out;
static atomic_size_t past_waf, past_cb_bad;

static void
alloc_in_report(void *user, const beamalloc_report *r)
{
	void *p = beamalloc_alloc(A, 72), *q = beamalloc_alloc(A, 300000);

	(void)user;
	if (r->kind == BEAMALLOC_REPORT_WRITE_AFTER_FREE)
		atomic_fetch_add(&past_waf, 1);
	if (p == NULL || q == NULL)
		atomic_fetch_add(&past_cb_bad, 1);
	beamalloc_free(A, p, 72);
	beamalloc_free(A, q, 300000);
}

static void *
past_holder(void *arg)
{
	void *p = beamalloc_alloc(A, 32);

	(void)arg;
	pthread_barrier_wait(&past_in);
	pthread_barrier_wait(&past_out);
	beamalloc_free(A, p, 32);
	return NULL;
}

/* The thread past the caches: a 64 B block written after its free, then
 * the slot handed out again (no quarantine) or 300 more blocks freed
 * (the quarantine lets it go). */
static void *
past_culprit(void *arg)
{
	bool quarantine = arg != NULL;
	unsigned char *p = beamalloc_alloc(A, 64), *q;

	beamalloc_free(A, p, 64);
	plant(p + 5, 1, 0x5a);		/* unseen by ASan and valgrind */
	for (int i = 0; i < (quarantine ? 300 : 1); i++) {
		q = beamalloc_alloc(A, 64);
		beamalloc_free(A, q, 64);
	}
	return NULL;
}

static int
past_run(void *arg)
{
	bool quarantine = *(const bool *)arg;
	beamalloc_gpa_config cfg;
	pthread_t th[PAST], c;

	alarm(120);
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = true;
	cfg.junk = true;
	cfg.canary = false;
	cfg.guard_sample = 0;
	cfg.quarantine = quarantine ? 4096 : 0;
	cfg.report = alloc_in_report;
	if ((G = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		return 3;
	A = beamalloc_gpa_allocator(G);
	pthread_barrier_init(&past_in, NULL, PAST + 1);
	pthread_barrier_init(&past_out, NULL, PAST + 1);
	for (int t = 0; t < PAST; t++)
		if (pthread_create(&th[t], NULL, past_holder, NULL) != 0)
			return 4;
	pthread_barrier_wait(&past_in);
	if (pthread_create(&c, NULL, past_culprit,
	    quarantine ? (void *)&cfg : NULL) != 0)
		return 4;
	pthread_join(c, NULL);
	pthread_barrier_wait(&past_out);
	for (int t = 0; t < PAST; t++)
		pthread_join(th[t], NULL);
	if (beamalloc_gpa_destroy(G) != 0)
		return 5;
	return atomic_load(&past_waf) == 1 && atomic_load(&past_cb_bad) == 0 ?
	    0 : 6;
}

static void
report_past_caches(bool quarantine)
{
	const char *what = quarantine ? "at the quarantine's end" :
	    "as its slot is handed out";
	int st = child_run(past_run, &quarantine, 0, NULL, 0);
	char how[32];

	if (!ok(child_exited(st, 0), "%d threads: a write after free %s, on "
	    "a thread past the caches, reported once to a callback that "
	    "allocates from the GPA", PAST, what))
		diag("  child: %s (14: alarm, a deadlock; 6: reports)",
		    child_how(st, how));
}

/* Short-lived threads one after another: each finds a cache. */
static void *
brief_life(void *arg)
{
	void *p = beamalloc_alloc(A, 64);

	(void)arg;
	if (p != NULL)
		beamalloc_free(A, p, 64);
	return p;
}

static void
succession(void)
{
	size_t got = 0;

	start_gpa(true);
	for (int i = 0; i < 300; i++) {
		pthread_t th;
		void *r;

		pthread_create(&th, NULL, brief_life, NULL);
		pthread_join(th, &r);
		got += r != NULL;
	}
	is_size(got, 300, "300 short-lived threads served");
	is_size(beamalloc_gpa_destroy(G) + atomic_load(&reports), 0,
	    "no leak, no report");
}

/* Stats read while another thread allocates and frees: small blocks are
 * counted by the magazines (mark - top per class, folded when one is
 * loaded).  A read takes the classes one after another, so while the
 * thread churns it may count a block that moved between classes twice,
 * but never more than twice: a torn read of a magazine exchange (mark
 * and top from different magazines) would be far outside.  Once the
 * thread stops the count is exact. */
#define CHURN_MAX 3000
#define CHURN_KEEP 100
static atomic_int churn_stop, churn_started;

static void *
churn(void *arg)
{
	static void *held[CHURN_MAX];
	size_t n = 0, bad = 0;
	uint32_t x = 7;

	(void)arg;
	for (; n < CHURN_KEEP; n++)
		if ((held[n] = beamalloc_alloc(A, 64)) == NULL)
			bad++;
		else
			((size_t *)held[n])[0] = 64;
	atomic_store(&churn_started, 1);
	while (!atomic_load(&churn_stop)) {
		x = x * 1103515245u + 12345u;
		size_t len = 8u << (x >> 28 & 7);	/* 8 B .. 1 KiB */

		/* Up three times in five: the count sweeps the window. */
		if (n < CHURN_MAX && (n == CHURN_KEEP || (x >> 16) % 5 < 3)) {
			if ((held[n] = beamalloc_alloc(A, len)) == NULL)
				bad++;
			else
				((size_t *)held[n++])[0] = len;
		} else if (n > CHURN_KEEP) {
			n--;
			beamalloc_free(A, held[n], ((size_t *)held[n])[0]);
		}
	}
	while (n > CHURN_KEEP) {
		n--;
		beamalloc_free(A, held[n], ((size_t *)held[n])[0]);
	}
	return (void *)(uintptr_t)(bad == 0 ? n : 0);
}

/* Class stats as the churn sees them: no class holds more requested
 * bytes than its slots (the walk over the records may see a block freed
 * behind it and one made ahead, so the number of blocks has no bound
 * during the churn).  With safety on they read the records' lengths
 * that each allocation writes: a ThreadSanitizer build checks that
 * those accesses are atomic. */
static bool
class_stats_sane(size_t *blocks, size_t *blocks64, size_t *bytes64)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS], lg;
	size_t n = beamalloc_gpa_get_class_stats(G, cls,
	    BEAMALLOC_GPA_NCLASS, &lg);
	bool sane = n == BEAMALLOC_GPA_NCLASS;

	*blocks = lg.live_blocks;
	*blocks64 = *bytes64 = 0;
	for (size_t c = 0; c < n; c++) {
		*blocks += cls[c].live_blocks;
		sane = sane && cls[c].live_bytes <= cls[c].live_blocks *
		    cls[c].size;
		if (cls[c].size == 64) {
			*blocks64 = cls[c].live_blocks;
			*bytes64 = cls[c].live_bytes;
		}
	}
	return sane;
}

static void
stats_while_busy(bool safety)
{
	beamalloc_gpa_stats st;
	size_t outside = 0, insane = 0, reads = 0, max = 0, n, n64, b64;
	const char *how = safety ? "safety on" : "safety off";
	beamalloc_gpa_config cfg;
	pthread_t th;
	void *left;

	/* A 64 B block in the 64 B class, none in a guarded slot (which no
	 * class counts), whatever BEAMALLOC_GPA_OPTIONS says. */
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.canary = cfg.junk = false;
	cfg.quarantine = 0;
	cfg.guard_sample = 0;
	start_gpa_cfg(&cfg);
	atomic_store(&churn_stop, 0);
	atomic_store(&churn_started, 0);
	pthread_create(&th, NULL, churn, NULL);
	while (!atomic_load(&churn_started))
		sched_yield();
	for (; reads < 20000 || max < CHURN_MAX / 2; reads++) {
		beamalloc_gpa_get_stats(G, &st);
		if (st.live_blocks > 2 * CHURN_MAX)
			outside++;
		if (st.live_blocks > max)
			max = st.live_blocks;
		if (reads % 16 == 0 && !class_stats_sane(&n, &n64, &b64))
			insane++;
	}
	atomic_store(&churn_stop, 1);
	pthread_join(th, &left);
	is_size(outside, 0, "stats during churn, %s: %zu reads, every count "
	    "at most 2 x %d (max seen %zu)", how, reads, CHURN_MAX, max);
	is_size(insane, 0, "class stats during churn, %s: bytes within the "
	    "slots, %zu reads", how, reads / 16 + 1);
	beamalloc_gpa_get_stats(G, &st);
	ok((size_t)(uintptr_t)left == CHURN_KEEP &&
	    st.live_blocks == CHURN_KEEP && st.live_bytes == CHURN_KEEP * 64,
	    "stats after churn, %s: exact (%zu blocks, %zu bytes live)",
	    how, st.live_blocks, st.live_bytes);
	insane = !class_stats_sane(&n, &n64, &b64);
	ok(!insane && n == CHURN_KEEP &&
	    n64 == CHURN_KEEP && b64 == CHURN_KEEP * 64, "class stats after "
	    "churn, %s: exact (%zu blocks, %zu of 64 B, %zu bytes)", how, n,
	    n64, b64);
	is_size(beamalloc_gpa_destroy(G), CHURN_KEEP,
	    "the blocks kept are the leaks (%s)", how);
}

int
main(void)
{
	two_threads(false);
	two_threads(true);
	crowd();
	report_past_caches(false);
	report_past_caches(true);
	succession();
	stats_while_busy(false);
	stats_while_busy(true);
	return done_testing();
}
