//! The heart: what `check_disinfection_status` answers for one account and one `last_id`.
//!
//! Everything that can refuse the call (opening, `fstat`, ownership, finding the last record) is
//! settled in [`check`], before the first byte of the answer; what is left is a [`RecordStream`]
//! that copies the records after `last_id` from the file into the response, a block at a time,
//! and once they are all sent checks that the log did not change under the answer (SPEC §3: an
//! answer never mixes two versions; see `logfile::Log::verify`).
//!
//! Status rules (SPEC §3): a snapshot with records is `done` when its last record is `done`, else
//! `running`, whatever the client has already seen. With no record, the state file decides
//! (`queued`/`running`), and no state file means `none`.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::account::{Account, FileRefusal, LOG_NAME, STATE_NAME};
use crate::logfile::{self, Log, ReadAt, ReadError, Snapshot};
use crate::records::Source;
pub use crate::records::{push_as_utf8, RecordStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Done,
    Running,
    Queued,
    None,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Running => "running",
            Status::Queued => "queued",
            Status::None => "none",
        }
    }
}

/// A settled answer whose records are still to be streamed.
pub struct Answer {
    pub log_path: PathBuf,
    pub status: Status,
    /// Warnings known before streaming; the stream adds its own at the end.
    pub warnings: Vec<String>,
    pub records: Option<RecordStream>,
}

/// Why [`check`] refused the call before the first byte of the answer. `Display` is the error
/// the client sees in the envelope (with `result.status` 0).
#[derive(Debug)]
pub enum CheckError {
    /// The log exists but was not opened, or its answer could not be settled.
    Log { path: PathBuf, why: FileProblem },
    /// The log holds no record, and the state file that then decides was not read.
    State { path: PathBuf, why: FileProblem },
}

/// What went wrong with one of the account's files.
#[derive(Debug)]
pub enum FileProblem {
    /// Not opened: a symlink, not a regular file, the wrong owner, or an `open` error.
    Refused(FileRefusal),
    /// The log was opened but reading it failed or found it unusable.
    Log(ReadError),
    /// The state file was opened but reading it failed.
    Io(io::Error),
}

impl CheckError {
    /// The log was shortened or rewritten while it was read: asking again will answer for
    /// the new log (SPEC §3), so a client that polls treats it as a notice.
    pub(crate) fn log_changed(&self) -> bool {
        matches!(
            self,
            CheckError::Log {
                why: FileProblem::Log(ReadError::Changed),
                ..
            }
        )
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Log { path, why } => write!(
                f,
                "The system did not read the disinfection log “{}”: {why}.",
                path.display()
            ),
            CheckError::State { path, why } => write!(
                f,
                "The system did not read the state file “{}”: {why}.",
                path.display()
            ),
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Refused(refusal) => write!(f, "{refusal}"),
            FileProblem::Log(e) => write!(f, "{e}"),
            FileProblem::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// Answers for `account`. `last_id` is a u128 so that any u64 id compares below a value that was
/// too large for u64 (SPEC §1: such values are larger than any id).
pub fn check(account: &Account, last_id: u128) -> Result<Answer, CheckError> {
    let log_path = account.path_of(LOG_NAME);
    let refused = |why: FileProblem| CheckError::Log {
        path: log_path.clone(),
        why,
    };
    let mut warnings = Vec::new();
    let log = account
        .open_owned(LOG_NAME)
        .map_err(|e| refused(FileProblem::Refused(e)))?;
    let mut records = None;
    let mut status = None;
    if let Some(file) = log {
        let found =
            read_log(file, last_id, Tuning::default()).map_err(|e| refused(FileProblem::Log(e)))?;
        status = found.status;
        warnings.extend(found.warning);
        records = Some(found.records);
    }
    let status = match status {
        Some(status) => status,
        None => state_file_status(account, &mut warnings)?,
    };
    Ok(Answer {
        log_path,
        status,
        warnings,
        records,
    })
}

/// What the log alone says: its status if it holds a record, a restart warning, and the
/// stream of records after `last_id`.
pub struct LogAnswer {
    pub status: Option<Status>,
    pub warning: Option<String>,
    pub records: RecordStream,
}

/// Sizes that choose between equivalent ways of reading; parameters so that tests can force
/// each way on small logs.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Below this many bytes the log is scanned instead of bisected.
    pub bisect_window: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            bisect_window: logfile::BISECT_WINDOW,
        }
    }
}

