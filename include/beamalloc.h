/*
 * beamalloc.h - Zig-style allocators for C and Erlang NIFs.
 *
 * An allocator is a fat pointer: a context plus a shared, constant vtable.
 * Every allocator in this library (the BEAM's enif_alloc, libc, the wide
 * alignment allocator, the general purpose allocator, arenas ...) is used
 * through the same front-end functions and composes with the others.
 *
 * See beamalloc(3) for the overview and one page per family.
 */
#ifndef BEAMALLOC_H
#define BEAMALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BEAMALLOC_MALLOC stays empty: __attribute__((malloc)) promises that the
 * block aliases nothing the caller can reach, which is false for a fixed
 * buffer over caller memory (GCC -O2 then drops stores through it). */
#if defined(__GNUC__)
#define BEAMALLOC_API __attribute__((visibility("default")))
#define BEAMALLOC_MALLOC
#define BEAMALLOC_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define BEAMALLOC_API
#define BEAMALLOC_MALLOC
#define BEAMALLOC_WARN_UNUSED
#endif

#define BEAMALLOC_VERSION "0.2.0"

/* ------------------------------------------------------------------------
 * The interface
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_vtable {
	/* Return len bytes aligned to align (a power of two), or NULL. len > 0. */
	void *(*alloc)(void *ctx, size_t len, size_t align, uintptr_t ret_addr);
	/* Change the block's length in place; true on success, never moves. */
	bool (*resize)(void *ctx, void *mem, size_t len, size_t align,
	    size_t new_len, uintptr_t ret_addr);
	/* Like resize but may move; NULL means "caller should alloc+copy+free". */
	void *(*remap)(void *ctx, void *mem, size_t len, size_t align,
	    size_t new_len, uintptr_t ret_addr);
	/* len and align are those of the last successful alloc/resize/remap. */
	void (*free)(void *ctx, void *mem, size_t len, size_t align,
	    uintptr_t ret_addr);
} beamalloc_vtable;

typedef struct beamalloc_allocator {
	void *ctx;
	const beamalloc_vtable *vtable;	/* shared, constant */
} beamalloc_allocator;			/* passed by value, two words */

#define BEAMALLOC_MIN_ALIGN 8		/* alignment of beamalloc_alloc() */

/* ------------------------------------------------------------------------
 * Front-end: the functions callers use.  Zero lengths never reach a
 * vtable; failures return NULL (false) and set errno to ENOMEM or EINVAL.
 * ---------------------------------------------------------------------- */

BEAMALLOC_API BEAMALLOC_MALLOC void *beamalloc_alloc(beamalloc_allocator a,
    size_t len);
BEAMALLOC_API BEAMALLOC_MALLOC void *beamalloc_alloc_aligned(
    beamalloc_allocator a, size_t len, size_t align);
BEAMALLOC_API BEAMALLOC_MALLOC void *beamalloc_alloc_array(
    beamalloc_allocator a, size_t n, size_t size, size_t align);
BEAMALLOC_API void beamalloc_free(beamalloc_allocator a, void *mem,
    size_t len);
BEAMALLOC_API void beamalloc_free_aligned(beamalloc_allocator a, void *mem,
    size_t len, size_t align);
BEAMALLOC_API bool beamalloc_resize(beamalloc_allocator a, void *mem,
    size_t len, size_t align, size_t new_len);
BEAMALLOC_API BEAMALLOC_WARN_UNUSED void *beamalloc_remap(
    beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len);
BEAMALLOC_API BEAMALLOC_WARN_UNUSED void *beamalloc_realloc(
    beamalloc_allocator a, void *mem, size_t len, size_t align,
    size_t new_len);
BEAMALLOC_API BEAMALLOC_MALLOC void *beamalloc_dup(beamalloc_allocator a,
    const void *src, size_t len);
/* n*size bytes at align, all zero (calloc); n*size overflow: ENOMEM. */
BEAMALLOC_API BEAMALLOC_MALLOC void *beamalloc_alloc_zeroed(
    beamalloc_allocator a, size_t n, size_t size, size_t align);

