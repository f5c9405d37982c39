/*
 * gpa_trim.c - the GPA gives memory back to its backing allocator: after
 * 50 MB of small blocks are freed, on one thread or on four, it gives
 * back most slabs without any call, and all but 256 KiB after a leak check
 * (which trims); the caches of threads that ended or sit
 * idle are emptied too; a pointer into a slab given back is reported as
 * an invalid free, with safety on or off, and nothing crashes.  A GPA
 * filled and emptied over and over keeps its all-free slabs and empty
 * regions (within bounds), and gives them back at a trim.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "beamalloc.h"
#include "tap.h"

#define TOTAL (50u << 20)	/* bytes allocated per run */
#define MiB ((size_t)1 << 20)
/* Bytes of all-free slabs that the trims made as the pools grow may
 * keep, in all classes (beamalloc_gpa(3)). */
#define KEPT_MAX ((size_t)8 << 20)
/* Empty magazines the growth trims and sweeps keep for the next mass of
 * frees (beamalloc_gpa(3)). */
#define MAGS_MAX ((size_t)2 << 20)

/* A backing allocator over malloc that counts what is outstanding (any
 * number of blocks, unlike t/testalloc.h). */
static atomic_size_t outstanding, nblocks, ncalls;
/* Blocks of 64 KiB or more taken: regions (with safety off, no
 * metadata block is that large). */
static atomic_size_t nbig;

static void *
c_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	(void)ctx, (void)ra;
	if (align > 16 || (p = malloc(len)) == NULL)
		return NULL;
	atomic_fetch_add(&outstanding, len);
	atomic_fetch_add(&nblocks, 1);
	atomic_fetch_add(&ncalls, 1);
	if (len >= 64 * 1024)
		atomic_fetch_add(&nbig, 1);
	return p;
}

static bool
c_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len == len;
}

static void *
c_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static void
c_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	atomic_fetch_sub(&outstanding, len);
	atomic_fetch_sub(&nblocks, 1);
	free(mem);
}

static const beamalloc_vtable counting_vt = {
	c_alloc, c_resize, c_remap, c_free
};
static const beamalloc_allocator counting = { NULL, &counting_vt };

static atomic_size_t reports[8];

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	atomic_fetch_add(&reports[r->kind & 7], 1);
}

static beamalloc_gpa *
make(bool safety)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.report = count_report;
	return beamalloc_gpa_create(counting, &cfg);
}

static uint64_t
next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct block {
	unsigned char *p;
	size_t len;
};

/* Allocate `total` bytes of small blocks (16 B to 4 KiB), check the
 * contents, free them in a shuffled order.  False on any error. */
static bool
churn(beamalloc_allocator a, size_t total, uint64_t seed, size_t *most)
{
	size_t n = 0, cap = total / 16, bytes = 0;
	struct block *b = malloc(cap * sizeof(*b));
	bool good = b != NULL;

	while (good && bytes < total && n < cap) {
		size_t len = 16 + next(&seed) % 4081;

		b[n].len = len;
		if ((b[n].p = beamalloc_alloc(a, len)) == NULL) {
			good = false;
			break;
		}
		memset(b[n].p, (int)(n & 0xff), len);
		bytes += len;
		n++;
	}
	if (most != NULL)
		*most = atomic_load(&outstanding);
	for (size_t i = n; i > 1; i--) {
		size_t j = next(&seed) % i;
		struct block t = b[i - 1];

		b[i - 1] = b[j];
		b[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		if (b[i].p[0] != b[i].p[b[i].len - 1])
			good = false;
		beamalloc_free(a, b[i].p, b[i].len);
	}
	free(b);
	return good;
}

/* A slab's bytes (beamalloc_gpa(3)): 32 KiB for the classes up to 4
 * KiB, 64 KiB above. */
static size_t
span(size_t size)
{
	return size <= 4096 ? 32 * 1024 : 64 * 1024;
}

/* Slabs the GPA holds, of every class; their bytes in *bytes. */
static size_t
slabs_held(beamalloc_gpa *g, size_t *bytes)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];
	size_t n = 0;

	*bytes = 0;
	beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS, NULL);
	for (size_t i = 0; i < BEAMALLOC_GPA_NCLASS; i++) {
		n += cls[i].slabs;
		*bytes += cls[i].slabs * span(cls[i].size);
	}
	return n;
}

