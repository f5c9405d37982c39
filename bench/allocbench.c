/*
 * allocbench.c - every workload against every allocator, in one process,
 * interleaved: for each repetition, for each workload, every allocator in
 * turn (rotating who goes first), so a noisy moment on a shared machine
 * hits all of them alike.  Reports the median and minimum ns per
 * operation, and, from a separate untimed pass in a fresh child process
 * per cell, the memory taken per live byte.
 *
 *   allocbench [--reps=N] [--scale=F] [--csv=FILE] [--ratios=FILE]
 *              [--only=a,b] [--workloads=x,y] [--no-mem] [--callgrind]
 *              [--preload-as=NAME] [--thread-cpus=A,B] [--list]
 *
 * Every allocator is called through libbeamalloc's front-end and its
 * beamalloc_allocator vtable, except the reference free list, which is
 * also called directly to price that vtable.  See bench/README.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "beamalloc.h"
#include "bench.h"
#include "adapters.h"
#include "reffl.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

/* ------------------------------------------------------------------------
 * Kernels, instantiated per calling convention (see kernels.h)
 * ---------------------------------------------------------------------- */

/* fe_*: through the library's front-end, as every user calls it. */
#define K_NAME(x) fe_##x
#define K_H beamalloc_allocator
#define K_ALLOC(h, n, al) beamalloc_alloc_aligned((h), (n), (al))
#define K_FREE(h, p, n, al) beamalloc_free_aligned((h), (p), (n), (al))
#define K_REALLOC(h, p, n, al, m) beamalloc_realloc((h), (p), (n), (al), (m))
#include "kernels.h"

/* rd_*: the reference free list called directly, inlined. */
#define K_NAME(x) rd_##x
#define K_H struct ref_fl *
#define K_ALLOC(h, n, al) ref_alloc((h), (n))
#define K_FREE(h, p, n, al) ref_free((h), (p), (n))
#include "kernels.h"

/* vt_*: straight through a fat pointer, inlined into the caller so the
 * compiler sees the fat pointer's value when it can. */
#define K_NAME(x) vt_##x
#define K_H beamalloc_allocator
#define K_ALLOC(h, n, al) (h).vtable->alloc((h).ctx, (n), (al), 0)
#define K_FREE(h, p, n, al) (h).vtable->free((h).ctx, (p), (n), (al), 0)
#define K_ATTR inline __attribute__((always_inline))
#include "kernels.h"

/* md_*: malloc and free with no vtable at all: what glibc costs bare. */
#define K_NAME(x) md_##x
#define K_H int
#define K_ALLOC(h, n, al) ((void)(h), malloc(n))
#define K_FREE(h, p, n, al) ((void)(h), free(p))
#include "kernels.h"

/* po_*: the object pool's own get/put (Zig's create/destroy), no vtable. */
#define K_NAME(x) po_##x
#define K_H beamalloc_pool *
#define K_ALLOC(h, n, al) beamalloc_pool_get(h)
#define K_FREE(h, p, n, al) beamalloc_pool_put((h), (p))
#include "kernels.h"

/* Any allocator's vtable called straight, without the front-end. */
static __attribute__((noinline)) size_t
raw_pair(beamalloc_allocator a, const struct wl *w)
{
	return vt_pair(a, w);
}

static __attribute__((noinline)) size_t
raw_lifo(beamalloc_allocator a, const struct wl *w)
{
	return vt_lifo(a, w);
}

static __attribute__((noinline)) size_t
raw_rand(beamalloc_allocator a, const struct wl *w)
{
	return vt_rand(a, w);
}

/* The fat pointer is built from a constant vtable in view: GCC turns the
 * indirect calls into direct ones and inlines them (devirtualization). */
static __attribute__((noinline)) size_t
devirt_pair(struct ref_fl *f, const struct wl *w)
{
	beamalloc_allocator a = { f, &ref_vtable };

	return vt_pair(a, w);
}

static __attribute__((noinline)) size_t
devirt_lifo(struct ref_fl *f, const struct wl *w)
{
	beamalloc_allocator a = { f, &ref_vtable };

	return vt_lifo(a, w);
}

/* The same, with the vtable pointer hidden from the optimizer: what a
 * call through an allocator passed in from elsewhere costs. */
static inline beamalloc_allocator
opaque(struct ref_fl *f)
{
	const beamalloc_vtable *vt = &ref_vtable;

	__asm__("" : "+r"(vt));
	return (beamalloc_allocator){ f, vt };
}

static __attribute__((noinline)) size_t
opaque_pair(struct ref_fl *f, const struct wl *w)
{
	return vt_pair(opaque(f), w);
}

static __attribute__((noinline)) size_t
opaque_lifo(struct ref_fl *f, const struct wl *w)
{
	return vt_lifo(opaque(f), w);
}

/* ------------------------------------------------------------------------
 * Workloads
 * ---------------------------------------------------------------------- */

enum cap {
	C_BASIC = 1,		/* fixed 64 B pairs and LIFO batches */
	C_RAND = 2,		/* random sizes, random frees */
	C_ALIGNED = 4,		/* 16@16, 64@64, 4096@4096 */
	C_BATCH = 8,		/* many blocks, then free all / reset */
	C_GROW = 16,		/* realloc growth */
	C_THREADS = 32,		/* two threads on one instance */
	C_ALL = 63
};

struct wdef {
	struct wl w;
	unsigned need;		/* enum cap */
	uint32_t lo, hi;	/* size range when w.size == 0 */
	bool mem;		/* measured in the memory pass */
	size_t mem_live;	/* live blocks there (0: w.live) */
	struct wl tw[2];	/* W_THREADS: each thread's copy */
	bool selected;
};

#define WL(n, u, k, sz, al, lv, bt, op) \
	{ .name = (n), .unit = (u), .kind = (k), .size = (sz), \
	  .align = (al), .live = (lv), .batch = (bt), .ops = (op) }

