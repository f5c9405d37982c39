/*
 * gpa_shared.c - many threads, few blocks each: a thread's first slots
 * of a class up to 4 KiB come from a quarter of a slab it shares with
 * up to three other threads, so its first blocks of a class hold 16 KiB
 * of the backing's memory, not a 64 KiB slab of its own.  The quarters
 * keep the line rule (no cache line holds two threads' blocks), go back
 * when their blocks are freed and a trim comes, and are taken again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define LINE 64
#define NT 16			/* threads that each keep a few blocks */
#define PER 3			/* blocks per class and thread */
#define FRAME (64 * 1024)	/* a whole slab */
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
static pthread_barrier_t made, measured;
/* The threads make their blocks in turn, so that the figure does not
 * depend on how they overlap (two threads that find no quarter free at
 * once make a shared slab each). */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static unsigned turn;

static void *
few_blocks(void *arg)
{
	struct few *f = arg;

	pthread_mutex_lock(&turn_lock);
	while (turn != f->id)
		pthread_cond_wait(&turn_cond, &turn_lock);
	pthread_mutex_unlock(&turn_lock);
	for (size_t s = 0; s < NSIZES; s++)
		for (size_t k = 0; k < PER; k++) {
			if ((f->p[s][k] = beamalloc_alloc(A, sizes[s])) == NULL)
				bail("out of memory");
			memset(f->p[s][k], (int)(f->id + 1), sizes[s]);
		}
	pthread_mutex_lock(&turn_lock);
	turn++;
	pthread_cond_broadcast(&turn_cond);
	pthread_mutex_unlock(&turn_lock);
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

static void
few_case(void)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	pthread_t th[NT];
	size_t held, base, bad = 0, slabs = 0;

	beamalloc_gpa_config_init(&cfg);
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	beamalloc_gpa_get_stats(G, &st);
	base = st.backing_bytes;
	pthread_barrier_init(&made, NULL, NT + 1);
	pthread_barrier_init(&measured, NULL, NT + 1);
	turn = 0;
	for (unsigned t = 0; t < NT; t++) {
		F[t] = (struct few){ .id = t };
		if (pthread_create(&th[t], NULL, few_blocks, &F[t]) != 0)
			bail("pthread_create");
	}
	pthread_barrier_wait(&made);
	beamalloc_gpa_get_stats(G, &st);
	held = st.backing_bytes - base;
	diag("%d threads, %d blocks of %zu sizes each: %zu bytes held, %zu "
	    "live", NT, PER, NSIZES, held, st.live_bytes);
	/* A slab of its own per thread and class is NT * NSIZES * FRAME
	 * (8 MiB), 12 MB with the rest: the quarters' frames take a
	 * quarter of that, and the bound leaves room for the rest (the
	 * records of whole frames, 128 KiB for 8 B slots with safety on;
	 * regions, caches and magazines): about 3.5 MB in all. */
	ok(held <= (size_t)NT * NSIZES * FRAME * 5 / 8,
	    "%d threads with %d blocks of each of %zu sizes hold at most "
	    "40 KiB per thread and size, not a 64 KiB slab each (%zu bytes)",
	    NT, PER, NSIZES, held);
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
	beamalloc_gpa_trim(G);
	beamalloc_gpa_get_class_stats(G, cls, BEAMALLOC_GPA_NCLASS, NULL);
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++)
		slabs += cls[c].slabs;
	is_size(slabs, 0, "all freed, a trim gives every shared slab back");
	is_size(beamalloc_gpa_destroy(G), 0, "no leak");
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

struct owned {
	uintptr_t line;
	unsigned who;
};

static int
by_line(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

/* Lines holding blocks of two threads. */
static size_t
shared_lines(size_t size)
{
	size_t per = (size + LINE - 1) / LINE + 1, n = 0, shared = 0;
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
	qsort(o, n, sizeof(*o), by_line);
	for (size_t i = 1; i < n; i++)
		if (o[i].line == o[i - 1].line && o[i].who != o[i - 1].who &&
		    shared++ < 3)
			diag("%zu B: line 0x%lx holds blocks of threads %u and "
			    "%u", size, (unsigned long)(o[i].line * LINE),
			    o[i - 1].who, o[i].who);
	free(o);
	return shared;
}

static void
lines_case(size_t size)
{
	beamalloc_gpa_config cfg;
	pthread_t th[NLT];
	size_t frames = 0;

	beamalloc_gpa_config_init(&cfg);
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	pthread_barrier_init(&lines_made, NULL, NLT + 1);
	for (unsigned t = 0; t < NLT; t++) {
		L[t] = (struct lines){ .id = t, .size = size };
		if (pthread_create(&th[t], NULL, line_blocks, &L[t]) != 0)
			bail("pthread_create");
	}
	pthread_barrier_wait(&lines_made);
	is_size(shared_lines(size), 0, "%zu B: no line holds two threads' "
	    "blocks (%d threads, %d blocks each)", size, NLT, NLB);
	/* The first blocks of two threads in one frame: they share it. */
	for (unsigned t = 0; t < NLT; t++)
		for (unsigned u = t + 1; u < NLT; u++)
			frames += (uintptr_t)L[t].p[0] / FRAME ==
			    (uintptr_t)L[u].p[0] / FRAME;
	diag("%zu B: %zu pairs of threads' first blocks in one frame", size,
	    frames);
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

	plan(5 + 2 * 4 + 4);
	few_case();
	for (size_t i = 0; i < 4; i++)
		lines_case(line_sizes[i]);
	again_case();
	return done_testing();
}
