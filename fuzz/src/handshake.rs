//! The handshake target: requests into the HTTP handler answered by
//! [`edgepoll::ws::handshake`], checked against RFC 6455 §4.2 written out
//! here afresh: a 101 exactly for a valid handshake, with the right
//! `Sec-WebSocket-Accept` and only a protocol the client offered; 426 for
//! another version; 400 for the rest; and after a 101 the bytes that
//! followed the request are the WebSocket's, none lost and none of the
//! request's among them; all of it the same whether the input comes whole,
//! in two or in small pieces.

use crate::{without_continues, Reached, Rng, Target};
use base64::Engine as _;
use edgepoll::http::{Handler, Limits, Request, Response, ResponseParser, Service, Version};
use edgepoll::ws::handshake;
use sha1::{Digest, Sha1};
use std::time::Instant;

pub fn target() -> Target {
    Target {
        name: "handshake",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\r\n:, =+/A0\t",
        check,
        must_reach: &[
            "101",
            "101 with a protocol",
            "101 with bytes after it",
            "426",
            "400: not a GET over HTTP/1.1",
            "400: no Upgrade: websocket",
            "400: Connection does not list upgrade",
            "400: a body",
            "400: not one version",
            "400: not one valid key",
            "refused before the handshake",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\nConnection: keep-alive, upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    b"POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nhi",
    b"GET /ws HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b": ",
    b", ",
    b"Upgrade",
    b"websocket",
    b"Connection",
    b"Sec-WebSocket-Version: 13\r\n",
    b"Sec-WebSocket-Version: 8\r\n",
    b"13",
    b"8",
    b"Sec-WebSocket-Key: ",
    b"dGhlIHNhbXBsZSBub25jZQ==",
    b"AAAAAAAAAAAAAAAAAAAAAB==",
    b"Sec-WebSocket-Protocol: ",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"HTTP/1.0",
    b"\x81\x80\0\0\0\0",
];

/// What the handler read of the first request, and what the service was
/// asked to agree on.
struct Asked {
    method: String,
    version: Version,
    fields: Vec<(String, Vec<u8>)>,
    body_framed: bool,
    offered: Vec<String>,
    chosen: Option<String>,
}

/// The handshake's endpoint: it agrees on no protocol, on the first one
/// offered, or on one never offered.
struct Endpoint {
    choice: usize,
    asked: Vec<Asked>,
}

impl Service for Endpoint {
    fn call<'a>(&mut self, r: &Request<'a>) -> Response<'a> {
        let offered = handshake::offered_protocols(r);
        let chosen = match self.choice {
            0 => None,
            1 => offered.first().copied(),
            _ => Some("never-offered"),
        };
        let answer = handshake::answer_speaking(r, chosen);
        self.asked.push(Asked {
            method: r.method().to_string(),
            version: r.version(),
            fields: r
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            body_framed: r.headers().any(|(n, v)| {
                let zero = |item: &[u8]| {
                    let digits = item.trim_ascii();
                    !digits.is_empty() && digits.iter().all(|&d| d == b'0')
                };
                n.eq_ignore_ascii_case("transfer-encoding")
                    || (n.eq_ignore_ascii_case("content-length")
                        && !v.split(|&b| b == b',').all(zero))
            }),
            offered: offered.iter().map(|p| p.to_string()).collect(),
            chosen: chosen.map(str::to_string),
        });
        answer
    }
}

/// RFC 6455 §4.2.1–4.2.2, as a status and the reason for a refusal.
fn expected(asked: &Asked) -> (u16, &'static str) {
    let values = |name: &str| -> Vec<&[u8]> {
        let fields = asked
            .fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        fields.map(|(_, v)| v.trim_ascii()).collect()
    };
    let lists = |name: &str, token: &str| {
        (values(name).into_iter())
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    if asked.method != "GET" || asked.version != Version::Http11 {
        return (400, "400: not a GET over HTTP/1.1");
    }
    if !lists("upgrade", "websocket") {
        return (400, "400: no Upgrade: websocket");
    }
    if !lists("connection", "upgrade") {
        return (400, "400: Connection does not list upgrade");
    }
    if asked.body_framed {
        return (400, "400: a body");
    }
    match values("sec-websocket-version")[..] {
        [version] if version == b"13" => {}
        [_] => return (426, "426"),
        _ => return (400, "400: not one version"),
    }
    match values("sec-websocket-key")[..] {
        [key] if is_nonce(key) => (101, "101"),
        _ => (400, "400: not one valid key"),
    }
}

/// Whether `key` is 16 bytes in base64 (RFC 4648 §4): 22 letters of the
/// alphabet and `==`. The last letter carries 2 bits of the last byte and
/// 4 padding bits, which are taken as they come (not only `AQgw`, with
/// them zero), as the server takes them.
fn is_nonce(key: &[u8]) -> bool {
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(alphabet) && &key[22..] == b"=="
}

fn accept(key: &[u8]) -> Vec<u8> {
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .finalize();
    let accept = base64::engine::general_purpose::STANDARD.encode(digest);
    accept.into_bytes()
}

/// The items of `Sec-WebSocket-Protocol` that are tokens (RFC 9110 §5.6.2),
/// each once, in order.
fn offered(asked: &Asked) -> Vec<String> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut offered: Vec<String> = Vec::new();
    let fields = asked.fields.iter();
    let values = fields.filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"));
    for item in values.flat_map(|(_, v)| v.split(|&b| b == b',')) {
        let item = item.trim_ascii();
        if !item.is_empty() && item.iter().all(tchar) {
            let item = String::from_utf8_lossy(item).into_owned();
            if !offered.contains(&item) {
                offered.push(item);
            }
        }
    }
    offered
}

