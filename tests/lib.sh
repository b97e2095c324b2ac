# Shared helpers for the shell tests. Source it; do not run it.
#
# Every test file is a plain bash script that sources this file, calls `check`/`expect_*`
# for each assertion and ends with `finish`, which prints "N passed, N failed" and exits
# non-zero on any failure. Servers are waited for by polling their own readiness signals
# (never by sleeping a fixed time), and are stopped by an EXIT trap even when a check fails.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
BIN=${BIN:-$ROOT/target/debug/clamscanner}
LOG_NAME=.clamavconnector.disinfection.log
STATE_NAME=.clamavconnector.disinfection.state
PASSED=0
FAILED=0
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "/tmp/clamscanner-$TEST_NAME.XXXXXX")
chmod 755 "$WORK"
CLEANUPS=()

_run_cleanups() {
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap _run_cleanups EXIT
on_exit() { CLEANUPS+=("$*"); }

pass() { PASSED=$((PASSED + 1)); [ -z "${VERBOSE:-}" ] || echo "  ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $*" >&2; }

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() {
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
# expect_contains DESCRIPTION NEEDLE HAYSTACK
expect_contains() {
  case "$3" in *"$2"*) pass "$1" ;; *) fail "$1: [$2] not found in [${3:0:400}]" ;; esac
}
expect_not_contains() {
  case "$3" in *"$2"*) fail "$1: [$2] found in [${3:0:400}]" ;; *) pass "$1" ;; esac
}
# jqv JSON FILTER: prints the filter's result (raw), or "<invalid json>".
jqv() { printf '%s' "$1" | jq -r "$2" 2>/dev/null || echo "<invalid json>"; }
# expect_jq DESCRIPTION JSON FILTER EXPECTED
expect_jq() { expect_eq "$1" "$4" "$(jqv "$2" "$3")"; }
is_json() { printf '%s' "$1" | jq -e . >/dev/null 2>&1; }

finish() {
  echo "$TEST_NAME: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# --- what this machine cannot do ---------------------------------------------------------------
# A test or some of its checks may need what a machine lacks (a program, root). Each such gap is
# one line starting with "SKIP" that says why; tests/run.sh counts and lists them. With CI set the
# gap is a failure instead: CI must run everything (.ci/run installs what the tests need).

# skip_test REASON: the whole test cannot run here; SKIP line and exit 0 (with CI set: exit 1).
skip_test() {
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $TEST_NAME: $1 (CI is set)" >&2
    exit 1
  fi
  echo "SKIP: $TEST_NAME: $1"
  exit 0
}
# skip_checks REASON: some checks cannot run here; a SKIP line (with CI set: one failed check).
skip_checks() {
  if [ -n "${CI:-}" ]; then fail "$1 (CI is set)"; else echo "SKIP: $TEST_NAME: $1"; fi
}
# needs_root WHAT: true as root; otherwise one SKIP line for WHAT (a failure with CI set) and false.
#   if needs_root "the checks that chown to another uid"; then ...; fi
needs_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  skip_checks "$1 need root: run as root for them"
  return 1
}

# --- fixtures -------------------------------------------------------------------------
# make_account HOME_ROOT USER: an account directory under a home root.
make_account() { mkdir -p "$1/$2"; chmod 755 "$1" "$1/$2"; }

# write_log FILE N [done|running]: N records in the real writer's shape.
write_log() {
  python3 "$SHARED/bench/genlog.py" "$1" "$2" --seed 7 --"${3:-done}" --no-state
  chmod 644 "$1"
}

# add_htpasswd FILE USER PASS: a bcrypt entry at cost 4 (fast enough for debug builds).
add_htpasswd() {
  htpasswd -nbB -C 4 "$2" "$3" | sed '/^$/d' >> "$1"
  chmod 644 "$1"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_listener ARGS...: starts `clamscanner serve --listen 127.0.0.1:0 ARGS...` and waits
# for its "listening on http://ADDR" line. Sets LISTENER_PID, LISTENER_URL, LISTENER_LOG.
start_listener() {
  LISTENER_LOG=$(mktemp "$WORK/listener.XXXXXX.log")
  "$BIN" serve --listen 127.0.0.1:0 "$@" 2>"$LISTENER_LOG" &
  LISTENER_PID=$!
  on_exit "kill $LISTENER_PID 2>/dev/null; wait $LISTENER_PID 2>/dev/null"
  # Follow the log as it is written (tail -F wakes on each write) until the ready line.
  local line rfd tailpid
  exec {rfd}< <(exec tail -n +1 -F --pid="$LISTENER_PID" "$LISTENER_LOG" 2>/dev/null)
  tailpid=$!
  LISTENER_URL=
  while IFS= read -r -t 30 -u "$rfd" line; do
    case $line in *"listening on http://"*) LISTENER_URL=${line##*listening on }; break ;; esac
  done
  kill "$tailpid" 2>/dev/null; exec {rfd}<&-
  LISTENER_URL=${LISTENER_URL%% *}
  [ -n "$LISTENER_URL" ] && return 0
  echo "listener did not start:" >&2; cat "$LISTENER_LOG" >&2
  return 1
}

# cgi [VAR=VALUE...] : runs the binary as a CGI program with a clean environment.
# Stdin is passed through. Prints headers and body as the web server would receive them.
cgi() { env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 SERVER_PROTOCOL=HTTP/1.1 REQUEST_METHOD=GET "$@" "$BIN"; }

# split_cgi OUTPUT: sets CGI_HEADERS and CGI_BODY from a CGI program's output (the headers end
# at the first empty line). The one place that splits a CGI answer in shell; Python helpers use
# tests/testlib.py's split_cgi.
split_cgi() {
  CGI_HEADERS=$(printf '%s' "$1" | sed -n '1,/^\r\?$/p')
  CGI_BODY=$(printf '%s' "$1" | sed '1,/^\r\?$/d')
}
# body_of OUTPUT: the body of a CGI program's output.
body_of() { split_cgi "$1"; printf '%s' "$CGI_BODY"; }
# status_of OUTPUT: the HTTP status of a CGI program's output (200 when there is no Status line).
status_of() {
  split_cgi "$1"
  local s; s=$(printf '%s' "$CGI_HEADERS" | sed -n 's/^Status: \([0-9]*\).*/\1/p')
  echo "${s:-200}"
}

# --- answers of HTTP requests ------------------------------------------------------------------
# A test's request helper (curl -D) leaves the response headers, CRs removed, in HEADERS and
# the body in BODY; these read them.

# header NAME: the first value of response header NAME (case-insensitive); empty when absent.
header() { printf '%s\n' "$HEADERS" | sed -n "s/^$1: *//Ip" | head -n 1; }
# ids [ARRAY]: the ids of the records in ARRAY of BODY (default .result.data.details), as "1,2,3".
ids() { jqv "$BODY" "[${1:-.result.data.details}[].id] | map(tostring) | join(\",\")"; }
