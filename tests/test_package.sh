#!/usr/bin/env bash
# `make test-package`: the .deb installed for real, the way an administrator installs it, then
# removed and purged; the .rpm checked for its file list and scripts. It changes the machine
# (apt-get install, a2enconf, a system user, the system Apache on port 80), so it runs as root
# on a CI machine after `make test`, never inside `make test`. Everything it did is undone on
# exit, even when a check fails.
#
#  1. build: the .deb twice (the same bytes: reproducible), lintian without error or warning;
#     the .rpm: rpm -qlp file list, --scripts, --configfiles, rpmlint where installed
#  2. apt-get install ./clamscanner_….deb: files, user, credential file, conf not enabled,
#     cgid enabled; systemd-analyze verify on the installed units prints nothing
#  3. an account made with useradd and a log in its home; an htpasswd entry; a2enconf;
#     the system Apache (apache2ctl start): a real poll, details, 401 without/with a bad password
#  4. the FastCGI service's command line as the unit runs it (systemd-socket-activate, the
#     service user, only CAP_DAC_READ_SEARCH), behind a private nginx with the shipped example,
#     reading a 0700 home that Apache's user cannot read
#  5. apt-get remove: nothing but conffiles (and the credential file) left; purge: nothing left,
#     not the user, not the module it enabled
source "$(dirname "$0")/lib.sh"
BIN_RELEASE=$ROOT/target/release/clamscanner
need() {
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $1 (CI is set: .ci/run must provide it)" >&2
    exit 1
  fi
  echo "SKIP: $1"
  exit 0
}
[ "$(id -u)" -eq 0 ] || need "make test-package installs packages: run it as root"
for p in apt-get dpkg-deb dpkg-shlibdeps lintian rpmbuild rpm apache2ctl a2enconf htpasswd curl jq \
  nginx systemd-analyze systemd-socket-activate setpriv useradd; do
  command -v "$p" >/dev/null || need "$p not installed"
