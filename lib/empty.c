/*
 * empty.c - the allocator with no memory.  Each allocator's constructor
 * returns it for a NULL object (beamalloc_gpa_allocator(NULL) after a
 * create that failed, its NULL not checked), so that the mistake shows
 * as allocations failing with ENOMEM, not as a crash inside the library.
 * It never handed out a block: one freed, resized or remapped through it
 * is reported as an invalid free, by address and size, and left alone.
 */
#include <errno.h>

#include "internal.h"

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
empty_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	return ba_fail(ENOMEM);
}

/* Not one of its blocks: reported, and refused with EINVAL (the
 * front-end's "refused", which keeps the block as it is). */
static void
not_ours(void *mem, size_t len, size_t align, uintptr_t ra)
{
	ba_report_call(BEAMALLOC_REPORT_INVALID_FREE, mem, 0, 0, len, align,
	    ra);
	errno = EINVAL;
}

static bool
empty_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)new_len;
	not_ours(mem, len, align, ra);
	return false;
}

static void *
empty_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)new_len;
	not_ours(mem, len, align, ra);
	return NULL;
}

static void
empty_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	int saved = errno;

	(void)ctx;
	not_ours(mem, len, align, ra);
	errno = saved;		/* free sets no errno */
}

static const beamalloc_vtable empty_vtable = {
	empty_alloc, empty_resize, empty_remap, empty_free
};

/* ------------------------------------------------------------------------
 * Constructor
 * ---------------------------------------------------------------------- */

beamalloc_allocator
ba_empty_allocator(void)
{
	beamalloc_allocator a = { NULL, &empty_vtable };

	return a;
}
