/*
 * global.c - the global GPA instance behind beamalloc_general_purpose(),
 * and what the library gives back when it is unloaded.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * The global instance: over beamalloc_wide(), thread-safe, safety on,
 * as BEAMALLOC_GPA_OPTIONS says, and BEAMALLOC_GPA_TRACES (0.1's switch)
 * frames of trace when that is set.  Created on first use.
 *
 * A NIF linked with libbeamalloc.a has its own copy of the library, and
 * of this instance, and its purge dlcloses the copy: what the instance
 * held then stayed in the VM for good (found by a review: about 100 MB
 * a reload cycle, 1.5 to 2.5 MB even after a decay).  So the library's
 * destructor gives it back, but only when the library is unloaded: at
 * exit(3) other threads (the VM's schedulers) may still be inside it,
 * and the memory goes with the process anyway.  The two are told apart
 * by an atexit(3) handler, which exit(3) runs before every destructor
 * and dlclose(3) after this copy's own (from __cxa_finalize(), which
 * the copy's last destructor calls); a toolchain that ran it first
 * would only make an unload keep the memory, as before.  At an unload
 * no code of the copy may run any more, nor any thread be inside it:
 * the instance is destroyed when none of its blocks is live, and only
 * trimmed otherwise (nothing can free those blocks now, but something
 * may still use them: the VM, another library).  Code that runs even
 * later (a C++ static destructor) makes a new instance, kept for good.
 * ---------------------------------------------------------------------- */

enum { EXIT_UNKNOWN, EXIT_WATCHED, EXIT_BEGUN };

static _Atomic(beamalloc_gpa *) global_gpa;
static _Atomic int exit_state;		/* EXIT_UNKNOWN until watched */
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

static void
exit_begun(void)
{
	atomic_store_explicit(&exit_state, EXIT_BEGUN, memory_order_relaxed);
}

/* Once per copy: a second handler registered from inside the copy's
 * unloading could outlive it. */
static void
exit_watch(void)
{
	if (atexit(exit_begun) == 0)
		atomic_store_explicit(&exit_state, EXIT_WATCHED,
		    memory_order_relaxed);
}

static beamalloc_gpa *
global_new(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;

	beamalloc_gpa_config_init(&cfg);
	(void)ba_options_traces(&cfg.stack_trace_depth);
	g = beamalloc_gpa_create(beamalloc_wide(), &cfg);
	if (g != NULL)
		g->global = true;
	return g;
}

/* No lock is held while one is made (a fork meanwhile would leave it
 * held in the child): threads that race to make the first one each make
 * one, and all but the first destroy theirs. */
beamalloc_gpa *
beamalloc_gpa_global(void)
{
	beamalloc_gpa *g = atomic_load_explicit(&global_gpa,
	    memory_order_acquire), *first = NULL;

	if (BA_LIKELY(g != NULL))
		return g;
	pthread_once(&watch_once, exit_watch);
	g = global_new();
	if (g != NULL && !atomic_compare_exchange_strong_explicit(&global_gpa,
	    &first, g, memory_order_acq_rel, memory_order_acquire)) {
		g->global = false;
		(void)beamalloc_gpa_destroy(g);
		g = first;
	}
	return g;
}

/* What beamalloc_general_purpose() returns while the global GPA cannot
 * be made (its backing out of memory at the first use): an allocator
 * that tries again at each call and, once the GPA is there, serves
 * through it, so that a caller that kept it (a NIF's load) is served
 * when memory comes back.  Until then each call goes to the allocator
 * with no memory (empty.c): an allocation fails with ENOMEM, and a
 * block named to resize, remap or free, which cannot be the GPA's, is
 * reported as an invalid free and refused (EINVAL). */
static beamalloc_allocator
late(void)
{
	return beamalloc_gpa_allocator(beamalloc_gpa_global());
}

static void *
late_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator a = late();

	(void)ctx;
	return a.vtable->alloc(a.ctx, len, align, ra);
}

static bool
late_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator a = late();

	(void)ctx;
	return a.vtable->resize(a.ctx, mem, len, align, new_len, ra);
}

static void *
late_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator a = late();

	(void)ctx;
	return a.vtable->remap(a.ctx, mem, len, align, new_len, ra);
}

static void
late_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator a = late();

	(void)ctx;
	a.vtable->free(a.ctx, mem, len, align, ra);
}

static const beamalloc_vtable late_vtable = {
	late_alloc, late_resize, late_remap, late_free,
};

beamalloc_allocator
beamalloc_general_purpose(void)
{
	beamalloc_gpa *g = beamalloc_gpa_global();
	beamalloc_allocator late = { NULL, &late_vtable };

	return BA_LIKELY(g != NULL) ? beamalloc_gpa_allocator(g) : late;
}

/* The library is being unloaded (or the process ends).  In this order:
 * kept GPAs may be over the global one, whose blocks may be the wide
 * registry's last entries. */
static void __attribute__((destructor))
global_fini(void)
{
	beamalloc_gpa *g;
	beamalloc_gpa_stats st;

	ba_gpa_lease_fini();
	g = atomic_load_explicit(&global_gpa, memory_order_acquire);
	if (g != NULL && atomic_load_explicit(&exit_state,
	    memory_order_relaxed) == EXIT_WATCHED) {
		/* Exact: no other thread is inside. */
		beamalloc_gpa_get_stats(g, &st);
		if (st.live_blocks == 0) {
			atomic_store_explicit(&global_gpa, NULL,
			    memory_order_release);
			g->global = false;
			(void)beamalloc_gpa_destroy(g);
		} else
			(void)beamalloc_gpa_trim(g);
	}
	ba_wide_fini();
}
