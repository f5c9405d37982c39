#!/bin/sh
# mix.sh - examples/mix as its author runs it: `mix test` in a copy of the
# project, offline (no dependencies, no Hex: HOME and MIX_HOME in a scratch
# directory, MIX_ENV=test), against this build laid out like an
# installation with the archive only.  Its compiler task runs make in
# c_src/, whose Makefile gets every flag from pkg-config beamalloc-nif.
# Asserts: mix builds and passes the ExUnit tests (a leak-checked sum, a
# badarg, the memory_leak raised for a leaking NIF), and priv/'s NIF is
# self-contained.  SKIPs without elixir, unless BEAMALLOC_REQUIRE_TOOLS=1.
. "$top_srcdir/t/nif/lib.sh"
need_beam
need_project_tool mix elixir
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
	echo "1..0 # SKIP mix runs its own erl, which cannot load a NIF built with ASan"
	exit 0
fi
echo 1..3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-mix.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
fake_prefix "$scratch/prefix" "$top_builddir/lib/.libs/libbeamalloc.a"
cp -R "$top_srcdir/examples/mix" "$scratch/project"
chmod -R u+w "$scratch/project"
mkdir -p "$scratch/home"

if (cd "$scratch/project" &&
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL HOME="$scratch/home" \
	MIX_HOME="$scratch/home/mix" HEX_OFFLINE=1 MIX_ENV=test \
	PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig" \
	CFLAGS="-O2 -g -Wall -Wextra -Werror" \
	ERL_CRASH_DUMP="$scratch/erl_crash.dump" \
	mix test --seed 0) >"$scratch/log" 2>&1; then
	echo "ok 1 - mix test: make in c_src/ by the project's compiler, then the ExUnit tests"
else
	echo "not ok 1 - mix test failed"
fi
{ cat "$scratch/log"; echo; } | sed 's/^/# /'
if grep -a -q '^3 tests, 0 failures' "$scratch/log"; then
	echo "ok 2 - all 3 ExUnit tests ran and passed"
else
	echo "not ok 2 - not '3 tests, 0 failures'"
fi
so=$scratch/project/priv/beamalloc_sum_nif.so
if found=$(self_contained "$so"); then
	echo "ok 3 - priv/beamalloc_sum_nif.so is self-contained: $found"
else
	echo "not ok 3 - priv/beamalloc_sum_nif.so: $found"
fi
