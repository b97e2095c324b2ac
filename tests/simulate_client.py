#!/usr/bin/env python3
"""Client-side checks for tests/t_simulate.sh (standard library only).

    simulate_client.py poll   --out FILE --via cgi|http (--bin BIN --home-root H | --url URL
                              --password PW) --user U [--envelope flat]
    simulate_client.py verify --scenario S --log LOG --polls P1.json,P2.json
                              --watch OUT --watch-err ERR --watch-rc RC [--tty TTYOUT]

`poll` is a correct client: it asks with the last id it holds until an answer says done and
it holds the done record (a restart warning starts the run over), and writes every answer to
FILE (one JSON object per line; FILE.started appears after its first answer). `verify` judges
what the pollers and `clamscanner watch` saw against the log `simulate` left, and prints one
line per assertion: "ok|FAIL <TAB> what <TAB> detail".
"""
import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_writer import CHANGED_WORDS, Cgi, Http, as_answered, raw_details  # noqa: E402

DEADLINE = float(os.environ.get("SIMULATE_DEADLINE", "90"))
RESTART_WORD = "restarted"


def cmd_poll(a):
    client = Cgi(a) if a.via == "cgi" else Http(a)
    last_id, have_done, n = 0, False, 0
    end = time.monotonic() + DEADLINE
    with open(a.out, "w") as out:
        while time.monotonic() < end:
            ev = {"n": n, "sent": last_id}
            try:
                code, body = client.ask(last_id, n % 2 == 1)
                if code != 200:
                    raise ValueError("HTTP %s: %r" % (code, body[:300]))
                text = body.decode("utf-8")
                doc = json.loads(text)
                res = doc["result"] if "apiversion" in doc else doc
                details = res["data"].get("details", [])
                ev.update(status=res["status"], errors=res["errors"],
                          warnings=res["warnings"] or [], data_status=res["data"].get("status"),
                          parsed=details, raw=raw_details(text, len(details)))
            except Exception as e:  # recorded, then judged by verify
                ev["error"] = "%s: %s" % (type(e).__name__, e)
                out.write(json.dumps(ev) + "\n")
                break
            out.write(json.dumps(ev) + "\n")
            out.flush()
            if n == 0:
                open(a.out + ".started", "w").close()
            n += 1
            if ev["status"] != 1:
                # An answer that failed (the log changed while it was read: a truncation) is
                # discarded whole, as a client must; verify decides whether it was allowed.
                continue
            if any(RESTART_WORD in w for w in ev["warnings"]):
                have_done = False
            if details:
                last_id = details[-1]["id"]
                have_done = have_done or any(r.get("type") == "done" for r in details)
            if ev["data_status"] == "done" and have_done:
                break
            time.sleep(0.005)  # pacing only, like a client's interval; nothing waits on it


