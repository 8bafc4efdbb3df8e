//! A request as the client sends it, checked before a byte goes out.

use crate::http::{is_field_value, is_framing_field, is_token, token_is, Decimal, Outgoing};
use crate::short_copy::{extend_short, push_all, string_short};
use crate::url::{Url, UrlError};

/// Why a request cannot be sent as given. Nothing is sent for it.
///
/// ```
/// use edgepoll::{ClientRequest, RequestError};
/// let request = ClientRequest::new("GET", "http://127.0.0.1:8080/").unwrap();
/// // A value smuggling a second field in (CWE-113) is refused.
/// let injected = request.header("X-Name", "a\r\nX-Admin: 1");
/// assert_eq!(injected.encode(), Err(RequestError::FieldValue("X-Name".into())));
/// assert_eq!(ClientRequest::new("GET /", "http://127.0.0.1/").err(), Some(RequestError::Method));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The URL is not one the client takes.
    Url(UrlError),
    /// The method is not a token (RFC 9110 §9.1): empty, or holds a space,
    /// CR, LF, NUL or a separator. Or it is `CONNECT`, which asks for a
    /// tunnel: the client makes none (its 2xx would leave the connection a
    /// tunnel, not an HTTP connection to reuse).
    Method,
    /// A header field name that is not a token.
    FieldName(String),
    /// A header field value holding a control byte other than tab, or DEL
    /// (RFC 9110 §5.5): CR, LF or NUL would end the field and inject others
    /// (CWE-113), and servers (edgepoll's among them) refuse the rest.
    FieldValue(String),
    /// A field the client writes itself (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection`, and `Upgrade`, which
    /// [`ClientRequest::upgrade`] writes): a second one would make the
    /// request ambiguous.
    FramingField(String),
    /// [`ClientRequest::upgrade`] to an `https://` origin: a switched
    /// connection becomes a tunnel that moves bytes socket to socket, which
    /// TLS cannot take part in.
    UpgradeOverTls,
    /// [`Context::fetch_stream`](crate::Context::fetch_stream)'s
    /// `body_from` names a request whose body does not stream, or has
    /// begun to go elsewhere: the request would wait for a body that
    /// cannot come whole; or the request to send it with has no streamed
    /// body ([`ClientRequest::streamed_body`]) to take it; or a request
    /// with a streamed body is sent with nothing to stream it from (by
    /// [`Context::fetch`](crate::Context::fetch), `fetch_stream` without
    /// `body_from`, `send_all` or `download`).
    BodyFrom,
    /// An `http::Request` converted with the `http` feature holds the
    /// `edgepoll::StreamedBody` mark: its body streams, and is not in it.
    /// Remove the mark, give the request a
    /// [`streamed_body`](ClientRequest::streamed_body), and send it with
    /// [`Context::fetch_stream`](crate::Context::fetch_stream) with the
    /// served request's `Responder` as its `body_from` (see
    /// `StreamedBody`'s example).
    StreamedBody,
    /// An `http::Request` converted with the `http` feature carries a
    /// `Host` (its value here) that names another host than its URI: the
    /// request would reach another virtual host than the one meant.
    /// Remove it, and the client writes the URI's.
    OtherHost(String),
    /// A body of unknown length (chunked) for a server that answered in
    /// HTTP/1.0 when last asked: it would not take the chunked framing, and
    /// would read the chunks as requests of their own (RFC 9112 §6.1: a
    /// client sends `Transfer-Encoding` only to a server it knows handles
    /// HTTP/1.1). A forwarder answers 411, for a body with a length.
    LengthRequired,
    /// A body on a TRACE request, which a client must not send (RFC 9110
    /// §9.3.8). (`examples/proxy` answers every TRACE itself, 405.)
    TraceBody,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Url(e) => write!(f, "URL refused: {e}"),
            RequestError::Method => f.write_str("the method is not a token, or is CONNECT"),
            RequestError::FieldName(name) => {
                write!(f, "header field name {name:?} is not a token")
            }
            RequestError::FieldValue(name) => {
                write!(f, "the value of header field {name:?} holds a control byte (CR, LF, NUL...) or DEL")
            }
            RequestError::FramingField(name) => {
                write!(f, "header field {name:?} is the client's own to write")
            }
            RequestError::UpgradeOverTls => {
                f.write_str("a connection is switched to another protocol over http:// only")
            }
            RequestError::LengthRequired => f.write_str(
                "a body of unknown length for a server that speaks HTTP/1.0, which takes no chunked body",
            ),
            RequestError::TraceBody => f.write_str("a TRACE request carries no body"),
            RequestError::StreamedBody => f.write_str(
                "the request's body streams and is not in it (it holds edgepoll::StreamedBody): send it on with a streamed_body and Context::fetch_stream",
            ),
            RequestError::OtherHost(host) => write!(
                f,
                "its Host field ({host:?}) names another host than its URI: remove it, and the client writes the URI's"
            ),
            RequestError::BodyFrom => f.write_str(
                "the request body to send on does not stream, or has begun to go elsewhere, or the request to send it with streams no body, or a streamed body has nothing to stream it from",
            ),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<UrlError> for RequestError {
    fn from(e: UrlError) -> Self {
        RequestError::Url(e)
    }
}

