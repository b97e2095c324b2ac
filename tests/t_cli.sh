#!/usr/bin/env bash
# The command line (`clamscanner uapi`, shaped like cPanel's `uapi`) and `clamscanner htpasswd`.
# Issue 2 item 3. Who may name whom is checked as a user that is not root: as root, by running
# the binary as nobody (setpriv); otherwise as the caller.
#
# Fixture, one home root per case: ALICE (12 records, finished) under HOME_ROOT; OTHER_ROOT where
# ALICE has a different log (2 records, running), to tell --home-root from CLAMSCANNER_HOME_ROOT;
# LINK_ROOT where LINKY's log is a symlink; GHOST_ROOT, empty; SELF_ROOT where SELF, the user that
# is not root, has 3 records. As root these are alice, linky, ghost and nobody (uid 65534). A user
# that is not root may name only itself, so then every one of them is the caller's own name.
source "$(dirname "$0")/lib.sh"

HOME_ROOT=$WORK/home
OTHER_ROOT=$WORK/other
LINK_ROOT=$WORK/link
GHOST_ROOT=$WORK/ghost
SELF_ROOT=$WORK/self
FN=(ClamScanner check_disinfection_status)
MARKER=SECRET-MARKER-linky-target

if [ "$(id -u)" -eq 0 ]; then
  ALICE=alice LINKY=linky GHOST=ghost SELF=nobody
else
  ME=$(id -un)
  [[ $ME =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$ ]] ||
    skip_test "your user name ($ME) is not a valid account name; run as another user or root"
  ALICE=$ME LINKY=$ME GHOST=$ME SELF=$ME
fi
OTHER=alice # someone else, for the refusal
[ "$SELF" != alice ] || OTHER=bob

make_account "$HOME_ROOT" "$ALICE"
write_log "$HOME_ROOT/$ALICE/$LOG_NAME" 12 done
make_account "$OTHER_ROOT" "$ALICE"
write_log "$OTHER_ROOT/$ALICE/$LOG_NAME" 2 running
make_account "$LINK_ROOT" "$LINKY"
printf '{"id":1,"type":"done","message":"%s"}\n' "$MARKER" >"$WORK/target.log"
ln -s "$WORK/target.log" "$LINK_ROOT/$LINKY/$LOG_NAME"
mkdir -p "$GHOST_ROOT"
make_account "$SELF_ROOT" "$SELF"
write_log "$SELF_ROOT/$SELF/$LOG_NAME" 3 running
[ "$(id -u)" -ne 0 ] || chown -R 65534:65534 "$SELF_ROOT/$SELF"

# uapi ARGS...: runs `clamscanner uapi ARGS`; sets OUT, ERR, RC. The environment is cleared of
# CLAMSCANNER_* so that the caller's settings cannot leak in.
uapi() {
  env -u CLAMSCANNER_HOME_ROOT -u CLAMSCANNER_ENVELOPE "${PRE[@]}" "$BIN" uapi "$@" \
    >"$WORK/out" 2>"$WORK/err"
  RC=$?
  OUT=$(cat "$WORK/out") ERR=$(cat "$WORK/err") BODY=$(cat "$WORK/out") # BODY for lib.sh's ids
}
PRE=()
# usage_error DESC ARGS...: exit 2, nothing on stdout, one line on stderr.
usage_error() {
  local d=$1; shift
  uapi "$@"
  expect_eq "$d: exit 2" 2 "$RC"
  expect_eq "$d: stdout empty" "" "$OUT"
  expect_eq "$d: one stderr line" 1 "$(grep -c . "$WORK/err")"
}

# --- the answer --------------------------------------------------------------------------------
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "whole log: exit 0" 0 "$RC"
check "whole log: JSON" is_json "$OUT"
expect_eq "whole log: one line" 1 "$(wc -l <"$WORK/out")"
expect_jq "whole log: wrapped envelope" "$OUT" \
  '[.apiversion, .module, .func, .result.status] | map(tostring) | join(" ")' \
  "3 ClamScanner check_disinfection_status 1"
expect_eq "whole log: every record" "1,2,3,4,5,6,7,8,9,10,11,12" "$(ids)"
expect_jq "whole log: done" "$OUT" .result.data.status done
expect_jq "whole log: log path" "$OUT" .result.data.log "$HOME_ROOT/$ALICE/$LOG_NAME"
expect_jq "whole log: nulls" "$OUT" '[.result.errors, .result.messages, .result.warnings] | map(tostring) | join(",")' \
  "null,null,null"
# Records are copied byte for byte from the log.
verbatim=0
while IFS= read -r record; do
  case $OUT in *"$record"*) verbatim=$((verbatim + 1)) ;; esac
