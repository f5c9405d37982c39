/*
 * gpa.c - the general purpose allocator, single-threaded: every report
 * kind through a capturing callback, exact leak counts, everything given
 * back to a counting backing at destroy, the memory limit and stats,
 * resize/remap, traces and call sites, the config's ABI, the global
 * instance and the seed's leaks()/noleak().
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "plant.h"
#include "tap.h"
#include "testalloc.h"

#define MAX_CAUGHT 256

/* Every report, as the callback saw it. */
struct caught {
	beamalloc_report r;
	uintptr_t alloc0, free0;	/* first frame of each trace */
};

static struct caught caught[MAX_CAUGHT];
static size_t ncaught;

static void
capture_report(void *user, const beamalloc_report *r)
{
	size_t *count = user;

	if (count != NULL)
		(*count)++;
	if (ncaught < MAX_CAUGHT) {
		struct caught *c = &caught[ncaught];

		c->r = *r;
		c->alloc0 = r->alloc_trace_len ? r->alloc_trace[0] : 0;
		c->free0 = r->free_trace_len ? r->free_trace[0] : 0;
		/* the traces are only valid during the call */
		c->r.alloc_trace = NULL;
		c->r.free_trace = NULL;
	}
	ncaught++;
}

static beamalloc_gpa *
new_gpa(beamalloc_allocator backing, bool safety, unsigned depth)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.stack_trace_depth = depth;
	cfg.report = capture_report;
	cfg.report_user = NULL;
	return beamalloc_gpa_create(backing, &cfg);
}

/* Call sites the GPA must name: the return address lies inside these. */
static __attribute__((noinline)) void *
alloc_site(beamalloc_allocator a, size_t len)
{
	void *p = beamalloc_alloc(a, len);

	__asm__ volatile("" ::: "memory");	/* no tail call */
	return p;
}

static __attribute__((noinline)) void
free_site(beamalloc_allocator a, void *p, size_t len)
{
	beamalloc_free(a, p, len);
	__asm__ volatile("" ::: "memory");
}

static int
inside(uintptr_t addr, void *fn)
{
	uintptr_t f = (uintptr_t)fn;

	return addr > f && addr < f + 256;
}

static void
defaults(void)
{
	beamalloc_gpa_config cfg;

	memset(&cfg, 0xa5, sizeof(cfg));
	beamalloc_gpa_config_init(&cfg);
	ok(cfg.struct_size == sizeof(cfg) && cfg.stack_trace_depth == 0 &&
	    cfg.safety && cfg.thread_safe && !cfg.abort_on_error &&
	    cfg.memory_limit == 0 && cfg.report == NULL &&
	    cfg.report_user == NULL, "config_init: documented defaults");
}

/* Every class and alignment up to the largest class, then large blocks;
 * contents survive, nothing overlaps. */