/// One request to send: method, `http://` or `https://` URL, extra header
/// fields and body.
/// The method and the URL are checked when it is made, each field as it is
/// added; a refused field is left out and [`encode`](Self::encode) (and so
/// the client) reports the first: a request that could be read two ways is
/// never sent.
///
/// ```
/// use edgepoll::{ClientRequest, RequestError};
/// let request = ClientRequest::new("POST", "http://127.0.0.1:1234/echo")
///     .unwrap()
///     .header("Content-Type", "text/plain")
///     .body(b"hello".to_vec());
/// assert_eq!(request.url().port, 1234);
/// let injected = ClientRequest::new("GET", "http://127.0.0.1/").unwrap().header("X-A", "a\r\nX-Injected: 1");
/// assert_eq!(injected.encode(), Err(RequestError::FieldValue("X-A".into())));
/// ```
#[derive(Clone, Debug)]
pub struct ClientRequest {
    url: Url,
    /// The method, then each field added as it goes on the wire
    /// (`Name: value\r\n`): one allocation for any number of fields (a
    /// forwarder adds half a dozen per request), copied out in one piece.
    text: Vec<u8>,
    method_len: usize,
    body: Vec<u8>,
    /// What few requests have, out of line: the request then stays within
    /// 64 bytes, which a wasm32 build moves with a few loads and stores
    /// instead of a `memory.copy` (an out-of-line call into the runtime
    /// under WasmEdge's AOT code), and a builder moves it at every field.
    rare: Option<Box<Rare>>,
}

/// The parts of a [`ClientRequest`] that few requests have.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// The first field refused, for [`encode`](ClientRequest::encode) to report.
    refused: Option<RequestError>,
    /// A body streamed after the head instead of `body`: its length, if known.
    streamed: Option<Option<u64>>,
    /// The protocols offered in `Upgrade`, with `Connection: upgrade`.
    upgrade: Option<Vec<u8>>,
}

/// What a request without any of the rare parts reads.
static NO_RARE: Rare = Rare {
    refused: None,
    streamed: None,
    upgrade: None,
};

/// Whether the client sends requests with `method` (see
/// [`RequestError::Method`]).
fn is_method(method: &str) -> bool {
    is_token(method.as_bytes()) && method != "CONNECT"
}

impl ClientRequest {
    /// A request without extra fields or body.
    ///
    /// ```
    /// use edgepoll::{ClientRequest, RequestError};
    /// let request = ClientRequest::new("GET", "http://127.0.0.1:8080/status")?;
    /// assert_eq!(request.method(), "GET");
    /// // A method with a space is no token; CONNECT makes a tunnel, not a request.
    /// assert!(matches!(ClientRequest::new("GET /x", "http://127.0.0.1/"), Err(RequestError::Method)));
    /// assert!(matches!(ClientRequest::new("CONNECT", "http://127.0.0.1/"), Err(RequestError::Method)));
    /// # Ok::<(), RequestError>(())
    /// ```
    pub fn new(method: &str, url: &str) -> Result<ClientRequest, RequestError> {
        if !is_method(method) {
            return Err(RequestError::Method);
        }
        Ok(ClientRequest::with_method(method, Url::parse(url)?))
    }

