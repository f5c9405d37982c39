/*
 * beamalloc/nif.h - libbeamalloc for Erlang NIF authors.
 *
 *  - A per-NIF leak check, as Zigler's `leak_check: true`: the body of a
 *    NIF runs with a fresh general purpose allocator (GPA) handed to it;
 *    when it returns, anything still live raises the Erlang exception
 *        error:{memory_leak, <<"memory leak detected in function f/1:
 *                                24 bytes in 2 blocks">>,
 *               #{function => <<"f/1">>, bytes => 24, blocks => 2,
 *                 sites => [#{function, file, line, bytes, blocks}]}}
 *    and a double, invalid or mismatched free raises {memory_error, ...}.
 *  - The same check across enif_schedule_nif() steps, on a thread of its
 *    own, and for resources that own an allocator; a GPA per NIF library;
 *    a GPA's stats as an Erlang map; findings sent to an Erlang process
 *    that logs them (examples/beamalloc_logger.erl).
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

/* C++ with exceptions: a body's exception is caught at the boundary
 * (BEAMALLOC_NIF_CALL_ below); the C++ headers go outside extern "C". */
#if defined(__cplusplus) && \
    (defined(__cpp_exceptions) || defined(__EXCEPTIONS))
#include <exception>
#include <new>
#define BEAMALLOC_NIF_CXX_EH_ 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

/* errno of the decoders below for a term of the wrong type or range: an
 * allocator never sets it, so it is told apart from their EINVAL. */
#define BEAMALLOC_NIF_EBADTERM EDOM

/* The exception for a failure that set errno: badarg for
 * BEAMALLOC_NIF_EBADTERM (a bad term), the atom einval for EINVAL (an
 * allocator refused the call: an alignment that is not a power of two or
 * is larger than it serves, a block it does not know), the atom enomem
 * for anything else.  Call it right away, before anything else can
 * change errno. */
static inline ERL_NIF_TERM
beamalloc_nif_raise_errno(ErlNifEnv *env)
{
	if (errno == BEAMALLOC_NIF_EBADTERM)
		return enif_make_badarg(env);
	return enif_raise_exception(env, enif_make_atom(env,
	    errno == EINVAL ? "einval" : "enomem"));
}

/* ------------------------------------------------------------------------
 * Decoding terms into memory from any allocator.  Every array is aligned
 * to 8 (BEAMALLOC_MIN_ALIGN), so it is freed with
 *     beamalloc_free(a, p, len * sizeof(*p));
 * An empty list or binary gives a zero-length pointer (non-NULL, freeing
 * it is a no-op).  NULL means failure, with *lenp = 0 and errno
 * BEAMALLOC_NIF_EBADTERM for a bad term, else the allocator's (ENOMEM,
 * or EINVAL for an alignment it does not serve); nothing is left
 * allocated either way.
 * ---------------------------------------------------------------------- */

typedef int (*beamalloc_nif_get_elem_fn)(ErlNifEnv *env, ERL_NIF_TERM t,
    void *out);

/* The decoders are always inlined into their caller (whose line a leak's
 * site then names through the debug information, traces or not): clang
 * -O2 found beamalloc_nif_get_double_list too costly to inline, and the
 * site was then the decoder's line in this header. */
#if defined(__GNUC__) || defined(__clang__)
#define BEAMALLOC_NIF_DECODER_ static inline __attribute__((always_inline))
#else
#define BEAMALLOC_NIF_DECODER_ static inline
#endif

/* A proper list into an array of elements of size/align, each decoded by
 * get; the generic form of the functions below. */
BEAMALLOC_NIF_DECODER_ void *
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
		errno = BEAMALLOC_NIF_EBADTERM;
		return NULL;
	}
	arr = (unsigned char *)beamalloc_alloc_array(a, len, size, align);
	if (arr == NULL)
		return NULL;
	for (i = 0; enif_get_list_cell(env, tail, &head, &tail); i++) {
		if (!get(env, head, arr + i * size)) {
			beamalloc_free_aligned(a, arr, (size_t)len * size,
			    align);
			errno = BEAMALLOC_NIF_EBADTERM;
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
	*(int64_t *)out = v;
	return 1;
}

static inline int
beamalloc_nif_get_uint64_(ErlNifEnv *env, ERL_NIF_TERM t, void *out)
{
	ErlNifUInt64 v;

	if (!enif_get_uint64(env, t, &v))
		return 0;
	*(uint64_t *)out = v;
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
BEAMALLOC_NIF_DECODER_ int64_t *
beamalloc_nif_get_int64_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (int64_t *)beamalloc_nif_get_list(env, list, a,
	    sizeof(int64_t), BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_int64_,
	    lenp);
}

/* [non_neg_integer()] in the uint64 range (the seed's []u64). */
BEAMALLOC_NIF_DECODER_ uint64_t *
beamalloc_nif_get_uint64_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (uint64_t *)beamalloc_nif_get_list(env, list, a,
	    sizeof(uint64_t), BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_uint64_,
	    lenp);
}

/* [number()]: floats, and integers in the int64 range. */
BEAMALLOC_NIF_DECODER_ double *
beamalloc_nif_get_double_list(ErlNifEnv *env, ERL_NIF_TERM list,
    beamalloc_allocator a, size_t *lenp)
{
	return (double *)beamalloc_nif_get_list(env, list, a, sizeof(double),
	    BEAMALLOC_MIN_ALIGN, beamalloc_nif_get_double_, lenp);
}

