//! `https://` on every runtime: rustls in the guest against real servers
//! started here on loopback ports (openssl s_server, nginx), with a CA and
//! certificates generated at test time; and servers that stall or answer
//! garbage in the handshake.

use edgepoll_tests::tls::{
    fault_after_answer, slow_at_each_step, CloseDelimited, Fault, KeyUpdater, NotifyCheck, Pki,
    Raw, RawServer, SServer, SlowReader, Straggler,
};
use edgepoll_tests::upstream::{Behaviour, NativeUpstream, Nginx};
use edgepoll_tests::{
    connect, cpu_ticks, on_each_runtime, read_response, refused_port, run_wasm_with,
    start_program_with, wait_bounded, wait_until, wasm, Running, Runtime,
};
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs nonblock_http_client with the PKI's directory preopened.
fn client(runtime: &Runtime, pki: &Pki, args: &[&str]) -> (i32, String, String) {
    let dir = format!("{0}:{0}", pki.dir.display());
    let out = run_wasm_with(
        runtime,
        "nonblock_http_client",
        &["--dir", &dir],
        args,
        Duration::from_secs(120),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// nginx serving over TLS with the PKI's good certificate.
fn nginx_over_tls(pki: &Pki) -> Nginx {
    let certificate = format!(
        "ssl_certificate {}; ssl_certificate_key {};",
        pki.path("good.pem"),
        pki.path("good.key")
    );
    Nginx::start_listening("ssl", &certificate)
}

/// The proxy in front of `upstreams` (then any other arguments), trusting
/// the PKI's CA, its directory preopened.
fn https_proxy(runtime: &Runtime, pki: &Pki, upstreams: &[&str]) -> Running {
    let dir = format!("{0}:{0}", pki.dir.display());
    let ca = pki.path("ca.pem");
    let mut args = Vec::new();
    for upstream in upstreams {
        args.extend(["--upstream", upstream]);
    }
    args.extend(["--cacert", &ca]);
    start_program_with(runtime, "proxy", &["--dir", &dir], &["--listen"], &args)
}

/// Sends `request` on `stream` (to a proxy in front of nginx) and reads
/// nginx's fixed answer to it.
fn gets_the_fixed_answer(stream: &mut std::net::TcpStream, request: &[u8], runtime: &Runtime) {
    stream.write_all(request).expect("send");
    let (head, body) = read_response(stream);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{} {head}",
        runtime.name()
    );
    assert_eq!(body, b"fixed answer from nginx\n");
}

/// Every key exchange group the client offers completes a handshake with a
/// server that takes that one alone, in TLS 1.3 (P-256 and P-384 after a
/// HelloRetryRequest, since the client's first share is X25519's) and 1.2:
/// the client draws each group's keys itself (`tls/kx.rs`), not as ring
/// would, in one `random_get` (under WasmEdge, 31 bits).
/// The proxy's log once it holds `text` (within 10 s: its lines reach
/// the test through a reader thread), or all of it by then.
fn log_holding(proxy: &Running, text: &str) -> String {
    let lines = proxy.stderr_until(Duration::from_secs(10), |lines| {
        lines.iter().any(|l| l.contains(text))
    });
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn a_handshake_completes_in_each_key_exchange_group() {
    let pki = Pki::new();
    let mut servers = Vec::new();
    for group in ["X25519", "P-256", "P-384"] {
        for version in ["-tls1_3", "-tls1_2"] {
            let server = SServer::start(&pki, "good", &[version, "-groups", group]);
            servers.push((format!("{group} {version}"), server));
        }
    }
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let urls: Vec<String> = (servers.iter())
            .map(|(_, server)| format!("https://localhost:{}/", server.addr.port()))
            .collect();
        let mut args = vec!["-v", "--timeout", "20", "--cacert", &ca];
        args.extend(urls.iter().map(String::as_str));
        let (code, stdout, stderr) = client(runtime, &pki, &args);
        assert_eq!(code, 0, "{}: {stdout}\n{stderr}", runtime.name());
        for (i, (what, _)) in servers.iter().enumerate() {
            let answered = format!("[{}] GET {} -> 200 ok", i + 1, urls[i]);
            assert!(stdout.contains(&answered), "{what}: {stdout}\n{stderr}");
            // `-v` names the group agreed on: the one the server took.
            let (group, version) = what.split_once(' ').unwrap_or_default();
            let (version, group) = match (version, group) {
                ("-tls1_3", g) => ("TLSv1.3", g),
                (_, g) => ("TLSv1.2", g),
            };
            let group = match group {
                "P-256" => "secp256r1",
                "P-384" => "secp384r1",
                other => other,
            };
            let prefix = format!("* [{}] GET {}: {version} ", i + 1, urls[i]);
            let told = stderr.lines().find_map(|l| l.strip_prefix(&prefix));
            let named = told.and_then(|rest| rest.split(',').next()?.split(' ').nth(1));
            assert_eq!(named, Some(group), "{what}: {stderr}");
        }
    });
}

