/*
 * modgpa_nif.c - a GPA per NIF library (<beamalloc/nif.h>'s
 * beamalloc_nif_module): opened in load, a fresh one in upgrade for the
 * new instance, leak-checked in unload.  The leaks found at unload are
 * appended to the file named by the load info (a string) as "instance N
 * leak BYTES", then "instance N closed COUNT" with what
 * beamalloc_nif_module_close() returned when not 0, since the library is
 * gone by the time the test looks (t/nif/modgpa.erl).
 */
#include <stdio.h>

#include <beamalloc/nif.h>

struct priv {
	beamalloc_nif_module mod;	/* the library's GPA */
	int instance;
	char path[4096];		/* where reports go */
	void *kept[64];
	size_t kept_len[64], nkept;
};

static void
to_file(void *user, const beamalloc_report *r)
{
	struct priv *p = (struct priv *)user;
	FILE *f;

	if ((f = fopen(p->path, "a")) == NULL)
		return;
	fprintf(f, "instance %d %s %zu\n", p->instance,
	    beamalloc_report_kind_name(r->kind), r->size);
	fclose(f);
}

static int
open_priv(ErlNifEnv *env, ERL_NIF_TERM info, void **priv_data, int instance)
{
	struct priv *p = enif_alloc(sizeof(*p));
	beamalloc_gpa_config c;

	if (p == NULL)
		return -1;
	memset(p, 0, sizeof(*p));
	p->instance = instance;
	if (enif_get_string(env, info, p->path, sizeof(p->path),
	    ERL_NIF_LATIN1) <= 0) {
		enif_free(p);
		return -1;
	}
	beamalloc_gpa_config_init(&c);
	c.report = to_file;
	c.report_user = p;
	if (beamalloc_nif_module_open(&p->mod, &c) != 0) {
		enif_free(p);
		return -1;
	}
	*priv_data = p;
	return 0;
}

static int
load(ErlNifEnv *env, void **priv_data, ERL_NIF_TERM info)
{
	return open_priv(env, info, priv_data, 1);
}

/* The new instance gets a GPA of its own: the old instance's code may
 * still run (and free) until it is purged, with its own GPA. */
static int
upgrade(ErlNifEnv *env, void **priv_data, void **old_priv_data,
    ERL_NIF_TERM info)
{
	return open_priv(env, info, priv_data,
	    ((struct priv *)*old_priv_data)->instance + 1);
}

static void
unload(ErlNifEnv *env, void *priv_data)
{
	struct priv *p = (struct priv *)priv_data;

	size_t leaks;
	FILE *f;

	(void)env;
	/* The count it returns, when not 0: this check's leaks only. */
	leaks = beamalloc_nif_module_close(&p->mod);
	if (leaks != 0 && (f = fopen(p->path, "a")) != NULL) {
		fprintf(f, "instance %d closed %zu\n", p->instance, leaks);
		fclose(f);
	}
	enif_free(p);
}

/* keep(Bytes) -> ok: allocated from the library's GPA, kept. */
static ERL_NIF_TERM
keep(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct priv *p = enif_priv_data(env);
	unsigned len;
	void *m;

	(void)argc;
	if (!enif_get_uint(env, argv[0], &len) || p->nkept == 64)
		return enif_make_badarg(env);
	if ((m = beamalloc_alloc(p->mod.allocator, len)) == NULL)
		return beamalloc_nif_raise_errno(env);
	p->kept_len[p->nkept] = len;
	p->kept[p->nkept++] = m;
	return enif_make_atom(env, "ok");
}

/* drop() -> ok: the kept blocks freed. */
static ERL_NIF_TERM
drop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct priv *p = enif_priv_data(env);

	(void)argc, (void)argv;
	while (p->nkept > 0) {
		p->nkept--;
		beamalloc_free(p->mod.allocator, p->kept[p->nkept],
		    p->kept_len[p->nkept]);
	}
	return enif_make_atom(env, "ok");
}

/* check() -> N: a leak check of the library's GPA, while it lives. */
static ERL_NIF_TERM
check(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct priv *p = enif_priv_data(env);

	(void)argc, (void)argv;
	return enif_make_uint64(env, beamalloc_gpa_detect_leaks(p->mod.gpa));
}

/* info() -> {Instance, StatsMap} */
static ERL_NIF_TERM
info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct priv *p = enif_priv_data(env);

	(void)argc, (void)argv;
	return enif_make_tuple2(env, enif_make_int(env, p->instance),
	    beamalloc_nif_make_stats(env, p->mod.gpa));
}

static ErlNifFunc funcs[] = {
	{ "keep", 1, keep, 0 },
	{ "drop", 0, drop, 0 },
	{ "info", 0, info, 0 },
	{ "check", 0, check, 0 },
};

ERL_NIF_INIT(modgpa_mod, funcs, load, NULL, upgrade, unload)
