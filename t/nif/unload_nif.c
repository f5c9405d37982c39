/*
 * unload_nif.c - a NIF that uses every part of libbeamalloc and is then
 * purged, which dlcloses it and, with it, libbeamalloc.so (its DT_NEEDED).
 * Loaded again, it must find a fresh library; threads that used the
 * library before must be able to exit after it is gone (keeper_nif.c).
 */
#include "common.h"

/* One pass over the GPA, the wide allocator and an arena; 0 if all went
 * well.  Also what the keeper's thread runs. */
static int
exercise(void)
{
	beamalloc_allocator g = beamalloc_general_purpose();
	beamalloc_arena *arena;
	void *p[64];
	int bad = 0;

	for (int i = 0; i < 64; i++) {
		size_t len = 1 + (size_t)i * 97;

		if ((p[i] = beamalloc_alloc_aligned(g, len, 64)) == NULL)
			return 1;
		memset(p[i], i, len);
	}
	for (int i = 0; i < 64; i++)
		beamalloc_free_aligned(g, p[i], 1 + (size_t)i * 97, 64);
	if ((p[0] = beamalloc_alloc_aligned(beamalloc_wide(), 3, 4096)) == NULL)
		return 1;
	bad |= (uintptr_t)p[0] % 4096 != 0;
	beamalloc_free_aligned(beamalloc_wide(), p[0], 3, 4096);
	if ((arena = beamalloc_arena_create(beamalloc_beam())) == NULL)
		return 1;
	for (int i = 0; i < 100; i++)
		bad |= beamalloc_alloc(beamalloc_arena_allocator(arena), 1000)
		    == NULL;
	beamalloc_arena_destroy(arena);
	return bad;
}

static void
work(void)
{
	(void)exercise();
}

static ERL_NIF_TERM
result(ErlNifEnv *env, int bad)
{
	return enif_make_atom(env, bad ? "error" : "ok");
}

/* A leak-checked body: decodes the list into its GPA and sums it. */
static ERL_NIF_TERM
sum_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	(void)argc;
	return sum_int64s(env, argv[0], a, false);
}
BEAMALLOC_NIF_LEAK_CHECKED(sum, sum_body)

/* use() and use_dirty(): exercise here. */
static ERL_NIF_TERM
use(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return result(env, exercise());
}

static void *
thread_main(void *arg)
{
	*(int *)arg = exercise();
	return NULL;
}

/* use_thread(): exercise on an enif_thread_create thread, joined. */
static ERL_NIF_TERM
use_thread(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	ErlNifTid tid;
	int bad = 1;

	(void)argc, (void)argv;
	if (enif_thread_create("ba_unload", &tid, thread_main, &bad, NULL) != 0)
		return enif_make_atom(env, "error");
	enif_thread_join(tid, NULL);
	return result(env, bad);
}

/* work_addr() -> the address of work(), for the keeper's thread. */
static ERL_NIF_TERM
work_addr(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_uint64(env, (ErlNifUInt64)(uintptr_t)&work);
}

static ErlNifFunc funcs[] = {
	{ "use", 0, use, 0 },
	{ "use_dirty", 0, use, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "use_thread", 0, use_thread, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "sum", 1, sum, 0 },
	{ "work_addr", 0, work_addr, 0 },
	{ "gpa_live", 0, gpa_live, 0 },
};

ERL_NIF_INIT(unload_mod, funcs, NULL, NULL, NULL, NULL)
