/*
 * lastreport.h - a report handler for tests that count what they plant:
 * how many reports came, and the last one (t/pool.c, t/frontend.c,
 * t/empty.c, through beamalloc_report_set_default()).
 */
#ifndef BEAMALLOC_T_LASTREPORT_H
#define BEAMALLOC_T_LASTREPORT_H

#include "beamalloc.h"

static size_t nreports;
static beamalloc_report last_report;

static inline void
record(void *user, const beamalloc_report *r)
{
	(void)user;
	nreports++;
	last_report = *r;
}

#endif
