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
//!   `-Host` are kept. A client could otherwise claim any address. For the
//!   same reason `Forwarded` (RFC 7239), `X-Real-IP` and every other
//!   `X-Forwarded-*` (`-Port`, `-Ssl`, `-Scheme`, `-Prefix`: frameworks read
//!   them as the scheme, port or path the client used), which the proxy
//!   does not write, pass only when trusted; so do the address claims CDNs
//!   and load balancers write (`Client-IP`, `True-Client-IP`, `X-Client-IP`,
//!   `X-Cluster-Client-IP`, `CF-Connecting-IP`, `Fastly-Client-IP`: PHP
//!   reads `HTTP_CLIENT_IP` before `X-Forwarded-For`) and the scheme claims
//!   `Front-End-Https` and `X-Url-Scheme`.
//! - A field that `Connection` names is dropped even if the proxy would
//!   otherwise read it (`Via`, `X-Forwarded-*`, `Max-Forwards`); the
//!   framing fields, which the proxy writes itself, are not read from the
//!   copy anyway. `Host` is read all the same (as `X-Forwarded-Host`): it
//!   names what was asked for (RFC 9112 §3.2), which no `Connection` takes
//!   back; and a `Via` that shows this proxy is a loop (508) all the same.
//! - `Max-Forwards` on TRACE and OPTIONS counts down as RFC 9110 §7.6.2 says
//!   (at 0 the proxy answers itself: see [`max_forwards`]); on other methods
//!   it passes as it came.
//! - A response with a transfer coding other than chunked (`gzip`, say) is
//!   answered 502, as nginx does: `Transfer-Encoding` is hop-by-hop, so
//!   passing on the bytes without it would hand the client a body encoded
//!   in a way nothing tells it of
//!   ([`ParsedResponse::undecoded_coding`](edgepoll::http::ParsedResponse::undecoded_coding)).
//! - A response whose status is past 599 is answered 502 too: RFC 9110
//!   §15 calls such a status invalid, and says a recipient should take it
//!   as a 5xx; passed on, it would leave that to every client (edgepoll's
//!   own parser takes 100 to 999, as the status line's three digits allow).

use edgepoll::http::{list_elements, same_name, HopByHop, ParsedResponse, Request, Version};
use edgepoll::{ClientRequest, RequestError, Url};
use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::sync::OnceLock;

/// How this proxy names itself in `Via` (RFC 9110 §7.6.3): after the
/// version of the message it received with `version`, its [`own_name`].
pub fn via_entry(version: Version) -> &'static str {
    let [http10, http11] = via_entries();
    match version {
        Version::Http10 => http10,
        Version::Http11 => http11,
    }
}

/// The pseudonym this proxy gives itself in `Via`: `edgepoll-` and eight
/// hex digits drawn once per process (at start: the proxy shows it). A
/// name of its own, not the product's, so that a request that comes back
/// to it is known
/// ([`came_back`]): a loop of proxies (an upstream that is this proxy under
/// another name or address, or another proxy whose upstream is this one)
/// would otherwise go round and round, holding two more connections at each
/// turn, until the client's wait for an answer ran out. Two proxies in one
/// chain draw the same name about once in four billion (32 bits); then the
/// second answers 508 to every request the first passes on.
pub fn own_name() -> &'static str {
    // "1.1 " comes first.
    &via_entries()[1][4..]
}

fn via_entries() -> &'static [String; 2] {
    static ENTRIES: OnceLock<[String; 2]> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        // Drawn on its own, not from std's hash keys: a name shown to every
        // client could give their one `random_get` away under WasmEdge (see
        // `edgepoll::entropy`).
        // Should the system's source fail, a name that is only less likely
        // to be unique is better than no proxy.
        let mut drawn = [0u8; 4];
        let _ = edgepoll::entropy::fill(&mut drawn);
        let name = format!("edgepoll-{:08x}", u32::from_le_bytes(drawn));
        [format!("1.0 {name}"), format!("1.1 {name}")]
    })
}

/// Whether a request's `Via` (any field of that name) names this proxy
/// ([`own_name`]) as one that received it: it was here before, so passing
/// it on again would go round a loop. A client can only make its own
/// request fail so.
pub fn came_back<'a>(mut fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> bool {
    let own = own_name().as_bytes();
    fields.any(|(name, value)| same_name(name, "via") && received_by(value, own))
}

