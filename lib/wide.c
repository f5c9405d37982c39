/*
 * wide.c - any power-of-two alignment on any backing allocator.
 *
 * An alignment the backing allocator serves itself passes straight through.
 * A wider one over-allocates len + align bytes at the backing's native
 * alignment n (n >= 8), places the block at the first align boundary that
 * leaves a word below it, and stores there the offset back to the backing
 * block:
 *
 *   base            aligned - 8   aligned                 base + len + align
 *   |<- padding ->| [ offset ] | len bytes ... |<- slack ->|
 *
 * offset <= 8 + align - n <= align, so len + align always suffices: at most
 * one word beyond the len + align - 1 that any aligned over-allocation
 * needs.  free() gives the backing exactly (base, len + align, n).  (32
 * bytes more over a GPA with canary: see below.)
 *
 * Every over-aligned block is also entered in a process-wide registry:
 *
 *   registry: aligned -> { backing, len, align }     (hash table, one lock)
 *   filter:   per hash bucket, how many entries      (atomic, no lock)
 *
 * A free, resize or remap is checked against it before any memory is
 * read or any backing called: a pointer it does not hold (never given
 * out, freed already, another allocator's), or one named with another
 * length, alignment or backing, is reported (beamalloc_report, through
 * the default handler of report.c) and the call ignored: free does
 * nothing, resize and remap fail with EINVAL.  A check word in the
 * header would need the word below a pointer that may not be ours (a
 * page start, a redzone), and could not help the case that matters most:
 * a block allocated at 64 and freed at 8 takes the pass-through path, so
 * the backing would get an inner pointer.  So pass-through calls on a
 * pointer aligned beyond n (only those can be wide blocks) ask the
 * filter, and the registry when the filter says maybe.  What cannot be
 * checked: a pass-through block named with a wrong length or alignment
 * that still passes through (the backing's business), and a registered
 * block whose backing memory was released behind the wide allocator's
 * back (a leak freed wholesale, e.g. by beamalloc_gpa_destroy of its
 * backing): its address stays registered until allocated again here.
 *
 * Over a GPA with canary on (beamalloc_wide_on(&gpa)), the slack of an
 * over-aligned block, from aligned + len to base + len + align, holds
 * the GPA's canary byte (BA_CANARY_MAX bytes at least: the block takes
 * len + align + 32), checked at free, resize and remap (reported as
 * an overflow of the block named by its aligned address and length).
 * The GPA's own canary lies past the whole backing block, so an
 * overflow of up to 32 bytes is reported once, as the wide block's;
 * with a word of slack, a review found one of 9-32 bytes reported
 * again as an overflow of the hidden backing block.  All of the slack,
 * not a bounded part: wide blocks are few and large.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef size_t offset_t;	/* stored just below the aligned block */

/* The backing allocation behind an over-aligned block. */
struct backing_block {
	unsigned char *base;
	size_t len;
	size_t align;
	size_t canary;			/* canary_room() of its backing */
};

/* A live over-aligned block, as the registry knows it. */
struct entry {
	uintptr_t addr;			/* the aligned block; 0: empty slot */
	beamalloc_allocator backing;	/* by value: equal backings agree */
	size_t len;
	size_t align;
	/* Being remapped: the backing may free it before the remap comes
	 * back to the registry, and another thread be given the address
	 * (its entry, put in this one's place, has moving clear). */
	bool moving;
};

/* What checked_block() does to the entry of a block it vouches for. */
enum { ENTRY_KEEP, ENTRY_TAKE, ENTRY_MOVING };

/* Open addressing with linear probing; never more than 3/4 full, so a
 * remove followed by an insert never needs to grow.  The table comes from
 * the BEAM allocator, which the VM counts, as it counts the blocks (found
 * by a review: malloc's, 1,000,000 blocks at alignment 64 took 100 MB
 * the VM never saw, and kept it when they were freed).  An eighth full,
 * it halves, down to REG_MIN entries; empty, it goes when the library is
 * unloaded (ba_wide_fini()). */
#define REG_MIN ((size_t)64)

static struct {
	pthread_mutex_t lock;
	struct entry *tab;
	size_t cap;			/* a power of two, or 0 */
	size_t used;
} reg = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

#define FILTER_SIZE ((size_t)4096)
static _Atomic unsigned filter[FILTER_SIZE];

