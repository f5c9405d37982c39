/*
 * beamalloc_sum_nif.c - two leak-checked NIFs: each call gets a fresh
 * general purpose allocator over the BEAM's memory, and whatever the call
 * leaves live raises {memory_leak, Message, Details} in Elixir.
 */
#include <beamalloc/nif.h>	/* <erl_nif.h>, <beamalloc.h> */

/* sum(Numbers): the list decoded into an array from the call's GPA. */
static ERL_NIF_TERM
sum_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v, total = 0;
	size_t n;

	(void)argc;
	if ((v = beamalloc_nif_get_double_list(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	for (size_t i = 0; i < n; i++)
		total += v[i];
	beamalloc_free(a, v, n * sizeof *v);
	return enif_make_double(env, total);
}

/* leaky_sum(Numbers): the same, but it forgets to free the array. */
static ERL_NIF_TERM
leaky_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v, total = 0;
	size_t n;

	(void)argc;
	if ((v = beamalloc_nif_get_double_list(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	for (size_t i = 0; i < n; i++)
		total += v[i];
	return enif_make_double(env, total);
}

BEAMALLOC_NIF_LEAK_CHECKED(sum, sum_body)
BEAMALLOC_NIF_LEAK_CHECKED(leaky_sum, leaky_body)

static ErlNifFunc funcs[] = {
	{"sum", 1, sum, 0},
	{"leaky_sum", 1, leaky_sum, 0},
};

ERL_NIF_INIT(Elixir.BeamallocSum, funcs, NULL, NULL, NULL, NULL)
