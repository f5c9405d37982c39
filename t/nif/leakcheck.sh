#!/bin/sh
# leakcheck.sh - <beamalloc/nif.h>: per-NIF leak check and decoding.
. "$top_srcdir/t/nif/lib.sh"
# The lines of leaky_body's two allocations, which the sites must name.
src=$top_srcdir/t/nif/leakcheck_nif.c
LEAK_SITE_N=$(grep -n 'SITE N \*/' "$src" | cut -d: -f1)
LEAK_SITE_100=$(grep -n 'SITE 100 \*/' "$src" | cut -d: -f1)
LEAK_SITE_LIST=$(grep -n 'SITE LIST \*/' "$src" | cut -d: -f1)
LEAK_SITE_OUTLINE=$(grep -n 'SITE OUTLINE \*/' "$src" | cut -d: -f1)
export LEAK_SITE_N LEAK_SITE_100 LEAK_SITE_LIST LEAK_SITE_OUTLINE
run_erl leakcheck
