/*
 * leak.c - leak detection and trimming: the leak report, stealing idle
 * threads' caches (membarrier) and beamalloc_gpa_trim().
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* ------------------------------------------------------------------------
 * Leak detection
 * ---------------------------------------------------------------------- */

/* A leak check copies out every live block before it reports any: a
 * report callback may allocate from this GPA (and free), and neither
 * its blocks nor a large-block table it makes grow may change what one
 * check reports.  The copies come from the backing, never from this
 * GPA; without memory for them the walks report as they go. */
struct leak_snap {
	uintptr_t *small;		/* addresses of live slots */
	size_t ns, scap;
	unsigned char *large;		/* live records, lstride each */
	size_t nl, lcap;
};

/* Report slot i of slab s as leaked. */
static void
leak_slot(struct beamalloc_gpa *g, const struct slab *s, size_t i)
{
	uintptr_t site = 0;
	beamalloc_report r = {
		.kind = BEAMALLOC_REPORT_LEAK,
		.addr = (const void *)(s->base + i * s->size),
		.size = s->size,
	};

	ba_gpa_describe_slot(g, &r, s->recs, s->ftids, s->cls, i, &site);
	ba_gpa_emit(g, &r);
}

/* Room for one more address in sn->small. */
static bool
snap_room(struct beamalloc_gpa *g, struct leak_snap *sn)
{
	size_t cap = sn->scap != 0 ? sn->scap * 2 : 64;
	uintptr_t *m;

	if (sn->ns < sn->scap)
		return true;
	m = ba_raw_alloc(g->backing, cap * sizeof(*m), BEAMALLOC_MIN_ALIGN,
	    0);
	if (m == NULL)
		return false;
	if (sn->small != NULL) {
		memcpy(m, sn->small, sn->ns * sizeof(*m));
		ba_raw_free(g->backing, sn->small, sn->scap * sizeof(*m),
		    BEAMALLOC_MIN_ALIGN, 0);
	}
	sn->small = m;
	sn->scap = cap;
	return true;
}

/* A live slot's canary overwritten.  Other threads may resize or free
 * the block while it is looked at (a grown block's new bytes written,
 * a freed one's junk): a canary found overwritten is looked at again,
 * with the length then, and counts only if the block is still live. */
static bool
canary_bad(const struct beamalloc_gpa *g, unsigned char *rec,
    unsigned char *p, size_t room)
{
	for (int k = 0; k < 2; k++) {
		if (ba_chk_canary_ok(g, p, __atomic_load_n(&((struct rec *)
		    (void *)rec)->len, __ATOMIC_ACQUIRE), room))
			return false;
		if (__atomic_load_n(rec, __ATOMIC_ACQUIRE) != REC_USED)
			return false;
	}
	return true;
}

/* Live small blocks: copied into sn, or with sn NULL (destroy) only
 * counted and shown to memory checkers as freed.  The caller holds
 * g->scanning up (no slab is released while the list is walked: trims
 * skip) until the copies are reported. */
size_t
ba_gpa_leaks_small(struct beamalloc_gpa *g, struct leak_snap *sn)
{
	size_t n = 0;
	bool copy = sn != NULL;

	for (struct slab *s = atomic_load_explicit(&g->slabs,
	    memory_order_acquire); s != NULL; s = s->next) {
		for (uint32_t i = s->first; i < s->first + s->nslots; i++) {
			unsigned char *rec = s->recs +
			    ((size_t)i << g->rec_shift);
			uintptr_t p = s->base + (size_t)i * s->size;

			/* Acquire: a live block's canary is written
			 * (state_publish()). */
			if (__atomic_load_n(rec, __ATOMIC_ACQUIRE) != REC_USED)
				continue;
			n++;
			if (sn == NULL) {
				if (g->tools)
					BA_TOOL_FREE((void *)p, s->size);
				continue;
			}
			/* Bit 0: its canary was overwritten. */
			if (copy && (copy = snap_room(g, sn)))
				sn->small[sn->ns++] = p | (g->canary &&
				    canary_bad(g, rec, (unsigned char *)p,
				    s->size));
			else
				leak_slot(g, s, i);
		}
	}
	return n;
}

