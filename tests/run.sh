#!/usr/bin/env bash
# Runs every shell test (tests/t_*.sh) against the built binary and sums their checks.
# Each test ends with "NAME: N passed, N failed". What a machine cannot run is said, never
# implied: a test that skips itself or some of its checks prints one line starting with "SKIP"
# for each (tests/lib.sh: skip_test, skip_checks, needs_root), and those lines are counted and
# listed at the end. A test that dies before its summary, or exits 0 with neither a summary nor
# a SKIP line, counts as one failure, so a crash can never pass silently.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
files=0
skips=()
for t in tests/t_*.sh; do
  [ -f "$t" ] || continue
  files=$((files + 1))
  echo "== $t"
  out=$(mktemp)
  bash "$t" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  summary=$(grep -E '^[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)
  mapfile -t skipped < <(grep -E '^SKIP' "$out")
  rm -f "$out"
  skips+=("${skipped[@]}")
  if [ -z "$summary" ]; then
    if [ "$rc" -eq 0 ] && [ "${#skipped[@]}" -gt 0 ]; then continue; fi
    if [ "$rc" -eq 0 ]; then
      echo "$t exited 0 with neither a summary nor a SKIP line"
    else
      echo "$t died before its summary (exit $rc)"
    fi
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
if [ "${#skips[@]}" -gt 0 ]; then
  echo "skipped (${#skips[@]}):"
  printf '  %s\n' "${skips[@]}"
fi
echo "shell: $passed passed, $failed failed, ${#skips[@]} skipped"
[ "$failed" -eq 0 ] && [ "$files" -gt 0 ]
