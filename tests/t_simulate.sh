#!/usr/bin/env bash
# The workbench (issue 13): `clamscanner simulate` plays each scenario into an account while
# correct clients poll it through the CGI program and the listener, and `clamscanner watch`
# follows it in a pipe (and, for the restart, on a terminal). What they saw is judged against
# the log simulate left (tests/simulate_client.py): every record exactly once, in order, ending
# at done; the restart noticed; the corrupt line a warning, never fatal. Then simulate's
# refusals, its determinism and --loop; watch on a pseudo-terminal (`script`) and its exit
# codes; and `make run` starting the listener with a looping run. SIM_SEED=S reproduces.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
if ! command -v script >/dev/null; then
  if [ -n "${CI:-}" ]; then
    echo "$TEST_NAME: FAIL script (bsdutils) is not installed (CI is set)" >&2
    exit 1
  fi
  echo "SKIP $TEST_NAME: script (bsdutils) is not installed"
  exit 0
fi
CLIENT=$ROOT/tests/simulate_client.py
SEED=${SIM_SEED:-$RANDOM}
echo "  simulate: seed $SEED (SIM_SEED=$SEED reproduces the data)"
H=$WORK/home
HTPASSWD=$WORK/htpasswd
mkdir -p "$H" && chmod 755 "$H"
SCENARIOS="steady queued torn corrupt restart clean errors"
AS_ROOT=
needs_root "the checks with another uid's home and log (chown) and simulate as another uid (setpriv)" && AS_ROOT=1
ME=$(id -un)

# watch_args ACCOUNT: the arguments that make watch follow ACCOUNT, in WATCH_ARGS, and quoted for
# a command line in WATCH_LINE. Root names any account; a normal user may name only its own
# (src/watch.rs), so it follows ACCOUNT through a home root of its own in which its name is a
# link to ACCOUNT's home (a linked home is the administrator's choice: README "Security").
watch_args() {
  local v=$WORK/as-$1
  if [ -n "$AS_ROOT" ]; then
    WATCH_ARGS=(--user "$1" --home-root "$H")
  else
    mkdir -p "$v" && chmod 755 "$v"
    [ ! -e "$H/$1" ] || [ -L "$v/$ME" ] || ln -s "$H/$1" "$v/$ME"
    WATCH_ARGS=(--user "$ME" --home-root "$v")
  fi
  WATCH_LINE=$(printf '%q ' "${WATCH_ARGS[@]}")
}

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds, within a deadline.
wait_until() {
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$end" ]; then
      fail "$what (not within the deadline)"
      return 1
    fi
    sleep 0.02
  done
}
has() { grep -q -- "$1" "$2" 2>/dev/null; }

for s in $SCENARIOS; do
  make_account "$H" "sim_$s"
  add_htpasswd "$HTPASSWD" "sim_$s" "pw-$s"
done
# The steady account belongs to someone else: simulate, run as root, must give its files to
# the home's owner, or the server would refuse to read them.
[ -z "$AS_ROOT" ] || chown 65534:65534 "$H/sim_steady"
start_listener --htpasswd "$HTPASSWD" --home-root "$H" || exit 1

