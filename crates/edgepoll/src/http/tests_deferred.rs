//! Deferred responses ([`Reply::Later`]): order, timeouts, closes and limits.

use super::*;
use std::time::{Duration, Instant};

/// Defers every request whose path starts with `/later`, answers the rest
/// at once with their path.
#[derive(Default)]
struct Defers {
    waiting: Vec<(RequestId, String)>,
}

impl Dispatch for Defers {
    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
        if request.path().starts_with("/later") {
            self.waiting.push((id, request.path().to_string()));
            Reply::Later
        } else {
            Reply::Now(Response::new(StatusCode::OK).body(request.path().as_bytes()))
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Takes everything the connection wants to send.
fn drain(conn: &mut Handler, now: Instant) -> String {
    let mut out = Vec::new();
    while conn.wants_write() {
        let pending = conn.pending_output();
        out.extend_from_slice(pending);
        let n = pending.len();
        conn.consume_output(n, now);
    }
    String::from_utf8(out).unwrap()
}

/// The bodies of the responses in `out`, in order.
fn bodies(out: &str) -> Vec<&str> {
    out.split("HTTP/1.1 ")
        .filter(|r| !r.is_empty())
        .map(|r| r.split_once("\r\n\r\n").map_or("", |(_, body)| body))
        .collect()
}

/// Only safe requests are processed side by side (RFC 9112 §9.3.2): a
/// request after an unsafe one still unanswered, or an unsafe one after
/// any unanswered, is taken once those before it are answered, so that a
/// GET cannot overtake a PUT (a proxy sends them over two connections) nor
/// a PUT a GET. Fed whole and a byte at a time (a method split between
/// reads). (Both were taken at once.)
#[test]
fn only_safe_requests_are_taken_while_others_are_unanswered() {
    let put = "PUT /later-put HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv";
    for (input, first) in [
        (format!("{put}{}", get("/later-get")), "/later-put"),
        (format!("{}{put}", get("/later-get")), "/later-get"),
    ] {
        for bytewise in [false, true] {
            let now = Instant::now();
            let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
            match bytewise {
                true => input
                    .as_bytes()
                    .iter()
                    .for_each(|b| conn.receive(std::slice::from_ref(b), now, &mut service)),
                false => conn.receive(input.as_bytes(), now, &mut service),
            }
            let taken: Vec<&str> = service.waiting.iter().map(|(_, p)| p.as_str()).collect();
            assert_eq!(taken, [first], "{input:?} bytewise {bytewise}");
            // Held: read on only to notice a client that leaves.
            assert!(conn.wants_read(), "{input:?} bytewise {bytewise}");
            let (id, _) = service.waiting[0];
            conn.respond(id, Response::new(StatusCode::OK), now)
                .unwrap();
            conn.process(now, &mut service);
            assert_eq!(service.waiting.len(), 2, "{input:?}: taken once answered");
        }
    }
    // Safe ones side by side, as before.
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later1"), get("/later2")].concat()
        + "OPTIONS /later3 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /later4 HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    assert_eq!(service.waiting.len(), 4);
    // A request answered at once is not waited for.
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = "POST /now1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_string()
        + &get("/later2")
        + "DELETE /later3 HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    let taken: Vec<&str> = service.waiting.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(taken, ["/later2"], "the DELETE waits for the GET only");
    assert!(drain(&mut conn, now).ends_with("\r\n\r\n/now1"));
}

/// Empty lines before a request read ahead behind a waiting one: a few are
/// passed over and the request behind them is taken side by side; a
/// longer run (looked at again on every read, it cost quadratic time) is
/// held until the waiting request is answered, and the request behind it
/// is then taken all the same. Fed whole and a byte at a time.
#[test]
fn empty_lines_read_ahead_behind_a_waiting_request_are_bounded() {
    for (line_ends, side_by_side) in [(1, true), (4, true), (5, false), (2000, false)] {
        let input = get("/later1") + &"\r\n".repeat(line_ends) + &get("/later2");
        let input = input.as_bytes();
        for bytewise in [false, true] {
            let now = Instant::now();
            let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
            // Fed while the connection reads on, as the loop feeds it.
            let mut fed = 0;
            let mut feed = |conn: &mut Handler, service: &mut Defers| {
                while fed < input.len() && conn.wants_read() {
                    let n = if bytewise { 1 } else { input.len() - fed };
                    conn.receive(&input[fed..fed + n], now, service);
                    fed += n;
                }
            };
            feed(&mut conn, &mut service);
            let case = format!("{line_ends} empty lines, bytewise {bytewise}");
            let taken: Vec<&str> = service.waiting.iter().map(|(_, p)| p.as_str()).collect();
            match side_by_side {
                true => assert_eq!(taken, ["/later1", "/later2"], "{case}"),
                // Held, and read on (a head's worth at most) only to
                // notice a client that leaves.
                false => assert_eq!(taken, ["/later1"], "{case}"),
            }
            let (id, _) = service.waiting[0];
            conn.respond(id, Response::new(StatusCode::OK), now)
                .unwrap();
            conn.process(now, &mut service);
            feed(&mut conn, &mut service);
            assert_eq!(fed, input.len(), "{case}");
            assert_eq!(service.waiting.len(), 2, "{case}: taken once answered");
            assert_eq!(service.waiting[1].1, "/later2", "{case}");
        }
    }
}

/// A safe request taken beside a waiting one has its body read on, however
/// the body begins: while a body is read, the order check sees its own
/// request's head (still at the front of the input), already let in, not
/// the body's bytes. Fed whole and a byte at a time.
#[test]
fn the_body_of_a_request_taken_side_by_side_is_not_checked_as_a_request() {
    let body = "DELETE /x HTTP/1.1\r\n";
    let input = get("/later1")
        + &format!(
            "GET /later2 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    for bytewise in [false, true] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        let input = input.as_bytes();
        let mut fed = 0;
        while fed < input.len() && conn.wants_read() {
            let n = if bytewise { 1 } else { input.len() - fed };
            conn.receive(&input[fed..fed + n], now, &mut service);
            fed += n;
        }
        let taken: Vec<&str> = service.waiting.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(taken, ["/later1", "/later2"], "bytewise {bytewise}");
        assert_eq!(fed, input.len(), "bytewise {bytewise}");
    }
}

/// A connection with a GET and then a HEAD waiting for their answers.
fn get_then_head(now: Instant) -> (Handler, RequestId, RequestId) {
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = get("/later1") + "HEAD /later2 HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    (conn, service.waiting[0].0, service.waiting[1].0)
}

/// A streamed response to a HEAD behind another response: its pieces are
/// dropped as they come, not held until it reaches the front (they were
/// held for nothing, and an exchange piped into it was read on meanwhile).
#[test]
fn pieces_for_a_head_behind_another_response_are_not_held() {
    let now = Instant::now();
    let (mut conn, first, head) = get_then_head(now);
    conn.respond_stream(head, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(head, bytes::Bytes::from(vec![b'x'; 1000]), now)
        .unwrap();
    assert_eq!(conn.body_backlog(head), 0);
    conn.end_body(head, now).unwrap();
    conn.respond(first, Response::new(StatusCode::OK).body("one"), now)
        .unwrap();
    let out = drain(&mut conn, now);
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.ends_with("\r\n\r\n") && !out.contains('x'), "{out}");
    // At the front, behind the pieces of the response before it not yet
    // sent: none of them is the HEAD's (they were counted as its backlog).
    let (mut conn, first, head) = get_then_head(now);
    conn.respond_stream(first, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(first, bytes::Bytes::from(vec![b'y'; 1000]), now)
        .unwrap();
    conn.end_body(first, now).unwrap();
    conn.respond_stream(head, Response::new(StatusCode::OK), None, now)
        .unwrap();
    conn.send_body(head, bytes::Bytes::from(vec![b'x'; 1000]), now)
        .unwrap();
    assert_eq!(conn.body_backlog(head), 0);
    let out = drain(&mut conn, now);
    assert!(
        out.contains(&"y".repeat(1000)) && !out.contains('x'),
        "{out}"
    );
}

/// Pipelined requests, fed whole or a byte at a time, answered by the
/// service in reverse order: the responses still leave in request order.
#[test]
fn responses_leave_in_request_order_whatever_order_they_come_in() {
    let input = [get("/later1"), get("/now2"), get("/later3"), get("/later4")].concat();
    for bytewise in [false, true] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        if bytewise {
            for b in input.as_bytes() {
                conn.receive(std::slice::from_ref(b), now, &mut service);
            }
        } else {
            conn.receive(input.as_bytes(), now, &mut service);
        }
        assert_eq!(conn.waiting_count(), 4);
        assert_eq!(
            drain(&mut conn, now),
            "",
            "nothing before the first is answered"
        );
        let waiting = std::mem::take(&mut service.waiting);
        for (id, path) in waiting.iter().rev().take(2) {
            conn.respond(*id, Response::new(StatusCode::OK).body(path.clone()), now)
                .unwrap();
        }
        assert_eq!(drain(&mut conn, now), "");
        let (first, path) = &waiting[0];
        conn.respond(
            *first,
            Response::new(StatusCode::OK).body(path.clone()),
            now,
        )
        .unwrap();
        let out = drain(&mut conn, now);
        assert_eq!(bodies(&out), ["/later1", "/now2", "/later3", "/later4"]);
        assert_eq!(conn.waiting_count(), 0);
        assert_eq!(
            conn.respond(*first, Response::new(StatusCode::OK), now),
            Err(Gone),
            "answered twice"
        );
    }
}

#[test]
fn an_unanswered_request_gets_504_at_the_respond_timeout_and_is_reported() {
    let limits = Limits {
        respond_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let start = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, start), Defers::default());
    conn.receive(get("/later").as_bytes(), start, &mut service);
    assert_eq!(
        conn.deadline(),
        Some(start + Duration::from_secs(5)),
        "not the idle timeout"
    );
    // Past the idle timeout, still waiting: the connection stays.
    conn.handle_timeout(start + Duration::from_secs(2));
    assert!(!conn.is_finished());
    assert_eq!(drain(&mut conn, start), "");
    let late = start + Duration::from_secs(5);
    conn.handle_timeout(late);
    let out = drain(&mut conn, late);
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
    assert_eq!(
        conn.take_abandoned().collect::<Vec<_>>(),
        [service.waiting[0].0]
    );
    assert_eq!(
        conn.respond(service.waiting[0].0, Response::new(StatusCode::OK), late),
        Err(Gone)
    );
    // The connection goes on: the next request is served.
    conn.receive(get("/next").as_bytes(), late, &mut service);
    assert_eq!(bodies(&drain(&mut conn, late)), ["/next"]);
}

#[test]
fn a_closing_response_abandons_the_requests_behind_it() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later1"), get("/later2"), get("/now3")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    let (first, second) = (service.waiting[0].0, service.waiting[1].0);
    let closing = Response::new(StatusCode::OK).header("Connection", "close");
    conn.respond(first, closing, now).unwrap();
    let out = drain(&mut conn, now);
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.contains("Connection: close\r\n"));
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [second]);
    assert!(conn.is_finished());
}

