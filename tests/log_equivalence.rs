//! The bisecting reader against a plain full scan, the same reads on bytes in memory, and an
//! independent oracle built on serde_json (with its own reading of bytes that are not UTF-8,
//! `common/latin1.rs`), on thousands of generated logs: torn tails, blank lines, CRLF, malformed
//! lines, lines over 1 MiB, non-UTF-8 bytes, a byte-order mark, gaps in ids, and every `last_id`
//! from 0 to past the end. Deterministic (a fixed-seed generator), so a failure is reproducible.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use clamscanner::internals::disinfection::{self, Status, Tuning};
use clamscanner::internals::logfile::{ReadAt, MAX_LINE};

mod common {
    pub mod latin1;
}
use common::latin1::latin1_fallback;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const STATES: &[&str] = &[
    "quarantined",
    "deleted",
    "no-action",
    "error",
    "mailbox-cleansed",
];
const NAMES: &[&str] = &[
    "public_html/index.php",
    "mail/cur/1700000000.M1P2.host,S=1:2,S",
    "public_html/фото/x.jpg.php",
    "tmp/a \\\"quoted\\\" name",
    "public_html/\\u00e9t\\u00e9.php",
    "public_html/<img src=x onerror=alert(1)>.php",
];
const MALFORMED: &[&str] = &[
    "{\"type\":\"step\",\"id\":",
    "{\"id\":\"3\"}",
    "{\"id\":3.0,\"type\":\"step\"}",
    "not json at all",
    "[1,2,3]",
    "{\"type\":\"step\",\"state\":\"deleted\"}",
    "{\"id\":0}",
    "{\"id\":-4}",
    "{\"id\":5}}",
    "\"id\"",
];

/// A generated log and the largest id written in it.
fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut log = Vec::new();
    if rng.chance(10) {
        log.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let lines = rng.below(40);
    let mut id = 0u64;
    for i in 0..lines {
        let eol: &[u8] = if rng.chance(15) { b"\r\n" } else { b"\n" };
        let roll = rng.below(100);
        if roll < 8 {
            log.extend_from_slice(rng.pick(&["", " ", "\t \t"]).as_bytes());
        } else if roll < 18 {
            log.extend_from_slice(rng.pick(MALFORMED).as_bytes());
        } else if roll < 19 && rng.chance(5) {
            // Over 1 MiB: malformed even though it is otherwise a valid record.
            id += 1;
            let pad = "x".repeat(MAX_LINE + 10);
            log.extend_from_slice(format!("{{\"pad\":\"{pad}\",\"id\":{id}}}").as_bytes());
        } else {
            id += if rng.chance(10) { 1 + rng.below(5) } else { 1 };
            let done = i == lines - 1 && rng.chance(60);
            let kind = if done { "done" } else { "step" };
            let state = if done { "success" } else { rng.pick(STATES) };
            let mut file = rng.pick(NAMES).as_bytes().to_vec();
            if rng.chance(10) {
                file.extend_from_slice(b"_caf\xe9\xff");
            }
            match rng.below(3) {
                0 => {
                    log.extend_from_slice(format!("{{\"type\":\"{kind}\",\"file\":\"").as_bytes());
                    log.extend_from_slice(&file);
                    log.extend_from_slice(format!("\",\"state\":\"{state}\",\"id\":{id}}}").as_bytes());
                }
                1 => {
                    log.extend_from_slice(format!(" {{ \"id\" : {id} , \"type\" : \"{kind}\" , \"extra\" : [1, {{\"a\":null}}, 2.5e3], \"file\":\"").as_bytes());
                    log.extend_from_slice(&file);
                    log.extend_from_slice(b"\" } ");
                }
                _ => log.extend_from_slice(
                    format!("{{\"id\":{id},\"type\":\"{kind}\",\"message\":\"m\\u00e9ssage \\ud83d\\ude00\"}}").as_bytes(),
                ),
            }
        }
        log.extend_from_slice(eol);
    }
    if rng.chance(25) {
        // A torn tail: a record still being written.
        log.extend_from_slice(format!("{{\"type\":\"done\",\"id\":{}", id + 1).as_bytes());
    }
    log
}

#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    /// Id of the log's last record (0 when none); oracle only.
    last_id: u128,
    status: Option<Status>,
    restarted: bool,
    details: Vec<u8>,
    malformed: (u64, Option<u64>),
    warning: Option<String>,
}

fn run_reader(path: &PathBuf, last_id: u128, tuning: Tuning) -> Outcome {
    let file = File::open(path).expect("the test log opens");
    run_on(file, last_id, tuning)
}

fn run_on<R: ReadAt + Send + 'static>(src: R, last_id: u128, tuning: Tuning) -> Outcome {
    let found = disinfection::read_log(src, last_id, tuning).expect("the test log reads");
    let mut records = found.records;
    let mut details = Vec::new();
    while records
        .fill(&mut details, 1 << 16)
        .expect("the test log streams")
    {}
    Outcome {
        last_id: 0,
        status: found.status,
        restarted: found.warning.is_some(),
        details,
        malformed: records.malformed(),
        warning: records.warning(),
    }
}

enum L {
    Blank,
    Bad,
    Rec(u64, bool, Vec<u8>),
}

