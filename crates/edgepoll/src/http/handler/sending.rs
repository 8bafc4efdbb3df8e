//! The output side: responses and pieces queued, the bytes the socket is
//! given, and what it reports sent.

use super::{Handler, Hold, State};
use crate::http::output::KEEP_CAPACITY;
use crate::http::response::KeepAlive;
use crate::http::{Response, StatusCode};
use std::ops::Range;
use std::time::Instant;

impl Handler {
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

    /// The first parts of the pending output, in order, up to
    /// [`MAX_SEND_PARTS`](crate::http::MAX_SEND_PARTS) (all but the first
    /// empty unless a large body waits behind its head, which may be all
    /// sent, or a streamed body's pieces of 16 KiB or more do, each chunk
    /// framed around its data; shorter ones are copied into the parts
    /// around them), for one vectored send: a head, or a chunk's CRLF, or a
    /// body's end, sent apart would wait on Nagle's algorithm.
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
    /// let [head, rest, ..] = conn.pending_output_parts();
    /// assert!(head.ends_with(b"Content-Length: 100000\r\n\r\n"));
    /// assert_eq!(rest, &body[..]);
    /// ```
    #[inline]
    pub fn pending_output_parts(&self) -> [&[u8]; crate::http::MAX_SEND_PARTS] {
        self.output.pending_parts()
    }

    /// The pending output if it is one part (no body lent or streamed
    /// behind it): what a send takes nearly always, known for less than
    /// [`pending_output_parts`](Self::pending_output_parts).
    #[inline]
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn lone_output(&self) -> Option<&[u8]> {
        self.output.lone()
    }

    /// The service gives output (a response, a piece of one): the client's
    /// time to read starts now if it had nothing to read, and goes on
    /// otherwise. Progress is bytes moved, not bytes given: a client that
    /// reads nothing is dropped at the idle timeout however often the
    /// service writes meanwhile (each piece had put it off, and the output
    /// grew without end).
    #[inline]
    pub(super) fn service_output(&mut self, now: Instant) {
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
        // The send took all the parts it was given, and more is pending:
        // it was cut by `MAX_SEND_PARTS`, not by a full socket.
        let parts_cut = n < self.output.len() && n == self.output.parts_len();
        let all_sent = self.output.consume(n);
        // All sent (nearly every write) is progress; taken in driblets (the
        // client reading that little), output counts once enough has gone.
        if n > 0 {
            match all_sent && matches!(self.state, State::Idle) {
                true => {
                    // What a hold released has all gone: the next output
                    // may be held.
                    self.hold = Hold::Open;
                    self.restart_clock(now)
                }
                false => self.moved_out(n, all_sent || parts_cut, all_sent, now),
            }
        }
    }

    /// `n` bytes of output sent, not all of it between requests (out of
    /// line: nearly every write sends all, the next request yet to come);
    /// the hold opens once all that was offered has gone.
    #[cold]
    #[inline(never)]
    fn moved_out(&mut self, n: usize, took_all: bool, all_sent: bool, now: Instant) {
        // Output a send left with the socket full was released, held or
        // not: it waits on the socket, not on a hold. What a send left
        // when it took all its parts may be held like any other (sent at
        // once, the rest of a body cut after its eighth piece went alone:
        // a chunk's CRLF, 2 bytes, then the rest after Nagle's wait), but
        // not a 100 or 103 still to go.
        self.hold = match (all_sent, self.hold) {
            (true, _) => Hold::Open,
            (false, Hold::Interim) => Hold::Interim,
            (false, _) if took_all => Hold::Open,
            (false, _) => Hold::Sent,
        };
        // While a body comes, its bytes alone count.
        if self.body_coming() {
            return;
        }
        match all_sent {
            true => self.restart_clock(now),
            false => self.moved(n, now),
        }
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

    /// Moves ready responses at the front of the queue into the output, up
    /// to a streamed one that has not ended (its pieces go out as they come).
    pub(super) fn flush_ready(&mut self) {
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
                    for piece in stream.held.take() {
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

    /// Where `body` lies in the first `consumed` input bytes, if it is large
    /// and lies there: such a body is sent from the input buffer, not copied.
    #[inline(never)]
    pub(super) fn lendable(&self, body: &[u8], consumed: usize) -> Option<Range<usize>> {
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
    pub(super) fn lend_input(&mut self, consumed: usize, body: Range<usize>) {
        let (buffer, start) = self.input.take_front(consumed);
        self.output
            .lend(buffer, start + body.start..start + body.end);
    }
}

/// Encodes a response that does not go out at once: it cannot switch
/// protocols (a 101 belongs to the request whose response is sent at once),
/// nor open a tunnel (`connect`: see [`opens_tunnel`]).
pub(super) fn encode_queued(
    response: &Response<'_>,
    out: &mut Vec<u8>,
    allowed: KeepAlive,
    head_only: bool,
    connect: bool,
) -> bool {
    let why: &[u8] = match response.status() {
        StatusCode::SWITCHING_PROTOCOLS if !response.names_protocol() => UNNAMED_SWITCH,
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
pub(super) fn opens_tunnel(response: &Response<'_>, connect: bool) -> bool {
    connect && response.status().is_success()
}

/// A 101 without an `Upgrade` field that names a protocol (see
/// `Response::names_protocol`).
pub(super) const UNNAMED_SWITCH: &[u8] =
    b"a response switched protocols without an Upgrade field naming the protocol\n";

pub(super) const TUNNEL_REFUSED: &[u8] =
    b"a 2xx to CONNECT would open a tunnel, which this server never does\n";
