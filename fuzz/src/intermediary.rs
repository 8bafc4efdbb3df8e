//! The intermediary target: what examples/proxy changes in the messages it
//! passes on (its `forwarded` module, compiled here as it is there). A
//! request is read by edgepoll's server, rewritten for an upstream as the
//! proxy does, written by the client and read back by a second server; a
//! response is read by the response parser and its fields rewritten for
//! the client. Each result is checked against rules written out here
//! afresh from RFC 9110 §7.6 and the module's stated decisions:
//!
//! - no hop-by-hop field goes on, nor any field a `Connection` field names
//!   (but those the proxy writes itself);
//! - every other field goes on as it came and in its order, except those
//!   the proxy writes: `Host`, `Via`, `X-Forwarded-For`, `-Proto`, `-Host`,
//!   the framing, and the claims of who asked (`Forwarded`, `X-Real-IP`,
//!   ...), which pass only when trusted;
//! - `Via` holds the entries that came and then the proxy's own, and the
//!   `X-Forwarded-*` fields say what the client asked, from where;
//! - `Max-Forwards` of OPTIONS and TRACE counts down, as one field, from
//!   the least of its values if it came more than once (as fields or a
//!   list), and at 0 the request goes no further;
//! - a request whose `Via` names the proxy (an entry received by it) came
//!   back through a loop and goes no further; `SELF` in an input stands for
//!   that name, which the proxy draws when it starts;
//! - the request goes on as one request, with the target in origin form.
//!
//! A request is one whose input does not start with `HTTP/`; a response is
//! one that does, read as the answer to a GET or, one time in four, to a
//! HEAD: a response in a transfer coding other than chunked is refused
//! (502) exactly when it has a body, and one with a status past 599
//! always.

use crate::{Reached, Rng, Target};
use edgepoll::http::{
    Handler, Limits, ParsedResponse, Request, Response, ResponseParser, Service, StatusCode,
    Version, MAX_HEADERS,
};
use edgepoll::Url;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

// The proxy's own module, not a copy: the fuzzer checks what the proxy
// runs. Not all of it is called here.
#[allow(dead_code)]
#[path = "../../examples/proxy/src/forwarded.rs"]
mod forwarded;

