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
        // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
        Err(Refusal::Version) => Response::new(StatusCode::UPGRADE_REQUIRED)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
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
    // The handler's own rule: a request with a body offers no upgrade (its
    // body would be taken for the new protocol's first bytes).
    if request.upgrade().is_none() {
        return Err(Refusal::Malformed(
            "a WebSocket handshake carries no body\n",
        ));
    }
    let mut versions = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-version"));
    match (versions.next(), versions.next()) {
        (None, _) => return Err(Refusal::Malformed("Sec-WebSocket-Version is missing\n")),
        // RFC 6455 §11.3.5: once in a request.
        (Some(_), Some(_)) => {
            return Err(Refusal::Malformed(
                "one Sec-WebSocket-Version field is allowed\n",
            ))
        }
        (Some((_, version)), None) if version.trim_ascii() != b"13" => {
            return Err(Refusal::Version)
        }
        (Some(_), None) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Handler, Limits};
    use std::time::Instant;

    /// The answer to `request`, as the handler sends it.
    fn answered(request: &str) -> String {
        fn service<'a>(request: &Request<'a>) -> Response<'a> {
            answer(request)
        }
        let mut conn = Handler::new(Limits::default(), Instant::now());
        conn.receive(request.as_bytes(), Instant::now(), &mut service);
        String::from_utf8_lossy(conn.pending_output()).into_owned()
    }

    fn handshake(extra: &str) -> String {
        answered(&format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        ))
    }

    #[test]
    fn a_valid_handshake_switches_with_any_connection_list() {
        for connection in ["Upgrade", "keep-alive, Upgrade", "upgrade", "close,UPGRADE"] {
            let out = handshake(&format!(
                "Connection: {connection}\r\nSec-WebSocket-Version: 13\r\n"
            ));
            assert!(out.starts_with("HTTP/1.1 101 "), "{connection}: {out}");
            assert!(out.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        }
    }

    #[test]
    fn another_version_gets_426_naming_the_protocol_and_version() {
        let out = handshake("Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n");
        assert!(out.starts_with("HTTP/1.1 426 "), "{out}");
        for field in [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ] {
            assert!(out.contains(&format!("{field}\r\n")), "{field}: {out}");
        }
    }

    #[test]
    fn a_handshake_with_a_body_or_a_field_twice_is_refused() {
        for extra in [
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello",
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
            "Connection: Upgrade\r\n",
            "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n",
        ] {
            let request = match extra.split_once("\r\n\r\n") {
                // A body: the head ends where it begins.
                Some((head, body)) => answered(&format!(
                    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{head}\r\n\r\n{body}"
                )),
                None => handshake(extra),
            };
            assert!(request.starts_with("HTTP/1.1 400 "), "{extra:?}: {request}");
        }
    }
}
