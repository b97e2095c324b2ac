#!/usr/bin/env python3
"""Throws the hostile-request corpus (tests/hostile/*.tsv, format in its README.md) at the CGI
program and at a running listener, one request at a time, and checks every answer.

Prints one line per request and front end: "ok FRONT NAME", "skip FRONT NAME" or
"FAIL FRONT NAME: why"; t_hostile.sh turns them into passes and failures. Standard library only,
so that it runs wherever the shell tests run. Sockets are half-closed after sending, so a request
that declares more body than it sends ends at once instead of waiting for the server's timeout.
"""
import argparse
import base64
import glob
import json
import os
import socket
import subprocess
import sys
import urllib.parse

from testlib import parse_headers, split_cgi

FN = b"/execute/ClamScanner/check_disinfection_status"
FIXED_HEADERS = {
    "content-type": None,  # checked separately: JSON or, for the page, HTML
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}
JSON_TYPE = "application/json; charset=utf-8"
CHALLENGE = 'Basic realm="cPanel", charset="UTF-8"'
ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\", "{": b"{", "}": b"}"}


class CorpusError(Exception):
    pass


def expand(text, secrets, i=0, nested=False):
    """Unescapes a corpus field and expands its macros; returns (bytes, next index)."""
    out = bytearray()
    while i < len(text):
        if nested and text.startswith("}}", i):
            return bytes(out), i + 2
        c = text[i]
        if c == "\\":
            e = text[i + 1 : i + 2]
            if e == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            if e not in ESCAPES:
                raise CorpusError(f"unknown escape \\{e}")
            out += ESCAPES[e]
            i += 2
        elif text.startswith("{{", i):
            j = i + 2
            while j < len(text) and text[j] not in ":}":
                j += 1
            name = text[i + 2 : j]
            if name == "fn" or name == "auth":
                if not text.startswith("}}", j):
                    raise CorpusError(f"{{{{{name}}}}} takes no argument")
                i = j + 2
                if name == "fn":
                    out += FN
                else:
                    pair = b"alice:" + secrets["pass:alice"]
                    out += b"Basic " + base64.b64encode(pair)
            elif name in ("pass", "token"):
                end = text.index("}}", j)
                key = f"{name}:{text[j + 1 : end]}"
                if key not in secrets:
                    raise CorpusError(f"no secret {key}")
                out += secrets[key]
                i = end + 2
            elif name == "b64":
                inner, i = expand(text, secrets, j + 1, nested=True)
                out += base64.b64encode(inner)
            elif name == "rep":
                colon = text.index(":", j + 1)
                count = int(text[j + 1 : colon])
                inner, i = expand(text, secrets, colon + 1, nested=True)
                out += inner * count
            else:
                raise CorpusError(f"unknown macro {name}")
        else:
            out += c.encode("utf-8")
            i += 1
    if nested:
        raise CorpusError("unclosed macro")
    return bytes(out), i


def field(text, secrets):
    return b"" if text == "-" else expand(text, secrets)[0]


