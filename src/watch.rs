//! `clamscanner watch …`: follows a disinfection run in the terminal, the shell counterpart of
//! the progress page.
//!
//! ```text
//! clamscanner watch [--user=NAME] [--home-root DIR] [--interval MS] [--last-id N]
//! ```
//!
//! It polls the same core as `uapi` (the account is opened and the log read by `account` and
//! `disinfection`; no HTTP, no envelope), with the `last_id` it last saw, as a client does.
//! On a terminal each record is a line and a status line with the counts stays at the bottom;
//! in a pipe stdout gets exactly one plain line per record and notices go to stderr, so
//! `watch | grep error` works. It stops at `done`.
//!
//! The records reach it as the JSON the core copies from the log; the few fields it shows are
//! read by the small reader below (no JSON library in the program). File names are shown with
//! control characters escaped, so a name cannot move the cursor or recolour the terminal.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::account::Homes;
use crate::cli::{self, UserError};
use crate::config::{self, Flags, NotText};
use crate::disinfection::Status;
use crate::envelope::CHUNK;
use crate::handler::{self, CallError};
use crate::sys;

const USAGE: &str = "\
usage: clamscanner watch [--user=NAME] [--home-root DIR] [--interval MS] [--last-id N]

Follows the disinfection run of the account NAME (default: you; only root may name
another user) until it is done. On a terminal: one line per record and a status line;
in a pipe: one tab-separated line per record (id, type, state, file, message) on stdout,
notices on stderr. NO_COLOR turns colour off.
Exit status: 0 the run succeeded, 1 it failed or the call failed, 2 usage error,
130 interrupted (Ctrl-C).";

/// Poll interval when not given (the progress page's), and its bounds.
const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 10;
const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Ctrl-C is noticed within this, whatever the interval.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// The step states, in the order the status line shows them.
const STATES: [&str; 5] = [
    "quarantined",
    "deleted",
    "no-action",
    "error",
    "mailbox-cleansed",
];

#[derive(Debug)]
pub enum WatchError {
    /// Bad flags (exit 2).
    Usage(String),
    NotText(NotText),
    /// Whom to watch is not settled (exit 2).
    User(UserError),
    /// The call failed: `result.status` 0 (exit 1).
    Call(CallError),
    /// Standard output went away or failed (exit 1, unless it was a closed pipe).
    Output(io::Error),
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::Usage(why) => f.write_str(why),
            WatchError::NotText(e) => write!(f, "{e}"),
            WatchError::User(e) => write!(f, "{e}"),
            WatchError::Call(e) => write!(f, "{e}"),
            WatchError::Output(e) => write!(f, "cannot write: {e}"),
        }
    }
}

impl From<NotText> for WatchError {
    fn from(e: NotText) -> Self {
        WatchError::NotText(e)
    }
}

impl From<io::Error> for WatchError {
    fn from(e: io::Error) -> Self {
        WatchError::Output(e)
    }
}

/// How watching ended without an error of its own (main turns it into the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The run ended at `done` and succeeded (or `--help`/`--version` was printed).
    Succeeded,
    /// The run's final record has `"state":"error"`.
    Failed,
    /// Ctrl-C.
    Interrupted,
}

struct Options {
    homes: Homes,
    user: Option<String>,
    interval: Duration,
    last_id: u64,
}

fn usage(why: impl Into<String>) -> WatchError {
    WatchError::Usage(why.into())
}

fn parse_options(args: Vec<OsString>) -> Result<Option<Options>, WatchError> {
    let mut opts = Options {
        homes: config::homes_from_env(&config::process_env),
        user: None,
        interval: Duration::from_millis(DEFAULT_INTERVAL_MS),
        last_id: 0,
    };
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        let text = |flags: &mut Flags| -> Result<String, WatchError> {
            let value = flags.value(&name, inline.clone()).map_err(usage)?;
            Ok(config::text(value, &format!("--{name}"))?)
        };
        match name.as_str() {
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "version" | "V" => {
                println!("{}", crate::VERSION_LINE);
                return Ok(None);
            }
            "user" => opts.user = Some(text(&mut flags)?),
            "home-root" => {
                opts.homes = Homes::Root(flags.value(&name, inline).map_err(usage)?.into())
            }
            "interval" => {
                let v = text(&mut flags)?;
                let ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(ms))
                    .ok_or_else(|| {
                        usage(format!(
                            "--interval must be {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} milliseconds, not {v:?}"
                        ))
                    })?;
                opts.interval = Duration::from_millis(ms);
            }
            "last-id" => {
                let v = text(&mut flags)?;
                opts.last_id = v
                    .parse()
                    .map_err(|_| usage(format!("--last-id must be a whole number, not {v:?}")))?;
            }
            other => return Err(usage(format!("unknown option --{other} (see --help)"))),
        }
    }
    if let Some(extra) = flags.positional.first() {
        return Err(usage(format!("unexpected argument {extra:?} (see --help)")));
    }
    Ok(Some(opts))
}

