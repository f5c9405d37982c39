/*
 * frontend.c - the functions callers use.  They enforce the rules every
 * allocator relies on (no zero lengths, power-of-two alignments, no size
 * overflow), so vtables only ever see valid requests, and they give every
 * failure an errno.
 */
/* GCC merges identical tails of the inlined fast paths (cross-jumping):
 * one path then jumps to a tail that gpa-fast's falls into (4-6% of a
 * pair64 or lifo1000 pair, timed: bench/README.md).
 * Before the headers: the fast paths are inlined from gpa.h. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-crossjumping")
#endif

#include <string.h>

#include "gpa/gpa.h"

/* Lengths above PTRDIFF_MAX can never be served (pointer differences
 * inside the block would overflow); refuse them before any vtable. */
#define BA_MAX_LEN ((size_t)PTRDIFF_MAX)

/* Inlined into each entry point: one jump less per call. */
static inline __attribute__((always_inline)) void *
alloc_at(beamalloc_allocator a, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	if (BA_UNLIKELY(!ba_is_pow2(align)))
		return ba_fail(EINVAL);
	if (BA_UNLIKELY(len == 0))
		return ba_zero_ptr(align);
	if (BA_UNLIKELY(len > BA_MAX_LEN))
		return ba_fail(ENOMEM);
	/* The library's own thread-safe GPAs (the global one among them)
	 * are called straight, with no indirect call; they set errno
	 * themselves.  Off the straight line, so that other allocators pay
	 * only the compares (one instruction each: ba_gpa_fvt).  gpa-fast's
	 * first, the one with safety (the global GPA's: checked third, it
	 * took 13% longer on pair64, timed), then the same as the first
	 * with sampled traces (their price: the compares and the record's
	 * trace id).  Guarded sampling has gpa-fast's (or gpa-safe's). */
	if (BA_UNLIKELY(a.vtable == ba_gpa_fvt[BA_FVT_TS]))
		return ba_gpa_fast_alloc(a.ctx, len, align, ra, true, false,
		    false);
	if (BA_UNLIKELY(a.vtable == ba_gpa_fvt[BA_FVT_TS_SAFE]))
		return ba_gpa_fast_alloc(a.ctx, len, align, ra, true, true,
		    false);
	if (BA_UNLIKELY(a.vtable == ba_gpa_fvt[BA_FVT_SAMPLED]))
		return ba_gpa_fast_alloc(a.ctx, len, align, ra, true, false,
		    BA_SMP_TRACE);
	p = ba_raw_alloc(ba_set(a), len, align, ra);
	return BA_LIKELY(p != NULL) ? p : ba_fail_from_vtable();
}

static inline __attribute__((always_inline)) void
free_at(beamalloc_allocator a, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	void (*f)(void *, void *, size_t, size_t, uintptr_t);

	/* Zero-length blocks and NULL were never given to a vtable.
	 * Unlikely, so that the common case falls through to the call. */
	if (BA_UNLIKELY(len == 0 || mem == NULL || !ba_is_pow2(align)))
		return;
	/* Only the GPAs without safety checks are inlined here: the
	 * checks' registers would make every other allocator's free save
	 * and restore one.  Told apart by their free function, which
	 * gpa-fast and guarded sampling share, and which the others' call
	 * loads anyway (a tail jump). */
	f = ba_set(a).vtable->free;
	if (BA_UNLIKELY(f == ba_gpa_ffree[BA_FFREE_TS]))
		ba_gpa_fast_free(a.ctx, mem, len, align, ra, true, false, false);
	else if (BA_UNLIKELY(f == ba_gpa_ffree[BA_FFREE_SAMPLED]))
		ba_gpa_fast_free(a.ctx, mem, len, align, ra, true, false, true);
	else
		f(a.ctx, mem, len, align, ra);
}

void *
beamalloc_alloc(beamalloc_allocator a, size_t len)
{
	return alloc_at(a, len, BEAMALLOC_MIN_ALIGN, BA_RET_ADDR());
}

void *
beamalloc_alloc_aligned(beamalloc_allocator a, size_t len, size_t align)
{
	return alloc_at(a, len, align, BA_RET_ADDR());
}

/* n*size bytes; *len tells the caller how many. */
static inline __attribute__((always_inline)) void *
array_at(beamalloc_allocator a, size_t n, size_t size, size_t align,
    uintptr_t ra, size_t *len)
{
	if (__builtin_mul_overflow(n, size, len))
		return ba_fail(ENOMEM);
	return alloc_at(a, *len, align, ra);
}

void *
beamalloc_alloc_array(beamalloc_allocator a, size_t n, size_t size,
    size_t align)
{
	size_t len;

	return array_at(a, n, size, align, BA_RET_ADDR(), &len);
}

void *
beamalloc_alloc_zeroed(beamalloc_allocator a, size_t n, size_t size,
    size_t align)
{
	size_t len;
	void *p = array_at(a, n, size, align, BA_RET_ADDR(), &len);

	if (p != NULL && len != 0)
		memset(p, 0, len);
	return p;
}

void
beamalloc_free(beamalloc_allocator a, void *mem, size_t len)
{
	free_at(a, mem, len, BEAMALLOC_MIN_ALIGN, BA_RET_ADDR());
}

void
beamalloc_free_aligned(beamalloc_allocator a, void *mem, size_t len,
    size_t align)
{
	free_at(a, mem, len, align, BA_RET_ADDR());
}

