/*
 * guard.c - guarded sampling for the GPA (guard_sample = N): one
 * allocation in N is placed at the end of a page of its own, right before
 * an inaccessible page, so an overflow faults at the instruction that
 * makes it.  A SIGSEGV handler, installed at the first guarded block,
 * finds the block from the faulting address, names it, its size and its
 * allocation call site and trace (with write(2) only: it runs in a
 * signal), then hands the signal to the handler that was there before.
 *
 * The pages are one pool, reserved once per process: slot i's data page
 * and then its guard page, after a leading guard page, as GWP-ASan lays
 * out its pool (LLVM compiler-rt, gwp_asan/guarded_pool_allocator.cpp:
 * one reservation, slots interleaved with guard pages, the slot found
 * from an address by arithmetic).  Unlike GWP-ASan, which mprotect()s a
 * slot at every allocation and free, a slot's page is opened once and
 * stays open: a guarded block costs no system call and no page fault once
 * the slots in use are warm.  The price is that a freed block no longer
 * faults: it is filled with junk instead, checked when its slot is handed
 * out again (a write after free is reported then, as junk=1 does), and
 * freed slots wait FIFO, GUARD_QUEUE of them at least, before reuse.  The
 * pages go back to the system, in one madvise(), when no guarded block is
 * live (the last owner's destroy); at most GUARD_SLOTS pages are resident.
 *
 * A full pool, a block longer than a page, or an alignment above one,
 * leave the block to the usual placement (GWP-ASan too guards only
 * blocks up to a page).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * Data: the pool and its slots
 * ---------------------------------------------------------------------- */

#define GUARD_SLOTS 512
#define GUARD_TRACE 8
#define GUARD_QUEUE 16		/* freed slots that wait before reuse */

enum { GS_EMPTY, GS_BUSY, GS_LIVE, GS_FREED };

struct gslot {
	_Atomic int state;		/* GS_* */
	uintptr_t block;
	size_t len, align;
	uintptr_t ra;
	const void *owner;		/* the GPA */
	uintptr_t trace[GUARD_TRACE];
};

static struct gslot slots[GUARD_SLOTS];
static struct sigaction old_segv;
static bool handler_set;		/* under pool_lock */
static bool pin_due;			/* under pool_lock */
static size_t page_size;
static uintptr_t pool;			/* 0: not reserved (yet) */
static size_t pool_len;

/* Under pool_lock: the slots opened so far (0 .. nopen-1), those free among
 * them (a FIFO ring of indices), and the live blocks. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned nopen, nlive;
static unsigned fifo_head, fifo_count;
static uint16_t fifo[GUARD_SLOTS];

/* Slot i's data page; its guard page follows it. */
static inline uintptr_t
slot_page(size_t i)
{
	return pool + page_size + 2 * page_size * i;
}

/* ------------------------------------------------------------------------
 * The SIGSEGV handler: async-signal-safe writes only
 * ---------------------------------------------------------------------- */

struct line {
	char buf[512];
	size_t n;
};

static void
put_str(struct line *l, const char *s)
{
	while (*s != '\0' && l->n < sizeof(l->buf))
		l->buf[l->n++] = *s++;
}

