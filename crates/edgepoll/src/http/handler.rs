//! The per-connection HTTP/1.1 server state machine: bytes in, bytes out, no I/O.

use super::body::{BodyError, Incoming, Outgoing};
use super::chunked::{ChunkedDecoder, ChunkedError};
use super::framing::{BodyFraming, FieldSummary, FramingError};
use super::head::{HeadError, HeadParser};
use super::input::InputBuffer;
use super::output::{OutputBuffer, KEEP_CAPACITY};
use super::request::{target_form, HeaderSpan, TargetForm};
use super::response::KeepAlive;
use super::scan;
use super::{Dispatch, Limits, Reply, Request, RequestId, Response, StatusCode, Version};
use crate::timer::bounded;
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

/// The most header fields any configuration may allow; [`Limits::max_headers`]
/// is capped here so the parser's scratch array can live on the stack.
pub const MAX_HEADERS: usize = 256;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Methods longer than this are not ones any service implements: 501
/// (RFC 9112 §3 advises it), whatever the service would have said.
const MAX_METHOD_BYTES: usize = 64;

/// The most buffer reserved ahead for a body on the strength of its
/// `Content-Length`; beyond it the buffer grows as bytes arrive.
const MAX_BODY_RESERVE: usize = 256 * 1024;

/// How many bytes of chunked framing a buffered body may hold before they
/// are cut out (moving the bytes after them costs less than keeping them
/// only when there are this many).
const FRAMING_KEPT_UP_TO: usize = 4096;

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
    /// Deferred requests given up on (timed out, or behind a close), not yet
    /// reported by [`Handler::take_abandoned`].
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
                let pieces = stream.pieces.iter().map(Bytes::len);
                pieces.fold(stream.head.len(), usize::saturating_add)
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
    pieces: Vec<Bytes>,
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
        }
    }

    /// Tells the connection where it runs, so that requests can report it
    /// ([`Request::peer_addr`], [`Request::local_addr`]). The event loop calls
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
        if let State::Upgraded = self.state {
            self.input.extend_from_slice(data);
            return;
        }
        if let State::Switching { .. } = self.state {
            // Kept for whichever protocol follows; no progress of the
            // client's (a byte a minute must not hold a connection whose
            // client reads nothing), and nothing to process until answered.
            self.input.extend_from_slice(data);
            return;
        }
        if data.is_empty() {
            return;
        }
        // In a body, bytes count once there are enough of them (see
        // `Limits::min_progress_bytes`); elsewhere, and at a body's end, any.
        let in_body = match self.state {
            State::Idle => {
                self.state = State::Head {
                    started: now,
                    parser: HeadParser::default(),
                    held: false,
                    head_method: false,
                };
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
        self.input.extend_from_slice(data);
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

    /// Bytes waiting to be sent, oldest first: all of them, or a first part
    /// (a large body is sent from the buffer it was received in, apart from
    /// its head). Whatever is reported sent, the next call returns what follows.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 200 OK\r\n"));
    /// ```
    #[inline]
    pub fn pending_output(&self) -> &[u8] {
        self.output.pending()
    }

    /// The first one or two parts of the pending output (the second is empty
    /// unless a large body waits behind its head), for one vectored send:
    /// a head sent apart from its body would wait on Nagle's algorithm.
    /// Report what was sent with [`consume_output`](Self::consume_output).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn echo<'a>(req: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(req.body())
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// let body = vec![b'x'; 100_000];
    /// conn.receive(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", Instant::now(), &mut echo);
    /// conn.receive(&body, Instant::now(), &mut echo);
    /// let [head, rest] = conn.pending_output_parts();
    /// assert!(head.ends_with(b"Content-Length: 100000\r\n\r\n"));
    /// assert_eq!(rest, &body[..]);
    /// ```
    #[inline]
    pub fn pending_output_parts(&self) -> [&[u8]; 2] {
        self.output.pending_parts()
    }

    /// The service gives output (a response, a piece of one): the client's
    /// time to read starts now if it had nothing to read, and goes on
    /// otherwise. Progress is bytes moved, not bytes given: a client that
    /// reads nothing is dropped at the idle timeout however often the
    /// service writes meanwhile (each piece had put it off, and the output
    /// grew without end).
    #[inline]
    fn service_output(&mut self, now: Instant) {
        if self.output.is_empty() && !self.body_coming() {
            self.restart_clock(now);
        }
    }

    /// Reports that the first `n` bytes of [`pending_output`](Self::pending_output)
    /// were sent.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// conn.consume_output(9, now); // a short write took "HTTP/1.1 "
    /// assert!(conn.pending_output().starts_with(b"200 OK\r\n"));
    /// ```
    #[inline]
    pub fn consume_output(&mut self, n: usize, now: Instant) {
        let all_sent = self.output.consume(n);
        // All sent (nearly every write) is progress; taken in driblets (the
        // client reading that little), output counts once enough has gone.
        if n > 0 {
            match all_sent && matches!(self.state, State::Idle) {
                true => self.restart_clock(now),
                false => self.moved_out(n, all_sent, now),
            }
        }
    }

    /// `n` bytes of output sent, not all of it between requests (out of
    /// line: nearly every write sends all, the next request yet to come).
    #[cold]
    #[inline(never)]
    fn moved_out(&mut self, n: usize, all_sent: bool, now: Instant) {
        // While a body comes, its bytes alone count.
        if self.body_coming() {
            return;
        }
        match all_sent {
            true => self.restart_clock(now),
            false => self.moved(n, now),
        }
    }

    /// Whether the connection wants more input now (false once switched to
    /// another protocol, while too much output waits (backpressure), and
    /// while closing with nothing owed; closing with responses still to
    /// give, input is read and dropped, and while an offer to switch waits
    /// for its answer a head's worth is read and kept, so that a client
    /// that leaves is noticed).
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// assert!(conn.wants_read());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", now, &mut ok);
    /// assert!(!conn.wants_read()); // its last request is answered
    /// ```
    #[inline]
    pub fn wants_read(&self) -> bool {
        match self.state {
            // Responses still to give (a deferred one, a stream): read, and
            // dropped, only so that a client that leaves is noticed and its
            // requests abandoned, not at their respond timeout or never.
            State::Closing => !self.waiting.is_empty(),
            // Switched: what follows is the new protocol's, read once it
            // has the connection (its limits and backpressure, not ours).
            State::Closed | State::Upgraded => false,
            // Waiting to hear whether it switches: read (and kept, for the
            // new protocol or the next request) up to a head's size, so
            // that a client that leaves is noticed and its request
            // abandoned, not at its respond timeout.
            State::Switching { .. } => self.input.len() < self.limits.max_head_bytes,
            State::Stream { id, .. } => self.body_paused != Some(id),
            _ => self.has_room(),
        }
    }

    /// Room for another response: not too much output queued, not too many
    /// requests waiting for theirs.
    #[inline]
    fn has_room(&self) -> bool {
        let output_fits = self.output.len() <= self.limits.max_pending_output_bytes;
        match self.waiting.len() {
            0 => output_fits,
            n => output_fits && n < self.limits.max_waiting && self.room_behind_others(),
        }
    }

    /// With requests waiting for their responses: whether what is queued
    /// fits, and the next request may be taken beside them. Out of line,
    /// so that `has_room` stays small enough to inline where it is asked
    /// on every request.
    #[inline(never)]
    fn room_behind_others(&self) -> bool {
        self.queued_fit() && self.order_allows()
    }

    /// Whether the next request may be taken while others wait for their
    /// deferred responses: requests are processed side by side only when
    /// all are safe (RFC 9112 §9.3.2), so that a GET after a PUT cannot
    /// overtake it (a proxy would send them over two connections). Not
    /// after an unsafe one still unanswered, nor an unsafe one (its method
    /// read ahead in the buffer) while those before it are unanswered.
    /// Held back, a request is not read further: a client that pipelines
    /// after an unsafe method and then leaves is noticed at the respond
    /// timeout. Nor after a response that closes the connection.
    fn order_allows(&self) -> bool {
        // While a body is read the input begins with its own request's
        // head, let in already: the check below finds the same answer.
        // Nothing read ahead (nearly always, asked while a deferred request
        // waits): reading on is allowed, and what comes is checked before
        // it is taken. The client's leaving is noticed meanwhile.
        if self.input.is_empty() {
            return true;
        }
        // After a response that closes the connection nothing is taken: it
        // would be processed for nothing (RFC 9112 §9.6), a proxy's sent
        // upstream and dropped.
        if self.waiting.iter().any(Waiting::closes) {
            return false;
        }
        let mut pending = self.waiting.iter().filter(|w| w.is_pending()).peekable();
        if pending.peek().is_none() {
            return true;
        }
        if pending.any(|w| w.method != MethodKind::Safe) {
            return false;
        }
        // Empty lines may come before a request line (RFC 9112 §2.2). A few
        // are passed over; a longer run waits until the requests before it
        // are answered, for this is asked again on every read and a scan of
        // the whole run each time would cost quadratic time.
        let input: &[u8] = &self.input;
        let start = input
            .iter()
            .take(MAX_LINE_END_BYTES_AHEAD + 1)
            .position(|&b| b != b'\r' && b != b'\n');
        let rest = match start {
            Some(at) => &input[at..],
            None => return input.len() <= MAX_LINE_END_BYTES_AHEAD,
        };
        match rest
            .iter()
            .take(MAX_METHOD_BYTES + 1)
            .position(|&b| b == b' ')
        {
            Some(end) => is_safe_method(&rest[..end]),
            // Not all there yet (read on), or too long (refused).
            None => true,
        }
    }

    /// Whether the responses queued behind a deferred one, with the output,
    /// are within the output limit: they are as much this connection's
    /// memory, waiting to be sent.
    fn queued_fit(&self) -> bool {
        let queued = self.waiting.iter().map(Waiting::queued_len);
        let total = queued.fold(self.output.len(), usize::saturating_add);
        total <= self.limits.max_pending_output_bytes
    }

    /// Whether output is waiting to be sent.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// assert!(!conn.wants_write());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// assert!(conn.wants_write());
    /// ```
    #[inline]
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
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

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits};
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let limits = Limits { idle_timeout: Duration::from_secs(5), ..Limits::default() };
    /// let conn = Handler::new(limits, now);
    /// // A new connection has its idle timeout to send a request in.
    /// assert!(conn.deadline().is_some_and(|due| due > now && due <= now + Duration::from_secs(5)));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        let own = match self.state {
            State::Closed | State::Upgraded => None,
            // A head held back behind responses is not late: the client's
            // reading of them (or the service's answering) is what counts.
            // Held back, its timer starts over only when it is read again
            // (`process`): until then the client's reading is what counts.
            State::Head {
                started,
                held: false,
                ..
            } if self.has_room() && !is_stray_line_end(&self.input) => {
                Some(started + self.limits.header_timeout)
            }
            // Waiting on the service is not idleness, nor is a body held
            // back by backpressure.
            State::Idle | State::Closing | State::Switching { .. } | State::Head { .. }
                if self.is_waiting_quietly() =>
            {
                None
            }
            // A body not read for want of room (responses queued behind a
            // deferred one): the service is late, not the client.
            State::Body(_) if self.is_waiting_quietly() && !self.has_room() => None,
            // Its body waits for the 100 owed it (sent once the responses
            // before it are out, deferred or streaming, and its client has
            // read all so far): the service is late, not the client.
            State::Body(ref head)
                if head.expect_continue
                    && self.input.len() == head.len
                    && self.output.is_empty()
                    && self.waiting.iter().any(|w| w.is_owed()) =>
            {
                None
            }
            // Held back while its sink drains (but a client that does not
            // read what this connection sends it is not waited for).
            State::Stream { id, .. } if self.body_paused == Some(id) && self.output.is_empty() => {
                None
            }
            // Its body waits for the 100 owed it behind responses owed
            // (deferred or streaming), all read so far: the service is
            // late, not the client.
            State::Stream {
                id,
                continue_owed: true,
                ..
            } if self.output.is_empty()
                && self.waiting.iter().any(|w| w.id != id && w.is_owed()) =>
            {
                None
            }
            _ => Some(self.last_progress + self.limits.idle_timeout),
        };
        // (Whose body is awaited is asked only of a pending response: a
        // server answering at once never has one.)
        let waiting = self
            .waiting
            .iter()
            .filter(|w| w.is_pending() && Some(w.id) != self.body_awaited())
            .map(|w| w.deadline)
            .min();
        match (own, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Between requests (or closing) with nothing to send but responses
    /// still to come from the service.
    fn is_waiting_quietly(&self) -> bool {
        !self.waiting.is_empty() && self.output.is_empty()
    }

    /// The request whose streamed body is still read from its client (not
    /// held back by its sink): no respond timeout runs for it until the
    /// body ends, since its service may answer only then; a client that
    /// stalls its body meets the idle timeout (408), not a 504 for a
    /// service that was never late.
    fn body_awaited(&self) -> Option<RequestId> {
        match self.state {
            State::Stream { id, .. } if self.body_paused != Some(id) => Some(id),
            _ => None,
        }
    }

    /// Acts on a passed deadline: 408 for a request that stalled, a close for an
    /// idle connection or a peer that does not read. Does nothing before the
    /// deadline.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHo", now, &mut ok); // and then nothing
    /// let due = conn.deadline().unwrap();
    /// conn.handle_timeout(due);
    /// assert!(conn.pending_output().starts_with(b"HTTP/1.1 408 "));
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        if self
            .waiting
            .iter()
            .any(|w| w.is_pending() && now >= w.deadline && Some(w.id) != self.body_awaited())
        {
            self.time_out_waiting(now);
            if self.deadline().is_none_or(|d| now < d) {
                return;
            }
        }
        match self.state {
            // Only a line end or two after the last body (see
            // `is_stray_line_end`): no request begun, so idle, not late.
            // (With output waiting, the client stopped reading: below.)
            State::Idle | State::Switching { .. } if self.output.is_empty() => self.close_idle(),
            State::Head { .. } if is_stray_line_end(&self.input) && self.output.is_empty() => {
                self.close_idle()
            }
            State::Head { held: false, .. }
                if self.has_room() && !is_stray_line_end(&self.input) =>
            {
                self.refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "request head not complete within the header timeout",
                    now,
                )
            }
            State::Body(_) => self.refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request body stalled past the idle timeout",
                now,
            ),
            State::Stream { id, .. } => {
                self.broken_body = Some((id, BodyError::Stalled));
                self.fail_stream(
                    id,
                    Refusal(
                        StatusCode::REQUEST_TIMEOUT,
                        "request body stalled past the idle timeout",
                    ),
                    now,
                )
            }
            State::Upgraded => {}
            State::Idle
            | State::Switching { .. }
            | State::Head { .. }
            | State::Closing
            | State::Closed => {
                if !self.output.is_empty() {
                    self.incident = Some(Incident {
                        status: None,
                        reason: "peer stopped reading; connection dropped at the idle timeout",
                    });
                }
                self.state = State::Closed;
            }
        }
    }

    /// Frees the buffers a connection keeps between requests, if it is
    /// between requests with nothing left to send. A busy connection reuses
    /// them (no allocation per request); the event loop calls this once a
    /// connection has gone quiet, so an idle one costs almost nothing.
    ///
    /// ```
    /// # use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// # use std::time::Instant;
    /// # fn ok<'a>(_: &Request<'a>) -> Response<'a> {
    /// #     Response::new(StatusCode::OK).body("ok")
    /// # }
    /// let (now, mut conn) = (Instant::now(), Handler::new(Limits::default(), Instant::now()));
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut ok);
    /// conn.consume_output(conn.pending_output().len(), now);
    /// conn.release_buffers();
    /// assert_eq!(conn.buffered_capacity(), 0);
    /// ```
    pub fn release_buffers(&mut self) {
        if let State::Idle = self.state {
            if self.input.is_empty() {
                self.input = InputBuffer::default();
                self.headers = Vec::new();
            }
        }
        self.output.release();
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
        self.incident = Some(Incident {
            status: Some(status),
            reason,
        });
        let mut body = String::with_capacity(reason.len() + 1);
        body.push_str(reason);
        body.push('\n');
        let response = Response::new(status)
            .header("Content-Type", "text/plain")
            .body(body);
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
        self.input = InputBuffer::default();
        self.state = State::Closing;
        self.restart_clock(now);
    }

    /// Parses the head if it is complete; `Ok(true)` moves on to the body.
    fn parse_head(&mut self, allow_connect: bool) -> Result<bool, Refusal> {
        let State::Head { parser, .. } = &mut self.state else {
            return Ok(false);
        };
        // The parser sees no byte past the size limit, so whether a head is
        // refused for its size or for a fault does not depend on how its
        // bytes arrived.
        let limit = self.limits.max_head_bytes;
        let buf: &[u8] = &self.input;
        let view = &buf[..buf.len().min(limit)];
        let max_headers = self.limits.max_headers.min(MAX_HEADERS);
        let parsed = parser.parse(view, max_headers, &mut self.headers);
        let parsed = parsed.map_err(|e| match e {
            HeadError::TooManyFields => Refusal(
                StatusCode::HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ),
            HeadError::Version if names_other_http_version(buf) => Refusal(
                StatusCode::VERSION_NOT_SUPPORTED,
                "only HTTP/1 is supported",
            ),
            HeadError::Version | HeadError::RequestLine => {
                Refusal(StatusCode::BAD_REQUEST, "malformed request line")
            }
            // A line end at fault before the request line was whole
            // (after the version: `HTTP/1.10`) is that line's fault.
            HeadError::Field if parser.request_line().is_none() => {
                Refusal(StatusCode::BAD_REQUEST, "malformed request line")
            }
            HeadError::Field => Refusal(StatusCode::BAD_REQUEST, "malformed header field"),
        })?;
        let Some(head) = parsed else {
            if buf.len() > limit {
                // The request line alone over the limit: its target is what
                // is too long (RFC 9112 §3: 414).
                let line = view.iter().position(|&b| !matches!(b, b'\r' | b'\n'));
                if line.is_some_and(|at| !view[at..].contains(&b'\n')) {
                    return Err(Refusal(
                        StatusCode::URI_TOO_LONG,
                        "request line over the size limit",
                    ));
                }
                return Err(Refusal(
                    StatusCode::HEADER_FIELDS_TOO_LARGE,
                    "request head over the size limit",
                ));
            }
            return Ok(false);
        };
        let (line, head_len) = (head.line, head.len);
        let version = line.version;
        let method = &buf[line.method.clone()];
        let target = &buf[line.target.clone()];
        let is_head_method = scan::same_bytes(method, b"HEAD");
        if let State::Head { head_method, .. } = &mut self.state {
            *head_method = is_head_method;
        }
        if head.bare_lf {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "bare LF in request head (lines must end in CRLF)",
            ));
        }
        let is_connect = scan::same_bytes(method, b"CONNECT");
        if is_connect && !allow_connect {
            return Err(Refusal(
                StatusCode::NOT_IMPLEMENTED,
                "CONNECT is not supported: this server opens no tunnels",
            ));
        }
        if method.len() > MAX_METHOD_BYTES {
            return Err(Refusal(
                StatusCode::NOT_IMPLEMENTED,
                "method longer than any this server implements",
            ));
        }
        // Each method takes the target forms RFC 9112 §3.2 gives it.
        match (target_form(target), is_connect) {
            (TargetForm::Authority, false) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "a request target is a path from '/', an absolute URI or '*' (host:port is for CONNECT)",
                ))
            }
            (TargetForm::Origin | TargetForm::Absolute | TargetForm::Asterisk, true) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "CONNECT needs a host:port target",
                ))
            }
            // RFC 9112 §3.2.3: `uri-host ":" port`, both there.
            (TargetForm::Authority, true) if !super::framing::is_host_and_port(target) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "CONNECT needs a host:port target",
                ))
            }
            (TargetForm::Asterisk, false) if !scan::same_bytes(method, b"OPTIONS") => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "a * target is only for OPTIONS",
                ))
            }
            // RFC 9112 §3.2.1: a path and a query, no fragment, which a
            // client keeps to itself. Parsers differ on what `#` ends (the
            // `http` crate drops the rest, a proxy's client refuses it), so
            // a request holding one could be read two ways.
            (TargetForm::Origin, false) if line.hash_or_high && target.contains(&b'#') => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "a request target holds no fragment ('#')",
                ))
            }
            (TargetForm::Absolute, false) if !is_plain_absolute(target) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    match target.starts_with(b"*") {
                        true => "the '*' target is '*' alone",
                        false => "invalid absolute-form target",
                    },
                ))
            }
            _ => {}
        }

        let mut fields = FieldSummary::default();
        for header in &self.headers {
            fields
                .add(buf, header.name.clone(), header.value.clone())
                .map_err(framing_refusal)?;
        }
        if fields.invalid_host {
            return Err(Refusal(StatusCode::BAD_REQUEST, "invalid Host field"));
        }
        let framing = match fields.request_framing(version).map_err(framing_refusal)? {
            BodyFraming::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(
                self.limits.max_body_bytes as u64,
                self.limits.max_chunk_line_bytes,
                self.limits.max_head_bytes,
            ))),
            // Capped at half the address space, which no buffer holds, so
            // that a limit of usize::MAX cannot make `head + n` wrap.
            BodyFraming::Length(n)
                if n <= self.limits.max_body_bytes.min(usize::MAX / 2) as u64 =>
            {
                Framing::Length(n as usize)
            }
            BodyFraming::Length(n) => Framing::Oversized(n),
            BodyFraming::UntilClose => Framing::Oversized(u64::MAX),
        };
        // A CONNECT the service answers ends the connection: it never tunnels.
        let keep_alive = !is_connect && fields.keeps_alive(version);
        if version == Version::Http11 && fields.hosts != 1 {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "HTTP/1.1 request needs exactly one Host field",
            ));
        }
        if fields.hosts > 1 {
            return Err(Refusal(StatusCode::BAD_REQUEST, "more than one Host field"));
        }
        if fields.unknown_expectation {
            return Err(Refusal(
                StatusCode::EXPECTATION_FAILED,
                "only the 100-continue expectation is supported",
            ));
        }
        let has_body = !matches!(framing, Framing::Length(0));
        let offers_upgrade = !has_body && fields.offers_upgrade(version);
        // Answered once the responses before it are out (see
        // `answer_continue`).
        let expect_continue = fields.expect_continue
            && version == Version::Http11
            && has_body
            && self.input.len() == head_len;
        self.state = State::Body(Head {
            len: head_len,
            method: line.method,
            target: line.target,
            version,
            keep_alive,
            is_head_method,
            framing,
            raw_pos: head_len,
            decoded_end: head_len,
            expect_continue,
            offers_upgrade,
        });
        Ok(true)
    }

    /// With a head just parsed: streams the body if the service wants it
    /// so, refuses one over the size limit otherwise, and makes room for it.
    /// False when the request was refused.
    fn decide_body<S: Dispatch>(&mut self, service: &mut S, now: Instant) -> bool {
        let State::Body(head) = &mut self.state else {
            return true;
        };
        if matches!(head.framing, Framing::Length(0)) {
            return true;
        }
        let limits = &self.limits;
        // A length past what a u64 counts reads as u64::MAX: no such body
        // will ever be whole, so it is refused whatever the stream limit.
        let streamable = S::STREAMS
            && declared_length(&head.framing).is_none_or(|n| {
                n > limits.stream_above && n <= limits.max_stream_bytes && n != u64::MAX
            });
        if streamable {
            let request = Request {
                head: &self.input[..head.len],
                method: &head.method,
                target: &head.target,
                version: head.version,
                headers: &self.headers,
                body: &[],
                peer: &self.peer,
                local: &self.local,
                length: declared_length(&head.framing),
                streamed: false,
                offers_upgrade: false,
            };
            if service.streams(&request) {
                // Its 100 waits for the service's word: a final answer at
                // once (a 401, a 413) asks for no body.
                self.dispatch_with(service, now, true);
                return true;
            }
        }
        let State::Body(head) = &mut self.state else {
            return true;
        };
        if let Framing::Oversized(_) = head.framing {
            self.refuse(
                StatusCode::CONTENT_TOO_LARGE,
                "request body over the size limit",
                now,
            );
            return false;
        }
        if let Framing::Length(n) = head.framing {
            // Room for the body, but only up to what a client must actually
            // send: a declared length alone must not make the server allocate.
            // At most as much again as it sent, so that a thousand heads
            // declaring large bodies cost a thousand heads' worth, not 256 KiB
            // each.
            let missing = n.saturating_sub(self.input.len() - head.len);
            // Most small bodies arrive with their head: nothing to make room for.
            if missing > 0 {
                let earned = self.input.len();
                self.input
                    .reserve(missing.min(MAX_BODY_RESERVE).min(earned));
                // Growth beyond that stops at the request's end, not at the next
                // power of two: an 8 MiB body takes 8 MiB, not 16.
                self.input.grow_up_to(head.len.saturating_add(n));
            }
        }
        if head.expect_continue {
            self.answer_continue();
        }
        true
    }

    /// Answers `Expect: 100-continue` now that the body is wanted, if no
    /// response before it is owed: an interim response belongs to the
    /// oldest request still unanswered. Else it waits for them to go out
    /// (`flush_ready`), unless the body comes first.
    fn answer_continue(&mut self) {
        if !self.waiting.is_empty() {
            return;
        }
        if let State::Body(head) = &mut self.state {
            if std::mem::take(&mut head.expect_continue) {
                // Ask for the body now instead of letting the client wait for it.
                self.output.buffer().extend_from_slice(CONTINUE);
            }
        }
    }

    /// Answers the `Expect: 100-continue` of the streamed request `front`,
    /// now at the front of the queue and still unanswered, if its body has
    /// not begun.
    fn answer_stream_continue(&mut self, front: RequestId) {
        if let State::Stream {
            id,
            continue_owed: owed @ true,
            ..
        } = &mut self.state
        {
            if *id == front && self.input.is_empty() {
                *owed = false;
                self.output.buffer().extend_from_slice(CONTINUE);
            }
        }
    }

    /// Hands the service the body pieces that arrived; `Ok(true)` when the
    /// body is complete (the next request may follow).
    fn read_stream<S: Dispatch>(
        &mut self,
        service: &mut S,
        now: Instant,
    ) -> Result<bool, BodyError> {
        let State::Stream {
            id,
            incoming,
            keep_alive,
            continue_owed,
        } = &mut self.state
        else {
            return Ok(false);
        };
        if !self.input.is_empty() {
            // The client sent its body without waiting for the 100.
            *continue_owed = false;
        }
        let (id, keep_alive) = (*id, *keep_alive);
        let paused = self.body_paused == Some(id);
        if paused || self.input.is_empty() {
            if self.peer_closed && !paused {
                incoming.finish()?;
            }
            return Ok(false);
        }
        let decoded = incoming.decode(&mut self.input)?;
        if !decoded.data.is_empty() {
            service.body(id, &self.input[decoded.data.clone()]);
        }
        self.input.consume(decoded.consumed);
        if !decoded.done && !self.waiting.iter().any(|w| w.id == id && w.is_owed()) {
            // Answered whole: the rest is read only to keep the connection,
            // and only so much of it (a client may send gigabytes after a
            // 413 it does not read).
            self.after_response += decoded.consumed as u64;
            if self.after_response > self.limits.max_body_after_response {
                return Err(BodyError::Unread);
            }
        }
        if decoded.consumed > 0 {
            // The respond timeout counts from the body's last progress (see
            // `body_awaited`): from its end, or from where its sink stopped
            // taking it (paused), which it still meets.
            let respond_by = now + self.limits.respond_timeout;
            if let Some(slot) = self
                .waiting
                .iter_mut()
                .find(|w| w.id == id && w.is_pending())
            {
                slot.deadline = slot.deadline.max(respond_by);
            }
        }
        if !decoded.done {
            return Ok(false);
        }
        service.body_end(id, Ok(()));
        // A body's end is progress, however few its last bytes.
        self.restart_clock(now);
        // Draining, no request is read after it.
        self.next_request(keep_alive && !self.draining, 0, now);
        Ok(true)
    }

    /// A streamed request body broke off or stalled. If its response has not
    /// begun, the client gets the status it would have got for a whole body
    /// (400, 408, 413) in its place, and the request is abandoned. If it was
    /// given whole, it goes out after those before it, then the connection
    /// closes. If it is being streamed, it is cut short where it is (as
    /// [`abort_body`](Self::abort_body) cuts it): the responses before it
    /// still go out whole, then what was queued of it, then the connection
    /// closes.
    fn fail_stream(&mut self, id: RequestId, refusal: Refusal, now: Instant) {
        let pending = self
            .waiting
            .iter()
            .position(|w| w.id == id && w.is_pending());
        let Refusal(status, reason) = refusal;
        let Some(at) = pending else {
            self.incident = Some(Incident {
                status: None,
                reason,
            });
            if let Ok(stream) = stream_in(&mut self.waiting, id) {
                stream.ended = true;
                stream.keep_alive = false;
                stream.cut = true;
                // Its service is done with it: told, as for a close.
                self.abandoned.push(id);
            }
            self.input = InputBuffer::default();
            self.state = State::Closing;
            self.restart_clock(now);
            self.flush_ready();
            return;
        };
        let mut encoded = Vec::new();
        let mut body = String::with_capacity(reason.len() + 1);
        body.push_str(reason);
        body.push('\n');
        let head_only = self.waiting[at].head_only;
        Response::new(status)
            .header("Content-Type", "text/plain")
            .body(body)
            .encode(&mut encoded, KeepAlive::No, head_only);
        self.waiting[at].ready = Some((encoded, false));
        self.abandoned.push(id);
        self.incident = Some(Incident {
            status: Some(status),
            reason,
        });
        self.input = InputBuffer::default();
        self.state = State::Closing;
        self.restart_clock(now);
        self.flush_ready();
    }

    /// Stops or resumes reading the streamed body of request `id`
    /// (backpressure: the place its pieces go to is full). A pause ends with
    /// its body: the next request's body is read as usual. The idle timeout
    /// does not run while a body is paused, and starts over at `now` when it
    /// resumes.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// /// Takes every request body in pieces as it arrives.
    /// #[derive(Default)]
    /// struct Upload { id: Option<RequestId>, got: usize, end: Option<Result<(), BodyError>> }
    /// impl Dispatch for Upload {
    ///     const STREAMS: bool = true;
    ///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    ///         self.id = Some(id);
    ///         Reply::Later
    ///     }
    ///     fn streams(&mut self, _: &Request<'_>) -> bool { true }
    ///     fn body(&mut self, _: RequestId, piece: &[u8]) { self.got += piece.len(); }
    ///     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) { self.end = Some(result); }
    /// }
    /// let (now, mut upload) = (Instant::now(), Upload::default());
    /// let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabcd", now, &mut upload);
    /// let id = upload.id.unwrap();
    /// conn.pause_body(id, true, now); // where the pieces go is full
    /// assert!(!conn.wants_read());
    /// conn.pause_body(id, false, now);
    /// conn.receive(b"efgh", now, &mut upload);
    /// assert_eq!((upload.got, upload.end), (8, Some(Ok(()))));
    /// ```
    pub fn pause_body(&mut self, id: RequestId, paused: bool, now: Instant) {
        match paused {
            true => {
                self.body_paused = Some(id);
                // Its respond timeout runs from here (see `body_awaited`),
                // however long its client took over the last piece.
                let respond_by = now + self.limits.respond_timeout;
                if let Some(slot) = (self.waiting.iter_mut()).find(|w| w.id == id && w.is_pending())
                {
                    slot.deadline = slot.deadline.max(respond_by);
                }
            }
            false if self.body_paused == Some(id) => {
                self.body_paused = None;
                self.restart_clock(now);
            }
            false => {}
        }
    }

    /// Whether request `id`'s body is paused ([`pause_body`](Self::pause_body)).
    #[cfg(target_os = "wasi")] // asked by the server's loop only
    pub(crate) fn is_body_paused(&self, id: RequestId) -> bool {
        self.body_paused == Some(id)
    }

    /// Whether the streamed body being read is request `id`'s.
    #[cfg(target_os = "wasi")] // asked by the server's loop only
    pub(crate) fn reads_body_of(&self, id: RequestId) -> bool {
        matches!(self.state, State::Stream { id: current, .. } if current == id)
    }

    /// Advances a chunked body; `Ok(true)` while the body may be complete.
    fn read_body(&mut self) -> Result<bool, Refusal> {
        let State::Body(head) = &mut self.state else {
            return Ok(false);
        };
        match &mut head.framing {
            Framing::Length(n) => Ok(self.input.len() >= head.len + *n),
            Framing::Oversized(_) => Ok(false),
            Framing::Chunked(decoder) => {
                let progress = decoder
                    .decode_in_place(&mut self.input, head.raw_pos, head.decoded_end)
                    .map_err(chunked_refusal)?;
                head.decoded_end = progress.written;
                head.raw_pos = progress.read;
                // The framing already read (sizes, extensions, CRLFs) goes:
                // a buffered body then holds about its decoded size, however
                // much framing it came in (a chunk of one byte may come with
                // kilobytes of extension).
                if progress.read - progress.written >= FRAMING_KEPT_UP_TO {
                    self.input.remove(progress.written..progress.read);
                    head.raw_pos = progress.written;
                }
                Ok(progress.done)
            }
        }
    }

    #[inline]
    fn body_is_complete(&self) -> bool {
        match &self.state {
            State::Body(head) => match &head.framing {
                Framing::Length(n) => self.input.len() >= head.len + n,
                Framing::Chunked(decoder) => decoder.is_done(),
                Framing::Oversized(_) => false,
            },
            _ => false,
        }
    }

    fn dispatch<S: Dispatch>(&mut self, service: &mut S, now: Instant) {
        self.dispatch_with(service, now, false);
    }

    /// Calls the service for the request whose head (and, unless `streamed`,
    /// body) is in the input; a streamed body follows in the `Stream` state.
    fn dispatch_with<S: Dispatch>(&mut self, service: &mut S, now: Instant, streamed: bool) {
        // The head is borrowed where it is, not moved out: it is large, and
        // the state is replaced below anyway.
        let State::Body(head) = &self.state else {
            return;
        };
        let (body, consumed): (Range<usize>, usize) = match (&head.framing, streamed) {
            (_, true) => (head.len..head.len, head.len),
            (Framing::Length(n), false) => (head.len..head.len + n, head.len + n),
            (Framing::Chunked(_), false) => (head.len..head.decoded_end, head.raw_pos),
            (Framing::Oversized(_), false) => {
                self.state = State::Idle;
                return;
            }
        };
        let stream = streamed.then(|| match &head.framing {
            Framing::Length(n) => Incoming::Length(*n as u64),
            Framing::Oversized(n) => Incoming::Length(*n),
            Framing::Chunked(_) => Incoming::chunked(
                self.limits.max_stream_bytes,
                self.limits.max_chunk_line_bytes,
                self.limits.max_head_bytes,
            ),
        });
        let id = take_id(&mut self.next_id);
        let (version, head_keep_alive, head_only, offers_upgrade) = (
            head.version,
            head.keep_alive,
            head.is_head_method,
            head.offers_upgrade,
        );
        // A streamed body's 100 is sent after its dispatch (see below).
        let continue_owed = streamed && head.expect_continue;
        let input: &[u8] = &self.input;
        let body = &input[body];
        let request = Request {
            head: &input[..head.len],
            method: &head.method,
            target: &head.target,
            version,
            headers: &self.headers,
            body,
            peer: &self.peer,
            local: &self.local,
            length: match streamed {
                true => declared_length(&head.framing),
                false => Some(body.len() as u64),
            },
            streamed,
            offers_upgrade,
        };
        let allowed = keep_alive_for(
            head_keep_alive && !self.peer_closed && !self.draining,
            version,
        );
        // Matched by reference: moving the response out of the reply
        // would copy it.
        let reply = service.dispatch(&request, id);
        let response = match &reply {
            Reply::Now(response) if self.waiting.is_empty() => response,
            Reply::Now(_) | Reply::Later => {
                // Read again from the head here, off the path of a request
                // answered at once: `request` kept past the dispatch costs
                // every request (WasmEdge's interpreter counted 40
                // instructions more).
                let method = match &self.state {
                    State::Body(head) => match is_safe_method(&self.input[head.method.clone()]) {
                        true => MethodKind::Safe,
                        false if service.handles_connect() && self.head_is_connect() => {
                            MethodKind::Connect
                        }
                        false => MethodKind::Unsafe,
                    },
                    _ => MethodKind::Unsafe,
                };
                let connect = method.is_connect();
                let queued = match &reply {
                    // Behind a response still to come: encoded now, sent then.
                    Reply::Now(response) => {
                        let mut encoded = Vec::new();
                        let keep_alive =
                            encode_queued(response, &mut encoded, allowed, head_only, connect);
                        Some((encoded, keep_alive))
                    }
                    Reply::Later => None,
                };
                drop(reply);
                // Whether the connection stays open is the request's to say
                // and then the response's: until a deferred one comes,
                // pipelined requests are read, unless this one closes the
                // connection (RFC 9112 §9.6: none after it is processed).
                let response_keeps = queued.as_ref().is_none_or(|(_, keep_alive)| *keep_alive);
                let keep_alive = allowed != KeepAlive::No && response_keeps;
                let deferred = queued.is_none();
                let deadline = match deferred {
                    true => now + self.limits.respond_timeout,
                    false => now,
                };
                self.waiting.push_back(Waiting {
                    id,
                    ready: queued,
                    stream: None,
                    keep_alive: head_keep_alive,
                    version,
                    head_only,
                    deadline,
                    method,
                });
                self.input.consume(consumed);
                match (offers_upgrade, deferred) {
                    (true, true) => {
                        self.state = State::Switching {
                            id,
                            keep_alive,
                            switched: false,
                        }
                    }
                    // Its streamed body comes next whatever the request says
                    // of the connection; the body's end decides what follows.
                    _ if stream.is_some() && response_keeps => {}
                    _ => self.next_request(keep_alive, consumed, now),
                }
                self.stream_body(stream, id, head_keep_alive, continue_owed, service);
                // Deferred at the front: the service wants the body now.
                if continue_owed
                    && self
                        .waiting
                        .front()
                        .is_some_and(|w| w.id == id && w.is_pending())
                {
                    self.answer_stream_continue(id);
                }
                return;
            }
        };
        let switch = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        // Only the offer of a bodiless HTTP/1.1 request may be taken (RFC
        // 9110 §7.8): any other 101 would hand the request's body, or the
        // requests after it, to another protocol.
        let upgraded = switch && offers_upgrade;
        // Only a service that takes CONNECT can answer one (a test the
        // compiler folds away for most), which closes its connection: only
        // then is the method read.
        let misfit = (switch && !offers_upgrade)
            || (service.handles_connect()
                && allowed == KeepAlive::No
                && opens_tunnel(response, self.head_is_connect()));
        // The size test first: most bodies are small, and the rest of the
        // lending stays out of line. Not the body of a misfit, answered by
        // a 500 of its own (lent, it went out after that 500).
        let lent = match response.body_bytes().len() > KEEP_CAPACITY
            && !head_only
            && !misfit
            && !response.status().forbids_body()
        {
            true => self.lendable(response.body_bytes(), consumed),
            false => None,
        };
        let keep_alive = match misfit {
            true => {
                let why: &[u8] = match switch {
                    true => b"a response switched protocols for a request that offered no switch\n",
                    false => TUNNEL_REFUSED,
                };
                Response::new(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(why)
                    .encode(self.output.buffer(), KeepAlive::No, head_only);
                false
            }
            false => response.encode(self.output.buffer(), allowed, head_only || lent.is_some()),
        };
        drop(reply);
        match lent {
            Some(body) => self.lend_input(consumed, body),
            None => self.input.consume(consumed),
        }
        if upgraded {
            self.state = State::Upgraded;
        } else {
            self.next_request(keep_alive, consumed, now);
            // Answered at once: the 100 went before it, or is not needed.
            self.stream_body(stream, id, head_keep_alive, false, service);
        }
    }

    /// After dispatching a streamed request: its body is read next, unless
    /// the response already closed the connection (then the body ends
    /// unread, and the service is told so).
    #[inline]
    fn stream_body<S: Dispatch>(
        &mut self,
        stream: Option<Incoming>,
        id: RequestId,
        keep_alive: bool,
        continue_owed: bool,
        service: &mut S,
    ) {
        if let Some(incoming) = stream {
            match self.state {
                State::Closing | State::Closed => service.body_end(id, Err(BodyError::Unread)),
                _ => {
                    self.after_response = 0;
                    self.state = State::Stream {
                        id,
                        incoming,
                        keep_alive,
                        continue_owed,
                    }
                }
            }
        }
    }

    /// After a request of `consumed` bytes was dispatched: on to the next
    /// one, or closing.
    #[inline]
    fn next_request(&mut self, keep_alive: bool, consumed: usize, now: Instant) {
        if !keep_alive {
            self.input = InputBuffer::default();
            self.state = State::Closing;
        } else if self.input.is_empty() {
            // The buffers stay for the next request unless this one was big.
            if consumed > KEEP_CAPACITY {
                self.input = InputBuffer::default();
            }
            self.state = State::Idle;
            if self.draining {
                self.finish_if_drained();
            }
        } else {
            self.state = State::Head {
                started: now,
                parser: HeadParser::default(),
                held: false,
                head_method: false,
            };
            if self.draining {
                // Only line ends after it: no request begun.
                self.finish_if_drained();
            }
        }
    }

    /// Answers the request `id` that the service deferred
    /// ([`Reply::Later`]). The response leaves once those before it have;
    /// call [`process`](Self::process) afterwards, as requests read while it
    /// waited may now go on.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// /// Defers every request.
    /// struct Later(Vec<RequestId>);
    /// impl Dispatch for Later {
    ///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    ///         self.0.push(id);
    ///         Reply::Later
    ///     }
    /// }
    /// let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// assert!(!conn.wants_write()); // nothing to send until the service answers
    /// let id = later.0[0];
    /// conn.respond(id, Response::new(StatusCode::OK).body("done"), now).unwrap();
    /// conn.process(now, &mut later);
    /// assert!(conn.pending_output().ends_with(b"\r\n\r\ndone"));
    /// // A request answered once no longer waits.
    /// assert!(conn.respond(id, Response::new(StatusCode::OK), now).is_err());
    /// ```
    pub fn respond(
        &mut self,
        id: RequestId,
        response: Response<'_>,
        now: Instant,
    ) -> Result<(), Gone> {
        let (at, allowed) = self.pending_slot(id)?;
        let (head_only, connect) = (
            self.waiting[at].head_only,
            self.waiting[at].method.is_connect(),
        );
        self.service_output(now);
        if at == 0 {
            // Its turn: straight into the output, no copy.
            let out = self.output.buffer();
            let keep_alive = encode_queued(&response, out, allowed, head_only, connect);
            self.waiting.pop_front();
            if !keep_alive {
                self.close_after_later_response();
            }
        } else {
            let mut encoded = Vec::new();
            let keep_alive = encode_queued(&response, &mut encoded, allowed, head_only, connect);
            self.waiting[at].ready = Some((encoded, keep_alive));
            if !keep_alive {
                self.close_behind(at);
            }
        }
        self.flush_ready();
        Ok(())
    }

    /// The response to request `id` closes the connection, once
    /// those before it are sent: no request after it will be answered (RFC
    /// 9112 §9.6). The requests taken beside it are given up now, their
    /// services told and what they give later refused ([`Gone`]), not when
    /// it reaches the front, which may be never (a stream to the end). One
    /// being read is dropped, and the connection reads on only to notice the
    /// client leave.
    #[cold]
    fn close_behind_request(&mut self, id: RequestId) {
        if let Some(at) = self.waiting.iter().position(|w| w.id == id) {
            self.close_behind(at);
        }
    }

    /// [`close_behind_request`](Self::close_behind_request) for the request
    /// at `at`.
    #[cold]
    fn close_behind(&mut self, at: usize) {
        for slot in self.waiting.iter_mut().skip(at + 1) {
            if slot.is_owed() {
                self.abandoned.push(slot.id);
            }
            (slot.ready, slot.stream) = (Some((Vec::new(), false)), None);
        }
        let closing = self.waiting[at].id;
        match self.state {
            State::Idle | State::Head { .. } | State::Body(_) => {}
            State::Stream { id, .. } if id > closing => {
                self.broken_body.get_or_insert((id, BodyError::Unread));
            }
            State::Switching { id, .. } if id > closing => {}
            _ => return,
        }
        self.input = InputBuffer::default();
        self.state = State::Closing;
    }

    /// Where the response to `id` waits to be given, and what keep-alive
    /// its request allows it; `Gone` if it no longer waits.
    fn pending_slot(&self, id: RequestId) -> Result<(usize, KeepAlive), Gone> {
        let at = self
            .waiting
            .iter()
            .position(|w| w.id == id && w.is_pending())
            .ok_or(Gone)?;
        Ok((at, self.keep_alive_at(at)))
    }

    /// What keep-alive the response in slot `at` may promise: what its
    /// request allows, unless the client is leaving, or the connection is
    /// draining and this is the last response it will give. (Draining, a
    /// `close` on an earlier one would end the connection with the
    /// responses after it, computed or not, unsent.)
    fn keep_alive_at(&self, at: usize) -> KeepAlive {
        let slot = &self.waiting[at];
        // Draining asked first: nearly always it is not, and the rest is
        // then not looked at.
        let last_of_drain = self.draining
            && at + 1 == self.waiting.len()
            && matches!(
                self.state,
                // A request whose body streams, or that offered a switch it
                // was not given, is the last: none is read after it.
                State::Idle
                    | State::Closing
                    | State::Closed
                    | State::Stream { .. }
                    | State::Switching { .. }
            );
        keep_alive_for(
            slot.keep_alive && !self.peer_closed && !last_of_drain,
            slot.version,
        )
    }

    /// Sends `head`, an interim response (1xx other than 101, such as
    /// `103 Early Hints`), to the deferred request `id` ahead of its final
    /// response. Only when it can go now: every response before it is out
    /// (an interim response belongs right before its final one) and its
    /// client speaks HTTP/1.1 (RFC 9110 §15.2: none to HTTP/1.0).
    /// Otherwise (or while more than `max_pending_output_bytes` wait to be
    /// sent) it is dropped, as a hint may be: `Ok(false)`. `Gone` once the
    /// final response was given.
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
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
    /// let hints = Response::new(StatusCode::from_u16(103).unwrap()).header("Link", "</a.css>; rel=preload");
    /// assert_eq!(conn.respond_interim(later.0.unwrap(), &hints, now), Ok(true));
    /// assert_eq!(conn.pending_output(), b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
    /// ```
    pub fn respond_interim(
        &mut self,
        id: RequestId,
        head: &Response<'_>,
        now: Instant,
    ) -> Result<bool, Gone> {
        let (at, _) = self.pending_slot(id)?;
        let code = head.status().as_u16();
        let interim = (100..200).contains(&code) && code != 101;
        // Not past the output limit either: a hint is not worth the memory.
        let room = self.output.len() <= self.limits.max_pending_output_bytes;
        if !interim || !room || at != 0 || self.waiting[0].version != Version::Http11 {
            return Ok(false);
        }
        self.service_output(now);
        head.encode_interim(self.output.buffer());
        Ok(true)
    }

    /// Answers the deferred request `id`, one that offered to switch
    /// protocols (a bodiless HTTP/1.1 request whose `Connection` names its
    /// `Upgrade` field), with `head`, a 101: once it is sent (after the
    /// responses before it), the connection is [upgraded](Self::is_upgraded).
    /// A request that made no such offer, or a head that is not a 101, is
    /// refused with `Gone` and nothing changes.
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
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
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: demo\r\n\r\nnew", now, &mut later);
    /// // What follows may not be HTTP: kept, not parsed (read on only to
    /// // notice a client that leaves).
    /// let switch = Response::new(StatusCode::SWITCHING_PROTOCOLS).header("Upgrade", "demo");
    /// conn.respond_switch(later.0.unwrap(), switch, now).unwrap();
    /// assert!(conn.is_upgraded());
    /// assert_eq!(conn.take_upgraded().1, b"new");
    /// ```
    pub fn respond_switch(
        &mut self,
        id: RequestId,
        head: Response<'_>,
        now: Instant,
    ) -> Result<(), Gone> {
        match self.state {
            State::Switching { id: offered, .. }
                if offered == id && head.status() == StatusCode::SWITCHING_PROTOCOLS => {}
            _ => return Err(Gone),
        }
        let (at, allowed) = self.pending_slot(id)?;
        if let State::Switching { switched, .. } = &mut self.state {
            *switched = true;
        }
        let mut encoded = Vec::new();
        head.encode(&mut encoded, allowed, true);
        self.waiting[at].ready = Some((encoded, true));
        self.service_output(now);
        self.flush_ready();
        Ok(())
    }

    /// Requests the service deferred and that no longer wait for it (a 504
    /// went out at the respond timeout, or the connection closes before
    /// them): the service may stop working on them.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// conn.receive_eof(now, &mut later); // the client left before its answer
    /// assert!(conn.has_abandoned());
    /// let gone: Vec<RequestId> = conn.take_abandoned().collect();
    /// assert_eq!(gone, later.0);
    /// ```
    pub fn take_abandoned(&mut self) -> std::vec::Drain<'_, RequestId> {
        self.abandoned.drain(..)
    }

    /// Whether [`take_abandoned`](Self::take_abandoned) has anything.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// assert!(!conn.has_abandoned());
    /// ```
    #[inline]
    pub fn has_abandoned(&self) -> bool {
        !self.abandoned.is_empty()
    }

    /// Gives up every deferred request (the connection is going away); they
    /// are reported by [`take_abandoned`](Self::take_abandoned).
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// conn.abandon_all(); // say, the loop is shutting down
    /// assert_eq!(conn.take_abandoned().count(), 2);
    /// assert_eq!(conn.waiting_count(), 0);
    /// ```
    pub fn abandon_all(&mut self) {
        for slot in self.waiting.drain(..) {
            if slot.is_owed() {
                self.abandoned.push(slot.id);
            }
        }
    }

    /// The connection is gone (reset, or closed by the loop) while a
    /// streamed request body was still being read: it broke off, to be
    /// told to the service through [`take_broken_body`](Self::take_broken_body).
    /// A body whose end the service was already told of is not told again.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// # /// Takes every request body in pieces as it arrives.
    /// # #[derive(Default)]
    /// # struct Upload { id: Option<RequestId>, got: usize, end: Option<Result<(), BodyError>> }
    /// # impl Dispatch for Upload {
    /// #     const STREAMS: bool = true;
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.id = Some(id);
    /// #         Reply::Later
    /// #     }
    /// #     fn streams(&mut self, _: &Request<'_>) -> bool { true }
    /// #     fn body(&mut self, _: RequestId, piece: &[u8]) { self.got += piece.len(); }
    /// #     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) { self.end = Some(result); }
    /// # }
    /// # let (now, mut upload) = (Instant::now(), Upload::default());
    /// # let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabcd", now, &mut upload);
    /// conn.lose_connection(); // reset by the peer, four bytes short
    /// let (id, error) = conn.take_broken_body().unwrap();
    /// assert_eq!(Some(id), upload.id);
    /// eprintln!("upload {id:?} broke off: {error}");
    /// ```
    pub fn lose_connection(&mut self) {
        if let State::Stream { id, .. } = self.state {
            self.broken_body.get_or_insert((id, BodyError::Truncated));
            self.state = State::Closed;
        }
    }

    /// The streamed request body that broke off where the handler could not
    /// tell the service ([`Dispatch::body_end`]) itself: at
    /// [`handle_timeout`](Self::handle_timeout) (a stall),
    /// [`lose_connection`](Self::lose_connection), or when a response that
    /// closes the connection was given before the body's end (it will not
    /// be read on). Tell it.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// # /// Takes every request body in pieces as it arrives.
    /// # #[derive(Default)]
    /// # struct Upload { id: Option<RequestId>, got: usize, end: Option<Result<(), BodyError>> }
    /// # impl Dispatch for Upload {
    /// #     const STREAMS: bool = true;
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.id = Some(id);
    /// #         Reply::Later
    /// #     }
    /// #     fn streams(&mut self, _: &Request<'_>) -> bool { true }
    /// #     fn body(&mut self, _: RequestId, piece: &[u8]) { self.got += piece.len(); }
    /// #     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) { self.end = Some(result); }
    /// # }
    /// # let (now, mut upload) = (Instant::now(), Upload::default());
    /// # let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// use std::time::Duration;
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabcd", now, &mut upload);
    /// // The client stalls mid-body: at its deadline, the body breaks off.
    /// let due = conn.deadline().unwrap();
    /// conn.handle_timeout(due + Duration::from_secs(1));
    /// let (id, error) = conn.take_broken_body().unwrap();
    /// upload.body_end(id, Err(error)); // what the loop does with it
    /// assert!(conn.take_broken_body().is_none());
    /// ```
    pub fn take_broken_body(&mut self) -> Option<(RequestId, BodyError)> {
        self.broken_body.take()
    }

    /// How many requests wait for deferred responses, or behind them.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// assert_eq!(conn.waiting_count(), 1);
    /// ```
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Moves ready responses at the front of the queue into the output, up
    /// to a streamed one that has not ended (its pieces go out as they come).
    fn flush_ready(&mut self) {
        while let Some(front) = self.waiting.front() {
            // A streamed upload answered (its response head given) while
            // behind another still asks for its body: its 100 first.
            if front.stream.as_ref().is_some_and(|s| !s.at_front) {
                let id = front.id;
                self.answer_stream_continue(id);
            }
            let Some(front) = self.waiting.front_mut() else {
                return;
            };
            let keep_alive = if let Some(stream) = &mut front.stream {
                if !stream.at_front {
                    stream.at_front = true;
                    self.output.buffer().extend_from_slice(&stream.head);
                    stream.head = Vec::new();
                    for piece in std::mem::take(&mut stream.pieces) {
                        // Checked against the length when it was taken.
                        let _ = stream.framing.push(piece, &mut self.output);
                    }
                }
                if !stream.ended {
                    return;
                }
                if !stream.cut {
                    let _ = stream.framing.finish(&mut self.output);
                }
                stream.keep_alive
            } else if let Some((bytes, keep_alive)) = &front.ready {
                self.output.buffer().extend_from_slice(bytes);
                if let State::Switching {
                    id, switched: true, ..
                } = self.state
                {
                    if id == front.id {
                        self.waiting.pop_front();
                        self.state = State::Upgraded;
                        return;
                    }
                }
                *keep_alive
            } else {
                let id = front.id;
                self.answer_stream_continue(id);
                return;
            };
            self.waiting.pop_front();
            if !keep_alive {
                self.close_after_later_response();
            }
        }
        if let State::Body(head) = &self.state {
            // Its body not begun: the 100 it asked for is its turn now.
            if head.expect_continue && self.input.len() == head.len {
                self.answer_continue();
            }
        }
        self.finish_if_drained();
    }

    /// Answers the deferred request `id` with `head`, and a body to be
    /// streamed after it with [`send_body`](Self::send_body) and ended with
    /// [`end_body`](Self::end_body): `length` bytes (`Content-Length`), or
    /// of a length not known yet (chunked for HTTP/1.1, until the close for
    /// HTTP/1.0). The head's own body is not sent.
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
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
    /// conn.respond_stream(id, Response::new(StatusCode::OK), None, now).unwrap();
    /// conn.send_body(id, "hello".into(), now).unwrap();
    /// conn.end_body(id, now).unwrap();
    /// let out = String::from_utf8(conn.pending_output().to_vec()).unwrap();
    /// assert!(out.starts_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    /// ```
    pub fn respond_stream(
        &mut self,
        id: RequestId,
        head: Response<'_>,
        length: Option<u64>,
        now: Instant,
    ) -> Result<(), Gone> {
        let (at, allowed) = self.pending_slot(id)?;
        self.service_output(now);
        let slot = &self.waiting[at];
        if opens_tunnel(&head, slot.method.is_connect()) {
            // Refused as a whole response is (a 500): no body follows.
            return self.respond(id, head, now);
        }
        let chunked_ok = slot.version == Version::Http11;
        let mut encoded = Vec::new();
        let (keep_alive, framing, at_front) = match head.status() {
            StatusCode::SWITCHING_PROTOCOLS => {
                let keep_alive = encode_queued(&head, &mut encoded, allowed, slot.head_only, false);
                (keep_alive, Outgoing::Length(0), false)
            }
            // First in the queue, as nearly always: the head goes straight
            // into the output, where `flush_ready` would copy it next.
            _ => {
                let at_front = at == 0;
                let out = match at_front {
                    true => self.output.buffer(),
                    false => &mut encoded,
                };
                let (keep_alive, framing) =
                    head.encode_streamed(out, allowed, slot.head_only, length, chunked_ok);
                (keep_alive, framing, at_front)
            }
        };
        // A head that cannot start a streamed body (a switch, an interim
        // status) went out as a 500 whose body is complete: nothing of the
        // service's is awaited.
        let refused = head.status().as_u16() < 200;
        if !keep_alive {
            self.close_behind(at);
        }
        self.waiting[at].stream = Some(Box::new(Streamed {
            head: encoded,
            pieces: Vec::new(),
            framing,
            keep_alive,
            ended: refused,
            cut: false,
            at_front,
        }));
        self.flush_ready();
        Ok(())
    }

    /// Queues a piece of the body of the streamed response to `id`.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0[0];
    /// conn.respond_stream(id, Response::new(StatusCode::OK), Some(10), now).unwrap();
    /// for piece in ["hello", "world"] {
    ///     conn.send_body(id, piece.into(), now).unwrap(); // a `bytes::Bytes`, shared, not copied
    /// }
    /// conn.end_body(id, now).unwrap();
    /// ```
    pub fn send_body(
        &mut self,
        id: RequestId,
        piece: Bytes,
        now: Instant,
    ) -> Result<(), StreamError> {
        // Asked before the piece goes in (see `service_output`).
        let quiet = self.output.is_empty();
        let stream = stream_in(&mut self.waiting, id)?;
        if stream.at_front {
            stream
                .framing
                .push(piece, &mut self.output)
                .map_err(StreamError::Body)?;
        } else if stream.framing != Outgoing::Discard {
            // Checked now, framed once it reaches the front. (To HEAD it is
            // dropped now: kept, it would be held for nothing.)
            if let Outgoing::Length(remaining) = &mut stream.framing {
                let len = piece.len() as u64;
                let left =
                    remaining.saturating_sub(stream.pieces.iter().map(|p| p.len() as u64).sum());
                if len > left {
                    return Err(StreamError::Body(BodyError::TooLong));
                }
            }
            stream.pieces.push(piece);
        }
        if quiet && !self.body_coming() {
            self.restart_clock(now);
        }
        Ok(())
    }

    /// Ends the body of the streamed response to `id`. A body shorter than
    /// its announced length cannot be completed: the connection closes
    /// after what was sent.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// use edgepoll::http::StreamError;
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0[0];
    /// conn.respond_stream(id, Response::new(StatusCode::OK), Some(10), now).unwrap();
    /// conn.send_body(id, "short".into(), now).unwrap();
    /// // Five bytes of ten: the body breaks its length, and the connection closes.
    /// assert!(matches!(conn.end_body(id, now), Err(StreamError::Body(_))));
    /// ```
    pub fn end_body(&mut self, id: RequestId, now: Instant) -> Result<(), StreamError> {
        let stream = self.stream_mut(id)?;
        stream.ended = true;
        let short = match &stream.framing {
            Outgoing::Length(remaining) => {
                *remaining > stream.pieces.iter().map(|p| p.len() as u64).sum::<u64>()
            }
            _ => false,
        };
        if short {
            stream.keep_alive = false;
            stream.cut = true;
            self.close_behind_request(id);
        }
        self.service_output(now);
        self.flush_ready();
        match short {
            true => Err(StreamError::Body(BodyError::TooShort)),
            false => Ok(()),
        }
    }

    /// Gives up the body of the streamed response to `id` (its source
    /// broke off): what was queued goes out, then the connection closes
    /// without ending the body, so the client sees it cut short rather than
    /// complete.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0[0];
    /// conn.respond_stream(id, Response::new(StatusCode::OK), None, now).unwrap();
    /// conn.send_body(id, "part".into(), now).unwrap();
    /// conn.abort_body(id, now).unwrap(); // the source broke off
    /// let mut sent = Vec::new();
    /// while conn.wants_write() {
    ///     sent.extend_from_slice(conn.pending_output());
    ///     conn.consume_output(conn.pending_output().len(), now);
    /// }
    /// assert!(!sent.ends_with(b"0\r\n\r\n")); // no last chunk: the client sees it cut
    /// assert!(!conn.wants_read());
    /// ```
    pub fn abort_body(&mut self, id: RequestId, now: Instant) -> Result<(), StreamError> {
        let stream = self.stream_mut(id)?;
        stream.ended = true;
        stream.keep_alive = false;
        stream.cut = true;
        self.close_behind_request(id);
        self.service_output(now);
        self.flush_ready();
        Ok(())
    }

    /// Bytes of the streamed response to `id` queued and not yet sent, and
    /// for a response pipelined behind others, the streamed bytes queued
    /// ahead of it on the connection too: what a service that produces a
    /// body watches to stay within its memory, which is then one budget per
    /// connection, not one per response waiting there.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0[0];
    /// conn.respond_stream(id, Response::new(StatusCode::OK), None, now).unwrap();
    /// conn.send_body(id, vec![0u8; 4096].into(), now).unwrap();
    /// assert!(conn.body_backlog(id) >= 4096); // produce more once this goes down
    /// ```
    pub fn body_backlog(&self, id: RequestId) -> usize {
        // The pieces of streamed responses queued behind the one going
        // out, ahead of this one: none of it can leave before them.
        let mut ahead = 0;
        for waiting in &self.waiting {
            let held = match &waiting.stream {
                Some(stream) if !stream.at_front => stream.pieces.iter().map(Bytes::len).sum(),
                _ => 0,
            };
            if waiting.id == id {
                return match &waiting.stream {
                    // To HEAD nothing is queued, whatever else the output holds.
                    Some(stream) if stream.framing != Outgoing::Discard => {
                        self.output.queued_pieces() + ahead + held
                    }
                    _ => 0,
                };
            }
            ahead += held;
        }
        0
    }

    /// Whether `id` is a HEAD request still waiting for its response: one
    /// whose body no one sees.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// // Both are safe, so both wait side by side; only the first is a HEAD.
    /// assert_eq!(later.0.len(), 2);
    /// assert!(conn.answers_head(later.0[0]) && !conn.answers_head(later.0[1]));
    /// ```
    pub fn answers_head(&self, id: RequestId) -> bool {
        self.waiting.iter().any(|w| w.id == id && w.head_only)
    }

    /// Whether the streamed response to `id` takes more of its body: begun
    /// with [`respond_stream`](Self::respond_stream) and not yet ended.
    ///
    /// ```
    /// # use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
    /// # use std::time::Instant;
    /// # /// Defers every request.
    /// # struct Later(Vec<RequestId>);
    /// # impl Dispatch for Later {
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    /// #         self.0.push(id);
    /// #         Reply::Later
    /// #     }
    /// # }
    /// # let (now, mut later) = (Instant::now(), Later(Vec::new()));
    /// # let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0[0];
    /// conn.respond_stream(id, Response::new(StatusCode::OK), Some(2), now).unwrap();
    /// assert!(conn.takes_body(id));
    /// conn.send_body(id, "hi".into(), now).unwrap();
    /// conn.end_body(id, now).unwrap();
    /// assert!(!conn.takes_body(id));
    /// ```
    pub fn takes_body(&self, id: RequestId) -> bool {
        self.waiting
            .iter()
            .any(|w| w.id == id && matches!(&w.stream, Some(stream) if !stream.ended))
    }

    fn stream_mut(&mut self, id: RequestId) -> Result<&mut Streamed, StreamError> {
        stream_in(&mut self.waiting, id)
    }

    /// A response said the connection closes: requests after it are dropped.
    fn close_after_response(&mut self) {
        self.abandon_all();
        self.input = InputBuffer::default();
        if !matches!(self.state, State::Closed) {
            self.state = State::Closing;
        }
    }

    /// A response sent later (deferred or queued) closes the connection: a
    /// body still coming will not be read. Its end is told through the loop
    /// (`take_broken_body`, where the response is given), as the handler tells it itself
    /// when a closing answer comes at once.
    fn close_after_later_response(&mut self) {
        if let State::Stream { id, keep_alive, .. } = self.state {
            // Draining, the answer to a body still coming says `close` as
            // the last the connection gives, not to cut the body: it is read
            // on to its end (`next_request` then closes).
            if self.draining && keep_alive && !self.peer_closed && self.waiting.is_empty() {
                return;
            }
            self.broken_body.get_or_insert((id, BodyError::Unread));
        }
        self.close_after_response();
    }

    /// An idle keep-alive connection at its idle timeout: closed quietly.
    fn close_idle(&mut self) {
        self.incident = Some(Incident {
            status: None,
            reason: "idle keep-alive connection closed at the idle timeout",
        });
        self.state = State::Closed;
    }

    /// 504 for every deferred request past its respond timeout.
    fn time_out_waiting(&mut self, now: Instant) {
        let late = self.body_awaited();
        for at in 0..self.waiting.len() {
            let allowed = self.keep_alive_at(at);
            let slot = &mut self.waiting[at];
            if !slot.is_pending() || now < slot.deadline || Some(slot.id) == late {
                continue;
            }
            let mut encoded = Vec::new();
            let reason = "no response within the respond timeout";
            let keep_alive = Response::new(StatusCode::GATEWAY_TIMEOUT)
                .header("Content-Type", "text/plain")
                .body(&b"no response within the respond timeout\n"[..])
                .encode(&mut encoded, allowed, slot.head_only);
            slot.ready = Some((encoded, keep_alive));
            self.abandoned.push(slot.id);
            self.incident = Some(Incident {
                status: Some(StatusCode::GATEWAY_TIMEOUT),
                reason,
            });
            self.restart_clock(now);
        }
        self.flush_ready();
    }
}

