/*
 * conc_nif.c - the global GPA under concurrency inside a real BEAM: NIFs
 * on every normal scheduler, on dirty CPU schedulers and on
 * enif_thread_create threads allocate, fill, check and free blocks of
 * mixed sizes and alignments at once; blocks also travel between
 * processes in resources and are freed by another scheduler.
 */
#define _GNU_SOURCE		/* pthread_getname_np */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include <beamalloc/nif.h>

#define BATCH 16		/* blocks live at once per round */

struct block {
	unsigned char *p;
	size_t len;
	size_t align;
	unsigned char tag;
};

/* Blocks handed from one process to another. */
struct parcel {
	size_t n;
	int from_sched;		/* scheduler number that allocated them */
	bool dropped;
	struct block b[BATCH];
};

/* enif_thread_create threads and what they found. */
struct crew {
	int n;
	unsigned rounds;
	bool joined;
	ErlNifTid tid[16];
	struct worker {
		struct crew *crew;
		uint64_t seed;
		uint64_t errors;
		uint64_t calls;
		int type;
	} w[16];
};

static ErlNifResourceType *parcel_type, *crew_type;

/*
 * The rendezvous: proof that the three kinds of caller (normal scheduler,
 * dirty scheduler, enif_thread_create thread) held blocks of the global
 * GPA at the same time.  Waiting for luck is not enough on a busy 2-core
 * machine, so the overlap is made to happen: in its first round each
 * call, holding BATCH live blocks, checks in at the rendezvous.  Dirty
 * NIFs and threads are OS threads of their own: they wait there (up to
 * RENDEZVOUS_SECONDS) until all three kinds are in.  A normal scheduler
 * must not block, so it waits at most NORMAL_WAIT_US; the 1000 processes
 * call again and again (the Erlang side keeps them going until the
 * rendezvous is settled, or the dirty NIFs and the threads are done), so
 * one of them finds the others waiting.
 * No one waits for a normal scheduler to do anything but be called, so
 * this cannot deadlock however few schedulers there are.
 *
 * present holds a count per kind, KIND_BITS bits each, in one word, so
 * that one load sees who is in at one instant.  Whoever first sees all
 * three kinds in sets met; a waiter that times out records, in missing,
 * the kinds that were not there, and then nobody waits any more.
 */
enum { NORMAL, DIRTY, THREAD, NKINDS };
#define KIND_BITS 16
#define RENDEZVOUS_SECONDS 60
#define NORMAL_WAIT_US 200
static uint64_t present;
static unsigned met;		/* 1: all three kinds were in at once */
static unsigned timed_out;	/* 1: a waiter gave up */
static unsigned missing;	/* bit k: kind k absent when it gave up */
static unsigned arrived;	/* bit k: kind k ever checked in */
static uint64_t at_meeting;	/* present when met was set */

/* ------------------------------------------------------------------------
 * Work
 * ---------------------------------------------------------------------- */

static uint64_t
next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Mostly small blocks, some pages, a few large; mostly 8-aligned. */
static void
pick(uint64_t *s, struct block *b)
{
	uint64_t r = next(s);
	unsigned k = r % 100;
	static const size_t aligns[] = { 8, 8, 8, 8, 16, 32, 64, 4096 };

	if (k < 70)
		b->len = 1 + (r >> 8) % 512;
	else if (k < 95)
		b->len = 512 + (r >> 8) % 8192;
	else
		b->len = 8192 + (r >> 8) % 70000;
	b->align = aligns[(r >> 40) % 8];
	b->tag = (unsigned char)(r >> 48);
}

static uint64_t
fill(beamalloc_allocator a, uint64_t *s, struct block *b)
{
	pick(s, b);
	b->p = beamalloc_alloc_aligned(a, b->len, b->align);
	if (b->p == NULL)
		return 1;
	memset(b->p, b->tag, b->len);
	return (uintptr_t)b->p % b->align != 0;
}

/* Errors: contents overwritten by someone else.  Then free. */
static uint64_t
check_free(beamalloc_allocator a, struct block *b)
{
	uint64_t bad = 0;

	if (b->p == NULL)
		return 0;
	for (size_t i = 0; i < b->len; i += 1 + i / 8)
		bad |= b->p[i] != b->tag;
	bad |= b->p[b->len - 1] != b->tag;
	beamalloc_free_aligned(a, b->p, b->len, b->align);
	b->p = NULL;
	return bad;
}

