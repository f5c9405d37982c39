#!/bin/sh
# man.sh - the manual pages are complete and clean:
#  - every function, function-like macro and type of the public headers,
#    and every symbol the library exports, has a page (its own, or an
#    alias of man/aliases) whose NAME section lists it;
#  - every alias of man/aliases, made a symbolic link as `make install`
#    makes it, resolves to a page that lists it, and no page is a `.so`
#    request;
#  - every page has mdoc's sections in order, and its cross-references to
#    our pages resolve;
#  - every page and alias is shipped (listed in mk/dist.am);
#  - mandoc -Tlint -W warning, and groff with every warning on (man
#    --warnings=w, a superset of lintian's man --warnings, at 80 and 120
#    columns) say nothing, and lexgrog reads a whatis entry.
# Without mandoc or man the lint checks SKIP, unless
# BEAMALLOC_REQUIRE_TOOLS=1 (CI), where a missing tool is a failure.

man="$top_srcdir/man"
hdr="$top_srcdir/include/beamalloc.h"
nifhdr="$top_srcdir/include/beamalloc/nif.h"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	d=$1; shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/beamalloc-man.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
# A man3 directory as `make install` lays it out: the pages, and each
# alias of man/aliases a symbolic link to its page.
mkdir "$scratch/man3"
names_of() { awk '$1 == ".Nm" && $2 != "" { print $2 } /^\.Sh SYNOPSIS/ { exit }' "$1"; }

pages= aliases=
for f in "$man"/*.3; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	pages="$pages ${f##*/}"
	cp "$f" "$scratch/man3/"
done
if [ -z "$pages" ]; then
	echo "Bail out! no pages in $man"; exit 1
fi
while read -r alias page; do
	case $alias in ''|'#'*) continue;; esac
	aliases="$aliases $alias.3"
	ln -s "$page.3" "$scratch/man3/$alias.3"
done < "$man/aliases"

# 1. Every declared function, function-like macro and constant macro
# (BEAMALLOC_VERSION ...; not the include guards, nor the attribute
# helpers, defined empty or as __attribute__) of the installed headers
# (names ending in _ are private helpers), and every symbol the built
# library exports, has a page listing it.
lib="$top_builddir/lib/.libs/libbeamalloc.so"
for fn in $({ cat "$hdr" "$nifhdr" 2>/dev/null |
    grep -oE '\b(beamalloc_[a-z0-9_]+|BEAMALLOC_[A-Z_]+)[[:space:]]*\(' |
    tr -d ' (' | grep -v '_$'
    cat "$hdr" "$nifhdr" 2>/dev/null |
    grep -E '^#[[:space:]]*define[[:space:]]+BEAMALLOC_[A-Z0-9_]+[[:space:]]+[^[:space:]]' |
    grep -v '__attribute__' |
    sed -E 's/^#[[:space:]]*define[[:space:]]+([A-Z0-9_]+).*/\1/' | grep -v '_$'
    cat "$hdr" "$nifhdr" 2>/dev/null | grep -E '^typedef' |
    grep -oE '\(\*beamalloc_[a-z0-9_]+\)|^typedef (struct|enum) beamalloc_[a-z0-9_]+' |
    grep -oE 'beamalloc_[a-z0-9_]+'
    [ -f "$lib" ] && nm -D --defined-only "$lib" 2>/dev/null |
    awk '$2 ~ /^[TDBRVWiu]$/ { sub(/@.*/, "", $3); print $3 }'; } | sort -u); do
	f="$scratch/man3/$fn.3"
	if [ ! -e "$f" ]; then notok "$fn has a page: no man/$fn.3 nor alias"; continue; fi
	[ -L "$f" ] && f="$scratch/man3/$(readlink "$f")"
	check "$fn has a page (${f##*/}) listing it" \
	    sh -c '[ -f "$1" ] && awk "\$1 == \".Nm\" { print \$2 }" "$1" | grep -qx "$2"' \
	    sh "$f" "$fn"
done

# 2. Aliases: a link that resolves to a page listing the alias's name;
# in a git checkout also the same link (so man -l works there; a dist
# tarball has none), never a page of its own; no page is a .so request.
for a in $aliases; do
	name=${a%.3}
	target=$(readlink "$scratch/man3/$a")
	if { [ ! -e "$man/$a" ] || { [ -L "$man/$a" ] &&
	    [ "$(readlink "$man/$a")" = "$target" ]; }; } &&
	   [ -f "$scratch/man3/$a" ] && [ -f "$man/$target" ] &&
	   names_of "$man/$target" | grep -qx "$name"; then
		ok "alias $a -> $target"
	else
		notok "alias $a -> $target: no such page, or it does not list $name"
	fi