/// The most bytes of empty lines before a request line read ahead behind
/// requests waiting for their responses (see `order_allows`).
const MAX_LINE_END_BYTES_AHEAD: usize = 8;

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

/// Whether an absolute-form target reads one way to every parser: its
/// authority a valid, non-empty host without userinfo (RFC 9110 §4.2.4
/// has userinfo treated as an error), and no `#` (an absolute-URI has no
/// fragment) or `\` anywhere, which URL parsers split differently
/// (`http://a#@b/`: host `a` to a browser's parser, `b` by the last `@`).
fn is_plain_absolute(target: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(target) else {
        return false;
    };
    if text.contains(['#', '\\']) {
        return false;
    }
    let authority = match text.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?']).next().unwrap_or_default(),
        // Only `*?...` (`split_target`): the asterisk form is `*` alone
        // (RFC 9112 §3.2.4).
        None => return false,
    };
    // An empty host is invalid in an http URI (RFC 9110 §4.2.1).
    !authority.is_empty()
        && !authority.contains('@')
        && super::framing::is_valid_host(authority.as_bytes())
}

/// The unfinished streamed response to `id`.
fn stream_in(waiting: &mut VecDeque<Waiting>, id: RequestId) -> Result<&mut Streamed, StreamError> {
    match waiting.iter_mut().find(|w| w.id == id) {
        Some(Waiting {
            stream: Some(stream),
            ..
        }) if !stream.ended => Ok(stream),
        _ => Err(StreamError::Gone),
    }
}