/* One object of type T, sized and aligned by its type. */
#ifdef __cplusplus
#define BEAMALLOC_CREATE(a, T) \
	(static_cast<T *>(beamalloc_alloc_aligned((a), sizeof(T), \
	    __alignof__(T))))
#else
#define BEAMALLOC_CREATE(a, T) \
	((T *)beamalloc_alloc_aligned((a), sizeof(T), __alignof__(T)))
#endif
#define BEAMALLOC_DESTROY(a, p) \
	beamalloc_free_aligned((a), (void *)(p), sizeof(*(p)), \
	    __alignof__(__typeof__(*(p))))

/* ------------------------------------------------------------------------
 * Base allocators
 * ---------------------------------------------------------------------- */

/* enif_alloc/enif_realloc/enif_free inside the BEAM, malloc outside it;
 * alignment up to 8 in both cases, EINVAL above. */
BEAMALLOC_API beamalloc_allocator beamalloc_beam(void);
/* malloc/realloc/free; alignment up to _Alignof(max_align_t). */
BEAMALLOC_API beamalloc_allocator beamalloc_libc(void);
/* True when the enif_* functions are bound (we run inside the BEAM). */
BEAMALLOC_API bool beamalloc_in_vm(void);

/* Largest alignment the allocator serves without over-allocating:
 * known for this library's allocators, BEAMALLOC_MIN_ALIGN for others. */
BEAMALLOC_API size_t beamalloc_native_align(beamalloc_allocator a);

/* ------------------------------------------------------------------------
 * Wide alignment: any power-of-two alignment by over-allocation
 * ---------------------------------------------------------------------- */

/* Over-aligned blocks are registered: a free, resize or remap naming one
 * with another length, alignment or allocator, or naming a pointer never
 * given out, is reported (beamalloc_report_set_default) and ignored;
 * resize/remap then fail with EINVAL. */
/* Over beamalloc_beam(). */
BEAMALLOC_API beamalloc_allocator beamalloc_wide(void);
/* Over *backing, which the caller keeps alive. */
BEAMALLOC_API beamalloc_allocator beamalloc_wide_on(
    const beamalloc_allocator *backing);

/* ------------------------------------------------------------------------
 * Reports: how the GPA (and the failure checker) describe what they find
 * ---------------------------------------------------------------------- */

typedef enum beamalloc_report_kind {
	BEAMALLOC_REPORT_LEAK = 1,	/* live block at leak check */
	BEAMALLOC_REPORT_DOUBLE_FREE,	/* block already freed */
	BEAMALLOC_REPORT_INVALID_FREE,	/* pointer never given out */
	BEAMALLOC_REPORT_SIZE_MISMATCH,	/* free/resize length differs */
	BEAMALLOC_REPORT_ALIGN_MISMATCH,/* free/resize alignment differs */
	BEAMALLOC_REPORT_CONCURRENT_USE,/* a GPA with thread_safe off,
					   entered by two threads at once */
	BEAMALLOC_REPORT_OVERFLOW,	/* bytes past a block's end written */
	BEAMALLOC_REPORT_WRITE_AFTER_FREE /* a freed block written to */
} beamalloc_report_kind;

typedef struct beamalloc_report {
	beamalloc_report_kind kind;
	const void *addr;		/* the block */
	size_t size;			/* its recorded length (0 if unknown;
					   a GPA without safety: the slot's) */
	size_t align;			/* its recorded alignment (0 if unknown) */
	size_t given_size;		/* length passed by the caller */
	size_t given_align;		/* alignment passed by the caller */
	uintptr_t ret_addr;		/* call site of the bad call, or 0 */
	const uintptr_t *alloc_trace;	/* allocation trace, or NULL */
	size_t alloc_trace_len;
	const uintptr_t *free_trace;	/* first free's trace, or NULL */
	size_t free_trace_len;
	/* 0.2: N when the GPA traces 1 allocation in N and this block was
	 * not among them (its traces then hold at most the call site). */
	unsigned not_sampled;
} beamalloc_report;

typedef void (*beamalloc_report_fn)(void *user, const beamalloc_report *r);

