/*
 * gpa_misuse.c - the GPA given pointers it never gave out that it must
 * not read to tell so: addresses below 64 KiB (NULL's fields: 0x8,
 * 0x1000, 0xfff8; NULL itself for resize and remap, where the front-end
 * passes it on), and pointers into a slab that a trim gave back.  Each
 * free, resize, remap or realloc of one is exactly one invalid-free
 * report and changes nothing (realloc: NULL + EINVAL, no copy): with
 * safety on and off, thread_safe on and off, on a fresh GPA, on one with
 * slabs in use, after a trim left tombstones in its slab table, and on
 * the global GPA (whose reports go to stderr).
 * Afterwards the GPA still serves and destroy finds no leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

/* Indexed by kind; unknown kinds land in [0], which no test expects. */
#define NKINDS 16
static size_t reports[NKINDS], nreports;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	reports[(unsigned)r->kind < NKINDS ? r->kind : 0]++;
	nreports++;
}

static beamalloc_gpa *
make(beamalloc_allocator backing, bool safety, bool ts)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = ts;
	cfg.report = count_report;
	/* No guard pages, whatever BEAMALLOC_GPA_OPTIONS says: a freed
	 * guarded block freed again is a double free, named with its
	 * allocation site (t/gpa_guard.c), not the invalid free of a slot
	 * whose slab was given back that this test expects of every block
	 * it trimmed. */
	cfg.guard_sample = 0;
	return beamalloc_gpa_create(backing, &cfg);
}

#define NLOW 4
static void *const low[NLOW] = {
	(void *)0x8, (void *)0x1000, (void *)0xfff8, (void *)0x10,
};

/* free, resize, remap of p with len 8 / align 8; each must be one
 * invalid-free report and nothing else.  Bad counts, as tests. */
static void
bad_calls(beamalloc_allocator a, void *p, size_t len, const char *what)
{
	size_t inv = reports[BEAMALLOC_REPORT_INVALID_FREE], all = nreports;
	bool r;
	void *q;

	beamalloc_free(a, p, len);
	ok(reports[BEAMALLOC_REPORT_INVALID_FREE] == inv + 1 &&
	    nreports == all + 1, "%s: free %p: one invalid free", what, p);
	r = beamalloc_resize(a, p, len, 8, len * 2);
	ok(!r && reports[BEAMALLOC_REPORT_INVALID_FREE] == inv + 2 &&
	    nreports == all + 2, "%s: resize %p: false, one invalid free",
	    what, p);
	q = beamalloc_remap(a, p, len, 8, len * 4);
	ok(q == NULL && reports[BEAMALLOC_REPORT_INVALID_FREE] == inv + 3 &&
	    nreports == all + 3, "%s: remap %p: NULL, one invalid free",
	    what, p);
	errno = 0;
	q = beamalloc_realloc(a, p, len, 8, len * 4);
	ok(q == NULL && errno == EINVAL &&
	    reports[BEAMALLOC_REPORT_INVALID_FREE] == inv + 4 &&
	    nreports == all + 4, "%s: realloc %p: NULL + EINVAL, one "
	    "invalid free, nothing copied or freed", what, p);
}

/* The GPA still serves a small and a large block, intact. */
static void
still_works(beamalloc_allocator a, const char *what)
{
	size_t all = nreports;
	unsigned char *s = beamalloc_alloc(a, 100);
	unsigned char *l = beamalloc_alloc(a, 100000);
	bool good = s != NULL && l != NULL;

	if (good) {
		ta_fill(s, 100, 1);
		ta_fill(l, 100000, 2);
		good = ta_intact(s, 100, 1) && ta_intact(l, 100000, 2);
		beamalloc_free(a, s, 100);
		beamalloc_free(a, l, 100000);
	}
	ok(good && nreports == all, "%s: then alloc and free still work, "
	    "no report", what);
}

#define NBLK 600	/* more than one slab of 128-byte slots */

