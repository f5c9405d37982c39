#!/bin/sh
# follow.sh - stats maps, chains, threads and owned resources (<beamalloc/nif.h>).
. "$top_srcdir/t/nif/lib.sh"
run_erl follow
