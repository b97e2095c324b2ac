# Web servers for the tests, each started privately from a configuration file shipped in
# cgi-bin/ (the file the README tells administrators to copy). Source it after tests/lib.sh.
#
# A configuration file holds blocks between "# ---- begin configuration N: …" and
# "# ---- end configuration N ----"; a block's "# run: …" line is the command that starts the
# program (or fcgiwrap) behind it, which the tests run as written, placeholders filled in.
# Servers run in $WORK on a free 127.0.0.1 port and are stopped by the EXIT trap.

# Who the web servers run as. As root they drop to www-data, as Debian runs them; as a normal
# user none of them can change its uid, so they run as that user, and whatever they must reach
# (a socket's group, a directory they write) is given to that user's own group instead.
if [ "$(id -u)" -eq 0 ]; then
  WEB_USER=www-data WEB_GROUP=www-data
else
  WEB_USER=$(id -un) WEB_GROUP=$(id -gn)
fi

# require_program PATH WHAT: a missing program is one SKIP line, except in CI where it fails.
require_program() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $1 not installed (CI is set; .ci/run must install $2)" >&2
    exit 1
  fi
  echo "SKIP: $1 not installed ($2)"
  exit 0
}

# conf_block FILE N: block N of FILE, markers included.
conf_block() {
  sed -n "/^# ---- begin configuration $2:/,/^# ---- end configuration $2 ----\$/p" "$1"
}