/// `clamscanner watch ARGS`.
pub fn main(args: Vec<OsString>) -> Result<Outcome, WatchError> {
    let Some(opts) = parse_options(args)? else {
        return Ok(Outcome::Succeeded);
    };
    // Whom `uapi` may name, `watch` may follow.
    let user = cli::resolve_user(opts.user).map_err(WatchError::User)?;
    // Ctrl-C only sets a flag, so the status line is finished and colours reset before exit.
    sys::catch_interrupt()?;
    let tty = io::stdout().is_terminal();
    let colour = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut view = View::new(tty, colour);
    let mut last_id = opts.last_id;
    let mut done_state: Option<String> = None;
    loop {
        if sys::interrupted() {
            view.finish(None)?;
            return Ok(Outcome::Interrupted);
        }
        let mut first = true;
        let polled = poll(&opts.homes, &user, last_id, &mut |record| {
            let fields = read_record(record);
            let id = fields.id.unwrap_or(0);
            if first && last_id > 0 && id <= last_id {
                view.restarted(last_id, id)?;
                done_state = None;
            }
            first = false;
            view.record(&fields)?;
            if fields.kind.as_deref() == Some("done") {
                done_state = Some(fields.state.clone().unwrap_or_default());
            }
            last_id = id;
            Ok(())
        });
        let end = match polled {
            Ok(end) => end,
            // A new run truncated the log while the answer was being settled: the next
            // poll sees the new log (and the restart rule), as for a change mid-stream.
            Err(PollError::Refused(CallError::Log(changed))) if changed.log_changed() => {
                view.warning(&changed.to_string())?;
                sleep_until_next_poll(opts.interval);
                continue;
            }
            Err(PollError::Refused(message)) => {
                view.finish(None)?;
                return Err(WatchError::Call(message));
            }
            Err(PollError::Output(e)) => return Err(e.into()),
        };
        for warning in &end.warnings {
            view.warning(warning)?;
        }
        if let Some(broken) = &end.broken {
            // The log changed under the reader (a new run truncating it): the next poll
            // sees the new log, so it is a notice, not the end, and the status this answer
            // began with may describe the old log: decide nothing from it.
            view.warning(broken)?;
            sleep_until_next_poll(opts.interval);
            continue;
        }
        match end.status {
            Status::Done => {
                let state = match done_state.take() {
                    Some(state) => state,
                    // The client had already seen the done record (--last-id): look at it.
                    None => final_state(&opts.homes, &user, last_id),
                };
                view.finish(Some(&state))?;
                return Ok(if state == "error" {
                    Outcome::Failed
                } else {
                    Outcome::Succeeded
                });
            }
            status => view.waiting(status)?,
        }
        sleep_until_next_poll(opts.interval);
    }
}

/// The client's polling interval, cut short by Ctrl-C.
fn sleep_until_next_poll(interval: Duration) {
    let wake = Instant::now() + interval;
    while Instant::now() < wake && !sys::interrupted() {
        std::thread::sleep(SLEEP_SLICE.min(wake - Instant::now()));
    }
}

/// The state of the done record at or before `last_id`, read without showing it.
fn final_state(homes: &Homes, user: &str, last_id: u64) -> String {
    let mut state = String::new();
    let _ = poll(homes, user, last_id.saturating_sub(1), &mut |record| {
        let fields = read_record(record);
        if fields.kind.as_deref() == Some("done") {
            state = fields.state.unwrap_or_default();
        }
        Ok(())
    });
    state
}

// ---- one poll over the core --------------------------------------------------------------------

struct PollEnd {
    status: Status,
    warnings: Vec<String>,
    /// Reading stopped midway (the records before it were delivered).
    broken: Option<String>,
}

enum PollError {
    /// What the answer's `result.status` 0 would say: no such account, a refused file.
    Refused(CallError),
    Output(io::Error),
}

