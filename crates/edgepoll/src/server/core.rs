//! The event loop itself: one [`Poll`], one table of connections (accepted,
//! upgraded and outbound alike), the timers, and the work the application
//! queued (responses, requests of its own, WebSocket messages, bodies to
//! move). It knows sockets, not HTTP; the state machines know their
//! protocols, not sockets.

use super::connection::{
    pump, Connection, Draining, HttpEndpoint, Role, Scratch, Upstream, WsEndpoint,
};
use super::driven::{Dispatcher, Driven, Inbound};
use super::held::{AtClient, Held};
use super::names::{self, NameSockets};
use super::tunnel::{self, Tunnel};
use super::{bodies, upstream, ws_router, ServerOptions};
use crate::app::{misused, Answer, Context, Pipes, Responder, Source};
use crate::app_timers::Timers;
use crate::client::{ClientError, ClientEvent, ExchangeId, Placement, Pool};
use crate::http::{Handler, Response, StatusCode, StreamError};
use crate::net::{self, Shutdown, SocketAddr, TcpListener, TcpStream};
use crate::tls::TlsSession;
use crate::ws::{Outbox, WebSocket};
use crate::{Events, Interest, Poll, Sweep, Token};
use rustc_hash::FxHashMap;
use std::io;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const READ_CHUNK: usize = 64 * 1024;

/// Why a piped response's exchange stopped before its body's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PipeEnd {
    /// Its client is gone: the application hears `Abandoned`.
    Cut,
    /// Whole with its head (an answer to HEAD): it hears `Ok`.
    Whole,
}

/// What a step decided for its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Close it.
    Close,
    /// Wait for this readiness.
    Watch(Interest),
    /// Wait to read, though nothing is due: an idle pooled connection,
    /// which only its server's close (or stray bytes, which end it too) can
    /// wake. It is warmed, not chilled: while it stays hot, the polls that
    /// watch it show it quiet, and a request goes on it without a read first
    /// (see [`Poll::polled_quiet`](crate::Poll::polled_quiet)); unused, it
    /// cools.
    Idle,
    /// Wait for nothing: it neither reads (held back) nor writes; the loop
    /// steps it again when that changes.
    Quiet,
}

/// What the application queued and the loop has yet to act on, apart from
/// the connections: borrowed beside one of them while it is driven.
#[derive(Default)]
pub(crate) struct Work {
    /// A drain has begun (see [`Context::draining`]).
    pub(crate) draining: bool,
    pub(crate) responses: Vec<(Responder, Answer)>,
    pub(crate) pool: Pool,
    pub(crate) outbox: Outbox,
    pub(crate) pipes: Pipes,
    /// Pieces of streamed request bodies, not yet routed.
    pub(crate) inbound: Vec<(Responder, Inbound)>,
    /// The connection each exchange under way is on.
    pub(crate) slot_of: FxHashMap<ExchangeId, usize>,
    /// Connections (slot, serial) that a 101 switched, by their exchange,
    /// until they are joined to a client's ([`Context::respond_tunnel`]).
    pub(crate) switched: FxHashMap<ExchangeId, (usize, u64)>,
    /// Sources held back because the body they feed has too much to send:
    /// streamed request bodies, exchanges' response bodies, and responses
    /// the application streams that are over the backlog limit.
    pub(crate) held: Held,
    /// Responses the application streams that fell back under the backlog
    /// limit (to tell the application).
    pub(crate) drained: Vec<Responder>,
    /// Sources to read again.
    pub(crate) release: Vec<Source>,
    /// Sources the application paused (true) or resumed (false), in the
    /// order it asked ([`Context::pause_request_body`],
    /// [`Context::pause_response_body`]).
    pub(crate) paused: Vec<(Source, bool)>,
    /// Deferred requests given up on, not yet told to the application.
    pub(crate) abandoned: Vec<Responder>,
    /// Piped responses that ended early, not yet told to the application.
    pub(crate) cut_pipes: Vec<(ExchangeId, PipeEnd)>,
    /// WebSocket connections closed since the application was last told.
    pub(crate) closed_ws: Vec<Token>,
    /// Upstream connections (slot, serial) whose requests went out during
    /// this round: their responses are read before the next poll.
    pub(crate) read_ahead: Vec<(usize, u64)>,
    /// Connections (slot, serial) given something to send while work was
    /// settled: each is written once, when the work is done (see
    /// [`Core::touch`]).
    pub(crate) touched: Vec<(usize, u64)>,
    /// Requests dispatched so far.
    pub(crate) served: u64,
    /// An upstream connection's events while it is stepped, kept between
    /// steps so that each does not allocate its own.
    pub(crate) client_events: Vec<ClientEvent>,
    /// The application's timers ([`Context::set_timer`]).
    pub(crate) timers: Timers,
}

impl Work {
    pub(crate) fn context(&mut self, now: Instant) -> Context<'_> {
        Context {
            now,
            draining: self.draining,
            responses: &mut self.responses,
            pool: &mut self.pool,
            outbox: &mut self.outbox,
            pipes: &mut self.pipes,
            paused: &mut self.paused,
            timers: &mut self.timers,
        }
    }

    /// Whether anything waits for [`Core::settle_work`]; checked inline
    /// after every event, as a plain HTTP server never has any.
    #[inline]
    fn is_pending(&self) -> bool {
        !self.responses.is_empty()
            || !self.inbound.is_empty()
            || !self.abandoned.is_empty()
            || !self.closed_ws.is_empty()
            || !self.cut_pipes.is_empty()
            || !self.outbox.is_empty()
            || !self.pool.events.is_empty()
            || !self.pool.cancelled.is_empty()
            || !self.release.is_empty()
            || !self.paused.is_empty()
            || !self.drained.is_empty()
            || !self.touched.is_empty()
            || self.pool.has_queued()
            || self.pool.names.has_output()
    }
}

pub(crate) struct Core {
    pub(crate) options: ServerOptions,
    pub(crate) poll: Poll,
    pub(crate) slots: Vec<Option<Connection>>,
    free: Vec<usize>,
    /// The poll round in which each slot's connection last closed: the rest
    /// of that round's events for the slot were the old connection's, not
    /// whatever opened there since. (A mark per slot, so that a round in
    /// which n connections close costs n steps, not n².)
    closed_in_round: Vec<u64>,
    /// Poll rounds so far (0 marks no round).
    pub(crate) round: u64,
    /// WebSocket delivery rounds so far (0 marks none: see `ws_router`).
    pub(crate) ws_rounds: u64,
    next_serial: u64,
    pub(crate) scratch: Scratch,
    pub(crate) work: Work,
    pub(crate) names: NameSockets,
    accept_paused_until: Option<Instant>,
    /// The listener was shut down (see [`Core::drain`]): no more
    /// connections come, and the loop ends once those it serves are done.
    draining: bool,
    /// The driven side was told of the drain (`Driven::on_drain`).
    drain_told: bool,
}

/// The loop's end (a drain done, or a batch of [`send_all`](crate::client::send_all)
/// answered): each TLS connection to an upstream still open, a pooled one
/// say, sends its close_notify before its socket closes (RFC 8446 §6.1), as
/// one the loop closes itself does.
impl Drop for Core {
    fn drop(&mut self) {
        // Unwinding already: a second panic here would abort.
        if std::thread::panicking() {
            return;
        }
        let now = Instant::now();
        let tls = |conn: &Connection| matches!(&conn.role, Role::Upstream(up) if up.tls.is_some());
        for index in 0..self.slots.len() {
            if self.slots[index].as_ref().is_some_and(tls) {
                self.close(index, now);
            }
        }
    }
}

