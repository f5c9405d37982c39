/*
 * leakcheck_nif.c - <beamalloc/nif.h> inside a real BEAM: NIFs wrapped in
 * the per-NIF leak check (clean, leaking, freeing twice, raising, dirty),
 * and term decoding into arrays from the allocator handed to them.
 */
#include "common.h"

/* Findings passed on to the caller's own report callback. */
static size_t chained;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	__atomic_add_fetch(&chained, 1, __ATOMIC_RELAXED);
}

static ERL_NIF_TERM
ok_atom(ErlNifEnv *env)
{
	return enif_make_atom(env, "ok");
}

/* ------------------------------------------------------------------------
 * Bodies: NIFs that are also given their allocator
 * ---------------------------------------------------------------------- */

/* clean(N): N bytes and an array, all freed. */
static ERL_NIF_TERM
clean_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	unsigned long n;
	unsigned char *p;
	uint32_t *v;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &n))
		return enif_make_badarg(env);
	if ((p = beamalloc_alloc(a, n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	if ((v = beamalloc_alloc_array(a, 10, sizeof(*v), 64)) == NULL) {
		beamalloc_free(a, p, n);
		return beamalloc_nif_raise_errno(env);
	}
	memset(p, 0xab, n);
	beamalloc_free_aligned(a, v, 10 * sizeof(*v), 64);
	beamalloc_free(a, p, n);
	return ok_atom(env);
}

/* leaky(N): N bytes and 100 bytes, never freed. */
static ERL_NIF_TERM
leaky_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	unsigned long n;
	unsigned char *p, *q;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &n))
		return enif_make_badarg(env);
	if ((p = beamalloc_alloc(a, n)) == NULL)	/* SITE N */
		return beamalloc_nif_raise_errno(env);
	if ((q = beamalloc_alloc(a, 100)) == NULL)	/* SITE 100 */
		return beamalloc_nif_raise_errno(env);
	for (unsigned long i = 0; i < n; i += 4096)
		p[i] = 1;
	q[0] = 1;
	return ok_atom(env);
}

/* Leaks 16 bytes, then raises badarg itself. */
static ERL_NIF_TERM
leaky_raise_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	(void)argc, (void)argv;
	if (beamalloc_alloc(a, 16) == NULL)
		return beamalloc_nif_raise_errno(env);
	return enif_make_badarg(env);
}

/* Frees what it allocated, then raises badarg itself. */
static ERL_NIF_TERM
clean_raise_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	void *p;

	(void)argc, (void)argv;
	if ((p = beamalloc_alloc(a, 16)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free(a, p, 16);
	return enif_make_badarg(env);
}

/* Frees a block twice: the GPA reports and ignores the second free. */
static ERL_NIF_TERM
double_free_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	void *p;

	(void)argc, (void)argv;
	if ((p = beamalloc_alloc(a, 48)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free(a, p, 48);
	beamalloc_free(a, p, 48);
	return ok_atom(env);
}

/* sum_ints(List): decoded with the allocator, summed, freed. */
static ERL_NIF_TERM
sum_ints_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	(void)argc;
	return sum_int64s(env, argv[0], a, false);
}

/* The same, forgetting to free (Zigler's :noclean shows as a leak). */
static ERL_NIF_TERM
sum_ints_noclean_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	(void)argc;
	return sum_int64s(env, argv[0], a, true);
}

