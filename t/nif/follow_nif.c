/*
 * follow_nif.c - <beamalloc/nif.h> following a NIF's memory: stats as a
 * map, leak checks across enif_schedule_nif() steps, on threads of their
 * own, and in resources that own an allocator (t/nif/follow.erl).
 */
#include <stdatomic.h>
#include <time.h>

#include "common.h"

/* Reports captured from the GPAs of chains, threads and resources. */
static _Atomic size_t got_leaks, got_leak_bytes, got_misuses, got_cleanups;

static void
capture(void *user, const beamalloc_report *r)
{
	(void)user;
	if (r->kind == BEAMALLOC_REPORT_LEAK) {
		atomic_fetch_add(&got_leaks, 1);
		atomic_fetch_add(&got_leak_bytes, r->size);
	} else
		atomic_fetch_add(&got_misuses, 1);
}

static beamalloc_gpa_config cap_cfg;

/* reports() -> {Leaks, LeakBytes, Misuses, Cleanups}, and zeroes them. */
static ERL_NIF_TERM
reports(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_tuple4(env,
	    enif_make_uint64(env, atomic_exchange(&got_leaks, 0)),
	    enif_make_uint64(env, atomic_exchange(&got_leak_bytes, 0)),
	    enif_make_uint64(env, atomic_exchange(&got_misuses, 0)),
	    enif_make_uint64(env, atomic_exchange(&got_cleanups, 0)));
}

/* ------------------------------------------------------------------------
 * Stats: one GPA per safety setting, thread safety off (the test's one
 * process calls in turn, so the figures are exact), blocks kept here.
 * ---------------------------------------------------------------------- */

#define MAXKEEP 20000

static beamalloc_gpa *sgpa[2];
static struct kept { void *p; size_t len; } kept[2][MAXKEEP];
static size_t nkept[2];

static int
which(ErlNifEnv *env, ERL_NIF_TERM t, int *w)
{
	char a[16];

	if (!enif_get_atom(env, t, a, sizeof(a), ERL_NIF_LATIN1))
		return 0;
	*w = strcmp(a, "safe") == 0 ? 1 : 0;
	return strcmp(a, "safe") == 0 || strcmp(a, "unsafe") == 0;
}

/* st_alloc(safe | unsafe, N, Size) -> ok */
static ERL_NIF_TERM
st_alloc(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int w;
	unsigned n, size;
	beamalloc_allocator a;

	(void)argc;
	if (!which(env, argv[0], &w) || !enif_get_uint(env, argv[1], &n) ||
	    !enif_get_uint(env, argv[2], &size) || nkept[w] + n > MAXKEEP)
		return enif_make_badarg(env);
	a = beamalloc_gpa_allocator(sgpa[w]);
	for (unsigned i = 0; i < n; i++) {
		void *p = beamalloc_alloc(a, size);

		if (p == NULL)
			return beamalloc_nif_raise_errno(env);
		kept[w][nkept[w]++] = (struct kept){ p, size };
	}
	return enif_make_atom(env, "ok");
}

/* st_free_all(safe | unsafe) -> ok */
static ERL_NIF_TERM
st_free_all(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int w;
	beamalloc_allocator a;

	(void)argc;
	if (!which(env, argv[0], &w))
		return enif_make_badarg(env);
	a = beamalloc_gpa_allocator(sgpa[w]);
	while (nkept[w] > 0) {
		nkept[w]--;
		beamalloc_free(a, kept[w][nkept[w]].p, kept[w][nkept[w]].len);
	}
	return enif_make_atom(env, "ok");
}

/* st_stats(safe | unsafe | global) -> the map */
static ERL_NIF_TERM
st_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int w;

	(void)argc;
	if (enif_is_identical(argv[0], enif_make_atom(env, "global")))
		return beamalloc_nif_make_stats(env, NULL);
	if (!which(env, argv[0], &w))
		return enif_make_badarg(env);
	return beamalloc_nif_make_stats(env, sgpa[w]);
}

/* st_peak(safe) -> {PeakBefore, Returned, PeakAfterReset, LiveAfterReset,
 * PeakAfter1000}: in one call, 10 x 1000 B allocated and freed, the peak
 * reset, then 1000 B allocated and freed. */
