//! Classifies one log line: blank, malformed, or a record with its `id` and whether it is `done`.
//!
//! Why not serde_json: every poll may look at many lines, and the answer copies records byte for
//! byte anyway, so building a `Value` per line would allocate for nothing. This is a strict,
//! allocation-free JSON validator that walks the line once and remembers only the two top-level
//! members the status rules need. Its verdicts are tested against serde_json (which is the
//! reference for "is this valid JSON") in `tests/log_equivalence.rs` and in `fuzz/`; the
//! sixteen-bytes-at-a-time scanner against a plain loop in `scanner_tests` below.
//!
//! Rules (SPEC §3): a record is a JSON object whose top-level `id` is a positive integer literal
//! that fits in u64 (`3.0`, `"3"`, `-1`, `0` are not). When a key appears twice the last one
//! counts, as in serde_json. Bytes that are not UTF-8 are accepted inside strings: the answer
//! maps them to U+0080..U+00FF, which cannot change the JSON structure.

/// What one line of the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Empty, or only JSON whitespace: ignored silently.
    Blank,
    /// Not a record: skipped and counted in a warning.
    Malformed,
    Record {
        id: u64,
        done: bool,
    },
}

/// Deeper nesting than this is refused (serde_json's own limit is 128).
const MAX_DEPTH: usize = 100;

pub fn classify(line: &[u8]) -> Line {
    classify_noting_ascii(line).0
}

/// [`classify`], and whether the line is plain ASCII (then a record needs no UTF-8 check when
/// copied; bytes of 0x80 and above can only sit inside strings, which the validator reads).
pub fn classify_noting_ascii(line: &[u8]) -> (Line, bool) {
    let mut p = Parser {
        s: line,
        i: 0,
        high: 0,
    };
    p.skip_ws();
    if p.i == line.len() {
        return (Line::Blank, true);
    }
    let verdict = match p.top_object() {
        Some(Some(rec)) => {
            p.skip_ws();
            if p.i == line.len() {
                rec
            } else {
                Line::Malformed
            }
        }
        _ => Line::Malformed,
    };
    (verdict, p.high & u64::from_ne_bytes([0x80; 8]) == 0)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// OR of the string bytes seen: its 0x80 bits tell whether any was not ASCII.
    high: u64,
}

