//! Conversions to and from the [`http`](https://docs.rs/http) crate's types
//! (cargo feature `http`), so that code written against `http::Request` and
//! `http::Response` (hyper's, tower's middleware ideas) carries over:
//!
//! | from | to |
//! |---|---|
//! | `&edgepoll::http::Request` (a request served) | `http::Request<Vec<u8>>` |
//! | `http::Response<B>` | `edgepoll::http::Response` (to answer with) |
//! | `http::Request<B>` (absolute `http://` or `https://` URI) | `edgepoll::ClientRequest` (to send) |
//! | `edgepoll::http::ParsedResponse` (a response received) | `http::Response<Vec<u8>>` |
//!
//! Field names come out of the `http` types in lowercase, as that crate
//! keeps them. The fields each side writes itself are left to it: `Host`,
//! `Content-Length`, `Transfer-Encoding` and `Connection` are not carried
//! into a client request (the connection frames its messages; a `Host`
//! other than the URI's authority is refused, not dropped: the request
//! would reach another virtual host than the one meant); a response
//! takes them all, and its encoder reads them as it reads a response built
//! field by field (the body framed by the connection, `Connection: close`
//! honoured, a 101's `Connection: Upgrade` sent). All are carried out of a
//! request or response as received.
//!
//! A request served carries its connection's addresses in its
//! extensions ([`ConnectionAddresses`]), and [`StreamedBody`] when its body
//! comes in pieces and so is not in it.
//!
//! What the `http` types cannot hold is not carried, and what they hold
//! that HTTP/1.1 does not send is not either:
//! - the order of fields of different names: `http::HeaderMap` keeps the
//!   values of one name together, in their order (so `Set-Cookie`s keep
//!   theirs), but `a`, `b`, `a` comes out as `a`, `a`, `b`; and its
//!   `remove` moves the last name into the place of the one removed;
//! - a response's reason phrase (`http::Response` has none: the encoder
//!   writes the status code's own);
//! - the version and extensions of a client request or of a response to
//!   send: each goes out as HTTP/1.1;
//! - trailers: a chunked body's trailer fields are not kept on receipt,
//!   and none are sent;
//! - a client request's `Upgrade` without `Connection: upgrade`, which
//!   offers nothing (RFC 9110 §7.8).
//!
//! A body converts from anything that is `Into<Vec<u8>>` (`Vec<u8>`,
//! `String`, `&str`, `&[u8]`, `bytes::Bytes`...), and is copied: a
//! bodiless response is `http::Response::new(Vec::new())` (not `()`, which
//! is not one of those). A body too large to copy streams instead: see
//! [`StreamedBody`] for forwarding one, and [`Context`](crate::Context)'s
//! `respond_stream` and `fetch_stream` for the rest.
//!
//! The conversions pass every other field on, the connection's options
//! too: a field that `Connection` names, `TE` or `Keep-Alive` is an
//! intermediary's to remove (RFC 9110 §7.6.1), with
//! [`HopByHop`](crate::http::HopByHop), as examples/proxy does. A
//! response received in a transfer coding other than chunked
//! ([`ParsedResponse::undecoded_coding`]) converts with its
//! `Transfer-Encoding` and coded body as they came; answered as it is, it
//! gets its client a 500 (the server would not name the coding): a
//! forwarder refuses it (502) or decodes it.

use crate::client::{ClientRequest, RequestError};
use crate::http::{ParsedResponse, Request, Response, StatusCode, Version};
use crate::Url;

