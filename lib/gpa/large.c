/*
 * large.c - the GPA's large blocks (past 16 KiB or more aligned): straight
 * from the backing, recorded in an open-addressing table.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * Large blocks: straight from the backing, recorded in an open-addressing
 * table.  A freed block's record stays (for double-free reports) until
 * the table is rebuilt or the address comes back.
 * ---------------------------------------------------------------------- */

/* The record for addr (live or freed), or NULL.  Under large_lock. */
struct large *
ba_gpa_lg_find(struct beamalloc_gpa *g, uintptr_t addr)
{
	if (g->lcap == 0)
		return NULL;
	for (size_t i = lg_hash(addr, g->lcap);; i = (i + 1) & (g->lcap - 1)) {
		struct large *l = lg_at(g, g->ltab, i);

		if (l->addr == addr)
			return l;
		if (l->state == LG_EMPTY)
			return NULL;
	}
}

/* Rebuild with room for the live records (freed ones are dropped). */
static bool
lg_grow(struct beamalloc_gpa *g)
{
	size_t cap = 16, len;
	struct large *tab;

	while (cap < (g->llive + 1) * 4)
		cap *= 2;
	len = cap * g->lstride;
	tab = ba_gpa_backing_get(g, len);
	if (tab == NULL)
		return false;
	memset(tab, 0, len);
	for (size_t i = 0; i < g->lcap; i++) {
		struct large *o = lg_at(g, g->ltab, i), *n;
		size_t j;

		if (o->state != LG_LIVE)
			continue;
		for (j = lg_hash(o->addr, cap);; j = (j + 1) & (cap - 1))
			if ((n = lg_at(g, tab, j))->state == LG_EMPTY)
				break;
		memcpy(n, o, g->lstride);
	}
	if (g->ltab != NULL)
		ba_gpa_backing_put(g, g->ltab, g->lcap * g->lstride);
	g->ltab = tab;
	g->lcap = cap;
	g->lused = g->llive;
	return true;
}

/* A record for addr, reusing a freed one for the same address. */
static struct large *
lg_insert(struct beamalloc_gpa *g, uintptr_t addr)
{
	struct large *l = ba_gpa_lg_find(g, addr);

	if (l == NULL) {
		size_t i;

		if ((g->lused + 1) * 2 > g->lcap && !lg_grow(g))
			return NULL;
		for (i = lg_hash(addr, g->lcap);; i = (i + 1) & (g->lcap - 1))
			if ((l = lg_at(g, g->ltab, i))->state == LG_EMPTY)
				break;
		g->lused++;
	}
	memset(l, 0, g->lstride);
	l->addr = addr;
	l->state = LG_LIVE;
	g->llive++;
	return l;
}

/* Report a bad call on a large block (l its record, NULL if none). */
void
ba_gpa_report_large(struct beamalloc_gpa *g, beamalloc_report_kind kind,
    uintptr_t p, const struct large *l, size_t len, size_t align,
    uintptr_t ra)
{
	beamalloc_report r = {
		.kind = kind, .addr = (const void *)p, .given_size = len,
		.given_align = align, .ret_addr = ra,
	};

	if (l != NULL) {
		r.size = l->len;
		r.align = (size_t)1 << l->lalign;
		ba_gpa_set_traces(g, &r, l->atid,
		    l->state == LG_FREED ? l->ftid : 0, &l->ra);
	}
	ba_gpa_emit(g, &r);
}

/* The live record for a free/resize/remap of p, or NULL after a report
 * (made with the lock dropped: the callback may allocate).  Under
 * large_lock. */
static struct large *
lg_live(struct beamalloc_gpa *g, uintptr_t p, size_t len, size_t align,
    uintptr_t ra)
{
	struct large *l = ba_gpa_lg_find(g, p);
	beamalloc_report_kind kind;
	union large_copy copy;

	if (l != NULL && l->state == LG_LIVE && (!g->safety ||
	    (l->len == len && l->lalign == log2_of(align))))
		return l;
	if (l == NULL)
		kind = BEAMALLOC_REPORT_INVALID_FREE;
	else if (l->state != LG_LIVE)
		kind = BEAMALLOC_REPORT_DOUBLE_FREE;
	else if (l->len != len)
		kind = BEAMALLOC_REPORT_SIZE_MISMATCH;
	else
		kind = BEAMALLOC_REPORT_ALIGN_MISMATCH;
	if (l != NULL)
		memcpy(&copy, l, g->lstride);
	unlock(g, &g->large_lock);
	ba_gpa_report_large(g, kind, p, l != NULL ? &copy.l : NULL, len, align,
	    ra);
	lock(g, &g->large_lock);
	return NULL;
}

