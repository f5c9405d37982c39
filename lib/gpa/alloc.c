/*
 * alloc.c - the GPA's hot group: reports, size classes, the credit,
 * small blocks and the vtables (fast and general paths).  One unit, so
 * that the credit and the tcache lookup inline into small_alloc() and
 * the vtable functions; a magazine's trade (tcache.c) is a call, once
 * per magazine.  lib/gpa/gpa.h has the overview.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * Reports and traces
 * ---------------------------------------------------------------------- */

void
ba_gpa_emit(struct beamalloc_gpa *g, const beamalloc_report *r)
{
	if (g->report != NULL)
		g->report(g->report_user, r);
	else
		beamalloc_report_print(stderr, r);
	if (g->abort_on_error && r->kind != BEAMALLOC_REPORT_LEAK)
		abort();
}

/* Fill a report's traces from a block's trace ids (allocation; first
 * free, given only for a freed block).  Without a trace, the allocation's
 * call site (site[0], if known) is a trace of one frame, and a block that
 * sampling left out says so. */
void
ba_gpa_set_traces(const struct beamalloc_gpa *g, beamalloc_report *r,
    uint32_t atid, uint32_t ftid, const uintptr_t *site)
{
	if (atid != 0) {
		r->alloc_trace = ba_depot_get(g->traces, atid,
		    &r->alloc_trace_len);
		r->alloc_trace_len = ba_trace_walkable(r->alloc_trace,
		    r->alloc_trace_len);
		if (ftid != 0) {
			r->free_trace = ba_depot_get(g->traces, ftid,
			    &r->free_trace_len);
			r->free_trace_len = ba_trace_walkable(r->free_trace,
			    r->free_trace_len);
		}
		return;
	}
	if (g->sample != 0)
		r->not_sampled = g->sample;
	if (site != NULL && site[0] != 0) {
		r->alloc_trace = site;
		r->alloc_trace_len = 1;
	}
}

/* ------------------------------------------------------------------------
 * Size classes: 8, 16, 24, 32, then four per power of two
 * ---------------------------------------------------------------------- */

/* Class c's slot size, and 2^32 / size rounded up for slot_index(). */
#define CLASS_SIZE(c) ((c) < 4 ? ((c) + 1) * 8 : \
	(5 + ((c) & 3)) << (((c) >> 2) + 2))
#define CLASS(c) { CLASS_SIZE(c), \
	(uint32_t)((((uint64_t)1 << 32) + CLASS_SIZE(c) - 1) / CLASS_SIZE(c)) }
#define CLASS4(c) CLASS(c), CLASS(c + 1), CLASS(c + 2), CLASS(c + 3)

const struct ba_class ba_classes[NCLASS] = {
	CLASS4(0), CLASS4(4), CLASS4(8), CLASS4(12), CLASS4(16),
	CLASS4(20), CLASS4(24), CLASS4(28), CLASS4(32), CLASS4(36),
};
_Static_assert(CLASS_SIZE(NCLASS - 1) == SMALL_MAX, "the classes end at "
    "SMALL_MAX");
_Static_assert(CLASS_SIZE(FRAME_CLASSES - 1) == FRAME_MAX &&
    CLASS_SIZE(FRAME_CLASSES) > FRAME_MAX, "FRAME_CLASSES: the classes up "
    "to FRAME_MAX");

/* ------------------------------------------------------------------------
 * Accounting: requested bytes.  With no memory limit each cache keeps a
 * credit, with its high-water mark, and settles it into the shared
 * counters now and then (and before any large block is counted): exact
 * for one thread, within CREDIT_BATCH per thread otherwise.  With a limit
 * every call counts exactly.  Small blocks are counted by the magazines
 * (ld_load()), large ones here.
 * ---------------------------------------------------------------------- */

static void
peak_note(struct beamalloc_gpa *g, ptrdiff_t now)
{
	size_t p = atomic_load_explicit(&g->peak, memory_order_relaxed);

	while (now > 0 && (size_t)now > p &&
	    !atomic_compare_exchange_weak_explicit(&g->peak, &p, (size_t)now,
	    memory_order_relaxed, memory_order_relaxed))
		;
}

void
ba_gpa_settle(struct beamalloc_gpa *g, struct tcache *tc)
{
	ptrdiff_t before = atomic_fetch_add_explicit(&g->live,
	    tc->hi - tc->room, memory_order_relaxed);

	peak_note(g, before + tc->hi);
	/* Atomic stores (plain moves): a checkin looks at every cache
	 * (ba_gpa_settle_all()) while a thread that ends settles its own. */
	__atomic_store_n(&tc->hi, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->room, 0, __ATOMIC_RELAXED);
}

/* The caller's own credit settled, so that its peak is exact (before a
 * large block counts, when the peak restarts). */
void
ba_gpa_settle_mine(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (g->batched && (tc = tcache_of(g)) != NULL)
		ba_gpa_settle(g, tc);
}

/* Every cache's credit settled, its high-water mark with it: for a
 * kept GPA's peak to start again from what is live (found by a review:
 * a mark that another thread's cache kept since it last settled was the
 * next holder's peak; restarting each mark from its cache's credit is
 * not enough, one thread's credit may be what another's offsets).  Only
 * while no thread uses the GPA (beamalloc_gpa_checkin()); a thread
 * ending meanwhile settles its cache under g->lock too
 * (ba_gpa_tc_retire()). */
