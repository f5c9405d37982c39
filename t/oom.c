/*
 * oom.c - every allocator over a backing that runs out of memory: the
 * GPA (its regions, slab records, magazines, thread caches, large
 * blocks, leak checks; with its checks on, over threads, over the wide
 * allocator), the wide allocator, the arena, the pool and the stack
 * fallback.
 *
 * Each scenario runs once to count the calls it makes to its backing,
 * then again for each of those calls (a spread of them when there are
 * many), each run in a child process of its own: once with that call and
 * every later one failing (the memory is gone), once with that call
 * alone failing (a passing shortage).  In every run: no crash; each
 * allocation that cannot be served is NULL with errno ENOMEM (a failed
 * realloc leaves the block as it was); live blocks keep their bytes;
 * nothing is reported but the leaks a leak check is asked for; and at
 * the end (destroy, or every block freed) the backing has every byte
 * back.  It began with a review's find: the GPA's refill after a full
 * trim wrote through the NULL of a magazine it could not get
 * (ba_gpa_refill()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "beamalloc.h"
#include "child.h"
#include "tap.h"
#include "under.h"

/* ------------------------------------------------------------------------
 * The backing: malloc behind a header that names each block's length,
 * so that a free or remap of another length is caught.  Every call that
 * takes memory has an index; those in [fail_from, fail_to) fail.
 * ---------------------------------------------------------------------- */

#define HDR 16
#define MAGIC 0x6b6361622d6d6f6full

static atomic_size_t calls, outstanding, nbad;
static size_t fail_from = SIZE_MAX, fail_to = SIZE_MAX;

static bool
fails(void)
{
	size_t i = atomic_fetch_add(&calls, 1);

	return i >= fail_from && i < fail_to;
}

static unsigned char *
raw_of(void *mem, size_t len)
{
	unsigned char *raw = (unsigned char *)mem - HDR;
	uint64_t h[2];

	memcpy(h, raw, sizeof(h));
	if (h[0] != MAGIC || h[1] != len)
		atomic_fetch_add(&nbad, 1);
	return raw;
}

static void *
o_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	uint64_t h[2] = { MAGIC, len };
	unsigned char *raw;

	(void)ctx, (void)ra;
	if (align > HDR || len > PTRDIFF_MAX - HDR || fails() ||
	    (raw = malloc(len + HDR)) == NULL)
		return NULL;
	memcpy(raw, h, sizeof(h));
	atomic_fetch_add(&outstanding, len);
	return raw + HDR;
}

static bool
o_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static void *
o_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	uint64_t h[2] = { MAGIC, new_len };
	unsigned char *raw = raw_of(mem, len), *n;

	(void)ctx, (void)align, (void)ra;
	if (new_len > PTRDIFF_MAX - HDR || fails() ||
	    (n = realloc(raw, new_len + HDR)) == NULL)
		return NULL;
	memcpy(n, h, sizeof(h));
	atomic_fetch_add(&outstanding, new_len);
	atomic_fetch_sub(&outstanding, len);
	return n + HDR;
}

static void
o_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	free(raw_of(mem, len));
	atomic_fetch_sub(&outstanding, len);
}

static const beamalloc_vtable o_vtable = { o_alloc, o_resize, o_remap,
	o_free };
static const beamalloc_allocator o_back = { NULL, &o_vtable };

/* ------------------------------------------------------------------------
 * A run: what it found wrong, the GPA's reports, blocks that carry
 * their bytes
 * ---------------------------------------------------------------------- */

static atomic_size_t nwrong, nreports, nleaks;
static char first_wrong[160];

static void
wrong(const char *what, size_t a, size_t b)
{
	if (atomic_fetch_add(&nwrong, 1) == 0)
		snprintf(first_wrong, sizeof(first_wrong), "%s (%zu, %zu)",
		    what, a, b);
}

static void
on_report(void *user, const beamalloc_report *r)
{
	(void)user;
	atomic_fetch_add(&nreports, 1);
	if (r->kind == BEAMALLOC_REPORT_LEAK)
		atomic_fetch_add(&nleaks, 1);
	else
		wrong(beamalloc_report_kind_name(r->kind), r->size, 0);
}

