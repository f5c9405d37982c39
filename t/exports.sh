#!/bin/sh
# exports.sh - the shared library exports exactly the beamalloc_* API:
# every defined dynamic symbol starts with beamalloc_, and every function
# declared in the public header is exported.
lib="$top_builddir/lib/.libs/libbeamalloc.so"
hdr="$top_srcdir/include/beamalloc.h"
echo 1..3
if ! command -v nm >/dev/null 2>&1 || [ ! -f "$lib" ]; then
	echo "Bail out! no nm or no $lib"; exit 1
fi
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort)
bad=$(printf '%s\n' "$syms" | grep -v '^beamalloc_' | grep -v '^$')
if [ -z "$bad" ]; then echo "ok 1 - only beamalloc_* symbols exported"
else echo "not ok 1 - foreign exports:"; printf '# %s\n' $bad; fi
want=$(grep -oE 'beamalloc_[a-z0-9_]+\(' "$hdr" | tr -d '(' | sort -u)
missing=$(printf '%s\n' "$want" | while read -r f; do
	printf '%s\n' "$syms" | grep -qx "$f" || echo "$f"; done)
if [ -z "$missing" ]; then echo "ok 2 - every header function is exported"
else echo "not ok 2 - declared but not exported:"; printf '# %s\n' $missing; fi
soname=$(objdump -p "$lib" 2>/dev/null | awk '/SONAME/ { print $2 }')
if [ "$soname" = libbeamalloc.so.0 ]; then echo "ok 3 - soname is libbeamalloc.so.0"
else echo "not ok 3 - soname is '$soname'"; fi
