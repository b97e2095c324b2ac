//! `clamscanner simulate …`: plays a disinfection run into an account's files in real time, the
//! way cPanel's task writes them, so that people who write clients have something that moves.
//!
//! ```text
//! clamscanner simulate [--home-root DIR] --user NAME [--scenario NAME] [--records N]
//!                      [--rate PER_SECOND] [--seed S] [--loop]
//! ```
//!
//! A run: the state file says `queued`, then `running`; the log is emptied and gets one JSON
//! line per step through a block buffer (so lines are often split across `write` calls, and a
//! poll sees a torn last line), then the final `done` record; then the state file is removed.
//!
//! It often runs as root inside someone else's home, so it writes like a careful task: the
//! user name is checked as requests check it, the home directory is opened once and every file
//! is reached relative to it with `O_NOFOLLOW`; an existing log or state file must be a regular
//! file with one link, owned by the home's owner (a symlink is refused, exit 2); new files are
//! created under a temporary name with `O_EXCL`, given to the home's owner, and renamed into
//! place, so a reader never sees one half-made or owned by root. Everything written is decided
//! by a small seeded generator (no time in it), so `--seed` replays a run byte for byte.

use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::account::{is_valid_user_name, Homes, LOG_NAME, STATE_NAME};
use crate::config::{self, Flags};
use crate::sys;

const USAGE: &str = "\
usage: clamscanner simulate [--home-root DIR] --user NAME [--scenario NAME] [--records N]
                            [--rate PER_SECOND] [--seed S] [--loop]

Plays a disinfection run into the account's log and state file in real time.
Scenarios: steady (default), queued, torn, corrupt, restart, clean, errors.
Defaults: 200 records at 20 per second; --loop replays until interrupted.
Exit status: 0 the run was written, 1 a write failed, 2 usage error or a refused file.";

/// Records per run and records per second when not given.
const DEFAULT_RECORDS: u64 = 200;
const DEFAULT_RATE: f64 = 20.0;
/// Bounds on what a flag may ask for: a run fills at most this many records (a few GB of log)...
const MAX_RECORDS: u64 = 10_000_000;
/// ...at most this fast (past it the sleeps are below what a scheduler can keep anyway).
const MAX_RATE: f64 = 1_000_000.0;
/// How long every run stays `queued` before it starts...
const QUEUE_PAUSE: Duration = Duration::from_millis(300);
/// ...and how long the `queued` scenario does ("for a while": several polls at one a second).
const QUEUED_HOLD: Duration = Duration::from_secs(3);
/// `restart`: the first run stops unfinished and stays so this long (a client polling every
/// second sees its last record), then the new run's ids stay below the old last id this long,
/// so such a client can tell the log was restarted (SPEC §3: ids are all it has).
const RESTART_PAUSE: Duration = Duration::from_millis(1500);
const RESTART_HOLD: Duration = Duration::from_secs(3);
/// `--loop`: how long a finished run stays on show before the next one starts.
const LOOP_PAUSE: Duration = Duration::from_secs(3);
/// The simulated task's output buffer: a full buffer is written as one block.
const BLOCK: usize = 4096;
/// At most this many records wait in the buffer, so a slow run still moves (about four
/// writes a second at the default rate).
const MAX_PENDING: u64 = 8;
/// Longest pause inside a line in the `torn` scenario.
const MAX_TORN_PAUSE: Duration = Duration::from_millis(250);
/// New files are made under this name and renamed into place.
const TMP_NAME: &str = ".clamavconnector.disinfection.simulate.tmp";

#[derive(Debug)]
pub enum SimError {
    /// A bad flag or value (exit 2).
    Usage(String),
    /// The account or one of its files is not one simulate may write (exit 2).
    Refused(String),
    /// Writing failed midway (exit 1).
    Io(&'static str, io::Error),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Usage(why) | SimError::Refused(why) => write!(f, "{why}"),
            SimError::Io(what, e) => write!(f, "cannot {what}: {e}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Steady,
    Queued,
    Torn,
    Corrupt,
    Restart,
    Clean,
    Errors,
}

impl Scenario {
    pub fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "steady" => Scenario::Steady,
            "queued" => Scenario::Queued,
            "torn" => Scenario::Torn,
            "corrupt" => Scenario::Corrupt,
            "restart" => Scenario::Restart,
            "clean" => Scenario::Clean,
            "errors" => Scenario::Errors,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Queued => "queued",
            Scenario::Torn => "torn",
            Scenario::Corrupt => "corrupt",
            Scenario::Restart => "restart",
            Scenario::Clean => "clean",
            Scenario::Errors => "errors",
        }
    }
}

