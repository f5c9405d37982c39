/*
 * locked.c - any allocator behind one mutex (Zig's ThreadSafeAllocator),
 * so that allocators made for one thread (an arena, a fixed buffer, a
 * pool) can be shared.  The mutex lives in the caller's struct, in bytes
 * sized at compile time, so the public header needs no <pthread.h>.
 */
#include <pthread.h>

#include "internal.h"

_Static_assert(sizeof(pthread_mutex_t) <=
    sizeof(((beamalloc_locked *)0)->lock_),
    "beamalloc_locked has no room for a pthread_mutex_t");
_Static_assert(_Alignof(pthread_mutex_t) <=
    _Alignof(beamalloc_locked), "beamalloc_locked is under-aligned");

static inline pthread_mutex_t *
mutex(beamalloc_locked *l)
{
	return (pthread_mutex_t *)(void *)l->lock_.bytes;
}

/* POSIX lets a successful call change errno: keep the child's. */
static inline void
unlock(beamalloc_locked *l)
{
	int err = errno;

	pthread_mutex_unlock(mutex(l));
	errno = err;
}

/* ------------------------------------------------------------------------
 * Vtable: each call to the child under the lock; errno survives unlock.
 * ---------------------------------------------------------------------- */

static void *
locked_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_locked *l = ctx;
	void *p;

	pthread_mutex_lock(mutex(l));
	p = ba_raw_alloc(l->child, len, align, ra);
	unlock(l);
	return p;
}

static bool
locked_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_locked *l = ctx;
	bool done;

	pthread_mutex_lock(mutex(l));
	done = ba_raw_resize(l->child, mem, len, align, new_len, ra);
	unlock(l);
	return done;
}

static void *
locked_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_locked *l = ctx;
	void *p;

	pthread_mutex_lock(mutex(l));
	p = ba_raw_remap(l->child, mem, len, align, new_len, ra);
	unlock(l);
	return p;
}

static void
locked_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_locked *l = ctx;

	pthread_mutex_lock(mutex(l));
	ba_raw_free(l->child, mem, len, align, ra);
	unlock(l);
}

const beamalloc_vtable ba_locked_vtable = {
	locked_alloc, locked_resize, locked_remap, locked_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

int
beamalloc_locked_init(beamalloc_locked *l, beamalloc_allocator child)
{
	l->child = ba_set(child);
	return pthread_mutex_init(mutex(l), NULL);
}

beamalloc_allocator
beamalloc_locked_allocator(beamalloc_locked *l)
{
	beamalloc_allocator a = { l, &ba_locked_vtable };

	return l != NULL ? a : ba_empty_allocator();
}

void
beamalloc_locked_destroy(beamalloc_locked *l)
{
	if (l != NULL)
		pthread_mutex_destroy(mutex(l));
}
