//! The server side of one WebSocket connection: bytes in, messages out.

use super::frame::{apply_mask, read_header, write_frame, FrameError, FrameHeader, Opcode};
use super::utf8::Utf8Stream;
use crate::http::output::OutputBuffer;
use crate::http::reserve_up_to;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Limits of one WebSocket connection.
///
/// ```
/// let limits = edgepoll::ws::WsLimits::default();
/// assert_eq!(limits.max_message_bytes, 1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct WsLimits {
    /// Largest message (all its fragments together). Over it: close 1009.
    /// A message near it is held in buffers of about its size (the
    /// input's, and a fragmented message's), each grown by doubling but
    /// never past the limit and one read; the input's is kept after the
    /// message, until [`WebSocket::release_buffers`].
    pub max_message_bytes: usize,
    /// Most bytes queued for a peer that does not read: a send that finds
    /// this many already queued drops the connection (without a close
    /// frame, which could not get through). Below it a message always goes
    /// in, whatever its size, so a queue holds at most this plus one
    /// message: a peer that reads is never dropped for one large message
    /// meeting a few bytes not yet sent. While half of it is queued, the
    /// peer is not read ([`WebSocket::wants_read`]): its pings and
    /// messages wait in the network until it has read what it was sent.
    /// The server's loop queues what the application sent in rounds, each
    /// written before the next, and counts only what was queued before a
    /// round against the limit: what the round queues has had no chance
    /// to be sent. So a peer that reads is never dropped for the answers
    /// to what one read completed (a 300 KiB message and the next, an
    /// echo of each), and a queue holds at most the limit plus one round.
    pub max_queued_bytes: usize,
    /// How long queued bytes may wait without progress (see
    /// [`min_progress_bytes`](Self::min_progress_bytes)) before the
    /// connection is dropped. A quiet connection with nothing queued has no
    /// timeout.
    pub send_timeout: Duration,
    /// What counts as progress against the send timeout: this many bytes
    /// sent since its clock last started over, or all that was queued. So a
    /// peer that takes a byte now and then cannot hold the queue (up to
    /// `max_queued_bytes` and a round) for ever. The same for the message
    /// timeout: this many bytes of a message's payload received, or its end.
    /// 1 KiB by default; 0 counts every byte.
    pub min_progress_bytes: usize,
    /// How long a frame or a fragmented message may go without progress
    /// (see [`min_progress_bytes`](Self::min_progress_bytes)): then the
    /// connection is closed (1008) and what it held of the message freed.
    /// So a peer sending a byte now and then, or empty fragments, cannot
    /// hold a message (up to `max_message_bytes`) for ever. Pings between
    /// the fragments of a message do not count as its bytes. A connection
    /// quiet between messages has no timeout, nor one not read for its full
    /// queue (see [`WebSocket::wants_read`]), which counts from when it is
    /// read again.
    pub message_timeout: Duration,
    /// How long a connection may go without a byte from its peer before it
    /// is sent a ping (whatever the server sends it); `None`: never. A peer
    /// gone without a FIN (its host down, a NAT that forgot the
    /// connection) is otherwise never noticed, or only once TCP gives up
    /// resending what it was sent (a quarter of an hour on Linux).
    pub keepalive: Option<Duration>,
    /// How long after that ping a byte (the pong, or anything) must come:
    /// then the connection is dropped as dead.
    pub keepalive_timeout: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_bytes: 1 << 20,
            max_queued_bytes: 256 * 1024,
            send_timeout: Duration::from_secs(60),
            min_progress_bytes: 1024,
            message_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(60)),
            keepalive_timeout: Duration::from_secs(30),
        }
    }
}

/// A complete message: its fragments joined, whatever frames it came in.
///
/// ```
/// use edgepoll::ws::{Message, WebSocket, WsLimits};
/// use edgepoll::ws::frame::write_masked_frame;
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let mut socket = WebSocket::new(WsLimits::default(), now);
/// // A binary message in two fragments: 0x02 begins it, 0x80 ends it.
/// let mut frames = Vec::new();
/// write_masked_frame(&mut frames, 0x02, [7, 7, 7, 7], &[1, 2]);
/// write_masked_frame(&mut frames, 0x80, [7, 7, 7, 7], &[3]);
/// let mut got = Vec::new();
/// socket.receive(&frames, now, |message| match message {
///     Message::Binary(bytes) => got.push(bytes.to_vec()),
///     Message::Text(text) => got.push(text.as_bytes().to_vec()),
/// });
/// assert_eq!(got, [vec![1, 2, 3]]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (checked to be UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// A close status code (RFC 6455 §7.4).
///
/// ```
/// use edgepoll::ws::CloseCode;
/// assert_eq!(CloseCode::TOO_BIG.0, 1009);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: done.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::NORMAL.0, 1000);
    /// ```
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server goes away.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::GOING_AWAY.0, 1001);
    /// ```
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: a protocol error.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::PROTOCOL_ERROR.0, 1002);
    /// ```
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1007: a text message that is not UTF-8.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::INVALID_PAYLOAD.0, 1007);
    /// ```
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was broken.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::POLICY.0, 1008);
    /// ```
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message over [`WsLimits::max_message_bytes`].
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::TOO_BIG.0, 1009);
    /// ```
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1013: try again later (IANA registered): sent when no memory is
    /// free to hold what the peer sent.
    ///
    /// ```
    /// assert_eq!(edgepoll::ws::CloseCode::TRY_AGAIN_LATER.0, 1013);
    /// ```
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether this code may be sent in a close frame (by either side):
    /// RFC 6455's and those IANA registered since (1012–1014: service
    /// restart, try again later, bad gateway), and the ranges for
    /// libraries and applications. 1010 is a client's (RFC 6455 §7.4.1),
    /// but a server answers a close with the code it got, as peers expect.
    fn may_be_sent(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// A close frame is queued: send what is queued, then close the socket.
    Closing,
    /// Drop the connection now (its queue overflowed, or a timeout);
    /// `unsent`: with bytes queued that never went.
    Dropped {
        unsent: bool,
    },
}

