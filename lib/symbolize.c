/*
 * symbolize.c - what a code address is: function, source file and line
 * from DWARF debug information through elfutils' libdw (when configure
 * found it), else the function and object dladdr() names.
 *
 * Only reports call this, never an allocation path.  One process-wide
 * Dwfl handle, made at the first lookup and kept (its modules cache the
 * debug information they have read), is guarded by a mutex and released
 * at exit (or when the library is unloaded).  libdw allocates with
 * malloc, never through an allocator of ours, so a report printed from
 * inside a GPA does not come back into it.  A lookup re-reads the
 * process's mappings only when objects were loaded or unloaded since
 * the last one (dl_iterate_phdr's counters), so a NIF loaded later is
 * found, and one unloaded is not named after the one in its place.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_DLADDR
#include <dlfcn.h>
#endif
#ifdef HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#endif

#include "internal.h"

static void
copy_str(char *dst, size_t n, const char *src)
{
	if (src != NULL)
		snprintf(dst, n, "%s", src);
}

#ifdef HAVE_LIBDW
/* ------------------------------------------------------------------------
 * libdw: the process's modules, read again when the set of objects changes
 * ---------------------------------------------------------------------- */

static pthread_mutex_t dw_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dw;
static unsigned long long dw_adds, dw_subs;	/* when dw was last read */
static char *dw_debuginfo_path;

/* fork(): a lookup under way in another thread left dw_lock held in the
 * child, whose first report waited for it forever (found by a review:
 * 36 children in 40 of a program with a thread symbolizing).  Taken
 * around a fork, after every GPA's locks (a report made under the
 * shared cache's lock symbolizes): its handler is registered before the
 * GPAs' (exit.c asks for it first), and prepare handlers run in the
 * reverse order. */
static void fork_lock(void) { pthread_mutex_lock(&dw_lock); }
static void fork_unlock(void) { pthread_mutex_unlock(&dw_lock); }

static void
fork_init(void)
{
	(void)pthread_atfork(fork_lock, fork_unlock, fork_unlock);
}

void
ba_symbols_fork_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fork_init);
}

/* A lookup reads files (open(2), read(2): cancellation points) under
 * dw_lock: a thread cancelled inside one left it held, and every later
 * report waited for it.  Cancellation is off while it is held. */
static void
dw_enter(int *cancel)
{
	ba_symbols_fork_init();
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, cancel);
	pthread_mutex_lock(&dw_lock);
}

static void
dw_leave(int cancel)
{
	pthread_mutex_unlock(&dw_lock);
	pthread_setcancelstate(cancel, NULL);
}

/* Separate debug files by build ID only (Debian's dbgsym packages): the
 * standard search would also ask a debuginfod server over the network
 * whenever DEBUGINFOD_URLS is set, in the middle of a report. */
static int
find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
    Dwarf_Addr base, const char *file_name, const char *debuglink_file,
    GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	return dwfl_build_id_find_debuginfo(mod, userdata, modname, base,
	    file_name, debuglink_file, debuglink_crc, debuginfo_file_name);
}

struct loaded {
	uintptr_t addr;			/* in: an address of the object */
	bool found;
	const void *id;			/* its build ID (NULL: none) */
	size_t len;
};

/* The build ID of the loaded object holding l->addr, from its notes in
 * memory. */
static int
loaded_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
	struct loaded *l = data;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum && !l->found; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		uintptr_t page = ph->p_align > 1 ? ph->p_align : 1;

		/* Its mapping starts at the segment's page. */
		l->found = ph->p_type == PT_LOAD &&
		    l->addr - (lo & ~(page - 1)) < lo + ph->p_memsz -
		    (lo & ~(page - 1));
	}
	if (!l->found)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		size_t al = ph->p_align == 8 ? 8 : 4, off = 0;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);

		if (ph->p_type != PT_NOTE)
			continue;
		while (off + sizeof(ElfW(Nhdr)) <= ph->p_filesz) {
			const ElfW(Nhdr) *n = (const void *)(p + off);
			size_t name = (n->n_namesz + al - 1) & ~(al - 1);
			size_t desc = (n->n_descsz + al - 1) & ~(al - 1);

			off += sizeof(*n);
			if (name > ph->p_filesz - off ||
			    desc > ph->p_filesz - off - name)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(p + off, "GNU", 4) == 0) {
				l->id = p + off + name;
				l->len = n->n_descsz;
				return 1;
			}
			off += name + desc;
		}
	}
	return 1;
}

