/*
 * checker.c - the allocation-failure checker: passes a correct function,
 * catches a leak planted on one error path (naming the index, bytes and
 * blocks), an ignored failure, a function that does not allocate the
 * same way each run, and in fork mode a crash; proves the arena's own
 * out-of-memory paths.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "seed.h"
#include "testalloc.h"

static char report[4096];

/* Options that write findings to a temporary file (read by report_of). */
static beamalloc_check_options
capture(bool fork_mode)
{
	beamalloc_check_options opt;

	beamalloc_check_options_init(&opt);
	opt.fork = fork_mode;
	opt.out = tmpfile();
	if (opt.out == NULL)
		bail("tmpfile: %s", strerror(errno));
	return opt;
}

static const char *
report_of(beamalloc_check_options *opt)
{
	size_t n;

	rewind(opt->out);
	n = fread(report, 1, sizeof(report) - 1, opt->out);
	report[n] = '\0';
	fclose(opt->out);
	for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n"))
		diag("  report: %s", line);
	/* strtok cut the lines: glue them back for strstr */
	for (size_t i = 0; i < n; i++)
		if (report[i] == '\0')
			report[i] = '\n';
	return report;
}

/* Give the strict backing's leftover (leaked) blocks back. */
static void
drain(testalloc *t)
{
	while (t->nblocks > 0) {
		struct ta_block *b = &t->blocks[t->nblocks - 1];

		ta_free(t, b->p, b->len, b->align, 0);
	}
}

/* ------------------------------------------------------------------------
 * Functions under test: 0 on success, -1 on out-of-memory
 * ---------------------------------------------------------------------- */

/* Correct: every path frees what it holds.  The realloc falls back to
 * alloc + copy + free on the strict backing: 4 allocations. */
static int
good(beamalloc_allocator a, void *arg)
{
	unsigned char *x, *y, *z, *y2;
	int rc = -1;

	(void)arg;
	if ((x = beamalloc_alloc(a, 16)) == NULL)
		return -1;
	if ((y = beamalloc_alloc(a, 32)) == NULL)
		goto out_x;
	if ((z = beamalloc_alloc(a, 64)) == NULL)
		goto out_y;
	memset(y, 1, 32);
	if ((y2 = beamalloc_realloc(a, y, 32, 8, 48)) == NULL)
		goto out_z;
	y = y2;
	rc = 0;
	beamalloc_free(a, y, 48);
	y = NULL;
out_z:
	beamalloc_free(a, z, 64);
out_y:
	if (y != NULL)
		beamalloc_free(a, y, 32);
out_x:
	beamalloc_free(a, x, 16);
	return rc;
}

/* The planted leak: when the third allocation fails, the first block is
 * forgotten. */
static int
leaky(beamalloc_allocator a, void *arg)
{
	void *x, *y, *z;

	(void)arg;
	if ((x = beamalloc_alloc(a, 16)) == NULL)
		return -1;
	if ((y = beamalloc_alloc(a, 32)) == NULL) {
		beamalloc_free(a, x, 16);
		return -1;
	}
	if ((z = beamalloc_alloc(a, 64)) == NULL) {
		beamalloc_free(a, y, 32);	/* x leaks */
		return -1;
	}
	beamalloc_free(a, z, 64);
	beamalloc_free(a, y, 32);
	beamalloc_free(a, x, 16);
	return 0;
}

/* Treats every allocation as optional: succeeds whatever happens. */
static int
swallow(beamalloc_allocator a, void *arg)
{
	(void)arg;
	for (size_t len = 8; len <= 32; len *= 2) {
		void *p = beamalloc_alloc(a, len);

		if (p != NULL)
			beamalloc_free(a, p, len);
	}
	return 0;
}

/* Allocates twice the first time it is called, once afterwards. */
static int
moody(beamalloc_allocator a, void *arg)
{
	int *calls = arg;
	int n = (*calls)++ == 0 ? 2 : 1;

	for (int i = 0; i < n; i++) {
		void *p = beamalloc_alloc(a, 8);

		if (p == NULL)
			return -1;
		beamalloc_free(a, p, 8);
	}
	return 0;
}

