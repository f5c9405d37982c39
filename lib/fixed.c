/*
 * fixed.c - bump allocation out of one caller-provided buffer (Zig's
 * FixedBufferAllocator).  No backing allocator: when the buffer is full,
 * allocation fails with ENOMEM and leaves the buffer as it was.
 */
#include "bump.h"

/* The buffer is the caller's, often on the stack: ASan would keep its
 * poison after the frame is gone.  Valgrind alone is told. */
#define ASAN_POISON false

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
fixed_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_fixed *fb = ctx;
	void *p = ba_bump_alloc(&fb->ptr, fb->end, len, align, ASAN_POISON);

	(void)ra;
	return p != NULL ? p : ba_fail(ENOMEM);
}

static bool
fixed_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_fixed *fb = ctx;

	(void)align, (void)ra;
	return ba_bump_resize(&fb->ptr, fb->end, mem, len, new_len,
	    ASAN_POISON);
}

static void *
fixed_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return fixed_resize(ctx, mem, len, align, new_len, ra) ? mem : NULL;
}

static void
fixed_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_fixed *fb = ctx;

	(void)align, (void)ra;
	ba_bump_free(&fb->ptr, mem, len, ASAN_POISON);
}

const beamalloc_vtable ba_fixed_vtable = {
	fixed_alloc, fixed_resize, fixed_remap, fixed_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

void
beamalloc_fixed_init(beamalloc_fixed *fb, void *buf, size_t len)
{
	fb->start = buf;
	fb->ptr = buf;
	/* No arithmetic on NULL: a NULL buffer is an empty one. */
	fb->end = buf != NULL ? fb->start + len : NULL;
	if (buf != NULL)
		ba_region_close(buf, len, ASAN_POISON);
}

beamalloc_allocator
beamalloc_fixed_allocator(beamalloc_fixed *fb)
{
	beamalloc_allocator a = { fb, &ba_fixed_vtable };

	return a;
}

void
beamalloc_fixed_reset(beamalloc_fixed *fb)
{
	if (fb->start == NULL)
		return;
	ba_region_close(fb->start, (size_t)(fb->ptr - fb->start), ASAN_POISON);
	fb->ptr = fb->start;
}
