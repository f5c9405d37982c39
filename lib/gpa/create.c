/*
 * create.c - a GPA's construction, statistics and destruction.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gpa.h"
#include "tools.h"

/* Memcheck or AddressSanitizer watching: every slot handed out or back
 * is announced (the general paths), so they see slab blocks as malloc
 * blocks.  Otherwise the fast paths skip the announcements. */
static bool
tools_active(void)
{
#if defined(BA_ASAN)
	return true;
#else
	return ba_memcheck_running();
#endif
}

/* ------------------------------------------------------------------------
 * Construction, stats, destruction
 * ---------------------------------------------------------------------- */

/* Fields an older caller's smaller struct does not have keep defaults. */
#define CFG_HAS(cfg, f) ((cfg)->struct_size >= \
	offsetof(beamalloc_gpa_config, f) + sizeof((cfg)->f))

void
beamalloc_gpa_config_init(beamalloc_gpa_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->struct_size = sizeof(*cfg);
	cfg->stack_trace_depth = 0;
	cfg->safety = true;
	cfg->thread_safe = true;
	cfg->abort_on_error = false;
	cfg->memory_limit = 0;
	cfg->report = NULL;
	cfg->report_user = NULL;
	/* A node runs for months and counts what NIFs hold; outside the VM
	 * a program trims when it chooses, and no thread is started. */
	cfg->decay_ms = beamalloc_in_vm() ? DECAY_MS_VM : 0;
	ba_options_apply(cfg);
}

#ifdef BA_ABI01
/* 0.1's ABI (internal.h): 0.1's fields only, their defaults and
 * BEAMALLOC_GPA_OPTIONS' as now; a GPA made with it takes the later
 * fields from the defaults and the options (ba_gpa_config_read()). */
BA_ABI01_ENTRY(ba_abi01_gpa_config_init, beamalloc_gpa_config_init);
void
ba_abi01_gpa_config_init(beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config full;

	beamalloc_gpa_config_init(&full);
	full.struct_size = BA_ABI01_CONFIG_SIZE;
	memcpy(cfg, &full, BA_ABI01_CONFIG_SIZE);
}
#endif

/* A config no version's beamalloc_gpa_config_init() filled: struct_size
 * 0 (a zeroed struct, "= { .memory_limit = N }") would have every field
 * ignored, silently, the report callback too (found by a review: a
 * leak-checked NIF's collector then never saw its leaks, which were
 * not raised).  Refused instead. */
bool
ba_gpa_config_ok(const beamalloc_gpa_config *cfg)
{
	return cfg == NULL || cfg->struct_size != 0;
}

/* cfg (NULL: the defaults) as this version's struct, its padding zero. */
void
ba_gpa_config_read(beamalloc_gpa_config *out, const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config_init(out);
	if (cfg == NULL)
		return;
#define TAKE(f) do { if (CFG_HAS(cfg, f)) out->f = cfg->f; } while (0)
	TAKE(stack_trace_depth);
	TAKE(safety);
	TAKE(thread_safe);
	TAKE(abort_on_error);
	TAKE(memory_limit);
	TAKE(report);
	TAKE(report_user);
	TAKE(trace_sample);
	TAKE(canary);
	TAKE(junk);
	TAKE(quarantine);
	TAKE(guard_sample);
	TAKE(decay_ms);
#undef TAKE
	if (out->stack_trace_depth > BEAMALLOC_GPA_MAX_TRACE)
		out->stack_trace_depth = BEAMALLOC_GPA_MAX_TRACE;
	/* The countdowns are ints: 1 in N past INT_MAX turned negative and
	 * sampled every allocation (found by a review: guard_sample =
	 * UINT_MAX, meant as "hardly ever", guarded all of them). */
	if (out->trace_sample > INT_MAX)
		out->trace_sample = INT_MAX;
	if (out->guard_sample > INT_MAX)
		out->guard_sample = INT_MAX;
}

static void
mutex_init(pthread_mutex_t *m)
{
	pthread_mutex_init(m, NULL);
}

/* The shared cache's lock is held across its general paths, which may
 * report (a write after free found as a slot is handed out, or as a
 * block leaves the quarantine), and the report callback may allocate
 * from this GPA: on the same thread, with no cache of its own, that
 * takes the lock again.  The paths leave the magazines before they
 * report, as every cache's do, so the nested call finds them whole. */
