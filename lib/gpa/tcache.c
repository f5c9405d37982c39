/*
 * tcache.c - thread caches: a thread's cache is found from its thread
 * pointer (a slot claimed once, given back when the thread ends), and
 * holds two magazines and an outbox per class.  Here the magazines are
 * loaded, traded with the cache's depot when empty or full, and the
 * outbox's slots, freed by this thread but another cache's, sent home.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "gpa.h"

/* The records of no slab: a fresh cache's memo points here, with the
 * slot size of a whole slab, so only p == 0 can match it and reads
 * REC_NEW (not live): the general path handles that.  Never written. */
static const _Alignas(16) unsigned char no_recs[sizeof(struct rec)];

/* A free thread cache slot's: the owner of no thread.  Never written. */
struct tcache ba_gpa_no_tc;

/* ------------------------------------------------------------------------
 * A class's magazines in the cache: top, bottom and end pointers
 * ---------------------------------------------------------------------- */

static inline uint32_t
ld_n(const struct tcache *tc, size_t c)
{
	/* From the magazine's base, not bot: a trim may have left a
	 * sentinel there. */
	return (uint32_t)(tc->top[c] - tc->loaded[c]->e);
}

static void
ld_save(struct tcache *tc, size_t c)
{
	if (tc->loaded[c] != &ba_gpa_no_mag)
		tc->loaded[c]->n = ld_n(tc, c);
}

/* What class c's loaded magazine gave out since it was loaded. */
static inline ptrdiff_t
ld_given(const struct tcache *tc, size_t c)
{
	return (ptrdiff_t)(__atomic_load_n(&tc->mark[c], __ATOMIC_RELAXED) -
	    (uintptr_t)__atomic_load_n(&tc->top[c], __ATOMIC_RELAXED)) /
	    (ptrdiff_t)sizeof(struct entry);
}

/* Point top[c] into tc->loaded[c], after folding what the magazine it
 * pointed into gave out into nblk. */
static void
ld_top(struct tcache *tc, size_t c)
{
	struct mag *m = tc->loaded[c];
	unsigned s = tc->seq;

	__atomic_store_n(&tc->seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&tc->nblk, tc->nblk + ld_given(tc, c),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&tc->top[c], m->e + m->n, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->mark[c], (uintptr_t)tc->top[c],
	    __ATOMIC_RELAXED);
	__atomic_store_n(&tc->seq, s + 2, __ATOMIC_RELEASE);
}

static void
ld_bounds(struct tcache *tc, size_t c)
{
	struct mag *m = tc->loaded[c];

	__atomic_store_n(&tc->bot[c], m->e, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->end[c], m->e + m->cap, __ATOMIC_RELAXED);
}

/* Load tc->loaded[c] into the three pointers. */
static void
ld_load(struct tcache *tc, size_t c)
{
	ld_top(tc, c);
	ld_bounds(tc, c);
}

/* The spare magazine of class c becomes the loaded one, and the loaded
 * one the spare.  True, for the callers' return. */
static bool
ld_swap(struct tcache *tc, size_t c)
{
	struct mag *m = tc->prev[c];

	tc->prev[c] = tc->loaded[c];
	tc->loaded[c] = m;
	ld_load(tc, c);
	return true;
}

/* Slots in class c's outbox: frees not yet counted in nblk. */
static inline ptrdiff_t
ob_n(const struct tcache *tc, size_t c)
{
	return __atomic_load_n(&tc->otop[c], __ATOMIC_RELAXED) -
	    __atomic_load_n(&tc->obot[c], __ATOMIC_RELAXED);
}

/* Point class c's outbox at tc->out[c], empty, after counting the n
 * slots it held (sent home) freed in nblk: one step for stats (the
 * seqlock, as ld_top()). */
static void
ob_set(struct tcache *tc, size_t c, ptrdiff_t n)
{
	unsigned s = tc->seq;

	__atomic_store_n(&tc->seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&tc->nblk, tc->nblk - n, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->obot[c], tc->out[c]->e, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->otop[c], tc->out[c]->e, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->seq, s + 2, __ATOMIC_RELEASE);
}

static void
ob_bounds(struct tcache *tc, size_t c)
{
	__atomic_store_n(&tc->oend[c], tc->out[c]->e + tc->out[c]->cap,
	    __ATOMIC_RELAXED);
}

