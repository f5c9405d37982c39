/*
 * refuse.c - resize, remap and realloc of a block the allocator refuses
 * (freed, foreign, given the wrong length): NULL/false with EINVAL, one
 * report, nothing copied, freed or handed out twice; "cannot do it in
 * place" (NULL with any other errno) still makes realloc allocate, copy
 * and free.  The rule a custom allocator follows is tested on one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "beamalloc.h"
#include "tap.h"

static unsigned long kinds[16];

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	if ((unsigned)r->kind < 16)
		kinds[r->kind]++;
}

static unsigned long
nall(void)
{
	unsigned long n = 0;

	for (int k = 0; k < 16; k++)
		n += kinds[k];
	return n;
}

static beamalloc_gpa *
make_gpa(bool safety, size_t limit)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.memory_limit = limit;
	cfg.report = count_report;
	memset(kinds, 0, sizeof(kinds));
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

static size_t
live_blocks(beamalloc_gpa *g)
{
	beamalloc_gpa_stats st;

	beamalloc_gpa_get_stats(g, &st);
	return st.live_blocks;
}

/* An address nothing is mapped at. */
static void *
unmapped(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap");
	munmap(p, (size_t)page);
	return p;
}

/* A freed block (small and large), with safety off and on. */
static void
freed_block(bool safety, size_t len)
{
	beamalloc_gpa *g = make_gpa(safety, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	const char *s = safety ? "safety on" : "safety off";
	void *p = beamalloc_alloc(a, len), *q, *r1, *r2;

	beamalloc_free(a, p, len);
	errno = 0;
	q = beamalloc_realloc(a, p, len, 8, 2 * len);
	ok(q == NULL && errno == EINVAL, "%s, %zu B: realloc of a freed "
	    "block is NULL with EINVAL (got %p, errno %d)", s, len, q, errno);
	is_int(kinds[BEAMALLOC_REPORT_DOUBLE_FREE], 1, "%s, %zu B: reported "
	    "once, as a double free", s, len);
	errno = 0;
	ok(beamalloc_remap(a, p, len, 8, 2 * len) == NULL && errno == EINVAL,
	    "%s, %zu B: remap of it: NULL, EINVAL", s, len);
	errno = 0;
	ok(!beamalloc_resize(a, p, len, 8, len / 2) && errno == EINVAL,
	    "%s, %zu B: resize of it: false, EINVAL", s, len);
	is_int(nall(), 3, "%s, %zu B: one report per call", s, len);
	/* Had realloc given the freed block back, it would be handed out
	 * again here. */
	r1 = beamalloc_alloc(a, len);
	r2 = beamalloc_alloc(a, len);
	ok(r1 != NULL && r2 != NULL && r1 != r2, "%s, %zu B: the next two "
	    "allocations are two blocks", s, len);
	is_size(live_blocks(g), 2, "%s, %zu B: 2 live blocks", s, len);
	beamalloc_free(a, r1, len);
	beamalloc_free(a, r2, len);
	is_size(beamalloc_gpa_destroy(g), 0, "%s, %zu B: nothing leaked", s,
	    len);
}

/* The wrong old length: the block stays live and untouched. */
static void
wrong_length(size_t len, size_t wrong)
{
	beamalloc_gpa *g = make_gpa(true, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, len), *q;
	size_t bad = 0;

	memset(p, 0x3c, len);
	errno = 0;
	q = beamalloc_realloc(a, p, wrong, 8, 4 * len);
	ok(q == NULL && errno == EINVAL, "%zu B given as %zu: realloc is "
	    "NULL with EINVAL", len, wrong);
	is_int(kinds[BEAMALLOC_REPORT_SIZE_MISMATCH], 1, "%zu B given as "
	    "%zu: one size-mismatch report", len, wrong);
	is_int(nall(), 1, "%zu B given as %zu: and nothing else", len, wrong);
	for (size_t i = 0; i < len; i++)
		bad += p[i] != 0x3c;
	ok(bad == 0 && live_blocks(g) == 1, "%zu B given as %zu: the block "
	    "is still live, contents intact, no new block", len, wrong);
	beamalloc_free(a, p, len);
	is_size(beamalloc_gpa_destroy(g), 0, "%zu B given as %zu: nothing "
	    "leaked", len, wrong);
}

/* A pointer the GPA never gave, at an address nothing is mapped at. */
static void
foreign(bool safety)
{
	beamalloc_gpa *g = make_gpa(safety, 0);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	void *p = unmapped(), *q;

	errno = 0;
	q = beamalloc_realloc(a, p, 64, 8, 256);
	ok(q == NULL && errno == EINVAL, "safety %s: realloc of an unmapped "
	    "foreign pointer is NULL with EINVAL, no copy", safety ? "on" :
	    "off");
	is_int(kinds[BEAMALLOC_REPORT_INVALID_FREE], 1, "safety %s: one "
	    "invalid-free report", safety ? "on" : "off");
	is_size(live_blocks(g), 0, "safety %s: nothing allocated for it",
	    safety ? "on" : "off");
	is_size(beamalloc_gpa_destroy(g), 0, "safety %s: nothing leaked",
	    safety ? "on" : "off");
}

/* Out of memory stays ENOMEM, and the block is kept. */
static void
limit(void)
{
	beamalloc_gpa *g = make_gpa(true, 4096);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	unsigned char *p = beamalloc_alloc(a, 100), *q;

	memset(p, 7, 100);
	errno = 0;
	q = beamalloc_realloc(a, p, 100, 8, 8192);
	ok(q == NULL && errno == ENOMEM && p[99] == 7 && live_blocks(g) == 1,
	    "past the memory limit: NULL with ENOMEM, the block kept");
	is_int(nall(), 0, "past the memory limit: no report");
	q = beamalloc_realloc(a, p, 100, 8, 1000);
	ok(q != NULL && q[0] == 7 && q[99] == 7, "within it: realloc copies "
	    "(another class)");
	beamalloc_free(a, q, 1000);
	is_size(beamalloc_gpa_destroy(g), 0, "limit: nothing leaked");
}

/* ------------------------------------------------------------------------
 * The rule for custom allocators: a remap that refuses sets EINVAL
 * ---------------------------------------------------------------------- */

struct custom {
	int remap_errno;	/* -1: leave errno alone */
	unsigned allocs, frees;
};

static void *
c_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	struct custom *c = ctx;

	(void)align, (void)ra;
	c->allocs++;
	return malloc(len);
}

