/*
 * fixed.c - bump allocation out of one caller-provided buffer (Zig's
 * FixedBufferAllocator).  No backing allocator: when the buffer is full,
 * allocation fails with ENOMEM and leaves the buffer as it was.
 */
#define _GNU_SOURCE	/* pthread_getattr_np */
#include <string.h>

#include "bump.h"

#if defined(BA_ASAN) || defined(HAVE_VALGRIND_MEMCHECK_H)
#include <pthread.h>
#endif

/* ------------------------------------------------------------------------
 * The buffer is the caller's.  Memory checkers (ASan, valgrind) are told
 * which bytes are handed out only for a buffer off the calling thread's
 * stack: a stack buffer's marks would outlive its scope, whose stack slot
 * the compiler gives to later variables of the same frame (see bump.h).
 * ---------------------------------------------------------------------- */

#if defined(BA_ASAN) || defined(HAVE_VALGRIND_MEMCHECK_H)
/* The calling thread's stack, asked once per thread: for the main thread
 * glibc reads /proc/self/maps, too slow for a stack fallback made at
 * every call of a function under a checker. */
static __thread uintptr_t stack_lo;
static __thread size_t stack_len;	/* 0: not known yet */

static bool
on_stack(const void *buf)
{
	pthread_attr_t at;
	void *lo;
	size_t n;

	if (stack_len == 0 && pthread_getattr_np(pthread_self(), &at) == 0) {
		if (pthread_attr_getstack(&at, &lo, &n) == 0) {
			stack_lo = (uintptr_t)lo;
			stack_len = n;
		}
		pthread_attr_destroy(&at);
	}
	/* When in doubt, never tell. */
	return stack_len == 0 || (uintptr_t)buf - stack_lo < stack_len;
}
#endif

static bool
may_poison(const void *buf)
{
#if defined(BA_ASAN)
	return !on_stack(buf);
#elif defined(HAVE_VALGRIND_MEMCHECK_H)
	/* Outside valgrind nothing is told: no need to ask (the main
	 * thread's stack is read from /proc/self/maps). */
	return BA_UNLIKELY(ba_under_valgrind) && !on_stack(buf);
#else
	(void)buf;
	return false;
#endif
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
fixed_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_fixed *fb = ctx;
	void *p = ba_bump_alloc(&fb->ptr, &fb->last, fb->end, len, align,
	    fb->poison);

	(void)ra;
	return p != NULL ? p : ba_fail(ENOMEM);
}

static bool
fixed_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_fixed *fb = ctx;

	(void)align, (void)ra;
	return ba_bump_resize(&fb->ptr, fb->last, fb->end, mem, len, new_len,
	    fb->poison);
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
	ba_bump_free(&fb->ptr, &fb->last, mem, len, fb->poison);
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
	fb->last = NULL;
	/* No arithmetic on NULL: a NULL buffer is an empty one. */
	fb->end = buf != NULL ? fb->start + len : NULL;
	fb->poison = buf != NULL && may_poison(buf);
	if (buf != NULL)
		ba_region_close(buf, len, fb->poison);
}

beamalloc_allocator
beamalloc_fixed_allocator(beamalloc_fixed *fb)
{
	beamalloc_allocator a = { fb, &ba_fixed_vtable };

	return fb != NULL ? a : ba_empty_allocator();
}

void
beamalloc_fixed_reset(beamalloc_fixed *fb)
{
	if (fb->start == NULL)
		return;
	ba_region_close(fb->start, (size_t)(fb->ptr - fb->start), fb->poison);
	fb->ptr = fb->start;
	fb->last = NULL;
}

/* ------------------------------------------------------------------------
 * 0.1's ABI (internal.h): a beamalloc_fixed without last.  Each call
 * works on a full copy, whose last is the block ending at ptr, as 0.1
 * judged the last block, and writes 0.1's fields back.
 * ---------------------------------------------------------------------- */

#ifdef BA_ABI01
static void
abi01_in(beamalloc_fixed *fb, const void *ctx, void *mem)
{
	memcpy(fb, ctx, BA_ABI01_FIXED_SIZE);
	fb->last = ba_bump_abi01_last(fb->start, fb->ptr, mem);
}

static void *
abi01_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_fixed fb;
	void *p;

	abi01_in(&fb, ctx, NULL);
	p = fixed_alloc(&fb, len, align, ra);
	memcpy(ctx, &fb, BA_ABI01_FIXED_SIZE);
	return p;
}

static bool
abi01_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_fixed fb;
	bool ok;

	abi01_in(&fb, ctx, mem);
	ok = fixed_resize(&fb, mem, len, align, new_len, ra);
	memcpy(ctx, &fb, BA_ABI01_FIXED_SIZE);
	return ok;
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
	beamalloc_fixed fb;

	abi01_in(&fb, ctx, mem);
	fixed_free(&fb, mem, len, align, ra);
	memcpy(ctx, &fb, BA_ABI01_FIXED_SIZE);
}

const beamalloc_vtable ba_abi01_fixed_vtable = {
	abi01_alloc, abi01_resize, abi01_remap, abi01_free
};

BA_ABI01_ENTRY(ba_abi01_fixed_init, beamalloc_fixed_init);
void
ba_abi01_fixed_init(beamalloc_fixed *fb, void *buf, size_t len)
{
	beamalloc_fixed full;

	beamalloc_fixed_init(&full, buf, len);
	memcpy(fb, &full, BA_ABI01_FIXED_SIZE);
}

BA_ABI01_ENTRY(ba_abi01_fixed_allocator, beamalloc_fixed_allocator);
beamalloc_allocator
ba_abi01_fixed_allocator(beamalloc_fixed *fb)
{
	beamalloc_allocator a = { fb, &ba_abi01_fixed_vtable };

	return fb != NULL ? a : ba_empty_allocator();
}

BA_ABI01_ENTRY(ba_abi01_fixed_reset, beamalloc_fixed_reset);
void
ba_abi01_fixed_reset(beamalloc_fixed *fb)
{
	beamalloc_fixed full;

	abi01_in(&full, fb, NULL);
	beamalloc_fixed_reset(&full);
	memcpy(fb, &full, BA_ABI01_FIXED_SIZE);
}
#endif