/// A response that closes, queued behind one still owed, stops the
/// requests after it from being processed (RFC 9112 §9.6) as a request
/// that closes does: one pipelined after it never reaches the service,
/// whole or streamed. (It was taken, then dropped unanswered.)
#[test]
fn nothing_after_a_queued_response_that_closes_is_processed() {
    for streamed in [false, true] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        let input = [get("/later1"), get("/later2")].concat();
        conn.receive(input.as_bytes(), now, &mut service);
        let (first, second) = (service.waiting[0].0, service.waiting[1].0);
        let closing = Response::new(StatusCode::OK).header("Connection", "close");
        match streamed {
            false => conn.respond(second, closing.body("two"), now).unwrap(),
            true => {
                conn.respond_stream(second, closing, Some(3), now).unwrap();
                conn.send_body(second, bytes::Bytes::from_static(b"two"), now)
                    .unwrap();
                conn.end_body(second, now).unwrap();
            }
        }
        // Read on while nothing waits: a client that leaves is noticed.
        assert!(conn.wants_read(), "streamed {streamed}");
        conn.receive(get("/later3").as_bytes(), now, &mut service);
        assert_eq!(service.waiting.len(), 2, "streamed {streamed}: taken");
        conn.respond(first, Response::new(StatusCode::OK).body("one"), now)
            .unwrap();
        let out = drain(&mut conn, now);
        assert_eq!(bodies(&out), ["one", "two"], "{out}");
        assert!(conn.is_finished(), "streamed {streamed}");
    }
}

