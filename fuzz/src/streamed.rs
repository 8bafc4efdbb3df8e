//! The streamed target: requests into the [`Handler`] whose bodies the
//! service takes in pieces as they arrive ([`Dispatch::streams`]), each
//! body paused through every read and resumed after it, and every
//! request answered with its body once that has ended. Checked:
//!
//! - the pieces, each body's end and the output are the same whether the
//!   input comes whole, split in two or in small pieces;
//! - a piece comes only between its request's dispatch and its end, and
//!   every streamed body ends once, within `max_stream_bytes`;
//! - each body the handler hands over whole, in pieces or not, is what a
//!   strict reader written here afresh (RFC 9112 §6 and §7.1, on a subset
//!   of HTTP/1.1 any server must read alike) decodes from the input, for
//!   as many requests as that reader could follow;
//! - the connection finishes once the client has closed and time passed.

use crate::{cuts, without_continues, Reached, Rng, Target};
use edgepoll::http::{
    BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode,
};
use std::time::{Duration, Instant};

pub fn target() -> Target {
    Target {
        name: "streamed",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\r\n: 0aZ;\x00\xff",
        check,
        must_reach: &[
            "a streamed body whole",
            "a streamed chunked body whole",
            "a body read whole",
            "a streamed body broken off",
            "a body over the stream limit",
            "bodies checked against the strict reader",
            "a resumed body read from what its pause held",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n01234567890123456789",
    b"PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n",
    b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n012345678901234567890123456789\
      POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n\
      GET /d HTTP/1.1\r\nHost: h\r\n\r\n",
    // Under `stream_above`, and to the path that is never streamed.
    b"POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPOST /w HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n01234567890123456789",
    b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n01234567890123456789",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"ff\r\n",
    b"1000\r\n",
    b";e=\"q\"",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 9999\r\n",
    b"POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"0123456789abcdef0123456789abcdef",
];

/// Bodies over this many bytes are offered to the service in pieces.
const STREAM_ABOVE: u64 = 8;
/// The most a streamed body may hold (413 past it); a whole one holds
/// `MAX_BODY`.
const MAX_STREAM: u64 = 600;
const MAX_BODY: usize = 64;

fn limits() -> Limits {
    Limits {
        max_head_bytes: 512,
        max_headers: 8,
        max_body_bytes: MAX_BODY,
        max_chunk_line_bytes: 32,
        max_stream_bytes: MAX_STREAM,
        stream_above: STREAM_ABOVE,
        // Every request pipelined in an input may wait at once: none is
        // refused for the queue, so the handler's requests and the strict
        // reader's stay in step.
        max_waiting: 4096,
        ..Limits::default()
    }
}

/// One request the service was handed, as it went.
#[derive(Debug)]
struct Taken {
    id: RequestId,
    method: String,
    target: String,
    streamed: bool,
    /// Framed by `Transfer-Encoding` (for the reach marks).
    chunked: bool,
    body: Vec<u8>,
    /// For a streamed body: how it ended, once it has.
    end: Option<Result<(), String>>,
    answered: bool,
}

/// Streams every body it is offered but those to `/w`, and records all.
#[derive(Default)]
struct Uploads {
    taken: Vec<Taken>,
    problems: Vec<String>,
}

impl Uploads {
    fn find(&mut self, id: RequestId) -> Option<&mut Taken> {
        self.taken.iter_mut().find(|t| t.id == id)
    }
}

impl Dispatch for Uploads {
    const STREAMS: bool = true;

    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
        let streamed = request.body_streams();
        self.taken.push(Taken {
            id,
            method: request.method().to_string(),
            target: request.target().to_string(),
            streamed,
            chunked: request.header("transfer-encoding").is_some(),
            body: request.body().to_vec(),
            end: None,
            answered: !streamed,
        });
        match streamed {
            true => Reply::Later,
            false => Reply::Now(Response::new(StatusCode::OK).body(request.body())),
        }
    }

    fn streams(&mut self, request: &Request<'_>) -> bool {
        request.path() != "/w"
    }

    fn body(&mut self, id: RequestId, piece: &[u8]) {
        match self.find(id) {
            Some(t) if t.streamed && t.end.is_none() => t.body.extend_from_slice(piece),
            _ => self
                .problems
                .push(format!("a piece for {id:?}, not a body open")),
        }
    }

    fn body_end(&mut self, id: RequestId, result: Result<(), BodyError>) {
        let result = result.map_err(|e| e.to_string());
        match self.find(id) {
            Some(t) if t.streamed && t.end.is_none() => t.end = Some(result),
            _ => self
                .problems
                .push(format!("{id:?} ended twice or unopened")),
        }
    }
}

/// What one feeding gave: the requests taken and the output (interim 100s
/// left out: whether one goes depends on whether the body came with its
/// head).
type Outcome = (Vec<Taken>, Vec<u8>);

fn feed(pieces: &[&[u8]], reached: &mut Reached) -> Result<Outcome, String> {
    let now = Instant::now();
    let mut conn = Handler::new(limits(), now);
    let mut uploads = Uploads::default();
    let mut out = Vec::new();
    // As the loop does after every read: each body that has ended is
    // answered with itself, and what the answers let through is sent,
    // until nothing more comes of it.
    let settle = |conn: &mut Handler, uploads: &mut Uploads, out: &mut Vec<u8>| loop {
        let mut answered = false;
        for t in uploads.taken.iter_mut() {
            if t.streamed && !t.answered && t.end == Some(Ok(())) {
                (t.answered, answered) = (true, true);
                let _ = conn.respond(t.id, Response::new(StatusCode::OK).body(&t.body[..]), now);
            }
        }
        conn.process(now, uploads);
        while conn.wants_write() {
            out.extend_from_slice(conn.pending_output());
            let n = conn.pending_output().len();
            conn.consume_output(n, now);
            conn.process(now, uploads);
        }
        if !answered {
            return;
        }
    };
    let open = |uploads: &Uploads| -> Vec<RequestId> {
        (uploads.taken.iter())
            .filter(|t| t.streamed && t.end.is_none())
            .map(|t| t.id)
            .collect()
    };
    for piece in pieces {
        // Paused through each read, resumed after it: the pause holds what
        // came meanwhile, and the resume must hand it on.
        conn.receive(piece, now, &mut uploads);
        let held: usize = uploads.taken.iter().map(|t| t.body.len()).sum();
        for id in open(&uploads) {
            conn.pause_body(id, false, now);
        }
        settle(&mut conn, &mut uploads, &mut out);
        if uploads.taken.iter().map(|t| t.body.len()).sum::<usize>() > held {
            reached.mark("a resumed body read from what its pause held");
        }
        for id in open(&uploads) {
            conn.pause_body(id, true, now);
        }
    }
    for id in open(&uploads) {
        conn.pause_body(id, false, now);
    }
    settle(&mut conn, &mut uploads, &mut out);
    conn.receive_eof(now, &mut uploads);
    settle(&mut conn, &mut uploads, &mut out);
    conn.handle_timeout(now + Duration::from_secs(3600));
    settle(&mut conn, &mut uploads, &mut out);
    if !conn.is_finished() {
        return Err("connection not finished after EOF and timeout".into());
    }
    if let Some(problem) = uploads.problems.first() {
        return Err(problem.clone());
    }
    for t in &uploads.taken {
        if t.streamed && t.end.is_none() {
            return Err(format!("the streamed body of {:?} never ended", t.id));
        }
        if t.body.len() as u64 > MAX_STREAM {
            return Err(format!("a body of {} bytes past the limit", t.body.len()));
        }
    }
    without_continues(&mut out);
    Ok((uploads.taken, out))
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let [whole, halves, pieces] = cuts(input, rng);
    let first = feed(&whole, reached)?;
    let split_at = halves[0].len();
    (same_outcome(&first, &feed(&halves, reached)?))
        .map_err(|e| format!("split at {split_at}: {e}"))?;
    (same_outcome(&first, &feed(&pieces, reached)?))
        .map_err(|e| format!("fed in small pieces: {e}"))?;
    let taken = first.0;
    for t in &taken {
        match (&t.end, t.streamed) {
            (Some(Ok(())), true) => reached.mark("a streamed body whole"),
            (Some(Err(e)), true) if e.contains("limit") || e.contains("long") => {
                reached.mark("a body over the stream limit")
            }
            (Some(Err(_)), true) => reached.mark("a streamed body broken off"),
            (None, false) if !t.body.is_empty() => reached.mark("a body read whole"),
            _ => {}
        }
    }
    // Against the strict reader, request by request, up to the first body
    // not handed over whole or the end of either list.
    let strict = strict_requests(input);
    for (t, (method, target, body)) in taken.iter().zip(&strict) {
        // Every request before this one was handed over whole and as
        // sent, so the two readers start it at the same byte: taking
        // another request there is reading the stream's framing otherwise
        // (what request smuggling is made of).
        if t.method != *method || t.target != *target {
            return Err(format!(
                "the handler took {} {} where the strict reader reads {method} {target}",
                t.method, t.target
            ));
        }
        let handed_whole = !t.streamed || t.end == Some(Ok(()));
        if !handed_whole {
            break;
        }
        if t.body != *body {
            return Err(format!(
                "{} {}: the body handed over ({:?}) is not the one sent ({:?})",
                t.method,
                t.target,
                String::from_utf8_lossy(&t.body),
                String::from_utf8_lossy(body)
            ));
        }
        if t.streamed && body.len() > 16 {
            reached.mark("bodies checked against the strict reader");
        }
        if t.streamed && t.chunked {
            reached.mark("a streamed chunked body whole");
        }
    }
    Ok(())
}

/// The same output, the same requests and the same ends. A body that
/// broke off may have handed over more or less of itself before its
/// error was seen, by where the reads fell: of two such, one is the start
/// of the other.
fn same_outcome(a: &Outcome, b: &Outcome) -> Result<(), String> {
    if a.1 != b.1 {
        return Err("the output differs".into());
    }
    if a.0.len() != b.0.len() {
        return Err(format!(
            "{} requests taken against {}",
            a.0.len(),
            b.0.len()
        ));
    }
    for (x, y) in a.0.iter().zip(&b.0) {
        let broke = matches!(x.end, Some(Err(_)));
        let (short, long) = match x.body.len() <= y.body.len() {
            true => (&x.body, &y.body),
            false => (&y.body, &x.body),
        };
        let bodies_agree = match broke {
            true => long.starts_with(short),
            false => x.body == y.body,
        };
        let same = (&x.id, &x.method, &x.target, x.streamed, &x.end, x.answered)
            == (&y.id, &y.method, &y.target, y.streamed, &y.end, y.answered);
        if !same || !bodies_agree {
            return Err(format!("{x:?} against {y:?}"));
        }
    }
    Ok(())
}

/// The requests a strict reader takes from the start of `input`: (method,
/// target, decoded body), up to the first it cannot follow. It reads only
/// what every HTTP/1.1 server must read alike: an HTTP/1.1 request line of
/// a common method and an origin-form target; fields of letters, digits
/// and dashes, one space, then visible ASCII; exactly one `Host`; a body
/// framed by exactly one plain `Content-Length` or by
/// `Transfer-Encoding: chunked` alone (chunk sizes in hex, extensions of a
/// name and a token value, trailer fields as above). Anything else
/// (`Expect`, `Connection`, `Upgrade`, a field repeated that frames, an
/// odd byte) ends what it reads.
fn strict_requests(input: &[u8]) -> Vec<Strict> {
    let mut requests = Vec::new();
    let mut rest = input;
    while let Some((request, after)) = strict_request(rest) {
        requests.push(request);
        rest = after;
    }
    requests
}

fn line(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = input.windows(2).position(|w| w == b"\r\n")?;
    let line = &input[..end];
    (!line.contains(&b'\r') && !line.contains(&b'\n')).then_some((line, &input[end + 2..]))
}

/// A request as the strict reader took it: method, target, decoded body.
type Strict = (String, String, Vec<u8>);

fn strict_request(input: &[u8]) -> Option<(Strict, &[u8])> {
    let (request_line, mut rest) = line(input)?;
    let text = std::str::from_utf8(request_line).ok()?;
    let mut parts = text.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let common = ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method);
    let origin = target.starts_with('/') && target.bytes().all(|b| (0x21..0x7f).contains(&b));
    if parts.next().is_some() || !common || !origin || target.contains('#') || version != "HTTP/1.1"
    {
        return None;
    }
    let (mut hosts, mut length, mut chunked) = (0, None, false);
    loop {
        let (field, after) = line(rest)?;
        rest = after;
        if field.is_empty() {
            break;
        }
        let (name, value) = strict_field(field)?;
        match name.to_ascii_lowercase().as_str() {
            "host" => hosts += 1,
            "content-length"
                if length.is_none()
                    && value.len() <= 9
                    && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                length = value.parse::<usize>().ok();
            }
            "transfer-encoding" if !chunked && value.eq_ignore_ascii_case("chunked") => {
                chunked = true
            }
            "content-length" | "transfer-encoding" | "expect" | "connection" | "upgrade" | "te"
            | "trailer" => return None,
            _ => {}
        }
    }
    if hosts != 1 || (chunked && length.is_some()) {
        return None;
    }
    let (body, rest) = match (chunked, length) {
        (true, _) => strict_chunked(rest)?,
        (false, Some(n)) => (rest.get(..n)?.to_vec(), &rest[n..]),
        (false, None) => (Vec::new(), rest),
    };
    Some(((method.to_string(), target.to_string(), body), rest))
}

/// A field line's name and value: `name: value`, one space, a value of
/// visible ASCII and spaces between words.
fn strict_field(field: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(field).ok()?;
    let (name, value) = text.split_once(": ")?;
    let named = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let plain = value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    (named && plain && !value.is_empty()).then_some((name, value))
}

fn strict_chunked(mut input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut body = Vec::new();
    loop {
        let (size_line, rest) = line(input)?;
        let text = std::str::from_utf8(size_line).ok()?;
        let mut parts = text.split(';');
        let hex = parts.next()?;
        for extension in parts {
            let (name, value) = extension.split_once('=').unwrap_or((extension, "x"));
            let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
            if !token(name) || !token(value) {
                return None;
            }
        }
        if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let size = usize::from_str_radix(hex, 16).ok()?;
        if size == 0 {
            let mut rest = rest;
            loop {
                let (field, after) = line(rest)?;
                rest = after;
                if field.is_empty() {
                    return Some((body, rest));
                }
                strict_field(field)?;
            }
        }
        let data = rest.get(..size)?;
        if rest.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        body.extend_from_slice(data);
        input = &rest[size + 2..];
    }
}
