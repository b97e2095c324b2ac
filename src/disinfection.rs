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

use std::io::Read;
use std::path::PathBuf;

use crate::account::{Account, LOG_NAME, STATE_NAME};
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

/// Answers for `account`. `last_id` is a u128 so that any u64 id compares below a value that was
/// too large for u64 (SPEC §1: such values are larger than any id).
pub fn check(account: &Account, last_id: u128) -> Result<Answer, String> {
    let log_path = account.path_of(LOG_NAME);
    let refused = |why: &dyn std::fmt::Display| {
        format!(
            "The system did not read the disinfection log “{}”: {why}.",
            log_path.display()
        )
    };
    let mut warnings = Vec::new();
    let log = account.open_owned(LOG_NAME).map_err(|e| refused(&e))?;
    let mut records = None;
    let mut status = None;
    if let Some(file) = log {
        let found = read_log(file, last_id, Tuning::default()).map_err(|e| refused(&e))?;
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

/// The state file's word when the log holds no record.
fn state_file_status(account: &Account, warnings: &mut Vec<String>) -> Result<Status, String> {
    let path = account.path_of(STATE_NAME);
    let refused = |why: &dyn std::fmt::Display| {
        format!(
            "The system did not read the state file “{}”: {why}.",
            path.display()
        )
    };
    let Some(file) = account.open_owned(STATE_NAME).map_err(|e| refused(&e))? else {
        return Ok(Status::None);
    };
    let mut content = Vec::new();
    file.take(256)
        .read_to_end(&mut content)
        .map_err(|e| refused(&e))?;
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
