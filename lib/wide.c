/*
 * wide.c - any power-of-two alignment on any backing allocator.
 *
 * An alignment the backing allocator serves itself passes straight through.
 * A wider one over-allocates len + align bytes at the backing's native
 * alignment n (n >= 8), places the block at the first align boundary that
 * leaves a word below it, and stores there the offset back to the backing
 * block:
 *
 *   base            aligned - 8   aligned                 base + len + align
 *   |<- padding ->| [ offset ] | len bytes ... |<- slack ->|
 *
 * offset <= 8 + align - n <= align, so len + align always suffices: at most
 * one word beyond the len + align - 1 that any aligned over-allocation
 * needs.  free() gives the backing exactly (base, len + align, n).
 */
#include <string.h>

#include "internal.h"

typedef size_t offset_t;	/* stored just below the aligned block */

/* The backing allocation behind an over-aligned block. */
struct backing_block {
	unsigned char *base;
	size_t len;
	size_t align;
};

static inline size_t
native_of(const beamalloc_allocator *b)
{
	return beamalloc_native_align(*b);
}

static inline bool
passes_through(const beamalloc_allocator *b, size_t align)
{
	return align <= native_of(b);
}

static inline size_t
offset_for(const unsigned char *base, size_t align)
{
	uintptr_t a = ba_align_forward((uintptr_t)base + sizeof(offset_t),
	    align);

	return (size_t)(a - (uintptr_t)base);
}

static inline offset_t
offset_of(const void *mem)
{
	offset_t off;

	memcpy(&off, (const unsigned char *)mem - sizeof(off), sizeof(off));
	return off;
}

static inline void *
place(unsigned char *base, size_t off)
{
	memcpy(base + off - sizeof(offset_t), &off, sizeof(offset_t));
	return base + off;
}

static struct backing_block
block_of(const beamalloc_allocator *b, void *mem, size_t len, size_t align)
{
	struct backing_block bb;

	bb.base = (unsigned char *)mem - offset_of(mem);
	bb.len = len + align;
	bb.align = native_of(b);
	return bb;
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
wide_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	const beamalloc_allocator *b = ctx;
	unsigned char *base;
	size_t total;

	if (passes_through(b, align))
		return ba_raw_alloc(*b, len, align, ra);
	if (!ba_add_len(len, align, &total))
		return ba_fail(ENOMEM);
	base = ba_raw_alloc(*b, total, native_of(b), ra);
	if (base == NULL)
		return NULL;
	return place(base, offset_for(base, align));
}

/* The block keeps its place, so only the backing block's length changes. */
static bool
wide_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	const beamalloc_allocator *b = ctx;
	struct backing_block bb;
	size_t new_total;

	if (passes_through(b, align))
		return ba_raw_resize(*b, mem, len, align, new_len, ra);
	if (!ba_add_len(new_len, align, &new_total)) {
		errno = ENOMEM;
		return false;
	}
	bb = block_of(b, mem, len, align);
	return ba_raw_resize(*b, bb.base, bb.len, bb.align, new_total, ra);
}

/* The backing may move the block to an address with another residue mod
 * align: then the data is slid to the new aligned place inside it. */
static void *
wide_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	const beamalloc_allocator *b = ctx;
	struct backing_block bb;
	unsigned char *base;
	size_t new_total, old_off, new_off;

	if (passes_through(b, align))
		return ba_raw_remap(*b, mem, len, align, new_len, ra);
	if (!ba_add_len(new_len, align, &new_total))
		return ba_fail(ENOMEM);
	bb = block_of(b, mem, len, align);
	old_off = (size_t)((unsigned char *)mem - bb.base);
	base = ba_raw_remap(*b, bb.base, bb.len, bb.align, new_total, ra);
	if (base == NULL)
		return NULL;
	new_off = offset_for(base, align);
	if (new_off != old_off)
		memmove(base + new_off, base + old_off, ba_min(len, new_len));
	return place(base, new_off);
}

static void
wide_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	const beamalloc_allocator *b = ctx;
	struct backing_block bb;

	if (passes_through(b, align)) {
		ba_raw_free(*b, mem, len, align, ra);
		return;
	}
	bb = block_of(b, mem, len, align);
	ba_raw_free(*b, bb.base, bb.len, bb.align, ra);
}

const beamalloc_vtable ba_wide_vtable = {
	wide_alloc, wide_resize, wide_remap, wide_free
};

/* ------------------------------------------------------------------------
 * Constructors
 * ---------------------------------------------------------------------- */

beamalloc_allocator
beamalloc_wide(void)
{
	beamalloc_allocator a = {
		(void *)&ba_beam_allocator, &ba_wide_vtable
	};

	return a;
}

beamalloc_allocator
beamalloc_wide_on(const beamalloc_allocator *backing)
{
	beamalloc_allocator a = { (void *)backing, &ba_wide_vtable };

	return a;
}
