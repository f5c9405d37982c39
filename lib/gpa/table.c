/*
 * table.c - the GPA's slab table: slab address -> records, read without
 * locks (its lookup, slab_find(), is inline in gpa.h for the fast paths);
 * here its growth, new slabs and their release.
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
 * Slab table: address -> records, read without locks
 * ---------------------------------------------------------------------- */

struct stab *
ba_gpa_stab_new(struct beamalloc_gpa *g, size_t cap)
{
	struct stab *t = ba_gpa_meta_zalloc(g,
	    sizeof(*t) + cap * sizeof(t->e[0]));

	if (t != NULL) {
		t->mask = cap - 1;
		t->hshift = 64 - log2_of(cap);
	}
	return t;
}

/* A tombstone's slot is taken again: a reader that matched the old key
 * reads the key again after the fields, and, finding it changed, looks
 * again (the fence orders the tombstone before the new fields, as a
 * seqlock's writer does). */
static bool
stab_put(struct stab *t, uintptr_t key, unsigned char *recs, uint64_t slots)
{
	size_t i = stab_hash(t, key & ~(uintptr_t)(FRAME_SIZE - 1));
	uintptr_t k;

	while ((k = atomic_load_explicit(&t->e[i].key,
	    memory_order_relaxed)) != 0 && k != STAB_TOMB)
		i = (i + 1) & t->mask;
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&t->e[i].recs, recs, memory_order_relaxed);
	atomic_store_explicit(&t->e[i].slots, slots, memory_order_relaxed);
	atomic_store_explicit(&t->e[i].key, key, memory_order_release);
	return k == 0;
}

/* Under g->lock.  A table half full (tombstones included) is replaced by
 * one with room for twice the live slabs; the old one stays (readers may
 * still be in it) until destroy. */
static bool
stab_insert(struct beamalloc_gpa *g, uintptr_t key, unsigned char *recs,
    uint64_t slots)
{
	struct stab *t = atomic_load_explicit(&g->stab, memory_order_relaxed);

	if ((g->nstab + 1) * 2 > t->mask + 1) {
		size_t cap = 64;
		struct stab *n;

		while (cap < (g->nkeys + 1) * 4)
			cap *= 2;
		if ((n = ba_gpa_stab_new(g, cap)) == NULL)
			return false;
		for (size_t i = 0; i <= t->mask; i++) {
			uintptr_t k = atomic_load_explicit(&t->e[i].key,
			    memory_order_relaxed);

			if (k != 0 && k != STAB_TOMB)
				stab_put(n, k, atomic_load_explicit(
				    &t->e[i].recs, memory_order_relaxed),
				    atomic_load_explicit(&t->e[i].slots,
				    memory_order_relaxed));
		}
		atomic_store_explicit(&g->stab, n, memory_order_release);
		t = n;
		g->nstab = g->nkeys;
	}
	g->nstab += stab_put(t, key, recs, slots);
	g->nkeys++;
	return true;
}

/* Under g->lock. */
static void
stab_remove(struct beamalloc_gpa *g, uintptr_t frame)
{
	struct stab *t = atomic_load_explicit(&g->stab, memory_order_relaxed);

	for (size_t i = stab_hash(t, frame);; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->e[i].key,
		    memory_order_relaxed);

		if ((k & ~(uintptr_t)(FRAME_SIZE - 1)) == frame) {
			atomic_store_explicit(&t->e[i].key, STAB_TOMB,
			    memory_order_release);
			break;
		}
	}
	g->nkeys--;
}

/* Frame i of region r (REGION_HEAD: the one below base). */
static uintptr_t
frame_base(const struct region *r, unsigned i)
{
	return i == REGION_HEAD ? r->base - FRAME_SIZE :
	    r->base + (uintptr_t)i * FRAME_SIZE;
}

/* The slots of class c that a slab at frame i of r holds, from *first
 * (a partial frame's slab has fewer: only one-frame slabs are made in
 * one). */
