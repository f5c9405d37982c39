/*
 * check.c - the GPA's corruption checks without a memory checker:
 * canary bytes after each block's requested length, junk written over
 * freed and new blocks, and a quarantine that holds freed blocks back
 * (FIFO, up to a number of bytes) so that a write after free is still
 * there to be seen when the block leaves it.  alloc.c and the fast
 * paths in gpa.h decide when each runs, and report what they find.
 *
 * Under a memory checker (g->tools) the bytes looked at here are
 * inaccessible to the program (slack after a block, a freed slot): they
 * are opened for the look and closed again, so the checker reports the
 * program's own accesses only.
 */
#include <pthread.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* ------------------------------------------------------------------------
 * Data: the quarantine, a ring of entries from the backing
 * ---------------------------------------------------------------------- */

struct ba_quar {
	pthread_mutex_t lock;
	beamalloc_allocator backing;
	_Atomic size_t *held;		/* the GPA's backing_bytes */
	struct ba_qent *ring;
	size_t cap, head, n;		/* head: the oldest */
	size_t bytes, limit;
};

/* ------------------------------------------------------------------------
 * Canaries and junk
 * ---------------------------------------------------------------------- */

/* The library's own access to bytes the checker sees as off limits. */
static void
open_bytes(const struct beamalloc_gpa *g, unsigned char *p, size_t n)
{
	if (g->tools) {
		BA_ASAN_UNPOISON(p, n);
		BA_VG_QUIET_BEGIN();
	}
}

static void
close_bytes(const struct beamalloc_gpa *g, unsigned char *p, size_t n)
{
	if (g->tools) {
		BA_VG_QUIET_END();
		BA_ASAN_POISON(p, n);
	}
}

/* Any span: below 8 bytes, byte by byte (no word around it is known to
 * be readable). */
bool
ba_bytes_are(const void *p, size_t n, unsigned char v)
{
	const unsigned char *b = p;

	if (n >= 8)
		return ba_span_is(b, n, BA_BYTES8(v));
	while (n-- > 0)
		if (*b++ != v)
			return false;
	return true;
}

/* Any span, and no byte outside it touched: a short one inline, a long
 * one (a large block's) by memset's wide stores. */
static void
fill(unsigned char *p, size_t n, unsigned char v)
{
	if (n >= 8 && n <= SMALL_MAX)
		ba_span_fill(p, n, BA_BYTES8(v));
	else
		memset(p, v, n);
}

void
ba_chk_canary_set(const struct beamalloc_gpa *g, unsigned char *p,
    size_t len, size_t room)
{
	if (!g->canary || room <= len)
		return;
	room = ba_canary_end(len, room);
	open_bytes(g, p + len, room - len);
	fill(p + len, room - len, BA_CANARY_BYTE);
	close_bytes(g, p + len, room - len);
}

void
ba_chk_fill_new(const struct beamalloc_gpa *g, unsigned char *p, size_t len,
    size_t room)
{
	if (g->junk) {
		fill(p, len, BA_JUNK_NEW);
		/* Still uninitialized to memcheck. */
		if (g->tools)
			BA_VG_MAKE_UNDEFINED(p, len);
	}
	ba_chk_canary_set(g, p, len, room);
}

void
ba_chk_fill_grown(const struct beamalloc_gpa *g, unsigned char *p, size_t len,
    size_t new_len)
{
	if (!g->junk || new_len <= len)
		return;
	/* The caller's bytes now (they may have been the canary's). */
	if (g->tools)
		BA_ASAN_UNPOISON(p + len, new_len - len);
	fill(p + len, new_len - len, BA_JUNK_NEW);
	if (g->tools)
		BA_VG_MAKE_UNDEFINED(p + len, new_len - len);
}

/* The canary span of a block of room bytes from the backing, opened to
 * a checker (ASan) while the backing may copy the block (a remap, which
 * reads all room bytes) or hand those bytes to the caller (a resize that
 * grows), and closed again when the backing did neither.  Without this
 * the checker blames the backing's copy, or the caller's first write
 * past the old length. */
void
ba_chk_canary_expose(const struct beamalloc_gpa *g, unsigned char *p,
    size_t len, size_t room, bool open)
{
	size_t n;

	if (!g->canary || !g->tools || room <= len)
		return;
	n = ba_canary_end(len, room) - len;
	if (open)
		BA_ASAN_UNPOISON(p + len, n);
	else
		BA_ASAN_POISON(p + len, n);
}

bool
ba_chk_canary_ok(const struct beamalloc_gpa *g, unsigned char *p, size_t len,
    size_t room)
{
	size_t n;
	bool ok;

	if (!g->canary || room <= len)
		return true;
	n = ba_canary_end(len, room) - len;
	open_bytes(g, p + len, n);
	ok = ba_bytes_are(p + len, n, BA_CANARY_BYTE);
	close_bytes(g, p + len, n);
	return ok;
}

