/*
 * gpa_config.c - a GPA configured carelessly, or out of resources:
 * numeric fields at the ends of their range, a backing that runs out
 * while blocks are freed.  Each case checks what the man page promises,
 * and that the GPA still serves and destroys clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "beamalloc.h"
#include "child.h"
#include "tap.h"
#include "under.h"

static size_t nreports, nsampled, ndouble;

static void
count_report(void *user, const beamalloc_report *r)
{
	(void)user;
	nreports++;
	ndouble += r->kind == BEAMALLOC_REPORT_DOUBLE_FREE;
	if (r->kind == BEAMALLOC_REPORT_LEAK && r->not_sampled == 0)
		nsampled++;
}

static beamalloc_gpa *
make_over(beamalloc_allocator backing, beamalloc_gpa_config *cfg)
{
	cfg->report = count_report;
	return beamalloc_gpa_create(backing, cfg);
}

static beamalloc_gpa *
make(beamalloc_gpa_config *cfg)
{
	return make_over(beamalloc_libc(), cfg);
}

/* Whether the byte at p can be read: write(2) of it to a pipe fails with
 * EFAULT on a guard page, where a read would fault.  Through syscall(2):
 * ASan's write() would call the byte past a block an overflow. */
static bool
readable(const void *p)
{
	int fd[2];
	ssize_t n;

	if (pipe(fd) != 0)
		bail("pipe: %s", strerror(errno));
	n = syscall(SYS_write, fd[1], p, (size_t)1);
	close(fd[0]);
	close(fd[1]);
	return n == 1;
}

/* guard_sample and trace_sample past INT_MAX: 1 in N is about never, as
 * below it; the countdowns are ints, and took such an N for negative
 * (every allocation guarded, every one traced). */
#define NBLK 64
#define BLK 104			/* a multiple of 8: a guarded block ends a page */

static void
huge_samples(void)
{
	static const unsigned ns[] = { 0x80000001u, 0xfffffffeu, UINT_MAX };

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		beamalloc_gpa_config cfg;
		beamalloc_gpa *g;
		beamalloc_allocator a;
		void *p[NBLK];
		size_t guarded = 0, got = 0, leaks;

		beamalloc_gpa_config_init(&cfg);
		cfg.guard_sample = ns[k];
		g = make(&cfg);
		a = beamalloc_gpa_allocator(g);
		for (size_t i = 0; i < NBLK; i++)
			if ((p[i] = beamalloc_alloc(a, BLK)) != NULL) {
				got++;
				if (!UNDER_VALGRIND())
					guarded += !readable((char *)p[i] +
					    BLK);
			}
		/* The thread's first allocation may be the one guarded. */
		if (UNDER_VALGRIND())
			skip(1, "valgrind: the probe of the byte past a block "
			    "is an error there");
		else
			ok(got == NBLK && guarded <= 1, "guard_sample = %#x: "
			    "%zu of %d blocks guarded (at most the first)",
			    ns[k], guarded, NBLK);
		for (size_t i = 0; i < NBLK; i++)
			beamalloc_free(a, p[i], BLK);
		nreports = 0;
		leaks = beamalloc_gpa_destroy(g);
		ok(leaks == 0 && nreports == 0, "guard_sample = %#x: destroyed "
		    "clean", ns[k]);

		beamalloc_gpa_config_init(&cfg);
		cfg.stack_trace_depth = 4;
		cfg.trace_sample = ns[k];
		cfg.guard_sample = 0;
		g = make(&cfg);
		a = beamalloc_gpa_allocator(g);
		for (size_t i = 0; i < NBLK; i++)
			(void)beamalloc_alloc(a, BLK);	/* leaked */
		nreports = nsampled = 0;
		leaks = beamalloc_gpa_destroy(g);
		ok(leaks == NBLK && nreports == NBLK && nsampled <= 1,
		    "trace_sample = %#x: %zu of %zu leaks traced (at most the "
		    "first)", ns[k], nsampled, leaks);
	}
}

