/*
 * pool.c - items of one size from chunks of a backing allocator, taken
 * and given back in O(1) (Zig's MemoryPool).
 *
 * A free item holds the link to the next free one in its first word, so
 * items are at least a pointer wide and aligned to one.  Fresh items come
 * from a bump pointer in the newest chunk, so a new chunk costs one
 * backing call and touches none of its items.
 *
 *   chunk:  [ pool_chunk | padding | item | item | ... ]
 *
 * Memory checkers see each item as a region of its chunk (as bump.h does
 * for the arena), not a malloc-like block: destroy drops live items with
 * their chunks.  A free item is inaccessible, its link word included;
 * the pool opens the word just long enough to read or write it.
 */
#include <string.h>

#include "bump.h"

#define ASAN_POISON true	/* chunks are ours: ASan may poison them */
#define MIN_GROW ((size_t)16)	/* items in the first chunk of a pool */
#define MAX_CHUNK_ALIGN ((size_t)16)

struct pool_chunk {
	struct pool_chunk *next;
	size_t size;		/* bytes taken from the backing */
	unsigned char *items;	/* first item */
	unsigned char *items_end;
};

struct beamalloc_pool {
	void *free;		/* first free item, or NULL */
	unsigned char *bump;	/* next fresh item in chunks */
	unsigned char *bump_end;
	size_t stride;		/* bytes per item */
	size_t item_size;	/* what callers may use */
	size_t live;
	size_t capacity;	/* items in all chunks */
	struct pool_chunk *chunks;	/* newest first */
	beamalloc_allocator backing;
	size_t item_align;	/* what callers asked for */
	size_t place_align;	/* max(item_align, pointer) */
	size_t chunk_align;	/* asked of the backing */
	bool growable;
};

/* Whether memory checkers must be told about items: ASan builds always,
 * valgrind when running under memcheck.  Otherwise get and put are a
 * pop and a push with no client request in sight, whose stack frame
 * would cost the fast path a push and a pop of its own. */
#if defined(BA_ASAN)
#define TOOLS_ON true
#elif defined(HAVE_VALGRIND_MEMCHECK_H)
#define TOOLS_ON BA_UNLIKELY(ba_under_valgrind)
#else
#define TOOLS_ON false
#endif

/* The link word of a free item: opened to memory checkers only while
 * read or written. */
static inline void *
link_read(const beamalloc_pool *pool, void *item)
{
	void *next;

	BA_ASAN_UNPOISON(item, sizeof(void *));
#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
	if (BA_UNLIKELY(ba_under_valgrind))
		VALGRIND_MAKE_MEM_DEFINED(item, sizeof(void *));
#endif
	memcpy(&next, item, sizeof(next));
	ba_region_close(item, pool->stride, ASAN_POISON);
	return next;
}

static inline void
link_write(const beamalloc_pool *pool, void *item, void *next)
{
	BA_ASAN_UNPOISON(item, sizeof(void *));
	BA_VG_UNDEFINED(item, sizeof(void *));
	memcpy(item, &next, sizeof(next));
	ba_region_close(item, pool->stride, ASAN_POISON);
}

/* A chunk of n items; its bytes stay inaccessible until handed out. */
static struct pool_chunk *
new_chunk(beamalloc_pool *pool, size_t n, uintptr_t ra)
{
	struct pool_chunk *c;
	size_t bytes, size;

	/* header + worst-case padding + items, never past PTRDIFF_MAX */
	if (__builtin_mul_overflow(n, pool->stride, &bytes) ||
	    !ba_add_len(bytes, sizeof(*c), &size) ||
	    !ba_add_len(size, pool->place_align, &size))
		return ba_fail(ENOMEM);
	c = ba_raw_alloc(pool->backing, size, pool->chunk_align, ra);
	if (c == NULL)
		return ba_fail_from_vtable();
	c->size = size;
	c->items = (unsigned char *)ba_align_forward((uintptr_t)(c + 1),
	    pool->place_align);
	c->items_end = c->items + bytes;
	c->next = pool->chunks;
	pool->chunks = c;
	pool->capacity += n;
	pool->bump = c->items;
	pool->bump_end = c->items_end;
	ba_region_close(c + 1, size - sizeof(*c), ASAN_POISON);
	return c;
}