static void
one_config(bool safety, bool ts)
{
	char what[64];
	testalloc *t = testalloc_new();
	beamalloc_allocator b = testalloc_allocator(t);
	beamalloc_gpa *g = make(b, safety, ts);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	static void *blk[NBLK];
	size_t released;

	memset(reports, 0, sizeof(reports));
	nreports = 0;

	/* A fresh GPA: its slab table is all empty keys. */
	snprintf(what, sizeof(what), "safety %d ts %d fresh", safety, ts);
	for (size_t i = 0; i < NLOW; i++)
		bad_calls(a, low[i], 8, what);
	{
		size_t inv = reports[BEAMALLOC_REPORT_INVALID_FREE];

		ok(!beamalloc_resize(a, NULL, 8, 8, 16) &&
		    beamalloc_remap(a, NULL, 8, 8, 32) == NULL &&
		    reports[BEAMALLOC_REPORT_INVALID_FREE] == inv + 2,
		    "%s: resize and remap of NULL: an invalid free each",
		    what);
	}
	still_works(a, what);

	/* Slabs in use, the thread's memos filled. */
	snprintf(what, sizeof(what), "safety %d ts %d in use", safety, ts);
	for (size_t i = 0; i < NBLK; i++)
		blk[i] = beamalloc_alloc(a, 100);
	for (size_t i = 0; i < NBLK; i += 2)
		beamalloc_free(a, blk[i], 100);
	for (size_t i = 0; i < NLOW; i++)
		bad_calls(a, low[i], 8, what);
	still_works(a, what);

	/* Everything freed and given back: tombstones in the table, and
	 * the slabs' records gone.  Their pointers are invalid frees. */
	snprintf(what, sizeof(what), "safety %d ts %d trimmed", safety, ts);
	for (size_t i = 1; i < NBLK; i += 2)
		beamalloc_free(a, blk[i], 100);
	released = beamalloc_gpa_trim(g);
	ok(released > 0, "%s: the trim gave back %zu bytes", what, released);
	for (size_t i = 0; i < NLOW; i++)
		bad_calls(a, low[i], 8, what);
	bad_calls(a, blk[0], 100, what);
	bad_calls(a, blk[NBLK - 1], 100, what);
	bad_calls(a, (unsigned char *)blk[3] + 8, 100, what);
	ok(reports[BEAMALLOC_REPORT_DOUBLE_FREE] == 0 &&
	    reports[BEAMALLOC_REPORT_SIZE_MISMATCH] == 0 &&
	    reports[BEAMALLOC_REPORT_ALIGN_MISMATCH] == 0 &&
	    reports[BEAMALLOC_REPORT_LEAK] == 0,
	    "%s: no report of any other kind", what);
	still_works(a, what);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: no leak at destroy", what);
	is_size(t->live_bytes, 0, "%s: everything given back", what);
	free(t);
}

/* Resize, remap and realloc to the same length reach the GPA too: a
 * freed block (small or large) and a live one given with another length
 * are refused and reported, as at any other length; a good block stays
 * where it is, errno untouched.  They used to return true or the block
 * without a look. */
static void
same_length(bool ts)
{
	beamalloc_gpa *g = make(beamalloc_libc(), true, ts);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t lens[2] = { 100, 100000 }, refused = 0, calls = 0;
	unsigned char *p;

	memset(reports, 0, sizeof(reports));
	nreports = 0;
	for (int k = 0; k < 2; k++) {
		size_t n = lens[k], before = nreports;

		p = beamalloc_alloc(a, n);
		errno = 0;
		if (!beamalloc_resize(a, p, n, 8, n) || errno != 0 ||
		    beamalloc_remap(a, p, n, 8, n) != p || errno != 0 ||
		    beamalloc_realloc(a, p, n, 8, n) != p || errno != 0 ||
		    nreports != before)
			refused += 100;		/* a good block refused */
		/* Given with another length: a size mismatch each. */
		errno = 0;
		refused += !beamalloc_resize(a, p, n - 40, 8, n - 40) &&
		    errno == EINVAL;
		errno = 0;
		refused += beamalloc_remap(a, p, n - 40, 8, n - 40) == NULL &&
		    errno == EINVAL;
		errno = 0;
		refused += beamalloc_realloc(a, p, n - 40, 8, n - 40) ==
		    NULL && errno == EINVAL;
		beamalloc_free(a, p, n);
		/* Freed: a double free each. */
		errno = 0;
		refused += !beamalloc_resize(a, p, n, 8, n) && errno == EINVAL;
		errno = 0;
		refused += beamalloc_remap(a, p, n, 8, n) == NULL &&
		    errno == EINVAL;
		errno = 0;
		refused += beamalloc_realloc(a, p, n, 8, n) == NULL &&
		    errno == EINVAL;
		calls += 6;
	}
	ok(refused == calls && reports[BEAMALLOC_REPORT_SIZE_MISMATCH] == 6 &&
	    reports[BEAMALLOC_REPORT_DOUBLE_FREE] == 6 && nreports == 12,
	    "ts %d: to the same length, a good block stays (small and large); "
	    "one with another length and a freed one are refused, EINVAL, "
	    "%zu of %zu, reported (%zu size mismatches, %zu double frees, "
	    "%zu in all)", ts, refused, calls,
	    reports[BEAMALLOC_REPORT_SIZE_MISMATCH],
	    reports[BEAMALLOC_REPORT_DOUBLE_FREE], nreports);
	is_size(beamalloc_gpa_destroy(g), 0, "ts %d: no leak", ts);
}

