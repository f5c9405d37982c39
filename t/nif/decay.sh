#!/bin/sh
# decay.sh - memory goes back to the VM without trim or destroy.
. "$top_srcdir/t/nif/lib.sh"
run_erl decay
