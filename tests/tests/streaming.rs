//! Bodies of any size through a streaming service (`forward_guest --stream`)
//! on every runtime: 4 GiB up and 4 GiB down (under WasmEdge's interpreter
//! too: the bytes are moved by the runtime's socket calls, so it runs at
//! about 500 MB/s here like the others), every byte checked against its
//! position, the runtime's resident memory flat; the same through
//! examples/proxy; and a client that stops reading holds the upstream back,
//! not the heap.

use edgepoll_tests::upstream::{is_pattern, pattern, Behaviour, NativeUpstream};
use edgepoll_tests::{
    connect, on_each_runtime, read_until_closed, resident_kib, start_program, wait_until,
    wait_until_still, Running, Runtime,
};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

const SIZE: u64 = 4096 * MIB;

/// The resident memory of a running process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    resident_kib(pid).expect("the process's VmRSS")
}

fn start_streaming(runtime: &Runtime, sink: &NativeUpstream, source: &NativeUpstream) -> Running {
    let routes = [
        format!("/up={}", sink.url()),
        format!("/down={}", source.url()),
    ];
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    start_program(runtime, "forward_guest", &["--stream"], &routes)
}

/// Reads a response head; returns it and the body bytes read past it.
fn read_head(stream: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return (head, buf[end + 4..].to_vec());
        }
        let n = stream.read(&mut chunk).expect("response head");
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the test pattern from position `got` until `until`, every byte
/// checked; returns the position reached (`until`, or past it when the last
/// read held more). `what` names the case in a failure.
fn read_pattern(stream: &mut std::net::TcpStream, mut got: u64, until: u64, what: &str) -> u64 {
    let mut chunk = vec![0u8; 64 * 1024];
    while got < until {
        let n = stream.read(&mut chunk).expect("body");
        assert!(n > 0, "{what}: closed after {got} bytes");
        assert!(is_pattern(got, &chunk[..n]), "{what}: bytes {got}.. differ");
        got += n as u64;
    }
    got
}

/// Memory after a sixteenth of the transfer, and at its end.
struct Memory {
    pid: u32,
    warm: Option<u64>,
}

impl Memory {
    fn sample(&mut self, moved: u64, size: u64) {
        if self.warm.is_none() && moved >= size / 16 {
            self.warm = Some(rss_kib(self.pid));
        }
    }

    fn check(&self, what: &str, runtime: &Runtime, size: u64, took: Duration) {
        let warm = self.warm.expect("sampled");
        let end = rss_kib(self.pid);
        println!(
            "{}: {what} {} MiB in {:.1} s ({:.0} MB/s); resident {} MiB after a sixteenth, {} MiB at the end",
            runtime.name(),
            size / MIB,
            took.as_secs_f64(),
            size as f64 / took.as_secs_f64() / 1e6,
            warm / 1024,
            end / 1024
        );
        assert!(
            end <= warm + 16 * 1024,
            "{what}: resident memory grew from {warm} KiB to {end} KiB"
        );
    }
}

/// `size` bytes up to `up` (answered by a [`Behaviour::Sink`]) and down from
/// `down` (a [`Behaviour::Source`]) through `server`, every byte checked
/// and its resident memory flat.
fn each_way(runtime: &Runtime, server: &Running, up: &str, down: &str, size: u64) {
    // Up: the client sends, the upstream checks every byte.
    let mut memory = Memory {
        pid: server.pid(),
        warm: None,
    };
    let started = Instant::now();
    let mut stream = connect(server.addr);
    let head = format!("POST {up} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    let mut chunk = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < size {
        let n = ((size - sent) as usize).min(chunk.len());
        pattern(sent, &mut chunk[..n]);
        stream.write_all(&chunk[..n]).expect("send body");
        sent += n as u64;
        memory.sample(sent, size);
    }
    let (head, mut body) = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    while !body.ends_with(b"\n") {
        let n = stream.read(&mut chunk).expect("answer");
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("bytes={size} intact=true\n")
    );
    memory.check("uploaded", runtime, size, started.elapsed());

    // Down: the upstream sends, the client checks every byte.
    let mut memory = Memory {
        pid: server.pid(),
        warm: None,
    };
    let started = Instant::now();
    let request = format!("GET {down}/bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let (head, first) = read_head(&mut stream);
    assert!(head.contains(&format!("Content-Length: {size}")), "{head}");
    assert!(is_pattern(0, &first));
    let mut got = first.len() as u64;
    while got < size {
        let n = stream.read(&mut chunk).expect("body");
        assert!(n > 0, "closed after {got} of {size} bytes");
        assert!(is_pattern(got, &chunk[..n]), "bytes {got}.. differ");
        got += n as u64;
        memory.sample(got, size);
    }
    assert_eq!(got, size);
    memory.check("downloaded", runtime, size, started.elapsed());
}

#[test]
fn four_gib_each_way_through_a_streaming_service_at_flat_memory() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);
        each_way(runtime, &forward, "/up", "/down", SIZE);
    });
}

