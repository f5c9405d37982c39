/*
 * gpa_race.c - misuse from several threads at the same instant:
 *   1. two threads free one block together, round after round: exactly
 *      one free wins and the other is reported as a double free, every
 *      round, and no slot is then handed out twice (the fast path with
 *      safety, the general path with and without it).  The fast path
 *      without safety, the speed configuration, frees with plain stores:
 *      there a racing double free is undefined, as in malloc, and is not
 *      tested; with canary and junk the loser reports the double free
 *      only, not the winner's junk in the canary as an overflow;
 *      The first free of a block another thread allocated, racing the
 *      owner's free of it (the owner's frees use plain stores until
 *      then);
 *   2. a GPA made with thread_safe off, entered by a second thread while
 *      the first is inside it: reported as "used by two threads at once"
 *      before anything else, and nothing is lost.
 * The threads are made to meet (a rendezvous, and for 2. a backing
 * allocator that waits inside the GPA), never left to luck.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "beamalloc.h"
#include "tap.h"
#include "under.h"

#define BLOCK 64

/* Reports by kind, from any thread. */
static unsigned long kinds[16];

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	if ((unsigned)r->kind < 16)
		__atomic_add_fetch(&kinds[r->kind], 1, __ATOMIC_SEQ_CST);
}

static unsigned long
nkind(beamalloc_report_kind k)
{
	return __atomic_load_n(&kinds[k], __ATOMIC_SEQ_CST);
}

static unsigned long
nall(void)
{
	unsigned long n = 0;

	for (int k = 0; k < 16; k++)
		n += __atomic_load_n(&kinds[k], __ATOMIC_SEQ_CST);
	return n;
}

/* Canary and junk on the GPAs made next: the free that wins a race
 * junk-fills the block while the loser still looks at it. */
static bool with_checks;

static beamalloc_gpa *
make_gpa_with(beamalloc_allocator backing, bool thread_safe, bool safety,
    unsigned depth, size_t limit, beamalloc_report_fn report)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = thread_safe;
	cfg.safety = safety;
	cfg.stack_trace_depth = depth;
	cfg.memory_limit = limit;
	cfg.report = report;
	cfg.canary = cfg.junk = with_checks;
	memset(kinds, 0, sizeof(kinds));
	return beamalloc_gpa_create(backing, &cfg);
}

static beamalloc_gpa *
make_gpa(beamalloc_allocator backing, bool thread_safe, bool safety,
    unsigned depth)
{
	return make_gpa_with(backing, thread_safe, safety, depth, 0,
	    count_report);
}

/* ------------------------------------------------------------------------
 * 1. Two frees of one block at the same instant
 * ---------------------------------------------------------------------- */

/* A sense-reversing barrier for three: spin, yielding, so that a busy
 * machine still gets through. */
struct meet {
	unsigned count, sense;
};

static void
meet(struct meet *m, unsigned n, unsigned *local)
{
	*local ^= 1;
	if (__atomic_add_fetch(&m->count, 1, __ATOMIC_ACQ_REL) == n) {
		__atomic_store_n(&m->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&m->sense, *local, __ATOMIC_RELEASE);
		return;
	}
	for (unsigned spins = 0; __atomic_load_n(&m->sense,
	    __ATOMIC_ACQUIRE) != *local; spins++)
		if (spins > 64)
			sched_yield();
}

struct race {
	beamalloc_allocator a;
	struct meet m;
	void *block;			/* __atomic loads and stores */
	unsigned rounds;
};

static void *
freer(void *arg)
{
	struct race *r = arg;
	unsigned local = 0;

	for (unsigned i = 0; i < r->rounds; i++) {
		meet(&r->m, 3, &local);		/* the block is there */
		beamalloc_free(r->a, __atomic_load_n(&r->block,
		    __ATOMIC_ACQUIRE), BLOCK);
		meet(&r->m, 3, &local);		/* both frees done */
	}
	return NULL;
}

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

