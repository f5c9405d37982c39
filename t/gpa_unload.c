/*
 * gpa_unload.c - the global GPA's memory goes back when its copy of the
 * library is unloaded, as a NIF linked with libbeamalloc.a is when its
 * module is purged, and is left alone at exit(3), where other threads may
 * still be inside it.
 *
 * The test program is not linked with the library: it dlopens
 * lib/.libs/libbeamalloc.so, a copy of its own each time, whose weak
 * enif_* references bind to t/enif_stub.c here (exported), so the copy
 * runs as inside the VM (decay thread and all) and the stub counts what
 * it holds.  Only what is guaranteed is asserted: everything back when no
 * block is live; less held when one is (decay off, so that nothing but
 * the unload trims); a clean exit with threads still allocating.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beamalloc.h"
#include "child.h"
#include "enif_stub.h"
#include "tap.h"
#include "under.h"

#define NBLK 4000		/* blocks per thread per round */
#define NTHR 2
#define NWIDE 10000		/* over-aligned blocks */

/* A loaded copy and the functions the test calls in it. */
struct copy {
	void *h;
	bool (*in_vm)(void);
	beamalloc_allocator (*gp)(void);
	beamalloc_gpa *(*global)(void);
	void (*stats)(beamalloc_gpa *, beamalloc_gpa_stats *);
	void *(*alloc)(beamalloc_allocator, size_t);
	void (*free)(beamalloc_allocator, void *, size_t);
	beamalloc_allocator (*wide)(void);
	void *(*alloc_aligned)(beamalloc_allocator, size_t, size_t);
	void (*free_aligned)(beamalloc_allocator, void *, size_t, size_t);
};

/* What a worker thread does with the copy's global GPA. */
struct work {
	struct copy *c;
	size_t n;		/* blocks a round */
	size_t keep;		/* blocks left live: the first keep */
	void *kept;		/* the first of them */
	atomic_int *stop;	/* NULL: one round; else until set */
	atomic_int rounds;
};

static char lib_path[4096];

static void
sym(struct copy *c, void *fn, const char *name)
{
	void *p = dlsym(c->h, name);

	if (p == NULL)
		bail("dlsym %s: %s", name, dlerror());
	memcpy(fn, &p, sizeof(p));
}

