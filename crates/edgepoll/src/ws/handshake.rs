//! The opening handshake (RFC 6455 §4.2): a `GET` with `Upgrade: websocket`
//! becomes a 101 with `Sec-WebSocket-Accept`, or a refusal.

use crate::http::{Request, Response, StatusCode, Version};
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     edgepoll::ws::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// The answer to a request for a WebSocket endpoint: 101 with the accept key
/// if it is a valid upgrade, 426 with `Sec-WebSocket-Version: 13` for another
/// protocol version, 400 for anything else (not a `GET` over HTTP/1.1, no
/// `Upgrade: websocket` or `Connection: Upgrade`, a missing or malformed key).
///
/// ```
/// use edgepoll::http::{Handler, Limits, Request, Response};
/// use std::time::Instant;
///
/// fn upgrade<'a>(request: &Request<'a>) -> Response<'a> {
///     edgepoll::ws::handshake::answer(request)
/// }
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(
///     b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
///     Instant::now(),
///     &mut upgrade,
/// );
/// assert!(conn.is_upgraded());
/// assert!(conn.pending_output().starts_with(b"HTTP/1.1 101 "));
/// ```
pub fn answer<'a>(request: &Request<'_>) -> Response<'a> {
    match check(request) {
        Ok(key) => Response::new(StatusCode::SWITCHING_PROTOCOLS)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", accept_key(key)),
        Err(Refusal::Version) => Response::new(StatusCode::UPGRADE_REQUIRED)
            .header("Sec-WebSocket-Version", "13")
            .header("Content-Type", "text/plain")
            .body("only WebSocket version 13 is spoken here\n"),
        Err(Refusal::Malformed(reason)) => Response::new(StatusCode::BAD_REQUEST)
            .header("Content-Type", "text/plain")
            .body(reason),
    }
}

/// Whether a request asks for a WebSocket (it names `websocket` in
/// `Upgrade`), valid or not.
pub fn is_upgrade_request(request: &Request<'_>) -> bool {
    lists(request, "Upgrade", b"websocket")
}

enum Refusal {
    Version,
    Malformed(&'static str),
}

fn check<'a>(request: &Request<'a>) -> Result<&'a [u8], Refusal> {
    if request.method() != "GET" || request.version() != Version::Http11 {
        return Err(Refusal::Malformed(
            "a WebSocket handshake is a GET over HTTP/1.1\n",
        ));
    }
    if !is_upgrade_request(request) {
        return Err(Refusal::Malformed(
            "this is a WebSocket endpoint: send Upgrade: websocket\n",
        ));
    }
    if !lists(request, "Connection", b"upgrade") {
        return Err(Refusal::Malformed("Connection must list Upgrade\n"));
    }
    match request.header("Sec-WebSocket-Version") {
        None => return Err(Refusal::Malformed("Sec-WebSocket-Version is missing\n")),
        Some(version) if version.trim_ascii() != b"13" => return Err(Refusal::Version),
        Some(_) => {}
    }
    let mut keys = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"));
    let (Some((_, key)), None) = (keys.next(), keys.next()) else {
        return Err(Refusal::Malformed(
            "one Sec-WebSocket-Key field is required\n",
        ));
    };
    let key = key.trim_ascii();
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(key),
        _ => Err(Refusal::Malformed(
            "Sec-WebSocket-Key must be 16 bytes in base64\n",
        )),
    }
}

/// Whether the comma-separated values of the fields called `name` (there
/// may be several) list `token`, in any case.
fn lists(request: &Request<'_>, name: &str, token: &[u8]) -> bool {
    request
        .headers()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}
