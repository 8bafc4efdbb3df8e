//! The outbound HTTP/1.1 client. Its connections live on the same event loop
//! as the server's ([`Context::fetch`](crate::Context::fetch)), or on a loop of
//! their own ([`send_all`]); either way one [`Poll`](crate::Poll) waits for
//! every socket and nothing blocks.
//!
//! - [`ClientRequest`]: checked before a byte is sent ([`RequestError`]).
//! - Per-origin pools of keep-alive connections, at most
//!   [`ClientOptions::max_per_origin`] each and
//!   [`ClientOptions::max_connections`] in all; requests queue while all are
//!   busy, and an idle connection to one origin gives way to a request for
//!   another.
//! - Responses framed by the same rules as requests
//!   ([`FramingError`](crate::http::FramingError)): `Content-Length`, chunked,
//!   or until close; 1xx apart (see `App::on_interim`); HEAD, 204 and 304
//!   bodiless; a body limit.
//! - Host names resolved as [`crate::dns`] says: on the loop when a DNS
//!   server is configured, through the runtime otherwise. A connection goes
//!   to the first address, and to the next (up to three more) when it is
//!   refused, unreachable or not made in time (within the one connect
//!   timeout: half of what is left while others remain); an address that
//!   failed so goes after its host's others for 10 s.
//! - A request whose reused connection the server closed before any response
//!   byte, or answered with a 408 (its idle timeout, racing the request), is
//!   sent once more on a new connection, if its method is idempotent and its
//!   body was whole (a streamed body is gone once sent).

// The loop that uses these runs on WasmEdge only; they are tested natively too.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code, unused_imports))]

mod connection;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod pool;
mod queue;
mod request;
#[cfg(target_os = "wasi")]
mod send_all;

pub(crate) use connection::{ClientConnection, ClientEvent};
pub(crate) use pool::{Exchange, ExchangeEvent, Origin, Placement, Pool};
pub use request::{ClientRequest, RequestError};
#[cfg(target_os = "wasi")]
pub use send_all::{
    download, download_with, resolve, resolve_with, send_all, send_all_each, send_all_with,
};

use crate::dns::ResolveError;
use crate::http::ResponseError;
use crate::tls::TlsError;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Names one outbound request from [`Context::fetch`](crate::Context::fetch)
/// to its result.
///
/// ```
/// use edgepoll::http::{ParsedResponse, Reply, Request, Response, StatusCode};
/// use edgepoll::{App, ClientError, ClientRequest, Context, ExchangeId, Responder};
///
/// /// Answers `/health` with whether a backend answers its own `/health`;
/// /// one check at a time, the others waiting on it.
/// #[derive(Default)]
/// struct Health {
///     check: Option<ExchangeId>,
///     waiting: Vec<Responder>,
/// }
///
/// impl App for Health {
///     fn call<'a>(&mut self, _: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
///         if self.check.is_none() {
///             let Ok(request) = ClientRequest::new("GET", "http://127.0.0.1:8080/health") else {
///                 return Reply::Now(Response::new(StatusCode::INTERNAL_SERVER_ERROR));
///             };
///             self.check = cx.fetch(&request).ok();
///         }
///         self.waiting.push(responder);
///         Reply::Later
///     }
///
///     fn on_response(&mut self, exchange: ExchangeId, result: Result<ParsedResponse, ClientError>, cx: &mut Context<'_>) {
///         if self.check != Some(exchange) {
///             return;
///         }
///         self.check = None;
///         let status = match result {
///             Ok(r) if r.status == StatusCode::OK => StatusCode::OK,
///             _ => StatusCode::SERVICE_UNAVAILABLE,
///         };
///         for responder in self.waiting.drain(..) {
///             cx.respond(responder, Response::new(status));
///         }
///     }
///
///     fn on_abandoned(&mut self, responder: Responder, _: &mut Context<'_>) {
///         self.waiting.retain(|r| *r != responder);
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub(crate) u64);

