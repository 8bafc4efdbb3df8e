//! Services that wait: an [`App`] answers a request now or later, calls
//! other services through the event loop's client, and is told when what it
//! waits for arrives or when a request stops waiting.

// The loop that reads these runs on WasmEdge only.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code))]

use crate::app_timers::Timers;
use crate::client::{ClientError, ClientRequest, ExchangeId, Pool, RequestError};
use crate::http::{BodyError, ParsedResponse, Reply, Request, RequestId, Response};
use crate::ws::Outbox;
use crate::{TimerId, Token};
use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use std::time::Instant;

/// Names one request that waits for its response: the connection (its
/// token and which connection held that token) and the request on it. Keep it
/// and answer with [`Context::respond`].
///
/// ```
/// use edgepoll::http::{Reply, Request, Response, StatusCode};
/// use edgepoll::{App, Context, Responder};
///
/// /// Holds every request until `/release` comes, then answers them all.
/// #[derive(Default)]
/// struct Gate(Vec<Responder>);
///
/// impl App for Gate {
///     fn call<'a>(&mut self, request: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
///         if request.path() != "/release" {
///             self.0.push(responder);
///             return Reply::Later;
///         }
///         for held in self.0.drain(..) {
///             cx.respond(held, Response::new(StatusCode::OK).body("released"));
///         }
///         Reply::Now(Response::new(StatusCode::OK))
///     }
///
///     // Timed out (504) or its client left: nothing to answer any more.
///     fn on_abandoned(&mut self, responder: Responder, _: &mut Context<'_>) {
///         self.0.retain(|held| *held != responder);
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Responder {
    pub(crate) token: Token,
    pub(crate) serial: u64,
    pub(crate) id: RequestId,
}

impl Responder {
    /// The connection's token.
    ///
    /// ```
    /// fn log(held: &edgepoll::Responder) {
    ///     eprintln!("connection {:?} waits", held.token());
    /// }
    /// ```
    pub fn token(&self) -> Token {
        self.token
    }

    /// The request's number on its connection.
    ///
    /// ```
    /// use edgepoll::{Responder, Token};
    /// // The oldest request held for connection `conn`.
    /// fn oldest(held: &[Responder], conn: Token) -> Option<&Responder> {
    ///     held.iter().filter(|r| r.token() == conn).min_by_key(|r| r.request())
    /// }
    /// ```
    pub fn request(&self) -> RequestId {
        self.id
    }

    /// Request `id` of the first connection at `slot`, for unit tests.
    #[cfg(test)]
    pub(crate) fn at(slot: usize, id: u64) -> Responder {
        Responder {
            token: Token(slot),
            serial: 1,
            id: RequestId(id),
        }
    }
}