impl Handler {
    /// Whether the request whose head was just parsed is a CONNECT.
    #[cold]
    fn head_is_connect(&self) -> bool {
        match &self.state {
            State::Body(head) => scan::same_bytes(&self.input[head.method.clone()], b"CONNECT"),
            _ => false,
        }
    }
}

/// Whether a request of `method` is safe (RFC 9110 §9.2.1): it asks for
/// no change on the server, so it may be processed beside others.
fn is_safe_method(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE")
}

/// The length a head declares for its body; `None` for chunked.
fn declared_length(framing: &Framing) -> Option<u64> {
    match framing {
        Framing::Length(n) => Some(*n as u64),
        Framing::Oversized(n) => Some(*n),
        Framing::Chunked(_) => None,
    }
}

/// What the connection allows a response with `keep_alive` from its request.
#[inline]
/// The next request's id (a field of its own, so that it can be taken while
/// the parsed head is borrowed).
fn take_id(next_id: &mut u64) -> RequestId {
    let id = RequestId(*next_id);
    *next_id += 1;
    id
}

fn keep_alive_for(keep_alive: bool, version: Version) -> KeepAlive {
    match (keep_alive, version) {
        (false, _) => KeepAlive::No,
        (true, Version::Http10) => KeepAlive::Http10,
        (true, Version::Http11) => KeepAlive::Http11,
    }
}

