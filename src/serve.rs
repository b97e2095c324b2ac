//! The listener: tiny_http -> [`Request`]; [`Response`] -> socket. Connections, limits, access log.
//!
//! A loopback debugging tool, not an Internet server (README "Security"). Each connection is
//! served on its own thread, one request at a time, by the vendored tiny_http's
//! `serve_connections`: a client that pipelines, stops reading or trickles bytes holds only its
//! own connection, and the connection cap bounds the threads. Request heads are bounded, silent
//! sockets time out, a panicking handler costs one 500, and every request (tiny_http's own
//! refusals included) leaves one access-log line on stderr, without credentials.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Cursor, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::auth::StoreError;
use crate::config::{self, Flags, NotText};
use crate::envelope::{Form, CHUNK};
use crate::handler::{self, FrontEnd, Identity, Service};
use crate::request::{self, Body, Credentials, Method, Request};
use crate::response::{BodyReader, Response};

/// Connections served at once unless `--max-connections` says otherwise; one more gets 503.
const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The largest `--max-connections` accepted (each connection may hold a thread).
const MAX_MAX_CONNECTIONS: usize = 65_536;
/// Descriptors kept free for the handlers (an answer holds up to three files open) and the
/// process itself: a connection that would leave fewer is answered 503 and closed.
const DESCRIPTOR_RESERVE: u64 = 64;
/// Descriptors in use when the listening socket was opened (its number plus one: descriptors
/// are allocated lowest first); what is left under the limit is for connections and handlers.
static DESCRIPTORS_AT_START: OnceLock<u64> = OnceLock::new();
/// The longest one read or write on a client socket may block before the connection is
/// closed: what a silent client, or one that stopped reading, costs its connection.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds on a request's head (tiny_http refuses more: 414 for the line, 431 for the fields).
/// The request line leaves room for the handler's own 414 on queries over `MAX_QUERY`. These
/// are the listener's own facts: `MAX_HEADER_BYTES` is 64 KiB like the body limit
/// (`request::MAX_BODY`), but a head is not a body, and either may change alone. The vendored
/// tiny_http's `HeadLimits::default()` mirrors them (tested below).
const MAX_REQUEST_LINE: usize = 16 * 1024;
const MAX_HEADER_LINE: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADER_LINES: usize = 100;
/// Answers up to this size are rendered before their headers, so that they carry a
/// Content-Length (and an HTTP/1.0 keep-alive connection survives them); longer ones stream,
/// chunked to HTTP/1.1 clients, ended by the connection's close to HTTP/1.0 ones.
const KNOWN_LENGTH_UP_TO: usize = CHUNK;

const USAGE: &str = "\
usage: clamscanner serve [--listen ADDR] (--htpasswd FILE | --tokens FILE)...
                         [--home-root DIR] [--envelope wrapped|flat] [--max-connections N]
                         [--allow-remote]

Serves ClamScanner::check_disinfection_status over HTTP for local debugging.
  --listen ADDR          address to bind (default 127.0.0.1:2082; port 0 picks a free port)
  --htpasswd FILE        Basic credentials: an htpasswd file of bcrypt entries (htpasswd -B)
  --tokens FILE          API tokens for `Authorization: cpanel USER:TOKEN`, same format
  --home-root DIR        homes are DIR/USER instead of the system account database
  --envelope FORM        wrapped (default, as `uapi` prints) or flat (the result object alone)
  --max-connections N    connections served at once, each on its own thread (default 512);
                         one more is answered 503 and closed
  --allow-remote         bind to a non-loopback address (read the warning it prints)
  --workers N            ignored (deprecated): every connection has its own thread
Environment: CLAMSCANNER_HTPASSWD, CLAMSCANNER_TOKENS, CLAMSCANNER_HOME_ROOT, CLAMSCANNER_ENVELOPE.";

struct Options {
    listen: String,
    max_connections: usize,
    allow_remote: bool,
    /// `--workers` was given: accepted for old command lines, and ignored with a warning.
    workers_ignored: bool,
}

/// `clamscanner serve ARGS`: returns only after `--help` or `--version`, or to say why it
/// could not start or had to stop (main turns that into the exit code).
pub fn main(args: Vec<OsString>) -> Result<(), ServeError> {
    match parse(args)? {
        Parsed::Run(service, options) => match run(*service, options)? {},
        Parsed::Help => println!("{USAGE}"),
        Parsed::Version => println!("{}", crate::VERSION_LINE),
    }
    Ok(())
}

enum Parsed {
    Run(Box<Service>, Options),
    Help,
    Version,
}

