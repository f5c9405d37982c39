/*
 * trace.c - the GPA's stack traces: a frame-pointer walk that stays
 * within the thread's stack, and a stack depot that keeps each distinct
 * trace once, so that a block's record holds a 32-bit id.
 *
 * glibc's backtrace() unwinds with DWARF CFI (libgcc's _Unwind_Find_FDE):
 * about 3 us per call from inside the library.  The walk follows the
 * chain of saved frame pointers instead, a few loads per frame.  It is
 * exact for code built with -fno-omit-frame-pointer (the library is);
 * through code built without it the chain may break or point anywhere,
 * so every frame pointer must lie in the calling thread's stack, above
 * the previous one, aligned: the walk stops at the first that does not,
 * and never reads outside the stack.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gpa.h"

/* ------------------------------------------------------------------------
 * The depot's data
 * ---------------------------------------------------------------------- */

#define DEPOT_CHUNK_SHIFT 16		/* traces in blocks of 64 KiB */
#define DEPOT_CHUNK ((size_t)1 << DEPOT_CHUNK_SHIFT)
#define DEPOT_WORD_BITS (DEPOT_CHUNK_SHIFT - 3)
#define DEPOT_NCHUNK 1024		/* 64 MiB of traces at most */
#define DEPOT_MAX_SKIP 24		/* library frames before the call site */

/* A stored trace: id = (chunk << DEPOT_WORD_BITS | word) + 1. */
struct dtrace {
	uint32_t hash;
	uint32_t len;
	uintptr_t f[];
};

/* Open addressing; a slot is hash << 32 | id (0: empty), so a probe
 * compares hashes without touching the traces. */
struct dtab {
	struct dtab *older;		/* kept until destroy: readers */
	size_t mask;
	_Atomic uint64_t e[];
};

struct ba_depot {
	pthread_mutex_t lock;		/* inserts only */
	_Atomic(struct dtab *) tab;
	size_t n;			/* traces stored */
	size_t nchunk, off;		/* the chunk being filled */
	beamalloc_allocator backing;
	_Atomic size_t *bytes;		/* the GPA's backing_bytes */
	unsigned char *_Atomic chunk[DEPOT_NCHUNK];
};

/* ------------------------------------------------------------------------
 * Capture
 * ---------------------------------------------------------------------- */

/* The calling thread's stack, found once per thread (default TLS model:
 * the library may be dlopened).  hi 1: unknown, no walk. */
static __thread uintptr_t stack_lo, stack_hi;

static bool
stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
	if (BA_UNLIKELY(stack_hi == 0)) {
		pthread_attr_t at;
		void *addr;
		size_t size;

		stack_hi = 1;
		if (pthread_getattr_np(pthread_self(), &at) == 0) {
			if (pthread_attr_getstack(&at, &addr, &size) == 0) {
				stack_lo = (uintptr_t)addr;
				stack_hi = (uintptr_t)addr + size;
			}
			pthread_attr_destroy(&at);
		}
	}
	*lo = stack_lo;
	*hi = stack_hi;
	return stack_hi > 1;
}

/* Frames from the call site ra outwards (every frame when ra is 0): the
 * library's own frames, which keep their frame pointers, lead to it.  A
 * chain that breaks before ra gives ra alone.  Not instrumented by ASan:
 * a frame pointer of code without them may point at a redzone. */
__attribute__((noinline, no_sanitize_address)) unsigned
ba_trace_capture(uintptr_t *out, unsigned depth, uintptr_t ra)
{
	unsigned n = 0;
#if defined(__x86_64__) || defined(__aarch64__)
	/* Both keep {caller's frame pointer, return address} at the frame
	 * pointer. */
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0), lo, hi;
	bool found = ra == 0;

	if (!stack_bounds(&lo, &hi) || fp < lo || fp >= hi)
		goto short_trace;
	for (unsigned skip = 0; n < depth;) {
		const uintptr_t *f = (const uintptr_t *)fp;
		uintptr_t next, ret;

		if ((fp & (sizeof(uintptr_t) - 1)) != 0 ||
		    fp > hi - 2 * sizeof(uintptr_t))
			break;
		next = f[0];
		ret = f[1];
		if (ret == 0)
			break;
		if (!found && ret == ra)
			found = true;
		if (found)
			out[n++] = ret;
		else if (++skip > DEPOT_MAX_SKIP)
			break;
		if (next <= fp)
			break;
		fp = next;
	}
	if (found)
		return n;
