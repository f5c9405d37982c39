/*
 * gpa.h - the general purpose allocator: size classes (four per power of
 * two) with leak detection and bad-free reports, fast enough to leave
 * switched on.
 * Private to the library.  This header has its data structures, the
 * prototypes its files share (hidden, prefixed ba_gpa_) and the fast
 * paths, which the front-end includes to call the library's own
 * thread-safe GPAs directly, without the indirect call through the
 * vtable (the global GPA is what NIF code calls most).
 * The files, by concern: alloc.c (size classes, credit, small blocks,
 * vtables: the hot group, one unit so it inlines), tcache.c (thread
 * caches and their magazines), depot.c (the depots and trims), backing.c,
 * table.c, large.c, quarantine.c, exit.c, leak.c (leaks, trimming),
 * create.c, global.c, lease.c, and check.c, guard.c, trace.c, decay.c.
 *
 * Small blocks (up to 16 KiB, alignment included) live in slabs carved
 * from regions taken from the backing allocator (the backing only needs
 * to give 8-byte alignment): a slab is one 32 KiB frame, aligned to it,
 * for the classes up to 4 KiB, two (64 KiB, aligned to that) for the
 * larger ones.  A region's unaligned head and tail (a frame less 8 bytes
 * together) are parts of the frames on either side: each of 8 KiB or
 * more is a partial slab, with fewer slots (its records indexed from
 * the frame's start, up to its last slot), where a one-frame class gets
 * its first slab; a pointer past its slots (another block of the
 * backing's) is not a slot.  Every slot has a
 * record out of band, in the slab's metadata: a state byte (new, used,
 * freed) and, with safety on, the requested length, alignment and call
 * site.  A hash table maps each frame of a slab to its records, so a
 * free finds its slot in O(1) and a pointer the GPA never gave out finds
 * nothing.  Larger or more aligned blocks come straight from the backing
 * allocator and are kept in a second hash table.
 *
 * Speed: each thread has a cache, found without thread-local storage
 * from the thread pointer, holding two magazines per size class (stacks
 * of free slots and their records, never written into the free blocks
 * themselves).  Magazines are traded whole with the cache's own depot of
 * the class under a lock (Bonwick's design), so the lock is rare.  The
 * depot carves its own slabs, and its cache is handed only their slots
 * (mimalloc's pages, ERTS's carriers): a slot freed by another thread
 * goes into that thread's outbox of the class, and from there home, a
 * magazine at a time.  So no two threads are handed slots of one slab
 * (but for shared slabs: a depot's first slots of a class up to
 * SHARE_MAX are a quarter of a slab it shares with up to three other
 * depots once SHARE_CACHES threads have caches, so that a thread's
 * first few blocks hold 8 KiB, not 32; no slot crosses a quarter), and
 * none writes into a cache line another thread's blocks are in.
 * The state byte makes leak detection exact whatever sits in caches
 * (cached slots are freed, not live) and catches a double free even
 * with safety off.  GPAs with
 * no traces, no memory limit and no memory checker watching get
 * specialized vtables whose functions do only this:
 *
 *   alloc:  class -> thread cache -> pop {slot, record} -> record = used
 *   free:   thread cache -> slab (a memo of recent ones, else the
 *           table) -> record: used? (and right length and alignment)
 *           -> freed -> push (onto the class's magazine, or its
 *           outbox when the memo says the slab is another cache's)
 *
 * and hand anything else (an empty or full magazine, a large block, a
 * bad free, a thread without its own cache) to the general functions.
 *
 * Memory goes back to the backing when it is no longer needed.  A thread
 * cache holds about TC_BYTES of free slots at most (its slow paths send
 * the excess home, outboxes first, then spare magazines to its depot).
 * A depot grown by as much as it held at its last trim, or that must
 * (or likely does) hold many whole slabs, is trimmed: it counts its free
 * slots per slab, and a slab whose slots are all there is taken out of
 * its magazines, out of the table and given back with its records; a
 * region whose slabs are all given back goes back too (one slab still
 * in use keeps its region), unless the empty regions kept for the next
 * slabs stay within REGION_SPARE: those go at a full trim.  A trim made
 * as a depot grows keeps all-free slabs, an eighth of its class's or
 * more while the kept slabs of every class stay within KEEP_FREE (once
 * the others hold half of it, a class of the cache idle for IDLE_TRADES
 * of its trades gives its own back to make room); a
 * full trim keeps none.  A thread remembers the slabs it freed into
 * (the memo) with the GPA's epoch, which every release advances, so a
 * slab's address may come back for another class.  A leak check trims
 * everything: it also empties the caches of threads not inside the GPA
 * at the time (ba_gpa_steal_idle()).
 */
#ifndef BEAMALLOC_GPA_H
#define BEAMALLOC_GPA_H

#include <pthread.h>
#include <stdatomic.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "internal.h"

/* Slabs are a frame (32 KiB, aligned to it) for the classes up to
 * FRAME_MAX, and two frames (64 KiB, aligned to that) for the larger
 * ones, which then still get four slots or more a slab.  Each class
 * holds a slab being carved, half of it uncarved on average: with 64
 * KiB slabs for every class, 10,000 random blocks of up to 4 KiB (6.7
 * MB) left 1 MB uncarved (bench/README.md, "Slabs of one 32 KiB
 * frame").  The slab table and the memo are by frame. */
#define FRAME_SHIFT 15
#define FRAME_SIZE ((size_t)1 << FRAME_SHIFT)
#define SLAB_SHIFT 16			/* the largest slab */
#define SLAB_SIZE ((size_t)1 << SLAB_SHIFT)
#define FRAME_MAX 4096			/* slots of one-frame slabs, */
#define FRAME_CLASSES 32		/* classes 0 .. 31 */
/* Small classes: 8, 16, 24 and 32 bytes, then four per power of two
 * (40, 48, 56, 64, 80, 96, ... 14336, 16384), as jemalloc and mimalloc
 * space theirs: a block wastes 1/8 of its slot on average, not 1/3 as
 * with powers of two.  A slot of class c is class_size(c) bytes, the
 * largest SMALL_MAX. */
#define NCLASS 40
#define SMALL_MAX 16384
#define MAG_MAX 255			/* slots per magazine */
#define MAG_BYTES (16 * 1024)		/* and at most this many bytes' worth */
#define CARVE_MIN 8			/* fresh slots in a first refill */
#define TC_BOUND_EVERY 8		/* slow paths per check of TC_BYTES */
#define TC_BYTES (256 * 1024)		/* free slots a thread cache keeps */
#define TRIM_MIN (64 * 1024)		/* depot bytes below which no trim */
#define DECAY_MS_VM 500			/* default decay_ms in the VM */
#define REGION_FRAMES 16		/* regions grow to 512 KiB */
#define REGION_SPARE (8u << 20)		/* empty regions kept until a full
					   trim (bench/README.md) */
#define KEEP_FREE (8u << 20)		/* all-free slabs the growth trims
					   keep, in all classes, until a
					   full trim (bench/README.md) */
#define MAG_KEEP (2u << 20)		/* empty magazines the growth trims
					   and sweeps keep, for all depots,
					   until a full trim (depot.c) */
#define SWEEP_MIN (32u << 20)		/* slab bytes, past the last sweep,
					   for a mass of frees to be swept */
#define SWEEP_FIRST 512			/* once slabs are this many times
					   live (ba_gpa_sweep()), */
#define SWEEP_NEXT 2			/* again each time live is this
					   many times less, */
#define SWEEP_LAST 1024			/* while it was this much at least */
#define LKEEP_N 8			/* freed large blocks kept, */
#define LKEEP_BYTES (8u << 20)		/* in all at most, until a trim */
#define LSLACK_MAX (8u << 20)		/* live large blocks' slack past
					   twice their length (large.c) */
#define IDLE_TRADES 64			/* a class that traded no magazine
					   in as many of its cache's trades
					   gives its kept slabs to one that
					   trims, when they run short */
#define TAIL_MIN (8 * 1024)		/* a region's tail worth a slab */
#define TAIL_SLOTS 4			/* slots a class needs in one */
#define QUARTER_SHIFT (FRAME_SHIFT - 2)	/* a shared slab's four parts */
#define NQUARTER 4
#define SHARE_MAX 4096			/* classes whose depots start on a
					   quarter of a shared slab, */
#define SHARE_CACHES 8			/* once the GPA has this many
					   thread caches (bench/README.md) */
_Static_assert(SHARE_MAX <= FRAME_MAX, "shared slabs are one frame");
#define REGION_HEAD 63			/* the head frame's bit */
#define STAB_TOMB ((uintptr_t)1)	/* a released slab's table key */
#define TKEY_TOMB ((uintptr_t)1)	/* a thread cache slot given back */
#define META_CHUNK (32 * 1024)		/* metadata blocks, when needed */
#define NTHREADS_BITS 8			/* thread caches found by hashing */
#define NTHREADS (1 << NTHREADS_BITS)
#define CREDIT_BATCH (256 * 1024)	/* per-thread stats settle past this */
#define HASH_MUL 0x9E3779B97F4A7C15ull
#define NMEMO 512			/* frames each thread remembers (32
				 * KiB), by address: 16 MiB of slabs side
				 * by side without a conflict; a miss costs
				 * a table lookup and a second pass
				 * (bench/README.md) */

