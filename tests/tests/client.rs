//! `nonblock_http_client` against a small native server in the test that
//! delays and shapes its responses; and the library's `download`.

use edgepoll_tests::upstream::{Behaviour, NativeUpstream};
use edgepoll_tests::{
    cpu_ticks, on_each_runtime, refused_port, run_wasm, scratch_dir, wait_bounded, wasm, Runtime,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the test server answers.
#[derive(Clone, Copy)]
enum Reply {
    /// `Content-Length` framed echo of the request body, after a delay, with
    /// `Connection: close` (every reply ends its connection).
    Length(Duration),
    /// Chunked body in several pieces.
    Chunked,
    /// Body delimited by closing the connection (HTTP/1.0 style).
    UntilClose,
    /// Part of a response, then a reset.
    ResetMidway,
    /// Never answers.
    Silent,
    /// 100 Continue and 103 Early Hints, then a 200 with a body.
    Interim,
    /// Exactly these bytes (a head without a body), then the connection
    /// stays open: a client that waits for a body times out.
    HeadOnly(&'static [u8]),
    /// Exactly these bytes, then a close.
    Closing(&'static [u8]),
    /// A 5-byte body, a byte every 400 ms.
    Trickle,
    /// A head that never ends: a byte of a field's value every 100 ms, for
    /// 30 s.
    TrickleHead,
}

struct TestServer {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

/// When the server read the (first) request.
fn arrival(server: &TestServer) -> Instant {
    let arrivals = server.arrivals.lock().expect("lock");
    *arrivals.first().expect("the request arrived")
}

fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return data[end + 4..end + 4 + length].to_vec();
            }
        }
    }
    Vec::new()
}

fn serve(reply: Reply) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                if let Reply::ResetMidway = reply {
                    // Answer part of the response without reading the request:
                    // closing with unread input makes the kernel send a reset.
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
                    std::thread::sleep(Duration::from_millis(50));
                    return;
                }
                let body = read_request(&mut stream);
                if let Ok(mut list) = seen.lock() {
                    list.push(Instant::now());
                }
                let _ = match reply {
                    Reply::Length(delay) => {
                        std::thread::sleep(delay);
                        // It closes after one answer, and says so: kept
                        // alive, the client's next POST could go out as the
                        // close came (under load it did), and be lost.
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        stream.write_all(&[head.as_bytes(), &body].concat())
                    }
                    Reply::Chunked => stream.write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
                    ),
                    Reply::UntilClose => {
                        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil ");
                        std::thread::sleep(Duration::from_millis(50));
                        stream.write_all(b"close")
                    }
                    Reply::Silent => {
                        std::thread::sleep(Duration::from_secs(20));
                        Ok(())
                    }
                    Reply::Interim => {
                        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                        std::thread::sleep(Duration::from_millis(50));
                        let _ = stream.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
                        std::thread::sleep(Duration::from_millis(50));
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let _ = stream.write_all(&[head.as_bytes(), &body].concat());
                        std::thread::sleep(Duration::from_secs(10));
                        Ok(())
                    }
                    Reply::HeadOnly(head) => {
                        let _ = stream.write_all(head);
                        std::thread::sleep(Duration::from_secs(10));
                        Ok(())
                    }
                    Reply::Closing(bytes) => stream.write_all(bytes),
                    Reply::Trickle => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
                        for byte in b"slow!" {
                            std::thread::sleep(Duration::from_millis(400));
                            let _ = stream.write_all(&[*byte]);
                        }
                        Ok(())
                    }
                    Reply::TrickleHead => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ");
                        for _ in 0..300 {
                            std::thread::sleep(Duration::from_millis(100));
                            if stream.write_all(b"a").is_err() {
                                break;
                            }
                        }
                        Ok(())
                    }
                    Reply::ResetMidway => Ok(()),
                };
            });
        }
    });
    TestServer { addr, arrivals }
}

