/*
 * steps.h - the threads of a white-box test hand on by numbered steps
 * (header-only, one set per test program): a thread waits for a step with
 * await(), moves the count on with set(), and the report callback
 * tallies one report kind apart from every other (t/gpa_going,
 * t/gpa_scan).
 */
#ifndef BEAMALLOC_T_STEPS_H
#define BEAMALLOC_T_STEPS_H

#include <sched.h>

#include "beamalloc.h"

static int step;
static beamalloc_report_kind tallied;	/* the kind counted apart */
static unsigned long ntallied, nother;

/* Steps only go up: a thread that finds itself behind (a path with no
 * wait to make ran ahead) must not take the step back. */
static inline void
set(int v)
{
	int cur = __atomic_load_n(&step, __ATOMIC_SEQ_CST);

	while (cur < v && !__atomic_compare_exchange_n(&step, &cur, v, false,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

static inline void
await(int v)
{
	while (__atomic_load_n(&step, __ATOMIC_SEQ_CST) < v)
		sched_yield();
}

static inline void
tally(void *user, const beamalloc_report *r)
{
	(void)user;
	__atomic_add_fetch(r->kind == tallied ? &ntallied : &nother, 1,
	    __ATOMIC_SEQ_CST);
}

#endif
