#!/bin/sh
# leakcheck-clang.sh - t/nif/leakcheck.sh with t/nif/leakcheck_nif.c
# built by clang -O2 -g -fno-omit-frame-pointer and linked as
# beamalloc-nif.pc links a shipped NIF (libbeamalloc.a in, its symbols
# local).  The sites must name the NIF's lines as for gcc: clang's unit
# has no .debug_aranges while the library's do, and clang -O2 did not
# inline beamalloc_nif_get_double_list (too costly).
. "$top_srcdir/t/nif/lib.sh"
need_beam
if ! command -v clang >/dev/null 2>&1; then
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		echo "Bail out! no clang (install clang) but BEAMALLOC_REQUIRE_TOOLS=1"
		exit 1
	fi
	echo "1..0 # SKIP no clang"
	exit 0
fi
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
	echo "1..0 # SKIP a sanitizer build: clang's runtime is not the library's"
	exit 0
fi
if [ ! -f "$top_builddir/lib/.libs/libbeamalloc.a" ]; then
	echo "1..0 # SKIP no libbeamalloc.a (--disable-static)"
	exit 0
fi
src=$top_srcdir/t/nif/leakcheck_nif.c
leak_sites "$src"
build=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-clangnif.XXXXXX") || exit 1
erl_inc=$("$ERL" -noshell -eval 'io:format("~s/usr/include",[code:root_dir()]),halt().')
if ! clang -std=gnu11 -Wall -Wextra -O2 -g -fno-omit-frame-pointer -fPIC -shared \
    -fvisibility=hidden -I"$top_srcdir/include" -I"$erl_inc" \
    -o "$build/leakcheck_nif.so" "$src" -L"$top_builddir/lib/.libs" \
    -Wl,--exclude-libs,ALL -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic \
    $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc") \
    2>"$build/err"; then
	echo "Bail out! clang cannot build t/nif/leakcheck_nif.c"
	sed 's/^/# /' "$build/err"
	rm -rf "$build"
	exit 1
fi
nif_dir=$build
run_erl leakcheck
rc=$?
rm -rf "$build"
exit $rc