/// Settles the answer from an opened log (a `File`, or any other [`ReadAt`] in tests).
pub fn read_log<R: ReadAt + Send + 'static>(
    src: R,
    last_id: u128,
    tuning: Tuning,
) -> Result<LogAnswer, ReadError> {
    let log = Log::new(Box::new(src) as Source);
    let snap = Snapshot::take(&log)?;
    let mut effective = last_id;
    let mut status = None;
    let mut warning = None;
    if let Some((last, done)) = logfile::last_record(&log, snap)? {
        status = Some(if done { Status::Done } else { Status::Running });
        if last_id > u128::from(last) {
            let given = if last_id > u128::from(u64::MAX) {
                "a last_id beyond any id".to_string()
            } else {
                format!("last_id {last_id}")
            };
            warning = Some(format!(
                "The log was restarted since {given} was seen: its last record now has id {last}, so every record is returned."
            ));
            effective = 0;
        }
    }
    let from = logfile::resume_point(&log, snap, effective, tuning.bisect_window)?;
    Ok(LogAnswer {
        status,
        warning,
        records: RecordStream::new(log, snap, from, effective),
    })
}

/// The most of the state file read: it holds one word, so a large file costs no more than that
/// (and what is read of it is then not one of the words: status `none`, with a warning).
const STATE_FILE_READ: u64 = 256;

/// The state file's word when the log holds no record.
fn state_file_status(account: &Account, warnings: &mut Vec<String>) -> Result<Status, CheckError> {
    let path = account.path_of(STATE_NAME);
    let refused = |why: FileProblem| CheckError::State {
        path: path.clone(),
        why,
    };
    let opened = account
        .open_owned(STATE_NAME)
        .map_err(|e| refused(FileProblem::Refused(e)))?;
    let Some(file) = opened else {
        return Ok(Status::None);
    };
    let mut content = Vec::new();
    file.take(STATE_FILE_READ)
        .read_to_end(&mut content)
        .map_err(|e| refused(FileProblem::Io(e)))?;
    Ok(match content.trim_ascii() {
        b"queued" => Status::Queued,
        b"running" => Status::Running,
        _ => {
            warnings.push(format!(
                "The state file “{}” does not say “queued” or “running”; the status is reported as “none”.",
                path.display()
            ));
            Status::None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Homes;

    /// A home root under the temporary directory, removed at the end of the test.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The client's message of a refused check, for the account `alice` whose home `setup`
    /// prepared (given the home's path).
    fn refusal_of(name: &str, setup: impl Fn(&std::path::Path)) -> (PathBuf, String) {
        let root = Scratch(
            std::env::temp_dir().join(format!("clamscanner-check-{name}-{}", std::process::id())),
        );
        let home = root.0.join("alice");
        std::fs::create_dir_all(&home).expect("a scratch home");
        setup(&home);
        let account = Account::open(&Homes::Root(root.0.clone()), "alice").expect("the account");
        let message = match check(&account, 0) {
            Ok(_) => String::from("(answered)"),
            Err(e) => e.to_string(),
        };
        (home, message)
    }

    /// The messages are the client-visible contract (SPEC §3 errors): pinned word for word.
    #[test]
    fn only_a_log_that_changed_while_read_is_worth_asking_again() {
        let changed = CheckError::Log {
            path: PathBuf::from("/h/u/log"),
            why: FileProblem::Log(ReadError::Changed),
        };
        let damaged = CheckError::Log {
            path: PathBuf::from("/h/u/log"),
            why: FileProblem::Log(ReadError::Damaged),
        };
        let state = CheckError::State {
            path: PathBuf::from("/h/u/state"),
            why: FileProblem::Io(io::Error::other("x")),
        };
        assert!(changed.log_changed());
        assert!(!damaged.log_changed());
        assert!(!state.log_changed());
        assert!(changed.to_string().contains("changed while it was read"));
    }

    #[test]
    fn refusals_say_which_file_and_why() {
        let (home, message) = refusal_of("log-link", |home| {
            std::os::unix::fs::symlink("/dev/null", home.join(LOG_NAME)).expect("symlink");
        });
        assert_eq!(
            message,
            format!(
                "The system did not read the disinfection log “{}”: it is a symbolic link.",
                home.join(LOG_NAME).display()
            )
        );
        let (home, message) = refusal_of("log-dir", |home| {
            std::fs::create_dir(home.join(LOG_NAME)).expect("mkdir");
        });
        assert_eq!(
            message,
            format!(
                "The system did not read the disinfection log “{}”: it is a directory, not a regular file.",
                home.join(LOG_NAME).display()
            )
        );
        let (home, message) = refusal_of("state-link", |home| {
            std::os::unix::fs::symlink("/dev/null", home.join(STATE_NAME)).expect("symlink");
        });
        assert_eq!(
            message,
            format!(
                "The system did not read the state file “{}”: it is a symbolic link.",
                home.join(STATE_NAME).display()
            )
        );
        let (_, message) = refusal_of("nothing", |_| {});
        assert_eq!(
            message, "(answered)",
            "no log and no state file: status none"
        );
    }
}
