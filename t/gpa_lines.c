/*
 * gpa_lines.c - a thread-safe GPA never hands two threads blocks in one
 * 64-byte cache line (cache-scratch's false sharing).  Threads allocate
 * small blocks at once, free blocks another thread made and allocate
 * again; while they are parked, the addresses of every live block are
 * checked: no line holds blocks of two threads.  No timing: the threads
 * only wait for each other between rounds.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define NT 4			/* threads */
#define NB 3000			/* live blocks per thread */
#define ROUNDS 4
#define LINE 64

struct blk {
	unsigned char *p;
	size_t len, align;
};

static beamalloc_allocator A;
static struct blk blocks[NT][NB];
static pthread_barrier_t bar;
static bool failed;

/* 1-200 bytes, most of them below a line; some aligned to 16. */
static void
pick(uint64_t *s, struct blk *b)
{
	*s = *s * 6364136223846793005u + 1442695040888963407u;
	b->len = 1 + (size_t)(*s >> 33) % ((*s >> 20) % 4 == 0 ? 200 : 48);
	b->align = (*s >> 40) % 3 == 0 ? 16 : 8;
}

static void
get(uint64_t *s, struct blk *b)
{
	pick(s, b);
	b->p = beamalloc_alloc_aligned(A, b->len, b->align);
	if (b->p == NULL)
		failed = true;
	else
		memset(b->p, 0xa5, b->len);	/* a write, as in the bench */
}

static void
put(struct blk *b)
{
	beamalloc_free_aligned(A, b->p, b->len, b->align);
}

static void *
worker(void *arg)
{
	int id = (int)(intptr_t)arg, other = (id + 1) % NT;
	uint64_t s = (uint64_t)id * 7919 + 1;

	for (int i = 0; i < NB; i++)
		get(&s, &blocks[id][i]);
	pthread_barrier_wait(&bar);	/* main checks round 0 */
	pthread_barrier_wait(&bar);
	for (int r = 1; r < ROUNDS; r++) {
		/* Half the blocks of the next thread freed here: its slots
		 * come to this thread's cache first. */
		for (int i = r % 2; i < NB; i += 2)
			put(&blocks[other][i]);
		pthread_barrier_wait(&bar);
		/* Then each thread refills its own. */
		for (int i = r % 2; i < NB; i += 2)
			get(&s, &blocks[id][i]);
		pthread_barrier_wait(&bar);	/* main checks */
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

struct own {
	uintptr_t line;
	int who;
};

static int
by_line(const void *a, const void *b)
{
	const struct own *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

/* Lines holding blocks of two owners among n blocks of owner who[i]. */
static size_t
shared_lines(struct own *o, size_t n)
{
	size_t bad = 0;

	qsort(o, n, sizeof(*o), by_line);
	for (size_t i = 1; i < n; i++)
		if (o[i].line == o[i - 1].line && o[i].who != o[i - 1].who) {
			if (bad++ == 0)
				diag("line %#jx: blocks of threads %d and %d",
				    (uintmax_t)(o[i].line * LINE),
				    o[i - 1].who, o[i].who);
		}
	return bad;
}

/* Every line every live block touches, with its thread. */
static size_t
collect(struct own *o)
{
	size_t n = 0;

	for (int t = 0; t < NT; t++)
		for (int i = 0; i < NB; i++) {
			uintptr_t a = (uintptr_t)blocks[t][i].p;

			for (uintptr_t l = a / LINE;
			    l <= (a + blocks[t][i].len - 1) / LINE; l++)
				o[n++] = (struct own){ l, t };
		}
	return n;
}

static void
rounds(bool safety)
{
	const char *m = safety ? "safety on" : "safety off";
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	pthread_t t[NT];
	size_t cap = (size_t)NT * NB * 5 + 64, worst = 0;
	struct own *o = malloc(cap * sizeof(*o));

	if (o == NULL)
		bail("malloc");
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(g);
	failed = false;
	pthread_barrier_init(&bar, NULL, NT + 1);
	for (int i = 0; i < NT; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i))
			bail("pthread_create");
	for (int r = 0; r < ROUNDS; r++) {
		if (r > 0) {
			pthread_barrier_wait(&bar);	/* frees done */
			pthread_barrier_wait(&bar);	/* refills done */
		} else
			pthread_barrier_wait(&bar);
		size_t bad = shared_lines(o, collect(o));

		worst = bad > worst ? bad : worst;
		pthread_barrier_wait(&bar);
	}
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	ok(!failed, "%s: %d threads x %d blocks of 1-200 B, %d rounds of "
	    "frees by another thread", m, NT, NB, ROUNDS);
	is_size(worst, 0, "%s: no 64-byte line held blocks of two threads",
	    m);
	for (int i = 0; i < NT; i++)
		for (int j = 0; j < NB; j++)
			put(&blocks[i][j]);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: no leak", m);
	pthread_barrier_destroy(&bar);
	free(o);
}

/* cache-scratch's pattern: the main thread allocates 1-byte objects back
 * to back; thread i frees object i and allocates 1 byte itself. */
static struct blk objs[2 * NT], mine[NT];

static void *
scratcher(void *arg)
{
	int id = (int)(intptr_t)arg;

	put(&objs[id]);
	mine[id] = (struct blk){ beamalloc_alloc(A, 1), 1, 8 };
	pthread_barrier_wait(&bar);
	pthread_barrier_wait(&bar);
	put(&mine[id]);
	return NULL;
}

static void
scratch(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	pthread_t t[NT];
	struct own o[3 * NT];
	size_t n = 0;

	beamalloc_gpa_config_init(&cfg);
	g = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(g);
	for (int i = 0; i < 2 * NT; i++)
		objs[i] = (struct blk){ beamalloc_alloc(A, 1), 1, 8 };
	pthread_barrier_init(&bar, NULL, NT + 1);
	for (int i = 0; i < NT; i++)
		if (pthread_create(&t[i], NULL, scratcher, (void *)(intptr_t)i))
			bail("pthread_create");
	pthread_barrier_wait(&bar);
	for (int i = NT; i < 2 * NT; i++)	/* main's, still live */
		o[n++] = (struct own){ (uintptr_t)objs[i].p / LINE, NT };
	for (int i = 0; i < NT; i++)
		o[n++] = (struct own){ (uintptr_t)mine[i].p / LINE, i };
	is_size(shared_lines(o, n), 0, "cache-scratch: the threads' 1-byte "
	    "blocks share no line with each other or with main's");
	pthread_barrier_wait(&bar);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (int i = NT; i < 2 * NT; i++)
		put(&objs[i]);
	is_size(beamalloc_gpa_destroy(g), 0, "cache-scratch: no leak");
	pthread_barrier_destroy(&bar);
}

int
main(void)
{
	plan(2 * 3 + 2);
	rounds(false);
	rounds(true);
	scratch();
	return done_testing();
}
