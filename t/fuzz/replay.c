/*
 * replay.c - make check's share of the fuzzing: every input of the seed
 * corpus (t/fuzz/corpus, or the directories given as arguments) run on
 * every allocator against the model, with the build's own compiler and,
 * in the sanitizer and valgrind runs, under those tools.  A finding aborts
 * with the model's message.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "../tap.h"

#define INPUT_MAX (1 << 20)

static unsigned char input[INPUT_MAX];

/* Run every regular file of dir on target; the number of files. */
static size_t
replay_dir(int target, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	size_t files = 0;

	if (d == NULL)
		bail("cannot open %s", dir);
	while ((e = readdir(d)) != NULL) {
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			bail("cannot read %s", path);
		n = fread(input, 1, sizeof(input), f);
		fclose(f);
		fz_run(target, input, n);
		files++;
	}
	closedir(d);
	return files;
}

int
main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	char corpus[4096];

	snprintf(corpus, sizeof(corpus), "%s/t/fuzz/corpus", top ? top : ".");
	plan(fz_ntargets);
	for (int t = 0; t < fz_ntargets; t++) {
		unsigned long long ops = fz_ops;
		size_t files = 0;

		if (argc > 1)
			for (int i = 1; i < argc; i++)
				files += replay_dir(t, argv[i]);
		else
			files = replay_dir(t, corpus);
		ok(files > 0 && fz_ops > ops, "%s: %zu inputs, %llu operations "
		    "matched the model", fz_target_name(t), files, fz_ops - ops);
	}
	return done_testing();
}
