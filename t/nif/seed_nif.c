/*
 * seed_nif.c - the rest of the seed's tests (zigler-allocations.txt) inside
 * a real BEAM: leaks/noleak on the global GPA, the global GPA's memory
 * tracked by the VM, with_arena, arena_sum with the list decoded into an
 * arena array.  allocate_raw, tracking and allocate_large_aligned are in
 * basic_nif.c.
 */
#include "common.h"

/* Blocks held across calls, as the seed's hidden globals. */
static struct {
	void *p;
	size_t len;
} held_gpa;
static beamalloc_arena *held_arena;

static ERL_NIF_TERM
mk_bool(ErlNifEnv *env, bool b)
{
	return enif_make_atom(env, b ? "true" : "false");
}

static ERL_NIF_TERM
mk_list_u16(ErlNifEnv *env, const uint16_t *v, size_t n)
{
	ERL_NIF_TERM list = enif_make_list(env, 0);

	while (n-- > 0)
		list = enif_make_list_cell(env, enif_make_uint(env, v[n]),
		    list);
	return list;
}

/* The seed's leaks(): detect leaks while an 8-byte block is still live. */
static ERL_NIF_TERM
leaks(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_general_purpose();
	void *memory;
	size_t found;

	(void)argc, (void)argv;
	if ((memory = beamalloc_alloc(a, 8)) == NULL)
		return beamalloc_nif_raise_errno(env);
	found = beamalloc_gpa_detect_leaks(beamalloc_gpa_global());
	beamalloc_free(a, memory, 8);
	return mk_bool(env, found > 0);
}

/* The seed's noleak(): the block is freed before the check. */
static ERL_NIF_TERM
noleak(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_general_purpose();
	void *memory;

	(void)argc, (void)argv;
	if ((memory = beamalloc_alloc(a, 8)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free(a, memory, 8);
	return mk_bool(env, beamalloc_gpa_detect_leaks(beamalloc_gpa_global())
	    > 0);
}

/* gpa_detect() -> number of live blocks the global GPA reports. */
static ERL_NIF_TERM
gpa_detect(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_uint64(env,
	    beamalloc_gpa_detect_leaks(beamalloc_gpa_global()));
}

/* gpa_hold(Len): keep Len bytes of the global GPA, touched. */
static ERL_NIF_TERM
gpa_hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned long len;
	unsigned char *p;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &len) || held_gpa.p != NULL)
		return enif_make_badarg(env);
	if ((p = beamalloc_alloc(beamalloc_general_purpose(), len)) == NULL)
		return beamalloc_nif_raise_errno(env);
	for (unsigned long i = 0; i < len; i += 4096)
		p[i] = 1;
	held_gpa.p = p;
	held_gpa.len = len;
	return enif_make_atom(env, "ok");
}

static ERL_NIF_TERM
gpa_release(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (held_gpa.p == NULL)
		return enif_make_badarg(env);
	beamalloc_free(beamalloc_general_purpose(), held_gpa.p, held_gpa.len);
	held_gpa.p = NULL;
	return enif_make_atom(env, "ok");
}

/* arena_hold(N, Len): an arena over the BEAM base with N blocks of Len. */
static ERL_NIF_TERM
arena_hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned n;
	unsigned long len;
	beamalloc_allocator a;

	(void)argc;
	if (!enif_get_uint(env, argv[0], &n) ||
	    !enif_get_ulong(env, argv[1], &len) || held_arena != NULL)
		return enif_make_badarg(env);
	if ((held_arena = beamalloc_arena_create(beamalloc_beam())) == NULL)
		return beamalloc_nif_raise_errno(env);
	a = beamalloc_arena_allocator(held_arena);
	for (unsigned i = 0; i < n; i++) {
		unsigned char *p = beamalloc_alloc(a, len);

		if (p == NULL) {
			beamalloc_arena_destroy(held_arena);
			held_arena = NULL;
			return beamalloc_nif_raise_errno(env);
		}
		for (unsigned long j = 0; j < len; j += 4096)
			p[j] = 1;
	}
	return enif_make_uint64(env, beamalloc_arena_capacity(held_arena));
}

static ERL_NIF_TERM
arena_release(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	if (held_arena == NULL)
		return enif_make_badarg(env);
	beamalloc_arena_destroy(held_arena);
	held_arena = NULL;
	return enif_make_atom(env, "ok");
}

/* The seed's with_arena(): a u16 slice of 4 from an arena over the BEAM
 * allocator, freed (a no-op) and then the whole arena released. */
static ERL_NIF_TERM
with_arena(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_arena *arena;
	beamalloc_allocator a;
	uint16_t *slice;
	ERL_NIF_TERM list;

	(void)argc, (void)argv;
	if ((arena = beamalloc_arena_create(beamalloc_beam())) == NULL)
		return beamalloc_nif_raise_errno(env);
	a = beamalloc_arena_allocator(arena);
	slice = beamalloc_alloc_array(a, 4, sizeof(*slice),
	    __alignof__(uint16_t));
	if (slice == NULL) {
		beamalloc_arena_destroy(arena);
		return beamalloc_nif_raise_errno(env);
	}
	for (uint16_t i = 0; i < 4; i++)
		slice[i] = i;
	list = mk_list_u16(env, slice, 4);
	beamalloc_free_aligned(a, slice, 4 * sizeof(*slice),
	    __alignof__(uint16_t));
	beamalloc_arena_destroy(arena);
	return list;
}

/* The seed's arena_sum(List): the list decoded into a u64 array that the
 * arena (over the BEAM allocator) owns and releases all at once. */
static ERL_NIF_TERM
arena_sum(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_arena *arena;
	uint64_t *slice, total = 0;
	size_t n;
	ERL_NIF_TERM r;

	(void)argc;
	if ((arena = beamalloc_arena_create(beamalloc_beam())) == NULL)
		return beamalloc_nif_raise_errno(env);
	slice = beamalloc_nif_get_uint64_list(env, argv[0],
	    beamalloc_arena_allocator(arena), &n);
	if (slice == NULL) {
		r = beamalloc_nif_raise_errno(env);
		beamalloc_arena_destroy(arena);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		total += slice[i];
	beamalloc_arena_destroy(arena);
	return enif_make_uint64(env, total);
}

static ErlNifFunc funcs[] = {
	{ "leaks", 0, leaks, 0 },
	{ "noleak", 0, noleak, 0 },
	{ "gpa_live", 0, gpa_live, 0 },
	{ "gpa_detect", 0, gpa_detect, 0 },
	{ "gpa_hold", 1, gpa_hold, 0 },
	{ "gpa_release", 0, gpa_release, 0 },
	{ "arena_hold", 2, arena_hold, 0 },
	{ "arena_release", 0, arena_release, 0 },
	{ "with_arena", 0, with_arena, 0 },
	{ "arena_sum", 1, arena_sum, 0 },
};

ERL_NIF_INIT(seed, funcs, NULL, NULL, NULL, NULL)
