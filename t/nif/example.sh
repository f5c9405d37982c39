#!/bin/sh
# example.sh - examples/ as a user builds it: its Makefile with pkg-config,
# against this build of the library laid out like an installation (the
# build's own beamalloc.pc with the prefix moved), run by examples/run.sh
# in a real erl.  The installed case is .ci/run's quick start.
. "$top_srcdir/t/nif/lib.sh"
need_beam
echo 1..2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-example.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
mkdir -p "$prefix/lib/pkgconfig"
ln -s "$top_srcdir/include" "$prefix/include"
for f in "$top_builddir"/lib/.libs/libbeamalloc.so*; do ln -s "$f" "$prefix/lib/"; done
sed -e "s|^prefix=.*|prefix=$prefix|" -e 's|^exec_prefix=.*|exec_prefix=${prefix}|' \
    -e 's|^libdir=.*|libdir=${exec_prefix}/lib|' -e 's|^includedir=.*|includedir=${prefix}/include|' \
    "$top_builddir/beamalloc.pc" >"$prefix/lib/pkgconfig/beamalloc.pc"

# -Werror here, and the sanitizer flags of this build (its library needs them).
if PKG_CONFIG_PATH=$prefix/lib/pkgconfig EXAMPLE_BUILD_DIR=$scratch/out \
    CFLAGS="-O2 -g -Wall -Wextra -Werror ${SANITIZER_CFLAGS:-}" \
    LDFLAGS="${SANITIZER_CFLAGS:-}" \
    sh "$top_srcdir/examples/run.sh" >"$scratch/log" 2>&1; then
	echo "ok 1 - examples/run.sh builds the NIF with pkg-config and runs it in erl"
else
	echo "not ok 1 - examples/run.sh failed"
fi
sed 's/^/# /' "$scratch/log"
# The four things the README promises the example shows.
if grep -q '^VM-tracked memory: ' "$scratch/log" &&
   grep -q '^4096-aligned block: .*rem 4096 = 0$' "$scratch/log" &&
   grep -q '^arena sum: arena_sum(lists:seq(1, 1000)) = 500500;' "$scratch/log" &&
   grep -q 'memory leak detected in function leaky/1: 24 bytes in 1 block' "$scratch/log" &&
   grep -q '^GPA leak report (1 live block' "$scratch/log" &&
   grep -q 'class 64: #{live_blocks => 1000,live_bytes => 64000,size => 64' "$scratch/log"; then
	echo "ok 2 - it printed tracked memory, an aligned address, the arena sum, the leak reports, the stats map"
else
	echo "not ok 2 - some of its output is missing"
fi
