#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into the tables: printed, and written to BENCHMARKS.md.

    report.py RESULTS.jsonl HEADER.md OUT.md

The targets are those of issue 5 ("Speed and memory, in `make bench`")."""
import json
import os
import platform
import re
import subprocess
import sys
import time

SIZES = [1000, 10000, 100000, 1000000]
RSS_LIMIT_KIB = 8 * 1024


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                res[r["name"]] = r
    return res


def ms(s):
    if s is None:
        return "–"
    if s < 1e-3:
        return "%.3f ms" % (s * 1e3)
    if s < 1:
        return "%.2f ms" % (s * 1e3) if s < 0.1 else "%.1f ms" % (s * 1e3)
    return "%.2f s" % s


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else ("%.2f×" % (a / b) if a / b < 10 else "%.0f×" % (a / b))


def kib(v):
    return "–" if v is None else ("%.1f MiB" % (v / 1024))


def label(n):
    return "%dk" % (n // 1000) if n < 1000000 else "%dM" % (n // 1000000)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        m = re.search(r"MemTotal:\s+(\d+)", f.read())
        mem = "%.1f GiB" % (int(m.group(1)) / 1024 / 1024) if m else "?"

    def ver(cmd, any_status=False):  # wrk --version exits 1 after printing its version
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            if out.returncode != 0 and not any_status:
                return "n/a"
            return (out.stdout.strip() or out.stderr.strip()).splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "n/a"
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        ("load average (1, 5, 15 min) at the start / end", "%s / %s" % (
            os.environ.get("BENCH_LOAD_START", "?"), " ".join(open("/proc/loadavg").read().split()[:3]))),
        ("machine", "%d CPUs (nproc), %s, %s RAM, Linux %s" % (os.cpu_count(), cpu, mem, platform.release())),
        ("rustc", ver(["rustc", "--version"])),
        ("clamscanner", "git " + ver(["git", "describe", "--always", "--dirty"]) + ", release build"),
        ("perl / wrk", ver(["perl", "-e", "print qq{perl $^V, JSON::XS }, eval { require JSON::XS; $JSON::XS::VERSION }"])
         + " / " + ver(["wrk", "--version"], True).split(" [")[0]),
    ]


def wrk_parse(text):
    def lat(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, text, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    return {"rps": float(rps.group(1)) if rps else None, "total": int(total.group(1)) if total else None,
            "p50": lat(50), "p90": lat(90), "p99": lat(99),
            "non2xx": int(bad.group(1)) if bad else 0, "sock": sock.group(1).strip() if sock else "none"}


def main():
    res, header, out = load(sys.argv[1]), sys.argv[2], sys.argv[3]
    med = lambda name: res[name]["median"] if name in res else None
    cpu = lambda name: res[name].get("cpu") if name in res else None
    rss = lambda name: res[name]["rss_kib"] if name in res else None
    size = lambda n: res["log-%d" % n]["bytes"] if "log-%d" % n in res else None
    mbs = lambda n, t: "–" if t is None or size(n) is None else "%.0f" % (size(n) / 1e6 / t)
    sizes = [n for n in SIZES if size(n) is not None]
    L = []

    L += ["## Poll with one new record (`last_id` = n−1), median wall time per process", "",
          "| records | log | clamscanner | ÷ clamscanner 1k poll | anchor | anchor ÷ clamscanner "
          "| cat (whole log) | clamscanner ÷ cat | peak RSS clamscanner | peak RSS anchor |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        c, a, k = med("clam-poll-%d" % n), med("anchor-poll-%d" % n), med("cat-%d" % n)
        L.append("| %s | %.1f MB | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label(n), size(n) / 1e6, ms(c), ratio(c, med("clam-poll-1000")), ms(a), ratio(a, c),
            ms(k), ratio(c, k), kib(rss("clam-poll-%d" % n)), kib(rss("anchor-poll-%d" % n))))

    L += ["", "## Full read (no `last_id`), median wall and CPU time per process; MB/s = log bytes / time", "",
          "clamscanner reads on one core (one thread); CPU is user + system time of the process, "
          "the measure that other work on the machine does not inflate.", "",
          "| records | log | clamscanner wall | MB/s | clamscanner CPU | MB/s of CPU | anchor | MB/s "
          "| anchor ÷ clamscanner | cat | MB/s | clamscanner ÷ cat | peak RSS clamscanner | peak RSS anchor "
          "| peak RSS cat |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        c, a, k = med("clam-full-%d" % n), med("anchor-full-%d" % n), med("cat-%d" % n)
        cc = cpu("clam-full-%d" % n)
        L.append("| %s | %.1f MB | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label(n), size(n) / 1e6, ms(c), mbs(n, c), ms(cc), mbs(n, cc), ms(a), mbs(n, a), ratio(a, c),
            ms(k), mbs(n, k), ratio(c, k), kib(rss("clam-full-%d" % n)), kib(rss("anchor-full-%d" % n)),
            kib(rss("cat-%d" % n))))

    L += ["", "## One CGI invocation on the 1k-record log (REMOTE_USER), against `/bin/true`", "",
          "| process | median | ÷ /bin/true | peak RSS |", "|---|---|---|---|"]
    for name, what in [("true", "`/bin/true`"), ("clam-poll-1000", "clamscanner, poll (`last_id=999`)"),
                       ("cgi-full-1000", "clamscanner, full read")]:
        L.append("| %s | %s | %s | %s |" % (what, ms(med(name)), ratio(med(name), med("true")), kib(rss(name))))

    L += ["", "## Requests per second (no target): 64 keep-alive connections, %s" %
          "Basic auth, 1k-record log, `last_id=999`", "",
          "| server | requests/s | requests | latency p50 | p90 | p99 | non-2xx | socket errors |",
          "|---|---|---|---|---|---|---|---|"]
    for name, what in [("wrk-listener", "`clamscanner serve` (tiny_http)"),
                       ("wrk-apache", "Apache 2.4 mod_cgid, configuration 1 (Apache checks the password)")]:
        if name not in res:
            L.append("| %s | not run | | | | | | |" % what)
            continue
        w = wrk_parse(res[name]["wrk"])
        L.append("| %s | %s | %s | %s | %s | %s | %d | %s |" % (
            what, "%.0f" % w["rps"] if w["rps"] else "?", w["total"], ms(w["p50"]), ms(w["p90"]), ms(w["p99"]),
            w["non2xx"], w["sock"]))

    def target(desc, value, ok):
        return "| %s | %s | %s |" % (desc, value, "n/a" if ok is None else ("PASS" if ok else "**MISS**"))
    p1k, p1m, a1m = med("clam-poll-1000"), med("clam-poll-1000000"), med("anchor-poll-1000000")
    f1m, af1m, t = med("clam-full-1000000"), med("anchor-full-1000000"), med("true")
    c1m = cpu("clam-full-1000000")
    clam_rss = [(r["rss_kib"], n) for n, r in res.items()
                if re.match(r"clam-(poll|full)-", n) and r.get("rss_kib") is not None]
    worst = max(clam_rss) if clam_rss else None
    def have(*xs):  # a target with a missing measurement is n/a, not a miss
        return True if all(x is not None for x in xs) else None
    L += ["", "## Targets (issue 5; the full read's as issue 9 restates it)", "", "| target | measured | |", "|---|---|---|",
          target("poll at 1M ≤ 1.5 × poll at 1k", ratio(p1m, p1k), have(p1m, p1k) and (p1m <= 1.5 * p1k)),
          target("anchor's poll at 1M ≥ 500 × clamscanner's", ratio(a1m, p1m), have(a1m, p1m) and (a1m >= 500 * p1m)),
          target("full read of 1M ≥ 500 MB/s of CPU time (user + sys), one core", mbs(1000000, c1m) + " MB/s",
                 have(c1m) and (size(1000000) / 1e6 / c1m >= 500)),
          target("full read of 1M ≥ 10 × the anchor's speed", ratio(af1m, f1m), have(af1m, f1m) and (af1m >= 10 * f1m)),
          target("peak RSS ≤ 8 MiB, every poll and full read", "max %s (%s)" % (kib(worst[0]), worst[1])
                 if worst else "–", worst[0] <= RSS_LIMIT_KIB if worst else None),
          target("one CGI invocation, 1k log ≤ 3 × `/bin/true`", ratio(p1k, t), have(p1k, t) and (p1k <= 3 * t))]
    tables = "\n".join(L) + "\n"
    print("\n" + tables)

    R = ["", "## Every case as run", "",
         "Commands run from the repository root; `env -i K=V … PROG` is applied by bench/measure.py "
         "itself (no /usr/bin/env process in the timing), stdout goes to /dev/null.", "",
         "| case | runs | median | q1–q3 | min | max | CPU (median) | peak RSS | command |",
         "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        if "median" in r:
            R.append("| %s | %d | %s | %s–%s | %s | %s | %s | %s | `%s` |" % (
                name, r["runs"], ms(r["median"]), ms(r["q1"]), ms(r["q3"]), ms(r["min"]), ms(r["max"]),
                ms(r["cpu"]), kib(r["rss_kib"]), r["command"].replace("|", "\\|")))
    for name in ("listener-command", "wrk-listener", "wrk-apache"):
        if name in res:
            R.append("")
            R.append("%s: `%s`" % (name, res[name]["command"]))
    with open(header) as f:
        head = f.read().rstrip() + "\n"
    meta = "\n".join("- %s: %s" % kv for kv in machine())
    with open(out, "w") as f:
        f.write(head + "\n## This run\n\n" + meta + "\n\n" + tables + "\n".join(R) + "\n")


if __name__ == "__main__":
    main()
