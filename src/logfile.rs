//! Reading the disinfection log: a snapshot of complete lines, forward and backward line access,
//! and the bisection that finds where a client's `last_id` leaves off.
//!
//! Why this shape: a client polls all through a run, and a run can write a million records. The
//! ids increase in file order, so the first record after `last_id` is found by bisecting byte
//! offsets (O(log n) probes of one block each), the status needs only the last record (read
//! backwards from the end), and the records in between are streamed through one reused buffer.
//! Nothing here allocates per line, and memory is bounded by the longest line we accept.
//!
//! Snapshot: the answer covers the bytes up to the length seen when the log was opened, and only
//! up to its last `\n`. A writer may be appending a line right now; that torn tail is neither
//! returned nor counted, and the next poll sees it whole.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::jsonline::{self, Line};

/// Longer lines are malformed (SPEC §3) and are skipped without being held in memory.
pub const MAX_LINE: usize = 1 << 20;
/// The largest read.
const BLOCK: usize = 64 * 1024;
/// The first read of a [`Lines`]; later ones double up to [`BLOCK`].
const FIRST_READ: usize = 2048;
/// Logs (and bisection ranges) smaller than this are scanned: one read beats several probes.
pub const BISECT_WINDOW: u64 = BLOCK as u64;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The part of the log this answer describes: complete lines in `start..end`.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// 0, or 3 after a UTF-8 byte-order mark.
    pub start: u64,
    /// Just after the last `\n` within the length seen at open.
    pub end: u64,
}

impl Snapshot {
    pub fn take(file: &File) -> io::Result<Snapshot> {
        let len = file.metadata()?.len();
        let end = match rfind_newline(file, 0, len)? {
            Some(nl) => nl + 1,
            None => 0,
        };
        let mut head = [0u8; 3];
        let start = if end >= 3 && read_full_at(file, &mut head, 0)? == 3 && head == BOM {
            3
        } else {
            0
        };
        Ok(Snapshot { start, end })
    }
}

/// The last record of the snapshot: its id and whether it is `done`.
pub fn last_record(file: &File, snap: Snapshot) -> io::Result<Option<(u64, bool)>> {
    let mut line = Vec::new();
    let mut line_end = snap.end;
    while line_end > snap.start {
        let newline = line_end - 1;
        let line_start = match rfind_newline(file, snap.start, newline)? {
            Some(nl) => nl + 1,
            None => snap.start,
        };
        let len = newline - line_start;
        if len <= MAX_LINE as u64 {
            line.resize(len as usize, 0);
            if read_full_at(file, &mut line, line_start)? < line.len() {
                return Ok(None); // the log shrank under us: nothing trustworthy to report
            }
            if let Line::Record { id, done } = jsonline::classify(strip_cr(&line)) {
                return Ok(Some((id, done)));
            }
        }
        line_end = line_start;
    }
    Ok(None)
}

