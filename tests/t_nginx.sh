#!/usr/bin/env bash
# nginx in front of the program, in the four configurations of cgi-bin/nginx-clamscanner.conf:
# FastCGI with nginx or the program authenticating, and fcgiwrap running the plain CGI program
# with either. Each nginx is private (free loopback port, own prefix); the program behind it is
# started with the block's own "# run:" line. The README must show every block verbatim.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/servers_lib.sh"
require_program "$NGINX_BIN" nginx
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
CONF=$ROOT/cgi-bin/nginx-clamscanner.conf

HOME_ROOT=$WORK/home
HTPASSWD=$WORK/htpasswd
TOKENS=$WORK/tokens
SOCKET=$WORK/run/clamscanner.sock
CGI_DIR=$WORK/cgi
mkdir -p "$WORK/run" && chmod 755 "$WORK/run"
make_fixtures
make -s -C "$ROOT" install-cgi DEST="$CGI_DIR" BIN="$BIN" >/dev/null
# Under fcgiwrap the CGI runs as www-data: our PATH may lead through /root, so call it by path.

# --- 1: FastCGI, nginx authenticates --------------------------------------------------------
BLOCK=$(conf_block "$CONF" 1)
start_backend "$BLOCK" "$WORK/backend1.log" || exit 1
# Test-only: a location that repeats REMOTE_USER after fastcgi_params (the nginx mistake the
# program must catch), taking it from a header the client controls.
DUP="location /dup/clamscanner {
    auth_basic \"cPanel\";
    auth_basic_user_file $HTPASSWD;
    include fastcgi_params;
    fastcgi_param REMOTE_USER \$http_x_claim;
    fastcgi_param PATH_INFO /execute/ClamScanner/check_disinfection_status;
    fastcgi_pass unix:$SOCKET;
}"
nginx_start "$(fill "$BLOCK")
$DUP" || exit 1
U=$NGINX_URL/cgi/clamscanner
endpoint_checks "n1 (nginx auth_basic, FastCGI)" "$U" wrapped
endpoint_checks "n1 /execute path" "$U/execute/ClamScanner/check_disinfection_status" wrapped
expect_contains "n1: the wrong password was refused by nginx itself (HTML 401)" "text/html" \
  "$(curl -s -o /dev/null -w '%{content_type}' -u alice:wrong "$U")"
req "$NGINX_URL/dup/clamscanner" -u alice:pw-alice -H "X-Claim: root"
expect_eq "n1: REMOTE_USER sent twice (configuration mistake): 400" 400 "$CODE"
req "$U/ClamScanner/other" -u alice:pw-alice
expect_eq "n1: another function: 404" 404 "$CODE"
nginx_stop; stop_backend
expect_not_contains "n1: the program's stderr has no panic" panicked "$(cat "$WORK/backend1.log")"

# --- 2: FastCGI, the program authenticates --------------------------------------------------
BLOCK=$(conf_block "$CONF" 2)
start_backend "$BLOCK" "$WORK/backend2.log" || exit 1
nginx_start "$(fill "$BLOCK")" || exit 1
U=$NGINX_URL/cgi/clamscanner
endpoint_checks "n2 (program authenticates, FastCGI)" "$U" wrapped
token_checks "n2" "$U"
expect_eq "n2: the 401 is the program's JSON" "application/json; charset=utf-8" \
  "$(curl -s -o /dev/null -w '%{content_type}' -u alice:wrong "$U")"
# nginx turns the Basic user into REMOTE_USER without checking the password: it must not count.
req "$U" -u alice:wrong
expect_jq "n2: REMOTE_USER=alice from a wrong password is not believed" "$BODY" .result.status 0
req "$U" -H "Authorization: Basic $(printf 'alice:' | base64)"
expect_eq "n2: user name with an empty password: 401" 401 "$CODE"
endpoint_checks "n2 cPanel URL shape, flat" "$NGINX_URL/execute/ClamScanner/check_disinfection_status" flat
req "$NGINX_URL/execute/ClamScanner/start_scan" -u alice:pw-alice
expect_eq "n2: another function under /execute: 404" 404 "$CODE"
nginx_stop; stop_backend

# --- 3 and 4: fcgiwrap runs the plain CGI program -------------------------------------------
if command -v spawn-fcgi >/dev/null && [ -x /usr/sbin/fcgiwrap ]; then
  BLOCK=$(conf_block "$CONF" 3)
  start_backend "$BLOCK" "$WORK/backend3.log" || exit 1
  nginx_start "$(fill "$BLOCK")" || exit 1
  U=$NGINX_URL/cgi/clamscanner
  endpoint_checks "n3 (fcgiwrap, program authenticates)" "$U" wrapped
  token_checks "n3" "$U"
  req "$U" -u alice:wrong
  expect_jq "n3: REMOTE_USER from a wrong password is not believed" "$BODY" .result.status 0
  nginx_stop; stop_backend

  BLOCK=$(conf_block "$CONF" 4)
  start_backend "$BLOCK" "$WORK/backend4.log" || exit 1
  nginx_start "$(fill "$BLOCK")" || exit 1
  endpoint_checks "n4 (fcgiwrap, nginx auth_basic)" "$NGINX_URL/cgi/clamscanner" wrapped
  nginx_stop; stop_backend
elif [ -n "${CI:-}" ]; then
  fail "fcgiwrap or spawn-fcgi not installed (CI is set)"
else
  echo "  (fcgiwrap or spawn-fcgi not installed: configurations 3 and 4 skipped)"
fi

readme_shows "$CONF" 1 2 3 4
finish