static void
double_free_race(const char *what, bool safety, unsigned depth, size_t limit,
    unsigned rounds)
{
	beamalloc_gpa *g = make_gpa_with(beamalloc_libc(), true, safety, depth,
	    limit, count_report);
	struct race r = { .rounds = rounds };
	pthread_t t[2];
	unsigned local = 0, missed = 0, extra = 0, first_bad = 0;
	enum { N = 4096 };
	uintptr_t *seen = malloc(N * sizeof(*seen));
	size_t dup = 0;

	if (g == NULL || seen == NULL)
		bail("no GPA");
	r.a = beamalloc_gpa_allocator(g);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, freer, &r) != 0)
			bail("pthread_create");
	for (unsigned i = 0; i < rounds; i++) {
		unsigned long before = nkind(BEAMALLOC_REPORT_DOUBLE_FREE),
		    now;

		__atomic_store_n(&r.block, beamalloc_alloc(r.a, BLOCK),
		    __ATOMIC_RELEASE);
		meet(&r.m, 3, &local);
		meet(&r.m, 3, &local);
		now = nkind(BEAMALLOC_REPORT_DOUBLE_FREE) - before;
		if (now == 0 && missed++ == 0)
			first_bad = i;
		if (now > 1)
			extra++;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (!ok(missed == 0 && extra == 0, "%s: %u rounds of two threads "
	    "freeing one block at once: one double free reported every "
	    "round", what, rounds))
		diag("  %u rounds unreported (first: %u), %u reported twice",
		    missed, first_bad, extra);
	is_int(nall(), rounds, "%s: and no other report", what);

	/* A slot pushed twice would come out twice. */
	for (size_t i = 0; i < N; i++)
		seen[i] = (uintptr_t)beamalloc_alloc(r.a, BLOCK);
	qsort(seen, N, sizeof(*seen), cmp_ptr);
	for (size_t i = 1; i < N; i++)
		dup += seen[i] == seen[i - 1];
	is_size(dup, 0, "%s: %d blocks allocated afterwards are all "
	    "distinct", what, N);
	for (size_t i = 0; i < N; i++)
		beamalloc_free(r.a, (void *)seen[i], BLOCK);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: nothing leaked", what);
	free(seen);
}

/* A GPA with safety frees with plain stores until a thread frees a block
 * another thread allocated: that first free waits for every free in
 * progress, then claims atomically.  Each round a new GPA: its owner
 * thread allocates a block, then frees it as the other thread frees it
 * too (that GPA's first such free), the owner after a spin of its own
 * length each round, so that its free falls before, during or after
 * the other's wait.  One double free reported, and the slot given out
 * once after (the other's copy sent home by a trim). */
struct first {
	struct meet m;
	beamalloc_gpa *g;		/* set before a meet */
	void *block;			/* __atomic loads and stores */
	unsigned rounds, dups;
};

static void
spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i = i + 1)
		;
}

static void *
first_owner(void *arg)
{
	struct first *f = arg;
	unsigned local = 0;
	enum { N = 512 };
	void *seen[N];

	for (unsigned i = 0; i < f->rounds; i++) {
		meet(&f->m, 3, &local);		/* the GPA is there */
		beamalloc_allocator a = beamalloc_gpa_allocator(f->g);
		void *p = beamalloc_alloc(a, BLOCK);

		/* A few of its own first: its slots come from its cache. */
		for (int k = 0; k < 8; k++)
			seen[k] = beamalloc_alloc(a, BLOCK);
		for (int k = 0; k < 8; k++)
			beamalloc_free(a, seen[k], BLOCK);
		__atomic_store_n(&f->block, p, __ATOMIC_RELEASE);
		meet(&f->m, 3, &local);		/* the block is there */
		spin((i % 64) * 40);
		beamalloc_free(a, p, BLOCK);
		meet(&f->m, 3, &local);		/* both frees done */
		meet(&f->m, 3, &local);		/* the other has trimmed */
		for (int k = 0; k < N; k++)
			seen[k] = beamalloc_alloc(a, BLOCK);
		qsort(seen, N, sizeof(*seen), cmp_ptr);
		for (int k = 1; k < N; k++)
			f->dups += seen[k] == seen[k - 1];
		for (int k = 0; k < N; k++)
			beamalloc_free(a, seen[k], BLOCK);
		meet(&f->m, 3, &local);		/* the round is over */
	}
	return NULL;
}

