//! Streamed bodies through the handler: a request body handed over piece by
//! piece as it arrives, a response body sent piece by piece.

use super::*;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Streams every request body: records the pieces and how it ended.
#[derive(Default)]
struct Streams {
    ids: Vec<RequestId>,
    body: Vec<u8>,
    ends: Vec<Result<(), BodyError>>,
}

impl Dispatch for Streams {
    const STREAMS: bool = true;

    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
        assert!(request.body().is_empty(), "a streamed body comes later");
        self.ids.push(id);
        Reply::Later
    }

    fn streams(&mut self, request: &Request<'_>) -> bool {
        request.path() == "/stream"
    }

    fn body(&mut self, _: RequestId, piece: &[u8]) {
        self.body.extend_from_slice(piece);
    }

    fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
        self.ends.push(result);
    }
}

fn take_output(conn: &mut Handler, now: Instant) -> String {
    let mut out = Vec::new();
    while conn.wants_write() {
        let pending = conn.pending_output().to_vec();
        conn.consume_output(pending.len(), now);
        out.extend_from_slice(&pending);
    }
    String::from_utf8(out).unwrap()
}

/// A body far over the size limit streams through, fed in every split, and
/// the pipelined request after it is read once it ends and its POST is
/// answered (only safe requests are processed side by side).
#[test]
fn a_body_over_the_limit_streams_through_in_pieces_and_the_next_request_follows() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Default::default()
    };
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let chunked: Vec<u8> = body
        .chunks(777)
        .flat_map(|c| {
            [
                format!("{:x}\r\n", c.len()).into_bytes(),
                c.to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat()
        })
        .chain(b"0\r\n\r\n".iter().copied())
        .collect();
    let heads = [
        format!(
            "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
    ];
    for (head, payload) in heads.iter().zip([body.clone(), chunked]) {
        let input = [
            head.clone(),
            payload,
            b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ]
        .concat();
        for step in [1, 100, 4096, input.len()] {
            let now = Instant::now();
            let (mut conn, mut service) = (Handler::new(limits.clone(), now), Streams::default());
            for piece in input.chunks(step) {
                conn.receive(piece, now, &mut service);
            }
            assert_eq!(service.body, body, "step {step}");
            assert_eq!(service.ends, [Ok(())]);
            assert_eq!(service.ids.len(), 1, "the GET waits for the POST's answer");
            conn.respond(service.ids[0], Response::new(StatusCode::OK), now)
                .unwrap();
            conn.process(now, &mut service);
            assert_eq!(service.ids.len(), 2, "the next request was dispatched too");
        }
    }
    // Not streamed: the limit holds.
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, now), Streams::default());
    conn.receive(
        b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        now,
        &mut service,
    );
    assert!(take_output(&mut conn, now).starts_with("HTTP/1.1 413 "));
}

/// A streamed upload of 6 bytes whose first 3 came, then paused.
fn paused_upload(now: Instant) -> (Handler, Streams) {
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc",
        now,
        &mut service,
    );
    assert_eq!(service.body, b"abc");
    conn.pause_body(service.ids[0], true, now);
    (conn, service)
}

/// Draining, the answer to a request whose body still streams in is the
/// last the connection gives: it says `Connection: close`, and the body is
/// still read to its end. (It promised keep-alive, and the connection
/// closed once the body was in.)
#[test]
fn a_drain_closes_with_the_answer_to_a_body_still_streaming() {
    let now = Instant::now();
    let (mut conn, mut service) = paused_upload(now);
    conn.pause_body(service.ids[0], false, now);
    conn.drain();
    let answer = Response::new(StatusCode::OK).body("ok");
    assert_eq!(conn.respond(service.ids[0], answer, now), Ok(()));
    let out = take_output(&mut conn, now);
    assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
    conn.receive(b"def", now, &mut service);
    assert_eq!(service.body, b"abcdef");
    assert_eq!(service.ends, [Ok(())]);
    assert!(conn.is_finished(), "{out}");
}

/// Draining, a response that closes the connection before a streamed
/// body behind it was answered ends that body (abandoned, told unread);
/// nothing goes out after the close. (The drain's keep-reading rule, meant
/// for the body's own answer, read it on and answered it after the close.)
#[test]
fn a_drain_s_earlier_closing_answer_still_ends_a_streamed_body_behind_it() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    let input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    let (a, b) = (service.ids[0], service.ids[1]);
    conn.drain();
    let close = Response::new(StatusCode::OK).header("Connection", "close");
    assert_eq!(conn.respond(a, close, now), Ok(()));
    let out = take_output(&mut conn, now);
    assert!(out.contains("Connection: close"), "{out}");
    assert!(conn.respond(b, Response::new(StatusCode::OK), now).is_err());
    let told = conn.take_broken_body().map(|(id, _)| id);
    let abandoned: Vec<RequestId> = conn.take_abandoned().collect();
    assert!(
        told == Some(b) || abandoned == [b],
        "{told:?} {abandoned:?}"
    );
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
}

#[test]
fn a_paused_body_is_not_read_until_resumed() {
    let now = Instant::now();
    let (mut conn, mut service) = paused_upload(now);
    assert!(!conn.wants_read());
    let respond = now + Limits::default().respond_timeout;
    assert_eq!(
        conn.deadline(),
        Some(respond),
        "held back is not stalled: no idle timeout"
    );
    conn.receive(b"def", now, &mut service);
    assert_eq!(service.body, b"abc", "held while paused");
    conn.pause_body(service.ids[0], false, now);
    assert!(conn.wants_read());
    conn.process(now, &mut service);
    assert_eq!(service.body, b"abcdef");
    assert_eq!(service.ends, [Ok(())]);
}

/// A client that closes while its body is paused: the body's end is told
/// (as broken off), not lost. (The pause kept it from being read, and the
/// close discarded it without a word.)
#[test]
fn a_paused_body_whose_client_closes_is_told_as_broken_off() {
    let now = Instant::now();
    let (mut conn, mut service) = paused_upload(now);
    conn.receive(b"de", now, &mut service);
    conn.receive_eof(now, &mut service);
    // Told through the loop, as for any close the handler cannot report
    // itself.
    assert!(service.ends.is_empty());
    assert_eq!(
        conn.take_broken_body(),
        Some((service.ids[0], BodyError::Truncated))
    );
}

