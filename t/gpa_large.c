/*
 * gpa_large.c - freed large blocks kept for the next: a buffer grown to
 * 1 MiB and freed, again and again, reuses one block and grows in it in
 * place; what is kept stays within LKEEP_N blocks and 8 MiB and goes back
 * at a trim, a leak check and destroy; a kept block handed out for a
 * smaller request cannot pin more than 8 MiB of slack; the backing sees
 * every free and resize with the exact length it handed out; a double
 * free of a kept block is reported and harms nothing.  Under a memory
 * checker nothing is kept (its own reports stay as they were): there the
 * test checks that every free reaches the backing.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "beamalloc.h"
#include "child.h"
#include "tap.h"
#include "under.h"
#include "testalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define KEPT_N 8		/* beamalloc_gpa(3): blocks kept at most */
#define KEPT_MAX (8 * MiB)	/* their bytes */
#define SLACK_MAX (8 * MiB)	/* slack past twice a length, in all */

static bool checker;
static unsigned long doubles, others;

static void
count(void *user, const beamalloc_report *r)
{
	(void)user;
	if (r->kind == BEAMALLOC_REPORT_DOUBLE_FREE)
		doubles++;
	else
		others++;
}

static beamalloc_gpa *
make(testalloc *ta, bool safety)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = true;
	cfg.report = count;
	return beamalloc_gpa_create(testalloc_allocator(ta), &cfg);
}

/* Destroy g (no leak: what asks for it frees all first) and check that
 * every block went back to ta, each with the length ta handed out. */
static void
finish(testalloc *ta, beamalloc_gpa *g, const char *what)
{
	is_size(beamalloc_gpa_destroy(g), 0, "%s: no leak", what);
	ok(ta->nblocks == 0 && ta->bad_calls == 0,
	    "%s: every block back, each with its exact length (%zu bad "
	    "calls)", what, ta->bad_calls);
	free(ta);
}

/* A buffer grown 32 KiB -> 1 MiB by realloc and freed, 20 times: the
 * first round takes its blocks from the backing (which cannot grow one
 * in place), the next ones take the kept blocks and free none. */
static void
grow_rounds(bool safety)
{
	testalloc *ta = testalloc_new();
	beamalloc_gpa *g = make(ta, safety);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t allocs = 0, frees = 0;
	unsigned char *first = NULL;
	bool same = true, intact = true, calls = true;

	for (int round = 0; round < 20; round++) {
		size_t len = 32 * KiB;
		unsigned char *p = beamalloc_alloc(a, len);

		if (p == NULL)
			break;
		ta_fill(p, len, (unsigned)round);
		while (len < MiB) {
			unsigned char *q = beamalloc_realloc(a, p, len,
			    BEAMALLOC_MIN_ALIGN, 2 * len);

			if (q == NULL)
				break;
			intact &= ta_intact(q, len, (unsigned)round);
			p = q;
			ta_fill(p, 2 * len, (unsigned)round);
			len *= 2;
		}
		if (round == 0) {
			first = p;
			allocs = ta->allocs;
			frees = ta->frees;
		} else {
			same &= p == first;
			calls &= ta->allocs == allocs;
		}
		beamalloc_free(a, p, len);
	}
	ok(intact, "safety %d: contents kept through every growth", safety);
	if (checker) {
		ok(ta->frees >= frees + 19,
		    "safety %d: under a memory checker every free reaches "
		    "the backing (%zu frees)", safety, ta->frees - frees);
		ok(1, "safety %d: (nothing kept to reuse)", safety);
	} else {
		ok(same && calls && ta->frees == frees,
		    "safety %d: rounds 2-20 grow through the kept blocks, "
		    "taking and freeing none from the backing", safety);
		ok(beamalloc_gpa_trim(g) >= MiB && ta->frees > frees,
		    "safety %d: a trim gives the kept blocks back", safety);
	}
	finish(ta, g, safety ? "safety 1" : "safety 0");
}

/* 20 blocks of 1 MiB freed: 8 at most are kept, 8 MiB in all; a leak
 * check gives them back.  16 bytes short of 1 MiB each, so that with a
 * canary (BEAMALLOC_GPA_OPTIONS=canary=1, make check-gpa-options), whose
 * 16 bytes a large block takes from the backing too, 8 still fit in the
 * 8 MiB (7 did, and the test failed there). */
#define KEPT_LEN (MiB - 16)

