#![no_main]
//! The log reader (`logfile`) over a real file built from the input: records with increasing
//! ids (some with gaps, some `done`, some CRLF), malformed and blank lines, an optional BOM, an
//! optional torn last line, and (rarely) one line at the 1 MiB limit. Checks the snapshot, the
//! forward line reader, the last record and the bisection for `last_id` against plain scans,
//! and the whole answer read from the file against the same read from the bytes in memory.
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use clamscanner::internals::disinfection::{read_log, Tuning};
use clamscanner::internals::jsonline::{classify, Line};
use clamscanner::internals::logfile::{
    last_record, resume_point, strip_cr, Item, Lines, Log, Snapshot, MAX_LINE,
};
use libfuzzer_sys::fuzz_target;

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn build(ops: &[u8], allow_long_line: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut id = 0u64;
    let mut long_line = !allow_long_line;
    for &op in ops {
        let pad = "x".repeat(usize::from(op >> 3) * 5);
        let end = if op & 0x40 != 0 { "\r\n" } else { "\n" };
        match op & 7 {
            0..=3 => {
                id += 1;
                write!(out, r#"{{"id":{id},"type":"step","file":"{pad}"}}{end}"#).unwrap();
            }
            4 => {
                id += 1 + u64::from(op >> 3);
                write!(out, r#"{{"type":"issue","id":{id}}}{end}"#).unwrap();
            }
            5 => write!(out, "not json {pad}{end}").unwrap(),
            6 if op >= 0xE6 && !long_line => {
                // One line of MAX_LINE - 1, MAX_LINE or MAX_LINE + 1 bytes.
                long_line = true;
                let len = MAX_LINE - 1 + usize::from((op - 0xE6) / 8);
                out.extend(std::iter::repeat_n(b'y', len));
                out.push(b'\n');
            }
            6 => out.extend_from_slice(end.as_bytes()),
            _ => {
                id += 1;
                write!(out, r#"{{"id":{id},"type":"done"}}{end}"#).unwrap();
            }
        }
    }
    out
}

/// One anonymous in-memory file per process, rewritten for each input (a real file to the
/// reader: pread, fstat), so that the run does not spend its time creating and removing files.
fn log_file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let fd = unsafe { libc::memfd_create(c"clamscanner-fuzz-log".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create failed");
        unsafe { File::from_raw_fd(fd) }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (flags, wanted, window) = (data[0], data[1], data[2]);
    let ops = &data[3..data.len().min(1027)];
    let mut bytes = if flags & 1 != 0 {
        BOM.to_vec()
    } else {
        Vec::new()
    };
    // A 1 MiB line costs a hundred ordinary inputs: only for one flags value in 64.
    let long_line = flags & 0xFC == 0xAC;
    bytes.extend(build(ops, long_line));
    if flags & 2 != 0 {
        bytes.extend_from_slice(br#"{"id":999999,"type":"do"#); // being written right now
    }
    let file = log_file();
    file.set_len(0).unwrap();
    file.write_all_at(&bytes, 0).unwrap();

    // Snapshot: complete lines only, after a BOM.
    let log = Log::new(file);
    let snap = Snapshot::take(&log).unwrap();
    let end = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let start = if end >= 3 && bytes.starts_with(BOM) {
        3
    } else {
        0
    };
    assert_eq!((snap.start, snap.end), (start as u64, end as u64));

    // Forward reading returns exactly the lines of the snapshot.
    let expected: Vec<(usize, &[u8])> = {
        let mut offset = start;
        let mut lines = Vec::new();
        if start < end {
            for line in bytes[start..end - 1].split(|&b| b == b'\n') {
                lines.push((offset, line));
                offset += line.len() + 1;
            }
        }
        lines
    };
    let mut reader = Lines::new(snap.start, snap.end);
    for &(_, line) in &expected {
        match reader.next_line(&log).unwrap() {
            Some(Item::Line(got)) => assert!(line.len() <= MAX_LINE && got == line),
            Some(Item::Skipped) => assert!(line.len() > MAX_LINE),
            None => panic!("the reader stopped early"),
        }
    }
    assert!(reader.next_line(&log).unwrap().is_none());

    // The last record, and where the records after `last_id` start.
    let records: Vec<(usize, u64, bool)> = expected
        .iter()
        .filter(|(_, line)| line.len() <= MAX_LINE)
        .filter_map(|&(offset, line)| match classify(strip_cr(line)) {
            Line::Record { id, done } => Some((offset, id, done)),
            _ => None,
        })
        .collect();
    let last = records.last().map(|&(_, id, done)| (id, done));
    assert_eq!(last_record(&log, snap).unwrap(), last);

    let last_id = match wanted {
        255 => u128::from(u64::MAX) + 1,
        n => u128::from(n) % (records.len() as u128 + 3),
    };
    // Small windows make short logs bisect; with a 1 MiB line, the answer's own 64 KiB window
    // (bisecting through a line that long costs 1 MiB per probe).
    let window = if long_line {
        64 * 1024
    } else {
        u64::from(window) * 8
    };
    let at = resume_point(&log, snap, last_id, window).unwrap() as usize;
    assert!(at >= start && at <= end.max(start));
    assert!(
        at == start || bytes[at - 1] == b'\n',
        "not a line start: {at}"
    );
    if let Some(first_new) = records
        .iter()
        .position(|&(_, id, _)| u128::from(id) > last_id)
    {
        assert!(at <= records[first_new].0, "past the first new record");
        if first_new > 0 {
            assert!(at <= records[first_new - 1].0, "past the record before it");
        }
    }

    // Nothing changed, so the final check passes.
    log.verify().unwrap();

    // The whole answer: from the file, bisecting, against the bytes in memory, scanned.
    if !long_line {
        let answer = |tuning, from_file: bool| {
            let found = if from_file {
                read_log(file.try_clone().unwrap(), last_id, tuning)
            } else {
                read_log(bytes.clone(), last_id, tuning)
            }
            .unwrap();
            let mut records = found.records;
            let mut details = Vec::new();
            while records.fill(&mut details, 1 << 16).unwrap() {}
            (found.status, found.warning, details, records.malformed())
        };
        let bisecting = Tuning { bisect_window: u64::from(window) + 1 };
        let scanning = Tuning { bisect_window: u64::MAX };
        assert_eq!(answer(bisecting, true), answer(scanning, false));
    }
});