pub fn target() -> Target {
    Target {
        name: "intermediary",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\r\n:, _-0\t",
        check,
        must_reach: &[
            "forwarded",
            "forwarded, trusted",
            "a field Connection names dropped",
            "a claim dropped",
            "a claim passed, trusted",
            "a chain appended to",
            "Max-Forwards counted down",
            "Max-Forwards sent twice goes on as one",
            "answered as the final recipient",
            "an absolute target",
            "a request about the server",
            "a Via chain",
            "a response passed on",
            "a response field Connection names dropped",
            "a response's Via chain",
            "a foreign transfer coding refused",
            "a foreign coding without a body passed",
            "a status past 599 refused",
            "a loop stopped",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\nTE: trailers\r\nX-Trace: 7\r\n\r\nhi",
    b"GET http://u@a.test:81/p?q HTTP/1.1\r\nHost: b.test\r\nVia: 1.0 first, 1.1 second\r\nX-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: c.test\r\n\r\n",
    b"OPTIONS http://a.test HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 3\r\n\r\n",
    b"TRACE / HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 9\r\nX-A: 1\r\nMax-Forwards: x\r\nMax-Forwards: 7, 4\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 0\r\n\r\n",
    b"TRACE / HTTP/1.0\r\nMax-Forwards: 1\r\nConnection: Max-Forwards\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX_Forwarded_For: 1.2.3.4\r\nX-Forwarded-Port: 1\r\nTrue-Client-IP: 1.2.3.4\r\nClient-IP: 1\r\nX-Keep: yes\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade, Via\r\nVia: 1.1 hidden\r\nProxy-Connection: keep-alive\r\nTrailer: X\r\n\r\n",
    b"GET /again HTTP/1.1\r\nHost: a.test\r\nVia: 1.0 first, 1.1 SELF (edgepoll)\r\n\r\n",
    b"GET / HTTP/1.1\r\nVia: 1.1 gw (a, 1.1 SELF \\) (b, c)), 1.0 x(1.1 SELF), 1.1 (\r\n\r\n",
    b"OPTIONS / HTTP/1.1\r\nVia: 1.1 SELFISH\r\nMax-Forwards: 0\r\nConnection: Via\r\nVia: 1.0\tSELF\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\nVia: 1.1 up\r\nX-End: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nKeep-Alive: timeout=5\r\nVia: 1.0 a, , 1.1 b\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\nETag: \"a\"\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nUpgrade: h2c\r\nVia: 1.1 x\r\nConnection: via\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b": ",
    b", ",
    b"Connection",
    b"keep-alive",
    b"close",
    b"Upgrade",
    b"TE",
    b"Trailer",
    b"Transfer-Encoding",
    b"chunked",
    b"gzip",
    b"Proxy-Connection",
    b"Via",
    b"SELF",
    b"1.1 ",
    b"(",
    b")",
    b"Host",
    b"Expect",
    b"Content-Length",
    b"Max-Forwards",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Forwarded-Host",
    b"X-Forwarded-Port",
    b"X_Forwarded_For",
    b"Forwarded",
    b"X-Real-IP",
    b"Client-IP",
    b"CF-Connecting-IP",
    b"OPTIONS",
    b"TRACE",
    b"http://a.test",
    b"HTTP/1.0",
    b"HTTP/1.1 200 OK\r\n",
];

/// The fields the proxy writes itself, whatever came: never copied.
const WRITTEN: [&str; 7] = [
    "host",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "expect",
    "content-length",
];

/// Always hop-by-hop (RFC 9110 §7.6.1, RFC 9112 §7 and §9.6; and the old
/// `Proxy-Connection`).
const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Claims of the client's address or scheme, which pass only when trusted.
const CLAIMS: [&str; 10] = [
    "forwarded",
    "x-real-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "front-end-https",
    "x-url-scheme",
];

type Fields = Vec<(String, Vec<u8>)>;

fn is(name: &str, known: &str) -> bool {
    name.eq_ignore_ascii_case(known)
}

fn is_claim(name: &str) -> bool {
    let forwarded =
        (name.as_bytes().get(..12)).is_some_and(|p| p.eq_ignore_ascii_case(b"x-forwarded-"));
    let written = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
    (forwarded && !written.iter().any(|w| is(name, w))) || CLAIMS.iter().any(|c| is(name, c))
}

/// The names the `Connection` fields of `fields` list.
fn named_by_connection(fields: &Fields) -> Vec<String> {
    let values = fields.iter().filter(|(n, _)| is(n, "connection"));
    values
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).into_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_hop(name: &str, named: &[String]) -> bool {
    HOP.iter().any(|h| is(name, h)) || named.iter().any(|n| is(name, n))
}

/// The values of `name` that are not for the hop alone, as one list: each
/// trimmed, empty ones left out, joined with ", ".
fn list(fields: &Fields, name: &str, named: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    if is_hop(name, named) {
        return out;
    }
    for (_, value) in fields.iter().filter(|(n, _)| is(n, name)) {
        let value = value.trim_ascii();
        if !value.is_empty() {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(value);
        }
    }
    out
}

fn first<'a>(fields: &'a Fields, name: &str, named: &[String]) -> Option<&'a [u8]> {
    if is_hop(name, named) {
        return None;
    }
    let mut values = fields.iter().filter(|(n, _)| is(n, name));
    values.next().map(|(_, v)| v.as_slice())
}

/// The proxy's entry: the version, and its name, which it draws itself
/// (its form is checked by `check`).
fn own_via(version: Version) -> Vec<u8> {
    let version: &[u8] = match version {
        Version::Http10 => b"1.0 ",
        Version::Http11 => b"1.1 ",
    };
    [version, forwarded::own_name().as_bytes()].concat()
}