static ERL_NIF_TERM
sum_doubles_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v, total = 0;
	size_t n;

	(void)argc;
	if ((v = beamalloc_nif_get_double_list(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	for (size_t i = 0; i < n; i++)
		total += v[i];
	beamalloc_free(a, v, n * sizeof(*v));
	return enif_make_double(env, total);
}

/* leaky_doubles(List): decodes List and keeps the array.  The helper
 * allocates, inlined here (at -O1 and above): the site must be this call,
 * not the helper's line in <beamalloc/nif.h>. */
static ERL_NIF_TERM
leaky_doubles_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v;
	size_t n;

	(void)argc;
	v = beamalloc_nif_get_double_list(env, argv[0], a, &n); /* SITE LIST */
	if (v == NULL)
		return beamalloc_nif_raise_errno(env);
	return enif_make_uint64(env, n);
}

/* leaky_doubles_outline(List): the same through a pointer to the generic
 * decoder, which is then not inlined (as at -O0), under a config with
 * traces: the site is still this call, the trace's next frame. */
static ERL_NIF_TERM
leaky_doubles_outline_body(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_allocator a)
{
	void *(*volatile get)(ErlNifEnv *, ERL_NIF_TERM, beamalloc_allocator,
	    size_t, size_t, beamalloc_nif_get_elem_fn, size_t *) =
	    beamalloc_nif_get_list;
	void *v;
	size_t n;

	(void)argc;
	v = get(env, argv[0], a, sizeof(double), 8, /* SITE OUTLINE */
	    beamalloc_nif_get_double_, &n);
	if (v == NULL)
		return beamalloc_nif_raise_errno(env);
	return enif_make_uint64(env, n);
}

/* Whether this library was built optimized (its helpers inlined). */
static ERL_NIF_TERM
optimized(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
#ifdef __OPTIMIZE__
	return enif_make_atom(env, "true");
#else
	return enif_make_atom(env, "false");
#endif
}

/* bin_info(Bin) -> {Size, ByteSum, Reversed} from a copy of Bin. */
static ERL_NIF_TERM
bin_info_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	unsigned char *p, *out;
	size_t n;
	uint64_t sum = 0;
	ERL_NIF_TERM rev;

	(void)argc;
	if ((p = beamalloc_nif_get_binary_copy(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	out = enif_make_new_binary(env, n, &rev);
	for (size_t i = 0; i < n; i++) {
		sum += p[i];
		out[n - 1 - i] = p[i];
	}
	beamalloc_free(a, p, n);
	return enif_make_tuple3(env, enif_make_uint64(env, n),
	    enif_make_uint64(env, sum), rev);
}

/* ------------------------------------------------------------------------
 * The NIFs
 * ---------------------------------------------------------------------- */

/* The default: findings are also printed to stderr. */
BEAMALLOC_NIF_LEAK_CHECKED(clean, clean_body)
BEAMALLOC_NIF_LEAK_CHECKED(leaky, leaky_body)
BEAMALLOC_NIF_LEAK_CHECKED(sum_ints, sum_ints_body)
BEAMALLOC_NIF_LEAK_CHECKED(leaky_doubles, leaky_doubles_body)

/* C names other than the Erlang ones (leaky_sum/1, leaky_traced/1): the
 * exception names the Erlang function; the second with its own config,
 * 8-frame traces and no printing. */
static beamalloc_gpa_config traced_cfg;
BEAMALLOC_NIF_LEAK_CHECKED(nif_leaky_sum, leaky_body)
BEAMALLOC_NIF_LEAK_CHECKED_WITH(nif_leaky_traced, leaky_body, &traced_cfg)
BEAMALLOC_NIF_LEAK_CHECKED_WITH(leaky_doubles_outline,
    leaky_doubles_outline_body, &traced_cfg)

/* A config never given to beamalloc_gpa_config_init() (struct_size 0):
 * refused, einval; before, every field was ignored, the collector's
 * report too, and the leak went unraised. */
static const beamalloc_gpa_config zeroed_cfg = { .memory_limit = 1 << 20 };
BEAMALLOC_NIF_LEAK_CHECKED_WITH(leaky_zeroed, leaky_body, &zeroed_cfg)

/* bad_align(Align): 16 bytes aligned to Align, freed. */
static ERL_NIF_TERM
bad_align_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	unsigned long align;
	void *p;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &align))
		return enif_make_badarg(env);
	if ((p = beamalloc_alloc_aligned(a, 16, align)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free_aligned(a, p, 16, align);
	return ok_atom(env);
}
BEAMALLOC_NIF_LEAK_CHECKED(bad_align, bad_align_body)

/* Quiet ones, for the cases run many times or expected to fail. */
static ERL_NIF_TERM
quiet(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_body body, const char *name)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = beamalloc_nif_report_silent;
	return beamalloc_nif_leak_check_with(env, argc, argv, body, name,
	    &cfg);
}

#define QUIET(name, body)						\
	static ERL_NIF_TERM						\
	name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])	\
	{								\
		return quiet(env, argc, argv, body, #name);		\
	}

QUIET(leaky_quiet, leaky_body)
QUIET(leaky_dirty, leaky_body)
QUIET(leaky_raise, leaky_raise_body)
QUIET(clean_raise, clean_raise_body)
QUIET(double_free, double_free_body)
QUIET(sum_ints_noclean, sum_ints_noclean_body)
QUIET(sum_doubles, sum_doubles_body)
QUIET(bin_info, bin_info_body)

/* leaky_chained(N): findings go to our own report callback. */
static ERL_NIF_TERM
leaky_chained(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = count_report;
	return beamalloc_nif_leak_check_with(env, argc, argv, leaky_body,
	    "leakcheck:leaky_chained", &cfg);
}

static ERL_NIF_TERM
chained_reports(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_uint64(env,
	    __atomic_load_n(&chained, __ATOMIC_RELAXED));
}

/* sum_ints_beam(List): decoding straight over the BEAM allocator. */
static ERL_NIF_TERM
sum_ints_beam(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	return sum_ints_body(env, argc, argv, beamalloc_beam());
}

/* sum_ints_oom(List, FailIndex): decoding over an allocator that fails
 * its FailIndex-th allocation, itself under the leak check. */
static ERL_NIF_TERM
oom_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	beamalloc_failing f;
	unsigned idx;

	if (!enif_get_uint(env, argv[1], &idx))
		return enif_make_badarg(env);
	beamalloc_failing_init(&f, a, idx, BEAMALLOC_NEVER);
	return sum_ints_body(env, argc, argv, beamalloc_failing_allocator(&f));
}
QUIET(sum_ints_oom, oom_body)

