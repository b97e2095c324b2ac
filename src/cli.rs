//! `clamscanner uapi …`, shaped like cPanel's own `uapi` command:
//!
//! ```text
//! clamscanner uapi [--user=NAME] [--output=json|jsonpretty] [--home-root DIR] \
//!     ClamScanner check_disinfection_status [last_id=N]
//! ```
//!
//! Nobody authenticates: it reads with the caller's own file permissions, so only root may
//! name another user. Arguments are `name=value` pairs, URI-decoded like cPanel's `uapi`.
//! It always prints the wrapped envelope. It enters the core through
//! [`handler::command_line`], not as a web request: no HTTP limit applies to its arguments, and
//! of the environment it reads `CLAMSCANNER_HOME_ROOT` only.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};

use crate::account::Homes;
use crate::config::{self, Flags, NotText};
use crate::envelope::Form;
use crate::handler;
use crate::pretty::Pretty;
use crate::sys;

const USAGE: &str = "\
usage: clamscanner uapi [--user=NAME] [--output=json|jsonpretty] [--home-root DIR]
                        ClamScanner check_disinfection_status [last_id=N]

Prints the UAPI answer (wrapped envelope) for the account NAME (default: you).
Only root may name another user. Exit status: 0 answered with result.status 1,
1 answered with result.status 0, 2 usage error.";

/// The output buffer: a large answer goes out in blocks of this size.
const OUTPUT_BUFFER: usize = crate::envelope::CHUNK;

/// How `uapi` ended without an error of its own (main turns it into the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `--help` or `--version` was printed.
    Printed,
    /// The answer was printed, with `result.status` 1.
    Succeeded,
    /// The answer was printed, with `result.status` 0 (a bad `last_id`, a refused account).
    CallFailed,
}

/// Why `uapi` printed no answer: each is a usage error (exit 2).
#[derive(Debug)]
pub enum CliError {
    /// An unknown flag, or a flag without its value.
    Flag(String),
    /// `--output` is neither `json` nor `jsonpretty`.
    OutputForm(String),
    /// A module and function this program does not answer.
    NotAvailable {
        module: String,
        function: String,
    },
    /// The module and function are missing.
    NoFunction,
    /// An argument that is not a `name=value` pair.
    NotAPair(String),
    NotText(NotText),
    User(UserError),
    /// The answer could not be written (a closed pipe is not an error).
    Write(io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Flag(message) => f.write_str(message),
            CliError::OutputForm(other) => {
                write!(f, "--output must be json or jsonpretty, not {other:?}")
            }
            CliError::NotAvailable { module, function } => write!(
                f,
                "{module}::{function} is not available: this program answers only ClamScanner::check_disinfection_status"
            ),
            CliError::NoFunction => {
                f.write_str("give the module and function: ClamScanner check_disinfection_status")
            }
            CliError::NotAPair(arg) => write!(f, "arguments are name=value pairs, not {arg:?}"),
            CliError::NotText(e) => write!(f, "{e}"),
            CliError::User(e) => write!(f, "{e}"),
            CliError::Write(e) => write!(f, "cannot write the answer: {e}"),
        }
    }
}

impl From<NotText> for CliError {
    fn from(e: NotText) -> Self {
        CliError::NotText(e)
    }
}

/// `clamscanner uapi ARGS`.
pub fn main(args: Vec<OsString>) -> Result<Outcome, CliError> {
    let mut homes = config::homes_from_env(&config::process_env);
    let mut user: Option<String> = None;
    let mut pretty = false;
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        match name.as_str() {
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(Outcome::Printed);
            }
            "version" | "V" => {
                println!("{}", crate::VERSION_LINE);
                return Ok(Outcome::Printed);
            }
            "user" => {
                let value = flags.value(&name, inline).map_err(CliError::Flag)?;
                user = Some(config::text(value, "--user")?);
            }
            "home-root" => {
                homes = Homes::Root(flags.value(&name, inline).map_err(CliError::Flag)?.into())
            }
            "output" => {
                let value = flags.value(&name, inline).map_err(CliError::Flag)?;
                match config::text(value, "--output")?.as_str() {
                    "json" => pretty = false,
                    "jsonpretty" => pretty = true,
                    other => return Err(CliError::OutputForm(other.to_string())),
                }
            }
            other => {
                return Err(CliError::Flag(format!(
                    "unknown option --{other} (see --help)"
                )))
            }
        }
    }
    let mut positional = flags.positional.into_iter();
    let module = positional.next().map(|m| config::text(m, "MODULE"));
    let function = positional.next().map(|f| config::text(f, "FUNCTION"));
    match (module.transpose()?, function.transpose()?) {
        (Some(m), Some(f)) if m == "ClamScanner" && f == "check_disinfection_status" => {}
        (Some(module), Some(function)) => return Err(CliError::NotAvailable { module, function }),
        _ => return Err(CliError::NoFunction),
    }
    let mut arguments = Vec::new();
    for arg in positional {
        let arg = config::text(arg, "argument")?;
        if !arg.contains('=') {
            return Err(CliError::NotAPair(arg));
        }
        arguments.push(arg);
    }
    let user = resolve_user(user).map_err(CliError::User)?;

    let mut response = handler::command_line(&homes, Form::Wrapped, &user, &arguments);
    let stdout = io::stdout();
    let written = if pretty {
        let mut out = Pretty::new(stdout.lock());
        response
            .write_body(&mut out)
            .and_then(|_| out.finish().map(drop))
    } else {
        let mut out = io::BufWriter::with_capacity(OUTPUT_BUFFER, stdout.lock());
        response
            .write_body(&mut out)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Write(e)),
        _ if response.succeeded() => Ok(Outcome::Succeeded),
        _ => Ok(Outcome::CallFailed),
    }
}

/// Why the account to answer for was not settled (a usage error for `uapi` and `watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// `--user` named someone else, and the caller is not root.
    NotRoot,
    /// No `--user`, and the caller's uid has no name in the account database.
    Nameless(u32),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::NotRoot => f.write_str("only root may name another user with --user"),
            UserError::Nameless(uid) => write!(f, "uid {uid} has no account name; give --user"),
        }
    }
}

/// The account a command-line tool answers for (`uapi`, `watch`): the caller's own, or any for
/// root. Nobody authenticates there, so this is the whole rule of who may read whose log (the
/// file permissions do the rest).
pub fn resolve_user(requested: Option<String>) -> Result<String, UserError> {
    let uid = sys::effective_uid();
    let own = sys::user_by_uid(uid)
        .ok()
        .flatten()
        .map(|entry| String::from_utf8_lossy(&entry.name).into_owned());
    match (requested, own) {
        (Some(name), _) if uid == 0 => Ok(name),
        (Some(name), Some(own)) if name == own => Ok(name),
        (Some(_), _) => Err(UserError::NotRoot),
        (None, Some(own)) => Ok(own),
        (None, None) => Err(UserError::Nameless(uid)),
    }
}
