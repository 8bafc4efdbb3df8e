//! A service that waits: `forward_guest` answers each request with what an
//! upstream said, through the event loop's own client, on every runtime.
//! Upstreams are real servers on loopback ports: native ones in this process
//! (echo, delays, a stall), nginx, and the echo server under the same runtime.
//! `--ws-echo` serves WebSockets at the loop's default limits, for what the
//! examples' own limits keep them from showing.

use edgepoll_tests::upstream::{Behaviour, NativeUpstream, Nginx};
use edgepoll_tests::{
    connect, echo_load, on_each_runtime, on_each_runtime_alone, read_response, start_program,
    Running, Runtime,
};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn start_forward(runtime: &Runtime, options: &[&str], routes: &[String]) -> Running {
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    start_program(runtime, "forward_guest", options, &routes)
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What `/_stats` says, as `key=value` words; `value(key)` reads one.
fn stats_text(addr: std::net::SocketAddr) -> impl Fn(&str) -> String {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /_stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let (_, body) = read_response(&mut stream);
    let text = String::from_utf8(body).expect("text");
    move |key: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
            .to_string()
    }
}

/// What `/_stats` says: (requests waiting upstream, bytes allocated).
fn stats(addr: std::net::SocketAddr) -> (usize, usize) {
    let value = stats_text(addr);
    let number = |key: &str| value(key).parse().expect("a number");
    (number("waiting"), number("live"))
}

/// 64 keep-alive clients go through to a fast upstream while requests to a
/// stalled one wait: those get 504 at the respond timeout, and the others
/// are never held up by them.
#[test]
fn stalled_requests_get_504_and_never_delay_the_others() {
    // Alone: it measures a p99, which the binary's other tests would load.
    on_each_runtime_alone(|runtime| {
        let fast = NativeUpstream::start(Behaviour::Echo);
        let stalled = NativeUpstream::start(Behaviour::Stall);
        let forward = start_forward(
            runtime,
            &["--respond-timeout", "2"],
            &[
                format!("/slow={}", stalled.url()),
                format!("/={}", fast.url()),
            ],
        );
        let addr = forward.addr;
        let slow: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut stream = connect(addr);
                    let request = format!("GET /slow/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
                    stream.write_all(request.as_bytes()).expect("send");
                    let (head, _) = read_response(&mut stream);
                    (status(&head), started.elapsed())
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(4);
        let mut latencies = echo_load(addr, 64, "/echo", until);
        for handle in slow {
            let (code, waited) = handle.join().expect("slow client");
            assert_eq!(code, 504, "a stalled upstream's request");
            assert!(
                waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
                "504 after {waited:?}, with a 2 s respond timeout"
            );
        }
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100];
        println!(
            "{}: {} forwarded requests while 8 stalled; p50 {:?}, p99 {p99:?}",
            runtime.name(),
            latencies.len(),
            latencies[latencies.len() / 2]
        );
        // The stall lasts 2 s: a loop that waited on it would show here.
        assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
        assert_eq!(stats(addr).0, 0, "nothing left waiting");
    });
}

/// An app's own timers (`Context::set_timer`): requests with a deadline
/// of their own (`X-Deadline-Ms`) to a stalled upstream are answered 504
/// by the service when it comes, each no sooner, in the order of their
/// deadlines, however they were set; a request answered in time cancels
/// its timer, and so does a client that leaves; none fires twice, early,
/// or after it was cancelled (`/_stats` counts what fired).
#[test]
fn an_apps_timers_fire_at_their_deadlines_and_never_once_cancelled() {
    // Alone: it checks an order 300 ms apart, which a loaded machine blurs.
    on_each_runtime_alone(|runtime| {
        let fast = NativeUpstream::start(Behaviour::Echo);
        let stalled = NativeUpstream::start(Behaviour::Stall);
        // The loop's own 504 would come at 30 s: far after every deadline.
        let forward = start_forward(
            runtime,
            &["--respond-timeout", "30"],
            &[
                format!("/slow={}", stalled.url()),
                format!("/={}", fast.url()),
            ],
        );
        let addr = forward.addr;
        // Set out of order, 300 ms apart: 1500, 300, 900 ... ms.
        let deadlines: Vec<u64> = vec![1500, 300, 900, 1800, 600, 1200];
        let waiting: Vec<_> = deadlines
            .iter()
            .map(|&ms| {
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut stream = connect(addr);
                    let request = format!(
                        "GET /slow/{ms} HTTP/1.1\r\nHost: x\r\nX-Deadline-Ms: {ms}\r\n\r\n"
                    );
                    stream.write_all(request.as_bytes()).expect("send");
                    let (head, body) = read_response(&mut stream);
                    (ms, status(&head), body, started.elapsed(), Instant::now())
                })
            })
            .collect();
        // Answered in time: its timer is cancelled.
        let mut stream = connect(addr);
        stream
            .write_all(b"POST /in-time HTTP/1.1\r\nHost: x\r\nX-Deadline-Ms: 1500\r\nContent-Length: 2\r\n\r\nhi")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert_eq!(
            (status(&head), body.as_slice()),
            (200, &b"hi"[..]),
            "{head}"
        );
        // A client that leaves before its deadline: its timer is cancelled.
        let mut leaving = connect(addr);
        leaving
            .write_all(b"GET /slow/gone HTTP/1.1\r\nHost: x\r\nX-Deadline-Ms: 500\r\n\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(50));
        drop(leaving);
        let mut answered: Vec<_> = waiting
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect();
        for (ms, code, body, waited, _) in &answered {
            assert_eq!(
                (*code, body.as_slice()),
                (504, &b"deadline\n"[..]),
                "deadline {ms} ms"
            );
            assert!(
                *waited >= Duration::from_millis(*ms) && *waited < Duration::from_secs(10),
                "deadline {ms} ms answered after {waited:?}"
            );
        }
        answered.sort_by_key(|a| a.4);
        let order: Vec<u64> = answered.iter().map(|a| a.0).collect();
        let mut sorted = deadlines.clone();
        sorted.sort();
        assert_eq!(order, sorted, "answered in the order of their deadlines");
        // Past the cancelled ones' times (1.5 s and 0.5 s after they were
        // set, as long as the last deadline at most).
        std::thread::sleep(Duration::from_millis(300));
        let value = stats_text(addr);
        assert_eq!(
            value("ends"),
            format!("deadline:{}", deadlines.len()),
            "what fired (no timer-early, timer-unknown or timer-lost)"
        );
        assert_eq!(value("waiting"), "0");
    });
}