/* A backing that fails while `failing` is set. */
static bool failing;

static void *
f_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator b = beamalloc_libc();

	(void)ctx;
	return failing ? NULL : b.vtable->alloc(b.ctx, len, align, ra);
}

static bool
f_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return false;
}

static void *
f_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)len, (void)align, (void)new_len, (void)ra;
	return NULL;
}

static void
f_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_allocator b = beamalloc_libc();

	(void)ctx;
	b.vtable->free(b.ctx, mem, len, align, ra);
}

static const beamalloc_vtable f_vtable = { f_alloc, f_resize, f_remap,
	f_free };

/* Frees while the backing has no memory (no magazine for the slots):
 * once it has again, a trim gives every all-free slab back, as the man
 * page says, and the slots serve again.  Before, they stayed unused for
 * good and pinned their slabs. */
#define NFREE 20000

static void *p[NFREE];
static beamalloc_allocator alloc_of;

static void *
alloc_all(void *arg)
{
	size_t *n = arg;

	for (size_t i = 0; i < NFREE; i++)
		*n += (p[i] = beamalloc_alloc(alloc_of, 64)) != NULL;
	return NULL;
}

/* other: the blocks made by another thread (the frees go through the
 * outbox to that thread's cache). */
static void
short_frees(bool ts, bool junk, bool other)
{
	beamalloc_allocator back = { NULL, &f_vtable }, a;
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS], large;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	size_t n = 0, slabs = 0, again = 0;

	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = ts;
	cfg.junk = junk;
	cfg.quarantine = 0;
	cfg.guard_sample = 0;
	cfg.decay_ms = 0;
	g = make_over(back, &cfg);
	a = alloc_of = beamalloc_gpa_allocator(g);
	if (other) {
		pthread_t t;

		if (pthread_create(&t, NULL, alloc_all, &n) != 0)
			bail("pthread_create");
		pthread_join(t, NULL);
	} else
		(void)alloc_all(&n);
	failing = true;
	for (size_t i = 0; i < NFREE; i++)
		beamalloc_free(a, p[i], 64);
	failing = false;
	if (ts && !junk && !other) {
		/* A slot lost so is still a freed one: freed again, it is
		 * a double free (it was reported as an invalid one). */
		nreports = ndouble = 0;
		beamalloc_free(a, p[NFREE - 1], 64);
		ok(nreports == 1 && ndouble == 1, "a block freed again while "
		    "its slot waits for a magazine: one double free (%zu "
		    "reports, %zu double frees)", nreports, ndouble);
	}
	(void)beamalloc_gpa_trim(g);
	(void)beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS,
	    &large);
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++)
		slabs += cls[c].slabs;
	ok(n == NFREE && slabs == 0, "thread_safe %d, junk %d, other %d: %d "
	    "blocks freed with the backing out of memory, then a trim: %zu "
	    "slabs left (0)", ts, junk, other, NFREE, slabs);
	for (size_t i = 0; i < NFREE; i++)
		again += (p[i] = beamalloc_alloc(a, 64)) != NULL;
	for (size_t i = 0; i < NFREE; i++)
		beamalloc_free(a, p[i], 64);
	nreports = 0;
	ok(again == NFREE && beamalloc_gpa_destroy(g) == 0 && nreports == 0,
	    "thread_safe %d, junk %d, other %d: served again, destroyed "
	    "clean, nothing reported", ts, junk, other);
}