/// A streamed response that closes the connection (to an HTTP/1.0 client,
/// its length unknown) still lets the client's leaving be noticed while it
/// streams: the stream is abandoned at the client's close. (Nothing was
/// read until the service wrote again.)
#[test]
fn a_client_leaving_during_a_closing_stream_is_noticed() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let request = "GET /later HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    conn.receive(request.as_bytes(), now, &mut service);
    let id = service.waiting[0].0;
    conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
        .unwrap();
    let head = drain(&mut conn, now);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(conn.wants_read(), "the client's close is looked for");
    conn.receive_eof(now, &mut service);
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id]);
}

/// A client that leaves while the answer to its last request (one that
/// closes the connection) is still to come is noticed, deferred or
/// streaming, and what it waits for abandoned. (The connection was no
/// longer read: the service worked on to its respond timeout, or, for a
/// stream, for as long as it wrote.)
#[test]
fn a_client_leaving_while_its_closing_request_waits_is_noticed() {
    let closing_requests = [
        "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /later HTTP/1.0\r\n\r\n",
    ];
    for closing in closing_requests {
        for streaming in [false, true] {
            let now = Instant::now();
            let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
            conn.receive(closing.as_bytes(), now, &mut service);
            let id = service.waiting[0].0;
            if streaming {
                conn.respond_stream(id, Response::new(StatusCode::OK), None, now)
                    .unwrap();
                drain(&mut conn, now);
            }
            assert!(conn.wants_read(), "{closing} streaming {streaming}");
            // What it sends meanwhile is dropped.
            conn.receive(get("/later2").as_bytes(), now, &mut service);
            assert_eq!(service.waiting.len(), 1, "{closing}");
            conn.receive_eof(now, &mut service);
            assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), [id], "{closing}");
            assert!(drain(&mut conn, now).is_empty() || streaming, "{closing}");
            assert!(conn.is_finished(), "{closing} streaming {streaming}");
        }
    }
}

/// Requests taken beside one whose response closes the connection are
/// given up when that response is given, not when it reaches the front:
/// their services are told at once, and what they give later is refused.
/// A request pipelined after it is dropped, and the connection read on
/// only to notice the client leave. (They were told when the closing
/// response went out, which for a stream to the end is never; a streamed
/// answer to one of them was held until then.)
#[test]
fn requests_behind_a_response_that_closes_are_given_up_when_it_is_given() {
    for how in ["whole", "streamed", "cut"] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        let input = [
            get("/later1"),
            get("/later2"),
            get("/later3"),
            get("/later4"),
        ]
        .concat();
        conn.receive(input.as_bytes(), now, &mut service);
        let ids: Vec<RequestId> = service.waiting.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 4, "all safe: taken side by side");
        // The fourth's answer is streaming (held behind the others).
        conn.respond_stream(ids[3], Response::new(StatusCode::OK), None, now)
            .unwrap();
        let two = Response::new(StatusCode::OK);
        match how {
            "whole" => conn
                .respond(ids[1], two.header("Connection", "close").body("two"), now)
                .unwrap(),
            "streamed" => conn
                .respond_stream(ids[1], two.header("Connection", "close"), Some(3), now)
                .unwrap(),
            _ => {
                conn.respond_stream(ids[1], two, Some(10), now).unwrap();
                conn.send_body(ids[1], bytes::Bytes::from_static(b"two"), now)
                    .unwrap();
                assert!(conn.end_body(ids[1], now).is_err(), "short");
            }
        }
        assert_eq!(
            conn.take_abandoned().collect::<Vec<_>>(),
            [ids[2], ids[3]],
            "{how}"
        );
        let late = conn.respond(ids[2], Response::new(StatusCode::OK).body("three"), now);
        assert_eq!(late, Err(Gone), "{how}");
        let piece = conn.send_body(ids[3], bytes::Bytes::from_static(b"four"), now);
        assert!(piece.is_err(), "{how}");
        assert!(
            conn.wants_read(),
            "{how}: the client's leaving is looked for"
        );
        conn.receive(get("/later5").as_bytes(), now, &mut service);
        assert_eq!(service.waiting.len(), 4, "{how}: nothing more is taken");
        conn.respond(ids[0], Response::new(StatusCode::OK).body("one"), now)
            .unwrap();
        if how == "streamed" {
            conn.send_body(ids[1], bytes::Bytes::from_static(b"two"), now)
                .unwrap();
            conn.end_body(ids[1], now).unwrap();
        }
        let out = drain(&mut conn, now);
        assert_eq!(bodies(&out), ["one", "two"], "{how}: {out}");
        assert!(!out.contains("three") && !out.contains("four"), "{out}");
        assert!(conn.is_finished(), "{how}");
        assert_eq!(conn.take_abandoned().count(), 0, "{how}: told once");
    }
}

/// A request that closes the connection is the last one processed, even
/// while its answer is still to come (RFC 9112 §9.6): what was pipelined
/// after it never reaches the service.
#[test]
fn nothing_after_a_request_that_closes_is_processed() {
    let closing_requests = [
        "GET /later1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /later1 HTTP/1.0\r\n\r\n",
    ];
    for closing in closing_requests {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        let input = [closing.to_string(), get("/later2"), get("/now3")].concat();
        conn.receive(input.as_bytes(), now, &mut service);
        assert_eq!(service.waiting.len(), 1, "{closing}");
        assert_eq!(conn.waiting_count(), 1, "{closing}");
        conn.respond(
            service.waiting[0].0,
            Response::new(StatusCode::OK).body("one"),
            now,
        )
        .unwrap();
        let out = drain(&mut conn, now);
        assert_eq!(
            bodies(&out.replace("HTTP/1.0 ", "HTTP/1.1 ")),
            ["one"],
            "{out}"
        );
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(conn.is_finished(), "{closing}");
    }
}

