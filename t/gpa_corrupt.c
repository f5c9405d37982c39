/*
 * gpa_corrupt.c - the GPA catches overflows and writes after free by
 * itself (canary, junk, quarantine, guard_sample), with no memory
 * checker.  Each planted bug runs in a child process (a fork), 1000
 * times in a loop where the GPA promises 1000 of 1000, and the child
 * sends back how many the GPA reported as promised: the right kind, the
 * block's address and size, and its allocation site.  The guard page
 * cases must die of the fault after the handler named the block.
 *
 * Under ASan or memcheck the planted accesses are hidden from the tool
 * (as in a NIF no tool watches): it is the GPA that must see them.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "tap.h"
#include "tools.h"
#include "plant.h"
#include "seen.h"
#include "testalloc.h"

#define RUNS 1000

static beamalloc_gpa *
make(bool canary, bool junk, size_t quarantine, unsigned guard)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = on_report;
	cfg.canary = canary;
	cfg.junk = junk;
	cfg.quarantine = quarantine;
	cfg.guard_sample = guard;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		exit(3);
	return g;
}

/* ------------------------------------------------------------------------
 * The cases, run in the child: each returns a count
 * ---------------------------------------------------------------------- */

/* Overflow by n of a len-byte block, reported at its free. */
static size_t
overflow_at_free(size_t len, size_t n)
{
	beamalloc_gpa *g = make(true, false, 0, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, len);

		expect(p, len);
		/* Never the canary's own byte, 0xfb: that would not show. */
		plant(p + len, n, (unsigned char)('A' + i % 26));
		beamalloc_free(a, p, len);
	}
	beamalloc_gpa_destroy(g);
	if (seen.kind[BEAMALLOC_REPORT_OVERFLOW] != RUNS)
		fprintf(stderr, "%zu overflow reports\n",
		    seen.kind[BEAMALLOC_REPORT_OVERFLOW]);
	return seen.kind[BEAMALLOC_REPORT_OVERFLOW] == RUNS ? seen.named : 0;
}

static size_t
overflow_1(void)
{
	return overflow_at_free(24, 1);
}

static size_t
overflow_16(void)
{
	return overflow_at_free(48, 16);
}

static size_t
overflow_large(void)
{
	return overflow_at_free(100000, 1);
}

/* Found by a leak check, and by a resize. */
static size_t
overflow_leak_resize(void)
{
	beamalloc_gpa *g = make(true, false, 0, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 20), *q;
	size_t n = 0;

	expect(p, 20);
	plant(p + 20, 1, 0);
	/* Named twice: as overflowed and as leaked. */
	n += beamalloc_gpa_detect_leaks(g) == 1 &&
	    seen.kind[BEAMALLOC_REPORT_OVERFLOW] == 1 && seen.named == 2;
	q = beamalloc_alloc(a, 20);
	expect(q, 20);
	plant(q + 20, 1, 'x');
	n += beamalloc_resize(a, q, 20, 8, 22) &&
	    seen.kind[BEAMALLOC_REPORT_OVERFLOW] == 2 && seen.named == 3;
	/* The canary follows the new length: a clean free. */
	beamalloc_free(a, q, 22);
	n += seen.kind[BEAMALLOC_REPORT_OVERFLOW] == 2;
	beamalloc_free(a, p, 20);		/* reported again */
	beamalloc_gpa_destroy(g);
	return n;
}

/* A new block reads as the junk pattern. */
static size_t
junk_read(void)
{
	beamalloc_gpa *g = make(false, true, 0, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t n = 0;

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 40), *e = p + 40;

#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
		/* Memcheck holds them uninitialized, rightly: look anyway. */
		VALGRIND_MAKE_MEM_DEFINED(p, 40);
#endif
		while (p < e && *p == 0xdb)
			p++;
		n += p == e;
		memset(e - 40, 0, 40);
		beamalloc_free(a, e - 40, 40);
	}
	beamalloc_gpa_destroy(g);
	return n + seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE];
}

/* The bytes a resize or realloc grows a block by read as the junk pattern
 * too, in its slot and in a large block, with the canary or without:
 * 0xdb, not a freed block's junk, the canary or the backing's bytes. */
