/*
 * pool.c - the object pool: items aligned and distinct, O(1) reuse (LIFO),
 * preheated fixed capacity, growth in few backing calls, the allocator
 * interface's limits, the double free it can see, foreign frees, careless
 * arguments, and every chunk back to the strict backing at destroy.
 */
#include <errno.h>
#include <string.h>

#include "beamalloc.h"
#include "lastreport.h"
#include "tap.h"
#include "testalloc.h"

static void
creation(void)
{
	testalloc *t = testalloc_new();
	beamalloc_failing f;
	beamalloc_pool *p;

	errno = 0;
	ok(beamalloc_pool_create(testalloc_allocator(t), 0, 8, 0, true) ==
	    NULL && errno == EINVAL, "item size 0: NULL + EINVAL");
	errno = 0;
	ok(beamalloc_pool_create(testalloc_allocator(t), 16, 24, 0, true) ==
	    NULL && errno == EINVAL, "alignment 24: NULL + EINVAL");
	errno = 0;
	ok(beamalloc_pool_create(testalloc_allocator(t), 16, 0, 0, true) ==
	    NULL && errno == EINVAL, "alignment 0: NULL + EINVAL");
	errno = 0;
	ok(beamalloc_pool_create(testalloc_allocator(t), SIZE_MAX, 8, 0,
	    true) == NULL && errno == ENOMEM, "item size SIZE_MAX: ENOMEM");
	errno = 0;
	ok(beamalloc_pool_create(testalloc_allocator(t), (size_t)1 << 40, 8,
	    (size_t)1 << 30, false) == NULL && errno == ENOMEM,
	    "preheating 2^70 bytes: NULL + ENOMEM");
	is_size(t->nblocks, 0, "the failed preheat gave its pool back");

	beamalloc_failing_init(&f, testalloc_allocator(t), 1, BEAMALLOC_NEVER);
	errno = 0;
	ok(beamalloc_pool_create(beamalloc_failing_allocator(&f), 64, 8, 10,
	    false) == NULL && errno == ENOMEM,
	    "backing failing the preheat: NULL + ENOMEM");
	is_size(t->nblocks, 0, "and nothing is left in the backing");

	p = beamalloc_pool_create(testalloc_allocator(t), 64, 8, 0, true);
	ok(p != NULL && beamalloc_pool_capacity(p) == 0 &&
	    t->nblocks == 1, "no preheat: one backing block, no items yet");
	beamalloc_pool_destroy(p);
	beamalloc_pool_destroy(NULL);
	is_size(beamalloc_pool_capacity(NULL) + beamalloc_pool_live(NULL), 0,
	    "capacity and live of NULL are 0; destroy(NULL) is a no-op");
	ok(t->nblocks == 0 && t->bad_calls == 0, "destroy gave all back");
	free(t);
}

static void
fixed_capacity(void)
{
	testalloc *t = testalloc_new();
	beamalloc_pool *p = beamalloc_pool_create(testalloc_allocator(t), 48,
	    64, 10, false);
	unsigned char *items[11];
	size_t misaligned = 0, overlaps = 0, allocs;
	int i;

	if (p == NULL)
		bail("pool_create failed");
	allocs = t->allocs;
	is_size(beamalloc_pool_capacity(p), 10, "preheated: capacity 10");
	for (i = 0; i < 10; i++) {
		items[i] = beamalloc_pool_get(p);
		if (items[i] == NULL || !is_aligned(items[i], 64))
			misaligned++;
		else
			memset(items[i], i, 48);
	}
	is_size(misaligned, 0, "10 items at 64 over an 8-only backing");
	for (i = 0; i < 10; i++)
		if (items[i][0] != i || items[i][47] != i)
			overlaps++;
	is_size(overlaps, 0, "each keeps its own bytes");
	errno = 0;
	ok(beamalloc_pool_get(p) == NULL && errno == ENOMEM,
	    "the 11th: NULL + ENOMEM (not growable)");
	is_size(t->allocs, allocs, "no backing call after preheat");
	is_size(beamalloc_pool_live(p), 10, "10 live");
	beamalloc_pool_put(p, items[3]);
	is_ptr(beamalloc_pool_get(p), items[3], "a freed item comes back");
	beamalloc_pool_put(p, items[1]);
	beamalloc_pool_put(p, items[2]);
	ok(beamalloc_pool_get(p) == items[2] &&
	    beamalloc_pool_get(p) == items[1], "last freed, first reused");
	ok(items[9][47] == 9 && items[0][0] == 0, "others untouched");
	beamalloc_pool_put(p, NULL);
	is_size(beamalloc_pool_live(p), 10, "put(NULL) is a no-op");
	beamalloc_pool_destroy(p);
	ok(t->nblocks == 0 && t->bad_calls == 0,
	    "destroy with live items gives every chunk back, exactly");
	free(t);
}

#define MANY 5000

