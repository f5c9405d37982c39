/*
 * trace_nif.c - the GPA's stack traces inside a real BEAM: on a normal
 * scheduler, a dirty CPU scheduler and an enif_thread_create thread (each
 * with its own stack, found with pthread_getattr_np), a traced block's
 * trace names the NIF's call chain, and sampled traces trace 1 in N.
 * Built with -fno-omit-frame-pointer, as the README asks of NIFs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

#include <beamalloc/nif.h>

#define NBLK 40
#define SAMPLE 4

/* What the leak reports showed. */
struct seen {
	char names[3][32];		/* the first block's first frames */
	unsigned n, traced, not_sampled;
};

/* Exported (visible to dladdr), not inlined, no tail calls. */
#define CHAIN __attribute__((noinline, visibility("default")))
CHAIN void *trace_level1(beamalloc_allocator a);
CHAIN void *trace_level2(beamalloc_allocator a);
CHAIN void trace_chain(struct seen *s, unsigned sample);

void *
trace_level1(beamalloc_allocator a)
{
	void *p = beamalloc_alloc(a, 40);

	__asm__ volatile("" ::: "memory");
	return p;
}

void *
trace_level2(beamalloc_allocator a)
{
	void *p = trace_level1(a);

	__asm__ volatile("" ::: "memory");
	return p;
}

static void
keep(void *user, const beamalloc_report *r)
{
	struct seen *s = user;

	if (r->not_sampled != 0) {
		s->not_sampled++;
		return;
	}
	if (r->alloc_trace_len != 0)
		s->traced++;
	if (s->n++ != 0)
		return;
	for (size_t i = 0; i < 3 && i < r->alloc_trace_len; i++) {
		Dl_info di;

		strcpy(s->names[i], "?");
		if (dladdr((void *)(r->alloc_trace[i] - 1), &di) != 0 &&
		    di.dli_sname != NULL && strlen(di.dli_sname) < 32)
			strcpy(s->names[i], di.dli_sname);
	}
}

/* NBLK blocks from trace_level2, leaked on purpose, then reported. */
void
trace_chain(struct seen *s, unsigned sample)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	void *p[NBLK];

	beamalloc_gpa_config_init(&cfg);
	cfg.stack_trace_depth = 8;
	cfg.trace_sample = sample;
	cfg.report = keep;
	cfg.report_user = s;
	if ((g = beamalloc_gpa_create(beamalloc_beam(), &cfg)) == NULL)
		return;
	for (int i = 0; i < NBLK; i++)
		p[i] = trace_level2(beamalloc_gpa_allocator(g));
	beamalloc_gpa_detect_leaks(g);
	for (int i = 0; i < NBLK; i++)
		beamalloc_free(beamalloc_gpa_allocator(g), p[i], 40);
	beamalloc_gpa_destroy(g);
	__asm__ volatile("" ::: "memory");
}

/* {[Frame0, Frame1, Frame2], Traced, NotSampled} of every block traced,
 * then of 1 in SAMPLE. */
static ERL_NIF_TERM
result(ErlNifEnv *env, const struct seen *all, const struct seen *smp)
{
	ERL_NIF_TERM names[3];

	for (int i = 0; i < 3; i++)
		names[i] = enif_make_string(env, all->names[i], ERL_NIF_LATIN1);
	return enif_make_tuple3(env, enif_make_list_from_array(env, names, 3),
	    enif_make_tuple2(env, enif_make_uint(env, all->traced),
	    enif_make_uint(env, all->not_sampled)),
	    enif_make_tuple2(env, enif_make_uint(env, smp->traced),
	    enif_make_uint(env, smp->not_sampled)));
}

struct both {
	struct seen all, smp;
};

static void
run_both(struct both *b)
{
	memset(b, 0, sizeof(*b));
	trace_chain(&b->all, 0);
	trace_chain(&b->smp, SAMPLE);
}

static ERL_NIF_TERM
run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct both b;

	(void)argc;
	(void)argv;
	run_both(&b);
	return result(env, &b.all, &b.smp);
}

static void *
thread_main(void *arg)
{
	run_both(arg);
	return NULL;
}

static ERL_NIF_TERM
run_thread(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	struct both b;
	ErlNifTid tid;
	char name[] = "trace_nif";

	(void)argc;
	(void)argv;
	if (enif_thread_create(name, &tid, thread_main, &b, NULL) != 0)
		return enif_make_badarg(env);
	enif_thread_join(tid, NULL);
	return result(env, &b.all, &b.smp);
}

static ErlNifFunc funcs[] = {
	{ "run", 0, run, 0 },
	{ "run_dirty", 0, run, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "run_thread", 0, run_thread, ERL_NIF_DIRTY_JOB_CPU_BOUND },
};

ERL_NIF_INIT(trace, funcs, NULL, NULL, NULL, NULL)
