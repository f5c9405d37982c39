/*
 * empty.c - an allocator constructor given NULL (a create that failed,
 * its NULL not checked) returns the allocator with no memory: every
 * allocation fails with ENOMEM, and a block freed, resized or remapped
 * through it (it never gave one) is reported as an invalid free by
 * address and size, and left as it was.  Before, each of these calls
 * crashed inside the library.  (beamalloc_general_purpose() while the
 * global GPA cannot be made: t/gpa_noglobal.c.)  An allocator never set
 * ({0}), used or given as a backing, is the same but fails with EINVAL;
 * it crashed too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "lastreport.h"
#include "tap.h"

#define FAILS(expr, err) (errno = 0, (expr) == 0 && errno == (err))

static beamalloc_stackfb stackfb;
static unsigned char stackfb_buf[1];
static beamalloc_logging logging;
static beamalloc_failing failing;
static beamalloc_locked locked;

static void
quiet(void *user, const beamalloc_log_entry *e)
{
	(void)user, (void)e;
}

/* Cases 0-7: a constructor given NULL (the empty allocator: ENOMEM);
 * from 8 on, an allocator never set, alone and as each wrapper's backing
 * (the unset allocator: EINVAL). */
static beamalloc_allocator
from_null(int i, const char **name, int *err)
{
	static const beamalloc_allocator zero;

	*err = i < 8 ? ENOMEM : EINVAL;
	switch (i) {
	case 0: *name = "beamalloc_gpa_allocator(NULL)";
		return beamalloc_gpa_allocator(NULL);
	case 1: *name = "beamalloc_arena_allocator(NULL)";
		return beamalloc_arena_allocator(NULL);
	case 2: *name = "beamalloc_pool_allocator(NULL)";
		return beamalloc_pool_allocator(NULL);
	case 3: *name = "beamalloc_fixed_allocator(NULL)";
		return beamalloc_fixed_allocator(NULL);
	case 4: *name = "beamalloc_failing_allocator(NULL)";
		return beamalloc_failing_allocator(NULL);
	case 5: *name = "beamalloc_stackfb_allocator(NULL)";
		return beamalloc_stackfb_allocator(NULL);
	case 6: *name = "beamalloc_locked_allocator(NULL)";
		return beamalloc_locked_allocator(NULL);
	case 7: *name = "beamalloc_logging_allocator(NULL)";
		return beamalloc_logging_allocator(NULL);
	case 8: *name = "an allocator never set ({0})";
		return zero;
	case 9: *name = "a stack fallback over {0}";
		beamalloc_stackfb_init(&stackfb, stackfb_buf,
		    sizeof(stackfb_buf), zero);
		return beamalloc_stackfb_allocator(&stackfb);
	case 10: *name = "a logging allocator over {0}";
		beamalloc_logging_init(&logging, zero, NULL, quiet, NULL);
		return beamalloc_logging_allocator(&logging);
	case 11: *name = "a failing allocator over {0}";
		beamalloc_failing_init(&failing, zero, BEAMALLOC_NEVER,
		    BEAMALLOC_NEVER);
		return beamalloc_failing_allocator(&failing);
	default: *name = "a locked allocator over {0}";
		if (beamalloc_locked_init(&locked, zero) != 0)
			bail("pthread_mutex_init");
		return beamalloc_locked_allocator(&locked);
	}
}
#define NCTORS 13

static bool
intact(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + 1))
			return false;
	return true;
}