static uint64_t
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static bool
all_in(uint64_t p)
{
	for (int k = 0; k < NKINDS; k++)
		if (((p >> (k * KIND_BITS)) & ((1u << KIND_BITS) - 1)) == 0)
			return false;
	return true;
}

/* Called while the caller holds live blocks of the global GPA. */
static void
rendezvous(int kind)
{
	uint64_t one = (uint64_t)1 << (kind * KIND_BITS), p, until;
	struct timespec ms = { 0, 1000000 };

	if (__atomic_load_n(&met, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&timed_out, __ATOMIC_SEQ_CST))
		return;
	__atomic_or_fetch(&arrived, 1u << kind, __ATOMIC_SEQ_CST);
	p = __atomic_add_fetch(&present, one, __ATOMIC_SEQ_CST);
	until = now_us() + (kind == NORMAL ? NORMAL_WAIT_US :
	    (uint64_t)RENDEZVOUS_SECONDS * 1000000);
	for (;;) {
		if (all_in(p)) {
			unsigned no = 0;

			if (__atomic_compare_exchange_n(&met, &no, 1, false,
			    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				__atomic_store_n(&at_meeting, p,
				    __ATOMIC_SEQ_CST);
			break;
		}
		if (__atomic_load_n(&met, __ATOMIC_SEQ_CST) ||
		    __atomic_load_n(&timed_out, __ATOMIC_SEQ_CST))
			break;
		if (now_us() >= until) {
			if (kind != NORMAL) {
				unsigned m = 0;

				for (int k = 0; k < NKINDS; k++)
					if (((p >> (k * KIND_BITS)) &
					    ((1u << KIND_BITS) - 1)) == 0)
						m |= 1u << k;
				__atomic_or_fetch(&missing, m,
				    __ATOMIC_SEQ_CST);
				__atomic_store_n(&timed_out, 1,
				    __ATOMIC_SEQ_CST);
			}
			break;
		}
		if (kind == NORMAL)
			sched_yield();
		else
			nanosleep(&ms, NULL);
		p = __atomic_load_n(&present, __ATOMIC_SEQ_CST);
	}
	__atomic_sub_fetch(&present, one, __ATOMIC_SEQ_CST);
}

/* rounds x (BATCH allocations, then frees in a shuffled order). */
static uint64_t
churn_rounds(int kind, unsigned rounds, uint64_t seed)
{
	beamalloc_allocator a = beamalloc_general_purpose();
	struct block b[BATCH];
	uint64_t errors = 0, s = seed | 1;

	for (unsigned r = 0; r < rounds; r++) {
		for (int i = 0; i < BATCH; i++)
			errors += fill(a, &s, &b[i]);
		if (r == 0)
			rendezvous(kind);
		for (int i = BATCH - 1; i > 0; i--) {
			int j = (int)(next(&s) % (uint64_t)(i + 1));
			struct block t = b[i];

			b[i] = b[j];
			b[j] = t;
		}
		for (int i = 0; i < BATCH; i++)
			errors += check_free(a, &b[i]);
	}
	return errors;
}

/* The number in the thread's name: ERTS names its threads "3_scheduler",
 * "1_dirty_cpu_sch" ...; 0 for anything else. */
static int
thread_number(const char *suffix)
{
	char name[32];
	char *end;
	long n;

	if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0)
		return 0;
	n = strtol(name, &end, 10);
	return end != name && strncmp(end, suffix, strlen(suffix)) == 0 ?
	    (int)n : 0;
}

/* ------------------------------------------------------------------------
 * NIFs
 * ---------------------------------------------------------------------- */

/* churn(Rounds, Seed) -> {ThreadType, SchedulerNumber, Errors}. */
static ERL_NIF_TERM
churn(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned rounds;
	ErlNifUInt64 seed;
	uint64_t errors;
	int type = enif_thread_type();

	(void)argc;
	if (!enif_get_uint(env, argv[0], &rounds) ||
	    !enif_get_uint64(env, argv[1], &seed))
		return enif_make_badarg(env);
	errors = churn_rounds(type == ERL_NIF_THR_DIRTY_CPU_SCHEDULER ? DIRTY :
	    NORMAL, rounds, seed);
	return enif_make_tuple3(env, enif_make_int(env, type),
	    enif_make_int(env, thread_number(type ==
	    ERL_NIF_THR_DIRTY_CPU_SCHEDULER ? "_dirty_cpu" : "_scheduler")),
	    enif_make_uint64(env, errors));
}

/* keep(Seed) -> Parcel: BATCH blocks, filled, for another process. */
static ERL_NIF_TERM
keep(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_general_purpose();
	ErlNifUInt64 seed;
	uint64_t s;
	struct parcel *pc;
	ERL_NIF_TERM t;

	(void)argc;
	if (!enif_get_uint64(env, argv[0], &seed))
		return enif_make_badarg(env);
	s = seed | 1;
	if ((pc = enif_alloc_resource(parcel_type, sizeof(*pc))) == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	memset(pc, 0, sizeof(*pc));
	pc->from_sched = thread_number("_scheduler");
	for (pc->n = 0; pc->n < BATCH; pc->n++)
		if (fill(a, &s, &pc->b[pc->n]) != 0)
			break;
	t = enif_make_resource(env, pc);
	enif_release_resource(pc);
	return pc->n == BATCH ? t : enif_make_atom(env, "error");
}

/* drop(Parcel) -> {Errors, FreedOnAnotherScheduler}. */
static ERL_NIF_TERM
drop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_general_purpose();
	struct parcel *pc;
	uint64_t errors = 0;

	(void)argc;
	if (!enif_get_resource(env, argv[0], parcel_type, (void **)&pc) ||
	    pc->dropped)
		return enif_make_badarg(env);
	for (size_t i = 0; i < pc->n; i++)
		errors += check_free(a, &pc->b[i]);
	pc->dropped = true;
	return enif_make_tuple2(env, enif_make_uint64(env, errors),
	    enif_make_atom(env, thread_number("_scheduler") != pc->from_sched ?
	    "true" : "false"));
}

/* A parcel nobody dropped is freed by whichever thread collects it. */
static void
parcel_dtor(ErlNifEnv *env, void *obj)
{
	struct parcel *pc = obj;

	(void)env;
	if (!pc->dropped)
		for (size_t i = 0; i < pc->n; i++)
			(void)check_free(beamalloc_general_purpose(),
			    &pc->b[i]);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	w->type = enif_thread_type();
	for (unsigned i = 0; i < w->crew->rounds; i += 10, w->calls++)
		w->errors += churn_rounds(THREAD, 10, w->seed + i);
	return NULL;
}

static void
crew_join(struct crew *c)
{
	if (c->joined)
		return;
	for (int i = 0; i < c->n; i++)
		enif_thread_join(c->tid[i], NULL);
	c->joined = true;
}

static void
crew_dtor(ErlNifEnv *env, void *obj)
{
	(void)env;
	crew_join(obj);
}

/* threads_start(N, Rounds, Seed) -> Crew: N enif threads churning. */
static ERL_NIF_TERM
threads_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct crew *c;
	int n;
	unsigned rounds;
	ErlNifUInt64 seed;
	ERL_NIF_TERM t;

	(void)argc;
	if (!enif_get_int(env, argv[0], &n) || n < 1 || n > 16 ||
	    !enif_get_uint(env, argv[1], &rounds) ||
	    !enif_get_uint64(env, argv[2], &seed))
		return enif_make_badarg(env);
	if ((c = enif_alloc_resource(crew_type, sizeof(*c))) == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	memset(c, 0, sizeof(*c));
	c->rounds = rounds;
	for (c->n = 0; c->n < n; c->n++) {
		struct worker *w = &c->w[c->n];

		w->crew = c;
		w->seed = seed + (uint64_t)c->n * 1000003;
		if (enif_thread_create("ba_churn", &c->tid[c->n], worker_main,
		    w, NULL) != 0)
			break;
	}
	t = enif_make_resource(env, c);
	enif_release_resource(c);
	return c->n == n ? t : enif_make_atom(env, "error");
}

/* threads_join(Crew) -> [{ThreadType, Calls, Errors}] (a dirty NIF). */
static ERL_NIF_TERM
threads_join(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct crew *c;
	ERL_NIF_TERM list;

	(void)argc;
	if (!enif_get_resource(env, argv[0], crew_type, (void **)&c))
		return enif_make_badarg(env);
	crew_join(c);
	list = enif_make_list(env, 0);
	for (int i = c->n; i-- > 0;)
		list = enif_make_list_cell(env, enif_make_tuple3(env,
		    enif_make_int(env, c->w[i].type),
		    enif_make_uint64(env, c->w[i].calls),
		    enif_make_uint64(env, c->w[i].errors)), list);
	return list;
}

/* settled() -> true once the rendezvous met or a waiter gave up. */
static ERL_NIF_TERM
settled(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_atom(env, __atomic_load_n(&met, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&timed_out, __ATOMIC_SEQ_CST) ? "true" : "false");
}

/* kind_list(Bits) -> the kinds named by the bits, e.g. [normal, thread]. */
static ERL_NIF_TERM
kind_list(ErlNifEnv *env, unsigned bits)
{
	static const char *names[NKINDS] = { "normal", "dirty", "thread" };
	ERL_NIF_TERM list = enif_make_list(env, 0);

	for (int k = NKINDS; k-- > 0;)
		if (bits & (1u << k))
			list = enif_make_list_cell(env,
			    enif_make_atom(env, names[k]), list);
	return list;
}

/* rendezvous() -> {met, {Normal, Dirty, Thread}} (how many of each held
 * blocks at that instant) | {timeout, Missing, Arrived} (a waiter gave up
 * after RENDEZVOUS_SECONDS; Missing: the kinds not in when it did) |
 * {not_met, NeverArrived, Arrived} (nobody waited). */
static ERL_NIF_TERM
rendezvous_result(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	uint64_t p;
	unsigned mask = (1u << KIND_BITS) - 1, in;

	(void)argc, (void)argv;
	if (__atomic_load_n(&met, __ATOMIC_SEQ_CST)) {
		p = __atomic_load_n(&at_meeting, __ATOMIC_SEQ_CST);
		return enif_make_tuple2(env, enif_make_atom(env, "met"),
		    enif_make_tuple3(env,
		    enif_make_uint(env, (unsigned)(p >> (NORMAL * KIND_BITS)) & mask),
		    enif_make_uint(env, (unsigned)(p >> (DIRTY * KIND_BITS)) & mask),
		    enif_make_uint(env, (unsigned)(p >> (THREAD * KIND_BITS)) & mask)));
	}
	in = __atomic_load_n(&arrived, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&timed_out, __ATOMIC_SEQ_CST))
		return enif_make_tuple3(env, enif_make_atom(env, "timeout"),
		    kind_list(env, __atomic_load_n(&missing, __ATOMIC_SEQ_CST)),
		    kind_list(env, in));
	return enif_make_tuple3(env, enif_make_atom(env, "not_met"),
	    kind_list(env, ~in & ((1u << NKINDS) - 1)), kind_list(env, in));
}

