//! Holding a connection's output back a moment, for more to join it in
//! one send: the rest of a streamed response's body, or the answer to the
//! next pipelined request.
//!
//! Without `TCP_NODELAY`, which WasmEdge gives a guest no way to set, a
//! small send waits until the client acknowledges the small one before it,
//! and a client delays that acknowledgement up to 40 ms (Linux). A response
//! whose body comes in pieces (a proxy relaying an upstream's reads) went
//! out as a head and a first piece, then a rest that waited so, measured on
//! loopback through the proxy from nginx: 70 KB files took 40 ms more in 23
//! to 28 of 60 requests, gzipped (chunked) files of 40 to 400 KB in 34 to
//! 49 of 60.
//!
//! So what a streamed body gives waits while more comes: until the body
//! ends, or a `hold_for` passes with no piece coming, or `4 × hold_for`
//! from the hold's start. A body of known length that fits the backlog
//! waits for its end, to leave whole in one send; any other leaves once 64
//! KiB are held, more than a full segment on loopback (whose MTU is 64
//! KiB), which a client acknowledges at once. Then a long body leaves in such sends and its
//! end; one still waits now and then (0 to 5 of 60 gzipped downloads of
//! 400 KB and 1 MB), when its last send, under a segment, follows the small
//! end of a send before it (a segment and 69 bytes, say).
//!
//! Two forms before this one fell short. Holding only a body of known
//! length, for `hold_for` from its first piece, left the gzipped files
//! waiting. Holding a chunked body that way as well made a gzipped
//! megabyte wait at its end in nearly every request (62 ms where 20 were
//! usual): a hold cut off by time leaves a small send, and the sends after
//! it fell into step behind it.
//!
//! Pipelined requests whose answers come apart (a proxy's, each from an
//! upstream connection of its own) went out in a send each, and each send
//! after the first waited so: through the proxy from nginx, four pipelined
//! GETs of small files took 42 ms in nearly every burst, where nginx alone
//! took 0.3. So output also waits while the next request's answer is owed,
//! by the same rules (any body leaves once 64 KiB are held).
//!
//! Output a hold released is not held again until it has all gone (the
//! socket may be full), unless a send took all it was offered and left
//! some (more than `MAX_SEND_PARTS` parts): that rest is held as any
//! output, since alone it would be a small send. Nor is a `100 Continue`
//! or a `103 Early Hints`, with what is before it: a client sends the
//! body, of which the owed answer may be made, only once it has the 100,
//! and a hint is worth something only before the answer.

use super::Handler;
use crate::http::body::Outgoing;
use std::time::{Duration, Instant};

/// Held output goes once it is longer than this: more than a full segment
/// on loopback, which a client acknowledges at once.
const SEGMENT: usize = 64 * 1024;

/// How many `hold_for`s a hold lasts at most, while more keeps coming.
const MOST_HOLDS: u32 = 4;

/// Where a connection stands in holding its output back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Hold {
    /// Not held: the next output may be.
    #[default]
    Open,
    /// Sent: what is still pending waits on the socket, not on a hold,
    /// until it has all gone (a hold released); then the hold is open
    /// again. A send that took all it was offered (more than
    /// `MAX_SEND_PARTS` parts pending) opens it too.
    Sent,
    /// A 100 (Continue) or 103 (Early Hints) is queued: all pending output
    /// goes, with what is before it, until it has all gone, however many
    /// sends that takes (the client waits for the 100 before it sends
    /// the body the answer may be made of).
    Interim,
    /// Held until `until` (then looked at again), since `since`; `seen`:
    /// how much output was held when the hold (re)started.
    Until {
        until: Instant,
        since: Instant,
        seen: usize,
    },
}

/// Whether the pending output goes now ([`Handler::hold_output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputHold {
    /// Send it.
    Send,
    /// Hold it: the hold began (or was drawn out) with this call, and ends
    /// at this instant, when the output is to be looked at again.
    Begun(Instant),
    /// Hold it: a hold begun before goes on.
    Held,
}

