//! A parsed request, borrowed from the connection's input buffer.

use std::ops::Range;

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the client asks
    /// for keep-alive.
    Http10,
    /// HTTP/1.1: the connection stays open unless either side says `close`.
    Http11,
}

/// Byte offsets of one header field inside the request head.
#[derive(Clone, Debug)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// One complete request: head and (decoded) body, borrowed without copying.
///
/// ```
/// # use edgepoll::http::{Request, Response, Service, StatusCode};
/// struct Hello;
/// impl Service for Hello {
///     fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
///         let name = request.header("x-name").unwrap_or(b"world");
///         Response::new(StatusCode::OK).body([b"hello ", name].concat())
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) head: &'a [u8],
    pub(crate) method: &'a Range<usize>,
    pub(crate) target: &'a Range<usize>,
    pub(crate) version: Version,
    pub(crate) headers: &'a [HeaderSpan],
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    fn text(&self, range: &Range<usize>) -> &'a str {
        // The parser admitted only visible ASCII here, so this never falls back.
        std::str::from_utf8(&self.head[range.clone()]).unwrap_or("")
    }

    /// The method, such as `"POST"`.
    pub fn method(&self) -> &'a str {
        self.text(self.method)
    }

    /// The request target as sent, such as `"/path?query"`.
    pub fn target(&self) -> &'a str {
        self.text(self.target)
    }

    /// The path part of the target (without the query).
    pub fn path(&self) -> &'a str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of the first header field with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All header fields in the order received, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let head = self.head;
        self.headers.iter().map(move |h| {
            let name = std::str::from_utf8(&head[h.name.clone()]).unwrap_or("");
            (name, &head[h.value.clone()])
        })
    }

    /// The body, decoded if it was sent chunked; empty if there was none.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}
