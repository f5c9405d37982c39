/*
 * gpa_config.c - a GPA configured carelessly: numeric fields at the ends
 * of their range.  Each case checks what the man page promises of the
 * value, and that the GPA still serves and destroys clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "tap.h"

static size_t nreports, nsampled;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	nreports++;
	if (r->kind == BEAMALLOC_REPORT_LEAK && r->not_sampled == 0)
		nsampled++;
}

static beamalloc_gpa *
make(beamalloc_gpa_config *cfg)
{
	cfg->report = count_report;
	return beamalloc_gpa_create(beamalloc_libc(), cfg);
}

/* Whether the byte at p can be read: write(2) of it to a pipe fails with
 * EFAULT on a guard page, where a read would fault. */
static bool
readable(const void *p)
{
	int fd[2];
	ssize_t n;

	if (pipe(fd) != 0)
		bail("pipe: %s", strerror(errno));
	n = write(fd[1], p, 1);
	close(fd[0]);
	close(fd[1]);
	return n == 1;
}

/* guard_sample and trace_sample past INT_MAX: 1 in N is about never, as
 * below it; the countdowns are ints, and took such an N for negative
 * (every allocation guarded, every one traced). */
#define NBLK 64
#define BLK 104			/* a multiple of 8: a guarded block ends a page */

static void
huge_samples(void)
{
	static const unsigned ns[] = { 0x80000001u, 0xfffffffeu, UINT_MAX };

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		beamalloc_gpa_config cfg;
		beamalloc_gpa *g;
		beamalloc_allocator a;
		void *p[NBLK];
		size_t guarded = 0, got = 0, leaks;

		beamalloc_gpa_config_init(&cfg);
		cfg.guard_sample = ns[k];
		g = make(&cfg);
		a = beamalloc_gpa_allocator(g);
		for (size_t i = 0; i < NBLK; i++)
			if ((p[i] = beamalloc_alloc(a, BLK)) != NULL) {
				got++;
				guarded += !readable((char *)p[i] + BLK);
			}
		/* The thread's first allocation may be the one guarded. */
		ok(got == NBLK && guarded <= 1, "guard_sample = %#x: %zu of %d "
		    "blocks guarded (at most the first)", ns[k], guarded, NBLK);
		for (size_t i = 0; i < NBLK; i++)
			beamalloc_free(a, p[i], BLK);
		nreports = 0;
		leaks = beamalloc_gpa_destroy(g);
		ok(leaks == 0 && nreports == 0, "guard_sample = %#x: destroyed "
		    "clean", ns[k]);

		beamalloc_gpa_config_init(&cfg);
		cfg.stack_trace_depth = 4;
		cfg.trace_sample = ns[k];
		cfg.guard_sample = 0;
		g = make(&cfg);
		a = beamalloc_gpa_allocator(g);
		for (size_t i = 0; i < NBLK; i++)
			(void)beamalloc_alloc(a, BLK);	/* leaked */
		nreports = nsampled = 0;
		leaks = beamalloc_gpa_destroy(g);
		ok(leaks == NBLK && nreports == NBLK && nsampled <= 1,
		    "trace_sample = %#x: %zu of %zu leaks traced (at most the "
		    "first)", ns[k], nsampled, leaks);
	}
}

int
main(void)
{
	huge_samples();
	return done_testing();
}
