#!/bin/sh
# run.sh - the whole benchmark suite, as `make bench` runs it (from the
# build tree).  Each step is skipped, with a note, when its tool is missing.
#
#   1. allocbench: every allocator x every workload, one process, pinned
#   2. allocbench --preload-as: mimalloc/jemalloc/tcmalloc as the process
#      malloc (LD_PRELOAD), a cross-check of the dlopen figures
#   3. allocbench --callgrind: instructions per operation (valgrind)
#   4. nifbench inside erl: enif_alloc, BEAM base, GPA, arena (erlang-dev)
#   5. chart.png (gnuplot)
#
# Environment: top_srcdir, top_builddir (set by make), BENCH_OUT (results
# directory), BENCH_CPU (CPU to pin to), BENCH_FLAGS (extra allocbench
# options), BENCH_NIF_REPS, BENCH_NIF_SCALE, ERL, ERLC.
set -eu

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
out=${BENCH_OUT:-bench/out}
cpu=${BENCH_CPU:-1}
flags=${BENCH_FLAGS:-}
bench=$top_builddir/bench/allocbench
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

mkdir -p "$out"
out=$(cd "$out" && pwd)
# jemalloc is built with initial-exec TLS: dlopen needs this tunable.
GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.rtld.optional_static_tls=65536
export GLIBC_TUNABLES

pin=
if command -v taskset >/dev/null 2>&1 && taskset -c "$cpu" true 2>/dev/null; then
	pin="taskset -c $cpu"
fi

note() { printf '=== %s\n' "$*"; }

# chart_table NAME CSV FIELD ALLOC...: $out/chart-NAME.dat, one row per
# workload (CSV field 2, with the scheduler of field 3 when there is
# one), one column per ALLOC: the median in FIELD, "?" when missing.
chart_table() {
	name=$1 csv=$2 field=$3
	shift 3
	awk -F, -v f="$field" -v cols="$*" '
		NR == 1 { sched = ($3 == "scheduler"); next }
		$f != "" {
			k = sched ? $2 "/" $3 : $2
			v[k "," $1] = $f
			if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		}
		END {
			nc = split(cols, c, " ")
			printf "workload"
			for (j = 1; j <= nc; j++) printf " %s", c[j]
			printf "\n"
			for (i = 1; i <= n; i++) {
				printf "%s", order[i]
				for (j = 1; j <= nc; j++) {
					k = order[i] "," c[j]
					printf " %s", (k in v) ? v[k] : "?"
				}
				printf "\n"
			}
		}' "$csv" >"$out/chart-$name.dat"
}

# ---- the machine -----------------------------------------------------------
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "host: $(uname -srm)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) x $(nproc)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	# shellcheck disable=SC1091
	echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
	echo "glibc: $(ldd --version 2>/dev/null | head -1 | sed 's/.* //')"
	echo "compiler: $(${CC:-cc} --version 2>/dev/null | head -1)"
	if command -v dpkg-query >/dev/null 2>&1; then
		for p in libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 erlang-base valgrind gnuplot-nox; do
			echo "package: $p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo absent)"
		done
	fi
	echo "commit: $(git -C "$top_srcdir" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "pinned: ${pin:-no} (threads of the t2_* workloads: CPUs 0 and 1)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

# ---- 1. native --------------------------------------------------------------
note "allocbench (native, all allocators interleaved)"
# shellcheck disable=SC2086
$pin "$bench" --csv="$out/allocbench.csv" --ratios="$out/ratios.csv" $flags \
	| tee "$out/allocbench.txt"

