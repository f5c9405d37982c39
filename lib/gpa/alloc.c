/*
 * alloc.c - the GPA's hot group: reports, the depot (magazines between
 * thread caches and slabs), thread caches, the credit, small blocks and
 * the vtables (fast and general paths).  One translation unit so that
 * refill, flush, the credit and the tcache lookup inline into
 * small_alloc()/small_free() and the vtable functions as before the
 * split; lib/gpa/gpa.h has the overview.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
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
		if (ftid != 0)
			r->free_trace = ba_depot_get(g->traces, ftid,
			    &r->free_trace_len);
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
 * Depot: magazines between thread caches and slabs
 * ---------------------------------------------------------------------- */

/* Threads start with this in every class: empty and full at once, so
 * both fast paths take the general path, which gives real magazines.
 * Never written. */
struct mag ba_gpa_no_mag;

/* An empty magazine of depot d.  Under its lock. */
static struct mag *
mag_get(struct beamalloc_gpa *g, struct depot *d)
{
	struct mag *m = d->empty;

	if (m != NULL) {
		d->empty = m->next;
		return m;
	}
	m = ba_gpa_backing_get(g, mag_len(d->mag_cap));
	if (m != NULL) {
		m->n = 0;
		m->cap = d->mag_cap;
	}
	return m;
}

static void
mag_put(struct mag *m, struct mag **list)
{
	if (m != &ba_gpa_no_mag) {
		m->next = *list;
		*list = m;
	}
}

/* The slab of a cached slot of class c, with no table lookup: a slab
 * has records for its whole span, partial or not, so the slot's record
 * is slot_index() records past the slab's first (a trim asks this of
 * every slot in the depot). */
static inline struct slab *
slab_at(const struct beamalloc_gpa *g, size_t c, const struct entry *e)
{
	size_t i = slot_index((uintptr_t)e->p & (slab_span(c) - 1), c);

	return slab_of(e->rec - (i << g->rec_shift));
}

/* The depot a cached slot goes home to. */
static inline struct depot *
slot_home(const struct beamalloc_gpa *g, size_t c, const struct entry *e)
{
	return slab_home(slab_at(g, c, e), (uintptr_t)e->p);
}

/* A trim's count: the slot's slab (or, in a shared slab, its quarter)
 * has all its slots in the depot. */
static inline bool
slot_dead(const struct beamalloc_gpa *g, size_t c, const struct entry *e,
    uint32_t stamp)
{
	const struct slab *s = slab_at(g, c, e);

	if (s->stamp != stamp)
		return false;
	if (s->home != NULL)
		return s->cnt == s->nslots;
	return s->qdead >> (((uintptr_t)e->p - s->base) >> QUARTER_SHIFT) & 1;
}

/* A trim's count starts on s. */
static void
slab_stamp(struct slab *s, uint32_t stamp)
{
	s->stamp = stamp;
	s->cnt = 0;
	s->qdead = 0;
	memset(s->qcnt, 0, sizeof(s->qcnt));
}

/* The quarters of shared slab s that depot d carves, as bits; d NULL:
 * those with slots. */
static unsigned
quarters_of(const struct slab *s, const struct depot *d)
{
	unsigned mask = 0;

	for (unsigned q = 0; q < NQUARTER; q++)
		if (d != NULL ? qhome_get(s, q) == d : s->qn[q] != 0)
			mask |= 1u << q;
	return mask;
}

/* A trim found depot d's quarters qdead of shared slab s all free: they
 * go back to the slab (and the slab, with the last, to the region).
 * Under d's lock and g->lock; the bytes released. */
static size_t
quarters_put(struct beamalloc_gpa *g, struct depot *d, struct slab *s)
{
	unsigned dead = s->qdead;
	size_t bytes = 0;

	if (s == d->cur && (dead >> cur_quarter(d) & 1) != 0)
		d->cur = NULL;
	for (unsigned q = 0; q < NQUARTER; q++)
		if ((dead >> q & 1) != 0) {
			d->nslots -= s->qn[q];
			d->nslabs--;
			/* The last one may free s. */
			bytes += ba_gpa_quarter_put(g, s, q);
		}
	return bytes;
}