/// In the extensions of an `http::Request` converted from a request whose
/// body streams ([`Request::body_streams`]): its body is not in it (it comes
/// in pieces, to the service), though its fields still say its length. A
/// [`ClientRequest`] is not made from such a request
/// ([`RequestError::StreamedBody`]): it would go out with no body. (A
/// service that gathered the body itself and put it back removes the
/// mark.) To send it on streamed, from [`App::call`](crate::App::call),
/// where its body has not begun:
///
/// ```no_run
/// # use edgepoll::{Context, Responder, StreamedBody};
/// # fn sketch(cx: &mut Context<'_>, request: &edgepoll::http::Request<'_>, responder: Responder)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let mut converted = http::Request::try_from(request)?;
/// // ... set its URI and remove its Host, as below ...
/// converted.extensions_mut().remove::<StreamedBody>();
/// let upstream = edgepoll::ClientRequest::try_from(converted)?
///     .streamed_body(request.body_length());
/// cx.fetch_stream(&upstream, Some(responder))?; // the body goes with it, piece by piece
/// # Ok(()) }
/// ```
///
/// Forwarding a served request: its `Host` names this server, so it is
/// removed (the client writes the upstream's, from the URI); one left in
/// that names another host is refused.
///
/// ```
/// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
/// # use std::time::Instant;
/// /// The request served, as it goes on to 127.0.0.1:8080.
/// fn forward(request: &Request<'_>) -> Result<edgepoll::ClientRequest, String> {
///     // The path and query, whatever form the target came in (`GET
///     // http://h/x` is `/x`); `OPTIONS *` asks this server itself.
///     let target = request.origin_form();
///     if target == "*" {
///         return Err("OPTIONS * is this server's to answer".into());
///     }
///     let request = http::Request::try_from(request).map_err(|e| e.to_string())?;
///     if request.extensions().get::<edgepoll::StreamedBody>().is_some() {
///         return Err("its body streams: send it on with Context::fetch_stream".into());
///     }
///     let (mut parts, body) = request.into_parts();
///     parts.uri = format!("http://127.0.0.1:8080{target}").parse().map_err(|_| "uri")?;
///     parts.headers.remove(http::header::HOST);
///     edgepoll::ClientRequest::try_from(http::Request::from_parts(parts, body))
///         .map_err(|e| e.to_string())
/// }
/// fn show<'a>(request: &Request<'a>) -> Response<'a> {
///     match forward(request).and_then(|sent| sent.encode().map_err(|e| e.to_string())) {
///         Ok(wire) => Response::new(StatusCode::OK).body(wire),
///         Err(e) => Response::new(StatusCode::BAD_GATEWAY).body(e),
///     }
/// }
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", Instant::now(), &mut show);
/// assert!(conn.pending_output().ends_with(b"\r\n\r\nGET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"));
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(b"GET http://h/y?z HTTP/1.1\r\nHost: h\r\n\r\n", Instant::now(), &mut show);
/// assert!(conn.pending_output().ends_with(b"\r\n\r\nGET /y?z HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamedBody;

/// In the extensions of an `http::Request` converted from a request
/// served: the addresses of its connection, as [`Request::peer_addr`] and
/// [`Request::local_addr`] give them (axum's `ConnectInfo`). Left out when
/// the connection knows neither (a [`Handler`](crate::http::Handler) fed
/// bytes directly).
///
/// ```
/// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
/// # use std::time::Instant;
/// use edgepoll::ConnectionAddresses;
/// fn who<'a>(request: &Request<'a>) -> Response<'a> {
///     let request = http::Request::try_from(request).expect("a plain target");
///     let peer = request.extensions().get::<ConnectionAddresses>().and_then(|a| a.peer);
///     Response::new(StatusCode::OK).body(format!("{peer:?}"))
/// }
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.set_addresses(Some("127.0.0.1:50000".parse().unwrap()), None);
/// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut who);
/// assert!(conn.pending_output().ends_with(b"\r\n\r\nSome(127.0.0.1:50000)"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionAddresses {
    /// The client's address.
    pub peer: Option<std::net::SocketAddr>,
    /// The address the client connected to.
    pub local: Option<std::net::SocketAddr>,
}

