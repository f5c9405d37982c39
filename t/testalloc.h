/*
 * testalloc.h - a strict backing allocator for tests (header-only).
 *
 * It serves only BEAMALLOC_MIN_ALIGN: every block is deliberately 8 mod 16,
 * so code that silently assumes 16 fails.  It records every live block and
 * checks that each free and resize names exactly the pointer, length and
 * alignment it handed out; it counts bytes, and can move blocks on remap
 * (to a different residue mod any alignment) to exercise callers' copies.
 */
#ifndef BEAMALLOC_TESTALLOC_H
#define BEAMALLOC_TESTALLOC_H

#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"

#define TA_MAX_BLOCKS 4096

struct ta_block {
	unsigned char *raw;	/* what malloc gave */
	unsigned char *p;	/* what we gave: raw + 8 + shift, 8 mod 16 */
	size_t len;
	size_t align;
};

typedef struct testalloc {
	struct ta_block blocks[TA_MAX_BLOCKS];
	size_t nblocks;
	size_t live_bytes;	/* sum of len of live blocks */
	size_t peak_bytes;
	size_t allocs, frees, resizes, remaps;
	size_t bad_calls;	/* frees/resizes naming a wrong block */
	int move_on_remap;	/* remap always moves */
	size_t shift;		/* extra 16*k offset, varies residues mod 32+ */
} testalloc;

static struct ta_block *
ta_find(testalloc *t, const void *p)
{
	for (size_t i = 0; i < t->nblocks; i++)
		if (t->blocks[i].p == p)
			return &t->blocks[i];
	return NULL;
}

static void *
ta_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	testalloc *t = ctx;
	struct ta_block *b;
	size_t shift;

	(void)ra;
	if (align > BEAMALLOC_MIN_ALIGN || t->nblocks == TA_MAX_BLOCKS ||
	    len > PTRDIFF_MAX - 64) {
		return NULL;
	}
	b = &t->blocks[t->nblocks];
	shift = (t->shift++ % 4) * 16;
	b->raw = malloc(len + 8 + shift);
	if (b->raw == NULL)
		return NULL;
	b->p = b->raw + 8 + shift;
	b->len = len;
	b->align = align;
	t->nblocks++;
	t->allocs++;
	t->live_bytes += len;
	if (t->live_bytes > t->peak_bytes)
		t->peak_bytes = t->live_bytes;
	return b->p;
}

static struct ta_block *
ta_check(testalloc *t, const void *mem, size_t len, size_t align)
{
	struct ta_block *b = ta_find(t, mem);

	if (b == NULL || b->len != len || b->align != align) {
		t->bad_calls++;
		return NULL;
	}
	return b;
}

static bool
ta_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	testalloc *t = ctx;
	struct ta_block *b = ta_check(t, mem, len, align);

	(void)ra;
	t->resizes++;
	if (b == NULL || new_len > len)
		return false;	/* shrinks only */
	t->live_bytes -= len - new_len;
	b->len = new_len;
	return true;
}

static void
ta_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	testalloc *t = ctx;
	struct ta_block *b = ta_check(t, mem, len, align);

	(void)ra;
	if (b == NULL)
		return;
	free(b->raw);
	t->live_bytes -= b->len;
	t->frees++;
	*b = t->blocks[--t->nblocks];
}

static void *
ta_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	testalloc *t = ctx;
	void *p;

	t->remaps++;
	if (!t->move_on_remap || ta_check(t, mem, len, align) == NULL)
		return NULL;
	p = ta_alloc(ctx, new_len, align, ra);
	if (p == NULL)
		return NULL;
	memcpy(p, mem, len < new_len ? len : new_len);
	ta_free(ctx, mem, len, align, ra);
	return p;
}

static const beamalloc_vtable ta_vtable = {
	ta_alloc, ta_resize, ta_remap, ta_free
};

static inline beamalloc_allocator
testalloc_allocator(testalloc *t)
{
	beamalloc_allocator a = { t, &ta_vtable };

	return a;
}

static inline testalloc *
testalloc_new(void)
{
	return calloc(1, sizeof(testalloc));
}

/* A seeded byte pattern, to prove contents survive a move or resize. */
static inline void
ta_fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

static inline int
ta_intact(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + seed))
			return 0;
	return 1;
}

#endif /* BEAMALLOC_TESTALLOC_H */