# --- every scenario, seen by three clients --------------------------------------------------------
scenario() {
  local s=$1 u=sim_$1 d=$WORK/$1 pids=() rc verdict what detail tty_args=()
  mkdir -p "$d"
  watch_args "$u"
  python3 "$CLIENT" poll --out "$d/cgi.json" --via cgi --bin "$BIN" --home-root "$H" --user "$u" &
  pids+=($!)
  python3 "$CLIENT" poll --out "$d/http.json" --via http --url "$LISTENER_URL" --user "$u" \
    --password "pw-$s" &
  pids+=($!)
  (
    timeout 90 "$BIN" watch "${WATCH_ARGS[@]}" --interval 20 >"$d/watch.out" 2>"$d/watch.err"
    echo $? >"$d/watch.rc"
  ) &
  pids+=($!)
  if [ "$s" = restart ]; then
    timeout 90 script -qec "stty cols 250 2>/dev/null; exec '$BIN' watch $WATCH_LINE --interval 20" \
      /dev/null </dev/null >"$d/tty.out" 2>&1 &
    pids+=($!)
    tty_args=(--tty "$d/tty.out")
  fi
  on_exit "kill ${pids[*]} 2>/dev/null"
  # Every client has asked once (and found no run) before the run starts.
  wait_until "$s: the clients are polling" 30 eval \
    "test -e '$d/cgi.json.started' && test -e '$d/http.json.started' && has waiting '$d/watch.err' \
     && { [ $s != restart ] || has waiting '$d/tty.out'; }"
  "$BIN" simulate --home-root "$H" --user "$u" --scenario "$s" --records 40 --rate 400 \
    --seed "$SEED" 2>"$d/simulate.err"
  rc=$?
  expect_eq "$s: simulate exits 0" 0 "$rc"
  expect_contains "$s: simulate says what it plays" "scenario $s" "$(cat "$d/simulate.err")"
  for p in "${pids[@]}"; do wait "$p"; done
  check "$s: the state file is removed at the end" test ! -e "$H/$u/$STATE_NAME"
  python3 "$CLIENT" verify --scenario "$s" --log "$H/$u/$LOG_NAME" \
    --polls "$d/cgi.json,$d/http.json" --watch "$d/watch.out" --watch-err "$d/watch.err" \
    --watch-rc "$d/watch.rc" "${tty_args[@]}" >"$d/verdicts" 2>&1
  while IFS=$'\t' read -r verdict what detail; do
    case $verdict in
      ok) check "$what" true ;;
      FAIL) check "$what: $detail" false ;;
      *) check "verifier output: $verdict $what" false ;;
    esac
  done <"$d/verdicts"
}
for s in $SCENARIOS; do scenario "$s"; done
[ -z "$AS_ROOT" ] || expect_eq "steady: the log belongs to the home's owner" 65534 "$(stat -c %u "$H/sim_steady/$LOG_NAME")"
expect_eq "steady: the log is not writable by others" 644 "$(stat -c %a "$H/sim_steady/$LOG_NAME")"

# --- determinism --------------------------------------------------------------------------------
make_account "$H" sim_seed
for n in 1 2; do
  "$BIN" simulate --home-root "$H" --user sim_seed --scenario torn --records 60 --rate 5000 \
    --seed 11 2>/dev/null
  cp "$H/sim_seed/$LOG_NAME" "$WORK/seed$n.log"
done
check "--seed: two runs write the same bytes" cmp -s "$WORK/seed1.log" "$WORK/seed2.log"
"$BIN" simulate --home-root "$H" --user sim_seed --scenario torn --records 60 --rate 5000 \
  --seed 12 2>/dev/null
check "--seed: another seed writes another log" test "$(md5sum <"$WORK/seed1.log")" != \
  "$(md5sum <"$H/sim_seed/$LOG_NAME")"
expect_eq "--seed: the run has its records" 60 "$(wc -l <"$WORK/seed1.log")"

# --- refusals -----------------------------------------------------------------------------------
MARKER=untouched-target-$$
refused() { # refused DESCRIPTION USER: exit 2 with one line on stderr
  "$BIN" simulate --home-root "$H" --user "$2" --records 3 --rate 1000 --seed 1 \
    >"$WORK/ref.out" 2>"$WORK/ref.err"
  expect_eq "$1: exit 2" 2 "$?"
  expect_eq "$1: one line on stderr" 1 "$(grep -c . "$WORK/ref.err")"
}
for f in log state; do
  u=sim_link$f
  make_account "$H" "$u"
  printf '%s\n' "$MARKER" >"$WORK/target-$f"
  name=$LOG_NAME
  [ $f = state ] && name=$STATE_NAME
  ln -s "$WORK/target-$f" "$H/$u/$name"
  refused "a symlinked $f file" "$u"
  expect_contains "a symlinked $f file: says why" "symbolic link" "$(cat "$WORK/ref.err")"
  expect_eq "a symlinked $f file: nothing written through the link" "$MARKER" "$(cat "$WORK/target-$f")"
  check "a symlinked $f file: the link is still a link" test -L "$H/$u/$name"
  expect_eq "a symlinked $f file: nothing else created" 1 "$(find "$H/$u" -mindepth 1 | wc -l)"
