//! The per-connection HTTP/1.1 server state machine: bytes in, bytes out, no I/O.
//!
//! This file holds the connection's state and its way in ([`Handler::receive`]);
//! the rest is one file per concern: the request's head and body, handing
//! it to the service, which request may be taken next (pipelining), answers
//! given later (deferred) or in pieces (streamed), what goes out (sending),
//! and the deadlines.

mod deferred;
mod dispatch;
mod hold;
mod pipelining;
mod request_body;
mod request_head;
mod sending;
mod streamed;
mod timeouts;

use super::body::{BodyError, Incoming, Outgoing};
use super::chunked::ChunkedDecoder;
use super::head::HeadParser;
use super::input::InputBuffer;
use super::output::OutputBuffer;
use super::request::HeaderSpan;
use super::response::KeepAlive;
use super::scan;
use super::{Dispatch, Limits, RequestId, Response, StatusCode, Version};
use crate::headroom;
use crate::held_pieces::HeldPieces;
use crate::timer::bounded;
use dispatch::take_id;
use hold::Hold;
pub use hold::OutputHold;
use request_body::chunked_refusal;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

/// The most header fields any configuration may allow; [`Limits::max_headers`]
/// is capped here so the parser's scratch array can live on the stack.
pub const MAX_HEADERS: usize = 256;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How many bytes of chunked framing a buffered body may hold before they
/// are cut out (moving the bytes after them costs less than keeping them
/// only when there are this many).
const FRAMING_KEPT_UP_TO: usize = 4096;

/// Why a request is refused 503: the process's memory (a runtime's
/// `--memory-page-limit`, say) could not hold what its client sent.
const NO_MEMORY: &str = "no memory free to hold the request";

/// Why a request was not even refused: no memory free for that either.
const NO_MEMORY_TO_ANSWER: &str = "no memory free to answer the request; closed";

/// What a refusal needs free: its response, the head it is encoded into
/// and its log line, with room over.
const ANSWER_ROOM: usize = 4096;

/// Something on a connection worth one log line: a request refused, a timeout,
/// a client gone mid-request.
///
/// ```
/// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
/// use std::time::Instant;
///
/// fn ok<'a>(_: &Request<'a>) -> Response<'a> {
///     Response::new(StatusCode::OK)
/// }
/// let now = Instant::now();
/// let mut conn = Handler::new(Limits::default(), now);
/// let two_lengths = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
/// conn.receive(two_lengths, now, &mut ok);
/// let incident = conn.take_incident().unwrap();
/// assert_eq!(incident.status, Some(StatusCode::BAD_REQUEST));
/// eprintln!("{incident}"); // "400 Bad Request: ..."
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incident {
    /// The status sent, if the connection answered before closing.
    pub status: Option<StatusCode>,
    /// What happened, in a few words.
    pub reason: &'static str,
}

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}: {}", self.reason),
            None => f.write_str(self.reason),
        }
    }
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    /// A length over [`Limits::max_body_bytes`]: 413, unless the service
    /// streams the body.
    Oversized(u64),
    /// Boxed: the decoder is large, and most requests carry a length instead
    /// (a smaller state is cheaper to move for every request).
    Chunked(Box<ChunkedDecoder>),
}

#[derive(Debug)]
struct Head {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    version: Version,
    keep_alive: bool,
    is_head_method: bool,
    framing: Framing,
    /// For chunked bodies: raw bytes read so far and the end of the decoded bytes,
    /// both as offsets into the input buffer.
    raw_pos: usize,
    decoded_end: usize,
    /// `Expect: 100-continue` still to be answered once the body is wanted.
    expect_continue: bool,
    /// A bodiless HTTP/1.1 request that offers to switch protocols.
    offers_upgrade: bool,
}

#[derive(Debug)]
// An explicit tag: with the compiler's niche layout, every `match` on the
// state first decodes the tag from a field (a dozen Wasm instructions),
// and the state is matched several times per request.
#[repr(u8)]
enum State {
    /// Between requests, no byte of the next one yet.
    Idle,
    /// Some bytes of a request head have arrived; `parser` knows how far
    /// they were parsed.
    Head {
        /// When the header timeout began: at its first byte, or when it
        /// could be read again after being held back (`held`).
        started: Instant,
        parser: HeadParser,
        /// Held back for want of room (responses the client has not read,
        /// or too many waiting): the header timeout does not run.
        held: bool,
        /// Its request line is parsed and names HEAD: a refusal gets no
        /// body (RFC 9110 §9.3.2).
        head_method: bool,
    },
    /// The head is parsed; the body is arriving.
    Body(Head),
    /// The request was dispatched at its head; its body goes to the service
    /// piece by piece as it arrives.
    Stream {
        id: RequestId,
        incoming: Incoming,
        keep_alive: bool,
        /// Its `Expect: 100-continue` waits for the responses before it
        /// (`flush_ready`), unless the body comes first.
        continue_owed: bool,
    },
    /// A request that offers to switch protocols waits for its deferred
    /// response: what follows it may be the new protocol's, so nothing
    /// more is parsed until that response says which
    /// ([`Handler::respond_switch`] or any other answer); it is read only
    /// up to a head's size and kept, to notice a client that leaves.
    Switching {
        id: RequestId,
        keep_alive: bool,
        /// Its 101 is queued behind earlier responses.
        switched: bool,
    },
    /// The last response is queued; no more requests are read.
    Closing,
    /// A 101 was sent: the connection speaks another protocol now, and what
    /// arrives is kept for it ([`Handler::take_upgraded`]).
    Upgraded,
    /// Nothing more to do: drop the connection.
    Closed,
}