/// Where the first request's head ends: past the empty line after its
/// first line (line ends CRLF or LF; empty lines before it are skipped).
fn head_end(input: &[u8]) -> Option<usize> {
    let start = input.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    let rest = &input[start..];
    let lf_lf = rest.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let lf_crlf = rest.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
    let end = match (lf_lf, lf_crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(start + end)
}

/// What one connection made of the input: its output, the bytes after a
/// 101 (which the loop hands to the WebSocket), and what was asked.
type Outcome = (Vec<u8>, Vec<u8>, bool, Vec<Asked>);

/// Feeds `pieces` to a connection as they would arrive: once it has
/// switched, the rest is the WebSocket's, as the server's loop hands it on.
fn feed(pieces: &[&[u8]], choice: usize) -> Outcome {
    let now = Instant::now();
    let mut conn = Handler::new(Limits::default(), now);
    let mut endpoint = Endpoint {
        choice,
        asked: Vec::new(),
    };
    let mut rest = pieces.iter();
    for piece in rest.by_ref() {
        conn.receive(piece, now, &mut endpoint);
        if conn.is_upgraded() {
            break;
        }
    }
    let upgraded = conn.is_upgraded();
    let (mut output, mut after) = match upgraded {
        true => conn.take_upgraded(),
        false => (conn.pending_output().to_vec(), Vec::new()),
    };
    // A body that came with its head needs no 100 Continue; one that
    // comes later gets one first. The rest is the same.
    without_continues(&mut output);
    for piece in rest {
        after.extend_from_slice(piece);
    }
    (output, after, upgraded, endpoint.asked)
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let choice = rng.below(3);
    let [whole, split, bytes] = crate::cuts(input, rng).map(|pieces| feed(&pieces, choice));
    for (cut, other) in [("in two", split), ("in pieces", bytes)] {
        if (&other.0, &other.1, other.2) != (&whole.0, &whole.1, whole.2) {
            return Err(format!("fed {cut}, another outcome than whole"));
        }
    }
    let (output, after, upgraded, asked) = whole;
    let Some(first) = asked.first() else {
        if upgraded {
            return Err("upgraded without a handshake".into());
        }
        if !output.is_empty() {
            reached.mark("refused before the handshake");
        }
        return Ok(());
    };
    // Nothing is read after a 101: only the last request asked can have
    // switched the connection, and then it did.
    let last = asked.last().map_or(0, |last| expected(last).0);
    if upgraded != (last == 101) {
        return Err(format!("upgraded: {upgraded}, after a {last}"));
    }
    let asked = first;
    let (status, why) = expected(asked);
    let answer = match ResponseParser::new(false).feed(&output) {
        Ok(Some(answer)) => answer,
        other => return Err(format!("the answer did not parse: {:?}", other.err())),
    };
    if answer.status.as_u16() != status {
        return Err(format!("{} for {status} ({why})", answer.status.as_u16()));
    }
    let offers = offered(asked);
    if asked.offered != offers {
        return Err(format!("offered {:?}, not {offers:?}", asked.offered));
    }
    reached.mark(why);
    if status == 426 && answer.header("sec-websocket-version") != Some(b"13") {
        return Err("a 426 without Sec-WebSocket-Version: 13".into());
    }
    // A later request's head ends elsewhere: only a first one's 101 is
    // checked through.
    if status != 101 {
        return Ok(());
    }
    let keys = asked.fields.iter();
    let key = keys.filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"));
    let key = key.map(|(_, v)| v.trim_ascii()).next().unwrap_or_default();
    let switched = answer.header("upgrade") == Some(b"websocket")
        && answer.header("connection") == Some(b"Upgrade");
    if !switched || answer.header("sec-websocket-accept") != Some(&accept(key)[..]) {
        return Err("a 101 without the right Upgrade, Connection and Accept".into());
    }
    let agreed = asked
        .chosen
        .as_deref()
        .filter(|c| offers.iter().any(|o| o == c));
    if answer.header("sec-websocket-protocol") != agreed.map(str::as_bytes) {
        return Err(format!(
            "a 101 agreeing on {:?}",
            answer.header("sec-websocket-protocol")
        ));
    }
    if agreed.is_some() {
        reached.mark("101 with a protocol");
    }
    let end = head_end(input).ok_or("a 101 for a head that never ended")?;
    if after != input[end..] {
        return Err(format!(
            "{} bytes handed to the WebSocket, not the {} after the head",
            after.len(),
            input.len() - end
        ));
    }
    if !after.is_empty() {
        reached.mark("101 with bytes after it");
    }
    Ok(())
}
