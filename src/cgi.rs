//! CGI front end (RFC 3875): environment -> [`Request`]; [`Response`] -> stdout.
//!
//! As in Go's net/http/cgi, the request is built by one pure function from the environment (and
//! stdin for a POST body), so it is tested with plain maps. argv is never read: Apache turns a
//! query without `=` into arguments (the ISINDEX rule), which must not become flags.
//!
//! A bug must never reach the web server as output without a header block (Apache's "Premature
//! end of script headers"): [`serve`] runs the handler it is given under a panic guard, as the
//! listener does, and the program reports each panic on one line of stderr.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::panic::{self, AssertUnwindSafe};

use crate::config;
use crate::envelope::Form;
use crate::handler::{self, FrontEnd, Service};
use crate::request::{self, Body, Credentials, Method, Request};
use crate::response::{self, Response};

/// How much of the answer is gathered before each write to stdout: one chunk.
const OUTPUT_BUFFER: usize = crate::envelope::CHUNK;

/// Answers the request in the environment; main turns how the answer ended into the exit code.
pub fn main() -> Result<(), OutputError> {
    report_panics_on_one_line();
    // A bad CLAMSCANNER_TRUST_REMOTE_USER is a broken configuration, answered like one.
    let settings = config::from_env(&config::process_env).and_then(|settings| {
        config::trust_remote_user(&config::process_env).map(|trust| (settings, trust))
    });
    let (form, service, trust) = match settings {
        Ok((settings, trust)) => (
            settings.envelope,
            Ok(Service::new(settings, FrontEnd::Cgi)),
            trust,
        ),
        Err(problem) => (Form::Wrapped, Err(problem), None),
    };
    let mut req = request_from_env(&config::process_env, &mut io::stdin().lock());
    // CLAMSCANNER_TRUST_REMOTE_USER=0: the web server checks no password (nginx + fcgiwrap
    // fills REMOTE_USER from any Basic header), so the program must.
    if trust == Some(false) {
        req.credentials.remote_user = None;
    }
    let handler = |req: &Request| match &service {
        Ok(service) => service.handle(req),
        Err(problem) => {
            eprintln!("clamscanner: {problem}");
            handler::server_error(Form::Wrapped)
        }
    };
    // Straight to the descriptor: std's stdout is line-buffered, which would search every
    // chunk of a large answer for newlines.
    let stdout: Box<dyn Write> = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(io::stdout().lock()),
    };
    let mut out = io::BufWriter::with_capacity(OUTPUT_BUFFER, stdout);
    let outcome = serve(&mut out, &req, form, &handler);
    // Flushed whatever happened: after a panic mid-body the headers and the start of the body
    // are in the buffer, and a web server that got nothing would report a header error.
    let flushed = out.flush();
    outcome.and(flushed.map_err(OutputError::Write))
}

/// Why a CGI answer did not reach its end.
#[derive(Debug)]
pub enum OutputError {
    /// stdout failed, most often because the client went away.
    Write(io::Error),
    /// A bug panicked while the body was being written: the headers had gone out, so the
    /// output just ends there (the panic's message is on stderr).
    Panicked,
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Write(e) => write!(f, "cannot write the answer: {e}"),
            OutputError::Panicked => write!(f, "the answer was cut short by an internal error"),
        }
    }
}

/// Answers one request with `handler` and writes it as CGI output, so that a bug never leaves the
/// web server without a header block ("Premature end of script headers"). As in Go's
/// `net/http/cgi`, the handler is a parameter: the program passes the core, tests pass handlers
/// that fail on purpose. A panic in `handler` becomes the JSON 500 (in `form`); a panic while
/// the body streams ends the output where it is, since the headers were already sent.
pub(crate) fn serve(
    out: &mut dyn Write,
    req: &Request,
    form: Form,
    handler: &dyn Fn(&Request) -> Response,
) -> Result<(), OutputError> {
    let response = panic::catch_unwind(AssertUnwindSafe(|| handler(req)))
        .unwrap_or_else(|_| handler::internal_error(form));
    write_response(out, response, req.method == Method::Head)
}

