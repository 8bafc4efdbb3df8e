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
    answer_speaking(request, None)
}

/// [`answer`], agreeing on `protocol` (one of the request's
/// [`offered_protocols`]) in the 101's `Sec-WebSocket-Protocol` (RFC 6455
/// §4.2.2). A browser whose page asked for protocols fails a handshake
/// that agrees on none.
///
/// ```
/// use edgepoll::http::{Handler, Limits, Request, Response};
/// use edgepoll::ws::handshake::{answer_speaking, offered_protocols};
/// use std::time::Instant;
///
/// fn upgrade<'a>(request: &Request<'a>) -> Response<'a> {
///     let offered = offered_protocols(request);
///     let chat = offered.iter().copied().find(|p| *p == "chat.v2");
///     answer_speaking(request, chat)
/// }
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(
///     b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///       Sec-WebSocket-Protocol: chat.v3, chat.v2\r\n\r\n",
///     Instant::now(),
///     &mut upgrade,
/// );
/// let out = String::from_utf8_lossy(conn.pending_output()).into_owned();
/// assert!(out.contains("\r\nSec-WebSocket-Protocol: chat.v2\r\n"));
/// ```
pub fn answer_speaking<'a>(request: &Request<'_>, protocol: Option<&str>) -> Response<'a> {
    match check(request) {
        Ok(key) => {
            let switching = Response::new(StatusCode::SWITCHING_PROTOCOLS)
                .header("Upgrade", "websocket")
                .header("Connection", "Upgrade")
                .header("Sec-WebSocket-Accept", accept_key(key));
            // Only a protocol offered, which is a token (so a valid value).
            match protocol.filter(|p| offered_items(request).any(|item| item == *p)) {
                Some(protocol) => switching.header("Sec-WebSocket-Protocol", protocol.to_string()),
                None => switching,
            }
        }
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

/// The subprotocols a handshake offers in `Sec-WebSocket-Protocol` (there
/// may be several fields), in the client's order of preference: the items
/// that are tokens (RFC 6455 §4.1), each once.
///
/// ```
/// use edgepoll::http::{Handler, Limits, Request, Response, Service, StatusCode};
/// use std::time::Instant;
///
/// struct Offers(Vec<String>);
/// impl Service for Offers {
///     fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
///         let offered = edgepoll::ws::handshake::offered_protocols(request);
///         self.0 = offered.iter().map(|p| p.to_string()).collect();
///         Response::new(StatusCode::NOT_FOUND)
///     }
/// }
/// let mut offers = Offers(Vec::new());
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(
///     b"GET /ws HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: a, b\r\n\
///       Sec-WebSocket-Protocol: a,,c d, e\r\n\r\n",
///     Instant::now(),
///     &mut offers,
/// );
/// assert_eq!(offers.0, ["a", "b", "e"]);
/// ```
pub fn offered_protocols<'a>(request: &Request<'a>) -> Vec<&'a str> {
    let mut offered: Vec<&'a str> = Vec::new();
    // A head may hold thousands of items: past a few, the ones seen are
    // kept in a set, not looked for in the list (quadratic, the loop's
    // time for every connection).
    let mut seen = rustc_hash::FxHashSet::default();
    for item in offered_items(request) {
        let new = match offered.len() {
            0..8 => !offered.contains(&item),
            8 => {
                seen.extend(offered.iter().copied());
                seen.insert(item)
            }
            _ => seen.insert(item),
        };
        if new {
            offered.push(item);
        }
    }
    offered
}

/// The items of `Sec-WebSocket-Protocol` that are tokens, in order,
/// repeated as they are.
fn offered_items<'a, 'r>(request: &'r Request<'a>) -> impl Iterator<Item = &'a str> + use<'a, 'r> {
    request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|item| crate::http::is_token(item))
        // A token is ASCII.
        .filter_map(|item| std::str::from_utf8(item).ok())
}

