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

# beamalloc-nif.pc: erl_nif.h's directory, and the archive linked into a
# shared object (a NIF) that then needs no libbeamalloc.so and exports no
# beamalloc_* symbol; --static adds no second, shared -lbeamalloc.
npc=$root$libdir/pkgconfig/beamalloc-nif.pc
if [ -f "$npc" ]; then ok "beamalloc-nif.pc installed in \$(libdir)/pkgconfig"
else notok "no $npc"; fi
ncflags=$("$pkgconfig" --cflags beamalloc-nif)
# erl_nif.h is outside the DESTDIR: read its directory without the sysroot.
erts=$(env -u PKG_CONFIG_SYSROOT_DIR "$pkgconfig" --variable=erts_includedir beamalloc-nif)
case " $(echo $ncflags) " in
*" $(echo $cflags) -I$root$erts "*)
	ok "pkg-config --cflags beamalloc-nif: beamalloc's, then -I$erts";;
*)	notok "pkg-config --cflags beamalloc-nif: '$ncflags' (beamalloc: '$cflags', erts: '$erts')";;
esac
if [ -n "$ERL_NIF_CFLAGS" ]; then
	if [ "-I$erts" = "$ERL_NIF_CFLAGS" ] && [ -f "$erts/erl_nif.h" ]; then
		ok "beamalloc-nif.pc names configure's erl_nif.h directory ($erts)"
	else
		notok "beamalloc-nif.pc names '$erts', configure found '$ERL_NIF_CFLAGS'"
	fi
fi
nlibs=$("$pkgconfig" --libs beamalloc-nif)
nslibs=$("$pkgconfig" --static --libs beamalloc-nif)
if [ "$(echo "$nlibs" | grep -o -- '-lbeamalloc' | wc -l)" = 1 ] &&
   [ "$(echo "$nslibs" | grep -o -- '-lbeamalloc' | wc -l)" = 1 ]; then
	ok "pkg-config [--static] --libs beamalloc-nif names -lbeamalloc once: $nlibs"
else
	notok "beamalloc-nif libs: '$nlibs', --static: '$nslibs'"
fi
rm -f "$root$libdir"/libbeamalloc.so*	# from here on, only the archive
printf '%s\n' '#include <beamalloc.h>' \
    'int plugin_count(void);' \
    '__attribute__((visibility("default"))) int plugin_count(void) {' \
    '	beamalloc_allocator a = beamalloc_general_purpose();' \
    '	void *p = beamalloc_alloc(a, 64);' \
    '	beamalloc_free(a, p, 64);' \
    '	return p != 0 && beamalloc_in_vm() == 0;' \
    '}' >plugin.c
if $cc -std=c11 -Wall -Wextra -Werror -fPIC -shared $SANITIZER_CFLAGS $ncflags \
    -o plugin.so plugin.c $nlibs >cc.log 2>&1; then
	ok "a shared object links libbeamalloc.a through pkg-config beamalloc-nif (position-independent)"
else
	notok "cc -shared ... \$(pkg-config --libs beamalloc-nif) failed"; sed 's/^/# /' cc.log
fi
if [ -f plugin.so ]; then
	needed=$(readelf -d plugin.so | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ')
	case " $needed" in
	*" libbeamalloc"*|" ") notok "readelf -d plugin.so: NEEDED $needed";;
	*) ok "readelf -d plugin.so: no libbeamalloc.so (NEEDED $needed)";;
	esac
	exports=$(nm -D --defined-only plugin.so | awk '{ print $3 }' | tr '\n' ' ')
	case " $exports" in
	*" beamalloc_"*) notok "nm -D plugin.so exports beamalloc_*: $exports";;
	*" plugin_count "*) ok "nm -D plugin.so: only its own symbols ($exports)";;
	*) notok "nm -D plugin.so: '$exports'";;
	esac
fi

# The man pages: every alias reaches its page through the installed tree.
if need_tool man man-db; then
	man3=$(find "$root" -type d -name man3 | head -n 1)
	mandir=${man3%/man3}
	[ -n "$man3" ] || man3=/nonexistent
	want=$(sed -e '/^#/d' -e '/^$/d' "$top_srcdir/man/aliases" | wc -l)
	links=$(find "$man3" -type l -name '*.3' | while read -r l; do
		[ -f "$l" ] && echo "$l"; done | wc -l)
	if [ "$want" -gt 0 ] && [ "$links" = "$want" ] &&
	   ! grep -l '^\.so ' "$man3"/*.3 >/dev/null 2>&1; then
		ok "the $want aliases are installed as symbolic links that resolve, no .so request"
	else
		notok "$links resolving links in $man3, man/aliases has $want"
	fi
	for name in beamalloc beamalloc_gpa_create beamalloc_alloc_aligned \
	    beamalloc_allocator beamalloc_gpa_config beamalloc_report; do
		got=$(env -i PATH="$PATH" MANPATH="$mandir" man -w "$name" 2>/dev/null)
		case $got in
		"$man3"/*) ok "man -w $name finds $got";;
		*) notok "man -w $name: '$got'";;
		esac
	done
fi
finish
