/*
 * lease.c - GPAs lent out for one leak-checked call and taken back.
 *
 * A leak-checked NIF call (BEAMALLOC_NIF_LEAK_CHECKED) needs an empty GPA
 * of its own and, afterwards, the proof that nothing in it is still live.
 * Creating and destroying one per call costs more than a microsecond (the
 * struct, its locks, a thread cache, a first slab from the VM, the leak
 * walk), which a NIF that runs in a few hundred nanoseconds notices.  So
 * a GPA that comes back with no live block and no report is kept, empty,
 * for the next checkout with the same backing and configuration.  The
 * proof is the GPA's exact block count (exact when no other thread is
 * inside it, as after the call); a leak or a report sends the GPA to
 * beamalloc_gpa_destroy(), which names every leak as before.
 *
 * Reports must reach the caller of each checkout (a NIF collects them on
 * its stack), so a kept GPA reports through its entry here, which holds
 * the current caller's callback.  Kept GPAs decay like any other (their
 * slabs go back to the VM while idle) and are destroyed when the library
 * is unloaded.  A GPA whose freed blocks are checked later is never
 * kept: with a quarantine (checked as they leave it, by a trim on the
 * decay thread among others), with junk or guarded sampling (checked
 * when their slots are handed out again): a finding must not reach the
 * next holder (or a holder's stack from another thread).  Junk was
 * found by a review: one holder's write after free was reported to the
 * next.  A kept GPA's peak restarts, as a new one's would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "gpa.h"

/* Enough for every scheduler and dirty scheduler of a large node to be
 * in a leak-checked call at once; beyond, GPAs are made and destroyed. */
#define LEASE_MAX 128

struct lease {
	struct beamalloc_gpa *gpa;	/* NULL: a free entry */
	bool out;			/* checked out now */
	beamalloc_allocator backing;
	beamalloc_gpa_config key;	/* the config, report fields cleared */
	/* The current holder's report callback, and what it saw. */
	beamalloc_report_fn report;
	void *report_user;
	size_t reports;
};

static struct {
	pthread_mutex_t lock;
	struct lease e[LEASE_MAX];
} ls = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------------------
 * Reports go to the current holder
 * ---------------------------------------------------------------------- */

static void
lease_report(void *user, const beamalloc_report *r)
{
	struct lease *e = user;

	/* Atomic: the holder's threads may report at once. */
	__atomic_add_fetch(&e->reports, 1, __ATOMIC_RELAXED);
	if (e->report != NULL)
		e->report(e->report_user, r);
	else
		beamalloc_report_print(stderr, r);
}

/* ------------------------------------------------------------------------
 * Finding an entry; under ls.lock
 * ---------------------------------------------------------------------- */

static bool
same_backing(beamalloc_allocator a, beamalloc_allocator b)
{
	return a.ctx == b.ctx && a.vtable == b.vtable;
}

static struct lease *
lease_idle(beamalloc_allocator backing, const beamalloc_gpa_config *key)
{
	for (size_t i = 0; i < LEASE_MAX; i++) {
		struct lease *e = &ls.e[i];

		if (e->gpa != NULL && !e->out &&
		    same_backing(e->backing, backing) &&
		    memcmp(&e->key, key, sizeof(*key)) == 0)
			return e;
	}
	return NULL;
}

static struct lease *
lease_free_entry(void)
{
	for (size_t i = 0; i < LEASE_MAX; i++)
		if (ls.e[i].gpa == NULL && !ls.e[i].out)
			return &ls.e[i];
	return NULL;
}

/* g's entry, checked out or kept idle. */
static struct lease *
lease_of(const beamalloc_gpa *g)
{
	for (size_t i = 0; i < LEASE_MAX; i++)
		if (ls.e[i].gpa == g)
			return &ls.e[i];
	return NULL;
}

/* A child of fork() may use the table whatever the parent's threads were
 * doing with it. */
static void lease_lock(void) { pthread_mutex_lock(&ls.lock); }
static void lease_unlock(void) { pthread_mutex_unlock(&ls.lock); }

static void
lease_init(void)
{
	(void)pthread_atfork(lease_lock, lease_unlock, lease_unlock);
}

/* The library is being unloaded (or the process ends): idle GPAs give
 * their memory back to the VM before their code goes away.  Called by
 * the library's destructor (global.c), before the global GPA's turn. */