/* Write r as readable text (symbolized traces) to f; the default report. */
BEAMALLOC_API void beamalloc_report_print(FILE *f, const beamalloc_report *r);
/* Name of a report kind: "leak", "double free", ... */
BEAMALLOC_API const char *beamalloc_report_kind_name(beamalloc_report_kind k);
/* r as the same text in buf (at most len bytes, NUL-terminated when len
 * > 0); returns the text's full length, as snprintf does. */
BEAMALLOC_API size_t beamalloc_report_format(char *buf, size_t len,
    const beamalloc_report *r);

/* What debug information says of a code address (a return address, as in
 * traces: the call just before it is looked up).  Strings are "" and line
 * 0 when unknown; offset is from the function's start, or from the
 * object's when no function is known. */
typedef struct beamalloc_symbol {
	char function[128];
	char file[256];			/* source file */
	unsigned line;
	char object[256];		/* executable or shared object */
	uintptr_t offset;
} beamalloc_symbol;

/* Fill *sym for addr (libdw's DWARF lines and symbol tables when built
 * with it, else dladdr); false when nothing at all is known. */
BEAMALLOC_API bool beamalloc_symbolize(uintptr_t addr, beamalloc_symbol *sym);

/* Process-wide handler for allocators without a report config of their
 * own (the wide allocator's bad frees): fn NULL prints to stderr (the
 * default); abort_on_error makes them abort() after reporting.  Set it
 * before other threads allocate. */
BEAMALLOC_API void beamalloc_report_set_default(beamalloc_report_fn fn,
    void *user, bool abort_on_error);

/* ------------------------------------------------------------------------
 * General purpose allocator
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_gpa beamalloc_gpa;	/* opaque */

#define BEAMALLOC_GPA_MAX_TRACE 32

/* Public and extensible: always fill it with beamalloc_gpa_config_init()
 * first; struct_size lets later versions add fields at the end. */
typedef struct beamalloc_gpa_config {
	size_t struct_size;		/* sizeof(beamalloc_gpa_config) */
	unsigned stack_trace_depth;	/* frames per trace, 0 = none */
	bool safety;			/* record and verify sizes/alignments */
	bool thread_safe;		/* usable from several threads at once */
	bool abort_on_error;		/* abort() after any report but a leak */
	size_t memory_limit;		/* bytes requested, 0 = none */
	beamalloc_report_fn report;	/* NULL: beamalloc_report_print to stderr */
	void *report_user;		/* passed to report */
	/* 0.2: sampling and corruption detection, all off by default;
	 * BEAMALLOC_GPA_OPTIONS can set them too (ENVIRONMENT in
	 * the beamalloc_gpa man page). */
	unsigned trace_sample;		/* trace 1 allocation in N; 0, 1: all */
	bool canary;			/* check the bytes past each block */
	bool junk;			/* fill freed and new blocks, check */
	size_t quarantine;		/* bytes of freed blocks held back */
	unsigned guard_sample;		/* 1 block in N by a guard page; 0 off */
	/* Give free memory back every decay_ms, with no trim call (a
	 * thread of the library's does it); 0: never.  Default: 500 in
	 * the VM, 0 outside it.  Thread-safe GPAs only. */
	unsigned decay_ms;
} beamalloc_gpa_config;

/* Exact for one thread at a time, but peak_bytes of a thread-safe GPA
 * used by several threads (at once or in turns) may be off by up to
 * 256 KiB per thread. */
typedef struct beamalloc_gpa_stats {
	size_t live_bytes;		/* requested bytes now live */
	size_t peak_bytes;		/* highest live_bytes seen */
	size_t live_blocks;		/* blocks now live */
	size_t backing_bytes;		/* bytes held from the backing allocator */
} beamalloc_gpa_stats;

BEAMALLOC_API void beamalloc_gpa_config_init(beamalloc_gpa_config *cfg);
BEAMALLOC_API beamalloc_gpa *beamalloc_gpa_create(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg);
BEAMALLOC_API beamalloc_allocator beamalloc_gpa_allocator(beamalloc_gpa *gpa);
BEAMALLOC_API size_t beamalloc_gpa_detect_leaks(beamalloc_gpa *gpa);
/* Give back to the backing what the GPA does not need: the caches of
 * threads not inside it right now, every empty slab, and the freed large
 * blocks it keeps for the next.  Bytes released. */
