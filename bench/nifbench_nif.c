/*
 * nifbench_nif.c - the small-object workloads inside a real BEAM: raw
 * enif_alloc, the BEAM base allocator (the same calls behind the vtable),
 * the GPA and an arena over it, and malloc for reference, on whichever
 * scheduler calls us: run/3 is a normal NIF, run_dirty/3 a dirty CPU one.
 *
 * A timed call runs for tens of milliseconds, far beyond the 1 ms a
 * normal-scheduler NIF should take: acceptable for a benchmark that runs
 * alone in its VM, never in production code.
 *
 * hold/2, drop/0 and destroy/0 leave blocks live so nifbench.erl can read
 * erlang:memory(system) at the peak and after.
 */
#include <erl_nif.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "beamalloc/nif.h"
#include "bench.h"

/* ---- kernels ----------------------------------------------------------- */

/* en_*: enif_alloc and enif_free called directly. */
#define K_NAME(x) en_##x
#define K_H int
#define K_ALLOC(h, n, al) ((void)(h), enif_alloc(n))
#define K_FREE(h, p, n, al) ((void)(h), enif_free(p))
#define K_REALLOC(h, p, n, al, m) ((void)(h), enif_realloc((p), (m)))
#include "kernels.h"

/* mc_*: malloc and free directly (memory the VM does not see). */
#define K_NAME(x) mc_##x
#define K_H int
#define K_ALLOC(h, n, al) ((void)(h), malloc(n))
#define K_FREE(h, p, n, al) ((void)(h), free(p))
#define K_REALLOC(h, p, n, al, m) ((void)(h), realloc((p), (m)))
#include "kernels.h"

/* fe_*: through libbeamalloc's front-end. */
#define K_NAME(x) fe_##x
#define K_H beamalloc_allocator
#define K_ALLOC(h, n, al) beamalloc_alloc_aligned((h), (n), (al))
#define K_FREE(h, p, n, al) beamalloc_free_aligned((h), (p), (n), (al))
#define K_REALLOC(h, p, n, al, m) beamalloc_realloc((h), (p), (n), (al), (m))
#include "kernels.h"

/* ---- allocators and workloads ------------------------------------------ */

enum { A_ENIF, A_BEAM, A_GPA, A_GPA_SAFE, A_ARENA, A_MALLOC, NA };
static const char *const anames[NA] = {
	"enif", "beam", "gpa-fast", "gpa-safe", "arena", "malloc"
};

enum { WL_PAIR, WL_LIFO, WL_RAND, WL_RESET, WL_REFILL, WL_GROW, NWL };
static struct wl wls[NWL] = {
	{ .name = "pair64", .unit = "pair", .kind = W_PAIR, .size = 64,
	  .align = 8, .ops = 200000 },
	{ .name = "lifo1000", .unit = "pair", .kind = W_LIFO, .size = 64,
	  .align = 8, .batch = 1000, .ops = 200 },
	{ .name = "rand1k", .unit = "pair", .kind = W_RAND, .align = 8,
	  .live = 1000, .ops = 200000 },
	{ .name = "reset10k", .unit = "block", .kind = W_BATCH, .align = 8,
	  .live = 10000, .ops = 10 },
	/* A NIF's temporaries, call after call: 4 MB taken and freed. */
	{ .name = "refill4m", .unit = "block", .kind = W_BATCH, .size = 4096,
	  .align = 8, .live = 1000, .ops = 10 },
	/* A NIF's growing buffer (a binary being built), call after call:
	 * 16 B to 1 MiB by doubling, one byte written per new page. */
	{ .name = "grow1m", .unit = "realloc", .kind = W_GROW, .align = 8,
	  .ops = 200 },
};
static const uint32_t wl_lo[NWL] = { 0, 0, 8, 16, 0, 0 };
static const uint32_t wl_hi[NWL] = { 0, 0, 4096, 128, 0, 0 };

/* The instances the timed runs use: made at load, kept until unload. */
static struct {
	beamalloc_gpa *gpa, *gpa_safe;
	beamalloc_arena *arena;
} inst;

/* hold/2: one fresh instance and its live blocks. */
static struct {
	int which;
	beamalloc_gpa *gpa;
	beamalloc_arena *arena;
	beamalloc_allocator a;
	struct wl w;
	bool blocks;
} held = { -1, NULL, NULL, { NULL, NULL }, { 0 }, false };

