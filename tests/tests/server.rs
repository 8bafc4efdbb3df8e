//! The echo server as users meet it: curl and raw sockets against the real
//! `.wasm` program under every runtime present.

use edgepoll_tests::{
    connect, connect_with_a_small_receive_buffer, cpu_ticks, curl, dated_since,
    exchange_until_close, on_each_runtime, on_each_runtime_alone, read_response, run_wasm,
    sends_of_responses, start_command, start_server, tracing_sends, unix_now, wasm, TempPath,
};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

fn url(server: &edgepoll_tests::Running) -> String {
    format!("http://{}/", server.addr)
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: reproducible bytes without a dependency.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn curl_post_is_echoed() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let out = curl(&["-d", "name=WasmEdge", "-X", "POST", &url(&server)]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "name=WasmEdge");
    });
}

#[test]
fn get_root_prints_usage() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let out = curl(&[&url(&server)]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("curl -d"),
            "{:?}",
            out
        );
    });
}

#[test]
fn binary_bodies_of_every_size_come_back_identical() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let dir =
            TempPath(std::env::temp_dir().join(format!("edgepoll-e2e-{}", std::process::id())));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (i, size) in [0usize, 1, 64 * 1024, 8 * 1024 * 1024]
            .into_iter()
            .enumerate()
        {
            let body = random_bytes(size, i as u64 + 7);
            let file = dir.join(format!("body-{size}"));
            std::fs::write(&file, &body).expect("write body");
            let out = curl(&[
                "--data-binary",
                &format!("@{}", file.display()),
                &url(&server),
            ]);
            assert!(
                out.status.success(),
                "curl failed for {size} bytes: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout.len(), size, "length for {size} bytes");
            assert!(out.stdout == body, "{size} bytes came back altered");
        }
    });
}

#[test]
fn expect_100_continue_does_not_wait_a_second() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let body = random_bytes(2 * 1024 * 1024, 3);
        let file =
            TempPath(std::env::temp_dir().join(format!("edgepoll-e2e-100-{}", std::process::id())));
        std::fs::write(&file, &body).expect("write body");
        // curl waits this long for a 100 that does not come, then sends
        // anyway: a bound far over any load's delay, and far under it.
        let start = Instant::now();
        let out = curl(&[
            "--expect100-timeout",
            "60",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", file.display()),
            &url(&server),
        ]);
        let took = start.elapsed();
        assert!(out.stdout == body);
        assert!(
            took < Duration::from_secs(20),
            "took {took:?}: curl waited for 100 Continue"
        );
    });
}

#[test]
fn chunked_upload_is_echoed_decoded() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let out = curl(&[
            "-H",
            "Transfer-Encoding: chunked",
            "-d",
            "chunked body",
            &url(&server),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "chunked body");
    });
}

#[test]
fn curl_reuses_the_connection_for_several_urls() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let u = url(&server);
        let out = curl(&["-v", "-d", "a", &u, "-d", "b", &u, "-d", "c", &u]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            log.matches("Re-using existing connection").count()
                + log.matches("Reusing existing").count(),
            2,
            "{log}"
        );
    });
}

#[test]
fn keep_alive_and_pipelining_over_a_raw_socket() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let mut stream = connect(server.addr);
        for i in 0..3 {
            let body = format!("request {i}");
            write!(
                stream,
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            let (head, got) = read_response(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(got, body.as_bytes());
        }
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nAPOST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nBBPOST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nCCC")
            .expect("send pipelined");
        for expected in [&b"A"[..], b"BB", b"CCC"] {
            let (_, got) = read_response(&mut stream);
            assert_eq!(got, expected);
        }
    });
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let out = exchange_until_close(
            server.addr,
            b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\nhi"),
            "{text}"
        );
        let mut stream = connect(server.addr);
        stream
            .write_all(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx")
            .expect("send");
        let (head, _) = read_response(&mut stream);
        assert!(head.contains("Connection: keep-alive"), "{head}");
        stream
            .write_all(b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\ny")
            .expect("second request on the same connection");
        let (_, body) = read_response(&mut stream);
        assert_eq!(body, b"y");
    });
}

