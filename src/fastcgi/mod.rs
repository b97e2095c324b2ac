//! The FastCGI front end (FastCGI 1.0, Responder role), written from the specification.
//!
//! `record` frames and parses bytes (pure; fuzzed), `conn` runs one connection, and this file
//! gets the listening socket (`--listen`, descriptor 0 from a web server, or descriptor 3 from
//! systemd), decides whether `REMOTE_USER` is believed, and runs one thread per connection up
//! to `--workers`. Each request's parameters are read by `cgi::request_from_env`, the same
//! function the CGI program reads its environment with.

pub(crate) mod conn;
pub(crate) mod record;

use std::ffi::{CString, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::config::{self, Flags, NotText};
use crate::envelope::Form;
use crate::handler::{FrontEnd, Service};
use crate::sys;
use conn::Responder;

const USAGE: &str = "\
usage: clamscanner fastcgi [--listen unix:PATH|HOST:PORT] [--socket-mode MODE] [--socket-group GROUP]
                           [--workers N] [--htpasswd FILE] [--tokens FILE] [--home-root DIR]
                           [--envelope wrapped|flat] [--trust-remote-user]

Serves ClamScanner::check_disinfection_status over FastCGI (Responder role) to a web server.
  --listen ADDR         unix:PATH or HOST:PORT to bind. Without it the program serves the
                        listening socket it was given: systemd's (LISTEN_FDS, descriptor 3) or
                        the web server's on descriptor 0 (mod_fcgid, lighttpd, spawn-fcgi).
  --socket-mode MODE    mode of a unix socket, octal (default 0660: owner and group only)
  --socket-group GROUP  group of a unix socket (name or number), e.g. the web server's group
  --workers N           connections served at once, one thread each (default 64)
  --htpasswd FILE       Basic credentials: an htpasswd file of bcrypt entries (htpasswd -B)
  --tokens FILE         API tokens for `Authorization: cpanel USER:TOKEN`, same format
  --home-root DIR       homes are DIR/USER instead of the system account database
  --envelope FORM       wrapped (default, as `uapi` prints) or flat (the result object alone)
  --trust-remote-user   believe REMOTE_USER on a --listen or systemd socket (the web server
                        authenticated the user). Anyone who can connect may then claim any
                        account: keep the socket 0660 and its group the web server's.
REMOTE_USER is believed on descriptor 0 (the web server made that socket), elsewhere only with
--trust-remote-user (or CLAMSCANNER_TRUST_REMOTE_USER=1); CLAMSCANNER_TRUST_REMOTE_USER=0 never.
Without trust a request must carry Authorization, checked against --htpasswd/--tokens.
Environment: CLAMSCANNER_HTPASSWD, CLAMSCANNER_TOKENS, CLAMSCANNER_HOME_ROOT, CLAMSCANNER_ENVELOPE,
CLAMSCANNER_TRUST_REMOTE_USER.";

/// Connections served at once unless `--workers` says otherwise.
pub(crate) const DEFAULT_WORKERS: usize = 64;
/// Upper bound for `--workers` (each connection holds a thread).
pub(crate) const MAX_WORKERS: usize = 4096;
/// A connection silent this long (between or inside requests) is closed; so is a peer that
/// does not take the answer for this long.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// Pause after an accept error that is not the peer's (out of descriptors), so the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How the program was started as a FastCGI server, decided in `main` before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherited {
    /// systemd socket activation: the listening socket is descriptor 3.
    Activated,
    /// The web server's listening socket on descriptor 0 (`FCGI_LISTENSOCK_FILENO`).
    Stdin,
}

const LISTEN_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
/// First descriptor systemd passes (`SD_LISTEN_FDS_START`).
const ACTIVATED_FD: RawFd = 3;

/// Whether systemd passed sockets to this very process. The `LISTEN_*` variables are removed
/// either way when they name us, so that nothing started later mistakes them for its own.
/// Call it first thing in `main`, before any thread exists (environment changes are not
/// thread-safe).
pub fn take_activation() -> bool {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return false;
    }
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    for name in LISTEN_VARS {
        std::env::remove_var(name);
    }
    if count > 1 {
        eprintln!("clamscanner fastcgi: systemd passed {count} sockets; only the first (descriptor 3) is served");
    }
    count >= 1
}

