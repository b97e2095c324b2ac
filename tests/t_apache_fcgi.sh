#!/usr/bin/env bash
# Apache 2.4 in front of the FastCGI program, in the configurations of cgi-bin/apache-fastcgi.conf:
# mod_proxy_fcgi to the program's unix socket (Apache authenticates, or the program does with
# CGIPassAuth), and mod_fcgid starting the program itself on descriptor 0. Each configuration is
# its own Apache (tests/apache_lib.sh) on a free loopback port; the README must show each block.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/apache_lib.sh"
source "$(dirname "$0")/servers_lib.sh"
apache_require
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
CONF=$ROOT/cgi-bin/apache-fastcgi.conf

HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
SOCKET=$WORK/run/clamscanner.sock
CGI_DIR=$WORK/cgi
mkdir -p "$WORK/run" && chmod 755 "$WORK/run"
make_fixtures
make -s -C "$ROOT" install-cgi DEST="$CGI_DIR" BIN="$BIN" >/dev/null

# --- 1: mod_proxy_fcgi, Apache authenticates -------------------------------------------------
BLOCK=$(conf_block "$CONF" 1)
start_backend "$BLOCK" "$WORK/backend1.log" || exit 1
use_block "$CONF" 1 proxy proxy_fcgi
apache_start 1 "$CGI_DIR" "$HTPASSWD" "$TOKENS" "$HOME_ROOT" || exit 1
U=$APACHE_URL/clamscanner
endpoint_checks "a1 (Apache auth, mod_proxy_fcgi)" "$U" wrapped
endpoint_checks "a1 /execute path" "$U/execute/ClamScanner/check_disinfection_status" wrapped
expect_contains "a1: the wrong password was refused by Apache itself (HTML 401)" "text/html" \
  "$(curl -s -o /dev/null -w '%{content_type}' -u alice:wrong "$U")"
req "$U/ClamScanner/other" -u alice:pw-alice
expect_eq "a1: another function: 404" 404 "$CODE"
apache_stop; stop_backend
expect_not_contains "a1: the program's stderr has no panic" panicked "$(cat "$WORK/backend1.log")"

# --- 2: mod_proxy_fcgi, the program authenticates (CGIPassAuth) ------------------------------
BLOCK=$(conf_block "$CONF" 2)
start_backend "$BLOCK" "$WORK/backend2.log" || exit 1
use_block "$CONF" 2 proxy proxy_fcgi
apache_start 2 "$CGI_DIR" "$HTPASSWD" "$TOKENS" "$HOME_ROOT" || exit 1
U=$APACHE_URL/clamscanner
endpoint_checks "a2 (program authenticates, CGIPassAuth)" "$U" wrapped
token_checks "a2" "$U"
expect_eq "a2: the 401 is the program's JSON" "application/json; charset=utf-8" \
  "$(curl -s -o /dev/null -w '%{content_type}' -u alice:wrong "$U")"
endpoint_checks "a2 cPanel URL shape, flat" "$APACHE_URL/execute/ClamScanner/check_disinfection_status" flat
req "$APACHE_URL/execute/ClamScanner/start_scan" -u alice:pw-alice
expect_eq "a2: another function under /execute: 404" 404 "$CODE"
apache_stop; stop_backend

# --- 3: mod_fcgid starts the program (descriptor 0) ------------------------------------------
if [ -f "$APACHE_MODULES/mod_fcgid.so" ]; then
  use_block "$CONF" 3 fcgid
  FCGID="FcgidIPCDir \"$WORK/run/fcgid\"
FcgidProcessTableFile \"$WORK/run/fcgid_shm\""
  mkdir -p "$WORK/run/fcgid" && chown "$WEB_USER" "$WORK/run/fcgid"
  apache_start 3 "$CGI_DIR" "$HTPASSWD" "$TOKENS" "$HOME_ROOT" "$FCGID" || exit 1
  U=$APACHE_URL/cgi/clamscanner
  endpoint_checks "a3 (mod_fcgid, Apache auth)" "$U" wrapped
  endpoint_checks "a3 /execute path" "$U/execute/ClamScanner/check_disinfection_status" wrapped
  pids=$(pgrep -f "^$CGI_DIR/clamscanner" | tr '\n' ' ')
  check "a3: mod_fcgid started the program as a long-lived process" test -n "$pids"
  expect_contains "a3: the program said it serves descriptor 0" "descriptor 0" "$(cat "$APACHE_ERROR_LOG")"
  apache_stop
  expect_not_contains "a3: no panic in Apache's error log" panicked "$(cat "$APACHE_ERROR_LOG")"
elif [ -n "${CI:-}" ]; then
  fail "mod_fcgid not installed (CI is set; .ci/run installs libapache2-mod-fcgid)"
else
  echo "  (mod_fcgid not installed: configuration 3 skipped)"
fi

readme_shows "$CONF" 1 2 3
finish
