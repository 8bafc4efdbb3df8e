//! The event loop: accepts connections and drives one HTTP [`Handler`] per
//! connection through [`Poll`]. It knows sockets, not HTTP; the handler knows
//! HTTP, not sockets.

use crate::http::{Handler, Limits, Service};
use crate::net::{self, Shutdown, SocketAddr, TcpListener, TcpStream};
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
    /// A connection without progress for this long gives its buffers back
    /// (an idle keep-alive connection then costs no buffer memory).
    pub release_buffers_after: Duration,
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
            release_buffers_after: Duration::from_secs(1),
        }
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    handler: Handler,
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
}

impl Server {
    /// A server on a listener made by [`net::bind`] (non-blocking).
    pub fn new(listener: TcpListener, options: ServerOptions) -> Server {
        let mut poll = Poll::new();
        poll.set_full_poll_interval(options.full_poll_interval);
        Server {
            listener,
            options,
            poll,
            connections: Vec::new(),
            free: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            accept_paused_until: None,
        }
    }

    /// Serves until an unrecoverable error of the poll itself (or, with
    /// [`ServerOptions::stop_after`], until that many requests were answered).
    pub fn serve<S: Service>(mut self, service: S) -> io::Result<()> {
        let mut service = Counted {
            inner: service,
            served: 0,
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
                }
            }
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.watch_listener()?;
            }
            if sweep.is_due(now) {
                let earliest = self.check_deadlines(now, &mut service);
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
            interest: Interest::READABLE,
            linger_until: None,
        });
    }

    fn drive<S: Service>(&mut self, index: usize, readable: bool, now: Instant, service: &mut S) {
        let Some(Some(conn)) = self.connections.get_mut(index) else {
            return;
        };
        let wanted = step(
            conn,
            readable,
            now,
            service,
            &mut self.scratch,
            &self.options,
        );
        self.settle(index, wanted);
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
        }
    }

    /// Fires passed deadlines; returns the earliest one still ahead.
    fn check_deadlines<S: Service>(&mut self, now: Instant, service: &mut S) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for index in 0..self.connections.len() {
            let Some(conn) = &mut self.connections[index] else {
                continue;
            };
            let deadline = match conn.linger_until {
                Some(until) => Some(until),
                None => {
                    conn.handler.handle_timeout(now);
                    if now.saturating_duration_since(conn.handler.last_progress())
                        >= self.options.release_buffers_after
                    {
                        conn.handler.release_buffers();
                    }
                    conn.handler.deadline()
                }
            };
            let wanted = match conn.linger_until {
                Some(until) => (now < until).then_some(Interest::READABLE),
                None => step(conn, false, now, service, &mut self.scratch, &self.options),
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

/// A service that counts the requests it answers.
struct Counted<S> {
    inner: S,
    served: u64,
}

impl<S: Service> Service for Counted<S> {
    fn call<'a>(&mut self, request: &crate::http::Request<'a>) -> crate::http::Response<'a> {
        self.served += 1;
        self.inner.call(request)
    }

    fn handles_connect(&self) -> bool {
        self.inner.handles_connect()
    }
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
        match net::send_vectored(&conn.stream, &conn.handler.pending_output_parts()) {
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
