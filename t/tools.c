/*
 * tools.c - memory checkers see inside our slabs and chunks.  Each case
 * plants one bug (use after free, overflow, use after reset or destroy)
 * in a block of the GPA, an arena or a fixed buffer, in a child process,
 * and checks that the tool reports it at the planted address, as it would
 * for malloc.  A clean case, using every allocator correctly, must give
 * no report: the annotations raise no false alarm.
 *
 * In a build with AddressSanitizer (configure --enable-sanitizers) the
 * child is a fork and ASan is the tool.  Otherwise the child is this
 * program run again under valgrind, which needs the library built with
 * valgrind's headers; BEAMALLOC_REQUIRE_TOOLS=1 makes a missing tool a
 * failure instead of a skip.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "tap.h"
#include "tools.h"		/* BA_ASAN */

/* ------------------------------------------------------------------------
 * The cases, run in the child
 * ---------------------------------------------------------------------- */

static volatile unsigned char sink;

/* Print the address about to be touched, then touch it; a case that
 * returns was not stopped by the tool. */
static void
plant(const char *what, volatile unsigned char *p, int write)
{
	fprintf(stderr, "planting %s at %p\n", what, (void *)p);
	fflush(stderr);
	if (write)
		*p = 1;
	else
		sink = *p;
}

static beamalloc_allocator
new_gpa(void)
{
	beamalloc_gpa *g = beamalloc_gpa_create(beamalloc_libc(), NULL);

	if (g == NULL)
		exit(3);
	return beamalloc_gpa_allocator(g);
}

static beamalloc_arena *
new_arena(void)
{
	beamalloc_arena *ar = beamalloc_arena_create(beamalloc_libc());

	if (ar == NULL)
		exit(3);
	return ar;
}

static unsigned char fixed_mem[4096];

static beamalloc_allocator
new_fixed(beamalloc_fixed *fb)
{
	beamalloc_fixed_init(fb, fixed_mem, sizeof(fixed_mem));
	return beamalloc_fixed_allocator(fb);
}

static void
gpa_use_after_free(void)
{
	beamalloc_allocator a = new_gpa();
	unsigned char *p = beamalloc_alloc(a, 64);
	unsigned char *q = beamalloc_alloc(a, 64);	/* keeps the slab busy */

	beamalloc_free(a, p, 64);
	plant("a read of a freed GPA slot", p + 8, 0);
	beamalloc_free(a, q, 64);
}

/* A guarded block (guard_sample=1: every one) lives in a page of its
 * own, outside the slabs: its free is shown to the checker all the
 * same. */
static void
gpa_guarded_use_after_free(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	unsigned char *p;

	beamalloc_gpa_config_init(&cfg);
	cfg.guard_sample = 1;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		exit(3);
	a = beamalloc_gpa_allocator(g);
	if ((p = beamalloc_alloc(a, 64)) == NULL)
		exit(3);
	beamalloc_free(a, p, 64);
	plant("a read of a freed guarded GPA block", p + 8, 0);
}

static void
gpa_overflow(void)
{
	beamalloc_allocator a = new_gpa();
	unsigned char *p = beamalloc_alloc(a, 40);	/* in a 64-byte slot */

	plant("a write one past a 40-byte GPA block", p + 40, 1);
}

static void
gpa_shrunk(void)
{
	beamalloc_allocator a = new_gpa();
	unsigned char *p = beamalloc_alloc(a, 60);

	/* In place: within its size class. */
	if (!beamalloc_resize(a, p, 60, 8, 57))
		exit(3);
	plant("a write past a GPA block shrunk from 60 to 57", p + 57, 1);
}

static void
gpa_large_use_after_free(void)
{
	beamalloc_allocator a = new_gpa();
	unsigned char *p = beamalloc_alloc(a, 100000);

	beamalloc_free(a, p, 100000);
	plant("a read of a freed large GPA block", p + 5000, 0);
}