/* resize and remap tell "the allocator refused this block" (it reported
 * it: NULL or false with errno EINVAL) from "it cannot do that in place"
 * (NULL or false, errno anything else).  errno is cleared before the
 * call so that a stale EINVAL is not taken for a refusal, and put back
 * when the call succeeds. */
static inline bool
refused(void)
{
	return errno == EINVAL;
}

/* To the same length the block stays as it is, once the allocator has
 * had it to check: a resize in place, which a GPA refuses (reported,
 * EINVAL) for a freed, foreign or wrong-length block.  Any other failure
 * (an allocator that resizes nothing in place) still keeps it. */
static bool
same_len_kept(beamalloc_allocator a, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	int saved = errno;

	errno = 0;
	if (!ba_raw_resize(a, mem, len, align, len, ra) && refused())
		return false;
	errno = saved;
	return true;
}

/* NULL given with a length, which the allocator neither refused nor
 * could tell from a block (a fixed buffer, an arena check none): a
 * pointer never given out, reported as one; NULL + EINVAL. */
static void *
null_block(size_t len, size_t align, uintptr_t ra)
{
	ba_report_call(BEAMALLOC_REPORT_INVALID_FREE, NULL, 0, 0, len, align,
	    ra);
	return ba_fail(EINVAL);
}

/* The same length: the block itself, once the allocator has kept it. */
static void *
same_len_block(beamalloc_allocator a, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	if (!same_len_kept(a, mem, len, align, ra))
		return NULL;
	return BA_LIKELY(mem != NULL) ? mem : null_block(len, align, ra);
}

bool
beamalloc_resize(beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len)
{
	uintptr_t ra = BA_RET_ADDR();
	int saved;

	a = ba_set(a);
	if (!ba_is_pow2(align)) {
		errno = EINVAL;
		return false;
	}
	if (new_len == 0) {
		free_at(a, mem, len, align, ra);
		return true;
	}
	if (len == 0 || new_len > BA_MAX_LEN) {
		/* Nothing to grow in place. */
		errno = ENOMEM;
		return false;
	}
	if (new_len == len)
		return same_len_kept(a, mem, len, align, ra);
	saved = errno;
	errno = 0;
	if (ba_raw_resize(a, mem, len, align, new_len, ra)) {
		errno = saved;
		return true;
	}
	ba_fail_from_vtable();
	return false;
}

void *
beamalloc_remap(beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len)
{
	uintptr_t ra = BA_RET_ADDR();
	void *p;
	int saved;

	a = ba_set(a);
	if (!ba_is_pow2(align))
		return ba_fail(EINVAL);
	if (new_len == 0) {
		free_at(a, mem, len, align, ra);
		return ba_zero_ptr(align);
	}
	if (len == 0 || new_len > BA_MAX_LEN)
		return ba_fail(ENOMEM);
	if (new_len == len)
		return same_len_block(a, mem, len, align, ra);
	saved = errno;
	errno = 0;
	p = ba_raw_remap(a, mem, len, align, new_len, ra);
	if (p == NULL)
		return ba_fail_from_vtable();
	errno = saved;
	return p;
}

void *
beamalloc_realloc(beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len)
{
	uintptr_t ra = BA_RET_ADDR();
	void *p;
	int saved;

	a = ba_set(a);
	if (!ba_is_pow2(align))
		return ba_fail(EINVAL);
	if (len == 0)
		return alloc_at(a, new_len, align, ra);
	if (new_len == 0) {
		free_at(a, mem, len, align, ra);
		return ba_zero_ptr(align);
	}
	if (new_len > BA_MAX_LEN)
		return ba_fail(ENOMEM);
	if (new_len == len)
		return same_len_block(a, mem, len, align, ra);
	saved = errno;
	errno = 0;
	p = ba_raw_remap(a, mem, len, align, new_len, ra);
	if (p != NULL) {
		errno = saved;
		return p;
	}
	/* A block the allocator reported as bad (freed, foreign, another
	 * length): nothing is copied or freed, nor reported again. */
	if (refused())
		return NULL;
	/* NULL with a length: there is nothing to copy from (found by a
	 * review: memcpy from NULL, a crash). */
	if (BA_UNLIKELY(mem == NULL))
		return null_block(len, align, ra);
	/* The allocator cannot move it itself: copy, and only free the old
	 * block once the new one exists, so failure loses nothing. */
	p = ba_raw_alloc(a, new_len, align, ra);
	if (p == NULL)
		return ba_fail_from_vtable();
	memcpy(p, mem, ba_min(len, new_len));
	ba_raw_free(a, mem, len, align, ra);
	errno = saved;
	return p;
}

void *
beamalloc_dup(beamalloc_allocator a, const void *src, size_t len)
{
	void *p;

	/* Nothing to copy from: refused before any allocation (found by a
	 * review: a memcpy from NULL, a crash). */
	if (BA_UNLIKELY(src == NULL && len != 0))
		return ba_fail(EINVAL);
	p = alloc_at(a, len, BEAMALLOC_MIN_ALIGN, BA_RET_ADDR());

	if (p != NULL && len != 0)
		memcpy(p, src, len);
	return p;
}

size_t
beamalloc_native_align(beamalloc_allocator a)
{
	return ba_native_align(a);
}