/// Deadlines that fall due in one round fire together, and what their
/// callbacks did is settled once: a request waiting for a pooled
/// connection that one of them frees, and that a later one of them gives
/// up, is never sent. Six pipelined requests (read in one round, so their
/// deadlines are the same instant) to a stalled upstream with a pool of
/// two: the upstream sees two connections, not one per request.
#[test]
fn timers_due_together_give_up_queued_requests_before_any_is_sent() {
    on_each_runtime(|runtime| {
        let stalled = NativeUpstream::start(Behaviour::Stall);
        let forward = start_forward(
            runtime,
            &["--respond-timeout", "30", "--max-per-origin", "2"],
            &[format!("/={}", stalled.url())],
        );
        let mut stream = connect(forward.addr);
        let requests: String = (0..6)
            .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: x\r\nX-Deadline-Ms: 300\r\n\r\n"))
            .collect();
        stream.write_all(requests.as_bytes()).expect("send");
        for i in 0..6 {
            let (head, body) = read_response(&mut stream);
            assert_eq!(
                (status(&head), body.as_slice()),
                (504, &b"deadline\n"[..]),
                "request {i}: {head}"
            );
        }
        // Time for a connection made last to be accepted, and for one
        // more, were there one.
        let accepted = || stalled.seen.accepted.load(Ordering::SeqCst);
        edgepoll_tests::wait_until(Duration::from_secs(10), || accepted() >= 2);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            stalled.seen.accepted.load(Ordering::SeqCst),
            2,
            "connections the stalled upstream accepted"
        );
        let value = stats_text(forward.addr);
        assert_eq!(value("waiting"), "0");
    });
}

