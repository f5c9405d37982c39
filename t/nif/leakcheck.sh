#!/bin/sh
# leakcheck.sh - <beamalloc/nif.h>: per-NIF leak check and decoding.
. "$top_srcdir/t/nif/lib.sh"
run_erl leakcheck