static size_t
slabs(beamalloc_gpa *g)
{
	size_t bytes;

	return slabs_held(g, &bytes);
}

static size_t
slab_bytes(beamalloc_gpa *g)
{
	size_t bytes;

	(void)slabs_held(g, &bytes);
	return bytes;
}

/* Slabs of the class whose slots are size bytes. */
static size_t
class_slabs(beamalloc_gpa *g, size_t size)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];

	beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS, NULL);
	for (size_t i = 0; i < BEAMALLOC_GPA_NCLASS; i++)
		if (cls[i].size == size)
			return cls[i].slabs;
	return 0;
}

static void
one_thread(void)
{
	size_t base = atomic_load(&outstanding), held, most, released;
	beamalloc_gpa *g = make(true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	beamalloc_gpa_stats st;

	ok(churn(a, TOTAL, 42, &most), "one thread: 50 MB of blocks "
	    "allocated, checked and freed");
	beamalloc_gpa_get_stats(g, &st);
	held = atomic_load(&outstanding) - base;
	ok(st.peak_bytes >= TOTAL, "peak %zu bytes live", st.peak_bytes);
	is_size(st.live_bytes, 0, "stats: 0 bytes live");
	is_size(st.backing_bytes, held, "stats: backing_bytes is what the "
	    "backing counted (%zu)", held);
	/* Without any call, most slabs went back to their regions: those
	 * a cached slot still holds stay.  A region (up to 2 MiB) goes back
	 * to the backing with its last slab, so with 40 classes' slabs
	 * left among them the bytes come back at the trim below (or with
	 * the decay of decay_ms). */
	most -= base;
	ok(slab_bytes(g) < TOTAL / 3 + KEPT_MAX, "without any call the GPA "
	    "gave back most of its slabs: %zu KiB left of at least %u (the "
	    "trims keep up to %zu KiB all free)", slab_bytes(g) / 1024,
	    TOTAL / 1024, KEPT_MAX / 1024);
	ok(held <= most + MAGS_MAX, "and holds no more from its backing, "
	    "but for the empty magazines kept (up to %zu KiB): %zu -> %zu "
	    "bytes", MAGS_MAX / 1024, most, held);
	is_size(beamalloc_gpa_detect_leaks(g), 0, "no leaks");
	held = atomic_load(&outstanding) - base;
	ok(held < 256 * 1024, "after the leak check (a trim) it holds %zu "
	    "bytes (< 256 KiB)", held);
	ok(churn(a, TOTAL / 5, 7, NULL), "and it serves 10 MB more afterwards");
	/* The explicit trim gives back the same way, and says how much. */
	most = atomic_load(&outstanding) - base;
	released = beamalloc_gpa_trim(g);
	held = atomic_load(&outstanding) - base;
	ok(held < 256 * 1024 && released > 0 && released == most - held,
	    "beamalloc_gpa_trim released %zu bytes, %zu -> %zu held",
	    released, most, held);
	is_size(beamalloc_gpa_trim(NULL), 0, "beamalloc_gpa_trim(NULL) is 0");
	is_size(beamalloc_gpa_destroy(g), 0, "destroy: no leaks");
	is_size(atomic_load(&outstanding), base, "destroy gives everything "
	    "back");
}

/* Four threads: each churns, then waits at the barrier (idle, its cache
 * full of freed slots) while the main thread checks for leaks, then
 * churns again and exits. */
static beamalloc_gpa *shared;
static pthread_barrier_t bar;
static atomic_int errors;

static void *
worker(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(shared);
	uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;

	if (!churn(a, TOTAL / 4, seed, NULL))
		atomic_fetch_add(&errors, 1);
	pthread_barrier_wait(&bar);	/* idle while the main thread trims */
	pthread_barrier_wait(&bar);
	if (!churn(a, TOTAL / 8, seed + 1, NULL))
		atomic_fetch_add(&errors, 1);
	return NULL;
}

/* The GPA empties other threads' caches only where membarrier(2) can
 * order them (see ba_gpa_steal_idle() in lib/gpa/leak.c). */
static bool
can_steal(void)
{
#if defined(__linux__) && defined(SYS_membarrier)
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	return q > 0 && (q & (MEMBARRIER_CMD_PRIVATE_EXPEDITED |
	    MEMBARRIER_CMD_GLOBAL)) != 0;
#else
	return false;
#endif
}

static void
four_threads(void)
{
	pthread_t t[4];
	size_t base = atomic_load(&outstanding), held;
	beamalloc_gpa_stats st;
	int started = 0;

	shared = make(true);
	pthread_barrier_init(&bar, NULL, 5);
	for (int i = 0; i < 4; i++)
		started += pthread_create(&t[i], NULL, worker,
		    (void *)(uintptr_t)i) == 0;
	if (started != 4)
		bail("pthread_create failed");
	pthread_barrier_wait(&bar);
	held = atomic_load(&outstanding) - base;
	diag("4 idle threads: %zu bytes held before the leak check", held);
	is_size(beamalloc_gpa_detect_leaks(shared), 0,
	    "4 idle threads: no leaks");
	held = atomic_load(&outstanding) - base;
	if (can_steal())
		ok(held < MiB, "their caches were emptied: %zu bytes held "
		    "(< 1 MiB)", held);
	else
		skip(1, "no membarrier(2): idle threads keep their caches");
	pthread_barrier_wait(&bar);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	is_int(atomic_load(&errors), 0, "the threads' blocks were intact, "
	    "before and after their caches were emptied");
	is_size(beamalloc_gpa_detect_leaks(shared), 0,
	    "4 threads that ended: no leaks");
	held = atomic_load(&outstanding) - base;
	if (can_steal())
		ok(held < MiB, "4 threads that ended: %zu bytes held "
		    "(< 1 MiB)", held);
	else
		skip(1, "no membarrier(2): ended threads keep their caches");
	beamalloc_gpa_get_stats(shared, &st);
	is_size(st.live_blocks, 0, "stats: 0 blocks live");
	is_size(beamalloc_gpa_destroy(shared), 0, "destroy: no leaks");
	is_size(atomic_load(&outstanding), base, "destroy gives everything "
	    "back");
	pthread_barrier_destroy(&bar);
}

/* Trims while threads allocate and free at full speed: the trim takes
 * their magazines from under the fast paths (with rseq, from under a
 * sequence in flight).  Every block carries its owner's tag in every
 * byte; a slot handed out twice, or a magazine entry lost or doubled,
 * shows as a wrong byte, a report, or a leak. */
#define RACE_SLOTS 64
#define RACE_OPS 400000
static atomic_int racing;

static void *
racer(void *arg)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(shared);
	uint64_t seed = (uint64_t)(uintptr_t)arg * 104729 + 3;
	unsigned char *p[RACE_SLOTS] = { 0 };
	size_t len[RACE_SLOTS] = { 0 };
	unsigned char tag[RACE_SLOTS] = { 0 };
	size_t bad = 0;

	for (size_t op = 0; op < RACE_OPS; op++) {
		size_t i = next(&seed) % RACE_SLOTS;

		if (p[i] != NULL) {
			for (size_t k = 0; k < len[i]; k++)
				bad += p[i][k] != tag[i];
			beamalloc_free(a, p[i], len[i]);
			p[i] = NULL;
			continue;
		}
		len[i] = 8 + next(&seed) % 2041;
		tag[i] = (unsigned char)(op * 31 + (uintptr_t)arg);
		if ((p[i] = beamalloc_alloc(a, len[i])) == NULL) {
			bad++;
			continue;
		}
		memset(p[i], tag[i], len[i]);
	}
	for (size_t i = 0; i < RACE_SLOTS; i++)
		if (p[i] != NULL) {
			for (size_t k = 0; k < len[i]; k++)
				bad += p[i][k] != tag[i];
			beamalloc_free(a, p[i], len[i]);
		}
	atomic_fetch_add(&errors, (int)(bad != 0));
	atomic_fetch_sub(&racing, 1);
	return NULL;
}