struct Options {
    homes: Homes,
    user: String,
    scenario: Scenario,
    records: u64,
    rate: f64,
    seed: Option<u64>,
    looping: bool,
}

fn usage(why: impl Into<String>) -> SimError {
    SimError::Usage(why.into())
}

fn parse_options(args: Vec<OsString>) -> Result<Option<Options>, SimError> {
    let mut opts = Options {
        homes: config::homes_from_env(&config::process_env),
        user: String::new(),
        scenario: Scenario::Steady,
        records: DEFAULT_RECORDS,
        rate: DEFAULT_RATE,
        seed: None,
        looping: false,
    };
    let mut user = None;
    let mut flags = Flags::new(args);
    while let Some((name, inline)) = flags.next_flag() {
        let value = |flags: &mut Flags| -> Result<String, SimError> {
            let raw = flags.value(&name, inline.clone()).map_err(usage)?;
            config::text(raw, &format!("--{name}")).map_err(|e| usage(e.to_string()))
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
            "home-root" => {
                opts.homes = Homes::Root(flags.value(&name, inline).map_err(usage)?.into())
            }
            "user" => user = Some(value(&mut flags)?),
            "scenario" => {
                let v = value(&mut flags)?;
                opts.scenario = Scenario::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--scenario must be steady, queued, torn, corrupt, restart, clean or errors, not {v:?}"
                    ))
                })?;
            }
            "records" => {
                let v = value(&mut flags)?;
                opts.records = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_RECORDS).contains(n))
                    .ok_or_else(|| {
                        usage(format!("--records must be 1 to {MAX_RECORDS}, not {v:?}"))
                    })?;
            }
            "rate" => {
                let v = value(&mut flags)?;
                opts.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0 && *r <= MAX_RATE)
                    .ok_or_else(|| {
                        usage(format!(
                            "--rate must be a number of records per second above 0 and at most {MAX_RATE}, not {v:?}"
                        ))
                    })?;
            }
            "seed" => {
                let v = value(&mut flags)?;
                opts.seed = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--seed must be a whole number, not {v:?}")))?,
                );
            }
            "loop" if inline.is_none() => opts.looping = true,
            other => return Err(usage(format!("unknown option --{other} (see --help)"))),
        }
    }
    if let Some(extra) = flags.positional.first() {
        return Err(usage(format!("unexpected argument {extra:?} (see --help)")));
    }
    opts.user = user.ok_or_else(|| usage("give the account with --user NAME"))?;
    if opts.scenario == Scenario::Restart && opts.records < MIN_RESTART_RECORDS {
        return Err(usage(format!(
            "the restart scenario needs --records {MIN_RESTART_RECORDS} or more"
        )));
    }
    Ok(Some(opts))
}

/// The restart scenario's second run must outgrow the first (else a client that missed the
/// restart would lose nothing visible).
const MIN_RESTART_RECORDS: u64 = 4;

