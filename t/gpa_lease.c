/*
 * gpa_lease.c - beamalloc_gpa_checkout() and beamalloc_gpa_checkin(): a
 * GPA lent for one scope, kept when it comes back clean.
 *
 * What is promised: checkin finds every leak (and reports it to the
 * holder's callback, not to an earlier or later holder's); a clean GPA is
 * lent again, empty, for the same backing and config; a GPA with a leak or
 * a report is destroyed; more holders than the table keeps still work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "plant.h"
#include "tap.h"

struct seen {
	size_t leaks, leak_bytes, other;
	beamalloc_report_kind kind;
};

/* A thread that makes a block of 2000 bytes and frees it, and makes
 * one of 1000 for its caller to free, then waits, alive, with its
 * cache's credit unsettled. */
struct marker {
	beamalloc_allocator a;
	pthread_barrier_t bar;
	void *kept;
};

static void *
marker(void *arg)
{
	struct marker *m = arg;
	void *p = beamalloc_alloc(m->a, 2000);

	beamalloc_free(m->a, p, 2000);
	m->kept = beamalloc_alloc(m->a, 1000);
	pthread_barrier_wait(&m->bar);
	pthread_barrier_wait(&m->bar);
	return NULL;
}

static void
collect(void *user, const beamalloc_report *r)
{
	struct seen *s = user;

	if (r->kind == BEAMALLOC_REPORT_LEAK) {
		s->leaks++;
		s->leak_bytes += r->size;
	} else {
		s->other++;
		s->kind = r->kind;
	}
}

static beamalloc_gpa_config
cfg_to(struct seen *s)
{
	beamalloc_gpa_config c;

	beamalloc_gpa_config_init(&c);
	c.report = collect;
	c.report_user = s;
	return c;
}

static size_t
live_blocks(beamalloc_gpa *g)
{
	beamalloc_gpa_stats st;

	beamalloc_gpa_get_stats(g, &st);
	return st.live_blocks;
}

#define NTHREADS 4
#define NCALLS 2000

static void *
holder(void *arg)
{
	size_t *found = arg;

	for (int i = 0; i < NCALLS; i++) {
		struct seen s = { 0 };
		beamalloc_gpa_config c = cfg_to(&s);
		beamalloc_gpa *g = beamalloc_gpa_checkout(beamalloc_libc(), &c);
		beamalloc_allocator a;
		void *p, *q;

		if (g == NULL)
			return NULL;
		a = beamalloc_gpa_allocator(g);
		p = beamalloc_alloc(a, 40 + (size_t)i % 200);
		q = beamalloc_alloc(a, 3000);
		if (p == NULL || q == NULL)
			return NULL;
		beamalloc_free(a, q, 3000);
		/* Every 100th call leaks its block. */
		if (i % 100 != 0)
			beamalloc_free(a, p, 40 + (size_t)i % 200);
		if (beamalloc_gpa_checkin(g) != (i % 100 == 0 ? 1u : 0u) ||
		    s.leaks != (i % 100 == 0 ? 1u : 0u) || s.other != 0)
			return NULL;
		*found += s.leaks;
	}
	return arg;
}

/*
 * A backing that gives the block of a GPA freed by a checkin back, at
 * once, to the next GPA made: as malloc() hands a freed block of the same
 * size to the next caller, on another thread, while the checkin is still
 * in beamalloc_gpa_destroy().  That next holder's scope runs inside the
 * free (rb_hook), made here on one thread, in order; no other freed GPA's
 * block is given out again in this test (rb_grave).  Before the fix the
 * leaking holder's table entry still named the freed GPA there, and the
 * new GPA at that address was checked in through it (and destroyed,
 * that entry having counted the first holder's report), while its own
 * entry stayed checked out, naming freed memory, for good.  With threads
 * the same mix-up let two holders share a GPA, missed leaks, sent
 * reports to a holder whose frame was gone, and crashed.
 */
static void *rb_armed;		/* the GPA whose free runs the hook */
static void *rb_grave[16];	/* later GPAs' blocks, not reused */
static size_t rb_ngrave;
static void *rb_spare;		/* its block, for the next alloc */
static size_t rb_spare_len;
static beamalloc_allocator rb;
static beamalloc_gpa *rb_g2;
static size_t rb_g2_checkin = 99;