    /// A request for `target` (an origin-form request target: a path and
    /// perhaps a query; or `*` for `OPTIONS`) at the origin of `base`, whose
    /// path is ignored: how a
    /// forwarder sends on what it received without building and parsing a
    /// URL per request. The target is refused as [`Url::parse`] would refuse
    /// it in a path.
    ///
    /// ```
    /// use edgepoll::{ClientRequest, RequestError, Url, UrlError};
    /// let upstream = Url::parse("http://127.0.0.1:8080").unwrap();
    /// let request = ClientRequest::to_origin("GET", &upstream, "/a?b=c").unwrap();
    /// assert_eq!(request.url().path, "/a?b=c");
    /// assert_eq!(
    ///     ClientRequest::to_origin("GET", &upstream, "/a b").err(),
    ///     Some(RequestError::Url(UrlError::InvalidPath))
    /// );
    /// assert_eq!(
    ///     ClientRequest::to_origin("GET", &upstream, "a/b").err(),
    ///     Some(RequestError::Url(UrlError::RelativePath))
    /// );
    /// assert!(ClientRequest::to_origin("OPTIONS", &upstream, "*").is_ok());
    /// assert!(ClientRequest::to_origin("GET", &upstream, "*").is_err());
    /// ```
    pub fn to_origin(
        method: &str,
        base: &Url,
        target: &str,
    ) -> Result<ClientRequest, RequestError> {
        if !is_method(method) {
            return Err(RequestError::Method);
        }
        // `*` asks about the server as a whole, and only with OPTIONS
        // (RFC 9112 §3.2.4).
        let asterisk = target == "*" && method == "OPTIONS";
        if !(target.starts_with('/') || asterisk) {
            return Err(RequestError::Url(UrlError::RelativePath));
        }
        if !Url::is_path_safe(target) {
            return Err(RequestError::Url(UrlError::InvalidPath));
        }
        let url = Url {
            tls: base.tls,
            host: string_short(&base.host),
            port: base.port,
            path: string_short(target),
        };
        Ok(ClientRequest::with_method(method, url))
    }

    /// A request for a method already found to be a token.
    fn with_method(method: &str, url: Url) -> ClientRequest {
        // Room for the fields a forwarder adds, so that they seldom grow it.
        let mut text = Vec::with_capacity(method.len() + 192);
        extend_short(&mut text, method.as_bytes());
        ClientRequest {
            url,
            text,
            method_len: method.len(),
            body: Vec::new(),
            rare: None,
        }
    }

    fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The same request for the same target at another origin (another
    /// server of one service: a retry elsewhere), `Host` following.
    ///
    /// ```
    /// use edgepoll::{ClientRequest, Url};
    /// let request = ClientRequest::new("GET", "http://127.0.0.1:8001/a").unwrap();
    /// let other = Url::parse("http://127.0.0.1:8002").unwrap();
    /// assert_eq!(request.with_origin(&other).url().to_string(), "http://127.0.0.1:8002/a");
    /// ```
    pub fn with_origin(mut self, base: &Url) -> Self {
        self.url.host.clone_from(&base.host);
        self.url.port = base.port;
        self.url.tls = base.tls;
        self
    }

    /// Adds a header field. One that is refused is left out, with any added
    /// after it, and [`encode`](Self::encode) reports it.
    ///
    /// ```
    /// use edgepoll::{ClientRequest, RequestError};
    /// let request = ClientRequest::new("GET", "http://127.0.0.1:8080/")?.header("Accept", "text/plain");
    /// assert!(String::from_utf8_lossy(&request.encode()?).contains("\r\nAccept: text/plain\r\n"));
    /// // The client frames the body itself: a field of its framing is refused.
    /// let framed = ClientRequest::new("GET", "http://127.0.0.1:8080/")?.header("Content-Length", "5");
    /// assert_eq!(framed.encode(), Err(RequestError::FramingField("Content-Length".into())));
    /// # Ok::<(), RequestError>(())
    /// ```
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header field whose value need not be UTF-8 (RFC 9110 allows
    /// other bytes from 0x80 up, which a forwarder passes on as they came);
    /// checked like any other. Leading and trailing whitespace is not part
    /// of a value (RFC 9110 §5.5) and is dropped.
    ///
    /// ```
    /// use edgepoll::{ClientRequest, RequestError};
    /// let latin1 = ClientRequest::new("GET", "http://127.0.0.1:8080/")?.header_bytes("X-Name", b"Jos\xe9 ");
    /// assert!(latin1.encode()?.windows(14).any(|w| w == b"X-Name: Jos\xe9\r\n"));
    /// let nul = ClientRequest::new("GET", "http://127.0.0.1:8080/")?.header_bytes("X-Name", b"a\0b");
    /// assert_eq!(nul.encode(), Err(RequestError::FieldValue("X-Name".into())));
    /// # Ok::<(), RequestError>(())
    /// ```
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.append_header_bytes(name, value);
        self
    }

    /// Adds a header field in place, as [`header_bytes`](Self::header_bytes)
    /// does: for a loop over many fields (a forwarder's), where the builder
    /// would move the whole request at each one.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let mut request = ClientRequest::new("GET", "http://127.0.0.1:8080/").unwrap();
    /// for (name, value) in [("Accept", &b"*/*"[..]), ("X-Trace", b"7")] {
    ///     request.append_header_bytes(name, value);
    /// }
    /// let wire = String::from_utf8(request.encode().unwrap()).unwrap();
    /// assert!(wire.contains("\r\nAccept: */*\r\nX-Trace: 7\r\n"));
    /// ```
    pub fn append_header_bytes(&mut self, name: &str, value: &[u8]) {
        if self
            .rare
            .as_ref()
            .is_some_and(|rare| rare.refused.is_some())
        {
            return;
        }
        let bytes = name.as_bytes();
        // One test, one way out; which refusal it is, out of line.
        let own = |b: &[u8]| is_framing_field(b) || token_is(b, b"host") || token_is(b, b"upgrade");
        if !is_token(bytes) || !is_field_value(value) || own(bytes) {
            return self.refuse_field(name, value);
        }
        // Most values come trimmed (a forwarder's always do): two byte
        // checks instead of the two scans of `trim_ascii`.
        let value = match (value.first(), value.last()) {
            (Some(first), Some(last))
                if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() =>
            {
                value
            }
            _ => value.trim_ascii(),
        };
        // Names and values copied with loads and stores (see `short_copy`),
        // after one capacity check for the whole line.
        push_all(&mut self.text, [bytes, b": ", value, b"\r\n"], true);
    }

    /// Notes why the field `name: value` was refused (as
    /// [`append_header_bytes`](Self::append_header_bytes) found it was).
    #[cold]
    #[inline(never)]
    fn refuse_field(&mut self, name: &str, value: &[u8]) {
        let refused = if !is_token(name.as_bytes()) {
            RequestError::FieldName(name.into())
        } else if !is_field_value(value) {
            RequestError::FieldValue(name.into())
        } else {
            RequestError::FramingField(name.into())
        };
        self.rare_mut().refused = Some(refused);
    }

    /// Offers to switch the connection to `protocols` (the value of
    /// `Upgrade`, sent with `Connection: upgrade`; RFC 9110 §7.8). A 101
    /// answer hands the connection over: see
    /// [`Context::respond_tunnel`](crate::Context::respond_tunnel). Checked
    /// by [`encode`](Self::encode) like a field value.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let request = ClientRequest::new("GET", "http://127.0.0.1:8080/chat").unwrap().upgrade(b"websocket");
    /// let wire = String::from_utf8(request.encode().unwrap()).unwrap();
    /// assert!(wire.contains("\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"));
    /// // A tunnel is not made through TLS.
    /// let tls = ClientRequest::new("GET", "https://127.0.0.1:8443/chat").unwrap().upgrade(b"websocket");
    /// assert_eq!(tls.encode().err(), Some(edgepoll::RequestError::UpgradeOverTls));
    /// ```
    pub fn upgrade(mut self, protocols: &[u8]) -> Self {
        self.rare_mut().upgrade = Some(protocols.to_vec());
        self
    }

    /// Withdraws the offer to switch protocols, if any: for a request that
    /// goes on to an `https://` origin, where no switch can be made (see
    /// [`upgrade`](Self::upgrade)).
    ///
    /// ```
    /// use edgepoll::{ClientRequest, Url};
    /// let offer = ClientRequest::new("GET", "http://127.0.0.1:8080/chat").unwrap().upgrade(b"websocket");
    /// let tls = Url::parse("https://127.0.0.1:8443").unwrap();
    /// let plain = offer.with_origin(&tls).without_upgrade();
    /// assert!(!plain.offers_upgrade());
    /// assert!(plain.encode().is_ok());
    /// ```
    pub fn without_upgrade(mut self) -> Self {
        if let Some(rare) = &mut self.rare {
            rare.upgrade = None;
        }
        self
    }

    /// Whether the request offers to switch protocols.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let plain = ClientRequest::new("GET", "http://127.0.0.1:8080/chat").unwrap();
    /// assert!(!plain.offers_upgrade());
    /// assert!(plain.upgrade(b"websocket").offers_upgrade());
    /// ```
    pub fn offers_upgrade(&self) -> bool {
        self.rare().upgrade.is_some()
    }

    /// Sets the body (sent with `Content-Length`; an empty one without it
    /// on GET, HEAD, DELETE, OPTIONS, TRACE and CONNECT), in place of a
    /// streamed one (see [`streamed_body`](Self::streamed_body)): the later call
    /// decides.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let request = ClientRequest::new("POST", "http://127.0.0.1:8080/").unwrap()
    ///     .streamed_body(Some(0))
    ///     .body(b"abc".to_vec());
    /// let text = String::from_utf8(request.encode().unwrap()).unwrap();
    /// assert!(text.ends_with("Content-Length: 3\r\n\r\nabc"));
    /// ```
    pub fn body(mut self, body: Vec<u8>) -> Self {
        // Framed as streamed, these bytes would go after the head unframed:
        // a request of the caller's making behind this one.
        if let Some(rare) = &mut self.rare {
            rare.streamed = None;
        }
        self.body = body;
        self
    }

    /// Makes the body one streamed after the head, of `length` bytes or, if
    /// that is not known, chunked (see [`Context::fetch_stream`](crate::Context::fetch_stream)).
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let known = ClientRequest::new("PUT", "http://127.0.0.1:8080/file").unwrap().streamed_body(Some(1 << 32));
    /// assert!(String::from_utf8(known.encode().unwrap()).unwrap().ends_with("Content-Length: 4294967296\r\n\r\n"));
    /// let unknown = ClientRequest::new("PUT", "http://127.0.0.1:8080/file").unwrap().streamed_body(None);
    /// assert!(String::from_utf8(unknown.encode().unwrap()).unwrap().ends_with("Transfer-Encoding: chunked\r\n\r\n"));
    /// ```
    pub fn streamed_body(mut self, length: Option<u64>) -> Self {
        self.rare_mut().streamed = Some(length);
        self.body = Vec::new();
        self
    }

    /// How a streamed body is framed, if the body is streamed.
    pub(crate) fn body_framing(&self) -> Option<Outgoing> {
        match self.rare().streamed? {
            Some(n) => Some(Outgoing::Length(n)),
            None => Some(Outgoing::Chunked),
        }
    }

    /// The target URL.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let request = ClientRequest::new("GET", "https://localhost/a?b").unwrap();
    /// let url = request.url();
    /// assert_eq!((url.host.as_str(), url.port, url.tls, url.path.as_str()), ("localhost", 443, true, "/a?b"));
    /// ```
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The method.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// assert_eq!(ClientRequest::new("PATCH", "http://127.0.0.1/").unwrap().method(), "PATCH");
    /// ```
    pub fn method(&self) -> &str {
        // A token: ASCII.
        crate::http::ascii_str(self.method_bytes()).unwrap_or("")
    }

    pub(crate) fn method_bytes(&self) -> &[u8] {
        &self.text[..self.method_len]
    }

    /// The header fields added, in order, their values without leading and
    /// trailing whitespace; none from the first refused field on (such a
    /// request is not sent).
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let request = ClientRequest::new("GET", "http://127.0.0.1/").unwrap()
    ///     .header("Accept", " text/plain ")
    ///     .header_bytes("X-Raw", b"caf\xe9");
    /// let fields: Vec<_> = request.headers().collect();
    /// assert_eq!(fields, [("Accept", &b"text/plain"[..]), ("X-Raw", &b"caf\xe9"[..])]);
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Each field went in as `name: value\r\n`, the name a token and the
        // value free of CR: the first ':' and the first CR end them.
        let mut rest = &self.text[self.method_len..];
        std::iter::from_fn(move || {
            let colon = rest.iter().position(|&b| b == b':')?;
            let (name, after) = (&rest[..colon], rest.get(colon + 2..)?);
            let end = after.iter().position(|&b| b == b'\r')?;
            rest = after.get(end + 2..)?;
            Some((std::str::from_utf8(name).unwrap_or(""), &after[..end]))
        })
    }

