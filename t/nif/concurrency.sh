#!/bin/sh
# concurrency.sh - the global GPA shared by 1000 processes on 4 normal
# schedulers (whatever the machine), dirty CPU NIFs and NIF threads.
. "$top_srcdir/t/nif/lib.sh"
run_erl concurrency +S 4:4 +SDcpu 2:2