/* The cache's live blocks, read from any thread (a seqlock reader). */
ptrdiff_t
ba_gpa_tc_blocks(const struct tcache *tc)
{
	unsigned s;
	ptrdiff_t n;

	do {
		s = __atomic_load_n(&tc->seq, __ATOMIC_ACQUIRE);
		n = __atomic_load_n(&tc->nblk, __ATOMIC_RELAXED);
		for (size_t c = 0; c < NCLASS; c++)
			n += ld_given(tc, c) - ob_n(tc, c);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((s & 1) != 0 ||
	    s != __atomic_load_n(&tc->seq, __ATOMIC_RELAXED));
	return n;
}

/* ------------------------------------------------------------------------
 * Thread caches: made, found, claimed
 * ---------------------------------------------------------------------- */

static void
memo_clear(struct tcache *tc)
{
	for (size_t i = 0; i < NMEMO; i++)
		tc->memo[i] = (struct memo){ .base = 0,
		    .div = (uint64_t)1 << (32 - SLAB_SHIFT),
		    .recs = (unsigned char *)no_recs, .top = &tc->top[0] };
}

/* Slots per magazine at least: MAG_BYTES' worth is only 4 slots of a
 * 4 KiB class, and a batch of such blocks took a slow path every 8
 * (refill4m: 311 instructions a block); 16 up to 4 KiB (64 KiB a
 * magazine), 8 above, where 16 would reach the cache's whole bound. */
static inline size_t
mag_min(size_t c)
{
	return class_size(c) <= 4096 ? 16 : 8;
}

/* A new cache; shared: the GPA's shared one (g->tc0), published under
 * the lock that links it into g->tcaches, so that no trim walking them
 * ever takes it for a thread's idle cache and steals its magazines:
 * nothing would put its bounds back (it has no busy flag; its users
 * hold g->shared_lock).  That happened when a thread that could not
 * have a cache of its own made the shared one while a trim ran
 * (t/oom). */
struct tcache *
ba_gpa_tcache_new(struct beamalloc_gpa *g, bool shared)
{
	struct tcache *tc;

	lock(g, &g->lock);
	/* The memo is aligned to a line, so the cache is: room to align
	 * it within metadata of any alignment (a cache is never freed). */
	tc = ba_gpa_meta_zalloc(g, sizeof(*tc) + _Alignof(struct tcache) -
	    1);
	if (tc != NULL) {
		tc = (struct tcache *)(void *)ba_align_forward((uintptr_t)tc,
		    _Alignof(struct tcache));
		for (size_t c = 0; c < NCLASS; c++) {
			size_t cap = MAG_BYTES / class_size(c);

			tc->loaded[c] = tc->prev[c] = tc->out[c] =
			    &ba_gpa_no_mag;
			ld_load(tc, c);
			ob_set(tc, c, 0);
			ob_bounds(tc, c);
			pthread_mutex_init(&tc->dep[c].lock, NULL);
			tc->dep[c].mag_cap = (uint32_t)(cap > MAG_MAX ?
			    MAG_MAX : ba_max(cap, mag_min(c)));
		}
		memo_clear(tc);
		tc->next = g->tcaches;
		g->tcaches = tc;
		g->ncaches++;
		if (shared)
			__atomic_store_n(&g->tc0, tc, __ATOMIC_RELEASE);
	}
	unlock(g, &g->lock);
	return tc;
}

/* The slots of tc's slabs outside its depots: live, or cached. */
static size_t
slots_out(struct beamalloc_gpa *g, struct tcache *tc)
{
	size_t n = 0;

	for (size_t c = 0; c < NCLASS; c++) {
		lock(g, &tc->dep[c].lock);
		n += depot_out(&tc->dep[c]);
		unlock(g, &tc->dep[c].lock);
	}
	return n;
}

/* Caches given back that a claim compares, at most: it takes the one
 * with the fewest slots out, not one whose slabs another thread's
 * blocks fill (whose frees would all go through the outbox). */
#define TAKE_LOOK 4

/* Takes tc off g->tc_free, if it is there.  Under g->lock. */
static bool
free_take(struct beamalloc_gpa *g, struct tcache *tc)
{
	for (struct tcache **p = &g->tc_free; *p != NULL; p = &(*p)->free_next)
		if (*p == tc) {
			*p = tc->free_next;
			__atomic_store_n(&tc->ended, 0, __ATOMIC_RELAXED);
			tc->adopt = tc->adopt_no = NULL;	/* the last owner's */
			return true;
		}
	return false;
}

/* A cache for a slot about to be claimed: one a thread gave back when
 * it ended (or made for a slot another thread took first), or a new
 * one. */
static struct tcache *
tcache_take(struct beamalloc_gpa *g, struct tcache *want)
{
	struct tcache *look[TAKE_LOOK], *tc = NULL;
	size_t n = 0, best = SIZE_MAX;

	lock(g, &g->lock);
	if (want != NULL && free_take(g, want))
		tc = want;
	for (struct tcache *f = g->tc_free; tc == NULL && f != NULL &&
	    n < TAKE_LOOK; f = f->free_next)
		look[n++] = f;
	unlock(g, &g->lock);
	if (tc != NULL)
		return tc;
	/* Depot locks come before g->lock: counted outside it.  Caches are
	 * never freed, so the pointers stay good. */
	for (size_t i = 0; i < n && best != 0; i++) {
		size_t out = slots_out(g, look[i]);

		if (out < best) {
			best = out;
			tc = look[i];
		}
	}
	lock(g, &g->lock);
	if (tc == NULL || !free_take(g, tc))
		if ((tc = g->tc_free) != NULL)
			(void)free_take(g, tc);
	unlock(g, &g->lock);
	return tc != NULL ? tc : ba_gpa_tcache_new(g, false);
}

/* A cache no thread owns, for the next (tcache_take()). */
void
ba_gpa_tc_free_put(struct beamalloc_gpa *g, struct tcache *tc)
{
	lock(g, &g->lock);
	tc->free_next = g->tc_free;
	g->tc_free = tc;
	__atomic_store_n(&tc->ended, 1, __ATOMIC_RELAXED);
	unlock(g, &g->lock);
}

/* A cache whose thread is done with it: its magazines to the depots
 * (waiting out a ba_gpa_steal_idle() at work on them), its credit into
 * the counters.  Its block count stays with it. */
void
ba_gpa_tc_retire(struct beamalloc_gpa *g, struct tcache *tc)
{
	ba_gpa_tc_enter_wait(g, tc);
	for (size_t c = 0; c < NCLASS; c++)
		ba_gpa_tc_drain(g, tc, c, true);
	ba_gpa_tc_leave_wait(g, tc);
	if (g->batched) {
		/* Under g->lock: a checkin may be settling every cache
		 * (ba_gpa_settle_all()) as a thread ends. */
		lock(g, &g->lock);
		ba_gpa_settle(g, tc);
		unlock(g, &g->lock);
	}
}

/* The slot of the calling thread (key k), whose cache is tc: its home,
 * or one past it (ba_gpa_tcache_slow()).  NTHREADS if none. */
static size_t
slot_mine(struct beamalloc_gpa *g, uintptr_t k, const struct tcache *tc)
{
	size_t i = thread_home(k);

	for (size_t n = 0; n < NTHREADS; n++, i = (i + 1) & (NTHREADS - 1))
		if (atomic_load_explicit(&g->tkey[i],
		    memory_order_relaxed) == k)
			return atomic_load_explicit(&g->tcs[i],
			    memory_order_relaxed) == tc ? i : NTHREADS;
	return NTHREADS;
}

/* The calling thread frees what an ended thread left (a successor
 * given its predecessor's work, as larson's threads are): its frees go
 * home to that thread's cache, an outbox at a time, while its own cache
 * carves slabs anew.  It takes that cache over instead, slabs, memo and
 * all, and gives its own back: the frees are its own again.  Only if
 * the ended cache has more slots out than its own, so that two caches
 * never change hands back and forth; a cache not taken is not asked
 * about again. */
void
ba_gpa_tc_adopt(struct beamalloc_gpa *g, struct tcache *tc)
{
	struct tcache *a = tc->adopt;
	uintptr_t k = thread_key();
	size_t i;
	bool found;

	tc->adopt = NULL;
	if (a == tc->adopt_no)
		return;
	if (slots_out(g, a) <= slots_out(g, tc)) {
		tc->adopt_no = a;
		return;
	}
	if ((i = slot_mine(g, k, tc)) == NTHREADS)
		return;
	lock(g, &g->lock);
	found = free_take(g, a);
	unlock(g, &g->lock);
	if (!found)
		return;			/* claimed since the hint */
	ba_gpa_tc_enter_wait(g, a);
	__atomic_store_n(&a->owner, k, __ATOMIC_RELAXED);
	atomic_store_explicit(&g->tcs[i], a, memory_order_release);
	ba_gpa_tc_leave_wait(g, a);
	ba_gpa_tc_retire(g, tc);
	ba_gpa_tc_free_put(g, tc);
}

/* The calling thread's cache when its home slot is not its own: probe,
 * or claim a slot.  Slots are probed linearly; a slot given back when
 * its thread ended keeps a tombstone key (TKEY_TOMB), so that the probe
 * of a thread placed past it goes on, and is claimed again by the next
 * thread that finds no slot of its own before an empty one.  The cache
 * exists before the key is claimed and is stored right after, before
 * the only thread that can match the key leaves this function.  NULL
 * when every slot is taken or memory ran out: the caller then shares tc0
 * under a lock. */
struct tcache *
ba_gpa_tcache_slow(struct beamalloc_gpa *g, struct tcache *want)
{
	uintptr_t k = thread_key(), cur;
	size_t h = thread_home(k), i, tomb;
	struct tcache *tc;

again:
	tomb = NTHREADS;
	for (size_t n = 0; n < NTHREADS; n++) {
		i = (h + n) & (NTHREADS - 1);
		cur = atomic_load_explicit(&g->tkey[i], memory_order_acquire);
		/* A thread that ended without giving its slot back (its
		 * exit hook could not be set) leaves its slot and cache to
		 * the next thread given the same thread pointer. */
		if (cur == k) {
			tc = atomic_load_explicit(&g->tcs[i],
			    memory_order_relaxed);
			return tc != &ba_gpa_no_tc ? tc : NULL;
		}
		if (cur == TKEY_TOMB && tomb == NTHREADS)
			tomb = i;
		if (cur == 0)
			goto claim;
	}
	if (tomb == NTHREADS)
		return NULL;		/* every slot taken: many threads */
claim:
	if (tomb != NTHREADS) {
		i = tomb;
		cur = TKEY_TOMB;
	}
	if ((tc = tcache_take(g, want)) == NULL)
		return NULL;
	if (!atomic_compare_exchange_strong(&g->tkey[i], &cur, k)) {
		/* Another thread took the slot: keep the cache for later. */
		ba_gpa_tc_free_put(g, tc);
		goto again;
	}
	__atomic_store_n(&tc->owner, k, __ATOMIC_RELAXED);
	atomic_store_explicit(&g->tcs[i], tc, memory_order_release);
	ba_gpa_exit_note(g, i);
	return tc;
}

/* A thread-safe GPA's shared cache, for threads without one of their
 * own, made at its first use.  Under g->shared_lock; stored atomically,
 * since the general paths below ask whether theirs is it without the
 * lock (a thread that uses it made or found it itself). */
struct tcache *
ba_gpa_shared_tc(struct beamalloc_gpa *g)
{
	struct tcache *tc = g->tc0;

	return tc != NULL ? tc : ba_gpa_tcache_new(g, true);
}

static inline bool
is_shared_tc(struct beamalloc_gpa *g, const struct tcache *tc)
{
	return tc == __atomic_load_n(&g->tc0, __ATOMIC_RELAXED);
}

/* The general paths wait while their cache is being emptied, then set
 * the bounds again if a trim left sentinels there. */
void
ba_gpa_tc_enter_wait(struct beamalloc_gpa *g, struct tcache *tc)
{
	if (!g->thread_safe || is_shared_tc(g, tc))
		return;			/* tc0: its own lock */
	while (!tc_enter(tc))
		sched_yield();
	if (BA_UNLIKELY(__atomic_load_n(&tc->stolen, __ATOMIC_ACQUIRE))) {
		for (size_t c = 0; c < NCLASS; c++) {
			ld_bounds(tc, c);
			ob_bounds(tc, c);
		}
		__atomic_store_n(&tc->stolen, 0, __ATOMIC_RELAXED);
	}
}

void
ba_gpa_tc_leave_wait(struct beamalloc_gpa *g, struct tcache *tc)
{
	if (g->thread_safe && !is_shared_tc(g, tc))
		tc_leave(tc);
}

/* ------------------------------------------------------------------------
 * Trades with the depot: a magazine empty or full, the outbox home
 * ---------------------------------------------------------------------- */

static void tc_bound(struct beamalloc_gpa *g, struct tcache *tc, size_t c);

/* The cache traded a magazine with its depot d: not idle
 * (depot.c's reclaim_idle()).  By the owner, under d's lock. */
static inline void
traded(struct tcache *tc, struct depot *d)
{
	uint32_t n = tc->trades + 1;

	__atomic_store_n(&tc->trades, n, __ATOMIC_RELAXED);
	__atomic_store_n(&d->traded, n, __ATOMIC_RELAXED);
}

/* A mass of frees is ending: the slabs, at their most since the last
 * sweep, grew SWEEP_MIN past what it left and are SWEEP_FIRST times the
 * bytes live now; then, while live was SWEEP_LAST or more at the last
 * sweep, each time live is SWEEP_NEXT times less.  So the sweeps come
 * at the end of a mass of frees (the first reads the depots' slots of
 * the slabs some 200 blocks still pin, the later ones fewer), the last
 * with a few blocks live or none.  A refill or a flush asks: the end of
 * a mass of frees has no event of its own.  Live as far as this thread
 * knows: the settled count and its own credit (the others' unsettled
 * frees only make a sweep later).  Racy reads: a hint.  The cache that
 * threads past NTHREADS share is not swept. */
static void
sweep_due(struct beamalloc_gpa *g, struct tcache *tc)
{
	size_t peak = __atomic_load_n(&g->slab_peak, __ATOMIC_RELAXED);
	ptrdiff_t live = atomic_load_explicit(&g->live, memory_order_relaxed) +
	    tc->hi - tc->room;
	ptrdiff_t last = __atomic_load_n(&g->sweep_live, __ATOMIC_RELAXED);

	if (BA_LIKELY(live >= (ptrdiff_t)(peak / SWEEP_FIRST) ||
	    peak < __atomic_load_n(&g->sweep_slabs, __ATOMIC_RELAXED) +
	    SWEEP_MIN) && (last < SWEEP_LAST || live >= last / SWEEP_NEXT))
		return;
	if (!g->thread_safe || !is_shared_tc(g, tc))
		ba_gpa_sweep(g, tc, live);
}

/* The loaded magazine of class c is empty: swap in the other one if it
 * has slots, else trade it for a full one from the depot, else fill it
 * with fresh slots.  False when memory ran out. */
bool
ba_gpa_refill(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m, *full, *few;

	sweep_due(g, tc);
	m = tc->prev[c];
	ld_save(tc, c);
	if (m->n != 0)
		return ld_swap(tc, c);
	lock(g, &d->lock);
	traded(tc, d);
	full = d->full;
	/* The first refill after a full trim (carve 0) takes a few slots,
	 * as a new cache carves them.  A trim leaves the depot the slots of
	 * the slabs that a few blocks pin, and a whole magazine for each
	 * class a thread uses would put its cache past TC_BYTES, whose
	 * bound sends them back, to be refilled again (bench/README.md,
	 * "After a peak").  With no magazine to be had for them, the whole
	 * full one, as any other refill; m (the empty one to give back)
	 * must stay as it is for that. */
	if (full != NULL && d->carve == 0 && full->n > CARVE_MIN &&
	    ((few = tc->loaded[c]) != &ba_gpa_no_mag ||
	    (few = ba_gpa_mag_get(g, d, c)) != NULL)) {
		tc->loaded[c] = few;
		few->n = CARVE_MIN;
		full->n -= CARVE_MIN;
		memcpy(few->e, full->e + full->n, CARVE_MIN * sizeof(*few->e));
		d->nfull -= CARVE_MIN;
		d->carve = d->mag_cap;
	} else if (full != NULL) {
		d->full = full->next;
		d->nfull -= full->n;
		mag_put(m, &d->empty);
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = full;
	} else {
		if ((m = tc->loaded[c]) == &ba_gpa_no_mag &&
		    (m = ba_gpa_mag_get(g, d, c)) != NULL)
			tc->loaded[c] = m;
		/* Fresh slots, lowest address on top of the stack; a few the
		 * first time, a magazine after: a GPA made for one short call
		 * (a leak-checked NIF) carves, drains and trims 8 slots, and
		 * a busy class pays one refill more. */
		uint32_t want = d->carve == 0 ? CARVE_MIN : d->mag_cap;

		d->carve = d->mag_cap;
		while (m != NULL && m->n < m->cap && want-- != 0) {
			struct slab *s;
			size_t i;

			/* A new slab (or quarter) only for an empty magazine:
			 * one taken to top a magazine up would hold a whole
			 * frame for a few slots. */
			if ((d->cur == NULL || cur_left(d) == 0) &&
			    (m->n != 0 || !ba_gpa_slots_new(g, d, c)))
				break;
			s = d->cur;
			i = d->cur_hi - 1 - d->next_slot++;
			m->e[m->n++] = (struct entry){
				(unsigned char *)s->base + i * s->size,
				s->recs + (i << g->rec_shift) };
		}
	}
	unlock(g, &d->lock);
	ld_load(tc, c);
	tc_bound(g, tc, c);
	return ld_n(tc, c) != 0;
}

/* The loaded magazine of class c is full: swap in the other one if it
 * has room, else hand it to the depot for an empty one.  False when
 * memory ran out (no empty magazine). */
bool
ba_gpa_flush(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m;

	sweep_due(g, tc);
	m = tc->prev[c];
	ld_save(tc, c);
	if (m->n < m->cap)
		return ld_swap(tc, c);
	lock(g, &d->lock);
	traded(tc, d);
	if ((m = ba_gpa_mag_get(g, d, c)) != NULL) {
		if (tc->prev[c] == &ba_gpa_no_mag)
			tc->prev[c] = tc->loaded[c];
		else
			ba_gpa_depot_give(g, d, c, tc->loaded[c]);
		tc->loaded[c] = m;
	}
	unlock(g, &d->lock);
	ld_load(tc, c);
	tc_bound(g, tc, c);
	return m != NULL;
}

/* Class c's outbox home.  Its slots all of one depot (the rule: a
 * thread that frees what another made, as a consumer does its
 * producer's), the outbox goes there whole, as a full magazine, and an
 * empty one of that depot's takes its place: the slots' entries are
 * written once, by the thread that freed them, and read once, by the
 * one they go to.  Else each slot goes into the depot whose slab holds
 * it, one depot at a time, onto the partly full magazine at the head
 * of its full list, then into empty ones.  A slot no magazine can be had
 * for is lost until the next trim (ba_gpa_slot_lost()).
 * The outbox is then empty; its bounds are left alone (the caller's).
 * Its owner only, or ba_gpa_steal_idle() while the owner waits. */
static void
ob_send(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct entry *e = tc->obot[c];
	ptrdiff_t sent = ob_n(tc, c);
	size_t n = (size_t)sent, k = 1;
	struct depot *home;
	struct mag *empty;

	if (n == 0)
		return;
	home = slot_home(g, c, &e[0]);
	while (k < n && slot_home(g, c, &e[k]) == home)
		k++;
	if (k == n) {
		lock(g, &home->lock);
		if ((empty = ba_gpa_mag_get(g, home, c)) != NULL) {
			tc->out[c]->n = (uint32_t)n;
			mag_put(tc->out[c], &home->full);
			home->nfull += n;
			ba_gpa_depot_grew(g, home, c);
		}
		unlock(g, &home->lock);
		if (empty != NULL) {
			empty->n = 0;
			tc->out[c] = empty;
			ob_set(tc, c, sent);
			return;
		}
	}
	while (n != 0) {
		struct depot *h = slot_home(g, c, &e[0]);
		size_t keep = 0, got = 0;

		lock(g, &h->lock);
		for (size_t i = 0; i < n; i++) {
			struct mag *m = h->full;

			if (slot_home(g, c, &e[i]) != h) {
				e[keep++] = e[i];
				continue;
			}
			if (m == NULL || m->n == m->cap) {
				if ((m = ba_gpa_mag_get(g, h, c)) == NULL) {
					ba_gpa_slot_lost(g, e[i].rec);
					continue;
				}
				m->n = 0;
				mag_put(m, &h->full);
			}
			m->e[m->n++] = e[i];
			got++;
		}
		h->nfull += got;
		if (got != 0)
			ba_gpa_depot_grew(g, h, c);
		unlock(g, &h->lock);
		n = keep;
	}
	ob_set(tc, c, sent);
}

/* Room in class c's outbox (full, or none yet): its slots sent home, or
 * an empty magazine from the cache's own depot.  False when memory ran
 * out. */
bool
ba_gpa_ob_room(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m;

	if (tc->out[c] != &ba_gpa_no_mag) {
		/* Home to an ended thread's cache: take it over after this
		 * free (ba_gpa_tc_adopt()). */
		struct tcache *h = ob_n(tc, c) == 0 || is_shared_tc(g, tc) ?
		    NULL : depot_tc(slot_home(g, c, tc->obot[c]), c);

		if (h != NULL && BA_UNLIKELY(__atomic_load_n(&h->ended,
		    __ATOMIC_RELAXED)))
			tc->adopt = h;
		ob_send(g, tc, c);
		ob_bounds(tc, c);
		return true;
	}
	lock(g, &d->lock);
	m = ba_gpa_mag_get(g, d, c);
	unlock(g, &d->lock);
	if (m == NULL)
		return false;
	m->n = 0;
	tc->out[c] = m;
	ob_set(tc, c, 0);
	ob_bounds(tc, c);
	return true;
}

/* Class c's magazines into the cache's depot, its outbox's slots home
 * and the outbox to the depot too (the cache then has none of that
 * class).  The depot is then trimmed if its growth calls for it, but
 * not if the caller trims every depot next (trim false): a leak check's
 * or a sweep's trim would walk the same slots again.  The bounds are
 * left alone: ba_gpa_steal_idle() keeps its sentinels there. */
void
ba_gpa_tc_give(struct beamalloc_gpa *g, struct tcache *tc, size_t c,
    bool trim)
{
	struct depot *d = &tc->dep[c];
	struct mag *ob = tc->out[c];

	if (ob != &ba_gpa_no_mag) {
		ob_send(g, tc, c);
		ob = tc->out[c];	/* another, if it went whole */
		tc->out[c] = &ba_gpa_no_mag;
		ob_set(tc, c, 0);
	}
	if (tc->loaded[c] == &ba_gpa_no_mag &&
	    tc->prev[c] == &ba_gpa_no_mag && ob == &ba_gpa_no_mag)
		return;
	ld_save(tc, c);
	lock(g, &d->lock);
	ba_gpa_depot_put(d, tc->loaded[c]);
	ba_gpa_depot_put(d, tc->prev[c]);
	ba_gpa_depot_put(d, ob);
	if (trim)
		ba_gpa_depot_grew(g, d, c);
	unlock(g, &d->lock);
	tc->loaded[c] = tc->prev[c] = &ba_gpa_no_mag;
	ld_top(tc, c);
}

void
ba_gpa_tc_drain(struct beamalloc_gpa *g, struct tcache *tc, size_t c,
    bool trim)
{
	ba_gpa_tc_give(g, tc, c, trim);
	ld_bounds(tc, c);
	ob_bounds(tc, c);
}

/* After every TC_BOUND_EVERY-th slow path (in class c): a cache holding
 * more than TC_BYTES of free slots gives the magazines of other classes
 * to their depots, largest classes first.  Not at each: the count walks
 * every class, and a slow path adds one magazine at most. */
static void
tc_bound(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	size_t bytes = 0;

	if ((++tc->slow & (TC_BOUND_EVERY - 1)) != 0)
		return;
	for (size_t k = 0; k < NCLASS; k++)
		bytes += ((size_t)ld_n(tc, k) + tc->prev[k]->n +
		    (size_t)ob_n(tc, k)) * class_size(k);
	/* Outboxes first (other caches' slots, of no use here), then the
	 * spare magazines: the loaded ones are what the next calls use. */
	for (size_t k = NCLASS; k-- > 0 && bytes > TC_BYTES;)
		if (ob_n(tc, k) != 0) {
			bytes -= (size_t)ob_n(tc, k) * class_size(k);
			ob_send(g, tc, k);
			ob_bounds(tc, k);
		}
	for (size_t k = NCLASS; k-- > 0 && bytes > TC_BYTES;)
		if (k != c && tc->prev[k]->n != 0) {
			struct depot *d = &tc->dep[k];

			bytes -= (size_t)tc->prev[k]->n * class_size(k);
			lock(g, &d->lock);
			ba_gpa_depot_give(g, d, k, tc->prev[k]);
			unlock(g, &d->lock);
			tc->prev[k] = &ba_gpa_no_mag;
		}
	for (size_t k = NCLASS; k-- > 0 && bytes > TC_BYTES;)
		if (k != c) {
			bytes -= (size_t)ld_n(tc, k) * class_size(k);
			ba_gpa_tc_drain(g, tc, k, true);
		}
}
