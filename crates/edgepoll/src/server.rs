//! The event loop: accepts connections and drives one HTTP [`Handler`] per
//! connection through [`Poll`], or a [`WebSocket`] once a connection has
//! upgraded. It knows sockets, not HTTP; the state machines know their
//! protocols, not sockets.

use crate::http::{self, Handler, Limits, Request, Response, Service};
use crate::net::{self, Shutdown, SocketAddr, TcpListener, TcpStream};
use crate::ws::{self, Message, Outbox, WebSocket, WsLimits};
use crate::{Events, Interest, Poll, Sweep, Token};
use std::io;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event, so one fast sender cannot starve the others.
const READS_PER_EVENT: usize = 16;

/// Settings of [`Server`].
///
/// ```
/// let options = edgepoll::ServerOptions::default();
/// assert_eq!(options.linger, std::time::Duration::from_secs(2));
/// ```
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Per-connection limits and timeouts.
    pub limits: Limits,
    /// After the last response of a closing connection, how long unread input
    /// is drained before the socket closes (closing with unread data would
    /// reset the connection and could destroy the response in flight).
    pub linger: Duration,
    /// How long accepting pauses after running out of descriptors.
    pub accept_backoff: Duration,
    /// Where one-line reports of refused requests and timeouts go.
    pub log: fn(&str),
    /// Serve this many requests, then return from [`Server::serve`] (for
    /// benchmarks that count the work of a fixed number of requests).
    pub stop_after: Option<u64>,
    /// While other connections are busy, a quiet connection that sends a
    /// request is noticed within this interval (see
    /// [`Poll::set_full_poll_interval`]).
    pub full_poll_interval: Duration,
    /// Quiet connections are looked at by peeking at their receive queues
    /// rather than in full polls (see [`Poll::set_peek_quiet`]): for WasmEdge
    /// AOT with thousands of quiet connections. Off by default.
    pub peek_quiet: bool,
    /// A connection without progress for this long gives its buffers back
    /// (an idle keep-alive connection then costs no buffer memory).
    pub release_buffers_after: Duration,
    /// Limits of WebSocket connections ([`Server::serve_websockets`]).
    pub ws_limits: WsLimits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            linger: Duration::from_secs(2),
            accept_backoff: Duration::from_millis(100),
            log: |line| eprintln!("{line}"),
            stop_after: None,
            full_poll_interval: crate::DEFAULT_FULL_POLL_INTERVAL,
            peek_quiet: false,
            release_buffers_after: Duration::from_secs(1),
            ws_limits: WsLimits::default(),
        }
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    /// Set once the connection has switched to WebSocket.
    ws: Option<Box<WebSocket>>,
    interest: Interest,
    /// Set once the write side is shut down: drain input until EOF or then.
    linger_until: Option<Instant>,
}

/// An HTTP/1.1 server: a listener, a [`Service`], and the loop between them.
///
/// ```no_run
/// use edgepoll::http::{Request, Response, StatusCode};
/// fn echo<'a>(request: &Request<'a>) -> Response<'a> {
///     Response::new(StatusCode::OK).body(request.body())
/// }
/// let listener = edgepoll::net::bind("127.0.0.1:1234".parse().unwrap()).unwrap();
/// edgepoll::Server::new(listener, Default::default()).serve(echo).unwrap();
/// ```
pub struct Server {
    listener: TcpListener,
    options: ServerOptions,
    poll: Poll,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
    accept_paused_until: Option<Instant>,
    /// What the WebSocket service queued, not yet delivered.
    outbox: Outbox,
    /// WebSocket connections closed since the service was last told.
    closed_ws: Vec<Token>,
}

impl Server {
    /// A server on a listener made by [`net::bind`] (non-blocking).
    pub fn new(listener: TcpListener, options: ServerOptions) -> Server {
        let mut poll = Poll::new();
        poll.set_full_poll_interval(options.full_poll_interval);
        poll.set_peek_quiet(options.peek_quiet);
        Server {
            listener,
            options,
            poll,
            connections: Vec::new(),
            free: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            accept_paused_until: None,
            outbox: Outbox::default(),
            closed_ws: Vec::new(),
        }
    }