void
ba_gpa_settle_all(struct beamalloc_gpa *g)
{
	struct tcache *mine, *tc;

	if (!g->batched)
		return;
	if ((mine = tcache_of(g)) != NULL)
		ba_gpa_settle(g, mine);
	/* The lock only when another cache holds a credit or a mark: a
	 * GPA lent to one thread takes none (a scope 22 instructions more
	 * than before this walk, against 60 with the lock). */
	for (tc = __atomic_load_n(&g->tcaches, __ATOMIC_ACQUIRE); tc != NULL;
	    tc = tc->next)
		if (__atomic_load_n(&tc->hi, __ATOMIC_RELAXED) != 0 ||
		    __atomic_load_n(&tc->room, __ATOMIC_RELAXED) != 0)
			break;
	if (tc == NULL)
		return;
	lock(g, &g->lock);
	for (tc = g->tcaches; tc != NULL; tc = tc->next) {
		atomic_fetch_add_explicit(&g->live, tc->hi - tc->room,
		    memory_order_relaxed);
		__atomic_store_n(&tc->hi, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&tc->room, 0, __ATOMIC_RELAXED);
	}
	unlock(g, &g->lock);
}

/* Exact: a memory limit, large blocks.  The peak is the caller's to
 * note (ba_gpa_peak_live()) once the memory was had: a request that
 * fails after its charge is no peak (found by a review: a failed 64 TiB
 * allocation stayed the peak). */
bool
ba_gpa_reserve(struct beamalloc_gpa *g, ptrdiff_t bytes, ptrdiff_t blocks)
{
	ptrdiff_t now;

	/* A request near 2^63 must not overflow the count (no backing could
	 * give it anyway): it fails as over any limit.  Checked before the
	 * count moves, in one step: a request refused must not make the
	 * count look past the limit to another thread's (found by a review:
	 * one thread asking for 2 MiB of a 1 MiB limit over and over failed
	 * another's 64 B allocations). */
	if (g->thread_safe) {
		ptrdiff_t was = atomic_load_explicit(&g->live,
		    memory_order_relaxed);

		do {
			if (__builtin_add_overflow(was, bytes, &now) ||
			    (bytes > 0 && g->limit != 0 &&
			    (size_t)now > g->limit))
				return false;
		} while (!atomic_compare_exchange_weak_explicit(&g->live,
		    &was, now, memory_order_relaxed, memory_order_relaxed));
		atomic_fetch_add_explicit(&g->blocks, blocks,
		    memory_order_relaxed);
	} else {
		if (__builtin_add_overflow(atomic_load_explicit(&g->live,
		    memory_order_relaxed), bytes, &now))
			return false;
		if (bytes > 0 && g->limit != 0 && (size_t)now > g->limit)
			return false;
		atomic_store_explicit(&g->live, now, memory_order_relaxed);
		atomic_store_explicit(&g->blocks, blocks +
		    atomic_load_explicit(&g->blocks, memory_order_relaxed),
		    memory_order_relaxed);
	}
	return true;
}

/* What is live now is a peak candidate: the counters and the caller's
 * own credit not yet settled (a guarded large block leaves it so). */
void
ba_gpa_peak_live(struct beamalloc_gpa *g)
{
	ptrdiff_t now = atomic_load_explicit(&g->live, memory_order_relaxed);
	struct tcache *tc;

	if (g->batched && (tc = tcache_of(g)) != NULL)
		now += tc->hi - tc->room;
	peak_note(g, now);
}

/* A change that cannot fail past its charge (a resize in place, any
 * decrease). */
bool
ba_gpa_charge_exact(struct beamalloc_gpa *g, ptrdiff_t bytes, ptrdiff_t blocks)
{
	if (!ba_gpa_reserve(g, bytes, blocks))
		return false;
	if (bytes > 0)
		ba_gpa_peak_live(g);
	return true;
}

/* A new high-water mark of a cache's credit (room went negative).
 * Returns ret, so that the fast path's call is a tail call. */
__attribute__((noinline)) void *
ba_gpa_credit_high(struct beamalloc_gpa *g, struct tcache *tc, void *ret)
{
	tc->hi -= tc->room;
	tc->room = 0;
	if (tc->hi > CREDIT_BATCH)
		ba_gpa_settle(g, tc);
	return ret;
}

/* Bytes of a small block (its count is the magazines'). */
static inline bool
charge(struct beamalloc_gpa *g, struct tcache *tc, ptrdiff_t bytes)
{
	if (!g->batched)
		return ba_gpa_charge_exact(g, bytes, 0);
	credit(g, tc, bytes);
	return true;
}

/* ------------------------------------------------------------------------
 * Small blocks
 * ---------------------------------------------------------------------- */

/* What slot i of a slab (records recs, free trace ids ftids, slots of
 * 1 << shift bytes) knows of its block, into r: size, alignment, traces.
 * site holds the call site until r is emitted. */