static size_t
junk_grown(void)
{
	static const size_t grow[][2] = {
		{ 10, 14 }, { 40, 47 }, { 100, 110 }, { 20000, 30000 },
		{ 100000, 400000 },
	};
	size_t n = 0;

	for (int canary = 0; canary < 2; canary++) {
		beamalloc_gpa *g = make(canary, true, 0, 0);
		beamalloc_allocator a = beamalloc_gpa_allocator(g);

		for (int i = 0; i < 20; i++)
			for (size_t k = 0; k < 5; k++) {
				size_t l0 = grow[k][0], l1 = grow[k][1];
				unsigned char *p = beamalloc_alloc(a, l0), *q;

				memset(p, 0x11, l0);
				/* Half by resize (in place, or not at all). */
				if (i % 2 == 0 && beamalloc_resize(a, p, l0, 8,
				    l1))
					q = p;
				else
					q = beamalloc_realloc(a, p, l0, 8, l1);
				if (q == NULL)
					exit(3);
#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
				VALGRIND_MAKE_MEM_DEFINED(q + l0, l1 - l0);
#endif
				p = q + l0;
				while (p < q + l1 && *p == 0xdb)
					p++;
				n += p == q + l1;
				beamalloc_free(a, q, l1);
			}
		beamalloc_gpa_destroy(g);
	}
	return n + seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] +
	    seen.kind[BEAMALLOC_REPORT_OVERFLOW];
}

/* Junk only: the write is seen when the slot comes back. */
static size_t
waf_reuse(void)
{
	beamalloc_gpa *g = make(false, true, 0, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 48), *q;

		beamalloc_free(a, p, 48);
		expect(p, 48);
		plant(p + 8, 1, 0);
		q = beamalloc_alloc(a, 48);
		beamalloc_free(a, q, 48);
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == RUNS ?
	    seen.named : 0;
}

/* Junk and quarantine: the write is seen when the block leaves it,
 * pushed out by other frees. */
static size_t
waf_quarantine(void)
{
	beamalloc_gpa *g = make(false, true, 4096, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 48);
		size_t before = seen.named;

		beamalloc_free(a, p, 48);
		expect(p, 48);
		plant(p + 47, 1, 0x5a);
		for (int k = 0; k < 200 && seen.named == before; k++) {
			void *q = beamalloc_alloc(a, 48);

			beamalloc_free(a, q, 48);
		}
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == RUNS ?
	    seen.named : 0;
}

/* A trim (so a leak check, a destroy) lets everything out, checked. */
static size_t
waf_trim(void)
{
	beamalloc_gpa *g = make(false, false, 1 << 20, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 48);
	unsigned char *big = beamalloc_alloc(a, 50000);
	size_t n = 0;

	beamalloc_free(a, p, 48);
	beamalloc_free(a, big, 50000);
	expect(p, 48);
	plant(p, 1, 1);
	plant(big + 49999, 1, 1);
	n += seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == 0;
	beamalloc_gpa_trim(g);
	n += seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == 2 &&
	    seen.named == 1;
	n += beamalloc_gpa_destroy(g) == 0;
	return n;
}

/* A second free of a block in quarantine is a double free. */
static size_t
double_free_quarantined(void)
{
	beamalloc_gpa *g = make(false, true, 1 << 20, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 48);

		beamalloc_free(a, p, 48);
		beamalloc_free(a, p, 48);
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_DOUBLE_FREE] +
	    seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE];
}

/* Every option on, every block used correctly: no report, no leak. */
static size_t
clean(void)
{
	beamalloc_gpa *g = make(true, true, 8192, 7);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t n = 0;

	for (int i = 0; i < RUNS; i++) {
		size_t len = 1 + (size_t)(i * 37) % 3000;
		unsigned char *p = beamalloc_alloc(a, len);

		memset(p, i, len);
		if (beamalloc_resize(a, p, len, 8, len / 2 + 1))
			len = len / 2 + 1;
		p = beamalloc_realloc(a, p, len, 8, len + 100);
		memset(p, 1, len + 100);
		beamalloc_free(a, p, len + 100);
	}
	for (size_t k = 0; k < sizeof(seen.kind) / sizeof(seen.kind[0]); k++)
		n += seen.kind[k];
	return n + beamalloc_gpa_destroy(g);
}