    /// Serves until an unrecoverable error of the poll itself (or, with
    /// [`ServerOptions::stop_after`], until that many requests were answered).
    pub fn serve<S: Service>(self, service: S) -> io::Result<()> {
        self.run(HttpOnly(service))
    }

    /// Serves HTTP and WebSockets: requests the service
    /// [`accepts`](ws::Service::accepts) are upgraded, and their messages go
    /// to it; what it sends through its [`Outbox`] is delivered by this loop.
    ///
    /// ```no_run
    /// use edgepoll::http::{Request, Response, StatusCode};
    /// use edgepoll::ws::{Message, Outbox};
    /// use edgepoll::Token;
    ///
    /// struct Shout;
    /// impl edgepoll::http::Service for Shout {
    ///     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
    ///         Response::new(StatusCode::NOT_FOUND)
    ///     }
    /// }
    /// impl edgepoll::ws::Service for Shout {
    ///     fn accepts(&mut self, request: &Request<'_>) -> bool {
    ///         request.path() == "/ws"
    ///     }
    ///     fn on_message(&mut self, _: Token, message: Message<'_>, out: &mut Outbox) {
    ///         out.broadcast(message);
    ///     }
    /// }
    /// let listener = edgepoll::net::bind("127.0.0.1:1234".parse().unwrap()).unwrap();
    /// edgepoll::Server::new(listener, Default::default()).serve_websockets(Shout).unwrap();
    /// ```
    pub fn serve_websockets<S: ws::Service>(self, service: S) -> io::Result<()> {
        self.run(service)
    }

    fn run<S: ws::Service>(mut self, service: S) -> io::Result<()> {
        let mut service = Counted {
            inner: service,
            served: 0,
            upgrade_target: None,
        };
        self.watch_listener()?;
        let limits = &self.options.limits;
        let granularity = (limits.header_timeout.min(limits.idle_timeout) / 8)
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        let mut sweep = Sweep::new(granularity, Instant::now());
        let mut events = Events::with_capacity(1024);
        loop {
            let mut wake = sweep.next();
            if let Some(until) = self.accept_paused_until {
                wake = wake.min(until);
            }
            match self.poll.poll_until(&mut events, Some(wake)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in &events {
                if event.token() == LISTENER {
                    self.accept_all(now)?;
                } else {
                    self.drive(
                        event.token().0,
                        event.is_readable() || event.is_error(),
                        now,
                        &mut service,
                    );
                    // Before the next event, which may accept a connection
                    // into the slot (and token) of one that just closed.
                    if self.has_ws_work() {
                        self.deliver(now, &mut service);
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.watch_listener()?;
            }
            if sweep.is_due(now) {
                let earliest = self.check_deadlines(now, &mut service);
                if self.has_ws_work() {
                    self.deliver(now, &mut service);
                }
                sweep.rearm(now, earliest);
            }
            if self.options.stop_after.is_some_and(|n| service.served >= n) {
                return Ok(());
            }
        }
    }

    /// The listener is pinned: new connections never wait for a full poll.
    fn watch_listener(&mut self) -> io::Result<()> {
        self.poll
            .register(&self.listener, LISTENER, Interest::READABLE)?;
        self.poll.pin(&self.listener)
    }

    fn accept_all(&mut self, now: Instant) -> io::Result<()> {
        loop {
            match net::accept(&self.listener) {
                Ok((stream, peer)) => self.add(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The peer gave up before we accepted: nothing to serve.
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    // Out of descriptors, or worse. The listener stays readable
                    // while connections wait, so stop watching it for a moment
                    // instead of spinning.
                    (self.options.log)(&format!(
                        "edgepoll: accept failed ({e}); pausing accepts for {:?}",
                        self.options.accept_backoff
                    ));
                    self.poll.deregister(&self.listener)?;
                    self.accept_paused_until = Some(now + self.options.accept_backoff);
                    return Ok(());
                }
            }
        }
    }

    fn add(&mut self, stream: TcpStream, peer: SocketAddr, now: Instant) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.connections.push(None);
            self.connections.len() - 1
        });
        if self
            .poll
            .register(&stream, Token(index), Interest::READABLE)
            .is_err()
        {
            self.free.push(index);
            return;
        }
        let mut handler = Handler::new(self.options.limits.clone(), now);
        handler.set_addresses(Some(peer), net::local_addr(&stream).ok());
        self.connections[index] = Some(Connection {
            stream,
            peer,
            handler,
            ws: None,
            interest: Interest::READABLE,
            linger_until: None,
        });
    }