static void *
rb_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	void *p;

	(void)ctx, (void)ra;
	if (rb_spare != NULL && len == rb_spare_len) {
		p = rb_spare;
		rb_spare = NULL;
		return p;
	}
	if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) :
	    align, len) != 0)
		return NULL;
	return p;
}

static bool
rb_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static void *
rb_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static void rb_hook(void);

static void
rb_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	if (mem != NULL && mem == rb_armed) {
		rb_armed = NULL;
		rb_spare = mem;
		rb_spare_len = len;
		rb_hook();
		return;
	}
	/* After the hook, a freed GPA's block is not given out again, so
	 * that the only address shared is the one the hook made. */
	if (rb_spare_len != 0 && len == rb_spare_len &&
	    rb_ngrave < sizeof(rb_grave) / sizeof(rb_grave[0])) {
		rb_grave[rb_ngrave++] = mem;
		return;
	}
	free(mem);
}

static const beamalloc_vtable rb_vt = { rb_alloc, rb_resize, rb_remap,
    rb_free };

/* The next holder, clean, inside the leaking one's checkin. */
static void
rb_hook(void)
{
	struct seen s = { 0 };
	beamalloc_gpa_config c = cfg_to(&s);
	void *p;

	rb_g2 = beamalloc_gpa_checkout(rb, &c);
	if (rb_g2 == NULL)
		return;
	p = beamalloc_alloc(beamalloc_gpa_allocator(rb_g2), 32);
	beamalloc_free(beamalloc_gpa_allocator(rb_g2), p, 32);
	rb_g2_checkin = beamalloc_gpa_checkin(rb_g2);
}

