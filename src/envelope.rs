//! Writes the UAPI JSON, wrapped or flat, as a stream of byte chunks.
//!
//! Why chunks: a full read of a large log is as big as the log, and memory must not grow with
//! the answer. [`JsonBody::fill`] appends the next piece to a caller's buffer, so the CGI front
//! end can push it to stdout and the listener can pull it through `Read` (see `response`).
//! Keys come in cPanel's order (sorted), and `errors`/`warnings` come after `data`, so a read
//! error or a malformed line found while streaming can still be reported in valid JSON.

use crate::disinfection::{Answer, RecordStream, Status};

/// Bytes of the answer gathered before a chunk is handed on: what bounds an answer's memory
/// whatever the log's size. The front ends' output buffers are this size too (CGI's stdout,
/// `uapi`'s, the `jsonpretty` re-indenter's, FastCGI's batches of STDOUT records, the listener's
/// known-length threshold), so that one chunk is one write. Not the body limit
/// (`request::MAX_BODY`) nor the log's read size (`logfile`'s `BLOCK`), though all are 64 KiB.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `{"apiversion":3,…,"result":{…}}`, as cPanel's `uapi` prints and the API reference shows.
    Wrapped,
    /// The `result` object alone, as cPanel's HTTP server sends from `/execute/…`.
    Flat,
}

impl Form {
    pub fn parse(value: &str) -> Option<Form> {
        match value {
            "wrapped" => Some(Form::Wrapped),
            "flat" => Some(Form::Flat),
            _ => None,
        }
    }
}

const WRAPPED_HEAD: &[u8] =
    br#"{"apiversion":3,"func":"check_disinfection_status","module":"ClamScanner","result":"#;

enum Phase {
    Head,
    Records,
    Tail,
    Finished,
}

enum Content {
    Answer {
        log_path: String,
        status: Status,
        warnings: Vec<String>,
        records: Option<Box<RecordStream>>,
        errors: Vec<String>,
    },
    Failure(Vec<String>),
}

/// One envelope, produced piece by piece.
pub struct JsonBody {
    form: Form,
    phase: Phase,
    content: Content,
}

impl JsonBody {
    pub fn answer(form: Form, answer: Answer) -> JsonBody {
        JsonBody {
            form,
            phase: Phase::Head,
            content: Content::Answer {
                log_path: lossless_string(answer.log_path.as_os_str()),
                status: answer.status,
                warnings: answer.warnings,
                records: answer.records.map(Box::new),
                errors: Vec::new(),
            },
        }
    }

    /// `result.status` 0 with these errors and `data` `{}` (the schema does not allow null).
    pub fn failure(form: Form, errors: Vec<String>) -> JsonBody {
        JsonBody {
            form,
            phase: Phase::Head,
            content: Content::Failure(errors),
        }
    }

    /// Appends the next piece; false when the envelope is complete and nothing was added.
    pub fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        match self.phase {
            Phase::Head => {
                if self.form == Form::Wrapped {
                    out.extend_from_slice(WRAPPED_HEAD);
                }
                match &self.content {
                    Content::Answer { .. } => {
                        out.extend_from_slice(br#"{"data":{"details":["#);
                        self.phase = Phase::Records;
                    }
                    Content::Failure(_) => self.phase = Phase::Tail,
                }
                true
            }
            Phase::Records => {
                if let Content::Answer {
                    records: Some(stream),
                    errors,
                    ..
                } = &mut self.content
                {
                    match stream.fill(out, CHUNK) {
                        Ok(true) => return true,
                        Ok(false) => {}
                        Err(e) => errors.push(format!(
                            "The system could not finish reading the disinfection log: {e}."
                        )),
                    }
                }
                self.phase = Phase::Tail;
                true
            }
            Phase::Tail => {
                self.write_tail(out);
                self.phase = Phase::Finished;
                true
            }
            Phase::Finished => false,
        }
    }

