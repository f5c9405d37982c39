/*
 * gpa_lines.c - a thread-safe GPA hands no two threads blocks in one
 * cache line (false sharing, as mimalloc-bench's cache-scratch finds it):
 * each thread cache carves its own slabs and is handed only their slots;
 * a block freed by another thread goes home.  Also: slots freed by
 * another thread come back to the thread that made them, the counts
 * stay exact while they travel, and slots sent home to a thread that
 * has ended are given back by a trim.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "lines.h"
#define NT 4			/* worker threads */
#define ROUNDS 6000
#define WINDOW 64		/* live blocks per worker */
#define MAXREC (ROUNDS + NT + 8)	/* blocks handed to one thread */

static beamalloc_allocator A;
static beamalloc_gpa *G;

/* Every block the GPA handed to one thread: its first and last line. */
struct rec {
	uintptr_t first, last;
};

struct worker {
	unsigned id;
	unsigned seed;
	unsigned char *given;		/* main's block for this thread */
	size_t given_len;
	struct rec rec[MAXREC];
	size_t nrec;
	size_t bad;			/* contents found changed */
};

static struct worker W[NT];
static struct rec main_rec[2 * NT];

/* Blocks handed from one worker to the next, which frees them. */
static struct {
	pthread_mutex_t lock;
	unsigned char *p[WINDOW];
	size_t len[WINDOW];
	unsigned n;
} box[NT];

static pthread_barrier_t all_done;

static unsigned
rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static void
note(struct rec *r, const unsigned char *p, size_t len)
{
	r->first = (uintptr_t)p / LINE;
	r->last = ((uintptr_t)p + len - 1) / LINE;
}

