/*
 * empty.c - the allocator with no memory.  Each allocator's constructor
 * returns it for a NULL object (beamalloc_gpa_allocator(NULL) after a
 * create that failed, its NULL not checked), so that the mistake shows
 * as allocations failing with ENOMEM, not as a crash inside the library.
 * It never handed out a block: one freed, resized or remapped through it
 * is reported as an invalid free, by address and size, and left alone.
 *
 * Its twin, the unset allocator, stands for an allocator never set (all
 * zero: a static one used before the code that sets it ran): the same,
 * but its allocations fail with EINVAL, as the mistake is the caller's.
 */
#include <errno.h>

#include "internal.h"

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

/* The empty allocator's ctx: any other (NULL, or whatever an allocator
 * never set holds beside its null vtable) is the unset one's. */
static const char no_memory;

static void *
empty_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)len, (void)align, (void)ra;
	return ba_fail(ctx == &no_memory ? ENOMEM : EINVAL);
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

const beamalloc_vtable ba_empty_vtable = {
	empty_alloc, empty_resize, empty_remap, empty_free
};

/* ------------------------------------------------------------------------
 * Constructors
 * ---------------------------------------------------------------------- */

const beamalloc_allocator ba_unset = { NULL, &ba_empty_vtable };

beamalloc_allocator
ba_empty_allocator(void)
{
	beamalloc_allocator a = { (void *)&no_memory, &ba_empty_vtable };

	return a;
}