impl Core {
    pub(crate) fn new(options: ServerOptions) -> Core {
        use crate::timer::bounded;
        let options = ServerOptions {
            linger: bounded(options.linger),
            linger_most: bounded(options.linger_most),
            accept_backoff: bounded(options.accept_backoff),
            release_buffers_after: bounded(options.release_buffers_after),
            tunnel_idle_timeout: bounded(options.tunnel_idle_timeout),
            // A tunnel reads a side while its peer's queue is under this:
            // at 0 neither side would ever be read.
            body_backlog: options.body_backlog.max(1),
            ..options
        };
        let mut poll = Poll::new();
        poll.set_full_poll_interval(options.full_poll_interval);
        poll.set_peek_quiet(options.peek_quiet);
        let work = Work {
            pool: Pool::new(options.client.clone()),
            ..Work::default()
        };
        Core {
            scratch: Scratch::new(READ_CHUNK, options.body_backlog),
            options,
            poll,
            slots: Vec::new(),
            free: Vec::new(),
            closed_in_round: Vec::new(),
            round: 0,
            ws_rounds: 0,
            next_serial: 0,
            work,
            names: NameSockets::default(),
            accept_paused_until: None,
            draining: false,
            drain_told: false,
        }
    }

    /// Runs the loop until `done` says so, `deadline` passes, a drain (see
    /// [`drain`](Self::drain)) has no inbound connection left to serve, or
    /// an unrecoverable error of the poll itself. With a listener, accepts
    /// and serves connections.
    pub(crate) fn run<D: Driven>(
        &mut self,
        driven: &mut D,
        listener: Option<&TcpListener>,
        deadline: Option<Instant>,
        mut done: impl FnMut(&Core, &D) -> bool,
    ) -> io::Result<()> {
        if let Some(listener) = listener {
            self.watch_listener(listener)?;
        }
        let mut sweep = Sweep::new(self.granularity(), Instant::now());
        let mut events = Events::with_capacity(1024);
        loop {
            self.tell_drain(driven);
            self.settle_before_poll(driven);
            if done(self, driven) || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            let asked = self.options.stop_after;
            if !self.draining && asked.is_some_and(|n| self.work.served >= n) {
                // Taken, not answered: an app answers later. So the rest is
                // a graceful shutdown, as when the listener goes.
                if let Some(listener) = listener {
                    let _ = self.poll.deregister(listener);
                }
                self.drain(Instant::now(), "served the requests asked for (stop_after)");
                // What the drain asked of the connections (closes, 1001s),
                // and the app's answer to it, go now, not after the next
                // sweep's wait.
                self.tell_drain(driven);
                self.settle_before_poll(driven);
            }
            if self.draining && !self.serves_anyone() {
                return Ok(());
            }
            // Bodies drained since they were told of (see `settle_work`):
            // the poll only looks, and does not wait. (Not for any work
            // pending: exchanges queued for a busy origin stay queued, and
            // the loop would spin.)
            let mut wake = match self.work.drained.is_empty() {
                false => Instant::now(),
                true => sweep.next(),
            };
            if let Some(deadline) = deadline {
                wake = wake.min(deadline);
            }
            if let Some(until) = self.accept_paused_until {
                wake = wake.min(until);
            }
            if let Some(timer) = self.work.timers.earliest() {
                wake = wake.min(timer);
            }
            match self.poll.poll_until(&mut events, Some(wake)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            self.round += 1;
            for event in &events {
                if event.token() == LISTENER {
                    if let Some(listener) = listener {
                        self.accept_all(listener, now)?;
                    }
                    continue;
                }
                if NameSockets::owns(event.token()) {
                    names::on_event(self, event.token(), event.raw_error(), now);
                    if self.work.is_pending() {
                        self.settle_work(now, driven);
                    }
                    continue;
                }
                let index = event.token().0;
                if self.closed_in_round.get(index) == Some(&self.round) {
                    // A connection opened in its slot since is polled anew
                    // (readiness is level-triggered: nothing is lost).
                    continue;
                }
                let readable = event.is_readable() || event.is_error();
                if event.is_error() {
                    self.note_connect_error(index, event.raw_error());
                }
                let next = self.drive(index, true, readable, now, driven);
                self.settle(index, next, now);
                // Before the next event, which may accept a connection into
                // the slot (and token) of one that just closed.
                if self.work.is_pending() {
                    self.settle_work(now, driven);
                }
            }
            self.fire_timers(now, driven);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                // Not while draining: the listener stays out (a pause that
                // began before the drain would bring it back, and with it
                // connections nobody drains).
                if let (Some(listener), false) = (listener, self.draining) {
                    self.watch_listener(listener)?;
                }
            }
            if sweep.is_due(now) {
                let earliest = self.check_deadlines(now, driven);
                sweep.rearm(now, earliest);
            }
        }
    }

    /// How often deadlines are looked at: an eighth of the shortest timeout
    /// a user sets, between 5 ms and 1 s (the linger's end and the
    /// resolver's short grace need no such precision).
    fn granularity(&self) -> Duration {
        let options = &self.options;
        let (limits, client, ws) = (&options.limits, &options.client, &options.ws_limits);
        [
            limits.header_timeout,
            limits.idle_timeout,
            limits.respond_timeout,
            client.connect_timeout,
            client.response_timeout,
            client.idle_timeout,
            client.dns_timeout,
            ws.send_timeout,
            ws.message_timeout,
            ws.keepalive_timeout,
            options.tunnel_idle_timeout,
        ]
        .into_iter()
        .chain(ws.keepalive)
        .min()
        .map_or(Duration::from_secs(1), |shortest| shortest / 8)
        .clamp(Duration::from_millis(5), Duration::from_secs(1))
    }

    /// The listener is pinned: new connections never wait for a full poll.
    fn watch_listener(&mut self, listener: &TcpListener) -> io::Result<()> {
        self.poll.register(listener, LISTENER, Interest::READABLE)?;
        self.poll.pin(listener)
    }