short_trace:
#endif
	n = 0;
	if (ra != 0 && depth != 0)
		out[n++] = ra;
	return n;
}

/* ------------------------------------------------------------------------
 * The depot
 * ---------------------------------------------------------------------- */

static void *
depot_get_mem(struct ba_depot *d, size_t len)
{
	void *p = ba_raw_alloc(d->backing, len, BEAMALLOC_MIN_ALIGN, 0);

	if (p != NULL)
		atomic_fetch_add_explicit(d->bytes, len, memory_order_relaxed);
	return p;
}

static void
depot_put_mem(struct ba_depot *d, void *p, size_t len)
{
	ba_raw_free(d->backing, p, len, BEAMALLOC_MIN_ALIGN, 0);
	atomic_fetch_sub_explicit(d->bytes, len, memory_order_relaxed);
}

static size_t
dtab_len(size_t cap)
{
	return sizeof(struct dtab) + cap * sizeof(uint64_t);
}

static struct dtab *
dtab_new(struct ba_depot *d, size_t cap)
{
	struct dtab *t = depot_get_mem(d, dtab_len(cap));

	if (t != NULL) {
		memset(t, 0, dtab_len(cap));
		t->mask = cap - 1;
	}
	return t;
}

struct ba_depot *
ba_depot_new(beamalloc_allocator backing, _Atomic size_t *bytes)
{
	struct ba_depot *d = ba_raw_alloc(backing, sizeof(*d),
	    BEAMALLOC_MIN_ALIGN, 0);
	struct dtab *t;

	if (d == NULL)
		return NULL;
	memset(d, 0, sizeof(*d));
	atomic_fetch_add_explicit(bytes, sizeof(*d), memory_order_relaxed);
	d->backing = backing;
	d->bytes = bytes;
	d->off = DEPOT_CHUNK;		/* no chunk yet */
	pthread_mutex_init(&d->lock, NULL);
	if ((t = dtab_new(d, 256)) == NULL) {
		ba_depot_destroy(d);
		return NULL;
	}
	atomic_store_explicit(&d->tab, t, memory_order_relaxed);
	return d;
}

void
ba_depot_destroy(struct ba_depot *d)
{
	struct dtab *t, *older;

	if (d == NULL)
		return;
	for (t = atomic_load(&d->tab); t != NULL; t = older) {
		older = t->older;
		depot_put_mem(d, t, dtab_len(t->mask + 1));
	}
	for (size_t i = 0; i < d->nchunk; i++)
		depot_put_mem(d, atomic_load(&d->chunk[i]), DEPOT_CHUNK);
	pthread_mutex_destroy(&d->lock);
	atomic_fetch_sub_explicit(d->bytes, sizeof(*d), memory_order_relaxed);
	ba_raw_free(d->backing, d, sizeof(*d), BEAMALLOC_MIN_ALIGN, 0);
}

static inline uint32_t
trace_hash(const uintptr_t *f, unsigned n)
{
	uint64_t h = n;

	for (unsigned i = 0; i < n; i++)
		h = (h ^ f[i]) * HASH_MUL;
	return (uint32_t)(h >> 32) | 1;	/* never 0: 0 is an empty slot */
}

static inline const struct dtrace *
dtrace_at(const struct ba_depot *d, uint32_t id)
{
	uint32_t k = id - 1;
	unsigned char *c = atomic_load_explicit(&d->chunk[k >>
	    DEPOT_WORD_BITS], memory_order_acquire);

	return (const struct dtrace *)(void *)(c + ((size_t)(k &
	    ((1u << DEPOT_WORD_BITS) - 1)) << 3));
}

/* Inline: a few words, not worth memcmp's call. */
static inline bool
same_frames(const uintptr_t *a, const uintptr_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* The id of f[0..n) in t, or 0 (*slot: where the probe ended). */
static uint32_t
dtab_find(const struct ba_depot *d, struct dtab *t, uint32_t h,
    const uintptr_t *f, unsigned n, size_t *slot)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t e = atomic_load_explicit(&t->e[i],
		    memory_order_acquire);
		const struct dtrace *dt;

		*slot = i;
		if (e == 0)
			return 0;
		if ((uint32_t)(e >> 32) != h)
			continue;
		dt = dtrace_at(d, (uint32_t)e);
		if (dt->len == n && same_frames(dt->f, f, n))
			return (uint32_t)e;
	}
}

