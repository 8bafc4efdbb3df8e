//! Deadlines: when the loop must look again, and what a passed one does
//! (408, 504, a quiet close), and buffers freed on an idle connection.

use super::{is_stray_line_end, plain_answer, Handler, Incident, Refusal, State};
use crate::http::body::BodyError;
use crate::http::input::InputBuffer;
use crate::http::{RequestId, StatusCode};
use std::time::Instant;

impl Handler {
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
    pub(super) fn body_awaited(&self) -> Option<RequestId> {
        match self.state {
            State::Stream { id, .. } if self.body_paused != Some(id) => Some(id),
            _ => None,
        }
    }

    /// Acts on a passed deadline: 408 for a request that stalled, a close for an
    /// idle connection or a peer that does not read (whose requests still
    /// owed an answer go to [`take_abandoned`](Self::take_abandoned)), 504
    /// for a deferred request past its respond timeout. Does nothing before
    /// the deadline.
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
            // Output still there after an idle timeout: the client stopped
            // reading, whatever its body does (the loop stopped reading it
            // for that). Dropped now: a 408 would wait behind what it does
            // not read, for a second idle timeout.
            State::Body(_) | State::Stream { .. } if !self.output.is_empty() => {
                if let State::Stream { id, .. } = self.state {
                    self.broken_body = Some((id, BodyError::Stalled));
                }
                self.drop_non_reader();
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
            | State::Closed => self.drop_non_reader(),
        }
    }

    /// Ends the connection at an idle timeout, saying so if output was left
    /// unread.
    fn drop_non_reader(&mut self) {
        if !self.output.is_empty() {
            self.incident = Some(Incident {
                status: None,
                reason: "peer stopped reading; connection dropped at the idle timeout",
            });
        }
        self.state = State::Closed;
        // Requests owed then will not be answered: reported as abandoned,
        // as at the client's own close.
        self.abandon_all();
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

    /// An idle keep-alive connection at its idle timeout: closed quietly,
    /// with no incident to log. It is how every kept-alive connection a
    /// client pools (a browser's, a proxy's) ends: a line each would flood
    /// the log, as a client's close between requests would.
    fn close_idle(&mut self) {
        self.state = State::Closed;
    }

    /// 504 for every deferred request past its respond timeout.
    fn time_out_waiting(&mut self, now: Instant) {
        const REASON: &str = "no response within the respond timeout";
        let late = self.body_awaited();
        // A paused body's request given up on: nothing would resume its
        // body (its service is told it is abandoned), which would hold the
        // connection unread and untimed. It closes after its 504, as a
        // body that broke off does.
        let paused = match self.state {
            State::Stream { id, .. } if self.body_paused == Some(id) => Some(id),
            _ => None,
        };
        for at in 0..self.waiting.len() {
            let allowed = self.keep_alive_at(at);
            let slot = &mut self.waiting[at];
            if !slot.is_pending() || now < slot.deadline || Some(slot.id) == late {
                continue;
            }
            if let Some(id) = paused.filter(|&id| id == slot.id) {
                self.body_paused = None;
                let refusal = Refusal(StatusCode::GATEWAY_TIMEOUT, REASON);
                self.fail_stream(id, refusal, now);
                // The last slot: nothing after a body still coming is read.
                break;
            }
            let mut encoded = Vec::new();
            let keep_alive = plain_answer(StatusCode::GATEWAY_TIMEOUT, REASON).encode(
                &mut encoded,
                allowed,
                slot.head_only,
            );
            slot.ready = Some((encoded, keep_alive));
            self.abandoned.push(slot.id);
            self.incident = Some(Incident {
                status: Some(StatusCode::GATEWAY_TIMEOUT),
                reason: REASON,
            });
            self.restart_clock(now);
        }
        self.flush_ready();
    }
}