/// A good certificate (by name and by IP), a wrong name, an expired one, a
/// self-signed one, a TLS 1.2-only server, and the Mozilla roots by default.
#[test]
fn certificates_are_checked_and_failures_name_their_cause() {
    let pki = Pki::new();
    let good = SServer::start(&pki, "good", &[]);
    let tls12 = SServer::start(&pki, "good", &["-tls1_2"]);
    let wrong = SServer::start(&pki, "wrong-name", &[]);
    let expired = SServer::start(&pki, "expired", &[]);
    let own = SServer::start(&pki, "self-signed", &[]);
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let url = |server: &SServer, host: &str| format!("https://{host}:{}/", server.addr.port());
        let urls = [
            url(&good, "localhost"),
            url(&good, "127.0.0.1"),
            url(&tls12, "localhost"),
            url(&wrong, "localhost"),
            url(&expired, "localhost"),
            url(&own, "localhost"),
        ];
        let mut args = vec!["-v", "--timeout", "10", "--cacert", &ca];
        args.extend(urls.iter().map(String::as_str));
        let (code, stdout, stderr) = client(runtime, &pki, &args);
        assert_eq!(code, 1, "three fail: {stderr}");
        let answered = |i: usize| format!("[{}] GET {} -> 200 ok", i + 1, urls[i]);
        for (i, url) in urls.iter().enumerate().take(3) {
            assert!(stdout.contains(&answered(i)), "{url}\n{stdout}\n{stderr}");
        }
        let told = |i: usize| {
            let prefix = format!("* [{}] GET {}: ", i + 1, urls[i]);
            stderr
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no TLS line for {}: {stderr}", urls[i]))
                .to_string()
        };
        assert!(told(0).starts_with("TLSv1.3 TLS13_"), "{}", told(0));
        assert!(
            told(0).ends_with("certificate subject: CN=localhost, O=edgepoll tests"),
            "{}",
            told(0)
        );
        assert!(told(2).starts_with("TLSv1.2 TLS_ECDHE_"), "{}", told(2));
        let failed = |i: usize, why: &str| {
            let line = format!(
                "[{}] GET {} -> error: TLS: certificate rejected: {why}",
                i + 1,
                urls[i]
            );
            assert!(stderr.contains(&line), "{line}\n{stderr}");
        };
        failed(
            3,
            "the certificate is not valid for this host name (it is for other.test)",
        );
        failed(4, "the certificate has expired");
        // openssl's usual self-signed certificate is marked as a CA.
        failed(5, "a CA certificate used as the server's (self-signed?)");
        // Without --cacert the Mozilla roots are trusted: not this CA.
        let (code, _, stderr) = client(runtime, &pki, &["--timeout", "10", &urls[0]]);
        assert_eq!(code, 1);
        assert!(stderr.contains("unknown issuer"), "{stderr}");
        // A CA file that holds no certificate is a bad argument: refused
        // with its reason before anything is sent.
        let key = pki.path("good.key");
        let (code, stdout, stderr) = client(runtime, &pki, &["--cacert", &key, &urls[0]]);
        assert_eq!(code, 2, "{stdout} {stderr}");
        let said = format!("--cacert {key}: TLS setup failed: the CA file holds no certificate");
        assert!(stderr.contains(&said), "{stderr}");
        assert!(!stdout.contains("->"), "{stdout}");
        // A bundle with a certificate that is no root (an empty DER
        // sequence) before the CA: the CA is trusted all the same.
        let ca_pem = std::fs::read_to_string(&ca).expect("ca.pem");
        let bundle = pki.dir.join("bundle.pem");
        let unusable = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        std::fs::write(&bundle, format!("{unusable}{ca_pem}")).expect("write");
        let (code, stdout, stderr) = client(
            runtime,
            &pki,
            &["--cacert", &bundle.to_string_lossy(), &urls[0]],
        );
        assert_eq!(code, 0, "{stdout} {stderr}");
        assert!(stdout.contains("-> 200 ok"), "{stdout}");
    });
}

