//! Responses given later: each waits in its request's place, in order,
//! and the connection's keep-alive follows the one that closes it.

use super::dispatch::keep_alive_for;
use super::sending::encode_queued;
use super::{Gone, Handler, State};
use crate::http::body::BodyError;
use crate::http::input::InputBuffer;
use crate::http::response::KeepAlive;
use crate::http::{RequestId, Response, StatusCode, Version};
use std::time::Instant;

impl Handler {
    /// Answers the request `id` that the service deferred
    /// ([`Reply::Later`](crate::http::Reply::Later)). The response leaves once those before it have;
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
    pub(super) fn close_behind_request(&mut self, id: RequestId) {
        if let Some(at) = self.waiting.iter().position(|w| w.id == id) {
            self.close_behind(at);
        }
    }

    /// [`close_behind_request`](Self::close_behind_request) for the request
    /// at `at`.
    #[cold]
    pub(super) fn close_behind(&mut self, at: usize) {
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
    pub(super) fn pending_slot(&self, id: RequestId) -> Result<(usize, KeepAlive), Gone> {
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
    pub(super) fn keep_alive_at(&self, at: usize) -> KeepAlive {
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
        // A hint goes at once, not held for the answer it comes before.
        self.hold = super::Hold::Interim;
        Ok(true)
    }

    /// Answers the deferred request `id`, one that offered to switch
    /// protocols (a bodiless HTTP/1.1 request whose `Connection` names its
    /// `Upgrade` field), with `head`, a 101: once it is sent (after the
    /// responses before it), the connection is [upgraded](Self::is_upgraded).
    /// A request that made no such offer, or a head that is not a 101, is
    /// refused with `Gone` and nothing changes. A 101 without an `Upgrade`
    /// field naming the protocol (RFC 9110 §7.8) is answered by a 500
    /// instead, as it would be from [`Service::call`](crate::http::Service::call).
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
        if !head.names_protocol() {
            // Refused as a synchronous switch is: a 500, and HTTP goes on.
            return self.respond(id, head, now);
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

    /// Requests still owed an answer (deferred, or a streamed response not
    /// ended) that no longer wait for it (a 504
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

    /// Gives up every request (the connection is going away); those still
    /// owed an answer are reported by [`take_abandoned`](Self::take_abandoned).
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

    /// The connection is gone (reset, or closed by the loop): every request
    /// still owed an answer is given up, reported by
    /// [`take_abandoned`](Self::take_abandoned), and a streamed request body
    /// still being read broke off, to be told to the service through
    /// [`take_broken_body`](Self::take_broken_body). A body whose end the
    /// service was already told of is not told again. This is the whole of
    /// a connection's tear-down: call it, then take both reports.
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
    /// // Its answer is owed no more.
    /// assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
    /// ```
    pub fn lose_connection(&mut self) {
        if let State::Stream { id, .. } = self.state {
            self.broken_body.get_or_insert((id, BodyError::Truncated));
            self.state = State::Closed;
        }
        self.abandon_all();
    }

    /// The streamed request body that broke off where the handler could not
    /// tell the service ([`Dispatch::body_end`](crate::http::Dispatch::body_end)) itself: at
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

    /// A response said the connection closes: requests after it are dropped.
    pub(super) fn close_after_response(&mut self) {
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
    pub(super) fn close_after_later_response(&mut self) {
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
}
