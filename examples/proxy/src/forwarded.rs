//! What the proxy changes in the messages it passes on (RFC 9110 §7.6):
//! hop-by-hop fields go both ways, `Via` is added both ways, and the
//! upstream learns who asked through `X-Forwarded-For`, `-Proto` and
//! `-Host`. Decisions, where the RFCs leave a choice:
//!
//! - `Host` is the upstream's own authority, as nginx's default
//!   (`proxy_set_header Host $proxy_host`); the client's goes in
//!   `X-Forwarded-Host`.
//! - `Expect` is not passed on: the proxy answers `100 Continue` itself when
//!   it starts reading the body, as nginx does.
//! - Incoming `X-Forwarded-*` fields are dropped unless the proxy is told to
//!   trust them (`--trust-forwarded`): then the client's address is appended
//!   to the incoming `X-Forwarded-For` chain, and the incoming `-Proto` and
//!   `-Host` are kept. A client could otherwise claim any address.

use edgepoll::http::{same_name, HopByHop};
use edgepoll::ClientRequest;
use std::net::IpAddr;

/// How this proxy names itself in `Via` (RFC 9110 §7.6.3).
pub const VIA: &str = "1.1 edgepoll";

/// A field the proxy writes itself, or that the framing of the outgoing
/// message decides: never copied as it came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewritten {
    Host,
    Framing,
    Via,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
}

impl Rewritten {
    fn of(name: &str) -> Option<Rewritten> {
        // The length picks the one name to compare with.
        let (known, field) = match name.len() {
            3 => ("via", Rewritten::Via),
            4 => ("host", Rewritten::Host),
            6 => ("expect", Rewritten::Framing),
            14 => ("content-length", Rewritten::Framing),
            15 => ("x-forwarded-for", Rewritten::ForwardedFor),
            16 => ("x-forwarded-host", Rewritten::ForwardedHost),
            17 => ("x-forwarded-proto", Rewritten::ForwardedProto),
            _ => return None,
        };
        same_name(name, known).then_some(field)
    }
}

/// Copies the request's end-to-end fields to `upstream` and adds the
/// proxy's own: one pass for the `Connection` fields (which name more to
/// drop), one to copy and collect the rest.
pub fn request_fields<'a>(
    mut upstream: ClientRequest,
    fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    peer: Option<IpAddr>,
    trust_forwarded: bool,
) -> ClientRequest {
    let hop = HopByHop::new(fields.clone());
    let (mut via, mut chain) = (Vec::new(), Vec::new());
    let (mut host, mut proto, mut forwarded_host) = (None, None, None);
    for (name, value) in fields {
        match Rewritten::of(name) {
            None if hop.contains(name) => {}
            None => upstream = upstream.header_bytes(name, value),
            Some(Rewritten::Host) => _ = host.get_or_insert(value),
            Some(Rewritten::Framing) => {}
            Some(Rewritten::Via) => append_item(&mut via, value),
            Some(Rewritten::ForwardedFor) => append_item(&mut chain, value),
            Some(Rewritten::ForwardedProto) => _ = proto.get_or_insert(value),
            Some(Rewritten::ForwardedHost) => _ = forwarded_host.get_or_insert(value),
        }
    }
    upstream = upstream.header_bytes("Via", &with_via(via));
    let peer = peer.map(ip_text).unwrap_or_default();
    let forwarded_for = match (trust_forwarded, chain.is_empty()) {
        (true, false) => [chain.as_slice(), b", ", &peer].concat(),
        _ => peer,
    };
    if !forwarded_for.is_empty() {
        upstream = upstream.header_bytes("X-Forwarded-For", &forwarded_for);
    }
    let proto = proto.filter(|_| trust_forwarded);
    upstream = upstream.header_bytes("X-Forwarded-Proto", proto.unwrap_or(b"http"));
    if let Some(host) = forwarded_host.filter(|_| trust_forwarded).or(host) {
        upstream = upstream.header_bytes("X-Forwarded-Host", host);
    }
    upstream
}

/// The fields of an upstream's response to pass on to the client, and the
/// value of the `Via` to add after them; `Content-Length` is left to the
/// framing of the response. The fields kept are moved, not copied.
pub fn response_fields(mut fields: Vec<(String, Vec<u8>)>) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let pairs = || fields.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    let via = with_via(joined(pairs(), "via"));
    // Only a `Connection` field names more fields to drop; without one (the
    // usual case) each field's own name decides.
    if !pairs().any(|(name, _)| same_name(name, "connection")) {
        let none = HopByHop::default();
        fields.retain(|(name, _)| end_to_end(&none, name));
        return (fields, via);
    }
    let kept: Vec<bool> = {
        let hop = HopByHop::new(pairs());
        fields
            .iter()
            .map(|(name, _)| end_to_end(&hop, name))
            .collect()
    };
    let mut kept = kept.into_iter();
    fields.retain(|_| kept.next().unwrap_or(false));
    (fields, via)
}