static bool
copy_open_at(struct copy *c, const char *path)
{
	if ((c->h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		diag("dlopen %s: %s", path, dlerror());
		return false;
	}
	sym(c, &c->in_vm, "beamalloc_in_vm");
	sym(c, &c->gp, "beamalloc_general_purpose");
	sym(c, &c->global, "beamalloc_gpa_global");
	sym(c, &c->stats, "beamalloc_gpa_get_stats");
	sym(c, &c->alloc, "beamalloc_alloc");
	sym(c, &c->free, "beamalloc_free");
	sym(c, &c->wide, "beamalloc_wide");
	sym(c, &c->alloc_aligned, "beamalloc_alloc_aligned");
	sym(c, &c->free_aligned, "beamalloc_free_aligned");
	return true;
}

static bool
copy_open(struct copy *c)
{
	return copy_open_at(c, lib_path);
}

/* Block i's length: small ones of every class, a large one in 50. */
static size_t
len_of(size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u;

	return 16 + x % (i % 50 == 0 ? 200000 : 16000);
}

static void *
worker(void *arg)
{
	struct work *w = arg;
	beamalloc_allocator a = w->c->gp();
	void **p = malloc(NBLK * sizeof(*p));

	if (p == NULL)
		abort();
	do {
		for (size_t i = 0; i < w->n; i++)
			if ((p[i] = w->c->alloc(a, len_of(i))) == NULL)
				abort();
		for (size_t i = w->keep; i < w->n; i++)
			w->c->free(a, p[i], len_of(i));
		w->rounds++;
	} while (w->stop != NULL && !atomic_load(w->stop));
	if (w->keep != 0)
		w->kept = p[0];
	free(p);
	return NULL;
}

/* NTHR threads, one round each; w[0] keeps its first keep blocks. */
static void
churn(struct copy *c, size_t keep, void **kept)
{
	pthread_t t[NTHR];
	struct work w[NTHR];

	for (int i = 0; i < NTHR; i++) {
		w[i] = (struct work){ c, NBLK, i == 0 ? keep : 0, NULL, NULL,
		    0 };
		if (pthread_create(&t[i], NULL, worker, &w[i]) != 0)
			bail("pthread_create");
	}
	for (int i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	if (kept != NULL)
		*kept = w[0].kept;
}

static size_t
held_bytes(void)
{
	size_t blocks, bytes;

	stub_held(&blocks, &bytes);
	return bytes;
}

/* Every block freed: the whole GPA goes back at dlclose. */
static void
all_freed(void)
{
	struct copy c;
	beamalloc_gpa_stats st;
	size_t b0, y0, b1, y1;

	stub_held(&b0, &y0);
	if (!ok(copy_open(&c) && c.in_vm(),
	    "a copy of the library loads, over the stub's enif_alloc")) {
		skip(3, "no copy");
		return;
	}
	churn(&c, 0, NULL);
	c.stats(c.global(), &st);
	ok(st.live_blocks == 0 && held_bytes() > y0,
	    "%d threads' blocks all freed; the GPA holds %zu bytes of the "
	    "stub's", NTHR, held_bytes() - y0);
	dlclose(c.h);
	stub_held(&b1, &y1);
	is_size(y1, y0, "after dlclose, every byte is back");
	is_size(b1, b0, "and every block");
}

/* A block left live: it and its slab stay (it may still be in use), the
 * rest goes. */
static void
one_live(void)
{
	struct copy c;
	size_t y0, before, after;
	static void *kept;		/* reachable at exit: memcheck */

	setenv("BEAMALLOC_GPA_OPTIONS", "decay=0", 1);
	y0 = held_bytes();
	if (!copy_open(&c)) {
		unsetenv("BEAMALLOC_GPA_OPTIONS");
		skip(3, "no copy");
		return;
	}
	churn(&c, 1, &kept);
	before = held_bytes();
	dlclose(c.h);
	unsetenv("BEAMALLOC_GPA_OPTIONS");
	after = held_bytes();
	diag("one block live: %zu bytes held before dlclose, %zu after",
	    before - y0, after - y0);
	ok(after < before, "one block live: the GPA is trimmed at dlclose");
	ok(after > y0, "but not destroyed");
	memset(kept, 0x5a, len_of(0));
	ok(((unsigned char *)kept)[len_of(0) - 1] == 0x5a,
	    "the live block stays usable");
}

/* The wide allocator's registry of over-aligned blocks is the VM's memory
 * too (48-byte entries, at most 3/4 full), shrinks as they are freed, and
 * goes with the copy. */
static void
wide_registry(void)
{
	static void *p[NWIDE];
	struct copy c;
	beamalloc_allocator w;
	size_t y0, held;

	y0 = held_bytes();
	if (!copy_open(&c)) {
		skip(3, "no copy");
		return;
	}
	w = c.wide();
	for (size_t i = 0; i < NWIDE; i++)
		if ((p[i] = c.alloc_aligned(w, 16, 64)) == NULL)
			bail("alloc_aligned");
	held = held_bytes() - y0;
	diag("%d blocks of 16 B at 64: %zu bytes of the stub's, %zu past "
	    "the blocks'", NWIDE, held, held - NWIDE * (16 + 64));
	ok(held >= (size_t)NWIDE * (16 + 64 + 48),
	    "%d blocks of 16 B at alignment 64: the registry is the VM's "
	    "memory too", NWIDE);
	for (size_t i = 0; i < NWIDE; i++)
		c.free_aligned(w, p[i], 16, 64);
	held = held_bytes() - y0;
	ok(held <= 64 * 48, "all freed: the registry shrank to its "
	    "smallest (%zu bytes)", held);
	dlclose(c.h);
	is_size(held_bytes(), y0, "and went with the copy");
}

/* Frees the stub saw since exit(3) began (in the child; read by the
 * parent). */
static atomic_size_t *exit_frees;

static void
count_free(size_t len)
{
	(void)len;
	atomic_fetch_add(exit_frees, 1);
}

/* Registered before the copy is loaded, so it runs after the copy's own
 * handler, and before every destructor. */
static void
exit_watch(void)
{
	stub_free_hook = count_free;
}

/* exit(3) after the work: nothing of the global GPA is given back (the
 * destructors cannot tell whether threads are still inside it).  Its
 * threads ended and no decay: no other free can come. */
static int
exit_idle(void *arg)
{
	struct copy c;

	(void)arg;
	setenv("BEAMALLOC_GPA_OPTIONS", "decay=0", 1);
	if (atexit(exit_watch) != 0 || !copy_open(&c))
		return 2;
	churn(&c, 0, NULL);
	return 0;
}

/* exit(3) with threads inside the global GPA: the destructors must not
 * take it from under them.  One block a round, so that it is often
 * empty (a destructor that went by its block count alone would destroy
 * it).  Static: the threads outlive this frame. */
static int
exit_busy(void *arg)
{
	static atomic_int stop;
	static struct copy c;
	static struct work w[NTHR];
	pthread_t t[NTHR];

	(void)arg;
	if (!copy_open(&c))
		return 2;
	for (int i = 0; i < NTHR; i++) {
		w[i] = (struct work){ &c, 1, 0, NULL, &stop, 0 };
		if (pthread_create(&t[i], NULL, worker, &w[i]) != 0)
			return 3;
	}
	for (int i = 0; i < NTHR; i++)
		while (atomic_load(&w[i].rounds) < 1000)
			sched_yield();
	return 0;			/* through exit(), threads running */
}

/* ---- the GPA's SIGSEGV handler goes with its copy ----------------------- */

static volatile uintptr_t fault_at = 16;

static void
host_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	_exit(42);
}

/* A host's crash handler, then a copy whose guarded block installs the
 * GPA's over it, unloaded: the host's next fault must reach its own. */
static int
segv_after_unload(void *arg)
{
	struct sigaction sa;
	void (*cfg_init)(beamalloc_gpa_config *);
	beamalloc_gpa *(*create)(beamalloc_allocator,
	    const beamalloc_gpa_config *);
	beamalloc_allocator (*gpa_alloc)(beamalloc_gpa *), (*libc)(void);
	size_t (*destroy)(beamalloc_gpa *);
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	struct copy c;
	void *p;

	(void)arg;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = host_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0 || !copy_open(&c))
		return 2;
	sym(&c, &cfg_init, "beamalloc_gpa_config_init");
	sym(&c, &create, "beamalloc_gpa_create");
	sym(&c, &gpa_alloc, "beamalloc_gpa_allocator");
	sym(&c, &libc, "beamalloc_libc");
	sym(&c, &destroy, "beamalloc_gpa_destroy");
	cfg_init(&cfg);
	cfg.guard_sample = 1;
	if ((g = create(libc(), &cfg)) == NULL ||
	    (p = c.alloc(gpa_alloc(g), 100)) == NULL)
		return 3;
	c.free(gpa_alloc(g), p, 100);
	(void)destroy(g);
	dlclose(c.h);
	*(volatile int *)fault_at = 1;
	return 4;
}

