/*
 * beamalloc_example.c - a small NIF built against an installed
 * libbeamalloc: memory the VM can see, a page-aligned block, an arena sum,
 * and the GPA's leak checks (per NIF, and a GPA's own report).
 */
#define _POSIX_C_SOURCE 200809L	/* open_memstream */
#include <stdio.h>
#include <stdlib.h>

#include <beamalloc/nif.h>	/* <erl_nif.h>, <beamalloc.h> and NIF helpers */

static void *held;
static size_t held_len;

/* hold(Bytes): keep Bytes from the BEAM allocator (enif_alloc), so the VM
 * counts them in erlang:memory(system). */
static ERL_NIF_TERM
hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned long len;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &len) || held != NULL)
		return enif_make_badarg(env);
	if ((held = beamalloc_alloc(beamalloc_beam(), len)) == NULL)
		return beamalloc_nif_raise_errno(env);
	memset(held, 1, len);
	held_len = len;
	return enif_make_atom(env, "ok");
}

static ERL_NIF_TERM
release(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	beamalloc_free(beamalloc_beam(), held, held_len);
	held = NULL;
	return enif_make_atom(env, "ok");
}

/* page_address() -> the address of a 4096-byte, 4096-aligned block from the
 * wide allocator (enif_alloc itself only promises 8). */
static ERL_NIF_TERM
page_address(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator wide = beamalloc_wide();
	void *page;

	(void)argc, (void)argv;
	if ((page = beamalloc_alloc_aligned(wide, 4096, 4096)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_free_aligned(wide, page, 4096, 4096);
	return enif_make_uint64(env, (ErlNifUInt64)(uintptr_t)page);
}

/* arena_sum(List): the list decoded into a u64 array inside an arena over
 * the BEAM allocator; one destroy frees everything. */
static ERL_NIF_TERM
arena_sum(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_arena *arena;
	uint64_t *v, total = 0;
	size_t n;
	ERL_NIF_TERM r;

	(void)argc;
	if ((arena = beamalloc_arena_create(beamalloc_beam())) == NULL)
		return beamalloc_nif_raise_errno(env);
	v = beamalloc_nif_get_uint64_list(env, argv[0],
	    beamalloc_arena_allocator(arena), &n);
	if (v == NULL) {
		r = beamalloc_nif_raise_errno(env);	/* badarg */
	} else {
		for (size_t i = 0; i < n; i++)
			total += v[i];
		r = enif_make_uint64(env, total);
	}
	beamalloc_arena_destroy(arena);
	return r;
}

/* Leak-checked NIFs: the body gets a fresh GPA; a leak raises. */
static ERL_NIF_TERM
tidy_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v, total = 0;
	size_t n;

	(void)argc;
	if ((v = beamalloc_nif_get_double_list(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	for (size_t i = 0; i < n; i++)
		total += v[i];
	beamalloc_free(a, v, n * sizeof(*v));
	return enif_make_double(env, total);
}

static ERL_NIF_TERM
leaky_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	double *v;
	size_t n;

	(void)argc;
	if ((v = beamalloc_nif_get_double_list(env, argv[0], a, &n)) == NULL)
		return beamalloc_nif_raise_errno(env);
	return enif_make_double(env, n > 0 ? v[0] : 0);	/* v never freed */
}

/* The short form: findings are also printed to stderr. */
BEAMALLOC_NIF_LEAK_CHECKED(tidy, tidy_body)

/* The long form, here with a GPA that prints nothing: the exception
 * says enough. */
static ERL_NIF_TERM
leaky(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = beamalloc_nif_report_silent;
	return beamalloc_nif_leak_check_with(env, argc, argv, leaky_body,
	    "leaky", &cfg);
}

/* GPA reports written into a string for Erlang to print. */
static void
report_to(void *user, const beamalloc_report *r)
{
	beamalloc_report_print((FILE *)user, r);
}

/* leak_report() -> {Leaks, Report}: a GPA (configured like the global one,
 * beamalloc_general_purpose(), which reports to stderr) gives 3 blocks;
 * 2 are freed, the leak check runs, then the last is freed. */
static ERL_NIF_TERM
leak_report(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator gpa;
	char *text = NULL;
	size_t text_len = 0, leaks = 0;
	void *a, *b, *c;
	FILE *f;
	ERL_NIF_TERM bin;

	(void)argc, (void)argv;
	if ((f = open_memstream(&text, &text_len)) == NULL)
		return beamalloc_nif_raise_errno(env);
	beamalloc_gpa_config_init(&cfg);
	cfg.report = report_to;
	cfg.report_user = f;
	if ((g = beamalloc_gpa_create(beamalloc_wide(), &cfg)) != NULL) {
		gpa = beamalloc_gpa_allocator(g);
		a = beamalloc_alloc(gpa, 10);
		b = beamalloc_alloc(gpa, 200);
		c = beamalloc_alloc_aligned(gpa, 3000, 64);
		beamalloc_free(gpa, a, 10);
		beamalloc_free_aligned(gpa, c, 3000, 64);
		leaks = beamalloc_gpa_detect_leaks(g);	/* b is live */
		beamalloc_free(gpa, b, 200);
		(void)beamalloc_gpa_destroy(g);
	}
	fclose(f);
	if (g == NULL) {
		free(text);
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	}
	memcpy(enif_make_new_binary(env, text_len, &bin), text, text_len);
	free(text);
	return enif_make_tuple2(env, enif_make_uint64(env, leaks), bin);
}

/* stats() -> the stats map of a GPA holding 1,000 blocks of 64 B. */
static ERL_NIF_TERM
stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa *g = beamalloc_gpa_create(beamalloc_wide(), NULL);
	static void *p[1000];
	ERL_NIF_TERM map;

	(void)argc, (void)argv;
	if (g == NULL)
		return beamalloc_nif_raise_errno(env);
	for (int i = 0; i < 1000; i++)
		p[i] = beamalloc_alloc(beamalloc_gpa_allocator(g), 64);
	map = beamalloc_nif_make_stats(env, g);
	for (int i = 0; i < 1000; i++)
		beamalloc_free(beamalloc_gpa_allocator(g), p[i], 64);
	(void)beamalloc_gpa_destroy(g);
	return map;
}

static ErlNifFunc funcs[] = {
	{ "stats", 0, stats, 0 },
	{ "hold", 1, hold, 0 },
	{ "release", 0, release, 0 },
	{ "page_address", 0, page_address, 0 },
	{ "arena_sum", 1, arena_sum, 0 },
	{ "tidy", 1, tidy, 0 },
	{ "leaky", 1, leaky, 0 },
	{ "leak_report", 0, leak_report, 0 },
};

ERL_NIF_INIT(beamalloc_example, funcs, NULL, NULL, NULL, NULL)