static void *
first_other(void *arg)
{
	struct first *f = arg;
	unsigned local = 0;

	for (unsigned i = 0; i < f->rounds; i++) {
		meet(&f->m, 3, &local);
		meet(&f->m, 3, &local);
		beamalloc_free(beamalloc_gpa_allocator(f->g),
		    __atomic_load_n(&f->block, __ATOMIC_ACQUIRE), BLOCK);
		meet(&f->m, 3, &local);
		beamalloc_gpa_trim(f->g);
		meet(&f->m, 3, &local);
		meet(&f->m, 3, &local);
	}
	return NULL;
}

static void
first_foreign_free(unsigned rounds)
{
	struct first f = { .rounds = rounds };
	pthread_t t[2];
	unsigned local = 0, wrong = 0, first_bad = 0, leaked = 0;

	if (pthread_create(&t[0], NULL, first_owner, &f) != 0 ||
	    pthread_create(&t[1], NULL, first_other, &f) != 0)
		bail("pthread_create");
	for (unsigned i = 0; i < rounds; i++) {
		beamalloc_gpa *g = make_gpa(beamalloc_libc(), true, true, 0);

		if (g == NULL)
			bail("no GPA");
		f.g = g;
		meet(&f.m, 3, &local);
		meet(&f.m, 3, &local);
		meet(&f.m, 3, &local);
		if ((nkind(BEAMALLOC_REPORT_DOUBLE_FREE) != 1 || nall() != 1) &&
		    wrong++ == 0)
			first_bad = i;
		meet(&f.m, 3, &local);
		meet(&f.m, 3, &local);
		leaked += beamalloc_gpa_destroy(g) != 0;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (!ok(wrong == 0, "the first free of another thread's block, "
	    "racing its owner's free, in %u new GPAs: one double free "
	    "reported each time, nothing else", rounds))
		diag("  %u rounds wrong (first: %u)", wrong, first_bad);
	is_int(f.dups, 0, "and the slot was given out once after, each time");
	is_int(leaked, 0, "and no GPA leaked");
}

/* ------------------------------------------------------------------------
 * 2. A single-thread GPA entered by two threads
 * ---------------------------------------------------------------------- */

/* A backing whose allocations wait, inside the GPA, until the second
 * thread has been reported: the overlap is made, not hoped for. */
struct gate {
	int waiting;		/* armed: the next allocation waits */
	int inside;		/* the first thread is waiting in it */
	int released;
	time_t deadline;
};

static struct gate gate;

static bool
gate_wait(int *flag)
{
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (time(NULL) > gate.deadline)
			return false;
		sched_yield();
	}
	return true;
}

static void *
gate_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator *b = ctx;

	if (__atomic_exchange_n(&gate.waiting, 0, __ATOMIC_ACQ_REL)) {
		__atomic_store_n(&gate.inside, 1, __ATOMIC_RELEASE);
		if (!gate_wait(&gate.released))
			diag("  the second thread was never reported");
	}
	return b->vtable->alloc(b->ctx, len, align, ra);
}

static bool
gate_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator *b = ctx;

	return b->vtable->resize(b->ctx, mem, len, align, new_len, ra);
}

static void *
gate_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	beamalloc_allocator *b = ctx;

	return b->vtable->remap(b->ctx, mem, len, align, new_len, ra);
}

static void
gate_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator *b = ctx;

	b->vtable->free(b->ctx, mem, len, align, ra);
}

static const beamalloc_vtable gate_vtable = {
	gate_alloc, gate_resize, gate_remap, gate_free
};

/* The second thread's report opens the gate. */
static void
gate_report(void *user, const beamalloc_report *r)
{
	count_report(user, r);
	if (r->kind == BEAMALLOC_REPORT_CONCURRENT_USE)
		__atomic_store_n(&gate.released, 1, __ATOMIC_RELEASE);
}

