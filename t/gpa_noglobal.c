/*
 * gpa_noglobal.c - beamalloc_general_purpose() while the global GPA
 * cannot be made: its backing (beamalloc_wide() over beamalloc_beam(),
 * here over this file's enif_alloc, as inside the VM) out of memory at
 * the first use, when beamalloc_gpa_global() returns NULL.  The
 * allocator it returns fails an allocation with ENOMEM, refuses a
 * pointer it never gave out (one invalid-free report through the
 * process-wide handler; resize false, remap and realloc NULL, with
 * EINVAL), and, kept by its caller as a NIF's load keeps it, serves
 * through the global GPA once the backing has memory again.  It read
 * through the NULL GPA before: SIGSEGV in beamalloc_general_purpose().
 * Each case runs in a child, whose global GPA is its own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "child.h"

/* The VM's allocator, failing while enif_fail is set.  Default
 * visibility: the library binds its weak enif_* references here. */
#define STUB_EXPORT __attribute__((visibility("default")))
STUB_EXPORT void *enif_alloc(size_t size);
STUB_EXPORT void *enif_realloc(void *ptr, size_t size);
STUB_EXPORT void enif_free(void *ptr);

static volatile bool enif_fail;

void *
enif_alloc(size_t size)
{
	return enif_fail ? NULL : malloc(size);
}

void *
enif_realloc(void *ptr, size_t size)
{
	return enif_fail ? NULL : realloc(ptr, size);
}

void
enif_free(void *ptr)
{
	free(ptr);
}

static size_t invalid_frees, other_reports;

static void
count(void *user, const beamalloc_report *r)
{
	(void)user;
	if (r->kind == BEAMALLOC_REPORT_INVALID_FREE)
		invalid_frees++;
	else
		other_reports++;
}

/* Exit codes of the steps: 0 when all went as it should. */

/* No memory: no global GPA, and an allocation fails with ENOMEM. */
static int
step_nomem(void *arg)
{
	beamalloc_allocator a;
	void *p;

	(void)arg;
	enif_fail = true;
	if (beamalloc_gpa_global() != NULL)
		return 2;
	a = beamalloc_general_purpose();
	errno = 0;
	p = beamalloc_alloc(a, 24);
	if (p != NULL || errno != ENOMEM)
		return 3;
	errno = 0;
	p = beamalloc_alloc_aligned(a, 100, 64);
	if (p != NULL || errno != ENOMEM)
		return 4;
	return 0;
}

/* A pointer it never gave out: reported once per call, refused. */
static int
step_foreign(void *arg)
{
	static long not_ours[4];
	beamalloc_allocator a;
	bool resized;
	void *p;

	(void)arg;
	enif_fail = true;
	beamalloc_report_set_default(count, NULL, false);
	a = beamalloc_general_purpose();
	beamalloc_free(a, not_ours, sizeof(not_ours));
	if (invalid_frees != 1)
		return 2;
	errno = 0;
	resized = beamalloc_resize(a, not_ours, sizeof(not_ours), 8, 8);
	if (resized || errno != EINVAL || invalid_frees != 2)
		return 3;
	errno = 0;
	p = beamalloc_remap(a, not_ours, sizeof(not_ours), 8, 64);
	if (p != NULL || errno != EINVAL || invalid_frees != 3)
		return 4;
	errno = 0;
	p = beamalloc_realloc(a, not_ours, sizeof(not_ours), 8, 64);
	if (p != NULL || errno != EINVAL || invalid_frees != 4)
		return 5;
	if (other_reports != 0)
		return 6;
	return 0;
}

/* Memory back: the same allocator value serves from the global GPA. */
static int
step_later(void *arg)
{
	beamalloc_gpa_stats st;
	beamalloc_allocator a;
	beamalloc_gpa *g;
	char *p;

	(void)arg;
	enif_fail = true;
	a = beamalloc_general_purpose();
	enif_fail = false;
	if ((p = beamalloc_alloc(a, 100)) == NULL)
		return 2;
	memset(p, 'x', 100);
	if ((g = beamalloc_gpa_global()) == NULL)
		return 3;
	beamalloc_gpa_get_stats(g, &st);
	if (st.live_blocks != 1 || st.live_bytes != 100)
		return 4;
	if ((p = beamalloc_realloc(a, p, 100, 8, 5000)) == NULL ||
	    p[99] != 'x')
		return 5;
	beamalloc_free(a, p, 5000);
	beamalloc_gpa_get_stats(g, &st);
	if (st.live_blocks != 0)
		return 6;
	return 0;
}

static void
check(int (*step)(void *), const char *what)
{
	char how[32];
	int st = child_run(step, NULL, CHILD_EXIT, NULL, 0);

	if (!ok(child_exited(st, 0), "%s", what))
		diag("the child ended with %s", child_how(st, how));
}

int
main(void)
{
	check(step_nomem, "no memory for the global GPA: "
	    "beamalloc_general_purpose() returns an allocator whose "
	    "allocations fail with ENOMEM");
	check(step_foreign, "and that refuses a pointer it never gave out: "
	    "one invalid-free report a call, EINVAL");
	check(step_later, "and that serves from the global GPA once memory "
	    "is back");
	return done_testing();
}
