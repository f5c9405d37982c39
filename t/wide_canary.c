/*
 * wide_canary.c - the wide allocator over a GPA with canary on checks
 * the slack after each over-aligned block (issue 16, item 5): a 1-byte
 * overflow is reported at free, resize and remap, naming the block's
 * address and length, and so is one of 32 bytes, once (not again by the
 * GPA as an overflow of the backing block); nothing is reported without
 * one, nor over a GPA without canary.  The overflows are planted (plant.h): under a memory
 * checker too, it is the wide allocator's check that must see them.
 */
#include "config.h"

#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "plant.h"

#define RUNS 1000

static size_t nseen;
static beamalloc_report seen;

static void
record(void *user, const beamalloc_report *r)
{
	(void)user;
	nseen++;
	seen = *r;
}

/* Exactly one overflow report since the last call, naming mem and len. */
static bool
overflow_reported(const void *mem, size_t len)
{
	bool got = nseen == 1 && seen.kind == BEAMALLOC_REPORT_OVERFLOW &&
	    seen.addr == mem && seen.size == len;

	nseen = 0;
	return got;
}

static bool
none_reported(void)
{
	bool got = nseen == 0;

	nseen = 0;
	return got;
}

static beamalloc_gpa *
make(bool canary)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.canary = canary;
	cfg.report = record;	/* the GPA's own findings count too */
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

/* RUNS blocks of len bytes at align, each overflowing by over bytes (0:
 * none): how many frees reported exactly what they should (one overflow,
 * when caught, else nothing). */
static size_t
at_free(beamalloc_allocator w, size_t len, size_t align, size_t over,
    bool caught)
{
	size_t good = 0;

	for (int i = 0; i < RUNS; i++) {
		unsigned char *p = beamalloc_alloc_aligned(w, len, align);

		if (p == NULL)
			break;
		memset(p, 0x5a, len);
		if (over != 0)
			plant(p + len, over, 0x5a);
		beamalloc_free_aligned(w, p, len, align);
		good += over != 0 && caught ? overflow_reported(p, len) :
		    none_reported();
	}
	return good;
}

static void
resizes(beamalloc_allocator w, size_t align)
{
	unsigned char *p = beamalloc_alloc_aligned(w, 100, align), *old;
	bool shrunk;

	if (p == NULL) {
		ok(0, "%zu: alloc", align);
		return;
	}
	/* Overflow, then a resize: reported there, with the old length. */
	plant(p + 100, 1, 0);
	shrunk = beamalloc_resize(w, p, 100, align, 50);
	ok(overflow_reported(p, 100), "%zu: overflow reported at resize",
	    align);
	ok(shrunk, "%zu: the resize went on", align);
	/* The new length's canary is set over the byte: a free is quiet... */
	beamalloc_free_aligned(w, p, shrunk ? 50 : 100, align);
	ok(none_reported(), "%zu: no report after a clean resize", align);
	/* ...and an overflow past the new length is caught. */
	p = beamalloc_alloc_aligned(w, 100, align);
	if (p == NULL || !beamalloc_resize(w, p, 100, align, 40)) {
		ok(0, "%zu: alloc and resize", align);
		return;
	}
	ok(none_reported(), "%zu: no report at a clean resize", align);
	plant(p + 40, 1, 0);
	beamalloc_free_aligned(w, p, 40, align);
	ok(overflow_reported(p, 40), "%zu: overflow past the new length "
	    "reported at free", align);
	/* A remap (realloc) checks the old tail and sets the new one. */
	p = beamalloc_alloc_aligned(w, 100, align);
	if (p == NULL) {
		ok(0, "%zu: alloc", align);
		return;
	}
	plant(p + 100, 1, 0);
	old = p;
	p = beamalloc_realloc(w, p, 100, align, 3000);
	ok(p != NULL && overflow_reported(old, 100),
	    "%zu: overflow reported at realloc", align);
	if (p == NULL)
		return;
	beamalloc_free_aligned(w, p, 3000, align);
	ok(none_reported(), "%zu: no report after the realloc", align);
}

int
main(void)
{
	static const size_t aligns[] = { 4096, 65536 };
	beamalloc_gpa *g = make(true), *plain = make(false);
	beamalloc_allocator a, pa, w, pw;

	plan(2 * 10 + 1);
	if (g == NULL || plain == NULL)
		bail("GPA");
	a = beamalloc_gpa_allocator(g);
	pa = beamalloc_gpa_allocator(plain);
	w = beamalloc_wide_on(&a);
	pw = beamalloc_wide_on(&pa);
	beamalloc_report_set_default(record, NULL, false);
	for (size_t i = 0; i < 2; i++) {
		size_t al = aligns[i];

		is_size(at_free(w, 24, al, 1, true), RUNS,
		    "%zu: 1-byte overflow of 24 B reported at free, with address "
		    "and size, in %d of %d", al, RUNS, RUNS);
		is_size(at_free(w, 100, al, 32, true), RUNS,
		    "%zu: 32-byte overflow of 100 B reported once, as the wide "
		    "block's, in %d of %d", al, RUNS, RUNS);
		is_size(at_free(w, 24, al, 0, true), RUNS,
		    "%zu: no report without an overflow (%d runs)", al, RUNS);
		resizes(w, al);
	}
	/* (24 B at 4096 from an 8 KiB slot: the byte after is the slot's.) */
	is_size(at_free(pw, 24, 4096, 1, false), RUNS,
	    "over a GPA without canary: nothing checked, nothing reported");
	beamalloc_report_set_default(NULL, NULL, false);
	beamalloc_gpa_destroy(g);
	beamalloc_gpa_destroy(plain);
	return 0;
}