/// Whether a response field goes on to the client as it came.
fn end_to_end(hop: &HopByHop, name: &str) -> bool {
    !hop.contains(name) && !same_name(name, "content-length") && !same_name(name, "via")
}

/// An address as text. IPv4, every request's case here, without the
/// formatting machinery, which costs several times as much in a guest.
fn ip_text(ip: IpAddr) -> Vec<u8> {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string().into_bytes();
    };
    let mut out = Vec::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
    out
}

/// Every value of the field `name`, joined with ", " (RFC 9110 §5.3).
fn joined<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, value) in fields.filter(|(n, _)| same_name(n, name)) {
        append_item(&mut out, value);
    }
    out
}

/// Appends one more value of a list field (RFC 9110 §5.3).
fn append_item(list: &mut Vec<u8>, value: &[u8]) {
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(value.trim_ascii());
}

fn with_via(mut earlier: Vec<u8>) -> Vec<u8> {
    if !earlier.is_empty() {
        earlier.extend_from_slice(b", ");
    }
    earlier.extend_from_slice(VIA.as_bytes());
    earlier
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepoll::Url;

    fn forwarded(fields: &[(&str, &[u8])], trust: bool) -> Vec<(String, String)> {
        let base = Url::parse("http://127.0.0.1:9000").unwrap();
        let request = ClientRequest::to_origin("GET", &base, "/").unwrap();
        let peer = Some("10.0.0.7".parse().unwrap());
        request_fields(request, fields.iter().copied(), peer, trust)
            .headers()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    fn value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn hop_by_hop_and_named_fields_stay_behind_and_the_rest_goes_in_order() {
        let sent = forwarded(
            &[
                ("Host", b"example.test"),
                ("Connection", b"keep-alive, X-Private"),
                ("X-Private", b"secret"),
                ("Keep-Alive", b"timeout=5"),
                ("TE", b"trailers"),
                ("Proxy-Connection", b"keep-alive"),
                ("Upgrade", b"h2c"),
                ("Trailer", b"X-Sum"),
                ("Expect", b"100-continue"),
                ("Accept", b"*/*"),
                ("X-Bytes", b"caf\xe9"),
            ],
            false,
        );
        let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Accept",
                "X-Bytes",
                "Via",
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "X-Forwarded-Host"
            ]
        );
        assert_eq!(value(&sent, "via"), Some(VIA));
        assert_eq!(value(&sent, "x-forwarded-for"), Some("10.0.0.7"));
        assert_eq!(value(&sent, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&sent, "x-forwarded-host"), Some("example.test"));
    }

    #[test]
    fn a_claimed_chain_is_replaced_unless_trusted_and_via_is_appended() {
        let incoming: &[(&str, &[u8])] = &[
            ("Host", b"inner.test"),
            ("Via", b"1.0 first"),
            ("Via", b"1.1 second"),
            ("X-Forwarded-For", b"1.2.3.4"),
            ("X-Forwarded-Proto", b"https"),
            ("X-Forwarded-Host", b"outer.test"),
        ];
        let untrusted = forwarded(incoming, false);
        assert_eq!(value(&untrusted, "x-forwarded-for"), Some("10.0.0.7"));
        assert_eq!(value(&untrusted, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&untrusted, "x-forwarded-host"), Some("inner.test"));
        assert_eq!(
            value(&untrusted, "via"),
            Some("1.0 first, 1.1 second, 1.1 edgepoll")
        );
        let trusted = forwarded(incoming, true);
        assert_eq!(
            value(&trusted, "x-forwarded-for"),
            Some("1.2.3.4, 10.0.0.7")
        );
        assert_eq!(value(&trusted, "x-forwarded-proto"), Some("https"));
        assert_eq!(value(&trusted, "x-forwarded-host"), Some("outer.test"));
    }

    #[test]
    fn addresses_read_as_the_formatter_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.9.255",
            "100.10.1.0",
            "255.255.255.255",
            "::1",
            "fe80::1:2",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string().into_bytes(), "{ip}");
        }
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, n / 2, n / 10, 255 - n]);
            assert_eq!(ip_text(ip), ip.to_string().into_bytes(), "{ip}");
        }
    }

    #[test]
    fn a_response_loses_its_hop_by_hop_fields_and_length_and_gains_via() {
        let fields: Vec<(String, Vec<u8>)> = [
            ("Content-Type", "text/plain"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("Via", "1.1 origin"),
            ("Set-Cookie", "a=1"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        let (kept, via) = response_fields(fields.clone());
        let shown: Vec<(&str, &[u8])> = kept
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            shown,
            [("Content-Type", &b"text/plain"[..]), ("Set-Cookie", b"a=1")]
        );
        assert_eq!(via, b"1.1 origin, 1.1 edgepoll");
        // Without a Connection field, only the listed ones and the length go.
        let plain: Vec<(String, Vec<u8>)> = fields
            .into_iter()
            .filter(|(n, _)| n != "Connection")
            .collect();
        let (kept, _) = response_fields(plain);
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Content-Type", "X-Hop", "Set-Cookie"]);
    }
}