static void *
c_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	struct custom *c = ctx;

	(void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	if (c->remap_errno >= 0)
		errno = c->remap_errno;
	return NULL;
}

static bool
c_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	return c_remap(ctx, mem, len, align, new_len, ra) != NULL;
}

static void
c_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	struct custom *c = ctx;

	(void)len, (void)align, (void)ra;
	c->frees++;
	free(mem);
}

static const beamalloc_vtable c_vtable = { c_alloc, c_resize, c_remap,
	c_free };

static void
custom(void)
{
	struct custom c = { .remap_errno = EINVAL };
	beamalloc_allocator a = { &c, &c_vtable };
	char *p = beamalloc_alloc(a, 16), *q;

	strcpy(p, "fifteen chars..");
	c.allocs = 0;
	errno = 0;
	q = beamalloc_realloc(a, p, 16, 8, 64);
	ok(q == NULL && errno == EINVAL && c.allocs == 0 && c.frees == 0,
	    "custom remap refusing (NULL, EINVAL): realloc is NULL with "
	    "EINVAL, allocates and frees nothing");
	errno = 0;
	ok(!beamalloc_resize(a, p, 16, 8, 32) && errno == EINVAL,
	    "custom resize refusing: false with EINVAL");
	c.remap_errno = -1;
	errno = EINVAL;		/* stale, from an earlier call */
	q = beamalloc_realloc(a, p, 16, 8, 64);
	ok(q != NULL && strcmp(q, "fifteen chars..") == 0 && c.allocs == 1 &&
	    c.frees == 1, "custom remap that cannot (errno untouched, a "
	    "stale EINVAL before): realloc allocates, copies, frees");
	is_int(errno, EINVAL, "and on success errno is as it was");
	errno = 0;
	ok(!beamalloc_resize(a, q, 64, 8, 128) && errno == ENOMEM,
	    "custom resize that cannot: false with ENOMEM");
	c.remap_errno = ENOMEM;
	q = beamalloc_realloc(a, q, 64, 8, 128);
	ok(q != NULL && c.allocs == 2 && c.frees == 2, "custom remap "
	    "failing with ENOMEM: realloc still tries alloc+copy+free");
	beamalloc_free(a, q, 128);
}

int
main(void)
{
	plan(4 * 8 + 2 * 5 + 2 * 4 + 4 + 6);
	freed_block(false, 64);
	freed_block(true, 64);
	freed_block(false, 40000);
	freed_block(true, 40000);
	wrong_length(24, 100);
	wrong_length(30000, 40000);
	foreign(false);
	foreign(true);
	limit();
	custom();
	return done_testing();
}