/* Guarded: every block (guard_sample 1) against its guard page. */
static size_t
guard_overflow(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 24);

	fprintf(stderr, "block %p\n", (void *)p);
	fflush(stderr);
	p[23] = 1;			/* in bounds */
	((volatile unsigned char *)p)[24] = 1;
	return 0;
}

/* By 16: the last byte of the 16 past a 48 B block. */
static size_t
guard_overflow_16(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 48);

	fprintf(stderr, "block %p\n", (void *)p);
	fflush(stderr);
	memset(p, 1, 48);
	((volatile unsigned char *)p)[48 + 15] = 1;
	return 0;
}

/* p[-1] of a page-long guarded block faults in the guard page between
 * it and the guarded block before it: the line names p ("access before
 * block"), the nearer, not the neighbour as overflowed. */
static size_t
guard_underflow_page(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *before = beamalloc_alloc(a, page);
	unsigned char *p = beamalloc_alloc(a, page);

	fprintf(stderr, "neighbour %p, block %p\n", (void *)before,
	    (void *)p);
	fflush(stderr);
	((volatile unsigned char *)p)[-1] = 1;
	return 0;
}

/* A program that ignores SIGSEGV keeps ignoring one sent to it (raise)
 * once the guard pages' handler is in: it returns 1, not killed by it. */
static size_t
guard_sent_ignored(void)
{
	beamalloc_gpa *g;
	beamalloc_allocator a;
	unsigned char *p;

	signal(SIGSEGV, SIG_IGN);
	g = make(false, false, 0, 1);
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 24);	/* guarded: the handler goes in */
	raise(SIGSEGV);
	beamalloc_free(a, p, 24);
	beamalloc_gpa_destroy(g);
	return 1;
}

/* A guarded block freed twice, with a trim between for half of them: a
 * "double free" naming it (its slot knows it was freed), not an invalid
 * free. */
static size_t
guard_double_free(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 48);

		beamalloc_free(a, p, 48);
		if (i % 2 == 0)
			(void)beamalloc_gpa_trim(g);
		expect(p, 48);
		beamalloc_free(a, p, 48);
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_DOUBLE_FREE] == RUNS &&
	    seen.kind[BEAMALLOC_REPORT_INVALID_FREE] == 0 ? seen.named : 0;
}

/* Guarded blocks pass through at most GUARD_SLOTS (512) slots: this many
 * guarded allocations after a write to a freed one hand its slot out
 * again, whatever the order. */
#define CYCLE 600

/* A write to a freed guarded block (junk-filled, not unmapped) is a
 * "write after free" naming it, when its slot is handed out again. */
static size_t
guard_waf(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc(a, 48);

		beamalloc_free(a, p, 48);
		expect(p, 48);
		plant(p + 8, 1, 0);
		for (int k = 0; k < CYCLE; k++)
			beamalloc_free(a, beamalloc_alloc(a, 48), 48);
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == RUNS ?
	    seen.named : 0;
}

/* The same at the edges of the junk check (its first byte, its last, a
 * 1-byte block, a whole page): 5 cases, 200 runs each. */
static size_t
guard_waf_edges(void)
{
	static const struct { size_t len, off; } c[] = {
		{ 1, 0 }, { 48, 0 }, { 48, 47 }, { 4096, 0 }, { 4096, 4095 },
	};
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	for (int i = 0; i < RUNS; i++) {
		size_t len = c[i % 5].len;
		unsigned char *p = beamalloc_alloc(a, len);

		beamalloc_free(a, p, len);
		expect(p, len);
		plant(p + c[i % 5].off, 1, 0);
		for (int k = 0; k < CYCLE; k++)
			beamalloc_free(a, beamalloc_alloc(a, 48), 48);
	}
	beamalloc_gpa_destroy(g);
	return seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] == RUNS ?
	    seen.named : 0;
}

/* The mappings that lie within [lo, hi). */
static size_t
maps_within(uintptr_t lo, uintptr_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long b, e;
	char line[512];
	size_t n = 0;

	if (f == NULL)
		exit(5);
	while (fgets(line, sizeof(line), f) != NULL)
		n += sscanf(line, "%lx-%lx", &b, &e) == 2 && b >= lo && e <= hi;
	fclose(f);
	return n;
}

