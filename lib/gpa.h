/*
 * gpa.h - the general purpose allocator's data structures and its fast
 * paths, private to the library.  gpa.c has everything else; the
 * front-end includes this to call the fast paths of the library's own
 * thread-safe GPAs directly, without the indirect call through the vtable
 * (the global GPA is what NIF code calls most).
 */
#ifndef BEAMALLOC_GPA_H
#define BEAMALLOC_GPA_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

#define SLAB_SHIFT 16
#define SLAB_SIZE ((size_t)1 << SLAB_SHIFT)
#define MIN_SHIFT 3			/* smallest class: 8 bytes */
#define MAX_SHIFT 14			/* largest class: 16 KiB */
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)
#define MAG_MAX 255			/* slots per magazine */
#define MAG_BYTES (64 * 1024)		/* and at most this many bytes' worth */
#define CARVE_MIN 8			/* fresh slots in a first refill */
#define TC_BYTES (256 * 1024)		/* free slots a thread cache keeps */
#define TRIM_MIN (64 * 1024)		/* depot bytes below which no trim */
#define DECAY_MS_VM 500			/* default decay_ms in the VM */
#define REGION_MAX_SLABS 32		/* regions grow to 2 MiB */
#define STAB_TOMB ((uintptr_t)1)	/* a released slab's table key */
#define TKEY_TOMB ((uintptr_t)1)	/* a thread cache slot given back */
#define META_CHUNK (32 * 1024)		/* metadata blocks, when needed */
#define NTHREADS_BITS 8			/* thread caches found by hashing */
#define NTHREADS (1 << NTHREADS_BITS)
#define CREDIT_BATCH (256 * 1024)	/* per-thread stats settle past this */
#define HASH_MUL 0x9E3779B97F4A7C15ull
#define NMEMO 2			/* slabs each thread remembers: more cost
				 * rand10k an L1 miss per free */

/* Traces (gpa_trace.c): a frame-pointer walk, and the stack depot that
 * stores each distinct trace once under a 32-bit id (0: none). */
struct ba_depot;
BA_HIDDEN unsigned ba_trace_capture(uintptr_t *out, unsigned depth,
    uintptr_t ra);
BA_HIDDEN struct ba_depot *ba_depot_new(beamalloc_allocator backing,
    _Atomic size_t *bytes);
BA_HIDDEN void ba_depot_destroy(struct ba_depot *d);
BA_HIDDEN uint32_t ba_depot_put(struct ba_depot *d, const uintptr_t *f,
    unsigned n);
BA_HIDDEN const uintptr_t *ba_depot_get(const struct ba_depot *d, uint32_t id,
    size_t *n);
BA_HIDDEN uint32_t ba_trace_id(struct ba_depot *d, unsigned depth,
    uintptr_t ra);

/* Slot states; records start zeroed, as REC_NEW. */
enum { REC_NEW, REC_USED, REC_FREE };

/* A slot's record with safety or traces on; else only the state byte. */
struct rec {
	uint8_t state;
	uint8_t lalign;			/* log2 of the alignment asked */
	uint16_t len;			/* requested length */
	uint32_t tid;			/* traces on: the allocation's trace in
					   the depot, 0: none (not sampled) */
	uintptr_t ra;			/* call site of the allocation */
};

_Static_assert(((size_t)1 << MAX_SHIFT) <= UINT16_MAX,
    "struct rec's len must hold the largest class");

/* One slab's metadata; records follow the header. */
struct slab {
	uintptr_t base;			/* SLAB_SIZE-aligned slots */
	struct slab *next, *prev;	/* every slab, newest first */
	uint32_t *ftids;		/* per slot: the first free's trace id
					   (traces on), or NULL */
	struct region *region;
	void *meta;			/* the block holding this header, */
	size_t meta_len;		/* records and traces */
	uint32_t nslots;
	struct slab *dead;		/* trim: the next to release */
	uint32_t stamp, cnt;		/* trim: slots in the depot */
	uint8_t shift;			/* log2 of the slot size */
	_Alignas(16) unsigned char recs[];
};

/* A block of up to REGION_MAX_SLABS slabs from the backing; this header
 * sits in its unaligned head or tail. */
struct region {
	void *mem;
	size_t len;
	uintptr_t base;			/* first slab */
	uint64_t used;			/* bit i: slab i in use */
	uint32_t nslabs;
	struct region *next, *prev;
};

