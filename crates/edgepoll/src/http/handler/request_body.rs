//! A request's body: read whole, or streamed to the service piece by
//! piece, paused, and broken off.

use super::streamed::stream_in;
use super::{plain_answer, Framing, Handler, Incident, Refusal, State, FRAMING_KEPT_UP_TO};
use crate::http::body::{BodyError, Incoming};
use crate::http::chunked::ChunkedError;
use crate::http::input::InputBuffer;
use crate::http::response::KeepAlive;
use crate::http::{Dispatch, RequestId, StatusCode};
use std::time::Instant;

impl Handler {
    /// Hands the service the body pieces that arrived; `Ok(true)` when the
    /// body is complete (the next request may follow).
    pub(super) fn read_stream<S: Dispatch>(
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
    pub(super) fn fail_stream(&mut self, id: RequestId, refusal: Refusal, now: Instant) {
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
        let head_only = self.waiting[at].head_only;
        plain_answer(status, reason).encode(&mut encoded, KeepAlive::No, head_only);
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
    /// resumes. A request still paused and unanswered at its respond
    /// timeout gets its 504, and the connection closes after it.
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
    pub(super) fn read_body(&mut self) -> Result<bool, Refusal> {
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
    pub(super) fn body_is_complete(&self) -> bool {
        match &self.state {
            State::Body(head) => match &head.framing {
                Framing::Length(n) => self.input.len() >= head.len + n,
                Framing::Chunked(decoder) => decoder.is_done(),
                Framing::Oversized(_) => false,
            },
            _ => false,
        }
    }

    /// After dispatching a streamed request: its body is read next, unless
    /// the response already closed the connection (then the body ends
    /// unread, and the service is told so).
    #[inline]
    pub(super) fn stream_body<S: Dispatch>(
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
}

pub(super) fn chunked_refusal(error: ChunkedError) -> Refusal {
    let status = match error {
        ChunkedError::BodyTooLarge => StatusCode::CONTENT_TOO_LARGE,
        ChunkedError::TrailersTooLarge => StatusCode::HEADER_FIELDS_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal(status, error.as_str())
}