    fn drive<S: ws::Service>(
        &mut self,
        index: usize,
        readable: bool,
        now: Instant,
        service: &mut Counted<S>,
    ) {
        let Some(Some(conn)) = self.connections.get_mut(index) else {
            return;
        };
        let wanted = match conn.ws {
            Some(_) => step_ws(
                conn,
                Token(index),
                readable,
                now,
                service,
                &mut self.outbox,
                &mut self.scratch,
            ),
            None => {
                let wanted = step(
                    conn,
                    readable,
                    now,
                    service,
                    &mut self.scratch,
                    &self.options,
                );
                if conn.handler.is_upgraded() {
                    self.upgrade(index, now, service)
                } else {
                    wanted
                }
            }
        };
        self.settle(index, wanted);
    }

    /// Moves an upgraded connection over to a [`WebSocket`]: the 101 and the
    /// bytes that followed the request go with it.
    fn upgrade<S: ws::Service>(
        &mut self,
        index: usize,
        now: Instant,
        service: &mut Counted<S>,
    ) -> Option<Interest> {
        let conn = self.connections[index].as_mut()?;
        // Only a handshake this loop answered may switch; a plain service's
        // own 101 has no protocol to switch to here.
        let target = service.upgrade_target.take()?;
        let (output, input) = conn.handler.take_upgraded();
        let mut socket = WebSocket::new(self.options.ws_limits.clone(), now);
        socket.queue_raw(&output);
        conn.ws = Some(Box::new(socket));
        let token = Token(index);
        service.inner.on_open(token, &target, &mut self.outbox);
        if let Some(socket) = &mut conn.ws {
            let outbox = &mut self.outbox;
            socket.receive(&input, now, |message| {
                service.inner.on_message(token, message, outbox)
            });
        }
        step_ws(
            conn,
            token,
            false,
            now,
            service,
            &mut self.outbox,
            &mut self.scratch,
        )
    }

    /// Delivers what the WebSocket service queued, and tells it of closed
    /// connections (which may queue more), until nothing is left.
    fn deliver<S: ws::Service>(&mut self, now: Instant, service: &mut Counted<S>) {
        loop {
            for token in std::mem::take(&mut self.closed_ws) {
                service.inner.on_close(token, &mut self.outbox);
            }
            if self.outbox.is_empty() {
                return;
            }
            let mut outbox = std::mem::take(&mut self.outbox);
            let mut touched = Vec::new();
            let mut everyone = false;
            outbox.drain(|action, frames| match action {
                ws::Action::Send(to, _) => {
                    if let Some(socket) = self.socket(to.0) {
                        socket.queue_frame(frames, now);
                        touched.push(to.0);
                    }
                }
                ws::Action::Broadcast(_) => {
                    everyone = true;
                    for index in 0..self.connections.len() {
                        if let Some(socket) = self.socket(index) {
                            socket.queue_frames(frames, now);
                        }
                    }
                }
                ws::Action::Close(to, code) => {
                    if let Some(socket) = self.socket(to.0) {
                        socket.close(*code, "", now);
                        touched.push(to.0);
                    }
                }
            });
            // Keep the outbox's memory for the next round.
            self.outbox = outbox;
            if everyone {
                // Every open WebSocket (those sent to or closed among them).
                touched.clear();
                touched.extend((0..self.connections.len()).filter(|&i| self.socket(i).is_some()));
            } else {
                touched.sort_unstable();
                touched.dedup();
            }
            for index in touched {
                let Some(Some(conn)) = self.connections.get_mut(index) else {
                    continue;
                };
                let wanted = step_ws(
                    conn,
                    Token(index),
                    false,
                    now,
                    service,
                    &mut self.outbox,
                    &mut self.scratch,
                );
                self.settle(index, wanted);
            }
        }
    }