static bool
holds(const unsigned char *p, size_t len, unsigned char v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void
drop(struct worker *w, unsigned char *p, size_t len)
{
	if (!holds(p, len, (unsigned char)(len & 0xff)))
		w->bad++;
	beamalloc_free(A, p, len);
}

/* Free what the previous thread handed over. */
static void
drain_box(struct worker *w)
{
	pthread_mutex_lock(&box[w->id].lock);
	while (box[w->id].n != 0) {
		unsigned k = --box[w->id].n;

		drop(w, box[w->id].p[k], box[w->id].len[k]);
	}
	pthread_mutex_unlock(&box[w->id].lock);
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	unsigned char *live[WINDOW] = { 0 };
	size_t lens[WINDOW] = { 0 };

	/* cache-scratch: free main's block, then take one of the same
	 * size and write it. */
	drop(w, w->given, w->given_len);
	for (unsigned r = 0; r < ROUNDS; r++) {
		unsigned i = rnd(&w->seed) % WINDOW;
		size_t len = 1 + rnd(&w->seed) % 200;
		unsigned char *p;

		if (live[i] != NULL) {
			/* Every fourth block goes to the next thread. */
			struct worker *to = &W[(w->id + 1) % NT];
			bool handed = false;

			if (r % 4 == 0) {
				pthread_mutex_lock(&box[to->id].lock);
				if (box[to->id].n < WINDOW) {
					box[to->id].p[box[to->id].n] = live[i];
					box[to->id].len[box[to->id].n++] =
					    lens[i];
					handed = true;
				}
				pthread_mutex_unlock(&box[to->id].lock);
			}
			if (!handed)
				drop(w, live[i], lens[i]);
		}
		drain_box(w);
		if ((p = beamalloc_alloc(A, len)) == NULL)
			return NULL;
		memset(p, (int)(len & 0xff), len);
		note(&w->rec[w->nrec++], p, len);
		live[i] = p;
		lens[i] = len;
	}
	for (unsigned i = 0; i < WINDOW; i++)
		if (live[i] != NULL)
			drop(w, live[i], lens[i]);
	/* Nobody ends (and gives its cache to a later thread) before every
	 * thread has been handed all its blocks. */
	pthread_barrier_wait(&all_done);
	drain_box(w);
	return NULL;
}

/* Lines of blocks handed to two threads: every line every record
 * covers, sorted. */
static size_t
shared_lines(void)
{
	size_t n = 0, cap = 0, shared = 0;
	struct owned *o;

	for (unsigned t = 0; t < NT; t++)
		for (size_t i = 0; i < W[t].nrec; i++)
			cap += W[t].rec[i].last - W[t].rec[i].first + 1;
	for (unsigned i = 0; i < 2 * NT; i++)
		cap += main_rec[i].last - main_rec[i].first + 1;
	if ((o = malloc(cap * sizeof(*o))) == NULL)
		bail("out of memory");
	for (unsigned t = 0; t <= NT; t++) {
		const struct rec *r = t < NT ? W[t].rec : main_rec;
		size_t nr = t < NT ? W[t].nrec : 2 * NT;

		for (size_t i = 0; i < nr; i++)
			for (uintptr_t l = r[i].first; l <= r[i].last; l++)
				o[n++] = (struct owned){ l, t };
	}
	shared = lines_shared(o, n, "lines");
	free(o);
	return shared;
}

static void
lines_case(bool safety)
{
	const char *cfgname = safety ? "safety on" : "safety off";
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	pthread_t th[NT];
	unsigned char *extra[NT];
	size_t bad = 0, handed = 0;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	/* Main's blocks side by side, as cache-scratch takes them: one for
	 * each worker, the rest kept. */
	for (unsigned t = 0; t < NT; t++) {
		W[t] = (struct worker){ .id = t, .seed = 7 + t * 31,
		    .given_len = 8 };
		W[t].given = beamalloc_alloc(A, 8);
		extra[t] = beamalloc_alloc(A, 8);
		if (W[t].given == NULL || extra[t] == NULL)
			bail("out of memory");
		memset(W[t].given, 8, 8);
		memset(extra[t], 8, 8);
		note(&main_rec[2 * t], W[t].given, 8);
		note(&main_rec[2 * t + 1], extra[t], 8);
	}
	if (main_rec[0].first == main_rec[1].first)
		diag("%s: main's first two 8 B blocks share a line, as in "
		    "cache-scratch", cfgname);
	pthread_barrier_init(&all_done, NULL, NT);
	for (unsigned t = 0; t < NT; t++)
		if (pthread_create(&th[t], NULL, work, &W[t]) != 0)
			bail("pthread_create");
	for (unsigned t = 0; t < NT; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&all_done);
	for (unsigned t = 0; t < NT; t++) {
		bad += W[t].bad;
		handed += W[t].nrec;
		beamalloc_free(A, extra[t], 8);
	}
	is_size(handed, (size_t)NT * ROUNDS, "%s: every allocation served",
	    cfgname);
	is_size(bad, 0, "%s: every block held what was written to it",
	    cfgname);
	is_size(shared_lines(), 0,
	    "%s: no cache line was handed to two threads (%zu blocks)",
	    cfgname, handed + 2 * NT);
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, 0, "%s: no block counted live at the end",
	    cfgname);
	is_size(beamalloc_gpa_destroy(G), 0, "%s: no leak", cfgname);
}

/* Blocks one thread frees for another go back to it: the maker is
 * handed the very same slots again, once the cache's own leftovers (two
 * magazines at most) are used up. */
#define NHOME 300
#define NAGAIN (NHOME + 2 * 255)

static unsigned char *home_blocks[NHOME];

static void *
free_them(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < NHOME; i++)
		beamalloc_free(A, home_blocks[i], 48);
	return NULL;
}

static int
by_addr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(unsigned char *const *)a,
	    y = (uintptr_t)*(unsigned char *const *)b;

	return x < y ? -1 : x > y;
}

static void
home_case(void)
{
	static unsigned char *again[NAGAIN];
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	size_t back = 0, got = 0;
	pthread_t th;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = true;
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	for (size_t i = 0; i < NHOME; i++)
		if ((home_blocks[i] = beamalloc_alloc(A, 48)) == NULL)
			bail("out of memory");
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, NHOME, "home: %d blocks live", NHOME);
	if (pthread_create(&th, NULL, free_them, NULL) != 0)
		bail("pthread_create");
	pthread_join(th, NULL);
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, 0,
	    "home: none live once another thread freed them all");
	is_size(st.live_bytes, 0, "home: nor any byte");
	for (size_t i = 0; i < NAGAIN; i++)
		if ((again[i] = beamalloc_alloc(A, 48)) != NULL)
			got++;
	is_size(got, NAGAIN, "home: the maker allocates %d more", NAGAIN);
	qsort(home_blocks, NHOME, sizeof(home_blocks[0]), by_addr);
	for (size_t i = 0; i < NAGAIN; i++)
		back += bsearch(&again[i], home_blocks, NHOME,
		    sizeof(home_blocks[0]), by_addr) != NULL;
	is_size(back, NHOME,
	    "home: and is handed back every slot the other thread freed");
	for (size_t i = 0; i < NAGAIN; i++)
		beamalloc_free(A, again[i], 48);
	is_size(beamalloc_gpa_destroy(G), 0, "home: no leak");
}

