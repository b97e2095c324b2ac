//! The record stream: the lines after the client's position, copied as records (converted to
//! valid UTF-8, comma-separated), with the malformed ones counted for the warning. One pass, on
//! one core: classifying runs at several hundred MB/s, so even a full read of a large log is a
//! fraction of a second, and nothing here starts a thread or holds more than one line.

use crate::jsonline::{self, Line};
use crate::logfile::{self, Item, Lines, Log, ReadAt, ReadError, Snapshot};

/// What the log is read through: a `File`, or bytes in memory in tests.
pub type Source = Box<dyn ReadAt + Send>;

/// The stream's counts so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    emitted: u64,
    previous_id: Option<u64>,
    malformed: u64,
    /// The id of the record before the first counted malformed line.
    malformed_after: Option<u64>,
}

impl Tally {
    fn malformed_line(&mut self) {
        if self.malformed == 0 {
            self.malformed_after = self.previous_id;
        }
        self.malformed += 1;
    }

    /// A record at or before the client's position: lines before it are not examined (SPEC
    /// §3), so malformed lines counted so far are forgotten while nothing was sent.
    fn passed_record(&mut self, id: u64) {
        if self.emitted == 0 {
            self.malformed = 0;
            self.malformed_after = None;
        }
        self.previous_id = Some(id);
    }

    fn sent_record(&mut self, id: u64) {
        self.emitted += 1;
        self.previous_id = Some(id);
    }
}

/// Streams the records after `last_id`.
pub struct RecordStream {
    log: Log<Source>,
    lines: Lines,
    last_id: u128,
    tally: Tally,
    done: bool,
}

impl RecordStream {
    /// The records of `from..snap.end` with `id > last_id`, read through `log` (which has read
    /// the snapshot, the last record and the bisection: the final check covers those too).
    pub fn new(log: Log<Source>, snap: Snapshot, from: u64, last_id: u128) -> Self {
        RecordStream {
            log,
            lines: Lines::new(from, snap.end),
            last_id,
            tally: Tally::default(),
            done: false,
        }
    }

    /// Appends records to `out` until it holds at least `want` bytes; false once the stream
    /// ends, which is when the log is checked not to have changed under the answer.
    pub fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> Result<bool, ReadError> {
        if self.done {
            return Ok(false);
        }
        while out.len() < want {
            let Some(item) = self.lines.next_line(&self.log)? else {
                self.done = true;
                self.log.verify()?;
                return Ok(false);
            };
            let line = match item {
                Item::Line(text) => logfile::strip_cr(text),
                Item::Skipped => {
                    self.tally.malformed_line();
                    continue;
                }
            };
            let (verdict, ascii) = jsonline::classify_noting_ascii(line);
            match verdict {
                Line::Blank => self.log.spend(line.len() as u64 + 1)?,
                Line::Malformed => {
                    self.log.spend(line.len() as u64 + 1)?;
                    self.tally.malformed_line();
                }
                Line::Record { id, .. } if u128::from(id) <= self.last_id => {
                    self.tally.passed_record(id)
                }
                Line::Record { id, .. } => {
                    if self.tally.emitted > 0 {
                        out.push(b',');
                    }
                    if ascii {
                        out.extend_from_slice(line);
                    } else {
                        push_as_utf8(out, line);
                    }
                    self.tally.sent_record(id);
                }
            }
        }
        Ok(true)
    }

    /// Bytes read from the log for this answer so far (the final check included).
    pub fn bytes_read(&self) -> u64 {
        self.log.bytes_read()
    }

    /// Malformed lines counted (once the stream has ended), and the id of the record before
    /// the first of them.
    pub fn malformed(&self) -> (u64, Option<u64>) {
        (self.tally.malformed, self.tally.malformed_after)
    }

    /// The warning about skipped lines, once the stream has ended.
    pub fn warning(&self) -> Option<String> {
        let (count, after) = self.malformed();
        if count == 0 {
            return None;
        }
        let lines = if count == 1 {
            "line in the log was"
        } else {
            "lines in the log were"
        };
        let place = match after {
            Some(id) => format!("after the record with id {id}"),
            None => "at the start of the log".to_string(),
        };
        Some(format!(
            "{count} malformed {lines} skipped, the first {place}."
        ))
    }
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