static void
growth(void)
{
	testalloc *t = testalloc_new();
	beamalloc_pool *p = beamalloc_pool_create(testalloc_allocator(t), 5, 1,
	    0, true);
	static unsigned char *items[MANY];
	size_t bad = 0;

	if (p == NULL)
		bail("pool_create failed");
	for (int i = 0; i < MANY; i++) {
		items[i] = beamalloc_pool_get(p);
		if (items[i] == NULL)
			bad++;
		else
			memset(items[i], i & 0xff, 5);
	}
	is_size(bad, 0, "5,000 items of 5 bytes");
	ok(beamalloc_pool_capacity(p) >= MANY &&
	    beamalloc_pool_capacity(p) < 2 * MANY,
	    "capacity %zu: enough, at most doubled",
	    beamalloc_pool_capacity(p));
	ok(t->allocs <= 1 + 10, "%zu backing calls (geometric growth)",
	    t->allocs);
	for (int i = 0; i < MANY; i++)
		if (items[i][0] != (i & 0xff) || items[i][4] != (i & 0xff))
			bad++;
	is_size(bad, 0, "no item overlaps another");
	for (int i = 0; i < MANY; i++)
		beamalloc_pool_put(p, items[i]);
	is_size(beamalloc_pool_live(p), 0, "all given back");
	bad = t->allocs;
	for (int i = 0; i < MANY; i++)
		items[i] = beamalloc_pool_get(p);
	is_size(t->allocs, bad, "taking them again calls the backing never");
	beamalloc_pool_destroy(p);
	ok(t->nblocks == 0 && t->bad_calls == 0, "destroy: all back");
	free(t);
}

static void
as_allocator(void)
{
	testalloc *t = testalloc_new();
	beamalloc_pool *p = beamalloc_pool_create(testalloc_allocator(t), 32,
	    16, 4, true);
	beamalloc_allocator a;
	unsigned char *x, *y;

	if (p == NULL)
		bail("pool_create failed");
	a = beamalloc_pool_allocator(p);
	x = beamalloc_alloc_aligned(a, 20, 16);
	ok(x != NULL && is_aligned(x, 16), "alloc 20 at 16");
	errno = 0;
	ok(beamalloc_alloc(a, 33) == NULL && errno == ENOMEM,
	    "alloc beyond the item size: NULL + ENOMEM");
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 8, 32) == NULL && errno == EINVAL,
	    "alloc beyond the item alignment: NULL + EINVAL");
	errno = 0;
	ok(beamalloc_alloc(a, (size_t)-1) == NULL && errno == ENOMEM,
	    "alloc of SIZE_MAX: NULL + ENOMEM");
	ok(beamalloc_alloc(a, 0) != NULL, "length 0: a non-NULL pointer");
	ta_fill(x, 20, 3);
	ok(beamalloc_resize(a, x, 20, 16, 32), "resize within the item");
	ok(!beamalloc_resize(a, x, 32, 16, 33), "not beyond it");
	is_ptr(beamalloc_remap(a, x, 32, 16, 10), x, "remap shrinks in place");
	errno = 0;
	ok(beamalloc_realloc(a, x, 10, 16, 100) == NULL && errno == ENOMEM &&
	    ta_intact(x, 10, 3), "realloc beyond the item: NULL + ENOMEM, "
	    "block intact");
	y = beamalloc_alloc_zeroed(a, 4, 8, 8);
	ok(y != NULL && y[0] == 0 && y[31] == 0, "alloc_zeroed: 32 zeros");
	beamalloc_free_aligned(a, x, 10, 16);
	beamalloc_free(a, y, 32);
	is_size(beamalloc_pool_live(p), 0, "frees through the allocator");
	beamalloc_pool_destroy(p);
	ok(t->nblocks == 0 && t->bad_calls == 0, "destroy: all back");
	free(t);
}

static void
misuse(void)
{
	testalloc *t = testalloc_new();
	beamalloc_pool *p = beamalloc_pool_create(testalloc_allocator(t), 64,
	    8, 0, true);
	beamalloc_pool *q = beamalloc_pool_create(testalloc_allocator(t), 64,
	    8, 0, true);
	beamalloc_allocator a;
	unsigned char *x, *y, *z, other[64];

	if (p == NULL || q == NULL)
		bail("pool_create failed");
	a = beamalloc_pool_allocator(p);
	beamalloc_report_set_default(record, NULL, false);
	x = beamalloc_pool_get(p);
	y = beamalloc_pool_get(p);
	beamalloc_pool_put(p, x);
	nreports = 0;
	beamalloc_pool_put(p, x);
	ok(nreports == 1 && last_report.kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    last_report.addr == x && last_report.size == 64,
	    "put twice: one double-free report naming the item and size");
	is_size(beamalloc_pool_live(p), 1, "and ignored: 1 live");
	ok(beamalloc_pool_get(p) == x && beamalloc_pool_get(p) != x,
	    "the item is handed out once, not twice");
	nreports = 0;
	beamalloc_free(a, y, 64);
	beamalloc_free(a, y, 64);
	ok(nreports == 1 && last_report.kind == BEAMALLOC_REPORT_DOUBLE_FREE,
	    "free twice through the allocator: reported");
	z = beamalloc_pool_get(q);
	nreports = 0;
	beamalloc_free(a, z, 64);
	ok(nreports == 1 && last_report.kind == BEAMALLOC_REPORT_INVALID_FREE &&
	    last_report.addr == z, "another pool's item: an invalid free");
	beamalloc_free(a, other, 64);
	beamalloc_free(a, x + 8, 56);
	ok(nreports == 3 && last_report.addr == x + 8,
	    "a stack address and an interior pointer: invalid frees");
	is_size(beamalloc_pool_live(q), 1, "the other pool's item is live");
	is_size(beamalloc_pool_live(p), 2, "nothing was freed by them");
	beamalloc_report_set_default(NULL, NULL, false);
	beamalloc_pool_destroy(p);
	beamalloc_pool_destroy(q);
	ok(t->nblocks == 0 && t->bad_calls == 0, "destroy: all back");
	free(t);
}