/// `http`'s status codes are those from 100 to 999, as edgepoll's: each
/// converts, either way. The constants' names follow RFC 9110 where it
/// renamed a code: `http`'s `PAYLOAD_TOO_LARGE` is `CONTENT_TOO_LARGE`
/// here, and `UNPROCESSABLE_ENTITY` is `UNPROCESSABLE_CONTENT`.
///
/// ```
/// use edgepoll::http::StatusCode;
/// assert_eq!(StatusCode::from(http::StatusCode::PAYLOAD_TOO_LARGE), StatusCode::CONTENT_TOO_LARGE);
/// assert_eq!(http::StatusCode::from(StatusCode::from_u16(599).unwrap()).as_u16(), 599);
/// ```
impl From<http::StatusCode> for StatusCode {
    fn from(status: http::StatusCode) -> StatusCode {
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<StatusCode> for http::StatusCode {
    fn from(status: StatusCode) -> http::StatusCode {
        http::StatusCode::from_u16(status.as_u16())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The fields a connection writes itself.
fn is_own_field(name: &str) -> bool {
    ["host", "content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own))
}

impl TryFrom<&Request<'_>> for http::Request<Vec<u8>> {
    type Error = http::Error;

    /// Fails on a target `http::Uri` refuses but the server takes, as
    /// servers commonly do: `<`, `>`, `` ` `` or `"` (in a query)
    /// left unencoded. (A `#`, which `http` would drop with what follows
    /// it, the handler refuses itself: no request-target has a fragment.)
    /// Answer those 400, as below; a network request must not be able to
    /// panic a service.
    ///
    /// A streamed request's body is not in it (it comes in pieces): its
    /// fields still say its length, and its extensions hold
    /// [`StreamedBody`] to tell it.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// fn handle<'a>(request: &Request<'a>) -> Response<'a> {
    ///     match http::Request::try_from(request) {
    ///         Ok(request) => Response::from(http::Response::new(request.into_body())),
    ///         Err(e) => Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n")),
    ///     }
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", Instant::now(), &mut handle);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nhi"));
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /a<b HTTP/1.1\r\nHost: h\r\n\r\n", Instant::now(), &mut handle);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 400 "));
    /// ```
    fn try_from(request: &Request<'_>) -> Result<Self, Self::Error> {
        // A space is refused as `#` should be: "invalid uri character".
        // (The handler refuses a target with `#`; this keeps the rule here
        // whatever the handler's.)
        let target = match request.target().contains('#') {
            true => " ",
            false => request.target(),
        };
        let mut builder = http::Request::builder()
            .method(request.method())
            .uri(target)
            .version(http_version(request.version()));
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        if request.body_streams() {
            builder = builder.extension(StreamedBody);
        }
        let (peer, local) = (request.peer_addr(), request.local_addr());
        if peer.is_some() || local.is_some() {
            builder = builder.extension(ConnectionAddresses { peer, local });
        }
        builder.body(request.body().to_vec())
    }
}

impl<'a, B: Into<Vec<u8>>> From<http::Response<B>> for Response<'a> {
    fn from(response: http::Response<B>) -> Self {
        let (parts, body) = response.into_parts();
        let status = StatusCode::from(parts.status);
        let mut out = Response::new(status);
        // All of them: the encoder frames the body itself, and reads
        // `Connection` (a 101's goes as given; `close` is honoured), as it
        // does for a response built field by field.
        for (name, value) in &parts.headers {
            out = out.header(name.as_str().to_string(), value.as_bytes().to_vec());
        }
        out.body(body.into())
    }
}

impl<B: Into<Vec<u8>>> TryFrom<http::Request<B>> for ClientRequest {
    type Error = RequestError;

    /// The URI's path and query go on the request line as they are, dot
    /// segments too (unlike [`ClientRequest::new`], which resolves them as
    /// a client does a URL it was given): a forwarder sends what it got.
    ///
    /// ```
    /// let request = http::Request::post("http://127.0.0.1:8080/api")
    ///     .header("Content-Type", "application/json")
    ///     .body(b"{}".to_vec())
    ///     .unwrap();
    /// let request = edgepoll::ClientRequest::try_from(request).unwrap();
    /// assert_eq!(request.url().port, 8080);
    /// ```
    fn try_from(request: http::Request<B>) -> Result<Self, Self::Error> {
        let (parts, body) = request.into_parts();
        if parts.extensions.get::<StreamedBody>().is_some() {
            return Err(RequestError::StreamedBody);
        }
        let url = Url::parse(&parts.uri.to_string())?;
        // The path and query go as they came (RFC 9110 §7.7: a forwarder
        // must not change them): `/a/../b` is not `/b` to every server,
        // and one that checked the target must send what it checked.
        // `path()` is `/` for an empty one (`http://h?q` asks for `/?q`).
        let target = match parts.uri.query() {
            Some(query) => format!("{}?{query}", parts.uri.path()),
            None => parts.uri.path().to_string(),
        };
        // The http crate takes UTF-8 in a path; a request line is ASCII.
        let target = match target.is_ascii() {
            true => target,
            false => crate::url::percent_encoded(&target),
        };
        let mut out = ClientRequest::to_origin(parts.method.as_str(), &url, &target)?;
        // The authority as the client writes it, or with its default port.
        let authority = out.url().authority();
        let with_port = format!("{authority}:{}", out.url().port);
        let names_another = |host: &http::HeaderValue| {
            let host = host.as_bytes();
            !host.eq_ignore_ascii_case(authority.as_bytes())
                && !host.eq_ignore_ascii_case(with_port.as_bytes())
        };
        let hosts = parts.headers.get_all(http::header::HOST);
        if let Some(other) = hosts.iter().find(|host| names_another(host)) {
            let other = String::from_utf8_lossy(other.as_bytes()).into_owned();
            return Err(RequestError::OtherHost(other));
        }
        // `Upgrade` is an offer only with `Connection: upgrade` (RFC 9110
        // §7.8); the client writes both itself.
        let offers_upgrade = (parts.headers.get_all(http::header::CONNECTION).iter())
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        for (name, value) in &parts.headers {
            if *name != http::header::UPGRADE && !is_own_field(name.as_str()) {
                // As bytes: a value may hold obs-text (0x80 and up).
                out.append_header_bytes(name.as_str(), value.as_bytes());
            }
        }
        let protocols: Vec<&[u8]> = (parts.headers.get_all(http::header::UPGRADE).iter())
            .map(|v| v.as_bytes())
            .collect();
        if offers_upgrade && !protocols.is_empty() {
            out = out.upgrade(&protocols.join(&b", "[..]));
        }
        // A field refused (a control byte, a framing field) is reported by
        // `encode`, as for any request built field by field.
        Ok(out.body(body.into()))
    }
}