static uint32_t
frame_slots(const struct region *r, unsigned i, size_t c, uint32_t *first)
{
	size_t size = class_size(c);
	uint32_t all = (uint32_t)(slab_span(c) / size);

	*first = 0;
	if (i < r->nframes)
		return all;
	if (i == r->nframes)
		return (uint32_t)(r->tail / size);
	*first = (uint32_t)((FRAME_SIZE - r->head + size - 1) / size);
	return all - ba_min(all, *first);
}

/* A partial frame of r free for TAIL_SLOTS slots of class c at least:
 * the head's frame may be another region's tail's, and the other way
 * round, so the table is asked too.  REGION_HEAD + 1: none. */
static unsigned
frame_part(const struct beamalloc_gpa *g, const struct region *r, size_t c)
{
	unsigned cand[2] = { r->nframes, REGION_HEAD };
	uint32_t first;
	struct where w;

	for (int k = 0; k < 2; k++)
		if ((r->used >> cand[k] & 1) == 0 &&
		    frame_slots(r, cand[k], c, &first) >= TAIL_SLOTS &&
		    !slab_find(g, frame_base(r, cand[k]), &w))
			return cand[k];
	return REGION_HEAD + 1;
}

/* The whole frames of r free for a slab of class c: for a two-frame
 * slab, the first of two free ones at SLAB_SIZE alignment; for a
 * one-frame slab, those beside another one-frame slab first (or in no
 * such pair), so that one-frame slabs do not break up the pairs that
 * two-frame ones need. */
static uint64_t
frames_free(const struct region *r, size_t c)
{
	uint64_t all = ((uint64_t)1 << r->nframes) - 1, f = ~r->used & all;
	/* The first frame of each pair at SLAB_SIZE alignment within the
	 * region; the frames of no pair (at most one at either end). */
	uint64_t pair = ((r->base & (SLAB_SIZE - 1)) == 0 ?
	    0x5555555555555555ull : 0xaaaaaaaaaaaaaaaaull) & all >> 1;
	uint64_t single = all & ~(pair | pair << 1), beside;

	if (slab_span(c) != FRAME_SIZE)
		return f & f >> 1 & pair;
	beside = (r->used >> 1 & pair) | (r->used & pair) << 1 | single;
	return (f & beside) != 0 ? f & beside : f;
}

/* The frame for a new slab of class c: a partial one (a region's head
 * or tail) for a one-frame class's first slab (a class little used
 * wastes less of it, and its bytes are lost otherwise), else the first
 * whole one free, else a partial one.  Its index in *i; NULL: none
 * free.  Under g->lock. */
static struct region *
frame_find(struct beamalloc_gpa *g, size_t c, bool first, unsigned *i)
{
	struct region *r, *whole = NULL, *part = NULL;
	bool parts = slab_span(c) == FRAME_SIZE;
	unsigned pi = 0;
	uint64_t free_bits = 0;

	/* Whole frames from the regions with one free; a partial frame,
	 * looked for in all, only where it would be taken: for a first
	 * slab, or when no whole frame is free. */
	for (r = g->ravail; r != NULL; r = r->anext)
		if ((free_bits = frames_free(r, c)) != 0) {
			whole = r;
			break;
		}
	if (parts && (first || whole == NULL))
		for (r = g->regions; r != NULL; r = r->next)
			if ((r->head | r->tail) != 0 &&
			    (pi = frame_part(g, r, c)) <= REGION_HEAD) {
				part = r;
				break;
			}
	if (part != NULL && (first || whole == NULL)) {
		*i = pi;
		return part;
	}
	if (whole != NULL)
		*i = (unsigned)__builtin_ctzll(free_bits);
	return whole;
}

/* The frames bit i of a region stands for, for a slab of class c. */
static uint64_t
frame_bits(size_t c, unsigned i)
{
	return (slab_span(c) == FRAME_SIZE ? (uint64_t)1 : (uint64_t)3) << i;
}

