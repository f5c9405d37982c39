/*
 * model.c - operations decoded from bytes, run on one allocator and
 * checked against a reference model.
 *
 * The model keeps up to SLOTS blocks, each with its length, alignment and a
 * seed that determines every byte of its contents.  After every operation
 * it checks what the contract promises: alignment honoured, contents kept
 * across resize/remap/realloc, no two live blocks overlap, failures only
 * where allowed and with the right errno, and the allocator's own byte and
 * block counts (or its backing's) equal to the model's.  At the end every
 * block left live must be reported as a leak, exactly.
 *
 * Input format: a few configuration bytes read by the target's open(),
 * then operations of 2-6 bytes: op, slot, then sizes and alignments.
 * Past the end of the input every byte reads as 0.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "model.h"
#include "tools.h"		/* BA_ASAN */
#include "../testalloc.h"

#ifdef BA_ASAN
/* In every ASan runtime; gcc ships no header declaring them. */
int __sanitizer_install_malloc_and_free_hooks(
    void (*)(const volatile void *, size_t), void (*)(const volatile void *));
int __sanitizer_get_ownership(const volatile void *);
size_t __sanitizer_get_allocated_size(const volatile void *);
#endif

#define SLOTS 64
#define LIVE_CAP ((size_t)32 << 20)	/* bound on live bytes per run */
#define MAX_LEN ((size_t)1 << 20)
#define HUGE_LEN ((size_t)PTRDIFF_MAX + 1)

unsigned long long fz_ops;

/* ------------------------------------------------------------------------
 * The model's state
 * ---------------------------------------------------------------------- */

struct block {
	unsigned char *p;	/* NULL: empty slot */
	size_t len;
	size_t align;
	size_t host;		/* bytes the backing holds for it */
	uint8_t seed;		/* contents: pat(seed)[0, len) */
};

/* What an operation may do. */
enum expect {
	MUST_OK,
	MUST_EINVAL,
	MUST_ENOMEM,
	MAY_FAIL		/* either way; errno EINVAL or ENOMEM */
};

struct run;

/* A helper thread of the multi-thread targets: it runs one step when
 * handed one, while the main thread waits, so every operation still
 * happens in input order and the model stays exact; but blocks made by
 * one thread are freed, resized and leak-checked by another, and
 * threads end and start again. */
#define NHANDS 2

struct hand {
	pthread_t th;
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct run *r;
	int op, slot;			/* the step to run; HAND_QUIT: end */
	bool busy;			/* set by the main thread, cleared
					   once the step is done */
};

#define HAND_QUIT (-1)

struct target {
	const char *name;
	void (*open)(struct run *r);
	/* Release everything left live, checking the leak report. */
	void (*close)(struct run *r);
	/* Op "reset": arena/fixed reset, GPA leak count, else free all. */
	void (*reset)(struct run *r);
	/* Compare the allocator's (or its backing's) counts with ours. */
	void (*account)(struct run *r);
	/* Can a fresh len-byte block at align fail now (NULL: must not)? */
	enum expect (*expect_alloc)(struct run *r, size_t len, size_t align);
	/* Must a resize/remap fail now (NULL: no such rule)? */
	bool (*resize_must_fail)(struct run *r);
	/* Bytes the backing holds for a block placed by alloc/remap. */
	size_t (*host_of)(size_t len, size_t align);
	size_t max_align;	/* every alignment up to it is served */
	bool einval_above;	/* alignments above it fail with EINVAL */
	bool no_grow;		/* resize never grows (it would have to move) */
	bool resize_keeps_host;	/* in-place resize leaves host bytes alone */
	unsigned bad_frees;	/* BAD_* misuses the allocator reports */
	bool hands;		/* steps run on helper threads too */
};

/* Bad frees a GPA reports, then ignores. */
#define BAD_DOUBLE	1u	/* even with safety off */
#define BAD_CHECKED	2u	/* size/alignment mismatch, invalid pointer */

struct run {
	const struct target *t;
	beamalloc_allocator a;
	const uint8_t *in, *end;
	unsigned long op;	/* index of the operation, for messages */
	const char *what;	/* its name */
	struct block b[SLOTS];
	size_t nlive;		/* blocks with len > 0 */
	size_t live;		/* sum of their lengths */
	size_t host;		/* sum of their host bytes */
	uint8_t next_seed;
	/* target state */
	testalloc *ta;		/* strict counting backing */
	beamalloc_allocator backing;
	beamalloc_allocator wide;	/* wide_on(&backing) */
	beamalloc_allocator inner;	/* wide_gpa: the GPA under wide */
	size_t asan_base;	/* malloc_net at open */
	beamalloc_arena *arena;
	beamalloc_fixed fixed;
	beamalloc_failing failing;
	beamalloc_gpa *gpa;
	size_t limit;		/* the GPA's memory limit, 0: none */
	beamalloc_pool *pool;
	size_t item_size, item_align, preheat;
	bool growable;
	beamalloc_stackfb stackfb;
	beamalloc_locked locked;
	beamalloc_logging logging;
	size_t logged_live;	/* blocks the logger saw come and go */
	struct hand hand[NHANDS];	/* target->hands: started by step() */
	bool hands_up;
};

/* What the GPA reported during the current operation. */
#define MAX_REPORTS (2 * SLOTS)
static beamalloc_report reports[MAX_REPORTS];
static size_t nreports;

static void
capture(void *user, const beamalloc_report *rp)
{
	(void)user;
	if (nreports < MAX_REPORTS) {
		reports[nreports] = *rp;
		/* traces live only during the call */
		reports[nreports].alloc_trace = NULL;
		reports[nreports].free_trace = NULL;
	}
	nreports++;
}

static testalloc ta_storage;

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static __attribute__((format(printf, 2, 3), noreturn)) void
fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "beamalloc fuzz model: target %s, operation %lu (%s): ",
	    r->t->name, r->op, r->what ? r->what : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define CHECK(r, cond, ...) do { if (!(cond)) fail((r), __VA_ARGS__); } while (0)

static unsigned
next(struct run *r)
{
	return r->in < r->end ? *r->in++ : 0;
}

/* Mostly small, sometimes zero, rarely up to 1 MiB. */
static size_t
next_len(struct run *r)
{
	unsigned x = next(r), y = next(r);
	size_t n = ((size_t)(x & 15) << 8) | y;	/* 0..4095 */

	switch (x >> 4) {
	case 0:
		return 0;
	case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8:
	case 9:
		return 1 + n % 64;
	case 10: case 11: case 12:
		return 1 + n;
	case 13: case 14:
		return 1 + n * 16 + (y & 15);
	default:
		return 1 + (y & 1 ? n * 256 : n * 64) + y;
	}
}

/* Mostly 1..8, sometimes up to a page, rarely up to 1 MiB. */
static size_t
next_align(struct run *r)
{
	unsigned a = next(r);

	if (a < 128)
		return (size_t)1 << (a % 4);
	if (a < 192)
		return (size_t)1 << (4 + a % 3);
	if (a < 240)
		return (size_t)1 << (a % 13);
	return (size_t)1 << (a % 21);
}

/* Contents: block bytes are a window of a fixed pseudo-random string,
 * starting at an offset chosen by the block's seed, so fill and verify are
 * one memcpy/memcmp and shifted or swapped data never matches. */
#define PAT_STRIDE 61
static unsigned char pattern[MAX_LEN + 256 * PAT_STRIDE];

static void
pattern_init(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)((i * 2654435761u) >> 13);
}

static inline const unsigned char *
pat(uint8_t seed)
{
	return pattern + (size_t)seed * PAT_STRIDE;
}

static void
fill(unsigned char *p, size_t from, size_t to, uint8_t seed)
{
	if (to > from)
		memcpy(p + from, pat(seed) + from, to - from);
}