/// Why the listener did not start (exit 2) or stopped (exit 1).
#[derive(Debug)]
pub enum ServeError {
    /// A bad flag or value.
    Usage(String),
    NotText(NotText),
    /// A bad `CLAMSCANNER_*` variable.
    Config(crate::config::ConfigError),
    /// A credential file could not be read at start.
    Credentials(StoreError),
    /// It refused to start: an address it cannot use or must not listen on.
    Start(String),
    /// The listening socket failed once it was serving.
    Listener(io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Usage(problem) | ServeError::Start(problem) => f.write_str(problem),
            ServeError::NotText(e) => write!(f, "{e}"),
            ServeError::Config(problem) => write!(f, "{problem}"),
            ServeError::Credentials(e) => write!(f, "{e}"),
            ServeError::Listener(e) => write!(f, "the listening socket failed: {e}"),
        }
    }
}

impl From<NotText> for ServeError {
    fn from(e: NotText) -> Self {
        ServeError::NotText(e)
    }
}

fn parse(args: Vec<OsString>) -> Result<Parsed, ServeError> {
    let usage = ServeError::Usage;
    let mut settings = config::from_env(&config::process_env).map_err(ServeError::Config)?;
    let mut options = Options {
        listen: "127.0.0.1:2082".into(),
        max_connections: DEFAULT_MAX_CONNECTIONS,
        allow_remote: false,
        workers_ignored: false,
    };
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        let mut value = || flags.value(&name, inline.clone()).map_err(usage);
        match name.as_str() {
            "help" | "h" => return Ok(Parsed::Help),
            "version" | "V" => return Ok(Parsed::Version),
            "allow-remote" => options.allow_remote = true,
            "listen" => options.listen = config::text(value()?, "--listen")?,
            shared if config::SETTINGS_FLAGS.contains(&shared) => {
                config::apply_settings_flag(&mut settings, shared, value()?).map_err(usage)?
            }
            "max-connections" => {
                let given = config::text(value()?, "--max-connections")?;
                options.max_connections = given
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_MAX_CONNECTIONS).contains(n))
                    .ok_or_else(|| {
                        usage(format!("--max-connections must be a number from 1 to {MAX_MAX_CONNECTIONS}, not {given:?}"))
                    })?;
            }
            "workers" => {
                value()?;
                options.workers_ignored = true;
            }
            other => return Err(usage(format!("unknown option --{other} (see --help)"))),
        }
    }
    if let Some(extra) = flags.positional.first() {
        return Err(usage(format!("unexpected argument {extra:?} (see --help)")));
    }
    if settings.htpasswd.is_none() && settings.tokens.is_none() {
        return Err(usage(
            "give --htpasswd FILE or --tokens FILE: the listener always authenticates".into(),
        ));
    }
    let service = Service::new(settings, FrontEnd::Listener);
    service
        .authenticator()
        .preload()
        .map_err(ServeError::Credentials)?;
    Ok(Parsed::Run(Box::new(service), options))
}

