/*
 * gpa_trace.c - the GPA's stack traces: the frame-pointer walk names the
 * exact call chain (each return address inside the function expected,
 * by dladdr), survives frame pointers that point anywhere, the depot
 * keeps one copy per distinct trace, and sampled traces trace exactly 1
 * allocation in N and say so of the others.
 *
 * Built twice: t/gpa_trace (frame pointers kept, as the library is) and
 * t/gpa_trace_nofp (-fomit-frame-pointer, TRACE_NOFP): there the trace
 * past the first frame may be short or end early, never crash.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"

#define MAXR 2100

/* The reports, with each trace's frames copied (valid only in the call). */
struct seen {
	beamalloc_report r;
	uintptr_t at[BEAMALLOC_GPA_MAX_TRACE], ft[BEAMALLOC_GPA_MAX_TRACE];
	const uintptr_t *at_ptr;
};

static struct seen seen[MAXR];
static size_t nseen;

static void
keep(void *user, const beamalloc_report *r)
{
	struct seen *s;

	(void)user;
	if (nseen >= MAXR)
		return;
	s = &seen[nseen++];
	s->r = *r;
	s->at_ptr = r->alloc_trace;
	memset(s->at, 0, sizeof(s->at));
	memset(s->ft, 0, sizeof(s->ft));
	if (r->alloc_trace != NULL)
		memcpy(s->at, r->alloc_trace, r->alloc_trace_len *
		    sizeof(s->at[0]));
	if (r->free_trace != NULL)
		memcpy(s->ft, r->free_trace, r->free_trace_len *
		    sizeof(s->ft[0]));
	/* The copies outlive the call, the report's own arrays may not. */
	s->r.alloc_trace = r->alloc_trace != NULL ? s->at : NULL;
	s->r.free_trace = r->free_trace != NULL ? s->ft : NULL;
}

static beamalloc_gpa *
gpa_ts(unsigned depth, unsigned sample, bool safety, bool thread_safe)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.stack_trace_depth = depth;
	cfg.trace_sample = sample;
	cfg.safety = safety;
	cfg.thread_safe = thread_safe;
	cfg.report = keep;
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

static beamalloc_gpa *
gpa(unsigned depth, unsigned sample, bool safety)
{
	return gpa_ts(depth, sample, safety, true);
}

/* The chain a trace must name, exported (--export-dynamic, and visible
 * under -fvisibility=hidden) so that dladdr names them.  Each does
 * something after its call: no tail calls. */
#define EXPORT __attribute__((visibility("default")))
EXPORT void *level1(beamalloc_allocator a, size_t len);
EXPORT void *level2(beamalloc_allocator a, size_t len);
EXPORT void *level3(beamalloc_allocator a, size_t len);
EXPORT void free_here(beamalloc_allocator a, void *p, size_t len);
EXPORT void *other_site(beamalloc_allocator a, size_t len);
EXPORT void chain(void);
void *sink;

__attribute__((noinline)) void *
level1(beamalloc_allocator a, size_t len)
{
	void *p = beamalloc_alloc(a, len);

	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) void *
level2(beamalloc_allocator a, size_t len)
{
	void *p = level1(a, len);

	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) void *
level3(beamalloc_allocator a, size_t len)
{
	void *p = level2(a, len);

	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) void *
other_site(beamalloc_allocator a, size_t len)
{
	void *p = beamalloc_alloc(a, len);

	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) void
free_here(beamalloc_allocator a, void *p, size_t len)
{
	beamalloc_free(a, p, len);
	__asm__ volatile("" ::: "memory");
}

/* The function a return address lies in (the call is at addr - 1). */
static const char *
fn_of(uintptr_t addr)
{
	Dl_info di;

	if (addr == 0 || dladdr((void *)(addr - 1), &di) == 0 ||
	    di.dli_sname == NULL)
		return "?";
	return di.dli_sname;
}

