//! clamscanner patch: a server in which each connection's own thread reads one request, hands
//! it to the application, and reads the next only after the application has returned (its
//! answer written).
//!
//! Upstream's `Server` parses requests on connection threads into one shared queue served by a
//! fixed set of workers: a client that pipelines fills the queue, one that reads its answers
//! slowly holds a worker, and a few slow clients starve every other one. Here a connection
//! holds nothing but its own thread, at most one request of it is in flight, and the number of
//! connections is capped (beyond the cap: an immediate 503 and a close).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::client::{ClientConnection, HeadLimits, Incoming, Refusal};
use crate::connection::Connection;
use crate::util::RefinedTcpStream;
use crate::{HTTPVersion, Response, StatusCode};

/// What a connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Asked at each new connection: how many connections the descriptor limit allows, so
    /// that the connections beyond it are answered 503 instead of exhausting the descriptors
    /// the handlers need. Asked each time because the limit can change while the server runs
    /// (`prlimit`). None, or an answer of None: only `max_connections` counts.
    pub descriptor_budget: Option<fn() -> Option<usize>>,
    /// The longest one socket read or write may block; then the connection is closed.
    pub socket_timeout: Duration,
    pub head: HeadLimits,
}

/// How long accepting pauses after an error that a moment may cure (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM): the listening socket stays readable meanwhile, so retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// How much of a refused connection's request is read and thrown away (without waiting)
/// before it is closed, so that the 503 is not lost to a reset.
const BUSY_DRAIN: usize = 16 * 1024;

/// Accepts connections on `listener` for ever, each served on a thread of its own: `handler`
/// gets every request (and must answer it) and every refusal tiny_http answered itself, on the
/// connection's thread (503 refusals on the accepting thread). Returns only when the listening
/// socket itself fails.
pub fn serve_connections<F>(listener: TcpListener, limits: Limits, handler: F) -> io::Error
where
    F: Fn(Incoming) + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (sock, addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if accept_error_is_fatal(&e) => return e,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(_) => {
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let budget = limits.descriptor_budget.and_then(|budget| budget());
        let cap = budget.map_or(limits.max_connections, |b| b.min(limits.max_connections));
        if open.load(Ordering::Acquire) >= cap {
            refuse_busy(sock, addr, &*handler);
            continue;
        }
        let timeout = Some(limits.socket_timeout);
        if sock.set_read_timeout(timeout).is_err() || sock.set_write_timeout(timeout).is_err() {
            continue;
        }
        let slot = Slot::take(&open);
        let handler = Arc::clone(&handler);
        // A failed spawn drops the closure, and with it the socket: the client sees a close.
        let _ = thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                let _slot = slot;
                let (read, write) = RefinedTcpStream::new(Connection::from(sock));
                let mut client = ClientConnection::new(write, read, Some(addr), limits.head);
                while let Some(incoming) = client.next_incoming() {
                    // A handler that panics ends its connection, never the server; an
                    // unanswered request has been answered 500 by its drop.
                    if panic::catch_unwind(AssertUnwindSafe(|| handler(incoming))).is_err() {
                        break;
                    }
                }
            });
    }
}

/// Errors that mean the listening socket itself is unusable (EBADF, EFAULT, EINVAL, ENOTSOCK,
/// EOPNOTSUPP on Linux); any other accept error concerns one connection or a passing shortage.
fn accept_error_is_fatal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(9 | 14 | 22 | 88 | 95))
}

/// 503 without waiting for anything: the answer fits in the empty send buffer of a new socket,
/// and what the client already sent is read without blocking, then the socket is closed.
fn refuse_busy<F: Fn(Incoming)>(sock: TcpStream, addr: SocketAddr, handler: &F) {
    let mut answer = Vec::new();
    let response = Response::new_empty(StatusCode(503)).with_connection_close();
    if response
        .raw_print(&mut answer, HTTPVersion(1, 1), &[], false, None)
        .is_ok()
        && sock.set_nonblocking(true).is_ok()
    {
        let mut sock = &sock;
        let _ = sock.write(&answer);
        let mut buf = [0u8; 4096];
        let mut left = BUSY_DRAIN;
        while left > 0 {
            match sock.read(&mut buf) {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    }
    drop(sock);
    let refusal = Refusal {
        status: 503,
        remote_addr: Some(addr),
        request_line: None,
        elapsed: Duration::ZERO,
    };
    // The accepting thread must survive whatever the handler does.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| handler(Incoming::Refused(refusal))));
}

/// One counted connection; counted out when its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::AcqRel);
        Slot(Arc::clone(open))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
