#!/bin/sh
# cxx-compilers.sh - <beamalloc.hpp> and <beamalloc/new.hpp> with each C++ compiler
# configure found (g++, clang++) at -std=c++17 -Wall -Wextra -Werror:
# t/cxx.cpp and t/cxx_new.cpp built and run by each, and the README's C++
# example; at -std=c++14 each header says, once, that it needs C++17, and
# without aligned new <beamalloc/new.hpp> says that it needs it.  A missing compiler SKIPs its tests, or fails them when
# BEAMALLOC_REQUIRE_TOOLS=1 (CI).
. "$top_srcdir/t/cxx-lib.sh"
echo 1..11
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-cxx.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
n=0
# build_run NAME SRC: compile SRC with $cxx, run it, one TAP line.
build_run() {
	n=$((n + 1))
	if ! $cxx $cxx_flags -I"$top_builddir" -I"$top_srcdir/include" -I"$top_srcdir/t" \
	    -o "$scratch/$1" "$2" -L"$top_builddir/lib/.libs" -lbeamalloc 2>"$scratch/err"; then
		echo "not ok $n - $cxx_name: $(basename "$2") does not compile"
		sed 's/^/# /' "$scratch/err"
	elif LD_LIBRARY_PATH="$top_builddir/lib/.libs" "$scratch/$1" >"$scratch/out" 2>&1; then
		echo "ok $n - $cxx_name: $(basename "$2") compiles warning-free and passes ($(grep -c '^ok' "$scratch/out") tests)"
	else
		echo "not ok $n - $cxx_name: $(basename "$2") fails"
		sed 's/^/# /' "$scratch/out"
	fi
}
# Both headers without exceptions or RTTI (what many NIFs build with).
cat >"$scratch/bare.cpp" <<'EOT'
#include <beamalloc.hpp>
#include <beamalloc/new.hpp>
#include <vector>
int beamalloc_bare(beamalloc_allocator a);
int beamalloc_bare(beamalloc_allocator a)
{
	beamalloc::resource r(a);
	std::vector<int, beamalloc::stl_allocator<int>> v(
	    (beamalloc::stl_allocator<int>(a)));
	v.push_back(1);
	return r.is_equal(r) ? v[0] : 0;
}
EOT
bare() {
	n=$((n + 1))
	if $cxx $cxx_flags -fno-exceptions -fno-rtti -I"$top_srcdir/include" -c \
	    -o "$scratch/bare.o" "$scratch/bare.cpp" 2>"$scratch/err"; then
		echo "ok $n - $cxx_name: both headers compile with -fno-exceptions -fno-rtti"
	else
		echo "not ok $n - $cxx_name: the headers need exceptions or RTTI"
		sed 's/^/# /' "$scratch/err"
	fi
}
# Under C++14 the compile fails with one error per header, its #error.
printf '#include <beamalloc.hpp>\n#include <beamalloc/new.hpp>\n' >"$scratch/old.cpp"
older() {
	n=$((n + 1))
	if $cxx -std=c++14 -I"$top_srcdir/include" -c -o "$scratch/old.o" \
	    "$scratch/old.cpp" 2>"$scratch/err"; then
		echo "not ok $n - $cxx_name: the headers compile at -std=c++14"
	elif [ "$(grep -c 'error:' "$scratch/err")" -eq 2 ] &&
	    [ "$(grep -c 'needs C++17' "$scratch/err")" -ge 2 ]; then
		echo "ok $n - $cxx_name: at -std=c++14, one error per header: it needs C++17"
	else
		echo "not ok $n - $cxx_name: at -std=c++14, not one clear error per header"
		sed 's/^/# /' "$scratch/err"
	fi
}
# Without aligned new (g++ -fno-aligned-new, clang++
# -fno-aligned-allocation), <beamalloc/new.hpp> fails with one error that
# says so; <beamalloc.hpp> needs none.
printf '#include <beamalloc.hpp>\n#include <beamalloc/new.hpp>\n' >"$scratch/noal.cpp"
noaligned() {
	n=$((n + 1))
	case $which in
	gcc) noal=-fno-aligned-new ;;
	*) noal=-fno-aligned-allocation ;;
	esac
	if $cxx -std=c++17 $noal -I"$top_srcdir/include" -c -o "$scratch/noal.o" \
	    "$scratch/noal.cpp" 2>"$scratch/err"; then
		echo "not ok $n - $cxx_name: <beamalloc/new.hpp> compiles with $noal"
	elif [ "$(grep -c 'error:' "$scratch/err")" -eq 1 ] &&
	    grep -q 'needs aligned operator new' "$scratch/err"; then
		echo "ok $n - $cxx_name: with $noal, one error: <beamalloc/new.hpp> needs aligned new"
	else
		echo "not ok $n - $cxx_name: with $noal, not one clear error"
		sed 's/^/# /' "$scratch/err"
	fi
}
for which in gcc clang; do
	if cxx_pick "$which"; then
		build_run "cxx-$which" "$top_srcdir/t/cxx.cpp"
		if [ -n "${SANITIZER_CFLAGS:-}" ] && [ "$which" = clang ]; then
			n=$((n + 1))
			echo "ok $n # SKIP clang's sanitizer runtime defines operator new itself"
		else
			build_run "cxx_new-$which" "$top_srcdir/t/cxx_new.cpp"
		fi
		bare
		older
		noaligned
	else
		for i in 1 2 3 4 5; do
			n=$((n + 1))
			echo "ok $n # SKIP $cxx_why"
		done
	fi
done
# The README's C++ example: every line of its ```cpp block, in main().
n=$((n + 1))
if cxx_pick gcc || cxx_pick clang; then
	{
		awk '/^```cpp$/ { on = 1; next } /^```$/ { on = 0 } on && /^#include/' "$top_srcdir/README.md"
		echo 'int main() {'
		awk '/^```cpp$/ { on = 1; next } /^```$/ { on = 0 } on && !/^#include/' "$top_srcdir/README.md"
		echo 'return 0; }'
	} >"$scratch/readme.cpp"
	if [ "$(grep -c . "$scratch/readme.cpp")" -lt 6 ]; then
		echo "not ok $n - the README has no \`\`\`cpp example"
	elif $cxx $cxx_flags -I"$top_srcdir/include" -o "$scratch/readme" "$scratch/readme.cpp" \
	    -L"$top_builddir/lib/.libs" -lbeamalloc 2>"$scratch/err" &&
	    LD_LIBRARY_PATH="$top_builddir/lib/.libs" "$scratch/readme" >"$scratch/out" 2>&1; then
		echo "ok $n - the README's C++ example compiles ($cxx_name) and returns 0"
	else
		echo "not ok $n - the README's C++ example fails ($cxx_name)"
		sed 's/^/# /' "$scratch/err" "$scratch/out"
	fi
else
	echo "ok $n # SKIP $cxx_why"
fi
