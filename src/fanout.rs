//! Classifying a large range of the log on several cores.
//!
//! Why: a full read is bound by the CPU in the line classifier, and the machines this runs on
//! have more than one core. The range is cut into runs of about [`RUN_BYTES`] at line starts;
//! worker threads classify runs into their own buffers, and `fill` appends them in file order,
//! merging each run's [`Effect`] into the stream's [`Tally`]. At most [`IN_FLIGHT`] runs exist at
//! once, so memory stays bounded whatever the size of the log.
//!
//! A run's boundaries are computed independently by whoever needs them (the first line start at
//! or after a nominal offset), so neighbouring runs agree without talking to each other.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::logfile::{self, Lines, Snapshot};
use crate::records::{scan_run, Effect, Tally};

/// Nominal size of one run.
pub const RUN_BYTES: u64 = 256 * 1024;
/// Runs handed out but not yet appended: bounds memory to a few runs' worth of buffers.
const IN_FLIGHT: usize = 4;

type RunResult = io::Result<(Vec<u8>, Effect)>;

pub struct Fanout {
    jobs: Option<SyncSender<usize>>,
    results: Receiver<(usize, RunResult)>,
    waiting: BTreeMap<usize, RunResult>,
    next_to_send: usize,
    next_to_append: usize,
    runs: usize,
}

impl Fanout {
    /// Starts workers when the range `from..snap.end` is at least `parallel_from` bytes and the
    /// machine has more than one core; None means "read it in one pass".
    pub fn start(
        file: &File,
        snap: Snapshot,
        from: u64,
        last_id: u128,
        parallel_from: u64,
        run_bytes: u64,
    ) -> Option<Fanout> {
        let span = snap.end.checked_sub(from)?;
        let cores = thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        if span < parallel_from || cores < 2 || run_bytes == 0 {
            return None;
        }
        let file = Arc::new(file.try_clone().ok()?);
        let runs = usize::try_from(span.div_ceil(run_bytes)).ok()?;
        let (jobs, job_queue) = mpsc::sync_channel::<usize>(IN_FLIGHT);
        let (done, results) = mpsc::channel();
        let job_queue = Arc::new(Mutex::new(job_queue));
        let range = Range {
            snap,
            from,
            run_bytes,
            last_id,
        };
        for _ in 0..cores {
            let (file, job_queue, done) = (file.clone(), job_queue.clone(), done.clone());
            let spawned = thread::Builder::new()
                .name("classify".into())
                .spawn(move || worker(&file, range, &job_queue, &done));
            if spawned.is_err() {
                return None;
            }
        }
        Some(Fanout {
            jobs: Some(jobs),
            results,
            waiting: BTreeMap::new(),
            next_to_send: 0,
            next_to_append: 0,
            runs,
        })
    }

    /// Appends whole runs, in order, until `out` holds `want` bytes; false once all are in.
    pub fn fill(&mut self, tally: &mut Tally, out: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        while out.len() < want {
            if self.next_to_append == self.runs {
                self.jobs = None; // lets the workers finish
                return Ok(false);
            }
            while self.next_to_send < self.runs
                && self.next_to_send < self.next_to_append + IN_FLIGHT
            {
                let sent = self.jobs.as_ref().map(|jobs| jobs.send(self.next_to_send));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(io::Error::other("the classifying threads stopped"));
                }
                self.next_to_send += 1;
            }
            let (bytes, effect) = self.take(self.next_to_append)?;
            if tally.emitted > 0 && effect.emitted > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&bytes);
            tally.merge(&effect);
            self.next_to_append += 1;
        }
        Ok(true)
    }

    /// The result of run `index`, waiting for it if need be.
    fn take(&mut self, index: usize) -> RunResult {
        loop {
            if let Some(result) = self.waiting.remove(&index) {
                return result;
            }
            let (i, result) = self
                .results
                .recv()
                .map_err(|_| io::Error::other("the classifying threads stopped"))?;
            self.waiting.insert(i, result);
        }
    }
}

/// What every worker needs to find and read its runs.
#[derive(Clone, Copy)]
struct Range {
    snap: Snapshot,
    from: u64,
    run_bytes: u64,
    last_id: u128,
}

impl Range {
    /// Where run `index` starts: a line start, the same for whoever asks.
    fn start_of(&self, file: &File, index: u64) -> io::Result<u64> {
        if index == 0 {
            return Ok(self.from);
        }
        let nominal = self
            .from
            .saturating_add(index.saturating_mul(self.run_bytes));
        if nominal >= self.snap.end {
            return Ok(self.snap.end);
        }
        logfile::next_line_start(file, self.snap, nominal)
    }

    fn run(&self, file: &File, index: usize, buf: Vec<u8>) -> (RunResult, Vec<u8>) {
        let bounds = self.start_of(file, index as u64).and_then(|start| {
            let end = self.start_of(file, index as u64 + 1)?;
            Ok((start, end.max(start)))
        });
        let (start, end) = match bounds {
            Ok(bounds) => bounds,
            Err(e) => return (Err(e), buf),
        };
        let mut lines = Lines::with_buffer(file, start, end, buf);
        let mut effect = Effect::default();
        let mut out = Vec::with_capacity((end - start) as usize + 64);
        let result = scan_run(&mut lines, self.last_id, &mut effect, &mut out, usize::MAX)
            .map(|_| (out, effect));
        (result, lines.into_buffer())
    }
}

fn worker(
    file: &File,
    range: Range,
    jobs: &Mutex<Receiver<usize>>,
    done: &mpsc::Sender<(usize, RunResult)>,
) {
    let mut buf = Vec::new();
    loop {
        // A poisoned lock means another worker panicked while waiting; the queue is intact.
        let job = jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        let Ok(index) = job else { return };
        // Nothing in a run should panic; if something does, the answer gets an error instead of
        // waiting forever for this run.
        let taken = std::mem::take(&mut buf);
        let (result, reused) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            range.run(file, index, taken)
        }))
        .unwrap_or_else(|_| {
            (
                Err(io::Error::other("a classifying thread failed")),
                Vec::new(),
            )
        });
        buf = reused;
        if done.send((index, result)).is_err() {
            return; // the answer was abandoned (client gone)
        }
    }
}