static void
verify(struct run *r, const struct block *b, const unsigned char *p,
    size_t n)
{
	const unsigned char *want = pat(b->seed);
	size_t i;

	if (n == 0 || memcmp(p, want, n) == 0)
		return;
	for (i = 0; p[i] == want[i]; i++)
		;
	fail(r, "block %p (len %zu, align %zu): byte %zu is %#x, want %#x",
	    (const void *)p, b->len, b->align, i, p[i], want[i]);
}

static inline size_t
min_len(size_t a, size_t b)
{
	return a < b ? a : b;
}

static int
is_aligned_to(const void *p, size_t align)
{
	return ((uintptr_t)p & (align - 1)) == 0;
}

/* A block just placed at p: aligned, and overlapping no other live one. */
static void
placed(struct run *r, int slot, const unsigned char *p, size_t len,
    size_t align)
{
	CHECK(r, p != NULL, "NULL where a pointer was due");
	CHECK(r, is_aligned_to(p, align), "%p is not aligned to %zu",
	    (const void *)p, align);
	if (len == 0)
		return;
	for (int i = 0; i < SLOTS; i++) {
		const struct block *o = &r->b[i];

		if (i == slot || o->p == NULL || o->len == 0)
			continue;
		CHECK(r, p + len <= o->p || o->p + o->len <= p,
		    "new block [%p, +%zu) overlaps live block [%p, +%zu)",
		    (const void *)p, len, (void *)o->p, o->len);
	}
}

static void
expect_failure(struct run *r, enum expect e, int err, size_t len,
    size_t align)
{
	CHECK(r, e != MUST_OK, "len %zu align %zu failed (errno %d) where it "
	    "must succeed (live: %zu bytes in %zu blocks)", len, align, err,
	    r->live, r->nlive);
	CHECK(r, err == EINVAL || err == ENOMEM,
	    "failed with errno %d, neither EINVAL nor ENOMEM", err);
	CHECK(r, e != MUST_EINVAL || err == EINVAL,
	    "len %zu align %zu: errno %d where EINVAL was due", len, align,
	    err);
	CHECK(r, e != MUST_ENOMEM || err == ENOMEM,
	    "len %zu align %zu: errno %d where ENOMEM was due", len, align,
	    err);
}

static enum expect
expect_alloc(struct run *r, size_t len, size_t align)
{
	if (len == 0)
		return MUST_OK;
	if (align > r->t->max_align)
		return r->t->einval_above ? MUST_EINVAL : MAY_FAIL;
	return r->t->expect_alloc ? r->t->expect_alloc(r, len, align) :
	    MUST_OK;
}

/* The model's side of a block appearing, changing or going away. */
static void
set_block(struct run *r, int slot, unsigned char *p, size_t len,
    size_t align, size_t host)
{
	struct block *b = &r->b[slot];

	if (b->p != NULL && b->len > 0) {
		r->nlive--;
		r->live -= b->len;
		r->host -= b->host;
	}
	if (p == NULL) {
		memset(b, 0, sizeof(*b));
		return;
	}
	b->p = p;
	b->len = len;
	b->align = align;
	b->host = len > 0 ? host : 0;
	if (len > 0) {
		r->nlive++;
		r->live += len;
		r->host += b->host;
	}
}

static size_t
host_of(struct run *r, size_t len, size_t align)
{
	return r->t->host_of ? r->t->host_of(len, align) : len;
}

/* ------------------------------------------------------------------------
 * Operations
 * ---------------------------------------------------------------------- */

static void
op_free(struct run *r, int slot, bool plain)
{
	struct block *b = &r->b[slot];

	if (b->p == NULL)
		return;
	r->what = "free";
	verify(r, b, b->p, b->len);
	if (plain && b->align == BEAMALLOC_MIN_ALIGN)
		beamalloc_free(r->a, b->p, b->len);
	else
		beamalloc_free_aligned(r->a, b->p, b->len, b->align);
	set_block(r, slot, NULL, 0, 0, 0);
}

static void
free_all(struct run *r)
{
	for (int i = 0; i < SLOTS; i++)
		op_free(r, i, false);
}

static void
op_alloc(struct run *r, int slot)
{
	unsigned v = next(r) % 4;
	size_t len = next_len(r), align = next_align(r), size;
	unsigned char *p;
	uint8_t seed = r->next_seed++;
	enum expect e;

	op_free(r, slot, false);
	if (r->live + len > LIVE_CAP)
		len %= 64;
	switch (v) {
	case 0:
		r->what = "alloc_aligned";
		e = expect_alloc(r, len, align);
		errno = 0;
		p = beamalloc_alloc_aligned(r->a, len, align);
		break;
	case 1:
		r->what = "alloc";
		align = BEAMALLOC_MIN_ALIGN;
		e = expect_alloc(r, len, align);
		errno = 0;
		p = beamalloc_alloc(r->a, len);
		break;
	case 2:
		r->what = "alloc_array";
		size = (size_t)1 << (next(r) % 5);
		len -= len % size;
		e = expect_alloc(r, len, align);
		errno = 0;
		p = beamalloc_alloc_array(r->a, len / size, size, align);
		break;
	default:
		r->what = "dup";
		align = BEAMALLOC_MIN_ALIGN;
		e = expect_alloc(r, len, align);
		errno = 0;
		p = beamalloc_dup(r->a, pat(seed), len);
		break;
	}
	if (p == NULL) {
		expect_failure(r, e, errno, len, align);
		return;
	}
	CHECK(r, e != MUST_EINVAL && e != MUST_ENOMEM,
	    "len %zu align %zu succeeded where it must fail", len, align);
	placed(r, slot, p, len, align);
	r->b[slot].seed = seed;
	set_block(r, slot, p, len, align, host_of(r, len, align));
	if (v == 3)
		verify(r, &r->b[slot], p, len);
	else
		fill(p, 0, len, seed);
}

static void
op_resize(struct run *r, int slot)
{
	struct block *b = &r->b[slot];
	size_t new_len = next_len(r);
	bool ok, must_fail;

	if (b->p == NULL)
		return;
	r->what = "resize";
	if (new_len > b->len && r->live + new_len - b->len > LIVE_CAP)
		new_len = b->len;
	verify(r, b, b->p, b->len);
	must_fail = r->t->resize_must_fail && r->t->resize_must_fail(r);
	errno = 0;
	ok = beamalloc_resize(r->a, b->p, b->len, b->align, new_len);
	if (new_len == 0) {
		CHECK(r, ok, "resize to 0 must free and succeed");
		set_block(r, slot, NULL, 0, 0, 0);
		return;
	}
	if (b->len == 0) {
		CHECK(r, !ok && errno == ENOMEM,
		    "resize of a zero-length block must fail with ENOMEM");
		return;
	}
	if (new_len == b->len) {
		CHECK(r, ok, "resize to the same length must succeed");
		return;
	}
	CHECK(r, !ok || !must_fail, "resize succeeded where it must fail");
	if (!ok) {
		CHECK(r, errno == ENOMEM || errno == EINVAL,
		    "resize failed with errno %d", errno);
		verify(r, b, b->p, b->len);
		return;
	}
	CHECK(r, new_len < b->len || !r->t->no_grow,
	    "resize grew %zu -> %zu in place", b->len, new_len);
	verify(r, b, b->p, min_len(b->len, new_len));
	fill(b->p, b->len, new_len, b->seed);
	set_block(r, slot, b->p, new_len, b->align, r->t->resize_keeps_host ?
	    b->host : host_of(r, new_len, b->align));
}

