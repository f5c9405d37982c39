/*
 * gpa_shared.c - many threads, few blocks each: a thread's first slots
 * of a class up to 4 KiB come from a quarter of a slab it shares with
 * up to three other threads, so its first blocks of a class hold 8 KiB
 * of the backing's memory, not a 32 KiB slab of its own.  The quarters
 * keep the line rule (no cache line holds two threads' blocks), go back
 * when their blocks are freed and a trim comes, and are taken again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "lines.h"

#define NT 24			/* threads that each keep a few blocks */
#define NWHOLE 8		/* the first take slabs of their own */
#define PER 3			/* blocks per class and thread */
#define SLAB (32 * 1024)	/* a whole slab, of a class up to 4 KiB */
#define NLT 4			/* threads of the line case */
#define NLB 600			/* their blocks each */

static const size_t sizes[] = { 8, 48, 100, 200, 500, 1000, 2000, 4000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static beamalloc_allocator A;
static beamalloc_gpa *G;

/* ------------------------------------------------------------------------
 * Few blocks per thread: what the backing holds for them
 * ---------------------------------------------------------------------- */

struct few {
	unsigned id;
	unsigned char *p[NSIZES][PER];
	size_t bad;
};

static struct few F[NT];
/* Each thread makes its blocks in turn (main looks at what the GPA
 * holds after each), then all wait to free them. */
static pthread_barrier_t made, measured;

static void *
few_blocks(void *arg)
{
	struct few *f = arg;

	for (size_t s = 0; s < NSIZES; s++)
		for (size_t k = 0; k < PER; k++) {
			if ((f->p[s][k] = beamalloc_alloc(A, sizes[s])) == NULL)
				bail("out of memory");
			memset(f->p[s][k], (int)(f->id + 1), sizes[s]);
		}
	pthread_barrier_wait(&made);
	pthread_barrier_wait(&measured);
	for (size_t s = 0; s < NSIZES; s++)
		for (size_t k = 0; k < PER; k++) {
			for (size_t i = 0; i < sizes[s]; i++)
				if (f->p[s][k][i] != (unsigned char)(f->id + 1)) {
					f->bad++;
					break;
				}
			beamalloc_free(A, f->p[s][k], sizes[s]);
		}
	return NULL;
}

static size_t
held_now(void)
{
	beamalloc_gpa_stats st;

	beamalloc_gpa_get_stats(G, &st);
	return st.backing_bytes;
}

static void
few_case(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	pthread_t th[NT];
	size_t held[NT + 1], first, rest, bad = 0;

	beamalloc_gpa_config_init(&cfg);
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	held[0] = held_now();
	pthread_barrier_init(&made, NULL, 2);
	pthread_barrier_init(&measured, NULL, NT + 1);
	for (unsigned t = 0; t < NT; t++) {
		F[t] = (struct few){ .id = t };
		if (pthread_create(&th[t], NULL, few_blocks, &F[t]) != 0)
			bail("pthread_create");
		pthread_barrier_wait(&made);
		held[t + 1] = held_now();
	}
	first = (held[NWHOLE] - held[0]) / NWHOLE;
	rest = (held[NT] - held[NWHOLE]) / (NT - NWHOLE);
	diag("%d blocks of each of %zu sizes per thread: the first %d threads "
	    "hold %zu bytes each, the next %d %zu each", PER, NSIZES, NWHOLE,
	    first, NT - NWHOLE, rest);
	/* A slab of its own per size is NSIZES * SLAB (256 KiB), with
	 * records and magazines about 400 KiB: a quarter each takes a
	 * quarter of the slabs, and the bound leaves room for the rest
	 * (the records of whole slabs, 64 KiB for 8 B slots with safety
	 * on, shared by four; caches and magazines). */
	ok(rest <= NSIZES * SLAB * 5 / 8,
	    "threads past the first %d hold at most 20 KiB per size each, "
	    "not a 32 KiB slab (%zu bytes per thread)", NWHOLE, rest);
	ok(first > rest, "the first %d threads, a slab each, hold more "
	    "(%zu bytes per thread)", NWHOLE, first);
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, (size_t)NT * NSIZES * PER,
	    "every block counted live");
	pthread_barrier_wait(&measured);
	for (unsigned t = 0; t < NT; t++) {
		pthread_join(th[t], NULL);
		bad += F[t].bad;
	}
	pthread_barrier_destroy(&made);
	pthread_barrier_destroy(&measured);
	is_size(bad, 0, "every block held what its thread wrote");
	is_size(slabs_after_trim(G), 0,
	    "all freed, a trim gives every shared slab back");
	is_size(beamalloc_gpa_destroy(G), 0, "no leak");
}

