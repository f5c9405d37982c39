/*
 * deflog_nif.c - two NIF libraries linked with libbeamalloc.so (built
 * twice: deflog_a_nif, and deflog_b_nif with -DDEFLOG_B): A makes its
 * logger the process-wide default report, B frees what it never
 * allocated (t/nif/deflog.erl).
 */
#include <erl_nif.h>

#include "beamalloc.h"
#include "beamalloc/nif.h"

#ifndef DEFLOG_B
static beamalloc_nif_logger lg;

/* setup(Dest): A's logger, the default report. */
static ERL_NIF_TERM
setup(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	if (!beamalloc_nif_logger_init(env, argv[0], &lg))
		return enif_make_badarg(env);
	beamalloc_nif_logger_install(&lg, NULL);
	return enif_make_atom(env, "ok");
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)priv, (void)info;
	return beamalloc_nif_init(env);
}

static void
unload(ErlNifEnv *env, void *priv)
{
	(void)env, (void)priv;
	beamalloc_nif_fini();
}

static ErlNifFunc funcs[] = { { "setup", 1, setup, 0 } };

ERL_NIF_INIT(deflog_a, funcs, load, NULL, NULL, unload)
#else
/* bad_free(): the wide allocator's invalid-free report, by default. */
static ERL_NIF_TERM
bad_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	static _Alignas(4096) unsigned char never[4096];

	(void)argc, (void)argv;
	beamalloc_free_aligned(beamalloc_wide(), never, 64, 4096);
	return enif_make_atom(env, "ok");
}

static ErlNifFunc funcs[] = { { "bad_free", 0, bad_free, 0 } };

ERL_NIF_INIT(deflog_b, funcs, NULL, NULL, NULL, NULL)
#endif
