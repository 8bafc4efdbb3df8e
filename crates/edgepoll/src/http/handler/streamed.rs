//! Responses whose body the service gives in pieces: queued behind their
//! head, bounded by a backlog, ended or cut.

use super::sending::{encode_queued, opens_tunnel};
use super::{Gone, Handler, StreamError, Streamed, Waiting};
use crate::held_pieces::HeldPieces;
use crate::http::body::{BodyError, Outgoing};
use crate::http::{RequestId, Response, StatusCode, Version};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

impl Handler {
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
        let (keep_alive, framing, refused, at_front) = match head.status() {
            // Refused as a whole response is (a 500): no body follows.
            StatusCode::SWITCHING_PROTOCOLS => {
                let keep_alive = encode_queued(&head, &mut encoded, allowed, slot.head_only, false);
                (keep_alive, Outgoing::Length(0), true, false)
            }
            // First in the queue, as nearly always: the head goes straight
            // into the output, where `flush_ready` would copy it next.
            _ => {
                let at_front = at == 0;
                let out = match at_front {
                    true => self.output.buffer(),
                    false => &mut encoded,
                };
                let head = head.encode_streamed(out, allowed, slot.head_only, length, chunked_ok);
                (head.stays_open, head.framing, head.refused, at_front)
            }
        };
        // A head that cannot start a streamed body (a switch, an interim
        // status, a transfer coding not applied) went out as a 500 whose
        // body is complete: nothing of the service's is awaited.
        if !keep_alive {
            self.close_behind(at);
        }
        self.waiting[at].stream = Some(Box::new(Streamed {
            head: encoded,
            held: HeldPieces::default(),
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
    ///     conn.send_body(id, piece.into(), now).unwrap(); // a `bytes::Bytes` (shared from 16 KiB, copied under)
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
                let left = remaining.saturating_sub(stream.held.len() as u64);
                if len > left {
                    return Err(StreamError::Body(BodyError::TooLong));
                }
            }
            stream.held.push(piece);
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
            Outgoing::Length(remaining) => *remaining > stream.held.len() as u64,
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

    /// Bytes queued on the connection and not yet sent, up to the streamed
    /// response to `id`: the output (its own head and pieces, or what goes
    /// before it), and for a response pipelined behind others the pieces
    /// held for those ahead of it too. What a service that produces a body
    /// watches to stay within its memory, which is then one budget per
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
        // The pieces of streamed responses queued behind the output, ahead
        // of this one: none of it can leave before them.
        let mut ahead = 0;
        for waiting in &self.waiting {
            let held = match &waiting.stream {
                Some(stream) if !stream.at_front => stream.held.len(),
                _ => 0,
            };
            if waiting.id == id {
                return match &waiting.stream {
                    // To HEAD nothing is queued, whatever else the output holds.
                    Some(stream) if stream.framing != Outgoing::Discard => {
                        self.output.len() + ahead + held
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

    /// Whether the request `id` is still the connection's: unanswered, or
    /// answered with a response not yet all handed to the output (a stream
    /// not ended, or one queued behind another). Once not, the connection
    /// is done with it, and may be serving other requests.
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
    /// assert!(conn.holds(id)); // streaming
    /// conn.end_body(id, now).unwrap();
    /// assert!(!conn.holds(id)); // all in the output: done with it
    /// ```
    pub fn holds(&self, id: RequestId) -> bool {
        self.waiting.iter().any(|w| w.id == id)
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
}

/// The unfinished streamed response to `id`.
pub(super) fn stream_in(
    waiting: &mut VecDeque<Waiting>,
    id: RequestId,
) -> Result<&mut Streamed, StreamError> {
    match waiting.iter_mut().find(|w| w.id == id) {
        Some(Waiting {
            stream: Some(stream),
            ..
        }) if !stream.ended => Ok(stream),
        _ => Err(StreamError::Gone),
    }
}
