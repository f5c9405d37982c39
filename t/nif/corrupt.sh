#!/bin/sh
# corrupt.sh - the GPA's canary, junk, quarantine and guard pages in a real BEAM.
. "$top_srcdir/t/nif/lib.sh"
run_erl corrupt
