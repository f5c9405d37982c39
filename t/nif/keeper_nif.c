/*
 * keeper_nif.c - a thread that outlives libbeamalloc.  Not linked with the
 * library: its thread calls a function of unload_nif.so (which uses the
 * library) once, then waits while that NIF and libbeamalloc.so are
 * unloaded, then exits.  If the library had left a thread-exit hook
 * (a pthread key destructor, a TLS destructor), the exit would jump into
 * unmapped code and kill the VM.
 */
#include <stdbool.h>
#include <stdint.h>

#include <erl_nif.h>

static struct {
	ErlNifMutex *mu;
	ErlNifCond *cv;
	ErlNifTid tid;
	void (*fn)(void);
	bool running, ran, stop;
} k;

static void *
keeper_main(void *arg)
{
	(void)arg;
	k.fn();
	enif_mutex_lock(k.mu);
	k.ran = true;
	enif_cond_broadcast(k.cv);
	while (!k.stop)
		enif_cond_wait(k.cv, k.mu);
	enif_mutex_unlock(k.mu);
	return NULL;
}

/* start(FunctionAddress): a thread that calls it once, then waits. */
static ERL_NIF_TERM
start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	ErlNifUInt64 addr;

	(void)argc;
	if (!enif_get_uint64(env, argv[0], &addr) || addr == 0 || k.running)
		return enif_make_badarg(env);
	k.fn = (void (*)(void))(uintptr_t)addr;
	k.ran = k.stop = false;
	if (enif_thread_create("ba_keeper", &k.tid, keeper_main, NULL,
	    NULL) != 0)
		return enif_make_atom(env, "error");
	k.running = true;
	return enif_make_atom(env, "ok");
}

/* wait_ran(): until the thread has called the function (dirty NIF). */
static ERL_NIF_TERM
wait_ran(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (!k.running)
		return enif_make_badarg(env);
	enif_mutex_lock(k.mu);
	while (!k.ran)
		enif_cond_wait(k.cv, k.mu);
	enif_mutex_unlock(k.mu);
	return enif_make_atom(env, "ok");
}

/* stop(): let the thread exit and join it (dirty NIF). */
static ERL_NIF_TERM
stop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (!k.running)
		return enif_make_badarg(env);
	enif_mutex_lock(k.mu);
	k.stop = true;
	enif_cond_broadcast(k.cv);
	enif_mutex_unlock(k.mu);
	enif_thread_join(k.tid, NULL);
	k.running = false;
	return enif_make_atom(env, "ok");
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)env, (void)priv, (void)info;
	k.mu = enif_mutex_create("ba_keeper");
	k.cv = enif_cond_create("ba_keeper");
	return k.mu == NULL || k.cv == NULL;
}

static ErlNifFunc funcs[] = {
	{ "start", 1, start, 0 },
	{ "wait_ran", 0, wait_ran, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "stop", 0, stop, ERL_NIF_DIRTY_JOB_CPU_BOUND },
};

ERL_NIF_INIT(keeper, funcs, load, NULL, NULL, NULL)