struct blk {
	unsigned char *p;
	size_t len, align;	/* align 0: BEAMALLOC_MIN_ALIGN */
	unsigned char tag;
};

static size_t
align_of(const struct blk *b)
{
	return b->align != 0 ? b->align : BEAMALLOC_MIN_ALIGN;
}

static void
fill(struct blk *b)
{
	memset(b->p, b->tag, b->len);
}

/* Every byte of p[0, n) is t; else the first that is not, or n. */
static size_t
first_not(const unsigned char *p, size_t n, unsigned char t)
{
	uint64_t w = 0x0101010101010101ull * t, x;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		if (x != w)
			break;
	}
	for (; i < n; i++)
		if (p[i] != t)
			return i;
	return n;
}

static void
check(const struct blk *b)
{
	size_t i = first_not(b->p, b->len, b->tag);

	if (i != b->len)
		wrong("a live block's bytes changed", b->len, i);
}

/* A block with its bytes, or none and ENOMEM. */
static void
b_alloc(beamalloc_allocator a, struct blk *b, size_t len)
{
	errno = 0;
	b->p = beamalloc_alloc_aligned(a, len, align_of(b));
	b->len = b->p != NULL ? len : 0;
	b->tag++;
	if (b->p != NULL) {
		if (((uintptr_t)b->p & (align_of(b) - 1)) != 0)
			wrong("alloc: misaligned", len, align_of(b));
		fill(b);
	} else if (errno != ENOMEM)
		wrong("alloc: NULL without ENOMEM", len, (size_t)errno);
}

static void
b_free(beamalloc_allocator a, struct blk *b)
{
	if (b->p == NULL)
		return;
	check(b);
	beamalloc_free_aligned(a, b->p, b->len, align_of(b));
	b->p = NULL;
	b->len = 0;
}

/* Moved or resized with its bytes, or ENOMEM and the block as it was. */
static void
b_realloc(beamalloc_allocator a, struct blk *b, size_t len)
{
	unsigned char *q;
	size_t keep = len < b->len ? len : b->len;

	if (b->p == NULL) {
		b_alloc(a, b, len);
		return;
	}
	check(b);
	errno = 0;
	q = beamalloc_realloc(a, b->p, b->len, align_of(b), len);
	if (q == NULL) {
		if (errno != ENOMEM)
			wrong("realloc: NULL without ENOMEM", len,
			    (size_t)errno);
		check(b);
		return;
	}
	if (first_not(q, keep, b->tag) != keep)
		wrong("realloc lost bytes", len, first_not(q, keep, b->tag));
	if (((uintptr_t)q & (align_of(b) - 1)) != 0)
		wrong("realloc: misaligned", len, align_of(b));
	b->p = q;
	b->len = len;
	b->tag++;
	fill(b);
}

static uint64_t rng;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* An octave of [lo, hi] at random, then a size in it. */
static size_t
rnd_size(size_t lo, size_t hi)
{
	unsigned octaves = 0;
	size_t base, len;

	while ((lo << (octaves + 1)) <= hi)
		octaves++;
	base = lo << (rnd() % (octaves + 1));
	len = base + (size_t)(rnd() % base);
	return len < hi ? len : hi;
}

struct opts {
	bool safety, ts, checks;
	unsigned decay_ms;
	const beamalloc_allocator *backing;	/* NULL: o_back */
};

/* NULL (and ENOMEM, else it is wrong) when the backing has no memory. */
static beamalloc_gpa *
gpa_new(const struct opts *o)
{
	beamalloc_allocator back = o->backing != NULL ? *o->backing : o_back;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = o->safety;
	cfg.thread_safe = o->ts;
	cfg.stack_trace_depth = o->checks ? 8 : 0;
	cfg.report = on_report;
	cfg.decay_ms = o->decay_ms;
	if (o->checks) {
		cfg.canary = cfg.junk = true;
		cfg.quarantine = 64 * 1024;
		cfg.guard_sample = 7;
	}
	errno = 0;
	if ((g = beamalloc_gpa_create(back, &cfg)) == NULL && errno != ENOMEM)
		wrong("create: NULL without ENOMEM", 0, (size_t)errno);
	return g;
}