/* clean_dirty() -> the thread type it ran on, after a clean alloc/free. */
static ERL_NIF_TERM
dirty_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	void *p;

	(void)argc, (void)argv;
	if ((p = beamalloc_alloc_aligned(a, 5000, 4096)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free_aligned(a, p, 5000, 4096);
	return enif_make_int(env, enif_thread_type());
}
QUIET(clean_dirty, dirty_body)

static ErlNifFunc funcs[] = {
	{ "clean", 1, clean, 0 },
	{ "leaky", 1, leaky, 0 },
	{ "leaky_sum", 1, nif_leaky_sum, 0 },
	{ "leaky_traced", 1, nif_leaky_traced, 0 },
	{ "leaky_zeroed", 1, leaky_zeroed, 0 },
	{ "bad_align", 1, bad_align, 0 },
	{ "leaky_quiet", 1, leaky_quiet, 0 },
	{ "leaky_dirty", 1, leaky_dirty, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "leaky_raise", 0, leaky_raise, 0 },
	{ "clean_raise", 0, clean_raise, 0 },
	{ "double_free", 0, double_free, 0 },
	{ "leaky_chained", 1, leaky_chained, 0 },
	{ "chained_reports", 0, chained_reports, 0 },
	{ "sum_ints", 1, sum_ints, 0 },
	{ "sum_ints_noclean", 1, sum_ints_noclean, 0 },
	{ "sum_ints_beam", 1, sum_ints_beam, 0 },
	{ "sum_ints_oom", 2, sum_ints_oom, 0 },
	{ "sum_doubles", 1, sum_doubles, 0 },
	{ "bin_info", 1, bin_info, 0 },
	{ "clean_dirty", 0, clean_dirty, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "leaky_doubles", 1, leaky_doubles, 0 },
	{ "leaky_doubles_outline", 1, leaky_doubles_outline, 0 },
	{ "optimized", 0, optimized, 0 },
};

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)env, (void)priv, (void)info;
	beamalloc_gpa_config_init(&traced_cfg);
	traced_cfg.stack_trace_depth = 8;
	traced_cfg.report = beamalloc_nif_report_silent;
	return 0;
}

ERL_NIF_INIT(leakcheck, funcs, load, NULL, NULL, NULL)
