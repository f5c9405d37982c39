/*
 * abi01.c - a program built against 0.1's header, run on this library
 * (t/abi01.sh links it against a stub of 0.1's unversioned
 * libbeamalloc.so.0, then runs it on the real one).  0.2 grew
 * beamalloc_gpa_config, beamalloc_fixed, beamalloc_failing and
 * beamalloc_report; such a program's structs are 0.1's length, and the
 * library must neither write nor read past them (lib/beamalloc.map).
 * Each struct here is followed by guard bytes that must stay as set.
 *
 * Below: 0.1's declarations, as its include/beamalloc.h had them (only
 * what this program uses).  Not the installed header: that is 0.2's.
 */
#define _GNU_SOURCE	/* dlvsym */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct beamalloc_vtable {
	void *(*alloc)(void *ctx, size_t len, size_t align, uintptr_t ra);
	bool (*resize)(void *ctx, void *mem, size_t len, size_t align,
	    size_t new_len, uintptr_t ra);
	void *(*remap)(void *ctx, void *mem, size_t len, size_t align,
	    size_t new_len, uintptr_t ra);
	void (*free)(void *ctx, void *mem, size_t len, size_t align,
	    uintptr_t ra);
} beamalloc_vtable;

typedef struct beamalloc_allocator {
	void *ctx;
	const beamalloc_vtable *vtable;
} beamalloc_allocator;

typedef enum beamalloc_report_kind {
	BEAMALLOC_REPORT_LEAK = 1,
	BEAMALLOC_REPORT_DOUBLE_FREE,
	BEAMALLOC_REPORT_INVALID_FREE,
	BEAMALLOC_REPORT_SIZE_MISMATCH,
	BEAMALLOC_REPORT_ALIGN_MISMATCH
} beamalloc_report_kind;

typedef struct beamalloc_report {
	beamalloc_report_kind kind;
	const void *addr;
	size_t size;
	size_t align;
	size_t given_size;
	size_t given_align;
	uintptr_t ret_addr;
	const uintptr_t *alloc_trace;
	size_t alloc_trace_len;
	const uintptr_t *free_trace;
	size_t free_trace_len;
} beamalloc_report;

typedef void (*beamalloc_report_fn)(void *user, const beamalloc_report *r);

typedef struct beamalloc_gpa beamalloc_gpa;

typedef struct beamalloc_gpa_config {
	size_t struct_size;
	unsigned stack_trace_depth;
	bool safety;
	bool thread_safe;
	bool abort_on_error;
	size_t memory_limit;
	beamalloc_report_fn report;
	void *report_user;
} beamalloc_gpa_config;

typedef struct beamalloc_fixed {
	unsigned char *start;
	unsigned char *ptr;
	unsigned char *end;
	bool poison;
} beamalloc_fixed;

typedef struct beamalloc_failing {
	beamalloc_allocator backing;
	size_t fail_index;
	size_t resize_fail_index;
	size_t allocations;
	size_t deallocations;
	size_t resizes;
	size_t allocated_bytes;
	size_t freed_bytes;
	uintptr_t fail_ret_addr;
	bool has_induced_failure;
	bool has_induced_resize_failure;
} beamalloc_failing;

typedef struct beamalloc_arena beamalloc_arena;

beamalloc_allocator beamalloc_libc(void);
size_t beamalloc_native_align(beamalloc_allocator a);
beamalloc_allocator beamalloc_wide_on(const beamalloc_allocator *backing);
void *beamalloc_alloc_aligned(beamalloc_allocator a, size_t len,
    size_t align);
beamalloc_arena *beamalloc_arena_create(beamalloc_allocator backing);
beamalloc_allocator beamalloc_arena_allocator(beamalloc_arena *arena);
size_t beamalloc_arena_capacity(const beamalloc_arena *arena);
void beamalloc_arena_destroy(beamalloc_arena *arena);
void *beamalloc_alloc(beamalloc_allocator a, size_t len);
void beamalloc_free(beamalloc_allocator a, void *mem, size_t len);
bool beamalloc_resize(beamalloc_allocator a, void *mem, size_t len,
    size_t align, size_t new_len);
