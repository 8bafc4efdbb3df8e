//! A request's head: parsed and checked (RFC 9112 §3 and §6), its body's
//! framing decided, and `100 Continue` answered.

use super::{declared_length, Framing, Handler, Head, Hold, Refusal, State, CONTINUE, MAX_HEADERS};
use crate::http::chunked::ChunkedDecoder;
use crate::http::framing::{BodyFraming, FieldSummary, FramingError};
use crate::http::head::{HeadError, MAX_METHOD_BYTES};
use crate::http::request::{target_form, TargetForm};
use crate::http::scan;
use crate::http::{Dispatch, Request, RequestId, StatusCode, Version};
use std::time::Instant;

impl Handler {
    /// Parses the head if it is complete; `Ok(true)` moves on to the body.
    pub(super) fn parse_head(&mut self, allow_connect: bool) -> Result<bool, Refusal> {
        let State::Head { parser, .. } = &mut self.state else {
            return Ok(false);
        };
        // The parser sees no byte past the size limit, so whether a head is
        // refused for its size or for a fault does not depend on how its
        // bytes arrived.
        let limit = self.limits.max_head_bytes;
        let buf: &[u8] = &self.input;
        let view = &buf[..buf.len().min(limit)];
        let max_headers = self.limits.max_headers.min(MAX_HEADERS);
        let parsed = parser.parse(view, max_headers, &mut self.headers);
        let parsed = parsed.map_err(|e| parse_refusal(e, parser.request_line().is_some(), buf))?;
        let Some(head) = parsed else {
            if buf.len() > limit {
                return Err(oversized_head(view));
            }
            return Ok(false);
        };
        let (line, head_len) = (head.line, head.len);
        let version = line.version;
        let method = &buf[line.method.clone()];
        let target = &buf[line.target.clone()];
        let is_head_method = scan::same_bytes(method, b"HEAD");
        if let State::Head { head_method, .. } = &mut self.state {
            *head_method = is_head_method;
        }
        if head.bare_lf {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "bare LF in request head (lines must end in CRLF)",
            ));
        }
        let is_connect = check_request_line(method, target, line.hash_or_high, allow_connect)?;
        let mut fields = FieldSummary::default();
        for header in &self.headers {
            fields
                .add(buf, header.name.clone(), header.value.clone())
                .map_err(framing_refusal)?;
        }
        if fields.invalid_host {
            return Err(Refusal(StatusCode::BAD_REQUEST, "invalid Host field"));
        }
        let framing = match fields.request_framing(version).map_err(framing_refusal)? {
            BodyFraming::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(
                self.limits.max_body_bytes as u64,
                self.limits.max_chunk_line_bytes,
                self.limits.max_head_bytes,
            ))),
            // Capped at half the address space, which no buffer holds, so
            // that a limit of usize::MAX cannot make `head + n` wrap.
            BodyFraming::Length(n)
                if n <= self.limits.max_body_bytes.min(usize::MAX / 2) as u64 =>
            {
                Framing::Length(n as usize)
            }
            BodyFraming::Length(n) => Framing::Oversized(n),
            BodyFraming::UntilClose => Framing::Oversized(u64::MAX),
        };
        // A CONNECT the service answers ends the connection: it never tunnels.
        let keep_alive = !is_connect && fields.keeps_alive(version);
        if version == Version::Http11 && fields.hosts != 1 {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "HTTP/1.1 request needs exactly one Host field",
            ));
        }
        if fields.hosts > 1 {
            return Err(Refusal(StatusCode::BAD_REQUEST, "more than one Host field"));
        }
        if fields.unknown_expectation {
            return Err(Refusal(
                StatusCode::EXPECTATION_FAILED,
                "only the 100-continue expectation is supported",
            ));
        }
        let has_body = !matches!(framing, Framing::Length(0));
        let offers_upgrade = !has_body && fields.offers_upgrade(version);
        // Answered once the responses before it are out (see
        // `answer_continue`).
        let expect_continue = fields.expect_continue
            && version == Version::Http11
            && has_body
            && self.input.len() == head_len;
        self.state = State::Body(Head {
            len: head_len,
            method: line.method,
            target: line.target,
            version,
            keep_alive,
            is_head_method,
            framing,
            raw_pos: head_len,
            decoded_end: head_len,
            expect_continue,
            offers_upgrade,
        });
        Ok(true)
    }

    /// With a head just parsed: streams the body if the service wants it
    /// so, refuses one over the size limit otherwise, and makes room for it.
    /// False when the request was refused.
    pub(super) fn decide_body<S: Dispatch>(&mut self, service: &mut S, now: Instant) -> bool {
        let State::Body(head) = &mut self.state else {
            return true;
        };
        if matches!(head.framing, Framing::Length(0)) {
            return true;
        }
        let limits = &self.limits;
        // A length past what a u64 counts reads as u64::MAX: no such body
        // will ever be whole, so it is refused whatever the stream limit.
        let streamable = S::STREAMS
            && declared_length(&head.framing).is_none_or(|n| {
                n > limits.stream_above && n <= limits.max_stream_bytes && n != u64::MAX
            });
        if streamable {
            let request = Request {
                head: &self.input[..head.len],
                method: &head.method,
                target: &head.target,
                version: head.version,
                headers: &self.headers,
                body: &[],
                peer: &self.peer,
                local: &self.local,
                length: declared_length(&head.framing),
                streamed: false,
                offers_upgrade: false,
            };
            if service.streams(&request) {
                // Its 100 waits for the service's word: a final answer at
                // once (a 401, a 413) asks for no body.
                self.dispatch_with(service, now, true);
                return true;
            }
        }
        let State::Body(head) = &mut self.state else {
            return true;
        };
        if let Framing::Oversized(_) = head.framing {
            self.refuse(
                StatusCode::CONTENT_TOO_LARGE,
                "request body over the size limit",
                now,
            );
            return false;
        }
        if let Framing::Length(n) = head.framing {
            // Room for the body, but only up to what a client must actually
            // send: a declared length alone must not make the server allocate.
            // At most as much again as it sent, so that a thousand heads
            // declaring large bodies cost a thousand heads' worth, not 256 KiB
            // each.
            let missing = n.saturating_sub(self.input.len() - head.len);
            // Most small bodies arrive with their head: nothing to make room for.
            if missing > 0 {
                let earned = self.input.len();
                // Only room made ahead: if memory is short, the body's
                // bytes ask again as they come (and are refused then).
                let _ = (self.input).reserve(missing.min(MAX_BODY_RESERVE).min(earned));
                // Growth beyond that stops at the request's end, not at the next
                // power of two: an 8 MiB body takes 8 MiB, not 16.
                self.input.grow_up_to(head.len.saturating_add(n));
            }
        }
        if head.expect_continue {
            self.answer_continue();
        }
        true
    }

    /// Answers `Expect: 100-continue` now that the body is wanted, if no
    /// response before it is owed: an interim response belongs to the
    /// oldest request still unanswered. Else it waits for them to go out
    /// (`flush_ready`), unless the body comes first.
    pub(super) fn answer_continue(&mut self) {
        if !self.waiting.is_empty() {
            return;
        }
        if let State::Body(head) = &mut self.state {
            if std::mem::take(&mut head.expect_continue) {
                // Ask for the body now instead of letting the client wait for it.
                self.send_continue();
            }
        }
    }

    /// Answers the `Expect: 100-continue` of the streamed request `front`,
    /// now at the front of the queue and still unanswered, if its body has
    /// not begun.
    pub(super) fn answer_stream_continue(&mut self, front: RequestId) {
        if let State::Stream {
            id,
            continue_owed: owed @ true,
            ..
        } = &mut self.state
        {
            if *id == front && self.input.is_empty() {
                *owed = false;
                self.send_continue();
            }
        }
    }

    /// Queues a 100 (Continue), which goes at once with what is before it:
    /// the client sends the body, of which the response may be made, only
    /// once it has it (see [`Handler::hold_output`]).
    fn send_continue(&mut self) {
        self.output.buffer().extend_from_slice(CONTINUE);
        self.hold = Hold::Interim;
    }

    /// Whether the request whose head was just parsed is a CONNECT.
    #[cold]
    pub(super) fn head_is_connect(&self) -> bool {
        match &self.state {
            State::Body(head) => scan::same_bytes(&self.input[head.method.clone()], b"CONNECT"),
            _ => false,
        }
    }
}

