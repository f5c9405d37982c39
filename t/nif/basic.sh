#!/bin/sh
# basic.sh - base and wide allocators inside a real erl.
. "$top_srcdir/t/nif/lib.sh"
run_erl basic
