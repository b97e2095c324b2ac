//! Reading the disinfection log: a snapshot of complete lines, forward and backward line access,
//! the bisection that finds where a client's `last_id` leaves off, and the check that the log did
//! not change under the answer.
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
//!
//! Everything is read through [`ReadAt`] (pread on a `File`, or bytes in memory for tests) and one
//! [`Log`] per answer, which does three things for every read: it skips the holes of a sparse file
//! without reading them, it charges what is not a record against [`MAX_WASTE`] (so that a poll
//! stays O(k) + O(log n) reads whatever the file holds), and it keeps a witness of what was read,
//! so that [`Log::verify`] can tell at the end whether the log changed under the answer.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::jsonline::{self, Line};
use crate::sys::{self, Seek};

/// Longer lines are malformed (SPEC §3) and are skipped without being held in memory.
pub const MAX_LINE: usize = 1 << 20;
/// The bytes one answer may spend on what is not a record (malformed, blank and over-long lines,
/// torn tails, holes) before it gives up with [`ReadError::Damaged`] (SPEC §3). A real log has
/// none of these beyond a torn tail; 64 MiB is 64 over-long lines, or a million malformed ones.
pub const MAX_WASTE: u64 = 64 << 20;
/// What stepping over one hole costs against [`MAX_WASTE`]. A hole is not read, but it costs
/// system calls, and a file can hold millions of them: priced as one full read ([`BLOCK`]), this
/// bounds them to about a thousand.
pub const HOLE_COST: u64 = BLOCK as u64;
/// The largest read, and so the most memory a read of the log takes beyond the longest line.
/// Not the answer's chunk (`envelope::CHUNK`), though both are 64 KiB.
const BLOCK: usize = 64 * 1024;
/// The first read of a [`Lines`] and of a backward search; later ones double up to [`BLOCK`].
const FIRST_READ: usize = 2048;
/// Logs (and bisection ranges) smaller than this are scanned: one read beats several probes.
pub const BISECT_WINDOW: u64 = BLOCK as u64;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why the log could not be read to the end of the answer.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The log was shortened or rewritten while the answer read it (SPEC §3).
    Changed,
    /// More than [`MAX_WASTE`] bytes of it are not records (SPEC §3).
    Damaged,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Changed => f.write_str(
                "the log changed while it was read (it was shortened or rewritten); ask again",
            ),
            ReadError::Damaged => write!(
                f,
                "the log is damaged: more than {} MiB of it are not records",
                MAX_WASTE >> 20
            ),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// The seam under every read of the log: "read at offset", the size, and where the data lies.
