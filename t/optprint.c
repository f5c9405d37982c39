/*
 * optprint.c - for t/options.sh: prints the config that
 * beamalloc_gpa_config_init() gives under this process's
 * BEAMALLOC_GPA_OPTIONS, and with an argument makes a GPA leak one block:
 *   leak    a GPA made with a NULL config (so the options alone decide);
 *   leak0   one whose program sets stack_trace_depth = 0 after init;
 *   reread  change the variable, then init again: it was read once;
 *   gleak   the global GPA leaks one block (BEAMALLOC_GPA_TRACES);
 *   gretry  the global GPA cannot be made at first (RLIMIT_AS), then is;
 *           prints "gretry: N M", N and M 1 for each try that gave one,
 *           or "gretry: skip" under a checker (its own address space).
 */
#include "config.h"

#include <beamalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "under.h"

static void
print_config(void)
{
	beamalloc_gpa_config c;

	beamalloc_gpa_config_init(&c);
	printf("traces=%u sample=%u safety=%d abort=%d canary=%d junk=%d "
	    "quarantine=%zu guard_sample=%u decay=%u thread_safe=%d\n",
	    c.stack_trace_depth, c.trace_sample, c.safety, c.abort_on_error,
	    c.canary, c.junk, c.quarantine, c.guard_sample, c.decay_ms,
	    c.thread_safe);
}

/* The global GPA made while the address space is full, then after. */
static int
gretry(void)
{
	struct rlimit was, cut;
	unsigned long pages;
	FILE *f;
	void **fill = NULL, **p;
	int first;

	if (UNDER_ASAN || UNDER_VALGRIND()) {
		printf("gretry: skip\n");
		return 0;
	}
	if ((f = fopen("/proc/self/statm", "r")) == NULL ||
	    fscanf(f, "%lu", &pages) != 1 || getrlimit(RLIMIT_AS, &was) != 0)
		return 1;
	fclose(f);
	cut = was;
	cut.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE);
	if (setrlimit(RLIMIT_AS, &cut) != 0)
		return 1;
	/* What malloc's heap still has, taken first (a list through it). */
	for (size_t n = 65536; n >= sizeof(void *); n /= 2)
		while ((p = malloc(n)) != NULL) {
			*p = fill;
			fill = p;
		}
	first = beamalloc_gpa_global() != NULL;
	while (fill != NULL) {
		p = *fill;
		free(fill);
		fill = p;
	}
	if (setrlimit(RLIMIT_AS, &was) != 0)
		return 1;
	printf("gretry: %d %d\n", first, beamalloc_gpa_global() != NULL);
	return 0;
}

static int
leak(const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa *g = beamalloc_gpa_create(beamalloc_libc(), cfg);
	void *p;

	if (g == NULL || (p = beamalloc_alloc(beamalloc_gpa_allocator(g),
	    40)) == NULL)
		return 1;
	printf("leaks=%zu\n", beamalloc_gpa_detect_leaks(g));
	beamalloc_free(beamalloc_gpa_allocator(g), p, 40);
	return beamalloc_gpa_destroy(g) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	beamalloc_gpa_config c;

	print_config();
	fflush(stdout);
	if (argc < 2)
		return 0;
	if (strcmp(argv[1], "leak") == 0)
		return leak(NULL);
	if (strcmp(argv[1], "leak0") == 0) {
		beamalloc_gpa_config_init(&c);
		c.stack_trace_depth = 0;
		return leak(&c);
	}
	if (strcmp(argv[1], "gleak") == 0) {
		beamalloc_gpa *g = beamalloc_gpa_global();
		void *p = beamalloc_alloc(beamalloc_gpa_allocator(g), 40);

		if (p == NULL)
			return 1;
		printf("leaks=%zu\n", beamalloc_gpa_detect_leaks(g));
		beamalloc_free(beamalloc_gpa_allocator(g), p, 40);
		return 0;
	}
	if (strcmp(argv[1], "gretry") == 0)
		return gretry();
	if (strcmp(argv[1], "reread") == 0) {
		setenv("BEAMALLOC_GPA_OPTIONS", "traces=3", 1);
		print_config();
		return 0;
	}
	return 2;
}