    /// Takes the connections waiting on the listener, at most
    /// `ACCEPTS_PER_EVENT` of them: the listener stays readable while more
    /// wait, so the rest come at the next poll, after the connections
    /// already open have had their turn (a flood of connects would
    /// otherwise keep them waiting).
    fn accept_all(&mut self, listener: &TcpListener, now: Instant) -> io::Result<()> {
        // Room is made once per call: when what one shed freed is not
        // enough (or was taken elsewhere, or the whole system is out), the
        // accepts pause rather than close connection after connection.
        let mut shed_once = false;
        for _ in 0..ACCEPTS_PER_EVENT {
            match net::accept(listener) {
                Ok((stream, peer)) => {
                    let local = net::local_addr(&stream).ok();
                    let mut handler = Handler::new(self.options.limits.clone(), now);
                    handler.set_addresses(Some(peer), local);
                    // On failure the stream is dropped: the client sees a
                    // close, the server goes on.
                    let _ = self.add(stream, peer, Interest::READABLE, Role::Http(handler));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The peer gave up before we accepted: nothing to serve.
                Err(e) if is_transient(&e) => {
                    // One that failed its set-up calls is said, so that a
                    // runtime failing every one does not go unnoticed.
                    if e.get_ref().is_some() {
                        (self.options.log)(&format!(
                            "edgepoll: a connection could not be set up ({e}); dropped"
                        ));
                    }
                    continue;
                }
                // Shut down (by a supervisor stopping the service): serve
                // what was accepted, then end.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    let _ = self.poll.deregister(listener);
                    self.drain(now, "the listener was shut down");
                    return Ok(());
                }
                Err(e) => {
                    // Out of descriptors: the quietest keep-alive connections
                    // make room, as nginx's reusable ones do, so that idle
                    // connections (or a peer opening them by the thousand)
                    // cannot keep new clients out until their idle timeout.
                    if is_out_of_descriptors(&e) && !shed_once {
                        shed_once = true;
                        let shed = self.shed_idle(now);
                        if shed > 0 {
                            (self.options.log)(&format!(
                                "edgepoll: accept failed ({e}); closed {shed} idle keep-alive connections"
                            ));
                            continue;
                        }
                    }
                    // Out of descriptors with none to spare, or worse. The
                    // listener stays readable while connections wait, so stop
                    // watching it for a moment instead of spinning.
                    // (A pause of nothing would be that spin.)
                    let pause = self.options.accept_backoff.max(Duration::from_millis(10));
                    (self.options.log)(&format!(
                        "edgepoll: accept failed ({e}); pausing accepts for {pause:?}"
                    ));
                    self.poll.deregister(listener)?;
                    self.accept_paused_until = Some(now + pause);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Closes up to `SHED_AT_ONCE` HTTP connections that are between
    /// requests ([`Handler::is_between_requests`]), the longest quiet
    /// first; returns how many. Not those active in this round (accepted
    /// or answered just now: a request may be on its way). A scan of every
    /// slot, made only when descriptors run out.
    fn shed_idle(&mut self, now: Instant) -> usize {
        let mut quiet: Vec<(Instant, usize)> = (self.slots.iter().enumerate())
            .filter_map(|(index, conn)| match conn {
                Some(Connection {
                    role: Role::Http(handler),
                    linger_until: None,
                    ..
                }) if handler.is_between_requests() && handler.last_progress() < now => {
                    Some((handler.last_progress(), index))
                }
                _ => None,
            })
            .collect();
        quiet.sort_unstable();
        quiet.truncate(SHED_AT_ONCE);
        for &(_, index) in &quiet {
            self.close(index, now);
        }
        quiet.len()
    }

    /// Shuts down gracefully, as nginx does on SIGQUIT: idle HTTP
    /// connections close, requests already begun are answered (with
    /// `Connection: close`), WebSockets are closed with 1001 (going away),
    /// and [`run`](Self::run) returns once no inbound connection is left.
    /// Its triggers: the listener refusing to accept (`EINVAL`: it was shut
    /// down, as `edgepoll-host --instances` does to every instance on
    /// SIGTERM), and `ServerOptions::stop_after` requests served.
    fn drain(&mut self, now: Instant, why: &str) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.work.draining = true;
        (self.options.log)(&format!("edgepoll: {why}: finishing what was accepted"));
        for index in 0..self.slots.len() {
            let Some(Some(conn)) = self.slots.get_mut(index) else {
                continue;
            };
            if conn.linger_until.is_some() {
                continue;
            }
            match &mut conn.role {
                Role::Http(handler) => handler.drain(),
                Role::Ws(socket) => going_away(socket, now),
                Role::Upstream(_) | Role::Tunnel(_) => continue,
            }
            self.touch(index);
        }
    }

    /// Tells the driven side, once, that a drain has begun: an app may end
    /// what would otherwise hold the drain open (an endless stream).
    fn tell_drain<D: Driven>(&mut self, driven: &mut D) {
        if self.draining && !self.drain_told {
            self.drain_told = true;
            driven.on_drain(&mut self.work.context(Instant::now()));
        }
    }

    /// Whether an inbound connection (HTTP, WebSocket, tunnel, or one
    /// closing) is still open.
    fn serves_anyone(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|conn| conn.linger_until.is_some() || !matches!(conn.role, Role::Upstream(_)))
    }

    /// Registers a connection in a free slot; returns its index.
    pub(crate) fn add(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        interest: Interest,
        role: Role,
    ) -> io::Result<usize> {
        let index = self.free.pop().unwrap_or(self.slots.len());
        if let Err(e) = self.poll.register(&stream, Token(index), interest) {
            if index < self.slots.len() {
                self.free.push(index);
            }
            return Err(e);
        }
        self.next_serial += 1;
        let conn = Connection {
            stream,
            peer,
            serial: self.next_serial,
            interest: Some(interest),
            linger_until: None,
            touched: false,
            role,
        };
        if index == self.slots.len() {
            self.slots.push(Some(conn));
        } else {
            self.slots[index] = Some(conn);
        }
        Ok(index)
    }

    /// Moves the connection at `index` forward; says what it waits for
    /// next. `event` says whether a poll event brought us here, or that it
    /// is to be read as if one had (`start_exchanges`, before reusing an
    /// idle connection); `readable` whether input is said to be there.
    /// Keeps the error a poll reported for an upstream still connecting,
    /// for its step to fail the connect with (see `Upstream::connect_error`).
    #[cold]
    fn note_connect_error(&mut self, index: usize, errno: u16) {
        if let Some(Some(conn)) = self.slots.get_mut(index) {
            if let Role::Upstream(up) = &mut conn.role {
                if up.connecting {
                    up.connect_error = errno;
                }
            }
        }
    }

    pub(crate) fn drive<D: Driven>(
        &mut self,
        index: usize,
        event: bool,
        readable: bool,
        now: Instant,
        driven: &mut D,
    ) -> Next {
        let Core {
            slots,
            scratch,
            work,
            options,
            draining: shutting_down,
            ..
        } = self;
        let Some(Some(conn)) = slots.get_mut(index) else {
            return Next::Close;
        };
        let token = Token(index);
        if let Some((until, most)) = conn.linger_until {
            let mut draining = Draining::default();
            let io = pump(&conn.stream, &mut draining, readable, scratch);
            // Still coming: `linger` more, within `linger_most`; not while
            // the server shuts down, which must end within its grace.
            if draining.read && !*shutting_down {
                conn.linger_until = Some(((now + options.linger).min(most).max(until), most));
            }
            return match io.is_ok() && !draining.ended {
                true => Next::Watch(Interest::READABLE),
                false => Next::Close,
            };
        }
        let next = match conn.role {
            Role::Http(_) => {
                let next = step_http(conn, token, readable, now, driven, work, scratch, options);
                match &conn.role {
                    // Broken as it switched (a reset, the 101 not sent):
                    // nothing to open, nor to join (the close drops an
                    // upstream waiting for it).
                    Role::Http(handler) if handler.is_upgraded() && next != Next::Close => {
                        let serial = conn.serial;
                        let here = |r: &Responder| r.token == token && r.serial == serial;
                        match work.pipes.tunnels.iter().find(|(_, r)| here(r)) {
                            Some((&exchange, _)) => return self.open_tunnel(index, exchange, now),
                            None => {
                                let closing = *shutting_down;
                                upgrade(conn, token, closing, now, driven, work, scratch, options)
                            }
                        }
                    }
                    Role::Http(handler) if handler.is_upgraded() => {
                        // Its handshake's news is for no one now.
                        let _ = driven.take_upgrade();
                        next
                    }
                    _ => next,
                }
            }
            Role::Ws(_) => step_ws(
                conn, token, readable, false, now, driven, work, scratch, options,
            ),
            Role::Upstream(_) => return self.step_upstream(index, event, readable, now),
            Role::Tunnel(_) => return self.step_tunnel(index, readable, now),
        };
        bodies::after_step(conn, index, work, options.body_backlog);
        next
    }

    /// Moves an outbound connection forward.
    fn step_upstream(&mut self, index: usize, event: bool, readable: bool, now: Instant) -> Next {
        let Core {
            slots,
            scratch,
            work,
            options,
            poll,
            ..
        } = self;
        let Some(Some(conn)) = slots.get_mut(index) else {
            return Next::Close;
        };
        let round = self.round;
        let next = upstream::step(conn, index, event, readable, now, round, work, scratch);
        if let Role::Upstream(up) = &conn.role {
            // It waits on an answer no read-ahead looks for: the poll must
            // cover it. Even after an event: parked and chilled by an
            // earlier event of the same batch, it may carry a new request.
            if next != Next::Close && up.exchange.is_some() && !up.read_ahead {
                let _ = poll.warm(&conn.stream);
            }
        }
        bodies::after_step(conn, index, work, options.body_backlog);
        next
    }

    /// Moves bytes through a tunnel; settles the other side here.
    fn step_tunnel(&mut self, index: usize, readable: bool, now: Instant) -> Next {
        let limit = self.options.body_backlog;
        let (next, peer) = tunnel::step(
            &mut self.slots,
            index,
            readable,
            now,
            &mut self.scratch,
            limit,
        );
        if let Some((peer, peer_next)) = peer {
            let peer_next = self.finish_alone(peer, peer_next, now);
            self.settle(peer, peer_next, now);
        }
        self.finish_alone(index, next, now)
    }

    /// A tunnel's side left alone (its peer broke) that has written all it
    /// was owed closes as an HTTP connection does.
    fn finish_alone(&mut self, index: usize, next: Next, now: Instant) -> Next {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return next;
        };
        match &conn.role {
            Role::Tunnel(side) if next != Next::Close && side.is_finished_alone() => {
                start_lingering(conn, now, &self.options)
            }
            _ => next,
        }
    }

    /// Joins the client connection at `index`, whose 101 is queued, to the
    /// connection `exchange` switched.
    fn open_tunnel(&mut self, index: usize, exchange: ExchangeId, now: Instant) -> Next {
        self.work.pipes.tunnels.remove(&exchange);
        let Some((up_index, up_serial)) = self.work.switched.remove(&exchange) else {
            return Next::Close;
        };
        let rest = match self.slots.get_mut(up_index) {
            Some(Some(Connection {
                serial,
                role: Role::Upstream(up),
                ..
            })) if *serial == up_serial => up.conn.take_switched().unwrap_or_default(),
            // The upstream went away first: so does its client.
            _ => return Next::Close,
        };
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return Next::Close;
        };
        let Role::Http(handler) = &mut conn.role else {
            return Next::Close;
        };
        // The 101 and what the upstream sent after it go to the client;
        // what the client sent after its request goes to the upstream.
        let (mut to_client, to_upstream) = handler.take_upgraded();
        to_client.extend_from_slice(&rest);
        let client_serial = conn.serial;
        conn.role = Role::Tunnel(Box::new(Tunnel::new(up_index, up_serial, to_client, now)));
        if let Some(Some(up)) = self.slots.get_mut(up_index) {
            up.role = Role::Tunnel(Box::new(Tunnel::new(
                index,
                client_serial,
                to_upstream,
                now,
            )));
        }
        if !self.work.held.is_empty() {
            let Work { held, release, .. } = &mut self.work;
            bodies::switched(held, release, index);
        }
        self.step_tunnel(index, true, now)
    }

