/*
 * badinput.c - the README's bad-input table, allocator by allocator: each
 * misuse with a defined outcome gives exactly that outcome on every
 * allocator of the library, and leaves every live block as it was.
 * (Bad frees the GPA reports are in t/gpa.c; what memory checkers see is
 * in t/tools.c.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define HUGE_LEN ((size_t)PTRDIFF_MAX + 1)

static beamalloc_allocator libc_alloc;	/* backing of wide and GPAs */

/* ------------------------------------------------------------------------
 * Every allocator, made fresh for each run
 * ---------------------------------------------------------------------- */

struct subject {
	const char *name;
	beamalloc_allocator a;
	beamalloc_gpa *gpa;
	beamalloc_arena *arena;
	beamalloc_fixed fixed;
	beamalloc_failing failing;
	beamalloc_stackfb stackfb;
	beamalloc_locked locked;
	beamalloc_logging logging;
};

static unsigned char fixed_buf[1 << 16];
static unsigned char stackfb_buf[1 << 10];

static void
no_log(void *user, const beamalloc_log_entry *e)
{
	(void)user, (void)e;
}
static size_t nreports;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	nreports++;
}

static beamalloc_gpa *
new_gpa(bool safety, bool thread_safe, size_t limit)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = thread_safe;
	cfg.memory_limit = limit;
	cfg.report = count_report;
	return beamalloc_gpa_create(beamalloc_wide_on(&libc_alloc), &cfg);
}

#define NSUBJECTS 11

static void
subject_open(struct subject *s, int i)
{
	memset(s, 0, sizeof(*s));
	switch (i) {
	case 0:
		s->name = "beam";
		s->a = beamalloc_beam();
		break;
	case 1:
		s->name = "libc";
		s->a = libc_alloc;
		break;
	case 2:
		s->name = "wide";
		s->a = beamalloc_wide();
		break;
	case 3:
		s->name = "gpa";
		s->gpa = new_gpa(true, false, 0);
		s->a = beamalloc_gpa_allocator(s->gpa);
		break;
	case 4:
		s->name = "gpa (no safety, thread-safe)";
		s->gpa = new_gpa(false, true, 0);
		s->a = beamalloc_gpa_allocator(s->gpa);
		break;
	case 5:
		s->name = "arena";
		s->arena = beamalloc_arena_create(libc_alloc);
		s->a = beamalloc_arena_allocator(s->arena);
		break;
	case 6:
		s->name = "fixed";
		beamalloc_fixed_init(&s->fixed, fixed_buf, sizeof(fixed_buf));
		s->a = beamalloc_fixed_allocator(&s->fixed);
		break;
	case 8:
		s->name = "stackfb";
		beamalloc_stackfb_init(&s->stackfb, stackfb_buf,
		    sizeof(stackfb_buf), libc_alloc);
		s->a = beamalloc_stackfb_allocator(&s->stackfb);
		break;
	case 9:
		s->name = "locked";
		if (beamalloc_locked_init(&s->locked, libc_alloc) != 0)
			bail("locked_init");
		s->a = beamalloc_locked_allocator(&s->locked);
		break;
	case 10:
		s->name = "logging";
		beamalloc_logging_init(&s->logging, libc_alloc, "t", no_log,
		    NULL);
		s->a = beamalloc_logging_allocator(&s->logging);
		break;
	default:
		s->name = "failing";
		beamalloc_failing_init(&s->failing, libc_alloc,
		    BEAMALLOC_NEVER, BEAMALLOC_NEVER);
		s->a = beamalloc_failing_allocator(&s->failing);
		break;
	}
	if (s->a.vtable == NULL || s->a.ctx == NULL)
		bail("cannot make allocator %s", s->name);
}

/* Live blocks left behind: the GPA's leak count, the failing
 * allocator's counters; 0 where nothing counts them. */
static size_t
subject_close(struct subject *s)
{
	size_t left = 0;

	if (s->gpa != NULL)
		left = beamalloc_gpa_destroy(s->gpa);
	if (s->arena != NULL)
		beamalloc_arena_destroy(s->arena);
	if (s->a.ctx == &s->failing)
		left = s->failing.allocations - s->failing.deallocations;
	if (s->a.ctx == &s->locked)
		beamalloc_locked_destroy(&s->locked);
	return left;
}

/* ------------------------------------------------------------------------
 * The misuses
 * ---------------------------------------------------------------------- */

static void
fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + 3);
}

static int
intact(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + 3))
			return 0;
	return 1;
}

/* NULL (or false) with this errno, and nothing else. */
#define FAILS(expr, err) (errno = 0, (expr) == 0 && errno == (err))

