//! What an application implements to serve WebSockets on the event loop, and
//! how it sends.

use super::frame::{write_frame, Opcode};
use super::{CloseCode, Message};
use crate::http::{self, Request};
use crate::Token;
use std::ops::Range;
use std::time::{Duration, Instant};

/// A WebSocket application: plain HTTP requests go to its
/// [`http::Service::call`]; a request it [`accepts`](Self::accepts) is
/// answered by the handshake ([`handshake::answer`](super::handshake::answer))
/// and, once upgraded, its messages come to [`on_message`](Self::on_message).
/// Each connection is named by a [`Token`]; sends go through the [`Outbox`],
/// so the application never touches a socket.
///
/// ```
/// use edgepoll::http::{Request, Response, StatusCode};
/// use edgepoll::ws::{Message, Outbox};
/// use edgepoll::Token;
///
/// struct Echo;
/// impl edgepoll::http::Service for Echo {
///     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
///         Response::new(StatusCode::NOT_FOUND)
///     }
/// }
/// impl edgepoll::ws::Service for Echo {
///     fn accepts(&mut self, request: &Request<'_>) -> bool {
///         request.path() == "/ws"
///     }
///     fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox) {
///         out.send(from, message);
///     }
/// }
/// ```
pub trait Service: http::Service {
    /// Whether `request` is for a WebSocket endpoint (then the handshake
    /// answers it: 101, or 400/426 for a bad attempt).
    ///
    /// ```
    /// use edgepoll::http::{Request, Response, StatusCode};
    /// use edgepoll::ws::{Message, Outbox};
    /// use edgepoll::Token;
    /// /// A chat room: who is in it.
    /// #[derive(Default)]
    /// struct Room(Vec<Token>);
    /// impl edgepoll::http::Service for Room {
    ///     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
    ///         Response::new(StatusCode::NOT_FOUND)
    ///     }
    /// }
    /// impl edgepoll::ws::Service for Room {
    ///     fn accepts(&mut self, request: &Request<'_>) -> bool {
    ///         request.path() == "/chat"
    ///     }
    ///     fn on_open(&mut self, peer: Token, _: &str, _: Option<&str>, out: &mut Outbox) {
    ///         self.0.push(peer);
    ///         out.send_to(&self.0, Message::Text("someone joined"));
    ///     }
    ///     fn on_message(&mut self, _: Token, message: Message<'_>, out: &mut Outbox) {
    ///         out.send_to(&self.0, message); // its members only, not every connection
    ///     }
    ///     fn on_close(&mut self, peer: Token, _: &mut Outbox) {
    ///         self.0.retain(|member| *member != peer); // its token may come back for another
    ///     }
    /// }
    /// # let _ = Room::default();
    /// ```
    fn accepts(&mut self, request: &Request<'_>) -> bool;

    /// The subprotocol to speak with a handshake that offers some
    /// (`Sec-WebSocket-Protocol`; `offered` in the client's order of
    /// preference, see [`offered_protocols`](super::handshake::offered_protocols)),
    /// or `None` to agree on none (RFC 6455 §4.2.2). A browser whose page
    /// asked for protocols fails a handshake that agrees on none. By
    /// default none; [`on_open`](Self::on_open) is told the one chosen.
    ///
    /// ```
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # use edgepoll::ws::{Message, Outbox};
    /// # use edgepoll::Token;
    /// # struct Chat;
    /// # impl edgepoll::http::Service for Chat {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// impl edgepoll::ws::Service for Chat {
    ///     # fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    ///     # fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
    ///     fn protocol<'o>(&mut self, _: &Request<'_>, offered: &[&'o str]) -> Option<&'o str> {
    ///         offered.iter().copied().find(|p| *p == "chat.v1")
    ///     }
    /// }
    /// ```
    fn protocol<'o>(&mut self, request: &Request<'_>, offered: &[&'o str]) -> Option<&'o str> {
        let _ = (request, offered);
        None
    }

    /// A connection switched to WebSocket; `target` is its request target
    /// (path and query), `protocol` the subprotocol agreed on (see
    /// [`protocol`](Self::protocol)).
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox, Service};
    /// use edgepoll::Token;
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # #[derive(Default)] struct Room(Vec<Token>);
    /// # impl edgepoll::http::Service for Room {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// # impl Service for Room {
    /// #     fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    /// #     fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
    ///     fn on_open(&mut self, peer: Token, target: &str, _: Option<&str>, out: &mut Outbox) {
    ///         self.0.push(peer);
    ///         out.send(peer, Message::Text(&format!("welcome to {target}")));
    ///     }
    /// # }
    /// let (mut room, mut out) = (Room::default(), Outbox::default());
    /// room.on_open(Token(7), "/chat?room=1", None, &mut out);
    /// assert_eq!((room.0.len(), out.len()), (1, 1));
    /// ```
    fn on_open(&mut self, peer: Token, target: &str, protocol: Option<&str>, out: &mut Outbox) {
        let _ = (peer, target, protocol, out);
    }

    /// A complete message from `from`.
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox, Service};
    /// use edgepoll::Token;
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # struct Shout;
    /// # impl edgepoll::http::Service for Shout {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// # impl Service for Shout {
    /// #     fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    ///     fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox) {
    ///         match message {
    ///             Message::Text(text) => out.broadcast(Message::Text(&text.to_uppercase())),
    ///             Message::Binary(_) => out.close(from, edgepoll::ws::CloseCode::POLICY),
    ///         }
    ///     }
    /// # }
    /// let mut out = Outbox::default();
    /// Shout.on_message(Token(1), Message::Text("hi"), &mut out);
    /// assert_eq!(out.len(), 1);
    /// ```
    fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox);

    /// A connection is gone (closed by either side, failed, or dropped). It
    /// gets no more sends, and its token may name a connection opened
    /// later (tokens are reused, as mio's are): forget it here.
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox, Service};
    /// use edgepoll::Token;
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # #[derive(Default)] struct Room(Vec<Token>);
    /// # impl edgepoll::http::Service for Room {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// # impl Service for Room {
    /// #     fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    /// #     fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
    ///     fn on_close(&mut self, peer: Token, out: &mut Outbox) {
    ///         // Forget it: its token may name a connection opened later.
    ///         self.0.retain(|member| *member != peer);
    ///         out.send_to(&self.0, Message::Text("someone left"));
    ///     }
    /// # }
    /// let mut room = Room(vec![Token(1), Token(2)]);
    /// room.on_close(Token(1), &mut Outbox::default());
    /// assert_eq!(room.0, [Token(2)]);
    /// ```
    fn on_close(&mut self, peer: Token, out: &mut Outbox) {
        let _ = (peer, out);
    }

    /// How often [`on_tick`](Self::on_tick) is called, if at all: asked
    /// once, as the loop starts (at least every millisecond). By default
    /// never. A WebSocket service's clock: periodic pushes (a ticker, a game
    /// step, presence), and deadlines of its own, checked at each tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # use edgepoll::ws::{Message, Outbox};
    /// # use edgepoll::Token;
    /// # struct Ticker;
    /// # impl edgepoll::http::Service for Ticker {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// impl edgepoll::ws::Service for Ticker {
    ///     # fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    ///     # fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
    ///     fn tick(&self) -> Option<Duration> {
    ///         Some(Duration::from_millis(100))
    ///     }
    /// }
    /// assert_eq!(edgepoll::ws::Service::tick(&Ticker), Some(Duration::from_millis(100)));
    /// ```
    fn tick(&self) -> Option<Duration> {
        None
    }

    /// Called every [`tick`](Self::tick), at `now`. Each tick is due a whole
    /// period after the one before; one the loop could not keep (it was
    /// busy for longer than a period) is skipped, not made up in a burst.
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox, Service};
    /// use edgepoll::Token;
    /// use std::time::Instant;
    /// # use edgepoll::http::{Request, Response, StatusCode};
    /// # #[derive(Default)] struct Ticker { ticks: u64 }
    /// # impl edgepoll::http::Service for Ticker {
    /// #     fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> { Response::new(StatusCode::NOT_FOUND) }
    /// # }
    /// # impl Service for Ticker {
    /// #     fn accepts(&mut self, _: &Request<'_>) -> bool { true }
    /// #     fn on_message(&mut self, _: Token, _: Message<'_>, _: &mut Outbox) {}
    ///     fn on_tick(&mut self, _: Instant, out: &mut Outbox) {
    ///         self.ticks += 1;
    ///         out.broadcast(Message::Text(&format!("tick {}", self.ticks)));
    ///     }
    /// # }
    /// let (mut ticker, mut out) = (Ticker::default(), Outbox::default());
    /// ticker.on_tick(Instant::now(), &mut out);
    /// assert_eq!(out.len(), 1);
    /// ```
    fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        let _ = (now, out);
    }
}