/* Traces (trace.c): a frame-pointer walk, and the stack depot that
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

BA_HIDDEN bool ba_gpa_config_ok(const beamalloc_gpa_config *cfg);
BA_HIDDEN void ba_gpa_config_read(beamalloc_gpa_config *out,
    const beamalloc_gpa_config *cfg);

/* Slot states; records start zeroed, as REC_NEW.  REC_LOST: freed, but
 * no magazine could be had for it (out of memory): in no cache, found
 * again by the next trim (ba_gpa_lost_recover()). */
enum { REC_NEW, REC_USED, REC_FREE, REC_LOST };

/* A slot's record with safety or traces on; else only the state byte. */
struct rec {
	uint8_t state;
	uint8_t lalign;			/* log2 of the alignment asked */
	uint16_t len;			/* requested length */
	uint32_t tid;			/* traces on: the allocation's trace in
					   the depot, 0: none (not sampled) */
	uintptr_t ra;			/* call site of the allocation */
};

_Static_assert(sizeof(struct rec) == 16, "the fast free's record size");
_Static_assert(SMALL_MAX <= UINT16_MAX,
    "struct rec's len must hold the largest class");

/* One slab's metadata; records follow the header. */
struct slab {
	uintptr_t base;			/* slots, aligned to slab_span() */
	struct slab *next, *prev;	/* every slab, newest first */
	uint32_t *ftids;		/* per slot: the first free's trace id
					   (traces on), or NULL */
	struct region *region;
	struct depot *home;		/* the depot that carved it; NULL:
					   a shared slab (qhome) */
	void *meta;			/* the block holding this header, */
	size_t meta_len;		/* records and traces */
	uint32_t nslots;
	/* A trim's next to release; on g->reset[cls], the next there (no
	 * slot of such a slab is in a depot, so no trim meets it). */
	struct slab *dead;
	uint32_t stamp, cnt;		/* trim: slots in the depot */
	uint32_t size;			/* slot size */
	uint8_t cls;			/* size class */
	uint32_t first;			/* first slot (a region's head slab:
					   the slots below are not ours) */
	/* A shared slab: four quarters of its frame, each carved by its
	 * own depot (qhome, NULL while free, Q_VOID for a quarter with no
	 * slot), so that a thread's first slab of a class costs a quarter
	 * of a frame, not a frame (bench/README.md).  Quarter q has the
	 * qn[q] slots from qlo[q] that lie wholly within it: no cache line
	 * holds two quarters' slots.  Under g->lock but for loads of
	 * qhome (a slot's home, the memo). */
	_Atomic(struct depot *) qhome[NQUARTER];
	uint16_t qlo[NQUARTER], qn[NQUARTER];
	uint32_t qcnt[NQUARTER];	/* trim: slots in the depot */
	uint8_t qdead;			/* trim: quarters all in it */
	struct slab *qnext, *qprev;	/* g->qavail[cls]: a quarter free */
	_Alignas(16) unsigned char recs[];
};
#define Q_VOID ((struct depot *)1)

/* A block of up to REGION_FRAMES frames from the backing; this header
 * sits at its start (or is the GPA's metadata: meta).  Frame nframes,
 * when tail is not 0, is a partial one: its first tail bytes are the
 * region's; so are the last head bytes of the frame below base (bit
 * REGION_HEAD of used). */
struct region {
	void *mem;
	size_t len;
	uintptr_t base;			/* first whole frame */
	uint64_t used;			/* bit i: frame i in a slab */
	uint32_t nframes;
	uint32_t head, tail;		/* bytes of the partial frames, or 0 */
	bool spare;			/* empty, kept (g->spare) */
	bool meta;			/* the header is not in the block */
	bool avail;			/* on g->ravail */
	struct region *next, *prev;
	struct region *anext, *aprev;	/* g->ravail */
};

/* Slab table entry: key = frame | class, so one load finds both; with
 * the slab's records and where its slots lie, so that a pointer from
 * outside them (a partial slab's frame holds other blocks: a large block
 * beside the region) is told apart without reading the slab's header,
 * which another thread may be writing or giving back.  The fields after
 * the key are read between two loads of it (slab_find()). */
struct sent {
	_Atomic uintptr_t key;		/* 0: empty */
	unsigned char *_Atomic recs;
	_Atomic uint64_t slots;		/* SLOTS(lo, hi, memo) */
};
/* Where the slots lie (bytes [lo, hi) past the slab's base), and how
 * many slots the memo's base is moved by (memo_fill()), signed. */
#define SLOTS(lo, hi, memo) ((uint64_t)(lo) | (uint64_t)(hi) << 21 | \
	(uint64_t)(int64_t)(memo) << 42)
#define SLOTS_LO(x) ((uint32_t)((x) & 0x1fffff))
#define SLOTS_HI(x) ((uint32_t)((x) >> 21 & 0x1fffff))
#define SLOTS_MEMO(x) ((int32_t)((int64_t)(x) >> 42))

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
 * slot size and its inverse, records, and the class's loaded magazine.
 * Free then needs neither the table nor the class. */
struct memo {
	uintptr_t base;
	/* 2^32 / slot size, rounded up: one multiply of an offset (below
	 * 2^16) by it gives the slot's index (bits 32 and up) and whether
	 * the offset is a slot's start (bits 0-31 below div; Lemire,
	 * Kaser and Kurz, "Faster remainder by direct computation",
	 * 2019).  Slot sizes are not all powers of two. */
	uint64_t div;
	unsigned char *recs;
	struct entry **top;		/* &tc->top[class] */
	uintptr_t epoch;		/* the GPA's epoch when filled */
	uintptr_t size;			/* slot size (canary and junk) */
	uintptr_t pad[2];		/* 64 bytes: the index is a shift */
};

/* A thread cache's store of one class (Bonwick's depot, one per cache
 * and class rather than per class): full (or partly full) and empty
 * magazines, and the slab being carved.  Its slabs are its own: it
 * carved them, and only its cache is handed their slots (other threads
 * free theirs back to it through their outboxes).  Under its lock: the
 * owner's refills and flushes, other threads' outbox flushes, trims.
 * Whole cache lines (the union pads it): two with glibc's 40-byte
 * mutex (x86-64), three with a larger one (48 bytes on arm64). */
#define DEPOT_BYTES (sizeof(pthread_mutex_t) <= 40 ? 128 : 192)
struct depot {
	union {
		struct {
			pthread_mutex_t lock;
			struct mag *full, *empty;
			struct slab *cur;
			uint32_t next_slot;	/* carved from cur's */
			uint32_t cur_lo, cur_hi; /* slots [lo, hi) */
			uint32_t mag_cap;
			uint32_t carve;	/* 0 until the first refill
					   (slow start) */
			uint32_t nkept;	/* slabs the last trim found
					   all free and kept */
			uint32_t traded; /* its cache's trades at its
					   last (relaxed atomics) */
			uint32_t nslabs; /* slabs (and quarters of
					   shared ones) of this class */
			size_t nfull;	/* slots in the full magazines */
			size_t trim_at;	/* trim when their bytes pass
					   this */
			size_t nslots;	/* and their slots (partial
					   slabs have fewer) */
			size_t ntrim;	/* nfull after the last trim */
		};
		char lines[DEPOT_BYTES];
	};
};
_Static_assert(sizeof(struct depot) == DEPOT_BYTES, "struct depot: whole "
    "lines");

/* From &tc->top[c] to &tc->end[c], and from &tc->otop[c] to
 * &tc->oend[c]. */
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
	unsigned slow;			/* slow paths, for tc_bound() */
	uint32_t trades;		/* with its depots; by the owner,
					   read by trims (relaxed) */
	/* Allocations until the next one the fast paths send to the
	 * general path: every fast path counts down, and the general path
	 * starts again from N (sampled traces, guard pages: it samples
	 * this one) or, with neither, from INT_MAX.  On the line of owner
	 * and room, which every fast path touches already. */
	int sample_left;
	ptrdiff_t hi;
	struct tcache *next;		/* every cache of this GPA */
	/* Slabs this thread freed into lately, direct-mapped by address
	 * (stale once the GPA's epoch moves on).  Each entry on a line of
	 * its own (in a cache only 16-byte aligned, most spanned two). */
	_Alignas(64) struct memo memo[NMEMO];
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
	/* The outbox of each class, the same way: free slots of other
	 * caches' slabs, on their way home (a memo of such a slab points
	 * the fast free here, not at top[c]).  obot[c] is its base, never
	 * a sentinel: what lies between obot and otop was freed here. */
	struct entry *otop[NCLASS];
	struct entry *obot[NCLASS];
	struct entry *oend[NCLASS];
	struct mag *out[NCLASS];
	/* Live blocks, with no counter on the fast paths: mark[c] - top[c]
	 * (in entries) is what class c's loaded magazine has given out,
	 * pops less pushes, since it was loaded; nblk holds what earlier
	 * magazines gave.  Rewritten only when a magazine is loaded, while
	 * seq is odd, so that stats read a consistent sum. */
	uintptr_t mark[NCLASS];
	ptrdiff_t nblk;
	unsigned seq;
	struct tcache *free_next;	/* g->tc_free: its thread ended */
	/* On g->tc_free: written under g->lock, read without it by another
	 * cache's outbox (a hint, looked at again under the lock). */
	unsigned ended;
	/* The cache of an ended thread that this one's outbox went home to:
	 * taken over at the end of the free (ba_gpa_tc_adopt()), unless it
	 * is adopt_no, the last one not taken.  The owner's. */
	struct tcache *adopt, *adopt_no;
	struct depot dep[NCLASS];	/* this cache's slabs, by class */
};
_Static_assert(offsetof(struct tcache, end) -
    offsetof(struct tcache, top) == LD_END * sizeof(struct entry *) &&
    offsetof(struct tcache, oend) - offsetof(struct tcache, otop) ==
    LD_END * sizeof(struct entry *), "the fast free's bound at LD_END");


