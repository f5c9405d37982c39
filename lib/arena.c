/*
 * arena.c - bump allocation from chunks of a backing allocator, freed all
 * at once (Zig's ArenaAllocator).
 *
 * Every byte comes from the backing, the arena's own header included: it
 * sits in the first chunk, so creating an arena costs one backing
 * allocation and an arena used for one NIF call needs no other.
 *
 *   first chunk:  [ chunk | beamalloc_arena | blocks ...        ]
 *   other chunks: [ chunk | blocks ...                          ]
 *
 * Chunks form a list in the order they are used; the ones after `cur`
 * are spares kept by a reset.  A request that does not fit in `cur`
 * takes the first spare it fits in, else a new chunk as large as all the
 * others together (capacity doubles) or as the request needs.  Chunks
 * are asked of the backing only at an alignment it serves natively
 * (capped at 16); wider alignments are placed inside a chunk, so the
 * arena serves every alignment whatever its backing.
 */
#include <string.h>

#include "bump.h"

#define ASAN_POISON true	/* chunks are ours: ASan may poison them */

#define FIRST_CHUNK ((size_t)4096)
#define MAX_CHUNK_ALIGN ((size_t)16)

struct chunk {
	struct chunk *next;	/* used after this one */
	size_t size;		/* bytes taken from the backing */
};

struct beamalloc_arena {
	unsigned char *ptr;	/* bump pointer in cur */
	unsigned char *end;	/* end of cur */
	unsigned char *last;	/* start of cur's last block, or NULL */
	struct chunk *cur;
	beamalloc_allocator backing;
	size_t chunk_align;	/* asked of the backing for every chunk */
	size_t capacity;	/* sum of chunk sizes */
};

static inline struct chunk *
first_chunk(const beamalloc_arena *a)
{
	return (struct chunk *)a - 1;
}

static inline unsigned char *
chunk_data(const beamalloc_arena *a, struct chunk *c)
{
	unsigned char *d = (unsigned char *)(c + 1);

	return c == first_chunk(a) ? d + sizeof(*a) : d;
}

static inline unsigned char *
chunk_end(struct chunk *c)
{
	return (unsigned char *)c + c->size;
}

static void
use_chunk(beamalloc_arena *a, struct chunk *c)
{
	a->cur = c;
	a->ptr = chunk_data(a, c);
	a->end = chunk_end(c);
	a->last = NULL;
}

/* Move the first spare that fits right after cur. */
static struct chunk *
take_spare(beamalloc_arena *a, size_t len, size_t align)
{
	struct chunk *prev = a->cur, *c;

	for (c = prev->next; c != NULL; prev = c, c = c->next) {
		if (!ba_bump_fits(chunk_data(a, c), chunk_end(c), len, align))
			continue;
		if (prev != a->cur) {
			prev->next = c->next;
			c->next = a->cur->next;
			a->cur->next = c;
		}
		return c;
	}
	return NULL;
}

static struct chunk *
new_chunk(beamalloc_arena *a, size_t len, size_t align, uintptr_t ra)
{
	struct chunk *c;
	size_t need, size;

	/* header + worst-case padding + len, never past PTRDIFF_MAX */
	if (!ba_add_len(len, align, &need) ||
	    !ba_add_len(need, sizeof(struct chunk), &need))
		return ba_fail(ENOMEM);
	size = ba_max(need, ba_min(a->capacity, (size_t)PTRDIFF_MAX));
	c = ba_raw_alloc(a->backing, size, a->chunk_align, ra);
	if (c == NULL && size > need) {
		/* Geometric growth is a wish; the request is the need. */
		size = need;
		c = ba_raw_alloc(a->backing, size, a->chunk_align, ra);
	}
	if (c == NULL)
		return NULL;
	c->size = size;
	c->next = a->cur->next;
	a->cur->next = c;
	a->capacity += size;
	ba_region_close(c + 1, size - sizeof(*c), ASAN_POISON);
	return c;
}

/* Give a chunk back exactly as it was received: length, alignment, and
 * accessible again for the backing's own bookkeeping. */
static void
release(beamalloc_allocator backing, struct chunk *c, size_t align,
    uintptr_t ra)
{
	size_t size = c->size;

	ba_region_open(c, size, ASAN_POISON);
	ba_raw_free(backing, c, size, align, ra);
}

#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
bool ba_under_valgrind;

static void __attribute__((constructor))
detect_valgrind(void)
{
	ba_under_valgrind = ba_memcheck_running();
}
#endif

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
arena_alloc_slow(beamalloc_arena *a, size_t len, size_t align, uintptr_t ra)
{
	struct chunk *c = take_spare(a, len, align);

	if (c == NULL && (c = new_chunk(a, len, align, ra)) == NULL)
		return NULL;
	use_chunk(a, c);
	return ba_bump_alloc(&a->ptr, &a->last, a->end, len, align,
	    ASAN_POISON);
}

static void *
arena_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_arena *a = ctx;
	void *p = ba_bump_alloc(&a->ptr, &a->last, a->end, len, align,
	    ASAN_POISON);

	return BA_LIKELY(p != NULL) ? p : arena_alloc_slow(a, len, align, ra);
}

static bool
arena_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_arena *a = ctx;

	(void)align, (void)ra;
	return ba_bump_resize(&a->ptr, a->last, a->end, mem, len, new_len,
	    ASAN_POISON);
}

/* Moving would be alloc + copy, which the caller does best. */
static void *
arena_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return arena_resize(ctx, mem, len, align, new_len, ra) ? mem : NULL;
}