/// Messages and closes an application asks for; the event loop delivers them
/// after the call that queued them, in order. A frame is encoded once,
/// however many connections it goes to.
///
/// ```
/// use edgepoll::ws::{Message, Outbox};
/// let mut out = Outbox::default();
/// out.broadcast(Message::Text("hello all"));
/// assert!(!out.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Outbox {
    frames: Vec<u8>,
    actions: Vec<Action>,
    /// The receivers of the `SendEach` actions, back to back.
    peers: Vec<Token>,
}

/// One thing to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// `frames[frame]` to one connection.
    Send(Token, Range<usize>),
    /// `frames[frame]` to every open WebSocket connection.
    Broadcast(Range<usize>),
    /// `frames[frame]` to each of `peers[receivers]`.
    SendEach(Range<usize>, Range<usize>),
    /// Close one connection with this code.
    Close(Token, CloseCode),
}

impl Outbox {
    /// Sends `message` to the connection `to` (a no-op if it is gone).
    ///
    /// ```
    /// use edgepoll::{ws::{Message, Outbox}, Token};
    /// let mut out = Outbox::default();
    /// out.send(Token(3), Message::Text("just for you"));
    /// assert_eq!(out.len(), 1);
    /// ```
    pub fn send(&mut self, to: Token, message: Message<'_>) {
        let frame = self.encode(message);
        self.actions.push(Action::Send(to, frame));
    }

