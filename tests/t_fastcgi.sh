#!/usr/bin/env bash
# `clamscanner fastcgi` spoken to directly in FastCGI (tests/fcgi_client.py): the protocol
# (keep-alive, GET_VALUES, ABORT, unknown type and role, multiplex refusal, malformed records,
# bounded PARAMS, a streamed large answer in flat memory while another connection is served),
# then how the program is started: --listen unix/TCP, descriptor 0 (spawn-fcgi), systemd socket
# activation, and the mod_cgid trap (a *connected* socket on descriptor 0 is still CGI), with
# the REMOTE_USER trust rule of each.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
CLIENT=$ROOT/tests/fcgi_client.py

H=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
mkdir -p "$H"
for u in alice big; do make_account "$H" "$u"; add_htpasswd "$HTPASSWD" "$u" "pw-$u"; done
add_htpasswd "$TOKENS" alice "TOKEN0ALICE0123456789"
write_log "$H/alice/$LOG_NAME" 10 done
write_log "$H/big/$LOG_NAME" 200000 done

# start_fcgi LOG ARGS...: `clamscanner fastcgi ARGS` in the background, waiting (30 s at most)
# for its "listening on" line. Sets FCGI_PID.
start_fcgi() {
  local log=$1; shift
  "$BIN" fastcgi "$@" 2>"$log" &
  FCGI_PID=$!
  on_exit "kill $FCGI_PID 2>/dev/null; wait $FCGI_PID 2>/dev/null"
  wait_for_line "$log" "$FCGI_PID" "listening on"
}
# wait_for_line LOG PID TEXT: until LOG has TEXT, PID exits, or 30 s pass.
wait_for_line() {
  local i
  for i in $(seq 300); do
    grep -q "$3" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "no [$3] in $1:" >&2; cat "$1" >&2
  return 1
}
# count_checks: turns the client's "ok ..."/"FAIL ..." lines into checks.
count_checks() {
  local line n=0
  while IFS= read -r line; do
    case $line in
      "ok "*) pass "${line#ok }"; n=$((n + 1)) ;;
      "FAIL "*) fail "${line#FAIL }"; n=$((n + 1)) ;;
      *) echo "$line" >&2 ;;
    esac
  done
  [ "$n" -gt 0 ] || fail "the FastCGI client reported no checks"
}
get() { python3 "$CLIENT" get "$@"; }
FN=/execute/ClamScanner/check_disinfection_status
ALICE_AUTH="HTTP_AUTHORIZATION=Basic $(printf alice:pw-alice | base64 -w0)"

# --- the protocol, on a unix socket given with --listen ------------------------------------
SOCK=$WORK/fcgi.sock
LOG=$WORK/fastcgi.log
start_fcgi "$LOG" --listen "unix:$SOCK" --workers 3 --htpasswd "$HTPASSWD" --tokens "$TOKENS" \
  --home-root "$H" || exit 1
expect_contains "startup line names the socket and the trust rule" \
  "listening on unix:$SOCK (up to 3 connections; REMOTE_USER ignored" "$(cat "$LOG")"
expect_eq "the unix socket is created with mode 0660" 660 "$(stat -c %a "$SOCK")"
count_checks < <(python3 "$CLIENT" protocol "unix:$SOCK" "$FCGI_PID")
check "the program survived every malformed record" kill -0 "$FCGI_PID"
expect_eq "one stderr line per closed connection (8 malformed, 1 half-sent)" 9 "$(grep -c 'closed a connection' "$LOG")"
expect_not_contains "stderr has no panic" "panicked" "$(cat "$LOG")"
kill "$FCGI_PID"; wait "$FCGI_PID" 2>/dev/null

# --- --trust-remote-user, on a unix socket with a group -------------------------------------
# The group must be one the socket would not have anyway: www-data as root; as a normal user one
# of its supplementary groups (it may give its files no other), and without one the group cannot
# be seen to change, so it is its own and that check is a SKIP.
SOCK_GROUP=www-data
if [ "$(id -u)" -ne 0 ]; then
  SOCK_GROUP=$(id -Gn | tr ' ' '\n' | grep -vxF "$(id -gn)" | head -n 1)
  [ -n "$SOCK_GROUP" ] || SOCK_GROUP=$(id -gn)
fi
LOG2=$WORK/fastcgi-trust.log
start_fcgi "$LOG2" --listen "unix:$SOCK" --socket-group "$SOCK_GROUP" --socket-mode 0640 \
  --trust-remote-user --home-root "$H" || exit 1
