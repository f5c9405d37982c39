/*
 * stackfb.c - a fixed buffer of caller memory first, a backing allocator
 * when it is full (Zig's StackFallbackAllocator).  A block belongs to the
 * buffer when its address lies inside it, so every free, resize and remap
 * finds its owner without any record.
 */
#include "internal.h"

static inline bool
in_buffer(const beamalloc_stackfb *s, const void *mem)
{
	const unsigned char *p = mem;

	return p >= s->fixed.start && p < s->fixed.end;
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
stackfb_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_stackfb *s = ctx;
	void *p = ba_fixed_vtable.alloc(&s->fixed, len, align, ra);

	return p != NULL ? p : ba_raw_alloc(s->backing, len, align, ra);
}

static bool
stackfb_resize(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_stackfb *s = ctx;

	if (in_buffer(s, mem))
		return ba_fixed_vtable.resize(&s->fixed, mem, len, align,
		    new_len, ra);
	return ba_raw_resize(s->backing, mem, len, align, new_len, ra);
}

/* A block of the buffer that cannot grow in place is moved by the
 * front-end (alloc + copy + free), to the backing if need be. */
static void *
stackfb_remap(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_stackfb *s = ctx;

	if (in_buffer(s, mem))
		return ba_fixed_vtable.remap(&s->fixed, mem, len, align,
		    new_len, ra);
	return ba_raw_remap(s->backing, mem, len, align, new_len, ra);
}

static void
stackfb_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_stackfb *s = ctx;

	if (in_buffer(s, mem))
		ba_fixed_vtable.free(&s->fixed, mem, len, align, ra);
	else
		ba_raw_free(s->backing, mem, len, align, ra);
}

const beamalloc_vtable ba_stackfb_vtable = {
	stackfb_alloc, stackfb_resize, stackfb_remap, stackfb_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

void
beamalloc_stackfb_init(beamalloc_stackfb *s, void *buf, size_t len,
    beamalloc_allocator backing)
{
	s->backing = ba_set(backing);
	beamalloc_fixed_init(&s->fixed, buf, len);
}

beamalloc_allocator
beamalloc_stackfb_allocator(beamalloc_stackfb *s)
{
	beamalloc_allocator a = { s, &ba_stackfb_vtable };

	return s != NULL ? a : ba_empty_allocator();
}