/* Under d->lock: a table with room for twice as many, the old one kept
 * (readers may still probe it) until destroy. */
static struct dtab *
dtab_grow(struct ba_depot *d, struct dtab *t)
{
	struct dtab *n = dtab_new(d, 2 * (t->mask + 1));

	if (n == NULL)
		return NULL;
	for (size_t i = 0; i <= t->mask; i++) {
		uint64_t e = atomic_load_explicit(&t->e[i],
		    memory_order_relaxed);
		size_t j;

		if (e == 0)
			continue;
		for (j = (e >> 32) & n->mask; atomic_load_explicit(&n->e[j],
		    memory_order_relaxed) != 0; j = (j + 1) & n->mask)
			;
		atomic_store_explicit(&n->e[j], e, memory_order_relaxed);
	}
	n->older = t;
	atomic_store_explicit(&d->tab, n, memory_order_release);
	return n;
}

/* Under d->lock: room for a trace of n frames, and its id. */
static struct dtrace *
dtrace_new(struct ba_depot *d, unsigned n, uint32_t *id)
{
	size_t len = sizeof(struct dtrace) + n * sizeof(uintptr_t);
	unsigned char *c;

	if (d->off + len > DEPOT_CHUNK) {
		if (d->nchunk == DEPOT_NCHUNK ||
		    (c = depot_get_mem(d, DEPOT_CHUNK)) == NULL)
			return NULL;
		atomic_store_explicit(&d->chunk[d->nchunk++], c,
		    memory_order_release);
		d->off = 0;
	}
	c = atomic_load_explicit(&d->chunk[d->nchunk - 1],
	    memory_order_relaxed);
	*id = (uint32_t)(((d->nchunk - 1) << DEPOT_WORD_BITS) |
	    (d->off >> 3)) + 1;
	d->off += len;
	return (struct dtrace *)(void *)(c + d->off - len);
}

/* The id of the trace f[0..n): found without a lock, stored under one
 * when new.  0 for no frames, or no memory for them. */
uint32_t
ba_depot_put(struct ba_depot *d, const uintptr_t *f, unsigned n)
{
	uint32_t h, id;
	struct dtab *t;
	struct dtrace *dt;
	size_t slot;

	if (n == 0)
		return 0;
	h = trace_hash(f, n);
	t = atomic_load_explicit(&d->tab, memory_order_acquire);
	if ((id = dtab_find(d, t, h, f, n, &slot)) != 0)
		return id;
	pthread_mutex_lock(&d->lock);
	t = atomic_load_explicit(&d->tab, memory_order_relaxed);
	if ((id = dtab_find(d, t, h, f, n, &slot)) != 0)
		goto out;
	if ((d->n + 1) * 2 > t->mask + 1) {
		if ((t = dtab_grow(d, t)) == NULL)
			goto out;
		(void)dtab_find(d, t, h, f, n, &slot);
	}
	if ((dt = dtrace_new(d, n, &id)) == NULL)
		goto out;
	dt->hash = h;
	dt->len = n;
	memcpy(dt->f, f, n * sizeof(f[0]));
	d->n++;
	/* The trace is written before its slot publishes it. */
	atomic_store_explicit(&t->e[slot], (uint64_t)h << 32 | id,
	    memory_order_release);
out:
	pthread_mutex_unlock(&d->lock);
	return id;
}

/* The frames of id (never 0), stored until the depot is destroyed. */
const uintptr_t *
ba_depot_get(const struct ba_depot *d, uint32_t id, size_t *n)
{
	const struct dtrace *dt = dtrace_at(d, id);

	*n = dt->len;
	return dt->f;
}

/* Capture and store: the id of the trace from ra outwards, 0 if none. */
uint32_t
ba_trace_id(struct ba_depot *d, unsigned depth, uintptr_t ra)
{
	uintptr_t f[BEAMALLOC_GPA_MAX_TRACE];

	return ba_depot_put(d, f, ba_trace_capture(f, depth, ra));
}

/* fork(): an insert half done by another thread must not leave the lock
 * held in the child. */
void
ba_depot_fork(struct ba_depot *d, enum ba_fork ph)
{
	if (d != NULL)
		ba_fork_mutex(&d->lock, ph, false);
}