# ---- 2. LD_PRELOAD cross-check ---------------------------------------------
note "allocbench under LD_PRELOAD (the library as the process malloc)"
: >"$out/preload.csv"
for lib in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 \
    tcmalloc:libtcmalloc_minimal.so.4; do
	name=${lib%%:*} so=$libdir/${lib#*:}
	if [ ! -e "$so" ]; then
		echo "skip $name: $so missing"
		continue
	fi
	# shellcheck disable=SC2086
	LD_PRELOAD=$so $pin "$bench" --preload-as="$name-preload" --no-mem \
		--csv="$out/preload.$name.csv" $flags >"$out/preload.$name.txt" 2>&1
	if [ -s "$out/preload.csv" ]; then
		tail -n +2 "$out/preload.$name.csv" >>"$out/preload.csv"
	else
		cat "$out/preload.$name.csv" >>"$out/preload.csv"
	fi
	rm -f "$out/preload.$name.csv"
	sed -n '/^ns\/op median/,/^$/p' "$out/preload.$name.txt" | tail -n +2 | head -1
done

# ---- 3. callgrind -------------------------------------------------------------
if command -v valgrind >/dev/null 2>&1; then
	note "callgrind: instructions per operation (1/50 of the operations)"
	cg=$(mktemp -d "${TMPDIR:-/tmp}/allocbench-cg.XXXXXX")
	# No re-exec for jemalloc's TLS: under valgrind /proc/self/exe is
	# valgrind's own binary.
	BEAMALLOC_BENCH_REEXEC=1 valgrind --tool=callgrind \
		--callgrind-out-file="$cg/cg.out" \
		"$bench" --callgrind --scale=0.02 \
		--workloads=pair64,lifo1000,rand100,rand10k,a64,a4096,reset10k,grow1m \
		>"$out/callgrind.log" 2>&1
	{
		echo "allocator,workload,ops,instructions,instructions_per_op"
		for f in "$cg"/cg.out.*; do
			awk '/^desc: Trigger: Client Request: cell / {
				a = $6; w = $7; n = $8 }
			/^summary:/ { s = $2 }
			END { if (a != "") printf "%s,%s,%d,%d,%.1f\n", a, w, n, s, s / n }' "$f"
		done | sort -t, -k2,2 -k5,5n
	} >"$out/callgrind.csv"
	rm -rf "$cg"
	if command -v column >/dev/null 2>&1; then
		column -s, -t <"$out/callgrind.csv"
	else
		cat "$out/callgrind.csv"
	fi
else
	note "callgrind skipped: install valgrind"
fi

# ---- 4. inside erl -----------------------------------------------------------
nif=$top_builddir/bench/.libs/nifbench_nif.so
if [ -n "${ERL:-}" ] && [ "${ERL:-no}" != no ] && [ -n "${ERLC:-}" ] && [ -e "$nif" ]; then
	note "nifbench inside erl (normal and dirty schedulers)"
	ebin=$(mktemp -d "${TMPDIR:-/tmp}/nifbench.XXXXXX")
	"$ERLC" -o "$ebin" "$top_srcdir/bench/nifbench.erl"
	# One scheduler of each kind, on the pinned CPU.
	NIF_DIR=$top_builddir/bench/.libs \
	LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		$pin "$ERL" +S 1:1 +SDcpu 1:1 -noshell -pa "$ebin" -eval \
		"nifbench:main([\"${BENCH_NIF_REPS:-5}\", \"${BENCH_NIF_SCALE:-1.0}\", \"$out\"])" \
		| tee "$out/nifbench.txt"
	# Blocks handed between schedulers: one scheduler per CPU, unpinned.
	note "nifbench hand-off across $(nproc) schedulers"
	NIF_DIR=$top_builddir/bench/.libs \
	LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		"$ERL" +S "$(nproc):$(nproc)" -noshell -pa "$ebin" -eval \
		"nifbench:handoff_main([\"${BENCH_NIF_REPS:-5}\", \"${BENCH_NIF_SCALE:-1.0}\", \"$out\"])" \
		| tee "$out/nifbench_handoff.txt"
	rm -rf "$ebin"
else
	note "nifbench skipped: needs erl, erlc and erl_nif.h (erlang-base, erlang-dev)"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

# ---- 5. chart -------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
	note "chart"
	chart_table native "$out/allocbench.csv" 6 \
		gpa-fast gpa-safe gpa-trace8 arena beam wide-beam glibc mimalloc \
		jemalloc tcmalloc
	if [ -s "$out/nif.csv" ]; then
		chart_table nif "$out/nif.csv" 5 \
			enif beam gpa-fast gpa-safe arena malloc
	fi
	gnuplot -e "dir='$out'; machine='$(sed -n 's/^cpu: //p' "$out/machine.txt") $(sed -n 's/^date: //p' "$out/machine.txt")'" \
		"$top_srcdir/bench/chart.gp"
	echo "wrote $out/chart.png"
else
	note "chart skipped: install gnuplot-nox"
fi

# ---- summary: the ratios as a Markdown table ----------------------------------
{
	echo "| ratio | workload | medians | minima | target | |"
	echo "| --- | --- | ---: | ---: | --- | --- |"
	awk -F, 'NR > 1 && $1 == "time" { printf "| %s (ns/op) | %s | %.2f | %.2f | %s | %s |\n", $2, $3, $4, $5, $6, $7 }
		NR > 1 && $1 == "memory" { printf "| %s | %s | %.3f | | %s | %s |\n", $2, $3, $4, $6, $7 }' \
		"$out/ratios.csv"
	if [ -s "$out/nif_ratios.csv" ]; then
		awk -F, 'NR > 1 { printf "| %s in erl, normal / dirty scheduler (ns/op) | %s | %.2f / %.2f | %.2f / %.2f | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8, $9 }' \
			"$out/nif_ratios.csv"
	fi
} >"$out/summary.md"

note "results in $out"
