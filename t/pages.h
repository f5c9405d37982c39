/*
 * pages.h - a backing allocator of whole pages for white-box tests
 * (header-only): each block is mapped on pages of its own, so that a test
 * can make one block's pages read-only or unreadable and know that nothing
 * else is on them (t/gpa_going, t/gpa_partial, t/gpa_scan).  Blocks
 * neither grow nor shrink in place, nor move.
 */
#ifndef BEAMALLOC_T_PAGES_H
#define BEAMALLOC_T_PAGES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "beamalloc.h"

#define PAGE 4096

static inline size_t
pages(size_t len)
{
	return (len + PAGE - 1) & ~(size_t)(PAGE - 1);
}

/* len bytes on pages of their own, with prot; NULL when none. */
static inline void *
pages_map(size_t len, int prot)
{
	void *p = mmap(NULL, pages(len), prot, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline void *
pages_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	return align <= PAGE ? pages_map(len, PROT_READ | PROT_WRITE) : NULL;
}

static inline bool
pages_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static inline void *
pages_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static inline void
pages_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	munmap(mem, pages(len));
}

#endif
