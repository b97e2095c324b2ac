use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Request, Response, StatusCode};

/// clamscanner patch: bounds on a request's head (request line and header fields), so that no
/// allocation is sized by the client. Beyond them the request is refused (414 for the request
/// line, 431 for the header fields) and the connection closed.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line, without its CRLF.
    pub request_line: usize,
    /// Longest header line, without its CRLF.
    pub header_line: usize,
    /// All header lines together, CRLFs included.
    pub header_bytes: usize,
    /// Most header lines.
    pub header_lines: usize,
}

/// The defaults are clamscanner's listener limits (`serve.rs`: `MAX_REQUEST_LINE`,
/// `MAX_HEADER_LINE`, `MAX_HEADER_BYTES`, `MAX_HEADER_LINES`), which it passes explicitly;
/// its test `serve::tests::the_vendored_head_limits_are_the_listeners` keeps them equal.
impl Default for HeadLimits {
    fn default() -> HeadLimits {
        HeadLimits {
            request_line: 16 * 1024,
            header_line: 8 * 1024,
            header_bytes: 64 * 1024,
            header_lines: 100,
        }
    }
}

/// clamscanner patch: after a refusal, at most this much of what the client still sends is read
/// and thrown away before the connection closes, so that the client sees the refusal instead
/// of a reset caused by unread data.
const LINGER_LIMIT: usize = 256 * 1024;

/// clamscanner patch: a request that tiny_http answered itself (400, 408, 414, 417, 431, or 503
/// when the server is full), reported so that the application can log it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status sent (with an empty body and `Connection: close`).
    pub status: u16,
    pub remote_addr: Option<SocketAddr>,
    /// The request line, when it was read whole.
    pub request_line: Option<String>,
    /// From the request's first byte to the refusal.
    pub elapsed: Duration,
}

/// clamscanner patch: what a connection yields: a request for the application, or a refusal
/// that tiny_http has already answered.
pub enum Incoming {
    Request(Request),
    Refused(Refusal),
}

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: Option<SocketAddr>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // clamscanner patch: the bounds on a request's head.
    limits: HeadLimits,

    // clamscanner patch: set by an answer that could not be written whole, or whose body ends
    // with the connection (unknown length without chunked encoding, e.g. to HTTP/1.0).
    must_close: Arc<AtomicBool>,

    // clamscanner patch: when the current request's first byte arrived, and its request line.
    started: Option<Instant>,
    request_line: Option<String>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    /// clamscanner patch: an unreadable or contradictory Content-Length, or a transfer coding
    /// other than chunked (RFC 9112 §6.3).
    BadFraming(HTTPVersion),
    /// clamscanner patch: beyond `HeadLimits::request_line`.
    RequestLineTooLong,
    /// clamscanner patch: beyond the limits on header fields.
    HeadersTooLarge(HTTPVersion),
    /// The socket failed, timed out or ended; `partial` when part of a request had arrived.
    ReadIoError {
        timed_out: bool,
        partial: bool,
    },
}