impl Handler {
    /// Whether to send the pending output now, or hold it back a moment
    /// for more to join it (see the module's documentation): the body of
    /// the streamed response going out, while it has not all been given,
    /// or the answer to the next pipelined request, while it is owed. It is
    /// held until a `hold_for` passes with nothing more coming, at most
    /// `4 × hold_for` (so a lone piece waits `hold_for`): a body of known
    /// length that could leave whole with the output before it in `most`
    /// bytes (the body's backlog, say) waits for its end; other output
    /// leaves once 64 KiB are held. So a body that comes in quick pieces,
    /// or answers that come apart, leave in one send, or in sends long
    /// enough to be acknowledged at once, rather than as small sends that
    /// Nagle's algorithm holds until the client's delayed acknowledgement.
    /// Any other output goes at once: a whole response with no request
    /// after it, one to HEAD, output a hold released until it has all gone
    /// (the socket may be full; but the rest of a send that took all the
    /// parts it was offered may be held), and a `100 Continue` or `103 Early Hints`
    /// with what is before it (a client sends the body, of which the owed
    /// response may be made, only once it has the 100; a hint is worth
    /// something only before the answer). A `hold_for` of zero holds
    /// nothing.
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
        // Nearly always none: a response given at once is not held. (This
        // much is inlined where the loop asks, after its reads.)
        if self.waiting.is_empty() {
            return OutputHold::Send;
        }
        self.hold_owed_output(now, hold_for, most)
    }

    /// [`hold_output`](Self::hold_output) with an answer owed or going.
    #[inline(never)]
    fn hold_owed_output(&mut self, now: Instant, hold_for: Duration, most: usize) -> OutputHold {
        let Some(front) = self.waiting.front() else {
            return OutputHold::Send;
        };
        let held = self.output.len();
        let release_at = match &front.stream {
            Some(stream) if stream.at_front && !stream.ended => match stream.framing {
                // All of it given, not yet ended: nothing more to wait for.
                Outgoing::Length(0) | Outgoing::Discard => return OutputHold::Send,
                Outgoing::Length(left) if (held as u64).saturating_add(left) <= most as u64 => most,
                _ => SEGMENT,
            },
            // Pipelined: the answer to the next request is owed.
            None if front.ready.is_none() && held > 0 => SEGMENT,
            _ => return OutputHold::Send,
        };
        if held >= release_at {
            if self.hold != Hold::Interim {
                self.hold = Hold::Sent;
            }
            return OutputHold::Send;
        }
        next_hold(&mut self.hold, held, hold_for, now)
    }
}

