#!/bin/sh
# debuginfo.sh - t/nif/leakcheck_nif.c built -O2 with debug information
# in the forms that hid the inlining of a decoder of <beamalloc/nif.h>
# from the symbolizer, linked as beamalloc-nif.pc links a shipped NIF:
# gcc's and clang's -gsplit-dwarf (the functions are in the .dwo file),
# clang's -gline-tables-only (no DW_AT_decl_file), gcc with dwz -m
# without its supplementary file.  The sites named the decoder's line in
# nif.h; they must name the body's lines.
. "$top_srcdir/t/nif/lib.sh"
need_beam
need_tool clang clang
need_static_nif
if ! grep -q '^#define HAVE_LIBDW 1' "$top_builddir/config.h"; then
	echo "1..0 # SKIP built without libdw: no lines at all"
	exit 0
fi
src=$top_srcdir/t/nif/leakcheck_nif.c
leak_sites "$src"
build=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-debuginfo.XXXXXX") || exit 1
FORMS=
for form in gcc:-gsplit-dwarf clang:-gsplit-dwarf clang:-gline-tables-only; do
	cc=${form%%:*} dir=$build/$cc${form#*:}
	mkdir "$dir"
	# The .dwo file goes beside the object, named after it.
	if ! (cd "$dir" && build_static_nif $cc leakcheck_nif.so "$src" ${form#*:}) \
	    2>"$build/err"; then
		echo "Bail out! $cc ${form#*:} cannot build t/nif/leakcheck_nif.c"
		sed 's/^/# /' "$build/err"
		rm -rf "$build"
		exit 1
	fi
	FORMS="$FORMS $cc${form#*:}"
done
# dwz -m (dh_dwz in a Debian package of two or more objects): the
# functions shared are moved into a supplementary file, here not
# installed (a stale or missing dbgsym), their names and files then
# unknown.
form=gcc-dwz-m
if command -v dwz >/dev/null 2>&1; then
	mkdir "$build/$form"
	if ! (cd "$build/$form" && build_static_nif gcc leakcheck_nif.so "$src" &&
	    cp leakcheck_nif.so other.so &&
	    dwz -mcommon.debug -M/nonexistent/common.debug leakcheck_nif.so other.so &&
	    rm common.debug) 2>"$build/err"; then
		echo "Bail out! gcc and dwz -m cannot build t/nif/leakcheck_nif.c"
		sed 's/^/# /' "$build/err"
		rm -rf "$build"
		exit 1
	fi
	FORMS="$FORMS $form"
elif [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
	echo "Bail out! no dwz (install dwz) but BEAMALLOC_REQUIRE_TOOLS=1"
	rm -rf "$build"
	exit 1
else
	SKIP_FORMS="$form"
fi
export FORMS SKIP_FORMS
nif_dir=$build
extra_modules=leakcheck
run_erl debuginfo
rc=$?
rm -rf "$build"
exit $rc