/* The process's address space in bytes (VmSize), or 0. */
static size_t
vm_size(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	size_t pages = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%zu", &pages) != 1)
		pages = 0;
	fclose(f);
	return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Guarded blocks among 16 of BLK bytes (-1: one not served). */
static int
guarded_of(beamalloc_allocator a)
{
	void *b[16];
	int n = 0;

	for (size_t i = 0; i < 16; i++)
		if ((b[i] = beamalloc_alloc(a, BLK)) == NULL)
			n = -1;
		else if (n >= 0)
			n += !readable((char *)b[i] + BLK);
	for (size_t i = 0; i < 16; i++)
		beamalloc_free(a, b[i], BLK);
	return n;
}

/* In a child: the first guarded blocks come while the address space is
 * too short for the guard pool (RLIMIT_AS), then with room.  How many
 * were guarded, into got[0] and got[1]; exit 0 if all went well. */
static int
pool_later(void *arg)
{
	int *got = arg;
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	struct rlimit old, tight;

	beamalloc_gpa_config_init(&cfg);
	cfg.guard_sample = 1;
	if ((g = make(&cfg)) == NULL || getrlimit(RLIMIT_AS, &old) != 0)
		return 1;
	a = beamalloc_gpa_allocator(g);
	tight = old;
	tight.rlim_cur = vm_size() + (1u << 20);	/* the pool is 4 MiB */
	if (setrlimit(RLIMIT_AS, &tight) != 0)
		return 1;
	got[0] = guarded_of(a);
	if (setrlimit(RLIMIT_AS, &old) != 0)
		return 1;
	got[1] = guarded_of(a);
	return got[0] < 0 || got[1] < 0 || beamalloc_gpa_destroy(g) != 0;
}

static void
guard_pool_later(void)
{
	int *got = child_shared(2 * sizeof(int)), st;

#if UNDER_ASAN
	skip(2, "ASan reserves its own address space: no RLIMIT_AS here");
	return;
#endif
	if (UNDER_VALGRIND()) {
		skip(2, "valgrind keeps its own address space: no RLIMIT_AS "
		    "here, and the probe past a block is an error there");
		return;
	}
	got[0] = got[1] = -1;
	st = child_run(pool_later, got, 0, NULL, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "guard_sample = 1, the "
	    "guard pool not to be had at first: every block served, "
	    "destroyed clean");
	ok(got[0] == 0 && got[1] == 16, "guarded blocks of 16, the address "
	    "space short, then with room: %d, then %d (0, then 16)", got[0],
	    got[1]);
}

/* struct_size 0 is no version's config: refused, not read as "every
 * field its default" (the report callback and the limit ignored). */
static void
zero_struct_size(void)
{
	beamalloc_gpa_config zeroed, designated = { .memory_limit = 4096 },
	    big;
	beamalloc_gpa *g;

	memset(&zeroed, 0, sizeof(zeroed));
	errno = 0;
	ok(beamalloc_gpa_create(beamalloc_libc(), &zeroed) == NULL &&
	    errno == EINVAL, "struct_size 0 (a zeroed config): create NULL + "
	    "EINVAL");
	errno = 0;
	ok(beamalloc_gpa_checkout(beamalloc_libc(), &zeroed) == NULL &&
	    errno == EINVAL, "struct_size 0: checkout NULL + EINVAL");
	errno = 0;
	ok(beamalloc_gpa_create(beamalloc_libc(), &designated) == NULL &&
	    errno == EINVAL, "struct_size 0 (designated initializers only): "
	    "create NULL + EINVAL");
	/* Larger than this version's: every field read. */
	beamalloc_gpa_config_init(&big);
	big.struct_size = SIZE_MAX;
	big.memory_limit = 4096;
	g = make(&big);
	errno = 0;
	ok(g != NULL && beamalloc_alloc(beamalloc_gpa_allocator(g), 8192) ==
	    NULL && errno == ENOMEM, "struct_size SIZE_MAX: served, with its "
	    "memory_limit");
	ok(beamalloc_gpa_destroy(g) == 0, "struct_size SIZE_MAX: destroyed "
	    "clean");
}

int
main(void)
{
	zero_struct_size();
	guard_pool_later();
	huge_samples();
	short_frees(true, false, false);
	short_frees(false, false, false);
	short_frees(true, true, false);
	short_frees(true, false, true);
	return done_testing();
}
