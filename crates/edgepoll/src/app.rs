//! Services that wait: an [`App`] answers a request now or later, calls
//! other services through the event loop's client, and is told when what it
//! waits for arrives or when a request stops waiting.

use crate::client::{ClientError, ClientRequest, ExchangeId, Pool, RequestError};
use crate::http::{ParsedResponse, Reply, Request, RequestId, Response};
use crate::ws::Outbox;
use crate::Token;
use std::time::Instant;

/// Names one request that waits for its response: the connection (its
/// token and which connection held that token) and the request on it. Keep it
/// and answer with [`Context::respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Responder {
    pub(crate) token: Token,
    pub(crate) serial: u64,
    pub(crate) id: RequestId,
}

impl Responder {
    /// The connection's token.
    pub fn token(&self) -> Token {
        self.token
    }

    /// The request's number on its connection.
    pub fn request(&self) -> RequestId {
        self.id
    }
}

/// What an [`App`] can ask of the event loop from any of its callbacks.
pub struct Context<'l> {
    pub(crate) now: Instant,
    pub(crate) responses: &'l mut Vec<(Responder, Response<'static>)>,
    pub(crate) pool: &'l mut Pool,
    pub(crate) outbox: &'l mut Outbox,
}

impl Context<'_> {
    /// When the loop last woke up.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Answers a request the app deferred. The response goes out after the
    /// callback returns, once the responses before it on its connection
    /// have; for a request that no longer waits it is dropped (the app was
    /// or will be told through [`App::on_abandoned`]).
    pub fn respond(&mut self, responder: Responder, response: Response<'static>) {
        self.responses.push((responder, response));
    }

    /// Sends a request through the loop's client; its result comes to
    /// [`App::on_response`] with the id returned here. A request that could
    /// not be sent as it is (a CR or LF in a field, say) is refused here,
    /// before anything is sent.
    pub fn fetch(&mut self, request: &ClientRequest) -> Result<ExchangeId, RequestError> {
        self.pool.submit(request, self.now)
    }

    /// Gives up an exchange started with [`fetch`](Self::fetch): its result
    /// will not be reported. One still queued is dropped; one under way
    /// closes its connection (a response cut short cannot be resumed).
    pub fn cancel(&mut self, exchange: ExchangeId) {
        self.pool.cancel(exchange);
    }

    /// The WebSocket outbox (for an app that also serves WebSockets).
    pub fn outbox(&mut self) -> &mut Outbox {
        self.outbox
    }
}

/// A service on the event loop that may wait: it answers a request now, or
/// keeps its [`Responder`] and answers later from any callback, typically
/// once a request of its own ([`Context::fetch`]) has come back.
/// Responses leave each connection in request order; a request not answered
/// within [`Limits::respond_timeout`](crate::http::Limits::respond_timeout)
/// gets 504.
///
/// A service that forwards every request to a backend:
///
/// ```
/// use edgepoll::http::{ParsedResponse, Reply, Request, Response, StatusCode};
/// use edgepoll::{App, ClientError, ClientRequest, Context, ExchangeId, Responder};
/// use std::collections::HashMap;
///
/// #[derive(Default)]
/// struct Forward(HashMap<ExchangeId, Responder>);
///
/// impl App for Forward {
///     fn call<'a>(&mut self, request: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
///         let url = format!("http://127.0.0.1:8080{}", request.target());
///         match ClientRequest::new(request.method(), &url) {
///             Ok(upstream) => match cx.fetch(&upstream.body(request.body().to_vec())) {
///                 Ok(exchange) => {
///                     self.0.insert(exchange, responder);
///                     Reply::Later
///                 }
///                 Err(_) => Reply::Now(Response::new(StatusCode::BAD_REQUEST)),
///             },
///             Err(_) => Reply::Now(Response::new(StatusCode::BAD_REQUEST)),
///         }
///     }
///
///     fn on_response(&mut self, exchange: ExchangeId, result: Result<ParsedResponse, ClientError>, cx: &mut Context<'_>) {
///         let Some(responder) = self.0.remove(&exchange) else { return };
///         let response = match result {
///             Ok(r) => Response::new(r.status).body(r.body),
///             Err(_) => Response::new(StatusCode::BAD_GATEWAY),
///         };
///         cx.respond(responder, response);
///     }
///
///     fn on_abandoned(&mut self, responder: Responder, _: &mut Context<'_>) {
///         self.0.retain(|_, r| *r != responder);
///     }
/// }
/// ```
pub trait App {
    /// Answers `request`: [`Reply::Now`], or [`Reply::Later`] and
    /// [`Context::respond`] with `responder` later.
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a>;

    /// An exchange started with [`Context::fetch`] has ended.
    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        let _ = (exchange, result, cx);
    }

    /// A deferred request no longer waits: it got a 504 at its respond
    /// timeout, or its client went away. Work done for it may stop.
    fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
        let _ = (responder, cx);
    }

    /// As [`http::Service::handles_connect`](crate::http::Service::handles_connect).
    fn handles_connect(&self) -> bool {
        false
    }
}