class Entry:
    def __init__(self, where, fields, secrets):
        fields += ["-"] * (6 - len(fields))
        self.where = where
        self.name, expect, method, target, headers, body = fields[:6]
        expect = field(expect, secrets).decode("utf-8") if expect != "-" else ""
        self.raw = method == "RAW"
        self.method = b"" if self.raw else field(method, secrets)
        self.target = field(target, secrets)
        self.headers = []
        for item in field(headers, secrets).split(b"\n") if headers != "-" else []:
            name, sep, value = item.partition(b":")
            self.headers.append((name, value.strip(b" "), sep == b":"))
        self.body = field(body, secrets)
        self.expect = {"cgi": None, "listen": None}
        self.html = False
        for token in expect.split():
            if token == "html":
                self.html = True
            elif token.startswith(("cgi=", "listen=")):
                front, _, value = token.partition("=")
                self.expect[front] = value
            else:
                for front in ("cgi", "listen"):
                    self.expect[front] = self.expect[front] or token
        if self.raw:
            self.expect["cgi"] = "skip"

    def header(self, name):
        for n, v, _ in self.headers:
            if n.lower() == name:
                return v
        return None

    def wire(self):
        if self.raw:
            return self.target
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        for name, value, has_colon in self.headers:
            lines.append(name + b": " + value if has_colon else name)
        if self.header(b"host") is None:
            lines.append(b"Host: 127.0.0.1")
        if self.header(b"connection") is None:
            lines.append(b"Connection: close")
        if self.body and self.header(b"content-length") is None \
                and self.header(b"transfer-encoding") is None:
            lines.append(b"Content-Length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


def dechunk(data):
    """A chunked body's content, or None when it is not well-formed chunked coding."""
    out, i = bytearray(), 0
    while True:
        nl = data.find(b"\r\n", i)
        if nl < 0:
            return None
        try:
            size = int(data[i:nl].split(b";")[0], 16)
        except ValueError:
            return None
        i = nl + 2
        if size == 0:
            return bytes(out)
        if len(data) < i + size + 2 or data[i + size : i + size + 2] != b"\r\n":
            return None
        out += data[i : i + size]
        i += size + 2


def cut_nul(value):
    return value.split(b"\0", 1)[0]


def cgi_env(entry, args):
    path, _, query = entry.target.partition(b"?")
    decoded = urllib.parse.unquote_to_bytes(path)
    # Apache decodes PATH_INFO and refuses bad escapes itself; keep the raw path in that case.
    bad_escape = any(
        path[k : k + 1] == b"%" and not all(
            chr(c) in "0123456789abcdefABCDEF" for c in path[k + 1 : k + 3].ljust(2, b"!"))
        for k in range(len(path)))
    path_info = path if bad_escape or b"\0" in decoded else decoded
    env = {
        b"PATH": os.environb.get(b"PATH", b"/usr/bin:/bin"),
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"REQUEST_METHOD": entry.method,
        b"PATH_INFO": path_info,
        b"QUERY_STRING": query,
        b"CLAMSCANNER_HTPASSWD": args.htpasswd.encode(),
        b"CLAMSCANNER_TOKENS": args.tokens.encode(),
        b"CLAMSCANNER_HOME_ROOT": args.home_root.encode(),
    }
    body = entry.body
    if entry.header(b"transfer-encoding") is not None:
        body = dechunk(body)
        if body is None:
            return None, None  # Apache answers 400 itself
    else:
        length = entry.header(b"content-length")
        if length is not None:
            env[b"CONTENT_LENGTH"] = length
        elif body:
            env[b"CONTENT_LENGTH"] = b"%d" % len(body)
    for name, var in ((b"content-type", b"CONTENT_TYPE"), (b"authorization", b"HTTP_AUTHORIZATION")):
        value = entry.header(name)
        if value is not None:
            env[var] = value
    return {k: cut_nul(v) for k, v in env.items()}, body


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        values = self.headers.get(name, [])
        return values[0] if values else None


def run_cgi(entry, args):
    env, stdin = cgi_env(entry, args)
    if env is None:
        raise CorpusError("no CGI equivalent (write cgi=skip)")
    proc = subprocess.run([args.bin], env=env, input=stdin, capture_output=True, timeout=60)
    split = split_cgi(proc.stdout)
    if split is None:
        return None, f"no header block (exit {proc.returncode})", proc.stderr
    status, headers, body = split
    problems = []
    if proc.returncode != 0:
        problems.append(f"exit status {proc.returncode}")
    return Answer(status, headers, body), "; ".join(problems), proc.stderr


def exchange(host, port, data):
    """Sends data, half-closes, and returns every byte the server sent until it closed."""
    # A bound on a hang (the listener times silent sockets out after 20 s), not a timing check.
    with socket.create_connection((host, port), timeout=30) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close early on a request it refuses; read what it sent
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data, head_only):
    """Splits a byte stream into HTTP answers (1xx skipped). Raises ValueError when malformed."""
    answers, i = [], 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            raise ValueError(f"truncated header block: {data[i:i + 80]!r}")
        lines = data[i:end].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/"):
            raise ValueError(f"bad status line {lines[0][:80]!r}")
        status = int(rest[:3])
        headers = parse_headers(lines[1:])
        i = end + 4
        if 100 <= status < 200:
            continue
        if head_only:
            body = b""
        elif "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
            body = bytearray()
            while True:
                nl = data.index(b"\r\n", i)
                size = int(data[i:nl].split(b";")[0], 16)
                i = nl + 2
                if size == 0:
                    i = data.index(b"\r\n", i) + 2  # no trailers are expected
                    break
                body += data[i : i + size]
                if data[i + size : i + size + 2] != b"\r\n":
                    raise ValueError("bad chunk framing")
                i += size + 2
            body = bytes(body)
        elif "content-length" in headers:
            n = int(headers["content-length"][0])
            body = data[i : i + n]
            if len(body) != n:
                raise ValueError("body shorter than its Content-Length")
            i += n
        else:
            body, i = data[i:], len(data)
        answers.append(Answer(status, headers, body))
    return answers


