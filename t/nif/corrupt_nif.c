/*
 * corrupt_nif.c - a NIF with planted memory bugs, inside a real BEAM
 * (t/nif/corrupt.erl): overflows and writes after free that the GPA's
 * canary, junk and quarantine catch, reported (to stderr and counted)
 * while the VM goes on; and an overflow of a guarded block, which faults
 * and is named by the GPA's SIGSEGV handler (run in an erl of its own).
 * The planted writes are hidden from a memory checker, as in a NIF no
 * checker watches.
 */
#include <stdatomic.h>
#include <string.h>

#include <beamalloc/nif.h>

#include "../plant.h"

static _Atomic size_t got[16];

static void
count(void *user, const beamalloc_report *r)
{
	(void)user;
	/* The first of each kind printed, to show what a user sees. */
	if (atomic_fetch_add(&got[r->kind & 15], 1) == 0)
		beamalloc_report_print(stderr, r);
}

static beamalloc_gpa *
make(size_t quarantine, unsigned guard)
{
	beamalloc_gpa_config c;

	beamalloc_gpa_config_init(&c);
	c.report = guard != 0 ? NULL : count;
	c.canary = guard == 0;
	c.junk = guard == 0;
	c.quarantine = quarantine;
	c.guard_sample = guard;
	return beamalloc_gpa_create(beamalloc_wide(), &c);
}

/* overflow(N, Len, By) -> reports: N blocks of Len bytes, each written
 * By bytes past its end and freed; the overflow reports made. */
static ERL_NIF_TERM
overflow(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned n, len, by;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	size_t before = atomic_load(&got[BEAMALLOC_REPORT_OVERFLOW]);

	(void)argc;
	if (!enif_get_uint(env, argv[0], &n) || !enif_get_uint(env, argv[1],
	    &len) || !enif_get_uint(env, argv[2], &by) || len == 0)
		return enif_make_badarg(env);
	if ((g = make(0, 0)) == NULL)
		return beamalloc_nif_raise_errno(env);
	a = beamalloc_gpa_allocator(g);
	for (unsigned i = 0; i < n; i++) {
		unsigned char *p = beamalloc_alloc(a, len);

		if (p == NULL)
			break;
		plant(p + len, by, 'A' + i % 26);
		beamalloc_free(a, p, len);
	}
	beamalloc_gpa_destroy(g);
	return enif_make_uint64(env,
	    atomic_load(&got[BEAMALLOC_REPORT_OVERFLOW]) - before);
}

/* write_after_free(N) -> reports: N blocks of 48 B freed into a 4 KiB
 * quarantine, each written after its free, then pushed out by other
 * frees; the write-after-free reports made. */
static ERL_NIF_TERM
write_after_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	unsigned n;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	size_t before = atomic_load(&got[BEAMALLOC_REPORT_WRITE_AFTER_FREE]);

	(void)argc;
	if (!enif_get_uint(env, argv[0], &n))
		return enif_make_badarg(env);
	if ((g = make(4096, 0)) == NULL)
		return beamalloc_nif_raise_errno(env);
	a = beamalloc_gpa_allocator(g);
	for (unsigned i = 0; i < n; i++) {
		unsigned char *p = beamalloc_alloc(a, 48);

		if (p == NULL)
			break;
		beamalloc_free(a, p, 48);
		plant(p + 10, 1, 0);
		for (int k = 0; k < 64; k++) {
			void *q = beamalloc_alloc(a, 48);

			beamalloc_free(a, q, 48);
		}
	}
	beamalloc_gpa_destroy(g);
	return enif_make_uint64(env,
	    atomic_load(&got[BEAMALLOC_REPORT_WRITE_AFTER_FREE]) - before);
}

/* guard_overflow() -> never returns: a 24 B block against a guard page,
 * its address printed, then written one byte past its end. */
static ERL_NIF_TERM
guard_overflow(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	beamalloc_gpa *g = make(0, 1);
	unsigned char *p;

	(void)argc, (void)argv;
	if (g == NULL || (p = beamalloc_alloc(beamalloc_gpa_allocator(g),
	    24)) == NULL)
		return beamalloc_nif_raise_errno(env);
	fprintf(stderr, "block %p\n", (void *)p);
	fflush(stderr);
	((volatile unsigned char *)p)[24] = 1;
	return enif_make_atom(env, "survived");
}

static ErlNifFunc funcs[] = {
	{ "overflow", 3, overflow, 0 },
	{ "write_after_free", 1, write_after_free, 0 },
	{ "guard_overflow", 0, guard_overflow, 0 },
};

ERL_NIF_INIT(corrupt, funcs, NULL, NULL, NULL, NULL)
