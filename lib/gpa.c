/*
 * gpa.c - the general purpose allocator: power-of-two size classes with
 * leak detection and bad-free reports, fast enough to leave switched on.
 * Its data structures and fast paths are in gpa.h, which the front-end
 * shares; everything else is here.
 *
 * Small blocks (up to 16 KiB, alignment included) live in 64 KiB slabs
 * aligned to 64 KiB, carved from regions taken from the backing
 * allocator (the backing only needs to give 8-byte alignment; a region's
 * unaligned head and tail become metadata space).  Every slot has a
 * record out of band, in the slab's metadata: a state byte (new, used,
 * freed) and, with safety on, the requested length, alignment and call
 * site.  A hash table maps a slab's address to its records, so a free
 * finds its slot in O(1) and a pointer the GPA never gave out finds
 * nothing.  Larger or more aligned blocks come straight from the backing
 * allocator and are kept in a second hash table.
 *
 * Speed: each thread has a cache, found without thread-local storage
 * from the thread pointer, holding two magazines per size class (stacks
 * of free slots and their records, never written into the free blocks
 * themselves).  Magazines are traded whole with a per-class depot under a
 * lock (Bonwick's design), so the lock is rare.  The state byte makes
 * leak detection exact whatever sits in caches (cached slots are freed,
 * not live) and catches a double free even with safety off.  GPAs with
 * no traces, no memory limit and no memory checker watching get
 * specialized vtables whose functions do only this:
 *
 *   alloc:  class -> thread cache -> pop {slot, record} -> record = used
 *   free:   thread cache -> slab (a memo of recent ones, else the
 *           table) -> record: used? (and right length and alignment)
 *           -> freed -> push
 *
 * and hand anything else (an empty or full magazine, a large block, a
 * bad free, a thread without its own cache) to the general functions.
 *
 * Memory goes back to the backing when it is no longer needed.  A thread
 * cache holds at most TC_BYTES of free slots (its slow paths hand the
 * excess to the depot).  A depot grown by a quarter since its last trim,
 * or that must hold many whole slabs, is trimmed: it counts its free
 * slots per slab, and a slab whose slots are all there is taken out of
 * its magazines, out of the table and given back with its records; a
 * region whose slabs are all given back goes back too (one slab still
 * in use keeps its region).  A thread remembers the slabs it freed into
 * (the memo) with the GPA's epoch, which every release advances, so a
 * slab's address may come back for another class.  A leak check trims
 * everything: it also empties the caches of threads not inside the GPA
 * at the time (steal_idle()).
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
 * Small helpers
 * ---------------------------------------------------------------------- */

static inline size_t
class_of(size_t len, size_t align)
{
	size_t n = len > align ? len : align;

	/* ceil(log2(n)) - MIN_SHIFT, 0 for n <= 8 */
	return (size_t)(61 - __builtin_clzll((unsigned long long)((n - 1) |
	    7)));
}

static inline void
lock(struct beamalloc_gpa *g, pthread_mutex_t *m)
{
	if (g->thread_safe)
		pthread_mutex_lock(m);
}

static inline void
unlock(struct beamalloc_gpa *g, pthread_mutex_t *m)
{
	if (g->thread_safe)
		pthread_mutex_unlock(m);
}

/* Memcheck or AddressSanitizer watching: every slot handed out or back
 * is announced (the general paths), so they see slab blocks as malloc
 * blocks.  Otherwise the fast paths skip the announcements. */
static bool
tools_active(void)
{
#if defined(BA_ASAN)
	return true;
#else
	return ba_memcheck_running();
#endif
}

/* ------------------------------------------------------------------------
 * Reports and traces
 * ---------------------------------------------------------------------- */

static void
emit(struct beamalloc_gpa *g, const beamalloc_report *r)
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
static void
set_traces(const struct beamalloc_gpa *g, beamalloc_report *r, uint32_t atid,
    uint32_t ftid, const uintptr_t *site)
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

/* Whether an allocation is traced: every one, or 1 in g->sample: *left
 * counts the allocations to let by first (the fast paths' decrements
 * too, which leave it negative for the one to trace). */
static inline bool
sampled(const struct beamalloc_gpa *g, int *left)
{
	if (g->sample == 0)
		return true;
	if (--*left >= 0)
		return false;
	*left = (int)g->sample - 1;
	return true;
}

/* ------------------------------------------------------------------------
 * Backing memory: regions of slabs, and metadata carved from their
 * unaligned ends (or from blocks of its own)
 * ---------------------------------------------------------------------- */

static void *
backing_get(struct beamalloc_gpa *g, size_t len)
{
	void *p = ba_raw_alloc(g->backing, len, BEAMALLOC_MIN_ALIGN, 0);

	if (p != NULL)
		atomic_fetch_add_explicit(&g->backing_bytes, len,
		    memory_order_relaxed);
	return p;
}

static void
backing_put(struct beamalloc_gpa *g, void *p, size_t len)
{
	ba_raw_free(g->backing, p, len, BEAMALLOC_MIN_ALIGN, 0);
	atomic_fetch_sub_explicit(&g->backing_bytes, len,
	    memory_order_relaxed);
}

static void
chunk_add(struct beamalloc_gpa *g, uintptr_t cur, uintptr_t end)
{
	struct chunk *least = &g->chunks[0];

	cur = ba_align_forward(cur, 16);
	if (cur + 64 > end)
		return;
	for (size_t i = 0; i < NCHUNKS; i++) {
		struct chunk *c = &g->chunks[i];

		if (c->end - c->cur < least->end - least->cur)
			least = c;
	}
	if (least->end - least->cur < end - cur)
		*least = (struct chunk){ cur, end };
}

/* A block for regions or metadata, recorded for destroy in an array
 * the GPA holds (so leak checkers see every block reachable).  Under
 * g->lock. */
static void *
block_get(struct beamalloc_gpa *g, size_t len)
{
	void *p;

	if (g->nbb == g->bbcap) {
		size_t cap = g->bbcap != 0 ? 2 * g->bbcap : 32;
		struct bblock *n = backing_get(g, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		if (g->bb != NULL) {
			memcpy(n, g->bb, g->nbb * sizeof(*n));
			backing_put(g, g->bb, g->bbcap * sizeof(*n));
		}
		g->bb = n;
		g->bbcap = cap;
	}
	if ((p = backing_get(g, len)) != NULL)
		g->bb[g->nbb++] = (struct bblock){ p, len };
	return p;
}

/* A region of n slabs at SLAB_SIZE alignment out of an 8-aligned block;
 * its header goes in the unaligned head or tail (SLAB_SIZE - 8 bytes
 * together).  Regions grow with the number held.  Under g->lock. */
static struct region *
region_new(struct beamalloc_gpa *g)
{
	size_t n = ba_min(REGION_MAX_SLABS, (size_t)1 << ba_min(g->nregions,
	    16));
	size_t len = n * SLAB_SIZE + SLAB_SIZE - BEAMALLOC_MIN_ALIGN;
	uintptr_t mem, base, hdr;
	struct region *r;

	mem = (uintptr_t)backing_get(g, len);
	if (mem == 0)
		return NULL;
	base = ba_align_forward(mem, SLAB_SIZE);
	hdr = base - mem >= sizeof(*r) + 16 ? mem :
	    base + n * SLAB_SIZE;
	r = (struct region *)ba_align_forward(hdr, 16);
	*r = (struct region){ .mem = (void *)mem, .len = len, .base = base,
	    .nslabs = (uint32_t)n, .next = g->regions };
	if (g->regions != NULL)
		g->regions->prev = r;
	g->regions = r;
	g->nregions++;
	BA_TOOL_NOACCESS((void *)base, n * SLAB_SIZE);
	return r;
}

static void
region_free(struct beamalloc_gpa *g, struct region *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		g->regions = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	g->nregions--;
	BA_ASAN_UNPOISON(r->mem, r->len);
	backing_put(g, r->mem, r->len);
}

/* Metadata that lives until destroy (thread caches, tables): carved
 * from blocks of META_CHUNK taken for it.  Under g->lock. */
static void *
meta_alloc(struct beamalloc_gpa *g, size_t len)
{
	size_t total;
	unsigned char *mem;

	len = ba_align_forward(len, 16);
	for (int tries = 0; tries < 2; tries++) {
		for (size_t i = 0; i < NCHUNKS; i++) {
			struct chunk *c = &g->chunks[i];

			if (c->end - c->cur >= len) {
				void *p = (void *)c->cur;

				c->cur += len;
				return p;
			}
		}
		/* Bigger than every chunk left: it replaces the least. */
		total = 16 + (len > META_CHUNK / 2 ? len : META_CHUNK);
		if (tries != 0 || (mem = block_get(g, total)) == NULL)
			break;
		chunk_add(g, (uintptr_t)mem, (uintptr_t)mem + total);
	}
	return NULL;
}

static void *
meta_zalloc(struct beamalloc_gpa *g, size_t len)
{
	void *p = meta_alloc(g, len);

	if (p != NULL)
		memset(p, 0, len);
	return p;
}

/* ------------------------------------------------------------------------
 * Slab table: address -> records, read without locks
 * ---------------------------------------------------------------------- */

static inline size_t
stab_hash(const struct stab *t, uintptr_t base)
{
	return (size_t)(((uint64_t)(base >> SLAB_SHIFT) * HASH_MUL) >>
	    t->hshift);
}

struct where {
	uintptr_t base;
	unsigned shift;
	unsigned char *recs;
};

/* The slab holding p, if any. */
static inline bool
slab_find(const struct beamalloc_gpa *g, uintptr_t p, struct where *w)
{
	const struct stab *t = atomic_load_explicit(&g->stab,
	    memory_order_acquire);
	uintptr_t base = p & ~(uintptr_t)(SLAB_SIZE - 1);
	size_t i = stab_hash(t, base);

	/* No slab is at 0, but both the empty key (0) and a tombstone
	 * (STAB_TOMB) read as base 0: a pointer below SLAB_SIZE (NULL's
	 * field, say) would match them and their stale or missing records. */
	if (BA_UNLIKELY(base == 0))
		return false;
	for (;;) {
		uintptr_t k = atomic_load_explicit(&t->e[i].key,
		    memory_order_acquire);

		/* base is not 0, so neither an empty key nor a tombstone
		 * matches */
		if (BA_LIKELY((k & ~(uintptr_t)(SLAB_SIZE - 1)) == base)) {
			w->base = base;
			w->shift = (unsigned)(k & (SLAB_SIZE - 1));
			w->recs = t->e[i].recs;
			return true;
		}
		if (k == 0)
			return false;
		i = (i + 1) & t->mask;
	}
}

static struct stab *
stab_new(struct beamalloc_gpa *g, size_t cap)
{
	struct stab *t = meta_zalloc(g, sizeof(*t) + cap * sizeof(t->e[0]));

	if (t != NULL) {
		t->mask = cap - 1;
		t->hshift = 64 - log2_of(cap);
	}
	return t;
}

/* A tombstone's slot is taken again: a reader that still matches the
 * old key can only be looking for a released slab's pointer. */
static bool
stab_put(struct stab *t, uintptr_t key, unsigned char *recs)
{
	size_t i = stab_hash(t, key & ~(uintptr_t)(SLAB_SIZE - 1));
	uintptr_t k;

	while ((k = atomic_load_explicit(&t->e[i].key,
	    memory_order_relaxed)) != 0 && k != STAB_TOMB)
		i = (i + 1) & t->mask;
	t->e[i].recs = recs;
	atomic_store_explicit(&t->e[i].key, key, memory_order_release);
	return k == 0;
}

/* Under g->lock.  A table half full (tombstones included) is replaced by
 * one with room for twice the live slabs; the old one stays (readers may
 * still be in it) until destroy. */
static bool
stab_insert(struct beamalloc_gpa *g, uintptr_t key, unsigned char *recs)
{
	struct stab *t = atomic_load_explicit(&g->stab, memory_order_relaxed);

	if ((g->nstab + 1) * 2 > t->mask + 1) {
		size_t cap = 64;
		struct stab *n;

		while (cap < (g->nslabs + 1) * 4)
			cap *= 2;
		if ((n = stab_new(g, cap)) == NULL)
			return false;
		for (size_t i = 0; i <= t->mask; i++) {
			uintptr_t k = atomic_load_explicit(&t->e[i].key,
			    memory_order_relaxed);

			if (k != 0 && k != STAB_TOMB)
				stab_put(n, k, t->e[i].recs);
		}
		atomic_store_explicit(&g->stab, n, memory_order_release);
		t = n;
		g->nstab = g->nslabs;
	}
	g->nstab += stab_put(t, key, recs);
	g->nslabs++;
	return true;
}

/* Under g->lock. */
static void
stab_remove(struct beamalloc_gpa *g, uintptr_t base)
{
	struct stab *t = atomic_load_explicit(&g->stab, memory_order_relaxed);

	for (size_t i = stab_hash(t, base);; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->e[i].key,
		    memory_order_relaxed);

		if ((k & ~(uintptr_t)(SLAB_SIZE - 1)) == base) {
			atomic_store_explicit(&t->e[i].key, STAB_TOMB,
			    memory_order_release);
			break;
		}
	}
	g->nslabs--;
}

