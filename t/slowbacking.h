/*
 * slowbacking.h - a backing that passes every call to beamalloc_libc(),
 * calling the test's hook first at each alloc and free: for tests that
 * need a thread to stay inside a GPA's backing (where the GPA holds a
 * lock) while another thread forks, cancels or destroys.
 */
#ifndef T_SLOWBACKING_H
#define T_SLOWBACKING_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "beamalloc.h"

static inline void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Called before each alloc (is_free false) and free (true); may sleep. */
static void (*slow_hook)(bool is_free);

static void *
slow_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator m = beamalloc_libc();

	(void)ctx;
	if (slow_hook != NULL)
		slow_hook(false);
	return m.vtable->alloc(m.ctx, len, align, ra);
}

static bool
slow_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator m = beamalloc_libc();

	(void)ctx;
	return m.vtable->resize(m.ctx, mem, len, align, new_len, ra);
}

static void *
slow_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator m = beamalloc_libc();

	(void)ctx;
	return m.vtable->remap(m.ctx, mem, len, align, new_len, ra);
}

static void
slow_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator m = beamalloc_libc();

	(void)ctx;
	if (slow_hook != NULL)
		slow_hook(true);
	m.vtable->free(m.ctx, mem, len, align, ra);
}

static const beamalloc_vtable slow_vt = {
	slow_alloc, slow_resize, slow_remap, slow_free
};

static inline beamalloc_allocator
slow_backing(void (*hook)(bool is_free))
{
	slow_hook = hook;
	return (beamalloc_allocator){ NULL, &slow_vt };
}

#endif /* T_SLOWBACKING_H */