/// `clamscanner simulate ARGS`; main turns the error into the exit code.
pub fn main(args: Vec<OsString>) -> Result<(), SimError> {
    let Some(opts) = parse_options(args)? else {
        return Ok(());
    };
    let home = Home::open(&opts.homes, &opts.user)?;
    home.check_existing(LOG_NAME)?;
    home.check_existing(STATE_NAME)?;
    let log = home.open_log()?;
    let seed = opts.seed.unwrap_or_else(time_seed);
    eprintln!(
        "clamscanner simulate: scenario {}, {} records at {}/s into {} (--seed {seed}){}",
        opts.scenario.as_str(),
        if opts.scenario == Scenario::Clean {
            1
        } else {
            opts.records
        },
        opts.rate,
        home.path.display(),
        if opts.looping {
            ", looping until interrupted"
        } else {
            ""
        }
    );
    let mut player = Player {
        rng: Rng(seed),
        home,
        log,
        gen: Generator::default(),
        buf: Vec::new(),
        rate: opts.rate,
    };
    player.gen.home = player.home.path.as_os_str().as_bytes().to_vec();
    loop {
        player.scenario(opts.scenario, opts.records)?;
        if !opts.looping {
            return Ok(());
        }
        std::thread::sleep(LOOP_PAUSE);
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

// ---- the account's files -----------------------------------------------------------------------

/// The account's open home directory and who must own its files.
struct Home {
    dir: File,
    path: PathBuf,
    uid: u32,
    gid: u32,
}

fn cname(name: &str) -> Result<CString, SimError> {
    CString::new(name).map_err(|_| SimError::Refused(format!("{name:?} is not a file name")))
}

impl Home {
    fn open(homes: &Homes, user: &str) -> Result<Home, SimError> {
        if !is_valid_user_name(user.as_bytes()) {
            return Err(SimError::Refused(format!(
                "{user:?} is not a valid account name (1-32 of A-Z a-z 0-9 . _ -, not starting with . or -)"
            )));
        }
        let (path, account_uid) = match homes {
            Homes::Root(root) => (root.join(user), None),
            Homes::System => {
                let entry = sys::user_by_name(&cname(user)?)
                    .map_err(|e| SimError::Refused(format!("cannot look up {user}: {e}")))?
                    .ok_or_else(|| SimError::Refused(format!("no account named {user}")))?;
                if entry.uid == 0 {
                    return Err(SimError::Refused(format!(
                        "the account {user} has uid 0; it is never served, so never simulated"
                    )));
                }
                (
                    PathBuf::from(std::ffi::OsStr::from_bytes(&entry.home)),
                    Some(entry.uid),
                )
            }
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                SimError::Refused(format!(
                    "cannot open the home directory {}: {e}",
                    path.display()
                ))
            })?;
        let meta = dir
            .metadata()
            .map_err(|e| SimError::Refused(format!("cannot stat {}: {e}", path.display())))?;
        let uid = account_uid.unwrap_or(meta.uid());
        let me = sys::effective_uid();
        if me != 0 && me != uid {
            return Err(SimError::Refused(format!(
                "the files must belong to uid {uid} (the home's owner): run as that user or as root"
            )));
        }
        Ok(Home {
            path: std::path::absolute(&path).unwrap_or(path),
            dir,
            uid,
            gid: meta.gid(),
        })
    }

    /// Refuses an existing file that the server would refuse, or that could lead elsewhere.
    fn check_existing(&self, name: &str) -> Result<(), SimError> {
        match sys::open_in_dir(&self.dir, &cname(name)?) {
            Ok(file) => self.check_file(name, &file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.refusal(name, e)),
        }
    }

    fn refusal(&self, name: &str, e: io::Error) -> SimError {
        let why = if e.raw_os_error() == Some(libc::ELOOP) {
            "it is a symbolic link, and simulate never writes through one".to_string()
        } else {
            e.to_string()
        };
        SimError::Refused(format!(
            "refusing {}: {why}",
            self.path.join(name).display()
        ))
    }

    fn check_file(&self, name: &str, file: &File) -> Result<(), SimError> {
        let refuse = |why: String| {
            SimError::Refused(format!(
                "refusing {}: {why}",
                self.path.join(name).display()
            ))
        };
        let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(refuse("it is not a regular file".into()));
        }
        if meta.nlink() != 1 {
            return Err(refuse(format!(
                "it has {} hard links; simulate writes only files with one",
                meta.nlink()
            )));
        }
        if meta.uid() != self.uid {
            return Err(refuse(format!(
                "it is owned by uid {}, not by the home's owner (uid {})",
                meta.uid(),
                self.uid
            )));
        }
        Ok(())
    }

    /// Makes `name` hold `content`, atomically: written under a temporary name, given to the
    /// home's owner, renamed into place (replacing, never following, whatever is there).
    fn put(&self, name: &str, content: &[u8]) -> Result<(), SimError> {
        let tmp = cname(TMP_NAME)?;
        let target = cname(name)?;
        let mut file = match sys::create_new_in_dir(&self.dir, &tmp, 0o644) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by an interrupted run; the entry itself is removed, never its target.
                sys::unlink_in_dir(&self.dir, &tmp)
                    .map_err(|e| SimError::Io("remove a stale temporary file", e))?;
                sys::create_new_in_dir(&self.dir, &tmp, 0o644)
            }
            other => other,
        }
        .map_err(|e| self.refusal(TMP_NAME, e))?;
        let written = file.write_all(content).and_then(|()| {
            if sys::effective_uid() == 0 {
                sys::fchown(&file, self.uid, self.gid)
            } else {
                Ok(())
            }
        });
        drop(file);
        if let Err(e) = written.and_then(|()| sys::rename_in_dir(&self.dir, &tmp, &target)) {
            let _ = sys::unlink_in_dir(&self.dir, &tmp);
            return Err(SimError::Io("write the account's file", e));
        }
        Ok(())
    }

    /// The log, opened for appending (created empty if missing) and checked.
    fn open_log(&self) -> Result<File, SimError> {
        let name = cname(LOG_NAME)?;
        let file = match sys::open_append_in_dir(&self.dir, &name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.put(LOG_NAME, b"")?;
                sys::open_append_in_dir(&self.dir, &name)
            }
            other => other,
        }
        .map_err(|e| self.refusal(LOG_NAME, e))?;
        self.check_file(LOG_NAME, &file)?;
        Ok(file)
    }

    fn set_state(&self, word: &str) -> Result<(), SimError> {
        self.put(STATE_NAME, format!("{word}\n").as_bytes())
    }

    fn remove_state(&self) -> Result<(), SimError> {
        match sys::unlink_in_dir(&self.dir, &cname(STATE_NAME)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(SimError::Io("remove the state file", e))
            }
            _ => Ok(()),
        }
    }
}