#[test]
fn a_client_that_closes_abandons_what_it_waits_for_but_gets_what_is_ready() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/now1"), get("/later2"), get("/now3")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    conn.receive_eof(now, &mut service);
    assert_eq!(
        conn.take_abandoned().collect::<Vec<_>>(),
        [service.waiting[0].0]
    );
    assert_eq!(bodies(&drain(&mut conn, now)), ["/now1"]);
    assert!(conn.is_finished());
    assert_eq!(
        conn.respond(service.waiting[0].0, Response::new(StatusCode::OK), now),
        Err(Gone)
    );
}

/// As many requests waiting as `max_waiting` allows: the next is not
/// taken, and only a head's worth is read on, kept for when there is room.
#[test]
fn too_many_waiting_requests_stop_the_taking() {
    let limits = Limits {
        max_waiting: 2,
        max_head_bytes: 1024,
        ..Default::default()
    };
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let input = [get("/later1"), get("/later2"), get("/later3")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    assert_eq!(service.waiting.len(), 2, "the third is not dispatched yet");
    let mut sent = 0;
    while conn.wants_read() {
        conn.receive(get("/later4").as_bytes(), now, &mut service);
        sent += 1;
        assert!(sent < 100, "read on without end");
    }
    assert!(
        sent * get("/later4").len() < 1024 + 64,
        "{sent} requests read ahead"
    );
    assert_eq!(service.waiting.len(), 2);
    conn.respond(service.waiting[0].0, Response::new(StatusCode::OK), now)
        .unwrap();
    conn.process(now, &mut service);
    assert_eq!(service.waiting.len(), 3);
    assert_eq!(service.waiting[2].1, "/later3");
}

/// A client that leaves while as many requests wait as `max_waiting`
/// allows is noticed at once, with the next one read ahead or not, and
/// its requests are abandoned (the connection was no longer read, and
/// the service worked on for nobody until the respond timeout).
#[test]
fn a_client_leaving_while_the_most_requests_wait_is_noticed() {
    for behind in ["", "GET /later3 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /lat"] {
        let limits = Limits {
            max_waiting: 2,
            ..Default::default()
        };
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
        let input = [get("/later1"), get("/later2"), behind.to_string()].concat();
        conn.receive(input.as_bytes(), now, &mut service);
        assert!(conn.wants_read(), "{behind:?}: the close would go unseen");
        conn.receive_eof(now, &mut service);
        let ids: Vec<_> = service.waiting.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 2, "{behind:?}");
        assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), ids, "{behind:?}");
        assert!(conn.is_finished(), "{behind:?}");
    }
}

/// What a client sends while its requests wait for the service's answers
/// is read ahead and no progress: one that reads nothing of what it was
/// sent is dropped at the idle timeout, however many bytes it trickles.
#[test]
fn bytes_read_ahead_do_not_keep_a_client_that_reads_nothing() {
    let idle = Duration::from_secs(5);
    let limits = Limits {
        idle_timeout: idle,
        max_waiting: 1,
        ..Limits::default()
    };
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let input = [get("/now"), get("/later")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    assert!(conn.wants_write(), "the first answer waits, never read");
    let mut at = now;
    for _ in 0..4 {
        at += idle - Duration::from_secs(1);
        if conn.is_finished() {
            break;
        }
        assert!(conn.wants_read(), "read ahead");
        conn.receive(b"G", at, &mut service);
        conn.handle_timeout(at);
    }
    assert!(conn.is_finished(), "held {:?}", at - now);
    assert_eq!(conn.last_progress(), now, "read ahead, no progress");
}

#[test]
fn a_bad_request_behind_a_waiting_one_is_refused_after_its_answer() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later"), "GET / HTTP/1.1\r\n\r\n".to_string()].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    assert_eq!(
        drain(&mut conn, now),
        "",
        "the 400 waits for the first response"
    );
    conn.respond(
        service.waiting[0].0,
        Response::new(StatusCode::OK).body("first"),
        now,
    )
    .unwrap();
    let out = drain(&mut conn, now);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("firstHTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(conn.is_finished());
}

#[test]
fn a_dropped_connection_abandons_everything_it_waited_for() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later1"), get("/now"), get("/later2")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    conn.abandon_all();
    let ids: Vec<_> = service.waiting.iter().map(|(id, _)| *id).collect();
    assert_eq!(conn.take_abandoned().collect::<Vec<_>>(), ids);
}

fn upgrade(path: &str) -> String {
    upgrade_to(path, "")
}

/// An offer to switch, `then` sent behind it.
fn upgrade_to(path: &str, then: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: demo\r\n\r\n{then}")
}

fn switch() -> Response<'static> {
    Response::new(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "upgrade")
        .header("Upgrade", "demo")
}

/// A 101 names its upgrade among the connection's options (RFC 9110
/// §7.8) whether or not the service said so, once. (Left out, it went
/// without.)
#[test]
fn a_101_names_the_upgrade_in_connection_once() {
    for given in [None, Some("upgrade"), Some("keep-alive, Upgrade")] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        conn.receive(upgrade("/later").as_bytes(), now, &mut service);
        let mut answer = Response::new(StatusCode::SWITCHING_PROTOCOLS).header("Upgrade", "demo");
        if let Some(options) = given {
            answer = answer.header("Connection", options);
        }
        conn.respond_switch(service.waiting[0].0, answer, now)
            .unwrap();
        let out = drain(&mut conn, now).to_ascii_lowercase();
        assert!(out.starts_with("http/1.1 101 "), "{out}");
        let connection: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("connection:"))
            .collect();
        assert_eq!(connection.len(), 1, "{given:?}: {out}");
        assert!(connection[0].contains("upgrade"), "{given:?}: {out}");
    }
}

