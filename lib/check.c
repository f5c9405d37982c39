/*
 * check.c - prove every out-of-memory path of a function (Zig's
 * std.testing.checkAllAllocationFailures).
 *
 * The function runs once through a failing allocator that never fails,
 * which counts its allocations, then once per allocation index with that
 * allocation failing.  A run is clean when it returns an error and its
 * counters balance (every block and byte freed).  Findings: a leak, an
 * ignored failure (success despite the failure), an unexpected run (the
 * failing index was never reached: the function does not allocate the
 * same way each time), and in fork mode a crash.
 *
 * Fork mode keeps the failing allocator in a shared anonymous mapping, so
 * the parent still reads the counters and the failing call site of a
 * child that died.
 */
#define _GNU_SOURCE	/* MAP_ANONYMOUS */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* One run, as the parent sees it. */
struct outcome {
	beamalloc_failing f;
	int ret;		/* what fn returned */
	bool returned;		/* fn returned (false: the child died) */
	int status;		/* waitpid status (fork mode) */
};

struct checker {
	beamalloc_allocator backing;
	beamalloc_check_fn fn;
	void *arg;
	beamalloc_check_options opt;
	FILE *out;
	struct outcome *o;	/* shared with the children in fork mode */
	size_t n;		/* allocations of the clean run */
	beamalloc_check_result r;
};

/* ------------------------------------------------------------------------
 * Running
 * ---------------------------------------------------------------------- */

static void
run_here(struct checker *c, size_t fail_index)
{
	struct outcome *o = c->o;

	o->returned = false;
	o->status = 0;
	beamalloc_failing_init(&o->f, c->backing, fail_index,
	    BEAMALLOC_NEVER);
	o->ret = c->fn(beamalloc_failing_allocator(&o->f), c->arg);
	o->returned = true;
}