/* Live large blocks: their records copied into sn under the lock (or,
 * without memory for that, reported one at a time, the lock dropped
 * around each report). */
static size_t
leaks_large(struct beamalloc_gpa *g, struct leak_snap *sn)
{
	union large_copy copy;
	size_t n = 0;

	lock(g, &g->large_lock);
	while (g->llive > sn->lcap) {
		size_t want = g->llive + 16;

		unlock(g, &g->large_lock);
		if (sn->large != NULL)
			ba_raw_free(g->backing, sn->large, sn->lcap *
			    g->lstride, BEAMALLOC_MIN_ALIGN, 0);
		sn->large = ba_raw_alloc(g->backing, want * g->lstride,
		    BEAMALLOC_MIN_ALIGN, 0);
		sn->lcap = sn->large != NULL ? want : 0;
		lock(g, &g->large_lock);
		if (sn->large == NULL)
			break;
	}
	if (sn->large != NULL || g->llive == 0) {
		for (size_t i = 0; i < g->lcap; i++) {
			struct large *l = lg_at(g, g->ltab, i);

			if (l->state != LG_LIVE)
				continue;
			memcpy(sn->large + sn->nl * g->lstride, l, g->lstride);
			/* Its canary overwritten: marked in the copy. */
			if (g->canary && !ba_gpa_lg_canary(g, l, &copy))
				((struct large *)(void *)(sn->large + sn->nl *
				    g->lstride))->state = LG_OVERFLOWED;
			sn->nl++;
		}
		unlock(g, &g->large_lock);
		return sn->nl;
	}
	unlock(g, &g->large_lock);
	for (size_t i = 0;; i++) {
		bool found = false;

		lock(g, &g->large_lock);
		for (; i < g->lcap && !found; i++) {
			struct large *l = lg_at(g, g->ltab, i);

			if (l->state == LG_LIVE) {
				memcpy(&copy, l, g->lstride);
				found = true;
			}
		}
		unlock(g, &g->large_lock);
		if (!found)
			return n;
		i--;
		n++;
		ba_gpa_report_large(g, BEAMALLOC_REPORT_LEAK, copy.l.addr,
		    &copy.l, 0, 0, 0);
	}
}

/* Report the copies, and give their memory back.  The slabs are all
 * still there (g->scanning), with their records. */
static void
leaks_report(struct beamalloc_gpa *g, struct leak_snap *sn)
{
	union large_copy copy;

	for (size_t k = 0; k < sn->ns; k++) {
		uintptr_t p = sn->small[k] & ~(uintptr_t)1;
		struct where w;

		if (!slab_find(g, p, &w))
			continue;
		if (sn->small[k] & 1)
			ba_gpa_report_slot(g, BEAMALLOC_REPORT_OVERFLOW, p, &w,
			    0, 0, 0);
		leak_slot(g, slab_of(w.recs), slot_index(p - w.base, w.cls));
	}
	for (size_t k = 0; k < sn->nl; k++) {
		memcpy(&copy, sn->large + k * g->lstride, g->lstride);
		if (copy.l.state == LG_OVERFLOWED)
			ba_gpa_report_large(g, BEAMALLOC_REPORT_OVERFLOW,
			    copy.l.addr, &copy.l, 0, 0, 0);
		ba_gpa_report_large(g, BEAMALLOC_REPORT_LEAK, copy.l.addr,
		    &copy.l, 0, 0, 0);
	}
	if (sn->small != NULL)
		ba_raw_free(g->backing, sn->small, sn->scap *
		    sizeof(sn->small[0]), BEAMALLOC_MIN_ALIGN, 0);
	if (sn->large != NULL)
		ba_raw_free(g->backing, sn->large, sn->lcap * g->lstride,
		    BEAMALLOC_MIN_ALIGN, 0);
}

/* Which membarrier(2) command makes every thread of the process execute
 * a full barrier (0: none; then other threads' caches stay theirs).
 * Registration is per process: asked once, not per GPA, so a GPA made
 * for one NIF call costs no system call. */
