#!/usr/bin/env bash
# The program in a real Apache 2.4 cgi-bin, in the three documented configurations of
# cgi-bin/apache-clamscanner.conf, installed with `make install-cgi`. Each configuration is its
# own Apache on a free loopback port, stopped by its PID file at exit even when a check fails.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/apache_lib.sh"
apache_require
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }

# --- fixtures: one account per data.status case, files readable by www-data -----------------
H=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
mkdir -p "$H" && chmod 755 "$H"
for u in alice nolog queued starting busy; do
  make_account "$H" "$u"
  add_htpasswd "$HTPASSWD" "$u" "pw-$u"
done
add_htpasswd "$TOKENS" alice "TOKEN0ALICE0123456789"
# Two lines for one user: Apache (configuration 1) checks only the first; the program must agree.
make_account "$H" dup
add_htpasswd "$HTPASSWD" dup "pw-dup-first"
add_htpasswd "$HTPASSWD" dup "pw-dup-second"
write_log "$H/alice/$LOG_NAME" 10 done     # finished: ids 1..10, the last one type done
write_log "$H/busy/$LOG_NAME" 5 running    # still going: ids 1..5, no done record
printf 'queued\n' >"$H/queued/$STATE_NAME"
printf 'running\n' >"$H/starting/$STATE_NAME"
chmod 644 "$H/queued/$STATE_NAME" "$H/starting/$STATE_NAME"
ALICE=(-u alice:pw-alice)

CGI=$WORK/cgi
apache_install_cgi "$CGI"
check "make install-cgi installs an executable clamscanner" test -x "$CGI/clamscanner"
expect_eq "installed with mode 755" 755 "$(stat -c %a "$CGI/clamscanner" 2>/dev/null)"

