#!/usr/bin/env bash
# The command line (`clamscanner uapi`, shaped like cPanel's `uapi`) and `clamscanner htpasswd`.
# Issue 2 item 3. Who may name whom is checked by running the binary as nobody (setpriv).
#
# Fixture: alice (12 records, finished) under HOME_ROOT; a second root OTHER_ROOT where alice has
# a different log (2 records, running), to tell --home-root from CLAMSCANNER_HOME_ROOT; linky,
# whose log is a symlink; nobody, whose home and log belong to uid 65534.
source "$(dirname "$0")/lib.sh"

HOME_ROOT=$WORK/home
OTHER_ROOT=$WORK/other
FN=(ClamScanner check_disinfection_status)
MARKER=SECRET-MARKER-linky-target

make_account "$HOME_ROOT" alice
write_log "$HOME_ROOT/alice/$LOG_NAME" 12 done
make_account "$OTHER_ROOT" alice
write_log "$OTHER_ROOT/alice/$LOG_NAME" 2 running
make_account "$HOME_ROOT" linky
printf '{"id":1,"type":"done","message":"%s"}\n' "$MARKER" >"$WORK/target.log"
ln -s "$WORK/target.log" "$HOME_ROOT/linky/$LOG_NAME"
make_account "$HOME_ROOT" nobody
write_log "$HOME_ROOT/nobody/$LOG_NAME" 3 running
chown -R 65534:65534 "$HOME_ROOT/nobody"

# uapi ARGS...: runs `clamscanner uapi ARGS`; sets OUT, ERR, RC. The environment is cleared of
# CLAMSCANNER_* so that the caller's settings cannot leak in.
uapi() {
  env -u CLAMSCANNER_HOME_ROOT -u CLAMSCANNER_ENVELOPE "${PRE[@]}" "$BIN" uapi "$@" \
    >"$WORK/out" 2>"$WORK/err"
  RC=$?
  OUT=$(cat "$WORK/out") ERR=$(cat "$WORK/err")
}
PRE=()
ids() { jqv "$OUT" '[.result.data.details[].id] | map(tostring) | join(",")'; }
# usage_error DESC ARGS...: exit 2, nothing on stdout, one line on stderr.
usage_error() {
  local d=$1; shift
  uapi "$@"
  expect_eq "$d: exit 2" 2 "$RC"
  expect_eq "$d: stdout empty" "" "$OUT"
  expect_eq "$d: one stderr line" 1 "$(grep -c . "$WORK/err")"
}

# --- the answer --------------------------------------------------------------------------------
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "whole log: exit 0" 0 "$RC"
check "whole log: JSON" is_json "$OUT"
expect_eq "whole log: one line" 1 "$(wc -l <"$WORK/out")"
expect_jq "whole log: wrapped envelope" "$OUT" \
  '[.apiversion, .module, .func, .result.status] | map(tostring) | join(" ")' \
  "3 ClamScanner check_disinfection_status 1"
expect_eq "whole log: every record" "1,2,3,4,5,6,7,8,9,10,11,12" "$(ids)"
expect_jq "whole log: done" "$OUT" .result.data.status done
expect_jq "whole log: log path" "$OUT" .result.data.log "$HOME_ROOT/alice/$LOG_NAME"
expect_jq "whole log: nulls" "$OUT" '[.result.errors, .result.messages, .result.warnings] | map(tostring) | join(",")' \
  "null,null,null"
# Records are copied byte for byte from the log.
verbatim=0
while IFS= read -r record; do
  case $OUT in *"$record"*) verbatim=$((verbatim + 1)) ;; esac
done <"$HOME_ROOT/alice/$LOG_NAME"
expect_eq "whole log: every record copied byte for byte" 12 "$verbatim"
compact=$OUT

uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}" last_id=9
expect_eq "last_id=9: records after 9" "10,11,12" "$(ids)"
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}" last_id=%31%30
expect_eq "last_id=%31%30 is decoded to 10" "11,12" "$(ids)"
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}" last_id=12 unknown=1
expect_eq "last_id=12 (unknown parameters ignored): exit 0" 0 "$RC"
expect_eq "last_id=12: no records" "" "$(ids)"

uapi --user=alice --home-root "$HOME_ROOT" --output=jsonpretty "${FN[@]}"
expect_eq "jsonpretty: exit 0" 0 "$RC"
expect_eq "jsonpretty: same data as json" "$(jqv "$compact" -S)" "$(jqv "$OUT" -S)"
expect_eq "jsonpretty: opens an object" "{" "$(sed -n 1p "$WORK/out")"
check "jsonpretty: 3-space indentation" grep -q '^   "apiversion"' "$WORK/out"
check "jsonpretty: nested 6 spaces" grep -q '^      "data"' "$WORK/out"
check "jsonpretty: several lines" test "$(wc -l <"$WORK/out")" -gt 20
uapi --user=alice --home-root "$HOME_ROOT" --output json "${FN[@]}"
expect_eq "--output json: same as the default" "$compact" "$OUT"

# --- configuration: the environment, and the flag winning over it ------------------------------
PRE=(CLAMSCANNER_HOME_ROOT="$OTHER_ROOT")
uapi --user=alice "${FN[@]}"
expect_eq "CLAMSCANNER_HOME_ROOT: its log" "1,2" "$(ids)"
expect_jq "CLAMSCANNER_HOME_ROOT: its path" "$OUT" .result.data.log "$OTHER_ROOT/alice/$LOG_NAME"
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}"
expect_jq "--home-root wins over the environment" "$OUT" .result.data.log "$HOME_ROOT/alice/$LOG_NAME"
PRE=(CLAMSCANNER_ENVELOPE=flat)
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}"
expect_jq "always wrapped, even with CLAMSCANNER_ENVELOPE=flat" "$OUT" .apiversion 3
PRE=()