    /// Gives up a switched connection no client will be joined to: closes it.
    pub(crate) fn drop_switched(&mut self, exchange: ExchangeId, now: Instant) {
        self.work.pipes.tunnels.remove(&exchange);
        if let Some((index, serial)) = self.work.switched.remove(&exchange) {
            if matches!(self.slots.get(index), Some(Some(conn)) if conn.serial == serial) {
                self.close(index, now);
            }
        }
    }

    /// Settles the application's work, and reads the responses to the
    /// requests sent since the last poll (see `upstream::read_ahead`),
    /// which may answer requests and so make more work.
    fn settle_before_poll<D: Driven>(&mut self, driven: &mut D) {
        for _ in 0..4 {
            let now = Instant::now();
            if self.work.is_pending() {
                self.settle_work(now, driven);
            }
            if self.work.read_ahead.is_empty() {
                return;
            }
            self.work_through(
                |w| &mut w.read_ahead,
                |core, (index, serial)| {
                    let Some(Some(conn)) = core.slots.get(index) else {
                        return;
                    };
                    match &conn.role {
                        Role::Upstream(up) if conn.serial == serial && up.read_ahead => {}
                        // Stepped since, or gone.
                        _ => return,
                    }
                    let next = core.step_upstream(index, false, true, now);
                    core.settle(index, next, now);
                    if core.work.is_pending() {
                        core.settle_work(now, driven);
                    }
                },
            );
        }
        // Sent by the last round's callbacks: left to the poll, which must
        // cover them.
        self.work_through(
            |w| &mut w.read_ahead,
            |core, (index, serial)| {
                if let Some(Some(conn)) = core.slots.get_mut(index) {
                    if let (true, Role::Upstream(up)) = (conn.serial == serial, &mut conn.role) {
                        up.read_ahead = false;
                        let _ = core.poll.warm(&conn.stream);
                    }
                }
            },
        );
    }

    /// Works through a queue of the loop's work with `each`, which may queue
    /// more (left for the next pass). The queue then gets its buffer back:
    /// a busy loop queues about as many each round, which would otherwise
    /// allocate anew each time.
    fn work_through<T>(
        &mut self,
        queue: fn(&mut Work) -> &mut Vec<T>,
        mut each: impl FnMut(&mut Core, T),
    ) {
        let mut items = std::mem::take(queue(&mut self.work));
        for item in items.drain(..) {
            each(self, item);
        }
        let left = queue(&mut self.work);
        if left.is_empty() {
            *left = items;
        }
    }

    /// Applies what [`drive`](Self::drive) decided.
    #[inline]
    pub(crate) fn settle(&mut self, index: usize, next: Next, now: Instant) {
        // Nearly every step leaves the connection watched as it was.
        if let (Next::Watch(interest), Some(Some(conn))) = (next, self.slots.get(index)) {
            if conn.interest == Some(interest) {
                return;
            }
        }
        self.settle_changed(index, next, now);
    }