/* Slab s's keys in the table, one a frame, with where its slots lie,
 * and how far a memo of it moves its base: so that the fast free's one
 * test, an offset below SLAB_SIZE, holds for the slab's slots alone
 * (memo_fill()), the first slot is the base when there are bytes of the
 * frame below it (a region's head), else the base is as many slots below
 * the slab as put the end of its slots at SLAB_SIZE or past.  Under
 * g->lock. */
static bool
slab_keys(struct beamalloc_gpa *g, struct slab *s)
{
	uint32_t lo = s->first * s->size, hi = lo + s->nslots * s->size;
	int32_t memo = lo != 0 ? (int32_t)s->first :
	    -(int32_t)((SLAB_SIZE - hi + s->size - 1) / s->size);

	for (uintptr_t f = s->base; f < s->base + slab_span(s->cls);
	    f += FRAME_SIZE)
		if (!stab_insert(g, f | s->cls, s->recs, SLOTS(lo, hi,
		    memo))) {
			while (f > s->base)
				stab_remove(g, f -= FRAME_SIZE);
			return false;
		}
	return true;
}

/* The depots' slab bytes grew or shrank by bytes (g->slab_bytes, read
 * without the lock by tcache.c's sweep_due()).  Under g->lock. */
static void
slab_count(struct beamalloc_gpa *g, ptrdiff_t bytes)
{
	size_t now = g->slab_bytes + (size_t)bytes;

	__atomic_store_n(&g->slab_bytes, now, __ATOMIC_RELAXED);
	if (now > g->slab_peak)
		__atomic_store_n(&g->slab_peak, now, __ATOMIC_RELAXED);
}

/* A new slab for class c (its first: first), its records in a block of
 * their own, a key in the table for each of its frames.  The records
 * are indexed from the slab's base and run to its last slot, and one
 * more, never used, for the slot start past the last slot when the
 * size does not divide the span (a head slab's memo reaches it:
 * memo_fill()); a head slab's below its first slot are never used
 * either.  A tail slab has none past its slots: nothing reads there
 * (the memo's one test and slot_find() stop at its slots), and with
 * safety's 16-byte records a whole frame's worth would often be more
 * than the partial slab's slots.  Under the class's depot lock. */
struct slab *
ba_gpa_slab_new(struct beamalloc_gpa *g, size_t c, bool first)
{
	uint32_t nslots, first_slot, end;
	size_t recs_len, meta_len;
	void *meta;
	struct region *r;
	struct slab *s = NULL;
	unsigned i;

	lock(g, &g->lock);
	/* A new region has room, but for a two-frame slab when it is
	 * the first one, of two frames, not aligned to SLAB_SIZE. */
	while ((r = frame_find(g, c, first, &i)) == NULL)
		if (ba_gpa_region_new(g) == NULL)
			goto out;
	nslots = frame_slots(r, i, c, &first_slot);
	end = first_slot + nslots;
	recs_len = ba_align_forward((size_t)(end + 1) << g->rec_shift, 16);
	/* The backing gives 8-byte alignment, the records want 16. */
	meta_len = sizeof(struct slab) + recs_len + (g->depth != 0 ?
	    (size_t)end * sizeof(uint32_t) : 0) + 8;
	if ((meta = ba_gpa_backing_get(g, meta_len)) == NULL)
		goto unused;
	s = (struct slab *)ba_align_forward((uintptr_t)meta, 16);
	memset(s, 0, meta_len - 8);
	s->meta = meta;
	s->base = frame_base(r, i);
	s->ftids = g->depth != 0 ? (uint32_t *)(void *)(s->recs +
	    recs_len) : NULL;
	s->region = r;
	s->meta_len = meta_len;
	s->nslots = nslots;
	s->first = first_slot;
	s->size = (uint32_t)class_size(c);
	s->cls = (uint8_t)c;
	if (!slab_keys(g, s)) {
		ba_gpa_backing_put(g, meta, meta_len);
		s = NULL;
		goto unused;
	}
	r->used |= frame_bits(c, i);
	ba_gpa_region_avail(g, r);
	if (r->spare) {
		r->spare = false;
		g->spare -= r->len;
	}
	s->next = atomic_load_explicit(&g->slabs, memory_order_relaxed);
	if (s->next != NULL)
		s->next->prev = s;
	atomic_store_explicit(&g->slabs, s, memory_order_release);
	slab_count(g, (ptrdiff_t)slab_span(c));
	goto out;
unused:
	if (r->used == 0 && !r->spare)
		ba_gpa_region_free(g, r);
out:
	unlock(g, &g->lock);
	return s;
}