void beamalloc_report_print(FILE *f, const beamalloc_report *r);
void beamalloc_gpa_config_init(beamalloc_gpa_config *cfg);
beamalloc_gpa *beamalloc_gpa_create(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg);
beamalloc_allocator beamalloc_gpa_allocator(beamalloc_gpa *gpa);
size_t beamalloc_gpa_destroy(beamalloc_gpa *gpa);
void beamalloc_fixed_init(beamalloc_fixed *fb, void *buf, size_t len);
beamalloc_allocator beamalloc_fixed_allocator(beamalloc_fixed *fb);
void beamalloc_fixed_reset(beamalloc_fixed *fb);
void beamalloc_failing_init(beamalloc_failing *f,
    beamalloc_allocator backing, size_t fail_index,
    size_t resize_fail_index);
beamalloc_allocator beamalloc_failing_allocator(beamalloc_failing *f);

/* ------------------------------------------------------------------------
 * The checks
 * ---------------------------------------------------------------------- */

#define GUARD 64
#define GUARD_BYTE 0xa5

static int n;

static void
ok(bool cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++n, what);
}

static bool
intact(const unsigned char *g)
{
	for (int i = 0; i < GUARD; i++)
		if (g[i] != GUARD_BYTE)
			return false;
	return true;
}

static size_t kinds[8];

static void
count(void *user, const beamalloc_report *r)
{
	(void)user;
	if ((unsigned)r->kind < 8)
		kinds[r->kind]++;
}