/* 0 when the run happened (o says how it ended), -1 + errno if not. */
static int
run(struct checker *c, size_t fail_index)
{
	pid_t pid;

	if (!c->opt.fork) {
		run_here(c, fail_index);
		return 0;
	}
	/* The child inherits unwritten stdio buffers: flush them once. */
	fflush(NULL);
	c->o->returned = false;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		run_here(c, fail_index);
		ba_symbols_release();
		_exit(0);
	}
	/* Once fn has returned, the outcome is in: how the child ended
	 * after that (a memory checker's exit status) does not matter. */
	while (waitpid(pid, &c->o->status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------------
 * Reporting
 * ---------------------------------------------------------------------- */

/* "beamalloc_check: allocation #i of n failed (called from ...): " */
static void
print_run(struct checker *c, size_t i)
{
	fputs("beamalloc_check: ", c->out);
	if (i == BEAMALLOC_NEVER) {
		fprintf(c->out, "run without failures: ");
		return;
	}
	fprintf(c->out, "allocation #%zu of %zu failed", i, c->n);
	if (c->o->f.fail_ret_addr != 0) {
		fputs(" (called from ", c->out);
		ba_print_pc(c->out, c->o->f.fail_ret_addr);
		fputc(')', c->out);
	}
	fputs(": ", c->out);
}

static void
print_death(FILE *out, int status)
{
	if (WIFSIGNALED(status))
		fprintf(out, "crashed (signal %d, %s)\n", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status))
		fprintf(out, "died (exit status %d) before returning\n",
		    WEXITSTATUS(status));
	else
		fputs("died before returning\n", out);
}

/* Under a leak or crash of run i: the stack of its failed allocation. */
static void
print_failure_trace(struct checker *c, size_t i)
{
	if (i != BEAMALLOC_NEVER)
		ba_print_trace(c->out, "the failed allocation",
		    c->o->f.fail_trace, c->o->f.fail_trace_len);
}

/* ------------------------------------------------------------------------
 * Judging one run
 * ---------------------------------------------------------------------- */

static void
finding(struct checker *c, size_t i)
{
	if (i != BEAMALLOC_NEVER && c->r.first_bad_index == BEAMALLOC_NEVER)
		c->r.first_bad_index = i;
}

/* Counters out of balance: report and count; true if so. */
static bool
judge_leak(struct checker *c, size_t i)
{
	const beamalloc_failing *f = &c->o->f;
	size_t blocks, bytes;

	if (f->allocated_bytes == f->freed_bytes &&
	    f->allocations == f->deallocations)
		return false;
	print_run(c, i);
	fprintf(c->out, "%s ", c->o->ret != 0 ? "returned an error but" :
	    "returned success but");
	if (f->allocated_bytes >= f->freed_bytes &&
	    f->allocations >= f->deallocations) {
		bytes = f->allocated_bytes - f->freed_bytes;
		blocks = f->allocations - f->deallocations;
		fprintf(c->out, "leaked %zu byte%s in %zu block%s\n", bytes,
		    bytes == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s");
		c->r.leaked_bytes += bytes;
		c->r.leaked_blocks += blocks;
	} else
		fprintf(c->out, "freed more than it allocated (%zu bytes in "
		    "%zu blocks allocated, %zu bytes in %zu blocks freed: "
		    "wrong lengths?)\n", f->allocated_bytes, f->allocations,
		    f->freed_bytes, f->deallocations);
	print_failure_trace(c, i);
	c->r.leaking_runs++;
	finding(c, i);
	return true;
}

/* The run without failures: it must succeed and free everything. */
static bool
judge_clean_run(struct checker *c)
{
	bool leak;

	c->n = c->o->f.allocations;
	c->r.allocations = c->n;
	if (!c->o->returned) {
		print_run(c, BEAMALLOC_NEVER);
		print_death(c->out, c->o->status);
		c->r.crashed_runs++;
		return false;
	}
	leak = judge_leak(c, BEAMALLOC_NEVER);
	if (c->o->ret != 0) {
		print_run(c, BEAMALLOC_NEVER);
		fprintf(c->out, "returned %d (an error) with no allocation "
		    "failing\n", c->o->ret);
	}
	c->r.clean_run_ok = !leak && c->o->ret == 0;
	return c->r.clean_run_ok;
}

/* Run i: false when the check must stop here. */
static bool
judge_run(struct checker *c, size_t i)
{
	const struct outcome *o = c->o;

	c->r.runs++;
	if (!o->returned) {
		print_run(c, i);
		print_death(c->out, o->status);
		print_failure_trace(c, i);
		c->r.crashed_runs++;
		finding(c, i);
		return true;
	}
	judge_leak(c, i);
	if (!o->f.has_induced_failure) {
		print_run(c, i);
		fprintf(c->out, "never reached: the function made %zu "
		    "allocations this time and returned %d (it does not "
		    "allocate the same way on every run)\n",
		    o->f.allocations, o->ret);
		c->r.unexpected_runs++;
		finding(c, i);
		return true;
	}
	if (o->ret != 0)
		return true;
	print_run(c, i);
	fputs("returned success anyway (ignored failure)", c->out);
	c->r.ignored_failures++;
	finding(c, i);
	/* In process, a function that went on without its memory may have
	 * broken what later runs rely on: stop at the cause. */
	if (!c->opt.fork && !c->opt.keep_going) {
		fputs("; stopping\n", c->out);
		return false;
	}
	fputc('\n', c->out);
	return true;
}

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

void
beamalloc_check_options_init(beamalloc_check_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->struct_size = sizeof(*opt);
}

static int
check(struct checker *c)
{
	size_t i;

	if (run(c, BEAMALLOC_NEVER) != 0)
		return -1;
	if (!judge_clean_run(c))
		return 0;
	for (i = 0; i < c->n; i++) {
		if (run(c, i) != 0)
			return -1;
		if (!judge_run(c, i))
			break;
	}
	return 0;
}

int
beamalloc_check_alloc_failures_opt(beamalloc_allocator backing,
    beamalloc_check_fn fn, void *arg, const beamalloc_check_options *opt,
    beamalloc_check_result *result)
{
	struct checker c;
	struct outcome local;
	int entry_errno = errno, err, rc;
	bool ran;

	memset(&c, 0, sizeof(c));
	beamalloc_check_options_init(&c.opt);
	if (opt != NULL)
		memcpy(&c.opt, opt, ba_min(opt->struct_size, sizeof(c.opt)));
	c.backing = backing;
	c.fn = fn;
	c.arg = arg;
	c.out = c.opt.out != NULL ? c.opt.out : stderr;
	c.r.first_bad_index = BEAMALLOC_NEVER;
	if (result != NULL)
		*result = c.r;
	/* struct_size 0: options no beamalloc_check_options_init() filled
	 * (designated initializers), whose fields would go unread, as the
	 * GPA's config refuses them. */
	if (fn == NULL || backing.vtable == NULL ||
	    (opt != NULL && opt->struct_size == 0)) {
		errno = EINVAL;
		return -1;
	}
	c.o = &local;
	if (c.opt.fork) {
		c.o = mmap(NULL, sizeof(*c.o), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (c.o == MAP_FAILED)
			return -1;
	}
	rc = check(&c);
	err = errno;
	ran = rc == 0;
	if (rc != 0)
		fprintf(c.out, "beamalloc_check: cannot run the function: "
		    "%s\n", strerror(err));
	if (c.opt.fork)
		munmap(c.o, sizeof(*c.o));
	if (rc == 0 && (!c.r.clean_run_ok || c.r.first_bad_index !=
	    BEAMALLOC_NEVER)) {
		fprintf(c.out, "beamalloc_check: %zu allocations, %zu runs: "
		    "%zu leaking, %zu ignored failures, %zu crashed, "
		    "%zu unexpected\n", c.r.allocations, c.r.runs,
		    c.r.leaking_runs, c.r.ignored_failures, c.r.crashed_runs,
		    c.r.unexpected_runs);
		rc = -1;
	}
	fflush(c.out);
	if (result != NULL)
		*result = c.r;
	/* errno tells why only when the function could not be run; after
	 * the runs it is the caller's again.  It held what the runs and
	 * the printing of findings left (ENOMEM of the induced failures,
	 * EINVAL after a leak's report), which read as "fn is NULL". */
	errno = ran ? entry_errno : err;
	return rc;
}

int
beamalloc_check_alloc_failures(beamalloc_allocator backing,
    beamalloc_check_fn fn, void *arg, beamalloc_check_result *result)
{
	return beamalloc_check_alloc_failures_opt(backing, fn, arg, NULL,
	    result);
}
