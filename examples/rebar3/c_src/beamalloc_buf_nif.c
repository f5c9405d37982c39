/*
 * beamalloc_buf_nif.c - buffers as NIF resources, their bytes from one
 * general purpose allocator (GPA) per loaded library, shared by every
 * instance of the module and freed in the resource's destructor.
 *
 * The GPA's lifetime is the pattern shown here.  A resource can outlive
 * the module instance that made it (it may be referenced after a code
 * upgrade and after the old code is purged, and ERTS runs its destructor
 * whenever the last reference goes), so the GPA belongs to a small shared
 * state counted by references: one per module instance and one per live
 * buffer.
 *   load     creates the state and its GPA (references: 1).
 *   upgrade  (new code of the module loads this same library): the new
 *            instance takes the old one's state, one more reference, and
 *            takes over the resource type, so buffers made by the old code
 *            stay valid and are freed into the same GPA.  A different
 *            copy of the library (another .so file) must not share it: the
 *            GPA's code and tables live in the copy that made it, which
 *            ERTS unmaps once the old code is purged.  Then the new
 *            instance starts its own state, if no buffer of the old one is
 *            alive, and refuses the upgrade otherwise.
 *   unload   (the old code is purged) drops the instance's reference.
 *   the destructor frees the buffer into its GPA and drops its reference.
 * Whoever drops the last reference destroys the GPA, which reports (on
 * stderr) any block still live.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <beamalloc/nif.h>	/* <erl_nif.h>, <beamalloc.h> */

#define STATE_VERSION 1

typedef struct state {
	int version;		/* STATE_VERSION: the layout of this struct */
	const void *lib;	/* &lib_marker of the library copy that made it */
	beamalloc_gpa *gpa;
	beamalloc_allocator a;
	atomic_long refs;	/* module instances + live buffers */
	atomic_long buffers;	/* live buffers */
	atomic_long upgrades, unloads;
} state;

typedef struct buf {
	state *owner;
	unsigned char *data;
	size_t len;
} buf;

static const char lib_marker;	/* one address per copy of this library */
static ErlNifResourceType *buf_type;

static state *
state_create(void)
{
	beamalloc_gpa_config cfg;
	state *s;

	if ((s = enif_alloc(sizeof *s)) == NULL)
		return NULL;
	beamalloc_gpa_config_init(&cfg);
	cfg.thread_safe = true;	/* destructors run on any scheduler */
	cfg.safety = true;	/* sizes checked on free */
	/* Over the wide allocator over enif_alloc: the VM counts every byte. */
	if ((s->gpa = beamalloc_gpa_create(beamalloc_wide(), &cfg)) == NULL) {
		enif_free(s);
		return NULL;
	}
	s->version = STATE_VERSION;
	s->lib = &lib_marker;
	s->a = beamalloc_gpa_allocator(s->gpa);
	atomic_init(&s->refs, 1);
	atomic_init(&s->buffers, 0);
	atomic_init(&s->upgrades, 0);
	atomic_init(&s->unloads, 0);
	return s;
}

static void
state_release(state *s)
{
	size_t leaks;

	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	if ((leaks = beamalloc_gpa_destroy(s->gpa)) != 0)
		fprintf(stderr, "beamalloc_buf: %zu blocks leaked\n", leaks);
	enif_free(s);
}

static void
buf_dtor(ErlNifEnv *env, void *obj)
{
	buf *b = obj;

	(void)env;
	if (b->owner == NULL)	/* new/2 failed before allocating */
		return;
	beamalloc_free(b->owner->a, b->data, b->len);
	atomic_fetch_sub(&b->owner->buffers, 1);
	state_release(b->owner);
}

static int
open_type(ErlNifEnv *env, ErlNifResourceFlags flags)
{
	buf_type = enif_open_resource_type(env, NULL, "buf", buf_dtor, flags,
	    NULL);
	return buf_type == NULL;
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	(void)info;
	if (open_type(env, ERL_NIF_RT_CREATE) || (*priv = state_create()) == NULL)
		return 1;
	return 0;
}

