#!/usr/bin/env bash
# `make bench`: clamscanner (CGI mode, release build) against cPanel's algorithm
# (shared/bench/anchor_poll.pl) and `cat` of the same log, at 1k..1M records, then the
# listener and Apache CGI under wrk. Prints the table and writes BENCHMARKS.md.
#
# Knobs (for trying the harness; a real run uses none): BENCH_SIZES="1000 10000",
# BENCH_MIN_TIME=seconds per case (1.5), BENCH_OUT=file instead of BENCHMARKS.md,
# BENCH_WRK_SECONDS (5), BIN=other binary. A missing binary skips its columns.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${BIN:-$ROOT/target/release/clamscanner}
# tests/lib.sh gives SHARED, free_port, start_listener, add_htpasswd and an EXIT-trap cleanup.
source "$ROOT/tests/lib.sh"
SIZES=${BENCH_SIZES:-1000 10000 100000 1000000}
WRK_SECONDS=${BENCH_WRK_SECONDS:-5}
OUT_MD=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
CACHE=$ROOT/target/bench
RUN=$CACHE/run
RESULTS=$RUN/results.jsonl
ANCHOR=$SHARED/bench/anchor_poll.pl
GENLOG=$SHARED/bench/genlog.py
START=$(date +%s)
# Other work on the machine inflates wall times: the report prints the load average.
BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
export BENCH_LOAD_START

die() { echo "bench: $*" >&2; exit 1; }
say() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - START))" >&2; }

command -v python3 >/dev/null || die "python3 is missing"
perl -MJSON::XS -e 1 2>/dev/null || die "perl JSON::XS is missing (apt-get install libjson-xs-perl)"
[ -f "$ANCHOR" ] && [ -f "$GENLOG" ] || die "shared/bench not found at $SHARED (set SHARED=)"
HAVE_BIN=1
[ -x "$BIN" ] || { HAVE_BIN=0; echo "bench: $BIN missing: clamscanner columns skipped" >&2; }

rm -rf "$RUN"
mkdir -p "$RUN"
chmod 755 "$ROOT/target" "$CACHE" "$RUN"  # Apache's www-data children read logs and binary here