static void
arena_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_arena *a = ctx;

	(void)align, (void)ra;
	ba_bump_free(&a->ptr, &a->last, mem, len, ASAN_POISON);
}

const beamalloc_vtable ba_arena_vtable = {
	arena_alloc, arena_resize, arena_remap, arena_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

beamalloc_arena *
beamalloc_arena_create(beamalloc_allocator backing)
{
	size_t align = ba_min(ba_native_align(backing),
	    MAX_CHUNK_ALIGN);
	struct chunk *c;
	beamalloc_arena *a;

	if (backing.vtable == NULL)
		return ba_fail(EINVAL);
	c = ba_raw_alloc(backing, FIRST_CHUNK, align, BA_RET_ADDR());
	if (c == NULL)
		return ba_fail(ENOMEM);
	c->next = NULL;
	c->size = FIRST_CHUNK;
	a = (beamalloc_arena *)(c + 1);
	a->backing = backing;
	a->chunk_align = align;
	a->capacity = FIRST_CHUNK;
	use_chunk(a, c);
	ba_region_close(a->ptr, (size_t)(a->end - a->ptr), ASAN_POISON);
	return a;
}

beamalloc_allocator
beamalloc_arena_allocator(beamalloc_arena *arena)
{
	beamalloc_allocator al = { arena, &ba_arena_vtable };

	return arena != NULL ? al : ba_empty_allocator();
}

/* Every chunk is kept: a loop that resets after each round stops calling
 * the backing once the arena has grown to the round's needs. */
void
beamalloc_arena_reset(beamalloc_arena *a)
{
	struct chunk *c;

	if (a == NULL)
		return;
	for (c = first_chunk(a); c != NULL; c = c->next) {
		unsigned char *d = chunk_data(a, c);

		ba_region_close(d, (size_t)(chunk_end(c) - d), ASAN_POISON);
	}
	use_chunk(a, first_chunk(a));
}

void
beamalloc_arena_destroy(beamalloc_arena *a)
{
	struct chunk *first, *c, *next;
	beamalloc_allocator backing;
	size_t align;
	uintptr_t ra = BA_RET_ADDR();

	if (a == NULL)
		return;
	first = first_chunk(a);
	backing = a->backing;
	align = a->chunk_align;
	for (c = first->next; c != NULL; c = next) {
		next = c->next;
		release(backing, c, align, ra);
	}
	/* A use after destroy that the backing has not reused yet reaches
	 * a NULL chunk on its first allocation, not a stale one. */
	memset(a, 0, sizeof(*a));
	release(backing, first, align, ra);
}

size_t
beamalloc_arena_capacity(const beamalloc_arena *a)
{
	return a != NULL ? a->capacity : 0;
}

/* Chunks after the first are kept in list order while they fit in the
 * limit; the first holds the arena itself and always stays. */
size_t
beamalloc_arena_reset_with(beamalloc_arena *a, beamalloc_arena_reset_mode mode,
    size_t limit)
{
	struct chunk *prev, *c, *next;
	size_t keep, kept;
	uintptr_t ra = BA_RET_ADDR();

	if (a == NULL)
		return 0;
	if (mode != BEAMALLOC_ARENA_FREE_ALL &&
	    mode != BEAMALLOC_ARENA_RETAIN_WITH_LIMIT) {
		if (mode != BEAMALLOC_ARENA_RETAIN_CAPACITY)
			errno = EINVAL;
		beamalloc_arena_reset(a);
		return a->capacity;
	}
	keep = mode == BEAMALLOC_ARENA_FREE_ALL ? 0 : limit;
	prev = first_chunk(a);
	kept = prev->size;
	for (c = prev->next; c != NULL; c = next) {
		next = c->next;
		if (kept <= keep && c->size <= keep - kept) {
			kept += c->size;
			prev->next = c;
			prev = c;
			continue;
		}
		a->capacity -= c->size;
		release(a->backing, c, a->chunk_align, ra);
	}
	prev->next = NULL;
	beamalloc_arena_reset(a);
	return a->capacity;
}

/* ------------------------------------------------------------------------
 * 0.1's ABI (internal.h): 0.1 judged the last block by its end alone, so
 * blocks freed newest first each gave their bytes back, and the block
 * before a freed one could grow in place again.  A program built against
 * 0.1 may rely on that (an arena used as a stack): its allocator takes
 * a block of the current chunk ending at ptr for the last one, as the
 * fixed buffer's 0.1 entry points do.
 * ---------------------------------------------------------------------- */

#ifdef BA_ABI01
static void
abi01_last(beamalloc_arena *a, void *mem)
{
	a->last = ba_bump_abi01_last(chunk_data(a, a->cur), a->ptr, mem);
}

static bool
abi01_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	abi01_last(ctx, mem);
	return arena_resize(ctx, mem, len, align, new_len, ra);
}

static void *
abi01_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return abi01_resize(ctx, mem, len, align, new_len, ra) ? mem : NULL;
}

static void
abi01_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	abi01_last(ctx, mem);
	arena_free(ctx, mem, len, align, ra);
}

const beamalloc_vtable ba_abi01_arena_vtable = {
	arena_alloc, abi01_resize, abi01_remap, abi01_free
};

BA_ABI01_ENTRY(ba_abi01_arena_allocator, beamalloc_arena_allocator);
beamalloc_allocator
ba_abi01_arena_allocator(beamalloc_arena *arena)
{
	beamalloc_allocator al = { arena, &ba_abi01_arena_vtable };

	return arena != NULL ? al : ba_empty_allocator();
}
#endif