#[test]
fn a_body_cut_short_ends_with_an_error_and_the_request_is_abandoned() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc",
        now,
        &mut service,
    );
    conn.receive_eof(now, &mut service);
    assert_eq!(service.ends, [Err(BodyError::Truncated)]);
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), service.ids);
    // No response had begun: the client is told.
    assert!(take_output(&mut conn, now).starts_with("HTTP/1.1 400 "));
    assert!(conn.is_finished());
}

/// A streamed response: chunked for HTTP/1.1, a length when known,
/// close-delimited for HTTP/1.0; responses behind it wait for its end.
#[test]
fn streamed_responses_are_framed_for_their_client_and_keep_their_place() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        now,
        &mut service,
    );
    let (a, b) = (service.ids[0], service.ids[1]);
    conn.respond(b, Response::new(StatusCode::OK).body("second"), now)
        .unwrap();
    conn.respond_stream(a, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(a, Bytes::from_static(b"hello "), now)
        .unwrap();
    let first = take_output(&mut conn, now);
    assert_eq!(
        conn.body_backlog(a),
        0,
        "its head, the piece, its chunk line and CRLF were its backlog"
    );
    assert_eq!(
        first, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n",
        "the chunk whole, its CRLF too"
    );
    assert_eq!(conn.body_backlog(a), 0);
    conn.send_body(a, Bytes::from_static(b"world"), now)
        .unwrap();
    conn.end_body(a, now).unwrap();
    assert_eq!(
        conn.send_body(a, Bytes::from_static(b"late"), now),
        Err(StreamError::Gone)
    );
    let rest = take_output(&mut conn, now);
    assert_eq!(
        rest,
        "5\r\nworld\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
    );

    // A known length; too much is refused, too little closes the connection.
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
    let id = service.ids[0];
    conn.respond_stream(id, Response::new(StatusCode::OK), Some(4), now)
        .unwrap();
    conn.send_body(id, Bytes::from_static(b"abc"), now).unwrap();
    assert_eq!(
        conn.send_body(id, Bytes::from_static(b"de"), now),
        Err(StreamError::Body(BodyError::TooLong))
    );
    assert_eq!(
        conn.end_body(id, now),
        Err(StreamError::Body(BodyError::TooShort))
    );
    assert_eq!(
        take_output(&mut conn, now),
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabc"
    );
    assert!(
        conn.is_finished(),
        "a response cut short ends the connection"
    );

    // HTTP/1.0 without a length: until the close.
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        now,
        &mut service,
    );
    let id = service.ids[0];
    conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(id, Bytes::from_static(b"raw"), now).unwrap();
    conn.end_body(id, now).unwrap();
    assert_eq!(
        take_output(&mut conn, now),
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nraw"
    );
    assert!(conn.is_finished());
}

/// Pipelined streamed responses share one backlog, the connection's: what
/// waits ahead of a response counts in its own, so that a service filling
/// each to the limit holds one limit per connection, not one per response.
#[test]
fn responses_pipelined_behind_a_streamed_one_count_what_waits_ahead_of_them() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
        now,
        &mut service,
    );
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| service.ids[i]);
    for id in [a, b, c, d] {
        conn.respond_stream(id, Response::new(StatusCode::OK), Some(1000), now)
            .unwrap();
    }
    let piece = || Bytes::from(vec![b'x'; 100]);
    // a's head is out first: what the connection holds before the pieces.
    let head = conn.body_backlog(a);
    assert!(head > 0);
    conn.send_body(a, piece(), now).unwrap();
    assert_eq!(conn.body_backlog(a), head + 100);
    conn.send_body(b, piece(), now).unwrap();
    assert_eq!(
        conn.body_backlog(b),
        head + 200,
        "a's piece is ahead of b's"
    );
    // To HEAD nothing is queued.
    conn.send_body(c, piece(), now).unwrap();
    assert_eq!(conn.body_backlog(c), 0);
    conn.send_body(d, piece(), now).unwrap();
    assert_eq!(
        conn.body_backlog(d),
        head + 300,
        "a's and b's pieces, then its own"
    );
    assert_eq!(
        conn.body_backlog(a),
        head + 100,
        "what waits behind it is not its own"
    );
    // a's bytes leave: b and d have less ahead of them.
    let _ = take_output(&mut conn, now);
    assert_eq!(conn.body_backlog(a), 0);
    assert_eq!((conn.body_backlog(b), conn.body_backlog(d)), (100, 200));
}

/// A streamed response waiting behind another holds its pieces with their
/// total kept as they come: however many tiny pieces pile up (one-byte
/// reads of a dripping source), each costs the same to take and to count,
/// the announced length still bounds them, and they go out in order.
#[test]
fn many_tiny_pieces_held_behind_the_front_are_counted_bounded_and_sent_in_order() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        now,
        &mut service,
    );
    let [a, b] = [0, 1].map(|i| service.ids[i]);
    const PIECES: usize = 1 << 16;
    conn.respond_stream(a, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.respond_stream(b, Response::new(StatusCode::OK), Some(PIECES as u64), now)
        .unwrap();
    assert_eq!(
        take_output(&mut conn, now),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for i in 0..PIECES {
        let byte = b'a' + (i % 26) as u8;
        conn.send_body(b, Bytes::from(vec![byte]), now).unwrap();
    }
    assert_eq!(conn.body_backlog(b), PIECES);
    assert!(
        matches!(
            conn.send_body(b, Bytes::from_static(b"!"), now),
            Err(StreamError::Body(BodyError::TooLong))
        ),
        "a piece past the announced length is refused while it is held"
    );
    conn.end_body(b, now).unwrap();
    conn.end_body(a, now).unwrap();
    let sent = take_output(&mut conn, now);
    let body: String = (0..PIECES)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let b_response = format!("HTTP/1.1 200 OK\r\nContent-Length: {PIECES}\r\n\r\n{body}");
    // a's last chunk, then b, whole and in order.
    assert!(sent == format!("0\r\n\r\n{b_response}"), "{}", &sent[..80]);
    assert_eq!(conn.body_backlog(b), 0);
}

/// A streamed body whose framing breaks before its response began gets the
/// status a whole one would get; after, the connection just closes.
#[test]
fn a_broken_stream_gets_its_status_if_the_response_has_not_begun() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        now,
        &mut service,
    );
    assert!(matches!(service.ends[..], [Err(BodyError::Chunked(_))]));
    assert!(take_output(&mut conn, now).starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), service.ids);
    assert!(conn.is_finished());
    // The same to HEAD: the status, no body (RFC 9110 §9.3.2).
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"HEAD /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        now,
        &mut service,
    );
    let out = take_output(&mut conn, now);
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "a body to HEAD: {out:?}");

    let limits = Limits {
        max_stream_bytes: 4,
        ..Default::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        now,
        &mut service,
    );
    let id = service.ids[0];
    conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
        .unwrap();
    let head = take_output(&mut conn, now);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    conn.receive(b"5\r\nhello\r\n", now, &mut service);
    assert!(matches!(
        service.ends[..],
        [Err(BodyError::Chunked(ChunkedError::BodyTooLarge))]
    ));
    assert!(conn.is_finished(), "begun: cut short, the connection ends");
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
}