# --- logs: generated once, then reused (the 1M log is 143 MB and takes ~8 s) ---------
gen_sum=$(sha256sum "$GENLOG" | cut -c1-16)
home_root() { echo "$CACHE/logs/n$1"; }
log_of() { echo "$(home_root "$1")/bench/$LOG_NAME"; }
say "logs"
for n in $SIZES; do
  dir=$(home_root "$n")/bench
  stamp="genlog $gen_sum $n --seed 7 --done"
  if [ -f "$dir/$LOG_NAME" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" == "$stamp" ]; then
    echo "reuse $(log_of "$n")" >&2
    continue
  fi
  mkdir -p "$dir" && chmod 755 "$(home_root "$n")" "$dir"
  python3 "$GENLOG" "$dir/log.tmp" "$n" --seed 7 --done --no-state || die "genlog failed"
  chmod 644 "$dir/log.tmp" && mv "$dir/log.tmp" "$dir/$LOG_NAME"
  echo "$stamp" > "$dir/stamp"
  echo "made  $(log_of "$n")" >&2
done

# --- the commands, each checked once for the right answer before it is timed ---------
cgi_cmd() {  # cgi_cmd N [LAST_ID]
  echo "env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET QUERY_STRING=${2:+last_id=$2}" \
    "REMOTE_USER=bench CLAMSCANNER_HOME_ROOT=$(home_root "$1") $BIN"
}
anchor_cmd() {  # anchor_cmd N [LAST_ID]
  echo "env -i PATH=/usr/bin:/bin LOG_PATH=$(log_of "$1") QUERY_STRING=${2:+last_id=$2}" \
    "/usr/bin/perl $ANCHOR"
}
body() { sed '1,/^\r\?$/d' "$1"; }
# check_answer NAME FILE N EXPECTED_COUNT: a status-1 envelope, status done, the right records.
check_answer() {
  local got
  if [ "$4" -le 100000 ]; then
    got=$(body "$2" | jq -r '[.result.status, .result.data.status, (.result.data.details|length),
                              .result.data.details[-1].id] | join(" ")' 2>/dev/null)
    [ "$got" == "1 done $4 $3" ] || die "$1: wrong answer [$got], want [1 done $4 $3]"
  else  # jq on a 150 MB answer costs more than the benchmark: count the records instead
    got=$(grep -o '"id":[0-9]*}' "$2" | wc -l)
    [ "$got" == "$4" ] && tail -c 300 "$2" | grep -q '"status":"done"' \
      || die "$1: wrong answer ($got records)"
  fi
}
# add_case SPEC NAME MIN_RUNS CMD [N COUNT]: checks CMD's answer (when N given), then queues it.
add_case() {
  if [ $# -ge 6 ]; then
    eval "$4" > "$RUN/answer" || die "$2 failed: $4"
    check_answer "$2" "$RUN/answer" "$5" "$6"
    rm -f "$RUN/answer"
  fi
  echo "$2|$3|$4 > /dev/null" >> "$RUN/$1.spec"
}
measure() { say "timing $1"; python3 "$ROOT/bench/measure.py" "$RUN/$1.spec" "$RESULTS" || die "timer failed"; }

say "checking answers"
# Group "cgi": one process per request on a small log vs the cheapest possible process,
# and the one-new-record poll at every size; interleaved, so they share the same noise.
add_case cgi true 30 "env -i /bin/true"
for n in $SIZES; do
  [ "$HAVE_BIN" == 1 ] && add_case cgi "clam-poll-$n" 30 "$(cgi_cmd "$n" $((n - 1)))" "$n" 1
done
[ "$HAVE_BIN" == 1 ] && add_case cgi "cgi-full-1000" 30 "$(cgi_cmd 1000)" 1000 1000
measure cgi
# One group per size: full reads and the anchor's poll; slow cases stop at MIN_RUNS.
for n in $SIZES; do
  few=10; [ "$n" -ge 100000 ] && few=5; [ "$n" -ge 1000000 ] && few=3
  [ "$HAVE_BIN" == 1 ] && add_case "n$n" "clam-full-$n" 10 "$(cgi_cmd "$n")" "$n" "$n"
  add_case "n$n" "cat-$n" 10 "/bin/cat $(log_of "$n")"
  add_case "n$n" "anchor-poll-$n" "$few" "$(anchor_cmd "$n" $((n - 1)))" "$n" 1
  if [ "$n" -le 100000 ]; then
    add_case "n$n" "anchor-full-$n" "$few" "$(anchor_cmd "$n")" "$n" "$n"
  else  # ~6 s and ~1 GB per run: its warm-up run is its only check (exit status 0)
    add_case "n$n" "anchor-full-$n" "$few" "$(anchor_cmd "$n")"
  fi
  measure "n$n"
done

# --- requests per second under wrk (no target): listener, then Apache CGI ------------
source "$ROOT/bench/wrk.sh"
if ! command -v wrk >/dev/null; then
  echo "bench: wrk missing: requests per second skipped" >&2
elif [ "$HAVE_BIN" == 1 ] && [[ " $SIZES " == *" 1000 "* ]]; then
  bench_wrk_listener
  bench_wrk_apache
else
  echo "bench: no clamscanner binary or no 1k log: requests per second skipped" >&2
fi

say "report"
for n in $SIZES; do echo "{\"name\":\"log-$n\",\"bytes\":$(stat -c %s "$(log_of "$n")")}"; done >> "$RESULTS"
python3 "$ROOT/bench/report.py" "$RESULTS" "$ROOT/bench/header.md" "$OUT_MD" || die "report failed"
echo "bench: wrote $OUT_MD in $(($(date +%s) - START)) s" >&2
