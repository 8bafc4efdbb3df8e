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

#[test]
fn too_many_waiting_requests_stop_the_reading() {
    let limits = Limits {
        max_waiting: 2,
        ..Default::default()
    };
    let now = Instant::now();
    let (mut conn, mut service) = (Handler::new(limits, now), Defers::default());
    let input = [get("/later1"), get("/later2"), get("/later3")].concat();
    conn.receive(input.as_bytes(), now, &mut service);
    assert_eq!(service.waiting.len(), 2, "the third is not dispatched yet");
    assert!(!conn.wants_read());
    conn.respond(service.waiting[0].0, Response::new(StatusCode::OK), now)
        .unwrap();
    conn.process(now, &mut service);
    assert_eq!(service.waiting.len(), 3);
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
