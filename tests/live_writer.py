#!/usr/bin/env python3
"""Live-writer test helper for tests/t_live_writer.sh (standard library only).

    live_writer.py write  --dir D --log LOG --state STATE --seed S --records N
                          [--restart-after K] --pollers P1,P2,...
    live_writer.py poll   --dir D --name P --via cgi|http (--bin BIN --home-root H |
                          --url URL --password PW) --user U [--envelope flat]
    live_writer.py verify --dir D --pollers P1,P2,... [--restart]

`write` appends records the way the disinfection task does: JSON lines in the real shape, pushed
through a block buffer with os.write on an O_APPEND descriptor in pieces of 1..4096 bytes, so
lines are often split across writes. It keeps what it wrote in D/run1.log (and D/run2.log).
`poll` asks the real binary in a loop with last_id (through CGI or the listener) and records every
answer in D/P.events; D/P.progress tells the writer how far the poller got. `verify` compares the
answers with the written logs and prints one line per assertion: "ok|FAIL <TAB> what <TAB> detail".

Coordination is through files and conditions, never through a fixed sleep: the writer
sometimes waits until every poller has finished a poll after its last write (so polls land on
torn tails), and the pollers give up as soon as one full poll after the writer's end did not
finish the run, or at a generous deadline, so nothing can hang.
"""
import argparse
import base64
import http.client
import json
import os
import random
import subprocess
import time
import urllib.parse

from testlib import split_cgi

DEADLINE = float(os.environ.get("LIVE_DEADLINE", "120"))
RESTART_WORD = "restarted"
CHANGED_WORDS = "changed while it was read"
SYNCS = 30

# --- the records -------------------------------------------------------------------------------
DIRS = ["public_html/", "public_html/wp-content/uploads/2024/11/", "mail/example.com/info/cur/",
        "public_html/фото/", "public_html/写真/", "public_html/Café Menu/", "tmp/",
        'public_html/"quoted" dir/', "public_html/back\\slash/", "mail/.Junk/new/"]
BASES = ["index", "shell", "wp-config", "класс", "ファイル", "naïve résumé", "\U0001F4C4doc",
         "tab\there", "ctl\x01x", "it's", "a=b=c", "1712345678.M1P2.host,S=12:2,S"]