static void
mutex_init_recursive(pthread_mutex_t *m)
{
	pthread_mutexattr_t at;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(m, &at);
	pthread_mutexattr_destroy(&at);
}

beamalloc_gpa *
beamalloc_gpa_create(beamalloc_allocator backing,
    const beamalloc_gpa_config *cfg)
{
	beamalloc_gpa_config c;
	struct beamalloc_gpa *g;
	struct stab *t;

	if (backing.vtable == NULL || !ba_gpa_config_ok(cfg))
		return ba_fail(EINVAL);
	ba_gpa_config_read(&c, cfg);
	g = ba_raw_alloc(backing, sizeof(*g), BEAMALLOC_MIN_ALIGN,
	    BA_RET_ADDR());
	if (g == NULL)
		return ba_fail(ENOMEM);
	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < NTHREADS; i++)
		atomic_init(&g->tcs[i], &ba_gpa_no_tc);
	g->backing = backing;
	g->thread_safe = c.thread_safe;
	/* A canary needs the requested length, which safety records. */
	g->safety = c.safety || c.canary;
	g->st_check = g->safety && !c.thread_safe;
	g->abort_on_error = c.abort_on_error;
	g->depth = c.stack_trace_depth;
	g->sample = g->depth != 0 && c.trace_sample > 1 ? c.trace_sample : 0;
	g->limit = c.memory_limit;
	g->batched = c.memory_limit == 0;
	g->tools = tools_active();
	g->canary = c.canary;
	/* Quarantine checks its blocks' junk as they leave. */
	g->junk = c.junk || c.quarantine != 0;
	g->guard_sample = c.guard_sample;
	g->vtable = &ba_gpa_vtables[GPA_VT_GENERAL];
	/* The fast paths unless a check needs the general one: traces of
	 * every block do, sampled ones only once in N; guarded sampling
	 * keeps them (every fast path counts down for it), but beside
	 * sampled traces, whose countdown it is. */
	if (g->batched && !g->tools && !g->canary && !g->junk &&
	    (g->depth == 0 || g->sample != 0)) {
		if (g->depth != 0) {
			if (g->guard_sample == 0)
				g->vtable = &ba_gpa_vtables[GPA_VT_SAMPLED +
				    2 * g->thread_safe + g->safety];
		} else
			g->vtable = &ba_gpa_vtables[GPA_VT_ST +
			    2 * g->thread_safe + g->safety];
	} else if (g->batched && !g->tools && c.quarantine == 0 &&
	    g->depth == 0)
		/* Canary or junk: the fast paths with their checks. */
		g->vtable = &ba_gpa_vtables[GPA_VT_CHK(
		    (g->canary ? BA_CHK_CANARY : 0) |
		    (g->junk ? BA_CHK_JUNK : 0), g->thread_safe, g->safety)];
	/* Fast paths but the sampled ones (never with guard pages) count
	 * down for the guarded blocks. */
	g->guard_fast = g->guard_sample != 0 &&
	    g->vtable != &ba_gpa_vtables[GPA_VT_GENERAL];
	g->report = c.report;
	g->report_user = c.report_user;
	g->rec_shift = g->safety || g->depth != 0 ?
	    log2_of(sizeof(struct rec)) : 0;
	g->lstride = sizeof(struct large);
	atomic_store(&g->backing_bytes, sizeof(*g));
	mutex_init(&g->lock);
	mutex_init_recursive(&g->shared_lock);
	mutex_init(&g->steal_lock);
	mutex_init(&g->large_lock);
	mutex_init(&g->mspare_lock);
	if (g->thread_safe)
		g->mb_cmd = ba_gpa_membarrier_cmd();
	/* Nothing to make other threads' fast frees wait with. */
	if (g->thread_safe && g->mb_cmd == 0)
		atomic_store(&g->shared, SHARED_YES);
	t = ba_gpa_stab_new(g, 64);
	if (t == NULL || (c.quarantine != 0 && (g->quar =
	    ba_quar_new(backing, c.quarantine, &g->backing_bytes)) == NULL) ||
	    (!g->thread_safe && ba_gpa_tcache_new(g, true) == NULL) ||
	    (g->depth != 0 && (g->traces = ba_depot_new(backing,
	    &g->backing_bytes)) == NULL)) {
		beamalloc_gpa_destroy(g);
		return ba_fail(ENOMEM);
	}
	atomic_store(&g->stab, t);
	if (g->thread_safe)
		ba_gpa_reg_add(g);
	/* Last: the decay thread may trim g from now on. */
	if (g->thread_safe && c.decay_ms != 0)
		(void)ba_gpa_decay_register(g, c.decay_ms);
	return g;
}