fn client(rt: &Runtime, args: &[&str]) -> Command {
    let mut cmd = rt.command(&wasm("nonblock_http_client"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A mistake on the command line: exit 2, and `said` on stderr.
fn refused_saying(rt: &Runtime, out: &Output, said: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", rt.name());
    assert!(stderr.contains(said), "{}: {stderr}", rt.name());
}

fn run_client(rt: &Runtime, args: &[&str]) -> Output {
    let child = client(rt, args).spawn().expect("client starts");
    wait_bounded(child, Duration::from_secs(60))
}

/// [`run_client`] with a directory preopened (`--dir`, as `preopen` says).
fn run_client_in(rt: &Runtime, preopen: &str, args: &[&str]) -> Output {
    let child = rt
        .command_with(&wasm("nonblock_http_client"), &["--dir", preopen])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client starts");
    wait_bounded(child, Duration::from_secs(60))
}

#[test]
fn two_delayed_requests_run_concurrently() {
    on_each_runtime(|rt| {
        // Each answer takes 5 s: one after the other, they arrive 5 s
        // apart and end 10 s after the first. The bounds leave a loaded
        // machine (runtime start and teardown included) 3.5 s.
        let server = serve(Reply::Length(Duration::from_secs(5)));
        let url = format!("http://{}/", server.addr);
        let out = run_client(rt, &["-d", "concurrent", &url, &url]);
        let finished = Instant::now();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.matches("-> 200 OK\nconcurrent").count(),
            2,
            "{stdout}"
        );
        let arrivals = server.arrivals.lock().expect("lock").clone();
        assert_eq!(arrivals.len(), 2);
        let first = arrivals.iter().min().copied().expect("one arrival");
        let spread = arrivals.iter().max().copied().expect("one arrival") - first;
        assert!(
            spread < Duration::from_millis(3500),
            "requests arrived {spread:?} apart: sent one after the other"
        );
        let span = finished - first;
        assert!(
            span < Duration::from_millis(8500),
            "both answered {span:?} after the first arrived: not concurrent"
        );
    });
}

/// Each response is printed as soon as it and those before it are in, not
/// all at the end: the first is out seconds before the second, which the
/// server holds 6 s (many large bodies are not all held until the last).
#[test]
fn a_response_is_printed_while_later_ones_are_awaited() {
    let upstream = NativeUpstream::start(Behaviour::Echo);
    on_each_runtime(|rt| {
        let fast = format!("http://{}/", upstream.addr);
        let slow = format!("http://{}/delay/6000", upstream.addr);
        let mut child = client(rt, &["--timeout", "30", &fast, &slow])
            .spawn()
            .expect("client starts");
        let mut stdout = child.stdout.take().expect("stdout");
        // Each line with when it came.
        let (tell, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while stdout.read(&mut byte).is_ok_and(|n| n == 1) {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let _ = tell.send((text, Instant::now()));
                    line.clear();
                }
            }
        });
        let out = wait_bounded(child, Duration::from_secs(60));
        let _ = reader.join();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<(String, Instant)> = lines.try_iter().collect();
        let at = |tag: &str| {
            lines
                .iter()
                .find(|(l, _)| l.starts_with(tag) && l.contains("-> 200"))
                .map(|(_, when)| *when)
                .unwrap_or_else(|| panic!("no {tag} line: {lines:?}"))
        };
        let apart = at("[2] GET ") - at("[1] GET ");
        assert!(
            apart >= Duration::from_secs(3),
            "{}: the two responses were printed {apart:?} apart: the first waited for the second",
            rt.name()
        );
    });
}

/// The client sleeps while it waits for a response, and while a second
/// request waits for the one connection its origin is allowed
/// (`--parallel 1`): queued work is no reason to poll without waiting.
#[test]
fn waiting_for_a_response_costs_almost_no_cpu() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Length(Duration::from_millis(2500)));
        let url = format!("http://{}/", server.addr);
        // Killed if an assertion below fails (it would run to its timeout).
        let child = edgepoll_tests::KilledOnDrop::new(
            client(rt, &["--parallel", "1", "-d", "idle", &url, &url])
                .spawn()
                .expect("client starts"),
        );
        let pid = child.id();
        // Wait until the request is in, so start-up work is over.
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.arrivals.lock().expect("lock").is_empty() {
            assert!(Instant::now() < deadline, "request never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(pid).expect("client's /proc stat is readable");
        let window = Duration::from_millis(1500);
        std::thread::sleep(window);
        let after = cpu_ticks(pid).expect("client still running");
        let out = wait_bounded(child.into_child(), Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("-> 200 OK").count(), 2, "{stdout}");
        // Clock ticks are 10 ms; a busy loop would burn about 150 in this window.
        assert!(
            after - before <= 10,
            "client used {} ticks of CPU in {window:?} while waiting",
            after - before
        );
    });
}

#[test]
fn chunked_length_and_close_delimited_responses_are_read_completely() {
    on_each_runtime(|rt| {
        for (reply, expected) in [
            (Reply::Chunked, "hello world"),
            (Reply::UntilClose, "until close"),
            (Reply::Length(Duration::ZERO), "echoed"),
        ] {
            let server = serve(reply);
            let out = run_client(rt, &["-d", "echoed", &format!("http://{}/", server.addr)]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains(&format!("-> 200 OK\n{expected}\n")),
                "{stdout}"
            );
        }
    });
}