/* Give back the depot's empty magazines but keep of them.  Under its
 * lock; the bytes released. */
size_t
ba_gpa_depot_empties(struct beamalloc_gpa *g, struct depot *d, size_t keep)
{
	struct mag **p = &d->empty, *m;
	size_t bytes = 0;

	for (; *p != NULL && keep != 0; keep--)
		p = &(*p)->next;
	while ((m = *p) != NULL) {
		*p = m->next;
		bytes += mag_len(m->cap);
		ba_gpa_backing_put(g, m, mag_len(m->cap));
	}
	return bytes;
}

/* Slabs a growth trim of depot d keeps all free: an eighth of the
 * class's, or what KEEP_FREE leaves beside the other classes' kept
 * slabs if that is more.  A NIF that fills and empties a few MB per
 * call would otherwise give its slabs back at each call's end and make
 * them again in the next: with their records, the table, and every
 * thread's memo gone stale at each release (bench/README.md).  Under
 * g->lock. */
static size_t
trim_keep(const struct beamalloc_gpa *g, const struct depot *d, size_t c)
{
	size_t span = slab_span(c), others = g->nkept - d->nkept * span;

	return ba_max(d->nslabs / 8, KEEP_FREE > others ?
	    (KEEP_FREE - others) / span : 0);
}

/* Count the depot's free slots per slab (uncarved ones included): a slab
 * with all of them here has none live or in a thread cache, so its slots
 * are taken out of the magazines (packed in place) and it is given back,
 * but for `keep` of them (a shared slab's quarters: quarters_put()).
 * The depot then keeps two empty magazines at most.  Under the depot's
 * lock and g->lock (no leak scan may start walking the slabs); returns
 * the bytes released. */
static size_t
depot_trim_locked(struct beamalloc_gpa *g, struct depot *d, size_t c,
    size_t keep, bool full)
{
	struct slab *dead = NULL, *s;
	struct mag *rm, *wm, *m;
	uint32_t stamp, wi = 0;
	size_t bytes = 0, keep0 = keep;

	stamp = ++g->stamp;
	if ((s = d->cur) != NULL) {
		slab_stamp(s, stamp);
		if (s->home != NULL)
			s->cnt = cur_left(d);
		else
			s->qcnt[cur_quarter(d)] = cur_left(d);
	}
	for (rm = d->full; rm != NULL; rm = rm->next)
		for (uint32_t i = 0; i < rm->n; i++) {
			unsigned q;

			s = slab_at(g, c, &rm->e[i]);
			if (s->stamp != stamp)
				slab_stamp(s, stamp);
			if (s->home != NULL) {
				if (++s->cnt == s->nslots) {
					s->dead = dead;
					dead = s;
				}
				continue;
			}
			q = (unsigned)(((uintptr_t)rm->e[i].p - s->base) >>
			    QUARTER_SHIFT);
			if (++s->qcnt[q] == s->qn[q]) {
				if (s->qdead == 0) {
					s->dead = dead;
					dead = s;
				}
				s->qdead |= (uint8_t)(1u << q);
			}
		}
	/* A depot's quarters of a shared slab go back together, and, but
	 * in a full trim, only with the slab: a growth trim would give a
	 * thread's quarter back as often as the thread empties it, and
	 * another depot that takes it beside this one's makes every memo
	 * stale (quarter_take()). */
	for (struct slab **p = &dead; *p != NULL;)
		if ((*p)->home == NULL && ((*p)->qdead != quarters_of(*p, d) ||
		    (!full && (*p)->qdead != quarters_of(*p, NULL)))) {
			(*p)->qdead = 0;
			*p = (*p)->dead;
		} else
			p = &(*p)->dead;
	/* Some stay, the one being carved first: a class that needs them
	 * again soon does not make them again. */
	for (struct slab **p = &dead; *p != NULL && keep != 0;)
		if (*p == d->cur || keep > 1) {
			(*p)->cnt = 0;
			(*p)->qdead = 0;
			*p = (*p)->dead;
			keep--;
		} else
			p = &(*p)->dead;
	g->nkept = g->nkept - d->nkept * slab_span(c) +
	    (keep0 - keep) * slab_span(c);
	d->nkept = (uint32_t)(keep0 - keep);
	if (dead == NULL)
		goto empties;
	/* The write position never passes the read position. */
	d->nfull = 0;
	wm = d->full;
	for (rm = d->full; rm != NULL; rm = rm->next) {
		uint32_t n = rm->n;

		for (uint32_t i = 0; i < n; i++) {
			struct entry e = rm->e[i];

			if (slot_dead(g, c, &e, stamp))
				continue;
			if (wi == wm->cap) {
				wm->n = wi;
				wm = wm->next;
				wi = 0;
			}
			wm->e[wi++] = e;
			d->nfull++;
		}
	}
	if (wm != NULL) {
		/* wm and what follows it: the last packed one, then empty. */
		struct mag **tail = &wm->next;

		wm->n = wi;
		if (wi == 0) {
			for (tail = &d->full; *tail != wm; tail = &(*tail)->next)
				;
		}
		while ((m = *tail) != NULL) {
			*tail = m->next;
			m->n = 0;
			mag_put(m, &d->empty);
		}
	}
	for (s = dead; s != NULL; s = dead) {
		dead = s->dead;
		if (s->home == NULL) {
			bytes += quarters_put(g, d, s);
			continue;
		}
		if (s == d->cur)
			d->cur = NULL;
		d->nslots -= s->nslots;
		bytes += ba_gpa_slab_release(g, s);
		d->nslabs--;
	}
empties:
	bytes += ba_gpa_depot_empties(g, d, 2);
	d->ntrim = d->nfull;
	/* Then the class carves as a new cache's does, a few slots first:
	 * a refill that carved a whole magazine for each of the classes a
	 * thread uses (16 KiB each) put the cache past TC_BYTES, whose
	 * bound sent them home, to be refilled again: 100 live random
	 * blocks after a trim took 1.6x the instructions (bench/README.md,
	 * "After a full trim"), and every leak check and decay is one. */
	if (full)
		d->carve = 0;
	return bytes;
}

