#!/bin/sh
# abi01.sh - programs built against 0.1 keep working: t/abi01.c, 0.1's
# declarations, is linked against a stub libbeamalloc.so.0 with 0.1's
# unversioned symbols (as a program linked against 0.1 has them), then
# run on this build's library.  See lib/beamalloc.map.
lib="$top_builddir/lib/.libs/libbeamalloc.so"
if [ ! -f "$lib" ]; then
	echo "1..0 # SKIP no libbeamalloc.so (--disable-shared)"
	exit 0
fi
if ! nm -D "$lib" | grep -q ' BEAMALLOC_0\.1$'; then
	echo "1..0 # SKIP the library has no symbol versions (no version script)"
	exit 0
fi
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
	echo "1..0 # SKIP a sanitizer build: the program is not instrumented"
	exit 0
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-abi01.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
# The stub: every function the program calls, no version.
for f in libc alloc free resize report_print gpa_config_init gpa_create \
    gpa_allocator gpa_destroy fixed_init fixed_allocator fixed_reset \
    failing_init failing_allocator native_align wide_on alloc_aligned \
    arena_create arena_allocator arena_capacity arena_destroy; do
	echo "void beamalloc_$f(void); void beamalloc_$f(void) {}"
done > "$scratch/stub.c"
if ! ${CC:-cc} -shared -fPIC -Wl,-soname,libbeamalloc.so.0 \
    -o "$scratch/libbeamalloc.so" "$scratch/stub.c" 2>"$scratch/err" ||
   ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -o "$scratch/abi01" \
    "$top_srcdir/t/abi01.c" -L"$scratch" -lbeamalloc -ldl 2>>"$scratch/err"; then
	echo "Bail out! cannot build t/abi01.c: $(cat "$scratch/err")"
	exit 1
fi
LD_LIBRARY_PATH="$top_builddir/lib/.libs" "$scratch/abi01"
