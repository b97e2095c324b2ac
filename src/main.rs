//! Picks the front end; nothing else.
//!
//! In this order (deployment-facts §1): sockets passed by systemd (`LISTEN_PID`/`LISTEN_FDS`) or
//! a listening socket on descriptor 0 with no arguments (mod_fcgid, lighttpd, spawn-fcgi) make it
//! a FastCGI server; under a web server (`GATEWAY_INTERFACE` set) it is a CGI program and never
//! looks at argv. Otherwise the first argument chooses: `fastcgi`, `serve` (the listener), `uapi`
//! (the command line), `htpasswd` (makes a credential line), `simulate` (plays a run) or `watch`
//! (follows one).

use std::ffi::OsString;
use std::process::ExitCode;

use clamscanner::fastcgi::{self, Inherited};
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
    // First, while there is one thread: it removes the LISTEN_* variables.
    let activated = fastcgi::take_activation();
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if activated {
        if args.first().is_some_and(|a| a == "fastcgi") {
            args.remove(0);
        }
        return fastcgi::main(args, Some(Inherited::Activated));
    }
    if args.is_empty() && fastcgi::stdin_is_listening() {
        return fastcgi::main(args, Some(Inherited::Stdin));
    }
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        return cgi::main();
    }
    let command = if args.is_empty() {
        None
    } else {
        Some(args.remove(0))
    };
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("serve") => serve::main(args),
        Some("fastcgi") => fastcgi::main(args, None),
        Some("uapi") => cli::main(args),
        Some("htpasswd") => htpasswd::main(args),
        Some("simulate") => simulate::main(args),
        Some("watch") => watch::main(args),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("{}", clamscanner::VERSION_LINE);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