/* The cache's classes that traded no magazine with it in its last
 * IDLE_TRADES trades give back the slabs their last trim kept, so that
 * the budget goes to the class in use: a program whose block sizes
 * change would otherwise leave it with the classes it used first until
 * a full trim.  Trades, not the GPA's trims, which come and go with
 * other caches' and classes' growth.  Asked only once the other classes
 * hold half the budget: a class in steady use trades only every few
 * hundred of its cache's trades when its magazines hold 255 slots, and
 * would give back and make again the slabs it keeps (bench/README.md).
 * Under depot d's lock (class c's) and g->lock; another depot's lock is
 * taken only if free, since the usual order is a depot's lock, then
 * g->lock. */
static size_t
reclaim_idle(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	struct depot *base = d - c;	/* the cache's depots */
	struct tcache *tc = (struct tcache *)(void *)((char *)base -
	    offsetof(struct tcache, dep));
	uint32_t now = __atomic_load_n(&tc->trades, __ATOMIC_RELAXED);
	size_t bytes = 0;

	for (size_t k = 0; k < NCLASS; k++) {
		struct depot *o = &base[k];

		if (k == c || o->nkept == 0 || now - __atomic_load_n(
		    &o->traded, __ATOMIC_RELAXED) < IDLE_TRADES ||
		    (g->thread_safe && pthread_mutex_trylock(&o->lock) != 0))
			continue;
		bytes += depot_trim_locked(g, o, k, 0, false);
		o->trim_at = ba_gpa_trim_next(o, k);
		unlock(g, &o->lock);
	}
	return bytes;
}

/* Trim class c's depot (depot_trim_locked()): a growth trim (not full)
 * keeps some all-free slabs (trim_keep()), first taking the budget back
 * from idle classes if others hold half of it; a full trim keeps
 * none.  Under the depot's lock; the bytes released. */
