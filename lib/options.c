/*
 * options.c - BEAMALLOC_GPA_OPTIONS: GPA settings chosen at run time.
 *
 * A comma-separated list of name=value, read once per process and applied
 * by beamalloc_gpa_config_init() after the defaults, so every GPA made
 * from an initialised config follows it unless the program then sets a
 * field itself.  The whole list is all or nothing: one bad item gives one
 * warning on stderr and none of the list is applied, so a typo never
 * leaves half a configuration in force.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------
 * The names, and where each value goes
 * ---------------------------------------------------------------------- */

enum opt_kind { OPT_UINT, OPT_BOOL, OPT_BYTES };

struct opt {
	const char *name;
	enum opt_kind kind;
	unsigned long long max;
	size_t offset;			/* of the field in the config */
};

#define CFG_AT(f) offsetof(beamalloc_gpa_config, f)

static const struct opt opts[] = {
	{ "traces", OPT_UINT, BEAMALLOC_GPA_MAX_TRACE,
	    CFG_AT(stack_trace_depth) },
	{ "sample", OPT_UINT, UINT_MAX, CFG_AT(trace_sample) },
	{ "safety", OPT_BOOL, 1, CFG_AT(safety) },
	{ "abort", OPT_BOOL, 1, CFG_AT(abort_on_error) },
	{ "canary", OPT_BOOL, 1, CFG_AT(canary) },
	{ "junk", OPT_BOOL, 1, CFG_AT(junk) },
	{ "quarantine", OPT_BYTES, PTRDIFF_MAX, CFG_AT(quarantine) },
	{ "guard_sample", OPT_UINT, UINT_MAX, CFG_AT(guard_sample) },
	{ "decay", OPT_UINT, UINT_MAX, CFG_AT(decay_ms) },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* What the variable said: a value for each name it set. */
static struct {
	bool set[NOPTS];
	unsigned long long value[NOPTS];
} parsed;
static pthread_once_t parsed_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

/* Decimal digits only (strtoull would take signs, spaces and hex);
 * OPT_BYTES also takes a k, m or g suffix (powers of 1024). */
static bool
parse_value(const struct opt *o, const char *s, size_t n,
    unsigned long long *out)
{
	unsigned long long v = 0, unit = 1;
	size_t i;

	if (o->kind == OPT_BYTES && n > 1) {
		switch (s[n - 1]) {
		case 'k': case 'K': unit = 1ULL << 10; n--; break;
		case 'm': case 'M': unit = 1ULL << 20; n--; break;
		case 'g': case 'G': unit = 1ULL << 30; n--; break;
		}
	}
	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (ULLONG_MAX - 9) / 10)
			return false;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v > o->max / unit)
		return false;
	*out = v * unit;
	return true;
}

/* One item, s[0 .. n): NULL if good, else why not. */
static const char *
parse_item(const char *s, size_t n, bool set[], unsigned long long value[])
{
	const char *eq = memchr(s, '=', n);
	size_t name_len;

	if (eq == NULL)
		return "no '='";
	name_len = (size_t)(eq - s);
	for (size_t i = 0; i < NOPTS; i++) {
		if (strlen(opts[i].name) != name_len ||
		    memcmp(opts[i].name, s, name_len) != 0)
			continue;
		if (set[i])		/* which one was meant? */
			return "given twice";
		if (!parse_value(&opts[i], eq + 1, n - name_len - 1,
		    &value[i]))
			return opts[i].kind == OPT_BOOL ? "not 0 or 1" :
			    "not a number in range";
		set[i] = true;
		return NULL;
	}
	return "unknown name";
}

static void
parse_env(void)
{
	const char *env = secure_getenv("BEAMALLOC_GPA_OPTIONS");
	bool set[NOPTS] = { false };
	unsigned long long value[NOPTS] = { 0 };
	const char *s, *end, *why;

	if (env == NULL)
		return;
	for (s = env; *s != '\0'; s = *end == ',' ? end + 1 : end) {
		end = strchrnul(s, ',');
		if (end == s)		/* empty item: ",," or a trailing ',' */
			continue;
		if ((why = parse_item(s, (size_t)(end - s), set, value))) {
			fprintf(stderr, "beamalloc: BEAMALLOC_GPA_OPTIONS: "
			    "'%.*s': %s; the whole list is ignored\n",
			    (int)(end - s), s, why);
			return;
		}
	}
	memcpy(parsed.set, set, sizeof(set));
	memcpy(parsed.value, value, sizeof(value));
}

/* BEAMALLOC_GPA_TRACES, 0.1's variable: the global GPA's trace depth,
 * read as the list's traces=N, once (the global GPA is made again after
 * a failed try, and by threads racing to make it); a bad value gets one
 * warning and is ignored (false). */
static pthread_once_t traces_once = PTHREAD_ONCE_INIT;
static bool traces_set;
static unsigned traces_depth;

static void
parse_traces(void)
{
	const char *env = secure_getenv("BEAMALLOC_GPA_TRACES");
	unsigned long long v;

	if (env == NULL)
		return;
	if (!parse_value(&opts[0], env, strlen(env), &v)) {	/* traces */
		fprintf(stderr, "beamalloc: BEAMALLOC_GPA_TRACES: '%s': not a "
		    "number from 0 to %d; ignored\n", env,
		    BEAMALLOC_GPA_MAX_TRACE);
		return;
	}
	traces_depth = (unsigned)v;
	traces_set = true;
}

bool
ba_options_traces(unsigned *depth)
{
	pthread_once(&traces_once, parse_traces);
	if (traces_set)
		*depth = traces_depth;
	return traces_set;
}

/* ------------------------------------------------------------------------
 * Applying it
 * ---------------------------------------------------------------------- */

void
ba_options_apply(beamalloc_gpa_config *cfg)
{
	pthread_once(&parsed_once, parse_env);
	for (size_t i = 0; i < NOPTS; i++) {
		char *field = (char *)cfg + opts[i].offset;
		unsigned long long v = parsed.value[i];

		if (!parsed.set[i])
			continue;
		switch (opts[i].kind) {
		case OPT_UINT:
			*(unsigned *)(void *)field = (unsigned)v;
			break;
		case OPT_BOOL:
			*(bool *)(void *)field = v != 0;
			break;
		case OPT_BYTES:
			*(size_t *)(void *)field = (size_t)v;
			break;
		}
	}
}
