//! A parsed request, borrowed from the connection's input buffer.

use std::net::SocketAddr;
use std::ops::Range;

/// The HTTP version of a request.
///
/// ```
/// use edgepoll::http::{Request, Response, StatusCode, Version};
///
/// fn hello<'a>(request: &Request<'a>) -> Response<'a> {
///     let body = match request.version() {
///         Version::Http10 => "hello, HTTP/1.0 client",
///         Version::Http11 => "hello",
///     };
///     Response::new(StatusCode::OK).body(body)
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the client asks
    /// for keep-alive.
    Http10,
    /// HTTP/1.1: the connection stays open unless either side says `close`.
    Http11,
}

/// Byte offsets of one header field inside the request head.
#[derive(Clone, Debug)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// One complete request: head and (decoded) body, borrowed without copying.
///
/// ```
/// # use edgepoll::http::{Request, Response, Service, StatusCode};
/// struct Hello;
/// impl Service for Hello {
///     fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
///         let name = request.header("x-name").unwrap_or(b"world");
///         Response::new(StatusCode::OK).body([b"hello ", name].concat())
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) head: &'a [u8],
    pub(crate) method: &'a Range<usize>,
    pub(crate) target: &'a Range<usize>,
    pub(crate) version: Version,
    pub(crate) headers: &'a [HeaderSpan],
    pub(crate) body: &'a [u8],
    pub(crate) peer: &'a Option<SocketAddr>,
    pub(crate) local: &'a Option<SocketAddr>,
    /// The body's declared length (`Content-Length`); `None` when chunked.
    pub(crate) length: Option<u64>,
    /// Whether the body comes in pieces after this ([`Dispatch::streams`](super::Dispatch::streams)).
    pub(crate) streamed: bool,
    /// A bodiless HTTP/1.1 request whose `Connection` names its `Upgrade`
    /// (the handler's own rule, see `FieldSummary::offers_upgrade`).
    pub(crate) offers_upgrade: bool,
}

/// The parts of a request target, in any of its four forms (RFC 9112 §3.2):
/// origin (`/p?q`), absolute (`http://host/p?q`), authority (`host:443`, for
/// CONNECT) and asterisk (`*`, for OPTIONS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetParts<'a> {
    pub(crate) authority: Option<&'a str>,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

/// Which of the four forms a request target takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetForm {
    Origin,
    Absolute,
    Authority,
    Asterisk,
}

/// The form of a target the head parser admitted (so UTF-8).
pub(crate) fn target_form(target: &[u8]) -> TargetForm {
    if target.first() == Some(&b'/') {
        return TargetForm::Origin;
    }
    if target == b"*" {
        return TargetForm::Asterisk;
    }
    match std::str::from_utf8(target) {
        Ok(text) if split_target(text).path.is_empty() => TargetForm::Authority,
        _ => TargetForm::Absolute,
    }
}

pub(crate) fn split_target(target: &str) -> TargetParts<'_> {
    let (before_query, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if before_query.starts_with('/') || before_query == "*" {
        return TargetParts {
            authority: None,
            path: before_query,
            query,
        };
    }
    if let Some((scheme, rest)) = before_query.split_once("://") {
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if is_scheme {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            // Userinfo is not part of the host.
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            return TargetParts {
                authority: Some(authority),
                path,
                query,
            };
        }
    }
    // Authority form: the whole target names a host and port.
    TargetParts {
        authority: Some(target),
        path: "",
        query: None,
    }
}