/* The file a module was loaded from, as libdwfl finds it by name, but
 * only if it is still the one loaded: a NIF rebuilt while the VM has the
 * old one loaded is a new file at the same path (the linker unlinks and
 * creates it), and its DWARF would name the new build's lines for the
 * old code.  The build IDs, in memory and in the file, must agree.  The
 * file is read, not mapped as libdwfl would: a mapping of it just below
 * the object's own is, in /proc/self/maps, the object's start at the
 * next report (after any dlopen()), and every address of the module was
 * then out of its range: no line. */
static int
find_elf(Dwfl_Module *mod, void **userdata, const char *modname,
    Dwarf_Addr base, char **file_name, Elf **elfp)
{
	int fd = dwfl_linux_proc_find_elf(mod, userdata, modname, base,
	    file_name, elfp);
	struct loaded l = { .addr = (uintptr_t)base };
	const void *id = NULL;
	ssize_t n;

	if (fd >= 0 && *elfp == NULL)
		*elfp = elf_begin(fd, ELF_C_READ, NULL);
	if (*elfp == NULL)
		return fd;
	dl_iterate_phdr(loaded_build_id, &l);
	if (!l.found)			/* not loaded by the dynamic linker */
		return fd;
	n = dwelf_elf_gnu_build_id(*elfp, &id);
	if (l.id == NULL ? n <= 0 :
	    (n == (ssize_t)l.len && memcmp(id, l.id, l.len) == 0))
		return fd;
	elf_end(*elfp);
	*elfp = NULL;
	if (fd >= 0)
		close(fd);
	free(*file_name);		/* else libdwfl opens it again */
	*file_name = NULL;
	return -1;
}

static const Dwfl_Callbacks dw_callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = find_debuginfo,
	.debuginfo_path = &dw_debuginfo_path,
};

static int
count_objects(struct dl_phdr_info *info, size_t size, void *data)
{
	unsigned long long *c = data;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) +
	    sizeof(info->dlpi_subs)) {
		c[0] = info->dlpi_adds;
		c[1] = info->dlpi_subs;
	}
	return 1;			/* the counters are in every entry */
}

/* The handle, its modules current; NULL if libdw cannot read them.
 * Under dw_lock. */
static Dwfl *
dw_current(void)
{
	unsigned long long c[2] = { 0, 0 };

	dl_iterate_phdr(count_objects, c);
	if (dw != NULL && c[0] == dw_adds && c[1] == dw_subs)
		return dw;
	/* After an unload, a module reported again with the same name and
	 * addresses may be another build loaded in its place (a NIF
	 * reloaded after a rebuild): it would keep the DWARF of the one
	 * unloaded.  All is read again. */
	if (dw != NULL && c[1] != dw_subs) {
		dwfl_end(dw);
		dw = NULL;
	}
	if (dw == NULL && (dw = dwfl_begin(&dw_callbacks)) == NULL)
		return NULL;
	/* Modules reported again as they were keep what they have read. */
	dwfl_report_begin(dw);
	if (dwfl_linux_proc_report(dw, getpid()) != 0) {
		dwfl_report_end(dw, NULL, NULL);
		dwfl_end(dw);
		dw = NULL;
		return NULL;
	}
	dwfl_report_end(dw, NULL, NULL);
	dw_adds = c[0];
	dw_subs = c[1];
	return dw;
}

/* At exit or unloading (and in a child about to _exit()): what libdw
 * read goes.  Skipped while another thread is inside a lookup (or, in a
 * child, was at the fork): then it stays reachable, and is not ours to
 * wait for. */
__attribute__((destructor)) void
ba_symbols_release(void)
{
	if (pthread_mutex_trylock(&dw_lock) != 0)
		return;
	if (dw != NULL)
		dwfl_end(dw);
	dw = NULL;
	pthread_mutex_unlock(&dw_lock);
}

/* Whether file is one of the library's installed headers, whose static
 * inline helpers (the term decoders of <beamalloc/nif.h>, the operators
 * of <beamalloc/new.hpp>, the allocate members of <beamalloc.hpp>)
 * allocate on their caller's behalf: the caller's line is the one a
 * report must name. */
static bool
ours(const char *file)
{
	static const char *const tails[] = { "/beamalloc/nif.h",
	    "/beamalloc/new.hpp", "/beamalloc.hpp", "/beamalloc.h" };
	size_t n;

	if (file == NULL)
		return false;
	n = strlen(file);
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		size_t k = strlen(tails[i]);

		if (n >= k && strcmp(file + n - k, tails[i]) == 0)
			return true;
	}
	return false;
}

