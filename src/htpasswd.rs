//! `clamscanner htpasswd [--cost N] USER`: prints an htpasswd line (`USER:$2b$…`) for the
//! password read from stdin, so a credential file can be made where Apache's `htpasswd` is not
//! installed. The password comes from stdin, never argv, where other users could see it.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead};

use crate::account::is_valid_user_name;
use crate::auth::MAX_COST;
use crate::config::Flags;

/// Also printed after a usage error, which is what every error here is.
pub const USAGE: &str = "\
usage: printf '%s\\n' PASSWORD | clamscanner htpasswd [--cost 4-14] USER

Reads one password from stdin and prints an htpasswd line of bcrypt (as `htpasswd -nB`).
  --cost N   bcrypt cost, 4 to 14 (default 10); each step doubles the work per check";

/// The bcrypt cost of a new line: Apache's `htpasswd -B` default is 5, but the listener and
/// FastCGI cache successes, so a slower hash costs a poller only its first request.
const DEFAULT_COST: u32 = 10;
const MIN_COST: u32 = 4;

/// Why no line was printed; each is a usage error (exit 2).
#[derive(Debug)]
pub enum Problem {
    Flag(String),
    BadCost,
    UserCount,
    BadUser,
    Unreadable(io::Error),
    EmptyPassword,
    Hash(bcrypt::BcryptError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Flag(message) => f.write_str(message),
            Problem::BadCost => write!(f, "--cost must be a number from {MIN_COST} to {MAX_COST}"),
            Problem::UserCount => f.write_str("give exactly one user name"),
            Problem::BadUser => {
                f.write_str("the user name must be 1-32 characters of A-Z a-z 0-9 . _ -")
            }
            Problem::Unreadable(e) => write!(f, "cannot read the password: {e}"),
            Problem::EmptyPassword => f.write_str("the password on stdin is empty"),
            Problem::Hash(e) => write!(f, "cannot hash: {e}"),
        }
    }
}

enum Outcome {
    Line(String),
    Help,
    Version,
}

/// `clamscanner htpasswd ARGS`: prints the line, or says why not (main adds [`USAGE`]).
pub fn main(args: Vec<OsString>) -> Result<(), Problem> {
    match run(args)? {
        Outcome::Line(line) => println!("{line}"),
        Outcome::Help => println!("{USAGE}"),
        Outcome::Version => println!("{}", crate::VERSION_LINE),
    }
    Ok(())
}

fn run(args: Vec<OsString>) -> Result<Outcome, Problem> {
    let mut cost = DEFAULT_COST;
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        match name.as_str() {
            "help" | "h" => return Ok(Outcome::Help),
            "version" | "V" => return Ok(Outcome::Version),
            "cost" => {
                let value = flags.value(&name, inline).map_err(Problem::Flag)?;
                cost = value
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|c| (MIN_COST..=MAX_COST).contains(c))
                    .ok_or(Problem::BadCost)?;
            }
            _ => return Err(Problem::Flag(format!("unknown option --{name}"))),
        }
    }
    let [user] = flags.positional.as_slice() else {
        return Err(Problem::UserCount);
    };
    let user = user
        .to_str()
        .filter(|u| is_valid_user_name(u.as_bytes()))
        .ok_or(Problem::BadUser)?;
    let mut password = String::new();
    io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(Problem::Unreadable)?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Problem::EmptyPassword);
    }
    let hash = bcrypt::hash(password, cost).map_err(Problem::Hash)?;
    Ok(Outcome::Line(format!("{user}:{hash}")))
}
