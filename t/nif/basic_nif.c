/*
 * basic_nif.c - the base and wide allocators inside a real BEAM: the seed's
 * allocate_raw, tracked and untracked memory, allocate_large_aligned.
 */
#include <erl_nif.h>
#include <stdint.h>

#include "beamalloc.h"

/* One held block per allocator, as the seed's hidden globals. */
static struct held {
	void *p;
	size_t len;
	size_t align;
} held[3];

static beamalloc_allocator
pick(int which)
{
	switch (which) {
	case 0: return beamalloc_beam();
	case 1: return beamalloc_libc();
	default: return beamalloc_wide();
	}
}

static ERL_NIF_TERM
in_vm(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	return enif_make_atom(env, beamalloc_in_vm() ? "true" : "false");
}

/* hold(Which, Len, Align) -> Address: allocate and keep. */
static ERL_NIF_TERM
hold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int which;
	unsigned long len, align;
	unsigned char *p;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || which < 0 || which > 2 ||
	    !enif_get_ulong(env, argv[1], &len) ||
	    !enif_get_ulong(env, argv[2], &align) || held[which].p != NULL)
		return enif_make_badarg(env);
	p = beamalloc_alloc_aligned(pick(which), len, align);
	if (p == NULL)
		return enif_make_atom(env, "error");
	for (unsigned long i = 0; i < len; i += 4096)
		p[i] = 1;	/* touch, so the pages are really there */
	held[which] = (struct held){ p, len, align };
	return enif_make_uint64(env, (ErlNifUInt64)(uintptr_t)p);
}

static ERL_NIF_TERM
release(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int which;

	(void)argc;
	if (!enif_get_int(env, argv[0], &which) || which < 0 || which > 2 ||
	    held[which].p == NULL)
		return enif_make_badarg(env);
	beamalloc_free_aligned(pick(which), held[which].p, held[which].len,
	    held[which].align);
	held[which].p = NULL;
	return enif_make_atom(env, "ok");
}

/* The seed's allocate_raw: u16 slice [0..count) over the BEAM allocator. */
static ERL_NIF_TERM
allocate_raw(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_beam();
	unsigned count;
	uint16_t *slice;
	ERL_NIF_TERM list;

	(void)argc;
	if (!enif_get_uint(env, argv[0], &count))
		return enif_make_badarg(env);
	slice = beamalloc_alloc_array(a, count, sizeof(*slice),
	    __alignof__(uint16_t));
	if (slice == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	for (unsigned i = 0; i < count; i++)
		slice[i] = (uint16_t)i;
	list = enif_make_list(env, 0);
	for (unsigned i = count; i-- > 0;)
		list = enif_make_list_cell(env, enif_make_uint(env, slice[i]),
		    list);
	beamalloc_free_aligned(a, slice, count * sizeof(*slice),
	    __alignof__(uint16_t));
	return list;
}

/* The seed's allocate_large_aligned: address of a count-byte block
 * aligned to 4096 from the wide allocator, freed before returning. */
static ERL_NIF_TERM
allocate_large_aligned(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator w = beamalloc_wide();
	unsigned long count;
	void *page;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &count))
		return enif_make_badarg(env);
	page = beamalloc_alloc_aligned(w, count, 4096);
	if (page == NULL)
		return enif_raise_exception(env, enif_make_atom(env, "enomem"));
	beamalloc_free_aligned(w, page, count, 4096);
	return enif_make_uint64(env, (ErlNifUInt64)(uintptr_t)page);
}

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)r;
	++*(unsigned *)user;
}

/* Issue 13: a block allocated at 64 and freed at 8 on beamalloc_wide()
 * handed enif_free an inner pointer and killed the VM.  Now it is
 * reported (counted here) and ignored; then freed right.  Returns the
 * number of reports: 1. */
static ERL_NIF_TERM
wide_bad_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator w = beamalloc_wide();
	unsigned reports = 0;
	void *p;

	(void)argc, (void)argv;
	beamalloc_report_set_default(count_report, &reports, false);
	p = beamalloc_alloc_aligned(w, 100, 64);
	if (p != NULL) {
		beamalloc_free(w, p, 100);
		beamalloc_free_aligned(w, p, 100, 64);
	}
	beamalloc_report_set_default(NULL, NULL, false);
	return enif_make_uint(env, reports);
}

/* Lowest set bit over n live enif-backed blocks of each size: the
 * alignment the BEAM really guarantees (8 expected). */
static ERL_NIF_TERM
beam_alignment(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_allocator a = beamalloc_beam();
	static void *ptrs[256];
	uintptr_t bits = 0;
	size_t sizes[] = { 1, 24, 100, 1000, 70000, 600000 };

	(void)argc, (void)argv;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int i = 0; i < 256; i++) {
			ptrs[i] = beamalloc_alloc(a, sizes[s]);
			bits |= (uintptr_t)ptrs[i];
		}
		for (int i = 0; i < 256; i++)
			beamalloc_free(a, ptrs[i], sizes[s]);
	}
	return enif_make_uint64(env, (ErlNifUInt64)(bits & -bits));
}

static ErlNifFunc funcs[] = {
	{ "in_vm", 0, in_vm, 0 },
	{ "hold", 3, hold, 0 },
	{ "release", 1, release, 0 },
	{ "allocate_raw", 1, allocate_raw, 0 },
	{ "allocate_large_aligned", 1, allocate_large_aligned, 0 },
	{ "beam_alignment", 0, beam_alignment, 0 },
	{ "wide_bad_free", 0, wide_bad_free, 0 },
};

ERL_NIF_INIT(basic, funcs, NULL, NULL, NULL, NULL)
