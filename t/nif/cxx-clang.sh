#!/bin/sh
# cxx-clang.sh - the C++ NIF test (t/nif/cxx-lib.sh) built by clang++.
cxx_family=clang
. "$top_srcdir/t/nif/cxx-lib.sh"