/// Where to start streaming so that every record with `id > last_id` is seen, without reading
/// the records before it: a line start at or before the first such record, and (when the log
/// does not start there) at or before the record just before it, so warnings can name it.
pub fn resume_point(file: &File, snap: Snapshot, last_id: u128, window: u64) -> io::Result<u64> {
    if last_id == 0 || snap.end - snap.start <= window {
        return Ok(snap.start);
    }
    // Smallest offset x whose following record (if any) is past last_id; ids increase in file
    // order, so this predicate is monotone in x.
    let (mut lo, mut hi) = (snap.start, snap.end);
    while hi - lo > window.max(1) {
        let mid = lo + (hi - lo) / 2;
        let at = next_line_start(file, snap, mid)?;
        let past = match first_record_id(file, snap, at)? {
            Some(id) => u128::from(id) > last_id,
            None => true,
        };
        if past {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let at = next_line_start(file, snap, lo)?;
    // Step back one line so the record just before the client's position is seen too.
    Ok(match at.checked_sub(1) {
        Some(newline) if at > snap.start => match rfind_newline(file, snap.start, newline)? {
            Some(nl) => nl + 1,
            None => snap.start,
        },
        _ => snap.start,
    })
}

/// The first line start at or after `x`.
pub fn next_line_start(file: &File, snap: Snapshot, x: u64) -> io::Result<u64> {
    if x <= snap.start {
        return Ok(snap.start);
    }
    Ok(match find_newline(file, x - 1, snap.end)? {
        Some(nl) => nl + 1,
        None => snap.end,
    })
}

fn first_record_id(file: &File, snap: Snapshot, from: u64) -> io::Result<Option<u64>> {
    let mut lines = Lines::new(file, from, snap.end);
    while let Some(item) = lines.next_line()? {
        if let Item::Line(text) = item {
            if let Line::Record { id, .. } = jsonline::classify(strip_cr(text)) {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

pub fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One line from [`Lines`].
pub enum Item<'a> {
    /// Without its `\n`.
    Line(&'a [u8]),
    /// Over [`MAX_LINE`]: skipped, its bytes not kept.
    TooLong,
}

/// Forward line reader over `pos..end` through one reused buffer (no allocation per line).
pub struct Lines<F: std::borrow::Borrow<File>> {
    file: F,
    /// File offset of the next byte to read.
    next_read: u64,
    end: u64,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// Size of the last read.
    chunk: usize,
    /// `buf[lo..scanned]` holds no `\n`.
    scanned: usize,
}

impl<F: std::borrow::Borrow<File>> Lines<F> {
    pub fn new(file: F, pos: u64, end: u64) -> Self {
        Lines {
            file,
            next_read: pos,
            end,
            buf: Vec::new(),
            lo: 0,
            hi: 0,
            chunk: FIRST_READ / 2,
            scanned: 0,
        }
    }

    /// [`Lines::new`] reusing `buf`'s allocation (see [`Lines::into_buffer`]).
    pub fn with_buffer(file: F, pos: u64, end: u64, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Lines {
            buf,
            ..Lines::new(file, pos, end)
        }
    }

    /// Gives the buffer back for the next reader.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    pub fn next_line(&mut self) -> io::Result<Option<Item<'_>>> {
        loop {
            // Bytes before `self.scanned` were already searched: long lines stay linear.
            let from = self.scanned.max(self.lo);
            if let Some(k) = memchr_newline(&self.buf[from..self.hi]).map(|k| k + from - self.lo) {
                let start = self.lo;
                self.lo += k + 1;
                self.scanned = self.lo;
                if k > MAX_LINE {
                    return Ok(Some(Item::TooLong));
                }
                return Ok(Some(Item::Line(&self.buf[start..start + k])));
            }
            if self.next_read >= self.end {
                // Only reachable when the file shrank under us: the tail is not a whole line.
                self.lo = self.hi;
                return Ok(None);
            }
            self.scanned = self.hi;
            if self.hi - self.lo > MAX_LINE {
                self.skip_past_newline()?;
                self.scanned = self.lo;
                return Ok(Some(Item::TooLong));
            }
            self.refill()?;
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.scanned = self.scanned.saturating_sub(self.lo);
            self.lo = 0;
        }
        // Start small (a bisection probe needs one line) and grow to full blocks for streams.
        self.chunk = (self.chunk * 2).clamp(FIRST_READ, BLOCK);
        let want = self.chunk.min((self.end - self.next_read) as usize);
        if self.buf.len() < self.hi + want {
            self.buf.resize(self.hi + want, 0);
        }
        let got = self
            .file
            .borrow()
            .read_at(&mut self.buf[self.hi..self.hi + want], self.next_read)?;
        if got == 0 {
            self.end = self.next_read; // truncated since the snapshot
        }
        self.hi += got;
        self.next_read += got as u64;
        Ok(())
    }

    /// Drops the over-long line in hand and everything up to its `\n`.
    fn skip_past_newline(&mut self) -> io::Result<()> {
        self.lo = 0;
        self.hi = 0;
        while self.next_read < self.end {
            self.refill()?;
            if let Some(k) = memchr_newline(&self.buf[..self.hi]) {
                self.lo = k + 1;
                return Ok(());
            }
            self.hi = 0;
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Offset of the last `\n` in `floor..before`.
fn rfind_newline(file: &File, floor: u64, before: u64) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 4096];
    let mut hi = before;
    while hi > floor {
        let lo = hi.saturating_sub(buf.len() as u64).max(floor);
        let chunk = &mut buf[..(hi - lo) as usize];
        let got = read_full_at(file, chunk, lo)?;
        if let Some(k) = chunk[..got].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + k as u64));
        }
        hi = lo;
    }
    Ok(None)
}

/// Offset of the first `\n` in `from..end`.
fn find_newline(file: &File, from: u64, end: u64) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 4096];
    let mut lo = from;
    while lo < end {
        let len = (end - lo).min(buf.len() as u64) as usize;
        let got = read_full_at(file, &mut buf[..len], lo)?;
        if got == 0 {
            return Ok(None);
        }
        if let Some(k) = memchr_newline(&buf[..got]) {
            return Ok(Some(lo + k as u64));
        }
        lo += got as u64;
    }
    Ok(None)
}

/// Position of the first `\n`.
pub fn memchr_newline(hay: &[u8]) -> Option<usize> {
    crate::sys::find_byte(hay, b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memchr_agrees_with_a_plain_search() {
        let mut hay = vec![b'x'; 100];
        assert_eq!(memchr_newline(&hay), None);
        for pos in [0, 7, 8, 9, 63, 99] {
            hay[pos] = b'\n';
            assert_eq!(memchr_newline(&hay), hay.iter().position(|&b| b == b'\n'));
        }
        assert_eq!(memchr_newline(b"\x8a\x0b\n"), Some(2));
    }
}