    fn settle_changed(&mut self, index: usize, next: Next, now: Instant) {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return;
        };
        let wanted = match next {
            Next::Close => return self.close(index, now),
            Next::Watch(interest) => Some(interest),
            Next::Idle => Some(Interest::READABLE),
            Next::Quiet => None,
        };
        let done = match (conn.interest, wanted) {
            (old, new) if old == new => Ok(()),
            (None, Some(interest)) => self.poll.register(&conn.stream, Token(index), interest),
            (Some(_), Some(interest)) => self.poll.reregister(&conn.stream, Token(index), interest),
            (Some(_), None) => self.poll.deregister(&conn.stream),
            (None, None) => Ok(()),
        };
        // Parked after an exchange that the loop may have read without an
        // event (a read-ahead): counted active from now, so that it stays
        // in the busy calls for a while (see `Next::Idle`).
        let done = match next {
            Next::Idle => done.and_then(|()| self.poll.warm_at(&conn.stream, now)),
            _ => done,
        };
        match done {
            Ok(()) => conn.interest = wanted,
            Err(_) => self.close(index, now),
        }
    }

    pub(crate) fn close(&mut self, index: usize, now: Instant) {
        let Some(mut conn) = self.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        if conn.interest.is_some() {
            let _ = self.poll.deregister(&conn.stream);
        }
        self.free.push(index);
        if self.closed_in_round.len() <= index {
            self.closed_in_round.resize(index + 1, 0);
        }
        self.closed_in_round[index] = self.round;
        let lingering = conn.linger_until.is_some();
        match &mut conn.role {
            Role::Http(_) if !self.work.pipes.tunnels.is_empty() => {
                // A client whose 101 was not out yet: its upstream goes too.
                let serial = conn.serial;
                let orphans: Vec<ExchangeId> = (self.work.pipes.tunnels.iter())
                    .filter(|(_, r)| r.token == Token(index) && r.serial == serial)
                    .map(|(e, _)| *e)
                    .collect();
                for exchange in orphans {
                    self.drop_switched(exchange, now);
                }
            }
            _ => {}
        }
        match &mut conn.role {
            Role::Http(handler) => {
                handler.abandon_all();
                handler.lose_connection();
                let serial = conn.serial;
                self.work
                    .abandoned
                    .extend(handler.take_abandoned().map(|id| Responder {
                        token: Token(index),
                        serial,
                        id,
                    }));
                if let Some((id, error)) = handler.take_broken_body() {
                    let responder = Responder {
                        token: Token(index),
                        serial,
                        id,
                    };
                    // A body the loop pipes itself stops with its pipes,
                    // just below; one the application reads, it is told of.
                    let piped = self.work.pipes.up_into(&responder).is_some()
                        || self.work.pipes.echoes(&responder);
                    if !piped {
                        self.work
                            .inbound
                            .push((responder, Inbound::End(Err(error))));
                    }
                }
                // Pieces read before the close, of a body piped to an
                // upstream or echoed: the pipe ends just below, and routed
                // after it they would reach the application, which gave
                // that body away. (Those of a batch being routed now are
                // dropped as they come: `Pipes::cut_bodies`.)
                let Work { inbound, pipes, .. } = &mut self.work;
                if !inbound.is_empty() {
                    inbound.retain(|(r, _)| {
                        !(r.token == Token(index)
                            && r.serial == serial
                            && (pipes.up_into(r).is_some() || pipes.echoes(r)))
                    });
                }
                for exchange in bodies::forget_connection(&mut self.work, Token(index)) {
                    bodies::abandon_upload(self, exchange);
                }
            }
            Role::Ws(_) if !lingering => self.work.closed_ws.push(Token(index)),
            Role::Ws(_) => {}
            Role::Upstream(up) => {
                if let Some(tls) = &mut up.tls {
                    // Once, without waiting: a full socket is being cut.
                    let _ = net::send(&conn.stream, tls.close_notify());
                }
                upstream::closed(up, index, now, &mut self.work)
            }
            // One left alone stays to write what it is owed.
            Role::Tunnel(side) if !side.alone => {
                let (peer, serial) = (side.peer, side.peer_serial);
                if matches!(self.slots.get(peer), Some(Some(other)) if other.serial == serial) {
                    self.close(peer, now);
                }
            }
            Role::Tunnel(_) => {}
        }
    }

    /// Tells the application of its timers due at `now`: those set before
    /// this round's, in time order (a timer cancelled by an earlier one's
    /// callback does not fire), and then settles what they did, once:
    /// deadlines that fall due together give up their exchanges before a
    /// connection one of them frees goes to a queued exchange that a later
    /// one gives up too (settled after each, a pool of 2 with 6 such
    /// deadlines made 6 connections). One set meanwhile, even for a time
    /// past, waits for the next round: a timer set anew from its own
    /// callback cannot hold the loop.
    fn fire_timers<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        let set_before = self.work.timers.last_serial();
        while let Some(timer) = self.work.timers.take_due(now, set_before) {
            driven.on_timer(timer, &mut self.work.context(now));
        }
        if self.work.is_pending() {
            self.settle_work(now, driven);
        }
    }

    /// Starts what the application asked of the client, delivers what it
    /// answered and sent, moves bodies, and tells it what happened, until
    /// nothing is left (or for 1000 rounds at most: an application that
    /// answers each callback with more work does not hold the loop).
    pub(crate) fn settle_work<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        // Bodies drained are told of once a call: the application's next
        // piece drains as soon as a fast reader takes it, and told again
        // within the call, one response would be fed round after round
        // while every other connection's events waited. What drains
        // meanwhile is told at the next call (after the next event, or the
        // next poll, which then does not wait).
        let mut drained_told = false;
        self.work.pipes.cut_bodies.clear();
        for _round in 0..1000 {
            let mut acted = false;
            if !self.work.pipes.fresh_up.is_empty() {
                self.check_fresh_pipes();
            }
            if !self.work.responses.is_empty() {
                acted = true;
                self.deliver_answers(now, driven);
                self.write_touched(now, driven);
            }
            if !self.work.inbound.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.inbound,
                    |core, (responder, inbound)| {
                        bodies::route_inbound(core, responder, inbound, now, driven);
                    },
                );
                self.work.pipes.cut_bodies.clear();
                self.write_touched(now, driven);
            }
            if !self.work.abandoned.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.abandoned,
                    |core, responder| {
                        driven.on_abandoned(responder, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.cut_pipes.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.cut_pipes,
                    |core, (exchange, end)| {
                        let end = match end {
                            PipeEnd::Whole => Ok(()),
                            PipeEnd::Cut => Err(crate::ClientError::Abandoned),
                        };
                        driven.on_response_end(exchange, end, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.closed_ws.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.closed_ws,
                    |core, token| {
                        driven.on_ws_close(token, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.pool.cancelled.is_empty() {
                self.close_cancelled(now);
                if !self.work.touched.is_empty() {
                    acted = true;
                    self.write_touched(now, driven);
                }
            }
            if self.work.pool.names.has_output() {
                acted = true;
                names::flush(self, now);
                self.work.pool.take_resolved(now);
            }
            if self.work.pool.has_queued() {
                self.start_exchanges(now);
            }
            if !self.work.pool.events.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.pool.events,
                    |core, (exchange, event)| {
                        // Cancelled by an earlier callback of this batch: none of
                        // its events is reported, and it stays listed, so that
                        // its connection closes next round.
                        if core.work.pool.cancelled.contains(&exchange) {
                            // A connection it switched has no one to join now.
                            if core.work.switched.contains_key(&exchange) {
                                core.drop_switched(exchange, now);
                            }
                            return;
                        }
                        bodies::route_exchange_event(core, exchange, event, now, driven);
                    },
                );
                self.write_touched(now, driven);
            }
            if !self.work.paused.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.paused,
                    |core, (source, paused)| {
                        // Checked here, not when asked: a pipe asked for in
                        // the same callback is laid only after it.
                        if core.work.pipes.carries(source) {
                            return;
                        }
                        match paused {
                            true => bodies::pause(core, source, now),
                            false => bodies::release(core, source, now, driven),
                        }
                    },
                );
            }
            if !self.work.release.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.release,
                    |core, release| {
                        bodies::release(core, release, now, driven);
                    },
                );
            }
            if !self.work.drained.is_empty() && !drained_told {
                acted = true;
                drained_told = true;
                self.work_through(
                    |w| &mut w.drained,
                    |core, responder| {
                        // Not for a request the application was told is gone
                        // (its connection failed in the step that drained
                        // it), nor for a body it has ended since.
                        let takes = (core.handler_of(responder))
                            .is_some_and(|handler| handler.takes_body(responder.id));
                        if takes {
                            driven.on_body_drained(responder, &mut core.work.context(now));
                        }
                    },
                );
            }
            if !self.work.outbox.is_empty() {
                acted = true;
                ws_router::deliver(self, now, driven);
            }
            if !self.work.touched.is_empty() {
                acted = true;
                self.write_touched(now, driven);
            }
            if !acted {
                return;
            }
        }
    }

    /// A request piped into an exchange whose connection is gone (it closed
    /// earlier in the batch that laid the pipe) will send no body: the
    /// exchange's body breaks off, as if the client had left mid-body,
    /// rather than wait for pieces that never come.
    /// A body the application paused before it had the loop carry it is
    /// read again: the loop holds a body it carries by its own backlog, and
    /// a resume asked now would be ignored (see `settle_work`), so the body
    /// would wait for ever. (Nothing of it has moved yet: the pause is the
    /// application's, not the loop's.)
    fn check_fresh_pipes(&mut self) {
        self.work_through(
            |w| &mut w.pipes.fresh_up,
            |core, responder| {
                let paused = core
                    .handler_of(responder)
                    .map(|h| h.is_body_paused(responder.id));
                match paused {
                    None if core.work.pipes.up_into(&responder).is_some() => {
                        let broken = Err(crate::http::BodyError::Truncated);
                        core.work.inbound.push((responder, Inbound::End(broken)));
                    }
                    Some(true) => core.work.release.push(Source::Request(responder)),
                    _ => {}
                }
            },
        );
    }

    /// The handler of the waiting request `responder`, if it still waits on
    /// an open connection.
    pub(crate) fn handler_of(&mut self, responder: Responder) -> Option<&mut Handler> {
        match self.slots.get_mut(responder.token.0) {
            Some(Some(conn)) if conn.serial == responder.serial && conn.linger_until.is_none() => {
                match &mut conn.role {
                    Role::Http(handler) => Some(handler),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Delivers what the application answered so far.
    pub(crate) fn deliver_answers<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        while !self.work.responses.is_empty() {
            self.work_through(
                |w| &mut w.responses,
                |core, (responder, answer)| {
                    core.deliver_answer(responder, answer, now, driven);
                },
            );
        }
    }

    /// Steps the connections given something to send since the last call
    /// (see [`touch`](Self::touch)).
    fn write_touched<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        while !self.work.touched.is_empty() {
            self.work_through(
                |w| &mut w.touched,
                |core, (index, serial)| {
                    if let Some(Some(conn)) = core.slots.get_mut(index) {
                        if conn.serial == serial {
                            // Unmarked first: the step may give it more to send.
                            conn.touched = false;
                            core.step_now(index, now, driven);
                        }
                    }
                },
            );
        }
    }

    fn deliver_answer<D: Driven>(
        &mut self,
        responder: Responder,
        answer: Answer,
        now: Instant,
        driven: &mut D,
    ) {
        let backlog_limit = self.options.body_backlog;
        if let Answer::Tunnel(_, exchange) = &answer {
            let exchange = *exchange;
            let waits = self.handler_of(responder).is_some();
            // Only a connection a 101 switched, still held for the join,
            // can be joined: without it, a 101 would promise a tunnel that
            // is not there.
            let joinable = self.work.switched.contains_key(&exchange);
            let switching = match (self.handler_of(responder), answer) {
                (Some(handler), Answer::Tunnel(head, _)) => {
                    let switched =
                        joinable && handler.respond_switch(responder.id, head, now).is_ok();
                    if !switched {
                        // Its request made no offer the connection took (or
                        // the head was no 101): it cannot follow the
                        // upstream, which is closed.
                        let refused = Response::new(StatusCode::BAD_GATEWAY)
                            .header("Content-Type", "text/plain")
                            .body(
                                &b"the upstream switched protocols for a request that could not\n"
                                    [..],
                            );
                        let _ = handler.respond(responder.id, refused, now);
                    }
                    switched
                }
                _ => false,
            };
            if !switching {
                self.drop_switched(exchange, now);
            }
            // Not a slot since taken by another connection.
            if waits {
                self.step_now(responder.token.0, now, driven);
            }
            return;
        }
        // Only a body that has gone nowhere yet can be piped whole: any
        // other would leave the client's response waiting for it.
        let mut answer = answer;
        if let Answer::Head(_, _, Some(exchange)) = &answer {
            if !self.work.pipes.take_pipeable(*exchange) {
                answer = Answer::Whole(misused(
                    "the response body was to come from a response that cannot give it\n",
                ));
            }
        }
        // The application's own pieces for a response whose body comes
        // through a pipe would be mixed into it.
        if matches!(answer, Answer::Piece(_) | Answer::End | Answer::Abort)
            && self.work.pipes.is_piped_down(&responder)
        {
            return;
        }
        let Some(handler) = self.handler_of(responder) else {
            if let Answer::Head(_, _, Some(exchange)) = answer {
                self.drop_pipe(exchange, PipeEnd::Cut);
            }
            return;
        };
        let id = responder.id;
        // A piped response's head waits for the body's first pieces, which
        // usually come in the same batch of the exchange's events: the two
        // then leave in one write (see `touch`). Anything else goes now.
        let mut wait_for_body = false;
        // A response that closes the connection, given before a request
        // body's end, gives that body up: told now (to the application, the
        // upstream it is piped to, or the response it is echoed into), not
        // at the close or the next sweep.
        let mut broken = None;
        let delivered = match answer {
            Answer::Whole(response) => {
                let given = handler.respond(id, response, now).is_ok();
                broken = handler.take_broken_body();
                given
            }
            Answer::Head(head, length, piped) => {
                // To HEAD, and with a status that has no body (204, 304),
                // the application's stream ends with its head: its pieces
                // would be dropped, and an endless one, asked for piece
                // after piece, would spin the loop for nothing (a 204's
                // never ended, and held the connection). (A piped one ends
                // at its first piece, and its exchange is cut: see
                // `bodies`. One with no body ends at its end, and its
                // connection goes back to the pool.)
                let ends_at_head =
                    piped.is_none() && (handler.answers_head(id) || head.status().forbids_body());
                let started = handler.respond_stream(id, head, length, now).is_ok();
                if started && ends_at_head {
                    let _ = handler.end_body(id, now);
                }
                broken = handler.take_broken_body();
                match (started, piped) {
                    (true, Some(exchange)) => {
                        self.work.pipes.pipe_down(exchange, responder);
                        wait_for_body = true;
                        // Paused by the application before the pipe (see
                        // `check_fresh_pipes`): read again.
                        if bodies::is_held(self, exchange) {
                            self.work.release.push(Source::Exchange(exchange));
                        }
                    }
                    (false, Some(exchange)) => self.drop_pipe(exchange, PipeEnd::Cut),
                    _ => {}
                }
                started
            }
            Answer::Piece(piece) => {
                // An empty piece is no piece: told of, an application that
                // answers each notice with one would spin the loop.
                let empty = piece.is_empty();
                let pushed = handler.send_body(id, piece, now);
                // Past the length its head announced, the response cannot
                // be the one meant: cut where it is (the connection closes
                // after what fits), not left waiting for an end whose
                // drained notice never comes.
                let past_length = matches!(pushed, Err(StreamError::Body(_)));
                if past_length {
                    let _ = handler.abort_body(id, now);
                    broken = handler.take_broken_body();
                }
                let sent = pushed.is_ok();
                // Over the limit, it is held, and told once the backlog
                // has fallen to a quarter of it; under, it is told at
                // once (at the next telling): either way each piece taken
                // is followed by an `on_body_drained`, so an app that sends
                // a piece and waits for it never stalls. Told once for
                // the pieces of one callback: the notice is at the end of
                // `drained` when they come in a row.
                if sent && handler.body_backlog(id) > backlog_limit {
                    let slot = responder.token.0;
                    (self.work.held).hold_at(slot, AtClient::Streamed(responder));
                } else if sent && !empty && self.work.drained.last() != Some(&responder) {
                    self.work.drained.push(responder);
                }
                sent || past_length
            }
            // Short of its length, it still ended (the connection closes
            // after what was sent): stepped, not left for the next sweep.
            Answer::End => {
                let ended = handler.end_body(id, now);
                broken = handler.take_broken_body();
                !matches!(ended, Err(StreamError::Gone))
            }
            // Cut where it is: the connection closes after what was sent.
            Answer::Abort => {
                let cut = handler.abort_body(id, now);
                broken = handler.take_broken_body();
                cut.is_ok()
            }
            Answer::Interim(head) => {
                // Written with what follows it in this batch, if anything
                // (see `touch`): a small write after it would wait for the
                // client's acknowledgement (Nagle's algorithm).
                wait_for_body = true;
                handler.respond_interim(id, &head, now) == Ok(true)
            }
            Answer::Tunnel(..) => false,
        };
        if let Some((id, error)) = broken {
            let broken = Responder { id, ..responder };
            self.work.inbound.push((broken, Inbound::End(Err(error))));
        }
        match (delivered, wait_for_body) {
            (true, true) => self.touch(responder.token.0),
            (true, false) => self.step_now(responder.token.0, now, driven),
            (false, _) => {}
        }
    }

    /// A response to pipe whose client is gone (or no longer waits for it):
    /// the exchange stops, and the application hears of its end, as of any
    /// pipe cut short (an unbounded body was read to its end, and the end
    /// reported only then).
    pub(crate) fn drop_pipe(&mut self, exchange: ExchangeId, end: PipeEnd) {
        self.work.pool.cancel(exchange);
        self.work.cut_pipes.push((exchange, end));
    }

    /// Marks a connection to be stepped once the batch of work being
    /// settled is done (the answers delivered, the exchanges' events routed),
    /// rather than now: what one batch queues for one connection (a
    /// response head and its body's pieces and end, say) then leaves in one
    /// write.
    /// Without `TCP_NODELAY`, which WasmEdge cannot set, a second small
    /// write waits for the peer's delayed ACK of the first: 40 ms.
    pub(crate) fn touch(&mut self, index: usize) {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return;
        };
        if !conn.touched {
            conn.touched = true;
            self.work.touched.push((index, conn.serial));
        }
    }

    /// Steps a connection outside of a poll event (something was queued on
    /// it), and applies the outcome.
    pub(crate) fn step_now<D: Driven>(&mut self, index: usize, now: Instant, driven: &mut D) {
        let next = self.drive(index, false, false, now, driven);
        self.settle(index, next, now);
    }

    /// Closes the connections of cancelled exchanges. A response piped
    /// from one to a client still there is cut short where it is: the
    /// rest will not come.
    fn close_cancelled(&mut self, now: Instant) {
        self.work_through(
            |w| &mut w.pool.cancelled,
            |core, id| {
                if let Some(responder) = core.work.pipes.down_into(id) {
                    if let Some(handler) = core.handler_of(responder) {
                        // Already ended, when it was cut for its client.
                        let _ = handler.abort_body(responder.id, now);
                        core.touch(responder.token.0);
                    }
                }
                bodies::forget_exchange(&mut core.work, id);
                // Events its connection queued since the cancel (a step
                // for a piped request body, say) go too: none is reported.
                if !core.work.pool.events.is_empty() {
                    core.work.pool.events.retain(|(done, _)| *done != id);
                }
                if core.work.switched.contains_key(&id) {
                    core.drop_switched(id, now);
                    return;
                }
                let Some(index) = core.work.slot_of.remove(&id) else {
                    return;
                };
                if let Some(Some(Connection {
                    role: Role::Upstream(up),
                    ..
                })) = core.slots.get_mut(index)
                {
                    up.exchange = None;
                }
                core.close(index, now);
            },
        );
    }

    /// Puts queued exchanges on idle connections or new ones, as the pool
    /// allows.
    fn start_exchanges(&mut self, now: Instant) {
        let max_body = self.work.pool.options.max_body_bytes;
        while let Some((exchange, placement)) = self.work.pool.next_placement(now) {
            match placement {
                Placement::Reuse(index) => {
                    // The pool names only idle upstream connections; were
                    // that ever wrong, the exchange fails, not vanishes.
                    let gone =
                        || ClientError::Io(io::Error::other("its pooled connection was gone"));
                    let Some(Some(conn)) = self.slots.get(index) else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    let Role::Upstream(up) = &conn.role else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    // Neither read empty in this round nor watched without
                    // an event by its poll (which leaves cold ones out):
                    // read now. Bytes or a close while idle end it, and the
                    // exchange, of which nothing was sent, goes on another
                    // connection. (Not for every request that may not go
                    // twice: a read per POST cost a forwarder 2% of its
                    // instructions, against a close that came with the last
                    // response's bytes in this same round.)
                    if up.dry_round != self.round && !self.poll.polled_quiet(&conn.stream) {
                        let next = self.step_upstream(index, true, true, now);
                        if next != Next::Idle {
                            self.settle(index, next, now);
                            self.work.pool.requeue(exchange);
                            continue;
                        }
                    }
                    let Some(Some(conn)) = self.slots.get_mut(index) else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    let Role::Upstream(up) = &mut conn.role else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    self.work.slot_of.insert(exchange.id, index);
                    upstream::start(up, exchange, now, max_body);
                    let next = self.step_upstream(index, false, false, now);
                    self.settle(index, next, now);
                }
                Placement::Connect { evict } => {
                    if let Some(idle) = evict {
                        // At the overall limit: an idle connection gives way.
                        self.close(idle, now);
                    }
                    let (origin, id) = (exchange.origin.clone(), exchange.id);
                    let tls = match &origin.tls {
                        None => None,
                        Some(name) => {
                            let session = self
                                .work
                                .pool
                                .tls_config()
                                .and_then(|config| TlsSession::new(config, name));
                            match session {
                                Ok(session) => Some(Box::new(session)),
                                Err(e) => {
                                    self.work.pool.closed(&origin, usize::MAX);
                                    self.work.pool.fail(id, ClientError::Tls(e));
                                    continue;
                                }
                            }
                        }
                    };
                    let stream = match net::connect(origin.addr) {
                        Ok(stream) => stream,
                        Err(e) => {
                            self.work.pool.closed(&origin, usize::MAX);
                            let mut exchange = exchange;
                            if exchange.next_address() {
                                self.work.pool.requeue(exchange);
                            } else {
                                self.work.pool.fail(id, ClientError::connecting(e));
                            }
                            continue;
                        }
                    };
                    let mut up = Box::new(Upstream {
                        conn: Default::default(),
                        origin: origin.clone(),
                        tls,
                        exchange: None,
                        connecting: true,
                        connect_error: 0,
                        last_progress: now,
                        got_bytes: false,
                        expired: false,
                        held: false,
                        read_ahead: false,
                        ahead_misses: 0,
                        ahead_skipped: 0,
                        dry_round: 0,
                    });
                    upstream::start(&mut up, exchange, now, max_body);
                    if up.expired {
                        // Its early body pieces did not fit its length: the
                        // client's body is at fault, told before a connect
                        // that may time out passes for the upstream's.
                        self.work.pool.closed(&origin, usize::MAX);
                        self.work.pool.fail(id, ClientError::Abandoned);
                        continue;
                    }
                    let role = Role::Upstream(up);
                    match self.add(stream, origin.addr, Interest::WRITABLE, role) {
                        Ok(index) => {
                            self.work.slot_of.insert(id, index);
                        }
                        Err(e) => {
                            self.work.pool.closed(&origin, usize::MAX);
                            self.work.pool.fail(id, ClientError::Connect(e));
                        }
                    }
                }
            }
        }
    }

    /// Fires passed deadlines; returns the earliest one still ahead.
    fn check_deadlines<D: Driven>(&mut self, now: Instant, driven: &mut D) -> Option<Instant> {
        // Names first: a request whose lookup ends now fails with the
        // lookup's error rather than its own timeout.
        self.work.pool.names.handle_timeout(now);
        names::close_abandoned(self);
        self.work.pool.take_resolved(now);
        let mut earliest = self.work.pool.expire_queued(now);
        if let Some(d) = self.work.pool.names.deadline() {
            earliest = Some(earliest.map_or(d, |e| e.min(d)));
        }
        let client = self.work.pool.options.clone();
        for index in 0..self.slots.len() {
            let Some(conn) = &mut self.slots[index] else {
                continue;
            };
            let deadline = match (conn.linger_until, &mut conn.role) {
                (Some((until, _)), _) => Some(until),
                (None, Role::Ws(socket)) => {
                    socket.handle_timeout(now);
                    socket.deadline()
                }
                (None, Role::Http(handler)) => {
                    handler.handle_timeout(now);
                    tell_broken_body(handler, Token(index), conn.serial, &mut self.work);
                    if now.saturating_duration_since(handler.last_progress())
                        >= self.options.release_buffers_after
                    {
                        handler.release_buffers();
                    }
                    handler.deadline()
                }
                (None, Role::Upstream(up)) => {
                    let deadline = upstream::handle_timeout(up, now, &client, &mut self.work);
                    if up.exchange.is_none() && !up.expired && !up.connecting {
                        // Idle and in time: nothing to step, and a step
                        // would warm it back into the busy calls (see
                        // `Next::Idle`).
                        if let Some(d) = deadline.filter(|d| *d > now) {
                            earliest = Some(earliest.map_or(d, |e| e.min(d)));
                        }
                        continue;
                    }
                    deadline
                }
                (None, Role::Tunnel(side)) => {
                    // Left alone, it only delivers what it holds: as long
                    // as a response would be given, not a live tunnel.
                    let idle = match side.alone {
                        true => crate::timer::bounded(self.options.limits.idle_timeout),
                        false => self.options.tunnel_idle_timeout,
                    };
                    Some(side.last_progress + idle)
                }
            };
            let idle_tunnel =
                matches!(conn.role, Role::Tunnel(_)) && deadline.is_some_and(|d| now >= d);
            let next = match conn.linger_until {
                Some((until, _)) if now < until => Next::Watch(Interest::READABLE),
                Some(_) => Next::Close,
                None if idle_tunnel => Next::Close,
                None => self.drive(index, false, false, now, driven),
            };
            if next != Next::Close {
                if let Some(d) = deadline.filter(|d| *d > now) {
                    earliest = Some(earliest.map_or(d, |e| e.min(d)));
                }
            }
            self.settle(index, next, now);
        }
        if self.work.is_pending() {
            self.settle_work(now, driven);
        }
        earliest
    }
}