/// Whether a request asks for a WebSocket (it names `websocket` in
/// `Upgrade`), valid or not.
///
/// ```
/// use edgepoll::http::{Request, Response, StatusCode};
/// use edgepoll::ws::handshake;
///
/// fn route<'a>(request: &Request<'a>) -> Response<'a> {
///     match handshake::is_upgrade_request(request) {
///         // 101, or 400/426 for a handshake that is not valid.
///         true => handshake::answer(request),
///         false => Response::new(StatusCode::OK).body("a page"),
///     }
/// }
/// ```
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
    match KEY_BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(key),
        _ => Err(Refusal::Malformed(
            "Sec-WebSocket-Key must be 16 bytes in base64\n",
        )),
    }
}

/// The client's key read as base64 with the bits that pad its last
/// character taken as they come: RFC 4648 §3.5 lets a decoder refuse them
/// if not zero, but the key is only hashed, and Python's `websockets` and
/// most servers take it so.
const KEY_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

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

    /// A key is 16 bytes in padded base64; the bits that pad its last
    /// character may be anything (a key ending `R==` was refused).
    #[test]
    fn a_key_is_sixteen_bytes_of_base64_whatever_its_padding_bits() {
        for (key, switches) in [
            ("dGhlIHNhbXBsZSBub25jZQ==", true),
            ("dGhlIHNhbXBsZSBub25jZR==", true),
            ("dGhlIHNhbXBsZSBub25jZQ", false),
            ("dGhlIHNhbXBsZSBub25j", false),
            ("dGhlIHNhbXBsZSBub25jZQ=!", false),
            ("dGhlIHNhbXBsZSBub25jZXg=", false),
        ] {
            let out = answered(&format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            ));
            assert_eq!(out.starts_with("HTTP/1.1 101 "), switches, "{key}: {out}");
        }
    }

    /// Only a protocol the client offered is agreed on: one it did not
    /// (or any, when it offered none) leaves the field out.
    #[test]
    fn only_an_offered_protocol_is_agreed_on() {
        let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n";
        for (offer, speak, agreed) in [
            ("Sec-WebSocket-Protocol: a, b\r\n", "b", true),
            ("Sec-WebSocket-Protocol: a, b\r\n", "c", false),
            ("Sec-WebSocket-Protocol: a b\r\n", "a", false),
            ("", "a", false),
        ] {
            struct Speaks(&'static str);
            impl crate::http::Service for Speaks {
                fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
                    answer_speaking(request, Some(self.0))
                }
            }
            let mut service = Speaks(speak);
            let mut conn = Handler::new(Limits::default(), Instant::now());
            conn.receive(
                format!("{request}{offer}\r\n").as_bytes(),
                Instant::now(),
                &mut service,
            );
            let out = String::from_utf8_lossy(conn.pending_output()).into_owned();
            assert!(out.starts_with("HTTP/1.1 101 "), "{out}");
            let field = format!("\r\nSec-WebSocket-Protocol: {speak}\r\n");
            assert_eq!(out.contains(&field), agreed, "{offer:?} {speak}: {out}");
            assert_eq!(out.contains("Sec-WebSocket-Protocol"), agreed, "{out}");
        }
    }

    /// A head full of offers (thousands of items, many repeated) lists
    /// each once, in the order first offered, across fields.
    #[test]
    fn thousands_of_offers_are_listed_each_once_in_order() {
        let names: Vec<String> = (0..3000).map(|i| format!("p{i}")).collect();
        let mut fields = String::new();
        for chunk in names.chunks(500) {
            // Each field repeats its items, and the first field's again.
            let items = [chunk, chunk, &names[..20]].concat().join(",");
            fields.push_str(&format!("Sec-WebSocket-Protocol: {items}\r\n"));
        }
        struct Offers(Vec<String>);
        impl crate::http::Service for Offers {
            fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
                self.0 = offered_protocols(request)
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                Response::new(crate::http::StatusCode::NOT_FOUND)
            }
        }
        let limits = Limits {
            max_head_bytes: 64 * 1024,
            ..Limits::default()
        };
        let mut offers = Offers(Vec::new());
        let mut conn = Handler::new(limits, Instant::now());
        let request = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        conn.receive(request.as_bytes(), Instant::now(), &mut offers);
        assert_eq!(offers.0, names);
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
