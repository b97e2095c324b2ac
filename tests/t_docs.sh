#!/usr/bin/env bash
# The documentation cannot drift from the program: every subcommand that `clamscanner --help`
# names, every flag that any subcommand's --help prints, and every CLAMSCANNER_* variable in
# src/ must appear in the manual page (a subcommand's flags in that subcommand's own section)
# and in README.md; the page must render without a single groff or man warning.
# Generic on purpose: a new subcommand or flag fails this test until it is documented.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
PAGE=$ROOT/docs/clamscanner.1
README=$ROOT/README.md
if ! command -v groff >/dev/null || ! command -v man >/dev/null; then
  if [ -n "${CI:-}" ]; then
    echo "FAIL: groff or man missing (CI is set; .ci/run must install groff man-db)" >&2
    exit 1
  fi
  echo "SKIP: groff or man-db not installed"
  exit 0
fi

# The page's source as plain text: roff hyphens and font escapes removed, so that
# `\fB\-\-listen\fR` reads `--listen`.
plain() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(dq/"/g' -e 's/\\(aq/'"'"'/g' -e 's/\\c$//' "$@"; }
PAGE_TEXT=$(plain "$PAGE")
README_TEXT=$(cat "$README")

# section SUB: the text of the page's `.SS SUB` subsection, up to the next .SS or .SH.
section() { plain "$PAGE" | awk -v s=".SS $1" '$0 == s {on = 1; next} /^\.S[SH] / {on = 0} on'; }

# has WORD TEXT: WORD occurs in TEXT as a whole flag or name (`--listen` is not `--listen-x`).
has() { grep -qE -- "(^|[^A-Za-z0-9_-])$1([^A-Za-z0-9_-]|\$)" <<<"$2"; }
# expect_has DESCRIPTION WORD TEXT
expect_has() { if has "$2" "$3"; then pass "$1"; else fail "$1: [$2] not found"; fi; }

# flags TEXT: every long flag in TEXT (`--name`, without any `=value`), one per line.
flags() { grep -oE -- '--[a-z][a-z0-9-]*' <<<"$1" | sort -u; }

TOP_HELP=$(timeout 10 "$BIN" --help 2>&1)
expect_eq "--help exits 0" 0 "$("$BIN" --help >/dev/null 2>&1; echo $?)"
expect_eq "--help ends with the manual page's name" "See clamscanner(1)." "$(tail -n 1 <<<"$TOP_HELP")"

# Subcommands: the words after "clamscanner " in the top-level usage.
mapfile -t SUBS < <(grep -oE 'clamscanner [a-z][a-z-]*' <<<"$TOP_HELP" | awk '{print $2}' | sort -u)
check "--help names subcommands (found: ${SUBS[*]})" test "${#SUBS[@]}" -ge 3

checked=0
for flag in $(flags "$TOP_HELP"); do
  expect_has "clamscanner $flag is in the manual page" "$flag" "$PAGE_TEXT"
  expect_has "clamscanner $flag is in README.md" "$flag" "$README_TEXT"
  checked=$((checked + 1))
done
for sub in "${SUBS[@]}"; do
  # stderr too: a subcommand without --help prints its usage with the error.
  # Bounded: a subcommand that ignored --help and started working must not hang the test.
  help=$(timeout 10 "$BIN" "$sub" --help 2>&1 </dev/null)
  text=$(section "$sub")
  check "the manual page has a section .SS $sub" test -n "$text"
  expect_contains "README.md names the subcommand $sub" "clamscanner $sub" "$README_TEXT"
  for flag in $(flags "$help"); do
    # --help and --version are documented once, under "Common options".
    case $flag in --help | --version) continue ;; esac
    expect_has "$sub $flag is in the manual page's $sub section" "$flag" "$text"
    expect_has "$sub $flag is in README.md" "$flag" "$README_TEXT"
    checked=$((checked + 1))
  done
done
check "flags were found in the --help outputs ($checked)" test "$checked" -ge 10

# Names with _TEST_ are the unit tests' own (a child process marker), not settings.
mapfile -t VARS < <(grep -rhoE 'CLAMSCANNER_[A-Z_]*[A-Z]' "$ROOT/src" | grep -v _TEST_ | sort -u)
check "CLAMSCANNER_* variables were found in src/ (${#VARS[@]})" test "${#VARS[@]}" -ge 4
for var in "${VARS[@]}"; do
  expect_has "$var is in the manual page's ENVIRONMENT" "$var" \
    "$(plain "$PAGE" | awk '/^\.SH ENVIRONMENT/ {on = 1; next} /^\.SH / {on = 0} on')"
  expect_has "$var is in README.md" "$var" "$README_TEXT"
done

# The sections a manual page of a command must have.
for s in NAME SYNOPSIS DESCRIPTION ENVIRONMENT "EXIT STATUS" FILES EXAMPLES "STATUS RULES"; do
  check "the manual page has .SH $s" grep -qE "^\.SH \"?$s\"?$" "$PAGE"
done

warnings=$(groff -man -ww -z "$PAGE" 2>&1)
expect_eq "groff -man -ww -z prints no warning" "" "$warnings"
warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$PAGE" 2>&1 >/dev/null)
expect_eq "man --warnings -l prints no warning" "" "$warnings"
expect_contains "man -l renders the page" "check_disinfection_status" \
  "$(MANWIDTH=80 man -E UTF-8 -l "$PAGE" 2>/dev/null)"

finish
