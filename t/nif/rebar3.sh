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
project_setup rebar3 rebar3
if project_run REBAR_CACHE_DIR="$scratch/home/cache" REBAR_OFFLINE=1 \
    REBAR_COLOR=none rebar3 eunit; then
	echo "ok 1 - rebar3 eunit: c_src/Makefile via pre_hooks, then the EUnit tests"
else
	echo "not ok 1 - rebar3 eunit failed"
fi
project_results '3 tests, 0 failures' beamalloc_buf_nif.so