/// A 101 without an `Upgrade` field naming the protocol (RFC 9110 §7.8)
/// is answered by a 500 that closes the connection, from `call` or from
/// `respond_switch`, and nothing switches. (It went out as a 101 and the
/// connection switched to what it did not name.)
#[test]
fn a_101_that_names_no_protocol_is_refused() {
    /// Switches, its `Upgrade` field (if any) valued as given.
    struct Unnamed(Option<&'static str>);
    impl Service for Unnamed {
        fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
            unnamed(self.0)
        }
    }
    fn unnamed<'a>(upgrade: Option<&'static str>) -> Response<'a> {
        let mut switch = Response::new(StatusCode::SWITCHING_PROTOCOLS);
        if let Some(value) = upgrade {
            switch = switch.header("Upgrade", value);
        }
        switch.header("Connection", "upgrade")
    }
    for upgrade in [None, Some(""), Some(" , ")] {
        let now = Instant::now();
        let input = upgrade_to("/", "then");
        // At once.
        let mut conn = Handler::new(Limits::default(), now);
        conn.receive(input.as_bytes(), now, &mut Unnamed(upgrade));
        assert!(!conn.is_upgraded(), "{upgrade:?}");
        let out = drain(&mut conn, now);
        assert!(out.starts_with("HTTP/1.1 500 "), "{upgrade:?}: {out}");
        assert!(out.ends_with("naming the protocol\n"), "{out}");
        assert!(conn.is_finished(), "{upgrade:?}");
        // Later.
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        conn.receive(upgrade_to("/later", "then").as_bytes(), now, &mut service);
        conn.respond_switch(service.waiting[0].0, unnamed(upgrade), now)
            .unwrap();
        assert!(!conn.is_upgraded(), "{upgrade:?}");
        let out = drain(&mut conn, now);
        assert!(out.starts_with("HTTP/1.1 500 "), "{upgrade:?}: {out}");
        assert!(out.ends_with("naming the protocol\n"), "{out}");
        assert!(conn.is_finished(), "{upgrade:?}");
    }
}

/// A deferred request that offers an upgrade holds everything after it,
/// fed whole or a byte at a time: a 101 hands those bytes to the new
/// protocol (after the responses owed before it); any other answer lets
/// them be read as the HTTP requests they then are.
#[test]
fn what_follows_an_offered_upgrade_waits_for_its_answer() {
    let input = [get("/later1"), upgrade("/later2"), get("/now3")].concat();
    for (bytewise, switches) in [(false, true), (true, true), (false, false), (true, false)] {
        let now = Instant::now();
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        if bytewise {
            for b in input.as_bytes() {
                conn.receive(std::slice::from_ref(b), now, &mut service);
            }
        } else {
            conn.receive(input.as_bytes(), now, &mut service);
        }
        // /now3 is not parsed: it may be the new protocol's.
        assert_eq!(conn.waiting_count(), 2);
        let (first, offer) = (service.waiting[0].0, service.waiting[1].0);
        // Only the offering request may switch.
        assert!(conn.respond_switch(first, switch(), now).is_err());
        if switches {
            conn.respond_switch(offer, switch(), now).unwrap();
            assert!(!conn.is_upgraded(), "the 101 waits for the first response");
            conn.respond(first, Response::new(StatusCode::OK).body("1"), now)
                .unwrap();
            assert!(conn.is_upgraded());
            let (output, rest) = conn.take_upgraded();
            let output = String::from_utf8(output).unwrap();
            assert!(output.starts_with("HTTP/1.1 200 OK\r\n"), "{output}");
            assert!(output.contains("\r\n\r\n1HTTP/1.1 101 Switching Protocols\r\n"));
            assert_eq!(rest, get("/now3").as_bytes());
        } else {
            // Not a 101 (a respond_switch with another status is refused).
            let refused = Response::new(StatusCode::OK);
            assert!(conn.respond_switch(offer, refused, now).is_err());
            conn.respond(offer, Response::new(StatusCode::OK).body("2"), now)
                .unwrap();
            conn.respond(first, Response::new(StatusCode::OK).body("1"), now)
                .unwrap();
            conn.process(now, &mut service);
            assert!(!conn.is_upgraded() && conn.wants_read());
            assert_eq!(bodies(&drain(&mut conn, now)), ["1", "2", "/now3"]);
        }
    }
}

/// While an offered upgrade waits for its answer, the connection is read
/// (what comes is kept, up to a head's size) so that a client that leaves
/// is noticed: its request is abandoned at once, not answered 504 to no
/// one at the respond timeout (nothing was read, so nothing was noticed).
#[test]
fn a_client_leaving_while_its_upgrade_waits_is_noticed() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(upgrade("/later").as_bytes(), now, &mut service);
    assert!(conn.wants_read());
    conn.receive_eof(now, &mut service);
    let abandoned: Vec<RequestId> = conn.take_abandoned().collect();
    assert_eq!(abandoned, [service.waiting[0].0]);
    assert!(conn.is_finished());
    // Kept for the new protocol, up to a head's size.
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(upgrade("/later").as_bytes(), now, &mut service);
    let early = vec![b'x'; Limits::default().max_head_bytes];
    conn.receive(&early, now, &mut service);
    assert!(!conn.wants_read(), "read no further");
    conn.respond_switch(service.waiting[0].0, switch(), now)
        .unwrap();
    let (_, rest) = conn.take_upgraded();
    assert_eq!(rest, early);
}