// ---- the generator -----------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Home-relative places and names as they turn up in real reports: web files, maildir
/// messages, names with spaces, quotes, backslashes and control characters, non-ASCII text.
const WEB_DIRS: &[&str] = &[
    "public_html/",
    "public_html/wp-content/uploads/2024/11/",
    "public_html/wp-content/plugins/contact-form-7/includes/",
    "public_html/wp-includes/js/",
    "public_html/images/",
    "public_html/cgi-bin/",
    "public_ftp/incoming/",
    "tmp/",
    "public_html/фото/",
    "public_html/写真/2024/",
    "public_html/Café Menu/",
    "public_html/\"quoted\" dir/",
    "public_html/back\\slash/",
    "public_html/año nuevo/",
];
const WEB_BASES: &[&str] = &[
    "index",
    "wp-config",
    "shell",
    "c99",
    "upload",
    "mailer",
    "wso",
    "класс",
    "ファイル",
    "naïve résumé",
    "\u{1F4C4}doc",
    "tab\there",
    "ctl\u{1}x",
    "it's",
    "say \"hi\"",
    "a=b=c",
    "Zürich Ümlaut",
];
const EXTS: &[&str] = &[
    ".php",
    ".php.suspected",
    ".js",
    ".html",
    ".jpg.php",
    ".zip",
    ".phtml",
    "",
];
const MAIL_DIRS: &[&str] = &[
    "mail/new/",
    "mail/cur/",
    "mail/.Junk/cur/",
    "mail/example.com/info/cur/",
    "mail/example.com/sales/new/",
    "mail/exämple.de/büro/new/",
];
const MAILBOXES: &[&str] = &[
    "mail/inbox",
    "mail/example.com/info/inbox",
    "mail/.Junk",
    "mail/example.com/sales/inbox",
];
/// File names are bytes and the task writes them unconverted: a Latin-1 é, 0xFF, a truncated
/// sequence, an overlong '/', an encoded surrogate.
const RAW_BYTES: &[&[u8]] = &[b"\xe9", b"\xff", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"];
const ERRNOS: &[&str] = &[
    "Permission denied",
    "Operation not permitted",
    "No such file or directory",
    "Read-only file system",
    "Disk quota exceeded",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Quarantined,
    Deleted,
    NoAction,
    Error,
    MailboxCleansed,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Quarantined => "quarantined",
            StepState::Deleted => "deleted",
            StepState::NoAction => "no-action",
            StepState::Error => "error",
            StepState::MailboxCleansed => "mailbox-cleansed",
        }
    }
}

