#!/usr/bin/env bash
# The listener (`clamscanner serve`), end to end through real sockets: routes and methods, the
# SPEC §1 refusals in their order, last_id handling, the three kinds of credentials, both envelope
# forms, the access log and its credential cache, robustness (panics, a 1 TB Content-Length) and
# the start-up refusals. Issue 2 items 2, 5, 6; issue 3's listener items.
#
# Fixture accounts under one home root: alice (finished log, 5 records), bob (running log,
# 3 records), carol (no log, state file "queued"), dave (nothing at all).
source "$(dirname "$0")/lib.sh"

API=/execute/ClamScanner/check_disinfection_status
SHORT=/ClamScanner/check_disinfection_status
HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
# Distinctive secrets, so that a grep of the access log for them means something.
PW_ALICE=alice-Secret-7Qx   # "alice:" + this is 22 bytes: its base64 ends in "=" (see below)
PW_BOB=bob-Secret-old-4Kz
PW_BOB_NEW=bob-Secret-new-9Wm
PW_CAROL=carol-Secret-2Lp
PW_DAVE=dave-Secret-5Hn
TOKEN_A=TOKENAAAA1111SECRET
TOKEN_B=TOKENBBBB2222SECRET

for u in alice bob carol dave; do make_account "$HOME_ROOT" "$u"; done
write_log "$HOME_ROOT/alice/$LOG_NAME" 5 done
write_log "$HOME_ROOT/bob/$LOG_NAME" 3 running
printf 'queued\n' >"$HOME_ROOT/carol/$STATE_NAME"
add_htpasswd "$HTPASSWD" alice "$PW_ALICE"
add_htpasswd "$HTPASSWD" bob "$PW_BOB"
add_htpasswd "$HTPASSWD" carol "$PW_CAROL"
add_htpasswd "$HTPASSWD" dave "$PW_DAVE"
# The tokens file: same format, one user with two tokens (one made by our own subcommand).
printf '%s\n' "$TOKEN_A" | "$BIN" htpasswd --cost 4 alice >"$TOKENS"
htpasswd -nbB -C 4 alice "$TOKEN_B" | sed '/^$/d' >>"$TOKENS"