/// The refusal for a head the parser found at fault. `has_line`: its
/// request line was whole.
fn parse_refusal(error: HeadError, has_line: bool, buf: &[u8]) -> Refusal {
    match error {
        HeadError::TooManyFields => Refusal(
            StatusCode::HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        ),
        HeadError::Version if names_other_http_version(buf) => Refusal(
            StatusCode::VERSION_NOT_SUPPORTED,
            "only HTTP/1 is supported",
        ),
        HeadError::Version | HeadError::RequestLine => {
            Refusal(StatusCode::BAD_REQUEST, "malformed request line")
        }
        // A line end at fault before the request line was whole
        // (after the version: `HTTP/1.10`) is that line's fault.
        HeadError::Field if !has_line => Refusal(StatusCode::BAD_REQUEST, "malformed request line"),
        HeadError::Field => Refusal(StatusCode::BAD_REQUEST, "malformed header field"),
    }
}

/// The refusal for a head still unfinished at the size limit (`view`: its
/// bytes up to the limit).
fn oversized_head(view: &[u8]) -> Refusal {
    // The request line alone over the limit: its target is what is too
    // long (RFC 9112 §3: 414).
    let line = view.iter().position(|&b| !matches!(b, b'\r' | b'\n'));
    match line.is_some_and(|at| !view[at..].contains(&b'\n')) {
        true => Refusal(StatusCode::URI_TOO_LONG, "request line over the size limit"),
        false => Refusal(
            StatusCode::HEADER_FIELDS_TOO_LARGE,
            "request head over the size limit",
        ),
    }
}