/* Slab table entry: key = base | shift, so one load finds both. */
struct sent {
	_Atomic uintptr_t key;		/* 0: empty */
	unsigned char *recs;
};

struct stab {
	size_t mask;
	unsigned hshift;
	struct sent e[];
};

/* A free slot as caches hold it. */
struct entry {
	unsigned char *p;
	unsigned char *rec;
};

/* A stack of free slots of one class (Bonwick's magazine): a thread
 * holds two per class, the depot the rest. */
struct mag {
	uint32_t n, cap;
	struct mag *next;
	struct entry e[];
};

/* A slab as free needs it, kept ready in the thread cache: its base,
 * slot mask and record multiplier, records, and the class's loaded
 * magazine.  Free then needs neither the table nor the class. */
struct memo {
	uintptr_t base;
	uintptr_t mask;			/* slot size - 1 */
	unsigned char *recs;
	/* (offset * mul) >> 32 is the slot's record offset: a multiply
	 * rather than a shift by a variable (several uops on x86, and it
	 * would need %cl). */
	uint64_t mul;
	struct entry **top;		/* &tc->top[class] */
	uintptr_t epoch;		/* the GPA's epoch when filled */
	uintptr_t pad[2];		/* 64 bytes: the index is a shift */
};

/* From &tc->top[c] to &tc->end[c]. */
#define LD_END (2 * NCLASS)

struct tcache {
	uintptr_t owner;		/* thread pointer, set at each claim */
	/* Requested bytes not yet settled into the GPA's counters: the
	 * high-water mark since the last settle, and how far below it the
	 * count is now (room: the credit is hi - room, so an alloc is one
	 * subtraction whose sign says "new high").  Written by the owner
	 * only (plain, they are on the fast path), read by stats with
	 * relaxed atomic loads.  Blocks are counted by the magazines (mark,
	 * below). */
	ptrdiff_t room;
	/* A thread's cache is its own: busy (owner) is set inside every
	 * operation on its magazines, steal (another thread) while that
	 * thread may take them (steal_idle()).  The general paths wait
	 * while steal is set; the fast paths do not look at it, they meet
	 * the sentinels steal_idle() leaves in the bounds, and stolen
	 * tells the next general path to set the bounds again. */
	unsigned busy, steal, stolen;
	ptrdiff_t hi;
	struct tcache *next;		/* every cache of this GPA */
	/* Slabs this thread freed into lately, direct-mapped by address
	 * (stale once the GPA's epoch moves on). */
	struct memo memo[NMEMO];
	/* The loaded magazine of each class as three pointers (fewer
	 * instructions on the fast paths than a count and an index); its
	 * own n is stale until the next exchange.  Three arrays, so that
	 * the class scaled by 8 in the address finds them (a struct of
	 * 32 bytes needed a shift and an add); free's pointer to top[c]
	 * finds end[c] at a fixed distance (LD_END). */
	struct entry *top[NCLASS];	/* next free entry */
	struct entry *bot[NCLASS];	/* e[0]: empty when top <= bot */
	struct entry *end[NCLASS];	/* e[cap]: full when top >= end */
	struct mag *loaded[NCLASS];
	struct mag *prev[NCLASS];	/* the other one */
	/* Live blocks, with no counter on the fast paths: mark[c] - top[c]
	 * (in entries) is what class c's loaded magazine has given out,
	 * pops less pushes, since it was loaded; nblk holds what earlier
	 * magazines gave.  Rewritten only when a magazine is loaded, while
	 * seq is odd, so that stats read a consistent sum. */
	uintptr_t mark[NCLASS];
	ptrdiff_t nblk;
	unsigned seq;
	struct tcache *free_next;	/* g->tc_free: its thread ended */
	/* Sampled traces: allocations until the next traced one (the
	 * general path traces at 0 and starts again from the GPA's N). */
	int sample_left;
};


/* Per class: full (or partly full) and empty magazines, and the slab
 * being carved. */