void
ba_gpa_describe_slot(const struct beamalloc_gpa *g, beamalloc_report *r,
    const unsigned char *recs, const uint32_t *ftids, size_t c,
    size_t i, uintptr_t *site)
{
	const struct rec *sr = (const void *)(recs + (i << g->rec_shift));
	uint32_t atid = 0, ftid = 0;

	r->size = class_size(c);
	if (g->safety) {
		r->size = sr->len;
		r->align = (size_t)1 << sr->lalign;
		*site = sr->ra;
	}
	if (g->depth != 0) {
		atid = __atomic_load_n(&sr->tid, __ATOMIC_RELAXED);
		if (state_get(&sr->state) == REC_FREE ||
		    state_get(&sr->state) == REC_LOST)
			ftid = __atomic_load_n(&ftids[i], __ATOMIC_RELAXED);
	}
	ba_gpa_set_traces(g, r, atid, ftid, site);
}

void
ba_gpa_report_slot(struct beamalloc_gpa *g, beamalloc_report_kind kind,
    uintptr_t p, const struct where *w, size_t len,
    size_t align, uintptr_t ra)
{
	size_t i = slot_index(p - w->base, w->cls);
	uintptr_t site = 0;
	beamalloc_report r = {
		.kind = kind, .addr = (const void *)p, .given_size = len,
		.given_align = align, .ret_addr = ra,
	};

	/* An invalid free names no block of ours. */
	if (kind != BEAMALLOC_REPORT_INVALID_FREE)
		ba_gpa_describe_slot(g, &r, w->recs, slab_of(w->recs)->ftids,
		    w->cls, i, &site);
	ba_gpa_emit(g, &r);
}

/* The record of a live slot at p, or NULL after reporting why not. */
static unsigned char *
live_slot(struct beamalloc_gpa *g, uintptr_t p,
    const struct where *w, size_t len, size_t align, uintptr_t ra)
{
	size_t off = p - w->base, i = slot_index(off, w->cls);
	unsigned char *rec = w->recs + (i << g->rec_shift);
	uint8_t st;

	if (BA_UNLIKELY(i * class_size(w->cls) != off)) {
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_INVALID_FREE, p, w, len,
		    align, ra);
		return NULL;
	}
	st = state_get(rec);
	if (BA_UNLIKELY(st != REC_USED)) {
		ba_gpa_report_slot(g, st == REC_FREE || st == REC_LOST ?
		    BEAMALLOC_REPORT_DOUBLE_FREE :
		    BEAMALLOC_REPORT_INVALID_FREE, p, w, len, align, ra);
		return NULL;
	}
	if (g->safety && BA_UNLIKELY(!rec_matches(rec, len, align))) {
		ba_gpa_report_slot(g,
		    ((const struct rec *)(const void *)rec)->len != len ?
		    BEAMALLOC_REPORT_SIZE_MISMATCH :
		    BEAMALLOC_REPORT_ALIGN_MISMATCH, p, w, len, align, ra);
		return NULL;
	}
	return rec;
}

/* The free of a traced slot, its record rec: its trace beside the
 * allocation's. */
static void
trace_free(struct beamalloc_gpa *g, unsigned char *p, unsigned char *rec,
    uintptr_t ra)
{
	struct where w;

	if (((struct rec *)(void *)rec)->tid != 0 &&
	    slab_find(g, (uintptr_t)p, &w))
		slab_of(w.recs)->ftids[slot_index((uintptr_t)p - w.base,
		    w.cls)] =
		    ba_trace_id(g->traces, g->depth, ra);
}

/* A slot came out of a cache still USED: two frees of it raced with
 * plain stores (safety off) and both cached it.  The first copy was
 * handed out; this one is reported as the double free it was, and
 * dropped. */
static __attribute__((noinline, cold)) void
popped_twice(struct beamalloc_gpa *g, unsigned char *p)
{
	struct where w;

	if (slab_find(g, (uintptr_t)p, &w))
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_DOUBLE_FREE,
		    (uintptr_t)p, &w, 0, 0, 0);
}

/* Corruption checks on small blocks (the helpers are in check.c;
 * the quarantine's side is after the large blocks). */
static inline void slot_push(struct beamalloc_gpa *g, struct tcache *tc,
    unsigned char *p, unsigned char *rec, size_t c, bool held);

/* A freed slot handed out again (or leaving quarantine) must still hold
 * only junk: anything else was written after its free.  Reported with
 * what its record still says of the freed block. */
void
ba_gpa_reused_bad(struct beamalloc_gpa *g, unsigned char *p)
{
	struct where w;

	if (slab_find(g, (uintptr_t)p, &w))
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE,
		    (uintptr_t)p, &w, 0, 0, 0);
}

static void
slot_reused(struct beamalloc_gpa *g, unsigned char *p, size_t room)
{
	if (!ba_chk_freed_ok(g, p, room))
		ba_gpa_reused_bad(g, p);
}

/* A live slot's canary, at its free or resize. */
static void
slot_canary(struct beamalloc_gpa *g, unsigned char *p, const struct where *w,
    size_t len, size_t align, uintptr_t ra)
{
	if (!ba_chk_canary_ok(g, p, len, class_size(w->cls)))
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_OVERFLOW, (uintptr_t)p,
		    w, len, align, ra);
}

/* The general allocation path: exact accounting, traces, memory
 * checkers, empty bins. */