/* ---- several copies, each with guarded sampling ------------------------ */

/* Two NIFs each linked with libbeamalloc.a are two copies of the library
 * in the process: here two copies of the shared library under two names
 * (one name is one copy).  Each installs its handler over the one before
 * at its first guarded block, so the second's chains to the first's; the
 * first unloaded while the second stays (or before it), the second's
 * handler jumped into unmapped memory at the next fault, or was put back
 * dangling by the second's unload: the process died of a second SIGSEGV
 * and the host's handler never ran. */
static char copy_path[2][4096];

/* A guarded block of 100 bytes from a new GPA of copy c. */
static char *
guarded_block(struct copy *c)
{
	void (*cfg_init)(beamalloc_gpa_config *);
	beamalloc_gpa *(*create)(beamalloc_allocator,
	    const beamalloc_gpa_config *);
	beamalloc_allocator (*gpa_alloc)(beamalloc_gpa *), (*libc)(void);
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;

	sym(c, &cfg_init, "beamalloc_gpa_config_init");
	sym(c, &create, "beamalloc_gpa_create");
	sym(c, &gpa_alloc, "beamalloc_gpa_allocator");
	sym(c, &libc, "beamalloc_libc");
	cfg_init(&cfg);
	cfg.guard_sample = 1;
	if ((g = create(libc(), &cfg)) == NULL)
		return NULL;
	return c->alloc(gpa_alloc(g), 100);
}

/* arg: the copies unloaded, in order ("A", "AB", "BA"), before a fault
 * of the host's; or "ovfA": copy A's block overflowed, both loaded. */