static void
trim_while_busy(bool safety)
{
	const char *on = safety ? "on" : "off";
	size_t before = 0, trims = 0;
	pthread_t t[3];

	for (int k = 0; k < 8; k++)
		before += atomic_load(&reports[k]);
	shared = make(safety);
	atomic_store(&errors, 0);
	atomic_store(&racing, 3);
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, racer, (void *)(uintptr_t)i)
		    != 0)
			bail("pthread_create failed");
	while (atomic_load(&racing) > 0) {
		beamalloc_gpa_trim(shared);
		trims++;
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int k = 0; k < 8; k++)
		before -= atomic_load(&reports[k]);
	is_int(atomic_load(&errors), 0, "safety %s: 3 threads x %d ops "
	    "under %zu trims: every block intact", on, RACE_OPS, trims);
	is_size(before, 0, "safety %s: and no report", on);
	is_size(beamalloc_gpa_destroy(shared), 0, "safety %s: no leaks", on);
}

/* A slab given back: its pointers are invalid frees, not crashes. */
static void
freed_slab(bool safety)
{
	const char *on = safety ? "on" : "off";
	beamalloc_gpa *g = make(safety);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t dbl = atomic_load(&reports[BEAMALLOC_REPORT_DOUBLE_FREE]);
	size_t inv;
	void *p = beamalloc_alloc(a, 100);
	void *q;

	ok(p != NULL, "safety %s: a block", on);
	beamalloc_free(a, p, 100);
	beamalloc_free(a, p, 100);
	is_size(atomic_load(&reports[BEAMALLOC_REPORT_DOUBLE_FREE]), dbl + 1,
	    "safety %s: freed twice: a double free", on);
	beamalloc_gpa_detect_leaks(g);	/* its slab goes back */
	inv = atomic_load(&reports[BEAMALLOC_REPORT_INVALID_FREE]);
	beamalloc_free(a, p, 100);
	is_size(atomic_load(&reports[BEAMALLOC_REPORT_INVALID_FREE]), inv + 1,
	    "safety %s: freed again after its slab was given back: an "
	    "invalid free", on);
	q = beamalloc_alloc(a, 100);
	ok(q != NULL, "safety %s: the GPA still serves", on);
	beamalloc_free(a, q, 100);
	is_size(beamalloc_gpa_destroy(g), 0, "safety %s: no leaks", on);
}