static void
misuse(int i)
{
	static const size_t bad_aligns[] = { 0, 3, 24, 48, 1000,
	    ((size_t)1 << 40) + 1 };
	struct subject s;
	unsigned char *p, *zp;
	size_t n, bad = 0;
	int ok_all;

	subject_open(&s, i);
	p = beamalloc_alloc(s.a, 100);
	if (p == NULL)
		bail("%s: alloc(100) failed", s.name);
	fill(p, 100);

	/* Alignment not a power of two. */
	for (n = 0; n < sizeof(bad_aligns) / sizeof(bad_aligns[0]); n++) {
		size_t al = bad_aligns[n];

		bad += !FAILS(beamalloc_alloc_aligned(s.a, 16, al), EINVAL);
		bad += !FAILS(beamalloc_alloc_array(s.a, 2, 8, al), EINVAL);
		bad += !FAILS(beamalloc_realloc(s.a, p, 100, al, 200), EINVAL);
		bad += !FAILS(beamalloc_remap(s.a, p, 100, al, 200), EINVAL);
		bad += !FAILS(beamalloc_resize(s.a, p, 100, al, 50), EINVAL);
		beamalloc_free_aligned(s.a, p, 100, al);	/* ignored */
	}
	is_size(bad, 0, "%s: alignment 0, 3, 24, 48, 1000, 2^40+1: NULL/false "
	    "+ EINVAL from alloc, alloc_array, realloc, remap, resize", s.name);
	ok(intact(p, 100), "%s: ... free with such an alignment is ignored, "
	    "the block is intact", s.name);

	/* Lengths past PTRDIFF_MAX, and n * size overflow. */
	ok_all = FAILS(beamalloc_alloc(s.a, HUGE_LEN), ENOMEM) &&
	    FAILS(beamalloc_alloc(s.a, SIZE_MAX), ENOMEM) &&
	    FAILS(beamalloc_alloc_aligned(s.a, HUGE_LEN, 4096), ENOMEM) &&
	    FAILS(beamalloc_dup(s.a, p, SIZE_MAX), ENOMEM) &&
	    FAILS(beamalloc_realloc(s.a, p, 100, 8, HUGE_LEN), ENOMEM) &&
	    FAILS(beamalloc_remap(s.a, p, 100, 8, SIZE_MAX), ENOMEM) &&
	    FAILS(beamalloc_resize(s.a, p, 100, 8, HUGE_LEN), ENOMEM);
	ok(ok_all && intact(p, 100), "%s: length > PTRDIFF_MAX: NULL/false + "
	    "ENOMEM everywhere, the block intact", s.name);
	ok(FAILS(beamalloc_alloc_array(s.a, SIZE_MAX / 2 + 1, 2, 8), ENOMEM) &&
	    FAILS(beamalloc_alloc_array(s.a, (size_t)1 << 33,
	    (size_t)1 << 31, 1), ENOMEM) &&
	    FAILS(beamalloc_alloc_array(s.a, 3, SIZE_MAX / 2, 8), ENOMEM),
	    "%s: alloc_array with n * size overflowing: NULL + ENOMEM", s.name);

	/* A valid length no allocator can serve. */
	ok(FAILS(beamalloc_alloc(s.a, (size_t)PTRDIFF_MAX - 64), ENOMEM) &&
	    FAILS(beamalloc_alloc(s.a, (size_t)1 << 62), ENOMEM) &&
	    FAILS(beamalloc_realloc(s.a, p, 100, 8, (size_t)1 << 62),
	    ENOMEM) && intact(p, 100),
	    "%s: 2^63 - 64 or 2^62 bytes: NULL + ENOMEM, the block intact",
	    s.name);

	/* Zero lengths and NULL. */
	zp = beamalloc_alloc_aligned(s.a, 0, 64);
	ok(zp != NULL && ((uintptr_t)zp & 63) == 0,
	    "%s: length 0: a non-NULL aligned pointer", s.name);
	beamalloc_free_aligned(s.a, zp, 0, 64);
	beamalloc_free(s.a, NULL, 100);
	beamalloc_free(s.a, p, 0);
	ok(intact(p, 100), "%s: free of NULL or of length 0: no-op", s.name);

	beamalloc_free(s.a, p, 100);
	is_size(subject_close(&s), 0, "%s: nothing leaked through all that",
	    s.name);
}

/* A block freed twice where the allocator defines it: arena and fixed
 * buffer ignore a free of anything but the last block. */