/// Pipelined requests whose upstream answers come back in another order
/// are answered in the order they were sent.
#[test]
fn pipelined_answers_leave_in_request_order_whatever_order_they_arrive_in() {
    on_each_runtime(|runtime| {
        let upstream = NativeUpstream::start(Behaviour::Echo);
        let forward = start_forward(runtime, &[], &[format!("/={}", upstream.url())]);
        let mut stream = connect(forward.addr);
        let paths = ["/delay/600/a", "/delay/10/b", "/delay/300/c"];
        let pipelined: String = paths
            .iter()
            .map(|p| format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"))
            .collect();
        stream.write_all(pipelined.as_bytes()).expect("send");
        let order: Vec<String> = paths
            .iter()
            .map(|_| {
                let (head, _) = read_response(&mut stream);
                assert_eq!(status(&head), 200, "{head}");
                field(&head, "x-path").expect("X-Path").to_string()
            })
            .collect();
        assert_eq!(order, paths);
        let answered = upstream.seen.answered.lock().expect("lock").clone();
        assert_eq!(
            answered,
            ["/delay/10/b", "/delay/300/c", "/delay/600/a"],
            "the upstream answered them concurrently, out of order"
        );
    });
}

/// A body the application paused and later handed to the loop to carry
/// (after another exchange answered, as an authorisation check does): the
/// loop reads it again, with its own backpressure. A response paused at its
/// head (its body comes 50 ms later) and piped when the check answers 200 ms
/// on; a request body paused before it came and echoed when the check
/// answers. (Both waited for ever: the application's resume of a body the
/// loop carries is ignored, and nothing else resumed it.)
#[test]
fn a_body_paused_before_the_loop_carries_it_still_comes() {
    on_each_runtime(|runtime| {
        let checker = NativeUpstream::start(Behaviour::Echo);
        let reflect = NativeUpstream::start(Behaviour::ReflectInTwo);
        let routes = [
            format!("/delay={}", checker.url()),
            format!("/={}", reflect.url()),
        ];
        let forward = start_forward(runtime, &["--stream"], &routes);
        let mut stream = connect(forward.addr);
        stream
            .write_all(b"GET /held HTTP/1.1\r\nHost: x\r\nX-Pipe-After: /delay/200/check\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert_eq!(status(&head), 200, "{head}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("GET /held HTTP/1.1\r\n"), "{body:?}");

        stream
            .write_all(b"POST /_echo_after_check HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"hello world").expect("send");
        let (head, body) = read_response(&mut stream);
        assert_eq!(status(&head), 200, "{head}");
        assert_eq!(body, b"hello world");
    });
}

/// Clients that send a request and leave before its upstream answers: the
/// service is told, the upstream exchange ends, and 10 000 such cycles
/// leave the service's memory (bytes allocated, counted by the guest) and
/// the upstream's connections where they were. Eight clients at a time,
/// each waiting for its connection to close before the next: the measure is
/// then what is left over, not how many cycles happened to overlap.
#[test]
fn clients_that_leave_while_waiting_leak_nothing() {
    on_each_runtime(|runtime| {
        let upstream = NativeUpstream::start(Behaviour::Echo);
        let forward = start_forward(runtime, &[], &[format!("/={}", upstream.url())]);
        let addr = forward.addr;
        let cycles = |count: usize| {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    std::thread::spawn(move || {
                        for i in 0..count / 8 {
                            let mut stream = connect(addr);
                            let request =
                                format!("GET /delay/20/{t}/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
                            stream.write_all(request.as_bytes()).expect("send");
                            // Gone before the upstream's 20 ms are up; the
                            // service closes its side in turn.
                            stream.shutdown(Shutdown::Write).expect("shutdown");
                            let mut rest = Vec::new();
                            stream.read_to_end(&mut rest).expect("the service closes");
                            assert!(rest.is_empty(), "an abandoned request got {rest:?}");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("cycle thread");
            }
        };
        let settle = || {
            let started = Instant::now();
            loop {
                let (waiting, live) = stats(addr);
                let open = upstream.seen.open.load(Ordering::SeqCst);
                if waiting == 0 && open <= 32 {
                    return live;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "still {waiting} waiting and {open} upstream connections open"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        cycles(1000);
        let warm = settle();
        let started = Instant::now();
        cycles(10_000);
        let after = settle();
        println!(
            "{}: 10 000 abandoned requests in {:.1} s; {warm} bytes allocated after the warm-up, {after} after; upstream saw {} connections",
            runtime.name(),
            started.elapsed().as_secs_f64(),
            upstream.seen.accepted.load(Ordering::SeqCst)
        );
        // A leak of even 2 bytes a cycle would show.
        assert!(
            after <= warm + 20_000,
            "allocated bytes grew from {warm} to {after} over 10 000 cycles"
        );
    });
}

/// Real upstreams: nginx (a static file, a 3 MiB one, a `return 200`) and
/// the echo server under the same runtime; every body arrives intact.
#[test]
fn nginx_and_the_echo_server_as_upstreams() {
    on_each_runtime(|runtime| {
        let nginx = Nginx::start("");
        std::fs::write(nginx.root.join("small.txt"), b"a small static file\n").expect("write");
        let large: Vec<u8> = (0..3 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(nginx.root.join("large.bin"), &large).expect("write");
        let echo = edgepoll_tests::start_server(runtime, &[]);
        let forward = start_forward(
            runtime,
            &[],
            &[
                format!("/echo=http://{}", echo.addr),
                format!("/={}", nginx.url()),
            ],
        );
        let mut stream = connect(forward.addr);
        for (path, expected) in [
            ("/small.txt", &b"a small static file\n"[..]),
            ("/fixed", b"fixed answer from nginx\n"),
            ("/large.bin", &large[..]),
            ("/small.txt", b"a small static file\n"),
        ] {
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .expect("send");
            let (head, body) = read_response(&mut stream);
            assert_eq!(status(&head), 200, "{path}: {head}");
            assert!(
                body == expected,
                "{path}: {} bytes differ from the {} expected",
                body.len(),
                expected.len()
            );
        }
        let missing = {
            stream
                .write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            read_response(&mut stream).0
        };
        assert_eq!(status(&missing), 404, "nginx's own status comes through");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let request = [
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body.clone(),
        ]
        .concat();
        stream.write_all(&request).expect("send");
        let (head, echoed) = read_response(&mut stream);
        assert_eq!(status(&head), 200, "{head}");
        assert!(echoed == body, "the echo server's answer came back changed");
    });
}

/// A body the service makes itself, a piece (16 KiB) each time
/// `on_body_drained` asks for more (`Context::send_body`): it comes whole
/// and in order, and while its client does not read, the service is not
/// asked for more (the guest holds little). (The call came only after a
/// piece that left more than `body_backlog` queued: a service waiting for
/// it after each piece waited for ever.)
#[test]
fn a_body_made_a_piece_at_a_time_comes_whole_and_waits_for_its_reader() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &[], &[]);
        let size: usize = 24 << 20;
        let (_, before) = stats(forward.addr);
        let mut stream = connect(forward.addr);
        write!(stream, "GET /_generate?{size} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        // Unread for a while: the sockets' buffers fill, then the backlog.
        std::thread::sleep(Duration::from_secs(2));
        let value = stats_text(forward.addr);
        let live: usize = value("live").parse().expect("a number");
        assert_eq!(value("generating"), "1", "{name}");
        assert!(
            live < before + (4 << 20),
            "{name}: {live} bytes live while the reader paused ({before} before)"
        );
        let (head, body) = read_response(&mut stream);
        assert_eq!(status(&head), 200, "{name} {head}");
        assert_eq!(body.len(), size, "{name}");
        let wrong = body
            .iter()
            .enumerate()
            .position(|(i, &b)| b != (i % 251) as u8);
        assert_eq!(wrong, None, "{name}: the first wrong byte");
        // The connection serves on, and the guest keeps nothing of it.
        stream
            .write_all(b"GET /_generate?0 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert_eq!((status(&head), body.len()), (200, 0), "{name} {head}");
        assert_eq!(stats_text(forward.addr)("generating"), "0", "{name}");
        // To HEAD the head is all, the length GET would get included, and
        // the connection goes on (a service that sends a piece whenever
        // asked had its pieces dropped, round after round, spinning).
        stream
            .write_all(b"HEAD /_generate?1000000000000 HTTP/1.1\r\nHost: x\r\n\r\nGET /_generate?3 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).expect("the HEAD's head"),
                1,
                "{name}"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert_eq!(status(&head), 200, "{name} {head}");
        assert_eq!(
            field(&head, "content-length"),
            Some("1000000000000"),
            "{name}"
        );
        let (head, body) = read_response(&mut stream);
        assert_eq!(
            (status(&head), &body[..]),
            (200, &[0u8, 1, 2][..]),
            "{name} {head}"
        );
        // And the service is not asked for the HEAD's pieces, one after
        // another, for nothing: the loop rests.
        let ticks = || edgepoll_tests::cpu_ticks(forward.pid()).expect("the guest's CPU time");
        let before = ticks();
        std::thread::sleep(Duration::from_millis(1500));
        let spent = ticks() - before;
        assert!(spent <= 30, "{name}: {spent} ticks in 1.5 s at rest");
    });
}

/// A service that streams a body a status forbids (204), or more than the
/// length it announced, waiting for each piece's drained notice as it
/// should: the 204 is whole at its head and the connection serves on; the
/// response past its length is cut, its connection closed after what fit.
/// (Both pieces were dropped unannounced and no notice came: the stream
/// never ended, and the connection, with every request behind it, waited
/// for ever.)
#[test]
fn a_streamed_body_that_cannot_be_sent_ends_its_response() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &[], &[]);
        let mut stream = connect(forward.addr);
        stream
            .write_all(b"GET /_generate_no_content?100000 HTTP/1.1\r\nHost: x\r\n\r\nGET /_generate?3 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert_eq!((status(&head), body.len()), (204, 0), "{name} {head}");
        assert_eq!(field(&head, "content-length"), None, "{name} {head}");
        let (head, body) = read_response(&mut stream);
        assert_eq!(
            (status(&head), &body[..]),
            (200, &[0u8, 1, 2][..]),
            "{name} {head}"
        );
        // 20 000 announced, a piece of 16 KiB and then one a byte too long.
        let mut stream = connect(forward.addr);
        stream
            .write_all(b"GET /_generate_over?20000 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read to the close");
        let (head, body) = edgepoll_tests::split_head(&got);
        assert_eq!(
            field(&head, "content-length"),
            Some("20000"),
            "{name} {head}"
        );
        assert_eq!(body.len(), 16 * 1024, "{name}: what fit, then the close");
    });
}

/// A service that drops a client which stopped reading its endless stream
/// (`Context::disconnect`, here 500 ms after the request) resets the
/// connection then, not at the idle timeout (60 s) after what was queued
/// for it; the service is told (`on_abandoned`: nothing is generated any
/// more), the request pipelined behind it is given up, and other
/// connections are served meanwhile. (With `abort_body` the connection
/// stayed the minute, holding its socket's buffers.) A client that keeps
/// reading sees the reset too, not a clean end. The guest's
/// `App::on_start` set a timer, which has fired by then.
#[test]
fn a_client_the_service_drops_is_reset_at_once() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &[], &[]);
        let mut stream = connect(forward.addr);
        stream
            .write_all(
                b"GET /_generate_then_disconnect?500 HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /_stats HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .expect("send");
        // The stream has begun (its status line came); the rest is left
        // unread past the disconnect, and the sockets' buffers fill
        // meanwhile. The service is told, and forgets the stream.
        let mut begun = [0; 12];
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .read_exact(&mut begun)
            .expect("the stream's status line");
        let forgotten = edgepoll_tests::wait_until(Duration::from_secs(30), || {
            stats_text(forward.addr)("generating") == "0"
        });
        assert!(forgotten, "{name}: still generating 30 s on");
        let value = stats_text(forward.addr);
        // `App::on_start` ran, and the timer it set fired.
        assert_eq!(value("started"), "1", "{name}");
        // What the buffers held, then the reset (not a minute later).
        // (Kept whole: it is what the sockets' buffers held.)
        let (rest, _, end) = read_to_its_end(&mut stream, usize::MAX);
        let got = [&begun[..], &rest].concat();
        assert_eq!(
            end,
            Some(std::io::ErrorKind::ConnectionReset),
            "{name}: after {} bytes",
            got.len()
        );
        let (head, _) = edgepoll_tests::split_head(&got);
        assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        assert_eq!(
            got.windows(5).filter(|w| w == b"HTTP/").count(),
            1,
            "{name}: the pipelined request was not answered"
        );
        // A client that keeps reading, its body delimited by the close
        // (HTTP/1.0): the reset is still a reset, not a FIN that would
        // make what came look whole.
        let mut stream = connect(forward.addr);
        stream
            .write_all(b"GET /_generate_then_disconnect?300 HTTP/1.0\r\n\r\n")
            .expect("send");
        // (Counted, not kept: some hundreds of MB come in the 300 ms.)
        let (_, read, end) = read_to_its_end(&mut stream, 0);
        assert_eq!(
            end,
            Some(std::io::ErrorKind::ConnectionReset),
            "{name}: after {read} bytes read as they came"
        );
    });
}

/// Reads `stream` to its end (within 20 s of silence, and 60 s in all: a
/// stream that never ends fails the test): the first `keep` bytes of what
/// came, how many came, and the error it ended with (`None` for a clean
/// end of stream).
fn read_to_its_end(
    stream: &mut std::net::TcpStream,
    keep: usize,
) -> (Vec<u8>, usize, Option<std::io::ErrorKind>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut got, mut read, mut buf) = (Vec::new(), 0, vec![0; 64 * 1024]);
    loop {
        assert!(
            Instant::now() < deadline,
            "no end after 60 s and {read} bytes"
        );
        match stream.read(&mut buf) {
            Ok(0) => return (got, read, None),
            Ok(n) => {
                read += n;
                let room = keep.saturating_sub(got.len()).min(n);
                got.extend_from_slice(&buf[..room]);
            }
            Err(e) => return (got, read, Some(e.kind())),
        }
    }
}

/// A drain (here after `--stop-after 2` requests) tells the app
/// (`App::on_drain`), which ends the endless stream it was sending: the
/// client gets what was sent, then the close, and the service exits.
/// (Untold, the app streamed on, and the drain lasted as long as the client
/// read.) A request under way at the drain is taken after it, with
/// `Context::draining` set: it gets no endless stream.
#[test]
fn a_drain_tells_the_app_which_ends_its_endless_stream() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let mut forward = start_forward(runtime, &["--stop-after", "2"], &[]);
        let mut stream = connect(forward.addr);
        let endless: u64 = 1 << 40;
        let request = format!("GET /_generate?{endless} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        // Another, under way when the drain begins: its head half sent.
        let mut late = connect(forward.addr);
        late.write_all(&request.as_bytes()[..20]).expect("send");
        // Time for the server to read it: under way, not idle, at the drain.
        std::thread::sleep(Duration::from_millis(300));
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).expect("the head");
            assert!(n > 0, "{name}: closed before the head");
            got.extend_from_slice(&buf[..n]);
        }
        // The second request: the drain begins.
        let _ = stats_text(forward.addr);
        // The late one is still taken, but told of the drain: no stream.
        late.write_all(&request.as_bytes()[20..]).expect("send");
        let (head, body) = read_response(&mut late);
        assert_eq!(
            (status(&head), &body[..]),
            (503, &b"draining\n"[..]),
            "{name} {head}"
        );
        // Read on, as a client that keeps up does, to the close (1 TiB
        // would take hours).
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let n = stream.read(&mut buf).expect("read to the close");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            assert!(
                Instant::now() < until,
                "{name}: the stream went on after the drain began"
            );
        }
        let (head, body) = edgepoll_tests::split_head(&got);
        assert_eq!(status(&head), 200, "{name} {head}");
        let expected: Vec<u8> = (0..body.len() as u64).map(|i| (i % 251) as u8).collect();
        assert!(
            body == &expected[..],
            "{name}: the body sent is the one generated"
        );
        assert!(
            edgepoll_tests::wait_until(Duration::from_secs(10), || !forward.is_alive()),
            "{name}: the service did not exit after its drain"
        );
        let exit = forward.exit_status();
        assert!(exit.is_some_and(|s| s.success()), "{name}: {exit:?}");
    });
}