#[test]
fn refused_reset_and_timeout_each_fail_clearly() {
    on_each_runtime(|rt| {
        let nobody = refused_port();
        let refused = run_client(rt, &[&format!("http://127.0.0.1:{}/", nobody.port)]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("connection refused"),
            "{refused:?}"
        );

        let server = serve(Reply::ResetMidway);
        let reset = run_client(rt, &["-d", "x", &format!("http://{}/", server.addr)]);
        assert!(!reset.status.success());
        let stderr = String::from_utf8_lossy(&reset.stderr);
        assert!(
            stderr.contains("reset") || stderr.contains("closed before the response was complete"),
            "{stderr}"
        );

        let server = serve(Reply::Silent);
        let timeout = run_client(
            rt,
            &[
                "--timeout",
                "0.5",
                "-d",
                "x",
                &format!("http://{}/", server.addr),
            ],
        );
        let ended = Instant::now();
        assert!(!timeout.status.success());
        assert!(
            String::from_utf8_lossy(&timeout.stderr).contains("timed out"),
            "{timeout:?}"
        );
        // The server is silent for 20 s; the client gave up long before.
        let waited = ended - arrival(&server);
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    });
}

#[test]
fn a_failing_request_does_not_spoil_the_others() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Length(Duration::ZERO));
        let good = format!("http://{}/", server.addr);
        let nobody = refused_port();
        let bad = format!("http://127.0.0.1:{}/", nobody.port);
        let out = run_client(rt, &["-d", "fine", &good, &bad, &good]);
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("-> 200 OK\nfine").count(), 2, "{stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("[2]"));
    });
}

/// A write to stdout that fails (a full disk: /dev/full) is told on
/// stderr, with the error, and the failures of later requests still are;
/// exit 1. (Every result after it was dropped and the run ended with exit
/// 1 and nothing said.)
#[test]
fn a_failed_write_to_stdout_is_told_and_later_failures_still_are() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Length(Duration::ZERO));
        let good = format!("http://{}/", server.addr);
        let nobody = refused_port();
        let bad = format!("http://127.0.0.1:{}/", nobody.port);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let child = client(rt, &["-d", "fine", &good, &bad])
            .stdout(full)
            .spawn()
            .expect("client starts");
        let out = wait_bounded(child, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = format!("{}: {stderr}", rt.name());
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(stderr.contains("writing the responses: "), "{said}");
        assert!(
            stderr.contains(&format!("[2] POST {bad} -> error: ")),
            "{said}"
        );
    });
}

/// Keep-alive servers that echo each request body after `delay`, counting
/// the requests under way on all of them at once, and the most there were.
fn counting_servers(count: usize, delay: Duration) -> (Vec<SocketAddr>, Arc<AtomicUsize>) {
    let (busy, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addrs = (0..count)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("address");
            let (busy, peak) = (busy.clone(), peak.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let (busy, peak) = (busy.clone(), peak.clone());
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        loop {
                            let body = read_request(&mut stream);
                            if body.is_empty() {
                                return; // closed (or nothing sent)
                            }
                            let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(delay);
                            busy.fetch_sub(1, Ordering::SeqCst);
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            if stream
                                .write_all(&[head.as_bytes(), &body].concat())
                                .is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            });
            addr
        })
        .collect();
    (addrs, peak)
}

/// `--max-connections 2` over three origins: never more than two requests
/// under way, and every URL answered, an idle connection to one origin
/// closing for a URL of another.
#[test]
fn the_overall_connection_limit_holds_across_origins() {
    on_each_runtime(|rt| {
        let (addrs, peak) = counting_servers(3, Duration::from_millis(200));
        let urls: Vec<String> = (addrs.iter())
            .flat_map(|a| [format!("http://{a}/"), format!("http://{a}/")])
            .collect();
        let mut args = vec!["-d", "limited", "--max-connections", "2"];
        args.extend(urls.iter().map(String::as_str));
        let out = run_client(rt, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} {stdout} {}",
            rt.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches("-> 200 OK\nlimited").count(), 6, "{stdout}");
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "{}: at most two at once, and two in parallel",
            rt.name()
        );
    });
}

/// A response with a folded field (obs-fold) is read, the fold taken as
/// spaces, as RFC 9112 §5.2 asks of a user agent.
#[test]
fn a_folded_response_field_is_read_as_one() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Closing(
            b"HTTP/1.1 200 OK\r\nX-Old: part one\r\n\tpart two\r\nContent-Length: 6\r\n\r\nfolded",
        ));
        let out = run_client(rt, &[&format!("http://{}/", server.addr)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{} {out:?}", rt.name());
        assert!(stdout.contains("-> 200 OK\nfolded"), "{stdout}");
    });
}

