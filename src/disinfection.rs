//! The heart: what `check_disinfection_status` answers for one account and one `last_id`.
//!
//! Everything that can refuse the call (opening, `fstat`, ownership, finding the last record) is
//! settled in [`check`], before the first byte of the answer; what is left is a [`RecordStream`]
//! that copies the records after `last_id` from the file into the response, a block at a time.
//!
//! Status rules (SPEC §3): a snapshot with records is `done` when its last record is `done`, else
//! `running`, whatever the client has already seen. With no record, the state file decides
//! (`queued`/`running`), and no state file means `none`.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::account::{Account, LOG_NAME, STATE_NAME};
use crate::jsonline::{self, Line};
use crate::logfile::{self, Item, Lines, Snapshot};

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
        let found = read_log(file, last_id, logfile::BISECT_WINDOW).map_err(|e| refused(&e))?;
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

/// Settles the answer from an opened log. `window`: below this many bytes the log is scanned
/// instead of bisected (a parameter so that tests can force either path on any log).
pub fn read_log(file: File, last_id: u128, window: u64) -> io::Result<LogAnswer> {
    let snap = Snapshot::take(&file)?;
    let mut effective = last_id;
    let mut status = None;
    let mut warning = None;
    if let Some((last, done)) = logfile::last_record(&file, snap)? {
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
    let from = logfile::resume_point(&file, snap, effective, window)?;
    Ok(LogAnswer {
        status,
        warning,
        records: RecordStream::new(file, snap, from, effective),
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

/// Streams the records after `last_id`, converted to valid UTF-8, comma-separated.
pub struct RecordStream {
    lines: Lines<File>,
    last_id: u128,
    emitted: u64,
    /// Id of the record most recently passed, emitted or not.
    previous_id: Option<u64>,
    malformed: u64,
    /// `previous_id` when the first counted malformed line was met.
    malformed_after: Option<u64>,
}

impl RecordStream {
    fn new(file: File, snap: Snapshot, from: u64, last_id: u128) -> Self {
        RecordStream {
            lines: Lines::new(file, from, snap.end),
            last_id,
            emitted: 0,
            previous_id: None,
            malformed: 0,
            malformed_after: None,
        }
    }

    /// Appends records to `out` until it holds at least `want` bytes; false once the stream ends.
    pub fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        while out.len() < want {
            let Some(item) = self.lines.next_line()? else {
                return Ok(false);
            };
            let line = match item {
                Item::Line(text) => logfile::strip_cr(text),
                Item::TooLong => {
                    note_malformed(
                        &mut self.malformed,
                        &mut self.malformed_after,
                        self.previous_id,
                    );
                    continue;
                }
            };
            let (verdict, ascii) = jsonline::classify_noting_ascii(line);
            match verdict {
                Line::Blank => {}
                Line::Malformed => {
                    note_malformed(
                        &mut self.malformed,
                        &mut self.malformed_after,
                        self.previous_id,
                    );
                }
                Line::Record { id, .. } if u128::from(id) <= self.last_id => {
                    // Lines before the client's position are not examined (SPEC §3): forget
                    // what was counted before this record, unless records were already sent
                    // (then ids went backwards, and the order is unspecified anyway).
                    if self.emitted == 0 {
                        self.malformed = 0;
                        self.malformed_after = None;
                    }
                    self.previous_id = Some(id);
                }
                Line::Record { id, .. } => {
                    if self.emitted > 0 {
                        out.push(b',');
                    }
                    if ascii {
                        out.extend_from_slice(line);
                    } else {
                        push_as_utf8(out, line);
                    }
                    self.emitted += 1;
                    self.previous_id = Some(id);
                }
            }
        }
        Ok(true)
    }

    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Malformed lines counted so far, and the id of the record before the first of them.
    pub fn malformed(&self) -> (u64, Option<u64>) {
        (self.malformed, self.malformed_after)
    }

    /// The warning about skipped lines, once the stream has ended.
    pub fn warning(&self) -> Option<String> {
        if self.malformed == 0 {
            return None;
        }
        let lines = if self.malformed == 1 {
            "line in the log was"
        } else {
            "lines in the log were"
        };
        let place = match self.malformed_after {
            Some(id) => format!("after the record with id {id}"),
            None => "at the start of the log".to_string(),
        };
        Some(format!(
            "{} malformed {lines} skipped, the first {place}.",
            self.malformed
        ))
    }
}

fn note_malformed(count: &mut u64, after: &mut Option<u64>, previous: Option<u64>) {
    if *count == 0 {
        *after = previous;
    }
    *count += 1;
}

/// Copies `bytes`, turning each byte that is not part of valid UTF-8 into the character of the
/// same number (U+0080..U+00FF), so the answer stays valid UTF-8 JSON and no record is lost.
pub fn push_as_utf8(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for &b in chunk.invalid() {
            out.extend_from_slice(&[0xC0 | (b >> 6), 0x80 | (b & 0x3F)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_become_latin1_characters() {
        let mut out = Vec::new();
        push_as_utf8(&mut out, b"caf\xe9 \xff ok \xc3\xa9");
        assert_eq!(String::from_utf8(out).ok().as_deref(), Some("café ÿ ok é"));
    }
}
