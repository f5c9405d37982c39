/*
 * beamalloc/nif.h - libbeamalloc for Erlang NIF authors.
 *
 *  - A per-NIF leak check, as Zigler's `leak_check: true`: the body of a
 *    NIF runs with a fresh general purpose allocator (GPA) handed to it;
 *    when it returns, anything still live raises the Erlang exception
 *        error:{memory_leak, <<"memory leak detected in function f/1:
 *                                24 bytes in 2 blocks">>,
 *               #{function => <<"f/1">>, bytes => 24, blocks => 2}}
 *    and a double, invalid or mismatched free raises {memory_error, ...}.
 *  - Term decoding into memory from any allocator, as Zigler's
 *    beam.get(..., .{.allocator = a}): a list of integers or floats, or a
 *    binary, into an array the caller frees.  A bad term is a badarg and
 *    leaves nothing allocated.
 *
 * Header-only (static inline): the library itself never needs erl_nif.h,
 * and this header needs nothing beyond -lbeamalloc.  Usable from C and C++.
 */
#ifndef BEAMALLOC_NIF_H
#define BEAMALLOC_NIF_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <erl_nif.h>
#include <beamalloc.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

/* The exception for a failure that set errno: badarg for EINVAL (a bad
 * term), the atom enomem for anything else.  Call it right away, before
 * anything else can change errno. */
static inline ERL_NIF_TERM
beamalloc_nif_raise_errno(ErlNifEnv *env)
{
	if (errno == EINVAL)
		return enif_make_badarg(env);
	return enif_raise_exception(env, enif_make_atom(env, "enomem"));
}

/* ------------------------------------------------------------------------
 * Decoding terms into memory from any allocator.  Every array is aligned
 * to 8 (BEAMALLOC_MIN_ALIGN), so it is freed with
 *     beamalloc_free(a, p, len * sizeof(*p));
 * An empty list or binary gives a zero-length pointer (non-NULL, freeing
 * it is a no-op).  NULL means failure, with *lenp = 0 and errno EINVAL
 * for a bad term or ENOMEM; nothing is left allocated either way.
 * ---------------------------------------------------------------------- */

typedef int (*beamalloc_nif_get_elem_fn)(ErlNifEnv *env, ERL_NIF_TERM t,
    void *out);

/* A proper list into an array of elements of size/align, each decoded by
 * get; the generic form of the functions below. */
static inline void *
beamalloc_nif_get_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t size, size_t align,
    beamalloc_nif_get_elem_fn get, size_t *lenp)
{
	unsigned len;
	size_t i;
	ERL_NIF_TERM head, tail = list;
	unsigned char *arr;

	*lenp = 0;
	if (!enif_get_list_length(env, list, &len)) {
		errno = EINVAL;
		return NULL;
	}
	arr = (unsigned char *)beamalloc_alloc_array(a, len, size, align);
	if (arr == NULL)
		return NULL;
	for (i = 0; enif_get_list_cell(env, tail, &head, &tail); i++) {
		if (!get(env, head, arr + i * size)) {
			beamalloc_free_aligned(a, arr, (size_t)len * size,
			    align);
			errno = EINVAL;
			return NULL;
		}
	}
	*lenp = len;
	return arr;
}

static inline int
beamalloc_nif_get_int64_(ErlNifEnv *env, ERL_NIF_TERM t, void *out)
{
	ErlNifSInt64 v;

	if (!enif_get_int64(env, t, &v))
		return 0;
	*(int64_t *)out = (int64_t)v;
	return 1;
}

static inline int
beamalloc_nif_get_uint64_(ErlNifEnv *env, ERL_NIF_TERM t, void *out)
{
	ErlNifUInt64 v;

	if (!enif_get_uint64(env, t, &v))
		return 0;
	*(uint64_t *)out = (uint64_t)v;
	return 1;
}

/* Floats, and integers that fit in 64 bits, as Erlang code mixes them. */
static inline int
beamalloc_nif_get_double_(ErlNifEnv *env, ERL_NIF_TERM t, void *out)
{
	ErlNifSInt64 i;

	if (enif_get_double(env, t, (double *)out))
		return 1;
	if (!enif_get_int64(env, t, &i))
		return 0;
	*(double *)out = (double)i;
	return 1;
}