/* May move: NULL leaves the block as it was. */
static void
op_remap(struct run *r, int slot)
{
	struct block *b = &r->b[slot];
	size_t new_len = next_len(r);
	unsigned char *p;
	bool must_fail;

	if (b->p == NULL)
		return;
	r->what = "remap";
	if (new_len > b->len && r->live + new_len - b->len > LIVE_CAP)
		new_len = b->len / 2;
	verify(r, b, b->p, b->len);
	must_fail = r->t->resize_must_fail && r->t->resize_must_fail(r);
	errno = 0;
	p = beamalloc_remap(r->a, b->p, b->len, b->align, new_len);
	if (new_len == 0) {
		/* Freed; what is left is a zero-length pointer. */
		CHECK(r, p != NULL && is_aligned_to(p, b->align),
		    "remap to 0 must give an aligned zero-length pointer");
		set_block(r, slot, p, 0, b->align, 0);
		return;
	}
	if (b->len == 0) {
		CHECK(r, p == NULL && errno == ENOMEM,
		    "remap of a zero-length block must fail with ENOMEM");
		return;
	}
	if (new_len == b->len) {
		CHECK(r, p == b->p, "remap to the same length must keep it");
		return;
	}
	CHECK(r, p == NULL || !must_fail, "remap succeeded where it must fail");
	if (p == NULL) {
		CHECK(r, errno == ENOMEM || errno == EINVAL,
		    "remap failed with errno %d", errno);
		verify(r, b, b->p, b->len);
		return;
	}
	placed(r, slot, p, new_len, b->align);
	verify(r, b, p, min_len(b->len, new_len));
	fill(p, b->len, new_len, b->seed);
	set_block(r, slot, p, new_len, b->align, host_of(r, new_len,
	    b->align));
}

/* Remap, else alloc + copy + free; NULL leaves the old block intact. */
static void
op_realloc(struct run *r, int slot)
{
	struct block *b = &r->b[slot];
	size_t new_len = next_len(r);
	unsigned char *p;
	enum expect e;

	if (b->p == NULL)
		return;
	r->what = "realloc";
	if (new_len > b->len && r->live + new_len - b->len > LIVE_CAP)
		new_len = b->len / 2;
	verify(r, b, b->p, b->len);
	e = expect_alloc(r, new_len, b->align);
	if (e == MUST_ENOMEM && b->len > 0)
		e = MAY_FAIL;	/* an in-place remap may still do */
	errno = 0;
	p = beamalloc_realloc(r->a, b->p, b->len, b->align, new_len);
	if (p == NULL) {
		expect_failure(r, e, errno, new_len, b->align);
		verify(r, b, b->p, b->len);
		return;
	}
	if (new_len == b->len && b->len > 0) {
		CHECK(r, p == b->p, "realloc to the same length must keep it");
		return;
	}
	placed(r, slot, p, new_len, b->align);
	verify(r, b, p, min_len(b->len, new_len));
	fill(p, b->len, new_len, b->seed);
	set_block(r, slot, p, new_len, b->align, host_of(r, new_len,
	    b->align));
}

/* Misuse the contract forbids in defined ways: NULL/false + errno, and
 * nothing changes. */
static void
op_bad(struct run *r, int slot)
{
	struct block *b = &r->b[slot];
	unsigned v = next(r) % 6;
	size_t bad_align = (size_t)(next(r) % 15 + 1) * 2 + 1;	/* odd >= 3 */
	size_t huge = HUGE_LEN + next(r);

	bad_align <<= next(r) % 8;
	errno = 0;
	switch (v) {
	case 0:
		r->what = "alloc_aligned with a bad alignment";
		CHECK(r, beamalloc_alloc_aligned(r->a, 16, bad_align) == NULL &&
		    errno == EINVAL, "alignment %zu: want NULL, EINVAL",
		    bad_align);
		return;
	case 1:
		r->what = "alloc of a huge length";
		CHECK(r, beamalloc_alloc_aligned(r->a, huge, 8) == NULL &&
		    errno == ENOMEM, "length %zu: want NULL, ENOMEM", huge);
		return;
	case 2:
		r->what = "alloc_array overflowing n*size";
		CHECK(r, beamalloc_alloc_array(r->a, SIZE_MAX / 2 + 1 + next(r),
		    2 + next(r) % 8, 8) == NULL && errno == ENOMEM,
		    "n*size overflow: want NULL, ENOMEM");
		return;
	}
	if (b->p == NULL)
		return;
	switch (v) {
	case 3:
		r->what = "realloc to a huge length";
		CHECK(r, beamalloc_realloc(r->a, b->p, b->len, b->align,
		    huge) == NULL && errno == ENOMEM,
		    "realloc to %zu: want NULL, ENOMEM", huge);
		break;
	case 4:
		r->what = "resize/remap/realloc with a bad alignment";
		CHECK(r, !beamalloc_resize(r->a, b->p, b->len, bad_align,
		    b->len + 1) && errno == EINVAL, "resize: want EINVAL");
		errno = 0;
		CHECK(r, beamalloc_remap(r->a, b->p, b->len, bad_align,
		    b->len + 1) == NULL && errno == EINVAL,
		    "remap: want NULL, EINVAL");
		errno = 0;
		CHECK(r, beamalloc_realloc(r->a, b->p, b->len, bad_align,
		    b->len + 1) == NULL && errno == EINVAL,
		    "realloc: want NULL, EINVAL");
		break;
	default:
		r->what = "resize/remap to a huge length";
		CHECK(r, !beamalloc_resize(r->a, b->p, b->len, b->align, huge) &&
		    errno == ENOMEM, "resize: want false, ENOMEM");
		errno = 0;
		CHECK(r, beamalloc_remap(r->a, b->p, b->len, b->align, huge) ==
		    NULL && errno == ENOMEM, "remap: want NULL, ENOMEM");
		break;
	}
	verify(r, b, b->p, b->len);
}

static void
expect_report(struct run *r, beamalloc_report_kind kind, const void *addr)
{
	const beamalloc_report *rp = &reports[0];

	CHECK(r, nreports == 1, "%zu reports where one %s was due", nreports,
	    beamalloc_report_kind_name(kind));
	CHECK(r, rp->kind == kind && rp->addr == addr,
	    "report %s at %p, want %s at %p",
	    beamalloc_report_kind_name(rp->kind), rp->addr,
	    beamalloc_report_kind_name(kind), addr);
	nreports = 0;
}

/* A free the GPA must report and ignore: the block stays as it was. */
static void
op_bad_free(struct run *r, int slot)
{
	static unsigned char foreign[64] __attribute__((aligned(64)));
	struct block *b = &r->b[slot];
	unsigned v = next(r) % 5;

	if (b->p == NULL || b->len == 0)
		return;
	if (!(r->t->bad_frees & BAD_CHECKED))
		v = 0;
	verify(r, b, b->p, b->len);
	nreports = 0;
	switch (v) {
	case 0:
		r->what = "double free";
		beamalloc_free_aligned(r->a, b->p, b->len, b->align);
		beamalloc_free_aligned(r->a, b->p, b->len, b->align);
		expect_report(r, BEAMALLOC_REPORT_DOUBLE_FREE, b->p);
		set_block(r, slot, NULL, 0, 0, 0);
		return;
	case 1:
		r->what = "free with a wrong length";
		beamalloc_free_aligned(r->a, b->p, b->len + 1, b->align);
		expect_report(r, BEAMALLOC_REPORT_SIZE_MISMATCH, b->p);
		CHECK(r, reports[0].size == b->len &&
		    reports[0].given_size == b->len + 1,
		    "size mismatch reported sizes %zu/%zu, want %zu/%zu",
		    reports[0].size, reports[0].given_size, b->len,
		    b->len + 1);
		break;
	case 2:
		r->what = "free with a wrong alignment";
		beamalloc_free_aligned(r->a, b->p, b->len, b->align * 2);
		expect_report(r, BEAMALLOC_REPORT_ALIGN_MISMATCH, b->p);
		CHECK(r, reports[0].align == b->align &&
		    reports[0].given_align == b->align * 2,
		    "alignment mismatch reported %zu/%zu, want %zu/%zu",
		    reports[0].align, reports[0].given_align, b->align,
		    b->align * 2);
		break;
	case 3:
		r->what = "free of an interior or foreign pointer";
		if (next(r) & 1) {
			beamalloc_free(r->a, b->p + 1, 8);
			expect_report(r, BEAMALLOC_REPORT_INVALID_FREE, b->p + 1);
		} else {
			beamalloc_free(r->a, foreign, sizeof(foreign));
			expect_report(r, BEAMALLOC_REPORT_INVALID_FREE, foreign);
		}
		break;
	default:
		r->what = "resize with a wrong length";
		CHECK(r, !beamalloc_resize(r->a, b->p, b->len + 1, b->align,
		    b->len + 2), "resize with a wrong length succeeded");
		expect_report(r, BEAMALLOC_REPORT_SIZE_MISMATCH, b->p);
		break;
	}
	verify(r, b, b->p, b->len);
}