pub trait ReadAt {
    /// Like `pread`: up to `buf.len()` bytes at `offset`, 0 at or past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn size(&self) -> io::Result<u64>;
    /// The first stretch of data at or after `offset`, as `(start, end)` with
    /// `offset <= start < end`, `end` being where the next hole (or the end of the file) begins;
    /// None when only holes, or nothing, follow. Sources without holes need not override it.
    fn data_from(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let size = self.size()?;
        Ok((offset < size).then_some((offset, size)))
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn data_from(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let start = match sys::seek_extent(self, offset, true)? {
            Seek::At(start) => start,
            Seek::Nothing => return Ok(None),
            Seek::Unsupported => return Ok(Some((offset, u64::MAX))),
        };
        Ok(match sys::seek_extent(self, start, false)? {
            Seek::At(end) if end > start => Some((start, end)),
            // Shortened between the two calls: the end of the data is unknown, and a read past
            // the new end comes back short, which the reader reports.
            Seek::At(_) | Seek::Unsupported => Some((start, u64::MAX)),
            Seek::Nothing => None,
        })
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(rest) = usize::try_from(offset).ok().and_then(|at| self.get(at..)) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn data_from(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_from(offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn data_from(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_from(offset)
    }
}

/// The log as one answer reads it: every read goes through here (see the module comment).
pub struct Log<R> {
    src: R,
    /// Bytes charged against [`MAX_WASTE`] so far.
    waste: Cell<u64>,
    /// Bytes read so far, the check's own included: the measure of work the tests use.
    read: Cell<u64>,
    witness: RefCell<Witness>,
}

/// What the answer relied on: closed entries, and the read being extended (a stream is one).
#[derive(Default)]
struct Witness {
    closed: Vec<Seen>,
    open: Option<(u64, u64, Hasher)>,
}

/// One thing the answer relied on, in the order it was learnt.
enum Seen {
    /// `len` bytes at `offset` read as these (hashed; consecutive reads are merged).
    Bytes { offset: u64, len: u64, hash: u64 },
    /// No data in `from..to`: a hole, taken as zeros without reading it.
    Hole { from: u64, to: u64 },
}

impl<R: ReadAt> Log<R> {
    pub fn new(src: R) -> Self {
        Log {
            src,
            waste: Cell::new(0),
            read: Cell::new(0),
            witness: RefCell::new(Witness::default()),
        }
    }

    /// Bytes read through this log so far (the final check's re-reading included).
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    /// Bytes charged against [`MAX_WASTE`] so far.
    pub fn waste(&self) -> u64 {
        self.waste.get()
    }

    fn size(&self) -> Result<u64, ReadError> {
        Ok(self.src.size()?)
    }

    /// Fills `buf` from `offset` from the source, not witnessed.
    fn read_raw(&self, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
        let mut done = 0;
        while done < buf.len() {
            match self.src.read_at(&mut buf[done..], offset + done as u64) {
                // Every read is of bytes seen to exist when the log was opened: short means
                // shortened.
                Ok(0) => return Err(ReadError::Changed),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.read.set(self.read.get() + buf.len() as u64);
        Ok(())
    }

    /// Fills `buf` from `offset`, and remembers what was read for [`Log::verify`].
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
        self.read_raw(buf, offset)?;
        let mut witness = self.witness.borrow_mut();
        match &mut witness.open {
            Some((at, len, hash)) if *at + *len == offset => {
                *len += buf.len() as u64;
                hash.write(buf);
            }
            open => {
                let mut hash = Hasher::default();
                hash.write(buf);
                if let Some((offset, len, hash)) = open.replace((offset, buf.len() as u64, hash)) {
                    let hash = hash.finish();
                    witness.closed.push(Seen::Bytes { offset, len, hash });
                }
            }
        }
        Ok(())
    }

    fn data_from(&self, offset: u64) -> Result<Option<(u64, u64)>, ReadError> {
        Ok(self.src.data_from(offset)?)
    }

    /// Takes `from..to` as a hole (zeros, never a line end), charged and witnessed.
    fn hole(&self, from: u64, to: u64) -> Result<(), ReadError> {
        if from < to {
            self.witness
                .borrow_mut()
                .closed
                .push(Seen::Hole { from, to });
            self.spend(HOLE_COST)?;
        }
        Ok(())
    }

    /// Charges `bytes` spent on what is not a record.
    pub fn spend(&self, bytes: u64) -> Result<(), ReadError> {
        let total = self.waste.get().saturating_add(bytes);
        self.waste.set(total);
        if total > MAX_WASTE {
            return Err(ReadError::Damaged);
        }
        Ok(())
    }

    /// Whether the log still holds what the answer was computed from; [`ReadError::Changed`]
    /// if not. Call it once the answer has read everything, before it claims success.
    ///
    /// Why this is enough: the answer is a deterministic function of the results of its reads
    /// (bytes, and where the holes are), and every one of them is in the witness. If each read,
    /// done again now, gives the same result, then the answer is exactly the answer for the log
    /// as it is now, one version, whatever happened in between. A rewrite that is still there
    /// (other bytes, or a shorter file) fails the comparison. The bytes are compared by a 64-bit
    /// hash: two different contents pass with a chance of about 2^-64, and only a writer that
    /// both builds such a pair and restores the earlier bytes while this check reads could pass
    /// it on purpose; that writer is the account itself, fooling its own answer. Appending,
    /// which the writer does all through a run, changes no byte that was read, so a poll during
    /// a run never fails here. Cost: one more read of what was read (a full read of a large log
    /// reads it twice; the second read is a copy from the page cache and a hash, a fraction of
    /// classifying it), and memory for one entry per separate read (the stream is one entry).
    pub fn verify(&self) -> Result<(), ReadError> {
        let witness = self.witness.borrow();
        let open = witness
            .open
            .as_ref()
            .map(|(offset, len, hash)| Seen::Bytes {
                offset: *offset,
                len: *len,
                hash: hash.finish(),
            });
        let mut buf = Vec::new();
        for seen in witness.closed.iter().chain(open.as_ref()) {
            match seen {
                Seen::Bytes { offset, len, hash } => {
                    let mut again = Hasher::default();
                    let mut at = *offset;
                    let end = offset + len;
                    while at < end {
                        let n = (end - at).min(BLOCK as u64) as usize;
                        buf.resize(n, 0);
                        self.read_raw(&mut buf, at)?;
                        again.write(&buf);
                        at += n as u64;
                    }
                    if again.finish() != *hash {
                        return Err(ReadError::Changed);
                    }
                }
                Seen::Hole { from, to } => {
                    if matches!(self.data_from(*from)?, Some((start, _)) if start < *to) {
                        return Err(ReadError::Changed);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A fast 64-bit hash of a byte stream, the same however the stream is cut into pieces: four
/// independent multiply-xor lanes over 32-byte blocks, so that it runs at memory speed. Each
/// step is a bijection of the lane for a fixed word and of the word for a fixed lane, so a
/// single changed word always changes the result. Not for adversaries (see [`Log::verify`]).
#[derive(Clone)]
struct Hasher {
    lanes: [u64; 4],
    pending: [u8; 32],
    npending: usize,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            lanes: [
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ],
            pending: [0; 32],
            npending: 0,
            len: 0,
        }
    }
}

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher {
    fn block(&mut self, block: &[u8]) {
        for (lane, word) in self.lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = ((*lane ^ u64::from_le_bytes(w)).wrapping_mul(MIX)).rotate_left(31);
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.npending > 0 {
            let take = (32 - self.npending).min(bytes.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&bytes[..take]);
            self.npending += take;
            bytes = &bytes[take..];
            if self.npending < 32 {
                return;
            }
            let block = self.pending;
            self.block(&block);
            self.npending = 0;
        }
        let mut blocks = bytes.chunks_exact(32);
        for block in blocks.by_ref() {
            self.block(block);
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut last = self.clone();
        let tail = last.npending;
        last.pending[tail..].fill(0);
        let block = last.pending;
        last.block(&block);
        let mut h = last.len ^ (tail as u64).rotate_left(48);
        for lane in last.lanes {
            h = (h ^ lane).wrapping_mul(MIX).rotate_left(27);
        }
        h ^ (h >> 29)
    }
}

/// The part of the log this answer describes: complete lines in `start..end`.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// 0, or 3 after a UTF-8 byte-order mark.
    pub start: u64,
    /// Just after the last `\n` within the length seen at open.
    pub end: u64,
}

impl Snapshot {
    pub fn take<R: ReadAt>(log: &Log<R>) -> Result<Snapshot, ReadError> {
        let len = log.size()?;
        let end = match rfind_newline(log, 0, len)? {
            Some(nl) => nl + 1,
            None => 0,
        };
        let mut head = [0u8; 3];
        if end >= 3 && !has_hole(log, 0, 3)? {
            log.read_exact_at(&mut head, 0)?;
        }
        let start = if head == BOM { 3 } else { 0 };
        Ok(Snapshot { start, end })
    }
}

/// The last record of the snapshot: its id and whether it is `done`.
pub fn last_record<R: ReadAt>(
    log: &Log<R>,
    snap: Snapshot,
) -> Result<Option<(u64, bool)>, ReadError> {
    let mut line = Vec::new();
    let mut line_end = snap.end;
    while line_end > snap.start {
        let newline = line_end - 1;
        // The backward search charges what it scans: lines that are not records cost.
        let line_start = match rfind_newline(log, snap.start, newline)? {
            Some(nl) => nl + 1,
            None => snap.start,
        };
        let len = newline - line_start;
        if len <= MAX_LINE as u64 && !has_hole(log, line_start, newline)? {
            line.resize(len as usize, 0);
            log.read_exact_at(&mut line, line_start)?;
            if let Line::Record { id, done } = jsonline::classify(strip_cr(&line)) {
                return Ok(Some((id, done)));
            }
        }
        line_end = line_start;
    }
    Ok(None)
}

/// Whether `from..to` holds a hole (witnessed and charged when it does).
fn has_hole<R: ReadAt>(log: &Log<R>, from: u64, to: u64) -> Result<bool, ReadError> {
    if from >= to {
        return Ok(false);
    }
    match log.data_from(from)? {
        Some((start, end)) if start == from && end >= to => Ok(false),
        Some((start, _)) if start > from => {
            log.hole(from, start.min(to))?;
            Ok(true)
        }
        Some((_, end)) => {
            log.hole(end, end + 1)?;
            Ok(true)
        }
        None => {
            log.hole(from, to)?;
            Ok(true)
        }
    }
}

/// Where to start streaming so that every record with `id > last_id` is seen, without reading
/// the records before it: a line start at or before the first such record, and (when the log
/// does not start there) at or before the record just before it, so warnings can name it.
pub fn resume_point<R: ReadAt>(
    log: &Log<R>,
    snap: Snapshot,
    last_id: u128,
    window: u64,
) -> Result<u64, ReadError> {
    if last_id == 0 || snap.end - snap.start <= window {
        return Ok(snap.start);
    }
    // Smallest offset x whose following record (if any) is past last_id; ids increase in file
    // order, so this predicate is monotone in x. It holds at `hi` throughout (at the end: no
    // record follows), so a probe whose first record starts at or after `hi` gets the same
    // answer as `hi` without reading that far: each probe reads at most up to `hi`.
    let (mut lo, mut hi) = (snap.start, snap.end);
    while hi - lo > window.max(1) {
        let mid = lo + (hi - lo) / 2;
        let at = next_line_start(log, snap, mid)?;
        let past = match first_record_id(log, snap, at, hi)? {
            Some(id) => u128::from(id) > last_id,
            None => true,
        };
        if past {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let at = next_line_start(log, snap, lo)?;
    // Step back one line so the record just before the client's position is seen too.
    Ok(match at.checked_sub(1) {
        Some(newline) if at > snap.start => match rfind_newline(log, snap.start, newline)? {
            Some(nl) => nl + 1,
            None => snap.start,
        },
        _ => snap.start,
    })
}

/// The first line start at or after `x`.
pub fn next_line_start<R: ReadAt>(log: &Log<R>, snap: Snapshot, x: u64) -> Result<u64, ReadError> {
    if x <= snap.start {
        return Ok(snap.start);
    }
    Ok(match find_newline(log, x - 1, snap.end)? {
        Some(nl) => nl + 1,
        None => snap.end,
    })
}

/// The id of the first record among the lines that start in `from..stop`.
fn first_record_id<R: ReadAt>(
    log: &Log<R>,
    snap: Snapshot,
    from: u64,
    stop: u64,
) -> Result<Option<u64>, ReadError> {
    let mut lines = Lines::new(from, snap.end);
    lines.stop = stop;
    while let Some(item) = lines.next_line(log)? {
        match item {
            Item::Line(text) => match jsonline::classify(strip_cr(text)) {
                Line::Record { id, .. } => return Ok(Some(id)),
                _ => log.spend(text.len() as u64 + 1)?,
            },
            Item::Skipped => {}
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
    /// Over [`MAX_LINE`], or holding a hole (zeros: never valid JSON): skipped, its bytes not
    /// kept, and already charged against [`MAX_WASTE`].
    Skipped,
}

/// Forward line reader over `pos..end` through one reused buffer (no allocation per line).
/// Linear in the bytes read whatever the lines' lengths: no byte is searched twice.
pub struct Lines {
    /// File offset of the next byte to read.
    next_read: u64,
    /// No read goes past this: the snapshot's end.
    end: u64,
    /// No line starting at or after this is returned.
    stop: u64,
    /// `next_read..data_end` is known to be data (no hole).
    data_end: u64,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// Size of the last read.
    chunk: usize,
    /// `buf[lo..scanned]` holds no `\n`.
    scanned: usize,
}

impl Lines {
    pub fn new(pos: u64, end: u64) -> Self {
        Lines {
            next_read: pos,
            end,
            stop: end,
            data_end: pos,
            buf: Vec::new(),
            lo: 0,
            hi: 0,
            chunk: FIRST_READ / 2,
            scanned: 0,
        }
    }

    /// The file offset of the next line's start.
    pub fn position(&self) -> u64 {
        self.next_read - (self.hi - self.lo) as u64
    }

    pub fn next_line<R: ReadAt>(&mut self, log: &Log<R>) -> Result<Option<Item<'_>>, ReadError> {
        if self.position() >= self.stop {
            return Ok(None);
        }
        loop {
            // Bytes before `self.scanned` were already searched: long lines stay linear.
            let from = self.scanned.max(self.lo);
            if let Some(k) = memchr_newline(&self.buf[from..self.hi]).map(|k| k + from - self.lo) {
                let start = self.lo;
                self.lo += k + 1;
                self.scanned = self.lo;
                if k > MAX_LINE {
                    log.spend(k as u64 + 1)?;
                    return Ok(Some(Item::Skipped));
                }
                return Ok(Some(Item::Line(&self.buf[start..start + k])));
            }
            if self.next_read >= self.end {
                if self.lo == self.hi {
                    return Ok(None);
                }
                // The snapshot ends with a `\n`; a line without one means the log changed.
                return Err(ReadError::Changed);
            }
            self.scanned = self.hi;
            if self.hi - self.lo > MAX_LINE || self.step_over_hole(log)? {
                self.skip_rest_of_line(log)?;
                return Ok(Some(Item::Skipped));
            }
            self.refill(log)?;
        }
    }

    /// Makes `next_read` a data byte, stepping over a hole there; true if there was one.
    fn step_over_hole<R: ReadAt>(&mut self, log: &Log<R>) -> Result<bool, ReadError> {
        if self.next_read < self.data_end {
            return Ok(false);
        }
        match log.data_from(self.next_read)? {
            Some((start, end)) if start < self.end => {
                self.data_end = end;
                if start == self.next_read {
                    return Ok(false);
                }
                log.hole(self.next_read, start)?;
                self.next_read = start;
                Ok(true)
            }
            // Only holes up to the snapshot's end, which was a `\n`: the log changed.
            _ => Err(ReadError::Changed),
        }
    }

    fn refill<R: ReadAt>(&mut self, log: &Log<R>) -> Result<(), ReadError> {
        if self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.scanned = self.scanned.saturating_sub(self.lo);
            self.lo = 0;
        }
        // Start small (a bisection probe needs one line) and grow to full blocks for streams.
        self.chunk = (self.chunk * 2).clamp(FIRST_READ, BLOCK);
        let room = self.end.min(self.data_end) - self.next_read;
        let want = (self.chunk as u64).min(room) as usize;
        if self.buf.len() < self.hi + want {
            self.buf.resize(self.hi + want, 0);
        }
        log.read_exact_at(&mut self.buf[self.hi..self.hi + want], self.next_read)?;
        self.hi += want;
        self.next_read += want as u64;
        Ok(())
    }

    /// Drops the line in hand (over-long, or holding a hole) and everything up to its `\n`,
    /// charging every byte of it.
    fn skip_rest_of_line<R: ReadAt>(&mut self, log: &Log<R>) -> Result<(), ReadError> {
        log.spend((self.hi - self.lo) as u64)?;
        self.lo = 0;
        self.hi = 0;
        self.scanned = 0;
        loop {
            if self.next_read >= self.end {
                // The snapshot ends with a `\n`, so every line ends before it.
                return Err(ReadError::Changed);
            }
            self.step_over_hole(log)?;
            self.refill(log)?;
            if let Some(k) = memchr_newline(&self.buf[..self.hi]) {
                log.spend(k as u64 + 1)?;
                self.lo = k + 1;
                self.scanned = self.lo;
                return Ok(());
            }
            log.spend(self.hi as u64)?;
            self.hi = 0;
        }
    }
}

/// Offset of the last `\n` in `floor..before`, stepping over holes; every byte scanned is
/// charged (it is a torn tail, or part of a line that is not a record, or of the one record
/// looked for: a few hundred bytes).
fn rfind_newline<R: ReadAt>(
    log: &Log<R>,
    floor: u64,
    before: u64,
) -> Result<Option<u64>, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = FIRST_READ as u64;
    let mut hi = before;
    let mut stretches = Vec::new();
    while hi > floor {
        let lo = hi.saturating_sub(chunk).max(floor);
        chunk = (chunk * 2).min(BLOCK as u64);
        // Where the data lies in lo..hi.
        stretches.clear();
        let mut at = lo;
        while at < hi {
            match log.data_from(at)? {
                Some((start, end)) if start < hi => {
                    stretches.push((start, end.min(hi)));
                    at = end;
                }
                _ => break,
            }
        }
        let Some(&(_, last_end)) = stretches.last() else {
            // A hole from before `lo` up to `hi`: find where the data before it ends.
            let data_end = data_end_before(log, floor, lo)?;
            log.hole(data_end.unwrap_or(floor), hi)?;
            match data_end {
                Some(end) => {
                    hi = end;
                    continue;
                }
                None => return Ok(None),
            }
        };
        log.hole(last_end, hi)?;
        for k in (0..stretches.len()).rev() {
            let (start, end) = stretches[k];
            log.spend(end - start)?;
            buf.resize((end - start) as usize, 0);
            log.read_exact_at(&mut buf, start)?;
            if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                return Ok(Some(start + i as u64));
            }
            let hole_from = if k == 0 { lo } else { stretches[k - 1].1 };
            log.hole(hole_from, start)?;
        }
        hi = lo;
    }
    Ok(None)
}

/// Just past the last data byte in `floor..x`; None when that range is all hole. Bisects with
/// `SEEK_DATA`: O(log(x - floor)) system calls, nothing read.
fn data_end_before<R: ReadAt>(log: &Log<R>, floor: u64, x: u64) -> Result<Option<u64>, ReadError> {
    let mut last = match log.data_from(floor)? {
        Some((start, end)) if start < x => end.min(x) - 1,
        _ => return Ok(None),
    };
    // `last` is data; nothing in `hi..x` is.
    let mut hi = x;
    while last + 1 < hi {
        let mid = last + 1 + (hi - last - 1) / 2;
        match log.data_from(mid)? {
            Some((start, end)) if start < hi => last = end.min(hi) - 1,
            _ => hi = mid,
        }
    }
    Ok(Some(last + 1))
}

/// Offset of the first `\n` in `from..end`, stepping over holes; every byte scanned is charged.
fn find_newline<R: ReadAt>(log: &Log<R>, from: u64, end: u64) -> Result<Option<u64>, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = FIRST_READ as u64;
    let mut at = from;
    let mut data_end = from;
    while at < end {
        if at >= data_end {
            match log.data_from(at)? {
                Some((start, stretch_end)) if start < end => {
                    log.hole(at, start)?;
                    at = start;
                    data_end = stretch_end;
                }
                _ => {
                    log.hole(at, end)?;
                    return Ok(None);
                }
            }
        }
        let len = chunk.min(end - at).min(data_end - at);
        chunk = (chunk * 2).min(BLOCK as u64);
        log.spend(len)?;
        buf.resize(len as usize, 0);
        log.read_exact_at(&mut buf, at)?;
        if let Some(k) = memchr_newline(&buf) {
            return Ok(Some(at + k as u64));
        }
        at += len;
    }
    Ok(None)
}

/// Position of the first `\n`.
pub fn memchr_newline(hay: &[u8]) -> Option<usize> {
    crate::sys::find_byte(hay, b'\n')
}

/// Sources for tests: holes without the memory, reads that fail, logs that change.
#[cfg(test)]
pub(crate) mod test_sources {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A sparse file in memory: data at some offsets, holes (zeros) elsewhere, and a count of
    /// hole bytes anyone read (the reader must read none).
    pub struct Sparse {
        pub extents: Vec<(u64, Vec<u8>)>,
        pub size: u64,
        pub hole_bytes_read: Cell<u64>,
    }

    impl Sparse {
        /// `parts`: data, or `Err(n)` for a hole of n bytes.
        pub fn new(parts: &[Result<&[u8], u64>]) -> Sparse {
            let (mut extents, mut size) = (Vec::new(), 0u64);
            for part in parts {
                match part {
                    Ok(data) if !data.is_empty() => {
                        extents.push((size, data.to_vec()));
                        size += data.len() as u64;
                    }
                    Ok(_) => {}
                    Err(n) => size += n,
                }
            }
            Sparse {
                extents,
                size,
                hole_bytes_read: Cell::new(0),
            }
        }
    }

    impl ReadAt for Sparse {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = (self.size.saturating_sub(offset)).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            let mut data = 0u64;
            for (at, bytes) in &self.extents {
                let (lo, hi) = (
                    (*at).max(offset),
                    (at + bytes.len() as u64).min(offset + n as u64),
                );
                if lo < hi {
                    let src = &bytes[(lo - at) as usize..(hi - at) as usize];
                    buf[(lo - offset) as usize..(hi - offset) as usize].copy_from_slice(src);
                    data += hi - lo;
                }
            }
            self.hole_bytes_read
                .set(self.hole_bytes_read.get() + n as u64 - data);
            Ok(n)
        }
        fn size(&self) -> io::Result<u64> {
            Ok(self.size)
        }
        fn data_from(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
            Ok(self.extents.iter().find_map(|(at, bytes)| {
                let end = at + bytes.len() as u64;
                (end > offset).then_some(((*at).max(offset), end))
            }))
        }
    }

    /// Bytes whose reads fail (EIO) where they touch `bad` (a bad sector, say).
    pub struct Failing {
        pub bytes: Vec<u8>,
        pub bad: std::ops::Range<u64>,
    }

    impl ReadAt for Failing {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if offset < self.bad.end && offset + buf.len() as u64 > self.bad.start {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.bytes.read_at(buf, offset)
        }
        fn size(&self) -> io::Result<u64> {
            Ok(self.bytes.len() as u64)
        }
    }

    /// A log that becomes `after` once `reads` reads have been served: a rewrite at a chosen
    /// moment.
    pub struct Rewritten {
        pub before: Vec<u8>,
        pub after: Vec<u8>,
        /// Reads left before the rewrite.
        pub reads: AtomicU32,
        /// Reads served after it (shared, so the test can look afterwards).
        pub served_after: Arc<AtomicU32>,
    }

    impl Rewritten {
        pub fn new(before: &[u8], after: &[u8], reads: u32) -> Rewritten {
            Rewritten {
                before: before.to_vec(),
                after: after.to_vec(),
                reads: AtomicU32::new(reads),
                served_after: Arc::new(AtomicU32::new(0)),
            }
        }
    }

    impl ReadAt for Rewritten {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let left = self.reads.load(Ordering::Relaxed);
            self.reads.store(left.saturating_sub(1), Ordering::Relaxed);
            if left > 0 {
                self.before.read_at(buf, offset)
            } else {
                self.served_after.fetch_add(1, Ordering::Relaxed);
                self.after.read_at(buf, offset)
            }
        }
        fn size(&self) -> io::Result<u64> {
            Ok(if self.reads.load(Ordering::Relaxed) > 0 {
                self.before.len()
            } else {
                self.after.len()
            } as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_sources::*;
    use super::*;

    fn rec(id: u64) -> Vec<u8> {
        format!("{{\"type\":\"step\",\"file\":\"f{id}\",\"id\":{id}}}\n").into_bytes()
    }

    /// The lines of the snapshot of `src`, None for a skipped one.
    fn lines_of<R: ReadAt>(src: R) -> Result<Vec<Option<Vec<u8>>>, ReadError> {
        let log = Log::new(src);
        let snap = Snapshot::take(&log)?;
        let mut lines = Lines::new(snap.start, snap.end);
        let mut out = Vec::new();
        while let Some(item) = lines.next_line(&log)? {
            out.push(match item {
                Item::Line(text) => Some(text.to_vec()),
                Item::Skipped => None,
            });
        }
        log.verify()?;
        Ok(out)
    }

    fn texts(lines: &[&str]) -> Vec<Option<Vec<u8>>> {
        lines.iter().map(|l| Some(l.as_bytes().to_vec())).collect()
    }

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

    #[test]
    fn lines_simple() {
        assert_eq!(lines_of(b"a\nb\n".to_vec()).unwrap(), texts(&["a", "b"]));
    }

    #[test]
    fn lines_empty_log() {
        assert_eq!(lines_of(Vec::new()).unwrap(), texts(&[]));
    }

    #[test]
    fn lines_only_newlines() {
        assert_eq!(lines_of(b"\n\n\n".to_vec()).unwrap(), texts(&["", "", ""]));
    }

    #[test]
    fn lines_torn_tail_is_left_out() {
        assert_eq!(
            lines_of(b"a\nb\nhalf".to_vec()).unwrap(),
            texts(&["a", "b"])
        );
        assert_eq!(lines_of(b"no newline".to_vec()).unwrap(), texts(&[]));
    }

    #[test]
    fn lines_keep_cr_for_the_caller() {
        assert_eq!(
            lines_of(b"a\r\nb\n".to_vec()).unwrap(),
            texts(&["a\r", "b"])
        );
    }

    #[test]
    fn lines_after_a_bom() {
        assert_eq!(
            lines_of(b"\xEF\xBB\xBFa\n".to_vec()).unwrap(),
            texts(&["a"])
        );
        assert_eq!(lines_of(b"\xEF\xBB\xBF\n".to_vec()).unwrap(), texts(&[""]));
        // A BOM in a torn first line is not taken off anything.
        assert_eq!(lines_of(b"\xEF\xBB\xBF".to_vec()).unwrap(), texts(&[]));
        // Not at the start: an ordinary byte sequence.
        assert_eq!(
            lines_of(b"a\n\xEF\xBB\xBFb\n".to_vec()).unwrap(),
            texts(&["a", "\u{FEFF}b"])
        );
    }

    #[test]
    fn lines_across_every_read_boundary() {
        // Lines whose ends fall just before, on and after each read size.
        for len in [
            1,
            2,
            FIRST_READ - 2,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 7,
        ] {
            let line = "y".repeat(len);
            let log = format!("{line}\nz\n{line}\n");
            assert_eq!(
                lines_of(log.into_bytes()).unwrap(),
                texts(&[&line, "z", &line]),
                "line of {len}"
            );
        }
    }

    #[test]
    fn lines_at_the_length_limit() {
        let at_limit = "x".repeat(MAX_LINE);
        let over = "x".repeat(MAX_LINE + 1);
        let log = format!("a\n{at_limit}\n{over}\nb\n");
        let got = lines_of(log.into_bytes()).unwrap();
        assert_eq!(
            got,
            vec![
                Some(b"a".to_vec()),
                Some(at_limit.into_bytes()),
                None,
                Some(b"b".to_vec())
            ]
        );
    }

    #[test]
    fn a_long_line_is_read_once() {
        // One line far over the limit among records: the work is linear in the log's size
        // (read once, then once more by the final check), not in its square.
        let mut log = Vec::new();
        for id in 1..=10 {
            log.extend(rec(id));
        }
        log.extend(std::iter::repeat_n(b'x', 16 << 20));
        log.push(b'\n');
        for id in 11..=20 {
            log.extend(rec(id));
        }
        let size = log.len() as u64;
        let found = crate::disinfection::read_log(log, 0, Default::default()).unwrap();
        let mut records = found.records;
        let mut out = Vec::new();
        while records.fill(&mut out, 1 << 16).unwrap() {}
        assert_eq!(records.malformed(), (1, Some(10)));
        let read = records.bytes_read();
        assert!(
            read <= 2 * size + BLOCK as u64,
            "{read} bytes read for a log of {size}"
        );
    }

    #[test]
    fn last_record_skips_what_is_not_a_record() {
        type Case = (&'static [u8], Option<(u64, bool)>);
        let cases: &[Case] = &[
            (b"", None),
            (b"junk\n", None),
            (b"{\"id\":1}\n", Some((1, false))),
            (
                b"{\"id\":1}\n{\"id\":2,\"type\":\"done\"}\n",
                Some((2, true)),
            ),
            (b"{\"id\":1}\njunk\n\n  \n", Some((1, false))),
            (b"{\"id\":1}\r\n", Some((1, false))),
            (b"{\"id\":1}\n{\"id\":2,\"type\":\"done\"", Some((1, false))),
            (b"\xEF\xBB\xBF{\"id\":4}\n", Some((4, false))),
        ];
        for (bytes, want) in cases {
            let log = Log::new(bytes.to_vec());
            let snap = Snapshot::take(&log).unwrap();
            assert_eq!(
                last_record(&log, snap).unwrap(),
                *want,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Line starts and record ids of a log, the obvious way.
    fn records_of(bytes: &[u8]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0u64;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if line.ends_with(b"\n") {
                if let Line::Record { id, .. } =
                    jsonline::classify(strip_cr(&line[..line.len() - 1]))
                {
                    out.push((at, id));
                }
            }
            at += line.len() as u64;
        }
        out
    }

    /// The bisection never starts after the first record past `last_id`, nor after the record
    /// before it, and always at a line start, for every `last_id` and window.
    fn check_resume_points<R: ReadAt>(src: R, bytes: &[u8], step: usize) {
        let recs = records_of(bytes);
        let max = recs.iter().map(|r| r.1).max().unwrap_or(0);
        for window in [0, 1, 7, 64, 1 << 20] {
            for last_id in (0..=u128::from(max) + 1).step_by(step) {
                // One log per answer, as in real use: the budget is per answer.
                let log = Log::new(&src);
                let snap = Snapshot::take(&log).unwrap();
                let at = resume_point(&log, snap, last_id, window).unwrap();
                log.verify().unwrap();
                assert!(
                    at == snap.start || bytes[at as usize - 1] == b'\n',
                    "not a line start: {at}"
                );
                if let Some(k) = recs.iter().position(|r| u128::from(r.1) > last_id) {
                    assert!(
                        at <= recs[k].0,
                        "past the first new record (last_id {last_id}, window {window})"
                    );
                    if k > 0 {
                        assert!(at <= recs[k - 1].0, "past the record before it");
                    }
                }
            }
        }
    }

    #[test]
    fn bisection_on_small_logs() {
        let mut log = Vec::new();
        check_resume_points(log.clone(), &log, 1);
        for id in 1..=30 {
            log.extend(rec(id));
            if id % 7 == 0 {
                log.extend(b"junk\n\n");
            }
            check_resume_points(log.clone(), &log, 1);
        }
        log.extend(b"{\"id\":31");
        check_resume_points(log.clone(), &log, 1);
    }

    #[test]
    fn bisection_with_gaps_and_a_long_line() {
        let mut log = Vec::new();
        for id in (1..200).step_by(3) {
            log.extend(rec(id));
        }
        log.extend(std::iter::repeat_n(b'z', MAX_LINE + 5));
        log.push(b'\n');
        for id in 200..260 {
            log.extend(rec(id));
        }
        // Every 13th position: each probe that lands in the long line reads a MiB.
        check_resume_points(log.clone(), &log, 13);
    }

    /// A sparse log, and (when small) the same bytes with its holes as zeros.
    fn sparse_log(parts: &[Result<&[u8], u64>]) -> (Sparse, Option<Vec<u8>>) {
        let sparse = Sparse::new(parts);
        let flat = (sparse.size < 1 << 24).then(|| {
            let mut flat = vec![0u8; sparse.size as usize];
            sparse.read_at(&mut flat, 0).ok();
            sparse.hole_bytes_read.set(0);
            flat
        });
        (sparse, flat)
    }

    #[test]
    fn holes_are_lines_that_are_not_records_and_are_never_read() {
        let (a, b) = (rec(1), rec(2));
        let cases: Vec<Vec<Result<&[u8], u64>>> = vec![
            vec![Ok(&a), Err(4096), Ok(b"\n"), Ok(&b)], // a hole as a line of its own
            vec![Ok(&a[..5]), Err(4096), Ok(&a[5..]), Ok(&b)], // inside a record
            vec![Err(8192), Ok(b"\n"), Ok(&a), Ok(&b)], // at the start
            vec![Ok(&a), Ok(&b), Err(1 << 30)],         // at the end: a torn tail
            vec![Ok(&a), Err(4096), Ok(b"x"), Err(4096), Ok(b"\n"), Ok(&b)], // two in one line
            vec![Ok(&a), Err(3 << 30), Ok(b"\n"), Ok(&b), Err(1 << 20)],
        ];
        for parts in &cases {
            let (sparse, flat) = sparse_log(parts);
            // The same lines as reading the zeros would give, with the holes' lines skipped.
            if let Some(flat) = flat {
                let want: Vec<_> = lines_of(flat)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| l.filter(|t| !t.contains(&0)))
                    .collect();
                assert_eq!(lines_of(&sparse).unwrap(), want);
            } else {
                assert_eq!(lines_of(&sparse).unwrap().iter().flatten().count(), 2);
            }
            assert_eq!(sparse.hole_bytes_read.get(), 0, "hole bytes were read");
            let log = Log::new(&sparse);
            let snap = Snapshot::take(&log).unwrap();
            assert_eq!(last_record(&log, snap).unwrap(), Some((2, false)));
            assert_eq!(sparse.hole_bytes_read.get(), 0);
            assert!(log.bytes_read() < 8192, "{} bytes read", log.bytes_read());
        }
    }

    #[test]
    fn bisection_probes_land_in_holes() {
        let mut head = Vec::new();
        for id in 1..=200 {
            head.extend(rec(id));
        }
        let mut tail = Vec::new();
        for id in 201..=400 {
            tail.extend(rec(id));
        }
        let (sparse, _) = sparse_log(&[Ok(&head), Err(5 << 30), Ok(b"\n"), Ok(&tail)]);
        let log = Log::new(&sparse);
        let snap = Snapshot::take(&log).unwrap();
        for last_id in [1u128, 150, 200, 201, 399] {
            let at = resume_point(&log, snap, last_id, BISECT_WINDOW).unwrap();
            let k = u64::try_from(last_id).unwrap();
            let (before, first_new) = if k < 200 {
                let off = |id: u64| (id - 1) * head.len() as u64 / 200;
                (off(k), off(k + 1))
            } else {
                let base = sparse.size - tail.len() as u64;
                let off = |id: u64| base + (id - 201) * tail.len() as u64 / 200;
                (if k == 200 { base } else { off(k) }, off(k + 1))
            };
            assert!(at <= before.min(first_new), "last_id {last_id}: {at}");
        }
        assert_eq!(sparse.hole_bytes_read.get(), 0);
        assert!(
            log.bytes_read() < 1 << 20,
            "{} bytes read",
            log.bytes_read()
        );
    }

    #[test]
    fn many_holes_make_a_damaged_log() {
        let mut parts = vec![Ok(&b"{\"id\":1}\n"[..])];
        for _ in 0..2000 {
            parts.push(Err(4096));
            parts.push(Ok(&b"x"[..]));
        }
        parts.push(Ok(&b"\n{\"id\":2}\n"[..]));
        let (sparse, _) = sparse_log(&parts);
        let found = crate::disinfection::read_log(sparse, 0, Default::default()).unwrap();
        let mut records = found.records;
        let mut out = Vec::new();
        let err = loop {
            match records.fill(&mut out, 1 << 16) {
                Ok(true) => {}
                Ok(false) => panic!("a log of 2000 holes read to the end"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, ReadError::Damaged), "{err}");
        assert_eq!(out, b"{\"id\":1}");
    }

    #[test]
    fn junk_beyond_the_limit_makes_a_damaged_log() {
        let mut log = b"{\"id\":1}\n".to_vec();
        let junk = b"not a record at all, not a record at all\n";
        while log.len() < (MAX_WASTE as usize) + 4096 {
            log.extend_from_slice(junk);
        }
        log.extend(b"{\"id\":2}\n");
        // The last record is found from the end; the stream then stops at the limit.
        let found = crate::disinfection::read_log(log.clone(), 0, Default::default()).unwrap();
        let mut records = found.records;
        let mut out = Vec::new();
        let result = loop {
            match records.fill(&mut out, 1 << 16) {
                Ok(true) => {}
                other => break other,
            }
        };
        assert!(matches!(result, Err(ReadError::Damaged)));
        assert!(records.bytes_read() <= MAX_WASTE + (1 << 20));
        // From the end, backwards: junk after the last record.
        let mut tail = b"{\"id\":1}\n".to_vec();
        tail.extend_from_slice(&log[9..log.len() - 9]);
        let log = Log::new(tail);
        let snap = Snapshot::take(&log).unwrap();
        assert!(matches!(last_record(&log, snap), Err(ReadError::Damaged)));
    }

    #[test]
    fn a_shrunk_log_is_a_change() {
        let mut before = Vec::new();
        for id in 1..=2000 {
            before.extend(rec(id));
        }
        let after = before[..before.len() / 2].to_vec();
        for reads in [1, 2, 3, 5, 8] {
            let src = Rewritten::new(&before, &after, reads);
            let result = stream_all(src).map(|all| all.len());
            assert!(
                matches!(result, Err(ReadError::Changed)),
                "after {reads} reads: {result:?}"
            );
        }
    }

    #[test]
    fn a_rewrite_with_lines_of_the_same_length_is_a_change() {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for id in 10_001..=12_000 {
            before.extend(format!("{{\"v\":\"a\",\"id\":{id}}}\n").bytes());
            after.extend(format!("{{\"v\":\"b\",\"id\":{id}}}\n").bytes());
        }
        assert_eq!(before.len(), after.len());
        // The rewrite lands after each read in turn, the final check's reads included; once
        // it lands after them all, the answer is the old log's, whole.
        let mut reads = 1;
        loop {
            let src = Rewritten::new(&before, &after, reads);
            let after = src.served_after.clone();
            let result = stream_all(src).map(|all| all.len());
            if after.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                assert!(
                    matches!(result, Err(ReadError::Changed)),
                    "rewritten after {reads} reads: {result:?}"
                );
            } else {
                assert_eq!(result.ok(), Some(before.len() - 1), "never rewritten");
                break;
            }
            reads += 1;
        }
        assert!(reads > 5, "only {reads} reads");
        // Appending is not a change.
        let mut longer = before.clone();
        longer.extend(rec(99_999));
        let src = Rewritten::new(&before, &longer, 3);
        assert_eq!(
            stream_all(src).map(|all| all.len()).ok(),
            Some(before.len() - 1)
        );
    }

    /// The whole stream, in small pieces (so that a change lands between two of them).
    fn stream_all<R: ReadAt + Send + 'static>(src: R) -> Result<Vec<u8>, ReadError> {
        let found = crate::disinfection::read_log(src, 0, Default::default())?;
        let mut records = found.records;
        let (mut all, mut piece) = (Vec::new(), Vec::new());
        while records.fill(&mut piece, 1 << 12)? {
            all.append(&mut piece);
        }
        all.append(&mut piece);
        Ok(all)
    }

    #[test]
    fn a_read_error_is_reported_not_hidden() {
        let mut bytes = Vec::new();
        for id in 1..=5000 {
            bytes.extend(rec(id));
        }
        let middle = bytes.len() as u64 / 2;
        let bad = middle..middle + 1;
        let err = stream_all(Failing { bytes, bad }).expect_err("a failing read passed");
        assert!(
            matches!(&err, ReadError::Io(e) if e.raw_os_error() == Some(libc::EIO)),
            "{err}"
        );
    }

    #[test]
    fn the_hash_does_not_depend_on_how_the_bytes_are_cut() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut whole = Hasher::default();
        whole.write(&data);
        for cut in 0..data.len() {
            for cut2 in [cut, cut + 1, cut + 31, cut + 33, data.len()] {
                let cut2 = cut2.min(data.len());
                let mut parts = Hasher::default();
                parts.write(&data[..cut]);
                parts.write(&data[cut..cut2]);
                parts.write(&data[cut2..]);
                assert_eq!(parts.finish(), whole.finish(), "cuts {cut} {cut2}");
            }
        }
        // Every single changed byte, and a shorter input, change it.
        for k in 0..data.len() {
            let mut other = data.clone();
            other[k] ^= 1;
            let mut h = Hasher::default();
            h.write(&other);
            assert_ne!(h.finish(), whole.finish(), "byte {k}");
            let mut h = Hasher::default();
            h.write(&data[..k]);
            assert_ne!(h.finish(), whole.finish(), "prefix {k}");
        }
    }
}
