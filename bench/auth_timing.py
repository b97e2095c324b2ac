#!/usr/bin/env python3
"""`make bench-auth`: can response time tell a known user from an unknown one? (issue 9 item 9)

    auth_timing.py [BIN]

Medians over N tries (AUTH_TRIES, default 150) of a Basic and a token attempt for a known
user and for an unknown one, through the CGI program (one process per request, as Apache
runs it) and through the listener (one keep-alive connection). The known user's entry is
not the first one in the file and has a higher cost than it (the dummy hash used to take
the first entry's cost), and the known token user has three tokens while the other has one.
A right password is measured only in CGI mode: the listener caches it.

Every known row must be within 10% of the unknown row of its front end and scheme; the
script exits 1 otherwise. Tries are interleaved case by case, so a drift of the machine
(other jobs, frequency) hits every case alike. The unit tests count bcrypt work exactly
(src/auth.rs `every_attempt_costs_the_same_work`); this measures what a client sees.
"""
import base64
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TRIES = int(os.environ.get("AUTH_TRIES", "150"))
LIMIT = 0.10
API = "/execute/ClamScanner/check_disinfection_status"


def entry(binary, user, secret, cost):
    line = subprocess.run(
        [binary, "htpasswd", "--cost", str(cost), user],
        input=secret + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return line + "\n"


def basic(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/clamscanner")
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench-auth: {binary} is not built (make release)")
    work = tempfile.mkdtemp(prefix="clamscanner-auth-bench.")
    listener = None
    try:
        homes = os.path.join(work, "home")
        for user in ("alice", "bob", "dave", "erin"):
            os.makedirs(os.path.join(homes, user))
        htpasswd = os.path.join(work, "htpasswd")
        tokens = os.path.join(work, "tokens")
        with open(htpasswd, "w") as f:
            f.write(entry(binary, "bob", "pw-bob", 5))
            f.write(entry(binary, "alice", "pw-alice", 9))
        with open(tokens, "w") as f:
            f.write(entry(binary, "erin", "TOKEN-E", 5))
            for n in range(3):
                f.write(entry(binary, "dave", f"TOKEN-D{n}", 7))

        cases = [
            ("Basic", "known, right", basic("alice", "pw-alice"), True),
            ("Basic", "known, wrong", basic("alice", "wrong"), False),
            ("Basic", "unknown", basic("zoe", "pw-alice"), False),
            ("token", "known, right", "cpanel dave:TOKEN-D1", True),
            ("token", "known, wrong", "cpanel dave:TOKEN-WRONG", False),
            ("token", "unknown", "cpanel zoe:TOKEN-D1", False),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": "GET",
            "PATH_INFO": API,
            "CLAMSCANNER_HOME_ROOT": homes,
            "CLAMSCANNER_HTPASSWD": htpasswd,
            "CLAMSCANNER_TOKENS": tokens,
        }

        def cgi(authorization, right):
            started = time.perf_counter()
            child = subprocess.Popen(
                [binary],
                env=dict(env, HTTP_AUTHORIZATION=authorization),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            out = child.stdout.read()
            _, _, usage = os.wait4(child.pid, 0)
            elapsed = time.perf_counter() - started
            child.returncode = 0  # reaped above
            child.stdout.close()
            if (b"Status: 401" in out.split(b"\r\n\r\n")[0]) == right:
                sys.exit(f"bench-auth: CGI answer not as expected for {authorization[:6]}…")
            return elapsed, usage.ru_utime + usage.ru_stime

        listener = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--htpasswd", htpasswd,
             "--tokens", tokens, "--home-root", homes],
            stderr=subprocess.PIPE,
            text=True,
        )
        address = None
        deadline = time.monotonic() + 30
        while address is None and time.monotonic() < deadline:
            line = listener.stderr.readline()
            if not line:
                break
            if "listening on http://" in line:
                address = line.split("listening on http://", 1)[1].split()[0]
        if address is None:
            sys.exit("bench-auth: the listener did not start")
        host, port = address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)

        def cpu_ns():
            """CPU time of all the listener's threads so far, in ns (schedstat)."""
            total = 0
            tasks = f"/proc/{listener.pid}/task"
            for task in os.listdir(tasks):
                try:
                    with open(f"{tasks}/{task}/schedstat") as f:
                        total += int(f.read().split()[0])
                except OSError:
                    pass  # a thread that ended meanwhile
            return total

        def served(authorization, right):
            cpu = cpu_ns()
            started = time.perf_counter()
            connection.request("GET", API, headers={"Authorization": authorization})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if (response.status == 200) != right:
                sys.exit(f"bench-auth: listener answered {response.status}")
            return elapsed, (cpu_ns() - cpu) / 1e9

        fronts = [("CGI", cgi, cases), ("listener", served, [c for c in cases if not c[3]])]
        runs = [(front, run, case) for front, run, front_cases in fronts for case in front_cases]
        times = {}
        for front, run, (scheme, case, authorization, right) in runs:
            run(authorization, right)  # warm-up (page cache, first load)
            times[(front, scheme, case)] = []
        order = random.Random(9)
        for _ in range(TRIES):
            # A new order each round: no case always runs right after another.
            order.shuffle(runs)
            for front, run, (scheme, case, authorization, right) in runs:
                times[(front, scheme, case)].append(run(authorization, right))

        load = open("/proc/loadavg").read().split()[:3]
        print(f"auth timing: medians of {TRIES} interleaved tries, load average {' '.join(load)}")
        print(f"{'front end':<9} {'scheme':<6} {'user':<13} {'wall ms':>8} {'ratio':>6} "
              f"{'cpu ms':>7} {'ratio':>6} {'limit':>6}  verdict")
        failed = False
        for front, _, front_cases in fronts:
            for scheme, case, _, _ in front_cases:
                mine = times[(front, scheme, case)]
                theirs = times[(front, scheme, "unknown")]
                wall, cpu = (statistics.median(t[i] for t in mine) for i in (0, 1))
                ratios = [wall / statistics.median(t[0] for t in theirs),
                          cpu / statistics.median(t[1] for t in theirs)]
                if case == "unknown":
                    verdict = ""
                elif case == "known, right":
                    verdict = "(not judged: a right secret also serves the answer)"
                else:
                    ok = all(abs(r - 1) <= LIMIT for r in ratios)
                    failed |= not ok
                    verdict = "ok" if ok else "FAIL"
                print(f"{front:<9} {scheme:<6} {case:<13} {wall * 1000:8.2f} {ratios[0]:6.3f} "
                      f"{cpu * 1000:7.2f} {ratios[1]:6.3f} {'±10%':>6}  {verdict}")
        print("auth timing: " + ("FAIL, a known user can be told apart" if failed else
                                 "every known user with a wrong secret within 10% of an unknown one"))
        return 1 if failed else 0
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