struct depot {
	pthread_mutex_t lock;
	struct mag *full, *empty;
	struct slab *cur;
	uint32_t next_slot;
	uint32_t mag_cap;
	uint32_t carve;			/* 0 until the first refill (slow start) */
	size_t nfull;			/* slots in the full magazines */
	size_t trim_at;			/* trim when their bytes pass this */
	size_t nslabs;			/* slabs of this class */
	char pad[128 - sizeof(pthread_mutex_t) - 6 * sizeof(void *) - 16];
};
_Static_assert(sizeof(struct depot) == 128, "struct depot: 2 lines");

/* A large block's record. */
struct large {
	uintptr_t addr;			/* 0: empty slot */
	size_t len;
	uintptr_t ra;
	uint8_t lalign;
	uint8_t state;			/* LG_* */
	uint8_t guard;			/* placed by gpa_guard.c */
	uint32_t atid, ftid;		/* trace ids: allocation, first free */
};

enum { LG_EMPTY, LG_LIVE, LG_FREED,
	LG_OVERFLOWED };		/* a leak check's copy only */

/* Room for one record, copied out to report it after the table's lock
 * is dropped. */
union large_copy {
	struct large l;
	uintptr_t w[sizeof(struct large) / sizeof(uintptr_t)];
};

/* A block taken from the backing for regions or metadata. */
struct bblock {
	void *ptr;
	size_t len;
};

struct chunk {
	uintptr_t cur, end;
};

#define NCHUNKS 8

struct beamalloc_gpa {
	/* Read by every operation. */
	/* Thread cache slots: the cache (&no_tc while free), which holds
	 * its owner's thread pointer, so that one load from here finds
	 * both; and the key claimed, which only tcache_slow() reads. */
	struct tcache *_Atomic tcs[NTHREADS];
	_Atomic uintptr_t tkey[NTHREADS];
	_Atomic(struct stab *) stab;
	_Atomic uintptr_t epoch;	/* advanced by every slab release */
	/* Set once a second thread uses a GPA with safety (go_shared()):
	 * from then on every free claims its slot with an atomic
	 * compare-exchange.  Before, the one thread's fast frees use plain
	 * loads and stores: no other free can race them.  (The general
	 * paths always claim atomically.) */
	_Atomic unsigned shared;
	_Atomic unsigned nclaimed;	/* thread cache slots claimed */
	bool thread_safe, safety, batched, abort_on_error;
	unsigned depth;
	unsigned sample;		/* trace 1 allocation in N; 0: all */
	struct ba_depot *traces;	/* the stack depot, when depth != 0 */
	_Atomic unsigned lsample;	/* large allocations' countdown */
	unsigned rec_shift;		/* log2 of the record size */
	size_t limit;
	struct tcache *tc0;		/* !thread_safe: the cache */
	/* !thread_safe with safety: the thread inside, 0 when none. */
	_Atomic uintptr_t st_owner;
	bool st_check;
	const beamalloc_vtable *vtable;	/* general or one of the fast ones */
	bool tools;			/* a memory checker is watching */
	int mb_cmd;			/* membarrier(2) command, 0: none */

	beamalloc_allocator backing;
	beamalloc_report_fn report;
	void *report_user;
	bool global;

	/* Counters: requested bytes live, settled; large blocks live
	 * (small ones are counted by the thread caches). */
	_Atomic ptrdiff_t live, blocks;
	_Atomic size_t peak, backing_bytes;

	struct depot depot[NCLASS];

	/* Structure: regions, slabs, metadata, caches. */
	pthread_mutex_t lock;
	struct bblock *bb;		/* every such block, for destroy */
	size_t nbb, bbcap;
	struct chunk chunks[NCHUNKS];
	struct region *regions;
	unsigned nregions;
	size_t nslabs, nstab;		/* live slabs; table keys with tombs */
	_Atomic(struct slab *) slabs;
	unsigned scanning;		/* leak scans walking the slab list */
	uint32_t stamp;			/* of the last trim */
	struct tcache *tcaches;
	struct tcache *tc_free;		/* caches no thread owns */
	uint64_t gid;			/* thread_safe: unique in the process */
	struct beamalloc_gpa *reg_next;	/* live thread-safe GPAs */
	pthread_mutex_t shared_lock;	/* threads past NTHREADS share tc0 */
	pthread_mutex_t steal_lock;	/* one steal_idle() at a time */

	/* Large blocks. */
	pthread_mutex_t large_lock;
	struct large *ltab;
	size_t lcap, lused, llive;	/* slots, live + freed, live */
	size_t lstride;

