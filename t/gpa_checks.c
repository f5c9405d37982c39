/*
 * gpa_checks.c - canary and junk at every length: the fast paths fill
 * and compare in words and 16-byte vectors with overlapping tails, so a
 * length that ends anywhere in a word, a vector or a 64-byte turn, and
 * every size class's edges, must be covered alike.  For each config
 * (canary, junk, both; one thread's GPA and a thread-safe one; junk
 * alone with safety off too) and each length: a clean block gives no
 * report; a new block reads 0xdb throughout; a 1-byte overflow is
 * reported once at the free, naming the block (t/seen.h); a write after free at
 * the block's first byte, and at the last byte the junk covers whole,
 * is reported once when the slot comes back.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "tools.h"
#include "plant.h"
#include "seen.h"

static size_t
reports(void)
{
	size_t n = 0;

	for (int k = 0; k < 16; k++)
		n += seen.kind[k];
	return n;
}

/* The lengths: every one to 300, then each side of every class edge
 * (8, 16, 24, 32, then four per power of two) to 16 KiB, then large. */
static size_t lens[600];
static size_t nlens;

static void
make_lens(void)
{
	for (size_t n = 1; n <= 300; n++)
		lens[nlens++] = n;
	for (size_t pow = 32; pow < 16384; pow *= 2)
		for (size_t k = 1; k <= 4; k++) {
			size_t edge = pow + k * (pow / 4);

			if (edge > 300) {
				lens[nlens++] = edge - 1;
				lens[nlens++] = edge;
				lens[nlens++] = edge + 1;
			}
		}
	lens[nlens++] = 20000;
}

static bool
reads_new_junk(const unsigned char *p, size_t len)
{
	bool ok = true;

#if defined(HAVE_VALGRIND_MEMCHECK_H) && !defined(BA_ASAN)
	/* Memcheck holds them uninitialized, rightly: look anyway. */
	VALGRIND_MAKE_MEM_DEFINED(p, len);
#endif
	for (size_t i = 0; i < len; i++)
		ok &= p[i] == 0xdb;
	return ok;
}

struct cfg {
	const char *name;
	bool canary, junk, safety, thread_safe;
};

static void
run(const struct cfg *c)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	size_t clean = 0, junk_bad = 0, over = 0, waf = 0, nwaf = 0;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = on_report;
	cfg.canary = c->canary;
	cfg.junk = c->junk;
	cfg.safety = c->safety;
	cfg.thread_safe = c->thread_safe;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &cfg)) == NULL)
		bail("gpa_create");
	a = beamalloc_gpa_allocator(g);
	memset(&seen, 0, sizeof(seen));

	for (size_t i = 0; i < nlens; i++) {
		size_t len = lens[i];
		unsigned char *p = beamalloc_alloc(a, len);

		if (p == NULL)
			bail("alloc %zu", len);
		if (c->junk && !reads_new_junk(p, len))
			junk_bad++;
		memset(p, 'x', len);
		beamalloc_free(a, p, len);
		clean += reports();
	}
	ok(clean == 0, "%s: %zu lengths written whole and freed: no report "
	    "(%zu)", c->name, nlens, clean);
	if (c->junk)
		ok(junk_bad == 0, "%s: every new block reads 0xdb throughout "
		    "(%zu lengths did not)", c->name, junk_bad);

	if (c->canary) {
		for (size_t i = 0; i < nlens; i++) {
			size_t len = lens[i];
			unsigned char *p = beamalloc_alloc(a, len);

			memset(p, 'x', len);
			plant(p + len, 1, 'o');
			expect(p, len);
			beamalloc_free(a, p, len);
		}
		over = seen.kind[BEAMALLOC_REPORT_OVERFLOW];
		ok(over == nlens && seen.named == nlens && reports() == nlens,
		    "%s: a 1-byte overflow at each of %zu lengths: reported "
		    "once, naming the block (%zu overflow reports, %zu named, "
		    "%zu in all)", c->name, nlens, over, seen.named,
		    reports());
		memset(&seen, 0, sizeof(seen));
	}

	if (c->junk) {
		/* Small blocks only (a canary takes a byte of the slot): a
		 * large one goes straight back to the backing without a
		 * quarantine, unchecked. */
		for (size_t i = 0; i < nlens && lens[i] + c->canary <= 16384;
		    i++) {
			size_t len = lens[i];
			size_t last = (len < 1024 ? len : 1024) - 1;

			for (int at = 0; at < 2; at++) {
				unsigned char *p = beamalloc_alloc(a, len), *q;

				beamalloc_free(a, p, len);
				plant(p + (at ? last : 0), 1, 'w');
				expect(p, c->safety ? len : 0);
				q = beamalloc_alloc(a, len);
				beamalloc_free(a, q, len);
				nwaf++;
			}
		}
		waf = seen.kind[BEAMALLOC_REPORT_WRITE_AFTER_FREE];
		ok(waf == nwaf && reports() == nwaf, "%s: a write after free "
		    "at the first and last junked byte, %zu times: reported "
		    "once each when the slot came back (%zu, %zu in all)",
		    c->name, nwaf, waf, reports());
		if (c->safety)
			ok(seen.named == nwaf, "%s: each report named the "
			    "freed block, its size and its call site (%zu of "
			    "%zu)", c->name,
			    seen.named, nwaf);
	}
	beamalloc_gpa_destroy(g);
}

