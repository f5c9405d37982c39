/*
 * tap.h - a minimal TAP producer for the test programs (header-only).
 *
 *   plan(n); ok(cond, "name %d", i); is_int(got, want, "name");
 *   is_ptr / is_size / diag / skip / skip_all / bail; return done_testing();
 *
 * Output goes to stdout for automake's tap-driver.sh; the exit status is 1
 * when any test failed or the plan was not met.
 */
#ifndef BEAMALLOC_TAP_H
#define BEAMALLOC_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_planned = -1;
static int tap_run;
static int tap_failed;

#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

TAP_PRINTF(2, 0) static void
tap_vline(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

static inline void
plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline TAP_PRINTF(1, 2) void
diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fflush(stdout);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
}

static inline TAP_PRINTF(2, 3) int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	char prefix[64];

	tap_run++;
	if (!cond)
		tap_failed++;
	snprintf(prefix, sizeof(prefix), "%sok %d - ", cond ? "" : "not ",
	    tap_run);
	va_start(ap, fmt);
	tap_vline(prefix, fmt, ap);
	va_end(ap);
	return cond;
}

/* Each records the values when the test fails. */
#define is_int(got, want, ...) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	if (!ok(got_ == want_, __VA_ARGS__)) \
		diag("  got %lld, want %lld", got_, want_); \
} while (0)

#define is_size(got, want, ...) do { \
	size_t got_ = (size_t)(got), want_ = (size_t)(want); \
	if (!ok(got_ == want_, __VA_ARGS__)) \
		diag("  got %zu, want %zu", got_, want_); \
} while (0)

#define is_ptr(got, want, ...) do { \
	const void *got_ = (got), *want_ = (want); \
	if (!ok(got_ == want_, __VA_ARGS__)) \
		diag("  got %p, want %p", got_, want_); \
} while (0)

static inline TAP_PRINTF(2, 3) void
skip(int n, const char *fmt, ...)
{
	va_list ap;
	char buf[256];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	while (n-- > 0)
		printf("ok %d # SKIP %s\n", ++tap_run, buf);
	fflush(stdout);
}

static inline TAP_PRINTF(1, 2) void
skip_all(const char *fmt, ...)
{
	va_list ap;

	fputs("1..0 # SKIP ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(0);
}

static inline TAP_PRINTF(1, 2) void
bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(255);
}

/* Print a plan if none was given, and the exit status for the driver. */
static inline int
done_testing(void)
{
	if (tap_planned < 0)
		plan(tap_run);
	else if (tap_planned != tap_run) {
		diag("planned %d tests but ran %d", tap_planned, tap_run);
		return 1;
	}
	return tap_failed != 0;
}

static inline int
is_aligned(const void *p, size_t align)
{
	return ((uintptr_t)p & (align - 1)) == 0;
}

#endif /* BEAMALLOC_TAP_H */
