//! Picks the front end; nothing else.
//!
//! Under a web server (`GATEWAY_INTERFACE` set) it is a CGI program and never looks at argv.
//! Otherwise the first argument chooses: `serve` (the listener), `uapi` (the command line) or
//! `htpasswd` (makes a credential line).

use std::ffi::OsString;
use std::process::ExitCode;

use clamscanner::{cgi, cli, htpasswd, serve};

const USAGE: &str = "\
usage: clamscanner serve --htpasswd FILE [options]   the HTTP listener (see `serve --help`)
       clamscanner uapi [options] ClamScanner check_disinfection_status [last_id=N]
       clamscanner htpasswd [--cost N] USER   (password on stdin; prints an htpasswd line)
       (as a CGI program, the web server runs it with GATEWAY_INTERFACE set)
See clamscanner(1).";

fn main() -> ExitCode {
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        return cgi::main();
    }
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = if args.is_empty() {
        None
    } else {
        Some(args.remove(0))
    };
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("serve") => serve::main(args),
        Some("uapi") => cli::main(args),
        Some("htpasswd") => htpasswd::main(args),
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