static int
fails_anyway(beamalloc_allocator a, void *arg)
{
	void *p = beamalloc_alloc(a, 8);

	(void)arg;
	beamalloc_free(a, p, 8);
	return -1;
}

/* Does not check its second allocation. */
static int
crasher(beamalloc_allocator a, void *arg)
{
	volatile unsigned char *x, *y;

	(void)arg;
	if ((x = beamalloc_alloc(a, 16)) == NULL)
		return -1;
	y = beamalloc_alloc(a, 32);
	y[0] = 1;
	beamalloc_free(a, (void *)y, 32);
	beamalloc_free(a, (void *)x, 16);
	return 0;
}

/* An arena over the allocator under test: its chunks are what fails. */
static int
arena_user(beamalloc_allocator a, void *arg)
{
	beamalloc_arena *arena = beamalloc_arena_create(a);
	beamalloc_allocator aa;

	(void)arg;
	if (arena == NULL)
		return -1;
	aa = beamalloc_arena_allocator(arena);
	for (int i = 0; i < 200; i++) {
		unsigned char *p = beamalloc_alloc_aligned(aa, 100, 64);

		if (p == NULL) {
			beamalloc_arena_destroy(arena);
			return -1;
		}
		memset(p, i, 100);
	}
	beamalloc_arena_destroy(arena);
	return 0;
}

/* ------------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------- */

static void
passes(void)
{
	testalloc *t = testalloc_new();
	beamalloc_check_result r;
	beamalloc_check_options opt = capture(false);
	static const long list[] = { 1, 2, 3 };
	struct seed_sum sum = { list, 3, 0, 0 };
	uint16_t out[4] = { 0 };
	int rc;

	errno = ERANGE;
	rc = beamalloc_check_alloc_failures_opt(testalloc_allocator(t), good,
	    NULL, &opt, &r);
	is_int(errno, ERANGE, "a clean check leaves errno as it was");
	ok(rc == 0 && r.clean_run_ok && r.allocations == 4 && r.runs == 4 &&
	    r.leaking_runs == 0 && r.first_bad_index == BEAMALLOC_NEVER,
	    "a correct function passes: %zu allocations, %zu runs",
	    r.allocations, r.runs);
	is_int(strlen(report_of(&opt)), 0, "and nothing is reported");
	ok(t->nblocks == 0 && t->bad_calls == 0, "nothing left behind");

	rc = beamalloc_check_alloc_failures(testalloc_allocator(t),
	    arena_user, NULL, &r);
	ok(rc == 0 && r.allocations >= 4 && r.runs == r.allocations,
	    "the arena's out-of-memory paths leak nothing (%zu chunks)",
	    r.allocations);
	rc = beamalloc_check_alloc_failures(beamalloc_beam(), seed_with_arena,
	    out, &r);
	ok(rc == 0 && r.allocations == 1 && out[3] == 3,
	    "the seed's with_arena over beamalloc_beam() passes");
	rc = beamalloc_check_alloc_failures(beamalloc_beam(), seed_arena_sum,
	    &sum, &r);
	ok(rc == 0 && r.allocations == 1 && sum.sum == 6,
	    "the seed's arena_sum over beamalloc_beam() passes");
	ok(t->nblocks == 0 && t->bad_calls == 0, "strict backing clean");
	free(t);
}

static void
planted_leak(void)
{
	testalloc *t = testalloc_new();
	beamalloc_check_result r;
	beamalloc_check_options opt = capture(false);
	const char *text;
	int rc, saved_errno;

	errno = 0;
	rc = beamalloc_check_alloc_failures_opt(testalloc_allocator(t), leaky,
	    NULL, &opt, &r);
	saved_errno = errno;
	text = report_of(&opt);
	ok(rc == -1, "the planted leak fails the check");
	if (!ok(saved_errno == 0, "a finding leaves errno as it was (errno "
	    "says why only when the function could not be run)"))
		diag("errno %d (%s)", saved_errno, strerror(saved_errno));
	ok(r.clean_run_ok && r.allocations == 3 && r.runs == 3,
	    "every index was tried");
	ok(r.leaking_runs == 1 && r.first_bad_index == 2,
	    "exactly the run failing allocation #2 leaked");
	ok(r.leaked_bytes == 16 && r.leaked_blocks == 1,
	    "16 bytes in 1 block");
	is_size(t->live_bytes, r.leaked_bytes,
	    "the strict backing holds exactly the reported bytes");
	ok(strstr(text, "allocation #2 of 3 failed") != NULL &&
	    strstr(text, "leaked 16 bytes in 1 block") != NULL,
	    "the report names the index and the leak");
	ok(strstr(text, "called from 0x") != NULL,
	    "and the failing allocation's call site");
	drain(t);
	free(t);
}