/// `edgepoll-` and eight hex digits.
fn well_named(name: &str) -> bool {
    let hex = name.strip_prefix("edgepoll-").unwrap_or("");
    hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether any `Via` field (Connection may name it: it still says where the
/// request has been) holds an entry received by the proxy: with comments
/// taken out, an entry is what lies between commas, and who received it
/// is its second word (a protocol comes first).
fn names_the_proxy(fields: &Fields) -> bool {
    let own = forwarded::own_name().as_bytes();
    let values = fields.iter().filter(|(n, _)| is(n, "via"));
    let bare: Vec<Vec<u8>> = values.map(|(_, v)| without_comments(v)).collect();
    let mut entries = bare.iter().flat_map(|v| v.split(|&b| b == b','));
    entries.any(|entry| {
        let words = entry.split(|b| b" \t".contains(b));
        let mut words = words.filter(|w| !w.is_empty());
        words.nth(1).is_some_and(|by| by.eq_ignore_ascii_case(own))
    })
}

/// `value` with each comment (RFC 9110 §5.6.5: in parentheses, which nest,
/// a byte after `\` taken as it is) made a space; one left open runs to
/// the end.
fn without_comments(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.iter().position(|&b| b == b'(') {
        out.extend_from_slice(&rest[..open]);
        out.push(b' ');
        let (mut depth, mut at) = (0, open);
        while at < rest.len() {
            match rest[at] {
                b'\\' => at += 1,
                b'(' => depth += 1,
                b')' if depth == 1 => break,
                b')' => depth -= 1,
                _ => {}
            }
            at += 1;
        }
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

/// `input` with the proxy's name for each `SELF`.
fn with_own_name(input: &[u8]) -> Vec<u8> {
    let own = forwarded::own_name().as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.windows(4).position(|w| w == b"SELF") {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(own);
        rest = &rest[at + 4..];
    }
    out.extend_from_slice(rest);
    out
}

fn with_own(mut came: Vec<u8>, version: Version) -> Vec<u8> {
    if !came.is_empty() {
        came.extend_from_slice(b", ");
    }
    came.extend_from_slice(&own_via(version));
    came
}

/// A request as the proxy's server read it, and what it sent on.
struct Forwarded {
    method: String,
    target: String,
    version: Version,
    fields: Fields,
    /// `None` when the proxy answered it itself: as the final recipient, or
    /// as one that came back (`looped`).
    wire: Option<Result<Vec<u8>, String>>,
    looped: bool,
}

/// The proxy's reading of requests, without the proxy around it.
struct Forwarder {
    trust: bool,
    upstream: Url,
    seen: Vec<Forwarded>,
}

impl Service for Forwarder {
    fn call<'a>(&mut self, r: &Request<'a>) -> Response<'a> {
        let looped = forwarded::came_back(r.headers());
        let wire = match forwarded::max_forwards(r.method(), r.headers()) {
            _ if looped => None,
            Some(0) => None,
            _ => Some(
                forwarded::Forwarding::of(r, self.trust)
                    .request(r, &self.upstream)
                    .and_then(|request| request.encode())
                    .map_err(|e| e.to_string()),
            ),
        };
        self.seen.push(Forwarded {
            method: r.method().to_string(),
            target: r.target().to_string(),
            version: r.version(),
            fields: owned(r.headers()),
            wire,
            looped,
        });
        Response::new(StatusCode::OK)
    }
}

fn owned<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Fields {
    fields.map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

/// What an upstream's server read.
struct Recorder(Vec<(String, String, Fields)>);

impl Service for Recorder {
    fn call<'a>(&mut self, r: &Request<'a>) -> Response<'a> {
        let fields = owned(r.headers());
        self.0
            .push((r.method().to_string(), r.target().to_string(), fields));
        Response::new(StatusCode::OK)
    }
}

const PEERS: [Option<&str>; 4] = [
    None,
    Some("10.0.0.7:4000"),
    Some("[2001:db8::1]:4000"),
    // An IPv4 client of a dual-stack listener: named as IPv4.
    Some("[::ffff:192.0.2.9]:4000"),
];

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let trust = rng.below(2) == 1;
    if !well_named(forwarded::own_name()) {
        return Err(format!(
            "the proxy names itself {:?}",
            forwarded::own_name()
        ));
    }
    let input = &with_own_name(input)[..];
    if input.starts_with(b"HTTP/") {
        return check_response(input, rng.below(4) == 0, reached);
    }
    let peer: Option<SocketAddr> = PEERS[rng.below(PEERS.len())].and_then(|p| p.parse().ok());
    let now = Instant::now();
    let mut proxy = Handler::new(Limits::default(), now);
    proxy.set_addresses(peer, None);
    let upstream = Url::parse("http://127.0.0.1:9000").map_err(|e| e.to_string())?;
    let mut forwarder = Forwarder {
        trust,
        upstream,
        seen: Vec::new(),
    };
    proxy.receive(input, now, &mut forwarder);
    proxy.receive_eof(now, &mut forwarder);
    for request in &forwarder.seen {
        let came_back = names_the_proxy(&request.fields);
        if came_back || request.looped {
            if !(came_back && request.looped && request.wire.is_none()) {
                let via = request.fields.iter().filter(|(n, _)| is(n, "via"));
                let via: Vec<_> = via.map(|(_, v)| String::from_utf8_lossy(v)).collect();
                return Err(format!(
                    "Via {via:?} names the proxy: {came_back}; stopped as a loop: {}; sent on: {}",
                    request.looped,
                    request.wire.is_some()
                ));
            }
            reached.mark("a loop stopped");
            continue;
        }
        // RFC 9110 §7.6.2: an OPTIONS or TRACE whose Max-Forwards is 0
        // goes no further, unless that field was for the last hop alone.
        // Sent more than once (it is a singleton; as fields or a list), the
        // smallest valid value counts: any 0 stops it.
        let named = named_by_connection(&request.fields);
        let hops = matches!(request.method.as_str(), "OPTIONS" | "TRACE");
        let mut values =
            (request.fields.iter()).filter(|(n, _)| is(n, "max-forwards") && !is_hop(n, &named));
        let zero = values.any(|(_, v)| hop_count(v) == Some(0));
        if (hops && zero) != request.wire.is_none() {
            let all = (request.fields.iter()).filter(|(n, _)| is(n, "max-forwards"));
            let all: Vec<_> = all.map(|(_, v)| String::from_utf8_lossy(v)).collect();
            return Err(format!(
                "{} with Max-Forwards {all:?}: sent on: {}",
                request.method,
                request.wire.is_some()
            ));
        }
        let Some(wire) = &request.wire else {
            reached.mark("answered as the final recipient");
            continue;
        };
        // The server read it, so its target is one the proxy must pass on.
        let wire = wire
            .as_ref()
            .map_err(|e| format!("{} {} not sent on: {e}", request.method, request.target))?;
        check_forwarded(request, wire, peer.map(|p| p.ip()), trust, reached)
            .map_err(|e| format!("{e}\nsent on as {:?}", String::from_utf8_lossy(wire)))?;
    }
    Ok(())
}