int
main(void)
{
	struct { beamalloc_gpa_config c; unsigned char g[GUARD]; } sc;
	struct { beamalloc_fixed f; unsigned char g[GUARD]; } sf;
	struct { beamalloc_failing f; unsigned char g[GUARD]; } sl;
	struct { beamalloc_report r; unsigned char g[GUARD]; } sr;
	_Alignas(16) unsigned char buf[256];
	beamalloc_allocator a;
	beamalloc_gpa *g;
	void *p, *q;
	char out[1024] = "";
	FILE *f;

	printf("1..22\n");
	memset(&sc, GUARD_BYTE, sizeof(sc));
	memset(&sf, GUARD_BYTE, sizeof(sf));
	memset(&sl, GUARD_BYTE, sizeof(sl));
	memset(&sr, GUARD_BYTE, sizeof(sr));

	/* The GPA's config: 0.1's fields, 0.1's length. */
	beamalloc_gpa_config_init(&sc.c);
	ok(intact(sc.g), "gpa_config_init writes nothing past 0.1's config");
	ok(sc.c.struct_size == sizeof(beamalloc_gpa_config) &&
	    sc.c.safety && sc.c.thread_safe && !sc.c.abort_on_error,
	    "with 0.1's length and defaults");
	sc.c.report = count;
	g = beamalloc_gpa_create(beamalloc_libc(), &sc.c);
	ok(g != NULL, "a GPA made with it");
	a = beamalloc_gpa_allocator(g);
	p = beamalloc_alloc(a, 40);
	beamalloc_free(a, p, 40);
	beamalloc_free(a, p, 40);
	ok(kinds[BEAMALLOC_REPORT_DOUBLE_FREE] == 1,
	    "reports a double free to 0.1's callback");
	(void)beamalloc_alloc(a, 24);
	ok(beamalloc_gpa_destroy(g) == 1 && kinds[BEAMALLOC_REPORT_LEAK] == 1,
	    "and a leak at destroy");

	/* A fixed buffer. */
	beamalloc_fixed_init(&sf.f, buf, sizeof(buf));
	ok(intact(sf.g), "fixed_init writes nothing past 0.1's struct");
	a = beamalloc_fixed_allocator(&sf.f);
	p = beamalloc_alloc(a, 16);
	q = beamalloc_alloc(a, 32);
	ok(p == buf && q == buf + 16, "blocks from the buffer, in order");
	ok(beamalloc_resize(a, q, 32, 8, 64) &&
	    !beamalloc_resize(a, p, 16, 8, 24),
	    "the last block grows in place, another does not");
	beamalloc_free(a, q, 64);
	ok(beamalloc_alloc(a, 8) == buf + 16,
	    "the last block freed, its bytes are handed out again");
	beamalloc_fixed_reset(&sf.f);
	ok(sf.f.ptr == buf && beamalloc_alloc(a, 8) == buf,
	    "a reset starts the buffer again");
	ok(intact(sf.g), "and nothing past 0.1's struct was written");
	/* 0.1's fixed buffer places any alignment itself: the wide
	 * allocator over it adds nothing (ba_native_align() knew only
	 * 0.2's vtable: 8, and 64 B at 64 no longer fit in 64 B). */
	beamalloc_fixed_init(&sf.f, buf, 64);
	a = beamalloc_fixed_allocator(&sf.f);
	ok(beamalloc_native_align(a) > 4096 &&
	    beamalloc_alloc_aligned(beamalloc_wide_on(&a), 64, 16) == buf,
	    "native_align: 0.1's fixed buffer serves any alignment");

	/* A failing allocator. */
	beamalloc_failing_init(&sl.f, beamalloc_libc(), 1, (size_t)-1);
	ok(intact(sl.g), "failing_init writes nothing past 0.1's struct");
	a = beamalloc_failing_allocator(&sl.f);
	p = beamalloc_alloc(a, 16);
	q = beamalloc_alloc(a, 16);
	ok(p != NULL && q == NULL && sl.f.has_induced_failure &&
	    sl.f.allocations == 1, "the second allocation fails, counted");
	beamalloc_free(a, p, 16);
	ok(sl.f.deallocations == 1 && intact(sl.g),
	    "a free is counted, nothing past 0.1's struct written");
	ok(beamalloc_native_align(a) ==
	    beamalloc_native_align(beamalloc_libc()),
	    "native_align: 0.1's failing allocator, its backing's");

	/* An arena used as a stack, as 0.1 allowed: a block freed newest
	 * first gives its bytes back, and the one before it is last again
	 * (0.2 keeps only the newest block's start). */
	{
		beamalloc_arena *ar = beamalloc_arena_create(beamalloc_libc());
		size_t cap = beamalloc_arena_capacity(ar);
		void *x, *y;
		bool grew;
		int i;

		a = beamalloc_arena_allocator(ar);
		x = beamalloc_alloc(a, 64);
		y = beamalloc_alloc(a, 64);
		beamalloc_free(a, y, 64);
		grew = beamalloc_resize(a, x, 64, 8, 128);
		ok(grew, "arena: the block before a freed last one grows in "
		    "place");
		beamalloc_free(a, x, grew ? 128 : 64);
		ok(beamalloc_alloc(a, 64) == x,
		    "arena: blocks freed newest first are handed out again");
		for (i = 0; i < 10000; i++) {
			p = beamalloc_alloc(a, 256);
			q = beamalloc_alloc(a, 256);
			beamalloc_free(a, q, 256);
			beamalloc_free(a, p, 256);
		}
		ok(beamalloc_arena_capacity(ar) == cap,
		    "arena: pushed and popped 10000 times, it does not grow");
		beamalloc_arena_destroy(ar);
	}

	/* A report of 0.1's length, printed: nothing read past it (the
	 * guard's bytes, read as 0.2's not_sampled, would add a line). */
	memset(&sr.r, 0, sizeof(sr.r));
	sr.r.kind = BEAMALLOC_REPORT_LEAK;
	sr.r.addr = buf;
	sr.r.size = 24;
	if ((f = fmemopen(out, sizeof(out) - 1, "w")) != NULL) {
		beamalloc_report_print(f, &sr.r);
		fclose(f);
	}
	ok(strstr(out, "24 bytes") != NULL, "report_print prints 0.1's report");
	ok(strstr(out, "sampl") == NULL,
	    "and reads nothing past it");
	if (strstr(out, "sampl") != NULL)
		printf("# %s", out);

	/* A program that looks the functions up at run time: dlsym()
	 * returns a name's default version, 0.2's (README's ABI
	 * paragraph); dlvsym() with BEAMALLOC_0.1 gives 0.1's. */
	{
		void *h = dlopen("libbeamalloc.so.0", RTLD_NOW);
		void (*init)(beamalloc_gpa_config *) = NULL;

		if (h != NULL)
			init = (void (*)(beamalloc_gpa_config *))dlvsym(h,
			    "beamalloc_gpa_config_init", "BEAMALLOC_0.1");
		memset(&sc, GUARD_BYTE, sizeof(sc));
		if (init != NULL)
			init(&sc.c);
		ok(init != NULL && intact(sc.g) &&
		    sc.c.struct_size == sizeof(beamalloc_gpa_config),
		    "dlvsym(BEAMALLOC_0.1) gives 0.1's config_init");
	}
	return 0;
}