/// Makes the records; counts the failures for the final message.
#[derive(Default)]
struct Generator {
    home: Vec<u8>,
    failed: u64,
    steps: u64,
}

impl Generator {
    fn state(&self, rng: &mut Rng, errors: bool) -> StepState {
        // Weights per thousand: a normal run mostly quarantines; `errors` mostly fails.
        let weights: [(StepState, u64); 5] = if errors {
            [
                (StepState::Error, 600),
                (StepState::Quarantined, 200),
                (StepState::Deleted, 100),
                (StepState::NoAction, 50),
                (StepState::MailboxCleansed, 50),
            ]
        } else {
            [
                (StepState::Quarantined, 400),
                (StepState::Deleted, 200),
                (StepState::NoAction, 200),
                (StepState::Error, 120),
                (StepState::MailboxCleansed, 80),
            ]
        };
        let mut roll = rng.below(1000);
        for (state, weight) in weights {
            if roll < weight {
                return state;
            }
            roll -= weight;
        }
        StepState::Quarantined
    }

    fn file(&self, rng: &mut Rng, state: StepState) -> Vec<u8> {
        let mut f = Vec::new();
        if state == StepState::MailboxCleansed {
            f.extend_from_slice(rng.pick(MAILBOXES).as_bytes());
            return f;
        }
        if rng.chance(200) {
            let t = 1_700_000_000 + rng.below(100_000_000);
            f.extend_from_slice(rng.pick(MAIL_DIRS).as_bytes());
            f.extend_from_slice(
                format!(
                    "{t}.M{}P{}.host{}.example.net,S={}:2,S",
                    rng.below(999_999),
                    rng.below(99_999),
                    rng.below(9),
                    rng.below(900_000)
                )
                .as_bytes(),
            );
            return f;
        }
        f.extend_from_slice(rng.pick(WEB_DIRS).as_bytes());
        f.extend_from_slice(rng.pick(WEB_BASES).as_bytes());
        if rng.chance(500) {
            f.extend_from_slice(format!("_{:x}", rng.below(0xFF_FFFF)).as_bytes());
        }
        if rng.chance(80) {
            let raw: &&[u8] = rng.pick(RAW_BYTES);
            f.extend_from_slice(raw);
        }
        f.extend_from_slice(rng.pick(EXTS).as_bytes());
        f
    }