static struct wdef wdefs[] = {
	{ WL("pair64", "pair", W_PAIR, 64, 8, 0, 0, 500000), C_BASIC,
	    0, 0, false, 0, {{0}}, true },
	{ WL("lifo1000", "pair", W_LIFO, 64, 8, 0, 1000, 500), C_BASIC,
	    0, 0, false, 0, {{0}}, true },
	{ WL("rand100", "pair", W_RAND, 0, 8, 100, 0, 300000), C_RAND,
	    8, 4096, false, 0, {{0}}, true },
	{ WL("rand10k", "pair", W_RAND, 0, 8, 10000, 0, 300000), C_RAND,
	    8, 4096, true, 0, {{0}}, true },
	{ WL("rand100k", "pair", W_RAND, 0, 8, 100000, 0, 300000), C_RAND,
	    8, 4096, true, 0, {{0}}, true },
	/* Aligned: 1,000 live while timed; more in the memory pass, so
	 * that its figures are not rounding errors of a page or a segment. */
	{ WL("a16", "pair", W_RAND, 16, 16, 1000, 0, 300000), C_ALIGNED,
	    0, 0, true, 100000, {{0}}, true },
	{ WL("a64", "pair", W_RAND, 64, 64, 1000, 0, 300000), C_ALIGNED,
	    0, 0, true, 100000, {{0}}, true },
	{ WL("a4096", "pair", W_RAND, 4096, 4096, 1000, 0, 100000), C_ALIGNED,
	    0, 0, true, 4096, {{0}}, true },
	{ WL("reset10k", "block", W_BATCH, 0, 8, 10000, 0, 30), C_BATCH,
	    16, 128, false, 0, {{0}}, true },
	/* A NIF's temporaries, call after call: 4 MB taken and freed. */
	{ WL("refill4m", "block", W_BATCH, 4096, 8, 1000, 0, 30), C_BATCH,
	    0, 0, false, 0, {{0}}, true },
	{ WL("grow1m", "realloc", W_GROW, 0, 8, 0, 0, 200), C_GROW,
	    0, 0, false, 0, {{0}}, true },
	{ WL("t2_pair64", "pair", W_THREADS, 64, 8, 0, 0, 300000), C_THREADS,
	    0, 0, false, 0, {{0}}, true },
	{ WL("t2_rand1k", "pair", W_THREADS, 0, 8, 1000, 0, 300000),
	    C_THREADS, 8, 4096, false, 0, {{0}}, true },
};
#define NW (sizeof(wdefs) / sizeof(wdefs[0]))

/* ------------------------------------------------------------------------
 * Allocators under test
 * ---------------------------------------------------------------------- */

enum skind { S_GLIBC, S_EXT, S_BEAM, S_WIDE_LIBC, S_WIDE_BEAM, S_GPA,
	S_ARENA, S_REF, S_POOL };
enum call { CALL_FRONTEND, CALL_REF_DIRECT, CALL_REF_DEVIRT,
	CALL_REF_OPAQUE, CALL_RAW, CALL_MALLOC, CALL_POOL };

struct subject {
	const char *name;
	const char *what;
	enum skind kind;
	unsigned caps;
	enum call call;
	int ext;			/* S_EXT: enum ext_id */
	bool safety, thread_safe;	/* S_GPA */
	bool shared;			/* S_GPA: another thread freed a block */
	unsigned depth;
	bool canary, junk;		/* S_GPA: issue 16's checks */
	size_t quarantine;
	unsigned guard_sample;
	unsigned sample;		/* S_GPA: trace 1 allocation in N */
	unsigned slow;			/* runs 1/slow of the operations */
	/* Set up by subject_check / subject_open. */
	bool available;
	char why[200];
	beamalloc_allocator a;
	struct counting cnt;		/* what GPA/arena take from the BEAM base */
	beamalloc_allocator cnt_a, libc, wide;
	beamalloc_gpa *gpa;
	beamalloc_arena *arena;
	beamalloc_pool *pool;
	struct ref_fl ref;
	bool selected;
};

#define SUBJ(n, k, c, w) .name = (n), .kind = (k), .caps = (c), .what = (w)
#define GPA_CAPS (C_BASIC | C_RAND | C_ALIGNED | C_BATCH | C_GROW)

static struct subject subjects[] = {
	{ SUBJ("gpa-fast", S_GPA, GPA_CAPS | C_THREADS,
	    "GPA: safety off, no traces, thread-safe; over wide over BEAM base"),
	    .thread_safe = true },
	{ SUBJ("gpa-nolock", S_GPA, GPA_CAPS,
	    "GPA fast config with thread_safe off (prices the lock)") },
	{ SUBJ("gpa-nolock-safe", S_GPA, GPA_CAPS,
	    "GPA with thread_safe off, safety on (checks for use by two threads)"),
	    .safety = true },
	{ SUBJ("gpa-safe", S_GPA, GPA_CAPS,
	    "GPA: safety on, no traces, thread-safe; one thread"),
	    .safety = true, .thread_safe = true },
	/* With safety, once a thread has freed another's block every free
	 * claims its slot with a compare-and-swap: this prices it, and runs
	 * the threaded workloads (their threads free their own blocks, and
	 * would not make gpa-safe shared; this one is from the start). */
	{ SUBJ("gpa-safe-mt", S_GPA, GPA_CAPS | C_THREADS,
	    "gpa-safe after a thread freed another's block (atomic frees)"),
	    .safety = true, .thread_safe = true, .shared = true },
	{ SUBJ("gpa-trace8", S_GPA, GPA_CAPS,
	    "GPA: safety on, 8-frame traces, thread-safe"),
	    .safety = true, .thread_safe = true, .depth = 8 },
	{ SUBJ("gpa-fast-sample1024", S_GPA, GPA_CAPS,
	    "gpa-fast with 8-frame traces of 1 allocation in 1024"),
	    .thread_safe = true, .depth = 8, .sample = 1024 },
	{ SUBJ("gpa-safe-sample1024", S_GPA, GPA_CAPS,
	    "gpa-safe with 8-frame traces of 1 allocation in 1024"),
	    .safety = true, .thread_safe = true, .depth = 8, .sample = 1024 },
	/* Issue 16: corruption checks without a memory checker. */
	{ SUBJ("gpa-canary-junk", S_GPA, GPA_CAPS,
	    "gpa-safe with canary and junk (checked at free and reuse)"),
	    .safety = true, .thread_safe = true, .canary = true,
	    .junk = true },
	/* Each check alone, to price them apart (bench/README.md). */
	{ SUBJ("gpa-canary", S_GPA, GPA_CAPS,
	    "gpa-safe with canaries alone (checked at free)"),
	    .safety = true, .thread_safe = true, .canary = true },
	{ SUBJ("gpa-junk", S_GPA, GPA_CAPS,
	    "gpa-safe with junk alone (checked at reuse)"),
	    .safety = true, .thread_safe = true, .junk = true },
	{ SUBJ("gpa-quarantine", S_GPA, GPA_CAPS,
	    "gpa-canary-junk with a 1 MiB quarantine of freed blocks"),
	    .safety = true, .thread_safe = true, .canary = true,
	    .junk = true, .quarantine = 1 << 20 },
	{ SUBJ("gpa-guard1000", S_GPA, GPA_CAPS,
	    "gpa-fast with 1 block in 1000 against a guard page"),
	    .thread_safe = true, .guard_sample = 1000 },
	{ SUBJ("gpa-guard1m", S_GPA, GPA_CAPS,
	    "gpa-guard1000's fast paths alone: 1 block in 1,000,000 guarded"),
	    .thread_safe = true, .guard_sample = 1000000 },
	{ SUBJ("arena", S_ARENA, C_BASIC | C_BATCH | C_GROW,
	    "arena over BEAM base (reset frees everything)") },
	/* 64 B items (the size of pair64 and lifo1000) over BEAM base. */
	{ SUBJ("pool", S_POOL, C_BASIC,
	    "object pool of 64 B items over BEAM base, its get/put"),
	    .call = CALL_POOL },
	{ SUBJ("pool-vt", S_POOL, C_BASIC,
	    "the same pool as an allocator, through the front-end") },
	{ SUBJ("wide-libc", S_WIDE_LIBC, C_ALIGNED,
	    "wide alignment over beamalloc_libc()") },
	{ SUBJ("wide-beam", S_WIDE_BEAM, C_ALIGNED,
	    "wide alignment over BEAM base (beamalloc_wide())") },
	{ SUBJ("beam", S_BEAM, C_ALL & ~C_ALIGNED,
	    "BEAM base outside the VM: its malloc fallback, 8-byte contract") },
	{ SUBJ("glibc", S_GLIBC, C_ALL,
	    "glibc malloc/free (aligned_alloc above 16)") },
	{ SUBJ("mimalloc", S_EXT, C_ALL, "mimalloc via dlopen, mi_*"),
	    .ext = EXT_MIMALLOC },
	{ SUBJ("jemalloc", S_EXT, C_ALL,
	    "jemalloc via dlopen, malloc/mallocx/sdallocx"),
	    .ext = EXT_JEMALLOC },
	{ SUBJ("tcmalloc", S_EXT, C_ALL,
	    "tcmalloc_minimal via dlopen, tc_*"), .ext = EXT_TCMALLOC },
	/* The front-end's share: the same calls without it. */
	{ SUBJ("gpa-fast-raw", S_GPA, C_BASIC | C_RAND,
	    "gpa-fast through its vtable, skipping the front-end"),
	    .thread_safe = true, .call = CALL_RAW },
	{ SUBJ("glibc-raw", S_GLIBC, C_BASIC | C_RAND,
	    "glibc through its vtable, skipping the front-end"),
	    .call = CALL_RAW },
	{ SUBJ("glibc-direct", S_GLIBC, C_BASIC | C_RAND,
	    "malloc/free called directly, no vtable"), .call = CALL_MALLOC },
	{ SUBJ("ref-direct", S_REF, C_BASIC,
	    "reference free list, called directly (inlined)"),
	    .call = CALL_REF_DIRECT },
	{ SUBJ("ref-devirt", S_REF, C_BASIC,
	    "reference free list via a fat pointer the compiler devirtualizes"),
	    .call = CALL_REF_DEVIRT },
	{ SUBJ("ref-vtable", S_REF, C_BASIC,
	    "reference free list via an opaque fat pointer (indirect call)"),
	    .call = CALL_REF_OPAQUE },
	{ SUBJ("ref-frontend", S_REF, C_BASIC,
	    "reference free list via libbeamalloc's front-end (like all others)"),
	    .call = CALL_FRONTEND },
};
#define NS (sizeof(subjects) / sizeof(subjects[0]))

