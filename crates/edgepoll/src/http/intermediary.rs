//! What an intermediary (a proxy, a gateway, a forwarding service) must not
//! pass on: the fields that describe one connection rather than the message
//! (RFC 9110 §7.6.1). Sans-IO and allocation-free, for requests and
//! responses alike.

use super::scan::eq_ignore_ascii_case;

/// Fields that are always about the connection they arrived on: the
/// `Connection` field itself and the fields RFC 9110 §7.6.1 and RFC 9112
/// name, `Proxy-Connection` (an old client's spelling) included.
///
/// ```
/// use edgepoll::http::HOP_BY_HOP;
/// assert!(HOP_BY_HOP.contains(&"transfer-encoding"));
/// ```
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The hop-by-hop fields of one message: those of [`HOP_BY_HOP`] and every
/// field its `Connection` fields name.
///
/// ```
/// use edgepoll::http::HopByHop;
/// let fields: [(&str, &[u8]); 4] = [
///     ("Connection", b"keep-alive, X-Secret"),
///     ("X-Secret", b"1"),
///     ("Accept", b"*/*"),
///     ("TE", b"trailers"),
/// ];
/// let hop = HopByHop::new(fields.iter().copied());
/// let kept: Vec<&str> = fields.iter().map(|f| f.0).filter(|n| !hop.contains(n)).collect();
/// assert_eq!(kept, ["Accept"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct HopByHop<'a> {
    /// The tokens of the message's `Connection` fields, trimmed; past
    /// [`SORT_FROM`] of them, sorted without repeats.
    tokens: Vec<&'a [u8]>,
    sorted: bool,
}

/// How many `Connection` tokens are looked through one by one. A message
/// may list thousands (a 16 KiB `Connection: a,a,a…`), and every field of
/// it is looked up: past a few, they are sorted once and searched, where a
/// walk per field made such a head cost the proxy 25 to 90 times an
/// ordinary one.
const SORT_FROM: usize = 8;

impl<'a> HopByHop<'a> {
    /// Reads the `Connection` fields among `fields`.
    ///
    /// ```
    /// use edgepoll::http::HopByHop;
    /// let fields: [(&str, &[u8]); 2] = [("connection", b"close"), ("Connection", b"X-A")];
    /// let hop = HopByHop::new(fields.iter().copied()); // every Connection field counts
    /// assert!(hop.names("close") && hop.contains("x-a"));
    /// ```
    pub fn new(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> HopByHop<'a> {
        let mut tokens = Vec::new();
        for (_, value) in fields.filter(|(name, _)| super::same_name(name, "connection")) {
            tokens.extend(super::list_elements(value));
        }
        let sorted = tokens.len() > SORT_FROM;
        if sorted {
            tokens.sort_unstable_by(|a, b| caseless_cmp(a, b));
            tokens.dedup_by(|a, b| eq_ignore_ascii_case(a, b));
        }
        HopByHop { tokens, sorted }
    }

    /// Whether the field `name` belongs to the connection, not the message.
    ///
    /// ```
    /// use edgepoll::http::HopByHop;
    /// let hop = HopByHop::new(std::iter::once(("Connection", &b"X-Trace"[..])));
    /// assert!(hop.contains("Keep-Alive") && hop.contains("x-trace") && !hop.contains("Accept"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        HOP_BY_HOP.iter().any(|hop| super::same_name(name, hop)) || self.names(name)
    }

    /// Whether a `Connection` field names `option` (`close`, `upgrade`).
    ///
    /// ```
    /// use edgepoll::http::HopByHop;
    /// let hop = HopByHop::new(std::iter::once(("Connection", &b"keep-alive, Upgrade"[..])));
    /// assert!(hop.names("upgrade") && !hop.names("close"));
    /// ```
    pub fn names(&self, option: &str) -> bool {
        let option = option.as_bytes();
        match self.sorted {
            true => (self.tokens)
                .binary_search_by(|token| caseless_cmp(token, option))
                .is_ok(),
            false => (self.tokens.iter()).any(|token| eq_ignore_ascii_case(token, option)),
        }
    }
}

/// Byte order with ASCII letters compared as lower case: the order in
/// which `eq_ignore_ascii_case` finds equal what is equal.
fn caseless_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_and_every_named_field_is_hop_by_hop_whatever_its_case() {
        let fields: [(&str, &[u8]); 3] = [
            ("connection", b" close ,X-Hop\t"),
            ("Connection", b"x-other"),
            ("X-Kept", b"1"),
        ];
        let hop = HopByHop::new(fields.iter().copied());
        for name in [
            "Connection",
            "KEEP-ALIVE",
            "Proxy-Connection",
            "te",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "x-hop",
            "X-Other",
            "close",
        ] {
            assert!(hop.contains(name), "{name}");
        }
        for name in ["X-Kept", "Content-Length", "Host", "X-Ho", "X-Hopper"] {
            assert!(!hop.contains(name), "{name}");
        }
        assert!(hop.names("CLOSE"));
        assert!(!hop.names("upgrade"));
    }

    /// However many tokens the `Connection` fields list (sorted and
    /// searched past a few), a name is found as a walk through every token
    /// of every field would find it.
    #[test]
    fn many_connection_tokens_are_found_as_a_walk_through_them_finds_them() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"aAbB-_ ,\t";
        for _ in 0..300 {
            let fields: Vec<(&str, Vec<u8>)> = (0..1 + next() % 3)
                .map(|_| {
                    let len = (next() % 120) as usize;
                    let value = (0..len)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect();
                    ("Connection", value)
                })
                .collect();
            let hop = HopByHop::new(fields.iter().map(|(n, v)| (*n, &v[..])));
            let walk = |name: &[u8]| {
                fields.iter().any(|(_, value)| {
                    (value.split(|b| *b == b',')).any(|token| {
                        !name.is_empty() && eq_ignore_ascii_case(token.trim_ascii(), name)
                    })
                })
            };
            for _ in 0..40 {
                let len = (next() % 4) as usize;
                let name: String = (0..len)
                    .map(|_| ['a', 'A', 'b', 'B', '-', '_'][(next() % 6) as usize])
                    .collect();
                assert_eq!(
                    hop.names(&name),
                    walk(name.as_bytes()),
                    "{name:?} in {fields:?}"
                );
            }
        }
        let many = vec![&b"x-a,X-B , x-a"[..]; 2000].join(&b","[..]);
        let hop = HopByHop::new(std::iter::once(("Connection", &many[..])));
        assert!(hop.contains("X-A") && hop.contains("x-b") && !hop.contains("x-c"));
        assert_eq!(hop.tokens.len(), 2, "repeats are kept once");
    }

    #[test]
    fn a_message_without_connection_fields_drops_only_the_listed_ones() {
        let hop = HopByHop::new(std::iter::empty());
        assert!(hop.contains("te"));
        assert!(!hop.contains("x-anything"));
        assert!(!hop.names("close"));
    }
}
