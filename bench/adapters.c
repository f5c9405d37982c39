/*
 * adapters.c - vtables for the allocators that are not libbeamalloc's.
 *
 * mimalloc, jemalloc and tcmalloc all export malloc/free: linked into the
 * benchmark they would replace malloc for the whole process, glibc and
 * libbeamalloc included, and only one of them could be measured per run.
 * So they are dlopen'ed with RTLD_LOCAL and called through dlsym'ed
 * pointers to their own entry points: each keeps its own heap beside
 * glibc's, and one process compares them all, interleaved.  An indirect
 * call per operation is what every allocator here pays anyway: it goes
 * through a vtable.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "adapters.h"

/* ------------------------------------------------------------------------
 * glibc
 * ---------------------------------------------------------------------- */

#define GLIBC_ALIGN 16	/* what malloc guarantees on x86-64 */

static void *
glibc_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	/* Never route alignment <= 16 through memalign: it is 2-3x slower. */
	if (align <= GLIBC_ALIGN)
		return malloc(len);
	return aligned_alloc(align, len);
}

/* No in-place grow in glibc's API; a shrink keeps the block. */
static bool
glibc_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len <= len;
}

static void *
glibc_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)ra;
	return align <= GLIBC_ALIGN ? realloc(mem, new_len) : NULL;
}

static void
glibc_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	free(mem);
}

static const beamalloc_vtable glibc_vtable = {
	glibc_alloc, glibc_resize, glibc_remap, glibc_free
};

beamalloc_allocator
bench_glibc(void)
{
	beamalloc_allocator a = { NULL, &glibc_vtable };

	return a;
}

size_t
bench_glibc_held(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.arena + mi.hblkhd;
}

size_t
bench_glibc_inuse(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* ------------------------------------------------------------------------
 * dlopen'd libraries: the entry points we use
 * ---------------------------------------------------------------------- */

static struct {
	/* mimalloc */
	void *(*mi_malloc)(size_t);
	void *(*mi_malloc_aligned)(size_t, size_t);
	void *(*mi_realloc)(void *, size_t);
	void *(*mi_realloc_aligned)(void *, size_t, size_t);
	void *(*mi_expand)(void *, size_t);
	void (*mi_free)(void *);
	int (*mi_version)(void);
	/* jemalloc (its unprefixed names, looked up in its own handle) */
	void *(*je_malloc)(size_t);
	void *(*je_mallocx)(size_t, int);
	void *(*je_rallocx)(void *, size_t, int);
	size_t (*je_xallocx)(void *, size_t, size_t, int);
	void (*je_sdallocx)(void *, size_t, int);
	int (*je_mallctl)(const char *, void *, size_t *, void *, size_t);
	/* tcmalloc */
	void *(*tc_malloc)(size_t);
	void *(*tc_memalign)(size_t, size_t);
	void *(*tc_realloc)(void *, size_t);
	void (*tc_free)(void *);
	void (*tc_free_sized)(void *, size_t);
	const char *(*tc_version)(int *, int *, const char **);
} X;

static struct ext_info ext[EXT_N] = {
	{ "mimalloc", "libmimalloc.so.2", "libmimalloc2.0", false, "", "" },
	{ "jemalloc", "libjemalloc.so.2", "libjemalloc2", false, "", "" },
	{ "tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4",
	    false, "", "" },
};

/* The alignment each returns from its plain malloc. */
#define EXT_ALIGN 16

/* ---- mimalloc ---- */

static void *
mi_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	return align <= EXT_ALIGN ? X.mi_malloc(len) :
	    X.mi_malloc_aligned(len, align);
}

static bool
mi_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)align, (void)ra;
	return new_len <= len || X.mi_expand(mem, new_len) != NULL;
}

static void *
mi_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)ra;
	return align <= EXT_ALIGN ? X.mi_realloc(mem, new_len) :
	    X.mi_realloc_aligned(mem, new_len, align);
}

static void
mi_release(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	X.mi_free(mem);
}

/* ---- jemalloc: sized free, alignment as a flag ---- */

static inline int
je_flags(size_t align)
{
	return align <= EXT_ALIGN ? 0 : ffsl((long)align) - 1;
}

static void *
je_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	/* malloc's fast path is jemalloc's quickest entry: mallocx with
	 * flags 0 takes the slower generic one. */
	return align <= EXT_ALIGN ? X.je_malloc(len) :
	    X.je_mallocx(len, je_flags(align));
}