    /// Whether WebSocket services queued anything; checked inline, as a
    /// plain HTTP server never has.
    #[inline]
    fn has_ws_work(&self) -> bool {
        !self.outbox.is_empty() || !self.closed_ws.is_empty()
    }

    /// The WebSocket of an open (not closing) connection at `index`.
    fn socket(&mut self, index: usize) -> Option<&mut WebSocket> {
        match self.connections.get_mut(index) {
            Some(Some(conn)) if conn.linger_until.is_none() => conn.ws.as_deref_mut(),
            _ => None,
        }
    }

    /// Applies what [`step`] decided: close, or watch for the wanted readiness.
    fn settle(&mut self, index: usize, wanted: Option<Interest>) {
        let Some(Some(conn)) = self.connections.get_mut(index) else {
            return;
        };
        match wanted {
            Some(interest) if interest == conn.interest => {}
            Some(interest) => {
                if self
                    .poll
                    .reregister(&conn.stream, Token(index), interest)
                    .is_ok()
                {
                    conn.interest = interest;
                } else {
                    self.close(index);
                }
            }
            None => self.close(index),
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(conn) = self.connections[index].take() {
            let _ = self.poll.deregister(&conn.stream);
            self.free.push(index);
            if conn.ws.is_some() && conn.linger_until.is_none() {
                self.closed_ws.push(Token(index));
            }
        }
    }

    /// Fires passed deadlines; returns the earliest one still ahead.
    fn check_deadlines<S: ws::Service>(
        &mut self,
        now: Instant,
        service: &mut Counted<S>,
    ) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for index in 0..self.connections.len() {
            let Some(conn) = &mut self.connections[index] else {
                continue;
            };
            let deadline = match (conn.linger_until, &mut conn.ws) {
                (Some(until), _) => Some(until),
                (None, Some(socket)) => {
                    socket.handle_timeout(now);
                    socket.deadline()
                }
                (None, None) => {
                    conn.handler.handle_timeout(now);
                    if now.saturating_duration_since(conn.handler.last_progress())
                        >= self.options.release_buffers_after
                    {
                        conn.handler.release_buffers();
                    }
                    conn.handler.deadline()
                }
            };
            let wanted = match (conn.linger_until, &conn.ws) {
                (Some(until), _) => (now < until).then_some(Interest::READABLE),
                (None, Some(_)) => step_ws(
                    conn,
                    Token(index),
                    false,
                    now,
                    service,
                    &mut self.outbox,
                    &mut self.scratch,
                ),
                (None, None) => step(conn, false, now, service, &mut self.scratch, &self.options),
            };
            if wanted.is_some() {
                if let Some(d) = deadline.filter(|d| *d > now) {
                    earliest = Some(earliest.map_or(d, |e| e.min(d)));
                }
            }
            self.settle(index, wanted);
        }
        earliest
    }
}

/// The loop's view of the service: counts the requests it answers, and
/// answers WebSocket handshakes for the requests it accepts.
struct Counted<S> {
    inner: S,
    served: u64,
    /// The target of the handshake just answered 101, for `on_open`.
    upgrade_target: Option<String>,
}

impl<S: ws::Service> Service for Counted<S> {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        self.served += 1;
        if !self.inner.accepts(request) {
            return self.inner.call(request);
        }
        let response = ws::handshake::answer(request);
        if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            self.upgrade_target = Some(request.target().to_string());
        }
        response
    }

    fn handles_connect(&self) -> bool {
        self.inner.handles_connect()
    }
}

/// An HTTP service, with no WebSocket endpoint.
struct HttpOnly<S>(S);

impl<S: Service> Service for HttpOnly<S> {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        self.0.call(request)
    }

    fn handles_connect(&self) -> bool {
        self.0.handles_connect()
    }
}

impl<S: Service> ws::Service for HttpOnly<S> {
    fn accepts(&mut self, _: &Request<'_>) -> bool {
        false
    }

    fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
}