static bool
subject_check(struct subject *s)
{
	switch (s->kind) {
	case S_EXT:
		return bench_ext_ready(s->ext, s->why, sizeof(s->why));
	default:
		return true;
	}
}

struct share {
	beamalloc_allocator a;
	void *p;
};

static void *
share_thread(void *arg)
{
	struct share *sh = arg;

	beamalloc_free(sh->a, sh->p, 8);
	return NULL;
}

/* A block allocated here and freed on another thread: the GPA is
 * shared (every free atomic from now on). */
static int
share_gpa(beamalloc_allocator a)
{
	struct share sh = { a, beamalloc_alloc(a, 8) };
	pthread_t t;

	if (sh.p == NULL || pthread_create(&t, NULL, share_thread, &sh) != 0)
		return -1;
	return pthread_join(t, NULL) == 0 ? 0 : -1;
}

static int
subject_open(struct subject *s)
{
	s->cnt_a = bench_counting(&s->cnt, beamalloc_beam());
	switch (s->kind) {
	case S_GLIBC:
		s->a = bench_glibc();
		return 0;
	case S_EXT:
		s->a = bench_ext(s->ext);
		return 0;
	case S_BEAM:
		s->a = beamalloc_beam();
		return 0;
	case S_WIDE_LIBC:
		s->libc = beamalloc_libc();
		s->a = beamalloc_wide_on(&s->libc);
		return 0;
	case S_WIDE_BEAM:
		s->a = beamalloc_wide();
		return 0;
	case S_GPA: {
		beamalloc_gpa_config cfg;

		beamalloc_gpa_config_init(&cfg);
		cfg.safety = s->safety;
		cfg.thread_safe = s->thread_safe;
		cfg.stack_trace_depth = s->depth;
		cfg.canary = s->canary;
		cfg.junk = s->junk;
		cfg.quarantine = s->quarantine;
		cfg.guard_sample = s->guard_sample;
		cfg.trace_sample = s->sample;
		/* The GPA over wide over the BEAM base, as in a NIF; the
		 * counting wrapper sees what it takes from the BEAM base. */
		s->wide = beamalloc_wide_on(&s->cnt_a);
		s->gpa = beamalloc_gpa_create(s->wide, &cfg);
		if (s->gpa == NULL)
			return -1;
		s->a = beamalloc_gpa_allocator(s->gpa);
		if (s->shared)
			return share_gpa(s->a);
		return 0;
	}
	case S_ARENA:
		s->arena = beamalloc_arena_create(s->cnt_a);
		if (s->arena == NULL)
			return -1;
		s->a = beamalloc_arena_allocator(s->arena);
		return 0;
	case S_POOL:
		s->pool = beamalloc_pool_create(s->cnt_a, 64, 8, 0, true);
		if (s->pool == NULL)
			return -1;
		s->a = beamalloc_pool_allocator(s->pool);
		return 0;
	case S_REF:
		memset(&s->ref, 0, sizeof(s->ref));
		s->a = (beamalloc_allocator){ &s->ref, &ref_vtable };
		return 0;
	}
	return -1;
}

static void
subject_close(struct subject *s)
{
	if (s->gpa != NULL) {
		bench_gpa_done("allocbench", s->name, s->gpa);
		s->gpa = NULL;
	}
	if (s->arena != NULL) {
		beamalloc_arena_destroy(s->arena);
		s->arena = NULL;
	}
	if (s->pool != NULL) {
		beamalloc_pool_destroy(s->pool);
		s->pool = NULL;
	}
	if (s->kind == S_REF)
		ref_destroy(&s->ref);
}

