#!/bin/sh
# man-examples.sh - the EXAMPLES of every man page compile without a
# warning against the public header, link against the fresh library and
# run to exit status 0, so the pages cannot drift from the API.
# A program is a literal block (.Bd -literal ... .Ed) of the EXAMPLES
# section that includes a header; roff escapes are undone first.  A NIF
# (one that includes <beamalloc/nif.h>) is built as a shared object with
# erl_nif.h, but not run; without erl_nif.h it SKIPs, unless
# BEAMALLOC_REQUIRE_BEAM=1.

man="$top_srcdir/man"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-mex.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
libs="$top_builddir/lib/.libs"

for f in "$man"/*.3; do
	# A git checkout also holds man/aliases as links to the pages: each
	# page's examples once, as in a dist tarball, which has no links.
	[ -L "$f" ] && continue
	head -n 1 "$f" | grep -q '^\.so ' && continue
	page=${f##*/}; page=${page%.3}
	# Write each literal block of EXAMPLES to $scratch/PAGE-K.c.
	awk -v out="$scratch/$page" '
		/^\.Sh / { ex = ($2 == "EXAMPLES") }
		ex && /^\.Bd -literal/ { k++; body = ""; inblk = 1; next }
		inblk && /^\.Ed/ {
			inblk = 0
			if (body ~ /#include/) printf "%s", body > (out "-" k ".c")
			next
		}
		inblk {
			gsub(/\\&/, ""); gsub(/\\e/, "\\"); gsub(/\\-/, "-")
			body = body $0 "\n"
		}' "$f"
	found=
	for c in "$scratch/$page"-*.c; do
		[ -f "$c" ] || continue
		found=1
		prog=${c%.c}; name="$page(3) example ${prog##*-}"
		flags= nif=
		if grep -q 'beamalloc/nif\.h\|erl_nif\.h' "$c"; then
			nif=1
			if [ -z "$ERL_NIF_CFLAGS" ] && [ "${BEAMALLOC_REQUIRE_BEAM:-0}" != 1 ]; then
				n=$((n + 1)); echo "ok $n # SKIP $name: no erl_nif.h (install erlang-dev)"
				continue
			fi
			flags="-shared -fPIC $ERL_NIF_CFLAGS"
		fi
		# C++ (<beamalloc.hpp>, <beamalloc/new.hpp>): CXX at C++17.
		std=c11 cc="${CC:-cc} -std=c11"
		if grep -q 'beamalloc\.hpp\|beamalloc/new\.hpp' "$c"; then
			std=c++17 cc="${CXX:-c++} -std=c++17 -x c++"
		fi
		if $cc -pedantic -Wall -Wextra -Werror $SANITIZER_CFLAGS \
		    $flags -I"$top_srcdir/include" -o "$prog" "$c" -x none -L"$libs" -lbeamalloc \
		    >"$prog.log" 2>&1; then
			ok "$name compiles with -std=$std -pedantic -Wall -Wextra -Werror${nif:+ (a NIF library)}"
		else
			notok "$name does not compile"; sed 's/^/# /' "$prog.log"
			continue
		fi
		[ -n "$nif" ] && continue
		if LD_LIBRARY_PATH="$libs" "$prog" >"$prog.log" 2>&1; then
			ok "$name runs and exits 0"
		else
			notok "$name exits with status $?"; sed 's/^/# /' "$prog.log"
		fi
	done
	[ -n "$found" ] || notok "$page(3) has no example program"
done
echo "1..$n"