impl State {
    /// A request head begun at `now`, nothing of it parsed yet.
    #[inline]
    fn head_from(now: Instant) -> State {
        State::Head {
            started: now,
            parser: HeadParser::default(),
            held: false,
            head_method: false,
        }
    }
}

/// The sans-IO HTTP/1.1 server side of one connection.
///
/// Feed it what the socket received with [`receive`](Handler::receive), send what
/// [`pending_output`](Handler::pending_output) holds and report it with
/// [`consume_output`](Handler::consume_output). It parses request heads as
/// `httparse` does (its own parser, checked against `httparse` in the tests,
/// costs WebAssembly a third of the instructions), reads bodies framed by
/// `Content-Length` or chunked coding, answers
/// `Expect: 100-continue`, keeps HTTP/1.1 connections alive, answers pipelined
/// requests in order, and refuses bad input with a status and a close.
///
/// Driving it from a loop of one's own (the library's `Server` is one):
/// - bytes in: [`receive`](Handler::receive) while
///   [`wants_read`](Handler::wants_read) (false is backpressure: stop
///   reading), [`receive_eof`](Handler::receive_eof) at the peer's end;
/// - bytes out: [`pending_output_parts`](Handler::pending_output_parts)
///   while [`wants_write`](Handler::wants_write), then
///   [`consume_output`](Handler::consume_output) with what was sent;
/// - [`process`](Handler::process) after output was consumed, after
///   [`handle_timeout`](Handler::handle_timeout) (its 504s are answers) and
///   after any call that answers or ends a response (`respond*`,
///   `end_body`, `abort_body`) or resumes a body (`pause_body(id, false)`),
///   before reading on: requests held back go on then;
/// - time: [`handle_timeout`](Handler::handle_timeout) at
///   [`deadline`](Handler::deadline);
/// - reports, after each of these: [`take_incident`](Handler::take_incident)
///   (for a log), [`take_abandoned`](Handler::take_abandoned) (requests no
///   longer owed an answer) and [`take_broken_body`](Handler::take_broken_body);
/// - a switch: once [`is_upgraded`](Handler::is_upgraded),
///   [`take_upgraded`](Handler::take_upgraded) hands the connection's bytes
///   to the new protocol;
/// - the end: once [`is_finished`](Handler::is_finished), close (after a
///   linger, if input may still come); a connection lost before that gets
///   [`lose_connection`](Handler::lose_connection), and its reports taken.
///
/// ```
/// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
/// use std::time::Instant;
///
/// fn echo<'a>(req: &Request<'a>) -> Response<'a> {
///     Response::new(StatusCode::OK).body(req.body())
/// }
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", Instant::now(), &mut echo);
/// assert!(conn.pending_output().ends_with(b"\r\n\r\nhi"));
/// ```
#[derive(Debug)]
pub struct Handler {
    limits: Limits,
    input: InputBuffer,
    output: OutputBuffer,
    headers: Vec<HeaderSpan>,
    state: State,
    peer_closed: bool,
    /// The server is shutting down: responses close their connections.
    draining: bool,
    last_progress: Instant,
    /// Bytes moved since the idle clock last started over, short of what
    /// counts as progress ([`Limits::min_progress_bytes`]).
    moved: usize,
    incident: Option<Incident>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    /// Responses not yet in `output` because a deferred one before them (or
    /// they themselves) are not ready: responses leave in request order.
    waiting: VecDeque<Waiting>,
    /// The number the next request gets.
    next_id: u64,
    /// Requests still owed an answer that were given up on (timed out,
    /// behind a close, or the connection gone), not yet reported by
    /// [`Handler::take_abandoned`].
    abandoned: Vec<RequestId>,
    /// A streamed request body that broke off where no service was at hand
    /// to be told (a stall past the idle timeout, the connection closing,
    /// or a response that closes it given before the body's end): see
    /// [`take_broken_body`](Self::take_broken_body).
    broken_body: Option<(RequestId, BodyError)>,
    /// Reading a streamed request body is paused (backpressure).
    body_paused: Option<RequestId>,
    /// Bytes of the streamed body read since its whole response was given
    /// (see [`Limits::max_body_after_response`]).
    after_response: u64,
    /// The output held back for more to join it (see
    /// [`Handler::hold_output`]).
    hold: Hold,
}