/// The target in origin form (RFC 9112 §3.2.1), or `*` for OPTIONS to an
/// absolute URI without path or query (§3.2.4).
fn origin_form(method: &str, target: &str) -> String {
    let Some((_, rest)) = target
        .split_once("://")
        .filter(|_| !target.starts_with('/'))
    else {
        return target.to_string();
    };
    match rest.find(['/', '?']).map(|at| &rest[at..]) {
        None if method == "OPTIONS" => "*".to_string(),
        None => "/".to_string(),
        Some(query) if query.starts_with('?') => format!("/{query}"),
        Some(path) => path.to_string(),
    }
}

/// The authority of an absolute target, without userinfo.
fn authority(target: &str) -> Option<&str> {
    let (_, rest) = target
        .split_once("://")
        .filter(|_| !target.starts_with('/'))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(
        rest[..end]
            .rsplit_once('@')
            .map_or(&rest[..end], |(_, host)| host),
    )
}

fn check_forwarded(
    came: &Forwarded,
    wire: &[u8],
    peer: Option<IpAddr>,
    trust: bool,
    reached: &mut Reached,
) -> Result<(), String> {
    let limits = Limits {
        max_headers: MAX_HEADERS,
        ..Limits::default()
    };
    let now = Instant::now();
    let mut server = Handler::new(limits, now);
    let mut recorder = Recorder(Vec::new());
    server.receive(wire, now, &mut recorder);
    server.receive_eof(now, &mut recorder);
    let [(method, target, sent)] = &recorder.0[..] else {
        return Err(format!("read upstream as {} requests", recorder.0.len()));
    };
    let expected = origin_form(&came.method, &came.target);
    if method != &came.method || target != &expected {
        return Err(format!("{method} {target} sent for {expected}"));
    }
    if target != &came.target {
        reached.mark(match target.as_str() {
            "*" => "a request about the server",
            _ => "an absolute target",
        });
    }
    let named = named_by_connection(&came.fields);
    let count = |name: &str| sent.iter().filter(|(n, _)| is(n, name)).count();
    let value = |name: &str| sent.iter().find(|(n, _)| is(n, name)).map(|(_, v)| &v[..]);
    for (name, _) in sent {
        if HOP.iter().any(|h| is(name, h)) || is(name, "expect") {
            return Err(format!("{name} sent on"));
        }
        let own = WRITTEN.iter().any(|w| is(name, w));
        if !own && named.iter().any(|n| is(name, n)) {
            return Err(format!("{name} sent on, which Connection names"));
        }
        if !trust && is_claim(name) {
            return Err(format!("the claim {name} sent on, untrusted"));
        }
        if name.contains('_') && !(trust && is_claim(name)) {
            return Err(format!("{name} sent on, with an underscore"));
        }
    }
    if count("host") != 1 || value("host") != Some(b"127.0.0.1:9000") {
        return Err("Host is not the upstream's, once".into());
    }
    if count("content-length") > 1 || value("content-length").is_some_and(|v| v != b"0") {
        return Err("a Content-Length for no body".into());
    }
    for (name, one) in [("via", true), ("x-forwarded-proto", true)]
        .into_iter()
        .chain(["x-forwarded-for", "x-forwarded-host"].map(|n| (n, false)))
    {
        if count(name) > 1 || (one && count(name) == 0) {
            return Err(format!("{} {name} fields", count(name)));
        }
    }
    // Via: the entries that came (not for the hop alone), then the proxy's.
    let came_via = list(&came.fields, "via", &named);
    if !came_via.is_empty() {
        reached.mark("a Via chain");
    }
    if value("via") != Some(&with_own(came_via, came.version)[..]) {
        return Err("Via is not the chain that came and the proxy's own".into());
    }
    // X-Forwarded-For: the client, after the chain that came when trusted.
    let client = peer.map(|ip| ip.to_canonical().to_string().into_bytes());
    let chain = list(&came.fields, "x-forwarded-for", &named);
    let forwarded_for = match (trust, chain.is_empty(), client) {
        (true, false, Some(client)) => {
            reached.mark("a chain appended to");
            Some([chain, b", ".to_vec(), client].concat())
        }
        (true, false, None) => Some(chain),
        (_, _, client) => client,
    };
    if value("x-forwarded-for") != forwarded_for.as_deref() {
        return Err("X-Forwarded-For is not the client's address (after the chain trusted)".into());
    }
    let trusted = |name| first(&came.fields, name, &named).filter(|_| trust);
    let proto = trusted("x-forwarded-proto").unwrap_or(b"http");
    if value("x-forwarded-proto") != Some(proto) {
        return Err("X-Forwarded-Proto is not http (or the one trusted)".into());
    }
    // An empty host names none, trusted or asked for.
    let asked = authority(&came.target).map(str::as_bytes);
    let asked = asked.or_else(|| first(&came.fields, "host", &[]));
    let trusted_host = trusted("x-forwarded-host").filter(|h| !h.is_empty());
    let host = trusted_host.or(asked).filter(|h| !h.is_empty());
    if value("x-forwarded-host") != host {
        return Err("X-Forwarded-Host is not the host asked for (or the one trusted)".into());
    }
    let counted = check_max_forwards(came, sent, &named, reached)?;
    // The rest as it came, in its order.
    let passes = |name: &str| {
        !WRITTEN.iter().any(|w| is(name, w))
            && !is_hop(name, &named)
            && !is(name, "max-forwards")
            && match is_claim(name) {
                true => trust,
                false => !name.contains('_'),
            }
    };
    let kept = |fields: &Fields| -> Fields {
        let rest = fields.iter().filter(|(n, _)| passes(n));
        rest.cloned().collect()
    };
    if kept(sent) != kept(&came.fields) {
        return Err("the end-to-end fields did not go on as they came".into());
    }
    // Each Max-Forwards where it came among them; counted, the one in the
    // place of the first.
    let places = |fields: &Fields| -> Vec<usize> {
        let mut before = 0;
        let mut places = Vec::new();
        for (name, _) in fields {
            match is(name, "max-forwards") {
                true => places.push(before),
                false => before += usize::from(passes(name)),
            }
        }
        places
    };
    let mut expected = places(&came.fields);
    if counted {
        expected.truncate(1);
    }
    if !is_hop("max-forwards", &named) && places(sent) != expected {
        return Err(format!(
            "Max-Forwards went on at {:?}, not {expected:?}",
            places(sent)
        ));
    }
    let dropped = |why: &dyn Fn(&str) -> bool| came.fields.iter().any(|(n, _)| why(n));
    if dropped(&|n| named.iter().any(|m| is(n, m)) && !HOP.iter().any(|h| is(n, h))) {
        reached.mark("a field Connection names dropped");
    }
    if dropped(&|n| is_claim(n) && !is_hop(n, &named)) {
        reached.mark(match trust {
            true => "a claim passed, trusted",
            false => "a claim dropped",
        });
    }
    reached.mark(match trust {
        true => "forwarded, trusted",
        false => "forwarded",
    });
    Ok(())
}