/* Before a large block counts: the caller's own credit first, so that
 * one thread's peak stays exact. */
static void
settle_mine(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (g->batched && (tc = tcache_of(g)) != NULL)
		ba_gpa_settle(g, tc);
}

/* The bytes a large block may check past its length: its canary's; a
 * guarded block's up to the guard page, where its alignment put it. */
static inline size_t
lg_room(const struct beamalloc_gpa *g, size_t len, size_t align, bool guard)
{
	return guard ? (size_t)ba_align_forward(len, align) : len +
	    lg_extra(g);
}

/* guard: mapped against a guard page (NULL, no report, when that cannot
 * be done: the caller places the block as usual). */
void *
ba_gpa_large_alloc(struct beamalloc_gpa *g, size_t len, size_t align,
    uintptr_t ra, bool guard)
{
	size_t extra = guard ? 0 : lg_extra(g);
	uint32_t atid = 0;
	struct large *l;
	void *p;

	/* Not for a guarded block: a ba_gpa_settle leaves the thread no room, and
	 * its next allocations up to a new high would each take the slow
	 * path (lifo1000: 9 instructions an op); the peak may miss the
	 * thread's unsettled credit then, as with several threads. */
	if (!guard)
		settle_mine(g);
	if (!ba_gpa_charge_exact(g, (ptrdiff_t)len, 1))
		return ba_fail(ENOMEM);
	if (g->depth != 0 && (g->sample == 0 || atomic_fetch_add_explicit(
	    &g->lsample, 1, memory_order_relaxed) % g->sample == 0))
		atid = ba_trace_id(g->traces, g->depth, ra);
	if (guard) {
		size_t n = 0;
		const uintptr_t *fr = atid != 0 ?
		    ba_depot_get(g->traces, atid, &n) : NULL;

		struct ba_guard_old old = { 0 };

		p = ba_guard_alloc(g, len, align, ra, fr, (unsigned)n, &old);
		if (old.addr != 0)
			ba_gpa_report_large(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE,
			    old.addr, &(struct large){ .len = old.len,
			    .ra = old.ra, .lalign = (uint8_t)log2_of(old.align),
			    .state = LG_FREED }, old.len, old.align, ra);
		if (p == NULL) {
			ba_gpa_charge_exact(g, -(ptrdiff_t)len, -1);
			return NULL;
		}
	} else if (len + extra < len) {
		p = NULL;
		errno = ENOMEM;
	} else
		p = ba_raw_alloc(g->backing, len + extra, align, ra);
	if (p == NULL) {
		ba_gpa_charge_exact(g, -(ptrdiff_t)len, -1);
		/* The front-end calls this GPA straight: errno is ours. */
		return ba_fail_from_vtable();
	}
	lock(g, &g->large_lock);
	if ((l = lg_insert(g, (uintptr_t)p)) != NULL) {
		l->len = len;
		l->lalign = (uint8_t)log2_of(align);
		l->ra = ra;
		l->guard = guard;
		l->atid = atid;
		if (!guard)
			atomic_fetch_add_explicit(&g->backing_bytes,
			    len + extra, memory_order_relaxed);
	}
	unlock(g, &g->large_lock);
	if (l == NULL) {
		if (guard)
			ba_guard_free(p);
		else
			ba_raw_free(g->backing, p, len + extra, align, ra);
		ba_gpa_charge_exact(g, -(ptrdiff_t)len, -1);
		return ba_fail(ENOMEM);
	}
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, p, len, lg_room(g, len, align, guard));
	return p;
}

/* The canary of a live large block (its lock held): false, with the
 * record copied out to report, when it was overwritten. */
bool
ba_gpa_lg_canary(struct beamalloc_gpa *g, const struct large *l,
    union large_copy *copy)
{
	if (ba_chk_canary_ok(g, (unsigned char *)l->addr, l->len,
	    lg_room(g, l->len, (size_t)1 << l->lalign, l->guard)))
		return true;
	memcpy(copy, l, g->lstride);
	return false;
}

/* A freed large block (not guarded) of `held` bytes back to the backing,
 * now or as it leaves quarantine.  Its canary and junk were poisoned for
 * ASan: a backing that ASan does not manage (the VM's allocators) would
 * hand those bytes out again still poisoned. */
void
ba_gpa_large_release(struct beamalloc_gpa *g, void *p, size_t held,
    size_t align, uintptr_t ra)
{
	BA_ASAN_UNPOISON(p, held);
	ba_raw_free(g->backing, p, held, align, ra);
	atomic_fetch_sub_explicit(&g->backing_bytes, held,
	    memory_order_relaxed);
}

