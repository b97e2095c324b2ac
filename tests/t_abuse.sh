#!/usr/bin/env bash
# The listener keeps its promises under abuse (issue 9, items 1-7; SPEC §6). One listener, two
# accounts: a legitimate client polls bob on one keep-alive connection throughout
# (tests/abuse_client.py poll), while each attack runs against the listener in a bounded way
# (tests/abuse_client.py ATTACK). After each attack:
#   - every poll made during it, and until the figures below came back, was answered (200,
#     result.status 1) within 1 s;
#   - threads, descriptors and RSS of the listener return to within a small margin of the
#     baseline (polled with a deadline), and its peak RSS during the attack stayed bounded;
#   - a fresh connection is still served; and at the end no "panicked" on its stderr.
# The figures are printed. Each attack takes a few seconds; counts are small (CI has 2 cores).
# ABUSE_ONLY=NAME runs only the attacks whose function name holds NAME (attack_cap, ...).
source "$(dirname "$0")/lib.sh"

CLIENT=$ROOT/tests/abuse_client.py
API=/execute/ClamScanner/check_disinfection_status
HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
BIG_RECORDS=200000            # alice's log: about 28 MB
MAX_CONNECTIONS=64
THREAD_MARGIN=2               # above the baseline, once an attack is over
FD_MARGIN=2
RSS_MARGIN_KB=$((8 * 1024))
PEAK_MARGIN_KB=$((32 * 1024)) # peak RSS during an attack, above the baseline
SETTLE_SECONDS=40             # deadline for the figures to return (the socket timeout is 20 s)

for tool in prlimit python3 curl; do
  if ! command -v "$tool" >/dev/null; then
    [ -n "${CI:-}" ] && { fail "$tool is required (CI is set)"; finish; exit 1; }
    echo "SKIP t_abuse: $tool is not installed"; exit 0
  fi
done

make_account "$HOME_ROOT" alice
make_account "$HOME_ROOT" bob
write_log "$HOME_ROOT/alice/$LOG_NAME" "$BIG_RECORDS" done
write_log "$HOME_ROOT/bob/$LOG_NAME" 5 running
add_htpasswd "$HTPASSWD" alice alice-Abuse-pw-1
add_htpasswd "$HTPASSWD" bob bob-Abuse-pw-2
AUTH_A="Basic $(printf 'alice:alice-Abuse-pw-1' | base64 -w0)"
AUTH_B="Basic $(printf 'bob:bob-Abuse-pw-2' | base64 -w0)"

start_listener --htpasswd "$HTPASSWD" --home-root "$HOME_ROOT" \
  --max-connections "$MAX_CONNECTIONS" || exit 1
PID=$LISTENER_PID LOG=$LISTENER_LOG ADDR=${LISTENER_URL#http://}

# figures: "THREADS FDS RSS_KB PEAK_KB" of the listener.
figures() {
  local threads rss peak fds
  threads=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$PID/status")
  rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$PID/status")
  peak=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$PID/status")
  fds=$(ls "/proc/$PID/fd" | wc -l)
  echo "$threads $fds $rss $peak"
}
now() { date +%s.%N; }
# poll_lines FROM TO: the poller's lines for polls started in [FROM, TO].
poll_lines() { awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b' "$WORK/polls"; }
still_serving() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: $AUTH_B" \
    "$LISTENER_URL$API?last_id=4")" = 200 ]
}

# Warm-up, so that the baseline is a server that has worked (the allocator keeps some freed
# memory for reuse): full reads of the big log at once, over HTTP/1.1 and HTTP/1.0.
warm=()
for v in --http1.1 --http1.1 --http1.0 --http1.0; do
  curl -s -o /dev/null "$v" --max-time 60 -H "Authorization: $AUTH_A" "$LISTENER_URL$API" &
  warm+=($!)
done
wait "${warm[@]}"

# The legitimate client, and the baseline once its first polls are in.
: >"$WORK/polls"
python3 "$CLIENT" poll "$ADDR" "$AUTH_B" "$WORK/polls" "$WORK/stop" &
POLLER=$!
on_exit "touch '$WORK/stop'; kill $POLLER 2>/dev/null; wait $POLLER 2>/dev/null"
for ((i = 0; i < 400; i++)); do
  [ "$(wc -l <"$WORK/polls")" -ge 5 ] && break
  sleep 0.05
done
check "the poller is answered before any attack" test "$(grep -c ' ok$' "$WORK/polls")" -ge 5
read -r BASE_THREADS BASE_FDS BASE_RSS _ <<<"$(figures)"
echo "baseline: threads $BASE_THREADS, descriptors $BASE_FDS, RSS ${BASE_RSS} kB"