struct st_job {
	beamalloc_allocator a;
	size_t len;
	void *p;
	unsigned char *q;
};

static void *
st_first(void *arg)
{
	struct st_job *j = arg;

	/* A large block: straight to the backing, which waits. */
	j->p = beamalloc_alloc(j->a, j->len);
	return NULL;
}

static void
single_thread_misuse(const char *what, unsigned depth)
{
	beamalloc_allocator libc = beamalloc_libc();
	beamalloc_allocator gated = { &libc, &gate_vtable };
	beamalloc_gpa *g;
	beamalloc_allocator a;
	struct st_job j = { .len = 100000 };
	pthread_t t;
	void *mine;
	bool met;

	memset(&gate, 0, sizeof(gate));
	gate.deadline = time(NULL) + 60;
	g = make_gpa_with(gated, false, true, depth, 0, gate_report);
	if (g == NULL)
		bail("no GPA");
	a = j.a = beamalloc_gpa_allocator(g);
	/* Warm: the single thread's own use is never reported. */
	mine = beamalloc_alloc(a, 48);
	beamalloc_free(a, mine, 48);
	__atomic_store_n(&gate.waiting, 1, __ATOMIC_RELEASE);
	if (pthread_create(&t, NULL, st_first, &j) != 0)
		bail("pthread_create");
	met = gate_wait(&gate.inside);
	ok(met, "%s: the first thread is inside the GPA (waiting in its "
	    "backing)", what);
	/* This thread comes in now: reported, then it waits its turn. */
	mine = beamalloc_alloc(a, 48);
	pthread_join(t, NULL);
	is_int(nkind(BEAMALLOC_REPORT_CONCURRENT_USE), 1,
	    "%s: the second thread is reported as used by two threads at "
	    "once", what);
	is_int(nall(), 1, "%s: and nothing else is reported", what);
	ok(mine != NULL && j.p != NULL, "%s: both calls were served", what);
	memset(mine, 0xa5, 48);
	memset(j.p, 0x5a, j.len);
	beamalloc_free(a, mine, 48);
	beamalloc_free(a, j.p, j.len);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: nothing leaked, nothing "
	    "more reported (%lu reports)", what, nall());
}

/* One thread after another, properly handed over, is not misuse. */
static void *
st_take_turn(void *arg)
{
	struct st_job *j = arg;

	j->p = beamalloc_alloc(j->a, 32);
	beamalloc_free(j->a, j->p, 32);
	return NULL;
}

static void
single_thread_handover(void)
{
	beamalloc_gpa *g = make_gpa(beamalloc_libc(), false, true, 0);
	struct st_job j;
	pthread_t t;

	if (g == NULL)
		bail("no GPA");
	j.a = beamalloc_gpa_allocator(g);
	for (int i = 0; i < 3; i++) {
		if (pthread_create(&t, NULL, st_take_turn, &j) != 0)
			bail("pthread_create");
		pthread_join(t, NULL);
	}
	st_take_turn(&j);
	is_int(nall(), 0, "thread_safe off: threads taking turns are not "
	    "reported");
	is_size(beamalloc_gpa_destroy(g), 0, "thread_safe off: taking turns "
	    "leaks nothing");
}

int
main(void)
{
	unsigned rounds = UNDER_VALGRIND() ? 300 : 100000;

	plan(4 * 4 + 3 + 5 * 2 + 2);
	double_free_race("fast path, safety on", true, 0, 0, rounds);
	double_free_race("general path, safety on (traces)", true, 4, 0,
	    rounds / 20);
	double_free_race("general path, safety off (memory limit)", false, 0,
	    1 << 30, rounds / 4);
	with_checks = true;
	double_free_race("canary and junk, safety on (no overflow seen "
	    "in the winner's junk)", true, 0, 0, rounds / 2);
	with_checks = false;
	first_foreign_free(UNDER_VALGRIND() ? 30 : 3000);
	single_thread_misuse("thread_safe off, safety on", 0);
	single_thread_misuse("thread_safe off, traces", 4);
	single_thread_handover();
	return done_testing();
}
