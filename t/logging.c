/*
 * logging.c - the logging allocator: one entry per call with its kind,
 * block, lengths, alignment, result and errno, under the scope name; the
 * default printer's lines; calls and errno passed through unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#include "testalloc.h"

#define MAX_ENTRIES 16

static beamalloc_log_entry entries[MAX_ENTRIES];
static size_t nentries;

static void
record(void *user, const beamalloc_log_entry *e)
{
	(void)user;
	if (nentries < MAX_ENTRIES)
		entries[nentries] = *e;
	nentries++;
	errno = 12345;	/* a callback's errno must not leak out */
}

static void
entries_of_calls(void)
{
	testalloc *t = testalloc_new();
	beamalloc_logging lg;
	beamalloc_allocator a;
	unsigned char *p, *q;
	const beamalloc_log_entry *e = entries;

	beamalloc_logging_init(&lg, testalloc_allocator(t), "nif", record,
	    NULL);
	a = beamalloc_logging_allocator(&lg);
	p = beamalloc_alloc(a, 40);
	ok(nentries == 1 && e[0].kind == BEAMALLOC_LOG_ALLOC &&
	    strcmp(e[0].scope, "nif") == 0 && e[0].len == 40 &&
	    e[0].align == 8 && e[0].result == p && p != NULL &&
	    e[0].error == 0 && e[0].ret_addr != 0,
	    "alloc: kind, scope, len, align, result, call site");
	errno = 0;
	ok(beamalloc_resize(a, p, 40, 8, 20) && errno == 0 && nentries == 2 &&
	    e[1].kind == BEAMALLOC_LOG_RESIZE && e[1].mem == p &&
	    e[1].len == 40 && e[1].new_len == 20 && e[1].result == p,
	    "resize: block, old and new length, success; errno untouched");
	q = beamalloc_remap(a, p, 20, 8, 30);
	ok(nentries == 3 && e[2].kind == BEAMALLOC_LOG_REMAP &&
	    e[2].new_len == 30 && e[2].result == q,
	    "remap: its result");
	if (q != NULL)
		p = q;
	beamalloc_free(a, p, q != NULL ? 30 : 20);
	ok(nentries == 4 && e[3].kind == BEAMALLOC_LOG_FREE && e[3].mem == p &&
	    e[3].result == NULL, "free: the block");
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 8, 64) == NULL && errno == ENOMEM &&
	    nentries == 5 && e[4].result == NULL && e[4].error == ENOMEM &&
	    e[4].align == 64, "a failed alloc (a NULL without errno from the "
	    "backing): NULL result, ENOMEM logged and seen by the caller");
	nentries = 0;
	ok(beamalloc_alloc(a, 0) != NULL && nentries == 0,
	    "length 0 never reaches the logger (the front-end answers)");
	beamalloc_free(a, NULL, 8);
	ok(nentries == 0 && t->nblocks == 0 && t->bad_calls == 0,
	    "free(NULL) logs nothing; the backing saw exact calls");
	free(t);
}

static void
default_printer(void)
{
	FILE *f = tmpfile();
	char text[512] = "";
	beamalloc_logging lg;
	beamalloc_allocator a;
	void *p;
	size_t n;

	if (f == NULL)
		bail("tmpfile");
	beamalloc_logging_init(&lg, beamalloc_libc(), NULL, NULL, f);
	a = beamalloc_logging_allocator(&lg);
	p = beamalloc_alloc(a, 64);
	beamalloc_free(a, p, 64);
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 64, (size_t)1 << 20) == NULL,
	    "libc refuses 1 MiB alignment");
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	ok(strncmp(text, "beamalloc: alloc len 64 align 8: 0x", 35) == 0,
	    "default scope and line of an alloc");
	ok(strstr(text, "\nbeamalloc: free 0x") != NULL &&
	    strstr(text, " len 64 align 8\n") != NULL, "a free's line");
	ok(strstr(text, "alloc len 64 align 1048576: failed (") != NULL,
	    "a failure's line names its error");
	diag("printed: %s", text);
}

int
main(void)
{
	entries_of_calls();
	default_printer();
	return done_testing();
}