static void
destroy(beamalloc_gpa *g)
{
	size_t leaks = beamalloc_gpa_destroy(g);

	if (leaks != 0)
		wrong("leaks at destroy", leaks, 0);
}

/* ------------------------------------------------------------------------
 * The scenarios: each makes its GPA, uses it, frees every block and
 * destroys it; the blocks it could not have are skipped.
 * ---------------------------------------------------------------------- */

#define NB 600
static struct blk blks[NB];

/* Random small blocks; half freed and a full trim (the next refills
 * take a few slots of the full magazines it leaves); some moved by
 * realloc, a few into large blocks; the half made again; a trim. */
static void
mixed(const struct opts *o)
{
	beamalloc_gpa *g = gpa_new(o);
	beamalloc_allocator a;

	if (g == NULL)
		return;
	a = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < NB; i++)
		b_alloc(a, &blks[i], rnd_size(8, 4096));
	for (size_t i = 0; i < NB; i++)
		if (rnd() % 2 == 0)
			b_free(a, &blks[i]);
	(void)beamalloc_gpa_trim(g);
	for (size_t i = 0; i < NB; i += 3)
		b_realloc(a, &blks[i], rnd() % 8 == 0 ?
		    rnd_size(20000, 200000) : rnd_size(8, 4096));
	for (size_t i = 0; i < NB; i++)
		if (blks[i].p == NULL)
			b_alloc(a, &blks[i], rnd_size(8, 4096));
	(void)beamalloc_gpa_trim(g);
	for (size_t i = 0; i < NB; i++)
		b_free(a, &blks[i]);
	destroy(g);
}

static void
s_safe(void)
{
	mixed(&(struct opts){ .safety = true, .ts = true });
}

static void
s_fast(void)
{
	mixed(&(struct opts){ .ts = true });
}

static void
s_fast_st(void)
{
	mixed(&(struct opts){ .safety = false });
}

/* Canary, junk, a quarantine, guarded sampling and traces. */
static void
s_checks(void)
{
	mixed(&(struct opts){ .safety = true, .ts = true, .checks = true });
}

/* Large blocks: buffers grown by doubling to 1 MiB, blocks of 16 KiB to
 * 256 KiB made and freed among them. */
static void
s_large(void)
{
	beamalloc_gpa *g = gpa_new(&(struct opts){ .safety = true,
	    .ts = true });
	beamalloc_allocator a;
	struct blk *buf = blks, *big = blks + 8;

	if (g == NULL)
		return;
	a = beamalloc_gpa_allocator(g);
	for (size_t len = 16; len <= ((size_t)1 << 20); len *= 2)
		for (size_t i = 0; i < 8; i++) {
			b_realloc(a, &buf[i], len + i);
			b_free(a, &big[(len + i) % 16]);
			b_alloc(a, &big[(len + i) % 16], rnd_size(16384,
			    1 << 18));
		}
	for (size_t i = 0; i < 24; i++)
		b_free(a, &blks[i]);
	(void)beamalloc_gpa_trim(g);
	destroy(g);
}

/* A leak check with 200 blocks live: each reported once, the count
 * returned, whether or not the check can copy them first. */
static void
s_leakcheck(void)
{
	beamalloc_gpa *g = gpa_new(&(struct opts){ .safety = true,
	    .ts = true });
	beamalloc_allocator a;
	size_t live = 0, got;

	if (g == NULL)
		return;
	a = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < 200; i++) {
		b_alloc(a, &blks[i], rnd_size(8, i % 50 == 0 ? 100000 : 2048));
		live += blks[i].p != NULL;
	}
	nleaks = 0;
	if ((got = beamalloc_gpa_detect_leaks(g)) != live ||
	    nleaks != live)
		wrong("leak check: count, reports", got,
		    atomic_load(&nleaks));
	nleaks = 0;
	for (size_t i = 0; i < 200; i++)
		b_free(a, &blks[i]);
	destroy(g);
}

/* A peak of 60,000 blocks (40 MB) freed in random order: the sweeps at
 * its end; then 1,000 blocks again. */
#define PEAK 60000
static struct blk *peak_blks;

