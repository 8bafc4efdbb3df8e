//! What the event loop drives: one internal trait over the three kinds of
//! application ([`http::Service`], [`ws::Service`], [`App`]), so the loop is
//! written once.

use super::core::Work;
use crate::app::{App, Context, Responder};
use crate::client::{ClientError, ExchangeId};
use crate::http::{self, BodyError, Dispatch, ParsedResponse, Reply, Request, RequestId};
use crate::ws::{self, Message};
use crate::{TimerId, Token};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Every callback the loop makes; the adapters below fill in what their
/// kind of application does not have.
pub(crate) trait Driven {
    /// Whether `streams_request` may say yes (only an [`App`] may).
    const STREAMS: bool = false;

    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a>;

    fn handles_connect(&self) -> bool {
        false
    }

    fn on_response(
        &mut self,
        _: ExchangeId,
        _: Result<ParsedResponse, ClientError>,
        _: &mut Context<'_>,
    ) {
    }

    fn on_interim(&mut self, _: ExchangeId, _: ParsedResponse, _: &mut Context<'_>) {}

    fn on_abandoned(&mut self, _: Responder, _: &mut Context<'_>) {}

    fn on_drain(&mut self, _: &mut Context<'_>) {}

    /// The WebSocket handshake just answered 101, if any.
    fn take_upgrade(&mut self) -> Option<Opened> {
        None
    }

    fn on_ws_open(&mut self, _: Token, _: &Opened, _: &mut Context<'_>) {}

    fn on_ws_message(&mut self, _: Token, _: Message<'_>, _: &mut Context<'_>) {}

    fn on_ws_close(&mut self, _: Token, _: &mut Context<'_>) {}

    fn streams_request(&mut self, _: &Request<'_>) -> bool {
        false
    }

    fn on_request_body(&mut self, _: Responder, _: Bytes, _: &mut Context<'_>) {}

    fn on_request_end(&mut self, _: Responder, _: Result<(), BodyError>, _: &mut Context<'_>) {}

    fn on_response_body(&mut self, _: ExchangeId, _: Bytes, _: &mut Context<'_>) {}

    fn on_response_end(&mut self, _: ExchangeId, _: Result<(), ClientError>, _: &mut Context<'_>) {}

    fn on_body_drained(&mut self, _: Responder, _: &mut Context<'_>) {}

    fn on_timer(&mut self, _: TimerId, _: &mut Context<'_>) {}
    /// Once, as the loop starts.
    fn on_start(&mut self, _: &mut Context<'_>) {}
}

/// A plain [`http::Service`]: always answers now.
pub(crate) struct HttpOnly<S>(pub(crate) S);

impl<S: http::Service> Driven for HttpOnly<S> {
    #[inline]
    fn call<'a>(&mut self, request: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
        Reply::Now(self.0.call(request))
    }

    fn handles_connect(&self) -> bool {
        self.0.handles_connect()
    }
}

/// A [`ws::Service`]: answers the handshakes of the requests it accepts.
pub(crate) struct WebSockets<S> {
    pub(crate) inner: S,
    /// The handshake just answered 101, for `on_open`.
    upgrade: Option<Opened>,
    /// The service's tick ([`ws::Service::tick`]): its period, and the
    /// timer of the next.
    tick: Option<(Duration, TimerId)>,
}

/// A WebSocket handshake answered 101: its request target, and the
/// subprotocol agreed on.
pub(crate) struct Opened {
    pub target: String,
    pub protocol: Option<String>,
}

impl<S> WebSockets<S> {
    pub(crate) fn new(inner: S) -> Self {
        WebSockets {
            inner,
            upgrade: None,
            tick: None,
        }
    }
}

impl<S: ws::Service> Driven for WebSockets<S> {
    fn call<'a>(&mut self, request: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
        if !self.inner.accepts(request) {
            return Reply::Now(self.inner.call(request));
        }
        let offered = ws::handshake::offered_protocols(request);
        let protocol = match offered.is_empty() {
            true => None,
            false => self.inner.protocol(request, &offered),
        };
        let response = ws::handshake::answer_speaking(request, protocol);
        if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            self.upgrade = Some(Opened {
                target: request.target().to_string(),
                // As the answer has it: only one that was offered.
                protocol: protocol.filter(|p| offered.contains(p)).map(String::from),
            });
        }
        Reply::Now(response)
    }

    fn handles_connect(&self) -> bool {
        self.inner.handles_connect()
    }

    fn take_upgrade(&mut self) -> Option<Opened> {
        self.upgrade.take()
    }

    fn on_ws_open(&mut self, token: Token, opened: &Opened, cx: &mut Context<'_>) {
        let protocol = opened.protocol.as_deref();
        self.inner
            .on_open(token, &opened.target, protocol, cx.outbox);
    }

    fn on_ws_message(&mut self, token: Token, message: Message<'_>, cx: &mut Context<'_>) {
        self.inner.on_message(token, message, cx.outbox);
    }

    fn on_ws_close(&mut self, token: Token, cx: &mut Context<'_>) {
        self.inner.on_close(token, cx.outbox);
    }

    fn on_start(&mut self, cx: &mut Context<'_>) {
        if let Some(period) = self.inner.tick() {
            // A period of nothing would be a busy loop.
            let period = crate::timer::bounded(period).max(Duration::from_millis(1));
            self.tick = Some((period, cx.set_timer(cx.now() + period)));
        }
    }

    fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
        let Some((period, due)) = self.tick else {
            return;
        };
        if timer != due {
            return;
        }
        let now = cx.now();
        let next = crate::app_timers::next_tick(due.at(), period, now);
        self.tick = Some((period, cx.set_timer(next)));
        self.inner.on_tick(now, cx.outbox);
    }
}

/// An [`App`]: may answer later and call out.
pub(crate) struct Apps<A>(pub(crate) A);

impl<A: App> Driven for Apps<A> {
    const STREAMS: bool = true;

    #[inline]
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a> {
        self.0.call(request, responder, cx)
    }

    fn handles_connect(&self) -> bool {
        self.0.handles_connect()
    }

    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        self.0.on_response(exchange, result, cx);
    }

    fn on_interim(&mut self, exchange: ExchangeId, response: ParsedResponse, cx: &mut Context<'_>) {
        self.0.on_interim(exchange, response, cx);
    }

    fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
        self.0.on_abandoned(responder, cx);
    }

    fn on_drain(&mut self, cx: &mut Context<'_>) {
        self.0.on_drain(cx);
    }

    fn streams_request(&mut self, request: &Request<'_>) -> bool {
        self.0.streams_request(request)
    }

    fn on_request_body(&mut self, responder: Responder, piece: Bytes, cx: &mut Context<'_>) {
        self.0.on_request_body(responder, piece, cx);
    }

    fn on_request_end(
        &mut self,
        responder: Responder,
        result: Result<(), BodyError>,
        cx: &mut Context<'_>,
    ) {
        self.0.on_request_end(responder, result, cx);
    }

    fn on_response_body(&mut self, exchange: ExchangeId, piece: Bytes, cx: &mut Context<'_>) {
        self.0.on_response_body(exchange, piece, cx);
    }

    fn on_response_end(
        &mut self,
        exchange: ExchangeId,
        result: Result<(), ClientError>,
        cx: &mut Context<'_>,
    ) {
        self.0.on_response_end(exchange, result, cx);
    }

    fn on_body_drained(&mut self, responder: Responder, cx: &mut Context<'_>) {
        self.0.on_body_drained(responder, cx);
    }

    fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
        self.0.on_timer(timer, cx);
    }

    fn on_start(&mut self, cx: &mut Context<'_>) {
        self.0.on_start(cx);
    }
}

/// The [`Dispatch`] one connection's handler calls: names each request with
/// its connection and counts what it serves.
pub(crate) struct Dispatcher<'x, D> {
    pub(crate) driven: &'x mut D,
    /// Where the application's context is made from (only when a request
    /// is dispatched: most steps dispatch none), and where pieces of
    /// streamed request bodies wait for the loop to route them.
    pub(crate) work: &'x mut Work,
    pub(crate) now: Instant,
    pub(crate) token: Token,
    pub(crate) serial: u64,
}

/// A piece or the end of a streamed request body.
#[derive(Debug)]
pub(crate) enum Inbound {
    Piece(Bytes),
    End(Result<(), BodyError>),
}

impl<D> Dispatcher<'_, D> {
    fn responder(&self, id: RequestId) -> Responder {
        Responder {
            token: self.token,
            serial: self.serial,
            id,
        }
    }
}

impl<D: Driven> Dispatch for Dispatcher<'_, D> {
    const STREAMS: bool = D::STREAMS;

    #[inline]
    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
        self.work.served += 1;
        let responder = self.responder(id);
        if D::STREAMS && request.body_streams() {
            self.work.pipes.body_unbegun(responder);
        }
        self.driven
            .call(request, responder, &mut self.work.context(self.now))
    }

    fn handles_connect(&self) -> bool {
        self.driven.handles_connect()
    }

    fn streams(&mut self, request: &Request<'_>) -> bool {
        self.driven.streams_request(request)
    }

    fn body(&mut self, id: RequestId, piece: &[u8]) {
        let responder = self.responder(id);
        self.work
            .inbound
            .push((responder, Inbound::Piece(Bytes::copy_from_slice(piece))));
    }

    fn body_end(&mut self, id: RequestId, result: Result<(), BodyError>) {
        let responder = self.responder(id);
        self.work.inbound.push((responder, Inbound::End(result)));
    }
}
