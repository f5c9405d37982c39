/*
 * child.h - a test's step in a child process (header-only): a crash, an
 * abort or a hang there is the step's finding, not the end of the run.
 *
 *   char err[4096];
 *   int st = child_run(step, &arg, CHILD_EXIT, err, sizeof(err));
 *   if (!ok(child_exited(st, 0), "...")) diag("%s", child_how(st, how));
 *
 * step(arg)'s return is the child's exit status: through exit() with
 * CHILD_EXIT, so that the library's destructor joins a decay thread the
 * child started (as at any normal exit), else through _exit(), so that
 * nothing of the parent's copied state runs again (a thread the step
 * left held, atexit handlers).  With err, the child's stderr is read into
 * it, NUL-terminated, the rest drained.  A result bigger than an exit
 * status goes through child_shared() memory, read by the parent after.
 */
#ifndef BEAMALLOC_T_CHILD_H
#define BEAMALLOC_T_CHILD_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#define CHILD_EXIT 1		/* exit(), not _exit() */

/* n zeroed bytes that a child's writes reach the parent through. */
static inline void *
child_shared(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	return p;
}

/* Run step(arg) in a child; its wait status. */
static inline int
child_run(int (*step)(void *), void *arg, int flags, char *err,
    size_t errlen)
{
	int fd[2] = { -1, -1 }, st = 0, r;
	size_t got = 0;
	ssize_t n;
	char drain[512];
	pid_t pid;

	fflush(NULL);		/* else the child prints the parent's too */
	if (err != NULL && pipe(fd) != 0)
		bail("pipe: %s", strerror(errno));
	if ((pid = fork()) < 0)
		bail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (err != NULL) {
			close(fd[0]);
			dup2(fd[1], STDERR_FILENO);
			close(fd[1]);
		}
		r = step(arg);
		if (flags & CHILD_EXIT)
			exit(r);
		_exit(r);
	}
	if (err != NULL) {
		close(fd[1]);
		while (got + 1 < errlen &&
		    (n = read(fd[0], err + got, errlen - 1 - got)) != 0)
			if (n > 0)
				got += (size_t)n;
			else if (errno != EINTR)
				break;
		err[got] = '\0';
		while ((n = read(fd[0], drain, sizeof(drain))) > 0 ||
		    (n < 0 && errno == EINTR))
			;
		close(fd[0]);
	}
	while (waitpid(pid, &st, 0) != pid)
		if (errno != EINTR)
			bail("waitpid: %s", strerror(errno));
	return st;
}

/* It exited with code. */
static inline bool
child_exited(int st, int code)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/* It was killed by sig. */
static inline bool
child_killed(int st, int sig)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == sig;
}

/* "exit 3" or "signal 11", in buf. */
static inline const char *
child_how(int st, char buf[32])
{
	if (WIFEXITED(st))
		snprintf(buf, 32, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, 32, "signal %d", WTERMSIG(st));
	else
		snprintf(buf, 32, "status %#x", (unsigned)st);
	return buf;
}

#endif
