#!/bin/sh
# seed.sh - the seed's GPA and arena tests inside a real erl.
. "$top_srcdir/t/nif/lib.sh"
run_erl seed