/// A response slot behind a deferred response.
#[derive(Debug)]
struct Waiting {
    id: RequestId,
    /// The encoded response once it is ready, and whether the connection
    /// stays open after it.
    ready: Option<(Vec<u8>, bool)>,
    /// A response whose body is being streamed.
    stream: Option<Box<Streamed>>,
    /// What the request allows the response: keep-alive, and no body for HEAD.
    keep_alive: bool,
    version: Version,
    head_only: bool,
    deadline: Instant,
    /// What its method allows (one field: the entry stays as small).
    method: MethodKind,
}

/// What a waiting request's method allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodKind {
    /// Safe (RFC 9110 §9.2.1): requests after it may be processed while
    /// it waits (see `order_allows`).
    Safe,
    Unsafe,
    /// A CONNECT a service took: a 2xx answer is refused (see
    /// [`opens_tunnel`]).
    Connect,
}

impl MethodKind {
    fn is_connect(self) -> bool {
        self == MethodKind::Connect
    }
}

impl Waiting {
    /// Whether the service still owes this response's head.
    fn is_pending(&self) -> bool {
        self.ready.is_none() && self.stream.is_none()
    }

    /// Whether the service still owes anything (its head, or the rest of a
    /// streamed body).
    fn is_owed(&self) -> bool {
        self.is_pending() || self.stream.as_ref().is_some_and(|s| !s.ended)
    }

    /// Whether the connection closes after its response (ready or
    /// streaming): the requests after it are not to be processed.
    fn closes(&self) -> bool {
        match (&self.ready, &self.stream) {
            (Some((_, keep_alive)), _) => !keep_alive,
            (None, Some(stream)) => !stream.keep_alive,
            _ => false,
        }
    }

    /// Bytes of its response held here until it reaches the front.
    fn queued_len(&self) -> usize {
        match (&self.ready, &self.stream) {
            (Some((bytes, _)), _) => bytes.len(),
            (None, Some(stream)) if !stream.at_front => {
                stream.head.len().saturating_add(stream.held.len())
            }
            _ => 0,
        }
    }
}

/// A streamed response: until it reaches the front, its head and the
/// pieces sent so far wait here; at the front, pieces go straight out.
#[derive(Debug)]
struct Streamed {
    head: Vec<u8>,
    held: HeldPieces,
    framing: Outgoing,
    keep_alive: bool,
    ended: bool,
    /// Ended without completing its body (its source broke off): the
    /// connection closes after what was sent, with no last chunk. Pieces
    /// queued before keep their framing.
    cut: bool,
    at_front: bool,
}

/// Why a piece of a streamed response was not taken.
///
/// ```
/// use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode, StreamError};
/// use std::time::Instant;
///
/// struct Later(Option<RequestId>);
/// impl Dispatch for Later {
///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
///         self.0 = Some(id);
///         Reply::Later
///     }
/// }
/// let (now, mut later) = (Instant::now(), Later(None));
/// let mut conn = Handler::new(Limits::default(), now);
/// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
/// let id = later.0.unwrap();
/// conn.respond_stream(id, Response::new(StatusCode::OK), Some(3), now).unwrap();
/// // Four bytes where three were announced.
/// assert_eq!(conn.send_body(id, "four".into(), now), Err(StreamError::Body(BodyError::TooLong)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The request no longer waits (see [`Gone`]), or was not streamed.
    Gone,
    /// The body broke its announced length.
    Body(BodyError),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Gone => Gone.fmt(f),
            StreamError::Body(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StreamError {}

/// The answer to [`Handler::respond`] for a request that no longer waits: it
/// was answered, timed out (504), or its connection is closing.
///
/// ```
/// use edgepoll::http::{Dispatch, Gone, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
/// use std::time::Instant;
///
/// struct Later(Option<RequestId>);
/// impl Dispatch for Later {
///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
///         self.0 = Some(id);
///         Reply::Later
///     }
/// }
/// let (now, mut later) = (Instant::now(), Later(None));
/// let mut conn = Handler::new(Limits::default(), now);
/// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
/// let id = later.0.unwrap();
/// conn.respond(id, Response::new(StatusCode::OK), now).unwrap();
/// // Answered once; a second answer finds it gone.
/// assert_eq!(conn.respond(id, Response::new(StatusCode::OK), now), Err(Gone));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request no longer waits for a response")
    }
}

