//! `clamscanner htpasswd [--cost N] USER`: prints an htpasswd line (`USER:$2b$…`) for the
//! password read from stdin, so a credential file can be made where Apache's `htpasswd` is not
//! installed. The password comes from stdin, never argv, where other users could see it.

use std::ffi::OsString;
use std::io::{self, BufRead};
use std::process::ExitCode;

use crate::account::is_valid_user_name;
use crate::auth::MAX_COST;
use crate::config::Flags;

const USAGE: &str = "usage: printf '%s\\n' PASSWORD | clamscanner htpasswd [--cost 4-14] USER";

pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("clamscanner htpasswd: {problem}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<OsString>) -> Result<String, String> {
    let mut cost = 10;
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        match name.as_str() {
            "cost" => {
                let value = flags.value(&name, inline)?;
                cost = value
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|c| (4..=MAX_COST).contains(c))
                    .ok_or_else(|| format!("--cost must be a number from 4 to {MAX_COST}"))?;
            }
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    let [user] = flags.positional.as_slice() else {
        return Err("give exactly one user name".into());
    };
    let user = user
        .to_str()
        .filter(|u| is_valid_user_name(u.as_bytes()))
        .ok_or("the user name must be 1-32 characters of A-Z a-z 0-9 . _ -")?;
    let mut password = String::new();
    io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("the password on stdin is empty".into());
    }
    let hash = bcrypt::hash(password, cost).map_err(|e| format!("cannot hash: {e}"))?;
    Ok(format!("{user}:{hash}"))
}