/// Moves `hold` on at `now`, with `held` bytes of output held.
#[cold]
#[inline(never)]
fn next_hold(hold: &mut Hold, held: usize, hold_for: Duration, now: Instant) -> OutputHold {
    let gap = crate::timer::bounded(hold_for);
    let (next, said) = match *hold {
        _ if held == 0 => (Hold::Open, OutputHold::Send),
        Hold::Sent | Hold::Interim => (*hold, OutputHold::Send),
        _ if gap.is_zero() => (Hold::Sent, OutputHold::Send),
        Hold::Open => {
            let until = now + gap;
            (
                Hold::Until {
                    until,
                    since: now,
                    seen: held,
                },
                OutputHold::Begun(until),
            )
        }
        Hold::Until { until, .. } if now < until => (*hold, OutputHold::Held),
        // More came in the last `gap`: wait for the next.
        Hold::Until { since, seen, .. } if held > seen && now < since + gap * MOST_HOLDS => {
            let until = (now + gap).min(since + gap * MOST_HOLDS);
            (
                Hold::Until {
                    until,
                    since,
                    seen: held,
                },
                OutputHold::Begun(until),
            )
        }
        Hold::Until { .. } => (Hold::Sent, OutputHold::Send),
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

    /// Sends what `conn` holds, all of it.
    fn send_all(conn: &mut Handler, now: Instant) {
        while !conn.output.is_empty() {
            let n: usize = conn.pending_output_parts().iter().map(|p| p.len()).sum();
            conn.consume_output(n, now);
        }
    }

    /// How much output `conn` has pending, in all its parts.
    fn pending(conn: &Handler) -> usize {
        conn.output.len()
    }

    #[test]
    fn a_hold_lasts_while_pieces_keep_coming_at_most_four_hold_times() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], Some(1000), now);
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        let almost = now + MS - Duration::from_nanos(1);
        assert_eq!(conn.hold_output(almost, MS, MOST), OutputHold::Held);
        // A piece came in that time: the hold is drawn out, three times.
        for k in 1..4 {
            let at = now + MS * k;
            conn.send_body(ids[0], Bytes::from_static(b"0123456789"), at - MS / 2)
                .unwrap();
            assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Begun(at + MS));
        }
        // None came in the last: it goes.
        assert_eq!(conn.hold_output(now + MS * 4, MS, MOST), OutputHold::Send);
        send_all(&mut conn, now + MS * 4);
        // The next piece, the output gone, is held again; pieces that keep
        // coming hold it no longer than four hold times.
        let start = now + MS * 5;
        conn.send_body(ids[0], Bytes::from_static(b"0123456789"), start)
            .unwrap();
        assert_eq!(
            conn.hold_output(start, MS, MOST),
            OutputHold::Begun(start + MS)
        );
        for k in 1..=4 {
            let at = start + MS * k;
            conn.send_body(ids[0], Bytes::from_static(b"0123456789"), at - MS / 2)
                .unwrap();
            let said = conn.hold_output(at, MS, MOST);
            if k < 4 {
                assert_eq!(said, OutputHold::Begun(at + MS), "after {k} hold times");
            } else {
                assert_eq!(said, OutputHold::Send, "after {k} hold times");
            }
        }
    }

    #[test]
    fn a_body_of_known_length_that_fits_leaves_whole_in_one_send() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        let length = 200_000;
        streamed(&mut conn, ids[0], Some(length), now);
        // Pieces past 64 KiB are still held: the whole fits the backlog.
        let mut at = now;
        for _ in 0..3 {
            conn.send_body(ids[0], Bytes::from(vec![b'x'; 60_000]), at)
                .unwrap();
            assert_ne!(conn.hold_output(at, MS, MOST), OutputHold::Send);
            at += MS / 2;
        }
        conn.send_body(ids[0], Bytes::from(vec![b'x'; 20_000]), at)
            .unwrap();
        // All of it given, not yet ended: nothing more to wait for.
        assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Send);
        conn.end_body(ids[0], at).unwrap();
        assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Send);
        assert!(pending(&conn) > length as usize);
    }

    /// Gives `n` bytes of the body of `id`, and asks whether they go.
    fn give(conn: &mut Handler, id: RequestId, n: usize, now: Instant, most: usize) -> OutputHold {
        conn.send_body(id, Bytes::from(vec![b'x'; n]), now).unwrap();
        conn.hold_output(now, MS, most)
    }

    #[test]
    fn a_chunked_or_longer_body_leaves_once_64_kib_are_held() {
        let now = Instant::now();
        // Chunked, or of a length the backlog (`most`) could not hold whole.
        let most = 50_000;
        for length in [None, Some(80_030)] {
            let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
            let id = ids[0];
            streamed(&mut conn, id, length, now);
            let said = give(&mut conn, id, 40_000, now, most);
            assert_eq!(said, OutputHold::Begun(now + MS), "{length:?}");
            let said = give(&mut conn, id, 40_000, now, most);
            assert_eq!(said, OutputHold::Send, "{length:?}");
            // Sent in part (the socket full): the rest is not held while
            // more comes behind it.
            conn.consume_output(10_000, now);
            let said = give(&mut conn, id, 10, now, most);
            assert_eq!(said, OutputHold::Send, "{length:?}");
            // Once all of it has gone, the next piece is held.
            send_all(&mut conn, now);
            let said = give(&mut conn, id, 10, now, most);
            assert_eq!(said, OutputHold::Begun(now + MS), "{length:?}");
            // A body that ends, or is all given, goes at once.
            let said = match length {
                Some(_) => give(&mut conn, id, 10, now, most),
                None => {
                    conn.end_body(id, now).unwrap();
                    conn.hold_output(now, MS, most)
                }
            };
            assert_eq!(said, OutputHold::Send, "{length:?}");
        }
    }

    #[test]
    fn no_hold_time_head_or_whole_response_goes_at_once() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        streamed(&mut conn, ids[0], None, now);
        conn.send_body(ids[0], Bytes::from_static(b"event"), now)
            .unwrap();
        assert_eq!(
            conn.hold_output(now, Duration::ZERO, MOST),
            OutputHold::Send
        );
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
        // The second is at the front now, behind the first's end, which is
        // not held for it.
        let later = now + 2 * MS;
        assert_eq!(conn.hold_output(later, MS, MOST), OutputHold::Send);
        // Once that has gone, the second's pieces have a hold of their own.
        send_all(&mut conn, later);
        conn.send_body(ids[1], Bytes::from_static(b"ab"), later)
            .unwrap();
        assert_eq!(
            conn.hold_output(later, MS, MOST),
            OutputHold::Begun(later + MS)
        );
    }

    /// Pipelined answers that come apart (a proxy's, from upstream
    /// connections of their own) leave together: the first waits a moment
    /// for the next while one is owed, and the wait is drawn out while
    /// answers keep coming. A lone answer whose next does not come goes
    /// after `hold_for`.
    #[test]
    fn pipelined_answers_wait_a_moment_for_the_next() {
        let now = Instant::now();
        let three = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3);
        let (mut conn, ids) = deferred(&three, now);
        let ok = || Response::new(StatusCode::OK).body("ok");
        conn.respond(ids[0], ok(), now).unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        conn.respond(ids[1], ok(), now + MS / 2).unwrap();
        assert_eq!(conn.hold_output(now + MS / 2, MS, MOST), OutputHold::Held);
        // One came in that time: the next is waited for again.
        let at = now + MS;
        assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Begun(at + MS));
        // None came: they go.
        assert_eq!(conn.hold_output(at + MS, MS, MOST), OutputHold::Send);
        // The last answer, once those have gone, has nothing to wait for.
        send_all(&mut conn, at + MS);
        conn.respond(ids[2], ok(), at + MS).unwrap();
        assert_eq!(conn.hold_output(at + MS, MS, MOST), OutputHold::Send);

        // Answers keep coming: at most four hold times, then what is held
        // goes, and the next answer after that waits again.
        let many = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8);
        let (mut conn, ids) = deferred(&many, now);
        conn.respond(ids[0], ok(), now).unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        for k in 1..=4 {
            conn.respond(ids[k as usize], ok(), now + MS * k - MS / 2)
                .unwrap();
            let said = conn.hold_output(now + MS * k, MS, MOST);
            match k {
                4 => assert_eq!(said, OutputHold::Send, "after {k} hold times"),
                _ => assert_eq!(said, OutputHold::Begun(now + MS * (k + 1)), "after {k}"),
            }
        }
        send_all(&mut conn, now + MS * 4);
        conn.respond(ids[5], ok(), now + MS * 5).unwrap();
        let said = conn.hold_output(now + MS * 5, MS, MOST);
        assert_eq!(said, OutputHold::Begun(now + MS * 6));
    }

    /// Output a send left behind (the socket full) waits on the socket, not
    /// on a hold, whether a hold released it or none was on.
    #[test]
    fn output_a_short_send_left_is_not_held_back() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        let whole = Response::new(StatusCode::OK).body("hello");
        conn.respond(ids[0], whole, now).unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        conn.consume_output(5, now);
        // The next request, deferred, comes while the rest waits.
        let mut later = Later::default();
        conn.receive(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut later);
        assert_eq!(later.0.len(), 1);
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
    }

    /// A send takes at most `MAX_SEND_PARTS` parts. What is left when it
    /// took them all (the socket was not full) is output like any other:
    /// it waits for more while the body goes on, rather than leaving
    /// alone (a chunk's CRLF, 2 bytes, went so after the eighth part, and
    /// the rest waited on Nagle's algorithm for the client's delayed ACK).
    #[test]
    fn the_rest_of_a_send_cut_by_its_parts_waits_for_more() {
        let now = Instant::now();
        // Pieces of 20 000 bytes, each a part (a chunk's framing one more):
        // one more piece than a send takes, a body longer than `most`.
        let given = |length, pieces| {
            let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
            streamed(&mut conn, ids[0], length, now);
            for _ in 0..pieces {
                conn.send_body(ids[0], Bytes::from(vec![b'x'; 20_000]), now)
                    .unwrap();
            }
            (conn, ids[0])
        };
        for (length, pieces) in [(None, 5), (Some(200_000), 8)] {
            let (mut conn, id) = given(length, pieces);
            let said = conn.hold_output(now, MS, 100_000);
            assert_eq!(said, OutputHold::Send, "{length:?}");
            let parts = conn.pending_output_parts();
            assert!(
                parts.iter().all(|p| !p.is_empty()),
                "{length:?}: a full send"
            );
            let n: usize = parts.iter().map(|p| p.len()).sum();
            assert!(n < pending(&conn), "{length:?}: more than a send takes");
            conn.consume_output(n, now);
            let rest = pending(&conn);
            assert_eq!(
                conn.hold_output(now, MS, 100_000),
                OutputHold::Begun(now + MS),
                "{length:?}: {rest} bytes left"
            );
            // A send the socket cut short is not held (it waits on the
            // socket): the same output, its last byte left.
            let (mut cut, _) = given(length, pieces);
            assert_eq!(cut.hold_output(now, MS, 100_000), OutputHold::Send);
            cut.consume_output(n - 1, now);
            assert_eq!(cut.hold_output(now, MS, 100_000), OutputHold::Send);
            // The body ends (all of it given): the rest goes, with the end.
            for _ in pieces..10 {
                conn.send_body(id, Bytes::from(vec![b'x'; 20_000]), now)
                    .unwrap();
            }
            if length.is_none() {
                conn.end_body(id, now).unwrap();
            }
            assert_eq!(conn.hold_output(now, MS, 100_000), OutputHold::Send);
            send_all(&mut conn, now);
        }
    }

    /// A 100 (Continue) behind more output than a send takes still goes
    /// at once, however many sends that takes: the client sends the body
    /// only once it has it.
    #[test]
    fn a_100_continue_behind_a_send_cut_by_its_parts_is_not_held() {
        let now = Instant::now();
        let two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
        let (mut conn, mut later) = (
            Handler::new(Limits::default(), now),
            LaterInPieces::default(),
        );
        conn.receive(two, now, &mut later);
        streamed(&mut conn, later.0[0], None, now);
        for _ in 0..5 {
            conn.send_body(later.0[0], Bytes::from(vec![b'x'; 20_000]), now)
                .unwrap();
        }
        conn.end_body(later.0[0], now).unwrap();
        // The PUT's turn: taken, its body asked for, its answer owed.
        conn.process(now, &mut later);
        assert_eq!(later.0.len(), 2);
        assert!(conn
            .pending_output_parts()
            .iter()
            .all(|part| !part.is_empty()));
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        let n: usize = conn.pending_output_parts().iter().map(|p| p.len()).sum();
        conn.consume_output(n, now);
        assert!(pending(&conn) > 0, "more than a send takes");
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        let rest = conn.pending_output_parts().concat();
        assert!(rest.ends_with(b"0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"));
    }

    /// Answers `/now` at once, defers the rest.
    #[derive(Default)]
    struct NowOrLater(Vec<RequestId>);

    impl Dispatch for NowOrLater {
        fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
            match request.path() {
                "/now" => Reply::Now(Response::new(StatusCode::OK).body("now")),
                _ => {
                    self.0.push(id);
                    Reply::Later
                }
            }
        }
    }

    /// A burst that starts with an answer given at once, after a hold was
    /// released with more output to come behind it: the hold is open again
    /// once what it released has gone, so that answer waits for the
    /// deferred one after it.
    #[test]
    fn an_answer_given_at_once_waits_again_once_a_released_hold_has_gone() {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), NowOrLater::default());
        conn.receive(
            &b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3),
            now,
            &mut service,
        );
        let long = vec![b'x'; 40_000];
        for id in &service.0[..2] {
            conn.respond(*id, Response::new(StatusCode::OK).body(&long[..]), now)
                .unwrap();
        }
        // 64 KiB held: released. The socket takes part; the last comes.
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        conn.consume_output(1000, now);
        conn.respond(
            service.0[2],
            Response::new(StatusCode::OK).body(&long[..]),
            now,
        )
        .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
        send_all(&mut conn, now);
        // The next burst: its first answer, given at once, waits.
        let burst = b"GET /now HTTP/1.1\r\nHost: x\r\n\r\nGET /later HTTP/1.1\r\nHost: x\r\n\r\n";
        let at = now + MS;
        conn.receive(burst, at, &mut service);
        assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Begun(at + MS));
        conn.respond(
            service.0[3],
            Response::new(StatusCode::OK).body("later"),
            at,
        )
        .unwrap();
        assert_eq!(conn.hold_output(at, MS, MOST), OutputHold::Send);
        let sent = conn.pending_output_parts();
        assert!(sent[0].ends_with(b"\r\n\r\nlater"), "{:?}", sent[0]);
        assert_eq!(sent[1], b"");
    }

    /// Pipelined answers held: once 64 KiB wait they go, and a 100
    /// (Continue) goes at once with what is before it.
    #[test]
    fn pipelined_answers_go_at_64_kib_or_with_a_100_continue() {
        let now = Instant::now();
        let (mut conn, ids) = deferred(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3), now);
        let long = vec![b'x'; 40_000];
        conn.respond(ids[0], Response::new(StatusCode::OK).body(&long[..]), now)
            .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Begun(now + MS));
        conn.respond(ids[1], Response::new(StatusCode::OK).body(&long[..]), now)
            .unwrap();
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);

        let two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
        let (mut conn, mut later) = (
            Handler::new(Limits::default(), now),
            LaterInPieces::default(),
        );
        conn.receive(two, now, &mut later);
        // The PUT waits for the GET's answer before it is taken.
        assert_eq!(later.0.len(), 1);
        conn.respond(later.0[0], Response::new(StatusCode::OK).body("ok"), now)
            .unwrap();
        // Its turn: taken, its body asked for, its answer owed.
        conn.process(now, &mut later);
        assert_eq!(later.0.len(), 2);
        let sent = conn.pending_output_parts().concat();
        assert!(sent.ends_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);

        // A 103 goes at once too: a hint is worth something only before
        // the answer it comes ahead of.
        let (mut conn, ids) = deferred(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
        let hint = Response::new(StatusCode::EARLY_HINTS);
        assert_eq!(conn.respond_interim(ids[0], &hint, now), Ok(true));
        assert_eq!(conn.hold_output(now, MS, MOST), OutputHold::Send);
    }
}
