//! FastCGI 1.0 records (specification §3, §8): framing, name-value pairs, and the records the
//! application sends. Pure functions over byte slices, so the fuzz target drives exactly the
//! code the responder uses.
//!
//! Names and values are bytes: a `QUERY_STRING` or `PATH_INFO` need not be UTF-8.

use std::fmt;
use std::ops::Range;

pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// The largest content one record can carry (`FCGI_MAX_LENGTH`).
pub const MAX_CONTENT: usize = 0xffff;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const ROLE_RESPONDER: u16 = 1;
pub const KEEP_CONN: u8 = 1;

/// `protocolStatus` of an END_REQUEST record, the values this responder sends. FCGI_OVERLOADED
/// (2) is never sent: beyond `--workers`, connections wait in the kernel's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    RequestComplete = 0,
    CantMpxConn = 1,
    UnknownRole = 3,
}

/// Why bytes are not a FastCGI record stream. Any of these ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    BadVersion(u8),
    /// A name-value pair whose lengths run past the end of its stream.
    TruncatedPair,
    /// A BEGIN_REQUEST whose body is not 8 bytes.
    BadBeginBody(usize),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::BadVersion(v) => write!(f, "a record has version {v}, not 1"),
            RecordError::TruncatedPair => {
                write!(f, "a name-value pair is longer than the stream holding it")
            }
            RecordError::BadBeginBody(n) => {
                write!(f, "a BEGIN_REQUEST body has {n} bytes, not 8")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

/// One complete record found at the start of a buffer: its header, where its content lies in
/// that buffer, and how many bytes it occupies (padding included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub content: Range<usize>,
    pub len: usize,
}

/// The first record of `buf`, `Ok(None)` when `buf` holds only part of one (read more).
/// The version is checked as soon as the first byte is there, so garbage is refused at once.
pub fn split(buf: &[u8]) -> Result<Option<Frame>, RecordError> {
    if let Some(&version) = buf.first() {
        if version != VERSION_1 {
            return Err(RecordError::BadVersion(version));
        }
    }
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let header = Header {
        kind: head[1],
        request_id: u16::from_be_bytes([head[2], head[3]]),
        content_length: u16::from_be_bytes([head[4], head[5]]),
        padding_length: head[6],
    };
    let content_end = HEADER_LEN + usize::from(header.content_length);
    let len = content_end + usize::from(header.padding_length);
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Frame {
        header,
        content: HEADER_LEN..content_end,
        len,
    }))
}

/// The role and `keep_conn` flag of a BEGIN_REQUEST body.
pub fn parse_begin(content: &[u8]) -> Result<(u16, bool), RecordError> {
    match content {
        [r1, r0, flags, _, _, _, _, _] => {
            Ok((u16::from_be_bytes([*r1, *r0]), flags & KEEP_CONN != 0))
        }
        _ => Err(RecordError::BadBeginBody(content.len())),
    }
}

/// One name-value pair, borrowed from its stream.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The name-value pairs of a whole stream (§3.4), in order, duplicates kept.
pub fn parse_pairs(mut stream: &[u8]) -> Result<Vec<Pair<'_>>, RecordError> {
    let mut pairs = Vec::new();
    while !stream.is_empty() {
        let (name_len, rest) = pair_length(stream)?;
        let (value_len, rest) = pair_length(rest)?;
        let name = rest.get(..name_len).ok_or(RecordError::TruncatedPair)?;
        let rest = &rest[name_len..];
        let value = rest.get(..value_len).ok_or(RecordError::TruncatedPair)?;
        stream = &rest[value_len..];
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One length: a byte up to 127, else four bytes big-endian with the top bit set.
fn pair_length(bytes: &[u8]) -> Result<(usize, &[u8]), RecordError> {
    match bytes {
        [b, rest @ ..] if b & 0x80 == 0 => Ok((usize::from(*b), rest)),
        [b3, b2, b1, b0, rest @ ..] => {
            let n = u32::from_be_bytes([b3 & 0x7f, *b2, *b1, *b0]);
            Ok((n as usize, rest))
        }
        _ => Err(RecordError::TruncatedPair),
    }
}

pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len <= 127 {
            out.push(len as u8);
        } else {
            let n = (len as u32).min(0x7fff_ffff) | 0x8000_0000;
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Padding that brings `content_len` to a multiple of 8, as the specification recommends.
pub fn padding_for(content_len: usize) -> u8 {
    ((8 - content_len % 8) % 8) as u8
}

/// A record header for `content_len` bytes of content (at most [`MAX_CONTENT`]).
pub fn header_bytes(kind: u8, request_id: u16, content_len: usize) -> [u8; HEADER_LEN] {
    let len = content_len.min(MAX_CONTENT) as u16;
    let id = request_id.to_be_bytes();
    let len_bytes = len.to_be_bytes();
    [
        VERSION_1,
        kind,
        id[0],
        id[1],
        len_bytes[0],
        len_bytes[1],
        padding_for(usize::from(len)),
        0,
    ]
}

/// Appends one whole record (header, content, padding); content longer than one record's
/// limit is the caller's error and is cut.
pub fn encode_record(out: &mut Vec<u8>, kind: u8, request_id: u16, content: &[u8]) {
    let content = &content[..content.len().min(MAX_CONTENT)];
    out.extend_from_slice(&header_bytes(kind, request_id, content.len()));
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding_for(content.len())), 0);
}

