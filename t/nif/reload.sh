#!/bin/sh
# reload.sh - chains and threads across an upgrade to the same NIF
# library file.
. "$top_srcdir/t/nif/lib.sh"
extra_modules=reload_mod
run_erl reload