/// Moves an HTTP connection forward.
#[allow(clippy::too_many_arguments)]
fn step_http<D: Driven>(
    conn: &mut Connection,
    token: Token,
    readable: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    let Role::Http(handler) = &mut conn.role else {
        return Next::Close;
    };
    let serial = conn.serial;
    let mut dispatcher = Dispatcher {
        driven,
        work,
        now,
        token,
        serial,
    };
    if !readable {
        // Requests read while responses were owed may go on now.
        handler.process(now, &mut dispatcher);
    }
    let mut endpoint = HttpEndpoint {
        handler,
        dispatch: &mut dispatcher,
        now,
    };
    let io = pump(&conn.stream, &mut endpoint, readable, scratch);
    if handler.has_abandoned() {
        take_reports(handler, token, serial, work);
    }
    if let Err(e) = io {
        report(options, conn.peer, &format!("connection failed: {e}"));
        return Next::Close;
    }
    if let Some(incident) = handler.take_incident() {
        report(options, conn.peer, &incident.to_string());
    }
    if handler.is_finished() {
        // Closed with requests still waiting (a client that stopped
        // reading, dropped at its idle timeout): they will not be answered,
        // told now rather than at the end of the linger.
        if handler.waiting_count() > 0 {
            handler.abandon_all();
            take_reports(handler, token, serial, work);
        }
        return start_lingering(conn, now, options);
    }
    // WRITABLE only while output waits; READABLE unless backpressure says stop.
    match (handler.wants_read(), handler.wants_write()) {
        (true, true) => Next::Watch(Interest::READABLE | Interest::WRITABLE),
        (false, true) => Next::Watch(Interest::WRITABLE),
        (true, false) => Next::Watch(Interest::READABLE),
        (false, false) => Next::Quiet,
    }
}