static ERL_NIF_TERM
st_peak(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa *g = sgpa[1];
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	beamalloc_gpa_stats s0, s1, s2;
	void *p[10];
	size_t ret;

	(void)argc, (void)argv;
	for (int i = 0; i < 10; i++)
		p[i] = beamalloc_alloc(a, 1000);
	for (int i = 0; i < 10; i++)
		beamalloc_free(a, p[i], 1000);
	beamalloc_gpa_get_stats(g, &s0);
	ret = beamalloc_gpa_reset_peak(g);
	beamalloc_gpa_get_stats(g, &s1);
	p[0] = beamalloc_alloc(a, 1000);
	beamalloc_free(a, p[0], 1000);
	beamalloc_gpa_get_stats(g, &s2);
	return enif_make_tuple5(env, enif_make_uint64(env, s0.peak_bytes),
	    enif_make_uint64(env, ret), enif_make_uint64(env, s1.peak_bytes),
	    enif_make_uint64(env, s1.live_bytes),
	    enif_make_uint64(env, s2.peak_bytes));
}

/* st_time(safe | global, Calls) -> best nanoseconds per make_stats call
 * over 5 batches of Calls. */
static ERL_NIF_TERM
st_time(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa *g;
	unsigned calls;
	double best = 1e18;
	int w;

	(void)argc;
	if (!enif_get_uint(env, argv[1], &calls) || calls == 0)
		return enif_make_badarg(env);
	if (enif_is_identical(argv[0], enif_make_atom(env, "global")))
		g = beamalloc_gpa_global();
	else if (which(env, argv[0], &w))
		g = sgpa[w];
	else
		return enif_make_badarg(env);
	for (int b = 0; b < 5; b++) {
		struct timespec t0, t1;
		ErlNifEnv *e = enif_alloc_env();
		double ns;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (unsigned i = 0; i < calls; i++)
			(void)beamalloc_nif_make_stats(e, g);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		enif_free_env(e);
		ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
		    (double)(t1.tv_nsec - t0.tv_nsec)) / calls;
		if (ns < best)
			best = ns;
	}
	return enif_make_double(env, best);
}

/* ------------------------------------------------------------------------
 * Chains: chain3(Leak) runs three steps, the second on a dirty CPU
 * scheduler; state of 40 B is carried from the first to the last, and
 * the second leaks 24 B when Leak is true.  chain_raise(Free) raises
 * boom from its second step, having freed its state or not.
 * ---------------------------------------------------------------------- */

static _Atomic int last_step;

static ERL_NIF_TERM
chain3_c(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	(void)argc, (void)argv;
	atomic_store(&last_step, 3);
	if (((unsigned char *)ch->state)[39] != 0xab)
		return enif_make_badarg(env);
	beamalloc_free(ch->allocator, ch->state, 40);
	return enif_make_tuple2(env, enif_make_atom(env, "done"),
	    enif_make_int(env, 3));
}

static ERL_NIF_TERM
chain3_b(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	void *p = beamalloc_alloc(ch->allocator, 24);

	atomic_store(&last_step, 2);
	if (p == NULL)
		return beamalloc_nif_raise_errno(env);
	if (!enif_is_identical(argv[0], enif_make_atom(env, "true")))
		beamalloc_free(ch->allocator, p, 24);
	return beamalloc_nif_chain_next(env, ch, "chain3_c", 0, chain3_c,
	    argc, argv);
}

static ERL_NIF_TERM
chain3_a(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	atomic_store(&last_step, 1);
	if ((ch->state = beamalloc_alloc(ch->allocator, 40)) == NULL)
		return beamalloc_nif_raise_errno(env);
	memset(ch->state, 0xab, 40);
	return beamalloc_nif_chain_next(env, ch, "chain3_b",
	    ERL_NIF_DIRTY_JOB_CPU_BOUND, chain3_b, argc, argv);
}

static ERL_NIF_TERM
chain3(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	atomic_store(&last_step, 0);
	return beamalloc_nif_chain_start(env, argc, argv, chain3_a, "chain3",
	    &cap_cfg);
}

static ERL_NIF_TERM
chain_raise_b(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	(void)argc;
	atomic_store(&last_step, 2);
	if (enif_is_identical(argv[0], enif_make_atom(env, "true")))
		beamalloc_free(ch->allocator, ch->state, 16);
	return enif_raise_exception(env, enif_make_atom(env, "boom"));
}

static ERL_NIF_TERM
chain_raise_a(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	atomic_store(&last_step, 1);
	if ((ch->state = beamalloc_alloc(ch->allocator, 16)) == NULL)
		return beamalloc_nif_raise_errno(env);
	return beamalloc_nif_chain_next(env, ch, "chain_raise_b", 0,
	    chain_raise_b, argc, argv);
}

