# Starting and stopping a private Apache 2.4 for the tests. Source it after tests/lib.sh.
#
# Each Apache gets its own ServerRoot in $WORK, a free 127.0.0.1 port, and a config made of a
# fixed minimal part plus one configuration from cgi-bin/apache-clamscanner.conf (the file the
# README tells administrators to copy), so the tests exercise exactly the documented setup.
# Recipe and gotchas: ../shared/reference/http-cgi-facts.md §5.

APACHE_BIN=${APACHE_BIN:-/usr/sbin/apache2}
APACHE_MODULES=${APACHE_MODULES:-/usr/lib/apache2/modules}
APACHE_SNIPPET=$ROOT/cgi-bin/apache-clamscanner.conf

# apache_require: a missing Apache is one SKIP line, except in CI where it is a failure.
apache_require() {
  [ -x "$APACHE_BIN" ] && return 0
  skip_test "$APACHE_BIN not installed (.ci/run installs apache2 apache2-utils)"
}

# apache_snippet N: configuration N of cgi-bin/apache-clamscanner.conf, markers included.
apache_snippet() {
  sed -n "/^# ---- begin configuration $1:/,/^# ---- end configuration $1 ----\$/p" "$APACHE_SNIPPET"
}

# apache_install_cgi DIR: puts the binary into DIR the way the README says (make install-cgi).
# Checks BIN first: the make target would otherwise start a release build to fill the gap.
apache_install_cgi() {
  [ -x "$BIN" ] || { echo "not built: $BIN" >&2; return 1; }
  make -s -C "$ROOT" install-cgi DEST="$1" BIN="$BIN" >/dev/null
}

# apache_start N CGI_DIR HTPASSWD TOKENS HOME_ROOT [EXTRA_CONFIG]
# Starts Apache with configuration N (placeholders filled in) plus EXTRA_CONFIG, waits until it
# answers, and registers its stop. Sets APACHE_DIR, APACHE_PORT, APACHE_URL, APACHE_ERROR_LOG.
apache_start() {
  local n=$1 cgi=$2 htpasswd=$3 tokens=$4 home=$5 extra=${6:-} snippet conf try i
  snippet=$(apache_snippet "$n")
  if [ -z "$snippet" ]; then echo "no configuration $n in $APACHE_SNIPPET" >&2; return 1; fi
  # Quoted replacements: bash 5.2 would otherwise read '&' in a path as the matched text.
  snippet=${snippet//@CGI_DIR@/"$cgi"}
  snippet=${snippet//@HTPASSWD@/"$htpasswd"}
  snippet=${snippet//@TOKENS@/"$tokens"}
  snippet=${snippet//@HOME_ROOT@/"$home"}
  APACHE_DIR=$(mktemp -d "$WORK/apache$n.XXXXXX")
  # www-data (children, cgid daemon) must traverse it: mktemp makes 0700 (AH00035 otherwise).
  chmod 755 "$APACHE_DIR"
  mkdir -p "$APACHE_DIR"/{logs,run,htdocs}
  APACHE_ERROR_LOG=$APACHE_DIR/logs/error.log
  on_exit "apache_stop '$APACHE_DIR'"
  # The port is free when picked but could be taken before Apache binds it: retry a few times.
  for try in 1 2 3; do
    APACHE_PORT=$(free_port)
    conf=$APACHE_DIR/httpd.conf
    {
      printf 'ServerRoot "%s"\nDefaultRuntimeDir "%s/run"\nPidFile "%s/run/httpd.pid"\n' \
        "$APACHE_DIR" "$APACHE_DIR" "$APACHE_DIR"
      printf 'ServerName 127.0.0.1\nListen 127.0.0.1:%s\n' "$APACHE_PORT"
      for i in mpm_event authn_core authn_file authz_core authz_user auth_basic alias mime env cgid; do
        printf 'LoadModule %s_module %s/mod_%s.so\n' "$i" "$APACHE_MODULES" "$i"
      done
      cat <<EOF
User www-data
Group www-data
ErrorLog "$APACHE_DIR/logs/error.log"
LogLevel warn
CustomLog "$APACHE_DIR/logs/access.log" "%h %u \"%r\" %>s %b"
TypesConfig /etc/mime.types
ScriptSock "$APACHE_DIR/run/cgid.sock"
CGIDScriptTimeout 20
DocumentRoot "$APACHE_DIR/htdocs"
<Directory "/">
  AllowOverride None
  Require all denied
</Directory>
EOF
      printf '%s\n%s\n' "$snippet" "$extra"
    } >"$conf"
    if ! "$APACHE_BIN" -t -f "$conf" 2>"$APACHE_DIR/configtest.log"; then
      echo "apache2 -t rejected configuration $n:" >&2
      cat "$APACHE_DIR/configtest.log" "$conf" >&2
      return 1
    fi
    "$APACHE_BIN" -f "$conf" -k start 2>>"$APACHE_DIR/start.log" || continue
    APACHE_URL=http://127.0.0.1:$APACHE_PORT
    # Ready = the PID file exists and the port answers HTTP (any status). Bounded: 10 s.
    for i in $(seq 100); do
      if [ -s "$APACHE_DIR/run/httpd.pid" ] && curl -s -o /dev/null "$APACHE_URL/"; then return 0; fi
      sleep 0.1
    done
    break
  done
  echo "Apache (configuration $n) did not start:" >&2
  cat "$APACHE_DIR/start.log" "$APACHE_ERROR_LOG" 2>/dev/null >&2
  return 1
}

# apache_stop [DIR]: stops the Apache of DIR (default: the last started) by its PID file and
# waits until the process is gone. Safe to call twice.
apache_stop() {
  local dir=${1:-$APACHE_DIR} pid i
  [ -s "$dir/run/httpd.pid" ] || return 0
  pid=$(cat "$dir/run/httpd.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "Apache $pid did not stop after SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null
  rm -f "$dir/run/httpd.pid"
}