/// Whether a `Via` value has an entry received by `by`. Each entry is
/// `received-protocol RWS received-by [ RWS comment ]` (RFC 9110 §7.6.3):
/// `by` must be its second word. Entries part at commas outside comments;
/// a comment (`(...)`, which may nest, hold commas and quote a byte with
/// `\`) is no word, and one left open runs to the end.
fn received_by(value: &[u8], by: &[u8]) -> bool {
    let (mut depth, mut quoted) = (0u32, false);
    // The words of the entry so far, and where the one under way began.
    let (mut words, mut word) = (0, None);
    for (i, &b) in value.iter().enumerate() {
        if depth > 0 {
            match b {
                _ if quoted => quoted = false,
                b'\\' => quoted = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        if !matches!(b, b' ' | b'\t' | b',' | b'(') {
            word = word.or(Some(i));
            continue;
        }
        if let Some(start) = word.take() {
            words += 1;
            if words == 2 && value[start..i].eq_ignore_ascii_case(by) {
                return true;
            }
        }
        match b {
            b',' => words = 0,
            b'(' => depth = 1,
            _ => {}
        }
    }
    word.is_some_and(|start| words == 1 && value[start..].eq_ignore_ascii_case(by))
}

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
    MaxForwards,
    /// Another claim of who asked, or how (`Forwarded`, `X-Real-IP`, any
    /// other `X-Forwarded-*`, those of `OTHER_CLAIMS`).
    Claimed,
}

/// Claims of the client's address or scheme that others write, besides
/// `Client-IP` (compared with the other nine-byte names in
/// `Rewritten::of`): passed only when trusted.
const OTHER_CLAIMS: [&str; 7] = [
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "front-end-https",
    "x-url-scheme",
];

impl Rewritten {
    fn of(name: &str) -> Option<Rewritten> {
        // The length picks the one name to compare with.
        let (known, field) = match name.len() {
            3 => ("via", Rewritten::Via),
            4 => ("host", Rewritten::Host),
            6 => ("expect", Rewritten::Framing),
            9 => {
                let claimed = same_name(name, "forwarded")
                    || same_name(name, "x-real-ip")
                    || same_name(name, "client-ip");
                return claimed.then_some(Rewritten::Claimed);
            }
            12 => ("max-forwards", Rewritten::MaxForwards),
            14 => ("content-length", Rewritten::Framing),
            15 => ("x-forwarded-for", Rewritten::ForwardedFor),
            16 => ("x-forwarded-host", Rewritten::ForwardedHost),
            17 => ("x-forwarded-proto", Rewritten::ForwardedProto),
            _ => return Rewritten::other_forwarded(name),
        };
        match same_name(name, known) {
            true => Some(field),
            false => Rewritten::other_forwarded(name),
        }
    }

    /// Any other `X-Forwarded-*` field, or another claim.
    fn other_forwarded(name: &str) -> Option<Rewritten> {
        let forwarded = (name.as_bytes().get(..12))
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-forwarded-"));
        let claimed = forwarded || OTHER_CLAIMS.iter().any(|claim| same_name(name, claim));
        claimed.then_some(Rewritten::Claimed)
    }
}

/// What the proxy knows of a request besides its fields.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// The authority of a target in absolute form, which stands for the
    /// host asked for in place of `Host` (RFC 9112 §3.2.2).
    pub authority: Option<&'a str>,
    /// The version the request came with, for `Via`.
    pub version: Version,
    /// A TRACE or OPTIONS request, whose `Max-Forwards` counts down.
    pub counts_hops: bool,
    /// Whether incoming `X-Forwarded-*` fields are believed.
    pub trust_forwarded: bool,
}

/// What the proxy sends upstream for one request, read once and used for
/// each upstream it tries: the target and what [`request_fields`] needs.
pub struct Forwarding<'a> {
    /// In origin form, or `*` for a request about the server as a whole.
    target: Cow<'a, str>,
    incoming: Incoming<'a>,
}