/// The same through examples/proxy: a body of any size passes at flat
/// memory (issue "reverse proxy", item 6).
#[test]
fn four_gib_each_way_through_the_proxy_at_flat_memory() {
    on_each_runtime(|runtime| {
        let bulk = NativeUpstream::start(Behaviour::Bulk);
        let upstream = bulk.addr.to_string();
        let proxy = start_program(runtime, "proxy", &["--listen"], &["--upstream", &upstream]);
        each_way(runtime, &proxy, "/up", "", SIZE);
    });
}

/// A client that stops reading holds the upstream back, not the heap: for
/// a body the loop pipes, and for one the service passes on itself a piece
/// at a time (`X-Relay`), pausing the exchange
/// (`Context::pause_response_body`) until the client's response has taken
/// each piece. (Such a body had no backpressure: the service could not
/// stop the exchange, and the whole body went to the heap.)
#[test]
fn a_slow_reader_holds_the_upstream_back_not_the_heap() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);
        let size = 512 * MIB;
        for (how, field) in [("piped", ""), ("relayed", "X-Relay: 1\r\n")] {
            let before = source.seen.written.load(Ordering::SeqCst);
            let mut stream = connect(forward.addr);
            let request = format!("GET /down/bytes/{size} HTTP/1.1\r\nHost: x\r\n{field}\r\n");
            stream.write_all(request.as_bytes()).expect("send");
            let (head, first) = read_head(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200"), "{how}: {head}");
            assert!(is_pattern(0, &first));
            let got = read_pattern(&mut stream, first.len() as u64, MIB, how);
            // The client stops reading: socket buffers fill, then the
            // upstream is no longer read, and its writes stop.
            std::thread::sleep(Duration::from_secs(2));
            let written = || source.seen.written.load(Ordering::SeqCst);
            assert!(
                wait_until_still(Duration::from_secs(30), written),
                "{how}: never held"
            );
            let (written, rss) = (
                source.seen.written.load(Ordering::SeqCst) - before,
                rss_kib(forward.pid()),
            );
            std::thread::sleep(Duration::from_secs(2));
            let (written_later, rss_later) = (
                source.seen.written.load(Ordering::SeqCst) - before,
                rss_kib(forward.pid()),
            );
            println!(
                "{} ({how}): reader paused after {} MiB: upstream wrote {} MiB, then {} MiB more; resident {} -> {} MiB",
                runtime.name(),
                got / MIB,
                written / MIB,
                (written_later - written) / MIB,
                rss / 1024,
                rss_later / 1024
            );
            assert!(
                written < 64 * MIB,
                "{how}: the upstream wrote {written} bytes to a reader that stopped"
            );
            assert!(
                written_later - written < MIB,
                "{how}: the upstream kept being read"
            );
            assert!(
                rss_later <= rss + 4 * 1024,
                "{how}: memory grew while the reader waited"
            );
            // Reading again, the rest arrives intact.
            assert_eq!(read_pattern(&mut stream, got, size, how), size);
        }
    });
}

/// A chunked body the service passes on itself (`X-Relay`) that breaks off
/// upstream reaches the client cut, without its last chunk, and the
/// connection closes: the service ends it with `Context::abort_body`.
/// (Ended with `end_body`, the only way before, the part looked whole.)
#[test]
fn a_relayed_chunked_body_that_breaks_off_reaches_the_client_cut() {
    on_each_runtime(|runtime| {
        let dying = NativeUpstream::start(Behaviour::DiesMidBody);
        let routes = [format!("/down={}", dying.url())];
        let forward = start_program(runtime, "forward_guest", &["--stream"], &[&routes[0]]);
        let mut stream = connect(forward.addr);
        stream
            .write_all(b"GET /down/chunked HTTP/1.1\r\nHost: x\r\nX-Relay: 1\r\n\r\n")
            .expect("send");
        let got = read_until_closed(&mut stream);
        let text = String::from_utf8_lossy(&got);
        let lower = text.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200"), "{text}");
        assert!(lower.contains("transfer-encoding: chunked"), "{text}");
        assert!(
            text.contains(&"x".repeat(1000)),
            "the part sent is passed on: {text}"
        );
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a cut body must not look complete: {text}"
        );
    });
}