/// Checks a request line's method and target (RFC 9112 §3); returns whether
/// the method is CONNECT. `hash_or_high`: the parser saw a `#` or a byte
/// over 0x7F in the target (so that most targets are not searched again).
fn check_request_line(
    method: &[u8],
    target: &[u8],
    hash_or_high: bool,
    allow_connect: bool,
) -> Result<bool, Refusal> {
    let is_connect = scan::same_bytes(method, b"CONNECT");
    if is_connect && !allow_connect {
        return Err(Refusal(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported: this server opens no tunnels",
        ));
    }
    if method.len() > MAX_METHOD_BYTES {
        return Err(Refusal(
            StatusCode::NOT_IMPLEMENTED,
            "method longer than any this server implements",
        ));
    }
    // Each method takes the target forms RFC 9112 §3.2 gives it.
    match (target_form(target), is_connect) {
        (TargetForm::Authority, false) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "a request target is a path from '/', an absolute URI or '*' (host:port is for CONNECT)",
            ))
        }
        (TargetForm::Origin | TargetForm::Absolute | TargetForm::Asterisk, true) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "CONNECT needs a host:port target",
            ))
        }
        // RFC 9112 §3.2.3: `uri-host ":" port`, both there.
        (TargetForm::Authority, true) if !crate::http::framing::is_host_and_port(target) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "CONNECT needs a host:port target",
            ))
        }
        (TargetForm::Asterisk, false) if !scan::same_bytes(method, b"OPTIONS") => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "a * target is only for OPTIONS",
            ))
        }
        // RFC 9112 §3.2.1: a path and a query, no fragment, which a
        // client keeps to itself. Parsers differ on what `#` ends (the
        // `http` crate drops the rest, a proxy's client refuses it), so
        // a request holding one could be read two ways.
        (TargetForm::Origin, false) if hash_or_high && target.contains(&b'#') => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "a request target holds no fragment ('#')",
            ))
        }
        (TargetForm::Absolute, false) if !is_plain_absolute(target) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                match target.starts_with(b"*") {
                    true => "the '*' target is '*' alone",
                    false => "invalid absolute-form target",
                },
            ))
        }
        _ => {}
    }
    Ok(is_connect)
}

/// The most buffer reserved ahead for a body on the strength of its
/// `Content-Length`; beyond it the buffer grows as bytes arrive.
const MAX_BODY_RESERVE: usize = 256 * 1024;

/// Whether an absolute-form target reads one way to every parser: its
/// authority a valid, non-empty host without userinfo (RFC 9110 §4.2.4
/// has userinfo treated as an error), and no `#` (an absolute-URI has no
/// fragment) or `\` anywhere, which URL parsers split differently
/// (`http://a#@b/`: host `a` to a browser's parser, `b` by the last `@`).
fn is_plain_absolute(target: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(target) else {
        return false;
    };
    if text.contains(['#', '\\']) {
        return false;
    }
    let authority = match text.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?']).next().unwrap_or_default(),
        // Only `*?...` (`split_target`): the asterisk form is `*` alone
        // (RFC 9112 §3.2.4).
        None => return false,
    };
    // An empty host is invalid in an http URI (RFC 9110 §4.2.1).
    !authority.is_empty()
        && !authority.contains('@')
        && crate::http::framing::is_valid_host(authority.as_bytes())
}

fn framing_refusal(error: FramingError) -> Refusal {
    let status = match error {
        FramingError::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal(status, error.as_str())
}

/// Whether the request line ends in a well-formed version of a major other
/// than 1 (`HTTP/2.0`, `HTTP/0.9`): one we could name but do not speak
/// (505), as opposed to a malformed one (400).
fn names_other_http_version(buf: &[u8]) -> bool {
    // After the empty lines the parser passed over.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    let buf = &buf[start.unwrap_or(buf.len())..];
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let mut parts = buf[..line_end].split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3) of a major version not 1:
    // anything else is malformed (400).
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && *major != b'1' && minor.is_ascii_digit())
}
