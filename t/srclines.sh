#!/bin/sh
# srclines.sh - reports name the source line: a shared object built with
# -g (t/diag/leakmod.c) allocates from a static function; the GPA's leak
# and double free reports, and the failure checker's finding with the
# stack of its failed allocation, name each frame as `function
# (leakmod.c:N)`, N the line grep finds here.  Built without libdw, the
# frames keep the dladdr form (libleakmod.so+0x...), which is checked
# instead.  Then programs built here: by clang, without frame pointers,
# with -gsplit-dwarf, and loading a shared object that is rebuilt,
# reloaded, or followed by another, or whose unused code the linker
# discarded.
prog="$top_builddir/t/srclines"
src="$top_srcdir/t/diag/leakmod.c"
line() { grep -n "$1" "$src" | head -1 | cut -d: -f1; }
leak=$(line 'LEAK SITE')
run=$(line 'make_record(a, 1)')
first=$(line 'FIRST FREE SITE')
dfree=$(line 'DOUBLE FREE SITE')
fail=$(line 'FAILING SITE')
oom=$(line 'second_block(a)) == NULL')
n=0
check() {	# check DESCRIPTION TEXT ERE
	n=$((n + 1))
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then echo "ok $n - $1"
	else echo "not ok $n - $1"; echo "# no line matches: $3"
		printf '%s\n' "$2" | sed 's/^/#   /'; fi
}
hex='0x[0-9a-f]+'
leak_out=$("$prog" leak)
site_out=$("$prog" site)
double_out=$("$prog" double)
check_out=$("$prog" check)
sym_out=$("$prog" symbolize)
echo 1..18
if grep -q '^#define HAVE_LIBDW 1' "$top_builddir/config.h"; then
	echo "# with libdw: leakmod.c lines $leak (alloc), $run, $first, $dfree, $fail, $oom"
	check "leak: #0 is the static make_record at leakmod.c:$leak" "$leak_out" \
	    "^    #0 $hex make_record \(.*leakmod\.c:$leak\)$"
	check "leak: #1 is leakmod_run at leakmod.c:$run" "$leak_out" \
	    "^    #1 $hex leakmod_run \(.*leakmod\.c:$run\)$"
	check "leak: a later frame is main in srclines.c" "$leak_out" \
	    "^    #[2-7] $hex main \(.*srclines\.c:[0-9]+\)$"
	check "no traces: the call site alone names make_record at leakmod.c:$leak" \
	    "$site_out" "^    #0 $hex make_record \(.*leakmod\.c:$leak\)$"
	check "double free: freed again from leakmod.c:$dfree" "$double_out" \
	    "^  freed again from: $hex leakmod_double_free \(.*leakmod\.c:$dfree\)$"
	check "double free: first freed at leakmod.c:$first" "$double_out" \
	    "^    #0 $hex leakmod_double_free \(.*leakmod\.c:$first\)$"
	check "checker: the failing call site is second_block at leakmod.c:$fail" \
	    "$check_out" "allocation #1 of 2 failed \(called from $hex second_block \(.*leakmod\.c:$fail\)\): returned an error but leaked 40 bytes in 1 block"
	check "checker: the failed allocation's stack, #1 leakmod_oom_leak at leakmod.c:$oom" \
	    "$check_out" "^    #1 $hex leakmod_oom_leak \(.*leakmod\.c:$oom\)$"
	check "beamalloc_symbolize: make_record, leakmod.c:$leak, libleakmod.so; 0 is unknown" \
	    "$sym_out" "^function=make_record file=.*leakmod\.c line=$leak object=.*libleakmod\.so"
	# Code built by clang: no .debug_aranges unless asked, so libdw
	# before 0.189 finds its compile unit only by looking at each.
	n=$((n + 1))
	if ! command -v clang >/dev/null 2>&1; then
		echo "ok $n # SKIP no clang"
		n=$((n + 1)); echo "ok $n # SKIP no clang"
		n=$((n + 1)); echo "ok $n # SKIP no clang"
	elif [ -n "${SANITIZER_CFLAGS:-}" ]; then
		echo "ok $n # SKIP a sanitizer build: clang's runtime is not the library's"
		n=$((n + 1)); echo "ok $n # SKIP a sanitizer build"
		n=$((n + 1)); echo "ok $n # SKIP a sanitizer build"
	else
		scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-srclines.XXXXXX") || exit 1
		cat >"$scratch/clangleak.c" <<'EOT'