/// A `Max-Forwards` value: a number (past u64, u64::MAX), or the least of
/// the numbers in a list (other elements skipped, as lines that are not
/// numbers are); `None` if there is none.
fn hop_count(value: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(value);
    let numbers = (text.split(','))
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    let count = |e: &str| e.parse::<u64>().unwrap_or(u64::MAX);
    numbers.map(count).min()
}

/// `Max-Forwards` on OPTIONS and TRACE with a valid value (on any of its
/// fields) goes on as one field, the least value counted down; otherwise
/// each goes on as it came; one that `Connection` names stops here.
/// Whether it went on counted, as one field.
fn check_max_forwards(
    came: &Forwarded,
    sent: &Fields,
    named: &[String],
    reached: &mut Reached,
) -> Result<bool, String> {
    let counts = matches!(came.method.as_str(), "OPTIONS" | "TRACE");
    let values = |fields: &Fields| -> Vec<Vec<u8>> {
        let values = fields.iter().filter(|(n, _)| is(n, "max-forwards"));
        values.map(|(_, v)| v.clone()).collect()
    };
    let came_values = values(&came.fields);
    let least = came_values.iter().filter_map(|v| hop_count(v)).min();
    let expected: Vec<Vec<u8>> = match (is_hop("max-forwards", named), least) {
        (true, _) => Vec::new(),
        (false, Some(n)) if counts => vec![n.saturating_sub(1).to_string().into_bytes()],
        (false, _) => came_values.clone(),
    };
    if values(sent) != expected {
        return Err(format!(
            "Max-Forwards {:?} sent for {:?}",
            values(sent),
            values(&came.fields)
        ));
    }
    let counted = counts && least.is_some() && !expected.is_empty();
    if counted {
        reached.mark("Max-Forwards counted down");
        if came_values.len() > 1 {
            reached.mark("Max-Forwards sent twice goes on as one");
        }
    }
    Ok(counted)
}