/// Asks the core what `check_disinfection_status` answers for `last_id`, handing each record
/// (the bytes the answer would carry) to `each` in order, a chunk of records at a time.
fn poll(
    homes: &Homes,
    user: &str,
    last_id: u64,
    each: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<PollEnd, PollError> {
    let answer = handler::check(homes, user, u128::from(last_id)).map_err(PollError::Refused)?;
    let mut end = PollEnd {
        status: answer.status,
        warnings: answer.warnings,
        broken: None,
    };
    let Some(mut stream) = answer.records else {
        return Ok(end);
    };
    let mut buf = Vec::with_capacity(CHUNK * 2);
    loop {
        let more = match stream.fill(&mut buf, CHUNK) {
            Ok(more) => more,
            Err(e) => {
                end.broken = Some(format!(
                    "The system could not finish reading the disinfection log: {e}."
                ));
                false
            }
        };
        let used = for_each_record(&buf, &mut *each).map_err(PollError::Output)?;
        buf.drain(..used);
        if !more {
            break;
        }
    }
    end.warnings.extend(stream.warning());
    Ok(end)
}

/// Hands each complete value of a comma-separated list to `each`; returns the bytes used.
fn for_each_record(
    list: &[u8],
    each: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut at = 0;
    loop {
        while at < list.len() && matches!(list[at], b',' | b' ' | b'\t' | b'\r' | b'\n') {
            at += 1;
        }
        let Some(end) = value_end(list, at) else {
            return Ok(at);
        };
        each(&list[at..end])?;
        at = end;
    }
}

// ---- the small JSON reader ---------------------------------------------------------------------

/// The fields of a record that `watch` shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub id: Option<u64>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub file: Option<String>,
    pub message: Option<String>,
}