static void
put_num(struct line *l, uintptr_t v, unsigned base)
{
	char tmp[24];
	size_t k = 0;

	if (base == 16)
		put_str(l, "0x");
	do {
		tmp[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	while (k > 0 && l->n < sizeof(l->buf))
		l->buf[l->n++] = tmp[--k];
}

static void
describe(const struct gslot *s, uintptr_t a, int state)
{
	struct line l = { .n = 0 };

	put_str(&l, "beamalloc: SIGSEGV at ");
	put_num(&l, a, 16);
	if (state == GS_FREED)
		put_str(&l, ": use after free of block ");
	else if (a >= s->block + s->len)
		put_str(&l, ": overflow past block ");
	else
		put_str(&l, ": access before block ");
	put_num(&l, s->block, 16);
	put_str(&l, " of ");
	put_num(&l, s->len, 10);
	put_str(&l, " bytes (guard page), allocated at ");
	put_num(&l, s->ra, 16);
	for (size_t i = 0; i < GUARD_TRACE && s->trace[i] != 0; i++) {
		put_str(&l, i == 0 ? "\n  trace: " : " ");
		put_num(&l, s->trace[i], 16);
	}
	put_str(&l, "\n");
	for (size_t off = 0; off < l.n;) {
		ssize_t w = write(STDERR_FILENO, l.buf + off, l.n - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* Name the block, then pass the signal on: to the previous handler, or
 * with the previous disposition back in place, to the fault itself
 * again (a default one dumps core as it would have). */
static void
on_segv(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	/* A guard page lies between the block before it (an overflow) and
	 * the one after it (an access before that one): the nearer of the
	 * two that hold a block is named, as GWP-ASan does (the one before,
	 * always, named a page-long block's p[-1] as an overflow of its
	 * neighbour). */
	if (pool != 0 && a >= pool && a - pool < pool_len) {
		size_t k = (a - pool) / page_size, i = k / 2;
		int st_prev = GS_EMPTY, st_next = GS_EMPTY;

		if (k % 2 == 0 && i > 0)
			st_prev = atomic_load_explicit(&slots[i - 1].state,
			    memory_order_acquire);
		if (i < GUARD_SLOTS)
			st_next = atomic_load_explicit(&slots[i].state,
			    memory_order_acquire);
		if (st_prev != GS_LIVE && st_prev != GS_FREED)
			st_prev = GS_EMPTY;
		if (st_next != GS_LIVE && st_next != GS_FREED)
			st_next = GS_EMPTY;
		if (st_prev != GS_EMPTY && (st_next == GS_EMPTY ||
		    a - (slots[i - 1].block + slots[i - 1].len) <=
		    slots[i].block - a))
			describe(&slots[i - 1], a, st_prev);
		else if (st_next != GS_EMPTY)
			describe(&slots[i], a, st_next);
	}
	if ((old_segv.sa_flags & SA_SIGINFO) != 0 &&
	    old_segv.sa_sigaction != NULL) {
		old_segv.sa_sigaction(sig, si, uc);
		return;
	}
	if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		return;
	}
	/* Sent to a program that ignored it: ignored, as before the handler
	 * (a fault repeats, and the kernel kills whatever the disposition). */
	if (old_segv.sa_handler == SIG_IGN && si->si_code <= 0)
		return;
	signal(sig, SIG_DFL);
	/* Sent, not a fault: returning would not repeat it. */
	if (si->si_code <= 0)
		raise(sig);
}

/* The pool is reserved, and the handler installed, by the first guarded
 * block: all inaccessible until a slot's page is opened.  A reservation
 * that fails (the address space exhausted: RLIMIT_AS) is tried again by
 * the next guarded block, not given up for the process (found by a
 * review: once failed, no block was ever guarded again, silently).
 * Under pool_lock; false while there is no pool. */
static bool
reserve(void)
{
	struct sigaction sa;
	void *m;

	if (pool != 0)
		return true;
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	pool_len = page_size + 2 * page_size * GUARD_SLOTS;
	m = mmap(NULL, pool_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return false;
	if (!handler_set) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSEGV, &sa, &old_segv);
		handler_set = true;
		pin_due = true;
	}
	__atomic_store_n(&pool, (uintptr_t)m, __ATOMIC_RELEASE);
	return true;
}

/* The handler found is called by ours: its code must stay mapped as long
 * as ours may run.  It may be another copy of this library's (two NIFs,
 * each linked with libbeamalloc.a, each with guarded sampling; a NIF
 * linked with libbeamalloc.so), whose destructor cannot take it out of
 * the chain from under ours: once that copy was unloaded, the next
 * SIGSEGV, a guard page's or any other, ran ours and then jumped into
 * unmapped memory, and the process died of a second SIGSEGV without the
 * host's own handler running; and ours, unloaded after it, restored its
 * handler, dangling, for every fault after (found by a review:
 * /tmp/multirev-1/repro.c).  So the object that holds it is made
 * RTLD_NODELETE: a dlclose() of it (the NIF's purge) then leaves it
 * loaded, its handler still chaining to the one before it.  The main
 * program's is never unloaded.  Outside pool_lock (dlopen() takes the
 * loader's lock, which a constructor allocating guarded blocks holds). */
static void
pin_old(void)
{
#if defined(__GLIBC__) && defined(RTLD_NODELETE)
	struct link_map *lm = NULL;
	Dl_info di;
	void *fn;

	fn = (old_segv.sa_flags & SA_SIGINFO) != 0 ?
	    (void *)old_segv.sa_sigaction : (void *)old_segv.sa_handler;
	if (fn == (void *)SIG_DFL || fn == (void *)SIG_IGN ||
	    dladdr1(fn, &di, (void **)&lm, RTLD_DL_LINKMAP) == 0 ||
	    lm == NULL || lm->l_name == NULL || lm->l_name[0] == '\0')
		return;
	(void)dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
#endif
}

/* ------------------------------------------------------------------------
 * Guarded blocks
 * ---------------------------------------------------------------------- */

/* Whether a freed block's junk is intact: its first byte, then every
 * byte equal to the one before it, in one memcmp() of the block with
 * itself a byte further on (libc's, by vectors: a byte loop here cost
 * rand10k's guarded blocks, up to a page each, ~3,500 instructions). */
static bool
junk_intact(const struct gslot *s)
{
	const unsigned char *p = (const unsigned char *)s->block;

	return p[0] == BA_JUNK_FREED && memcmp(p, p + 1, s->len - 1) == 0;
}

/* A slot, under pool_lock: the oldest freed one once GUARD_QUEUE wait (or the
 * pool is all open), else a new one, opened now (its one system call);
 * -1 if none. */
static int
slot_take(void)
{
	unsigned i;

	if (fifo_count > 0 && (fifo_count >= GUARD_QUEUE ||
	    nopen == GUARD_SLOTS)) {
		i = fifo[fifo_head];
		fifo_head = (fifo_head + 1) % GUARD_SLOTS;
		fifo_count--;
		return (int)i;
	}
	if (nopen == GUARD_SLOTS || mprotect((void *)slot_page(nopen),
	    page_size, PROT_READ | PROT_WRITE) != 0)
		return -1;
	return (int)nopen++;
}

static void
slot_put(unsigned i)
{
	fifo[(fifo_head + fifo_count) % GUARD_SLOTS] = (uint16_t)i;
	fifo_count++;
}

void *
ba_guard_alloc(const void *owner, size_t len, size_t align, uintptr_t ra,
    const uintptr_t *trace, unsigned depth, struct ba_guard_old *old)
{
	struct gslot *s;
	bool pin;
	int i;

	if (len == 0 || (__atomic_load_n(&pool, __ATOMIC_ACQUIRE) != 0 &&
	    (len > page_size || align > page_size)))
		return NULL;
	pthread_mutex_lock(&pool_lock);
	i = reserve() && len <= page_size && align <= page_size ?
	    slot_take() : -1;
	pin = pin_due;
	pin_due = false;
	if (i < 0) {
		pthread_mutex_unlock(&pool_lock);
		if (pin)
			pin_old();
		return NULL;
	}
	s = &slots[i];
	/* The canary of its last block may still be poisoned for ASan, and
	 * the block itself is freed to a memory checker: the look at its
	 * junk is the library's own. */
	BA_ASAN_UNPOISON((void *)slot_page((size_t)i), page_size);
	BA_VG_QUIET_BEGIN();
	if (atomic_load(&s->state) == GS_FREED && !junk_intact(s))
		*old = (struct ba_guard_old){ .addr = s->block, .len = s->len,
		    .align = s->align, .ra = s->ra };
	BA_VG_QUIET_END();
	/* Then the whole page is the new block's, its canary's and
	 * padding's (the freed block's bytes were made inaccessible). */
	BA_VG_MAKE_UNDEFINED((void *)slot_page((size_t)i), page_size);
	atomic_store(&s->state, GS_BUSY);
	nlive++;
	pthread_mutex_unlock(&pool_lock);
	if (pin)
		pin_old();
	s->block = (slot_page((size_t)i) + page_size - len) &
	    ~(uintptr_t)(align - 1);
	s->len = len;
	s->align = align;
	s->ra = ra;
	s->owner = owner;
	memset(s->trace, 0, sizeof(s->trace));
	if (trace != NULL)
		memcpy(s->trace, trace, (depth < GUARD_TRACE ? depth :
		    GUARD_TRACE) * sizeof(trace[0]));
	atomic_store_explicit(&s->state, GS_LIVE, memory_order_release);
	/* Shown to memory checkers as a block of its own, as the GPA's
	 * slots are: a use after its free is theirs to see as well. */
	BA_TOOL_ALLOC((void *)s->block, len);
	return (void *)s->block;
}

/* The live slot of block p, or NULL. */
static struct gslot *
slot_of(uintptr_t p)
{
	size_t i;

	if (pool == 0 || p < slot_page(0) || p - pool >= pool_len)
		return NULL;
	i = (p - slot_page(0)) / (2 * page_size);
	if (atomic_load(&slots[i].state) != GS_LIVE || slots[i].block != p)
		return NULL;
	return &slots[i];
}

void
ba_guard_free(void *p)
{
	struct gslot *s = slot_of((uintptr_t)p);

	if (s == NULL)
		return;
	memset(p, BA_JUNK_FREED, s->len);
	BA_TOOL_FREE(p, s->len);
	atomic_store_explicit(&s->state, GS_FREED, memory_order_release);
	pthread_mutex_lock(&pool_lock);
	slot_put((unsigned)(s - slots));
	nlive--;
	pthread_mutex_unlock(&pool_lock);
}

/* owner's slots go back to the pool, unchecked (its leaks were reported
 * by the destroy); with no live block left, the pages go to the system
 * in one call, and every slot is clean. */
void
ba_guard_release(const void *owner)
{
	pthread_mutex_lock(&pool_lock);
	for (unsigned i = 0; i < nopen; i++) {
		struct gslot *s = &slots[i];
		int st = atomic_load(&s->state);

		if ((st != GS_LIVE && st != GS_FREED) || s->owner != owner)
			continue;
		atomic_store(&s->state, GS_EMPTY);
		if (st == GS_LIVE) {
			BA_VG_FREE((void *)s->block, s->len);
			slot_put(i);
			nlive--;
		}
	}
	if (nlive == 0 && nopen > 0) {
		madvise((void *)slot_page(0), 2 * page_size * nopen,
		    MADV_DONTNEED);
		for (unsigned i = 0; i < nopen; i++)
			atomic_store(&slots[i].state, GS_EMPTY);
	}
	pthread_mutex_unlock(&pool_lock);
}

/* The library is being unloaded (a NIF's purge dlcloses a copy linked
 * with libbeamalloc.a) or the process ends: the handler is this copy's
 * code, and after an unload the next fault jumped into unmapped memory
 * instead of the handler that was there before (found by a review: a
 * host's crash reporter never ran; the process died of a second
 * SIGSEGV).  So that one is put back, unless another was installed over
 * ours since (it may chain to ours: nothing better can be done).  A
 * guard page faulted after this is the previous handler's, unnamed. */
__attribute__((destructor)) static void
guard_fini(void)
{
	struct sigaction cur;

	if (!handler_set || sigaction(SIGSEGV, NULL, &cur) != 0 ||
	    (cur.sa_flags & SA_SIGINFO) == 0 || cur.sa_sigaction != on_segv)
		return;
	sigaction(SIGSEGV, &old_segv, NULL);
	handler_set = false;
}

/* fork(): the pool is the process's, after every GPA's locks (a large
 * block's guarded allocation takes it under the GPA's). */
void
ba_guard_fork(enum ba_fork ph)
{
	ba_fork_mutex(&pool_lock, ph, false);
}
