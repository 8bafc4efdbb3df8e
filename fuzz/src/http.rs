//! The HTTP/1.1 target: requests into the [`Handler`], answered by an echo
//! service that takes CONNECT too (and answers it 2xx, which must never
//! go out: the connection opens no tunnel).

use crate::{cuts, without_continues, Reached, Rng, Target};
use edgepoll::http::{
    ChunkedDecoder, Handler, Limits, Request, Response, ResponseParser, Service, StatusCode,
};
use std::time::{Duration, Instant};

pub fn target() -> Target {
    Target {
        name: "http",
        seeds: SEEDS
            .iter()
            .map(|s| s.to_vec())
            .chain(large_bodies())
            .collect(),
        tokens: TOKENS,
        bytes: b"\r\n: 0aZ\x00\xff;x",
        check,
        must_reach: &[
            "100",
            "200",
            "400",
            "408",
            "413",
            "417",
            "431",
            "501",
            "505",
            "an echo over half the body limit",
            "a CONNECT's 2xx refused",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nWiki\r\n0\r\nT: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    // A refused HEAD: bodiless, last, closing (seed 4711 found the harness
    // reading it as a GET's).
    b"HEAD / HTTP/1.1\r\nHost: a\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nCONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
];

/// Requests whose bodies are near the limit (1024 bytes), by length and
/// chunked: mutations take them over it and back.
fn large_bodies() -> Vec<Vec<u8>> {
    let body = |n: usize| {
        b"0123456789"
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect::<Vec<u8>>()
    };
    let mut by_length = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".to_vec();
    by_length.extend(body(1000));
    let mut chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for size in [600, 420] {
        chunked.extend(format!("{size:x}\r\n").bytes());
        chunked.extend(body(size));
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    vec![by_length, chunked]
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b" ",
    b"\0",
    b"0\r\n\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Host: h\r\n",
    b"99999999999999999999",
    b"ffffffff",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b";ext=\"v\"",
    b"-1",
    b"\xff\xfe",
    b"CONNECT ",
];

/// The statuses the handler answers with, each named as [`Reached`] marks it.
const STATUSES: &[(u16, &str)] = &[
    (100, "100"),
    (200, "200"),
    (400, "400"),
    (408, "408"),
    (413, "413"),
    (414, "414"),
    (417, "417"),
    (431, "431"),
    (500, "a CONNECT's 2xx refused"),
    (501, "501"),
    (505, "505"),
];

/// The limits' body size (see [`limits`]).
const MAX_BODY: usize = 1024;

fn limits() -> Limits {
    // Small limits, so mutations reach every limit path.
    Limits {
        max_head_bytes: 256,
        max_headers: 8,
        max_body_bytes: MAX_BODY,
        max_chunk_line_bytes: 32,
        max_pending_output_bytes: 512,
        ..Limits::default()
    }
}

/// Echoes every request, and answers CONNECT with a 2xx marked
/// `X-Tunnel`, which the connection must turn into a 500.
struct Echo;

impl Service for Echo {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        // Marks answers to HEAD: they announce a length but carry no body,
        // which a reader of the output alone could not tell.
        let response = Response::new(StatusCode::OK).body(request.body());
        match request.method() {
            "HEAD" => response.header("X-Head", "1"),
            "CONNECT" => response.header("X-Tunnel", "open"),
            _ => response,
        }
    }

    fn handles_connect(&self) -> bool {
        true
    }
}

/// The first complete response in `bytes`: its length, status and
/// Content-Length. One to HEAD is bodiless: the echo's own are marked; a
/// refusal of a HEAD ends the connection, so it is the last of the output,
/// and closes.
fn first_response(bytes: &[u8]) -> Option<(usize, u16, Option<usize>)> {
    for head_only in [true, false] {
        for n in 1..=bytes.len() {
            if let Ok(Some(r)) = ResponseParser::new(head_only).feed(&bytes[..n]) {
                let refusal_at_end = n == bytes.len()
                    && r.status.as_u16() >= 400
                    && r.header("connection") == Some(&b"close"[..]);
                if head_only && r.header("x-head").is_none() && !refusal_at_end {
                    break;
                }
                let length = r
                    .header("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
                return Some((n, r.status.as_u16(), length));
            }
        }
    }
    None
}

/// Feeds the pieces, draining output as a socket would; returns all output
/// with interim 100 responses removed, and whether there were any.
fn feed(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
    let now = Instant::now();
    let mut conn = Handler::new(limits(), now);
    let mut service = Echo;
    let mut out = Vec::new();
    let mut drain = |conn: &mut Handler, out: &mut Vec<u8>| {
        while conn.wants_write() {
            out.extend_from_slice(conn.pending_output());
            let n = conn.pending_output().len();
            conn.consume_output(n, now);
            conn.process(now, &mut service);
        }
    };
    for piece in pieces {
        conn.receive(piece, now, &mut Echo);
        drain(&mut conn, &mut out);
    }
    // The end: the client closes, then its time runs out; or, for inputs
    // of odd length, the other way round (a request cut short then gets
    // 408, where a close gets none).
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    for step in [len % 2, 1 - len % 2] {
        match step {
            0 => conn.receive_eof(now, &mut Echo),
            _ => conn.handle_timeout(now + Duration::from_secs(3600)),
        }
        drain(&mut conn, &mut out);
    }
    assert!(
        conn.is_finished(),
        "connection not finished after EOF and timeout"
    );
    let continued = without_continues(&mut out);
    (out, continued)
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let [whole, halves, pieces] = cuts(input, rng);
    let whole = feed(&whole);
    // Whether a 100 goes out depends on whether the body came with the
    // head: only the rest must agree.
    if feed(&halves).0 != whole.0 {
        return Err(format!("output differs when split at {}", halves[0].len()));
    }
    let (in_pieces, continued) = feed(&pieces);
    if in_pieces != whole.0 {
        return Err("output differs when fed in small pieces".into());
    }
    if whole.1 || continued {
        reached.mark("100");
    }
    // (No input holds the line, to be echoed in a body.)
    let tunnel = b"\r\nX-Tunnel: open\r\n";
    if whole.0.windows(tunnel.len()).any(|w| w == tunnel) {
        return Err("a 2xx to CONNECT went out: the client takes a tunnel as open".into());
    }
    let mut remaining: &[u8] = &whole.0;
    while !remaining.is_empty() {
        let (n, status, length) = first_response(remaining).ok_or_else(|| {
            format!(
                "unparseable output: {:?}",
                String::from_utf8_lossy(remaining)
            )
        })?;
        let (_, name) = STATUSES
            .iter()
            .find(|(s, _)| *s == status)
            .ok_or_else(|| format!("undocumented status {status}"))?;
        reached.mark(name);
        // An echo's body is the request's: within the limit, or refused.
        // (An answer to HEAD may leave the length out.)
        if let Some(length) = length.filter(|_| status == 200) {
            if length > MAX_BODY {
                return Err(format!(
                    "an echo of {length} bytes: the body limit is {MAX_BODY}"
                ));
            }
            if length > MAX_BODY / 2 {
                reached.mark("an echo over half the body limit");
            }
        }
        remaining = &remaining[n..];
    }
    // The decoders on their own: any bytes, no panic.
    let mut buf = input.to_vec();
    let _ = ChunkedDecoder::new(1024, 32, 256).decode_in_place(&mut buf, 0, 0);
    let _ = ResponseParser::new(false).feed(input);
    Ok(())
}
