//! The event loop itself: one [`Poll`], one table of connections (accepted,
//! upgraded and outbound alike), the timers, and the work the application
//! queued (responses, requests of its own, WebSocket messages, bodies to
//! move). It knows sockets, not HTTP; the state machines know their
//! protocols, not sockets.

mod accept;
mod outbound;
mod step;
mod work;

pub(crate) use step::step_ws;
use step::{going_away, step_http, tell_broken_body, upgrade};

use super::connection::{pump, Connection, Draining, Role, Scratch};
use super::driven::{Driven, Inbound};
use super::held::Held;
use super::names::{self, NameSockets};
use super::{bodies, upstream, ServerOptions};
use crate::app::{Answer, Context, Pipes, Responder, Source};
use crate::app_timers::Timers;
use crate::client::{ClientEvent, ExchangeId, Pool};
use crate::headroom;
use crate::http::{Handler, ResponseDates};
use crate::net::{self, SocketAddr, TcpListener, TcpStream};
use crate::ws::Outbox;
use crate::{Events, Interest, Poll, Sweep, Token};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
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
    /// Close it with a reset: what it holds for its peer will never be
    /// read (a client dropped for not reading), and a close would leave
    /// the kernel holding it, up to its send buffer, for as long as the
    /// peer keeps its end open (nginx's `reset_timedout_connection`).
    Reset,
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
    /// Connections (slot, serial) whose output is held back for more of a
    /// body, with when the hold is to be looked at again, in the order
    /// queued (each at most a `hold_for_body` after: one due sooner, at the
    /// end of a hold's longest time, waits for those before it): see
    /// [`Handler::hold_output`].
    pub(crate) held_output: VecDeque<(usize, u64, Instant)>,
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
    /// The log lines of accepting paused, and of connections not taken
    /// for want of memory (see `accept_all`).
    pause_told: accept::Paced,
    not_taken_told: accept::Paced,
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
        // Thousands of idle connections cost the busy calls nothing; the
        // loop warms what it waits on (see `ServerOptions::full_poll_interval`).
        poll.set_split_quiet(true);
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
            pause_told: accept::Paced::default(),
            not_taken_told: accept::Paced::default(),
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
        let mut dates = ResponseDates::start(Instant::now(), self.options.date);
        driven.on_start(&mut self.work.context(Instant::now()));
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
            if let Some(due) = self.work.pool.names.deadline() {
                wake = wake.min(due);
            }
            if let Some(&(_, _, until)) = self.work.held_output.front() {
                wake = wake.min(until);
            }
            match self.poll.poll_until(&mut events, Some(wake)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            dates.refresh(now);
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
            if self.work.held_output.front().is_some_and(|h| h.2 <= now) {
                self.send_held(now, driven);
            }
            if self
                .work
                .pool
                .names
                .deadline()
                .is_some_and(|due| now >= due)
            {
                self.resolve_due(now, driven);
            }
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

    /// Ends or resends the lookups due at `now`, and settles what that
    /// started or failed. Not left to the sweep: a lookup's deadlines are
    /// short (IPv6 is waited for [`OTHER_FAMILY_GRACE`] once IPv4 has
    /// come, a query is sent again after [`RESEND_AFTER`]) and a request
    /// waits on each, where the sweep may come a granularity late.
    ///
    /// [`OTHER_FAMILY_GRACE`]: crate::dns::OTHER_FAMILY_GRACE
    /// [`RESEND_AFTER`]: crate::dns::RESEND_AFTER
    fn resolve_due<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        self.end_due_lookups(now);
        if self.work.is_pending() {
            self.settle_work(now, driven);
        }
    }

    /// Ends or resends the lookups due at `now`, and hands the names
    /// resolved to the exchanges waiting on them.
    fn end_due_lookups(&mut self, now: Instant) {
        self.work.pool.names.handle_timeout(now);
        names::close_abandoned(self);
        self.work.pool.take_resolved(now);
    }

    /// How often deadlines are looked at: an eighth of the shortest timeout
    /// a user sets, between 5 ms and 1 s (the linger's end needs no such
    /// precision; name lookups keep their own, `resolve_due`).
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

    /// Shuts down gracefully, as nginx does on SIGQUIT: idle HTTP
    /// connections close, requests already begun are answered (with
    /// `Connection: close`), WebSockets are closed with 1001 (going away),
    /// tunnels end (each side is written what it was owed, then closes as
    /// an HTTP connection does: a tunnel's bytes are opaque, so no close
    /// frame can go into them, and left open a tunnel held the drain open
    /// for as long as its peers talked), and [`run`](Self::run) returns
    /// once no inbound connection is left.
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
                Role::Tunnel(side) => side.leave_alone(now),
                Role::Upstream(_) => continue,
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
        // With memory short (a runtime's limit reached), the connection is
        // refused, not every connection with the process.
        let full = index == self.slots.len() && self.slots.len() == self.slots.capacity();
        if full && headroom::grow(|| self.slots.try_reserve(1)).is_err() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
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
            Next::Reset => return self.end(index, now, true),
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
        self.end(index, now, false);
    }

    /// [`close`](Self::close), with a reset when `reset` (see
    /// `net::close_with_reset`).
    pub(crate) fn end(&mut self, index: usize, now: Instant, reset: bool) {
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
                if !inbound.is_empty() && pipes.carries_bodies_at(index) {
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
        if reset {
            net::close_with_reset(conn.stream);
        }
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

    /// Steps the connections whose output was held back until `now` or
    /// before (see [`Handler::hold_output`]): it goes now.
    #[cold]
    fn send_held<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        while let Some(&(index, serial, until)) = self.work.held_output.front() {
            if until > now {
                break;
            }
            self.work.held_output.pop_front();
            if matches!(self.slots.get(index), Some(Some(conn)) if conn.serial == serial) {
                self.step_now(index, now, driven);
            }
        }
        if self.work.is_pending() {
            self.settle_work(now, driven);
        }
    }

    /// Steps a connection outside of a poll event (something was queued on
    /// it), and applies the outcome.
    pub(crate) fn step_now<D: Driven>(&mut self, index: usize, now: Instant, driven: &mut D) {
        let next = self.drive(index, false, false, now, driven);
        self.settle(index, next, now);
    }

    /// Fires passed deadlines; returns the earliest one still ahead.
    fn check_deadlines<D: Driven>(&mut self, now: Instant, driven: &mut D) -> Option<Instant> {
        // Names first: a request whose lookup ends now fails with the
        // lookup's error rather than its own timeout.
        self.end_due_lookups(now);
        // (The lookups' own deadlines wake the loop themselves.)
        let mut earliest = self.work.pool.expire_queued(now);
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
                    let deadline = upstream::handle_timeout(up, now, &mut self.work);
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
                    // Left alone (its peer broke, or a drain), it only
                    // delivers what it holds: as long as a response would
                    // be given, not a live tunnel.
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
