#!/usr/bin/env bash
# Runs every shell test (tests/t_*.sh) against the built binary and sums the results.
set -u
cd "$(dirname "$0")/.."
failed=0
ran=0
for t in tests/t_*.sh; do
  [ -f "$t" ] || continue
  echo "== $t"
  if bash "$t"; then :; else failed=$((failed + 1)); fi
  ran=$((ran + 1))
done
echo "shell tests: $((ran - failed)) passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$ran" -gt 0 ]