static bool
je_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)ra;
	return X.je_xallocx(mem, new_len, 0, je_flags(align)) >= new_len;
}

static void *
je_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)ra;
	return X.je_rallocx(mem, new_len, je_flags(align));
}

static void
je_release(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	X.je_sdallocx(mem, len, je_flags(align));
}

/* ---- tcmalloc: sized free where the size class is exact ---- */

static void *
tc_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	return align <= EXT_ALIGN ? X.tc_malloc(len) :
	    X.tc_memalign(align, len);
}

static bool
tc_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)mem, (void)align, (void)ra;
	return new_len <= len;
}

static void *
tc_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)ra;
	return align <= EXT_ALIGN ? X.tc_realloc(mem, new_len) : NULL;
}

static void
tc_release(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)ra;
	/* memalign may have rounded the block up: no sized free for it. */
	if (align <= EXT_ALIGN)
		X.tc_free_sized(mem, len);
	else
		X.tc_free(mem);
}

static const beamalloc_vtable ext_vtable[EXT_N] = {
	{ mi_alloc, mi_resize, mi_remap, mi_release },
	{ je_alloc, je_resize, je_remap, je_release },
	{ tc_alloc, tc_resize, tc_remap, tc_release },
};

/* ---- loading ---- */

#define SYM(h, field, name) \
	(*(void **)&X.field = dlsym((h), (name))) != NULL

static bool
ext_bind(enum ext_id id, void *h)
{
	switch (id) {
	case EXT_MIMALLOC:
		return SYM(h, mi_malloc, "mi_malloc") &&
		    SYM(h, mi_malloc_aligned, "mi_malloc_aligned") &&
		    SYM(h, mi_realloc, "mi_realloc") &&
		    SYM(h, mi_realloc_aligned, "mi_realloc_aligned") &&
		    SYM(h, mi_expand, "mi_expand") &&
		    SYM(h, mi_free, "mi_free") &&
		    SYM(h, mi_version, "mi_version");
	case EXT_JEMALLOC:
		return SYM(h, je_malloc, "malloc") &&
		    SYM(h, je_mallocx, "mallocx") &&
		    SYM(h, je_rallocx, "rallocx") &&
		    SYM(h, je_xallocx, "xallocx") &&
		    SYM(h, je_sdallocx, "sdallocx") &&
		    SYM(h, je_mallctl, "mallctl");
	case EXT_TCMALLOC:
		return SYM(h, tc_malloc, "tc_malloc") &&
		    SYM(h, tc_memalign, "tc_memalign") &&
		    SYM(h, tc_realloc, "tc_realloc") &&
		    SYM(h, tc_free, "tc_free") &&
		    SYM(h, tc_free_sized, "tc_free_sized") &&
		    SYM(h, tc_version, "tc_version");
	default:
		return false;
	}
}

static void
ext_version(enum ext_id id)
{
	struct ext_info *e = &ext[id];

	switch (id) {
	case EXT_MIMALLOC: {
		int v = X.mi_version();

		snprintf(e->version, sizeof(e->version), "%d.%d.%d",
		    v / 100, v / 10 % 10, v % 10);
		break;
	}
	case EXT_JEMALLOC: {
		const char *v = NULL;
		size_t sz = sizeof(v);

		if (X.je_mallctl("version", &v, &sz, NULL, 0) == 0 && v)
			snprintf(e->version, sizeof(e->version), "%.20s", v);
		break;
	}
	case EXT_TCMALLOC: {
		int major, minor;
		const char *patch;

		X.tc_version(&major, &minor, &patch);
		snprintf(e->version, sizeof(e->version), "%d.%d%s", major,
		    minor, patch ? patch : "");
		break;
	}
	default:
		break;
	}
}

bool
bench_ext_load(void)
{
	bool tls_short = false;

	for (int id = 0; id < EXT_N; id++) {
		struct ext_info *e = &ext[id];
		void *h = dlopen(e->soname, RTLD_NOW | RTLD_LOCAL);

		if (h == NULL) {
			const char *err = dlerror();

			snprintf(e->why, sizeof(e->why), "%s", err ? err : "?");
			/* jemalloc is built with initial-exec TLS. */
			if (strstr(e->why, "static TLS") != NULL)
				tls_short = true;
			continue;
		}
		if (!ext_bind((enum ext_id)id, h)) {
			snprintf(e->why, sizeof(e->why), "missing symbol in %s",
			    e->soname);
			continue;
		}
		e->loaded = true;
		ext_version((enum ext_id)id);
	}
	return tls_short;
}

