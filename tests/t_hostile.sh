#!/usr/bin/env bash
# Hostile input (issue 3): the corpus in tests/hostile/ (format in its README.md), thrown at the
# CGI program and at one listener by tests/hostile_client.py. For every request: a clean status,
# a JSON envelope, the listener still serving, and no byte of another account's files.
#
# Fixture: alice is the only account whose credentials are sent. mallory and the hostile user
# names (.., ., a/b, -x, %2e%2e, 33 characters) all have htpasswd entries and a log full of
# markers where a path built from the name would land, so only the name checks keep them out.
source "$(dirname "$0")/lib.sh"

HOSTILE_ONLY=${HOSTILE_ONLY:-} # a name fragment: run only those requests (debugging)
HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
LONG_NAME=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa # 33 characters
MARKERS=()
SECRETS=()

# marker_log FILE TAG: a finished log whose every record names the marker SECRET-MARKER-TAG.
marker_log() {
  local marker=SECRET-MARKER-$2 i
  mkdir -p "$(dirname "$1")"
  for i in 1 2 3; do
    printf '{"id":%d,"type":"issue","file":"/home/%s/%d","message":"%s"}\n' "$i" "$marker" "$i" "$marker"
  done >"$1"
  printf '{"id":4,"type":"done","message":"%s"}\n' "$marker" >>"$1"
  MARKERS+=(--marker "$marker")
}

# credential FILE USER SECRET KIND: a bcrypt entry (cost 4) for any user name, even one that
# htpasswd would take for an option, and the secret for the client's {{KIND:USER}} macro.
credential() {
  local hash
  hash=$(htpasswd -nbB -C 4 x "$3" | sed -n 's/^x://p')
  printf '%s:%s\n' "$2" "$hash" >>"$1"
  SECRETS+=(--secret "$4:$2=$3")
}

make_account "$HOME_ROOT" alice
write_log "$HOME_ROOT/alice/$LOG_NAME" 5 done
make_account "$HOME_ROOT" mallory
marker_log "$HOME_ROOT/mallory/$LOG_NAME" mallory-log
printf 'running SECRET-MARKER-mallory-state\n' >"$HOME_ROOT/mallory/$STATE_NAME"
MARKERS+=(--marker SECRET-MARKER-mallory-state --marker "root:x:0:0")
# Where HOME_ROOT/NAME/<log> lands for each hostile name.
marker_log "$WORK/$LOG_NAME" dotdot
marker_log "$HOME_ROOT/$LOG_NAME" dot
marker_log "$HOME_ROOT/a/b/$LOG_NAME" slash
marker_log "$HOME_ROOT/-x/$LOG_NAME" dash
marker_log "$HOME_ROOT/%2e%2e/$LOG_NAME" percent
marker_log "$HOME_ROOT/$LONG_NAME/$LOG_NAME" long-name

credential "$HTPASSWD" alice 'Al1ce-Pw:7f3e9cQ' pass # 22 bytes with "alice:": padded base64
credential "$HTPASSWD" mallory 'Mall0ry-Pw-41b2' pass
credential "$HTPASSWD" .. 'dotdot-pw-9a1' pass
credential "$HTPASSWD" . 'dot-pw-3c2' pass
credential "$HTPASSWD" a/b 'slash-pw-77e' pass
credential "$HTPASSWD" -x 'dash-pw-0d4' pass
credential "$HTPASSWD" %2e%2e 'pct-pw-5e6' pass
credential "$HTPASSWD" "$LONG_NAME" 'long-pw-8f1' pass
credential "$TOKENS" alice 'tok-alice-5d9a0b81c2' token
credential "$TOKENS" .. 'tok-dotdot-6b3e' token
chmod 644 "$HTPASSWD" "$TOKENS"

start_listener --htpasswd "$HTPASSWD" --tokens "$TOKENS" --home-root "$HOME_ROOT" || exit 1

RESULTS=$WORK/results.txt
python3 "$ROOT/tests/hostile_client.py" --corpus "$ROOT/tests/hostile" --bin "$BIN" \
  --url "$LISTENER_URL" --htpasswd "$HTPASSWD" --tokens "$TOKENS" --home-root "$HOME_ROOT" \
  "${SECRETS[@]}" "${MARKERS[@]}" ${HOSTILE_ONLY:+--only "$HOSTILE_ONLY"} >"$RESULTS" 2>&1
expect_eq "the client ran to its end" 0 "$?"

count=$(sed -n 's/^corpus \([0-9]*\) requests$/\1/p' "$RESULTS")
[ -n "$HOSTILE_ONLY" ] || check "the corpus holds at least 200 requests (${count:-none})" \
  test "${count:-0}" -ge 200
while IFS= read -r line; do
  case $line in
    "ok "*) pass "${line#ok }" ;;
    "skip "*) ;;
    "FAIL "*) fail "${line#FAIL }" ;;
    "corpus "*) ;;
    *) fail "client: $line" ;;
  esac
done <"$RESULTS"

# The process survived everything and still answers a good request.
check "the listener is still running" kill -0 "$LISTENER_PID"
answer=$(curl -sS -u 'alice:Al1ce-Pw:7f3e9cQ' "$LISTENER_URL/execute/ClamScanner/check_disinfection_status?last_id=0")
expect_jq "a good request after the corpus" "$answer" '.result.data.details | length' 5

# stderr (the access log) holds no secret, in clear or as the Basic token, and no panic.
log=$(cat "$LISTENER_LOG")
for item in "${SECRETS[@]}"; do
  case $item in --secret) continue ;; esac
  expect_not_contains "the listener log hides ${item%%=*}" "${item#*=}" "$log"
done
expect_not_contains "the listener log hides alice's Basic token" "$(printf 'alice:Al1ce-Pw:7f3e9cQ' | base64)" "$log"
expect_not_contains "no handler panicked" "panicked" "$log"
expect_not_contains "no worker was lost" "stopped unexpectedly" "$log"
lines=$(grep -c ' auth=' "$LISTENER_LOG")
[ -n "$HOSTILE_ONLY" ] || check "an access-log line per answered request ($lines)" test "$lines" -ge 400

finish