    fn step(&mut self, rng: &mut Rng, id: u64, errors: bool) -> Vec<u8> {
        let state = self.state(rng, errors);
        let file = self.file(rng, state);
        // A few records spell non-ASCII as \u escapes (the writer's other encoder setting).
        let ascii = rng.chance(50);
        let mut line = br#"{"type":"step","file":""#.to_vec();
        push_json_text(&mut line, &file, ascii);
        line.extend_from_slice(br#"","state":""#);
        line.extend_from_slice(state.as_str().as_bytes());
        line.push(b'"');
        self.steps += 1;
        let message = match state {
            StepState::NoAction => Some(b"No action specified for file.".to_vec()),
            StepState::Error => {
                self.failed += 1;
                Some(self.error_message(rng, &file))
            }
            _ => None,
        };
        if let Some(message) = message {
            line.extend_from_slice(br#","message":""#);
            push_json_text(&mut line, &message, ascii);
            line.push(b'"');
        }
        line.extend_from_slice(format!(",\"id\":{id}}}\n").as_bytes());
        line
    }

    fn error_message(&self, rng: &mut Rng, file: &[u8]) -> Vec<u8> {
        let errno = rng.pick(ERRNOS).as_bytes();
        let home = &self.home;
        let roll = rng.below(100);
        let mut m = Vec::new();
        if roll < 50 {
            m.extend_from_slice("The system could not remove the “".as_bytes());
            m.extend_from_slice(home);
            m.push(b'/');
            m.extend_from_slice(file);
            m.extend_from_slice("” file: ".as_bytes());
            m.extend_from_slice(errno);
        } else if roll < 85 || file.starts_with(b"mail/") {
            m.extend_from_slice("The system failed to move the file “".as_bytes());
            m.extend_from_slice(home);
            m.push(b'/');
            m.extend_from_slice(file);
            m.extend_from_slice("” to “".as_bytes());
            m.extend_from_slice(home);
            m.extend_from_slice(b"/quarantine_clamavconnector/");
            m.extend(file.iter().map(|&b| if b == b'/' { b'_' } else { b }));
            m.extend_from_slice("” because of an error: ".as_bytes());
            m.extend_from_slice(errno);
        } else {
            m.extend_from_slice("The file “".as_bytes());
            m.extend_from_slice(file);
            m.extend_from_slice("” is not in a mailbox.".as_bytes());
        }
        m
    }

    /// A problem the task reports before it starts on the files.
    fn issue(&self, rng: &mut Rng, id: u64, errors: bool) -> Vec<u8> {
        let (state, message) = if errors {
            (
                "error",
                format!(
                    "The system could not create the “{}/quarantine_clamavconnector” directory: Disk quota exceeded",
                    String::from_utf8_lossy(&self.home)
                ),
            )
        } else {
            (
                "warning",
                format!(
                    "The system skipped {} files that no longer exist.",
                    2 + rng.below(5)
                ),
            )
        };
        let mut line = br#"{"type":"issue","state":""#.to_vec();
        line.extend_from_slice(state.as_bytes());
        line.extend_from_slice(br#"","message":""#);
        push_json_text(&mut line, message.as_bytes(), false);
        line.extend_from_slice(format!("\",\"id\":{id}}}\n").as_bytes());
        line
    }

    fn done(&self, id: u64, kind: Done) -> Vec<u8> {
        match kind {
            Done::Success => format!("{{\"type\":\"done\",\"state\":\"success\",\"id\":{id}}}\n"),
            Done::Clean => format!(
                "{{\"type\":\"done\",\"state\":\"info\",\"message\":\"There were no infected files to disinfect.\",\"id\":{id}}}\n"
            ),
            Done::Failed => format!(
                "{{\"type\":\"done\",\"state\":\"error\",\"message\":\"The disinfection finished with errors: {} of {} files could not be processed.\",\"id\":{id}}}\n",
                self.failed, self.steps
            ),
        }
        .into_bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Success,
    Clean,
    Failed,
}

/// Appends `text` as the inside of a JSON string, escaped the way the task's encoder does:
/// `"`, `\` and control characters always; other non-ASCII only when `ascii` (as `\uXXXX`,
/// surrogate pairs above U+FFFF); bytes that are not UTF-8 are copied unconverted, as the task
/// copies file names.
fn push_json_text(out: &mut Vec<u8>, text: &[u8], ascii: bool) {
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\r' => out.extend_from_slice(b"\\r"),
                c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                    }
                }
                c => {
                    let mut bytes = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut bytes).as_bytes());
                }
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
}

// ---- the player --------------------------------------------------------------------------------

/// How the buffered bytes reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// A block buffer: full blocks, or what is there after a few records, often mid-line.
    Block,
    /// Pieces of 1 to 4096 bytes with pauses inside lines.
    Torn,
}

/// One run of the task.
struct Run {
    records: u64,
    done: Option<Done>,
    queued_for: Duration,
    /// The first `ids` records spread over this long (the restart's slow start).
    slow_start: Option<(u64, Duration)>,
    errors: bool,
    corrupt: bool,
    flush: Flush,
}