/// An address in the URL is checked against the certificate's IP names,
/// an IPv6 one as an IPv4 one (no SNI is sent for either); and a server
/// that takes no http/1.1 by ALPN (h2 only: openssl's alert 120) is told
/// as that, end to end.
#[test]
fn ipv6_names_are_checked_and_an_h2_only_server_is_told() {
    let pki = Pki::new();
    let good = SServer::start_at(&pki, "good", "[::1]:0", &[]);
    let wrong = SServer::start_at(&pki, "wrong-name", "[::1]:0", &[]);
    let h2_only = SServer::start(&pki, "good", &["-alpn", "h2"]);
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let urls = [
            format!("https://[::1]:{}/", good.addr.port()),
            format!("https://[::1]:{}/", wrong.addr.port()),
            format!("https://localhost:{}/", h2_only.addr.port()),
        ];
        let mut args = vec!["--timeout", "10", "--cacert", &ca];
        args.extend(urls.iter().map(String::as_str));
        let (code, stdout, stderr) = client(runtime, &pki, &args);
        assert_eq!(code, 1, "{}: two fail: {stdout} {stderr}", runtime.name());
        let answered = format!("[1] GET {} -> 200 ok", urls[0]);
        assert!(stdout.contains(&answered), "{stdout}\n{stderr}");
        let expected = [
            "TLS: certificate rejected: the certificate is not valid for this host name (it is for other.test)",
            "TLS protocol error: the server offers no http/1.1 (ALPN)",
        ];
        for (i, why) in expected.iter().enumerate() {
            let line = format!("[{}] GET {} -> error: {why}", i + 2, urls[i + 1]);
            assert!(stderr.contains(&line), "{line}\n{stderr}");
        }
    });
}

/// A large download over TLS from nginx, compared byte for byte: 64 MiB on
/// edgepoll-host and WasmEdge AOT, 8 MiB on the interpreter (about 2 MB/s
/// there).
#[test]
fn a_large_download_from_nginx_over_tls_is_byte_exact() {
    let pki = Pki::new();
    let nginx = nginx_over_tls(&pki);
    let size = |runtime: &Runtime| match runtime {
        Runtime::WasmEdge => 8 << 20,
        _ => 64 << 20,
    };
    let mut content = vec![0u8; 64 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(nginx.root.join("big.bin"), &content).expect("write the file");
    std::fs::write(nginx.root.join("small.bin"), &content[..8 << 20]).expect("write the file");
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let n = size(runtime);
        let name = if n == content.len() {
            "big.bin"
        } else {
            "small.bin"
        };
        let url = format!("https://localhost:{}/{name}", nginx.addr.port());
        let out = pki.path(&format!("download-{}", runtime.name().replace(' ', "-")));
        let started = Instant::now();
        let (code, stdout, stderr) = client(
            runtime,
            &pki,
            &["-v", "--timeout", "100", "--cacert", &ca, "-o", &out, &url],
        );
        let took = started.elapsed();
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(
            stderr.contains("ALPN http/1.1"),
            "nginx chose http/1.1: {stderr}"
        );
        let got = std::fs::read(&out).expect("downloaded file");
        assert_eq!(got.len(), n, "{stdout}");
        assert!(got == content[..n], "the download differs from the file");
        println!(
            "{}: {} MiB over TLS from nginx in {took:?}",
            runtime.name(),
            n >> 20
        );
    });
}

