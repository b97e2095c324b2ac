//! The oracles' own reading of bytes that are not UTF-8 (SPEC §3): each byte that does not
//! belong to a well-formed UTF-8 sequence becomes the character of the same number
//! (U+0080..U+00FF). Written from the table of well-formed sequences (Unicode 15, table 3-7),
//! independently of the crate's `push_as_utf8`, so that a bug there cannot hide in both.
//! Shared by tests/log_equivalence.rs and the fuzz targets (`#[path]` module).

/// Length of the well-formed UTF-8 sequence at the start of `s`, or None.
fn sequence_len(s: &[u8]) -> Option<usize> {
    let cont = |k: usize, lo: u8, hi: u8| s.get(k).is_some_and(|&b| (lo..=hi).contains(&b));
    let tail = |from: usize, to: usize| (from..to).all(|k| cont(k, 0x80, 0xBF));
    let ok = match *s.first()? {
        0x00..=0x7F => return Some(1),
        0xC2..=0xDF => tail(1, 2),
        0xE0 => cont(1, 0xA0, 0xBF) && tail(2, 3),
        0xE1..=0xEC | 0xEE..=0xEF => tail(1, 3),
        0xED => cont(1, 0x80, 0x9F) && tail(2, 3),
        0xF0 => cont(1, 0x90, 0xBF) && tail(2, 4),
        0xF1..=0xF3 => tail(1, 4),
        0xF4 => cont(1, 0x80, 0x8F) && tail(2, 4),
        _ => false,
    };
    ok.then_some(match s[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    })
}

/// `bytes` as text, by the rule above.
pub fn latin1_fallback(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match sequence_len(&bytes[i..]) {
            Some(n) => {
                let lead = u32::from(bytes[i]) & [0x7F, 0x1F, 0x0F, 0x07][n - 1];
                let point = bytes[i + 1..i + n]
                    .iter()
                    .fold(lead, |acc, &b| (acc << 6) | (u32::from(b) & 0x3F));
                // Well-formed by the table, so always a scalar value; U+FFFD would show a bug.
                out.push(char::from_u32(point).unwrap_or('\u{FFFD}'));
                i += n;
            }
            None => {
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}