# --- failures of the call: status 0, exit 1 ------------------------------------------------------
for v in abc -1 1.5 %zz '%207'; do
  uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}" "last_id=$v"
  expect_eq "last_id=$v: exit 1" 1 "$RC"
  expect_jq "last_id=$v: status 0" "$OUT" .result.status 0
  expect_contains "last_id=$v: names the parameter" last_id "$(jqv "$OUT" '.result.errors[0]')"
done
uapi --user=alice --home-root "$HOME_ROOT" "${FN[@]}" last_id=1 last_id=2
expect_eq "last_id given twice: exit 1" 1 "$RC"
uapi --user=ghost --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "unknown account: exit 1" 1 "$RC"
expect_jq "unknown account: status 0" "$OUT" .result.status 0
expect_contains "unknown account: named" ghost "$(jqv "$OUT" '.result.errors[0]')"
expect_jq "unknown account: data {}" "$OUT" .result.data '{}'
uapi --user=linky --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "log is a symlink: exit 1" 1 "$RC"
expect_jq "log is a symlink: status 0" "$OUT" .result.status 0
expect_contains "log is a symlink: says so" "symbolic link" "$(jqv "$OUT" '.result.errors[0]')"
expect_not_contains "log is a symlink: target not read" "$MARKER" "$OUT"

# --- usage errors: exit 2 ---------------------------------------------------------------------
usage_error "wrong function" --user=alice --home-root "$HOME_ROOT" ClamScanner start_scan
usage_error "wrong module" --user=alice --home-root "$HOME_ROOT" Email check_disinfection_status
usage_error "no function" --user=alice --home-root "$HOME_ROOT" ClamScanner
usage_error "unknown flag" --user=alice --frobnicate "${FN[@]}"
expect_contains "unknown flag: named" frobnicate "$ERR"
usage_error "bad --output" --user=alice --output=xml "${FN[@]}"
usage_error "argument without =" --user=alice --home-root "$HOME_ROOT" "${FN[@]}" 10
usage_error "--user without a value" "${FN[@]}" --user
uapi --help
expect_eq "--help: exit 0" 0 "$RC"
expect_contains "--help: usage" "usage: clamscanner uapi" "$OUT"

# --- who may name whom -------------------------------------------------------------------------
# The binary must be reachable by nobody wherever the clone lives.
cp "$BIN" "$WORK/clamscanner" && chmod 755 "$WORK/clamscanner"
as_nobody() { # ARGS...: uapi as uid/gid 65534
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -u CLAMSCANNER_HOME_ROOT "$WORK/clamscanner" uapi "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  OUT=$(cat "$WORK/out") ERR=$(cat "$WORK/err")
}
as_nobody --user=alice --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "nobody naming alice: exit 2" 2 "$RC"
expect_eq "nobody naming alice: nothing on stdout" "" "$OUT"
expect_contains "nobody naming alice: only root may" "root" "$ERR"
as_nobody --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "nobody, default user: exit 0" 0 "$RC"
expect_jq "nobody, default user: own log" "$OUT" .result.data.log "$HOME_ROOT/nobody/$LOG_NAME"
expect_eq "nobody, default user: own records" "1,2,3" "$(ids)"
as_nobody --user=nobody --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "nobody naming itself: exit 0" 0 "$RC"
# Root's own default is root, which the account database never serves.
uapi "${FN[@]}"
expect_eq "root, default user, account database: exit 1" 1 "$RC"
expect_contains "root, default user: refused by uid 0" "uid 0" "$(jqv "$OUT" '.result.errors[0]')"

# --- clamscanner htpasswd --------------------------------------------------------------------------
PW=cli-Secret-3Rt
line=$(printf '%s\n' "$PW" | "$BIN" htpasswd --cost 4 alice); rc=$?
expect_eq "htpasswd: exit 0" 0 "$rc"
check "htpasswd: a bcrypt line of cost 4" bash -c '[[ $1 =~ ^alice:\$2[aby]\$04\$.{53}$ ]]' _ "$line"
expect_not_contains "htpasswd: password not echoed" "$PW" "$line"
printf '%s\n' "$line" >"$WORK/htpasswd"
printf '\n' | "$BIN" htpasswd --cost 4 alice >/dev/null 2>&1
expect_eq "htpasswd: empty password refused" 2 "$?"
printf 'x\n' | "$BIN" htpasswd --cost 4 ../x >/dev/null 2>&1
expect_eq "htpasswd: bad user name refused" 2 "$?"
printf 'x\n' | "$BIN" htpasswd --cost 15 alice >/dev/null 2>&1
expect_eq "htpasswd: cost over 14 refused" 2 "$?"

start_listener --htpasswd "$WORK/htpasswd" --home-root "$HOME_ROOT" || exit 1
API=/execute/ClamScanner/check_disinfection_status
code=$(curl -s -o "$WORK/body" -w '%{http_code}' -u "alice:$PW" "$LISTENER_URL$API?last_id=11")
expect_eq "htpasswd line accepted by the listener" 200 "$code"
expect_jq "htpasswd line: alice's records" "$(cat "$WORK/body")" '[.result.data.details[].id] | map(tostring) | join(",")' 12
code=$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$PW-x" "$LISTENER_URL$API")
expect_eq "htpasswd line: another password refused" 401 "$code"

finish
