//! Host names to addresses, without blocking the loop when a DNS server is
//! configured.
//!
//! - With a server ([`ClientOptions::dns_server`](crate::ClientOptions),
//!   by default the `DNS_SERVER` environment variable, `ip:port`, the
//!   convention WasmEdge users already follow): queries go over UDP on the
//!   loop's own [`Poll`](crate::Poll), A and AAAA at once, again over TCP
//!   when an answer is truncated. CNAME chains are followed within one
//!   answer (up to 8 links, as a recursive server gives them; a chain
//!   whose end is missing gives no address, or, from a server that does
//!   not recurse, [`ResolveError::NotRecursive`]). Answers are kept for their
//!   TTL: at most an hour; NXDOMAIN and "no address" for the zone's
//!   negative TTL, at most five minutes; an answer where one family failed
//!   or did not come, only briefly; a failure to get an answer (a timeout,
//!   a server's error) for [`FAILURE_TTL`], a second (RFC 9520 §3.2), where
//!   no answer still good is kept. Concurrent lookups of one name share
//!   one query, and a lookup takes at most its timeout, waiting for a turn
//!   included. Names are taken as written (absolute): there is no search
//!   list, and /etc/hosts is not read (a container's added hosts, such as
//!   Kubernetes' `hostAliases`, need the system resolver).
//! - Without one: the runtime's `getaddrinfo` (`sock_getaddrinfo`), which
//!   blocks the guest while it runs and reads the host's /etc/hosts and
//!   resolver (its search list too, unless the name ends with a dot). Its
//!   results, failures included, are kept for [`SYSTEM_TTL`].
//! - IP literals and `localhost` (RFC 6761) never reach either.
//!
//! Addresses come IPv4 first, then IPv6, each in the server's order (the
//! system's order is kept as it is); the client connects to the first, and
//! to the next (up to three more) when that connection fails before any
//! byte of the request went.
//! IPv4 first because many container networks, Kubernetes' default among
//! them, have no IPv6 route.

// The loop that uses these runs on WasmEdge only; they are tested natively too.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code, unused_imports))]

mod message;
pub(crate) mod resolver;
mod system;

#[cfg(target_os = "wasi")]
pub use crate::client::{resolve, resolve_with};
pub(crate) use message::{id_of, MAX_ANSWER_BYTES};
pub use resolver::Resolved;
pub(crate) use resolver::{Lookup, Resolver};
pub use resolver::{
    FAILURE_TTL, MAX_ADDRESSES, MAX_CACHED, MAX_PENDING, MAX_WAITING, OTHER_FAMILY_GRACE,
    RESEND_AFTER, SYSTEM_TTL,
};

use std::net::SocketAddr;
use std::time::Duration;

/// Whether `host` (an IP literal aside) is a host name a resolver can be
/// asked for as written: dot-separated labels of 1 to 63 letters, digits,
/// `-` and `_`, none starting with `-` (RFC 1123 §2.1; so an option such
/// as `--help` is never taken for a name), 253 bytes at most (RFC 1035
/// §2.3.4), one final dot allowed, whose last label is not a number. A
/// label may end with `-`, as Docker's container names may.
///
/// RFC 3986's `reg-name` takes more (`%HH` escapes, `!$&'()*+,;=`), which
/// no resolver takes as written; a name beyond ASCII goes in punycode
/// (`xn--`). A last label that is a number, in decimal or `0x` hex
/// (`127.1`, `0x7f.1`, `2130706433`, `010.0.0.1`), is no top-level domain
/// (RFC 3696 §2), and where it is not a dotted quad the two resolvers
/// read it differently: glibc's `inet_aton` as an address (`010.0.0.1` is
/// 8.0.0.1), a DNS server as a name. So it is refused. (The WHATWG URL
/// standard reads a host that "ends in a number" as an IPv4 address when
/// it can, as glibc does, and refuses it otherwise.)
///
/// ```
/// use edgepoll::dns::is_host_name;
/// assert!(is_host_name("api.example.test"));
/// assert!(is_host_name("xn--bcher-kva.test."));
/// assert!(!is_host_name("127.1"));
/// assert!(!is_host_name("%6Cocalhost"));
/// assert!(!is_host_name("--help"));
/// assert!(!is_host_name("a.-b.test"));
/// assert!(is_host_name("web-.test"));
/// ```
pub fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let last = name.rsplit('.').next().unwrap_or_default();
    let hex = last
        .get(..2)
        .is_some_and(|x| x.eq_ignore_ascii_case("0x"))
        .then(|| &last[2..]);
    let number = match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => last.bytes().all(|b| b.is_ascii_digit()),
    };
    name.len() <= 253 && name.split('.').all(label_ok) && !number
}

