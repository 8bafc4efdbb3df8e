//! The request head parser: request line and header fields, as offsets into
//! the connection's buffer, without allocating; and the same for a response
//! head as a client reads it ([`parse_response_head`]).
//!
//! It accepts exactly what `httparse` 1.x accepts with its default settings
//! and refuses the rest with the same kind of error (the tests compare the two
//! on generated and mutated heads), with one difference: a later HTTP/1 minor
//! version (`HTTP/1.2` to `HTTP/1.9`) is read as `HTTP/1.1`, as RFC 9112 §2.3
//! asks and nginx does, where `httparse` refuses it. It costs a third of the WebAssembly
//! instructions: it reads eight bytes at a time where it can (see
//! [`scan`](super::scan)). A head still arriving is parsed a line at a time
//! as its lines complete ([`HeadParser`]); a line is never parsed before its
//! end is in, so no answer depends on how the bytes arrived.
//!
//! What it accepts (RFC 9112 §2–§5, with `httparse`'s leniencies):
//! empty lines before the request line; a method of token characters; one
//! space; a target of visible ASCII or bytes ≥ 0x80 that form UTF-8; one
//! space; `HTTP/1.0`, `HTTP/1.1` or a later `HTTP/1.x`; then fields `name: value`, a name of token
//! characters and a value of visible bytes, spaces and tabs, leading and
//! trailing spaces and tabs dropped. Lines end in CRLF or a bare LF (the
//! handler refuses bare LFs separately).

use super::request::HeaderSpan;
use super::scan;
use super::Version;
use std::ops::Range;

/// Why a head was refused, in the classes the handler answers differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// A bad method or target, or a missing space between them (in a
    /// response: a bad status code or reason phrase).
    RequestLine,
    /// A version other than HTTP/1.
    Version,
    /// A bad line ending or header field.
    Field,
    /// More header fields than allowed.
    TooManyFields,
}

/// Methods longer than this are not ones any service implements: 501
/// (RFC 9112 §3 advises it), whatever the service would have said.
pub(crate) const MAX_METHOD_BYTES: usize = 64;

/// The most empty lines a response may have before its status line.
const MAX_EMPTY_LINES_BEFORE_STATUS: usize = 4;

/// The request line of a parsed head, as offsets into the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub(crate) method: Range<usize>,
    pub(crate) target: Range<usize>,
    pub(crate) version: Version,
    /// Whether the target may hold a `#` (or a byte ≥ 0x80): only then is
    /// it looked through for a fragment.
    pub(crate) hash_or_high: bool,
}

/// Where a head that is still arriving was left: the head is parsed a line
/// at a time as lines complete, and each byte is looked at a bounded number
/// of times however the head is split (a head trickled in byte by byte costs
/// linear, not quadratic, time).
#[derive(Clone, Debug, Default)]
pub(crate) struct HeadParser {
    /// Where the first line not yet parsed starts.
    line_start: usize,
    /// Bytes from `line_start` up to here hold no LF: the line is incomplete.
    scanned: usize,
    request_line: Option<RequestLine>,
    /// Some line ended in a bare LF (the handler refuses that, but only once
    /// the head has no other fault, so that each head gets one answer).
    bare_lf: bool,
}

/// A response's status line, as offsets into the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusLine {
    pub(crate) version: Version,
    pub(crate) code: u16,
    /// The reason phrase; empty if there was none, or if it held bytes from
    /// 0x80 up (as httparse gives it).
    pub(crate) reason: Range<usize>,
}

/// A response head at the start of `buf`, parsed whole: its status line
/// and length once complete, `Ok(None)` while not. Accepts what `httparse`
/// 1.x accepts for a response with its default settings, the fields as in a
/// request (bare LFs included), at a third of its cost. Header fields go to
/// `fields`, at most `max_fields`. A head still arriving is parsed as it
/// comes by [`ResponseHeadParser`].
#[cfg(test)]
pub(crate) fn parse_response_head(
    buf: &[u8],
    max_fields: usize,
    fields: &mut Vec<HeaderSpan>,
) -> Result<Option<(StatusLine, usize)>, HeadError> {
    ResponseHeadParser::default().parse(buf, max_fields, fields)
}

