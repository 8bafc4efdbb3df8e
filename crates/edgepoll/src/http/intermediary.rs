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
    /// The values of the message's `Connection` fields.
    connection: Vec<&'a [u8]>,
}

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
        HopByHop {
            connection: fields
                .filter(|(name, _)| super::same_name(name, "connection"))
                .map(|(_, value)| value)
                .collect(),
        }
    }

    /// Whether the field `name` belongs to the connection, not the message.
    ///
    /// ```
    /// use edgepoll::http::HopByHop;
    /// let hop = HopByHop::new(std::iter::once(("Connection", &b"X-Trace"[..])));
    /// assert!(hop.contains("Keep-Alive") && hop.contains("x-trace") && !hop.contains("Accept"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        HOP_BY_HOP.iter().any(|hop| super::same_name(name, hop))
            || self.connection.iter().any(|value| {
                value
                    .split(|b| *b == b',')
                    .any(|token| eq_ignore_ascii_case(trim(token), name.as_bytes()))
            })
    }

    /// Whether a `Connection` field names `option` (`close`, `upgrade`).
    ///
    /// ```
    /// use edgepoll::http::HopByHop;
    /// let hop = HopByHop::new(std::iter::once(("Connection", &b"keep-alive, Upgrade"[..])));
    /// assert!(hop.names("upgrade") && !hop.names("close"));
    /// ```
    pub fn names(&self, option: &str) -> bool {
        self.connection.iter().any(|value| {
            value
                .split(|b| *b == b',')
                .any(|token| eq_ignore_ascii_case(trim(token), option.as_bytes()))
        })
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
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

    #[test]
    fn a_message_without_connection_fields_drops_only_the_listed_ones() {
        let hop = HopByHop::new(std::iter::empty());
        assert!(hop.contains("te"));
        assert!(!hop.contains("x-anything"));
        assert!(!hop.names("close"));
    }
}