/// The FastCGI convention for "started by a web server": descriptor 0 is a listening socket.
pub fn stdin_is_listening() -> bool {
    sys::is_listening_stream(0)
}

/// Errors of the FastCGI command (bad flags, sockets that cannot be made or used); each is
/// exit 2.
#[derive(Debug)]
pub enum FastCgiError {
    Usage(String),
    NotText(NotText),
    Config(String),
    Socket(String, io::Error),
}

impl fmt::Display for FastCgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FastCgiError::Usage(what) | FastCgiError::Config(what) => write!(f, "{what}"),
            FastCgiError::NotText(e) => write!(f, "{e}"),
            FastCgiError::Socket(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl From<NotText> for FastCgiError {
    fn from(e: NotText) -> Self {
        FastCgiError::NotText(e)
    }
}

struct Options {
    listen: Option<String>,
    socket_mode: u32,
    socket_group: Option<OsString>,
    workers: usize,
    trust_flag: bool,
}

enum Parsed {
    Run(Box<Service>, Options),
    Help,
    Version,
}

/// `clamscanner fastcgi ARGS`; `inherited` when main found a socket handed over. It returns
/// after `--help` or `--version`, or to say why it could not start; otherwise it serves until
/// killed.
pub fn main(args: Vec<OsString>, inherited: Option<Inherited>) -> Result<(), FastCgiError> {
    match parse(args)? {
        Parsed::Run(service, options) => run(*service, options, inherited),
        Parsed::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Parsed::Version => {
            println!("{}", crate::VERSION_LINE);
            Ok(())
        }
    }
}

fn parse(args: Vec<OsString>) -> Result<Parsed, FastCgiError> {
    let usage = FastCgiError::Usage;
    let mut settings =
        config::from_env(&config::process_env).map_err(|e| FastCgiError::Config(e.to_string()))?;
    let mut options = Options {
        listen: None,
        socket_mode: DEFAULT_SOCKET_MODE,
        socket_group: None,
        workers: DEFAULT_WORKERS,
        trust_flag: false,
    };
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        let mut value = || flags.value(&name, inline.clone()).map_err(usage);
        match name.as_str() {
            "help" | "h" => return Ok(Parsed::Help),
            "version" | "V" => return Ok(Parsed::Version),
            "trust-remote-user" => options.trust_flag = true,
            "listen" => options.listen = Some(config::text(value()?, "--listen")?),
            "socket-mode" => {
                let given = config::text(value()?, "--socket-mode")?;
                options.socket_mode = u32::from_str_radix(&given, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        usage(format!(
                            "--socket-mode must be octal, like 0660, not {given:?}"
                        ))
                    })?;
            }
            "socket-group" => options.socket_group = Some(value()?),
            shared if config::SETTINGS_FLAGS.contains(&shared) => {
                config::apply_settings_flag(&mut settings, shared, value()?).map_err(usage)?
            }
            "workers" => {
                let given = config::text(value()?, "--workers")?;
                options.workers = given
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_WORKERS).contains(n))
                    .ok_or_else(|| {
                        usage(format!(
                            "--workers must be a number from 1 to {MAX_WORKERS}, not {given:?}"
                        ))
                    })?;
            }
            other => return Err(usage(format!("unknown option --{other} (see --help)"))),
        }
    }
    if let Some(extra) = flags.positional.first() {
        return Err(usage(format!("unexpected argument {extra:?} (see --help)")));
    }
    let service = Service::new(settings, FrontEnd::FastCgi);
    service
        .authenticator()
        .preload()
        .map_err(|e| FastCgiError::Config(e.to_string()))?;
    Ok(Parsed::Run(Box::new(service), options))
}

/// The service in the form the settings do not name (see `Responder::other_form`).
fn other_form(service: &Service) -> Service {
    let mut settings = service.settings.clone();
    settings.envelope = match settings.envelope {
        Form::Wrapped => Form::Flat,
        Form::Flat => Form::Wrapped,
    };
    Service::new(settings, FrontEnd::FastCgi)
}