static void
arena_use_after_reset(void)
{
	beamalloc_arena *ar = new_arena();
	unsigned char *p = beamalloc_alloc(beamalloc_arena_allocator(ar), 100);

	p[0] = 1;
	beamalloc_arena_reset(ar);
	plant("a read of an arena block after reset", p + 4, 0);
}

static void
arena_overflow(void)
{
	beamalloc_arena *ar = new_arena();
	unsigned char *p = beamalloc_alloc(beamalloc_arena_allocator(ar), 100);

	plant("a write one past the last arena block", p + 100, 1);
}

static void
arena_use_after_destroy(void)
{
	beamalloc_arena *ar = new_arena();
	unsigned char *p = beamalloc_alloc(beamalloc_arena_allocator(ar), 100);

	beamalloc_arena_destroy(ar);
	plant("a read of an arena block after destroy", p, 0);
}

static void
arena_alloc_after_destroy(void)
{
	beamalloc_arena *ar = new_arena();
	beamalloc_allocator a = beamalloc_arena_allocator(ar);

	beamalloc_arena_destroy(ar);
	/* The arena's bump pointer is its first field: the first read.
	 * (destroy zeroed it, so without a tool this faults on NULL.) */
	fprintf(stderr, "planting an allocation from a destroyed arena at "
	    "%p\n", (void *)ar);
	fflush(stderr);
	sink = beamalloc_alloc(a, 10) != NULL;
}

static void
fixed_use_after_free(void)
{
	beamalloc_fixed fb;
	beamalloc_allocator a = new_fixed(&fb);
	unsigned char *p = beamalloc_alloc(a, 64);

	beamalloc_free(a, p, 64);
	plant("a read of a freed fixed-buffer block", p + 8, 0);
}

static void
fixed_overflow(void)
{
	beamalloc_fixed fb;
	beamalloc_allocator a = new_fixed(&fb);
	unsigned char *p = beamalloc_alloc(a, 64);

	plant("a write one past a fixed-buffer block", p + 64, 1);
}

static beamalloc_pool *
new_pool(void)
{
	beamalloc_pool *pool = beamalloc_pool_create(beamalloc_libc(), 64, 8,
	    4, true);

	if (pool == NULL)
		exit(3);
	return pool;
}

static void
pool_use_after_put(void)
{
	beamalloc_pool *pool = new_pool();
	unsigned char *p = beamalloc_pool_get(pool);

	beamalloc_pool_put(pool, p);
	plant("a read of a pool item after put", p + 8, 0);
}

/* The link word of a free item is the pool's: a write there is a use
 * after free too. */
static void
pool_link_write(void)
{
	beamalloc_pool *pool = new_pool();
	unsigned char *p = beamalloc_pool_get(pool);

	beamalloc_pool_put(pool, p);
	plant("a write to a put pool item's first byte", p, 1);
}

static void
pool_overflow(void)
{
	beamalloc_pool *pool = new_pool();
	unsigned char *p = beamalloc_alloc(beamalloc_pool_allocator(pool), 40);

	plant("a write one past a 40-byte block of a 64-byte pool item",
	    p + 40, 1);
}

/* Every allocator used correctly, every byte handed out written and
 * read: no report allowed. */
/* Guarded blocks used correctly, their slots taken again many times (the
 * library looks at a freed block's junk then; the program does not). */
static void
clean_guarded(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;

	beamalloc_gpa_config_init(&cfg);
	cfg.guard_sample = 1;
	cfg.canary = cfg.junk = true;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		exit(3);
	a = beamalloc_gpa_allocator(g);
	for (size_t k = 0; k < 100; k++) {
		unsigned char *p = beamalloc_alloc(a, 24 + k);

		if (p == NULL)
			exit(3);
		memset(p, 0x5a, 24 + k);
		if ((p = beamalloc_realloc(a, p, 24 + k, 8, 100 + k)) == NULL)
			exit(3);
		memset(p + 24 + k, 0xa5, 76);
		sink = p[99 + k];
		beamalloc_free(a, p, 100 + k);
	}
	if (beamalloc_gpa_destroy(g) != 0)
		exit(4);
}

