#!/usr/bin/env bash
# lighttpd in front of the program, in the configurations of cgi-bin/lighttpd-clamscanner.conf:
# mod_cgi with lighttpd or the program authenticating, and mod_fastcgi starting the program on
# descriptor 0. Each lighttpd is private (free loopback port); the README shows every block.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/servers_lib.sh"
LIGHTTPD_BIN=${LIGHTTPD_BIN:-/usr/sbin/lighttpd}
require_program "$LIGHTTPD_BIN" lighttpd
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
CONF=$ROOT/cgi-bin/lighttpd-clamscanner.conf

HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
CGI_DIR=$WORK/cgi
# lighttpd (as $WEB_USER) creates the FastCGI socket itself.
mkdir -p "$WORK/run" && chown "$WEB_USER" "$WORK/run"
SOCKET=$WORK/run/clamscanner.sock
make_fixtures
make -s -C "$ROOT" install-cgi DEST="$CGI_DIR" BIN="$BIN" >/dev/null

# lighttpd_start N: a private lighttpd with block N. Sets LIGHTTPD_URL, LIGHTTPD_PID, LIGHTTPD_DIR.
lighttpd_start() {
  local conf port try
  LIGHTTPD_DIR=$(mktemp -d "$WORK/lighttpd.XXXXXX")
  chmod 755 "$LIGHTTPD_DIR"
  mkdir -p "$LIGHTTPD_DIR"/{htdocs,logs}
  chown "$WEB_USER" "$LIGHTTPD_DIR/logs"
  conf=$LIGHTTPD_DIR/lighttpd.conf
  for try in 1 2 3; do
    port=$(free_port)
    {
      printf 'server.document-root = "%s/htdocs"\nserver.bind = "127.0.0.1"\nserver.port = %s\n' "$LIGHTTPD_DIR" "$port"
      printf 'server.errorlog = "%s/logs/error.log"\n' "$LIGHTTPD_DIR"
      # lighttpd changes its user only when started as root.
      [ "$WEB_USER" != www-data ] || printf 'server.username = "www-data"\nserver.groupname = "www-data"\n'
      printf 'server.modules = ( "mod_access", "mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi", "mod_fastcgi" )\n'
      fill "$(conf_block "$CONF" "$1")"
    } >"$conf"
    "$LIGHTTPD_BIN" -tt -f "$conf" >"$LIGHTTPD_DIR/configtest.log" 2>&1 || {
      echo "lighttpd rejected configuration $1:" >&2; cat "$LIGHTTPD_DIR/configtest.log" "$conf" >&2; return 1; }
    "$LIGHTTPD_BIN" -D -f "$conf" 2>>"$LIGHTTPD_DIR/logs/stderr" &
    LIGHTTPD_PID=$!
    on_exit "kill $LIGHTTPD_PID 2>/dev/null; wait $LIGHTTPD_PID 2>/dev/null"
    LIGHTTPD_URL=http://127.0.0.1:$port
    wait_http "$LIGHTTPD_URL/" "$LIGHTTPD_PID" && return 0
  done
  echo "lighttpd did not start:" >&2; cat "$LIGHTTPD_DIR/logs/stderr" "$LIGHTTPD_DIR/logs/error.log" >&2
  return 1
}
lighttpd_stop() { kill "$LIGHTTPD_PID" 2>/dev/null; wait "$LIGHTTPD_PID" 2>/dev/null; }

lighttpd_start 1 || exit 1
U=$LIGHTTPD_URL/cgi/clamscanner
endpoint_checks "l1 (lighttpd auth, mod_cgi)" "$U" wrapped
endpoint_checks "l1 /execute path" "$U/execute/ClamScanner/check_disinfection_status" wrapped
lighttpd_stop

lighttpd_start 2 || exit 1
U=$LIGHTTPD_URL/cgi/clamscanner
endpoint_checks "l2 (program authenticates, mod_cgi)" "$U" wrapped
token_checks "l2" "$U"
expect_eq "l2: the 401 is the program's JSON" "application/json; charset=utf-8" \
  "$(curl -s -o /dev/null -w '%{content_type}' -u alice:wrong "$U")"
endpoint_checks "l2 cPanel URL shape, flat" "$LIGHTTPD_URL/execute/ClamScanner/check_disinfection_status" flat
req "$LIGHTTPD_URL/execute/ClamScanner/start_scan" -u alice:pw-alice
expect_eq "l2: another function under /execute: 404" 404 "$CODE"
lighttpd_stop

lighttpd_start 3 || exit 1
U=$LIGHTTPD_URL/fcgi/clamscanner
endpoint_checks "l3 (lighttpd auth, mod_fastcgi)" "$U" wrapped
endpoint_checks "l3 /execute path" "$U/execute/ClamScanner/check_disinfection_status" wrapped
check "l3: lighttpd started the program as a long-lived FastCGI process" pgrep -f "^$CGI_DIR/clamscanner" >/dev/null
lighttpd_stop
expect_not_contains "l3: no panic in lighttpd's error log" panicked "$(cat "$LIGHTTPD_DIR/logs/error.log" 2>/dev/null)"

readme_shows "$CONF" 1 2 3
finish