/* A NIF's temporaries, call after call: 4 MB of 4 KiB blocks taken,
 * written, checked and freed, 20 times.  The slabs left all free stay in
 * their class (up to 8 MiB in all), and so do the regions left empty, so
 * the rounds after the first two make no slab again and take no region
 * from the backing, whose pages would be faulted in again each time. */
#define REFILL_N 1000
#define REFILL_ROUNDS 20

static void
refill(void)
{
	static unsigned char *p[REFILL_N];
	size_t base = atomic_load(&outstanding), big0 = atomic_load(&nbig);
	size_t big2 = 0, held, least = SIZE_MAX, most = 0;
	beamalloc_gpa *g = make(false);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	bool intact = true;

	for (int round = 0; round < REFILL_ROUNDS; round++) {
		for (size_t i = 0; i < REFILL_N; i++) {
			if ((p[i] = beamalloc_alloc(a, 4096)) == NULL)
				bail("refill: out of memory");
			memset(p[i], round + (int)i, 4096);
		}
		for (size_t i = 0; i < REFILL_N; i++) {
			intact &= p[i][0] == (unsigned char)(round + (int)i) &&
			    p[i][4095] == (unsigned char)(round + (int)i);
			beamalloc_free(a, p[i], 4096);
		}
		if (round == 1)
			big2 = atomic_load(&nbig);
		if (round >= 1) {
			size_t n = slabs(g);

			least = n < least ? n : least;
			most = n > most ? n : most;
		}
	}
	ok(intact, "refill: %d rounds of %d blocks of 4 KiB, every block "
	    "intact", REFILL_ROUNDS, REFILL_N);
	/* 8 blocks a slab: 125 slabs for a round, all free at its end. */
	ok(least >= REFILL_N * 4096 / span(4096) && least == most,
	    "refill: the slabs stay "
	    "after each round, all free (%zu-%zu)", least, most);
	is_size(atomic_load(&nbig), big2, "refill: no region taken from the "
	    "backing after the second round (%zu in all)", big2 - big0);
	held = atomic_load(&outstanding) - base;
	ok(held >= 4 * MiB, "refill: the empty regions are kept (%zu bytes "
	    "held, nothing live)", held);
	beamalloc_gpa_trim(g);
	held = atomic_load(&outstanding) - base;
	ok(held < 256 * 1024, "refill: a trim gives them back (%zu bytes "
	    "held)", held);
	is_size(slabs(g), 0, "refill: no slab left after the trim");
	is_size(beamalloc_gpa_destroy(g), 0, "refill: no leaks");
}