static void *
small_alloc(struct beamalloc_gpa *g, struct tcache *tc, size_t c,
    size_t len, size_t align, uintptr_t ra)
{
	struct entry e;

	/* A limit is checked before a slot is taken; the bytes count, and
	 * may be a peak, once the slot is had (below): an allocation that
	 * fails for want of memory is no peak. */
	if (BA_UNLIKELY(!g->batched && !ba_gpa_reserve(g, (ptrdiff_t)len, 0)))
		return ba_fail(ENOMEM);
again:
	ba_gpa_tc_enter_wait(g, tc);
	if (tc->top[c] == tc->bot[c] && !ba_gpa_refill(g, tc, c)) {
		ba_gpa_tc_leave_wait(g, tc);
		if (!g->batched)
			(void)ba_gpa_reserve(g, -(ptrdiff_t)len, 0);
		return ba_fail(ENOMEM);
	}
	e = *--tc->top[c];
	ba_gpa_tc_leave_wait(g, tc);
	if (BA_UNLIKELY(state_get(e.rec) == REC_USED)) {
		popped_twice(g, e.p);
		goto again;
	}
	if (BA_UNLIKELY(g->junk) && state_get(e.rec) == REC_FREE)
		slot_reused(g, e.p, class_size(c));
	if (g->safety)
		rec_fill(e.rec, len, align, ra);
	if (BA_UNLIKELY(g->depth != 0))
		((struct rec *)(void *)e.rec)->tid = sampled(g,
		    &tc->sample_left) ? ba_trace_id(g->traces, g->depth, ra) : 0;
	else if (BA_UNLIKELY(tc->sample_left < 0) && !g->guard_fast)
		tc->sample_left = INT_MAX;	/* nothing to sample */
	if (g->tools)
		BA_TOOL_ALLOC(e.p, len);
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, e.p, len, class_size(c));
	state_publish(e.rec);
	if (g->batched)
		credit(g, tc, (ptrdiff_t)len);
	else
		ba_gpa_peak_live(g);
	return e.p;
}

/* The general free path, for a slot live_slot() accepted and the caller
 * then claimed (state_release()). */
void
ba_gpa_small_free(struct beamalloc_gpa *g, struct tcache *tc, unsigned char *p,
    unsigned char *rec, size_t c, size_t len, uintptr_t ra)
{
	bool held = false;

	if (BA_UNLIKELY(g->depth != 0))
		trace_free(g, p, rec, ra);
	if (BA_UNLIKELY(g->junk))
		ba_chk_fill_freed(g, p, class_size(c));
	if (g->tools)
		BA_TOOL_FREE(p, class_size(c));
	charge(g, tc, -(ptrdiff_t)len);
	if (BA_UNLIKELY(g->quar != NULL)) {
		/* Counted freed now: tc's count of blocks it gave out drops
		 * here, not at the push (slot_push() after the quarantine
		 * adds it back). */
		ba_gpa_tc_enter_wait(g, tc);
		__atomic_store_n(&tc->nblk, tc->nblk - 1, __ATOMIC_RELAXED);
		ba_gpa_tc_leave_wait(g, tc);
		if (ba_gpa_quar_hold(g, tc, &(struct ba_qent){
		    .p = (uintptr_t)p, .room = class_size(c) }))
			return;
		held = true;
	}
	slot_push(g, tc, p, rec, c, held);
}

/* A freed slot no cache can take (no magazine: out of memory) is marked
 * lost, never handed out twice; the next trim finds it and puts it back
 * (found by a review: such slots stayed unused for good, and pinned
 * their slabs, which no trim gave back: after every free of 100,000
 * blocks failed to get a magazine, 8 MB stayed with the GPA, and the
 * same blocks again took new slabs). */
void
ba_gpa_slot_lost(struct beamalloc_gpa *g, unsigned char *rec)
{
	state_set(rec, REC_LOST);
	atomic_fetch_add_explicit(&g->nlost, 1, memory_order_relaxed);
}

/* Every lost slot back into a cache (the caller's, else the shared
 * one), whence the trim that follows takes it: before it, at each trim
 * that finds some.  A slot still without a magazine is lost again. */
