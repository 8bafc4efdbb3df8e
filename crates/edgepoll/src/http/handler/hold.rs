//! Holding a streamed response's first bytes back a moment, for the rest
//! of its body to join them in one send.
//!
//! Without `TCP_NODELAY`, which WasmEdge gives a guest no way to set, a
//! second small send waits until the client acknowledges the first, and a
//! client delays that acknowledgement up to 40 ms (Linux). A response
//! whose body comes in pieces (a proxy relaying an upstream's reads) went
//! out as a head and a first piece, then a small rest that waited so: 70 KB
//! files from nginx through the proxy took 40 ms more in 23 to 28 of 60
//! requests on loopback. Held until the body is whole, the response leaves
//! in one send.
//!
//! Only a body of known length that fits the backlog is held. Holding a
//! chunked one's first pieces (a gzipped megabyte nginx sent in 32 KiB
//! pieces) made its first send a full segment, and the smaller ones after
//! it then waited on the client's acknowledgements: 62 ms a response where
//! 20 were usual.

use super::{Handler, Waiting};
use crate::http::body::Outgoing;
use std::time::{Duration, Instant};

/// Where a streamed response stands in holding its output back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Hold {
    /// Not held yet.
    #[default]
    Open,
    /// Held until then.
    Until(Instant),
    /// Held as long as it may be: what comes now goes as it comes.
    Spent,
}

/// Whether the pending output goes now ([`Handler::hold_output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputHold {
    /// Send it.
    Send,
    /// Hold it: the hold began with this call, and ends at this instant,
    /// when the output is to be looked at again.
    Begun(Instant),
    /// Hold it: a hold begun before goes on.
    Held,
}

impl Handler {
    /// Whether to send the pending output now, or hold it back a moment:
    /// while the response going out is streamed with a `Content-Length`
    /// whose body has not all been given, and could leave whole with the
    /// output before it in `most` bytes (the body's backlog, say), its head
    /// and first pieces wait for the rest, for up to `hold_for` from the
    /// first call that held them. So a body that comes whole soon after
    /// leaves with its head in one send, rather than as small sends that
    /// Nagle's algorithm holds until the client's delayed acknowledgement
    /// (see the module's documentation). Once a response was held as long
    /// as it may be, the rest of it goes as it comes. Any other output goes
    /// at once: a longer body (held, its first send would be large, which
    /// made a paced body's later, smaller sends wait on the client's
    /// acknowledgements), a chunked one, whose end is not known, and a
    /// `100 Continue` waiting to go first (its client sends the body, of
    /// which this response may be made, only once it has it).
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Handler, Limits, OutputHold, Reply, Request, RequestId, Response, StatusCode};
    /// use std::time::{Duration, Instant};
    ///
    /// struct Later(Option<RequestId>);
    /// impl Dispatch for Later {
    ///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    ///         self.0 = Some(id);
    ///         Reply::Later
    ///     }
    /// }
    /// let (now, mut later, ms) = (Instant::now(), Later(None), Duration::from_millis(1));
    /// let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
    /// let id = later.0.unwrap();
    /// conn.respond_stream(id, Response::new(StatusCode::OK), Some(10), now).unwrap();
    /// conn.send_body(id, "hello".into(), now).unwrap();
    /// assert_eq!(conn.hold_output(now, ms, 1 << 18), OutputHold::Begun(now + ms));
    /// assert_eq!(conn.hold_output(now, ms, 1 << 18), OutputHold::Held);
    /// conn.send_body(id, "world".into(), now).unwrap();
    /// conn.end_body(id, now).unwrap();
    /// assert_eq!(conn.hold_output(now, ms, 1 << 18), OutputHold::Send); // whole: one send
    /// ```
    #[inline]
    pub fn hold_output(&mut self, now: Instant, hold_for: Duration, most: usize) -> OutputHold {
        match self.waiting.front_mut() {
            // Nearly always none: a response given at once is not held.
            Some(Waiting {
                stream: Some(stream),
                ..
            }) => match (stream.at_front && !stream.ended, &stream.framing) {
                // Not behind a 100 (Continue) waiting to go first: the body
                // of its request, which may be this response's, comes only
                // once the client has it.
                (true, Outgoing::Length(left))
                    if *left > 0 && !self.output.pending().starts_with(super::CONTINUE) =>
                {
                    let whole = (self.output.len() as u64).saturating_add(*left);
                    next_hold(&mut stream.hold, whole > most as u64, hold_for, now)
                }
                _ => OutputHold::Send,
            },
            _ => OutputHold::Send,
        }
    }
}