static void
op_check_all(struct run *r)
{
	r->what = "check all";
	for (int i = 0; i < SLOTS; i++)
		if (r->b[i].p != NULL)
			verify(r, &r->b[i], r->b[i].p, r->b[i].len);
}

static void
do_step(struct run *r, unsigned op, int slot)
{
	switch (op) {
	case 0: case 1: case 2: case 3:
		op_alloc(r, slot);
		break;
	case 4: case 5:
		op_free(r, slot, op == 4);
		break;
	case 6: case 7:
		op_resize(r, slot);
		break;
	case 8: case 9:
		op_remap(r, slot);
		break;
	case 10: case 11:
		op_realloc(r, slot);
		break;
	case 12:
		r->what = "reset";
		r->t->reset(r);
		break;
	case 13:
		op_bad(r, slot);
		break;
	case 14:
		if (r->t->bad_frees != 0) {
			op_bad_free(r, slot);
			break;
		}
		/* fallthrough */
	default:
		op_check_all(r);
		break;
	}
}

static void *
hand_main(void *arg)
{
	struct hand *h = arg;

	pthread_mutex_lock(&h->m);
	for (;;) {
		while (!h->busy)
			pthread_cond_wait(&h->cv, &h->m);
		if (h->op == HAND_QUIT)
			break;
		do_step(h->r, (unsigned)h->op, h->slot);
		h->busy = false;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->m);
	return NULL;
}

/* Hand a step to h and wait until it is done. */
static void
hand_run(struct hand *h, int op, int slot)
{
	pthread_mutex_lock(&h->m);
	h->op = op;
	h->slot = slot;
	h->busy = true;
	pthread_cond_broadcast(&h->cv);
	while (h->busy && op != HAND_QUIT)
		pthread_cond_wait(&h->cv, &h->m);
	pthread_mutex_unlock(&h->m);
}

static void
hand_start(struct run *r, struct hand *h)
{
	h->r = r;
	h->busy = false;
	if (pthread_create(&h->th, NULL, hand_main, h) != 0) {
		fprintf(stderr, "fuzz model: pthread_create failed\n");
		abort();
	}
}

/* The thread ends (its cache goes back to the GPA) and joins. */
static void
hand_stop(struct hand *h)
{
	hand_run(h, HAND_QUIT, 0);
	pthread_join(h->th, NULL);
}

static void
hands_down(struct run *r)
{
	if (!r->hands_up)
		return;
	for (int i = 0; i < NHANDS; i++) {
		hand_stop(&r->hand[i]);
		pthread_mutex_destroy(&r->hand[i].m);
		pthread_cond_destroy(&r->hand[i].cv);
	}
	r->hands_up = false;
}

/* With hands, a third byte says who runs the step: the main thread, a
 * hand, or the main thread after a hand ended and a new one started. */
static void
step(struct run *r)
{
	unsigned op = next(r) % 16;
	int slot = (int)(next(r) % SLOTS);
	unsigned who;

	if (!r->t->hands) {
		do_step(r, op, slot);
		return;
	}
	if (!r->hands_up) {
		for (int i = 0; i < NHANDS; i++) {
			pthread_mutex_init(&r->hand[i].m, NULL);
			pthread_cond_init(&r->hand[i].cv, NULL);
			hand_start(r, &r->hand[i]);
		}
		r->hands_up = true;
	}
	who = next(r) % (NHANDS + 2);
	if (who >= 1 && who <= NHANDS) {
		hand_run(&r->hand[who - 1], (int)op, slot);
		return;
	}
	if (who == NHANDS + 1) {
		struct hand *h = &r->hand[(unsigned)slot % NHANDS];

		hand_stop(h);
		hand_start(r, h);
	}
	do_step(r, op, slot);
}

/* ------------------------------------------------------------------------
 * Targets
 * ---------------------------------------------------------------------- */

/* beam (the malloc fallback outside the VM) and libc: the only counts are
 * ASan's, exact to the byte: the model knows what malloc holds.  They are
 * taken by ASan's hooks, which run on the calling thread, and kept per
 * thread: a process-wide count also moves with other threads' mallocs
 * (libFuzzer's RSS watcher starts while the first inputs run). */
#ifdef BA_ASAN
static __thread size_t malloc_net;	/* this thread's mallocs - frees */

static void
malloc_hook(const volatile void *p, size_t n)
{
	(void)p;
	malloc_net += n;
}

static void
free_hook(const volatile void *p)
{
	/* Runs before ASan checks the free: a bad one is left to its report. */
	if (p != NULL && __sanitizer_get_ownership(p))
		malloc_net -= __sanitizer_get_allocated_size(p);
}
#endif

static void
base_account(struct run *r)
{
#ifdef BA_ASAN
	size_t now = malloc_net - r->asan_base;

	CHECK(r, now == r->host, "malloc holds %zu bytes, model %zu", now,
	    r->host);
#else
	(void)r;
#endif
}

static void
base_open(struct run *r, beamalloc_allocator a)
{
	r->a = a;
#ifdef BA_ASAN
	static bool hooked;

	if (!hooked) {
		hooked = __sanitizer_install_malloc_and_free_hooks(malloc_hook,
		    free_hook) != 0;
		if (!hooked) {
			fprintf(stderr, "fuzz model: no ASan malloc hooks\n");
			abort();
		}
	}
	r->asan_base = malloc_net;
#endif
}

static void
beam_open(struct run *r)
{
	base_open(r, beamalloc_beam());
}

static void
libc_open(struct run *r)
{
	base_open(r, beamalloc_libc());
}

static void
base_close(struct run *r)
{
	free_all(r);
	base_account(r);
}

/* wide over the strict test allocator: 8-only blocks, exact frees checked,
 * remaps that move when the input says so. */
static void
strict_open(struct run *r)
{
	/* Counters only: the block table is valid up to nblocks. */
	memset(&ta_storage.nblocks, 0, sizeof(ta_storage) -
	    offsetof(testalloc, nblocks));
	r->ta = &ta_storage;
	r->ta->move_on_remap = (int)(next(r) & 1);
	r->ta->shift = next(r) % 4;
	r->backing = testalloc_allocator(r->ta);
}

static void
strict_account(struct run *r)
{
	CHECK(r, r->ta->bad_calls == 0,
	    "the backing saw %zu frees/resizes naming a wrong block",
	    r->ta->bad_calls);
	CHECK(r, r->ta->live_bytes == r->host,
	    "backing holds %zu bytes, model %zu", r->ta->live_bytes, r->host);
}

static void
wide_open(struct run *r)
{
	strict_open(r);
	r->a = beamalloc_wide_on(&r->backing);
}

static size_t
wide_host(size_t len, size_t align)
{
	return align <= BEAMALLOC_MIN_ALIGN ? len : len + align;
}