expect_eq "--socket-mode is applied" 640 "$(stat -c %a "$SOCK")"
if [ "$SOCK_GROUP" != "$(id -gn)" ]; then
  expect_eq "--socket-group is applied" "$SOCK_GROUP" "$(stat -c %G "$SOCK")"
else
  needs_root "the checks that --socket-group gives a socket another group (this user has no other)"
fi
out=$(get "unix:$SOCK" REQUEST_METHOD=GET PATH_INFO=$FN QUERY_STRING=last_id=8 REMOTE_USER=alice)
expect_jq "trusted REMOTE_USER: 200, records 9 and 10" "$out" '[.code, (.body | fromjson | .result.data.details | map(.id))] | tojson' '[200,[9,10]]'
out=$(get "unix:$SOCK" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=alice REMOTE_USER=root)
expect_jq "REMOTE_USER sent twice: 400" "$out" .code 400
out=$(get "unix:$SOCK" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=)
expect_jq "empty REMOTE_USER is absent: 401" "$out" .code 401
out=$(get "unix:$SOCK" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=alice CLAMSCANNER_TRUST_REMOTE_USER=0)
expect_jq "a CLAMSCANNER_TRUST_REMOTE_USER=0 parameter withdraws trust: 401" "$out" .code 401
kill "$FCGI_PID"; wait "$FCGI_PID" 2>/dev/null

# CLAMSCANNER_TRUST_REMOTE_USER=0 wins over --trust-remote-user.
LOG2B=$WORK/fastcgi-distrust.log
CLAMSCANNER_TRUST_REMOTE_USER=0 start_fcgi "$LOG2B" --listen "unix:$SOCK" --trust-remote-user \
  --htpasswd "$HTPASSWD" --home-root "$H" || exit 1
out=$(get "unix:$SOCK" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=alice)
expect_jq "CLAMSCANNER_TRUST_REMOTE_USER=0 beats --trust-remote-user: 401" "$out" .code 401
kill "$FCGI_PID"; wait "$FCGI_PID" 2>/dev/null

# --- TCP: trusting REMOTE_USER there is warned about ----------------------------------------
LOG3=$WORK/fastcgi-tcp.log
start_fcgi "$LOG3" --listen 127.0.0.1:0 --trust-remote-user --home-root "$H" || exit 1
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\) .*/\1/p' "$LOG3" | head -n1)
expect_contains "TCP + --trust-remote-user: warning that any local user can claim any account" \
  "any local user" "$(cat "$LOG3")"
out=$(get "$ADDR" REQUEST_METHOD=GET PATH_INFO=$FN QUERY_STRING=last_id=9 REMOTE_USER=alice)
expect_jq "TCP: served" "$out" .code 200
kill "$FCGI_PID"; wait "$FCGI_PID" 2>/dev/null

out=$("$BIN" fastcgi --listen "unix:$SOCK" --home-root "$H" 2>&1); rc=$?
expect_eq "untrusted and no credential file: refuses to start (exit 2)" 2 "$rc"
expect_contains "... saying why" "give --htpasswd" "$out"
out=$("$BIN" fastcgi --home-root "$H" </dev/null 2>&1); rc=$?
expect_eq "no --listen and no socket on descriptor 0: exit 2" 2 "$rc"
expect_contains "fastcgi --help names the 0660 socket mode" "0660" "$("$BIN" fastcgi --help)"

# --- descriptor 0: spawn-fcgi hands over a listening socket; no arguments -------------------
if command -v spawn-fcgi >/dev/null; then
  SOCK0=$WORK/fd0.sock
  LOG0=$WORK/fd0.log
  env -i PATH="$PATH" CLAMSCANNER_HOME_ROOT="$H" spawn-fcgi -n -s "$SOCK0" -M 0600 -- "$BIN" 2>"$LOG0" &
  P0=$!
  on_exit "kill $P0 2>/dev/null; wait $P0 2>/dev/null"
  for _ in $(seq 100); do [ -S "$SOCK0" ] && break; sleep 0.1; done
  out=$(get "unix:$SOCK0" REQUEST_METHOD=GET PATH_INFO=$FN QUERY_STRING=last_id=8 REMOTE_USER=alice)
  expect_jq "descriptor 0 (spawn-fcgi): REMOTE_USER trusted, 200" "$out" '[.code, (.body | fromjson | .result.data.details | map(.id))] | tojson' '[200,[9,10]]'
  kill "$P0"; wait "$P0" 2>/dev/null
  rm -f "$SOCK0"
  env -i PATH="$PATH" CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_TRUST_REMOTE_USER=0 CLAMSCANNER_HTPASSWD="$HTPASSWD" \
    spawn-fcgi -n -s "$SOCK0" -M 0600 -- "$BIN" 2>"$LOG0" &
  P0=$!
  on_exit "kill $P0 2>/dev/null; wait $P0 2>/dev/null"
  for _ in $(seq 100); do [ -S "$SOCK0" ] && break; sleep 0.1; done
  out=$(get "unix:$SOCK0" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=alice)
  expect_jq "descriptor 0 with CLAMSCANNER_TRUST_REMOTE_USER=0: REMOTE_USER ignored, 401" "$out" .code 401
  out=$(get "unix:$SOCK0" REQUEST_METHOD=GET PATH_INFO=$FN "$ALICE_AUTH")
  expect_jq "... and Basic credentials work: 200" "$out" .code 200
  kill "$P0"; wait "$P0" 2>/dev/null
