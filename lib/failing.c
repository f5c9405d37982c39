/*
 * failing.c - a wrapper that makes the Nth allocation and the Mth
 * resize/remap fail, and counts what passes through (Zig's
 * FailingAllocator).  Once the failing index is reached every later call
 * of that kind fails too, as when memory has really run out.
 */
#include "config.h"

#include <string.h>
#ifdef HAVE_EXECINFO_H
#include <execinfo.h>
#endif

#include "internal.h"

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

/* The stack of the induced failure, from the caller's call site ra
 * outwards (the frames inside the library dropped), as Zig's
 * FailingAllocator keeps it.  Once per run: backtrace()'s cost does not
 * matter here. */
static void
keep_trace(beamalloc_failing *f, uintptr_t ra)
{
	size_t n = 0;
#ifdef HAVE_BACKTRACE
	void *buf[BEAMALLOC_FAILING_TRACE + 8];
	int got = backtrace(buf, BEAMALLOC_FAILING_TRACE + 8), from = got;

	for (int i = 0; i < got && from == got; i++)
		if ((uintptr_t)buf[i] == ra)
			from = i;
	for (int i = from; i < got && n < BEAMALLOC_FAILING_TRACE; i++)
		f->fail_trace[n++] = (uintptr_t)buf[i];
#endif
	if (n == 0 && ra != 0)
		f->fail_trace[n++] = ra;
	f->fail_trace_len = n;
}

static void *
failing_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_failing *f = ctx;
	void *p;

	if (f->allocations >= f->fail_index) {
		if (!f->has_induced_failure) {
			f->has_induced_failure = true;
			f->fail_ret_addr = ra;
			keep_trace(f, ra);
		}
		return ba_fail(ENOMEM);
	}
	p = ba_raw_alloc(f->backing, len, align, ra);
	if (p == NULL)
		return NULL;
	f->allocations++;
	f->allocated_bytes += len;
	return p;
}

static bool
resize_fails(beamalloc_failing *f)
{
	if (f->resizes < f->resize_fail_index)
		return false;
	f->has_induced_resize_failure = true;
	errno = ENOMEM;
	return true;
}

static void
count_resize(beamalloc_failing *f, size_t len, size_t new_len)
{
	f->resizes++;
	if (new_len > len)
		f->allocated_bytes += new_len - len;
	else
		f->freed_bytes += len - new_len;
}

static bool
failing_resize(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_failing *f = ctx;

	if (resize_fails(f) ||
	    !ba_raw_resize(f->backing, mem, len, align, new_len, ra))
		return false;
	count_resize(f, len, new_len);
	return true;
}

static void *
failing_remap(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_failing *f = ctx;
	void *p;

	if (resize_fails(f))
		return NULL;
	p = ba_raw_remap(f->backing, mem, len, align, new_len, ra);
	if (p != NULL)
		count_resize(f, len, new_len);
	return p;
}

static void
failing_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_failing *f = ctx;

	f->deallocations++;
	f->freed_bytes += len;
	ba_raw_free(f->backing, mem, len, align, ra);
}

const beamalloc_vtable ba_failing_vtable = {
	failing_alloc, failing_resize, failing_remap, failing_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

void
beamalloc_failing_init(beamalloc_failing *f, beamalloc_allocator backing,
    size_t fail_index, size_t resize_fail_index)
{
	f->backing = ba_set(backing);
	f->fail_index = fail_index;
	f->resize_fail_index = resize_fail_index;
	f->allocations = 0;
	f->deallocations = 0;
	f->resizes = 0;
	f->allocated_bytes = 0;
	f->freed_bytes = 0;
	f->fail_ret_addr = 0;
	f->has_induced_failure = false;
	f->has_induced_resize_failure = false;
	f->fail_trace_len = 0;
	memset(f->fail_trace, 0, sizeof(f->fail_trace));
}

beamalloc_allocator
beamalloc_failing_allocator(beamalloc_failing *f)
{
	beamalloc_allocator a = { f, &ba_failing_vtable };

	return f != NULL ? a : ba_empty_allocator();
}

/* ------------------------------------------------------------------------
 * 0.1's ABI (internal.h): a beamalloc_failing without the failure's
 * trace.  Only an allocation keeps one: it works on a full copy and
 * writes 0.1's fields back; the rest touch 0.1's fields alone.
 * ---------------------------------------------------------------------- */

#ifdef BA_ABI01
static void *
abi01_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_failing f;
	void *p;

	memcpy(&f, ctx, BA_ABI01_FAILING_SIZE);
	p = failing_alloc(&f, len, align, ra);
	memcpy(ctx, &f, BA_ABI01_FAILING_SIZE);
	return p;
}

const beamalloc_vtable ba_abi01_failing_vtable = {
	abi01_alloc, failing_resize, failing_remap, failing_free
};

BA_ABI01_ENTRY(ba_abi01_failing_init, beamalloc_failing_init);
void
ba_abi01_failing_init(beamalloc_failing *f, beamalloc_allocator backing,
    size_t fail_index, size_t resize_fail_index)
{
	beamalloc_failing full;

	beamalloc_failing_init(&full, backing, fail_index, resize_fail_index);
	memcpy(f, &full, BA_ABI01_FAILING_SIZE);
}

BA_ABI01_ENTRY(ba_abi01_failing_allocator, beamalloc_failing_allocator);
beamalloc_allocator
ba_abi01_failing_allocator(beamalloc_failing *f)
{
	beamalloc_allocator a = { f, &ba_abi01_failing_vtable };

	return f != NULL ? a : ba_empty_allocator();
}
#endif