/// A server that never answers the ClientHello: the handshake times out
/// (no hang); servers that answer garbage: a protocol error.
#[test]
fn stalled_and_garbage_handshakes_fail_cleanly() {
    let pki = Pki::new();
    let stall = RawServer::start(Raw::Stall);
    let garbage = RawServer::start(Raw::Garbage);
    let bad_record = RawServer::start(Raw::BadRecord);
    on_each_runtime(|runtime| {
        let url = format!("https://localhost:{}/", stall.addr.port());
        runtime.prepare("nonblock_http_client");
        let started = Instant::now();
        let (code, _, stderr) = client(runtime, &pki, &["--timeout", "2", &url]);
        let took = started.elapsed();
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("error: no TLS handshake within 2.0 s"),
            "{stderr}"
        );
        assert!(took < Duration::from_secs(30), "took {took:?}");
        for server in [&garbage, &bad_record] {
            let url = format!("https://localhost:{}/", server.addr.port());
            let (code, _, stderr) = client(runtime, &pki, &["--timeout", "5", &url]);
            assert_eq!(code, 1, "{stderr}");
            let error = stderr.lines().find_map(|l| l.split_once("-> error: "));
            assert!(error.is_some_and(|(_, e)| e.contains("TLS")), "{stderr}");
        }
    });
}

/// A request larger than what rustls holds before the handshake ends
/// (64 KiB), to a server that never answers the ClientHello: the client
/// waits for the answer without spinning (it watched the socket for room
/// that the request was not waiting for, and every poll returned at once),
/// and the handshake times out.
#[test]
fn a_large_request_waits_for_a_stalled_handshake_without_spinning() {
    let pki = Pki::new();
    let stall = RawServer::start(Raw::Stall);
    let body = "x".repeat(100_000);
    let dir = format!("{0}:{0}", pki.dir.display());
    on_each_runtime(|runtime| {
        let before_hellos = stall.hellos.load(std::sync::atomic::Ordering::Relaxed);
        let url = format!("https://localhost:{}/", stall.addr.port());
        // Killed if an assertion below fails.
        let child = edgepoll_tests::KilledOnDrop::new(
            runtime
                .command_with(&wasm("nonblock_http_client"), &["--dir", &dir])
                .args(["--timeout", "8", "-d", &body, &url])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("runtime starts"),
        );
        let hello = wait_until(Duration::from_secs(60), || {
            stall.hellos.load(std::sync::atomic::Ordering::Relaxed) > before_hellos
        });
        assert!(hello, "no ClientHello arrived");
        std::thread::sleep(Duration::from_millis(300));
        let before = cpu_ticks(child.id()).expect("client's /proc stat is readable");
        let window = Duration::from_millis(1500);
        std::thread::sleep(window);
        let after = cpu_ticks(child.id()).expect("client still running");
        let out = wait_bounded(child.into_child(), Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no TLS handshake within 8.0 s"), "{stderr}");
        // Clock ticks are 10 ms: a busy loop burns about 150 in the window.
        assert!(
            after - before <= 15,
            "{}: the client used {} ticks of CPU in {window:?} waiting for the handshake",
            runtime.name(),
            after - before
        );
    });
}

/// A request body that trickles in while the upstream's TLS handshake
/// stalls does not hold off the handshake's timeout: each piece went into
/// rustls (which takes 64 KiB before the handshake ends) and counted as
/// progress, so the handshake was waited for as long as the body came.
#[test]
fn a_trickling_body_does_not_hold_off_a_stalled_handshake_s_timeout() {
    let pki = Pki::new();
    let stall = RawServer::start(Raw::Stall);
    on_each_runtime(|runtime| {
        let upstream = format!("https://localhost:{}", stall.addr.port());
        let proxy = https_proxy(runtime, &pki, &[&upstream]);
        let mut stream = connect(proxy.addr);
        // Longer than the body takes: a late answer fails the bound below,
        // not the read.
        stream
            .set_read_timeout(Some(Duration::from_secs(45)))
            .expect("timeout");
        stream
            .write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("send");
        // A chunk of a byte every half second: the body takes 30 s. (A
        // chunked body streams through the proxy at once; a small one with
        // a length would come whole before the upstream is asked.)
        let mut writer = stream.try_clone().expect("clone");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let trickle = std::thread::spawn(move || {
            for _ in 0..60 {
                std::thread::sleep(Duration::from_millis(500));
                if stopped.load(std::sync::atomic::Ordering::Relaxed)
                    || writer.write_all(b"1\r\nx\r\n").is_err()
                {
                    break;
                }
            }
        });
        let started = Instant::now();
        let (head, _) = read_response(&mut stream);
        let took = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = trickle.join();
        assert!(
            head.starts_with("HTTP/1.1 502") || head.starts_with("HTTP/1.1 504"),
            "{}: {head}",
            runtime.name()
        );
        // The handshake's limit is the proxy's connect timeout (5 s).
        assert!(
            took < Duration::from_secs(20),
            "{}: answered after {took:?}, as the body came",
            runtime.name()
        );
    });
}

/// The proxy in front of nginx over https://, trusting the test CA: a
/// `return 200` and a static file come through; an upstream whose
/// certificate it cannot verify gets 502 and one log line.
#[test]
fn the_proxy_reaches_https_upstreams() {
    let pki = Pki::new();
    let nginx = nginx_over_tls(&pki);
    let page: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(nginx.root.join("page.bin"), &page).expect("write");
    let untrusted = SServer::start(&pki, "self-signed", &[]);
    let dir = format!("{0}:{0}", pki.dir.display());
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let good = format!("https://localhost:{}", nginx.addr.port());
        let proxy = https_proxy(runtime, &pki, &[&good]);
        let mut stream = connect(proxy.addr);
        for _ in 0..3 {
            gets_the_fixed_answer(
                &mut stream,
                b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n",
                runtime,
            );
        }
        stream
            .write_all(b"GET /page.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == page, "the page came through changed");
        drop(proxy);
        // An offer to switch protocols, refused by a plain upstream's port,
        // goes again to the https:// one without the offer (a tunnel does
        // not pass through TLS), as it would have gone there first.
        let nobody = refused_port();
        let refused = format!("http://127.0.0.1:{}", nobody.port);
        let proxy = https_proxy(runtime, &pki, &[&refused, &good]);
        let mut stream = connect(proxy.addr);
        for _ in 0..2 {
            let offer = b"GET /fixed HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
            gets_the_fixed_answer(&mut stream, offer, runtime);
        }
        let log = log_holding(&proxy, &refused);
        assert!(
            log.contains(&refused),
            "the refused upstream was tried: {log}"
        );
        drop(proxy);
        let bad = format!("https://localhost:{}", untrusted.addr.port());
        let proxy = https_proxy(runtime, &pki, &[&bad]);
        let mut stream = connect(proxy.addr);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, _) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
        let log = log_holding(&proxy, "certificate rejected");
        assert!(log.contains("certificate rejected"), "{log}");
        drop(proxy);
        // The other way round: an offer refused by an https:// upstream's
        // port (sent there without it) goes to a plain one with it, and
        // switches there.
        let nobody = refused_port();
        let refused_tls = format!("https://localhost:{}", nobody.port);
        let far = NativeUpstream::start(Behaviour::Switch);
        let proxy = start_program_with(
            runtime,
            "proxy",
            &["--dir", &dir],
            &["--listen"],
            &[
                "--upstream",
                &refused_tls,
                "--upstream",
                &far.addr.to_string(),
                "--cacert",
                &ca,
            ],
        );
        for _ in 0..2 {
            let mut stream = connect(proxy.addr);
            let offer =
                b"GET /t HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
            stream.write_all(offer).expect("send");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            assert!(
                head.starts_with("HTTP/1.1 101 "),
                "{} {head}",
                runtime.name()
            );
        }
        let log = log_holding(&proxy, &refused_tls);
        assert!(
            log.contains(&refused_tls),
            "the refused upstream was tried: {log}"
        );
        // A CA file that holds no certificate stops the proxy at its start,
        // a mistake on the command line (exit 2), as it is the client's.
        let out = run_wasm_with(
            runtime,
            "proxy",
            &["--dir", &dir],
            &[
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &good,
                "--cacert",
                &pki.path("good.key"),
            ],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("holds no certificate"), "{stderr}");
    });
}

