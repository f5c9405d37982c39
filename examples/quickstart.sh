#!/bin/sh
# quickstart.sh - from a fresh Debian 12 machine to the example NIF running
# in a real erl: install the build and Erlang packages, build libbeamalloc,
# install it under /usr/local, then build and run examples/ against the
# installed library through pkg-config.  Run from the top of the source tree
# as root or as a user with sudo.
set -eu

cd "$(dirname "$0")/.."
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	build-essential autoconf automake libtool pkg-config \
	erlang-base erlang-dev erlang-tools erlang-eunit rebar3 elixir \
	valgrind mandoc man-db libdw-dev dwz >/dev/null

[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure --enable-werror
make -j"$(nproc)"
$SUDO make install
$SUDO ldconfig

sh examples/run.sh