/* Homes whose threads have ended: four makers, one after another, each
 * leave 4,000 blocks and end; two threads free them all at once while
 * the main thread trims.  Every block held its contents, the counts are
 * exact, and a trim then gives every slab back: slots sent home to an
 * ended thread's cache are not stranded there. */
#define NMAKERS 4
#define PER_MAKER 4000
#define NDEAD (NMAKERS * PER_MAKER)

static struct {
	unsigned char *p;
	size_t len;
} dead[NDEAD];
static size_t dead_bad[2];
static atomic_int freeing;

static void *
make_them(void *arg)
{
	size_t base = (size_t)(uintptr_t)arg * PER_MAKER;
	unsigned seed = (unsigned)base + 99;

	for (size_t i = base; i < base + PER_MAKER; i++) {
		size_t len = 8 + rnd(&seed) % 2000;

		if ((dead[i].p = beamalloc_alloc(A, len)) == NULL)
			return NULL;
		memset(dead[i].p, (int)(len & 0xff), len);
		dead[i].len = len;
	}
	return NULL;
}

static void *
free_half(void *arg)
{
	size_t half = (size_t)(uintptr_t)arg;

	for (size_t i = half; i < NDEAD; i += 2) {
		if (!holds(dead[i].p, dead[i].len,
		    (unsigned char)(dead[i].len & 0xff)))
			dead_bad[half]++;
		beamalloc_free(A, dead[i].p, dead[i].len);
	}
	atomic_fetch_sub(&freeing, 1);
	return NULL;
}

static void
dead_homes_case(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa_stats st;
	size_t made = 0;
	unsigned trims = 0;
	pthread_t th[2];

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = true;
	G = beamalloc_gpa_create(beamalloc_libc(), &cfg);
	A = beamalloc_gpa_allocator(G);
	for (uintptr_t m = 0; m < NMAKERS; m++) {
		if (pthread_create(&th[0], NULL, make_them, (void *)m) != 0)
			bail("pthread_create");
		pthread_join(th[0], NULL);
	}
	for (size_t i = 0; i < NDEAD; i++)
		made += dead[i].p != NULL;
	is_size(made, NDEAD, "dead homes: %d makers made %d blocks, and "
	    "ended", NMAKERS, NDEAD);
	atomic_store(&freeing, 2);
	for (uintptr_t h = 0; h < 2; h++)
		if (pthread_create(&th[h], NULL, free_half, (void *)h) != 0)
			bail("pthread_create");
	while (atomic_load(&freeing) != 0) {
		beamalloc_gpa_trim(G);
		trims++;
	}
	for (size_t h = 0; h < 2; h++)
		pthread_join(th[h], NULL);
	diag("dead homes: %u trims while the blocks were freed", trims);
	is_size(dead_bad[0] + dead_bad[1], 0,
	    "dead homes: every block held what its maker wrote");
	beamalloc_gpa_get_stats(G, &st);
	is_size(st.live_blocks, 0, "dead homes: none counted live");
	is_size(slabs_after_trim(G), 0,
	    "dead homes: a trim gives every slab back");
	is_size(beamalloc_gpa_destroy(G), 0, "dead homes: no leak");
}

int
main(void)
{
	plan(2 * 5 + 6 + 5);
	for (unsigned t = 0; t < NT; t++)
		pthread_mutex_init(&box[t].lock, NULL);
	lines_case(false);
	lines_case(true);
	home_case();
	dead_homes_case();
	return done_testing();
}