/// An https:// upstream whose handshake fails (what it sends is not TLS,
/// or it resets the connection) got nothing of the request: the request
/// goes to another upstream, whatever its method, as it does when a
/// connection is refused. (It got 502 but for a certificate or a handshake
/// that timed out; after a reset, but for an idempotent method.)
#[test]
fn a_request_whose_upstream_handshake_fails_goes_to_another() {
    let pki = Pki::new();
    let nginx = nginx_over_tls(&pki);
    let failing = [
        (
            Raw::Garbage,
            "TLS protocol error: what the server sent is not TLS",
        ),
        (
            Raw::Reset,
            "TLS: the connection was reset during the handshake",
        ),
    ];
    let failing = failing.map(|(how, logged)| (RawServer::start(how), logged));
    on_each_runtime(|runtime| {
        for (server, logged) in &failing {
            let bad = format!("https://localhost:{}", server.addr.port());
            let good = format!("https://localhost:{}", nginx.addr.port());
            let proxy = https_proxy(runtime, &pki, &[&bad, &good]);
            for _ in 0..3 {
                let post = b"POST /fixed HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
                gets_the_fixed_answer(&mut connect(proxy.addr), post, runtime);
            }
            let log = log_holding(&proxy, logged);
            assert!(
                log.contains(logged),
                "the failing upstream was tried: {log}"
            );
        }
    });
}

