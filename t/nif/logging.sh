#!/bin/sh
# logging.sh - <beamalloc/nif.h>: findings into Erlang's logger through
# examples/beamalloc_logger.erl, from NIF calls and plain threads.
. "$top_srcdir/t/nif/lib.sh"
LOGGER_LEAK_LINE=$(grep -n '/\* LEAK \*/' "$top_srcdir/t/nif/logger_nif.c" | cut -d: -f1)
export LOGGER_LEAK_LINE
extra_modules="logger_nif ../../examples/beamalloc_logger"
run_erl logging
