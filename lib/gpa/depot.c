/*
 * depot.c - each thread cache's depot of a class: the magazines its
 * cache trades with it, and the trims that give its all-free slabs back
 * (keeping a budget of them for the next peak, and taking that budget
 * back from classes gone idle).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gpa.h"

/* Threads start with this in every class: empty and full at once, so
 * both fast paths take the general path, which gives real magazines.
 * Never written. */
struct mag ba_gpa_no_mag;

/* An empty magazine of depot d (class c): its own, else one a trim
 * kept (g->mspare), else a new one.  Under its lock. */
struct mag *
ba_gpa_mag_get(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	struct mag *m = d->empty;

	if (m != NULL) {
		d->empty = m->next;
		return m;
	}
	if (__atomic_load_n(&g->mspare[c], __ATOMIC_RELAXED) != NULL) {
		lock(g, &g->mspare_lock);
		if ((m = g->mspare[c]) != NULL) {
			__atomic_store_n(&g->mspare[c], m->next,
			    __ATOMIC_RELAXED);
			g->mkept -= mag_len(m->cap);
		}
		unlock(g, &g->mspare_lock);
		if (m != NULL)
			return m;
	}
	m = ba_gpa_backing_get(g, mag_len(d->mag_cap));
	if (m != NULL) {
		m->n = 0;
		m->cap = d->mag_cap;
	}
	return m;
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

/* Give back depot d's empty magazines but the first keep; with spare,
 * those past them go to g->mspare[c] first, within MAG_KEEP bytes.  A
 * mass of frees trades an empty magazine for each full one it fills,
 * and took each from the backing again: rand100k's drain (100,000 frees)
 * took about 3,000 of them a round, and ran in 1.9 times the time
 * (bench/README.md, "A mass of frees: empty magazines kept").  Under
 * its lock; the bytes released. */
size_t
ba_gpa_depot_empties(struct beamalloc_gpa *g, struct depot *d, size_t c,
    size_t keep, bool spare)
{
	struct mag **p = &d->empty, *m;
	size_t bytes;

	for (; *p != NULL && keep != 0; keep--)
		p = &(*p)->next;
	if (*p == NULL)
		return 0;
	if (spare) {
		lock(g, &g->mspare_lock);
		while ((m = *p) != NULL &&
		    g->mkept + mag_len(m->cap) <= MAG_KEEP) {
			*p = m->next;
			m->next = g->mspare[c];
			__atomic_store_n(&g->mspare[c], m, __ATOMIC_RELAXED);
			g->mkept += mag_len(m->cap);
		}
		unlock(g, &g->mspare_lock);
	}
	bytes = ba_gpa_mags_free(g, *p);
	*p = NULL;
	return bytes;
}

/* Give back a list of magazines; the bytes released. */
size_t
ba_gpa_mags_free(struct beamalloc_gpa *g, struct mag *m)
{
	size_t bytes = 0;

	for (struct mag *next; m != NULL; m = next) {
		next = m->next;
		bytes += mag_len(m->cap);
		ba_gpa_backing_put(g, m, mag_len(m->cap));
	}
	return bytes;
}

/* Give back the empty magazines the trims kept (a full trim); the
 * bytes released. */
size_t
ba_gpa_mspare_free(struct beamalloc_gpa *g)
{
	struct mag *list[NCLASS];
	size_t bytes;

	lock(g, &g->mspare_lock);
	bytes = g->mkept;
	for (size_t c = 0; c < NCLASS; c++) {
		list[c] = g->mspare[c];
		__atomic_store_n(&g->mspare[c], NULL, __ATOMIC_RELAXED);
	}
	g->mkept = 0;
	unlock(g, &g->mspare_lock);
	for (size_t c = 0; c < NCLASS; c++)
		(void)ba_gpa_mags_free(g, list[c]);
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
 * but for `keep` of them (a shared slab's quarters: quarters_put()); a
 * sweep's keeps its own slabs to carve again (ba_gpa_reset_put()).
 * The depot then keeps two empty magazines at most (the others kept for
 * any depot of the class, but in a full trim).  Under the depot's
 * lock and g->lock (no leak scan may start walking the slabs); returns
 * the bytes released. */
static size_t
depot_trim_locked(struct beamalloc_gpa *g, struct depot *d, size_t c,
    size_t keep, enum trim how)
{
	bool full = how != TRIM_GROW;
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
		if (how == TRIM_SWEEP)
			ba_gpa_reset_put(g, s);
		else
			bytes += ba_gpa_slab_release(g, s);
		d->nslabs--;
	}
empties:
	bytes += ba_gpa_depot_empties(g, d, c, 2, how != TRIM_FULL);
	/* A sweep leaves the growth trims' marks where they were (and
	 * ba_gpa_trim_all() trim_at): set from the near-empty depots it
	 * leaves, they would trim the next peak's drain at each doubling
	 * of each class (bench/README.md, "What rand100k's round pays"). */
	if (how != TRIM_SWEEP)
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
		bytes += depot_trim_locked(g, o, k, 0, TRIM_GROW);
		o->trim_at = ba_gpa_trim_next(o, k);
		unlock(g, &o->lock);
	}
	return bytes;
}

/* Trim class c's depot (depot_trim_locked()): a growth trim keeps some
 * all-free slabs (trim_keep()), first taking the budget back from idle
 * classes if others hold half of it; a full trim keeps none, a sweep's
 * all (outside the depot).  Under the depot's lock; the bytes
 * released. */
size_t
ba_gpa_depot_trim(struct beamalloc_gpa *g, struct depot *d, size_t c,
    enum trim how)
{
	size_t bytes = 0;

	lock(g, &g->lock);
	if (g->scanning == 0) {
		if (how == TRIM_GROW && g->nkept - d->nkept * slab_span(c) >=
		    KEEP_FREE / 2)
			bytes += reclaim_idle(g, d, c);
		bytes += depot_trim_locked(g, d, c, how == TRIM_GROW ?
		    trim_keep(g, d, c) : 0, how);
	}
	unlock(g, &g->lock);
	return bytes;
}

/* Every depot of every cache trimmed, fully (then an idle class keeps no
 * magazine either: with 40 classes, and as many per cache, they add up)
 * or for a sweep.  With no depot's lock; the bytes released. */
size_t
ba_gpa_trim_all(struct beamalloc_gpa *g, enum trim how)
{
	struct tcache *tc;
	size_t bytes = 0;

	lock(g, &g->lock);
	tc = g->tcaches;		/* caches are only ever added in front */
	unlock(g, &g->lock);
	for (; tc != NULL; tc = tc->next)
		for (size_t c = 0; c < NCLASS; c++) {
			struct depot *d = &tc->dep[c];

			lock(g, &d->lock);
			bytes += ba_gpa_depot_trim(g, d, c, how);
			if (how == TRIM_FULL)
				bytes += ba_gpa_depot_empties(g, d, c, 0,
				    false);
			if (how != TRIM_SWEEP)
				d->trim_at = ba_gpa_trim_next(d, c);
			unlock(g, &d->lock);
		}
	return bytes;
}

/* A mass of frees is ending (tcache.c's sweep_due()): the cache's own
 * magazines go to their depots, and every depot takes the slabs it
 * finds all free out of its magazines, kept whole (records, table keys,
 * frames) to be carved again in address order (ba_gpa_reset_put()).
 * Without it, a mass of frees in random order ends with the cache's
 * last magazines holding slots in nearly every slab of their classes;
 * the next calls take those first, every slab then has a block live
 * again, and the blocks after them spread over the peak's slabs through
 * the magazines' random order: rand10k after rand100k, 1.3x the time
 * (bench/README.md, "After a peak").  Nothing is released, so the next
 * peak makes no slab again; a full trim gives them back.  By the
 * cache's owner, inside it, with no depot's lock; live: what it saw
 * live. */
void
ba_gpa_sweep(struct beamalloc_gpa *g, struct tcache *tc, ptrdiff_t live)
{
	for (size_t c = 0; c < NCLASS; c++)
		ba_gpa_tc_drain(g, tc, c, false);
	ba_gpa_trim_all(g, TRIM_SWEEP);
	lock(g, &g->lock);
	__atomic_store_n(&g->sweep_live, live, __ATOMIC_RELAXED);
	__atomic_store_n(&g->sweep_slabs, g->slab_bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&g->slab_peak, g->slab_bytes, __ATOMIC_RELAXED);
	unlock(g, &g->lock);
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
	size_t out = depot_out(d);

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
void
ba_gpa_depot_grew(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	if (d->nfull * class_size(c) > d->trim_at || dead_many(d, c)) {
		ba_gpa_depot_trim(g, d, c, TRIM_GROW);
		d->trim_at = ba_gpa_trim_next(d, c);
	}
}

/* A magazine from its cache into depot d: full (or partly) or empty.
 * No trim: the caller asks ba_gpa_depot_grew() once it has given all
 * it gives, or not at all when a trim of its own follows.  Under the
 * depot's lock. */
void
ba_gpa_depot_put(struct depot *d, struct mag *m)
{
	if (m == &ba_gpa_no_mag)
		return;
	if (m->n == 0) {
		mag_put(m, &d->empty);
		return;
	}
	mag_put(m, &d->full);
	d->nfull += m->n;
}

/* The same, then the trim that the depot's growth may call for. */
void
ba_gpa_depot_give(struct beamalloc_gpa *g, struct depot *d, size_t c, struct mag *m)
{
	ba_gpa_depot_put(d, m);
	ba_gpa_depot_grew(g, d, c);
}