static void
classes_and_alignments(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = new_gpa(b, true, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	static unsigned char *ps[15][8];
	size_t bad_align = 0, bad_data = 0;

	ncaught = 0;
	for (int s = 0; s < 15; s++)
		for (int k = 0; k < 8; k++) {
			size_t align = (size_t)1 << s;
			size_t len = 1 + (size_t)k * 977 % 20000;

			ps[s][k] = beamalloc_alloc_aligned(a, len, align);
			if (ps[s][k] == NULL || !is_aligned(ps[s][k], align))
				bad_align++;
			else
				ta_fill(ps[s][k], len, (unsigned)(s * 8 + k));
		}
	is_size(bad_align, 0,
	    "alignments 1..16 KiB served over an 8-only backing");
	for (int s = 0; s < 15; s++)
		for (int k = 0; k < 8; k++) {
			size_t align = (size_t)1 << s;
			size_t len = 1 + (size_t)k * 977 % 20000;

			if (ps[s][k] == NULL)
				continue;
			if (!ta_intact(ps[s][k], len, (unsigned)(s * 8 + k)))
				bad_data++;
			beamalloc_free_aligned(a, ps[s][k], len, align);
		}
	is_size(bad_data, 0, "no block overlapped another");
	is_size(ncaught, 0, "correct frees report nothing");
	is_size(beamalloc_gpa_destroy(g), 0, "no leaks after freeing all");
	is_size(t->nblocks, 0, "destroy gave every block back");
	is_size(t->bad_calls, 0, "every backing free named its exact block");
	free(t);
}

static void
leaks_exact(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = new_gpa(b, true, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	static const size_t lens[] = { 1, 8, 24, 100, 4000, 16384, 16385,
	    100000 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	void *p[N], *keep;
	size_t found = 0, sized = 0;
	beamalloc_gpa_stats st;

	keep = beamalloc_alloc(a, 64);
	for (size_t i = 0; i < N; i++)
		p[i] = alloc_site(a, lens[i]);
	beamalloc_free(a, keep, 64);
	ncaught = 0;
	is_size(beamalloc_gpa_detect_leaks(g), N,
	    "detect_leaks counts exactly the %d live blocks", (int)N);
	is_size(ncaught, N, "one report per leak");
	for (size_t i = 0; i < ncaught && i < MAX_CAUGHT; i++)
		for (size_t j = 0; j < N; j++)
			if (caught[i].r.addr == p[j] &&
			    caught[i].r.kind == BEAMALLOC_REPORT_LEAK) {
				found++;
				if (caught[i].r.size == lens[j] &&
				    caught[i].r.align == 8 &&
				    inside(caught[i].alloc0, (void *)alloc_site))
					sized++;
			}
	is_size(found, N, "each leak reported with its address");
	is_size(sized, N,
	    "each with its size, alignment and allocation call site");
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_blocks, N, "stats: live blocks = leaks");
	{
		size_t sum = 0;

		for (size_t i = 0; i < N; i++)
			sum += lens[i];
		is_size(st.live_bytes, sum, "stats: live bytes = their sizes");
		ok(st.peak_bytes >= sum + 64, "stats: peak bytes (%zu) >= %zu",
		    st.peak_bytes, sum + 64);
		is_size(st.backing_bytes, t->live_bytes,
		    "stats: backing bytes = what the backing has out");
	}

	/* destroy reports again, then returns everything */
	ncaught = 0;
	is_size(beamalloc_gpa_destroy(g), N, "destroy returns the leak count");
	is_size(ncaught, N, "and reports each leak");
	is_size(t->nblocks, 0, "leaked blocks and slabs went back too");
	is_size(t->live_bytes, 0, "0 bytes outstanding in the backing");
	is_size(t->bad_calls, 0, "with exact sizes");
	free(t);
}

static const beamalloc_report *
last(void)
{
	return ncaught ? &caught[ncaught - 1].r : NULL;
}

/* In a child: for every size class from 16 B, a free of the last 8 bytes
 * of each block of two slabs and more (the last slot's too, past where
 * the memo reaches when the size does not divide the slab) is one invalid
 * free; then the blocks free cleanly.  The last slot's looped for ever
 * once. */
static int
interior_frees(void *arg)
{
	bool safety = *(bool *)arg;
	beamalloc_gpa *g = new_gpa(beamalloc_libc(), safety, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];
	enum { MAXB = 2 * 65536 / 16 + 2 };
	static unsigned char *b[MAXB];
	size_t nclass, bad = 0, want = 0;

	alarm(180);		/* valgrind, a busy machine */
	nclass = beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS,
	    NULL);
	for (size_t c = 0; c < nclass; c++) {
		size_t size = cls[c].size, n = 2 * 65536 / size + 2, before;

		if (size < 16)
			continue;	/* 8 bytes in is the next block */
		for (size_t i = 0; i < n; i++)
			if ((b[i] = beamalloc_alloc(a, size)) == NULL)
				return 2;
		before = ncaught;
		for (size_t i = 0; i < n; i++)
			beamalloc_free(a, b[i] + size - 8, size);
		want += n;
		if (safety && ncaught - before != n)
			bad++;
		for (size_t i = 0; i < n; i++)
			beamalloc_free(a, b[i], size);
	}
	if (bad != 0)
		return 3;
	if (beamalloc_gpa_destroy(g) != 0)
		return 4;
	return want > 0 ? 0 : 5;
}

/* Double, invalid and mismatched frees, small and large, each reported
 * and then ignored. */
static void
bad_frees(bool safety)
{
	const char *m = safety ? "safety on" : "safety off";
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = new_gpa(b, safety, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p, *q, *r, *big;
	const beamalloc_report *rp;
	void *foreign = malloc(64);
	char how[32];
	int st = child_run(interior_frees, &safety, 0, NULL, 0);

	if (!ok(child_exited(st, 0), "%s: every class, a free inside each "
	    "block of two slabs (their last ones too): %s, and it returns",
	    m, safety ? "one invalid free each" : "ignored"))
		diag("  child: %s (14: alarm, a loop; 3: reports)",
		    child_how(st, how));

	ncaught = 0;
	p = beamalloc_alloc(a, 24);
	beamalloc_free(a, p, 24);
	free_site(a, p, 24);
	rp = last();
	ok(ncaught == 1 && rp->kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    rp->addr == p && inside(rp->ret_addr, (void *)free_site),
	    "%s: small double free reported with address and call site", m);
	if (safety)
		ok(rp->size == 24 && rp->align == 8,
		    "%s: with the block's size and alignment", m);
	else
		ok(rp->size == 24, "%s: with the block's size class", m);
	q = beamalloc_alloc(a, 24);
	r = beamalloc_alloc(a, 24);
	ok(q != r, "%s: the double free did not hand a slot out twice", m);
	beamalloc_free(a, q, 24);
	beamalloc_free(a, r, 24);

	big = beamalloc_alloc(a, 50000);
	beamalloc_free(a, big, 50000);
	ncaught = 0;
	beamalloc_free(a, big, 50000);
	ok(ncaught == 1 && last()->kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    last()->addr == big && last()->size == 50000,
	    "%s: large double free reported", m);

	ncaught = 0;
	beamalloc_free(a, foreign, 64);
	ok(ncaught == 1 && last()->kind == BEAMALLOC_REPORT_INVALID_FREE &&
	    last()->addr == foreign && last()->given_size == 64,
	    "%s: free of a foreign pointer reported", m);
	p = beamalloc_alloc(a, 64);
	ncaught = 0;
	beamalloc_free(a, p + 8, 56);
	ok(ncaught == 1 && last()->kind == BEAMALLOC_REPORT_INVALID_FREE &&
	    last()->addr == p + 8, "%s: free inside a block reported", m);
	is_size(beamalloc_gpa_detect_leaks(g), 1,
	    "%s: ... and ignored: the block is still live", m);
	beamalloc_free(a, p, 64);

	if (safety) {
		p = beamalloc_alloc(a, 40);
		ncaught = 0;
		beamalloc_free(a, p, 48);
		rp = last();
		ok(ncaught == 1 && rp->kind == BEAMALLOC_REPORT_SIZE_MISMATCH &&
		    rp->addr == p && rp->size == 40 && rp->given_size == 48,
		    "size mismatch reported with both sizes");
		p = beamalloc_alloc_aligned(a, 40, 16);
		ncaught = 0;
		beamalloc_free_aligned(a, p, 40, 8);
		rp = last();
		ok(ncaught == 1 && rp->kind == BEAMALLOC_REPORT_ALIGN_MISMATCH &&
		    rp->addr == p && rp->align == 16 && rp->given_align == 8,
		    "alignment mismatch reported with both alignments");
		ncaught = 0;
		ok(!beamalloc_resize(a, p, 41, 16, 44) && ncaught == 1 &&
		    last()->kind == BEAMALLOC_REPORT_SIZE_MISMATCH,
		    "resize with the wrong length reported and refused");
		big = beamalloc_alloc(a, 70000);
		ncaught = 0;
		beamalloc_free(a, big, 70001);
		ok(ncaught == 1 && last()->kind ==
		    BEAMALLOC_REPORT_SIZE_MISMATCH && last()->size == 70000,
		    "large size mismatch reported");
		big = beamalloc_realloc(a, big, 70000, 16, 90000);
		ok(big == NULL && ncaught == 2 && last()->kind ==
		    BEAMALLOC_REPORT_ALIGN_MISMATCH,
		    "large alignment mismatch (realloc) reported, refused");
		is_size(beamalloc_gpa_detect_leaks(g), 3 + 0,
		    "mismatched blocks stay live (3 leaks)");
	}
	ncaught = 0;
	beamalloc_gpa_destroy(g);
	is_size(t->nblocks, 0, "%s: destroy still returns everything", m);
	is_size(t->bad_calls, 0, "%s: heap never corrupted", m);
	free(foreign);
	free(t);
}

/* Traces: depth frames from the call site outwards, of the allocation
 * and of the first free. */
static void
traces(void)
{
	beamalloc_allocator b = beamalloc_libc();
	beamalloc_gpa *g = new_gpa(b, true, 8);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *p, *big;
	const beamalloc_report *rp;

	ncaught = 0;
	p = alloc_site(a, 100);
	free_site(a, p, 100);
	beamalloc_free(a, p, 100);
	rp = last();
	ok(ncaught == 1 && rp->kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    rp->alloc_trace_len >= 2 && rp->free_trace_len >= 2,
	    "double free carries allocation and first-free traces");
	ok(inside(caught[0].alloc0, (void *)alloc_site) &&
	    inside(caught[0].free0, (void *)free_site),
	    "traces start at the real call sites");
	big = alloc_site(a, 1 << 20);
	ncaught = 0;
	is_size(beamalloc_gpa_detect_leaks(g), 1, "large block leaked");
	ok(ncaught == 1 && inside(caught[0].alloc0, (void *)alloc_site) &&
	    caught[0].r.alloc_trace_len >= 2,
	    "large leak reported with its allocation trace");
	free_site(a, big, 1 << 20);
	ncaught = 0;
	beamalloc_free(a, big, 1 << 20);
	ok(ncaught == 1 && caught[0].r.kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    inside(caught[0].free0, (void *)free_site),
	    "large double free with the first free's trace");
	is_size(beamalloc_gpa_destroy(g), 0, "traced GPA: no leak left");
}

static void
limit_and_stats(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	beamalloc_gpa_stats st, st2;
	void *p, *q;
	size_t nb;

	beamalloc_gpa_config_init(&cfg);
	cfg.memory_limit = 100000;
	cfg.report = capture_report;
	g = beamalloc_gpa_create(b, &cfg);
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 60000);
	q = beamalloc_alloc(a, 1000);
	beamalloc_gpa_get_stats(g, &st);
	nb = t->nblocks;
	errno = 0;
	ok(beamalloc_alloc(a, 39001) == NULL && errno == ENOMEM,
	    "past the limit: NULL + ENOMEM (large)");
	errno = 0;
	ok(beamalloc_alloc(a, 39000) != NULL, "up to the limit: served");
	beamalloc_gpa_get_stats(g, &st2);
	errno = 0;
	ok(beamalloc_alloc(a, 8) == NULL && errno == ENOMEM,
	    "past the limit: NULL + ENOMEM (small)");
	ok(!beamalloc_resize(a, q, 1000, 8, 1024),
	    "a resize past the limit fails");
	{
		beamalloc_gpa_stats st3;

		beamalloc_gpa_get_stats(g, &st3);
		ok(st3.live_bytes == 100000 && st3.live_blocks == 3 &&
		    st3.live_bytes == st2.live_bytes,
		    "failed calls changed nothing (live %zu, blocks %zu)",
		    st3.live_bytes, st3.live_blocks);
	}
	ok(st.live_bytes == 61000 && st.live_blocks == 2 &&
	    st.peak_bytes == 61000, "stats: live 61000, 2 blocks, peak");
	ok(t->nblocks == nb + 1, "the failed allocations took nothing");
	beamalloc_free(a, p, 60000);
	ok(beamalloc_alloc(a, 8) != NULL, "after a free: served again");
	beamalloc_gpa_get_stats(g, &st);
	ok(st.live_bytes == 40008 && st.peak_bytes == 100000,
	    "stats after free: live %zu, peak %zu", st.live_bytes,
	    st.peak_bytes);
	ncaught = 0;
	is_size(beamalloc_gpa_destroy(g), 3, "3 blocks leaked at destroy");
	is_size(t->nblocks, 0, "all back");
	free(t);
}

static void
resize_remap(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = new_gpa(b, true, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p, *q;
	beamalloc_gpa_stats st;

	t->move_on_remap = 1;
	ncaught = 0;
	p = beamalloc_alloc(a, 20);
	ta_fill(p, 20, 1);
	ok(beamalloc_resize(a, p, 20, 8, 24), "resize within the class");
	ok(beamalloc_resize(a, p, 24, 8, 17), "shrink within the class");
	ok(!beamalloc_resize(a, p, 17, 8, 25), "no resize past the class");
	ok(!beamalloc_resize(a, p, 17, 8, 16),
	    "no resize into a smaller class");
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_bytes, 17, "stats follow the resize");
	q = beamalloc_realloc(a, p, 17, 8, 5000);
	ok(q != NULL && ta_intact(q, 17, 1), "realloc moves across classes");
	ta_fill(q, 5000, 2);
	p = beamalloc_realloc(a, q, 5000, 8, 300000);
	ok(p != NULL && ta_intact(p, 5000, 2), "realloc into a large block");
	ta_fill(p, 300000, 3);
	q = beamalloc_remap(a, p, 300000, 8, 400000);
	ok(q != NULL && q != p && ta_intact(q, 300000, 3),
	    "large remap moves with the backing");
	ncaught = 0;
	beamalloc_free(a, p, 300000);
	ok(ncaught == 1 && last()->kind == BEAMALLOC_REPORT_DOUBLE_FREE,
	    "the remapped-away address reads as freed");
	ok(beamalloc_resize(a, q, 400000, 8, 100),
	    "a large block shrinks in place (backing resize)");
	beamalloc_gpa_get_stats(g, &st);
	is_size(st.live_bytes, 100, "stats follow");
	ncaught = 0;
	beamalloc_free(a, q, 100);
	is_size(ncaught, 0, "freed with its new length, no report");
	is_size(beamalloc_gpa_destroy(g), 0, "no leaks");
	is_size(t->nblocks, 0, "all back");
	is_size(t->bad_calls, 0, "exact sizes to the backing");
	free(t);
}

/* A caller built against an older, smaller config: the fields it does
 * not have keep their defaults. */
static void
old_config(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	size_t count = 0;
	void *p;
	int saved = dup(2), devnull = open("/dev/null", 1);

	beamalloc_gpa_config_init(&cfg);
	cfg.struct_size = offsetof(beamalloc_gpa_config, abort_on_error);
	cfg.safety = false;
	cfg.abort_on_error = true;	/* beyond struct_size: ignored */
	cfg.report = capture_report;
	cfg.report_user = &count;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 16);
	beamalloc_free(a, p, 16);
	fflush(stderr);
	dup2(devnull, 2);		/* the default report goes to stderr */
	beamalloc_free(a, p, 16);
	ok(count == 0, "old struct_size: callback beyond it not used, no "
	    "abort either");
	p = beamalloc_alloc(a, 16);
	ok(beamalloc_gpa_detect_leaks(g) == 1, "old struct_size: works");
	fflush(stderr);
	dup2(saved, 2);
	close(devnull);
	close(saved);
	beamalloc_free(a, p, 16);
	beamalloc_gpa_destroy(g);
}