/// A handler that read a GET (deferred) and a streamed chunked request with
/// the first piece of its body: the two requests' ids. (OPTIONS, a safe
/// method: only safe requests are taken behind one still unanswered.)
fn a_get_then_a_streamed_request(now: Instant) -> (Handler, Streams, RequestId, RequestId) {
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
          OPTIONS /stream HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        now,
        &mut service,
    );
    let [first, streamed] = service.ids[..] else {
        panic!("two requests: {:?}", service.ids)
    };
    (conn, service, first, streamed)
}

/// The output taken a little at a time, as a socket would: the connection
/// is finished only once all of it is taken.
fn take_until_finished(conn: &mut Handler, now: Instant) -> String {
    let mut out = Vec::new();
    while conn.wants_write() {
        assert!(!conn.is_finished(), "finished with output unsent");
        let piece = conn.pending_output().len().min(4096);
        out.extend_from_slice(&conn.pending_output()[..piece]);
        conn.consume_output(piece, now);
    }
    assert!(conn.is_finished());
    String::from_utf8(out).unwrap()
}

/// A streamed body that breaks after its whole response was given: that
/// response goes out whole, after those of the requests before it (still
/// deferred, and answered afterwards), and only then does the connection
/// end. (It ended at once, cutting whatever the socket had not taken, and
/// the earlier requests were abandoned.)
#[test]
fn a_stream_that_breaks_after_its_response_lets_every_response_out_whole() {
    let now = Instant::now();
    let (mut conn, mut service, first, streamed) = a_get_then_a_streamed_request(now);
    let big = vec![b'x'; 100_000];
    conn.respond(
        streamed,
        Response::new(StatusCode::OK).body(big.clone()),
        now,
    )
    .unwrap();
    conn.receive(b"zz\r\n", now, &mut service);
    assert!(matches!(service.ends[..], [Err(BodyError::Chunked(_))]));
    assert!(!conn.is_finished(), "the first response is still owed");
    assert_eq!(conn.take_abandoned().count(), 0);
    conn.respond(first, Response::new(StatusCode::NOT_FOUND).body("one"), now)
        .unwrap();
    let out = take_until_finished(&mut conn, now);
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out:.80}");
    // The second was encoded before the body broke, for a connection that
    // stayed open; that it closes after it takes nothing from it.
    let second = out
        .find("HTTP/1.1 200 OK\r\n")
        .expect("the second response");
    assert!(
        out[second..].contains("Content-Length: 100000\r\n"),
        "{out:.300}"
    );
    assert!(out.ends_with(&format!("\r\n\r\n{}", "x".repeat(100_000))));
}

/// A streamed body that breaks while its response streams: the responses
/// before it still go out whole (one deferred, answered afterwards), then
/// what was queued of the streamed one, cut short (no last chunk), then the
/// connection ends. (It ended at once, dropping what the socket had not
/// taken and abandoning the deferred request before it.)
#[test]
fn a_stream_that_breaks_while_its_response_streams_lets_those_before_it_out() {
    let now = Instant::now();
    let (mut conn, mut service, first, streamed) = a_get_then_a_streamed_request(now);
    conn.respond_stream(streamed, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(streamed, Bytes::from_static(b"partial"), now)
        .unwrap();
    conn.receive(b"zz\r\n", now, &mut service);
    assert!(matches!(service.ends[..], [Err(BodyError::Chunked(_))]));
    assert!(!conn.is_finished(), "the first response is still owed");
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [streamed]);
    let gone = conn.send_body(streamed, Bytes::from_static(b"more"), now);
    assert!(matches!(gone, Err(StreamError::Gone)));
    let big = "y".repeat(100_000);
    conn.respond(first, Response::new(StatusCode::OK).body(big.clone()), now)
        .unwrap();
    let out = take_until_finished(&mut conn, now);
    let second = out.find(&big).expect("the first response whole") + big.len();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"));
    assert_eq!(
        &out[second..],
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
        "cut short: no last chunk"
    );
}

