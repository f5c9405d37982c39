/*
 * internal.h - what the allocators of libbeamalloc share.  Private: never
 * installed.  Everything declared here has hidden visibility.
 */
#ifndef BEAMALLOC_INTERNAL_H
#define BEAMALLOC_INTERNAL_H

#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "beamalloc.h"

#define BA_HIDDEN __attribute__((visibility("hidden")))
#define BA_LIKELY(x) __builtin_expect(!!(x), 1)
#define BA_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* The address our caller returns to: names the user's call site. */
#define BA_RET_ADDR() ((uintptr_t)__builtin_return_address(0))

/* A NULL from a vtable means out of memory unless the allocator said
 * otherwise: foreign allocators need not set errno. */
static inline void *
ba_fail_from_vtable(void)
{
	if (errno != EINVAL && errno != ENOMEM)
		errno = ENOMEM;
	return NULL;
}

static inline bool
ba_is_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static inline uintptr_t
ba_align_forward(uintptr_t x, size_t align)
{
	return (x + (align - 1)) & ~(uintptr_t)(align - 1);
}

static inline size_t
ba_max(size_t a, size_t b)
{
	return a > b ? a : b;
}

static inline size_t
ba_min(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* a + b as a length to ask a backing allocator for: false when the sum
 * overflows or passes PTRDIFF_MAX, the front end's own limit, so that no
 * backing ever sees a length a caller could not have asked for. */
static inline bool
ba_add_len(size_t a, size_t b, size_t *sum)
{
	return !__builtin_add_overflow(a, b, sum) &&
	    *sum <= (size_t)PTRDIFF_MAX;
}

/* Fail an allocation: NULL with errno set. */
static inline void *
ba_fail(int err)
{
	errno = err;
	return NULL;
}

/* Call a vtable directly (no front-end checks); ret_addr passed through. */
static inline void *
ba_raw_alloc(beamalloc_allocator a, size_t len, size_t align, uintptr_t ra)
{
	return a.vtable->alloc(a.ctx, len, align, ra);
}

static inline bool
ba_raw_resize(beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	return a.vtable->resize(a.ctx, mem, len, align, new_len, ra);
}

static inline void *
ba_raw_remap(beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	return a.vtable->remap(a.ctx, mem, len, align, new_len, ra);
}

static inline void
ba_raw_free(beamalloc_allocator a, void *mem, size_t len, size_t align,
    uintptr_t ra)
{
	a.vtable->free(a.ctx, mem, len, align, ra);
}

/* Report through the process-wide default handler of
 * beamalloc_report_set_default() (report.c), then abort() if it says so;
 * for allocators that have no report config of their own. */
BA_HIDDEN void ba_report_default(const beamalloc_report *r);
/* Canaries (gpa/check.c): the byte after a block's requested length,
 * and how many of those bytes a GPA checks at most; whether every byte
 * of [p, p + n) is v; whether a is a GPA with canary on (the wide
 * allocator over it checks its blocks' tails). */
#define BA_CANARY_BYTE 0xfb
#define BA_CANARY_MAX 32
BA_HIDDEN bool ba_bytes_are(const void *p, size_t n, unsigned char v);
BA_HIDDEN bool ba_gpa_has_canary(const beamalloc_allocator *a);

/* The same for a bad call naming mem: the block's recorded size and
 * alignment (0 if unknown), those the caller gave, its call site. */
BA_HIDDEN void ba_report_call(beamalloc_report_kind kind, const void *mem,
    size_t size, size_t align, size_t given_size, size_t given_align,
    uintptr_t ra);

/* Reports' text (report.c, symbolize.c): a code address as "0x... f
 * (file.c:12)" or what is known of it, and a numbered trace under a
 * title; symbolized, for reports only. */
BA_HIDDEN void ba_print_pc(FILE *f, uintptr_t a);
BA_HIDDEN void ba_print_trace(FILE *f, const char *title, const uintptr_t *t,
    size_t n);
/* Drop what the symbolizer read (at exit; in a forked child before
 * _exit(), which runs no destructor). */
BA_HIDDEN void ba_symbols_release(void);
/* symbolize.c: its fork handler registered, once (before the GPAs':
 * exit.c). */
BA_HIDDEN void ba_symbols_fork_init(void);
/* How many leading frames of a frame-pointer trace are its callers
 * (symbolize.c; for reports only). */
BA_HIDDEN size_t ba_trace_walkable(const uintptr_t *t, size_t n);

/* native.c: beamalloc_native_align() for the allocators below the
 * front-end (a backing's alignment), and the allocators it knows. */
BA_HIDDEN size_t ba_native_align(beamalloc_allocator a);
BA_HIDDEN extern const beamalloc_vtable ba_base_vtable;	/* base.c */
BA_HIDDEN extern const beamalloc_vtable ba_wide_vtable;	/* wide.c */
/* wide.c: at unload, the registry's table goes if empty (global.c). */
BA_HIDDEN void ba_wide_fini(void);
/* wide.c: its fork handler registered, once (before the GPAs': exit.c). */
BA_HIDDEN void ba_wide_fork_init(void);
BA_HIDDEN extern const beamalloc_allocator ba_beam_allocator; /* base.c */
BA_HIDDEN size_t ba_base_native_align(const void *ctx);	/* base.c */
BA_HIDDEN extern const beamalloc_vtable ba_arena_vtable;	/* arena.c */
BA_HIDDEN extern const beamalloc_vtable ba_fixed_vtable;	/* fixed.c */
BA_HIDDEN extern const beamalloc_vtable ba_failing_vtable; /* failing.c */
BA_HIDDEN extern const beamalloc_vtable ba_pool_vtable;	/* pool.c */
/* The allocator with no memory, for a constructor given NULL (empty.c). */
BA_HIDDEN beamalloc_allocator ba_empty_allocator(void);
/* The same for an allocator never set ({0}), failing with EINVAL: its
 * vtable, with any ctx but the empty allocator's. */
BA_HIDDEN extern const beamalloc_vtable ba_empty_vtable;
BA_HIDDEN extern const beamalloc_allocator ba_unset;

/* An allocator never set (all zero: a static one used before the code that
 * sets it ran) is called as the unset one, not through a NULL vtable.
 * Only the vtable is chosen, a select of one register: in callgrind 7
 * instructions more a pair through the front-end's indirect calls (glibc
 * 216 -> 223), 2 for the GPAs it calls straight; a branch to a cold call
 * instead moved registers on the straight line and cost 9 to 12. */
static inline beamalloc_allocator
ba_set(beamalloc_allocator a)
{
	if (BA_UNLIKELY(a.vtable == NULL))
		a.vtable = &ba_empty_vtable;
	return a;
}

/* The same for a backing named by pointer (beamalloc_wide_on()). */
static inline const beamalloc_allocator *
ba_set_at(const beamalloc_allocator *b)
{
	return BA_LIKELY(b != NULL && b->vtable != NULL) ? b : &ba_unset;
}
/* Wrappers whose ctx starts with the allocator they pass calls to. */
BA_HIDDEN extern const beamalloc_vtable ba_stackfb_vtable; /* stackfb.c */
BA_HIDDEN extern const beamalloc_vtable ba_locked_vtable;	/* locked.c */
BA_HIDDEN extern const beamalloc_vtable ba_logging_vtable; /* logging.c */
BA_HIDDEN bool ba_gpa_vtable_is(const beamalloc_vtable *v); /* gpa/alloc.c */
BA_HIDDEN size_t ba_gpa_native_align(const void *ctx); /* gpa/alloc.c */

/* The zero-length pointer of the front-end: non-NULL, aligned, never
 * dereferenced (Zig's alignBackward(maxInt(usize), align)). */
static inline void *
ba_zero_ptr(size_t align)
{
	return (void *)(UINTPTR_MAX & ~(uintptr_t)(align - 1));
}

/* options.c: BEAMALLOC_GPA_OPTIONS over cfg's defaults (parsed once);
 * BEAMALLOC_GPA_TRACES into *depth, if set and good. */
BA_HIDDEN void ba_options_apply(beamalloc_gpa_config *cfg);
BA_HIDDEN bool ba_options_traces(unsigned *depth);

/* ------------------------------------------------------------------------
 * 0.1's ABI.  A program built against 0.1's header has shorter
 * beamalloc_gpa_config, beamalloc_fixed, beamalloc_failing and
 * beamalloc_report structs than this version writes and reads.  Its
 * references carry no symbol version and bind to the oldest,
 * BEAMALLOC_0.1 (lib/beamalloc.map): for the functions that take those
 * structs, and for beamalloc_arena_allocator (0.1's arena gave back any
 * block ending at its top), entry points that touch 0.1's fields only,
 * or keep 0.1's rule (each named
 * ba_abi01_*, at the end of its allocator's file, exported as
 * NAME@BEAMALLOC_0.1).  A program built now binds to NAME@@BEAMALLOC_0.2.
 * Shared library only: mk/localize-archive.sh drops them from the static
 * archive, which is linked with the header it came with.
 * ---------------------------------------------------------------------- */
#ifdef BA_ABI01
#define BA_ABI01_ENTRY(fn, name) \
	__asm__(".symver " #fn ", " #name "@BEAMALLOC_0.1"); \
	__attribute__((visibility("default"))) __typeof__(name) fn
/* 0.1's length of each struct: its fields came first. */
#define BA_ABI01_CONFIG_SIZE offsetof(beamalloc_gpa_config, trace_sample)
#define BA_ABI01_FIXED_SIZE offsetof(beamalloc_fixed, last)
#define BA_ABI01_FAILING_SIZE offsetof(beamalloc_failing, fail_trace_len)
#define BA_ABI01_REPORT_SIZE offsetof(beamalloc_report, not_sampled)
/* The vtables behind 0.1's allocators, which ba_native_align() knows. */
BA_HIDDEN extern const beamalloc_vtable ba_abi01_fixed_vtable;
BA_HIDDEN extern const beamalloc_vtable ba_abi01_failing_vtable;
BA_HIDDEN extern const beamalloc_vtable ba_abi01_arena_vtable;
#endif

#endif /* BEAMALLOC_INTERNAL_H */
