# cxx-lib.sh - t/nif/cxx-gcc.sh and t/nif/cxx-clang.sh: t/nif/cxx_nif.cpp
# built by one C++ compiler (-std=c++17 -Wall -Wextra -Werror) as a NIF
# linked with -Wl,-Bsymbolic-functions, as <beamalloc/new.hpp> asks, then
# t/nif/cxx.erl in a real erl.  g++ links libbeamalloc.so; clang++ links
# libbeamalloc.a in, with the flags of beamalloc-nif.pc, as a shipped NIF
# does.  Sourced after cxx_family is set.
. "$top_srcdir/t/nif/lib.sh"
. "$top_srcdir/t/cxx-lib.sh"
need_beam
if ! cxx_pick "$cxx_family"; then
	echo "1..0 # SKIP $cxx_why"
	exit 0
fi
link=-lbeamalloc
# The archive's own dependencies (libdw, when configure found it) follow
# it, as beamalloc-nif.pc's Libs give them.
[ "$cxx_family" = clang ] && link="-Wl,--exclude-libs,ALL -Wl,-Bstatic -lbeamalloc -Wl,-Bdynamic $(sed -n 's/^Libs:.*-Wl,-Bdynamic//p' "$top_builddir/beamalloc-nif.pc")"
build=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-cxxnif.XXXXXX") || exit 1
erl_inc=$("$ERL" -noshell -eval 'io:format("~s/usr/include",[code:root_dir()]),halt().')
if ! $cxx $cxx_flags -fPIC -shared -fvisibility=hidden -I"$top_srcdir/include" -I"$erl_inc" \
    -o "$build/cxx_nif_$cxx_family.so" "$top_srcdir/t/nif/cxx_nif.cpp" \
    -L"$top_builddir/lib/.libs" $link -Wl,-Bsymbolic-functions 2>"$build/err"; then
	echo "Bail out! $cxx cannot build t/nif/cxx_nif.cpp"
	sed 's/^/# /' "$build/err"
	rm -rf "$build"
	exit 1
fi
nif_dir=$build
NIF_NAME=cxx_nif_$cxx_family
export NIF_NAME
# One normal scheduler: new char[] and delete[] then run on the same
# allocator instance of ERTS, which frees at once.  A block freed on
# another scheduler is handed back to its own (ERTS's delayed dealloc,
# erts/emulator/internal_doc/DelayedDealloc.md) and stays counted in
# memory(system) until that scheduler gets to it: under load, the
# process moved between the two calls once and delete[] read 4 MB.
run_erl cxx +S 1:1
rc=$?
rm -rf "$build"
exit $rc