    fn write_tail(&mut self, out: &mut Vec<u8>) {
        match &mut self.content {
            Content::Answer {
                log_path,
                status,
                warnings,
                records,
                errors,
            } => {
                out.extend_from_slice(br#"],"log":"#);
                push_json_string(out, log_path);
                out.extend_from_slice(br#","status":""#);
                out.extend_from_slice(status.as_str().as_bytes());
                out.extend_from_slice(br#""},"errors":"#);
                push_string_list(out, errors);
                out.extend_from_slice(br#","messages":null,"metadata":{},"status":"#);
                out.push(if errors.is_empty() { b'1' } else { b'0' });
                out.extend_from_slice(br#","warnings":"#);
                if let Some(w) = records.as_ref().and_then(|r| r.warning()) {
                    warnings.push(w);
                }
                push_string_list(out, warnings);
                out.push(b'}');
            }
            Content::Failure(errors) => {
                out.extend_from_slice(br#"{"data":{},"errors":"#);
                push_string_list(out, errors);
                out.extend_from_slice(
                    br#","messages":null,"metadata":{},"status":0,"warnings":null}"#,
                );
            }
        }
        if self.form == Form::Wrapped {
            out.push(b'}');
        }
    }

    /// Whether `result.status` was (or, before the end, will so far be) 1.
    pub fn succeeded(&self) -> bool {
        matches!(&self.content, Content::Answer { errors, .. } if errors.is_empty())
    }
}

/// `null` for an empty list, else a JSON array of strings (UAPI's convention).
fn push_string_list(out: &mut Vec<u8>, items: &[String]) {
    if items.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_string(out, item);
    }
    out.push(b']');
}

/// A JSON string literal for `s`.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A path or name as text, its non-UTF-8 bytes read as U+0080..U+00FF like the log's.
pub fn lossless_string(os: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    crate::disinfection::push_as_utf8(&mut out, os.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disinfection::{read_log, Tuning};
    use crate::logfile::test_sources::{Failing, Rewritten};
    use crate::logfile::ReadAt;
    use crate::response::Response;

    /// The whole envelope, written by the one write loop the front ends use.
    fn written(body: JsonBody) -> Vec<u8> {
        let mut out = Vec::new();
        Response::json(200, body).write_body(&mut out).ok();
        out
    }

    /// The envelope of a full read of `src`, parsed, in both forms.
    fn answer_of<R: ReadAt + Send + 'static>(src: impl Fn() -> R) -> Vec<serde_json::Value> {
        [Form::Wrapped, Form::Flat]
            .into_iter()
            .map(|form| {
                // Settled before the first byte (the bad part is in the middle of the log).
                let found = read_log(src(), 0, Tuning::default());
                let found = found
                    .map_err(|e| e.to_string())
                    .expect("the answer is settled");
                let answer = Answer {
                    log_path: "/home/u/log".into(),
                    status: found.status.unwrap_or(Status::None),
                    warnings: Vec::new(),
                    records: Some(found.records),
                };
                let out = written(JsonBody::answer(form, answer));
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
                if form == Form::Wrapped {
                    v["result"].clone()
                } else {
                    v
                }
            })
            .collect()
    }

    fn log_of(n: u64) -> Vec<u8> {
        (1..=n)
            .flat_map(|id| format!("{{\"type\":\"step\",\"id\":{id}}}\n").into_bytes())
            .collect()
    }

    /// SPEC §4: a read error after records started to stream still ends in valid JSON, with
    /// what was sent, the error, and status 0.
    #[test]
    fn a_read_error_mid_stream_ends_in_valid_json_with_status_0() {
        let bytes = log_of(20_000);
        let bad = bytes.len() as u64 * 3 / 4;
        for result in answer_of(|| Failing {
            bytes: bytes.clone(),
            bad: bad..bad + 1,
        }) {
            assert_eq!(result["status"], 0, "{result}");
            let details = result["data"]["details"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                details.len() > CHUNK / 32,
                "only {} records were sent",
                details.len()
            );
            for (k, record) in details.iter().enumerate() {
                assert_eq!(record["id"], k as u64 + 1);
            }
            let error = result["errors"][0].as_str().unwrap_or_default();
            assert!(
                error.contains("could not finish reading") && error.contains("os error 5"),
                "{error}"
            );
            assert_eq!(result["data"]["status"], "running");
        }
    }

    #[test]
    fn a_log_rewritten_mid_stream_ends_in_valid_json_with_status_0() {
        let (before, after) = (log_of(20_000), log_of(9_000));
        for result in answer_of(|| Rewritten::new(&before, &after, 12)) {
            assert_eq!(result["status"], 0, "{result}");
            let error = result["errors"][0].as_str().unwrap_or_default();
            assert!(error.contains("changed while it was read"), "{error}");
            assert!(!result["data"]["details"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .is_empty());
        }
    }

    #[test]
    fn failure_envelopes_are_valid_json_in_both_forms() {
        for form in [Form::Wrapped, Form::Flat] {
            let out = written(JsonBody::failure(form, vec!["bad \"x\"\n\u{1}".into()]));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            let result = if form == Form::Wrapped {
                &v["result"]
            } else {
                &v
            };
            assert_eq!(result["status"], 0);
            assert_eq!(result["data"], serde_json::json!({}));
            assert_eq!(result["errors"][0], "bad \"x\"\n\u{1}");
        }
    }
}
