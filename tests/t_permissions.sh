#!/usr/bin/env bash
# The real server's file permissions (issue 9 item 16). On cPanel a home is 0711 and the log
# 0644: the web server's user may search the home and read the log, but not list the home. The
# CGI program runs here as such a user (uid and gid 65534, no groups, through setpriv), for the
# account database (a temporary system account) and for a home root. It must serve the account;
# a home it may not search (0700) must be refused with a message that says so; and the
# isolation rules (symlinks, other owners) must hold as that user too. The listener is run as
# that user as well, and `uapi` as the account itself (its own 0700 home is then readable).
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_test "needs root (useradd, chown, setpriv): run as root for it"
command -v useradd >/dev/null || skip_test "useradd is not installed"

FN=/execute/ClamScanner/check_disinfection_status
ACCT=cs-perm-$$
HOMES=$WORK/homes        # where the system account's home lives
ROOT_DIR=$WORK/root      # a home root (CLAMSCANNER_HOME_ROOT)
# The web server's user must reach the binary wherever the clone lives.
cp "$BIN" "$WORK/clamscanner" && chmod 755 "$WORK/clamscanner"

mkdir -p "$HOMES" "$ROOT_DIR"
chmod 0711 "$HOMES" "$ROOT_DIR"
useradd -M -d "$HOMES/$ACCT" -s /usr/sbin/nologin "$ACCT" || { fail "useradd $ACCT"; finish; exit 1; }
on_exit "userdel $ACCT 2>/dev/null"

# home DIR: a cPanel-style home owned by the account: 0711, a finished log of 5 records, 0644.
home() {
  mkdir -p "$1"
  write_log "$1/$LOG_NAME" 5 done
  chown -R "$ACCT:$ACCT" "$1"
  chmod 0711 "$1"
  chmod 0644 "$1/$LOG_NAME"
}
home "$HOMES/$ACCT"
home "$ROOT_DIR/$ACCT"

# as_server [VAR=VALUE...]: the CGI program for REMOTE_USER=ACCT, as uid/gid 65534; sets BODY.
as_server() {
  BODY=$(body_of "$(setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET PATH_INFO="$FN" \
    REMOTE_USER="$ACCT" "$@" "$WORK/clamscanner" </dev/null)")
}
error() { jqv "$BODY" '.result.errors[0]'; }