#include <beamalloc.h>
int main(void)
{
	beamalloc_gpa_config c;
	beamalloc_gpa *g;

	beamalloc_gpa_config_init(&c);
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &c)) == NULL)
		return 1;
	(void)beamalloc_alloc(beamalloc_gpa_allocator(g), 10); /* LEAK */
	return beamalloc_gpa_destroy(g) == 1 ? 0 : 1;
}
EOT
		cl=$(grep -n 'LEAK' "$scratch/clangleak.c" | cut -d: -f1)
		if clang -O2 -g -I"$top_srcdir/include" -o "$scratch/clangleak" \
		    "$scratch/clangleak.c" -L"$top_builddir/lib/.libs" -lbeamalloc \
		    2>"$scratch/err"; then
			clang_out=$(LD_LIBRARY_PATH="$top_builddir/lib/.libs" \
			    "$scratch/clangleak" 2>&1)
		else
			clang_out=$(cat "$scratch/err")
		fi
		n=$((n - 1))
		check "built by clang -g (no .debug_aranges): main at clangleak.c:$cl" \
		    "$clang_out" "^    #0 $hex main \(.*clangleak\.c:$cl\)$"
		# The same linked with libbeamalloc.a, as beamalloc-nif.pc
		# links a NIF: the library's units (built by this compiler,
		# gcc's with .debug_aranges) are in the same module, and
		# libdw 0.188 gave one of them for main's address.
		if [ ! -f "$top_builddir/lib/.libs/libbeamalloc.a" ]; then
			n=$((n + 1))
			echo "ok $n # SKIP no libbeamalloc.a (--disable-static)"
		else
			if clang -O2 -g -I"$top_srcdir/include" -o "$scratch/clangleak-a" \
			    "$scratch/clangleak.c" -L"$top_builddir/lib/.libs" \
			    -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic \
			    $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc") \
			    -lpthread 2>"$scratch/err"; then
				clang_out=$("$scratch/clangleak-a" 2>&1)
			else
				clang_out=$(cat "$scratch/err")
			fi
			check "built by clang -g, libbeamalloc.a linked in: main at clangleak.c:$cl" \
			    "$clang_out" "^    #0 $hex main \(.*clangleak\.c:$cl\)$"
		fi
		# Built without frame pointers (clang and gcc -O2 on x86-64):
		# level1 and level2 leave rbp to main, which keeps one (its
		# VLA), and the walk read main's frame as level2's caller's:
		# #1 was __libc_start_call_main.  A frame past one without a
		# frame pointer is dropped; #1, if any, must be level1.
		cat >"$scratch/nofp.c" <<'EOT'