/// What `/_stats` says of the `/_count` bodies: (being read, how they ended).
fn count_stats(addr: std::net::SocketAddr) -> (String, String) {
    let value = stats_text(addr);
    (value("counting"), value("ends"))
}

/// A service that answers from its request body's first piece, echoing
/// the rest (`Context::respond_with_request_body` in `on_request_body`):
/// the pieces read with that first one, in the same batch, go into the
/// response too, whole and in order.
#[test]
fn an_echo_begun_at_the_body_s_first_piece_keeps_every_piece() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &[], &[]);
        let size = 2 * 1024 * 1024;
        let mut body = vec![0u8; size];
        edgepoll_tests::upstream::pattern(0, &mut body);
        // Several times: how many pieces one read brings is up to timing.
        for round in 0..24 {
            let mut stream = connect(forward.addr);
            let mut writer = stream.try_clone().expect("clone");
            let head =
                format!("POST /_echo_late HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
            let request = [head.as_bytes(), &body].concat();
            let sending = std::thread::spawn(move || {
                // One write: the server reads several pieces at a time.
                writer.write_all(&request).expect("send");
            });
            let (answer, echoed) = read_response(&mut stream);
            sending.join().expect("sender");
            assert_eq!(status(&answer), 200, "{name} {answer}");
            assert_eq!(echoed.len(), size, "{name}, round {round}");
            assert!(
                edgepoll_tests::upstream::is_pattern(0, &echoed),
                "{name}: the echo differs"
            );
        }
    });
}

