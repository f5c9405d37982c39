#!/bin/sh
# trace.sh - the GPA's frame-pointer traces and sampling in a real BEAM,
# on every kind of thread a NIF runs on.
. "$top_srcdir/t/nif/lib.sh"
run_erl trace