    /// Whether the method is idempotent (RFC 9110 §9.2.2): such a request may
    /// be sent again when a reused connection turns out closed.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let get = ClientRequest::new("GET", "http://127.0.0.1/").unwrap();
    /// let post = ClientRequest::new("POST", "http://127.0.0.1/").unwrap();
    /// assert!(get.is_idempotent() && !post.is_idempotent());
    /// ```
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method_bytes(),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }

    /// The request as it goes on the wire, or why it cannot.
    ///
    /// ```
    /// use edgepoll::ClientRequest;
    /// let request = ClientRequest::new("POST", "http://127.0.0.1:8080/echo").unwrap().body(b"hi".to_vec());
    /// let wire = String::from_utf8(request.encode().unwrap()).unwrap();
    /// assert!(wire.starts_with("POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
    /// assert!(wire.ends_with("Content-Length: 2\r\n\r\nhi"));
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, RequestError> {
        let rare = self.rare();
        if let Some(refused) = &rare.refused {
            return Err(refused.clone());
        }
        self.url.check().map_err(RequestError::Url)?;
        let has_body = !self.body.is_empty() || rare.streamed.is_some();
        if has_body && self.method_bytes() == b"TRACE" {
            return Err(RequestError::TraceBody);
        }
        let (method, fields) = self.text.split_at(self.method_len);
        let path = self.url.path.as_bytes();
        let mut out = Vec::with_capacity(128 + path.len() + self.text.len() + self.body.len());
        extend_short(&mut out, method);
        out.push(b' ');
        extend_short(&mut out, path);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.url.write_authority(&mut out);
        out.extend_from_slice(b"\r\n");
        if let Some(protocols) = &rare.upgrade {
            if self.url.tls {
                return Err(RequestError::UpgradeOverTls);
            }
            if protocols.trim_ascii().is_empty() || !is_field_value(protocols) {
                return Err(RequestError::FieldValue("Upgrade".into()));
            }
            out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
            out.extend_from_slice(protocols.trim_ascii());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(fields);
        let length = match rare.streamed {
            Some(Some(n)) => Some(n),
            Some(None) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                None
            }
            // RFC 9110 §8.6: a length with any body, and with an empty one
            // where the method gives content a meaning (POST, PUT, PATCH:
            // `Content-Length: 0`, which some servers want, or they answer
            // 411), or may (a method unknown here); none where its
            // semantics anticipate no content. (A request without either
            // framing field has no body, RFC 9112 §6.3: no server waits.)
            None if !self.body.is_empty() || !anticipates_no_content(method) => {
                Some(self.body.len() as u64)
            }
            None => None,
        };
        if let Some(n) = length {
            out.extend_from_slice(b"Content-Length: ");
            extend_short(&mut out, Decimal::new(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// Whether a method's semantics anticipate no request content, so that an
/// empty body goes without `Content-Length` (RFC 9110 §8.6: a user agent
/// SHOULD NOT send one then): GET, HEAD, DELETE, OPTIONS, TRACE, CONNECT.
fn anticipates_no_content(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"DELETE" | b"OPTIONS" | b"TRACE" | b"CONNECT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Url`'s fields are public: one built by hand is checked as a parsed
    /// one is, before anything is encoded.
    #[test]
    fn a_url_built_by_hand_cannot_carry_header_fields() {
        let url = |host: &str, path: &str| Url {
            tls: false,
            host: host.into(),
            port: 8080,
            path: path.into(),
        };
        for (host, path, error) in [
            (
                "x\r\nX-Injected: 1\r\nY: a.localhost",
                "/",
                UrlError::InvalidHost,
            ),
            ("a b", "/", UrlError::InvalidHost),
            ("::1\r\n", "/", UrlError::InvalidHost),
            ("", "/", UrlError::NoHost),
            ("a", "/x\r\nX-Injected: 1", UrlError::InvalidPath),
            ("a", "x", UrlError::RelativePath),
        ] {
            let request = ClientRequest::to_origin("GET", &url("a", "/"), "/")
                .unwrap()
                .with_origin(&url(host, "/"));
            let request = ClientRequest {
                url: Url {
                    path: path.into(),
                    ..request.url().clone()
                },
                ..request
            };
            assert_eq!(
                request.encode().err(),
                Some(RequestError::Url(error)),
                "{host:?} {path:?}"
            );
        }
        for host in ["a.localhost", "127.0.0.1", "::1"] {
            let request = ClientRequest::to_origin("GET", &url(host, "/"), "/").unwrap();
            assert!(request.encode().is_ok(), "{host}");
        }
    }

    /// RFC 9110 §9.3.8: a TRACE carries no body, whole or streamed; one
    /// without is sent, as any method's body is.
    #[test]
    fn a_trace_with_a_body_is_refused_before_anything_is_sent() {
        let trace = || ClientRequest::new("TRACE", "http://127.0.0.1/p").unwrap();
        assert_eq!(
            trace().body(b"xyz".to_vec()).encode(),
            Err(RequestError::TraceBody)
        );
        assert_eq!(
            trace().streamed_body(None).encode(),
            Err(RequestError::TraceBody)
        );
        assert!(trace().encode().is_ok());
        let post = ClientRequest::new("POST", "http://127.0.0.1/p").unwrap();
        assert!(post.body(b"xyz".to_vec()).encode().is_ok());
    }

    #[test]
    fn methods_names_and_values_that_could_split_the_request_are_refused() {
        for method in ["", "GET /x", "G\rET", "GE\nT", "GET\0", "GE:T", "CONNECT"] {
            assert_eq!(
                ClientRequest::new(method, "http://127.0.0.1/").err(),
                Some(RequestError::Method),
                "{method:?}"
            );
        }
        let base = || ClientRequest::new("GET", "http://127.0.0.1/").unwrap();
        for (name, value, error) in [
            (
                "X-A",
                "a\r\nX-Injected: 1",
                RequestError::FieldValue("X-A".into()),
            ),
            ("X-A", "a\nb", RequestError::FieldValue("X-A".into())),
            ("X-A", "a\rb", RequestError::FieldValue("X-A".into())),
            ("X-A", "a\0b", RequestError::FieldValue("X-A".into())),
            // Control bytes and DEL: the server's parser refuses them too.
            ("X-A", "a\x01b", RequestError::FieldValue("X-A".into())),
            (
                "X-A",
                "text/pl\x7fin",
                RequestError::FieldValue("X-A".into()),
            ),
            ("X A", "v", RequestError::FieldName("X A".into())),
            ("X-A\r\nY", "v", RequestError::FieldName("X-A\r\nY".into())),
            ("", "v", RequestError::FieldName("".into())),
            (
                "Content-Length",
                "0",
                RequestError::FramingField("Content-Length".into()),
            ),
            (
                "transfer-encoding",
                "chunked",
                RequestError::FramingField("transfer-encoding".into()),
            ),
            ("Host", "evil", RequestError::FramingField("Host".into())),
        ] {
            assert_eq!(base().header(name, value).encode(), Err(error));
        }
        assert_eq!(
            ClientRequest::new("GET", "http://127.0.0.1/a b").err(),
            Some(RequestError::Url(UrlError::InvalidPath))
        );
    }

    #[test]
    fn a_refused_field_is_left_out_and_the_first_refusal_is_the_one_reported() {
        let request = ClientRequest::new("GET", "http://127.0.0.1/")
            .unwrap()
            .header("X-Before", "1")
            .header("X-Bad", "a\r\nX-Injected: 1")
            .header("Host", "evil")
            .header("X-After", "2");
        assert_eq!(
            request.encode(),
            Err(RequestError::FieldValue("X-Bad".into()))
        );
        let names: Vec<&str> = request.headers().map(|(name, _)| name).collect();
        assert_eq!(names, ["X-Before"]);
    }

    #[test]
    fn many_fields_read_back_and_go_out_in_order_with_their_bytes() {
        let mut request = ClientRequest::new("POST", "http://127.0.0.1:9/").unwrap();
        let names: Vec<String> = (0..20).map(|i| format!("X-{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            request = request.header_bytes(name, &[b'v', 0x80 + i as u8]);
        }
        let read: Vec<(&str, &[u8])> = request.headers().collect();
        assert_eq!(read.len(), 20);
        for (i, (name, value)) in read.iter().enumerate() {
            assert_eq!(
                (*name, *value),
                (names[i].as_str(), &[b'v', 0x80 + i as u8][..])
            );
        }
        let wire = request.encode().unwrap();
        let mut expected = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:9\r\n".to_vec();
        for (i, name) in names.iter().enumerate() {
            expected.extend_from_slice(format!("{name}: v").as_bytes());
            expected.extend_from_slice(&[0x80 + i as u8, b'\r', b'\n']);
        }
        expected.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        assert_eq!(wire, expected);
    }

    /// An empty body gets `Content-Length: 0` where the method gives
    /// content a meaning (or may: an unknown one), and none where it
    /// anticipates none (RFC 9110 §8.6); a body gets its length always.
    #[test]
    fn an_empty_body_is_framed_only_where_the_method_anticipates_content() {
        for (method, framed) in [
            ("GET", false),
            ("HEAD", false),
            ("DELETE", false),
            ("OPTIONS", false),
            ("TRACE", false),
            ("POST", true),
            ("PUT", true),
            ("PATCH", true),
            ("PROPFIND", true),
        ] {
            let request = ClientRequest::new(method, "http://127.0.0.1:9/").unwrap();
            let wire = String::from_utf8(request.encode().unwrap()).unwrap();
            assert_eq!(wire.contains("Content-Length: 0\r\n"), framed, "{wire}");
            if method == "TRACE" {
                continue; // no content allowed (RFC 9110 §9.3.8): refused
            }
            let request = ClientRequest::new(method, "http://127.0.0.1:9/")
                .unwrap()
                .body(b"x".to_vec());
            let wire = String::from_utf8(request.encode().unwrap()).unwrap();
            assert!(wire.contains("Content-Length: 1\r\n"), "{wire}");
        }
    }

    #[test]
    fn encodes_host_length_and_fields_in_order() {
        let request = ClientRequest::new("PUT", "http://[::1]:8080/x?y")
            .unwrap()
            .header("X-One", " 1 ")
            .body(b"abc".to_vec());
        assert_eq!(
            String::from_utf8(request.encode().unwrap()).unwrap(),
            "PUT /x?y HTTP/1.1\r\nHost: [::1]:8080\r\nX-One: 1\r\nContent-Length: 3\r\n\r\nabc"
        );
        let get = ClientRequest::new("GET", "http://localhost/").unwrap();
        assert_eq!(
            get.encode().unwrap(),
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
    }
}