/// Why a name has no address.
///
/// ```
/// use edgepoll::dns::ResolveError;
/// assert_eq!(ResolveError::NoSuchName.to_string(), "no such name (NXDOMAIN)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// Not a valid DNS name (empty, a label over 63 bytes, ...).
    InvalidName,
    /// The name does not exist (NXDOMAIN, or `EAI_NONAME`).
    NoSuchName,
    /// The name exists but has no IPv4 or IPv6 address.
    NoAddress,
    /// No answer within the lookup's timeout.
    Timeout(Duration),
    /// The server answered with this error code (2 SERVFAIL, 5 REFUSED, ...).
    ServerFailure(u16),
    /// The server answered without an address, neither recursing (RA
    /// clear) nor holding the name (not authoritative for it, no SOA): it
    /// is not a resolver to send lookups to (an authoritative server for
    /// another zone, say).
    NotRecursive,
    /// What came back is not a valid answer.
    BadAnswer(&'static str),
    /// The server could not be reached. A refusal (an ICMP port
    /// unreachable: nothing listens there, as while it restarts) is
    /// believed the second time, when the query sent again after
    /// [`RESEND_AFTER`] (1 s) is refused too, as glibc tries a refused
    /// server again; so a lookup with no server up ends after about 1 s.
    Unreachable(String),
    /// The system resolver failed (its message).
    System(String),
    /// Too many lookups under way and waiting at once (see [`MAX_PENDING`]
    /// and [`MAX_WAITING`]).
    TooManyLookups,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::InvalidName => f.write_str("not a valid DNS name"),
            ResolveError::NoSuchName => f.write_str("no such name (NXDOMAIN)"),
            ResolveError::NoAddress => f.write_str("the name has no address"),
            ResolveError::Timeout(t) => {
                write!(
                    f,
                    "no answer from the DNS server in {:.1} s",
                    t.as_secs_f64()
                )
            }
            ResolveError::ServerFailure(code) => {
                let name = match code {
                    1 => "FORMERR",
                    2 => "SERVFAIL",
                    4 => "NOTIMP",
                    5 => "REFUSED",
                    _ => "error",
                };
                write!(f, "the DNS server answered {name} ({code})")
            }
            ResolveError::NotRecursive => f.write_str(
                "the DNS server does not recurse and does not hold the name (is it a resolver?)",
            ),
            ResolveError::BadAnswer(why) => write!(f, "bad answer from the DNS server: {why}"),
            ResolveError::Unreachable(why) => write!(f, "DNS server unreachable: {why}"),
            ResolveError::System(why) => write!(f, "{why}"),
            ResolveError::TooManyLookups => f.write_str("too many lookups under way at once"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// The DNS server named by the `DNS_SERVER` environment variable
/// (`ip:port`, `[ipv6]:port`, or an IP alone for port 53; an IPv6 address
/// alone that reads as an address and a port, `::1:5353`, is refused): `Ok(None)` when it is unset,
/// `Err` with a message when it is not an address (or names port 0).
///
/// ```
/// // Unset in doctests: names go to the system's resolver.
/// assert!(edgepoll::dns::server_from_env().is_ok());
/// ```
pub fn server_from_env() -> Result<Option<SocketAddr>, String> {
    match std::env::var("DNS_SERVER") {
        Ok(value) => parse_server(&value).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err("DNS_SERVER is not UTF-8".into()),
    }
}

/// `ip:port`, `[ipv6]:port`, or an IP alone, bracketed or not (port 53).
/// An IPv6 address alone whose last group could be a port (`::1:5353`,
/// which is `[::1:5353]:53` but reads as `[::1]:5353`) is refused as
/// ambiguous, as RFC 5952 §6 warns: brackets say which is meant.
fn parse_server(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return match addr {
            // As `net::connect` refuses it, but said at the start.
            SocketAddr::V6(v6) if v6.scope_id() != 0 => Err(format!(
                "DNS_SERVER={value:?}: an IPv6 zone cannot be given to WasmEdge's sockets"
            )),
            // No server listens there: every lookup would fail as it went.
            _ if addr.port() == 0 => Err(format!("DNS_SERVER={value:?}: port 0 is no port")),
            _ => Ok(addr),
        };
    }
    let (bare, bracketed) = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => (inner, true),
        None => (value, false),
    };
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) if !bracketed && ip.is_ipv6() && port_like_tail(bare) => Err(format!(
            "DNS_SERVER={value:?} is ambiguous: write [ADDRESS]:PORT for an IPv6 address \
             and a port, or [ADDRESS] for port 53"
        )),
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(format!(
            "DNS_SERVER={value:?} is not an address (ip:port, [ipv6]:port, or an IP for port 53)"
        )),
    }
}

/// Whether IPv6 text ends in `:DIGITS` after something that is an IPv6
/// address by itself: then the tail could be meant as a port.
fn port_like_tail(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((head, tail)) => {
            tail.bytes().all(|b| b.is_ascii_digit())
                && tail.parse::<u16>().is_ok()
                && head.parse::<std::net::Ipv6Addr>().is_ok()
        }
        None => false,
    }
}

/// What edgepoll-fuzz reaches of the resolver: the reading of an answer,
/// which a server (or anyone who can send a datagram to the socket) writes.
/// Not an API: only with the `fuzzing` feature, and free to change.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::message::{Answer, Family, NotAnswer, MAX_ANSWER_BYTES};

    /// `bytes` read as the answer to query `id` for `host` and `family`,
    /// come over UDP or TCP (`over_udp`), or `None` for no host name.
    pub fn read_answer(
        bytes: &[u8],
        id: u16,
        host: &str,
        family: Family,
        over_udp: bool,
    ) -> Option<Result<Answer, NotAnswer>> {
        let name = super::message::parse_name(host).ok()?;
        Some(super::message::read_answer(
            bytes, id, &name, family, over_udp,
        ))
    }
}

#[cfg(test)]
mod tests;
