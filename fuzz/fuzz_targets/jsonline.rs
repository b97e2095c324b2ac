#![no_main]
//! The log line classifier (`jsonline::classify`) against serde_json as the oracle (SPEC §3): a
//! line is a record iff serde_json parses it, after mapping bytes that are not UTF-8 to
//! U+0080..U+00FF (the oracle's own mapping, `tests/common/latin1.rs`, not the crate's), as an
//! object whose "id" is a u64 > 0, and it is `done` iff its "type" is the string "done".
//! Whitespace-only lines are blank.
use clamscanner::internals::jsonline::{classify, Line};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../tests/common/latin1.rs"]
mod latin1;

/// Deepest bracket nesting outside strings. The two parsers' depth limits differ (100 and 128),
/// so deeper lines are only checked for not crashing.
fn nesting(data: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in data {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn oracle(data: &[u8]) -> Line {
    if data
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Line::Blank;
    }
    let text = latin1::latin1_fallback(data);
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
        return Line::Malformed;
    };
    match map.get("id").and_then(Value::as_u64) {
        Some(id) if id > 0 => Line::Record {
            id,
            done: map.get("type").and_then(Value::as_str) == Some("done"),
        },
        _ => Line::Malformed,
    }
}

fuzz_target!(|data: &[u8]| {
    let got = classify(data);
    if nesting(data) <= 90 {
        assert_eq!(
            got,
            oracle(data),
            "line {:?}",
            String::from_utf8_lossy(data)
        );
    }
});