/// Serves until killed: it returns only to say why it could not start or had to stop.
fn run(service: Service, options: Options) -> Result<Infallible, ServeError> {
    let start = ServeError::Start;
    let addr: SocketAddr = options
        .listen
        .to_socket_addrs()
        .map_err(|e| start(format!("--listen {}: {e}", options.listen)))?
        .next()
        .ok_or_else(|| start(format!("--listen {}: no address", options.listen)))?;
    if !addr.ip().is_loopback() {
        if !options.allow_remote {
            return Err(start(format!(
                "refusing to listen on {addr}, which is not a loopback address; this listener is for local debugging (see --allow-remote)"
            )));
        }
        eprintln!(
            "clamscanner serve: WARNING: listening on {addr}, reachable from other machines. Plain HTTP carries Basic passwords and tokens in clear, and this tiny_http listener is a debugging tool: its limits (connection cap, head sizes, timeouts) keep one client from blocking the others, not from filling the cap. Put a TLS proxy in front, or use the CGI program under Apache."
        );
    }
    if options.workers_ignored {
        eprintln!(
            "clamscanner serve: --workers is ignored: every connection is served on its own thread (see --max-connections)"
        );
    }
    let listener =
        TcpListener::bind(addr).map_err(|e| start(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    DESCRIPTORS_AT_START
        .get_or_init(|| listener.as_raw_fd().try_into().map_or(0, |fd: u64| fd + 1));
    if let Some(budget) = descriptor_budget().filter(|&b| b < options.max_connections) {
        eprintln!(
            "clamscanner serve: the descriptor limit (ulimit -n) leaves room for {budget} connections; beyond that, new ones are answered 503"
        );
    }
    eprintln!(
        "clamscanner serve: listening on http://{bound} (at most {} connections)",
        options.max_connections
    );
    let limits = tiny_http::Limits {
        max_connections: options.max_connections,
        descriptor_budget: Some(descriptor_budget),
        socket_timeout: SOCKET_TIMEOUT,
        head: tiny_http::HeadLimits {
            request_line: MAX_REQUEST_LINE,
            header_line: MAX_HEADER_LINE,
            header_bytes: MAX_HEADER_BYTES,
            header_lines: MAX_HEADER_LINES,
        },
    };
    let form = service.settings.envelope;
    let service = Arc::new(service);
    Err(ServeError::Listener(serve_on(
        listener,
        limits,
        form,
        move |req| service.handle_with_identity(req),
    )))
}

/// How many connections the descriptor limit (read anew each time) leaves room for, with
/// [`DESCRIPTOR_RESERVE`] kept free.
fn descriptor_budget() -> Option<usize> {
    let limit = crate::sys::descriptor_limit()?;
    let used = DESCRIPTORS_AT_START.get()? + DESCRIPTOR_RESERVE;
    usize::try_from(limit.saturating_sub(used)).ok()
}

/// Serves `handle` on `listener` until the listening socket fails. Generic over the handler so
/// that tests can serve one that panics.
fn serve_on<H>(listener: TcpListener, limits: tiny_http::Limits, form: Form, handle: H) -> io::Error
where
    H: Fn(&Request) -> (Response, Option<Identity>) + Send + Sync + 'static,
{
    tiny_http::serve_connections(listener, limits, move |incoming| match incoming {
        tiny_http::Incoming::Request(rq) => serve_one(&handle, form, rq),
        tiny_http::Incoming::Refused(refusal) => log_refusal(&refusal),
    })
}

fn serve_one<H>(handle: &H, form: Form, mut rq: tiny_http::Request)
where
    H: Fn(&Request) -> (Response, Option<Identity>),
{
    let started = Instant::now();
    let peer = rq
        .remote_addr()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let request_line = printable(&format!(
        "{} {} HTTP/{}",
        rq.method(),
        rq.url(),
        rq.http_version()
    ));
    let req = request_from_tiny(&mut rq);
    // A panic in the handler, or while the first part of the body is rendered, costs a 500;
    // later, the body reader turns it into a truncated answer (see GuardedBody).
    let answered = panic::catch_unwind(AssertUnwindSafe(|| {
        let (mut answer, who) = handle(&req);
        let start = render_start(&mut answer);
        (answer, who, start)
    }));
    let (response, who, (start, complete)) = answered.unwrap_or_else(|_| {
        eprintln!("clamscanner serve: a request handler panicked; answered 500");
        let mut answer = handler::server_error(form);
        let start = render_start(&mut answer);
        (answer, None, start)
    });
    let (status, user, auth) = (
        response.status,
        who.as_ref().map(|w| w.user.clone()),
        who.as_ref().map(Identity::auth),
    );
    let headers: Vec<tiny_http::Header> = response
        .headers()
        .into_iter()
        .filter_map(|(name, value)| tiny_http::Header::from_bytes(name, value).ok())
        .collect();
    let length = complete.then_some(start.len());
    let sent = Arc::new(AtomicU64::new(0));
    let body = GuardedBody {
        inner: Cursor::new(start).chain(response.into_reader()),
        sent: sent.clone(),
    };
    let outcome = rq.respond(tiny_http::Response::new(
        tiny_http::StatusCode(status),
        headers,
        body,
        length,
        None,
    ));
    let note = match outcome {
        Ok(()) => String::new(),
        Err(e) => format!(" error=\"{}\"", printable(&e.to_string())),
    };
    eprintln!(
        "{peer} {} \"{request_line}\" {status} {} {}ms auth={}{note}",
        user.as_deref().unwrap_or("-"),
        sent.load(Ordering::Relaxed),
        started.elapsed().as_millis(),
        auth.unwrap_or("-"),
    );
}

/// The first [`KNOWN_LENGTH_UP_TO`] bytes of the body, and whether that is all of it.
fn render_start(response: &mut Response) -> (Vec<u8>, bool) {
    let mut start = Vec::new();
    while start.len() < KNOWN_LENGTH_UP_TO {
        if !response.fill(&mut start) {
            return (start, true);
        }
    }
    (start, false)
}

/// The access-log line of a request that tiny_http refused itself (the same fields; no user,
/// no body bytes, and `-` for a request line that was not read whole).
fn log_refusal(refusal: &tiny_http::Refusal) {
    let peer = refusal
        .remote_addr
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let line = refusal
        .request_line
        .as_deref()
        .map_or_else(|| "-".to_string(), printable);
    eprintln!(
        "{peer} - \"{line}\" {} 0 {}ms auth=-",
        refusal.status,
        refusal.elapsed.as_millis()
    );
}

/// The body reader, counting bytes and turning a panic while producing them into an I/O error
/// (the connection is then closed mid-body, which the client sees as a truncated answer).
struct GuardedBody {
    inner: io::Chain<Cursor<Vec<u8>>, BodyReader>,
    sent: Arc<AtomicU64>,
}

impl Read for GuardedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = panic::catch_unwind(AssertUnwindSafe(|| self.inner.read(buf)))
            .unwrap_or_else(|_| Err(io::Error::other("internal error while writing the answer")))?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The listener's side of [`Request`]: the path is percent-decoded as a web server would
/// before setting `PATH_INFO`, and only a POST body is read (bounded).
fn request_from_tiny(rq: &mut tiny_http::Request) -> Request {
    let url = rq.url().as_bytes();
    let (path, query) = match url.iter().position(|&b| b == b'?') {
        Some(q) => (&url[..q], &url[q + 1..]),
        None => (url, &b""[..]),
    };
    let path = percent_decode_path(path).unwrap_or_else(|| path.to_vec());
    let query = query.to_vec();
    let header = |name: &'static str| {
        rq.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().as_bytes().to_vec())
    };
    let authorization = header("Authorization");
    let content_type = header("Content-Type").filter(|v| !v.is_empty());
    let method = Method::parse(rq.method().as_str());
    let body = if method == Method::Post {
        let declared = rq.body_length().map(|n| n as u64);
        request::read_bounded(rq.as_reader(), declared)
    } else {
        Body::None
    };
    Request {
        method,
        path,
        query,
        content_type,
        body,
        credentials: Credentials {
            remote_user: None,
            authorization,
        },
    }
}

