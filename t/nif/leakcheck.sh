#!/bin/sh
# leakcheck.sh - <beamalloc/nif.h>: per-NIF leak check and decoding.
. "$top_srcdir/t/nif/lib.sh"
# The lines the leak sites must name.
src=$top_srcdir/t/nif/leakcheck_nif.c
leak_sites "$src"
run_erl leakcheck