pub fn encode_end_request(
    out: &mut Vec<u8>,
    request_id: u16,
    app_status: u32,
    status: ProtocolStatus,
) {
    let s = app_status.to_be_bytes();
    let body = [s[0], s[1], s[2], s[3], status as u8, 0, 0, 0];
    encode_record(out, END_REQUEST, request_id, &body);
}

pub fn encode_unknown_type(out: &mut Vec<u8>, kind: u8) {
    encode_record(out, UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records_and_waits_for_the_rest() {
        let mut buf = Vec::new();
        encode_record(&mut buf, PARAMS, 1, b"abc");
        assert_eq!(buf.len(), 16, "3 bytes of content padded to 8");
        for cut in 0..buf.len() {
            assert_eq!(split(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        let frame = split(&buf).ok().flatten();
        let frame = frame.as_ref();
        assert_eq!(frame.map(|f| f.len), Some(16));
        assert_eq!(frame.map(|f| &buf[f.content.clone()]), Some(&b"abc"[..]));
        assert_eq!(frame.map(|f| f.header.kind), Some(PARAMS));
        assert_eq!(split(&[2, 1, 0]), Err(RecordError::BadVersion(2)));
        assert_eq!(split(b"GET / HTTP/1.1"), Err(RecordError::BadVersion(b'G')));
    }

    #[test]
    fn pairs_short_long_split_and_binary() {
        let mut stream = Vec::new();
        let long_value = vec![b'v'; 300];
        encode_pair(&mut stream, b"QUERY_STRING", b"a=\xff\x00");
        encode_pair(&mut stream, b"HTTP_X", &long_value);
        encode_pair(&mut stream, b"E", b"");
        let pairs = parse_pairs(&stream);
        assert_eq!(
            pairs,
            Ok(vec![
                (&b"QUERY_STRING"[..], &b"a=\xff\x00"[..]),
                (&b"HTTP_X"[..], &long_value[..]),
                (&b"E"[..], &b""[..]),
            ])
        );
        for cut in 1..stream.len() {
            if let Ok(p) = parse_pairs(&stream[..cut]) {
                assert!(p.len() < 3, "a cut stream is never whole (cut {cut})");
            }
        }
        // A length claiming 2 GiB inside a few bytes.
        assert_eq!(
            parse_pairs(&[0xff, 0xff, 0xff, 0xff, 1, b'a']),
            Err(RecordError::TruncatedPair)
        );
    }

    #[test]
    fn begin_and_end() {
        assert_eq!(parse_begin(&[0, 1, 1, 0, 0, 0, 0, 0]), Ok((1, true)));
        assert_eq!(parse_begin(&[0, 3, 0, 0, 0, 0, 0, 0]), Ok((3, false)));
        assert_eq!(parse_begin(&[0, 1]), Err(RecordError::BadBeginBody(2)));
        let mut out = Vec::new();
        encode_end_request(&mut out, 7, 0, ProtocolStatus::CantMpxConn);
        assert_eq!(out, [1, 3, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    }
}
