# cxx-lib.sh - sourced by the C++ tests (t/cxx-compilers.sh, t/nif/cxx-*.sh).
#
#   cxx_pick gcc|clang
#
# sets cxx (the compiler configure found: BEAMALLOC_GXX or BEAMALLOC_CLANGXX), cxx_name
# and cxx_flags (-std=c++17 -Wall -Wextra -Werror -O2 -g, plus the sanitizer
# flags of a sanitizer build: -g, as t/cxx.cpp's leak-site test reads its
# own file and line), or returns 1 with the reason in cxx_why.
# A missing compiler is a failure (Bail out!) when BEAMALLOC_REQUIRE_TOOLS=1.
# In a sanitizer build only the compiler of CC's family is used: the other
# one's sanitizer runtime is not the one the library was built with.

cxx_pick() {
	case $1 in
	gcc) cxx=${BEAMALLOC_GXX:-no}; cxx_pkg=g++ ;;
	clang) cxx=${BEAMALLOC_CLANGXX:-no}; cxx_pkg=clang ;;
	esac
	cxx_name=$cxx
	cxx_flags="-std=c++17 -Wall -Wextra -Werror -O2 -g ${SANITIZER_CFLAGS:-}"
	if [ -z "$cxx" ] || [ "$cxx" = no ] || ! command -v "$cxx" >/dev/null 2>&1; then
		if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
			echo "Bail out! no $1 C++ compiler (install $cxx_pkg) but BEAMALLOC_REQUIRE_TOOLS=1"
			exit 1
		fi
		cxx_why="no $1 C++ compiler (install $cxx_pkg)"
		return 1
	fi
	if [ -n "${SANITIZER_CFLAGS:-}" ]; then
		cc_family=gcc
		case $("${CC:-cc}" --version 2>/dev/null | head -n 1) in
		*clang*) cc_family=clang ;;
		esac
		[ "$1" = "$cc_family" ] && return 0
		cxx_why="sanitizer build: $cxx's runtime is not the one ${CC:-cc} linked"
		return 1
	fi
	return 0
}