	/* Decay (gpa_decay.c): trimmed every decay_ms by its thread. */
	unsigned decay_ms;		/* 0: never; set only if registered */
	uint64_t decay_last;		/* ms of the last trim, monotonic */
	struct beamalloc_gpa *decay_next;

	/* Corruption checks (gpa_check.c, gpa_guard.c); any of them on
	 * routes the GPA to its general vtable. */
	bool canary, junk;
	struct ba_quar *quar;		/* NULL: no quarantine */
	unsigned guard_sample;		/* 0: no guard pages */
	bool guard_fast;		/* sampled by the fast paths' countdown */
	_Atomic unsigned guard_count;	/* the general path's count */
	/* The fast paths' countdown, written by every allocation: a cache
	 * line apart (the struct is only 8-aligned: no _Alignas). */
	char guard_pad[64];
	_Atomic unsigned guard_left;
};

/* The vtables: the general one first, then the fast ones by
 * [thread_safe][safety], then the same with sampled traces. */
enum { GPA_VT_GENERAL, GPA_VT_ST, GPA_VT_ST_SAFE, GPA_VT_TS, GPA_VT_TS_SAFE,
    GPA_VT_SAMPLED, GPA_NVT = GPA_VT_SAMPLED + 4 };
BA_HIDDEN extern const beamalloc_vtable ba_gpa_vtables[GPA_NVT];

/* The general paths and the fast paths' slow ends (gpa.c). */
BA_HIDDEN void *ba_gpa_alloc(void *ctx, size_t len, size_t align,
    uintptr_t ra);
BA_HIDDEN void ba_gpa_free(void *ctx, void *mem, size_t len, size_t align,
    uintptr_t ra);
BA_HIDDEN void ba_gpa_memo_miss(struct beamalloc_gpa *g, struct tcache *tc,
    void *mem, size_t len, size_t align, uintptr_t ra);
BA_HIDDEN void *ba_gpa_credit_high(struct beamalloc_gpa *g, struct tcache *tc,
    void *ret);
BA_HIDDEN void *ba_gpa_st_late(struct beamalloc_gpa *g, struct tcache *tc,
    void *ret, const void *mem, size_t len, size_t align, uintptr_t ra,
    bool over);
/* A reused slot's junk was overwritten: the report. */
BA_HIDDEN void ba_gpa_reused_bad(struct beamalloc_gpa *g, unsigned char *p);
/* Canary or junk on the fast paths (gpa_check.c; no memory checker
 * there): a reused slot's junk checked (before its record changes, so a
 * report names the freed block), then the new block filled. */
BA_HIDDEN void ba_gpa_chk_new(struct beamalloc_gpa *g, unsigned char *p,
    const unsigned char *rec, size_t len, size_t room);

/* Decay: gpa_decay.c keeps the registry and its thread, which calls
 * ba_gpa_decay_trim() (gpa.c) from outside the GPA. */