size_t
ba_gpa_depot_trim(struct beamalloc_gpa *g, struct depot *d, size_t c,
    bool full)
{
	size_t bytes = 0;

	lock(g, &g->lock);
	if (g->scanning == 0) {
		if (!full && g->nkept - d->nkept * slab_span(c) >=
		    KEEP_FREE / 2)
			bytes += reclaim_idle(g, d, c);
		bytes += depot_trim_locked(g, d, c, full ? 0 :
		    trim_keep(g, d, c), full);
	}
	unlock(g, &g->lock);
	return bytes;
}

/* After a trim: the next one when a quarter more (or TRIM_MIN) has come
 * in, so a trim looks at no more than five slots per slot that came in
 * since the last one, and dead slabs hold at most that much. */
size_t
ba_gpa_trim_next(const struct depot *d, size_t c)
{
	size_t held = d->nfull * class_size(c);

	return held + ba_max(TRIM_MIN, held);
}

/* So few slots of the class are outside the depot (live, cached; not
 * uncarved) that a quarter of its slabs at least must be all in it: a
 * trim then gives back that many slabs at least, for the slots it looks
 * at.  This catches the end of a mass of frees, which ba_gpa_trim_next() lets
 * pass. */
static bool
dead_many(const struct depot *d, size_t c)
{
	size_t per = slab_span(c) / class_size(c);
	size_t out = d->nslots - d->nfull - (d->cur != NULL ? cur_left(d) :
	    0);

	/* A class in steady use (three quarters of its slots used or
	 * cached) keeps its slabs: they would only be made again.  Slots
	 * counted as they are (a partial slab has fewer), or a class
	 * whose first slabs are partial would look busier than it is. */
	if (out * 4 > d->nslots)
		return false;
	/* Then some slabs must be all here, more than the last trim kept
	 * (or each magazine coming in would find those again, at the end
	 * of a mass of frees: a trim per magazine); or, likely, many frees
	 * are coming in: a trim per eighth more (and a slab's worth), so a
	 * trim looks at no more than nine slots per slot come in. */
	return (d->nslabs > out && d->nslabs - out >= ba_max(2,
	    d->nslabs / 4) + d->nkept) ||
	    d->nfull >= d->ntrim + d->ntrim / 8 + per;
}

/* Depot d (of class c) took in free slots: past ba_gpa_trim_next(), or
 * with many slabs dead, it is trimmed again.  Under its lock. */
static void
depot_grew(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	if (d->nfull * class_size(c) > d->trim_at || dead_many(d, c)) {
		ba_gpa_depot_trim(g, d, c, false);
		d->trim_at = ba_gpa_trim_next(d, c);
	}
}

/* A magazine from its cache into depot d: full (or partly) or empty.
 * Under the depot's lock. */
static void
depot_give(struct beamalloc_gpa *g, struct depot *d, size_t c, struct mag *m)
{
	if (m == &ba_gpa_no_mag)
		return;
	if (m->n == 0) {
		mag_put(m, &d->empty);
		return;
	}
	mag_put(m, &d->full);
	d->nfull += m->n;
	depot_grew(g, d, c);
}

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

static void tc_bound(struct beamalloc_gpa *g, struct tcache *tc, size_t c);

/* The cache traded a magazine with its depot d: not idle
 * (reclaim_idle()).  By the owner, under d's lock. */
static inline void
traded(struct tcache *tc, struct depot *d)
{
	uint32_t n = tc->trades + 1;

	__atomic_store_n(&tc->trades, n, __ATOMIC_RELAXED);
	__atomic_store_n(&d->traded, n, __ATOMIC_RELAXED);
}

/* The loaded magazine of class c is empty: swap in the other one if it
 * has slots, else trade it for a full one from the depot, else fill it
 * with fresh slots.  False when memory ran out. */