/// Settings of the outbound client.
///
/// ```
/// let options = edgepoll::ClientOptions::default();
/// assert_eq!(options.max_per_origin, 32);
/// assert_eq!(options.max_connections, 512);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Most connections open to one origin (address and port) at once.
    pub max_per_origin: usize,
    /// Most outbound connections open at once, over all origins (each a
    /// descriptor, and the runtime's are limited: commonly 1024 a process).
    /// At the limit, requests for an origin with room of its own wait, as
    /// for its origin's limit, within the `response_timeout`, origins in
    /// the order they began to wait: a connection that goes idle (or
    /// closes) is given to the first, which closes the idle connection used
    /// least recently, of any origin, for one of its own. A busy origin's
    /// connection goes straight on to its own next request unless the
    /// first waiting origin holds two fewer connections, or fewer and has
    /// waited a second: shares even out, and busy origins with as many do
    /// not trade connections. A connection that switched protocols (a
    /// WebSocket tunnel) has left the pool and is not counted.
    pub max_connections: usize,
    /// Longest time to establish a connection to a host, over all the
    /// addresses tried (an attempt with others behind it waits half the
    /// time left, as curl's do); for `https://`, as long again for the TLS
    /// handshake, from the connect's end.
    pub connect_timeout: Duration,
    /// Longest silence while a request waits for a connection, or for the
    /// next byte of its response (as nginx's `proxy_read_timeout`).
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// Largest response body taken whole, in bytes. A streamed one
    /// ([`Context::fetch_stream`](crate::Context::fetch_stream),
    /// [`download`](crate::download)) has no limit: its pieces are passed on.
    pub max_body_bytes: usize,
    /// Where host names are resolved ([`crate::dns`]): a DNS server asked
    /// on the loop, or `None` for the runtime's blocking `getaddrinfo`. By
    /// default the `DNS_SERVER` environment variable (an invalid value is
    /// not used, and is reported once on stderr when the first name goes
    /// to the system's resolver instead: a program that would rather
    /// refuse to start, as examples/proxy does, checks
    /// [`dns::server_from_env`](crate::dns::server_from_env) itself).
    pub dns_server: Option<SocketAddr>,
    /// Longest time a name lookup through `dns_server` may take.
    pub dns_timeout: Duration,
    /// PEM certificates to trust for `https://` instead of the Mozilla
    /// roots (as curl's `--cacert`: a private CA). `None`: the Mozilla
    /// roots of `webpki-roots`. Read at the first `https://` request; to
    /// refuse a bad file at start, check it with
    /// `edgepoll::tls::client_config` (with the `tls` feature).
    pub ca_certificates: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_per_origin: 32,
            max_connections: 512,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 64 << 20,
            dns_server: dns_server_from_env(),
            dns_timeout: Duration::from_secs(5),
            ca_certificates: None,
        }
    }
}

/// `DNS_SERVER`, read and checked once per program.
fn dns_env() -> &'static Result<Option<SocketAddr>, String> {
    static SERVER: std::sync::OnceLock<Result<Option<SocketAddr>, String>> =
        std::sync::OnceLock::new();
    SERVER.get_or_init(crate::dns::server_from_env)
}

fn dns_server_from_env() -> Option<SocketAddr> {
    dns_env().as_ref().ok().copied().flatten()
}

/// Says once, as the first name goes to the system's resolver, that an
/// invalid `DNS_SERVER` was not used. Not sooner: a program that sets its
/// own [`ClientOptions::dns_server`] over the default never uses it, and
/// would be told otherwise.
pub(crate) fn tell_dns_env_unused() {
    static TOLD: std::sync::Once = std::sync::Once::new();
    if let Err(e) = dns_env() {
        TOLD.call_once(|| {
            crate::log_to_stderr(&format!("edgepoll: {e}; names go to the system's resolver"))
        });
    }
}

