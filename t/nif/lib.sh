# lib.sh - shared by the real-VM tests (sourced by t/nif/*.sh).
#
#   run_erl MODULE [EXTRA_ERL_ARGS...]
#
# compiles t/nif/MODULE.erl and t/nif/tap.erl (and t/nif/M.erl for each M
# in $extra_modules) into a scratch directory, then runs MODULE:main() in a
# real erl -noshell; MODULE prints TAP.  The NIF libraries are found
# through NIF_DIR.  Without erl the test SKIPs,
# unless BEAMALLOC_REQUIRE_BEAM=1 (CI), where a skip is a failure.

nif_dir="$top_builddir/t/nif/.libs"

need_beam() {
	if [ -z "$ERL" ] || [ "$ERL" = no ] || [ -z "$ERLC" ] || [ "$ERLC" = no ] ||
	   [ ! -d "$nif_dir" ]; then
		if [ "${BEAMALLOC_REQUIRE_BEAM:-0}" = 1 ]; then
			echo "Bail out! erl/erlc or the test NIFs are missing but BEAMALLOC_REQUIRE_BEAM=1"
			exit 1
		fi
		echo "1..0 # SKIP no erl/erlc (install erlang-base erlang-dev)"
		exit 0
	fi
}

run_erl() {
	module=$1; shift
	need_beam
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-nif.XXXXXX") || exit 1
	trap 'rm -rf "$scratch"' EXIT
	extra=
	for m in $extra_modules; do extra="$extra $top_srcdir/t/nif/$m.erl"; done
	"$ERLC" -o "$scratch" "$top_srcdir/t/nif/tap.erl" "$top_srcdir/t/nif/$module.erl" $extra || {
		echo "Bail out! erlc failed for $module.erl"; exit 1; }
	# A crash dump (a NIF that failed to load) stays out of the build tree.
	ERL_CRASH_DUMP=$scratch/erl_crash.dump NIF_DIR=$nif_dir LD_LIBRARY_PATH="$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$ERL" "$@" -noshell -pa "$scratch" -eval "$module:main()"
}