/// A streamed response to HEAD of no known length announces no framing (the
/// body is not sent, and how GET would frame it is not known) and keeps the
/// connection, HTTP/1.0 keep-alive included. It announced chunked coding,
/// and closed HTTP/1.0 connections.
#[test]
fn a_streamed_head_response_of_unknown_length_announces_no_framing() {
    for (request, keep) in [
        (&b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"[..], ""),
        (
            b"HEAD /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "Connection: keep-alive\r\n",
        ),
    ] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
        conn.receive(request, now, &mut service);
        let id = service.ids[0];
        conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
            .unwrap();
        assert!(conn
            .send_body(id, Bytes::from_static(b"dropped"), now)
            .is_ok());
        conn.end_body(id, now).unwrap();
        let out = take_output(&mut conn, now);
        assert_eq!(out, format!("HTTP/1.1 200 OK\r\n{keep}\r\n"));
        assert!(!conn.is_finished(), "{out}");
        // The next request is served.
        conn.receive(b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
        assert_eq!(service.ids.len(), 2, "{out}");
    }
}

/// A streamed response whose head cannot start one (a switch, an interim
/// status, a transfer coding the connection would not name) goes out as a
/// 500 and the connection ends, without the service having to end a body
/// it never meant to send.
#[test]
fn a_streamed_response_refused_at_its_head_needs_no_end() {
    let coded = Response::new(StatusCode::OK).header("Transfer-Encoding", "gzip");
    let heads = [
        Response::new(StatusCode::SWITCHING_PROTOCOLS),
        Response::new(StatusCode::CONTINUE),
        coded,
    ];
    for head in heads {
        let status = head.status();
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
        conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
        let id = service.ids[0];
        conn.respond_stream(id, head, None, now).unwrap();
        let out = take_output(&mut conn, now);
        assert!(out.starts_with("HTTP/1.1 500 "), "{status:?}: {out}");
        assert!(conn.is_finished(), "{status:?}: waits for an end");
    }
}

/// A streamed body whose request fills the last place among the waiting
/// ones is still read and handed on: the connection wants its bytes, so it
/// must take them, not keep them. (`make soak` through the forwarding
/// service: a pipelined burst of 16 left a request's body piling up in the
/// input buffer, to 4 MiB of an 8 MiB body, and the heap grew.)
#[test]
fn a_streamed_body_is_read_on_when_no_more_requests_may_wait() {
    let now = Instant::now();
    let limits = Limits {
        max_waiting: 2,
        ..Default::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Streams::default());
    conn.receive(
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
OPTIONS /stream HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3000\r\n\r\n",
        now,
        &mut service,
    );
    // (A safe method: only safe requests are taken behind one unanswered.)
    assert_eq!(
        service.ids.len(),
        2,
        "both requests taken: no room for a third"
    );
    for piece in [b'a', b'b', b'c'] {
        assert!(conn.wants_read());
        conn.receive(&[piece; 1000], now, &mut service);
        assert_eq!(service.body.last(), Some(&piece), "handed on, not kept");
    }
    assert_eq!(service.body.len(), 3000);
    assert_eq!(service.ends, [Ok(())]);
    // The body done, no third request is taken while two wait: it is read
    // ahead, a head's worth at most, to notice a client that leaves.
    let third = b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut fed = 0;
    while conn.wants_read() && fed < 4 * Limits::default().max_head_bytes {
        conn.receive(third, now, &mut service);
        fed += third.len();
    }
    assert_eq!(service.ids.len(), 2);
    assert!(
        (Limits::default().max_head_bytes..=Limits::default().max_head_bytes + third.len())
            .contains(&fed),
        "{fed} bytes read ahead"
    );
}

/// A pause belongs to its body: once that body is all read, the next one
/// is read as usual.
#[test]
fn the_next_streamed_body_is_not_held_by_the_last_ones_pause() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    let two = b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\
POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
    conn.receive(&two[..], now, &mut service);
    // Held back late, after its body was all read (as the loop may).
    conn.pause_body(service.ids[0], true, now);
    // The second POST is taken once the first is answered.
    assert_eq!(service.ids.len(), 1);
    conn.respond(service.ids[0], Response::new(StatusCode::OK), now)
        .unwrap();
    conn.process(now, &mut service);
    assert_eq!(service.ids.len(), 2);
    assert!(conn.wants_read());
    conn.receive(b"cd", now, &mut service);
    assert_eq!(service.body, b"abcd");
    assert_eq!(service.ends, [Ok(()), Ok(())]);
}

/// A streamed response behind another, whose source breaks off before it
/// reaches the front: the pieces it had keep their chunk framing, no last
/// chunk follows, and the connection closes (the client sees it cut short,
/// never bytes where a chunk size belongs). Found by `make soak` through
/// the proxy with an upstream killed mid-response.
#[test]
fn a_queued_streamed_response_cut_short_keeps_its_framing() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        now,
        &mut service,
    );
    let (a, b) = (service.ids[0], service.ids[1]);
    conn.respond_stream(a, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.respond_stream(b, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(b, Bytes::from_static(b"queued"), now)
        .unwrap();
    conn.abort_body(b, now).unwrap();
    // Once is all: it has ended.
    assert!(matches!(conn.abort_body(b, now), Err(StreamError::Gone)));
    conn.send_body(a, Bytes::from_static(b"first"), now)
        .unwrap();
    conn.end_body(a, now).unwrap();
    assert_eq!(
        take_output(&mut conn, now),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n\
         HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nqueued\r\n"
    );
    assert!(conn.is_finished());
}

/// A request that closes the connection still has its streamed body read
/// to the end while its answer waits; nothing pipelined after it is.
#[test]
fn the_body_of_a_request_that_closes_is_read_and_nothing_after_it() {
    for closing in ["HTTP/1.1\r\nHost: x\r\nConnection: close", "HTTP/1.0"] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
        let input = format!(
            "POST /stream {closing}\r\nContent-Length: 5\r\n\r\nhelloPOST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"
        );
        conn.receive(input.as_bytes(), now, &mut service);
        assert_eq!(service.body, b"hello", "{closing}");
        assert_eq!(service.ends, [Ok(())], "{closing}");
        assert_eq!(service.ids.len(), 1, "{closing}");
        conn.respond(service.ids[0], Response::new(StatusCode::OK), now)
            .unwrap();
        let out = take_output(&mut conn, now);
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(conn.is_finished(), "{closing}");
    }
}

/// Streams every request body and answers at once (closing, if `closes`).
#[derive(Default)]
struct AnswersAtOnce {
    closes: bool,
    ends: Vec<(RequestId, Result<(), BodyError>)>,
}

impl Dispatch for AnswersAtOnce {
    const STREAMS: bool = true;

    fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
        let response = Response::new(StatusCode::OK);
        Reply::Now(match self.closes {
            true => response.header("Connection", "close"),
            false => response,
        })
    }

    fn streams(&mut self, _: &Request<'_>) -> bool {
        true
    }

    fn body_end(&mut self, id: RequestId, result: Result<(), BodyError>) {
        self.ends.push((id, result));
    }
}

