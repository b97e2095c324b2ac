#!/usr/bin/env bash
# Work is bounded whatever the log holds (issue 9, items 12 and 13; SPEC §3): sparse logs of
# several GB made with `truncate -s` (holes at the end, in the middle, nothing but a hole), one
# 16 MiB line among 20 records, and more junk than the 64 MiB limit. Each answer is checked, and
# so is the work: the bytes the CGI process read (rchar in /proc/PID/io, read once it has done
# all its reading), never its time. As root that is the exited process before it is reaped; a
# zombie's /proc files belong to root, so a normal user stops it at its exit instead (ptrace,
# PTRACE_O_TRACEEXIT, as its parent may): the same counter, read at the same point.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
H=$WORK/home
make_account "$H" sparse
LOG=$H/sparse/$LOG_NAME
MIB=1048576

# run_cgi QUERY: the answer's body in BODY and the bytes the process read in READ.
run_cgi() {
  local out
  out=$(python3 - "$BIN" "$H" "$1" 2>"$WORK/rchar" <<'PY'
import os, subprocess, sys
bin, home, query = sys.argv[1:4]
env = {"PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
       "QUERY_STRING": query, "REMOTE_USER": "sparse", "CLAMSCANNER_HOME_ROOT": home}
def rchar_of(pid):
    with open("/proc/%d/io" % pid) as f:
        return [l.split()[1] for l in f if l.startswith("rchar:")][0]
if os.geteuid() == 0:
    p = subprocess.Popen([bin], env=env)
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # a zombie still has its counters
    rchar = rchar_of(p.pid)
    p.wait()
else:
    import ctypes, signal
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    TRACEME, CONT, SETOPTIONS = 0, 7, 0x4200
    O_TRACEEXIT, O_EXITKILL, EVENT_EXIT = 0x40, 0x100000, 6
    def ptrace(req, pid, data=0):
        if libc.ptrace(req, pid, None, ctypes.c_void_p(data)) == -1:
            raise OSError(ctypes.get_errno(), "ptrace %d" % req)
    signal.alarm(300)  # the deadline: the traced process is killed with this one (EXITKILL)
    p = subprocess.Popen([bin], env=env, preexec_fn=lambda: ptrace(TRACEME, 0))
    _, st = os.waitpid(p.pid, 0)  # stopped by SIGTRAP once exec has succeeded
    ptrace(SETOPTIONS, p.pid, O_TRACEEXIT | O_EXITKILL)
    ptrace(CONT, p.pid)
    rchar = None
    while True:
        _, st = os.waitpid(p.pid, 0)
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            break
        sig = os.WSTOPSIG(st)
        if sig == signal.SIGTRAP and st >> 16 == EVENT_EXIT:
            rchar, sig = rchar_of(p.pid), 0  # exiting: every read is done, /proc still its own
        ptrace(CONT, p.pid, sig)
    p.returncode = 0
sys.stdout.flush()
os.write(2, ("rchar %s\n" % rchar).encode())
PY
  )
  BODY=$(printf '%s' "$out" | sed '1,/^\r\?$/d')
  READ=$(sed -n 's/^rchar //p' "$WORK/rchar")
}
records() { for i in $(seq "$1" "$2"); do printf '{"type":"step","file":"f%d","id":%d}\n' "$i" "$i"; done; }
# expect_read_below DESCRIPTION BYTES
expect_read_below() {
  if [ -n "$READ" ] && [ "$READ" -lt "$2" ]; then pass "$1 ($READ bytes read)"; else fail "$1: $READ bytes read, limit $2"; fi
  echo "  $1: $READ bytes read"
}

# 1. Records, then a 6 GB hole at the end (a torn tail of zeros).
records 1 50 >"$LOG"
truncate -s 6G "$LOG"
run_cgi ""
expect_jq "hole at the end: status 1" "$BODY" .result.status 1
expect_jq "hole at the end: the 50 records" "$BODY" '.result.data.details | length' 50
expect_jq "hole at the end: no warning" "$BODY" .result.warnings null
expect_read_below "hole at the end: full read of a 6 GB log" $MIB
run_cgi "last_id=49"
expect_jq "hole at the end: poll" "$BODY" '[.result.status, (.result.data.details | map(.id) | join(","))] | join(" ")' "1 50"
expect_read_below "hole at the end: poll" $MIB

# 2. A 5 GB hole in the middle, then more records: the hole's line is malformed, the rest is read.
printf '\n' >>"$LOG"
records 51 100 >>"$LOG"
run_cgi ""
expect_jq "hole in the middle: status 1" "$BODY" .result.status 1
expect_jq "hole in the middle: 100 records" "$BODY" '.result.data.details | map(.id) | (length == 100 and . == (. | sort))' true
expect_jq "hole in the middle: one malformed line after id 50" "$BODY" '.result.warnings[0]' \
  "1 malformed line in the log was skipped, the first after the record with id 50."
expect_read_below "hole in the middle: full read" $MIB
for last in 10 49 50 51 99; do
  run_cgi "last_id=$last"
  expect_jq "hole in the middle: poll from $last" "$BODY" '[.result.status, (.result.data.details | .[0].id)] | join(" ")' "1 $((last + 1))"
  expect_read_below "hole in the middle: poll from $last (bisecting across the hole)" $MIB
done

# 3. Nothing but a hole.
: >"$LOG"; truncate -s 8G "$LOG"
run_cgi ""
expect_jq "only a hole: status 1, none" "$BODY" '[.result.status, .result.data.status] | join(" ")' "1 none"
expect_read_below "only a hole: 8 GB" $MIB

# 4. One 16 MiB line among 20 records: read about once (the final check reads it again), not
#    once per piece of it.
{ records 1 10; head -c $((16 * MIB)) /dev/zero | tr '\0' x; printf '\n'; records 11 20; } >"$LOG"
size=$(stat -c %s "$LOG")
run_cgi ""
expect_jq "a 16 MiB line: status 1, 20 records" "$BODY" '[.result.status, (.result.data.details | length)] | join(" ")' "1 20"
expect_jq "a 16 MiB line: one malformed line" "$BODY" '.result.warnings[0]' \
  "1 malformed line in the log was skipped, the first after the record with id 10."
expect_read_below "a 16 MiB line: linear work" $((2 * size + MIB))

# 5. More than 64 MiB of junk: status 0, "damaged", and at most about the limit read.
python3 -c '
import sys
out = open(sys.argv[1], "wb")
out.write(b"{\"id\":1}\n")
line = b"this is not a record, it is junk, and there is a lot of it ........\n"
out.write(line * (80 * 1024 * 1024 // len(line)))
out.write(b"{\"id\":2}\n")' "$LOG"
run_cgi ""
expect_jq "80 MiB of junk: status 0" "$BODY" .result.status 0
expect_contains "80 MiB of junk: the log is damaged" "the log is damaged" "$(jqv "$BODY" '.result.errors[0]')"
expect_jq "80 MiB of junk: what was sent stays" "$BODY" '.result.data.details[0].id' 1
expect_read_below "80 MiB of junk: bounded" $((66 * MIB))

# 6. One 128 MiB line (issue 9's case): bounded by the same limit.
{ records 1 10; head -c $((128 * MIB)) /dev/zero | tr '\0' y; printf '\n'; records 11 20; } >"$LOG"
run_cgi ""
expect_jq "a 128 MiB line: status 0, damaged" "$BODY" '[.result.status, (.result.errors[0] | test("damaged"))] | join(" ")' "0 true"
expect_read_below "a 128 MiB line: bounded" $((66 * MIB))
finish