static int
segv_two_copies(void *arg)
{
	const char *order = arg;
	struct sigaction sa;
	struct copy c[2];
	char *p[2];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = host_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0)
		return 2;
	for (int i = 0; i < 2; i++)
		if (!copy_open_at(&c[i], copy_path[i]) ||
		    (p[i] = guarded_block(&c[i])) == NULL)
			return 3;
	if (strcmp(order, "ovfA") == 0) {
		dprintf(STDERR_FILENO, "block %p\n", (void *)p[0]);
		p[0][200] = 1;		/* its guard page */
		return 4;
	}
	for (; *order != '\0'; order++)
		dlclose(c[*order - 'A'].h);
	*(volatile int *)fault_at = 1;
	return 4;
}

static bool
copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;
	bool ok_ = in != NULL && out != NULL;

	while (ok_ && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok_ = fwrite(buf, 1, n, out) == n;
	ok_ = ok_ && !ferror(in);
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		ok_ = false;
	return ok_;
}

static void
two_copies(void)
{
	static const char *const orders[] = { "A", "AB", "BA" };
	const char *tmp = getenv("TMPDIR");
	char dir[2048], err[4096], how[32], want[64];
	void *blk;
	int st;

	snprintf(dir, sizeof(dir), "%s/gpa_unload.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		bail("mkdtemp %s", dir);
	for (int i = 0; i < 2; i++) {
		snprintf(copy_path[i], sizeof(copy_path[i]), "%s/copy%c.so",
		    dir, 'A' + i);
		if (!copy_file(lib_path, copy_path[i]))
			bail("copy %s to %s", lib_path, copy_path[i]);
	}
	for (size_t k = 0; k < sizeof(orders) / sizeof(orders[0]); k++) {
		st = child_run(segv_two_copies, (void *)orders[k], 0, NULL, 0);
		if (!ok(child_exited(st, 42), "two copies with guarded "
		    "blocks, %s unloaded: the host's next fault reaches its "
		    "own SIGSEGV handler", orders[k]))
			diag("child: %s", child_how(st, how));
	}
	st = child_run(segv_two_copies, "ovfA", 0, err, sizeof(err));
	if (sscanf(err, "block %p", &blk) != 1)
		blk = NULL;
	snprintf(want, sizeof(want), "overflow past block %p of 100 bytes",
	    blk);
	if (!ok(child_exited(st, 42) && blk != NULL &&
	    strstr(err, want) != NULL,
	    "two copies: the first one's overflow named through the "
	    "second's handler, then the host's"))
		diag("child: %s: %s", child_how(st, how), err);
	for (int i = 0; i < 2; i++)
		unlink(copy_path[i]);
	rmdir(dir);
}

int
main(void)
{
	const char *top = getenv("top_builddir");
	char err[4096], how[32];
	int st;

	snprintf(lib_path, sizeof(lib_path), "%s/lib/.libs/libbeamalloc.so",
	    top != NULL ? top : ".");
	if (access(lib_path, R_OK) != 0)
		skip_all("%s: no shared library (--disable-shared)", lib_path);
	plan(19);
	alarm(600);
	all_freed();
	one_live();
	wide_registry();
	if (UNDER_VALGRIND() || UNDER_ASAN)
		skip(1, "a fault on purpose, under a checker's own handler");
	else {
		st = child_run(segv_after_unload, NULL, 0, NULL, 0);
		if (!ok(child_exited(st, 42), "a guarded block's copy "
		    "unloaded: the host's next fault reaches its own "
		    "SIGSEGV handler"))
			diag("child: %s", child_how(st, how));
	}
	if (UNDER_VALGRIND() || UNDER_ASAN)
		skip(4, "faults on purpose, under a checker's own handler");
	else
		two_copies();
	exit_frees = child_shared(sizeof(*exit_frees));
	st = child_run(exit_idle, NULL, CHILD_EXIT, err, sizeof(err));
	if (!ok(child_exited(st, 0) && atomic_load(exit_frees) == 0,
	    "exit(3) after the work: the global GPA is left as it is"))
		diag("%s, %zu blocks freed at exit: %s", child_how(st, how),
		    atomic_load(exit_frees), err);
	/* Threads running at exit: memcheck calls their TLS lost. */
	if (UNDER_VALGRIND())
		skip(3, "exit(3) with threads running, under memcheck");
	else
		for (int i = 0; i < 3; i++) {
			st = child_run(exit_busy, NULL, CHILD_EXIT, err,
			    sizeof(err));
			if (!ok(child_exited(st, 0), "exit(3) with %d threads "
			    "allocating from the global GPA: a clean exit "
			    "(%d)", NTHR, i + 1))
				diag("%s: %s", child_how(st, how), err);
		}
	return done_testing();
}