/* Take n blocks of size bytes, then free them all. */
static void
take_and_free(beamalloc_allocator a, size_t n, size_t size)
{
	void **p = calloc(n, sizeof(*p));

	if (p == NULL)
		bail("out of memory");
	for (size_t i = 0; i < n; i++)
		if ((p[i] = beamalloc_alloc(a, size)) == NULL)
			bail("out of memory");
	for (size_t i = 0; i < n; i++)
		beamalloc_free(a, p[i], size);
	free(p);
}

/* The slabs kept all free are bounded: 4 times the budget in 4 KiB
 * blocks, all freed, leaves the budget (and the eighth of the class's
 * slabs a trim keeps anyway), not everything. */
static void
kept_bound(void)
{
	size_t n = 4 * KEPT_MAX / 4096, left;
	beamalloc_gpa *g = make(false);

	take_and_free(beamalloc_gpa_allocator(g), n, 4096);
	left = slab_bytes(g);
	ok(left <= KEPT_MAX + 4 * KEPT_MAX / 8 + 2 * span(4096), "kept: %zu "
	    "MiB freed in 4 KiB blocks leaves %zu KiB of slabs (at most %zu "
	    "kept, an eighth of the class's, and the one being carved)",
	    n * 4096 / MiB, left / 1024, KEPT_MAX / 1024);
	beamalloc_gpa_trim(g);
	is_size(slabs(g), 0, "kept: a trim gives them all back");
	is_size(beamalloc_gpa_destroy(g), 0, "kept: no leaks");
}

/* The budget goes to the class in use: 10 MB of 2 KiB blocks freed
 * leave their class holding the kept slabs; rounds of 4 KiB blocks then
 * take the budget back from it (it is idle) in their first round, and
 * keep their own slabs from round to round. */
static void
kept_moves(void)
{
	size_t a0, a1, b = 0, b8 = 0;
	beamalloc_gpa *g = make(false);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);

	take_and_free(a, 5000, 2048);
	a0 = class_slabs(g, 2048);
	for (int round = 0; round < REFILL_ROUNDS; round++) {
		take_and_free(a, REFILL_N, 4096);
		if (round == 1)
			b8 = class_slabs(g, 4096);
	}
	a1 = class_slabs(g, 2048);
	b = class_slabs(g, 4096);
	ok(a0 * span(2048) >= KEPT_MAX, "kept_moves: 10 MB of 2 KiB blocks "
	    "freed leave %zu slabs kept", a0);
	ok(a1 < a0 / 4, "kept_moves: that class, idle, gave them back (%zu "
	    "left)", a1);
	ok(b >= REFILL_N * 4096 / span(4096) && b == b8, "kept_moves: the 4 "
	    "KiB class keeps its slabs from its second round on (%zu, %zu "
	    "after it)", b, b8);
	is_size(beamalloc_gpa_destroy(g), 0, "kept_moves: no leaks");
}

/* 100 live blocks of random sizes over every class up to 8 KiB, n of
 * them replaced at random; the backing's allocations it took. */
static size_t
hundred(beamalloc_allocator a, size_t n, uint64_t *seed)
{
	void *p[100];
	size_t len[100], calls = atomic_load(&ncalls);

	for (size_t i = 0; i < 100; i++) {
		size_t k = next(seed) % 10;

		len[i] = ((size_t)8 << k) + next(seed) % ((size_t)8 << k);
		if ((p[i] = beamalloc_alloc(a, len[i])) == NULL)
			bail("out of memory");
	}
	for (size_t j = 0; j < n; j++) {
		size_t s = next(seed) % 100, k = next(seed) % 10;

		beamalloc_free(a, p[s], len[s]);
		len[s] = ((size_t)8 << k) + next(seed) % ((size_t)8 << k);
		if ((p[s] = beamalloc_alloc(a, len[s])) == NULL)
			bail("out of memory");
	}
	for (size_t i = 0; i < 100; i++)
		beamalloc_free(a, p[i], len[i]);
	return atomic_load(&ncalls) - calls;
}

