#!/usr/bin/env bash
# Duplicate lines in the credential files, through the CGI program (configuration 2: the program
# authenticates) and the listener: in the htpasswd file the first line for a user counts, as in
# Apache, and each later one is reported once per load on stderr without its hash; the tokens
# file keeps every line (issue 9 item 10). Also: a password changed in place is refused at once.
# The cache race (item 8) and the equal bcrypt work (item 9) are unit tests in src/auth.rs.
source "$(dirname "$0")/lib.sh"

API=/execute/ClamScanner/check_disinfection_status
H=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
PW_FIRST=alice-First-3Rt
PW_SECOND=alice-Second-8Vb
PW_BOB=bob-Secret-6Jd
TOKEN_1=TOKEN1ALICE7788SECRET
TOKEN_2=TOKEN2ALICE9900SECRET
for u in alice bob; do make_account "$H" "$u"; done
write_log "$H/alice/$LOG_NAME" 3 done
add_htpasswd "$HTPASSWD" alice "$PW_FIRST"
add_htpasswd "$HTPASSWD" bob "$PW_BOB"
add_htpasswd "$HTPASSWD" alice "$PW_SECOND"   # line 3: a second line for alice
add_htpasswd "$TOKENS" alice "$TOKEN_1"
add_htpasswd "$TOKENS" alice "$TOKEN_2"
SECOND_HASH=$(sed -n '3s/^alice://p' "$HTPASSWD")

# not_leaked FILE: no secret and no hash of the file appears in FILE.
not_leaked() {
  local s
  for s in "$PW_FIRST" "$PW_SECOND" "$PW_BOB" "$TOKEN_1" "$TOKEN_2" '$2y$'; do
    if grep -qF -- "$s" "$1"; then return 1; fi
  done
}
duplicate_lines() { grep -c 'line 3 (user alice): another line for this user (line 1) comes first' "$1"; }

# --- the CGI program ---------------------------------------------------------------------------
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
# run_cgi AUTHORIZATION: sets CODE (the Status header, 200 when absent) and leaves stderr in $WORK/err.
run_cgi() {
  local out
  out=$(cgi CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$API" CLAMSCANNER_HTPASSWD="$HTPASSWD" \
    CLAMSCANNER_TOKENS="$TOKENS" HTTP_AUTHORIZATION="$1" </dev/null 2>"$WORK/err")
  split_cgi "$out"
  CODE=$(printf '%s\n' "$CGI_HEADERS" | sed -n 's/^Status: \([0-9]*\).*/\1/p')
  CODE=${CODE:-200}
}
run_cgi "$(basic alice "$PW_FIRST")"
expect_eq "cgi: the first line's password: 200" 200 "$CODE"
expect_jq "cgi: ... alice's records" "$CGI_BODY" '.result.data.details | length' 3
expect_eq "cgi: the duplicate is reported once" 1 "$(duplicate_lines "$WORK/err")"
check "cgi: ... without any hash or secret" not_leaked "$WORK/err"
run_cgi "$(basic alice "$PW_SECOND")"
expect_eq "cgi: the second line's password: 401, as Apache answers" 401 "$CODE"
expect_jq "cgi: ... the wrong-password answer" "$CGI_BODY" .result.status 0
run_cgi "$(basic bob "$PW_BOB")"
expect_eq "cgi: a line after another user's: 200" 200 "$CODE"
run_cgi "cpanel alice:$TOKEN_1"
expect_eq "cgi: first token of two: 200" 200 "$CODE"
run_cgi "cpanel alice:$TOKEN_2"
expect_eq "cgi: second token of two: 200" 200 "$CODE"
expect_eq "cgi: several tokens per user are not reported" 0 "$(grep -c 'tokens' "$WORK/err")"

# --- the listener ------------------------------------------------------------------------------
start_listener --htpasswd "$HTPASSWD" --tokens "$TOKENS" --home-root "$H" || exit 1
URL=$LISTENER_URL
code() { curl -s -o /dev/null -w '%{http_code}' "$@" "$URL$API"; }
expect_eq "listener: the first line's password: 200" 200 "$(code -u "alice:$PW_FIRST")"
expect_eq "listener: the second line's password: 401" 401 "$(code -u "alice:$PW_SECOND")"
expect_eq "listener: ... still 401 after a cached success" 401 "$(code -u "alice:$PW_SECOND")"
expect_eq "listener: first token: 200" 200 "$(code -H "Authorization: cpanel alice:$TOKEN_1")"
expect_eq "listener: second token: 200" 200 "$(code -H "Authorization: cpanel alice:$TOKEN_2")"
# The listener loaded the file once (at start) and has answered since: one report so far.
expect_eq "listener: the duplicate reported once per load" 1 "$(duplicate_lines "$LISTENER_LOG")"

# Rewritten in place, same size (a bcrypt line is always as long): the first alice line now
# holds the second password. The old first password dies at once, cache or not.
{
  sed -n 1p "$HTPASSWD" | sed "s|^alice:.*|alice:$SECOND_HASH|"
  sed -n '2,$p' "$HTPASSWD"
} >"$WORK/htpasswd.new"
expect_eq "fixture: the rewrite keeps the size" "$(stat -c %s "$HTPASSWD")" "$(stat -c %s "$WORK/htpasswd.new")"
cat "$WORK/htpasswd.new" >"$HTPASSWD"
expect_eq "listener: after the rewrite the old first password: 401" 401 "$(code -u "alice:$PW_FIRST")"
expect_eq "listener: ... the new first line's password: 200" 200 "$(code -u "alice:$PW_SECOND")"
expect_eq "listener: the reload reported the duplicate again, once" 2 "$(duplicate_lines "$LISTENER_LOG")"
check "listener: stderr holds no hash or secret" not_leaked "$LISTENER_LOG"
expect_eq "listener: no panic" 0 "$(grep -c panicked "$LISTENER_LOG")"

finish
