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
project_setup mix mix
if project_run MIX_HOME="$scratch/home/mix" HEX_OFFLINE=1 MIX_ENV=test \
    mix test --seed 0; then
	echo "ok 1 - mix test: make in c_src/ by the project's compiler, then the ExUnit tests"
else
	echo "not ok 1 - mix test failed"
fi
project_results '^3 tests, 0 failures' beamalloc_sum_nif.so