/// What an app asked to send to a waiting request, in order.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A whole response.
    Whole(Response<'static>),
    /// The head of a streamed response, its body's length if known, and the
    /// exchange whose response body it is, if piped.
    Head(Response<'static>, Option<u64>, Option<ExchangeId>),
    /// A piece of a streamed body.
    Piece(Bytes),
    /// The end of a streamed body.
    End,
    /// The end of a streamed body that broke off: the response is cut.
    Abort,
    /// A 101 passing on an exchange's switch: the client's connection and
    /// the exchange's are joined once it is sent.
    Tunnel(Response<'static>, ExchangeId),
    /// An interim (1xx) response ahead of the final one.
    Interim(Response<'static>),
    /// The connection to close now, with a reset.
    Disconnect,
}

/// Bodies the loop moves between connections itself, with backpressure.
#[derive(Debug, Default)]
pub(crate) struct Pipes {
    /// A streamed request body that is an exchange's request body, and
    /// the other way round (each request pipes into one exchange at most).
    up: FxHashMap<Responder, ExchangeId>,
    up_from: FxHashMap<ExchangeId, Responder>,
    /// An exchange's response body that is a waiting request's response body.
    down: FxHashMap<ExchangeId, Responder>,
    /// A streamed request body that is its own response's body.
    echo: FxHashSet<Responder>,
    /// The pipes above listed at the connection slot where they end: a
    /// closing connection ends its own, and the application's own pieces
    /// look for a pipe into their response, among the few of their
    /// connection (as many as its pipelined requests), where a look
    /// through every pipe cost each close as many steps as there are pipes
    /// (20 000 uploads under way whose clients left took 1.4 s). Nearly
    /// every slot's list is empty.
    ends_at: Vec<Vec<SlotEnd>>,
    /// Switched exchanges whose connections are to be joined to the
    /// clients of these requests once their 101s are out.
    pub(crate) tunnels: FxHashMap<ExchangeId, Responder>,
    /// Request bodies piped (into exchanges, or echoed) since the loop last
    /// looked: one whose connection closed before the pipe was laid has no
    /// body to give, and one the application paused before is read again,
    /// now with the loop's own backpressure.
    pub(crate) fresh_up: Vec<Responder>,
    /// Streamed request bodies none of whose pieces has gone anywhere yet:
    /// only these can be piped ([`Context::fetch_stream`]) or echoed
    /// ([`Context::respond_with_request_body`]) whole.
    unbegun: FxHashSet<Responder>,
    /// The body whose first piece the application is being handed: it may
    /// still echo the rest (and send that piece itself).
    pub(crate) first_piece: Option<Responder>,
    /// Streamed responses whose head the application was handed and whose
    /// body has gone nowhere yet: only these can be piped
    /// ([`Context::respond_pipe`]). Few at a time (a head is piped, or its
    /// body begins, soon after it comes), and a list costs a forwarder a
    /// tenth of a hash set's instructions per request.
    pipeable: Vec<ExchangeId>,
    /// Request bodies piped up or echoed whose connection closed lately
    /// (cleared by the loop once per pass over its inbound pieces): pieces
    /// of theirs still in a batch being routed are dropped, for the
    /// application gave those bodies away.
    pub(crate) cut_bodies: Vec<Responder>,
}

/// A pipe, as listed at the slot of the connection where it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotEnd {
    Up(Responder),
    Down(ExchangeId, Responder),
    Echo(Responder),
    Unbegun(Responder),
}

impl SlotEnd {
    fn responder(&self) -> Responder {
        match *self {
            SlotEnd::Up(r) | SlotEnd::Down(_, r) | SlotEnd::Echo(r) | SlotEnd::Unbegun(r) => r,
        }
    }
}

impl Pipes {
    /// Pipes the streamed body of `responder`'s request into `exchange`.
    /// A request piped again leaves its earlier exchange without a body.
    pub(crate) fn pipe_up(&mut self, responder: Responder, exchange: ExchangeId) {
        match self.up.insert(responder, exchange) {
            Some(earlier) => _ = self.up_from.remove(&earlier),
            None => self.list(SlotEnd::Up(responder)),
        }
        self.up_from.insert(exchange, responder);
    }

    /// Lists a pipe at the slot where it ends.
    #[inline]
    fn list(&mut self, end: SlotEnd) {
        let slot = end.responder().token.0;
        if slot >= self.ends_at.len() {
            self.ends_at.resize_with(slot + 1, Vec::new);
        }
        self.ends_at[slot].push(end);
    }

    /// Takes a pipe off its slot's list.
    #[inline]
    fn unlist(&mut self, end: SlotEnd) {
        let slot = end.responder().token.0;
        let listed = self.ends_at.get(slot);
        match listed.and_then(|ends| ends.iter().position(|e| *e == end)) {
            Some(at) => _ = self.ends_at[slot].swap_remove(at),
            // Listed short, a close would skip a pipe of its own (the
            // exchange would then never end).
            None => debug_assert!(false, "{end:?} was not listed at slot {slot}"),
        }
    }

    /// The exchange `responder`'s request body is piped into.
    pub(crate) fn up_into(&self, responder: &Responder) -> Option<ExchangeId> {
        match self.up.is_empty() {
            true => None,
            false => self.up.get(responder).copied(),
        }
    }

    /// The request whose body is piped into `exchange`.
    pub(crate) fn up_from(&self, exchange: ExchangeId) -> Option<Responder> {
        match self.up_from.is_empty() {
            true => None,
            false => self.up_from.get(&exchange).copied(),
        }
    }

    /// Ends the pipe from `responder`'s request body.
    pub(crate) fn unpipe_up(&mut self, responder: &Responder) -> Option<ExchangeId> {
        let exchange = self.up_into(responder)?;
        self.up.remove(responder);
        self.up_from.remove(&exchange);
        self.unlist(SlotEnd::Up(*responder));
        Some(exchange)
    }

    /// Ends the pipe into `exchange`.
    pub(crate) fn unpipe_up_into(&mut self, exchange: ExchangeId) -> Option<Responder> {
        let responder = self.up_from(exchange)?;
        self.up_from.remove(&exchange);
        if self.up.remove(&responder).is_some() {
            self.unlist(SlotEnd::Up(responder));
        }
        Some(responder)
    }

    /// Pipes the response body of `exchange` into `responder`'s response.
    pub(crate) fn pipe_down(&mut self, exchange: ExchangeId, responder: Responder) {
        if let Some(earlier) = self.down.insert(exchange, responder) {
            self.unlist(SlotEnd::Down(exchange, earlier));
        }
        self.list(SlotEnd::Down(exchange, responder));
    }

    /// Whether the loop carries `source`'s body itself (with backpressure
    /// of its own): a request body into an exchange or its own response, an
    /// exchange's response body into a client's.
    pub(crate) fn carries(&self, source: Source) -> bool {
        match source {
            Source::Request(r) => self.up.contains_key(&r) || self.echo.contains(&r),
            Source::Exchange(e) => self.down.contains_key(&e),
        }
    }

    /// The response `exchange`'s body is piped into.
    #[inline]
    pub(crate) fn down_into(&self, exchange: ExchangeId) -> Option<Responder> {
        self.down.get(&exchange).copied()
    }

    /// Whether a request body of the connection at `slot` is piped up or
    /// echoed: a close looks for its pieces still queued only then.
    pub(crate) fn carries_bodies_at(&self, slot: usize) -> bool {
        let ends = self.ends_at.get(slot);
        ends.is_some_and(|ends| {
            (ends.iter()).any(|end| matches!(end, SlotEnd::Up(_) | SlotEnd::Echo(_)))
        })
    }

    /// Whether `responder`'s response takes its body from an exchange's.
    /// Asked only of the application's own pieces: looked for among the
    /// pipes of its connection, nearly always none.
    pub(crate) fn is_piped_down(&self, responder: &Responder) -> bool {
        let ends = self.ends_at.get(responder.token.0);
        ends.is_some_and(|ends| {
            (ends.iter()).any(|end| matches!(end, SlotEnd::Down(_, r) if r == responder))
        })
    }

    /// Ends the pipe from `exchange`'s response body.
    pub(crate) fn unpipe_down(&mut self, exchange: ExchangeId) -> Option<Responder> {
        let responder = self.down.remove(&exchange)?;
        self.unlist(SlotEnd::Down(exchange, responder));
        Some(responder)
    }

    /// Pipes `responder`'s request body into its own response.
    pub(crate) fn pipe_echo(&mut self, responder: Responder) {
        if self.echo.insert(responder) {
            self.list(SlotEnd::Echo(responder));
        }
    }

    /// Whether `responder`'s request body is piped into its own response.
    #[inline]
    pub(crate) fn echoes(&self, responder: &Responder) -> bool {
        !self.echo.is_empty() && self.echo.contains(responder)
    }

    /// Ends the pipe of `responder`'s request body into its own response.
    pub(crate) fn unpipe_echo(&mut self, responder: &Responder) {
        if self.echo.remove(responder) {
            self.unlist(SlotEnd::Echo(*responder));
        }
    }

    /// A streamed request body was dispatched: nothing of it has gone
    /// anywhere yet.
    pub(crate) fn body_unbegun(&mut self, responder: Responder) {
        if self.unbegun.insert(responder) {
            self.list(SlotEnd::Unbegun(responder));
        }
    }

    /// Takes `responder`'s body as begun (its first piece or its end is
    /// on its way, or it is being piped or echoed); whether it had not
    /// begun before.
    #[inline]
    pub(crate) fn begin_body(&mut self, responder: &Responder) -> bool {
        let was = !self.unbegun.is_empty() && self.unbegun.remove(responder);
        if was {
            self.unlist(SlotEnd::Unbegun(*responder));
        }
        was
    }

    /// The head of `exchange`'s streamed response is on its way to the
    /// application: its body may be piped.
    pub(crate) fn head_out(&mut self, exchange: ExchangeId) {
        self.pipeable.push(exchange);
    }

    /// Takes `exchange`'s response body as going somewhere (the
    /// application, a pipe), or gone; whether it could still be piped.
    #[inline]
    pub(crate) fn take_pipeable(&mut self, exchange: ExchangeId) -> bool {
        match self.pipeable.iter().position(|&e| e == exchange) {
            Some(at) => {
                self.pipeable.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Ends every pipe at connection slot `slot` (its connection closed):
    /// the exchanges its request bodies went into, then those whose
    /// response bodies came to it; its bodies that had not begun are
    /// forgotten.
    pub(crate) fn unpipe_slot(&mut self, slot: usize) -> (Vec<ExchangeId>, Vec<ExchangeId>) {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        let Some(ends) = self.ends_at.get_mut(slot).filter(|ends| !ends.is_empty()) else {
            return (up, down);
        };
        let mut ends = std::mem::take(ends);
        for end in ends.drain(..) {
            match end {
                SlotEnd::Up(responder) => {
                    if let Some(exchange) = self.up.remove(&responder) {
                        self.up_from.remove(&exchange);
                        up.push(exchange);
                        self.cut_bodies.push(responder);
                    }
                }
                SlotEnd::Down(exchange, _) => {
                    if self.down.remove(&exchange).is_some() {
                        down.push(exchange);
                    }
                }
                SlotEnd::Echo(responder) => {
                    if self.echo.remove(&responder) {
                        self.cut_bodies.push(responder);
                    }
                }
                SlotEnd::Unbegun(responder) => _ = self.unbegun.remove(&responder),
            }
        }
        // The list keeps its room for the slot's next connection.
        self.ends_at[slot] = ends;
        (up, down)
    }
}

/// A body's source, held back or read again: by the loop (backpressure of
/// the bodies it pipes) or by the application ([`Context::pause_request_body`],
/// [`Context::pause_response_body`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A streamed request body.
    Request(Responder),
    /// An exchange's response body.
    Exchange(ExchangeId),
}

/// What an [`App`] can ask of the event loop from any of its callbacks.
///
/// A response streamed a piece at a time, the next when the last is taken
/// ([`App::on_body_drained`]), so that a slow client holds one piece, not
/// the whole body:
///
/// ```
/// use bytes::Bytes;
/// use edgepoll::http::{Reply, Request, Response, StatusCode};
/// use edgepoll::{App, Context, Responder};
/// use std::collections::HashMap;
///
/// /// Lines left to send, by response.
/// #[derive(Default)]
/// struct Countdown(HashMap<Responder, u32>);
///
/// impl App for Countdown {
///     fn call<'a>(&mut self, request: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
///         // To HEAD the head is the whole answer (no piece is asked for);
///         // while the server drains, no stream begins.
///         if request.method() == "HEAD" || cx.draining() {
///             return Reply::Now(Response::new(StatusCode::OK));
///         }
///         // No length given: chunked.
///         cx.respond_stream(responder, Response::new(StatusCode::OK), None);
///         self.0.insert(responder, 1000);
///         self.on_body_drained(responder, cx);
///         Reply::Later
///     }
///
///     fn on_body_drained(&mut self, responder: Responder, cx: &mut Context<'_>) {
///         let Some(left) = self.0.get_mut(&responder) else { return };
///         match left.checked_sub(1) {
///             Some(n) => {
///                 *left = n;
///                 cx.send_body(responder, Bytes::from(format!("{n}\n")));
///             }
///             None => {
///                 self.0.remove(&responder);
///                 cx.end_body(responder);
///             }
///         }
///     }
///
///     fn on_abandoned(&mut self, responder: Responder, _: &mut Context<'_>) {
///         self.0.remove(&responder);
///     }
///
///     fn on_drain(&mut self, cx: &mut Context<'_>) {
///         for (responder, _) in self.0.drain() {
///             cx.end_body(responder);
///         }
///     }
/// }
/// ```
pub struct Context<'l> {
    pub(crate) now: Instant,
    pub(crate) draining: bool,
    pub(crate) responses: &'l mut Vec<(Responder, Answer)>,
    pub(crate) pool: &'l mut Pool,
    pub(crate) outbox: &'l mut Outbox,
    pub(crate) pipes: &'l mut Pipes,
    pub(crate) paused: &'l mut Vec<(Source, bool)>,
    pub(crate) timers: &'l mut Timers,
}

impl Context<'_> {
    /// When the loop last woke up: the time of this round of its events,
    /// read once for all of them (the clock is a host call). Under load a
    /// round's work takes a while (on WasmEdge's interpreter, hundreds of
    /// milliseconds at times), so a request handled late in a round came
    /// after it: a deadline counted from it comes that much sooner for
    /// that request. Read `Instant::now()` where that matters.
    ///
    /// ```
    /// use edgepoll::http::{Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, Context, Responder};
    ///
    /// /// Says how long the request waited for its turn in the round.
    /// struct Turn;
    ///
    /// impl App for Turn {
    ///     fn call<'a>(&mut self, _: &Request<'a>, _: Responder, cx: &mut Context<'_>) -> Reply<'a> {
    ///         let waited = std::time::Instant::now().saturating_duration_since(cx.now());
    ///         Reply::Now(Response::new(StatusCode::OK).body(format!("{waited:?}\n")))
    ///     }
    /// }
    /// # let _ = Turn;
    /// ```
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether the server is draining ([`App::on_drain`] was called). A
    /// request under way when the drain began is still taken, after that
    /// call: a service that streams without end answers it otherwise (or
    /// ends the stream at once), or it would hold the drain open.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Answers a request the app deferred. The response goes out after the
    /// callback returns, once the responses before it on its connection
    /// have; for a request that no longer waits (answered already, or told
    /// of through [`App::on_abandoned`]) it is dropped. A 1xx or 101 is no
    /// final answer: it goes out as a 500, and the connection closes.
    pub fn respond(&mut self, responder: Responder, response: Response<'static>) {
        self.responses.push((responder, Answer::Whole(response)));
    }

    /// Sends `head`, an interim (1xx) response such as `103 Early Hints`,
    /// to a deferred request ahead of its final response: only if it can
    /// go now (see [`Handler::respond_interim`](crate::http::Handler::respond_interim));
    /// otherwise it is dropped, as a hint may be.
    pub fn respond_interim(&mut self, responder: Responder, head: Response<'static>) {
        self.responses.push((responder, Answer::Interim(head)));
    }

    /// Answers a deferred request with `head` and a body to follow in pieces
    /// ([`send_body`](Self::send_body), [`end_body`](Self::end_body)): of
    /// `length` bytes, or chunked (until the close for an HTTP/1.0 client).
    /// The head's own body is not sent. The app sends the first piece (or
    /// ends the body) itself: the head alone asks for nothing, as the
    /// `Countdown` example on [`Context`] does by calling its own
    /// `on_body_drained` from `call`. Each piece taken is followed by a
    /// call of [`App::on_body_drained`] when the response can take more: at
    /// once while at most
    /// [`ServerOptions::body_backlog`](crate::ServerOptions::body_backlog)
    /// bytes wait to be sent, else once they have mostly gone out. Send a
    /// piece (or a few), then the next when it comes, and memory stays
    /// bounded by the backlog. To HEAD, and with a status that has no body
    /// (204, 304), the response is complete with its head (to HEAD the
    /// length announced is GET's): its pieces and end are dropped, and no
    /// call asks for more. A piece past `length` cuts the response (it is
    /// dropped, and the connection closes after what fit), as a body ended
    /// short of it does. Once the head is out no timeout runs for the body
    /// (a stream may be long-lived): the app ends it.
    pub fn respond_stream(
        &mut self,
        responder: Responder,
        head: Response<'static>,
        length: Option<u64>,
    ) {
        self.responses
            .push((responder, Answer::Head(head, length, None)));
    }

    /// A piece of the body of a response begun with
    /// [`respond_stream`](Self::respond_stream). One for a response whose
    /// body is piped from an exchange ([`respond_pipe`](Self::respond_pipe))
    /// is dropped, as is such a response's [`end_body`](Self::end_body):
    /// mixed in, it would corrupt the body the pipe carries.
    pub fn send_body(&mut self, responder: Responder, piece: Bytes) {
        self.responses.push((responder, Answer::Piece(piece)));
    }

    /// Ends the body of a response begun with
    /// [`respond_stream`](Self::respond_stream). For a body whose source
    /// failed, [`abort_body`](Self::abort_body): a chunked one ended here
    /// looks complete to the client.
    pub fn end_body(&mut self, responder: Responder) {
        self.responses.push((responder, Answer::End));
    }

    /// Ends the body of a response begun with
    /// [`respond_stream`](Self::respond_stream) as broken off, for when its
    /// source failed: the client's connection closes after what was sent,
    /// without the last chunk of a chunked body (which
    /// [`end_body`](Self::end_body) would send, so that the client took
    /// the part for the whole), and the client sees the response cut
    /// short of its announced length or last chunk. (To an HTTP/1.0 client,
    /// whose body ends at the close, and for a body already sent to its
    /// announced length, the close looks like an end, as it would anyway.)
    /// Requests pipelined behind it on that connection are given up
    /// ([`App::on_abandoned`]). Dropped, as [`send_body`](Self::send_body)
    /// is, for a response not begun or ended, and for one piped from an
    /// exchange (the loop cuts that one itself when the exchange's body
    /// breaks off; [`cancel`](Self::cancel) the exchange to stop it). The
    /// `Shout` example on [`pause_response_body`](Self::pause_response_body)
    /// uses it.
    pub fn abort_body(&mut self, responder: Responder) {
        self.responses.push((responder, Answer::Abort));
    }

    /// Closes the connection `responder`'s request came on, now, with a
    /// reset ([`net::close_with_reset`](crate::net::close_with_reset)):
    /// what is queued for it is dropped (a response's pieces, and those of
    /// responses before it), and every request on it still owed an answer,
    /// this one too (a streamed response not ended is one), is given up and
    /// told to [`App::on_abandoned`]. For a client the application gives up
    /// on: a subscriber to an endless stream that has stopped reading, say,
    /// which [`abort_body`](Self::abort_body) would leave holding its
    /// connection (and what is queued for it) until the idle timeout, since
    /// the bytes before the cut are still to go. Does nothing once the
    /// connection is gone, or done with this request (its response handed
    /// over whole, or its stream ended): it may serve other requests by
    /// then.
    ///
    /// ```
    /// # use edgepoll::{App, Context, Responder};
    /// # use edgepoll::http::{Reply, Request, Response, StatusCode};
    /// # use bytes::Bytes;
    /// /// Streams events; drops a subscriber more than 1 MiB behind.
    /// struct Events { behind: std::collections::HashMap<Responder, usize> }
    /// impl Events {
    ///     fn publish(&mut self, event: Bytes, cx: &mut Context<'_>) {
    ///         for (subscriber, behind) in &mut self.behind {
    ///             *behind += event.len();
    ///             match *behind > 1 << 20 {
    ///                 true => cx.disconnect(*subscriber),
    ///                 false => cx.send_body(*subscriber, event.clone()),
    ///             }
    ///         }
    ///     }
    /// }
    /// impl App for Events {
    ///     fn call<'a>(&mut self, request: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
    ///         // To HEAD the head is the whole answer: no stream to keep.
    ///         if request.method() == "HEAD" {
    ///             return Reply::Now(Response::new(StatusCode::OK));
    ///         }
    ///         cx.respond_stream(responder, Response::new(StatusCode::OK), None);
    ///         self.behind.insert(responder, 0);
    ///         Reply::Later
    ///     }
    ///     fn on_body_drained(&mut self, responder: Responder, _: &mut Context<'_>) {
    ///         if let Some(behind) = self.behind.get_mut(&responder) {
    ///             *behind = 0; // caught up
    ///         }
    ///     }
    ///     fn on_abandoned(&mut self, responder: Responder, _: &mut Context<'_>) {
    ///         self.behind.remove(&responder); // gone, or dropped above
    ///     }
    /// }
    /// ```
    pub fn disconnect(&mut self, responder: Responder) {
        self.responses.push((responder, Answer::Disconnect));
    }

    /// Answers a deferred request with `head` and, as its body, the body of
    /// the response to `exchange` (started with
    /// [`fetch_stream`](Self::fetch_stream)), moved by the loop piece by
    /// piece: the exchange's connection is not read while the client's has
    /// more than [`ServerOptions::body_backlog`](crate::ServerOptions::body_backlog)
    /// bytes to send. If that body breaks off, the client's connection
    /// closes without completing it. Either way [`App::on_response_end`]
    /// says how it ended. To a HEAD the body is not sent: the response
    /// ends with its head (told as `Ok`), and the exchange is cut at the
    /// body's first piece rather than read for nothing. Pipe it from
    /// [`App::on_response`], where its head
    /// came. A body that cannot be piped whole (one of an exchange made
    /// with [`fetch`](Self::fetch), one whose head has not come yet, one
    /// whose pieces have begun to go to [`App::on_response_body`] or to
    /// another response, one that ended) is not: the client gets a 500
    /// instead, and the exchange goes on as the application's.
    pub fn respond_pipe(
        &mut self,
        responder: Responder,
        head: Response<'static>,
        length: Option<u64>,
        exchange: ExchangeId,
    ) {
        self.responses
            .push((responder, Answer::Head(head, length, Some(exchange))));
    }

    /// Answers a request whose body streams ([`App::streams_request`]) with
    /// `head` and, as the response body, that same request body as it
    /// arrives: an echo at any size in bounded memory (the request body is
    /// not read while more than
    /// [`ServerOptions::body_backlog`](crate::ServerOptions::body_backlog)
    /// bytes of the response wait to be sent). Only for a body that
    /// streams and has not begun (from [`App::call`], or from
    /// [`App::on_request_body`] with its first piece, which is then the
    /// application's to send): for any other (a body that came whole,
    /// one piped into an exchange, one whose pieces have gone to the
    /// application) the client gets a 500 instead.
    pub fn respond_with_request_body(
        &mut self,
        responder: Responder,
        head: Response<'static>,
        length: Option<u64>,
    ) {
        let first_piece = self.pipes.first_piece == Some(responder);
        if !(self.pipes.begin_body(&responder) || first_piece) {
            let refused = misused("the response was to be a request body that cannot come\n");
            self.responses.push((responder, Answer::Whole(refused)));
            return;
        }
        self.pipes.pipe_echo(responder);
        self.pipes.fresh_up.push(responder);
        self.responses
            .push((responder, Answer::Head(head, length, None)));
    }

    /// Answers a deferred request that offered to switch protocols (a
    /// bodiless HTTP/1.1 request whose `Connection` names its `Upgrade`)
    /// with `head`, a 101, and joins its connection to that of `exchange`,
    /// a request made with [`ClientRequest::upgrade`] that a 101 answered
    /// ([`App::on_response`]): from then on the loop moves bytes between
    /// the two unread and unchanged, both ways, until both sides have
    /// closed (or [`ServerOptions::tunnel_idle_timeout`](crate::ServerOptions::tunnel_idle_timeout),
    /// or a drain: each side is then written what it was owed and closes,
    /// and an upgrade answered during one gets 503 with no tunnel).
    /// How a proxy passes a WebSocket through. If the request made no such
    /// offer, or `head` is not a 101, or `exchange`'s connection is not
    /// there to join (it must be called from that `on_response`), the
    /// client gets a 502 and the upstream connection closes; if the request
    /// no longer waits, the upstream connection closes.
    pub fn respond_tunnel(
        &mut self,
        responder: Responder,
        head: Response<'static>,
        exchange: ExchangeId,
    ) {
        self.pipes.tunnels.insert(exchange, responder);
        self.responses
            .push((responder, Answer::Tunnel(head, exchange)));
    }

    /// Sends a request whose response comes back streamed: its head to
    /// [`App::on_response`] (with an empty body), then its body's pieces to
    /// [`App::on_response_body`] and its end to [`App::on_response_end`],
    /// unless [`respond_pipe`](Self::respond_pipe) sends them on. With
    /// `body_from`, the request's body is the streamed body of that waiting
    /// request ([`App::streams_request`]; give the request
    /// [`ClientRequest::streamed_body`]), moved by the loop with
    /// backpressure both ways. Pipe a body from [`App::call`], where it has
    /// not begun: one that has (a piece or its end went to the
    /// application, or it is piped or echoed already), or that does not
    /// stream, or a `request` not given a streamed body (it would go out
    /// with a body of its own, empty, and the pieces would have nowhere to
    /// go), is refused here ([`RequestError::BodyFrom`]), and nothing is
    /// sent; so is a streamed body without `body_from`. A request answered
    /// before its body is all in (a `202` at once, or a 504 at its respond
    /// timeout) reads the rest as any answered request does, within
    /// [`Limits::max_body_after_response`](crate::http::Limits::max_body_after_response)
    /// (256 KiB by default): past that the body breaks off, and the exchange
    /// fails ([`ClientError::Abandoned`](crate::ClientError::Abandoned)).
    /// To send a large upload on in the background, answer once it is through.
    /// An exchange that ends before the body it carries (its server
    /// answered early, it failed, or it was cancelled) gives the rest back:
    /// its pieces and end come to [`App::on_request_body`] and
    /// [`App::on_request_end`], to drop or use.
    pub fn fetch_stream(
        &mut self,
        request: &ClientRequest,
        body_from: Option<Responder>,
    ) -> Result<ExchangeId, RequestError> {
        let Some(responder) = body_from else {
            return self.pool.submit(request, self.now, true);
        };
        if request.body_framing().is_none() || !self.pipes.begin_body(&responder) {
            return Err(RequestError::BodyFrom);
        }
        match self.pool.submit_piped(request, self.now, true) {
            Ok(exchange) => {
                self.pipes.pipe_up(responder, exchange);
                self.pipes.fresh_up.push(responder);
                Ok(exchange)
            }
            Err(e) => {
                // Still the application's, as it was.
                self.pipes.body_unbegun(responder);
                Err(e)
            }
        }
    }

    /// Sends a request through the loop's client; its result comes to
    /// [`App::on_response`] with the id returned here. A request that could
    /// not be sent as it is (a CR or LF in a field, say), or whose body is
    /// to be streamed (only [`fetch_stream`](Self::fetch_stream) has a
    /// source for its pieces: [`RequestError::BodyFrom`]), is refused here,
    /// before anything is sent.
    pub fn fetch(&mut self, request: &ClientRequest) -> Result<ExchangeId, RequestError> {
        self.pool.submit(request, self.now, false)
    }

    /// Gives up an exchange started with [`fetch`](Self::fetch): its result
    /// will not be reported. One still queued is dropped; one under way
    /// closes its connection (a response cut short cannot be resumed).
    pub fn cancel(&mut self, exchange: ExchangeId) {
        self.pool.cancel(exchange);
    }

    /// Stops (`true`) or resumes (`false`) reading the streamed request body
    /// of `responder`, whose pieces come to [`App::on_request_body`]: the
    /// backpressure of a body the application passes on itself (with
    /// [`send_body`](Self::send_body) from
    /// [`on_request_body`](App::on_request_body), say), where the loop
    /// cannot tell where it goes. Pause when a piece is taken and resume at
    /// [`App::on_body_drained`], and a slow reader holds back the client's
    /// socket, not memory. While paused (and nothing waits to be sent), the
    /// client's idle timeout does not run; it starts over on resuming. A
    /// body the loop pipes, or is asked to in the same callback
    /// ([`fetch_stream`](Self::fetch_stream),
    /// [`respond_with_request_body`](Self::respond_with_request_body)), has
    /// its own backpressure: for it, this does nothing; nor for a body that
    /// has ended. A pause ends with its body, or when the body is handed to
    /// the loop so (paused first, to wait for a check, it is then read). A
    /// request still paused and unanswered at its respond timeout gets its
    /// 504 and its connection closes (the rest of its body is not read).
    pub fn pause_request_body(&mut self, responder: Responder, paused: bool) {
        self.paused.push((Source::Request(responder), paused));
    }

    /// Stops (`true`) or resumes (`false`) reading the response body of
    /// `exchange` (made with [`fetch_stream`](Self::fetch_stream)), whose
    /// pieces come to [`App::on_response_body`]: as
    /// [`pause_request_body`](Self::pause_request_body), for a body the
    /// application passes on itself. Its connection is not read while
    /// paused, so a fast server's pieces wait in its socket, and its
    /// response timeout does not run (it starts over on resuming). Pause
    /// from [`App::on_response`] or [`App::on_response_body`]: an exchange
    /// not yet on a connection, or over, is not paused. A body piped with
    /// [`respond_pipe`](Self::respond_pipe) (in this callback too) has the
    /// loop's own backpressure: for it, this does nothing, and a pause from
    /// an earlier callback ends when it is piped. A pause ends with the
    /// body, or with [`cancel`](Self::cancel); until then the exchange
    /// keeps its connection, unwatched and without a timeout, whatever
    /// becomes of the client it was for: cancel it in
    /// [`App::on_abandoned`], as below.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use edgepoll::http::{ParsedResponse, Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, ClientError, ClientRequest, Context, ExchangeId, Responder};
    /// use std::collections::HashMap;
    ///
    /// /// Sends each upstream body on in upper case: one piece out at a
    /// /// time, the upstream not read meanwhile.
    /// #[derive(Default)]
    /// struct Shout {
    ///     to: HashMap<ExchangeId, Responder>,
    ///     from: HashMap<Responder, ExchangeId>,
    /// }
    ///
    /// impl App for Shout {
    ///     fn call<'a>(&mut self, _: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
    ///         let Ok(request) = ClientRequest::new("GET", "http://127.0.0.1:8080/") else {
    ///             return Reply::Now(Response::new(StatusCode::INTERNAL_SERVER_ERROR));
    ///         };
    ///         match cx.fetch_stream(&request, None) {
    ///             Ok(exchange) => {
    ///                 self.to.insert(exchange, responder);
    ///                 self.from.insert(responder, exchange);
    ///                 Reply::Later
    ///             }
    ///             Err(_) => Reply::Now(Response::new(StatusCode::BAD_GATEWAY)),
    ///         }
    ///     }
    ///
    ///     fn on_response(&mut self, exchange: ExchangeId, result: Result<ParsedResponse, ClientError>, cx: &mut Context<'_>) {
    ///         let Some(&responder) = self.to.get(&exchange) else { return };
    ///         match result {
    ///             Ok(_) => cx.respond_stream(responder, Response::new(StatusCode::OK), None),
    ///             Err(_) => {
    ///                 self.to.remove(&exchange);
    ///                 self.from.remove(&responder);
    ///                 cx.respond(responder, Response::new(StatusCode::BAD_GATEWAY));
    ///             }
    ///         }
    ///     }
    ///
    ///     fn on_response_body(&mut self, exchange: ExchangeId, piece: Bytes, cx: &mut Context<'_>) {
    ///         let Some(&responder) = self.to.get(&exchange) else { return };
    ///         cx.send_body(responder, Bytes::from(piece.to_ascii_uppercase()));
    ///         cx.pause_response_body(exchange, true);
    ///     }
    ///
    ///     fn on_body_drained(&mut self, responder: Responder, cx: &mut Context<'_>) {
    ///         if let Some(&exchange) = self.from.get(&responder) {
    ///             cx.pause_response_body(exchange, false);
    ///         }
    ///     }
    ///
    ///     fn on_response_end(&mut self, exchange: ExchangeId, result: Result<(), ClientError>, cx: &mut Context<'_>) {
    ///         if let Some(responder) = self.to.remove(&exchange) {
    ///             self.from.remove(&responder);
    ///             match result {
    ///                 Ok(()) => cx.end_body(responder),
    ///                 // Cut short: ended, the chunked body would look whole.
    ///                 Err(_) => cx.abort_body(responder),
    ///             }
    ///         }
    ///     }
    ///
    ///     fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
    ///         if let Some(exchange) = self.from.remove(&responder) {
    ///             self.to.remove(&exchange);
    ///             cx.cancel(exchange);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn pause_response_body(&mut self, exchange: ExchangeId, paused: bool) {
        self.paused.push((Source::Exchange(exchange), paused));
    }

    /// Sets a timer for `at`: [`App::on_timer`] is called with it at the
    /// end of the first round of the loop's events that ends at `at` or
    /// later, never before, unless it is cancelled first. A time already
    /// past is taken as [`now`](Self::now) (the timer's
    /// [`at`](TimerId::at) says so; timers set for times past in one round
    /// fire in the order they were set) and fires at the end of the current
    /// round (set from [`App::on_timer`] itself: of the next, so that a
    /// timer set anew there cannot hold the loop). Setting and cancelling
    /// cost O(log n) in the timers set; those that fire together, O(log n)
    /// each. For a deadline of the app's own,
    /// shorter than the loop's timeouts or per request, a retry after a
    /// pause, or periodic work. A timer holds no connection open and does
    /// not hold a drain open: the loop ends when the drain does, and
    /// timers still set then are dropped, never told of.
    ///
    /// ```
    /// use edgepoll::http::{Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, Context, Responder, TimerId};
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// /// Answers each request half a second after it came. (For a client
    /// /// gone meanwhile, the answer is dropped.)
    /// #[derive(Default)]
    /// struct Later(HashMap<TimerId, Responder>);
    ///
    /// impl App for Later {
    ///     fn call<'a>(&mut self, _: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
    ///         let timer = cx.set_timer(cx.now() + Duration::from_millis(500));
    ///         self.0.insert(timer, responder);
    ///         Reply::Later
    ///     }
    ///
    ///     fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
    ///         if let Some(responder) = self.0.remove(&timer) {
    ///             cx.respond(responder, Response::new(StatusCode::OK).body("later\n"));
    ///         }
    ///     }
    /// }
    /// # let _ = Later::default();
    /// ```
    pub fn set_timer(&mut self, at: Instant) -> TimerId {
        // Not before now: set from a firing timer's callback, a time past
        // would sort ahead of the timers still to fire this round, and
        // each of them would be found only past it (quadratic in a round
        // whose callbacks each set one).
        self.timers.set(at.max(self.now))
    }

    /// Cancels `timer`, which then never fires: true if it was set and had
    /// not fired.
    ///
    /// ```
    /// use edgepoll::http::{ParsedResponse, Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, ClientError, ClientRequest, Context, ExchangeId, Responder, TimerId};
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// /// Asks an upstream, and answers 504 if it has not answered within
    /// /// 200 ms: a deadline per request, where the client's
    /// /// `response_timeout` is a silence. Each request is found by any of
    /// /// the three names the loop may call back with.
    /// #[derive(Default)]
    /// struct Deadline {
    ///     waiting: HashMap<Responder, (ExchangeId, TimerId)>,
    ///     by_exchange: HashMap<ExchangeId, Responder>,
    ///     by_timer: HashMap<TimerId, Responder>,
    /// }
    ///
    /// impl Deadline {
    ///     /// Forgets a request: its exchange and its timer, to cancel
    ///     /// whichever has not ended.
    ///     fn forget(&mut self, responder: Responder) -> Option<(ExchangeId, TimerId)> {
    ///         let (exchange, timer) = self.waiting.remove(&responder)?;
    ///         self.by_exchange.remove(&exchange);
    ///         self.by_timer.remove(&timer);
    ///         Some((exchange, timer))
    ///     }
    /// }
    ///
    /// impl App for Deadline {
    ///     fn call<'a>(&mut self, _: &Request<'a>, responder: Responder, cx: &mut Context<'_>) -> Reply<'a> {
    ///         let sent = ClientRequest::new("GET", "http://127.0.0.1:8080/").map(|r| cx.fetch(&r));
    ///         let Ok(Ok(exchange)) = sent else {
    ///             return Reply::Now(Response::new(StatusCode::BAD_GATEWAY));
    ///         };
    ///         let timer = cx.set_timer(cx.now() + Duration::from_millis(200));
    ///         self.waiting.insert(responder, (exchange, timer));
    ///         self.by_exchange.insert(exchange, responder);
    ///         self.by_timer.insert(timer, responder);
    ///         Reply::Later
    ///     }
    ///
    ///     fn on_response(&mut self, exchange: ExchangeId, result: Result<ParsedResponse, ClientError>, cx: &mut Context<'_>) {
    ///         let Some(&responder) = self.by_exchange.get(&exchange) else { return };
    ///         if let Some((_, timer)) = self.forget(responder) {
    ///             cx.cancel_timer(timer);
    ///         }
    ///         let status = result.map_or(StatusCode::BAD_GATEWAY, |r| r.status);
    ///         cx.respond(responder, Response::new(status));
    ///     }
    ///
    ///     fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
    ///         let Some(&responder) = self.by_timer.get(&timer) else { return };
    ///         if let Some((exchange, _)) = self.forget(responder) {
    ///             cx.cancel(exchange);
    ///         }
    ///         cx.respond(responder, Response::new(StatusCode::GATEWAY_TIMEOUT));
    ///     }
    ///
    ///     // The client left (or the loop's own 504 came first): the
    ///     // upstream is not waited on any more.
    ///     fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
    ///         if let Some((exchange, timer)) = self.forget(responder) {
    ///             cx.cancel(exchange);
    ///             cx.cancel_timer(timer);
    ///         }
    ///     }
    /// }
    /// # let _ = Deadline::default();
    /// ```
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer)
    }

    /// The WebSocket outbox: what the loop's WebSockets are sent. Under
    /// [`Server::serve_app`](crate::Server::serve_app) there are none, and
    /// what is queued here goes nowhere.
    pub fn outbox(&mut self) -> &mut Outbox {
        self.outbox
    }
}