/* The source file of an inlined subroutine's call, from its CU's table. */
static const char *
call_file(Dwarf_Die *cu, Dwarf_Die *die)
{
	Dwarf_Attribute at;
	Dwarf_Files *files;
	Dwarf_Word idx;
	size_t nfiles;

	if (dwarf_attr(die, DW_AT_call_file, &at) == NULL ||
	    dwarf_formudata(&at, &idx) != 0 ||
	    dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

/* The file of a function's declaration, from its unit's table (that of
 * its abstract origin's unit, for an inlined instance): libdw 0.188's
 * dwarf_decl_file() fails an assertion, ending the process, in a unit of
 * a .dwo file (gcc -gsplit-dwarf). */
static const char *
decl_file(Dwarf_Die *die)
{
	Dwarf_Attribute at;
	Dwarf_Die cu;
	Dwarf_Files *files;
	Dwarf_Word idx;
	size_t nfiles;

	if (dwarf_attr_integrate(die, DW_AT_decl_file, &at) == NULL ||
	    dwarf_formudata(&at, &idx) != 0 ||
	    dwarf_cu_die(at.cu, &cu, NULL, NULL, NULL, NULL, NULL,
	    NULL) == NULL ||
	    dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

/* Whether die is a function whose code the linker discarded
 * (-Wl,--gc-sections): its addresses, and those of its lines, were
 * relocated to 0, where they overlap the code kept (any of its lines
 * could be taken for that code's). */
static bool
discarded(Dwarf_Die *die)
{
	Dwarf_Addr lo;

	return dwarf_entrypc(die, &lo) == 0 && lo == 0;
}

/* The compile unit holding pc (module address).  libdw (before 0.191)
 * finds it through .debug_aranges alone, which clang does not write
 * unless given -gdwarf-aranges: when that finds none, each unit's own
 * ranges are searched (a NIF built by clang had no line in reports).
 * Whether the module has aranges at all says nothing: a NIF built by
 * clang and linked with libbeamalloc.a built by gcc has them for the
 * library's units only, none for the NIF's own, and for a pc in the
 * NIF's code libdw 0.188 answers with one of the library's units
 * (lib/arena.c): the unit it gives is used only if it holds pc. */
static Dwarf_Die *
cu_at(Dwfl_Module *m, Dwarf_Addr pc, Dwarf_Addr *bias)
{
	Dwarf_Die *cu = dwfl_module_addrdie(m, pc, bias);

	if (cu != NULL && dwarf_haspc(cu, pc - *bias) > 0)
		return cu;
	cu = NULL;
	while ((cu = dwfl_module_nextcu(m, cu, bias)) != NULL)
		if (dwarf_haspc(cu, pc - *bias) > 0)
			return cu;
	return NULL;
}

/* The unit whose tree holds cu's functions: with -gsplit-dwarf the
 * object has only a skeleton (its line table), the rest is in the .dwo
 * file, if it is still there. */
static Dwarf_Die *
split_unit(Dwarf_Die *cu, Dwarf_Die *split)
{
	uint8_t type;

	if (dwarf_cu_info(cu->cu, NULL, &type, NULL, split, NULL, NULL,
	    NULL) == 0 && type == DW_UT_skeleton && split->addr != NULL)
		return split;
	return cu;
}

/* Whether a function of the unit whose code was discarded holds pc (unit
 * address): then the unit's line table may answer with one of its lines. */
static bool
overlaid(Dwarf_Die *cu, Dwarf_Addr pc)
{
	Dwarf_Die split, c;

	if (dwarf_child(split_unit(cu, &split), &c) != 0)
		return false;
	do
		if (dwarf_tag(&c) == DW_TAG_subprogram &&
		    dwarf_haspc(&c, pc) > 0 && discarded(&c))
			return true;
	while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

/* pc's source line from its unit's line table, into *file and *line;
 * none where discarded code's lines overlap it (a wrong line is worse
 * than none). */
static bool
line_at(Dwfl_Module *m, Dwarf_Addr pc, const char **file, int *line)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = cu_at(m, pc, &bias);
	Dwarf_Line *l;

	if (cu == NULL || overlaid(cu, pc - bias) ||
	    (l = dwarf_getsrc_die(cu, pc - bias)) == NULL ||
	    (*file = dwarf_linesrc(l, NULL, NULL)) == NULL ||
	    dwarf_lineno(l, line) != 0)
		return false;
	return *line > 0;
}

/* The innermost function (subprogram or inlined instance) at pc (unit
 * address) below die, into *fn; false when none below it holds pc.
 * dwarf_getscopes() would do, but libdw 0.188 finds nothing in clang's
 * units (found with a C++ NIF built by clang++). */
static bool
function_at(Dwarf_Die *die, Dwarf_Addr pc, Dwarf_Die *fn)
{
	Dwarf_Die c;

	if (dwarf_child(die, &c) != 0)
		return false;
	do {
		switch (dwarf_tag(&c)) {
		case DW_TAG_namespace:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
			if (function_at(&c, pc, fn))
				return true;
			break;
		case DW_TAG_lexical_block:
			if (dwarf_haspc(&c, pc) > 0)
				return function_at(&c, pc, fn);
			break;
		case DW_TAG_subprogram:
		case DW_TAG_inlined_subroutine:
			if (dwarf_haspc(&c, pc) <= 0 || discarded(&c))
				break;
			*fn = c;
			(void)function_at(&c, pc, fn);	/* one inlined in it */
			return true;
		default:
			break;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

/* The innermost function at pc (module address) when it was inlined
 * there, into *name: the symbol table names only the function it went
 * into, while the line is the inlined code's.  When that function is one
 * of the library's header helpers (inlined in turn, perhaps, into
 * another), the name is that of the function the outermost of them went
 * into, and *file and *line those of its call: the helper's own line,
 * in the library's header, would name no line of the caller's.  False
 * when pc is in no inlined code. */
static bool
inlined_at(Dwfl_Module *m, Dwarf_Addr pc, const char **name,
    const char **file, int *line)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = cu_at(m, pc, &bias), *scopes = NULL;
	Dwarf_Die inner, split;
	Dwarf_Line *l;
	const char *in;			/* the file of the code at pc, here */
	bool found = false, climbing = true;
	int n, i;

	*name = *file = NULL;
	*line = 0;
	if (cu == NULL)
		return false;
	l = dwarf_getsrc_die(cu, pc - bias);
	in = l != NULL ? dwarf_linesrc(l, NULL, NULL) : NULL;
	cu = split_unit(cu, &split);
	/* The functions it was inlined into are its parents in the tree. */
	if (!function_at(cu, pc - bias, &inner) ||
	    dwarf_tag(&inner) != DW_TAG_inlined_subroutine ||
	    (n = dwarf_getscopes_die(&inner, &scopes)) <= 0)
		return false;
	for (i = 0; i < n; i++) {
		int tag = dwarf_tag(&scopes[i]);
		const char *decl;
		Dwarf_Attribute at;
		Dwarf_Word w;

		if (tag != DW_TAG_inlined_subroutine &&
		    tag != DW_TAG_subprogram)
			continue;
		if (found && !climbing)
			break;
		if (tag == DW_TAG_subprogram) {
			/* The caller of a helper: name it, unless the
			 * symbol table names it (not inlined). */
			break;
		}
		*name = dwarf_diename(&scopes[i]);
		found = true;
		/* clang's -gline-tables-only gives no declaration's file:
		 * that of the function's code at pc then. */
		decl = decl_file(&scopes[i]);
		climbing = ours(decl != NULL ? decl : in);
		in = call_file(cu, &scopes[i]);
		if (climbing) {
			const char *f = in;

			if (f != NULL && dwarf_attr(&scopes[i], DW_AT_call_line,
			    &at) != NULL && dwarf_formudata(&at, &w) == 0 &&
			    w > 0) {
				*file = f;
				*line = (int)w;
				*name = NULL;	/* the next scope's */
			}
		}
	}
	free(scopes);
	return found;
}

/* Whether the function at pc (an address in the process) keeps its
 * caller's frame pointer chain: its CFA there is computed from the frame
 * pointer register (x86-64 rbp, AArch64 x29).  1 yes, 0 no, -1 unknown
 * (no module, no CFI for pc).  Under dw_lock. */
static int
keeps_frame_pointer(Dwfl *d, Dwarf_Addr pc)
{
#if defined(__x86_64__)
	const unsigned fpreg = 6;
#elif defined(__aarch64__)
	const unsigned fpreg = 29;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
	Dwfl_Module *m = dwfl_addrmodule(d, pc);
	Dwarf_CFI *cfi;
	Dwarf_Addr bias;
	Dwarf_Frame *fr;
	Dwarf_Op *ops;
	size_t nops;
	int r = -1;

	if (m == NULL)
		return -1;
	if ((cfi = dwfl_module_eh_cfi(m, &bias)) == NULL &&
	    (cfi = dwfl_module_dwarf_cfi(m, &bias)) == NULL)
		return -1;
	if (dwarf_cfi_addrframe(cfi, pc - bias, &fr) != 0)
		return -1;
	if (dwarf_frame_cfa(fr, &ops, &nops) == 0 && nops >= 1 && ops != NULL)
		r = ops[0].atom == DW_OP_breg0 + fpreg ||
		    (ops[0].atom == DW_OP_bregx && ops[0].number == fpreg);
	free(fr);
	return r;
#else
	(void)d, (void)pc;
	return -1;
#endif
}
#endif /* HAVE_LIBDW */

/* How many of a frame-pointer trace's n frames to show: a frame past one
 * whose function does not keep frame pointers (its CFA is not computed
 * from the frame pointer, per its CFI) came from a frame pointer it left
 * to an outer function, and would name a caller further out as its own
 * (a NIF built without -fno-omit-frame-pointer showed the scheduler's
 * frame as its function's caller): the trace ends there.  Without libdw,
 * or without CFI for a frame, all are kept.  For reports only. */
size_t
ba_trace_walkable(const uintptr_t *t, size_t n)
{
#ifdef HAVE_LIBDW
	Dwfl *d;
	int cancel;

	if (n <= 1)
		return n;
	dw_enter(&cancel);
	if ((d = dw_current()) != NULL)
		for (size_t i = 0; i + 1 < n; i++)
			if (t[i] == 0 || keeps_frame_pointer(d, t[i] - 1) == 0) {
				n = i + 1;
				break;
			}
	dw_leave(cancel);
#else
	(void)t;
#endif
	return n;
}

#ifdef HAVE_LIBDW
static void
dw_lookup(uintptr_t pc, beamalloc_symbol *s)
{
	Dwfl *d;
	Dwfl_Module *m;
	const char *name = NULL, *file = NULL;
	GElf_Off off;
	GElf_Sym sym;
	int lineno = 0;
	bool inlined;
	int cancel;

	dw_enter(&cancel);
	if ((d = dw_current()) == NULL ||
	    (m = dwfl_addrmodule(d, pc)) == NULL)
		goto out;
	inlined = inlined_at(m, pc, &name, &file, &lineno);
	if (inlined && name != NULL)
		copy_str(s->function, sizeof(s->function), name);
	else if ((name = dwfl_module_addrinfo(m, pc, &off, &sym, NULL, NULL,
	    NULL)) != NULL) {
		copy_str(s->function, sizeof(s->function), name);
		s->offset = (uintptr_t)off + 1;	/* of the return address */
	}
	if ((file != NULL && lineno > 0) ||	/* a helper's call */
	    line_at(m, pc, &file, &lineno)) {
		copy_str(s->file, sizeof(s->file), file);
		s->line = (unsigned)lineno;
	}
out:
	dw_leave(cancel);
}
#else
void
ba_symbols_release(void)
{
}

void
ba_symbols_fork_init(void)
{
}
#endif /* HAVE_LIBDW */

/* ------------------------------------------------------------------------
 * Public function and the printer of reports
 * ---------------------------------------------------------------------- */

bool
beamalloc_symbolize(uintptr_t addr, beamalloc_symbol *s)
{
	/* A return address can be one past its function's end (a call to
	 * a noreturn function): look up the call itself. */
	uintptr_t pc = addr - 1;

	if (s == NULL)
		return false;
	memset(s, 0, sizeof(*s));
	if (addr == 0)
		return false;
#ifdef HAVE_DLADDR
	{
		Dl_info di;

		if (dladdr((void *)pc, &di) != 0) {
			copy_str(s->object, sizeof(s->object), di.dli_fname);
			s->offset = addr - (uintptr_t)di.dli_fbase;
			if (di.dli_sname != NULL && di.dli_saddr != NULL) {
				copy_str(s->function, sizeof(s->function),
				    di.dli_sname);
				s->offset = addr - (uintptr_t)di.dli_saddr;
			}
		}
	}
#endif
#ifdef HAVE_LIBDW
	dw_lookup(pc, s);
#endif
	return s->object[0] != '\0' || s->function[0] != '\0' ||
	    s->line != 0;
}

/* "0x... f (file.c:12)" with a line, "0x... f+0x12 (obj)" without one,
 * "0x... (obj+0x1234)" for an address in no known function (addr2line
 * resolves it less 1: the offset is the return address's). */
void
ba_print_pc(FILE *f, uintptr_t a)
{
	beamalloc_symbol s;

	fprintf(f, "%#" PRIxPTR, a);
	if (!beamalloc_symbolize(a, &s))
		return;
	if (s.line != 0)
		fprintf(f, " %s (%s:%u)", s.function[0] != '\0' ? s.function :
		    "??", s.file, s.line);
	else if (s.function[0] != '\0')
		fprintf(f, " %s+%#" PRIxPTR " (%s)", s.function, s.offset,
		    s.object[0] != '\0' ? s.object : "?");
	else
		fprintf(f, " (%s+%#" PRIxPTR ")", s.object, s.offset);
}