/* [integer()] in the int64 range. */
static inline int64_t *
beamalloc_nif_get_int64_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (int64_t *)beamalloc_nif_get_list(env, list, a,
	    sizeof(int64_t), BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_int64_,
	    lenp);
}

/* [non_neg_integer()] in the uint64 range (the seed's []u64). */
static inline uint64_t *
beamalloc_nif_get_uint64_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (uint64_t *)beamalloc_nif_get_list(env, list, a,
	    sizeof(uint64_t), BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_uint64_,
	    lenp);
}

/* [number()]: floats, and integers in the int64 range. */
static inline double *
beamalloc_nif_get_double_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (double *)beamalloc_nif_get_list(env, list, a, sizeof(double),
	    BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_double_, lenp);
}

/* A copy of a binary's bytes (not an iolist, not a bitstring). */
static inline unsigned char *
beamalloc_nif_get_binary_copy(ErlNifEnv *env, ERL_NIF_TERM bin,
    beamalloc_allocator a, size_t *lenp)
{
	ErlNifBinary b;
	unsigned char *p;

	*lenp = 0;
	if (!enif_inspect_binary(env, bin, &b)) {
		errno = EINVAL;
		return NULL;
	}
	p = (unsigned char *)beamalloc_alloc(a, b.size);
	if (p == NULL)
		return NULL;
	if (b.size > 0)
		memcpy(p, b.data, b.size);
	*lenp = b.size;
	return p;
}

/* ------------------------------------------------------------------------
 * The per-NIF leak check
 * ---------------------------------------------------------------------- */

/* A leak-checked NIF's body: a NIF that is also given its allocator. */
typedef ERL_NIF_TERM (*beamalloc_nif_body)(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_allocator a);

/* What the per-call GPA reported, gathered by its report callback. */
typedef struct beamalloc_nif_findings {
	size_t leak_bytes;
	size_t leak_blocks;
	size_t misuses;			/* double/invalid/mismatched frees */
	beamalloc_report_kind first_misuse;
	beamalloc_report_fn chain;	/* the caller's report, or NULL */
	void *chain_user;
} beamalloc_nif_findings;

/* A report callback that prints nothing: set it in the config passed to
 * beamalloc_nif_leak_check_with() when the exception says enough. */
static inline void
beamalloc_nif_report_silent(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
}

static inline void
beamalloc_nif_collect_(void *user, const beamalloc_report *r)
{
	beamalloc_nif_findings *f = (beamalloc_nif_findings *)user;

	if (r->kind == BEAMALLOC_REPORT_LEAK) {
		f->leak_bytes += r->size;
		f->leak_blocks++;
	} else if (f->misuses++ == 0) {
		f->first_misuse = r->kind;
	}
	/* Each finding is still shown (with its address and trace), as
	 * the GPA would without us. */
	if (f->chain != NULL)
		f->chain(f->chain_user, r);
	else
		beamalloc_report_print(stderr, r);
}

static inline ERL_NIF_TERM
beamalloc_nif_text_(ErlNifEnv *env, const char *s)
{
	ERL_NIF_TERM t;
	size_t n = strlen(s);
	unsigned char *p = enif_make_new_binary(env, n, &t);

	memcpy(p, s, n);
	return t;
}