static bool
refill(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m = tc->prev[c], *full;

	ld_save(tc, c);
	if (m->n != 0) {
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = m;
		ld_load(tc, c);
		return true;
	}
	lock(g, &d->lock);
	traded(tc, d);
	if ((full = d->full) != NULL) {
		d->full = full->next;
		d->nfull -= full->n;
		mag_put(m, &d->empty);
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = full;
	} else {
		if ((m = tc->loaded[c]) == &ba_gpa_no_mag &&
		    (m = mag_get(g, d)) != NULL)
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
static bool
flush(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m = tc->prev[c];

	ld_save(tc, c);
	if (m->n < m->cap) {
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = m;
		ld_load(tc, c);
		return true;
	}
	lock(g, &d->lock);
	traded(tc, d);
	if ((m = mag_get(g, d)) != NULL) {
		if (tc->prev[c] == &ba_gpa_no_mag)
			tc->prev[c] = tc->loaded[c];
		else
			depot_give(g, d, c, tc->loaded[c]);
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
 * for is dropped: it stays freed and unused, never handed out twice.
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
		if ((empty = mag_get(g, home)) != NULL) {
			tc->out[c]->n = (uint32_t)n;
			mag_put(tc->out[c], &home->full);
			home->nfull += n;
			depot_grew(g, home, c);
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
				if ((m = mag_get(g, h)) == NULL)
					continue;
				m->n = 0;
				mag_put(m, &h->full);
			}
			m->e[m->n++] = e[i];
			got++;
		}
		h->nfull += got;
		if (got != 0)
			depot_grew(g, h, c);
		unlock(g, &h->lock);
		n = keep;
	}
	ob_set(tc, c, sent);
}

/* Room in class c's outbox (full, or none yet): its slots sent home, or
 * an empty magazine from the cache's own depot.  False when memory ran
 * out. */
static bool
ob_room(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &tc->dep[c];
	struct mag *m;

	if (tc->out[c] != &ba_gpa_no_mag) {
		ob_send(g, tc, c);
		ob_bounds(tc, c);
		return true;
	}
	lock(g, &d->lock);
	m = mag_get(g, d);
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
 * class).  The bounds are left alone: ba_gpa_steal_idle() keeps its
 * sentinels there. */
void
ba_gpa_tc_give(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
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
	depot_give(g, d, c, tc->loaded[c]);
	depot_give(g, d, c, tc->prev[c]);
	depot_give(g, d, c, ob);
	unlock(g, &d->lock);
	tc->loaded[c] = tc->prev[c] = &ba_gpa_no_mag;
	ld_top(tc, c);
}

void
ba_gpa_tc_drain(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	ba_gpa_tc_give(g, tc, c);
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
			depot_give(g, d, k, tc->prev[k]);
			unlock(g, &d->lock);
			tc->prev[k] = &ba_gpa_no_mag;
		}
	for (size_t k = NCLASS; k-- > 0 && bytes > TC_BYTES;)
		if (k != c) {
			bytes -= (size_t)ld_n(tc, k) * class_size(k);
			ba_gpa_tc_drain(g, tc, k);
		}
}

/* ------------------------------------------------------------------------
 * Thread caches
 * ---------------------------------------------------------------------- */

/* The records of no slab: a fresh cache's memo points here, with the
 * slot size of a whole slab, so only p == 0 can match it and reads
 * REC_NEW (not live): the general path handles that.  Never written. */
static const _Alignas(16) unsigned char no_recs[sizeof(struct rec)];

/* A free thread cache slot's: the owner of no thread.  Never written. */
struct tcache ba_gpa_no_tc;

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

struct tcache *
ba_gpa_tcache_new(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	lock(g, &g->lock);
	tc = ba_gpa_meta_zalloc(g, sizeof(*tc));
	if (tc != NULL) {
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
	}
	unlock(g, &g->lock);
	return tc;
}

/* A cache for a slot about to be claimed: one a thread gave back when
 * it ended (or made for a slot another thread took first), or a new
 * one. */
