#!/usr/bin/env python3
"""Repeated-run timer for `make bench`: wall-clock medians and peak RSS per command.

    measure.py SPEC OUT.jsonl

SPEC has one case per line: `NAME|MIN_RUNS|COMMAND` (blank lines and `#` comments are
skipped). COMMAND is split like a shell word list (no shell runs it); a leading
`env [-i] K=V ...` is applied here rather than by exec'ing /usr/bin/env, so the timed process
is exactly the program with exactly that environment, and `> FILE` at the end redirects
stdout (stdin is /dev/null). All cases run round-robin, so a slow drift of the machine
hits every case alike; a case stops once it has MIN_RUNS runs and MIN_TIME seconds of
runs, or MAX_RUNS runs.

Peak RSS comes from separate untimed runs under `/usr/bin/time -f %M` (Debian package
`time`), which also serve as warm-up. Not from wait4() here: Linux folds the pre-exec
address space's peak into ru_maxrss at exec, so any child of this Python process reports
Python's ~14 MiB; GNU time forks from its own tiny process (floor ~1 MiB, see /bin/true).
Without /usr/bin/time the RSS is left out (null).
"""
import json
import os
import shlex
import statistics
import sys
import time

MIN_TIME = float(os.environ.get("BENCH_MIN_TIME", "1.5"))
MAX_RUNS = int(os.environ.get("BENCH_MAX_RUNS", "400"))


def parse(line):
    name, min_runs, cmd = line.split("|", 2)
    words = shlex.split(cmd)
    env = dict(os.environ)
    if words[:1] == ["env"]:
        words = words[1:]
        if words[:1] == ["-i"]:
            env, words = {}, words[1:]
        while words and "=" in words[0] and not words[0].startswith("/"):
            k, v = words.pop(0).split("=", 1)
            env[k] = v
    out = "/dev/null"
    if len(words) >= 2 and words[-2] == ">":
        out, words = words[-1], words[:-2]
    return {"name": name, "min_runs": int(min_runs), "command": cmd.strip(),
            "argv": words, "env": env, "out": out, "times": [], "cpu": [], "rss": []}


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_once(case, rss_file=None):
    """Seconds from spawn to reaped exit; under GNU time writing the peak RSS when rss_file."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, case["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    argv = case["argv"]
    if rss_file:
        argv = [TIME, "-f", "%M", "-o", rss_file, "--"] + argv
    t0 = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, case["env"], file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("measure: %s exited with %d" % (case["name"], os.waitstatus_to_exitcode(status)))
    if not rss_file:  # CPU time (user + system) shows how much of the wall time was waiting
        case["cpu"].append(usage.ru_utime + usage.ru_stime)
    return (t1 - t0) / 1e9


def rss_run(case):
    """One untimed run; returns (seconds, peak RSS in KiB or None)."""
    if not TIME:
        return run_once(case), None
    path = "%s.rss.%d" % (os.environ.get("TMPDIR", "/tmp") + "/measure", os.getpid())
    t = run_once(case, path)
    with open(path) as f:
        kib = int(f.read().split()[-1])
    os.unlink(path)
    return t, kib


def done(case):
    n = len(case["times"])
    return n >= MAX_RUNS or (n >= case["min_runs"] and sum(case["times"]) >= MIN_TIME)


def main():
    spec, out = sys.argv[1], sys.argv[2]
    with open(spec) as f:
        cases = [parse(l) for l in f if l.strip() and not l.lstrip().startswith("#")]
    for c in cases:  # RSS runs: one for slow cases, three for fast ones
        t, rss = rss_run(c)
        c["rss"].append(rss)
        for _ in range(2 if t < 0.2 else 0):
            c["rss"].append(rss_run(c)[1])
    while not all(done(c) for c in cases):
        for c in cases:
            if not done(c):
                c["times"].append(run_once(c))
    with open(out, "a") as f:
        for c in cases:
            ts = sorted(c["times"])
            q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
            rec = {"name": c["name"], "command": c["command"], "runs": len(ts),
                   "median": statistics.median(ts), "min": ts[0], "max": ts[-1],
                   "q1": q[0], "q3": q[2], "cpu": statistics.median(c["cpu"]),
                   "rss_kib": None if None in c["rss"] else max(c["rss"])}
            f.write(json.dumps(rec) + "\n")
            print("  %-22s %4d runs  median %10.3f ms  peak RSS %8s KiB"
                  % (c["name"], rec["runs"], rec["median"] * 1e3, rec["rss_kib"]), file=sys.stderr)


if __name__ == "__main__":
    main()
