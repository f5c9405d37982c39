/*
 * fuzz.c - the libFuzzer entry point.  One binary serves every allocator:
 * BEAMALLOC_FUZZ_TARGET names the one to run (beam, libc, wide, gpa, ...).
 * At exit it prints the operations run and their rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int target = -1;
static struct timespec started;

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	    (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
report(void)
{
	double s = seconds_since(&started);

	fprintf(stderr, "beamalloc fuzz %s: %llu operations in %.1f s, "
	    "%.0f operations/s\n", fz_target_name(target), fz_ops, s,
	    s > 0 ? (double)fz_ops / s : 0.0);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *name = getenv("BEAMALLOC_FUZZ_TARGET");

	(void)argc, (void)argv;
	target = name != NULL ? fz_target_find(name) : -1;
	if (target < 0) {
		fprintf(stderr, "set BEAMALLOC_FUZZ_TARGET to one of:");
		for (int i = 0; i < fz_ntargets; i++)
			fprintf(stderr, " %s", fz_target_name(i));
		fputc('\n', stderr);
		exit(2);
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	atexit(report);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_run(target, data, size);
	return 0;
}