/// Every complete line of the log, classified by serde_json.
fn parse_lines(log: &[u8]) -> Vec<L> {
    let complete = match log.iter().rposition(|&b| b == b'\n') {
        Some(nl) => &log[..=nl],
        None => &log[..0],
    };
    let complete = complete.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(complete);
    complete
        .split(|&b| b == b'\n')
        .take(complete.split(|&b| b == b'\n').count().saturating_sub(1))
        .map(|raw| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.len() > MAX_LINE {
                return L::Bad;
            }
            let text = latin1_fallback(raw).into_bytes();
            if text.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                return L::Blank;
            }
            match serde_json::from_slice::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(map)) => {
                    match map.get("id").and_then(|v| v.as_u64()) {
                        Some(id) if id > 0 && !map["id"].is_f64() => {
                            let done = map.get("type").and_then(|t| t.as_str()) == Some("done");
                            L::Rec(id, done, text)
                        }
                        _ => L::Bad,
                    }
                }
                _ => L::Bad,
            }
        })
        .collect()
}

/// What the SPEC says, computed the obvious way from [`parse_lines`].
fn oracle(lines: &[L], last_id: u128) -> Outcome {
    let last = lines.iter().rev().find_map(|l| match l {
        L::Rec(id, done, _) => Some((*id, *done)),
        _ => None,
    });
    let status = last.map(|(_, done)| if done { Status::Done } else { Status::Running });
    let restarted = last.is_some_and(|(id, _)| last_id > u128::from(id));
    let effective = if restarted { 0 } else { last_id };
    let mut details = Vec::new();
    let (mut bad, mut bad_after, mut previous, mut sent) = (0u64, None, None, 0);
    for line in lines {
        match line {
            L::Blank => {}
            L::Bad => {
                if bad == 0 {
                    bad_after = previous;
                }
                bad += 1;
            }
            L::Rec(id, _, text) => {
                if u128::from(*id) <= effective {
                    if sent == 0 {
                        bad = 0;
                        bad_after = None;
                    }
                } else {
                    if sent > 0 {
                        details.push(b',');
                    }
                    details.extend_from_slice(text);
                    sent += 1;
                }
                previous = Some(*id);
            }
        }
    }
    Outcome {
        last_id: last.map_or(0, |(id, _)| u128::from(id)),
        status,
        restarted,
        details,
        malformed: (bad, bad_after),
        warning: None,
    }
}

#[test]
fn every_reader_equals_full_scan_and_oracle() {
    let dir = std::env::temp_dir().join(format!("clamscanner-equivalence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("log");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut compared = 0u64;
    let one_pass = Tuning {
        bisect_window: u64::MAX,
    };
    for _ in 0..2000 {
        let log = generate(&mut rng);
        File::create(&path)
            .and_then(|mut f| f.write_all(&log))
            .expect("write the test log");
        let lines = parse_lines(&log);
        let max_id = oracle(&lines, 0).last_id;
        for last_id in (0..=max_id + 2).chain([u128::from(u64::MAX), u128::from(u64::MAX) + 1]) {
            let scan = run_reader(&path, last_id, one_pass);
            let bisect = run_reader(&path, last_id, Tuning { bisect_window: 1 });
            let default = run_reader(&path, last_id, Tuning::default());
            let in_memory = run_on(log.clone(), last_id, Tuning { bisect_window: 1 });
            let context = || format!("last_id {last_id}, log {:?}", String::from_utf8_lossy(&log));
            assert_eq!(scan, bisect, "{}", context());
            assert_eq!(scan, default, "{}", context());
            assert_eq!(scan, in_memory, "{}", context());
            let expected = oracle(&lines, last_id);
            assert_eq!(
                (&scan.status, scan.restarted, &scan.details, scan.malformed),
                (
                    &expected.status,
                    expected.restarted,
                    &expected.details,
                    expected.malformed
                ),
                "last_id {last_id}, log {:?}",
                String::from_utf8_lossy(&log)
            );
            assert!(serde_json::from_slice::<serde_json::Value>(
                &[b"[", &scan.details[..], b"]"].concat()
            )
            .is_ok());
            compared += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared > 10_000, "only {compared} comparisons");
}

/// The oracle's own mapping, on the cases that tell mappings apart: a lone Latin-1 byte, a
/// truncated sequence, an encoded surrogate, an overlong form, and valid text around them.
#[test]
fn the_oracles_mapping_of_bytes_that_are_not_utf8() {
    let cases: [(&[u8], &str); 7] = [
        (b"caf\xe9", "café"),
        (b"\xe2\x82\xac", "€"),
        (b"\xe2\x82x", "\u{e2}\u{82}x"),
        (b"\xed\xa0\x80", "\u{ed}\u{a0}\u{80}"),
        (b"\xc0\xaf", "\u{c0}\u{af}"),
        (b"\xf0\x9f\x98\x80 \xf0\x9f\x98", "😀 \u{f0}\u{9f}\u{98}"),
        (b"\xff\xfe a", "\u{ff}\u{fe} a"),
    ];
    for (bytes, want) in cases {
        assert_eq!(latin1_fallback(bytes), want, "{bytes:?}");
    }
}
