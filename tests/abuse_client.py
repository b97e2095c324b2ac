#!/usr/bin/env python3
"""The clients of tests/t_abuse.sh: one legitimate poller and the attacks of issue 9 (items 1-7)
on the listener, each bounded in time and size. Standard library only.

  abuse_client.py poll ADDR AUTH OUT STOP    poll on one keep-alive connection until the file
                                             STOP exists; one line per poll to OUT:
                                             "START_EPOCH LATENCY_MS ok|FAIL[:why]"
  abuse_client.py ATTACK ADDR [ARGS...]      run one attack; prints "ok WHAT" and "FAIL WHAT"
                                             lines and figures ("# ..."), exit 0 when it ran

Attacks (ADDR is HOST:PORT; AUTH is a whole Authorization header value):
  idle COUNT HOLD         COUNT connections that send nothing, held HOLD seconds; prints how
                          many were accepted (silent) and refused (503 or closed at once)
  pipeline COUNT HOLD     COUNT unauthenticated GETs pipelined on one connection that never
                          reads, for HOLD seconds
  slow-body COUNT HOLD    COUNT unauthenticated POSTs declaring 2000 bytes, sending one byte
                          every 0.5 s for HOLD seconds
  slow-read COUNT HOLD AUTH   COUNT full reads of the big log, 1 KiB every 0.2 s, HOLD seconds
  te-identity COUNT AUTH  COUNT POSTs with `Transfer-Encoding: identity` and a complete body:
                          each must be answered 400 and closed, at once
  big-header MB ROUNDS    ROUNDS requests, one after the other, each with a header line of MB MiB:
                          431 (or a reset), at once
  reset COUNT AUTH        COUNT connections that send a full read of the big log and reset
  refusals                each request tiny_http refuses (the access log is checked by the
                          shell test); each must get its status and a close
  waiting COUNT AUTH READY    COUNT polls on new connections: connect and send, create the
                          file READY, then print each answer's status ("status N" or
                          "status none") as it comes (within 20 s)
  http10 COUNT AUTH RECORDS   COUNT concurrent HTTP/1.0 full reads of the big log, read at full
                          speed: each must stream RECORDS records and end with the close
"""
import json
import select
import socket
import struct
import sys
import threading
import time

FN = "/execute/ClamScanner/check_disinfection_status"
POLL_TIMEOUT = 5.0  # a poll that takes this long is recorded as failed (and far over 1 s)


def connect(addr, timeout=10.0):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def reset_close(sock):
    """Closes with a RST (SO_LINGER 0), as a client that vanishes does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Reader:
    """Reads HTTP answers off one socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def answer(self, head_only=False):
        """(status, headers dict, body); the body read as framed (or to the close)."""
        status_line = self.line()
        status = int(status_line.split(b" ")[1])
        headers = {}
        while True:
            line = self.line()
            if not line:
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        if head_only:
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    self.line()
                    break
                body += self.take(size)
                self.take(2)
            return status, headers, bytes(body)
        if "content-length" in headers:
            return status, headers, self.take(int(headers["content-length"]))
        try:
            while True:
                self.fill()
        except EOFError:
            pass
        body, self.buf = self.buf, b""
        return status, headers, body


def poll(addr, auth, out, stop):
    request = (f"GET {FN}?last_id=0 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").encode()
    sock = reader = None
    with open(out, "a", buffering=1) as log:
        while True:
            try:
                open(stop).close()
                break
            except FileNotFoundError:
                pass
            start = time.time()
            verdict = "ok"
            try:
                if sock is None:
                    sock = connect(addr, POLL_TIMEOUT)
                    reader = Reader(sock)
                sock.sendall(request)
                status, _, body = reader.answer()
                if status != 200:
                    verdict = f"FAIL:status-{status}"
                elif json.loads(body)["result"]["status"] != 1:
                    verdict = "FAIL:result-status-0"
            except (OSError, EOFError, ValueError, KeyError) as e:
                verdict = f"FAIL:{type(e).__name__}"
                if sock is not None:
                    sock.close()
                sock = None
            log.write(f"{start:.3f} {(time.time() - start) * 1000:.0f} {verdict}\n")
            time.sleep(0.05)  # pacing between polls, not a synchronisation