/* Resize, remap and realloc of a block that is not a live item: each is
 * reported once and refused (EINVAL), as free reports it; a success let
 * the caller write past a 4-byte int on the stack, or into the item the
 * next get hands out again (found by a review). */
static void
refused_resize(void)
{
	beamalloc_pool *p = beamalloc_pool_create(beamalloc_beam(), 24, 8, 4,
	    false);
	beamalloc_allocator a;
	unsigned char *x, *y, *z;
	int other = 7;

	if (p == NULL)
		bail("pool_create failed");
	a = beamalloc_pool_allocator(p);
	beamalloc_report_set_default(record, NULL, false);
	x = beamalloc_alloc(a, 24);
	y = beamalloc_alloc(a, 8);
	nreports = 0;
	errno = 0;
	ok(!beamalloc_resize(a, &other, 4, 8, 16) && errno == EINVAL &&
	    nreports == 1 && last_report.kind == BEAMALLOC_REPORT_INVALID_FREE &&
	    last_report.addr == &other && last_report.size == 24 &&
	    last_report.given_size == 4,
	    "resize of a stack address: false + EINVAL, one invalid-free "
	    "report naming it");
	errno = 0;
	ok(beamalloc_remap(a, &other, 4, 8, 16) == NULL && errno == EINVAL &&
	    nreports == 2, "remap of it: NULL + EINVAL, reported");
	errno = 0;
	ok(beamalloc_realloc(a, &other, 4, 8, 16) == NULL && errno == EINVAL &&
	    nreports == 3 && beamalloc_pool_live(p) == 2,
	    "realloc of it: NULL + EINVAL, reported once, nothing allocated");
	errno = 0;
	ok(beamalloc_realloc(a, &other, 4, 8, 4) == NULL && errno == EINVAL &&
	    nreports == 4, "realloc to the same length: refused too");
	errno = 0;
	ok(!beamalloc_resize(a, x + 8, 8, 8, 16) && errno == EINVAL &&
	    nreports == 5 && last_report.addr == x + 8,
	    "resize of an interior pointer: refused, reported");
	beamalloc_free(a, y, 8);
	nreports = 0;
	errno = 0;
	ok(!beamalloc_resize(a, y, 8, 8, 24) && errno == EINVAL &&
	    nreports == 1 && last_report.kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    last_report.addr == y,
	    "resize of the item freed last: false + EINVAL, a double-free "
	    "report");
	errno = 0;
	ok(beamalloc_realloc(a, y, 8, 8, 16) == NULL && errno == EINVAL &&
	    nreports == 2, "realloc of it: NULL + EINVAL");
	z = beamalloc_alloc(a, 24);
	ok(z == y && beamalloc_alloc(a, 24) != y,
	    "the freed item is handed out once, not twice");
	is_size(beamalloc_pool_live(p), 3, "3 live: x, z and the last");
	nreports = 0;
	ok(beamalloc_resize(a, x, 24, 8, 10) &&
	    beamalloc_remap(a, x, 10, 8, 24) == x && nreports == 0,
	    "a live item still resizes and remaps within itself, unreported");
	beamalloc_report_set_default(NULL, NULL, false);
	beamalloc_pool_destroy(p);
}

/* Zig's example: a list of nodes, created and destroyed one by one. */
struct node {
	struct node *next;
	long value;
};

static void
typed(void)
{
	beamalloc_pool *p = beamalloc_pool_create(beamalloc_beam(),
	    sizeof(struct node), _Alignof(struct node), 0, true);
	struct node *head = NULL, *n;
	long sum = 0;

	for (long i = 1; i <= 100; i++) {
		n = beamalloc_pool_get(p);
		if (n == NULL)
			bail("pool_get failed");
		n->value = i;
		n->next = head;
		head = n;
	}
	while ((n = head) != NULL) {
		sum += n->value;
		head = n->next;
		beamalloc_pool_put(p, n);
	}
	is_int(sum, 5050, "a 100-node list over the BEAM base sums to 5050");
	beamalloc_pool_destroy(p);
}

int
main(void)
{
	creation();
	fixed_capacity();
	growth();
	as_allocator();
	misuse();
	refused_resize();
	typed();
	return done_testing();
}