static bool
frame_is(const struct seen *s, size_t i, const char *fn)
{
	return i < s->r.alloc_trace_len && strcmp(fn_of(s->at[i]), fn) == 0;
}

/* level3 -> level2 -> level1 -> beamalloc_alloc, for a small and a large
 * block: with frame pointers exactly that chain; without, the call site
 * and then a correct prefix or nothing. */
void
chain(void)
{
	static const char *const want[] = { "level1", "level2", "level3" };

	for (int large = 0; large < 2; large++) {
		beamalloc_gpa *g = gpa(8, 0, true);
		size_t len = large ? 100000 : 64, right = 0;
		const struct seen *s;

		sink = level3(beamalloc_gpa_allocator(g), len);
		nseen = 0;
		beamalloc_gpa_detect_leaks(g);
		s = &seen[0];
		ok(nseen == 1 && s->r.alloc_trace_len >= 1 &&
		    s->r.alloc_trace_len <= 8 && frame_is(s, 0, "level1"),
		    "%s block: the trace starts at the call site in level1",
		    large ? "large" : "small");
		while (right < 3 && frame_is(s, right, want[right]))
			right++;
#ifdef TRACE_NOFP
		diag("without frame pointers: %zu of %zu frames named, %zu "
		    "of level1..3 right", s->r.alloc_trace_len, (size_t)8,
		    right);
		ok(right >= 1, "%s block: a correct prefix (%zu frames)",
		    large ? "large" : "small", right);
#else
		ok(right == 3 && s->r.alloc_trace_len >= 4 &&
		    strcmp(fn_of(s->at[3]), "chain") == 0,
		    "%s block: frames 0-3 in level1, level2, level3, chain "
		    "(%s %s %s %s)", large ? "large" : "small",
		    fn_of(s->at[0]), fn_of(s->at[1]), fn_of(s->at[2]),
		    fn_of(s->at[3]));
		if (right < 3)
			for (size_t i = 0; i < s->r.alloc_trace_len; i++)
				diag("  #%zu %s", i, fn_of(s->at[i]));
#endif
		beamalloc_free(beamalloc_gpa_allocator(g), sink, len);
		is_size(beamalloc_gpa_destroy(g), 0, "no leak left");
	}
}

#if defined(__x86_64__)
/* fn(a, len) called with the frame pointer register set to fp: what
 * code built without frame pointers may leave there. */
void *call_with_fp(void *(*fn)(beamalloc_allocator, size_t),
    beamalloc_allocator a, size_t len, uintptr_t fp);
__asm__(".text\n"
    ".globl call_with_fp\n"
    ".type call_with_fp, @function\n"
    "call_with_fp:\n"
    "	push %rbp\n"
    "	mov %rdi, %rax\n"
    "	mov %rsi, %rdi\n"
    "	mov %rdx, %rsi\n"
    "	mov %rcx, %rdx\n"
    "	mov %r8, %rbp\n"
    "	call *%rax\n"
    "	pop %rbp\n"
    "	ret\n"
    ".size call_with_fp, .-call_with_fp\n");

/* Bad frame pointers: the walk stops at each, the trace keeps its call
 * site, nothing crashes (ASan and valgrind watch the reads). */
static void
bad_frames(void)
{
	uintptr_t loop[4] __attribute__((aligned(16)));
	uintptr_t bad[] = { 0, 1, 0x10, (uintptr_t)0xdeadbeef0,
	    (uintptr_t)-16, (uintptr_t)&loop[0] + 1, (uintptr_t)&loop[0] };
	beamalloc_gpa *g = gpa(8, 0, true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t good = 0;

	loop[0] = (uintptr_t)&loop[0];	/* a frame pointing at itself */
	loop[1] = (uintptr_t)level2;
	loop[2] = loop[3] = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *p = call_with_fp(level1, a, 48, bad[i]);

		nseen = 0;
		beamalloc_gpa_detect_leaks(g);
		good += nseen == 1 && frame_is(&seen[0], 0, "level1") &&
		    seen[0].r.alloc_trace_len <= 8;
		beamalloc_free(a, p, 48);
	}
	is_size(good, sizeof(bad) / sizeof(bad[0]),
	    "frame pointer 0, 1, 0x10, off the stack, unaligned, a loop: "
	    "the trace keeps its call site, no crash");
	is_size(beamalloc_gpa_destroy(g), 0, "no leak left");
}
#else
static void
bad_frames(void)
{
	skip(2, "bad frame pointers are set by x86-64 code");
}
#endif

