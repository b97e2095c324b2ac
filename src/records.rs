//! The record stream: the lines after the client's position, copied as records (converted to
//! valid UTF-8, comma-separated), with the malformed ones counted for the warning.
//!
//! The bookkeeping is kept as an [`Effect`]: what a run of consecutive lines does to the counts,
//! computed without knowing what came before the run. One run covers the whole stream when it is
//! read in one pass; a large full read is cut into runs classified on several cores
//! (`fanout`), whose effects are merged in file order into the same [`Tally`]. Both ways give
//! the same answer byte for byte (`tests/log_equivalence.rs` checks it).

use std::fs::File;
use std::io;

use crate::fanout::Fanout;
use crate::jsonline::{self, Line};
use crate::logfile::{self, Item, Lines, Snapshot};

/// What a run of lines does to the stream's bookkeeping.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// Records sent.
    pub emitted: u64,
    /// Id of the last record in the run, sent or not.
    pub last_id: Option<u64>,
    /// Malformed lines in the run.
    pub malformed: u64,
    /// For the first malformed line: the id of the record before it within the run, or None
    /// when no record of the run precedes it (then it is the one before the run).
    pub first_malformed_after: Option<u64>,
    /// Set when a record at or before the client's position comes before the run's first sent
    /// record: lines before it are not examined (SPEC §3). Holds the malformed lines counted
    /// after the last such record, and the id before the first of them.
    pub restart: Option<(u64, Option<u64>)>,
}

impl Effect {
    fn malformed_line(&mut self) {
        if self.malformed == 0 {
            self.first_malformed_after = self.last_id;
        }
        self.malformed += 1;
        if let Some((count, after)) = &mut self.restart {
            if *count == 0 {
                *after = self.last_id;
            }
            *count += 1;
        }
    }

    fn passed_record(&mut self, id: u64) {
        if self.emitted == 0 {
            self.restart = Some((0, None));
        }
        self.last_id = Some(id);
    }

    fn sent_record(&mut self, id: u64) {
        self.emitted += 1;
        self.last_id = Some(id);
    }
}

/// The counts of the whole stream so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub emitted: u64,
    pub previous_id: Option<u64>,
    pub malformed: u64,
    /// The id of the record before the first counted malformed line.
    pub malformed_after: Option<u64>,
}

impl Tally {
    /// Adds the effect of the run that follows everything counted so far.
    pub fn merge(&mut self, run: &Effect) {
        match run.restart {
            // Nothing sent yet: what came before the client's position is forgotten.
            Some((count, after)) if self.emitted == 0 => {
                self.malformed = count;
                self.malformed_after = after;
            }
            _ if run.malformed > 0 => {
                if self.malformed == 0 {
                    self.malformed_after = match run.first_malformed_after {
                        Some(id) => Some(id),
                        None => self.previous_id,
                    };
                }
                self.malformed += run.malformed;
            }
            _ => {}
        }
        if run.last_id.is_some() {
            self.previous_id = run.last_id;
        }
        self.emitted += run.emitted;
    }
}

/// Reads lines from `lines` into `out` until `out` holds `want` bytes or the lines end (then
/// returns false), sending records with `id > last_id`, a comma before each but the run's first.
pub fn scan_run<F: std::borrow::Borrow<File>>(
    lines: &mut Lines<F>,
    last_id: u128,
    effect: &mut Effect,
    out: &mut Vec<u8>,
    want: usize,
) -> io::Result<bool> {
    while out.len() < want {
        let Some(item) = lines.next_line()? else {
            return Ok(false);
        };
        let line = match item {
            Item::Line(text) => logfile::strip_cr(text),
            Item::TooLong => {
                effect.malformed_line();
                continue;
            }
        };
        let (verdict, ascii) = jsonline::classify_noting_ascii(line);
        match verdict {
            Line::Blank => {}
            Line::Malformed => effect.malformed_line(),
            Line::Record { id, .. } if u128::from(id) <= last_id => effect.passed_record(id),
            Line::Record { id, .. } => {
                if effect.emitted > 0 {
                    out.push(b',');
                }
                if ascii {
                    out.extend_from_slice(line);
                } else {
                    push_as_utf8(out, line);
                }
                effect.sent_record(id);
            }
        }
    }
    Ok(true)
}

/// Streams the records after `last_id`.
pub struct RecordStream {
    source: Source,
    tally: Tally,
}

enum Source {
    /// One pass, one run: its effect is merged when it ends.
    Sequential {
        lines: Lines<File>,
        last_id: u128,
        run: Effect,
        done: bool,
    },
    /// Runs classified on several cores, merged in order.
    Parallel(Fanout),
}

/// Ranges at least this large are classified on several cores.
pub const PARALLEL_FROM: u64 = 8 << 20;

impl RecordStream {
    /// The records of `from..snap.end` with `id > last_id`: classified on several cores from
    /// `parallel_from` bytes on, in runs of `run_bytes`, else in one pass.
    pub fn with_tuning(
        file: File,
        snap: Snapshot,
        from: u64,
        last_id: u128,
        parallel_from: u64,
        run_bytes: u64,
    ) -> Self {
        let source = match Fanout::start(&file, snap, from, last_id, parallel_from, run_bytes) {
            Some(fanout) => Source::Parallel(fanout),
            None => Source::Sequential {
                lines: Lines::new(file, from, snap.end),
                last_id,
                run: Effect::default(),
                done: false,
            },
        };
        RecordStream {
            source,
            tally: Tally::default(),
        }
    }

    /// Appends records to `out` until it holds at least `want` bytes; false once the stream ends.
    pub fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        match &mut self.source {
            Source::Sequential {
                lines,
                last_id,
                run,
                done,
            } => {
                if *done {
                    return Ok(false);
                }
                let more = scan_run(lines, *last_id, run, out, want)?;
                if !more {
                    self.tally.merge(run);
                    *done = true;
                }
                Ok(more)
            }
            Source::Parallel(fanout) => fanout.fill(&mut self.tally, out, want),
        }
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

    /// Merging the effects of any split of a run equals the effect of the whole run.
    #[test]
    fn effects_merge_like_one_run() {
        // B = blank, M = malformed, L = record at or before last_id, S = record sent.
        let script = "MLMMSMLSMMLM";
        let apply = |steps: &str, first_id: u64| {
            let mut e = Effect::default();
            for (k, c) in steps.chars().enumerate() {
                let id = first_id + k as u64;
                match c {
                    'M' => e.malformed_line(),
                    'L' => e.passed_record(id),
                    'S' => e.sent_record(id),
                    _ => {}
                }
            }
            e
        };
        let mut whole = Tally::default();
        whole.merge(&apply(script, 1));
        for cut in 0..=script.len() {
            for cut2 in cut..=script.len() {
                let mut parts = Tally::default();
                parts.merge(&apply(&script[..cut], 1));
                parts.merge(&apply(&script[cut..cut2], 1 + cut as u64));
                parts.merge(&apply(&script[cut2..], 1 + cut2 as u64));
                assert_eq!(parts, whole, "cuts at {cut} and {cut2}");
            }
        }
    }
}