done <"$HOME_ROOT/$ALICE/$LOG_NAME"
expect_eq "whole log: every record copied byte for byte" 12 "$verbatim"
compact=$OUT

uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=9
expect_eq "last_id=9: records after 9" "10,11,12" "$(ids)"
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=%31%30
expect_eq "last_id=%31%30 is decoded to 10" "11,12" "$(ids)"
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=12 unknown=1
expect_eq "last_id=12 (unknown parameters ignored): exit 0" 0 "$RC"
expect_eq "last_id=12: no records" "" "$(ids)"

uapi --user="$ALICE" --home-root "$HOME_ROOT" --output=jsonpretty "${FN[@]}"
expect_eq "jsonpretty: exit 0" 0 "$RC"
expect_eq "jsonpretty: same data as json" "$(jqv "$compact" -S)" "$(jqv "$OUT" -S)"
expect_eq "jsonpretty: opens an object" "{" "$(sed -n 1p "$WORK/out")"
check "jsonpretty: 3-space indentation" grep -q '^   "apiversion"' "$WORK/out"
check "jsonpretty: nested 6 spaces" grep -q '^      "data"' "$WORK/out"
check "jsonpretty: several lines" test "$(wc -l <"$WORK/out")" -gt 20
uapi --user="$ALICE" --home-root "$HOME_ROOT" --output json "${FN[@]}"
expect_eq "--output json: same as the default" "$compact" "$OUT"

# --- configuration: the environment, and the flag winning over it ------------------------------
PRE=(CLAMSCANNER_HOME_ROOT="$OTHER_ROOT")
uapi --user="$ALICE" "${FN[@]}"
expect_eq "CLAMSCANNER_HOME_ROOT: its log" "1,2" "$(ids)"
expect_jq "CLAMSCANNER_HOME_ROOT: its path" "$OUT" .result.data.log "$OTHER_ROOT/$ALICE/$LOG_NAME"
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}"
expect_jq "--home-root wins over the environment" "$OUT" .result.data.log "$HOME_ROOT/$ALICE/$LOG_NAME"
PRE=(CLAMSCANNER_ENVELOPE=flat)
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}"
expect_jq "always wrapped, even with CLAMSCANNER_ENVELOPE=flat" "$OUT" .apiversion 3
# The command line is no web request: of the environment it reads CLAMSCANNER_HOME_ROOT alone,
# so settings that are bad for a web front end cannot stop it (the code before this check read
# them all, and exited 2 on CLAMSCANNER_ENVELOPE=bogus).
PRE=(CLAMSCANNER_ENVELOPE=bogus CLAMSCANNER_TRUST_REMOTE_USER=bogus)
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=11
expect_eq "CLAMSCANNER_ENVELOPE=bogus: exit 0" 0 "$RC"
expect_jq "CLAMSCANNER_ENVELOPE=bogus: wrapped" "$OUT" '[.apiversion, .result.status] | map(tostring) | join(" ")' "3 1"
expect_eq "CLAMSCANNER_ENVELOPE=bogus: the records" "12" "$(ids)"
expect_eq "CLAMSCANNER_ENVELOPE=bogus: nothing on stderr" "" "$ERR"
PRE=(CLAMSCANNER_HTPASSWD="$WORK/no-such-htpasswd" CLAMSCANNER_TOKENS="$WORK/no-such-tokens")
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=11
expect_eq "CLAMSCANNER_HTPASSWD/TOKENS (missing files) ignored: exit 0" 0 "$RC"
expect_eq "CLAMSCANNER_HTPASSWD/TOKENS ignored: the records" "12" "$(ids)"
expect_eq "CLAMSCANNER_HTPASSWD/TOKENS ignored: nothing on stderr" "" "$ERR"
PRE=()
# Nor do HTTP's limits apply to arguments: over 8 KiB of them is answered (the code before
# this check answered 414 "The query string is longer than 8 KiB." and exit 1).
long_id="last_id=$(printf '0%.0s' $(seq 1 9000))9"
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" "$long_id"
expect_eq "a 9 KB last_id (leading zeros): exit 0" 0 "$RC"
expect_eq "a 9 KB last_id: records after 9" "10,11,12" "$(ids)"
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=10 "pad=$(head -c 20000 /dev/zero | tr '\0' x)"
expect_eq "20 KB of arguments: exit 0" 0 "$RC"
expect_jq "20 KB of arguments: status 1" "$OUT" .result.status 1
expect_eq "20 KB of arguments: records after 10" "11,12" "$(ids)"

# --- failures of the call: status 0, exit 1 ------------------------------------------------------
for v in abc -1 1.5 %zz '%207'; do
  uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" "last_id=$v"
  expect_eq "last_id=$v: exit 1" 1 "$RC"
  expect_jq "last_id=$v: status 0" "$OUT" .result.status 0
  expect_contains "last_id=$v: names the parameter" last_id "$(jqv "$OUT" '.result.errors[0]')"
