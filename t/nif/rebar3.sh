#!/bin/sh
# rebar3.sh - examples/rebar3 as its author runs it: `rebar3 eunit` in a
# copy of the project, offline (no dependencies, HOME and the cache in a
# scratch directory), against this build laid out like an installation
# with the archive only (no libbeamalloc.so to fall back on).  Its
# c_src/Makefile gets every flag from pkg-config beamalloc-nif.  Asserts:
# rebar3 builds and passes the EUnit tests (buffers from the module-wide
# GPA freed by the destructor; the GPA kept across an upgrade and the purge
# of the old code), and priv/'s NIF is self-contained.
# SKIPs without rebar3, unless BEAMALLOC_REQUIRE_TOOLS=1.
. "$top_srcdir/t/nif/lib.sh"
need_beam
need_project_tool rebar3 rebar3
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
	echo "1..0 # SKIP rebar3 runs its own erl, which cannot load a NIF built with ASan"
	exit 0
fi
echo 1..3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-rebar3.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
fake_prefix "$scratch/prefix" "$top_builddir/lib/.libs/libbeamalloc.a"
cp -R "$top_srcdir/examples/rebar3" "$scratch/project"
chmod -R u+w "$scratch/project"
mkdir -p "$scratch/home"

if (cd "$scratch/project" &&
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL HOME="$scratch/home" \
	REBAR_CACHE_DIR="$scratch/home/cache" REBAR_OFFLINE=1 REBAR_COLOR=none \
	PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig" \
	CFLAGS="-O2 -g -Wall -Wextra -Werror" \
	ERL_CRASH_DUMP="$scratch/erl_crash.dump" \
	rebar3 eunit) >"$scratch/log" 2>&1; then
	echo "ok 1 - rebar3 eunit: c_src/Makefile via pre_hooks, then the EUnit tests"
else
	echo "not ok 1 - rebar3 eunit failed"
fi
{ cat "$scratch/log"; echo; } | sed 's/^/# /'
if grep -a -q '3 tests, 0 failures' "$scratch/log"; then
	echo "ok 2 - all 3 EUnit tests ran and passed"
else
	echo "not ok 2 - not '3 tests, 0 failures'"
fi
so=$scratch/project/priv/beamalloc_buf_nif.so
if found=$(self_contained "$so"); then
	echo "ok 3 - priv/beamalloc_buf_nif.so is self-contained: $found"
else
	echo "not ok 3 - priv/beamalloc_buf_nif.so: $found"
fi
