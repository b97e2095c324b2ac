#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target for a bounded time and says how many inputs each ran.
#
#   FUZZ_SECONDS=60   seconds per target (default 60)
#   FUZZ_TARGETS="…"  a subset of: query authorization jsonline logfile
#
# cargo fuzz builds with nightly-only flags (-Zsanitizer=address, sanitizer coverage); the
# project uses the stable toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
# New inputs go to fuzz/corpus/TARGET (kept between runs, not committed), crashes to
# fuzz/artifacts/TARGET/. A crash makes the run fail; turn it into a regression test.
set -u
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz)"
  cargo install --locked cargo-fuzz || exit 1
fi
cargo fuzz build -O || exit 1

passed=0
failed=0
summary=()
for target in ${FUZZ_TARGETS:-$(cargo fuzz list)}; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log=artifacts/$target.log
  dict=()
  [ -f "dicts/$target.dict" ] && dict=("-dict=dicts/$target.dict")
  echo "== fuzz $target for ${seconds}s"
  # Seeds are read but never written: new inputs land in corpus/TARGET.
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1
  status=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -1)
  if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
    passed=$((passed + 1))
    summary+=("$target: $runs executions in ${seconds}s, no crash")
  else
    failed=$((failed + 1))
    crash=$(grep -o 'artifacts/[^ ]*' "$log" | tail -1)
    summary+=("$target: FAILED (exit $status) after ${runs:-?} executions; input: ${crash:-see $log}")
    grep -m1 -A3 -E 'panicked|ERROR: ' "$log" | sed 's/^/    /'
  fi
done
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
