//! One outbound HTTP/1.1 connection, free of I/O: a request goes out (its
//! body whole, or streamed in pieces), its response comes in (whole, or its
//! head and then the pieces of its body), and the connection says whether it
//! can carry the next.

use crate::http::{
    BodyError, Incoming, Outgoing, OutputBuffer, ParsedResponse, ResponseError, ResponseParser,
    StatusCode,
};
use bytes::Bytes;

/// What an exchange produced, in order.
#[derive(Debug, PartialEq)]
pub(crate) enum ClientEvent {
    /// An interim response (`103 Early Hints`, say) before the final one.
    Interim(ParsedResponse),
    /// The response, whole; or, when streaming, its head (an empty body),
    /// with the body's pieces to follow. An error ends the exchange.
    Response(Result<ParsedResponse, ResponseError>),
    /// A piece of a streamed response body.
    Body(Bytes),
    /// The streamed response body is complete, or broke off.
    End(Result<(), BodyError>),
}

#[derive(Debug)]
enum State {
    /// Connected (or connecting), no exchange.
    Idle,
    /// Sending a request and reading its response (boxed: an idle pooled
    /// connection keeps only the small state).
    Busy(Box<Busy>),
    /// A 101 answered the request's offer to switch protocols: the
    /// connection is no longer HTTP's. Holds what came after the 101.
    Switched(Vec<u8>),
}

#[derive(Debug)]
struct Busy {
    output: OutputBuffer,
    /// How the request body's pieces are framed, while it is streamed.
    body_out: Option<Outgoing>,
    /// Until the response head is in.
    parser: ResponseParser,
    /// Once a streamed response's head is in: its body.
    body_in: Option<(Incoming, Vec<u8>)>,
    keep_alive: bool,
    /// The request offers to switch protocols: a 101 is its answer.
    upgrade: bool,
}

/// The client side of one connection: feed it the server's bytes, send what
/// [`pending_output`](Self::pending_output) holds (tested below).
#[derive(Debug)]
pub(crate) struct ClientConnection {
    state: State,
    /// Exchanges completed on this connection.
    completed: u32,
    /// Whether the last response left the connection reusable.
    reusable: bool,
    /// Whether the exchange under way had an interim response, kept or
    /// not: its request was read.
    heard_interim: bool,
    /// Whether a layer below (TLS) still holds output taken from here, as
    /// it said before its latest plaintext.
    unsent_below: bool,
}

impl Default for ClientConnection {
    fn default() -> Self {
        ClientConnection {
            state: State::Idle,
            completed: 0,
            reusable: true,
            heard_interim: false,
            unsent_below: false,
        }
    }
}

impl ClientConnection {
    /// Starts an exchange: `request` is the encoded request (head, and its
    /// whole body unless `body_out` says how the pieces to come are framed);
    /// `streams` hands the response over as head and pieces.
    pub(crate) fn start(
        &mut self,
        request: Vec<u8>,
        body_out: Option<Outgoing>,
        to_head: bool,
        streams: bool,
        max_body: usize,
        upgrade: bool,
    ) {
        let mut output = OutputBuffer::default();
        *output.buffer() = request;
        self.heard_interim = false;
        self.state = State::Busy(Box::new(Busy {
            output,
            body_out,
            parser: match streams {
                true => ResponseParser::streaming(to_head),
                false => ResponseParser::new(to_head).with_max_body(max_body),
            },
            body_in: None,
            keep_alive: false,
            upgrade,
        }));
    }

    /// After a 101: the bytes of the new protocol that came with it, or
    /// after it. `None` unless the connection switched.
    pub(crate) fn take_switched(&mut self) -> Option<Vec<u8>> {
        match &mut self.state {
            State::Switched(rest) => Some(std::mem::take(rest)),
            _ => None,
        }
    }

    /// What a layer below (TLS) says before handing on plaintext: whether
    /// it still holds output taken from here (see `finish`).
    pub(crate) fn set_unsent_below(&mut self, unsent: bool) {
        self.unsent_below = unsent;
    }

    /// Whether the latest exchange's server sent an interim response
    /// (`100 Continue` too) before its final one: it read the request.
    pub(crate) fn heard_interim(&self) -> bool {
        self.heard_interim
    }

    /// Whether a 101 switched the connection to another protocol.
    pub(crate) fn is_switched(&self) -> bool {
        matches!(self.state, State::Switched(_))
    }

    /// Whether no exchange is under way.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Whether an earlier exchange completed on this connection: then a
    /// close before any response byte may just be the server's idle timeout
    /// racing the request, and the request may go again on a new connection.
    pub(crate) fn was_reused(&self) -> bool {
        self.completed > 0
    }

