/*
 * decay_nif.c - for decay.erl: blocks held in GPAs inside the VM and
 * freed, so the test can watch erlang:memory(system) come back down.
 *
 *   hold(Which, N) -> ok      N random blocks of 8..4096 B and NLARGE of
 *                             1 MiB (freed, a GPA keeps those for the
 *                             next large block), written to, in Which:
 *                             default (config_init: decay on in the VM),
 *                             global (beamalloc_general_purpose()), or
 *                             nodecay (decay_ms = 0)
 *   drop(Which) -> ok         free them all (the GPA stays)
 *   decay_ms() -> integer     what config_init gives in the VM
 */
#include <erl_nif.h>
#include <string.h>

#include "beamalloc.h"

#define MAXN 20000
#define NLARGE 6
enum { W_DEFAULT, W_GLOBAL, W_NODECAY, NW };

static struct {
	beamalloc_gpa *gpa;
	void *p[MAXN + NLARGE];
	size_t len[MAXN + NLARGE];
	unsigned n;
} held[NW];

static int
which_of(ErlNifEnv *env, ERL_NIF_TERM t)
{
	char name[16];

	if (!enif_get_atom(env, t, name, sizeof(name), ERL_NIF_LATIN1))
		return -1;
	return strcmp(name, "default") == 0 ? W_DEFAULT :
	    strcmp(name, "global") == 0 ? W_GLOBAL :
	    strcmp(name, "nodecay") == 0 ? W_NODECAY : -1;
}

static ERL_NIF_TERM
hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int w = which_of(env, argv[0]);
	uint32_t x = 4242;
	beamalloc_allocator a;
	unsigned n;

	(void)argc;
	if (w < 0 || !enif_get_uint(env, argv[1], &n) || n > MAXN ||
	    held[w].n != 0)
		return enif_make_badarg(env);
	a = beamalloc_gpa_allocator(held[w].gpa);
	for (unsigned i = 0; i < n + NLARGE; i++) {
		x = x * 1103515245u + 12345u;
		held[w].len[i] = i < n ? 8 + (x >> 8) % 4089 : (size_t)1 << 20;
		if ((held[w].p[i] = beamalloc_alloc(a, held[w].len[i])) ==
		    NULL)
			return enif_make_atom(env, "enomem");
		memset(held[w].p[i], 7, held[w].len[i]);
		held[w].n = i + 1;
	}
	return enif_make_atom(env, "ok");
}

static ERL_NIF_TERM
drop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int w = which_of(env, argv[0]);
	beamalloc_allocator a;

	(void)argc;
	if (w < 0)
		return enif_make_badarg(env);
	a = beamalloc_gpa_allocator(held[w].gpa);
	for (unsigned i = 0; i < held[w].n; i++)
		beamalloc_free(a, held[w].p[i], held[w].len[i]);
	held[w].n = 0;
	return enif_make_atom(env, "ok");
}

static ERL_NIF_TERM
decay_ms(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_config c;

	(void)argc, (void)argv;
	beamalloc_gpa_config_init(&c);
	return enif_make_uint(env, c.decay_ms);
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	beamalloc_gpa_config c;

	(void)env, (void)priv, (void)info;
	held[W_DEFAULT].gpa = beamalloc_gpa_create(beamalloc_wide(), NULL);
	held[W_GLOBAL].gpa = beamalloc_gpa_global();
	beamalloc_gpa_config_init(&c);
	c.decay_ms = 0;
	held[W_NODECAY].gpa = beamalloc_gpa_create(beamalloc_wide(), &c);
	for (int w = 0; w < NW; w++)
		if (held[w].gpa == NULL)
			return 1;
	return 0;
}

static void
unload(ErlNifEnv *env, void *priv)
{
	(void)env, (void)priv;
	(void)beamalloc_gpa_destroy(held[W_DEFAULT].gpa);
	(void)beamalloc_gpa_destroy(held[W_NODECAY].gpa);
}

static ErlNifFunc funcs[] = {
	{ "hold", 2, hold, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "drop", 1, drop, 0 },
	{ "decay_ms", 0, decay_ms, 0 },
};

ERL_NIF_INIT(decay, funcs, load, NULL, NULL, unload)
