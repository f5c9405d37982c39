#!/bin/sh
# options.sh - BEAMALLOC_GPA_OPTIONS, through t/optprint: each name sets
# its config field, a bad item warns once and keeps every default, the
# variable is read once, a field set by the program wins, and traces=N
# turns on traces in a program that was not changed.
prog=${top_builddir:-.}/t/optprint
scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-options.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
defaults='traces=0 sample=0 safety=1 abort=0 canary=0 junk=0 quarantine=0 guard_sample=0 decay=0 thread_safe=1'
n=0

ok() {	# ok COND-STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
# run VALUE [ARG]: optprint under BEAMALLOC_GPA_OPTIONS=VALUE ("-" unsets)
run() {
	if [ "$1" = - ]; then
		env -u BEAMALLOC_GPA_OPTIONS "$prog" ${2:-} >"$scratch/out" 2>"$scratch/err"
	else
		BEAMALLOC_GPA_OPTIONS=$1 "$prog" ${2:-} >"$scratch/out" 2>"$scratch/err"
	fi
}
first() { head -n 1 "$scratch/out"; }
quiet() { [ ! -s "$scratch/err" ]; }

echo 1..25
run -
[ "$(first)" = "$defaults" ] && quiet; ok $? "unset: the defaults, nothing on stderr"
run ''
[ "$(first)" = "$defaults" ] && quiet; ok $? "empty: the defaults, nothing on stderr"
run 'traces=8,sample=1024,safety=0,abort=1,canary=1,junk=1,quarantine=64k,guard_sample=1000,decay=250'
[ "$(first)" = 'traces=8 sample=1024 safety=0 abort=1 canary=1 junk=1 quarantine=65536 guard_sample=1000 decay=250 thread_safe=1' ] && quiet
ok $? "every name sets its field (quarantine=64k is 65536 bytes): $(first)"
run ',traces=32,,quarantine=3M,'
[ "$(first)" = 'traces=32 sample=0 safety=1 abort=0 canary=0 junk=0 quarantine=3145728 guard_sample=0 decay=0 thread_safe=1' ] && quiet
ok $? "empty items are skipped; traces=32 is the maximum: $(first)"

# Bad items: the defaults kept, and exactly one line on stderr naming it.
for bad in 'traces=8,colour=1' 'traces=33' 'safety=2' 'traces=-1' \
    'traces=0x10' 'traces=' 'quarantine=1t' 'sample' 'canary=1,junk=yes' \
    'guard_sample=99999999999' 'traces= 8' 'canary=1,canary=0'; do
	run "$bad"
	item=${bad##*,}
	[ "$(first)" = "$defaults" ] && [ "$(wc -l <"$scratch/err")" -eq 1 ] &&
	    grep -qF "BEAMALLOC_GPA_OPTIONS: '$item'" "$scratch/err"
	ok $? "'$bad': the defaults kept, one warning: $(cat "$scratch/err")"
done

run 'traces=5' reread
[ "$(sed -n 2p "$scratch/out")" = 'traces=5 sample=0 safety=1 abort=0 canary=0 junk=0 quarantine=0 guard_sample=0 decay=0 thread_safe=1' ]
ok $? "read once per process: changing the variable later changes nothing"

# A program that was not changed: without traces its leak report names the
# call site only (frame #0); with traces=8 the chain to main follows.
run - leak
grep -q '^beamalloc: leak: 40 bytes' "$scratch/err" && grep -q '#0 ' "$scratch/err" &&
    ! grep -q '#1 ' "$scratch/err"
ok $? "no options: the leak report names the call site only"
run 'traces=8' leak
grep -q '^beamalloc: leak: 40 bytes' "$scratch/err" && grep -q '#0 .*optprint' "$scratch/err" &&
    grep -q '#1 ' "$scratch/err"
ok $? "traces=8: the same binary's leak report has the allocation trace"
sed 's/^/# /' "$scratch/err"
run 'traces=8' leak0
grep -q '^beamalloc: leak: 40 bytes' "$scratch/err" && ! grep -q '#1 ' "$scratch/err"
ok $? "traces=8, but the program sets stack_trace_depth = 0 itself: it wins"

# BEAMALLOC_GPA_TRACES (0.1's): the global GPA's trace depth; a bad value
# warns once and is ignored.
BEAMALLOC_GPA_TRACES=8 "$prog" gleak >"$scratch/out" 2>"$scratch/err"
grep -q '^beamalloc: leak: 40 bytes' "$scratch/err" && grep -q '#1 ' "$scratch/err" &&
    ! grep -q 'BEAMALLOC_GPA_TRACES' "$scratch/err"
ok $? "BEAMALLOC_GPA_TRACES=8: the global GPA's leak report has the allocation trace"
for bad in abc -1 33; do
	BEAMALLOC_GPA_TRACES=$bad "$prog" gleak >"$scratch/out" 2>"$scratch/err"
	grep -q '^beamalloc: leak: 40 bytes' "$scratch/err" && ! grep -q '#1 ' "$scratch/err" &&
	    [ "$(grep -c "BEAMALLOC_GPA_TRACES: '$bad'" "$scratch/err")" -eq 1 ]
	ok $? "BEAMALLOC_GPA_TRACES=$bad: one warning, no traces: $(grep TRACES "$scratch/err")"
done
# The global GPA made again after a failed try reads the variable once.
BEAMALLOC_GPA_TRACES=abc "$prog" gretry >"$scratch/out" 2>"$scratch/err"
if grep -q '^gretry: skip' "$scratch/out"; then
	echo "ok $((n += 1)) # SKIP a checker keeps its own address space: no RLIMIT_AS"
else
	grep -q '^gretry: 0 1$' "$scratch/out" &&
	    [ "$(grep -c "BEAMALLOC_GPA_TRACES: 'abc'" "$scratch/err")" -eq 1 ]
	ok $? "the global GPA made at the second try: one warning ($(grep -c TRACES "$scratch/err"); $(grep gretry "$scratch/out"))"
fi
