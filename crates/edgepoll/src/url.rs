//! `http://` and `https://` URLs as the client takes them.

use crate::short_copy::extend_short;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The parts of an `http[s]://host[:port][/path]` URL.
///
/// ```
/// use edgepoll::Url;
/// let url = Url::parse("https://[::1]/search?q=wasm").unwrap();
/// assert!(url.tls);
/// assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("::1", 443, "/search?q=wasm"));
/// assert_eq!(url.to_string(), "https://[::1]:443/search?q=wasm");
/// assert_eq!(url.authority(), "[::1]");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the connection speaks TLS.
    pub tls: bool,
    /// The host as written (an IP literal, or a name).
    pub host: String,
    /// The port (80, or 443 for `https://`, when the URL names none).
    pub port: u16,
    /// The path with query: `/` at least, its `.` and `..` segments
    /// resolved (RFC 3986 §5.2.4), as every client resolves them before
    /// the request goes (`http://a/b/../c` asks for `/c`). By hand, `*` for
    /// an `OPTIONS` request to the server as a whole.
    pub path: String,
}

impl std::fmt::Display for Url {
    /// The URL with its port and a lowercase scheme, an IPv6 host in
    /// brackets: `http://[::1]:80/`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// Why a URL was refused.
///
/// ```
/// use edgepoll::{Url, UrlError};
/// assert_eq!(Url::parse("ftp://127.0.0.1/"), Err(UrlError::Scheme));
/// assert_eq!(Url::parse("http://127.0.0.1:0/"), Err(UrlError::InvalidPort));
/// assert_eq!(Url::parse("http://user:pw@127.0.0.1/"), Err(UrlError::Userinfo));
/// assert_eq!(UrlError::NoHost.to_string(), "no host");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// A scheme other than `http://` and `https://`.
    Scheme,
    /// An IPv6 host without its closing `]`.
    UnclosedBracket,
    /// A port that is not a number from 1 to 65535.
    InvalidPort,
    /// No host.
    NoHost,
    /// A host that is not a name, an IPv4 address or a bracketed IPv6 one
    /// (see [`is_host_name`](crate::dns::is_host_name)).
    InvalidHost,
    /// A path with a space, a control byte (CR, LF, NUL...) or a `#` (in
    /// a `Url` built by hand: [`Url::parse`] drops a fragment): it could
    /// not go on a request line as it is.
    InvalidPath,
    /// A request target that does not start with `/` (nor is the `*` an
    /// OPTIONS request may have), given to [`ClientRequest::to_origin`] or
    /// set as a `Url`'s path.
    ///
    /// [`ClientRequest::to_origin`]: crate::ClientRequest::to_origin
    RelativePath,
    /// A user name or password in the URL (`http://user:pass@host/`):
    /// the client sends no credentials of its own accord.
    Userinfo,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "only http:// and https:// URLs are supported",
            UrlError::UnclosedBracket => "unclosed '[' in the host",
            UrlError::InvalidPort => "invalid port",
            UrlError::NoHost => "no host",
            UrlError::InvalidHost => {
                "invalid host (a name of letters, digits, '-', '_' and '.', no label starting with '-', \
                 in punycode if not ASCII; an IPv4 address of four decimal numbers; or [IPv6])"
            }
            UrlError::InvalidPath => "the path holds a space, a control byte or a '#'",
            UrlError::RelativePath => "the path does not start with '/'",
            UrlError::Userinfo => "a user name or password in the URL is not supported",
        })
    }
}

impl std::error::Error for UrlError {}

/// `path` (with its query) with the `.` and `..` segments of the part
/// before the query resolved (RFC 3986 §5.2.4): a `..` drops the segment
/// before it, none above the root; a last `.` or `..` leaves a final `/`.
fn without_dot_segments(path: String) -> String {
    let end = path.find('?').unwrap_or(path.len());
    let (segments, query) = path.split_at(end);
    let dotted = |s: &str| s == "." || s == "..";
    if !segments.split('/').any(dotted) {
        return path;
    }
    // Past the leading `/`, which `parse` always gives.
    let named: Vec<&str> = segments.get(1..).unwrap_or_default().split('/').collect();
    let mut kept: Vec<&str> = Vec::with_capacity(named.len());
    for (at, &segment) in named.iter().enumerate() {
        match segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
        if dotted(segment) && at + 1 == named.len() {
            kept.push("");
        }
    }
    format!("/{}{query}", kept.join("/"))
}

