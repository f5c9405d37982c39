/*
 * locked.c - the thread-safe wrapper: four threads share one arena, then
 * one fixed buffer, through it.  Whatever the interleaving, every block
 * is distinct and keeps its owner's bytes, and the fixed buffer hands out
 * exactly what it holds.  Nothing here depends on the threads overlapping.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

#define THREADS 4
#define PER_THREAD 2000
#define BLOCK 24

struct worker {
	beamalloc_allocator a;
	int id;
	unsigned char *blocks[PER_THREAD];
	size_t got;
	bool until_full;
};

static void *
work(void *arg)
{
	struct worker *w = arg;

	for (size_t i = 0; i < PER_THREAD; i++) {
		unsigned char *p = beamalloc_alloc(w->a, BLOCK);

		if (p == NULL) {
			if (w->until_full)
				break;
			continue;
		}
		memset(p, w->id, BLOCK);
		w->blocks[w->got++] = p;
		/* Some frees and resizes too: the arena's last block. */
		if (i % 7 == 0 && beamalloc_resize(w->a, p, BLOCK, 8, BLOCK / 2))
			memset(p, w->id, BLOCK / 2);
		if (i % 7 == 0) {
			beamalloc_free(w->a, p, BLOCK / 2);
			w->got--;
		}
	}
	return NULL;
}

/* Run the workers; the number of blocks whose bytes changed. */
static size_t
run(beamalloc_allocator a, struct worker *w, bool until_full, size_t *total)
{
	pthread_t th[THREADS];
	size_t damaged = 0;

	*total = 0;
	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].a = a;
		w[i].id = i + 1;
		w[i].until_full = until_full;
		if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
			bail("pthread_create");
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < THREADS; i++) {
		*total += w[i].got;
		for (size_t k = 0; k < w[i].got; k++)
			for (size_t j = 0; j < BLOCK; j++)
				if (w[i].blocks[k][j] != w[i].id) {
					damaged++;
					break;
				}
	}
	return damaged;
}

static struct worker workers[THREADS];

static void
shared_arena(void)
{
	beamalloc_arena *arena = beamalloc_arena_create(beamalloc_libc());
	beamalloc_locked l;
	size_t total;

	if (arena == NULL)
		bail("arena_create");
	is_int(beamalloc_locked_init(&l, beamalloc_arena_allocator(arena)), 0,
	    "locked_init: 0");
	is_size(run(beamalloc_locked_allocator(&l), workers, false, &total),
	    0, "4 threads on one arena: no block damaged by another");
	is_size(total, THREADS * (PER_THREAD - PER_THREAD / 7 - 1),
	    "every thread got each block it asked for");
	is_size(beamalloc_native_align(beamalloc_locked_allocator(&l)),
	    beamalloc_native_align(beamalloc_arena_allocator(arena)),
	    "native alignment: the child's");
	beamalloc_locked_destroy(&l);
	beamalloc_arena_destroy(arena);
}

static void
shared_fixed(void)
{
	static alignas(8) unsigned char buf[THREADS * 1000 * BLOCK];
	beamalloc_fixed fb;
	beamalloc_locked l;
	size_t total, kept = 0;

	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	if (beamalloc_locked_init(&l, beamalloc_fixed_allocator(&fb)) != 0)
		bail("locked_init");
	is_size(run(beamalloc_locked_allocator(&l), workers, true, &total),
	    0, "4 threads on one fixed buffer: no block damaged");
	for (int i = 0; i < THREADS; i++)
		for (size_t k = 0; k < workers[i].got; k++)
			if (workers[i].blocks[k] >= buf &&
			    workers[i].blocks[k] + BLOCK <= buf + sizeof(buf))
				kept++;
	is_size(kept, total, "all of them inside the buffer");
	ok(fb.ptr - fb.start <= (ptrdiff_t)sizeof(buf) &&
	    (size_t)(fb.ptr - fb.start) >= total * BLOCK,
	    "the bump pointer covers them all (%zu blocks)", total);
	errno = 0;
	ok(beamalloc_alloc(beamalloc_locked_allocator(&l), BLOCK) == NULL &&
	    errno == ENOMEM, "full: NULL + ENOMEM through the lock");
	beamalloc_locked_destroy(&l);
	beamalloc_locked_destroy(NULL);
}

static void
careless(void)
{
	testalloc *t = testalloc_new();
	beamalloc_locked l;
	beamalloc_allocator a;
	void *p;

	beamalloc_locked_init(&l, testalloc_allocator(t));
	a = beamalloc_locked_allocator(&l);
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 8, 16) == NULL && errno != 0,
	    "the child's refusal (16 from an 8-only backing) passes through");
	errno = 0;
	ok(beamalloc_alloc(a, (size_t)-1) == NULL && errno == ENOMEM,
	    "SIZE_MAX bytes: NULL + ENOMEM");
	p = beamalloc_alloc(a, 100);
	ok(p != NULL && beamalloc_resize(a, p, 100, 8, 50),
	    "resize through the lock");
	p = beamalloc_realloc(a, p, 50, 8, 5000);
	ok(p != NULL, "realloc through the lock");
	beamalloc_free(a, p, 5000);
	beamalloc_free(a, NULL, 0);
	ok(t->nblocks == 0 && t->bad_calls == 0,
	    "every call reached the child, exactly");
	beamalloc_locked_destroy(&l);
	free(t);
}

int
main(void)
{
	shared_arena();
	shared_fixed();
	careless();
	return done_testing();
}
