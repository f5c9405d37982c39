/*
 * gpa_leakcheck.c - a leak check whose report callback allocates from the
 * GPA being checked (the config allows it): every report takes large
 * blocks (enough that the large-block table grows several times during
 * the check) and small ones, some kept until after the check and some
 * freed at once.  beamalloc_gpa_detect_leaks() and beamalloc_gpa_destroy()
 * must still report each block that was live when the check began
 * exactly once, and nothing else, and return that count.
 */
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

#define NLEAK_S 40		/* small blocks leaked */
#define NLEAK_L 20		/* large ones */
#define NLEAK (NLEAK_S + NLEAK_L)
#define PER_REPORT 3		/* kept large and small blocks per report */
#define MAXKEPT 4096
#define MAXSEEN 1024

static beamalloc_allocator target;
static bool hungry;		/* the callback allocates */
static const void *seen[MAXSEEN];
static size_t nseen, nother;
static struct kept {
	void *p;
	size_t len;
} kept[MAXKEPT];
static size_t nkept;

static void
keep(size_t len)
{
	void *p = beamalloc_alloc(target, len);

	if (p != NULL && nkept < MAXKEPT) {
		memset(p, 0x5a, len);
		kept[nkept++] = (struct kept){ p, len };
	}
}

static void
greedy_report(void *user, const beamalloc_report *r)
{
	(void)user;
	if (r->kind != BEAMALLOC_REPORT_LEAK) {
		nother++;
		return;
	}
	if (nseen < MAXSEEN)
		seen[nseen] = r->addr;
	nseen++;
	if (!hungry)
		return;
	for (size_t i = 0; i < PER_REPORT; i++) {
		void *t;

		keep(20000 + i * 4096);		/* large */
		keep(24 + i * 200);		/* small */
		/* and one of each freed at once */
		t = beamalloc_alloc(target, 40000);
		beamalloc_free(target, t, 40000);
		t = beamalloc_alloc(target, 72);
		beamalloc_free(target, t, 72);
	}
}

static void
release_kept(void)
{
	for (size_t i = 0; i < nkept; i++)
		beamalloc_free(target, kept[i].p, kept[i].len);
	nkept = 0;
}

/* The reports since nseen was 0 name exactly the leaked blocks, each
 * once. */
static bool
exact(void *const *leaked, size_t n)
{
	if (nseen != n || nother != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t hits = 0;

		for (size_t j = 0; j < nseen; j++)
			hits += seen[j] == leaked[i];
		if (hits != 1)
			return false;
	}
	return true;
}

static void
one(bool ts, bool safety, bool destroy, size_t quarantine)
{
	char what[96];
	testalloc *t = testalloc_new();
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	static void *leaked[NLEAK];
	size_t n;

	snprintf(what, sizeof(what), "ts %d safety %d %s%s", ts, safety,
	    destroy ? "destroy" : "detect_leaks",
	    quarantine ? " (quarantine)" : "");
	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = ts;
	cfg.safety = safety;
	cfg.quarantine = quarantine;
	cfg.report = greedy_report;
	g = beamalloc_gpa_create(testalloc_allocator(t), &cfg);
	target = beamalloc_gpa_allocator(g);
	for (size_t i = 0; i < NLEAK_S; i++)
		leaked[i] = beamalloc_alloc(target, 8 + i * 97);
	for (size_t i = 0; i < NLEAK_L; i++)
		leaked[NLEAK_S + i] = beamalloc_alloc(target, 17000 + i * 1000);

	nseen = nother = 0;
	hungry = true;
	if (destroy) {
		n = beamalloc_gpa_destroy(g);
		is_size(n, NLEAK, "%s: returns the %d leaks", what, NLEAK);
		ok(exact(leaked, NLEAK), "%s: reports each once, nothing "
		    "else (%zu reports)", what, nseen);
		nkept = 0;		/* destroy took them */
		is_size(t->live_bytes, 0, "%s: everything given back", what);
		free(t);
		return;
	}
	n = beamalloc_gpa_detect_leaks(g);
	hungry = false;
	is_size(n, NLEAK, "%s: returns the %d leaks", what, NLEAK);
	ok(exact(leaked, NLEAK), "%s: reports each once, nothing else "
	    "(%zu reports)", what, nseen);
	ok(nkept == NLEAK * 2 * PER_REPORT, "%s: the callback allocated "
	    "%zu blocks", what, nkept);
	release_kept();

	nseen = 0;
	is_size(beamalloc_gpa_detect_leaks(g), NLEAK, "%s: again, the "
	    "callback's blocks freed: %d", what, NLEAK);
	ok(exact(leaked, NLEAK), "%s: the same blocks", what);
	for (size_t i = 0; i < NLEAK_S; i++)
		beamalloc_free(target, leaked[i], 8 + i * 97);
	for (size_t i = 0; i < NLEAK_L; i++)
		beamalloc_free(target, leaked[NLEAK_S + i], 17000 + i * 1000);
	nseen = 0;
	is_size(beamalloc_gpa_destroy(g), 0, "%s: all freed: no leak", what);
	is_size(t->live_bytes, 0, "%s: everything given back", what);
	free(t);
}

int
main(void)
{
	for (int ts = 0; ts <= 1; ts++)
		for (int safety = 0; safety <= 1; safety++) {
			one(ts, safety, false, 0);
			one(ts, safety, true, 0);
		}
	/* With a quarantine the callback's frees wait in it, large blocks
	 * too, after the check let every block out: destroy lets them out
	 * again. */
	one(true, true, false, 64 << 10);
	one(true, true, true, 64 << 10);
	one(false, false, true, 64 << 10);
	return done_testing();
}