static bool preload_mode;

/* Bytes the allocator has taken from beneath it (the OS or its backing
 * allocator), and where that figure comes from.  None for mimalloc,
 * jemalloc and tcmalloc: their counters measure different things
 * (mimalloc's "commit" is reserved address space on Linux), so for them
 * only the resident set, measured alike for everyone, is reported. */
static size_t
subject_held(const struct subject *s)
{
	switch (s->kind) {
	case S_GLIBC:
	case S_BEAM:
		return preload_mode ? 0 : bench_glibc_held();
	case S_WIDE_LIBC:
	case S_WIDE_BEAM:
		return bench_glibc_inuse();
	case S_GPA:
	case S_ARENA:
	case S_POOL:
		return atomic_load(&s->cnt.held);
	default:
		return 0;
	}
}

static const char *
subject_held_source(const struct subject *s)
{
	switch (s->kind) {
	case S_GLIBC:
	case S_BEAM:
		return preload_mode ? "" : "mallinfo2 arena+mmap";
	case S_WIDE_LIBC:
	case S_WIDE_BEAM:
		return "backing: malloc chunks in use";
	case S_GPA:
	case S_ARENA:
	case S_POOL:
		return "backing: counting wrapper";
	default:
		return "";
	}
}

/* The allocator's own view: GPA backing_bytes, arena capacity. */
static size_t
subject_stats(const struct subject *s)
{
	if (s->gpa != NULL) {
		beamalloc_gpa_stats st;

		beamalloc_gpa_get_stats(s->gpa, &st);
		return st.backing_bytes;
	}
	if (s->arena != NULL)
		return beamalloc_arena_capacity(s->arena);
	return 0;
}

static void
arena_reset_cb(void *arena)
{
	beamalloc_arena_reset(arena);
}

/* ------------------------------------------------------------------------
 * Running one cell
 * ---------------------------------------------------------------------- */

static int thread_cpu[2] = { 0, 1 };

struct thr {
	struct subject *s;
	struct wl *w;
	pthread_barrier_t *bar;
	int cpu;
	size_t ops;
};

static void *
thread_main(void *arg)
{
	struct thr *t = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(t->cpu, &set);
	/* Ignored where not allowed: then the scheduler places us. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_barrier_wait(t->bar);
	t->ops = t->w->live ? fe_rand(t->s->a, t->w) : fe_pair(t->s->a, t->w);
	return NULL;
}

static size_t
run_threads(struct subject *s, struct wdef *d)
{
	pthread_barrier_t bar;
	pthread_t tid[2];
	struct thr t[2];
	size_t ops = 0;
	int started = 0;

	pthread_barrier_init(&bar, NULL, 3);
	for (int i = 0; i < 2; i++) {
		t[i] = (struct thr){ s, &d->tw[i], &bar, thread_cpu[i], 0 };
		if (pthread_create(&tid[i], NULL, thread_main, &t[i]) != 0)
			break;
		started++;
	}
	if (started < 2) {
		/* Cannot happen on a sane system; do not deadlock. */
		fprintf(stderr, "allocbench: pthread_create failed\n");
		exit(1);
	}
	pthread_barrier_wait(&bar);
	for (int i = 0; i < 2; i++) {
		pthread_join(tid[i], NULL);
		ops += t[i].ops;
	}
	pthread_barrier_destroy(&bar);
	return t[0].ops && t[1].ops ? ops : 0;
}

static size_t
run_kernel(struct subject *s, struct wdef *d)
{
	struct wl slow, *w = &d->w;

	/* Capturing stack traces costs microseconds: fewer operations keep
	 * the run within minutes; the live sets stay the same. */
	if (s->slow > 1) {
		slow = d->w;
		slow.ops = d->w.ops / s->slow ? d->w.ops / s->slow : 1;
		w = &slow;
	}

	switch (s->call) {
	case CALL_REF_DIRECT:
		return w->kind == W_PAIR ? rd_pair(&s->ref, w) :
		    rd_lifo(&s->ref, w);
	case CALL_REF_DEVIRT:
		return w->kind == W_PAIR ? devirt_pair(&s->ref, w) :
		    devirt_lifo(&s->ref, w);
	case CALL_REF_OPAQUE:
		return w->kind == W_PAIR ? opaque_pair(&s->ref, w) :
		    opaque_lifo(&s->ref, w);
	case CALL_RAW:
		return w->kind == W_PAIR ? raw_pair(s->a, w) :
		    w->kind == W_LIFO ? raw_lifo(s->a, w) : raw_rand(s->a, w);
	case CALL_MALLOC:
		return w->kind == W_PAIR ? md_pair(0, w) :
		    w->kind == W_LIFO ? md_lifo(0, w) : md_rand(0, w);
	case CALL_POOL:
		return w->kind == W_PAIR ? po_pair(s->pool, w) :
		    po_lifo(s->pool, w);
	case CALL_FRONTEND:
		break;
	}
	switch (w->kind) {
	case W_PAIR:
		return fe_pair(s->a, w);
	case W_LIFO:
		return fe_lifo(s->a, w);
	case W_RAND:
		return fe_rand(s->a, w);
	case W_BATCH:
		return fe_batch(s->a, w, s->arena ? arena_reset_cb : NULL,
		    s->arena);
	case W_GROW:
		return fe_grow(s->a, w);
	case W_THREADS:
		return run_threads(s, d);
	}
	return 0;
}

/* One timed run: ns per operation, or -1 when an allocation failed. */
static double
run_cell(struct subject *s, struct wdef *d)
{
	uint64_t t0 = now_ns();
	size_t ops = run_kernel(s, d);
	uint64_t t1 = now_ns();

	/* An arena gives nothing back before a reset: do it off the clock. */
	if (s->arena != NULL)
		beamalloc_arena_reset(s->arena);
	/* Most subjects share glibc's heap (glibc, the BEAM base, the wide
	 * allocators, every backing): consolidate it off the clock, so no
	 * cell inherits the free lists and fragments the last one left. */
	malloc_trim(0);
	return ops ? (double)(t1 - t0) / (double)ops : -1.0;
}

static bool
applies(const struct subject *s, const struct wdef *d)
{
	return s->selected && s->available && d->selected &&
	    (s->caps & d->need) != 0;
}

/* ------------------------------------------------------------------------
 * Memory pass: one fresh child process per cell
 * ---------------------------------------------------------------------- */

struct memres {
	int ok;
	size_t live, rss, held, stats;
};