/// An idle pooled https:// connection on which part of a TLS record came
/// (a response nobody asked for, cut in two) is closed, not reused: reused,
/// the record's rest came with the next request's answer, and the proxy
/// passed the stray response on as that answer.
#[test]
fn an_idle_https_connection_holding_part_of_a_record_is_not_reused() {
    let pki = Pki::new();
    let server = Straggler::start(&pki);
    on_each_runtime(|runtime| {
        let upstream = format!("https://localhost:{}", server.addr.port());
        let proxy = https_proxy(runtime, &pki, &[&upstream]);
        let mut stream = connect(proxy.addr);
        stream
            .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"first");
        // The half record comes 0.3 s after the answer.
        std::thread::sleep(Duration::from_secs(1));
        stream
            .write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            "first",
            "{}: a new connection's first answer",
            runtime.name()
        );
    });
}

/// A body that runs until the close ends, over TLS, only with the server's
/// close_notify: a bare TCP close (as an injected FIN would make) cannot be
/// told from a cut, and is reported as one (RFC 8446 §6.1, RFC 9112 §9.8).
#[test]
fn a_body_read_until_the_close_needs_close_notify() {
    let pki = Pki::new();
    let clean = CloseDelimited::start(&pki, true);
    let cut = CloseDelimited::start(&pki, false);
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let url = |server: &CloseDelimited| format!("https://localhost:{}/", server.addr.port());
        let (code, stdout, stderr) = client(runtime, &pki, &["--cacert", &ca, &url(&clean)]);
        assert_eq!(code, 0, "{} {stdout} {stderr}", runtime.name());
        assert!(stdout.contains("200"), "{stdout}");
        let (code, stdout, stderr) = client(runtime, &pki, &["--cacert", &ca, &url(&cut)]);
        assert_eq!(code, 1, "{} {stdout} {stderr}", runtime.name());
        assert!(stderr.contains("-> error: "), "{stderr}");
    });
}

/// An upload to an https:// server that reads it slowly, so that the
/// client's socket fills: every byte arrives. (A review traced that the
/// last of a body could wait, encrypted, for a read that never came, once
/// the request had all gone into TLS; the loop now watches the socket for
/// room while TLS holds output. Here the socket took that last part at
/// once, so this shows uploads over TLS work, not that case.)
#[test]
fn an_upload_to_a_slow_https_server_is_sent_whole() {
    let pki = Pki::new();
    let slow = SlowReader::start(&pki);
    let ca = pki.path("ca.pem");
    // Under the 128 KiB the kernel allows one argument: 64 KiB go into
    // TLS at once, the rest once they are sent.
    let body = "x".repeat(120_000);
    on_each_runtime(|runtime| {
        let url = format!("https://localhost:{}/upload", slow.addr.port());
        let started = Instant::now();
        let (code, stdout, stderr) = client(
            runtime,
            &pki,
            &["--cacert", &ca, "--timeout", "60", "-d", &body, &url],
        );
        let took = started.elapsed();
        println!(
            "{}: 120 kB to a slow https server in {took:?}",
            runtime.name()
        );
        assert_eq!(code, 0, "{} {stdout} {stderr}", runtime.name());
        assert!(stdout.contains("-> 200 OK"), "{stdout}");
        assert!(stdout.contains("120000"), "every byte arrived: {stdout}");
    });
}

/// A connection the client closes after the server's close_notify (its
/// response said `Connection: close`) ends with the client's own
/// close_notify, as RFC 8446 §6.1 asks of each side; it ended with a bare
/// TCP close. So does a kept-alive one the client leaves when it is done
/// (the loop's end closed it bare).
#[test]
fn the_client_sends_close_notify_before_it_closes() {
    let pki = Pki::new();
    for keep_alive in [false, true] {
        let server = NotifyCheck::start(&pki, keep_alive);
        closes_with_close_notify(&pki, &server);
    }
}

