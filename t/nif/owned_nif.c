/*
 * owned_nif.c - resources that own their allocator (beamalloc_nif_owned_type()
 * and beamalloc_nif_owned_new(), as beamalloc_nif(3) shows them) across an
 * upgrade to another copy of the library and the purge of the old code
 * (t/nif/owned.erl).  Each object holds a vector from its own allocator,
 * freed by a cleanup function of this library.
 */
#include "common.h"

struct vec {
	beamalloc_nif_owner own;
	int64_t *v;
	size_t n;
};

static ErlNifResourceType *vec_rt;

static void
vec_cleanup(void *obj, beamalloc_allocator a)
{
	struct vec *x = (struct vec *)obj;

	beamalloc_free(a, x->v, x->n * sizeof(*x->v));
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)priv, (void)info;
	return (vec_rt = beamalloc_nif_owned_type(env, "vec")) == NULL;
}

static int
upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info)
{
	(void)old_priv;
	return load(env, priv, info);
}

/* new(List, gpa | arena): a vector of List in an object of its own. */
static ERL_NIF_TERM
new_vec(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_nif_own kind = enif_is_identical(argv[1],
	    enif_make_atom(env, "arena")) ? BEAMALLOC_NIF_OWN_ARENA :
	    BEAMALLOC_NIF_OWN_GPA;
	struct vec *x;
	ERL_NIF_TERM t;

	(void)argc;
	if ((x = (struct vec *)beamalloc_nif_owned_new(vec_rt, sizeof(*x), kind,
	    NULL, vec_cleanup)) == NULL)
		return beamalloc_nif_raise_errno(env);
	x->v = beamalloc_nif_get_int64_list(env, argv[0], x->own.allocator,
	    &x->n);
	if (x->v == NULL) {
		t = beamalloc_nif_raise_errno(env);
		enif_release_resource(x);
		return t;
	}
	t = enif_make_resource(env, x);
	enif_release_resource(x);
	return t;
}

/* sum(Vec): its elements' sum; badarg for an object of another type. */
static ERL_NIF_TERM
sum(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct vec *x;

	(void)argc;
	if (!enif_get_resource(env, argv[0], vec_rt, (void **)&x))
		return enif_make_badarg(env);
	return int64s_total(env, x->v, x->n);
}

static ErlNifFunc funcs[] = {
	{ "new", 2, new_vec, 0 },
	{ "sum", 1, sum, 0 },
};

ERL_NIF_INIT(owned_mod, funcs, load, NULL, upgrade, NULL)
