/*
 * under.h - is this test running under a memory or thread checker?
 * (header-only).  Tests skip, with the reason, the checks a checker
 * cannot take part in: a probe of the byte past a block (an error to
 * valgrind), RLIMIT_AS (the checker keeps its own address space), a
 * fork among threads (a checker's own allocator, its lock limits).
 *
 *   UNDER_VALGRIND()  nonzero when run by valgrind (asked at run time)
 *   UNDER_ASAN        1 in an AddressSanitizer build, else 0
 *   UNDER_TSAN        1 in a ThreadSanitizer build, else 0
 *
 * Include "config.h" first: HAVE_VALGRIND_MEMCHECK_H comes from it.
 */
#ifndef BEAMALLOC_T_UNDER_H
#define BEAMALLOC_T_UNDER_H

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND() 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#endif
