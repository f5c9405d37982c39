# lib.sh - shared by the real-VM tests (sourced by t/nif/*.sh).
#
#   run_erl MODULE [EXTRA_ERL_ARGS...]
#
# compiles t/nif/MODULE.erl and t/nif/tap.erl (and t/nif/M.erl for each M
# in $extra_modules) into a scratch directory, then runs MODULE:main() in a
# real erl -noshell; MODULE prints TAP.  The NIF libraries are found
# through NIF_DIR.  Without erl the test SKIPs,
# unless BEAMALLOC_REQUIRE_BEAM=1 (CI), where a skip is a failure.

nif_dir="$top_builddir/t/nif/.libs"

need_beam() {
	if [ -z "$ERL" ] || [ "$ERL" = no ] || [ -z "$ERLC" ] || [ "$ERLC" = no ] ||
	   [ ! -d "$nif_dir" ]; then
		if [ "${BEAMALLOC_REQUIRE_BEAM:-0}" = 1 ]; then
			echo "Bail out! erl/erlc or the test NIFs are missing but BEAMALLOC_REQUIRE_BEAM=1"
			exit 1
		fi
		echo "1..0 # SKIP no erl/erlc (install erlang-base erlang-dev)"
		exit 0
	fi
}

run_erl() {
	module=$1; shift
	need_beam
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-nif.XXXXXX") || exit 1
	trap 'rm -rf "$scratch"' EXIT
	extra=
	for m in $extra_modules; do extra="$extra $top_srcdir/t/nif/$m.erl"; done
	"$ERLC" -o "$scratch" "$top_srcdir/t/nif/tap.erl" "$top_srcdir/t/nif/$module.erl" $extra || {
		echo "Bail out! erlc failed for $module.erl"; exit 1; }
	# A crash dump (a NIF that failed to load) stays out of the build tree.
	ERL_CRASH_DUMP=$scratch/erl_crash.dump NIF_DIR=$nif_dir LD_LIBRARY_PATH="$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$ERL" "$@" -noshell -pa "$scratch" -eval "$module:main()"
}

# need_tool TOOL PACKAGE: TOOL on the PATH, else SKIP the test (a
# failure under BEAMALLOC_REQUIRE_TOOLS=1, as in CI).
need_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		echo "Bail out! no $1 (install $2) but BEAMALLOC_REQUIRE_TOOLS=1"
		exit 1
	fi
	echo "1..0 # SKIP no $1"
	exit 0
}

# need_static_nif: what build_static_nif takes, else SKIP: the archive,
# and no sanitizer build (the NIF is built without its runtime).
need_static_nif() {
	if [ -n "${SANITIZER_CFLAGS:-}" ]; then
		echo "1..0 # SKIP a sanitizer build: the NIF is built without its runtime"
		exit 0
	fi
	if [ ! -f "$top_builddir/lib/.libs/libbeamalloc.a" ]; then
		echo "1..0 # SKIP no libbeamalloc.a (--disable-static)"
		exit 0
	fi
}

# build_static_nif CC OUT SRC [FLAGS...]: SRC built by CC into the NIF
# OUT as beamalloc-nif.pc links a shipped one (libbeamalloc.a in, its
# symbols local), -O2 -g with frame pointers and FLAGS; the compiler's
# messages on stderr.
build_static_nif() {
	bsn_cc=$1 bsn_out=$2 bsn_src=$3; shift 3
	bsn_erl_inc=$("$ERL" -noshell -eval 'io:format("~s/usr/include",[code:root_dir()]),halt().')
	"$bsn_cc" -std=gnu11 -Wall -Wextra -O2 -g -fno-omit-frame-pointer "$@" \
	    -fPIC -shared -fvisibility=hidden -I"$top_srcdir/include" \
	    -I"$bsn_erl_inc" -o "$bsn_out" "$bsn_src" -L"$top_builddir/lib/.libs" \
	    -Wl,--exclude-libs,ALL -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic \
	    $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc")
}

# leak_sites SRC: the lines of SRC's allocations that leakcheck.erl's
# sites must name (each marked by a /* SITE X */ comment), exported as
# LEAK_SITE_X.
leak_sites() {
	for ls_x in N 100 LIST OUTLINE; do
		eval "LEAK_SITE_$ls_x=\$(grep -n 'SITE $ls_x \\*/' \"\$1\" | cut -d: -f1)"
		export "LEAK_SITE_$ls_x"
	done
}