/// However a streamed body ends, the service hears of it once: a stall
/// past the idle timeout and a connection that closes mid-body are handed
/// to the loop to tell it ([`Handler::take_broken_body`]); a response that
/// closes the connection before the body is read tells it at once.
#[test]
fn every_streamed_body_that_breaks_off_is_reported_once() {
    // The answer may wait longer than the body may stall.
    let limits = Limits {
        respond_timeout: Limits::default().idle_timeout * 2,
        ..Limits::default()
    };
    let start = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    let now = Instant::now();

    let (mut conn, mut service) = (Handler::new(limits.clone(), now), Streams::default());
    conn.receive(start.as_bytes(), now, &mut service);
    let id = service.ids[0];
    assert_eq!(conn.take_broken_body(), None);
    conn.handle_timeout(now + limits.idle_timeout + std::time::Duration::from_secs(1));
    assert_eq!(conn.take_broken_body(), Some((id, BodyError::Stalled)));
    assert_eq!(conn.take_broken_body(), None, "once");
    conn.abandon_all();
    conn.lose_connection();
    assert_eq!(conn.take_broken_body(), None, "not again at the close");
    assert!(service.ends.is_empty(), "the loop tells the service");

    let (mut conn, mut service) = (Handler::new(limits.clone(), now), Streams::default());
    conn.receive(start.as_bytes(), now, &mut service);
    conn.abandon_all();
    assert_eq!(conn.take_broken_body(), None, "abandoning is not losing");
    conn.lose_connection();
    assert_eq!(
        conn.take_broken_body(),
        Some((service.ids[0], BodyError::Truncated))
    );

    let closing = AnswersAtOnce {
        closes: true,
        ..AnswersAtOnce::default()
    };
    let (mut conn, mut service) = (Handler::new(limits.clone(), now), closing);
    conn.receive(start.as_bytes(), now, &mut service);
    assert_eq!(service.ends.len(), 1);
    assert_eq!(service.ends[0].1, Err(BodyError::Unread));
    assert_eq!(conn.take_broken_body(), None);
    assert!(take_output(&mut conn, now).contains("Connection: close\r\n"));

    // Told at once when the client closes mid-body (answered or not), and
    // not again when the loop then loses the connection.
    let (mut conn, mut service) = (Handler::new(limits.clone(), now), AnswersAtOnce::default());
    conn.receive(start.as_bytes(), now, &mut service);
    conn.receive_eof(now, &mut service);
    conn.abandon_all();
    conn.lose_connection();
    assert_eq!(service.ends.len(), 1, "{:?}", service.ends);
    assert_eq!(service.ends[0].1, Err(BodyError::Truncated));
    assert_eq!(conn.take_broken_body(), None);
    let (mut conn, mut service) = (Handler::new(limits.clone(), now), Streams::default());
    conn.receive(start.as_bytes(), now, &mut service);
    conn.receive_eof(now, &mut service);
    conn.abandon_all();
    conn.lose_connection();
    assert_eq!(service.ends, [Err(BodyError::Truncated)]);
    assert_eq!(conn.take_broken_body(), None);

    // A stall's own reason is what is told, whatever follows.
    let (mut conn, mut service) = (Handler::new(limits.clone(), now), AnswersAtOnce::default());
    conn.receive(start.as_bytes(), now, &mut service);
    conn.handle_timeout(now + limits.idle_timeout + std::time::Duration::from_secs(1));
    conn.abandon_all();
    conn.lose_connection();
    assert_eq!(
        conn.take_broken_body().map(|b| b.1),
        Some(BodyError::Stalled)
    );
    assert!(service.ends.is_empty());
}

/// A body paused longer than the idle timeout (its sink was full) is not
/// late when it resumes: its idle time starts over then.
#[test]
fn a_resumed_body_gets_its_whole_idle_timeout_again() {
    let limits = Limits {
        respond_timeout: Limits::default().idle_timeout * 4,
        ..Limits::default()
    };
    let idle = limits.idle_timeout;
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, now), Streams::default());
    let head = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    conn.receive(head.as_bytes(), now, &mut service);
    conn.pause_body(service.ids[0], true, now);
    let resumed = now + idle * 2;
    conn.handle_timeout(resumed);
    conn.pause_body(service.ids[0], false, resumed);
    conn.handle_timeout(resumed + idle / 2);
    assert!(
        !conn.wants_write(),
        "no 408 half an idle timeout after resuming"
    );
    conn.receive(b"defghij", resumed + idle / 2, &mut service);
    assert_eq!(service.body, b"abcdefghij");
    assert_eq!(service.ends, [Ok(())]);
}

/// An upload that keeps coming is not late, however long it takes; the
/// respond timeout counts from its end, or from its last piece once its
/// sink holds it back (nginx's proxy_send_timeout is likewise between two
/// writes, not over the whole body).
#[test]
fn an_upload_longer_than_the_respond_timeout_is_not_answered_504_while_it_flows() {
    let limits = Limits::default();
    let respond = limits.respond_timeout;
    let start = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, start), Streams::default());
    let head = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    conn.receive(head.as_bytes(), start, &mut service);
    // A KiB (progress: `min_progress_bytes`) every half respond timeout,
    // for three respond timeouts.
    let step = respond / 2;
    let mut now = start;
    let mut sent = 0;
    while now < start + respond * 3 {
        now += step;
        conn.handle_timeout(now);
        assert!(!conn.wants_write(), "answered while the body flows");
        conn.receive(&[b'x'; 1024], now, &mut service);
        sent += 1024;
    }
    assert!(sent < 100000);
    // Paused (its sink full) it is late a respond timeout after its last piece.
    conn.pause_body(service.ids[0], true, now);
    conn.handle_timeout(now + respond - std::time::Duration::from_millis(1));
    assert!(!conn.wants_write());
    conn.handle_timeout(now + respond);
    assert!(take_output(&mut conn, now + respond).starts_with("HTTP/1.1 504 "));
}

/// A request whose body is paused (its service waits for a check before
/// taking it) and that is not answered within the respond timeout gets its
/// 504, then the connection closes: its service, told the request is
/// abandoned, never resumes the body. (The connection stayed, paused,
/// with no deadline and nothing to read or write: held for good.)
#[test]
fn a_paused_body_whose_request_times_out_closes_after_its_504() {
    let limits = Limits::default();
    let respond = limits.respond_timeout;
    let start = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, start), Streams::default());
    let head = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc";
    conn.receive(head.as_bytes(), start, &mut service);
    let id = service.ids[0];
    conn.pause_body(id, true, start);
    let late = start + respond;
    conn.handle_timeout(late);
    let out = take_output(&mut conn, late);
    assert!(out.starts_with("HTTP/1.1 504 "), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
    assert!(
        conn.is_finished(),
        "the connection is held: {:?}",
        conn.deadline()
    );
}

