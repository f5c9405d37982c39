#!/bin/sh
# localize-archive.sh - make libbeamalloc.a define nothing but the API.
#
# Usage: localize-archive.sh ARCHIVE   (AR, RANLIB, LD, OBJCOPY, OBJDUMP
# from the environment, as configure found them)
#
# -fvisibility=hidden keeps the library's internal names (ba_*) out of
# libbeamalloc.so, but a static archive has no visibility: each member
# still defines them as globals, so a program with a ba_* name of its own
# fails to link ("multiple definition") or, worse, has its name called by
# the library.  The members are linked into one relocatable object whose
# hidden symbols are then made local, and the archive holds that object
# alone.
# Nothing is lost: a program that uses any of the library already pulled
# in every member, because each one reaches the report and symbolizer
# code.
#
# Objects carrying LTO bytecode only cannot be relinked without the
# compiler; the archive is then left as libtool made it, and said so.
set -eu

archive=$1
: "${AR:=ar}" "${RANLIB:=ranlib}" "${LD:=ld}" "${OBJCOPY:=objcopy}"
: "${OBJDUMP:=objdump}"

[ -f "$archive" ] || exit 0	# --disable-static

tmp=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-localize.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
abs=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")

mkdir "$tmp/x"
(cd "$tmp/x" && $AR x "$abs")
set -- "$tmp"/x/*.o
if [ "$#" -eq 1 ] && [ "$(basename "$1")" = beamalloc.o ]; then
	exit 0			# already done
fi
if $OBJDUMP -h "$@" 2>/dev/null | grep -q '\.gnu\.lto_'; then
	echo "localize-archive.sh: LTO objects in $archive; its internal" \
	    "symbols stay global" >&2
	exit 0
fi

$LD -r -o "$tmp/beamalloc.o" "$@"
# 0.1's ABI is the shared library's (lib/internal.h): its versioned
# names go, and the functions behind them are made local.
$OBJCOPY --localize-hidden --wildcard --strip-symbol='*@BEAMALLOC_*' \
    --localize-symbol='ba_abi01_*' "$tmp/beamalloc.o"
(cd "$tmp" && $AR cr new.a beamalloc.o)
$RANLIB "$tmp/new.a"
mv -f "$tmp/new.a" "$abs"