int
main(void)
{
	struct seen s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	beamalloc_gpa_config c1 = cfg_to(&s1), c2, cq;
	beamalloc_gpa *g, *g2, *many[300];
	beamalloc_allocator a;
	void *p;
	bool all = true;

	plan(49);

	/* A clean scope, then the same GPA again, empty. */
	g = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
	ok(g != NULL, "checkout gives a GPA");
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 64);
	beamalloc_free(a, p, 64);
	is_size(beamalloc_gpa_checkin(g), 0, "a clean scope: no leak");
	is_size(s1.leaks + s1.other, 0, "and no report");
	g2 = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
	ok(g2 == g, "the clean GPA is lent again for the same config");
	is_size(live_blocks(g2), 0, "empty");

	/* A leak: reported to this holder, counted, the GPA destroyed. */
	a = beamalloc_gpa_allocator(g2);
	p = beamalloc_alloc(a, 100);
	ok(p != NULL, "allocates");
	is_size(beamalloc_gpa_checkin(g2), 1, "checkin counts the leak");
	is_size(s1.leaks, 1, "the holder's callback heard of it");
	is_size(s1.leak_bytes, 100, "with its size");

	/* The next holder gets an empty GPA and only its own reports. */
	c2 = cfg_to(&s2);
	g = beamalloc_gpa_checkout(beamalloc_libc(), &c2);
	ok(g != NULL, "a checkout after a leaking one");
	is_size(live_blocks(g), 0, "starts empty");
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 24);
	beamalloc_free(a, p, 24);
	beamalloc_free(a, p, 24);	/* a double free: reported, ignored */
	is_size(s2.other, 1, "a double free goes to this holder");
	is_int(s2.kind, BEAMALLOC_REPORT_DOUBLE_FREE, "as a double free");
	is_size(beamalloc_gpa_checkin(g), 0, "no leak");
	is_size(s1.leaks + s1.other, 1, "the earlier holder heard nothing more");
	g2 = beamalloc_gpa_checkout(beamalloc_libc(), &c2);
	p = beamalloc_alloc(beamalloc_gpa_allocator(g2), 8);
	beamalloc_free(beamalloc_gpa_allocator(g2), p, 8);
	is_size(beamalloc_gpa_checkin(g2), 0, "a GPA after a reported one works");
	is_size(s2.other + s2.leaks, 1, "and reports nothing");

	/* Another config is another GPA. */
	c2.safety = false;
	g = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
	g2 = beamalloc_gpa_checkout(beamalloc_libc(), &c2);
	ok(g != NULL && g2 != NULL && g != g2,
	    "two holders at once get two GPAs");
	is_size(beamalloc_gpa_checkin(g) + beamalloc_gpa_checkin(g2), 0,
	    "both clean");

	/* A quarantine: made and destroyed each time, reports still go to
	 * the holder. */
	cq = cfg_to(&s3);
	cq.quarantine = 4096;
	g = beamalloc_gpa_checkout(beamalloc_libc(), &cq);
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 48);
	is_size(beamalloc_gpa_checkin(g), 1, "with a quarantine, a leak found");
	is_size(s3.leaks, 1, "and reported to the holder");

	/* Junk: one holder's write after free must not be reported to the
	 * next, whose allocation would reuse the slot (found by a review:
	 * the GPA was kept).  Guarded sampling, whose freed guard slots are
	 * checked as they are reused, is not kept either. */
	{
		struct seen sj1 = { 0 }, sj2 = { 0 };
		beamalloc_gpa_config cj1 = cfg_to(&sj1), cj2 = cfg_to(&sj2);
		unsigned char *q;
		bool quiet = true;

		cj1.junk = cj2.junk = true;
		g = beamalloc_gpa_checkout(beamalloc_libc(), &cj1);
		a = beamalloc_gpa_allocator(g);
		q = beamalloc_alloc(a, 64);
		beamalloc_free(a, q, 64);
		plant(q + 8, 1, 0x42);		/* a write after free */
		is_size(beamalloc_gpa_checkin(g), 0,
		    "junk: the holder that wrote after free checks in clean");
		g = beamalloc_gpa_checkout(beamalloc_libc(), &cj2);
		a = beamalloc_gpa_allocator(g);
		for (int i = 0; i < 8; i++) {
			void *r = beamalloc_alloc(a, 64);

			quiet = quiet && r != NULL;
			beamalloc_free(a, r, 64);
		}
		is_size(beamalloc_gpa_checkin(g), 0, "the next holder too");
		ok(quiet && sj2.other == 0,
		    "and hears nothing of the first one's write (%zu reports)",
		    sj2.other);
	}

	/* A kept GPA's peak starts again from 0, as a new one's. */
	{
		beamalloc_gpa_stats st;

		g = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
		a = beamalloc_gpa_allocator(g);
		p = beamalloc_alloc(a, 1 << 20);
		beamalloc_free(a, p, 1 << 20);
		is_size(beamalloc_gpa_checkin(g), 0, "a 1 MiB block, freed");
		g2 = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
		beamalloc_gpa_get_stats(g2, &st);
		ok(g2 == g && st.peak_bytes == 0 && st.live_bytes == 0,
		    "the kept GPA comes back with peak 0 (%zu)", st.peak_bytes);
		is_size(beamalloc_gpa_checkin(g2), 0, "clean");
	}

	/* Nor does a mark another thread's cache keeps (its credit not yet
	 * settled, the thread still alive) stay the next holder's peak;
	 * the credits themselves stay: a block the other thread made and
	 * this one freed counts nothing. */
	{
		beamalloc_gpa_stats st;
		struct marker m;
		pthread_t t;

		g = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
		m.a = beamalloc_gpa_allocator(g);
		pthread_barrier_init(&m.bar, NULL, 2);
		pthread_create(&t, NULL, marker, &m);
		pthread_barrier_wait(&m.bar);	/* its blocks made */
		beamalloc_free(m.a, m.kept, 1000);
		is_size(beamalloc_gpa_checkin(g), 0,
		    "another thread's blocks, freed");
		g2 = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
		beamalloc_gpa_get_stats(g2, &st);
		ok(g2 == g && st.peak_bytes == 0 && st.live_bytes == 0,
		    "the kept GPA comes back with peak 0 (%zu), live 0 (%zu)",
		    st.peak_bytes, st.live_bytes);
		a = beamalloc_gpa_allocator(g2);
		p = beamalloc_alloc(a, 100);
		beamalloc_gpa_get_stats(g2, &st);
		ok(st.peak_bytes == 100 && st.live_bytes == 100,
		    "its next block counts alone: peak %zu, live %zu",
		    st.peak_bytes, st.live_bytes);
		beamalloc_free(a, p, 100);
		is_size(beamalloc_gpa_checkin(g2), 0, "clean");
		pthread_barrier_wait(&m.bar);	/* it may end */
		pthread_join(t, NULL);
		pthread_barrier_destroy(&m.bar);
	}

	/* More holders at once than the table keeps. */
	for (size_t i = 0; i < 300; i++) {
		many[i] = beamalloc_gpa_checkout(beamalloc_libc(), &c1);
		if (many[i] == NULL ||
		    beamalloc_alloc(beamalloc_gpa_allocator(many[i]), 16) ==
		    NULL)
			all = false;
	}
	ok(all, "300 holders at once each get a GPA");
	for (size_t i = 0; i < 300; i++)
		if (beamalloc_gpa_checkin(many[i]) != 1)
			all = false;
	ok(all, "each finds its one leak at checkin");
	is_size(s1.leaks, 301, "every leak reported to the holder's callback");

	/* Threads, each with its own collector. */
	{
		pthread_t t[NTHREADS];
		size_t found[NTHREADS] = { 0 };
		bool fine = true;

		for (int i = 0; i < NTHREADS; i++)
			pthread_create(&t[i], NULL, holder, &found[i]);
		for (int i = 0; i < NTHREADS; i++) {
			void *r;

			pthread_join(t[i], &r);
			fine = fine && r == &found[i] &&
			    found[i] == NCALLS / 100;
		}
		ok(fine, "%d threads x %d scopes: each leak found by its own "
		    "holder, nothing else reported", NTHREADS, NCALLS);
	}

	/* A GPA made at the address of one a checkin is destroying. */
	{
		struct seen sl = { 0 }, sn = { 0 };
		beamalloc_gpa_config cl = cfg_to(&sl), cn = cfg_to(&sn);
		beamalloc_gpa *g3;

		rb = (beamalloc_allocator){ NULL, &rb_vt };
		g = beamalloc_gpa_checkout(rb, &cl);
		(void)beamalloc_alloc(beamalloc_gpa_allocator(g), 40);
		rb_armed = g;
		is_size(beamalloc_gpa_checkin(g), 1,
		    "address reuse: the leaking holder's checkin finds its leak");
		ok(rb_g2 == g && rb_g2_checkin == 0,
		    "... while a clean holder, given a GPA at the same address "
		    "(%p, %p), checked in (%zu)", (void *)g, (void *)rb_g2,
		    rb_g2_checkin);
		g3 = beamalloc_gpa_checkout(rb, &cn);
		ok(g3 == rb_g2, "that clean GPA is lent again (its entry was "
		    "not left checked out)");
		(void)beamalloc_alloc(beamalloc_gpa_allocator(g3), 24);
		is_size(beamalloc_gpa_checkin(g3) + sn.leaks + sl.leaks, 3,
		    "and its next holder's leak is found and reported to it");
		while (rb_ngrave > 0)
			free(rb_grave[--rb_ngrave]);
	}

	/* Careless input. */
	is_size(beamalloc_gpa_checkin(NULL), 0, "checkin(NULL) is a no-op");
	{
		/* A GPA checked in twice: kept for the next holder after the
		 * first, destroyed by the second before (which that holder
		 * then used, freed). */
		struct seen sd = { 0 }, sk = { 0 };
		beamalloc_gpa_config ck = cfg_to(&sk);

		g = beamalloc_gpa_checkout(beamalloc_libc(), &ck);
		is_size(beamalloc_gpa_checkin(g), 0, "checked in once, clean");
		beamalloc_report_set_default(collect, &sd, false);
		errno = 0;
		is_size(beamalloc_gpa_checkin(g), 0, "checked in again: 0");
		is_int(errno, EINVAL, "with EINVAL");
		beamalloc_report_set_default(NULL, NULL, false);
		ok(sd.other == 1 && sd.kind == BEAMALLOC_REPORT_DOUBLE_FREE,
		    "reported once, as a double free (%zu reports)", sd.other);
		g2 = beamalloc_gpa_checkout(beamalloc_libc(), &ck);
		ok(g2 == g, "the GPA is still kept, and lent again");
		a = beamalloc_gpa_allocator(g2);
		p = beamalloc_alloc(a, 32);
		ok(p != NULL, "its next holder allocates");
		is_size(beamalloc_gpa_checkin(g2), 1,
		    "and that holder's leak is found");
		is_size(sk.leaks + sk.other, 1, "and reported to it alone");
	}
	errno = 0;
	ok(beamalloc_gpa_checkout((beamalloc_allocator){ NULL, NULL },
	    NULL) == NULL && errno == EINVAL,
	    "a backing without a vtable: NULL, EINVAL");
	return done_testing();
}