    /// Whether the connection can carry another exchange once idle.
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Queues a piece of the streamed request body.
    pub(crate) fn send_body(&mut self, piece: Bytes) -> Result<(), BodyError> {
        match &mut self.state {
            State::Busy(busy) => match &mut busy.body_out {
                Some(framing) => framing.push(piece, &mut busy.output),
                None => Err(BodyError::TooLong),
            },
            _ => Err(BodyError::TooLong),
        }
    }

    /// Ends the streamed request body.
    pub(crate) fn end_body(&mut self) -> Result<(), BodyError> {
        match &mut self.state {
            State::Busy(busy) => match busy.body_out.take() {
                Some(mut framing) => framing.finish(&mut busy.output),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Whether the whole request is out and its response is awaited.
    pub(crate) fn request_sent(&self) -> bool {
        match &self.state {
            State::Busy(busy) => busy.output.is_empty() && busy.body_out.is_none(),
            _ => false,
        }
    }

    /// Whether all of the request given so far is out and the rest of a
    /// streamed body is still to come from its source: the wait is the
    /// source's, not the server's.
    pub(crate) fn waits_for_body(&self) -> bool {
        match &self.state {
            State::Busy(busy) => busy.output.is_empty() && busy.body_out.is_some(),
            _ => false,
        }
    }

    /// Request bytes queued and not yet sent (a sink's backlog).
    pub(crate) fn backlog(&self) -> usize {
        match &self.state {
            State::Busy(busy) => busy.output.len(),
            _ => 0,
        }
    }

    pub(crate) fn pending_output(&self) -> crate::http::Parts<'_> {
        match &self.state {
            State::Busy(busy) => busy.output.pending_parts(),
            _ => crate::http::one_part(&[]),
        }
    }

    pub(crate) fn consume_output(&mut self, n: usize) {
        if let State::Busy(busy) = &mut self.state {
            busy.output.consume(n);
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        match &self.state {
            State::Busy(busy) => !busy.output.is_empty(),
            _ => false,
        }
    }

    /// Ends the exchange, once its response is complete (`ok`) or not, and
    /// settles whether the connection may carry another: only if the
    /// response allows it (`reusable`) and the whole request went out.
    fn finish(&mut self, ok: bool, reusable: bool) {
        let all_sent = match &self.state {
            // A response that came before the whole request was sent leaves
            // the request's tail unsent: the connection cannot go on.
            State::Busy(busy) => {
                busy.output.is_empty() && busy.body_out.is_none() && !self.unsent_below
            }
            _ => false,
        };
        self.reusable &= ok && reusable && all_sent;
        self.completed += 1;
        self.state = State::Idle;
    }

    /// Takes in the server's bytes; what they complete goes to `events`.
    /// Bytes while idle make the connection unusable (a server may not send
    /// unasked).
    pub(crate) fn receive(&mut self, data: &[u8], events: &mut Vec<ClientEvent>) {
        let busy = match &mut self.state {
            State::Busy(busy) => busy,
            State::Switched(rest) => return rest.extend_from_slice(data),
            // (Nothing is nothing: no byte came unasked.)
            State::Idle => {
                self.reusable &= data.is_empty();
                return;
            }
        };
        if let Some((_, buffered)) = &mut busy.body_in {
            buffered.extend_from_slice(data);
            return self.read_body(events);
        }
        let fed = busy.parser.feed(data);
        self.heard_interim |= busy.parser.heard_interim();
        while let Some(interim) = busy.parser.take_interim() {
            events.push(ClientEvent::Interim(interim));
        }
        match fed {
            Ok(None) => {}
            Ok(Some(response)) if response.status == StatusCode::SWITCHING_PROTOCOLS => {
                let rest = busy.parser.take_stream().map(|(_, _, rest)| rest);
                // What is still to send of the request would go out into
                // the new protocol.
                let all_sent =
                    busy.output.is_empty() && busy.body_out.is_none() && !self.unsent_below;
                // It names the protocol it switches to (RFC 9110 §15.2.2):
                // without one, what follows is no known protocol's.
                let named = response.header("upgrade").is_some_and(|p| !p.is_empty());
                match (busy.upgrade && all_sent && named, rest) {
                    (true, Some(rest)) => {
                        self.reusable = false;
                        self.completed += 1;
                        self.state = State::Switched(rest);
                        events.push(ClientEvent::Response(Ok(response)));
                    }
                    _ => {
                        events.push(ClientEvent::Response(Err(ResponseError::UnexpectedSwitch)));
                        self.finish(false, false);
                    }
                }
            }
            Ok(Some(response)) => match busy.parser.take_stream() {
                // Streaming: the head now, the body from what followed it.
                Some((incoming, keep_alive, rest)) => {
                    busy.keep_alive = keep_alive;
                    busy.body_in = Some((incoming, rest));
                    events.push(ClientEvent::Response(Ok(response)));
                    self.read_body(events);
                }
                None => {
                    let reusable = busy.parser.is_reusable();
                    events.push(ClientEvent::Response(Ok(response)));
                    self.finish(true, reusable);
                }
            },
            Err(e) => {
                events.push(ClientEvent::Response(Err(e)));
                self.finish(false, false);
            }
        }
    }

    /// Hands on the body pieces buffered; ends the exchange with the body.
    fn read_body(&mut self, events: &mut Vec<ClientEvent>) {
        let State::Busy(busy) = &mut self.state else {
            return;
        };
        let Some((incoming, buffered)) = &mut busy.body_in else {
            return;
        };
        match incoming.decode(buffered) {
            Ok(decoded) => {
                if !decoded.data.is_empty() {
                    events.push(ClientEvent::Body(Bytes::copy_from_slice(
                        &buffered[decoded.data],
                    )));
                }
                let extra = buffered.len() > decoded.consumed;
                buffered.drain(..decoded.consumed);
                if decoded.done {
                    let reusable = busy.keep_alive && !extra;
                    events.push(ClientEvent::End(Ok(())));
                    self.finish(true, reusable);
                }
            }
            Err(e) => {
                events.push(ClientEvent::End(Err(e)));
                self.finish(false, false);
            }
        }
    }

    /// The server closed its side: ends a body delimited by the close, or
    /// reports the exchange cut short.
    pub(crate) fn receive_eof(&mut self, events: &mut Vec<ClientEvent>) {
        self.end(events, false);
    }

    /// The server's stream ended without showing it meant to end there (TLS
    /// without close_notify): a body framed by the close fails as cut, one
    /// with a length or chunks ends as its framing says.
    pub(crate) fn receive_cut(&mut self, events: &mut Vec<ClientEvent>) {
        self.end(events, true);
    }

    fn end(&mut self, events: &mut Vec<ClientEvent>, cut: bool) {
        self.reusable = false;
        let State::Busy(busy) = &mut self.state else {
            return;
        };
        if let Some((incoming, _)) = &busy.body_in {
            let result = match incoming {
                Incoming::UntilClose if cut => Err(BodyError::Truncated),
                _ => incoming.finish(),
            };
            let ok = result.is_ok();
            events.push(ClientEvent::End(result));
            return self.finish(ok, false);
        }
        let result = match cut && busy.parser.reads_until_close() {
            true => Err(ResponseError::Truncated),
            false => busy.parser.finish(),
        };
        let ok = result.is_ok();
        events.push(ClientEvent::Response(result));
        self.finish(ok, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(conn: &mut ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while conn.wants_write() {
            let all = conn.pending_output().concat();
            conn.consume_output(all.len());
            out.extend_from_slice(&all);
        }
        out
    }

    fn start(conn: &mut ClientConnection, request: &[u8], streams: bool) {
        conn.start(request.to_vec(), None, false, streams, 100, false);
    }

    #[test]
    fn carries_exchanges_one_after_another_while_the_server_keeps_it_alive() {
        let mut conn = ClientConnection::default();
        for round in 0..3 {
            start(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
            assert_eq!(send_all(&mut conn), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(conn.was_reused(), round > 0);
            let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            // A byte at a time: complete only at the last.
            for (i, b) in response.iter().enumerate() {
                let mut events = Vec::new();
                conn.receive(std::slice::from_ref(b), &mut events);
                assert_eq!(events.len(), usize::from(i == response.len() - 1));
            }
            assert!(conn.is_idle() && conn.is_reusable());
        }
    }

    #[test]
    fn a_close_ends_a_close_delimited_body_and_truncates_the_rest() {
        let mut conn = ClientConnection::default();
        start(&mut conn, b"GET / HTTP/1.1\r\n\r\n", false);
        send_all(&mut conn);
        let mut events = Vec::new();
        conn.receive(b"HTTP/1.1 200 OK\r\n\r\nall", &mut events);
        assert!(events.is_empty());
        conn.receive_eof(&mut events);
        assert!(matches!(&events[..], [ClientEvent::Response(Ok(r))] if r.body == b"all"));
        assert!(!conn.is_reusable());

        let mut conn = ClientConnection::default();
        start(&mut conn, b"GET / HTTP/1.1\r\n\r\n", false);
        send_all(&mut conn);
        let mut events = Vec::new();
        conn.receive(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart",
            &mut events,
        );
        conn.receive_eof(&mut events);
        assert_eq!(
            events,
            [ClientEvent::Response(Err(ResponseError::Truncated))]
        );
    }

    #[test]
    fn unasked_bytes_or_an_early_answer_spoil_the_connection() {
        let mut conn = ClientConnection::default();
        // No bytes are none (found by edgepoll-fuzz's relayed target).
        conn.receive(b"", &mut Vec::new());
        assert!(conn.is_reusable());
        conn.receive(b"HTTP/1.1 200 OK\r\n\r\n", &mut Vec::new());
        assert!(!conn.is_reusable());

        let mut conn = ClientConnection::default();
        start(
            &mut conn,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            false,
        );
        conn.consume_output(10);
        let mut events = Vec::new();
        conn.receive(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n",
            &mut events,
        );
        assert!(matches!(&events[..], [ClientEvent::Response(Ok(r))] if r.status.as_u16() == 413));
        assert!(!conn.is_reusable());

        // Over TLS the request leaves this buffer for the layer below as
        // soon as it takes it: what that layer says it still holds counts
        // as unsent. (The connection stayed reusable, the tail to go out
        // ahead of the next request.)
        for held_below in [true, false] {
            let mut conn = ClientConnection::default();
            start(
                &mut conn,
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                false,
            );
            send_all(&mut conn);
            conn.set_unsent_below(held_below);
            let mut events = Vec::new();
            conn.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &mut events);
            assert_eq!(events.len(), 1);
            assert_eq!(conn.is_reusable(), !held_below, "held below: {held_below}");
        }
    }

    /// A streamed exchange both ways: the request body goes out chunked in
    /// pieces, the response comes in as its head and then its pieces,
    /// whatever the split, and the connection is reusable after.
    #[test]
    fn streamed_bodies_go_out_framed_and_come_in_as_pieces() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        for step in [1, 5, response.len()] {
            let mut conn = ClientConnection::default();
            conn.start(
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                Some(Outgoing::Chunked),
                false,
                true,
                0,
                false,
            );
            conn.send_body(Bytes::from_static(b"up")).unwrap();
            conn.end_body().unwrap();
            assert_eq!(
                send_all(&mut conn),
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nup\r\n0\r\n\r\n"
            );
            let mut events = Vec::new();
            for piece in response.chunks(step) {
                conn.receive(piece, &mut events);
            }
            let body: Vec<u8> = events
                .iter()
                .filter_map(|e| match e {
                    ClientEvent::Body(b) => Some(b.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert!(
                matches!(events.first(), Some(ClientEvent::Response(Ok(r))) if r.body.is_empty())
            );
            assert_eq!(body, b"abcde", "step {step}");
            assert_eq!(events.last(), Some(&ClientEvent::End(Ok(()))));
            assert!(conn.is_reusable(), "step {step}");
        }
    }

    /// A 101 to a request that offered an upgrade switches the connection
    /// and keeps what came after it, however the bytes were split; a 101
    /// nobody asked for, or one that names no protocol, is an error.
    #[test]
    fn a_101_to_an_offered_upgrade_switches_and_keeps_what_followed() {
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: demo\r\nConnection: upgrade\r\n\r\nfirst";
        // A request that offers an upgrade, streamed.
        let offering = || {
            let mut conn = ClientConnection::default();
            let request = b"GET / HTTP/1.1\r\n\r\n".to_vec();
            conn.start(request, None, false, true, 0, true);
            conn
        };
        let refused = |mut conn: ClientConnection, answer: &[u8]| {
            let mut events = Vec::new();
            conn.receive(answer, &mut events);
            assert_eq!(
                events,
                [ClientEvent::Response(Err(ResponseError::UnexpectedSwitch))]
            );
            assert!(!conn.is_switched() && !conn.is_reusable());
        };
        for step in [1, 7, answer.len()] {
            let mut conn = offering();
            send_all(&mut conn);
            let mut events = Vec::new();
            for piece in answer.chunks(step) {
                conn.receive(piece, &mut events);
            }
            conn.receive(b" more", &mut events);
            assert!(
                matches!(&events[..], [ClientEvent::Response(Ok(r))] if r.status.as_u16() == 101),
                "step {step}: {events:?}"
            );
            assert!(conn.is_switched() && !conn.is_reusable());
            assert_eq!(conn.take_switched().as_deref(), Some(&b"first more"[..]));
        }

        let mut conn = ClientConnection::default();
        start(&mut conn, b"GET / HTTP/1.1\r\n\r\n", true);
        send_all(&mut conn);
        refused(conn, &answer[..]);
        for unnamed in ["", "Upgrade: \r\n"] {
            let mut conn = offering();
            send_all(&mut conn);
            let answer =
                format!("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n{unnamed}\r\n");
            refused(conn, answer.as_bytes());
        }
        // Before the request was all sent: its tail would go into the new
        // protocol.
        let mut conn = offering();
        conn.consume_output(4);
        refused(conn, &answer[..]);
    }
}
