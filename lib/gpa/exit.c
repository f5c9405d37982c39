/*
 * exit.c - thread exit: a thread that ends gives its GPA cache slots
 * back, through one pthread key per process and a registry of live GPAs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * Thread exit: a thread that ends gives its cache slots back.  One
 * pthread key per process; its value is the list of the slots the thread
 * claimed, in any GPA.  At exit its destructor hands each cache's
 * magazines to the depots, settles its credit, and frees the slot (a
 * tombstone) and the cache (g->tc_free) for the next thread.  A GPA may
 * be destroyed before a thread that used it ends: thread-safe GPAs are
 * registered here while they live, and the destructor touches only
 * registered ones, under the registry's lock, which destroy takes first.
 * (The global GPA too, when the library is unloaded: global.c.)
 * ---------------------------------------------------------------------- */

struct tclaim {
	struct tclaim *next;
	struct beamalloc_gpa *g;
	uint64_t gid;			/* g->gid: g's address may be reused */
	size_t slot;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct beamalloc_gpa *reg_live;	/* through reg_next */
static uint64_t reg_gid;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_ok;

/* Under reg_lock. */
static bool
reg_has(const struct beamalloc_gpa *g, uint64_t gid)
{
	for (const struct beamalloc_gpa *r = reg_live; r != NULL;
	    r = r->reg_next)
		if (r == g)
			return r->gid == gid;
	return false;
}

void
ba_gpa_reg_add(struct beamalloc_gpa *g)
{
	pthread_mutex_lock(&reg_lock);
	g->gid = ++reg_gid;
	g->reg_next = reg_live;
	reg_live = g;
	pthread_mutex_unlock(&reg_lock);
}

/* Waits for any thread giving back a slot of g. */
void
ba_gpa_reg_remove(struct beamalloc_gpa *g)
{
	pthread_mutex_lock(&reg_lock);
	for (struct beamalloc_gpa **p = &reg_live; *p != NULL;
	    p = &(*p)->reg_next)
		if (*p == g) {
			*p = g->reg_next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

/* The ending thread's cache in slot i goes back: its magazines to the
 * depots (waiting out a ba_gpa_steal_idle() at work on them), its credit into
 * the counters; its block count stays with the cache, which stays on
 * g->tcaches for stats and trims.  Then the slot is a tombstone and the
 * cache is free. */
static void
slot_release(struct beamalloc_gpa *g, size_t i)
{
	uintptr_t k = thread_key();
	struct tcache *tc = atomic_load_explicit(&g->tcs[i],
	    memory_order_acquire);

	if (atomic_load_explicit(&g->tkey[i], memory_order_relaxed) != k ||
	    tc == &ba_gpa_no_tc ||
	    __atomic_load_n(&tc->owner, __ATOMIC_RELAXED) != k)
		return;
	ba_gpa_tc_retire(g, tc);
	atomic_store_explicit(&g->tcs[i], &ba_gpa_no_tc, memory_order_release);
	atomic_store_explicit(&g->tkey[i], TKEY_TOMB, memory_order_release);
	ba_gpa_tc_free_put(g, tc);
}

/* The key's destructor (once per thread, and again if a later
 * destructor claims a slot anew). */
static void
thread_gone(void *arg)
{
	struct tclaim *cl = arg, *next;

	pthread_mutex_lock(&reg_lock);
	for (; cl != NULL; cl = next) {
		next = cl->next;
		if (reg_has(cl->g, cl->gid))
			slot_release(cl->g, cl->slot);
		free(cl);
	}
	pthread_mutex_unlock(&reg_lock);
}

static void
exit_init(void)
{
	exit_ok = pthread_key_create(&exit_key, thread_gone) == 0;
}

/* The library may be unloaded (a NIF's dlclose): its destructor must not
 * be called after that.  Threads still alive then keep their slots, as
 * before there was a hook, and their lists (a few words each). */
__attribute__((destructor)) static void
exit_fini(void)
{
	if (exit_ok) {
		exit_ok = false;
		pthread_key_delete(exit_key);
	}
}

/* The calling thread claimed slot i of g: note it for its exit.  Notes
 * of destroyed GPAs are dropped now and then, when the registry is free
 * (never waited for here: this may run inside a slot_release() of a GPA
 * over this one).  Without memory or a key the slot stays claimed, as a
 * thread that ended without the hook leaves it. */
void
ba_gpa_exit_note(struct beamalloc_gpa *g, size_t i)
{
	struct tclaim *head, *cl;
	size_t n = 0;

	pthread_once(&exit_once, exit_init);
	if (!exit_ok)
		return;
	head = pthread_getspecific(exit_key);
	for (cl = head; cl != NULL; cl = cl->next)
		n++;
	if (n >= 8 && pthread_mutex_trylock(&reg_lock) == 0) {
		for (struct tclaim **p = &head; (cl = *p) != NULL;)
			if (!reg_has(cl->g, cl->gid)) {
				*p = cl->next;
				free(cl);
			} else
				p = &cl->next;
		pthread_mutex_unlock(&reg_lock);
	}
	if ((cl = malloc(sizeof(*cl))) != NULL) {
		*cl = (struct tclaim){ head, g, g->gid, i };
		head = cl;
	}
	(void)pthread_setspecific(exit_key, head);
}