/// Encodes a response that does not go out at once: it cannot switch
/// protocols (a 101 belongs to the request whose response is sent at once),
/// nor open a tunnel (`connect`: see [`opens_tunnel`]).
fn encode_queued(
    response: &Response<'_>,
    out: &mut Vec<u8>,
    allowed: KeepAlive,
    head_only: bool,
    connect: bool,
) -> bool {
    let why: &[u8] = match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => b"a deferred response cannot switch protocols\n",
        _ if opens_tunnel(response, connect) => TUNNEL_REFUSED,
        _ => return response.encode(out, allowed, head_only),
    };
    Response::new(StatusCode::INTERNAL_SERVER_ERROR)
        .body(why)
        .encode(out, KeepAlive::No, head_only);
    false
}

/// Whether `response`, to a CONNECT (`connect`), would tell the client its
/// tunnel is open: a 2xx (RFC 9110 §9.3.6), whose bytes after the head the
/// client takes as the tunnel's. A connection here never becomes one, so
/// such an answer goes out as a 500 and the connection closes.
#[inline(always)]
fn opens_tunnel(response: &Response<'_>, connect: bool) -> bool {
    connect && response.status().is_success()
}

const TUNNEL_REFUSED: &[u8] =
    b"a 2xx to CONNECT would open a tunnel, which this server never does\n";

