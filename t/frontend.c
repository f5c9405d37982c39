/*
 * frontend.c - the front-end rules of beamalloc.h, on libc and on the
 * strict test allocator (8-byte blocks, checked frees).
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "beamalloc.h"
#include "lastreport.h"
#include "tap.h"
#include "testalloc.h"

struct pair { double d; char c; };
struct wide16 { alignas(16) char b[48]; };

static void
zero_lengths(beamalloc_allocator a, const char *name)
{
	void *p = beamalloc_alloc(a, 0);
	void *q = beamalloc_alloc_aligned(a, 0, 4096);

	ok(p != NULL && is_aligned(p, BEAMALLOC_MIN_ALIGN),
	    "%s: alloc(0) gives a non-NULL aligned pointer", name);
	ok(q != NULL && is_aligned(q, 4096),
	    "%s: alloc_aligned(0, 4096) is 4096-aligned", name);
	beamalloc_free(a, p, 0);
	beamalloc_free_aligned(a, q, 0, 4096);
	beamalloc_free(a, NULL, 16);
	ok(1, "%s: free of zero-length and NULL blocks is a no-op", name);
}

static void
errors(beamalloc_allocator a, const char *name)
{
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 16, 24) == NULL && errno == EINVAL,
	    "%s: alignment 24 -> NULL, EINVAL", name);
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 16, 0) == NULL && errno == EINVAL,
	    "%s: alignment 0 -> NULL, EINVAL", name);
	errno = 0;
	ok(beamalloc_alloc_array(a, SIZE_MAX / 2, 3, 8) == NULL &&
	    errno == ENOMEM, "%s: n*size overflow -> NULL, ENOMEM", name);
	errno = 0;
	ok(beamalloc_alloc(a, SIZE_MAX - 4) == NULL && errno == ENOMEM,
	    "%s: huge length -> NULL, ENOMEM", name);
	errno = 0;
	ok(!beamalloc_resize(a, NULL, 0, 8, 64) && errno == ENOMEM,
	    "%s: resize from length 0 fails", name);
}

static void
lifecycle(beamalloc_allocator a, const char *name)
{
	unsigned char *p, *q;
	size_t i;
	uint16_t *arr;
	struct pair *obj;

	p = beamalloc_alloc(a, 100);
	ok(p != NULL && is_aligned(p, BEAMALLOC_MIN_ALIGN),
	    "%s: alloc(100) is 8-aligned", name);
	for (i = 0; i < 100; i++)
		p[i] = (unsigned char)i;

	/* realloc keeps the contents, growing and shrinking */
	q = beamalloc_realloc(a, p, 100, 8, 5000);
	ok(q != NULL, "%s: realloc to 5000", name);
	for (i = 0; q != NULL && i < 100 && q[i] == i; i++)
		;
	is_size(i, 100, "%s: realloc kept all 100 bytes", name);
	p = beamalloc_realloc(a, q, 5000, 8, 10);
	for (i = 0; p != NULL && i < 10 && p[i] == i; i++)
		;
	is_size(i, 10, "%s: realloc down to 10 kept them", name);

	/* realloc to 0 frees, realloc from 0 allocates */
	q = beamalloc_realloc(a, p, 10, 8, 0);
	ok(q != NULL, "%s: realloc to 0 returns a zero-length pointer", name);
	p = beamalloc_realloc(a, q, 0, 8, 32);
	ok(p != NULL && p != q, "%s: realloc from 0 allocates", name);

	/* resize with new_len 0 frees and succeeds */
	ok(beamalloc_resize(a, p, 32, 8, 0), "%s: resize to 0 frees", name);

	arr = beamalloc_alloc_array(a, 3, sizeof(*arr), alignof(uint16_t));
	ok(arr != NULL, "%s: alloc_array(3, u16)", name);
	for (i = 0; arr && i < 3; i++)
		arr[i] = (uint16_t)i;
	ok(arr && arr[0] == 0 && arr[1] == 1 && arr[2] == 2,
	    "%s: allocate_raw(3) == [0,1,2]", name);
	beamalloc_free_aligned(a, arr, 3 * sizeof(*arr), alignof(uint16_t));

	p = beamalloc_dup(a, "hello", 6);
	ok(p != NULL && strcmp((char *)p, "hello") == 0, "%s: dup", name);
	beamalloc_free(a, p, 6);

	obj = BEAMALLOC_CREATE(a, struct pair);
	ok(obj != NULL && is_aligned(obj, alignof(struct pair)),
	    "%s: BEAMALLOC_CREATE", name);
	if (obj != NULL) {
		obj->d = 1.5;
		obj->c = 'x';
	}
	BEAMALLOC_DESTROY(a, obj);
}

