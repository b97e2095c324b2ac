"""Shared helpers of the Python test programs (tests/*.py, and the Python snippets of tests/t_*.sh,
which put tests/ on PYTHONPATH). The shell side has the same helpers in tests/lib.sh."""


def parse_headers(lines):
    """Header lines (bytes, without line ends) as {lower-case name: [values, in order]}."""
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower().decode("latin-1"), []).append(
            value.strip().decode("latin-1"))
    return headers


def split_cgi(output):
    """A CGI program's output as (status, headers, body), or None when it has no header block.

    The headers end at the first empty line (the program writes CRLF line ends); the status is
    the one of the `Status:` header, 200 without one. The `status` entry is removed from the
    headers, as a web server does when it turns it into the status line."""
    end = output.find(b"\r\n\r\n")
    if end < 0:
        return None
    headers = parse_headers(output[:end].split(b"\r\n"))
    status = int(headers.pop("status", ["200"])[0].split()[0])
    return status, headers, output[end + 4:]