static void
s_peak(void)
{
	beamalloc_gpa *g = gpa_new(&(struct opts){ .ts = true });
	beamalloc_allocator a;

	if (g == NULL)
		return;
	a = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < PEAK; i++)
		b_alloc(a, &peak_blks[i], rnd_size(8, 4096));
	for (size_t i = PEAK; i > 1; i--) {
		size_t j = rnd() % i;
		struct blk t = peak_blks[j];

		peak_blks[j] = peak_blks[i - 1];
		peak_blks[i - 1] = t;
	}
	for (size_t i = 0; i < PEAK; i++)
		b_free(a, &peak_blks[i]);
	for (size_t i = 0; i < 1000; i++)
		b_alloc(a, &peak_blks[i], rnd_size(8, 4096));
	for (size_t i = 0; i < 1000; i++)
		b_free(a, &peak_blks[i]);
	destroy(g);
}

/* Three threads, each making blocks and freeing its neighbour's (their
 * outboxes send them home), a decay every millisecond, the main thread
 * trimming. */
#define NT 3
#define TB 200
static beamalloc_allocator t_a;
static struct blk t_blks[NT][TB];
static pthread_barrier_t t_bar;

static void *
t_main(void *arg)
{
	size_t me = (size_t)(uintptr_t)arg, next = (me + 1) % NT;

	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < TB; i++)
			b_alloc(t_a, &t_blks[me][i], 8 + (i * 37 + me) % 3000);
		pthread_barrier_wait(&t_bar);
		for (size_t i = 0; i < TB; i++)
			b_free(t_a, &t_blks[next][i]);
		pthread_barrier_wait(&t_bar);
	}
	return NULL;
}

static void
s_threads(void)
{
	beamalloc_gpa *g = gpa_new(&(struct opts){ .safety = true,
	    .ts = true, .decay_ms = 1 });
	pthread_t t[NT];

	if (g == NULL)
		return;
	t_a = beamalloc_gpa_allocator(g);
	pthread_barrier_init(&t_bar, NULL, NT);
	for (size_t i = 0; i < NT; i++)
		if (pthread_create(&t[i], NULL, t_main, (void *)(uintptr_t)i))
			bail("pthread_create");
	for (int i = 0; i < 10; i++) {
		(void)beamalloc_gpa_trim(g);
		usleep(100);
	}
	for (size_t i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&t_bar);
	destroy(g);
}

/* The GPA over the wide allocator over the backing, as the global one
 * is made: small blocks at alignments up to 4 KiB, large ones up to
 * 64 KiB. */
static void
s_gpa_wide(void)
{
	static beamalloc_allocator w;
	beamalloc_gpa *g;
	beamalloc_allocator a;

	w = beamalloc_wide_on(&o_back);
	if ((g = gpa_new(&(struct opts){ .safety = true, .ts = true,
	    .backing = &w })) == NULL)
		return;
	a = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < 300; i++) {
		blks[i].align = (size_t)8 << (rnd() % 14);
		b_alloc(a, &blks[i], rnd_size(8, i % 10 == 0 ? 100000 : 3000));
	}
	for (size_t i = 0; i < 300; i += 3)
		b_realloc(a, &blks[i], rnd_size(8, 50000));
	(void)beamalloc_gpa_trim(g);
	for (size_t i = 0; i < 300; i++)
		b_free(a, &blks[i]);
	destroy(g);
}

/* The wide allocator itself: alignments from 8 to 64 KiB, blocks moved
 * by realloc at theirs. */
static void
s_wide(void)
{
	beamalloc_allocator a = beamalloc_wide_on(&o_back);

	for (size_t i = 0; i < 64; i++) {
		blks[i].align = (size_t)8 << (rnd() % 14);
		b_alloc(a, &blks[i], rnd_size(1, 20000));
	}
	for (size_t i = 0; i < 64; i += 2)
		b_realloc(a, &blks[i], rnd_size(1, 40000));
	for (size_t i = 0; i < 64; i++)
		b_free(a, &blks[i]);
}

/* An arena: blocks at alignments up to 256, every tenth grown while it
 * is the last; reset three ways (the blocks are gone), then destroyed. */