#[test]
fn kept_alive_requests_do_not_stall_on_nagle() {
    // Alone: it times requests, which the binary's other tests would slow.
    on_each_runtime_alone(|rt| {
        let server = start_server(rt, &[]);
        let mut stream = connect(server.addr);
        // The client sends each request whole and without Nagle, so any stall
        // measured here is the server's: a response sent in two pieces.
        stream.set_nodelay(true).expect("nodelay");
        let mut request = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 128\r\n\r\n".to_vec();
        request.extend_from_slice(&[b'x'; 128]);
        // A response sent in two pieces waits for the client's delayed ACK
        // (40 ms on Linux) every time: most requests would take that long.
        // A loaded machine delays some, not most.
        let mut times = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            stream.write_all(&request).expect("send request");
            let (_, got) = read_response(&mut stream);
            assert_eq!(got.len(), 128);
            times.push(start.elapsed());
        }
        times.sort_unstable();
        let median = times[times.len() / 2];
        assert!(
            median < Duration::from_millis(30),
            "{median:?} per request (median): a response waits for a delayed ACK"
        );
    });
}

#[test]
fn a_request_trickled_one_byte_at_a_time_is_answered() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let mut stream = connect(server.addr);
        stream.set_nodelay(true).expect("nodelay");
        for byte in b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nslow!" {
            stream.write_all(&[*byte]).expect("send byte");
            std::thread::sleep(Duration::from_millis(1));
        }
        let (_, got) = read_response(&mut stream);
        assert_eq!(got, b"slow!");
    });
}

#[test]
fn many_concurrent_clients_each_get_their_own_body() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let addr = server.addr;
        let clients: Vec<_> = (0..500)
            .map(|i| {
                std::thread::spawn(move || {
                    let body = format!("client {i} says {}", "x".repeat(i % 97));
                    let mut stream = connect(addr);
                    write!(
                        stream,
                        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .expect("send");
                    let (_, got) = read_response(&mut stream);
                    assert_eq!(got, body.as_bytes(), "client {i}");
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread succeeded");
        }
    });
}

/// With `--peek-quiet`, quiet connections are looked at by peeking while
/// another keeps the server busy: each still gets its answer, and one whose
/// client leaves is closed without disturbing the rest.
#[test]
fn with_peek_quiet_quiet_connections_are_still_answered() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &["--peek-quiet"]);
        let addr = server.addr;
        let post = |stream: &mut std::net::TcpStream, body: &str| {
            write!(
                stream,
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            read_response(stream).1
        };
        // More than Poll splits at (64), so the quiet ones go cold.
        let mut quiet: Vec<_> = (0..150).map(|_| connect(addr)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut served = 0u32;
                let start = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && start.elapsed() < Duration::from_secs(30)
                {
                    assert_eq!(post(&mut stream, "busy"), b"busy");
                    served += 1;
                }
                served
            })
        };
        std::thread::sleep(Duration::from_millis(600));
        drop(quiet.pop());
        for (i, stream) in quiet.iter_mut().enumerate().step_by(15) {
            let body = format!("quiet {i}");
            assert_eq!(post(stream, &body), body.as_bytes(), "quiet connection {i}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let served = busy
            .join()
            .expect("the busy client was answered throughout");
        assert!(served > 10, "only {served} busy requests answered");
    });
}

#[test]
fn clients_that_vanish_mid_body_do_not_hurt_the_next_one() {
    on_each_runtime(|rt| {
        let mut server = start_server(rt, &[]);
        {
            let mut s = connect(server.addr);
            s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part")
                .expect("send");
        }
        {
            // Closing with unread input makes the kernel send a reset: leave the
            // first response unread, start a second request, drop the socket.
            let mut s = connect(server.addr);
            s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
                .expect("send");
            std::thread::sleep(Duration::from_millis(100));
            s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npart")
                .expect("send");
        }
        let out = curl(&["-d", "still here", &url(&server)]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "still here");
        assert!(server.is_alive());
    });
}