/* The GPA's first NWHOLE threads at once take slabs of their own: these
 * make it past that (a 16 KiB block each, a class never shared), end,
 * and leave their caches to the threads after. */
static pthread_barrier_t warm_bar;

static void *
warm_one(void *arg)
{
	void *p = beamalloc_alloc(A, 16384);

	(void)arg;
	if (p == NULL)
		bail("out of memory");
	pthread_barrier_wait(&warm_bar);
	beamalloc_free(A, p, 16384);
	return NULL;
}

static void
warm_caches(void)
{
	pthread_t th[NWHOLE];

	pthread_barrier_init(&warm_bar, NULL, NWHOLE);
	for (unsigned t = 0; t < NWHOLE; t++)
		if (pthread_create(&th[t], NULL, warm_one, NULL) != 0)
			bail("pthread_create");
	for (unsigned t = 0; t < NWHOLE; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&warm_bar);
}

/* ------------------------------------------------------------------------
 * Lines: threads that run past their quarter, at sizes that do not
 * divide it (a slot across two quarters is never handed out)
 * ---------------------------------------------------------------------- */

struct lines {
	unsigned id;
	size_t size;
	unsigned char *p[NLB];
};

static struct lines L[NLT];
static pthread_barrier_t lines_made;

static void *
line_blocks(void *arg)
{
	struct lines *l = arg;

	for (size_t i = 0; i < NLB; i++) {
		if ((l->p[i] = beamalloc_alloc(A, l->size)) == NULL)
			bail("out of memory");
		memset(l->p[i], (int)(l->id + 1), l->size);
	}
	pthread_barrier_wait(&lines_made);
	return NULL;
}

/* Lines holding blocks of two threads. */
static size_t
shared_lines(size_t size)
{
	size_t per = (size + LINE - 1) / LINE + 1, n = 0, shared;
	char what[32];
	struct owned *o = malloc((size_t)NLT * NLB * per * sizeof(*o));

	if (o == NULL)
		bail("out of memory");
	for (unsigned t = 0; t < NLT; t++)
		for (size_t i = 0; i < NLB; i++) {
			uintptr_t a = (uintptr_t)L[t].p[i];

			for (uintptr_t l = a / LINE; l <= (a + size - 1) / LINE;
			    l++)
				o[n++] = (struct owned){ l, t };
		}
	snprintf(what, sizeof(what), "%zu B", size);
	shared = lines_shared(o, n, what);
	free(o);
	return shared;
}