BEAMALLOC_API size_t beamalloc_gpa_trim(beamalloc_gpa *gpa);
BEAMALLOC_API size_t beamalloc_gpa_destroy(beamalloc_gpa *gpa);
/* An empty GPA for one scope, kept for reuse: checkin detects leaks as
 * destroy does; a GPA with no leak and no report is kept, empty, for the
 * next checkout with the same backing and config.  Leak count. */
BEAMALLOC_API beamalloc_gpa *beamalloc_gpa_checkout(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg);
BEAMALLOC_API size_t beamalloc_gpa_checkin(beamalloc_gpa *gpa);
BEAMALLOC_API void beamalloc_gpa_get_stats(beamalloc_gpa *gpa,
    beamalloc_gpa_stats *stats);
/* Per size class: the small classes are 8, 16, 24 and 32 B, then four
 * per power of two (40, 48, 56, 64, 80, ... 14336, 16384 B):
 * BEAMALLOC_GPA_NCLASS of them, smallest first; a request goes to the
 * smallest class of at least len rounded up to align.  Larger blocks are
 * "large", each taken from the backing allocator on its own.  Exact
 * while no other thread uses the GPA; see beamalloc_gpa_get_stats(3). */
#define BEAMALLOC_GPA_NCLASS 40

typedef struct beamalloc_gpa_class_stats {
	size_t size;			/* slot size; 0 for the large blocks */
	size_t live_blocks;		/* blocks now live */
	size_t live_bytes;		/* their requested bytes (safety off:
					   live_blocks * size, see the man page) */
	size_t slabs;			/* slabs held (32 KiB up to 4 KiB
					   slots, 64 KiB above); 0 for
					   large */
} beamalloc_gpa_class_stats;

/* Fill cls[0 .. min(n, BEAMALLOC_GPA_NCLASS)) and, unless NULL, *large;
 * returns BEAMALLOC_GPA_NCLASS.  A pass over the records of the GPA's
 * slabs (none over its blocks). */
BEAMALLOC_API size_t beamalloc_gpa_get_class_stats(beamalloc_gpa *gpa,
    beamalloc_gpa_class_stats *cls, size_t n,
    beamalloc_gpa_class_stats *large);
/* Restart peak_bytes from the live bytes now; returns the peak before. */
BEAMALLOC_API size_t beamalloc_gpa_reset_peak(beamalloc_gpa *gpa);
BEAMALLOC_API beamalloc_gpa *beamalloc_gpa_global(void);
BEAMALLOC_API beamalloc_allocator beamalloc_general_purpose(void);

/* ------------------------------------------------------------------------
 * Arena: bump allocation, free everything at once
 * ---------------------------------------------------------------------- */

/* Chunks (and the arena's own header, inside the first one) come from
 * backing, growing geometrically; any alignment is served by placement
 * inside a chunk.  Only the most recent allocation can be freed or grown
 * in place; a free of it gives its bytes back once, and the block before
 * it does not become freeable.  Every other free or resize is a no-op (a
 * shrink succeeds, keeping the bytes).  reset() keeps every chunk for
 * reuse, destroy() gives each back.  Not thread-safe. */
typedef struct beamalloc_arena beamalloc_arena;	/* opaque */

/* NULL + ENOMEM when backing cannot give the first chunk (4 KiB), EINVAL
 * when backing was never set ({0}). */
BEAMALLOC_API beamalloc_arena *beamalloc_arena_create(
    beamalloc_allocator backing);
BEAMALLOC_API beamalloc_allocator beamalloc_arena_allocator(
    beamalloc_arena *arena);
BEAMALLOC_API void beamalloc_arena_reset(beamalloc_arena *arena);
BEAMALLOC_API void beamalloc_arena_destroy(beamalloc_arena *arena);
/* Bytes held from the backing allocator. */
BEAMALLOC_API size_t beamalloc_arena_capacity(const beamalloc_arena *arena);