/// The server side of one WebSocket connection, free of I/O.
///
/// Feed it what the socket received with [`receive`](Self::receive) (each
/// complete message goes to a callback), send what
/// [`pending_output`](Self::pending_output) holds and report it with
/// [`consume_output`](Self::consume_output). Pings are answered, fragments
/// joined (control frames may come between them), text checked to be UTF-8,
/// client masking enforced, and the close handshake answered. A violation
/// queues a close frame with its code (1002, 1007 or 1009) and the
/// connection finishes once it is sent.
///
/// Driving it from a loop of one's own (the library's `Server` is one):
/// - bytes in: [`receive`](Self::receive) while
///   [`wants_read`](Self::wants_read) (false is backpressure); then send
///   the replies to the messages it handed over, and call
///   [`replies_done`](Self::replies_done), so that a close it raised goes
///   next (write nothing in between: a close whose first byte went out
///   takes no more frames, the replies included);
/// - bytes out: [`pending_output`](Self::pending_output) while
///   [`wants_write`](Self::wants_write), then
///   [`consume_output`](Self::consume_output) with what was sent;
/// - time: [`handle_timeout`](Self::handle_timeout) at
///   [`deadline`](Self::deadline) (stalled messages, the send timeout,
///   keepalive pings); [`release_buffers`](Self::release_buffers) once the
///   connection goes quiet (a large message's buffer is kept for the next
///   otherwise);
/// - the end: [`is_dropped`](Self::is_dropped), close at once (reset if
///   [`left_unsent`](Self::left_unsent)); once
///   [`is_finished`](Self::is_finished) (its close frame is out), shut
///   down the sending side and read what still comes for a while before
///   closing, so that the close frame is not lost to a reset.
///
/// ```
/// use edgepoll::ws::{Message, WebSocket, WsLimits};
/// use std::time::Instant;
///
/// let mut ws = WebSocket::new(WsLimits::default(), Instant::now());
/// // A masked text frame "hi", as a client sends it.
/// let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
/// let mut got = Vec::new();
/// ws.receive(&frame, Instant::now(), |m| {
///     if let Message::Text(text) = m {
///         got.push(text.to_string())
///     }
/// });
/// assert_eq!(got, ["hi"]);
/// assert!(ws.send(Message::Text("hello"), Instant::now()));
/// assert_eq!(ws.pending_output(), b"\x81\x05hello");
/// ```
#[derive(Debug)]
pub struct WebSocket {
    limits: WsLimits,
    input: Vec<u8>,
    output: OutputBuffer,
    /// The fragments of a message so far, and its kind (text or binary).
    message: Vec<u8>,
    message_kind: Option<Opcode>,
    /// The UTF-8 of the text message under way, checked as its bytes come ...
    text: Utf8Stream,
    /// ... and how much of the payload of the frame that begins the input
    /// is unmasked and checked (a text frame split over reads).
    frame_checked: usize,
    state: State,
    close_code: Option<CloseCode>,
    /// The close frame (what is left of it to send), sent once the output
    /// before it is.
    close_frame: Vec<u8>,
    /// The close was the socket's own doing while it read (the answer to
    /// the peer's close, or a violation): frames sent before its first
    /// byte goes out still go ahead of it. The replies to the messages
    /// read before the close are sent after `receive` returns, and RFC
    /// 6455 §5.5.1 lets an endpoint finish what it sends first.
    replies_first: bool,
    /// When the send timeout's clock last started over ...
    last_sent: Instant,
    /// ... and the bytes sent since, short of what counts as progress.
    sent_since: u32,
    /// When the last bytes came in.
    last_received: Instant,
    /// When the message clock (a frame or a fragmented message under way)
    /// last started over ...
    message_progress: Instant,
    /// ... and the bytes of payload received since, short of what counts as
    /// progress (u32s, as `sent_since`: the pair takes one word natively).
    message_moved: u32,
    /// When reading last resumed after a pause for a full queue: a peer
    /// is not timed for bytes it could not send.
    resumed: Instant,
    /// When the keepalive ping was queued, if no byte has come since.
    pinged: Option<Instant>,
    /// The payload (in `input`) of the last ping of the bytes being
    /// received: only it is answered (RFC 6455 §5.5.3 allows it), so a
    /// read full of pings queues one pong, not as many bytes as it read.
    /// (Its start, and its length: at most 125.)
    ping: Option<(u32, u8)>,
    /// The loop's delivery round this queue last took frames in, and how
    /// much it held when that round began (see [`WebSocket::queue_round`]).
    round: (u64, usize),
}