/// What a client sends while its switch waits behind a response it does
/// not read is no progress: it is dropped at the idle timeout. (Each byte
/// restarted the clock, and a byte a minute held the connection.)
#[test]
fn bytes_after_a_waiting_switch_do_not_keep_a_client_that_reads_nothing() {
    let now = Instant::now();
    let idle = Duration::from_secs(5);
    let limits = Limits {
        idle_timeout: idle,
        ..Limits::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let input = [get("/later1"), upgrade("/later2")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    let (first, offer) = (service.waiting[0].0, service.waiting[1].0);
    let head = Response::new(StatusCode::OK);
    conn.respond_stream(first, head, None, now)
        .expect("streams");
    conn.send_body(first, "never read".into(), now)
        .expect("sent");
    conn.respond_switch(offer, switch(), now).unwrap();
    let mut at = now;
    for _ in 0..4 {
        at += idle - Duration::from_secs(1);
        conn.receive(b"x", at, &mut service);
        conn.handle_timeout(at);
    }
    assert!(conn.is_finished(), "held {:?}", at - now);
}

/// An offered upgrade that nobody answers gets its 504 at the respond
/// timeout, and the connection goes on as HTTP; one answered at once, or
/// made by HTTP/1.0, or with a body, holds nothing back.
#[test]
fn an_unanswered_upgrade_times_out_and_http_goes_on() {
    let now = Instant::now();
    let limits = Limits {
        respond_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let input = [upgrade("/later"), get("/now")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    let later = now + Duration::from_secs(6);
    conn.handle_timeout(later);
    conn.process(later, &mut service);
    let out = drain(&mut conn, later);
    assert!(out.starts_with("HTTP/1.1 504 "), "{out}");
    assert_eq!(bodies(&out)[1], "/now");
    assert!(conn.wants_read());

    for held_nothing in [
        upgrade("/now").replace("/now", "/now-at-once"),
        upgrade("/later").replace("HTTP/1.1", "HTTP/1.0"),
        upgrade("/later").replace("\r\n\r\n", "\r\nContent-Length: 1\r\n\r\nx"),
        upgrade("/later").replace("keep-alive, Upgrade", "keep-alive"),
    ] {
        let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
        conn.receive(held_nothing.as_bytes(), now, &mut service);
        assert!(conn.wants_read(), "{held_nothing:?}");
    }
}

/// A response whose head went out (keep-alive) before the server began to
/// drain: once it ends, the connection finishes instead of waiting for a
/// request that must not come.
#[test]
fn a_drained_connection_finishes_after_a_response_begun_before() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(get("/later").as_bytes(), now, &mut service);
    let id = service.waiting[0].0;
    conn.respond_stream(id, Response::new(StatusCode::OK), Some(2), now)
        .unwrap();
    conn.drain();
    assert!(!conn.is_finished(), "its body is still owed");
    conn.send_body(id, bytes::Bytes::from_static(b"ok"), now)
        .unwrap();
    conn.end_body(id, now).unwrap();
    let out = drain(&mut conn, now);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"),
        "{out}"
    );
    assert!(conn.is_finished());

    // A request's `Upgrade` fields make one list, whatever their order and
    // whichever is empty; one with a chunked (empty) body offers nothing.
    fn offered<'a>(request: &Request<'a>) -> Response<'a> {
        match request.upgrade() {
            Some(offered) => {
                Response::new(StatusCode::OK).body(offered.collect::<Vec<_>>().join(&b","[..]))
            }
            None => Response::new(StatusCode::OK).body("none"),
        }
    }
    for (head, says) in [
        (
            "Connection: upgrade\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n",
            "a,b",
        ),
        (
            "Connection: upgrade\r\nUpgrade: a, b\r\nUpgrade: \r\n\r\n",
            "a,b",
        ),
        (
            "Connection: upgrade\r\nUpgrade: \r\nUpgrade: ,c\r\n\r\n",
            "c",
        ),
        ("Connection: upgrade\r\nUpgrade: ,\r\n\r\n", "none"),
        (
            "Connection: upgrade\r\nUpgrade: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "none",
        ),
    ] {
        let mut conn = Handler::new(Limits::default(), now);
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\n{head}");
        conn.receive(request.as_bytes(), now, &mut offered);
        assert!(drain(&mut conn, now).ends_with(says), "{head:?}");
    }
}

/// `Duration::MAX` means "never": it waits, where `now + timeout` panicked.
#[test]
fn timeouts_of_duration_max_never_fire_and_never_panic() {
    let limits = Limits {
        header_timeout: Duration::MAX,
        idle_timeout: Duration::MAX,
        respond_timeout: Duration::MAX,
        ..Limits::default()
    };
    let now = Instant::now();
    let mut conn = Handler::new(limits, now);
    let mut service = Defers::default();
    conn.receive(
        b"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTT",
        now,
        &mut service,
    );
    let later = now + Duration::from_secs(10 * 365 * 24 * 3600);
    assert!(conn.deadline().is_some_and(|d| d > later));
    conn.handle_timeout(later);
    assert!(!conn.wants_write() && !conn.is_finished());
}

/// Responses answered at once behind a deferred one wait in memory until
/// it is answered: they count against `max_pending_output_bytes` as the
/// output does, so reading stops once they fill it (they were not counted,
/// and up to `max_waiting` large responses could pile up per connection).
#[test]
fn responses_queued_behind_a_deferred_one_count_against_the_output_limit() {
    let now = Instant::now();
    let limits = Limits {
        max_pending_output_bytes: 10_000,
        ..Default::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let big = format!("/now{}", "x".repeat(3000));
    let input = [
        get("/later"),
        get(&big),
        get(&big),
        get(&big),
        get(&big),
        get(&big),
    ]
    .concat();
    conn.receive(input.as_bytes(), now, &mut service);
    // Four of 3 KiB pass the limit of 10 000: the fifth is not read.
    assert!(!conn.wants_read());
    let (id, _) = service.waiting.pop().unwrap();
    conn.respond(id, Response::new(StatusCode::OK).body("late"), now)
        .unwrap();
    let out = drain(&mut conn, now);
    assert_eq!(bodies(&out).len(), 5, "read up to the limit and one past");
    assert_eq!(bodies(&out)[0], "late");
    conn.process(now, &mut service);
    assert_eq!(bodies(&drain(&mut conn, now)), [big.as_str()]);
    assert!(conn.wants_read());
}

/// An interim response goes out only right before its final one: not while
/// an earlier response is owed, not to HTTP/1.0, not once the final one was
/// given, and never a 101 or a final status in its place.
#[test]
fn an_interim_response_goes_only_where_it_precedes_its_final_one() {
    let now = Instant::now();
    // Its own `Connection` is not the interim response's to say.
    let hints = Response::new(StatusCode::from_u16(103).unwrap())
        .header("Link", "</a.css>")
        .header("Connection", "upgrade");
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later1"), get("/later2")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    let (first, second) = (service.waiting[0].0, service.waiting[1].0);
    assert_eq!(conn.respond_interim(second, &hints, now), Ok(false));
    for not_interim in [StatusCode::SWITCHING_PROTOCOLS, StatusCode::OK] {
        let head = Response::new(not_interim);
        assert_eq!(conn.respond_interim(first, &head, now), Ok(false));
    }
    assert!(!conn.wants_write());
    assert_eq!(conn.respond_interim(first, &hints, now), Ok(true));
    conn.respond(first, Response::new(StatusCode::OK).body("one"), now)
        .unwrap();
    assert_eq!(conn.respond_interim(first, &hints, now), Err(Gone));
    assert_eq!(conn.respond_interim(second, &hints, now), Ok(true));
    conn.respond(second, Response::new(StatusCode::OK).body("two"), now)
        .unwrap();
    let out = drain(&mut conn, now);
    let interim = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
    assert_eq!(out.matches(interim).count(), 2, "{out}");
    assert!(out.starts_with(interim), "{out}");
    let second_at = out.find("one").unwrap();
    assert!(
        out[second_at..].starts_with(&format!("one{interim}HTTP/1.1 200 OK")),
        "{out}"
    );

    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(b"GET /later HTTP/1.0\r\n\r\n", now, &mut service);
    let id = service.waiting[0].0;
    assert_eq!(conn.respond_interim(id, &hints, now), Ok(false));
    assert!(!conn.wants_write());
}

/// `Expect: 100-continue` behind a deferred request: the 100 waits until
/// the response before it is out (an interim response belongs to the oldest
/// request unanswered), then goes, and the body it asked for is read. It
/// was never sent, and a client waiting for it waited for nothing.
#[test]
fn a_100_continue_behind_a_deferred_response_goes_once_that_one_is_out() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = get("/later")
        + "POST /now HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    conn.receive(input.as_bytes(), now, &mut service);
    assert!(!conn.wants_write(), "nothing before the deferred response");
    let (id, _) = service.waiting.pop().unwrap();
    conn.respond(id, Response::new(StatusCode::OK).body("late"), now)
        .unwrap();
    // The POST is taken once the GET is answered (as the loop does then).
    conn.process(now, &mut service);
    let out = drain(&mut conn, now);
    assert!(
        out.ends_with("\r\n\r\nlateHTTP/1.1 100 Continue\r\n\r\n"),
        "{out}"
    );
    conn.receive(b"hello", now, &mut service);
    assert!(drain(&mut conn, now).ends_with("\r\n\r\n/now"));
    // A body sent without waiting gets no 100.
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(input.as_bytes(), now, &mut service);
    conn.receive(b"hel", now, &mut service);
    let (id, _) = service.waiting.pop().unwrap();
    conn.respond(id, Response::new(StatusCode::OK).body("late"), now)
        .unwrap();
    conn.process(now, &mut service);
    conn.receive(b"lo", now, &mut service);
    let out = drain(&mut conn, now);
    assert!(!out.contains("100 Continue"), "{out}");
    assert!(out.ends_with("\r\n\r\n/now"), "{out}");
}

