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
#include <string.h>

#include "beamalloc.h"
#include "plant.h"
#include "tap.h"

struct seen {
	size_t leaks, leak_bytes, other;
	beamalloc_report_kind kind;
};

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

int
main(void)
{
	struct seen s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	beamalloc_gpa_config c1 = cfg_to(&s1), c2, cq;
	beamalloc_gpa *g, *g2, *many[300];
	beamalloc_allocator a;
	void *p;
	bool all = true;

	plan(33);

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

	/* Careless input. */
	is_size(beamalloc_gpa_checkin(NULL), 0, "checkin(NULL) is a no-op");
	errno = 0;
	ok(beamalloc_gpa_checkout((beamalloc_allocator){ NULL, NULL },
	    NULL) == NULL && errno == EINVAL,
	    "a backing without a vtable: NULL, EINVAL");
	return done_testing();
}