static void
empty(int i)
{
	const char *name;
	int err;
	beamalloc_allocator a = from_null(i, &name, &err);
	beamalloc_allocator w = beamalloc_wide_on(&a);
	unsigned char *mine = malloc(48);
	size_t bad = 0;
	int e;

	if (mine == NULL)
		bail("no memory");
	for (size_t k = 0; k < 48; k++)
		mine[k] = (unsigned char)(k * 7 + 1);

	bad += !FAILS(beamalloc_alloc(a, 64), err);
	bad += !FAILS(beamalloc_alloc_aligned(a, 100, 4096), err);
	bad += !FAILS(beamalloc_alloc_zeroed(a, 4, 16, 8), err);
	bad += !FAILS(beamalloc_dup(a, "abc", 4), err);
	bad += !FAILS(beamalloc_realloc(a, NULL, 0, 8, 100), err);
	bad += !FAILS(beamalloc_alloc_aligned(w, 100, 8192), err);
	is_size(bad, 0, "%s: alloc, aligned, zeroed, dup, realloc from "
	    "NULL, and the wide allocator over it: NULL + %s", name,
	    err == ENOMEM ? "ENOMEM" : "EINVAL");
	ok(beamalloc_alloc(a, 0) != NULL && beamalloc_native_align(a) >=
	    BEAMALLOC_MIN_ALIGN, "%s: zero length and native alignment as "
	    "for any allocator", name);

	nreports = 0;
	errno = 12345;
	beamalloc_free(a, mine, 48);
	e = errno;
	if (!ok(nreports == 1 && last_report.kind ==
	    BEAMALLOC_REPORT_INVALID_FREE && last_report.addr == mine &&
	    last_report.given_size == 48 && e == 12345 && intact(mine, 48),
	    "%s: a free is one invalid-free report naming the block and "
	    "its length, the block untouched, errno kept", name))
		diag("  %zu reports, kind %d, addr %p (block %p), size %zu, "
		    "errno %d", nreports, (int)last_report.kind, last_report.addr,
		    (void *)mine, last_report.given_size, e);

	nreports = 0;
	ok(FAILS(beamalloc_resize(a, mine, 48, 8, 64), EINVAL) &&
	    FAILS(beamalloc_remap(a, mine, 48, 8, 16), EINVAL) &&
	    FAILS(beamalloc_realloc(a, mine, 48, 8, 96), EINVAL) &&
	    nreports == 3 && intact(mine, 48), "%s: resize, remap and realloc "
	    "of a block: false/NULL + EINVAL, each reported, the block "
	    "untouched", name);
	free(mine);
}

static int
never_called(beamalloc_allocator a, void *arg)
{
	(void)a;
	*(int *)arg = 1;
	return 0;
}

/* A constructor given an allocator never set as its backing refuses it. */
static void
unset_backing(void)
{
	const beamalloc_allocator zero = { NULL, NULL };
	beamalloc_check_result r;
	int called = 0;
	size_t bad = 0;
	beamalloc_allocator w = beamalloc_wide_on(NULL);
	unsigned char *mine = malloc(48);

	if (mine == NULL)
		bail("no memory");
	bad += !FAILS(beamalloc_gpa_create(zero, NULL), EINVAL);
	bad += !FAILS(beamalloc_gpa_checkout(zero, NULL), EINVAL);
	bad += !FAILS(beamalloc_arena_create(zero), EINVAL);
	bad += !FAILS(beamalloc_pool_create(zero, 16, 8, 4, true), EINVAL);
	errno = 0;
	bad += !(beamalloc_check_alloc_failures(zero, never_called, &called,
	    &r) == -1 && errno == EINVAL && called == 0);
	bad += !FAILS(beamalloc_alloc_aligned(w, 64, 8192), EINVAL);
	nreports = 0;
	beamalloc_free_aligned(w, mine, 48, 8);
	bad += !(nreports == 1 && last_report.addr == mine);
	free(mine);
	is_size(bad, 0, "{0} as the backing of a GPA (create, checkout), an "
	    "arena, a pool, the checker, and beamalloc_wide_on(NULL): "
	    "refused with EINVAL, nothing run; the wide one's free reported");
}

int
main(void)
{
	beamalloc_report_set_default(record, NULL, false);
	plan(NCTORS * 4 + 1);
	for (int i = 0; i < NCTORS; i++)
		empty(i);
	unset_backing();
	return done_testing();
}