/// A drain while responses are owed sends every one of them, computed
/// before or after it, in order, the last with `Connection: close`, and
/// reads no request after them. (The first to go closed the connection,
/// and the responses queued behind it were dropped.)
#[test]
fn a_drain_sends_every_response_owed_and_reads_no_more() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    let input = [get("/later1"), get("/now2"), get("/later3")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    conn.drain();
    conn.receive(get("/now4").as_bytes(), now, &mut service);
    let ids: Vec<RequestId> = service.waiting.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 2, "no request read after the drain");
    for (id, body) in [(ids[0], "1"), (ids[1], "3")] {
        let answer = Response::new(StatusCode::OK).body(body.as_bytes());
        assert_eq!(conn.respond(id, answer, now), Ok(()));
    }
    let out = drain(&mut conn, now);
    assert_eq!(bodies(&out), ["1", "/now2", "3"], "{out}");
    assert_eq!(out.matches("Connection: close").count(), 1, "{out}");
    let last = out.rsplit("HTTP/1.1 ").next().unwrap_or("");
    assert!(
        last.contains("Connection: close"),
        "the last says it: {out}"
    );
    assert!(conn.is_finished());
}

/// A body that waits for the 100 it asked for, owed behind a deferred
/// response, is not the client's stall: no 408 at the idle timeout; the
/// 100 goes once that response has. (The idle timeout ran and refused a
/// client that was waiting, as asked, for its 100.)
#[test]
fn a_body_waiting_for_its_100_behind_a_deferred_response_is_not_timed_out() {
    let now = Instant::now();
    let limits = Limits {
        idle_timeout: Duration::from_secs(5),
        respond_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let post =
        "POST /now2 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    conn.receive(
        [get("/later1"), post.to_string()].concat().as_bytes(),
        now,
        &mut service,
    );
    assert_eq!(drain(&mut conn, now), "");
    assert_eq!(conn.deadline(), Some(now + Duration::from_secs(60)));
    conn.handle_timeout(now + Duration::from_secs(6));
    assert_eq!(drain(&mut conn, now), "", "no 408");
    let (id, _) = service.waiting[0].clone();
    let later = now + Duration::from_secs(7);
    assert_eq!(
        conn.respond(id, Response::new(StatusCode::OK).body("1"), later),
        Ok(())
    );
    conn.process(later, &mut service);
    let out = drain(&mut conn, later);
    assert!(
        out.ends_with("\r\n\r\n1HTTP/1.1 100 Continue\r\n\r\n"),
        "{out}"
    );
    conn.receive(b"hello", later, &mut service);
    assert_eq!(bodies(&drain(&mut conn, later)), ["/now2"]);
}

/// A body (of a safe request) that waits for its 100 behind a response that
/// streams for longer than the idle timeout, read by its client all along, is not the client's
/// stall: no 408; the 100 goes once that response ends. (The stream was not
/// pending, so the wait for the 100 was timed as the client's idleness,
/// and the output read meanwhile did not count.)
#[test]
fn a_body_waiting_for_its_100_behind_a_long_streamed_response_is_not_timed_out() {
    let idle = Duration::from_secs(5);
    let now = Instant::now();
    let limits = Limits {
        idle_timeout: idle,
        ..Limits::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    // Safe, so it is read while the response before it is owed (a POST
    // waits until it is out).
    let options =
        "OPTIONS /now2 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    conn.receive(
        [get("/later1"), options.to_string()].concat().as_bytes(),
        now,
        &mut service,
    );
    let (id, _) = service.waiting[0].clone();
    let head = Response::new(StatusCode::OK);
    conn.respond_stream(id, head, None, now).expect("streams");
    // A piece a second for four idle timeouts, each read as it comes.
    let mut at = now;
    for _ in 0..20 {
        at += Duration::from_secs(1);
        conn.send_body(id, "piece".into(), at).expect("sent");
        assert!(!drain(&mut conn, at).contains("100 Continue"));
        assert!(conn.deadline().is_none_or(|due| due > at), "{at:?}");
        conn.handle_timeout(at);
        assert!(!conn.wants_write() && !conn.is_finished(), "timed out");
    }
    // Then quiet for three idle timeouts, all of it read: the service is
    // late, not the client.
    at += idle * 3;
    assert_eq!(conn.deadline(), None);
    conn.handle_timeout(at);
    assert!(!conn.wants_write() && !conn.is_finished(), "timed out");
    conn.end_body(id, at).expect("ends");
    conn.process(at, &mut service);
    let out = drain(&mut conn, at);
    assert!(
        out.ends_with("0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"),
        "{out}"
    );
    conn.receive(b"hello", at, &mut service);
    assert_eq!(bodies(&drain(&mut conn, at)), ["/now2"]);
}

