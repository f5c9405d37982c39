/*
 * logging.c - each call passed to a backing allocator, then described to
 * a callback (Zig's LoggingAllocator): kind, block, lengths, alignment,
 * result, errno and call site, under the logger's scope name.
 */
#include <string.h>

#include "internal.h"

static const char *const kind_names[] = {
	"?", "alloc", "resize", "remap", "free"
};

static void
emit(const beamalloc_logging *l, beamalloc_log_kind kind, void *mem,
    size_t len, size_t align, size_t new_len, void *result, uintptr_t ra)
{
	int err = errno;
	beamalloc_log_entry e = { l->scope, kind, mem, len, align, new_len,
	    result, kind != BEAMALLOC_LOG_FREE && result == NULL ? err : 0,
	    ra };

	l->fn(l->user, &e);
	errno = err;	/* the caller sees the backing's errno */
}

/* ------------------------------------------------------------------------
 * Vtable
 * ---------------------------------------------------------------------- */

static void *
logging_alloc(void *ctx, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_logging *l = ctx;
	void *p = ba_raw_alloc(l->backing, len, align, ra);

	if (p == NULL)
		ba_fail_from_vtable();
	emit(l, BEAMALLOC_LOG_ALLOC, NULL, len, align, 0, p, ra);
	return p;
}

static bool
logging_resize(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_logging *l = ctx;
	bool done = ba_raw_resize(l->backing, mem, len, align, new_len, ra);

	emit(l, BEAMALLOC_LOG_RESIZE, mem, len, align, new_len,
	    done ? mem : NULL, ra);
	return done;
}

static void *
logging_remap(void *ctx, void *mem, size_t len, size_t align,
    size_t new_len, uintptr_t ra)
{
	beamalloc_logging *l = ctx;
	void *p = ba_raw_remap(l->backing, mem, len, align, new_len, ra);

	emit(l, BEAMALLOC_LOG_REMAP, mem, len, align, new_len, p, ra);
	return p;
}

static void
logging_free(void *ctx, void *mem, size_t len, size_t align, uintptr_t ra)
{
	beamalloc_logging *l = ctx;

	ba_raw_free(l->backing, mem, len, align, ra);
	emit(l, BEAMALLOC_LOG_FREE, mem, len, align, 0, NULL, ra);
}

const beamalloc_vtable ba_logging_vtable = {
	logging_alloc, logging_resize, logging_remap, logging_free
};

/* ------------------------------------------------------------------------
 * Public functions
 * ---------------------------------------------------------------------- */

void
beamalloc_log_print(void *user, const beamalloc_log_entry *e)
{
	FILE *f = user != NULL ? user : stderr;
	const char *kind = (unsigned)e->kind < sizeof(kind_names) /
	    sizeof(kind_names[0]) ? kind_names[e->kind] : "?";

	fprintf(f, "%s: %s", e->scope, kind);
	if (e->kind != BEAMALLOC_LOG_ALLOC)
		fprintf(f, " %p", e->mem);
	fprintf(f, " len %zu align %zu", e->len, e->align);
	if (e->kind == BEAMALLOC_LOG_RESIZE || e->kind == BEAMALLOC_LOG_REMAP)
		fprintf(f, " to %zu", e->new_len);
	if (e->kind == BEAMALLOC_LOG_FREE)
		fputc('\n', f);
	else if (e->result != NULL)
		fprintf(f, ": %p\n", e->result);
	else if (e->error != 0)
		fprintf(f, ": failed (%s)\n", strerror(e->error));
	else
		fputs(": failed\n", f);	/* not in place */
}

void
beamalloc_logging_init(beamalloc_logging *l, beamalloc_allocator backing,
    const char *scope, beamalloc_log_fn fn, void *user)
{
	l->backing = ba_set(backing);
	l->scope = scope != NULL ? scope : "beamalloc";
	l->fn = fn != NULL ? fn : beamalloc_log_print;
	l->user = user;
}

beamalloc_allocator
beamalloc_logging_allocator(beamalloc_logging *l)
{
	beamalloc_allocator a = { l, &ba_logging_vtable };

	return l != NULL ? a : ba_empty_allocator();
}