/// `%XX` decoding only (`+` stays `+` in a path); None when an escape is malformed.
fn percent_decode_path(raw: &[u8]) -> Option<Vec<u8>> {
    if !raw.contains(&b'%') {
        return Some(raw.to_vec());
    }
    let protected: Vec<u8> = raw
        .iter()
        .flat_map(|&b| if b == b'+' { b"%2B".to_vec() } else { vec![b] })
        .collect();
    request::form_decode(&protected)
}

/// Control characters and quotes escaped, so a request line cannot forge access-log lines.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => format!("\\x{:02x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpStream;

    fn limits() -> tiny_http::Limits {
        tiny_http::Limits {
            max_connections: 8,
            descriptor_budget: None,
            socket_timeout: Duration::from_secs(10),
            head: tiny_http::HeadLimits::default(),
        }
    }

    /// Sends `requests` on one connection, half-closes, and returns everything answered.
    fn exchange(addr: SocketAddr, requests: &str) -> String {
        let mut sock = TcpStream::connect(addr).expect("connect to the test listener");
        sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
        sock.write_all(requests.as_bytes()).expect("send");
        sock.shutdown(std::net::Shutdown::Write).ok();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).ok();
        answer
    }

    #[test]
    fn a_panicking_handler_costs_one_500_and_the_listener_keeps_serving() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            serve_on(listener, limits(), Form::Wrapped, |req: &Request| {
                if req.path == b"/panic" {
                    panic!("a handler bug (test)");
                }
                (Response::error(200, Form::Wrapped, "fine"), None)
            })
        });
        let get = |path: &str, last: bool| {
            let close = if last { "Connection: close\r\n" } else { "" };
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n")
        };
        for _ in 0..5 {
            let answer = exchange(addr, &get("/panic", true));
            assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
            assert!(
                answer.contains(r#""status":0"#),
                "a JSON envelope: {answer}"
            );
        }
        // On one connection: the panic's 500, then the next request is still answered.
        let answer = exchange(addr, &(get("/panic", false) + &get("/ok", true)));
        assert_eq!(answer.matches("HTTP/1.1 500 ").count(), 1, "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 200 ").count(), 1, "{answer}");
        let answer = exchange(addr, &get("/ok", true));
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }

    /// The vendored tiny_http cannot import these constants; its defaults repeat them.
    #[test]
    fn the_vendored_head_limits_are_the_listeners() {
        let vendored = tiny_http::HeadLimits::default();
        assert_eq!(
            (
                vendored.request_line,
                vendored.header_line,
                vendored.header_bytes,
                vendored.header_lines
            ),
            (
                MAX_REQUEST_LINE,
                MAX_HEADER_LINE,
                MAX_HEADER_BYTES,
                MAX_HEADER_LINES
            )
        );
    }

    #[test]
    fn paths_and_log_lines() {
        assert_eq!(percent_decode_path(b"/a%5Fb+c"), Some(b"/a_b+c".to_vec()));
        assert_eq!(percent_decode_path(b"/a%zz"), None);
        assert_eq!(printable("GET /\"x\"\n"), "GET /\\\"x\\\"\\x0a");
    }
}
