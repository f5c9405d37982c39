/*
 * check.c - the GPA's corruption checks without a memory checker:
 * canary bytes after each block's requested length, junk written over
 * freed and new blocks, and a quarantine that holds freed blocks back
 * (FIFO, up to a number of bytes) so that a write after free is still
 * there to be seen when the block leaves it.  alloc.c decides when each
 * runs and reports what they find.
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

/* Every byte of [p, p + n) is v.  Blocks of 64 and 32 bytes or'd
 * together in two 16-byte vectors (no branch per word), then the rest a word at a
 * time, the last word read overlapping; below 8 bytes, byte by byte. */
typedef uint64_t ba_v16 __attribute__((vector_size(16), aligned(1)));

static bool
all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
	uint64_t w = 0x0101010101010101ull * v, acc = 0, x;

	if (n < 8) {
		while (n-- > 0)
			if (*p++ != v)
				return false;
		return true;
	}
	if (n >= 32) {
		ba_v16 pat = { w, w }, a0 = { 0, 0 }, a1 = { 0, 0 }, b0, b1;

		for (; n >= 64; p += 64, n -= 64) {
			ba_v16 b2, b3;

			memcpy(&b0, p, 16);
			memcpy(&b1, p + 16, 16);
			memcpy(&b2, p + 32, 16);
			memcpy(&b3, p + 48, 16);
			a0 |= (b0 ^ pat) | (b2 ^ pat);
			a1 |= (b1 ^ pat) | (b3 ^ pat);
		}
		for (; n >= 32; p += 32, n -= 32) {
			memcpy(&b0, p, 16);
			memcpy(&b1, p + 16, 16);
			a0 |= b0 ^ pat;
			a1 |= b1 ^ pat;
		}
		a0 |= a1;
		acc = a0[0] | a0[1];
		p -= 8;			/* the tail below reads in range */
		n += 8;
	}
	for (; n > 8; p += 8, n -= 8) {
		memcpy(&x, p, 8);
		acc |= x ^ w;
	}
	memcpy(&x, p + n - 8, 8);
	return (acc | (x ^ w)) == 0;
}

bool
ba_bytes_are(const void *p, size_t n, unsigned char v)
{
	return all_bytes(p, n, v);
}

/* What the checks cover, bounded as OpenBSD's malloc bounds its own
 * (chunk canaries: CHUNK_CHECK_LENGTH bytes after the request; freed
 * junk: the first page at a stride): a canary is the first
 * BA_CANARY_MAX bytes of the slack; freed junk is the whole of a block
 * up to BA_JUNK_HEAD bytes and, past them, the first word of every
 * BA_JUNK_STRIDE bytes, in slots of small blocks.  So the work per
 * block is bounded and small blocks, where most overflows and stale
 * writes land, are covered whole.  A large block is junked whole: it
 * is junked only on its way into quarantine, and costs a call to the
 * backing anyway. */
static inline size_t
junk_head(size_t room)
{
	return room > SMALL_MAX || room < BA_JUNK_HEAD ?
	    room : BA_JUNK_HEAD;
}

static inline size_t
canary_end(size_t len, size_t room)
{
	return room - len > BA_CANARY_MAX ? len + BA_CANARY_MAX : room;
}

void
ba_chk_canary_set(const struct beamalloc_gpa *g, unsigned char *p,
    size_t len, size_t room)
{
	if (!g->canary || room <= len)
		return;
	room = canary_end(len, room);
	open_bytes(g, p + len, room - len);
	memset(p + len, BA_CANARY_BYTE, room - len);
	close_bytes(g, p + len, room - len);
}

void
ba_chk_fill_new(const struct beamalloc_gpa *g, unsigned char *p, size_t len,
    size_t room)
{
	if (g->junk) {
		memset(p, BA_JUNK_NEW, len);
		/* Still uninitialized to memcheck. */
		if (g->tools)
			BA_VG_MAKE_UNDEFINED(p, len);
	}
	ba_chk_canary_set(g, p, len, room);
}

bool
ba_chk_canary_ok(const struct beamalloc_gpa *g, unsigned char *p, size_t len,
    size_t room)
{
	bool ok;

	if (!g->canary || room <= len)
		return true;
	room = canary_end(len, room);
	open_bytes(g, p + len, room - len);
	ok = all_bytes(p + len, room - len, BA_CANARY_BYTE);
	close_bytes(g, p + len, room - len);
	return ok;
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
	memset(p, BA_JUNK_FREED, junk_head(room));
	for (size_t i = junk_head(room); i + 8 <= room; i += BA_JUNK_STRIDE)
		memset(p + i, BA_JUNK_FREED, 8);
	if (g->tools)
		BA_VG_QUIET_END();
}

static inline bool
freed_ok(const unsigned char *p, size_t room)
{
	bool ok = all_bytes(p, junk_head(room), BA_JUNK_FREED);

	for (size_t i = junk_head(room); ok && i + 8 <= room;
	    i += BA_JUNK_STRIDE)
		ok = all_bytes(p + i, 8, BA_JUNK_FREED);
	return ok;
}

bool
ba_chk_freed_ok(const struct beamalloc_gpa *g, unsigned char *p, size_t room)
{
	bool ok;

	if (!g->junk)
		return true;
	open_bytes(g, p, room);
	ok = freed_ok(p, room);
	close_bytes(g, p, room);
	return ok;
}

void
ba_gpa_chk_new(struct beamalloc_gpa *g, unsigned char *p,
    const unsigned char *rec, size_t len, size_t room)
{
	if (g->junk) {
		if (state_get(rec) == REC_FREE && !freed_ok(p, room))
			ba_gpa_reused_bad(g, p);
		memset(p, BA_JUNK_NEW, len);
	}
	if (g->canary && room > len)
		memset(p + len, BA_CANARY_BYTE, canary_end(len, room) - len);
}

/* ------------------------------------------------------------------------
 * Quarantine
 * ---------------------------------------------------------------------- */

struct ba_quar *
ba_quar_new(beamalloc_allocator backing, size_t limit)
{
	struct ba_quar *q = ba_raw_alloc(backing, sizeof(*q),
	    BEAMALLOC_MIN_ALIGN, 0);

	if (q == NULL)
		return NULL;
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	q->backing = backing;
	q->limit = limit;
	return q;
}

void
ba_quar_delete(struct ba_quar *q)
{
	if (q == NULL)
		return;
	if (q->ring != NULL)
		ba_raw_free(q->backing, q->ring, q->cap * sizeof(q->ring[0]),
		    BEAMALLOC_MIN_ALIGN, 0);
	pthread_mutex_destroy(&q->lock);
	ba_raw_free(q->backing, q, sizeof(*q), BEAMALLOC_MIN_ALIGN, 0);
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
	struct ba_qent *r = ba_raw_alloc(q->backing, cap * sizeof(*r),
	    BEAMALLOC_MIN_ALIGN, 0);

	if (r == NULL)
		return false;
	for (size_t i = 0; i < q->n; i++)
		r[i] = q->ring[(q->head + i) % q->cap];
	if (q->ring != NULL)
		ba_raw_free(q->backing, q->ring, q->cap * sizeof(q->ring[0]),
		    BEAMALLOC_MIN_ALIGN, 0);
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