static inline uint64_t
mix(uintptr_t a)
{
	uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15u;

	return h ^ (h >> 29);
}

static inline _Atomic unsigned *
filter_of(uintptr_t a)
{
	return &filter[(mix(a) >> 40) & (FILTER_SIZE - 1)];
}

/* ------------------------------------------------------------------------
 * The registry (callers hold reg.lock)
 * ---------------------------------------------------------------------- */

static struct entry *
reg_find(uintptr_t addr)
{
	size_t mask = reg.cap - 1, i;

	if (reg.cap == 0)
		return NULL;
	for (i = mix(addr) & mask; reg.tab[i].addr != 0; i = (i + 1) & mask)
		if (reg.tab[i].addr == addr)
			return &reg.tab[i];
	return NULL;
}

/* Into a table with room: no allocation, cannot fail. */
static void
reg_put(const struct entry *e)
{
	size_t mask = reg.cap - 1, i = mix(e->addr) & mask;

	while (reg.tab[i].addr != 0 && reg.tab[i].addr != e->addr)
		i = (i + 1) & mask;
	if (reg.tab[i].addr == 0) {
		reg.used++;
		atomic_fetch_add_explicit(filter_of(e->addr), 1,
		    memory_order_relaxed);
	}
	reg.tab[i] = *e;
}

static void
reg_table_free(struct entry *tab, size_t cap)
{
	if (tab != NULL)
		ba_raw_free(ba_beam_allocator, tab, cap * sizeof(*tab),
		    BEAMALLOC_MIN_ALIGN, 0);
}

/* The entries into a new table of cap; without memory the old one stays
 * and false is returned. */
static bool
reg_rehash(size_t cap)
{
	size_t old_cap = reg.cap;
	struct entry *old = reg.tab, *tab;

	tab = ba_raw_alloc(ba_beam_allocator, cap * sizeof(*tab),
	    BEAMALLOC_MIN_ALIGN, 0);
	if (tab == NULL)
		return false;
	memset(tab, 0, cap * sizeof(*tab));
	reg.tab = tab;
	reg.cap = cap;
	reg.used = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].addr != 0) {
			atomic_fetch_sub_explicit(filter_of(old[i].addr), 1,
			    memory_order_relaxed);
			reg_put(&old[i]);
		}
	reg_table_free(old, old_cap);
	return true;
}

static bool
reg_add(const struct entry *e)
{
	if ((reg.used + 1) * 4 > reg.cap * 3 &&
	    !reg_rehash(reg.cap != 0 ? reg.cap * 2 : REG_MIN))
		return false;
	reg_put(e);
	return true;
}

/* After a free (not in reg_remove(): a remap's remove and add must not
 * allocate).  Without memory the table stays as it is. */
static void
reg_shrink(void)
{
	if (reg.cap > REG_MIN && reg.used * 8 <= reg.cap)
		(void)reg_rehash(reg.cap / 2);
}

/* Backward-shift deletion: no tombstones, lookups stay short. */
static void
reg_remove(struct entry *e)
{
	size_t mask = reg.cap - 1, hole = (size_t)(e - reg.tab), i = hole;

	atomic_fetch_sub_explicit(filter_of(e->addr), 1, memory_order_relaxed);
	reg.used--;
	for (;;) {
		size_t home;

		i = (i + 1) & mask;
		if (reg.tab[i].addr == 0)
			break;
		home = mix(reg.tab[i].addr) & mask;
		/* Move it into the hole unless its home lies in (hole, i]. */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			reg.tab[hole] = reg.tab[i];
			hole = i;
		}
	}
	reg.tab[hole].addr = 0;
}

static inline bool
same_allocator(beamalloc_allocator x, beamalloc_allocator y)
{
	return x.ctx == y.ctx && x.vtable == y.vtable;
}

/* What is wrong with a call naming (mem, len, align) through backing b,
 * given the registry's entry e (or NULL); 0 when nothing is. */
static int
verdict(const struct entry *e, const beamalloc_allocator *b, size_t len,
    size_t align)
{
	if (e == NULL || !same_allocator(e->backing, *b))
		return BEAMALLOC_REPORT_INVALID_FREE;
	if (e->align != align)
		return BEAMALLOC_REPORT_ALIGN_MISMATCH;
	if (e->len != len)
		return BEAMALLOC_REPORT_SIZE_MISMATCH;
	return 0;
}