/* Slots are reused: once every slot has been used, 100000 more guarded
 * blocks of 1 to 4096 B, up to 64 live, map nothing more around the
 * guarded blocks (the others' mappings, a checker's own among them, are
 * not counted).  Returns the mappings gained (0) plus the reports (0),
 * or a large number. */
static size_t
guard_reuse(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *live[64] = { 0 }, *warm[CYCLE];
	size_t lens[64] = { 0 }, before, after, n = 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	unsigned r = 1;

	/* Every slot in use once (the rest of the 600 placed as usual);
	 * the guarded ones end at a page boundary, and span the pool. */
	for (int k = 0; k < CYCLE; k++) {
		uintptr_t p = (uintptr_t)(warm[k] = beamalloc_alloc(a, 4000));

		if ((p + 4000) % page == 0) {
			lo = p < lo ? p : lo;
			hi = p > hi ? p : hi;
		}
	}
	for (int k = 0; k < CYCLE; k++)
		beamalloc_free(a, warm[k], 4000);
	lo -= 2 * page;
	hi += 2 * page;
	before = maps_within(lo, hi);
	for (int i = 0; i < 100000; i++) {
		size_t j = (size_t)i % 64;

		r = r * 1103515245 + 12345;
		if (live[j] != NULL)
			beamalloc_free(a, live[j], lens[j]);
		lens[j] = 1 + (r >> 8) % 4096;
		if ((live[j] = beamalloc_alloc(a, lens[j])) == NULL)
			return 1000;
		memset(live[j], 7, lens[j]);
	}
	after = maps_within(lo, hi);
	for (size_t j = 0; j < 64; j++)
		beamalloc_free(a, live[j], lens[j]);
	for (size_t k = 0; k < sizeof(seen.kind) / sizeof(seen.kind[0]); k++)
		n += seen.kind[k];
	if (after != before || before == 0)
		fprintf(stderr, "maps: %zu lines, then %zu\n", before, after);
	return (after > before ? after - before : 0) + (before == 0) + n +
	    beamalloc_gpa_destroy(g);
}

/* A destroy gives the pages back (none resident after it, 10 of 10),
 * reports its live guarded blocks as leaks (5), and a new GPA reuses
 * the slots with no false "write after free" (0). */
static size_t
guard_destroy(void)
{
	beamalloc_gpa *g = make(false, false, 0, 1);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0;
	unsigned char *p[10];

	for (int i = 0; i < 10; i++)
		memset(p[i] = beamalloc_alloc(a, 200), 1, 200);
	for (int i = 0; i < 5; i++)
		beamalloc_free(a, p[i], 200);
	beamalloc_gpa_destroy(g);
	for (int i = 0; i < 10; i++) {
		unsigned char v = 1;

		if (mincore((void *)((uintptr_t)p[i] & ~(uintptr_t)(page - 1)),
		    page, &v) != 0)
			return 1000;
		n += (v & 1) == 0;
	}
	n += seen.kind[BEAMALLOC_REPORT_LEAK];
	g = make(false, false, 0, 1);
	a = beamalloc_gpa_allocator(g);
	for (int k = 0; k < CYCLE; k++)
		beamalloc_free(a, beamalloc_alloc(a, 200), 200);
	return n + seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE] +
	    beamalloc_gpa_destroy(g);
}

/* Sampled blocks are GPA blocks as any other: leak checks see them. */
static size_t
guard_leak(void)
{
	beamalloc_gpa *g = make(false, false, 0, 2);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *p[10];

	for (int i = 0; i < 10; i++)
		p[i] = beamalloc_alloc(a, 64);
	for (int i = 0; i < 9; i++)
		beamalloc_free(a, p[i], 64);
	return beamalloc_gpa_destroy(g) + seen.kind[BEAMALLOC_REPORT_LEAK];
}

/* The page at a lies in a mapping with no access (a guard page). */
static bool
no_access(uintptr_t a)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long b, e;
	char line[512], perm[8];
	bool none = false;

	if (f == NULL)
		exit(5);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%lx-%lx %7s", &b, &e, perm) == 3 &&
		    b <= a && a < e)
			none = strncmp(perm, "---", 3) == 0;
	fclose(f);
	return none;
}

/* guard_sample = 10 alone (the fast paths' countdown): 10 of 100 blocks
 * of 24 B end at a page boundary with a guard page after them (a slab
 * slot of 24 B may end at a page boundary too, never before a guard). */