/* Zig's ResetMode.  FREE_ALL gives back every chunk but the first (which
 * holds the arena); RETAIN_CAPACITY is beamalloc_arena_reset();
 * RETAIN_WITH_LIMIT keeps chunks while their sizes sum to at most limit
 * bytes (the first always) and gives back the others. */
typedef enum beamalloc_arena_reset_mode {
	BEAMALLOC_ARENA_FREE_ALL = 0,
	BEAMALLOC_ARENA_RETAIN_CAPACITY,
	BEAMALLOC_ARENA_RETAIN_WITH_LIMIT
} beamalloc_arena_reset_mode;

/* Free every block as mode says; returns the capacity kept (bytes). */
BEAMALLOC_API size_t beamalloc_arena_reset_with(beamalloc_arena *arena,
    beamalloc_arena_reset_mode mode, size_t limit);

/* ------------------------------------------------------------------------
 * Fixed buffer: allocation out of caller memory, no backing allocator.
 * The struct is public so it can live on the stack; its fields are private.
 * Any alignment (placed inside the buffer); NULL + ENOMEM when full.  As
 * in an arena, only the most recent allocation can be freed or grown in
 * place, and a free of it gives its bytes back once.  The buffer belongs to
 * the allocator from init on (memory checkers see its unused bytes as
 * inaccessible; only for a buffer off the calling thread's stack, whose
 * marks would outlive its scope).  Not thread-safe.
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_fixed {
	unsigned char *start;
	unsigned char *ptr;		/* first free byte */
	unsigned char *end;
	bool poison;			/* memory checkers: buffer off the stack */
	unsigned char *last;		/* start of the last block, or NULL */
} beamalloc_fixed;

BEAMALLOC_API void beamalloc_fixed_init(beamalloc_fixed *fb, void *buf,
    size_t len);
BEAMALLOC_API beamalloc_allocator beamalloc_fixed_allocator(
    beamalloc_fixed *fb);
BEAMALLOC_API void beamalloc_fixed_reset(beamalloc_fixed *fb);

/* ------------------------------------------------------------------------
 * Object pool (Zig's MemoryPool): items of one size and alignment from
 * chunks of a backing allocator, handed out and taken back in O(1) from
 * a free list.  Growable: a new chunk (as many items as the pool holds,
 * at least 16) when the free list is empty; not growable: exactly the
 * preheated items, then NULL + ENOMEM.  As an allocator it serves any
 * len up to item_size at any alignment up to item_align (ENOMEM above
 * the size, EINVAL above the alignment) and resizes in place within the
 * item.  A free of the item freed last (a double free of it) is reported
 * and ignored; with the allocator's free, so is a pointer no chunk holds.
 * The allocator's resize and remap report both too, and refuse them
 * (EINVAL).  Not thread-safe (see beamalloc_locked).
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_pool beamalloc_pool;	/* opaque */

/* NULL + EINVAL for item_size 0, a bad alignment or a backing never set
 * ({0}), ENOMEM when the backing cannot give the pool or its preheated
 * items. */
BEAMALLOC_API beamalloc_pool *beamalloc_pool_create(
    beamalloc_allocator backing, size_t item_size, size_t item_align,
    size_t preheat, bool growable);
BEAMALLOC_API beamalloc_allocator beamalloc_pool_allocator(
    beamalloc_pool *pool);
/* One item (Zig's create), NULL + ENOMEM when none is left. */
BEAMALLOC_API void *beamalloc_pool_get(beamalloc_pool *pool);
/* Give an item back (Zig's destroy); NULL is a no-op. */
BEAMALLOC_API void beamalloc_pool_put(beamalloc_pool *pool, void *item);
/* Items held (live and free), and items now live. */
BEAMALLOC_API size_t beamalloc_pool_capacity(const beamalloc_pool *pool);
BEAMALLOC_API size_t beamalloc_pool_live(const beamalloc_pool *pool);
/* Give every chunk back to the backing; live items die with them. */
BEAMALLOC_API void beamalloc_pool_destroy(beamalloc_pool *pool);

