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
	/* Of the list from here: its length, and its length after the
	 * last prune (ba_gpa_exit_note()). */
	size_t len, kept;
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

/* ------------------------------------------------------------------------
 * fork(): the child has only the thread that forked, and a lock another
 * thread held at that moment would stay held there: the child's first
 * call needing it (a new cache, a slab, a trim, a large block) waited
 * forever.  So every lock of every thread-safe GPA is taken before the
 * fork, as glibc's malloc takes its arenas', and let go after it.  The
 * order is the one the GPA's paths nest them in: the decay's (its trim
 * takes a GPA's), the registry's (a thread's exit takes a GPA's under
 * it), then each GPA, newest first (a GPA over another GPA is newer
 * than its backing, and calls it with its own locks held): a trim's and
 * the shared cache's, the depots', g->lock, the large blocks', the
 * spare magazines', then the leaves; the guard pool, global, last (then
 * the wide allocator's registry and the symbolizer's lock, by their own
 * handlers: wide.c, symbolize.c).
 * ---------------------------------------------------------------------- */

static void
gpa_fork(struct beamalloc_gpa *g, enum ba_fork ph)
{
	struct tcache *head = NULL, *first;

	ba_fork_mutex(&g->steal_lock, ph, false);
	ba_fork_mutex(&g->shared_lock, ph, true);
	if (ph == BA_FORK_PREPARE)
		/* Depots before g->lock, which links new caches (only ever
		 * in front): until none came in meanwhile. */
		for (;;) {
			pthread_mutex_lock(&g->lock);
			if ((first = g->tcaches) == head)
				break;
			pthread_mutex_unlock(&g->lock);
			for (struct tcache *tc = first; tc != head;
			    tc = tc->next)
				for (size_t c = 0; c < NCLASS; c++)
					pthread_mutex_lock(&tc->dep[c].lock);
			head = first;
		}
	else {
		for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
			for (size_t c = 0; c < NCLASS; c++)
				ba_fork_mutex(&tc->dep[c].lock, ph, false);
		ba_fork_mutex(&g->lock, ph, false);
	}
	ba_fork_mutex(&g->large_lock, ph, false);
	ba_fork_mutex(&g->mspare_lock, ph, false);
	ba_quar_fork(g->quar, ph);
	ba_depot_fork(g->traces, ph);
	if (ph != BA_FORK_CHILD)
		return;
	/* The caches that the parent's other threads were inside stay
	 * busy in the child, and one caught rewriting its count keeps its
	 * seqlock odd: the first free of another thread's block waited for
	 * them to leave (ba_gpa_go_shared()), the stats to finish.  No
	 * other thread runs here, so no fast free is in flight; such a
	 * cache's count may be off by what its thread was counting. */
	atomic_store(&g->shared, SHARED_YES);
	for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
		if ((tc->seq & 1) != 0)
			tc->seq++;
	/* A leak check another thread was in kept g->scanning up for good:
	 * no trim of the child's ever gave a slab back (found by a review:
	 * 5.8 MB held after 4 MB of blocks were freed and trimmed, 195 KB
	 * forked outside the check).  The forking thread's own walks stay
	 * (a report callback of its leak check forked). */
	g->scanning = 0;
	for (struct scan_frame **p = &g->scans; *p != NULL;)
		if ((*p)->thread == thread_key()) {
			g->scanning++;
			p = &(*p)->next;
		} else
			*p = (*p)->next;
}

static void
fork_all(enum ba_fork ph)
{
	if (ph == BA_FORK_PREPARE) {
		ba_gpa_decay_fork(ph);
		pthread_mutex_lock(&reg_lock);
	}
	for (struct beamalloc_gpa *g = reg_live; g != NULL; g = g->reg_next)
		gpa_fork(g, ph);
	if (ph == BA_FORK_PREPARE)
		ba_guard_fork(ph);
	else {
		ba_guard_fork(ph);
		ba_fork_mutex(&reg_lock, ph, false);
		ba_gpa_decay_fork(ph);
	}
}

static void fork_prepare(void) { fork_all(BA_FORK_PREPARE); }
static void fork_parent(void) { fork_all(BA_FORK_PARENT); }
static void fork_child(void) { fork_all(BA_FORK_CHILD); }

/* The wide allocator's and the symbolizer's handlers first, so that
 * their prepare runs after this one: a GPA over the wide allocator calls
 * it with its locks held, and a report under the shared cache's lock
 * symbolizes. */
static void
fork_init(void)
{
	ba_wide_fork_init();
	ba_symbols_fork_init();
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void
ba_gpa_reg_add(struct beamalloc_gpa *g)
{
	static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

	pthread_once(&fork_once, fork_init);
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
 * thread that ended without the hook leaves it.  A prune walks the
 * registry for each note, so it waits for the list to double: one at
 * every note, with a thread's notes in N live GPAs (a NIF's resources
 * each owning one), made a GPA's first allocation on that thread cost
 * N^2 steps (3.7 ms with 1,600). */
void
ba_gpa_exit_note(struct beamalloc_gpa *g, size_t i)
{
	struct tclaim *head, *cl;
	size_t n, kept;

	pthread_once(&exit_once, exit_init);
	if (!exit_ok)
		return;
	head = pthread_getspecific(exit_key);
	n = head != NULL ? head->len : 0;
	kept = head != NULL ? head->kept : 0;
	if (n >= 8 && n >= 2 * kept &&
	    pthread_mutex_trylock(&reg_lock) == 0) {
		n = 0;
		for (struct tclaim **p = &head; (cl = *p) != NULL;)
			if (!reg_has(cl->g, cl->gid)) {
				*p = cl->next;
				free(cl);
			} else {
				n++;
				p = &cl->next;
			}
		pthread_mutex_unlock(&reg_lock);
		kept = n;
	}
	if ((cl = malloc(sizeof(*cl))) != NULL) {
		*cl = (struct tclaim){ head, g, g->gid, i, n + 1, kept };
		head = cl;
	} else if (head != NULL) {
		head->len = n;
		head->kept = kept;
	}
	(void)pthread_setspecific(exit_key, head);
}
