#!/usr/bin/env python3
"""A log rewritten while an answer streams (issue 9, item 11), for tests/t_log_changes.sh.

    log_changes.py --bin BIN --home-root H --user U --mode same|different
                   --iterations N --records R

A writer process truncates the log and writes a new version (ids 1..R, each record tagged with
its version number) over and over at full speed. Each iteration starts the CGI program on a full
read, reads the first 64 KiB of its answer and then stops reading: the program blocks on its
full stdout pipe, mid-stream. Only once the writer has finished two more rewrites does the test
read the rest. So every iteration has the log rewritten under a streaming answer; no sleep
orders anything.

`same`: every version has lines of the same lengths at the same offsets (only the version tag
differs). `different`: line lengths change from version to version.

Every answer must be valid JSON and either a consistent snapshot (result.status 1, the details
byte for byte the first k records of ONE version, ids 1..k, the status right for them) or
result.status 0 with an error saying the log changed while it was read. Prints one line per
finding, "ok|FAIL <TAB> what <TAB> detail", and a summary line.
"""
import argparse
import json
import mmap
import os
import struct
import subprocess
import sys
import time

LOG_NAME = ".clamavconnector.disinfection.log"
DEADLINE = 30.0  # seconds for any one wait


def record(mode, v, i, last):
    kind = "done" if i == last else "step"
    pad = 12 if mode == "same" else (v * 7 + i * 3) % 40
    return ('{"type":"%s","v":"%08d","file":"public_html/%s.php","state":"deleted","id":%d}\n'
            % (kind, v, "x" * pad, i)).encode()


def version(mode, v, n):
    return b"".join(record(mode, v, i, n) for i in range(1, n + 1))


def writer(log, mode, n, counter, stop_at):
    """Child process: rewrite the log at full speed until told to stop (or a deadline)."""
    v = 1
    end = time.monotonic() + 10 * DEADLINE
    fd = os.open(log, os.O_WRONLY)
    while time.monotonic() < end and struct.unpack_from("q", counter, 8)[0] == 0:
        v += 1
        data = version(mode, v, n)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        at = 0
        while at < len(data):  # in pieces, as a buffered writer does
            at += os.pwrite(fd, view[at:at + 65536], at)
        struct.pack_into("q", counter, 0, v)
    os.close(fd)
    os._exit(0)


def read_exactly(fd, n):
    got = b""
    while len(got) < n:
        chunk = os.read(fd, n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--home-root", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--mode", choices=["same", "different"], required=True)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--records", type=int, default=30000)
    a = ap.parse_args()
    log = os.path.join(a.home_root, a.user, LOG_NAME)
    with open(log, "wb") as f:
        f.write(version(a.mode, 1, a.records))
    os.chmod(log, 0o644)
    counter = mmap.mmap(-1, 16)  # [versions written, stop flag], shared with the writer
    pid = os.fork()
    if pid == 0:
        writer(log, a.mode, a.records, counter, None)
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
           "QUERY_STRING": "", "REMOTE_USER": a.user, "CLAMSCANNER_HOME_ROOT": a.home_root}
    results = {"changed": 0, "snapshot": 0, "bad": 0}

    def say(ok, what, detail=""):
        print("%s\t%s\t%s" % ("ok" if ok else "FAIL", what, detail[:300]))
        if not ok:
            results["bad"] += 1

    try:
        for it in range(a.iterations):
            p = subprocess.Popen([a.bin], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            fd = p.stdout.fileno()
            head = read_exactly(fd, 65536)
            # Paused: the program fills the pipe and blocks. Two more rewrites meanwhile.
            start = struct.unpack_from("q", counter, 0)[0]
            deadline = time.monotonic() + DEADLINE
            while struct.unpack_from("q", counter, 0)[0] < start + 2 and time.monotonic() < deadline:
                os.sched_yield()
            rewrites = struct.unpack_from("q", counter, 0)[0] - start
            out = head + p.stdout.read()
            p.wait(timeout=DEADLINE)
            name = "%s #%d" % (a.mode, it)
            if rewrites < 2:
                say(False, name + ": the writer rewrote the log while the answer was paused",
                    "%d rewrites" % rewrites)
            sep = out.find(b"\r\n\r\n")
            sep = (sep + 4) if sep >= 0 else out.find(b"\n\n") + 2
            body = out[sep:]
            try:
                result = json.loads(body)["result"]
            except (ValueError, KeyError) as e:
                say(False, name + ": the answer is valid JSON", "%s: %r" % (e, body[-200:]))
                continue
            details = result["data"].get("details", [])
            if result["status"] == 0:
                errors = " ".join(result.get("errors") or [])
                if "changed while it was read" in errors:
                    results["changed"] += 1
                    say(True, name + ": valid JSON, status 0, the log changed while it was read")
                else:
                    say(False, name + ": status 0 says the log changed", errors)
                continue
            # Status 1: the first k records of one version, byte for byte.
            k = len(details)
            versions = {d.get("v") for d in details}
            if len(versions) > 1:
                say(False, name + ": status 1 holds one version", "versions %s" % sorted(map(str, versions))[:5])
                continue
            v = int(versions.pop()) if k else 1
            want = b",".join(record(a.mode, v, i, a.records).rstrip(b"\n") for i in range(1, k + 1))
            at = body.find(b'"details":[') + len(b'"details":[')
            ok = body[at:at + len(want)] == want and body[at + len(want):at + len(want) + 1] == b"]"
            ids_ok = [d.get("id") for d in details] == list(range(1, k + 1))
            status = result["data"]["status"]
            want_status = "done" if k == a.records else ("running" if k else "none")
            if ok and ids_ok and status == want_status:
                results["snapshot"] += 1
                say(True, name + ": valid JSON, status 1, %d records of version %d" % (k, v))
            else:
                say(False, name + ": status 1 is a snapshot of version %d" % v,
                    "%d records, ids in order %s, status %s" % (k, ids_ok, status))
    finally:
        struct.pack_into("q", counter, 8, 1)
        os.waitpid(pid, 0)
    say(results["changed"] > 0, "%s: some answers saw the change" % a.mode,
        "%(changed)d changed, %(snapshot)d consistent snapshots" % results)
    print("summary\t%s\t%d iterations: %d ended with the 'changed' error, %d were consistent "
          "snapshots, %d wrong" % (a.mode, a.iterations, results["changed"], results["snapshot"],
                                   results["bad"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