/* Backing bytes held with n 64 B blocks live from one chain. */
static size_t
held(beamalloc_gpa *g, void **p, size_t n)
{
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	beamalloc_gpa_stats st;

	for (size_t i = 0; i < n; i++)
		p[i] = level1(a, 64);
	beamalloc_gpa_get_stats(g, &st);
	for (size_t i = 0; i < n; i++)
		beamalloc_free(a, p[i], 64);
	return st.backing_bytes;
}

/* The backing bytes n blocks take in a new GPA (a GPA keeps its slabs
 * once the blocks are freed: a second count in the same one reads its
 * peak). */
static size_t
held_new(unsigned depth, void **p, size_t n, size_t *leaks)
{
	beamalloc_gpa *g = gpa(depth, 0, true);
	size_t b = held(g, p, n);

	*leaks += beamalloc_gpa_destroy(g);
	return b;
}

/* One copy per distinct trace; a traced block costs a few bytes. */
static void
depot(void)
{
	enum { N = 2000, M = 32768 };
	static void *p[2 * M];
	beamalloc_gpa *g = gpa(8, 0, true);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	size_t same = 0, deeper = 0, leaks = 0;
	double b0, b8, per;

	for (int i = 0; i < N; i++)
		p[i] = level1(a, 64);
	nseen = 0;
	beamalloc_gpa_detect_leaks(g);
	for (size_t i = 0; i < nseen; i++)
		same += seen[i].at_ptr == seen[0].at_ptr;
	is_size(same, N, "%d blocks from one chain share one stored trace",
	    N);
	sink = other_site(a, 64);
	nseen = 0;
	beamalloc_gpa_detect_leaks(g);
	for (size_t i = 0; i < nseen; i++)
		if (frame_is(&seen[i], 0, "other_site")) {
			deeper++;
			same = seen[i].at_ptr != seen[(i + 1) % nseen].at_ptr;
		}
	ok(nseen == N + 1 && deeper == 1 && same,
	    "another call site, another stored trace");
	beamalloc_free(a, sink, 64);
	for (int i = 0; i < N; i++)
		beamalloc_free(a, p[i], 64);

	/* The bytes that M more blocks take, with traces and without. */
	b0 = (double)held_new(0, p, 2 * M, &leaks);
	b0 -= (double)held_new(0, p, M, &leaks);
	b8 = (double)held_new(8, p, 2 * M, &leaks);
	b8 -= (double)held_new(8, p, M, &leaks);
	per = (b8 - b0) / M;
	diag("backing bytes per 64 B block (safety on): %.1f without "
	    "traces, %.1f with 8 frames", b0 / M, b8 / M);
	ok(b0 / M >= 64 && b0 / M <= 100, "a 64 B block takes %.1f bytes "
	    "of backing without traces (64 to 100)", b0 / M);
	ok(per <= 8, "8-frame traces cost %.1f bytes per block (<= 8; "
	    "128 when each block kept its own)", per);
	is_size(beamalloc_gpa_destroy(g) + leaks, 0, "no leak left");
}

static bool
printed_has(const beamalloc_report *r, const char *needle)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool has;

	beamalloc_report_print(f, r);
	fclose(f);
	has = strstr(buf, needle) != NULL;
	if (!has)
		diag("printed: %s", buf);
	free(buf);
	return has;
}

/* 1 in 16: exactly every 16th allocation of the thread is traced (the
 * first among them), the others say they were not sampled. */
