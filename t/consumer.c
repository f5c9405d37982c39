/*
 * consumer.c - a plain C program using libbeamalloc the way a user would:
 * built outside the source tree with nothing but the installed header and
 * `pkg-config --cflags --libs beamalloc` (or --static).  Used by
 * t/pkgconfig.sh (against a DESTDIR install), by the Debian autopkgtest
 * and by .ci/package (against the installed packages).  Prints TAP.
 */
#include <beamalloc.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int n, failed;

static void
ok(int cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++n, what);
	if (!cond)
		failed = 1;
}

static void
quiet(void *user, const beamalloc_report *r)
{
	(void)r;
	++*(size_t *)user;
}

int
main(void)
{
	beamalloc_allocator libc = beamalloc_libc(), wide = beamalloc_wide();
	beamalloc_gpa_config cfg;
	beamalloc_gpa *gpa;
	beamalloc_allocator g;
	beamalloc_arena *arena;
	size_t reports = 0;
	char *s;
	void *p;

	ok(strcmp(BEAMALLOC_VERSION, "") != 0, "BEAMALLOC_VERSION is set");
	ok(!beamalloc_in_vm(), "outside the VM");

	s = beamalloc_dup(libc, "hello", 6);
	ok(s != NULL && strcmp(s, "hello") == 0, "beamalloc_dup over libc");
	beamalloc_free(libc, s, 6);

	errno = 0;
	ok(beamalloc_alloc_aligned(beamalloc_beam(), 64, 64) == NULL &&
	    errno == EINVAL, "the BEAM allocator refuses 64-byte alignment");
	p = beamalloc_alloc_aligned(wide, 4096, 4096);
	ok(p != NULL && (uintptr_t)p % 4096 == 0, "the wide allocator: a page");
	beamalloc_free_aligned(wide, p, 4096, 4096);

	beamalloc_gpa_config_init(&cfg);
	cfg.report = quiet;
	cfg.report_user = &reports;
	gpa = beamalloc_gpa_create(wide, &cfg);
	ok(gpa != NULL, "a GPA over the wide allocator");
	if (gpa == NULL)
		return 1;
	g = beamalloc_gpa_allocator(gpa);
	arena = beamalloc_arena_create(g);
	ok(arena != NULL, "an arena over the GPA");
	if (arena == NULL)
		return 1;
	for (int i = 0; i < 100; i++)
		if (beamalloc_alloc(beamalloc_arena_allocator(arena), 40) == NULL)
			failed = 1;
	beamalloc_arena_destroy(arena);
	p = beamalloc_alloc(g, 24);		/* leaked on purpose */
	ok(p != NULL, "a GPA allocation");
	ok(beamalloc_gpa_destroy(gpa) == 1 && reports == 1,
	    "the GPA finds and reports the one leak");

	printf("1..%d\n", n);
	return failed;
}