static size_t
guard_sampled(void)
{
	beamalloc_gpa *g = make(false, false, 0, 10);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *p[100];
	size_t n = 0;

	for (int i = 0; i < 100; i++) {
		uintptr_t end = (uintptr_t)(p[i] = beamalloc_alloc(a, 24)) + 24;

		n += end % (uintptr_t)sysconf(_SC_PAGESIZE) == 0 &&
		    no_access(end);
	}
	for (int i = 0; i < 100; i++)
		beamalloc_free(a, p[i], 24);
	return beamalloc_gpa_destroy(g) == 0 ? n : 0;
}

/* The countdown stays exact through the slow paths (empty and full
 * magazines, four classes, a depot): guard_sample = 10, 10000 blocks of
 * four sizes, 300 live, FIFO: the thread's first block goes by the
 * GPA's count, the second starts its countdown, so 1000 guarded (told
 * by the guard page after them: a slab slot may end at a page boundary
 * too). */
static size_t
guard_countdown(void)
{
	static const size_t len[] = { 24, 40, 88, 504 };
	beamalloc_gpa *g = make(false, false, 0, 10);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	long page = sysconf(_SC_PAGESIZE);
	void *p[300] = { NULL };
	size_t n = 0;

	for (int i = 0; i < 10000; i++) {
		size_t k = (size_t)i % 300;

		if (p[k] != NULL)
			beamalloc_free(a, p[k], len[(i - 300) % 4]);
		p[k] = beamalloc_alloc(a, len[i % 4]);
		n += ((uintptr_t)p[k] + len[i % 4]) % (uintptr_t)page == 0 &&
		    no_access((uintptr_t)p[k] + len[i % 4]);
	}
	for (int i = 10000; i < 10300; i++)
		beamalloc_free(a, p[i % 300], len[(i - 300) % 4]);
	return beamalloc_gpa_destroy(g) == 0 ? n : 0;
}

/* ------------------------------------------------------------------------
 * The parent
 * ---------------------------------------------------------------------- */

struct result {
	int status;
	size_t count;
	char err[4096];
};

/* The child's count, in memory it shares with the parent. */
static size_t *child_count;

struct step {
	size_t (*fn)(void);
};

static int
count_in_child(void *arg)
{
	*child_count = ((struct step *)arg)->fn();
	return 0;
}

static void
run(size_t (*fn)(void), struct result *res)
{
	struct step s = { fn };

	if (child_count == NULL)
		child_count = child_shared(sizeof(*child_count));
	*child_count = (size_t)-1;
	res->status = child_run(count_in_child, &s, 0, res->err,
	    sizeof(res->err));
	res->count = *child_count;
}

static bool
exited_ok(const struct result *r)
{
	return child_exited(r->status, 0);
}

static void
counted(size_t (*fn)(void), size_t want, const char *what)
{
	struct result r;

	run(fn, &r);
	if (!ok(exited_ok(&r) && r.count == want, "%s: %zu (want %zu)",
	    what, r.count, want))
		diag("status %d, stderr: %.2000s", r.status, r.err);
}

/* The handler's line names the block the child printed, and the child
 * did not live on. */
static void
guarded(size_t (*fn)(void), const char *words, const char *what)
{
	struct result r;
	char *b, want[64];
	void *p;

	run(fn, &r);
	b = strstr(r.err, "block ");
	if (b == NULL || sscanf(b, "block %p", &p) != 1)
		p = NULL;
	snprintf(want, sizeof(want), "%s %#lx of", words, (unsigned long)p);
	if (!ok(p != NULL && !exited_ok(&r) && strstr(r.err, want) != NULL,
	    "%s: the fault names the block (%s)", what, want))
		diag("status %d, stderr: %.2000s", r.status, r.err);
	ok(strstr(r.err, "allocated at 0x") != NULL,
	    "%s: and its allocation site", what);
}

/* backing_bytes is what the backing holds, the quarantine's own memory
 * and the large blocks waiting in it included (they are the backing's
 * until they leave).  In the parent: no report is due. */