elif [ -n "${CI:-}" ]; then
  fail "spawn-fcgi not installed (CI is set)"
else
  echo "  (spawn-fcgi not installed: descriptor-0 checks skipped)"
fi

# --- systemd socket activation: LISTEN_FDS, descriptor 3 ------------------------------------
if command -v systemd-socket-activate >/dev/null; then
  SOCK3=$WORK/activated.sock
  LOG3A=$WORK/activated.log
  env -i PATH="$PATH" CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_HTPASSWD="$HTPASSWD" \
    systemd-socket-activate -l "$SOCK3" -E CLAMSCANNER_HOME_ROOT -E CLAMSCANNER_HTPASSWD \
    "$BIN" fastcgi 2>"$LOG3A" &
  P3=$!
  on_exit "kill $P3 2>/dev/null; wait $P3 2>/dev/null"
  for _ in $(seq 100); do [ -S "$SOCK3" ] && break; sleep 0.1; done
  out=$(get "unix:$SOCK3" REQUEST_METHOD=GET PATH_INFO=$FN QUERY_STRING=last_id=8 "$ALICE_AUTH")
  expect_jq "socket activation: served on descriptor 3" "$out" '[.code, (.body | fromjson | .result.data.details | map(.id))] | tojson' '[200,[9,10]]'
  out=$(get "unix:$SOCK3" REQUEST_METHOD=GET PATH_INFO=$FN REMOTE_USER=alice)
  expect_jq "socket activation: REMOTE_USER not trusted by default (401)" "$out" .code 401
  expect_contains "socket activation: the startup line says so" "the socket from systemd" "$(cat "$LOG3A")"
  kill "$P3"; wait "$P3" 2>/dev/null
elif [ -n "${CI:-}" ]; then
  fail "systemd-socket-activate not installed (CI is set)"
else
  echo "  (systemd-socket-activate not installed: activation checks skipped)"
fi

# --- the mod_cgid trap: a connected socket on descriptor 0 is still a CGI request -----------
out=$(python3 - "$BIN" "$H" <<'PY'
import os, socket, subprocess, sys
a, b = socket.socketpair()
env = {"PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
       "QUERY_STRING": "last_id=9", "REMOTE_USER": "alice", "CLAMSCANNER_HOME_ROOT": sys.argv[2]}
p = subprocess.run([sys.argv[1]], stdin=b, stdout=subprocess.PIPE, env=env, timeout=20)
print(p.stdout.decode().split("\r\n\r\n", 1)[-1])
PY
)
expect_jq "connected socket on fd 0 + GATEWAY_INTERFACE: answered as CGI" "$out" '.result.data.details | map(.id) | tojson' '[10]'

# --- the CGI program with CLAMSCANNER_TRUST_REMOTE_USER=0 (nginx + fcgiwrap) ----------------
out=$(cgi REMOTE_USER=alice CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_TRUST_REMOTE_USER=0 CLAMSCANNER_HTPASSWD="$HTPASSWD")
expect_contains "CGI with CLAMSCANNER_TRUST_REMOTE_USER=0: REMOTE_USER ignored, 401" "Status: 401" "$out"
out=$(cgi REMOTE_USER=alice CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_TRUST_REMOTE_USER=yes)
expect_contains "CGI with a bad CLAMSCANNER_TRUST_REMOTE_USER: 500" "Status: 500" "$out"
out=$(cgi REMOTE_USER=alice CLAMSCANNER_HOME_ROOT="$H" QUERY_STRING=last_id=9)
expect_contains "CGI without the variable still trusts REMOTE_USER" '"id":10' "$out"

finish