/// A body the service reads itself is reported to it once however it
/// ends: whole, cut by the client's close (answered yet or not), cut by a
/// reset, or stalled past the idle timeout (a 408); and the service holds
/// nothing for any of them (a second report would show as `unknown`).
#[test]
fn a_body_the_service_reads_is_reported_once_however_it_ends() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &["--idle-timeout", "1"], &[]);
        let head = |extra: &str| {
            format!("POST /_count HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: 300000\r\n\r\n")
        };
        let mut whole = connect(forward.addr);
        whole.write_all(head("").as_bytes()).expect("send");
        whole.write_all(&vec![b'a'; 300_000]).expect("send");
        let (answer, body) = read_response(&mut whole);
        assert_eq!(status(&answer), 200, "{name} {answer}");
        assert_eq!(body, b"bytes=300000\n", "{name}");

        let mut closed = connect(forward.addr);
        closed.write_all(head("").as_bytes()).expect("send");
        closed.write_all(&[b'b'; 1000]).expect("send");
        closed.shutdown(Shutdown::Write).expect("shut down");
        // A close with its 100 Continue unread: the kernel sends a reset.
        let mut reset = connect(forward.addr);
        reset
            .write_all(head("Expect: 100-continue\r\n").as_bytes())
            .expect("send");
        reset.write_all(&[b'c'; 1000]).expect("send");
        std::thread::sleep(Duration::from_millis(300));
        drop(reset);

        // Answered at once, then cut by the client's close: told once.
        let mut early = connect(forward.addr);
        early
            .write_all(head("").replace("/_count", "/_count?now").as_bytes())
            .expect("send");
        let (answer, _) = read_response(&mut early);
        assert_eq!(status(&answer), 200, "{name} {answer}");
        early.write_all(&[b'e'; 1000]).expect("send");
        early.shutdown(Shutdown::Write).expect("shut down");

        let mut stalled = connect(forward.addr);
        stalled.write_all(head("").as_bytes()).expect("send");
        stalled.write_all(&[b'd'; 1000]).expect("send");
        let (answer, _) = read_response(&mut stalled);
        assert_eq!(status(&answer), 408, "{name} {answer}");

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (counting, ends) = count_stats(forward.addr);
            if ends == "ok:1,stalled:1,truncated:3" && counting == "0" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: counting={counting} ends={ends}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// A client that goes on sending a huge body after its whole answer is