done
[ -x "$BIN_RELEASE" ] || { echo "FAIL: $BIN_RELEASE not built (make release)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' clamscanner 2>/dev/null | grep -qv 'not-installed'; then
  echo "FAIL: a clamscanner package is already installed here; purge it first (dpkg -P clamscanner)" >&2
  exit 1
fi

LOG=.clamavconnector.disinfection.log
# req CURL_ARGS...: sets CODE and BODY.
req() { CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' "$@"); BODY=$(cat "$WORK/body"); }
record() { printf '{"id":%s,"type":"%s","state":"%s","file":"/home/%s/mail/x%s","message":"m%s"}\n' "$@"; }

# --- 1. build --------------------------------------------------------------------------------
DEB=$(bash "$ROOT/packaging/build.sh" deb) || { echo "FAIL: packaging/build.sh deb" >&2; exit 1; }
sum1=$(sha256sum <"$DEB")
bash "$ROOT/packaging/build.sh" deb >/dev/null
expect_eq "two builds of the .deb are the same bytes" "$sum1" "$(sha256sum <"$DEB")"
lintian --fail-on error,warning "$DEB" >"$WORK/lintian.txt" 2>&1
expect_eq "lintian: no error, no warning (kept ones are overridden, README)" 0 "$?"
lint=$(cat "$WORK/lintian.txt")
expect_not_contains "lintian prints no E: tag" "E: " "$lint"
expect_not_contains "lintian prints no W: tag" "W: " "$lint"
expect_contains "control: Depends computed from the ELF file" "libc6 (>=" "$(dpkg-deb -f "$DEB" Depends)"
expect_eq "conffiles: the Apache configuration" /etc/apache2/conf-available/clamscanner.conf \
  "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)"
CONTENTS=$(dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}')
for f in ./usr/bin/clamscanner ./usr/lib/cgi-bin/clamscanner; do
  expect_contains "deb: $f, 0755 root:root" "-rwxr-xr-x root/root $f" "$CONTENTS"
done
for f in usr/share/man/man1/clamscanner.1.gz usr/share/doc/clamscanner/copyright \
  usr/share/doc/clamscanner/changelog.Debian.gz lib/systemd/system/clamscanner-fastcgi.socket \
  lib/systemd/system/clamscanner-fastcgi.service usr/lib/sysusers.d/clamscanner.conf; do
  expect_contains "deb: $f" "-rw-r--r-- root/root ./$f" "$CONTENTS"
done
for f in "$ROOT"/cgi-bin/*; do
  expect_contains "deb: example $(basename "$f")" "./usr/share/doc/clamscanner/examples/$(basename "$f")" "$CONTENTS"
done
expect_not_contains "deb: nothing in /usr/local" "./usr/local" "$CONTENTS"

RPM=$(bash "$ROOT/packaging/build.sh" rpm) || { echo "FAIL: packaging/build.sh rpm" >&2; exit 1; }
sum1=$(sha256sum <"$RPM")
bash "$ROOT/packaging/build.sh" rpm >/dev/null
expect_eq "two builds of the .rpm are the same bytes" "$sum1" "$(sha256sum <"$RPM")"
RPM_FILES=$(rpm -qlp "$RPM" 2>/dev/null)
for f in /usr/bin/clamscanner /var/www/cgi-bin/clamscanner /etc/httpd/conf.d/clamscanner.conf \
  /usr/share/man/man1/clamscanner.1.gz /usr/lib/systemd/system/clamscanner-fastcgi.socket \
  /usr/lib/systemd/system/clamscanner-fastcgi.service /usr/lib/sysusers.d/clamscanner.conf \
  /usr/share/doc/clamscanner/copyright /etc/clamscanner/htpasswd; do
  check "rpm -qlp lists $f" grep -qxF "$f" <<<"$RPM_FILES"
done
check "rpm: the examples of cgi-bin/" grep -qxF /usr/share/doc/clamscanner/examples/apache-clamscanner.conf <<<"$RPM_FILES"
check "rpm: does not own /var/www/cgi-bin itself (httpd does)" bash -c '! grep -qx /var/www/cgi-bin <<<"$1"' _ "$RPM_FILES"
expect_eq "rpm: CGI program is a real file, mode 0755" "-rwxr-xr-x" \
  "$(rpm -qlvp "$RPM" 2>/dev/null | awk '$NF == "/var/www/cgi-bin/clamscanner" {print $1}')"
RPM_SCRIPTS=$(rpm -qp --scripts "$RPM" 2>/dev/null)
expect_contains "rpm %pre creates the group" "groupadd -r clamscanner" "$RPM_SCRIPTS"
expect_contains "rpm %pre creates the system user" "useradd -r -g clamscanner" "$RPM_SCRIPTS"
expect_contains "rpm %post makes the credential file" "/etc/clamscanner/htpasswd" "$RPM_SCRIPTS"
expect_contains "rpm %preun stops the units on erase" "systemctl --system stop clamscanner-fastcgi.socket" "$RPM_SCRIPTS"
RPM_CONF=$(rpm -qp --configfiles "$RPM" 2>/dev/null)
check "rpm: the httpd conf is %config" grep -qxF /etc/httpd/conf.d/clamscanner.conf <<<"$RPM_CONF"
check "rpm: the httpd conf is noreplace" bash -c 'rpm -qp --qf "[%{FILEFLAGS:fflags} %{FILENAMES}\n]" "$1" | grep -q "^cn .*/conf.d/clamscanner.conf$"' _ "$RPM"
check "rpm: the units say the web server's group is apache" \
  bash -c 'rpm2cpio "$1" | cpio -i --quiet --to-stdout ./usr/lib/systemd/system/clamscanner-fastcgi.socket | grep -qx SocketGroup=apache' _ "$RPM"
if command -v rpmlint >/dev/null; then
  rpmlint -c "$ROOT/packaging/rpm/rpmlint.toml" "$RPM" >"$WORK/rpmlint.txt" 2>&1
  # The errors README "Packages" explains: no signature, and the credential file is 0640.
  errors=$(grep ': E: ' "$WORK/rpmlint.txt" | grep -v -e ': E: no-signature' -e ': E: non-readable /etc/clamscanner/htpasswd 640')
  expect_eq "rpmlint: no error but the two explained in README" "" "$errors"
else
  echo "note: rpmlint not installed, skipped"
fi

# --- 2. install ------------------------------------------------------------------------------
# What the file system holds, to tell afterwards what the package left behind. Volatile places
# (logs, apt's and dpkg's own records, runtime state) are left out.
snapshot() {
  find /etc /usr /lib /opt /srv /var -xdev \
    \( -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \
    -o -path /var/tmp -o -path /var/spool -o -path /var/mail -o -path /var/backups \
    -o -path /var/lib/systemd -o -path /var/lib/man-db -o -path /usr/lib/python3 -o -path /etc/ld.so.cache \) -prune \
    -o -print 2>/dev/null | LC_ALL=C sort
}
SYSUSERS=$(systemd-sysusers --dry-run "$ROOT/packaging/systemd/clamscanner.sysusers" 2>&1)
expect_contains "sysusers.d file: systemd-sysusers would create the same user" \
  "Creating user 'clamscanner' (clamscanner FastCGI service)" "$SYSUSERS"
snapshot >"$WORK/before"
CGID_BEFORE=$(a2query -q -m cgid && echo on || echo off)
APACHE_PID_FILE=/var/run/apache2/apache2.pid
apache_running() { [ -s "$APACHE_PID_FILE" ] && kill -0 "$(cat "$APACHE_PID_FILE")" 2>/dev/null; }
APACHE_WAS_RUNNING=$(apache_running && echo yes || echo no)

cleanup_package() {
  a2disconf -q clamscanner >/dev/null 2>&1
  if dpkg-query -W -f='${Status}' clamscanner 2>/dev/null | grep -qv not-installed; then
    DEBIAN_FRONTEND=noninteractive dpkg -P clamscanner >/dev/null 2>&1
  fi
  if [ "$APACHE_WAS_RUNNING" = no ] && apache_running; then stop_system_apache; fi
}
stop_system_apache() {
  local pid i
  pid=$(cat "$APACHE_PID_FILE" 2>/dev/null) || return 0
  apache2ctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
on_exit cleanup_package

out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB" 2>&1)
rc=$?
expect_eq "apt-get install ./clamscanner_….deb" 0 "$rc"
[ "$rc" -eq 0 ] || { echo "$out" >&2; finish; exit 1; }
expect_eq "dpkg: installed" "install ok installed" "$(dpkg-query -W -f='${Status}' clamscanner)"
expect_contains "/usr/bin/clamscanner runs" "clamscanner " "$(/usr/bin/clamscanner --version 2>&1)"
check "the CGI program is executable" test -x /usr/lib/cgi-bin/clamscanner
check "man finds clamscanner(1)" bash -c 'man -w clamscanner | grep -qx /usr/share/man/man1/clamscanner.1.gz'
expect_eq "the service user is a system user with no login shell" "/nonexistent /usr/sbin/nologin" \
  "$(getent passwd clamscanner | awk -F: '$3 < 1000 {print $6, $7}')"
expect_eq "systemd-sysusers finds nothing to add once the package made the user" "" \
  "$(systemd-sysusers --dry-run /usr/lib/sysusers.d/clamscanner.conf 2>&1)"
check "the service user has a group of its own" bash -c 'getent group clamscanner >/dev/null'
expect_eq "/etc/clamscanner/htpasswd: root:www-data 0640, empty" "root www-data 640 0" \
  "$(stat -c '%U %G %a %s' /etc/clamscanner/htpasswd 2>/dev/null)"
check "installing does not enable the Apache configuration" bash -c '! a2query -q -c clamscanner'
check "installing enabled the CGI module (cgid or cgi)" bash -c 'a2query -q -m cgid || a2query -q -m cgi'

verify=$(systemd-analyze verify /lib/systemd/system/clamscanner-fastcgi.socket \
  /lib/systemd/system/clamscanner-fastcgi.service 2>&1)
rc=$?
expect_eq "systemd-analyze verify: exit 0" 0 "$rc"
expect_eq "systemd-analyze verify: not one message" "" "$verify"
UNIT=/lib/systemd/system/clamscanner-fastcgi.service
SOCKET_UNIT=/lib/systemd/system/clamscanner-fastcgi.socket
unit_value() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
for kv in User=clamscanner AmbientCapabilities=CAP_DAC_READ_SEARCH CapabilityBoundingSet=CAP_DAC_READ_SEARCH \
  NoNewPrivileges=yes ProtectSystem=strict ProtectHome=read-only PrivateTmp=yes PrivateDevices=yes \
  RestrictAddressFamilies=AF_UNIX SystemCallFilter=@system-service; do
  check "service: $kv" grep -qxF "$kv" "$UNIT"
done
for kv in ListenStream=/run/clamscanner/fcgi.sock SocketMode=0660 SocketGroup=www-data; do
  check "socket: $kv" grep -qxF "$kv" "$SOCKET_UNIT"
done

# --- 3. the system Apache with the packaged configuration --------------------------------------
U=cspkg$$
useradd -m -d "/home/$U" -s /usr/sbin/nologin "$U" || { echo "FAIL: useradd $U" >&2; finish; exit 1; }
on_exit "userdel -r $U >/dev/null 2>&1"
HOME_U=/home/$U
# The CGI program runs as www-data: the home must be searchable, the log readable by its group.
chmod 0711 "$HOME_U"
{ for i in 1 2 3; do record "$i" step quarantined "$U" "$i" "$i"; done; record 4 done success "$U" 4 4; } >"$HOME_U/$LOG"
chown "$U:www-data" "$HOME_U/$LOG"
chmod 0640 "$HOME_U/$LOG"
PW=pw-$$-apache
printf '%s\n' "$PW" | /usr/bin/clamscanner htpasswd --cost 5 "$U" >>/etc/clamscanner/htpasswd
check "the htpasswd entry went in" grep -q "^$U:\$2" /etc/clamscanner/htpasswd

# Without a CGI module the packaged configuration must be a no-op: Apache starts, and the program
# is not served as a download. A private Apache on a free port, no cgi/cgid, the conf included.
P=$WORK/apache-nocgi
mkdir -p "$P"/{logs,run,htdocs} && chmod -R 0755 "$P"
PPORT=$(free_port)
{
  printf 'ServerRoot "%s"\nPidFile "%s/run/httpd.pid"\nDefaultRuntimeDir "%s/run"\n' "$P" "$P" "$P"
  printf 'ServerName 127.0.0.1\nListen 127.0.0.1:%s\nErrorLog "%s/logs/error.log"\n' "$PPORT" "$P"
  for m in mpm_event authn_core authn_file authz_core authz_user auth_basic alias mime; do
    printf 'LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n' "$m" "$m"
  done
  printf 'User www-data\nGroup www-data\nTypesConfig /etc/mime.types\nDocumentRoot "%s/htdocs"\n' "$P"
  printf 'Include /etc/apache2/conf-available/clamscanner.conf\n'
} >"$P/httpd.conf"
check "without a CGI module the configuration passes apache2 -t" bash -c '/usr/sbin/apache2 -t -f "$1" 2>/dev/null' _ "$P/httpd.conf"
/usr/sbin/apache2 -f "$P/httpd.conf" -k start 2>"$P/start.log" || cat "$P/start.log" "$P/logs/error.log" >&2
on_exit "kill \$(cat '$P/run/httpd.pid' 2>/dev/null) 2>/dev/null"
for _ in $(seq 100); do [ -s "$P/run/httpd.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$PPORT/" && break; sleep 0.1; done
req -u "$U:$PW" "http://127.0.0.1:$PPORT/cgi-bin/clamscanner"
expect_eq "without a CGI module /cgi-bin/clamscanner is 404, never the binary" 404 "$CODE"
kill "$(cat "$P/run/httpd.pid")" 2>/dev/null

check "a2enconf clamscanner" bash -c 'a2enconf -q clamscanner >/dev/null'
if apache_running; then
  apache2ctl graceful >/dev/null 2>&1
else
  if ss -ltnH 'sport = :80' | grep -q .; then echo "FAIL: port 80 is taken; the system Apache cannot start" >&2; finish; exit 1; fi
  apache2ctl start >"$WORK/apache-start.log" 2>&1 || cat "$WORK/apache-start.log" >&2
fi
URL=http://127.0.0.1/cgi-bin/clamscanner
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 401 ] && break
  sleep 0.1
done
req -u "$U:$PW" "$URL?last_id=1"
expect_eq "Apache: a poll with the right password: 200" 200 "$CODE"
expect_jq "Apache: the account's records after last_id=1, status done" "$BODY" \
  '[.result.status, .result.data.status, (.result.data.details | map(.id))] | tojson' '[1,"done",[2,3,4]]'
expect_jq "Apache: the log comes from the account database's home" "$BODY" .result.data.log "$HOME_U/$LOG"
req -u "$U:$PW" "$URL/execute/ClamScanner/check_disinfection_status?last_id=3"
expect_jq "Apache: the cPanel path under the program" "$BODY" '.result.data.details | map(.id) | tojson' '[4]'
req "$URL"
expect_eq "Apache: no password: 401" 401 "$CODE"
req -u "$U:wrong" "$URL"
expect_eq "Apache: wrong password: 401" 401 "$CODE"
req -X TRACE -u "$U:$PW" "$URL"
expect_eq "Apache: TRACE refused (Debian's security.conf)" 405 "$CODE"

# --- 4. the FastCGI service, started as its unit starts it, behind nginx -----------------------
# nginx_location SOCKET: the location blocks of the shipped nginx example's configuration 2 (the
# program authenticates, as the unit's ExecStart does), placeholders filled in for the package.
NGINX_EXAMPLE=/usr/share/doc/clamscanner/examples/nginx-clamscanner.conf
nginx_location() {
  local text
  text=$(sed -n '/^# ---- begin configuration 2:/,/^# ---- end configuration 2 ----$/p' "$NGINX_EXAMPLE" | grep -v '^#')
  text=${text//@SOCKET@/"$1"}
  text=${text//@HTPASSWD@/\/etc\/clamscanner\/htpasswd}
  printf '%s\n' "$text"
}

fastcgi_part() {
  local exec_start user group listen mode sgroup v home_v pw_v i port nd status caps nurl location path
  exec_start=$(unit_value ExecStart "$UNIT")
  user=$(unit_value User "$UNIT")
  group=$(unit_value Group "$UNIT")
  listen=$(unit_value ListenStream "$SOCKET_UNIT")
  mode=$(unit_value SocketMode "$SOCKET_UNIT")
  sgroup=$(unit_value SocketGroup "$SOCKET_UNIT")
  # An account as on a real server: home 0700, log 0600, which Apache's user cannot read.
  v=csfcg$$
  useradd -m -d "/home/$v" -s /usr/sbin/nologin "$v" || { fail "useradd $v"; return; }
  on_exit "userdel -r $v >/dev/null 2>&1"
  home_v=/home/$v
  chmod 0700 "$home_v"
  { record 1 step deleted "$v" 1 1; record 2 done success "$v" 2 2; } >"$home_v/$LOG"
  chown "$v:$v" "$home_v/$LOG"
  chmod 0600 "$home_v/$LOG"
  pw_v=pw-$$-fastcgi
  printf '%s\n' "$pw_v" | /usr/bin/clamscanner htpasswd --cost 5 "$v" >>/etc/clamscanner/htpasswd

  req -u "$v:$pw_v" "$URL"
  expect_jq "CGI under Apache cannot read a 0700 home (why the service exists)" "$BODY" .result.status 0

  # What systemd does for the unit pair, by hand: the socket (SocketMode, SocketGroup, its
  # directory), then ExecStart as User=/Group= with only CAP_DAC_READ_SEARCH (ambient and
  # bounding set) and no_new_privs, in an empty environment, the socket on fd 3 (LISTEN_FDS).
  if [ -e "$(dirname "$listen")" ]; then fail "$(dirname "$listen") exists already"; return; fi
  mkdir -m 0755 "$(dirname "$listen")"
  on_exit "rm -rf '$(dirname "$listen")'"
  # shellcheck disable=SC2086 # ExecStart is a command line, split as systemd splits it.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin systemd-socket-activate -l "$listen" \
    --fdname=clamscanner-fastcgi.socket -- \
    setpriv --reuid="$user" --regid="$group" --clear-groups \
    --inh-caps=-all,+dac_read_search --ambient-caps=-all,+dac_read_search \
    --bounding-set=-all,+dac_read_search --no-new-privs \
    $exec_start 2>"$WORK/fastcgi.err" &
  FCGI_PID=$!
  on_exit "kill $FCGI_PID 2>/dev/null; wait $FCGI_PID 2>/dev/null"
  for i in $(seq 100); do [ -S "$listen" ] && break; sleep 0.1; done
  check "the socket exists at $listen" test -S "$listen"
  chgrp "$sgroup" "$listen" && chmod "$mode" "$listen"

  check "the package ships the nginx example" test -s "$NGINX_EXAMPLE"
  location=$(nginx_location "$listen")
  check "the example's configuration 2 has locations, placeholders filled" \
    bash -c '[[ $1 == *location* && $1 != *@[A-Z_]*@* ]]' _ "$location"
  check "neither the example's configuration 2 nor the unit trusts REMOTE_USER" \
    bash -c '! grep -q -- --trust-remote-user <<<"$1$2"' _ "$exec_start" \
    "$(sed -n '/^# ---- begin configuration 2:/,/^# ---- end configuration 2/p' "$NGINX_EXAMPLE" | grep '^# run:')"
  path=$(awk '$1 == "location" {print $2; exit}' <<<"$location")
  port=$(free_port)
  nd=$WORK/nginx
  mkdir -p "$nd" && chmod 0755 "$nd"
  # `include fastcgi_params;` is relative to the configuration's directory.
  cp /etc/nginx/fastcgi_params "$nd/"
  cat >"$nd/nginx.conf" <<EOF
worker_processes 1;
user www-data;
pid $nd/nginx.pid;
error_log $nd/error.log;
events { worker_connections 64; }
http {
    access_log $nd/access.log;
    client_body_temp_path $nd/body;
    fastcgi_temp_path $nd/fastcgi;
    proxy_temp_path $nd/proxy;
    uwsgi_temp_path $nd/uwsgi;
    scgi_temp_path $nd/scgi;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
$location
    }
}
EOF
  if ! nginx -t -q -c "$nd/nginx.conf" -p "$nd" 2>"$nd/test.log"; then
    fail "nginx -t rejected the configuration: $(cat "$nd/test.log")"
    return
  fi
  nginx -c "$nd/nginx.conf" -p "$nd" 2>>"$nd/test.log"
  on_exit "kill \$(cat '$nd/nginx.pid' 2>/dev/null) 2>/dev/null"
  for i in $(seq 100); do
    [ -s "$nd/nginx.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done

  nurl=http://127.0.0.1:$port$path
  req -u "$v:$pw_v" "$nurl?last_id=0"
  expect_eq "nginx + FastCGI service: 200" 200 "$CODE"
  expect_jq "nginx + FastCGI service: the 0700 home's 0600 log, read through the capability" "$BODY" \
    '[.result.status, .result.data.status, (.result.data.details | map(.id))] | tojson' '[1,"done",[1,2]]'
  req -u "$v:$pw_v" "$nurl/execute/ClamScanner/check_disinfection_status?last_id=1"
  expect_jq "nginx + FastCGI service: the cPanel path" "$BODY" '.result.data.details | map(.id) | tojson' '[2]'
  req -u "$v:$pw_v" "http://127.0.0.1:$port/execute/ClamScanner/check_disinfection_status?last_id=1"
  expect_jq "nginx + FastCGI service: /execute/, flat (the example's CLAMSCANNER_ENVELOPE param)" "$BODY" \
    '[.status, (.data.details | map(.id))] | tojson' '[1,[2]]'
  req "$nurl"
  expect_eq "nginx + FastCGI service: no password: 401" 401 "$CODE"
  req -H "Authorization: Basic $(printf '%s:x' "$U" | base64)" "$nurl"
  expect_eq "nginx + FastCGI service: naming a user with a wrong password (nginx's REMOTE_USER) is 401" 401 "$CODE"
  req -u "$v:wrong" "$nurl"
  expect_eq "nginx + FastCGI service: wrong password: 401" 401 "$CODE"
  req -u "$U:$PW" "$nurl?last_id=0"
  expect_jq "nginx + FastCGI service: another account gets its own log" "$BODY" .result.data.log "$HOME_U/$LOG"

  status=$(cat "/proc/$FCGI_PID/status" 2>/dev/null)
  expect_eq "the service process is /usr/bin/clamscanner" /usr/bin/clamscanner "$(readlink "/proc/$FCGI_PID/exe")"
  expect_eq "it runs as the service user" "$(id -u "$user")" "$(awk '/^Uid:/ {print $2}' <<<"$status")"
  caps=$(awk '/^Cap(Prm|Eff|Bnd|Amb):/ {printf "%s%s ", $1, $2}' <<<"$status")
  expect_eq "its only capability is CAP_DAC_READ_SEARCH" \
    "CapPrm:0000000000000004 CapEff:0000000000000004 CapBnd:0000000000000004 CapAmb:0000000000000004 " "$caps"
  expect_eq "with no_new_privs" 1 "$(awk '/^NoNewPrivs:/ {print $2}' <<<"$status")"
  expect_eq "the socket is ${mode#0} root:$sgroup" "${mode#0} root $sgroup" "$(stat -c '%a %U %G' "$listen")"

  kill "$(cat "$nd/nginx.pid")" 2>/dev/null
  kill "$FCGI_PID" 2>/dev/null
  wait "$FCGI_PID" 2>/dev/null
  rm -rf "$(dirname "$listen")"
}
FASTCGI_HELP=$(/usr/bin/clamscanner fastcgi --help 2>&1)
if [[ $FASTCGI_HELP != *--listen* ]]; then
  echo "SKIP: FastCGI part: this build has no \`clamscanner fastcgi\` command"
else
  fastcgi_part
fi

# --- 5. remove, then purge ---------------------------------------------------------------------
stop_system_apache
a2disconf -q clamscanner >/dev/null 2>&1
a2enconf -q clamscanner >/dev/null 2>&1 # enabled, so that remove has to disable it
out=$(DEBIAN_FRONTEND=noninteractive apt-get remove -y clamscanner 2>&1)
expect_eq "apt-get remove" 0 "$?"
expect_eq "dpkg: only the configuration is left" "deinstall ok config-files" "$(dpkg-query -W -f='${Status}' clamscanner)"
a2query -q -c clamscanner
expect_eq "remove disabled the configuration (Apache's marker: by a maintainer script)" 33 "$?"
# Every file dpkg still lists must be a conffile.
CONFFILES=$(dpkg-query -W -f='${Conffiles}\n' clamscanner | awk 'NF {print $1}')
leftover=$(dpkg -L clamscanner 2>/dev/null | while read -r f; do
  [ -f "$f" ] && ! grep -qxF "$f" <<<"$CONFFILES" && echo "$f"; done)
expect_eq "dpkg -L: every file left is a conffile" "" "$leftover"
snapshot >"$WORK/after-remove"
new=$(comm -13 "$WORK/before" "$WORK/after-remove")
# Allowed: the conffile, the credential file the administrator filled, and Apache's own state
# (the module stays enabled until purge; its markers say who enabled or disabled what). The
# test's own accounts change the account files (and useradd may create /etc/subuid).
unexpected=$(grep -vxE '/etc/apache2/conf-available/clamscanner.conf|/etc/clamscanner|/etc/clamscanner/htpasswd|/etc/apache2/mods-enabled/cgid\.(load|conf)|/var/lib/apache2/(module|conf)(/[a-z_]+)?(/(cgid|clamscanner))?|/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?' <<<"$new")
expect_eq "after remove: no other new file anywhere" "" "$unexpected"
check "after remove: the credential file is kept" grep -q "^$U:" /etc/clamscanner/htpasswd

# Installing again after a remove: the configuration the remove disabled comes back, the
# credential file is the administrator's as it was.
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB" 2>&1)
expect_eq "apt-get install again after remove" 0 "$?"
check "the reinstall enabled the configuration the remove had disabled" a2query -q -c clamscanner
check "the reinstall kept the credential file's entries" grep -q "^$U:" /etc/clamscanner/htpasswd

out=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y clamscanner 2>&1)
expect_eq "apt-get purge" 0 "$?"
expect_eq "dpkg: nothing left" "" "$(dpkg-query -W -f='${Status}' clamscanner 2>/dev/null | grep -v not-installed)"
check "purge removed the service user" bash -c '! getent passwd clamscanner'
check "purge removed its group" bash -c '! getent group clamscanner'
expect_eq "purge put the CGI module back as it was ($CGID_BEFORE)" "$CGID_BEFORE" \
  "$(a2query -q -m cgid && echo on || echo off)"
snapshot >"$WORK/after-purge"
unexpected=$(comm -13 "$WORK/before" "$WORK/after-purge" | grep -vxE '/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?|/var/lib/apache2/(module|conf)(/[a-z_]+)?')
expect_eq "after purge: no new file anywhere" "" "$unexpected"
gone=$(comm -23 "$WORK/before" "$WORK/after-purge")
expect_eq "after purge: no file of the machine's went missing" "" "$gone"

finish