/// Replaces the default panic report (several lines, and a whole backtrace when RUST_BACKTRACE
/// is set in the server's environment) with one line on stderr, the web server's error log.
/// The guards in [`serve`] add nothing to it, so each panic is reported exactly once.
pub(crate) fn report_panics_on_one_line() {
    panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        eprintln!("{}", panic_line(info.location(), message));
    }));
}

fn panic_line(location: Option<&panic::Location<'_>>, message: &str) -> String {
    let at = location.map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
    let message = message.replace(['\n', '\r'], " ");
    format!("clamscanner: internal error{at}: {message}")
}

/// Builds the request from CGI meta-variables. Only a POST body is read, at most
/// `CONTENT_LENGTH` bytes, or to the end of stdin (at most `MAX_BODY` + 1) when the web server
/// de-chunked the body and set no length.
pub(crate) fn request_from_env(
    env: &dyn Fn(&str) -> Option<OsString>,
    stdin: &mut dyn Read,
) -> Request {
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
pub(crate) fn write_response(
    out: &mut dyn Write,
    mut response: Response,
    head_only: bool,
) -> Result<(), OutputError> {
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
    out.write_all(head.as_bytes()).map_err(OutputError::Write)?;
    if !head_only {
        match panic::catch_unwind(AssertUnwindSafe(|| response.write_body(out))) {
            Ok(written) => written.map(drop).map_err(OutputError::Write)?,
            Err(_) => return Err(OutputError::Panicked),
        }
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

    /// Where the header block ends, and how many there are.
    fn header_blocks(out: &[u8]) -> (usize, usize) {
        let sep = b"\r\n\r\n";
        let count = out.windows(4).filter(|w| w == sep).count();
        let end = out.windows(4).position(|w| w == sep).map_or(0, |p| p + 4);
        (end, count)
    }

    fn panicking_handler(_: &Request) -> Response {
        panic!("a bug before the answer");
    }

    /// A 200 whose body yields `first` and then panics, as a bug in the record stream would.
    fn breaks_mid_body(first: Vec<u8>) -> Response {
        let mut response = Response::error(200, Form::Wrapped, "placeholder");
        let mut first = Some(first);
        response.body = response::Body::Test(Box::new(move |out| match first.take() {
            Some(piece) => {
                out.extend_from_slice(&piece);
                true
            }
            None => panic!("a bug in the middle of the body"),
        }));
        response
    }

    #[test]
    fn a_panic_before_the_answer_is_the_json_500() {
        for form in [Form::Wrapped, Form::Flat] {
            let mut out = Vec::new();
            let req = build(&[("REQUEST_METHOD", "GET")], b"");
            assert!(serve(&mut out, &req, form, &panicking_handler).is_ok());
            let (end, blocks) = header_blocks(&out);
            assert_eq!(blocks, 1, "one header block");
            let head = String::from_utf8_lossy(&out[..end]);
            assert!(
                head.starts_with("Status: 500 Internal Server Error\r\n"),
                "{head}"
            );
            assert!(head.contains("Content-Type: application/json; charset=utf-8\r\n"));
            let body: serde_json::Value = serde_json::from_slice(&out[end..]).unwrap();
            let result = if form == Form::Wrapped {
                &body["result"]
            } else {
                &body
            };
            assert_eq!(result["status"], 0);
            assert_eq!(result["data"], serde_json::json!({}));
            let error = result["errors"][0].as_str().unwrap();
            assert!(error.contains("error log"), "{error}");
            assert!(
                !error.contains("a bug"),
                "nothing internal in the body: {error}"
            );
        }
    }

    #[test]
    fn a_panic_before_the_answer_to_head_is_a_500_without_body() {
        let mut out = Vec::new();
        let req = build(&[("REQUEST_METHOD", "HEAD")], b"");
        assert!(serve(&mut out, &req, Form::Wrapped, &panicking_handler).is_ok());
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("Status: 500 "), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(header_blocks(&out).1, 1);
    }

    #[test]
    fn a_panic_in_the_body_ends_the_output_after_what_was_written() {
        // One whole chunk goes out before the panic; what follows is never written.
        let first = vec![b'x'; crate::envelope::CHUNK];
        let mut out = Vec::new();
        let req = build(&[("REQUEST_METHOD", "GET")], b"");
        let outcome = serve(&mut out, &req, Form::Wrapped, &|_: &Request| {
            breaks_mid_body(first.clone())
        });
        assert!(matches!(outcome, Err(OutputError::Panicked)));
        let (end, blocks) = header_blocks(&out);
        assert_eq!(blocks, 1, "no second header block after the panic");
        let head = String::from_utf8_lossy(&out[..end]);
        assert!(!head.contains("Status:"), "the 200's headers: {head}");
        assert!(head.contains("Content-Type: application/json; charset=utf-8\r\n"));
        assert_eq!(&out[end..], &first[..], "the body ends where the panic was");
    }

    #[test]
    fn a_panic_in_the_body_of_head_is_never_reached() {
        let mut out = Vec::new();
        let req = build(&[("REQUEST_METHOD", "HEAD")], b"");
        let outcome = serve(&mut out, &req, Form::Wrapped, &|_: &Request| {
            breaks_mid_body(b"x".to_vec())
        });
        assert!(outcome.is_ok());
        assert!(out.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn a_panic_is_reported_on_one_line() {
        let line = panic_line(None, "first\nsecond\r\nthird");
        assert_eq!(line, "clamscanner: internal error: first second  third");
        let here = panic::Location::caller();
        let line = panic_line(Some(here), "boom");
        assert!(line.starts_with("clamscanner: internal error at src/cgi.rs:"));
        assert!(line.ends_with(": boom"));
    }

    const CHILD: &str = "CLAMSCANNER_TEST_PANIC_CHILD";

    /// The child process of the test below: installs the program's panic report, lets a handler
    /// panic where `spec` says ("head" or "body"), writes the CGI output to the file named after
    /// the colon, and exits without returning to the test harness.
    fn panic_child(spec: OsString) -> ! {
        let spec = spec.into_string().unwrap();
        let (when, path) = spec.split_once(':').unwrap();
        report_panics_on_one_line();
        let req = build(&[("REQUEST_METHOD", "GET")], b"");
        let mut out = Vec::new();
        let _ = match when {
            "head" => serve(&mut out, &req, Form::Wrapped, &panicking_handler),
            _ => serve(&mut out, &req, Form::Wrapped, &|_: &Request| {
                breaks_mid_body(vec![b'x'; crate::envelope::CHUNK])
            }),
        };
        std::fs::write(path, &out).unwrap();
        std::process::exit(0);
    }

    #[test]
    fn panics_reach_stderr_once_without_a_backtrace() {
        // The same test, run again in a child process by the loop below.
        if let Some(spec) = std::env::var_os(CHILD) {
            panic_child(spec);
        }
        let exe = std::env::current_exe().unwrap();
        for (when, message) in [
            ("head", "a bug before the answer"),
            ("body", "a bug in the middle of the body"),
        ] {
            let path = std::env::temp_dir().join(format!(
                "clamscanner-panic-child-{}-{when}",
                std::process::id()
            ));
            let child = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "cgi::tests::panics_reach_stderr_once_without_a_backtrace",
                ])
                .args(["--nocapture", "--test-threads=1"])
                .env(CHILD, format!("{when}:{}", path.display()))
                .env("RUST_BACKTRACE", "full")
                .output()
                .unwrap();
            let out = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            let stderr = String::from_utf8_lossy(&child.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{when}: one line on stderr: {stderr}");
            assert!(lines[0].starts_with("clamscanner: internal error at src/cgi.rs:"));
            assert!(lines[0].ends_with(message), "{when}: {stderr}");
            assert_eq!(header_blocks(&out).1, 1, "{when}: one header block");
            let starts_500 = out.starts_with(b"Status: 500 ");
            assert_eq!(starts_500, when == "head", "{when}");
        }
    }
}