static int
double_free(void *unused)
{
	beamalloc_gpa_config cfg;
	beamalloc_allocator a;
	void *p;

	(void)unused;
	beamalloc_gpa_config_init(&cfg);
	cfg.abort_on_error = true;
	cfg.report = capture_report;
	a = beamalloc_gpa_allocator(beamalloc_gpa_create(beamalloc_libc(),
	    &cfg));
	p = beamalloc_alloc(a, 8);
	beamalloc_free(a, p, 8);
	beamalloc_free(a, p, 8);
	return 0;
}

/* An overflow found by a leak check: not a bad call, aborted on too
 * (beamalloc_gpa(3): every report but a leak); a leak alone is not. */
static int
overflow_at_check(void *leak_only)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	char *p;

	beamalloc_gpa_config_init(&cfg);
	cfg.abort_on_error = true;
	cfg.canary = true;
	cfg.report = capture_report;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	if (g == NULL)
		return 2;
	p = beamalloc_alloc(beamalloc_gpa_allocator(g), 100);
	if (p == NULL)
		return 2;
	if (leak_only == NULL)	/* unseen by ASan and memcheck */
		plant((unsigned char *)p + 100, 1, 'x');
	return beamalloc_gpa_detect_leaks(g) == 1 ? 0 : 3;
}