/// Why a request failed.
///
/// A gateway's answer for each. Its 504 is the one a slow backend gets only
/// if the client gives up first. The loop's
/// [`Limits::respond_timeout`](crate::http::Limits::respond_timeout) runs
/// from the request's arrival; the client's
/// [`response_timeout`](ClientOptions::response_timeout) is a silence (in
/// a queue for a connection, or between the response's bytes), and a
/// lookup and a connect may come before it, up to
/// [`dns_timeout`](ClientOptions::dns_timeout) and
/// [`connect_timeout`](ClientOptions::connect_timeout). So set it below the
/// first less those two (30, 5 and 5 s by default), or the loop's own 504
/// may come first, as it does for a backend that trickles its answer.
///
/// ```
/// use edgepoll::http::{ParsedResponse, Response, StatusCode};
/// use edgepoll::ClientError;
///
/// /// What a gateway answers for a backend's result.
/// fn answer(result: Result<ParsedResponse, ClientError>) -> Response<'static> {
///     match result {
///         Ok(r) => Response::new(r.status).body(r.body),
///         Err(e) if e.is_timeout() => Response::new(StatusCode::GATEWAY_TIMEOUT),
///         Err(ClientError::Request(_)) => Response::new(StatusCode::BAD_REQUEST),
///         Err(_) => Response::new(StatusCode::BAD_GATEWAY),
///     }
/// }
/// assert_eq!(answer(Err(ClientError::Refused)).status(), StatusCode::BAD_GATEWAY);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The request could not be sent as given; nothing was sent.
    Request(RequestError),
    /// The host's name has no address.
    Resolve {
        /// The name, as the request's URL gave it.
        host: String,
        /// Why.
        error: ResolveError,
    },
    /// Nobody listens there.
    Refused,
    /// No connection could be made for another reason: the host or its
    /// network unreachable (the server's side), or no local port or
    /// descriptor free (this side; see [`is_local`](Self::is_local)).
    /// Nothing was sent.
    Connect(io::Error),
    /// The server reset the connection.
    Reset,
    /// The server closed the connection before the response was complete.
    Closed,
    /// The server closed (or reset) a reused keep-alive connection before
    /// any byte of the response: its idle timeout most likely met the
    /// request. An idempotent request with a whole body is sent again on a
    /// new connection (RFC 9112 §9.3.1); any other ends with this, as the
    /// server may have acted on it (or its streamed body is gone). Not a
    /// sign that the server is down.
    IdleClosed,
    /// No connection within the connect timeout.
    ConnectTimeout(Duration),
    /// No response, or no progress on it, within the timeout.
    Timeout(Duration),
    /// No connection to the origin came free (or its name did not resolve)
    /// within the response timeout: the request waited in the pool, and
    /// nothing of it was sent (but for an idempotent request waiting to go
    /// again after an idle close, whose first try the server did not act
    /// on). A forwarder may send it elsewhere.
    Queued(Duration),
    /// The response could not be read.
    BadResponse(ResponseError),
    /// Any other socket error.
    Io(io::Error),
    /// Given up by the loop: the client a piped response body went to
    /// ([`Context::respond_pipe`](crate::Context::respond_pipe)) is gone
    /// (one whose request was HEAD, whole with the head, ends `Ok`), or the
    /// client's request body piped into it
    /// ([`Context::fetch_stream`](crate::Context::fetch_stream)) broke off
    /// or ran past the length the request announced.
    Abandoned,
    /// The TLS connection of an `https://` request failed after its
    /// handshake, or could not be set up ([`TlsError::Config`]: no trusted
    /// root, a build without the `tls` feature).
    Tls(TlsError),
    /// The TLS handshake of an `https://` request failed: the server's
    /// certificate did not verify, it sent an alert or what is not TLS, it
    /// closed or reset the connection, or it did not finish within the
    /// connect timeout. Nothing of
    /// the request was sent, so a forwarder may send it elsewhere whatever
    /// its method. Shown as [`Tls`](Self::Tls) is.
    TlsHandshake(TlsError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Request(e) => write!(f, "request refused: {e}"),
            ClientError::Resolve { host, error } => write!(f, "cannot resolve {host:?}: {error}"),
            ClientError::Refused => f.write_str("connection refused"),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Reset => f.write_str("connection reset by peer"),
            ClientError::Closed => {
                f.write_str("the server closed the connection before the response was complete")
            }
            ClientError::IdleClosed => f.write_str(
                "the server closed a kept-alive connection as the request went out, before any response",
            ),
            ClientError::ConnectTimeout(t) => {
                write!(f, "no connection after {:.1} s", t.as_secs_f64())
            }
            ClientError::Timeout(t) => write!(f, "timed out after {:.1} s", t.as_secs_f64()),
            ClientError::Queued(t) => write!(
                f,
                "no connection free after {:.1} s; nothing was sent",
                t.as_secs_f64()
            ),
            ClientError::BadResponse(e) => write!(f, "bad response: {e}"),
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Abandoned => f.write_str("abandoned: its client is gone"),
            // Named once: most of the TLS layer's messages say TLS already.
            ClientError::Tls(e) | ClientError::TlsHandshake(e) => match e {
                TlsError::Certificate(_) | TlsError::Reset | TlsError::Broken(_) => {
                    write!(f, "TLS: {e}")
                }
                _ => write!(f, "{e}"),
            },
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// A failed connect as the client reports it: [`Refused`](Self::Refused)
    /// or [`Connect`](Self::Connect).
    pub(crate) fn connecting(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ClientError::Refused,
            _ => ClientError::Connect(e),
        }
    }

    /// A connection that broke off during its TLS handshake as the client
    /// reports it: the handshake's failure, so that a forwarder knows that
    /// nothing of the request went (rustls holds it until the handshake is
    /// over), whatever broke the connection (a reset, a timeout of the
    /// kernel's, an unreachable host).
    pub(crate) fn in_handshake(self) -> Self {
        match self {
            ClientError::Reset => ClientError::TlsHandshake(TlsError::Reset),
            ClientError::Io(e) => ClientError::TlsHandshake(TlsError::Broken(e.to_string())),
            other => other,
        }
    }

    /// Whether the server was too slow, which a gateway answers with 504
    /// (RFC 9110 §15.6.5): no response, or no progress on it, in time
    /// ([`Timeout`](Self::Timeout)); no connection
    /// ([`ConnectTimeout`](Self::ConnectTimeout)) or TLS handshake
    /// ([`TlsError::HandshakeTimeout`](crate::tls::TlsError::HandshakeTimeout))
    /// within the connect timeout; or no connection free for it
    /// ([`Queued`](Self::Queued), which a name still being looked up when
    /// the response timeout ran out is too). Not a lookup that the DNS
    /// server left unanswered for [`dns_timeout`](ClientOptions::dns_timeout):
    /// that is the DNS server's, a [`Resolve`](Self::Resolve) error.
    ///
    /// ```
    /// use edgepoll::tls::TlsError;
    /// use edgepoll::ClientError;
    /// use std::time::Duration;
    /// let handshake = ClientError::TlsHandshake(TlsError::HandshakeTimeout(Duration::from_secs(5)));
    /// assert!(handshake.is_timeout());
    /// assert!(!ClientError::Refused.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout(_)
                | ClientError::ConnectTimeout(_)
                | ClientError::Queued(_)
                | ClientError::TlsHandshake(crate::tls::TlsError::HandshakeTimeout(_))
        )
    }

    /// Whether a [`Connect`](Self::Connect) failed for a reason of this
    /// side's (no descriptor, local port or memory free, this host's
    /// firewall: anything but the server's signs, an unreachable host or
    /// network, a network down, a time out, a reset or an abort): a
    /// forwarder does not hold that against the server.
    ///
    /// ```
    /// use edgepoll::ClientError;
    /// use std::io::{Error, ErrorKind};
    /// let unreachable = ClientError::Connect(Error::from(ErrorKind::HostUnreachable));
    /// assert!(!unreachable.is_local());
    /// let no_port = ClientError::Connect(Error::from(ErrorKind::AddrNotAvailable));
    /// assert!(no_port.is_local());
    /// ```
    pub fn is_local(&self) -> bool {
        let ClientError::Connect(e) = self else {
            return false;
        };
        !matches!(
            e.kind(),
            io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::TimedOut
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        )
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ClientError::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ClientError::Reset,
            _ => ClientError::Io(e),
        }
    }
}

