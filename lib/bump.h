/*
 * bump.h - the bump-pointer core shared by the arena (one chunk at a
 * time) and the fixed buffer.  Private.
 *
 * A region [*ptr, end) is carved from the bottom.  Only the most recent
 * allocation, the last block, can be freed or grown in place: *last is
 * where it starts, and a call must name both its start and its end
 * (*ptr), or a stale block ending at *ptr (a double free after newer
 * blocks took its place) would rewind over live ones.  A free of it
 * gives its bytes back once: *last becomes NULL, since the start of the
 * block before is not known.  Every other free or resize is a no-op
 * (a shrink reports success and keeps the bytes) until the owner resets.
 *
 * Memory checkers see bump blocks as regions of their chunk, never as
 * malloc-like blocks: a reset drops every block at once, which valgrind's
 * MALLOCLIKE/FREELIKE cannot express (handing out an address still
 * "live" makes memcheck's leak check abort).  So a block is made
 * addressable but undefined when handed out and inaccessible when freed,
 * shrunk or reset: overruns and use after free/reset are still caught.
 *
 * Telling the memory checkers is optional (tools argument): it suits
 * chunks the owner opens again before giving them back, not caller memory
 * such as a fixed buffer on the stack, whose marks neither ASan nor
 * valgrind would drop when the buffer's scope ends: the compiler gives its
 * stack slot to later variables of the same frame (a block scope, an
 * inlined function), and their correct use was reported (found by a
 * review: valgrind's "Invalid write" on a memset of a local array).
 * Valgrind marks the stack afresh only when the stack pointer moves.
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

/* Bytes become usable (contents undefined) / untouchable, to the memory
 * checkers when tools is true. */
static inline void
ba_region_open(void *p, size_t n, bool tools)
{
	if (tools) {
		BA_ASAN_UNPOISON(p, n);
		BA_VG_UNDEFINED(p, n);
	}
}

static inline void
ba_region_close(void *p, size_t n, bool tools)
{
	if (tools) {
		BA_ASAN_POISON(p, n);
		BA_VG_CLOSE(p, n);
	}
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

/* len bytes at align from [*ptr, end), or NULL when they do not fit;
 * the block becomes the last one. */
static inline void *
ba_bump_alloc(unsigned char **ptr, unsigned char **last, unsigned char *end,
    size_t len, size_t align, bool tools)
{
	unsigned char *p = *ptr;

	if (BA_UNLIKELY(!ba_bump_fits(p, end, len, align)))
		return NULL;
	p += ba_bump_pad(p, align);
	*ptr = p + len;
	*last = p;
	ba_region_open(p, len, tools);
	return p;
}

/* 0.1's rule, for its entry points (internal.h): any block of the
 * region [start, ptr] ending at ptr was the last, judged by its end alone
 * (ba_bump_is_last() then compares the end).  The last to pass. */
static inline unsigned char *
ba_bump_abi01_last(const unsigned char *start, const unsigned char *ptr,
    void *mem)
{
	unsigned char *m = mem;

	return m != NULL && m >= start && m <= ptr ? m : NULL;
}

/* Compared as a distance: mem + len would be arithmetic on NULL (no last
 * block; a NULL given with a length) or past the region (a wrong length
 * near SIZE_MAX), undefined either way. */
static inline bool
ba_bump_is_last(const unsigned char *ptr, const unsigned char *last,
    const void *mem, size_t len)
{
	return last != NULL && mem == last && (size_t)(ptr - last) == len;
}

/* In place: the last block grows up to end or shrinks, giving bytes back.
 * Any other block "shrinks" untouched: it may be stale, its bytes another
 * block's, so nothing is poisoned. */
static inline bool
ba_bump_resize(unsigned char **ptr, const unsigned char *last,
    unsigned char *end, void *mem, size_t len, size_t new_len, bool tools)
{
	unsigned char *p = mem;

	if (!ba_bump_is_last(*ptr, last, p, len))
		return new_len <= len;
	if (new_len > len) {
		if (new_len - len > (size_t)(end - *ptr))
			return false;
		ba_region_open(p + len, new_len - len, tools);
	} else
		ba_region_close(p + new_len, len - new_len, tools);
	*ptr = p + new_len;
	return true;
}

/* Only the last block is given back (and closed to memory checkers):
 * any other may be stale, overlapping live blocks. */
static inline void
ba_bump_free(unsigned char **ptr, unsigned char **last, void *mem,
    size_t len, bool tools)
{
	if (!ba_bump_is_last(*ptr, *last, mem, len))
		return;
	*ptr = mem;
	*last = NULL;
	ba_region_close(mem, len, tools);
}

#endif /* BEAMALLOC_BUMP_H */