struct Player {
    rng: Rng,
    home: Home,
    log: File,
    gen: Generator,
    buf: Vec<u8>,
    rate: f64,
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

impl Player {
    fn scenario(&mut self, scenario: Scenario, records: u64) -> Result<(), SimError> {
        let run = Run {
            records,
            done: Some(Done::Success),
            queued_for: QUEUE_PAUSE,
            slow_start: None,
            errors: false,
            corrupt: false,
            flush: Flush::Block,
        };
        match scenario {
            Scenario::Steady => self.play(run),
            Scenario::Queued => self.play(Run {
                queued_for: QUEUED_HOLD,
                ..run
            }),
            Scenario::Torn => self.play(Run {
                flush: Flush::Torn,
                ..run
            }),
            Scenario::Corrupt => self.play(Run {
                corrupt: true,
                ..run
            }),
            Scenario::Clean => self.play(Run {
                records: 1,
                done: Some(Done::Clean),
                ..run
            }),
            Scenario::Errors => self.play(Run {
                errors: true,
                done: Some(Done::Failed),
                ..run
            }),
            Scenario::Restart => {
                let first = (records * 2 / 5).max(2);
                self.play(Run {
                    records: first,
                    done: None,
                    ..run
                })?;
                std::thread::sleep(RESTART_PAUSE);
                self.play(Run {
                    slow_start: Some(((first / 2).max(1), RESTART_HOLD)),
                    ..run
                })
            }
        }
    }

    fn play(&mut self, run: Run) -> Result<(), SimError> {
        self.gen.failed = 0;
        self.gen.steps = 0;
        self.buf.clear();
        self.home.set_state("queued")?;
        self.log
            .set_len(0)
            .map_err(|e| SimError::Io("empty the log", e))?;
        std::thread::sleep(run.queued_for);
        self.home.set_state("running")?;
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let pending_max = ((self.rate / 4.0) as u64).clamp(1, MAX_PENDING);
        let (slow_ids, slow_for) = run.slow_start.unwrap_or((0, Duration::ZERO));
        let corrupt_at = run.corrupt.then_some((run.records / 2).max(1));
        let with_issue = run.records > 2 && run.done != Some(Done::Clean) && self.rng.chance(300);
        let mut pending = 0u64;
        for id in 1..=run.records {
            let due = if id <= slow_ids {
                start + slow_for.mul_f64(id as f64 / (slow_ids + 1) as f64)
            } else {
                start + slow_for + interval.mul_f64((id - slow_ids) as f64)
            };
            sleep_until(due);
            if corrupt_at == Some(id) {
                // A line cut short by a crashed writer, then a blank line.
                let line = self.gen.step(&mut self.rng, id, run.errors);
                let cut = 10 + self.rng.below((line.len() as u64).saturating_sub(12)) as usize;
                self.buf.extend_from_slice(&line[..cut.min(line.len() - 1)]);
                self.buf.extend_from_slice(b"\n\n");
            }
            let line = if id == run.records && run.done.is_some() {
                self.gen.done(id, run.done.unwrap_or(Done::Success))
            } else if id == 1 && with_issue {
                self.gen.issue(&mut self.rng, id, run.errors)
            } else {
                self.gen.step(&mut self.rng, id, run.errors)
            };
            let line_len = line.len();
            self.buf.extend_from_slice(&line);
            pending += 1;
            match run.flush {
                Flush::Torn => self.write_pieces(usize::MAX, interval / 4)?,
                // The restart's slow start must be seen at once: no record waits.
                _ if id <= slow_ids => self.write_pieces(2, Duration::ZERO)?,
                Flush::Block => {
                    if self.buf.len() >= BLOCK {
                        let full = self.buf.len() / BLOCK * BLOCK;
                        self.write_out(full)?;
                        pending = 0;
                    } else if pending >= pending_max {
                        // What a flush at this moment leaves: often the start of a line.
                        let mut len = self.buf.len();
                        if self.rng.chance(600) && line_len > 1 {
                            len -= 1 + self.rng.below(line_len as u64 - 1) as usize;
                        }
                        self.write_out(len)?;
                        pending = 0;
                    }
                }
            }
        }
        let all = self.buf.len();
        self.write_out(all)?;
        if run.done.is_some() {
            self.home.remove_state()?;
        }
        Ok(())
    }

    /// Writes the first `len` buffered bytes in one `write`.
    fn write_out(&mut self, len: usize) -> Result<(), SimError> {
        if len == 0 {
            return Ok(());
        }
        self.log
            .write_all(&self.buf[..len])
            .map_err(|e| SimError::Io("write the log", e))?;
        self.buf.drain(..len);
        Ok(())
    }

