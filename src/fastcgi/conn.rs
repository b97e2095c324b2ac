//! One FastCGI connection: records in, the shared handler, STDOUT records out.
//!
//! One request at a time per connection (no multiplexing: every web server we ship for sends one
//! at a time, deployment-facts §1). The handler runs on the connection's thread; its answer is
//! streamed in STDOUT records as the body is produced, so memory does not grow with the answer.
//! An ABORT_REQUEST is honoured while the request is being received; once the answer is being
//! written the connection is not read, so an abort then only takes effect when the answer ends.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::panic::{self, AssertUnwindSafe};

use super::record::{self, Header, ProtocolStatus, RecordError};
use crate::cgi::{self, OutputError};
use crate::envelope::Form;
use crate::handler::{self, Service};
use crate::request::MAX_BODY;
use crate::response::Response;

/// Largest PARAMS stream kept (all CGI variables and HTTP headers of one request). Web servers
/// cap request headers well below this (nginx 32 KiB, Apache about 8 KiB per field); beyond it
/// the request is answered 400 and its parameters are dropped as they arrive.
pub const MAX_PARAMS: usize = 128 * 1024;
/// STDIN bytes kept: one more than the body limit, so an oversized body is still seen as one.
const MAX_STDIN_KEPT: usize = MAX_BODY + 1;
/// Bytes asked of the socket per read (a typical request's records fit in one).
const READ_CHUNK: usize = 8 * 1024;
/// Content of a full STDOUT record: a multiple of 8, so full records need no padding.
const STDOUT_RECORD: usize = 32 * 1024;
/// Sealed records are sent once this much is pending (or at the end of the answer): one chunk.
const STDOUT_FLUSH: usize = crate::envelope::CHUNK;
/// Initial size of the outgoing buffer.
const STDOUT_START: usize = 4 * 1024;

/// What the connection's owner decided once for all its requests.
pub struct Responder {
    /// The service with the configured envelope form.
    pub service: Service,
    /// The same settings in the other form, for requests whose `CLAMSCANNER_ENVELOPE`
    /// parameter asks for it (one web-server location wrapped, another flat).
    pub other_form: Service,
    /// Believe `REMOTE_USER` (the web server authenticated the user and is the only peer).
    pub trust_remote_user: bool,
    /// Answered to FCGI_GET_VALUES as FCGI_MAX_CONNS and FCGI_MAX_REQS.
    pub max_conns: usize,
}

/// Why a connection ended other than by the peer closing it between records.
#[derive(Debug)]
pub enum ConnError {
    Record(RecordError),
    /// A record that breaks the protocol, with what was wrong.
    Protocol(String),
    /// The peer closed or went silent in the middle of a record or a request.
    Truncated,
    Io(io::Error),
    /// The answer could not be produced (a bug); the connection is closed mid-answer.
    Internal,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Record(e) => write!(f, "malformed record: {e}"),
            ConnError::Protocol(what) => write!(f, "protocol error: {what}"),
            ConnError::Truncated => write!(f, "the web server stopped in the middle of a request"),
            ConnError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "the web server stopped reading (timed out)")
            }
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Internal => write!(f, "internal error while writing an answer"),
        }
    }
}

impl ConnError {
    /// A peer that simply went away is not worth a log line.
    pub fn is_quiet(&self) -> bool {
        matches!(self, ConnError::Io(e) if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ))
    }
}