static ERL_NIF_TERM
chain_raise(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	atomic_store(&last_step, 0);
	return beamalloc_nif_chain_start(env, argc, argv, chain_raise_a,
	    "chain_raise", &cap_cfg);
}

/* chain_wide(Free): a step asks for a next step with one argument more
 * than a chain carries: badarg, which ends the chain with its check (a
 * leak, unless Free, raised in its place). */
static ERL_NIF_TERM
chain_wide_b(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	(void)argc, (void)argv, (void)ch;
	atomic_store(&last_step, 2);
	return enif_make_atom(env, "not_reached");
}

static ERL_NIF_TERM
chain_wide_a(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	ERL_NIF_TERM args[BEAMALLOC_NIF_CHAIN_MAX_ARGS + 1];
	int i;

	(void)argc;
	atomic_store(&last_step, 1);
	if ((ch->state = beamalloc_alloc(ch->allocator, 16)) == NULL)
		return beamalloc_nif_raise_errno(env);
	if (enif_is_identical(argv[0], enif_make_atom(env, "true")))
		beamalloc_free(ch->allocator, ch->state, 16);
	for (i = 0; i <= BEAMALLOC_NIF_CHAIN_MAX_ARGS; i++)
		args[i] = argv[0];
	return beamalloc_nif_chain_next(env, ch, "chain_wide_b", 0,
	    chain_wide_b, BEAMALLOC_NIF_CHAIN_MAX_ARGS + 1, args);
}

static ERL_NIF_TERM
chain_wide(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	atomic_store(&last_step, 0);
	return beamalloc_nif_chain_start(env, argc, argv, chain_wide_a,
	    "chain_wide", &cap_cfg);
}

static ERL_NIF_TERM
chain_last_step(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_int(env, atomic_load(&last_step));
}

/* ------------------------------------------------------------------------
 * Threads: thr(Mode, List) sums List on a thread of its own, decoding it
 * with the thread's GPA; Mode clean, leak (24 B more, kept) or
 * double_free.
 * ---------------------------------------------------------------------- */

static ERL_NIF_TERM
thr_body(ErlNifEnv *env, ERL_NIF_TERM arg, beamalloc_allocator a)
{
	const ERL_NIF_TERM *t;
	int arity;
	int64_t *v, sum = 0;
	size_t n;
	char mode[16];

	if (!enif_get_tuple(env, arg, &arity, &t) || arity != 2 ||
	    !enif_get_atom(env, t[0], mode, sizeof(mode), ERL_NIF_LATIN1))
		return enif_make_atom(env, "badarg");
	if ((v = beamalloc_nif_get_int64_list(env, t[1], a, &n)) == NULL)
		return enif_make_atom(env, "badarg");
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	beamalloc_free(a, v, n * sizeof(*v));
	if (strcmp(mode, "leak") == 0)
		(void)beamalloc_alloc(a, 24);
	else if (strcmp(mode, "double_free") == 0) {
		void *p = beamalloc_alloc(a, 32);

		beamalloc_free(a, p, 32);
		beamalloc_free(a, p, 32);
	}
	return enif_make_int64(env, sum);
}

static ERL_NIF_TERM
thr(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	return beamalloc_nif_thread_spawn(env, "thr_sum", thr_body,
	    enif_make_tuple2(env, argv[0], argv[1]), &cap_cfg);
}

/* A config never given to beamalloc_gpa_config_init() (struct_size 0),
 * which beamalloc_gpa_create() refuses with EINVAL: thr_zeroed() and
 * own_zeroed() raise einval, as the leak check and chain_start() do (found
 * by a review of the pages: both raised enomem, with memory to spare). */
static const beamalloc_gpa_config zeroed_cfg = { .memory_limit = 1 << 20 };

static ERL_NIF_TERM
thr_zeroed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return beamalloc_nif_thread_spawn(env, "thr_zeroed", thr_body,
	    enif_make_tuple2(env, enif_make_atom(env, "clean"),
	    enif_make_list(env, 0)), &zeroed_cfg);
}

/* ------------------------------------------------------------------------
 * Resources that own an allocator: a growing vector of int64 in its own
 * GPA or arena.  own_new(gpa | arena, Tidy): Tidy true frees the vector
 * in the cleanup, false leaves it (the GPA reports it).
 * ---------------------------------------------------------------------- */

static ErlNifResourceType *vec_rt;

struct vec {
	beamalloc_nif_owner own;	/* first */
	int64_t *v;
	size_t n, cap;
	bool tidy;
};