static beamalloc_gpa *
new_gpa(bool safety)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.stack_trace_depth = 0;
	cfg.thread_safe = true;	/* normal and dirty schedulers share it */
	return beamalloc_gpa_create(beamalloc_wide(), &cfg);
}

static bool
available(int which)
{
	switch (which) {
	case A_GPA: return inst.gpa != NULL;
	case A_GPA_SAFE: return inst.gpa_safe != NULL;
	case A_ARENA: return inst.arena != NULL;
	default: return true;
	}
}

static beamalloc_allocator
vtable_of(int which, beamalloc_gpa *gpa, beamalloc_arena *arena)
{
	switch (which) {
	case A_GPA:
	case A_GPA_SAFE:
		return beamalloc_gpa_allocator(gpa);
	case A_ARENA:
		return beamalloc_arena_allocator(arena);
	default:
		return beamalloc_beam();
	}
}

static void
arena_reset_cb(void *arena)
{
	beamalloc_arena_reset(arena);
}

/* Runs workload k with allocator which: operations done, 0 on failure. */
static size_t
run_one(int which, struct wl *w, int k)
{
	beamalloc_gpa *gpa = which == A_GPA_SAFE ? inst.gpa_safe : inst.gpa;
	beamalloc_allocator a = vtable_of(which, gpa, inst.arena);
	size_t ops = 0;

	switch (which) {
	case A_ENIF:
		switch (k) {
		case WL_PAIR: return en_pair(0, w);
		case WL_LIFO: return en_lifo(0, w);
		case WL_RAND: return en_rand(0, w);
		case WL_GROW: return en_grow(0, w);
		default: return en_batch(0, w, NULL, NULL);
		}
	case A_MALLOC:
		switch (k) {
		case WL_PAIR: return mc_pair(0, w);
		case WL_LIFO: return mc_lifo(0, w);
		case WL_RAND: return mc_rand(0, w);
		case WL_GROW: return mc_grow(0, w);
		default: return mc_batch(0, w, NULL, NULL);
		}
	default:
		break;
	}
	switch (k) {
	case WL_PAIR: ops = fe_pair(a, w); break;
	case WL_LIFO: ops = fe_lifo(a, w); break;
	case WL_RAND: ops = fe_rand(a, w); break;
	case WL_GROW: ops = fe_grow(a, w); break;
	default:
		ops = fe_batch(a, w, which == A_ARENA ? arena_reset_cb : NULL,
		    inst.arena);
		break;
	}
	if (which == A_ARENA)
		beamalloc_arena_reset(inst.arena);
	return ops;
}

/* ---- NIFs -------------------------------------------------------------- */

static ERL_NIF_TERM
mk_atom(ErlNifEnv *env, const char *name)
{
	ERL_NIF_TERM a;

	return enif_make_existing_atom(env, name, &a, ERL_NIF_LATIN1) ? a :
	    enif_make_atom(env, name);
}

/* names() -> {[AllocName], [WorkloadName]}: indices for run/3. */
static ERL_NIF_TERM
names(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	ERL_NIF_TERM al = enif_make_list(env, 0), wl = enif_make_list(env, 0);

	(void)argc, (void)argv;
	for (int i = NA; i-- > 0;)
		al = enif_make_list_cell(env, mk_atom(env, anames[i]), al);
	for (int i = NWL; i-- > 0;)
		wl = enif_make_list_cell(env, mk_atom(env, wls[i].name), wl);
	return enif_make_tuple2(env, al, wl);
}

static ERL_NIF_TERM
in_vm(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return mk_atom(env, beamalloc_in_vm() ? "true" : "false");
}