/* ------------------------------------------------------------------------
 * Blocks
 * ---------------------------------------------------------------------- */

static inline size_t
native_of(const beamalloc_allocator *b)
{
	return ba_native_align(*b);
}

static inline bool
passes_through(const beamalloc_allocator *b, size_t align)
{
	return align <= native_of(b);
}

static inline size_t
offset_for(const unsigned char *base, size_t align)
{
	uintptr_t a = ba_align_forward((uintptr_t)base + sizeof(offset_t),
	    align);

	return (size_t)(a - (uintptr_t)base);
}

static inline offset_t
offset_of(const void *mem)
{
	offset_t off;

	memcpy(&off, (const unsigned char *)mem - sizeof(off), sizeof(off));
	return off;
}

static inline void *
place(unsigned char *base, size_t off)
{
	memcpy(base + off - sizeof(offset_t), &off, sizeof(offset_t));
	return base + off;
}

/* Over a GPA with canary, room for as many canary bytes as the GPA
 * checks after its own blocks: the slack after the block is otherwise
 * empty when the backing's block is aligned already (offset = align). */
static inline size_t
canary_room(const beamalloc_allocator *b)
{
	return ba_gpa_has_canary(b) ? BA_CANARY_MAX : 0;
}

static struct backing_block
block_of(const beamalloc_allocator *b, void *mem, size_t len, size_t align)
{
	struct backing_block bb;

	bb.base = (unsigned char *)mem - offset_of(mem);
	bb.canary = canary_room(b);
	bb.len = len + align + bb.canary;
	bb.align = native_of(b);
	return bb;
}

static void
report_bad(int kind, const struct entry *e, const void *mem, size_t len,
    size_t align, uintptr_t ra)
{
	bool known = e != NULL && kind != BEAMALLOC_REPORT_INVALID_FREE;

	ba_report_call((beamalloc_report_kind)kind, mem, known ? e->len : 0,
	    known ? e->align : 0, len, align, ra);
}

/* The backing block behind an over-aligned mem named exactly as the
 * registry holds it (a free takes it out: ENTRY_TAKE; a remap marks it
 * ENTRY_MOVING); otherwise the call is reported and false returned.
 * Nothing is read before the registry vouches for mem. */
static bool
checked_block(const beamalloc_allocator *b, void *mem, size_t len,
    size_t align, uintptr_t ra, int how, struct backing_block *bb)
{
	struct entry *e, copy;
	int bad;

	pthread_mutex_lock(&reg.lock);
	e = reg_find((uintptr_t)mem);
	bad = verdict(e, b, len, align);
	if (e != NULL)
		copy = *e;
	if (!bad && how == ENTRY_TAKE) {
		reg_remove(e);
		reg_shrink();
	}
	else if (!bad && how == ENTRY_MOVING)
		e->moving = true;
	pthread_mutex_unlock(&reg.lock);
	if (bad) {
		report_bad(bad, e != NULL ? &copy : NULL, mem, len, align, ra);
		return false;
	}
	*bb = block_of(b, mem, len, align);
	return true;
}

/* A pass-through call naming a registered block: it was allocated over-
 * aligned, so the backing would get an inner pointer.  Only a pointer
 * aligned beyond n can be one; the filter answers most without the lock.
 * True when reported. */
static bool
misnamed_wide(const beamalloc_allocator *b, const void *mem, size_t len,
    size_t align, uintptr_t ra)
{
	uintptr_t a = (uintptr_t)mem;
	struct entry *e, copy;

	if ((a & (2 * native_of(b) - 1)) != 0 ||
	    atomic_load_explicit(filter_of(a), memory_order_relaxed) == 0)
		return false;
	pthread_mutex_lock(&reg.lock);
	e = reg_find(a);
	if (e != NULL)
		copy = *e;
	pthread_mutex_unlock(&reg.lock);
	if (e == NULL)
		return false;
	report_bad(same_allocator(copy.backing, *b) ?
	    BEAMALLOC_REPORT_ALIGN_MISMATCH : BEAMALLOC_REPORT_INVALID_FREE,
	    &copy, mem, len, align, ra);
	return true;
}

/* The canary in the slack after an over-aligned block, up to end (see
 * the top). */
static void
tail_set(unsigned char *mem, size_t len, const unsigned char *end)
{
	memset(mem + len, BA_CANARY_BYTE, (size_t)(end - (mem + len)));
}