/* A backing allocator whose remap declines and whose alloc fails on
 * demand: realloc must leave the old block intact. */
static int fail_next;
static testalloc *flaky_ta;

static void *
flaky_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx;
	if (fail_next) {
		fail_next = 0;
		return NULL;	/* deliberately leaves errno alone */
	}
	return ta_vtable.alloc(flaky_ta, len, align, ra);
}

static void
realloc_failure(void)
{
	static const beamalloc_vtable vt = {
		flaky_alloc, ta_resize, ta_remap, ta_free
	};
	beamalloc_allocator a;
	unsigned char *p, *q;

	flaky_ta = testalloc_new();
	a.ctx = flaky_ta;
	a.vtable = &vt;
	p = beamalloc_alloc(a, 64);
	memset(p, 0xab, 64);
	fail_next = 1;
	errno = 0;
	q = beamalloc_realloc(a, p, 64, 8, 128);
	ok(q == NULL && errno == ENOMEM,
	    "realloc failure: NULL with ENOMEM even when the vtable set none");
	ok(p[0] == 0xab && p[63] == 0xab && flaky_ta->nblocks == 1,
	    "realloc failure: the old block is intact and still live");
	beamalloc_free(a, p, 64);
	is_size(flaky_ta->nblocks, 0, "realloc failure: nothing leaked");
	is_size(flaky_ta->bad_calls, 0, "realloc failure: every free exact");
	free(flaky_ta);
}

static void
strict_backing(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator a = testalloc_allocator(t);
	unsigned char *p;

	zero_lengths(a, "strict");
	errors(a, "strict");
	lifecycle(a, "strict");
	is_size(t->nblocks, 0, "strict: every block was freed");
	is_size(t->bad_calls, 0, "strict: every free named the exact block");
	ok(t->allocs > 0 && t->frees == t->allocs,
	    "strict: allocs %zu == frees %zu", t->allocs, t->frees);

	/* realloc over a backing that moves on remap */
	t->remaps = 0;
	t->move_on_remap = 1;
	p = beamalloc_alloc(a, 40);
	memcpy(p, "0123456789", 10);
	p = beamalloc_realloc(a, p, 40, 8, 30);
	ok(p != NULL && memcmp(p, "0123456789", 10) == 0 && t->remaps == 1,
	    "strict: realloc uses remap, contents kept");
	beamalloc_free(a, p, 30);
	is_size(t->nblocks, 0, "strict: remapped block freed");
	free(t);
}

static void
libc_rules(void)
{
	beamalloc_allocator a = beamalloc_libc();
	struct wide16 *w;
	void *p;

	zero_lengths(a, "libc");
	errors(a, "libc");
	lifecycle(a, "libc");
	w = BEAMALLOC_CREATE(a, struct wide16);
	ok(w != NULL && is_aligned(w, 16), "libc: 16-aligned type created");
	BEAMALLOC_DESTROY(a, w);
	errno = 0;
	p = beamalloc_alloc_aligned(a, 64, 64);
	ok(p == NULL && errno == EINVAL,
	    "libc: alignment 64 beyond malloc's -> EINVAL");
	is_size(beamalloc_native_align(a), alignof(max_align_t),
	    "libc: native alignment is max_align_t's");
	p = beamalloc_alloc(a, 10);
	ok(beamalloc_resize(a, p, 10, 8, 4), "libc: shrink in place");
	ok(!beamalloc_resize(a, p, 4, 8, 1 << 20),
	    "libc: resize never grows (it would move)");
	beamalloc_free(a, p, 4);
}

