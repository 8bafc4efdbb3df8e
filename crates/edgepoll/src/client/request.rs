//! A request as the client sends it, checked before a byte goes out.

use crate::http::{is_field_safe, is_token, Decimal, Outgoing};
use crate::url::{Url, UrlError};

/// Why a request cannot be sent as given. Nothing is sent for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The URL is not one the client takes.
    Url(UrlError),
    /// The method is not a token (RFC 9110 §9.1): empty, or holds a space,
    /// CR, LF, NUL or a separator.
    Method,
    /// A header field name that is not a token.
    FieldName(String),
    /// A header field value holding CR, LF or NUL (it would end the field,
    /// and inject others: CWE-113).
    FieldValue(String),
    /// A field the client writes itself (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection`, and `Upgrade`, which
    /// [`ClientRequest::upgrade`] writes): a second one would make the
    /// request ambiguous.
    FramingField(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Url(e) => write!(f, "URL refused: {e}"),
            RequestError::Method => f.write_str("the method is not a token"),
            RequestError::FieldName(name) => {
                write!(f, "header field name {name:?} is not a token")
            }
            RequestError::FieldValue(name) => {
                write!(f, "the value of header field {name:?} holds CR, LF or NUL")
            }
            RequestError::FramingField(name) => {
                write!(f, "header field {name:?} is the client's own to write")
            }
        }
    }
}

impl std::error::Error for RequestError {}

impl From<UrlError> for RequestError {
    fn from(e: UrlError) -> Self {
        RequestError::Url(e)
    }
}

/// One request to send: method, `http://` URL, extra header fields and body.
/// The method and the URL are checked when it is made, the fields when it is
/// sent: a request that could be read two ways is never sent.
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
    method: String,
    url: Url,
    /// The header fields added: names and values back to back, and where
    /// each field's name and value end. Two allocations for any number of
    /// fields, not two per field: a forwarder adds half a dozen per request.
    fields: Vec<u8>,
    field_ends: Vec<(usize, usize)>,
    body: Vec<u8>,
    /// A body streamed after the head instead of `body`: its length, if known.
    streamed: Option<Option<u64>>,
    /// The protocols offered in `Upgrade`, with `Connection: upgrade`.
    upgrade: Option<Vec<u8>>,
}

impl ClientRequest {
    /// A request without extra fields or body.
    pub fn new(method: &str, url: &str) -> Result<ClientRequest, RequestError> {
        if !is_token(method.as_bytes()) {
            return Err(RequestError::Method);
        }
        Ok(ClientRequest {
            method: method.to_string(),
            url: Url::parse(url)?,
            fields: Vec::new(),
            field_ends: Vec::new(),
            body: Vec::new(),
            streamed: None,
            upgrade: None,
        })
    }

    /// A request for `target` (an origin-form request target: a path and
    /// perhaps a query) at the origin of `base`, whose path is ignored: how a
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
    /// ```
    pub fn to_origin(
        method: &str,
        base: &Url,
        target: &str,
    ) -> Result<ClientRequest, RequestError> {
        if !is_token(method.as_bytes()) {
            return Err(RequestError::Method);
        }
        if !target.starts_with('/') || !Url::is_path_safe(target) {
            return Err(RequestError::Url(UrlError::InvalidPath));
        }
        Ok(ClientRequest {
            method: method.to_string(),
            url: Url {
                tls: base.tls,
                host: base.host.clone(),
                port: base.port,
                path: target.to_string(),
            },
            fields: Vec::new(),
            field_ends: Vec::new(),
            body: Vec::new(),
            streamed: None,
            upgrade: None,
        })
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

    /// Adds a header field (checked by [`encode`](Self::encode)).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header field whose value need not be UTF-8 (RFC 9110 allows
    /// other bytes from 0x80 up, which a forwarder passes on as they came);
    /// checked by [`encode`](Self::encode) like any other.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        if self.field_ends.capacity() == 0 {
            self.field_ends.reserve(8);
            self.fields.reserve(256);
        }
        self.fields.extend_from_slice(name.as_bytes());
        let name_end = self.fields.len();
        self.fields.extend_from_slice(value);
        self.field_ends.push((name_end, self.fields.len()));
        self
    }

    /// The fields added, in order, as bytes.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = 0;
        self.field_ends.iter().map(move |&(name_end, value_end)| {
            let field = (
                &self.fields[start..name_end],
                &self.fields[name_end..value_end],
            );
            start = value_end;
            field
        })
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
    /// ```
    pub fn upgrade(mut self, protocols: &[u8]) -> Self {
        self.upgrade = Some(protocols.to_vec());
        self
    }

    /// Whether the request offers to switch protocols.
    pub fn offers_upgrade(&self) -> bool {
        self.upgrade.is_some()
    }

    /// Sets the body (sent with `Content-Length`).
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Makes the body one streamed after the head, of `length` bytes or, if
    /// that is not known, chunked (see [`Context::fetch_stream`](crate::Context::fetch_stream)).
    pub fn streamed_body(mut self, length: Option<u64>) -> Self {
        self.streamed = Some(length);
        self.body = Vec::new();
        self
    }

    /// How a streamed body is framed, if the body is streamed.
    pub(crate) fn body_framing(&self) -> Option<Outgoing> {
        match self.streamed? {
            Some(n) => Some(Outgoing::Length(n)),
            None => Some(Outgoing::Chunked { open: false }),
        }
    }

    /// The target URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The header fields added, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Each name went in as a `&str`, whole.
        self.fields()
            .map(|(name, value)| (std::str::from_utf8(name).unwrap_or(""), value))
    }

    /// Whether the method is idempotent (RFC 9110 §9.2.2): such a request may
    /// be sent again when a reused connection turns out closed.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }

    /// The request as it goes on the wire, or why it cannot.
    pub fn encode(&self) -> Result<Vec<u8>, RequestError> {
        let named = |name: &[u8]| String::from_utf8_lossy(name).into_owned();
        for (name, value) in self.fields() {
            if !is_token(name) {
                return Err(RequestError::FieldName(named(name)));
            }
            if !is_field_safe(value) {
                return Err(RequestError::FieldValue(named(name)));
            }
            if [
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "upgrade",
            ]
            .iter()
            .any(|own| name.eq_ignore_ascii_case(own.as_bytes()))
            {
                return Err(RequestError::FramingField(named(name)));
            }
        }
        let mut out = Vec::with_capacity(128 + self.fields.len() + self.body.len());
        for part in [
            self.method.as_str(),
            " ",
            &self.url.path,
            " HTTP/1.1\r\nHost: ",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        self.url.write_authority(&mut out);
        out.extend_from_slice(b"\r\n");
        if let Some(protocols) = &self.upgrade {
            if protocols.trim_ascii().is_empty() || !is_field_safe(protocols) {
                return Err(RequestError::FieldValue("Upgrade".into()));
            }
            out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
            out.extend_from_slice(protocols.trim_ascii());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in self.fields() {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.trim_ascii());
            out.extend_from_slice(b"\r\n");
        }
        let length = match self.streamed {
            Some(Some(n)) => Some(n),
            Some(None) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                None
            }
            // A length whenever a body is possible, so the server never waits
            // for a body that is not coming (RFC 9110 §8.6).
            None if !self.body.is_empty() || !matches!(self.method.as_str(), "GET" | "HEAD") => {
                Some(self.body.len() as u64)
            }
            None => None,
        };
        if let Some(n) = length {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(Decimal::new(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_names_and_values_that_could_split_the_request_are_refused() {
        for method in ["", "GET /x", "G\rET", "GE\nT", "GET\0", "GE:T"] {
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
