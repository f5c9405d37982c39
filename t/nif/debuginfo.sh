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
if ! command -v clang >/dev/null 2>&1; then
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		echo "Bail out! no clang (install clang) but BEAMALLOC_REQUIRE_TOOLS=1"
		exit 1
	fi
	echo "1..0 # SKIP no clang"
	exit 0
fi
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
	echo "1..0 # SKIP a sanitizer build: the NIFs are built without its runtime"
	exit 0
fi
if [ ! -f "$top_builddir/lib/.libs/libbeamalloc.a" ]; then
	echo "1..0 # SKIP no libbeamalloc.a (--disable-static)"
	exit 0
fi
if ! grep -q '^#define HAVE_LIBDW 1' "$top_builddir/config.h"; then
	echo "1..0 # SKIP built without libdw: no lines at all"
	exit 0
fi
src=$top_srcdir/t/nif/leakcheck_nif.c
LEAK_SITE_N=$(grep -n 'SITE N \*/' "$src" | cut -d: -f1)
LEAK_SITE_100=$(grep -n 'SITE 100 \*/' "$src" | cut -d: -f1)
LEAK_SITE_LIST=$(grep -n 'SITE LIST \*/' "$src" | cut -d: -f1)
LEAK_SITE_OUTLINE=$(grep -n 'SITE OUTLINE \*/' "$src" | cut -d: -f1)
export LEAK_SITE_N LEAK_SITE_100 LEAK_SITE_LIST LEAK_SITE_OUTLINE
build=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-debuginfo.XXXXXX") || exit 1
erl_inc=$("$ERL" -noshell -eval 'io:format("~s/usr/include",[code:root_dir()]),halt().')
FORMS=
for form in gcc:-gsplit-dwarf clang:-gsplit-dwarf clang:-gline-tables-only; do
	cc=${form%%:*} dir=$build/$cc${form#*:}
	mkdir "$dir"
	# The .dwo file goes beside the object, named after it.
	if ! (cd "$dir" && $cc -std=gnu11 -O2 -g ${form#*:} -fno-omit-frame-pointer \
	    -fPIC -shared -fvisibility=hidden -I"$top_srcdir/include" -I"$erl_inc" \
	    -o leakcheck_nif.so "$src" -L"$top_builddir/lib/.libs" \
	    -Wl,--exclude-libs,ALL -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic \
	    $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc")) \
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
	if ! (cd "$build/$form" && gcc -std=gnu11 -O2 -g -fno-omit-frame-pointer \
	    -fPIC -shared -fvisibility=hidden -I"$top_srcdir/include" -I"$erl_inc" \
	    -o leakcheck_nif.so "$src" -L"$top_builddir/lib/.libs" \
	    -Wl,--exclude-libs,ALL -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic \
	    $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc") &&
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
