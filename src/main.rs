//! Picks the front end, and turns how it ended into the exit code; nothing else.
//!
//! In this order (deployment-facts §1): sockets passed by systemd (`LISTEN_PID`/`LISTEN_FDS`) or
//! a listening socket on descriptor 0 with no arguments (mod_fcgid, lighttpd, spawn-fcgi) make it
//! a FastCGI server; under a web server (`GATEWAY_INTERFACE` set) it is a CGI program and never
//! looks at argv. Otherwise the first argument chooses: `fastcgi`, `serve` (the listener), `uapi`
//! (the command line), `htpasswd` (makes a credential line), `simulate` (plays a run) or `watch`
//! (follows one).
//!
//! Each front end returns how it ended, and [`exit_code`] turns that into the exit code and the
//! one line on stderr (README "Exit codes"): the only place where either is decided.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::ExitCode;

use clamscanner::fastcgi::{self, FastCgiError, Inherited};
use clamscanner::serve::ServeError;
use clamscanner::simulate::SimError;
use clamscanner::watch::WatchError;
use clamscanner::{cgi, cli, htpasswd, serve, simulate, watch};

const USAGE: &str = "\
usage: clamscanner serve --htpasswd FILE [options]   the HTTP listener (see `serve --help`)
       clamscanner uapi [options] ClamScanner check_disinfection_status [last_id=N]
       clamscanner fastcgi [--listen unix:PATH|HOST:PORT] [options]   FastCGI (see `fastcgi --help`)
       clamscanner htpasswd [--cost N] USER   (password on stdin; prints an htpasswd line)
       clamscanner simulate --user NAME [--scenario NAME] [options]   plays a run into the files
       clamscanner watch [--user=NAME] [options]   follows a run in the terminal
       (as a CGI program, the web server runs it with GATEWAY_INTERFACE set)
See clamscanner(1).";

fn main() -> ExitCode {
    ExitCode::from(exit_code(&run()))
}

/// How a front end ended that was not a failure of its own.
enum Done {
    /// It did what was asked (or printed its help or version), or a CGI answer was written.
    Finished,
    /// `uapi` printed an answer, or its help.
    Uapi(cli::Outcome),
    /// `watch` followed a run to its end, or was interrupted.
    Watch(watch::Outcome),
}

/// Why a front end stopped, as each says it.
enum Failure {
    /// No subcommand, or one that does not exist.
    Usage,
    Cgi(cgi::OutputError),
    Serve(ServeError),
    FastCgi(FastCgiError),
    Uapi(cli::CliError),
    Htpasswd(htpasswd::Problem),
    Simulate(SimError),
    Watch(WatchError),
}

/// The one line on stderr, named after the subcommand.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage => f.write_str(USAGE),
            Failure::Cgi(e) => write!(f, "clamscanner: {e}"),
            Failure::Serve(e) => write!(f, "clamscanner serve: {e}"),
            Failure::FastCgi(e) => write!(f, "clamscanner fastcgi: {e}"),
            Failure::Uapi(e) => write!(f, "clamscanner uapi: {e}"),
            Failure::Htpasswd(e) => write!(f, "clamscanner htpasswd: {e}\n{}", htpasswd::USAGE),
            Failure::Simulate(e) => write!(f, "clamscanner simulate: {e}"),
            Failure::Watch(e) => write!(f, "clamscanner watch: {e}"),
        }
    }
}

fn run() -> Result<Done, Failure> {
    // First, while there is one thread: it removes the LISTEN_* variables.
    let activated = fastcgi::take_activation();
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if activated {
        if args.first().is_some_and(|a| a == "fastcgi") {
            args.remove(0);
        }
        return finished(
            fastcgi::main(args, Some(Inherited::Activated)),
            Failure::FastCgi,
        );
    }
    if args.is_empty() && fastcgi::stdin_is_listening() {
        return finished(
            fastcgi::main(args, Some(Inherited::Stdin)),
            Failure::FastCgi,
        );
    }
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        return finished(cgi::main(), Failure::Cgi);
    }
    let command = if args.is_empty() {
        None
    } else {
        Some(args.remove(0))
    };
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("serve") => finished(serve::main(args), Failure::Serve),
        Some("fastcgi") => finished(fastcgi::main(args, None), Failure::FastCgi),
        Some("uapi") => cli::main(args).map(Done::Uapi).map_err(Failure::Uapi),
        Some("htpasswd") => finished(htpasswd::main(args), Failure::Htpasswd),
        Some("simulate") => finished(simulate::main(args), Failure::Simulate),
        Some("watch") => watch::main(args).map(Done::Watch).map_err(Failure::Watch),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(Done::Finished)
        }
        Some("--version" | "-V") => {
            println!("{}", clamscanner::VERSION_LINE);
            Ok(Done::Finished)
        }
        _ => Err(Failure::Usage),
    }
}

fn finished<E>(ended: Result<(), E>, failure: fn(E) -> Failure) -> Result<Done, Failure> {
    ended.map(|()| Done::Finished).map_err(failure)
}

/// Every way the program ends, and its exit code (README "Exit codes"). A failure is said on
/// stderr here, except where the front end or the panic hook has said it already.
fn exit_code(ended: &Result<Done, Failure>) -> u8 {
    let said = |failure: &Failure, code: u8| {
        eprintln!("{failure}");
        code
    };
    match ended {
        Ok(Done::Finished) => 0,
        Ok(Done::Uapi(cli::Outcome::Printed | cli::Outcome::Succeeded)) => 0,
        // The answer, with `result.status` 0, is on stdout: scripts can test the code.
        Ok(Done::Uapi(cli::Outcome::CallFailed)) => 1,
        Ok(Done::Watch(watch::Outcome::Succeeded)) => 0,
        Ok(Done::Watch(watch::Outcome::Failed)) => 1,
        Ok(Done::Watch(watch::Outcome::Interrupted)) => 130,
        // An answer was written (the HTTP status carries the outcome); a client that went
        // away is not the program's failure, the web server has logged it.
        Err(Failure::Cgi(cgi::OutputError::Write(_))) => 0,
        // The panic hook has said what happened; the answer stops where it broke.
        Err(Failure::Cgi(cgi::OutputError::Panicked)) => 1,
        Err(f @ Failure::Usage) => said(f, 2),
        Err(f @ Failure::Serve(ServeError::Listener(_))) => said(f, 1),
        Err(
            f @ Failure::Serve(
                ServeError::Usage(_)
                | ServeError::NotText(_)
                | ServeError::Config(_)
                | ServeError::Credentials(_)
                | ServeError::Start(_),
            ),
        ) => said(f, 2),
        Err(f @ Failure::FastCgi(_)) => said(f, 2),
        Err(f @ Failure::Uapi(_)) => said(f, 2),
        Err(f @ Failure::Htpasswd(_)) => said(f, 2),
        Err(f @ Failure::Simulate(SimError::Io(..))) => said(f, 1),
        Err(f @ Failure::Simulate(SimError::Usage(_) | SimError::Refused(_))) => said(f, 2),
        // Standard output closed by the reader (`watch | head`): it has what it wanted.
        Err(Failure::Watch(WatchError::Output(e))) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(
            f @ Failure::Watch(WatchError::Usage(_) | WatchError::NotText(_) | WatchError::User(_)),
        ) => said(f, 2),
        Err(f @ Failure::Watch(WatchError::Call(_) | WatchError::Output(_))) => said(f, 1),
    }
}