impl WebSocket {
    /// A connection that has just switched to WebSocket at `now`.
    ///
    /// ```
    /// use edgepoll::ws::{WebSocket, WsLimits};
    /// use std::time::{Duration, Instant};
    /// let limits = WsLimits { max_message_bytes: 64 * 1024, keepalive: Some(Duration::from_secs(30)), ..WsLimits::default() };
    /// let ws = WebSocket::new(limits, Instant::now());
    /// assert!(ws.wants_read() && !ws.wants_write());
    /// ```
    pub fn new(limits: WsLimits, now: Instant) -> WebSocket {
        WebSocket {
            limits: WsLimits {
                send_timeout: crate::timer::bounded(limits.send_timeout),
                message_timeout: crate::timer::bounded(limits.message_timeout),
                keepalive: limits.keepalive.map(crate::timer::bounded),
                keepalive_timeout: crate::timer::bounded(limits.keepalive_timeout),
                ..limits
            },
            input: Vec::new(),
            output: OutputBuffer::default(),
            message: Vec::new(),
            message_kind: None,
            text: Utf8Stream::default(),
            frame_checked: 0,
            state: State::Open,
            close_code: None,
            close_frame: Vec::new(),
            replies_first: false,
            last_sent: now,
            sent_since: 0,
            last_received: now,
            message_progress: now,
            message_moved: 0,
            resumed: now,
            pinged: None,
            ping: None,
            round: (0, 0),
        }
    }