/// clamscanner patch: why one line of the head could not be read.
enum LineError {
    TooLong,
    NotAscii,
    Io(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    ///
    /// clamscanner patch: the peer's address comes from `accept` (upstream asked the socket
    /// again and panicked when the peer had already reset it, ENOTCONN; #180).
    pub fn new(
        write_socket: RefinedTcpStream,
        read_socket: RefinedTcpStream,
        remote_addr: Option<SocketAddr>,
        limits: HeadLimits,
    ) -> ClientConnection {
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next_reader();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            must_close: Arc::new(AtomicBool::new(false)),
            started: None,
            request_line: None,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// clamscanner patch: at most `limit` bytes before the CRLF; upstream grew the line
    /// without bound (a 260 MB header line aborted the process on a failed allocation).
    fn read_next_line(&mut self, limit: usize) -> Result<AsciiString, LineError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(LineError::Io)?,
                None => {
                    return Err(LineError::Io(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
            };
            if self.started.is_none() {
                self.started = Some(Instant::now());
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| LineError::NotAscii);
            }

            prev_byte_was_cr = byte == b'\r';

            // One byte of slack: the '\r' of the CRLF is pushed before it is known to be one.
            if buf.len() > limit {
                return Err(LineError::TooLong);
            }
            buf.push(byte);
        }
    }

    fn io_error(&self, e: &IoError) -> ReadError {
        ReadError::ReadIoError {
            // A socket read timeout shows as EAGAIN on Unix, as TimedOut elsewhere.
            timed_out: matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            partial: self.started.is_some(),
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // reading the request line
        let line = match self.read_next_line(self.limits.request_line) {
            Ok(line) => line,
            Err(LineError::TooLong) => return Err(ReadError::RequestLineTooLong),
            Err(LineError::NotAscii) => return Err(ReadError::WrongRequestLine),
            Err(LineError::Io(e)) => return Err(self.io_error(&e)),
        };
        self.request_line = Some(line.as_str().to_owned());
        let (method, path, version) = parse_request_line(line.as_str().trim())?;

        // getting all headers
        let mut headers = Vec::new();
        let mut budget = self.limits.header_bytes;
        loop {
            let limit = self.limits.header_line.min(budget.saturating_sub(2));
            let line = match self.read_next_line(limit) {
                Ok(line) => line,
                Err(LineError::TooLong) => return Err(ReadError::HeadersTooLarge(version)),
                Err(LineError::NotAscii) => return Err(ReadError::WrongHeader(version)),
                Err(LineError::Io(e)) => return Err(self.io_error(&e)),
            };

            if line.is_empty() {
                break;
            };
            budget = budget.saturating_sub(line.len() + 2);
            if headers.len() == self.limits.header_lines {
                return Err(ReadError::HeadersTooLarge(version));
            }
            headers.push(match FromStr::from_str(line.as_str().trim()) {
                // TODO: remove this conversion
                Ok(h) => h,
                _ => return Err(ReadError::WrongHeader(version)),
            });
        }

        // building the writer for the request
        let writer = self.sink.next_writer();

        // follow-up for next potential request
        let mut data_source = self.source.next_reader();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            self.remote_addr,
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => self.io_error(&e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version.clone())
                }
                request::RequestCreationError::BadFraming => ReadError::BadFraming(version.clone()),
            }
        })?;

        // return the request
        Ok(request.with_close_flag(self.must_close.clone()))
    }

    /// clamscanner patch: the next request, or the refusal that tiny_http answered itself;
    /// None when no further request will come from this connection.
    ///
    /// A connection that ends or times out between requests, or in the middle of one, is
    /// closed without an answer (except a timeout in the middle of a head: 408).
    pub fn next_incoming(&mut self) -> Option<Incoming> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests || self.must_close.load(Ordering::Relaxed) {
            return None;
        }
        self.started = None;
        self.request_line = None;

        let (status, version) = match self.read() {
            Ok(rq) => {
                self.after_request(&rq);
                return Some(Incoming::Request(rq));
            }
            // we don't know where the next request would start, so we have to close
            Err(ReadError::WrongRequestLine) => (400, HTTPVersion(1, 1)),
            Err(ReadError::WrongHeader(ver)) => (400, ver),
            Err(ReadError::BadFraming(ver)) => (400, ver),
            Err(ReadError::RequestLineTooLong) => (414, HTTPVersion(1, 1)),
            Err(ReadError::HeadersTooLarge(ver)) => (431, ver),
            // TODO: should be recoverable, but needs handling in case of body
            Err(ReadError::ExpectationFailed(ver)) => (417, ver),
            Err(ReadError::ReadIoError {
                timed_out: true,
                partial: true,
            }) => (408, HTTPVersion(1, 1)),
            Err(ReadError::ReadIoError { .. }) => return None,
        };
        self.no_more_requests = true;
        let mut writer = self.sink.next_writer();
        let response = Response::new_empty(StatusCode(status)).with_connection_close();
        if response
            .raw_print(&mut writer, version, &[], false, None)
            .is_ok()
        {
            writer.flush().ok();
        }
        drop(writer);
        self.sink.with_inner(|w| {
            w.flush().ok();
            w.get_mut().shutdown_write();
        });
        self.linger();
        Some(Incoming::Refused(Refusal {
            status,
            remote_addr: self.remote_addr,
            request_line: self.request_line.take(),
            elapsed: self.started.map_or(Duration::ZERO, |t| t.elapsed()),
        }))
    }

    /// Reads and throws away what the client still sends (bounded) after the refusal and the
    /// end of our sending side, so that closing with unread data does not reset the connection
    /// before the client has read the refusal. Each read is bounded by the socket timeout.
    fn linger(&mut self) {
        let mut buf = [0u8; 8192];
        let mut left = LINGER_LIMIT;
        while left > 0 {
            let want = left.min(buf.len());
            match self.next_header_source.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n,
            }
        }
    }

    /// Whether the connection may carry another request after `rq`.
    fn after_request(&mut self, rq: &Request) {
        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() <= HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // clamscanner patch: a body larger than DRAIN_LIMIT, or of unknown length, is not
        // drained after the answer (a client could keep a thread busy for as long as it
        // cares to send); the connection ends with this request instead.
        let chunked = rq
            .headers()
            .iter()
            .any(|h| h.field.equiv("Transfer-Encoding"));
        if chunked || rq.body_length().map_or(false, |n| n > crate::DRAIN_LIMIT) {
            self.no_more_requests = true;
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        match self.next_incoming()? {
            Incoming::Request(rq) => Some(rq),
            Incoming::Refused(_) => None,
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        // clamscanner patch: "HTTP/2.0" and "HTTP/3.0" used to be accepted here, and the 505
        // sent for them deadlocked behind the unanswered request, leaking a thread and a
        // socket per connection. They are now a bad request line (400, connection closed).
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