/// Reads the top-level `id`, `type`, `state`, `file` and `message` of a JSON object; other
/// keys are skipped, anything it cannot read leaves the fields found so far.
pub(crate) fn read_record(json: &[u8]) -> Fields {
    let mut fields = Fields::default();
    let mut at = skip_ws(json, 0);
    if json.get(at) != Some(&b'{') {
        return fields;
    }
    at += 1;
    loop {
        at = skip_ws(json, at);
        let Some((key, after_key)) = read_string(json, at) else {
            return fields;
        };
        at = skip_ws(json, after_key);
        if json.get(at) != Some(&b':') {
            return fields;
        }
        at = skip_ws(json, at + 1);
        let Some(end) = value_end(json, at) else {
            return fields;
        };
        let text = || read_string(json, at).map(|(s, _)| s);
        match key.as_str() {
            "id" => {
                fields.id = std::str::from_utf8(&json[at..end])
                    .ok()
                    .and_then(|n| n.parse().ok())
            }
            "type" => fields.kind = text(),
            "state" => fields.state = text(),
            "file" => fields.file = text(),
            "message" => fields.message = text(),
            _ => {}
        }
        at = skip_ws(json, end);
        match json.get(at) {
            Some(b',') => at += 1,
            _ => return fields,
        }
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while at < json.len() && matches!(json[at], b' ' | b'\t' | b'\r' | b'\n') {
        at += 1;
    }
    at
}

/// Where the JSON value starting at `at` ends; None when it is incomplete or absent.
fn value_end(json: &[u8], at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'"' => string_end(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *json.get(i)? {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = json[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(json.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

fn string_end(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match *json.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn hex4(json: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// Decodes the JSON string at `at`; returns it and where it ends. A lone surrogate escape
/// becomes U+FFFD, and so would bytes that are not UTF-8 (the core never passes any).
fn read_string(json: &[u8], at: usize) -> Option<(String, usize)> {
    if json.get(at) != Some(&b'"') {
        return None;
    }
    let mut out = String::new();
    let mut i = at + 1;
    let mut run = i;
    loop {
        match *json.get(i)? {
            b'"' => {
                out.push_str(&String::from_utf8_lossy(&json[run..i]));
                return Some((out, i + 1));
            }
            b'\\' => {
                out.push_str(&String::from_utf8_lossy(&json[run..i]));
                let c = match *json.get(i + 1)? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let unit = hex4(json, i + 2)?;
                        i += 6;
                        let low = (json.get(i..i + 2) == Some(b"\\u"))
                            .then(|| hex4(json, i + 2))
                            .flatten()
                            .filter(|low| (0xDC00..0xE000).contains(low));
                        let c = match (unit, low) {
                            (0xD800..=0xDBFF, Some(low)) => {
                                i += 6;
                                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                            }
                            _ => char::from_u32(unit),
                        };
                        out.push(c.unwrap_or('\u{FFFD}'));
                        run = i;
                        continue;
                    }
                    _ => return None,
                };
                out.push(c);
                i += 2;
                run = i;
            }
            _ => i += 1,
        }
    }
}

/// Text made safe for one terminal line: backslash doubled, tab/newline/CR as `\t` `\n` `\r`,
/// other control characters (C0, DEL, C1) as `\xNN`, and the characters that reorder or
/// break lines (bidirectional controls, line/paragraph separators) as `\u{NNNN}`.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

// ---- the display -------------------------------------------------------------------------------

/// What the terminal or the pipe shows.
struct View {
    tty: bool,
    colour: bool,
    out: io::Stdout,
    /// Records of the current run shown, per step state, and in all.
    counts: [u64; STATES.len()],
    records: u64,
    /// When this run's first record was seen, and how many came with it.
    started: Option<(Instant, u64)>,
    status_shown: bool,
    waiting_for: Option<Status>,
    warned: HashSet<String>,
}

const RESET: &str = "\x1b[0m";

fn state_colour(state: &str) -> &'static str {
    match state {
        "quarantined" => "\x1b[33m",
        "deleted" => "\x1b[35m",
        "no-action" => "\x1b[2m",
        "error" => "\x1b[1;31m",
        "mailbox-cleansed" => "\x1b[36m",
        "success" | "info" => "\x1b[1;32m",
        "warning" => "\x1b[1;33m",
        _ => "",
    }
}

impl View {
    fn new(tty: bool, colour: bool) -> View {
        View {
            tty,
            colour,
            out: io::stdout(),
            counts: [0; STATES.len()],
            records: 0,
            started: None,
            status_shown: false,
            waiting_for: None,
            warned: HashSet::new(),
        }
    }

    fn paint(&self, colour: &str, text: &str) -> String {
        if self.colour && !colour.is_empty() {
            format!("{colour}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Removes the status line so that a normal line can take its place.
    fn clear_status(&mut self) -> io::Result<()> {
        if self.status_shown {
            self.out.write_all(b"\r\x1b[2K")?;
            self.status_shown = false;
        }
        Ok(())
    }

    fn draw_status(&mut self, waiting: Option<Status>) -> io::Result<()> {
        if !self.tty {
            return Ok(());
        }
        let mut line = match waiting {
            Some(status) => format!("[{}] waiting for the run to start", status.as_str()),
            None => self.summary(),
        };
        // One row only, or clearing it would leave the wrapped part behind.
        if let Some(width) = sys::terminal_columns() {
            if let Some((cut, _)) = line.char_indices().nth(width.saturating_sub(1)) {
                line.truncate(cut);
            }
        }
        self.clear_status()?;
        let line = self.paint("\x1b[1m", &line);
        self.out.write_all(line.as_bytes())?;
        self.status_shown = true;
        self.out.flush()
    }

    /// Counts per state (each beside its full name), records, elapsed time and rate.
    fn summary(&self) -> String {
        let mut parts: Vec<String> = STATES
            .iter()
            .zip(self.counts)
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        let (elapsed, rate) = match self.started {
            Some((at, initial)) => {
                let secs = at.elapsed().as_secs_f64();
                let rate = if secs >= 0.5 {
                    format!("{:.1}/s", (self.records - initial) as f64 / secs)
                } else {
                    "-/s".to_string()
                };
                (secs, rate)
            }
            None => (0.0, "-/s".to_string()),
        };
        parts.push(format!(
            "{} records in {}, {rate}",
            self.records,
            duration(elapsed)
        ));
        parts.join(", ")
    }

    fn notice(&mut self, text: &str) -> io::Result<()> {
        self.clear_status()?;
        self.out.flush()?;
        let mut err = io::stderr().lock();
        writeln!(err, "clamscanner watch: {text}")
    }

    fn waiting(&mut self, status: Status) -> io::Result<()> {
        if self.records == 0 && self.waiting_for != Some(status) {
            self.waiting_for = Some(status);
            let text = match status {
                Status::None => {
                    "waiting for a run to start (status none: no log and no state file yet)"
                }
                Status::Queued => "the run is queued; waiting for it to start",
                _ => "the run is starting; waiting for its first record",
            };
            self.notice(text)?;
        }
        if self.records == 0 {
            self.draw_status(Some(status))
        } else {
            self.draw_status(None)
        }
    }

    fn warning(&mut self, text: &str) -> io::Result<()> {
        if self.warned.insert(text.to_string()) {
            self.notice(&format!("warning: {text}"))?;
        }
        Ok(())
    }

    fn restarted(&mut self, last_id: u64, first: u64) -> io::Result<()> {
        self.notice(&format!(
            "the log was restarted: a new run began (the last id seen was {last_id}, the log starts again at id {first})"
        ))?;
        if self.tty {
            let line = self.paint("\x1b[1m", "--- the log was restarted: a new run ---");
            writeln!(self.out, "{line}")?;
        }
        self.counts = [0; STATES.len()];
        self.records = 0;
        self.started = None;
        self.warned.clear();
        Ok(())
    }

    fn record(&mut self, f: &Fields) -> io::Result<()> {
        let field = |v: &Option<String>| printable(v.as_deref().unwrap_or(""));
        let (kind, state, file, message) = (
            field(&f.kind),
            field(&f.state),
            field(&f.file),
            field(&f.message),
        );
        if kind == "step" {
            if let Some(k) = STATES.iter().position(|s| *s == state) {
                self.counts[k] += 1;
            }
        }
        self.records += 1;
        self.waiting_for = None;
        if self.started.is_none() {
            self.started = Some((Instant::now(), self.records));
        }
        if !self.tty {
            let id = f.id.map(|id| id.to_string()).unwrap_or_default();
            return writeln!(self.out, "{id}\t{kind}\t{state}\t{file}\t{message}");
        }
        self.clear_status()?;
        let label = match kind.as_str() {
            "step" => format!("{state:<16}"),
            other => format!("{:<16}", format!("{other} {state}")),
        };
        let mut line = self.paint(state_colour(&state), &label);
        line.push(' ');
        line.push_str(&file);
        if !message.is_empty() {
            if !file.is_empty() {
                line.push_str("  ");
            }
            line.push_str(&self.paint("\x1b[2m", &message));
        }
        // The status line is drawn again once the poll's records are shown.
        writeln!(self.out, "{line}")
    }

    /// The last word: the final status line (on a terminal), the outcome on stderr.
    fn finish(&mut self, done: Option<&str>) -> io::Result<()> {
        if self.tty {
            if self.records > 0 || done.is_some() {
                self.draw_status(None)?;
            } else {
                self.clear_status()?;
            }
            if self.status_shown {
                self.out.write_all(b"\n")?;
                self.status_shown = false;
            }
        }
        self.out.flush()?;
        match done {
            Some(state) => self.notice(&format!(
                "done ({}): {}",
                if state.is_empty() { "no state" } else { state },
                self.summary()
            )),
            None => Ok(()),
        }
    }
}

fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = secs as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_it_shows() {
        let f = read_record(
            br#"{"type":"step","file":"a\"b\\c\u00e9\ud83d\udcc4\t","x":{"state":"no"},"state":"error","message":"m","id":12}"#,
        );
        assert_eq!(f.id, Some(12));
        assert_eq!(f.kind.as_deref(), Some("step"));
        assert_eq!(f.state.as_deref(), Some("error"));
        assert_eq!(f.file.as_deref(), Some("a\"b\\c\u{e9}\u{1F4C4}\t"));
        assert_eq!(f.message.as_deref(), Some("m"));
        let spaced =
            read_record(b" { \"id\" : 3 , \"type\" : \"done\" , \"a\":[1,{\"b\":\"]\"}] } ");
        assert_eq!(spaced.id, Some(3));
        assert_eq!(spaced.kind.as_deref(), Some("done"));
        // A lone surrogate and a high one followed by a non-low escape.
        let odd = read_record(br#"{"file":"\ud800x\ud800\u0041","id":1.5}"#);
        assert_eq!(odd.file.as_deref(), Some("\u{FFFD}x\u{FFFD}A"));
        assert_eq!(odd.id, None);
    }

    #[test]
    fn never_fails_on_broken_input() {
        let line = br#"{"type":"step","file":"x\u00","state":"error","id":7}"#;
        for end in 0..=line.len() {
            let _ = read_record(&line[..end]);
        }
        for junk in [
            &b""[..],
            b"[",
            b"{\"",
            b"{\"id\"",
            b"\"\\",
            b"{]}",
            b"nul",
            b"}",
        ] {
            let _ = read_record(junk);
            let _ = value_end(junk, 0);
        }
        assert_eq!(read_record(b"[1]"), Fields::default());
    }

    #[test]
    fn splits_a_list_of_records() {
        let list = br#"{"id":1,"m":"a,}b"},{"id":2,"x":[{"y":"]"}]},{"id":3"#;
        let mut ids = Vec::new();
        let used = for_each_record(list, &mut |r| {
            ids.push(read_record(r).id);
            Ok(())
        })
        .unwrap_or(0);
        assert_eq!(ids, vec![Some(1), Some(2)]);
        assert_eq!(
            &list[used..],
            br#"{"id":3"#,
            "the incomplete record is kept"
        );
    }

    #[test]
    fn names_cannot_drive_the_terminal() {
        assert_eq!(
            printable("a\tb\nc\\d\u{1b}[31m\u{7f}\u{9b}\u{202e}é"),
            "a\\tb\\nc\\\\d\\x1b[31m\\x7f\\x9b\\u{202e}é"
        );
    }
}