/// What a step of `handler` gave up: requests abandoned, and with them a
/// request body it will not read on, told now rather than at the close or
/// the next sweep.
#[cold]
fn take_reports(handler: &mut Handler, token: Token, serial: u64, work: &mut Work) {
    work.abandoned.extend(
        handler
            .take_abandoned()
            .map(|id| Responder { token, serial, id }),
    );
    tell_broken_body(handler, token, serial, work);
}

/// A request body `handler` will not read on (it stalled, or a response
/// that closes the connection came before its end), if any: its end goes
/// to the application, the upstream the body is piped to, or the response
/// it is echoed into.
fn tell_broken_body(handler: &mut Handler, token: Token, serial: u64, work: &mut Work) {
    if let Some((id, error)) = handler.take_broken_body() {
        let responder = Responder { token, serial, id };
        work.inbound.push((responder, Inbound::End(Err(error))));
    }
}

/// Closes a WebSocket as the server shuts down (1001).
fn going_away(socket: &mut WebSocket, now: Instant) {
    socket.close(
        crate::ws::CloseCode::GOING_AWAY,
        "server shutting down",
        now,
    );
}

/// Moves an upgraded connection over to a [`WebSocket`]: the 101 and the
/// bytes that followed the request go with it.
#[allow(clippy::too_many_arguments)]
fn upgrade<D: Driven>(
    conn: &mut Connection,
    token: Token,
    shutting_down: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    // Only a handshake this loop answered may switch; a plain service's own
    // 101 has no protocol to switch to here.
    let Some(opened) = driven.take_upgrade() else {
        return Next::Close;
    };
    let Role::Http(handler) = &mut conn.role else {
        return Next::Close;
    };
    let (output, input) = handler.take_upgraded();
    let mut socket = WebSocket::new(options.ws_limits.clone(), now);
    socket.queue_raw(&output);
    let mut cx = work.context(now);
    driven.on_ws_open(token, &opened, &mut cx);
    let mut handed = false;
    socket.receive(&input, now, |message| {
        handed = true;
        driven.on_ws_message(token, message, &mut cx)
    });
    if shutting_down {
        // A handshake begun before the drain is answered, as a request is;
        // the socket then goes as those open at the drain went.
        going_away(&mut socket, now);
    }
    conn.role = Role::Ws(Box::new(socket));
    step_ws(
        conn, token, false, handed, now, driven, work, scratch, options,
    )
}

