#!/bin/sh
# cxx-gcc.sh - the C++ NIF test (t/nif/cxx-lib.sh) built by g++.
cxx_family=gcc
. "$top_srcdir/t/nif/cxx-lib.sh"