static void
aborts(void)
{
	char how[32];
	int st = child_run(double_free, NULL, 0, NULL, 0);

	ok(child_killed(st, SIGABRT), "abort_on_error: a double free aborts "
	    "(%s)", child_how(st, how));
	st = child_run(overflow_at_check, NULL, 0, NULL, 0);
	ok(child_killed(st, SIGABRT), "abort_on_error: an overflow found by "
	    "a leak check aborts (%s)", child_how(st, how));
	st = child_run(overflow_at_check, "", 0, NULL, 0);
	ok(child_exited(st, 0), "abort_on_error: a leak alone does not "
	    "(%s)", child_how(st, how));
}

static void
report_text(void)
{
	FILE *f = tmpfile();
	char buf[2048] = "";
	uintptr_t tr[1] = { (uintptr_t)alloc_site + 8 };
	beamalloc_report r = {
		.kind = BEAMALLOC_REPORT_LEAK, .addr = (void *)0x1000,
		.size = 8, .align = 8, .alloc_trace = tr, .alloc_trace_len = 1,
	};
	size_t n;

	beamalloc_report_print(f, &r);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ok(strstr(buf, "beamalloc: leak: 8 bytes at 0x1000 (align 8)") !=
	    NULL && strstr(buf, "allocated at:") != NULL &&
	    strstr(buf, "#0 0x") != NULL, "default report text");
	diag("%s", buf);
	ok(strcmp(beamalloc_report_kind_name(BEAMALLOC_REPORT_LEAK),
	    "leak") == 0 && strcmp(beamalloc_report_kind_name(
	    BEAMALLOC_REPORT_DOUBLE_FREE), "double free") == 0 &&
	    strcmp(beamalloc_report_kind_name(BEAMALLOC_REPORT_INVALID_FREE),
	    "invalid free") == 0 && strcmp(beamalloc_report_kind_name(
	    BEAMALLOC_REPORT_SIZE_MISMATCH), "size mismatch") == 0 &&
	    strcmp(beamalloc_report_kind_name(
	    BEAMALLOC_REPORT_ALIGN_MISMATCH), "alignment mismatch") == 0,
	    "kind names");
}