static void
mem_child(struct subject *s, struct wdef *d, int fd, uint64_t seed)
{
	struct memres r = { 0, 0, 0, 0, 0 };
	struct wl w = d->w;
	size_t rss0, held0;

	/* Our own arrays first: glibc's counters must not see them. */
	if (d->mem_live != 0) {
		w.live = d->mem_live;
		if (wl_prepare(&w, d->lo, d->hi, seed) != 0)
			_exit(1);
	}
	if (subject_open(s) == 0) {
		rss0 = bench_rss();
		held0 = subject_held(s);
		w.memset_all = 1;
		if (fe_rand_fill(s->a, &w) && fe_rand_steady(s->a, &w)) {
			r.ok = 1;
			for (size_t i = 0; i < w.live; i++)
				r.live += w.lens[i];
			r.rss = bench_rss() - rss0;
			r.held = subject_held(s) - held0;
			r.stats = subject_stats(s);
		}
	}
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

static struct memres
mem_cell(struct subject *s, struct wdef *d, uint64_t seed)
{
	struct memres r = { 0, 0, 0, 0, 0 };
	int fd[2], status;
	pid_t pid;

	if (pipe(fd) != 0)
		return r;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(fd[0]);
		mem_child(s, d, fd[1], seed);
	}
	close(fd[1]);
	if (pid > 0) {
		if (read(fd[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
			r.ok = 0;
		waitpid(pid, &status, 0);
	}
	close(fd[0]);
	return r;
}

/* ------------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------- */

#define MAXREPS 64

struct cell {
	int n;
	double ns[MAXREPS];
	bool failed;
	double med, min;
	struct memres mem;
};

static struct cell cells[NW][NS];

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
summarize(struct cell *c)
{
	double v[MAXREPS];

	if (c->n == 0)
		return;
	memcpy(v, c->ns, sizeof(double) * (size_t)c->n);
	qsort(v, (size_t)c->n, sizeof(double), cmp_double);
	c->min = v[0];
	c->med = c->n % 2 ? v[c->n / 2] : (v[c->n / 2 - 1] + v[c->n / 2]) / 2;
}

static int
find_subject(const char *name)
{
	for (size_t i = 0; i < NS; i++)
		if (strcmp(subjects[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
find_wl(const char *name)
{
	for (size_t i = 0; i < NW; i++)
		if (strcmp(wdefs[i].w.name, name) == 0)
			return (int)i;
	return -1;
}

static const struct cell *
cell_of(const char *alloc, const char *wl)
{
	int s = find_subject(alloc), w = find_wl(wl);

	if (s < 0 || w < 0 || cells[w][s].n == 0)
		return NULL;
	return &cells[w][s];
}

static void
write_csv(FILE *f, int reps)
{
	fprintf(f, "allocator,workload,unit,ops,reps,ns_median,ns_min,"
	    "live_bytes,rss_per_live,held_per_live,held_source,"
	    "stats_per_live\n");
	for (size_t w = 0; w < NW; w++)
		for (size_t s = 0; s < NS; s++) {
			struct cell *c = &cells[w][s];
			struct memres *m = &c->mem;

			if (c->n == 0 && !m->ok)
				continue;
			fprintf(f, "%s,%s,%s,%zu,%d,", subjects[s].name,
			    wdefs[w].w.name, wdefs[w].w.unit, wdefs[w].w.ops /
			    (subjects[s].slow > 1 ? subjects[s].slow : 1), reps);
			if (c->n)
				fprintf(f, "%.2f,%.2f,", c->med, c->min);
			else
				fprintf(f, ",,");
			if (m->ok && m->live) {
				double live = (double)m->live;
				const char *src = subject_held_source(&subjects[s]);

				fprintf(f, "%zu,%.3f,", m->live, m->rss / live);
				if (*src)
					fprintf(f, "%.3f,%s,", m->held / live, src);
				else
					fprintf(f, ",,");
				if (m->stats)
					fprintf(f, "%.3f\n", m->stats / live);
				else
					fprintf(f, "\n");
			} else
				fprintf(f, ",,,,\n");
		}
}

static void
print_table(int reps)
{
	printf("\n%-10s %-13s %9s %9s %7s  %9s %9s  %s\n", "workload",
	    "allocator", "ns/op med", "min", "unit", "rss/live", "held/live",
	    "held from");
	for (size_t w = 0; w < NW; w++) {
		for (size_t s = 0; s < NS; s++) {
			struct cell *c = &cells[w][s];
			struct memres *m = &c->mem;

			if (c->n == 0 && !c->failed)
				continue;
			printf("%-10s %-13s ", wdefs[w].w.name, subjects[s].name);
			if (c->failed)
				printf("%9s %9s ", "failed", "-");
			else
				printf("%9.2f %9.2f ", c->med, c->min);
			printf("%7s  ", wdefs[w].w.unit);
			if (m->ok && m->live) {
				const char *src = subject_held_source(&subjects[s]);

				printf("%9.3f ", (double)m->rss / (double)m->live);
				if (*src)
					printf("%9.3f  %s", (double)m->held /
					    (double)m->live, src);
			}
			printf("\n");
		}
	}
	printf("(median and minimum of %d interleaved repetitions)\n", reps);

	/* The same medians as a matrix: allocators by workloads. */
	printf("\n%-13s", "ns/op median");
	for (size_t w = 0; w < NW; w++)
		if (wdefs[w].selected)
			printf(" %9s", wdefs[w].w.name);
	printf("\n");
	for (size_t s = 0; s < NS; s++) {
		bool any = false;

		for (size_t w = 0; w < NW; w++)
			any |= cells[w][s].n > 0;
		if (!any)
			continue;
		printf("%-13s", subjects[s].name);
		for (size_t w = 0; w < NW; w++) {
			if (!wdefs[w].selected)
				continue;
			if (cells[w][s].n)
				printf(" %9.1f", cells[w][s].med);
			else
				printf(" %9s", "-");
		}
		printf("\n");
	}
}

/* ------------------------------------------------------------------------
 * Ratios: the targets of the GPA, arena and wide-alignment issues
 * ---------------------------------------------------------------------- */

enum cmp { NONE, LE, GE };

struct ratio {
	const char *num, *den, *wl;	/* ns(num) / ns(den) on wl */
	enum cmp cmp;
	double target;
	const char *note;
};

static const struct ratio ratios[] = {
	{ "gpa-fast", "glibc", "pair64", LE, 0.5, "issue 4" },
	{ "gpa-fast", "glibc", "lifo1000", LE, 0.5, "issue 4" },
	{ "gpa-fast", "glibc", "rand10k", LE, 0.7, "issue 4" },
	{ "gpa-safe", "gpa-fast", "pair64", LE, 2.0, "issue 4" },
	{ "gpa-safe", "gpa-fast", "lifo1000", LE, 2.0, "issue 4" },
	{ "gpa-safe", "gpa-fast", "rand10k", LE, 2.0, "issue 4" },
	{ "glibc", "arena", "reset10k", GE, 3.0, "issue 5 (speed-up)" },
	{ "gpa-canary-junk", "gpa-safe", "pair64", LE, 2.0, "issue 16" },
	{ "gpa-canary-junk", "gpa-safe", "lifo1000", LE, 2.0, "issue 16" },
	{ "gpa-canary-junk", "gpa-safe", "rand10k", LE, 2.0, "issue 16" },
	{ "gpa-guard1000", "gpa-fast", "pair64", LE, 1.05, "issue 16" },
	{ "gpa-guard1000", "gpa-fast", "lifo1000", LE, 1.05, "issue 16" },
	{ "gpa-guard1000", "gpa-fast", "rand10k", LE, 1.05, "issue 16" },
	{ "gpa-canary", "gpa-safe", "pair64", NONE, 0, "issue 16" },
	{ "gpa-canary", "gpa-safe", "rand10k", NONE, 0, "issue 16" },
	{ "gpa-junk", "gpa-safe", "pair64", NONE, 0, "issue 16" },
	{ "gpa-junk", "gpa-safe", "rand10k", NONE, 0, "issue 16" },
	{ "gpa-quarantine", "gpa-safe", "pair64", NONE, 0, "issue 16" },
	{ "gpa-quarantine", "gpa-safe", "rand10k", NONE, 0, "issue 16" },
	{ "pool", "gpa-fast", "pair64", LE, 0.5, "issue 19" },
	{ "pool", "gpa-fast", "lifo1000", NONE, 0, "" },
	{ "pool-vt", "gpa-fast", "pair64", NONE, 0, "" },
	{ "gpa-fast", "mimalloc", "pair64", NONE, 0, "" },
	{ "gpa-fast", "mimalloc", "lifo1000", NONE, 0, "" },
	{ "gpa-fast", "mimalloc", "rand10k", NONE, 0, "" },
	{ "gpa-fast", "tcmalloc", "lifo1000", NONE, 0, "" },
	{ "gpa-fast", "tcmalloc", "rand10k", NONE, 0, "" },
	{ "gpa-fast", "glibc", "rand100", NONE, 0, "" },
	{ "gpa-fast", "glibc", "rand100k", NONE, 0, "" },
	{ "gpa-fast", "glibc", "grow1m", NONE, 0, "" },
	{ "gpa-fast", "glibc", "t2_pair64", NONE, 0, "" },
	{ "gpa-fast", "glibc", "t2_rand1k", NONE, 0, "" },
	{ "gpa-safe-mt", "gpa-safe", "pair64", NONE, 0,
	    "issue 13: atomic free" },
	{ "gpa-safe-mt", "gpa-safe", "rand10k", NONE, 0,
	    "issue 13: atomic free" },
	{ "gpa-safe-mt", "glibc", "t2_pair64", NONE, 0, "" },
	{ "gpa-safe-mt", "glibc", "t2_rand1k", NONE, 0, "" },
	{ "gpa-nolock-safe", "gpa-nolock", "pair64", NONE, 0,
	    "issue 13: 2-thread check" },
	{ "gpa-fast-raw", "glibc-raw", "pair64", NONE, 0, "no front-end" },
	{ "gpa-fast-raw", "glibc-raw", "lifo1000", NONE, 0, "no front-end" },
	{ "gpa-fast-raw", "glibc-raw", "rand10k", NONE, 0, "no front-end" },
	{ "gpa-fast-raw", "glibc-direct", "pair64", NONE, 0, "" },
	{ "gpa-fast", "gpa-nolock", "pair64", NONE, 0, "lock cost" },
	{ "gpa-trace8", "gpa-fast", "pair64", NONE, 0, "" },
	{ "gpa-trace8", "gpa-fast", "rand10k", NONE, 0, "" },
	{ "gpa-trace8", "gpa-safe", "pair64", LE, 10.0, "issue 15" },
	{ "gpa-trace8", "gpa-safe", "rand10k", LE, 5.0, "issue 15" },
	{ "gpa-fast-sample1024", "gpa-fast", "pair64", LE, 1.1, "issue 15" },
	{ "gpa-fast-sample1024", "gpa-fast", "rand10k", LE, 1.1, "issue 15" },
	{ "gpa-safe-sample1024", "gpa-safe", "pair64", NONE, 0, "" },
	{ "gpa-safe-sample1024", "gpa-safe", "rand10k", NONE, 0, "" },
	{ "arena", "glibc", "pair64", NONE, 0, "" },
	{ "arena", "glibc", "reset10k", NONE, 0, "" },
	{ "gpa-fast", "glibc", "a4096", NONE, 0, "" },
	{ "wide-libc", "glibc", "a4096", NONE, 0, "issue 3" },
	{ "wide-beam", "glibc", "a4096", NONE, 0, "issue 3" },
	{ "wide-libc", "glibc", "a64", NONE, 0, "issue 3" },
	{ "wide-beam", "glibc", "a64", NONE, 0, "issue 3" },
	{ "wide-beam", "glibc", "a16", NONE, 0, "issue 3" },
	{ "ref-devirt", "ref-direct", "pair64", NONE, 0, "vtable cost" },
	{ "ref-vtable", "ref-direct", "pair64", NONE, 0, "vtable cost" },
	{ "ref-frontend", "ref-direct", "pair64", NONE, 0, "vtable cost" },
	{ "ref-frontend", "ref-direct", "lifo1000", NONE, 0, "vtable cost" },
};

/* Memory per live byte (memory pass): GPA issue-4 target, wide issue 3. */
struct mratio {
	const char *alloc, *wl;
	enum cmp cmp;
	double target;
	const char *note;
};

static const struct mratio mratios[] = {
	{ "gpa-fast", "rand100k", LE, 1.5, "issue 4" },
	{ "gpa-fast", "rand10k", NONE, 0, "" },
	{ "glibc", "rand100k", NONE, 0, "" },
	{ "mimalloc", "rand100k", NONE, 0, "" },
	{ "jemalloc", "rand100k", NONE, 0, "" },
	{ "tcmalloc", "rand100k", NONE, 0, "" },
	{ "wide-libc", "a4096", NONE, 0, "issue 3" },
	{ "wide-beam", "a4096", NONE, 0, "issue 3" },
	{ "wide-libc", "a64", NONE, 0, "issue 3" },
	{ "wide-beam", "a64", NONE, 0, "issue 3" },
	{ "gpa-fast", "a4096", NONE, 0, "" },
	{ "glibc", "a4096", NONE, 0, "" },
};

static const char *
verdict(enum cmp cmp, double v, double target)
{
	if (cmp == NONE)
		return "";
	return (cmp == LE ? v <= target : v >= target) ? "met" : "NOT MET";
}

/* One line of the memory report: what is "held" (from the backing or the
 * OS, see subject_held_source), "stats" (the allocator's own figure) or
 * "rss" (resident set growth). */
static void
mline(FILE *csv, const struct mratio *r, const char *what, double v,
    bool judged)
{
	enum cmp cmp = judged ? r->cmp : NONE;
	char name[96], tgt[16] = "";

	snprintf(name, sizeof(name), "%s %s %s", r->alloc, r->wl, what);
	if (cmp != NONE)
		snprintf(tgt, sizeof(tgt), "%s%g", cmp == LE ? "<=" : ">=",
		    r->target);
	printf("%-36s %8.3f %8s  %s%s%s\n", name, v, tgt,
	    verdict(cmp, v, r->target), *r->note ? "  " : "", r->note);
	if (csv)
		fprintf(csv, "memory,%s %s/live,%s,%.3f,,%s,%s,%s\n", r->alloc,
		    what, r->wl, v, tgt, verdict(cmp, v, r->target), r->note);
}

static void
report_ratios(FILE *csv)
{
	printf("\n%-36s %8s %8s %8s  %s\n", "ratio (ns per op)", "medians",
	    "minima", "target", "");
	if (csv)
		fprintf(csv, "kind,ratio,workload,value,value_min,target,"
		    "verdict,note\n");
	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
		const struct ratio *r = &ratios[i];
		const struct cell *n = cell_of(r->num, r->wl);
		const struct cell *d = cell_of(r->den, r->wl);
		char name[80], tgt[16] = "";
		double v, vmin;

		if (n == NULL || d == NULL)
			continue;
		/* The verdict is on medians; the ratio of the minima, less
		 * sensitive to a busy machine, is shown beside it. */
		v = n->med / d->med;
		vmin = n->min / d->min;
		snprintf(name, sizeof(name), "%s/%s %s", r->num, r->den, r->wl);
		if (r->cmp != NONE)
			snprintf(tgt, sizeof(tgt), "%s%g",
			    r->cmp == LE ? "<=" : ">=", r->target);
		printf("%-36s %8.2f %8.2f %8s  %s%s%s\n", name, v, vmin, tgt,
		    verdict(r->cmp, v, r->target), *r->note ? "  " : "",
		    r->note);
		if (csv)
			fprintf(csv, "time,%s/%s,%s,%.3f,%.3f,%s,%s,%s\n",
			    r->num, r->den, r->wl, v, vmin, tgt,
			    verdict(r->cmp, v, r->target), r->note);
	}
	printf("\n%-36s %8s %8s  %s\n", "memory per live byte", "value",
	    "target", "");
	for (size_t i = 0; i < sizeof(mratios) / sizeof(mratios[0]); i++) {
		const struct mratio *r = &mratios[i];
		int s = find_subject(r->alloc), w = find_wl(r->wl);
		const struct memres *m;
		double live;

		if (s < 0 || w < 0 || !cells[w][s].mem.ok ||
		    !cells[w][s].mem.live)
			continue;
		m = &cells[w][s].mem;
		live = (double)m->live;
		/* The target is on what the allocator takes from beneath it
		 * (counting wrapper) and on its own statistics; the resident
		 * set, measured alike for everyone, is shown beside them. */
		if (*subject_held_source(&subjects[s]))
			mline(csv, r, "held", (double)m->held / live, true);
		if (m->stats)
			mline(csv, r, "stats", (double)m->stats / live, true);
		mline(csv, r, "rss", (double)m->rss / live, false);
	}
}

/* ------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------- */

static void *
noop_thread(void *arg)
{
	return arg;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: allocbench [--reps=N] [--warmup=N] [--scale=F] "
	    "[--csv=FILE] [--ratios=FILE]\n"
	    "                  [--only=a,b] [--workloads=x,y] [--no-mem] "
	    "[--callgrind]\n"
	    "                  [--preload-as=NAME] [--thread-cpus=A,B] "
	    "[--list]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "scale", required_argument, NULL, 's' },
		{ "csv", required_argument, NULL, 'c' },
		{ "ratios", required_argument, NULL, 'R' },
		{ "only", required_argument, NULL, 'o' },
		{ "workloads", required_argument, NULL, 'w' },
		{ "no-mem", no_argument, NULL, 'n' },
		{ "callgrind", no_argument, NULL, 'g' },
		{ "preload-as", required_argument, NULL, 'p' },
		{ "thread-cpus", required_argument, NULL, 't' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *csv_path = NULL, *ratios_path = NULL, *only = NULL;
	const char *wls = NULL, *preload_as = NULL;
	int reps = 9, warmup = 1, c;
	double scale = 1.0;
	bool mem = true, callgrind = false, list = false;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'W': warmup = atoi(optarg); break;
		case 's': scale = atof(optarg); break;
		case 'c': csv_path = optarg; break;
		case 'R': ratios_path = optarg; break;
		case 'o': only = optarg; break;
		case 'w': wls = optarg; break;
		case 'n': mem = false; break;
		case 'g': callgrind = true; break;
		case 'p': preload_as = optarg; break;
		case 't':
			if (sscanf(optarg, "%d,%d", &thread_cpu[0],
			    &thread_cpu[1]) != 2) {
				usage(stderr);
				return 2;
			}
			break;
		case 'l': list = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (reps < 1 || reps > MAXREPS || warmup < 0 || !(scale > 0)) {
		usage(stderr);
		return 2;
	}
	if (callgrind) {
#ifndef HAVE_CALLGRIND
		fprintf(stderr, "allocbench: built without valgrind/callgrind.h\n");
		return 2;
#endif
		reps = 1;
		mem = false;
	}

	/* glibc raises its mmap and trim thresholds the first time it frees
	 * a large mmapped block, and then keeps whole rounds of reset10k in
	 * its heap instead of trimming and refaulting them.  Settle that now,
	 * as any long-running process has, or cells that run before the
	 * first grow1m would measure another glibc than those after it. */
	{
		void *volatile big = malloc(GROW_TO);

		free(big);
	}
	/* glibc's malloc skips its locks and atomics until the process
	 * starts a thread, and never again after.  A NIF always runs in a
	 * threaded process: make this one threaded too, from the start, or
	 * everything before the first t2_* cell would run on that shortcut. */
	{
		pthread_t t;

		if (pthread_create(&t, NULL, noop_thread, NULL) == 0)
			pthread_join(t, NULL);
	}

	/* Which allocators. */
	if (preload_as != NULL) {
		/* One process per allocator under LD_PRELOAD: the "glibc"
		 * subject's malloc is then the preloaded library's. */
		preload_mode = true;
		for (size_t i = 0; i < NS; i++)
			subjects[i].selected = strcmp(subjects[i].name,
			    "glibc") == 0;
		subjects[find_subject("glibc")].name = preload_as;
	} else {
		if (bench_ext_load())
			bench_reexec_static_tls(argv);
		for (size_t i = 0; i < NS; i++)
			subjects[i].selected = only == NULL ||
			    bench_in_list(only, subjects[i].name);
	}
	for (size_t i = 0; i < NS; i++)
		subjects[i].available = subject_check(&subjects[i]);
	for (size_t i = 0; i < NW; i++)
		wdefs[i].selected = wls == NULL ||
		    bench_in_list(wls, wdefs[i].w.name);
	/* Threads under callgrind are serialized: nothing to learn. */
	if (callgrind)
		for (size_t i = 0; i < NW; i++)
			if (wdefs[i].w.kind == W_THREADS)
				wdefs[i].selected = false;

	if (list) {
		for (size_t i = 0; i < NS; i++)
			printf("%-13s %-4s %s%s%s\n", subjects[i].name,
			    subjects[i].available ? "" : "n/a",
			    subjects[i].what,
			    subjects[i].available ? "" : ": ", subjects[i].why);
		for (size_t i = 0; i < NW; i++)
			printf("%-13s %zu ops of one %s\n", wdefs[i].w.name,
			    wdefs[i].w.ops, wdefs[i].w.unit);
		return 0;
	}

	/* Announce what runs and what does not. */
	printf("# allocbench: libbeamalloc %s, reps %d (+%d warm-up), "
	    "scale %g\n", BEAMALLOC_VERSION, reps, warmup, scale);
	for (int id = 0; id < EXT_N && !preload_mode; id++) {
		const struct ext_info *e = bench_ext_info(id);

		printf("# %s %s (%s)\n", e->name,
		    e->loaded ? e->version : "not loaded",
		    e->loaded ? e->soname : e->why);
	}
	for (size_t i = 0; i < NS; i++)
		if (subjects[i].selected && !subjects[i].available)
			printf("# skipped %s: %s\n", subjects[i].name,
			    subjects[i].why);

	/* Workload data: the same requests for everyone. */
	for (size_t i = 0; i < NW; i++) {
		struct wdef *d = &wdefs[i];
		size_t ops = (size_t)((double)d->w.ops * scale);

		d->w.ops = ops ? ops : 1;
		if (!d->selected)
			continue;
		if (wl_prepare(&d->w, d->lo, d->hi, 0x5eed0000u + i) != 0) {
			fprintf(stderr, "allocbench: out of memory\n");
			return 1;
		}
		for (int t = 0; t < 2; t++) {
			d->tw[t] = d->w;
			d->tw[t].ptrs = calloc(d->w.live ? d->w.live : 1,
			    sizeof(void *));
			d->tw[t].lens = calloc(d->w.live ? d->w.live : 1,
			    sizeof(uint32_t));
			if (d->tw[t].ptrs == NULL || d->tw[t].lens == NULL)
				return 1;
		}
	}

	/* Memory first, while every allocator is still pristine. */
	if (mem) {
		for (size_t w = 0; w < NW; w++) {
			if (!wdefs[w].mem)
				continue;
			for (size_t s = 0; s < NS; s++)
				if (applies(&subjects[s], &wdefs[w]) &&
				    subjects[s].call == CALL_FRONTEND)
					cells[w][s].mem = mem_cell(&subjects[s],
					    &wdefs[w], 0x5eed0000u + w);
		}
	}

	for (size_t s = 0; s < NS; s++) {
		struct subject *sb = &subjects[s];

		if (sb->selected && sb->available && subject_open(sb) != 0) {
			sb->available = false;
			snprintf(sb->why, sizeof(sb->why), "create failed: %s",
			    strerror(errno));
			printf("# skipped %s: %s\n", sb->name, sb->why);
		}
	}

#ifdef HAVE_CALLGRIND
	if (callgrind) {
		/* One warm-up, then the counted run, dumped per cell. */
		for (size_t w = 0; w < NW; w++)
			for (size_t s = 0; s < NS; s++) {
				char label[128];
				size_t ops;

				if (!applies(&subjects[s], &wdefs[w]))
					continue;
				(void)run_cell(&subjects[s], &wdefs[w]);
				CALLGRIND_ZERO_STATS;
				ops = run_kernel(&subjects[s], &wdefs[w]);
				snprintf(label, sizeof(label), "cell %s %s %zu",
				    subjects[s].name, wdefs[w].w.name, ops);
				CALLGRIND_DUMP_STATS_AT(label);
				if (subjects[s].arena != NULL)
					beamalloc_arena_reset(subjects[s].arena);
				printf("%s\n", label);
			}
		for (size_t s = 0; s < NS; s++)
			subject_close(&subjects[s]);
		return 0;
	}
#endif

	for (int rep = -warmup; rep < reps; rep++) {
		for (size_t w = 0; w < NW; w++) {
			for (size_t k = 0; k < NS; k++) {
				size_t s = (k + (size_t)(rep + warmup)) % NS;
				struct cell *cl = &cells[w][s];
				double ns;

				if (!applies(&subjects[s], &wdefs[w]) ||
				    cl->failed)
					continue;
				ns = run_cell(&subjects[s], &wdefs[w]);
				if (ns < 0) {
					cl->failed = true;
					cl->n = 0;
					fprintf(stderr, "allocbench: %s on %s "
					    "failed: %s\n", subjects[s].name,
					    wdefs[w].w.name, strerror(errno));
				} else if (rep >= 0)
					cl->ns[cl->n++] = ns;
			}
		}
		fprintf(stderr, "allocbench: repetition %d/%d done\n",
		    rep + 1 > 0 ? rep + 1 : rep, reps);
	}
	for (size_t s = 0; s < NS; s++)
		subject_close(&subjects[s]);
	for (size_t w = 0; w < NW; w++)
		for (size_t s = 0; s < NS; s++)
			summarize(&cells[w][s]);

	if (csv_path != NULL) {
		FILE *f = fopen(csv_path, "w");

		if (f == NULL) {
			perror(csv_path);
			return 1;
		}
		write_csv(f, reps);
		fclose(f);
	}
	print_table(reps);
	{
		FILE *rf = ratios_path ? fopen(ratios_path, "w") : NULL;

		if (ratios_path != NULL && rf == NULL) {
			perror(ratios_path);
			return 1;
		}
		report_ratios(rf);
		if (rf)
			fclose(rf);
	}
	for (size_t i = 0; i < NW; i++) {
		wl_release(&wdefs[i].w);
		for (int t = 0; t < 2; t++) {
			free(wdefs[i].tw[t].ptrs);
			free(wdefs[i].tw[t].lens);
		}
	}
	return 0;
}