/// A request body the service sends back itself (`/_relay_echo`), pausing
/// it (`Context::pause_request_body`) until its response has taken each
/// piece: a client that uploads without reading is held back at its
/// socket, not in the heap, and reading, gets its body back intact.
#[test]
fn an_upload_the_service_passes_on_itself_waits_for_its_reader() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);
        let size = 512 * MIB;
        let mut stream = connect(forward.addr);
        let sent = Arc::new(AtomicU64::new(0));
        let writer = std::thread::spawn({
            let mut stream = stream.try_clone().expect("a second handle");
            let sent = sent.clone();
            move || {
                let head = format!(
                    "POST /_relay_echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
                );
                stream.write_all(head.as_bytes())?;
                let mut chunk = vec![0u8; 64 * 1024];
                let mut at = 0;
                while at < size {
                    let n = chunk.len().min((size - at) as usize);
                    pattern(at, &mut chunk[..n]);
                    stream.write_all(&chunk[..n])?;
                    at += n as u64;
                    sent.store(at, Ordering::SeqCst);
                }
                Ok::<(), std::io::Error>(())
            }
        });
        // Nothing is read: the echo fills the socket buffers, then the
        // upload is no longer read, and its writes stop.
        std::thread::sleep(Duration::from_secs(2));
        let taken = || sent.load(Ordering::SeqCst);
        assert!(
            wait_until_still(Duration::from_secs(30), taken),
            "never held"
        );
        let (early, rss) = (sent.load(Ordering::SeqCst), rss_kib(forward.pid()));
        std::thread::sleep(Duration::from_secs(2));
        let (later, rss_later) = (sent.load(Ordering::SeqCst), rss_kib(forward.pid()));
        println!(
            "{}: reader waiting: the client sent {} MiB, then {} MiB more; resident {} -> {} MiB",
            runtime.name(),
            early / MIB,
            (later - early) / MIB,
            rss / 1024,
            rss_later / 1024
        );
        assert!(early < 64 * MIB, "{early} bytes taken with no reader");
        assert!(later - early < MIB, "the upload kept being read");
        assert!(
            rss_later <= rss + 4 * 1024,
            "memory grew while the reader waited"
        );
        let (head, first) = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(is_pattern(0, &first));
        let got = read_pattern(&mut stream, first.len() as u64, size, "echo");
        assert_eq!(got, size);
        writer
            .join()
            .expect("writer")
            .expect("the upload went whole");
    });
}

/// A HEAD that the service answers with a GET's response, piped (as a
/// naive service may fetch GET for HEAD): the head is all the client gets,
/// the connection serves on, and the upstream's body is not read on for
/// nothing (it was read as fast as it came, with no backlog ever to hold it
/// back, for as long as it lasted).
#[test]
fn a_get_piped_to_a_head_is_not_read_on() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let mut forward = start_streaming(runtime, &sink, &source);
        let mut stream = connect(forward.addr);
        let request = format!(
            "HEAD /down/bytes/{SIZE} HTTP/1.1\r\nHost: x\r\nX-Upstream-Method: GET\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        let (head, rest) = read_head(&mut stream);
        let name = runtime.name();
        assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {SIZE}")),
            "{name}: {head}"
        );
        assert!(rest.is_empty(), "{name}: a body after the HEAD's head");
        std::thread::sleep(Duration::from_secs(2));
        let written = source.seen.written.load(Ordering::SeqCst);
        assert!(
            written < 64 * MIB,
            "{name}: the upstream wrote {written} bytes for a HEAD"
        );
        // The connection serves on.
        stream
            .write_all(b"GET /down/bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let (head, mut body) = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
        while body.len() < 3 {
            let mut chunk = [0u8; 16];
            let n = stream.read(&mut chunk).expect("body");
            assert!(n > 0, "{name}: closed mid-body");
            body.extend_from_slice(&chunk[..n]);
        }
        assert!(is_pattern(0, &body), "{name}: {body:?}");
        // The HEAD's response ended whole for the service, not abandoned
        // (its client is still there).
        let ended = forward.stderr_to_end(Duration::from_secs(10));
        assert!(
            !ended.iter().any(|l| l.contains("a response ended")),
            "{name}: {ended:?}"
        );
    });
}