    /// Sends `message` to each of `peers` (those gone are passed over): a
    /// room's members, say. Encoded once, and a large one held once by
    /// every queue it goes to, as a broadcast is, where a send to each would
    /// copy it for each. A peer listed twice gets it twice.
    ///
    /// ```
    /// use edgepoll::{ws::{Message, Outbox}, Token};
    /// let room = [Token(3), Token(5), Token(8)];
    /// let mut out = Outbox::default();
    /// out.send_to(&room, Message::Text("to the room"));
    /// assert_eq!((out.len(), out.queued_bytes()), (1, 2 + 11));
    /// ```
    pub fn send_to(&mut self, peers: &[Token], message: Message<'_>) {
        if peers.is_empty() {
            return;
        }
        let frame = self.encode(message);
        let start = self.peers.len();
        self.peers.extend_from_slice(peers);
        self.actions
            .push(Action::SendEach(start..self.peers.len(), frame));
    }

    /// Sends `message` to every open WebSocket connection.
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox};
    /// let mut out = Outbox::default();
    /// out.broadcast(Message::Binary(&[1, 2, 3])); // encoded once, whoever receives it
    /// ```
    pub fn broadcast(&mut self, message: Message<'_>) {
        let frame = self.encode(message);
        self.actions.push(Action::Broadcast(frame));
    }

    /// Closes `peer` with `code` (its queued messages go first). A code
    /// that may not go on the wire (under 1000, 1004 to 1006, 1015 to 2999,
    /// 5000 and over: RFC 6455 §7.4) closes with no code, which the peer
    /// reads as 1005.
    ///
    /// ```
    /// use edgepoll::{ws::{CloseCode, Outbox}, Token};
    /// let mut out = Outbox::default();
    /// out.close(Token(3), CloseCode::POLICY);
    /// assert!(!out.is_empty());
    /// ```
    pub fn close(&mut self, peer: Token, code: CloseCode) {
        self.actions.push(Action::Close(peer, code));
    }

    /// Whether nothing is queued.
    ///
    /// ```
    /// assert!(edgepoll::ws::Outbox::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// How many sends, sends to a list, broadcasts and closes are queued
    /// since the loop last delivered (it does once it has read a socket:
    /// what one connection's messages asked for). Each message costs every receiver its frame's
    /// header, whatever it carries: an application that fans messages out
    /// bounds how many one read may queue, as `examples/ws_chat` does.
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox};
    /// let mut out = Outbox::default();
    /// out.broadcast(Message::Text(""));
    /// out.broadcast(Message::Text(""));
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Bytes of the frames queued since the loop last delivered (broadcasts
    /// and sends): at most what one connection will have to take (unless a
    /// `send_to` lists it twice, which it then takes twice). Every connection
    /// has a queue limit ([`WsLimits::max_queued_bytes`](super::WsLimits))
    /// past which it is dropped, so an application that lets one peer's
    /// messages fan out to everyone should bound what that peer may send
    /// (the loop paces the bytes of a peer's replies; see [`Outbox::len`]).
    ///
    /// ```
    /// use edgepoll::ws::{Message, Outbox};
    /// let mut out = Outbox::default();
    /// out.broadcast(Message::Text("hello"));
    /// assert_eq!(out.queued_bytes(), 2 + 5);
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.frames.len()
    }

    fn encode(&mut self, message: Message<'_>) -> Range<usize> {
        let start = self.frames.len();
        match message {
            Message::Text(text) => write_frame(&mut self.frames, Opcode::Text, text.as_bytes()),
            Message::Binary(bytes) => write_frame(&mut self.frames, Opcode::Binary, bytes),
        }
        start..self.frames.len()
    }

    /// Takes the queued actions out, with the frames they refer to; the
    /// outbox is empty afterwards and keeps its memory. Broadcasts in a row
    /// come out as one, their frames back to back, so that the loop appends
    /// them to each connection's queue at once.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn drain(&mut self, mut deliver: impl FnMut(&Action, &[u8], &[Token])) {
        let mut actions = self.actions.drain(..).peekable();
        while let Some(mut action) = actions.next() {
            if let Action::Broadcast(run) = &mut action {
                while let Some(Action::Broadcast(next)) = actions.peek() {
                    // Nothing is encoded between two broadcasts in a row.
                    debug_assert_eq!(run.end, next.start);
                    run.end = next.end;
                    actions.next();
                }
            }
            let frames = match &action {
                Action::Send(_, range) | Action::Broadcast(range) | Action::SendEach(_, range) => {
                    &self.frames[range.clone()]
                }
                Action::Close(..) => &[][..],
            };
            let peers = match &action {
                Action::SendEach(receivers, _) => &self.peers[receivers.clone()],
                _ => &[][..],
            };
            deliver(&action, frames, peers);
        }
        self.frames.clear();
        self.peers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_in_a_row_are_drained_as_one_run_of_frames() {
        let mut out = Outbox::default();
        out.broadcast(Message::Text("a"));
        out.broadcast(Message::Binary(b"bc"));
        out.send(Token(3), Message::Text("d"));
        out.broadcast(Message::Text("e"));
        out.close(Token(4), CloseCode::NORMAL);
        out.broadcast(Message::Text("f"));
        out.broadcast(Message::Text("g"));
        let mut seen = Vec::new();
        out.drain(|action, frames, _| {
            let kind = match action {
                Action::Send(to, _) => format!("send {}", to.0),
                Action::Broadcast(_) => "broadcast".to_string(),
                Action::SendEach(..) => "send to each".to_string(),
                Action::Close(to, code) => format!("close {} {}", to.0, code.0),
            };
            seen.push((kind, frames.to_vec()));
        });
        let expected: Vec<(String, Vec<u8>)> = vec![
            ("broadcast".into(), b"\x81\x01a\x82\x02bc".to_vec()),
            ("send 3".into(), b"\x81\x01d".to_vec()),
            ("broadcast".into(), b"\x81\x01e".to_vec()),
            ("close 4 1000".into(), Vec::new()),
            ("broadcast".into(), b"\x81\x01f\x81\x01g".to_vec()),
        ];
        assert_eq!(seen, expected);
        assert!(out.is_empty());
    }

    #[test]
    fn a_message_to_each_of_a_list_is_encoded_once_and_names_its_list() {
        let mut out = Outbox::default();
        out.send_to(&[Token(1), Token(2)], Message::Text("a"));
        out.send_to(&[], Message::Text("to nobody"));
        out.broadcast(Message::Text("b"));
        out.send_to(&[Token(7)], Message::Binary(b"c"));
        assert_eq!((out.len(), out.queued_bytes()), (3, 9));
        let mut seen = Vec::new();
        out.drain(|action, frames, peers| {
            let peers: Vec<usize> = peers.iter().map(|p| p.0).collect();
            seen.push((
                matches!(action, Action::SendEach(..)),
                frames.to_vec(),
                peers,
            ));
        });
        let expected = vec![
            (true, b"\x81\x01a".to_vec(), vec![1, 2]),
            (false, b"\x81\x01b".to_vec(), vec![]),
            (true, b"\x82\x01c".to_vec(), vec![7]),
        ];
        assert_eq!(seen, expected);
        // Drained whole: the next round names no one from this one.
        out.send_to(&[Token(9)], Message::Text("d"));
        out.drain(|_, _, peers| assert_eq!(peers, [Token(9)]));
    }
}