/* Give a slab back: none of its slots is live or cached (the depot's
 * trim saw to that).  Its records go too, so threads' memos of it are
 * made stale first, by the epoch.  A region left empty is kept while
 * the spares stay within REGION_SPARE (a full trim gives them back).
 * Under g->lock, no leak scan on. */
size_t
ba_gpa_slab_release(struct beamalloc_gpa *g, struct slab *s)
{
	struct region *r = s->region;
	size_t bytes = s->meta_len;
	unsigned i;

	for (uintptr_t f = s->base; f < s->base + slab_span(s->cls);
	    f += FRAME_SIZE)
		stab_remove(g, f);
	slab_count(g, -(ptrdiff_t)slab_span(s->cls));
	atomic_fetch_add_explicit(&g->epoch, 1, memory_order_release);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		atomic_store_explicit(&g->slabs, s->next,
		    memory_order_release);
	if (s->next != NULL)
		s->next->prev = s->prev;
	i = s->base < r->base ? REGION_HEAD :
	    (unsigned)((s->base - r->base) >> FRAME_SHIFT);
	BA_TOOL_NOACCESS((void *)(s->base + (size_t)s->first * s->size),
	    (size_t)s->nslots * s->size);
	r->used &= ~frame_bits(s->cls, i);
	ba_gpa_region_avail(g, r);
	ba_gpa_backing_put(g, s->meta, s->meta_len);
	if (r->used == 0) {
		if (g->spare + r->len <= REGION_SPARE) {
			r->spare = true;
			g->spare += r->len;
		} else {
			bytes += r->len;
			ba_gpa_region_free(g, r);
		}
	}
	return bytes;
}

/* A sweep found slab s (a depot's own) all free: kept, records and all,
 * on g->reset[its class] in address order, to be carved again from its
 * lowest slot, not made again.  Under g->lock. */
void
ba_gpa_reset_put(struct beamalloc_gpa *g, struct slab *s)
{
	struct slab **p = &g->reset[s->cls];

	while (*p != NULL && (*p)->base < s->base)
		p = &(*p)->dead;
	s->dead = *p;
	*p = s;
	slab_count(g, -(ptrdiff_t)slab_span(s->cls));
}

/* The lowest slab of class c kept for depot d to carve again, or NULL.
 * Only d's own: threads' memos send the slots of a slab to its home, and
 * another home would need them all made stale.  Under g->lock. */
static struct slab *
reset_take(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	struct slab **p = &g->reset[c], *s;

	while ((s = *p) != NULL && s->home != d)
		p = &s->dead;
	if (s != NULL) {
		*p = s->dead;
		slab_count(g, (ptrdiff_t)slab_span(c));
	}
	return s;
}

/* Give back every slab kept for carving again (a full trim).  Each is
 * counted back in for ba_gpa_slab_release() to count out, which moves
 * the depots' slab bytes by nothing: nor may it move their peak.  Under
 * g->lock; the bytes released. */
size_t
ba_gpa_reset_free(struct beamalloc_gpa *g)
{
	size_t bytes = 0, peak = g->slab_peak;

	for (size_t c = 0; c < NCLASS; c++)
		while (g->reset[c] != NULL) {
			struct slab *s = g->reset[c];

			g->reset[c] = s->dead;
			slab_count(g, (ptrdiff_t)slab_span(c));
			bytes += ba_gpa_slab_release(g, s);
		}
	__atomic_store_n(&g->slab_peak, ba_max(peak, g->slab_bytes),
	    __ATOMIC_RELAXED);
	return bytes;
}

