#!/bin/sh
# example.sh - examples/ as a user builds it: its Makefile with pkg-config,
# against this build of the library laid out like an installation (the
# build's own beamalloc.pc and beamalloc-nif.pc with the prefix moved),
# run by examples/run.sh in a real erl, twice:
#  - LINK=static (the default, `pkg-config --libs beamalloc-nif`): the NIF
#    holds libbeamalloc.a; readelf -d names no libbeamalloc.so, nm -D shows
#    no beamalloc_* symbol, and it loads and passes the example's checks
#    with no libbeamalloc.so anywhere in the prefix;
#  - LINK=shared (`pkg-config --libs beamalloc`): NEEDED libbeamalloc.so.0.
# The installed case is .ci/run's quick start.
. "$top_srcdir/t/nif/lib.sh"
need_beam
echo 1..8
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-example.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT

# build LINK PREFIX: examples/run.sh with -Werror, and the sanitizer flags
# of this build (its library needs them); the log in $scratch/LINK.log.
build() {
	PKG_CONFIG_PATH=$2/lib/pkgconfig EXAMPLE_BUILD_DIR=$scratch/out-$1 LINK=$1 \
	    CFLAGS="-O2 -g -Wall -Wextra -Werror ${SANITIZER_CFLAGS:-}" \
	    LDFLAGS="${SANITIZER_CFLAGS:-}" \
	    sh "$top_srcdir/examples/run.sh" >"$scratch/$1.log" 2>&1
}
# The four things the README promises the example shows.
shows_all() {
	grep -q '^VM-tracked memory: ' "$1" &&
	grep -q '^4096-aligned block: .*rem 4096 = 0$' "$1" &&
	grep -q '^arena sum: arena_sum(lists:seq(1, 1000)) = 500500;' "$1" &&
	grep -q 'memory leak detected in function leaky/1: 24 bytes in 1 block' "$1" &&
	grep -q '^GPA leak report (1 live block' "$1" &&
	grep -q 'class 64: #{live_blocks => 1000,live_bytes => 64000,size => 64' "$1"
}

# The static prefix has the archive only: a NIF that still needed
# libbeamalloc.so could not load.
fake_prefix "$scratch/static" "$top_builddir/lib/.libs/libbeamalloc.a"
if build static "$scratch/static"; then
	echo "ok 1 - examples/run.sh builds the NIF with pkg-config beamalloc-nif (the archive) and runs it in erl"
else
	echo "not ok 1 - examples/run.sh (static) failed"
fi
sed 's/^/# /' "$scratch/static.log"
so=$scratch/out-static/beamalloc_example.so
needed=$(readelf -d "$so" 2>/dev/null | grep '(NEEDED)')
if [ -n "$needed" ] && ! echo "$needed" | grep -q libbeamalloc; then
	echo "ok 2 - readelf -d: the static NIF needs no libbeamalloc.so"
else
	echo "not ok 2 - readelf -d: '$needed'"
fi
exports=$(nm -D --defined-only "$so" 2>/dev/null | awk '{ print $3 }' | tr '\n' ' ')
case " $exports" in
*" beamalloc_"*|" ") echo "not ok 3 - nm -D: the static NIF exports '$exports'";;
*" nif_init "*) echo "ok 3 - nm -D: the static NIF exports no beamalloc_* symbol ($exports)";;
*) echo "not ok 3 - nm -D: no nif_init in '$exports'";;
esac
if shows_all "$scratch/static.log"; then
	echo "ok 4 - static: it printed tracked memory, an aligned address, the arena sum, the leak reports"
else
	echo "not ok 4 - static: some of its output is missing"
fi

fake_prefix "$scratch/shared" "$top_builddir"/lib/.libs/libbeamalloc.so*
if build shared "$scratch/shared" &&
   readelf -d "$scratch/out-shared/beamalloc_example.so" | grep -q 'NEEDED.*libbeamalloc\.so\.0'; then
	echo "ok 5 - LINK=shared: built with pkg-config beamalloc, NEEDED libbeamalloc.so.0, runs in erl"
else
	echo "not ok 5 - LINK=shared failed"
fi
sed 's/^/# /' "$scratch/shared.log"
if shows_all "$scratch/shared.log"; then
	echo "ok 6 - shared: it printed tracked memory, an aligned address, the arena sum, the leak reports"
else
	echo "not ok 6 - shared: some of its output is missing"
fi

# Built with -g: the GPA's leak report names the source line of the
# leaked block's allocation (when configure found libdw).
line=$(grep -n 'b = beamalloc_alloc(gpa, 200);' "$top_srcdir/examples/beamalloc_example.c" | cut -d: -f1)
if ! grep -q '^#define HAVE_LIBDW 1' "$top_builddir/config.h"; then
	if grep -Eq "^    #0 0x[0-9a-f]+ leak_report\+0x[0-9a-f]+ " "$scratch/static.log"; then
		echo "ok 7 - without libdw: the leak report names leak_report+offset"
	else
		echo "not ok 7 - without libdw: no leak_report+offset in the report"
	fi
elif grep -Eq "^    #0 0x[0-9a-f]+ leak_report \(.*beamalloc_example\.c:$line\)$" "$scratch/static.log" &&
     grep -Eq "^    #0 0x[0-9a-f]+ leak_report \(.*beamalloc_example\.c:$line\)$" "$scratch/shared.log"; then
	echo "ok 7 - both: the leak report names leak_report (beamalloc_example.c:$line)"
else
	echo "not ok 7 - the leak report does not name beamalloc_example.c:$line"
fi

# The static NIF, unchanged, run again with BEAMALLOC_GPA_OPTIONS=traces=8:
# its GPA (made with beamalloc_gpa_config_init) now traces, so the leak
# report gains frames past the call site (#1 ...).
report() {	# the GPA leak report's lines of an example run's output
	sed -n '/^GPA leak report/,/^GPA stats map/p' "$1"
}
(cd "$scratch" && BEAMALLOC_GPA_OPTIONS=traces=8 "${ERL:-erl}" -noshell \
    -pa "$scratch/out-static" -eval 'beamalloc_example:main(), halt().') \
    >"$scratch/traced.log" 2>&1
if ! report "$scratch/static.log" | grep -q '#1 ' &&
   report "$scratch/traced.log" | grep -q '#0 .*beamalloc_example' &&
   report "$scratch/traced.log" | grep -q '#1 '; then
	echo "ok 8 - the same binary under BEAMALLOC_GPA_OPTIONS=traces=8: the leak report gains the trace"
else
	echo "not ok 8 - BEAMALLOC_GPA_OPTIONS=traces=8 did not add a trace to the leak report"
fi
report "$scratch/traced.log" | sed 's/^/# /'
