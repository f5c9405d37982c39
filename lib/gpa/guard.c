/*
 * gpa_guard.c - guarded sampling for the GPA (guard_sample = N): one
 * allocation in N gets pages of its own, mapped with an inaccessible page
 * right after them and the block placed at their end (as its alignment
 * allows), so an overflow faults at the instruction that makes it.  A
 * freed block's pages become inaccessible too, so a use after free
 * faults.  A SIGSEGV handler, installed at the first guarded block,
 * finds the block from the faulting address, names it, its size and its
 * allocation call site and trace (with write(2) only: it runs in a
 * signal), then hands the signal to the handler that was there before.
 *
 * The blocks are in a fixed table the handler can read without locks.
 * A freed block keeps its slot (and its pages reserved, their memory
 * given back) until the slot is needed again; a full table, an
 * alignment above the page size or a failed mmap() leave the block to
 * the usual placement.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpa.h"

/* ------------------------------------------------------------------------
 * Data: the table of guarded blocks
 * ---------------------------------------------------------------------- */

#define GUARD_SLOTS 512
#define GUARD_TRACE 8
#define GUARD_KEEP (16 * 1024)		/* freed blocks keep up to this */

enum { GS_EMPTY, GS_BUSY, GS_LIVE, GS_FREED };

struct gslot {
	_Atomic int state;		/* GS_* */
	uintptr_t map;			/* the pages, guard page last */
	size_t map_len, data_len;
	uintptr_t block;
	size_t len;
	uintptr_t ra;
	const void *owner;		/* the GPA */
	uintptr_t trace[GUARD_TRACE];
};

static struct gslot slots[GUARD_SLOTS];
static struct sigaction old_segv;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static size_t page_size;

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

	for (size_t i = 0; i < GUARD_SLOTS; i++) {
		const struct gslot *s = &slots[i];
		int st = atomic_load_explicit(&slots[i].state,
		    memory_order_acquire);

		if ((st == GS_LIVE || st == GS_FREED) && a >= s->map &&
		    a - s->map < s->map_len) {
			describe(s, a, st);
			break;
		}
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
	signal(sig, SIG_DFL);
	/* Sent, not a fault: returning would not repeat it. */
	if (si->si_code <= 0)
		raise(sig);
}

static void
install(void)
{
	struct sigaction sa;

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
}

/* ------------------------------------------------------------------------
 * Guarded blocks
 * ---------------------------------------------------------------------- */

/* A slot to fill: an empty one (freed blocks stay guarded as long as
 * there are), else that of a freed block whose pages have the size
 * wanted (*reuse: they are mapped again, one mprotect()), else that of
 * any freed block, whose pages go. */
static struct gslot *
slot_claim(size_t map_len, bool *reuse)
{
	for (int pass = 0; pass < 3; pass++) {
		int want = pass == 0 ? GS_EMPTY : GS_FREED;

		for (size_t i = 0; i < GUARD_SLOTS; i++) {
			int cur = want;

			if (pass == 1 && slots[i].map_len != map_len)
				continue;
			if (!atomic_compare_exchange_strong(&slots[i].state,
			    &cur, GS_BUSY))
				continue;
			*reuse = pass == 1 && slots[i].map_len == map_len;
			if (pass == 2 || (pass == 1 && !*reuse))
				munmap((void *)slots[i].map,
				    slots[i].map_len);
			return &slots[i];
		}
	}
	return NULL;
}

void *
ba_guard_alloc(const void *owner, size_t len, size_t align, uintptr_t ra,
    const uintptr_t *trace, unsigned depth)
{
	struct gslot *s;
	size_t data;
	bool reuse;
	void *m;

	pthread_once(&handler_once, install);
	if (align > page_size || len > SIZE_MAX - 2 * page_size)
		return NULL;
	data = (len + page_size - 1) & ~(page_size - 1);
	if ((s = slot_claim(data + page_size, &reuse)) == NULL)
		return NULL;
	if (reuse) {
		m = (void *)s->map;
		if (mprotect(m, data, PROT_READ | PROT_WRITE) != 0) {
			munmap(m, data + page_size);
			reuse = false;
		}
	}
	if (!reuse && ((m = mmap(NULL, data + page_size, PROT_READ |
	    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED ||
	    mprotect((char *)m + data, page_size, PROT_NONE) != 0)) {
		if (m != MAP_FAILED)
			munmap(m, data + page_size);
		s->map_len = 0;
		atomic_store(&s->state, GS_EMPTY);
		return NULL;
	}
	s->map = (uintptr_t)m;
	s->map_len = data + page_size;
	s->data_len = data;
	s->block = ((uintptr_t)m + data - len) & ~(uintptr_t)(align - 1);
	s->len = len;
	s->ra = ra;
	s->owner = owner;
	memset(s->trace, 0, sizeof(s->trace));
	if (trace != NULL)
		memcpy(s->trace, trace, (depth < GUARD_TRACE ? depth :
		    GUARD_TRACE) * sizeof(trace[0]));
	atomic_store_explicit(&s->state, GS_LIVE, memory_order_release);
	return (void *)s->block;
}

static struct gslot *
slot_of(uintptr_t block)
{
	for (size_t i = 0; i < GUARD_SLOTS; i++)
		if (atomic_load(&slots[i].state) == GS_LIVE &&
		    slots[i].block == block)
			return &slots[i];
	return NULL;
}

void
ba_guard_free(void *p)
{
	struct gslot *s = slot_of((uintptr_t)p);

	if (s == NULL)
		return;
	/* The addresses stay, inaccessible; the memory of larger blocks
	 * goes back (smaller ones keep theirs for the slot's next block). */
	if (s->data_len > GUARD_KEEP)
		madvise((void *)s->map, s->data_len, MADV_DONTNEED);
	mprotect((void *)s->map, s->data_len, PROT_NONE);
	atomic_store_explicit(&s->state, GS_FREED, memory_order_release);
}

void
ba_guard_release(const void *owner)
{
	for (size_t i = 0; i < GUARD_SLOTS; i++) {
		struct gslot *s = &slots[i];
		int st = atomic_load(&s->state);

		if ((st != GS_LIVE && st != GS_FREED) || s->owner != owner ||
		    !atomic_compare_exchange_strong(&s->state, &st, GS_BUSY))
			continue;
		munmap((void *)s->map, s->map_len);
		atomic_store(&s->state, GS_EMPTY);
	}
}
