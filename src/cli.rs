//! `clamscanner uapi …`, shaped like cPanel's own `uapi` command:
//!
//! ```text
//! clamscanner uapi [--user=NAME] [--output=json|jsonpretty] [--home-root DIR] \
//!     ClamScanner check_disinfection_status [last_id=N]
//! ```
//!
//! Nobody authenticates: it reads with the caller's own file permissions, so only root may
//! name another user. Arguments are `name=value` pairs, URI-decoded like cPanel's `uapi`.
//! It always prints the wrapped envelope.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use crate::account::Homes;
use crate::config::{self, Flags};
use crate::envelope::Form;
use crate::handler::{FrontEnd, Service};
use crate::pretty::Pretty;
use crate::request::{Credentials, Request};
use crate::sys;

const USAGE: &str = "\
usage: clamscanner uapi [--user=NAME] [--output=json|jsonpretty] [--home-root DIR]
                        ClamScanner check_disinfection_status [last_id=N]

Prints the UAPI answer (wrapped envelope) for the account NAME (default: you).
Only root may name another user. Exit status: 0 answered with result.status 1,
1 answered with result.status 0, 2 usage error.";

pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("clamscanner uapi: {problem}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<OsString>) -> Result<ExitCode, String> {
    let mut settings = config::from_env(&config::process_env).map_err(|e| e.to_string())?;
    settings.htpasswd = None;
    settings.tokens = None;
    settings.envelope = Form::Wrapped;
    let mut user: Option<String> = None;
    let mut pretty = false;
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        match name.as_str() {
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "version" | "V" => {
                println!("{}", crate::VERSION_LINE);
                return Ok(ExitCode::SUCCESS);
            }
            "user" => user = Some(text(flags.value(&name, inline)?, "--user")?),
            "home-root" => settings.homes = Homes::Root(flags.value(&name, inline)?.into()),
            "output" => match text(flags.value(&name, inline)?, "--output")?.as_str() {
                "json" => pretty = false,
                "jsonpretty" => pretty = true,
                other => {
                    return Err(format!(
                        "--output must be json or jsonpretty, not {other:?}"
                    ))
                }
            },
            other => return Err(format!("unknown option --{other} (see --help)")),
        }
    }
    let mut positional = flags.positional.into_iter();
    let module = positional.next().map(|m| text(m, "MODULE")).transpose()?;
    let function = positional.next().map(|f| text(f, "FUNCTION")).transpose()?;
    match (module.as_deref(), function.as_deref()) {
        (Some("ClamScanner"), Some("check_disinfection_status")) => {}
        (Some(m), Some(f)) => {
            return Err(format!(
                "{m}::{f} is not available: this program answers only ClamScanner::check_disinfection_status"
            ))
        }
        _ => return Err("give the module and function: ClamScanner check_disinfection_status".into()),
    }
    let mut query = Vec::new();
    for arg in positional {
        let arg = text(arg, "argument")?;
        if !arg.contains('=') {
            return Err(format!("arguments are name=value pairs, not {arg:?}"));
        }
        if !query.is_empty() {
            query.push(b'&');
        }
        query.extend_from_slice(arg.as_bytes());
    }
    let user = resolve_user(user)?;

    let mut req = Request::get("/execute/ClamScanner/check_disinfection_status", "");
    req.query = query;
    req.credentials = Credentials {
        remote_user: Some(user.into_bytes()),
        authorization: None,
    };
    let mut response = Service::new(settings, FrontEnd::Cgi).handle(&req);
    let stdout = io::stdout();
    let written = if pretty {
        let mut out = Pretty::new(stdout.lock());
        response
            .write_body(&mut out)
            .and_then(|_| out.finish().map(drop))
    } else {
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        response
            .write_body(&mut out)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
    };
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(format!("cannot write the answer: {e}"));
        }
    }
    Ok(if response.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The account to answer for: the caller's own, or any for root.
fn resolve_user(requested: Option<String>) -> Result<String, String> {
    let uid = sys::effective_uid();
    let own = sys::user_by_uid(uid)
        .ok()
        .flatten()
        .map(|entry| String::from_utf8_lossy(&entry.name).into_owned());
    match (requested, own) {
        (Some(name), _) if uid == 0 => Ok(name),
        (Some(name), Some(own)) if name == own => Ok(name),
        (Some(_), _) => Err("only root may name another user with --user".into()),
        (None, Some(own)) => Ok(own),
        (None, None) => Err(format!("uid {uid} has no account name; give --user")),
    }
}

fn text(value: OsString, what: &str) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("{what}: {v:?} is not valid text"))
}