static int
upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info)
{
	state *old = *old_priv;

	(void)info;
	if (old->version == STATE_VERSION && old->lib == &lib_marker) {
		atomic_fetch_add(&old->refs, 1);
		atomic_fetch_add(&old->upgrades, 1);
		*priv = old;
	} else if (old->version == STATE_VERSION &&
	    atomic_load(&old->buffers) == 0) {
		if ((*priv = state_create()) == NULL)
			return 1;
	} else {
		return 1;	/* another copy's buffers are alive */
	}
	return open_type(env, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
}

static void
unload(ErlNifEnv *env, void *priv)
{
	state *s = priv;

	(void)env;
	atomic_fetch_add(&s->unloads, 1);
	state_release(s);
}

/* new(Size, Byte) -> a buffer of Size bytes, each Byte. */
static ERL_NIF_TERM
new_buf(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	state *s = enif_priv_data(env);
	unsigned long len;
	unsigned byte;
	buf *b;
	ERL_NIF_TERM t;

	(void)argc;
	if (!enif_get_ulong(env, argv[0], &len) ||
	    !enif_get_uint(env, argv[1], &byte) || byte > 255)
		return enif_make_badarg(env);
	if ((b = enif_alloc_resource(buf_type, sizeof *b)) == NULL)
		return beamalloc_nif_raise_errno(env);
	b->owner = NULL;
	if ((b->data = beamalloc_alloc(s->a, len)) == NULL) {
		t = beamalloc_nif_raise_errno(env);
		enif_release_resource(b);
		return t;
	}
	memset(b->data, (int)byte, len);
	b->len = len;
	b->owner = s;
	atomic_fetch_add(&s->refs, 1);
	atomic_fetch_add(&s->buffers, 1);
	t = enif_make_resource(env, b);
	enif_release_resource(b);	/* the term holds it now */
	return t;
}

/* to_binary(Buf) -> a copy of its bytes. */
static ERL_NIF_TERM
to_binary(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	buf *b;
	ERL_NIF_TERM t;
	unsigned char *p;

	(void)argc;
	if (!enif_get_resource(env, argv[0], buf_type, (void **)&b))
		return enif_make_badarg(env);
	if ((p = enif_make_new_binary(env, b->len, &t)) == NULL)
		return beamalloc_nif_raise_errno(env);
	memcpy(p, b->data, b->len);
	return t;
}

static ERL_NIF_TERM
put(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, long value)
{
	ERL_NIF_TERM out;

	enif_make_map_put(env, map, enif_make_atom(env, key),
	    enif_make_long(env, value), &out);
	return out;
}

/* stats() -> #{live_blocks, live_bytes, buffers, refs, upgrades, unloads}
 * of this instance's GPA and state. */
static ERL_NIF_TERM
stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	state *s = enif_priv_data(env);
	beamalloc_gpa_stats st;
	ERL_NIF_TERM m = enif_make_new_map(env);

	(void)argc, (void)argv;
	beamalloc_gpa_get_stats(s->gpa, &st);
	m = put(env, m, "live_blocks", (long)st.live_blocks);
	m = put(env, m, "live_bytes", (long)st.live_bytes);
	m = put(env, m, "buffers", atomic_load(&s->buffers));
	m = put(env, m, "refs", atomic_load(&s->refs));
	m = put(env, m, "upgrades", atomic_load(&s->upgrades));
	m = put(env, m, "unloads", atomic_load(&s->unloads));
	return m;
}

static ErlNifFunc funcs[] = {
	{"new", 2, new_buf, 0},
	{"to_binary", 1, to_binary, 0},
	{"stats", 0, stats, 0},
};

ERL_NIF_INIT(beamalloc_buf, funcs, load, NULL, upgrade, unload)