/* The seed's leaks()/noleak() pair, on the global instance. */
static bool
seed_leaks(void)
{
	beamalloc_allocator a = beamalloc_general_purpose();
	void *memory = beamalloc_alloc(a, 8);
	size_t n;

	/* the free comes after the check, as Zig's defer */
	n = beamalloc_gpa_detect_leaks(beamalloc_gpa_global());
	beamalloc_free(a, memory, 8);
	return n != 0;
}

static bool
seed_noleak(void)
{
	beamalloc_allocator a = beamalloc_general_purpose();
	void *memory = beamalloc_alloc(a, 8);

	beamalloc_free(a, memory, 8);
	return beamalloc_gpa_detect_leaks(beamalloc_gpa_global()) != 0;
}

static void
global(void)
{
	beamalloc_gpa *g = beamalloc_gpa_global();
	beamalloc_allocator a = beamalloc_general_purpose();
	int saved = dup(2), devnull = open("/dev/null", 1);
	bool leaked;

	ok(g != NULL && g == beamalloc_gpa_global() && a.ctx == g,
	    "one global instance");
	ok(beamalloc_native_align(a) >= (size_t)1 << 20,
	    "global GPA is over wide: any alignment");
	{
		void *p = beamalloc_alloc_aligned(a, 100000, 65536);

		ok(p != NULL && is_aligned(p, 65536),
		    "large over-aligned block from the global GPA");
		beamalloc_free_aligned(a, p, 100000, 65536);
	}
	fflush(stderr);
	dup2(devnull, 2);		/* the expected leak message */
	leaked = seed_leaks();
	fflush(stderr);
	dup2(saved, 2);
	close(devnull);
	close(saved);
	ok(leaked, "seed: leaks() is true");
	ok(!seed_noleak(), "seed: noleak() is false");
	is_size(beamalloc_gpa_destroy(g), 0,
	    "destroying the global only checks");
	ok(beamalloc_alloc(a, 8) != NULL, "the global lives on");
}