/// A body still in a transfer coding other than chunked (which the client
/// does not take off) is an error naming the coding, not bytes shown as
/// the body; the same coding on a bodiless answer (to HEAD) is no error.
#[test]
fn a_body_in_a_transfer_coding_the_client_does_not_decode_is_an_error() {
    on_each_runtime(|rt| {
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n";
        let server = serve(Reply::Closing(gzip));
        let out = run_client(rt, &[&format!("http://{}/", server.addr)]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let said = format!("{}: {stdout} {stderr}", rt.name());
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            stderr.contains("-> error: the body came in the transfer coding \"gzip\""),
            "{said}"
        );
        assert!(!out.stdout.windows(2).any(|w| w == b"\x1f\x8b"), "{said}");
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let server = serve(Reply::HeadOnly(head));
        let out = run_client(rt, &["-X", "HEAD", &format!("http://{}/", server.addr)]);
        assert!(out.status.success(), "{} {out:?}", rt.name());
    });
}

#[test]
fn interim_and_bodiless_responses_end_where_their_head_ends() {
    on_each_runtime(|rt| {
        for (reply, args, expected) in [
            (
                Reply::Interim,
                &["-d", "after hints"][..],
                "-> 200 OK\nafter hints\n",
            ),
            (
                Reply::HeadOnly(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
                &["-X", "DELETE"][..],
                "-> 204 No Content\n",
            ),
            (
                Reply::HeadOnly(
                    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n",
                ),
                &[][..],
                "-> 304 Not Modified\n",
            ),
            (
                Reply::HeadOnly(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
                &["-X", "HEAD"][..],
                "-> 200 OK\n",
            ),
        ] {
            let server = serve(reply);
            let url = format!("http://{}/", server.addr);
            let mut all = args.to_vec();
            all.extend(["--timeout", "30", url.as_str()]);
            let out = run_client(rt, &all);
            let ended = Instant::now();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.ends_with(expected), "{args:?}: {stdout:?}");
            // The server closes 10 s after the head: a client that waited
            // for a body would be there still. (Timed from the request's
            // arrival, so that the runtime's start under load is not.)
            let waited = ended - arrival(&server);
            assert!(
                waited < Duration::from_secs(9),
                "{args:?}: the client waited {waited:?} for a body that never comes"
            );
        }
    });
}

#[test]
fn an_ipv6_url_is_shown_with_its_brackets() {
    on_each_runtime(|rt| {
        let nobody = edgepoll_tests::refused_port_at(std::net::Ipv6Addr::LOCALHOST.into());
        let url = format!("http://[::1]:{}/", nobody.port);
        let out = run_client(rt, &[&url]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{url} -> error: connection refused")),
            "{stderr}"
        );
    });
}

/// Header injection (CWE-113): a CR or LF in a field, the method or the URL
/// is refused with a message and exit status 2, and nothing is sent to any
/// URL given, not even the good ones.
#[test]
fn header_injection_is_refused_before_anything_is_sent() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Length(Duration::ZERO));
        let good = format!("http://{}/", server.addr);
        for (args, says) in [
            (vec!["-H", "X-A: a\r\nX-Injected: 1"], "X-A"),
            (vec!["-H", "X-A: a\nX-Injected: 1"], "X-A"),
            // At a value's end too: refused, not trimmed away.
            (vec!["-H", "X-A: a\r\n"], "X-A"),
            (vec!["-H", "X A: b"], "X A"),
            (vec!["-H", "Content-Length: 0"], "Content-Length"),
            (
                vec!["-X", "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET"],
                "method",
            ),
        ] {
            let mut all = args.clone();
            all.push(&good);
            let bad_url = format!("http://{}/x\r\nX-Injected: 1", server.addr);
            all.push(&bad_url);
            let out = run_client(rt, &all);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
        let bad_url = format!("http://{}/x\r\nX-Injected: 1", server.addr);
        let out = run_client(rt, &[&good, &bad_url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("path"), "{stderr}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            server.arrivals.lock().expect("lock").is_empty(),
            "a request was sent"
        );
    });
}