/// Moves a WebSocket connection forward: each message goes to the
/// application; what is queued is written. `handed`: messages went to the
/// application just before (frames behind a handshake), whose replies are
/// not queued yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step_ws<D: Driven>(
    conn: &mut Connection,
    token: Token,
    readable: bool,
    handed: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    let Role::Ws(socket) = &mut conn.role else {
        return Next::Close;
    };
    // What the application queues in this step, answering what it reads.
    let before = work.outbox.queued_bytes();
    let mut cx = work.context(now);
    let mut endpoint = WsEndpoint {
        socket,
        on_message: |message: crate::ws::Message<'_>| {
            driven.on_ws_message(token, message, &mut cx);
            cx.outbox.queued_bytes().saturating_sub(before)
        },
        replies: 0,
        now,
        gone: false,
        handed,
    };
    let io = pump(&conn.stream, &mut endpoint, readable, scratch);
    let (gone, handed) = (endpoint.gone, endpoint.handed);
    if !handed {
        // The replies to what was read before a close have been queued
        // (this step comes after their delivery): later frames no longer
        // go ahead of the close.
        socket.replies_done();
    }
    if io.is_err() || gone || socket.is_dropped() {
        return Next::Close;
    }
    if socket.is_finished() {
        // The close frame is out: the peer's answer is drained while lingering.
        driven.on_ws_close(token, &mut work.context(now));
        return start_lingering(conn, now, options);
    }
    if !socket.wants_write() {
        // An idle WebSocket costs no buffer memory.
        socket.release_buffers();
        return Next::Watch(Interest::READABLE);
    }
    // Closing, it reads nothing until its close frame is out: watched for
    // reading, a peer that sends on would wake every poll at once
    // (readiness is level-triggered) while a slow reader drains the queue.
    match socket.wants_read() {
        true => Next::Watch(Interest::READABLE | Interest::WRITABLE),
        false => Next::Watch(Interest::WRITABLE),
    }
}

fn report(options: &ServerOptions, peer: SocketAddr, what: &str) {
    (options.log)(&format!("edgepoll: {peer}: {what}"));
}

/// The most connections the loop accepts for one readiness of its
/// listener, as a burst's share beside the connections already open.
const ACCEPTS_PER_EVENT: usize = 128;

/// The most idle connections closed at once when descriptors run out
/// (nginx closes as many of its reusable ones).
const SHED_AT_ONCE: usize = 32;

/// EMFILE (WASI 33) or ENFILE (41): the process or the system is out of
/// descriptors.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(33 | 41))
}

/// An accept error of the one connection it would have handed over, not of
/// the listener: the next may be accepted at once. Besides an abort or a
/// reset, the network errors Linux's accept(2) passes on from the new
/// socket, which it asks to be retried as EAGAIN is: WASI's ENETDOWN (38),
/// EPROTO (65), ENOPROTOOPT (50), EHOSTUNREACH (23), ENETUNREACH (40),
/// ENOTSUP (58) and EPERM (63, a firewall's). Each takes one connection
/// from the queue, so retrying them cannot spin.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23 | 38 | 40 | 50 | 58 | 63 | 65))
}

/// Shuts the write side of a connection that has said all it will, and
/// reads (and drops) what its peer still sends for a while before the
/// close, so that a close with unread input does not become a reset that
/// could destroy the last response before the peer reads it (RFC 9112
/// §9.6).
fn start_lingering(conn: &mut Connection, now: Instant, options: &ServerOptions) -> Next {
    let _ = conn.stream.shutdown(Shutdown::Write);
    conn.linger_until = Some(lingering(now, options));
    Next::Watch(Interest::READABLE)
}

/// The deadlines of a connection that starts lingering at `now`: the next
/// (moved on by each byte read) and the last.
fn lingering(now: Instant, options: &ServerOptions) -> (Instant, Instant) {
    let most = now + options.linger_most.max(options.linger);
    (now + options.linger, most)
}