static int mb_cmd_once;
static pthread_once_t mb_once = PTHREAD_ONCE_INIT;

static void
membarrier_query(void)
{
#if defined(__linux__) && defined(SYS_membarrier)
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
	    0, 0) == 0)
		mb_cmd_once = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
	else if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL) != 0)
		mb_cmd_once = MEMBARRIER_CMD_GLOBAL;
#endif
}

int
ba_gpa_membarrier_cmd(void)
{
	pthread_once(&mb_once, membarrier_query);
	return mb_cmd_once;
}

/* One membarrier(2): every running thread of the process passes a full
 * barrier, and any other passes one before it runs again.  False if it
 * failed: then nothing may be taken. */
static bool
barrier_all(struct beamalloc_gpa *g)
{
#if defined(__linux__) && defined(SYS_membarrier)
	return syscall(SYS_membarrier, g->mb_cmd, 0, 0) == 0;
#else
	(void)g;
	return false;
#endif
}

/* A thread frees a slot another cache handed out, in a GPA with safety
 * (shared_first() in alloc.c): from now on every free claims its slot
 * atomically.  Store, barrier, load, as in ba_gpa_steal_idle():
 * after the barrier, a fast free that read shared clear still shows
 * busy, and is waited for; any later one reads it set.  A thread that
 * comes while another waits (SHARED_GOING) waits for it to end: it read
 * the flag set, but an owner's plain free may still be in flight.
 * Without membarrier(2) a GPA is shared from the start
 * (beamalloc_gpa_create()).  No lock is held
 * while waiting: a busy general path may need any of them. */
void
ba_gpa_go_shared(struct beamalloc_gpa *g)
{
	struct tcache *tc;
	unsigned s = atomic_load_explicit(&g->shared, memory_order_acquire);

	if (s == SHARED_YES)
		return;
	if (s != SHARED_NO || !atomic_compare_exchange_strong(&g->shared, &s,
	    SHARED_GOING)) {
		/* Another thread's barrier and wait are under way: until
		 * they end, an owner's plain free may still be in flight,
		 * and a claim of ours could race it. */
		while (atomic_load_explicit(&g->shared, memory_order_acquire) !=
		    SHARED_YES)
			sched_yield();
		return;
	}
	/* It worked at create; should it fail now, the wait below still
	 * covers all but a free caught between its two loads. */
	(void)barrier_all(g);
	lock(g, &g->lock);
	tc = g->tcaches;
	unlock(g, &g->lock);
	/* Caches are never freed before the GPA is; the calling thread's
	 * own, if any, is not busy. */
	for (; tc != NULL; tc = tc->next)
		while (__atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) != 0)
			sched_yield();
	atomic_store_explicit(&g->shared, SHARED_YES, memory_order_release);
}

/* Empty the caches of threads not inside the GPA right now (idle ones,
 * ended ones), in two rounds of store, barrier, load:
 *   1. steal is set on each; after a barrier, a cache whose busy reads
 *      clear is in no general path, and none starts until steal is
 *      clear again (tc_enter()).  Its bounds become sentinels, which
 *      fail every fast path into the general one.
 *   2. After a second barrier, a fast path that read the old bounds
 *      still shows busy; a cache given sentinels in round 1 (steal 2)
 *      whose busy reads clear again has none in flight, and is drained,
 *      sentinels kept.
 * stolen then makes the owner's next general path set the bounds again;
 * it is set on every cache given sentinels, drained or not. */
