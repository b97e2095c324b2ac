#!/usr/bin/env bash
# Runs every shell test (tests/t_*.sh) against the built binary and sums their checks.
# Each test ends with "NAME: N passed, N failed"; a test that dies before that line counts as
# one failure, so a crash can never pass silently.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
files=0
for t in tests/t_*.sh; do
  [ -f "$t" ] || continue
  files=$((files + 1))
  echo "== $t"
  out=$(mktemp)
  bash "$t" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  summary=$(grep -E '^[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    if [ "$rc" -eq 0 ]; then continue; fi   # a SKIP line exits 0 with no checks
    echo "$t died before its summary (exit $rc)"
    failed=$((failed + 1))
    continue
  fi
  p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$summary")
  f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$summary")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "$t exited $rc"; fi
done
echo
echo "shell: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$files" -gt 0 ]
