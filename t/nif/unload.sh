#!/bin/sh
# unload.sh - purge and reload a NIF linked with libbeamalloc.
. "$top_srcdir/t/nif/lib.sh"
extra_modules="unload_mod keeper"
run_erl unload