/* run(Alloc, Workload, Scale) -> {Nanoseconds, Operations} */
static ERL_NIF_TERM
run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int which, k;
	double scale;
	struct wl w;
	uint64_t t0, t1;
	size_t ops;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || which < 0 || which >= NA ||
	    !enif_get_int(env, argv[1], &k) || k < 0 || k >= NWL ||
	    !enif_get_double(env, argv[2], &scale) || !(scale > 0))
		return enif_make_badarg(env);
	/* An arena frees nothing before its reset: 200 grown buffers
	 * would hold 400 MB. */
	if (!available(which) || (which == A_ARENA && k == WL_GROW))
		return mk_atom(env, "unavailable");
	w = wls[k];
	w.ops = (size_t)((double)w.ops * scale);
	if (w.ops == 0)
		w.ops = 1;
	if (w.ops > wls[k].ops)
		return enif_make_badarg(env);	/* scratch sized for 1.0 */
	t0 = now_ns();
	ops = run_one(which, &w, k);
	t1 = now_ns();
	if (ops == 0)
		return mk_atom(env, "failed");
	return enif_make_tuple2(env, enif_make_uint64(env, t1 - t0),
	    enif_make_uint64(env, ops));
}

/* hold(Alloc, Blocks) -> LiveBytes: a fresh instance, Blocks random
 * sizes of 8..4096 B left live. */
static ERL_NIF_TERM
hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int which;
	unsigned n;
	size_t live = 0;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || which < 0 || which >= NA ||
	    !enif_get_uint(env, argv[1], &n) || n == 0 || held.which >= 0)
		return enif_make_badarg(env);
	if (!available(which))
		return mk_atom(env, "unavailable");
	held.w = (struct wl){ .kind = W_RAND, .align = 8, .live = n };
	if (wl_prepare(&held.w, 8, 4096, 0x401d) != 0)
		return enif_make_badarg(env);
	held.which = which;
	if (which == A_GPA || which == A_GPA_SAFE)
		held.gpa = new_gpa(which == A_GPA_SAFE);
	if (which == A_ARENA)
		held.arena = beamalloc_arena_create(beamalloc_beam());
	held.a = vtable_of(which, held.gpa, held.arena);
	switch (which) {
	case A_ENIF: (void)en_rand_fill(0, &held.w); break;
	case A_MALLOC: (void)mc_rand_fill(0, &held.w); break;
	default: (void)fe_rand_fill(held.a, &held.w); break;
	}
	held.blocks = true;
	for (unsigned i = 0; i < n; i++)
		live += held.w.lens[i];
	return enif_make_uint64(env, live);
}

/* drop() -> ok: free the blocks, keep the instance. */
static ERL_NIF_TERM
drop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (held.which < 0 || !held.blocks)
		return enif_make_badarg(env);
	switch (held.which) {
	case A_ENIF: en_rand_drain(0, &held.w); break;
	case A_MALLOC: mc_rand_drain(0, &held.w); break;
	case A_ARENA: beamalloc_arena_reset(held.arena); break;
	default: fe_rand_drain(held.a, &held.w); break;
	}
	held.blocks = false;
	return mk_atom(env, "ok");
}

/* destroy() -> ok: release the instance too. */
static ERL_NIF_TERM
destroy(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (held.which < 0 || held.blocks)
		return enif_make_badarg(env);
	if (held.gpa != NULL)
		(void)beamalloc_gpa_destroy(held.gpa);
	if (held.arena != NULL)
		beamalloc_arena_destroy(held.arena);
	wl_release(&held.w);
	held.gpa = NULL;
	held.arena = NULL;
	held.which = -1;
	return mk_atom(env, "ok");
}

/* ---- blocks handed between schedulers ---------------------------------- */

/* One block of the hand-off workload: what a NIF keeps for another. */
#define HO_SIZE 64
#define HO_MAX 1024

static bool
ho_alloc_ok(int which)
{
	return which == A_ENIF || which == A_MALLOC || ((which == A_GPA ||
	    which == A_GPA_SAFE) && available(which));
}

/* The GPA's handle, taken once per call as a NIF keeps it (not per
 * block: that is a call through the PLT each). */
static beamalloc_allocator
ho_allocator(int which)
{
	return vtable_of(which, which == A_GPA ? inst.gpa : inst.gpa_safe,
	    NULL);
}

/* ho_make(Alloc, N) -> binary of N block addresses: N blocks of 64 B,
 * each written to, as a producer that fills messages would. */
