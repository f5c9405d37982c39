/*
 * common.h - what several test NIFs share: a list of integers summed from
 * an array decoded with a given allocator, and the global GPA's counts.
 */
#ifndef BEAMALLOC_T_NIF_COMMON_H
#define BEAMALLOC_T_NIF_COMMON_H

#include <beamalloc/nif.h>

/* The sum of v[0..n) as a term; it wraps, as tests of careless input
 * expect. */
static inline ERL_NIF_TERM
int64s_total(ErlNifEnv *env, const int64_t *v, size_t n)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += (uint64_t)v[i];
	return enif_make_int64(env, (int64_t)total);
}

/* The sum of List's integers, decoded into an array from a; the array is
 * freed unless keep (a deliberate leak). */
static inline ERL_NIF_TERM
sum_int64s(ErlNifEnv *env, ERL_NIF_TERM list, beamalloc_allocator a,
    bool keep)
{
	ERL_NIF_TERM t;
	int64_t *v;
	size_t n;

	if ((v = beamalloc_nif_get_int64_list(env, list, a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	t = int64s_total(env, v, n);
	if (!keep)
		beamalloc_free(a, v, n * sizeof(*v));
	return t;
}

/* gpa_live() -> {LiveBlocks, LiveBytes} of the global GPA. */
static inline ERL_NIF_TERM
gpa_live(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_stats s;

	(void)argc, (void)argv;
	beamalloc_gpa_get_stats(beamalloc_gpa_global(), &s);
	return enif_make_tuple2(env, enif_make_uint64(env, s.live_blocks),
	    enif_make_uint64(env, s.live_bytes));
}

#endif