fn check_response(input: &[u8], to_head: bool, reached: &mut Reached) -> Result<(), String> {
    let mut parser = ResponseParser::new(to_head);
    let parsed = match parser.feed(input) {
        Ok(Some(response)) => response,
        Ok(None) => match parser.finish() {
            Ok(response) => response,
            Err(_) => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    // The library's reading, and the proxy's refusal that rests on it.
    let parsed_coding = parsed.undecoded_coding().map(<[u8]>::to_vec);
    let refused = forwarded::unpassable(&parsed, to_head).is_some();
    let code = parsed.status.as_u16();
    let bodiless = to_head || code < 200 || code == 204 || code == 304;
    let ParsedResponse {
        version, headers, ..
    } = parsed;
    let came = headers.clone();
    let named = named_by_connection(&came);
    let (kept, via) = forwarded::response_fields(headers, version);
    let expected: Fields = (came.iter())
        .filter(|(n, _)| !is_hop(n, &named) && !is(n, "content-length") && !is(n, "via"))
        .cloned()
        .collect();
    if kept != expected {
        return Err(format!("response fields {kept:?} passed on for {came:?}"));
    }
    let came_via = list(&came, "via", &named);
    if !came_via.is_empty() {
        reached.mark("a response's Via chain");
    }
    if via[..] != with_own(came_via, version)[..] {
        return Err(format!("response Via {:?}", String::from_utf8_lossy(&via)));
    }
    if came
        .iter()
        .any(|(n, _)| named.iter().any(|m| is(n, m)) && !HOP.iter().any(|h| is(n, h)))
    {
        reached.mark("a response field Connection names dropped");
    }
    // A transfer coding other than chunked is one the proxy cannot pass on.
    let codings = came.iter().filter(|(n, _)| is(n, "transfer-encoding"));
    let foreign = (codings.flat_map(|(_, v)| v.split(|&b| b == b',')))
        .map(<[u8]>::trim_ascii)
        .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"));
    let foreign = foreign.map(|c| String::from_utf8_lossy(c).into_owned());
    let undecoded = parsed_coding.map(|c| String::from_utf8_lossy(&c).into_owned());
    if undecoded != foreign {
        return Err(format!("foreign coding {foreign:?} not found"));
    }
    // Only a body can be coded: a bodiless answer goes on without it. A
    // status past 599 is refused whatever comes with it.
    if refused != (code > 599 || (foreign.is_some() && !bodiless)) {
        return Err(format!(
            "coding {foreign:?} of a {code} answer (to HEAD: {to_head}) refused: {refused}"
        ));
    }
    match (code > 599, foreign.is_some(), bodiless) {
        (true, ..) => reached.mark("a status past 599 refused"),
        (_, true, false) => reached.mark("a foreign transfer coding refused"),
        (_, true, true) => reached.mark("a foreign coding without a body passed"),
        _ => {}
    }
    reached.mark("a response passed on");
    Ok(())
}