def idle(addr, count, hold):
    socks = []
    for _ in range(count):
        try:
            socks.append(connect(addr))
        except OSError:
            socks.append(None)
    refused, accepted, busy, no_connect = 0, 0, 0, socks.count(None)
    # A refusal is prompt (no request is awaited), while an accepted connection stays silent for
    # the server's 20 s read timeout: what has spoken within 2 s was refused.
    deadline = time.time() + 2.0
    pending = {s for s in socks if s is not None}
    answered = set()
    while pending and time.time() < deadline:
        ready, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.time()))
        for s in ready:
            pending.discard(s)
            answered.add(s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503"):
                busy += 1
            refused += 1
    accepted = len(pending)
    print(f"# idle: {count} connections: {accepted} accepted and silent, {refused} refused at once "
          f"({busy} with 503), {no_connect} could not connect")
    print(f"accepted {accepted}")
    print(f"refused {refused}")
    print(f"busy {busy}")
    time.sleep(hold)  # the attack's duration: the poller keeps polling meanwhile
    for s in socks:
        if s is not None:
            s.close()


def pipeline(addr, count, hold):
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    # A small receive buffer: the answers pile up in the server's send buffer, and its writes
    # block, as soon as possible.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10.0)
    sock.connect((host, int(port)))
    request = f"GET {FN}?last_id=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    data = request * count

    def send():
        try:
            sock.sendall(data)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(hold)
    reset_close(sock)
    t.join(5)
    print(f"# pipeline: {count} requests ({len(data)} bytes) on one connection that never reads")
    print("ok pipelined")


def slow_body(addr, count, hold):
    socks = [connect(addr) for _ in range(count)]
    for s in socks:
        s.sendall(f"POST {FN} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
    end = time.time() + hold
    sent = 0
    while time.time() < end:
        for s in socks:
            try:
                s.sendall(b"a")
                sent += 1
            except OSError:
                pass
        time.sleep(0.5)
    for s in socks:
        reset_close(s)
    print(f"# slow-body: {count} POSTs declaring 2000 bytes, {sent} bytes sent in {hold} s")
    print("ok slow bodies")


def slow_read(addr, count, hold, auth):
    socks = []
    host, port = addr.rsplit(":", 1)
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10.0)
        s.connect((host, int(port)))
        socks.append(s)
    for s in socks:
        s.sendall(f"GET {FN}?last_id=0 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
    end = time.time() + hold
    got = 0
    while time.time() < end:
        for s in socks:
            try:
                got += len(s.recv(1024))
            except OSError:
                pass
        time.sleep(0.2)
    for s in socks:
        reset_close(s)
    print(f"# slow-read: {count} full reads of the big log, {got} bytes read in {hold} s")
    print("ok slow readers" if got > 0 else "FAIL slow readers got nothing")


def te_identity(addr, count, auth):
    socks = []
    for _ in range(count):
        s = connect(addr, 5.0)
        s.sendall(f"POST {FN} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                  "Transfer-Encoding: identity\r\nContent-Length: 9\r\n\r\nlast_id=1".encode())
        socks.append(s)
    for i, s in enumerate(socks):
        start = time.time()
        try:
            status, headers, _ = Reader(s).answer()
            closed = s.recv(1) == b""
        except (OSError, EOFError) as e:
            print(f"FAIL identity {i}: no answer ({e})")
            continue
        took = time.time() - start
        if status == 400 and closed and headers.get("connection") == "close":
            print(f"ok identity {i}: 400 and closed")
        else:
            print(f"FAIL identity {i}: status {status}, closed {closed}, {took:.1f} s")
        s.close()


def big_header(addr, mib, rounds):
    for i in range(rounds):
        one_big_header(addr, mib, i)


def one_big_header(addr, mib, i):
    sock = connect(addr, 30.0)
    line = b"GET " + FN.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: "
    piece = b"b" * 65536
    sent = 0
    outcome = "reset"
    try:
        sock.sendall(line)
        while sent < mib << 20:
            sock.sendall(piece)
            sent += len(piece)
        sock.sendall(b"\r\n\r\n")
    except OSError:
        pass
    try:
        status, _, _ = Reader(sock).answer()
        outcome = str(status)
    except (OSError, EOFError, ValueError, IndexError):
        pass
    sock.close()
    print(f"# big-header {i}: {sent >> 10} KiB of a {mib} MiB header line sent before the server stopped; answer {outcome}")
    if outcome in ("431", "reset"):
        print(f"ok big header {i} refused")
    else:
        print(f"FAIL big header {i} answered {outcome}")


def reset(addr, count, auth):
    for i in range(count):
        try:
            s = connect(addr, 5.0)
            # Every tenth one a full read of the big log (the answer is streaming when the reset
            # comes), the others refused for want of credentials.
            path = f"{FN}?last_id=0"
            hdr = f"Authorization: {auth}\r\n" if i % 10 == 0 else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{hdr}\r\n".encode())
            reset_close(s)
        except OSError:
            pass
    print(f"# reset: {count} connections reset right after their request")
    print("ok resets sent")


REFUSALS = [
    # (name, request bytes, expected status); each request line carries the name as a marker,
    # and a second request follows that must never be answered (the connection closes).
    ("bad-line", b"GARBAGE-bad-line\r\n\r\n", 400),
    ("bad-header", b"GET /?m=bad-header HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    ("expect", b"GET /?m=expect HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417),
    ("length-minus-1", b"POST /?m=length-minus-1 HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    ("length-hex", b"POST /?m=length-hex HTTP/1.1\r\nContent-Length: 0x9\r\n\r\n", 400),
    ("length-2-64", b"POST /?m=length-2-64 HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
    ("length-1e3", b"POST /?m=length-1e3 HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400),
    ("length-two", b"POST /?m=length-two HTTP/1.1\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\n", 400),
    ("te-identity", b"POST /?m=te-identity HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400),
    ("long-header", b"GET /?m=long-header HTTP/1.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("many-headers", b"GET /?m=many-headers HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
    ("long-line", b"GET /?m=long-line&" + b"a" * 17000 + b" HTTP/1.1\r\n\r\n", 414),
    ("not-ascii", b"GET /?m=not-ascii\xff HTTP/1.1\r\n\r\n", 400),
]


def refusals(addr):
    follow = f"GET {FN} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for name, data, want in REFUSALS:
        s = connect(addr, 10.0)
        try:
            s.sendall(data + follow)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as e:
            print(f"FAIL refusal {name}: {e}")
            continue
        finally:
            s.close()
        got = b"".join(chunks)
        answers = got.count(b"HTTP/1.")
        status = got[9:12].decode(errors="replace")
        if status == str(want) and answers == 1:
            print(f"ok refusal {name}: {want}, one answer, closed")
        else:
            print(f"FAIL refusal {name}: expected {want} alone, got {answers} answers: {got[:60]!r}")


def waiting(addr, count, auth, ready):
    socks = []
    for _ in range(count):
        s = connect(addr, 20.0)
        s.sendall(f"GET {FN}?last_id=4 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                  "Connection: close\r\n\r\n".encode())
        socks.append(s)
    open(ready, "w").close()
    for s in socks:
        try:
            status, _, _ = Reader(s).answer()
            print(f"status {status}")
        except (OSError, EOFError, ValueError, IndexError):
            print("status none")
        s.close()


def http10(addr, count, auth, records):
    results = [None] * count

    def one(i):
        try:
            s = connect(addr, 30.0)
            s.sendall(f"GET {FN}?last_id=0 HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n".encode())
            status, headers, body = Reader(s).answer()
            s.close()
            doc = json.loads(body)
            n = len(doc["result"]["data"]["details"])
            framing = "content-length" not in headers and headers.get("connection") == "close"
            results[i] = (status, n, framing, len(body))
        except (OSError, EOFError, ValueError, KeyError) as e:
            results[i] = (type(e).__name__, 0, False, 0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, r in enumerate(results):
        if r and r[0] == 200 and r[1] == records and r[2]:
            print(f"ok http10 {i}: {r[1]} records, {r[3]} bytes, ended by the close")
        else:
            print(f"FAIL http10 {i}: {r}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "poll":
        poll(*args)
    elif cmd == "idle":
        idle(args[0], int(args[1]), float(args[2]))
    elif cmd == "pipeline":
        pipeline(args[0], int(args[1]), float(args[2]))
    elif cmd == "slow-body":
        slow_body(args[0], int(args[1]), float(args[2]))
    elif cmd == "slow-read":
        slow_read(args[0], int(args[1]), float(args[2]), args[3])
    elif cmd == "te-identity":
        te_identity(args[0], int(args[1]), args[2])
    elif cmd == "big-header":
        big_header(args[0], int(args[1]), int(args[2]))
    elif cmd == "reset":
        reset(args[0], int(args[1]), args[2])
    elif cmd == "refusals":
        refusals(args[0])
    elif cmd == "waiting":
        waiting(args[0], int(args[1]), args[2], args[3])
    elif cmd == "http10":
        http10(args[0], int(args[1]), args[2], int(args[3]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
