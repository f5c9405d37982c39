#!/bin/sh
# leakcheck-clang.sh - t/nif/leakcheck.sh with t/nif/leakcheck_nif.c
# built by clang -O2 -g -fno-omit-frame-pointer and linked as
# beamalloc-nif.pc links a shipped NIF (libbeamalloc.a in, its symbols
# local).  The sites must name the NIF's lines as for gcc: clang's unit
# has no .debug_aranges while the library's do, and clang -O2 did not
# inline beamalloc_nif_get_double_list (too costly).
. "$top_srcdir/t/nif/lib.sh"
need_beam
need_tool clang clang
need_static_nif
src=$top_srcdir/t/nif/leakcheck_nif.c
leak_sites "$src"
build=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-clangnif.XXXXXX") || exit 1
if ! build_static_nif clang "$build/leakcheck_nif.so" "$src" 2>"$build/err"; then
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