# req URL [CURL_ARGS...]: sets CODE, HEADERS (no CRs) and BODY, which lib.sh's header and ids read.
req() {
  local url=$1; shift
  CODE=$(curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" "$url")
  BODY=$(cat "$WORK/body")
  HEADERS=$(tr -d '\r' <"$WORK/headers")
}

# --- configuration 1: Apache authenticates, the program trusts REMOTE_USER --------------------
apache_start 1 "$CGI" "$HTPASSWD" "$TOKENS" "$H" || exit 1
U=$APACHE_URL/cgi-bin/clamscanner

req "$U" "${ALICE[@]}"
expect_eq "c1: empty PATH_INFO is the function, 200" 200 "$CODE"
expect_eq "c1: Content-Type" "application/json; charset=utf-8" "$(header Content-Type)"
expect_eq "c1: Cache-Control" "no-store" "$(header Cache-Control)"
expect_eq "c1: X-Content-Type-Options" "nosniff" "$(header X-Content-Type-Options)"
expect_jq "c1: wrapped envelope" "$BODY" \
  '[.apiversion, .module, .func, .result.status, .result.errors, .result.messages, .result.warnings, .result.metadata] | tojson' \
  '[3,"ClamScanner","check_disinfection_status",1,null,null,null,{}]'
expect_jq "c1: data.log is the account's log" "$BODY" .result.data.log "$H/alice/$LOG_NAME"
expect_eq "c1: whole log without last_id" "1,2,3,4,5,6,7,8,9,10" "$(ids .result.data.details)"
expect_jq "c1: finished log is done" "$BODY" .result.data.status done

req "$U/execute/ClamScanner/check_disinfection_status?last_id=2" "${ALICE[@]}"
expect_eq "c1: last_id=2 via /execute path, 200" 200 "$CODE"
expect_eq "c1: last_id=2 gives ids 3..10" "3,4,5,6,7,8,9,10" "$(ids .result.data.details)"
req "$U/ClamScanner/check_disinfection_status?last_id=7" "${ALICE[@]}"
expect_eq "c1: last_id=7 via short path gives 8..10" "8,9,10" "$(ids .result.data.details)"
req "$U?last_id=10" "${ALICE[@]}"
expect_jq "c1: last_id = last id: no details, still done" "$BODY" \
  '[(.result.data.details | length), .result.data.status, .result.status] | tojson' '[0,"done",1]'
req "$U?last_id=0" "${ALICE[@]}"
expect_eq "c1: last_id=0 is the whole log" 10 "$(jqv "$BODY" '.result.data.details | length')"

req "$U" -u nolog:pw-nolog
expect_jq "c1: no log, no state file: none" "$BODY" \
  '[.result.status, .result.data.status, (.result.data.details | length)] | tojson' '[1,"none",0]'
expect_jq "c1: data.log given even when absent" "$BODY" .result.data.log "$H/nolog/$LOG_NAME"
req "$U" -u queued:pw-queued
expect_jq "c1: state file queued, no log: queued" "$BODY" .result.data.status queued
req "$U" -u starting:pw-starting
expect_jq "c1: state file running, no log: running" "$BODY" .result.data.status running
req "$U" -u busy:pw-busy
expect_jq "c1: log without done record: running" "$BODY" \
  '[.result.data.status, (.result.data.details | length)] | tojson' '["running",5]'

req "$U?last_id=abc" "${ALICE[@]}"
expect_eq "c1: bad last_id is still HTTP 200" 200 "$CODE"
expect_jq "c1: bad last_id: status 0, data {}, errors are strings" "$BODY" \
  '[.result.status, (.result.data | tojson), (.result.errors | type), (.result.errors | length > 0), (.result.errors | all(type == "string"))] | tojson' \
  '[0,"{}","array",true,true]'

# HEAD over a raw socket, to see that no body bytes follow the headers.
exec {fd}<>"/dev/tcp/127.0.0.1/$APACHE_PORT"
printf 'HEAD /cgi-bin/clamscanner?last_id=2 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n\r\n' \
  "$(printf alice:pw-alice | base64 -w0)" >&"$fd"
timeout 10 cat <&"$fd" >"$WORK/head.raw"
exec {fd}<&-
HEAD_RESP=$(tr -d '\r' <"$WORK/head.raw")
expect_contains "c1: HEAD status line 200" "HTTP/1.1 200" "$(head -n 1 "$WORK/head.raw")"
expect_contains "c1: HEAD has the JSON Content-Type" "Content-Type: application/json; charset=utf-8" "$HEAD_RESP"
expect_eq "c1: HEAD has no body" 0 "$(python3 -c '
import sys; d = open(sys.argv[1], "rb").read(); i = d.find(b"\r\n\r\n")
print(len(d) - i - 4 if i >= 0 else -1)' "$WORK/head.raw")"

req "$U/ClamScanner/other_function" "${ALICE[@]}"
expect_eq "c1: another path under the script: 404" 404 "$CODE"
req "$U" "${ALICE[@]}" -X PUT
expect_eq "c1: PUT: the program's 405" 405 "$CODE"
expect_eq "c1: ... with Allow" "GET, HEAD, POST" "$(header Allow)"
req "$U" -X TRACE
expect_eq "c1: TRACE refused by Apache (TraceEnable Off), not echoed with 200" 405 "$CODE"
req "$U" -u alice:wrong
expect_eq "c1: wrong password: 401" 401 "$CODE"
expect_contains "c1: ... Apache's own 401 (HTML)" "text/html" "$(header Content-Type)"
expect_contains "c1: ... with Apache's challenge" 'Basic realm="cPanel"' "$(header WWW-Authenticate)"
req "$U"
expect_eq "c1: no credentials: Apache's 401" 401 "$CODE"
req "$U" -u dup:pw-dup-first; C1_DUP="$CODE"
req "$U" -u dup:pw-dup-second; C1_DUP="$C1_DUP $CODE"
expect_eq "c1: two htpasswd lines: Apache takes the first line's password only" "200 401" "$C1_DUP"
apache_stop

# --- configuration 2: the program authenticates -----------------------------------------------
# Test-only addition: a second URL for the same program whose htpasswd file does not exist, to
# see a request-time configuration error become a 500 with its detail in Apache's error log.
BROKEN="ScriptAlias \"/broken\" \"$CGI/clamscanner\"
<Location \"/broken\">
  SetEnv CLAMSCANNER_HTPASSWD \"$WORK/no-such-dir/htpasswd\"
</Location>"
apache_start 2 "$CGI" "$HTPASSWD" "$TOKENS" "$H" "$BROKEN" || exit 1
U=$APACHE_URL/cgi-bin/clamscanner

req "$U?last_id=2" "${ALICE[@]}"
expect_eq "c2: Basic credentials: 200" 200 "$CODE"
expect_eq "c2: Basic: the account's records" "3,4,5,6,7,8,9,10" "$(ids .result.data.details)"
req "$U?last_id=2" -H "Authorization: cpanel alice:TOKEN0ALICE0123456789"
expect_eq "c2: cpanel USER:TOKEN: 200" 200 "$CODE"
expect_eq "c2: token: the account's records" "3,4,5,6,7,8,9,10" "$(ids .result.data.details)"
req "$U" -H "Authorization: cpanel alice:WRONGTOKEN"
expect_eq "c2: wrong token: 401" 401 "$CODE"
req "$U" -u alice:wrong
expect_eq "c2: wrong password: 401" 401 "$CODE"
expect_jq "c2: wrong password: the program's JSON" "$BODY" .result.status 0
req "$U" -u dup:pw-dup-first; C2_DUP="$CODE"
req "$U" -u dup:pw-dup-second; C2_DUP="$C2_DUP $CODE"
expect_eq "c2: two htpasswd lines: the program agrees with Apache (c1)" "$C1_DUP" "$C2_DUP"
req "$U"
expect_eq "c2: no Authorization: the program's 401" 401 "$CODE"
expect_eq "c2: ... WWW-Authenticate" 'Basic realm="cPanel", charset="UTF-8"' "$(header WWW-Authenticate)"
expect_eq "c2: ... JSON Content-Type" "application/json; charset=utf-8" "$(header Content-Type)"
expect_jq "c2: ... envelope with status 0 and errors" "$BODY" \
  '[.result.status, (.result.errors | length > 0)] | tojson' '[0,true]'

# stderr reaches the error log: mod_cgid copies the program's stderr there unprefixed, so look
# for a new line that mentions clamscanner and is not one of Apache's own "[date] [module]" lines.
before=$(wc -l <"$APACHE_ERROR_LOG")
req "$APACHE_URL/broken" "${ALICE[@]}"
expect_eq "c2: missing htpasswd file: 500" 500 "$CODE"
check "c2: ... the 500 body is JSON" is_json "$BODY"
new_stderr_line() { tail -n +"$((before + 1))" "$APACHE_ERROR_LOG" | grep -v '^\[' | grep -qi clamscanner; }
for _ in $(seq 50); do new_stderr_line && break; sleep 0.1; done
check "c2: ... the program's stderr line is in Apache's error log" new_stderr_line
apache_stop

# --- configuration 3: cPanel's URL shape, flat envelope ---------------------------------------
apache_start 3 "$CGI" "$HTPASSWD" "$TOKENS" "$H" || exit 1
U=$APACHE_URL/execute/ClamScanner/check_disinfection_status

req "$U?last_id=2" "${ALICE[@]}"
expect_eq "c3: GET /execute/...?last_id=2: 200" 200 "$CODE"
expect_jq "c3: flat form: status/data/errors at the top, no wrapper" "$BODY" \
  '[.status, .errors, has("apiversion"), has("result"), .data.status] | tojson' '[1,null,false,false,"done"]'
expect_eq "c3: GET last_id=2 gives 3..10" "3,4,5,6,7,8,9,10" "$(ids .data.details)"
req "$U" "${ALICE[@]}" --data-binary last_id=2 -H 'Content-Type: application/x-www-form-urlencoded'
expect_eq "c3: POST form body: 200" 200 "$CODE"
expect_eq "c3: POST last_id=2 gives 3..10" "3,4,5,6,7,8,9,10" "$(ids .data.details)"
# cpanel-api style: POST, Content-Length: 0, no Content-Type (curl drops it when set empty).
req "$U" "${ALICE[@]}" --data-binary '' -H 'Content-Type:'
expect_eq "c3: empty POST without Content-Type: 200" 200 "$CODE"
expect_eq "c3: empty POST is the whole log" 10 "$(jqv "$BODY" '.data.details | length')"
req "$U?last_id=2" -H "Authorization: cpanel alice:TOKEN0ALICE0123456789"
expect_eq "c3: token: 200" 200 "$CODE"
req "$U?last_id=abc" "${ALICE[@]}"
expect_jq "c3: bad last_id, flat: 200 with status 0 and data {}" "$BODY" \
  '[.status, (.data | tojson)] | tojson' '[0,"{}"]'
expect_eq "c3: bad last_id: HTTP 200" 200 "$CODE"
req "$APACHE_URL/execute/ClamScanner/start_scan" "${ALICE[@]}"
expect_eq "c3: another function: 404" 404 "$CODE"
req "$U"
expect_eq "c3: no credentials: 401" 401 "$CODE"
apache_stop

# --- the README documents exactly these configurations -----------------------------------------
README=$(cat "$ROOT/README.md" 2>/dev/null)
readme_has() { [[ $README == *"$1"* ]]; }
check "README has a '## Deploying under Apache' section" readme_has "## Deploying under Apache"
for n in 1 2 3; do
  check "README shows configuration $n of cgi-bin/apache-clamscanner.conf verbatim" \
    readme_has "$(apache_snippet "$n")"
done

finish
