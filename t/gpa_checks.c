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
	plan(2 * 2 + 2 * 4 + 3 + 2 * 5);
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
		run(&cfgs[i]);
	return done_testing();
}