BA_HIDDEN bool ba_gpa_decay_register(struct beamalloc_gpa *g, unsigned ms);
BA_HIDDEN void ba_gpa_decay_unregister(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_decay_trim(struct beamalloc_gpa *g);

/* ------------------------------------------------------------------------
 * Corruption checks (gpa_check.c): canaries after a block's requested
 * length, junk in freed and new blocks, a quarantine of freed blocks.
 * The helpers let memory checkers watch through them (g->tools).
 * ---------------------------------------------------------------------- */

#define BA_JUNK_NEW 0xdb		/* a new block */
#define BA_JUNK_FREED 0xdf		/* a freed block */
#define BA_CANARY_LARGE 16		/* extra bytes of a large block */
#define BA_CANARY_MAX 32		/* canary bytes checked at most */
#define BA_JUNK_HEAD 1024		/* freed junk: whole up to here, */
#define BA_JUNK_STRIDE 512		/* then one word every this many */

/* Fill a new block: junk over [p, p + len), canary over the rest of its
 * room (as configured). */
BA_HIDDEN void ba_chk_fill_new(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room);
/* True when [p + len, p + room) still holds the canary. */
BA_HIDDEN bool ba_chk_canary_ok(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room);
/* Rewrite the canary after a resize to new_len. */
BA_HIDDEN void ba_chk_canary_set(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room);
/* Fill a freed block with junk. */
BA_HIDDEN void ba_chk_fill_freed(const struct beamalloc_gpa *g,
    unsigned char *p, size_t room);
/* True when a freed block still holds only junk. */
BA_HIDDEN bool ba_chk_freed_ok(const struct beamalloc_gpa *g,
    unsigned char *p, size_t room);

/* A freed block waiting in quarantine: a small slot (room its slot size)
 * or a large block (room its backing length). */
struct ba_qent {
	uintptr_t p;
	size_t room, len;
	uint8_t lalign;
	bool large;
};

BA_HIDDEN struct ba_quar *ba_quar_new(beamalloc_allocator backing,
    size_t limit);
BA_HIDDEN void ba_quar_delete(struct ba_quar *q);
/* Hold e; false when there is no room for it (release it now). */
BA_HIDDEN bool ba_quar_push(struct ba_quar *q, const struct ba_qent *e);
/* Take the oldest entry while more than limit bytes wait. */
BA_HIDDEN bool ba_quar_pop(struct ba_quar *q, size_t limit,
    struct ba_qent *out);
BA_HIDDEN size_t ba_quar_limit(const struct ba_quar *q);

/* ------------------------------------------------------------------------
 * Guard pages (gpa_guard.c): a sampled block placed against a PROT_NONE
 * page, and a SIGSEGV handler that names it.
 * ---------------------------------------------------------------------- */

/* Map a block of len bytes aligned to align whose end touches a guard
 * page; NULL when out of room or memory.  trace: depth frames (or
 * NULL), kept for the handler's message with the call site ra. */
BA_HIDDEN void *ba_guard_alloc(const void *owner, size_t len, size_t align,
    uintptr_t ra, const uintptr_t *trace, unsigned depth);
/* Freed: its pages become inaccessible; the handler names a later use. */
BA_HIDDEN void ba_guard_free(void *p);
/* Unmap every block of owner (destroy). */
BA_HIDDEN void ba_guard_release(const void *owner);

/* ------------------------------------------------------------------------
 * Helpers of the fast paths
 * ---------------------------------------------------------------------- */

/* class_of() + MIN_SHIFT - 1 for the fast path, with fewer
 * instructions: for a power of two align, ceil(log2(max(len, align)))
 * is the bit length of (len - 1) | (align - 1), and this is its highest
 * bit (one bsr, unsigned: no sign extension, and the MIN_SHIFT - 1 goes
 * into the address of the class's data).  len == 0 (never from the
 * front-end) gives a class past the last, so the general path sees it
 * as before. */
static inline size_t
class_bit_fast(size_t len, size_t align)
{
	unsigned long long x = (len - 1) | (align - 1) | 7;
#if defined(__x86_64__)
	size_t b;

	/* GCC keeps __builtin_clzll()'s int: a sign extension, and a
	 * subtraction it does not fold into the address. */
	__asm__("bsrq %1, %0" : "=r" (b) : "r" (x) : "cc");
	return b;
#else
	return (size_t)(63 - __builtin_clzll(x));
#endif
}

static inline unsigned
log2_of(size_t pow2)
{
	return (unsigned)__builtin_ctzll(pow2);
}

static inline uint8_t
state_get(const unsigned char *rec)
{
	return __atomic_load_n(rec, __ATOMIC_RELAXED);
}

static inline void
state_set(unsigned char *rec, uint8_t s)
{
	__atomic_store_n(rec, s, __ATOMIC_RELAXED);
}

/* USED -> FREE as one atomic step: of two frees of one block racing on
 * two threads, exactly one wins; the other sees FREE and is reported.
 * Relaxed: the slot's contents are handed on by the magazine push that
 * follows, under the cache's own ordering. */
static inline bool
state_release(unsigned char *rec)
{
	unsigned char used = REC_USED;

	return __atomic_compare_exchange_n(rec, &used, REC_FREE, false,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Identifies the calling thread without thread-local storage: the
 * thread pointer (glibc's pthread_self) is unique among live threads. */
static inline uintptr_t
thread_key(void)
{
#if defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer) && \
    (defined(__x86_64__) || defined(__aarch64__))
	return (uintptr_t)__builtin_thread_pointer();
#endif
#endif
	return (uintptr_t)pthread_self();
}

/* The home slot of a thread pointer: a 32-bit Fibonacci hash (one
 * multiply by an immediate).  Thread pointers differ in the bits above
 * the page offset, well within the low 32; a rare collision only costs
 * the probe of tcache_slow(). */
static inline size_t
thread_home(uintptr_t k)
{
	return (uint32_t)k * 0x9E3779B1u >> (32 - NTHREADS_BITS);
}

/* The entry for p's slab: the byte offset straight from the address
 * (shift and mask, no scaling). */
static inline struct memo *
memo_of(struct tcache *tc, uintptr_t p)
{
	_Static_assert(sizeof(struct memo) == 64, "struct memo: 64 bytes");
	return (struct memo *)(void *)((unsigned char *)tc->memo +
	    ((p >> (SLAB_SHIFT - 6)) & ((NMEMO - 1) << 6)));
}

/* Fast: the cache in the home slot of the thread pointer, if it is the
 * calling thread's (its cache is then set).  The owner's own store made
 * the slot point to its cache, so the plain loads see it; another
 * thread's cache (or no_tc) never holds this thread pointer. */
static inline bool
tcache_mine(struct beamalloc_gpa *g, struct tcache **tc)
{
	uintptr_t k = thread_key();

	*tc = atomic_load_explicit(&g->tcs[thread_home(k)],
	    memory_order_acquire);	/* a plain mov on x86 */
	return (*tc)->owner == k;
}

/* The owner starts an operation on its magazines.  With the store-load
 * order that membarrier() forces on this thread (steal_idle()), either
 * the thread taking them sees busy, or this one then loads the
 * sentinels it wrote first: a compiler barrier is all it costs here. */
static inline void
tc_mark(struct tcache *tc)
{
	__atomic_store_n(&tc->busy, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* The same for a general path, which may change the bounds: false if
 * another thread is taking the magazines. */
static inline bool
tc_enter(struct tcache *tc)
{
	tc_mark(tc);
	if (BA_UNLIKELY(__atomic_load_n(&tc->steal, __ATOMIC_ACQUIRE) != 0)) {
		__atomic_store_n(&tc->busy, 0, __ATOMIC_RELEASE);
		return false;
	}
	return true;
}

/* (Operations on the magazines never nest: every path leaves before it
 * calls anything that could come back into the GPA.) */
static inline void
tc_leave(struct tcache *tc)
{
	__atomic_store_n(&tc->busy, 0, __ATOMIC_RELEASE);
}

/* A GPA made with thread_safe off and safety on notes the thread inside
 * it (a plain store: Zig's DebugAllocator checks its dummy mutex the same
 * way), so that a second thread coming in meets the first.  st_in():
 * false when another thread is inside (the general path reports it);
 * else the mark is set, and *prev is what to put back (0, or this
 * thread's own mark when calls nest: a report callback may allocate). */
static inline bool
st_in(struct beamalloc_gpa *g, uintptr_t *me, uintptr_t *prev)
{
	*me = thread_key();
	*prev = atomic_load_explicit(&g->st_owner, memory_order_relaxed);
	if (BA_UNLIKELY(*prev != 0 && *prev != *me))
		return false;
	atomic_store_explicit(&g->st_owner, *me, memory_order_relaxed);
	return true;
}

/* Leaving: false, and the mark left alone, when another thread's mark
 * is where ours should be (it came in unseen, at the same instant). */
static inline bool
st_left(struct beamalloc_gpa *g, uintptr_t me, uintptr_t prev)
{
	if (BA_UNLIKELY(atomic_load_explicit(&g->st_owner,
	    memory_order_relaxed) != me))
		return false;
	atomic_store_explicit(&g->st_owner, prev, memory_order_release);
	return true;
}

/* The fast paths: one subtraction and a sign test for an alloc, one
 * addition for a free.  A free does not test for a large negative
 * credit (a thread freeing what others allocated): its slow paths do,
 * in credit(), and it reaches them at least once per magazine it fills,
 * so such a credit stays within CREDIT_BATCH plus what the thread's
 * magazines hold; exact all the same for one thread. */
static inline bool
credit_up(struct tcache *tc, size_t bytes)
{
	tc->room -= (ptrdiff_t)bytes;
	return BA_UNLIKELY(tc->room < 0);	/* ba_gpa_credit_high() */
}

static inline void
credit_down(struct tcache *tc, size_t bytes)
{
	tc->room += (ptrdiff_t)bytes;
}

static inline void
rec_fill(unsigned char *rec, size_t len, size_t align, uintptr_t ra)
{
	struct rec *sr = (void *)rec;

	sr->len = (uint16_t)len;
	sr->lalign = (uint8_t)log2_of(align);
	sr->ra = ra;
}

/* With safety off nothing writes a record's length or alignment: its
 * first word is then the state and the trace id alone, and one compare
 * finds a live block that was not traced. */
static inline bool
rec_used_untraced(const unsigned char *rec)
{
	_Static_assert(offsetof(struct rec, state) == 0 &&
	    offsetof(struct rec, tid) == 4 && offsetof(struct rec, ra) == 8,
	    "struct rec: state, lalign and len, then tid, in one word");
	return __atomic_load_n((const uint64_t *)(const void *)rec,
	    __ATOMIC_RELAXED) == REC_USED;
}

static inline bool
rec_matches(const unsigned char *rec, size_t len, size_t align)
{
	const struct rec *sr = (const void *)rec;

	return sr->len == len && sr->lalign == log2_of(align);
}

/* ------------------------------------------------------------------------
 * The fast paths
 * ---------------------------------------------------------------------- */

/* The fast paths, one per (thread_safe, safety) pair, for GPAs without
 * traces, memory limit or memory checker: a pop or push on the thread's
 * bin, the state byte, the credit.  Anything else (an empty or full bin,
 * a large block, a bad free, a thread without a home slot) goes to the
 * general path, which checks everything again.  With sample, for GPAs
 * that trace 1 allocation in N: the thread's countdown sends every Nth
 * allocation, and the free of a traced block, to the general path;
 * the others clear the record's trace id.  With check (canary or junk,
 * neither quarantine nor traces), the checks and fills of gpa_check.c
 * around the pop and the push; a bad canary goes to the general path,
 * which reports it. */
static inline __attribute__((always_inline)) void *
ba_gpa_fast_alloc_chk(void *ctx, size_t len, size_t align, uintptr_t ra,
    bool ts, bool safety, bool sample, bool check)
{
	struct beamalloc_gpa *g = ctx;
	/* A canary needs one byte of slack at least (as class_of()). */
	size_t b = class_bit_fast(len + (check && g->canary), align);
	struct tcache *tc;
	struct entry *top, e;
	uintptr_t me = 0, prev = 0;
	bool st = !ts && safety, over;
	size_t c;

	/* The general path checks the single-thread mark itself. */
	if (BA_UNLIKELY(b >= MAX_SHIFT))
		return ba_gpa_alloc(ctx, len, align, ra);
	if (!ts) {
		tc = g->tc0;
		if (st && BA_UNLIKELY(!st_in(g, &me, &prev)))
			return ba_gpa_alloc(ctx, len, align, ra);
	} else if (BA_UNLIKELY(!tcache_mine(g, &tc)))
		return ba_gpa_alloc(ctx, len, align, ra);
	else
		tc_mark(tc);
	c = b - (MIN_SHIFT - 1);
	top = tc->top[c];
	/* Ordered, not equal: a trim's sentinel bot is above any top. */
	/* The countdown passing 0 leaves it below for the general path,
	 * whose own decrement then finds it expired (a sign test, as for
	 * the credit). */
	if (BA_UNLIKELY((uintptr_t)top <= (uintptr_t)tc->bot[c] ||
	    (sample && (tc->sample_left -= 1) < 0))) {
		if (ts)
			tc_leave(tc);
		else if (st)
			(void)st_left(g, me, prev);
		return ba_gpa_alloc(ctx, len, align, ra);
	}
	tc->top[c] = --top;
	/* Copied while the magazine is still this thread's: once it leaves,
	 * a trim may hand the magazine to another thread, which pushes
	 * over the entry. */
	e = *top;
	if (ts)
		tc_leave(tc);
	if (check)
		ba_gpa_chk_new(g, e.p, e.rec, len, (size_t)2 << b);
	if (safety)
		rec_fill(e.rec, len, align, ra);
	if (sample)
		((struct rec *)(void *)e.rec)->tid = 0;
	state_set(e.rec, REC_USED);
	over = credit_up(tc, len);
	if (st && BA_UNLIKELY(!st_left(g, me, prev)))
		return ba_gpa_st_late(g, tc, e.p, NULL, len, align, ra, over);
	if (over)
		return ba_gpa_credit_high(g, tc, e.p);
	return e.p;
}

static inline __attribute__((always_inline)) void
ba_gpa_fast_free_chk(void *ctx, void *mem, size_t len, size_t align,
    uintptr_t ra, bool ts, bool safety, bool sample, bool check)
{
	struct beamalloc_gpa *g = ctx;
	uintptr_t p = (uintptr_t)mem, off;
	unsigned char *rec;
	struct tcache *tc;
	struct entry *top, **tp;
	struct memo *m;
	uintptr_t me = 0, prev = 0;
	bool st = !ts && safety;

	if (!ts) {
		tc = g->tc0;
		if (st && BA_UNLIKELY(!st_in(g, &me, &prev)))
			goto general;
	} else if (BA_UNLIKELY(!tcache_mine(g, &tc)))
		goto general;
	else
		tc_mark(tc);
	m = memo_of(tc, p);
	off = p - m->base;
	if (BA_UNLIKELY(off >= SLAB_SIZE || m->epoch !=
	    atomic_load_explicit(&g->epoch, memory_order_relaxed))) {
		/* Not a remembered slab, or slabs were released since: a
		 * tail call, so that no call is left on the fast path to
		 * need a stack frame. */
		if (ts)
			tc_leave(tc);
		else if (st)
			(void)st_left(g, me, prev);
		ba_gpa_memo_miss(g, tc, mem, len, align, ra);
		return;
	}
	/* Not the start of a slot: the general path reports it. */
	if (BA_UNLIKELY((off & m->mask) != 0))
		goto leave;
	rec = m->recs + ((off * m->mul) >> 32);
	/* Not USED (a double free; or the read-only records of no slab,
	 * never to be written) goes to the general path, which reports;
	 * so does a traced block, whose free is traced too. */
	if (BA_UNLIKELY(sample && !safety ? !rec_used_untraced(rec) :
	    state_get(rec) != REC_USED ||
	    (safety && !rec_matches(rec, len, align)) ||
	    (sample && ((const struct rec *)(const void *)rec)->tid != 0)))
		goto leave;
	if (check && g->canary && BA_UNLIKELY(!ba_chk_canary_ok(g, mem, len,
	    m->mask + 1)))
		goto leave;
	tp = m->top;
	top = *tp;
	/* Ordered: a trim's sentinel end is below any top.  Then the slot
	 * is claimed.  With safety, once other threads may free too,
	 * atomically, so that of two frees racing exactly one wins (loaded
	 * after tc_mark(): go_shared() waits for a fast path that read it
	 * clear).  Without, two plain stores: the speed configuration, whose
	 * double frees are caught unless they race. */
	if (BA_UNLIKELY((uintptr_t)top >= (uintptr_t)tp[LD_END]))
		goto leave;
	if (ts && safety && atomic_load_explicit(&g->shared,
	    memory_order_relaxed)) {
		if (BA_UNLIKELY(!state_release(rec)))
			goto leave;
	} else
		state_set(rec, REC_FREE);
	if (check && g->junk)
		ba_chk_fill_freed(g, mem, m->mask + 1);
	*top = (struct entry){ mem, rec };
	*tp = top + 1;
	if (ts)
		tc_leave(tc);
	credit_down(tc, len);
	if (st && BA_UNLIKELY(!st_left(g, me, prev)))
		(void)ba_gpa_st_late(g, tc, NULL, mem, len, align, ra, false);
	return;
leave:
	if (ts)
		tc_leave(tc);
	else if (st)
		(void)st_left(g, me, prev);
general:
	ba_gpa_free(ctx, mem, len, align, ra);
}

static inline __attribute__((always_inline)) void *
ba_gpa_fast_alloc(void *ctx, size_t len, size_t align, uintptr_t ra, bool ts,
    bool safety, bool sample)
{
	return ba_gpa_fast_alloc_chk(ctx, len, align, ra, ts, safety, sample,
	    false);
}

static inline __attribute__((always_inline)) void
ba_gpa_fast_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra,
    bool ts, bool safety, bool sample)
{
	ba_gpa_fast_free_chk(ctx, mem, len, align, ra, ts, safety, sample,
	    false);
}

#endif /* BEAMALLOC_GPA_H */
