/*
 * large.c - the GPA's large blocks (past 16 KiB or more aligned): from
 * the backing, recorded in an open-addressing table; a few freed ones
 * are kept for the next, until a trim.
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
 * The table: large blocks' records, open addressing.  A freed block's
 * record stays (for double-free reports) until the table is rebuilt or
 * the address comes back.
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

/* ------------------------------------------------------------------------
 * Kept blocks.  A freed large block is kept (the newest LKEEP_N, up to
 * LKEEP_BYTES in all) for the next large allocation it fits, and a trim
 * gives them back.  A buffer grown to 1 MiB by realloc and freed, again
 * and again, then takes one block whose pages are touched already and
 * grows in it without a copy, where the backing would map and fault
 * every page afresh (bench/README.md, "Kept large blocks").  A block
 * handed out keeps its slack for growth in place; slack past twice a
 * block's length counts in lslack, up to LSLACK_MAX, so that kept
 * blocks cannot pin much memory under small long-lived ones.  Under a
 * memory checker nothing is kept: its reports of a large block used
 * after its free stay as they were.
 * ---------------------------------------------------------------------- */

/* l's slack past twice its length (its canary's room counted in). */
static size_t
lg_over(const struct beamalloc_gpa *g, const struct large *l)
{
	size_t need = l->len + lg_extra(g);

	return l->guard || l->held - need <= need ? 0 : l->held - need;
}

/* The smallest kept block for need bytes at align, taken out; 0 if
 * none fits, or if it would hold too much slack.  Under large_lock. */
static uintptr_t
lk_take(struct beamalloc_gpa *g, size_t need, size_t align, size_t *held)
{
	unsigned best = LKEEP_N;
	struct lkept k;

	for (unsigned i = 0; i < g->nlkept; i++)
		if (g->lkept[i].held >= need &&
		    g->lkept[i].lalign == log2_of(align) && (best == LKEEP_N ||
		    g->lkept[i].held < g->lkept[best].held))
			best = i;
	if (best == LKEEP_N)
		return 0;
	k = g->lkept[best];
	if (k.held - need > need && g->lslack + (k.held - need) > LSLACK_MAX)
		return 0;
	memmove(&g->lkept[best], &g->lkept[best + 1],
	    (g->nlkept - best - 1) * sizeof(k));
	g->nlkept--;
	g->lkept_bytes -= k.held;
	*held = k.held;
	return k.addr;
}

/* Blocks out of the kept list, back to the backing (no lock held). */
static size_t
lk_free(struct beamalloc_gpa *g, const struct lkept *k, unsigned n)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < n; i++) {
		ba_raw_free(g->backing, (void *)k[i].addr, k[i].held,
		    (size_t)1 << k[i].lalign, 0);
		bytes += k[i].held;
	}
	atomic_fetch_sub_explicit(&g->backing_bytes, bytes,
	    memory_order_relaxed);
	return bytes;
}

/* Keep freed block p, the oldest kept ones going back to make room;
 * false (nothing changed) when it is not to be kept. */
static bool
lk_keep(struct beamalloc_gpa *g, void *p, size_t held, size_t align)
{
	struct lkept out[LKEEP_N];
	unsigned nout = 0;

	if (g->tools || held > LKEEP_BYTES)
		return false;
	lock(g, &g->large_lock);
	while (g->nlkept == LKEEP_N || g->lkept_bytes + held > LKEEP_BYTES) {
		out[nout++] = g->lkept[0];
		g->lkept_bytes -= g->lkept[0].held;
		memmove(&g->lkept[0], &g->lkept[1],
		    --g->nlkept * sizeof(out[0]));
	}
	g->lkept[g->nlkept++] = (struct lkept){ .addr = (uintptr_t)p,
	    .held = held, .lalign = (uint8_t)log2_of(align) };
	g->lkept_bytes += held;
	unlock(g, &g->large_lock);
	lk_free(g, out, nout);
	return true;
}