/* Reported when overwritten; the call goes on (as the GPA's own).  The
 * canary is then written again, so that a block reported at a remap the
 * backing could not do in place is not reported again at its free. */
static void
tail_check(const struct backing_block *bb,
    unsigned char *mem, size_t len, size_t align, uintptr_t ra)
{
	unsigned char *end = bb->base + bb->len;

	if (bb->canary != 0 && !ba_bytes_are(mem + len,
	    (size_t)(end - (mem + len)), BA_CANARY_BYTE)) {
		ba_report_call(BEAMALLOC_REPORT_OVERFLOW, mem, len, align, len,
		    align, ra);
		tail_set(mem, len, end);
	}
}

/* A refused block: EINVAL, and only then (the front end then does
 * nothing more with it). */
static inline bool
refuse(void)
{
	errno = EINVAL;
	return false;
}

/* The backing's own answer: its errno when it set one (EINVAL if it
 * refused the block itself), else ENOMEM, never a stale EINVAL. */
static inline void
backing_errno_clear(void)
{
	errno = 0;
}

static inline void
backing_errno_fail(void)
{
	if (errno == 0)
		errno = ENOMEM;
}

/* ------------------------------------------------------------------------
 * fork(): the child has only the thread that forked, and reg.lock held
 * by another thread then stayed held there: the child's first over-
 * aligned block or free of one waited forever (found by a review: 17
 * children in 100 of a program whose threads made blocks at alignment
 * 64).  So it is taken around a fork, after every GPA's locks: a GPA
 * calls its backing (this allocator, for the global GPA) with its own
 * held.  Its handler is registered before the GPAs' (exit.c asks for it
 * first), and prepare handlers run in the reverse order.  Asked for
 * by the constructors, before any entry can be made.
 * ---------------------------------------------------------------------- */

static void fork_lock(void) { pthread_mutex_lock(&reg.lock); }
static void fork_unlock(void) { pthread_mutex_unlock(&reg.lock); }

static void
fork_init(void)
{
	(void)pthread_atfork(fork_lock, fork_unlock, fork_unlock);
}

void
ba_wide_fork_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fork_init);
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
wide_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	const beamalloc_allocator *b = ba_set_at(ctx);
	struct entry e;
	unsigned char *base;
	size_t total, extra;
	bool in;

	if (passes_through(b, align))
		return ba_raw_alloc(*b, len, align, ra);
	extra = canary_room(b);
	if (!ba_add_len(len, align + extra, &total))
		return ba_fail(ENOMEM);
	base = ba_raw_alloc(*b, total, native_of(b), ra);
	if (base == NULL)
		return NULL;
	e.addr = (uintptr_t)place(base, offset_for(base, align));
	e.backing = *b;
	e.len = len;
	e.align = align;
	e.moving = false;
	pthread_mutex_lock(&reg.lock);
	in = reg_add(&e);
	pthread_mutex_unlock(&reg.lock);
	if (!in) {
		ba_raw_free(*b, base, total, native_of(b), ra);
		return ba_fail(ENOMEM);
	}
	if (extra != 0)
		tail_set((unsigned char *)e.addr, len, base + total);
	return (void *)e.addr;
}

/* The block keeps its place, so only the backing block's length changes. */
static bool
wide_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	const beamalloc_allocator *b = ba_set_at(ctx);
	struct backing_block bb;
	struct entry *e;
	size_t new_total;
	bool done;

	if (passes_through(b, align)) {
		if (misnamed_wide(b, mem, len, align, ra))
			return refuse();
		backing_errno_clear();
		done = ba_raw_resize(*b, mem, len, align, new_len, ra);
		if (!done)
			backing_errno_fail();
		return done;
	}
	if (!checked_block(b, mem, len, align, ra, ENTRY_KEEP, &bb))
		return refuse();
	tail_check(&bb, mem, len, align, ra);
	if (!ba_add_len(new_len, align + bb.canary, &new_total)) {
		errno = ENOMEM;
		return false;
	}
	backing_errno_clear();
	if (!ba_raw_resize(*b, bb.base, bb.len, bb.align, new_total, ra)) {
		backing_errno_fail();
		return false;
	}
	pthread_mutex_lock(&reg.lock);
	if ((e = reg_find((uintptr_t)mem)) != NULL)
		e->len = new_len;
	pthread_mutex_unlock(&reg.lock);
	if (bb.canary != 0)
		tail_set(mem, new_len, bb.base + new_total);
	return true;
}

