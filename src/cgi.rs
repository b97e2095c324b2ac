//! CGI front end (RFC 3875): environment -> [`Request`]; [`Response`] -> stdout.
//!
//! As in Go's net/http/cgi, the request is built by one pure function from the environment (and
//! stdin for a POST body), so it is tested with plain maps. argv is never read: Apache turns a
//! query without `=` into arguments (the ISINDEX rule), which must not become flags.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use crate::config;
use crate::envelope::Form;
use crate::handler::{self, FrontEnd, Service};
use crate::request::{self, Body, Credentials, Method, Request};
use crate::response::{self, Response};

pub fn main() -> ExitCode {
    let response = match config::from_env(&config::process_env) {
        Ok(settings) => {
            let service = Service::new(settings, FrontEnd::Cgi);
            let mut req = request_from_env(&config::process_env, &mut io::stdin().lock());
            // CLAMSCANNER_TRUST_REMOTE_USER=0: the web server checks no password (nginx +
            // fcgiwrap fills REMOTE_USER from any Basic header), so the program must.
            match config::trust_remote_user(&config::process_env) {
                Ok(trust) => {
                    if trust == Some(false) {
                        req.credentials.remote_user = None;
                    }
                    service.handle(&req)
                }
                Err(problem) => {
                    eprintln!("clamscanner: {problem}");
                    handler::server_error(service.settings.envelope)
                }
            }
        }
        Err(problem) => {
            eprintln!("clamscanner: {problem}");
            handler::server_error(Form::Wrapped)
        }
    };
    let head_only = std::env::var_os("REQUEST_METHOD").is_some_and(|m| m == "HEAD");
    // Straight to the descriptor: std's stdout is line-buffered, which would search every
    // 64 KiB chunk of a large answer for newlines.
    let stdout: Box<dyn Write> = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(io::stdout().lock()),
    };
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout);
    // A client that went away (EPIPE) is not our failure: Apache already logged it.
    let _ = write_response(&mut out, response, head_only).and_then(|_| out.flush());
    ExitCode::SUCCESS
}

/// Builds the request from CGI meta-variables. Only a POST body is read, at most
/// `CONTENT_LENGTH` bytes, or to the end of stdin (at most 64 KiB + 1) when the web server
/// de-chunked the body and set no length.
pub fn request_from_env(env: &dyn Fn(&str) -> Option<OsString>, stdin: &mut dyn Read) -> Request {
    let bytes = |name: &str| env(name).map(OsString::into_vec);
    // A method that is not text is still a method (one we do not allow), never a GET.
    let method = match bytes("REQUEST_METHOD") {
        Some(name) => Method::parse(&String::from_utf8_lossy(&name)),
        None => Method::Get,
    };
    let body = if method == Method::Post {
        match env("CONTENT_LENGTH").filter(|v| !v.is_empty()) {
            None => request::read_bounded(stdin, None),
            Some(value) => match value.to_str().and_then(parse_length) {
                Some(length) => request::read_bounded(stdin, Some(length)),
                None => Body::Unreadable("CONTENT_LENGTH is not a number".into()),
            },
        }
    } else {
        Body::None
    };
    Request {
        method,
        path: bytes("PATH_INFO").unwrap_or_default(),
        query: bytes("QUERY_STRING").unwrap_or_default(),
        content_type: bytes("CONTENT_TYPE").filter(|v| !v.is_empty()),
        body,
        credentials: Credentials {
            remote_user: bytes("REMOTE_USER").filter(|v| !v.is_empty()),
            authorization: bytes("HTTP_AUTHORIZATION").filter(|v| !v.is_empty()),
        },
    }
}

/// Digits only; values too large for u64 are still "too large", never an error.
fn parse_length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Headers (CRLF, `Status:` only when not 200), a blank line, then the body unless HEAD.
pub fn write_response(
    out: &mut dyn Write,
    mut response: Response,
    head_only: bool,
) -> io::Result<()> {
    let mut head = String::new();
    if response.status != 200 {
        head.push_str(&format!(
            "Status: {} {}\r\n",
            response.status,
            response::reason(response.status)
        ));
    }
    for (name, value) in response.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        response.write_body(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(vars: &[(&str, &str)], stdin: &[u8]) -> Request {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        request_from_env(&|name| map.get(name).cloned(), &mut &stdin[..])
    }

    #[test]
    fn get_ignores_stdin() {
        let req = build(
            &[
                ("REQUEST_METHOD", "GET"),
                ("QUERY_STRING", "last_id=3"),
                (
                    "PATH_INFO",
                    "/execute/ClamScanner/check_disinfection_status",
                ),
                ("REMOTE_USER", "demo"),
                ("CONTENT_LENGTH", "8"),
            ],
            b"last_id=9",
        );
        assert_eq!(req.body, Body::None);
        assert_eq!(req.query, b"last_id=3");
        assert_eq!(req.credentials.remote_user.as_deref(), Some(&b"demo"[..]));
    }

    #[test]
    fn a_method_that_is_not_text_is_not_a_get() {
        use std::os::unix::ffi::OsStringExt;
        let map =
            |name: &str| (name == "REQUEST_METHOD").then(|| OsString::from_vec(b"G\xc9T".to_vec()));
        let req = request_from_env(&map, &mut &b""[..]);
        assert!(matches!(req.method, Method::Other(_)));
    }

    #[test]
    fn post_bodies() {
        let post = |len: Option<&str>, stdin: &[u8]| {
            let mut vars = vec![("REQUEST_METHOD", "POST")];
            if let Some(len) = len {
                vars.push(("CONTENT_LENGTH", len));
            }
            build(&vars, stdin).body
        };
        assert_eq!(
            post(Some("9"), b"last_id=2trailing"),
            Body::Bytes(b"last_id=2".to_vec())
        );
        assert_eq!(post(None, b"last_id=2"), Body::Bytes(b"last_id=2".to_vec()));
        assert_eq!(post(Some("0"), b""), Body::None);
        assert_eq!(post(Some("70000"), b""), Body::TooLarge);
        assert_eq!(post(Some("99999999999999999999999"), b""), Body::TooLarge);
        assert_eq!(post(None, &vec![b'a'; 70_000]), Body::TooLarge);
        assert!(matches!(post(Some("-1"), b""), Body::Unreadable(_)));
        assert!(matches!(post(Some("12"), b"short"), Body::Unreadable(_)));
    }

    #[test]
    fn headers_and_status_line() {
        let mut out = Vec::new();
        let response = Response::error(404, Form::Flat, "nope");
        assert!(write_response(&mut out, response, true).is_ok());
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("Status: 404 Not Found\r\n"));
        assert!(text.contains("Content-Type: application/json; charset=utf-8\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