/// A client that stalls its streamed body is late, not the service, which
/// may answer only once the body is in: the idle timeout ends it (408),
/// not the respond timeout (504), though the latter is shorter.
#[test]
fn a_stalled_upload_meets_the_idle_timeout_not_the_respond_timeout() {
    let limits = Limits::default();
    assert!(limits.respond_timeout < limits.idle_timeout);
    let start = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits.clone(), start), Streams::default());
    let head = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n";
    conn.receive(head.as_bytes(), start, &mut service);
    conn.receive(&[b'x'; 1024], start, &mut service);
    assert_eq!(conn.deadline(), Some(start + limits.idle_timeout));
    conn.handle_timeout(start + limits.respond_timeout);
    assert!(!conn.wants_write(), "answered 504 while the client sends");
    let stalled = start + limits.idle_timeout;
    conn.handle_timeout(stalled);
    assert!(take_output(&mut conn, stalled).starts_with("HTTP/1.1 408 "));
    assert_eq!(
        conn.take_broken_body().map(|(_, e)| e),
        Some(BodyError::Stalled)
    );
    // Once the body is in, the service has the respond timeout from there.
    let (mut conn, mut service) = (Handler::new(limits.clone(), start), Streams::default());
    conn.receive(head.as_bytes(), start, &mut service);
    let later = start + limits.respond_timeout * 3 / 2;
    conn.receive(&[b'x'; 1024], start, &mut service);
    conn.receive(&[b'x'; 976], later, &mut service);
    assert_eq!(service.ends, [Ok(())]);
    assert_eq!(conn.deadline(), Some(later + limits.respond_timeout));
    let late = later + limits.respond_timeout;
    conn.handle_timeout(late);
    assert!(take_output(&mut conn, late).starts_with("HTTP/1.1 504 "));
    // Held back by its sink after its client took its time: the respond
    // timeout runs from the pause.
    let (mut conn, mut service) = (Handler::new(limits.clone(), start), Streams::default());
    conn.receive(head.as_bytes(), start, &mut service);
    conn.receive(&[b'x'; 1024], start, &mut service);
    conn.pause_body(service.ids[0], true, later);
    conn.handle_timeout(later);
    assert!(!conn.wants_write(), "504 at the pause");
    assert_eq!(conn.deadline(), Some(later + limits.respond_timeout));
}

/// A deferred answer that closes the connection before the body is all
/// read: the body's end is still told, once (it was never told).
#[test]
fn a_body_cut_by_a_later_closing_answer_is_reported_unread() {
    for closing in ["HTTP/1.1\r\nHost: x\r\nConnection: close", "HTTP/1.0"] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
        let input = format!("POST /stream {closing}\r\nContent-Length: 1000\r\n\r\nabc");
        conn.receive(input.as_bytes(), now, &mut service);
        assert_eq!(service.body, b"abc");
        conn.respond(
            service.ids[0],
            Response::new(StatusCode::CONTENT_TOO_LARGE),
            now,
        )
        .unwrap();
        assert!(take_output(&mut conn, now).starts_with("HTTP/1.1 413 "));
        assert_eq!(
            conn.take_broken_body(),
            Some((service.ids[0], BodyError::Unread)),
            "{closing}"
        );
        conn.lose_connection();
        assert_eq!(conn.take_broken_body(), None, "told once");
        assert!(service.ends.is_empty(), "not also told by the handler");
    }
}

