/*
 * backing.c - the GPA's backing memory: regions of slabs taken from the
 * backing allocator, and metadata carved from their unaligned ends (or
 * from blocks of its own).
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
 * Backing memory: regions of slabs, and metadata carved from their
 * unaligned ends (or from blocks of its own)
 * ---------------------------------------------------------------------- */

void *
ba_gpa_backing_get(struct beamalloc_gpa *g, size_t len)
{
	void *p = ba_raw_alloc(g->backing, len, BEAMALLOC_MIN_ALIGN, 0);

	if (p != NULL)
		atomic_fetch_add_explicit(&g->backing_bytes, len,
		    memory_order_relaxed);
	return p;
}

void
ba_gpa_backing_put(struct beamalloc_gpa *g, void *p, size_t len)
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
		struct bblock *n = ba_gpa_backing_get(g, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		if (g->bb != NULL) {
			memcpy(n, g->bb, g->nbb * sizeof(*n));
			ba_gpa_backing_put(g, g->bb, g->bbcap * sizeof(*n));
		}
		g->bb = n;
		g->bbcap = cap;
	}
	if ((p = ba_gpa_backing_get(g, len)) != NULL)
		g->bb[g->nbb++] = (struct bblock){ p, len };
	return p;
}

/* A region of n frames at FRAME_SIZE alignment out of an 8-aligned
 * block.  The unaligned head and tail (FRAME_SIZE - 8 bytes together)
 * are parts of the frames on either side, a partial slab each when it
 * has room for TAIL_MIN bytes: the head the top of the frame below, the
 * tail the start of the one past the last.  The header goes at the very
 * start, so that the pointer the GPA keeps (g->regions) is to the
 * block's start: a leak checker run at exit with the GPA still there
 * (the global one) then sees the block reachable, not "possibly lost".
 * When the head is too short for it, the header is the GPA's metadata
 * instead (reused, given back at destroy), holding that pointer.
 * Regions grow with the number held.  Under g->lock. */
struct region *
ba_gpa_region_new(struct beamalloc_gpa *g)
{
	size_t n = ba_min(REGION_FRAMES, (size_t)2 << ba_min(g->nregions,
	    16));
	size_t len = n * FRAME_SIZE + FRAME_SIZE - BEAMALLOC_MIN_ALIGN;
	uintptr_t mem, base, start, end, tail;
	struct region *r;

	_Static_assert(REGION_FRAMES < REGION_HEAD, "a bit for the tail");
	mem = (uintptr_t)ba_gpa_backing_get(g, len);
	if (mem == 0)
		return NULL;
	base = ba_align_forward(mem, FRAME_SIZE);
	/* Watched by a memory checker, no slot may start where the backing's
	 * block does: valgrind took a slot's MALLOCLIKE block for the
	 * backing's malloc block at that address ("mismatched free" at the
	 * slot's free and the region's).  The frame at the start becomes the
	 * head (header and partial slab). */
	if (BA_UNLIKELY(g->tools) && base == mem) {
		base += FRAME_SIZE;
		n--;
	}
	tail = base + n * FRAME_SIZE;
	start = mem;
	end = mem + len;
	if (base - mem >= sizeof(*r) + 16) {
		r = (struct region *)mem;
		start = mem + ba_align_forward(sizeof(*r), 8);
	} else if ((r = g->region_free) != NULL)
		g->region_free = r->next;
	else if ((r = ba_gpa_meta_zalloc(g, sizeof(*r))) == NULL) {
		ba_gpa_backing_put(g, (void *)mem, len);
		return NULL;
	}
	*r = (struct region){ .mem = (void *)mem, .len = len, .base = base,
	    .nframes = (uint32_t)n, .next = g->regions,
	    .meta = (uintptr_t)r != mem,
	    .head = base - start >= TAIL_MIN ? (uint32_t)(base - start) : 0,
	    .tail = end - tail >= TAIL_MIN ? (uint32_t)(end - tail) : 0 };
	if (g->regions != NULL)
		g->regions->prev = r;
	g->regions = r;
	g->nregions++;
	ba_gpa_region_avail(g, r);
	BA_TOOL_NOACCESS((void *)(base - r->head), r->head + n * FRAME_SIZE +
	    r->tail);
	return r;
}

/* r on g->ravail (on) or off it.  The list is in address order, so that
 * new slabs take the lowest free frames: after a mass of frees the free
 * frames are spread over the peak's regions, and slabs made in whichever
 * came free last would spread the next blocks as widely, past what a
 * thread's memo covers (bench/README.md, "After a peak").  Under
 * g->lock. */
static void
ravail_set(struct beamalloc_gpa *g, struct region *r, bool on)
{
	if (on == r->avail)
		return;
	r->avail = on;
	if (on) {
		struct region **p = &g->ravail, *prev = NULL;

		while (*p != NULL && (*p)->base < r->base) {
			prev = *p;
			p = &prev->anext;
		}
		r->aprev = prev;
		r->anext = *p;
		if (r->anext != NULL)
			r->anext->aprev = r;
		*p = r;
		return;
	}
	if (r->aprev != NULL)
		r->aprev->anext = r->anext;
	else
		g->ravail = r->anext;
	if (r->anext != NULL)
		r->anext->aprev = r->aprev;
}

/* r on g->ravail when a whole frame of it is free, off it when none is,
 * so that a new slab looks at no full region.  Under g->lock. */
void
ba_gpa_region_avail(struct beamalloc_gpa *g, struct region *r)
{
	ravail_set(g, r, (~r->used & (((uint64_t)1 << r->nframes) - 1)) !=
	    0);
}

void
ba_gpa_region_free(struct beamalloc_gpa *g, struct region *r)
{
	ravail_set(g, r, false);
	if (r->spare)
		g->spare -= r->len;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		g->regions = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	g->nregions--;
	BA_ASAN_UNPOISON(r->mem, r->len);
	if (r->meta) {
		r->next = g->region_free;
		g->region_free = r;
	}
	ba_gpa_backing_put(g, r->mem, r->len);
}

/* Give back the empty regions kept (a full trim).  Under g->lock;
 * the bytes released. */
size_t
ba_gpa_spares_free(struct beamalloc_gpa *g)
{
	struct region *r, *next;
	size_t bytes = 0;

	for (r = g->regions; r != NULL && g->spare != 0; r = next) {
		next = r->next;
		if (r->spare) {
			bytes += r->len;
			ba_gpa_region_free(g, r);
		}
	}
	return bytes;
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

void *
ba_gpa_meta_zalloc(struct beamalloc_gpa *g, size_t len)
{
	void *p = meta_alloc(g, len);

	if (p != NULL)
		memset(p, 0, len);
	return p;
}