/* ------------------------------------------------------------------------
 * Shared slabs: a frame in quarters, each carved by one depot
 * ---------------------------------------------------------------------- */

static bool
qavail_has(const struct beamalloc_gpa *g, const struct slab *s)
{
	return s->qprev != NULL || g->qavail[s->cls] == s;
}

static void
qavail_unlink(struct beamalloc_gpa *g, struct slab *s)
{
	if (!qavail_has(g, s))
		return;
	if (s->qprev != NULL)
		s->qprev->qnext = s->qnext;
	else
		g->qavail[s->cls] = s->qnext;
	if (s->qnext != NULL)
		s->qnext->qprev = s->qprev;
	s->qnext = s->qprev = NULL;
}

/* s on its class's list of shared slabs with a quarter free, or off it
 * when it has none.  Under g->lock. */
static void
qavail_update(struct beamalloc_gpa *g, struct slab *s)
{
	unsigned q = 0;

	while (q < NQUARTER && qhome_get(s, q) != NULL)
		q++;
	if (q == NQUARTER)
		qavail_unlink(g, s);
	else if (!qavail_has(g, s)) {
		s->qnext = g->qavail[s->cls];
		if (s->qnext != NULL)
			s->qnext->qprev = s;
		g->qavail[s->cls] = s;
	}
}

/* Make new slab s shared: each quarter gets the slots that lie wholly
 * within it (the one across a boundary is never carved), none is
 * taken.  False if no quarter has a slot (s stays whole).  Under
 * g->lock. */
static bool
shared_init(struct slab *s)
{
	uint32_t lo_all = s->first, hi_all = s->first + s->nslots;
	bool any = false;

	for (unsigned q = 0; q < NQUARTER; q++) {
		uint32_t lo = (uint32_t)((((size_t)q << QUARTER_SHIFT) +
		    s->size - 1) / s->size);
		uint32_t hi = (uint32_t)(((size_t)(q + 1) << QUARTER_SHIFT) /
		    s->size);

		lo = ba_max(lo, lo_all);
		hi = ba_min(hi, hi_all);
		s->qlo[q] = (uint16_t)lo;
		s->qn[q] = (uint16_t)(hi > lo ? hi - lo : 0);
		atomic_store_explicit(&s->qhome[q], s->qn[q] != 0 ? NULL :
		    Q_VOID, memory_order_relaxed);
		any |= s->qn[q] != 0;
	}
	return any;
}

/* The lowest (first) or highest free quarter of s; NQUARTER: none. */
static unsigned
quarter_free(const struct slab *s, bool highest)
{
	for (unsigned k = 0; k < NQUARTER; k++) {
		unsigned q = highest ? NQUARTER - 1 - k : k;

		if (qhome_get(s, q) == NULL)
			return q;
	}
	return NQUARTER;
}

/* Depot d carves n slots of s from lo next. */
static void
carve_from(struct depot *d, struct slab *s, uint32_t lo, uint32_t n)
{
	d->nslabs++;
	d->nslots += n;
	d->cur = s;
	d->cur_lo = lo;
	d->cur_hi = lo + n;
	d->next_slot = 0;
}

/* Depot d takes quarter q of shared slab s to carve.  Beside another
 * depot's quarter, it makes the memos stale: one may send every slot of
 * the slab to that depot (memo_fill()).  Under g->lock. */
static void
quarter_take(struct beamalloc_gpa *g, struct depot *d, struct slab *s,
    unsigned q)
{
	bool beside = false;

	for (unsigned k = 0; k < NQUARTER; k++)
		beside |= qtaken(s, k) != NULL && qtaken(s, k) != d;
	atomic_store_explicit(&s->qhome[q], d, memory_order_relaxed);
	if (beside)
		atomic_fetch_add_explicit(&g->epoch, 1, memory_order_release);
	qavail_update(g, s);
	carve_from(d, s, s->qlo[q], s->qn[q]);
}