static void
wide_account(struct run *r)
{
	strict_account(r);
	CHECK(r, r->ta->nblocks == r->nlive, "backing holds %zu blocks, "
	    "model %zu", r->ta->nblocks, r->nlive);
}

static void
wide_close(struct run *r)
{
	free_all(r);
	wide_account(r);
}

/* wide over a GPA with canary and junk (and often a quarantine), over
 * the strict backing: an over-aligned block's slack holds the GPA's
 * canary, 32 bytes at least (lib/wide.c), checked at every free, resize
 * and remap of the wide block, and nothing of a correct program may be
 * reported.  The GPA's own counts are the model's: a block at an
 * alignment above 8 takes len + align + 32 of it, any other len. */
static void
wide_gpa_open(struct run *r)
{
	beamalloc_gpa_config cfg;

	strict_open(r);
	beamalloc_gpa_config_init(&cfg);
	cfg.report = capture;
	cfg.canary = cfg.junk = true;
	if (next(r) % 2 != 0)
		cfg.quarantine = (size_t)(next(r) % 32) << 10;
	r->gpa = beamalloc_gpa_create(r->backing, &cfg);
	CHECK(r, r->gpa != NULL, "gpa_create failed");
	r->inner = beamalloc_gpa_allocator(r->gpa);
	r->a = beamalloc_wide_on(&r->inner);
	nreports = 0;
}

static size_t
wide_gpa_host(size_t len, size_t align)
{
	return align <= BEAMALLOC_MIN_ALIGN ? len : len + align + 32;
}

/* A GPA target's common checks: no report, no bad call to the backing,
 * and the GPA's live counts the model's (bytes as the target counts
 * them).  The GPA's stats in *st. */
static void
gpa_counts(struct run *r, size_t bytes, beamalloc_gpa_stats *st)
{
	CHECK(r, nreports == 0, "unexpected report: %s at %p",
	    beamalloc_report_kind_name(reports[0].kind), reports[0].addr);
	CHECK(r, r->ta->bad_calls == 0,
	    "the backing saw %zu frees naming a wrong block", r->ta->bad_calls);
	beamalloc_gpa_get_stats(r->gpa, st);
	CHECK(r, st->live_bytes == bytes && st->live_blocks == r->nlive,
	    "GPA counts %zu bytes in %zu blocks, model %zu in %zu",
	    st->live_bytes, st->live_blocks, bytes, r->nlive);
}

static void
wide_gpa_account(struct run *r)
{
	beamalloc_gpa_stats st;

	gpa_counts(r, r->host, &st);
}

static void
wide_gpa_close(struct run *r)
{
	free_all(r);
	wide_gpa_account(r);
	r->what = "destroy";
	CHECK(r, beamalloc_gpa_destroy(r->gpa) == 0 && nreports == 0,
	    "destroy found %zu reports", nreports);
	CHECK(r, r->ta->nblocks == 0 && r->ta->live_bytes == 0,
	    "destroy left %zu blocks, %zu bytes in the backing",
	    r->ta->nblocks, r->ta->live_bytes);
}

/* arena over the strict backing: every byte it holds is a chunk. */
static void
arena_open(struct run *r)
{
	strict_open(r);
	r->arena = beamalloc_arena_create(r->backing);
	CHECK(r, r->arena != NULL, "arena_create failed");
	r->a = beamalloc_arena_allocator(r->arena);
}

static void
arena_account(struct run *r)
{
	CHECK(r, r->ta->bad_calls == 0,
	    "the backing saw %zu frees naming a wrong block", r->ta->bad_calls);
	CHECK(r, beamalloc_arena_capacity(r->arena) == r->ta->live_bytes,
	    "arena capacity %zu, backing holds %zu",
	    beamalloc_arena_capacity(r->arena), r->ta->live_bytes);
}

static void
arena_reset(struct run *r)
{
	size_t cap = beamalloc_arena_capacity(r->arena);

	for (int i = 0; i < SLOTS; i++)
		if (r->b[i].p != NULL)
			verify(r, &r->b[i], r->b[i].p, r->b[i].len);
	beamalloc_arena_reset(r->arena);
	for (int i = 0; i < SLOTS; i++)
		set_block(r, i, NULL, 0, 0, 0);
	CHECK(r, beamalloc_arena_capacity(r->arena) == cap,
	    "reset changed the capacity from %zu to %zu", cap,
	    beamalloc_arena_capacity(r->arena));
}

static void
arena_close(struct run *r)
{
	/* Free some blocks first: destroy must not care. */
	for (int i = 0; i < SLOTS; i += 2)
		op_free(r, i, false);
	op_check_all(r);
	r->what = "destroy";
	beamalloc_arena_destroy(r->arena);
	CHECK(r, r->ta->nblocks == 0 && r->ta->live_bytes == 0,
	    "destroy left %zu blocks, %zu bytes in the backing",
	    r->ta->nblocks, r->ta->live_bytes);
	CHECK(r, r->ta->bad_calls == 0, "destroy freed a wrong block");
}

/* fixed buffer over a static buffer starting at any residue. */
#define FIXED_CAP ((size_t)512 << 10)
static unsigned char fixed_mem[FIXED_CAP + 64] __attribute__((aligned(4096)));

static void
fixed_open(struct run *r)
{
	unsigned off = next(r) % 64;

	beamalloc_fixed_init(&r->fixed, fixed_mem + off, FIXED_CAP);
	r->a = beamalloc_fixed_allocator(&r->fixed);
}

/* Fails exactly when the block does not fit at the bump pointer. */
static enum expect
fixed_expect(struct run *r, size_t len, size_t align)
{
	uintptr_t p = (uintptr_t)r->fixed.ptr;
	size_t pad = (size_t)(-p & (align - 1));
	size_t room = (size_t)(r->fixed.end - r->fixed.ptr);

	return pad <= room && len <= room - pad ? MUST_OK : MUST_ENOMEM;
}

static void
fixed_account(struct run *r)
{
	const beamalloc_fixed *fb = &r->fixed;

	CHECK(r, fb->start <= fb->ptr && fb->ptr <= fb->end &&
	    (size_t)(fb->end - fb->start) == FIXED_CAP,
	    "bump pointer %p outside [%p, %p]", (void *)fb->ptr,
	    (void *)fb->start, (void *)fb->end);
	for (int i = 0; i < SLOTS; i++) {
		const struct block *b = &r->b[i];

		CHECK(r, b->p == NULL || b->len == 0 ||
		    (b->p >= fb->start && b->p + b->len <= fb->ptr),
		    "block [%p, +%zu) outside the used buffer [%p, %p)",
		    (void *)b->p, b->len, (void *)fb->start, (void *)fb->ptr);
	}
}

static void
fixed_reset(struct run *r)
{
	op_check_all(r);
	beamalloc_fixed_reset(&r->fixed);
	for (int i = 0; i < SLOTS; i++)
		set_block(r, i, NULL, 0, 0, 0);
	CHECK(r, r->fixed.ptr == r->fixed.start, "reset left %zu bytes used",
	    (size_t)(r->fixed.ptr - r->fixed.start));
}

static void
fixed_close(struct run *r)
{
	free_all(r);
	fixed_reset(r);
}

/* failing over wide over the strict backing: induced failures exactly at
 * the indices, counters exact, and the backing's frees exact. */
static void
failing_open(struct run *r)
{
	unsigned x = next(r), y = next(r);

	wide_open(r);
	r->wide = r->a;
	beamalloc_failing_init(&r->failing, r->wide,
	    x == 255 ? BEAMALLOC_NEVER : x, y == 255 ? BEAMALLOC_NEVER : y);
	r->a = beamalloc_failing_allocator(&r->failing);
}

static enum expect
failing_expect(struct run *r, size_t len, size_t align)
{
	(void)len, (void)align;
	return r->failing.allocations >= r->failing.fail_index ?
	    MUST_ENOMEM : MUST_OK;
}