/// Moves `hold` on at `now`; `too_long`: the whole response would not fit
/// the most that may wait.
#[cold]
#[inline(never)]
fn next_hold(hold: &mut Hold, too_long: bool, hold_for: Duration, now: Instant) -> OutputHold {
    let (next, said) = match *hold {
        Hold::Spent => (Hold::Spent, OutputHold::Send),
        _ if too_long || hold_for.is_zero() => (Hold::Spent, OutputHold::Send),
        Hold::Open => {
            let until = now + crate::timer::bounded(hold_for);
            (Hold::Until(until), OutputHold::Begun(until))
        }
        Hold::Until(until) if now < until => (Hold::Until(until), OutputHold::Held),
        Hold::Until(_) => (Hold::Spent, OutputHold::Send),
    };
    *hold = next;
    said
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Dispatch, Limits, Reply, Request, RequestId, Response, StatusCode};
    use bytes::Bytes;

    /// Defers every request.
    #[derive(Default)]
    struct Later(Vec<RequestId>);

    impl Dispatch for Later {
        fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
            self.0.push(id);
            Reply::Later
        }
    }

    const MS: Duration = Duration::from_millis(1);
    const MOST: usize = 1 << 18;

    /// A connection with `requests` taken and deferred.
    fn deferred(requests: &[u8], now: Instant) -> (Handler, Vec<RequestId>) {
        let (mut conn, mut later) = (Handler::new(Limits::default(), now), Later::default());
        conn.receive(requests, now, &mut later);
        (conn, later.0)
    }

    fn streamed(conn: &mut Handler, id: RequestId, length: Option<u64>, now: Instant) {
        let head = Response::new(StatusCode::OK);
        conn.respond_stream(id, head, length, now).expect("waiting");
    }

    #[test]
    fn a_body_of_known_length_is_held_until_its_time_is_up_then_goes_as_it_comes() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(30), now);
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        conn.send_body(ids[0], Bytes::from_static(b"0123456789"), now)
            .unwrap();
        let almost = now + MS - Duration::from_nanos(1);
        assert_eq!(conn.hold_output(almost, MS, MOST), OutputHold::Held);
        assert_eq!(conn.hold_output(now + MS, MS, MOST), OutputHold::Send);
        // Held once: its later pieces go as they come.
        conn.consume_output(conn.pending_output().len(), now + MS);
        conn.send_body(ids[0], Bytes::from_static(b"0123456789"), now + MS)
            .unwrap();
        assert_eq!(conn.hold_output(now + MS, MS, MOST), OutputHold::Send);
    }

    #[test]
    fn a_body_given_whole_or_too_long_to_wait_or_no_hold_time_goes_at_once() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(20), now);
        conn.send_body(ids[0], Bytes::from(vec![b'x'; 20]), now)
            .unwrap();
        // All of it given, not yet ended: nothing more to wait for.
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        conn.end_body(ids[0], now).unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);

        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(1000), now);
        conn.send_body(ids[0], Bytes::from(vec![b'x'; 500]), now)
            .unwrap();
        assert_eq!(
            conn.hold_output(now, MS, 1000),
            OutputHold::Send,
            "with its head, 1000 would not fit"
        );
        conn.send_body(ids[0], Bytes::from(vec![b'x'; 10]), now)
            .unwrap();
        assert_eq!(
            conn.hold_output(now, MS, MOST),
            OutputHold::Send,
            "held once"
        );

        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(1000), now);
        assert_eq!(
            conn.hold_output(now, Duration::ZERO, MOST),
            OutputHold::Send
        );
    }

    #[test]
    fn only_a_streamed_body_of_known_length_is_held() {
        let now = Instant::now();
        // Chunked: its end is not known, so there is nothing to wait for
        // (server-sent events go as they come).
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], None, now);
        conn.send_body(ids[0], Bytes::from_static(b"event"), now)
            .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        // To HEAD no body goes.
        let (mut conn, ids) = deferred(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(10), now);
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        // A whole response.
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        conn.respond(ids[0], Response::new(StatusCode::OK).body("ok"), now)
            .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
    }

    /// Defers every request, and takes its body in pieces.
    #[derive(Default)]
    struct LaterInPieces(Vec<RequestId>);

    impl Dispatch for LaterInPieces {
        const STREAMS: bool = true;

        fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
            self.0.push(id);
            Reply::Later
        }

        fn streams(&mut self, _: &Request<'_>) -> bool {
            true
        }

        fn body(&mut self, _: RequestId, _: &[u8]) {}

        fn body_end(&mut self, _: RequestId, _: Result<(), crate::http::BodyError>) {}
    }

    #[test]
    fn a_100_continue_is_not_held_back_from_the_client_whose_body_it_asks_for() {
        let now = Instant::now();
        let (mut conn, mut later) = (
            Handler::new(Limits::default(), now),
            LaterInPieces::default(),
        );
        let head =
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
        conn.receive(head, now, &mut later);
        // An echo: its response streams the body, which the client sends
        // once it has the 100.
        streamed(&mut conn, later.0[0], Some(5), now);
        assert!(conn
            .pending_output()
            .starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        conn.consume_output(conn.pending_output().len(), now);
        conn.receive(b"hel", now, &mut later);
        conn.send_body(later.0[0], Bytes::from_static(b"hel"), now)
            .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
    }

    #[test]
    fn each_streamed_response_is_held_afresh_once_it_goes_out() {
        let now = Instant::now();
        let two = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut conn, ids) = deferred(two, now);
        streamed(&mut conn, ids[0], Some(4), now);
        streamed(&mut conn, ids[1], Some(4), now);
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        assert_eq!(conn.hold_output(now + MS, MS, MOST), OutputHold::Send);
        conn.send_body(ids[0], Bytes::from_static(b"abcd"), now + MS)
            .unwrap();
        conn.end_body(ids[0], now + MS).unwrap();
        // The second is at the front now, and has its own hold.
        let later = now + 2 * MS;
        assert_eq!(
            conn.hold_output(later, MS, MOST),
            OutputHold::Begun(later + MS)
        );
    }
}
