/*
 * kernels.h - the workloads, written once and instantiated once per
 * calling convention (through the beamalloc front-end, straight into the
 * reference free list, straight into enif_alloc ...).  Include it after
 * defining:
 *
 *   K_NAME(x)                          name of the instance of kernel x
 *   K_H                                type of the allocator handle
 *   K_ALLOC(h, len, align)             -> void *, NULL on failure
 *   K_FREE(h, p, len, align)
 *   K_REALLOC(h, p, len, align, new)   optional: -> void *, NULL on failure
 *   K_ATTR                             optional: attributes of each kernel
 *
 * Every kernel returns the number of operations it did (0 if an
 * allocation failed) and touches the first byte of every block it gets,
 * or every byte when w->memset_all is set (the memory pass).
 */
#include <string.h>

#ifndef K_NAME
#error "define K_NAME, K_H, K_ALLOC and K_FREE before including kernels.h"
#endif
#ifndef K_ATTR
#define K_ATTR
#endif

static inline void
K_NAME(touch)(const struct wl *w, void *p, size_t len, size_t v)
{
	if (w->memset_all)
		memset(p, (int)(v & 0xff), len);
	else
		BENCH_TOUCH(p, v);
}

/* Fixed size alloc + free pairs: the allocator's fastest path. */
static K_ATTR __attribute__((unused)) size_t
K_NAME(pair)(K_H h, const struct wl *w)
{
	for (size_t i = 0; i < w->ops; i++) {
		void *p = K_ALLOC(h, w->size, w->align);

		if (p == NULL)
			return 0;
		K_NAME(touch)(w, p, w->size, i);
		K_FREE(h, p, w->size, w->align);
	}
	return w->ops;
}

/* Batches allocated, then freed in reverse (stack-like). */
static K_ATTR __attribute__((unused)) size_t
K_NAME(lifo)(K_H h, const struct wl *w)
{
	for (size_t b = 0; b < w->ops; b++) {
		for (size_t i = 0; i < w->batch; i++) {
			void *p = K_ALLOC(h, w->size, w->align);

			if (p == NULL)
				return 0;
			K_NAME(touch)(w, p, w->size, i);
			w->ptrs[i] = p;
		}
		for (size_t i = w->batch; i-- > 0;)
			K_FREE(h, w->ptrs[i], w->size, w->align);
	}
	return w->ops * w->batch;
}

/* Random sizes: fill the live set, replace random slots, drain in a
 * random order.  Split so the memory pass can look at the peak. */
static K_ATTR __attribute__((unused)) size_t
K_NAME(rand_fill)(K_H h, const struct wl *w)
{
	for (size_t i = 0; i < w->live; i++) {
		size_t n = w->sizes[i];
		void *p = K_ALLOC(h, n, w->align);

		if (p == NULL)
			return 0;
		K_NAME(touch)(w, p, n, i);
		w->ptrs[i] = p;
		w->lens[i] = (uint32_t)n;
	}
	return w->live;
}

static K_ATTR __attribute__((unused)) size_t
K_NAME(rand_steady)(K_H h, const struct wl *w)
{
	for (size_t j = 0; j < w->ops; j++) {
		size_t s = w->slots[j], n = w->sizes[w->live + j];
		void *p;

		K_FREE(h, w->ptrs[s], w->lens[s], w->align);
		p = K_ALLOC(h, n, w->align);
		if (p == NULL) {
			w->lens[s] = 0;
			return 0;
		}
		K_NAME(touch)(w, p, n, j);
		w->ptrs[s] = p;
		w->lens[s] = (uint32_t)n;
	}
	return w->ops;
}

static K_ATTR __attribute__((unused)) void
K_NAME(rand_drain)(K_H h, const struct wl *w)
{
	for (size_t i = 0; i < w->live; i++) {
		size_t s = w->order[i];

		if (w->lens[s] != 0)
			K_FREE(h, w->ptrs[s], w->lens[s], w->align);
		w->lens[s] = 0;
	}
}

static K_ATTR __attribute__((unused)) size_t
K_NAME(rand)(K_H h, const struct wl *w)
{
	size_t ok = K_NAME(rand_fill)(h, w) && K_NAME(rand_steady)(h, w);

	K_NAME(rand_drain)(h, w);
	return ok ? w->live + w->ops : 0;
}

/* Many small blocks, then all released at once: one reset for an arena
 * (reset != NULL), one free per block (in allocation order) otherwise. */
static K_ATTR __attribute__((unused)) size_t
K_NAME(batch)(K_H h, const struct wl *w, void (*reset)(void *), void *rctx)
{
	for (size_t r = 0; r < w->ops; r++) {
		if (!K_NAME(rand_fill)(h, w))
			return 0;
		if (reset != NULL)
			reset(rctx);
		else
			for (size_t i = 0; i < w->live; i++)
				K_FREE(h, w->ptrs[i], w->lens[i], w->align);
	}
	return w->ops * w->live;
}

#ifdef K_REALLOC
/* A buffer grown from 16 B to 1 MiB by doubling, writing one byte in
 * every new page as a growing buffer would.  Operation: one realloc. */
static K_ATTR __attribute__((unused)) size_t
K_NAME(grow)(K_H h, const struct wl *w)
{
	for (size_t r = 0; r < w->ops; r++) {
		size_t len = GROW_FROM;
		unsigned char *p = K_ALLOC(h, len, w->align);

		if (p == NULL)
			return 0;
		BENCH_TOUCH(p, r);
		while (len < GROW_TO) {
			unsigned char *q = K_REALLOC(h, p, len, w->align, 2 * len);

			if (q == NULL) {
				K_FREE(h, p, len, w->align);
				return 0;
			}
			p = q;
			for (size_t o = len; o < 2 * len; o += 4096)
				BENCH_TOUCH(p + o, o);
			len *= 2;
		}
		K_FREE(h, p, len, w->align);
	}
	return w->ops * GROW_STEPS;
}
#endif

#undef K_NAME
#undef K_H
#undef K_ALLOC
#undef K_FREE
#undef K_REALLOC
#undef K_ATTR