/* NULL given with a length to realloc and resize, on allocators that
 * check no block (a fixed buffer, an arena): realloc copied len bytes
 * from NULL (found by a review: a crash, UBSan's "null pointer passed as
 * argument 2").  Now one invalid-free report naming NULL and the length,
 * NULL + EINVAL, nothing allocated. */
static void
null_with_length(void)
{
	static unsigned char buf[256];
	beamalloc_fixed fb;
	beamalloc_arena *ar = beamalloc_arena_create(beamalloc_libc());
	beamalloc_allocator as[2];
	const char *names[2] = { "fixed", "arena" };
	void *first[2];

	if (ar == NULL)
		bail("arena_create failed");
	beamalloc_fixed_init(&fb, buf, sizeof(buf));
	as[0] = beamalloc_fixed_allocator(&fb);
	as[1] = beamalloc_arena_allocator(ar);
	beamalloc_report_set_default(record, NULL, false);
	for (int i = 0; i < 2; i++) {
		void *p;

		nreports = 0;
		errno = 0;
		p = beamalloc_realloc(as[i], NULL, 16, 8, 32);
		ok(p == NULL && errno == EINVAL && nreports == 1 &&
		    last_report.kind == BEAMALLOC_REPORT_INVALID_FREE &&
		    last_report.addr == NULL && last_report.given_size == 16,
		    "%s: realloc of NULL with length 16: NULL + EINVAL, one "
		    "invalid-free report naming NULL and 16", names[i]);
		errno = 0;
		ok(!beamalloc_resize(as[i], NULL, 16, 8, 32) && errno == ENOMEM,
		    "%s: resize of NULL with length 16: false", names[i]);
		ok(beamalloc_remap(as[i], NULL, 16, 8, 32) == NULL,
		    "%s: remap of it: NULL", names[i]);
		nreports = 0;
		errno = 0;
		ok(beamalloc_realloc(as[i], NULL, 16, 8, 16) == NULL &&
		    errno == EINVAL && nreports == 1 &&
		    beamalloc_remap(as[i], NULL, 16, 8, 16) == NULL &&
		    errno == EINVAL && nreports == 2,
		    "%s: realloc and remap of it to the same length: NULL + "
		    "EINVAL, reported", names[i]);
		first[i] = beamalloc_alloc(as[i], 8);
		ok(first[i] != NULL, "%s: still serves", names[i]);
	}
	ok(first[0] == buf, "fixed: nothing was taken from the buffer");
	beamalloc_report_set_default(NULL, NULL, false);
	beamalloc_arena_destroy(ar);
}

/* beamalloc_dup of NULL with a length copied from NULL (a crash); now
 * NULL + EINVAL before any allocation. */
static void
dup_null(void)
{
	testalloc *t = testalloc_new();
	beamalloc_allocator a = testalloc_allocator(t);

	errno = 0;
	ok(beamalloc_dup(a, NULL, 16) == NULL && errno == EINVAL,
	    "dup of NULL with length 16: NULL + EINVAL");
	is_size(t->nblocks, 0, "dup of NULL: nothing allocated");
	ok(beamalloc_dup(a, NULL, 0) != NULL,
	    "dup of NULL with length 0: a zero-length pointer");
	free(t);
}

int
main(void)
{
	strict_backing();
	realloc_failure();
	libc_rules();
	null_with_length();
	dup_null();
	return done_testing();
}
