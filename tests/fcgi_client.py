#!/usr/bin/env python3
"""A small FastCGI client (standard library only) and the protocol checks of tests/t_fastcgi.sh.

    fcgi_client.py protocol ADDR SERVER_PID     every protocol check against `clamscanner fastcgi`
    fcgi_client.py get ADDR PARAM=VALUE...      one request; prints the CGI answer (headers, body)

ADDR is unix:PATH or HOST:PORT. Each check prints one line, "ok DESCRIPTION" or
"FAIL DESCRIPTION: detail"; the shell test counts them. Every socket has a timeout, so no
check can hang the test.
"""
import base64
import json
import socket
import struct
import sys

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
TIMEOUT = 20
FUNCTION = "/execute/ClamScanner/check_disinfection_status"


def connect(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    return s


def record(kind, rid, content=b"", version=1):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", version, kind, rid, len(content), pad, 0) + content + b"\0" * pad


def pair(name, value):
    def length(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def stream(kind, rid, data):
    """A whole stream: records of at most 65535 bytes, then the empty one."""
    out = b""
    for i in range(0, len(data), 65535):
        out += record(kind, rid, data[i:i + 65535])
    return out + record(kind, rid)


def params_bytes(params):
    out = b""
    for name, value in params:
        out += pair(name.encode() if isinstance(name, str) else name,
                    value.encode() if isinstance(value, str) else value)
    return out


def begin(rid, role=1, keep=False):
    return record(BEGIN, rid, struct.pack(">HB5x", role, 1 if keep else 0))


def request_bytes(params, body=b"", rid=1, keep=False):
    return begin(rid, keep=keep) + stream(PARAMS, rid, params_bytes(params)) + stream(STDIN, rid, body)


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed after %d of %d bytes" % (len(self.buf), n))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def record(self):
        version, kind, rid, clen, pad, _ = struct.unpack(">BBHHBB", self.exact(8))
        content = self.exact(clen)
        self.exact(pad)
        return version, kind, rid, content

    def closed(self):
        """True when the peer closed the connection (nothing more to read)."""
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except OSError:
            return True


def read_answer(reader, rid=1, on_stdout=None):
    """Records up to END_REQUEST of rid: (stdout bytes, protocol status, stdout record sizes)."""
    out, sizes = [], []
    while True:
        version, kind, got_id, content = reader.record()
        if kind == STDOUT and got_id == rid:
            if content:
                sizes.append(len(content))
                if on_stdout:
                    on_stdout(len(content))
                else:
                    out.append(content)
        elif kind == END and got_id == rid:
            return b"".join(out), content[4], sizes
        elif kind == STDERR:
            continue
        else:
            raise ValueError("unexpected record type %d id %d" % (kind, got_id))


def split_cgi(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    status = 200
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "status" in headers:
        status = int(headers["status"].split()[0])
    return status, headers, body


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def cgi_params(query="", path=FUNCTION, method="GET", auth=None, extra=()):
    params = [("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_METHOD", method),
              ("SCRIPT_NAME", "/cgi/clamscanner"), ("PATH_INFO", path),
              ("QUERY_STRING", query), ("CONTENT_LENGTH", ""), ("CONTENT_TYPE", "")]
    if auth:
        params.append(("HTTP_AUTHORIZATION", auth))
    return params + list(extra)


def one(addr, params, body=b"", keep=False):
    s = connect(addr)
    try:
        s.sendall(request_bytes(params, body, keep=keep))
        raw, status, _ = read_answer(Reader(s))
        return status, split_cgi(raw)
    finally:
        s.close()


# --- the protocol checks ------------------------------------------------------------------

def check(desc, cond, detail=""):
    print(("ok %s" % desc) if cond else ("FAIL %s: %s" % (desc, detail)), flush=True)


def guarded(fn):
    def run(*args):
        try:
            fn(*args)
        except Exception as e:  # a check that blew up is a failed check, never a hang
            check(fn.__name__, False, "%s: %s" % (type(e).__name__, e))
    return run


def ids(body):
    return [d["id"] for d in json.loads(body)["result"]["data"]["details"]]


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


ALICE = basic("alice", "pw-alice")


@guarded
def plain_request(addr, pid):
    s = connect(addr)
    s.sendall(request_bytes(cgi_params("last_id=2", auth=ALICE)))
    r = Reader(s)
    raw, status, _ = read_answer(r)
    code, headers, body = split_cgi(raw)
    check("GET: END_REQUEST with FCGI_REQUEST_COMPLETE", status == 0, status)
    check("GET: 200 (no Status line)", code == 200, raw[:200])
    check("GET: JSON content type", headers.get("content-type") == "application/json; charset=utf-8", headers)
    check("GET: last_id=2 gives ids 3..10", ids(body) == list(range(3, 11)), body[:200])
    check("GET without FCGI_KEEP_CONN: the program closes the connection", r.closed())
    s.close()


@guarded
def keep_alive(addr, pid):
    s = connect(addr)
    r = Reader(s)
    answers = []
    for last in (0, 5, 9):
        s.sendall(request_bytes(cgi_params("last_id=%d" % last, auth=ALICE), keep=True))
        raw, status, _ = read_answer(r)
        answers.append(ids(split_cgi(raw)[2]))
    check("keep-alive: three requests on one connection", answers == [list(range(1, 11)), list(range(6, 11)), [10]], answers)
    # The connection is still usable: GET_VALUES on it is answered.
    s.sendall(record(GET_VALUES, 0, pair(b"FCGI_MPXS_CONNS", b"")))
    _, kind, _, _ = r.record()
    check("keep-alive: connection still open after three answers", kind == GET_VALUES_RESULT, kind)
    s.close()


@guarded
def get_values(addr, pid):
    s = connect(addr)
    q = b"".join(pair(n, b"") for n in (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS", b"NOT_A_VARIABLE"))
    s.sendall(record(GET_VALUES, 0, q))
    version, kind, rid, content = Reader(s).record()
    got = {}
    i = 0
    while i < len(content):
        nl, vl = content[i], content[i + 1]
        got[content[i + 2:i + 2 + nl]] = content[i + 2 + nl:i + 2 + nl + vl]
        i += 2 + nl + vl
    check("GET_VALUES: answered with GET_VALUES_RESULT on id 0", (kind, rid) == (GET_VALUES_RESULT, 0), (kind, rid))
    check("GET_VALUES: MPXS_CONNS 0, MAX_CONNS = MAX_REQS = --workers (3), unknown names left out",
          got == {b"FCGI_MAX_CONNS": b"3", b"FCGI_MAX_REQS": b"3", b"FCGI_MPXS_CONNS": b"0"}, got)
    s.close()


@guarded
def abort(addr, pid):
    s = connect(addr)
    r = Reader(s)
    s.sendall(begin(1, keep=True) + record(PARAMS, 1, params_bytes(cgi_params(auth=ALICE))) + record(ABORT, 1))
    _, kind, rid, content = r.record()
    check("ABORT_REQUEST: END_REQUEST at once", (kind, rid, content[4:5]) == (END, 1, b"\0"), (kind, rid, content))
    s.sendall(request_bytes(cgi_params("last_id=8", auth=ALICE), keep=True))
    raw, status, _ = read_answer(r)
    check("ABORT_REQUEST: the next request on that connection is served", ids(split_cgi(raw)[2]) == [9, 10], raw[:200])
    s.close()


@guarded
def unknown_type_and_role(addr, pid):
    s = connect(addr)
    r = Reader(s)
    s.sendall(record(42, 0, b"whatever"))
    _, kind, rid, content = r.record()
    check("unknown management type: FCGI_UNKNOWN_TYPE naming it", (kind, rid, content) == (UNKNOWN_TYPE, 0, bytes([42]) + b"\0" * 7), (kind, rid, content))
    s.sendall(begin(1, role=2, keep=True))
    _, kind, rid, content = r.record()
    check("Authorizer role: END_REQUEST with FCGI_UNKNOWN_ROLE", (kind, rid, content[4]) == (END, 1, 3), (kind, rid, content))
    s.sendall(request_bytes(cgi_params("last_id=9", auth=ALICE), rid=1, keep=True))
    raw, _, _ = read_answer(r)
    check("after an unknown type and role the connection still serves", ids(split_cgi(raw)[2]) == [10], raw[:200])
    s.close()


@guarded
def multiplex(addr, pid):
    s = connect(addr)
    r = Reader(s)
    s.sendall(begin(1, keep=True) + begin(2, keep=True))
    _, kind, rid, content = r.record()
    check("second request id on a busy connection: FCGI_CANT_MPX_CONN", (kind, rid, content[4]) == (END, 2, 1), (kind, rid, content))
    # Records of the refused id are ignored; request 1 goes on.
    s.sendall(stream(PARAMS, 2, b"") + stream(PARAMS, 1, params_bytes(cgi_params("last_id=7", auth=ALICE))) + stream(STDIN, 1, b""))
    raw, status, _ = read_answer(r, 1)
    check("... and the first request is answered", ids(split_cgi(raw)[2]) == [8, 9, 10], raw[:200])
    s.close()


def closed_without_answer(addr, payload, shut=False):
    s = connect(addr)
    s.sendall(payload)
    if shut:
        s.shutdown(socket.SHUT_WR)
    r = Reader(s)
    try:
        r.record()
        return False
    except (EOFError, ConnectionResetError):
        return True
    finally:
        s.close()


@guarded
def malformed(addr, pid):
    check("bad version: connection closed", closed_without_answer(addr, record(BEGIN, 1, struct.pack(">HB5x", 1, 0), version=2)))
    check("HTTP sent to the FastCGI socket: connection closed", closed_without_answer(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    check("truncated header then EOF: connection closed", closed_without_answer(addr, b"\x01\x01\x00", shut=True))
    check("truncated content then EOF: connection closed", closed_without_answer(addr, begin(1)[:12], shut=True))
    check("BEGIN_REQUEST body of 2 bytes: connection closed", closed_without_answer(addr, record(BEGIN, 1, b"\0\1")))
    huge = b"\xff\xff\xff\xff\x01" + b"a"
    check("a pair claiming a 2 GiB name: connection closed",
          closed_without_answer(addr, begin(1) + record(PARAMS, 1, huge) + record(PARAMS, 1) + record(STDIN, 1)))
    check("STDOUT sent by the web server: connection closed", closed_without_answer(addr, record(STDOUT, 1, b"x")))
    check("STDIN before PARAMS ended: connection closed", closed_without_answer(addr, begin(1) + record(STDIN, 1, b"x")))
    # Over the PARAMS limit (128 KiB) in well-formed records: a 400 answer, memory not kept.
    big = params_bytes(cgi_params(auth=ALICE) + [("HTTP_X_%d" % i, "v" * 60000) for i in range(4)])
    s = connect(addr)
    s.sendall(begin(1) + stream(PARAMS, 1, big) + stream(STDIN, 1, b""))
    raw, status, _ = read_answer(Reader(s))
    s.close()
    code, headers, body = split_cgi(raw)
    check("PARAMS over 128 KiB: 400 with a JSON error", code == 400 and json.loads(body)["result"]["status"] == 0, raw[:300])


@guarded
def credentials(addr, pid):
    status, (code, headers, body) = one(addr, cgi_params("last_id=2"))
    check("no Authorization: 401", code == 401, code)
    check("... with the challenge", headers.get("www-authenticate") == 'Basic realm="cPanel", charset="UTF-8"', headers)
    status, (code, _, _) = one(addr, cgi_params(auth=basic("alice", "wrong")))
    check("wrong password: 401", code == 401, code)
    status, (code, _, _) = one(addr, cgi_params(extra=[("REMOTE_USER", "alice")]))
    check("REMOTE_USER alone on an untrusted --listen socket: 401 (ignored)", code == 401, code)
    status, (code, _, _) = one(addr, cgi_params(auth=basic("alice", "wrong"), extra=[("REMOTE_USER", "alice")]))
    check("REMOTE_USER + wrong password (nginx without auth_basic): 401", code == 401, code)
    status, (code, _, body) = one(addr, cgi_params("last_id=2", auth="cpanel alice:TOKEN0ALICE0123456789"))
    check("cpanel USER:TOKEN: 200", code == 200 and ids(body) == list(range(3, 11)), (code, body[:200]))
    status, (code, _, body) = one(addr, cgi_params(auth=ALICE, extra=[("HTTP_AUTHORIZATION", basic("bob", "x"))]))
    check("HTTP_AUTHORIZATION twice: 400", code == 400, code)


@guarded
def methods(addr, pid):
    status, (code, headers, body) = one(addr, cgi_params("last_id=2", method="HEAD", auth=ALICE))
    check("HEAD: 200, JSON type, no body", code == 200 and headers.get("content-type", "").startswith("application/json") and body == b"", (code, headers, body[:100]))
    p = [x for x in cgi_params(method="POST", auth=ALICE) if x[0] not in ("CONTENT_LENGTH", "CONTENT_TYPE")]
    p += [("CONTENT_LENGTH", "9"), ("CONTENT_TYPE", "application/x-www-form-urlencoded")]
    status, (code, _, body) = one(addr, p, b"last_id=6")
    check("POST body from STDIN: last_id=6 gives 7..10", code == 200 and ids(body) == [7, 8, 9, 10], (code, body[:200]))
    p[-2] = ("CONTENT_LENGTH", "20")
    status, (code, _, body) = one(addr, p, b"last_id=6")
    check("POST body shorter than CONTENT_LENGTH: 400", code == 400, (code, body[:200]))
    p[-2] = ("CONTENT_LENGTH", "70000")
    status, (code, _, _) = one(addr, p, b"x" * 70000)
    check("POST body over 64 KiB: 413", code == 413, code)
    status, (code, _, body) = one(addr, cgi_params("last_id=abc", auth=ALICE))
    check("bad last_id: 200 with status 0", code == 200 and json.loads(body)["result"]["status"] == 0, body[:200])
    status, (code, _, body) = one(addr, cgi_params(path="", auth=ALICE))
    check("empty PATH_INFO is the function (as in CGI)", code == 200, code)
    status, (code, _, body) = one(addr, cgi_params(path="/", auth=ALICE))
    check("PATH_INFO / is 404 (no progress page over FastCGI)", code == 404, code)
    status, (code, _, body) = one(addr, cgi_params("last_id=9", auth=ALICE, extra=[("CLAMSCANNER_ENVELOPE", "flat")]))
    flat = json.loads(body)
    check("a CLAMSCANNER_ENVELOPE=flat parameter gives the flat form", "result" not in flat and [d["id"] for d in flat["data"]["details"]] == [10], body[:200])
    status, (code, _, body) = one(addr, cgi_params(auth=ALICE, extra=[("QUERY_STRING", "last_id=9")]))
    check("a parameter sent twice: the last one wins", ids(body) == [10], body[:200])


@guarded
def big_answer_streams(addr, pid):
    """The big account's answer is tens of MB: it must arrive in many records while the
    program's memory stays flat, and another connection must be served meanwhile."""
    before = rss_kib(pid, "VmRSS")
    a = connect(addr)
    a.sendall(request_bytes(cgi_params(auth=basic("big", "pw-big"))))
    ra = Reader(a)
    first = ra.record()
    check("big answer: first STDOUT record arrives", first[1] == STDOUT, first[:3])
    # While A's answer is unread (the program blocks writing it), B is served.
    status, (code, _, body) = one(addr, cgi_params("last_id=8", auth=ALICE))
    check("another connection is served while a big answer is in flight", code == 200 and ids(body) == [9, 10], code)
    total = [len(first[3])]
    biggest = [len(first[3])]

    def count(n):
        total[0] += n
        biggest[0] = max(biggest[0], n)
    _, status, sizes = read_answer(ra, on_stdout=count)
    a.close()
    peak = rss_kib(pid, "VmHWM")
    check("big answer: %d bytes in %d STDOUT records of at most 65535" % (total[0], len(sizes) + 1),
          total[0] > 20_000_000 and biggest[0] <= 65535 and len(sizes) > 100, (total[0], biggest[0], len(sizes)))
    check("big answer: END_REQUEST complete", status == 0, status)
    check("big answer: peak RSS %d KiB, %d KiB above the start, for a %d MB answer" % (peak, peak - before, total[0] // 1_000_000),
          peak - before < 16 * 1024, (before, peak))


@guarded
def concurrent_idle(addr, pid):
    """A connection that sent half a request does not stop the others."""
    idle = connect(addr)
    idle.sendall(begin(1, keep=True) + record(PARAMS, 1, params_bytes(cgi_params())))
    status, (code, _, _) = one(addr, cgi_params(auth=ALICE))
    check("a half-sent request on one connection does not block another", code == 200, code)
    idle.close()


def protocol(addr, pid):
    for test in (plain_request, keep_alive, get_values, abort, unknown_type_and_role, multiplex,
                 malformed, credentials, methods, concurrent_idle, big_answer_streams):
        test(addr, pid)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "protocol":
        protocol(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "get":
        params = [tuple(a.split("=", 1)) for a in sys.argv[3:]]
        status, (code, headers, body) = one(sys.argv[2], params)
        print(json.dumps({"protocol_status": status, "code": code, "headers": headers,
                          "body": body.decode("utf-8", "replace")}))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
