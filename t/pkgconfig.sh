#!/bin/sh
# pkgconfig.sh - what `make install` puts in place works for a user: the
# tree is installed into a scratch DESTDIR, then t/consumer.c is built
# there with nothing but `pkg-config --cflags --libs beamalloc` (shared)
# and `pkg-config --static --cflags --libs beamalloc` (a fully static
# program, so Libs.private must be complete), and both run; the installed
# man pages resolve with man -w.
# pkg-config and man SKIP when missing, unless BEAMALLOC_REQUIRE_TOOLS=1.

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
finish() { echo "1..$n"; exit 0; }
need_tool() { # need_tool TOOL PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		notok "$1 is missing (install $2) but BEAMALLOC_REQUIRE_TOOLS=1"
	else
		skip "$1 not installed (install $2)"
	fi
	return 1
}

pkgconfig=${PKG_CONFIG:-pkg-config}
need_tool "$pkgconfig" pkgconf || finish

scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-pc.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
root=$scratch/root

# A sub-make of our own, not part of the running make's job pool.
if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -C "$top_builddir" \
    install DESTDIR="$root" >"$scratch/install.log" 2>&1; then
	ok "make install DESTDIR=..."
else
	notok "make install DESTDIR=... failed"
	sed 's/^/# /' "$scratch/install.log" | tail -n 20
	finish
fi

libdir=$("$pkgconfig" --variable=libdir "$top_builddir/beamalloc.pc")
pc=$root$libdir/pkgconfig/beamalloc.pc
if [ -f "$pc" ]; then ok "beamalloc.pc installed in \$(libdir)/pkgconfig"
else notok "no $pc"; finish; fi

# pkg-config reads the installed file; the sysroot maps -I/-L into DESTDIR.
PKG_CONFIG_LIBDIR=$root$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
PKG_CONFIG_PATH=
export PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH

hver=$(sed -n 's/^#define BEAMALLOC_VERSION "\(.*\)"$/\1/p' "$top_srcdir/include/beamalloc.h")
pver=$("$pkgconfig" --modversion beamalloc)
if [ -n "$pver" ] && [ "$pver" = "$hver" ]; then ok "pkg-config --modversion is $pver, as in the header"
else notok "pkg-config --modversion '$pver' but the header says '$hver'"; fi
for field in Name Description Version Libs Libs.private Cflags; do
	if grep -q "^$field:" "$pc"; then ok "beamalloc.pc has $field"
	else notok "beamalloc.pc lacks $field"; fi
done

cflags=$("$pkgconfig" --cflags beamalloc)
libs=$("$pkgconfig" --libs beamalloc)
# The consumer is built in the scratch directory, away from the source
# tree's headers: only what pkg-config says may find them.
cp "$top_srcdir/t/consumer.c" "$scratch/consumer.c"
cd "$scratch" || exit 1
cc=${CC:-cc}
if $cc -std=c11 -Wall -Wextra -Werror $SANITIZER_CFLAGS $cflags -o shared \
    consumer.c $libs >cc.log 2>&1; then
	ok "shared: cc consumer.c \$(pkg-config --cflags --libs beamalloc)"
else
	notok "shared build failed: $cflags ... $libs"; sed 's/^/# /' cc.log
fi
if [ -x shared ]; then
	if LD_LIBRARY_PATH=$root$libdir ./shared >run.log 2>&1; then
		ok "shared: the consumer runs"
	else
		notok "shared: the consumer failed"; sed 's/^/# /' run.log
	fi
	where=$(LD_LIBRARY_PATH=$root$libdir ldd ./shared | awk '/libbeamalloc/ { print $3 }')
	case $where in
	"$root$libdir"/libbeamalloc.so.0) ok "shared: linked to the installed libbeamalloc.so.0";;
	*) notok "shared: libbeamalloc resolves to '$where'";;
	esac
fi

if [ -n "$SANITIZER_CFLAGS" ]; then
	skip "static: sanitizer builds cannot link -static"
	skip "static: the consumer runs"
else
	slibs=$("$pkgconfig" --static --libs beamalloc)
	if $cc -std=c11 -Wall -Wextra -Werror -static \
	    $("$pkgconfig" --static --cflags beamalloc) -o static consumer.c \
	    $slibs >cc.log 2>&1 &&
	   ! readelf -d static 2>/dev/null | grep -q NEEDED; then
		ok "static: cc -static consumer.c \$(pkg-config --static --libs beamalloc)"
	else
		notok "static build failed: ... $slibs"; sed 's/^/# /' cc.log
	fi
	if [ -x static ] && ./static >run.log 2>&1; then
		ok "static: the consumer runs"
	else
		notok "static: the consumer failed"; sed 's/^/# /' run.log 2>/dev/null
	fi
fi

# The man pages: every alias reaches its page through the installed tree.
if need_tool man man-db; then
	man3=$(find "$root" -type d -name man3 | head -n 1)
	mandir=${man3%/man3}
	[ -n "$man3" ] || man3=/nonexistent
	for name in beamalloc beamalloc_gpa_create beamalloc_alloc_aligned; do
		got=$(env -i PATH="$PATH" MANPATH="$mandir" man -w "$name" 2>/dev/null)
		case $got in
		"$man3"/*) ok "man -w $name finds $got";;
		*) notok "man -w $name: '$got'";;
		esac
	done
fi
finish