done
make_account "$H" sim_hard
printf '%s\n' "$MARKER" >"$WORK/target-hard"
ln "$WORK/target-hard" "$H/sim_hard/$LOG_NAME"
refused "a hard-linked log" sim_hard
expect_eq "a hard-linked log: untouched" "$MARKER" "$(cat "$WORK/target-hard")"
if [ -n "$AS_ROOT" ]; then
  make_account "$H" sim_theirs
  printf '%s\n' "$MARKER" >"$H/sim_theirs/$LOG_NAME"
  chown 65534 "$H/sim_theirs/$LOG_NAME"
  refused "a log owned by someone else" sim_theirs
  expect_eq "a log owned by someone else: untouched" "$MARKER" "$(cat "$H/sim_theirs/$LOG_NAME")"
fi
make_account "$H" sim_fifo
mkfifo "$H/sim_fifo/$LOG_NAME"
refused "a FIFO for a log" sim_fifo
before=$(find "$WORK" | wc -l)
for bad in ../sim_steady "a/b" .hidden -x "" "sim steady"; do
  refused "bad user name [$bad]" "$bad"
done
refused "a home that does not exist" sim_nohome
expect_eq "refusals wrote nothing anywhere" "$before" "$(find "$WORK" | wc -l)"
"$BIN" simulate --home-root "$H" --user sim_seed --scenario nope >/dev/null 2>"$WORK/ref.err"
expect_eq "an unknown scenario: exit 2" 2 "$?"
"$BIN" simulate --home-root "$H" --user sim_seed --rate 0 >/dev/null 2>"$WORK/ref.err"
expect_eq "--rate 0: exit 2" 2 "$?"
"$BIN" simulate --home-root "$H" >/dev/null 2>"$WORK/ref.err"
expect_eq "no --user: exit 2" 2 "$?"
# As nobody, on a home that belongs to root: the server would refuse the files it made.
if [ -n "$AS_ROOT" ]; then
  make_account "$H" sim_root
  setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" simulate --home-root "$H" \
    --user sim_root --records 2 >/dev/null 2>"$WORK/ref.err"
  expect_eq "as another user than the home's owner: exit 2" 2 "$?"
  expect_eq "as another user than the home's owner: nothing created" 0 "$(find "$H/sim_root" -mindepth 1 | wc -l)"
fi

# --- --loop -------------------------------------------------------------------------------------
make_account "$H" sim_loop
L=$H/sim_loop/$LOG_NAME
"$BIN" simulate --home-root "$H" --user sim_loop --records 5 --rate 1000 --seed 3 --loop \
  2>/dev/null &
LOOP_PID=$!
on_exit "kill $LOOP_PID 2>/dev/null"
ended_once() { [ -s "$L" ] && tail -n1 "$L" | grep -q '"type":"done"' && test ! -e "$H/sim_loop/$STATE_NAME"; }
again() { test -e "$H/sim_loop/$STATE_NAME"; }
wait_until "--loop: the first run ends" 30 ended_once && pass "--loop: the first run ends"
wait_until "--loop: a second run starts" 30 again && pass "--loop: a second run starts"
check "--loop: still running" kill -0 "$LOOP_PID"
kill "$LOOP_PID"; wait "$LOOP_PID" 2>/dev/null

