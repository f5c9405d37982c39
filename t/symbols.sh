#!/bin/sh
# symbols.sh - ABI discipline: the Debian symbols file, the library's
# dynamic symbol table and the public header agree exactly.
#  - the symbols file names the library's SONAME and the package that
#    carries it (libbeamalloc.so.0 -> libbeamalloc0);
#  - nm -D lists exactly the symbols of debian/libbeamalloc0.symbols,
#    each with its version (lib/beamalloc.map);
#  - those are exactly the functions declared in include/beamalloc.h.
# Adding a function means adding it to all three (with the version that
# introduced it in the symbols file); removing one means a new SONAME.
lib="$top_builddir/lib/.libs/libbeamalloc.so"
symfile="$top_srcdir/debian/libbeamalloc0.symbols"
hdr="$top_srcdir/include/beamalloc.h"

echo 1..5
if ! command -v nm >/dev/null 2>&1 || ! command -v objdump >/dev/null 2>&1 ||
   [ ! -f "$lib" ] || [ ! -f "$symfile" ]; then
	echo "Bail out! no nm/objdump, no $lib or no $symfile"; exit 1
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-sym.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT

soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
read -r file_soname file_pkg _ < "$symfile"
if [ "$file_soname" = "$soname" ]; then echo "ok 1 - symbols file is for $soname"
else echo "not ok 1 - symbols file says '$file_soname', the library is '$soname'"; fi

# libfoo.so.N is packaged as libfooN (Debian policy 8.1).
base=${soname%%.so.*}; major=${soname##*.so.}
case $base in *[0-9]) want_pkg=$base-$major;; *) want_pkg=$base$major;; esac
if [ "$file_pkg" = "$want_pkg" ]; then echo "ok 2 - package name $file_pkg matches the SONAME"
else echo "not ok 2 - package '$file_pkg' for $soname (want $want_pkg)"; fi

# Each exported name with its version (name@VERSION: "@@", the default
# version, counts as one "@"), as the symbols file lists them.  Lines
# start with a space: " name@VERSION min-version"; " V@V" lines are the
# version nodes themselves (nm shows them as absolute symbols).
nm -D --defined-only --with-symbol-versions "$lib" |
	awk '$2 ~ /^[TDBRVWiu]$/ { sub("@@", "@", $3); print $3 }' |
	sort -u > "$scratch/exported_v"
sed -n 's/^ \([^@ ]*@[^ ]*\) .*/\1/p' "$symfile" |
	awk -F@ '$1 != $2' | sort -u > "$scratch/listed_v"
sed 's/@.*//' "$scratch/exported_v" | sort -u > "$scratch/exported"
sed 's/@.*//' "$scratch/listed_v" | sort -u > "$scratch/listed"
grep -oE '\bbeamalloc_[a-z0-9_]+[[:space:]]*\(' "$hdr" | tr -d ' (' |
	sort -u > "$scratch/declared"

extra=$(comm -23 "$scratch/exported_v" "$scratch/listed_v")
if [ -z "$extra" ]; then echo "ok 3 - every exported symbol is in the symbols file, with its version"
else echo "not ok 3 - exported but not in the symbols file:"; printf '# %s\n' $extra; fi

gone=$(comm -13 "$scratch/exported_v" "$scratch/listed_v")
if [ -z "$gone" ]; then echo "ok 4 - every symbol of the symbols file is exported, with its version"
else echo "not ok 4 - in the symbols file but not exported (an ABI break):"; printf '# %s\n' $gone; fi

diff=$(comm -3 "$scratch/listed" "$scratch/declared")
if [ -z "$diff" ]; then echo "ok 5 - the symbols file lists exactly the header's functions"
else echo "not ok 5 - symbols file and header differ (tab: header only):"; printf '%s\n' "$diff" | sed 's/^/# /'; fi
