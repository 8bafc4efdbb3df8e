//! Many HTTP requests at once: every connection opens without blocking and one
//! [`Poll`] waits for all of them. No busy loop: while nothing is ready, the
//! program sleeps in the runtime.

use crate::http::{ParsedResponse, ResponseError, ResponseParser};
use crate::net::{self, TcpStream};
use crate::Url;
use crate::{Events, Interest, Poll, Token};
use std::io;
use std::time::{Duration, Instant};

/// One request to send: method, `http://` URL, extra header fields and body.
///
/// ```
/// let request = edgepoll::ClientRequest::new("POST", "http://127.0.0.1:1234/echo")
///     .unwrap()
///     .header("Content-Type", "text/plain")
///     .body(b"hello".to_vec());
/// assert_eq!(request.url().port, 1234);
/// ```
#[derive(Clone, Debug)]
pub struct ClientRequest {
    method: String,
    url: Url,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ClientRequest {
    /// A request without extra fields or body.
    pub fn new(method: &str, url: &str) -> Result<ClientRequest, String> {
        Ok(ClientRequest {
            method: method.to_string(),
            url: Url::parse(url)?,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body (sent with `Content-Length`).
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The target URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        let shown = self.url.to_string();
        let host = shown
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix(self.url.path.as_str()))
            .unwrap_or(&self.url.host);
        out.extend_from_slice(
            format!(
                "{} {} HTTP/1.1\r\nHost: {host}\r\n",
                self.method, self.url.path
            )
            .as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !self.body.is_empty() || !matches!(self.method.as_str(), "GET" | "HEAD") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The host is neither an IP literal nor `localhost`.
    Resolve(String),
    /// Nobody listens there.
    Refused,
    /// The server reset the connection.
    Reset,
    /// No complete response within the timeout.
    Timeout(Duration),
    /// The response could not be read.
    BadResponse(ResponseError),
    /// Any other socket error.
    Io(io::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Resolve(host) => write!(
                f,
                "cannot resolve {host:?} (use an IP address or localhost)"
            ),
            ClientError::Refused => f.write_str("connection refused"),
            ClientError::Reset => f.write_str("connection reset by peer"),
            ClientError::Timeout(t) => write!(f, "timed out after {:.1} s", t.as_secs_f64()),
            ClientError::BadResponse(e) => write!(f, "bad response: {e}"),
            ClientError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ClientError::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ClientError::Reset,
            _ => ClientError::Io(e),
        }
    }
}

enum Phase {
    Connecting,
    Sending(usize),
    Receiving,
}

struct Exchange {
    stream: TcpStream,
    request: Vec<u8>,
    phase: Phase,
    parser: ResponseParser,
}

/// Sends every request at once, each on its own connection, and waits for all
/// responses; each request gets `timeout` from the start.
///
/// Results come back in the order of `requests`.
pub fn send_all(
    requests: &[ClientRequest],
    timeout: Duration,
) -> Vec<Result<ParsedResponse, ClientError>> {
    let deadline = Instant::now() + timeout;
    let mut poll = Poll::new();
    let mut results: Vec<Option<Result<ParsedResponse, ClientError>>> =
        Vec::with_capacity(requests.len());
    let mut exchanges: Vec<Option<Exchange>> = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let started = request
            .url
            .socket_addr()
            .map_err(ClientError::Resolve)
            .and_then(|addr| net::connect(addr).map_err(ClientError::from))
            .and_then(|stream| {
                poll.register(&stream, Token(i), Interest::WRITABLE)?;
                Ok(stream)
            });
        match started {
            Ok(stream) => {
                results.push(None);
                exchanges.push(Some(Exchange {
                    stream,
                    request: request.encode(),
                    phase: Phase::Connecting,
                    parser: ResponseParser::new(request.method.eq_ignore_ascii_case("HEAD")),
                }));
            }
            Err(e) => {
                results.push(Some(Err(e)));
                exchanges.push(None);
            }
        }
    }
    let mut events = Events::with_capacity(requests.len().max(1));
    let mut open = exchanges.iter().filter(|e| e.is_some()).count();
    while open > 0 {
        if Instant::now() >= deadline {
            break;
        }
        if let Err(e) = poll.poll_until(&mut events, Some(deadline)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            for (slot, result) in exchanges.iter_mut().zip(results.iter_mut()) {
                if slot.take().is_some() {
                    *result = Some(Err(ClientError::Io(io::Error::new(
                        e.kind(),
                        e.to_string(),
                    ))));
                }
            }
            break;
        }
        for event in &events {
            let i = event.token().0;
            let Some(exchange) = exchanges.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            match advance(exchange, &mut poll, Token(i)) {
                Ok(None) => {}
                Ok(Some(response)) => {
                    results[i] = Some(Ok(response));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
            if results[i].is_some() {
                if let Some(done) = exchanges[i].take() {
                    let _ = poll.deregister(&done.stream);
                    open -= 1;
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ClientError::Timeout(timeout))))
        .collect()
}

/// Moves one exchange on after a readiness event.
fn advance(
    exchange: &mut Exchange,
    poll: &mut Poll,
    token: Token,
) -> Result<Option<ParsedResponse>, ClientError> {
    if let Phase::Connecting = exchange.phase {
        if let Some(e) = net::take_error(&exchange.stream)? {
            return Err(e.into());
        }
        exchange.phase = Phase::Sending(0);
    }
    if let Phase::Sending(sent) = &mut exchange.phase {
        while *sent < exchange.request.len() {
            match net::send(&exchange.stream, &exchange.request[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        exchange.phase = Phase::Receiving;
        poll.reregister(&exchange.stream, token, Interest::READABLE)?;
        return Ok(None);
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match net::recv(&exchange.stream, &mut buf) {
            Ok(0) => {
                return exchange
                    .parser
                    .finish()
                    .map(Some)
                    .map_err(ClientError::BadResponse)
            }
            Ok(n) => {
                if let Some(response) = exchange
                    .parser
                    .feed(&buf[..n])
                    .map_err(ClientError::BadResponse)?
                {
                    return Ok(Some(response));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}