# --- watch on a terminal --------------------------------------------------------------------------
make_account "$H" sim_tty
watch_args sim_tty
TTY_LINE=$WATCH_LINE
on_tty() { # on_tty OUTFILE [ENV...]: watch sim_tty on a 250-column pseudo-terminal
  local out=$1; shift
  env "$@" timeout 60 script -qec "stty cols 250 2>/dev/null; exec '$BIN' watch $TTY_LINE --interval 20" \
    /dev/null </dev/null >"$out" 2>&1
}
# The first watch waits for the run, then follows it live.
on_tty "$WORK/tty1" -u NO_COLOR &
TTY1_PID=$!
on_exit "kill $TTY1_PID 2>/dev/null"
wait_until "terminal: watch waits for a run" 30 has "waiting for a run" "$WORK/tty1"
"$BIN" simulate --home-root "$H" --user sim_tty --scenario steady --records 12 --rate 100 \
  --seed 5 2>/dev/null
wait "$TTY1_PID"
expect_eq "terminal: exit 0 at done" 0 "$?"
tty1=$(cat -v "$WORK/tty1")
expect_contains "terminal: colour codes" '^[[33mquarantined' "$tty1"
expect_contains "terminal: the status line is redrawn in place" '^M^[[2K' "$tty1"
check "terminal: the status line names every state beside its count" \
  grep -Eq '[0-9]+ quarantined, [0-9]+ deleted, [0-9]+ no-action, [0-9]+ error, [0-9]+ mailbox-cleansed, 12 records in [0-9.]+ s' "$WORK/tty1"
expect_eq "terminal: one line per record" 12 "$(grep -c '^.*\(quarantined\|deleted\|no-action\|error\|mailbox-cleansed\|done\) ' <(tr '\r' '\n' <"$WORK/tty1" | grep -v 'records in'))"
on_tty "$WORK/tty2" NO_COLOR=1
tty2=$(cat -v "$WORK/tty2")
check "NO_COLOR: no colour codes" bash -c "! grep -Eq $'\x1b''\[[0-9;]*m' '$WORK/tty2'"
expect_contains "NO_COLOR: the status line stays" "12 records in" "$tty2"
# Ctrl-C: SIGINT to the watch process itself, waiting for a run that never comes.
make_account "$H" sim_idle
watch_args sim_idle
timeout 60 script -qec "echo \$\$ >'$WORK/tty.pid'; exec '$BIN' watch $WATCH_LINE --interval 20" \
  /dev/null </dev/null >"$WORK/tty3" 2>&1 &
TTY_PID=$!
on_exit "kill $TTY_PID 2>/dev/null"
wait_until "terminal: watch waits for a run" 30 has "waiting for a run" "$WORK/tty3"
kill -INT "$(cat "$WORK/tty.pid")"
wait "$TTY_PID"
expect_eq "terminal: Ctrl-C exits 130" 130 "$?"
expect_eq "terminal: the status line is cleared on Ctrl-C" 0d1b5b324b "$(tail -c 5 "$WORK/tty3" | od -An -tx1 | tr -d ' \n')"

# --- watch exit codes in a pipe -----------------------------------------------------------------
"$BIN" watch "${WATCH_ARGS[@]}" --interval 20 >"$WORK/idle.out" 2>"$WORK/idle.err" &
IDLE_PID=$!
on_exit "kill $IDLE_PID 2>/dev/null"
wait_until "pipe: watch says it waits" 30 has "waiting for a run" "$WORK/idle.err"
kill -INT "$IDLE_PID"
wait "$IDLE_PID"
expect_eq "pipe: SIGINT exits 130" 130 "$?"
expect_eq "pipe: nothing on stdout without records" "" "$(cat "$WORK/idle.out")"
watch_args sim_nosuch
"$BIN" watch "${WATCH_ARGS[@]}" >"$WORK/w.out" 2>"$WORK/w.err"
expect_eq "an unknown account: exit 1" 1 "$?"
expect_contains "an unknown account: says so" "does not exist" "$(cat "$WORK/w.err")"
for args in "--interval 0" "--bogus" "--last-id x" "extra"; do
  # shellcheck disable=SC2086
  watch_args sim_tty
  "$BIN" watch "${WATCH_ARGS[@]}" $args >"$WORK/w.out" 2>"$WORK/w.err"
  expect_eq "usage error [$args]: exit 2" 2 "$?"