    /// Writes the whole buffer in at most `pieces` random pieces (1..4096 bytes, a fifth of
    /// them 1..3), pausing up to `pause` after each one that ends inside a line.
    fn write_pieces(&mut self, pieces: usize, pause: Duration) -> Result<(), SimError> {
        let pause = pause.min(MAX_TORN_PAUSE);
        let mut left = pieces;
        while !self.buf.is_empty() {
            left -= 1;
            let len = if left == 0 {
                self.buf.len()
            } else {
                let size = if self.rng.chance(200) {
                    1 + self.rng.below(3)
                } else {
                    1 + self.rng.below(BLOCK as u64)
                };
                (size as usize).min(self.buf.len())
            };
            let inside_line = self.buf.get(len.wrapping_sub(1)) != Some(&b'\n');
            self.write_out(len)?;
            if !pause.is_zero() && inside_line {
                std::thread::sleep(pause.mul_f64(self.rng.below(1000) as f64 / 1000.0));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_the_same_for_a_seed() {
        let lines = |seed| {
            let mut rng = Rng(seed);
            let mut gen = Generator {
                home: b"/home/u".to_vec(),
                ..Generator::default()
            };
            (1..200)
                .map(|id| gen.step(&mut rng, id, id % 3 == 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(7), lines(7));
        assert_ne!(lines(7), lines(8));
    }

    #[test]
    fn every_record_is_one_line_the_classifier_accepts() {
        let mut rng = Rng(3);
        let mut gen = Generator {
            home: b"/home/u".to_vec(),
            ..Generator::default()
        };
        let mut states = std::collections::BTreeSet::new();
        let mut not_utf8 = 0;
        for id in 1..2000 {
            let line = gen.step(&mut rng, id, id % 2 == 0);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let body = &line[..line.len() - 1];
            not_utf8 += usize::from(std::str::from_utf8(body).is_err());
            match crate::jsonline::classify(body) {
                crate::jsonline::Line::Record { id: got, .. } => assert_eq!(got, id),
                other => panic!("line {id} is {other:?}: {}", String::from_utf8_lossy(body)),
            }
            for s in [
                "quarantined",
                "deleted",
                "no-action",
                "error",
                "mailbox-cleansed",
            ] {
                if body
                    .windows(s.len() + 10)
                    .any(|w| w == format!("\"state\":\"{s}\"").as_bytes())
                {
                    states.insert(s);
                }
            }
        }
        assert_eq!(states.len(), 5, "{states:?}");
        assert!(not_utf8 > 0, "some file names are not UTF-8");
        for (kind, want) in [
            (Done::Success, "success"),
            (Done::Clean, "info"),
            (Done::Failed, "error"),
        ] {
            let line = gen.done(9, kind);
            assert!(matches!(
                crate::jsonline::classify(&line[..line.len() - 1]),
                crate::jsonline::Line::Record { id: 9, .. }
            ));
            assert!(String::from_utf8_lossy(&line).contains(&format!("\"state\":\"{want}\"")));
        }
        let issue = gen.issue(&mut rng, 1, true);
        assert!(matches!(
            crate::jsonline::classify(&issue[..issue.len() - 1]),
            crate::jsonline::Line::Record { id: 1, .. }
        ));
    }

    #[test]
    fn text_is_escaped_like_the_task_escapes_it() {
        let mut out = Vec::new();
        push_json_text(&mut out, b"a\"b\\c\td\x01\xc3\xa9 \xe9", false);
        assert_eq!(out, b"a\\\"b\\\\c\\td\\u0001\xc3\xa9 \xe9");
        let mut ascii = Vec::new();
        push_json_text(&mut ascii, "\u{e9}\u{1F4C4}".as_bytes(), true);
        assert_eq!(ascii, b"\\u00e9\\ud83d\\udcc4");
        let mut raw = Vec::new();
        push_json_text(&mut raw, b"x\xffy", true);
        assert_eq!(raw, b"x\xffy");
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
    }
}