void
ba_gpa_lost_recover(struct beamalloc_gpa *g)
{
	struct tcache *tc;
	struct scan_frame f;

	if (atomic_load_explicit(&g->nlost, memory_order_relaxed) == 0)
		return;
	scan_begin(g, &f);		/* no slab released meanwhile */
	for (struct slab *s = atomic_load_explicit(&g->slabs,
	    memory_order_acquire); s != NULL; s = s->next)
		for (uint32_t i = s->first; i < s->first + s->nslots; i++) {
			unsigned char *rec = s->recs + ((size_t)i <<
			    g->rec_shift), lost = REC_LOST;

			/* One recoverer: trims may run at once. */
			if (!__atomic_compare_exchange_n(rec, &lost, REC_FREE,
			    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				continue;
			atomic_fetch_sub_explicit(&g->nlost, 1,
			    memory_order_relaxed);
			if ((tc = tcache_of(g)) != NULL) {
				ba_gpa_slot_push_held(g, tc, (unsigned char *)
				    s->base + (size_t)i * s->size, rec, s->cls);
				continue;
			}
			pthread_mutex_lock(&g->shared_lock);
			if ((tc = ba_gpa_shared_tc(g)) != NULL)
				ba_gpa_slot_push_held(g, tc, (unsigned char *)
				    s->base + (size_t)i * s->size, rec, s->cls);
			else
				ba_gpa_slot_lost(g, rec);
			pthread_mutex_unlock(&g->shared_lock);
		}
	scan_end(g, &f);
}

/* Put a freed slot into tc's magazine.  Without a magazine (out of
 * memory) the slot is lost until the next trim (ba_gpa_slot_lost()). */
static inline __attribute__((always_inline)) void
slot_push(struct beamalloc_gpa *g, struct tcache *tc, unsigned char *p,
    unsigned char *rec, size_t c, bool held)
{
	struct entry e = { p, rec };

	ba_gpa_tc_enter_wait(g, tc);
	if (held)			/* counted freed when it was held */
		__atomic_store_n(&tc->nblk, tc->nblk + 1, __ATOMIC_RELAXED);
	/* Another cache's slot goes home through the outbox. */
	if (BA_UNLIKELY(slot_home(g, c, &e) != &tc->dep[c])) {
		if (tc->otop[c] != tc->oend[c] || ba_gpa_ob_room(g, tc, c))
			*tc->otop[c]++ = e;
		else {
			__atomic_store_n(&tc->nblk, tc->nblk - 1,
			    __ATOMIC_RELAXED);
			ba_gpa_slot_lost(g, rec);
		}
	} else if (tc->top[c] != tc->end[c] || ba_gpa_flush(g, tc, c))
		*tc->top[c]++ = e;
	else {
		__atomic_store_n(&tc->nblk, tc->nblk - 1, __ATOMIC_RELAXED);
		ba_gpa_slot_lost(g, rec);
	}
	ba_gpa_tc_leave_wait(g, tc);
}

/* Out of line: ba_gpa_small_free()'s push stays the one inlined. */
__attribute__((noinline)) void
ba_gpa_slot_push_held(struct beamalloc_gpa *g, struct tcache *tc,
    unsigned char *p, unsigned char *rec, size_t c)
{
	slot_push(g, tc, p, rec, c, true);
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

/* A slot is freed by a thread whose cache did not hand it out: with
 * safety, every free claims its slot atomically from now on (a thread
 * frees the slots of its own cache with plain stores until then). */
static inline void
shared_first(struct beamalloc_gpa *g)
{
	if (g->safety && g->thread_safe &&
	    atomic_load_explicit(&g->shared, memory_order_acquire) !=
	    SHARED_YES)
		ba_gpa_go_shared(g);
}

/* The general paths: any configuration, any thread. */
static void *
gpa_alloc(struct beamalloc_gpa *g, size_t len, size_t align, uintptr_t ra)
{
	/* A canary needs one byte of slack at least. */
	size_t c = class_of(len + g->canary, align);
	struct tcache *tc;
	void *p;

	if (BA_UNLIKELY(g->guard_sample != 0) && guard_due(g) &&
	    (p = ba_gpa_large_alloc(g, len, align, ra, true)) != NULL)
		return p;
	if (c >= NCLASS)
		return ba_gpa_large_alloc(g, len, align, ra, false);
	if ((tc = tcache_of(g)) != NULL ||
	    (tc = ba_gpa_tcache_slow(g, NULL)) != NULL)
		return small_alloc(g, tc, c, len, align, ra);
	/* More threads than cache slots: they share one, locked. */
	pthread_mutex_lock(&g->shared_lock);
	p = (tc = ba_gpa_shared_tc(g)) != NULL ?
	    small_alloc(g, tc, c, len, align, ra) : ba_fail(ENOMEM);
	pthread_mutex_unlock(&g->shared_lock);
	return p;
}

void
ba_gpa_free_core(struct beamalloc_gpa *g, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	struct where w;
	unsigned char *rec;
	struct tcache *tc;

	if (!slot_find(g, (uintptr_t)mem, &w)) {
		ba_gpa_large_free(g, (uintptr_t)mem, len, align, ra);
		return;
	}
	/* The cache first: a new thread's may be the ended owner's of the
	 * slot's slab, taken over (the slot is then its own). */
	if ((tc = tcache_of(g)) == NULL)
		tc = ba_gpa_tcache_slow(g, depot_tc(slab_home(slab_of(w.recs),
		    (uintptr_t)mem), w.cls));
	if ((rec = live_slot(g, (uintptr_t)mem, &w, len, align, ra)) == NULL)
		return;
	/* Another cache's slot (or any, without a cache): its owner's fast
	 * frees claim atomically from now on, before this one races them. */
	if (tc == NULL || slab_home(slab_of(w.recs), (uintptr_t)mem) !=
	    &tc->dep[w.cls])
		shared_first(g);
	/* Another thread's free of the same block got in between. */
	if (BA_UNLIKELY(!state_release(rec))) {
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_DOUBLE_FREE,
		    (uintptr_t)mem, &w, len, align, ra);
		return;
	}
	/* The canary once the slot is ours: the free that won a race may be
	 * junk-filling it, and the loser must not call that an overflow. */
	if (BA_UNLIKELY(g->canary))
		slot_canary(g, mem, &w, len, align, ra);
	if (tc != NULL) {
		ba_gpa_small_free(g, tc, mem, rec, w.cls, len, ra);
		if (BA_UNLIKELY(tc->adopt != NULL))
			ba_gpa_tc_adopt(g, tc);
		return;
	}
	pthread_mutex_lock(&g->shared_lock);
	/* Without a cache the slot is lost, as in slot_push(). */
	if ((tc = ba_gpa_shared_tc(g)) != NULL)
		ba_gpa_small_free(g, tc, mem, rec, w.cls, len, ra);
	else
		ba_gpa_slot_lost(g, rec);
	pthread_mutex_unlock(&g->shared_lock);
}

void
ba_gpa_free_claimed(struct beamalloc_gpa *g, struct tcache *tc, void *mem,
    unsigned char *rec, size_t len, uintptr_t ra)
{
	struct where w;
	/* The free's alignment, which safety checked against the record
	 * (without safety, the record has none and nothing checked it). */
	size_t align = g->safety ? (size_t)1 <<
	    ((const struct rec *)(const void *)rec)->lalign :
	    BEAMALLOC_MIN_ALIGN;

	if (!slab_find(g, (uintptr_t)mem, &w))
		return;			/* never: the fast path found its slab */
	slot_canary(g, mem, &w, len, align, ra);
	ba_gpa_small_free(g, tc, mem, rec, w.cls, len, ra);
}

/* Where the fast free sends the slots of shared slab s: to the depot
 * that holds all its quarters taken, if one does; else (NULL) through
 * the outbox, which sends each slot to its quarter's depot.  A depot
 * that takes a quarter beside another's makes every memo stale (the
 * epoch), so that none sends the slab's slots to one depot after. */
static struct depot *
memo_shared(const struct slab *s)
{
	struct depot *h = NULL;

	for (unsigned q = 0; q < NQUARTER; q++) {
		struct depot *o = qtaken(s, q);

		if (o == NULL)
			continue;
		if (h != NULL && o != h)
			return NULL;
		h = o;
	}
	return h;
}

/* Remember p's slab in the memo.  False for a pointer in no slab's
 * slots: one beside them in a partial slab's frame (a large block past
 * the region) goes to the general path without reading the slab, which
 * another thread may be making or giving back.  So that the fast free
 * sends such pointers here too, the memo's base and records are moved,
 * by whole slots, to where its one test, an offset below SLAB_SIZE,
 * holds for the slab's slots alone (the table's entry says how far:
 * table.c's slab_keys()). */
static bool
memo_fill(struct beamalloc_gpa *g, struct tcache *tc, uintptr_t p)
{
	uintptr_t epoch = atomic_load_explicit(&g->epoch,
	    memory_order_acquire);
	struct where w;

	if (!slot_find(g, p, &w))
		return false;
	struct memo *m = memo_of(tc, p);
	struct slab *s = slab_of(w.recs);
	struct depot *home = s->home;
	size_t size = class_size(w.cls);
	ptrdiff_t move = w.memo;	/* slots */

	m->epoch = epoch;
	m->base = w.base + (uintptr_t)(move * (ptrdiff_t)size);
	m->div = ba_classes[w.cls].inv;
	m->size = size;
	m->recs = (unsigned char *)((uintptr_t)w.recs +
	    (uintptr_t)(move * ((ptrdiff_t)1 << g->rec_shift)));
	if (home == NULL)
		home = memo_shared(s);
	/* Another cache's slab: its slots go home through the outbox, and
	 * the fast frees of every thread claim theirs atomically first. */
	if (home == &tc->dep[w.cls])
		m->top = &tc->top[w.cls];
	else {
		m->top = &tc->otop[w.cls];
		shared_first(g);
	}
	return true;
}

/* Free's memo missed: look the slab up in the table, remember it, and
 * free again through the vtable (the same fast function, now hitting).
 * A pointer in no slab (a large block, or not ours) goes to the general
 * path, and so does one the memo still misses: inside the last slot,
 * past the memo's reach (memo_fill() moves it by whole slots), where
 * the fast free would come back here for ever. */
__attribute__((noinline)) void
ba_gpa_memo_miss(struct beamalloc_gpa *g, struct tcache *tc, void *mem, size_t len,
    size_t align, uintptr_t ra)
{
	const struct memo *m = memo_of(tc, (uintptr_t)mem);

	if (memo_fill(g, tc, (uintptr_t)mem) && (uintptr_t)mem - m->base <
	    SLAB_SIZE && m->epoch == atomic_load_explicit(&g->epoch,
	    memory_order_relaxed))
		g->vtable->free(g, mem, len, align, ra);
	else
		ba_gpa_free(g, mem, len, align, ra);
}

#define FAST_PAIR(name, ts, safety, sample)				\
static void *								\
name##_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)	\
{									\
	return ba_gpa_fast_alloc(ctx, len, align, ra, ts, safety, sample); \
}									\
static void								\
name##_free(void *ctx, void *mem, size_t len, size_t align,		\
    uintptr_t ra)							\
{									\
	ba_gpa_fast_free(ctx, mem, len, align, ra, ts, safety, sample);	\
}

FAST_PAIR(fast_ts, true, false, false)
FAST_PAIR(fast_ts_safe, true, true, false)
FAST_PAIR(fast_st, false, false, false)
FAST_PAIR(fast_st_safe, false, true, false)
FAST_PAIR(smp_ts, true, false, true)
FAST_PAIR(smp_ts_safe, true, true, true)
FAST_PAIR(smp_st, false, false, true)
FAST_PAIR(smp_st_safe, false, true, true)

/* Canary or junk alone (no quarantine, traces or checker): the fast
 * paths with the checks around them, by [checks][thread_safe][safety]. */
#define CHECK_PAIR(name, ts, safety, check)				\
static void *								\
name##_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)	\
{									\
	return ba_gpa_fast_alloc_chk(ctx, len, align, ra, ts, safety,	\
	    0, check);							\
}									\
static void								\
name##_free(void *ctx, void *mem, size_t len, size_t align,		\
    uintptr_t ra)							\
{									\
	ba_gpa_fast_free_chk(ctx, mem, len, align, ra, ts, safety,	\
	    false, check);						\
}