static void
native_align(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_allocator w = beamalloc_wide_on(&b);
	beamalloc_gpa *g1 = new_gpa(b, true, 0), *g2 = new_gpa(w, true, 0);

	is_size(beamalloc_native_align(beamalloc_gpa_allocator(g1)), 8,
	    "native alignment: the backing's (8)");
	ok(beamalloc_native_align(beamalloc_gpa_allocator(g2)) >=
	    (size_t)1 << 20, "native alignment over wide: any");
	errno = 0;
	ok(beamalloc_alloc_aligned(beamalloc_gpa_allocator(g1), 20000, 16) ==
	    NULL, "large over-aligned block fails on an 8-only backing");
	beamalloc_gpa_destroy(g1);
	beamalloc_gpa_destroy(g2);
	is_size(t->nblocks, 0, "all back");
	free(t);
}

/* Many random blocks in a strict backing: every byte intact, leaks
 * counted exactly at every stage. */
static void
churn(bool safety)
{
	enum { LIVE = 3000, ROUNDS = 30000 };
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = new_gpa(b, safety, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	static unsigned char *p[LIVE];
	static size_t len[LIVE];
	size_t bad = 0, live = 0;
	uint32_t x = 12345;

	ncaught = 0;
	for (int i = 0; i < ROUNDS; i++) {
		size_t k;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		k = x % LIVE;
		if (p[k] != NULL) {
			if (!ta_intact(p[k], len[k], (unsigned)k))
				bad++;
			beamalloc_free(a, p[k], len[k]);
			p[k] = NULL;
			live--;
		} else {
			len[k] = 1 + (x >> 12) % (x & 0x800 ? 4096 : 300);
			if ((x >> 24) == 7)
				len[k] = 20000 + (x >> 12) % 20000;
			p[k] = beamalloc_alloc(a, len[k]);
			if (p[k] == NULL) {
				bad++;
				continue;
			}
			ta_fill(p[k], len[k], (unsigned)k);
			live++;
		}
	}
	is_size(bad, 0, "churn (%s): every block intact",
	    safety ? "safety" : "fast");
	is_size(beamalloc_gpa_detect_leaks(g), live,
	    "churn: leak count = live blocks (%zu)", live);
	is_size(ncaught, live, "churn: no other report");
	for (int k = 0; k < LIVE; k++)
		if (p[k] != NULL) {
			beamalloc_free(a, p[k], len[k]);
			p[k] = NULL;
		}
	is_size(beamalloc_gpa_destroy(g), 0, "churn: none after freeing");
	is_size(t->nblocks, 0, "churn: all back");
	is_size(t->bad_calls, 0, "churn: exact sizes");
	free(t);
}

static void
single_threaded(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	void *p[100];
	beamalloc_gpa_stats st;

	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = false;
	cfg.safety = false;
	cfg.report = capture_report;
	g = beamalloc_gpa_create(b, &cfg);
	a = beamalloc_gpa_allocator(g);
	for (int i = 0; i < 100; i++)
		p[i] = beamalloc_alloc(a, (size_t)i * 10 + 1);
	for (int i = 0; i < 50; i++)
		beamalloc_free(a, p[i], (size_t)i * 10 + 1);
	beamalloc_gpa_get_stats(g, &st);
	ok(st.live_blocks == 50 && st.live_bytes == 50 * 500 + 50 * 10 * 49 /
	    2 + 50 && st.peak_bytes == 100 * 10 * 99 / 2 + 100,
	    "unlocked GPA: exact stats (live %zu, peak %zu)", st.live_bytes,
	    st.peak_bytes);
	ncaught = 0;
	is_size(beamalloc_gpa_destroy(g), 50, "unlocked GPA: 50 leaks");
	ok(ncaught == 50 && caught[0].r.size != 0,
	    "safety off: leaks reported with their size class");
	is_size(t->nblocks, 0, "all back");
	free(t);
}

/* ------------------------------------------------------------------------
 * Exact counts when memory is short (found by a review): a request the
 * limit refuses must not make another thread's fail; a failed
 * allocation is no peak; a guarded block's bytes and the thread's
 * unsettled credit make one peak.
 * ---------------------------------------------------------------------- */

static atomic_int hog_stop;
static atomic_size_t hog_served;

static void *
hog(void *arg)
{
	beamalloc_allocator *a = arg;

	while (!atomic_load(&hog_stop)) {
		void *p = beamalloc_alloc(*a, (size_t)2 << 20);

		if (p != NULL) {
			atomic_fetch_add(&hog_served, 1);
			beamalloc_free(*a, p, (size_t)2 << 20);
		}
	}
	return NULL;
}

static void
short_memory(void)
{
	beamalloc_failing f;
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	pthread_t t;
	unsigned char *p[16], *q, *r;
	size_t failed = 0;
	bool served;

	/* The backing runs out: a large allocation and a realloc fail. */
	beamalloc_failing_init(&f, beamalloc_libc(), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	beamalloc_gpa_config_init(&cfg);
	g = beamalloc_gpa_create(beamalloc_failing_allocator(&f), &cfg);
	a = beamalloc_gpa_allocator(g);
	p[0] = beamalloc_alloc(a, 100);
	q = beamalloc_alloc(a, 40000);
	f.fail_index = f.allocations;
	f.resize_fail_index = f.resizes;
	errno = 0;
	r = beamalloc_alloc(a, (size_t)1 << 20);
	ok(r == NULL && errno == ENOMEM, "backing out of memory: 1 MiB, "
	    "NULL + ENOMEM");
	errno = 0;
	r = beamalloc_realloc(a, q, 40000, 8, (size_t)1 << 20);
	ok(r == NULL && errno == ENOMEM, "a realloc to 1 MiB too");
	beamalloc_gpa_get_stats(g, &st);
	ok(st.live_bytes == 40100 && st.peak_bytes == 40100,
	    "neither is a peak (live %zu, peak %zu)", st.live_bytes,
	    st.peak_bytes);
	beamalloc_free(a, p[0], 100);
	beamalloc_free(a, q, 40000);
	is_size(beamalloc_gpa_destroy(g), 0, "no leak");

	/* Guarded sampling: one block in 4 a large one, against a page. */
	beamalloc_gpa_config_init(&cfg);
	cfg.guard_sample = 4;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	a = beamalloc_gpa_allocator(g);
	for (int i = 0; i < 16; i++)
		p[i] = beamalloc_alloc(a, 1000);
	beamalloc_gpa_get_stats(g, &st);
	ok(st.live_bytes == 16000 && st.peak_bytes == 16000,
	    "guarded sampling: 16 blocks of 1000 live, peak 16000 (%zu)",
	    st.peak_bytes);
	for (int i = 0; i < 16; i++)
		beamalloc_free(a, p[i], 1000);
	beamalloc_gpa_get_stats(g, &st);
	ok(st.live_bytes == 0 && st.peak_bytes == 16000,
	    "all freed: the peak stays 16000 (%zu)", st.peak_bytes);
	is_size(beamalloc_gpa_destroy(g), 0, "no leak");

	/* A limit of 1 MiB; one thread asks for 2 MiB over and over, the
	 * other's 64 B blocks are all served. */
	beamalloc_gpa_config_init(&cfg);
	cfg.memory_limit = (size_t)1 << 20;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	a = beamalloc_gpa_allocator(g);
	atomic_store(&hog_stop, 0);
	if (pthread_create(&t, NULL, hog, &a) != 0)
		bail("pthread_create");
	for (int i = 0; i < 100000; i++) {
		void *s = beamalloc_alloc(a, 64);

		if (s == NULL)
			failed++;
		else
			beamalloc_free(a, s, 64);
	}
	atomic_store(&hog_stop, 1);
	pthread_join(t, NULL);
	served = atomic_load(&hog_served) == 0;
	ok(failed == 0 && served, "memory limit: 100,000 64 B blocks served "
	    "beside a thread refused 2 MiB (%zu failed)", failed);
	beamalloc_gpa_get_stats(g, &st);
	ok(st.peak_bytes <= ((size_t)1 << 20),
	    "and the peak never passed the limit (%zu)", st.peak_bytes);
	is_size(beamalloc_gpa_destroy(g), 0, "no leak");
}

int
main(void)
{
	defaults();
	classes_and_alignments();
	leaks_exact();
	bad_frees(true);
	bad_frees(false);
	traces();
	limit_and_stats();
	resize_remap();
	old_config();
	aborts();
	report_text();
	global();
	native_align();
	churn(true);
	churn(false);
	single_threaded();
	short_memory();
	return done_testing();
}
