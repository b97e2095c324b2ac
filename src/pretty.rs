//! Re-indents JSON as it streams past, for `uapi --output=jsonpretty`.
//!
//! Why not parse and re-serialise: records must stay byte for byte (key order, number
//! spellings), and the answer may be larger than memory should hold. This works on tokens:
//! it only inserts newlines and indentation outside strings, in the style of cPanel's own
//! pretty output (three spaces, `"key" : value`).

use std::io::{self, Write};

use crate::envelope::CHUNK;

pub struct Pretty<W: Write> {
    inner: W,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// An opening bracket not yet written, so that `{}` and `[]` stay on one line.
    pending_open: Option<u8>,
    out: Vec<u8>,
}

impl<W: Write> Pretty<W> {
    pub fn new(inner: W) -> Self {
        Pretty {
            inner,
            depth: 0,
            in_string: false,
            escaped: false,
            pending_open: None,
            out: Vec::with_capacity(CHUNK),
        }
    }

    fn newline(&mut self) {
        self.out.push(b'\n');
        self.out.extend(std::iter::repeat_n(b' ', self.depth * 3));
    }

    fn open_pending(&mut self) {
        if let Some(open) = self.pending_open.take() {
            self.out.push(open);
            self.depth += 1;
            self.newline();
        }
    }

    fn push(&mut self, b: u8) {
        if self.in_string {
            self.out.push(b);
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                self.open_pending();
                self.pending_open = Some(b);
            }
            b'}' | b']' => {
                if let Some(open) = self.pending_open.take() {
                    self.out.extend_from_slice(&[open, b]);
                } else {
                    self.depth = self.depth.saturating_sub(1);
                    self.newline();
                    self.out.push(b);
                }
            }
            b',' => {
                self.out.push(b',');
                self.newline();
            }
            b':' => self.out.extend_from_slice(b" : "),
            b'"' => {
                self.open_pending();
                self.out.push(b);
                self.in_string = true;
            }
            _ => {
                self.open_pending();
                self.out.push(b);
            }
        }
    }

    /// Ends the document with a newline and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.open_pending();
        self.out.push(b'\n');
        self.inner.write_all(&self.out)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Pretty<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.push(b);
        }
        if self.out.len() >= CHUNK {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.out)?;
        self.out.clear();
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_outside_strings_only() {
        let mut p = Pretty::new(Vec::new());
        let _ = p.write_all(br#"{"a":[1,{"b":"x,{y}:\"z"}],"e":{},"f":[]}"#);
        let text = p.finish().map(|v| String::from_utf8_lossy(&v).into_owned());
        let expected = "{\n   \"a\" : [\n      1,\n      {\n         \"b\" : \"x,{y}:\\\"z\"\n      }\n   ],\n   \"e\" : {},\n   \"f\" : []\n}\n";
        assert_eq!(text.ok().as_deref(), Some(expected));
    }
}
