/*
 * report.c - the default report: one text block per finding, traces
 * symbolized with dladdr (function+offset and the object it lives in).
 *
 *   beamalloc: double free: 64 bytes at 0x55d0c0a0 (align 8)
 *     freed again from: 0x55d0b2c1 main+0x41 (./prog)
 *     allocated at:
 *       #0 0x55d0b27a main+0x1a (./prog)
 *     first freed at:
 *       #0 0x55d0b2a3 main+0x33 (./prog)
 *
 * A block that sampled traces left out: "allocated at: not sampled (1 in
 * N)", then its call site when the GPA knows it.
 *
 * The block is written under the stream's lock, so reports from several
 * threads do not interleave, and without allocating: it may run where the
 * heap is in trouble.
 *
 * Allocators without a config of their own (the wide allocator) report
 * through the process-wide default handler set here.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"

#ifdef HAVE_DLADDR
#include <dlfcn.h>
#endif

const char *
beamalloc_report_kind_name(beamalloc_report_kind k)
{
	switch (k) {
	case BEAMALLOC_REPORT_LEAK:
		return "leak";
	case BEAMALLOC_REPORT_DOUBLE_FREE:
		return "double free";
	case BEAMALLOC_REPORT_INVALID_FREE:
		return "invalid free";
	case BEAMALLOC_REPORT_SIZE_MISMATCH:
		return "size mismatch";
	case BEAMALLOC_REPORT_ALIGN_MISMATCH:
		return "alignment mismatch";
	case BEAMALLOC_REPORT_CONCURRENT_USE:
		return "used by two threads at once";
	case BEAMALLOC_REPORT_OVERFLOW:
		return "overflow";
	case BEAMALLOC_REPORT_WRITE_AFTER_FREE:
		return "write after free";
	}
	return "unknown report";
}

/* "0x... func+0x12 (libfoo.so)", or "(libfoo.so+0x1234)" for a static
 * function, which addr2line can resolve. */
static void
print_addr(FILE *f, uintptr_t a)
{
	fprintf(f, "%#" PRIxPTR, a);
#ifdef HAVE_DLADDR
	{
		Dl_info di;
		const char *obj;

		/* A return address can be one past its function's end (a
		 * call to a noreturn function): look up the call itself. */
		if (a == 0 || dladdr((void *)(a - 1), &di) == 0)
			return;
		obj = di.dli_fname != NULL ? di.dli_fname : "?";
		if (di.dli_sname != NULL && di.dli_saddr != NULL)
			fprintf(f, " %s+%#" PRIxPTR " (%s)", di.dli_sname,
			    a - (uintptr_t)di.dli_saddr, obj);
		else
			fprintf(f, " (%s+%#" PRIxPTR ")", obj,
			    a - (uintptr_t)di.dli_fbase);
	}
#endif
}

static void
print_trace(FILE *f, const char *title, const uintptr_t *t, size_t n)
{
	if (t == NULL || n == 0)
		return;
	if (title != NULL)
		fprintf(f, "  %s:\n", title);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "    #%zu ", i);
		print_addr(f, t[i]);
		fputc('\n', f);
	}
}

static void
print_block(FILE *f, const beamalloc_report *r)
{
	fprintf(f, "%zu bytes at %p", r->size, r->addr);
	if (r->align != 0)
		fprintf(f, " (align %zu)", r->align);
}

void
beamalloc_report_print(FILE *f, const beamalloc_report *r)
{
	if (f == NULL || r == NULL)
		return;
	flockfile(f);
	fprintf(f, "beamalloc: %s: ", beamalloc_report_kind_name(r->kind));
	switch (r->kind) {
	case BEAMALLOC_REPORT_LEAK:
	case BEAMALLOC_REPORT_DOUBLE_FREE:
	case BEAMALLOC_REPORT_OVERFLOW:
	case BEAMALLOC_REPORT_WRITE_AFTER_FREE:
		print_block(f, r);
		break;
	case BEAMALLOC_REPORT_INVALID_FREE:
		fprintf(f, "%p was never allocated here (given %zu bytes, "
		    "align %zu)", r->addr, r->given_size, r->given_align);
		break;
	case BEAMALLOC_REPORT_SIZE_MISMATCH:
	case BEAMALLOC_REPORT_ALIGN_MISMATCH:
		print_block(f, r);
		fprintf(f, ", but the call gave %zu bytes, align %zu",
		    r->given_size, r->given_align);
		break;
	case BEAMALLOC_REPORT_CONCURRENT_USE:
		fprintf(f, "a GPA made with thread_safe off was entered by "
		    "this call (%p, %zu bytes, align %zu) while another "
		    "thread was inside it", r->addr, r->given_size,
		    r->given_align);
		break;
	}
	fputc('\n', f);
	if (r->ret_addr != 0) {
		fprintf(f, "  %s: ", r->kind == BEAMALLOC_REPORT_DOUBLE_FREE ?
		    "freed again from" : "called from");
		print_addr(f, r->ret_addr);
		fputc('\n', f);
	}
	if (r->not_sampled != 0 && (r->alloc_trace == NULL ||
	    r->alloc_trace_len == 0))
		fprintf(f, "  allocated at: not sampled (1 in %u)\n",
		    r->not_sampled);
	else if (r->not_sampled != 0) {
		fprintf(f, "  allocated at: not sampled (1 in %u); "
		    "the call site:\n", r->not_sampled);
		print_trace(f, NULL, r->alloc_trace, r->alloc_trace_len);
	} else
		print_trace(f, "allocated at", r->alloc_trace,
		    r->alloc_trace_len);
	print_trace(f, "first freed at", r->free_trace, r->free_trace_len);
	funlockfile(f);
	fflush(f);
}

/* ------------------------------------------------------------------------
 * The process-wide default handler
 * ---------------------------------------------------------------------- */

static _Atomic(beamalloc_report_fn) default_fn;	/* NULL: print to stderr */
static void *_Atomic default_user;
static _Atomic bool default_abort;

/* fn is stored last, so a report that sees it sees its user (a setter
 * racing another setter may still pair them wrongly: set it early). */
void
beamalloc_report_set_default(beamalloc_report_fn fn, void *user,
    bool abort_on_error)
{
	atomic_store_explicit(&default_user, user, memory_order_relaxed);
	atomic_store_explicit(&default_abort, abort_on_error,
	    memory_order_relaxed);
	atomic_store_explicit(&default_fn, fn, memory_order_release);
}

void
ba_report_default(const beamalloc_report *r)
{
	beamalloc_report_fn fn = atomic_load_explicit(&default_fn,
	    memory_order_acquire);

	if (fn != NULL)
		fn(atomic_load_explicit(&default_user, memory_order_relaxed), r);
	else
		beamalloc_report_print(stderr, r);
	if (atomic_load_explicit(&default_abort, memory_order_relaxed) &&
	    r->kind != BEAMALLOC_REPORT_LEAK)
		abort();
}
