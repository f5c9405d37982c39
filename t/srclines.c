/*
 * srclines.c - prints what t/srclines.sh checks: reports of a GPA and of
 * the failure checker for blocks of t/diag/leakmod.c, a -g shared object
 * whose allocating function is static.
 *
 *   srclines leak       GPA with 8-frame traces: the leak report
 *   srclines site       GPA without traces (the call site only)
 *   srclines double     the double free report
 *   srclines check      beamalloc_check_alloc_failures() on a leaking path,
 *                       over the GPA (which reports the leaked block too)
 *   srclines symbolize  beamalloc_symbolize() of the leak's call site
 */
#include <stdio.h>
#include <string.h>

#include "beamalloc.h"
#include "diag/leakmod.h"

static uintptr_t site;

static void
report(void *user, const beamalloc_report *r)
{
	char buf[64];

	(void)user;
	if (r->alloc_trace_len > 0)
		site = r->alloc_trace[0];
	beamalloc_report_print(stdout, r);
	/* The formatted text is the printed one, truncated as snprintf. */
	if (beamalloc_report_format(buf, sizeof(buf), r) < sizeof(buf) ||
	    strlen(buf) != sizeof(buf) - 1)
		printf("beamalloc_report_format: wrong length\n");
}

static beamalloc_gpa *
gpa(unsigned depth)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.stack_trace_depth = depth;
	cfg.report = report;
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

int
main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "leak";
	beamalloc_gpa *g = gpa(strcmp(what, "site") == 0 ? 0 : 8);
	beamalloc_symbol s;

	if (g == NULL)
		return 2;
	if (strcmp(what, "check") == 0) {
		beamalloc_check_options opt;

		beamalloc_check_options_init(&opt);
		opt.out = stdout;
		(void)beamalloc_check_alloc_failures_opt(beamalloc_gpa_allocator(g),
		    leakmod_oom_leak, NULL, &opt, NULL);
	} else if (strcmp(what, "double") == 0)
		(void)leakmod_double_free(beamalloc_gpa_allocator(g));
	else if (leakmod_run(beamalloc_gpa_allocator(g)) != 0)
		return 2;
	(void)beamalloc_gpa_destroy(g);
	if (strcmp(what, "symbolize") == 0) {
		if (!beamalloc_symbolize(site, &s))
			return 3;
		printf("function=%s file=%s line=%u object=%s\n", s.function,
		    s.file, s.line, s.object);
		printf("zero=%d\n", (int)beamalloc_symbolize(0, &s));
	}
	return 0;
}