/* A quarter of a shared slab for depot d of class c: one beside the
 * quarter it carved last if free (its memo then covers both at once),
 * or, for its first slots, the highest quarter free of a shared slab
 * (the lower ones stay for the depot below to grow into), else the
 * first of a new shared slab (one with no slot in any quarter becomes
 * d's own).  False: none (d takes a slab of its own, or memory ran
 * out).  Under d's lock. */
static bool
quarter_new(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	struct slab *s = d->cur;
	unsigned q = NQUARTER;

	lock(g, &g->lock);
	if (d->nslabs == 0 && g->ncaches < SHARE_CACHES) {
		unlock(g, &g->lock);
		return false;
	}
	if (s != NULL && s->home == NULL) {
		unsigned cq = cur_quarter(d);

		if (cq + 1 < NQUARTER && qhome_get(s, cq + 1) == NULL)
			q = cq + 1;
		else if (cq > 0 && qhome_get(s, cq - 1) == NULL)
			q = cq - 1;
	}
	if (q == NQUARTER && d->nslabs == 0 && (s = g->qavail[c]) != NULL)
		q = quarter_free(s, true);
	if (q != NQUARTER)
		quarter_take(g, d, s, q);
	unlock(g, &g->lock);
	if (q != NQUARTER || d->nslabs != 0 ||
	    (s = ba_gpa_slab_new(g, c, true)) == NULL)
		return q != NQUARTER;
	lock(g, &g->lock);
	if (shared_init(s))
		quarter_take(g, d, s, quarter_free(s, false));
	else {
		s->home = d;
		carve_from(d, s, s->first, s->nslots);
	}
	unlock(g, &g->lock);
	return true;
}

/* Depot d's next slots of class c to carve, as d->cur and [cur_lo,
 * cur_hi): a quarter of a shared slab while d has no more than a run of
 * them, for classes up to SHARE_MAX once the GPA has SHARE_CACHES
 * thread caches (a thread that makes a few blocks of a class then holds
 * 8 KiB of frame for them, not 32: with a depot per thread, a frame
 * per thread and class added up), else a slab of its own.  With fewer
 * threads, a slab each costs little memory, and keeps every free of
 * the slab's slots on the way to its magazine: the frees of a slab two
 * depots share go through the outbox, the owner's too (bench/README.md).
 * False when memory ran out.  Under d's lock. */
bool
ba_gpa_slots_new(struct beamalloc_gpa *g, struct depot *d, size_t c)
{
	struct slab *s;

	lock(g, &g->lock);
	s = reset_take(g, d, c);
	unlock(g, &g->lock);
	if (s != NULL) {
		carve_from(d, s, s->first, s->nslots);
		return true;
	}
	if (class_size(c) <= SHARE_MAX && (d->nslabs == 0 ||
	    (d->cur != NULL && d->cur->home == NULL)) &&
	    quarter_new(g, d, c))
		return true;
	if ((s = ba_gpa_slab_new(g, c, d->nslabs == 0)) == NULL)
		return false;
	s->home = d;
	carve_from(d, s, s->first, s->nslots);
	return true;
}

/* Quarter q of shared slab s is free again (its depot's trim found all
 * its slots there and took them out): another depot may take it, and
 * the slab goes back once none is taken.  Under g->lock; the bytes
 * released. */
size_t
ba_gpa_quarter_put(struct beamalloc_gpa *g, struct slab *s, unsigned q)
{
	atomic_store_explicit(&s->qhome[q], NULL, memory_order_relaxed);
	for (unsigned k = 0; k < NQUARTER; k++)
		if (qtaken(s, k) != NULL) {
			qavail_update(g, s);
			return 0;
		}
	qavail_unlink(g, s);
	return ba_gpa_slab_release(g, s);
}
