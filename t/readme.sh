#!/bin/sh
# readme.sh - the README's C tour compiles and runs against the fresh
# library, so the README cannot drift from the API.
echo 1..2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-readme.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
{
	echo '#include <errno.h>'
	awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on && /^#include/' "$top_srcdir/README.md"
	echo 'static int tour(void) {'
	awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on && !/^#include/' "$top_srcdir/README.md"
	echo 'return 0; }'
	echo 'int main(void) { return tour(); }'
} > "$scratch/tour.c"
# SANITIZER_CFLAGS: a sanitizer build's library needs its runtime.
if ${CC:-cc} ${SANITIZER_CFLAGS:-} -std=gnu11 -Wall -Wextra -Werror -I"$top_srcdir/include" -o "$scratch/tour" \
	"$scratch/tour.c" -L"$top_builddir/lib/.libs" -lbeamalloc 2>"$scratch/err"; then
	echo "ok 1 - the README tour compiles with -Wall -Wextra -Werror"
else
	echo "not ok 1 - the README tour does not compile"; sed 's/^/# /' "$scratch/err"
fi
if LD_LIBRARY_PATH="$top_builddir/lib/.libs" "$scratch/tour"; then
	echo "ok 2 - the README tour runs and returns 0"
else
	echo "not ok 2 - the README tour failed"
fi