static void
lines_case(size_t size)
{
	beamalloc_gpa_config cfg;
	pthread_t th[NLT];
	size_t slabs = 0;

	beamalloc_gpa_config_init(&cfg);
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	warm_caches();
	pthread_barrier_init(&lines_made, NULL, NLT + 1);
	for (unsigned t = 0; t < NLT; t++) {
		L[t] = (struct lines){ .id = t, .size = size };
		if (pthread_create(&th[t], NULL, line_blocks, &L[t]) != 0)
			bail("pthread_create");
	}
	pthread_barrier_wait(&lines_made);
	is_size(shared_lines(size), 0, "%zu B: no line holds two threads' "
	    "blocks (%d threads, %d blocks each)", size, NLT, NLB);
	/* The first blocks of two threads in one slab: they share it. */
	for (unsigned t = 0; t < NLT; t++)
		for (unsigned u = t + 1; u < NLT; u++)
			slabs += (uintptr_t)L[t].p[0] / SLAB ==
			    (uintptr_t)L[u].p[0] / SLAB;
	diag("%zu B: %zu pairs of threads' first blocks in one slab", size,
	    slabs);
	for (unsigned t = 0; t < NLT; t++) {
		pthread_join(th[t], NULL);
		for (size_t i = 0; i < NLB; i++)
			beamalloc_free(A, L[t].p[i], size);
	}
	pthread_barrier_destroy(&lines_made);
	is_size(beamalloc_gpa_destroy(G), 0, "%zu B: no leak", size);
}

/* ------------------------------------------------------------------------
 * A quarter given back while its slab's others are held, and taken
 * again by the next thread
 * ---------------------------------------------------------------------- */

#define NAGAIN 40

static unsigned char *kept[NAGAIN];
static pthread_barrier_t keeper;

/* Keeps its cache (and its quarter) until told. */
static void *
keep_some(void *arg)
{
	unsigned char v = (unsigned char)(uintptr_t)arg;

	for (size_t i = 0; i < NAGAIN; i++) {
		if ((kept[i] = beamalloc_alloc(A, 48)) == NULL)
			bail("out of memory");
		memset(kept[i], v, 48);
	}
	pthread_barrier_wait(&keeper);
	pthread_barrier_wait(&keeper);
	return NULL;
}

static void *
make_free(void *arg)
{
	unsigned char *p[NAGAIN];
	size_t *bad = arg;

	for (size_t i = 0; i < NAGAIN; i++) {
		if ((p[i] = beamalloc_alloc(A, 48)) == NULL)
			bail("out of memory");
		memset(p[i], 0x5a, 48);
	}
	for (size_t i = 0; i < NAGAIN; i++) {
		for (size_t k = 0; k < 48; k++)
			*bad += p[i][k] != 0x5a;
		beamalloc_free(A, p[i], 48);
	}
	return NULL;
}

static void
again_case(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	pthread_t th, kth;
	size_t bad = 0, kept_bad = 0;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = true;
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	warm_caches();
	/* One thread keeps its blocks; the others, one after another, make
	 * theirs and free them, each followed by a trim that gives its
	 * quarter back while the keeper's stays. */
	pthread_barrier_init(&keeper, NULL, 2);
	if (pthread_create(&kth, NULL, keep_some, (void *)(uintptr_t)0x33) !=
	    0)
		bail("pthread_create");
	pthread_barrier_wait(&keeper);
	for (unsigned r = 0; r < 8; r++) {
		if (pthread_create(&th, NULL, make_free, &bad) != 0)
			bail("pthread_create");
		pthread_join(th, NULL);
		beamalloc_gpa_trim(G);
	}
	pthread_barrier_wait(&keeper);
	pthread_join(kth, NULL);
	pthread_barrier_destroy(&keeper);
	is_size(bad, 0, "quarters taken again: every block held what was "
	    "written");
	for (size_t i = 0; i < NAGAIN; i++) {
		for (size_t k = 0; k < 48; k++)
			kept_bad += kept[i][k] != 0x33;
		beamalloc_free(A, kept[i], 48);
	}
	is_size(kept_bad, 0, "quarters taken again: the kept blocks beside "
	    "them are intact");
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, 0, "quarters taken again: none counted live");
	is_size(beamalloc_gpa_destroy(G), 0, "quarters taken again: no leak");
}

int
main(void)
{
	static const size_t line_sizes[] = { 48, 112, 1000, 3000 };

	plan(6 + 2 * 4 + 4);
	few_case();
	for (size_t i = 0; i < 4; i++)
		lines_case(line_sizes[i]);
	again_case();
	return done_testing();
}
