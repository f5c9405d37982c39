/*
 * quarantine.c - freed blocks wait here, junk-filled, until more than
 * the quarantine's limit of bytes wait; each is checked as it leaves.
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
 * Quarantine: freed blocks (junk-filled, already counted freed) wait
 * here, oldest first, until more than its limit of bytes wait; each is
 * checked for writes as it leaves.
 * ---------------------------------------------------------------------- */

/* A block leaves quarantine: checked, then given back to tc's magazine
 * (a small slot; tc NULL: the calling thread's, claimed if claim is set,
 * else the shared one) or to the backing. */
static void
quar_release(struct beamalloc_gpa *g, struct tcache *tc,
    const struct ba_qent *e, bool claim)
{
	unsigned char *p = (unsigned char *)e->p, *rec;
	struct where w;

	if (e->large) {
		union large_copy copy;
		struct large *l;
		bool found;

		if (!ba_chk_freed_ok(g, p, e->len)) {
			lock(g, &g->large_lock);
			l = ba_gpa_lg_find(g, e->p);
			found = l != NULL;
			if (found)
				memcpy(&copy, l, g->lstride);
			unlock(g, &g->large_lock);
			ba_gpa_report_large(g,
			    BEAMALLOC_REPORT_WRITE_AFTER_FREE, e->p,
			    found ? &copy.l : NULL, 0, 0, 0);
		}
		ba_gpa_large_release(g, p, e->room, (size_t)1 << e->lalign, 0);
		return;
	}
	if (!slab_find(g, e->p, &w))
		return;			/* never: the slab holds it */
	if (!ba_chk_freed_ok(g, p, e->room)) {
		ba_gpa_report_slot(g, BEAMALLOC_REPORT_WRITE_AFTER_FREE, e->p,
		    &w, 0, 0, 0);
		/* Reported once: not again when the slot is handed out. */
		ba_chk_fill_freed(g, p, e->room);
		if (g->tools)
			BA_TOOL_NOACCESS(p, e->room);
	}
	rec = w.recs + (slot_index(e->p - w.base, w.cls) << g->rec_shift);
	if (tc == NULL && (tc = tcache_of(g)) == NULL &&
	    (!claim || (tc = ba_gpa_tcache_slow(g, NULL)) == NULL)) {
		/* As in ba_gpa_free_core(): no cache of its own, the shared
		 * one. */
		pthread_mutex_lock(&g->shared_lock);
		if ((tc = ba_gpa_shared_tc(g)) != NULL)
			ba_gpa_slot_push_held(g, tc, p, rec, w.cls);
		else
			ba_gpa_slot_lost(g, rec);
		pthread_mutex_unlock(&g->shared_lock);
		return;
	}
	ba_gpa_slot_push_held(g, tc, p, rec, w.cls);
}

/* Hold a freed block, letting the oldest go past the limit; false when
 * there is no room to hold it (the caller releases it now).  The
 * entries let go go to tc (NULL: the caller's cache). */
bool
ba_gpa_quar_hold(struct beamalloc_gpa *g, struct tcache *tc,
    const struct ba_qent *e)
{
	struct ba_qent out;

	if (!ba_quar_push(g->quar, e))
		return false;
	while (ba_quar_pop(g->quar, ba_quar_limit(g->quar), &out))
		quar_release(g, tc, &out, true);
	return true;
}

/* Let every held block go (trim, leak check, destroy), checking each.
 * A thread without a cache here (the decay thread) claims none: the
 * slots go to the shared cache, which the trim that follows empties. */
void
ba_gpa_quar_drain(struct beamalloc_gpa *g)
{
	struct ba_qent out;

	while (ba_quar_pop(g->quar, 0, &out))
		quar_release(g, NULL, &out, false);
}