static void
quarantine_counted(void)
{
	static testalloc ta;
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	void *big, *small;
	size_t held;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = on_report;
	cfg.canary = cfg.junk = true;
	cfg.quarantine = 1 << 20;
	if ((g = beamalloc_gpa_create(testalloc_allocator(&ta), &cfg)) == NULL)
		bail("gpa_create");
	a = beamalloc_gpa_allocator(g);
	big = beamalloc_alloc(a, 100000);
	small = beamalloc_alloc(a, 48);
	if (big == NULL || small == NULL)
		bail("alloc");
	beamalloc_free(a, big, 100000);
	beamalloc_free(a, small, 48);
	held = ta.live_bytes;
	beamalloc_gpa_get_stats(g, &st);
	ok(st.backing_bytes == held, "quarantine: backing_bytes counts the "
	    "held blocks and the quarantine (%zu; the backing holds %zu)",
	    st.backing_bytes, held);
	(void)beamalloc_gpa_trim(g);
	beamalloc_gpa_get_stats(g, &st);
	ok(st.backing_bytes == ta.live_bytes && ta.live_bytes + 100000 <= held,
	    "and after a trim lets them go (%zu; the backing %zu, %zu before)",
	    st.backing_bytes, ta.live_bytes, held);
	ok(beamalloc_gpa_destroy(g) == 0 && ta.live_bytes == 0 &&
	    ta.bad_calls == 0, "destroy gives the backing everything back");
}

int
main(void)
{
	plan(29);
	quarantine_counted();
	counted(overflow_1, RUNS, "canary: 1-byte overflow of a 24 B block, "
	    "reported at free with its site, of 1000");
	counted(overflow_16, RUNS, "canary: 16-byte overflow of a 48 B block");
	counted(overflow_large, RUNS, "canary: 1-byte overflow of a 100000 B "
	    "block");
	counted(overflow_leak_resize, 3, "canary: checked by a leak check and "
	    "by a resize, which moves it");
	counted(junk_read, RUNS, "junk: a new 40 B block reads 0xdb, of 1000 "
	    "(no false write-after-free)");
	counted(junk_grown, 200, "junk: the bytes a resize or realloc grows "
	    "a block by read 0xdb (small and large, canary or not), of 200");
	counted(waf_reuse, RUNS, "junk: a write to a freed 48 B block, "
	    "reported when its slot comes back, of 1000");
	counted(waf_quarantine, RUNS, "junk + quarantine: a write to a freed "
	    "48 B block, reported when it leaves quarantine, of 1000");
	counted(waf_trim, 3, "quarantine: a trim lets the blocks out, checked "
	    "(small and large)");
	counted(double_free_quarantined, RUNS, "quarantine: a second free of "
	    "a held block is a double free, of 1000");
	counted(clean, 0, "every option on, correct use: no report, no leak");
	counted(guard_leak, 2, "guard: a sampled block is a GPA block: its "
	    "leak is reported");
	counted(guard_sampled, 10, "guard: 1 in 10 sampled by the fast "
	    "paths: 10 of 100 blocks of 24 B end at a guard page");
	guarded(guard_overflow, "overflow past block", "guard: a 1-byte "
	    "overflow of a 24 B block faults");
	guarded(guard_overflow_16, "overflow past block", "guard: a 16-byte "
	    "overflow of a 48 B block faults");
	guarded(guard_underflow_page, "access before block", "guard: p[-1] "
	    "of a page-long block after another faults naming it");
	counted(guard_sent_ignored, 1, "guard: a SIGSEGV sent to a program "
	    "that ignores it stays ignored with the handler in");
	counted(guard_double_free, RUNS, "guard: a freed 48 B block freed "
	    "again (after a trim for half) is a double free naming it, of "
	    "1000");
	counted(guard_waf, RUNS, "guard: a write to a freed 48 B block, "
	    "reported when its slot comes back, of 1000");
	counted(guard_waf_edges, RUNS, "guard: the same at the first and "
	    "last byte of blocks of 1, 48 and 4096 B, of 1000");
	counted(guard_countdown, 1000, "guard: 1 in 10 through slow paths: "
	    "1000 of 10000 blocks of 4 sizes, 300 live");
	counted(guard_reuse, 0, "guard: 100000 blocks through the reused "
	    "slots map nothing more, no report");
	counted(guard_destroy, 15, "guard: a destroy gives the pages back "
	    "(10), reports the 5 leaks; no false write after free then");
	return done_testing();
}
