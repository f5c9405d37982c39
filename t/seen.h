/*
 * seen.h - what a GPA's reports said, for the tests that plant bugs
 * (t/gpa_corrupt.c, t/gpa_checks.c): a count per kind, and how many
 * named the block expected (its address and size, and a call site).
 */
#ifndef BEAMALLOC_T_SEEN_H
#define BEAMALLOC_T_SEEN_H

#include "beamalloc.h"

static struct {
	size_t kind[16];
	size_t named;			/* addr == want, size, a call site */
	const void *want;
	size_t want_size;
} seen;

static inline void
on_report(void *user, const beamalloc_report *r)
{
	(void)user;
	seen.kind[r->kind & 15]++;
	if (r->addr == seen.want && r->size == seen.want_size &&
	    r->alloc_trace_len >= 1 && r->alloc_trace[0] != 0)
		seen.named++;
}

static inline void
expect(const void *p, size_t size)
{
	seen.want = p;
	seen.want_size = size;
}

#endif