/// A service that pipes a response and then, by mistake, sends a piece
/// and an end of its own: they are dropped, and the client gets the piped
/// body whole and unmixed, on a connection that serves on. (They went into
/// the body: "MIXED" first, and the body ended short.)
#[test]
fn a_services_own_pieces_for_a_piped_response_are_dropped() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);
        let mut stream = connect(forward.addr);
        let name = runtime.name();
        let size = 300_000;
        for request in [
            format!("GET /down/bytes/{size} HTTP/1.1\r\nHost: x\r\nX-Piece-Into-Pipe: 1\r\n\r\n"),
            "GET /down/bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        ] {
            stream.write_all(request.as_bytes()).expect("send");
            let (head, mut body) = read_head(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
            let want = match request.contains("Pipe") {
                true => size,
                false => 3,
            };
            let mut chunk = vec![0u8; 65536];
            while body.len() < want {
                let n = stream.read(&mut chunk).expect("body");
                assert!(n > 0, "{name}: closed after {} bytes", body.len());
                body.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(body.len(), want, "{name}");
            assert!(is_pattern(0, &body), "{name}: the body differs");
        }
    });
}

/// `nonblock_http_client -o FILE` writes a 1 GiB body into a preopened
/// directory as it arrives: the file is the pattern byte for byte, and the
/// client's resident memory stays where it was once the transfer was under way.
#[test]
fn the_client_writes_a_large_body_to_a_file_as_it_arrives() {
    on_each_runtime(|runtime| {
        let source = NativeUpstream::start(Behaviour::Source);
        let size = 1024 * MIB;
        // Both removed if the test fails too: the client killed, its 1 GiB
        // gone with the directory.
        let dir = edgepoll_tests::TempPath(edgepoll_tests::unique_temp_path("download"));
        std::fs::create_dir_all(&dir.0).expect("temp dir");
        let file = dir.0.join("body.bin");
        let _ = std::fs::remove_file(&file);
        let preopen = format!("{}:{}", dir.0.display(), dir.0.display());
        let url = format!("{}/bytes/{size}", source.url());
        // Built and compiled (AOT), if need be, before the clock starts:
        // a compile on a busy machine took the download's two minutes.
        let program = edgepoll_tests::wasm("nonblock_http_client");
        let mut command = runtime.command_with(&program, &["--dir", &preopen]);
        command
            .args(["--timeout", "120", "-o", &file.display().to_string(), &url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let started = Instant::now();
        let mut child = edgepoll_tests::KilledOnDrop::new(command.spawn().expect("client starts"));
        let (mut warm, mut peak) = (None, 0u64);
        while child.try_wait().expect("wait").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "download hung"
            );
            // Written to FILE.part, renamed once whole.
            let done = std::fs::metadata(file.with_extension("bin.part"))
                .map(|m| m.len())
                .unwrap_or(0);
            // The client may exit between try_wait and this read.
            if let Some(rss) = resident_kib(child.id()) {
                if done >= size / 16 {
                    warm.get_or_insert(rss);
                    peak = peak.max(rss);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = edgepoll_tests::wait_bounded(child.into_child(), Duration::from_secs(10));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("-> 200 OK ({size} bytes written to")),
            "{stdout}"
        );
        let mut written = std::fs::File::open(&file).expect("the file");
        let mut chunk = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            let n = written.read(&mut chunk).expect("read back");
            if n == 0 {
                break;
            }
            assert!(
                is_pattern(at, &chunk[..n]),
                "bytes {at}.. of the file differ"
            );
            at += n as u64;
        }
        assert_eq!(at, size);
        println!(
            "{}: 1024 MiB to a file in {:.1} s; client resident {:?} MiB once under way, at most {} MiB",
            runtime.name(),
            started.elapsed().as_secs_f64(),
            warm.map(|w| w / 1024),
            peak / 1024
        );
        let warm = warm.expect("memory sampled while the body arrived");
        assert!(
            peak <= warm + 16 * 1024,
            "the client's memory grew from {warm} to {peak} KiB"
        );
    });
}