/// A client that sends its request, shuts down its sending side and leaves
/// the response unread for a while (as `nc -N` would with a slow reader).
/// Under WasmEdge a full socket whose peer has half-closed wakes every poll
/// with nothing to report (edgepoll-host mirrors it): the server must not
/// turn that into a busy loop, and the response arrives whole once read.
#[test]
fn a_half_closed_client_that_reads_late_costs_no_busy_loop_and_gets_every_byte() {
    on_each_runtime(|rt| {
        let mut server = start_server(rt, &[]);
        let body = random_bytes(3_000_000, 11);
        let mut stream = connect_with_a_small_receive_buffer(server.addr);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        stream.write_all(&body).expect("send the body");
        stream.shutdown(Shutdown::Write).expect("half-close");
        // The server reads the request and fills the socket, then has
        // nothing to do: the window starts after a quiet 300 ms (within
        // 10 s), so that neither start-up nor the transfer is counted. A
        // busy loop is never quiet.
        let ticks = || cpu_ticks(server.pid()).expect("server's /proc stat is readable");
        let settle_by = Instant::now() + Duration::from_secs(10);
        let mut last = ticks();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = ticks();
            if now - last <= 1 || Instant::now() >= settle_by {
                break;
            }
            last = now;
        }
        let before = ticks();
        let window = Duration::from_secs(2);
        std::thread::sleep(window);
        let after = ticks();
        // A busy loop burns about 200 ticks in this window.
        assert!(
            after - before <= 50,
            "the server used {} ticks of CPU in {window:?} waiting on a half-closed client",
            after - before
        );
        let (head, echoed) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "the echoed body differs from the one sent");
        let out = curl(&["-d", "next", &url(&server)]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "next");
        assert!(server.is_alive());
    });
}

/// A client that uploads a body to be echoed and reads none of the echo is
/// dropped at one idle timeout, with a reset: the log says it stopped
/// reading (it blamed the upload, the server's own backpressure having
/// stopped it, and dropped the client only at a second timeout), and no
/// close waits in the server's kernel behind megabytes it will never read.
#[test]
fn a_client_that_reads_none_of_its_echo_is_reset_at_one_idle_timeout() {
    on_each_runtime(|rt| {
        let mut server = start_server(rt, &["--idle-timeout", "2"]);
        let body = random_bytes(4 << 20, 12);
        let mut stream = connect_with_a_small_receive_buffer(server.addr);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        let started = Instant::now();
        // Sent while the server takes it; then nothing is read.
        let _ = stream.write_all(&body);
        // Not read: the reset shows once the socket is read at last.
        std::thread::sleep(Duration::from_secs(5));
        let mut sink = vec![0u8; 1 << 20];
        let ended = loop {
            match stream.read(&mut sink) {
                Ok(0) => break "closed",
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
                Err(e) => panic!("{}: {e}", rt.name()),
            }
        };
        assert_eq!(ended, "reset", "{}", rt.name());
        let log = server.stderr_until(Duration::from_secs(5), |log| !log.is_empty());
        assert_eq!(
            log.len(),
            1,
            "{}: one line, after {:?}: {log:#?}",
            rt.name(),
            started.elapsed()
        );
        assert!(
            log[0].ends_with("peer stopped reading; connection dropped at the idle timeout"),
            "{}: {log:#?}",
            rt.name()
        );
        assert!(server.is_alive());
    });
}

/// A kept-alive connection closed at its idle timeout (after a response, or
/// before any request) is not logged: it is how every pooled connection of
/// a client or a proxy ends. A line each flooded the log of a server behind
/// `examples/proxy` as its idle upstream connections expired.
#[test]
fn idle_keep_alive_closes_are_not_logged() {
    on_each_runtime(|rt| {
        let mut server = start_server(rt, &["--idle-timeout", "1"]);
        let mut served = connect(server.addr);
        served
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let (head, _) = read_response(&mut served);
        assert!(head.starts_with("HTTP/1.1 200 "), "{}: {head}", rt.name());
        let silent = connect(server.addr);
        for mut stream in [served, silent] {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout set");
            let mut rest = Vec::new();
            let closed = stream.read_to_end(&mut rest);
            assert!(
                matches!(closed, Ok(0)),
                "{}: {closed:?} {rest:?}",
                rt.name()
            );
        }
        let log = server.stderr_to_end(Duration::from_secs(10));
        assert!(log.is_empty(), "{}: {log:#?}", rt.name());
    });
}

