#!/usr/bin/env python3
"""Sends one raw HTTP request (stdin, bytes as given) to HOST:PORT and prints the answer.

For the cases curl cannot make or cannot show: a HEAD whose absence of a body must be seen on
the wire, or a declared Content-Length of 1 TB with no body behind it.

  raw_http.py HOST:PORT            read one response (headers, then the body as framed by
                                   Content-Length or chunked encoding), then close our side
  raw_http.py --to-eof HOST:PORT   read until the server closes the connection

Prints the response bytes on stdout. Exit 0 on a complete answer, 3 when the server went
silent (10 s) or closed before the answer was complete.
"""
import socket
import sys

TIMEOUT = 10.0


def main():
    args = sys.argv[1:]
    to_eof = args[:1] == ["--to-eof"]
    if to_eof:
        args = args[1:]
    host, port = args[0].rsplit(":", 1)
    request = sys.stdin.buffer.read()
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.sendall(request)
    data = b""
    complete = False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                complete = to_eof or framed_complete(data)
                break
            data += chunk
            if not to_eof and framed_complete(data):
                complete = True
                break
    except socket.timeout:
        pass
    sock.close()
    sys.stdout.buffer.write(data)
    sys.exit(0 if complete else 3)


def framed_complete(data):
    """True once `data` holds a whole response: headers plus the body they announce."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].decode("latin-1").lower().split("\r\n")
    body = data[end + 4:]
    fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "chunked" in fields.get("transfer-encoding", ""):
        return body == b"0\r\n\r\n" or body.endswith(b"\r\n0\r\n\r\n")
    if "content-length" in fields:
        return len(body) >= int(fields["content-length"])
    return False


if __name__ == "__main__":
    main()