static void
clean(void)
{
	beamalloc_gpa *g = beamalloc_gpa_create(beamalloc_libc(), NULL);
	beamalloc_arena *ar = new_arena();
	beamalloc_fixed fb;
	beamalloc_pool *pool = beamalloc_pool_create(beamalloc_libc(), 200, 8,
	    0, true);
	static unsigned char sbuf[512];
	beamalloc_stackfb sfb;
	beamalloc_locked lk;
	beamalloc_logging lg;
	FILE *devnull = fopen("/dev/null", "w");
	beamalloc_allocator as[7];
	static const size_t lens[] = { 1, 24, 64, 100, 5000, 100000 };

	if (g == NULL || pool == NULL || devnull == NULL)
		exit(3);
	as[0] = beamalloc_gpa_allocator(g);
	as[1] = beamalloc_arena_allocator(ar);
	as[2] = new_fixed(&fb);
	as[3] = beamalloc_pool_allocator(pool);
	beamalloc_stackfb_init(&sfb, sbuf, sizeof(sbuf), beamalloc_libc());
	as[4] = beamalloc_stackfb_allocator(&sfb);
	if (beamalloc_locked_init(&lk, as[1]) != 0)
		exit(3);
	as[5] = beamalloc_locked_allocator(&lk);
	beamalloc_logging_init(&lg, beamalloc_libc(), "clean", NULL, devnull);
	as[6] = beamalloc_logging_allocator(&lg);
	for (int i = 0; i < 7; i++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t n = lens[k], m = n + 10;
			unsigned char *p = beamalloc_alloc(as[i], n);

			if (p == NULL)
				continue;	/* fixed buffer, pool items */
			memset(p, 0x5a, n);
			p = beamalloc_realloc(as[i], p, n, 8, m);
			if (p == NULL && i == 3)
				continue;	/* past the item: kept */
			if (p == NULL)
				exit(3);
			memset(p + n, 0xa5, 10);
			if (beamalloc_resize(as[i], p, m, 8, m / 2))
				m /= 2;
			sink = p[m - 1];
			beamalloc_free(as[i], p, m);
		}
	}
	beamalloc_arena_reset(ar);
	sink = *(unsigned char *)beamalloc_alloc(as[1], 10) = 3;
	beamalloc_fixed_reset(&fb);
	beamalloc_locked_destroy(&lk);
	beamalloc_arena_destroy(ar);
	sink = *(unsigned char *)beamalloc_pool_get(pool) = 4;
	beamalloc_pool_destroy(pool);
	fclose(devnull);
	if (beamalloc_gpa_destroy(g) != 0)
		exit(4);
	clean_guarded();
}

static void *(*volatile memset_opaque)(void *, int, size_t) = memset;

/* A fixed buffer and a stack fallback over this frame's stack, used
 * correctly, then their bytes used as plain locals: what the compiler does
 * when it gives a block-scoped buffer's stack slot to a later variable of
 * the same frame (an inlined helper's buffer too).  No tool may see an
 * error there (found by a review: valgrind reported "Invalid write" on a
 * memset of the later local, marks the library had left on the slot). */
static __attribute__((noinline)) void
clean_stack(void)
{
	unsigned char buf[512];

	{
		beamalloc_fixed fb;
		beamalloc_allocator a;
		unsigned char *p;

		beamalloc_fixed_init(&fb, buf, sizeof(buf));
		a = beamalloc_fixed_allocator(&fb);
		if ((p = beamalloc_alloc(a, 64)) == NULL)
			exit(3);
		memset(p, 1, 64);
		p = beamalloc_realloc(a, p, 64, 8, 100);
		if (p == NULL)
			exit(3);
		sink = p[99] = 2;
		beamalloc_free(a, p, 100);
		if (beamalloc_alloc(a, 32) == NULL)
			exit(3);
		beamalloc_fixed_reset(&fb);
	}
	{
		beamalloc_stackfb s;
		beamalloc_allocator a;
		unsigned char *p, *q;

		beamalloc_stackfb_init(&s, buf, sizeof(buf), beamalloc_libc());
		a = beamalloc_stackfb_allocator(&s);
		p = beamalloc_alloc(a, 200);
		q = beamalloc_alloc(a, 1000);	/* from the backing */
		if (p == NULL || q == NULL)
			exit(3);
		memset(p, 3, 200);
		memset(q, 4, 1000);
		beamalloc_free(a, q, 1000);
		beamalloc_free(a, p, 200);
	}
	/* Plain locals again, written through a call the compiler cannot
	 * see through (it would drop a memset of a dying array). */
	memset_opaque(buf, 0x33, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i += 64)
		sink = buf[i];
}