void
ba_gpa_steal_idle(struct beamalloc_gpa *g, struct tcache *mine)
{
	struct tcache *first, *tc, *shared;
	bool any = false;

	if (!g->thread_safe || g->mb_cmd == 0)
		return;
	pthread_mutex_lock(&g->steal_lock);
	/* The caches from first on were linked, and the shared one among
	 * them known, under this lock (ba_gpa_tcache_new()). */
	pthread_mutex_lock(&g->lock);
	first = g->tcaches;
	shared = __atomic_load_n(&g->tc0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->lock);
	for (tc = first; tc != NULL; tc = tc->next)
		if (tc != mine && tc != shared) {
			__atomic_store_n(&tc->steal, 1, __ATOMIC_RELAXED);
			any = true;
		}
	/* Only the caller's cache: nothing to steal, no barrier to pay (a
	 * GPA used by one thread, as a leak-checked NIF call's is). */
	if (!any || !barrier_all(g))
		first = NULL;		/* no barrier: touch nothing */
	any = false;
	for (tc = first; tc != NULL; tc = tc->next) {
		if (tc == mine || tc == shared ||
		    __atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) != 0)
			continue;
		for (size_t c = 0; c < NCLASS; c++) {
			__atomic_store_n(&tc->bot[c],
			    (struct entry *)UINTPTR_MAX, __ATOMIC_RELAXED);
			__atomic_store_n(&tc->end[c], NULL, __ATOMIC_RELAXED);
			__atomic_store_n(&tc->oend[c], NULL, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&tc->stolen, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&tc->steal, 2, __ATOMIC_RELAXED); /* round 2 */
		any = true;
	}
	if (any && barrier_all(g))
		for (tc = first; tc != NULL; tc = tc->next)
			if (tc != mine && tc != shared &&
			    __atomic_load_n(&tc->steal, __ATOMIC_RELAXED) == 2 &&
			    __atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) == 0)
				for (size_t c = 0; c < NCLASS; c++)
					ba_gpa_tc_give(g, tc, c, false);
	pthread_mutex_lock(&g->lock);
	for (tc = g->tcaches; tc != NULL; tc = tc->next)
		__atomic_store_n(&tc->steal, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_unlock(&g->steal_lock);
}

/* Give back what is not needed: every thread cache not in use right now
 * (the caller's included) goes to the depots, and every depot is
 * trimmed.  Bytes released. */
static size_t
gpa_trim(struct beamalloc_gpa *g)
{
	struct tcache *tc;
	size_t bytes = 0;

	if (g->quar != NULL)
		ba_gpa_quar_drain(g);
	ba_gpa_lost_recover(g);
	tc = tcache_of(g);
	if (tc != NULL) {
		ba_gpa_tc_enter_wait(g, tc);
		for (size_t c = 0; c < NCLASS; c++)
			ba_gpa_tc_drain(g, tc, c, false);
		ba_gpa_tc_leave_wait(g, tc);
	}
	ba_gpa_steal_idle(g, tc);
	if (g->thread_safe) {
		pthread_mutex_lock(&g->shared_lock);
		if (g->tc0 != NULL)
			for (size_t c = 0; c < NCLASS; c++)
				ba_gpa_tc_drain(g, g->tc0, c, false);
		pthread_mutex_unlock(&g->shared_lock);
	}
	bytes += ba_gpa_trim_all(g, TRIM_FULL);
	lock(g, &g->lock);
	if (g->scanning == 0)
		bytes += ba_gpa_reset_free(g);
	bytes += ba_gpa_spares_free(g);
	bytes += ba_gpa_mspare_free(g);
	unlock(g, &g->lock);
	return bytes + ba_gpa_large_trim(g);
}

/* From the decay thread, which has no cache here and none is made. */
void
ba_gpa_decay_trim(struct beamalloc_gpa *g)
{
	gpa_trim(g);
}

/* Bytes released, as the backing saw them (records and regions too). */
size_t
beamalloc_gpa_trim(beamalloc_gpa *g)
{
	size_t before, after;

	if (g == NULL)
		return 0;
	before = atomic_load(&g->backing_bytes);
	gpa_trim(g);
	after = atomic_load(&g->backing_bytes);
	return before > after ? before - after : 0;
}

/* A leak check is a moment to give back what is not needed, first. */
size_t
beamalloc_gpa_detect_leaks(beamalloc_gpa *g)
{
	struct leak_snap sn = { 0 };
	struct scan_frame f;
	size_t n;

	if (g == NULL)
		return 0;
	gpa_trim(g);
	scan_begin(g, &f);
	n = ba_gpa_leaks_small(g, &sn);
	n += leaks_large(g, &sn);
	leaks_report(g, &sn);
	scan_end(g, &f);
	return n;
}