/// An echoed body's response head leaves with the body's first bytes, in
/// one write. Written alone (the head was written as soon as it was given,
/// the body's pieces each as it was routed), the body's last small write
/// waited for the client's delayed ACK of the head: Nagle's algorithm,
/// which WasmEdge gives a guest no way to turn off, held a 64 KiB echo
/// 40 ms (`hey -c 1` made 40 such requests a second). The writes are seen
/// with strace, on every runtime.
#[test]
fn an_echoed_bodys_head_leaves_with_its_first_bytes() {
    on_each_runtime(|rt| {
        let name = rt.name();
        let trace = edgepoll_tests::unique_temp_path("sends");
        let mut command = tracing_sends(&rt.command(&wasm("poll_http_server")), &trace);
        command.args(["127.0.0.1:0", "--exit-after", "3"]);
        let mut server = start_command(command);
        let body = random_bytes(65_537, 7);
        let mut stream = connect(server.addr);
        for _ in 0..3 {
            let head = format!(
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream
                .write_all(&[head.as_bytes(), &body].concat())
                .expect("send");
            let (head, echoed) = read_response(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
            assert!(echoed == body, "{name}: the echo differs");
        }
        for sent in sends_of_responses(&mut server, &trace, 3) {
            assert!(sent[0] > 1000, "{name}: the head went alone: {sent:?}");
        }
    });
}

/// Hostile and malformed requests with the status each must get (shared with
/// the Handler's unit tests), and two too long for that file.
const CORPUS: &[(&[u8], u16)] = include!("../corpus/hostile_requests.rs");

fn long_requests() -> Vec<(Vec<u8>, u16)> {
    let method = format!("{} / HTTP/1.1\r\nHost: t\r\n\r\n", "A".repeat(5000));
    let target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(20_000));
    let version = format!("GET / HTTP/1.1{}\r\nHost: t\r\n\r\n", "1".repeat(3000));
    vec![
        (method.into_bytes(), 501),
        (target.into_bytes(), 414),
        (version.into_bytes(), 400),
    ]
}

#[test]
fn malformed_and_hostile_requests_get_their_status_and_the_server_carries_on() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let long = long_requests();
        let all = CORPUS
            .iter()
            .map(|(r, s)| (*r, *s))
            .chain(long.iter().map(|(r, s)| (r.as_slice(), *s)));
        for (request, status) in all {
            let out = exchange_until_close(server.addr, request);
            let text = String::from_utf8_lossy(&out);
            let expected = format!("HTTP/1.1 {status} ");
            assert!(
                text.starts_with(&expected),
                "{:?} got {text:?}",
                String::from_utf8_lossy(request)
            );
            assert!(text.contains("Connection: close"), "{text}");
            let mut s = connect(server.addr);
            s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
                .expect("send");
            let (_, body) = read_response(&mut s);
            assert_eq!(
                body,
                b"ok",
                "a normal request after {:?}",
                String::from_utf8_lossy(request)
            );
        }
        assert!(CORPUS.len() + long_requests().len() >= 60);
    });
}

#[test]
fn absolute_form_targets_are_served_like_their_path() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let mut stream = connect(server.addr);
        stream
            .write_all(b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://x/elsewhere?q HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("curl -d"));
        let (head, _) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    });
}