/* The planted fixed-buffer bugs use a static buffer: the tools are told
 * about buffers off the stack only (a stack buffer's marks would outlive
 * its scope: clean_stack). */

static const struct bug {
	const char *name;
	void (*run)(void);
	int write;		/* the planted access: 0 read, 1 write */
	const char *asan_todo;	/* ASan is known not to see it: why */
	size_t span;		/* the report may name up to span bytes on */
} bugs[] = {
	{ "gpa-use-after-free", gpa_use_after_free, 0, NULL, 1 },
	{ "gpa-overflow", gpa_overflow, 1, NULL, 1 },
	{ "gpa-shrunk", gpa_shrunk, 1, NULL, 1 },
	{ "gpa-large-use-after-free", gpa_large_use_after_free, 0, NULL, 1 },
	{ "gpa-guarded-use-after-free", gpa_guarded_use_after_free, 0, NULL,
	  1 },
	{ "arena-use-after-reset", arena_use_after_reset, 0, NULL, 1 },
	{ "arena-overflow", arena_overflow, 1, NULL, 1 },
	{ "arena-use-after-destroy", arena_use_after_destroy, 0, NULL, 1 },
	/* whichever field of the arena the compiler reads first */
	{ "arena-alloc-after-destroy", arena_alloc_after_destroy, 0, NULL,
	  64 },
	{ "fixed-use-after-free", fixed_use_after_free, 0, NULL, 1 },
	{ "fixed-overflow", fixed_overflow, 1, NULL, 1 },
	{ "pool-use-after-put", pool_use_after_put, 0, NULL, 1 },
	{ "pool-link-write", pool_link_write, 1, NULL, 1 },
	{ "pool-overflow", pool_overflow, 1, NULL, 1 },
};
#define NBUGS (sizeof(bugs) / sizeof(bugs[0]))

/* The child's work: 0 for a clean run, 5 for a bug nobody stopped. */
static int
child(const char *name)
{
	for (size_t i = 0; i < NBUGS; i++)
		if (strcmp(bugs[i].name, name) == 0) {
			bugs[i].run();
			return 5;
		}
	if (strcmp(name, "clean") == 0) {
		clean();
		return 0;
	}
	if (strcmp(name, "clean-stack") == 0) {
		clean_stack();
		return 0;
	}
	return 2;
}

/* ------------------------------------------------------------------------
 * The parent: run each case in a child, read what the tool said
 * ---------------------------------------------------------------------- */

struct outcome {
	int status;		/* exit status, or 128 + signal */
	char text[32768];	/* the child's stderr */
};

static const char *valgrind = "valgrind";
static char self[4096];		/* this program's binary (not a wrapper) */

/* The bug, under ASan in this child itself, else this program run again
 * under valgrind. */
static int
bug_child(void *name)
{
#ifdef BA_ASAN
	(void)valgrind, (void)self;
	return child(name);
#else
	execlp(valgrind, valgrind, "--error-exitcode=99", "--quiet",
	    "--leak-check=no", self, "--child", (const char *)name,
	    (char *)NULL);
	return 127;
#endif
}