# fill TEXT: TEXT with @SOCKET@ @CGI_DIR@ @HTPASSWD@ @TOKENS@ @HOME_ROOT@ replaced from the
# variables SOCKET CGI_DIR HTPASSWD TOKENS HOME_ROOT (quoted: '&' in a path stays itself).
fill() {
  local t=$1
  t=${t//@SOCKET@/"${SOCKET:-}"}
  t=${t//@CGI_DIR@/"${CGI_DIR:-}"}
  t=${t//@HTPASSWD@/"${HTPASSWD:-}"}
  t=${t//@TOKENS@/"${TOKENS:-}"}
  t=${t//@HOME_ROOT@/"${HOME_ROOT:-}"}
  printf '%s\n' "$t"
}

# run_line BLOCK: the block's "# run:" command, placeholders filled; its --socket-group www-data
# is the servers' group (the same as root; a normal user may give a socket only its own groups).
run_line() {
  local line
  line=$(fill "$(printf '%s\n' "$1" | sed -n 's/^# run: //p' | head -n 1)")
  printf '%s\n' "${line//--socket-group www-data/--socket-group $WEB_GROUP}"
}

# start_backend BLOCK LOG: starts the block's run line in the foreground of a background job:
# `clamscanner …` as $BIN (waits for its "listening on" line), `spawn-fcgi …` with -n (waits
# for the socket). Sets BACKEND_PID.
start_backend() {
  local line words i
  line=$(run_line "$1")
  [ -n "$line" ] || { echo "no '# run:' line in the block" >&2; return 1; }
  read -r -a words <<<"$line"
  rm -f "$SOCKET"
  case ${words[0]} in
    clamscanner) "$BIN" "${words[@]:1}" 2>"$2" & ;;
    spawn-fcgi) env -i PATH="$PATH" spawn-fcgi -n "${words[@]:1}" 2>"$2" & ;;
    *) echo "unknown run line: $line" >&2; return 1 ;;
  esac
  BACKEND_PID=$!
  on_exit "kill $BACKEND_PID 2>/dev/null; wait $BACKEND_PID 2>/dev/null"
  for i in $(seq 300); do
    if [ "${words[0]}" = clamscanner ]; then grep -q "listening on" "$2" 2>/dev/null && return 0
    else [ -S "$SOCKET" ] && return 0
    fi
    kill -0 "$BACKEND_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "backend did not start: $line" >&2; cat "$2" >&2
  return 1
}

stop_backend() {
  kill "$BACKEND_PID" 2>/dev/null
  wait "$BACKEND_PID" 2>/dev/null
  rm -f "$SOCKET"
}

# wait_http URL PID: until URL answers HTTP (any status) or PID dies; 10 s at most.
wait_http() {
  local i
  for i in $(seq 100); do
    curl -s -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# --- Apache: tests/apache_lib.sh starts configuration N of $APACHE_SNIPPET -----------------
# use_block FILE N MODULES...: points APACHE_SNIPPET at a copy of block N of FILE with @SOCKET@
# filled and LoadModule lines for MODULES first (test-only lines; the shipped file loads none).
use_block() {
  local file=$1 n=$2 m block
  shift 2
  block=$(SOCKET=$SOCKET fill "$(conf_block "$file" "$n")")
  APACHE_SNIPPET=$(mktemp "$WORK/apache-block$n.XXXXXX")
  {
    printf '%s\n' "$block" | head -n 1
    for m in "$@"; do printf 'LoadModule %s_module %s/mod_%s.so\n' "$m" "$APACHE_MODULES" "$m"; done
    printf '%s\n' "$block" | tail -n +2
  } >"$APACHE_SNIPPET"
}

# --- nginx ---------------------------------------------------------------------------------
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

# nginx_start SNIPPET: a private nginx with SNIPPET inside its one server block. Sets NGINX_DIR,
# NGINX_URL, NGINX_PID, NGINX_ERROR_LOG. NGINX_WORKERS (default 1) sets worker_processes.
nginx_start() {
  local snippet=$1 port conf try
  NGINX_DIR=$(mktemp -d "$WORK/nginx.XXXXXX")
  chmod 755 "$NGINX_DIR"
  mkdir -p "$NGINX_DIR"/{conf,logs,tmp,htdocs}
  cp /etc/nginx/fastcgi_params "$NGINX_DIR/conf/"
  NGINX_ERROR_LOG=$NGINX_DIR/logs/error.log
  conf=$NGINX_DIR/conf/nginx.conf
  for try in 1 2 3; do
    port=$(free_port)
    cat >"$conf" <<EOF
$([ "$WEB_USER" = www-data ] && echo 'user www-data;')
worker_processes ${NGINX_WORKERS:-1};
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_ERROR_LOG warn;
events { worker_connections 1024; }
http {
    access_log ${NGINX_ACCESS_LOG:-$NGINX_DIR/logs/access.log};
    client_body_temp_path $NGINX_DIR/tmp/body;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        server_name 127.0.0.1;
        root $NGINX_DIR/htdocs;
$snippet
    }
}
EOF
    if ! "$NGINX_BIN" -t -q -e "$NGINX_ERROR_LOG" -p "$NGINX_DIR" -c "$conf" 2>"$NGINX_DIR/configtest.log"; then
      echo "nginx -t rejected the configuration:" >&2
      cat "$NGINX_DIR/configtest.log" "$conf" >&2
      return 1
    fi
    "$NGINX_BIN" -e "$NGINX_ERROR_LOG" -p "$NGINX_DIR" -c "$conf" -g 'daemon off;' 2>>"$NGINX_DIR/logs/stderr" &
    NGINX_PID=$!
    on_exit "kill $NGINX_PID 2>/dev/null; wait $NGINX_PID 2>/dev/null"
    NGINX_URL=http://127.0.0.1:$port
    wait_http "$NGINX_URL/" "$NGINX_PID" && return 0
  done
  echo "nginx did not start:" >&2
  cat "$NGINX_DIR/logs/stderr" "$NGINX_ERROR_LOG" >&2
  return 1
}

nginx_stop() {
  kill "$NGINX_PID" 2>/dev/null
  wait "$NGINX_PID" 2>/dev/null
}

# --- the same checks for every server ------------------------------------------------------
# make_fixtures: accounts for every data.status value, in $HOME_ROOT; $HTPASSWD and $TOKENS.
make_fixtures() {
  local u
  mkdir -p "$HOME_ROOT" && chmod 755 "$HOME_ROOT"
  for u in alice nolog queued starting busy; do
    make_account "$HOME_ROOT" "$u"
    add_htpasswd "$HTPASSWD" "$u" "pw-$u"
  done
  add_htpasswd "$TOKENS" alice "TOKEN0ALICE0123456789"
  write_log "$HOME_ROOT/alice/$LOG_NAME" 10 done
  write_log "$HOME_ROOT/busy/$LOG_NAME" 5 running
  printf 'queued\n' >"$HOME_ROOT/queued/$STATE_NAME"
  printf 'running\n' >"$HOME_ROOT/starting/$STATE_NAME"
  chmod 644 "$HOME_ROOT/queued/$STATE_NAME" "$HOME_ROOT/starting/$STATE_NAME"
}

# req URL [CURL_ARGS...]: sets CODE, HEADERS (no CRs) and BODY.
req() {
  local url=$1; shift
  CODE=$(curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" "$url")
  BODY=$(cat "$WORK/body")
  HEADERS=$(tr -d '\r' <"$WORK/headers")
}
hdr() { printf '%s\n' "$HEADERS" | sed -n "s/^$1: *//Ip" | head -n 1; }

# endpoint_checks LABEL URL FORM: the function at URL, authenticated with Basic credentials,
# for every status value, last_id, a bad last_id, POST, HEAD, and the refusals. FORM is wrapped
# or flat (where the result object is: .result or the top level).
endpoint_checks() {
  local l=$1 u=$2 r=.result head
  [ "$3" = flat ] && r=
  req "$u" -u alice:pw-alice
  expect_eq "$l: 200" 200 "$CODE"
  expect_eq "$l: JSON Content-Type" "application/json; charset=utf-8" "$(hdr Content-Type)"
  expect_eq "$l: Cache-Control no-store" "no-store" "$(hdr Cache-Control)"
  expect_jq "$l: whole log, status done" "$BODY" "[$r.status, ($r.data.details | map(.id)), $r.data.status] | tojson" '[1,[1,2,3,4,5,6,7,8,9,10],"done"]'
  if [ "$3" = flat ]; then
    expect_jq "$l: flat form (no apiversion, no result)" "$BODY" '[has("apiversion"), has("result")] | tojson' '[false,false]'
  else
    expect_jq "$l: wrapped form" "$BODY" '[.apiversion, .module, .func] | tojson' '[3,"ClamScanner","check_disinfection_status"]'
  fi
  req "$u?last_id=7" -u alice:pw-alice
  expect_jq "$l: last_id=7 gives 8..10" "$BODY" "$r.data.details | map(.id) | tojson" '[8,9,10]'
  req "$u?last_id=10" -u alice:pw-alice
  expect_jq "$l: last_id = last id: nothing new, done" "$BODY" "[($r.data.details | length), $r.data.status] | tojson" '[0,"done"]'
  req "$u" -u nolog:pw-nolog
  expect_jq "$l: no log, no state: none" "$BODY" "$r.data.status" none
  req "$u" -u queued:pw-queued
  expect_jq "$l: state file queued: queued" "$BODY" "$r.data.status" queued
  req "$u" -u starting:pw-starting
  expect_jq "$l: state file running: running" "$BODY" "$r.data.status" running
  req "$u" -u busy:pw-busy
  expect_jq "$l: log without done: running, 5 records" "$BODY" "[$r.data.status, ($r.data.details | length)] | tojson" '["running",5]'
  req "$u?last_id=abc" -u alice:pw-alice
  expect_jq "$l: bad last_id: status 0, data {}" "$BODY" "[$r.status, ($r.data | tojson)] | tojson" '[0,"{}"]'
  expect_eq "$l: bad last_id: HTTP 200" 200 "$CODE"
  req "$u?last_id=2" -u alice:pw-alice -X POST --data-binary '' -H 'Content-Type:'
  expect_jq "$l: empty POST (as cPanel clients send)" "$BODY" "$r.data.details | length" 8
  req "$u" -u alice:pw-alice --data-binary last_id=8 -H 'Content-Type: application/x-www-form-urlencoded'
  expect_jq "$l: POST form body last_id=8" "$BODY" "$r.data.details | map(.id) | tojson" '[9,10]'
  head=$(curl -s -I -u alice:pw-alice -o "$WORK/head" -w '%{http_code} %{size_download}' "$u?last_id=2")
  expect_eq "$l: HEAD: 200 and no body" "200 0" "$head"
  expect_contains "$l: HEAD: JSON Content-Type" "application/json" "$(tr -d '\r' <"$WORK/head")"
  req "$u"
  expect_eq "$l: no credentials: 401" 401 "$CODE"
  expect_contains "$l: ... with a Basic challenge" 'Basic realm="cPanel"' "$(hdr WWW-Authenticate)"
  req "$u" -u alice:wrong
  expect_eq "$l: user named with a wrong password: 401" 401 "$CODE"
  req "$u" -u nosuchuser:pw-alice
  expect_eq "$l: unknown user: 401" 401 "$CODE"
}

# token_checks LABEL URL: the program's own "cpanel USER:TOKEN" path.
token_checks() {
  req "$2?last_id=8" -H "Authorization: cpanel alice:TOKEN0ALICE0123456789"
  expect_eq "$1: cpanel USER:TOKEN: 200" 200 "$CODE"
  req "$2" -H "Authorization: cpanel alice:WRONGTOKEN"
  expect_eq "$1: wrong token: 401" 401 "$CODE"
}

# readme_shows FILE N...: the README shows block N of FILE verbatim.
readme_shows() {
  local file=$1 n block readme
  shift
  readme=$(cat "$ROOT/README.md")
  for n in "$@"; do
    block=$(conf_block "$file" "$n")
    if [ -n "$block" ] && [[ $readme == *"$block"* ]]; then
      pass "README shows configuration $n of ${file#"$ROOT"/} verbatim"
    else
      fail "README shows configuration $n of ${file#"$ROOT"/} verbatim"
    fi
  done
}