impl<'a> Forwarding<'a> {
    pub fn of(request: &Request<'a>, trust_forwarded: bool) -> Forwarding<'a> {
        let method = request.method();
        let target = match asks_about_the_server(method, request.target()) {
            true => "*".into(),
            false => request.origin_form(),
        };
        let incoming = Incoming {
            peer: request.peer_addr().map(|a| a.ip()),
            // The absolute form's authority stands for `Host` (RFC 9112
            // §3.2.2): it is the host asked for.
            authority: match target.len() == request.target().len() {
                true => None,
                false => request.host(),
            },
            version: request.version(),
            counts_hops: counts_hops(method),
            trust_forwarded,
        };
        Forwarding { target, incoming }
    }

    /// The request to `base` (an upstream's origin) with the fields of
    /// `request`, the one this was made `of`; its body is the caller's.
    pub fn request(
        &self,
        request: &Request<'a>,
        base: &Url,
    ) -> Result<ClientRequest, RequestError> {
        let upstream = ClientRequest::to_origin(request.method(), base, &self.target)?;
        Ok(request_fields(upstream, request.headers(), self.incoming))
    }
}

/// Copies the request's end-to-end fields to `upstream` and adds the
/// proxy's own: one pass for the `Connection` fields (which name more to
/// drop), one to copy and collect the rest.
pub fn request_fields<'a>(
    mut upstream: ClientRequest,
    fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    incoming: Incoming<'a>,
) -> ClientRequest {
    let hop = HopByHop::new(fields.clone());
    let (mut via, mut chain) = (Vec::new(), Vec::new());
    let (mut host, mut proto, mut forwarded_host) = (None, None, None);
    // A TRACE or OPTIONS with a valid `Max-Forwards` (rare: looked for only then).
    let mut hops = incoming
        .counts_hops
        .then(|| fewest_hops(fields.clone()))
        .flatten();
    let counted = hops.is_some();
    for (name, value) in fields {
        match Rewritten::of(name) {
            Some(Rewritten::Host) => _ = host.get_or_insert(value),
            Some(Rewritten::Framing) => {}
            _ if hop.contains(name) => {}
            // As nginx (`underscores_in_headers off`): CGI-style frameworks
            // read `X_Forwarded_For` as `X-Forwarded-For`, so a claim
            // spelt so would pass the rewriting above.
            None if name.contains('_') => {}
            None => upstream.append_header_bytes(name, value),
            Some(Rewritten::Via) => append_item(&mut via, value),
            Some(Rewritten::ForwardedFor) => append_item(&mut chain, value),
            Some(Rewritten::ForwardedProto) => _ = proto.get_or_insert(value),
            Some(Rewritten::ForwardedHost) => _ = forwarded_host.get_or_insert(value),
            Some(Rewritten::Claimed) if incoming.trust_forwarded => {
                upstream.append_header_bytes(name, value)
            }
            Some(Rewritten::Claimed) => {}
            // Counted, it goes on as one field, in the place of the first
            // (RFC 9110 §7.6.2: the intermediary generates an updated one).
            Some(Rewritten::MaxForwards) => match hops.take() {
                Some(n) => upstream.append_header_bytes(name, &decimal(n.saturating_sub(1))),
                None if counted => {}
                None => upstream.append_header_bytes(name, value),
            },
        }
    }
    upstream.append_header_bytes("Via", &with_via(via, incoming.version));
    let peer = incoming.peer.map(IpText::new);
    let peer = peer.as_ref().map_or(&b""[..], IpText::as_bytes);
    let trust = incoming.trust_forwarded;
    let forwarded_for = match (trust, chain.is_empty(), peer.is_empty()) {
        (true, false, false) => Cow::Owned([chain.as_slice(), b", ", peer].concat()),
        (true, false, true) => Cow::Owned(chain),
        _ => Cow::Borrowed(peer),
    };
    if !forwarded_for.is_empty() {
        upstream.append_header_bytes("X-Forwarded-For", &forwarded_for);
    }
    let proto = proto.filter(|_| trust);
    upstream.append_header_bytes("X-Forwarded-Proto", proto.unwrap_or(b"http"));
    let asked = incoming.authority.map(str::as_bytes).or(host);
    // An empty Host (a request whose target names no authority: RFC 9112
    // §3.2) names no host to pass on.
    let named = forwarded_host.filter(|host| trust && !host.is_empty());
    if let Some(host) = named.or(asked).filter(|host| !host.is_empty()) {
        upstream.append_header_bytes("X-Forwarded-Host", host);
    }
    upstream
}

/// The `Max-Forwards` of a TRACE or OPTIONS request (`method`), when it has
/// a valid one: 0 means the request goes no further and the proxy answers
/// it as its final recipient (RFC 9110 §7.6.2). The field is a singleton;
/// sent more than once, on lines of its own or as a list on one (RFC 9110
/// §5.3), the smallest value counts, and the request goes on with that
/// one alone, counted down (see [`request_fields`]).
pub fn max_forwards<'a>(
    method: &str,
    fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Option<u64> {
    if !counts_hops(method) {
        return None;
    }
    // One that `Connection` names was only for the hop it came over.
    if HopByHop::new(fields.clone()).contains("max-forwards") {
        return None;
    }
    fewest_hops(fields)
}