static struct tcache *
tcache_take(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	lock(g, &g->lock);
	if ((tc = g->tc_free) != NULL)
		g->tc_free = tc->free_next;
	unlock(g, &g->lock);
	return tc != NULL ? tc : ba_gpa_tcache_new(g);
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
ba_gpa_tcache_slow(struct beamalloc_gpa *g)
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
	if (tomb == NTHREADS) {
		if (g->safety)
			/* every slot taken: many threads */
			ba_gpa_go_shared(g);
		return NULL;
	}
claim:
	if (tomb != NTHREADS) {
		i = tomb;
		cur = TKEY_TOMB;
	}
	if ((tc = tcache_take(g)) == NULL)
		return NULL;
	if (!atomic_compare_exchange_strong(&g->tkey[i], &cur, k)) {
		/* Another thread took the slot: keep the cache for later. */
		lock(g, &g->lock);
		tc->free_next = g->tc_free;
		g->tc_free = tc;
		unlock(g, &g->lock);
		goto again;
	}
	__atomic_store_n(&tc->owner, k, __ATOMIC_RELAXED);
	atomic_store_explicit(&g->tcs[i], tc, memory_order_release);
	ba_gpa_exit_note(g, i);
	/* A second thread: frees may race from now on. */
	if (atomic_fetch_add(&g->nclaimed, 1) != 0 && g->safety)
		ba_gpa_go_shared(g);
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

	if (tc == NULL && (tc = ba_gpa_tcache_new(g)) != NULL)
		__atomic_store_n(&g->tc0, tc, __ATOMIC_RELEASE);
	return tc;
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
	tc->hi = tc->room = 0;
}

