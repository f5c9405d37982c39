/*
 * report.c - the default report: one text block per finding, traces
 * symbolized (symbolize.c): function, file and line where debug
 * information exists, else function+offset and the object.
 *
 *   beamalloc: double free: 64 bytes at 0x55d0c0a0 (align 8)
 *     freed again from: 0x55d0b2c1 main (/src/prog.c:14)
 *     allocated at:
 *       #0 0x55d0b27a main (/src/prog.c:11)
 *     first freed at:
 *       #0 0x55d0b2a3 main+0x33 (./prog)
 *
 * A block that sampled traces left out: "allocated at: not sampled (1 in
 * N)", then its call site when the GPA knows it.
 *
 * The block is written under the stream's lock, so reports from several
 * threads do not interleave, and allocates from nothing of ours (libdw
 * uses malloc): it may run inside a GPA whose heap is in trouble.
 *
 * The block is also written with cancellation off: stdio's functions
 * are cancellation points, and a thread cancelled (deferred) inside one
 * left the stream locked, so that every later write to it, any thread's
 * report, hung (found by a review: a thread cancelled as it reported a
 * double free to stderr).
 *
 * Allocators without a config of their own (the wide allocator) report
 * through the process-wide default handler set here.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"


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

void
ba_print_trace(FILE *f, const char *title, const uintptr_t *t, size_t n)
{
	if (t == NULL || n == 0)
		return;
	if (title != NULL)
		fprintf(f, "  %s:\n", title);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "    #%zu ", i);
		ba_print_pc(f, t[i]);
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
	int cancel;

	if (f == NULL || r == NULL)
		return;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
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
		ba_print_pc(f, r->ret_addr);
		fputc('\n', f);
	}
	if (r->not_sampled != 0 && (r->alloc_trace == NULL ||
	    r->alloc_trace_len == 0))
		fprintf(f, "  allocated at: not sampled (1 in %u)\n",
		    r->not_sampled);
	else if (r->not_sampled != 0) {
		fprintf(f, "  allocated at: not sampled (1 in %u); "
		    "the call site:\n", r->not_sampled);
		ba_print_trace(f, NULL, r->alloc_trace, r->alloc_trace_len);
	} else
		ba_print_trace(f, "allocated at", r->alloc_trace,
		    r->alloc_trace_len);
	ba_print_trace(f, "first freed at", r->free_trace, r->free_trace_len);
	funlockfile(f);
	fflush(f);
	pthread_setcancelstate(cancel, NULL);
}

#ifdef BA_ABI01
/* 0.1's ABI (internal.h): a report without not_sampled. */
BA_ABI01_ENTRY(ba_abi01_report_print, beamalloc_report_print);
void
ba_abi01_report_print(FILE *f, const beamalloc_report *r)
{
	beamalloc_report full;

	if (r == NULL)
		return;
	memset(&full, 0, sizeof(full));
	memcpy(&full, r, BA_ABI01_REPORT_SIZE);
	beamalloc_report_print(f, &full);
}
#endif

size_t
beamalloc_report_format(char *buf, size_t len, const beamalloc_report *r)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);

	if (f != NULL) {
		beamalloc_report_print(f, r);
		fclose(f);
	}
	if (len > 0) {
		size_t k = text != NULL ? ba_min(n, len - 1) : 0;

		if (k > 0)
			memcpy(buf, text, k);
		buf[k] = '\0';
	}
	free(text);
	return n;
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
ba_report_call(beamalloc_report_kind kind, const void *mem, size_t size,
    size_t align, size_t given_size, size_t given_align, uintptr_t ra)
{
	beamalloc_report r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.addr = mem;
	r.size = size;
	r.align = align;
	r.given_size = given_size;
	r.given_align = given_align;
	r.ret_addr = ra;
	ba_report_default(&r);
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