static void
other_findings(void)
{
	beamalloc_check_result r;
	beamalloc_check_options opt = capture(false);
	const char *text;
	int rc, calls = 0;

	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), swallow,
	    NULL, &opt, &r);
	text = report_of(&opt);
	ok(rc == -1 && r.ignored_failures == 1 && r.first_bad_index == 0 &&
	    r.runs == 1 && r.allocations == 3,
	    "an ignored failure is reported, and in process the check stops");
	ok(strstr(text, "ignored failure") != NULL, "the report says so");

	opt = capture(false);
	opt.keep_going = true;
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), swallow,
	    NULL, &opt, &r);
	report_of(&opt);
	ok(rc == -1 && r.ignored_failures == 3 && r.runs == 3,
	    "keep_going: every run tried");

	opt = capture(false);
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), moody,
	    &calls, &opt, &r);
	text = report_of(&opt);
	ok(rc == -1 && r.unexpected_runs == 1 && r.first_bad_index == 1,
	    "a run that never reaches its failing index is unexpected");
	ok(strstr(text, "never reached") != NULL, "the report says so");

	opt = capture(false);
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), fails_anyway,
	    NULL, &opt, &r);
	text = report_of(&opt);
	ok(rc == -1 && !r.clean_run_ok && r.runs == 0,
	    "a function failing with no failure induced stops the check");
	ok(strstr(text, "run without failures") != NULL, "the report says so");

	errno = 0;
	ok(beamalloc_check_alloc_failures(beamalloc_libc(), NULL, NULL, &r) ==
	    -1 && errno == EINVAL, "no function: -1 + EINVAL");

	/* Options set by designated initializers only: their fields went
	 * unread (keep_going and out ignored). */
	opt = (beamalloc_check_options){ .keep_going = true, .out = stdout };
	errno = 0;
	ok(beamalloc_check_alloc_failures_opt(beamalloc_libc(), fails_anyway,
	    NULL, &opt, &r) == -1 && errno == EINVAL && r.runs == 0 &&
	    !r.clean_run_ok,
	    "options with struct_size 0 (not filled by _init): -1 + EINVAL");
}

static void
forked(void)
{
	beamalloc_check_result r;
	beamalloc_check_options opt = capture(true);
	const char *text;
	int rc;

	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), crasher,
	    NULL, &opt, &r);
	text = report_of(&opt);
	ok(rc == -1 && r.crashed_runs == 1 && r.first_bad_index == 1 &&
	    r.runs == 2, "fork mode: the crash on allocation #1 is reported, "
	    "the caller lives on");
	ok(strstr(text, "allocation #1 of 2 failed (called from") != NULL,
	    "with the failing call site, read from the dead child");

	opt = capture(true);
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), leaky,
	    NULL, &opt, &r);
	report_of(&opt);
	ok(rc == -1 && r.leaking_runs == 1 && r.first_bad_index == 2 &&
	    r.leaked_bytes == 16, "fork mode finds the planted leak too");

	opt = capture(true);
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), swallow,
	    NULL, &opt, &r);
	report_of(&opt);
	ok(rc == -1 && r.ignored_failures == 3,
	    "fork mode goes on after an ignored failure");

	opt = capture(true);
	rc = beamalloc_check_alloc_failures_opt(beamalloc_libc(), good,
	    NULL, &opt, &r);
	report_of(&opt);
	ok(rc == 0 && r.runs == r.allocations && r.allocations >= 3,
	    "fork mode passes the correct function");
}

int
main(void)
{
	passes();
	planted_leak();
	other_findings();
	forked();
	return done_testing();
}