done
"$BIN" watch "${WATCH_ARGS[@]}" --last-id 12 >"$WORK/w.out" 2>"$WORK/w.err"
expect_eq "--last-id at the done record: exit 0, nothing new" "0:" "$?:$(cat "$WORK/w.out")"
watch_args sim_errors
"$BIN" watch "${WATCH_ARGS[@]}" --last-id 40 >"$WORK/w.out" 2>"$WORK/w.err"
expect_eq "--last-id at a failed done record: exit 1" 1 "$?"
watch_args sim_tty
"$BIN" watch "${WATCH_ARGS[@]}" --last-id 9 >"$WORK/w.out" 2>"$WORK/w.err"
expect_eq "--last-id 9: the records after it" "10 11 12" "$(cut -f1 "$WORK/w.out" | xargs)"
# Root drops to nobody for it; a normal user is already not root.
AS_OTHER=()
[ -z "$AS_ROOT" ] || AS_OTHER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
"${AS_OTHER[@]}" "$BIN" watch --user sim_tty --home-root "$H" >"$WORK/w.out" 2>"$WORK/w.err"
expect_eq "naming another user without being root: exit 2" 2 "$?"
expect_contains "naming another user: says only root may" "only root" "$(cat "$WORK/w.err")"

# --- make run: the listener and a looping run, stopped by Ctrl-C on its terminal ----------------
D=$WORK/demo
PORT=$(free_port)
moving() { # an answer from the simulated run, which the finished demo log alone cannot give
  curl -s -u demo:demo "$1" | jq -e '.result.status == 1 and (.result.data.status == "running" or (.result.warnings // [] | length) > 0)' >/dev/null
}
# The driver waits for the listener and a moving run, notes the PIDs, then types Ctrl-C.
make_run_driver() {
  local end=$((SECONDS + 120)) url
  until grep -q "listening on" "$WORK/run.out" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || return; sleep 0.05
  done
  url=$(grep -o "curl -u demo:demo '[^']*'" "$WORK/run.out" | head -1 | sed "s/.*'\(.*\)'/\1/")
  echo "$url" >"$WORK/run.url"
  until moving "$url"; do [ "$SECONDS" -lt "$end" ] || return; sleep 0.05; done
  echo moving >"$WORK/run.moving"
  pgrep -f -- "--home-root $D/home" >"$WORK/run.pids"
  ps -o args= -p "$(paste -sd, "$WORK/run.pids")" >"$WORK/run.args"
  printf '\003'
  until ! grep -q . <(for p in $(cat "$WORK/run.pids"); do kill -0 "$p" 2>/dev/null && echo "$p"; done); do
    [ "$SECONDS" -lt "$end" ] || return; sleep 0.05
  done
}
make_run_driver | timeout 150 script -qefc "make -s -C '$ROOT' run PORT=$PORT DEMO='$D' SCENARIO=steady" \
  /dev/null >"$WORK/run.out" 2>&1
on_exit 'for p in $(cat "$WORK/run.pids" 2>/dev/null); do kill "$p" 2>/dev/null; done'
expect_contains "make run: prints the curl line" \
  "127.0.0.1:$PORT/execute/ClamScanner/check_disinfection_status?last_id=95" "$(cat "$WORK/run.url" 2>/dev/null)"
check "make run: the printed curl line answers a moving run" test -e "$WORK/run.moving"
check "make run: the listener and the simulated run were running" \
  test "$(grep -c '^[^ ]*clamscanner \(serve\|simulate\) ' "$WORK/run.args")" -eq 2
left=$(for p in $(cat "$WORK/run.pids"); do kill -0 "$p" 2>/dev/null && echo "$p"; done)
expect_eq "make run: Ctrl-C stops the listener and the simulated run" "" "$left"
finish