/* Masses of frees: MASS_N blocks of random sizes taken, then freed in
 * random order, MASS_ROUNDS times.  The magazines each mass of frees
 * fills are kept when the trims empty them (up to 2 MiB, MAGS_MAX), so
 * the later rounds' frees take few from the backing (a class may need
 * one more than its trims kept): the library before took as many each
 * round as the first (about 3,000 in rand100k's 100,000 frees), as the
 * trims gave them back each time. */
#define MASS_N 50000
#define MASS_ROUNDS 4

static void
mass_frees(void)
{
	unsigned char **p = calloc(MASS_N, sizeof(*p));
	size_t *len = calloc(MASS_N, sizeof(*len));
	size_t base = atomic_load(&outstanding), calls[MASS_ROUNDS], held;
	beamalloc_gpa *g = make(false);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	uint64_t seed = 99;
	bool intact = true;

	if (p == NULL || len == NULL)
		bail("mass frees: out of memory");
	for (int round = 0; round < MASS_ROUNDS; round++) {
		size_t c0;

		for (size_t i = 0; i < MASS_N; i++) {
			len[i] = 16 + next(&seed) % 2049;
			if ((p[i] = beamalloc_alloc(a, len[i])) == NULL)
				bail("mass frees: out of memory");
			memset(p[i], (int)(i & 0xff), len[i]);
		}
		for (size_t i = MASS_N; i > 1; i--) {
			size_t j = next(&seed) % i;
			unsigned char *tp = p[i - 1];
			size_t tl = len[i - 1];

			p[i - 1] = p[j], len[i - 1] = len[j];
			p[j] = tp, len[j] = tl;
		}
		c0 = atomic_load(&ncalls);
		for (size_t i = 0; i < MASS_N; i++) {
			intact &= p[i][0] == p[i][len[i] - 1];
			beamalloc_free(a, p[i], len[i]);
		}
		calls[round] = atomic_load(&ncalls) - c0;
	}
	ok(intact, "mass frees: %d rounds of %d random blocks, every block "
	    "intact", MASS_ROUNDS, MASS_N);
	ok(calls[0] >= 50, "mass frees: the first round's frees took %zu "
	    "blocks (magazines) from the backing", calls[0]);
	ok(calls[2] + calls[3] <= calls[0] / 10, "mass frees: the third and "
	    "fourth took a tenth of that at most, together (%zu, %zu; the "
	    "second %zu)", calls[2], calls[3], calls[1]);
	held = atomic_load(&outstanding) - base;
	beamalloc_gpa_trim(g);
	ok(atomic_load(&outstanding) - base < 256 * 1024, "mass frees: a "
	    "trim gives back the magazines kept with the rest (%zu -> %zu "
	    "bytes held)", held, atomic_load(&outstanding) - base);
	is_size(beamalloc_gpa_destroy(g), 0, "mass frees: no leaks");
	free(p);
	free(len);
}

/* A trimmed GPA starts again as a new one: the same calls then take
 * from the backing what they took from a new GPA (the library before:
 * 1.8x, as each class carved a whole magazine on its first refill, the
 * cache went past its bound, sent magazines home and made more). */
static void
after_trim(void)
{
	beamalloc_gpa *g = make(false);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	uint64_t s1 = 7, s2 = 7;
	size_t fresh = hundred(a, 100000, &s1), again;

	beamalloc_gpa_trim(g);
	again = hundred(a, 100000, &s2);
	ok(again <= fresh + fresh / 8, "after a trim: %zu allocations from "
	    "the backing, against %zu in a new GPA", again, fresh);
	is_size(beamalloc_gpa_destroy(g), 0, "after a trim: no leaks");
}

int
main(void)
{
	plan(58);
	one_thread();
	four_threads();
	trim_while_busy(false);
	trim_while_busy(true);
	freed_slab(true);
	freed_slab(false);
	refill();
	kept_bound();
	kept_moves();
	mass_frees();
	after_trim();
	return done_testing();
}