/* The junk of a freed block of room bytes is bounded as a slot's (gpa.h)
 * from 8 bytes to SMALL_MAX; any other span is junked whole, and byte by
 * byte below 8: a large block shrunk by resize may be shorter than the
 * word the inline helpers would read and write around it (found by a
 * review: a 4-byte block at the start of a page). */
static bool
junk_as_slot(size_t room)
{
	return room >= 8 && room <= SMALL_MAX;
}

/* Called before the block is announced freed to a checker: the caller
 * closes it then. */
void
ba_chk_fill_freed(const struct beamalloc_gpa *g, unsigned char *p,
    size_t room)
{
	if (!g->junk)
		return;
	if (g->tools) {
		BA_ASAN_UNPOISON(p, room);
		BA_VG_QUIET_BEGIN();
	}
	if (junk_as_slot(room))
		ba_slot_junk_fill(p, room);
	else
		memset(p, BA_JUNK_FREED, room);
	if (g->tools)
		BA_VG_QUIET_END();
}

bool
ba_chk_freed_ok(const struct beamalloc_gpa *g, unsigned char *p, size_t room)
{
	bool ok;

	if (!g->junk)
		return true;
	open_bytes(g, p, room);
	ok = junk_as_slot(room) ? ba_slot_junk_is(p, room) :
	    ba_bytes_are(p, room, BA_JUNK_FREED);
	close_bytes(g, p, room);
	return ok;
}

/* ------------------------------------------------------------------------
 * Quarantine
 * ---------------------------------------------------------------------- */

/* The quarantine's own memory, from the backing and counted in the
 * GPA's backing_bytes, as the rest of its bookkeeping is. */
static void *
quar_get(beamalloc_allocator backing, _Atomic size_t *held, size_t len)
{
	void *p = ba_raw_alloc(backing, len, BEAMALLOC_MIN_ALIGN, 0);

	if (p != NULL)
		atomic_fetch_add_explicit(held, len, memory_order_relaxed);
	return p;
}

static void
quar_put(beamalloc_allocator backing, _Atomic size_t *held, void *p,
    size_t len)
{
	ba_raw_free(backing, p, len, BEAMALLOC_MIN_ALIGN, 0);
	atomic_fetch_sub_explicit(held, len, memory_order_relaxed);
}

struct ba_quar *
ba_quar_new(beamalloc_allocator backing, size_t limit, _Atomic size_t *held)
{
	struct ba_quar *q = quar_get(backing, held, sizeof(*q));

	if (q == NULL)
		return NULL;
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	q->backing = backing;
	q->held = held;
	q->limit = limit;
	return q;
}

void
ba_quar_delete(struct ba_quar *q)
{
	if (q == NULL)
		return;
	if (q->ring != NULL)
		quar_put(q->backing, q->held, q->ring,
		    q->cap * sizeof(q->ring[0]));
	pthread_mutex_destroy(&q->lock);
	quar_put(q->backing, q->held, q, sizeof(*q));
}

size_t
ba_quar_limit(const struct ba_quar *q)
{
	return q->limit;
}

/* Twice the room, the entries unwrapped to the start.  Under the lock. */
static bool
quar_grow(struct ba_quar *q)
{
	size_t cap = q->cap != 0 ? q->cap * 2 : 64;
	struct ba_qent *r = quar_get(q->backing, q->held, cap * sizeof(*r));

	if (r == NULL)
		return false;
	for (size_t i = 0; i < q->n; i++)
		r[i] = q->ring[(q->head + i) % q->cap];
	if (q->ring != NULL)
		quar_put(q->backing, q->held, q->ring,
		    q->cap * sizeof(q->ring[0]));
	q->ring = r;
	q->cap = cap;
	q->head = 0;
	return true;
}

bool
ba_quar_push(struct ba_quar *q, const struct ba_qent *e)
{
	bool ok = true;

	pthread_mutex_lock(&q->lock);
	if (q->n == q->cap)
		ok = quar_grow(q);
	if (ok) {
		q->ring[(q->head + q->n++) % q->cap] = *e;
		q->bytes += e->room;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

bool
ba_quar_pop(struct ba_quar *q, size_t limit, struct ba_qent *out)
{
	bool any;

	pthread_mutex_lock(&q->lock);
	any = q->n > 0 && q->bytes > limit;
	if (any) {
		*out = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
		q->bytes -= out->room;
	}
	pthread_mutex_unlock(&q->lock);
	return any;
}

/* fork(), as ba_depot_fork(). */
void
ba_quar_fork(struct ba_quar *q, enum ba_fork ph)
{
	if (q != NULL)
		ba_fork_mutex(&q->lock, ph, false);
}
