/*
 * gpa_notes.c - a thread's first block in each of many live GPAs costs
 * no more for the GPAs it already uses.
 *
 * A thread's first cache in a GPA leaves a note for its exit
 * (ba_gpa_exit_note() in lib/gpa/exit.c), and the notes of destroyed
 * GPAs are pruned by looking each one up among the live GPAs, with the
 * registry's lock taken by pthread_mutex_trylock().  Pruned at every
 * note, a thread in N live GPAs (a NIF whose resources each own one)
 * paid N x N steps for each first block.  The test counts the prunes,
 * through its own pthread_mutex_trylock() in front of libc's, so nothing
 * depends on time.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "beamalloc.h"
#include "tap.h"
#include "under.h"

#define NGPA 600

static atomic_size_t trylocks;

/* The library's calls reach libc's through this one (its PLT): exported
 * (the build's -fvisibility=hidden, -export-dynamic in mk/mt.am). */
__attribute__((visibility("default"))) int
pthread_mutex_trylock(pthread_mutex_t *m)
{
	static int (*next)(pthread_mutex_t *);

	if (next == NULL)
		next = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
		    "pthread_mutex_trylock");
	atomic_fetch_add(&trylocks, 1);
	return next(m);
}

int
main(void)
{
	static beamalloc_gpa *g[NGPA];
	static void *p[NGPA];
	size_t made = 0, prunes, pairs = 0;

	plan(3);
	if (UNDER_TSAN) {
		skip(3, "ThreadSanitizer's own pthread_mutex_trylock()");
		return done_testing();
	}
	for (size_t i = 0; i < NGPA; i++)
		if ((g[i] = beamalloc_gpa_create(beamalloc_libc(), NULL)) !=
		    NULL)
			made++;
	ok(made == NGPA, "%d GPAs made", NGPA);
	atomic_store(&trylocks, 0);
	for (size_t i = 0; i < made; i++)
		p[i] = beamalloc_alloc(beamalloc_gpa_allocator(g[i]), 64);
	prunes = atomic_load(&trylocks);
	/* A prune once the notes have doubled since the last: about
	 * log2(NGPA / 8), 7 here; at every note from the 8th, 592. */
	ok(prunes <= 16,
	    "first blocks in %d live GPAs: %zu prunes of the thread's notes",
	    NGPA, prunes);
	for (size_t i = 0; i < made; i++) {
		pairs += p[i] != NULL;
		beamalloc_free(beamalloc_gpa_allocator(g[i]), p[i], 64);
		if (beamalloc_gpa_destroy(g[i]) != 0)
			pairs = 0;
	}
	ok(pairs == made, "each GPA gave its block and found no leak");
	return done_testing();
}