static bool
failing_resize_must_fail(struct run *r)
{
	return r->failing.resizes >= r->failing.resize_fail_index;
}

static void
failing_account(struct run *r)
{
	const beamalloc_failing *f = &r->failing;

	wide_account(r);
	CHECK(r, f->allocations - f->deallocations == r->nlive,
	    "allocations %zu - deallocations %zu, model has %zu blocks",
	    f->allocations, f->deallocations, r->nlive);
	CHECK(r, f->allocated_bytes - f->freed_bytes == r->live,
	    "allocated %zu - freed %zu bytes, model has %zu", f->allocated_bytes,
	    f->freed_bytes, r->live);
	CHECK(r, !f->has_induced_failure || f->allocations >= f->fail_index,
	    "has_induced_failure set before the failing index");
}

static void
failing_close(struct run *r)
{
	free_all(r);
	failing_account(r);
	CHECK(r, r->failing.allocations == r->failing.deallocations,
	    "allocations %zu != deallocations %zu at the end",
	    r->failing.allocations, r->failing.deallocations);
}

/* The GPA.  "gpa": safety on, single-threaded, over the strict 8-only
 * backing itself (exact backing bytes; large blocks then serve only 8),
 * every bad free exercised.  "gpa_ts": safety off, thread-safe, over wide
 * on the strict backing, with a memory limit most of the time.
 * "gpa_mt": as "gpa", thread-safe, its steps run by the main thread or
 * by one of two hands (step()), which end and start again: blocks are
 * freed on threads other than their maker's and go home through the
 * outboxes, leak checks empty idle threads' caches, and ended threads'
 * caches are taken by new ones. */
#define GPA_SMALL_MAX ((size_t)16384)	/* documented in lib/gpa/gpa.h */

/* The GPA with its corruption checks (issue 16): canary, junk, or both,
 * a quarantine (often), guarded sampling (often, of 1 block in 1-16)
 * and traces (sometimes, sampled or not), each chosen by the input.
 * "gpa_checks" has safety on over the strict backing, as "gpa";
 * "gpa_checks_ts" safety off and thread-safe over wide, as "gpa_ts"
 * (without its limit).  Used correctly, the checks must report nothing
 * and change no byte of a live block; a double free is reported, from
 * quarantine or guard page too; with safety, every bad free. */
static void
gpa_checks_config(struct run *r, beamalloc_gpa_config *cfg)
{
	unsigned which = next(r);

	cfg->canary = which % 3 != 1;
	cfg->junk = which % 3 != 0;
	if (next(r) % 4 != 0)
		cfg->quarantine = (size_t)(next(r) % 32) << 10;
	if (next(r) % 2 != 0)
		cfg->guard_sample = 1 + next(r) % 16;
	if (next(r) % 4 == 0) {
		cfg->stack_trace_depth = 1 + next(r) % 8;
		cfg->trace_sample = next(r) % 4;
	}
}

static void
gpa_open_with(struct run *r, bool safety, bool thread_safe, bool checks)
{
	beamalloc_gpa_config cfg;

	strict_open(r);
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = thread_safe;
	cfg.report = capture;
	if (checks)
		gpa_checks_config(r, &cfg);
	else {
		if (safety && next(r) % 4 == 0)
			cfg.stack_trace_depth = 1 + next(r) % 8;
		if (!safety && next(r) % 4 != 0)
			r->limit = (size_t)(1 + next(r) % 64) << 16;
	}
	cfg.memory_limit = r->limit;
	if (!safety)
		r->wide = beamalloc_wide_on(&r->backing);
	r->gpa = beamalloc_gpa_create(safety ? r->backing : r->wide, &cfg);
	CHECK(r, r->gpa != NULL, "gpa_create failed");
	r->a = beamalloc_gpa_allocator(r->gpa);
	nreports = 0;
}

static void
gpa_open(struct run *r)
{
	gpa_open_with(r, true, false, false);
}

static void
gpa_ts_open(struct run *r)
{
	gpa_open_with(r, false, true, false);
}

static void
gpa_checks_open(struct run *r)
{
	gpa_open_with(r, true, false, true);
}

static void
gpa_checks_ts_open(struct run *r)
{
	gpa_open_with(r, false, true, true);
}

/* gpa_mt, often: eight threads at once first make a block each and
 * free it, so that the GPA has the caches past which a thread's first
 * slots of a class come from a quarter of a shared slab (SHARE_CACHES in
 * lib/gpa/gpa.h); the hands take their caches after them. */
#define MT_WARM 8

static pthread_barrier_t mt_warm_bar;
/* One at a time, as the hands run: the strict backing is not
 * thread-safe.  Each also ends in its turn (main joins it before the
 * next may end), since an ending thread gives its cache back. */
static pthread_mutex_t mt_warm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mt_warm_cond = PTHREAD_COND_INITIALIZER;
static unsigned mt_warm_turn;

struct mt_warm_arg {
	struct run *r;
	unsigned id;
};

static void *
mt_warm(void *arg)
{
	struct mt_warm_arg *w = arg;
	void *p;

	pthread_mutex_lock(&mt_warm_lock);
	p = beamalloc_alloc(w->r->a, GPA_SMALL_MAX);
	pthread_mutex_unlock(&mt_warm_lock);
	pthread_barrier_wait(&mt_warm_bar);
	pthread_mutex_lock(&mt_warm_lock);
	while (mt_warm_turn != w->id)
		pthread_cond_wait(&mt_warm_cond, &mt_warm_lock);
	beamalloc_free(w->r->a, p, GPA_SMALL_MAX);
	pthread_mutex_unlock(&mt_warm_lock);
	return NULL;
}

static void
gpa_mt_open(struct run *r)
{
	struct mt_warm_arg w[MT_WARM];
	pthread_t th[MT_WARM];

	gpa_open_with(r, true, true, false);
	if (next(r) % 4 == 0)
		return;
	pthread_barrier_init(&mt_warm_bar, NULL, MT_WARM);
	mt_warm_turn = MT_WARM;
	for (unsigned t = 0; t < MT_WARM; t++) {
		w[t] = (struct mt_warm_arg){ r, t };
		if (pthread_create(&th[t], NULL, mt_warm, &w[t]) != 0) {
			fprintf(stderr, "fuzz model: pthread_create failed\n");
			abort();
		}
	}
	for (unsigned t = 0; t < MT_WARM; t++) {
		pthread_mutex_lock(&mt_warm_lock);
		mt_warm_turn = t;
		pthread_cond_broadcast(&mt_warm_cond);
		pthread_mutex_unlock(&mt_warm_lock);
		pthread_join(th[t], NULL);
	}
	pthread_barrier_destroy(&mt_warm_bar);
}

/* Over the 8-only backing, large blocks cannot be aligned beyond 8; the
 * backing (a foreign allocator) fails them without saying why, so the
 * errno may be ENOMEM as well as EINVAL. */
static enum expect
gpa_expect(struct run *r, size_t len, size_t align)
{
	if (len > GPA_SMALL_MAX || align > GPA_SMALL_MAX)
		return align > BEAMALLOC_MIN_ALIGN ? MAY_FAIL : MUST_OK;
	(void)r;
	return MUST_OK;
}

static enum expect
gpa_ts_expect(struct run *r, size_t len, size_t align)
{
	(void)align;
	return r->limit != 0 && r->live + len > r->limit ? MUST_ENOMEM :
	    MUST_OK;
}

static void
gpa_account(struct run *r)
{
	beamalloc_gpa_stats st;

	gpa_counts(r, r->live, &st);
	CHECK(r, st.peak_bytes >= st.live_bytes, "peak %zu below live %zu",
	    st.peak_bytes, st.live_bytes);
	CHECK(r, r->limit == 0 || st.live_bytes <= r->limit,
	    "live bytes %zu past the limit %zu", st.live_bytes, r->limit);
	if (r->wide.vtable == NULL)
		CHECK(r, st.backing_bytes == r->ta->live_bytes,
		    "GPA says it holds %zu backing bytes, the backing %zu",
		    st.backing_bytes, r->ta->live_bytes);
}