#[test]
fn oversized_head_and_too_many_fields_get_431() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &[]);
        let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20_000));
        big.extend_from_slice(b"\r\n\r\n");
        assert!(
            String::from_utf8_lossy(&exchange_until_close(server.addr, &big))
                .starts_with("HTTP/1.1 431 ")
        );
        // 100 fields (`Limits::max_headers`, as hyper's and Apache's) pass;
        // one more does not.
        let many = |fields: usize| {
            let mut head = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
            for i in 1..fields {
                head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            String::from_utf8_lossy(&exchange_until_close(server.addr, &head)).into_owned()
        };
        let at_limit = many(99);
        assert!(at_limit.starts_with("HTTP/1.1 200 "), "{at_limit}");
        let over = many(100);
        assert!(over.starts_with("HTTP/1.1 431 "), "{over}");
    });
}

#[test]
fn slowloris_head_gets_408_and_idle_connections_close() {
    on_each_runtime(|rt| {
        let server = start_server(rt, &["--header-timeout", "1", "--idle-timeout", "1.5"]);
        let start = Instant::now();
        let mut slow = connect(server.addr);
        slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
            .expect("send partial head");
        let mut out = Vec::new();
        let _ = slow.read_to_end(&mut out);
        let took = start.elapsed();
        assert!(
            String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "cut off after {took:?}"
        );

        let mut idle = connect(server.addr);
        // From before the request: the server's idle clock starts at its
        // answer, which this thread may be woken to read late.
        let start = Instant::now();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let _ = read_response(&mut idle);
        let mut rest = Vec::new();
        let n = idle
            .read_to_end(&mut rest)
            .expect("server closes the idle connection");
        assert_eq!(n, 0);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
            "idle close after {took:?}"
        );
    });
}

#[test]
fn a_port_in_use_is_one_clear_error_and_a_failing_exit() {
    on_each_runtime(|rt| {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("address").to_string();
        let out = run_wasm(rt, "poll_http_server", &[&addr], Duration::from_secs(60));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("poll_http_server:"))
            .collect();
        assert_eq!(ours.len(), 1, "{stderr}");
        assert!(ours[0].contains("already in use"), "{stderr}");
    });
}

/// A client still uploading a body the server refused (413) is drained
/// while it keeps sending, past `linger` in all (a byte at least every
/// `linger` keeps it), so its writes are not met with a reset that could
/// destroy the 413 before it is read (RFC 9112 §9.6, as nginx lingers).
#[test]
fn a_refused_upload_that_keeps_coming_is_drained_not_reset() {
    on_each_runtime(|runtime| {
        let server = start_server(runtime, &["--max-body", "1000"]);
        let mut stream = connect(server.addr);
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
            .expect("send the head");
        // 4 s of a body, a piece every 400 ms: twice the 2 s linger.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            std::thread::sleep(Duration::from_millis(400));
            if let Err(e) = stream.write_all(&[b'x'; 1000]) {
                panic!(
                    "{}: reset while still sending after {:?}: {e}",
                    runtime.name(),
                    started.elapsed()
                );
            }
        }
        let (head, _) = read_response(&mut stream);
        assert!(
            head.starts_with("HTTP/1.1 413 "),
            "{}: {head}",
            runtime.name()
        );
    });
}

/// Out of descriptors (the runtime's process limited to 64), the server
/// closes its quietest keep-alive connections to take new ones, as nginx
/// does: each of 120 clients that stay connected is answered at once (the
/// 50th or so waited for an idle timeout, 60 s), and the oldest idle ones
/// see a clean close.
#[test]
fn out_of_descriptors_the_quietest_keep_alive_connections_make_room() {
    use std::os::unix::process::CommandExt;
    on_each_runtime(|runtime| {
        let mut command = runtime.command(&wasm("poll_http_server"));
        command.arg("127.0.0.1:0");
        // SAFETY: only setrlimit, which is async-signal-safe, runs in the
        // child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 64,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let server = start_command(command);
        let mut held = Vec::new();
        for i in 0..120 {
            let mut stream = connect(server.addr);
            stream
                .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
                .expect("request sent");
            let (head, body) = read_response(&mut stream);
            assert!(
                head.starts_with("HTTP/1.1 200 ") && body == b"ok",
                "{}: client {i}: {head}",
                runtime.name()
            );
            held.push(stream);
        }
        // The first 32 were the quietest when the first room was needed.
        for (i, stream) in held.iter_mut().take(32).enumerate() {
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => panic!("{}: client {i} still open: {other:?}", runtime.name()),
            }
        }
        let told = "closed 32 idle keep-alive connections";
        let log = server.stderr_until(Duration::from_secs(10), |log| {
            log.iter().any(|l| l.contains(told))
        });
        let log = log.join("\n");
        assert!(log.contains(told), "{}: {log}", runtime.name());
    });
}

