//! clamscanner: cPanel's UAPI `ClamScanner::check_disinfection_status`, one core and four front
//! ends: the CGI program (`cgi`), the FastCGI responder (`fastcgi`), the HTTP listener
//! (`serve`) and the command line (`cli`, `clamscanner uapi`). Three tools run over the same
//! core: `simulate` plays a disinfection run into an account's files, `watch` follows one in
//! the terminal, and `htpasswd` makes a credential line.
//!
//! Data flows one way: a front end builds a [`request::Request`] -> `handler` routes and applies
//! limits -> `auth` names the account -> `account` opens its files safely -> `disinfection`
//! (with `records`, `logfile` and `jsonline`) settles the answer -> `envelope` streams the UAPI
//! JSON through a `response::Response`. The front ends know nothing of logs; the core knows
//! nothing of HTTP, CGI or FastCGI beyond the `Request` and `Response` types.

pub mod account;
pub mod auth;
pub mod cgi;
pub mod cli;
pub mod config;
pub mod disinfection;
pub mod envelope;
pub mod fastcgi;
pub mod handler;
pub mod htpasswd;
pub mod jsonline;
pub mod logfile;
pub mod pretty;
pub mod records;
pub mod request;
pub mod response;
pub mod serve;
pub mod simulate;
mod sys;
pub mod watch;

/// What `--version` prints, for every subcommand.
pub const VERSION_LINE: &str = concat!("clamscanner ", env!("CARGO_PKG_VERSION"));