static inline struct slab *
slab_of(unsigned char *recs)
{
	return (struct slab *)(void *)(recs - offsetof(struct slab, recs));
}

/* A new slab for class c in the first region with room, its records in
 * a block of their own.  Under the class's depot lock. */
static struct slab *
slab_new(struct beamalloc_gpa *g, size_t c)
{
	unsigned shift = (unsigned)c + MIN_SHIFT;
	uint32_t nslots = (uint32_t)(SLAB_SIZE >> shift);
	size_t recs_len = ba_align_forward((size_t)nslots << g->rec_shift,
	    16);
	/* The backing gives 8-byte alignment, the records want 16. */
	size_t meta_len = sizeof(struct slab) + recs_len + (g->depth != 0 ?
	    (size_t)nslots * sizeof(uint32_t) : 0) + 8;
	void *meta;
	struct region *r;
	struct slab *s = NULL;
	unsigned i;

	lock(g, &g->lock);
	for (r = g->regions; r != NULL; r = r->next)
		if (r->used != (r->nslabs == 64 ? ~(uint64_t)0 :
		    ((uint64_t)1 << r->nslabs) - 1))
			break;
	if (r == NULL && (r = region_new(g)) == NULL)
		goto out;
	if ((meta = backing_get(g, meta_len)) == NULL)
		goto unused;
	s = (struct slab *)ba_align_forward((uintptr_t)meta, 16);
	memset(s, 0, meta_len - 8);
	s->meta = meta;
	i = (unsigned)__builtin_ctzll(~r->used);
	s->base = r->base + (uintptr_t)i * SLAB_SIZE;
	s->ftids = g->depth != 0 ? (uint32_t *)(void *)(s->recs +
	    recs_len) : NULL;
	s->region = r;
	s->meta_len = meta_len;
	s->nslots = nslots;
	s->shift = (uint8_t)shift;
	if (!stab_insert(g, s->base | shift, s->recs)) {
		backing_put(g, meta, meta_len);
		s = NULL;
		goto unused;
	}
	r->used |= (uint64_t)1 << i;
	s->next = atomic_load_explicit(&g->slabs, memory_order_relaxed);
	if (s->next != NULL)
		s->next->prev = s;
	atomic_store_explicit(&g->slabs, s, memory_order_release);
	goto out;
unused:
	if (r->used == 0)
		region_free(g, r);
out:
	unlock(g, &g->lock);
	return s;
}

/* Give a slab back: none of its slots is live or cached (the depot's
 * trim saw to that).  Its records go too, so threads' memos of it are
 * made stale first, by the epoch.  Under g->lock, no leak scan on. */
static size_t
slab_release(struct beamalloc_gpa *g, struct slab *s)
{
	struct region *r = s->region;
	size_t bytes = s->meta_len;

	stab_remove(g, s->base);
	atomic_fetch_add_explicit(&g->epoch, 1, memory_order_release);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		atomic_store_explicit(&g->slabs, s->next,
		    memory_order_release);
	if (s->next != NULL)
		s->next->prev = s->prev;
	BA_TOOL_NOACCESS((void *)s->base, SLAB_SIZE);
	r->used &= ~((uint64_t)1 << ((s->base - r->base) >> SLAB_SHIFT));
	backing_put(g, s->meta, s->meta_len);
	if (r->used == 0) {
		bytes += r->len;
		region_free(g, r);
	}
	return bytes;
}

/* ------------------------------------------------------------------------
 * Depot: magazines between thread caches and slabs
 * ---------------------------------------------------------------------- */

/* Threads start with this in every class: empty and full at once, so
 * both fast paths take the general path, which gives real magazines.
 * Never written. */
static struct mag no_mag;

static inline size_t
mag_len(uint32_t cap)
{
	return sizeof(struct mag) + cap * sizeof(struct entry);
}

/* An empty magazine for class c.  Under its depot's lock. */
static struct mag *
mag_get(struct beamalloc_gpa *g, size_t c)
{
	struct depot *d = &g->depot[c];
	struct mag *m = d->empty;

	if (m != NULL) {
		d->empty = m->next;
		return m;
	}
	m = backing_get(g, mag_len(d->mag_cap));
	if (m != NULL) {
		m->n = 0;
		m->cap = d->mag_cap;
	}
	return m;
}

static void
mag_put(struct mag *m, struct mag **list)
{
	if (m != &no_mag) {
		m->next = *list;
		*list = m;
	}
}

/* The slab of a cached slot (last: the previous answer, often it). */
static struct slab *
slab_at(const struct beamalloc_gpa *g, const struct entry *e,
    struct slab **last)
{
	struct slab *s = *last;
	struct where w;

	if (s != NULL && e->rec >= s->recs && e->rec < s->recs +
	    ((size_t)s->nslots << g->rec_shift))
		return s;
	if (!slab_find(g, (uintptr_t)e->p, &w))
		abort();		/* a cached slot is in a slab */
	return *last = slab_of(w.recs);
}

static inline bool
slab_dead(const struct slab *s, uint32_t stamp)
{
	return s->stamp == stamp && s->cnt == s->nslots;
}

/* Count the depot's free slots per slab (uncarved ones included): a slab
 * with all of them here has none live or in a thread cache, so its slots
 * are taken out of the magazines (packed in place) and it is given back,
 * but for `keep` of them.
 * The depot then keeps two empty magazines at most.  Under the depot's
 * lock; returns the bytes released. */