EXTS = [".php", ".php.suspected", ".js", ".jpg.php", ".zip", ""]
# Bytes that are not UTF-8, as file names can hold: a Latin-1 é, 0xFF, a truncated sequence,
# an overlong '/', an encoded surrogate. The answer must turn each into U+0080..U+00FF.
RAW = [b"\xe9", b"\xff", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"]
STATES = ["quarantined", "deleted", "no-action", "error", "mailbox-cleansed"]
SHORT = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def json_bytes(raw, ascii_only):
    """JSON string body for a byte string, escaped like the real writer (JSON::XS): '"', '\\'
    and control characters always, other non-ASCII only when ascii_only; bytes that are not
    UTF-8 stay raw (the writer does not convert file names)."""
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(ch)  # a raw byte, re-encoded below by surrogateescape
        elif o in SHORT:
            out.append(SHORT[o])
        elif o < 0x20 or (ascii_only and 0x7F < o <= 0xFFFF):
            out.append("\\u%04x" % o)
        elif ascii_only and o > 0xFFFF:
            v = o - 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
        else:
            out.append(ch)
    return "".join(out).encode("utf-8", "surrogateescape")


def make_records(rnd, count, done):
    """`count` lines (bytes, each ending in \\n), ids 1..count; the last is `done` when asked."""
    lines = []
    for i in range(1, count + 1):
        if done and i == count:
            lines.append(b'{"type":"done","state":"success","id":%d}\n' % i)
            continue
        name = (rnd.choice(DIRS) + rnd.choice(BASES)).encode() + (
            rnd.choice(RAW) if rnd.random() < 0.08 else b"") + rnd.choice(EXTS).encode()
        esc = json_bytes(name, rnd.random() < 0.05)
        state = rnd.choice(STATES)
        line = b'{"type":"step","file":"' + esc + b'","state":"' + state.encode() + b'"'
        if state == "no-action":
            line += b',"message":"No action specified for file."'
        elif state == "error":
            line += (b',"message":"The system could not remove the \xe2\x80\x9c/home/u/' + esc
                     + b'\xe2\x80\x9d file: Permission denied"')
        lines.append(line + b',"id":%d}\n' % i)
    return lines


def as_answered(line):
    """The text the answer must carry for a written line: bytes that are not UTF-8 read as
    the character of the same number (U+0080..U+00FF), no trailing newline."""
    text = line.rstrip(b"\n").decode("utf-8", "surrogateescape")
    return "".join(chr(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


# --- coordination files ------------------------------------------------------------------------
def put(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # readers never see half a file


def progress(d, name):
    """(polls, last_id, restarted, ended) from a poller's progress file."""
    try:
        with open(os.path.join(d, name + ".progress")) as f:
            polls, last_id, restarted, ended = f.read().split()
        return int(polls), int(last_id), restarted == "1", ended == "1"
    except (OSError, ValueError):
        return 0, 0, False, False


# --- writer ------------------------------------------------------------------------------------
class Writer:
    def __init__(self, a):
        self.a, self.rnd = a, random.Random(a.seed)
        self.pollers = a.pollers.split(",")
        self.writes = self.synced = self.synced_torn = 0
        self.fd = None

    def wait_for(self, what, cond):
        """Waits until cond(progress) holds for every poller still running (a bounded loop on a
        condition; the short pause only keeps it from spinning a core)."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            states = [progress(self.a.dir, p) for p in self.pollers]
            if all(s[3] or cond(s) for s in states):
                return
            time.sleep(0.0005)
        raise SystemExit("writer: pollers did not %s before the deadline: %s" % (what, states))

    def sync(self, torn):
        """Lets every poller finish one more poll before the next write."""
        before = [progress(self.a.dir, p)[0] for p in self.pollers]
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            now = [progress(self.a.dir, p) for p in self.pollers]
            if all(s[3] or s[0] > b for s, b in zip(now, before)):
                self.synced += 1
                self.synced_torn += torn
                return
            time.sleep(0.0002)
        raise SystemExit("writer: pollers stopped polling")

    def write_stream(self, data):
        """Writes `data` in random pieces: mostly 1..4096 bytes, sometimes runs of 1-byte writes."""
        pos = 0
        # About SYNCS polls awaited per stream whatever its size, to keep the run short.
        p_sync = min(0.5, SYNCS * 1640.0 / max(1, len(data)))
        while pos < len(data):
            r = self.rnd.random()
            if r < 0.03:  # a stretch written byte by byte, with polls in between now and then
                for b in data[pos:pos + self.rnd.randint(1, 160)]:
                    os.write(self.fd, bytes([b]))
                    pos += 1
                    self.writes += 1
                    if self.rnd.random() < p_sync / 8:
                        self.sync(b != 0x0A)
                continue
            size = self.rnd.randint(1, 3) if r < 0.2 else self.rnd.randint(1, 4096)
            piece = data[pos:pos + size]
            os.write(self.fd, piece)  # one write() per flush of the block buffer
            pos += len(piece)
            self.writes += 1
            if self.rnd.random() < p_sync:
                self.sync(not piece.endswith(b"\n"))

    def open_log(self, truncate):
        if self.fd is not None:
            os.close(self.fd)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        self.fd = os.open(self.a.log, flags, 0o644)

    def run(self):
        a = self.a
        self.open_log(False)
        if not a.restart_after:
            run = make_records(self.rnd, a.records, True)
            save(a.dir, "run1.log", run)
            self.write_stream(b"".join(run))
        else:
            # Run 1 stops, unfinished, after K records; run 2 starts the log anew at id 1.
            # After truncation a poller can tell a new run only by ids: its last_id must be
            # above the new log's last id when it next looks. So run 1 is written whole and the
            # writer waits until every poller has seen its last record (last_id = K); run 2's
            # first batch stays below K (ids 1..K/3), and the writer waits until every poller
            # has reported the restart warning before writing past it. Run 2 then runs longer
            # than run 1, so a missed restart would lose records 1..K for good and show.
            k = a.restart_after
            run1 = make_records(self.rnd, k, False)
            run2 = make_records(self.rnd, a.records, True)
            save(a.dir, "run1.log", run1)
            save(a.dir, "run2.log", run2)
            self.write_stream(b"".join(run1))
            self.wait_for("see the end of run 1", lambda s: s[1] >= k)
            self.open_log(True)
            first = k // 3
            self.write_stream(b"".join(run2[:first]))
            self.wait_for("see the restart", lambda s: s[2])
            self.write_stream(b"".join(run2[first:]))
        os.close(self.fd)
        os.unlink(a.state)  # the task removes its state file once done
        return "writes %d, polls awaited %d (%d on a torn tail)" % (
            self.writes, self.synced, self.synced_torn)


def save(d, name, lines):
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"".join(lines))


def cmd_write(a):
    summary = "failed"
    try:
        summary = Writer(a).run()
    finally:
        put(os.path.join(a.dir, "writer.end"), summary + "\n")


# --- pollers -----------------------------------------------------------------------------------
class Cgi:
    def __init__(self, a):
        self.a = a

    def ask(self, last_id, post):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_INTERFACE": "CGI/1.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_USER": self.a.user,
               "CLAMSCANNER_HOME_ROOT": self.a.home_root,
               "PATH_INFO": "/execute/ClamScanner/check_disinfection_status"}
        if self.a.envelope:
            env["CLAMSCANNER_ENVELOPE"] = self.a.envelope
        form = b"last_id=%d" % last_id
        if post:
            env.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(form)),
                       CONTENT_TYPE="application/x-www-form-urlencoded", QUERY_STRING="")
        else:
            env.update(REQUEST_METHOD="GET", QUERY_STRING=form.decode())
        p = subprocess.run([self.a.bin], env=env, input=form if post else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        split = split_cgi(p.stdout)
        if split is None:
            return None, "no header/body separator, exit %d, stderr %r" % (
                p.returncode, p.stderr[-300:])
        code, _, body = split
        return code, body


class Http:
    def __init__(self, a):
        u = urllib.parse.urlsplit(a.url)
        self.host, self.port = u.hostname, u.port
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (a.user, a.password)).encode()).decode()
        self.conn = None

    def ask(self, last_id, post):
        path = "/execute/ClamScanner/check_disinfection_status"
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the server
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                if post:
                    self.conn.request("POST", path, body="last_id=%d" % last_id, headers={
                        "Authorization": self.auth,
                        "Content-Type": "application/x-www-form-urlencoded"})
                else:
                    self.conn.request("GET", path + "?last_id=%d" % last_id,
                                      headers={"Authorization": self.auth})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def raw_details(text, count):
    """The `details` elements exactly as the answer spells them (a parse would hide escapes,
    key order and number spellings). `"details":[` occurs first right where the array starts:
    only fixed keys come before it in either envelope."""
    at = text.find('"details":[')
    if at < 0:
        raise ValueError("no details array")
    pos, dec, out = at + len('"details":['), json.JSONDecoder(), []
    for i in range(count):
        while text[pos] in " \t\r\n":
            pos += 1
        if i:
            if text[pos] != ",":
                raise ValueError("no comma between details elements")
            pos += 1
            while text[pos] in " \t\r\n":
                pos += 1
        _, end = dec.raw_decode(text, pos)
        out.append(text[pos:end])
        pos = end
    if text[pos:].lstrip()[:1] != "]":
        raise ValueError("details array has more elements than parsed")
    return out


def cmd_poll(a):
    client = Cgi(a) if a.via == "cgi" else Http(a)
    rnd = random.Random(a.name)
    events = open(os.path.join(a.dir, a.name + ".events"), "w")
    end_file = os.path.join(a.dir, "writer.end")
    last_id, polls, restarted, have_done = 0, 0, False, False
    deadline = time.monotonic() + DEADLINE
    put(os.path.join(a.dir, a.name + ".progress"), "0 0 0 0")
    try:
        while polls < 200000 and time.monotonic() < deadline:
            writer_ended = os.path.exists(end_file)  # checked before the poll: see below
            ev = {"n": polls, "sent": last_id}
            try:
                code, body = client.ask(last_id, rnd.random() < 0.5)
                ev["http"] = code
                if code != 200:
                    raise ValueError("HTTP %s: %r" % (code, body[:300]))
                text = body.decode("utf-8")  # strict: the answer must be valid UTF-8
                doc = json.loads(text)
                res = doc["result"] if "apiversion" in doc else doc
                ev.update(status=res["status"], errors=res["errors"],
                          warnings=res["warnings"] or [], data_status=res["data"].get("status"))
                details = res["data"].get("details", [])
                ev["parsed"] = details
                ev["raw"] = raw_details(text, len(details))
            except Exception as e:  # recorded, then judged by verify
                ev["error"] = "%s: %s" % (type(e).__name__, e)
                events.write(json.dumps(ev) + "\n")
                break
            events.write(json.dumps(ev) + "\n")
            polls += 1
            # SPEC §3: a log truncated while an answer read it gives status 0 and this error;
            # what it sent is dropped and the client asks again with the same last_id.
            if res["status"] == 0 and any(CHANGED_WORDS in e for e in res["errors"] or []):
                continue
            if any(RESTART_WORD in w for w in ev["warnings"]):
                restarted, have_done = True, False
            if details:
                last_id = details[-1]["id"]
                have_done = have_done or any(r.get("type") == "done" for r in details)
            put(os.path.join(a.dir, a.name + ".progress"),
                "%d %d %d 0" % (polls, last_id, int(restarted)))
            if ev["data_status"] == "done" and have_done:
                break
            # A poll that began after the writer finished saw the whole log: if that did not
            # end the run, no later poll will.
            if writer_ended:
                break
    finally:
        events.close()
        put(os.path.join(a.dir, a.name + ".progress"),
            "%d %d %d 1" % (polls, last_id, int(restarted)))


# --- verification ------------------------------------------------------------------------------
def cmd_verify(a):
    def say(ok, what, detail=""):
        print("%s\t%s\t%s" % ("ok" if ok else "FAIL", what, str(detail)[:600]))

    d = a.dir
    try:
        with open(os.path.join(d, "writer.end")) as f:
            summary = f.read().strip()
    except OSError:
        summary = "failed"
    say(summary != "failed", "the writer wrote every run", summary)
    runs = []
    for name in ("run1.log", "run2.log") if a.restart else ("run1.log",):
        try:
            with open(os.path.join(d, name), "rb") as f:
                runs.append([as_answered(l) for l in f.read().splitlines(keepends=True)])
        except OSError:
            runs.append([])
    for p in a.pollers.split(","):
        try:
            with open(os.path.join(d, p + ".events")) as f:
                evs = [json.loads(l) for l in f]
        except (OSError, ValueError) as e:
            say(False, "%s: its answers were recorded" % p, e)
            continue
        # Only a truncation (the restart scenario) may make an answer say the log changed.
        changed = [e for e in evs if a.restart and "error" not in e and e.get("status") == 0
                   and any(CHANGED_WORDS in x for x in e.get("errors") or [])]
        evs = [e for e in evs if e not in changed]
        bad = [e for e in evs if "error" in e or e.get("status") != 1 or e.get("errors")]
        say(not bad, "%s: every answer is HTTP 200, valid UTF-8 JSON, status 1, no errors" % p,
            bad[:1])
        if changed:
            print("info\t%s: %d answers read across the truncation (status 0, log changed)"
                  % (p, len(changed)))
        evs = [e for e in evs if "error" not in e]
        bad = [e["data_status"] for e in evs if e.get("data_status") not in ("running", "done")]
        say(not bad, "%s: data.status is running or done in every answer" % p, bad[:3])
        say(bool(evs) and evs[-1]["data_status"] == "done", "%s: the last answer is done" % p,
            "%d answers, last %s" % (len(evs), evs[-1:]))
        # Split the answers at the restart warning: run 2 is collected from that answer on.
        marks = [i for i, e in enumerate(evs) if any(RESTART_WORD in w for w in e["warnings"])]
        if a.restart:
            say(len(marks) == 1, "%s: exactly one answer says the log was restarted" % p,
                "answers %s" % marks[:5])
            cut = marks[0] if marks else len(evs)
            parts = [evs[:cut], evs[cut:]]
        else:
            say(not marks, "%s: no answer says the log was restarted" % p, marks[:5])
            parts = [evs]
        for run, (want, part) in enumerate(zip(runs, parts), 1):
            compare(say, "%s run %d" % (p, run), want, part, a.restart and run == 1,
                    a.restart and run == 2)
        print("info\t%s: %d polls, %d with new records" % (
            p, len(evs), sum(1 for e in evs if e["raw"])))


def compare(say, who, want, evs, tolerate_race, announced):
    raw = [r for e in evs for r in e["raw"]]
    parsed = [r for e in evs for r in e["parsed"]]
    first = next((i for i, (x, y) in enumerate(zip(want, raw)) if x != y), min(len(want), len(raw)))
    say(raw == want, "%s: concatenated details equal the written log byte for byte" % who,
        "%d records written, %d received; first difference at record %d: wrote %r, got %r" % (
            len(want), len(raw), first + 1, want[first:first + 1], raw[first:first + 1]))
    objs = [json.loads(w) for w in want]
    first = next((i for i, (x, y) in enumerate(zip(objs, parsed)) if x != y), min(len(objs), len(parsed)))
    say(parsed == objs, "%s: parsed details equal the written records" % who,
        "%d written, %d received; first difference at record %d: wrote %r, got %r" % (
            len(objs), len(parsed), first + 1, objs[first:first + 1], parsed[first:first + 1]))
    sent = [e["sent"] for e in evs]
    # Each poll asks for what follows the last record it holds.
    ok_ids = all(e["sent"] == (evs[i - 1]["parsed"][-1]["id"] if evs[i - 1]["parsed"]
                               else evs[i - 1]["sent"]) for i, e in enumerate(evs) if i)
    say(ok_ids, "%s: every poll sent the last id it had seen" % who, sent[:20])
    # status done exactly when the answers so far hold the done record.
    have, wrong = False, []
    for e in evs:
        have = have or any(r.get("type") == "done" for r in e["parsed"])
        if (e["data_status"] == "done") != have:
            wrong.append((e["n"], e["data_status"], have))
    say(not wrong, "%s: status is done exactly once the done record has arrived" % who, wrong[:3])
    # No answer of a run carries a warning, except the one that announces the restart. While a
    # log is truncated under a reader, the reader may see old offsets over new bytes: an answer
    # with no record and a skipped-line warning is then acceptable (and counted), nothing else.
    extra, raced = [], 0
    for i, e in enumerate(evs):
        ws = [w for w in e["warnings"] if not (announced and i == 0 and RESTART_WORD in w)]
        if ws and tolerate_race and not e["raw"] and all("malformed" in w for w in ws):
            raced += 1
        elif ws:
            extra.append((e["n"], ws))
    say(not extra, "%s: no unexpected warnings" % who, extra[:2])
    if raced:
        print("info\t%s: %d answers read across the truncation (skipped-line warning)" % (who, raced))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--dir", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--state", required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--records", type=int, required=True)
    w.add_argument("--restart-after", type=int, default=0)
    w.add_argument("--pollers", required=True)
    p = sub.add_parser("poll")
    for opt in ("--dir", "--name", "--user"):
        p.add_argument(opt, required=True)
    p.add_argument("--via", choices=("cgi", "http"), required=True)
    for opt in ("--bin", "--home-root", "--url", "--password", "--envelope"):
        p.add_argument(opt)
    v = sub.add_parser("verify")
    v.add_argument("--dir", required=True)
    v.add_argument("--pollers", required=True)
    v.add_argument("--restart", action="store_true")
    a = ap.parse_args()
    {"write": cmd_write, "poll": cmd_poll, "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    main()