/* A copy of a binary's bytes (not an iolist, not a bitstring). */
BEAMALLOC_NIF_DECODER_ unsigned char *
beamalloc_nif_get_binary_copy(ErlNifEnv *env, ERL_NIF_TERM bin,
    beamalloc_allocator a, size_t *lenp)
{
	ErlNifBinary b;
	unsigned char *p;

	*lenp = 0;
	if (!enif_inspect_binary(env, bin, &b)) {
		errno = BEAMALLOC_NIF_EBADTERM;
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

/* Distinct allocation sites of leaked blocks a findings record counts;
 * the exception names the top 3 by bytes. */
#define BEAMALLOC_NIF_SITES 16
#define BEAMALLOC_NIF_TOP_SITES 3

/* Leaked blocks allocated at one call site (a return address). */
typedef struct beamalloc_nif_site {
	uintptr_t addr;
	size_t bytes;
	size_t blocks;
} beamalloc_nif_site;

/* What the per-call GPA reported, gathered by its report callback. */
typedef struct beamalloc_nif_findings {
	size_t leak_bytes;
	size_t leak_blocks;
	size_t misuses;			/* double/invalid/mismatched frees */
	beamalloc_report_kind first_misuse;
	beamalloc_report_fn chain;	/* the caller's report, or NULL */
	void *chain_user;
	/* Leaks by call site, known when the GPA records them (safety or
	 * traces on): the first BEAMALLOC_NIF_SITES sites seen. */
	size_t nsites;
	beamalloc_nif_site sites[BEAMALLOC_NIF_SITES];
} beamalloc_nif_findings;

/* A report callback that prints nothing: set it in the config passed to
 * beamalloc_nif_leak_check_with() when the exception says enough. */
static inline void
beamalloc_nif_report_silent(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
}

static inline void
beamalloc_nif_site_add_(beamalloc_nif_findings *f, uintptr_t addr,
    size_t bytes)
{
	size_t i;

	for (i = 0; i < f->nsites && f->sites[i].addr != addr; i++)
		;
	if (i == BEAMALLOC_NIF_SITES)
		return;
	if (i == f->nsites) {
		f->sites[i].addr = addr;
		f->nsites++;
	}
	f->sites[i].bytes += bytes;
	f->sites[i].blocks++;
}

/* Whether the frame at addr is in this header's code, not inlined into
 * the caller's (a decoder below allocates on its caller's behalf):
 * its source file, or without debug information its name. */
static inline int
beamalloc_nif_frame_ours_(uintptr_t addr)
{
	static const char tail[] = "/beamalloc/nif.h";
	beamalloc_symbol s;
	size_t n;

	if (!beamalloc_symbolize(addr, &s))
		return 0;
	if (s.file[0] != '\0') {
		n = strlen(s.file);
		return n >= sizeof(tail) - 1 &&
		    strcmp(s.file + n - (sizeof(tail) - 1), tail) == 0;
	}
	return strncmp(s.function, "beamalloc_nif_", 14) == 0;
}

/* A leaked block's site: the first frame of its trace outside this
 * header's own functions (a decoder built without inlining, at -O0),
 * else the first; only a trace knows the frames past it. */
static inline uintptr_t
beamalloc_nif_site_of_(const beamalloc_report *r)
{
	size_t i = 0;

	while (i + 1 < r->alloc_trace_len &&
	    beamalloc_nif_frame_ours_(r->alloc_trace[i]))
		i++;
	return r->alloc_trace[i];
}

static inline void
beamalloc_nif_collect_(void *user, const beamalloc_report *r)
{
	beamalloc_nif_findings *f = (beamalloc_nif_findings *)user;

	if (r->kind == BEAMALLOC_REPORT_LEAK) {
		f->leak_bytes += r->size;
		f->leak_blocks++;
		if (r->alloc_trace_len > 0)
			beamalloc_nif_site_add_(f, beamalloc_nif_site_of_(r),
			    r->size);
	} else if (__atomic_fetch_add(&f->misuses, 1, __ATOMIC_RELAXED) ==
	    0) {
		/* Atomic: a bad free of the call's block may come from
		 * another thread (a resource's destructor) meanwhile. */
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

/* #{function, file, line, bytes, blocks} for a site: file and line are
 * undefined without debug information, function is then the object and
 * offset (or the address). */
static inline ERL_NIF_TERM
beamalloc_nif_site_term_(ErlNifEnv *env, const beamalloc_nif_site *site)
{
	beamalloc_symbol sym;
	char fn[sizeof(sym.function) + sizeof(sym.object) + 24];
	ERL_NIF_TERM keys[5], vals[5], m, undef = enif_make_atom(env,
	    "undefined");

	(void)beamalloc_symbolize(site->addr, &sym);
	if (sym.function[0] != '\0')
		snprintf(fn, sizeof(fn), "%s", sym.function);
	else if (sym.object[0] != '\0')
		snprintf(fn, sizeof(fn), "%s+%#llx", sym.object,
		    (unsigned long long)sym.offset);
	else
		snprintf(fn, sizeof(fn), "%#llx",
		    (unsigned long long)site->addr);
	keys[0] = enif_make_atom(env, "function");
	vals[0] = beamalloc_nif_text_(env, fn);
	keys[1] = enif_make_atom(env, "file");
	vals[1] = sym.file[0] != '\0' ? beamalloc_nif_text_(env, sym.file) :
	    undef;
	keys[2] = enif_make_atom(env, "line");
	vals[2] = sym.line != 0 ? enif_make_uint(env, sym.line) : undef;
	keys[3] = enif_make_atom(env, "bytes");
	vals[3] = enif_make_uint64(env, site->bytes);
	keys[4] = enif_make_atom(env, "blocks");
	vals[4] = enif_make_uint64(env, site->blocks);
	if (!enif_make_map_from_arrays(env, keys, vals, 5, &m))
		m = undef;
	return m;
}

/* [#{function, file, line, bytes, blocks}]: the top sites by bytes. */
static inline ERL_NIF_TERM
beamalloc_nif_sites_term_(ErlNifEnv *env, const beamalloc_nif_findings *f)
{
	beamalloc_nif_site top[BEAMALLOC_NIF_TOP_SITES];
	ERL_NIF_TERM list = enif_make_list(env, 0);
	size_t n = 0, i, j;

	for (i = 0; i < f->nsites; i++) {
		/* Insertion into top, largest first. */
		for (j = n; j > 0 && top[j - 1].bytes < f->sites[i].bytes; j--)
			if (j < BEAMALLOC_NIF_TOP_SITES)
				top[j] = top[j - 1];
		if (j < BEAMALLOC_NIF_TOP_SITES) {
			top[j] = f->sites[i];
			if (n < BEAMALLOC_NIF_TOP_SITES)
				n++;
		}
	}
	while (n-- > 0)
		list = enif_make_list_cell(env, beamalloc_nif_site_term_(env,
		    &top[n]), list);
	return list;
}

/* The term {memory_leak | memory_error, Message, #{...}} for what f
 * holds, naming name/argc (name alone for argc < 0). */
static inline ERL_NIF_TERM
beamalloc_nif_findings_term(ErlNifEnv *env, const char *name, int argc,
    const beamalloc_nif_findings *f)
{
	char fn[128], msg[320];
	ERL_NIF_TERM keys[6], vals[6], info;
	size_t n = 0;
	const char *tag;

	if (argc < 0)
		snprintf(fn, sizeof(fn), "%s", name);
	else
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
	keys[n] = enif_make_atom(env, "sites");
	vals[n++] = beamalloc_nif_sites_term_(env, f);
	if (!enif_make_map_from_arrays(env, keys, vals, n, &info))
		info = enif_make_list(env, 0);
	return enif_make_tuple3(env, enif_make_atom(env, tag),
	    beamalloc_nif_text_(env, msg), info);
}

/* Raise {memory_leak | memory_error, Message, #{...}} for what f holds. */
static inline ERL_NIF_TERM
beamalloc_nif_raise_findings(ErlNifEnv *env, const char *name, int argc,
    const beamalloc_nif_findings *f)
{
	return enif_raise_exception(env, beamalloc_nif_findings_term(env,
	    name, argc, f));
}

/* Point cfg's report at f (which keeps cfg's own report, to chain). */
static inline void
beamalloc_nif_collect_into_(beamalloc_gpa_config *c, const
    beamalloc_gpa_config *cfg, beamalloc_nif_findings *f)
{
	memset(f, 0, sizeof(*f));
	if (cfg != NULL)
		memcpy(c, cfg, sizeof(*c));
	else
		beamalloc_gpa_config_init(c);
	f->chain = c->report;
	f->chain_user = c->report_user;
	c->report = beamalloc_nif_collect_;
	c->report_user = f;
}

/* The library's own entry, as ERL_NIF_INIT defines it (nif_init(), one
 * per NIF shared object): its ErlNifFunc table names the NIFs.  A NIF
 * linked statically into the VM has another name: then NULL. */
#if !defined(STATIC_ERLANG_NIF) && !defined(__WIN32__)
ERL_NIF_INIT_DECL(beamalloc_nif_);
#define BEAMALLOC_NIF_ENTRY_() nif_init()
#else
#define BEAMALLOC_NIF_ENTRY_() ((ErlNifEntry *)NULL)
#endif

/* The Erlang name of the NIF implemented by self with arity argc, from
 * the library's ErlNifFunc table; fallback when it is not there. */
static inline const char *
beamalloc_nif_erl_name_(ERL_NIF_TERM (*self)(ErlNifEnv *, int,
    const ERL_NIF_TERM[]), int argc, const char *fallback)
{
	ErlNifEntry *e = BEAMALLOC_NIF_ENTRY_();
	int i;

	for (i = 0; e != NULL && i < e->num_of_funcs; i++)
		if (e->funcs[i].fptr == self &&
		    (int)e->funcs[i].arity == argc)
			return e->funcs[i].name;
	return fallback;
}

/* The env of the NIF call or destructor this thread is in, where the
 * helpers below know it (a leak-checked call, a chain's step, an owned
 * object's or a chain's destructor): a report made there is sent with it
 * (beamalloc_nif_logger_report()).  One per translation unit. */
static __thread ErlNifEnv *beamalloc_nif_env_;

static inline ErlNifEnv *
beamalloc_nif_env_enter_(ErlNifEnv *env)
{
	ErlNifEnv *outer = beamalloc_nif_env_;

	beamalloc_nif_env_ = env;
	return outer;
}

/* A resource type of this instance of the library, whose objects keep
 * it: its name made unique (name@N, N the load's monotonic time), not
 * taken over at upgrade.  ERTS then keeps the instance's library mapped
 * until the last object of the type goes, and runs that library's
 * destructor, which may call its own code (a cleanup function; with
 * libbeamalloc.a, the allocator itself).  A takeover would hand the old
 * objects to the new library's destructor, and unmap the old library,
 * code and allocator state with it, at the purge. */
static inline ErlNifResourceType *
beamalloc_nif_open_type_(ErlNifEnv *env, const char *name,
    ErlNifResourceDtor *dtor)
{
	char unique[256];
	int n = snprintf(unique, sizeof(unique), "%s@%llx", name,
	    (unsigned long long)enif_monotonic_time(ERL_NIF_NSEC));

	if (n < 0 || (size_t)n >= sizeof(unique))
		return NULL;
	return enif_open_resource_type(env, NULL, unique, dtor,
	    ERL_NIF_RT_CREATE, NULL);
}

/* A C++ exception must not leave a NIF: the VM's C frames have no
 * handler, so it ends in std::terminate() and the VM aborts, and the
 * GPA is not checked.  Caught around a body (or a chain's step):
 * std::bad_alloc (beamalloc::stl_allocator's and beamalloc::resource's
 * failure, bad_array_new_length among them) raises enomem, as the
 * library's own failures do; any other raises {cxx_exception, What},
 * What its what() as a binary.  The leak check runs after it, as after
 * a return. */
#ifdef BEAMALLOC_NIF_CXX_EH_
/* {cxx_exception, What}, or enomem when What cannot be made. */
static inline ERL_NIF_TERM
beamalloc_nif_cxx_term_(ErlNifEnv *env, const char *what)
{
	ERL_NIF_TERM bin;
	size_t n = strlen(what);
	unsigned char *b = enif_make_new_binary(env, n, &bin);

	if (b == NULL)
		return enif_make_atom(env, "enomem");
	memcpy(b, what, n);
	return enif_make_tuple2(env, enif_make_atom(env, "cxx_exception"),
	    bin);
}

static inline ERL_NIF_TERM
beamalloc_nif_cxx_raise_(ErlNifEnv *env, const char *what)
{
	return enif_raise_exception(env, beamalloc_nif_cxx_term_(env, what));
}

#define BEAMALLOC_NIF_CALL_(env, r, call)				\
	do {								\
		try {							\
			(r) = (call);					\
		} catch (const std::bad_alloc &) {			\
			(r) = enif_raise_exception((env),		\
			    enif_make_atom((env), "enomem"));		\
		} catch (const std::exception &beamalloc_e_) {		\
			(r) = beamalloc_nif_cxx_raise_((env),		\
			    beamalloc_e_.what());			\
		} catch (...) {						\
			(r) = beamalloc_nif_cxx_raise_((env),		\
			    "unknown exception");			\
		}							\
	} while (0)
#else
#define BEAMALLOC_NIF_CALL_(env, r, call) ((r) = (call))
#endif

/* The leak check; the exception names self's Erlang name when the
 * library's table has it (looked up only then), else name. */
static inline ERL_NIF_TERM
beamalloc_nif_leak_check_run_(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_nif_body body, const char *name,
    ERL_NIF_TERM (*self)(ErlNifEnv *, int, const ERL_NIF_TERM[]),
    const beamalloc_gpa_config *cfg)
{
	beamalloc_nif_findings f;
	beamalloc_gpa_config c;
	beamalloc_gpa *gpa;
	ERL_NIF_TERM result;
	ErlNifEnv *outer;

	beamalloc_nif_collect_into_(&c, cfg, &f);
	gpa = beamalloc_gpa_checkout(beamalloc_wide(), &c);
	if (gpa == NULL)		/* enomem, or einval for a bad cfg */
		return beamalloc_nif_raise_errno(env);
	outer = beamalloc_nif_env_enter_(env);
	BEAMALLOC_NIF_CALL_(env, result,
	    body(env, argc, argv, beamalloc_gpa_allocator(gpa)));
	(void)beamalloc_gpa_checkin(gpa);
	(void)beamalloc_nif_env_enter_(outer);
	if (f.leak_blocks == 0 && f.misuses == 0)
		return result;
	if (self != NULL)
		name = beamalloc_nif_erl_name_(self, argc, name);
	return beamalloc_nif_raise_findings(env, name, argc, &f);
}

/*
 * Run body(env, argc, argv, a) with a an empty GPA over beamalloc_wide()
 * (so the VM tracks its memory), configured by cfg (NULL: the defaults),
 * from beamalloc_gpa_checkout().  Then check it in: a GPA with a leak or
 * a report is destroyed, which names each leak and releases what is
 * still live to the VM; a clean one is kept for the next call.
 * A leak or bad free raises an exception naming name/argc, replacing the
 * body's result (or exception); each finding also goes to cfg's report
 * callback (NULL: printed to stderr).  A GPA that cannot be created
 * raises enomem (einval: a cfg that beamalloc_gpa_create() refuses).  Everything from a is gone when the call returns: do not
 * keep it in resources or across enif_schedule_nif() (for those, see
 * beamalloc_nif_owned_new() and beamalloc_nif_chain_start() below).
 */
static inline ERL_NIF_TERM
beamalloc_nif_leak_check_with(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_nif_body body, const char *name,
    const beamalloc_gpa_config *cfg)
{
	return beamalloc_nif_leak_check_run_(env, argc, argv, body, name,
	    NULL, cfg);
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
 * Define the C function `name` as the NIF body run under the leak check:
 *
 *     static ERL_NIF_TERM sum_body(ErlNifEnv *, int,
 *         const ERL_NIF_TERM[], beamalloc_allocator);
 *     BEAMALLOC_NIF_LEAK_CHECKED(nif_sum, sum_body)
 *     static ErlNifFunc funcs[] = { { "sum", 1, nif_sum, 0 } };
 *
 * A finding names the Erlang function, sum/1, as the library's ErlNifFunc
 * table (ERL_NIF_INIT's) gives it, or name/arity when the table has no
 * entry for it.  The _WITH form takes a GPA configuration: cfg, an
 * expression of type const beamalloc_gpa_config * (NULL: the defaults),
 * is evaluated at each call.
 */
#define BEAMALLOC_NIF_LEAK_CHECKED_WITH(name, body, cfg)		\
	static ERL_NIF_TERM						\
	name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])	\
	{								\
		return beamalloc_nif_leak_check_run_(env, argc, argv,	\
		    (body), #name, name, (cfg));			\
	}
#define BEAMALLOC_NIF_LEAK_CHECKED(name, body)				\
	BEAMALLOC_NIF_LEAK_CHECKED_WITH(name, body, NULL)

/* ------------------------------------------------------------------------
 * Stats from Erlang
 * ---------------------------------------------------------------------- */

static inline ERL_NIF_TERM
beamalloc_nif_map_(ErlNifEnv *env, ERL_NIF_TERM *keys,
    ERL_NIF_TERM *vals, size_t n)
{
	ERL_NIF_TERM m;

	if (!enif_make_map_from_arrays(env, keys, vals, n, &m))
		m = enif_make_list(env, 0);	/* never: the keys differ */
	return m;
}

/*
 * gpa's figures as a map (gpa NULL: the global GPA):
 *     #{live_bytes, peak_bytes, live_blocks, backing_bytes,
 *       classes => [#{size, live_blocks, live_bytes, slabs}, ...],
 *       large => #{live_blocks, live_bytes}}
 * one entry per small size class, smallest first.  Exact while no other
 * thread uses the GPA; then the classes plus large add up to live_blocks,
 * and (safety on) to live_bytes.  See beamalloc_gpa_get_stats(3).
 */
static inline ERL_NIF_TERM
beamalloc_nif_make_stats(ErlNifEnv *env, beamalloc_gpa *gpa)
{
	beamalloc_gpa_stats st;
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS], lg;
	ERL_NIF_TERM ck[4], cv[4], list, keys[6], vals[6];
	size_t i;

	if (gpa == NULL)
		gpa = beamalloc_gpa_global();
	beamalloc_gpa_get_stats(gpa, &st);
	(void)beamalloc_gpa_get_class_stats(gpa, cls, BEAMALLOC_GPA_NCLASS,
	    &lg);
	ck[0] = enif_make_atom(env, "size");
	ck[1] = enif_make_atom(env, "live_blocks");
	ck[2] = enif_make_atom(env, "live_bytes");
	ck[3] = enif_make_atom(env, "slabs");
	list = enif_make_list(env, 0);
	for (i = BEAMALLOC_GPA_NCLASS; i-- > 0;) {
		cv[0] = enif_make_uint64(env, cls[i].size);
		cv[1] = enif_make_uint64(env, cls[i].live_blocks);
		cv[2] = enif_make_uint64(env, cls[i].live_bytes);
		cv[3] = enif_make_uint64(env, cls[i].slabs);
		list = enif_make_list_cell(env, beamalloc_nif_map_(env, ck, cv,
		    4), list);
	}
	cv[0] = enif_make_uint64(env, lg.live_blocks);
	cv[1] = enif_make_uint64(env, lg.live_bytes);
	keys[0] = ck[2];
	vals[0] = enif_make_uint64(env, st.live_bytes);
	keys[1] = enif_make_atom(env, "peak_bytes");
	vals[1] = enif_make_uint64(env, st.peak_bytes);
	keys[2] = ck[1];
	vals[2] = enif_make_uint64(env, st.live_blocks);
	keys[3] = enif_make_atom(env, "backing_bytes");
	vals[3] = enif_make_uint64(env, st.backing_bytes);
	keys[4] = enif_make_atom(env, "classes");
	vals[4] = list;
	keys[5] = enif_make_atom(env, "large");
	vals[5] = beamalloc_nif_map_(env, ck + 1, cv, 2);
	return beamalloc_nif_map_(env, keys, vals, 6);
}

/* ------------------------------------------------------------------------
 * Per-library state of the helpers below (static: one per translation
 * unit, so call beamalloc_nif_init() in the unit that uses them)
 * ---------------------------------------------------------------------- */

struct beamalloc_nif_thread_;

/* An upgrade that loads the same file shares this state with the old
 * instance (dlopen() gives the library already loaded): so the old
 * instance's chain type is kept for its chains still running, and the
 * lock and the threads stay until the last instance's unload. */
static struct beamalloc_nif_state_ {
	ErlNifResourceType *chain_rt, *chain_rt_old;
	ErlNifMutex *lock;
	int instances;			/* atomic: init'ed, not yet fini'ed */
	struct beamalloc_nif_thread_ *threads;	/* running or unjoined */
	const struct beamalloc_nif_logger *default_lg;	/* installed */
} beamalloc_nif_state_
#if defined(__GNUC__)
    __attribute__((unused))
#endif
    ;

/* ------------------------------------------------------------------------
 * Leak checks across enif_schedule_nif() steps
 * ---------------------------------------------------------------------- */

typedef struct beamalloc_nif_chain beamalloc_nif_chain;

/* A step of a chain: a NIF that is also given the chain. */
typedef ERL_NIF_TERM (*beamalloc_nif_step)(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[], beamalloc_nif_chain *chain);

struct beamalloc_nif_chain {
	beamalloc_allocator allocator;	/* the chain's, for every step */
	void *state;			/* the steps' own, carried along */
	/* Private. */
	beamalloc_gpa *gpa_;
	beamalloc_nif_findings f_;
	beamalloc_nif_step next_;
	ERL_NIF_TERM self_;
	int scheduled_, argc_;
	char name_[96];
};

/* The chain's GPA goes, with its leak check: at the end of the chain, or
 * when the chain is dropped between steps (the process died). */
static inline void
beamalloc_nif_chain_release_(beamalloc_nif_chain *ch)
{
	if (ch->gpa_ != NULL) {
		(void)beamalloc_gpa_destroy(ch->gpa_);
		ch->gpa_ = NULL;
		ch->allocator.vtable = NULL;
	}
}

static inline void
beamalloc_nif_chain_dtor_(ErlNifEnv *env, void *obj)
{
	ErlNifEnv *outer = beamalloc_nif_env_enter_(env);

	beamalloc_nif_chain_release_((beamalloc_nif_chain *)obj);
	(void)beamalloc_nif_env_enter_(outer);
}

static inline ERL_NIF_TERM
beamalloc_nif_chain_run_(ErlNifEnv *env, beamalloc_nif_chain *ch,
    beamalloc_nif_step step, int argc, const ERL_NIF_TERM argv[])
{
	ERL_NIF_TERM result;
	ErlNifEnv *outer = beamalloc_nif_env_enter_(env);

	ch->scheduled_ = 0;
	BEAMALLOC_NIF_CALL_(env, result, step(env, argc, argv, ch));
	/* A step that raised after scheduling the next (in C++, an
	 * exception after beamalloc_nif_chain_next()): the raise wins, the
	 * next step never runs, so the chain ends here. */
	if (ch->scheduled_ && enif_has_pending_exception(env, NULL))
		ch->scheduled_ = 0;
	if (!ch->scheduled_)	/* the last step returned, or one raised */
		beamalloc_nif_chain_release_(ch);
	(void)beamalloc_nif_env_enter_(outer);
	if (ch->scheduled_)
		return result;		/* the next step's, scheduled */
	if (ch->f_.leak_blocks == 0 && ch->f_.misuses == 0)
		return result;
	return beamalloc_nif_raise_findings(env, ch->name_, ch->argc_,
	    &ch->f_);
}

static inline ERL_NIF_TERM
beamalloc_nif_chain_tramp_(ErlNifEnv *env, int argc,
    const ERL_NIF_TERM argv[])
{
	beamalloc_nif_chain *ch;

	/* Atomic: an upgrade may be under way on another scheduler
	 * (beamalloc_nif_init()): the current type first. */
	if (argc < 1 || (!enif_get_resource(env, argv[argc - 1],
	    __atomic_load_n(&beamalloc_nif_state_.chain_rt,
	    __ATOMIC_ACQUIRE), (void **)&ch) &&
	    !enif_get_resource(env, argv[argc - 1],
	    __atomic_load_n(&beamalloc_nif_state_.chain_rt_old,
	    __ATOMIC_RELAXED), (void **)&ch)) || ch->gpa_ == NULL)
		return enif_make_badarg(env);
	ch->self_ = argv[argc - 1];
	return beamalloc_nif_chain_run_(env, ch, ch->next_, argc - 1, argv);
}

/*
 * Run first(env, argc, argv, chain) with a fresh GPA, as
 * beamalloc_nif_leak_check_with() does, but the GPA lives on while the
 * steps schedule further steps with beamalloc_nif_chain_next(): it is
 * checked and destroyed when a step returns without scheduling another,
 * or raises.  A leak or bad free then raises {memory_leak | memory_error,
 * ...} naming name/argc in place of that step's result or exception.
 * Needs beamalloc_nif_init() (badarg without it); enomem without memory.
 */
static inline ERL_NIF_TERM
beamalloc_nif_chain_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_step first, const char *name,
    const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config c;
	beamalloc_nif_chain *ch;
	ERL_NIF_TERM self;
	int err;
	ErlNifResourceType *rt = __atomic_load_n(
	    &beamalloc_nif_state_.chain_rt, __ATOMIC_ACQUIRE);

	if (rt == NULL)
		return enif_make_badarg(env);
	ch = (beamalloc_nif_chain *)enif_alloc_resource(rt, sizeof(*ch));
	if (ch == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	memset(ch, 0, sizeof(*ch));
	beamalloc_nif_collect_into_(&c, cfg, &ch->f_);
	snprintf(ch->name_, sizeof(ch->name_), "%s", name);
	ch->argc_ = argc;
	ch->gpa_ = beamalloc_gpa_create(beamalloc_wide(), &c);
	err = errno;
	self = enif_make_resource(env, ch);
	enif_release_resource(ch);	/* the term holds it now */
	if (ch->gpa_ == NULL) {		/* enomem, or einval for a bad cfg */
		errno = err;
		return beamalloc_nif_raise_errno(env);
	}
	ch->allocator = beamalloc_gpa_allocator(ch->gpa_);
	ch->self_ = self;
	return beamalloc_nif_chain_run_(env, ch, first, argc, argv);
}

#define BEAMALLOC_NIF_CHAIN_MAX_ARGS 15

/*
 * From a step: schedule step as the chain's next (enif_schedule_nif(),
 * fun_name and flags as there, argc at most BEAMALLOC_NIF_CHAIN_MAX_ARGS)
 * and return what the calling step must return.
 */
static inline ERL_NIF_TERM
beamalloc_nif_chain_next(ErlNifEnv *env, beamalloc_nif_chain *ch,
    const char *fun_name, int flags, beamalloc_nif_step step, int argc,
    const ERL_NIF_TERM argv[])
{
	ERL_NIF_TERM args[BEAMALLOC_NIF_CHAIN_MAX_ARGS + 1], r;
	int i;

	if (argc < 0 || argc > BEAMALLOC_NIF_CHAIN_MAX_ARGS)
		return enif_make_badarg(env);
	for (i = 0; i < argc; i++)
		args[i] = argv[i];
	args[argc] = ch->self_;
	ch->next_ = step;
	r = enif_schedule_nif(env, fun_name, flags, beamalloc_nif_chain_tramp_,
	    argc + 1, args);
	/* Refused (a badarg): the chain ends with this step. */
	ch->scheduled_ = !enif_has_pending_exception(env, NULL);
	return r;
}

/* ------------------------------------------------------------------------
 * Threaded NIFs: a function on its own thread, with its own GPA
 * ---------------------------------------------------------------------- */

/* Runs on the thread; env is the message's, arg was copied into it. */
typedef ERL_NIF_TERM (*beamalloc_nif_thread_fn)(ErlNifEnv *env,
    ERL_NIF_TERM arg, beamalloc_allocator a);

struct beamalloc_nif_thread_ {
	struct beamalloc_nif_thread_ *next;
	ErlNifTid tid;
	int done;			/* atomic: the thread has sent */
	ErlNifEnv *env;
	ErlNifPid to;
	ERL_NIF_TERM ref, arg;
	beamalloc_nif_thread_fn fn;
	beamalloc_gpa *gpa;
	beamalloc_nif_findings f;
	char name[96];
};

/* fn's result; in C++, an exception leaving it (which would end in
 * std::terminate(), the VM aborting) is caught as a body's is, and its
 * term (enomem, {cxx_exception, What}) is returned with *threw set. */
static inline ERL_NIF_TERM
beamalloc_nif_thread_call_(struct beamalloc_nif_thread_ *t, int *threw)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(t->gpa);

	*threw = 0;
#ifdef BEAMALLOC_NIF_CXX_EH_
	try {
		return t->fn(t->env, t->arg, a);
	} catch (const std::bad_alloc &) {
		*threw = 1;
		return enif_make_atom(t->env, "enomem");
	} catch (const std::exception &e) {
		*threw = 1;
		return beamalloc_nif_cxx_term_(t->env, e.what());
	} catch (...) {
		*threw = 1;
		return beamalloc_nif_cxx_term_(t->env, "unknown exception");
	}
#else
	return t->fn(t->env, t->arg, a);
#endif
}

static inline void *
beamalloc_nif_thread_main_(void *p)
{
	struct beamalloc_nif_thread_ *t = (struct beamalloc_nif_thread_ *)p;
	ERL_NIF_TERM r;
	int threw;

	r = beamalloc_nif_thread_call_(t, &threw);
	(void)beamalloc_gpa_destroy(t->gpa);
	t->gpa = NULL;
	if (t->f.leak_blocks != 0 || t->f.misuses != 0)
		r = enif_make_tuple2(t->env, enif_make_atom(t->env, "error"),
		    beamalloc_nif_findings_term(t->env, t->name, -1, &t->f));
	else
		r = enif_make_tuple2(t->env, enif_make_atom(t->env,
		    threw ? "error" : "ok"), r);
	(void)enif_send(NULL, &t->to, t->env, enif_make_tuple3(t->env,
	    enif_make_atom(t->env, "beamalloc_thread"), t->ref, r));
	enif_free_env(t->env);
	t->env = NULL;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Join the threads that are done (all of them, waiting, if all). */
static inline void
beamalloc_nif_thread_reap_(int all)
{
	struct beamalloc_nif_thread_ **pp, *t;

	if (beamalloc_nif_state_.lock == NULL)
		return;
	enif_mutex_lock(beamalloc_nif_state_.lock);
	for (pp = &beamalloc_nif_state_.threads; (t = *pp) != NULL;) {
		if (!all && !__atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
			pp = &t->next;
			continue;
		}
		*pp = t->next;
		(void)enif_thread_join(t->tid, NULL);
		enif_free(t);
	}
	enif_mutex_unlock(beamalloc_nif_state_.lock);
}

/*
 * Start fn(env, arg, a) on an enif_thread_create() thread, with a a
 * fresh GPA (cfg, NULL: defaults) over beamalloc_wide(), checked and
 * destroyed when fn returns.  Returns a reference Ref at once; the
 * calling process then receives
 *     {beamalloc_thread, Ref, {ok, Result}}
 * or, after a leak or bad free, {beamalloc_thread, Ref, {error, E}} with
 * E the term the leak check raises ({memory_leak, Message, #{function =>
 * Name, ...}}); in C++, after an exception left fn (and no leak),
 * {error, enomem} for std::bad_alloc, else {error, {cxx_exception,
 * What}}.  Needs beamalloc_nif_init(); beamalloc_nif_fini() waits for
 * every thread.  Raises enomem, einval for a cfg the GPA refuses
 * (struct_size 0), or badarg without init.
 */
static inline ERL_NIF_TERM
beamalloc_nif_thread_spawn(ErlNifEnv *env, const char *name,
    beamalloc_nif_thread_fn fn, ERL_NIF_TERM arg,
    const beamalloc_gpa_config *cfg)
{
	struct beamalloc_nif_thread_ *t;
	beamalloc_gpa_config c;
	ERL_NIF_TERM ref;

	if (beamalloc_nif_state_.lock == NULL)
		return enif_make_badarg(env);
	beamalloc_nif_thread_reap_(0);
	if ((t = (struct beamalloc_nif_thread_ *)enif_alloc(sizeof(*t))) ==
	    NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	memset(t, 0, sizeof(*t));
	beamalloc_nif_collect_into_(&c, cfg, &t->f);
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->fn = fn;
	if (enif_self(env, &t->to) == NULL ||
	    (t->env = enif_alloc_env()) == NULL) {
		enif_free(t);
		return enif_make_badarg(env);
	}
	ref = enif_make_ref(env);
	t->ref = enif_make_copy(t->env, ref);
	t->arg = enif_make_copy(t->env, arg);
	if ((t->gpa = beamalloc_gpa_create(beamalloc_wide(), &c)) == NULL) {
		/* enomem, or einval for a cfg the GPA refuses (struct_size
		 * 0), as the leak check and chain_start raise. */
		int err = errno;

		enif_free_env(t->env);
		enif_free(t);
		errno = err;
		return beamalloc_nif_raise_errno(env);
	}
	enif_mutex_lock(beamalloc_nif_state_.lock);
	if (enif_thread_create(t->name, &t->tid, beamalloc_nif_thread_main_,
	    t, NULL) != 0) {
		enif_mutex_unlock(beamalloc_nif_state_.lock);
		(void)beamalloc_gpa_destroy(t->gpa);
		goto nomem;
	}
	t->next = beamalloc_nif_state_.threads;
	beamalloc_nif_state_.threads = t;
	enif_mutex_unlock(beamalloc_nif_state_.lock);
	return ref;
nomem:
	enif_free_env(t->env);
	enif_free(t);
	return enif_raise_exception(env, enif_make_atom(env, "enomem"));
}

/* ------------------------------------------------------------------------
 * Resources that own an allocator
 * ---------------------------------------------------------------------- */

typedef enum beamalloc_nif_own {
	BEAMALLOC_NIF_OWN_ARENA,	/* beamalloc_arena over beamalloc_beam() */
	BEAMALLOC_NIF_OWN_GPA		/* GPA over beamalloc_wide(), leak-checked */
} beamalloc_nif_own;

/* Called by the destructor before the allocator goes: free what must be
 * freed (a GPA reports whatever is left as leaked). */
typedef void (*beamalloc_nif_cleanup)(void *obj, beamalloc_allocator a);

/* The first member of an object of an owned resource type. */
typedef struct beamalloc_nif_owner {
	beamalloc_allocator allocator;	/* the object's own */
	/* Private. */
	beamalloc_gpa *gpa_;
	beamalloc_arena *arena_;
	beamalloc_nif_cleanup cleanup_;
} beamalloc_nif_owner;

static inline void
beamalloc_nif_owned_dtor_(ErlNifEnv *env, void *obj)
{
	beamalloc_nif_owner *o = (beamalloc_nif_owner *)obj;
	ErlNifEnv *outer = beamalloc_nif_env_enter_(env);

	if (o->cleanup_ != NULL && o->allocator.vtable != NULL)
		o->cleanup_(obj, o->allocator);
	if (o->gpa_ != NULL)
		(void)beamalloc_gpa_destroy(o->gpa_);
	if (o->arena_ != NULL)
		beamalloc_arena_destroy(o->arena_);
	o->gpa_ = NULL;
	o->arena_ = NULL;
	(void)beamalloc_nif_env_enter_(outer);
}

/* Open a resource type whose objects start with a beamalloc_nif_owner;
 * call it from load and upgrade.  Each instance opens a type of its own
 * (beamalloc_nif_open_type_()): objects made before an upgrade stay the
 * old instance's, which ERTS keeps loaded until they go. */
static inline ErlNifResourceType *
beamalloc_nif_owned_type(ErlNifEnv *env, const char *name)
{
	return beamalloc_nif_open_type_(env, name, beamalloc_nif_owned_dtor_);
}

/*
 * A new object of rt, size bytes (at least sizeof(beamalloc_nif_owner)),
 * zeroed but for its owner, which holds a fresh allocator of kind (cfg
 * configures a GPA: NULL, the defaults; its report function receives
 * what the destructor finds leaked).  Use it as enif_alloc_resource()'s.
 * NULL with errno ENOMEM or EINVAL.
 */
static inline void *
beamalloc_nif_owned_new(ErlNifResourceType *rt, size_t size,
    beamalloc_nif_own kind, const beamalloc_gpa_config *cfg,
    beamalloc_nif_cleanup cleanup)
{
	beamalloc_nif_owner *o;

	if (size < sizeof(*o)) {
		errno = EINVAL;
		return NULL;
	}
	if ((o = (beamalloc_nif_owner *)enif_alloc_resource(rt, size)) ==
	    NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(o, 0, size);
	if (kind == BEAMALLOC_NIF_OWN_GPA) {
		if ((o->gpa_ = beamalloc_gpa_create(beamalloc_wide(), cfg)) !=
		    NULL)
			o->allocator = beamalloc_gpa_allocator(o->gpa_);
	} else if ((o->arena_ = beamalloc_arena_create(beamalloc_beam())) !=
	    NULL)
		o->allocator = beamalloc_arena_allocator(o->arena_);
	if (o->allocator.vtable == NULL) {
		/* The create's errno: ENOMEM, or EINVAL for a cfg the GPA
		 * refuses (struct_size 0). */
		int err = errno;

		enif_release_resource(o);
		errno = err;
		return NULL;
	}
	o->cleanup_ = cleanup;
	return o;
}

/* ------------------------------------------------------------------------
 * A GPA per NIF library
 * ---------------------------------------------------------------------- */

/* A module-wide GPA, kept in (or as) the library's priv_data. */
typedef struct beamalloc_nif_module {
	beamalloc_allocator allocator;
	beamalloc_gpa *gpa;
	beamalloc_nif_findings findings;	/* filled at close */
} beamalloc_nif_module;

/* In load, and in upgrade for the new instance: a fresh GPA (cfg NULL:
 * the defaults).  0 on success, as load wants; -1 with errno ENOMEM, or
 * EINVAL for a cfg the GPA refuses (struct_size 0). */
static inline int
beamalloc_nif_module_open(beamalloc_nif_module *m,
    const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config c;

	beamalloc_nif_collect_into_(&c, cfg, &m->findings);
	m->gpa = beamalloc_gpa_create(beamalloc_wide(), &c);
	if (m->gpa == NULL) {
		m->allocator.vtable = NULL;
		return -1;
	}
	m->allocator = beamalloc_gpa_allocator(m->gpa);
	return 0;
}

/* In unload: the leak check (each leak to cfg's report function), then
 * everything goes back.  Returns the number of leaked blocks;
 * m->findings holds the totals.  The leaks of a check made before (a
 * beamalloc_gpa_detect_leaks() on m->gpa, whose blocks may have been
 * freed since) are not counted again: only this check's. */
static inline size_t
beamalloc_nif_module_close(beamalloc_nif_module *m)
{
	if (m->gpa != NULL) {
		m->findings.leak_bytes = 0;
		m->findings.leak_blocks = 0;
		m->findings.nsites = 0;
		memset(m->findings.sites, 0, sizeof(m->findings.sites));
		(void)beamalloc_gpa_destroy(m->gpa);
		m->gpa = NULL;
		m->allocator.vtable = NULL;
	}
	return m->findings.leak_blocks;
}

/* ------------------------------------------------------------------------
 * Reports into Erlang's logger
 * ---------------------------------------------------------------------- */

/* Where findings go: a process, by pid or by registered name. */
typedef struct beamalloc_nif_logger {
	ErlNifPid pid;
	char name[64];			/* registered name; "" for the pid */
} beamalloc_nif_logger;

/* dest: a local pid, or an atom naming a registered process (looked up
 * at each report, so it may be restarted).  1 on success, 0 when dest is
 * neither (or the name is longer than 63 bytes). */
static inline int
beamalloc_nif_logger_init(ErlNifEnv *env, ERL_NIF_TERM dest,
    beamalloc_nif_logger *lg)
{
	memset(lg, 0, sizeof(*lg));
	if (enif_get_local_pid(env, dest, &lg->pid))
		return 1;
	return enif_get_atom(env, dest, lg->name, sizeof(lg->name),
	    ERL_NIF_LATIN1) > 0;
}

static inline const char *
beamalloc_nif_kind_atom_(beamalloc_report_kind k)
{
	switch (k) {
	case BEAMALLOC_REPORT_LEAK: return "leak";
	case BEAMALLOC_REPORT_DOUBLE_FREE: return "double_free";
	case BEAMALLOC_REPORT_INVALID_FREE: return "invalid_free";
	case BEAMALLOC_REPORT_SIZE_MISMATCH: return "size_mismatch";
	case BEAMALLOC_REPORT_ALIGN_MISMATCH: return "align_mismatch";
	case BEAMALLOC_REPORT_CONCURRENT_USE: return "concurrent_use";
	case BEAMALLOC_REPORT_OVERFLOW: return "overflow";
	case BEAMALLOC_REPORT_WRITE_AFTER_FREE: return "write_after_free";
	}
	return "unknown";
}

/* Send msg (in the process-independent env) to lg's process, with the
 * caller's env: that of the call this thread is in, or NULL on a thread
 * the VM did not make (what enif_whereis_pid() and enif_send() allow). */
static inline int
beamalloc_nif_deliver_(ErlNifEnv *caller, const beamalloc_nif_logger *lg,
    ErlNifEnv *env, ERL_NIF_TERM msg)
{
	ErlNifPid to = lg->pid;

	return (lg->name[0] == '\0' || enif_whereis_pid(caller,
	    enif_make_atom(env, lg->name), &to)) &&
	    enif_send(caller, &to, env, msg);
}

struct beamalloc_nif_sender_ {
	const beamalloc_nif_logger *lg;
	ErlNifEnv *env;
	ERL_NIF_TERM msg;
	int sent;
};

static inline void *
beamalloc_nif_sender_main_(void *arg)
{
	struct beamalloc_nif_sender_ *s = (struct beamalloc_nif_sender_ *)arg;

	s->sent = beamalloc_nif_deliver_(NULL, s->lg, s->env, s->msg);
	return NULL;
}

/*
 * A report function (beamalloc_report_fn, user a beamalloc_nif_logger)
 * that sends each finding, from any thread, as the message
 *     {beamalloc_report, #{kind => leak | double_free | ..., text => Text,
 *                          address, size, align, given_size, given_align}}
 * with Text what beamalloc_report_print() writes (up to 8 KiB).  When the
 * process is not there, the report goes to stderr instead.
 */
static inline void
beamalloc_nif_logger_report(void *user, const beamalloc_report *r)
{
	const beamalloc_nif_logger *lg = (const beamalloc_nif_logger *)user;
	ErlNifEnv *env = enif_alloc_env();
	ERL_NIF_TERM keys[7], vals[7], map, msg;
	char text[8192];
	size_t n;
	int sent = 0, t, dirty;

	if (env == NULL) {
		beamalloc_report_print(stderr, r);
		return;
	}
	n = beamalloc_report_format(text, sizeof(text), r);
	if (n >= sizeof(text))
		n = sizeof(text) - 1;
	keys[0] = enif_make_atom(env, "kind");
	vals[0] = enif_make_atom(env, beamalloc_nif_kind_atom_(r->kind));
	keys[1] = enif_make_atom(env, "text");
	memcpy(enif_make_new_binary(env, n, &vals[1]), text, n);
	keys[2] = enif_make_atom(env, "address");
	vals[2] = enif_make_uint64(env, (uintptr_t)r->addr);
	keys[3] = enif_make_atom(env, "size");
	vals[3] = enif_make_uint64(env, r->size);
	keys[4] = enif_make_atom(env, "align");
	vals[4] = enif_make_uint64(env, r->align);
	keys[5] = enif_make_atom(env, "given_size");
	vals[5] = enif_make_uint64(env, r->given_size);
	keys[6] = enif_make_atom(env, "given_align");
	vals[6] = enif_make_uint64(env, r->given_align);
	if (!enif_make_map_from_arrays(env, keys, vals, 7, &map))
		map = vals[1];
	msg = enif_make_tuple2(env, enif_make_atom(env, "beamalloc_report"),
	    map);
	t = enif_thread_type();
	dirty = t == ERL_NIF_THR_DIRTY_CPU_SCHEDULER ||
	    t == ERL_NIF_THR_DIRTY_IO_SCHEDULER;
	if (beamalloc_nif_env_ != NULL || lg->name[0] == '\0' || !dirty)
		sent = beamalloc_nif_deliver_(beamalloc_nif_env_, lg, env, msg);
	/*
	 * On a dirty scheduler a thread of its own (one the VM did not make,
	 * where a NULL env is the rule) looks up and sends, joined at once:
	 *  - a name to look up in a call whose env is unknown here:
	 *    enif_whereis_pid() with a NULL env crashes the VM there;
	 *  - after the call's env was refused: on a dirty scheduler
	 *    enif_send() and enif_whereis_pid() fail with the env of a
	 *    process that is exiting (killed while in the call), and the
	 *    report would miss a logger that is there.
	 * Elsewhere a NULL env does (a send to a pid, or a normal
	 * scheduler).  A failed send leaves env and msg as they were.
	 */
	if (!sent && dirty &&
	    (beamalloc_nif_env_ != NULL || lg->name[0] != '\0')) {
		/* An array, not a literal: the name is a char *, and a
		 * cast would trip -Wcast-qual in C++. */
		static char name[] = "beamalloc_report";
		struct beamalloc_nif_sender_ s = { lg, env, msg, 0 };
		ErlNifTid tid;

		sent = enif_thread_create(name, &tid,
		    beamalloc_nif_sender_main_, &s, NULL) == 0 &&
		    enif_thread_join(tid, NULL) == 0 && s.sent;
	}
	if (!sent)
		beamalloc_report_print(stderr, r);
	enif_free_env(env);
}

/* Send the findings of the GPA that cfg makes to lg (which must outlive
 * it); cfg NULL: those of the allocators reporting through the
 * process-wide default (beamalloc_report_set_default()), until
 * beamalloc_nif_fini() takes it back.  That default is libbeamalloc.so's
 * for every NIF library linked to it: after this one's purge, another's
 * next finding called beamalloc_nif_logger_report() in unmapped code and
 * the VM died of SIGSEGV (found by a review: /tmp/multirev-6). */
static inline void
beamalloc_nif_logger_install(beamalloc_nif_logger *lg,
    beamalloc_gpa_config *cfg)
{
	if (cfg == NULL) {
		beamalloc_report_set_default(beamalloc_nif_logger_report, lg,
		    false);
		beamalloc_nif_state_.default_lg = lg;
		return;
	}
	cfg->report = beamalloc_nif_logger_report;
	cfg->report_user = lg;
}

/* ------------------------------------------------------------------------
 * Setting up and tearing down the helpers' per-library state
 * ---------------------------------------------------------------------- */

/* From load and from upgrade: opens the chains' resource type and the
 * threads' lock.  0 on success, -1 on failure, as load wants. */
static inline int
beamalloc_nif_init(ErlNifEnv *env)
{
	static char name[] = "beamalloc_nif";
	ErlNifResourceType *rt = beamalloc_nif_open_type_(env,
	    "beamalloc_nif_chain", beamalloc_nif_chain_dtor_);

	if (beamalloc_nif_state_.lock == NULL)
		beamalloc_nif_state_.lock = enif_mutex_create(name);
	if (rt == NULL || beamalloc_nif_state_.lock == NULL)
		return -1;
	__atomic_store_n(&beamalloc_nif_state_.chain_rt_old,
	    beamalloc_nif_state_.chain_rt, __ATOMIC_RELAXED);
	__atomic_store_n(&beamalloc_nif_state_.chain_rt, rt, __ATOMIC_RELEASE);
	(void)__atomic_add_fetch(&beamalloc_nif_state_.instances, 1,
	    __ATOMIC_ACQ_REL);
	return 0;
}

/* From unload: waits for every thread of beamalloc_nif_thread_spawn(),
 * unless another instance of the same file is still loaded, with its
 * threads (the code stays mapped): then joins those that are done.  The
 * last one also puts the default report back to standard error if this
 * library made it its logger (another's made since goes too: to
 * standard error, not into this library's unmapped code). */
static inline void
beamalloc_nif_fini(void)
{
	if (__atomic_sub_fetch(&beamalloc_nif_state_.instances, 1,
	    __ATOMIC_ACQ_REL) > 0) {
		beamalloc_nif_thread_reap_(0);
		return;
	}
	beamalloc_nif_thread_reap_(1);
	if (beamalloc_nif_state_.default_lg != NULL)
		beamalloc_report_set_default(NULL, NULL, false);
	beamalloc_nif_state_.default_lg = NULL;
	if (beamalloc_nif_state_.lock != NULL)
		enif_mutex_destroy(beamalloc_nif_state_.lock);
	beamalloc_nif_state_.lock = NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* BEAMALLOC_NIF_H */