def strict_json(body):
    def no_constant(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(body.decode("utf-8"), parse_constant=no_constant)


def check_answer(front, entry, answer, expect, markers, head_only):
    """Problems with one answer, as a list of strings."""
    problems = []
    raw = b"".join(n.encode() + b": " + v.encode("latin-1") for n, vs in answer.headers.items()
                   for v in vs) + answer.body
    for marker in markers:
        if marker in raw:
            problems.append(f"LEAK: the answer holds the marker {marker.decode()!r}")
    parse_refusal = expect is not None and expect.startswith("parse:")
    if parse_refusal:
        want = expect[len("parse:"):]
        if str(answer.status) != want:
            problems.append(f"status {answer.status}, expected tiny_http's {want}")
        if want == "400" and answer.body:
            problems.append("tiny_http's 400 should have no body")
        return problems
    status, _, result = (expect or "").partition("/")
    if status and str(answer.status) != status:
        problems.append(f"status {answer.status}, expected {status}")
    if answer.status >= 500:
        problems.append(f"server error {answer.status}")
    for name, want in FIXED_HEADERS.items():
        got = answer.header(name)
        if want is not None and got != want:
            problems.append(f"header {name}: {got!r}")
    ctype = answer.header("content-type")
    html = entry.html and front == "listen"  # the CGI program has no page
    if html:
        if not (ctype or "").startswith("text/html"):
            problems.append(f"content-type {ctype!r}, expected the HTML page")
    elif ctype != JSON_TYPE:
        problems.append(f"content-type {ctype!r}")
    if answer.status == 401 and answer.header("www-authenticate") != CHALLENGE:
        problems.append(f"401 without the challenge: {answer.header('www-authenticate')!r}")
    if answer.status == 405 and answer.header("allow") != "GET, HEAD, POST":
        problems.append(f"405 with Allow {answer.header('allow')!r}")
    if head_only:
        if answer.body:
            problems.append("HEAD answered with a body")
        return problems
    if html:
        return problems
    try:
        doc = strict_json(answer.body)
        res = doc["result"]
        if res["status"] not in (0, 1) or isinstance(res["status"], bool):
            problems.append(f"result.status {res['status']!r}")
        if res["status"] == 0 and (res["data"] != {} or not res["errors"]
                                   or not all(isinstance(e, str) for e in res["errors"])):
            problems.append("a failure without data {} and a list of errors")
        if result and str(res["status"]) != result:
            problems.append(f"result.status {res['status']}, expected {result}: {res['errors']}")
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"body is not the JSON envelope ({e}): {answer.body[:120]!r}")
    return problems


