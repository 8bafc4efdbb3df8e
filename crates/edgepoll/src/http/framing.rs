//! What header fields mean for framing and for the connection, in both
//! directions: the server reading requests and the client reading responses
//! apply the same rules to `Content-Length`, `Transfer-Encoding` and
//! `Connection` (RFC 9112 §6), and the same test of field validity.
//!
//! Both directions refuse what RFC 9112 lets a recipient refuse and what an
//! intermediary must refuse to stay out of request smuggling: a
//! `Content-Length` beside a `Transfer-Encoding`, conflicting lengths, a
//! length that is not a plain decimal, `chunked` that is not the last coding
//! or appears twice, and `Transfer-Encoding` in an HTTP/1.0 message.

use super::{StatusCode, Version};
use std::ops::Range;

/// Why the fields of a message cannot frame its body.
///
/// A request so framed gets 400 from the server; a response so framed is
/// [`ResponseError::Framing`](super::ResponseError::Framing) to the client.
///
/// ```
/// use edgepoll::http::{FramingError, ResponseError, ResponseParser};
/// let mut parser = ResponseParser::new(false);
/// let both = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
/// let error = parser.feed(both).unwrap_err();
/// assert_eq!(error, ResponseError::Framing(FramingError::LengthAndTransferEncoding));
/// assert_eq!(FramingError::LengthAndTransferEncoding.as_str(), "both Content-Length and Transfer-Encoding");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A `Content-Length` that is not a decimal number.
    InvalidLength,
    /// Two `Content-Length` values that differ.
    ConflictingLengths,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message.
    TransferEncodingInHttp10,
    /// A transfer coding other than `chunked`.
    UnknownCoding,
    /// `chunked` missing from the end, or named twice.
    InvalidTransferEncoding,
}

impl FramingError {
    /// A short description for logs and error bodies.
    ///
    /// ```
    /// use edgepoll::http::FramingError;
    /// assert_eq!(FramingError::ConflictingLengths.as_str(), "conflicting Content-Length fields");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FramingError::InvalidLength => "invalid Content-Length",
            FramingError::ConflictingLengths => "conflicting Content-Length fields",
            FramingError::LengthAndTransferEncoding => "both Content-Length and Transfer-Encoding",
            FramingError::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            FramingError::UnknownCoding => {
                "unsupported transfer coding (only chunked is supported)"
            }
            FramingError::InvalidTransferEncoding => "invalid Transfer-Encoding",
        }
    }
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for FramingError {}

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// Exactly this many bytes (`u64::MAX` for a length too large to count).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// What the header fields of one message say about framing and the
/// connection, gathered one field at a time.
#[derive(Default)]
pub(crate) struct FieldSummary {
    /// `u64::MAX` for a valid number of more than 19 significant digits
    /// (10^19 or more, past any body: some of these would fit a u64).
    pub(crate) content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    chunked_count: usize,
    unknown_coding: bool,
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    /// `Connection` names `upgrade`, and an `Upgrade` field names a
    /// protocol: the sender offers to switch protocols (RFC 9110 §7.8).
    connection_upgrade: bool,
    upgrade: bool,
    pub(crate) expect_continue: bool,
    pub(crate) unknown_expectation: bool,
    pub(crate) hosts: usize,
    pub(crate) invalid_host: bool,
}

