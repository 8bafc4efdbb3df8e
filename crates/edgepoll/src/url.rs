//! `http://` URLs as the client takes them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// The host as written (an IP literal, or a name).
    pub host: String,
    /// The port (80 when the URL names none).
    pub port: u16,
    /// The path with query, at least `/`.
    pub path: String,
}

impl std::fmt::Display for Url {
    /// The URL as written, with an IPv6 host in brackets: `http://[::1]:80/`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl Url {
    /// Parses `http://host[:port][/path]`; `https` and other schemes are refused.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| format!("{text}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text}: unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{text}: invalid port {p:?}"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(format!("{text}: no host"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The socket address: IP literals and `localhost` only (no DNS), so a
    /// test or tool never reaches beyond the addresses it names.
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        let ip = if self.host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host.parse().map_err(|_| self.host.clone())?
        };
        Ok(SocketAddr::new(ip, self.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn refuses_other_schemes_bad_ports_and_names() {
        assert!(Url::parse("https://127.0.0.1/").is_err());
        assert!(Url::parse("http://127.0.0.1:99999/").is_err());
        assert!(Url::parse("http:///").is_err());
        assert!(Url::parse("http://example.invalid/")
            .unwrap()
            .socket_addr()
            .is_err());
    }
}
