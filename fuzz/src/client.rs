//! The client target: whatever a program hands the client (a method, a URL
//! or a forwarded request target, header fields, a body), the request is
//! either refused with a typed error before a byte is sent, or it is read
//! by edgepoll's own server as exactly that request: the same method,
//! target, fields and body, and nothing more (no field injected, no second
//! request smuggled in: CWE-113, CWE-444).
//!
//! An input is cut at `|` into the method, the URL after `http://` (also
//! tried as the target of a forwarded request), then field names and
//! values in turn; a part left over is the body.

use crate::{Reached, Rng, Target};
use edgepoll::http::{Handler, Limits, Request, Response, Service, StatusCode, MAX_HEADERS};
use edgepoll::{ClientRequest, Url};
use std::time::Instant;

pub fn target() -> Target {
    Target {
        name: "client",
        seeds: SEEDS
            .iter()
            .map(|s| s.to_vec())
            // A target of 1 900 bytes that are not UTF-8, each sent as
            // `%EF%BF%BD`: a head past the server's 16 KiB.
            .chain([[&b"GET|a.test/"[..], &[0xe9; 1900]].concat()])
            .collect(),
        tokens: TOKENS,
        bytes: b"\r\n: |/?#%\x00\xff\t\x7f",
        check,
        must_reach: &[
            "refused",
            "read back",
            "read back with a body",
            "a forwarded target read back",
            "beyond the server's limits",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET|127.0.0.1:8080/|Accept|*/*",
    // A path first: also a forwarded request's target as it stands.
    b"GET|/a/b?c=d|X-Trace|1",
    b"POST|localhost/echo?x=1|Content-Type|text/plain|X-Trace|7|hello",
    b"PUT|[::1]:9000/a/b|X-Raw|caf\xe9|body",
    b"OPTIONS|*|Max-Forwards|0",
    b"DELETE|a.test/%20x|X-A| spaced |",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\t",
    b"|",
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"chunked",
    b"Connection",
    b"Upgrade",
    b"close",
    b": ",
    b"\r\nX-Injected: 1",
    b"\r\n\r\nGET /smuggled HTTP/1.1\r\n",
    b"HTTP/1.1",
    b"%0d%0a",
    b"http://",
    b"@",
    b"\x7f",
    b"\xff",
];

/// A request as the server read it.
type Received = (String, String, Vec<(String, Vec<u8>)>, Vec<u8>);

/// A service that keeps what it is asked.
struct Recorder(Vec<Received>);

impl Service for Recorder {
    fn call<'a>(&mut self, r: &Request<'a>) -> Response<'a> {
        self.0.push((
            r.method().to_string(),
            r.target().to_string(),
            r.headers()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            r.body().to_vec(),
        ));
        Response::new(StatusCode::OK)
    }
}

fn check(input: &[u8], _: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let parts: Vec<&[u8]> = input.split(|&b| b == b'|').collect();
    let (Some(method), Some(url)) = (parts.first(), parts.get(1)) else {
        return Ok(());
    };
    // The server answers a method over 64 bytes with 501 (its own limit):
    // valid, but not one it reads back.
    if method.len() > 64 {
        return Ok(());
    }
    let method = String::from_utf8_lossy(method);
    let url = String::from_utf8_lossy(url);
    let origin = Url::parse("http://127.0.0.1:8080").map_err(|e| e.to_string())?;
    let made = [
        ClientRequest::new(&method, &format!("http://{url}")),
        ClientRequest::to_origin(&method, &origin, &url),
    ];
    for (forwarded, request) in made.into_iter().enumerate() {
        let Ok(mut request) = request else {
            reached.mark("refused");
            continue;
        };
        let mut rest = parts[2..].chunks_exact(2);
        for field in rest.by_ref() {
            request.append_header_bytes(&String::from_utf8_lossy(field[0]), field[1]);
        }
        let body = rest.remainder().first().copied().unwrap_or_default();
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        let Ok(wire) = request.encode() else {
            reached.mark("refused");
            continue;
        };
        if !read_back(&request, body, &wire)? {
            reached.mark("beyond the server's limits");
            continue;
        }
        reached.mark(match (forwarded == 1, body.is_empty()) {
            (true, _) => "a forwarded target read back",
            (false, true) => "read back",
            (false, false) => "read back with a body",
        });
    }
    Ok(())
}

/// Checks that the server reads `wire` as `request` (with `sent_body`),
/// once: true; or false when the request has more fields than the server
/// takes, or a head longer than it takes (a short input can make a long
/// target: a byte that is not UTF-8 goes as `%EF%BF%BD`), and the server
/// says so (431, or 414 for the request line).
fn read_back(request: &ClientRequest, sent_body: &[u8], wire: &[u8]) -> Result<bool, String> {
    let limits = Limits {
        max_headers: MAX_HEADERS,
        ..Limits::default()
    };
    let now = Instant::now();
    let mut server = Handler::new(limits.clone(), now);
    let mut recorder = Recorder(Vec::new());
    server.receive(wire, now, &mut recorder);
    server.receive_eof(now, &mut recorder);
    let received = recorder.0;
    let shown = || String::from_utf8_lossy(wire).into_owned();
    // Counted from the request, not the wire: a field injected into the
    // wire would add one. The client adds Host, and may add one framing
    // field (a `Content-Length: 0` to a bodiless OPTIONS, say).
    let fields = request.headers().count() + 2;
    let answer = server.pending_output();
    if received.is_empty() && fields > limits.max_headers && answer.starts_with(b"HTTP/1.1 431 ") {
        return Ok(false);
    }
    let head = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |at| at + 4);
    if received.is_empty()
        && head > limits.max_head_bytes
        && (answer.starts_with(b"HTTP/1.1 431 ") || answer.starts_with(b"HTTP/1.1 414 "))
    {
        return Ok(false);
    }
    let [(method, target, fields, body)] = &received[..] else {
        return Err(format!(
            "read as {} requests: {:?}",
            received.len(),
            shown()
        ));
    };
    // What the client writes itself, the rest as given.
    let own = ["host", "content-length", "transfer-encoding"];
    let fields: Vec<_> = fields
        .iter()
        .filter(|(name, _)| !own.iter().any(|o| name.eq_ignore_ascii_case(o)))
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let sent: Vec<_> = request.headers().collect();
    if method != request.method()
        || target != &request.url().path
        || fields != sent
        || body != sent_body
    {
        return Err(format!("read as another request: {:?}", shown()));
    }
    let hosts = received[0]
        .2
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .count();
    if hosts != 1 {
        return Err(format!("{hosts} Host fields: {:?}", shown()));
    }
    Ok(true)
}
