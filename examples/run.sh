#!/bin/sh
# run.sh - build the example NIF against the installed libbeamalloc (as
# pkg-config finds it) and run it in a real erl, which prints what it
# shows.  Build products go to $EXAMPLE_BUILD_DIR (default: this
# directory); LINK=shared links libbeamalloc.so instead of the archive
# (see Makefile).  Exits non-zero if anything is not as expected.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${EXAMPLE_BUILD_DIR:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pc=${PKG_CONFIG:-pkg-config}
link=${LINK:-static}

echo "libbeamalloc $($pc --modversion beamalloc) in $($pc --variable=libdir beamalloc)"
if [ "$link" = static ]; then
	echo "  pkg-config --cflags --libs beamalloc-nif: $($pc --cflags --libs beamalloc-nif | sed 's/ *$//')"
else
	echo "  pkg-config --cflags --libs beamalloc: $($pc --cflags --libs beamalloc | sed 's/ *$//')"
fi
# A standalone build: no flags inherited from a calling make.
MAKEFLAGS= MAKELEVEL= make -s -C "$here" O="$out" LINK="$link"

so=$out/beamalloc_example.so
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ')
exports=$(nm -D --defined-only "$so" | awk '{ print $3 }' | tr '\n' ' ')
echo "beamalloc_example.so ($link): NEEDED ${needed% }; exports ${exports% }"
if [ "$link" = static ]; then
	case " $needed" in *" libbeamalloc"*)
		echo "UNEXPECTED: a statically linked NIF needs libbeamalloc.so"; exit 1;; esac
	case " $exports" in *" beamalloc_"*)
		echo "UNEXPECTED: the NIF exports beamalloc_* symbols"; exit 1;; esac
fi
exec "${ERL:-erl}" -noshell -pa "$out" -eval 'beamalloc_example:main(), halt().'
