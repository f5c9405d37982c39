/*
 * reload_nif.c - chains and threads of <beamalloc/nif.h> across an
 * upgrade that loads the same file again (t/nif/reload.erl).  dlopen()
 * then gives the library already loaded, whose static state, the
 * header's among it, the two instances share.
 */
#include <stdatomic.h>
#include <unistd.h>

#include <beamalloc/nif.h>

/* Shared by the instances, as the header's state is. */
static _Atomic unsigned unloads;
static _Atomic size_t leaks;

static void
count(void *user, const beamalloc_report *r)
{
	(void)user, (void)r;
	atomic_fetch_add(&leaks, 1);
}

static beamalloc_gpa_config cfg;

/* chain(Ms): 40 B allocated in the first step, a second step on a dirty
 * I/O scheduler sleeping Ms milliseconds, the third frees and returns
 * done. */
static ERL_NIF_TERM
chain_c(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	(void)argc, (void)argv;
	beamalloc_free(ch->allocator, ch->state, 40);
	return enif_make_atom(env, "done");
}

static ERL_NIF_TERM
chain_b(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	unsigned ms;

	if (!enif_get_uint(env, argv[0], &ms))
		return enif_make_badarg(env);
	usleep(ms * 1000);
	return beamalloc_nif_chain_next(env, ch, "chain_c", 0, chain_c, argc,
	    argv);
}

static ERL_NIF_TERM
chain_a(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	if ((ch->state = beamalloc_alloc(ch->allocator, 40)) == NULL)
		return beamalloc_nif_raise_errno(env);
	return beamalloc_nif_chain_next(env, ch, "chain_b",
	    ERL_NIF_DIRTY_JOB_IO_BOUND, chain_b, argc, argv);
}

static ERL_NIF_TERM
chain(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	return beamalloc_nif_chain_start(env, argc, argv, chain_a, "chain",
	    &cfg);
}

/* thr(Term): Term back from a thread of its own. */
static ERL_NIF_TERM
thr_body(ErlNifEnv *env, ERL_NIF_TERM arg, beamalloc_allocator a)
{
	(void)env, (void)a;
	return arg;
}

static ERL_NIF_TERM
thr(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	return beamalloc_nif_thread_spawn(env, "reload_thr", thr_body,
	    argv[0], &cfg);
}

/* counts() -> {Unloads, Leaks} */
static ERL_NIF_TERM
counts(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_tuple2(env, enif_make_uint(env, atomic_load(&unloads)),
	    enif_make_uint64(env, atomic_load(&leaks)));
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)priv, (void)info;
	beamalloc_gpa_config_init(&cfg);
	cfg.report = count;
	return beamalloc_nif_init(env);
}

static int
upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info)
{
	(void)priv, (void)old_priv, (void)info;
	return beamalloc_nif_init(env);
}

static void
unload(ErlNifEnv *env, void *priv)
{
	(void)env, (void)priv;
	beamalloc_nif_fini();
	atomic_fetch_add(&unloads, 1);
}

static ErlNifFunc funcs[] = {
	{ "chain", 1, chain, 0 },
	{ "thr", 1, thr, 0 },
	{ "counts", 0, counts, 0 },
};

ERL_NIF_INIT(reload_mod, funcs, load, NULL, upgrade, unload)