static ERL_NIF_TERM
ho_make(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int which;
	unsigned n;
	ERL_NIF_TERM bin;
	beamalloc_allocator a;
	void **p;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || !ho_alloc_ok(which) ||
	    !enif_get_uint(env, argv[1], &n) || n == 0 || n > HO_MAX)
		return enif_make_badarg(env);
	a = ho_allocator(which);
	p = (void **)enif_make_new_binary(env, n * sizeof(void *), &bin);
	for (unsigned i = 0; i < n; i++) {
		switch (which) {
		case A_ENIF: p[i] = enif_alloc(HO_SIZE); break;
		case A_MALLOC: p[i] = malloc(HO_SIZE); break;
		default: p[i] = beamalloc_alloc(a, HO_SIZE); break;
		}
		if (p[i] == NULL)
			abort();	/* a benchmark: no partial batches */
		memset(p[i], (int)i, HO_SIZE);
	}
	return bin;
}

/* ho_free(Alloc, Bin) -> ok: free the blocks ho_make gave, wherever this
 * process runs now. */
static ERL_NIF_TERM
ho_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	ErlNifBinary b;
	int which;
	beamalloc_allocator a;
	void **p;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || !ho_alloc_ok(which) ||
	    !enif_inspect_binary(env, argv[1], &b) ||
	    b.size % sizeof(void *) != 0)
		return enif_make_badarg(env);
	a = ho_allocator(which);
	p = (void **)(void *)b.data;
	for (size_t i = 0; i < b.size / sizeof(void *); i++) {
		switch (which) {
		case A_ENIF: enif_free(p[i]); break;
		case A_MALLOC: free(p[i]); break;
		default: beamalloc_free(a, p[i], HO_SIZE); break;
		}
	}
	return mk_atom(env, "ok");
}

/* ---- the cost of a leak check ------------------------------------------ */

/* The body of a NIF call: argv[0] blocks of 64 B, taken, then freed. */
static ERL_NIF_TERM
lc_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	void *p[64];
	unsigned n;

	(void)argc;
	if (!enif_get_uint(env, argv[0], &n) || n > 64)
		return enif_make_badarg(env);
	for (unsigned i = 0; i < n; i++)
		if ((p[i] = beamalloc_alloc(a, 64)) == NULL)
			return beamalloc_nif_raise_errno(env);
	for (unsigned i = 0; i < n; i++)
		beamalloc_free(a, p[i], 64);
	return mk_atom(env, "ok");
}

/* lc_checked(N): the body on a fresh GPA, leak-checked; lc_plain(N): the
 * same body on the global GPA. */
BEAMALLOC_NIF_LEAK_CHECKED(lc_checked, lc_body)

static ERL_NIF_TERM
lc_plain(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	return lc_body(env, argc, argv, beamalloc_general_purpose());
}

/* ---- load/unload ------------------------------------------------------- */

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)env, (void)priv, (void)info;
	for (int k = 0; k < NWL; k++)
		if (wl_prepare(&wls[k], wl_lo[k], wl_hi[k], 0x5eed0000u + k))
			return 1;
	inst.gpa = new_gpa(false);
	inst.gpa_safe = new_gpa(true);
	inst.arena = beamalloc_arena_create(beamalloc_beam());
	/* A failed instance shows as unavailable, not as a failed load. */
	return 0;
}

static void
unload(ErlNifEnv *env, void *priv)
{
	(void)env, (void)priv;
	if (inst.gpa != NULL)
		beamalloc_gpa_destroy(inst.gpa);
	if (inst.gpa_safe != NULL)
		beamalloc_gpa_destroy(inst.gpa_safe);
	if (inst.arena != NULL)
		beamalloc_arena_destroy(inst.arena);
	for (int k = 0; k < NWL; k++)
		wl_release(&wls[k]);
}

static ErlNifFunc funcs[] = {
	{ "names", 0, names, 0 },
	{ "in_vm", 0, in_vm, 0 },
	{ "run", 3, run, 0 },
	{ "run_dirty", 3, run, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "hold", 2, hold, 0 },
	{ "drop", 0, drop, 0 },
	{ "destroy", 0, destroy, 0 },
	{ "lc_checked", 1, lc_checked, 0 },
	{ "lc_plain", 1, lc_plain, 0 },
	{ "ho_make", 2, ho_make, 0 },
	{ "ho_free", 2, ho_free, 0 },
};

ERL_NIF_INIT(nifbench, funcs, load, NULL, NULL, unload)
