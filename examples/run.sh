#!/bin/sh
# run.sh - build the example NIF against the installed libbeamalloc (as
# pkg-config finds it) and run it in a real erl, which prints what it
# shows.  Build products go to $EXAMPLE_BUILD_DIR (default: this
# directory).  Exits non-zero if anything is not as expected.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${EXAMPLE_BUILD_DIR:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pc=${PKG_CONFIG:-pkg-config}

echo "libbeamalloc $($pc --modversion beamalloc) in $($pc --variable=libdir beamalloc)"
echo "  pkg-config --cflags --libs beamalloc: $($pc --cflags --libs beamalloc)"
# A standalone build: no flags inherited from a calling make.
MAKEFLAGS= MAKELEVEL= make -s -C "$here" O="$out"
exec "${ERL:-erl}" -noshell -pa "$out" -eval 'beamalloc_example:main(), halt().'