/// read only so far (`Limits::max_body_after_response`, 256 KiB): the
/// connection closes after the answer, and the service hears the rest went
/// unread. (It read all 64 MiB, keeping the connection for the next
/// request.)
#[test]
fn a_body_sent_on_after_its_answer_is_cut_off() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let forward = start_forward(runtime, &[], &[]);
        let size = 64 << 20;
        let mut stream = connect(forward.addr);
        let head =
            format!("POST /_count?now HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("send");
        let (answer, body) = read_response(&mut stream);
        assert_eq!(status(&answer), 200, "{name} {answer}");
        assert_eq!(body, b"before the body\n", "{name}");
        let mut writer = stream.try_clone().expect("clone");
        writer
            .set_write_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let sending = std::thread::spawn(move || {
            let piece = vec![b'x'; 64 * 1024];
            let mut sent = 0usize;
            while sent < size && writer.write_all(&piece).is_ok() {
                sent += piece.len();
            }
            sent
        });
        // The server's side ends after the answer: end of stream, not a
        // next response.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(read.is_ok(), "{name}: no end of stream: {read:?}");
        assert!(rest.is_empty(), "{name}: {rest:?}");
        // What it sends after that is drained a while (so that a close does
        // not reset the answer before it is read), then refused or taken.
        sending.join().expect("sender");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (counting, ends) = count_stats(forward.addr);
            if ends == "unread:1" && counting == "0" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: counting={counting} ends={ends}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// What an upstream does to a kept-alive connection 30 ms after answering.
#[derive(Clone, Copy, Debug)]
enum WhenIdle {
    /// Sends a response nobody asked for.
    Stray,
    /// Closes it (its keep-alive timeout).
    Close,
}

/// An upstream that answers each request with the number of its connection
/// and then, 30 ms later, does `when_idle` on that connection.
fn idle_misbehaving_upstream(when_idle: WhenIdle) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut first = true;
                while read_request(&mut stream).is_some() {
                    let answer = format!("connection {n}\n");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                    if std::mem::take(&mut first) {
                        std::thread::sleep(Duration::from_millis(30));
                        match when_idle {
                            WhenIdle::Stray => {
                                let _ = stream.write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n",
                                );
                            }
                            WhenIdle::Close => return,
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads one request from `stream`: its body, or None at the end of the
/// stream.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = field(&head, "Content-Length").map_or(0, |v| v.parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// The loop keeps watching the upstream connections it pools while they are
/// idle: a response an upstream sends unasked ends its connection instead
/// of being taken for the next request's answer, and a connection the
/// upstream closes does not cost the next POST (which may not be sent
/// twice) a 502. Either way the next request goes on a new connection.
#[test]
fn an_idle_pooled_connection_that_the_upstream_misuses_or_closes_is_not_used_again() {
    for when_idle in [WhenIdle::Stray, WhenIdle::Close] {
        let upstream = idle_misbehaving_upstream(when_idle);
        on_each_runtime(|runtime| {
            let server = start_forward(runtime, &[], &[format!("/=http://{upstream}")]);
            let mut stream = connect(server.addr);
            stream
                .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            let (head, body) = read_response(&mut stream);
            assert_eq!(status(&head), 200, "{head}");
            let first = String::from_utf8_lossy(&body).into_owned();
            assert!(first.starts_with("connection "), "{first}");
            // The upstream moves 30 ms after its answer; the loop sees it
            // at its next full poll at the latest (every 100 ms): ten of
            // them, for a loaded machine.
            std::thread::sleep(Duration::from_millis(1000));
            stream
                .write_all(b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                .expect("send");
            let (head, body) = read_response(&mut stream);
            let second = String::from_utf8_lossy(&body).into_owned();
            println!(
                "{}: {when_idle:?}: {first:?} then {second:?}",
                runtime.name()
            );
            assert_eq!(status(&head), 200, "{when_idle:?}: {head}\n{second}");
            assert!(
                second.starts_with("connection ") && second != first,
                "{when_idle:?}: the second answer was {second:?} (the first {first:?})"
            );
        });
    }
}

/// Opens a WebSocket on `path` of `forward_guest --ws-echo`.
fn ws_open(addr: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    let mut stream = connect(addr);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("handshake sent");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!("{other:?} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    stream
}

/// A client's frame (masked, with a zero key: the payload as it is).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 1 << 16 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// The next frame from the server: its opcode and payload.
fn ws_read(stream: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream
        .read_exact(&mut head)
        .expect("a frame (closed: dropped?)");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).expect("length");
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).expect("length");
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).expect("a length that fits")];
    stream.read_exact(&mut payload).expect("payload");
    (head[0] & 0x0f, payload)
}

/// The answers to what one read completed go out whole: a 300 KiB message
/// and a short one sent back to back (as a browser's `send(big);
/// send("x")`) are both echoed to their sender, and both broadcast to
/// every member. (The short one's answer found the first's unsent, over
/// the queue's limit, and dropped the connection: every member's, for a
/// broadcast.)
#[test]
fn a_large_websocket_message_and_the_next_are_both_answered() {
    on_each_runtime(|runtime| {
        let server = start_program(runtime, "forward_guest", &["--ws-echo"], &[]);
        let big = vec![7u8; 300 << 10];
        let mut burst = ws_frame(0x2, &big);
        burst.extend_from_slice(&ws_frame(0x1, b"x"));
        for path in ["/echo", "/all"] {
            let mut sender = ws_open(server.addr, path);
            let mut members = vec![];
            if path == "/all" {
                members.push(ws_open(server.addr, path));
            }
            sender.write_all(&burst).expect("burst sent");
            members.push(sender);
            for member in &mut members {
                let said = format!("{} {path}", runtime.name());
                let (opcode, payload) = ws_read(member);
                assert_eq!((opcode, payload.len()), (0x2, big.len()), "{said}");
                assert!(payload == big, "{said}: the large message changed");
                assert_eq!(ws_read(member), (0x1, b"x".to_vec()), "{said}");
            }
        }
    });
}

/// A WebSocket service's own clock and its rooms (`ws::Service::tick`,
/// `Outbox::send_to`): ticks come every period with no other traffic (a
/// service that could only tick from its callbacks got one in 3 s), in
/// order; a message sent to a room's members reaches each of them, a large
/// one intact, and no one else.
#[test]
fn websocket_ticks_come_on_their_own_and_room_messages_reach_only_the_room() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let server = start_program(runtime, "forward_guest", &["--ws-echo"], &[]);
        let mut ticker = ws_open(server.addr, "/ticks");
        ticker
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout set");
        let (start, mut ticks) = (Instant::now(), Vec::new());
        while start.elapsed() < Duration::from_secs(1) {
            let (opcode, payload) = ws_read(&mut ticker);
            let text = String::from_utf8(payload).expect("text");
            let n: u64 = text
                .strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .expect("a tick");
            ticks.push((opcode, n));
        }
        // Every 50 ms: about 20 in the second. Bounds that catch a clock
        // that does not run, and one that fires twice a period or runs away.
        assert!(
            (5..=30).contains(&ticks.len()),
            "{name}: {} ticks in 1 s",
            ticks.len()
        );
        assert!(ticks.iter().all(|(opcode, _)| *opcode == 0x1), "{name}");
        assert!(
            ticks.windows(2).all(|w| w[0].1 < w[1].1),
            "{name}: {ticks:?}"
        );

        let mut a1 = ws_open(server.addr, "/room/a");
        let mut a2 = ws_open(server.addr, "/room/a");
        let mut b = ws_open(server.addr, "/room/b");
        let big = vec![5u8; 100 << 10];
        let mut burst = ws_frame(0x2, &big);
        burst.extend_from_slice(&ws_frame(0x1, b"to a"));
        a1.write_all(&burst).expect("sent to a");
        for member in [&mut a1, &mut a2] {
            let (opcode, payload) = ws_read(member);
            assert_eq!((opcode, payload.len()), (0x2, big.len()), "{name}");
            assert!(payload == big, "{name}: the room's large message changed");
            assert_eq!(ws_read(member), (0x1, b"to a".to_vec()), "{name}");
        }
        // Nothing of room a's came to b: the first it reads is its own.
        b.write_all(&ws_frame(0x1, b"to b")).expect("sent to b");
        assert_eq!(ws_read(&mut b), (0x1, b"to b".to_vec()), "{name}");
    });
}