const struct ext_info *
bench_ext_info(enum ext_id id)
{
	return &ext[id];
}

beamalloc_allocator
bench_ext(enum ext_id id)
{
	beamalloc_allocator a = { NULL, &ext_vtable[id] };

	return a;
}

/* ------------------------------------------------------------------------
 * Counting wrapper
 * ---------------------------------------------------------------------- */

static void
count_add(struct counting *c, size_t n)
{
	size_t now = atomic_fetch_add_explicit(&c->held, n,
	    memory_order_relaxed) + n;
	size_t peak = atomic_load_explicit(&c->peak, memory_order_relaxed);

	while (now > peak && !atomic_compare_exchange_weak_explicit(&c->peak,
	    &peak, now, memory_order_relaxed, memory_order_relaxed))
		;
}

static void
count_sub(struct counting *c, size_t n)
{
	atomic_fetch_sub_explicit(&c->held, n, memory_order_relaxed);
}

static void *
count_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	struct counting *c = ctx;
	void *p = c->backing.vtable->alloc(c->backing.ctx, len, align, ra);

	if (p != NULL)
		count_add(c, len);
	return p;
}

static bool
count_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	struct counting *c = ctx;

	if (!c->backing.vtable->resize(c->backing.ctx, mem, len, align,
	    new_len, ra))
		return false;
	if (new_len > len)
		count_add(c, new_len - len);
	else
		count_sub(c, len - new_len);
	return true;
}

static void *
count_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	struct counting *c = ctx;
	void *p = c->backing.vtable->remap(c->backing.ctx, mem, len, align,
	    new_len, ra);

	if (p != NULL) {
		if (new_len > len)
			count_add(c, new_len - len);
		else
			count_sub(c, len - new_len);
	}
	return p;
}

static void
count_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	struct counting *c = ctx;

	c->backing.vtable->free(c->backing.ctx, mem, len, align, ra);
	count_sub(c, len);
}

static const beamalloc_vtable counting_vtable = {
	count_alloc, count_resize, count_remap, count_free
};

beamalloc_allocator
bench_counting(struct counting *c, beamalloc_allocator backing)
{
	beamalloc_allocator a = { c, &counting_vtable };

	c->backing = backing;
	atomic_init(&c->held, 0);
	atomic_init(&c->peak, 0);
	return a;
}

/* ------------------------------------------------------------------------
 * Process memory
 * ---------------------------------------------------------------------- */

size_t
bench_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

void
bench_reexec_static_tls(char **argv)
{
	const char *tun = "glibc.rtld.optional_static_tls=65536";
	const char *old = getenv("GLIBC_TUNABLES");
	char buf[1024];

	if (getenv("BEAMALLOC_BENCH_REEXEC") != NULL)
		return;
	snprintf(buf, sizeof(buf), "%s%s%s", old ? old : "", old ? ":" : "",
	    tun);
	setenv("GLIBC_TUNABLES", buf, 1);
	setenv("BEAMALLOC_BENCH_REEXEC", "1", 1);
	execv("/proc/self/exe", argv);
	/* If that failed, go on without jemalloc. */
}

bool
bench_in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

beamalloc_gpa *
bench_gpa_new(beamalloc_allocator backing, bool safety, bool thread_safe,
    unsigned depth)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.thread_safe = thread_safe;
	cfg.stack_trace_depth = depth;
	return beamalloc_gpa_create(backing, &cfg);
}

void
bench_gpa_done(const char *prog, const char *name, beamalloc_gpa *g)
{
	size_t leaks = beamalloc_gpa_destroy(g);

	if (leaks != 0)
		fprintf(stderr, "%s: %s: %zu leaked blocks\n", prog, name,
		    leaks);
}

bool
bench_ext_ready(enum ext_id id, char *why, size_t len)
{
	const struct ext_info *e = bench_ext_info(id);

	if (!e->loaded)
		snprintf(why, len, "%s (install %s)", e->why, e->package);
	return e->loaded;
}