done
uapi --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" last_id=1 last_id=2
expect_eq "last_id given twice: exit 1" 1 "$RC"
uapi --user="$GHOST" --home-root "$GHOST_ROOT" "${FN[@]}"
expect_eq "unknown account: exit 1" 1 "$RC"
expect_jq "unknown account: status 0" "$OUT" .result.status 0
expect_contains "unknown account: named" "$GHOST" "$(jqv "$OUT" '.result.errors[0]')"
expect_jq "unknown account: data {}" "$OUT" .result.data '{}'
uapi --user="$LINKY" --home-root "$LINK_ROOT" "${FN[@]}"
expect_eq "log is a symlink: exit 1" 1 "$RC"
expect_jq "log is a symlink: status 0" "$OUT" .result.status 0
expect_contains "log is a symlink: says so" "symbolic link" "$(jqv "$OUT" '.result.errors[0]')"
expect_not_contains "log is a symlink: target not read" "$MARKER" "$OUT"

# --- usage errors: exit 2 ---------------------------------------------------------------------
usage_error "wrong function" --user="$ALICE" --home-root "$HOME_ROOT" ClamScanner start_scan
usage_error "wrong module" --user="$ALICE" --home-root "$HOME_ROOT" Email check_disinfection_status
usage_error "no function" --user="$ALICE" --home-root "$HOME_ROOT" ClamScanner
usage_error "unknown flag" --user="$ALICE" --frobnicate "${FN[@]}"
expect_contains "unknown flag: named" frobnicate "$ERR"
usage_error "bad --output" --user="$ALICE" --output=xml "${FN[@]}"
usage_error "argument without =" --user="$ALICE" --home-root "$HOME_ROOT" "${FN[@]}" 10
usage_error "--user without a value" "${FN[@]}" --user
uapi --help
expect_eq "--help: exit 0" 0 "$RC"
expect_contains "--help: usage" "usage: clamscanner uapi" "$OUT"

# --- who may name whom -------------------------------------------------------------------------
# as_self ARGS...: uapi as SELF, a user that is not root (as root: uid/gid 65534 through setpriv,
# with a copy of the binary that nobody can reach wherever the clone lives).
if [ "$(id -u)" -eq 0 ]; then
  cp "$BIN" "$WORK/clamscanner" && chmod 755 "$WORK/clamscanner"
  as_self() {
    setpriv --reuid=65534 --regid=65534 --clear-groups \
      env -u CLAMSCANNER_HOME_ROOT "$WORK/clamscanner" uapi "$@" >"$WORK/out" 2>"$WORK/err"
    RC=$?
    OUT=$(cat "$WORK/out") ERR=$(cat "$WORK/err") BODY=$(cat "$WORK/out")
  }
else
  as_self() { uapi "$@"; }
fi
as_self --user="$OTHER" --home-root "$HOME_ROOT" "${FN[@]}"
expect_eq "$SELF naming $OTHER: exit 2" 2 "$RC"
expect_eq "$SELF naming $OTHER: nothing on stdout" "" "$OUT"
expect_contains "$SELF naming $OTHER: only root may" "root" "$ERR"
as_self --home-root "$SELF_ROOT" "${FN[@]}"
expect_eq "$SELF, default user: exit 0" 0 "$RC"
expect_jq "$SELF, default user: own log" "$OUT" .result.data.log "$SELF_ROOT/$SELF/$LOG_NAME"
expect_eq "$SELF, default user: own records" "1,2,3" "$(ids)"
as_self --user="$SELF" --home-root "$SELF_ROOT" "${FN[@]}"
expect_eq "$SELF naming itself: exit 0" 0 "$RC"
# Root's own default is root, which the account database never serves.
if needs_root "the checks of root's own default account"; then
  uapi "${FN[@]}"
  expect_eq "root, default user, account database: exit 1" 1 "$RC"
  expect_contains "root, default user: refused by uid 0" "uid 0" "$(jqv "$OUT" '.result.errors[0]')"
  # Root may name anyone, but only an account name is opened. Nobody authenticates on the
  # command line, so the refusal is the account's, not a web server's (the code before this
  # check answered 403's "The web server named a user…", or for an empty name 401's
  # "Authentication is required…" with a line about REMOTE_USER on stderr).
  for name in ../x ''; do
    uapi --user="$name" --home-root "$HOME_ROOT" "${FN[@]}"
    expect_eq "root naming '$name': exit 1" 1 "$RC"
    expect_jq "root naming '$name': the account refused" "$OUT" '.result.errors[0]' \
      "The user name is not a valid account name."
    expect_eq "root naming '$name': nothing on stderr" "" "$ERR"
  done
