/*
 * tools.h - tell memory checkers which bytes of our slabs and chunks are
 * live, so a use-after-free or overflow inside them is reported as it is
 * for malloc.  Valgrind (client requests, when its headers were found at
 * build time) and AddressSanitizer (poisoning, when compiled with it).
 * Everything compiles to nothing otherwise.
 *
 *   BA_TOOL_ALLOC(p, n)            block [p, p+n) handed out
 *   BA_TOOL_FREE(p, n)             block given back
 *   BA_TOOL_RESIZE(p, old, new)    block changed length in place
 *   BA_TOOL_NOACCESS(p, n)         bytes nobody may touch (fresh slab/chunk)
 *   BA_VG_QUIET_BEGIN/END()        the library's own look at such bytes
 *                                  (canaries, junk) is no error
 */
#ifndef BEAMALLOC_TOOLS_H
#define BEAMALLOC_TOOLS_H

#include "config.h"

#include <stdbool.h>

#if defined(__SANITIZE_ADDRESS__)
#define BA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BA_ASAN 1
#endif
#endif

#ifdef BA_ASAN
#include <sanitizer/asan_interface.h>
#define BA_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define BA_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define BA_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define BA_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
#include <valgrind/memcheck.h>
#define BA_VG_ALLOC(p, n) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, 0)
#define BA_VG_FREE(p, n) do { VALGRIND_FREELIKE_BLOCK((p), 0); \
	VALGRIND_MAKE_MEM_NOACCESS((p), (n)); } while (0)
#define BA_VG_RESIZE(p, o, n) VALGRIND_RESIZEINPLACE_BLOCK((p), (o), (n), 0)
#define BA_VG_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define BA_VG_MAKE_UNDEFINED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define BA_VG_QUIET_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define BA_VG_QUIET_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define BA_VG_ALLOC(p, n) ((void)(p), (void)(n))
#define BA_VG_FREE(p, n) ((void)(p), (void)(n))
#define BA_VG_RESIZE(p, o, n) ((void)(p), (void)(o), (void)(n))
#define BA_VG_NOACCESS(p, n) ((void)(p), (void)(n))
#define BA_VG_MAKE_UNDEFINED(p, n) ((void)(p), (void)(n))
#define BA_VG_QUIET_BEGIN() ((void)0)
#define BA_VG_QUIET_END() ((void)0)
#endif

/* True under valgrind's memcheck only, where the client requests mean
 * something: another tool (callgrind) answers 0 to GET_VBITS, and must
 * measure the paths a normal run takes. */
static inline bool
ba_memcheck_running(void)
{
#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
	unsigned char x = 0, v;

	return RUNNING_ON_VALGRIND && VALGRIND_GET_VBITS(&x, &v, 1) == 1;
#else
	return false;
#endif
}

#define BA_TOOL_ALLOC(p, n) do { BA_ASAN_UNPOISON((p), (n)); \
	BA_VG_ALLOC((p), (n)); } while (0)
#define BA_TOOL_FREE(p, n) do { BA_VG_FREE((p), (n)); \
	BA_ASAN_POISON((p), (n)); } while (0)
#define BA_TOOL_RESIZE(p, o, n) do { \
	if ((n) > (o)) BA_ASAN_UNPOISON((char *)(p) + (o), (n) - (o)); \
	else BA_ASAN_POISON((char *)(p) + (n), (o) - (n)); \
	BA_VG_RESIZE((p), (o), (n)); } while (0)
#define BA_TOOL_NOACCESS(p, n) do { BA_ASAN_POISON((p), (n)); \
	BA_VG_NOACCESS((p), (n)); } while (0)

#endif /* BEAMALLOC_TOOLS_H */