impl std::error::Error for Gone {}

/// Why a request was refused: the status to send and the log line.
struct Refusal(StatusCode, &'static str);

/// What one step of [`Handler::process_buffered`] leaves it to do.
enum Flow {
    Return,
    Continue,
    Step(Result<bool, Refusal>),
}

impl Handler {
    /// A connection that has just been accepted at `now`.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body("ok")
    /// }
    /// let limits = Limits { max_body_bytes: 1024, ..Limits::default() };
    /// let mut conn = Handler::new(limits, Instant::now());
    /// conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n", Instant::now(), &mut ok);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 413 "));
    /// ```
    pub fn new(limits: Limits, now: Instant) -> Self {
        Handler {
            // At least one request may wait (0 means 1), so that the room
            // check is one compare.
            limits: Limits {
                max_waiting: limits.max_waiting.max(1),
                header_timeout: bounded(limits.header_timeout),
                idle_timeout: bounded(limits.idle_timeout),
                respond_timeout: bounded(limits.respond_timeout),
                ..limits
            },
            input: InputBuffer::default(),
            output: OutputBuffer::default(),
            headers: Vec::new(),
            state: State::Idle,
            peer_closed: false,
            draining: false,
            last_progress: now,
            moved: 0,
            incident: None,
            peer: None,
            local: None,
            waiting: VecDeque::new(),
            next_id: 0,
            abandoned: Vec::new(),
            broken_body: None,
            body_paused: None,
            after_response: 0,
            hold: Hold::Open,
        }
    }

    /// Tells the connection where it runs, so that requests can report it
    /// ([`Request::peer_addr`](crate::http::Request::peer_addr), [`Request::local_addr`](crate::http::Request::local_addr)). The event loop calls
    /// this; a handler fed bytes directly need not.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits};
    /// use std::time::Instant;
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.set_addresses(Some("127.0.0.1:50000".parse().unwrap()), Some("127.0.0.1:8080".parse().unwrap()));
    /// ```
    pub fn set_addresses(&mut self, peer: Option<SocketAddr>, local: Option<SocketAddr>) {
        self.peer = peer;
        self.local = local;
    }

    /// Takes in bytes received from the peer and answers every request they
    /// complete.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// // However the bytes are cut, the same answer comes.
    /// for byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
    ///     conn.receive(std::slice::from_ref(byte), Instant::now(), &mut ok);
    /// }
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\nok"));
    /// ```
    pub fn receive<S: Dispatch>(&mut self, data: &[u8], now: Instant, service: &mut S) {
        if matches!(self.state, State::Closing | State::Closed) {
            // Lingering: what a closing peer still sends is read and dropped.
            return;
        }
        if let State::Upgraded | State::Switching { .. } = self.state {
            // Kept for whichever protocol follows; while switching, no
            // progress of the client's (a byte a minute must not hold a
            // connection whose client reads nothing), and nothing to process
            // until answered.
            if self.input.extend_from_slice(data).is_err() {
                // The switch cannot go on: what was owed is given up (a
                // 101 still to come would find it gone), and the
                // connection closes.
                self.abandon_all();
                self.close_quietly(NO_MEMORY);
            }
            return;
        }
        if data.is_empty() {
            return;
        }
        if self.reads_ahead() {
            return self.receive_ahead(data, now, service);
        }
        // In a body, bytes count once there are enough of them (see
        // `Limits::min_progress_bytes`); elsewhere, and at a body's end, any.
        let in_body = match self.state {
            State::Idle => {
                self.state = State::head_from(now);
                false
            }
            // Only the empty line a client may send after a body (RFC 9112
            // §2.2) so far, which the idle timeout watched: the request now
            // begun has its header time from here, as if on an idle
            // connection.
            State::Head {
                ref mut started, ..
            } if is_stray_line_end(&self.input) => {
                *started = now;
                false
            }
            State::Body(_) | State::Stream { .. } => true,
            _ => false,
        };
        // (Between bodies the time alone, off the path of nearly every
        // request: a count left from output is cleared at the next restart,
        // and at worst lets one trickle count once more.)
        let dispatched = match in_body {
            true => {
                self.moved(data.len(), now);
                self.next_id
            }
            false => {
                self.last_progress = now;
                0
            }
        };
        if self.input.extend_from_slice(data).is_err() {
            return self.out_of_memory(now, service);
        }
        self.process(now, service);
        // A body ended (a whole one is dispatched at its end; a streamed
        // one's end restarts the clock where it is read).
        if in_body
            && (self.next_id != dispatched
                || !matches!(self.state, State::Body(_) | State::Stream { .. }))
        {
            self.restart_clock(now);
        }
    }

    /// Bytes read ahead while the next request waits for room (see
    /// [`wants_read`](Self::wants_read)): kept, and no progress.
    #[cold]
    #[inline(never)]
    fn receive_ahead<S: Dispatch>(&mut self, data: &[u8], now: Instant, service: &mut S) {
        if let State::Idle = self.state {
            self.state = State::head_from(now);
        }
        if self.input.extend_from_slice(data).is_err() {
            return self.out_of_memory(now, service);
        }
        self.process(now, service);
    }

    /// No memory free to hold what the client sent: its request is refused
    /// (503) and the connection closes, where the allocation's failure
    /// would have aborted the process and every connection with it. A
    /// streamed body breaks off as any does (its service told, its answer
    /// a 503 if not given yet, else cut); its request was dispatched, so
    /// no refusal of its own follows.
    #[cold]
    #[inline(never)]
    fn out_of_memory<S: Dispatch>(&mut self, now: Instant, service: &mut S) {
        match self.state {
            State::Stream { id, .. } => {
                service.body_end(id, Err(BodyError::NoMemory));
                let refusal = Refusal(StatusCode::SERVICE_UNAVAILABLE, NO_MEMORY);
                self.fail_stream(id, refusal, now);
            }
            _ => self.refuse(StatusCode::SERVICE_UNAVAILABLE, NO_MEMORY, now),
        }
    }

    /// The idle clock starts over: progress.
    #[inline]
    fn restart_clock(&mut self, now: Instant) {
        self.moved = 0;
        self.last_progress = now;
    }

    /// `n` bytes moved, in or out: progress once enough have since the
    /// clock last started over.
    #[inline]
    fn moved(&mut self, n: usize, now: Instant) {
        self.moved = self.moved.saturating_add(n);
        if self.moved >= self.limits.min_progress_bytes {
            self.restart_clock(now);
        }
    }

    /// Whether a request body is coming, and read: the client's sending is
    /// then its progress, not the output it is sent (what the kernel takes
    /// says nothing of the client; a service echoing a trickled body would
    /// otherwise restart the clock with each byte).
    #[inline]
    fn body_coming(&self) -> bool {
        match self.state {
            // Not one that waits for its 100, owed behind a response that
            // may stream for long: what its client reads of that is its
            // progress.
            State::Body(ref head) => {
                self.has_room() && !(head.expect_continue && self.input.len() == head.len)
            }
            State::Stream {
                id, continue_owed, ..
            } => !continue_owed && self.body_paused != Some(id),
            _ => false,
        }
    }

    /// Tells the connection that the peer closed its sending side: complete
    /// requests answered now still get their answers, then the connection
    /// closes. Requests still waiting for a deferred response are abandoned
    /// ([`take_abandoned`](Self::take_abandoned)), as nginx does when a
    /// client closes before its upstream answered: a client that stops
    /// sending has almost always gone, and the work for it can stop.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// conn.receive_eof(now, &mut ok);
    /// // The answer still goes out; then the connection is done.
    /// let n = conn.pending_output().len();
    /// conn.consume_output(n, now);
    /// assert!(conn.is_finished());
    /// ```
    pub fn receive_eof<S: Dispatch>(&mut self, now: Instant, service: &mut S) {
        self.peer_closed = true;
        self.process(now, service);
        if let Some(front) = self.waiting.front() {
            // A streamed response whose head went out was ready: it was
            // under way.
            let under_way = front.stream.as_ref().is_some_and(|s| s.at_front);
            self.incident = Some(Incident {
                status: None,
                reason: match under_way {
                    true => "client closed the connection during its response",
                    false => "client closed the connection before its response was ready",
                },
            });
            self.close_after_response();
        }
    }

    /// Answers requests already buffered; call it after output was consumed, as
    /// backpressure may have paused them.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let now = Instant::now();
    /// let limits = Limits { max_pending_output_bytes: 1, ..Limits::default() };
    /// let mut conn = Handler::new(limits, now);
    /// conn.receive(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// let mut sent = Vec::new();
    /// while conn.wants_write() {
    ///     sent.extend_from_slice(conn.pending_output());
    ///     conn.consume_output(conn.pending_output().len(), now);
    ///     conn.process(now, &mut ok); // the second request, held back by the full output
    /// }
    /// assert_eq!(sent.windows(8).filter(|w| w == b"HTTP/1.1").count(), 2);
    /// ```
    #[inline]
    pub fn process<S: Dispatch>(&mut self, now: Instant, service: &mut S) {
        // Between requests with nothing buffered (after nearly every
        // response): nothing to do, and no call.
        if let (State::Idle, false) = (&self.state, self.peer_closed) {
            return;
        }
        self.process_buffered(now, service);
    }

    fn process_buffered<S: Dispatch>(&mut self, now: Instant, service: &mut S) {
        loop {
            // The states of nearly every request first, each as the full
            // match in `step_other` takes it; the rest there, out of line.
            // (Every way out of a loop costs WasmEdge's interpreter an
            // instruction per pass: the full match here had 26.)
            let step = match self.state {
                State::Idle if !self.peer_closed => return,
                State::Head { held: false, .. } if self.has_room() => {
                    match self.parse_head(service.handles_connect()) {
                        Ok(true) if !self.decide_body(service, now) => return,
                        step => step,
                    }
                }
                State::Body(_) if self.has_room() => self.read_body(),
                _ => match self.step_other(now, service) {
                    Flow::Return => return,
                    Flow::Continue => continue,
                    Flow::Step(step) => step,
                },
            };
            match step {
                Ok(true) => {
                    if let State::Body(_) = self.state {
                        if self.body_is_complete() {
                            self.dispatch(service, now);
                        }
                    }
                }
                Ok(false) => {
                    if self.peer_closed && self.no_request_begun() {
                        // Stray line ends after the last body: closed
                        // between requests, as from `Idle`.
                        self.input = InputBuffer::default();
                        self.state = State::Closing;
                    } else if self.peer_closed {
                        self.close_quietly("client closed the connection mid-request");
                    }
                    return;
                }
                Err(Refusal(status, reason)) => {
                    self.refuse(status, reason, now);
                    return;
                }
            }
        }
    }

    /// One step of [`process_buffered`](Self::process_buffered) in any
    /// state.
    #[inline(never)]
    fn step_other<S: Dispatch>(&mut self, now: Instant, service: &mut S) -> Flow {
        let step = match self.state {
            State::Closing | State::Closed | State::Upgraded => return Flow::Return,
            // Between requests (after nearly every response) the room
            // check, which is not free, waits for the next one.
            State::Idle => {
                if self.peer_closed && self.has_room() {
                    self.state = State::Closing;
                }
                return Flow::Return;
            }
            // No room stops new requests. A streamed body belongs to a
            // request already taken (it counts among the waiting): it
            // is read on, held back only by its sink (`pause_body`), as
            // `wants_read` says; else its bytes would pile up unread.
            State::Switching { .. } | State::Head { .. } | State::Body(_) if !self.has_room() => {
                if let State::Head { held, .. } = &mut self.state {
                    *held = true;
                }
                return Flow::Return;
            }
            // Its time starts over once it may be read.
            State::Head {
                ref mut started,
                ref mut held,
                ..
            } if *held => {
                (*started, *held) = (now, false);
                return Flow::Continue;
            }
            State::Switching {
                id,
                keep_alive,
                switched,
            } => {
                // Answered without a switch: HTTP goes on (not while
                // draining: no request is read after a drain).
                if switched || self.waiting.iter().any(|w| w.id == id && w.is_pending()) {
                    return Flow::Return;
                }
                self.next_request(keep_alive && !self.draining, 0, now);
                return Flow::Continue;
            }
            State::Head { .. } => match self.parse_head(service.handles_connect()) {
                Ok(true) if !self.decide_body(service, now) => return Flow::Return,
                step => step,
            },
            State::Body(_) => self.read_body(),
            State::Stream { id, .. } => match self.read_stream(service, now) {
                Ok(more) => Ok(more),
                Err(error) => {
                    service.body_end(id, Err(error));
                    let refusal = match error {
                        BodyError::Chunked(e) => chunked_refusal(e),
                        // Only once the response was given whole.
                        BodyError::Unread => Refusal(
                            StatusCode::CONTENT_TOO_LARGE,
                            "request body past max_body_after_response after its response",
                        ),
                        _ => Refusal(StatusCode::BAD_REQUEST, "request body broken off"),
                    };
                    self.fail_stream(id, refusal, now);
                    return Flow::Return;
                }
            },
        };
        Flow::Step(step)
    }

    /// Whether the connection is done: no more requests and nothing left to
    /// send. The caller then shuts the socket down.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", now, &mut ok);
    /// assert!(!conn.is_finished()); // its answer is still to send
    /// conn.consume_output(conn.pending_output().len(), now);
    /// assert!(conn.is_finished());
    /// ```
    #[inline]
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Closed => true,
            State::Closing => self.output.is_empty() && self.waiting.is_empty(),
            _ => false,
        }
    }

    /// Stops taking requests, as a server shutting down gracefully does: an
    /// idle connection finishes now, or once the responses it owes have
    /// gone (the last of them says `Connection: close`; none after it is
    /// read); a request already begun is still read and answered, with
    /// `Connection: close`, and the connection finishes after it.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK)
    /// }
    /// let now = Instant::now();
    /// let mut idle = Handler::new(Limits::default(), now);
    /// idle.drain();
    /// assert!(idle.is_finished());
    ///
    /// let mut busy = Handler::new(Limits::default(), now);
    /// busy.receive(b"GET / HTTP/1.1\r\nHo", now, &mut ok);
    /// busy.drain();
    /// busy.receive(b"st: x\r\n\r\n", now, &mut ok);
    /// assert!(busy.pending_output().starts_with(b"HTTP/1.1 200 OK\r\n"));
    /// assert!(busy.pending_output().ends_with(b"Connection: close\r\n\r\n"));
    /// ```
    pub fn drain(&mut self) {
        self.draining = true;
        self.finish_if_drained();
    }

    /// While draining: a connection with no request begun reads no more,
    /// and finishes once it owes no response (a response that went out
    /// before the drain said keep-alive, but no request follows it).
    fn finish_if_drained(&mut self) {
        // With responses still owed, no request is read after them: they
        // go out, then the connection finishes.
        if self.draining && self.no_request_begun() {
            self.input = InputBuffer::default();
            self.state = State::Closing;
        }
    }

    /// No request begun since the last one (or since the connection opened).
    fn no_request_begun(&self) -> bool {
        match self.state {
            State::Idle => self.input.is_empty(),
            // Only line ends after the last body: no request begun.
            State::Head { .. } => is_stray_line_end(&self.input),
            _ => false,
        }
    }

    /// Whether the connection is between requests with nothing owed either
    /// way: no request begun, none waiting for its response, no output
    /// unsent. Closing it then loses nothing (a client keeps a connection
    /// alive knowing that the server may close it, RFC 9112 §9.3), as a
    /// server short of descriptors does with its quietest connections.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK)
    /// }
    /// let now = Instant::now();
    /// let mut conn = Handler::new(Limits::default(), now);
    /// assert!(conn.is_between_requests());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// assert!(!conn.is_between_requests(), "its response is not out yet");
    /// let sent = conn.pending_output().len();
    /// conn.consume_output(sent, now);
    /// assert!(conn.is_between_requests());
    /// ```
    pub fn is_between_requests(&self) -> bool {
        self.no_request_begun() && self.output.is_empty() && self.waiting.is_empty()
    }

    /// Whether a 101 response switched the connection to another protocol
    /// (a WebSocket): then [`take_upgraded`](Self::take_upgraded) hands over
    /// its bytes.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// assert!(!conn.is_upgraded()); // a 200 switches nothing
    /// ```
    pub fn is_upgraded(&self) -> bool {
        matches!(self.state, State::Upgraded)
    }

    /// After an upgrade: the output not yet sent (the 101 response) and the
    /// input that followed the request (the new protocol's first bytes), in
    /// that order. The handler is closed afterwards.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn switch<'a>(_: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::SWITCHING_PROTOCOLS).header("Upgrade", "demo")
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// let offer = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: demo\r\n\r\nhello";
    /// conn.receive(offer, Instant::now(), &mut switch);
    /// assert!(conn.is_upgraded());
    /// let (output, input) = conn.take_upgraded();
    /// assert!(output.starts_with(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: demo\r\n"));
    /// assert_eq!(input, b"hello");
    /// ```
    pub fn take_upgraded(&mut self) -> (Vec<u8>, Vec<u8>) {
        let mut output = Vec::new();
        while !self.output.is_empty() {
            let pending = self.output.pending();
            output.extend_from_slice(pending);
            let n = pending.len();
            self.output.consume(n);
        }
        let input = self.input.to_vec();
        self.input = InputBuffer::default();
        self.state = State::Closed;
        (output, input)
    }

    /// When the idle clock last started over: bytes moved in or out (see
    /// [`Limits::min_progress_bytes`]).
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// use std::time::Duration;
    /// let start = Instant::now();
    /// let mut conn = Handler::new(Limits::default(), start);
    /// let later = start + Duration::from_secs(1);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", later, &mut ok);
    /// assert_eq!(conn.last_progress(), later);
    /// ```
    pub fn last_progress(&self) -> Instant {
        self.last_progress
    }

    /// Bytes of memory the connection's buffers hold (0 after
    /// [`release_buffers`](Self::release_buffers) on an idle connection).
    /// Streamed pieces count as the bytes they still have to send, not as
    /// the buffers they share (a piece may keep a larger one alive).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits};
    /// use std::time::Instant;
    /// // A connection that has received nothing holds no buffer.
    /// assert_eq!(Handler::new(Limits::default(), Instant::now()).buffered_capacity(), 0);
    /// ```
    pub fn buffered_capacity(&self) -> usize {
        self.input.capacity()
            + self.output.capacity()
            + self.headers.capacity() * std::mem::size_of::<HeaderSpan>()
    }

    /// Bytes of output still to send, all of it (what
    /// [`pending_output_parts`](Self::pending_output_parts) shows is a send's
    /// worth): for edgepoll-fuzz, which bounds the buffers' memory by it.
    /// Not an API: only with the `fuzzing` feature.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn fuzzing_output_len(&self) -> usize {
        self.output.len()
    }

    /// Takes the latest event worth logging, if any.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", now, &mut ok);
    /// let incident = conn.take_incident().unwrap();
    /// assert_eq!(incident.status, Some(StatusCode::BAD_REQUEST));
    /// eprintln!("{incident}");
    /// ```
    #[inline]
    pub fn take_incident(&mut self) -> Option<Incident> {
        // Looked at after every step, and nearly always empty: a read, not
        // a write of `None`.
        match self.incident {
            None => None,
            Some(_) => self.incident.take(),
        }
    }

    fn close_quietly(&mut self, reason: &'static str) {
        self.incident = Some(Incident {
            status: None,
            reason,
        });
        // A streamed body it leaves (one paused when the client closed) is
        // told of as broken off, as any (`take_broken_body`).
        if let State::Stream { id, .. } = self.state {
            self.broken_body.get_or_insert((id, BodyError::Truncated));
        }
        self.input = InputBuffer::default();
        self.state = State::Closing;
    }

    fn refuse(&mut self, status: StatusCode, reason: &'static str, now: Instant) {
        let head_only = match &self.state {
            // A head refused before it was whole (too large, too slow, a
            // bad field) named HEAD if its request line is complete.
            State::Head {
                head_method,
                parser,
                ..
            } => {
                *head_method
                    || parser.request_line().is_some_and(|line| {
                        self.input
                            .get(line.method.clone())
                            .is_some_and(|method| scan::same_bytes(method, b"HEAD"))
                    })
            }
            State::Body(head) => head.is_head_method,
            _ => false,
        };
        // Freed before the answer is made: memory may be short. Where not
        // even the answer's few hundred bytes are free, the connection
        // closes unanswered (an allocation failing aborts the process).
        self.input = InputBuffer::default();
        self.state = State::Closing;
        self.restart_clock(now);
        if !headroom::is_free(ANSWER_ROOM) {
            self.incident = Some(Incident {
                status: None,
                reason: NO_MEMORY_TO_ANSWER,
            });
            return;
        }
        self.incident = Some(Incident {
            status: Some(status),
            reason,
        });
        let response = plain_answer(status, reason);
        if self.waiting.is_empty() {
            response.encode(self.output.buffer(), KeepAlive::No, head_only);
        } else {
            // After the responses the service still owes.
            let mut encoded = Vec::new();
            response.encode(&mut encoded, KeepAlive::No, head_only);
            let id = take_id(&mut self.next_id);
            self.waiting.push_back(Waiting {
                id,
                ready: Some((encoded, false)),
                stream: None,
                keep_alive: false,
                version: Version::Http11,
                head_only,
                deadline: now,
                method: MethodKind::Safe,
            });
        }
    }
}

