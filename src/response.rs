//! What every front end sends back: an HTTP status, headers, and a body produced in chunks.

use std::io::{self, Read};

use crate::envelope::{Form, JsonBody, CHUNK};

pub const JSON_TYPE: &str = "application/json; charset=utf-8";
pub const HTML_TYPE: &str = "text/html; charset=utf-8";

pub enum Body {
    Json(Box<JsonBody>),
    Static(&'static [u8]),
    /// Tests only: a body made by a closure, so that a front end's handling of a body that
    /// fails while it streams (a panic, say) can be tested without a hook in shipped code.
    #[cfg(test)]
    Test(TestBody),
}

/// Appends the next piece of a test body to the buffer; false when there is no more.
#[cfg(test)]
pub type TestBody = Box<dyn FnMut(&mut Vec<u8>) -> bool + Send>;

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers beyond the standard ones (`WWW-Authenticate`, `Allow`).
    pub extra_headers: Vec<(&'static str, &'static str)>,
    pub body: Body,
}

impl Response {
    pub fn json(status: u16, body: JsonBody) -> Response {
        Response {
            status,
            content_type: JSON_TYPE,
            extra_headers: Vec::new(),
            body: Body::Json(Box::new(body)),
        }
    }

    pub fn html(page: &'static str) -> Response {
        Response {
            status: 200,
            content_type: HTML_TYPE,
            extra_headers: Vec::new(),
            body: Body::Static(page.as_bytes()),
        }
    }

    /// An envelope with `result.status` 0 and one error.
    pub fn error(status: u16, form: Form, message: impl Into<String>) -> Response {
        Response::json(status, JsonBody::failure(form, vec![message.into()]))
    }

    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Response {
        self.extra_headers.push((name, value));
        self
    }

    /// Whether the answer is a success (HTTP 200 and `result.status` 1).
    pub fn succeeded(&self) -> bool {
        self.status == 200 && matches!(&self.body, Body::Json(json) if json.succeeded())
    }

    /// Headers in the order they are sent, standard ones included (SPEC §4).
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut all = vec![
            ("Content-Type", self.content_type),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ];
        all.extend(self.extra_headers.iter().copied());
        all
    }

    /// Appends the next piece of the body; false when there is no more.
    pub fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        match &mut self.body {
            Body::Json(json) => json.fill(out),
            Body::Static(bytes) => {
                if bytes.is_empty() {
                    return false;
                }
                out.extend_from_slice(bytes);
                *bytes = b"";
                true
            }
            #[cfg(test)]
            Body::Test(produce) => produce(out),
        }
    }

    /// Writes the whole body to `sink` in writes of at least one [`CHUNK`] (the last one
    /// excepted) and returns the bytes written: the one push loop, for the front ends that push
    /// (CGI, FastCGI, `uapi`); [`Response::into_reader`] is the pull side.
    pub fn write_body(&mut self, sink: &mut dyn io::Write) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(CHUNK * 2);
        let mut written = 0u64;
        while self.fill(&mut buf) {
            if buf.len() >= CHUNK {
                sink.write_all(&buf)?;
                written += buf.len() as u64;
                buf.clear();
            }
        }
        sink.write_all(&buf)?;
        Ok(written + buf.len() as u64)
    }

    /// The body as a `Read`er, for servers that pull.
    pub fn into_reader(self) -> BodyReader {
        BodyReader {
            response: self,
            buf: Vec::with_capacity(CHUNK * 2),
            pos: 0,
        }
    }
}

pub struct BodyReader {
    response: Response,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if !self.response.fill(&mut self.buf) {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}
