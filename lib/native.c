/*
 * native.c - the alignment an allocator serves without padding, as the
 * library's own allocators know it.  Below the front-end: the allocators
 * that ask it of their backing (wide, arena, pool, the GPA) call this,
 * and beamalloc_native_align() in frontend.c is its public face.
 */
#include "internal.h"

size_t
ba_native_align(beamalloc_allocator a)
{
	if (a.vtable == &ba_base_vtable)
		return ba_base_native_align(a.ctx);
	/* The arena and the fixed buffer place blocks themselves: any
	 * alignment costs them only padding, never a header. */
	if (a.vtable == &ba_wide_vtable || a.vtable == &ba_arena_vtable ||
	    a.vtable == &ba_fixed_vtable)
		return (size_t)1 << (sizeof(size_t) * 8 - 1);
#ifdef BA_ABI01
	/* 0.1's arena, fixed buffer and failing allocator (internal.h),
	 * as 0.1 answered for them. */
	if (a.vtable == &ba_abi01_arena_vtable ||
	    a.vtable == &ba_abi01_fixed_vtable)
		return (size_t)1 << (sizeof(size_t) * 8 - 1);
	if (a.vtable == &ba_abi01_failing_vtable)
		return ba_native_align(*(const beamalloc_allocator *)a.ctx);
#endif
	if (ba_gpa_vtable_is(a.vtable))
		return ba_gpa_native_align(a.ctx);
	/* Wrappers: their backing is the first member of their ctx.  The
	 * stack fallback's buffer serves any alignment, its backing may not. */
	if (a.vtable == &ba_failing_vtable || a.vtable == &ba_locked_vtable ||
	    a.vtable == &ba_logging_vtable || a.vtable == &ba_stackfb_vtable)
		return ba_native_align(*(const beamalloc_allocator *)a.ctx);
	return BEAMALLOC_MIN_ALIGN;
}