beamalloc_allocator
beamalloc_gpa_allocator(beamalloc_gpa *gpa)
{
	beamalloc_allocator a;

	if (gpa == NULL)
		return ba_empty_allocator();
	a.ctx = gpa;
	a.vtable = gpa->vtable;
	return a;
}

void
beamalloc_gpa_get_stats(beamalloc_gpa *g, beamalloc_gpa_stats *st)
{
	ptrdiff_t live, blocks, hi = 0;

	if (g == NULL) {
		memset(st, 0, sizeof(*st));
		return;
	}
	lock(g, &g->lock);
	live = atomic_load_explicit(&g->live, memory_order_relaxed);
	blocks = atomic_load_explicit(&g->blocks, memory_order_relaxed);
	for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
		blocks += ba_gpa_tc_blocks(tc);
	if (g->batched) {
		ptrdiff_t credit = 0;

		for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next) {
			ptrdiff_t h = __atomic_load_n(&tc->hi,
			    __ATOMIC_RELAXED);

			credit += h - __atomic_load_n(&tc->room,
			    __ATOMIC_RELAXED);
			hi += h;
		}
		hi += live;
		live += credit;
	}
	st->live_bytes = live > 0 ? (size_t)live : 0;
	st->live_blocks = blocks > 0 ? (size_t)blocks : 0;
	st->peak_bytes = atomic_load_explicit(&g->peak, memory_order_relaxed);
	if (hi > 0 && (size_t)hi > st->peak_bytes)
		st->peak_bytes = (size_t)hi;
	if (st->live_bytes > st->peak_bytes)
		st->peak_bytes = st->live_bytes;
	st->backing_bytes = atomic_load_explicit(&g->backing_bytes,
	    memory_order_relaxed);
	unlock(g, &g->lock);
}

_Static_assert(NCLASS == BEAMALLOC_GPA_NCLASS,
    "BEAMALLOC_GPA_NCLASS is the number of small classes");

/* Slab s's live slots and (safety on) their requested bytes, from its
 * records; with safety off a slot counts whole. */
static void
class_count(const struct beamalloc_gpa *g, const struct slab *s,
    beamalloc_gpa_class_stats *k)
{
	size_t blocks = 0, bytes = 0;

	if (g->safety) {
		for (uint32_t i = s->first; i < s->first + s->nslots; i++) {
			const struct rec *sr = (const void *)(s->recs +
			    ((size_t)i << g->rec_shift));

			if (state_get(&sr->state) == REC_USED) {
				blocks++;
				bytes += __atomic_load_n(&sr->len,
				    __ATOMIC_RELAXED);
			}
		}
	} else {
		for (uint32_t i = s->first; i < s->first + s->nslots; i++)
			blocks += state_get(s->recs + ((size_t)i <<
			    g->rec_shift)) == REC_USED;
		bytes = blocks * s->size;
	}
	k->live_blocks += blocks;
	k->live_bytes += bytes;
	k->slabs++;
}

/* Per class from the slabs' records, as a leak check sees them (the
 * slab list is walked the same way, g->scanning up so that no trim
 * releases a slab meanwhile); large blocks from their table. */
size_t
beamalloc_gpa_get_class_stats(beamalloc_gpa *g, beamalloc_gpa_class_stats *cls,
    size_t n, beamalloc_gpa_class_stats *large)
{
	beamalloc_gpa_class_stats k[NCLASS], lg = { 0 };
	struct scan_frame f;

	memset(k, 0, sizeof(k));
	for (size_t c = 0; c < NCLASS; c++)
		k[c].size = class_size(c);
	if (g != NULL) {
		scan_begin(g, &f);
		for (struct slab *s = atomic_load_explicit(&g->slabs,
		    memory_order_acquire); s != NULL; s = s->next)
			class_count(g, s, &k[s->cls]);
		scan_end(g, &f);
		lock(g, &g->large_lock);
		for (size_t i = 0; i < g->lcap && lg.live_blocks < g->llive;
		    i++) {
			const struct large *l = lg_at(g, g->ltab, i);

			if (l->state == LG_LIVE) {
				lg.live_blocks++;
				lg.live_bytes += l->len;
			}
		}
		unlock(g, &g->large_lock);
	}
	memcpy(cls, k, (n < NCLASS ? n : NCLASS) * sizeof(k[0]));
	if (large != NULL)
		*large = lg;
	return NCLASS;
}