/// Out of memory (the runtime's `--memory-page-limit`: 8 MiB), a body the
/// server cannot hold is refused 503 and its connection closed, and a
/// connection it has no room for is closed unanswered; the process goes on
/// (it aborted with exit 134 and every connection, and later, on a busy
/// machine, when growth had left too little for a refusal or an echo's
/// head), the others' bodies are kept and answered, and what the refused
/// held is free again.
#[test]
fn out_of_memory_what_cannot_be_held_is_refused_and_the_server_goes_on() {
    on_each_runtime(|runtime| {
        let mut server = edgepoll_tests::start_program_with(
            runtime,
            "poll_http_server",
            &["--memory-page-limit", "128"],
            &[],
            &[],
        );
        // Bodies under 64 KiB are held whole (larger ones are streamed):
        // each held connection costs about 60 KB, so some 130 fill 8 MiB.
        const BODY: usize = 60_000;
        let head = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n");
        let body = vec![b'm'; BODY];
        let mut held = Vec::new();
        for _ in 0..200 {
            let mut stream = connect(server.addr);
            // A connection not taken may be closed (and reset) under it.
            let _ = stream.write_all(head.as_bytes());
            // All but the last byte: held, waiting for it.
            let _ = stream.write_all(&body[..BODY - 1]);
            held.push(stream);
        }
        assert!(server.is_alive(), "{}: the server died", runtime.name());
        // Each connection has its answer now (a 503, or a close) or when
        // its last byte comes (the echo).
        let (mut refused, mut closed, mut echoed) = (0, 0, 0);
        for (i, stream) in held.iter_mut().enumerate() {
            // The last byte goes only where nothing came: one sent to a
            // refused connection after its linger would be answered with
            // a reset. (A refusal not yet come when looked for is sent
            // while the connection lingers, which drops the byte.)
            stream.set_nonblocking(true).expect("non-blocking");
            let answered = !matches!(stream.peek(&mut [0]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            stream.set_nonblocking(false).expect("blocking");
            if !answered {
                let _ = stream.write_all(b"m");
            }
            match answer(stream) {
                None => closed += 1,
                Some((head, got)) if head.starts_with("HTTP/1.1 503 ") => {
                    assert_eq!(
                        got,
                        b"no memory free to hold the request\n",
                        "{}: client {i}: {head}",
                        runtime.name()
                    );
                    refused += 1;
                }
                Some((head, got)) => {
                    assert!(
                        head.starts_with("HTTP/1.1 200 ") && got == body,
                        "{}: client {i}: {head} and {} bytes",
                        runtime.name(),
                        got.len()
                    );
                    echoed += 1;
                }
            }
        }
        assert!(
            refused + closed > 0 && echoed > 0,
            "{}: {refused} refused, {closed} closed unanswered, {echoed} echoed",
            runtime.name()
        );
        drop(held);
        // The memory is free again: a client now is served.
        let mut stream = connect(server.addr);
        stream.write_all(head.as_bytes()).expect("head sent");
        stream.write_all(&body).expect("body sent");
        let (head, echo) = read_response(&mut stream);
        assert!(
            head.starts_with("HTTP/1.1 200 ") && echo == body,
            "{}: {head}",
            runtime.name()
        );
        assert!(server.is_alive(), "{}: the server died", runtime.name());
        // Each refusal is logged, and each close of one that could not be
        // refused; connections not taken, in lines paced to one every
        // 10 s (the rest counted in the next).
        let refusals = |log: &[String]| {
            let refusal = "503 Service Unavailable: no memory free to hold the request";
            log.iter().filter(|l| l.ends_with(refusal)).count()
        };
        let not_taken = |log: &[String]| {
            let told = [
                ": not taken: out of memory",
                ": no memory free to answer the request; closed",
            ];
            log.iter()
                .filter(|l| told.iter().any(|t| l.contains(t)))
                .count()
        };
        let log = server.stderr_until(Duration::from_secs(10), |log| {
            refusals(log) >= refused && (closed == 0 || not_taken(log) >= 1)
        });
        assert!(
            refusals(&log) == refused && (closed == 0 || not_taken(&log) >= 1),
            "{}: {refused} refused, {closed} closed: {log:#?}",
            runtime.name()
        );
    });
}

/// One response (its head, and a body of its `Content-Length`), or `None`
/// when the connection closes (or resets) before a head.
fn answer(stream: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end + 4]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().expect("a length"))
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Some((head, got[end + 4..end + 4 + length].to_vec()));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer and no close: {e}"),
        }
    }
    assert!(
        got.is_empty(),
        "closed mid-answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    None
}

