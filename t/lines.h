/*
 * lines.h - for the tests of threads' slabs (t/gpa_lines.c,
 * t/gpa_shared.c): which cache lines hold blocks of two threads, and
 * the slabs a trim leaves.  Header-only; include after beamalloc.h and
 * tap.h.
 */
#ifndef BEAMALLOC_T_LINES_H
#define BEAMALLOC_T_LINES_H

#include <stdint.h>
#include <stdlib.h>

#define LINE 64

/* A line a thread was handed (part of) a block in. */
struct owned {
	uintptr_t line;
	unsigned who;
};

static int
by_line(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorts o[0..n) and counts the lines in it of two threads; the first
 * three are named (what: the case). */
static size_t
lines_shared(struct owned *o, size_t n, const char *what)
{
	size_t shared = 0;

	qsort(o, n, sizeof(*o), by_line);
	for (size_t i = 1; i < n; i++)
		if (o[i].line == o[i - 1].line && o[i].who != o[i - 1].who &&
		    shared++ < 3)
			diag("%s: line 0x%lx handed to threads %u and %u", what,
			    (unsigned long)(o[i].line * LINE), o[i - 1].who,
			    o[i].who);
	return shared;
}

/* Slabs of every class left after a trim. */
static size_t
slabs_after_trim(beamalloc_gpa *g)
{
	beamalloc_gpa_class_stats cls[BEAMALLOC_GPA_NCLASS];
	size_t slabs = 0;

	beamalloc_gpa_trim(g);
	beamalloc_gpa_get_class_stats(g, cls, BEAMALLOC_GPA_NCLASS, NULL);
	for (size_t c = 0; c < BEAMALLOC_GPA_NCLASS; c++)
		slabs += cls[c].slabs;
	return slabs;
}

#endif