    /// Queues bytes to go out before anything else (the 101 response of the
    /// handshake), whatever the queue limit.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// ws.queue_raw(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    /// assert!(ws.send(Message::Text("hi"), now));
    /// assert_eq!(ws.pending_output(), b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi");
    /// ```
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.output.buffer().extend_from_slice(bytes);
    }

    /// Takes in received bytes; calls `on_message` for each message they
    /// complete, in order.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// // A masked binary frame [7, 8], fed one byte at a time.
    /// let frame = [0x82, 0x82, 9, 9, 9, 9, 7 ^ 9, 8 ^ 9];
    /// let mut got = Vec::new();
    /// for byte in frame {
    ///     ws.receive(&[byte], now, |m| got.push(format!("{m:?}")));
    /// }
    /// assert_eq!(got, ["Binary([7, 8])"]);
    /// ```
    pub fn receive(&mut self, data: &[u8], now: Instant, mut on_message: impl FnMut(Message<'_>)) {
        if self.state != State::Open {
            return;
        }
        if !data.is_empty() {
            self.last_received = now;
            self.pinged = None;
        }
        // Nothing under way: what comes now begins it, and its clock.
        let begins = self.input.is_empty() && self.message_kind.is_none();
        let received = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.message_moved = self.message_moved.saturating_add(received);
        // What is kept between reads is at most one frame begun: a header
        // and a payload the message limit bounds.
        let most = (self.limits.max_message_bytes)
            .saturating_add(MAX_HEADER)
            .saturating_add(data.len());
        if reserve_up_to(&mut self.input, data.len(), most).is_err() {
            return self.out_of_memory(now);
        }
        self.input.extend_from_slice(data);
        let mut start = 0;
        while self.state == State::Open {
            match self.next_frame(start, now, &mut on_message) {
                Some(len) => start += len,
                None => break,
            }
        }
        self.answer_ping(now);
        // At least one byte, so that with 0 a ping alone is no progress.
        let least = self.limits.min_progress_bytes.max(1);
        let progress = begins || self.message_moved as usize >= least;
        if progress && !data.is_empty() {
            self.restart_message_clock(now);
        }
        if self.state != State::Open {
            self.input = Vec::new();
        } else if start == self.input.len() {
            self.input.clear();
        } else {
            self.input.drain(..start);
        }
    }

    /// Handles the frame at `start` if all of it is there; returns its length.
    fn next_frame(
        &mut self,
        start: usize,
        now: Instant,
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Option<usize> {
        let header = match read_header(&self.input[start..]) {
            Ok(Some(header)) => header,
            Ok(None) => return None,
            Err(error) => {
                self.fail(CloseCode::PROTOCOL_ERROR, frame_error(error), now);
                return None;
            }
        };
        let mask = match self.check_header(&header) {
            Ok(mask) => mask,
            Err((code, reason)) => {
                self.fail(code, reason, now);
                return None;
            }
        };
        let len = header.header_len + header.payload_len as usize;
        let whole = self.input.len() - start >= len;
        // What has come of the payload.
        let payload = start + header.header_len..(start + len).min(self.input.len());
        let text = match header.opcode {
            Opcode::Text => true,
            Opcode::Continuation => self.message_kind == Some(Opcode::Text),
            _ => false,
        };
        // Text is checked as it comes, so a bad one fails at its first wrong
        // byte, not after a frame of any size (RFC 6455 §8.1). Only a whole
        // message that came in one read is left to be checked where it is
        // handed over, so that it is not checked twice.
        let in_one_read = whole && header.fin && header.opcode == Opcode::Text;
        if text && !(in_one_read && self.frame_checked == 0) {
            let fresh = payload.start + self.frame_checked..payload.end;
            apply_mask(&mut self.input[fresh.clone()], mask, self.frame_checked);
            self.frame_checked = payload.len();
            if !self.text.feed(&self.input[fresh]) {
                self.fail(CloseCode::INVALID_PAYLOAD, "text is not UTF-8", now);
                return None;
            }
        }
        if !whole {
            return None;
        }
        let checked = std::mem::take(&mut self.frame_checked);
        apply_mask(
            &mut self.input[payload.start + checked..payload.end],
            mask,
            checked,
        );
        // Only a message's payload is its progress: not a control frame
        // (see `WsLimits::message_timeout`), nor the headers of empty
        // fragments sent to look busy.
        let framing = match header.opcode.is_control() {
            true => len,
            false => header.header_len,
        };
        self.message_moved = self.message_moved.saturating_sub(framing as u32);
        match header.opcode {
            Opcode::Text | Opcode::Binary => {
                if header.fin {
                    self.restart_message_clock(now);
                    self.text = Utf8Stream::default();
                    // Whole in one frame: handed over from the input buffer.
                    let bytes = &self.input[payload];
                    match header.opcode {
                        Opcode::Text => match std::str::from_utf8(bytes) {
                            Ok(text) => on_message(Message::Text(text)),
                            Err(_) => {
                                self.fail(CloseCode::INVALID_PAYLOAD, "text is not UTF-8", now)
                            }
                        },
                        _ => on_message(Message::Binary(bytes)),
                    }
                } else {
                    self.message_kind = Some(header.opcode);
                    if !self.keep_in_message(payload) {
                        self.out_of_memory(now);
                    }
                }
            }
            Opcode::Continuation => self.continue_message(header.fin, payload, now, on_message),
            // A control frame's payload is at most 125 bytes (`read_header`);
            // a start past u32 (natively, under a message limit over 4 GiB)
            // is answered at once.
            Opcode::Ping => match u32::try_from(payload.start) {
                Ok(at) => self.ping = Some((at, payload.len() as u8)),
                Err(_) => {
                    self.ping = None;
                    self.answer_ping_at(payload, now);
                }
            },
            Opcode::Pong => {}
            Opcode::Close => self.answer_close(payload, now),
        }
        if header.opcode.is_control() && self.message_kind.is_none() {
            // A whole frame and no message under way: what is left in the
            // input is a frame just begun, timed from here (a flood of
            // pings, read across their boundaries, was closed as a message
            // incomplete for too long).
            self.restart_message_clock(now);
        }
        Some(len)
    }

    /// What is wrong in a frame's header alone, said at once, not after its
    /// payload: no mask, a frame out of turn, a message over the limit.
    /// Returns the mask.
    fn check_header(&self, header: &FrameHeader) -> Result<[u8; 4], (CloseCode, &'static str)> {
        let Some(mask) = header.mask else {
            return Err((CloseCode::PROTOCOL_ERROR, "client frames must be masked"));
        };
        let out_of_turn = match header.opcode {
            Opcode::Text | Opcode::Binary if self.message_kind.is_some() => {
                Some("a new message inside a fragmented one")
            }
            Opcode::Continuation if self.message_kind.is_none() => {
                Some("a continuation without a message")
            }
            _ => None,
        };
        if let Some(reason) = out_of_turn {
            return Err((CloseCode::PROTOCOL_ERROR, reason));
        }
        let so_far = if header.opcode == Opcode::Continuation {
            self.message.len()
        } else {
            0
        };
        // No buffer holds half the address space: a limit of usize::MAX
        // must not let `header_len + payload_len` wrap.
        let room = (self.limits.max_message_bytes - so_far.min(self.limits.max_message_bytes))
            .min(usize::MAX / 2);
        // A control frame has its own bound (125 bytes, `read_header`),
        // whatever the messages' limit.
        if !header.opcode.is_control() && header.payload_len > room as u64 {
            return Err((CloseCode::TOO_BIG, "message too big"));
        }
        Ok(mask)
    }

    /// A fragment of the message begun: added to it, and the message
    /// handed over at its last (`fin`).
    /// Appends a fragment's payload (`input[payload]`) to the message
    /// under way, whose buffer grows no larger than the message limit
    /// (`check_header` kept the fragment within it).
    /// `false` (nothing kept) when no memory is free for it.
    fn keep_in_message(&mut self, payload: std::ops::Range<usize>) -> bool {
        let most = self.limits.max_message_bytes;
        if reserve_up_to(&mut self.message, payload.len(), most).is_err() {
            return false;
        }
        self.message.extend_from_slice(&self.input[payload]);
        true
    }

    /// No memory free to hold what the peer sent: closed with 1013 (try
    /// again later), where the allocation's failure would have aborted the
    /// process and every connection with it. What it held goes first, so
    /// that the close frame has room.
    #[cold]
    #[inline(never)]
    fn out_of_memory(&mut self, now: Instant) {
        self.free_message();
        self.input = Vec::new();
        // A ping read before pointed into the input just freed.
        self.ping = None;
        self.close_with(
            CloseCode::TRY_AGAIN_LATER,
            "no memory free to hold the message",
            now,
            true,
        );
    }

    fn continue_message(
        &mut self,
        fin: bool,
        payload: std::ops::Range<usize>,
        now: Instant,
        on_message: &mut impl FnMut(Message<'_>),
    ) {
        let Some(kind) = self.message_kind else {
            return; // refused by `check_header`
        };
        if !self.keep_in_message(payload) {
            return self.out_of_memory(now);
        }
        if fin {
            self.restart_message_clock(now);
            let message = std::mem::take(&mut self.message);
            match kind {
                // Checked as it came; this also finds a code point
                // cut off at the end.
                Opcode::Text => match std::str::from_utf8(&message) {
                    Ok(text) => on_message(Message::Text(text)),
                    Err(_) => self.fail(CloseCode::INVALID_PAYLOAD, "text is not UTF-8", now),
                },
                _ => on_message(Message::Binary(&message)),
            }
            self.message = message;
            self.message.clear();
            if self.message.capacity() > 16 * 1024 {
                self.message = Vec::new();
            }
            self.message_kind = None;
            self.text = Utf8Stream::default();
        }
    }

    /// The peer's close frame: answered with its code, then the connection ends.
    fn answer_close(&mut self, payload: std::ops::Range<usize>, now: Instant) {
        let body = &self.input[payload];
        let code = match body {
            [] => None,
            [_] => return self.fail(CloseCode::PROTOCOL_ERROR, "a close frame of one byte", now),
            [a, b, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*a, *b]));
                if !code.may_be_sent() {
                    return self.fail(
                        CloseCode::PROTOCOL_ERROR,
                        "a close code that may not be sent",
                        now,
                    );
                }
                if std::str::from_utf8(reason).is_err() {
                    return self.fail(
                        CloseCode::INVALID_PAYLOAD,
                        "a close reason that is not UTF-8",
                        now,
                    );
                }
                Some(code)
            }
        };
        // Its code echoed without a reason; none (1005, which may not be
        // sent) for none.
        self.fail(code.unwrap_or(CloseCode(1005)), "", now);
    }

    /// Queues the pong to the last ping received, if any (nothing goes out
    /// once a close is queued).
    fn answer_ping(&mut self, now: Instant) {
        if let Some((at, len)) = self.ping.take() {
            let at = at as usize;
            self.answer_ping_at(at..at + usize::from(len), now);
        }
    }

    fn answer_ping_at(&mut self, payload: std::ops::Range<usize>, now: Instant) {
        if self.state == State::Open {
            let mut pong = Vec::with_capacity(2 + payload.len());
            write_frame(&mut pong, Opcode::Pong, &self.input[payload]);
            self.queue_frame(&pong, now);
        }
    }

    /// Closes for what was read: as [`close`](Self::close), but what is
    /// sent before the close frame starts to go out goes ahead of it.
    fn fail(&mut self, code: CloseCode, reason: &str, now: Instant) {
        // A ping read before is answered ahead of the close.
        self.answer_ping(now);
        self.close_with(code, reason, now, true);
    }

    /// Frees what a message under way held (nothing more is read).
    fn free_message(&mut self) {
        self.message = Vec::new();
        self.message_kind = None;
        self.text = Utf8Stream::default();
        self.frame_checked = 0;
    }

    /// Closes with `code`: the close frame is queued (past the queue limit if
    /// need be) and the connection ends once it is sent. The reason is cut
    /// to the 123 bytes a close frame has room for, at a character's end. A
    /// code that may not go on the wire (1005, 1006, 1015, and those outside
    /// 1000–1003, 1007–1014 and 3000–4999; RFC 6455 §7.4) is left out: the
    /// frame then says nothing, which the peer reads as 1005.
    ///
    /// ```
    /// use edgepoll::ws::{CloseCode, WebSocket, WsLimits};
    /// use std::time::Instant;
    /// let mut ws = WebSocket::new(WsLimits::default(), Instant::now());
    /// ws.close(CloseCode::NORMAL, "bye", Instant::now());
    /// assert_eq!(ws.pending_output(), b"\x88\x05\x03\xe8bye");
    /// let mut ws = WebSocket::new(WsLimits::default(), Instant::now());
    /// ws.close(CloseCode(1006), "gone", Instant::now());
    /// assert_eq!(ws.pending_output(), b"\x88\x00");
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) {
        self.close_with(code, reason, now, false);
    }

    /// Closes; `replies_first`: the close frame waits apart, behind what
    /// is sent until the replies are queued (see `replies_first`), else it
    /// is queued now, after what is.
    fn close_with(&mut self, code: CloseCode, reason: &str, now: Instant, replies_first: bool) {
        if self.state != State::Open {
            return;
        }
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = Vec::with_capacity(2 + cut);
        if code.may_be_sent() {
            payload.extend_from_slice(&code.0.to_be_bytes());
            payload.extend_from_slice(&reason.as_bytes()[..cut]);
        }
        if !self.wants_write() {
            self.restart_send_clock(now);
        }
        match replies_first {
            true => write_frame(&mut self.close_frame, Opcode::Close, &payload),
            false => write_frame(self.output.buffer(), Opcode::Close, &payload),
        }
        self.replies_first = replies_first;
        self.close_code = Some(if code.may_be_sent() {
            code
        } else {
            CloseCode(1005)
        });
        self.state = State::Closing;
        // Nothing more is read: what a message or a frame under way held
        // goes now, not when the lingering connection ends (up to a MiB
        // each, for up to 30 s). A close from within `receive` is the last
        // thing its frame does: nothing reads the input after it.
        self.free_message();
        self.input = Vec::new();
    }

    /// Queues a message; false if the queue is full, and then the connection
    /// is to be dropped ([`is_finished`](Self::is_finished)). True, and
    /// nothing queued, once the socket is closing and takes no more frames
    /// (see [`close_code`](Self::close_code) and
    /// [`replies_done`](Self::replies_done)).
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// assert!(ws.send(Message::Binary(&[1, 2, 3]), now));
    /// assert_eq!(ws.pending_output(), [0x82, 3, 1, 2, 3]); // a server's frames are not masked
    /// ```
    pub fn send(&mut self, message: Message<'_>, now: Instant) -> bool {
        let (opcode, payload) = match message {
            Message::Text(text) => (Opcode::Text, text.as_bytes()),
            Message::Binary(bytes) => (Opcode::Binary, bytes),
        };
        let mut frame = Vec::new();
        write_frame(&mut frame, opcode, payload);
        self.queue_frame(&frame, now)
    }

    /// Queues an encoded frame (one encoding, many receivers: a broadcast);
    /// false if the queue is full, and then the connection is to be dropped.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// use edgepoll::ws::frame::{write_frame, Opcode};
    /// let mut frame = Vec::new();
    /// write_frame(&mut frame, Opcode::Text, b"to everyone"); // encoded once
    /// let mut other = WebSocket::new(WsLimits::default(), now);
    /// assert!(ws.queue_frame(&frame, now) && other.queue_frame(&frame, now));
    /// assert_eq!(ws.pending_output(), other.pending_output());
    /// ```
    pub fn queue_frame(&mut self, frame: &[u8], now: Instant) -> bool {
        self.queue_behind(self.output.len(), frame, None, now)
    }

    /// Queues encoded frames back to back (what the application sent one
    /// connection in the loop's delivery round `round`, or a broadcast to
    /// all): in one copy, or none when they come `shared` (the same bytes
    /// as `frames`, which every receiver's queue then holds by reference:
    /// a large broadcast costs its size once, not once a member). False if
    /// the connection is to be dropped: only what was queued before the
    /// round counts against the limit, for what the round queues has had
    /// no chance to be sent ([`WsLimits::max_queued_bytes`]).
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn queue_round(
        &mut self,
        frames: &[u8],
        shared: Option<&Bytes>,
        round: u64,
        now: Instant,
    ) -> bool {
        if self.round.0 != round {
            self.round = (round, self.output.len());
        }
        self.queue_behind(self.round.1, frames, shared, now)
    }

    /// Queues `frames` behind `queued` bytes that had their chance to be
    /// sent; false if the connection is to be dropped. Frames always go
    /// into a queue under the limit (a message may be larger than the
    /// limit); a queue at it is not being read.
    fn queue_behind(
        &mut self,
        queued: usize,
        frames: &[u8],
        shared: Option<&Bytes>,
        now: Instant,
    ) -> bool {
        match self.state {
            State::Dropped { .. } => return false,
            _ if !self.takes_frames() => return true,
            _ => {}
        }
        if queued != 0 && queued >= self.limits.max_queued_bytes {
            // It does not read: what is queued would never arrive, and more
            // would only grow the server's memory.
            self.drop_output();
            return false;
        }
        if self.output.is_empty() {
            self.restart_send_clock(now);
        }
        match shared {
            Some(shared) => self.output.push_shared(shared.clone()),
            None => self.output.buffer().extend_from_slice(frames),
        }
        true
    }

    /// Whether a frame sent now is queued: while open, and while a close
    /// of the socket's own has not started to go out.
    fn takes_frames(&self) -> bool {
        match self.state {
            State::Open => true,
            // Set only while the close frame waits whole.
            State::Closing => self.replies_first,
            State::Dropped { .. } => false,
        }
    }

    /// What is to be sent, in parts for one vectored send (a
    /// shared broadcast is a part of its own): see
    /// [`pending_output`](Self::pending_output).
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn pending_output_parts(&self) -> crate::http::Parts<'_> {
        match self.output.is_empty() {
            false => self.output.pending_parts(),
            true => crate::http::one_part(&self.close_frame),
        }
    }

    fn drop_output(&mut self) {
        let unsent = self.wants_write();
        self.output = OutputBuffer::default();
        self.close_frame = Vec::new();
        self.state = State::Dropped { unsent };
    }

    /// Bytes waiting to be sent, oldest first. A close the socket raised
    /// while reading comes apart, once all before it is sent (frames sent
    /// meanwhile, the replies to what was read, go ahead of it): send until
    /// [`wants_write`](Self::wants_write) is false.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// ws.send(Message::Text("a"), now);
    /// assert_eq!(ws.pending_output(), b"\x81\x01a");
    /// ```
    pub fn pending_output(&self) -> &[u8] {
        match self.output.is_empty() {
            false => self.output.pending(),
            true => &self.close_frame,
        }
    }

    /// Reports that the first `n` bytes of [`pending_output`](Self::pending_output) were sent.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// ws.send(Message::Text("abc"), now);
    /// ws.consume_output(2, now); // a short write took the frame's header
    /// assert_eq!(ws.pending_output(), b"abc");
    /// ```
    pub fn consume_output(&mut self, n: usize, now: Instant) {
        let counted = self
            .sent_since
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        self.sent_since = counted;
        match self.output.is_empty() {
            false => {
                let paused = !self.wants_read();
                self.output.consume(n);
                if paused && self.wants_read() {
                    self.resumed = now;
                }
            }
            true if n > 0 => {
                // Its close has begun to go out: nothing more goes.
                self.replies_first = false;
                self.close_frame.drain(..n.min(self.close_frame.len()));
            }
            true => {}
        }
        // Taken a byte now and then, the queue is not moving: progress is
        // enough of it sent, or all.
        if n > 0 && (counted as usize >= self.limits.min_progress_bytes || !self.wants_write()) {
            self.restart_send_clock(now);
        }
    }

    /// The send timeout's clock starts over.
    fn restart_send_clock(&mut self, now: Instant) {
        self.last_sent = now;
        self.sent_since = 0;
    }

    /// Whether output other than the close frame waits.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn has_output_before_close(&self) -> bool {
        !self.output.is_empty()
    }

    /// Says that the replies to the messages the last
    /// [`receive`](Self::receive) handed over are queued. A close the socket
    /// raised as it read (its answer to the peer's close, or its own for a
    /// violation) lets frames sent until then go ahead of it, so that those
    /// replies still go (RFC 6455 §5.5.1 lets an endpoint finish what it
    /// sends); from now on none does, and none is taken after it. Call it
    /// after each `receive` and the sends it led to (the library's loop
    /// does): until then, or until the close's first byte goes out, a busy
    /// chat's broadcasts would keep a closing member's close waiting.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// // A masked text frame "hi", then a frame of an unknown opcode (3).
    /// let bytes = [0x81, 0x82, 0, 0, 0, 0, b'h', b'i', 0x83, 0x80, 0, 0, 0, 0];
    /// let mut read = Vec::new();
    /// ws.receive(&bytes, now, |m| read.push(format!("{m:?}")));
    /// assert_eq!(ws.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    /// assert!(ws.send(Message::Text("reply to hi"), now)); // goes first
    /// ws.replies_done();
    /// ws.send(Message::Text("later"), now); // not taken
    /// let reply = b"\x81\x0breply to hi";
    /// let out = ws.pending_output();
    /// // The reply, then the close (1002), and nothing after it.
    /// assert!(out.starts_with(reply) && out[reply.len()..].starts_with(&[0x88]));
    /// assert_eq!(out[reply.len() + 2..][..2], 1002u16.to_be_bytes());
    /// assert!(!out.windows(5).any(|w| w == b"later"));
    /// ```
    pub fn replies_done(&mut self) {
        if std::mem::take(&mut self.replies_first) {
            // Behind the replies, in the same send.
            let frame = std::mem::take(&mut self.close_frame);
            self.output.buffer().extend_from_slice(&frame);
        }
    }

    /// Whether output waits.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// assert!(!ws.wants_write());
    /// ws.send(Message::Text("a"), now);
    /// assert!(ws.wants_write());
    /// ```
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty() || !self.close_frame.is_empty()
    }

    /// Whether input is wanted now: while open, and not while half the
    /// queue limit waits to be sent (a peer that does not read what it is
    /// sent is not read either; its pings' answers would only fill the
    /// queue until it is dropped).
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// assert!(ws.wants_read());
    /// ws.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8], now, |_| {}); // the client closes
    /// assert!(!ws.wants_read());
    /// ```
    pub fn wants_read(&self) -> bool {
        self.state == State::Open
            && (self.output.is_empty() || self.output.len() < self.limits.max_queued_bytes / 2)
    }

    /// Whether input is wanted while `replies` bytes more are on their way
    /// to the queue (the answers to what was just read, delivered after
    /// the read): they count as queued already.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn wants_read_with(&self, replies: usize) -> bool {
        self.wants_read()
            && (replies == 0 || self.output.len() + replies < self.limits.max_queued_bytes / 2)
    }

    /// Whether the connection is over: closed and sent, or dropped.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// ws.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8], now, |_| {});
    /// assert!(!ws.is_finished()); // the answering close frame is still to send
    /// while ws.wants_write() {
    ///     ws.consume_output(ws.pending_output().len(), now);
    /// }
    /// assert!(ws.is_finished() && !ws.is_dropped());
    /// ```
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Open => false,
            State::Closing => !self.wants_write(),
            State::Dropped { .. } => true,
        }
    }

    /// Whether it ended by a queue overflow or a timeout (to be dropped
    /// without lingering).
    ///
    /// ```
    /// use edgepoll::ws::{Message, WebSocket, WsLimits};
    /// use std::time::Instant;
    /// let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits { max_queued_bytes: 16, ..WsLimits::default() }, now);
    /// // A peer that reads nothing: a frame goes in while the queue is under
    /// // the limit (20 bytes, 0 queued), the next finds it full (`send` says so).
    /// assert!(ws.send(Message::Text("more than it reads"), now));
    /// assert!(!ws.send(Message::Text("and more"), now));
    /// assert!(ws.is_finished() && ws.is_dropped());
    /// ```
    pub fn is_dropped(&self) -> bool {
        matches!(self.state, State::Dropped { .. })
    }

    /// Whether it was dropped with bytes queued that never went (its
    /// queue overflowed, or they waited past [`WsLimits::send_timeout`]).
    /// Reset such a socket rather than close it: a close leaves what was
    /// sent before in the kernel, behind the FIN, for as long as the peer
    /// keeps its window shut.
    ///
    /// ```
    /// use edgepoll::ws::{Message, WebSocket, WsLimits};
    /// use std::time::Instant;
    /// let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits { max_queued_bytes: 16, ..WsLimits::default() }, now);
    /// assert!(ws.send(Message::Text("more than it reads"), now));
    /// assert!(!ws.send(Message::Text("and more"), now));
    /// assert!(ws.is_dropped() && ws.left_unsent());
    /// ```
    pub fn left_unsent(&self) -> bool {
        self.state == State::Dropped { unsent: true }
    }

    /// The close code sent or received, once closing (1005 for a close
    /// frame without one).
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// assert_eq!(ws.close_code(), None);
    /// ws.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8], now, |_| {});
    /// assert_eq!(ws.close_code(), Some(CloseCode::NORMAL));
    /// ```
    pub fn close_code(&self) -> Option<CloseCode> {
        self.close_code
    }

    /// When queued bytes will have waited too long, a message begun will
    /// have gone too long without progress, or a quiet peer is to be pinged
    /// or given up (none while none is so).
    ///
    /// ```
    /// use edgepoll::ws::{WebSocket, WsLimits};
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let ws = WebSocket::new(WsLimits { keepalive: Some(Duration::from_secs(30)), ..WsLimits::default() }, now);
    /// // Quiet for 30 s, the peer is pinged.
    /// assert_eq!(ws.deadline(), Some(now + Duration::from_secs(30)));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        [
            self.send_deadline(),
            self.message_deadline(),
            self.keepalive_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When to ping a peer that has sent nothing for the interval (what
    /// the server sends it does not count: the kernel takes it whether the
    /// peer is there or not), or, pinged, to give it up (counted from the
    /// ping). None while output waits: the send timeout watches a peer
    /// then, and one slowly reading a large message is not quiet, nor can
    /// its pong be read past a full queue.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.limits.keepalive?;
        if self.state != State::Open || self.wants_write() {
            return None;
        }
        match self.pinged {
            // Not while its pong could not be read (see `resumed`).
            Some(at) => Some(at.max(self.resumed) + self.limits.keepalive_timeout),
            None => Some(self.last_received + interval),
        }
    }

    fn send_deadline(&self) -> Option<Instant> {
        self.wants_write()
            .then(|| self.last_sent + self.limits.send_timeout)
    }

    /// A frame begun, or a fragmented message, waits for progress (see
    /// [`WsLimits::min_progress_bytes`]): not while the socket is not read
    /// (its queue is full), and counted from when it was read again.
    fn message_deadline(&self) -> Option<Instant> {
        if !self.wants_read() {
            return None;
        }
        let under_way = !self.input.is_empty() || self.message_kind.is_some();
        under_way.then(|| self.message_progress.max(self.resumed) + self.limits.message_timeout)
    }

    /// The message timeout's clock starts over: progress.
    fn restart_message_clock(&mut self, now: Instant) {
        self.message_progress = now;
        self.message_moved = 0;
    }

    /// Drops the connection if its queued bytes waited past their deadline;
    /// closes it (1008), freeing what it held, if a message begun stalled;
    /// pings a peer quiet for [`WsLimits::keepalive`], and drops it if
    /// nothing came back within [`WsLimits::keepalive_timeout`].
    ///
    /// ```
    /// use edgepoll::ws::{WebSocket, WsLimits};
    /// use std::time::{Duration, Instant};
    /// let start = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits { keepalive: Some(Duration::from_secs(30)), ..WsLimits::default() }, start);
    /// ws.handle_timeout(start + Duration::from_secs(30));
    /// assert_eq!(ws.pending_output()[0], 0x89); // a ping
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.send_deadline().is_some_and(|d| now >= d) {
            self.drop_output();
        } else if self.message_deadline().is_some_and(|d| now >= d) {
            self.close(CloseCode::POLICY, "message incomplete for too long", now);
        } else if self.keepalive_deadline().is_some_and(|d| now >= d) {
            match self.pinged {
                // Nothing came back: the peer is gone, and a close frame
                // would not get through either.
                Some(_) => self.drop_output(),
                None => {
                    let mut ping = Vec::with_capacity(2);
                    write_frame(&mut ping, Opcode::Ping, b"");
                    self.pinged = self.queue_frame(&ping, now).then_some(now);
                }
            }
        }
    }

    /// Frees buffers that hold nothing (an idle connection then costs only
    /// this struct).
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// ws.send(Message::Text("a"), now);
    /// ws.consume_output(3, now);
    /// ws.release_buffers();
    /// assert_eq!(ws.buffered_capacity(), 0);
    /// ```
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() {
            self.input = Vec::new();
        }
        if self.message_kind.is_none() {
            self.message = Vec::new();
        }
        if !self.wants_write() {
            self.close_frame = Vec::new();
        }
        self.output.release();
    }

    /// Bytes of memory the buffers hold.
    ///
    /// ```
    /// # use edgepoll::ws::{CloseCode, Message, WebSocket, WsLimits};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// let mut ws = WebSocket::new(WsLimits::default(), now);
    /// assert_eq!(ws.buffered_capacity(), 0);
    /// ws.send(Message::Binary(&[0; 1000]), now);
    /// assert!(ws.buffered_capacity() >= 1004);
    /// ```
    pub fn buffered_capacity(&self) -> usize {
        self.input.capacity()
            + self.message.capacity()
            + self.output.capacity()
            + self.close_frame.capacity()
    }
}

fn frame_error(error: FrameError) -> &'static str {
    match error {
        FrameError::ReservedBits => "reserved bits set",
        FrameError::UnknownOpcode => "unknown opcode",
        FrameError::BadControlFrame => "control frame fragmented or over 125 bytes",
        FrameError::BadLength => "frame length out of range or not in its shortest form",
    }
}