#include <beamalloc.h>
static beamalloc_allocator A;
volatile size_t sink;
__attribute__((noinline)) void *level2(size_t n)
{
	void *p = beamalloc_alloc(A, n);
	sink += n;
	return p;
}
__attribute__((noinline)) void *level1(size_t n)
{
	void *p = level2(n + 1);
	sink += n;
	return p;
}
int main(int argc, char **argv)
{
	volatile char vla[argc + 15];	/* main keeps a frame pointer */
	beamalloc_gpa_config c;
	beamalloc_gpa *g;

	vla[0] = 0;
	beamalloc_gpa_config_init(&c);
	c.stack_trace_depth = 8;
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &c)) == NULL)
		return 1;
	A = beamalloc_gpa_allocator(g);
	(void)level1(10);
	sink += 1 + (size_t)vla[0] + (argv != NULL);
	return beamalloc_gpa_destroy(g) == 1 ? 0 : 1;
}
EOT
		if clang -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls \
		    -I"$top_srcdir/include" -o "$scratch/nofp" "$scratch/nofp.c" \
		    -L"$top_builddir/lib/.libs" -lbeamalloc 2>"$scratch/err"; then
			nofp_out=$(LD_LIBRARY_PATH="$top_builddir/lib/.libs" \
			    "$scratch/nofp" 2>&1)
		else
			nofp_out="build failed: $(cat "$scratch/err")"
		fi
		n=$((n + 1))
		if printf '%s\n' "$nofp_out" | grep -Eq "^    #0 $hex level2 " &&
		    ! printf '%s\n' "$nofp_out" | grep -E "^    #1 " | grep -vq " level1 "; then
			echo "ok $n - built without frame pointers: #0 level2, #1 (if shown) level1"
		else
			echo "not ok $n - built without frame pointers: #0 level2, #1 (if shown) level1"
			printf '%s\n' "$nofp_out" | sed 's/^/#   /'
		fi
		rm -rf "$scratch"
	fi
	# Debug information in other places, and objects loaded, unloaded
	# and rebuilt while the process runs (a NIF in a VM under
	# development): built by $CC as the library was.
	if [ -n "${SANITIZER_CFLAGS:-}" ]; then
		for i in 1 2 3 4 5; do
			n=$((n + 1)); echo "ok $n # SKIP a sanitizer build: the programs are built without its runtime"
		done
	else
		scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-srclines.XXXXXX") || exit 1
		cc_lib() {	# cc_lib OUT SRC...: build against the library
			${CC:-cc} -O2 -g -fno-omit-frame-pointer -I"$top_srcdir/include" \
			    "$@" -L"$top_builddir/lib/.libs" -lbeamalloc -ldl \
			    -Wl,-rpath,"$top_builddir/lib/.libs" 2>>"$scratch/err"
		}
		# gcc -gsplit-dwarf: the functions, inlined ones among them,
		# are in the .dwo file; the object has their lines only.  The
		# line of an inlined function was named after the one it was
		# inlined into (and libdw's dwarf_decl_file() aborts there).
		cat >"$scratch/split.c" <<'EOT'
#include <beamalloc.h>
volatile int sink;
static inline __attribute__((always_inline)) void *
inner(beamalloc_allocator a, size_t n)
{
	sink++;
	return beamalloc_alloc(a, n); /* INNER */
}
static __attribute__((noinline)) void *
outer(beamalloc_allocator a, size_t n)
{
	void *p = inner(a, n + 1);
	sink++;
	return p;
}
int main(void)
{
	beamalloc_gpa_config c;
	beamalloc_gpa *g;

	beamalloc_gpa_config_init(&c);
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &c)) == NULL)
		return 1;
	(void)outer(beamalloc_gpa_allocator(g), 10);
	return beamalloc_gpa_destroy(g) == 1 ? 0 : 1;
}
EOT
		il=$(grep -n 'INNER' "$scratch/split.c" | cut -d: -f1)
		if (cd "$scratch" && cc_lib -gsplit-dwarf -o split split.c); then
			split_out=$("$scratch/split" 2>&1)
		else
			split_out="build failed: $(cat "$scratch/err")"
		fi
		check "-gsplit-dwarf: the inlined function, from the .dwo file: inner at split.c:$il" \
		    "$split_out" "^    #0 $hex inner \(.*split\.c:$il\)$"
		# A shared object's run() leaks; reload.c loads it, and
		# another object or a rebuild of it, in three orders.
		cat >"$scratch/mod.c" <<'EOT'
#include <beamalloc.h>
volatile int sink;
__attribute__((visibility("default"))) int
run(beamalloc_allocator a)
{
	void *p = beamalloc_alloc(a, 10); /* LEAK */
	sink++;
	return p != NULL;
}
EOT
		cat >"$scratch/reload.c" <<'EOT'
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <beamalloc.h>
/* reload HOW SO ARG: "rebuilt": a lookup (not in SO), system(ARG)
 * rebuilds SO, SO leaks; "reloaded": a lookup in SO, SO unloaded,
 * system(ARG), SO loaded again, leaks; "later": a lookup in SO, the
 * object ARG loaded, SO leaks. */