impl FieldSummary {
    /// Takes in one field as a head parser gave it: a name of token characters
    /// and a value without leading or trailing spaces and tabs, at
    /// `buf[name]` and `buf[value]`.
    #[inline]
    pub(crate) fn add(
        &mut self,
        buf: &[u8],
        name: Range<usize>,
        value: Range<usize>,
    ) -> Result<(), FramingError> {
        let (name, value_bytes) = (&buf[name], &buf[value.clone()]);
        // The length picks the one name a field could be before any compare:
        // most fields are none of these and cost one match.
        let is = |known: &[u8]| super::scan::token_is(name, known);
        match name.len() {
            4 if is(b"host") => {
                self.invalid_host |= !host_is_valid(buf, value);
                self.hosts += 1;
            }
            // A list (RFC 9110 §10.1.1), whose empty elements a recipient
            // ignores (§5.6.1.2): an empty one expects nothing.
            6 if is(b"expect") => {
                for item in list_items(value_bytes) {
                    if super::scan::eq_ignore_ascii_case(item, b"100-continue") {
                        self.expect_continue = true;
                    } else {
                        self.unknown_expectation = true;
                    }
                }
            }
            10 if is(b"connection") => {
                for token in list_items(value_bytes) {
                    let same = super::scan::eq_ignore_ascii_case;
                    if same(token, b"close") {
                        self.close = true;
                    } else if same(token, b"keep-alive") {
                        self.keep_alive = true;
                    } else if same(token, b"upgrade") {
                        self.connection_upgrade = true;
                    }
                }
            }
            // Several fields make one list (RFC 9110 §5.3): any protocol
            // in any of them is an offer.
            7 if is(b"upgrade") => self.upgrade |= list_items(value_bytes).next().is_some(),
            14 if is(b"content-length") => {
                let n = parse_content_length(value_bytes)
                    .ok_or(FramingError::InvalidLength)?
                    .unwrap_or(u64::MAX);
                // Lengths past u64 all read as its maximum, so two of them
                // cannot be told equal: a second field beside one is a
                // conflict (a 400, as for two that differ, not a 413).
                if self
                    .content_length
                    .is_some_and(|old| old != n || n == u64::MAX)
                {
                    return Err(FramingError::ConflictingLengths);
                }
                self.content_length = Some(n);
            }
            17 if is(b"transfer-encoding") => {
                self.transfer_encoding = true;
                for coding in list_items(value_bytes) {
                    if super::scan::eq_ignore_ascii_case(coding, b"chunked") {
                        self.chunked_count += 1;
                        self.chunked_last = true;
                    } else {
                        self.unknown_coding = true;
                        self.chunked_last = false;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The framing of a request body (RFC 9112 §6.3): chunked, a length, or
    /// none.
    pub(crate) fn request_framing(&self, version: Version) -> Result<BodyFraming, FramingError> {
        if self.transfer_encoding {
            self.check_transfer_encoding(version)?;
            // Chunked not last, twice or not at all is unframeable: 400
            // (RFC 9112 §6.3 ¶4, a MUST; nginx answers `gzip` alone with
            // 501), before a coding this server lacks gets its 501 (§6.1).
            if !self.chunked_last || self.chunked_count != 1 {
                return Err(FramingError::InvalidTransferEncoding);
            }
            if self.unknown_coding {
                return Err(FramingError::UnknownCoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        Ok(BodyFraming::Length(self.content_length.unwrap_or(0)))
    }

    /// The framing of the body of a response with `status` to a request
    /// whose method was HEAD or not (RFC 9112 §6.3): none for HEAD, 1xx, 204
    /// and 304 whatever the fields say; otherwise chunked, a length, or until
    /// the connection closes. A coding other than chunked is read until close,
    /// as the RFC says, and left as it is.
    pub(crate) fn response_framing(
        &self,
        version: Version,
        status: StatusCode,
        to_head: bool,
    ) -> Result<BodyFraming, FramingError> {
        if to_head || status.forbids_body() {
            return Ok(BodyFraming::Length(0));
        }
        if self.transfer_encoding {
            self.check_transfer_encoding(version)?;
            return match (self.chunked_count, self.chunked_last) {
                (1, true) => Ok(BodyFraming::Chunked),
                (0, _) if self.unknown_coding => Ok(BodyFraming::UntilClose),
                (1, false) => Ok(BodyFraming::UntilClose),
                _ => Err(FramingError::InvalidTransferEncoding),
            };
        }
        Ok(match self.content_length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::UntilClose,
        })
    }

    /// Whether an HTTP/1.1 message offers to switch protocols: an `Upgrade`
    /// field that `Connection` names (one it does not name is ignored, as
    /// RFC 9110 §7.6.1 says of any hop-by-hop field).
    pub(crate) fn offers_upgrade(&self, version: Version) -> bool {
        self.upgrade && self.connection_upgrade && version == Version::Http11
    }

    /// Whether a 204's fields claim a body all the same: `Transfer-Encoding`,
    /// or a `Content-Length` other than 0, which no server may send on one
    /// (RFC 9112 §6.1, RFC 9110 §8.6). A 204 has no body whatever they say,
    /// but what follows it may be the body its server meant: its connection
    /// is not used again, lest that be read as the next response.
    pub(crate) fn claims_body_on_204(&self, status: StatusCode) -> bool {
        status == StatusCode::NO_CONTENT
            && (self.transfer_encoding || self.content_length.is_some_and(|n| n != 0))
    }

    /// Whether the connection stays open after this message. Not after an
    /// HTTP/1.0 one with `Transfer-Encoding`, whose framing is faulty even
    /// where it has no body to frame (RFC 9112 §6.1: a bodiless response).
    pub(crate) fn keeps_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close && !self.transfer_encoding,
        }
    }

    fn check_transfer_encoding(&self, version: Version) -> Result<(), FramingError> {
        if self.content_length.is_some() {
            return Err(FramingError::LengthAndTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        Ok(())
    }
}

/// The items of a comma-separated field value, trimmed, empty ones left out.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// `Some(None)` for a valid number of more than 19 significant digits
/// (10^19 or more: taken as too large, though up to `u64::MAX` would fit),
/// `None` for no number.
#[inline]
pub(crate) fn parse_content_length(value: &[u8]) -> Option<Option<u64>> {
    if value.is_empty() {
        return None;
    }
    // Nineteen digits always fit in a u64: no step needs an overflow check
    // (a 64-bit one costs wasm32 a 128-bit multiplication), and a length
    // that short, which every real one is, needs no count of digits either.
    if value.len() <= 19 {
        let mut n = 0u64;
        for &d in value {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + u64::from(digit);
        }
        return Some(Some(n));
    }
    // Longer: leading zeros may still leave a number that fits. One pass:
    // the value, the check that each byte is a digit, and the count of
    // significant digits.
    let mut n = 0u64;
    let mut significant = 0usize;
    for &d in value {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        if significant < 19 {
            n = n * 10 + u64::from(digit);
        }
        significant += usize::from(significant > 0 || digit != 0);
    }
    Some((significant <= 19).then_some(n))
}

/// Whether a field value holds only what the head parser takes in one:
/// no control byte but tab, no DEL (RFC 9110 §5.5). CR, LF and NUL among
/// them could end a field or a head early (CWE-113).
#[inline]
pub(crate) fn is_field_value(bytes: &[u8]) -> bool {
    !super::scan::has_control_byte(bytes)
}

/// Whether `name` is a field the connection writes itself: a message's own
/// framing is never taken from a service or a caller.
#[inline(always)]
pub(crate) fn is_framing_field(name: &[u8]) -> bool {
    let len = name.len();
    (len == 14 && super::scan::eq_ignore_ascii_case(name, b"content-length"))
        || (len == 10 && super::scan::eq_ignore_ascii_case(name, b"connection"))
        || (len == 17 && super::scan::eq_ignore_ascii_case(name, b"transfer-encoding"))
}

/// Whether the Host value `buf[value]` is valid: see [`is_valid_host`].
#[inline]
fn host_is_valid(buf: &[u8], value: Range<usize>) -> bool {
    match super::scan::short_host_is_valid(buf, value.clone()) {
        Some(valid) => valid,
        None => is_valid_host(&buf[value]),
    }
}

/// A Host field value (RFC 9110 §7.2, RFC 3986 §3.2.2): a registered name
/// or IPv4 address, or an IPv6 literal in brackets, then an optional port.
/// Empty is allowed (a target without an authority), but not a port without
/// a host (`:80`): an `http` URI with an empty host is invalid, and its
/// recipient must reject it (RFC 9110 §4.2.1); nginx answers 400 too.
/// The IPv6 literal must be an address (nginx takes any bracketed bytes);
/// the port is digits, as RFC 3986 has it, of any value, as nginx takes it.
pub(crate) fn is_valid_host(value: &[u8]) -> bool {
    matches!(host_and_port(value), Some((empty, port)) if !empty || port.is_none())
}

/// A CONNECT target (RFC 9112 §3.2.3): `uri-host ":" port`, a host that is
/// not empty and a port of at least one digit.
pub(crate) fn is_host_and_port(value: &[u8]) -> bool {
    matches!(host_and_port(value), Some((false, Some(port))) if !port.is_empty())
}

/// A valid `host[:port]` split: whether the host is empty, and the port's
/// digits if a colon is there.
fn host_and_port(value: &[u8]) -> Option<(bool, Option<&[u8]>)> {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']')?;
        let literal = &rest[..end];
        // RFC 3986's `IPv6address`, which is what std reads (no zone, no
        // `IPvFuture`): a bracket of colons is no address to pass on.
        let text = std::str::from_utf8(literal).ok()?;
        text.parse::<std::net::Ipv6Addr>().ok()?;
        match &rest[end + 1..] {
            [] => (literal, None),
            [b':', port @ ..] => (literal, Some(port)),
            _ => return None,
        }
    } else {
        let (host, port) = match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        if !super::scan::is_reg_name(host) {
            return None;
        }
        (host, port)
    };
    let digits = port.is_none_or(|p| p.iter().all(u8::is_ascii_digit));
    digits.then_some((host.is_empty(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_parse_like_the_standard_library() {
        let reference = |value: &str| -> Option<Option<u64>> {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let significant = value.trim_start_matches('0');
            Some(match significant.len() {
                0..=19 => Some(value.parse::<u64>().ok()?),
                _ => None,
            })
        };
        let mut samples: Vec<String> = ["", "0", "00", "007", "128", "1 2", "+1", "-1", "12a", "a"]
            .map(String::from)
            .to_vec();
        for digits in 1..=22 {
            samples.push("9".repeat(digits));
            samples.push(format!("000{}", "9".repeat(digits)));
            samples.push(format!("1{}", "0".repeat(digits)));
        }
        samples.push(u64::MAX.to_string());
        for value in samples {
            assert_eq!(
                parse_content_length(value.as_bytes()),
                reference(&value),
                "{value:?}"
            );
        }
    }

    /// The quick Host check (SIMD builds) decides exactly as the byte-by-byte
    /// one, wherever the value lies in its buffer.
    #[test]
    fn quick_host_check_agrees_with_the_exact_one() {
        let alphabet = b"a1.:%4[]-_ z9\xff\x00/@";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values: Vec<Vec<u8>> = [
            &b""[..],
            b"127.0.0.1:8080",
            b"localhost",
            b"a:b:80",
            b":80",
            b"host:",
            b"[::1]:80",
            b"x%41y:1",
            b"0123456789abcdef",
            b"0123456789abcdef0",
            b"bench",
        ]
        .iter()
        .map(|v| v.to_vec())
        .collect();
        for _ in 0..4000 {
            let len = (next() % 19) as usize;
            values.push(
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect(),
            );
        }
        for value in &values {
            for (before, after) in [(0, 0), (0, 20), (3, 2), (17, 0), (1, 30), (5, 9)] {
                let mut buf = vec![b'x'; before];
                buf.extend_from_slice(value);
                buf.extend(std::iter::repeat_n(b'\r', after));
                let range = before..before + value.len();
                assert_eq!(
                    host_is_valid(&buf, range),
                    is_valid_host(value),
                    "{:?} at {before} with {after} after",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }
}