/// The handler's own answer (a refusal, a 504): its reason as a line of
/// text, which is also what the log's incident says.
fn plain_answer(status: StatusCode, reason: &str) -> Response<'static> {
    let mut body = String::with_capacity(reason.len() + 1);
    body.push_str(reason);
    body.push('\n');
    Response::new(status)
        .header("Content-Type", "text/plain")
        .body(body)
}

/// A line end or two after a request's body, as some clients send (RFC
/// 9112 §2.2 asks a server to ignore at least one empty line before a
/// request line): taken for the start of the next request, they set its
/// header timeout running on an idle connection, which then got a 408 it
/// had not asked for. They stay in the input (the parser skips them, and
/// so reads a request the same however its bytes are split), but only
/// the idle timeout runs, and ends the connection quietly. Few: more are
/// the start of a request that has to arrive in time.
#[inline(always)]
fn is_stray_line_end(bytes: &[u8]) -> bool {
    // The size test inline (nearly every read is longer); the rest apart.
    bytes.len() <= 4 && only_line_ends(bytes)
}

/// One or two CRLFs, or so far only the start of them (a CR and its LF
/// may come in separate reads).
#[cold]
#[inline(never)]
fn only_line_ends(bytes: &[u8]) -> bool {
    matches!(bytes, b"\r" | b"\r\n" | b"\r\n\r" | b"\r\n\r\n")
}

/// The length a head declares for its body; `None` for chunked.
fn declared_length(framing: &Framing) -> Option<u64> {
    match framing {
        Framing::Length(n) => Some(*n as u64),
        Framing::Oversized(n) => Some(*n),
        Framing::Chunked(_) => None,
    }
}
