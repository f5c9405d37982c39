#!/bin/sh
# owned.sh - resources that own their allocator across an upgrade of their
# NIF library and the purge of the old code.
. "$top_srcdir/t/nif/lib.sh"
extra_modules=owned_mod
run_erl owned