/// A body that runs on after its response was given whole is read only so
/// far: up to `max_body_after_response`, and the connection serves the next
/// request; past it, the connection closes once its response is out, and
/// the service hears the rest went unread. (It was read to the end however
/// long, a gigabyte after a 413 included.) Bytes that end the body within
/// one read are taken: the connection is kept at no further cost.
#[test]
fn a_body_read_on_after_its_response_is_bounded() {
    let limits = Limits {
        max_body_after_response: 1000,
        ..Limits::default()
    };
    let now = Instant::now();
    // In pieces of 500 after the first ten bytes: 1600 passes the limit
    // with its 1010th byte, before its end.
    for (length, kept) in [(1000usize, true), (1600, false), (100_000, false)] {
        let (mut conn, mut service) = (Handler::new(limits.clone(), now), AnswersAtOnce::default());
        let head = format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
        conn.receive(head.as_bytes(), now, &mut service);
        let out = take_output(&mut conn, now);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        // The body comes after the answer, a byte at a time at first.
        let body = vec![b'b'; length];
        for byte in &body[..10] {
            conn.receive(std::slice::from_ref(byte), now, &mut service);
        }
        for piece in body[10..].chunks(500) {
            conn.receive(piece, now, &mut service);
        }
        conn.receive(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
        let next = take_output(&mut conn, now);
        match kept {
            true => {
                assert_eq!(service.ends[..], [(service.ends[0].0, Ok(()))]);
                assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
                assert!(!conn.is_finished());
            }
            false => {
                assert!(
                    matches!(service.ends[..], [(_, Err(BodyError::Unread))]),
                    "{length}: {:?}",
                    service.ends
                );
                assert_eq!(next, "", "{length}: nothing more is read");
                assert!(conn.is_finished(), "{length}");
                assert!(!conn.wants_read());
            }
        }
    }
}

/// A streamed request that expects `100-continue` behind a deferred
/// response gets its 100 once that response is out, and before its own
/// (it got none, and a client that waits for it sent its body only at its
/// own timeout). A body sent without waiting, or a request answered while
/// the earlier one waits, gets none.
#[test]
fn a_streamed_body_behind_a_deferred_response_gets_its_100_continue_in_turn() {
    let now = Instant::now();
    // OPTIONS: only safe requests are taken behind one unanswered.
    let input = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
        OPTIONS /stream HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    // An idle timeout shorter than the respond timeout: the client waits
    // for the 100, not idles.
    let limits = Limits {
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    for (body_first, answered_first) in [(false, false), (true, false), (false, true)] {
        let (mut conn, mut service) = (Handler::new(limits.clone(), now), Streams::default());
        conn.receive(input, now, &mut service);
        let [first, streamed] = service.ids[..] else {
            panic!("two requests: {:?}", service.ids)
        };
        assert!(!conn.wants_write(), "nothing before the deferred response");
        let waits = now + limits.respond_timeout;
        assert_eq!(
            conn.deadline(),
            Some(waits),
            "the respond timeout, not the idle one"
        );
        conn.handle_timeout(now + Duration::from_secs(2));
        assert!(!conn.wants_write(), "no 408 while the 100 is owed");
        if body_first {
            conn.receive(b"a", now, &mut service);
        }
        if answered_first {
            let answer = Response::new(StatusCode::CONTENT_TOO_LARGE).body("no");
            conn.respond(streamed, answer, now).unwrap();
        }
        conn.respond(first, Response::new(StatusCode::OK).body("1"), now)
            .unwrap();
        let out = take_output(&mut conn, now);
        let owed = !body_first && !answered_first;
        assert_eq!(
            out.ends_with("\r\n\r\n1HTTP/1.1 100 Continue\r\n\r\n"),
            owed,
            "{out}"
        );
        assert_eq!(out.contains("100 Continue"), owed, "{out}");
        if answered_first {
            // No 100 will come, nor anything else it waits for: a body that
            // does not come is timed out as idle.
            assert_eq!(conn.deadline(), Some(now + limits.idle_timeout), "{out}");
            continue;
        }
        conn.receive(&b"abc"[body_first as usize..], now, &mut service);
        assert_eq!(service.body, b"abc");
        conn.respond(streamed, Response::new(StatusCode::OK).body("2"), now)
            .unwrap();
        let out = take_output(&mut conn, now);
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\n2"),
            "{out}"
        );
        assert!(!out.contains("100 Continue"), "one 100 only: {out}");
    }
}

/// Refuses streamed uploads at once (as a service that checks their size
/// or credentials does), or defers them.
struct RefusesAtOnce;

impl Dispatch for RefusesAtOnce {
    const STREAMS: bool = true;

    fn dispatch<'a>(&mut self, request: &Request<'a>, _: RequestId) -> Reply<'a> {
        match request.path() {
            "/refused" => Reply::Now(Response::new(StatusCode::CONTENT_TOO_LARGE)),
            _ => Reply::Later,
        }
    }

    fn streams(&mut self, _: &Request<'_>) -> bool {
        true
    }
}

/// A streamed upload that asks `Expect: 100-continue` and is refused at
/// once gets the refusal alone: no 100 asks for the body first. One
/// deferred still gets its 100 at once. (The 100 went before the service
/// was asked.)
#[test]
fn a_streamed_upload_refused_at_once_is_not_asked_for_its_body() {
    let now = Instant::now();
    for (path, status) in [("/refused", "413"), ("/later", "")] {
        let mut conn = Handler::new(Limits::default(), now);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000000\r\n\r\n"
        );
        conn.receive(head.as_bytes(), now, &mut RefusesAtOnce);
        let out = take_output(&mut conn, now);
        match status {
            "" => assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n"),
            _ => {
                assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
                assert!(!out.contains("100 Continue"), "{out}");
            }
        }
    }
}

/// A streamed upload that asks for `100-continue` and is answered (its
/// response head given) while behind a response still streaming gets its
/// 100 once its turn comes, before its head. (It never got one: a client
/// waiting for it stalled until the idle timeout.)
#[test]
fn an_upload_answered_behind_a_stream_gets_its_100_before_its_head() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    // OPTIONS: only safe requests are taken behind one unanswered.
    let input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
        OPTIONS /stream HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    let (a, b) = (service.ids[0], service.ids[1]);
    assert_eq!(
        conn.respond_stream(a, Response::new(StatusCode::OK), Some(1), now),
        Ok(())
    );
    assert_eq!(
        conn.respond_stream(b, Response::new(StatusCode::OK), None, now),
        Ok(())
    );
    assert!(
        !take_output(&mut conn, now).contains("100 Continue"),
        "not before its turn"
    );
    assert_eq!(conn.send_body(a, Bytes::from_static(b"x"), now), Ok(()));
    assert_eq!(conn.end_body(a, now), Ok(()));
    let out = take_output(&mut conn, now);
    assert!(
        out.starts_with("xHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{out:?}"
    );
    conn.receive(b"abc", now, &mut service);
    assert_eq!(service.body, b"abc");
}

/// A length of more than 19 digits (read as u64::MAX) is refused (413) even where bodies of
/// any length stream: it reads as u64::MAX, which no body ever reaches,
/// and the service would be told a length the client never sent.
#[test]
fn a_length_past_a_u64_is_refused_not_streamed() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        now,
        &mut service,
    );
    let out = take_output(&mut conn, now);
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(service.ids.is_empty(), "dispatched: {:?}", service.ids);
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Streams::default());
    conn.receive(
        b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n",
        now,
        &mut service,
    );
    assert_eq!(service.ids.len(), 1, "a length of 19 digits streams");
}

