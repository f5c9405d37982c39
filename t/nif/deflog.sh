#!/bin/sh
# deflog.sh - the default report of a purged NIF library's logger is taken
# back, for the other NIF libraries linked with libbeamalloc.so.
. "$top_srcdir/t/nif/lib.sh"
extra_modules="deflog_a deflog_b"
run_erl deflog
