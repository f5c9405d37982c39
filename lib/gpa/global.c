/*
 * global.c - the global GPA instance behind beamalloc_general_purpose().
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * The global instance: over beamalloc_wide(), thread-safe, safety on,
 * as BEAMALLOC_GPA_OPTIONS says, and BEAMALLOC_GPA_TRACES (0.1's switch)
 * frames of trace when that is set.  Created on first use, never
 * destroyed (the library may be dlclosed: nothing may point into it).
 * ---------------------------------------------------------------------- */

static beamalloc_gpa *global_gpa;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	beamalloc_gpa_config cfg;
	const char *env = getenv("BEAMALLOC_GPA_TRACES");

	beamalloc_gpa_config_init(&cfg);
	if (env != NULL)
		cfg.stack_trace_depth = (unsigned)strtoul(env, NULL, 10);
	global_gpa = beamalloc_gpa_create(beamalloc_wide(), &cfg);
	if (global_gpa != NULL)
		global_gpa->global = true;
}

beamalloc_gpa *
beamalloc_gpa_global(void)
{
	pthread_once(&global_once, global_init);
	return global_gpa;
}

beamalloc_allocator
beamalloc_general_purpose(void)
{
	return beamalloc_gpa_allocator(beamalloc_gpa_global());
}