static size_t
depot_trim(struct beamalloc_gpa *g, size_t c, size_t keep)
{
	struct depot *d = &g->depot[c];
	struct slab *dead = NULL, *last = NULL, *s;
	struct mag *rm, *wm, *m;
	uint32_t stamp, wi = 0;
	size_t bytes = 0, nempty = 0;

	/* g->lock throughout: no leak scan may start walking the slabs. */
	lock(g, &g->lock);
	if (g->scanning != 0)
		goto out;
	stamp = ++g->stamp;
	if ((s = d->cur) != NULL) {
		s->stamp = stamp;
		s->cnt = s->nslots - d->next_slot;
	}
	for (rm = d->full; rm != NULL; rm = rm->next)
		for (uint32_t i = 0; i < rm->n; i++) {
			s = slab_at(g, &rm->e[i], &last);
			if (s->stamp != stamp) {
				s->stamp = stamp;
				s->cnt = 0;
			}
			if (++s->cnt == s->nslots) {
				s->dead = dead;
				dead = s;
			}
		}
	/* Some stay, the one being carved first: a class that needs them
	 * again soon does not make them again. */
	for (struct slab **p = &dead; *p != NULL && keep != 0;)
		if (*p == d->cur || keep > 1) {
			(*p)->cnt = 0;
			*p = (*p)->dead;
			keep--;
		} else
			p = &(*p)->dead;
	if (dead == NULL)
		goto empties;
	/* The write position never passes the read position. */
	d->nfull = 0;
	wm = d->full;
	for (rm = d->full; rm != NULL; rm = rm->next) {
		uint32_t n = rm->n;

		for (uint32_t i = 0; i < n; i++) {
			struct entry e = rm->e[i];

			if (slab_dead(slab_at(g, &e, &last), stamp))
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
		if (s == d->cur)
			d->cur = NULL;
		bytes += slab_release(g, s);
		d->nslabs--;
	}
empties:
	for (m = d->empty; m != NULL; m = m->next)
		if (++nempty == 2) {
			while ((rm = m->next) != NULL) {
				m->next = rm->next;
				bytes += mag_len(rm->cap);
				backing_put(g, rm, mag_len(rm->cap));
			}
			break;
		}
out:
	unlock(g, &g->lock);
	return bytes;
}

/* After a trim: the next one when a quarter more (or TRIM_MIN) has come
 * in, so a trim looks at no more than five slots per slot that came in
 * since the last one, and dead slabs hold at most that much. */
static size_t
trim_next(const struct depot *d, size_t c)
{
	size_t held = d->nfull << (c + MIN_SHIFT);

	return held + ba_max(TRIM_MIN, held);
}

/* So few slots of the class are outside the depot (live, cached; not
 * uncarved) that a quarter of its slabs at least must be all in it: a
 * trim then gives back that many slabs at least, for the slots it looks
 * at.  This catches the end of a mass of frees, which trim_next() lets
 * pass. */
static bool
dead_many(const struct depot *d, size_t c)
{
	size_t per = SLAB_SIZE >> (c + MIN_SHIFT);
	size_t out = d->nslabs * per - d->nfull - (d->cur != NULL ?
	    d->cur->nslots - d->next_slot : 0);

	/* A class in steady use (three quarters of its slots used or
	 * cached) keeps its slabs: they would only be made again. */
	return out * 4 <= d->nslabs * per && d->nslabs > out &&
	    d->nslabs - out >= ba_max(2, d->nslabs / 4);
}

/* A magazine from a thread cache into the depot: full (or partly) or
 * empty.  A depot past trim_next(), or with many slabs dead, is trimmed
 * again.  Under the depot's lock. */
static void
depot_give(struct beamalloc_gpa *g, size_t c, struct mag *m)
{
	struct depot *d = &g->depot[c];

	if (m == &no_mag)
		return;
	if (m->n == 0) {
		mag_put(m, &d->empty);
		return;
	}
	mag_put(m, &d->full);
	d->nfull += m->n;
	if ((d->nfull << (c + MIN_SHIFT)) > d->trim_at || dead_many(d, c)) {
		depot_trim(g, c, d->nslabs / 8);
		d->trim_at = trim_next(d, c);
	}
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
	if (tc->loaded[c] != &no_mag)
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

/* The cache's live blocks, read from any thread (a seqlock reader). */
static ptrdiff_t
tc_blocks(const struct tcache *tc)
{
	unsigned s;
	ptrdiff_t n;

	do {
		s = __atomic_load_n(&tc->seq, __ATOMIC_ACQUIRE);
		n = __atomic_load_n(&tc->nblk, __ATOMIC_RELAXED);
		for (size_t c = 0; c < NCLASS; c++)
			n += ld_given(tc, c);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((s & 1) != 0 ||
	    s != __atomic_load_n(&tc->seq, __ATOMIC_RELAXED));
	return n;
}

static void tc_bound(struct beamalloc_gpa *g, struct tcache *tc, size_t c);

/* The loaded magazine of class c is empty: swap in the other one if it
 * has slots, else trade it for a full one from the depot, else fill it
 * with fresh slots.  False when memory ran out. */
static bool
refill(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &g->depot[c];
	struct mag *m = tc->prev[c], *full;

	ld_save(tc, c);
	if (m->n != 0) {
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = m;
		ld_load(tc, c);
		return true;
	}
	lock(g, &d->lock);
	if ((full = d->full) != NULL) {
		d->full = full->next;
		d->nfull -= full->n;
		mag_put(m, &d->empty);
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = full;
	} else {
		if ((m = tc->loaded[c]) == &no_mag &&
		    (m = mag_get(g, c)) != NULL)
			tc->loaded[c] = m;
		/* Fresh slots, lowest address on top of the stack; a few the
		 * first time, a magazine after: a GPA made for one short call
		 * (a leak-checked NIF) carves, drains and trims 8 slots, and
		 * a busy class pays one refill more. */
		uint32_t want = d->carve == 0 ? CARVE_MIN : d->mag_cap;

		d->carve = d->mag_cap;
		while (m != NULL && m->n < m->cap && want-- != 0) {
			struct slab *s = d->cur;
			size_t i;

			if (s == NULL || d->next_slot == s->nslots) {
				if ((s = slab_new(g, c)) == NULL)
					break;
				d->nslabs++;
				d->cur = s;
				d->next_slot = 0;
			}
			i = s->nslots - 1 - d->next_slot++;
			m->e[m->n++] = (struct entry){
				(unsigned char *)s->base + (i << s->shift),
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
	struct depot *d = &g->depot[c];
	struct mag *m = tc->prev[c];

	ld_save(tc, c);
	if (m->n < m->cap) {
		tc->prev[c] = tc->loaded[c];
		tc->loaded[c] = m;
		ld_load(tc, c);
		return true;
	}
	lock(g, &d->lock);
	if ((m = mag_get(g, c)) != NULL) {
		if (tc->prev[c] == &no_mag)
			tc->prev[c] = tc->loaded[c];
		else
			depot_give(g, c, tc->loaded[c]);
		tc->loaded[c] = m;
	}
	unlock(g, &d->lock);
	ld_load(tc, c);
	tc_bound(g, tc, c);
	return m != NULL;
}

/* Class c's magazines into the depot (the thread's cache then has none
 * of that class).  The bounds are left alone: steal_idle() keeps its
 * sentinels there. */
static void
tc_give(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	struct depot *d = &g->depot[c];

	if (tc->loaded[c] == &no_mag && tc->prev[c] == &no_mag)
		return;
	ld_save(tc, c);
	lock(g, &d->lock);
	depot_give(g, c, tc->loaded[c]);
	depot_give(g, c, tc->prev[c]);
	unlock(g, &d->lock);
	tc->loaded[c] = tc->prev[c] = &no_mag;
	ld_top(tc, c);
}

static void
tc_drain(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	tc_give(g, tc, c);
	ld_bounds(tc, c);
}

/* After a slow path in class c: a cache holding more than TC_BYTES of
 * free slots gives the magazines of other classes to their depots,
 * largest classes first. */
static void
tc_bound(struct beamalloc_gpa *g, struct tcache *tc, size_t c)
{
	size_t bytes = 0;

	for (size_t k = 0; k < NCLASS; k++)
		bytes += ((size_t)ld_n(tc, k) + (tc->prev[k]->n)) <<
		    (k + MIN_SHIFT);
	for (size_t k = NCLASS; k-- > 0 && bytes > TC_BYTES;)
		if (k != c) {
			bytes -= ((size_t)ld_n(tc, k) + tc->prev[k]->n) <<
			    (k + MIN_SHIFT);
			tc_drain(g, tc, k);
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
static struct tcache no_tc;

static void
memo_clear(struct tcache *tc)
{
	for (size_t i = 0; i < NMEMO; i++)
		tc->memo[i] = (struct memo){ .base = 0, .mask = SLAB_SIZE - 1,
		    .recs = (unsigned char *)no_recs, .mul = 0,
		    .top = &tc->top[0] };
}

static struct tcache *
tcache_new(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	lock(g, &g->lock);
	tc = meta_zalloc(g, sizeof(*tc));
	if (tc != NULL) {
		for (size_t c = 0; c < NCLASS; c++) {
			tc->loaded[c] = tc->prev[c] = &no_mag;
			ld_load(tc, c);
		}
		memo_clear(tc);
		tc->next = g->tcaches;
		g->tcaches = tc;
	}
	unlock(g, &g->lock);
	return tc;
}

static void go_shared(struct beamalloc_gpa *g);
static void settle(struct beamalloc_gpa *g, struct tcache *tc);
static void exit_note(struct beamalloc_gpa *g, size_t slot);

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
	return tc != NULL ? tc : tcache_new(g);
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
static struct tcache *
tcache_slow(struct beamalloc_gpa *g)
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
			return tc != &no_tc ? tc : NULL;
		}
		if (cur == TKEY_TOMB && tomb == NTHREADS)
			tomb = i;
		if (cur == 0)
			goto claim;
	}
	if (tomb == NTHREADS) {
		if (g->safety)
			go_shared(g);	/* every slot taken: many threads */
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
	exit_note(g, i);
	/* A second thread: frees may race from now on. */
	if (atomic_fetch_add(&g->nclaimed, 1) != 0 && g->safety)
		go_shared(g);
	return tc;
}

/* The general paths wait while their cache is being emptied, then set
 * the bounds again if a trim left sentinels there. */
static void
tc_enter_wait(struct beamalloc_gpa *g, struct tcache *tc)
{
	if (!g->thread_safe || tc == g->tc0)
		return;			/* tc0: its own lock */
	while (!tc_enter(tc))
		sched_yield();
	if (BA_UNLIKELY(__atomic_load_n(&tc->stolen, __ATOMIC_ACQUIRE))) {
		for (size_t c = 0; c < NCLASS; c++)
			ld_bounds(tc, c);
		__atomic_store_n(&tc->stolen, 0, __ATOMIC_RELAXED);
	}
}

static void
tc_leave_wait(struct beamalloc_gpa *g, struct tcache *tc)
{
	if (g->thread_safe && tc != g->tc0)
		tc_leave(tc);
}

static inline struct tcache *
tcache_of(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (!g->thread_safe)
		return g->tc0;
	return tcache_mine(g, &tc) ? tc : NULL;
}

/* ------------------------------------------------------------------------
 * Thread exit: a thread that ends gives its cache slots back.  One
 * pthread key per process; its value is the list of the slots the thread
 * claimed, in any GPA.  At exit its destructor hands each cache's
 * magazines to the depots, settles its credit, and frees the slot (a
 * tombstone) and the cache (g->tc_free) for the next thread.  A GPA may
 * be destroyed before a thread that used it ends: thread-safe GPAs are
 * registered here while they live, and the destructor touches only
 * registered ones, under the registry's lock, which destroy takes first.
 * (The global GPA is never destroyed.)
 * ---------------------------------------------------------------------- */

struct tclaim {
	struct tclaim *next;
	struct beamalloc_gpa *g;
	uint64_t gid;			/* g->gid: g's address may be reused */
	size_t slot;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct beamalloc_gpa *reg_live;	/* through reg_next */
static uint64_t reg_gid;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_ok;

/* Under reg_lock. */
static bool
reg_has(const struct beamalloc_gpa *g, uint64_t gid)
{
	for (const struct beamalloc_gpa *r = reg_live; r != NULL;
	    r = r->reg_next)
		if (r == g)
			return r->gid == gid;
	return false;
}

static void
reg_add(struct beamalloc_gpa *g)
{
	pthread_mutex_lock(&reg_lock);
	g->gid = ++reg_gid;
	g->reg_next = reg_live;
	reg_live = g;
	pthread_mutex_unlock(&reg_lock);
}

/* Waits for any thread giving back a slot of g. */
static void
reg_remove(struct beamalloc_gpa *g)
{
	pthread_mutex_lock(&reg_lock);
	for (struct beamalloc_gpa **p = &reg_live; *p != NULL;
	    p = &(*p)->reg_next)
		if (*p == g) {
			*p = g->reg_next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

/* The ending thread's cache in slot i goes back: its magazines to the
 * depots (waiting out a steal_idle() at work on them), its credit into
 * the counters; its block count stays with the cache, which stays on
 * g->tcaches for stats and trims.  Then the slot is a tombstone and the
 * cache is free. */
static void
slot_release(struct beamalloc_gpa *g, size_t i)
{
	uintptr_t k = thread_key();
	struct tcache *tc = atomic_load_explicit(&g->tcs[i],
	    memory_order_acquire);

	if (atomic_load_explicit(&g->tkey[i], memory_order_relaxed) != k ||
	    tc == &no_tc || tc->owner != k)
		return;
	tc_enter_wait(g, tc);
	for (size_t c = 0; c < NCLASS; c++)
		tc_drain(g, tc, c);
	tc_leave_wait(g, tc);
	if (g->batched)
		settle(g, tc);
	atomic_store_explicit(&g->tcs[i], &no_tc, memory_order_release);
	atomic_store_explicit(&g->tkey[i], TKEY_TOMB, memory_order_release);
	lock(g, &g->lock);
	tc->free_next = g->tc_free;
	g->tc_free = tc;
	unlock(g, &g->lock);
}

/* The key's destructor (once per thread, and again if a later
 * destructor claims a slot anew). */
static void
thread_gone(void *arg)
{
	struct tclaim *cl = arg, *next;

	pthread_mutex_lock(&reg_lock);
	for (; cl != NULL; cl = next) {
		next = cl->next;
		if (reg_has(cl->g, cl->gid))
			slot_release(cl->g, cl->slot);
		free(cl);
	}
	pthread_mutex_unlock(&reg_lock);
}

static void
exit_init(void)
{
	exit_ok = pthread_key_create(&exit_key, thread_gone) == 0;
}

/* The library may be unloaded (a NIF's dlclose): its destructor must not
 * be called after that.  Threads still alive then keep their slots, as
 * before there was a hook, and their lists (a few words each). */
__attribute__((destructor)) static void
exit_fini(void)
{
	if (exit_ok) {
		exit_ok = false;
		pthread_key_delete(exit_key);
	}
}

/* The calling thread claimed slot i of g: note it for its exit.  Notes
 * of destroyed GPAs are dropped now and then, when the registry is free
 * (never waited for here: this may run inside a slot_release() of a GPA
 * over this one).  Without memory or a key the slot stays claimed, as a
 * thread that ended without the hook leaves it. */
static void
exit_note(struct beamalloc_gpa *g, size_t i)
{
	struct tclaim *head, *cl;
	size_t n = 0;

	pthread_once(&exit_once, exit_init);
	if (!exit_ok)
		return;
	head = pthread_getspecific(exit_key);
	for (cl = head; cl != NULL; cl = cl->next)
		n++;
	if (n >= 8 && pthread_mutex_trylock(&reg_lock) == 0) {
		for (struct tclaim **p = &head; (cl = *p) != NULL;)
			if (!reg_has(cl->g, cl->gid)) {
				*p = cl->next;
				free(cl);
			} else
				p = &cl->next;
		pthread_mutex_unlock(&reg_lock);
	}
	if ((cl = malloc(sizeof(*cl))) != NULL) {
		*cl = (struct tclaim){ head, g, g->gid, i };
		head = cl;
	}
	(void)pthread_setspecific(exit_key, head);
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

static void
settle(struct beamalloc_gpa *g, struct tcache *tc)
{
	ptrdiff_t before = atomic_fetch_add_explicit(&g->live,
	    tc->hi - tc->room, memory_order_relaxed);

	peak_note(g, before + tc->hi);
	tc->hi = tc->room = 0;
}

/* Exact: a memory limit, large blocks. */
static bool
charge_exact(struct beamalloc_gpa *g, ptrdiff_t bytes, ptrdiff_t blocks)
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
		settle(g, tc);
	return ret;
}

/* Any change, as the general paths make. */
static inline void
credit(struct beamalloc_gpa *g, struct tcache *tc, ptrdiff_t bytes)
{
	tc->room -= bytes;
	if (tc->room < 0)
		ba_gpa_credit_high(g, tc, NULL);
	else if (tc->hi - tc->room < -CREDIT_BATCH)
		settle(g, tc);
}

/* Bytes of a small block (its count is the magazines'). */
static inline bool
charge(struct beamalloc_gpa *g, struct tcache *tc, ptrdiff_t bytes)
{
	if (!g->batched)
		return charge_exact(g, bytes, 0);
	credit(g, tc, bytes);
	return true;
}

/* ------------------------------------------------------------------------
 * Small blocks
 * ---------------------------------------------------------------------- */

/* What slot i of a slab (records recs, free trace ids ftids, slots of
 * 1 << shift bytes) knows of its block, into r: size, alignment, traces.
 * site holds the call site until r is emitted. */
static void
describe_slot(const struct beamalloc_gpa *g, beamalloc_report *r,
    const unsigned char *recs, const uint32_t *ftids, unsigned shift,
    size_t i, uintptr_t *site)
{
	const struct rec *sr = (const void *)(recs + (i << g->rec_shift));
	uint32_t atid = 0, ftid = 0;

	r->size = (size_t)1 << shift;
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
	set_traces(g, r, atid, ftid, site);
}

static void
report_slot(struct beamalloc_gpa *g, beamalloc_report_kind kind,
    uintptr_t p, const struct where *w, size_t len,
    size_t align, uintptr_t ra)
{
	size_t i = (p - w->base) >> w->shift;
	uintptr_t site = 0;
	beamalloc_report r = {
		.kind = kind, .addr = (const void *)p, .given_size = len,
		.given_align = align, .ret_addr = ra,
	};

	/* An invalid free names no block of ours. */
	if (kind != BEAMALLOC_REPORT_INVALID_FREE)
		describe_slot(g, &r, w->recs, slab_of(w->recs)->ftids,
		    w->shift, i, &site);
	emit(g, &r);
}

/* The record of a live slot at p, or NULL after reporting why not. */
static unsigned char *
live_slot(struct beamalloc_gpa *g, uintptr_t p,
    const struct where *w, size_t len, size_t align, uintptr_t ra)
{
	size_t off = p - w->base;
	unsigned char *rec = w->recs + ((off >> w->shift) << g->rec_shift);
	uint8_t st;

	if (BA_UNLIKELY((off & (((size_t)1 << w->shift) - 1)) != 0)) {
		report_slot(g, BEAMALLOC_REPORT_INVALID_FREE, p, w, len,
		    align, ra);
		return NULL;
	}
	st = state_get(rec);
	if (BA_UNLIKELY(st != REC_USED)) {
		report_slot(g, st == REC_FREE ? BEAMALLOC_REPORT_DOUBLE_FREE :
		    BEAMALLOC_REPORT_INVALID_FREE, p, w, len, align, ra);
		return NULL;
	}
	if (g->safety && BA_UNLIKELY(!rec_matches(rec, len, align))) {
		report_slot(g, ((const struct rec *)(const void *)rec)->len !=
		    len ? BEAMALLOC_REPORT_SIZE_MISMATCH :
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
		slab_of(w.recs)->ftids[((uintptr_t)p - w.base) >> w.shift] =
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
		report_slot(g, BEAMALLOC_REPORT_DOUBLE_FREE, (uintptr_t)p, &w,
		    0, 0, 0);
}

/* Corruption checks on small blocks (the helpers are in gpa_check.c;
 * the quarantine's side is after the large blocks). */
static inline void slot_push(struct beamalloc_gpa *g, struct tcache *tc,
    unsigned char *p, unsigned char *rec, unsigned shift, bool held);
static bool quar_hold(struct beamalloc_gpa *g, struct tcache *tc,
    const struct ba_qent *e);

/* A freed slot handed out again (or leaving quarantine) must still hold
 * only junk: anything else was written after its free.  Reported with
 * what its record still says of the freed block. */
void
ba_gpa_reused_bad(struct beamalloc_gpa *g, unsigned char *p)
{
	struct where w;

	if (slab_find(g, (uintptr_t)p, &w))
		report_slot(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE,
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
	if (!ba_chk_canary_ok(g, p, len, (size_t)1 << w->shift))
		report_slot(g, BEAMALLOC_REPORT_OVERFLOW, (uintptr_t)p, w, len,
		    align, ra);
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
	tc_enter_wait(g, tc);
	if (tc->top[c] == tc->bot[c] && !refill(g, tc, c)) {
		tc_leave_wait(g, tc);
		charge(g, tc, -(ptrdiff_t)len);
		return ba_fail(ENOMEM);
	}
	e = *--tc->top[c];
	tc_leave_wait(g, tc);
	if (BA_UNLIKELY(state_get(e.rec) == REC_USED)) {
		popped_twice(g, e.p);
		goto again;
	}
	if (BA_UNLIKELY(g->junk) && state_get(e.rec) == REC_FREE)
		slot_reused(g, e.p, (size_t)1 << (c + MIN_SHIFT));
	if (g->safety)
		rec_fill(e.rec, len, align, ra);
	if (BA_UNLIKELY(g->depth != 0))
		((struct rec *)(void *)e.rec)->tid = sampled(g,
		    &tc->sample_left) ? ba_trace_id(g->traces, g->depth, ra) : 0;
	state_set(e.rec, REC_USED);
	if (g->tools)
		BA_TOOL_ALLOC(e.p, len);
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, e.p, len, (size_t)1 << (c + MIN_SHIFT));
	return e.p;
}

/* The general free path, for a slot live_slot() accepted and the caller
 * then claimed (state_release()). */
static void
small_free(struct beamalloc_gpa *g, struct tcache *tc, unsigned char *p,
    unsigned char *rec, unsigned shift, size_t len, uintptr_t ra)
{
	bool held = false;

	if (BA_UNLIKELY(g->depth != 0))
		trace_free(g, p, rec, ra);
	if (BA_UNLIKELY(g->junk))
		ba_chk_fill_freed(g, p, (size_t)1 << shift);
	if (g->tools)
		BA_TOOL_FREE(p, (size_t)1 << shift);
	charge(g, tc, -(ptrdiff_t)len);
	if (BA_UNLIKELY(g->quar != NULL)) {
		/* Counted freed now: tc's count of blocks it gave out drops
		 * here, not at the push (slot_push() after the quarantine
		 * adds it back). */
		tc_enter_wait(g, tc);
		__atomic_store_n(&tc->nblk, tc->nblk - 1, __ATOMIC_RELAXED);
		tc_leave_wait(g, tc);
		if (quar_hold(g, tc, &(struct ba_qent){ .p = (uintptr_t)p,
		    .room = (size_t)1 << shift }))
			return;
		held = true;
	}
	slot_push(g, tc, p, rec, shift, held);
}

/* Put a freed slot into tc's magazine.  Without a magazine (out of
 * memory) the slot is dropped: it stays freed and unused, never handed
 * out twice. */
static inline __attribute__((always_inline)) void
slot_push(struct beamalloc_gpa *g, struct tcache *tc, unsigned char *p,
    unsigned char *rec, unsigned shift, bool held)
{
	size_t c = shift - MIN_SHIFT;

	tc_enter_wait(g, tc);
	if (held)			/* counted freed when it was held */
		__atomic_store_n(&tc->nblk, tc->nblk + 1, __ATOMIC_RELAXED);
	if (tc->top[c] != tc->end[c] || flush(g, tc, c))
		*tc->top[c]++ = (struct entry){ p, rec };
	else
		__atomic_store_n(&tc->nblk, tc->nblk - 1, __ATOMIC_RELAXED);
	tc_leave_wait(g, tc);
}

/* ------------------------------------------------------------------------
 * Large blocks: straight from the backing, recorded in an open-addressing
 * table.  A freed block's record stays (for double-free reports) until
 * the table is rebuilt or the address comes back.
 * ---------------------------------------------------------------------- */

static inline struct large *
lg_at(const struct beamalloc_gpa *g, struct large *tab, size_t i)
{
	return (struct large *)(void *)((unsigned char *)tab + i *
	    g->lstride);
}

static inline size_t
lg_hash(uintptr_t addr, size_t cap)
{
	return (size_t)(((uint64_t)(addr >> 4) * HASH_MUL) >>
	    (64 - log2_of(cap)));
}

/* The record for addr (live or freed), or NULL.  Under large_lock. */
static struct large *
lg_find(struct beamalloc_gpa *g, uintptr_t addr)
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
	tab = backing_get(g, len);
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
		backing_put(g, g->ltab, g->lcap * g->lstride);
	g->ltab = tab;
	g->lcap = cap;
	g->lused = g->llive;
	return true;
}

/* A record for addr, reusing a freed one for the same address. */
static struct large *
lg_insert(struct beamalloc_gpa *g, uintptr_t addr)
{
	struct large *l = lg_find(g, addr);

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
static void
report_large(struct beamalloc_gpa *g, beamalloc_report_kind kind,
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
		set_traces(g, &r, l->atid, l->state == LG_FREED ? l->ftid : 0,
		    &l->ra);
	}
	emit(g, &r);
}

/* The live record for a free/resize/remap of p, or NULL after a report
 * (made with the lock dropped: the callback may allocate).  Under
 * large_lock. */
static struct large *
lg_live(struct beamalloc_gpa *g, uintptr_t p, size_t len, size_t align,
    uintptr_t ra)
{
	struct large *l = lg_find(g, p);
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
	report_large(g, kind, p, l != NULL ? &copy.l : NULL, len, align, ra);
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
		settle(g, tc);
}

/* Bytes a large block takes from the backing past its length: room for
 * its canary.  A guarded block has its guard page instead. */
static inline size_t
lg_extra(const struct beamalloc_gpa *g)
{
	return g->canary ? BA_CANARY_LARGE : 0;
}

/* The bytes a large block may check past its length: its canary's; a
 * guarded block's up to the guard page, where its alignment put it. */
static inline size_t
lg_room(const struct beamalloc_gpa *g, size_t len, size_t align, bool guard)
{
	return guard ? (size_t)ba_align_forward(len, align) : len +
	    lg_extra(g);
}

/* One allocation in guard_sample goes against a guard page. */
static inline bool
guard_due(struct beamalloc_gpa *g)
{
	return atomic_fetch_add_explicit(&g->guard_count, 1,
	    memory_order_relaxed) % g->guard_sample == 0;
}

/* guard: mapped against a guard page (NULL, no report, when that cannot
 * be done: the caller places the block as usual). */
static void *
large_alloc(struct beamalloc_gpa *g, size_t len, size_t align, uintptr_t ra,
    bool guard)
{
	size_t extra = guard ? 0 : lg_extra(g);
	uint32_t atid = 0;
	struct large *l;
	void *p;

	settle_mine(g);
	if (!charge_exact(g, (ptrdiff_t)len, 1))
		return ba_fail(ENOMEM);
	if (g->depth != 0 && (g->sample == 0 || atomic_fetch_add_explicit(
	    &g->lsample, 1, memory_order_relaxed) % g->sample == 0))
		atid = ba_trace_id(g->traces, g->depth, ra);
	if (guard) {
		size_t n = 0;
		const uintptr_t *fr = atid != 0 ?
		    ba_depot_get(g->traces, atid, &n) : NULL;

		p = ba_guard_alloc(g, len, align, ra, fr, (unsigned)n);
		if (p == NULL) {
			charge_exact(g, -(ptrdiff_t)len, -1);
			return NULL;
		}
	} else if (len + extra < len) {
		p = NULL;
		errno = ENOMEM;
	} else
		p = ba_raw_alloc(g->backing, len + extra, align, ra);
	if (p == NULL) {
		charge_exact(g, -(ptrdiff_t)len, -1);
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
		charge_exact(g, -(ptrdiff_t)len, -1);
		return ba_fail(ENOMEM);
	}
	if (BA_UNLIKELY(g->canary || g->junk))
		ba_chk_fill_new(g, p, len, lg_room(g, len, align, guard));
	return p;
}

/* The canary of a live large block (its lock held): false, with the
 * record copied out to report, when it was overwritten. */
static bool
lg_canary(struct beamalloc_gpa *g, const struct large *l,
    union large_copy *copy)
{
	if (ba_chk_canary_ok(g, (unsigned char *)l->addr, l->len,
	    lg_room(g, l->len, (size_t)1 << l->lalign, l->guard)))
		return true;
	memcpy(copy, l, g->lstride);
	return false;
}

static void
large_free(struct beamalloc_gpa *g, uintptr_t p, size_t len, size_t align,
    uintptr_t ra)
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
		over = g->canary && !lg_canary(g, l, &copy);
		l->state = LG_FREED;
		if (l->atid != 0)
			l->ftid = ba_trace_id(g->traces, g->depth, ra);
		g->llive--;
		if (!guard)
			atomic_fetch_sub_explicit(&g->backing_bytes,
			    rlen + lg_extra(g), memory_order_relaxed);
	}
	unlock(g, &g->large_lock);
	if (l == NULL)
		return;
	if (BA_UNLIKELY(over))
		report_large(g, BEAMALLOC_REPORT_OVERFLOW, p, &copy.l, len,
		    align, ra);
	if (guard)
		ba_guard_free((void *)p);
	else {
		ba_chk_fill_freed(g, (unsigned char *)p, rlen);
		if (g->quar == NULL || !quar_hold(g, NULL, &(struct ba_qent){
		    .p = p, .room = rlen + lg_extra(g), .len = rlen,
		    .lalign = (uint8_t)log2_of(ralign), .large = true }))
			ba_raw_free(g->backing, (void *)p, rlen + lg_extra(g),
			    ralign, ra);
	}
	settle_mine(g);
	charge_exact(g, -(ptrdiff_t)rlen, -1);
}

/* resize (move false) or remap (move true) of a large block.  All under
 * the lock: nobody may see the block half-changed. */
static void *
large_change(struct beamalloc_gpa *g, uintptr_t p, size_t len, size_t align,
    size_t new_len, bool move, uintptr_t ra)
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
	over = g->canary && !lg_canary(g, l, &bad);
	/* A guarded block stays as it was mapped: the caller moves it. */
	if (l->guard || new_len + extra < new_len)
		goto out;
	len = l->len;
	align = (size_t)1 << l->lalign;
	/* A moved block needs a new record: make room first. */
	if (move && (g->lused + 1) * 2 > g->lcap) {
		if (!lg_grow(g))
			goto out;
		l = lg_find(g, p);
	}
	if (delta > 0 && !charge_exact(g, delta, 0))
		goto out;
	q = move ? ba_raw_remap(g->backing, (void *)p, len + extra, align,
	    new_len + extra, ra) : ba_raw_resize(g->backing, (void *)p,
	    len + extra, align, new_len + extra, ra) ? (void *)p : NULL;
	if (q == NULL) {
		if (delta > 0)
			charge_exact(g, -delta, 0);
		goto out;
	}
	if (delta < 0)
		charge_exact(g, delta, 0);
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
		report_large(g, BEAMALLOC_REPORT_OVERFLOW, p, &bad.l, len,
		    align, ra);
	return q;
}

/* ------------------------------------------------------------------------
 * Quarantine: freed blocks (junk-filled, already counted freed) wait
 * here, oldest first, until more than its limit of bytes wait; each is
 * checked for writes as it leaves.
 * ---------------------------------------------------------------------- */

/* Out of line: small_free()'s push stays the one inlined. */
static __attribute__((noinline)) void
slot_push_held(struct beamalloc_gpa *g, struct tcache *tc, unsigned char *p,
    unsigned char *rec, unsigned shift)
{
	slot_push(g, tc, p, rec, shift, true);
}

/* A block leaves quarantine: checked, then given back to tc's magazine
 * (a small slot; tc NULL: the calling thread's) or to the backing. */
static void
quar_release(struct beamalloc_gpa *g, struct tcache *tc,
    const struct ba_qent *e)
{
	unsigned char *p = (unsigned char *)e->p, *rec;
	struct where w;

	if (e->large) {
		union large_copy copy;
		struct large *l;
		bool found;

		if (!ba_chk_freed_ok(g, p, e->len)) {
			lock(g, &g->large_lock);
			l = lg_find(g, e->p);
			found = l != NULL;
			if (found)
				memcpy(&copy, l, g->lstride);
			unlock(g, &g->large_lock);
			report_large(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE, e->p,
			    found ? &copy.l : NULL, 0, 0, 0);
		}
		ba_raw_free(g->backing, p, e->room, (size_t)1 << e->lalign, 0);
		return;
	}
	if (!slab_find(g, e->p, &w))
		return;			/* never: the slab holds it */
	if (!ba_chk_freed_ok(g, p, e->room)) {
		report_slot(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE, e->p, &w, 0,
		    0, 0);
		/* Reported once: not again when the slot is handed out. */
		ba_chk_fill_freed(g, p, e->room);
		if (g->tools)
			BA_TOOL_NOACCESS(p, e->room);
	}
	rec = w.recs + (((e->p - w.base) >> w.shift) << g->rec_shift);
	if (tc == NULL && (tc = tcache_of(g)) == NULL &&
	    (tc = tcache_slow(g)) == NULL) {
		/* As in gpa_free(): no cache of its own, the shared one. */
		pthread_mutex_lock(&g->shared_lock);
		if (g->tc0 == NULL)
			g->tc0 = tcache_new(g);
		if (g->tc0 != NULL)
			slot_push_held(g, g->tc0, p, rec, w.shift);
		pthread_mutex_unlock(&g->shared_lock);
		return;
	}
	slot_push_held(g, tc, p, rec, w.shift);
}

/* Hold a freed block, letting the oldest go past the limit; false when
 * there is no room to hold it (the caller releases it now).  The
 * entries let go go to tc (NULL: the caller's cache). */
static bool
quar_hold(struct beamalloc_gpa *g, struct tcache *tc, const struct ba_qent *e)
{
	struct ba_qent out;

	if (!ba_quar_push(g->quar, e))
		return false;
	while (ba_quar_pop(g->quar, ba_quar_limit(g->quar), &out))
		quar_release(g, tc, &out);
	return true;
}

/* Let every held block go (trim, leak check, destroy), checking each. */
static void
quar_drain(struct beamalloc_gpa *g)
{
	struct ba_qent out;

	while (ba_quar_pop(g->quar, 0, &out))
		quar_release(g, NULL, &out);
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

	if (BA_UNLIKELY(g->guard_sample != 0) && !g->guard_fast &&
	    guard_due(g) &&
	    (p = large_alloc(g, len, align, ra, true)) != NULL)
		return p;
	if (c >= NCLASS)
		return large_alloc(g, len, align, ra, false);
	if ((tc = tcache_of(g)) != NULL || (tc = tcache_slow(g)) != NULL)
		return small_alloc(g, tc, c, len, align, ra);
	/* More threads than cache slots: they share one, locked. */
	pthread_mutex_lock(&g->shared_lock);
	if (g->tc0 == NULL)
		g->tc0 = tcache_new(g);
	p = g->tc0 != NULL ? small_alloc(g, g->tc0, c, len, align, ra) :
	    ba_fail(ENOMEM);
	pthread_mutex_unlock(&g->shared_lock);
	return p;
}

static void
gpa_free(struct beamalloc_gpa *g, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	struct where w;
	unsigned char *rec;
	struct tcache *tc;

	if (!slab_find(g, (uintptr_t)mem, &w)) {
		large_free(g, (uintptr_t)mem, len, align, ra);
		return;
	}
	/* The cache first: a new thread's registers it, and makes the
	 * first thread's fast frees atomic, before this one races them. */
	if ((tc = tcache_of(g)) == NULL)
		tc = tcache_slow(g);
	if ((rec = live_slot(g, (uintptr_t)mem, &w, len, align, ra)) == NULL)
		return;
	if (BA_UNLIKELY(g->canary))
		slot_canary(g, mem, &w, len, align, ra);
	/* Another thread's free of the same block got in between. */
	if (BA_UNLIKELY(!state_release(rec))) {
		report_slot(g, BEAMALLOC_REPORT_DOUBLE_FREE, (uintptr_t)mem,
		    &w, len, align, ra);
		return;
	}
	if (tc != NULL) {
		small_free(g, tc, mem, rec, w.shift, len, ra);
		return;
	}
	pthread_mutex_lock(&g->shared_lock);
	if (g->tc0 == NULL)
		g->tc0 = tcache_new(g);
	/* Without a cache the slot is dropped, as in small_free(). */
	if (g->tc0 != NULL)
		small_free(g, g->tc0, mem, rec, w.shift, len, ra);
	pthread_mutex_unlock(&g->shared_lock);
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

	m->epoch = epoch;
	m->base = w.base;
	m->mask = ((uintptr_t)1 << w.shift) - 1;
	m->mul = (uint64_t)1 << (32 + g->rec_shift - w.shift);
	m->recs = w.recs;
	m->top = &tc->top[w.shift - MIN_SHIFT];
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
	    false, true);						\
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

/* guard_sample alone: the fast paths, and a countdown that sends one
 * allocation in N against a guard page.  The countdown is one relaxed
 * load and store, not an atomic decrement: threads racing on it only
 * make the sampling less regular.  A guarded block is in no slab: its
 * free misses the memo and goes to the general path. */
static __attribute__((noinline)) void *
guard_now(struct beamalloc_gpa *g, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	atomic_store_explicit(&g->guard_left, g->guard_sample,
	    memory_order_relaxed);
	if ((p = large_alloc(g, len, align, ra, true)) != NULL)
		return p;
	return ba_gpa_alloc(g, len, align, ra);
}

#define GUARD_ALLOC(name, ts, safety)					\
static void *								\
name##_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)	\
{									\
	struct beamalloc_gpa *g = ctx;					\
	unsigned n = atomic_load_explicit(&g->guard_left,		\
	    memory_order_relaxed);					\
									\
	if (BA_UNLIKELY(n <= 1))					\
		return guard_now(g, len, align, ra);			\
	atomic_store_explicit(&g->guard_left, n - 1,			\
	    memory_order_relaxed);					\
	return ba_gpa_fast_alloc(ctx, len, align, ra, ts, safety,	\
	    false);							\
}

GUARD_ALLOC(guard_ts, true, false)
GUARD_ALLOC(guard_ts_safe, true, true)
GUARD_ALLOC(guard_st, false, false)
GUARD_ALLOC(guard_st_safe, false, true)

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
	if (class_of(new_len + g->canary, align) + MIN_SHIFT != w->shift)
		return false;
	if ((tc = tcache_of(g)) == NULL)
		tc = tcache_slow(g);
	/* Threads without a cache of their own count exactly. */
	ok = tc != NULL ? charge(g, tc, (ptrdiff_t)new_len - (ptrdiff_t)len) :
	    charge_exact(g, (ptrdiff_t)new_len - (ptrdiff_t)len, 0);
	if (!ok) {
		errno = ENOMEM;
		return false;
	}
	if (g->safety)
		((struct rec *)(void *)rec)->len = (uint16_t)new_len;
	if (g->tools)
		BA_TOOL_RESIZE(mem, len, new_len);
	ba_chk_canary_set(g, mem, new_len, (size_t)1 << w->shift);
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

	if (slab_find(g, (uintptr_t)mem, &w))
		return small_resize(g, mem, &w, len, align, new_len, ra) ?
		    mem : NULL;
	return large_change(g, (uintptr_t)mem, len, align, new_len, move,
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

	emit(g, &r);
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
		gpa_free(g, mem, len, align, ra);
		return;
	}
	prev = st_enter(g, &me, mem, len, align, ra);
	gpa_free(g, mem, len, align, ra);
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
};

/* The fast ones with guarded sampling, in the same order. */
static const beamalloc_vtable guard_vtables[GPA_NVT] = {
	[GPA_VT_ST] = { guard_st_alloc, gpa_resize, gpa_remap, fast_st_free },
	[GPA_VT_ST_SAFE] = { guard_st_safe_alloc, gpa_resize, gpa_remap,
	    fast_st_safe_free },
	[GPA_VT_TS] = { guard_ts_alloc, gpa_resize, gpa_remap, fast_ts_free },
	[GPA_VT_TS_SAFE] = { guard_ts_safe_alloc, gpa_resize, gpa_remap,
	    fast_ts_safe_free },
};

/* And with canary or junk. */
static const beamalloc_vtable check_vtables[GPA_NVT] = {
	[GPA_VT_ST] = { chk_st_alloc, gpa_resize, gpa_remap, chk_st_free },
	[GPA_VT_ST_SAFE] = { chk_st_safe_alloc, gpa_resize, gpa_remap,
	    chk_st_safe_free },
	[GPA_VT_TS] = { chk_ts_alloc, gpa_resize, gpa_remap, chk_ts_free },
	[GPA_VT_TS_SAFE] = { chk_ts_safe_alloc, gpa_resize, gpa_remap,
	    chk_ts_safe_free },
};

bool
ba_gpa_vtable_is(const beamalloc_vtable *v)
{
	for (size_t i = 0; i < sizeof(ba_gpa_vtables) / sizeof(ba_gpa_vtables[0]);
	    i++)
		if (v == &ba_gpa_vtables[i])
			return true;
	/* One compare, not a loop: every other allocator passes here. */
	return (uintptr_t)v - (uintptr_t)&guard_vtables[GPA_VT_GENERAL + 1] <
	    sizeof(guard_vtables) - sizeof(guard_vtables[0]) ||
	    (uintptr_t)v - (uintptr_t)&check_vtables[GPA_VT_GENERAL + 1] <
	    sizeof(check_vtables) - sizeof(check_vtables[0]);
}

/* A GPA with canary has the general vtable or a check one (never the
 * others): two compares, as every wide call over any backing asks. */
bool
ba_gpa_has_canary(const beamalloc_allocator *a)
{
	const beamalloc_vtable *v = a->vtable;

	return (v == &ba_gpa_vtables[GPA_VT_GENERAL] ||
	    (uintptr_t)v - (uintptr_t)&check_vtables[GPA_VT_GENERAL + 1] <
	    sizeof(check_vtables) - sizeof(check_vtables[0])) &&
	    ((const struct beamalloc_gpa *)a->ctx)->canary;
}

size_t
ba_gpa_native_align(const void *ctx)
{
	const struct beamalloc_gpa *g = ctx;

	/* Large blocks take their alignment from the backing. */
	return beamalloc_native_align(g->backing);
}

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
		.addr = (const void *)(s->base + (i << s->shift)),
		.size = (size_t)1 << s->shift,
	};

	describe_slot(g, &r, s->recs, s->ftids, s->shift, i, &site);
	emit(g, &r);
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

/* Live small blocks: copied into sn, or with sn NULL (destroy) only
 * counted and shown to memory checkers as freed.  The caller holds
 * g->scanning up (no slab is released while the list is walked: trims
 * skip) until the copies are reported. */
static size_t
leaks_small(struct beamalloc_gpa *g, struct leak_snap *sn)
{
	size_t n = 0;
	bool copy = sn != NULL;

	for (struct slab *s = atomic_load_explicit(&g->slabs,
	    memory_order_acquire); s != NULL; s = s->next) {
		for (uint32_t i = 0; i < s->nslots; i++) {
			unsigned char *rec = s->recs +
			    ((size_t)i << g->rec_shift);
			uintptr_t p = s->base + ((size_t)i << s->shift);

			if (state_get(rec) != REC_USED)
				continue;
			n++;
			if (sn == NULL) {
				if (g->tools)
					BA_TOOL_FREE((void *)p,
					    (size_t)1 << s->shift);
				continue;
			}
			/* Bit 0: its canary was overwritten. */
			if (copy && (copy = snap_room(g, sn)))
				sn->small[sn->ns++] = p | (g->canary &&
				    !ba_chk_canary_ok(g, (unsigned char *)p,
				    ((const struct rec *)(const void *)rec)->len,
				    (size_t)1 << s->shift));
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
			if (g->canary && !lg_canary(g, l, &copy))
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
		report_large(g, BEAMALLOC_REPORT_LEAK, copy.l.addr, &copy.l, 0,
		    0, 0);
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
			report_slot(g, BEAMALLOC_REPORT_OVERFLOW, p, &w, 0, 0,
			    0);
		leak_slot(g, slab_of(w.recs), (p - w.base) >> w.shift);
	}
	for (size_t k = 0; k < sn->nl; k++) {
		memcpy(&copy, sn->large + k * g->lstride, g->lstride);
		if (copy.l.state == LG_OVERFLOWED)
			report_large(g, BEAMALLOC_REPORT_OVERFLOW, copy.l.addr,
			    &copy.l, 0, 0, 0);
		report_large(g, BEAMALLOC_REPORT_LEAK, copy.l.addr, &copy.l, 0,
		    0, 0);
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

static int
membarrier_cmd(void)
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

/* A second thread uses a GPA with safety: from now on every free claims
 * its slot atomically.  Store, barrier, load, as in steal_idle(): after the
 * barrier, a fast free that read shared clear still shows busy, and is
 * waited for; any later one reads it set.  Without membarrier(2) a GPA
 * is shared from the start (beamalloc_gpa_create()).  No lock is held
 * while waiting: a busy general path may need any of them. */
static void
go_shared(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (atomic_load_explicit(&g->shared, memory_order_acquire))
		return;
	atomic_store_explicit(&g->shared, 1, memory_order_relaxed);
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
static void
steal_idle(struct beamalloc_gpa *g, struct tcache *mine)
{
	struct tcache *first, *tc;
	bool any = false;

	if (!g->thread_safe || g->mb_cmd == 0)
		return;
	pthread_mutex_lock(&g->steal_lock);
	pthread_mutex_lock(&g->lock);
	first = g->tcaches;
	pthread_mutex_unlock(&g->lock);
	for (tc = first; tc != NULL; tc = tc->next)
		if (tc != mine && tc != g->tc0) {
			__atomic_store_n(&tc->steal, 1, __ATOMIC_RELAXED);
			any = true;
		}
	/* Only the caller's cache: nothing to steal, no barrier to pay (a
	 * GPA used by one thread, as a leak-checked NIF call's is). */
	if (!any || !barrier_all(g))
		first = NULL;		/* no barrier: touch nothing */
	any = false;
	for (tc = first; tc != NULL; tc = tc->next) {
		if (tc == mine || tc == g->tc0 ||
		    __atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) != 0)
			continue;
		for (size_t c = 0; c < NCLASS; c++) {
			__atomic_store_n(&tc->bot[c],
			    (struct entry *)UINTPTR_MAX, __ATOMIC_RELAXED);
			__atomic_store_n(&tc->end[c], NULL, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&tc->stolen, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&tc->steal, 2, __ATOMIC_RELAXED); /* round 2 */
		any = true;
	}
	if (any && barrier_all(g))
		for (tc = first; tc != NULL; tc = tc->next)
			if (tc != mine && tc != g->tc0 &&
			    __atomic_load_n(&tc->steal, __ATOMIC_RELAXED) == 2 &&
			    __atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) == 0)
				for (size_t c = 0; c < NCLASS; c++)
					tc_give(g, tc, c);
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
		quar_drain(g);
	tc = tcache_of(g);
	if (tc != NULL) {
		tc_enter_wait(g, tc);
		for (size_t c = 0; c < NCLASS; c++)
			tc_drain(g, tc, c);
		tc_leave_wait(g, tc);
	}
	steal_idle(g, tc);
	if (g->thread_safe) {
		pthread_mutex_lock(&g->shared_lock);
		if (g->tc0 != NULL)
			for (size_t c = 0; c < NCLASS; c++)
				tc_drain(g, g->tc0, c);
		pthread_mutex_unlock(&g->shared_lock);
	}
	for (size_t c = 0; c < NCLASS; c++) {
		struct depot *d = &g->depot[c];

		lock(g, &d->lock);
		bytes += depot_trim(g, c, 0);
		d->trim_at = trim_next(d, c);
		unlock(g, &d->lock);
	}
	return bytes;
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
	size_t n;

	if (g == NULL)
		return 0;
	gpa_trim(g);
	lock(g, &g->lock);
	g->scanning++;
	unlock(g, &g->lock);
	n = leaks_small(g, &sn);
	n += leaks_large(g, &sn);
	leaks_report(g, &sn);
	lock(g, &g->lock);
	g->scanning--;
	unlock(g, &g->lock);
	return n;
}

/* ------------------------------------------------------------------------
 * Construction, stats, destruction
 * ---------------------------------------------------------------------- */

/* Fields an older caller's smaller struct does not have keep defaults. */
#define CFG_HAS(cfg, f) ((cfg)->struct_size >= \
	offsetof(beamalloc_gpa_config, f) + sizeof((cfg)->f))

void
beamalloc_gpa_config_init(beamalloc_gpa_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->struct_size = sizeof(*cfg);
	cfg->stack_trace_depth = 0;
	cfg->safety = true;
	cfg->thread_safe = true;
	cfg->abort_on_error = false;
	cfg->memory_limit = 0;
	cfg->report = NULL;
	cfg->report_user = NULL;
	/* A node runs for months and counts what NIFs hold; outside the VM
	 * a program trims when it chooses, and no thread is started. */
	cfg->decay_ms = beamalloc_in_vm() ? DECAY_MS_VM : 0;
	ba_options_apply(cfg);
}

static void
config_read(beamalloc_gpa_config *out, const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config_init(out);
	if (cfg == NULL)
		return;
#define TAKE(f) do { if (CFG_HAS(cfg, f)) out->f = cfg->f; } while (0)
	TAKE(stack_trace_depth);
	TAKE(safety);
	TAKE(thread_safe);
	TAKE(abort_on_error);
	TAKE(memory_limit);
	TAKE(report);
	TAKE(report_user);
	TAKE(trace_sample);
	TAKE(canary);
	TAKE(junk);
	TAKE(quarantine);
	TAKE(guard_sample);
	TAKE(decay_ms);
#undef TAKE
	if (out->stack_trace_depth > BEAMALLOC_GPA_MAX_TRACE)
		out->stack_trace_depth = BEAMALLOC_GPA_MAX_TRACE;
}

static void
mutex_init(pthread_mutex_t *m)
{
	pthread_mutex_init(m, NULL);
}

beamalloc_gpa *
beamalloc_gpa_create(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config c;
	struct beamalloc_gpa *g;
	struct stab *t;

	if (backing.vtable == NULL)
		return ba_fail(EINVAL);
	config_read(&c, cfg);
	g = ba_raw_alloc(backing, sizeof(*g), BEAMALLOC_MIN_ALIGN,
	    BA_RET_ADDR());
	if (g == NULL)
		return ba_fail(ENOMEM);
	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < NTHREADS; i++)
		atomic_init(&g->tcs[i], &no_tc);
	g->backing = backing;
	g->thread_safe = c.thread_safe;
	/* A canary needs the requested length, which safety records. */
	g->safety = c.safety || c.canary;
	g->st_check = g->safety && !c.thread_safe;
	g->abort_on_error = c.abort_on_error;
	g->depth = c.stack_trace_depth;
	g->sample = g->depth != 0 && c.trace_sample > 1 ? c.trace_sample : 0;
	g->limit = c.memory_limit;
	g->batched = c.memory_limit == 0;
	g->tools = tools_active();
	g->canary = c.canary;
	/* Quarantine checks its blocks' junk as they leave. */
	g->junk = c.junk || c.quarantine != 0;
	g->guard_sample = c.guard_sample;
	g->vtable = &ba_gpa_vtables[GPA_VT_GENERAL];
	/* The fast paths unless a check needs the general one: traces of
	 * every block do, sampled ones only once in N; guarded sampling
	 * alone keeps them (its countdown in front). */
	if (g->batched && !g->tools && !g->canary && !g->junk &&
	    (g->depth == 0 || g->sample != 0)) {
		if (g->depth != 0) {
			if (g->guard_sample == 0)
				g->vtable = &ba_gpa_vtables[GPA_VT_SAMPLED +
				    2 * g->thread_safe + g->safety];
		} else {
			g->guard_fast = g->guard_sample != 0;
			atomic_init(&g->guard_left, 1);
			g->vtable = &(g->guard_fast ? guard_vtables :
			    ba_gpa_vtables)[GPA_VT_ST + 2 * g->thread_safe +
			    g->safety];
		}
	} else if (g->batched && !g->tools && c.quarantine == 0 &&
	    /* Canary or junk alone: the fast paths with their checks. */
	    g->depth == 0 && g->guard_sample == 0)
		g->vtable = &check_vtables[GPA_VT_ST + 2 * g->thread_safe +
		    g->safety];
	g->report = c.report;
	g->report_user = c.report_user;
	g->rec_shift = g->safety || g->depth != 0 ?
	    log2_of(sizeof(struct rec)) : 0;
	g->lstride = sizeof(struct large);
	atomic_store(&g->backing_bytes, sizeof(*g));
	for (size_t i = 0; i < NCLASS; i++) {
		size_t cap = MAG_BYTES >> (i + MIN_SHIFT);

		mutex_init(&g->depot[i].lock);
		g->depot[i].mag_cap = (uint32_t)(cap > MAG_MAX ? MAG_MAX :
		    cap < 8 ? 8 : cap);
	}
	mutex_init(&g->lock);
	mutex_init(&g->shared_lock);
	mutex_init(&g->steal_lock);
	mutex_init(&g->large_lock);
	if (g->thread_safe)
		g->mb_cmd = membarrier_cmd();
	/* Nothing to make other threads' fast frees wait with. */
	if (g->thread_safe && g->mb_cmd == 0)
		atomic_store(&g->shared, 1);
	t = stab_new(g, 64);
	if (t == NULL || (c.quarantine != 0 && (g->quar =
	    ba_quar_new(backing, c.quarantine)) == NULL) ||
	    (!g->thread_safe && (g->tc0 = tcache_new(g)) == NULL) ||
	    (g->depth != 0 && (g->traces = ba_depot_new(backing,
	    &g->backing_bytes)) == NULL)) {
		beamalloc_gpa_destroy(g);
		return ba_fail(ENOMEM);
	}
	atomic_store(&g->stab, t);
	if (g->thread_safe)
		reg_add(g);
	/* Last: the decay thread may trim g from now on. */
	if (g->thread_safe && c.decay_ms != 0)
		(void)ba_gpa_decay_register(g, c.decay_ms);
	return g;
}

beamalloc_allocator
beamalloc_gpa_allocator(beamalloc_gpa *gpa)
{
	beamalloc_allocator a = { gpa, gpa->vtable };

	return a;
}

void
beamalloc_gpa_get_stats(beamalloc_gpa *g, beamalloc_gpa_stats *st)
{
	ptrdiff_t live, blocks, hi = 0;

	lock(g, &g->lock);
	live = atomic_load_explicit(&g->live, memory_order_relaxed);
	blocks = atomic_load_explicit(&g->blocks, memory_order_relaxed);
	for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
		blocks += tc_blocks(tc);
	if (g->batched) {
		ptrdiff_t credit = 0;

		for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next) {
			ptrdiff_t h = __atomic_load_n(&tc->hi,
			    __ATOMIC_RELAXED);

			credit += h - __atomic_load_n(&tc->room,
			    __ATOMIC_RELAXED);
			hi += h;
		}
		hi += live;
		live += credit;
	}
	st->live_bytes = live > 0 ? (size_t)live : 0;
	st->live_blocks = blocks > 0 ? (size_t)blocks : 0;
	st->peak_bytes = atomic_load_explicit(&g->peak, memory_order_relaxed);
	if (hi > 0 && (size_t)hi > st->peak_bytes)
		st->peak_bytes = (size_t)hi;
	if (st->live_bytes > st->peak_bytes)
		st->peak_bytes = st->live_bytes;
	st->backing_bytes = atomic_load_explicit(&g->backing_bytes,
	    memory_order_relaxed);
	unlock(g, &g->lock);
}

_Static_assert(NCLASS == BEAMALLOC_GPA_NCLASS,
    "BEAMALLOC_GPA_NCLASS is the number of small classes");

/* Slab s's live slots and (safety on) their requested bytes, from its
 * records; with safety off a slot counts whole. */
static void
class_count(const struct beamalloc_gpa *g, const struct slab *s,
    beamalloc_gpa_class_stats *k)
{
	size_t blocks = 0, bytes = 0;

	if (g->safety) {
		for (uint32_t i = 0; i < s->nslots; i++) {
			const struct rec *sr = (const void *)(s->recs +
			    ((size_t)i << g->rec_shift));

			if (state_get(&sr->state) == REC_USED) {
				blocks++;
				bytes += __atomic_load_n(&sr->len,
				    __ATOMIC_RELAXED);
			}
		}
	} else {
		for (uint32_t i = 0; i < s->nslots; i++)
			blocks += state_get(s->recs + ((size_t)i <<
			    g->rec_shift)) == REC_USED;
		bytes = blocks << s->shift;
	}
	k->live_blocks += blocks;
	k->live_bytes += bytes;
	k->slabs++;
}

/* Per class from the slabs' records, as a leak check sees them (the
 * slab list is walked the same way, g->scanning up so that no trim
 * releases a slab meanwhile); large blocks from their table. */
size_t
beamalloc_gpa_get_class_stats(beamalloc_gpa *g, beamalloc_gpa_class_stats *cls,
    size_t n, beamalloc_gpa_class_stats *large)
{
	beamalloc_gpa_class_stats k[NCLASS], lg = { 0 };

	memset(k, 0, sizeof(k));
	for (size_t c = 0; c < NCLASS; c++)
		k[c].size = (size_t)1 << (c + MIN_SHIFT);
	if (g != NULL) {
		lock(g, &g->lock);
		g->scanning++;
		unlock(g, &g->lock);
		for (struct slab *s = atomic_load_explicit(&g->slabs,
		    memory_order_acquire); s != NULL; s = s->next)
			class_count(g, s, &k[s->shift - MIN_SHIFT]);
		lock(g, &g->lock);
		g->scanning--;
		unlock(g, &g->lock);
		lock(g, &g->large_lock);
		for (size_t i = 0; i < g->lcap && lg.live_blocks < g->llive;
		    i++) {
			const struct large *l = lg_at(g, g->ltab, i);

			if (l->state == LG_LIVE) {
				lg.live_blocks++;
				lg.live_bytes += l->len;
			}
		}
		unlock(g, &g->large_lock);
	}
	memcpy(cls, k, (n < NCLASS ? n : NCLASS) * sizeof(k[0]));
	if (large != NULL)
		*large = lg;
	return NCLASS;
}

/* The peak restarts from what is live.  The high-water marks that the
 * thread caches keep between settlements go too: the caller's own, or
 * with thread safety off the one cache's (its one user is calling). */
size_t
beamalloc_gpa_reset_peak(beamalloc_gpa *g)
{
	beamalloc_gpa_stats before, now;
	struct tcache *tc;

	if (g == NULL)
		return 0;
	beamalloc_gpa_get_stats(g, &before);
	if (g->batched) {
		tc = g->thread_safe ? tcache_of(g) : g->tc0;
		if (tc != NULL)
			settle(g, tc);
	}
	beamalloc_gpa_get_stats(g, &now);
	atomic_store_explicit(&g->peak, now.live_bytes, memory_order_relaxed);
	return before.peak_bytes;
}

size_t
beamalloc_gpa_destroy(beamalloc_gpa *g)
{
	size_t n;

	if (g == NULL)
		return 0;
	if (g->decay_ms != 0 && !g->global)
		ba_gpa_decay_unregister(g);
	n = beamalloc_gpa_detect_leaks(g);
	if (g->global)
		return n;		/* the global instance lives on */
	if (g->thread_safe)
		reg_remove(g);
	leaks_small(g, NULL);
	for (struct slab *s = atomic_load(&g->slabs), *next; s != NULL;
	    s = next) {
		next = s->next;
		backing_put(g, s->meta, s->meta_len);
	}
	while (g->regions != NULL)
		region_free(g, g->regions);
	for (size_t c = 0; c < NCLASS; c++) {
		struct mag *lists[2] = { g->depot[c].full, g->depot[c].empty };

		for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
			for (struct mag **m = (struct mag *[]){ tc->loaded[c],
			    tc->prev[c] }, **e = m + 2; m < e; m++)
				if (*m != &no_mag)
					backing_put(g, *m, mag_len((*m)->cap));
		for (size_t i = 0; i < 2; i++)
			for (struct mag *m = lists[i], *next; m != NULL;
			    m = next) {
				next = m->next;
				backing_put(g, m, mag_len(m->cap));
			}
	}
	for (size_t i = 0; i < g->lcap; i++) {
		struct large *l = lg_at(g, g->ltab, i);

		if (l->state == LG_LIVE && !l->guard)
			ba_raw_free(g->backing, (void *)l->addr, l->len +
			    lg_extra(g), (size_t)1 << l->lalign, 0);
	}
	if (g->guard_sample != 0)
		ba_guard_release(g);
	ba_quar_delete(g->quar);
	if (g->ltab != NULL)
		ba_raw_free(g->backing, g->ltab, g->lcap * g->lstride,
		    BEAMALLOC_MIN_ALIGN, 0);
	for (size_t i = 0; i < g->nbb; i++) {
		BA_ASAN_UNPOISON(g->bb[i].ptr, g->bb[i].len);
		ba_raw_free(g->backing, g->bb[i].ptr, g->bb[i].len,
		    BEAMALLOC_MIN_ALIGN, 0);
	}
	if (g->bb != NULL)
		ba_raw_free(g->backing, g->bb, g->bbcap * sizeof(g->bb[0]),
		    BEAMALLOC_MIN_ALIGN, 0);
	for (size_t i = 0; i < NCLASS; i++)
		pthread_mutex_destroy(&g->depot[i].lock);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->shared_lock);
	pthread_mutex_destroy(&g->steal_lock);
	pthread_mutex_destroy(&g->large_lock);
	ba_depot_destroy(g->traces);
	ba_raw_free(g->backing, g, sizeof(*g), BEAMALLOC_MIN_ALIGN, 0);
	return n;
}

/* ------------------------------------------------------------------------
 * The global instance: over beamalloc_wide(), thread-safe, safety on,
 * as BEAMALLOC_GPA_OPTIONS says, and BEAMALLOC_GPA_TRACES (0.1's switch)
 * frames of trace when that is set.  Created on first use, never
 * destroyed (the library may be dlclosed: nothing may point into it).
 * ---------------------------------------------------------------------- */

static beamalloc_gpa *global_gpa;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	beamalloc_gpa_config cfg;
	const char *env = getenv("BEAMALLOC_GPA_TRACES");

	beamalloc_gpa_config_init(&cfg);
	if (env != NULL)
		cfg.stack_trace_depth = (unsigned)strtoul(env, NULL, 10);
	global_gpa = beamalloc_gpa_create(beamalloc_wide(), &cfg);
	if (global_gpa != NULL)
		global_gpa->global = true;
}

beamalloc_gpa *
beamalloc_gpa_global(void)
{
	pthread_once(&global_once, global_init);
	return global_gpa;
}

beamalloc_allocator
beamalloc_general_purpose(void)
{
	return beamalloc_gpa_allocator(beamalloc_gpa_global());
}