/// A service that cancels an exchange whose response it piped to the
/// client (on a timeout of its own, say) cuts that response short: the
/// client sees its connection end, not a wait for bytes that never come
/// (the response stayed open until the client gave up).
#[test]
fn a_piped_response_whose_exchange_is_cancelled_is_cut_short() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let server = start_streaming(runtime, &sink, &source);
        let mut stream = connect(server.addr);
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a read timeout");
        let size = 1u64 << 30;
        let request =
            format!("GET /down/bytes/{size} HTTP/1.1\r\nHost: x\r\nX-Cancel-After-Head: 1\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let (head, first) = read_head(&mut stream);
        assert!(head.contains(&format!("Content-Length: {size}")), "{head}");
        let mut got = first.len() as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        let ended = loop {
            match stream.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert!(
            ended.is_ok(),
            "{}: still open after {got} bytes: {ended:?}",
            runtime.name()
        );
        assert!(got < size, "{}: the whole body came", runtime.name());
    });
}

/// An upload the application sends on while it answers its client at
/// once (`fetch_stream` with `body_from`, then `respond`): when the client
/// leaves mid-body, the application hears that exchange end
/// (`ClientError::Abandoned`), and the upstream connection closes. (It was
/// cancelled unseen: the application, its client answered, waited for an
/// end that never came.)
#[test]
fn an_upload_sent_on_whose_client_leaves_is_reported_abandoned() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let server = start_streaming(runtime, &sink, &source);
        let ends = || {
            let mut stats = connect(server.addr);
            stats
                .write_all(b"GET /_stats HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            let (_, body) = edgepoll_tests::read_response(&mut stats);
            String::from_utf8_lossy(&body).into_owned()
        };
        let open = || sink.seen.open.load(Ordering::SeqCst);
        // Left with a FIN (the body breaks off in a read), then with a
        // reset (the connection is closed at once).
        for (n, resets) in [(1, false), (2, true)] {
            let mut stream = connect(server.addr);
            stream
                .write_all(
                    b"POST /_send_and_answer HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
                )
                .expect("send");
            let (head, _) = edgepoll_tests::read_response(&mut stream);
            assert!(head.starts_with("HTTP/1.1 202 "), "{name}: {head}");
            stream.write_all(&[b'x'; 64 * 1024]).expect("send");
            assert!(
                wait_until(Duration::from_secs(30), || open() == 1),
                "{name}: the upload reached no upstream"
            );
            match resets {
                true => edgepoll_tests::reset(stream),
                false => drop(stream),
            }
            let told = format!("sent:abandoned:{n}");
            assert!(
                wait_until(Duration::from_secs(30), || ends().contains(&told)),
                "{name}: reset {resets}: {}",
                ends()
            );
            assert!(
                wait_until(Duration::from_secs(30), || open() == 0),
                "{name}: reset {resets}: the upstream connection stayed open"
            );
        }
    });
}

/// Answers an application cannot give (a response piped from a body that
/// has begun to come to the application, a request body echoed or sent on
/// once it has ended) are refused, and the client is told at once: a 500
/// (or the error the application passes on), not a response that waits
/// for a body that cannot come. Other requests go on being served.
#[test]
fn answers_whose_body_cannot_come_are_refused_not_left_waiting() {
    on_each_runtime(|runtime| {
        let name = runtime.name();
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let server = start_streaming(runtime, &sink, &source);
        let ask = |request: &str| {
            let mut stream = connect(server.addr);
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("a read timeout");
            stream.write_all(request.as_bytes()).expect("send");
            edgepoll_tests::read_response(&mut stream)
        };
        // (request, status, what its body says)
        let refused = [
            (
                "GET /down/bytes/1048576 HTTP/1.1\r\nHost: x\r\nX-Pipe-Late: 1\r\n\r\n",
                "500",
                "cannot give it",
            ),
            (
                "POST /_echo_after_end HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                "500",
                "cannot come",
            ),
            (
                "POST /_pipe_after_end HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                "400",
                "has begun to go elsewhere",
            ),
            // Sent on with a request that streams no body: it would go
            // with `Content-Length: 0`, its pieces nowhere.
            (
                "POST /up/ HTTP/1.1\r\nHost: x\r\nX-Unstreamed: 1\r\nContent-Length: 5\r\n\r\nhello",
                "400",
                "streams no body",
            ),
        ];
        for (request, status, says) in refused {
            let (head, body) = ask(request);
            let body = String::from_utf8_lossy(&body);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} ")),
                "{name}: {head}"
            );
            assert!(body.contains(says), "{name}: {body}");
        }

        // And what can be given still is, a body that came whole included.
        let (head, body) = ask("GET /down/bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
        assert!(
            body.len() == 1000 && is_pattern(0, &body),
            "{name}: the body differs"
        );
        let (head, _) = ask("POST /up/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 "), "{name}: {head}");
    });
}
