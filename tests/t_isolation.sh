#!/usr/bin/env bash
# Account isolation (SPEC §2): only the authenticated account's own two files are ever read.
# Each case is a real file planted where the log or state file should be; the answer must be a
# clean refusal (result.status 0) with no byte of the planted target in it, and nothing may hang.
. "$(dirname "$0")/lib.sh"

H=$WORK/home
FN=/execute/ClamScanner/check_disinfection_status
SECRET=MALLORY-SECRET-7f3a9c
make_account "$H" alice
make_account "$H" mallory
printf '{"type":"step","file":"%s","state":"deleted","id":1}\n' "$SECRET" > "$H/mallory/$LOG_NAME"
printf '%s\n' "$SECRET" > "$WORK/secret.txt"
NOBODY_UID=$(id -u nobody)
# Files of another owner take chown, a system account takes useradd: both need root.
AS_ROOT=
needs_root "the checks with another uid's files (chown) and a system account (useradd)" && AS_ROOT=1
[ -z "$AS_ROOT" ] || chown nobody "$H/mallory/$LOG_NAME"

ask() { cgi REMOTE_USER="${USER_AS:-alice}" CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" "$@" < /dev/null; }

# file_refused DESCRIPTION EXPECTED-WORDS: asks as alice (bounded by a timeout: a FIFO must not hang)
# and checks for a clean refusal that leaks nothing.
file_refused() {
  local out b
  out=$(timeout 10 env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET REMOTE_USER=alice \
        CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" "$BIN" </dev/null)
  local rc=$?
  expect_eq "$1: answered (no hang, no crash)" 0 "$rc"
  b=$(body_of "$out")
  expect_jq "$1: HTTP 200 envelope, status 0" "$b" '.result.status' 0
  expect_jq "$1: data is {}" "$b" '.result.data | tostring' '{}'
  expect_contains "$1: says why" "$2" "$(jqv "$b" '.result.errors[0]')"
  expect_not_contains "$1: no byte of the target" "$SECRET" "$out"
  expect_not_contains "$1: no passwd content" "root:x:0" "$out"
}

A=$H/alice
reset() { rm -rf "${A:?}/$LOG_NAME" "${A:?}/$STATE_NAME"; }

echo "-- the log is not alice's own regular file"
reset; ln -s "$H/mallory/$LOG_NAME" "$A/$LOG_NAME"
file_refused "symlink to another user's log" "symbolic link"
reset; ln -s /etc/passwd "$A/$LOG_NAME"
file_refused "symlink to /etc/passwd" "symbolic link"
reset; ln -s /dev/zero "$A/$LOG_NAME"
file_refused "symlink to /dev/zero" "symbolic link"
if [ -n "$AS_ROOT" ]; then
  reset; ln "$H/mallory/$LOG_NAME" "$A/$LOG_NAME"
  file_refused "hard link to a file owned by someone else" "owned by uid $NOBODY_UID"
fi
reset; mkfifo "$A/$LOG_NAME"
file_refused "a FIFO" "FIFO"
reset; mkdir "$A/$LOG_NAME"
file_refused "a directory" "directory"
if [ -n "$AS_ROOT" ]; then
  reset; cp "$WORK/secret.txt" "$A/$LOG_NAME"; chown nobody "$A/$LOG_NAME"
  file_refused "a regular file owned by another uid" "owned by uid"
fi

echo "-- the state file (read when the log has no record)"
reset; ln -s "$WORK/secret.txt" "$A/$STATE_NAME"
file_refused "state file symlink" "symbolic link"
reset; mkfifo "$A/$STATE_NAME"
file_refused "state file FIFO" "FIFO"
reset

echo "-- a home that is a link is the administrator's choice"
mkdir -p "$WORK/real-bob"; chmod 755 "$WORK/real-bob"
ln -s "$WORK/real-bob" "$H/bob"
write_log "$WORK/real-bob/$LOG_NAME" 3 done
b=$(body_of "$(USER_AS=bob ask)")
expect_jq "linked home: served" "$b" '.result.data.details | length' 3
expect_jq "linked home: log path under the home root" "$b" '.result.data.log' "$H/bob/$LOG_NAME"
if [ -n "$AS_ROOT" ]; then
  chown nobody "$WORK/real-bob"
  b=$(body_of "$(USER_AS=bob ask)")
  expect_jq "files must have the home's owner" "$b" '.result.status' 0
  chown nobody "$WORK/real-bob/$LOG_NAME"
  b=$(body_of "$(USER_AS=bob ask)")
  expect_jq "home owned by uid N: files owned by N are served" "$b" '.result.data.details | length' 3
fi

echo "-- accounts that do not exist, and names that are not names"
b=$(body_of "$(USER_AS=carol ask)")
expect_jq "no home-root entry: HTTP 200 status 0" "$b" '.result.status' 0
expect_contains "no home-root entry: names the account" "carol" "$(jqv "$b" '.result.errors[0]')"
printf 'x\n' > "$H/notadir"
b=$(body_of "$(USER_AS=notadir ask)")
expect_jq "home-root entry that is a file" "$b" '.result.status' 0
: > "$WORK/htpasswd"; add_htpasswd "$WORK/htpasswd" alice pw
name33=$(printf 'a%.0s' $(seq 33))
for name in .. . a/b -x %2e%2e "$name33" $'a\nb' "a b" ".hidden"; do
  out=$(cgi REMOTE_USER="$name" CLAMSCANNER_HOME_ROOT="$H" PATH_INFO="$FN" </dev/null)
  expect_contains "REMOTE_USER ${name:0:12}: 403" "Status: 403" "$out"
  out=$(cgi CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_HTPASSWD="$WORK/htpasswd" PATH_INFO="$FN" \
        HTTP_AUTHORIZATION="Basic $(printf '%s:pw' "$name" | base64 -w0)" </dev/null)
  expect_contains "Basic user ${name:0:12}: 401" "Status: 401" "$out"
  check "Basic user ${name:0:12}: JSON body" is_json "$(body_of "$out")"
done
# A NUL cannot travel in an environment variable, but it can in base64.
out=$(cgi CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_HTPASSWD="$WORK/htpasswd" PATH_INFO="$FN" \
      HTTP_AUTHORIZATION="Basic $(printf 'a\0b:pw' | base64 -w0)" </dev/null)
expect_contains "Basic user with a NUL: 401" "Status: 401" "$out"

echo "-- the system account database"
out=$(cgi REMOTE_USER=root PATH_INFO="$FN" </dev/null)
expect_contains "uid 0 is never served" "uid 0" "$(jqv "$(body_of "$out")" '.result.errors[0]')"
out=$(cgi REMOTE_USER=no-such-user-x PATH_INFO="$FN" </dev/null)
expect_contains "unknown system account" "no-such-user-x" "$(jqv "$(body_of "$out")" '.result.errors[0]')"
SYS_USER=cs-iso-$$
if [ -z "$AS_ROOT" ]; then
  :
elif ! command -v useradd >/dev/null; then
  skip_checks "the account-database checks need useradd, which is not installed"
elif ! useradd -M -d "$WORK/syshome" -s /usr/sbin/nologin "$SYS_USER"; then
  fail "useradd $SYS_USER"
else
  on_exit "userdel $SYS_USER 2>/dev/null"
  mkdir -p "$WORK/syshome"; write_log "$WORK/syshome/$LOG_NAME" 4 running
  chown -R "$SYS_USER" "$WORK/syshome"
  b=$(body_of "$(cgi REMOTE_USER="$SYS_USER" PATH_INFO="$FN" </dev/null)")
  expect_jq "account database home: served" "$b" '.result.data.details | length' 4
  chown root "$WORK/syshome/$LOG_NAME"
  b=$(body_of "$(cgi REMOTE_USER="$SYS_USER" PATH_INFO="$FN" </dev/null)")
  expect_contains "account database: file must be owned by the account's uid" "owned by uid 0" "$(jqv "$b" '.result.errors[0]')"
fi

echo "-- credentials: unusable entries, unknown users, secrets never shown"
H2=$WORK/htpasswd2
{
  printf 'olduser:$apr1$abc$0123456789abcdefghijkl\n'
  printf 'shauser:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n'
  htpasswd -nbB -C 4 slowuser pw | sed '/^$/d' | sed 's/\$2y\$04\$/$2y$15$/'
} > "$H2"
add_htpasswd "$H2" alice 'Pa55-w0rd-XYZ'
asks() { cgi CLAMSCANNER_HOME_ROOT="$H" CLAMSCANNER_HTPASSWD="$H2" PATH_INFO="$FN" \
         HTTP_AUTHORIZATION="Basic $(printf '%s' "$1" | base64 -w0)" </dev/null 2>"$WORK/err"; }
for user in olduser shauser slowuser; do
  out=$(asks "$user:pw")
  expect_contains "$user (unusable entry): 401" "Status: 401" "$out"
done
errs=$(cat "$WORK/err")
expect_eq "one stderr line per unusable entry, per load" 3 "$(grep -c unusable "$WORK/err")"
expect_contains "cost over 14 named" "cost 15" "$errs"
expect_not_contains "no hash in stderr" '$apr1$abc' "$errs"
wrong=$(body_of "$(asks 'alice:guess')")
unknown=$(body_of "$(asks 'zed:guess')")
expect_eq "unknown user and wrong password look the same" "$wrong" "$unknown"
out=$(asks 'alice:Pa55-w0rd-XYZ')
expect_not_contains "password not in the answer" "Pa55-w0rd-XYZ" "$out"
expect_not_contains "password not on stderr" "Pa55-w0rd-XYZ" "$(cat "$WORK/err")"

finish
