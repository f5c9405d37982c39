/*
 * gpa_regions.c - the GPA's regions and their partial slabs.
 *
 * A region is a block of the backing's with whole 32 KiB frames at 32
 * KiB alignment (a slab of a class up to 4 KiB is one); the unaligned
 * bytes before and after them are parts of the frames on either side,
 * and become partial slabs: a class's first slab goes to one.  A
 * backing that places each region where the test says (a large block
 * just below the first, every other block below that) checks that:
 *   - first slabs go to the tail, then the head, then whole frames;
 *   - a partial slab's slots stay inside the region;
 *   - another block of the backing in a partial slab's frame, below its
 *     slots (here a large block), is freed as what it is, with no report;
 *     a pointer there that the GPA never gave out is reported, ignored;
 *   - a region's head slab is not made in a frame that another region's
 *     tail slab already has;
 *   - leak detection counts blocks in partial slabs exactly, and
 *     everything goes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define FRAME ((uintptr_t)32768)
#define POOL (40 * FRAME)
#define NBLK 4096
#define LARGE 17000

/* The backing, over an aligned pool: regions where the test says, a
 * large block where it says, anything else from the bottom up; every
 * block recorded. */
static struct {
	unsigned char *pool;
	uintptr_t bump;
	uintptr_t at[4];		/* where regions 0, 1, ... go */
	uintptr_t large_at;		/* and the large block */
	unsigned nregions;
	uintptr_t region[4];		/* and their length */
	size_t rlen[4];
	struct {
		uintptr_t p;
		size_t len;
		bool live;
	} blk[NBLK];
	size_t nblk, live, bad;
} bk;

static void *
bk_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	uintptr_t p;

	(void)ctx, (void)ra;
	if (align > 8 || bk.nblk == NBLK)
		return NULL;
	if (len % FRAME == FRAME - 8 && bk.nregions < 4 &&
	    bk.at[bk.nregions] != 0) {
		/* A region (n frames and a frame less 8 bytes): where
		 * told. */
		p = bk.at[bk.nregions];
		bk.region[bk.nregions] = p;
		bk.rlen[bk.nregions++] = len;
	} else if (len == LARGE) {
		p = bk.large_at;
	} else {
		/* Anything else below the large block. */
		p = bk.bump;
		bk.bump = (p + len + 7) & ~(uintptr_t)7;
		if (bk.bump > bk.large_at)
			return NULL;
	}
	bk.blk[bk.nblk].p = p;
	bk.blk[bk.nblk].len = len;
	bk.blk[bk.nblk++].live = true;
	bk.live += len;
	return (void *)p;
}

static void
bk_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	for (size_t i = 0; i < bk.nblk; i++)
		if (bk.blk[i].p == (uintptr_t)mem && bk.blk[i].live) {
			if (bk.blk[i].len != len)
				bk.bad++;
			bk.blk[i].live = false;
			bk.live -= bk.blk[i].len;
			return;
		}
	bk.bad++;
}

static bool
bk_freed(uintptr_t p)
{
	for (size_t i = 0; i < bk.nblk; i++)
		if (bk.blk[i].p == p)
			return !bk.blk[i].live;
	return false;
}

static bool
bk_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static void *
bk_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static const beamalloc_vtable bk_vt = { bk_alloc, bk_resize, bk_remap,
	bk_free };

static size_t reports[9];
static uintptr_t last_addr;

static void
on_report(void *user, const beamalloc_report *r)
{
	(void)user;
	if (r->kind < 9)
		reports[r->kind]++;
	last_addr = (uintptr_t)r->addr;
}

static size_t
nreports(void)
{
	size_t n = 0;

	for (int k = 0; k < 9; k++)
		n += reports[k];
	return n;
}

static bool
in(uintptr_t p, uintptr_t lo, uintptr_t hi)
{
	return p >= lo && p < hi;
}

/* n blocks of len, all written: how many lie in [lo, hi), and whether
 * none lies in the frame's bytes that are not the region's. */