/// Which top-level member a key names (after unescaping).
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Id,
    Type,
    Other,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// Outer None: invalid JSON. Inner None: valid object but not a record.
    fn top_object(&mut self) -> Option<Option<Line>> {
        self.eat(b'{')?;
        let mut id: Option<Option<u64>> = None;
        let mut done: Option<bool> = None;
        self.skip_ws();
        if self.eat(b'}').is_none() {
            loop {
                self.skip_ws();
                let key = self.key()?;
                self.skip_ws();
                self.eat(b':')?;
                self.skip_ws();
                match key {
                    Key::Id => id = Some(self.id_value()?),
                    Key::Type => done = Some(self.type_value()?),
                    Key::Other => self.value()?,
                }
                self.skip_ws();
                if self.eat(b',').is_some() {
                    continue;
                }
                self.eat(b'}')?;
                break;
            }
        }
        Some(match id {
            Some(Some(id)) => Some(Line::Record {
                id,
                done: done.unwrap_or(false),
            }),
            _ => None,
        })
    }

    fn key(&mut self) -> Option<Key> {
        let (start, end, escaped) = self.string()?;
        let raw = &self.s[start..end];
        let mut buf = [0u8; 8];
        let name = if escaped {
            match unescape_short(raw, &mut buf) {
                Some(n) => &buf[..n],
                None => return Some(Key::Other),
            }
        } else {
            raw
        };
        Some(match name {
            b"id" => Key::Id,
            b"type" => Key::Type,
            _ => Key::Other,
        })
    }

    /// Some(None): valid JSON but not a positive u64 integer.
    fn id_value(&mut self) -> Option<Option<u64>> {
        let start = self.i;
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            let mut n: u64 = 0;
            let mut overflow = false;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                {
                    Some(v) => n = v,
                    None => overflow = true,
                }
                self.i += 1;
            }
            let leading_zero = self.s[start] == b'0' && self.i - start > 1;
            if leading_zero {
                return None;
            }
            if !matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return Some(if overflow || n == 0 { None } else { Some(n) });
            }
            self.i = start;
        }
        self.value()?;
        Some(None)
    }

    /// Some(true) when the value is the string "done".
    fn type_value(&mut self) -> Option<bool> {
        if self.peek() != Some(b'"') {
            self.value()?;
            return Some(false);
        }
        let (start, end, escaped) = self.string()?;
        let raw = &self.s[start..end];
        if !escaped {
            return Some(raw == b"done");
        }
        let mut buf = [0u8; 8];
        Some(unescape_short(raw, &mut buf).is_some_and(|n| &buf[..n] == b"done"))
    }

    /// Any JSON value. Scalars (nearly every value in a log) are read directly; containers go
    /// through [`Parser::nested`].
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => self.nested(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// An object or array; iterative so that nesting cannot exhaust the stack.
    fn nested(&mut self) -> Option<()> {
        // Each byte is the closer we expect: b'}' or b']'.
        let mut stack = [0u8; MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            self.skip_ws();
            // Parse one value start.
            match self.peek()? {
                b'{' | b'[' => {
                    let open = self.s[self.i];
                    self.i += 1;
                    if depth == MAX_DEPTH - 1 {
                        return None;
                    }
                    stack[depth] = if open == b'{' { b'}' } else { b']' };
                    depth += 1;
                    self.skip_ws();
                    if self.eat(stack[depth - 1]).is_some() {
                        depth -= 1;
                    } else {
                        if open == b'{' {
                            self.string()?;
                            self.skip_ws();
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a complete value: close containers or move to the next element.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.skip_ws();
                let closer = stack[depth - 1];
                if self.eat(b',').is_some() {
                    if closer == b'}' {
                        self.skip_ws();
                        self.string()?;
                        self.skip_ws();
                        self.eat(b':')?;
                    }
                    break;
                }
                self.eat(closer)?;
                depth -= 1;
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// Moves past bytes that need no attention inside a string: anything but `"`, `\\` and
    /// control characters. Sixteen bytes at a time, because file names and messages are most of
    /// a log's bytes and this loop is where a full read spends its time.
    fn skip_plain(&mut self) {
        let (mut i, mut high) = (self.i, 0u64);
        let rest = &self.s[i..];
        let mut pairs = rest.chunks_exact(16);
        for pair in pairs.by_ref() {
            let (a, b) = (word(&pair[..8]), word(&pair[8..]));
            high |= a | b;
            let (stop_a, stop_b) = (stops(a), stops(b));
            if stop_a | stop_b != 0 {
                i += if stop_a != 0 {
                    (stop_a.trailing_zeros() / 8) as usize
                } else {
                    8 + (stop_b.trailing_zeros() / 8) as usize
                };
                self.i = i;
                self.high |= high;
                return;
            }
            i += 16;
        }
        for &b in pairs.remainder() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            high |= u64::from(b);
            i += 1;
        }
        self.i = i;
        self.high |= high;
    }

    /// A string at the cursor; returns its content range and whether it holds escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.skip_plain();
            let b = self.peek()?;
            match b {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            self.i += 1;
                            let unit = self.hex4()?;
                            match unit {
                                0xD800..=0xDBFF => {
                                    self.eat(b'\\')?;
                                    self.eat(b'u')?;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return None;
                                    }
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => {}
                            }
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1F => return None,
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
}

/// Eight bytes as one little-endian word (`bytes` is exactly eight long).
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// Flags (0x80) each byte of `w` that ends a run of plain string bytes: `"`, `\\`, or below
/// 0x20. A flag can be wrong only above a right one (borrows run upwards), so the lowest flag
/// is always right, which is all the caller uses.
fn stops(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero_in(w ^ QUOTES) | zero_in(w ^ BACKSLASHES) | (w.wrapping_sub(SPACES) & !w & HIGHS)
}

/// Unescapes a short, already validated JSON string body into `out`; None when it does not fit
/// (then it cannot be one of the short names we look for).
fn unescape_short(raw: &[u8], out: &mut [u8; 8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let mut ch = [0u8; 4];
        let bytes: &[u8] = if raw[i] == b'\\' {
            let e = *raw.get(i + 1)?;
            i += 2;
            match e {
                b'u' => {
                    let hex = std::str::from_utf8(raw.get(i..i + 4)?).ok()?;
                    let unit = u32::from_str_radix(hex, 16).ok()?;
                    i += 4;
                    // Surrogate pairs never spell "id", "type" or "done": treat as "other".
                    char::from_u32(unit)?.encode_utf8(&mut ch).as_bytes()
                }
                b'b' => b"\x08",
                b'f' => b"\x0c",
                b'n' => b"\n",
                b'r' => b"\r",
                b't' => b"\t",
                other => {
                    ch[0] = other;
                    &ch[..1]
                }
            }
        } else {
            i += 1;
            &raw[i - 1..i]
        };
        let dest = out.get_mut(n..n + bytes.len())?;
        dest.copy_from_slice(bytes);
        n += bytes.len();
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, done: bool) -> Line {
        Line::Record { id, done }
    }

    #[test]
    fn records_and_not_records() {
        assert_eq!(classify(br#"{"type":"step","id":3}"#), rec(3, false));
        assert_eq!(classify(br#" {"id":3,"type":"done"} "#), rec(3, true));
        assert_eq!(
            classify(br#"{"i\u0064":7,"typ\u0065":"d\u006fne"}"#),
            rec(7, true)
        );
        assert_eq!(
            classify(br#"{"id":18446744073709551615}"#),
            rec(u64::MAX, false)
        );
        assert_eq!(classify(b""), Line::Blank);
        assert_eq!(classify(b" \t "), Line::Blank);
        for bad in [
            &br#"{"id":3.0}"#[..],
            br#"{"id":"3"}"#,
            br#"{"id":0}"#,
            br#"{"id":-1}"#,
            br#"{"id":1e3}"#,
            br#"{"id":03}"#,
            br#"{"id":18446744073709551616}"#,
            br#"{"type":"step"}"#,
            br#"[{"id":1}]"#,
            br#"{"id":1"#,
            br#"{"id":1}x"#,
            br#"{"id":1,}"#,
            br#"{"id":1,"f":"\ud800"}"#,
            br#"{"id":1,"f":"a\x"}"#,
            b"{\"id\":1,\"f\":\"tab\there\"}",
            br#"{"id":1} {"id":2}"#,
            br#"{"id":5,"id":"x"}"#,
            b"null",
        ] {
            assert_eq!(
                classify(bad),
                Line::Malformed,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The last duplicate wins, as in serde_json.
        assert_eq!(classify(br#"{"id":"x","id":5}"#), rec(5, false));
        assert_eq!(
            classify(br#"{"type":"done","type":"step","id":2}"#),
            rec(2, false)
        );
        // Raw non-UTF-8 bytes in a string are kept (converted later).
        assert_eq!(classify(b"{\"file\":\"caf\xe9\",\"id\":9}"), rec(9, false));
    }

    #[test]
    fn ascii_is_noted() {
        assert!(classify_noting_ascii(br#"{"file":"a-long-plain-name.php","id":1}"#).1);
        assert!(!classify_noting_ascii("{\"file\":\"café-long-name.php\",\"id\":1}".as_bytes()).1);
        assert!(!classify_noting_ascii(b"{\"file\":\"x\xff\",\"id\":1}").1);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let mut line = b"{\"id\":1,\"x\":".to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        assert_eq!(classify(&line), Line::Malformed);
    }
}

/// `skip_plain` and `stops` against a plain byte-at-a-time loop, every path by name, at every
/// offset and alignment.
#[cfg(test)]
mod scanner_tests {
    use super::*;

    fn is_stop(b: u8) -> bool {
        b == b'"' || b == b'\\' || b < 0x20
    }

    /// The reference: where a plain loop stops, and whether it passed a byte of 0x80 or above.
    fn plain(s: &[u8], from: usize) -> (usize, bool) {
        let len = s[from..]
            .iter()
            .position(|&b| is_stop(b))
            .unwrap_or(s.len() - from);
        (from + len, s[from..from + len].iter().any(|&b| b >= 0x80))
    }

    /// Runs `skip_plain` from `from` with `s` placed at each alignment in memory.
    fn check(s: &[u8], from: usize) {
        let (want, want_high) = plain(s, from);
        for align in 0..8 {
            let mut backing = vec![b'#'; align];
            backing.extend_from_slice(s);
            let s = &backing[align..];
            let mut p = Parser {
                s,
                i: from,
                high: 0,
            };
            p.skip_plain();
            assert_eq!(p.i, want, "stop in {:?} from {from}, alignment {align}", s);
            let high = p.high & u64::from_ne_bytes([0x80; 8]) != 0;
            // The flag may also see bytes after the stop in the same sixteen (then the copy
            // validates the UTF-8 itself), but never misses one before it.
            assert!(
                high || !want_high,
                "a byte >= 0x80 before the stop was missed in {s:?}"
            );
        }
    }

    const STOPS: [u8; 6] = [b'"', b'\\', 0x00, 0x0A, 0x1F, 0x01];
    /// Bytes next to the stops in value, or equal to them but for the top bit: never stops.
    const NEAR: [u8; 12] = [
        0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0x9F, 0xFF, b'a',
    ];

    #[test]
    fn stops_flags_each_stop_byte_in_every_lane() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut w = [b'x'; 8];
                w[lane] = b;
                let flags = stops(u64::from_le_bytes(w));
                if is_stop(b) {
                    assert_eq!(
                        flags.trailing_zeros() / 8,
                        lane as u32,
                        "byte {b:#x} lane {lane}"
                    );
                } else {
                    assert_eq!(flags, 0, "byte {b:#x} lane {lane} flagged");
                }
            }
        }
    }

    #[test]
    fn stops_lowest_flag_is_right_whatever_follows() {
        // Borrows run upwards: whatever sits above the first stop, the lowest flag is it.
        for stop in STOPS {
            for lane in 0..7 {
                for above in 0..=255u8 {
                    let mut w = [b'x'; 8];
                    w[lane] = stop;
                    w[lane + 1] = above;
                    let flags = stops(u64::from_le_bytes(w));
                    assert_eq!(
                        flags.trailing_zeros() / 8,
                        lane as u32,
                        "{stop:#x} then {above:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn skip_plain_stop_in_first_word() {
        for stop in STOPS {
            for at in 0..8 {
                let mut s = vec![b'p'; 40];
                s[at] = stop;
                check(&s, 0);
            }
        }
    }

    #[test]
    fn skip_plain_stop_in_second_word() {
        for stop in STOPS {
            for at in 8..16 {
                let mut s = vec![b'p'; 40];
                s[at] = stop;
                check(&s, 0);
            }
        }
    }

    #[test]
    fn skip_plain_stop_in_a_later_sixteen() {
        for stop in STOPS {
            for at in 16..64 {
                let mut s = vec![0xC3; 80];
                s[at] = stop;
                check(&s, 0);
            }
        }
    }

    #[test]
    fn skip_plain_stop_in_remainder() {
        // Fewer than sixteen bytes left: the byte loop.
        for stop in STOPS {
            for len in 1..16 {
                for at in 0..len {
                    let mut s = vec![b'r'; len];
                    s[at] = stop;
                    check(&s, 0);
                }
            }
        }
    }

    #[test]
    fn skip_plain_no_stop_runs_to_the_end() {
        for len in 0..70 {
            check(&vec![b'n'; len], 0);
            check(&vec![0xE9; len], 0);
        }
    }

    #[test]
    fn skip_plain_near_misses_never_stop() {
        for near in NEAR {
            for at in 0..40 {
                let mut s = vec![b'q'; 40];
                s[at] = near;
                s.push(b'"');
                check(&s, 0);
            }
        }
    }

    #[test]
    fn skip_plain_every_offset_length_and_stop_position() {
        for len in 0..=48 {
            for from in 0..=len {
                check(&vec![b'z'; len], from);
                for at in from..len {
                    for stop in [b'"', 0x00] {
                        let mut s: Vec<u8> =
                            (0..len).map(|k| [b'a', 0xC3, b' ', 0xA9][k % 4]).collect();
                        s[at] = stop;
                        check(&s, from);
                    }
                }
            }
        }
    }
}