static void
run_child(const char *name, struct outcome *o)
{
	int st = child_run(bug_child, (void *)name, 0, o->text,
	    sizeof(o->text));

	o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The address printed right after the first occurrence of marker, or 0. */
static uintptr_t
address_after(const char *text, const char *marker)
{
	const char *at = strstr(text, marker);

	if (at == NULL)
		return 0;
	return (uintptr_t)strtoull(at + strlen(marker), NULL, 16);
}

static void
diag_text(const char *text)
{
	const char *p = text;

	for (int i = 0; i < 16 && *p != '\0'; i++) {
		int n = (int)strcspn(p, "\n");

		diag("  %.*s", n, p);
		p += n + (p[n] == '\n');
	}
}

/* ok() with a TAP TODO directive when todo is set: a failure is expected
 * (XFAIL), a pass is news (XPASS, which fails the suite). */
static int
ok_todo(int cond, const char *todo, const char *name)
{
	if (todo == NULL)
		return ok(cond, "%s", name);
	printf("%sok %d - %s # TODO %s\n", cond ? "" : "not ", ++tap_run,
	    name, todo);
	fflush(stdout);
	return cond;
}

static void
check_bug(const struct bug *b, struct outcome *o)
{
	char name[256];
	uintptr_t planted, named;
	const char *access = b->write ? "write" : "read", *todo = NULL;
#ifdef BA_ASAN
	const char *tool = "ASan", *kind = b->write ? "WRITE of size" :
	    "READ of size", *where = "on address ";
	int reported;

	todo = b->asan_todo;
	run_child(b->name, o);
	reported = o->status != 0 && o->status != 5 &&
	    strstr(o->text, "ERROR: AddressSanitizer") != NULL &&
	    strstr(o->text, kind) != NULL;
#else
	const char *tool = "valgrind", *kind = b->write ?
	    "Invalid write of size" : "Invalid read of size",
	    *where = "Address 0x";
	int reported;

	run_child(b->name, o);
	/* valgrind goes on after a report: the program may then crash. */
	reported = (o->status == 99 || o->status > 128) &&
	    strstr(o->text, kind) != NULL;
#endif
	snprintf(name, sizeof(name), "%s: %s reports the bad %s (exit %d)",
	    b->name, tool, access, o->status);
	if (!ok_todo(reported, todo, name) && todo == NULL)
		diag_text(o->text);
	planted = address_after(o->text, " at 0x");
	named = address_after(o->text, where);
	snprintf(name, sizeof(name), "%s: %s names the planted address %#lx "
	    "(it says %#lx)", b->name, tool, (unsigned long)planted,
	    (unsigned long)named);
	ok_todo(planted != 0 && named >= planted && named - planted < b->span,
	    todo, name);
}

int
main(int argc, char **argv)
{
	static struct outcome o;
	const char *req = getenv("BEAMALLOC_REQUIRE_TOOLS");
	int need = req != NULL && strcmp(req, "1") == 0;

	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return child(argv[2]);
#ifndef BA_ASAN
#ifndef HAVE_VALGRIND_MEMCHECK_H
	if (need)
		bail("not an ASan build and no valgrind headers at build time, "
		    "but BEAMALLOC_REQUIRE_TOOLS=1");
	skip_all("not an ASan build, and no valgrind headers at build time");
#endif
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0)
		bail("readlink /proc/self/exe: %s", strerror(errno));
	if (getenv("VALGRIND") != NULL && getenv("VALGRIND")[0] == '/')
		valgrind = getenv("VALGRIND");
	if (access(valgrind, X_OK) != 0 &&
	    system("valgrind --version >/dev/null 2>&1") != 0) {
		if (need)
			bail("valgrind not found but BEAMALLOC_REQUIRE_TOOLS=1");
		skip_all("valgrind not found (apt-get install valgrind)");
	}
#else
	(void)need;
#endif
	plan((int)(2 * NBUGS + 2));
	run_child("clean", &o);
	if (!ok(o.status == 0, "clean use of the GPA, an arena and a fixed "
	    "buffer: no report (exit %d)", o.status))
		diag_text(o.text);
	run_child("clean-stack", &o);
	if (!ok(o.status == 0, "a fixed buffer and a stack fallback on the "
	    "stack, then their bytes as plain locals: no report (exit %d)",
	    o.status))
		diag_text(o.text);
	for (size_t i = 0; i < NBUGS; i++)
		check_bug(&bugs[i], &o);
	return done_testing();
}