/// A client that reads nothing is dropped at the idle timeout, counted from
/// when it first had something to read, however often the service writes
/// meanwhile: pieces queued are not progress. (Each piece put the timeout
/// off, and a service that wrote on a timer, as one of server-sent events
/// does, grew the output without end.) A client that reads keeps its
/// connection.
#[test]
fn a_client_that_reads_nothing_is_dropped_at_the_idle_timeout_however_often_the_service_writes() {
    let limits = Limits::default();
    let idle = limits.idle_timeout;
    for reads in [false, true] {
        let t0 = Instant::now();
        let (mut conn, mut service) = (Handler::new(limits.clone(), t0), Streams::default());
        conn.receive(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", t0, &mut service);
        let id = service.ids[0];
        // The head is given late: the time to read it starts there.
        let given = t0 + idle * 3;
        conn.respond_stream(id, Response::new(StatusCode::OK), None, given)
            .unwrap();
        assert_eq!(conn.deadline(), Some(given + idle), "reads {reads}");
        for k in 1..=8u32 {
            let at = given + idle * k / 4;
            let sent = conn.send_body(id, Bytes::from_static(b"data: tick\n\n"), at);
            // Once dropped, its request is given up: nothing more is taken.
            let dropped = !reads && k > 4;
            assert_eq!(sent.is_err(), dropped, "piece {k}, reads {reads}");
            if reads {
                take_output(&mut conn, at);
            }
            conn.handle_timeout(at);
        }
        match reads {
            true => {
                assert!(!conn.is_finished());
                conn.send_body(id, Bytes::from_static(b"more"), given + idle * 3)
                    .unwrap();
                let out = take_output(&mut conn, given + idle * 3);
                assert!(out.ends_with("4\r\nmore\r\n"), "{out:?}");
            }
            false => {
                assert!(conn.is_finished(), "dropped at {:?}", conn.deadline());
                assert!(conn
                    .take_incident()
                    .is_some_and(|i| i.to_string().contains("stopped reading")));
                assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
            }
        }
    }
}

/// A streamed upload of 1 MB (its head and `first` bytes of it) answered
/// at once with a streamed response, then `step` every half idle timeout,
/// for three: how its body broke off, and when since it began, if it did.
fn broken_under(
    first: &[u8],
    mut step: impl FnMut(&mut Handler, &mut Streams, RequestId, Instant),
) -> Option<(BodyError, Duration)> {
    let limits = Limits::default();
    let idle = limits.idle_timeout;
    let t0 = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, t0), Streams::default());
    let head = "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    conn.receive(&[head.as_bytes(), first].concat(), t0, &mut service);
    let id = service.ids[0];
    conn.respond_stream(id, Response::new(StatusCode::OK), None, t0)
        .expect("pending");
    let _ = take_output(&mut conn, t0);
    let mut now = t0;
    for _ in 0..6 {
        now += idle / 2;
        conn.handle_timeout(now);
        if let Some((broken, error)) = conn.take_broken_body() {
            assert_eq!(broken, id);
            return Some((error, now - t0));
        }
        step(&mut conn, &mut service, id, now);
    }
    None
}

/// A body echoed back as it comes, a byte now and then, to a client that
/// takes all it is sent: what is sent back is no progress (the kernel takes
/// it; the client's sending is what counts), so the body is stalled at the
/// idle timeout. (Each echoed byte restarted the clock: through an echo, or
/// a proxy in front of one, a byte a minute held the connection for ever.)
/// A KiB at a time is progress, echoed or not.
#[test]
fn a_trickled_body_echoed_as_it_comes_stalls_at_the_idle_timeout() {
    let idle = Limits::default().idle_timeout;
    for (piece, outcome) in [(1, Some((BodyError::Stalled, idle))), (1024, None)] {
        let echoing = |conn: &mut Handler, service: &mut Streams, id, now| {
            conn.receive(&vec![b'x'; piece], now, service);
            let echo = Bytes::from(std::mem::take(&mut service.body));
            conn.send_body(id, echo, now).expect("streaming");
            let _ = take_output(conn, now);
        };
        assert_eq!(broken_under(b"", echoing), outcome, "{piece} at a time");
    }
}

/// A streamed body that stalls while its response streams, however much of
/// the response the client takes, is stalled at the idle timeout: while a
/// body comes, its bytes alone are progress (what the kernel takes of the
/// output says nothing of the client's sending). nginx's
/// `client_body_timeout` is likewise between two reads of the body.
#[test]
fn a_body_that_stalls_while_its_response_streams_stalls_at_the_idle_timeout() {
    let answering = |conn: &mut Handler, _: &mut Streams, id, now| {
        conn.send_body(id, Bytes::from(vec![b'y'; 4096]), now)
            .expect("streaming");
        // Taken a KiB at a time, then all.
        conn.consume_output(1024, now);
        let _ = take_output(conn, now);
    };
    let idle = Limits::default().idle_timeout;
    assert_eq!(
        broken_under(b"abc", answering),
        Some((BodyError::Stalled, idle))
    );
}

/// A client that closes its connection is logged as leaving during its
/// response once the streamed response's head went out, and before it
/// while the response was not ready.
#[test]
fn a_client_leaving_is_told_apart_during_and_before_its_response() {
    for begun in [true, false] {
        let now = Instant::now();
        let mut service = Streams::default();
        let mut conn = Handler::new(Limits::default(), now);
        conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
        let id = service.ids[0];
        if begun {
            conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
                .unwrap();
            conn.send_body(id, Bytes::from_static(b"part"), now)
                .unwrap();
            assert!(take_output(&mut conn, now).ends_with("4\r\npart\r\n"));
        }
        conn.receive_eof(now, &mut service);
        let reason = conn.take_incident().map(|i| i.reason);
        let expected = match begun {
            true => "client closed the connection during its response",
            false => "client closed the connection before its response was ready",
        };
        assert_eq!(reason, Some(expected), "begun: {begun}");
    }
}

/// A streamed body that memory cannot hold breaks off: its service is told
/// (`NoMemory`), and its client gets a 503 where no answer was given yet,
/// or the answer given and no other after it.
#[test]
fn a_streamed_body_no_memory_is_free_for_breaks_off() {
    let now = Instant::now();
    let head = b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    for answered_first in [false, true] {
        let mut conn = Handler::new(Limits::default(), now);
        let mut service = Streams::default();
        conn.receive(head, now, &mut service);
        let id = service.ids[0];
        if answered_first {
            let early = Response::new(StatusCode::OK).body("early");
            assert!(conn.respond(id, early, now).is_ok());
        }
        crate::test_alloc::with_allocations_failing_from(32 * 1024, || {
            conn.receive(&[b'a'; 48 * 1024], now, &mut service);
        });
        assert_eq!(service.ends, [Err(BodyError::NoMemory)]);
        let out = take_output(&mut conn, now);
        let statuses = out.matches("HTTP/1.1 ").count();
        match answered_first {
            false => {
                assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
                assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
            }
            true => assert!(
                out.starts_with("HTTP/1.1 200 ") && out.ends_with("early"),
                "{out}"
            ),
        }
        assert_eq!(statuses, 1, "{out}");
        assert!(conn.is_finished() || !conn.wants_read(), "reads on");
    }
}
