/*
 * gpa_scan.c - a leak check made while another thread allocates, with
 * canaries on, reports no overflow: a block is shown to the scan (its
 * record live) only once its canary is written.  A review found the large
 * blocks' path and the small blocks' general path marking the block live
 * first: a scan in between read the canary not yet written, a false
 * "overflow".
 *
 * Made, not hoped for: the backing maps the large block read-only, so the
 * allocating thread T faults at its first write to it, the fill of its
 * junk and canary; the SIGSEGV handler, on T, holds T there while the main
 * thread checks for leaks, then makes the block writable and returns.  In
 * a child process, with an alarm.  (Not under valgrind, which does not run
 * the faulting store again.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "pages.h"
#include "steps.h"
#include "tap.h"

#define BIG 40000

/* ------------------------------------------------------------------------
 * A backing of whole pages; the block for BIG read-only when armed
 * ---------------------------------------------------------------------- */

static int armed;
static uintptr_t ro_lo, ro_hi;

static void *
mm_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	bool ro = __atomic_load_n(&armed, __ATOMIC_SEQ_CST) && len >= BIG &&
	    len < BIG + PAGE;
	void *p;

	(void)ctx, (void)ra;
	if (align > PAGE)
		return NULL;
	if ((p = pages_map(len, ro ? PROT_READ : PROT_READ | PROT_WRITE)) ==
	    NULL)
		return NULL;
	if (ro) {
		ro_lo = (uintptr_t)p;
		ro_hi = ro_lo + pages(len);
		__atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
	}
	return p;
}

static const beamalloc_vtable mm_vt = { mm_alloc, pages_resize, pages_remap,
    pages_free };

/* ------------------------------------------------------------------------
 * The child
 * ---------------------------------------------------------------------- */

/* Steps: 1 T held at its fault; 2 the scan made. */

static unsigned long faults;
static beamalloc_allocator A;

/* T's first write to the block faulted: hold T until the scan is made. */
static void
on_segv(int sig, siginfo_t *si, void *uc)
{
	uintptr_t at = (uintptr_t)si->si_addr;

	(void)uc;
	if (at < ro_lo || at >= ro_hi || faults++ != 0) {
		signal(sig, SIG_DFL);
		return;			/* not ours: faults again, and dies */
	}
	set(1);
	await(2);
	mprotect((void *)ro_lo, ro_hi - ro_lo, PROT_READ | PROT_WRITE);
}

static void *
allocate(void *unused)
{
	void *p;

	(void)unused;
	__atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);
	if ((p = beamalloc_alloc(A, BIG)) != NULL)
		beamalloc_free(A, p, BIG);
	return p;
}

static int
child(void *unused)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	struct sigaction sa;
	pthread_t t;
	void *p;

	(void)unused;
	alarm(60);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	beamalloc_gpa_config_init(&cfg);
	cfg.safety = true;
	cfg.thread_safe = true;
	cfg.canary = cfg.junk = true;
	cfg.quarantine = 0;		/* whatever BEAMALLOC_GPA_OPTIONS says */
	cfg.guard_sample = 0;
	cfg.report = tally;
	tallied = BEAMALLOC_REPORT_OVERFLOW;
	if ((g = beamalloc_gpa_create((beamalloc_allocator){ NULL, &mm_vt },
	    &cfg)) == NULL)
		return 2;
	A = beamalloc_gpa_allocator(g);
	if (pthread_create(&t, NULL, allocate, NULL) != 0)
		return 3;
	await(1);
	(void)beamalloc_gpa_detect_leaks(g);	/* T's block not yet out */
	set(2);
	if (pthread_join(t, &p) != 0 || p == NULL)
		return 4;
	if (__atomic_load_n(&ntallied, __ATOMIC_SEQ_CST) != 0)
		return 5;
	if (beamalloc_gpa_detect_leaks(g) != 0 || beamalloc_gpa_destroy(g) !=
	    0 || __atomic_load_n(&nother, __ATOMIC_SEQ_CST) != 0)
		return 6;
	return faults == 1 ? 0 : 7;
}

int
main(void)
{
	char how[32];
	int st;

	plan(1);
	st = child_run(child, NULL, 0, NULL, 0);
	if (!ok(child_exited(st, 0), "a leak check while another thread is "
	    "inside its allocation of a large block, canaries on: no overflow "
	    "reported"))
		diag("  child: %s (5: an overflow reported; 6: leaks or other "
		    "reports; 7: the block was not written once; 14: alarm)",
		    child_how(st, how));
	return done_testing();
}