/* ------------------------------------------------------------------------
 * Stack fallback (Zig's StackFallbackAllocator): the caller's buffer
 * first (a fixed buffer), the backing allocator once it is full.  Each
 * free, resize and remap goes to whichever owns the block (its address
 * inside the buffer or not).  Not thread-safe.
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_stackfb {
	beamalloc_allocator backing;	/* private */
	beamalloc_fixed fixed;		/* private */
} beamalloc_stackfb;

BEAMALLOC_API void beamalloc_stackfb_init(beamalloc_stackfb *s, void *buf,
    size_t len, beamalloc_allocator backing);
BEAMALLOC_API beamalloc_allocator beamalloc_stackfb_allocator(
    beamalloc_stackfb *s);

/* ------------------------------------------------------------------------
 * Thread-safe wrapper (Zig's ThreadSafeAllocator): every call to child
 * under one mutex, so an arena or a fixed buffer can be shared by
 * threads.  Blocks stay the child's: reset or destroy the child as usual.
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_locked {
	beamalloc_allocator child;	/* private */
	union {				/* private: a pthread_mutex_t */
		unsigned char bytes[64];
		void *align_p;
		long long align_ll;
	} lock_;
} beamalloc_locked;

/* 0, or an error number from pthread_mutex_init. */
BEAMALLOC_API int beamalloc_locked_init(beamalloc_locked *l,
    beamalloc_allocator child);
BEAMALLOC_API beamalloc_allocator beamalloc_locked_allocator(
    beamalloc_locked *l);
/* Once no thread uses it any more. */
BEAMALLOC_API void beamalloc_locked_destroy(beamalloc_locked *l);

/* ------------------------------------------------------------------------
 * Logging allocator (Zig's LoggingAllocator): each call to backing, then
 * one log entry (kind, lengths, alignment, result) with a scope name.
 * ---------------------------------------------------------------------- */

typedef enum beamalloc_log_kind {
	BEAMALLOC_LOG_ALLOC = 1,
	BEAMALLOC_LOG_RESIZE,
	BEAMALLOC_LOG_REMAP,
	BEAMALLOC_LOG_FREE
} beamalloc_log_kind;

typedef struct beamalloc_log_entry {
	const char *scope;		/* the logger's name */
	beamalloc_log_kind kind;
	void *mem;			/* the block (NULL for alloc) */
	size_t len;			/* its length (alloc: the request) */
	size_t align;
	size_t new_len;			/* resize/remap: asked for; else 0 */
	void *result;			/* alloc/remap: the block or NULL;
					   resize: mem or NULL; free: NULL */
	int error;			/* errno of a failure, else 0 */
	uintptr_t ret_addr;		/* the caller's call site, or 0 */
} beamalloc_log_entry;

typedef void (*beamalloc_log_fn)(void *user, const beamalloc_log_entry *e);

typedef struct beamalloc_logging {
	beamalloc_allocator backing;	/* private */
	const char *scope;		/* private */
	beamalloc_log_fn fn;		/* private */
	void *user;			/* private */
} beamalloc_logging;

/* One line per entry to user, a FILE * (NULL: stderr): the default. */
BEAMALLOC_API void beamalloc_log_print(void *user,
    const beamalloc_log_entry *e);
/* fn NULL: beamalloc_log_print; scope NULL: "beamalloc".  Both scope and
 * user must outlive the logger. */
BEAMALLOC_API void beamalloc_logging_init(beamalloc_logging *l,
    beamalloc_allocator backing, const char *scope, beamalloc_log_fn fn,
    void *user);
BEAMALLOC_API beamalloc_allocator beamalloc_logging_allocator(
    beamalloc_logging *l);

/* ------------------------------------------------------------------------
 * Failing allocator: fails the Nth allocation and the Mth resize/remap.
 * As in Zig, once allocation number fail_index (0-based) has failed every
 * later one fails too: memory has run out.  Likewise for resizes.
 * Induced failures return NULL (false) with errno ENOMEM.  Counters are
 * public and read-only for the caller; a remap or resize counts its
 * growth in allocated_bytes and its shrinkage in freed_bytes, so
 * allocated_bytes - freed_bytes is what is still live.
 * ---------------------------------------------------------------------- */