static void
bump_double_free(int i)
{
	struct subject s;
	unsigned char *p, *q, *r;

	subject_open(&s, i);
	p = beamalloc_alloc(s.a, 64);
	q = beamalloc_alloc(s.a, 64);
	fill(q, 64);
	beamalloc_free(s.a, p, 64);
	beamalloc_free(s.a, p, 64);
	r = beamalloc_alloc(s.a, 64);
	ok(r != NULL && r != p && r != q && intact(q, 64),
	    "%s: freeing a non-last block twice is a no-op (its bytes wait "
	    "for reset)", s.name);
	subject_close(&s);
}

/* Issue 13: a stale block that ends where the live ones end.  A(64) is
 * freed, B(32) and C(32) take its place, A is freed again: that free,
 * and a resize of A, must not rewind over B and C. */
static void
bump_stale_last(int i)
{
	struct subject s;
	unsigned char *a, *b, *c, *d;
	bool grew;

	subject_open(&s, i);
	a = beamalloc_alloc(s.a, 64);
	beamalloc_free(s.a, a, 64);
	b = beamalloc_alloc(s.a, 32);
	c = beamalloc_alloc(s.a, 32);
	if (b != a || c != a + 32)
		bail("%s: blocks not bumped in place", s.name);
	fill(b, 32);
	fill(c, 32);
	beamalloc_free(s.a, a, 64);	/* double free of A */
	d = beamalloc_alloc(s.a, 64);
	ok(d != NULL && d >= c + 32 && intact(b, 32) && intact(c, 32),
	    "%s: a double free of A after B and C took its place is a "
	    "no-op: the next block goes after C", s.name);
	grew = beamalloc_resize(s.a, a, 64, 8, 128);
	ok(!grew && beamalloc_remap(s.a, a, 64, 8, 96) == NULL &&
	    intact(b, 32) && intact(c, 32),
	    "%s: the stale A cannot grow over them either", s.name);
	beamalloc_free(s.a, d, 64);
	beamalloc_free(s.a, d, 64);	/* gives its bytes back once */
	beamalloc_free(s.a, c, 32);	/* the block before: not last now */
	ok(beamalloc_alloc(s.a, 64) == d && intact(c, 32),
	    "%s: the last block's bytes come back once; the block before "
	    "does not become last", s.name);
	subject_close(&s);
}

/* The GPA rejects what it never gave out, even another GPA's block, and
 * catches the wide allocator freed with the wrong alignment. */
static void
gpa_foreign(void)
{
	beamalloc_gpa *g1 = new_gpa(true, false, 0), *g2 = new_gpa(true,
	    false, 0);
	beamalloc_allocator a1 = beamalloc_gpa_allocator(g1);
	beamalloc_allocator a2 = beamalloc_gpa_allocator(g2);
	beamalloc_allocator w;
	unsigned char *p = beamalloc_alloc(a1, 48), *big;
	int local;

	fill(p, 48);
	nreports = 0;
	beamalloc_free(a2, p, 48);
	beamalloc_free(a2, &local, sizeof(local));
	ok(nreports == 2 && intact(p, 48),
	    "gpa: another GPA's block and a stack address are invalid frees, "
	    "reported and ignored");
	big = beamalloc_alloc(a1, 200000);
	nreports = 0;
	beamalloc_free(a2, big, 200000);
	ok(nreports == 1, "gpa: another GPA's large block too");
	beamalloc_free(a1, big, 200000);

	w = beamalloc_wide_on(&a1);
	big = beamalloc_alloc_aligned(w, 100, 256);
	nreports = 0;
	beamalloc_free_aligned(w, big, 100, 8);
	ok(nreports == 1, "wide over a GPA: freeing with the wrong alignment "
	    "is caught by the GPA");
	beamalloc_free_aligned(w, big, 100, 256);
	beamalloc_free(a1, p, 48);
	is_size(beamalloc_gpa_destroy(g1) + beamalloc_gpa_destroy(g2), 0,
	    "gpa: every block freed correctly in the end, no leak");
}

/* ------------------------------------------------------------------------
 * A backing allocator that records the largest length it was asked for:
 * lengths past PTRDIFF_MAX must stop at the wide allocator and the arena.
 * ---------------------------------------------------------------------- */

struct recorder {
	size_t too_long;	/* calls with a length past PTRDIFF_MAX */
	size_t max_len;
};

static bool
rec_sees(struct recorder *r, size_t len)
{
	if (len > r->max_len)
		r->max_len = len;
	if (len <= (size_t)PTRDIFF_MAX)
		return true;
	r->too_long++;
	return false;
}

/* Serves 8 (native for an allocator the library does not know); the
 * largest real requests fail as malloc's would. */
