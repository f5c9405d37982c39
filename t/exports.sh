#!/bin/sh
# exports.sh - the shared library exports exactly the beamalloc_* API:
# every defined dynamic symbol starts with beamalloc_, and every function
# declared in the public header is exported.
lib="$top_builddir/lib/.libs/libbeamalloc.so"
hdr="$top_srcdir/include/beamalloc.h"
echo 1..7
if ! command -v nm >/dev/null 2>&1 || [ ! -f "$lib" ]; then
	echo "Bail out! no nm or no $lib"; exit 1
fi
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sed 's/@.*//' | sort -u)
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

# The static library: -fvisibility=hidden does nothing for an archive's
# members, so mk/localize-archive.sh makes the internal names local.  A
# program whose own names are the library's internal ones links with it,
# and each side keeps its own.
a="$top_builddir/lib/.libs/libbeamalloc.a"
la="$top_builddir/lib/libbeamalloc.la"
if [ ! -f "$a" ]; then
	for n in 4 5 6 7; do echo "ok $n # SKIP no libbeamalloc.a (--disable-static)"; done
	exit 0
fi
bad=$(nm -g --defined-only "$a" | awk 'NF == 3 && $2 ~ /^[TDBRVWGS]$/ { print $3 }' \
	| grep -v '^beamalloc_' | sort -u)
if [ -z "$bad" ]; then echo "ok 4 - libbeamalloc.a defines only beamalloc_* globals"
else echo "not ok 4 - libbeamalloc.a defines foreign globals:"; printf '# %s\n' $bad; fi
# Two internal names: a datum and a function the GPA calls on every
# slab it makes.
inner=$(nm "$a" | awk '$3 == "ba_classes" || $3 == "ba_gpa_slab_new" { print $3 }' | sort -u | tr '\n' ' ')
if [ "$inner" = "ba_classes ba_gpa_slab_new " ]; then
	echo "ok 5 - the archive still holds ba_classes and ba_gpa_slab_new, as local names"
else
	echo "not ok 5 - internal names found: '$inner'"
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-exports.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cat > "$scratch/clash.c" <<'PROG'
#include <stdio.h>
#include <beamalloc.h>
/* The program's own, as a NIF author might name them. */
int ba_classes = 42;
static int own_calls;
void *ba_gpa_slab_new(void) { own_calls++; return NULL; }
int
main(void)
{
	beamalloc_gpa *g = beamalloc_gpa_create(beamalloc_libc(), NULL);
	beamalloc_allocator a = beamalloc_gpa_allocator(g);
	char *p = beamalloc_alloc(a, 100);
	int ok = g != NULL && p != NULL;
	if (p)
		p[99] = 1;
	beamalloc_free(a, p, 100);
	ok = ok && beamalloc_gpa_destroy(g) == 0;
	printf("%s %d %d\n", ok ? "gpa-ok" : "gpa-failed", ba_classes, own_calls);
	return 0;
}
PROG
deplibs=$(sed -n "s/^dependency_libs='\(.*\)'/\1/p" "$la")
# shellcheck disable=SC2086
if ${CC:-cc} $SANITIZER_CFLAGS -I"$top_srcdir/include" -o "$scratch/clash" "$scratch/clash.c" \
	"$a" $deplibs > "$scratch/cc.log" 2>&1; then
	echo "ok 6 - a program defining ba_classes and ba_gpa_slab_new links libbeamalloc.a"
	out=$("$scratch/clash")
	if [ "$out" = "gpa-ok 42 0" ]; then
		echo "ok 7 - each keeps its own: the GPA works, the program's names are untouched"
	else
		echo "not ok 7 - the program printed '$out'"
	fi
else
	echo "not ok 6 - the link failed:"; sed 's/^/# /' "$scratch/cc.log" | head -5
	echo "not ok 7 - not run"
fi