fn closes_with_close_notify(pki: &Pki, server: &NotifyCheck) {
    let ca = pki.path("ca.pem");
    let runs = std::sync::atomic::AtomicUsize::new(0);
    on_each_runtime(|runtime| {
        let url = format!("https://localhost:{}/", server.addr.port());
        let (code, stdout, stderr) = client(runtime, pki, &["--cacert", &ca, &url]);
        assert_eq!(code, 0, "{} {stdout} {stderr}", runtime.name());
        assert!(stdout.contains("-> 200 OK"), "{stdout}");
        let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let outcomes = server.outcomes(run);
        assert_eq!(outcomes.len(), run, "{}: {outcomes:?}", runtime.name());
        assert_eq!(
            outcomes.last().map(String::as_str),
            Some("clean"),
            "{}: {outcomes:?}",
            runtime.name()
        );
    });
}

/// A response whose records were all authenticated stands when a record
/// that fails comes behind it, in the same read or later (RFC 8446 §6.2: a
/// fault ends the connection, not what came before it); one the fault
/// cuts short fails, naming TLS. The same read failed the whole response.
#[test]
fn a_response_whole_before_a_tls_fault_is_answered() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let servers =
        [Fault::Same, Fault::Later, Fault::Short].map(|f| (f, fault_after_answer(&pki, f)));
    on_each_runtime(|runtime| {
        for (fault, server) in &servers {
            let url = format!("https://localhost:{}/", server.addr.port());
            let (code, stdout, stderr) = client(runtime, &pki, &["--cacert", &ca, &url]);
            let name = runtime.name();
            match fault {
                Fault::Same | Fault::Later => {
                    assert_eq!(code, 0, "{name} {fault:?}: {stdout} {stderr}");
                    assert!(stdout.contains("-> 200 OK"), "{name} {fault:?}: {stdout}");
                    assert!(stdout.contains("hello"), "{name} {fault:?}: {stdout}");
                }
                Fault::Short => {
                    assert_eq!(code, 1, "{name} {fault:?}: {stdout} {stderr}");
                    assert!(
                        stderr.contains("-> error: TLS"),
                        "{name} {fault:?}: {stderr}"
                    );
                }
            }
        }
    });
}

/// A download's wait for its next byte starts again when the handshake
/// ends (the request goes then): a slow handshake does not eat into the
/// time the server has to answer. It counted from the TCP connect.
#[test]
fn the_response_timeout_counts_from_the_end_of_the_handshake() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    // Handshake and answer each come 3 s after the step before: the old
    // count, from the connect, ran past 5 s; the new has 2 s to spare.
    let server = slow_at_each_step(&pki, Duration::from_secs(3));
    on_each_runtime(|runtime| {
        let url = format!("https://localhost:{}/", server.addr.port());
        let out = format!("{}/slow.out", pki.dir.display());
        let args = ["--cacert", &ca, "--timeout", "5", "-o", &out, &url];
        let (code, stdout, stderr) = client(runtime, &pki, &args);
        assert_eq!(code, 0, "{} {stdout} {stderr}", runtime.name());
        let body = std::fs::read(&out).unwrap_or_default();
        assert_eq!(body, b"late", "{}", runtime.name());
        let _ = std::fs::remove_file(&out);
    });
}

/// Records that carry no plaintext (a KeyUpdate every 300 ms, from a server
/// that never answers) are no answer: the response timeout (2 s) ends the
/// request. Counted as progress, they held it off until rustls refused the
/// 33rd update, some 10 s on (and session tickets, which rustls takes
/// without limit, for ever).
#[test]
fn records_without_plaintext_do_not_hold_off_the_response_timeout() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    on_each_runtime(|runtime| {
        let server = KeyUpdater::start(&pki);
        let url = format!("https://localhost:{}/", server.addr.port());
        // With -o, --timeout is the most the download waits for a byte.
        let out = format!("{}/updated.out", pki.dir.display());
        let args = ["--cacert", &ca, "--timeout", "2", "-o", &out, &url];
        let (code, stdout, stderr) = client(runtime, &pki, &args);
        let said = format!("{stdout}{stderr}");
        assert_eq!(code, 1, "{} {said}", runtime.name());
        assert!(
            said.contains("timed out after 2.0 s"),
            "{}: {said}",
            runtime.name()
        );
    });
}
