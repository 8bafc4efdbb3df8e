//! Handing a request to the service, and moving on to the next.

use super::pipelining::is_safe_method;
use super::sending::{encode_queued, opens_tunnel, TUNNEL_REFUSED, UNNAMED_SWITCH};
use super::{declared_length, Framing, Handler, MethodKind, State, Waiting};
use crate::http::body::Incoming;
use crate::http::input::InputBuffer;
use crate::http::output::KEEP_CAPACITY;
use crate::http::response::KeepAlive;
use crate::http::{Dispatch, Reply, Request, RequestId, Response, StatusCode, Version};
use std::ops::Range;
use std::time::Instant;

impl Handler {
    pub(super) fn dispatch<S: Dispatch>(&mut self, service: &mut S, now: Instant) {
        self.dispatch_with(service, now, false);
    }

    /// Calls the service for the request whose head (and, unless `streamed`,
    /// body) is in the input; a streamed body follows in the `Stream` state.
    pub(super) fn dispatch_with<S: Dispatch>(
        &mut self,
        service: &mut S,
        now: Instant,
        streamed: bool,
    ) {
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
        let upgraded = switch && offers_upgrade && response.names_protocol();
        // Only a service that takes CONNECT can answer one (a test the
        // compiler folds away for most), which closes its connection: only
        // then is the method read.
        let misfit = (switch && !upgraded)
            || (service.handles_connect()
                && allowed == KeepAlive::No
                && opens_tunnel(response, self.head_is_connect()));
        // The size test first: most bodies are small, and the rest of the
        // lending stays out of line. Not the body of a misfit, or of a
        // response in a coding it names (see `Response`), each answered by
        // a 500 of its own (lent, it went out after that 500).
        let lent = match response.body_bytes().len() > KEEP_CAPACITY
            && !head_only
            && !misfit
            && !response.is_coded()
            && !response.status().forbids_body()
        {
            true => self.lendable(response.body_bytes(), consumed),
            false => None,
        };
        let keep_alive = match misfit {
            true => {
                let why: &[u8] = match (switch, offers_upgrade) {
                    (true, true) => UNNAMED_SWITCH,
                    (true, false) => {
                        b"a response switched protocols for a request that offered no switch\n"
                    }
                    (false, _) => TUNNEL_REFUSED,
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

    /// After a request of `consumed` bytes was dispatched: on to the next
    /// one, or closing.
    #[inline]
    pub(super) fn next_request(&mut self, keep_alive: bool, consumed: usize, now: Instant) {
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
            self.state = State::head_from(now);
            if self.draining {
                // Only line ends after it: no request begun.
                self.finish_if_drained();
            }
        }
    }
}

/// The next request's id (a field of its own, so that it can be taken while
/// the parsed head is borrowed).
#[inline]
pub(super) fn take_id(next_id: &mut u64) -> RequestId {
    let id = RequestId(*next_id);
    *next_id += 1;
    id
}

/// What the connection allows a response with `keep_alive` from its request.
#[inline]
pub(super) fn keep_alive_for(keep_alive: bool, version: Version) -> KeepAlive {
    match (keep_alive, version) {
        (false, _) => KeepAlive::No,
        (true, Version::Http10) => KeepAlive::Http10,
        (true, Version::Http11) => KeepAlive::Http11,
    }
}