# fake_prefix DIR FILES...: this build laid out like an installation under
# DIR: include/, lib/ with FILES (libbeamalloc.a, libbeamalloc.so*) and
# lib/pkgconfig/ with the build's beamalloc.pc and beamalloc-nif.pc, their
# prefix moved to DIR.
fake_prefix() {
	fp_dir=$1; shift
	mkdir -p "$fp_dir/lib/pkgconfig"
	ln -s "$top_srcdir/include" "$fp_dir/include"
	for fp_f in "$@"; do ln -s "$fp_f" "$fp_dir/lib/"; done
	for fp_pc in beamalloc beamalloc-nif; do
		sed -e "s|^prefix=.*|prefix=$fp_dir|" -e 's|^exec_prefix=.*|exec_prefix=${prefix}|' \
		    -e 's|^libdir=.*|libdir=${exec_prefix}/lib|' -e 's|^includedir=.*|includedir=${prefix}/include|' \
		    "$top_builddir/$fp_pc.pc" >"$fp_dir/lib/pkgconfig/$fp_pc.pc"
	done
}

# need_project_tool TOOL PACKAGE: a project tool (rebar3, mix); without it the test
# SKIPs, unless BEAMALLOC_REQUIRE_TOOLS=1 (CI), where that is a failure.
need_project_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		echo "Bail out! $1 is missing (install $2) but BEAMALLOC_REQUIRE_TOOLS=1"
		exit 1
	fi
	echo "1..0 # SKIP no $1 (install $2)"
	exit 0
}

# self_contained SO: "ok"-style check that a NIF needs no libbeamalloc.so
# and exports nothing but nif_init; prints what it found.
self_contained() {
	sc_needed=$(readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ')
	sc_exports=$(nm -D --defined-only "$1" 2>/dev/null | awk '{ print $3 }' | tr '\n' ' ')
	echo "NEEDED ${sc_needed% }; exports ${sc_exports% }"
	case " $sc_needed" in *" libbeamalloc"*|" ") return 1;; esac
	[ "$sc_exports" = "nif_init " ]
}

# project_setup NAME TOOL: for examples/NAME, built by TOOL (which starts
# its own erl: no sanitizer build can run it), plan 3 tests and copy the
# project into $scratch/project, beside a prefix that holds the archive
# only and a scratch HOME.
project_setup() {
	if [ -n "${SANITIZER_CFLAGS:-}" ]; then
		echo "1..0 # SKIP $2 runs its own erl, which cannot load a NIF built with ASan"
		exit 0
	fi
	echo 1..3
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-$1.XXXXXX") || exit 1
	trap 'rm -rf "$scratch"' EXIT
	fake_prefix "$scratch/prefix" "$top_builddir/lib/.libs/libbeamalloc.a"
	cp -R "$top_srcdir/examples/$1" "$scratch/project"
	chmod -R u+w "$scratch/project"
	mkdir -p "$scratch/home"
}

# project_run VAR=VALUE... COMMAND...: in the copy, offline, with every
# flag from the scratch prefix's pkg-config; output in $scratch/log.
project_run() {
	(cd "$scratch/project" &&
	    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL HOME="$scratch/home" \
		PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig" \
		CFLAGS="-O2 -g -Wall -Wextra -Werror" \
		ERL_CRASH_DUMP="$scratch/erl_crash.dump" \
		"$@") >"$scratch/log" 2>&1
}

# project_results SUMMARY SO: the log as comments; tests 2 (the runner's
# SUMMARY line) and 3 (priv/SO needs no libbeamalloc.so, exports none).
project_results() {
	{ cat "$scratch/log"; echo; } | sed 's/^/# /'
	if grep -a -q "$1" "$scratch/log"; then
		echo "ok 2 - all 3 tests ran and passed ($1)"
	else
		echo "not ok 2 - not '$1'"
	fi
	if found=$(self_contained "$scratch/project/priv/$2"); then
		echo "ok 3 - priv/$2 is self-contained: $found"
	else
		echo "not ok 3 - priv/$2: $found"
	fi
}
