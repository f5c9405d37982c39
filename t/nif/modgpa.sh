#!/bin/sh
# modgpa.sh - a GPA per NIF library across load, upgrade and unload.
. "$top_srcdir/t/nif/lib.sh"
extra_modules=modgpa_mod
run_erl modgpa