impl From<RequestError> for ClientError {
    fn from(e: RequestError) -> Self {
        ClientError::Request(e)
    }
}

/// What a forwarded request moves from place to place stays within 64 bytes
/// in a wasm32 build, which moves larger values with `memory.copy`: a call
/// into the runtime under WasmEdge's AOT code (see `short_copy`).
#[cfg(test)]
mod said {
    use super::*;

    #[test]
    fn a_tls_failure_names_tls_once() {
        let timeout = TlsError::HandshakeTimeout(Duration::from_secs(2));
        let said = |e: ClientError| e.to_string();
        assert_eq!(
            said(ClientError::TlsHandshake(timeout)),
            "no TLS handshake within 2.0 s"
        );
        let config = TlsError::Config("the CA file holds no certificate".into());
        assert_eq!(
            said(ClientError::Tls(config)),
            "TLS setup failed: the CA file holds no certificate"
        );
        let rejected = TlsError::Certificate("has expired".into());
        assert_eq!(
            said(ClientError::TlsHandshake(rejected)),
            "TLS: certificate rejected: has expired"
        );
        assert_eq!(
            said(ClientError::TlsHandshake(TlsError::Reset)),
            "TLS: the connection was reset during the handshake"
        );
    }

    /// Whatever broke a connection in its handshake is the handshake's
    /// failure, which a forwarder may try elsewhere: a reset was, and any
    /// other error of the socket (it was `Io`, not retried).
    #[test]
    fn a_connection_broken_in_its_handshake_is_the_handshakes_failure() {
        let reset = ClientError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(
            reset.in_handshake(),
            ClientError::TlsHandshake(TlsError::Reset)
        ));
        let lost = ClientError::from(io::Error::from(io::ErrorKind::TimedOut));
        let lost = lost.in_handshake();
        assert!(matches!(
            lost,
            ClientError::TlsHandshake(TlsError::Broken(_))
        ));
        assert!(lost
            .to_string()
            .starts_with("TLS: the connection failed during the handshake: "));
        assert!(matches!(
            ClientError::Closed.in_handshake(),
            ClientError::Closed
        ));
    }
}

#[cfg(all(test, target_pointer_width = "32"))]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn values_moved_per_exchange_stay_within_64_bytes() {
        let sizes = [
            ("ClientRequest", size_of::<ClientRequest>()),
            ("Exchange", size_of::<Exchange>()),
            ("ClientEvent", size_of::<ClientEvent>()),
            (
                "(ExchangeId, ExchangeEvent)",
                size_of::<(ExchangeId, ExchangeEvent)>(),
            ),
            ("ParsedResponse", size_of::<crate::http::ParsedResponse>()),
        ];
        for (name, size) in sizes {
            assert!(size <= 64, "{name} is {size} bytes");
        }
    }
}