/// `-o FILE` replaces FILE only with the whole body of a 2xx response: a
/// body cut short or still in a transfer coding, an error status or a 304
/// leave it as it was (304 and 2xx exit 0), and no `FILE.part` stays behind. `--timeout` bounds each wait
/// of a download, not the whole: a body that keeps coming, slower than the
/// timeout in all, arrives.
#[test]
fn a_download_replaces_the_file_only_with_a_whole_2xx_body() {
    on_each_runtime(|rt| {
        let dir = scratch_dir("replace", rt);
        let file = dir.join("page.html");
        let part = dir.join("page.html.part");
        let preopen = format!("{}:{}", dir.display(), dir.display());
        // The server's reply, extra arguments, the exit code, and FILE after.
        type Case = (Reply, &'static [&'static str], Option<i32>, &'static [u8]);
        let cases: [Case; 6] = [
            // A body still in gzip (the client takes off chunked alone) is
            // not the body: refused, not written as it came.
            (
                Reply::Closing(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n",
                ),
                &[],
                Some(1),
                b"old",
            ),
            (
                Reply::Closing(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial"),
                &[],
                Some(1),
                b"old",
            ),
            (
                Reply::Closing(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here!"),
                &[],
                Some(1),
                b"old",
            ),
            (
                Reply::Closing(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
                &[],
                Some(0),
                b"old",
            ),
            (
                Reply::Closing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"),
                &[],
                Some(0),
                b"fresh",
            ),
            (Reply::Trickle, &["--timeout", "1"], Some(0), b"slow!"),
        ];
        for (reply, extra, code, contents) in cases {
            std::fs::write(&file, b"old").expect("write");
            let server = serve(reply);
            let (file, url) = (
                file.display().to_string(),
                format!("http://{}/", server.addr),
            );
            let out = run_client_in(rt, &preopen, &[extra, &["-o", &file, &url]].concat());
            let said = format!("{} {out:?}", rt.name());
            assert_eq!(out.status.code(), code, "{said}");
            assert_eq!(std::fs::read(&file).expect("the file"), contents, "{said}");
            assert!(!part.exists(), "{said}: {} left behind", part.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A head that never ends (a byte every 100 ms) meets a download's
/// deadline for it, where each byte used to start its wait again; without
/// `-o`, a body still coming when the request's time is up is a timeout,
/// not a late success; and a reply that is not HTTP fails at its first
/// bytes however long the read that brings them, where one of 50 bytes
/// without a line end waited for the timeout.
#[test]
fn a_slow_head_a_late_body_and_a_reply_not_http_each_fail_as_said() {
    on_each_runtime(|rt| {
        let dir = scratch_dir("slowhead", rt);
        let file = dir.join("f.bin");
        let part = dir.join("f.bin.part");
        let preopen = format!("{}:{}", dir.display(), dir.display());
        let server = serve(Reply::TrickleHead);
        let (file_arg, url) = (
            file.display().to_string(),
            format!("http://{}/", server.addr),
        );
        let out = run_client_in(rt, &preopen, &["--timeout", "1", "-o", &file_arg, &url]);
        let said = format!("{} {out:?}", rt.name());
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("timed out"),
            "{said}"
        );
        assert!(!file.exists() && !part.exists(), "{said}");
        let _ = std::fs::remove_dir_all(&dir);

        // The body's last byte comes some 2 s after the request.
        let server = serve(Reply::Trickle);
        let late = run_client(
            rt,
            &["--timeout", "1.8", &format!("http://{}/", server.addr)],
        );
        assert!(!late.status.success(), "{} {late:?}", rt.name());
        let said = String::from_utf8_lossy(&late.stderr);
        assert!(said.contains("timed out"), "{}: {said}", rt.name());

        // An HTTP/2 server's first frame, then nothing: no line end comes.
        const NOT_HTTP: &[u8] = b"\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64\0\x04\0\x10\0\0\0\x06\0\0\x40\0 and more bytes";
        let server = serve(Reply::HeadOnly(NOT_HTTP));
        let junk = run_client(
            rt,
            &["--timeout", "30", &format!("http://{}/", server.addr)],
        );
        assert!(!junk.status.success(), "{} {junk:?}", rt.name());
        let said = String::from_utf8_lossy(&junk.stderr);
        assert!(
            said.contains("malformed response head"),
            "{}: {said}",
            rt.name()
        );
    });
}

/// A download the file cannot take (the runtime's files are limited to
/// 8 MiB, and the body is 16 MiB) is reported as the file's failure, with
/// the file's name, not as the connection's: exit 1, FILE as it was, no
/// `FILE.part` left.
#[test]
fn a_failed_write_of_a_download_names_the_file() {
    use std::os::unix::process::CommandExt;
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n".to_vec();
    reply.resize(reply.len() + (16 << 20), b'x');
    let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
    on_each_runtime(|rt| {
        let dir = scratch_dir("full", rt);
        let file = dir.join("big.bin");
        let part = dir.join("big.bin.part");
        let preopen = format!("{}:{}", dir.display(), dir.display());
        std::fs::write(&file, b"old").expect("write");
        let server = serve(Reply::Closing(reply));
        let mut command = rt.command_with(&wasm("nonblock_http_client"), &["--dir", &preopen]);
        command
            .args([
                "-o",
                &file.display().to_string(),
                &format!("http://{}/", server.addr),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // (More than the runtimes' own files at start: wasmtime
                // keeps a module's memory image in one.)
                let most = libc::rlimit {
                    rlim_cur: 8 << 20,
                    rlim_max: 8 << 20,
                };
                // A write past the limit fails (EFBIG) instead of a signal.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                match libc::setrlimit(libc::RLIMIT_FSIZE, &most) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let out = wait_bounded(
            command.spawn().expect("client starts"),
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = format!("{}: {stderr}", rt.name());
        assert_eq!(out.status.code(), Some(1), "{said}");
        let named = format!("error: writing {}: ", part.display());
        assert!(stderr.contains(&named), "{said}");
        assert!(stderr.contains("big.bin left as it was"), "{said}");
        assert_eq!(std::fs::read(&file).expect("the file"), b"old", "{said}");
        assert!(!part.exists(), "{said}: {} left behind", part.display());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A command line refused as a mistake: exit 2, and stderr says `said`;
/// returns stderr.
fn assert_mistake(rt: &Runtime, out: &Output, args: &[&str], said: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{} {args:?}: {stderr}",
        rt.name()
    );
    assert!(stderr.contains(said), "{} {args:?}: {stderr}", rt.name());
    stderr
}

/// `-o` with a name that is no file's, or with HEAD, is refused with exit 2;
/// a `FILE.part` already there (another download's, or a stopped one's) is
/// left as it was and the download refused. Nothing is sent in either case.
#[test]
fn a_download_refuses_what_it_cannot_write_and_a_part_file_it_did_not_make() {
    on_each_runtime(|rt| {
        let dir = scratch_dir("part", rt);
        let preopen = format!("{}:{}", dir.display(), dir.display());
        let server = serve(Reply::Length(Duration::ZERO));
        let url = format!("http://{}/", server.addr);
        let file = dir.join("page.html");
        let part = dir.join("page.html.part");
        let file_arg = file.display().to_string();
        let dir_arg = format!("{}/", dir.display());
        let run = |args: &[&str]| run_client_in(rt, &preopen, args);
        for (args, says) in [
            (vec!["-o", "", &url], "give the name of a file"),
            (vec!["-o", &dir_arg, &url], "give the name of a file"),
            (vec!["-o", "-", &url], "give the name of a file"),
            (
                vec!["-o", &dir_arg[..dir_arg.len() - 1], &url],
                "give the name of a file",
            ),
            (vec!["-o", ".", &url], "give the name of a file"),
            (vec!["-X", "HEAD", "-o", &file_arg, &url], "HEAD"),
        ] {
            assert_mistake(rt, &run(&args), &args, says);
        }
        assert!(!file.exists() && !part.exists(), "{}", rt.name());
        std::fs::write(&part, b"another download's").expect("write");
        let out = run(&["-o", &file_arg, &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", rt.name());
        assert!(stderr.contains("exists"), "{}: {stderr}", rt.name());
        assert_eq!(std::fs::read(&part).expect("kept"), b"another download's");
        assert!(!file.exists(), "{}", rt.name());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            server.arrivals.lock().expect("lock").is_empty(),
            "{}: a request was sent",
            rt.name()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A request that fails before any response leaves an existing file as it
/// was and makes none where there was none; a `--timeout` too large for a
/// deadline is refused with exit 2.
#[test]
fn a_failed_download_leaves_the_file_alone_and_a_huge_timeout_is_refused() {
    on_each_runtime(|rt| {
        let dir = scratch_dir("keep", rt);
        let kept = dir.join("kept.bin");
        std::fs::write(&kept, b"old contents").expect("write");
        let fresh = dir.join("fresh.bin");
        let _ = std::fs::remove_file(&fresh);
        let preopen = format!("{}:{}", dir.display(), dir.display());
        let nobody = refused_port();
        let refused = format!("http://127.0.0.1:{}/", nobody.port);
        let made = format!("no {} made", fresh.display());
        for (file, said) in [(&kept, "kept.bin left as it was"), (&fresh, made.as_str())] {
            let out = run_client_in(rt, &preopen, &["-o", &file.display().to_string(), &refused]);
            assert_eq!(out.status.code(), Some(1), "{} {out:?}", rt.name());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(said), "{}: {stderr}", rt.name());
        }
        assert_eq!(std::fs::read(&kept).expect("still there"), b"old contents");
        assert!(
            !fresh.exists(),
            "{}: a failed download made a file",
            rt.name()
        );
        let _ = std::fs::remove_dir_all(&dir);

        let huge = run_client(rt, &["--timeout", "1e20", &refused]);
        assert_eq!(huge.status.code(), Some(2), "{} {huge:?}", rt.name());
        let said = String::from_utf8_lossy(&huge.stderr);
        assert!(said.contains("--timeout: at most"), "{said}");
    });
}

/// `-i` prints each final response's header fields, as they came, between
/// its status line and its body (curl's `-i`); with `-o` it is refused,
/// since curl would write them into the file.
#[test]
fn include_prints_the_header_fields() {
    on_each_runtime(|rt| {
        let server = serve(Reply::Length(Duration::ZERO));
        let url = format!("http://{}/", server.addr);
        let out = run_client(rt, &["-i", "-d", "shown", &url]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {stdout}", rt.name());
        let (_, after) = stdout.split_once("-> 200 OK\n").expect("the status line");
        let (fields, body) = after.split_once("\n\n").expect("an empty line");
        assert!(
            fields
                .lines()
                .any(|l| l.eq_ignore_ascii_case("content-length: 5")),
            "{}: {fields:?}",
            rt.name()
        );
        assert_eq!(body, "shown\n", "{}", rt.name());
        let out = run_client(rt, &["-i", "-o", "x.bin", &url]);
        refused_saying(rt, &out, "-o FILE with -i");
    });
}

/// `-d @FILE` sends FILE's bytes without their CRs, LFs and NULs, and
/// `--data-binary @FILE` all of them, as curl does (it sent "@FILE" itself);
/// `@-` reads standard input;
/// a file that cannot be read is a mistake on the command line (exit 2),
/// named with what to preopen.
#[test]
fn data_from_a_file_is_sent_as_curl_sends_it() {
    on_each_runtime(|rt| {
        let dir = scratch_dir("data", rt);
        let preopen = format!("{}:{}", dir.display(), dir.display());
        let file = dir.join("form.txt");
        std::fs::write(&file, b"a=1&\r\nb=2\n\0").expect("write");
        let at_file = format!("@{}", file.display());
        let server = serve(Reply::Length(Duration::ZERO));
        let url = format!("http://{}/", server.addr);
        // (The body printed, and a line end if it has none.)
        for (flag, sent) in [("-d", "a=1&b=2\n"), ("--data-binary", "a=1&\r\nb=2\n\0\n")] {
            let out = run_client_in(rt, &preopen, &[flag, &at_file, &url]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{} {flag}: {stdout}", rt.name());
            assert!(
                stdout.ends_with(&format!("-> 200 OK\n{sent}")),
                "{} {flag}: {stdout:?}",
                rt.name()
            );
        }
        // A file over 64 MiB is refused before anything is read or sent
        // (sparse: nothing is written to disk), and so is standard input.
        let large = dir.join("large.bin");
        let file = std::fs::File::create(&large).expect("create");
        file.set_len((64 << 20) + 1).expect("a sparse 64 MiB + 1");
        let at_large = format!("@{}", large.display());
        let out = run_client_in(rt, &preopen, &["-d", &at_large, &url]);
        refused_saying(rt, &out, "over the 64 MiB");
        let missing = format!("@{}", dir.join("none.txt").display());
        let out = run_client_in(rt, &preopen, &["-d", &missing, &url]);
        refused_saying(rt, &out, "--dir .:.");
        // `@-`: standard input.
        let mut command = client(rt, &["-d", "@-", &url]);
        let mut child = command
            .stdin(Stdio::piped())
            .spawn()
            .expect("client starts");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"x=1\r\n").expect("write");
        drop(stdin);
        let out = wait_bounded(child, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.ends_with("-> 200 OK\nx=1\n"),
            "{}: {stdout:?}",
            rt.name()
        );
        let mut command = client(rt, &["-d", "@-", &url]);
        let mut child = command
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client starts");
        let mut stdin = child.stdin.take().expect("stdin");
        // Written from a thread: the client stops reading past the most.
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..65 {
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let out = wait_bounded(child, Duration::from_secs(60));
        writer.join().expect("writer");
        refused_saying(rt, &out, "over the 64 MiB");
        // A file whose size says nothing (a FIFO) is read to the most and
        // no further. (It was read to its end, however long.)
        let fifo = dir.join("fifo");
        let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("a path");
        // SAFETY: mkfifo reads the NUL-terminated path it is given.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        let writer = std::thread::spawn(move || {
            let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                return 0;
            };
            let chunk = vec![b'x'; 1 << 20];
            (0..80)
                .take_while(|_| fifo.write_all(&chunk).is_ok())
                .count()
        });
        let at_fifo = format!("@{}", dir.join("fifo").display());
        let out = run_client_in(rt, &preopen, &["-d", &at_fifo, &url]);
        // A writer still waiting for a reader (the client never opened the
        // FIFO) gets one, gone at once: its writes fail, and it ends.
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(dir.join("fifo"));
        let written = writer.join().expect("writer");
        refused_saying(rt, &out, "over the 64 MiB");
        assert!(written < 80, "{}: the FIFO was read to its end", rt.name());
    });
}

/// A mistake on the command line is named, with the usage, and exits 2
/// before anything is sent.
#[test]
fn command_line_mistakes_are_named() {
    on_each_runtime(|rt| {
        for (args, said) in [
            (
                &["--max-connections", "0"][..],
                "--max-connections: not a positive number: 0",
            ),
            (
                &["--parallel", "x"][..],
                "--parallel: not a positive number: x",
            ),
            (&["--parallel"][..], "--parallel needs a value"),
            (&["--bogus"][..], "unknown option --bogus"),
            (
                &["--timeout", "1e-10"][..],
                "--timeout: less than a millisecond",
            ),
            // `--name=value` is `--name value`; a flag takes none.
            (
                &["--timeout=1e-10"][..],
                "--timeout: less than a millisecond",
            ),
            (&["--verbose=yes"][..], "--verbose takes no value"),
            // One value an option: a second is not put over the first.
            (
                &["-d", "a", "--data=b"][..],
                "give one body: -d (--data) or --data-binary, once",
            ),
            (
                &["-d", "a", "--data-binary", "b"][..],
                "give one body: -d (--data) or --data-binary, once",
            ),
            (&["-d", "@"][..], "-d @FILE: give a file's name"),
            (
                &["--timeout", "1", "--timeout", "2"][..],
                "--timeout is given twice",
            ),
            // After `--`, an argument that looks like an option is a URL.
            (&["--", "--timeout"][..], "--timeout: URL refused"),
        ] {
            // The URL first, so that the option missing its value is last.
            let mut all = vec!["http://127.0.0.1:9/"];
            all.extend_from_slice(args);
            let stderr = assert_mistake(rt, &run_client(rt, &all), args, said);
            assert!(stderr.contains("usage: nonblock_http_client"), "{stderr}");
        }
        // `-h` as an option's value is that value, not a call for help.
        let out = run_client(rt, &["-d", "-h", "http://127.0.0.1:9/"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {stdout}", rt.name());
        assert!(!stdout.contains("usage"), "{}: {stdout}", rt.name());
        // An argument that is not UTF-8 is named; it panicked.
        let mut cmd = client(rt, &["-d"]);
        cmd.arg(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        let out = wait_bounded(cmd.spawn().expect("client starts"), Duration::from_secs(60));
        refused_saying(rt, &out, "not UTF-8");
    });
}

/// `download` of a request that offers to switch protocols ends at the
/// 101: its head is the answer, with no body. (It waited for ever: the
/// switched connection closed, and no end of a body was ever reported.)
#[test]
fn a_download_answered_with_a_switch_ends_at_the_101() {
    let upstream = NativeUpstream::start(Behaviour::Switch);
    on_each_runtime(|runtime| {
        let url = format!("{}/chat", upstream.url());
        let args = ["download-switch", url.as_str()];
        let out = run_wasm(runtime, "conformance_guest", &args, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("status=101 body=0"),
            "{}: {stdout} {}",
            runtime.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// What the client puts on the wire for a request with no body and no
/// options, seen by an upstream that answers with the head it received: a
/// `User-Agent` naming the client (RFC 9110 §10.1.5; `-H` replaces it, or
/// with an empty value sends none), and no `Content-Length: 0` where the
/// method anticipates no content (a DELETE; RFC 9110 §8.6), where a POST
/// gets one.
#[test]
fn a_request_names_its_user_agent_and_frames_only_what_it_may_carry() {
    let reflect = NativeUpstream::start(Behaviour::Reflect);
    let url = format!("http://{}/r", reflect.addr);
    on_each_runtime(|rt| {
        let name = rt.name();
        let head = |args: &[&str]| {
            let out = run_client(rt, &[args, &[url.as_str()]].concat());
            let stdout = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
            assert_eq!(out.status.code(), Some(0), "{name}: {stdout}");
            stdout
        };
        let agent = format!(
            "user-agent: nonblock_http_client/{}",
            env!("CARGO_PKG_VERSION")
        );
        let deleted = head(&["-X", "DELETE"]);
        assert!(deleted.contains("delete /r http/1.1"), "{name}: {deleted}");
        assert!(deleted.contains(&agent), "{name}: {deleted}");
        assert!(!deleted.contains("content-length"), "{name}: {deleted}");
        let posted = head(&["-X", "POST"]);
        assert!(posted.contains("content-length: 0"), "{name}: {posted}");
        let named = head(&["-H", "User-Agent: probe/1"]);
        assert!(named.contains("user-agent: probe/1"), "{name}: {named}");
        assert_eq!(named.matches("user-agent").count(), 1, "{name}: {named}");
        let unnamed = head(&["-H", "User-Agent:"]);
        assert!(!unnamed.contains("user-agent"), "{name}: {unnamed}");
        // As curl reads them: `Name:` sends none (nor -d's default type,
        // where an empty field went), `Name;` an empty one.
        let untyped = head(&["-d", "x", "-H", "Content-Type:", "-H", "Accept:"]);
        assert!(!untyped.contains("content-type"), "{name}: {untyped}");
        assert!(!untyped.contains("accept"), "{name}: {untyped}");
        let empty = head(&["-H", "X-Empty;", "-H", "Accept ;"]);
        assert!(empty.contains("\r\nx-empty: \r\n"), "{name}: {empty}");
        assert!(empty.contains("\r\naccept: \r\n"), "{name}: {empty}");
    });
}
