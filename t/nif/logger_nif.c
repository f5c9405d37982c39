/*
 * logger_nif.c - findings sent to an Erlang process
 * (beamalloc_nif_logger_report): from a NIF call (normal or dirty,
 * leak-checked or not), from a thread the VM did not make, and through the
 * process-wide default report.
 */
#include <pthread.h>
#include <unistd.h>

#include <beamalloc/nif.h>

static beamalloc_nif_logger lg;
static beamalloc_gpa_config checked_cfg;	/* the leak checks' */

/* setup(Dest): findings go to Dest, a pid or a registered name. */
static ERL_NIF_TERM
setup(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	if (!beamalloc_nif_logger_init(env, argv[0], &lg))
		return enif_make_badarg(env);
	beamalloc_gpa_config_init(&checked_cfg);
	beamalloc_nif_logger_install(&lg, &checked_cfg);
	return enif_make_atom(env, "ok");
}

/* A GPA reporting to lg: 40 bytes leaked, or freed twice. */
static void *
misuse(void *arg)
{
	beamalloc_gpa_config cfg;
	beamalloc_gpa *g;
	void *p;

	beamalloc_gpa_config_init(&cfg);
	beamalloc_nif_logger_install(&lg, &cfg);
	if ((g = beamalloc_gpa_create(beamalloc_wide(), &cfg)) == NULL)
		return NULL;
	p = beamalloc_alloc(beamalloc_gpa_allocator(g), 40);	/* LEAK */
	if (arg != NULL) {
		beamalloc_free(beamalloc_gpa_allocator(g), p, 40);
		beamalloc_free(beamalloc_gpa_allocator(g), p, 40);
	}
	(void)beamalloc_gpa_destroy(g);
	return p;
}

/* leak() and double_free() on the calling scheduler. */
static ERL_NIF_TERM
leak(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	(void)misuse(NULL);
	return enif_make_atom(env, "ok");
}

static ERL_NIF_TERM
double_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc, (void)argv;
	(void)misuse(&lg);
	return enif_make_atom(env, "ok");
}

/* checked_leak(): 24 bytes leaked in a leak-checked call, whose report
 * goes to lg. */
static ERL_NIF_TERM
checked_leak_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	(void)argc, (void)argv;
	(void)beamalloc_alloc(a, 24);
	return enif_make_atom(env, "ok");
}

BEAMALLOC_NIF_LEAK_CHECKED_WITH(checked_leak, checked_leak_body, &checked_cfg)

/* dirty_checked_leak_killed(Pid): a leak on a dirty scheduler, reported
 * once the calling process is exiting: the body sends in_call to Pid, the
 * test kills the caller, the body waits for that (a minute at most: a
 * guard, not a measure).  enif_send() and enif_whereis_pid() refuse the
 * env of an exiting process there: the report went to stderr, not to
 * the logger that was there. */
static ERL_NIF_TERM
killed_leak_body(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	ErlNifPid parent;
	int i;

	(void)argc;
	(void)beamalloc_alloc(a, 32);
	if (!enif_get_local_pid(env, argv[0], &parent) ||
	    !enif_send(env, &parent, NULL, enif_make_atom(env, "in_call")))
		return enif_make_badarg(env);
	for (i = 0; i < 60000 && enif_is_current_process_alive(env); i++)
		usleep(1000);
	return enif_make_atom(env, i < 60000 ? "killed" : "alive");
}

BEAMALLOC_NIF_LEAK_CHECKED_WITH(killed_leak, killed_leak_body, &checked_cfg)

/* leak_on_thread(): the same leak on a plain pthread, joined. */
static ERL_NIF_TERM
leak_on_thread(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	pthread_t t;

	(void)argc, (void)argv;
	if (pthread_create(&t, NULL, misuse, NULL) != 0)
		return enif_make_badarg(env);
	pthread_join(t, NULL);
	return enif_make_atom(env, "ok");
}

/* wide_bad_free(): the process-wide default report goes to lg too; the
 * wide allocator reports a free of a pointer it never gave out. */
static ERL_NIF_TERM
wide_bad_free(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	static _Alignas(4096) unsigned char never[4096];

	(void)argc, (void)argv;
	beamalloc_nif_logger_install(&lg, NULL);
	beamalloc_free_aligned(beamalloc_wide(), never, 64, 4096);
	beamalloc_report_set_default(NULL, NULL, false);
	return enif_make_atom(env, "ok");
}

static ErlNifFunc funcs[] = {
	{ "setup", 1, setup, 0 },
	{ "leak", 0, leak, 0 },
	{ "double_free", 0, double_free, 0 },
	{ "dirty_double_free", 0, double_free, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "checked_leak", 0, checked_leak, 0 },
	{ "dirty_checked_leak", 0, checked_leak, ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "dirty_checked_leak_killed", 1, killed_leak,
	    ERL_NIF_DIRTY_JOB_CPU_BOUND },
	{ "leak_on_thread", 0, leak_on_thread, 0 },
	{ "wide_bad_free", 0, wide_bad_free, 0 },
};

ERL_NIF_INIT(logger_nif, funcs, NULL, NULL, NULL, NULL)
