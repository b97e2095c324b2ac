//! The listener: tiny_http -> [`Request`]; [`Response`] -> socket. Workers, limits, access log.
//!
//! A loopback debugging tool, not an Internet server (README "Security"): tiny_http has no
//! header limits, and plain HTTP carries Basic credentials in clear. What it does guarantee:
//! no request can abort the process (the vendored tiny_http drains unread bodies through a
//! fixed buffer and times out silent sockets), a panicking handler costs one 500 and never a
//! worker, and every request leaves one access-log line on stderr, without credentials.

use std::ffi::OsString;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use crate::account::Homes;
use crate::config::{self, Flags};
use crate::handler::{self, FrontEnd, Service};
use crate::request::{self, Body, Credentials, Method, Request};
use crate::response::BodyReader;

const USAGE: &str = "\
usage: clamscanner serve [--listen ADDR] (--htpasswd FILE | --tokens FILE)...
                         [--home-root DIR] [--envelope wrapped|flat] [--workers N] [--allow-remote]

Serves ClamScanner::check_disinfection_status over HTTP for local debugging.
  --listen ADDR        address to bind (default 127.0.0.1:2082; port 0 picks a free port)
  --htpasswd FILE      Basic credentials: an htpasswd file of bcrypt entries (htpasswd -B)
  --tokens FILE        API tokens for `Authorization: cpanel USER:TOKEN`, same format
  --home-root DIR      homes are DIR/USER instead of the system account database
  --envelope FORM      wrapped (default, as `uapi` prints) or flat (the result object alone)
  --workers N          request threads (default 4)
  --allow-remote       bind to a non-loopback address (read the warning it prints)
Environment: CLAMSCANNER_HTPASSWD, CLAMSCANNER_TOKENS, CLAMSCANNER_HOME_ROOT, CLAMSCANNER_ENVELOPE.";

struct Options {
    listen: String,
    workers: usize,
    allow_remote: bool,
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let (service, options) = match parse(args) {
        Ok(Parsed::Run(service, options)) => (*service, options),
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("{}", crate::VERSION_LINE);
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("clamscanner serve: {problem}");
            return ExitCode::from(2);
        }
    };
    match run(service, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("clamscanner serve: {problem}");
            ExitCode::from(2)
        }
    }
}

enum Parsed {
    Run(Box<Service>, Options),
    Help,
    Version,
}

fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut settings = config::from_env(&config::process_env)?;
    let mut options = Options {
        listen: "127.0.0.1:2082".into(),
        workers: 4,
        allow_remote: false,
    };
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        match name.as_str() {
            "help" | "h" => return Ok(Parsed::Help),
            "version" | "V" => return Ok(Parsed::Version),
            "allow-remote" => options.allow_remote = true,
            "listen" => options.listen = text(flags.value(&name, inline)?, &name)?,
            "htpasswd" => settings.htpasswd = Some(flags.value(&name, inline)?.into()),
            "tokens" => settings.tokens = Some(flags.value(&name, inline)?.into()),
            "home-root" => settings.homes = Homes::Root(flags.value(&name, inline)?.into()),
            "envelope" => {
                let value = flags.value(&name, inline)?;
                settings.envelope = config::parse_form(&value)
                    .ok_or_else(|| format!("--envelope must be wrapped or flat, not {value:?}"))?;
            }
            "workers" => {
                let value = text(flags.value(&name, inline)?, &name)?;
                options.workers = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| {
                        format!("--workers must be a number from 1 to 256, not {value:?}")
                    })?;
            }
            other => return Err(format!("unknown option --{other} (see --help)")),
        }
    }
    if let Some(extra) = flags.positional.first() {
        return Err(format!("unexpected argument {extra:?} (see --help)"));
    }
    if settings.htpasswd.is_none() && settings.tokens.is_none() {
        return Err(
            "give --htpasswd FILE or --tokens FILE: the listener always authenticates".into(),
        );
    }
    let service = Service::new(settings, FrontEnd::Listener);
    service.authenticator().preload()?;
    Ok(Parsed::Run(Box::new(service), options))
}

fn text(value: OsString, name: &str) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("--{name}: {v:?} is not valid text"))
}