static void *
rec_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)align, (void)ra;
	if (!rec_sees(ctx, len) || len > ((size_t)1 << 40))
		return NULL;
	return malloc(len);
}

static bool
rec_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)mem, (void)align, (void)ra;
	return rec_sees(ctx, len) && rec_sees(ctx, new_len) && new_len <= len;
}

static void *
rec_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)mem, (void)align, (void)ra;
	rec_sees(ctx, len);
	rec_sees(ctx, new_len);
	return NULL;
}

static void
rec_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)align, (void)ra;
	rec_sees(ctx, len);
	free(mem);
}

static const beamalloc_vtable rec_vtable = {
	rec_alloc, rec_resize, rec_remap, rec_free
};

/* Wide and arena over the recorder, at lengths just under PTRDIFF_MAX:
 * each call fails with ENOMEM, the live block intact, and the backing
 * never sees a length past PTRDIFF_MAX. */
static void
huge_to_backing(void)
{
	static const size_t under[] = { 0, 1, 7, 8, 63, 64, 0x47, 4095,
	    4096, 65536 };
	struct recorder rec = { 0, 0 };
	beamalloc_allocator b = { &rec, &rec_vtable };
	beamalloc_allocator w = beamalloc_wide_on(&b);
	beamalloc_arena *arena = beamalloc_arena_create(b);
	beamalloc_allocator ar = beamalloc_arena_allocator(arena);
	unsigned char *p = beamalloc_alloc_aligned(w, 100, 64);
	unsigned char *q = beamalloc_alloc(ar, 100);
	size_t bad = 0;

	if (p == NULL || q == NULL)
		bail("recorder: no first blocks");
	fill(p, 100);
	fill(q, 100);
	for (size_t i = 0; i < sizeof(under) / sizeof(under[0]); i++) {
		size_t len = (size_t)PTRDIFF_MAX - under[i];

		for (size_t al = 8; al <= 4096; al *= 8) {
			bad += !FAILS(beamalloc_alloc_aligned(w, len, al * 8),
			    ENOMEM);
			bad += !FAILS(beamalloc_alloc_aligned(ar, len, al),
			    ENOMEM);
		}
		bad += !FAILS(beamalloc_resize(w, p, 100, 64, len), ENOMEM);
		bad += !FAILS(beamalloc_remap(w, p, 100, 64, len), ENOMEM);
		bad += !FAILS(beamalloc_realloc(w, p, 100, 64, len), ENOMEM);
		bad += !FAILS(beamalloc_realloc(ar, q, 100, 8, len), ENOMEM);
	}
	is_size(bad, 0, "recorder: wide and arena requests of PTRDIFF_MAX - "
	    "(0 .. 65536) bytes: NULL/false + ENOMEM");
	ok(intact(p, 100) && intact(q, 100), "recorder: the live blocks are "
	    "intact");
	if (!ok(rec.too_long == 0, "recorder: the backing never saw a "
	    "length past PTRDIFF_MAX"))
		diag("  %zu such calls, the largest %#zx", rec.too_long,
		    rec.max_len);
	beamalloc_free_aligned(w, p, 100, 64);
	beamalloc_arena_destroy(arena);
}

/* The memory limit: growth refused, the block kept. */
static void
gpa_limit(void)
{
	beamalloc_gpa *g = new_gpa(true, false, 10000);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 6000), *q;

	fill(p, 6000);
	ok(FAILS(beamalloc_alloc(a, 5000), ENOMEM) &&
	    FAILS(beamalloc_realloc(a, p, 6000, 8, 12000), ENOMEM) &&
	    FAILS(beamalloc_resize(a, p, 6000, 8, 10001), ENOMEM) &&
	    intact(p, 6000), "gpa limit: alloc, realloc and resize past it: "
	    "NULL/false + ENOMEM, the block intact");
	q = beamalloc_realloc(a, p, 6000, 8, 3000);
	ok(q != NULL && intact(q, 3000) && beamalloc_alloc(a, 5000) != NULL,
	    "gpa limit: served again once under it");
	ok(beamalloc_gpa_destroy(g) == 2, "gpa limit: the two live blocks "
	    "are the leaks");
}

int
main(void)
{
	libc_alloc = beamalloc_libc();
	plan(NSUBJECTS * 8 + 2 + 6 + 4 + 3 + 3);
	for (int i = 0; i < NSUBJECTS; i++)
		misuse(i);
	bump_double_free(5);
	bump_double_free(6);
	bump_stale_last(5);
	bump_stale_last(6);
	gpa_foreign();
	gpa_limit();
	huge_to_backing();
	return done_testing();
}