done
for p in $pages; do
	check "$p is a page, not a .so request" sh -c '! grep -q "^\.so " "$1"' sh "$man/$p"
done

# 3. Sections, in mdoc's conventional order; cross-references resolve.
want='NAME LIBRARY SYNOPSIS DESCRIPTION RETURN_VALUES EXAMPLES ERRORS SEE_ALSO'
for p in $pages; do
	got=$(sed -n 's/^\.Sh //p' "$man/$p" | tr ' ' _ | tr '\n' ' ')
	# The wanted sections must appear in this order (others may follow).
	seq=$(for s in $got; do case " $want " in *" $s "*) printf '%s ' "$s";; esac; done)
	check "$p has sections $want in order" [ "$seq" = "$want " ]
	bad=
	for x in $(awk '$1 == ".Xr" && $2 ~ /^beamalloc/ && $3 ~ /^3/ { print $2 }' "$man/$p"); do
		[ -f "$scratch/man3/$x.3" ] || bad="$bad $x"
	done
	check "$p: every .Xr to our pages resolves${bad:+ (missing:$bad)}" [ -z "$bad" ]
done

# 4. Shipped: each page is listed in mk/dist.am (make distcheck relies on it).
for f in $pages; do
	check "man/$f is listed in mk/dist.am" grep -q "man/$f\b" "$top_srcdir/mk/dist.am"
done

# 5. The linters.
need_tool() { # need_tool TOOL PACKAGE: 0 if present; else skip or fail
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${BEAMALLOC_REQUIRE_TOOLS:-0}" = 1 ]; then
		notok "$1 is missing (install $2) but BEAMALLOC_REQUIRE_TOOLS=1"
	else
		skip "$1 not installed (install $2)"
	fi
	return 1
}

cd "$scratch" || exit 1
if need_tool mandoc mandoc; then
	for p in $pages; do
		mandoc -Tlint -W warning "man3/$p" 2>&1 |
			grep -v 'outdated mandoc.db' > "$scratch/out"
		if [ -s "$scratch/out" ]; then
			notok "mandoc -Tlint: $p"; sed 's/^/# /' "$scratch/out"
		else
			ok "mandoc -Tlint: $p"
		fi
	done
fi
if need_tool man man-db && need_tool lexgrog man-db; then
	for p in $pages; do
		: > "$scratch/out"
		for w in 80 120; do
			env -i PATH="$PATH" LC_ALL=C.UTF-8 MANROFFSEQ= MANWIDTH=$w \
			    man --warnings=w -E UTF-8 -l -Tutf8 -Z "man3/$p" \
			    2>>"$scratch/out" >/dev/null
		done
		if [ -s "$scratch/out" ]; then
			notok "man --warnings=w: $p"; sed 's/^/# /' "$scratch/out"
		else
			ok "man --warnings=w: $p (all groff warnings, 80 and 120 columns)"
		fi
	done
	# Literal blocks are not filled: keep every line in 80 columns.
	for p in $pages; do
		wide=$(env -i PATH="$PATH" LC_ALL=C.UTF-8 MANWIDTH=80 \
		    man -E UTF-8 -l "man3/$p" 2>/dev/null |
		    LC_ALL=C.UTF-8 grep -c '^.\{81,\}')
		[ "$wide" = 0 ] && wide= || wide=" ($wide lines wider)"
		check "$p fits in 80 columns$wide" [ -z "$wide" ]
	done
	for p in $pages; do
		check "lexgrog reads the whatis entry of $p" \
		    sh -c 'LC_ALL=C.UTF-8 lexgrog "$1" >/dev/null 2>&1' sh "man3/$p"
	done
	# man finds every alias through its link, in the laid-out tree.
	for a in $aliases; do
		got=$(env -i PATH="$PATH" LC_ALL=C.UTF-8 MANPATH="$scratch" MANWIDTH=80 \
		    man 3 "${a%.3}" 2>/dev/null | grep -c "${a%.3}")
		check "man 3 ${a%.3} shows its page through the link" [ "${got:-0}" -gt 0 ]
	done
fi

echo "1..$n"