/// The smallest valid `Max-Forwards` among `fields`.
fn fewest_hops<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<u64> {
    fields
        .filter(|(name, _)| same_name(name, "max-forwards"))
        .filter_map(|(_, value)| hops_left(value))
        .min()
}

/// Whether `method` is one whose `Max-Forwards` an intermediary counts.
pub fn counts_hops(method: &str) -> bool {
    matches!(method, "TRACE" | "OPTIONS")
}

/// A `Max-Forwards` value (`1*DIGIT`, saturating at `u64::MAX`), or the
/// smallest of a list of them: a line an earlier hop joined from several
/// (RFC 9110 §5.3) reads as those lines would, each element that is not a
/// number skipped as such a line is. `None` if no element is a number.
fn hops_left(value: &[u8]) -> Option<u64> {
    let mut least: Option<u64> = None;
    for digits in list_elements(value) {
        if !digits.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let n = digits.iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        least = Some(least.map_or(n, |least| least.min(n)));
    }
    least
}

fn decimal(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// Why the proxy answers an upstream's response 502 instead of passing it
/// on (see the module's decisions), if it does: a status past 599, or a
/// transfer coding other than chunked. Only a body could be coded: an
/// answer to HEAD (`to_head`), a 1xx, 204 or 304 has none, and goes on
/// without the hop-by-hop field.
pub fn unpassable(response: &ParsedResponse, to_head: bool) -> Option<String> {
    let code = response.status.as_u16();
    if code > 599 {
        return Some(format!("status {code}, outside 100-599"));
    }
    let bodiless = to_head || response.status.forbids_body();
    let coding = response.undecoded_coding().filter(|_| !bodiless)?;
    let coding = String::from_utf8_lossy(coding);
    Some(format!("response in transfer coding {coding:?}"))
}

/// Header fields as a parsed response holds them.
pub type Fields = Vec<(String, Vec<u8>)>;

/// The fields of an upstream's response to pass on to the client, and the
/// value of the `Via` to add after them; `Content-Length` is left to the
/// framing of the response. The fields kept are moved, not copied.
pub fn response_fields(mut fields: Fields, version: Version) -> (Fields, Cow<'static, [u8]>) {
    let pairs = || fields.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    // Only a `Connection` field names more fields to drop; without one (the
    // usual case) each field's own name decides.
    if !pairs().any(|(name, _)| same_name(name, "connection")) {
        let via = with_via(joined(pairs(), "via"), version);
        let none = HopByHop::default();
        fields.retain(|(name, _)| end_to_end(&none, name));
        return (fields, via);
    }
    let hop = HopByHop::new(pairs());
    let via = joined(pairs().filter(|(name, _)| !hop.contains(name)), "via");
    let via = with_via(via, version);
    let kept: Vec<bool> = fields
        .iter()
        .map(|(name, _)| end_to_end(&hop, name))
        .collect();
    let mut kept = kept.into_iter();
    fields.retain(|_| kept.next().unwrap_or(false));
    (fields, via)
}

/// Whether a response field goes on to the client as it came.
fn end_to_end(hop: &HopByHop, name: &str) -> bool {
    !hop.contains(name) && !same_name(name, "content-length") && !same_name(name, "via")
}

/// The `Via` to send on: the entries that came, and the proxy's own after
/// them; without any that came (the usual case) the proxy's own alone,
/// which needs no buffer.
fn with_via(came: Vec<u8>, version: Version) -> Cow<'static, [u8]> {
    let own = via_entry(version).as_bytes();
    if came.is_empty() {
        return Cow::Borrowed(own);
    }
    let mut via = came;
    append_item(&mut via, own);
    Cow::Owned(via)
}

/// An address as text, held on the stack: the longest (an IPv4-mapped IPv6
/// address) is 45 bytes.
struct IpText {
    bytes: [u8; 45],
    len: usize,
}