static void
sampling(bool safety, bool thread_safe)
{
	enum { N = 160, LN = 32, LEN = 100000 };
	static void *p[N], *lp[LN];
	beamalloc_gpa *g = gpa_ts(8, 16, safety, thread_safe);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	char m[64];
	size_t traced = 0, unsampled = 0, site = 0, ltraced = 0;
	size_t first = SIZE_MAX, other = SIZE_MAX;

	snprintf(m, sizeof(m), "safety %s, thread_safe %s",
	    safety ? "on" : "off", thread_safe ? "on" : "off");

	for (int i = 0; i < N; i++)
		p[i] = level2(a, 64);
	nseen = 0;
	beamalloc_gpa_detect_leaks(g);
	for (size_t i = 0; i < nseen; i++) {
		const struct seen *s = &seen[i];

		if (s->r.not_sampled == 0 && frame_is(s, 0, "level1")) {
			traced++;
			if (first == SIZE_MAX)
				first = i;
		} else if (s->r.not_sampled == 16) {
			unsampled++;
			site += s->r.alloc_trace_len == 1 &&
			    frame_is(s, 0, "level1");
			if (other == SIZE_MAX)
				other = i;
		}
	}
	is_size(traced, N / 16, "%s: %d of %d blocks traced", m, N / 16, N);
	is_size(unsampled, N - N / 16, "%s: the others marked not sampled",
	    m);
	is_size(site, safety ? N - N / 16 : 0,
	    "%s: an unsampled block's report names %s", m,
	    safety ? "its call site" : "no frame");
	ok(other != SIZE_MAX && printed_has(&seen[other].r,
	    "not sampled (1 in 16)"), "%s: the printed report says "
	    "\"not sampled (1 in 16)\"", m);
	ok(first != SIZE_MAX && !printed_has(&seen[first].r, "not sampled"),
	    "%s: a traced block's does not", m);

	/* Freed: a traced block's free is traced too.  The reports above
	 * come in address order, not p[]'s: keep their addresses. */
	void *traced_p = first != SIZE_MAX ? (void *)seen[first].r.addr :
	    NULL;
	void *other_p = other != SIZE_MAX ? (void *)seen[other].r.addr : NULL;

	for (int i = 0; i < N; i++)
		free_here(a, p[i], 64);
	nseen = 0;
	beamalloc_free(a, traced_p, 64);
	beamalloc_free(a, other_p, 64);
	ok(nseen == 2 && seen[0].r.kind == BEAMALLOC_REPORT_DOUBLE_FREE &&
	    frame_is(&seen[0], 0, "level1") && seen[0].r.free_trace_len >= 1 &&
	    strcmp(fn_of(seen[0].ft[0]), "free_here") == 0,
	    "%s: double free of a traced block: both traces", m);
	ok(nseen == 2 && seen[1].r.not_sampled == 16 &&
	    seen[1].r.free_trace == NULL,
	    "%s: of an unsampled block: not sampled, no stale trace", m);

	/* Large blocks: 1 in 16 too. */
	for (int i = 0; i < LN; i++)
		lp[i] = level2(a, LEN);
	nseen = 0;
	beamalloc_gpa_detect_leaks(g);
	for (size_t i = 0; i < nseen; i++)
		ltraced += seen[i].r.not_sampled == 0 &&
		    frame_is(&seen[i], 0, "level1");
	ok(nseen == LN && ltraced == LN / 16, "%s: %d of %d large blocks "
	    "traced (%zu)", m, LN / 16, LN, ltraced);
	for (int i = 0; i < LN; i++)
		beamalloc_free(a, lp[i], LEN);
	is_size(beamalloc_gpa_destroy(g), 0, "%s: no leak left", m);
}

int
main(void)
{
	plan(6 + 2 + 5 + 3 * 9);
	chain();
	bad_frames();
	depot();
	sampling(false, true);
	sampling(true, true);
	sampling(false, false);
	return done_testing();
}