fn run(service: Service, options: Options) -> Result<(), String> {
    let addr: SocketAddr = options
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen {}: {e}", options.listen))?
        .next()
        .ok_or_else(|| format!("--listen {}: no address", options.listen))?;
    if !addr.ip().is_loopback() {
        if !options.allow_remote {
            return Err(format!(
                "refusing to listen on {addr}, which is not a loopback address; this listener is for local debugging (see --allow-remote)"
            ));
        }
        eprintln!(
            "clamscanner serve: WARNING: listening on {addr}, reachable from other machines. Plain HTTP carries Basic passwords and tokens in clear, and tiny_http has no limits on header size or connection count, so one client can exhaust threads or memory. Put a TLS proxy in front, or use the CGI program under Apache."
        );
    }
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| addr.to_string(), |a| a.to_string());
    let plural = if options.workers == 1 { "" } else { "s" };
    eprintln!(
        "clamscanner serve: listening on http://{bound} ({} worker{plural})",
        options.workers
    );
    let server = Arc::new(server);
    let service = Arc::new(service);
    let (exits, exited) = mpsc::channel::<usize>();
    for id in 0..options.workers {
        spawn_worker(id, &server, &service, &exits);
    }
    // A worker only ends by a panic that escaped every guard; keep the pool at full strength.
    for id in exited {
        eprintln!("clamscanner serve: worker {id} stopped unexpectedly; starting a new one");
        spawn_worker(id, &server, &service, &exits);
    }
    Ok(())
}

/// Tells the supervisor when its worker thread ends, however it ends.
struct ExitNotice(usize, mpsc::Sender<usize>);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

fn spawn_worker(
    id: usize,
    server: &Arc<tiny_http::Server>,
    service: &Arc<Service>,
    exits: &mpsc::Sender<usize>,
) {
    let (server, service, notice) = (
        server.clone(),
        service.clone(),
        ExitNotice(id, exits.clone()),
    );
    let spawned = thread::Builder::new()
        .name(format!("worker-{id}"))
        .spawn(move || {
            let _notice = notice;
            loop {
                match server.recv() {
                    Ok(rq) => serve_one(&service, rq),
                    Err(e) => {
                        eprintln!("clamscanner serve: the listening socket failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("clamscanner serve: cannot start worker {id}: {e}");
    }
}

fn serve_one(service: &Service, mut rq: tiny_http::Request) {
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
    let debug_panic = cfg!(debug_assertions)
        && rq
            .headers()
            .iter()
            .any(|h| h.field.equiv("X-Clamscanner-Debug-Panic"));
    let form = service.settings.envelope;
    let response = panic::catch_unwind(AssertUnwindSafe(|| {
        if debug_panic {
            panic!("debug panic requested by the X-Clamscanner-Debug-Panic header");
        }
        service.handle(&req)
    }))
    .unwrap_or_else(|_| {
        eprintln!("clamscanner serve: a request handler panicked; answered 500");
        handler::server_error(form)
    });
    let (status, user, auth) = (response.status, response.user.clone(), response.auth);
    let headers: Vec<tiny_http::Header> = response
        .headers()
        .into_iter()
        .filter_map(|(name, value)| tiny_http::Header::from_bytes(name, value).ok())
        .collect();
    let sent = Arc::new(AtomicU64::new(0));
    let body = GuardedBody {
        inner: response.into_reader(),
        sent: sent.clone(),
    };
    let outcome = rq.respond(tiny_http::Response::new(
        tiny_http::StatusCode(status),
        headers,
        body,
        None,
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

/// The body reader, counting bytes and turning a panic while producing them into an I/O error
/// (the connection is then closed mid-body, which the client sees as a truncated answer).
struct GuardedBody {
    inner: BodyReader,
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

    #[test]
    fn paths_and_log_lines() {
        assert_eq!(percent_decode_path(b"/a%5Fb+c"), Some(b"/a_b+c".to_vec()));
        assert_eq!(percent_decode_path(b"/a%zz"), None);
        assert_eq!(printable("GET /\"x\"\n"), "GET /\\\"x\\\"\\x0a");
    }
}
