//! The response target: what a server sends into the [`ResponseParser`],
//! the bytes a forwarder takes from an upstream it does not control and
//! passes on.
//!
//! Beyond the common checks (no panic, the same outcome however the bytes
//! are cut), a response the parser hands over must be safe to pass on:
//! field names are tokens, values and the reason hold no CR, LF or NUL (a
//! proxy writing them out would otherwise split the response; nor any other
//! control byte but tab, or DEL, which no value may hold), the body is
//! what the framing says and within the limit.

use crate::{cuts, Reached, Rng, Target};
use edgepoll::http::{ParsedResponse, ResponseError, ResponseParser};

pub fn target() -> Target {
    Target {
        name: "response",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\r\n: 0aZ\x00\xff;x\t",
        check,
        must_reach: &[
            "a response by length",
            "a chunked response",
            "a response until the close",
            "a body over half the limit",
            "malformed head",
            "head too large",
            "framing",
            "bad chunked",
            "body too large",
            "truncated",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nWiki\r\n0\r\nT: x\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x00",
    b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 404 \r\nConnection: close\r\nContent-Length: 3\r\n\r\nno\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b": ",
    b"\r\n \t",
    b"\0",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"101",
    b"204",
    b"304",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"0\r\n\r\n",
    b"ffffffff",
    b"99999999999999999999",
    b";ext=\"v\"",
    b"-1",
    b"\xff\xfe",
];

/// The most body bytes a response may have here: small, so mutations
/// reach the limit.
const MAX_BODY: usize = 1024;

/// A parsed response, compared field by field.
type Parsed = (u16, String, Vec<(String, Vec<u8>)>, Vec<u8>);

/// What reading one response from `pieces` gave: the response and whether
/// the connection could carry another, or an error. Feeding stops at the
/// first complete response, as a client does; whether more bytes followed
/// it (which leaves the connection unusable) is judged from the pieces.
fn read(pieces: &[&[u8]], to_head: bool) -> Result<(Parsed, bool), &'static str> {
    let mut parser = ResponseParser::new(to_head).with_max_body(MAX_BODY);
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(response) = parser.feed(piece).map_err(refusal)? {
            let more = pieces[i + 1..].iter().any(|p| !p.is_empty());
            return Ok((parts(response), parser.is_reusable() && !more));
        }
    }
    let response = parser.finish().map_err(refusal)?;
    Ok((parts(response), parser.is_reusable()))
}

/// A refusal's kind, as [`Reached`] names it.
fn refusal(error: ResponseError) -> &'static str {
    match error {
        ResponseError::MalformedHead => "malformed head",
        ResponseError::HeadTooLarge => "head too large",
        ResponseError::TooManyFields => "too many fields",
        ResponseError::Framing(_) => "framing",
        ResponseError::InvalidChunked(_) => "bad chunked",
        ResponseError::BodyTooLarge => "body too large",
        ResponseError::Truncated => "truncated",
        ResponseError::UnexpectedSwitch => "unexpected switch",
        // The enum is non-exhaustive: a kind added later is none of these.
        _ => "another refusal",
    }
}

/// How a response that was read was framed, as [`Reached`] names it.
fn framing((_, _, headers, body): &Parsed) -> &'static str {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    match (
        has("transfer-encoding"),
        has("content-length"),
        body.is_empty(),
    ) {
        (true, _, _) => "a chunked response",
        (false, true, _) => "a response by length",
        (false, false, false) => "a response until the close",
        (false, false, true) => "a bodiless response",
    }
}

fn parts(response: ParsedResponse) -> Parsed {
    let ParsedResponse {
        status,
        reason,
        headers,
        body,
        ..
    } = response;
    (status.as_u16(), reason, headers, body)
}

/// Whether a forwarder may write this response out as it stands.
fn safe_to_pass_on((status, reason, headers, body): &Parsed, to_head: bool) -> Result<(), String> {
    // What no field value or reason may hold (RFC 9110 §5.5, RFC 9112
    // §4): CR, LF and NUL would split the response passed on.
    let unsafe_byte = |&b: &u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    if !(*status == 101 || (200..1000).contains(status)) {
        return Err(format!("status {status} handed over"));
    }
    if reason.bytes().any(|b| unsafe_byte(&b)) {
        return Err(format!("reason {reason:?} holds a control byte"));
    }
    for (name, value) in headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(format!("field name {name:?} is not a token"));
        }
        if value.iter().any(unsafe_byte) {
            return Err(format!("value of {name:?} holds a control byte: {value:?}"));
        }
        let blank = |b: &u8| matches!(b, b' ' | b'\t');
        if value.first().is_some_and(blank) || value.last().is_some_and(blank) {
            return Err(format!("value of {name:?} keeps its whitespace: {value:?}"));
        }
    }
    let bodiless = to_head || matches!(status, 101 | 204 | 304);
    if bodiless && !body.is_empty() {
        return Err(format!(
            "a {status} to a HEAD request: {to_head}, with a body"
        ));
    }
    if body.len() > MAX_BODY {
        return Err(format!("a body of {} bytes, over the limit", body.len()));
    }
    let field = |wanted: &'static str| {
        headers
            .iter()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
    };
    let lengths: Vec<_> = field("content-length").collect();
    if !bodiless && field("transfer-encoding").next().is_none() && lengths.len() == 1 {
        let length = std::str::from_utf8(&lengths[0].1)
            .ok()
            .and_then(|v| v.parse().ok());
        if let Some(length) = length.filter(|&n: &usize| n != body.len()) {
            return Err(format!("Content-Length {length}, body of {}", body.len()));
        }
    }
    Ok(())
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    for to_head in [false, true] {
        let [whole, halves, pieces] = cuts(input, rng);
        let whole = read(&whole, to_head);
        // Which refusal may depend on the cut (a head is parsed again only
        // when a line ends, so a bad line that never ends is refused for
        // its size when it comes in pieces): that it is one may not.
        let same = |other: Result<(Parsed, bool), &str>| {
            other.as_ref().map_err(drop) == whole.as_ref().map_err(drop)
        };
        if !same(read(&halves, to_head)) {
            return Err(format!(
                "outcome differs when split at {} (HEAD: {to_head})",
                halves[0].len()
            ));
        }
        if !same(read(&pieces, to_head)) {
            return Err(format!(
                "outcome differs when fed in small pieces (HEAD: {to_head})"
            ));
        }
        match &whole {
            Ok((parsed, _)) => {
                safe_to_pass_on(parsed, to_head)?;
                reached.mark(framing(parsed));
                if parsed.3.len() > MAX_BODY / 2 {
                    reached.mark("a body over half the limit");
                }
            }
            Err(refused) => reached.mark(refused),
        }
    }
    Ok(())
}
