//! The event loop: accepts connections and drives one HTTP [`Handler`](crate::http::Handler)
//! per connection through [`Poll`](crate::Poll), a [`WebSocket`](crate::ws::WebSocket) once a
//! connection has upgraded, and the connections of the application's own
//! requests ([`App`]), all on one loop with one read/write path.
//!
//! - `core`: the loop, the connection table and the timers;
//! - `connection`: what a connection carries, and the read/write path;
//! - `upstream`: outbound connections (connect, send, pool, retry);
//! - `bodies`: streamed bodies moved between connections, with backpressure;
//! - `names`: the resolver's sockets (UDP, and TCP for long answers);
//! - `tunnel`: two connections joined byte for byte after an upgrade;
//! - `ws_router`: delivery of what a WebSocket application queued;
//! - `driven`: the one trait over the three kinds of application.

mod bodies;
mod connection;
mod core;
mod driven;
mod held;
mod names;
mod tunnel;
mod upstream;
mod ws_router;

#[cfg(test)]
mod test_pair {
    use crate::net::{self, TcpListener, TcpStream};
    use std::io;
    use std::time::{Duration, Instant};

    /// A connected pair over loopback: (the loop's end, the far end).
    pub(crate) fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = net::local_addr(listener).expect("bound");
        let near = net::connect(addr).expect("connects");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match net::accept(listener) {
                Ok((far, _)) => return (near, far),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection to accept");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

use crate::app::App;
use crate::client::ClientOptions;
use crate::http::{Limits, Service};
use crate::net::TcpListener;
use crate::ws::{self, WsLimits};
use driven::{Apps, HttpOnly, WebSockets};
use std::io;
use std::time::Duration;

pub(crate) use self::core::Core;
pub(crate) use driven::Driven;

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
    /// After the last response of a closing connection (or a WebSocket's
    /// close frame), unread input is drained before the socket closes
    /// (closing with unread data would reset the connection and could
    /// destroy the response in flight): until `linger` passes without a
    /// byte, or `linger_most` in all (nginx's `lingering_timeout` and
    /// `lingering_time`). A client still uploading a refused body so gets
    /// its answer.
    pub linger: Duration,
    /// The most a closing connection is drained in all (see `linger`);
    /// while the server shuts down (its listener closed), `linger` is the
    /// most.
    pub linger_most: Duration,
    /// How long accepting pauses after running out of descriptors with no
    /// connection between requests to close for room, or after any other
    /// accept error that is not passing (ENOBUFS, ENOMEM; at least 10 ms:
    /// a listener that stays readable must not be spun on).
    pub accept_backoff: Duration,
    /// Where one-line reports of refused requests and timeouts go
    /// ([`log_to_stderr`](crate::log_to_stderr) by default).
    pub log: fn(&str),
    /// After this many requests were taken, stop accepting, answer them
    /// and return from [`Server::serve`], as in a graceful shutdown (for
    /// benchmarks that count the work of a fixed number of requests).
    pub stop_after: Option<u64>,
    /// While other connections are busy, a quiet connection that sends a
    /// request is noticed within this interval (see
    /// [`Poll::set_full_poll_interval`](crate::Poll::set_full_poll_interval)).
    pub full_poll_interval: Duration,
    /// Quiet connections are looked at by peeking at their receive queues
    /// rather than in full polls (see [`Poll::set_peek_quiet`](crate::Poll::set_peek_quiet)): for WasmEdge
    /// AOT with thousands of quiet connections. Off by default.
    pub peek_quiet: bool,
    /// A connection without progress for this long gives its buffers back
    /// (an idle keep-alive connection then costs no buffer memory).
    pub release_buffers_after: Duration,
    /// Limits of WebSocket connections ([`Server::serve_websockets`]).
    pub ws_limits: WsLimits,
    /// The outbound client of an [`App`] ([`Context::fetch`](crate::Context::fetch)).
    pub client: ClientOptions,
    /// The most bytes of a streamed body queued for one connection to send
    /// before its source is held (not read) until it drains to a quarter;
    /// for a tunnel ([`Context::respond_tunnel`](crate::Context::respond_tunnel)),
    /// the most bytes kept for one side before the other is not read
    /// (at least 1 is used).
    ///
    /// It is also the most one step reads from a connection (a read of up
    /// to 64 KiB may pass it), and a source is held after the step that
    /// took it over: a body's queue stays under twice this plus 64 KiB.
    pub body_backlog: usize,
    /// A tunnel through which no byte moved for this long is closed, both
    /// sides. Ten minutes by default: long enough for a WebSocket whose
    /// ends ping each other now and then (nginx's `proxy_read_timeout`,
    /// 60 s, surprises many a WebSocket behind it).
    pub tunnel_idle_timeout: Duration,
    /// Every final response that goes without a `Date` field of its own
    /// gets one, the loop's own refusals (400, 408, 413, ...) included:
    /// RFC 9110 §6.6.1 asks it of an origin server with a clock, and of a
    /// proxy for a response it forwards. Interim responses and a 101 get
    /// none. The wall clock is read at most once a second
    /// ([`http::DateCache`](crate::http::DateCache)). On by default, as in
    /// hyper and nginx, since §6.6.1 makes it a MUST; off, for a service
    /// that dates its responses itself or a test that compares whole
    /// responses, it spares the echo server's path 3% of its work (126 of
    /// 4 516 interpreter instructions per request, by `bench/profile.py`).
    ///
    /// ```
    /// let options = edgepoll::ServerOptions { date: false, ..Default::default() };
    /// # let _ = options;
    /// ```
    pub date: bool,
    /// How long what a streamed response's body gives waits for its next piece
    /// before it is sent, and a pipelined request's answer for the next one's
    /// (see [`Handler::hold_output`](crate::http::Handler::hold_output)): held
    /// while more keeps coming, at most four times as long, or until the body
    /// ends, or (unless it has a `Content-Length` and fits `body_backlog`
    /// whole) until 64 KiB wait. Sent as it came, a small send waited for the
    /// client's delayed acknowledgement of the one before, up to 40 ms, as
    /// WasmEdge leaves Nagle's algorithm on. 2 ms by default (with 1 ms, pieces
    /// nginx gzips came too far apart under WasmEdge's interpreter); zero sends
    /// each piece and each answer as it comes.
    pub hold_for_body: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            linger: Duration::from_secs(2),
            linger_most: Duration::from_secs(30),
            accept_backoff: Duration::from_millis(100),
            log: crate::log_to_stderr,
            stop_after: None,
            full_poll_interval: crate::DEFAULT_FULL_POLL_INTERVAL,
            peek_quiet: false,
            release_buffers_after: Duration::from_secs(1),
            ws_limits: WsLimits::default(),
            client: ClientOptions::default(),
            body_backlog: 256 * 1024,
            tunnel_idle_timeout: Duration::from_secs(600),
            date: true,
            hold_for_body: Duration::from_millis(2),
        }
    }
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
    core: Core,
}