def check_cgi(entry, args, markers, secrets):
    if entry.expect["cgi"] == "skip":
        return None
    answer, problem, stderr = run_cgi(entry, args)
    problems = [problem] if problem else []
    if answer is not None:
        problems += check_answer("cgi", entry, answer, entry.expect["cgi"], markers,
                                 entry.method == b"HEAD")
    problems += secrets_in(stderr, secrets, "stderr")
    if b"panicked" in stderr:
        problems.append("panicked: " + stderr.decode("utf-8", "replace")[:200])
    return problems


def check_listener(entry, args, markers):
    host, port = args.url.split("//")[1].rsplit(":", 1)
    data = exchange(host, int(port), entry.wire())
    expects = (entry.expect["listen"] or "").split(",")
    if expects == ["parse:none"]:
        return [] if not data else [f"expected no answer, got {data[:80]!r}"]
    head_only = entry.method == b"HEAD" or entry.raw and entry.target.startswith(b"HEAD ")
    try:
        answers = parse_responses(data, head_only)
    except (ValueError, IndexError) as e:
        return [f"unreadable answer: {e}"]
    if not answers:
        return ["no answer"]
    if len(answers) != len(expects):
        return [f"{len(answers)} answers for {len(expects)} expected"]
    problems = []
    for answer, expect in zip(answers, expects):
        problems += check_answer("listen", entry, answer, expect or None, markers, head_only)
    return problems


def still_serving(args, secrets):
    """A good request on a fresh connection: 200 and result.status 1, or what went wrong."""
    good = Entry("liveness", ["liveness", "200/1", "GET", "{{fn}}?last_id=0",
                              "Authorization: {{auth}}"], secrets)
    try:
        return check_listener(good, args, [])
    except OSError as e:
        return [f"connection failed: {e}"]


def secrets_in(text, secrets, where):
    return [f"the secret {key} appears in {where}" for key, value in secrets.items()
            if value and value in text]


def load(corpus, secrets):
    entries, names = [], set()
    for path in sorted(glob.glob(os.path.join(corpus, "*.tsv"))):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip() or line.startswith("#"):
                    continue
                where = f"{os.path.basename(path)}:{number}"
                try:
                    entry = Entry(where, line.split("\t"), secrets)
                except (CorpusError, ValueError, KeyError) as e:
                    raise SystemExit(f"{where}: {e}")
                if entry.name in names:
                    raise SystemExit(f"{where}: duplicate name {entry.name}")
                names.add(entry.name)
                entries.append(entry)
    return entries


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT of a running listener")
    p.add_argument("--htpasswd", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--home-root", required=True)
    p.add_argument("--secret", action="append", default=[], help="pass:USER=VALUE or token:USER=VALUE")
    p.add_argument("--marker", action="append", default=[])
    p.add_argument("--only", help="run only the entries whose name contains this")
    args = p.parse_args()
    secrets = {}
    for item in args.secret:
        key, _, value = item.partition("=")
        secrets[key] = os.fsencode(value)
    markers = [os.fsencode(m) for m in args.marker]
    entries = load(args.corpus, secrets)
    print(f"corpus {len(entries)} requests", flush=True)
    dead = 0
    for entry in entries:
        if args.only and args.only not in entry.name:
            continue
        label = f"{entry.name} ({entry.where})"
        for front in ("cgi", "listen"):
            try:
                if front == "cgi":
                    problems = check_cgi(entry, args, markers, secrets)
                else:
                    problems = check_listener(entry, args, markers)
                    alive = still_serving(args, secrets)
                    if alive:
                        problems += ["the listener no longer serves: " + "; ".join(alive)]
                    dead = dead + 1 if alive else 0
            except (OSError, subprocess.SubprocessError, CorpusError) as e:
                problems = [f"{type(e).__name__}: {e}"]
            if problems is None:
                print(f"skip {front} {label}")
            elif problems:
                print(f"FAIL {front} {label}: " + "; ".join(problems))
            else:
                print(f"ok {front} {label}")
            sys.stdout.flush()
        if dead >= 3:
            print("FAIL listen: the listener stopped serving; giving up")
            return


if __name__ == "__main__":
    main()