/* The functions beamalloc_gpa(3) says accept a NULL gpa: nothing
 * happens, zeros come back (get_stats(NULL) crashed). */
static void
null_gpa(void)
{
	beamalloc_gpa_stats st;
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS], lg;
	size_t counts = 0;

	memset(&st, 0xa5, sizeof(st));
	memset(cls, 0xa5, sizeof(cls));
	memset(&lg, 0xa5, sizeof(lg));
	beamalloc_gpa_get_stats(NULL, &st);
	is_size(beamalloc_gpa_get_class_stats(NULL, cls, BEAMALLOC_GPA_NCLASS,
	    &lg), BEAMALLOC_GPA_NCLASS, "get_class_stats(NULL): the number "
	    "of classes");
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++)
		counts += cls[c].live_blocks + cls[c].live_bytes +
		    cls[c].slabs;
	ok(st.live_bytes == 0 && st.live_blocks == 0 && st.peak_bytes == 0 &&
	    st.backing_bytes == 0 && counts == 0 && cls[0].size == 8 &&
	    lg.live_blocks == 0 && lg.live_bytes == 0,
	    "get_stats(NULL) and get_class_stats(NULL): zero counts");
	ok(beamalloc_gpa_detect_leaks(NULL) == 0 &&
	    beamalloc_gpa_trim(NULL) == 0 && beamalloc_gpa_destroy(NULL) == 0 &&
	    beamalloc_gpa_checkin(NULL) == 0 &&
	    beamalloc_gpa_reset_peak(NULL) == 0,
	    "detect_leaks, trim, destroy, checkin and reset_peak of NULL: 0");
}

/* The global GPA reports to stderr: count the lines. */
static void
global(void)
{
	beamalloc_allocator a = beamalloc_general_purpose();
	char path[] = "/tmp/gpa_misuse.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	size_t lines = 0, other = 0, calls = 0;
	char buf[512];
	FILE *f;

	if (fd < 0 || saved < 0)
		bail("mkstemp: %s", strerror(errno));
	fflush(stderr);
	dup2(fd, 2);
	for (size_t i = 0; i < NLOW; i++) {
		beamalloc_free(a, low[i], 8);
		if (beamalloc_resize(a, low[i], 8, 8, 16) ||
		    beamalloc_remap(a, low[i], 8, 8, 32) != NULL ||
		    beamalloc_realloc(a, low[i], 8, 8, 32) != NULL)
			bail("a bad pointer resized");
		calls += 4;
	}
	if (beamalloc_resize(a, NULL, 8, 8, 16) ||
	    beamalloc_remap(a, NULL, 8, 8, 32) != NULL)
		bail("NULL resized");
	calls += 2;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	rewind(f);
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (strncmp(buf, "beamalloc: invalid free: ", 25) == 0)
			lines++;
		else if (strncmp(buf, "beamalloc: ", 11) == 0)
			other++;
	fclose(f);
	unlink(path);
	ok(lines == calls && other == 0, "global GPA: %zu bad calls, %zu "
	    "invalid-free reports, %zu others", calls, lines, other);
	{
		void *p = beamalloc_alloc(a, 24);

		ok(p != NULL, "global GPA: still serves");
		beamalloc_free(a, p, 24);
		is_size(beamalloc_gpa_detect_leaks(beamalloc_gpa_global()), 0,
		    "global GPA: no leak");
	}
}

int
main(void)
{
	for (int s = 0; s <= 1; s++)
		for (int ts = 0; ts <= 1; ts++)
			one_config(s, ts);
	same_length(false);
	same_length(true);
	null_gpa();
	global();
	return done_testing();
}