/// Moves one connection forward; returns the readiness to wait for next, or
/// `None` to close it.
fn step<S: Service>(
    conn: &mut Connection,
    readable: bool,
    now: Instant,
    service: &mut S,
    scratch: &mut [u8],
    options: &ServerOptions,
) -> Option<Interest> {
    if conn.linger_until.is_some() {
        return (!readable || drain(conn, scratch)).then_some(Interest::READABLE);
    }
    if readable && conn.handler.wants_read() {
        for _ in 0..READS_PER_EVENT {
            match net::recv(&conn.stream, scratch) {
                Ok(0) => {
                    conn.handler.receive_eof(now, service);
                    break;
                }
                Ok(n) => {
                    conn.handler.receive(&scratch[..n], now, service);
                    if n < scratch.len() || !conn.handler.wants_read() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    report(options, conn, &format!("read failed: {e}"));
                    return None;
                }
            }
        }
    }
    // Write what is pending; a drained buffer may unblock pipelined requests.
    while conn.handler.wants_write() {
        // Two parts only when a large body goes out from its input buffer.
        let sent = match conn.handler.pending_output_parts() {
            [all, []] => net::send(&conn.stream, all),
            parts => net::send_vectored(&conn.stream, &parts),
        };
        match sent {
            Ok(0) => return None,
            Ok(n) => {
                conn.handler.consume_output(n, now);
                if !conn.handler.wants_write() {
                    conn.handler.process(now, service);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                report(options, conn, &format!("write failed: {e}"));
                return None;
            }
        }
    }
    if let Some(incident) = conn.handler.take_incident() {
        report(options, conn, &incident.to_string());
    }
    if conn.handler.is_finished() {
        let _ = conn.stream.shutdown(Shutdown::Write);
        conn.linger_until = Some(now + options.linger);
        return Some(Interest::READABLE);
    }
    // WRITABLE only while output waits; READABLE unless backpressure says stop.
    Some(
        match (conn.handler.wants_read(), conn.handler.wants_write()) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            _ => Interest::READABLE,
        },
    )
}

/// Moves one WebSocket connection forward: reads (each message goes to the
/// service), writes what is queued; returns the readiness to wait for next,
/// or `None` to close it.
fn step_ws<S: ws::Service>(
    conn: &mut Connection,
    token: Token,
    readable: bool,
    now: Instant,
    service: &mut Counted<S>,
    outbox: &mut Outbox,
    scratch: &mut [u8],
) -> Option<Interest> {
    if conn.linger_until.is_some() {
        return (!readable || drain(conn, scratch)).then_some(Interest::READABLE);
    }
    let socket = conn.ws.as_deref_mut()?;
    if readable && socket.wants_read() {
        for _ in 0..READS_PER_EVENT {
            match net::recv(&conn.stream, scratch) {
                // Gone without a close frame.
                Ok(0) => return None,
                Ok(n) => {
                    socket.receive(&scratch[..n], now, |message| {
                        service.inner.on_message(token, message, outbox)
                    });
                    if n < scratch.len() || !socket.wants_read() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }
    while socket.wants_write() {
        match net::send(&conn.stream, socket.pending_output()) {
            Ok(0) => return None,
            Ok(n) => socket.consume_output(n, now),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    if socket.is_dropped() {
        return None;
    }
    if socket.is_finished() {
        // The close frame is out: the peer's answer is drained while lingering.
        service.inner.on_close(token, outbox);
        let _ = conn.stream.shutdown(Shutdown::Write);
        conn.linger_until = Some(now + Duration::from_secs(2));
        return Some(Interest::READABLE);
    }
    if !socket.wants_write() {
        // An idle WebSocket costs no buffer memory.
        socket.release_buffers();
        return Some(Interest::READABLE);
    }
    Some(Interest::READABLE | Interest::WRITABLE)
}

/// Reads and drops input of a closing connection; false once it is over.
fn drain(conn: &mut Connection, scratch: &mut [u8]) -> bool {
    loop {
        match net::recv(&conn.stream, scratch) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

fn report(options: &ServerOptions, conn: &Connection, what: &str) {
    (options.log)(&format!("edgepoll: {}: {what}", conn.peer));
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