#define CHECK_PAIRS(name, check)					\
CHECK_PAIR(name##_st, false, false, check)				\
CHECK_PAIR(name##_st_safe, false, true, check)				\
CHECK_PAIR(name##_ts, true, false, check)				\
CHECK_PAIR(name##_ts_safe, true, true, check)

CHECK_PAIRS(chk_c, BA_CHK_CANARY)
CHECK_PAIRS(chk_j, BA_CHK_JUNK)
CHECK_PAIRS(chk_cj, BA_CHK_CANARY | BA_CHK_JUNK)

/* In place within the size class; the records follow the new length. */
static bool
small_resize(struct beamalloc_gpa *g, void *mem, const struct where *w,
    size_t len, size_t align, size_t new_len, uintptr_t ra)
{
	unsigned char *rec = live_slot(g, (uintptr_t)mem, w, len, align, ra);
	struct tcache *tc;
	bool ok;

	if (rec == NULL) {
		errno = EINVAL;		/* reported: refused, not "cannot" */
		return false;
	}
	if (BA_UNLIKELY(g->canary))
		slot_canary(g, mem, w, len, align, ra);
	if (class_of(new_len + g->canary, align) != w->cls)
		return false;
	if ((tc = tcache_of(g)) == NULL)
		tc = ba_gpa_tcache_slow(g, NULL);
	/* Threads without a cache of their own count exactly. */
	ok = tc != NULL ? charge(g, tc, (ptrdiff_t)new_len - (ptrdiff_t)len) :
	    ba_gpa_charge_exact(g, (ptrdiff_t)new_len - (ptrdiff_t)len, 0);
	if (!ok) {
		errno = ENOMEM;
		return false;
	}
	if (g->tools)
		BA_TOOL_RESIZE(mem, len, new_len);
	ba_chk_fill_grown(g, mem, len, new_len);
	/* The canary first: a leak check on another thread that reads the
	 * new length finds the canary after it (either length finds one). */
	ba_chk_canary_set(g, mem, new_len, class_size(w->cls));
	if (g->safety)
		__atomic_store_n(&((struct rec *)(void *)rec)->len,
		    (uint16_t)new_len, __ATOMIC_RELEASE);
	return true;
}

/* resize (move false) or remap (move true).  Small blocks stay in place
 * or the caller moves them (NULL, errno untouched); large ones may move
 * with the backing's remap.  A block reported bad: NULL with EINVAL. */
static void *
gpa_change(struct beamalloc_gpa *g, void *mem, size_t len, size_t align,
    size_t new_len, bool move, uintptr_t ra)
{
	struct where w;

	if (slot_find(g, (uintptr_t)mem, &w))
		return small_resize(g, mem, &w, len, align, new_len, ra) ?
		    mem : NULL;
	return ba_gpa_large_change(g, (uintptr_t)mem, len, align, new_len, move,
	    ra);
}

/* ------------------------------------------------------------------------
 * A GPA made with thread_safe off is one thread's at a time.  With
 * safety on, a second thread coming in meets the first's mark (st_in()
 * in gpa.h): it is reported, then waits for the first to leave, before
 * anything is touched.
 * ---------------------------------------------------------------------- */

static __attribute__((noinline, cold)) void
st_clash(struct beamalloc_gpa *g, const void *mem, size_t len, size_t align,
    uintptr_t ra, bool wait)
{
	beamalloc_report r = {
		.kind = BEAMALLOC_REPORT_CONCURRENT_USE, .addr = mem,
		.given_size = len, .given_align = align, .ret_addr = ra,
	};

	ba_gpa_emit(g, &r);
	while (wait && atomic_load_explicit(&g->st_owner,
	    memory_order_acquire) != 0)
		sched_yield();
}

/* The general paths' entry: st_in(), or the report and the wait. */
static uintptr_t
st_enter(struct beamalloc_gpa *g, uintptr_t *me, const void *mem,
    size_t len, size_t align, uintptr_t ra)
{
	uintptr_t prev;

	while (!st_in(g, me, &prev))
		st_clash(g, mem, len, align, ra, true);
	return prev;
}

static void
st_leave(struct beamalloc_gpa *g, uintptr_t me, uintptr_t prev,
    const void *mem, size_t len, size_t align, uintptr_t ra)
{
	if (!st_left(g, me, prev))
		st_clash(g, mem, len, align, ra, false);
}

/* A fast path left and found another thread's mark. */
void *
ba_gpa_st_late(struct beamalloc_gpa *g, struct tcache *tc, void *ret,
    const void *mem, size_t len, size_t align, uintptr_t ra, bool over)
{
	st_clash(g, mem, len, align, ra, false);
	return over ? ba_gpa_credit_high(g, tc, ret) : ret;
}

/* ------------------------------------------------------------------------
 * Vtable: the general paths, guarded where a single-thread GPA checks.
 * ---------------------------------------------------------------------- */

void *
ba_gpa_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	struct beamalloc_gpa *g = ctx;
	uintptr_t me, prev;
	void *p;

	if (BA_LIKELY(!g->st_check))
		return gpa_alloc(g, len, align, ra);
	prev = st_enter(g, &me, NULL, len, align, ra);
	p = gpa_alloc(g, len, align, ra);
	st_leave(g, me, prev, NULL, len, align, ra);
	return p;
}

void
ba_gpa_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	struct beamalloc_gpa *g = ctx;
	uintptr_t me, prev;

	if (BA_LIKELY(!g->st_check)) {
		ba_gpa_free_core(g, mem, len, align, ra);
		return;
	}
	prev = st_enter(g, &me, mem, len, align, ra);
	ba_gpa_free_core(g, mem, len, align, ra);
	st_leave(g, me, prev, mem, len, align, ra);
}

static void *
gpa_change_at(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, bool move, uintptr_t ra)
{
	struct beamalloc_gpa *g = ctx;
	uintptr_t me, prev;
	void *p;
	int err;

	if (BA_LIKELY(!g->st_check))
		return gpa_change(g, mem, len, align, new_len, move, ra);
	prev = st_enter(g, &me, mem, len, align, ra);
	p = gpa_change(g, mem, len, align, new_len, move, ra);
	err = errno;
	st_leave(g, me, prev, mem, len, align, ra);
	errno = err;
	return p;
}

static bool
gpa_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return gpa_change_at(ctx, mem, len, align, new_len, false, ra) != NULL;
}

static void *
gpa_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return gpa_change_at(ctx, mem, len, align, new_len, true, ra);
}

