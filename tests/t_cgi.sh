#!/usr/bin/env bash
# The CGI program, driven through its environment as a web server would: routes, envelope
# forms, last_id, every status rule, torn and corrupt logs, limits and refusals in SPEC order,
# credentials, configuration errors. (Apache itself is in t_apache.sh.)
. "$(dirname "$0")/lib.sh"

H=$WORK/home
FN=/execute/ClamScanner/check_disinfection_status
make_account "$H" demo
LOG=$H/demo/$LOG_NAME
write_log "$LOG" 10 done
: > "$WORK/htpasswd"
add_htpasswd "$WORK/htpasswd" demo 's3cr:et'
TOKEN_HASH=$(printf 'TKN123\n' | "$BIN" htpasswd --cost 4 demo)
printf '%s\n' "$TOKEN_HASH" > "$WORK/tokens"
BASIC="Basic $(printf 'demo:s3cr:et' | base64 -w0)"

# ask [VAR=VALUE...]: the CGI program for user demo (REMOTE_USER) unless overridden.
ask() { cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" "$@" < /dev/null; }

echo "-- envelope and headers"
out=$(ask QUERY_STRING=)
split_cgi "$out"
expect_eq "200 has no Status header" 200 "$(status_of "$out")"
expect_contains "content type" "Content-Type: application/json; charset=utf-8" "$CGI_HEADERS"
expect_contains "no-store" "Cache-Control: no-store" "$CGI_HEADERS"
expect_contains "nosniff" "X-Content-Type-Options: nosniff" "$CGI_HEADERS"
expect_jq "wrapped envelope keys" "$CGI_BODY" '[keys[]] | join(",")' "apiversion,func,module,result"
expect_jq "apiversion/func/module" "$CGI_BODY" '"\(.apiversion) \(.module)::\(.func)"' "3 ClamScanner::check_disinfection_status"
expect_jq "result keys" "$CGI_BODY" '.result | [keys[]] | join(",")' "data,errors,messages,metadata,status,warnings"
expect_jq "success has null lists" "$CGI_BODY" '.result | [.errors,.messages,.warnings,.status,.metadata] | tostring' '[null,null,null,1,{}]'
expect_jq "whole log" "$CGI_BODY" '[.result.data.details[].id] | join(",")' "1,2,3,4,5,6,7,8,9,10"
expect_jq "data.log is the absolute path" "$CGI_BODY" '.result.data.log' "$LOG"
expect_jq "finished run is done" "$CGI_BODY" '.result.data.status' "done"
# Records are copied byte for byte: the body holds each log line verbatim.
line5=$(sed -n 5p "$LOG")
expect_contains "records verbatim" "$line5" "$CGI_BODY"

echo "-- last_id"
for q in "last_id=7:8,9,10" "last_id=0:1,2,3,4,5,6,7,8,9,10" "last_id=:1,2,3,4,5,6,7,8,9,10" \
         "last_id=%37:8,9,10" "last_id=0009:10" "x=1&last_id=9&y:10"; do
  b=$(body_of "$(ask QUERY_STRING="${q%%:*}")")
  expect_jq "ids after ${q%%:*}" "$b" '[.result.data.details[].id] | join(",")' "${q#*:}"
done
b=$(body_of "$(ask QUERY_STRING=last_id=10)")
expect_jq "nothing new after the done record" "$b" '.result.data.details | length' 0
expect_jq "still done once everything was seen (cPanel says none)" "$b" '.result.data.status' done
b=$(body_of "$(ask QUERY_STRING=last_id=25)")
expect_jq "last_id past the end: the whole log again" "$b" '.result.data.details | length' 10
expect_contains "with a restart warning" "restarted" "$(jqv "$b" '.result.warnings[0]')"
b=$(body_of "$(ask QUERY_STRING=last_id=$(printf '9%.0s' $(seq 40)))")
expect_jq "40 digits: larger than any id, status 1" "$b" '.result.status' 1
expect_jq "40 digits: whole log" "$b" '.result.data.details | length' 10
for bad in abc -1 1.5 1e3 %207 +7 %zz 7%00; do
  out=$(ask QUERY_STRING="last_id=$bad")
  b=$(body_of "$out")
  expect_eq "last_id=$bad: HTTP 200" 200 "$(status_of "$out")"
  expect_jq "last_id=$bad: status 0" "$b" '.result.status' 0
  expect_jq "last_id=$bad: data {}" "$b" '.result.data | tostring' '{}'
  expect_contains "last_id=$bad: error names the parameter" "last_id" "$(jqv "$b" '.result.errors[0]')"
done
b=$(body_of "$(ask QUERY_STRING='last_id=1&last_id=1')")
expect_jq "repeated last_id refused" "$b" '.result.status' 0
b=$(printf 'last_id=2' | cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=POST \
      QUERY_STRING=last_id=1 CONTENT_LENGTH=9 CONTENT_TYPE=application/x-www-form-urlencoded)
expect_jq "last_id in query and body counts twice" "$(body_of "$b")" '.result.status' 0

echo "-- status rules"
make_account "$H" fresh
b=$(body_of "$(ask REMOTE_USER=fresh)")
expect_jq "no log, no state file: none" "$b" '.result.data.status' none
expect_jq "none still has the log path" "$b" '.result.data.log' "$H/fresh/$LOG_NAME"
for state in queued running; do
  printf '%s\n' "$state" > "$H/fresh/$STATE_NAME"
  b=$(body_of "$(ask REMOTE_USER=fresh)")
  expect_jq "state file says $state" "$b" '.result.data.status' "$state"
done
printf 'exploded\n' > "$H/fresh/$STATE_NAME"
b=$(body_of "$(ask REMOTE_USER=fresh)")
expect_jq "unknown state word: none" "$b" '.result.data.status' none
expect_jq "unknown state word: a warning" "$b" '.result.warnings | length' 1
printf 'running\n' > "$H/fresh/$STATE_NAME"
write_log "$H/fresh/$LOG_NAME" 6 running
b=$(body_of "$(ask REMOTE_USER=fresh)")
expect_jq "records and no done: running" "$b" '.result.data.status' running
b=$(body_of "$(ask REMOTE_USER=fresh QUERY_STRING=last_id=6)")
expect_jq "running even with nothing new" "$b" '.result.data.status' running

echo "-- torn last line and corrupt middle line"
make_account "$H" torn
TL=$H/torn/$LOG_NAME
{ sed -n 1,3p "$LOG"; printf '{"type":"step","file":"x","state":"deleted","id":4'; } > "$TL"
b=$(body_of "$(ask REMOTE_USER=torn)")
expect_jq "torn tail not returned" "$b" '[.result.data.details[].id] | join(",")' "1,2,3"
expect_jq "torn tail not a warning" "$b" '.result.warnings' null
expect_jq "torn tail not counted for status" "$b" '.result.data.status' running
printf '}\n' >> "$TL"
b=$(body_of "$(ask REMOTE_USER=torn QUERY_STRING=last_id=3)")
expect_jq "completed line arrives whole" "$b" '[.result.data.details[].id] | join(",")' "4"
make_account "$H" corrupt
CL=$H/corrupt/$LOG_NAME
{ sed -n 1,4p "$LOG"; echo '{"type":"step","id":'; echo; printf 'garbage\r\n'; sed -n 5,10p "$LOG"; } > "$CL"
b=$(body_of "$(ask REMOTE_USER=corrupt)")
expect_jq "corrupt lines skipped" "$b" '[.result.data.details[].id] | join(",")' "1,2,3,4,5,6,7,8,9,10"
expect_jq "status 1 despite corruption" "$b" '.result.status' 1
expect_jq "one warning" "$b" '.result.warnings | length' 1
expect_contains "warning counts and places them" "2 malformed lines in the log were skipped, the first after the record with id 4" "$(jqv "$b" '.result.warnings[0]')"
b=$(body_of "$(ask REMOTE_USER=corrupt QUERY_STRING=last_id=6)")
expect_jq "lines before last_id are not examined" "$b" '.result.warnings' null

echo "-- bytes that are not UTF-8 survive"
make_account "$H" latin
printf '{"type":"step","file":"caf\xe9.php","state":"deleted","id":1}\n' > "$H/latin/$LOG_NAME"
b=$(body_of "$(ask REMOTE_USER=latin)")
check "answer is valid JSON" is_json "$b"
expect_jq "0xE9 read as U+00E9" "$b" '.result.data.details[0].file' "café.php"

echo "-- a log large enough to be classified on several cores"
make_account "$H" big   # over 8 MiB: the answer is classified in runs on every core
BL=$H/big/$LOG_NAME
python3 "$SHARED/bench/genlog.py" "$BL" 80000 --seed 11 --done --no-state --latin1-frac 0.01
printf 'not json\n' >> "$BL"
python3 "$SHARED/bench/genlog.py" "$WORK/tail.log" 1 --seed 12 --running --no-state
sed 's/"id":1}/"id":80001}/' "$WORK/tail.log" >> "$BL"
ask REMOTE_USER=big > "$WORK/big.out"
verdict=$(PYTHONPATH="$ROOT/tests" python3 - "$BL" "$WORK/big.out" <<'PY'
import json, sys
from testlib import split_cgi
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
_, _, body = split_cgi(open(sys.argv[2], "rb").read())
start = body.index(b'"details":[') + len(b'"details":[')
end = body.index(b'],"log":')
got = body[start:end]
def mapped(raw):  # the answer's mapping of bytes that are not UTF-8 to U+0080..U+00FF
    out = bytearray()
    text = raw.decode("utf-8", errors="surrogateescape")
    for ch in text:
        o = ord(ch)
        out += (chr(o - 0xDC00) if 0xDC80 <= o <= 0xDCFF else ch).encode("utf-8")
    return bytes(out)
want = b",".join(mapped(l) for l in lines if l != b"not json")
doc = json.loads(body)
print("same" if got == want else "different", len(doc["result"]["data"]["details"]), doc["result"]["data"]["status"], doc["result"]["warnings"])
PY
)
expect_eq "11 MB log: every record, byte for byte, in order" "same 80001 running ['1 malformed line in the log was skipped, the first after the record with id 80000.']" "$verdict"

echo "-- flat envelope and configuration errors"
b=$(body_of "$(ask CLAMSCANNER_ENVELOPE=flat QUERY_STRING=last_id=9)")
expect_jq "flat: the result object alone" "$b" '[keys[]] | join(",")' "data,errors,messages,metadata,status,warnings"
expect_jq "flat: data at the top" "$b" '.data.details[0].id' 10
out=$(ask CLAMSCANNER_ENVELOPE=yaml 2>"$WORK/err")
expect_eq "unknown envelope: 500" 500 "$(status_of "$out")"
check "unknown envelope: JSON body" is_json "$(body_of "$out")"
expect_contains "unknown envelope: detail on stderr" "CLAMSCANNER_ENVELOPE" "$(cat "$WORK/err")"
expect_not_contains "no internal detail in the body" "yaml" "$(body_of "$out")"

echo "-- routes, methods and limits, in SPEC order"
out=$(ask PATH_INFO=)
expect_eq "empty PATH_INFO is the function" 200 "$(status_of "$out")"
out=$(ask PATH_INFO=/ClamScanner/check_disinfection_status)
expect_eq "short route" 200 "$(status_of "$out")"
out=$(ask PATH_INFO=/execute/ClamScanner/start_scan)
expect_eq "other function: 404" 404 "$(status_of "$out")"
check "404 body is JSON" is_json "$(body_of "$out")"
out=$(ask PATH_INFO=/x REQUEST_METHOD=PUT)
expect_eq "404 before 405" 404 "$(status_of "$out")"
for m in PUT DELETE OPTIONS; do
  out=$(cgi REQUEST_METHOD=$m PATH_INFO="$FN" CLAMSCANNER_HOME_ROOT="$H" </dev/null)
  expect_eq "$m: 405 before 401" 405 "$(status_of "$out")"
  split_cgi "$out"
  expect_contains "$m: Allow header" "Allow: GET, HEAD, POST" "$CGI_HEADERS"
done
long=$(printf 'a%.0s' $(seq 8193))
out=$(cgi PATH_INFO="$FN" QUERY_STRING="x=$long" </dev/null)
expect_eq "query over 8 KiB: 414 before 401" 414 "$(status_of "$out")"
out=$(cgi PATH_INFO="$FN" QUERY_STRING="$(printf 'a%.0s' $(seq 8192))" REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" </dev/null)
expect_eq "query of exactly 8 KiB is served" 200 "$(status_of "$out")"
out=$(head -c 70000 /dev/zero | tr '\0' a | cgi REQUEST_METHOD=POST PATH_INFO="$FN" CONTENT_LENGTH=70000 CONTENT_TYPE=application/json)
expect_eq "body over 64 KiB: 413 before 415 and 401" 413 "$(status_of "$out")"
out=$(head -c 70000 /dev/zero | tr '\0' a | cgi REQUEST_METHOD=POST PATH_INFO="$FN")
expect_eq "de-chunked body (no CONTENT_LENGTH) over 64 KiB: 413" 413 "$(status_of "$out")"
out=$(printf '{"last_id":1}' | cgi REQUEST_METHOD=POST PATH_INFO="$FN" CONTENT_LENGTH=13 CONTENT_TYPE=application/json)
expect_eq "JSON body: 415 before 401" 415 "$(status_of "$out")"
out=$(printf 'last_id=8' | cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=POST CONTENT_LENGTH=9 CONTENT_TYPE='application/x-www-form-urlencoded; charset=UTF-8')
expect_jq "POST form body" "$(body_of "$out")" '[.result.data.details[].id] | join(",")' "9,10"
out=$(printf 'last_id=8' | cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=POST)
expect_jq "POST with a de-chunked body" "$(body_of "$out")" '[.result.data.details[].id] | join(",")' "9,10"
out=$(cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=POST CONTENT_LENGTH=0 </dev/null)
expect_jq "POST with Content-Length 0 and no type" "$(body_of "$out")" '.result.data.details | length' 10
out=$(printf 'last_id=9' | cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=GET CONTENT_LENGTH=9)
expect_jq "a GET body is ignored" "$(body_of "$out")" '.result.data.details | length' 10
out=$(cgi REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" REQUEST_METHOD=HEAD </dev/null)
split_cgi "$out"
expect_contains "HEAD: headers" "Content-Type: application/json" "$CGI_HEADERS"
expect_eq "HEAD: no body" "" "$CGI_BODY"
# Apache turns `?serve+--help` into argv; in CGI mode argv is never read.
out=$(env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET REMOTE_USER=demo CLAMSCANNER_HOME_ROOT="$H" \
      PATH_INFO="$FN" QUERY_STRING='serve+--help' "$BIN" serve --help </dev/null)
expect_jq "argv ignored in CGI mode" "$(body_of "$out")" '.result.status' 1

echo "-- credentials"
auth() { cgi CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" CLAMSCANNER_HTPASSWD="$WORK/htpasswd" \
         CLAMSCANNER_TOKENS="$WORK/tokens" QUERY_STRING=last_id=9 "$@" </dev/null; }
out=$(auth HTTP_AUTHORIZATION="$BASIC")
expect_jq "Basic (password with a colon)" "$(body_of "$out")" '.result.data.details[0].id' 10
out=$(auth HTTP_AUTHORIZATION="basic $(printf 'demo:s3cr:et' | base64 -w0 | tr -d =)")
expect_eq "lowercase scheme, unpadded base64" 200 "$(status_of "$out")"
out=$(auth HTTP_AUTHORIZATION="cpanel demo:TKN123")
expect_jq "cpanel API token" "$(body_of "$out")" '.result.status' 1
for bad in "Basic $(printf 'demo:wrong' | base64 -w0)" "Basic $(printf 'ghost:s3cr:et' | base64 -w0)" \
           "cpanel demo:WRONG" "Basic !!!" "Bearer x" "Basic" "cpanel demo" \
           "Basic $(printf '../etc:x' | base64 -w0)"; do
  out=$(auth HTTP_AUTHORIZATION="$bad")
  split_cgi "$out"
  expect_eq "refused: ${bad:0:24}" 401 "$(status_of "$out")"
  expect_contains "challenge: ${bad:0:24}" 'WWW-Authenticate: Basic realm="cPanel", charset="UTF-8"' "$CGI_HEADERS"
  expect_jq "401 envelope: ${bad:0:24}" "$CGI_BODY" '.result.status' 0
done
out=$(auth)
expect_eq "no credentials: 401" 401 "$(status_of "$out")"
out=$(cgi CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" </dev/null 2>"$WORK/err")
expect_eq "nothing configured: 401 (fail closed)" 401 "$(status_of "$out")"
expect_contains "nothing configured: says what to configure" "CLAMSCANNER_HTPASSWD" "$(cat "$WORK/err")"
out=$(cgi CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" CLAMSCANNER_HTPASSWD="$WORK/missing" \
      HTTP_AUTHORIZATION="$BASIC" </dev/null 2>"$WORK/err")
expect_eq "unreadable htpasswd: 500" 500 "$(status_of "$out")"
expect_contains "unreadable htpasswd: detail on stderr" "$WORK/missing" "$(cat "$WORK/err")"
expect_not_contains "unreadable htpasswd: no path in the body" "$WORK" "$(body_of "$out")"
out=$(ask REMOTE_USER='../demo')
expect_eq "bad REMOTE_USER: 403" 403 "$(status_of "$out")"
check "403 body is JSON" is_json "$(body_of "$out")"
b=$(body_of "$(ask REMOTE_USER=nobody-here)")
expect_jq "unknown account: status 0" "$b" '.result.status' 0
expect_contains "unknown account: named" "nobody-here" "$(jqv "$b" '.result.errors[0]')"

finish
