/*
 * bump.h - the bump-pointer core shared by the arena (one chunk at a
 * time) and the fixed buffer.  Private.
 *
 * A region [*ptr, end) is carved from the bottom.  The last block is the
 * one ending at *ptr (after a free, the one before it becomes last): only
 * it can grow, and freeing it gives its bytes back.  Other frees keep
 * their bytes until the owner resets.
 *
 * Memory checkers see bump blocks as regions of their chunk, never as
 * malloc-like blocks: a reset drops every block at once, which valgrind's
 * MALLOCLIKE/FREELIKE cannot express (handing out an address still
 * "live" makes memcheck's leak check abort).  So a block is made
 * addressable but undefined when handed out and inaccessible when freed,
 * shrunk or reset: overruns and use after free/reset are still caught.
 *
 * ASan poisoning is optional (asan argument): it suits chunks the owner
 * opens again before giving them back, not caller memory such as a fixed
 * buffer on the stack, whose poison ASan would leave behind for later
 * frames.  Valgrind marks reused stack afresh, so it is always told.
 */
#ifndef BEAMALLOC_BUMP_H
#define BEAMALLOC_BUMP_H

#include "internal.h"
#include "tools.h"

#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
/* A client request costs about a nanosecond even outside valgrind, as
 * much as the bump itself: ask once, at load (arena.c). */
BA_HIDDEN extern bool ba_under_valgrind;
#define BA_VG_UNDEFINED(p, n) do { if (BA_UNLIKELY(ba_under_valgrind)) \
	VALGRIND_MAKE_MEM_UNDEFINED((p), (n)); } while (0)
#define BA_VG_CLOSE(p, n) do { if (BA_UNLIKELY(ba_under_valgrind)) \
	BA_VG_NOACCESS((p), (n)); } while (0)
#else
#define BA_VG_UNDEFINED(p, n) ((void)(p), (void)(n))
#define BA_VG_CLOSE(p, n) ((void)(p), (void)(n))
#endif

/* Bytes become usable (contents undefined) / untouchable. */
static inline void
ba_region_open(void *p, size_t n, bool asan)
{
	if (asan)
		BA_ASAN_UNPOISON(p, n);
	BA_VG_UNDEFINED(p, n);
}

static inline void
ba_region_close(void *p, size_t n, bool asan)
{
	if (asan)
		BA_ASAN_POISON(p, n);
	BA_VG_CLOSE(p, n);
}

/* Padding that brings p up to align. */
static inline size_t
ba_bump_pad(const unsigned char *p, size_t align)
{
	return (size_t)(-(uintptr_t)p & (uintptr_t)(align - 1));
}

/* Whether len bytes at align fit in [p, end). */
static inline bool
ba_bump_fits(const unsigned char *p, const unsigned char *end, size_t len,
    size_t align)
{
	size_t pad = ba_bump_pad(p, align), room = (size_t)(end - p);

	return pad <= room && len <= room - pad;
}

/* len bytes at align from [*ptr, end), or NULL when they do not fit. */
static inline void *
ba_bump_alloc(unsigned char **ptr, unsigned char *end, size_t len,
    size_t align, bool asan)
{
	unsigned char *p = *ptr;

	if (BA_UNLIKELY(!ba_bump_fits(p, end, len, align)))
		return NULL;
	p += ba_bump_pad(p, align);
	*ptr = p + len;
	ba_region_open(p, len, asan);
	return p;
}

static inline bool
ba_bump_is_last(const unsigned char *ptr, const void *mem, size_t len)
{
	return (const unsigned char *)mem + len == ptr;
}

/* In place: the last block grows up to end or shrinks, giving bytes back;
 * any other block can only shrink, keeping its bytes. */
static inline bool
ba_bump_resize(unsigned char **ptr, unsigned char *end, void *mem,
    size_t len, size_t new_len, bool asan)
{
	unsigned char *p = mem;

	if (!ba_bump_is_last(*ptr, p, len)) {
		if (new_len > len)
			return false;
		ba_region_close(p + new_len, len - new_len, asan);
		return true;
	}
	if (new_len > len) {
		if (new_len - len > (size_t)(end - *ptr))
			return false;
		ba_region_open(p + len, new_len - len, asan);
	} else
		ba_region_close(p + new_len, len - new_len, asan);
	*ptr = p + new_len;
	return true;
}

static inline void
ba_bump_free(unsigned char **ptr, void *mem, size_t len, bool asan)
{
	if (ba_bump_is_last(*ptr, mem, len))
		*ptr = mem;
	ba_region_close(mem, len, asan);
}

#endif /* BEAMALLOC_BUMP_H */