/// Where a response head still arriving was left: its status line once
/// whole, and the start of its first line not yet parsed, so that each
/// line is parsed once however the head is split (a server sending 512
/// fields a line at a time made parsing from the start each time cost
/// 130 000 lines).
#[derive(Clone, Debug, Default)]
pub(crate) struct ResponseHeadParser {
    lines: HeadParser,
    status: Option<StatusLine>,
}

impl ResponseHeadParser {
    /// Parses what has arrived of the head at the start of `buf`, from where
    /// the last call left off: the status line and the head's length once
    /// it is whole, `Ok(None)` while not. Header fields go to `fields` as
    /// they complete (at most `max_fields`); give the same `fields`, and
    /// the same head at the start of `buf` (grown, never changed), on every
    /// call until the head is whole or refused, and a new parser after.
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        max_fields: usize,
        fields: &mut Vec<HeaderSpan>,
    ) -> Result<Option<(StatusLine, usize)>, HeadError> {
        let mut at = self.lines.line_start;
        if self.status.is_none() {
            fields.clear();
            // A status line not yet whole is parsed again from its start
            // (and the few empty lines allowed before it).
            match self.lines.parse_status_line(buf, &mut at)? {
                Some(line) => self.status = Some(line),
                None => return Ok(None),
            }
        }
        let parsed = self.lines.parse_fields(buf, &mut at, max_fields, fields)?;
        self.lines.line_start = at;
        Ok(parsed.and_then(|len| Some((self.status.take()?, len))))
    }

    /// Ready for the next head (at the start of the buffer it is given).
    /// Field by field: a whole new parser would be moved in with a
    /// `memory.copy`, a call into the runtime under WasmEdge's AOT code.
    pub(crate) fn reset(&mut self) {
        self.lines.line_start = 0;
        self.lines.scanned = 0;
        self.status = None;
    }
}

/// A head parsed to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) line: RequestLine,
    /// Its length, blank line included: the body starts here.
    pub(crate) len: usize,
    pub(crate) bare_lf: bool,
}

impl HeadParser {
    /// The request line of a head still arriving, or refused after it, once
    /// that line is complete and well formed. Kept from the bytes before the
    /// line's end only, so what it says does not depend on how they arrived.
    pub(crate) fn request_line(&self) -> Option<&RequestLine> {
        self.request_line.as_ref()
    }