/* A large block's record. */
struct large {
	uintptr_t addr;			/* 0: empty slot */
	size_t len;
	size_t held;			/* from the backing: len and the
					   canary's room, or more (a kept
					   block handed out again) */
	uintptr_t ra;
	uint8_t lalign;
	uint8_t state;			/* LG_* */
	uint8_t guard;			/* placed by guard.c */
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

/* A freed large block kept for the next (large.c). */
struct lkept {
	uintptr_t addr;
	size_t held;
	uint8_t lalign;			/* of its allocation from the backing */
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

/* g->shared: whether every free claims its slot atomically. */
enum { SHARED_NO, SHARED_GOING, SHARED_YES };

struct beamalloc_gpa {
	/* Read by every operation. */
	/* Thread cache slots: the cache (&no_tc while free), which holds
	 * its owner's thread pointer, so that one load from here finds
	 * both; and the key claimed, which only tcache_slow() reads. */
	struct tcache *_Atomic tcs[NTHREADS];
	_Atomic uintptr_t tkey[NTHREADS];
	_Atomic(struct stab *) stab;
	_Atomic uintptr_t epoch;	/* advanced by every slab release */
	/* Set once a thread frees a slot another cache handed out, in a
	 * GPA with safety (go_shared()): from then on every free claims its
	 * slot with an atomic compare-exchange.  Before, each slot is freed
	 * only by the thread whose cache handed it out, and its fast frees
	 * use plain loads and stores: no other free can race them.  (The
	 * general paths always claim atomically.)  Not at a second thread:
	 * a NIF's schedulers mostly free their own temporaries, and the
	 * compare-exchange took 4.4 of a 64 B pair's 11.7 ns.  SHARED_GOING
	 * while the first such free waits for the fast frees in flight: the
	 * fast frees claim atomically from then on, but a claim off them
	 * waits for SHARED_YES. */
	_Atomic unsigned shared;
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

	/* Structure: regions, slabs, metadata, caches. */
	pthread_mutex_t lock;
	struct bblock *bb;		/* every such block, for destroy */
	size_t nbb, bbcap;
	struct chunk chunks[NCHUNKS];
	struct region *regions;
	struct region *ravail;		/* those with a whole frame free */
	struct region *region_free;	/* headers to reuse (metadata) */
	/* Bytes of empty regions kept for the next slabs, up to
	 * REGION_SPARE: a program that fills and empties a few MB over and
	 * over would otherwise hand them to the backing and have its pages
	 * faulted in again each time.  Full trims give them back. */
	size_t spare;
	/* Slabs a sweep found all free, by class, lowest address first:
	 * carved again before any slab is made (ba_gpa_sweep()). */
	struct slab *reset[NCLASS];
	/* Bytes of the slabs the depots have (their spans: not those in
	 * reset), the most since the last sweep, and that sweep's: bytes
	 * live then, and of slabs after it.  Written under g->lock, read
	 * without it: atomic loads and stores. */
	size_t slab_bytes, slab_peak;
	ptrdiff_t sweep_live;
	size_t sweep_slabs;
	/* Bytes of the slabs the depots' last growth trims kept all
	 * free, in all classes (each depot's nkept, by its slabs' span):
	 * they stay within KEEP_FREE, for the same reason. */
	size_t nkept;
	/* Empty magazines the trims kept, by class (all of a class have
	 * one capacity), for any depot of it to take before the backing
	 * is asked; their bytes, within MAG_KEEP.  Under mspare_lock, the
	 * innermost lock: a depot out of empty magazines must not wait
	 * for g->lock, which a trim holds across every depot. */
	pthread_mutex_t mspare_lock;
	struct mag *mspare[NCLASS];
	size_t mkept;
	/* Shared slabs with a quarter free, by class. */
	struct slab *qavail[NCLASS];
	unsigned nregions;
	size_t nkeys, nstab;		/* table keys: live; with tombs */
	_Atomic(struct slab *) slabs;
	unsigned scanning;		/* leak scans walking the slab list */
	struct scan_frame *scans;	/* those walks, under lock */
	uint32_t stamp;			/* of the last trim */
	struct tcache *tcaches;
	unsigned ncaches;		/* in tcaches: the most threads with
					   a cache at once */
	struct tcache *tc_free;		/* caches no thread owns */
	uint64_t gid;			/* thread_safe: unique in the process */
	struct beamalloc_gpa *reg_next;	/* live thread-safe GPAs */
	pthread_mutex_t shared_lock;	/* threads past NTHREADS share tc0;
					   recursive (create.c) */
	pthread_mutex_t steal_lock;	/* one steal_idle() at a time */

	/* Large blocks. */
	pthread_mutex_t large_lock;
	struct large *ltab;
	size_t lcap, lused, llive;	/* slots, live + freed, live */
	size_t lstride;
	struct lkept lkept[LKEEP_N];	/* oldest first */
	unsigned nlkept;
	size_t lkept_bytes;		/* their held bytes */
	size_t lslack;			/* live blocks' slack past twice
					   their length */

	/* Decay (decay.c): trimmed every decay_ms by its thread. */
	unsigned decay_ms;		/* 0: never; set only if registered */
	uint64_t decay_last;		/* ms of the last trim, monotonic */
	struct beamalloc_gpa *decay_next;