void
ba_gpa_large_free(struct beamalloc_gpa *g, uintptr_t p, size_t len,
    size_t align, uintptr_t ra)
{
	union large_copy copy;
	struct large *l;
	size_t rlen = 0, ralign = 0;
	bool guard = false, over = false;

	lock(g, &g->large_lock);
	if ((l = lg_live(g, p, len, align, ra)) != NULL) {
		rlen = l->len;
		ralign = (size_t)1 << l->lalign;
		guard = l->guard;
		over = g->canary && !ba_gpa_lg_canary(g, l, &copy);
		l->state = LG_FREED;
		if (l->atid != 0)
			l->ftid = ba_trace_id(g->traces, g->depth, ra);
		g->llive--;
	}
	unlock(g, &g->large_lock);
	if (l == NULL)
		return;
	if (BA_UNLIKELY(over))
		ba_gpa_report_large(g, BEAMALLOC_REPORT_OVERFLOW, p, &copy.l,
		    len, align, ra);
	if (guard)
		ba_guard_free((void *)p);
	else {
		ba_chk_fill_freed(g, (unsigned char *)p, rlen);
		/* Still the backing's while in quarantine: counted out
		 * when it goes back (ba_gpa_large_release()). */
		if (g->quar == NULL ||
		    !ba_gpa_quar_hold(g, NULL, &(struct ba_qent){
		    .p = p, .room = rlen + lg_extra(g), .len = rlen,
		    .lalign = (uint8_t)log2_of(ralign), .large = true }))
			ba_gpa_large_release(g, (void *)p, rlen + lg_extra(g),
			    ralign, ra);
	}
	if (!guard)
		settle_mine(g);
	ba_gpa_charge_exact(g, -(ptrdiff_t)rlen, -1);
}

/* resize (move false) or remap (move true) of a large block.  All under
 * the lock: nobody may see the block half-changed. */
void *
ba_gpa_large_change(struct beamalloc_gpa *g, uintptr_t p, size_t len,
    size_t align, size_t new_len, bool move, uintptr_t ra)
{
	union large_copy copy, bad;
	struct large *l;
	void *q = NULL;
	ptrdiff_t delta = (ptrdiff_t)new_len - (ptrdiff_t)len;
	size_t extra = lg_extra(g);
	bool over = false;

	settle_mine(g);
	lock(g, &g->large_lock);
	if ((l = lg_live(g, p, len, align, ra)) == NULL) {
		errno = EINVAL;		/* reported: refused, not "cannot" */
		goto out;
	}
	over = g->canary && !ba_gpa_lg_canary(g, l, &bad);
	/* A guarded block stays as it was mapped: the caller moves it. */
	if (l->guard || new_len + extra < new_len)
		goto out;
	len = l->len;
	align = (size_t)1 << l->lalign;
	/* A moved block needs a new record: make room first. */
	if (move && (g->lused + 1) * 2 > g->lcap) {
		if (!lg_grow(g))
			goto out;
		l = ba_gpa_lg_find(g, p);
	}
	if (delta > 0 && !ba_gpa_charge_exact(g, delta, 0))
		goto out;
	ba_chk_canary_expose(g, (unsigned char *)p, len, len + extra, true);
	q = move ? ba_raw_remap(g->backing, (void *)p, len + extra, align,
	    new_len + extra, ra) : ba_raw_resize(g->backing, (void *)p,
	    len + extra, align, new_len + extra, ra) ? (void *)p : NULL;
	if (q == NULL) {
		ba_chk_canary_expose(g, (unsigned char *)p, len, len + extra,
		    false);
		if (delta > 0)
			ba_gpa_charge_exact(g, -delta, 0);
		goto out;
	}
	if (delta < 0)
		ba_gpa_charge_exact(g, delta, 0);
	atomic_fetch_add_explicit(&g->backing_bytes, (size_t)delta,
	    memory_order_relaxed);
	if ((uintptr_t)q != p) {
		/* The old address reads as freed (by this remap). */
		memcpy(&copy, l, g->lstride);
		l->state = LG_FREED;
		g->llive--;
		l = lg_insert(g, (uintptr_t)q);
		memcpy(l, &copy, g->lstride);
		l->addr = (uintptr_t)q;
	}
	l->len = new_len;
	ba_chk_canary_set(g, q, new_len, new_len + extra);
out:
	unlock(g, &g->large_lock);
	if (BA_UNLIKELY(over))
		ba_gpa_report_large(g, BEAMALLOC_REPORT_OVERFLOW, p, &bad.l,
		    len, align, ra);
	return q;
}