/// A log reader gone (stderr a pipe closed, SIGPIPE ignored as systemd
/// starts services) does not stop the server: the line it cannot write is
/// dropped (`eprintln!` panicked and the server aborted with exit 134 at
/// the first malformed request), and clients are served on.
#[test]
fn a_log_reader_gone_does_not_stop_the_server() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    on_each_runtime(|runtime| {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0, "a pipe");
        // SAFETY: pipe() just opened both; each is owned once, here.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
        drop(read_end);
        let mut command = runtime.command(&wasm("poll_http_server"));
        command.arg("127.0.0.1:0");
        // SAFETY: only signal(), which is async-signal-safe, runs in the
        // child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut server = edgepoll_tests::start_command_with_stderr(
            command,
            std::process::Stdio::from(write_end),
        );
        for _ in 0..3 {
            let refused = exchange_until_close(server.addr, b"BAD\r\n\r\n");
            assert!(
                refused.starts_with(b"HTTP/1.1 400 "),
                "{}: {:?}",
                runtime.name(),
                String::from_utf8_lossy(&refused)
            );
        }
        let mut stream = connect(server.addr);
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
            .expect("request sent");
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 ") && body == b"ok", "{head}");
        assert!(server.is_alive(), "{}: the server died", runtime.name());
    });
}

/// Connections reset while they wait to be accepted, which Linux still
/// hands over without a peer address, are passed over: accepting does not
/// pause (it stopped for 100 ms at each, with "accept failed" in the log)
/// and the next client is served.
#[test]
fn connections_reset_before_they_are_accepted_are_passed_over() {
    on_each_runtime(|runtime| {
        let mut server = start_server(runtime, &[]);
        let pid = server.pid() as libc::pid_t;
        // Stopped, the server cannot accept them before they reset.
        // SAFETY: signals to the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        for _ in 0..20 {
            let stream =
                std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(10))
                    .expect("connect");
            edgepoll_tests::reset(stream);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        let reply = exchange_until_close(
            server.addr,
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        );
        assert!(
            reply.ends_with(b"\r\n\r\nok"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        let log = server.stderr_to_end(Duration::from_secs(10)).join("\n");
        assert!(
            !log.contains("accept failed") && !log.contains("could not be set up"),
            "{}: {log}",
            runtime.name()
        );
    });
}

/// The command lines of the echo server and the chat under every runtime:
/// `--help` prints every option on stdout and exits 0; a mistake exits 2
/// and names it. (A timeout too large for a clock and an argument that is
/// not UTF-8 trapped; the chat's help was "unknown argument"; a host name
/// with a port was taken, and never matched.)
#[test]
fn the_echo_server_and_the_chat_answer_help_and_mistakes() {
    use std::os::unix::ffi::OsStrExt;
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let limit = Duration::from_secs(60);
        for (program, option) in [
            ("poll_http_server", "--idle-timeout SECS"),
            ("ws_chat", "--allow-host NAME"),
        ] {
            let help = run_wasm(runtime, program, &["--help"], limit);
            let text = String::from_utf8_lossy(&help.stdout);
            assert_eq!(help.status.code(), Some(0), "{name} {program}: {text}");
            assert!(text.contains(option), "{name} {program}: {text}");
        }
        for (program, args, says) in [
            (
                "poll_http_server",
                &["--idle-timeout", "1e20"][..],
                "--idle-timeout: not a number of seconds",
            ),
            (
                "poll_http_server",
                &["--max-body=1", "--max-body", "2"],
                "given twice",
            ),
            (
                "ws_chat",
                &["--allow-host", "chat.example:8080"],
                "not a host name",
            ),
        ] {
            let out = run_wasm(runtime, program, args, limit);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} {program} {args:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{name} {program} {args:?}: {stderr}");
        }
        for program in ["poll_http_server", "ws_chat"] {
            let mut command = runtime.command_with(&wasm(program), &[]);
            command.arg(std::ffi::OsStr::from_bytes(b"caf\xe9"));
            let out = edgepoll_tests::output_bounded(&mut command, limit);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {program}: {stderr}");
            assert!(stderr.contains("not UTF-8"), "{name} {program}: {stderr}");
        }
    });
}