	/* Corruption checks (check.c, guard.c); any of them on
	 * routes the GPA to its general vtable. */
	bool canary, junk;
	struct ba_quar *quar;		/* NULL: no quarantine */
	unsigned guard_sample;		/* 0: no guard pages */
	/* Counted by the fast paths in each thread's sample_left (no trace
	 * sampling then: it counts those), else by guard_count. */
	bool guard_fast;
	_Atomic unsigned guard_count;	/* the general path's count */
	/* Freed slots no magazine could be had for (REC_LOST). */
	_Atomic size_t nlost;
};

/* The vtables: the general one first, then the fast ones by
 * [thread_safe][safety] (guarded sampling's too: every fast path counts
 * down for it), then the same with sampled traces, and with canary,
 * junk, or both (GPA_VT_CHK()). */
enum { GPA_VT_GENERAL, GPA_VT_ST, GPA_VT_ST_SAFE, GPA_VT_TS, GPA_VT_TS_SAFE,
    GPA_VT_SAMPLED, GPA_VT_CHECK = GPA_VT_SAMPLED + 4,
    GPA_NVT = GPA_VT_CHECK + 12 };
/* The check vtable of check (BA_CHK_*, not 0), thread_safe and safety. */
#define GPA_VT_CHK(check, ts, safety) \
	(GPA_VT_CHECK + 4 * ((check) - 1) + 2 * (ts) + (safety))
BA_HIDDEN extern const beamalloc_vtable ba_gpa_vtables[GPA_NVT];
/* The thread-safe fast vtables the front-end calls straight, as
 * pointers stored in memory (alloc.c): a compare with one is a single
 * instruction (cmp with a memory operand), where an address needs a lea
 * first. */
enum { BA_FVT_TS, BA_FVT_TS_SAFE, BA_FVT_SAMPLED, BA_NFVT };
BA_HIDDEN extern const beamalloc_vtable *const ba_gpa_fvt[BA_NFVT];
/* Their free functions, the same way (a guarded block is in no slab:
 * the fast free sends it to the general path). */
enum { BA_FFREE_TS, BA_FFREE_SAMPLED, BA_NFFREE };
BA_HIDDEN extern void (*const ba_gpa_ffree[BA_NFFREE])(void *ctx, void *mem,
    size_t len, size_t align, uintptr_t ra);

/* The general paths and the fast paths' slow ends (alloc.c). */
BA_HIDDEN void *ba_gpa_alloc(void *ctx, size_t len, size_t align,
    uintptr_t ra);
BA_HIDDEN void ba_gpa_free(void *ctx, void *mem, size_t len, size_t align,
    uintptr_t ra);
BA_HIDDEN void ba_gpa_memo_miss(struct beamalloc_gpa *g, struct tcache *tc,
    void *mem, size_t len, size_t align, uintptr_t ra);
/* A fast free claimed the slot and found its canary overwritten: the
 * report, then the rest of the free. */
BA_HIDDEN void ba_gpa_free_claimed(struct beamalloc_gpa *g, struct tcache *tc,
    void *mem, unsigned char *rec, size_t len, uintptr_t ra);
BA_HIDDEN void *ba_gpa_credit_high(struct beamalloc_gpa *g, struct tcache *tc,
    void *ret);
BA_HIDDEN void *ba_gpa_st_late(struct beamalloc_gpa *g, struct tcache *tc,
    void *ret, const void *mem, size_t len, size_t align, uintptr_t ra,
    bool over);
/* A reused slot's junk was overwritten: the report. */
BA_HIDDEN void ba_gpa_reused_bad(struct beamalloc_gpa *g, unsigned char *p);

/* Decay: decay.c keeps the registry and its thread, which calls
 * ba_gpa_decay_trim() (leak.c) from outside the GPA. */
BA_HIDDEN bool ba_gpa_decay_register(struct beamalloc_gpa *g, unsigned ms);
BA_HIDDEN void ba_gpa_decay_unregister(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_decay_trim(struct beamalloc_gpa *g);

/* fork(): every lock a child could need is taken before it (prepare),
 * then let go in the parent and made anew in the child, which has only
 * the thread that forked (exit.c's handler, for every GPA). */
enum ba_fork { BA_FORK_PREPARE, BA_FORK_PARENT, BA_FORK_CHILD };
BA_HIDDEN void ba_gpa_decay_fork(enum ba_fork ph);
BA_HIDDEN void ba_depot_fork(struct ba_depot *d, enum ba_fork ph);
BA_HIDDEN void ba_quar_fork(struct ba_quar *q, enum ba_fork ph);
BA_HIDDEN void ba_guard_fork(enum ba_fork ph);

/* One lock through a fork.  In the child a plain mutex is unlocked: the
 * child's one thread is the one that locked it (and ThreadSanitizer,
 * which keeps its own record of a lock, sees a lock taken twice if it is
 * made anew instead).  A recursive one is made anew: its unlock checks
 * its owner's thread id, which the child's thread no longer has. */
static inline void
ba_fork_mutex(pthread_mutex_t *m, enum ba_fork ph, bool recursive)
{
	pthread_mutexattr_t at;

	if (ph == BA_FORK_PREPARE)
		pthread_mutex_lock(m);
	else if (ph == BA_FORK_PARENT || !recursive)
		pthread_mutex_unlock(m);
	else {
		pthread_mutexattr_init(&at);
		pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(m, &at);
		pthread_mutexattr_destroy(&at);
	}
}

/* Unloading: global.c's destructor destroys the idle kept GPAs of
 * lease.c first. */
BA_HIDDEN void ba_gpa_lease_fini(void);

/* ------------------------------------------------------------------------
 * Corruption checks (check.c): canaries after a block's requested
 * length, junk in freed and new blocks, a quarantine of freed blocks.
 * The helpers let memory checkers watch through them (g->tools).
 * ---------------------------------------------------------------------- */

#define BA_JUNK_NEW 0xdb		/* a new block */
#define BA_JUNK_FREED 0xdf		/* a freed block */
#define BA_CANARY_LARGE 16		/* extra bytes of a large block */
#define BA_JUNK_HEAD 1024		/* freed junk: whole up to here, */
#define BA_JUNK_STRIDE 512		/* then one word every this many */

/* What the checks cover, bounded as OpenBSD's malloc bounds its own
 * (chunk canaries: CHUNK_CHECK_LENGTH bytes after the request; freed
 * junk: the first page at a stride): a canary is the first
 * BA_CANARY_MAX bytes of the slack; freed junk is the whole of a block
 * up to BA_JUNK_HEAD bytes and, past them, the first word of every
 * BA_JUNK_STRIDE bytes, in slots of small blocks.  So the work per
 * block is bounded and small blocks, where most overflows and stale
 * writes land, are covered whole.  A large block is junked whole
 * (check.c): it is junked only on its way into quarantine, and costs a
 * call to the backing anyway. */
static inline size_t
ba_junk_head(size_t room)
{
	return room < BA_JUNK_HEAD ? room : BA_JUNK_HEAD;
}

static inline size_t
ba_canary_end(size_t len, size_t room)
{
	return room - len > BA_CANARY_MAX ? len + BA_CANARY_MAX : room;
}

/* The fills and compares themselves, inline so that the fast paths pay
 * no call: 16 bytes at a time at any alignment, the last 16 (or 8)
 * overlapping the one before, so no loop runs byte by byte.  A span
 * below 8 bytes is done in the word that ends it, which must lie in the
 * slot (true of a canary: a slot is 8 bytes at least), and must not be
 * another thread's or a memory checker's to watch: the general paths
 * (check.c) do such spans byte by byte. */
typedef uint64_t ba_v16 __attribute__((vector_size(16), aligned(1)));
#define BA_BYTES8(v) (0x0101010101010101ull * (unsigned char)(v))

static inline __attribute__((always_inline)) uint64_t
ba_ld8(const unsigned char *p)
{
	uint64_t x;

	__builtin_memcpy(&x, p, 8);
	return x;
}

static inline __attribute__((always_inline)) void
ba_st8(unsigned char *p, uint64_t x)
{
	__builtin_memcpy(p, &x, 8);
}

/* No bit set in v (one compare and a mask read on SSE2). */
static inline __attribute__((always_inline)) bool
ba_v16_zero(ba_v16 v)
{
#ifdef __SSE2__
	__m128i x;

	__builtin_memcpy(&x, &v, 16);
	return _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128())) ==
	    0xffff;
#else
	return (v[0] | v[1]) == 0;
#endif
}

/* Every byte of [p, p + n) is the byte of w; n >= 1.  64 bytes a turn,
 * the last 32 overlapping. */
static inline __attribute__((always_inline)) bool
ba_span_is(const unsigned char *p, size_t n, uint64_t w)
{
	if (n >= 32) {
		ba_v16 pat = { w, w }, a0, a1, b0, b1;
		size_t i = 0;

		__builtin_memcpy(&a0, p + n - 32, 16);
		__builtin_memcpy(&a1, p + n - 16, 16);
		a0 ^= pat;
		a1 ^= pat;
		for (; i + 64 < n; i += 64) {
			ba_v16 b2, b3;

			__builtin_memcpy(&b0, p + i, 16);
			__builtin_memcpy(&b1, p + i + 16, 16);
			__builtin_memcpy(&b2, p + i + 32, 16);
			__builtin_memcpy(&b3, p + i + 48, 16);
			a0 |= (b0 ^ pat) | (b2 ^ pat);
			a1 |= (b1 ^ pat) | (b3 ^ pat);
		}
		if (i + 32 < n) {
			__builtin_memcpy(&b0, p + i, 16);
			__builtin_memcpy(&b1, p + i + 16, 16);
			a0 |= b0 ^ pat;
			a1 |= b1 ^ pat;
		}
		return ba_v16_zero(a0 | a1);
	}
	if (n >= 16) {
		ba_v16 pat = { w, w }, a0, a1;

		__builtin_memcpy(&a0, p, 16);
		__builtin_memcpy(&a1, p + n - 16, 16);
		return ba_v16_zero((a0 ^ pat) | (a1 ^ pat));
	}
	if (n >= 8)
		return ((ba_ld8(p) ^ w) | (ba_ld8(p + n - 8) ^ w)) == 0;
	/* The top n bytes of the word ending at p + n. */
	return ((ba_ld8(p + n - 8) ^ w) >> (8 * (8 - n))) == 0;
}

/* Fill [p, p + n) with the byte of w; n >= 1, as above. */
static inline __attribute__((always_inline)) void
ba_span_fill(unsigned char *p, size_t n, uint64_t w)
{
	ba_v16 pat = { w, w };

	if (n >= 32) {
		size_t i = 0;

		for (; i + 64 < n; i += 64) {
			__builtin_memcpy(p + i, &pat, 16);
			__builtin_memcpy(p + i + 16, &pat, 16);
			__builtin_memcpy(p + i + 32, &pat, 16);
			__builtin_memcpy(p + i + 48, &pat, 16);
		}
		if (i + 32 < n) {
			__builtin_memcpy(p + i, &pat, 16);
			__builtin_memcpy(p + i + 16, &pat, 16);
		}
		__builtin_memcpy(p + n - 32, &pat, 16);
		__builtin_memcpy(p + n - 16, &pat, 16);
	} else if (n >= 16) {
		__builtin_memcpy(p, &pat, 16);
		__builtin_memcpy(p + n - 16, &pat, 16);
	} else if (n >= 8) {
		ba_st8(p, w);
		ba_st8(p + n - 8, w);
	} else {
		uint64_t keep = ~0ull >> (8 * n), x = ba_ld8(p + n - 8);

		ba_st8(p + n - 8, (x & keep) | (w & ~keep));
	}
}

/* A freed slot of room <= SMALL_MAX bytes still holds only junk (as far as the
 * bounds above look). */
static inline __attribute__((always_inline)) bool
ba_slot_junk_is(const unsigned char *p, size_t room)
{
	size_t head = ba_junk_head(room);
	bool ok = ba_span_is(p, head, BA_BYTES8(BA_JUNK_FREED));

	if (BA_UNLIKELY(head < room))
		for (size_t i = head; ok && i + 8 <= room;
		    i += BA_JUNK_STRIDE)
			ok = ba_ld8(p + i) == BA_BYTES8(BA_JUNK_FREED);
	return ok;
}

static inline __attribute__((always_inline)) void
ba_slot_junk_fill(unsigned char *p, size_t room)
{
	size_t head = ba_junk_head(room);

	ba_span_fill(p, head, BA_BYTES8(BA_JUNK_FREED));
	if (BA_UNLIKELY(head < room))
		for (size_t i = head; i + 8 <= room; i += BA_JUNK_STRIDE)
			ba_st8(p + i, BA_BYTES8(BA_JUNK_FREED));
}

/* A new block of len bytes in a slot of room > len bytes: junk over
 * the whole block, so that no stale byte is read as data (at least a
 * word: the canary, written after, covers the rest), then the canary. */
static inline __attribute__((always_inline)) void
ba_slot_fill_new(unsigned char *p, size_t len, size_t room, bool junk,
    bool canary)
{
	if (junk)
		ba_span_fill(p, len > 8 ? len : 8, BA_BYTES8(BA_JUNK_NEW));
	if (canary)
		ba_span_fill(p + len, ba_canary_end(len, room) - len,
		    BA_BYTES8(BA_CANARY_BYTE));
}

static inline __attribute__((always_inline)) bool
ba_slot_canary_is(const unsigned char *p, size_t len, size_t room)
{
	return ba_span_is(p + len, ba_canary_end(len, room) - len,
	    BA_BYTES8(BA_CANARY_BYTE));
}

/* Fill a new block: junk over [p, p + len), canary over the rest of its
 * room (as configured). */
BA_HIDDEN void ba_chk_fill_new(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room);
/* True when [p + len, p + room) still holds the canary. */
BA_HIDDEN bool ba_chk_canary_ok(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room);
/* Open (or close again) a block's canary span to a memory checker around
 * a call that lets the backing copy or extend it. */
BA_HIDDEN void ba_chk_canary_expose(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t room, bool open);
/* Junk over the bytes a resize or remap grew a block by, [p + len,
 * p + new_len), as over a new block's: else they read a freed block's
 * junk, the canary or whatever the backing left there. */
BA_HIDDEN void ba_chk_fill_grown(const struct beamalloc_gpa *g,
    unsigned char *p, size_t len, size_t new_len);
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
    size_t limit, _Atomic size_t *held);