/* Every live block reported once as a leak, with its size. */
static void
gpa_check_leaks(struct run *r, size_t found, bool exact_sizes)
{
	size_t seen = 0;

	CHECK(r, found == r->nlive && nreports == r->nlive,
	    "leak check found %zu (%zu reports), model has %zu live", found,
	    nreports, r->nlive);
	for (size_t k = 0; k < nreports && k < MAX_REPORTS; k++) {
		const beamalloc_report *rp = &reports[k];
		int i;

		CHECK(r, rp->kind == BEAMALLOC_REPORT_LEAK, "leak check "
		    "reported a %s", beamalloc_report_kind_name(rp->kind));
		for (i = 0; i < SLOTS; i++)
			if (r->b[i].p == rp->addr && r->b[i].len > 0)
				break;
		CHECK(r, i < SLOTS, "leak reported at %p, no live block there",
		    rp->addr);
		CHECK(r, !exact_sizes || (rp->size == r->b[i].len &&
		    rp->align == r->b[i].align),
		    "leak at %p reported as %zu bytes at %zu, is %zu at %zu",
		    rp->addr, rp->size, rp->align, r->b[i].len, r->b[i].align);
		CHECK(r, exact_sizes || rp->size >= r->b[i].len,
		    "leak at %p reported as %zu bytes, is %zu", rp->addr,
		    rp->size, r->b[i].len);
		seen++;
	}
	CHECK(r, seen == r->nlive, "%zu distinct leaks, want %zu", seen,
	    r->nlive);
	nreports = 0;
}

/* A leak check scans every slot of every slab: one reset op in eight
 * (and every close) does it, the others check contents. */
static void
gpa_reset(struct run *r)
{
	if (next(r) % 8 != 0) {
		op_check_all(r);
		return;
	}
	r->what = "detect_leaks";
	nreports = 0;
	gpa_check_leaks(r, beamalloc_gpa_detect_leaks(r->gpa),
	    r->t->bad_frees & BAD_CHECKED);
}

static void
gpa_close(struct run *r)
{
	/* Free half, leak the rest: destroy must report exactly those. */
	for (int i = 0; i < SLOTS; i += 2)
		op_free(r, i, false);
	hands_down(r);
	gpa_account(r);
	r->what = "destroy";
	nreports = 0;
	gpa_check_leaks(r, beamalloc_gpa_destroy(r->gpa),
	    r->t->bad_frees & BAD_CHECKED);
	CHECK(r, r->ta->nblocks == 0 && r->ta->live_bytes == 0,
	    "destroy left %zu blocks, %zu bytes in the backing",
	    r->ta->nblocks, r->ta->live_bytes);
	CHECK(r, r->ta->bad_calls == 0, "destroy freed a wrong block");
}

/* arena_reset: the arena target whose reset op picks a reset mode and a
 * limit; the capacity kept is what the backing holds, within the limit. */
#define ARENA_FIRST_CHUNK ((size_t)4096)	/* documented in arena.c */

static void
arena_reset_modes(struct run *r)
{
	beamalloc_arena_reset_mode mode = (beamalloc_arena_reset_mode)(next(r) % 3);
	size_t limit = (size_t)next(r) << 12, cap, kept;

	op_check_all(r);
	cap = beamalloc_arena_capacity(r->arena);
	kept = beamalloc_arena_reset_with(r->arena, mode, limit);
	for (int i = 0; i < SLOTS; i++)
		set_block(r, i, NULL, 0, 0, 0);
	CHECK(r, kept == beamalloc_arena_capacity(r->arena),
	    "reset_with returned %zu, capacity is %zu", kept,
	    beamalloc_arena_capacity(r->arena));
	CHECK(r, mode != BEAMALLOC_ARENA_RETAIN_CAPACITY || kept == cap,
	    "retain_capacity changed the capacity from %zu to %zu", cap, kept);
	CHECK(r, mode != BEAMALLOC_ARENA_FREE_ALL || kept == ARENA_FIRST_CHUNK,
	    "free_all kept %zu bytes", kept);
	CHECK(r, mode != BEAMALLOC_ARENA_RETAIN_WITH_LIMIT ||
	    kept <= (limit > ARENA_FIRST_CHUNK ? limit : ARENA_FIRST_CHUNK),
	    "retain_with_limit %zu kept %zu bytes", limit, kept);
	arena_account(r);
}

/* pool over the strict backing: one item per block; a len above the
 * item size fails with ENOMEM, an alignment above the pool's with
 * EINVAL, and a pool that cannot grow fails once its items are live. */
static void
pool_open(struct run *r)
{
	strict_open(r);
	r->item_size = 1 + next(r) % 96;
	r->item_align = (size_t)1 << (next(r) % 6);
	r->preheat = next(r) % 48;
	r->growable = (next(r) & 1) != 0;
	r->pool = beamalloc_pool_create(r->backing, r->item_size,
	    r->item_align, r->preheat, r->growable);
	CHECK(r, r->pool != NULL, "pool_create failed");
	r->a = beamalloc_pool_allocator(r->pool);
}

static enum expect
pool_expect(struct run *r, size_t len, size_t align)
{
	if (align > r->item_align)
		return MUST_EINVAL;
	if (len > r->item_size)
		return MUST_ENOMEM;
	if (!r->growable && r->nlive >= r->preheat)
		return MUST_ENOMEM;
	return MUST_OK;
}

static void
pool_account(struct run *r)
{
	CHECK(r, r->ta->bad_calls == 0,
	    "the backing saw %zu frees naming a wrong block", r->ta->bad_calls);
	CHECK(r, beamalloc_pool_live(r->pool) == r->nlive,
	    "pool has %zu live items, model %zu blocks",
	    beamalloc_pool_live(r->pool), r->nlive);
	CHECK(r, r->growable || beamalloc_pool_capacity(r->pool) == r->preheat,
	    "fixed pool of %zu holds %zu items", r->preheat,
	    beamalloc_pool_capacity(r->pool));
	for (int i = 0; i < SLOTS; i++)
		CHECK(r, r->b[i].len <= r->item_size,
		    "block of %zu bytes in items of %zu", r->b[i].len,
		    r->item_size);
}

static void
pool_close(struct run *r)
{
	/* Leave half live: destroy gives every chunk back anyway. */
	for (int i = 0; i < SLOTS; i += 2)
		op_free(r, i, false);
	pool_account(r);
	r->what = "destroy";
	beamalloc_pool_destroy(r->pool);
	CHECK(r, r->ta->nblocks == 0 && r->ta->bad_calls == 0,
	    "destroy left %zu blocks in the backing", r->ta->nblocks);
}

/* stackfb: a buffer of up to 16 KiB at any residue, then wide over the
 * strict backing; the backing holds exactly the blocks outside it. */
#define STACKFB_CAP ((size_t)16 << 10)
static unsigned char stackfb_mem[STACKFB_CAP + 64] __attribute__((aligned(64)));

static void
stackfb_open(struct run *r)
{
	size_t len = (size_t)next(r) * 64, off = next(r) % 64;

	wide_open(r);
	r->wide = r->a;
	beamalloc_stackfb_init(&r->stackfb, stackfb_mem + off, len, r->wide);
	r->a = beamalloc_stackfb_allocator(&r->stackfb);
}