static void
vec_cleanup(void *obj, beamalloc_allocator a)
{
	struct vec *x = (struct vec *)obj;

	atomic_fetch_add(&got_cleanups, 1);
	if (x->tidy && x->cap > 0)
		beamalloc_free(a, x->v, x->cap * sizeof(int64_t));
}

static ERL_NIF_TERM
own_new(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct vec *x;
	ERL_NIF_TERM t;
	bool gpa = enif_is_identical(argv[0], enif_make_atom(env, "gpa"));

	(void)argc;
	x = beamalloc_nif_owned_new(vec_rt, sizeof(*x), gpa ?
	    BEAMALLOC_NIF_OWN_GPA : BEAMALLOC_NIF_OWN_ARENA, &cap_cfg,
	    vec_cleanup);
	if (x == NULL)
		return beamalloc_nif_raise_errno(env);
	x->tidy = enif_is_identical(argv[1], enif_make_atom(env, "true"));
	t = enif_make_resource(env, x);
	enif_release_resource(x);
	return t;
}

/* own_zeroed() raises by errno: einval for zeroed_cfg. */
static ERL_NIF_TERM
own_zeroed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct vec *x;

	(void)argc, (void)argv;
	errno = 0;
	x = beamalloc_nif_owned_new(vec_rt, sizeof(*x), BEAMALLOC_NIF_OWN_GPA,
	    &zeroed_cfg, vec_cleanup);
	if (x != NULL) {
		enif_release_resource(x);
		return enif_make_atom(env, "made");
	}
	return beamalloc_nif_raise_errno(env);
}

/* own_push(Vec, Int) -> Length */
static ERL_NIF_TERM
own_push(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct vec *x;
	ErlNifSInt64 i;

	(void)argc;
	if (!enif_get_resource(env, argv[0], vec_rt, (void **)&x) ||
	    !enif_get_int64(env, argv[1], &i))
		return enif_make_badarg(env);
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 4;
		int64_t *v = beamalloc_realloc(x->own.allocator, x->v,
		    x->cap * sizeof(int64_t), BEAMALLOC_MIN_ALIGN,
		    cap * sizeof(int64_t));

		if (v == NULL)
			return beamalloc_nif_raise_errno(env);
		x->v = v;
		x->cap = cap;
	}
	x->v[x->n++] = (int64_t)i;
	return enif_make_uint64(env, x->n);
}

/* own_sum(Vec) -> Sum */
static ERL_NIF_TERM
own_sum(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct vec *x;

	(void)argc;
	if (!enif_get_resource(env, argv[0], vec_rt, (void **)&x))
		return enif_make_badarg(env);
	return int64s_total(env, x->v, x->n);
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	beamalloc_gpa_config c;

	(void)priv, (void)info;
	beamalloc_gpa_config_init(&cap_cfg);
	cap_cfg.report = capture;
	beamalloc_gpa_config_init(&c);
	c.thread_safe = false;
	c.safety = false;
	sgpa[0] = beamalloc_gpa_create(beamalloc_wide(), &c);
	c.safety = true;
	sgpa[1] = beamalloc_gpa_create(beamalloc_wide(), &c);
	if (sgpa[0] == NULL || sgpa[1] == NULL)
		return -1;
	if ((vec_rt = beamalloc_nif_owned_type(env, "vec")) == NULL)
		return -1;
	return beamalloc_nif_init(env);
}

static void
unload(ErlNifEnv *env, void *priv)
{
	(void)env, (void)priv;
	beamalloc_nif_fini();		/* joins the threads */
}

static ErlNifFunc funcs[] = {
	{ "reports", 0, reports, 0 },
	{ "st_alloc", 3, st_alloc, 0 },
	{ "st_free_all", 1, st_free_all, 0 },
	{ "st_stats", 1, st_stats, 0 },
	{ "st_peak", 0, st_peak, 0 },
	{ "st_time", 2, st_time, 0 },
	{ "chain3", 1, chain3, 0 },
	{ "chain_raise", 1, chain_raise, 0 },
	{ "chain_wide", 1, chain_wide, 0 },
	{ "chain_last_step", 0, chain_last_step, 0 },
	{ "thr", 2, thr, 0 },
	{ "thr_zeroed", 0, thr_zeroed, 0 },
	{ "own_zeroed", 0, own_zeroed, 0 },
	{ "own_new", 2, own_new, 0 },
	{ "own_push", 2, own_push, 0 },
	{ "own_sum", 1, own_sum, 0 },
};

ERL_NIF_INIT(follow, funcs, load, NULL, NULL, unload)