static void
kept_bound(void)
{
	testalloc *ta = testalloc_new();
	beamalloc_gpa *g = make(ta, true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *p[20];
	size_t base = ta->live_bytes, n = 0;

	for (int i = 0; i < 20; i++)
		n += (p[i] = beamalloc_alloc(a, KEPT_LEN)) != NULL;
	for (int i = 0; i < 20; i++)
		beamalloc_free(a, p[i], KEPT_LEN);
	is_size(n, 20, "20 blocks of 1 MiB");
	ok(ta->live_bytes - base <= KEPT_MAX + MiB / 4,
	    "kept after their frees: %zu KiB (at most %zu KiB, and the "
	    "table's)", (ta->live_bytes - base) / KiB, KEPT_MAX / KiB);
	ok(checker || ta->live_bytes - base >= KEPT_N * KEPT_LEN,
	    "the newest 8 are kept (%zu KiB)", (ta->live_bytes - base) / KiB);
	is_size(beamalloc_gpa_detect_leaks(g), 0, "no leak");
	ok(ta->live_bytes - base < MiB,
	    "a leak check gives them back (%zu KiB left)",
	    (ta->live_bytes - base) / KiB);
	finish(ta, g, "20 blocks of 1 MiB, destroyed");
}

/* A kept 1 MiB block handed out for 20 KiB holds its slack while the
 * block lives.  Freed, re-allocated and a 20 KiB block kept each time,
 * 40 times: the slack stays within 8 MiB, where without a bound it
 * would reach 40 MiB. */
static void
slack_bound(void)
{
	testalloc *ta = testalloc_new();
	beamalloc_gpa *g = make(ta, true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *small[40];
	size_t base = ta->live_bytes, n = 0, held;
	void *big = beamalloc_alloc(a, MiB);

	for (int i = 0; i < 40 && big != NULL; i++) {
		beamalloc_free(a, big, MiB);
		n += (small[i] = beamalloc_alloc(a, 20 * KiB)) != NULL;
		big = beamalloc_alloc(a, MiB);
	}
	held = ta->live_bytes - base;
	ok(n == 40 && big != NULL, "40 rounds");
	ok(held <= 40 * 20 * KiB + SLACK_MAX + 2 * MiB,
	    "held %zu KiB for 800 KiB of small blocks and 1 MiB (slack "
	    "past twice a length at most %zu KiB)", held / KiB,
	    SLACK_MAX / KiB);
	ok(checker || held > 40 * 20 * KiB + 4 * MiB,
	    "the first ones took the kept block (%zu KiB held)", held / KiB);
	/* A shrink of a block handed out bigger: the backing is told the
	 * length it handed out. */
	small[0] = beamalloc_realloc(a, small[0], 20 * KiB,
	    BEAMALLOC_MIN_ALIGN, 18 * KiB);
	ok(small[0] != NULL, "a shrink of a kept block handed out");
	beamalloc_free(a, small[0], 18 * KiB);
	for (int i = 1; i < 40; i++)
		beamalloc_free(a, small[i], 20 * KiB);
	beamalloc_free(a, big, MiB);
	finish(ta, g, "40 rounds");
}

/* Freed twice: the second is a double free, reported; the kept block
 * is handed out once after, and works. */
static void
double_free(void)
{
	testalloc *ta = testalloc_new();
	beamalloc_gpa *g = make(ta, true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 256 * KiB), *q, *r;

	doubles = others = 0;
	beamalloc_free(a, p, 256 * KiB);
	beamalloc_free(a, p, 256 * KiB);
	ok(doubles == 1 && others == 0, "a kept block freed again: one "
	    "double free reported (%lu, %lu others)", doubles, others);
	q = beamalloc_alloc(a, 256 * KiB);
	r = beamalloc_alloc(a, 256 * KiB);
	ok(q != NULL && r != NULL && q != r, "two blocks after it, apart");
	ok(checker || q == p, "the first is the kept block");
	memset(q, 1, 256 * KiB);
	memset(r, 2, 256 * KiB);
	ok(q[0] == 1 && q[256 * KiB - 1] == 1, "each its own");
	beamalloc_free(a, q, 256 * KiB);
	beamalloc_free(a, r, 256 * KiB);
	ok(others == 0, "nothing else reported");
	finish(ta, g, "a double free");
}

/* A backing that puts each block at the start of a page whose page
 * below is PROT_NONE: a byte read or written below a block faults. */
static size_t pg;

static void *
edge_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	size_t n = (len + pg - 1) / pg * pg + pg;
	unsigned char *m;

	(void)ctx, (void)ra;
	if (align > pg || (m = mmap(NULL, n, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		return NULL;
	(void)mprotect(m, pg, PROT_NONE);
	return m + pg;
}

static bool
edge_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len <= len;
}

static void *
edge_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static void
edge_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	(void)munmap((unsigned char *)mem - pg, (len + pg - 1) / pg * pg + pg);
}

static const beamalloc_vtable edge_vtable = { edge_alloc, edge_resize,
	edge_remap, edge_free };

/* With junk, a large block shrunk by resize below 8 bytes is junked and
 * checked at its free (and as it leaves a quarantine) without a byte
 * outside it: the word-wide helpers of the slots once read and wrote the
 * bytes below it (found by a review).  In a child: it faulted. */
static int
junk_short_child(void *unused)
{
	beamalloc_allocator back = { NULL, &edge_vtable }, a;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	unsigned char *p;
	int bad = 0;

	(void)unused;
	beamalloc_gpa_config_init(&cfg);
	cfg.junk = true;
	for (int quar = 0; quar < 2; quar++) {
		cfg.quarantine = quar ? 65536 : 0;
		if ((g = beamalloc_gpa_create(back, &cfg)) == NULL)
			return 2;
		a = beamalloc_gpa_allocator(g);
		for (size_t len = 1; len < 8; len++) {
			if ((p = beamalloc_alloc(a, 20000)) == NULL ||
			    !beamalloc_resize(a, p, 20000, 8, len))
				bad++;
			else
				beamalloc_free(a, p, len);
		}
		if (beamalloc_gpa_destroy(g) != 0)
			bad++;
	}
	return bad != 0;
}

static void
junk_short(void)
{
	char how[32];
	int st;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	st = child_run(junk_short_child, NULL, CHILD_EXIT, NULL, 0);
	ok(child_exited(st, 0), "junk: large blocks shrunk to 1-7 bytes "
	    "freed, with and without a quarantine, no byte below them "
	    "touched (%s)", child_how(st, how));
}

int
main(void)
{
	checker = UNDER_ASAN || UNDER_VALGRIND();
	plan(31);
	if (checker)
		diag("under a memory checker: nothing is kept");
	grow_rounds(false);
	grow_rounds(true);
	kept_bound();
	slack_bound();
	double_free();
	junk_short();
	return done_testing();
}