static void
stackfb_account(struct run *r)
{
	const beamalloc_fixed *fb = &r->stackfb.fixed;
	size_t host = 0, blocks = 0;

	for (int i = 0; i < SLOTS; i++) {
		const struct block *b = &r->b[i];

		if (b->p == NULL || b->len == 0)
			continue;
		if (b->p >= fb->start && b->p < fb->end) {
			CHECK(r, b->p + b->len <= fb->ptr,
			    "buffer block [%p, +%zu) past the bump pointer %p",
			    (void *)b->p, b->len, (void *)fb->ptr);
			continue;
		}
		host += wide_host(b->len, b->align);
		blocks++;
	}
	CHECK(r, r->ta->bad_calls == 0,
	    "the backing saw %zu calls naming a wrong block", r->ta->bad_calls);
	CHECK(r, r->ta->live_bytes == host && r->ta->nblocks == blocks,
	    "backing holds %zu bytes in %zu blocks, model %zu in %zu",
	    r->ta->live_bytes, r->ta->nblocks, host, blocks);
}

static void
stackfb_close(struct run *r)
{
	free_all(r);
	stackfb_account(r);
}

/* locked: the arena target behind the lock (one thread here; t/locked
 * shares it between threads). */
static void
locked_open(struct run *r)
{
	arena_open(r);
	CHECK(r, beamalloc_locked_init(&r->locked, r->a) == 0,
	    "locked_init failed");
	r->a = beamalloc_locked_allocator(&r->locked);
}

static void
locked_close(struct run *r)
{
	arena_close(r);
	beamalloc_locked_destroy(&r->locked);
}

/* logging: wide over the strict backing, logged; the entries must add up
 * to the blocks the model has live. */
static void
log_entry(void *user, const beamalloc_log_entry *e)
{
	struct run *r = user;

	CHECK(r, strcmp(e->scope, "fuzz") == 0 && e->len > 0 &&
	    e->align > 0, "log entry: scope %s, len %zu, align %zu",
	    e->scope, e->len, e->align);
	if (e->kind == BEAMALLOC_LOG_ALLOC && e->result != NULL)
		r->logged_live++;
	else if (e->kind == BEAMALLOC_LOG_FREE)
		r->logged_live--;
	else
		CHECK(r, e->kind != BEAMALLOC_LOG_ALLOC ||
		    e->error == EINVAL || e->error == ENOMEM,
		    "failed alloc logged with errno %d", e->error);
	errno = 0;	/* must not reach the caller */
}

static void
logging_open(struct run *r)
{
	wide_open(r);
	r->wide = r->a;
	beamalloc_logging_init(&r->logging, r->wide, "fuzz", log_entry, r);
	r->a = beamalloc_logging_allocator(&r->logging);
}

static void
logging_account(struct run *r)
{
	wide_account(r);
	CHECK(r, r->logged_live == r->nlive,
	    "the log counts %zu live blocks, model %zu", r->logged_live,
	    r->nlive);
}

static void
logging_close(struct run *r)
{
	free_all(r);
	logging_account(r);
}

static const struct target targets[] = {
	{ .name = "beam", .open = beam_open, .close = base_close,
	  .reset = free_all, .account = base_account, .max_align = 8,
	  .einval_above = true, .no_grow = true, .resize_keeps_host = true },
	{ .name = "libc", .open = libc_open, .close = base_close,
	  .reset = free_all, .account = base_account,
	  .max_align = _Alignof(max_align_t), .einval_above = true,
	  .no_grow = true, .resize_keeps_host = true },
	{ .name = "wide", .open = wide_open, .close = wide_close,
	  .reset = free_all, .account = wide_account, .host_of = wide_host,
	  .max_align = MAX_LEN, .einval_above = true },
	{ .name = "wide_gpa", .open = wide_gpa_open, .close = wide_gpa_close,
	  .reset = free_all, .account = wide_gpa_account,
	  .host_of = wide_gpa_host, .max_align = MAX_LEN,
	  .einval_above = true },
	{ .name = "arena", .open = arena_open, .close = arena_close,
	  .reset = arena_reset, .account = arena_account,
	  .max_align = MAX_LEN, .einval_above = true },
	{ .name = "fixed", .open = fixed_open, .close = fixed_close,
	  .reset = fixed_reset, .account = fixed_account,
	  .expect_alloc = fixed_expect, .max_align = MAX_LEN,
	  .einval_above = true },
	{ .name = "failing", .open = failing_open, .close = failing_close,
	  .reset = free_all, .account = failing_account,
	  .expect_alloc = failing_expect,
	  .resize_must_fail = failing_resize_must_fail, .host_of = wide_host,
	  .max_align = MAX_LEN, .einval_above = true },
	{ .name = "arena_reset", .open = arena_open, .close = arena_close,
	  .reset = arena_reset_modes, .account = arena_account,
	  .max_align = MAX_LEN, .einval_above = true },
	{ .name = "pool", .open = pool_open, .close = pool_close,
	  .reset = free_all, .account = pool_account,
	  .expect_alloc = pool_expect, .max_align = MAX_LEN,
	  .einval_above = true, .resize_keeps_host = true },
	{ .name = "stackfb", .open = stackfb_open, .close = stackfb_close,
	  .reset = free_all, .account = stackfb_account,
	  .host_of = wide_host, .max_align = MAX_LEN, .einval_above = true },
	{ .name = "locked", .open = locked_open, .close = locked_close,
	  .reset = arena_reset, .account = arena_account,
	  .max_align = MAX_LEN, .einval_above = true },
	{ .name = "logging", .open = logging_open, .close = logging_close,
	  .reset = free_all, .account = logging_account,
	  .host_of = wide_host, .max_align = MAX_LEN, .einval_above = true },
	{ .name = "gpa", .open = gpa_open, .close = gpa_close,
	  .reset = gpa_reset, .account = gpa_account,
	  .expect_alloc = gpa_expect, .max_align = MAX_LEN,
	  .einval_above = true, .bad_frees = BAD_DOUBLE | BAD_CHECKED },
	{ .name = "gpa_ts", .open = gpa_ts_open, .close = gpa_close,
	  .reset = gpa_reset, .account = gpa_account,
	  .expect_alloc = gpa_ts_expect, .max_align = MAX_LEN,
	  .einval_above = true, .bad_frees = BAD_DOUBLE },
	{ .name = "gpa_checks", .open = gpa_checks_open, .close = gpa_close,
	  .reset = gpa_reset, .account = gpa_account,
	  .expect_alloc = gpa_expect, .max_align = MAX_LEN,
	  .einval_above = true, .bad_frees = BAD_DOUBLE | BAD_CHECKED },
	{ .name = "gpa_checks_ts", .open = gpa_checks_ts_open,
	  .close = gpa_close, .reset = gpa_reset, .account = gpa_account,
	  .expect_alloc = gpa_ts_expect, .max_align = MAX_LEN,
	  .einval_above = true, .bad_frees = BAD_DOUBLE },
	{ .name = "gpa_mt", .open = gpa_mt_open, .close = gpa_close,
	  .reset = gpa_reset, .account = gpa_account,
	  .expect_alloc = gpa_expect, .max_align = MAX_LEN,
	  .einval_above = true, .bad_frees = BAD_DOUBLE | BAD_CHECKED,
	  .hands = true },
};

const int fz_ntargets = (int)(sizeof(targets) / sizeof(targets[0]));

const char *
fz_target_name(int target)
{
	return targets[target].name;
}

int
fz_target_find(const char *name)
{
	for (int i = 0; i < fz_ntargets; i++)
		if (strcmp(targets[i].name, name) == 0)
			return i;
	return -1;
}

void
fz_run(int target, const uint8_t *data, size_t size)
{
	struct run r;

	pattern_init();
	memset(&r, 0, sizeof(r));
	r.t = &targets[target];
	r.in = data;
	r.end = data + size;
	r.what = "open";
	r.t->open(&r);
	while (r.in < r.end) {
		step(&r);
		r.t->account(&r);
		r.op++;
		fz_ops++;
	}
	r.what = "close";
	r.t->close(&r);
}