static void *
get_slow(beamalloc_pool *pool, uintptr_t ra)
{
	unsigned char *p;

	if (pool->bump == pool->bump_end) {
		if (!pool->growable)
			return ba_fail(ENOMEM);
		if (new_chunk(pool, ba_max(pool->capacity, MIN_GROW), ra) ==
		    NULL)
			return NULL;
	}
	p = pool->bump;
	pool->bump += pool->stride;
	return p;
}

static __attribute__((noinline)) void *
get_tooled(beamalloc_pool *pool, size_t len, uintptr_t ra)
{
	void *p = pool->free;

	if (p != NULL)
		pool->free = link_read(pool, p);
	else if ((p = get_slow(pool, ra)) == NULL)
		return NULL;
	pool->live++;
	ba_region_open(p, len, ASAN_POISON);
	return p;
}

static inline void *
get(beamalloc_pool *pool, size_t len, uintptr_t ra)
{
	void *p = pool->free;

	if (TOOLS_ON || BA_UNLIKELY(p == NULL))
		return get_tooled(pool, len, ra);
	memcpy(&pool->free, p, sizeof(void *));
	pool->live++;
	return p;
}

static void
report(beamalloc_report_kind kind, const beamalloc_pool *pool,
    const void *item, size_t len, size_t align, uintptr_t ra)
{
	ba_report_call(kind, item, pool->item_size, pool->item_align, len,
	    align, ra);
}

/* The item freed last, freed again, is caught: it heads the free list.
 * Any earlier one is not (that would cost a bit per item). */
static inline void
put(beamalloc_pool *pool, void *item, size_t len, size_t align,
    uintptr_t ra)
{
	if (BA_UNLIKELY(item == pool->free)) {
		report(BEAMALLOC_REPORT_DOUBLE_FREE, pool, item, len, align,
		    ra);
		return;
	}
	if (TOOLS_ON)
		link_write(pool, item, pool->free);
	else
		memcpy(item, &pool->free, sizeof(void *));
	pool->free = item;
	pool->live--;
}

/* Whether item is an item of one of the pool's chunks, handed out. */
static bool
owns(const beamalloc_pool *pool, const void *item)
{
	uintptr_t p = (uintptr_t)item;

	for (const struct pool_chunk *c = pool->chunks; c; c = c->next) {
		uintptr_t lo = (uintptr_t)c->items;
		uintptr_t hi = c == pool->chunks ? (uintptr_t)pool->bump :
		    (uintptr_t)c->items_end;

		if (p >= lo && p < hi)
			return (p - lo) % pool->stride == 0;
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
pool_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_pool *pool = ctx;

	if (align > pool->item_align)
		return ba_fail(EINVAL);
	if (len > pool->item_size)
		return ba_fail(ENOMEM);
	return get(pool, len, ra);
}

/* What is wrong with a block named to resize or remap: not an item
 * handed out (reported as an invalid free), or the item freed last
 * (a double free); 0 when neither.  As for free, an older freed item
 * is not caught. */
static int
bad_block(const beamalloc_pool *pool, const void *mem)
{
	if (!owns(pool, mem))
		return BEAMALLOC_REPORT_INVALID_FREE;
	if (mem == pool->free)
		return BEAMALLOC_REPORT_DOUBLE_FREE;
	return 0;
}

/* Within the item, always; beyond it, never.  A block that is not a live
 * item is reported and refused (EINVAL), as free reports it: a success
 * would let the caller write new_len bytes over memory the pool does not
 * own, or over a free item the next get hands out again. */
static bool
pool_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_pool *pool = ctx;
	int bad = bad_block(pool, mem);

	if (BA_UNLIKELY(bad != 0)) {
		report((beamalloc_report_kind)bad, pool, mem, len, align, ra);
		errno = EINVAL;
		return false;
	}
	if (new_len > pool->item_size)
		return false;
	if (new_len > len)
		ba_region_open((unsigned char *)mem + len, new_len - len,
		    ASAN_POISON);
	else
		ba_region_close((unsigned char *)mem + new_len, len - new_len,
		    ASAN_POISON);
	return true;
}

