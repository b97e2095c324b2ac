//! The one request type every front end builds, and the hand-written query/form parsing.
//!
//! Front ends (CGI, listener, command line) only translate their world into a [`Request`]; all
//! decisions (routing, limits, authentication, parameters) are made by `handler` from it. The
//! body is read by the front end, bounded by [`MAX_BODY`], because only it knows how to read.

/// Longest query string served; longer ones get 414 (SPEC §1). The handler's 414 message states
/// it in KiB, so it stays a whole number of KiB.
pub const MAX_QUERY: usize = 8 * 1024;
/// Largest form body read; larger ones get 413 (SPEC §1). Every front end reads at most one byte
/// more (`read_bounded`, FastCGI's STDIN), and the handler's 413 message states it in KiB, so it
/// stays a whole number of KiB. The vendored tiny_http mirrors it as `DRAIN_LIMIT` (a body it
/// would accept is drained to keep the connection; a larger one ends it), which it cannot import:
/// `tests::the_listener_drains_what_the_handler_accepts` keeps the two equal.
pub const MAX_BODY: usize = 64 * 1024;
const _: () = assert!(MAX_QUERY.is_multiple_of(1024) && MAX_BODY.is_multiple_of(1024));

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other(String),
}

impl Method {
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other(name) => name,
        }
    }
}

/// What the front end found of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body was read: not a POST, or a POST with nothing in it.
    None,
    Bytes(Vec<u8>),
    /// Larger than [`MAX_BODY`]; its bytes were not kept.
    TooLarge,
    /// The body could not be read as declared (a bad `CONTENT_LENGTH`, a read error).
    Unreadable(String),
}

/// Who the web server says the user is, or what the client claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// CGI only: `REMOTE_USER`, set by a web server that already authenticated the user.
    pub remote_user: Option<Vec<u8>>,
    /// The raw `Authorization` header value.
    pub authorization: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, without the query. For CGI, `PATH_INFO` (already decoded by the web server).
    pub path: Vec<u8>,
    /// The raw query string, still percent-encoded.
    pub query: Vec<u8>,
    pub content_type: Option<Vec<u8>>,
    pub body: Body,
    pub credentials: Credentials,
}

impl Request {
    /// A GET of `path` with `query` and nothing else: the common case in tests.
    pub fn get(path: &str, query: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.as_bytes().to_vec(),
            query: query.as_bytes().to_vec(),
            content_type: None,
            body: Body::None,
            credentials: Credentials::default(),
        }
    }
}

/// Reads at most `MAX_BODY + 1` bytes, enough to tell a body that fits from one that does not.
pub fn read_bounded(reader: &mut dyn std::io::Read, declared: Option<u64>) -> Body {
    use std::io::Read;
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Body::TooLarge;
    }
    let limit = declared.unwrap_or(MAX_BODY as u64 + 1);
    let mut bytes = Vec::new();
    match reader.take(limit).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() > MAX_BODY => Body::TooLarge,
        Ok(_) if declared.is_some_and(|n| n != bytes.len() as u64) => {
            Body::Unreadable("the body is shorter than its declared length".into())
        }
        Ok(_) if bytes.is_empty() => Body::None,
        Ok(_) => Body::Bytes(bytes),
        Err(e) => Body::Unreadable(format!("the body could not be read: {e}")),
    }
}

/// One `name=value` pair as it appeared, still encoded.
pub struct RawPair<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Splits `a=1&b=2` on `&`, then at the first `=`; empty segments are skipped.
pub fn pairs(input: &[u8]) -> impl Iterator<Item = RawPair<'_>> {
    input
        .split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.iter().position(|&b| b == b'=') {
            Some(eq) => RawPair {
                name: &segment[..eq],
                value: &segment[eq + 1..],
            },
            None => RawPair {
                name: segment,
                value: b"",
            },
        })
}

/// Form decoding: `+` is a space, then `%XX`. None when an escape is malformed.
pub fn form_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(*raw.get(i + 1)?)?;
                let lo = hex_value(*raw.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// True for `application/x-www-form-urlencoded`, whatever its case and parameters.
pub fn is_form_type(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    media
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(input: &str) -> Vec<(String, Option<String>)> {
        pairs(input.as_bytes())
            .map(|p| {
                (
                    String::from_utf8_lossy(&form_decode(p.name).unwrap_or_default()).into_owned(),
                    form_decode(p.value).map(|v| String::from_utf8_lossy(&v).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn splits_and_decodes_like_a_form() {
        assert_eq!(
            decoded("a=1&&b=x+y%20z&c&d=%2B1&e=a=b"),
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("x y z".into())),
                ("c".into(), Some("".into())),
                ("d".into(), Some("+1".into())),
                ("e".into(), Some("a=b".into())),
            ]
        );
        assert_eq!(form_decode(b"%zz"), None);
        assert_eq!(form_decode(b"%4"), None);
        assert_eq!(form_decode(b"%"), None);
        assert_eq!(form_decode(b"%00%ff"), Some(vec![0, 255]));
    }

    #[test]
    fn form_type_ignores_case_and_parameters() {
        assert!(is_form_type(b"application/x-www-form-urlencoded"));
        assert!(is_form_type(
            b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!is_form_type(b"application/json"));
        assert!(!is_form_type(b"multipart/form-data; boundary=x"));
    }

    /// The vendored tiny_http cannot import `MAX_BODY`; its `DRAIN_LIMIT` repeats it.
    #[test]
    fn the_listener_drains_what_the_handler_accepts() {
        assert_eq!(tiny_http::DRAIN_LIMIT, MAX_BODY);
    }

    #[test]
    fn bounded_body_reading() {
        let big = vec![b'a'; MAX_BODY + 10];
        assert_eq!(read_bounded(&mut &big[..], None), Body::TooLarge);
        assert_eq!(read_bounded(&mut &big[..], Some(1 << 40)), Body::TooLarge);
        assert_eq!(
            read_bounded(&mut &b"last_id=2"[..], Some(9)),
            Body::Bytes(b"last_id=2".to_vec())
        );
        assert_eq!(read_bounded(&mut &b""[..], Some(0)), Body::None);
        assert!(matches!(
            read_bounded(&mut &b"ab"[..], Some(5)),
            Body::Unreadable(_)
        ));
    }
}