/* gpa_state() -> {LiveBlocks, LiveBytes, LeaksDetected, BackingBytes,
 * PeakBytes}. */
static ERL_NIF_TERM
gpa_state(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_stats s;
	size_t leaks;

	(void)argc, (void)argv;
	leaks = beamalloc_gpa_detect_leaks(beamalloc_gpa_global());
	beamalloc_gpa_get_stats(beamalloc_gpa_global(), &s);
	return enif_make_tuple5(env, enif_make_uint64(env, s.live_blocks),
	    enif_make_uint64(env, s.live_bytes), enif_make_uint64(env, leaks),
	    enif_make_uint64(env, s.backing_bytes),
	    enif_make_uint64(env, s.peak_bytes));
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)priv, (void)info;
	parcel_type = enif_open_resource_type(env, NULL, "parcel",
	    parcel_dtor, ERL_NIF_RT_CREATE, NULL);
	crew_type = enif_open_resource_type(env, NULL, "crew", crew_dtor,
	    ERL_NIF_RT_CREATE, NULL);
	return parcel_type == NULL || crew_type == NULL;
}

static ErlNifFunc funcs[] = {
	{ "churn", 2, churn, 0 },
	{ "churn_dirty", 2, churn, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "keep", 1, keep, 0 },
	{ "drop", 1, drop, 0 },
	{ "threads_start", 3, threads_start, 0 },
	{ "threads_join", 1, threads_join, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "gpa_state", 0, gpa_state, 0 },
	{ "rendezvous", 0, rendezvous_result, 0 },
	{ "settled", 0, settled, 0 },
};

ERL_NIF_INIT(concurrency, funcs, load, NULL, NULL, NULL)