#define CHECK_VTS(name, check)						\
	[GPA_VT_CHK(check, 0, 0)] = { name##_st_alloc, gpa_resize,	\
	    gpa_remap, name##_st_free },				\
	[GPA_VT_CHK(check, 0, 1)] = { name##_st_safe_alloc, gpa_resize,	\
	    gpa_remap, name##_st_safe_free },				\
	[GPA_VT_CHK(check, 1, 0)] = { name##_ts_alloc, gpa_resize,	\
	    gpa_remap, name##_ts_free },				\
	[GPA_VT_CHK(check, 1, 1)] = { name##_ts_safe_alloc, gpa_resize,	\
	    gpa_remap, name##_ts_safe_free },

const beamalloc_vtable ba_gpa_vtables[GPA_NVT] = {
	[GPA_VT_GENERAL] = { ba_gpa_alloc, gpa_resize, gpa_remap, ba_gpa_free },
	[GPA_VT_ST] = { fast_st_alloc, gpa_resize, gpa_remap, fast_st_free },
	[GPA_VT_ST_SAFE] = { fast_st_safe_alloc, gpa_resize, gpa_remap,
	    fast_st_safe_free },
	[GPA_VT_TS] = { fast_ts_alloc, gpa_resize, gpa_remap, fast_ts_free },
	[GPA_VT_TS_SAFE] = { fast_ts_safe_alloc, gpa_resize, gpa_remap,
	    fast_ts_safe_free },
	[GPA_VT_SAMPLED] = { smp_st_alloc, gpa_resize, gpa_remap, smp_st_free },
	[GPA_VT_SAMPLED + 1] = { smp_st_safe_alloc, gpa_resize, gpa_remap,
	    smp_st_safe_free },
	[GPA_VT_SAMPLED + 2] = { smp_ts_alloc, gpa_resize, gpa_remap,
	    smp_ts_free },
	[GPA_VT_SAMPLED + 3] = { smp_ts_safe_alloc, gpa_resize, gpa_remap,
	    smp_ts_safe_free },
	CHECK_VTS(chk_c, BA_CHK_CANARY)
	CHECK_VTS(chk_j, BA_CHK_JUNK)
	CHECK_VTS(chk_cj, BA_CHK_CANARY | BA_CHK_JUNK)
};

const beamalloc_vtable *const ba_gpa_fvt[BA_NFVT] = {
	[BA_FVT_TS] = &ba_gpa_vtables[GPA_VT_TS],
	[BA_FVT_TS_SAFE] = &ba_gpa_vtables[GPA_VT_TS_SAFE],
	[BA_FVT_SAMPLED] = &ba_gpa_vtables[GPA_VT_SAMPLED + 2],
};

void (*const ba_gpa_ffree[BA_NFFREE])(void *, void *, size_t, size_t,
    uintptr_t) = {
	[BA_FFREE_TS] = fast_ts_free,
	[BA_FFREE_SAMPLED] = smp_ts_free,
};

bool
ba_gpa_vtable_is(const beamalloc_vtable *v)
{
	/* One compare, not a loop: every other allocator passes here. */
	return (uintptr_t)v - (uintptr_t)&ba_gpa_vtables[0] <
	    sizeof(ba_gpa_vtables);
}

/* A GPA with canary has the general vtable or a check one (never the
 * others): two compares, as every wide call over any backing asks. */
bool
ba_gpa_has_canary(const beamalloc_allocator *a)
{
	const beamalloc_vtable *v = a->vtable;

	return (v == &ba_gpa_vtables[GPA_VT_GENERAL] ||
	    (uintptr_t)v - (uintptr_t)&ba_gpa_vtables[GPA_VT_CHECK] <
	    (GPA_NVT - GPA_VT_CHECK) * sizeof(ba_gpa_vtables[0])) &&
	    ((const struct beamalloc_gpa *)a->ctx)->canary;
}

size_t
ba_gpa_native_align(const void *ctx)
{
	const struct beamalloc_gpa *g = ctx;

	/* Large blocks take their alignment from the backing. */
	return ba_native_align(g->backing);
}