/// Draining with a response owed, the connection is still read so that a
/// client that leaves is noticed: its request is abandoned, not waited for
/// until the respond timeout.
#[test]
fn a_client_leaving_a_draining_connection_is_noticed() {
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(Limits::default(), now), Defers::default());
    conn.receive(get("/later1").as_bytes(), now, &mut service);
    conn.drain();
    assert!(conn.wants_read());
    conn.receive(get("/now2").as_bytes(), now, &mut service);
    assert_eq!(
        drain(&mut conn, now),
        "",
        "nothing read after the drain is answered"
    );
    conn.receive_eof(now, &mut service);
    let abandoned: Vec<RequestId> = conn.take_abandoned().collect();
    assert_eq!(abandoned, [service.waiting[0].0]);
    assert!(conn.is_finished());
}

/// A service that opts in to CONNECT: a target under `now` is answered at
/// once with the status its port names, any other deferred.
#[derive(Default)]
struct AnswersConnect {
    waiting: Vec<RequestId>,
}

impl Dispatch for AnswersConnect {
    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
        let target = request.target();
        if target.starts_with("echo:") {
            return Reply::Now(Response::new(StatusCode::OK).body(request.body()));
        }
        match target.strip_prefix("now:") {
            Some(code) => {
                let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
                Reply::Now(Response::new(status).body("tunnel bytes?"))
            }
            None => {
                self.waiting.push(id);
                Reply::Later
            }
        }
    }

    fn handles_connect(&self) -> bool {
        true
    }
}

/// A 2xx to CONNECT would tell the client its tunnel is open, and it would
/// take the bytes after the head (a Content-Length's body) as the tunnel's
/// (RFC 9110 §9.3.6); a connection here never becomes one. So such an
/// answer, given at once, later, or as a streamed head, goes out as a 500,
/// and the connection closes; any other status goes as given. (A 200 went
/// out with `Content-Length` and its body.)
#[test]
fn a_2xx_to_connect_goes_out_as_a_500() {
    let now = Instant::now();
    let connect = |target: &str| format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let refused = "HTTP/1.1 500 Internal Server Error\r\n";
    for (target, starts) in [
        ("now:200", refused),
        ("now:204", refused),
        ("now:407", "HTTP/1.1 407 "),
    ] {
        let mut conn = Handler::new(Limits::default(), now);
        let mut service = AnswersConnect::default();
        conn.receive(connect(target).as_bytes(), now, &mut service);
        let out = drain(&mut conn, now);
        assert!(out.starts_with(starts), "{target}: {out}");
        assert!(
            !out.contains("tunnel bytes?") || !starts.contains("500"),
            "{out}"
        );
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(conn.is_finished(), "{target}");
    }
    // A 200 echoing a body too large to copy (lent from the input): the
    // 500 alone goes out (the body went out after it, outside any message).
    let mut conn = Handler::new(Limits::default(), now);
    let big = "x".repeat(20_000);
    let request =
        format!("CONNECT echo:1 HTTP/1.1\r\nHost: echo:1\r\nContent-Length: 20000\r\n\r\n{big}");
    conn.receive(request.as_bytes(), now, &mut AnswersConnect::default());
    let out = drain(&mut conn, now);
    assert!(out.starts_with(refused), "{out}");
    assert!(!out.contains("xxxx"), "{} bytes out", out.len());
    assert!(conn.is_finished());
    // Later: whole, and as the head of a streamed body (whose pieces then
    // have nowhere to go).
    for streamed in [false, true] {
        let mut conn = Handler::new(Limits::default(), now);
        let mut service = AnswersConnect::default();
        conn.receive(connect("later:1").as_bytes(), now, &mut service);
        let id = service.waiting[0];
        let head = Response::new(StatusCode::OK);
        match streamed {
            false => conn.respond(id, head.body("tunnel bytes?"), now).unwrap(),
            true => {
                conn.respond_stream(id, head, Some(13), now).unwrap();
                assert!(conn.send_body(id, "tunnel bytes?".into(), now).is_err());
            }
        }
        let out = drain(&mut conn, now);
        assert!(out.starts_with(refused), "streamed {streamed}: {out}");
        assert!(!out.contains("tunnel bytes?"), "{out}");
        assert!(conn.is_finished(), "streamed {streamed}");
    }
}

/// A client that stops reading while responses are owed is dropped at the
/// idle timeout, and the requests still owed are reported as abandoned
/// (as at its own close): a service driving the handler itself learns of
/// them from `take_abandoned`, and answers to them are `Gone`.
#[test]
fn requests_owed_to_a_client_dropped_at_the_idle_timeout_are_abandoned() {
    let idle = Duration::from_secs(4);
    let now = Instant::now();
    let limits = Limits {
        idle_timeout: idle,
        ..Limits::default()
    };
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    conn.receive(
        [get("/later1"), get("/later2")].concat().as_bytes(),
        now,
        &mut service,
    );
    let (first, second) = (service.waiting[0].0, service.waiting[1].0);
    conn.respond_stream(first, Response::new(StatusCode::OK), None, now)
        .expect("streams");
    // More than is read: the client reads nothing.
    conn.send_body(first, vec![0u8; 300_000].into(), now)
        .expect("queued");
    let due = conn.deadline().expect("the idle timeout");
    conn.handle_timeout(due);
    assert!(conn.is_finished());
    let gone: Vec<RequestId> = conn.take_abandoned().collect();
    assert_eq!(gone, [first, second]);
    assert_eq!(conn.waiting_count(), 0);
    let late = Response::new(StatusCode::OK);
    assert!(conn.respond(second, late, due).is_err());
    assert!(conn.send_body(first, "more".into(), due).is_err());
}