int main(int argc, char **argv)
{
	beamalloc_gpa_config c;
	beamalloc_gpa *g;
	beamalloc_symbol s;
	void *h;
	int (*run)(beamalloc_allocator);

	if (argc != 4 || (h = dlopen(argv[2], RTLD_NOW)) == NULL)
		return 2;
	run = (int (*)(beamalloc_allocator))dlsym(h, "run");
	if (strcmp(argv[1], "rebuilt") == 0) {
		(void)beamalloc_symbolize((uintptr_t)main + 1, &s);
		if (system(argv[3]) != 0)
			return 2;
	} else {
		(void)beamalloc_symbolize((uintptr_t)run + 1, &s);
		if (strcmp(argv[1], "later") == 0) {
			if (dlopen(argv[3], RTLD_NOW) == NULL)
				return 2;
		} else {
			dlclose(h);
			if (system(argv[3]) != 0 ||
			    (h = dlopen(argv[2], RTLD_NOW)) == NULL)
				return 2;
			run = (int (*)(beamalloc_allocator))dlsym(h, "run");
		}
	}
	beamalloc_gpa_config_init(&c);
	if ((g = beamalloc_gpa_create(beamalloc_libc(), &c)) == NULL)
		return 1;
	(void)run(beamalloc_gpa_allocator(g));
	return beamalloc_gpa_destroy(g) == 1 ? 0 : 1;
}
EOT
		ml=$(grep -n 'LEAK' "$scratch/mod.c" | cut -d: -f1)
		nl=$((ml + 3))
		# The rebuild: three lines more above run(), so the new
		# build's line of the leak is $nl; the linker makes a new file.
		cat >"$scratch/rebuild.sh" <<EOT
cd "$scratch" && mv mod.c old.c && { printf '/*\n *\n */\n'; cat old.c; } >mod.c &&
    rm -f libmod.so && ${CC:-cc} -O2 -g -fno-omit-frame-pointer -fPIC -shared \
    -I"$top_srcdir/include" -o libmod.so mod.c 2>>"$scratch/err"
EOT
		mod() {		# mod: the first build of libmod.so
			(cd "$scratch" && rm -f libmod.so && { [ ! -f old.c ] || mv old.c mod.c; } &&
			    ${CC:-cc} -O2 -g -fno-omit-frame-pointer -fPIC -shared \
			    -I"$top_srcdir/include" -o libmod.so mod.c 2>>err)
		}
		cc_lib -o "$scratch/reload" "$scratch/reload.c"
		# Rebuilt while loaded: the file at its path is the new
		# build, whose DWARF named line $nl for the old code.
		if mod && [ -x "$scratch/reload" ]; then
			out=$("$scratch/reload" rebuilt "$scratch/libmod.so" "sh $scratch/rebuild.sh" 2>&1)
		else
			out="build failed: $(cat "$scratch/err")"
		fi
		n=$((n + 1))
		if printf '%s\n' "$out" | grep -Eq "^    #0 $hex " &&
		    ! printf '%s\n' "$out" | grep -q "mod\.c:$nl)"; then
			echo "ok $n - rebuilt while loaded: no line of the new build (mod.c:$nl) for the old code"
		else
			echo "not ok $n - rebuilt while loaded: no line of the new build (mod.c:$nl) for the old code"
			printf '%s\n' "$out" | sed 's/^/#   /'
		fi
		# Unloaded, rebuilt, loaded again (in the same place): the
		# module was reported again as it was, with the old DWARF.
		if mod; then
			out=$("$scratch/reload" reloaded "$scratch/libmod.so" "sh $scratch/rebuild.sh" 2>&1)
		else
			out="build failed: $(cat "$scratch/err")"
		fi
		check "unloaded, rebuilt, loaded again: run at the new build's mod.c:$nl" \
		    "$out" "^    #0 $hex run \(.*mod\.c:$nl\)$"
		# Another object loaded after a lookup in it: libdwfl's own
		# mapping of libmod.so, just below it, was taken for its start
		# at the next report of /proc/self/maps: no line.
		if mod && cp "$scratch/libmod.so" "$scratch/libother.so"; then
			out=$("$scratch/reload" later "$scratch/libmod.so" "$scratch/libother.so" 2>&1)
		else
			out="build failed: $(cat "$scratch/err")"
		fi
		check "another object loaded after a lookup: run at mod.c:$ml still" \
		    "$out" "^    #0 $hex run \(.*mod\.c:$ml\)$"
		# -ffunction-sections -Wl,--gc-sections: the DWARF and the
		# lines of unused() (hidden, so discarded) are at address 0
		# on, over run()'s code, and one of unused()'s lines was
		# named for run()'s.
		{ echo '#include <beamalloc.h>'
		  echo 'volatile long sink;'
		  echo 'long unused(long x)'
		  echo '{'
		  i=0
		  while [ $i -lt 400 ]; do
			echo "	sink += x * $i + (sink >> $((i % 7)));"
			i=$((i + 1))
		  done
		  echo '	return sink;'
		  echo '}'
		  sed 1,2d "$scratch/mod.c"; } >"$scratch/gc.c"
		gl=$(grep -n 'LEAK' "$scratch/gc.c" | cut -d: -f1)
		if (cd "$scratch" && ${CC:-cc} -O2 -g -fno-omit-frame-pointer -fPIC -shared \
		    -fvisibility=hidden -ffunction-sections -Wl,--gc-sections \
		    -I"$top_srcdir/include" \
		    -o libmod.so gc.c -L"$top_builddir/lib/.libs" -lbeamalloc 2>>err); then
			out=$("$scratch/reload" rebuilt "$scratch/libmod.so" true 2>&1)
		else
			out="build failed: $(cat "$scratch/err")"
		fi
		n=$((n + 1))
		if printf '%s\n' "$out" | grep -Eq "^    #0 $hex run(\+$hex \(.*libmod\.so| \(.*gc\.c:$gl)\)$"; then
			echo "ok $n - code kept beside discarded code: run at gc.c:$gl or no line, never unused()'s"
		else
			echo "not ok $n - code kept beside discarded code: run at gc.c:$gl or no line, never unused()'s"
			printf '%s\n' "$out" | sed 's/^/#   /'
		fi
		rm -rf "$scratch"
	fi
