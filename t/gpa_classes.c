/*
 * gpa_classes.c - the GPA's size classes: 8, 16, 24, 32 bytes, then four
 * per power of two up to 16 KiB.  A block goes to the smallest class of
 * at least its length rounded up to its alignment; the average slot
 * wastes at most 1/8 of a block of uniformly random length; every
 * alignment up to 16 KiB is served from a slot.
 */
#include <stdint.h>
#include <stdlib.h>

#include "beamalloc.h"
#include "tap.h"

#define STEP 13			/* lengths 1, 14, 27, ... 16382 */
#define NLEN (16384 / STEP + 1)

static beamalloc_gpa *
make(bool safety)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.safety = safety;
	cfg.decay_ms = 0;
	return beamalloc_gpa_create(beamalloc_libc(), &cfg);
}

/* The class a length goes to, from the sizes the GPA reports. */
static size_t
class_for(const beamalloc_gpa_class_stats *cls, size_t len)
{
	size_t c = 0;

	while (c < BEAMALLOC_GPA_NCLASS && cls[c].size < len)
		c++;
	return c;
}

int
main(void)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS], lg;
	size_t want[BEAMALLOC_GPA_NCLASS] = { 0 };
	beamalloc_gpa *g;
	beamalloc_allocator a;
	void **p = calloc(NLEN, sizeof(*p));
	size_t n = 0, requested = 0, slots = 0;
	bool sizes = true, counts = true, aligned = true;

	plan(8);

	/* The sizes, from an empty GPA. */
	g = make(false);
	is_size(beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS,
	    &lg), BEAMALLOC_GPA_NCLASS, "BEAMALLOC_GPA_NCLASS classes");
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++) {
		size_t b = c / 4 + 4, want_size = c < 4 ? (c + 1) * 8 :
		    ((size_t)1 << b) + (c % 4 + 1) * ((size_t)1 << (b - 2));

		if (cls[c].size != want_size) {
			diag("class %zu: size %zu, want %zu", c, cls[c].size,
			    want_size);
			sizes = false;
		}
	}
	ok(sizes && cls[BEAMALLOC_GPA_NCLASS - 1].size == 16384,
	    "8, 16, 24, 32, then 40, 48, 56, 64, 80, ... 14336, 16384");

	/* One block of every 13th length: with safety off a class counts
	 * whole slots, so the slots' bytes are the sum of its live_bytes. */
	a = beamalloc_gpa_allocator(g);
	for (size_t len = 1; len <= 16384; len += STEP) {
		if ((p[n] = beamalloc_alloc(a, len)) == NULL)
			break;
		want[class_for(cls, len)]++;
		requested += len;
		n++;
	}
	is_size(n, NLEN, "%d blocks of lengths 1 to 16382", NLEN);
	beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS, &lg);
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++) {
		slots += cls[c].live_bytes;
		if (cls[c].live_blocks != want[c]) {
			diag("class %zu (%zu B): %zu blocks, want %zu", c,
			    cls[c].size, cls[c].live_blocks, want[c]);
			counts = false;
		}
	}
	ok(counts && lg.live_blocks == 0,
	    "each block is in the smallest class that holds it");
	ok(slots * 8 <= requested * 9, "average waste %.1f %% of the "
	    "requested bytes (at most 12.5 %%)",
	    100.0 * (double)(slots - requested) / (double)requested);
	for (size_t i = 0; i < n; i++)
		beamalloc_free(a, p[i], 1 + i * STEP);
	is_size(beamalloc_gpa_destroy(g), 0, "all freed");

	/* Alignments: a slot of a class whose size the alignment divides. */
	g = make(true);
	a = beamalloc_gpa_allocator(g);
	n = 0;
	for (size_t align = 16; align <= 16384; align *= 2)
		for (size_t len = 1; len <= 16384; len = len * 3 + 1) {
			uintptr_t q = (uintptr_t)beamalloc_alloc_aligned(a, len,
			    align);

			if (q == 0 || q % align != 0) {
				diag("len %zu align %zu: %#lx", len, align,
				    (unsigned long)q);
				aligned = false;
				continue;
			}
			beamalloc_free_aligned(a, (void *)q, len, align);
			n++;
		}
	ok(aligned, "%zu blocks aligned to 16 B .. 16 KiB: each aligned", n);
	beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS, &lg);
	is_size(beamalloc_gpa_destroy(g), 0, "and all freed, no report");
	free(p);
	return done_testing();
}
