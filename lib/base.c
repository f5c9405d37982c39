/*
 * base.c - the base allocators: the BEAM's enif_alloc family and libc's
 * malloc family, behind one vtable.  A "host" describes the three
 * functions and the alignment they guarantee; the vtable enforces that
 * alignment and never lets resize move a block.
 *
 * The enif_* functions are weak references: inside the BEAM the dynamic
 * linker binds them to beam.smp's exports, outside it they stay NULL and
 * the BEAM allocator falls back to malloc with the same 8-byte contract,
 * so NIF code can be unit-tested natively.
 */
#include <stdalign.h>
#include <stdlib.h>

#include "internal.h"

/* Declared here rather than through erl_nif.h: the library needs no
 * Erlang headers to build.  Signatures are those of erl_nif.h. */
extern void *enif_alloc(size_t size) __attribute__((weak));
extern void *enif_realloc(void *ptr, size_t size) __attribute__((weak));
extern void enif_free(void *ptr) __attribute__((weak));

struct host {
	void *(*alloc)(size_t);
	void *(*realloc)(void *, size_t);
	void (*free)(void *);
	size_t max_align;	/* what every block is aligned to */
};

/* ------------------------------------------------------------------------
 * Hosts
 * ---------------------------------------------------------------------- */

bool
beamalloc_in_vm(void)
{
	return enif_alloc != NULL && enif_realloc != NULL && enif_free != NULL;
}

static void *
beam_alloc(size_t len)
{
	return beamalloc_in_vm() ? enif_alloc(len) : malloc(len);
}

static void *
beam_realloc(void *p, size_t len)
{
	return beamalloc_in_vm() ? enif_realloc(p, len) : realloc(p, len);
}

static void
beam_free(void *p)
{
	if (beamalloc_in_vm())
		enif_free(p);
	else
		free(p);
}

/* ERTS guarantees 8 bytes on every non-Windows platform, never 16. */
static const struct host beam_host = {
	beam_alloc, beam_realloc, beam_free, 8
};

static const struct host libc_host = {
	malloc, realloc, free, alignof(max_align_t)
};

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
base_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	const struct host *h = ctx;
	void *p;

	(void)ra;
	if (BA_UNLIKELY(align > h->max_align))
		return ba_fail(EINVAL);
	/* Callers such as the wide allocator add to a length the front-end
	 * accepted: never hand the host a length no block can have. */
	if (BA_UNLIKELY(len > PTRDIFF_MAX))
		return ba_fail(ENOMEM);
	p = h->alloc(len);
	return p != NULL ? p : ba_fail(ENOMEM);
}

/* In place only: a shrink keeps the block (the host's free needs no
 * length), a grow would need realloc, which may move. */
static bool
base_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len <= len;
}

static void *
base_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	const struct host *h = ctx;

	(void)len, (void)ra;
	/* realloc keeps only the host's own alignment. */
	if (align > h->max_align || new_len > PTRDIFF_MAX)
		return NULL;
	return h->realloc(mem, new_len);
}

static void
base_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	const struct host *h = ctx;

	(void)len, (void)align, (void)ra;
	h->free(mem);
}

const beamalloc_vtable ba_base_vtable = {
	base_alloc, base_resize, base_remap, base_free
};

const beamalloc_allocator ba_beam_allocator = {
	(void *)&beam_host, &ba_base_vtable
};

size_t
ba_base_native_align(const void *ctx)
{
	return ((const struct host *)ctx)->max_align;
}

/* ------------------------------------------------------------------------
 * Constructors
 * ---------------------------------------------------------------------- */

beamalloc_allocator
beamalloc_beam(void)
{
	return ba_beam_allocator;
}

beamalloc_allocator
beamalloc_libc(void)
{
	beamalloc_allocator a = { (void *)&libc_host, &ba_base_vtable };

	return a;
}