else
	echo "# without libdw: dladdr's names"
	for i in 1 2 3 4 5; do
		n=$((n + 1)); echo "ok $n # SKIP split DWARF, objects rebuilt and reloaded, discarded code: without libdw, no lines at all"
	done
	n=$((n + 1))
	echo "ok $n # SKIP clang's lines: without libdw, no lines at all"
	n=$((n + 1))
	echo "ok $n # SKIP clang's lines with libbeamalloc.a: without libdw, no lines at all"
	n=$((n + 1))
	echo "ok $n # SKIP traces without frame pointers: without libdw, no CFI to tell"
	check "leak: #0 is an offset in libleakmod.so" "$leak_out" \
	    "^    #0 $hex \(.*libleakmod\.so\+$hex\)$"
	check "leak: #1 is leakmod_run+offset" "$leak_out" \
	    "^    #1 $hex leakmod_run\+$hex \(.*libleakmod\.so\)$"
	check "leak: a later frame is main" "$leak_out" "^    #[2-7] $hex main\+$hex"
	check "no traces: the call site alone" "$site_out" \
	    "^    #0 $hex \(.*libleakmod\.so\+$hex\)$"
	check "double free: freed again from leakmod_double_free" "$double_out" \
	    "^  freed again from: $hex leakmod_double_free\+$hex"
	check "double free: first freed in leakmod_double_free" "$double_out" \
	    "^    #0 $hex leakmod_double_free\+$hex"
	check "checker: the failing call site" "$check_out" \
	    "allocation #1 of 2 failed \(called from $hex \(.*libleakmod\.so\+$hex\)\)"
	check "checker: the failed allocation's stack" "$check_out" \
	    "^    #1 $hex leakmod_oom_leak\+$hex"
	check "beamalloc_symbolize: the object" "$sym_out" \
	    "^function= file= line=0 object=.*libleakmod\.so"
fi
check "beamalloc_report_format agrees; beamalloc_symbolize(0) is false" \
    "$leak_out$sym_out" "zero=0"