impl IpText {
    /// IPv4, every request's case here, without the formatting machinery,
    /// which costs several times as much in a guest.
    fn new(ip: IpAddr) -> IpText {
        // An IPv4 client of a dual-stack listener comes as `::ffff:a.b.c.d`:
        // named as the IPv4 address it is, as an IPv4 listener names it.
        let ip = ip.to_canonical();
        let mut text = IpText {
            bytes: [0; 45],
            len: 0,
        };
        let IpAddr::V4(v4) = ip else {
            let mut rest = &mut text.bytes[..];
            // Fits: no IPv6 address is longer as text.
            let _ = write!(rest, "{ip}");
            text.len = 45 - rest.len();
            return text;
        };
        let mut push = |b: u8| {
            text.bytes[text.len] = b;
            text.len += 1;
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                push(b'.');
            }
            if octet >= 100 {
                push(b'0' + octet / 100);
            }
            if octet >= 10 {
                push(b'0' + octet / 10 % 10);
            }
            push(b'0' + octet % 10);
        }
        text
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Every value of the field `name`, joined with ", " (RFC 9110 §5.3).
fn joined<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, value) in fields.filter(|(n, _)| same_name(n, name)) {
        append_item(&mut out, value);
    }
    out
}

/// Appends one more value of a list field (RFC 9110 §5.3); an empty one
/// adds nothing (a recipient ignores empty list elements, §5.6.1, and a
/// sender makes none).
fn append_item(list: &mut Vec<u8>, value: &[u8]) {
    let value = value.trim_ascii();
    if value.is_empty() {
        return;
    }
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(value);
}

