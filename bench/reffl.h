/*
 * reffl.h - the reference free list: what a call costs, not an allocator
 * design.  Power-of-two classes of 8..4096 B, one singly linked free list
 * each, refilled from 64 KiB chunks; the length given to free picks the
 * class, so blocks carry no header.  8-byte alignment, not thread-safe.
 *
 * Everything is static and the vtable is a constant visible to the
 * compiler, so the benchmark can call the same code four ways: directly,
 * through a fat pointer the compiler devirtualizes, through a fat pointer
 * it cannot see into (an indirect call), and through libbeamalloc's
 * front-end (a call into the shared library, then the indirect call):
 * the devirtualization point of the Allocgate article, measured.
 */
#ifndef BEAMALLOC_BENCH_REFFL_H
#define BEAMALLOC_BENCH_REFFL_H

#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"

#define REF_CLASSES 13		/* log2 classes 3..12 */
#define REF_MAX 4096
#define REF_CHUNK (64 * 1024)

struct ref_fl {
	void *free[REF_CLASSES];
	unsigned char *bump, *end;
	void *chunks;		/* linked through their first word */
};

static inline unsigned
ref_class(size_t len)
{
	return len <= 8 ? 3 : 64 - (unsigned)__builtin_clzl(len - 1);
}

static __attribute__((noinline)) void *
ref_refill(struct ref_fl *f, unsigned cls)
{
	size_t sz = (size_t)1 << cls;
	void *p;

	if ((size_t)(f->end - f->bump) < sz) {
		unsigned char *chunk = malloc(REF_CHUNK);

		if (chunk == NULL)
			return NULL;
		*(void **)chunk = f->chunks;
		f->chunks = chunk;
		f->bump = chunk + 16;
		f->end = chunk + REF_CHUNK;
	}
	p = f->bump;
	f->bump += sz;
	return p;
}

static inline void *
ref_alloc(struct ref_fl *f, size_t len)
{
	unsigned c;
	void *p;

	if (__builtin_expect(len > REF_MAX, 0))
		return NULL;
	c = ref_class(len);
	p = f->free[c];
	if (__builtin_expect(p != NULL, 1)) {
		f->free[c] = *(void **)p;
		return p;
	}
	return ref_refill(f, c);
}

static inline void
ref_free(struct ref_fl *f, void *p, size_t len)
{
	unsigned c = ref_class(len);

	*(void **)p = f->free[c];
	f->free[c] = p;
}

static inline void
ref_destroy(struct ref_fl *f)
{
	while (f->chunks != NULL) {
		void *next = *(void **)f->chunks;

		free(f->chunks);
		f->chunks = next;
	}
	memset(f, 0, sizeof(*f));
}

/* ---- the same allocator behind the vtable ------------------------------ */

static void *
ref_vt_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ra;
	return align <= 8 ? ref_alloc(ctx, len) : NULL;
}

static bool
ref_vt_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len <= REF_MAX && ref_class(new_len) == ref_class(len);
}

static void *
ref_vt_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static void
ref_vt_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)align, (void)ra;
	ref_free(ctx, mem, len);
}

static const beamalloc_vtable ref_vtable = {
	ref_vt_alloc, ref_vt_resize, ref_vt_remap, ref_vt_free
};

#endif