impl Handler {
    /// Where `body` lies in the first `consumed` input bytes, if it is large
    /// and lies there: such a body is sent from the input buffer, not copied.
    #[inline(never)]
    fn lendable(&self, body: &[u8], consumed: usize) -> Option<Range<usize>> {
        if body.len() <= KEEP_CAPACITY || self.output.has_lent_body() {
            return None;
        }
        let at = (body.as_ptr() as usize).checked_sub(self.input.as_ptr() as usize)?;
        (at + body.len() <= consumed.min(self.input.len())).then_some(at..at + body.len())
    }

    /// Hands the first `consumed` input bytes to the output, `body` of them
    /// to be sent from where they are.
    #[cold]
    #[inline(never)]
    fn lend_input(&mut self, consumed: usize, body: Range<usize>) {
        let (buffer, start) = self.input.take_front(consumed);
        self.output
            .lend(buffer, start + body.start..start + body.end);
    }
}

fn framing_refusal(error: FramingError) -> Refusal {
    let status = match error {
        FramingError::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal(status, error.as_str())
}

fn chunked_refusal(error: ChunkedError) -> Refusal {
    let status = match error {
        ChunkedError::BodyTooLarge => StatusCode::CONTENT_TOO_LARGE,
        ChunkedError::TrailersTooLarge => StatusCode::HEADER_FIELDS_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal(status, error.as_str())
}

/// Whether the request line ends in a well-formed version of a major other
/// than 1 (`HTTP/2.0`, `HTTP/0.9`): one we could name but do not speak
/// (505), as opposed to a malformed one (400).
fn names_other_http_version(buf: &[u8]) -> bool {
    // After the empty lines the parser passed over.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    let buf = &buf[start.unwrap_or(buf.len())..];
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let mut parts = buf[..line_end].split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3) of a major version not 1:
    // anything else is malformed (400).
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && *major != b'1' && minor.is_ascii_digit())
}