/// An upload trickled a byte every half second (each within the idle
/// timeout) to the echo server, which echoes it as it comes to a client
/// that reads it all, is stalled at the idle timeout: what is sent back is
/// no progress. (Each echoed byte restarted the clock: the connection was
/// held for ever.) What was echoed is what was sent.
#[test]
fn a_trickled_upload_echoed_as_it_comes_ends_at_the_idle_timeout() {
    on_each_runtime(|rt| {
        let name = rt.name();
        let server = start_server(rt, &["--idle-timeout", "2"]);
        let mut stream = connect(server.addr);
        // Over 64 KiB: echoed as it comes.
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .expect("send");
        let burst = random_bytes(100_000, 7);
        stream.write_all(&burst).expect("send");
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut sent = burst;
        let mut got = Vec::new();
        let started = Instant::now();
        // Ends by the server's doing (a close, a reset, a write refused),
        // the only way out of the loop but the 20 s bound.
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name}: the trickle still held the connection after 20 s"
            );
            let mut buf = [0u8; 64 * 1024];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            if stream.write_all(b"t").is_err() {
                break;
            }
            sent.push(b't');
        }
        // At the 2 s idle timeout (the trickle kept it no longer), not at once.
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{name}: closed after {:?}",
            started.elapsed()
        );
        let (head, echoed) = edgepoll_tests::split_head(&got);
        assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
        assert!(
            echoed.len() >= 100_000,
            "{name}: {} bytes echoed",
            echoed.len()
        );
        assert!(
            sent.starts_with(echoed),
            "{name}: the echo differs from what was sent"
        );
    });
}

/// Every final response carries the time it went (RFC 9110 §6.6.1 asks it
/// of an origin server with a clock: `ServerOptions::date`, on by
/// default), the server's own refusals too, and a HEAD's as GET's.
#[test]
fn responses_and_refusals_are_dated() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let server = start_server(runtime, &[]);
        let since = unix_now();
        let close = "Host: t\r\nConnection: close\r\n";
        for (request, status) in [
            (format!("GET / HTTP/1.1\r\n{close}\r\n"), 200),
            (format!("HEAD / HTTP/1.1\r\n{close}\r\n"), 200),
            (
                format!("GET / HTTP/1.1\r\n{close}Content-Length: x\r\n\r\n"),
                400,
            ),
        ] {
            let reply = exchange_until_close(server.addr, request.as_bytes());
            let reply = String::from_utf8_lossy(&reply);
            let head = reply.split("\r\n\r\n").next().unwrap_or_default();
            let line = format!("HTTP/1.1 {status} ");
            assert!(head.starts_with(&line), "{name}: {reply}");
            assert!(dated_since(head, since), "{name}: {reply}");
        }
    });
}
