/*
 * adapters.h - every allocator under test behind the same
 * beamalloc_allocator vtable: glibc, the malloc libraries Debian ships
 * (loaded with dlopen, called through their own prefixed functions), a
 * counting wrapper that measures what a layered allocator takes from its
 * backing.  The reference free list is in reffl.h.
 */
#ifndef BEAMALLOC_BENCH_ADAPTERS_H
#define BEAMALLOC_BENCH_ADAPTERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "beamalloc.h"

/* ---- glibc: malloc below 16, aligned_alloc above ---------------------- */
beamalloc_allocator bench_glibc(void);
size_t bench_glibc_held(void);		/* mallinfo2: arena + mmapped */
size_t bench_glibc_inuse(void);		/* mallinfo2: chunks in use + mmapped */

/* ---- dlopen'd malloc libraries ----------------------------------------- */
enum ext_id { EXT_MIMALLOC, EXT_JEMALLOC, EXT_TCMALLOC, EXT_N };

struct ext_info {
	const char *name;		/* "mimalloc" */
	const char *soname;		/* what dlopen loads */
	const char *package;		/* the Debian package shipping it */
	bool loaded;
	char why[160];			/* dlerror() when not loaded */
	char version[32];
};

/* Load all three (RTLD_LOCAL: the process's malloc stays glibc's).
 * Returns true when one failed only for lack of static TLS (jemalloc),
 * so the caller can re-exec with the tunable. */
bool bench_ext_load(void);
const struct ext_info *bench_ext_info(enum ext_id id);
beamalloc_allocator bench_ext(enum ext_id id);

/* ---- counting wrapper --------------------------------------------------- */
struct counting {
	beamalloc_allocator backing;
	atomic_size_t held;		/* bytes now taken from backing */
	atomic_size_t peak;
};

beamalloc_allocator bench_counting(struct counting *c,
    beamalloc_allocator backing);

/* ---- the GPA under test ------------------------------------------------ */
/* A GPA with no traces beyond depth, over backing. */
beamalloc_gpa *bench_gpa_new(beamalloc_allocator backing, bool safety,
    bool thread_safe, unsigned depth);
/* Destroy, telling stderr about leaks (prog: the program's name). */
void bench_gpa_done(const char *prog, const char *name, beamalloc_gpa *g);

/* Whether the dlopen'ed library is there; why not (and what to install)
 * into why. */
bool bench_ext_ready(enum ext_id id, char *why, size_t len);

/* jemalloc uses initial-exec TLS: dlopen needs room in the static TLS
 * block, which glibc gives only through a tunable read at start-up.
 * Re-executes the program with it, once; returns if that failed. */
void bench_reexec_static_tls(char **argv);

/* ---- command lines ----------------------------------------------------- */
bool bench_in_list(const char *list, const char *name);	/* "a,b,c" */

/* ---- process memory ---------------------------------------------------- */
size_t bench_rss(void);			/* resident bytes, /proc/self/statm */

#endif
