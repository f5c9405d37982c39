/*
 * gpa_partial.c - a block of the backing's that shares a 32 KiB frame with
 * a partial slab (a large block just below a region, as a heap places
 * them) is freed and resized without reading that slab's header or
 * records.  Another thread may be making the slab or giving it back (a
 * trim frees its header) while the block is freed: a review found frees
 * that read the header there (the memo's fill, the general path's slot
 * lookup) and records (the fast free, through a memo the slab's own slots
 * had filled), with a reproducer under ThreadSanitizer.
 *
 * White-box and made, not hoped for: the backing maps every small block on
 * pages of its own, so that the partial slab's header and records can be
 * made unreadable while the large block is freed; a read of them is a
 * SIGSEGV.  In a child process, for each configuration.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "beamalloc.h"
#include "gpa/gpa.h"
#include "child.h"
#include "pages.h"
#include "tap.h"

#define FRAME ((uintptr_t)32768)
#define LARGE 17000
#define POOL (16 * FRAME)

/* ------------------------------------------------------------------------
 * The backing: the first region 17024 bytes into a frame, the large block
 * below it in that frame, any other block on pages of its own
 * ---------------------------------------------------------------------- */

static unsigned char *pool;
static uintptr_t region_at, large_at;
static size_t live;

static void *
bk_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	(void)ctx, (void)ra;
	if (align > PAGE)
		return NULL;
	if (len % FRAME == FRAME - 8 && region_at != 0) {
		p = (void *)region_at;
		region_at = 0;		/* one region here; any next one mapped */
	} else if (len == LARGE && large_at != 0) {
		p = (void *)large_at;
		large_at = 0;
	} else if ((p = pages_map(len, PROT_READ | PROT_WRITE)) == NULL)
		return NULL;
	live += len;
	return p;
}

static void
bk_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	live -= len;
	if ((uintptr_t)mem - (uintptr_t)pool >= POOL)
		munmap(mem, pages(len));
}

static const beamalloc_vtable bk_vt = { bk_alloc, pages_resize,
	pages_remap, bk_free };

/* ------------------------------------------------------------------------
 * The child
 * ---------------------------------------------------------------------- */

static beamalloc_allocator A;
static unsigned char *big;
static size_t nreports;

static void
on_report(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	nreports++;
}

/* The slab's header and records, unreadable (or readable again). */
static int
seal(beamalloc_gpa *g, void *slot, bool on)
{
	struct where w;
	struct slab *s;
	static uintptr_t lo, hi;

	if (on) {
		if (!slab_find(g, (uintptr_t)slot, &w))
			return -1;
		s = slab_of(w.recs);
		lo = (uintptr_t)s->meta & ~(uintptr_t)(PAGE - 1);
		hi = (uintptr_t)s->meta + s->meta_len;
	}
	return mprotect((void *)lo, pages(hi - lo), on ? PROT_NONE :
	    PROT_READ | PROT_WRITE);
}

/* The free on a thread of its own: no memo, so the memo's fill and the
 * general path look the block up. */
static void *
free_there(void *len)
{
	beamalloc_free(A, big, *(size_t *)len);
	return NULL;
}

static int
child(void *arg)
{
	bool safety = *(bool *)arg;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	unsigned char *tail, *head, *x;
	uintptr_t frame0;
	size_t len = LARGE;
	pthread_t t;

	alarm(60);
	pool = aligned_alloc(FRAME, POOL);
	if (pool == NULL)
		return 2;
	/* The large block at the bottom of frame 0, the region (two whole
	 * frames) after it: its head slab shares frame 0 with the block. */
	frame0 = (uintptr_t)pool + 4 * FRAME;
	large_at = frame0;
	region_at = frame0 + 17024;
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = true;
	cfg.decay_ms = 0;
	/* Whatever BEAMALLOC_GPA_OPTIONS says: blocks of the lengths asked. */
	cfg.canary = cfg.junk = false;
	cfg.quarantine = 0;
	cfg.guard_sample = 0;
	cfg.report = on_report;
	if ((g = beamalloc_gpa_create((beamalloc_allocator){ NULL, &bk_vt },
	    &cfg)) == NULL)
		return 3;
	A = beamalloc_gpa_allocator(g);
	/* A class's first slab goes to the region's tail, the next one's
	 * to its head (t/gpa_regions). */
	tail = beamalloc_alloc(A, 64);
	head = beamalloc_alloc(A, 128);
	if (tail == NULL || head == NULL ||
	    ((uintptr_t)head & ~(FRAME - 1)) != frame0)
		return 4;
	/* The head slab's slots fill this thread's memo for frame 0. */
	x = beamalloc_alloc(A, 128);
	beamalloc_free(A, x, 128);
	if ((big = beamalloc_alloc(A, LARGE)) != (unsigned char *)frame0)
		return 5;
	memset(big, 0x5a, LARGE);

	/* Its resize and its free, through the memo, then (made again) on
	 * another thread, with the slab's header and records unreadable. */
	if (seal(g, head, true) != 0)
		return 6;
	len = beamalloc_resize(A, big, LARGE, 8, LARGE / 2) ? LARGE / 2 :
	    LARGE;
	beamalloc_free(A, big, len);
	if (seal(g, head, false) != 0)
		return 6;
	beamalloc_gpa_trim(g);		/* the kept large block goes back */
	large_at = frame0;
	len = LARGE;
	if ((big = beamalloc_alloc(A, LARGE)) != (unsigned char *)frame0)
		return 5;
	if (seal(g, head, true) != 0)
		return 6;
	if (pthread_create(&t, NULL, free_there, &len) != 0 ||
	    pthread_join(t, NULL) != 0)
		return 8;
	if (seal(g, head, false) != 0)
		return 6;
	beamalloc_gpa_trim(g);

	beamalloc_free(A, tail, 64);
	beamalloc_free(A, head, 128);
	if (nreports != 0)
		return 9;
	if (beamalloc_gpa_destroy(g) != 0 || live != 0)
		return 10;
	return 0;
}

int
main(void)
{
	plan(2);
	for (int i = 0; i < 2; i++) {
		bool safety = i != 0;
		char how[32];
		int st = child_run(child, &safety, CHILD_EXIT, NULL, 0);

		if (!ok(child_exited(st, 0), "safety %s: a large block in a "
		    "partial slab's frame, resized and freed (through the "
		    "memo and on another thread) without reading the slab",
		    safety ? "on" : "off"))
			diag("  child: %s (signal 11: the slab was read; 4, 5: "
			    "blocks not where the backing put them; 9: "
			    "reports; 10: leaks)", child_how(st, how));
	}
	return done_testing();
}