# hit PATH CURL_ARGS...: one request to the current listener; sets CODE, HEADERS (CR removed)
# and BODY, which lib.sh's header and ids read.
hit() {
  local path=$1; shift
  : >"$WORK/head"; : >"$WORK/body"
  CODE=$(curl -sS -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' "$@" "$URL$path")
  HEADERS=$(tr -d '\r' <"$WORK/head")
  BODY=$(cat "$WORK/body")
}
# expect_answer DESC HTTP_CODE RESULT_STATUS [RESULT_FILTER]: status code, a JSON body, and
# result.status (wrapped form by default; pass "" for the flat form).
expect_answer() {
  local result=${4-.result}
  expect_eq "$1: HTTP status" "$2" "$CODE"
  check "$1: body is JSON" is_json "$BODY"
  expect_jq "$1: result.status" "$BODY" "$result.status" "$3"
}
# wait_log PATTERN: the access-log line is written after the answer is sent, so poll for it
# (bounded) instead of reading the log the moment curl returns.
wait_log() {
  local i
  for ((i = 0; i < 400; i++)); do
    grep -qE "$1" "$LOG" && return 0
    sleep 0.025
  done
  return 1
}
ALICE=(-u "alice:$PW_ALICE")

# --workers is a deprecated no-op since every connection has its own thread: accepted, with a warning.
start_listener --htpasswd "$HTPASSWD" --tokens "$TOKENS" --home-root "$HOME_ROOT" --workers 2 || exit 1
URL=$LISTENER_URL LOG=$LISTENER_LOG PID=$LISTENER_PID
ADDR=${URL#http://}
expect_contains "--workers: accepted, and said to be ignored" "--workers is ignored" "$(cat "$LOG")"

# --- routes and methods ----------------------------------------------------------------------
for route in "$API" "$SHORT"; do
  hit "$route" "${ALICE[@]}"
  expect_answer "GET $route" 200 1
  expect_eq "GET $route: all records" "1,2,3,4,5" "$(ids)"
  expect_jq "GET $route: done" "$BODY" .result.data.status done
  expect_jq "GET $route: log path" "$BODY" .result.data.log "$HOME_ROOT/alice/$LOG_NAME"
  expect_jq "GET $route: wrapped envelope" "$BODY" '[.apiversion, .module, .func] | join(" ")' \
    "3 ClamScanner check_disinfection_status"
  expect_eq "GET $route: Content-Type" "application/json; charset=utf-8" "$(header Content-Type)"
  expect_eq "GET $route: Cache-Control" "no-store" "$(header Cache-Control)"
  expect_eq "GET $route: nosniff" "nosniff" "$(header X-Content-Type-Options)"

  hit "$route" "${ALICE[@]}" -I
  expect_eq "HEAD $route: status" 200 "$CODE"
  expect_eq "HEAD $route: Content-Type" "application/json; charset=utf-8" "$(header Content-Type)"
  expect_eq "HEAD $route: Cache-Control" "no-store" "$(header Cache-Control)"
  expect_eq "HEAD $route: nosniff" "nosniff" "$(header X-Content-Type-Options)"

  hit "$route" "${ALICE[@]}" --data 'last_id=3'
  expect_answer "POST form $route" 200 1
  expect_eq "POST form $route: records after 3" "4,5" "$(ids)"
done
# curl -I cannot show that no body follows; on the raw wire, everything after the headers
# up to the server's close must be nothing.
raw=$(printf 'HEAD %s HTTP/1.1\r\nHost: x\r\nAuthorization: cpanel alice:%s\r\nConnection: close\r\n\r\n' \
  "$API" "$TOKEN_A" | python3 "$ROOT/tests/raw_http.py" --to-eof "$ADDR")
expect_contains "HEAD on the wire: 200" "HTTP/1.1 200" "$raw"
expect_eq "HEAD on the wire: no body" "" "$(printf '%s' "$raw" | sed '1,/^\r$/d')"

# POST as cpanel-api sends it: Content-Length 0, no Content-Type; the query carries last_id.
hit "$API?last_id=4" "${ALICE[@]}" --data-binary '' -H 'Content-Type:'
expect_answer "POST Content-Length 0, no type" 200 1
expect_eq "POST Content-Length 0, no type: records" "5" "$(ids)"
hit "$API" "${ALICE[@]}" -H 'Transfer-Encoding: chunked' --data-binary 'last_id=2'
expect_answer "POST chunked body" 200 1
expect_eq "POST chunked body: records" "3,4,5" "$(ids)"

# --- last_id and data.status -------------------------------------------------------------------
hit "$API?last_id=5" "${ALICE[@]}"
expect_answer "seen everything" 200 1
expect_eq "seen everything: no records" "" "$(ids)"
expect_jq "seen everything: still done" "$BODY" .result.data.status done
hit "$API?last_id=0" -u "bob:$PW_BOB"
expect_answer "running log" 200 1
expect_eq "running log: records" "1,2,3" "$(ids)"
expect_jq "running log: running" "$BODY" .result.data.status running
hit "$API?last_id=3" -u "bob:$PW_BOB"
expect_jq "running log, all seen: running" "$BODY" .result.data.status running
hit "$API" -u "carol:$PW_CAROL"
expect_answer "state file only" 200 1
expect_jq "state file only: queued" "$BODY" .result.data.status queued
expect_jq "state file only: details empty" "$BODY" '.result.data.details | length' 0
hit "$API" -u "dave:$PW_DAVE"
expect_answer "nothing at all" 200 1
expect_jq "nothing at all: none" "$BODY" .result.data.status none
expect_jq "nothing at all: log path still given" "$BODY" .result.data.log "$HOME_ROOT/dave/$LOG_NAME"

# Bad values: HTTP 200, result.status 0, an error naming the parameter, data {}.
for q in abc -1 1.5 %207 %zz 1e3 '1&last_id=1'; do
  hit "$API?last_id=$q" "${ALICE[@]}"
  expect_answer "last_id=$q" 200 0
  expect_contains "last_id=$q: error names the parameter" last_id "$(jqv "$BODY" '.result.errors[0]')"
  expect_jq "last_id=$q: data is {}" "$BODY" '.result.data' '{}'
done
hit "$API?last_id=1" "${ALICE[@]}" --data 'last_id=1'
expect_answer "last_id in query and body" 200 0
expect_contains "last_id in query and body: names it" last_id "$(jqv "$BODY" '.result.errors[0]')"
hit "$API?last_id=0001" "${ALICE[@]}"
expect_eq "last_id=0001 is 1" "2,3,4,5" "$(ids)"
# Past the largest u64: larger than any id, so the log was restarted: everything plus a warning.
hit "$API?last_id=$(printf '9%.0s' {1..40})" "${ALICE[@]}"
expect_answer "40-digit last_id" 200 1
expect_eq "40-digit last_id: every record" "1,2,3,4,5" "$(ids)"
expect_contains "40-digit last_id: restart warning" "restarted" "$(jqv "$BODY" '.result.warnings[0]')"

# --- refusals, and their order (404, 405, 414, 413, 415, then 401) ---------------------------
hit /nope "${ALICE[@]}"
expect_answer "unknown path" 404 0
hit /execute/ClamScanner/other "${ALICE[@]}"
expect_answer "other function" 404 0
for m in PUT DELETE; do
  hit "$API" "${ALICE[@]}" -X "$m"
  expect_answer "$m" 405 0
  expect_eq "$m: Allow" "GET, HEAD, POST" "$(header Allow)"
done
hit /nope -X PUT
expect_answer "PUT on an unknown path, no credentials: 404 first" 404 0
hit "$API" -X DELETE
expect_answer "DELETE without credentials: 405 before 401" 405 0
long=$(head -c 8300 /dev/zero | tr '\0' a)
hit "$API?x=$long" "${ALICE[@]}"
expect_answer "query over 8 KiB" 414 0
hit "$API?x=$long"
expect_answer "query over 8 KiB without credentials: 414 before 401" 414 0
edge=$(head -c 8190 /dev/zero | tr '\0' a)
hit "$API?x=$edge" "${ALICE[@]}"
expect_answer "query of exactly 8 KiB is served" 200 1
head -c 65537 /dev/zero | tr '\0' a >"$WORK/big"
hit "$API" "${ALICE[@]}" --data-binary @"$WORK/big"
expect_answer "body over 64 KiB" 413 0
hit "$API" --data-binary @"$WORK/big"
expect_answer "body over 64 KiB without credentials: 413, not 401" 413 0
head -c 65536 "$WORK/big" >"$WORK/edge"
hit "$API" "${ALICE[@]}" --data-binary @"$WORK/edge"
expect_answer "body of exactly 64 KiB is served" 200 1
hit "$API" "${ALICE[@]}" -H 'Content-Type: application/json' --data '{"last_id":1}'
expect_answer "JSON body" 415 0
hit "$API" -H 'Content-Type: application/json' --data '{"last_id":1}'
expect_answer "JSON body without credentials: 415, not 401" 415 0

# --- credentials -----------------------------------------------------------------------------
CHALLENGE='Basic realm="cPanel", charset="UTF-8"'
unauthorized() { # DESC CURL_ARGS...
  local d=$1; shift
  hit "$API" "$@"
  expect_answer "$d" 401 0
  expect_eq "$d: WWW-Authenticate" "$CHALLENGE" "$(header WWW-Authenticate)"
}
unauthorized "no credentials"
unauthorized "Basic, no credentials" -H 'Authorization: Basic'
unauthorized "Basic, bad base64" -H 'Authorization: Basic !!!!'
unauthorized "Basic, no colon" -H "Authorization: Basic $(printf alice | base64)"
unauthorized "unknown scheme" -H 'Authorization: Bearer abc'
unauthorized "wrong password" -u "alice:wrong-$PW_ALICE"
unauthorized "unknown user" -u "zoe:$PW_ALICE"
unauthorized "user name with a slash" -u "a/b:$PW_ALICE"
unauthorized "token sent as a Basic password" -u "alice:$TOKEN_A"
unauthorized "password sent as a token" -H "Authorization: cpanel alice:$PW_ALICE"
unauthorized "token of another user" -H "Authorization: cpanel bob:$TOKEN_A"

padded=$(printf 'alice:%s' "$PW_ALICE" | base64 -w0)
expect_eq "fixture: alice's Basic credentials need padding" "=" "${padded: -1}"
hit "$API" -H "Authorization: basic ${padded%%=*}"
expect_answer "lowercase scheme, unpadded base64" 200 1
hit "$API" -H "Authorization: BASIC $padded"
expect_answer "uppercase scheme, padded base64" 200 1
hit "$API" -H "Authorization: cpanel alice:$TOKEN_A"
expect_answer "first token" 200 1
expect_jq "first token: alice's log" "$BODY" .result.data.log "$HOME_ROOT/alice/$LOG_NAME"
hit "$API" -H "Authorization: cpanel alice:$TOKEN_B"
expect_answer "second token" 200 1
# A cached success must not let another secret through for the same user.
unauthorized "wrong password after a cached success" -u "alice:$PW_ALICE-x"

# The progress page: same authentication, HTML.
hit / 
expect_answer "page without credentials" 401 0
hit / "${ALICE[@]}"
expect_eq "page: 200" 200 "$CODE"
expect_contains "page: text/html" "text/html" "$(header Content-Type)"
expect_contains "page: an HTML document" "<html" "$BODY"

# --- the access log and the credential cache ----------------------------------------------------
# bob's first request (above, last_id=0) paid for bcrypt; the second was served from the cache.
check "log: bob's first request verified by bcrypt" \
  wait_log "^127\.0\.0\.1:[0-9]+ bob \"GET $API\?last_id=0 HTTP/1\.1\" 200 [0-9]+ [0-9]+ms auth=bcrypt$"
check "log: bob's second request from the cache" \
  wait_log "^127\.0\.0\.1:[0-9]+ bob \"GET $API\?last_id=3 HTTP/1\.1\" 200 [0-9]+ [0-9]+ms auth=cache$"
hit "$API?mark=logline1&last_id=2" "${ALICE[@]}"
size=$(wc -c <"$WORK/body")
check "log: one line with address, user, request, status, bytes, ms" \
  wait_log "^127\.0\.0\.1:[0-9]+ alice \"GET $API\?mark=logline1&last_id=2 HTTP/1\.1\" 200 $size [0-9]+ms auth="
expect_eq "log: exactly one line for that request" 1 "$(grep -c 'mark=logline1' "$LOG")"
hit "/nope?mark=logline2" -X PUT
check "log: a refused request is logged too" wait_log "^127\.0\.0\.1:[0-9]+ - \"PUT /nope\?mark=logline2 HTTP/1\.1\" 404 "

# The htpasswd file rewritten in place with a new password for bob: the cached old one dies.
grep -v '^bob:' "$HTPASSWD" >"$WORK/htpasswd.new"
add_htpasswd "$WORK/htpasswd.new" bob "$PW_BOB_NEW"
cat "$WORK/htpasswd.new" >"$HTPASSWD"
unauthorized "old password after the htpasswd file changed" -u "bob:$PW_BOB"
hit "$API" -u "bob:$PW_BOB_NEW"
expect_answer "new password after the htpasswd file changed" 200 1

# --- several connections at once -------------------------------------------------------------
pids=()
for i in $(seq 1 20); do
  curl -s -o "$WORK/conc.$i.body" -w '%{http_code}' "${ALICE[@]}" "$URL$API?last_id=$((i % 6))" \
    >"$WORK/conc.$i.code" &
  pids+=($!)
done
wait "${pids[@]}"
ok=0
for i in $(seq 1 20); do
  [ "$(cat "$WORK/conc.$i.code")" = 200 ] && is_json "$(cat "$WORK/conc.$i.body")" && ok=$((ok + 1))
done
expect_eq "20 concurrent requests all answered 200 with JSON" 20 "$ok"

# --- robustness ------------------------------------------------------------------------------
# A panicking handler is tested in src/serve.rs (a test-only handler); no request header can
# make the listener panic, in any build.
hit "$API" "${ALICE[@]}" -H 'X-Clamscanner-Debug-Panic: 1'
expect_answer "the former debug panic header has no effect" 200 1

# Content-Length of 1 TB and no body: an answer (413), then the process still serves.
raw=$(printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000000\r\n\r\n' \
  "$API" | python3 "$ROOT/tests/raw_http.py" "$ADDR")
expect_contains "1 TB Content-Length: 413" "HTTP/1.1 413" "$raw"
check "1 TB Content-Length: JSON body" is_json "$(printf '%s' "$raw" | sed '1,/^\r$/d' | sed -n 2p)"
check "1 TB Content-Length: process alive" kill -0 "$PID"
hit "$API" "${ALICE[@]}"
expect_answer "1 TB Content-Length: still serving" 200 1

# A client that keeps sending a huge body must not keep a thread busy draining it: the listener
# answers 413 and closes that connection. The sender stops at 64 MiB (bound), and reports whether
# the server hung up first; a normal request must then be served.
start_listener --htpasswd "$HTPASSWD" --home-root "$HOME_ROOT" || exit 1
HOST_PORT=${LISTENER_URL#http://}
sender=$(python3 - "$HOST_PORT" "$API" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=30)
s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n" % sys.argv[2].encode())
head = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
sent, chunk = 0, b"a" * 65536
try:
    while sent < (64 << 20):
        s.sendall(chunk)
        sent += len(chunk)
    print(head, "server kept reading")
except OSError:
    print(head, "server closed")
PY
)
expect_eq "huge body sent on: 413, then the connection is closed" "HTTP/1.1 413 server closed" "$(printf %s "$sender" | sed "s/ Payload Too Large//; s/ Content Too Large//")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -u "alice:$PW_ALICE" "$LISTENER_URL$API")
expect_eq "still serving after the huge body" 200 "$code"

# No secret reached the access log (nor its base64 form).
for secret in "$PW_ALICE" "$PW_BOB" "$PW_BOB_NEW" "$PW_CAROL" "$PW_DAVE" "$TOKEN_A" "$TOKEN_B" "$padded"; do
  check "log: no secret ${secret:0:5}…" bash -c '! grep -qF -- "$1" "$2"' _ "$secret" "$LOG"
done

# --- the flat envelope -------------------------------------------------------------------------
start_listener --htpasswd "$HTPASSWD" --tokens "$TOKENS" --home-root "$HOME_ROOT" --envelope flat || exit 1
URL=$LISTENER_URL
hit "$API?last_id=3" "${ALICE[@]}"
expect_answer "flat" 200 1 ""
expect_jq "flat: the result object alone" "$BODY" 'keys | join(",")' "data,errors,messages,metadata,status,warnings"
expect_jq "flat: records" "$BODY" '[.data.details[].id] | map(tostring) | join(",")' "4,5"
hit "$API?last_id=x" "${ALICE[@]}"
expect_answer "flat failure" 200 0 ""
hit "$API"
expect_answer "flat 401" 401 0 ""
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null

# --- unusable htpasswd entries -----------------------------------------------------------------
# $apr1$ (MD5), {SHA} and a bcrypt hash of cost 15 (alice's hash with its cost field changed: a
# real cost-15 hash would take seconds to make and must never be computed anyway).
BAD=$WORK/htpasswd.bad
alice_hash=$(sed -n 's/^alice://p' "$HTPASSWD")
{
  printf 'alice:%s\n' "$alice_hash"
  htpasswd -nbm bob "$PW_BOB" | sed '/^$/d'
  htpasswd -nbs carol "$PW_CAROL" | sed '/^$/d'
  printf 'dave:%s\n' "$(printf '%s' "$alice_hash" | sed 's/^\(\$2.\$\)04\$/\115$/')"
} >"$BAD"
check "fixture: a cost-15 entry" grep -q '^dave:\$2.\$15\$' "$BAD"
start_listener --htpasswd "$BAD" --home-root "$HOME_ROOT" || exit 1
URL=$LISTENER_URL LOG=$LISTENER_LOG
expect_eq "unusable entries: one line each at start" 3 "$(grep -c unusable "$LOG")"
for u in bob carol dave; do
  expect_contains "unusable entries: $u named" "user $u" "$(grep unusable "$LOG")"
done
hit "$API" -u "bob:$PW_BOB";     expect_answer "\$apr1\$ entry" 401 0
hit "$API" -u "carol:$PW_CAROL"; expect_answer "{SHA} entry" 401 0
hit "$API" -u "dave:$PW_ALICE";  expect_answer "cost-15 entry" 401 0
hit "$API" "${ALICE[@]}";        expect_answer "the good entry still works" 200 1
check "unusable entries: requests logged" wait_log "alice \"GET $API HTTP/1\.1\" 200 "
expect_eq "unusable entries: not reported again per request" 3 "$(grep -c unusable "$LOG")"
check "unusable entries: hashes not printed" bash -c '! grep -qF -- "$1" "$2"' _ "${alice_hash:7}" "$LOG"
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null

# --- start-up refusals ------------------------------------------------------------------------
# start_refused DESC ARGS...: `serve ARGS` must exit 2 with exactly one stderr line. `timeout` only
# bounds a listener that wrongly starts; it is not a synchronisation.
start_refused() {
  local d=$1 rc; shift
  timeout 20 "$BIN" serve "$@" >"$WORK/out" 2>"$WORK/err"; rc=$?
  expect_eq "$d: exit 2" 2 "$rc"
  expect_eq "$d: one stderr line" 1 "$(wc -l <"$WORK/err")"
  ERR=$(cat "$WORK/err")
}
start_refused "no credential store" --listen 127.0.0.1:0 --home-root "$HOME_ROOT"
expect_contains "no credential store: says what to give" "--htpasswd" "$ERR"
start_refused "non-loopback without --allow-remote" --listen 0.0.0.0:0 --htpasswd "$HTPASSWD"
expect_contains "non-loopback: names --allow-remote" "--allow-remote" "$ERR"
start_refused "unknown flag" --listen 127.0.0.1:0 --htpasswd "$HTPASSWD" --frobnicate
expect_contains "unknown flag: names it" "frobnicate" "$ERR"
start_refused "bad --envelope" --listen 127.0.0.1:0 --htpasswd "$HTPASSWD" --envelope yaml
start_refused "bad --max-connections" --listen 127.0.0.1:0 --htpasswd "$HTPASSWD" --max-connections 0
start_refused "missing htpasswd file" --listen 127.0.0.1:0 --htpasswd "$WORK/absent"
start_refused "stray argument" --listen 127.0.0.1:0 --htpasswd "$HTPASSWD" extra

"$BIN" serve --help >"$WORK/out" 2>"$WORK/err"
expect_eq "serve --help: exit 0" 0 "$?"
expect_contains "serve --help: usage on stdout" "usage: clamscanner serve" "$(cat "$WORK/out")"
"$BIN" --help >"$WORK/out" 2>&1
expect_eq "--help: exit 0" 0 "$?"
version=$("$BIN" --version); rc=$?
expect_eq "--version: exit 0" 0 "$rc"
expect_eq "--version: the Cargo version" \
  "clamscanner $(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)" "$version"

start_listener --listen 0.0.0.0:0 --allow-remote --htpasswd "$HTPASSWD" --home-root "$HOME_ROOT" || exit 1
warning=$(grep WARNING "$LISTENER_LOG")
expect_contains "--allow-remote: warns that credentials travel in clear" "in clear" "$warning"
expect_contains "--allow-remote: warns about tiny_http's missing limits" "tiny_http" "$warning"
port=${LISTENER_URL##*:}
URL=http://127.0.0.1:$port
hit "$API" "${ALICE[@]}"
expect_answer "--allow-remote: serves" 200 1
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null

finish