fn http_version(version: Version) -> http::Version {
    match version {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    }
}

impl TryFrom<ParsedResponse> for http::Response<Vec<u8>> {
    type Error = http::Error;

    fn try_from(response: ParsedResponse) -> Result<Self, Self::Error> {
        let mut builder = http::Response::builder()
            .status(response.status.as_u16())
            .version(http_version(response.version));
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        builder.body(response.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Handler, Limits, Service};
    use std::time::Instant;

    /// Keeps the converted request it was called with.
    #[derive(Default)]
    struct Capture(Option<http::Request<Vec<u8>>>);

    impl Service for Capture {
        fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
            self.0 = Some(http::Request::try_from(request).expect("converts"));
            Response::new(StatusCode::OK)
        }
    }

    /// Answers every request with the response this makes.
    struct Fixed(fn() -> http::Response<&'static str>);

    impl Service for Fixed {
        fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
            Response::from((self.0)())
        }
    }

    fn made() -> http::Response<&'static str> {
        http::Response::builder()
            .status(201)
            .header("Content-Length", "999")
            .header("Connection", "keep-alive")
            .header("X-Kept", "yes")
            .body("made")
            .expect("valid")
    }

    #[test]
    fn a_served_request_converts_with_its_fields_and_body() {
        let mut service = Capture::default();
        let mut conn = Handler::new(Limits::default(), Instant::now());
        conn.receive(
            b"POST /a?b=1 HTTP/1.0\r\nHost: h\r\nX-Two: 1\r\nX-Two: 2\r\nContent-Length: 3\r\n\r\nabc",
            Instant::now(),
            &mut service,
        );
        let request = service.0.expect("called");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().path(), "/a");
        assert_eq!(request.uri().query(), Some("b=1"));
        assert_eq!(request.version(), http::Version::HTTP_10);
        // Fed bytes directly, the handler knows no addresses to carry.
        assert!(request.extensions().get::<ConnectionAddresses>().is_none());
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert_eq!(request.body(), b"abc");
    }

    /// Streams every request body, and converts each request.
    #[derive(Default)]
    struct StreamsAndConverts(Option<http::Request<Vec<u8>>>);

    impl crate::http::Dispatch for StreamsAndConverts {
        const STREAMS: bool = true;

        fn dispatch<'a>(
            &mut self,
            request: &Request<'a>,
            _: crate::http::RequestId,
        ) -> crate::http::Reply<'a> {
            self.0 = Some(http::Request::try_from(request).expect("converts"));
            crate::http::Reply::Later
        }

        fn streams(&mut self, _: &Request<'_>) -> bool {
            true
        }
    }

    /// A request whose body streams says so in its extensions, and is not
    /// sent on as a client request without its body (it went out with
    /// `Content-Length: 0`, the body lost without a word).
    #[test]
    fn a_streamed_request_is_marked_and_not_sent_on_bodiless() {
        let mut service = StreamsAndConverts::default();
        let mut conn = Handler::new(Limits::default(), Instant::now());
        let head = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        conn.receive(head, Instant::now(), &mut service);
        let request = service.0.take().expect("called");
        assert_eq!(
            request.extensions().get::<StreamedBody>(),
            Some(&StreamedBody)
        );
        assert_eq!(request.headers()["content-length"], "5");
        let (mut parts, body) = request.into_parts();
        parts.uri = "http://127.0.0.1:9/up".parse().expect("uri");
        let forwarded = ClientRequest::try_from(http::Request::from_parts(parts, body));
        assert_eq!(forwarded.err(), Some(RequestError::StreamedBody));
        // Whole, it carries no mark.
        let mut service = Capture::default();
        let mut conn = Handler::new(Limits::default(), Instant::now());
        conn.receive(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            Instant::now(),
            &mut service,
        );
        let request = service.0.expect("called");
        assert!(request.extensions().get::<StreamedBody>().is_none());
    }

    /// A `Host` that names the URI's authority (its default port written or
    /// not, in any case) is the client's own; another is refused, not
    /// dropped: the request would reach another virtual host than meant.
    #[test]
    fn a_host_other_than_the_uri_s_is_refused() {
        let with_host = |uri: &str, host: &str| {
            let request = http::Request::get(uri)
                .header("Host", host)
                .body(Vec::new());
            ClientRequest::try_from(request.expect("valid")).map(|r| r.encode())
        };
        for (uri, host) in [
            ("http://127.0.0.1:9/", "127.0.0.1:9"),
            ("http://Example.test/", "example.TEST"),
            ("http://example.test/", "example.test:80"),
            ("https://example.test/", "example.test:443"),
            ("http://[::1]/", "[::1]"),
        ] {
            let wire = with_host(uri, host).expect("converts").expect("encodes");
            let wire = String::from_utf8(wire).expect("ascii");
            assert_eq!(wire.matches("Host: ").count(), 1, "{wire}");
        }
        for (uri, host) in [
            ("http://10.0.0.5/", "api.example.test"),
            ("http://example.test/", "example.test:8080"),
            ("http://example.test:8080/", "example.test"),
        ] {
            let refused = with_host(uri, host).err();
            assert_eq!(refused, Some(RequestError::OtherHost(host.into())), "{uri}");
            let told = refused.map(|e| e.to_string()).unwrap_or_default();
            assert!(told.contains("names another host than its URI"), "{told}");
        }
    }

    /// What converting the request it was called with came to.
    #[derive(Default)]
    struct Converts(Option<Result<String, http::Error>>);

    impl Service for Converts {
        fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
            self.0 = Some(http::Request::try_from(request).map(|r| r.uri().to_string()));
            Response::new(StatusCode::OK)
        }
    }

    /// Targets the server takes but `http::Uri` does not are an error,
    /// never a panic. (One with `#`, which `http::Uri` would cut short, the
    /// handler refuses itself.)
    #[test]
    fn a_target_http_cannot_hold_is_an_error() {
        for target in ["/a<b", "/s?q=\"x\"", "/a`b", "/ok?q=1"] {
            let mut service = Converts::default();
            let mut conn = Handler::new(Limits::default(), Instant::now());
            let request = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            conn.receive(request.as_bytes(), Instant::now(), &mut service);
            match service.0.expect("called") {
                Ok(uri) => assert_eq!(uri, "/ok?q=1"),
                Err(_) => assert_ne!(target, "/ok?q=1"),
            }
        }
    }

    #[test]
    fn an_http_response_answers_without_its_framing_fields() {
        let ours = Response::from(made());
        assert_eq!(ours.status(), StatusCode::from_u16(201).unwrap());
        assert_eq!(ours.body_bytes(), b"made");
        let mut conn = Handler::new(Limits::default(), Instant::now());
        let mut service = Fixed(made);
        conn.receive(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            Instant::now(),
            &mut service,
        );
        let wire = String::from_utf8(conn.pending_output().to_vec()).unwrap();
        // The http crate keeps names in lowercase.
        assert!(
            wire.contains("x-kept: yes\r\n") && wire.contains("Content-Length: 4\r\n"),
            "{wire}"
        );
        assert!(!wire.contains("999"), "{wire}");
    }

    /// A WebSocket handshake built with the `http` crate keeps its
    /// `Connection: Upgrade` (a client fails one without), and a
    /// `Connection: close` closes, as for a response built field by field.
    #[test]
    fn an_http_response_s_connection_field_is_read_as_a_response_s() {
        fn switching() -> http::Response<&'static str> {
            http::Response::builder()
                .status(101)
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Content-Length", "5")
                .body("")
                .expect("valid")
        }
        fn closing() -> http::Response<&'static str> {
            http::Response::builder()
                .header("Connection", "close")
                .body("bye")
                .expect("valid")
        }
        let answer = |made: fn() -> http::Response<&'static str>| {
            let mut conn = Handler::new(Limits::default(), Instant::now());
            let request =
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
            conn.receive(request, Instant::now(), &mut Fixed(made));
            String::from_utf8(conn.pending_output().to_vec()).expect("text")
        };
        let wire = answer(switching);
        assert!(wire.starts_with("HTTP/1.1 101 "), "{wire}");
        assert!(wire.contains("\r\nconnection: Upgrade\r\n"), "{wire}");
        assert!(
            !wire.to_ascii_lowercase().contains("content-length"),
            "{wire}"
        );
        let wire = answer(closing);
        assert!(wire.contains("\r\nConnection: close\r\n"), "{wire}");
    }

    #[test]
    fn client_requests_and_received_responses_convert_both_ways() {
        let request = http::Request::put("http://[::1]:9/x")
            .header("Host", "[::1]:9")
            .header("X-A", "b")
            .body("data")
            .expect("valid");
        let ours = ClientRequest::try_from(request).expect("converts");
        let wire = String::from_utf8(ours.encode().expect("encodes")).unwrap();
        assert_eq!(
            wire,
            "PUT /x HTTP/1.1\r\nHost: [::1]:9\r\nx-a: b\r\nContent-Length: 4\r\n\r\ndata"
        );
        // A value of obs-text passes as it is; an upgrade offer becomes the
        // client's own, and `Upgrade` without one is not sent.
        let offer = http::Request::get("http://127.0.0.1:9/chat")
            .header("Connection", "keep-alive, Upgrade")
            .header("Upgrade", "websocket")
            .header("X-Latin", &b"caf\xe9"[..])
            .body(Vec::new())
            .expect("valid");
        let ours = ClientRequest::try_from(offer).expect("converts");
        let wire = ours.encode().expect("encodes");
        let text = String::from_utf8_lossy(&wire);
        assert!(
            wire.windows(14).any(|w| w == b"x-latin: caf\xe9\r"),
            "{text}"
        );
        assert!(
            text.contains("Connection: upgrade\r\nUpgrade: websocket\r\n"),
            "{text}"
        );
        let no_offer = http::Request::get("http://127.0.0.1:9/chat")
            .header("Upgrade", "websocket")
            .body(Vec::new())
            .expect("valid");
        let wire = ClientRequest::try_from(no_offer)
            .expect("converts")
            .encode();
        let wire = String::from_utf8(wire.expect("encodes")).unwrap();
        assert!(!wire.to_ascii_lowercase().contains("upgrade"), "{wire}");
        // The target goes as it came, dot segments and all (they were
        // resolved: `/public/../admin` went out as `/admin`).
        let dotted = http::Request::get("http://127.0.0.1:9/public/../admin?x=/../y")
            .body(Vec::new())
            .expect("valid");
        let wire = ClientRequest::try_from(dotted).expect("converts").encode();
        let wire = String::from_utf8(wire.expect("encodes")).unwrap();
        assert!(
            wire.starts_with("GET /public/../admin?x=/../y HTTP/1.1\r\n"),
            "{wire}"
        );
        let bare = http::Request::get("http://127.0.0.1:9").body(Vec::new());
        let bare = ClientRequest::try_from(bare.expect("valid")).expect("converts");
        assert_eq!(bare.url().path, "/");
        let query = http::Request::get("http://127.0.0.1:9?x=1").body(Vec::new());
        let query = ClientRequest::try_from(query.expect("valid")).expect("converts");
        assert_eq!(query.url().path, "/?x=1");
        let utf8 = http::Request::get("http://127.0.0.1:9/café").body(Vec::new());
        let utf8 = ClientRequest::try_from(utf8.expect("UTF-8 in a path")).expect("converts");
        assert_eq!(utf8.url().path, "/caf%C3%A9");
        let relative = http::Request::get("/no-host")
            .body(Vec::new())
            .expect("valid");
        assert!(ClientRequest::try_from(relative).is_err());

        let parsed = crate::http::ResponseParser::new(false)
            .feed(b"HTTP/1.0 404 Not Found\r\nX-B: c\r\nContent-Length: 2\r\n\r\nno")
            .expect("valid")
            .expect("complete");
        let response = http::Response::try_from(parsed).expect("converts");
        assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(response.version(), http::Version::HTTP_10);
        assert_eq!(response.headers()["x-b"], "c");
        assert_eq!(response.body(), b"no");
    }
}
