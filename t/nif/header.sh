#!/bin/sh
# header.sh - <beamalloc/nif.h> stands alone: a file including only it
# compiles warning-free as C99, C11 and C++11 (when a C++ compiler is
# there), with the warnings strict projects turn on besides -Wall -Wextra
# (its code is compiled in theirs), and everything it defines keeps the
# beamalloc_nif_ / BEAMALLOC_NIF_ prefixes.
. "$top_srcdir/t/nif/lib.sh"
need_beam
echo 1..4
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-header.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
erl_inc=$("$ERL" -noshell -eval 'io:format("~s/usr/include",[code:root_dir()]),halt().')
hdr=$top_srcdir/include/beamalloc/nif.h
printf '#include <beamalloc/nif.h>\nint beamalloc_nif_header_test;\n' >"$scratch/t.c"
cp "$scratch/t.c" "$scratch/t.cc"
strict="-Wall -Wextra -Wpedantic -Wcast-qual -Wshadow -Wconversion -Wsign-conversion -Wundef -Werror"
n=0
for std in c99 c11; do
	n=$((n + 1))
	if ${CC:-cc} -std=$std $strict -Wstrict-prototypes -Wmissing-prototypes \
	    -I"$top_srcdir/include" -I"$erl_inc" \
	    -c -o "$scratch/t.o" "$scratch/t.c" 2>"$scratch/err"; then
		echo "ok $n - nif.h alone compiles as $std with $strict"
	else
		echo "not ok $n - nif.h alone does not compile as $std"; sed 's/^/# /' "$scratch/err"
	fi
done
cxx=$(command -v c++ || command -v g++ || command -v clang++ || true)
if [ -z "$cxx" ]; then
	echo "ok 3 # SKIP no C++ compiler"
elif "$cxx" -std=c++11 $strict -I"$top_srcdir/include" -I"$erl_inc" \
    -c -o "$scratch/t.o" "$scratch/t.cc" 2>"$scratch/err"; then
	echo "ok 3 - nif.h compiles as C++11 with $strict"
else
	echo "not ok 3 - nif.h does not compile as C++11"; sed 's/^/# /' "$scratch/err"
fi
# Every identifier the header defines at file scope.
bad=$(grep -oE '^(#define [A-Za-z_0-9]+|[a-z_][a-z_0-9]*\(|typedef .*\(\*[a-z_0-9]+\)|typedef .* [a-z_0-9]+;|\} [a-z_0-9]+;)' "$hdr" |
	sed -E 's/^#define //; s/^typedef .*\(\*([a-z_0-9]+)\)$/\1/; s/\($//; s/.* ([a-z_0-9]+);$/\1/; s/^\} //; s/;$//' |
	grep -vE '^(beamalloc_nif_|BEAMALLOC_NIF_)' | sort -u)
if [ -z "$bad" ]; then
	echo "ok 4 - every name nif.h defines starts with beamalloc_nif_ or BEAMALLOC_NIF_"
else
	echo "not ok 4 - names without the prefix:"; printf '# %s\n' $bad
fi
