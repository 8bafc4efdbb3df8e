//! Whether the next request may be read and taken: room for its
//! response, and the order pipelined requests must keep.

use super::{Handler, MethodKind, State, Waiting};
use crate::http::head::MAX_METHOD_BYTES;

impl Handler {
    /// Whether the connection wants more input now (false once switched to
    /// another protocol, while too much output waits (backpressure), and
    /// while closing with nothing owed). Closing with responses still to
    /// give, input is read and dropped; while the next request waits for
    /// the service's answers to those before it (as many wait as
    /// `Limits::max_waiting` allows, or the order of methods holds it back)
    /// or an offer to switch waits for its answer, a head's worth
    /// (`Limits::max_head_bytes`) is read and kept, and counts as no
    /// progress: so that a client that leaves is noticed and its requests
    /// abandoned, not at their respond timeout.
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
            _ => self.has_room() || self.waits_for_answers(),
        }
    }

    /// No room only for want of the service's answers (what waits to be
    /// sent is within the output limit), and less than a head read ahead:
    /// read on (see
    /// [`wants_read`](Self::wants_read)). Out of line: asked only when
    /// there is no room.
    #[inline(never)]
    fn waits_for_answers(&self) -> bool {
        self.input.len() < self.limits.max_head_bytes
            && !self.waiting.is_empty()
            && self.queued_fit()
    }

    /// Whether bytes received now would only be kept: read ahead for want of
    /// room (see [`wants_read`](Self::wants_read)), not taken, and no
    /// progress of the client's (a client that reads nothing must not hold
    /// its connection by trickling them). Only while requests wait: asked
    /// on every read, and nearly always none does.
    #[inline]
    pub(super) fn reads_ahead(&self) -> bool {
        !self.waiting.is_empty() && !self.has_room() && !matches!(self.state, State::Stream { .. })
    }

    /// Room for another response: not too much output queued, not too many
    /// requests waiting for theirs.
    #[inline]
    pub(super) fn has_room(&self) -> bool {
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
    /// Held back, a request is read on only up to a head's size (see
    /// [`wants_read`](Self::wants_read)), so that a client that leaves is
    /// still noticed. Nor after a response that closes the connection.
    pub(super) fn order_allows(&self) -> bool {
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
}

/// The most bytes of empty lines before a request line read ahead behind
/// requests waiting for their responses (see `order_allows`).
const MAX_LINE_END_BYTES_AHEAD: usize = 8;

/// Whether a request of `method` is safe (RFC 9110 §9.2.1): it asks for
/// no change on the server, so it may be processed beside others.
pub(super) fn is_safe_method(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE")
}
