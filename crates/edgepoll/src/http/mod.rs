//! HTTP/1.1 as a state machine free of I/O.
//!
//! [`Handler`] is the server side of one connection; [`ResponseParser`] reads
//! responses on the client side. Both are fed bytes and give bytes or values
//! back, so they run and are tested natively, without sockets.
//!
//! What the server side answers to bad or excessive input (the connection is
//! closed after each of these, and other connections are not affected):
//!
//! | input | answer |
//! |---|---|
//! | malformed request line or header field, bare LF, missing or repeated `Host` in HTTP/1.1, a `Host` that names no host, a `host:port` target on a method other than CONNECT or `*` on one other than OPTIONS, a CONNECT target other than `host:port` (where the service answers CONNECT), conflicting or invalid `Content-Length`, `Content-Length` with `Transfer-Encoding`, `Transfer-Encoding` whose last coding is not `chunked`, bad chunk framing or trailer fields, a malformed version | 400 |
//! | head not complete within [`Limits::header_timeout`], body stalled past [`Limits::idle_timeout`] | 408 |
//! | body larger than [`Limits::max_body_bytes`] | 413 |
//! | `Expect` other than `100-continue` | 417 |
//! | request line alone larger than [`Limits::max_head_bytes`] | 414 |
//! | head larger than [`Limits::max_head_bytes`], more than [`Limits::max_headers`] fields, trailers too large | 431 |
//! | a transfer coding other than `chunked` before a final `chunked`; `CONNECT` (unless the service opts in with [`Service::handles_connect`]); a method over 64 bytes | 501 |
//! | a version other than HTTP/1 (HTTP/1.2 to HTTP/1.9 are served as HTTP/1.1, RFC 9112 §2.3), including the HTTP/2 preface | 505 |
//! | keep-alive connection idle past [`Limits::idle_timeout`] | closed without a response |

mod body;
mod chunked;
mod date;
mod framing;
mod handler;
mod head;
mod input;
pub(crate) use input::reserve_up_to;
mod intermediary;
mod limits;
pub(crate) mod output;
mod request;
mod response;
mod response_parser;
mod scan;
mod service;
mod status;

pub use body::BodyError;
pub use chunked::{ChunkedDecoder, ChunkedError, Progress};
#[cfg(target_os = "wasi")]
pub(crate) use date::ResponseDates;
pub use date::{imf_fixdate, DateCache};
pub use framing::FramingError;
pub(crate) use framing::{is_field_value, is_framing_field};
pub use handler::{Gone, Handler, Incident, OutputHold, StreamError, MAX_HEADERS};
pub use intermediary::{HopByHop, HOP_BY_HOP};
pub use limits::Limits;
pub use request::{Request, Version};
pub use response::{AsBytes, Response};
pub use response_parser::{ParsedResponse, ResponseError, ResponseParser};
pub(crate) use scan::{ascii_str, find_byte, is_reg_name, is_token, same_bytes, token_is};
pub use service::{Dispatch, Reply, RequestId, Service};
pub use status::StatusCode;

/// Whether two field names (or other tokens: methods, `Connection`
/// options) are the same, ignoring ASCII case (RFC 9110 §5.1). Eight bytes
/// at a time: in a guest, the standard library's `eq_ignore_ascii_case`
/// costs some forty Wasm instructions a byte.
///
/// ```
/// use edgepoll::http::same_name;
/// assert!(same_name("Content-Length", "content-length"));
/// assert!(!same_name("Content-Length", "content-lengths"));
/// ```
#[inline]
pub fn same_name(a: &str, b: &str) -> bool {
    // The lengths first, here: most names compared differ in length, and
    // then no call is made.
    a.len() == b.len() && scan::eq_ignore_ascii_case(a.as_bytes(), b.as_bytes())
}

/// The elements of a field value that is a comma-separated list of tokens
/// or numbers (RFC 9110 §5.6.1; `Connection`, `Max-Forwards`): each
/// without the optional whitespace (spaces and tabs, §5.6.3) around it,
/// empty ones skipped, as a recipient must take them. The field sent on
/// several lines reads as these elements, line after line. Every comma
/// splits: not for a list whose elements may be quoted strings.
///
/// ```
/// use edgepoll::http::list_elements;
/// let options: Vec<&[u8]> = list_elements(b" keep-alive ,, \tX-Trace").collect();
/// assert_eq!(options, [&b"keep-alive"[..], b"X-Trace"]);
/// assert_eq!(list_elements(b" , ").count(), 0);
/// ```
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let ows = |b: &u8| matches!(b, b' ' | b'\t');
    value.split(|&b| b == b',').filter_map(move |element| {
        let start = element.iter().position(|b| !ows(b))?;
        let end = element.iter().rposition(|b| !ows(b))?;
        Some(&element[start..=end])
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_deferred;
pub(crate) use body::{Incoming, Outgoing};
pub use output::MAX_SEND_PARTS;
pub(crate) use output::{one_part, OutputBuffer, Parts};
pub(crate) use response::Decimal;
#[cfg(test)]
mod tests_stream;