def printable(s):
    """What `watch` shows for a text field (src/watch.rs `printable`)."""
    out = []
    for c in s:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif o < 0x20 or 0x7F <= o <= 0x9F:
            out.append("\\x%02x" % o)
        elif o in (0x2028, 0x2029) or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            out.append("\\u{%04x}" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    return "".join(out)


def watch_line(r):
    return "\t".join([str(r.get("id", ""))] + [printable(r.get(k, "")) for k in
                                                 ("type", "state", "file", "message")])


def cmd_verify(a):
    def say(ok, what, detail=""):
        detail = str(detail)[:600].replace("\n", "\\n").replace("\t", " ")
        print("%s\t%s\t%s" % ("ok" if ok else "FAIL", what, detail))

    s = a.scenario
    with open(a.log, "rb") as f:
        final = [as_answered(l) for l in f.read().splitlines(keepends=True)]
    final = [l for l in final if l.strip()]
    records = [l for l in final if is_record(l)]
    say(records and json.loads(records[-1]).get("type") == "done", "%s: the log ends at done" % s,
        records[-1:])
    expected_done = {"errors": "error", "clean": "info"}.get(s, "success")
    say(records and json.loads(records[-1]).get("state") == expected_done,
        "%s: the done record says %s" % (s, expected_done), records[-1:])
    if s == "clean":
        say(len(records) == 1, "clean: a single record", len(records))
    if s == "corrupt":
        say(len(final) - len(records) == 1, "corrupt: the log holds one corrupt line",
            len(final) - len(records))
    run1 = None
    for poller in a.polls.split(","):
        name = os.path.basename(poller)
        with open(poller) as f:
            evs = [json.loads(l) for l in f]
        # Only the truncation of the restart scenario may make an answer say the log changed
        # while it was read (status 0; SPEC §4); such an answer is dropped, as the poller did.
        changed = [e for e in evs if s == "restart" and "error" not in e and e.get("status") == 0
                   and any(CHANGED_WORDS in x for x in e.get("errors") or [])]
        evs = [e for e in evs if e not in changed]
        bad = [e for e in evs if "error" in e or e.get("status") != 1 or e.get("errors")]
        say(not bad, "%s %s: every answer is valid JSON with status 1 (never fatal)" % (s, name),
            bad[:1])
        evs = [e for e in evs if "error" not in e]
        say(bool(evs) and evs[-1]["data_status"] == "done", "%s %s: the last answer is done" % (
            s, name), evs[-1:])
        marks = [i for i, e in enumerate(evs) if any(RESTART_WORD in w for w in e["warnings"])]
        if s == "restart":
            say(len(marks) == 1, "restart %s: one answer says the log was restarted" % name, marks)
            cut = marks[0] if marks else len(evs)
            first = [r for e in evs[:cut] for r in e["raw"]]
            ids = [json.loads(r)["id"] for r in first]
            say(ids == list(range(1, len(ids) + 1)) and len(ids) >= 2,
                "restart %s: the first run's records arrived once each, in order" % name, ids)
            if run1 is None:
                run1 = first
            say(first == run1, "restart %s: the first run is the same for every client" % name)
            evs = evs[cut:]
        else:
            say(not marks, "%s %s: no answer says the log was restarted" % (s, name), marks)
        raw = [r for e in evs for r in e["raw"]]
        diff = next((i for i, (x, y) in enumerate(zip(records, raw)) if x != y),
                    min(len(records), len(raw)))
        say(raw == records, "%s %s: every record exactly once, in order, byte for byte" % (s, name),
            "%d in the log, %d received; first difference at %d: %r / %r" % (
                len(records), len(raw), diff, records[diff:diff + 1], raw[diff:diff + 1]))
        warns = [w for i, e in enumerate(evs) for w in e["warnings"]
                 if not (s == "restart" and i == 0 and RESTART_WORD in w)]
        if s == "corrupt":
            say(any("malformed" in w for w in warns), "corrupt %s: the corrupt line is a warning" %
                name, warns[:3])
            warns = [w for w in warns if "malformed" not in w]
        say(not warns, "%s %s: no other warning" % (s, name), warns[:3])
        statuses = [e["data_status"] for e in evs]
        if s == "queued":
            say("queued" in statuses, "queued %s: the run was seen queued" % name, statuses[:5])
    # What watch printed: one plain line per record (both runs), notices on stderr.
    with open(a.watch, "rb") as f:
        out = f.read().decode("utf-8")
    with open(a.watch_err, "rb") as f:
        err = f.read().decode("utf-8")
    lines = out.split("\n")
    say(lines[-1] == "", "%s watch: stdout ends with a newline" % s, repr(out[-80:]))
    want = [watch_line(json.loads(r)) for r in (run1 or []) + records]
    diff = next((i for i, (x, y) in enumerate(zip(want, lines)) if x != y), min(len(want), len(lines)))
    say(lines[:-1] == want, "%s watch: one plain line per record, the done record last" % s,
        "%d wanted, %d printed; first difference at %d: %r / %r" % (
            len(want), len(lines) - 1, diff, want[diff:diff + 1], lines[diff:diff + 1]))
    say("\x1b" not in out + err, "%s watch: no escape sequences in a pipe" % s)
    notices = [l for l in err.split("\n") if l]
    say(all(l.startswith("clamscanner watch: ") for l in notices),
        "%s watch: stderr holds only notices" % s, notices[:3])
    say("waiting for a run to start" in err, "%s watch: it said it was waiting" % s, notices[:2])
    if s == "queued":
        say("queued" in err, "queued watch: it said the run was queued", notices[:4])
    restarts = [l for l in notices if "the log was restarted" in l]
    say(len(restarts) == (1 if s == "restart" else 0),
        "%s watch: the restart noticed %s" % (s, "once" if s == "restart" else "never"), restarts)
    malformed = [l for l in notices if "warning:" in l and "malformed" in l]
    say(bool(malformed) == (s == "corrupt"), "%s watch: a malformed-line warning %s" % (
        s, "shown" if s == "corrupt" else "absent"), malformed[:2])
    with open(a.watch_rc) as f:
        rc = f.read().strip()
    want_rc = "1" if s == "errors" else "0"
    say(rc == want_rc, "%s watch: exit %s" % (s, want_rc), rc)
    if a.tty:
        with open(a.tty, "rb") as f:
            tty = f.read().decode("utf-8", "replace")
        say("--- the log was restarted: a new run ---" in tty,
            "%s watch on a terminal: the restarted log shown as such" % s, tty[-300:])
        say(re.search(r"\x1b\[[0-9;]*m", tty) is not None, "%s watch on a terminal: colour" % s)


def is_record(line):
    try:
        return isinstance(json.loads(line).get("id"), int)
    except ValueError:
        return False


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("poll")
    p.add_argument("--out", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--via", choices=("cgi", "http"), required=True)
    for opt in ("--bin", "--home-root", "--url", "--password", "--envelope"):
        p.add_argument(opt)
    v = sub.add_parser("verify")
    for opt in ("--scenario", "--log", "--polls", "--watch", "--watch-err", "--watch-rc"):
        v.add_argument(opt, required=True)
    v.add_argument("--tty")
    a = ap.parse_args()
    {"poll": cmd_poll, "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    main()