/* Raise {memory_leak | memory_error, Message, #{...}} for what f holds. */
static inline ERL_NIF_TERM
beamalloc_nif_raise_findings(ErlNifEnv *env, const char *name, int argc,
    const beamalloc_nif_findings *f)
{
	char fn[128], msg[320];
	ERL_NIF_TERM keys[5], vals[5], info;
	size_t n = 0;
	const char *tag;

	snprintf(fn, sizeof(fn), "%s/%d", name, argc);
	if (f->misuses > 0) {
		tag = "memory_error";
		n = (size_t)snprintf(msg, sizeof(msg), "%s detected in "
		    "function %s (%zu bad call%s)",
		    beamalloc_report_kind_name(f->first_misuse), fn,
		    f->misuses, f->misuses == 1 ? "" : "s");
		if (f->leak_blocks > 0 && n < sizeof(msg))
			snprintf(msg + n, sizeof(msg) - n, "; memory leak: "
			    "%zu bytes in %zu block%s", f->leak_bytes,
			    f->leak_blocks, f->leak_blocks == 1 ? "" : "s");
		n = 0;
		keys[n] = enif_make_atom(env, "kind");
		vals[n++] = beamalloc_nif_text_(env,
		    beamalloc_report_kind_name(f->first_misuse));
		keys[n] = enif_make_atom(env, "bad_calls");
		vals[n++] = enif_make_uint64(env, f->misuses);
	} else {
		tag = "memory_leak";
		snprintf(msg, sizeof(msg), "memory leak detected in function "
		    "%s: %zu bytes in %zu block%s", fn, f->leak_bytes,
		    f->leak_blocks, f->leak_blocks == 1 ? "" : "s");
	}
	keys[n] = enif_make_atom(env, "function");
	vals[n++] = beamalloc_nif_text_(env, fn);
	keys[n] = enif_make_atom(env, "bytes");
	vals[n++] = enif_make_uint64(env, f->leak_bytes);
	keys[n] = enif_make_atom(env, "blocks");
	vals[n++] = enif_make_uint64(env, f->leak_blocks);
	if (!enif_make_map_from_arrays(env, keys, vals, n, &info))
		info = enif_make_list(env, 0);
	return enif_raise_exception(env, enif_make_tuple3(env,
	    enif_make_atom(env, tag), beamalloc_nif_text_(env, msg), info));
}

/*
 * Run body(env, argc, argv, a) with a a fresh GPA over beamalloc_wide()
 * (so the VM tracks its memory), configured by cfg (NULL: the defaults).
 * Then destroy the GPA, which releases anything still live to the VM.
 * A leak or bad free raises an exception naming name/argc, replacing the
 * body's result (or exception); each finding also goes to cfg's report
 * callback (NULL: printed to stderr).  A GPA that cannot be created
 * raises enomem.  Everything from a is gone when the call returns: do not
 * keep it in resources or across enif_schedule_nif().
 */
static inline ERL_NIF_TERM
beamalloc_nif_leak_check_with(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_nif_body body, const char *name,
    const beamalloc_gpa_config *cfg)
{
	beamalloc_nif_findings f;
	beamalloc_gpa_config c;
	beamalloc_gpa *gpa;
	ERL_NIF_TERM result;

	memset(&f, 0, sizeof(f));
	if (cfg != NULL)
		memcpy(&c, cfg, sizeof(c));
	else
		beamalloc_gpa_config_init(&c);
	f.chain = c.report;
	f.chain_user = c.report_user;
	c.report = beamalloc_nif_collect_;
	c.report_user = &f;
	gpa = beamalloc_gpa_create(beamalloc_wide(), &c);
	if (gpa == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	result = body(env, argc, argv, beamalloc_gpa_allocator(gpa));
	(void)beamalloc_gpa_destroy(gpa);
	if (f.leak_blocks == 0 && f.misuses == 0)
		return result;
	return beamalloc_nif_raise_findings(env, name, argc, &f);
}

/* The same with the default GPA configuration. */
static inline ERL_NIF_TERM
beamalloc_nif_leak_check(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_body body, const char *name)
{
	return beamalloc_nif_leak_check_with(env, argc, argv, body, name,
	    NULL);
}

/*
 * Define the NIF `name` as body run under the leak check:
 *
 *     static ERL_NIF_TERM sum_body(ErlNifEnv *, int,
 *         const ERL_NIF_TERM[], beamalloc_allocator);
 *     BEAMALLOC_NIF_LEAK_CHECKED(sum, sum_body)
 *     static ErlNifFunc funcs[] = { { "sum", 1, sum, 0 } };
 */
#define BEAMALLOC_NIF_LEAK_CHECKED(name, body)				\
	static ERL_NIF_TERM						\
	name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])	\
	{								\
		return beamalloc_nif_leak_check(env, argc, argv, (body),\
		    #name);						\
	}

#ifdef __cplusplus
}
#endif

#endif /* BEAMALLOC_NIF_H */