#define BEAMALLOC_NEVER SIZE_MAX
#define BEAMALLOC_FAILING_TRACE 16	/* frames kept of the induced failure */

typedef struct beamalloc_failing {
	beamalloc_allocator backing;
	size_t fail_index;		/* 0-based allocation to fail */
	size_t resize_fail_index;	/* 0-based resize/remap to fail */
	size_t allocations;		/* successful allocations */
	size_t deallocations;
	size_t resizes;			/* successful resize/remap calls */
	size_t allocated_bytes;
	size_t freed_bytes;
	uintptr_t fail_ret_addr;	/* call site of the induced failure */
	bool has_induced_failure;	/* an allocation was made to fail */
	bool has_induced_resize_failure;/* a resize/remap was made to fail */
	/* 0.2: the stack of the induced allocation failure, from its call
	 * site outwards (fail_trace[0] == fail_ret_addr when known). */
	size_t fail_trace_len;
	uintptr_t fail_trace[BEAMALLOC_FAILING_TRACE];
} beamalloc_failing;

BEAMALLOC_API void beamalloc_failing_init(beamalloc_failing *f,
    beamalloc_allocator backing, size_t fail_index, size_t resize_fail_index);
BEAMALLOC_API beamalloc_allocator beamalloc_failing_allocator(
    beamalloc_failing *f);

/* ------------------------------------------------------------------------
 * Allocation-failure checker (Zig's checkAllAllocationFailures)
 * ---------------------------------------------------------------------- */

/* The function under test: 0 on success, non-zero on (out-of-memory) error. */
typedef int (*beamalloc_check_fn)(beamalloc_allocator a, void *arg);

typedef struct beamalloc_check_result {
	size_t allocations;	/* allocations of the run without failures */
	size_t runs;		/* runs with one allocation failing */
	size_t leaking_runs;	/* runs that leaked */
	size_t ignored_failures;/* runs that returned 0 despite the failure */
	size_t crashed_runs;	/* runs that died (fork mode only) */
	size_t unexpected_runs;	/* runs that never reached their failing
				   allocation, or failed without it */
	size_t first_bad_index;	/* first failing index with a finding, or BEAMALLOC_NEVER */
	size_t leaked_bytes;	/* summed over the leaking runs */
	size_t leaked_blocks;
	bool clean_run_ok;	/* the run without failures returned 0, no leak */
} beamalloc_check_result;

/* Options: always fill with beamalloc_check_options_init() first;
 * struct_size lets later versions add fields at the end. */
typedef struct beamalloc_check_options {
	size_t struct_size;	/* sizeof(beamalloc_check_options) */
	bool fork;		/* run each case in a child process, so a crash
				   is reported instead of killing the caller;
				   default off, never inside a running BEAM */
	bool keep_going;	/* go on after an ignored failure (default:
				   stop there, unless fork isolates the runs) */
	FILE *out;		/* where findings go; NULL = stderr */
} beamalloc_check_options;

/* Run fn once without failures to count its allocations, then once per
 * allocation index with that allocation (and, as memory has run out, every
 * later one) failing.  Each run goes through a beamalloc_failing on
 * backing, whose counters detect leaks (blocks and bytes); pass a GPA as
 * backing to have each leaked block reported.  A run must return non-zero
 * (error) and leak nothing; one that returns 0 despite its failure is an
 * "ignored failure".  Findings are printed, naming the failing index and
 * the allocation's call site.  Returns 0 when every run was clean, -1
 * otherwise (also, with errno, when fn is NULL or fork fails). */
BEAMALLOC_API int beamalloc_check_alloc_failures(beamalloc_allocator backing,
    beamalloc_check_fn fn, void *arg, beamalloc_check_result *result);
BEAMALLOC_API void beamalloc_check_options_init(beamalloc_check_options *opt);
/* The same with options (opt NULL = defaults). */
BEAMALLOC_API int beamalloc_check_alloc_failures_opt(
    beamalloc_allocator backing, beamalloc_check_fn fn, void *arg,
    const beamalloc_check_options *opt, beamalloc_check_result *result);

#ifdef __cplusplus
}
#endif

#endif /* BEAMALLOC_H */