fi

# --- clamscanner htpasswd --------------------------------------------------------------------------
PW=cli-Secret-3Rt
line=$(printf '%s\n' "$PW" | "$BIN" htpasswd --cost 4 "$ALICE"); rc=$?
expect_eq "htpasswd: exit 0" 0 "$rc"
check "htpasswd: a bcrypt line of cost 4" bash -c '[[ $1 == "$2":* && ${1#"$2":} =~ ^\$2[aby]\$04\$.{53}$ ]]' _ "$line" "$ALICE"
expect_not_contains "htpasswd: password not echoed" "$PW" "$line"
printf '%s\n' "$line" >"$WORK/htpasswd"
printf '\n' | "$BIN" htpasswd --cost 4 alice >/dev/null 2>&1
expect_eq "htpasswd: empty password refused" 2 "$?"
printf 'x\n' | "$BIN" htpasswd --cost 4 ../x >/dev/null 2>&1
expect_eq "htpasswd: bad user name refused" 2 "$?"
printf 'x\n' | "$BIN" htpasswd --cost 15 alice >/dev/null 2>&1
expect_eq "htpasswd: cost over 14 refused" 2 "$?"
# --help and --version as for every subcommand: exit 0, stdout only, no password read.
for flag in --help -h; do
  out=$("$BIN" htpasswd "$flag" </dev/null 2>"$WORK/err"); rc=$?
  expect_eq "htpasswd $flag: exit 0" 0 "$rc"
  expect_contains "htpasswd $flag: usage on stdout" "usage: " "$out"
  expect_contains "htpasswd $flag: names --cost" "--cost" "$out"
  expect_eq "htpasswd $flag: nothing on stderr" "" "$(cat "$WORK/err")"
done
out=$("$BIN" htpasswd --version </dev/null); rc=$?
expect_eq "htpasswd --version: exit 0" 0 "$rc"
expect_eq "htpasswd --version: the version line" "$("$BIN" --version)" "$out"

# --- exit codes and the stderr line, decided in one place (src/main.rs) ------------------------
for sub in uapi serve fastcgi simulate watch; do
  env -u CLAMSCANNER_ENVELOPE "$BIN" "$sub" --frobnicate </dev/null >"$WORK/out" 2>"$WORK/err"; rc=$?
  expect_eq "$sub --frobnicate: exit 2" 2 "$rc"
  expect_eq "$sub --frobnicate: stdout empty" "" "$(cat "$WORK/out")"
  expect_eq "$sub --frobnicate: the one line, named after the subcommand" \
    "clamscanner $sub: unknown option --frobnicate (see --help)" "$(cat "$WORK/err")"
done
printf 'x\n' | "$BIN" htpasswd --frobnicate alice >"$WORK/out" 2>"$WORK/err"; rc=$?
expect_eq "htpasswd --frobnicate: exit 2" 2 "$rc"
expect_eq "htpasswd --frobnicate: the line first" "clamscanner htpasswd: unknown option --frobnicate" \
  "$(sed -n 1p "$WORK/err")"
expect_contains "htpasswd --frobnicate: then the usage" "usage: " "$(sed -n 2p "$WORK/err")"
for args in "" frobnicate; do
  # shellcheck disable=SC2086 # no argument at all for ""
  env -u GATEWAY_INTERFACE "$BIN" $args </dev/null >"$WORK/out" 2>"$WORK/err"; rc=$?
  expect_eq "clamscanner ${args:-(nothing)}: exit 2" 2 "$rc"
  expect_eq "clamscanner ${args:-(nothing)}: stdout empty" "" "$(cat "$WORK/out")"
  expect_contains "clamscanner ${args:-(nothing)}: the usage on stderr" "usage: clamscanner serve" "$(cat "$WORK/err")"
done
out=$("$BIN" --help 2>"$WORK/err"); rc=$?
expect_eq "clamscanner --help: exit 0" 0 "$rc"
expect_contains "clamscanner --help: the usage on stdout" "usage: clamscanner serve" "$out"

start_listener --htpasswd "$WORK/htpasswd" --home-root "$HOME_ROOT" || exit 1
API=/execute/ClamScanner/check_disinfection_status
code=$(curl -s -o "$WORK/body" -w '%{http_code}' -u "$ALICE:$PW" "$LISTENER_URL$API?last_id=11")
expect_eq "htpasswd line accepted by the listener" 200 "$code"
BODY=$(cat "$WORK/body")
expect_eq "htpasswd line: $ALICE's records" 12 "$(ids)"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$ALICE:$PW-x" "$LISTENER_URL$API")
expect_eq "htpasswd line: another password refused" 401 "$code"

finish