impl<'a> Request<'a> {
    #[inline]
    fn text(&self, range: &Range<usize>) -> &'a str {
        // The head parser admitted only ASCII or UTF-8 here: "" never happens.
        let bytes = &self.head[range.clone()];
        super::scan::ascii_str(bytes)
            .or_else(|| std::str::from_utf8(bytes).ok())
            .unwrap_or("")
    }

    /// The body's length: of the body given whole, its length (a chunked
    /// one's decoded); of a streamed body, as the head declares it
    /// (`Content-Length`), `None` when chunked (its length shows only at its
    /// end).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let length = format!("{:?}", request.body_length());
    ///     Response::new(StatusCode::OK).body(length)
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"Some(3)"));
    /// ```
    #[inline]
    pub fn body_length(&self) -> Option<u64> {
        self.length
    }

    /// Whether the body comes in pieces after this call rather than in
    /// [`body`](Self::body) (the service chose to stream it).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     // A plain service is given each body whole.
    ///     assert!(!request.body_streams());
    ///     Response::new(StatusCode::OK).body(request.body())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nhi"));
    /// ```
    #[inline]
    pub fn body_streams(&self) -> bool {
        self.streamed
    }

    /// The method, such as `"POST"`.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     match request.method() {
    ///         "GET" | "HEAD" => Response::new(StatusCode::OK).body("read"),
    ///         _ => Response::new(StatusCode::METHOD_NOT_ALLOWED).header("Allow", "GET, HEAD"),
    ///     }
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 405 "));
    /// ```
    #[inline]
    pub fn method(&self) -> &'a str {
        // The common methods without the text check (a service asks for
        // the method of nearly every request), each compared as one word.
        let bytes = &self.head[self.method.clone()];
        let word = |w: &[u8; 4]| u32::from_le_bytes(*w);
        match (bytes.len(), bytes.first_chunk::<4>().map(word)) {
            (4, Some(w)) if w == word(b"POST") => "POST",
            (4, Some(w)) if w == word(b"HEAD") => "HEAD",
            (3, _) if bytes == b"GET" => "GET",
            _ => self.text(self.method),
        }
    }

    /// The request target as sent, such as `"/path?query"`.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(request.target())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /a/../b?c HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\n/a/../b?c"));
    /// ```
    pub fn target(&self) -> &'a str {
        self.text(self.target)
    }

    /// The target in the form a server is sent it (RFC 9112 §3.2): as it
    /// came when it is a path (origin form) or `*`; the path and query of
    /// one in absolute form (`http://host/a?b` becomes `/a?b`), which every
    /// server must accept but a forwarder passes on as origin form, its
    /// authority going by [`host`](Self::host).
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(request.origin_form().into_owned())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET http://a.test/b?c HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\n/b?c"));
    /// ```
    pub fn origin_form(&self) -> std::borrow::Cow<'a, str> {
        let target = self.target();
        let parts = split_target(target);
        match (parts.authority, parts.query) {
            (None, _) => target.into(),
            (Some(_), None) => parts.path.into(),
            (Some(_), Some(query)) => format!("{}?{query}", parts.path).into(),
        }
    }

    /// The path of the target, without the query: `/a/b` for `/a/b?c` and
    /// for `http://host/a/b?c` alike (`/` when an absolute target names no
    /// path, `*` for `OPTIONS *`, empty for a CONNECT authority).
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let query = request.query().unwrap_or("-");
    ///     Response::new(StatusCode::OK).body(format!("{} {}", request.path(), query))
    /// }
    /// # let mut conn = Handler::new(Limits::default(), Instant::now());
    /// # conn.receive(b"GET http://x/a?b HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// # assert!(conn.pending_output().ends_with(b"/a b"));
    /// ```
    ///
    /// As sent: its `.` and `..` segments are not resolved, so
    /// `/api/../admin` starts with `/api/`. Route on
    /// [`resolved_path`](Self::resolved_path).
    pub fn path(&self) -> &'a str {
        split_target(self.target()).path
    }

    /// [`path`](Self::path) with its `.` and `..` segments resolved (RFC
    /// 3986 §5.2.4), none above the root, read as the WHATWG URL standard
    /// reads an http URL's path (so as a backend that parses it that way
    /// does): `%2e` is a `.` in them, and a `\` parts segments as `/` does
    /// (the result has `/` there). What to route on. Borrowed when there is
    /// nothing to resolve. Other escapes (`%2f`, `%5c`) stay as they are.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// fn route<'a>(request: &Request<'a>) -> Response<'a> {
    ///     match request.resolved_path().starts_with("/api/") {
    ///         true => Response::new(StatusCode::OK),
    ///         false => Response::new(StatusCode::NOT_FOUND),
    ///     }
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /api/../admin HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut route);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 404 "));
    /// ```
    pub fn resolved_path(&self) -> std::borrow::Cow<'a, str> {
        let path = self.path();
        let one = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
        let two = |s: &str| {
            ["..", ".%2e", "%2e.", "%2e%2e"]
                .iter()
                .any(|d| s.eq_ignore_ascii_case(d))
        };
        let dotted = |s: &str| s.len() <= 6 && (one(s) || two(s));
        let Some(named) = path.strip_prefix('/') else {
            return path.into();
        };
        let parts = |s: &'a str| s.split(['/', '\\']);
        if !named.contains('\\') && !parts(named).any(dotted) {
            return path.into();
        }
        let named: Vec<&str> = parts(named).collect();
        let mut kept: Vec<&str> = Vec::with_capacity(named.len());
        for (at, &segment) in named.iter().enumerate() {
            match dotted(segment) {
                false => kept.push(segment),
                true => {
                    if two(segment) {
                        kept.pop();
                    }
                    // A last `.` or `..` leaves a final `/`.
                    if at + 1 == named.len() {
                        kept.push("");
                    }
                }
            }
        }
        format!("/{}", kept.join("/")).into()
    }

    /// The query of the target (after `?`), if it has one, as sent: not
    /// percent-decoded, `+` not read as a space (a form's query, RFC 3986
    /// and the WHATWG URL standard's `application/x-www-form-urlencoded`,
    /// is decoded by a crate such as `form_urlencoded`).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let query = request.query().unwrap_or("");
    ///     let name = query.split('&').find_map(|pair| pair.strip_prefix("name="));
    ///     Response::new(StatusCode::OK).body(name.unwrap_or("nobody"))
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /hello?lang=en&name=ada HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nada"));
    /// ```
    pub fn query(&self) -> Option<&'a str> {
        split_target(self.target()).query
    }

    /// The host the request is for: the target's authority when the target
    /// has one (absolute form wins over the Host field, RFC 9112 §3.2.2),
    /// else the Host field.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(request.host().unwrap_or("-"))
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nb.test"));
    /// ```
    pub fn host(&self) -> Option<&'a str> {
        split_target(self.target()).authority.or_else(|| {
            self.header("host")
                .and_then(|h| std::str::from_utf8(h).ok())
        })
    }

    /// The address of the client, when the connection knows it (the event
    /// loop tells it: see [`Handler::set_addresses`](super::Handler::set_addresses)).
    /// As the socket gives it: on a server listening on `[::]`, an IPv4
    /// client is `[::ffff:127.0.0.1]:PORT`, whose
    /// [`to_canonical`](std::net::IpAddr::to_canonical) is `127.0.0.1`
    /// (a check such as `is_loopback` wants that form).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let peer = request.peer_addr().map_or("unknown".to_string(), |a| a.ip().to_string());
    ///     Response::new(StatusCode::OK).body(peer)
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.set_addresses(Some("127.0.0.1:50000".parse().unwrap()), None);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\n127.0.0.1"));
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        *self.peer
    }

    /// The local address the client connected to, when the connection knows it.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     // Fed bytes directly, a handler knows no addresses.
    ///     let local = request.local_addr().map_or(0, |a| a.port());
    ///     Response::new(StatusCode::OK).body(local.to_string())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\n0"));
    /// ```
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self.local
    }

    /// The protocol version.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     use edgepoll::http::Version;
    ///     let old = request.version() == Version::Http10;
    ///     Response::new(StatusCode::OK).body(if old { "1.0" } else { "1.1" })
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.0\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\n1.0"));
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of the first header field with this name (case-insensitive).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let agent = request.header("user-agent").unwrap_or(b"?");
    ///     Response::new(StatusCode::OK).body(agent)
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\ncurl/8"));
    /// ```
    #[inline]
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let head = self.head;
        let name = name.as_bytes();
        for h in self.headers {
            // The parser's spans run forwards: a plain difference is the
            // length (`Range::len` would saturate, an instruction more).
            if h.name.end.wrapping_sub(h.name.start) != name.len() {
                continue;
            }
            match head.get(h.name.clone()) {
                Some(field) if super::scan::eq_ignore_ascii_case(field, name) => {
                    return head.get(h.value.clone())
                }
                _ => {}
            }
        }
        None
    }

    /// The protocols a bodiless HTTP/1.1 request offers to switch to (RFC
    /// 9110 §7.8), in its order of preference: the items of its `Upgrade`
    /// fields (several make one list), when `Connection` names `upgrade`.
    /// Only such a request can be answered with a deferred 101
    /// ([`Context::respond_tunnel`](crate::Context::respond_tunnel)): the
    /// connection reads nothing after it until its answer says whether the
    /// protocol changes.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn offered<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let offered: Vec<&[u8]> = request.upgrade().into_iter().flatten().collect();
    ///     Response::new(StatusCode::OK).body(offered.join(&b" then "[..]))
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n", Instant::now(), &mut offered);
    /// assert!(conn.pending_output().ends_with(b"h2c then websocket"));
    /// ```
    pub fn upgrade(&self) -> Option<impl Iterator<Item = &'a [u8]> + Clone + 'a> {
        if !self.offers_upgrade {
            return None;
        }
        let fields = self.headers();
        let upgrade = fields.filter(|(name, _)| super::same_name(name, "upgrade"));
        Some(upgrade.flat_map(|(_, value)| super::framing::list_items(value)))
    }

    /// All header fields in the order received, as (name, value).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     let names: Vec<&str> = request.headers().map(|(name, _)| name).collect();
    ///     Response::new(StatusCode::OK).body(names.join(","))
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nHost,Accept"));
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + Clone + 'a {
        let head = self.head;
        self.headers.iter().map(move |h| {
            // A token, so ASCII: no UTF-8 decoder needed.
            let name = super::scan::ascii_str(&head[h.name.clone()]).unwrap_or("");
            (name, &head[h.value.clone()])
        })
    }

    /// The body, decoded if it was sent chunked; empty if there was none.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn show<'a>(request: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(request.body().to_ascii_uppercase())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", Instant::now(), &mut show);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nHELLO"));
    /// ```
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str) -> (Option<&str>, &str, Option<&str>) {
        let p = split_target(target);
        (p.authority, p.path, p.query)
    }

    #[test]
    fn every_target_form_splits_into_authority_path_and_query() {
        assert_eq!(parts("/a/b?c=d"), (None, "/a/b", Some("c=d")));
        assert_eq!(parts("/"), (None, "/", None));
        assert_eq!(parts("http://x/"), (Some("x"), "/", None));
        assert_eq!(
            parts("http://x:8080/a?b"),
            (Some("x:8080"), "/a", Some("b"))
        );
        assert_eq!(parts("HTTP://x"), (Some("x"), "/", None));
        assert_eq!(parts("http://x?q"), (Some("x"), "/", Some("q")));
        assert_eq!(
            parts("https://u:p@[::1]:443/p"),
            (Some("[::1]:443"), "/p", None)
        );
        assert_eq!(parts("x.test:443"), (Some("x.test:443"), "", None));
        assert_eq!(parts("*"), (None, "*", None));
    }
}