impl Server {
    /// A server on a listener made by [`net::bind`](crate::net::bind) (non-blocking).
    pub fn new(listener: TcpListener, options: ServerOptions) -> Server {
        Server {
            listener,
            core: Core::new(options),
        }
    }

    /// Serves until an unrecoverable error of the poll itself; or, with
    /// [`ServerOptions::stop_after`], until that many requests were taken
    /// and answered; or, once the listener is shut (as `edgepoll-host
    /// --instances` shuts it on SIGTERM), until the connections drained:
    /// idle ones close, requests begun are answered, WebSockets close with
    /// 1001, tunnels end (see [`Context::respond_tunnel`](crate::Context::respond_tunnel)),
    /// and `Ok(())` is returned when none is left. (The same holds
    /// for [`serve_websockets`](Self::serve_websockets) and
    /// [`serve_app`](Self::serve_app); an app's response stream it never
    /// ends holds the drain until the runtime stops waiting.)
    pub fn serve<S: Service>(self, service: S) -> io::Result<()> {
        self.run(HttpOnly(service))
    }

    /// Serves HTTP and WebSockets: requests the service
    /// [`accepts`](ws::Service::accepts) are upgraded, and their messages go
    /// to it; what it sends through its [`Outbox`](crate::ws::Outbox) is delivered by this loop.
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
        self.run(WebSockets::new(service))
    }

    /// Serves an [`App`]: it may answer later, and its own requests
    /// ([`Context::fetch`](crate::Context::fetch)) run on this loop beside
    /// the connections it serves.
    ///
    /// ```no_run
    /// use edgepoll::http::{Reply, Request, Response, StatusCode};
    /// use edgepoll::{App, Context, Responder};
    ///
    /// struct Hello;
    /// impl App for Hello {
    ///     fn call<'a>(&mut self, _: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
    ///         Reply::Now(Response::new(StatusCode::OK).body("hello\n"))
    ///     }
    /// }
    /// let listener = edgepoll::net::bind("127.0.0.1:1234".parse().unwrap()).unwrap();
    /// edgepoll::Server::new(listener, Default::default()).serve_app(Hello).unwrap();
    /// ```
    pub fn serve_app<A: App>(self, app: A) -> io::Result<()> {
        self.run(Apps(app))
    }

    fn run<D: Driven>(mut self, mut driven: D) -> io::Result<()> {
        // `stop_after` ends the loop through a drain, in `Core::run`.
        self.core
            .run(&mut driven, Some(&self.listener), None, |_, _| false)
    }
}