/// Where the connections come from, and how it was described to the administrator.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Listener {
    fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        }
    }

    fn adopt(fd: OwnedFd) -> Result<Listener, FastCgiError> {
        use std::os::fd::AsRawFd;
        match sys::socket_family(fd.as_raw_fd()) {
            Some(libc::AF_UNIX) => Ok(Listener::Unix(UnixListener::from(fd))),
            Some(libc::AF_INET | libc::AF_INET6) => Ok(Listener::Tcp(TcpListener::from(fd))),
            _ => Err(FastCgiError::Config(
                "the inherited socket is neither a unix nor a TCP socket".into(),
            )),
        }
    }
}

impl Stream {
    fn set_timeouts(&self, limit: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(limit))?;
                s.set_write_timeout(Some(limit))
            }
            Stream::Tcp(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(limit))?;
                s.set_write_timeout(Some(limit))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Trust of `REMOTE_USER`: `CLAMSCANNER_TRUST_REMOTE_USER=0` always withdraws it (the one knob
/// an administrator can rely on to turn it off); otherwise the flag or the variable `1` grants
/// it, else the socket's default.
fn trust(flag: bool, default: bool) -> Result<bool, FastCgiError> {
    match config::trust_remote_user(&config::process_env) {
        Ok(Some(false)) => Ok(false),
        Ok(Some(true)) => Ok(true),
        Ok(None) => Ok(flag || default),
        Err(problem) => Err(FastCgiError::Config(problem.to_string())),
    }
}

fn run(
    service: Service,
    options: Options,
    inherited: Option<Inherited>,
) -> Result<(), FastCgiError> {
    let (listener, described, trusted) = match (&options.listen, inherited) {
        (Some(_), Some(Inherited::Activated)) => {
            return Err(FastCgiError::Usage(
                "--listen and a socket from systemd (LISTEN_FDS): use one".into(),
            ))
        }
        (Some(address), _) => {
            let (listener, described) = bind(address, &options)?;
            let trusted = trust(options.trust_flag, false)?;
            if trusted {
                if let Listener::Tcp(_) = listener {
                    eprintln!("clamscanner fastcgi: WARNING: REMOTE_USER is trusted on a TCP socket: any local user (any process that can connect to {described}) can claim any account. Prefer a unix socket with mode 0660 and the web server's group.");
                }
            }
            (listener, described, trusted)
        }
        (None, Some(Inherited::Activated)) => {
            if !sys::is_listening_stream(ACTIVATED_FD) {
                return Err(FastCgiError::Config(
                    "LISTEN_FDS is set, but descriptor 3 is not a listening stream socket".into(),
                ));
            }
            let fd = sys::adopt_fd(ACTIVATED_FD)
                .map_err(|e| FastCgiError::Socket("descriptor 3".into(), e))?;
            let trusted = trust(options.trust_flag, false)?;
            (Listener::adopt(fd)?, "the socket from systemd".to_string(), trusted)
        }
        (None, _) if stdin_is_listening() => {
            let fd = sys::adopt_fd(0).map_err(|e| FastCgiError::Socket("descriptor 0".into(), e))?;
            let trusted = trust(options.trust_flag, true)?;
            (
                Listener::adopt(fd)?,
                "the web server's socket (descriptor 0)".to_string(),
                trusted,
            )
        }
        (None, _) => {
            return Err(FastCgiError::Usage(
                "give --listen unix:PATH or HOST:PORT (no listening socket was passed on descriptor 0 or by systemd)".into(),
            ))
        }
    };
    if !trusted && !service.authenticator().has_store() {
        return Err(FastCgiError::Config(
            "REMOTE_USER is not trusted here, so the program authenticates: give --htpasswd FILE or --tokens FILE (or --trust-remote-user when the web server authenticates)".into(),
        ));
    }
    let user_rule = if trusted {
        "REMOTE_USER trusted"
    } else {
        "REMOTE_USER ignored, Authorization required"
    };
    eprintln!(
        "clamscanner fastcgi: listening on {described} (up to {} connections; {user_rule})",
        options.workers
    );
    let pool = Arc::new(Pool {
        listener,
        responder: Responder {
            other_form: other_form(&service),
            service,
            trust_remote_user: trusted,
            max_conns: options.workers,
        },
        max: options.workers,
        idle: AtomicUsize::new(0),
        total: AtomicUsize::new(1),
    });
    work(&pool);
    Ok(())
}

fn bind(address: &str, options: &Options) -> Result<(Listener, String), FastCgiError> {
    let socket_error = |what: String| move |e: io::Error| FastCgiError::Socket(what, e);
    if let Some(path) = address.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(FastCgiError::Usage("--listen unix: needs a path".into()));
        }
        // A socket file left by an earlier run would make bind fail; anything else is kept.
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(FastCgiError::Config(format!(
                    "--listen {address}: {path} exists and is not a socket"
                )));
            }
            std::fs::remove_file(path).map_err(socket_error(format!("removing the old {path}")))?;
        }
        // Bound under umask 0177 (0600), then opened up to the asked mode: never wider meanwhile.
        let listener = sys::with_umask(0o177, || UnixListener::bind(path))
            .map_err(socket_error(format!("cannot listen on {address}")))?;
        if let Some(group) = &options.socket_group {
            let gid = group_id(group)?;
            std::os::unix::fs::chown(path, None, Some(gid))
                .map_err(socket_error(format!("chgrp {path}")))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(options.socket_mode))
            .map_err(socket_error(format!("chmod {path}")))?;
        return Ok((Listener::Unix(listener), format!("unix:{path}")));
    }
    let addr: SocketAddr = address
        .to_socket_addrs()
        .map_err(socket_error(format!("--listen {address}")))?
        .next()
        .ok_or_else(|| FastCgiError::Usage(format!("--listen {address}: no address")))?;
    let listener =
        TcpListener::bind(addr).map_err(socket_error(format!("cannot listen on {addr}")))?;
    let bound = listener.local_addr().map_or(addr, |a| a);
    if !bound.ip().is_loopback() {
        eprintln!("clamscanner fastcgi: WARNING: listening on {bound}, reachable from other machines. FastCGI has no authentication and no encryption: allow only the web server to connect (firewall).");
    }
    Ok((Listener::Tcp(listener), bound.to_string()))
}