impl From<RecordError> for ConnError {
    fn from(e: RecordError) -> Self {
        ConnError::Record(e)
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

/// The request being received.
struct Active {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    params_too_large: bool,
    stdin: Vec<u8>,
}

enum Flow {
    Continue,
    Close,
}

/// Serves requests on `stream` until the peer closes it, a request without FCGI_KEEP_CONN is
/// answered, or the peer breaks the protocol (`Err`, the caller logs it and drops the stream).
pub fn serve<S: Read + Write>(stream: &mut S, responder: &Responder) -> Result<(), ConnError> {
    let mut conn = Conn {
        stream,
        responder,
        active: None,
    };
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut start = 0;
    loop {
        let frame = match record::split(&inbuf[start..])? {
            Some(frame) => frame,
            None => {
                inbuf.drain(..start);
                start = 0;
                let filled = inbuf.len();
                inbuf.resize(filled + READ_CHUNK, 0);
                let read = conn.stream.read(&mut inbuf[filled..]);
                inbuf.truncate(filled + *read.as_ref().unwrap_or(&0));
                let between_requests = inbuf.is_empty() && conn.active.is_none();
                match read {
                    Ok(0) if between_requests => return Ok(()),
                    Ok(0) => return Err(ConnError::Truncated),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        // An idle kept-alive connection timing out is normal; a half-sent
                        // request is not.
                        return if between_requests {
                            Ok(())
                        } else {
                            Err(ConnError::Truncated)
                        };
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let base = start;
        start += frame.len;
        let content = &inbuf[base + frame.content.start..base + frame.content.end];
        if let Flow::Close = conn.on_record(frame.header, content)? {
            return Ok(());
        }
    }
}

struct Conn<'a, S: Write> {
    stream: &'a mut S,
    responder: &'a Responder,
    active: Option<Active>,
}

impl<S: Write> Conn<'_, S> {
    fn on_record(&mut self, header: Header, content: &[u8]) -> Result<Flow, ConnError> {
        let id = header.request_id;
        let is_active = self.active.as_ref().is_some_and(|a| a.id == id);
        match header.kind {
            record::GET_VALUES if id == 0 => self.get_values(content),
            kind if id == 0 => {
                let mut out = Vec::new();
                record::encode_unknown_type(&mut out, kind);
                self.send(&out)
            }
            record::BEGIN_REQUEST => self.begin(id, content),
            record::ABORT_REQUEST if is_active => {
                let keep = self.active.take().is_some_and(|a| a.keep_conn);
                self.end(id, ProtocolStatus::RequestComplete)?;
                Ok(if keep { Flow::Continue } else { Flow::Close })
            }
            record::PARAMS if is_active => self.params(content),
            record::STDIN if is_active => self.stdin(content),
            // Records of a request that is not active (ended, refused, or never begun) are
            // ignored, as the specification says (§3.3); DATA is for the Filter role only.
            record::ABORT_REQUEST | record::PARAMS | record::STDIN | record::DATA => {
                Ok(Flow::Continue)
            }
            record::END_REQUEST
            | record::STDOUT
            | record::STDERR
            | record::GET_VALUES
            | record::GET_VALUES_RESULT
            | record::UNKNOWN_TYPE => Err(ConnError::Protocol(format!(
                "the web server sent a record of type {} (request {id}), which only an application sends",
                header.kind
            ))),
            kind => {
                let mut out = Vec::new();
                record::encode_unknown_type(&mut out, kind);
                self.send(&out)
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<Flow, ConnError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(Flow::Continue)
    }

    fn end(&mut self, id: u16, status: ProtocolStatus) -> Result<Flow, ConnError> {
        let mut out = Vec::new();
        record::encode_end_request(&mut out, id, 0, status);
        self.send(&out)
    }

    fn get_values(&mut self, content: &[u8]) -> Result<Flow, ConnError> {
        let max = self.responder.max_conns.to_string();
        let mut answer = Vec::new();
        for (name, _) in record::parse_pairs(content)? {
            let value: &[u8] = match name {
                b"FCGI_MAX_CONNS" | b"FCGI_MAX_REQS" => max.as_bytes(),
                b"FCGI_MPXS_CONNS" => b"0",
                _ => continue,
            };
            record::encode_pair(&mut answer, name, value);
        }
        let mut out = Vec::new();
        record::encode_record(&mut out, record::GET_VALUES_RESULT, 0, &answer);
        self.send(&out)
    }

    fn begin(&mut self, id: u16, content: &[u8]) -> Result<Flow, ConnError> {
        let (role, keep_conn) = record::parse_begin(content)?;
        if let Some(active) = &self.active {
            if active.id == id {
                return Err(ConnError::Protocol(format!(
                    "BEGIN_REQUEST for request {id}, which is already active"
                )));
            }
            return self.end(id, ProtocolStatus::CantMpxConn);
        }
        if role != record::ROLE_RESPONDER {
            self.end(id, ProtocolStatus::UnknownRole)?;
            return Ok(if keep_conn {
                Flow::Continue
            } else {
                Flow::Close
            });
        }
        self.active = Some(Active {
            id,
            keep_conn,
            params: Vec::new(),
            params_done: false,
            params_too_large: false,
            stdin: Vec::new(),
        });
        Ok(Flow::Continue)
    }

    fn params(&mut self, content: &[u8]) -> Result<Flow, ConnError> {
        let Some(active) = self.active.as_mut() else {
            return Ok(Flow::Continue);
        };
        if active.params_done {
            return Err(ConnError::Protocol(
                "PARAMS after the end of the PARAMS stream".into(),
            ));
        }
        if content.is_empty() {
            active.params_done = true;
        } else if active.params_too_large || active.params.len() + content.len() > MAX_PARAMS {
            active.params_too_large = true;
            active.params = Vec::new();
        } else {
            active.params.extend_from_slice(content);
        }
        Ok(Flow::Continue)
    }

    fn stdin(&mut self, content: &[u8]) -> Result<Flow, ConnError> {
        let Some(active) = self.active.as_mut() else {
            return Ok(Flow::Continue);
        };
        if !active.params_done {
            return Err(ConnError::Protocol(
                "STDIN before the end of the PARAMS stream".into(),
            ));
        }
        if !content.is_empty() {
            let room = MAX_STDIN_KEPT.saturating_sub(active.stdin.len());
            active
                .stdin
                .extend_from_slice(&content[..content.len().min(room)]);
            return Ok(Flow::Continue);
        }
        match self.active.take() {
            Some(active) => self.answer(active),
            None => Ok(Flow::Continue),
        }
    }

    /// The whole request is in: run the handler and stream its answer.
    fn answer(&mut self, active: Active) -> Result<Flow, ConnError> {
        let responder = self.responder;
        let form = responder.service.settings.envelope;
        let (response, head_only) = if active.params_too_large {
            let message = format!(
                "The request's headers and parameters are larger than {} KiB.",
                MAX_PARAMS / 1024
            );
            (Response::error(400, form, message), false)
        } else {
            let pairs = record::parse_pairs(&active.params)?;
            let params = Params(pairs);
            let head_only = params.last(b"REQUEST_METHOD") == Some(b"HEAD");
            let response = panic::catch_unwind(AssertUnwindSafe(|| {
                respond(responder, &params, &active.stdin)
            }))
            .unwrap_or_else(|_| {
                eprintln!("clamscanner fastcgi: a request handler panicked; answered 500");
                handler::internal_error(form)
            });
            (response, head_only)
        };
        let mut out = StdoutRecords::new(&mut *self.stream, active.id);
        match cgi::write_response(&mut out, response, head_only) {
            Ok(()) => {}
            Err(OutputError::Write(e)) => return Err(ConnError::Io(e)),
            Err(OutputError::Panicked) => return Err(ConnError::Internal),
        }
        out.finish()?;
        Ok(if active.keep_conn {
            Flow::Continue
        } else {
            Flow::Close
        })
    }
}

/// A request's parameters in arrival order, duplicates kept.
struct Params<'a>(Vec<record::Pair<'a>>);

impl Params<'_> {
    /// The last value of `name` (nginx sends an overriding `fastcgi_param` after the one from
    /// `fastcgi_params`, and fcgiwrap also lets the last one win).
    fn last(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn count(&self, name: &[u8]) -> usize {
        self.0.iter().filter(|(n, _)| *n == name).count()
    }
}

/// Names that decide who the user is: sent twice, nobody can tell which one the web server
/// meant (nginx repeats a parameter a configuration sets again, and a repeated header).
const SINGLE_PARAMS: [&str; 2] = ["REMOTE_USER", "HTTP_AUTHORIZATION"];

fn respond(responder: &Responder, params: &Params, stdin: &[u8]) -> Response {
    let asked = params
        .last(b"CLAMSCANNER_ENVELOPE")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(Form::parse);
    let service = match asked {
        Some(form) if form == responder.other_form.settings.envelope => &responder.other_form,
        _ => &responder.service,
    };
    let form = service.settings.envelope;
    if let Some(name) = SINGLE_PARAMS
        .iter()
        .find(|name| params.count(name.as_bytes()) > 1)
    {
        return Response::error(
            400,
            form,
            format!("The web server sent {name} more than once; its configuration sets it twice."),
        );
    }
    let env = |name: &str| {
        params
            .last(name.as_bytes())
            .map(|v| OsString::from_vec(v.to_vec()))
    };
    let mut req = cgi::request_from_env(&env, &mut &stdin[..]);
    // A parameter may withdraw trust (as the variable does for the CGI program), never grant it.
    let withdrawn = params.last(b"CLAMSCANNER_TRUST_REMOTE_USER") == Some(b"0");
    if !responder.trust_remote_user || withdrawn {
        req.credentials.remote_user = None;
    }
    service.handle(&req)
}

/// A `Write` that cuts what it is given into STDOUT records of one request and sends them in
/// batches; `finish` closes the stream and ends the request, in the same write as the last bytes
/// (a small answer is one `write` call).
struct StdoutRecords<'a, S: Write> {
    sink: &'a mut S,
    id: u16,
    /// Sealed records, then the open record: its header placeholder at `open`, then its content.
    buf: Vec<u8>,
    open: usize,
}

impl<'a, S: Write> StdoutRecords<'a, S> {
    fn new(sink: &'a mut S, id: u16) -> Self {
        // Small to start: most answers are one record of a few KiB, and every connection in
        // flight holds one of these; a large answer grows it to STDOUT_FLUSH + a record.
        let mut buf = Vec::with_capacity(STDOUT_START);
        buf.extend_from_slice(&[0; record::HEADER_LEN]);
        StdoutRecords {
            sink,
            id,
            buf,
            open: 0,
        }
    }

    fn open_len(&self) -> usize {
        self.buf.len() - self.open - record::HEADER_LEN
    }

    fn seal(&mut self) {
        let len = self.open_len();
        let header = record::header_bytes(record::STDOUT, self.id, len);
        self.buf[self.open..self.open + record::HEADER_LEN].copy_from_slice(&header);
        let padded = self.buf.len() + usize::from(record::padding_for(len));
        self.buf.resize(padded, 0);
    }

    fn finish(mut self) -> io::Result<()> {
        if self.open_len() > 0 {
            self.seal();
        } else {
            self.buf.truncate(self.open);
        }
        record::encode_record(&mut self.buf, record::STDOUT, self.id, b"");
        record::encode_end_request(&mut self.buf, self.id, 0, ProtocolStatus::RequestComplete);
        self.sink.write_all(&self.buf)?;
        self.sink.flush()
    }
}

impl<S: Write> Write for StdoutRecords<'_, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(STDOUT_RECORD - self.open_len());
        self.buf.extend_from_slice(&data[..n]);
        if self.open_len() == STDOUT_RECORD {
            self.seal();
            if self.buf.len() >= STDOUT_FLUSH {
                self.sink.write_all(&self.buf)?;
                self.buf.clear();
            }
            self.open = self.buf.len();
            self.buf.extend_from_slice(&[0; record::HEADER_LEN]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records `StdoutRecords` produced for `pieces`, re-read with the record parser.
    fn records_for(pieces: &[&[u8]]) -> Vec<(u8, u16, Vec<u8>)> {
        let mut sink = Vec::new();
        let mut out = StdoutRecords::new(&mut sink, 7);
        for piece in pieces {
            assert!(out.write_all(piece).is_ok());
        }
        assert!(out.finish().is_ok());
        let mut found = Vec::new();
        let mut rest = &sink[..];
        while let Ok(Some(frame)) = record::split(rest) {
            assert_eq!(frame.len % 8, 0, "every record is padded to 8 bytes");
            found.push((
                frame.header.kind,
                frame.header.request_id,
                rest[frame.content.clone()].to_vec(),
            ));
            rest = &rest[frame.len..];
        }
        assert!(rest.is_empty());
        found
    }

    fn responder() -> Responder {
        let settings = crate::config::Settings {
            htpasswd: None,
            tokens: None,
            homes: crate::account::Homes::Root("/nonexistent-clamscanner-test".into()),
            envelope: Form::Wrapped,
        };
        let mut flat = settings.clone();
        flat.envelope = Form::Flat;
        Responder {
            service: Service::new(settings, crate::handler::FrontEnd::FastCgi),
            other_form: Service::new(flat, crate::handler::FrontEnd::FastCgi),
            trust_remote_user: true,
            max_conns: 5,
        }
    }

    fn params(rid: u16, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut stream = Vec::new();
        for (n, v) in pairs {
            record::encode_pair(&mut stream, n.as_bytes(), v.as_bytes());
        }
        let mut out = Vec::new();
        record::encode_record(&mut out, record::PARAMS, rid, &stream);
        record::encode_record(&mut out, record::PARAMS, rid, b"");
        record::encode_record(&mut out, record::STDIN, rid, b"");
        out
    }

    /// Every record of `bytes`, as (type, id, content).
    fn split_all(mut bytes: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
        let mut found = Vec::new();
        while let Ok(Some(frame)) = record::split(bytes) {
            let content = bytes[frame.content.clone()].to_vec();
            found.push((frame.header.kind, frame.header.request_id, content));
            bytes = &bytes[frame.len..];
        }
        found
    }

    #[test]
    fn one_connection_end_to_end() {
        let mut input = Vec::new();
        let mut query = Vec::new();
        record::encode_pair(&mut query, b"FCGI_MPXS_CONNS", b"");
        record::encode_pair(&mut query, b"FCGI_MAX_CONNS", b"");
        record::encode_record(&mut input, record::GET_VALUES, 0, &query);
        record::encode_record(&mut input, 42, 0, b"");
        record::encode_record(
            &mut input,
            record::BEGIN_REQUEST,
            1,
            &[0, 2, 1, 0, 0, 0, 0, 0],
        );
        record::encode_record(
            &mut input,
            record::BEGIN_REQUEST,
            1,
            &[0, 1, 1, 0, 0, 0, 0, 0],
        );
        record::encode_record(
            &mut input,
            record::BEGIN_REQUEST,
            2,
            &[0, 1, 1, 0, 0, 0, 0, 0],
        );
        input.extend(params(2, &[("REMOTE_USER", "x")]));
        input.extend(params(
            1,
            &[("REMOTE_USER", "alice"), ("REMOTE_USER", "root")],
        ));
        input.extend_from_slice(&[7, 1, 0, 1, 0, 0, 0, 0]);
        let (mut ours, mut theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => panic!("socketpair: {e}"),
        };
        let peer = std::thread::spawn(move || {
            let ok = theirs.write_all(&input).is_ok()
                && theirs.shutdown(std::net::Shutdown::Write).is_ok();
            let mut answer = Vec::new();
            let _ = theirs.read_to_end(&mut answer);
            (ok, answer)
        });
        let outcome = serve(&mut ours, &responder());
        drop(ours);
        let (sent, answer) = peer.join().unwrap_or_default();
        assert!(sent);
        assert!(matches!(
            outcome,
            Err(ConnError::Record(RecordError::BadVersion(7)))
        ));
        let records = split_all(&answer);
        let kinds: Vec<(u8, u16)> = records.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            kinds,
            [
                (record::GET_VALUES_RESULT, 0),
                (record::UNKNOWN_TYPE, 0),
                (record::END_REQUEST, 1),
                (record::END_REQUEST, 2),
                (record::STDOUT, 1),
                (record::STDOUT, 1),
                (record::END_REQUEST, 1),
            ]
        );
        let mut values = Vec::new();
        record::encode_pair(&mut values, b"FCGI_MPXS_CONNS", b"0");
        record::encode_pair(&mut values, b"FCGI_MAX_CONNS", b"5");
        assert_eq!(records[0].2, values);
        assert_eq!(records[1].2[0], 42);
        assert_eq!(records[2].2[4], ProtocolStatus::UnknownRole as u8);
        assert_eq!(records[3].2[4], ProtocolStatus::CantMpxConn as u8);
        let text = String::from_utf8_lossy(&records[4].2);
        assert!(text.starts_with("Status: 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("REMOTE_USER more than once"), "{text}");
        assert!(records[5].2.is_empty(), "the STDOUT stream is closed");
    }

    #[test]
    fn answers_are_cut_into_records_and_always_ended() {
        let empty = records_for(&[]);
        assert_eq!(empty.len(), 2, "empty STDOUT, END_REQUEST");
        assert_eq!((empty[0].0, empty[0].2.len()), (record::STDOUT, 0));
        assert_eq!((empty[1].0, empty[1].1), (record::END_REQUEST, 7));

        let big = vec![b'x'; 3 * STDOUT_RECORD + 5];
        let found = records_for(&[b"Status: 200\r\n\r\n", &big]);
        let data: Vec<u8> = found
            .iter()
            .filter(|r| r.0 == record::STDOUT)
            .flat_map(|r| r.2.clone())
            .collect();
        assert_eq!(data.len(), 15 + big.len());
        assert!(found.iter().all(|r| r.2.len() <= STDOUT_RECORD));
        assert_eq!(
            found.len(),
            4 + 2,
            "four data records, the empty one, END_REQUEST"
        );
    }
}
