//! What edgepoll-fuzz reaches of the client: one exchange on a
//! connection, its response read from bytes a server (an upstream a proxy
//! does not control) sent, whole or streamed as a proxy relays it.
//! Not an API: only with the `fuzzing` feature, and free to change.

use super::connection::{ClientConnection, ClientEvent};
use crate::http::{BodyError, ParsedResponse, ResponseError};

/// What the connection made of the server's bytes, in order.
#[derive(Debug)]
pub enum Seen {
    /// An interim response's status.
    Interim(u16),
    /// The response whole, or a streamed one's head; or its refusal.
    Response(Result<ParsedResponse, ResponseError>),
    /// A piece of a streamed body.
    Body(Vec<u8>),
    /// A streamed body's end.
    End(Result<(), BodyError>),
}

/// A GET (a HEAD with `to_head`) sent, and its response read from
/// `pieces`, then the server's close if `close`: streamed (`streams`),
/// or whole within `max_body`. What was seen, and whether the
/// connection could carry another request then.
pub fn exchange(
    pieces: &[&[u8]],
    to_head: bool,
    streams: bool,
    max_body: usize,
    close: bool,
) -> (Vec<Seen>, bool) {
    let mut conn = ClientConnection::default();
    let request = match to_head {
        true => &b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        false => &b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
    };
    conn.start(request.to_vec(), None, to_head, streams, max_body, false);
    while conn.wants_write() {
        let n = conn.pending_output().concat().len();
        conn.consume_output(n);
    }
    let mut events = Vec::new();
    for piece in pieces {
        conn.receive(piece, &mut events);
    }
    if close {
        conn.receive_eof(&mut events);
    }
    let reusable = conn.is_idle() && conn.is_reusable();
    let seen = events.into_iter().map(|event| match event {
        ClientEvent::Interim(r) => Seen::Interim(r.status.as_u16()),
        ClientEvent::Response(r) => Seen::Response(r),
        ClientEvent::Body(piece) => Seen::Body(piece.to_vec()),
        ClientEvent::End(r) => Seen::End(r),
    });
    (seen.collect(), reusable)
}