/// Whether an absolute target names the server as a whole: `OPTIONS` to
/// a URI with an empty path and no query, which the last proxy sends on as
/// `OPTIONS *` (RFC 9112 §3.2.4); in origin form it would ask about `/`.
pub fn asks_about_the_server(method: &str, target: &str) -> bool {
    // Not origin form (`/path?next=http://x` is a path and a query), and
    // nothing after the authority.
    method == "OPTIONS"
        && !target.starts_with('/')
        && target
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.contains(['/', '?']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with this proxy's name for `ME`.
    fn me(text: &str) -> String {
        text.replace("ME", own_name())
    }

    #[test]
    fn the_proxy_names_itself_the_same_way_in_every_via_and_knows_its_name_again() {
        let name = own_name();
        assert!(name.starts_with("edgepoll-") && name.len() == 17, "{name}");
        assert!(name[9..].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        assert_eq!(via_entry(Version::Http10), format!("1.0 {name}"));
        assert_eq!(via_entry(Version::Http11), format!("1.1 {name}"));
        let looped: [&[(&str, &str)]; 6] = [
            &[("Via", "1.1 ME")],
            &[("via", "1.0 a, HTTP/1.1 ME (edgepoll)")],
            &[("Via", "1.1 a"), ("VIA", ",,1.1\tME\t,1.1 b")],
            // The received-by is an entry's second word, wherever it is.
            &[("Via", "1.1 hop (ME) , 1.0 ME")],
            &[("Via", "1.1 hop, 1.1 ME, 1.1 ME")],
            &[("Via", "1.1 a (x, y (z, ME) \\) ,), 1.1 ME(again)")],
        ];
        let passed: [&[(&str, &str)]; 8] = [
            &[],
            &[("Via", "1.1 edgepoll")],
            &[("Via", "ME 1.1")],
            &[("Via", "1.1 ME0, 1.1 xME")],
            &[("X-Via", "1.1 ME")],
            // Commas in a comment part no entries.
            &[("Via", "1.1 gw (x, 1.1 ME y)")],
            &[("Via", "1.1 gw (a \\) , 1.1 ME)")],
            &[("Via", "1.1 gw (open, 1.1 ME")],
        ];
        for (fields, looping) in
            (looped.iter().map(|f| (f, true))).chain(passed.iter().map(|f| (f, false)))
        {
            let fields: Vec<(&str, String)> = fields.iter().map(|(n, v)| (*n, me(v))).collect();
            let pairs = fields.iter().map(|(n, v)| (*n, v.as_bytes()));
            assert_eq!(came_back(pairs), looping, "{fields:?}");
        }
        let shouted = me("1.1 ME").to_uppercase();
        assert!(came_back([("Via", shouted.as_bytes())].into_iter()));
    }

    /// Only an absolute target with nothing after its authority asks about
    /// the server as a whole; a path whose query holds a URI does not.
    /// (`/api?next=https://a.test`, a CORS preflight's, went on as `*`.)
    #[test]
    fn only_an_absolute_uri_without_path_or_query_asks_about_the_server() {
        for (target, whole) in [
            ("http://a.test", true),
            ("http://a.test:82", true),
            ("http://u@a.test", true),
            ("http://[::1]:8080", true),
            ("http://a.test/", false),
            ("http://a.test?q", false),
            ("/api?next=https://a.test", false),
            ("/go/http://a", false),
            ("*", false),
        ] {
            assert_eq!(asks_about_the_server("OPTIONS", target), whole, "{target}");
            assert!(!asks_about_the_server("GET", target), "{target}");
        }
    }

    fn incoming(trust_forwarded: bool) -> Incoming<'static> {
        Incoming {
            peer: Some("10.0.0.7".parse().unwrap()),
            authority: None,
            version: Version::Http11,
            counts_hops: false,
            trust_forwarded,
        }
    }

    /// A request whose `Max-Forwards` counts (an OPTIONS or a TRACE).
    fn counting() -> Incoming<'static> {
        Incoming {
            counts_hops: true,
            ..incoming(false)
        }
    }

    fn forwarded(fields: &[(&str, &[u8])], trust: bool) -> Vec<(String, String)> {
        forwarded_as(fields, incoming(trust))
    }

    fn forwarded_as(fields: &[(&str, &[u8])], incoming: Incoming) -> Vec<(String, String)> {
        let base = Url::parse("http://127.0.0.1:9000").unwrap();
        let request = ClientRequest::to_origin("GET", &base, "/").unwrap();
        request_fields(request, fields.iter().copied(), incoming)
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
        assert_eq!(value(&sent, "via"), Some(me("1.1 ME").as_str()));
        assert_eq!(value(&sent, "x-forwarded-for"), Some("10.0.0.7"));
        assert_eq!(value(&sent, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&sent, "x-forwarded-host"), Some("example.test"));
    }

    /// A request whose target names no authority has an empty Host (RFC
    /// 9112 §3.2): no host to pass on, so no `X-Forwarded-Host` (it went
    /// on empty).
    #[test]
    fn an_empty_host_is_no_forwarded_host() {
        let sent = forwarded(&[("Host", b"")], false);
        assert_eq!(value(&sent, "x-forwarded-host"), None);
        let sent = forwarded(&[("Host", b"a.test")], false);
        assert_eq!(value(&sent, "x-forwarded-host"), Some("a.test"));
        // A trusted but empty one names none either: the Host is passed on.
        let sent = forwarded(&[("Host", b"a.test"), ("X-Forwarded-Host", b"")], true);
        assert_eq!(value(&sent, "x-forwarded-host"), Some("a.test"));
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
            ("Forwarded", b"for=1.2.3.4;proto=https"),
            ("X-Real-IP", b"1.2.3.4"),
            ("X-Forwarded-Ssl", b"on"),
            ("x-forwarded-port", b"443"),
            ("X-Forwarded-Prefix", b"/admin"),
            ("X-Forwarded-", b"1"),
            ("Client-IP", b"1.2.3.4"),
            ("True-Client-IP", b"1.2.3.4"),
            ("X-Client-IP", b"1.2.3.4"),
            ("X-Cluster-Client-IP", b"1.2.3.4"),
            ("CF-Connecting-IP", b"1.2.3.4"),
            ("Fastly-Client-IP", b"1.2.3.4"),
            ("Front-End-Https", b"on"),
            ("X-Url-Scheme", b"https"),
        ];
        let untrusted = forwarded(incoming, false);
        assert_eq!(value(&untrusted, "forwarded"), None);
        assert_eq!(value(&untrusted, "x-real-ip"), None);
        for claim in [
            "x-forwarded-ssl",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-",
            "client-ip",
            "true-client-ip",
            "x-client-ip",
            "x-cluster-client-ip",
            "cf-connecting-ip",
            "fastly-client-ip",
            "front-end-https",
            "x-url-scheme",
        ] {
            assert_eq!(value(&untrusted, claim), None, "{claim}");
        }
        assert_eq!(value(&untrusted, "x-forwarded-for"), Some("10.0.0.7"));
        assert_eq!(value(&untrusted, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&untrusted, "x-forwarded-host"), Some("inner.test"));
        assert_eq!(
            value(&untrusted, "via"),
            Some(me("1.0 first, 1.1 second, 1.1 ME").as_str())
        );
        let trusted = forwarded(incoming, true);
        assert_eq!(
            value(&trusted, "x-forwarded-for"),
            Some("1.2.3.4, 10.0.0.7")
        );
        assert_eq!(value(&trusted, "x-forwarded-proto"), Some("https"));
        assert_eq!(value(&trusted, "x-forwarded-host"), Some("outer.test"));
        assert_eq!(
            value(&trusted, "forwarded"),
            Some("for=1.2.3.4;proto=https")
        );
        assert_eq!(value(&trusted, "x-real-ip"), Some("1.2.3.4"));
        assert_eq!(value(&trusted, "x-forwarded-ssl"), Some("on"));
        assert_eq!(value(&trusted, "x-forwarded-prefix"), Some("/admin"));
        assert_eq!(value(&trusted, "true-client-ip"), Some("1.2.3.4"));
        assert_eq!(value(&trusted, "front-end-https"), Some("on"));
    }

    /// Empty lines of a list field leave no empty element behind, nor does
    /// a trusted chain when the peer's address is not known.
    #[test]
    fn empty_list_elements_are_not_passed_on() {
        let fields: &[(&str, &[u8])] = &[
            ("Via", b""),
            ("Via", b"1.1 second"),
            ("X-Forwarded-For", b" "),
            ("X-Forwarded-For", b"1.2.3.4"),
        ];
        let sent = forwarded(fields, true);
        assert_eq!(value(&sent, "via"), Some(me("1.1 second, 1.1 ME").as_str()));
        assert_eq!(value(&sent, "x-forwarded-for"), Some("1.2.3.4, 10.0.0.7"));
        let no_peer = Incoming {
            peer: None,
            ..incoming(true)
        };
        let sent = forwarded_as(fields, no_peer);
        assert_eq!(value(&sent, "x-forwarded-for"), Some("1.2.3.4"));
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
            assert_eq!(
                IpText::new(ip).as_bytes(),
                ip.to_canonical().to_string().as_bytes(),
                "{ip}"
            );
        }
        // A dual-stack listener's IPv4 client is named as one.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(IpText::new(mapped).as_bytes(), b"10.0.0.1");
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, n / 2, n / 10, 255 - n]);
            assert_eq!(
                IpText::new(ip).as_bytes(),
                ip.to_string().as_bytes(),
                "{ip}"
            );
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
        let (kept, via) = response_fields(fields.clone(), Version::Http11);
        let shown: Vec<(&str, &[u8])> = kept
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            shown,
            [("Content-Type", &b"text/plain"[..]), ("Set-Cookie", b"a=1")]
        );
        assert_eq!(&via[..], me("1.1 origin, 1.1 ME").as_bytes());
        // Without a Connection field, only the listed ones and the length go.
        let plain: Vec<(String, Vec<u8>)> = fields
            .into_iter()
            .filter(|(n, _)| n != "Connection")
            .collect();
        let (kept, _) = response_fields(plain, Version::Http11);
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Content-Type", "X-Hop", "Set-Cookie"]);
    }

    fn owned(fields: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn via_names_the_version_each_message_came_with() {
        let older = Incoming {
            version: Version::Http10,
            ..incoming(false)
        };
        let sent = forwarded_as(&[("Via", b"1.1 first")], older);
        assert_eq!(value(&sent, "via"), Some(me("1.1 first, 1.0 ME").as_str()));
        let (_, via) = response_fields(owned(&[("Via", "1.0 far")]), Version::Http10);
        assert_eq!(&via[..], me("1.0 far, 1.0 ME").as_bytes());
        // A Via that Connection names was only for the hop it came over.
        let named = owned(&[("Connection", "Via"), ("Via", "1.1 near")]);
        assert_eq!(
            &response_fields(named, Version::Http11).1[..],
            me("1.1 ME").as_bytes()
        );
    }

    #[test]
    fn fields_that_connection_names_are_not_believed_even_when_trusted() {
        let incoming = &[
            ("Host", &b"inner.test"[..]),
            (
                "Connection",
                b"X-Forwarded-For, via, X-Forwarded-Host, Max-Forwards",
            ),
            ("Via", b"1.1 hop"),
            ("X-Forwarded-For", b"1.2.3.4"),
            ("X-Forwarded-Host", b"outer.test"),
            ("Max-Forwards", b"5"),
        ];
        let sent = forwarded(incoming, true);
        assert_eq!(value(&sent, "x-forwarded-for"), Some("10.0.0.7"));
        assert_eq!(value(&sent, "x-forwarded-host"), Some("inner.test"));
        assert_eq!(value(&sent, "via"), Some(me("1.1 ME").as_str()));
        assert_eq!(value(&sent, "max-forwards"), None);
    }

    #[test]
    fn an_absolute_target_s_authority_is_the_host_asked_for() {
        let absolute = Incoming {
            authority: Some("named.test:8080"),
            ..incoming(false)
        };
        let sent = forwarded_as(&[("Host", b"ignored.test")], absolute);
        assert_eq!(value(&sent, "x-forwarded-host"), Some("named.test:8080"));
    }

    #[test]
    fn max_forwards_counts_down_on_trace_and_options_only() {
        let fields: &[(&str, &[u8])] = &[("Max-Forwards", b" 3 ")];
        let counting = counting();
        assert_eq!(
            value(&forwarded_as(fields, counting), "max-forwards"),
            Some("2")
        );
        assert_eq!(value(&forwarded(fields, false), "max-forwards"), Some("3"));
        let odd: &[(&str, &[u8])] = &[("Max-Forwards", b"many")];
        assert_eq!(
            value(&forwarded_as(odd, counting), "max-forwards"),
            Some("many")
        );
        let huge: &[(&str, &[u8])] = &[("Max-Forwards", b"99999999999999999999999")];
        assert_eq!(
            value(&forwarded_as(huge, counting), "max-forwards"),
            Some("18446744073709551614")
        );
        let zero = [("max-forwards", &b"0"[..])];
        assert_eq!(max_forwards("OPTIONS", zero.iter().copied()), Some(0));
        assert_eq!(max_forwards("TRACE", zero.iter().copied()), Some(0));
        assert_eq!(max_forwards("GET", zero.iter().copied()), None);
        assert_eq!(max_forwards("options", zero.iter().copied()), None);
        assert_eq!(max_forwards("OPTIONS", odd.iter().copied()), None);
        // Sent twice, the smallest counts, wherever it is.
        let twice = [("Max-Forwards", &b"7"[..]), ("max-forwards", b"0")];
        assert_eq!(max_forwards("OPTIONS", twice.iter().copied()), Some(0));
        let twice = [
            ("Max-Forwards", &b"many"[..]),
            ("Max-Forwards", b"4"),
            ("Max-Forwards", b"9"),
        ];
        assert_eq!(max_forwards("TRACE", twice.iter().copied()), Some(4));
        let named = [("Connection", &b"Max-Forwards"[..]), ("Max-Forwards", b"0")];
        assert_eq!(max_forwards("OPTIONS", named.iter().copied()), None);
        // A list on one line is read as the same fields on lines of their own.
        let list = [("Max-Forwards", &b"5, ,0"[..])];
        assert_eq!(max_forwards("OPTIONS", list.iter().copied()), Some(0));
        let list = [("Max-Forwards", &b"5, many"[..])];
        assert_eq!(max_forwards("OPTIONS", list.iter().copied()), Some(5));
        let list = [("Max-Forwards", &b"0, x"[..])];
        assert_eq!(max_forwards("OPTIONS", list.iter().copied()), Some(0));
        // Whitespace is spaces and tabs, nothing else.
        let formfeed = [("Max-Forwards", &b"\x0c0"[..])];
        assert_eq!(max_forwards("OPTIONS", formfeed.iter().copied()), None);
        assert_eq!(
            max_forwards("OPTIONS", [("Max-Forwards", &b" , "[..])].into_iter()),
            None
        );
    }

    /// Counted, `Max-Forwards` goes on as one field with the smallest value
    /// less one, where the first came; uncounted (or with no valid value),
    /// every one goes on as it came.
    #[test]
    fn max_forwards_sent_more_than_once_goes_on_as_one() {
        let counting = counting();
        let all = |sent: &[(String, String)]| -> Vec<String> {
            let fields = sent.iter().filter(|(n, _)| same_name(n, "max-forwards"));
            fields.map(|(_, v)| v.clone()).collect()
        };
        let fields: &[(&str, &[u8])] = &[
            ("Max-Forwards", b"9"),
            ("X-A", b"1"),
            ("Max-Forwards", b"many"),
            ("max-forwards", b"7, 4"),
        ];
        let sent = forwarded_as(fields, counting);
        assert_eq!(all(&sent), ["3"]);
        let at = |name: &str| sent.iter().position(|(n, _)| same_name(n, name));
        assert!(at("max-forwards") < at("x-a"), "{sent:?}");
        assert_eq!(all(&forwarded(fields, false)), ["9", "many", "7, 4"]);
        let invalid: &[(&str, &[u8])] = &[("Max-Forwards", b"many"), ("Max-Forwards", b"-1")];
        assert_eq!(all(&forwarded_as(invalid, counting)), ["many", "-1"]);
    }
}