BA_HIDDEN void ba_quar_delete(struct ba_quar *q);
/* Hold e; false when there is no room for it (release it now). */
BA_HIDDEN bool ba_quar_push(struct ba_quar *q, const struct ba_qent *e);
/* Take the oldest entry while more than limit bytes wait. */
BA_HIDDEN bool ba_quar_pop(struct ba_quar *q, size_t limit,
    struct ba_qent *out);
BA_HIDDEN size_t ba_quar_limit(const struct ba_quar *q);

/* ------------------------------------------------------------------------
 * Guard pages (guard.c): a sampled block placed against a PROT_NONE
 * page, and a SIGSEGV handler that names it.
 * ---------------------------------------------------------------------- */

/* A freed guarded block whose junk was overwritten, found as its slot
 * was taken again (addr 0: none). */
struct ba_guard_old {
	uintptr_t addr;
	size_t len, align;
	uintptr_t ra;
};

/* A block of len bytes aligned to align whose end touches a guard page;
 * NULL when the block does not fit a page or the pool is full.  trace:
 * depth frames (or NULL), kept for the handler's message with the call
 * site ra; *old is set when the slot's last block was written after its
 * free. */
BA_HIDDEN void *ba_guard_alloc(const void *owner, size_t len, size_t align,
    uintptr_t ra, const uintptr_t *trace, unsigned depth,
    struct ba_guard_old *old);
/* Freed: junk-filled, its slot queued for reuse. */
BA_HIDDEN void ba_guard_free(void *p);
/* Give owner's slots back (destroy). */
BA_HIDDEN void ba_guard_release(const void *owner);

/* ------------------------------------------------------------------------
 * Helpers of the fast paths
 * ---------------------------------------------------------------------- */

/* Slot sizes and their inverses, by class (alloc.c). */
struct ba_class {
	uint32_t size;
	uint32_t inv;			/* 2^32 / size, rounded up */
};
BA_HIDDEN extern const struct ba_class ba_classes[NCLASS];

/* The class of a block of len bytes aligned to align: the smallest slot
 * of at least len rounded up to align, which is then a multiple of
 * align too (the sizes between 2^b and 2^(b+1) are multiples of
 * 2^(b-2), and a length rounded up to a larger alignment lands on a
 * power of two or on 3 * 2^(b-1)); slabs are SLAB_SIZE-aligned, so the
 * slot is aligned.  NCLASS or more: a large block.  len == 0 (never from
 * the front-end) gives a class past the last, for the general path. */
static inline size_t
bit_high(size_t x)
{
#if defined(__x86_64__)
	size_t b;

	/* GCC keeps __builtin_clzll()'s int: a sign extension. */
	__asm__("bsrq %1, %0" : "=r" (b) : "r" ((unsigned long long)x) :
	    "cc");
	return b;
#else
	return (size_t)(63 - __builtin_clzll((unsigned long long)x));
#endif
}

static inline size_t
class_of(size_t len, size_t align)
{
	size_t n = (len - 1) | (align - 1);

	/* Branch-free: 2^b < n + 1 <= 2^(b+1) picks four classes spaced
	 * 2^(b-2), and below 32 (b taken as 4, the spacing as 8) the
	 * classes 8, 16, 24, 32. */
	return ((bit_high(n | 16) - 4) << 2) +
	    ((n >> (bit_high(n | 32) - 2)) & 3);
}

static inline size_t
class_size(size_t c)
{
	return ba_classes[c].size;
}

/* The bytes of a slab of class c, and its alignment. */
static inline size_t
slab_span(size_t c)
{
	return c < FRAME_CLASSES ? FRAME_SIZE : SLAB_SIZE;
}

/* Slot index of a byte offset into a slab of class c (exact for any
 * offset below 2^16: the error of the rounded inverse stays below one
 * part in 2^16). */