/* Exact: a memory limit, large blocks. */
bool
ba_gpa_charge_exact(struct beamalloc_gpa *g, ptrdiff_t bytes, ptrdiff_t blocks)
{
	ptrdiff_t now;

	/* A request near 2^63 must not overflow the count (no backing could
	 * give it anyway): it fails as over any limit. */
	if (g->thread_safe) {
		if (__builtin_add_overflow(atomic_fetch_add_explicit(&g->live,
		    bytes, memory_order_relaxed), bytes, &now) ||
		    (bytes > 0 && g->limit != 0 && (size_t)now > g->limit)) {
			atomic_fetch_sub_explicit(&g->live, bytes,
			    memory_order_relaxed);
			return false;
		}
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
	peak_note(g, now);
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
		if (state_get(&sr->state) == REC_FREE)
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
		ba_gpa_report_slot(g, st == REC_FREE ?
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

	if (BA_UNLIKELY(!charge(g, tc, (ptrdiff_t)len)))
		return ba_fail(ENOMEM);
again:
	ba_gpa_tc_enter_wait(g, tc);
	if (tc->top[c] == tc->bot[c] && !refill(g, tc, c)) {
		ba_gpa_tc_leave_wait(g, tc);
		charge(g, tc, -(ptrdiff_t)len);
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
	state_set(e.rec, REC_USED);
	if (g->tools)
		BA_TOOL_ALLOC(e.p, len);
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, e.p, len, class_size(c));
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

/* Put a freed slot into tc's magazine.  Without a magazine (out of
 * memory) the slot is dropped: it stays freed and unused, never handed
 * out twice. */
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
		if (tc->otop[c] != tc->oend[c] || ob_room(g, tc, c))
			*tc->otop[c]++ = e;
		else
			__atomic_store_n(&tc->nblk, tc->nblk - 1,
			    __ATOMIC_RELAXED);
	} else if (tc->top[c] != tc->end[c] || flush(g, tc, c))
		*tc->top[c]++ = e;
	else
		__atomic_store_n(&tc->nblk, tc->nblk - 1, __ATOMIC_RELAXED);
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
	if ((tc = tcache_of(g)) != NULL || (tc = ba_gpa_tcache_slow(g)) != NULL)
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
	/* The cache first: a new thread's registers it, and makes the
	 * first thread's fast frees atomic, before this one races them. */
	if ((tc = tcache_of(g)) == NULL)
		tc = ba_gpa_tcache_slow(g);
	if ((rec = live_slot(g, (uintptr_t)mem, &w, len, align, ra)) == NULL)
		return;
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
		return;
	}
	pthread_mutex_lock(&g->shared_lock);
	/* Without a cache the slot is dropped, as in ba_gpa_small_free(). */
	if ((tc = ba_gpa_shared_tc(g)) != NULL)
		ba_gpa_small_free(g, tc, mem, rec, w.cls, len, ra);
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

/* Remember p's slab in the memo.  False for a pointer in no slab. */
static bool
memo_fill(struct beamalloc_gpa *g, struct tcache *tc, uintptr_t p)
{
	uintptr_t epoch = atomic_load_explicit(&g->epoch,
	    memory_order_acquire);
	struct where w;

	if (!slab_find(g, p, &w))
		return false;
	struct memo *m = memo_of(tc, p);
	struct slab *s = slab_of(w.recs);
	struct depot *home = s->home;

	m->epoch = epoch;
	m->base = w.base;
	m->div = ba_classes[w.cls].inv;
	m->size = class_size(w.cls);
	m->recs = w.recs;
	if (home == NULL)
		home = memo_shared(s);
	/* Another cache's slab: its slots go home through the outbox. */
	m->top = home == &tc->dep[w.cls] ? &tc->top[w.cls] :
	    &tc->otop[w.cls];
	return true;
}

/* Free's memo missed: look the slab up in the table, remember it, and
 * free again through the vtable (the same fast function, now hitting).
 * A pointer in no slab (a large block, or not ours) goes to the general
 * path. */
__attribute__((noinline)) void
ba_gpa_memo_miss(struct beamalloc_gpa *g, struct tcache *tc, void *mem, size_t len,
    size_t align, uintptr_t ra)
{
	if (memo_fill(g, tc, (uintptr_t)mem) && memo_of(tc,
	    (uintptr_t)mem)->epoch == atomic_load_explicit(&g->epoch,
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
 * paths with the checks around them, by [thread_safe][safety]. */
#define CHECK_PAIR(name, ts, safety)					\
static void *								\
name##_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)	\
{									\
	return ba_gpa_fast_alloc_chk(ctx, len, align, ra, ts, safety,	\
	    0, true);							\
}									\
static void								\
name##_free(void *ctx, void *mem, size_t len, size_t align,		\
    uintptr_t ra)							\
{									\
	ba_gpa_fast_free_chk(ctx, mem, len, align, ra, ts, safety,	\
	    false, true);						\
}

CHECK_PAIR(chk_ts, true, false)
CHECK_PAIR(chk_ts_safe, true, true)
CHECK_PAIR(chk_st, false, false)
CHECK_PAIR(chk_st_safe, false, true)

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
		tc = ba_gpa_tcache_slow(g);
	/* Threads without a cache of their own count exactly. */
	ok = tc != NULL ? charge(g, tc, (ptrdiff_t)new_len - (ptrdiff_t)len) :
	    ba_gpa_charge_exact(g, (ptrdiff_t)new_len - (ptrdiff_t)len, 0);
	if (!ok) {
		errno = ENOMEM;
		return false;
	}
	if (g->safety)
		((struct rec *)(void *)rec)->len = (uint16_t)new_len;
	if (g->tools)
		BA_TOOL_RESIZE(mem, len, new_len);
	ba_chk_canary_set(g, mem, new_len, class_size(w->cls));
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
	[GPA_VT_CHECK] = { chk_st_alloc, gpa_resize, gpa_remap, chk_st_free },
	[GPA_VT_CHECK + 1] = { chk_st_safe_alloc, gpa_resize, gpa_remap,
	    chk_st_safe_free },
	[GPA_VT_CHECK + 2] = { chk_ts_alloc, gpa_resize, gpa_remap,
	    chk_ts_free },
	[GPA_VT_CHECK + 3] = { chk_ts_safe_alloc, gpa_resize, gpa_remap,
	    chk_ts_safe_free },
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
	    4 * sizeof(ba_gpa_vtables[0])) &&
	    ((const struct beamalloc_gpa *)a->ctx)->canary;
}

size_t
ba_gpa_native_align(const void *ctx)
{
	const struct beamalloc_gpa *g = ctx;

	/* Large blocks take their alignment from the backing. */
	return ba_native_align(g->backing);
}
