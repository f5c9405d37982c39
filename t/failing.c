/*
 * failing.c - the failing allocator: the Nth allocation and the Mth
 * resize/remap fail (and every later one), NULL + ENOMEM, counters of
 * allocations, frees and bytes, the failing call site.
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

/* A call site whose address the test knows (not a tail call). */
static __attribute__((noinline)) void *
alloc_here(beamalloc_allocator a, size_t len)
{
	void *p = beamalloc_alloc(a, len);

	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

static void
alloc_failures(void)
{
	testalloc *t = testalloc_new();
	beamalloc_failing f;
	beamalloc_allocator a;
	void *p0, *p1, *p;
	uintptr_t site = (uintptr_t)alloc_here;
	size_t i;

	beamalloc_failing_init(&f, testalloc_allocator(t), 2, BEAMALLOC_NEVER);
	a = beamalloc_failing_allocator(&f);
	p0 = beamalloc_alloc(a, 10);
	p1 = beamalloc_alloc(a, 20);
	ok(p0 != NULL && p1 != NULL && !f.has_induced_failure,
	    "allocations 0 and 1 succeed");
	errno = 0;
	p = alloc_here(a, 30);
	ok(p == NULL && errno == ENOMEM && f.has_induced_failure,
	    "allocation 2 fails: NULL + ENOMEM, has_induced_failure");
	ok(f.fail_ret_addr >= site && f.fail_ret_addr < site + 1024,
	    "fail_ret_addr names the failing call site");
	ok(f.fail_trace_len >= 2 && f.fail_trace_len <= BEAMALLOC_FAILING_TRACE &&
	    f.fail_trace[0] == f.fail_ret_addr &&
	    f.fail_trace[1] >= (uintptr_t)alloc_failures &&
	    f.fail_trace[1] < (uintptr_t)alloc_failures + 16384,
	    "fail_trace: the call site, then its caller (%zu frames)",
	    f.fail_trace_len);
	{
		uintptr_t first = f.fail_trace[0];

		errno = 0;
		(void)beamalloc_alloc(a, 1);
		ok(f.fail_trace[0] == first,
		    "a later failure keeps the first one's trace");
	}
	errno = 0;
	ok(beamalloc_alloc(a, 1) == NULL && errno == ENOMEM,
	    "and every later allocation fails: memory has run out");
	ok(beamalloc_alloc(a, 0) != NULL,
	    "zero-length allocations never reach it");
	ok(f.allocations == 2 && f.allocated_bytes == 30,
	    "counts 2 allocations, 30 bytes");
	beamalloc_free(a, p1, 20);
	beamalloc_free(a, p0, 10);
	ok(f.deallocations == 2 && f.freed_bytes == 30 && t->nblocks == 0,
	    "counts 2 frees, 30 bytes, and passes them on");

	beamalloc_failing_init(&f, testalloc_allocator(t), 0, BEAMALLOC_NEVER);
	ok(f.fail_trace_len == 0 && f.fail_trace[0] == 0,
	    "init clears the trace");
	ok(beamalloc_alloc(a, 8) == NULL && f.has_induced_failure,
	    "fail_index 0: the first allocation fails");

	beamalloc_failing_init(&f, testalloc_allocator(t), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	for (i = 0; i < 1000; i++) {
		p = beamalloc_alloc(a, 16);
		if (p == NULL)
			break;
		beamalloc_free(a, p, 16);
	}
	ok(i == 1000 && !f.has_induced_failure && f.allocations == 1000 &&
	    f.freed_bytes == 16000, "BEAMALLOC_NEVER never fails");
	free(t);
}

static void
backing_failure(void)
{
	alignas(16) unsigned char buf[16];
	beamalloc_fixed fb;
	beamalloc_failing f;
	beamalloc_allocator a;

	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	beamalloc_failing_init(&f, beamalloc_fixed_allocator(&fb),
	    BEAMALLOC_NEVER, BEAMALLOC_NEVER);
	a = beamalloc_failing_allocator(&f);
	errno = 0;
	ok(beamalloc_alloc(a, 32) == NULL && errno == ENOMEM &&
	    !f.has_induced_failure && f.allocations == 0,
	    "a backing failure passes through, not counted as induced");
	ok(beamalloc_alloc(a, 16) != NULL && f.allocations == 1,
	    "and the next allocation works");
}

static void
resize_failures(void)
{
	testalloc *t = testalloc_new();
	beamalloc_failing f;
	beamalloc_allocator a;
	unsigned char *p, *q;

	t->move_on_remap = 1;
	beamalloc_failing_init(&f, testalloc_allocator(t), BEAMALLOC_NEVER, 1);
	a = beamalloc_failing_allocator(&f);
	p = beamalloc_alloc(a, 100);
	memset(p, 0x77, 100);
	ok(beamalloc_resize(a, p, 100, 8, 50) && f.resizes == 1 &&
	    f.freed_bytes == 50, "resize 0 succeeds and counts 50 freed bytes");
	errno = 0;
	ok(!beamalloc_resize(a, p, 50, 8, 40) && errno == ENOMEM &&
	    f.has_induced_resize_failure && !f.has_induced_failure,
	    "resize 1 fails: ENOMEM, has_induced_resize_failure");
	ok(beamalloc_remap(a, p, 50, 8, 200) == NULL,
	    "later remaps fail too");
	q = beamalloc_realloc(a, p, 50, 8, 200);
	ok(q != NULL && q[0] == 0x77 && q[49] == 0x77 && f.allocations == 2 &&
	    f.deallocations == 1,
	    "realloc falls back to alloc + copy + free through it");
	beamalloc_free(a, q, 200);
	ok(f.allocated_bytes == f.freed_bytes && t->nblocks == 0,
	    "bytes balance: %zu allocated, %zu freed", f.allocated_bytes,
	    f.freed_bytes);

	beamalloc_failing_init(&f, testalloc_allocator(t), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	p = beamalloc_alloc(a, 100);
	q = beamalloc_remap(a, p, 100, 8, 300);
	ok(q != NULL && q != p && f.resizes == 1 && f.allocated_bytes == 300,
	    "a moving remap counts its growth");
	q = beamalloc_remap(a, q, 300, 8, 120);
	ok(q != NULL && f.freed_bytes == 180, "a shrinking remap counts its "
	    "shrinkage");
	beamalloc_free(a, q, 120);
	ok(f.allocated_bytes == f.freed_bytes && f.allocations == 1 &&
	    f.deallocations == 1 && t->nblocks == 0 && t->bad_calls == 0,
	    "counters balance, the backing saw the exact blocks");
	free(t);
}

static void
composition(void)
{
	testalloc *t = testalloc_new();
	beamalloc_failing f;
	beamalloc_allocator a, w;
	void *p;

	beamalloc_failing_init(&f, beamalloc_libc(), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	a = beamalloc_failing_allocator(&f);
	is_size(beamalloc_native_align(a), alignof(max_align_t),
	    "native_align(failing over libc) is libc's");
	beamalloc_failing_init(&f, beamalloc_beam(), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	is_size(beamalloc_native_align(a), 8,
	    "native_align(failing over beam) is 8");

	beamalloc_failing_init(&f, testalloc_allocator(t), BEAMALLOC_NEVER,
	    BEAMALLOC_NEVER);
	w = beamalloc_wide_on(&a);
	p = beamalloc_alloc_aligned(w, 64, 256);
	ok(p != NULL && is_aligned(p, 256) && f.allocated_bytes == 64 + 256,
	    "wide over failing over an 8-only backing: 256-aligned, counted");
	beamalloc_free_aligned(w, p, 64, 256);
	ok(f.freed_bytes == f.allocated_bytes && t->nblocks == 0 &&
	    t->bad_calls == 0, "and freed exactly");
	free(t);
}

int
main(void)
{
	alloc_failures();
	backing_failure();
	resize_failures();
	composition();
	return done_testing();
}