static inline size_t
slot_index(uintptr_t off, size_t c)
{
	return (size_t)((off * (uint64_t)ba_classes[c].inv) >> 32);
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

/* A new block live, once its record, junk and canary are written: a leak
 * check on another thread (ba_gpa_leaks_small(), an acquire) that finds
 * it live reads them whole.  A plain store on x86. */
static inline void
state_publish(unsigned char *rec)
{
	__atomic_store_n(rec, REC_USED, __ATOMIC_RELEASE);
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

/* The entry for p's frame: the byte offset straight from the address
 * (shift and mask, no scaling).  Both frames of a two-frame slab have
 * an entry with the slab's base; so the fast free's one test, an offset
 * from the entry's base below SLAB_SIZE, holds only for p in the
 * entry's slab (entries that share a line of the memo are NMEMO frames
 * apart, far more than SLAB_SIZE). */
static inline struct memo *
memo_of(struct tcache *tc, uintptr_t p)
{
	_Static_assert(sizeof(struct memo) == 64, "struct memo: 64 bytes");
	_Static_assert(NMEMO * FRAME_SIZE > 2 * SLAB_SIZE, "memo entries "
	    "on one line are slabs apart");
	return (struct memo *)(void *)((unsigned char *)tc->memo +
	    ((p >> (FRAME_SHIFT - 6)) & ((NMEMO - 1) << 6)));
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
	/* Relaxed: the cache may be one another thread is claiming (the
	 * slot's last owner ended); its key is never this thread's. */
	return __atomic_load_n(&(*tc)->owner, __ATOMIC_RELAXED) == k;
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

/* The length by a relaxed store (a plain one on every target): class
 * stats read it from other threads, with no lock, while the slot is
 * reused (beamalloc_gpa_get_class_stats()). */
static inline void
rec_fill(unsigned char *rec, size_t len, size_t align, uintptr_t ra)
{
	struct rec *sr = (void *)rec;

	__atomic_store_n(&sr->len, (uint16_t)len, __ATOMIC_RELAXED);
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

/* Its writer: a block given out, not traced. */
static inline void
rec_set_used_untraced(unsigned char *rec)
{
	__atomic_store_n((uint64_t *)(void *)rec, REC_USED, __ATOMIC_RELEASE);
}

static inline bool
rec_matches(const unsigned char *rec, size_t len, size_t align)
{
	const struct rec *sr = (const void *)rec;

	return sr->len == len && sr->lalign == log2_of(align);
}

/* ------------------------------------------------------------------------
 * Shared between the GPA's files: what one defines and others call, and
 * the small helpers they all inline
 * ---------------------------------------------------------------------- */

/* A slab found by address: slab_find()'s answer.  Its slots are the
 * bytes [base + lo, base + hi); a memo of it has its base moved by memo
 * slots. */
struct where {
	uintptr_t base;
	size_t cls;
	unsigned char *recs;
	uint32_t lo, hi;
	int32_t memo;
};

BA_HIDDEN extern struct mag ba_gpa_no_mag;	/* the empty magazine */
BA_HIDDEN extern struct tcache ba_gpa_no_tc;	/* no cache yet */

/* depot.c: magazines in the depot, its trims */
BA_HIDDEN struct mag *ba_gpa_mag_get(struct beamalloc_gpa *g, struct depot *d,
    size_t c);
BA_HIDDEN void ba_gpa_depot_put(struct depot *d, struct mag *m);
BA_HIDDEN void ba_gpa_depot_give(struct beamalloc_gpa *g, struct depot *d,
    size_t c, struct mag *m);
BA_HIDDEN void ba_gpa_depot_grew(struct beamalloc_gpa *g, struct depot *d,
    size_t c);
BA_HIDDEN size_t ba_gpa_depot_empties(struct beamalloc_gpa *g,
    struct depot *d, size_t c, size_t keep, bool spare);
BA_HIDDEN size_t ba_gpa_mags_free(struct beamalloc_gpa *g, struct mag *m);
BA_HIDDEN size_t ba_gpa_mspare_free(struct beamalloc_gpa *g);
/* A trim as a depot grows keeps some all-free slabs; a full one gives
 * every one back; a sweep's keeps them all for carving again. */
enum trim { TRIM_GROW, TRIM_FULL, TRIM_SWEEP };
BA_HIDDEN size_t ba_gpa_depot_trim(struct beamalloc_gpa *g, struct depot *d,
    size_t c, enum trim how);
BA_HIDDEN size_t ba_gpa_trim_next(const struct depot *d, size_t c);
BA_HIDDEN size_t ba_gpa_trim_all(struct beamalloc_gpa *g, enum trim how);
BA_HIDDEN void ba_gpa_sweep(struct beamalloc_gpa *g, struct tcache *tc,
    ptrdiff_t live);

/* tcache.c: thread caches, their magazines and trades */
BA_HIDDEN bool ba_gpa_refill(struct beamalloc_gpa *g, struct tcache *tc,
    size_t c);
BA_HIDDEN bool ba_gpa_flush(struct beamalloc_gpa *g, struct tcache *tc,
    size_t c);
BA_HIDDEN bool ba_gpa_ob_room(struct beamalloc_gpa *g, struct tcache *tc,
    size_t c);
BA_HIDDEN void ba_gpa_tc_give(struct beamalloc_gpa *g, struct tcache *tc,
    size_t c, bool trim);
BA_HIDDEN void ba_gpa_tc_drain(struct beamalloc_gpa *g, struct tcache *tc,
    size_t c, bool trim);
BA_HIDDEN ptrdiff_t ba_gpa_tc_blocks(const struct tcache *tc);
BA_HIDDEN struct tcache *ba_gpa_tcache_new(struct beamalloc_gpa *g,
    bool shared);
BA_HIDDEN struct tcache *ba_gpa_tcache_slow(struct beamalloc_gpa *g,
    struct tcache *want);
BA_HIDDEN void ba_gpa_tc_retire(struct beamalloc_gpa *g, struct tcache *tc);
BA_HIDDEN void ba_gpa_tc_free_put(struct beamalloc_gpa *g,
    struct tcache *tc);
BA_HIDDEN void ba_gpa_tc_adopt(struct beamalloc_gpa *g, struct tcache *tc);
/* The shared cache of a thread-safe GPA, made if need be (under
 * g->shared_lock; NULL when out of memory). */
BA_HIDDEN struct tcache *ba_gpa_shared_tc(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_tc_enter_wait(struct beamalloc_gpa *g, struct tcache *tc);
BA_HIDDEN void ba_gpa_tc_leave_wait(struct beamalloc_gpa *g, struct tcache *tc);

/* alloc.c: reports, size classes, credit, small blocks, vtables */
BA_HIDDEN void ba_gpa_emit(struct beamalloc_gpa *g, const beamalloc_report *r);
BA_HIDDEN void ba_gpa_set_traces(const struct beamalloc_gpa *g,
    beamalloc_report *r, uint32_t atid, uint32_t ftid, const uintptr_t *site);
BA_HIDDEN void ba_gpa_settle(struct beamalloc_gpa *g, struct tcache *tc);
BA_HIDDEN void ba_gpa_settle_mine(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_settle_all(struct beamalloc_gpa *g);
BA_HIDDEN bool ba_gpa_reserve(struct beamalloc_gpa *g, ptrdiff_t bytes,
    ptrdiff_t blocks);
BA_HIDDEN void ba_gpa_peak_live(struct beamalloc_gpa *g);
BA_HIDDEN bool ba_gpa_charge_exact(struct beamalloc_gpa *g, ptrdiff_t bytes,
    ptrdiff_t blocks);
BA_HIDDEN void ba_gpa_describe_slot(const struct beamalloc_gpa *g,
    beamalloc_report *r, const unsigned char *recs, const uint32_t *ftids,
    size_t c, size_t i, uintptr_t *site);
BA_HIDDEN void ba_gpa_report_slot(struct beamalloc_gpa *g,
    beamalloc_report_kind kind, uintptr_t p, const struct where *w, size_t len,
    size_t align, uintptr_t ra);
BA_HIDDEN void ba_gpa_small_free(struct beamalloc_gpa *g, struct tcache *tc,
    unsigned char *p, unsigned char *rec, size_t c, size_t len,
    uintptr_t ra);
BA_HIDDEN void ba_gpa_slot_push_held(struct beamalloc_gpa *g,
    struct tcache *tc, unsigned char *p, unsigned char *rec, size_t c);
BA_HIDDEN void ba_gpa_slot_lost(struct beamalloc_gpa *g, unsigned char *rec);
BA_HIDDEN void ba_gpa_lost_recover(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_free_core(struct beamalloc_gpa *g, void *mem, size_t len,
    size_t align, uintptr_t ra);

/* backing.c: regions and metadata */
BA_HIDDEN void *ba_gpa_backing_get(struct beamalloc_gpa *g, size_t len);
BA_HIDDEN void ba_gpa_backing_put(struct beamalloc_gpa *g, void *p, size_t len);
BA_HIDDEN struct region *ba_gpa_region_new(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_region_free(struct beamalloc_gpa *g, struct region *r);
BA_HIDDEN void ba_gpa_region_avail(struct beamalloc_gpa *g, struct region *r);
BA_HIDDEN size_t ba_gpa_spares_free(struct beamalloc_gpa *g);
BA_HIDDEN void *ba_gpa_meta_zalloc(struct beamalloc_gpa *g, size_t len);

/* table.c: the slab table */
BA_HIDDEN struct stab *ba_gpa_stab_new(struct beamalloc_gpa *g, size_t cap);
BA_HIDDEN struct slab *ba_gpa_slab_new(struct beamalloc_gpa *g, size_t c,
    bool first);
BA_HIDDEN size_t ba_gpa_slab_release(struct beamalloc_gpa *g, struct slab *s);
BA_HIDDEN void ba_gpa_reset_put(struct beamalloc_gpa *g, struct slab *s);
BA_HIDDEN size_t ba_gpa_reset_free(struct beamalloc_gpa *g);
BA_HIDDEN bool ba_gpa_slots_new(struct beamalloc_gpa *g, struct depot *d,
    size_t c);
BA_HIDDEN size_t ba_gpa_quarter_put(struct beamalloc_gpa *g, struct slab *s,
    unsigned q);

/* exit.c: the registry of thread-safe GPAs, thread exit, fork() */
BA_HIDDEN void ba_gpa_reg_add(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_reg_remove(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_exit_note(struct beamalloc_gpa *g, size_t i);

/* large.c: large blocks */
BA_HIDDEN struct large *ba_gpa_lg_find(struct beamalloc_gpa *g, uintptr_t addr);
BA_HIDDEN void ba_gpa_report_large(struct beamalloc_gpa *g,
    beamalloc_report_kind kind, uintptr_t p, const struct large *l, size_t len,
    size_t align, uintptr_t ra);
BA_HIDDEN void *ba_gpa_large_alloc(struct beamalloc_gpa *g, size_t len,
    size_t align, uintptr_t ra, bool guard);
BA_HIDDEN void ba_gpa_large_free(struct beamalloc_gpa *g, uintptr_t p,
    size_t len, size_t align, uintptr_t ra);
BA_HIDDEN void ba_gpa_large_release(struct beamalloc_gpa *g, void *p,
    size_t held, size_t align, uintptr_t ra);
BA_HIDDEN size_t ba_gpa_large_trim(struct beamalloc_gpa *g);
BA_HIDDEN void *ba_gpa_large_change(struct beamalloc_gpa *g, uintptr_t p,
    size_t len, size_t align, size_t new_len, bool move, uintptr_t ra);
BA_HIDDEN bool ba_gpa_lg_canary(struct beamalloc_gpa *g, const struct large *l,
    union large_copy *copy);

/* quarantine.c: quarantine */
BA_HIDDEN bool ba_gpa_quar_hold(struct beamalloc_gpa *g, struct tcache *tc,
    const struct ba_qent *e);
BA_HIDDEN void ba_gpa_quar_drain(struct beamalloc_gpa *g);

/* leak.c: leak detection, trimming */
struct leak_snap;
BA_HIDDEN size_t ba_gpa_leaks_small(struct beamalloc_gpa *g,
    struct leak_snap *sn);
BA_HIDDEN int ba_gpa_membarrier_cmd(void);
BA_HIDDEN void ba_gpa_go_shared(struct beamalloc_gpa *g);
BA_HIDDEN void ba_gpa_steal_idle(struct beamalloc_gpa *g, struct tcache *mine);

/* The helpers every file inlines: size class, locks, sampling, the slab
 * table's lookup, the calling thread's cache, the credit, large-block
 * records. */

static inline void
lock(struct beamalloc_gpa *g, pthread_mutex_t *m)
{
	if (g->thread_safe)
		pthread_mutex_lock(m);
}

static inline void
unlock(struct beamalloc_gpa *g, pthread_mutex_t *m)
{
	if (g->thread_safe)
		pthread_mutex_unlock(m);
}

/* A walk of g's slab list: g->scanning is up meanwhile, so that no trim
 * releases a slab.  Each walk is also on g->scans (f, on the walker's
 * stack), with its thread: in a child of fork(), g->scanning counts the
 * forking thread's only (exit.c); the walks of the parent's other
 * threads never end there.  (Not a thread-local list: a library's own
 * TLS made LeakSanitizer's tracer fault at exit, with threads running.) */
struct scan_frame {
	struct scan_frame *next;
	uintptr_t thread;		/* thread_key() of the walker */
};

static inline void
scan_begin(struct beamalloc_gpa *g, struct scan_frame *f)
{
	f->thread = thread_key();
	lock(g, &g->lock);
	g->scanning++;
	f->next = g->scans;
	g->scans = f;
	unlock(g, &g->lock);
}

static inline void
scan_end(struct beamalloc_gpa *g, struct scan_frame *f)
{
	lock(g, &g->lock);
	g->scanning--;
	for (struct scan_frame **p = &g->scans; *p != NULL; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	unlock(g, &g->lock);
}

/* Whether an allocation is traced: every one, or 1 in g->sample: *left
 * counts the allocations to let by first (the fast paths' decrements
 * too, which leave it negative for the one to trace). */
static inline bool
sampled(const struct beamalloc_gpa *g, int *left)
{
	if (g->sample == 0)
		return true;
	if (--*left >= 0)
		return false;
	*left = (int)g->sample - 1;
	return true;
}

static inline size_t
stab_hash(const struct stab *t, uintptr_t frame)
{
	return (size_t)(((uint64_t)(frame >> FRAME_SHIFT) * HASH_MUL) >>
	    t->hshift);
}

/* The slab holding p, if any: the table has a key for each of a slab's
 * frames, and the class says where the slab starts. */
static inline bool
slab_find(const struct beamalloc_gpa *g, uintptr_t p, struct where *w)
{
	const struct stab *t = atomic_load_explicit(&g->stab,
	    memory_order_acquire);
	uintptr_t frame = p & ~(uintptr_t)(FRAME_SIZE - 1);
	size_t i = stab_hash(t, frame);

	/* No slab is at 0, but both the empty key (0) and a tombstone
	 * (STAB_TOMB) read as frame 0: a pointer below FRAME_SIZE (NULL's
	 * field, say) would match them and their stale or missing records. */
	if (BA_UNLIKELY(frame == 0))
		return false;
	for (;;) {
		uintptr_t k = atomic_load_explicit(&t->e[i].key,
		    memory_order_acquire);

		/* frame is not 0, so neither an empty key nor a tombstone
		 * matches */
		if (BA_LIKELY((k & ~(uintptr_t)(FRAME_SIZE - 1)) == frame)) {
			uint64_t slots = atomic_load_explicit(&t->e[i].slots,
			    memory_order_relaxed);

			w->recs = atomic_load_explicit(&t->e[i].recs,
			    memory_order_relaxed);
			/* The key again: an entry taken by another slab
			 * since (a tombstone's, stab_put()) is read again. */
			atomic_thread_fence(memory_order_acquire);
			if (BA_UNLIKELY(atomic_load_explicit(&t->e[i].key,
			    memory_order_relaxed) != k))
				continue;
			w->cls = (size_t)(k & (FRAME_SIZE - 1));
			w->base = p & ~(uintptr_t)(slab_span(w->cls) - 1);
			w->lo = SLOTS_LO(slots);
			w->hi = SLOTS_HI(slots);
			w->memo = SLOTS_MEMO(slots);
			return true;
		}
		if (k == 0)
			return false;
		i = (i + 1) & t->mask;
	}
}

static inline struct slab *
slab_of(unsigned char *recs)
{
	return (struct slab *)(void *)(recs - offsetof(struct slab, recs));
}

/* Quarter q's depot (a shared slab's). */
static inline struct depot *
qhome_get(const struct slab *s, unsigned q)
{
	return atomic_load_explicit(&s->qhome[q], memory_order_relaxed);
}

/* Quarter q's depot if a depot has taken it, else NULL (free, or
 * Q_VOID: no slot). */
static inline struct depot *
qtaken(const struct slab *s, unsigned q)
{
	struct depot *d = qhome_get(s, q);

	return d != Q_VOID ? d : NULL;
}

/* The slots of d->cur that depot d has yet to carve. */
static inline uint32_t
cur_left(const struct depot *d)
{
	return (uint32_t)(d->cur_hi - d->cur_lo) - d->next_slot;
}

/* The slots of depot d's slabs outside it: live, or in a cache.  Under
 * d's lock. */
static inline size_t
depot_out(const struct depot *d)
{
	return d->nslots - d->nfull - (d->cur != NULL ? cur_left(d) : 0);
}

/* The quarter of its shared slab that depot d carves now. */
static inline unsigned
cur_quarter(const struct depot *d)
{
	return (unsigned)(((size_t)d->cur_lo * d->cur->size) >>
	    QUARTER_SHIFT);
}

/* The depot a slot of s at p goes home to: its slab's, or its quarter's
 * in a shared slab (whose depot keeps it while the slot is out). */
static inline struct depot *
slab_home(const struct slab *s, uintptr_t p)
{
	return s->home != NULL ? s->home :
	    qhome_get(s, (unsigned)((p - s->base) >> QUARTER_SHIFT));
}

/* The cache that holds depot d of class c; NULL for none (a free
 * quarter's home, or a quarter's with no slot: a bad pointer's). */
static inline struct tcache *
depot_tc(struct depot *d, size_t c)
{
	if (d == NULL || d == Q_VOID)
		return NULL;
	return (struct tcache *)(void *)((char *)(d - c) -
	    offsetof(struct tcache, dep));
}

/* slab_find() for a pointer from outside: a partial slab's frame holds
 * other blocks past its slots (a large block, say). */
static inline bool
slot_find(const struct beamalloc_gpa *g, uintptr_t p, struct where *w)
{
	return slab_find(g, p, w) && p - w->base - w->lo < w->hi - w->lo;
}

static inline size_t
mag_len(uint32_t cap)
{
	return sizeof(struct mag) + cap * sizeof(struct entry);
}

/* The slab of a cached slot of class c, with no table lookup: a slab's
 * records are indexed from its base, partial or not, so the slot's
 * record is slot_index() records past the slab's first (a trim asks
 * this of every slot in the depot). */
static inline struct slab *
slab_at(const struct beamalloc_gpa *g, size_t c, const struct entry *e)
{
	size_t i = slot_index((uintptr_t)e->p & (slab_span(c) - 1), c);

	return slab_of(e->rec - (i << g->rec_shift));
}

/* The depot a cached slot goes home to. */
static inline struct depot *
slot_home(const struct beamalloc_gpa *g, size_t c, const struct entry *e)
{
	return slab_home(slab_at(g, c, e), (uintptr_t)e->p);
}

static inline void
mag_put(struct mag *m, struct mag **list)
{
	if (m != &ba_gpa_no_mag) {
		m->next = *list;
		*list = m;
	}
}

static inline struct tcache *
tcache_of(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (!g->thread_safe)
		return g->tc0;
	return tcache_mine(g, &tc) ? tc : NULL;
}

/* Any change, as the general paths make. */
static inline void
credit(struct beamalloc_gpa *g, struct tcache *tc, ptrdiff_t bytes)
{
	tc->room -= bytes;
	if (tc->room < 0)
		ba_gpa_credit_high(g, tc, NULL);
	else if (tc->hi - tc->room < -CREDIT_BATCH)
		ba_gpa_settle(g, tc);
}

static inline struct large *
lg_at(const struct beamalloc_gpa *g, struct large *tab, size_t i)
{
	return (struct large *)(void *)((unsigned char *)tab + i *
	    g->lstride);
}

static inline size_t
lg_hash(uintptr_t addr, size_t cap)
{
	return (size_t)(((uint64_t)(addr >> 4) * HASH_MUL) >>
	    (64 - log2_of(cap)));
}

/* Bytes a large block takes from the backing past its length: room for
 * its canary.  A guarded block has its guard page instead. */
static inline size_t
lg_extra(const struct beamalloc_gpa *g)
{
	return g->canary ? BA_CANARY_LARGE : 0;
}

/* One allocation in guard_sample goes against a guard page.  With the
 * fast paths, by the thread's countdown, which every fast path keeps (a
 * shared count was a cache line written by every allocation of every
 * thread); else (sampled traces have the countdown) by a shared count,
 * on the general path's slower line. */
static inline bool
guard_due(struct beamalloc_gpa *g)
{
	struct tcache *tc;

	if (!g->guard_fast)
		return atomic_fetch_add_explicit(&g->guard_count, 1,
		    memory_order_relaxed) % g->guard_sample == 0;
	/* No cache yet (the thread's first allocation: its countdown,
	 * from 0, takes the next one), or none to have. */
	if ((tc = tcache_of(g)) == NULL)
		return atomic_fetch_add_explicit(&g->guard_count, 1,
		    memory_order_relaxed) % g->guard_sample ==
		    g->guard_sample - 1;
	if (--tc->sample_left >= 0)
		return false;
	tc->sample_left = (int)g->guard_sample - 1;
	return true;
}

/* ------------------------------------------------------------------------
 * The fast paths
 * ---------------------------------------------------------------------- */

/* The fast paths, one per (thread_safe, safety) pair, for GPAs without
 * traces, memory limit or memory checker: a pop or push on the thread's
 * bin, the state byte, the credit.  Anything else (an empty or full bin,
 * a large block, a bad free, a thread without a home slot) goes to the
 * general path, which checks everything again.  Every allocation counts
 * the thread's countdown down, and the one that takes it below 0 goes
 * there too: the one in guard_sample placed against a guard page, with
 * no path of its own (a compare in the front-end and a copy of the fast
 * path cost gpa-guard1000 6 instructions a pair, +4 %; the countdown
 * costs every other GPA 2, on a line the fast path writes anyway, and
 * one trip to the general path in 2^31 allocations).  With sample, for
 * GPAs that trace 1 allocation in N: the countdown sends every Nth
 * allocation, and the free of a traced block, to the general path; the
 * others clear the record's trace id.  With check (BA_CHK_CANARY,
 * BA_CHK_JUNK or both, as the GPA has them; neither quarantine nor
 * traces), the checks and fills of check.c around the pop and the
 * push; a bad canary goes to the general path, which reports it.  The
 * checks are the vtable's, not read from the GPA: 6 % of a canary and
 * junk pair's instructions went to reading and testing its flags
 * (bench/README.md). */
enum { BA_SMP_TRACE = 1 };
enum { BA_CHK_CANARY = 1, BA_CHK_JUNK = 2 };

static inline __attribute__((always_inline)) void *
ba_gpa_fast_alloc_chk(void *ctx, size_t len, size_t align, uintptr_t ra,
    bool ts, bool safety, unsigned sample, unsigned check)
{
	struct beamalloc_gpa *g = ctx;
	/* A canary needs one byte of slack at least (as the general path). */
	size_t c = class_of(len + ((check & BA_CHK_CANARY) != 0), align);
	struct tcache *tc;
	struct entry *top, e;
	uintptr_t me = 0, prev = 0;
	bool st = !ts && safety, over;

	/* The general path checks the single-thread mark itself. */
	if (BA_UNLIKELY(c >= NCLASS))
		return ba_gpa_alloc(ctx, len, align, ra);
	if (!ts) {
		tc = g->tc0;
		if (st && BA_UNLIKELY(!st_in(g, &me, &prev)))
			return ba_gpa_alloc(ctx, len, align, ra);
	} else if (BA_UNLIKELY(!tcache_mine(g, &tc)))
		return ba_gpa_alloc(ctx, len, align, ra);
	else
		tc_mark(tc);
	top = tc->top[c];
	/* Ordered, not equal: a trim's sentinel bot is above any top. */
	/* The countdown passing 0 leaves it below for the general path,
	 * whose own decrement then finds it expired (a sign test, as for
	 * the credit). */
	/* With junk, a reused slot whose junk was written goes there too,
	 * to be reported (a call here would cost every fast path a stack
	 * frame): looked at before its pop, while the magazine is still
	 * this thread's, and before its record changes, so that the report
	 * names the freed block. */
	if (BA_UNLIKELY((uintptr_t)top <= (uintptr_t)tc->bot[c] ||
	    (tc->sample_left -= 1) < 0 ||
	    ((check & BA_CHK_JUNK) && state_get(top[-1].rec) == REC_FREE &&
	    !ba_slot_junk_is(top[-1].p, class_size(c))))) {
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
	/* The record first: align and ra are then dead during the fills. */
	if (safety)
		rec_fill(e.rec, len, align, ra);
	if (check)
		ba_slot_fill_new(e.p, len, class_size(c), check & BA_CHK_JUNK,
		    check & BA_CHK_CANARY);
	/* Traces without safety: the record's first word (state, no length
	 * or alignment, no trace) in one store, as the free loads it: its
	 * tid and state as two stores made an immediate free's load wait
	 * for both (no store forwarding; pair64 1.3x gpa-fast, timed). */
	if (sample == BA_SMP_TRACE && !safety)
		rec_set_used_untraced(e.rec);
	else {
		if (sample == BA_SMP_TRACE)
			((struct rec *)(void *)e.rec)->tid = 0;
		state_publish(e.rec);
	}
	over = credit_up(tc, len);
	if (st && BA_UNLIKELY(!st_left(g, me, prev)))
		return ba_gpa_st_late(g, tc, e.p, NULL, len, align, ra, over);
	if (over)
		return ba_gpa_credit_high(g, tc, e.p);
	return e.p;
}

static inline __attribute__((always_inline)) void
ba_gpa_fast_free_chk(void *ctx, void *mem, size_t len, size_t align,
    uintptr_t ra, bool ts, bool safety, bool sample, unsigned check)
{
	struct beamalloc_gpa *g = ctx;
	uintptr_t p = (uintptr_t)mem, off, q;
	/* The record size, known here: records are kept (16 bytes) with
	 * safety or traces, else the state byte alone. */
	const unsigned rs = safety || sample ? 4 : 0;
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
	q = off * m->div;
	if (BA_UNLIKELY((uint32_t)q >= (uint32_t)m->div))
		goto leave;
	rec = m->recs + ((q >> 32) << rs);
	/* Not USED (a double free; or the read-only records of no slab,
	 * never to be written) goes to the general path, which reports;
	 * so does a traced block, whose free is traced too. */
	if (BA_UNLIKELY(sample && !safety ? !rec_used_untraced(rec) :
	    state_get(rec) != REC_USED ||
	    (safety && !rec_matches(rec, len, align)) ||
	    (sample && ((const struct rec *)(const void *)rec)->tid != 0)))
		goto leave;
	/* A length past the slot (without safety, nothing checked it) goes
	 * to the general path too. */
	if ((check & BA_CHK_CANARY) && BA_UNLIKELY(len >= m->size))
		goto leave;
	tp = m->top;
	top = *tp;
	/* Ordered: a trim's sentinel end is below any top.  Then the slot
	 * is claimed.  With safety, once any thread has freed another's
	 * slot, atomically, so that of two frees racing exactly one wins
	 * (loaded after tc_mark(): go_shared() waits for a fast path that
	 * read it clear; a remote slot's memo is filled after go_shared()).
	 * Without, two plain stores: the speed configuration, whose double
	 * frees are caught unless they race. */
	if (BA_UNLIKELY((uintptr_t)top >= (uintptr_t)tp[LD_END]))
		goto leave;
	if (ts && safety && atomic_load_explicit(&g->shared,
	    memory_order_relaxed)) {
		if (BA_UNLIKELY(!state_release(rec)))
			goto leave;
	} else
		state_set(rec, REC_FREE);
	/* The canary once the slot is ours: a free that lost a race for it
	 * must not read the winner's junk in the slack.  A bad one is
	 * reported, and the free finished, off the fast path. */
	if ((check & BA_CHK_CANARY) &&
	    BA_UNLIKELY(!ba_slot_canary_is(mem, len, m->size))) {
		if (ts)
			tc_leave(tc);
		ba_gpa_free_claimed(g, tc, mem, rec, len, ra);
		if (st && BA_UNLIKELY(!st_left(g, me, prev)))
			(void)ba_gpa_st_late(g, tc, NULL, mem, len, align, ra,
			    false);
		return;
	}
	if (check & BA_CHK_JUNK)
		ba_slot_junk_fill(mem, m->size);
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
    bool safety, unsigned sample)
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