/* Every kept block back to the backing (a trim).  Bytes released. */
size_t
ba_gpa_large_trim(struct beamalloc_gpa *g)
{
	struct lkept out[LKEEP_N];
	unsigned n;

	lock(g, &g->large_lock);
	n = g->nlkept;
	memcpy(out, g->lkept, n * sizeof(out[0]));
	g->nlkept = 0;
	g->lkept_bytes = 0;
	unlock(g, &g->large_lock);
	return lk_free(g, out, n);
}

/* ------------------------------------------------------------------------
 * Allocation, free, resize and remap
 * ---------------------------------------------------------------------- */

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

/* The bytes a large block may check past its length: its canary's; a
 * guarded block's up to the guard page, where its alignment put it. */
static inline size_t
lg_room(const struct beamalloc_gpa *g, size_t len, size_t align, bool guard)
{
	return guard ? (size_t)ba_align_forward(len, align) : len +
	    lg_extra(g);
}

/* Whose credit a large block's bytes go through, or NULL: the shared
 * counters, exactly, the caller's own credit settled first so that one
 * thread's peak stays exact.  A guarded block's go through the thread's
 * credit, as a small block's: a settle leaves the thread no room, and
 * its next allocations up to a new high would each take the slow path
 * (lifo1000: 9 instructions an op), while counting the bytes apart from
 * an unsettled credit lost the peak the two made together (found by a
 * review: 16 blocks of 1000 live, then a peak of 12,000).  Its block
 * is counted exactly either way. */
static struct tcache *
lg_credit_tc(struct beamalloc_gpa *g, bool guard)
{
	struct tcache *tc = guard && g->batched ? tcache_of(g) : NULL;

	if (tc == NULL)
		ba_gpa_settle_mine(g);
	return tc;
}

/* guard: mapped against a guard page (NULL, no report, when that cannot
 * be done: the caller places the block as usual). */
void *
ba_gpa_large_alloc(struct beamalloc_gpa *g, size_t len, size_t align,
    uintptr_t ra, bool guard)
{
	size_t extra = guard ? 0 : lg_extra(g), held = len + extra;
	struct tcache *tc = lg_credit_tc(g, guard);
	/* The bytes the shared counters take now; the credit's wait for
	 * the block (a failed allocation is no peak). */
	ptrdiff_t now = tc != NULL ? 0 : (ptrdiff_t)len;
	uint32_t atid = 0;
	struct large *l;
	bool kept = false;
	void *p;

	if (!ba_gpa_reserve(g, now, 1))
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
			(void)ba_gpa_reserve(g, -now, -1);
			return NULL;
		}
	} else if (held < len) {
		p = NULL;
		errno = ENOMEM;
	} else {
		lock(g, &g->large_lock);
		p = (void *)lk_take(g, held, align, &held);
		unlock(g, &g->large_lock);
		if (!(kept = p != NULL))
			p = ba_raw_alloc(g->backing, held, align, ra);
	}
	if (p == NULL) {
		(void)ba_gpa_reserve(g, -now, -1);
		/* The front-end calls this GPA straight: errno is ours. */
		return ba_fail_from_vtable();
	}
	/* Junk and canary before the block is in the table, where a leak
	 * check on another thread looks at its canary. */
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, p, len, lg_room(g, len, align, guard));
	lock(g, &g->large_lock);
	if ((l = lg_insert(g, (uintptr_t)p)) != NULL) {
		l->len = len;
		l->held = held;
		l->lalign = (uint8_t)log2_of(align);
		l->ra = ra;
		l->guard = guard;
		l->atid = atid;
		g->lslack += lg_over(g, l);
		if (!guard && !kept)
			atomic_fetch_add_explicit(&g->backing_bytes, held,
			    memory_order_relaxed);
	}
	unlock(g, &g->large_lock);
	if (l == NULL) {
		if (guard)
			ba_guard_free(p);
		else if (kept)
			ba_gpa_large_release(g, p, held, align, ra);
		else {
			/* Filled above: its canary poisoned for ASan. */
			BA_ASAN_UNPOISON(p, held);
			ba_raw_free(g->backing, p, held, align, ra);
		}
		(void)ba_gpa_reserve(g, -now, -1);
		return ba_fail(ENOMEM);
	}
	if (tc != NULL)
		credit(g, tc, (ptrdiff_t)len);
	else
		ba_gpa_peak_live(g);
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