# attack NAME KIND ARGS...: runs `abuse_client.py KIND ADDR ARGS...`, then every check of this
# file's header.
attack() {
  local name=$1 t0 t1 out rc polls slow bad max threads fds rss peak settled line i
  shift
  echo 5 >"/proc/$PID/clear_refs" # VmHWM restarts from the current RSS
  t0=$(now)
  out=$(timeout 120 python3 "$CLIENT" "$1" "$ADDR" "${@:2}" 2>&1); rc=$?
  t1=$(now)
  ATTACK_OUT=$out
  expect_eq "$name: the attack ran" 0 "$rc"
  while IFS= read -r line; do
    case $line in
      "ok "*) pass "$name: ${line#ok }" ;;
      "FAIL "*) fail "$name: ${line#FAIL }" ;;
      "# "*) echo "  ${line#\# }" ;;
    esac
  done <<<"$out"
  read -r _ _ _ peak <<<"$(figures)"
  settled=
  for ((i = 0; i < SETTLE_SECONDS * 10; i++)); do
    read -r threads fds rss _ <<<"$(figures)"
    if [ "$threads" -le $((BASE_THREADS + THREAD_MARGIN)) ] && [ "$fds" -le $((BASE_FDS + FD_MARGIN)) ] &&
      [ "$rss" -le $((BASE_RSS + RSS_MARGIN_KB)) ]; then
      settled=yes; break
    fi
    sleep 0.1
  done
  # The polls made during the attack and until the figures came back (or the deadline), and at
  # least until one poll started in that time has been answered: a short attack can fall between
  # two polls (they are 50 ms apart), and each attack is judged on a poll made after it began.
  for ((i = 0; i < 200; i++)); do
    [ -z "$(poll_lines "$t0" "$(now)")" ] || break
    sleep 0.05
  done
  t1=$(now)
  polls=$(poll_lines "$t0" "$t1" | wc -l)
  slow=$(poll_lines "$t0" "$t1" | awk '$2 > 1000' | wc -l)
  bad=$(poll_lines "$t0" "$t1" | grep -vc ' ok$')
  max=$(poll_lines "$t0" "$t1" | awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }')
  check "$name: the legitimate client polled during the attack ($polls polls)" test "$polls" -ge 1
  expect_eq "$name: polls slower than 1 s" 0 "$slow"
  expect_eq "$name: polls not answered 200 with result.status 1" 0 "$bad"
  echo "  $name: $polls polls, slowest ${max} ms; after: threads $threads, descriptors $fds, RSS $rss kB; peak RSS during it $peak kB"
  check "$name: threads, descriptors and RSS back near the baseline (threads $threads/$BASE_THREADS, fds $fds/$BASE_FDS, RSS $rss/$BASE_RSS kB)" test -n "$settled"
  check "$name: peak RSS $peak kB within $PEAK_MARGIN_KB kB of the baseline" test "$peak" -le $((BASE_RSS + PEAK_MARGIN_KB))
  check "$name: the process is alive" kill -0 "$PID"
  check "$name: a fresh connection is served" still_serving
}
# field NAME: a "NAME VALUE" line of the last attack's output.
field() { sed -n "s/^$1 //p" <<<"$ATTACK_OUT"; }

# Each attack is a function; ABUSE_ONLY=NAME (a fragment of a function name) runs only those.
# 1. The connection cap: one connection more than the cap is refused at once, the others are
# held; the poller's existing connection keeps being served.
attack_cap() {
  attack "connection cap" idle $((MAX_CONNECTIONS + 20)) 1
  check "connection cap: at least 20 refused at once ($(field refused))" test "$(field refused)" -ge 20
  check "connection cap: at most 21 refused ($(field refused))" test "$(field refused)" -le 21
  check "connection cap: the refused ones got 503 ($(field busy))" test "$(field busy)" -ge 20
}