static void
s_arena(void)
{
	static const beamalloc_arena_reset_mode mode[] = {
		BEAMALLOC_ARENA_RETAIN_CAPACITY,
		BEAMALLOC_ARENA_RETAIN_WITH_LIMIT, BEAMALLOC_ARENA_FREE_ALL };
	beamalloc_arena *ar;
	beamalloc_allocator a;

	errno = 0;
	if ((ar = beamalloc_arena_create(o_back)) == NULL) {
		if (errno != ENOMEM)
			wrong("arena: NULL without ENOMEM", 0, (size_t)errno);
		return;
	}
	a = beamalloc_arena_allocator(ar);
	for (size_t round = 0; round < 3; round++) {
		for (size_t i = 0; i < 300; i++) {
			blks[i].align = (size_t)8 << (rnd() % 6);
			b_alloc(a, &blks[i], rnd_size(8, i % 100 == 0 ?
			    70000 : 2000));
			if (i % 10 == 9)
				b_realloc(a, &blks[i], rnd_size(8, 8000));
		}
		for (size_t i = 0; i < 300; i++)
			if (blks[i].p != NULL)
				check(&blks[i]);
		memset(blks, 0, 300 * sizeof(blks[0]));
		(void)beamalloc_arena_reset_with(ar, mode[round], 100000);
	}
	beamalloc_arena_destroy(ar);
}

/* A growable pool of 48-byte items: through its allocator and
 * beamalloc_pool_get()/put(). */
static void
s_pool(void)
{
	beamalloc_pool *pl;
	beamalloc_allocator a;
	void *items[100];

	errno = 0;
	if ((pl = beamalloc_pool_create(o_back, 48, 16, 8, true)) == NULL) {
		if (errno != ENOMEM)
			wrong("pool: NULL without ENOMEM", 0, (size_t)errno);
		return;
	}
	a = beamalloc_pool_allocator(pl);
	for (size_t i = 0; i < 400; i++) {
		blks[i].align = 16;
		b_alloc(a, &blks[i], 1 + rnd() % 48);
	}
	for (size_t i = 0; i < 100; i++) {
		errno = 0;
		if ((items[i] = beamalloc_pool_get(pl)) == NULL &&
		    errno != ENOMEM)
			wrong("pool_get: NULL without ENOMEM", i,
			    (size_t)errno);
	}
	for (size_t i = 0; i < 400; i += 2)
		b_free(a, &blks[i]);
	for (size_t i = 0; i < 400; i++)
		if (blks[i].p == NULL)
			b_alloc(a, &blks[i], 1 + rnd() % 48);
	for (size_t i = 0; i < 100; i++)
		if (items[i] != NULL)
			beamalloc_pool_put(pl, items[i]);
	for (size_t i = 0; i < 400; i++)
		b_free(a, &blks[i]);
	beamalloc_pool_destroy(pl);
}

/* A stack fallback: a 2 KiB buffer, the rest from the backing. */
static void
s_stackfb(void)
{
	static unsigned char buf[2048];
	beamalloc_stackfb sf;
	beamalloc_allocator a;

	beamalloc_stackfb_init(&sf, buf, sizeof(buf), o_back);
	a = beamalloc_stackfb_allocator(&sf);
	for (size_t i = 0; i < 200; i++)
		b_alloc(a, &blks[i], rnd_size(8, 3000));
	for (size_t i = 0; i < 200; i += 3)
		b_realloc(a, &blks[i], rnd_size(8, 6000));
	for (size_t i = 0; i < 200; i++)
		b_free(a, &blks[i]);
}

/* Runs per mode at most: natively, and under valgrind (its runs are
 * some hundred times as slow). */
