//! clamscanner: cPanel's UAPI `ClamScanner::check_disinfection_status`, one core and four front
//! ends: the CGI program (`cgi`), the FastCGI responder (`fastcgi`), the HTTP listener
//! (`serve`) and the command line (`cli`, `clamscanner uapi`). Three tools run over the same
//! core: `simulate` plays a disinfection run into an account's files, `watch` follows one in
//! the terminal, and `htpasswd` makes a credential line.
//!
//! Data flows one way: a front end builds a `request::Request` -> `handler` routes and applies
//! limits -> `auth` names the account -> `account` opens its files safely -> `disinfection`
//! (with `records`, `logfile` and `jsonline`) settles the answer -> `envelope` streams the UAPI
//! JSON through a `response::Response`. The front ends know nothing of logs; the core knows
//! nothing of HTTP, CGI or FastCGI beyond the `Request` and `Response` types.
//!
//! The library's public surface is what `main.rs` calls: the front ends' modules and their entry
//! points (and [`VERSION_LINE`]). The core is private to the crate; the few pieces the property
//! tests (`tests/`) and the fuzz targets (`fuzz/`) drive directly are re-exported, one by one,
//! from [`internals`].

// The front ends: `main.rs` calls their entry points.
pub mod cgi;
pub mod cli;
pub mod fastcgi;
pub mod htpasswd;
pub mod serve;
pub mod simulate;
pub mod watch;

// The core, shared by the front ends.
pub(crate) mod account;
pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod disinfection;
pub(crate) mod envelope;
pub(crate) mod handler;
pub(crate) mod jsonline;
pub(crate) mod logfile;
pub(crate) mod pretty;
pub(crate) mod records;
pub(crate) mod request;
pub(crate) mod response;
mod sys;

/// Not an API: what `tests/log_equivalence.rs` and the `fuzz/` targets test directly, the
/// hand-written parsers and the log reader, re-exported item by item so that the modules they
/// live in stay private to the crate. Each module here is named after the one it draws from.
#[doc(hidden)]
pub mod internals {
    /// For the `authorization` fuzz target.
    pub mod account {
        pub use crate::account::is_valid_user_name;
    }
    /// For the `authorization` fuzz target.
    pub mod auth {
        pub use crate::auth::{claim, parse_authorization, Claim, Scheme};
    }
    /// For the `query` and `authorization` fuzz targets.
    pub mod request {
        pub use crate::request::{form_decode, pairs, Body, Credentials, Method, Request};
    }
    /// For the `query` fuzz target.
    pub mod handler {
        pub use crate::handler::last_id;
    }
    /// For the `jsonline` and `logfile` fuzz targets.
    pub mod jsonline {
        pub use crate::jsonline::{classify, Line};
    }
    /// For `tests/log_equivalence.rs` and the `logfile` fuzz target.
    pub mod disinfection {
        pub use crate::disinfection::{read_log, Status, Tuning};
    }
    /// For `tests/log_equivalence.rs` and the `logfile` fuzz target.
    pub mod logfile {
        pub use crate::logfile::{
            last_record, resume_point, strip_cr, Item, Lines, Log, ReadAt, Snapshot, MAX_LINE,
        };
    }
    /// For the `fastcgi_record` fuzz target.
    pub mod fastcgi_record {
        pub use crate::fastcgi::record::{
            encode_pair, encode_record, parse_begin, parse_pairs, split, RecordError,
            BEGIN_REQUEST, HEADER_LEN, MAX_CONTENT, STDOUT, VERSION_1,
        };
    }
}

/// What `--version` prints, for every subcommand.
pub const VERSION_LINE: &str = concat!("clamscanner ", env!("CARGO_PKG_VERSION"));
