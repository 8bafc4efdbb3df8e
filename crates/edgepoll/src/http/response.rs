//! Responses that a [`Service`](super::Service) returns, and their encoding.

use super::StatusCode;
use bytes::BytesMut;
use std::borrow::Cow;

/// A response: status, header fields and body.
///
/// The connection owns framing: it writes `Content-Length` and `Connection`
/// itself, so a service's own `Content-Length` or `Transfer-Encoding` fields are
/// dropped. A service's `Connection: close` is honoured: the connection closes
/// after this response.
///
/// ```
/// use edgepoll::http::{Response, StatusCode};
/// let response = Response::new(StatusCode::OK)
///     .header("Content-Type", "text/plain")
///     .body("hi\n");
/// assert_eq!(response.status(), StatusCode::OK);
/// ```
#[derive(Clone, Debug)]
pub struct Response<'a> {
    status: StatusCode,
    headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    body: Cow<'a, [u8]>,
}

impl<'a> Response<'a> {
    /// An empty response with this status.
    pub fn new(status: StatusCode) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Cow::Borrowed(&[]),
        }
    }

    /// Adds a header field. Fields whose name or value hold CR, LF or NUL are
    /// left out when the response is written, so they cannot split the response.
    pub fn header(mut self, name: impl Into<Cow<'a, str>>, value: impl AsBytes<'a>) -> Self {
        self.headers.push((name.into(), value.into_bytes()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl AsBytes<'a>) -> Self {
        self.body = body.into_bytes();
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
    }

    /// Appends the encoded response to `out` in one piece, so that it leaves in
    /// one send: a head sent apart from its body stalls on Nagle's algorithm,
    /// which WasmEdge sockets cannot turn off.
    pub(crate) fn encode(&self, out: &mut BytesMut, connection: ConnectionHeader, head_only: bool) {
        let body_allowed = !self.status.forbids_body();
        let body_len = if body_allowed { self.body.len() } else { 0 };
        let send_body = body_allowed && !head_only;
        out.reserve(128 + if send_body { body_len } else { 0 });
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, self.status.as_u16() as u64);
        out.extend_from_slice(b" ");
        out.extend_from_slice(self.status.reason().as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            let framing = ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f));
            if framing || !is_field_safe(name.as_bytes()) || !is_field_safe(value) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if body_allowed {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, body_len as u64);
            out.extend_from_slice(b"\r\n");
        }
        match connection {
            ConnectionHeader::None => {}
            ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
            ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        if send_body {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Which `Connection` field the connection adds to a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    None,
    Close,
    KeepAlive,
}

fn is_field_safe(bytes: &[u8]) -> bool {
    !bytes.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// Appends `n` in decimal without allocating.
pub(crate) fn push_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Things a header value or body can be made from: byte slices, strings and
/// their owned forms.
pub trait AsBytes<'a> {
    /// The bytes, borrowed where possible.
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> AsBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a, const N: usize> AsBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> AsBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> AsBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> AsBytes<'a> for String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl<'a> AsBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}