for mode in database root; do
  if [ "$mode" = database ]; then
    H=$HOMES/$ACCT SET=()
  else
    H=$ROOT_DIR/$ACCT SET=(CLAMSCANNER_HOME_ROOT="$ROOT_DIR")
  fi
  echo "-- $mode: home 0711, log 0644, read as uid 65534"
  check "$mode: fixture: uid 65534 may not list the home" \
    bash -c '! setpriv --reuid=65534 --regid=65534 --clear-groups ls "$1" >/dev/null 2>&1' _ "$H"
  as_server "${SET[@]}"
  expect_jq "$mode: served" "$BODY" '.result.status' 1
  expect_eq "$mode: every record" "1,2,3,4,5" "$(ids)"
  expect_jq "$mode: done" "$BODY" '.result.data.status' done
  expect_jq "$mode: the log's path" "$BODY" '.result.data.log' "$H/$LOG_NAME"
  as_server "${SET[@]}" QUERY_STRING=last_id=3
  expect_eq "$mode: last_id=3" "4,5" "$(ids)"

  mv "$H/$LOG_NAME" "$WORK/log.aside"
  printf 'queued\n' >"$H/$STATE_NAME"; chown "$ACCT:$ACCT" "$H/$STATE_NAME"; chmod 0644 "$H/$STATE_NAME"
  as_server "${SET[@]}"
  expect_jq "$mode: no log, a 0644 state file: queued" "$BODY" '.result.data.status' queued
  rm -f "$H/$STATE_NAME"
  mv "$WORK/log.aside" "$H/$LOG_NAME"

  echo "-- $mode: what the web server's user may not read"
  chmod 0600 "$H/$LOG_NAME"
  as_server "${SET[@]}"
  expect_jq "$mode: log 0600: refused" "$BODY" '.result.status' 0
  expect_contains "$mode: log 0600: names the log" "$H/$LOG_NAME" "$(error)"
  expect_contains "$mode: log 0600: says why" "Permission denied" "$(error)"
  chmod 0644 "$H/$LOG_NAME"
  chmod 0700 "$H"
  as_server "${SET[@]}"
  expect_jq "$mode: home 0700: refused" "$BODY" '.result.status' 0
  expect_jq "$mode: home 0700: data {}" "$BODY" '.result.data | tostring' '{}'
  expect_contains "$mode: home 0700: names the account" "“$ACCT”" "$(error)"
  expect_contains "$mode: home 0700: says the home may not be searched" \
    "runs as uid 65534, which may not search it" "$(error)"
  expect_contains "$mode: home 0700: says what would do" "0711" "$(error)"
  chmod 0711 "$H"

  echo "-- $mode: the isolation rules, as uid 65534"
  mv "$H/$LOG_NAME" "$WORK/log.aside"
  printf '{"id":1,"type":"done","message":"SECRET-PERM-%s"}\n' "$mode" >"$WORK/secret.log"
  chmod 0644 "$WORK/secret.log"
  ln -s "$WORK/secret.log" "$H/$LOG_NAME"
  as_server "${SET[@]}"
  expect_contains "$mode: a symlinked log is refused" "symbolic link" "$(error)"
  expect_not_contains "$mode: ... and not read" "SECRET-PERM" "$BODY"
  rm "$H/$LOG_NAME"
  cp "$WORK/secret.log" "$H/$LOG_NAME"   # root's file, readable by everyone
  as_server "${SET[@]}"
  expect_contains "$mode: a log of another owner is refused" "owned by uid 0" "$(error)"
  expect_not_contains "$mode: ... and not read" "SECRET-PERM" "$BODY"
  rm "$H/$LOG_NAME"
  mv "$WORK/log.aside" "$H/$LOG_NAME"
done

echo "-- the listener as uid 65534, and uapi as the account itself"
add_htpasswd "$WORK/htpasswd" "$ACCT" "pw-$ACCT"
printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "%s" "$@"\n' \
  "$WORK/clamscanner" >"$WORK/as-server"
chmod 755 "$WORK/as-server"
if BIN=$WORK/as-server start_listener --htpasswd "$WORK/htpasswd" --home-root "$ROOT_DIR"; then
  expect_eq "listener: runs as uid 65534" 65534 "$(awk '/^Uid:/ {print $3}' "/proc/$LISTENER_PID/status")"
  BODY=$(curl -s -u "$ACCT:pw-$ACCT" "$LISTENER_URL$FN?last_id=1")
  expect_eq "listener: a 0711 home is served" "2,3,4,5" "$(ids)"
  kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null
else
  fail "listener: starts as uid 65534"
fi
# uapi reads with the caller's own permissions: the account's own 0700 home is fine.
chmod 0700 "$HOMES/$ACCT"
BODY=$(setpriv --reuid="$ACCT" --regid="$ACCT" --clear-groups "$WORK/clamscanner" uapi \
  ClamScanner check_disinfection_status last_id=4 2>&1)
expect_eq "uapi as the account: its own 0700 home" "5" "$(ids)"
chmod 0711 "$HOMES/$ACCT"

echo "-- a home root the web server's user may not search"
chmod 0700 "$ROOT_DIR"
as_server CLAMSCANNER_HOME_ROOT="$ROOT_DIR"
expect_jq "home root 0700: refused" "$BODY" '.result.status' 0
expect_contains "home root 0700: cannot be opened" "cannot be opened: Permission denied" "$(error)"
chmod 0711 "$ROOT_DIR"
as_server CLAMSCANNER_HOME_ROOT="$ROOT_DIR"
expect_eq "home root 0711 again: served" "1,2,3,4,5" "$(ids)"

finish