/* The backing may move the block to an address with another residue mod
 * align: then the data is slid to the new aligned place inside it. */
static void *
wide_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	const beamalloc_allocator *b = ba_set_at(ctx);
	struct backing_block bb;
	struct entry *e, moved;
	unsigned char *base;
	size_t new_total, old_off, new_off;
	bool fits;

	if (passes_through(b, align)) {
		if (misnamed_wide(b, mem, len, align, ra))
			return ba_fail(EINVAL);
		backing_errno_clear();
		base = ba_raw_remap(*b, mem, len, align, new_len, ra);
		if (base == NULL)
			backing_errno_fail();
		return base;
	}
	if (!checked_block(b, mem, len, align, ra, ENTRY_MOVING, &bb))
		return ba_fail(EINVAL);
	tail_check(&bb, mem, len, align, ra);
	old_off = (size_t)((unsigned char *)mem - bb.base);
	fits = ba_add_len(new_len, align + bb.canary, &new_total);
	base = NULL;
	if (fits) {
		backing_errno_clear();
		base = ba_raw_remap(*b, bb.base, bb.len, bb.align, new_total,
		    ra);
	}
	if (base == NULL) {
		/* The block stays where it was, and so its entry. */
		pthread_mutex_lock(&reg.lock);
		if ((e = reg_find((uintptr_t)mem)) != NULL)
			e->moving = false;
		pthread_mutex_unlock(&reg.lock);
		if (!fits)
			return ba_fail(ENOMEM);
		backing_errno_fail();
		return NULL;
	}
	new_off = offset_for(base, align);
	if (new_off != old_off)
		memmove(base + new_off, base + old_off, ba_min(len, new_len));
	moved.addr = (uintptr_t)place(base, new_off);
	moved.backing = *b;
	moved.len = new_len;
	moved.align = align;
	moved.moving = false;
	/* The old entry out, unless the backing gave its address to another
	 * thread meanwhile, whose entry took its place (found by a review:
	 * that thread's block lost its entry, and its free was called
	 * invalid).  One entry out, one in: the table grows only then. */
	pthread_mutex_lock(&reg.lock);
	if ((e = reg_find((uintptr_t)mem)) != NULL && e->moving)
		reg_remove(e);
	(void)reg_add(&moved);
	pthread_mutex_unlock(&reg.lock);
	if (bb.canary != 0)
		tail_set((unsigned char *)moved.addr, new_len, base + new_total);
	return (void *)moved.addr;
}

static void
wide_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	const beamalloc_allocator *b = ba_set_at(ctx);
	struct backing_block bb;

	if (passes_through(b, align)) {
		if (!misnamed_wide(b, mem, len, align, ra))
			ba_raw_free(*b, mem, len, align, ra);
		return;
	}
	if (checked_block(b, mem, len, align, ra, ENTRY_TAKE, &bb)) {
		tail_check(&bb, mem, len, align, ra);
		ba_raw_free(*b, bb.base, bb.len, bb.align, ra);
	}
}

const beamalloc_vtable ba_wide_vtable = {
	wide_alloc, wide_resize, wide_remap, wide_free
};

/* The library is being unloaded (or the process ends; global.c calls it
 * last): an empty table goes back.  Under the lock, so whoever else is
 * inside; a table with entries stays, as their blocks may still be freed
 * (by code that runs later, such as a C++ static destructor). */
void
ba_wide_fini(void)
{
	pthread_mutex_lock(&reg.lock);
	if (reg.used == 0) {
		reg_table_free(reg.tab, reg.cap);
		reg.tab = NULL;
		reg.cap = 0;
	}
	pthread_mutex_unlock(&reg.lock);
}

/* ------------------------------------------------------------------------
 * Constructors
 * ---------------------------------------------------------------------- */

/* Every wide allocator is made here, so the fork handler is asked for
 * here, not at each over-aligned block. */
beamalloc_allocator
beamalloc_wide(void)
{
	return beamalloc_wide_on(&ba_beam_allocator);
}

beamalloc_allocator
beamalloc_wide_on(const beamalloc_allocator *backing)
{
	beamalloc_allocator a = { (void *)backing, &ba_wide_vtable };

	ba_wide_fork_init();
	return a;
}