/* A backing that grows blocks in place up to twice their first length
 * and copies on remap, as a caller's own allocator might: it reads and
 * hands out the bytes past a large block's length, where the canary
 * sits.  Its first word: the block's room. */
static void *
roomy_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	size_t *h;

	(void)ctx, (void)align, (void)ra;
	if ((h = malloc(16 + 2 * len)) == NULL)
		return NULL;
	h[0] = 2 * len;
	return h + 2;
}

static bool
roomy_resize(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	return new_len <= ((size_t *)mem)[-2];
}

static void
roomy_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	(void)ctx, (void)len, (void)align, (void)ra;
	free((size_t *)mem - 2);
}

static void *
roomy_remap(void *ctx, void *mem, size_t len, size_t align, size_t new_len,
    uintptr_t ra)
{
	void *p = roomy_alloc(ctx, new_len, align, ra);

	if (p != NULL) {
		memcpy(p, mem, len < new_len ? len : new_len);
		roomy_free(ctx, mem, len, align, ra);
	}
	return p;
}

static const beamalloc_vtable roomy_vt = {
	roomy_alloc, roomy_resize, roomy_remap, roomy_free
};

/* With canary, a large block grown in place and one moved by the backing
 * (which copies the canary too): the block's new bytes are the caller's
 * (under AddressSanitizer, a write to them would fault if the old canary
 * stayed poisoned; so would the backing's copy), the canary is checked
 * at the new end, and nothing is reported. */
static void
large_changes(void)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	beamalloc_allocator a;
	unsigned char *p, *q;
	size_t before = reports();
	bool intact = true;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = on_report;
	cfg.canary = cfg.junk = true;
	if ((g = beamalloc_gpa_create((beamalloc_allocator){ NULL, &roomy_vt },
	    &cfg)) == NULL)
		bail("gpa_create");
	a = beamalloc_gpa_allocator(g);
	if ((p = beamalloc_alloc(a, 20000)) == NULL)
		bail("alloc");
	memset(p, 1, 20000);
	ok(beamalloc_resize(a, p, 20000, BEAMALLOC_MIN_ALIGN, 30000),
	    "canary, large block: grown in place by its backing");
	memset(p + 20000, 2, 10000);
	q = beamalloc_remap(a, p, 30000, BEAMALLOC_MIN_ALIGN, 70000);
	if (q == NULL)
		bail("remap");
	for (size_t i = 0; i < 30000; i++)
		intact &= q[i] == (i < 20000 ? 1 : 2);
	memset(q + 30000, 3, 40000);
	plant(q + 70000, 1, 4);		/* an overflow, still caught */
	beamalloc_free(a, q, 70000);
	ok(intact && p != q && reports() == before + 1 &&
	    seen.kind[BEAMALLOC_REPORT_OVERFLOW] != 0, "and moved by it "
	    "(copying the canary too): contents kept, the new bytes "
	    "writable, the canary checked at the new end (%zu report)",
	    reports() - before);
	beamalloc_gpa_destroy(g);
}

int
main(void)
{
	static const struct cfg cfgs[] = {
		{ "canary, thread-safe", true, false, true, true },
		{ "canary, one thread", true, false, true, false },
		{ "junk, thread-safe", false, true, true, true },
		{ "junk, one thread", false, true, true, false },
		{ "junk without safety", false, true, false, true },
		{ "canary and junk, thread-safe", true, true, true, true },
		{ "canary and junk, one thread", true, true, true, false },
	};

	make_lens();
	plan(2 * 2 + 2 * 4 + 3 + 2 * 5 + 2);
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
		run(&cfgs[i]);
	large_changes();
	return done_testing();
}