/* The peak restarts from what is live.  The high-water marks that the
 * thread caches keep between settlements go too: the caller's own, or
 * with thread safety off the one cache's (its one user is calling). */
size_t
beamalloc_gpa_reset_peak(beamalloc_gpa *g)
{
	beamalloc_gpa_stats before, now;

	if (g == NULL)
		return 0;
	beamalloc_gpa_get_stats(g, &before);
	ba_gpa_settle_mine(g);
	beamalloc_gpa_get_stats(g, &now);
	atomic_store_explicit(&g->peak, now.live_bytes, memory_order_relaxed);
	return before.peak_bytes;
}

size_t
beamalloc_gpa_destroy(beamalloc_gpa *g)
{
	size_t n;

	if (g == NULL)
		return 0;
	if (g->decay_ms != 0 && !g->global)
		ba_gpa_decay_unregister(g);
	n = beamalloc_gpa_detect_leaks(g);
	if (g->global)
		return n;		/* the global instance lives on */
	/* Blocks the report callback freed wait in quarantine again: let
	 * them out (checked), or a large one would stay the backing's. */
	if (g->quar != NULL)
		ba_gpa_quar_drain(g);
	if (g->thread_safe)
		ba_gpa_reg_remove(g);
	ba_gpa_leaks_small(g, NULL);
	for (struct slab *s = atomic_load(&g->slabs), *next; s != NULL;
	    s = next) {
		next = s->next;
		ba_gpa_backing_put(g, s->meta, s->meta_len);
	}
	while (g->regions != NULL)
		ba_gpa_region_free(g, g->regions);
	(void)ba_gpa_mspare_free(g);
	for (struct tcache *tc = g->tcaches; tc != NULL; tc = tc->next)
		for (size_t c = 0; c < NCLASS; c++) {
			struct mag *lists[2] = { tc->dep[c].full,
			    tc->dep[c].empty };

			for (struct mag **m = (struct mag *[]){ tc->loaded[c],
			    tc->prev[c], tc->out[c] }, **e = m + 3; m < e; m++)
				if (*m != &ba_gpa_no_mag)
					ba_gpa_backing_put(g, *m,
					    mag_len((*m)->cap));
			for (size_t i = 0; i < 2; i++)
				(void)ba_gpa_mags_free(g, lists[i]);
			pthread_mutex_destroy(&tc->dep[c].lock);
		}
	for (size_t i = 0; i < g->lcap; i++) {
		struct large *l = lg_at(g, g->ltab, i);

		if (l->state == LG_LIVE && !l->guard)
			ba_raw_free(g->backing, (void *)l->addr, l->held,
			    (size_t)1 << l->lalign, 0);
	}
	ba_gpa_large_trim(g);
	if (g->guard_sample != 0)
		ba_guard_release(g);
	ba_quar_delete(g->quar);
	if (g->ltab != NULL)
		ba_raw_free(g->backing, g->ltab, g->lcap * g->lstride,
		    BEAMALLOC_MIN_ALIGN, 0);
	for (size_t i = 0; i < g->nbb; i++) {
		BA_ASAN_UNPOISON(g->bb[i].ptr, g->bb[i].len);
		ba_raw_free(g->backing, g->bb[i].ptr, g->bb[i].len,
		    BEAMALLOC_MIN_ALIGN, 0);
	}
	if (g->bb != NULL)
		ba_raw_free(g->backing, g->bb, g->bbcap * sizeof(g->bb[0]),
		    BEAMALLOC_MIN_ALIGN, 0);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->shared_lock);
	pthread_mutex_destroy(&g->steal_lock);
	pthread_mutex_destroy(&g->large_lock);
	pthread_mutex_destroy(&g->mspare_lock);
	ba_depot_destroy(g->traces);
	ba_raw_free(g->backing, g, sizeof(*g), BEAMALLOC_MIN_ALIGN, 0);
	return n;
}