# 1. Descriptor exhaustion: the descriptor limit lowered (while it runs) to leave room for 30
# connections besides the 64 descriptors the listener keeps free for its handlers; of 60 idle
# connections, those past the limit get 503 at once, the poller is still served, nothing
# panics, and accepting goes on after the limit is restored.
attack_descriptors() {
  local soft hard
  read -r soft hard <<<"$(prlimit --pid "$PID" --nofile --output SOFT,HARD --noheadings)"
  prlimit --pid "$PID" --nofile="$((BASE_FDS + 64 + 30)):$hard"
  attack "descriptor limit" idle 60 1
  prlimit --pid "$PID" --nofile="$soft:$hard"
  check "descriptor limit: at least 25 refused at once ($(field refused))" test "$(field refused)" -ge 25
  check "descriptor limit: still served after the limit is restored" still_serving

  # Then real exhaustion: the limit at the lowest free descriptor number, so that accept itself
  # fails (EMFILE). Three clients connect and send their request meanwhile (the first may get
  # the descriptor that a pending accept had already taken: 503); the poller's answers fail too
  # (no descriptor is left to open a log), so this phase is outside the poll checks. Once the
  # limit is restored, the waiting clients must be served: accepting went on.
  local free=0 i waiter statuses
  while [ -e "/proc/$PID/fd/$free" ]; do free=$((free + 1)); done
  prlimit --pid "$PID" --nofile="$free:$hard"
  rm -f "$WORK/waiting.ready"
  python3 "$CLIENT" waiting "$ADDR" 3 "$AUTH_B" "$WORK/waiting.ready" >"$WORK/waiting.out" 2>&1 &
  waiter=$!
  for ((i = 0; i < 200; i++)); do
    [ -e "$WORK/waiting.ready" ] && break
    sleep 0.05
  done
  check "descriptors exhausted: the clients connected and sent their requests" test -e "$WORK/waiting.ready"
  check "descriptors exhausted: the process is alive" kill -0 "$PID"
  prlimit --pid "$PID" --nofile="$soft:$hard"
  wait "$waiter"
  statuses=$(sed -n 's/^status //p' "$WORK/waiting.out" | tr '\n' ' ')
  echo "  descriptors exhausted: lowest free descriptor $free; the waiting clients got: $statuses"
  check "descriptors exhausted: the waiting clients are served once the limit is restored ($statuses)" \
    test "$(grep -c '^status 200$' "$WORK/waiting.out")" -ge 2
  check "descriptors exhausted: still serving" still_serving
}

# 2. Pipelining on a connection that never reads.
attack_pipelining() { attack "pipelining" pipeline 20000 3; }

# 3. Slow clients (six: more than the old fixed pool of four workers): bodies that trickle,
# answers read slowly, Transfer-Encoding: identity.
attack_slow_bodies() { attack "slow bodies" slow-body 6 3; }
attack_slow_readers() { attack "slow readers" slow-read 6 5 "$AUTH_A"; }
attack_identity() { attack "transfer-encoding identity" te-identity 6 "$AUTH_A"; }

# 4. A header line of 32 MiB, four times.
attack_header() { attack "huge header" big-header 32 4; }

# 5. Connections reset right after their request.
attack_resets() { attack "resets" reset 100 "$AUTH_A"; }

# 6. Requests tiny_http refuses itself: each answered with its status, closed, and logged once.
attack_refusals() {
  local before refused_log marker
  before=$(wc -c <"$LOG")
  attack "refusals" refusals
  refused_log=$(tail -c +"$((before + 1))" "$LOG" | grep -E '^127\.0\.0\.1:[0-9]+ - "' |
    grep -E '" (400|408|414|417|431) 0 [0-9]+ms auth=-$')
  expect_eq "refusals: one access-log line each" 13 "$(printf '%s\n' "$refused_log" | grep -c .)"
  for marker in GARBAGE-bad-line m=bad-header m=expect m=length-minus-1 m=length-hex m=length-2-64 \
    m=length-1e3 m=length-two m=te-identity m=long-header m=many-headers; do
    expect_eq "refusals: $marker logged once" 1 "$(printf '%s\n' "$refused_log" | grep -c -- "$marker")"
  done
}

# 7. HTTP/1.0 answers stream: four full reads of the 28 MB log at once, memory flat.
attack_http10() { attack "HTTP/1.0 full reads" http10 4 "$AUTH_A" "$BIG_RECORDS"; }

for a in cap descriptors pipelining slow_bodies slow_readers identity header resets refusals http10; do
  case $a in *"${ABUSE_ONLY:-}"*) "attack_$a" ;; esac
done

touch "$WORK/stop"
wait "$POLLER" 2>/dev/null
total=$(wc -l <"$WORK/polls")
slowest=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/polls")
echo "legitimate client: $total polls, slowest ${slowest} ms"
check "no 'panicked' on the listener's stderr" bash -c '! grep -q panicked "$1"' _ "$LOG"
[ -z "${VERBOSE:-}" ] || grep -c . "$LOG"
finish