static const struct scenario {
	const char *name;
	void (*fn)(void);
	unsigned max_runs, vg_runs;
} scenarios[] = {
	{ "safety, thread-safe", s_safe, 96, 12 },
	{ "fast, thread-safe", s_fast, 96, 12 },
	{ "fast, one thread", s_fast_st, 96, 12 },
	{ "canary, junk, quarantine, guards, traces", s_checks, 96, 12 },
	{ "large blocks and realloc", s_large, 40, 8 },
	{ "leak check", s_leakcheck, 100, 12 },
	{ "a peak of 60,000 blocks freed in random order", s_peak, 8, 2 },
	{ "three threads, frees sent home, decay", s_threads, 64, 6 },
	{ "the GPA over the wide allocator, alignments to 64 KiB", s_gpa_wide,
	    64, 8 },
	{ "wide allocator, alignments to 64 KiB", s_wide, 64, 8 },
	{ "arena, reset three ways", s_arena, 64, 8 },
	{ "pool of 48-byte items, growable", s_pool, 64, 8 },
	{ "stack fallback", s_stackfb, 64, 8 },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

/* ------------------------------------------------------------------------
 * Runs in children
 * ---------------------------------------------------------------------- */

/* What a child tells its parent, in memory they share. */
struct told {
	size_t calls;			/* backing calls made */
	char wrong[sizeof(first_wrong)];	/* the first thing wrong */
};
static struct told *told;

struct run {
	const struct scenario *s;
	size_t from, to;
};

static int
run_child(void *arg)
{
	const struct run *r = arg;

	fail_from = r->from;
	fail_to = r->to;
	rng = 0x9e3779b97f4a7c15ull;
	r->s->fn();
	told->calls = atomic_load(&calls);
	if (atomic_load(&outstanding) != 0)
		wrong("backing bytes not given back",
		    atomic_load(&outstanding), 0);
	if (atomic_load(&nbad) != 0)
		wrong("backing freed with another length",
		    atomic_load(&nbad), 0);
	memcpy(told->wrong, first_wrong, sizeof(told->wrong));
	return atomic_load(&nwrong) != 0 ? 1 : 0;
}

/* Run s with calls [from, to) failing, in a child: its status; *ncalls
 * the backing calls it made. */
static int
run(const struct scenario *s, size_t from, size_t to, size_t *ncalls,
    char *why, size_t whylen)
{
	struct run r = { s, from, to };
	char how[32];
	int st;

	if (told == NULL)
		told = child_shared(sizeof(*told));
	memset(told, 0, sizeof(*told));
	/* CHILD_EXIT: the library's destructor joins the decay thread
	 * (else valgrind finds its stack lost). */
	st = child_run(run_child, &r, CHILD_EXIT, NULL, 0);
	*ncalls = told->calls;
	if (WIFSIGNALED(st))
		snprintf(why, whylen, "killed by %s", child_how(st, how));
	else
		snprintf(why, whylen, "%s", told->wrong);
	return st;
}

/* Every call of s failing from there on (gone) or alone (passing). */
static void
sweep(const struct scenario *s, size_t total, bool gone)
{
	size_t cap = UNDER_VALGRIND() ? s->vg_runs : s->max_runs, runs = 0,
	    bad = 0, first = 0, ncalls;
	char why[200], first_why[200] = "";

	for (size_t r = 0; r < cap && r < total; r++) {
		/* Past the cap, the first calls (the GPA's own making) one by
		 * one, then a spread over the rest. */
		size_t k = cap >= total || r < cap / 2 ? r : cap / 2 +
		    (total - cap / 2) * (r - cap / 2) / (cap - cap / 2);
		int st = run(s, k, gone ? SIZE_MAX : k + 1, &ncalls, why,
		    sizeof(why));

		runs++;
		if (!child_exited(st, 0)) {
			if (bad++ == 0) {
				first = k;
				snprintf(first_why, sizeof(first_why), "%s",
				    why);
			}
		}
	}
	if (!ok(bad == 0, "%s: backing call %s of %zu failing (%zu runs)",
	    s->name, gone ? "k and every later one" : "k alone", total, runs))
		diag("%zu runs went wrong; the first at call %zu: %s", bad,
		    first, first_why);
}

int
main(void)
{
	plan((int)(3 * NSCEN));
	if ((peak_blks = calloc(PEAK, sizeof(*peak_blks))) == NULL)
		bail("calloc");
	for (size_t i = 0; i < NSCEN; i++) {
		const struct scenario *s = &scenarios[i];
		size_t total = 0;
		char why[200];
		int st = run(s, SIZE_MAX, SIZE_MAX, &total, why, sizeof(why));

		if (!ok(child_exited(st, 0) && total > 0,
		    "%s: with memory, no finding (%zu backing calls)",
		    s->name, total)) {
			diag("%s", why);
			skip(2, "no count of the calls to fail");
			continue;
		}
		sweep(s, total, true);
		sweep(s, total, false);
	}
	free(peak_blks);
	return done_testing();
}
