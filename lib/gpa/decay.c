/*
 * decay.c - memory goes back without trim or destroy.
 *
 * A BEAM node runs for months and erlang:memory(system) counts what NIFs
 * hold: a GPA whose blocks were all freed should not keep its slabs until
 * someone calls beamalloc_gpa_trim().  One thread per copy of the library
 * (started when the first GPA with decay_ms set is made) wakes every
 * DECAY_TICK_MS and trims each registered GPA whose decay_ms has passed
 * since its last trim: the caches of threads not inside it and every
 * empty slab go back to the backing, as beamalloc_gpa_trim() does.  A
 * thread in the middle of a call keeps its cache; a busy GPA loses only
 * its idle caches, which it refills.
 *
 * The thread is joined when the library is unloaded (a NIF that links
 * libbeamalloc.a is dlclosed when its module is purged: no thread may
 * still run its code then).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "gpa.h"

#define DECAY_TICK_MS 100

/* ------------------------------------------------------------------------
 * The registry and its thread
 * ---------------------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the thread sleeps on it */
	pthread_cond_t done;		/* a trim finished (busy cleared) */
	struct beamalloc_gpa *list;	/* through decay_next */
	struct beamalloc_gpa *busy;	/* being trimmed, lock not held */
	pthread_t thread;
	bool running, stop;
} dk = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The GPA first due, or NULL; under dk.lock. */
static struct beamalloc_gpa *
due(uint64_t now)
{
	for (struct beamalloc_gpa *g = dk.list; g != NULL; g = g->decay_next)
		if (now - g->decay_last >= g->decay_ms)
			return g;
	return NULL;
}

static void *
decay_main(void *arg)
{
	struct timespec until;
	struct beamalloc_gpa *g;

	(void)arg;
	pthread_mutex_lock(&dk.lock);
	while (!dk.stop) {
		while ((g = due(now_ms())) != NULL && !dk.stop) {
			dk.busy = g;
			pthread_mutex_unlock(&dk.lock);
			ba_gpa_decay_trim(g);
			pthread_mutex_lock(&dk.lock);
			g->decay_last = now_ms();
			dk.busy = NULL;
			pthread_cond_broadcast(&dk.done);
		}
		/* The wake condition uses CLOCK_REALTIME; a jump only makes
		 * one tick early or late. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += DECAY_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!dk.stop)
			(void)pthread_cond_timedwait(&dk.wake, &dk.lock,
			    &until);
	}
	pthread_mutex_unlock(&dk.lock);
	return NULL;
}

/* fork() (exit.c's handler, before any GPA's locks: the trim waited for
 * here takes them): the child must not inherit a trim half done (its GPA
 * locks would stay held) nor believe the thread runs there too.  The
 * child's GPAs stay registered; a thread starts again with the next GPA
 * made with decay.  Unless the thread forks itself, from a report
 * callback of its trim (a write after free found as the quarantine is
 * drained): it waited for its own trim forever (found by a review).
 * Its trim holds no GPA lock as it reports, and it goes on in the
 * child, the decay thread there. */
void
ba_gpa_decay_fork(enum ba_fork ph)
{
	bool self;

	if (ph == BA_FORK_PREPARE) {
		pthread_mutex_lock(&dk.lock);
		self = dk.running && pthread_equal(dk.thread, pthread_self());
		while (dk.busy != NULL && !self)
			pthread_cond_wait(&dk.done, &dk.lock);
		return;
	}
	if (ph == BA_FORK_CHILD)
		dk.running = dk.running &&
		    pthread_equal(dk.thread, pthread_self());
	pthread_mutex_unlock(&dk.lock);
}

/* Signals go to the program's own threads, never to ours. */
static bool
decay_start(void)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&dk.thread, NULL, decay_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0;
}

/* The library is being unloaded (or the process ends): stop the thread
 * before its code goes away. */
static void __attribute__((destructor))
decay_stop(void)
{
	pthread_mutex_lock(&dk.lock);
	if (!dk.running) {
		pthread_mutex_unlock(&dk.lock);
		return;
	}
	dk.stop = true;
	pthread_cond_signal(&dk.wake);
	pthread_mutex_unlock(&dk.lock);
	pthread_join(dk.thread, NULL);
	dk.running = false;
}

/* ------------------------------------------------------------------------
 * Entry points for the GPA (create.c, leak.c)
 * ---------------------------------------------------------------------- */

/* g trimmed every ms from now on.  False if the thread could not be
 * started: the GPA then keeps its memory until trimmed, as without decay
 * (and decay_ms stays 0). */
bool
ba_gpa_decay_register(struct beamalloc_gpa *g, unsigned ms)
{
	bool ok = true;

	pthread_mutex_lock(&dk.lock);
	if (!dk.running && !dk.stop)
		ok = dk.running = decay_start();
	if (ok) {
		g->decay_ms = ms;
		g->decay_last = now_ms();
		g->decay_next = dk.list;
		dk.list = g;
	}
	pthread_mutex_unlock(&dk.lock);
	return ok;
}

/* Before g is destroyed: out of the list, and not being trimmed.  The
 * wait is no cancellation point (found by a review: a thread cancelled
 * in beamalloc_gpa_destroy() while the decay trimmed its GPA went with
 * dk.lock held, and the decay thread, the next GPA with decay and exit
 * waited for it forever). */
void
ba_gpa_decay_unregister(struct beamalloc_gpa *g)
{
	int cancel;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&dk.lock);
	while (dk.busy == g)
		pthread_cond_wait(&dk.done, &dk.lock);
	pthread_setcancelstate(cancel, NULL);
	for (struct beamalloc_gpa **p = &dk.list; *p != NULL;
	    p = &(*p)->decay_next)
		if (*p == g) {
			*p = g->decay_next;
			break;
		}
	pthread_mutex_unlock(&dk.lock);
}