static void *
pool_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return pool_resize(ctx, mem, len, align, new_len, ra) ? mem : NULL;
}

static void
pool_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_pool *pool = ctx;

	if (BA_UNLIKELY(!owns(pool, mem))) {
		report(BEAMALLOC_REPORT_INVALID_FREE, pool, mem, len, align,
		    ra);
		return;
	}
	put(pool, mem, len, align, ra);
}

const beamalloc_vtable ba_pool_vtable = {
	pool_alloc, pool_resize, pool_remap, pool_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

beamalloc_pool *
beamalloc_pool_create(beamalloc_allocator backing, size_t item_size,
    size_t item_align, size_t preheat, bool growable)
{
	uintptr_t ra = BA_RET_ADDR();
	beamalloc_pool *pool;
	size_t place;

	if (item_size == 0 || !ba_is_pow2(item_align) ||
	    backing.vtable == NULL)
		return ba_fail(EINVAL);
	if (item_size > (size_t)PTRDIFF_MAX || item_align > PTRDIFF_MAX / 2)
		return ba_fail(ENOMEM);
	place = ba_max(item_align, sizeof(void *));
	pool = ba_raw_alloc(backing, sizeof(*pool), _Alignof(beamalloc_pool),
	    ra);
	if (pool == NULL)
		return ba_fail_from_vtable();
	memset(pool, 0, sizeof(*pool));
	pool->backing = backing;
	pool->item_size = item_size;
	pool->item_align = item_align;
	pool->place_align = place;
	pool->stride = ba_align_forward(ba_max(item_size, sizeof(void *)),
	    place);
	pool->chunk_align = ba_min(ba_native_align(backing),
	    MAX_CHUNK_ALIGN);
	pool->growable = growable;
	if (preheat > 0 && new_chunk(pool, preheat, ra) == NULL) {
		int err = errno;

		ba_raw_free(backing, pool, sizeof(*pool),
		    _Alignof(beamalloc_pool), ra);
		return ba_fail(err);
	}
	return pool;
}

beamalloc_allocator
beamalloc_pool_allocator(beamalloc_pool *pool)
{
	beamalloc_allocator a = { pool, &ba_pool_vtable };

	return pool != NULL ? a : ba_empty_allocator();
}

void *
beamalloc_pool_get(beamalloc_pool *pool)
{
	return get(pool, pool->item_size, BA_RET_ADDR());
}

void
beamalloc_pool_put(beamalloc_pool *pool, void *item)
{
	if (item != NULL)
		put(pool, item, pool->item_size, pool->item_align,
		    BA_RET_ADDR());
}

size_t
beamalloc_pool_capacity(const beamalloc_pool *pool)
{
	return pool != NULL ? pool->capacity : 0;
}

size_t
beamalloc_pool_live(const beamalloc_pool *pool)
{
	return pool != NULL ? pool->live : 0;
}

void
beamalloc_pool_destroy(beamalloc_pool *pool)
{
	struct pool_chunk *c, *next;
	beamalloc_allocator backing;
	uintptr_t ra = BA_RET_ADDR();

	if (pool == NULL)
		return;
	backing = pool->backing;
	for (c = pool->chunks; c != NULL; c = next) {
		size_t size = c->size;

		next = c->next;
		/* Back to the backing as received: accessible again. */
		ba_region_open(c, size, ASAN_POISON);
		ba_raw_free(backing, c, size, pool->chunk_align, ra);
	}
	ba_raw_free(backing, pool, sizeof(*pool), _Alignof(beamalloc_pool),
	    ra);
}
