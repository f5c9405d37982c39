/*
 * leakmod.c - a shared object built with -g whose static functions
 * allocate: t/srclines.sh greps this file for the lines marked below and
 * expects the reports to name them.
 */
#include <stdint.h>

#include "leakmod.h"

struct record {
	int64_t id;
	char name[32];
};

/* Static, and kept out of line: no exported symbol covers it, only the
 * debug information names it. */
static __attribute__((noinline)) struct record *
make_record(beamalloc_allocator a, int64_t id)
{
	struct record *r = beamalloc_alloc(a, sizeof(*r));	/* LEAK SITE */

	if (r != NULL)
		r->id = id;
	return r;
}

/* Leaks one record. */
LEAKMOD_API int
leakmod_run(beamalloc_allocator a)
{
	return make_record(a, 1) != NULL ? 0 : -1;
}

/* Frees the same block twice.  (Each call is followed by code of this
 * function, so that none is a tail call: its return address is here.) */
LEAKMOD_API int
leakmod_double_free(beamalloc_allocator a)
{
	struct record *r = make_record(a, 2);

	beamalloc_free(a, r, sizeof(*r));	/* FIRST FREE SITE */
	__asm__ volatile("" ::: "memory");
	beamalloc_free(a, r, sizeof(*r));	/* DOUBLE FREE SITE */
	__asm__ volatile("" ::: "memory");
	return 0;
}

static __attribute__((noinline)) void *
second_block(beamalloc_allocator a)
{
	void *p = beamalloc_alloc(a, 100);	/* FAILING SITE */

	__asm__ volatile("" ::: "memory");
	return p;
}

/* For the failure checker: the second block's failure leaks the first. */
LEAKMOD_API int
leakmod_oom_leak(beamalloc_allocator a, void *arg)
{
	struct record *r = make_record(a, 3);
	void *b;

	(void)arg;
	if (r == NULL)
		return -1;
	if ((b = second_block(a)) == NULL)
		return -1;			/* r leaks */
	beamalloc_free(a, b, 100);
	beamalloc_free(a, r, sizeof(*r));
	return 0;
}