    /// Parses what has arrived of the head at the start of `buf`: `Ok(None)`
    /// while it is incomplete. Header fields go to `fields` as they complete
    /// (at most `max_fields`); give the same `fields` on every call.
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        max_fields: usize,
        fields: &mut Vec<HeaderSpan>,
    ) -> Result<Option<Head>, HeadError> {
        if self.scanned > self.line_start {
            // The current line was incomplete: look only at new bytes for its
            // end (and, in a request line's method, for a fault: see below).
            let method_at = self.request_line.is_none().then_some(self.line_start);
            if scan::find_lf(&buf[self.scanned..]).is_none()
                && !method_at.is_some_and(|at| faulty_method(buf, at))
            {
                self.scanned = buf.len();
                return Ok(None);
            }
        }
        let mut at = self.line_start;
        let line = match self.request_line.take() {
            Some(line) => Ok(Some(line)),
            None => {
                fields.clear();
                self.parse_request_line(buf, &mut at)
            }
        };
        // `Ok(())` while incomplete. The request line is kept only then (or
        // for a fault to be answered once its line is complete): a head
        // that arrived whole goes by without it being stored and taken.
        let outcome = match line {
            Ok(Some(line)) => match self.parse_fields(buf, &mut at, max_fields, fields) {
                Ok(Some(len)) => {
                    self.line_start = at;
                    return Ok(Some(Head {
                        line,
                        len,
                        bare_lf: self.bare_lf,
                    }));
                }
                Ok(None) => {
                    self.request_line = Some(line);
                    Ok(())
                }
                Err(e) => {
                    self.request_line = Some(line);
                    Err(e)
                }
            },
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.line_start = at;
        match outcome {
            // A fault in a line not yet complete waits for its end, so that
            // the answer does not depend on how the bytes arrived (the size
            // limit may end the head first). Not one in the method: the
            // first thing read, it shows the same however they arrive, and a
            // peer speaking something else (a TLS handshake sent to a plain
            // port) is answered at once, not at the header timeout.
            Err(e) if scan::find_lf(&buf[at..]).is_some() => Err(e),
            Err(e) if self.request_line.is_none() && faulty_method(buf, at) => Err(e),
            Ok(()) | Err(_) => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    /// Empty lines, then the request line (RFC 9112 §3); `at` moves past
    /// each complete line. `Ok(None)` while it is incomplete.
    fn parse_request_line(
        &mut self,
        buf: &[u8],
        at: &mut usize,
    ) -> Result<Option<RequestLine>, HeadError> {
        // Empty lines before the request line are allowed (RFC 9112 §2.2).
        while let Some(b'\r' | b'\n') = buf.get(*at) {
            match self.line_end(buf, *at)? {
                Some(next) => *at = next,
                None => return Ok(None),
            }
        }
        let start = *at;
        let method = start..scan::skip_token_bytes(buf, start);
        match buf.get(method.end) {
            Some(b' ') if !method.is_empty() => {}
            None => return Ok(None),
            _ => return Err(HeadError::RequestLine),
        }
        let (end, hash_or_high) = scan::skip_target_bytes(buf, method.end + 1);
        let target = method.end + 1..end;
        match buf.get(end) {
            Some(b' ') if !target.is_empty() => {}
            None => return Ok(None),
            _ => return Err(HeadError::RequestLine),
        }
        if hash_or_high && std::str::from_utf8(&buf[target.clone()]).is_err() {
            return Err(HeadError::RequestLine);
        }
        let v = end + 1;
        let version = match eight_bytes(buf, v) {
            Some(HTTP_11) => Version::Http11,
            Some(HTTP_10) => Version::Http10,
            Some(_) => later_minor(buf, v)?,
            // Fewer than eight bytes: wait only if they could still become one.
            None if b"HTTP/1.".starts_with(&buf[v..]) => return Ok(None),
            None => return Err(HeadError::Version),
        };
        let Some(next) = self.line_end(buf, v + 8)? else {
            return Ok(None);
        };
        *at = next;
        Ok(Some(RequestLine {
            method,
            target,
            version,
            hash_or_high,
        }))
    }

    /// A response's status line (RFC 9112 §4) after any empty lines, as
    /// httparse reads it: `HTTP/1.0`, `HTTP/1.1` (or a later `HTTP/1.x`, read
    /// as 1.1), one space, three digits,
    /// then the end of the line or a space and a reason phrase of tabs,
    /// spaces, visible ASCII and bytes from 0x80 up (a phrase holding the
    /// latter reads as empty). `Ok(None)` while incomplete.
    fn parse_status_line(
        &mut self,
        buf: &[u8],
        at: &mut usize,
    ) -> Result<Option<StatusLine>, HeadError> {
        // A few are tolerated (a server's stray line ends after its last
        // body); many are refused, since the head is parsed again from its
        // start as lines arrive, and a server sending empty lines one by one
        // would otherwise make that quadratic.
        let mut empty = 0;
        while let Some(b'\r' | b'\n') = buf.get(*at) {
            empty += 1;
            if empty > MAX_EMPTY_LINES_BEFORE_STATUS {
                return Err(HeadError::Version);
            }
            match self.line_end(buf, *at)? {
                Some(next) => *at = next,
                None => return Ok(None),
            }
        }
        let v = *at;
        let version = match eight_bytes(buf, v) {
            Some(HTTP_11) => Version::Http11,
            Some(HTTP_10) => Version::Http10,
            Some(_) => later_minor(buf, v)?,
            None if b"HTTP/1.".starts_with(&buf[v..]) => return Ok(None),
            None => return Err(HeadError::Version),
        };
        match buf.get(v + 8) {
            Some(b' ') => {}
            None => return Ok(None),
            Some(_) => return Err(HeadError::Version),
        }
        let mut code = 0u16;
        for p in v + 9..v + 12 {
            match buf.get(p) {
                Some(&d @ b'0'..=b'9') => code = code * 10 + u16::from(d - b'0'),
                None => return Ok(None),
                Some(_) => return Err(HeadError::RequestLine),
            }
        }
        let (reason, end) = match buf.get(v + 12) {
            Some(b' ') => {
                let start = v + 13;
                let (mut end, mut high) = (start, false);
                loop {
                    match buf.get(end) {
                        None => return Ok(None),
                        Some(b'\r' | b'\n') => break,
                        Some(&b) if b == b'\t' || (b >= b' ' && b != 0x7f) => high |= b >= 0x80,
                        Some(_) => return Err(HeadError::RequestLine),
                    }
                    end += 1;
                }
                (start..if high { start } else { end }, end)
            }
            Some(b'\r' | b'\n') => (v + 12..v + 12, v + 12),
            None => return Ok(None),
            Some(_) => return Err(HeadError::RequestLine),
        };
        let Some(next) = self.line_end(buf, end)? else {
            return Ok(None);
        };
        *at = next;
        Ok(Some(StatusLine {
            version,
            code,
            reason,
        }))
    }

    /// Header field lines from `at` up to the blank line that ends the head:
    /// `Ok(Some(length of the head))`, or `Ok(None)` where the lines that
    /// have arrived run out. `at` moves past each complete line.
    fn parse_fields(
        &mut self,
        buf: &[u8],
        at: &mut usize,
        max_fields: usize,
        fields: &mut Vec<HeaderSpan>,
    ) -> Result<Option<usize>, HeadError> {
        loop {
            match plain_field(buf, *at, max_fields, fields) {
                Some(next) => *at = next,
                // The blank line that ends a head (as `parse_field` reads it).
                None if buf.get(*at..*at + 2) == Some(b"\r\n") => return Ok(Some(*at + 2)),
                None => match self.parse_field(buf, at, max_fields, fields)? {
                    Line::Field => {}
                    Line::End(len) => return Ok(Some(len)),
                    Line::Incomplete => return Ok(None),
                },
            }
        }
    }

    /// One line of the fields by all the rules: a field (then `at` moves
    /// past it), the blank line that ends the head, or a line that has not
    /// fully arrived.
    #[inline(never)]
    fn parse_field(
        &mut self,
        buf: &[u8],
        at: &mut usize,
        max_fields: usize,
        fields: &mut Vec<HeaderSpan>,
    ) -> Result<Line, HeadError> {
        let start = *at;
        match buf.get(start) {
            None => return Ok(Line::Incomplete),
            Some(b'\r' | b'\n') => {
                return Ok(self
                    .line_end(buf, start)?
                    .map_or(Line::Incomplete, Line::End))
            }
            Some(_) => {}
        }
        let name_end = scan::skip_token_bytes(buf, start);
        match buf.get(name_end) {
            Some(b':') if name_end > start => {}
            None => return Ok(Line::Incomplete),
            _ => return Err(HeadError::Field),
        }
        let mut value_start = name_end + 1;
        while let Some(b' ' | b'\t') = buf.get(value_start) {
            value_start += 1;
        }
        // Tabs may be inside a value; other control bytes end it.
        let mut end = scan::skip_field_value_bytes(buf, value_start);
        while buf.get(end) == Some(&b'\t') {
            end = scan::skip_field_value_bytes(buf, end + 1);
        }
        let Some(next) = self.line_end(buf, end)? else {
            return Ok(Line::Incomplete);
        };
        let mut value_end = end;
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        if fields.len() >= max_fields {
            return Err(HeadError::TooManyFields);
        }
        fields.push(HeaderSpan {
            name: start..name_end,
            value: value_start..value_end,
        });
        *at = next;
        Ok(Line::Field)
    }

    /// Where the line ending at `at` (CRLF, or a bare LF, which is noted) is
    /// over; `None` if it has not fully arrived; an error for any other byte.
    #[inline(always)]
    fn line_end(&mut self, buf: &[u8], at: usize) -> Result<Option<usize>, HeadError> {
        match buf.get(at) {
            Some(b'\r') => match buf.get(at + 1) {
                Some(b'\n') => Ok(Some(at + 2)),
                None => Ok(None),
                Some(_) => Err(HeadError::Field),
            },
            Some(b'\n') => {
                self.bare_lf = true;
                Ok(Some(at + 1))
            }
            None => Ok(None),
            Some(_) => Err(HeadError::Field),
        }
    }
}

/// What one line of the fields was.
enum Line {
    Field,
    /// The blank line: the head is this long.
    End(usize),
    Incomplete,
}

/// The field line at `start` if it is of the plain kind nearly every line is,
/// `name: value` (one space or none before the value, none after it, no
/// tab) ending in CRLF with room for it in `fields`: pushed, and where the
/// next line starts. `None` leaves the line to
/// [`HeadParser::parse_field`], which takes every line (this one too, the
/// same way): a loop with one way out costs WasmEdge's interpreter less
/// than one with the dozen a line's every fault and shortfall would need.
#[inline(always)]
fn plain_field(
    buf: &[u8],
    start: usize,
    max_fields: usize,
    fields: &mut Vec<HeaderSpan>,
) -> Option<usize> {
    let name_end = scan::skip_token_bytes(buf, start);
    if name_end == start || buf.get(name_end) != Some(&b':') {
        return None;
    }
    let value_start = match buf.get(name_end + 1) {
        Some(b' ') => name_end + 2,
        _ => name_end + 1,
    };
    // The scan stops at any control byte, so at a tab too: the value has
    // none, and only a space could need trimming.
    let end = scan::skip_field_value_bytes(buf, value_start);
    let value = buf.get(value_start..end + 2)?;
    let (value, line_end) = value.split_at(value.len() - 2);
    let trimmed = value.first() != Some(&b' ') && value.last() != Some(&b' ');
    if line_end != b"\r\n" || !trimmed || fields.len() >= max_fields {
        return None;
    }
    fields.push(HeaderSpan {
        name: start..name_end,
        value: value_start..end,
    });
    Some(end + 2)
}

/// `HTTP/1.2` to `HTTP/1.9` at `at` are HTTP/1.1 to us: a recipient
/// processes a later minor version of a major version it implements as the
/// highest minor it conforms to (RFC 9112 §2.3), and answers in that. Anything
/// else there is a version we do not speak.
fn later_minor(buf: &[u8], at: usize) -> Result<Version, HeadError> {
    match buf.get(at..at + 8) {
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']) => Ok(Version::Http11),
        _ => Err(HeadError::Version),
    }
}

/// `HTTP/1.1` and `HTTP/1.0` as [`eight_bytes`] reads them.
const HTTP_11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_10: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// The eight bytes at `at` as one word, if they have arrived: a version is
/// told by one compare, where a slice pattern compares byte by byte.
#[inline(always)]
fn eight_bytes(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Whether the line at `at` shows its method gone wrong: a byte that is
/// neither a token's nor the space after one. Looked for in the first
/// bytes only (a longer method is refused with 501 once its line is whole),
/// so that each read of an unfinished request line costs at most that,
/// however long the line grows.
fn faulty_method(buf: &[u8], at: usize) -> bool {
    // The longest method answered as one, and the space after it.
    let buf = &buf[..buf.len().min(at + MAX_METHOD_BYTES + 1)];
    let end = scan::skip_token_bytes(buf, at);
    match buf.get(end) {
        Some(b' ') => end == at,
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests;