static size_t
fill(beamalloc_allocator a, size_t len, void **out, size_t n, uintptr_t lo,
    uintptr_t hi, bool *clean)
{
	uintptr_t frame = lo & ~(FRAME - 1);
	size_t k = 0;

	*clean = true;
	for (size_t i = 0; i < n; i++) {
		uintptr_t p = (uintptr_t)(out[i] = beamalloc_alloc(a, len));

		if (out[i] == NULL) {
			*clean = false;
			continue;
		}
		memset(out[i], 0xa5, len);
		if (in(p, lo, hi))
			k++;
		else if (in(p, frame, frame + FRAME))
			*clean = false;
	}
	return k;
}

static void
run(bool safety)
{
	const char *on = safety ? "safety on" : "safety off";
	beamalloc_allocator backing = { NULL, &bk_vt };
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	uintptr_t r0, frame0, tail0, end0, base1;
	static void *b64[1500], *b128[1000];
	size_t n64, n128, before, k;
	unsigned char *p256, *p320, *p512, *p1024, *large;
	void *p8k[8];
	bool clean;

	memset(&bk, 0, sizeof(bk));
	bk.pool = aligned_alloc(FRAME, POOL);
	if (bk.pool == NULL)
		bail("out of memory");
	/* The large block takes the bottom 17000 bytes of a frame, and
	 * region 0 (two whole frames) starts right after it: its head is
	 * the rest of that frame, its tail 17016 bytes of the frame past
	 * its whole ones.  Region 1 (four) starts right after region 0, so
	 * its head is the rest of region 0's tail frame; its tail is 17016
	 * bytes too.  Region 2 further up. */
	frame0 = (uintptr_t)bk.pool + 8 * FRAME;
	bk.bump = (uintptr_t)bk.pool;
	bk.large_at = frame0;
	bk.at[0] = frame0 + 17024;
	bk.at[1] = frame0 + 3 * FRAME + 17024;
	bk.at[2] = frame0 + 10 * FRAME;
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = true;
	cfg.decay_ms = 0;
	cfg.report = on_report;
	memset(reports, 0, sizeof(reports));
	g = beamalloc_gpa_create(backing, &cfg);
	if (g == NULL)
		bail("no GPA");
	a = beamalloc_gpa_allocator(g);

	/* First slabs: the tail, the head, then the whole frames. */
	b64[0] = beamalloc_alloc(a, 64);
	r0 = bk.region[0];
	end0 = r0 + bk.rlen[0];
	tail0 = frame0 + 3 * FRAME;
	ok(bk.nregions == 1 && r0 == bk.at[0] && bk.rlen[0] == 3 * FRAME - 8,
	    "%s: the first region is two frames (at %#lx)", on,
	    (unsigned long)r0);
	ok(in((uintptr_t)b64[0], tail0, end0),
	    "%s: a class's first slab is the region's tail (%p in %#lx..%#lx)",
	    on, b64[0], (unsigned long)tail0, (unsigned long)end0);
	b128[0] = beamalloc_alloc(a, 128);
	ok(in((uintptr_t)b128[0], r0, frame0 + FRAME),
	    "%s: the next class's, the region's head (%p)", on, b128[0]);
	p256 = beamalloc_alloc(a, 256);
	p320 = beamalloc_alloc(a, 320);
	ok(in((uintptr_t)p256, frame0 + FRAME, frame0 + 2 * FRAME) &&
	    in((uintptr_t)p320, frame0 + 2 * FRAME, tail0),
	    "%s: the next two classes', the whole frames (%p, %p)", on,
	    (void *)p256, (void *)p320);

	/* Region 1's head frame is region 0's tail's: not made twice (its
	 * tail goes first, then, without the check, its head). */
	p512 = beamalloc_alloc(a, 512);
	p1024 = beamalloc_alloc(a, 1024);
	base1 = tail0 + FRAME;
	ok(bk.nregions == 2 && bk.region[1] == bk.at[1],
	    "%s: a second region, starting in the first one's tail frame", on);
	ok(p512 != NULL && in((uintptr_t)p512, base1 + 4 * FRAME,
	    bk.region[1] + bk.rlen[1]),
	    "%s: the next class's first slab is its tail (%p)", on,
	    (void *)p512);
	ok(p1024 != NULL && in((uintptr_t)p1024, base1, base1 + FRAME),
	    "%s: the next, a whole frame: not its head, in a frame taken (%p)",
	    on, (void *)p1024);
	/* A class above 4 KiB: slabs of two frames, at twice their
	 * alignment. */
	for (k = 0; k < 8; k++)
		p8k[k] = beamalloc_alloc(a, 8192);
	clean = true;
	for (k = 0; k < 8; k++)
		clean &= p8k[k] != NULL && ((uintptr_t)p8k[k] & ~(2 * FRAME -
		    1)) == ((uintptr_t)p8k[0] & ~(2 * FRAME - 1));
	ok(clean, "%s: 8 blocks of 8 KiB in one 64 KiB-aligned slab (%p)", on,
	    p8k[0]);
	for (k = 0; k < 8; k++)
		beamalloc_free(a, p8k[k], 8192);

	/* A large block from the backing, in the head slab's frame. */
	large = beamalloc_alloc(a, LARGE);
	ok(large != NULL && in((uintptr_t)large, frame0, r0 - LARGE + 1),
	    "%s: a large block lies in the head slab's frame, below the region "
	    "(%p)", on, (void *)large);
	if (large != NULL)
		memset(large, 0x5a, LARGE);
	before = nreports();
	beamalloc_free(a, large + 4096, 64);
	ok(nreports() == before + 1 &&
	    reports[BEAMALLOC_REPORT_INVALID_FREE] == 1 &&
	    last_addr == (uintptr_t)large + 4096,
	    "%s: a pointer there never given out: one invalid free, naming it",
	    on);
	ok(large != NULL && large[4096] == 0x5a && large[LARGE - 1] == 0x5a &&
	    !bk_freed((uintptr_t)large),
	    "%s: ... ignored, the large block intact", on);
	beamalloc_free(a, large, LARGE);
	/* Kept for the next large block until a trim (beamalloc_gpa(3)). */
	beamalloc_gpa_trim(g);
	ok(nreports() == before + 1 && bk_freed((uintptr_t)large),
	    "%s: the large block frees as one, no report, back to the backing "
	    "at a trim", on);

	/* Partial slabs fill, within the region: the tail's 17016 bytes,
	 * the head's 15744 less the region's header. */
	n64 = 1500;
	n128 = 1000;
	k = fill(a, 64, b64 + 1, n64 - 1, tail0, end0, &clean);
	ok(clean && k + 1 >= 17016 / 64,
	    "%s: %zu blocks of 64 B in the tail slab, none past the region", on,
	    k + 1);
	k = fill(a, 128, b128 + 1, n128 - 1, r0, frame0 + FRAME, &clean);
	ok(clean && k + 1 >= (15744 - 512) / 128,
	    "%s: %zu blocks of 128 B in the head slab, none below the region",
	    on, k + 1);
	ok(nreports() == before + 1, "%s: no other report", on);

	/* Exact leaks, then all back. */
	is_size(beamalloc_gpa_detect_leaks(g), n64 + n128 + 4,
	    "%s: leak detection counts every block, in partial slabs too", on);
	for (size_t i = 0; i < n64; i++)
		beamalloc_free(a, b64[i], 64);
	for (size_t i = 0; i < n128; i++)
		beamalloc_free(a, b128[i], 128);
	beamalloc_free(a, p256, 256);
	beamalloc_free(a, p320, 320);
	beamalloc_free(a, p512, 512);
	beamalloc_free(a, p1024, 1024);
	is_size(beamalloc_gpa_detect_leaks(g), 0, "%s: all freed: no leak", on);
	is_size(nreports(), before + 1 + n64 + n128 + 4,
	    "%s: only those reports", on);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: destroy finds none", on);
	ok(bk.live == 0 && bk.bad == 0,
	    "%s: every backing block back, named exactly (%zu left)", on,
	    bk.live);
	free(bk.pool);
}

int
main(void)
{
	plan(2 * 20);
	run(false);
	run(true);
	return done_testing();
}