void
ba_gpa_lease_fini(void)
{
	pthread_mutex_lock(&ls.lock);
	for (size_t i = 0; i < LEASE_MAX; i++) {
		struct lease *e = &ls.e[i];

		if (e->gpa != NULL && !e->out) {
			(void)beamalloc_gpa_destroy(e->gpa);
			e->gpa = NULL;
		}
	}
	pthread_mutex_unlock(&ls.lock);
}

/* ------------------------------------------------------------------------
 * Checkout and checkin
 * ---------------------------------------------------------------------- */

beamalloc_gpa *
beamalloc_gpa_checkout(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	beamalloc_gpa_config key, made;
	struct lease *e;
	beamalloc_gpa *g;

	if (backing.vtable == NULL || !ba_gpa_config_ok(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&once, lease_init);
	ba_gpa_config_read(&key, cfg);
	made = key;
	if (key.quarantine != 0 || key.junk || key.guard_sample != 0)
		return beamalloc_gpa_create(backing, &made);
	key.report = NULL;
	key.report_user = NULL;
	pthread_mutex_lock(&ls.lock);
	e = lease_idle(backing, &key);
	if (e == NULL && (e = lease_free_entry()) != NULL) {
		e->backing = backing;
		e->key = key;
	}
	if (e != NULL)
		e->out = true;
	pthread_mutex_unlock(&ls.lock);
	if (e == NULL)			/* every entry lent out */
		return beamalloc_gpa_create(backing, &made);
	/* Ours alone until checked in. */
	e->report = made.report;
	e->report_user = made.report_user;
	__atomic_store_n(&e->reports, 0, __ATOMIC_RELAXED);
	if (e->gpa != NULL)
		return e->gpa;
	made.report = lease_report;
	made.report_user = e;
	g = beamalloc_gpa_create(backing, &made);
	pthread_mutex_lock(&ls.lock);
	e->gpa = g;
	e->out = g != NULL;
	pthread_mutex_unlock(&ls.lock);
	return g;
}

size_t
beamalloc_gpa_checkin(beamalloc_gpa *g)
{
	beamalloc_gpa_stats st;
	struct lease *e;
	size_t leaks;
	bool twice;

	if (g == NULL)
		return 0;
	pthread_mutex_lock(&ls.lock);
	e = lease_of(g);
	twice = e != NULL && !e->out;
	pthread_mutex_unlock(&ls.lock);
	if (twice) {
		/* Checked in twice: g is kept for the next holder, whom a
		 * destroy now would hand a freed GPA. */
		ba_report_call(BEAMALLOC_REPORT_DOUBLE_FREE, g, 0, 0, 0, 0,
		    BA_RET_ADDR());
		errno = EINVAL;
		return 0;
	}
	if (e == NULL)			/* made past a full table */
		return beamalloc_gpa_destroy(g);
	beamalloc_gpa_get_stats(g, &st);
	if (st.live_blocks == 0 &&
	    __atomic_load_n(&e->reports, __ATOMIC_RELAXED) == 0) {
		/* The peak restarts, as beamalloc_gpa_reset_peak() would
		 * have it, without its two more reads of the stats (they
		 * doubled a checkout's and checkin's cost): st is exact, no
		 * other thread being inside.  Other threads' caches keep
		 * marks of the holder's too. */
		ba_gpa_settle_all(g);
		atomic_store_explicit(&g->peak, st.live_bytes,
		    memory_order_relaxed);
		e->report = NULL;	/* the holder's frame is going */
		pthread_mutex_lock(&ls.lock);
		e->out = false;
		pthread_mutex_unlock(&ls.lock);
		return 0;
	}
	/* Reported to this holder, by the walk that names each leak.  The
	 * entry lets go of g before g is freed, but stays out (neither
	 * idle nor free) until the walk has reported through it: a GPA
	 * made meanwhile may have g's address, and an entry still naming
	 * a freed g would be taken for that one's by lease_of() (found by
	 * a review: two holders then shared a GPA, reports went to a
	 * holder's frame that was gone, and the VM crashed). */
	pthread_mutex_lock(&ls.lock);
	e->gpa = NULL;
	pthread_mutex_unlock(&ls.lock);
	leaks = beamalloc_gpa_destroy(g);
	pthread_mutex_lock(&ls.lock);
	e->out = false;
	pthread_mutex_unlock(&ls.lock);
	return leaks;
}