/// `/_stats`'s `key` as a number, once it satisfies `done`: waited for up
/// to 20 s (then what it last said).
fn stat_once(addr: std::net::SocketAddr, key: &str, done: impl Fn(usize) -> bool) -> usize {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let value: usize = stats_text(addr)(key).parse().expect("a number");
        if done(value) || Instant::now() >= give_up {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that pipelines as many requests as may wait (16), or one
/// more, and then leaves is noticed at once, and the service told: its
/// requests were not read on, and the service worked for nobody until its
/// answers (a minute here) or the respond timeout.
#[test]
fn a_client_leaving_with_the_most_requests_waiting_is_noticed() {
    on_each_runtime(|runtime| {
        let forward = start_forward(runtime, &["--respond-timeout", "120"], &[]);
        for count in [16, 17] {
            let mut client = connect(forward.addr);
            let requests = "GET /_answer_after?60000 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(count);
            client.write_all(requests.as_bytes()).expect("send");
            let waiting = stat_once(forward.addr, "answering", |n| n == 16);
            assert_eq!(waiting, 16, "{count} sent: 16 taken");
            drop(client);
            let left = stat_once(forward.addr, "answering", |n| n == 0);
            assert_eq!(left, 0, "{count} sent: the client's leaving went unnoticed");
        }
    });
}

/// Answers given together, in one round of timers, to a client that has
/// left unnoticed (its connection was not read: a head's worth waited
/// behind 16 requests) are all given: none is reported abandoned to the
/// service that answered it. (Each was written as it was given, and the
/// second write's failure gave up the 14 behind it, already answered.)
#[test]
fn answers_given_together_to_a_client_gone_are_not_abandoned() {
    on_each_runtime(|runtime| {
        let forward = start_forward(runtime, &[], &[]);
        let mut client = connect(forward.addr);
        let mut requests = "GET /_answer_after?3000 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
        // Not taken while the 16 wait: read ahead until a head's worth (16 KiB).
        requests.push_str(&"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000));
        client.write_all(requests.as_bytes()).expect("send");
        assert_eq!(stat_once(forward.addr, "answering", |n| n == 16), 16);
        drop(client);
        // Left before the answers, or the test tests nothing.
        assert_eq!(stats_text(forward.addr)("answered_by_timer"), "0");
        let answered = stat_once(forward.addr, "answered_by_timer", |n| n == 16);
        assert_eq!(answered, 16, "the timers answered");
        // The failed write, and its abandonments, follow in the next rounds.
        std::thread::sleep(Duration::from_millis(500));
        let late = stats_text(forward.addr)("late_abandons");
        assert_eq!(late, "0", "answered requests reported abandoned");
    });
}