fn group_id(group: &OsString) -> Result<u32, FastCgiError> {
    if let Some(gid) = group.to_str().and_then(|g| g.parse::<u32>().ok()) {
        return Ok(gid);
    }
    let name = CString::new(group.as_encoded_bytes())
        .map_err(|_| FastCgiError::Usage("--socket-group contains a NUL byte".into()))?;
    match sys::group_by_name(&name) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => Err(FastCgiError::Config(format!(
            "--socket-group {group:?}: no such group"
        ))),
        Err(e) => Err(FastCgiError::Socket(format!("--socket-group {group:?}"), e)),
    }
}

/// Threads that each accept one connection and serve it to its end, started as needed: when
/// the last idle one takes a connection it starts another, up to `max`. Beyond that, new
/// connections wait in the kernel's backlog until a thread is free.
struct Pool {
    listener: Listener,
    responder: Responder,
    max: usize,
    idle: AtomicUsize,
    total: AtomicUsize,
}

fn work(pool: &Arc<Pool>) {
    loop {
        pool.idle.fetch_add(1, Ordering::SeqCst);
        let accepted = pool.listener.accept();
        if pool.idle.fetch_sub(1, Ordering::SeqCst) == 1 {
            grow(pool);
        }
        match accepted {
            Ok(stream) => serve_connection(&pool.responder, stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                eprintln!("clamscanner fastcgi: accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

fn grow(pool: &Arc<Pool>) {
    let total = pool.total.load(Ordering::SeqCst);
    if total >= pool.max
        || pool
            .total
            .compare_exchange(total, total + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    let next = pool.clone();
    let spawned = thread::Builder::new()
        .name(format!("fastcgi-{total}"))
        .spawn(move || work(&next));
    if let Err(e) = spawned {
        pool.total.fetch_sub(1, Ordering::SeqCst);
        eprintln!("clamscanner fastcgi: cannot start a connection thread: {e}");
    }
}

fn serve_connection(responder: &Responder, mut stream: Stream) {
    if let Err(e) = stream.set_timeouts(IO_TIMEOUT) {
        eprintln!("clamscanner fastcgi: cannot set socket timeouts: {e}");
        return;
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| conn::serve(&mut stream, responder)));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_quiet() => {}
        Ok(Err(e)) => eprintln!("clamscanner fastcgi: closed a connection: {e}"),
        Err(_) => eprintln!("clamscanner fastcgi: closed a connection after an internal error"),
    }
}