/// The answer to a request that an application's misuse of [`Context`]
/// left without one it could send.
pub(crate) fn misused(reason: &'static str) -> Response<'static> {
    Response::new(crate::http::StatusCode::INTERNAL_SERVER_ERROR)
        .header("Content-Type", "text/plain")
        .body(reason.as_bytes())
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
///         // The path and query, whatever form the target came in
///         // (`GET http://host/x` is `/x`).
///         let url = format!("http://127.0.0.1:8080{}", request.origin_form());
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
    ///
    /// Only requests that were read whole and within the limits come here:
    /// the loop answers the others itself (400, 408, 413, 414, 417, 431,
    /// 501, 505, and the 504 past
    /// [`Limits::respond_timeout`](crate::http::Limits::respond_timeout)),
    /// reported through [`ServerOptions::log`](crate::ServerOptions::log),
    /// not to the app: a field the app adds to every response is not on
    /// those.
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a>;

    /// An exchange started with [`Context::fetch`] has ended (or, from
    /// [`Context::fetch_stream`], its response head is in). A 101 answers a
    /// request made with [`ClientRequest::upgrade`]: its connection has
    /// left the pool and waits for [`Context::respond_tunnel`] in this
    /// callback; otherwise it is closed when the callback returns.
    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        let _ = (exchange, result, cx);
    }

    /// An exchange's server sent an interim response (`103 Early Hints`,
    /// say) before its final one, which [`on_response`](Self::on_response)
    /// brings as usual. A forwarder passes it on with
    /// [`Context::respond_interim`]; by default it is dropped.
    fn on_interim(&mut self, exchange: ExchangeId, response: ParsedResponse, cx: &mut Context<'_>) {
        let _ = (exchange, response, cx);
    }

    /// A deferred request no longer waits, or a response the app streams
    /// will not be taken further: it got a 504 at its respond timeout; its
    /// client went away, or the app dropped it ([`Context::disconnect`]);
    /// a response before it closes the connection (RFC 9112 §9.6); or its
    /// streamed upload stalled or broke off before it
    /// was answered (the client got 408 or 400). Work done for it may stop,
    /// and anything given for it from now on is dropped. Its order against
    /// [`on_request_end`](Self::on_request_end), for a request whose body
    /// the app reads, is not fixed: free what is kept for it in whichever
    /// comes first.
    fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
        let _ = (responder, cx);
    }

    /// The server has begun to shut down gracefully: its listener was shut
    /// down (as `edgepoll-host --instances` does on SIGTERM) or
    /// [`ServerOptions::stop_after`](crate::ServerOptions::stop_after)
    /// requests were taken. No connection comes any more; each open one
    /// closes once what it was given is answered, and
    /// [`Server::serve_app`](crate::Server::serve_app) returns when none is
    /// left. So a response the app streams without end (server-sent
    /// events, say) would hold the shutdown open until the supervisor's
    /// grace runs out: end it here ([`Context::end_body`]; one ended short
    /// of its announced length is cut). Deferred requests may still be
    /// answered. Called once, at the end of the round of events in which
    /// the drain began: requests under way at the drain come to
    /// [`call`](Self::call) after it, and those read in that same round
    /// before it; all with [`Context::draining`] true, which is what to
    /// look at.
    ///
    /// WasmEdge itself gives no such cue: SIGTERM ends its process at once,
    /// mid-response. So an app that writes files there writes each where a
    /// half-written one does no harm (under a temporary name, renamed when
    /// whole) and clears at start what a killed run left.
    fn on_drain(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// As [`http::Service::handles_connect`](crate::http::Service::handles_connect).
    fn handles_connect(&self) -> bool {
        false
    }

    /// Whether the body of `request` (a request with one) comes in pieces
    /// as it arrives, held to
    /// [`Limits::max_stream_bytes`](crate::http::Limits::max_stream_bytes)
    /// instead of `max_body_bytes`: [`call`](Self::call) is then called at
    /// once with an empty body, and the pieces go to
    /// [`on_request_body`](Self::on_request_body), unless
    /// [`Context::fetch_stream`] sends them on. Not asked for a body of at
    /// most [`Limits::stream_above`](crate::http::Limits::stream_above)
    /// bytes (0 by default: an empty one), nor for one declared over
    /// `max_stream_bytes`: those come whole (413 past `max_body_bytes`), so
    /// `call` looks at [`Request::body_streams`](crate::http::Request::body_streams)
    /// to tell.
    ///
    /// It is also how to refuse a body before it comes: a body taken whole
    /// is read (and its `Expect: 100-continue` answered) before `call` sees
    /// the head, while a streamed one is asked for only once `call` has
    /// seen it. So streaming the requests `call` will refuse (a wrong
    /// `Content-Type`, a length over a route's own limit) answers them at
    /// once, and a client that waits for its 100 sends nothing; what it
    /// sends all the same is read and dropped, and
    /// [`on_request_end`](Self::on_request_end) is told
    /// [`BodyError::Unread`].
    fn streams_request(&mut self, request: &Request<'_>) -> bool {
        let _ = request;
        false
    }

    /// A piece of a streamed request body.
    fn on_request_body(&mut self, responder: Responder, piece: Bytes, cx: &mut Context<'_>) {
        let _ = (responder, piece, cx);
    }

    /// A streamed request body is complete, or broke off: called once for
    /// every body whose pieces come to [`on_request_body`](Self::on_request_body)
    /// (but not for one handed on from there with
    /// [`Context::respond_with_request_body`]: the rest goes into the
    /// response, whose end is the loop's), however it ends (the client closing or resetting the connection
    /// mid-body, a stall past the idle timeout, a response that closed the
    /// connection before the body was read, a body that ran on too long
    /// after its response: see [`BodyError`]). State kept
    /// for an upload can go here.
    fn on_request_end(
        &mut self,
        responder: Responder,
        result: Result<(), BodyError>,
        cx: &mut Context<'_>,
    ) {
        let _ = (responder, result, cx);
    }

    /// A piece of the body of a response from [`Context::fetch_stream`].
    fn on_response_body(&mut self, exchange: ExchangeId, piece: Bytes, cx: &mut Context<'_>) {
        let _ = (exchange, piece, cx);
    }

    /// The body of a response from [`Context::fetch_stream`] is complete,
    /// or broke off; for a body piped with [`Context::respond_pipe`], told
    /// once the loop has ended (or cut short) the client's response. A 101
    /// (an offer of [`ClientRequest::upgrade`] taken) has no body: its
    /// exchange ends at [`on_response`](Self::on_response).
    fn on_response_end(
        &mut self,
        exchange: ExchangeId,
        result: Result<(), ClientError>,
        cx: &mut Context<'_>,
    ) {
        let _ = (exchange, result, cx);
    }

    /// A timer set with [`Context::set_timer`] fired: its time has come.
    /// A timer fires once; set another for periodic work.
    fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
        let _ = (timer, cx);
    }

    /// Called once, as the loop starts, before any connection: where
    /// periodic work begins (its first timer), and an upstream may be asked
    /// before the first request comes.
    ///
    /// ```
    /// use edgepoll::http::{Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, Context, Responder, TimerId};
    /// use std::time::Duration;
    ///
    /// /// Counts seconds from the start, whoever asks.
    /// #[derive(Default)]
    /// struct Uptime(u64);
    ///
    /// impl App for Uptime {
    ///     fn on_start(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_timer(cx.now() + Duration::from_secs(1));
    ///     }
    ///
    ///     fn on_timer(&mut self, _: TimerId, cx: &mut Context<'_>) {
    ///         self.0 += 1;
    ///         cx.set_timer(cx.now() + Duration::from_secs(1)); // the next
    ///     }
    ///
    ///     fn call<'a>(&mut self, _: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
    ///         Reply::Now(Response::new(StatusCode::OK).body(format!("{} s\n", self.0)))
    ///     }
    /// }
    /// # let _ = Uptime::default();
    /// ```
    fn on_start(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// A response streamed with [`Context::send_body`] can take more: the
    /// pieces sent were taken with the backlog under
    /// [`ServerOptions::body_backlog`](crate::ServerOptions::body_backlog),
    /// or it has since fallen to a quarter of it. Mostly once for the
    /// pieces of one callback (pieces that went under the limit and then
    /// over it bring one now and one once it falls; either way the backlog
    /// stays bounded); never after the body ended, for an empty piece, or
    /// for a response to HEAD (complete with its head: its pieces are
    /// dropped). Not called for [`Context::respond_stream`]'s head alone:
    /// the first piece is the app's to send.
    fn on_body_drained(&mut self, responder: Responder, cx: &mut Context<'_>) {
        let _ = (responder, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists each slot's pipes anew from the maps and compares with the
    /// lists kept.
    fn assert_listed(pipes: &Pipes) {
        let mut expected: Vec<SlotEnd> = (pipes.up.keys().map(|r| SlotEnd::Up(*r)))
            .chain(pipes.down.iter().map(|(e, r)| SlotEnd::Down(*e, *r)))
            .chain(pipes.echo.iter().map(|r| SlotEnd::Echo(*r)))
            .chain(pipes.unbegun.iter().map(|r| SlotEnd::Unbegun(*r)))
            .collect();
        let mut listed = Vec::new();
        for (slot, ends) in pipes.ends_at.iter().enumerate() {
            for end in ends {
                assert_eq!(end.responder().token.0, slot, "{end:?} listed at {slot}");
                listed.push(*end);
            }
        }
        let key = |end: &SlotEnd| format!("{end:?}");
        expected.sort_by_key(key);
        listed.sort_by_key(key);
        assert_eq!(listed, expected);
        for r in pipes.down.values() {
            assert!(pipes.is_piped_down(r));
        }
    }

    #[test]
    fn every_pipe_is_listed_at_its_slot_however_it_is_laid_and_ended() {
        let mut pipes = Pipes::default();
        let steps: [&dyn Fn(&mut Pipes); 17] = [
            &|p| p.body_unbegun(Responder::at(3, 1)),
            &|p| p.body_unbegun(Responder::at(5, 1)),
            &|p| assert!(p.begin_body(&Responder::at(3, 1))),
            &|p| assert!(!p.begin_body(&Responder::at(3, 1)), "begun once"),
            &|p| p.pipe_up(Responder::at(3, 1), ExchangeId(10)),
            // The same request piped again: still one pipe.
            &|p| p.pipe_up(Responder::at(3, 1), ExchangeId(12)),
            &|p| p.pipe_down(ExchangeId(11), Responder::at(3, 2)),
            // The same exchange into another slot's response.
            &|p| p.pipe_down(ExchangeId(11), Responder::at(5, 2)),
            &|p| p.pipe_echo(Responder::at(3, 3)),
            &|p| p.pipe_echo(Responder::at(3, 3)),
            &|p| p.pipe_up(Responder::at(5, 1), ExchangeId(20)),
            &|p| _ = p.unpipe_up(&Responder::at(5, 1)),
            &|p| _ = p.unpipe_up(&Responder::at(5, 1)),
            &|p| _ = p.unpipe_up_into(ExchangeId(10)),
            &|p| _ = p.unpipe_down(ExchangeId(11)),
            &|p| p.unpipe_echo(&Responder::at(3, 3)),
            &|p| assert!(p.begin_body(&Responder::at(5, 1))),
        ];
        for step in steps {
            step(&mut pipes);
            assert_listed(&pipes);
        }
        assert_eq!(pipes.up_into(&Responder::at(3, 1)), Some(ExchangeId(12)));
        assert_eq!(pipes.down_into(ExchangeId(11)), None);
        assert!(pipes.ends_at[5].is_empty());
    }

    #[test]
    fn a_closing_slot_ends_exactly_its_own_pipes() {
        let mut pipes = Pipes::default();
        pipes.pipe_up(Responder::at(3, 1), ExchangeId(10));
        pipes.pipe_up(Responder::at(3, 1), ExchangeId(12));
        pipes.pipe_down(ExchangeId(11), Responder::at(3, 2));
        pipes.pipe_echo(Responder::at(3, 3));
        pipes.pipe_up(Responder::at(5, 1), ExchangeId(20));
        pipes.pipe_down(ExchangeId(21), Responder::at(5, 2));
        pipes.pipe_down(ExchangeId(22), Responder::at(5, 4));
        pipes.pipe_echo(Responder::at(5, 3));
        pipes.body_unbegun(Responder::at(3, 5));
        pipes.body_unbegun(Responder::at(5, 5));

        assert!(pipes.carries_bodies_at(3) && !pipes.carries_bodies_at(4));
        assert_eq!(
            pipes.unpipe_slot(3),
            (vec![ExchangeId(12)], vec![ExchangeId(11)])
        );
        assert!(!pipes.carries_bodies_at(3));
        assert_listed(&pipes);
        // The bodies it piped up or echoed are cut: pieces of theirs still
        // being routed are not the application's.
        let mut cut = std::mem::take(&mut pipes.cut_bodies);
        cut.sort_by_key(|r| r.id);
        assert_eq!(cut, [Responder::at(3, 1), Responder::at(3, 3)]);
        assert!(!pipes.echoes(&Responder::at(3, 3)));
        assert_eq!(pipes.up_into(&Responder::at(5, 1)), Some(ExchangeId(20)));
        assert!(pipes.echoes(&Responder::at(5, 3)));
        assert!(pipes.unbegun.contains(&Responder::at(5, 5)));
        assert!(!pipes.unbegun.contains(&Responder::at(3, 5)));

        let (up, mut down) = pipes.unpipe_slot(5);
        down.sort_by_key(|e| e.0);
        assert_eq!(
            (up, down),
            (vec![ExchangeId(20)], vec![ExchangeId(21), ExchangeId(22)])
        );
        assert_listed(&pipes);
        assert!(pipes.up.is_empty() && pipes.up_from.is_empty());
        assert!(pipes.down.is_empty() && pipes.echo.is_empty());
        assert!(pipes.unbegun.is_empty());
    }

    #[test]
    fn a_closing_slot_ends_the_pipes_listed_there_not_others() {
        let mut pipes = Pipes::default();
        pipes.pipe_down(ExchangeId(1), Responder::at(2, 1));
        pipes.unpipe_down(ExchangeId(1));
        // Put there behind the lists' back: only a walk would find it.
        pipes.down.insert(ExchangeId(3), Responder::at(2, 2));
        assert_eq!(pipes.unpipe_slot(2), (vec![], vec![]));
        assert_eq!(pipes.unpipe_slot(9), (vec![], vec![]), "a slot never seen");
        assert_eq!(pipes.down_into(ExchangeId(3)), Some(Responder::at(2, 2)));
    }

    #[test]
    fn a_piped_response_is_looked_for_among_its_slot_s_pipes() {
        let mut pipes = Pipes::default();
        pipes.pipe_up(Responder::at(2, 1), ExchangeId(1));
        pipes.pipe_down(ExchangeId(2), Responder::at(4, 1));
        assert!(pipes.is_piped_down(&Responder::at(4, 1)));
        assert!(!pipes.is_piped_down(&Responder::at(4, 2)));
        // Put there behind the lists' back: only a walk would find it.
        pipes.down.insert(ExchangeId(3), Responder::at(2, 1));
        assert!(!pipes.is_piped_down(&Responder::at(2, 1)));
        pipes.down.remove(&ExchangeId(3));
        assert_eq!(pipes.unpipe_down(ExchangeId(2)), Some(Responder::at(4, 1)));
        assert!(!pipes.is_piped_down(&Responder::at(4, 1)));
        assert_listed(&pipes);
    }
}