/* A freed large block (not guarded) of `held` bytes kept or back to the
 * backing, now or as it leaves quarantine.  Its canary and junk were
 * poisoned for ASan: a backing that ASan does not manage (the VM's
 * allocators) would hand those bytes out again still poisoned. */
void
ba_gpa_large_release(struct beamalloc_gpa *g, void *p, size_t held,
    size_t align, uintptr_t ra)
{
	if (lk_keep(g, p, held, align))
		return;
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
	struct tcache *tc;
	size_t rlen = 0, rheld = 0, ralign = 0;
	bool guard = false, over = false;

	lock(g, &g->large_lock);
	if ((l = lg_live(g, p, len, align, ra)) != NULL) {
		rlen = l->len;
		rheld = l->held;
		ralign = (size_t)1 << l->lalign;
		g->lslack -= lg_over(g, l);
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
		    .p = p, .room = rheld, .len = rlen,
		    .lalign = (uint8_t)log2_of(ralign), .large = true }))
			ba_gpa_large_release(g, (void *)p, rheld, ralign, ra);
	}
	if ((tc = lg_credit_tc(g, guard)) != NULL) {
		credit(g, tc, -(ptrdiff_t)rlen);
		(void)ba_gpa_reserve(g, 0, -1);
	} else
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
	size_t extra = lg_extra(g), held;
	bool over = false;

	ba_gpa_settle_mine(g);
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
	held = l->held;
	/* A moved block needs a new record: make room first. */
	if (move && (g->lused + 1) * 2 > g->lcap) {
		if (!lg_grow(g))
			goto out;
		l = ba_gpa_lg_find(g, p);
	}
	if (delta > 0 && !ba_gpa_reserve(g, delta, 0))
		goto out;
	/* Growth within what the block holds (a kept block handed out
	 * bigger) stays in place; a shrink gives back what the backing
	 * takes back. */
	if (delta > 0 && new_len + extra <= held)
		q = (void *)p;
	else {
		ba_chk_canary_expose(g, (unsigned char *)p, len, len + extra,
		    true);
		q = move ? ba_raw_remap(g->backing, (void *)p, held, align,
		    new_len + extra, ra) : ba_raw_resize(g->backing, (void *)p,
		    held, align, new_len + extra, ra) ? (void *)p : NULL;
		if (q == NULL) {
			ba_chk_canary_expose(g, (unsigned char *)p, len,
			    len + extra, false);
			if (delta > 0)
				ba_gpa_charge_exact(g, -delta, 0);
			goto out;
		}
		atomic_fetch_add_explicit(&g->backing_bytes, new_len + extra -
		    held, memory_order_relaxed);
		held = new_len + extra;
	}
	if (delta < 0)
		ba_gpa_charge_exact(g, delta, 0);
	else
		ba_gpa_peak_live(g);
	g->lslack -= lg_over(g, l);
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
	l->held = held;
	g->lslack += lg_over(g, l);
	ba_chk_fill_grown(g, q, len, new_len);
	ba_chk_canary_set(g, q, new_len, new_len + extra);
out:
	unlock(g, &g->large_lock);
	if (BA_UNLIKELY(over))
		ba_gpa_report_large(g, BEAMALLOC_REPORT_OVERFLOW, p, &bad.l,
		    len, align, ra);
	return q;
}