/// `text` with every byte outside ASCII as `%HH`.
pub(crate) fn percent_encoded(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        match b.is_ascii() {
            true => out.push(b as char),
            false => out.extend([
                '%',
                HEX[usize::from(b >> 4)] as char,
                HEX[usize::from(b & 15)] as char,
            ]),
        }
    }
    out
}

impl Url {
    /// Parses `http[s]://host[:port][/path][?query][#fragment]` (the
    /// scheme in any case; the fragment, the client's own, is dropped);
    /// other schemes are refused, and so are credentials in the URL and
    /// anything that could not go on a request line as it is (a space,
    /// CR, LF, NUL or other control byte in the path), and port 0. A path
    /// beyond ASCII is percent-encoded (`/café` is sent as `/caf%C3%A9`).
    ///
    /// ```
    /// use edgepoll::{Url, UrlError};
    /// assert_eq!(Url::parse("http://[::1]:8080").unwrap().path, "/");
    /// assert_eq!(Url::parse("HTTP://a?x=1#top").unwrap().path, "/?x=1");
    /// assert_eq!(Url::parse("http://a/b\r\nX: 1"), Err(UrlError::InvalidPath));
    /// ```
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::Scheme)?;
        let tls = match scheme {
            s if s.eq_ignore_ascii_case("http") => false,
            s if s.eq_ignore_ascii_case("https") => true,
            _ => return Err(UrlError::Scheme),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        // The authority ends at the path or at the query (RFC 3986 §3.2).
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path = match path.as_bytes().first() {
            None => "/".to_string(),
            Some(b'?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        // A request line is ASCII (RFC 9112 §3): other characters go as
        // their UTF-8 bytes percent-encoded, as a browser sends them.
        let path = match path.is_ascii() {
            true => path,
            false => percent_encoded(&path),
        };
        let path = without_dot_segments(path);
        if authority.contains('@') {
            return Err(UrlError::Userinfo);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::UnclosedBracket)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::InvalidHost);
            }
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        // Digits only (`u16::from_str` would take a `+`); none is the
        // default; 0 is no port a connection can be made to.
        let port = match port {
            Some(p) if !p.is_empty() => match p.bytes().all(|b| b.is_ascii_digit()) {
                true => p
                    .parse()
                    .ok()
                    .filter(|&port| port != 0)
                    .ok_or(UrlError::InvalidPort)?,
                false => return Err(UrlError::InvalidPort),
            },
            _ if tls => 443,
            _ => 80,
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        // An address with a final dot is the address (the resolver takes
        // it so: `dns::Resolver`).
        let bare = host.strip_suffix('.').unwrap_or(host);
        let address = bare.parse::<std::net::Ipv4Addr>().is_ok();
        if !authority.starts_with('[') && !address && !crate::dns::is_host_name(host) {
            return Err(UrlError::InvalidHost);
        }
        if !Url::is_path_safe(&path) {
            return Err(UrlError::InvalidPath);
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// Whether the parts, public and so settable by hand, can go on the
    /// wire as they are (a CR or LF in either would add header fields): a
    /// looser test than [`parse`](Self::parse)'s, which also asks that a
    /// name be one a resolver takes.
    pub(crate) fn check(&self) -> Result<(), UrlError> {
        let host = self.host.as_bytes();
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        // What can go on the wire as it is (this runs on every request):
        // whether a name is one a resolver takes is the resolver's to say.
        let host_ok = match crate::http::find_byte(host, b':').is_some() {
            true => self.host.parse::<std::net::Ipv6Addr>().is_ok(),
            false => crate::http::is_reg_name(host),
        };
        if !host_ok {
            return Err(UrlError::InvalidHost);
        }
        if !(self.path.starts_with('/') || self.path == "*") {
            return Err(UrlError::RelativePath);
        }
        if !Url::is_path_safe(&self.path) {
            return Err(UrlError::InvalidPath);
        }
        Ok(())
    }

    /// Whether `path` can go on a request line as it is: no space, control
    /// byte or fragment mark.
    pub(crate) fn is_path_safe(path: &str) -> bool {
        !path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#')
    }

    /// The socket address: IP literals and `localhost` only (no DNS), so a
    /// test or tool never reaches beyond the addresses it names. A final
    /// dot names the same host (`localhost.`, `127.0.0.1.`), as the
    /// resolver takes it. `localhost` is 127.0.0.1 here, one address; the
    /// client resolves it to 127.0.0.1 and ::1 and tries each in turn
    /// ([`dns::resolve`](crate::dns::resolve)), so it reaches a server on
    /// `[::1]` alone where this address would be refused.
    ///
    /// ```
    /// let url = edgepoll::Url::parse("http://localhost.:8080/").unwrap();
    /// assert_eq!(url.socket_addr(), Some("127.0.0.1:8080".parse().unwrap()));
    /// assert_eq!(edgepoll::Url::parse("http://example.com/").unwrap().socket_addr(), None);
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = self.host.strip_suffix('.').unwrap_or(&self.host);
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse().ok()?
        };
        Some(SocketAddr::new(ip, self.port))
    }

    /// The value of a `Host` field for this URL: the host, in brackets if
    /// IPv6, and the port unless it is the scheme's default.
    ///
    /// ```
    /// use edgepoll::Url;
    /// assert_eq!(Url::parse("http://127.0.0.1:8080/a").unwrap().authority(), "127.0.0.1:8080");
    /// assert_eq!(Url::parse("http://[::1]:80/").unwrap().authority(), "[::1]");
    /// ```
    pub fn authority(&self) -> String {
        let mut out = Vec::with_capacity(self.host.len() + 8);
        self.write_authority(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// [`authority`](Self::authority) appended to `out`, without formatting
    /// machinery or a `String` of its own: every request's `Host` is one.
    pub(crate) fn write_authority(&self, out: &mut Vec<u8>) {
        let bracketed = crate::http::find_byte(self.host.as_bytes(), b':').is_some();
        if bracketed {
            out.push(b'[');
        }
        extend_short(out, self.host.as_bytes());
        if bracketed {
            out.push(b']');
        }
        if !matches!((self.port, self.tls), (80, false) | (443, true)) {
            out.push(b':');
            extend_short(out, crate::http::Decimal::new(self.port.into()).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 §5.2.4's examples and its section 5.4 ones that begin at
    /// the root, and what a query or a doubled `/` does.
    #[test]
    fn dot_segments_are_resolved_before_the_query_and_never_above_the_root() {
        for (path, resolved) in [
            ("/b/../c", "/c"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../g", "/g"),
            ("/./g/.", "/g/"),
            ("/a//../b", "/a/b"),
            ("/g.", "/g."),
            ("/..g", "/..g"),
            ("/a/%2E%2E/b", "/a/%2E%2E/b"),
            ("/a/../b?x=/../y", "/b?x=/../y"),
            ("/?q=..", "/?q=.."),
        ] {
            let url = Url::parse(&format!("http://a{path}")).expect("parses");
            assert_eq!(url.path, resolved, "{path}");
        }
    }

    #[test]
    fn the_authority_brackets_ipv6_and_names_only_a_port_not_the_schemes_own() {
        for (url, authority) in [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1:80/", "127.0.0.1"),
            ("http://127.0.0.1:443/", "127.0.0.1:443"),
            ("https://localhost:443/", "localhost"),
            ("https://localhost:80/", "localhost:80"),
            ("http://[::1]:8080/", "[::1]:8080"),
            ("http://[::1]/", "[::1]"),
            ("http://a.test:9/", "a.test:9"),
            ("http://a.test:65535/", "a.test:65535"),
        ] {
            assert_eq!(Url::parse(url).unwrap().authority(), authority, "{url}");
        }
    }

    #[test]
    fn parses_hosts_ports_and_paths() {
        let url = Url::parse("http://127.0.0.1:1234/a?b").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 1234, "/a?b")
        );
        let url = Url::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(
            Url::parse("http://localhost/")
                .unwrap()
                .socket_addr()
                .unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            Url::parse("http://[::1]:9/")
                .unwrap()
                .socket_addr()
                .unwrap(),
            "[::1]:9".parse().unwrap()
        );
    }

    /// A host is what a resolver takes as written, or a plain address:
    /// nothing the system's resolver would read as an address while DNS
    /// reads it as a name (`127.1` is 127.0.0.1 to glibc, `010.0.0.1`
    /// 8.0.0.1), and no escape or sub-delimiter no resolver decodes.
    #[test]
    fn a_host_is_a_dotted_quad_or_a_name_a_resolver_takes() {
        let refused = [
            "127.1",
            "0x7f.1",
            "0X7F.0.0.1",
            "2130706433",
            "0",
            "010.0.0.1",
            "127.0.0.01",
            "1.2.3.256",
            "127.1.",
            "a.0x",
            "a.123",
            "%6Cocalhost",
            "%31%32%37.0.0.1",
            "a%00b",
            "a,b",
            "a!b",
            "a..b",
            ".a",
            "b\u{fc}cher.test",
        ];
        for host in refused {
            let url = format!("http://{host}/");
            assert_eq!(Url::parse(&url), Err(UrlError::InvalidHost), "{host}");
        }
        let label = "a".repeat(63);
        let taken = [
            "127.0.0.1",
            "127.0.0.1.",
            "1.2.3.4.example",
            "a.test.",
            "localhost",
            "x-1_y.test",
            "0x7g.test",
            "123.test",
            "xn--bcher-kva.test",
            &label,
        ];
        for host in taken {
            let url = format!("http://{host}/");
            assert_eq!(
                Url::parse(&url).map(|u| u.host),
                Ok(host.to_string()),
                "{host}"
            );
        }
        let too_long = format!("http://{label}a.test/");
        assert_eq!(Url::parse(&too_long), Err(UrlError::InvalidHost));
        // 253 bytes at most in all (RFC 1035 §2.3.4).
        let labels = [&label[..]; 3].join(".");
        let longest = format!("{labels}.{}", "a".repeat(253 - 3 * 64));
        assert!(Url::parse(&format!("http://{longest}/")).is_ok());
        assert!(Url::parse(&format!("http://{longest}a/")).is_err());
    }

    #[test]
    fn ipv6_hosts_are_shown_in_brackets() {
        for text in [
            "http://[::1]:18299/",
            "http://127.0.0.1:80/a?b",
            "http://localhost:8080/",
        ] {
            assert_eq!(Url::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Url::parse("http://[::1]").unwrap().to_string(),
            "http://[::1]:80/"
        );
    }

    #[test]
    fn https_defaults_to_port_443() {
        let url = Url::parse("https://api.test/v1").unwrap();
        assert_eq!((url.tls, url.port, url.path.as_str()), (true, 443, "/v1"));
        assert_eq!(url.to_string(), "https://api.test:443/v1");
        assert!(!Url::parse("http://api.test/").unwrap().tls);
    }

    #[test]
    fn refuses_other_schemes_bad_ports_and_names() {
        assert!(Url::parse("ftp://127.0.0.1/").is_err());
        assert!(Url::parse("HTTPS//127.0.0.1/").is_err());
        assert!(Url::parse("http://127.0.0.1:99999/").is_err());
        assert!(Url::parse("http:///").is_err());
        assert!(Url::parse("http://example.invalid/")
            .unwrap()
            .socket_addr()
            .is_none());
        for (text, error) in [
            ("http://a/x y", UrlError::InvalidPath),
            ("http://a/x\r\nInjected: 1", UrlError::InvalidPath),
            ("http://a/x\0", UrlError::InvalidPath),
            ("http://a b/", UrlError::InvalidHost),
            ("http://a\r\nb/", UrlError::InvalidHost),
            ("http://a\r\nX: 1/", UrlError::InvalidPort),
            ("http://[::1/", UrlError::UnclosedBracket),
            ("http://[nope]/", UrlError::InvalidHost),
            ("http://[::1]x/", UrlError::InvalidHost),
            ("http://:80/", UrlError::NoHost),
            ("http://a:+80/", UrlError::InvalidPort),
            ("http://a:8 0/", UrlError::InvalidPort),
            ("http://a:0/", UrlError::InvalidPort),
            ("http://a:00/", UrlError::InvalidPort),
            ("http://u:p@a/", UrlError::Userinfo),
            ("http://u@a/", UrlError::Userinfo),
            ("gopher://a/", UrlError::Scheme),
            ("a/b", UrlError::Scheme),
        ] {
            assert_eq!(Url::parse(text), Err(error), "{text:?}");
        }
    }

    /// RFC 3986's forms: the scheme in any case, the query right after the
    /// host, an empty port, a fragment (dropped: it is never sent).
    #[test]
    fn takes_the_forms_rfc_3986_allows() {
        for (text, shown) in [
            ("HTTP://a/", "http://a:80/"),
            ("Https://a/", "https://a:443/"),
            ("http://a?x=1", "http://a:80/?x=1"),
            ("http://a:8080?x=1", "http://a:8080/?x=1"),
            ("http://a:/", "http://a:80/"),
            ("http://a/b#frag", "http://a:80/b"),
            ("http://a#frag", "http://a:80/"),
            ("http://[::1]:/p?q", "http://[::1]:80/p?q"),
            // Not ASCII: percent-encoded, as a browser sends it.
            (
                "http://a/caf\u{e9}?q=\u{20ac}",
                "http://a:80/caf%C3%A9?q=%E2%82%AC",
            ),
        ] {
            assert_eq!(
                Url::parse(text).map(|u| u.to_string()),
                Ok(shown.to_string()),
                "{text}"
            );
        }
    }
}
