//! Bodies of any size through a streaming service (`forward_guest --stream`)
//! on every runtime: 4 GiB up and 4 GiB down (under WasmEdge's interpreter
//! too: the bytes are moved by the runtime's socket calls, so it runs at
//! about 500 MB/s here like the others), every byte checked against its
//! position, the runtime's resident memory flat; and a client that stops
//! reading holds the upstream back, not the heap.

use edgepoll_tests::upstream::{is_pattern, pattern, Behaviour, NativeUpstream};
use edgepoll_tests::{connect, on_each_runtime, start_program, Running, Runtime};
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

const SIZE: u64 = 4096 * MIB;

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
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

#[test]
fn four_gib_each_way_through_a_streaming_service_at_flat_memory() {
    on_each_runtime(|runtime| {
        let size = SIZE;
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);

        // Up: the client sends, the upstream checks every byte.
        let mut memory = Memory {
            pid: forward.pid(),
            warm: None,
        };
        let started = Instant::now();
        let mut stream = connect(forward.addr);
        let head = format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
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
            pid: forward.pid(),
            warm: None,
        };
        let started = Instant::now();
        let request = format!("GET /down/bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n");
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
    });
}

#[test]
fn a_slow_reader_holds_the_upstream_back_not_the_heap() {
    on_each_runtime(|runtime| {
        let sink = NativeUpstream::start(Behaviour::Sink);
        let source = NativeUpstream::start(Behaviour::Source);
        let forward = start_streaming(runtime, &sink, &source);
        let size = 512 * MIB;
        let mut stream = connect(forward.addr);
        let request = format!("GET /down/bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let (_, first) = read_head(&mut stream);
        let mut got = first.len() as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while got < MIB {
            let n = stream.read(&mut chunk).expect("body");
            assert!(is_pattern(got, &chunk[..n]));
            got += n as u64;
        }
        // The client stops reading: socket buffers fill, then the upstream
        // is no longer read, and its writes stop.
        std::thread::sleep(Duration::from_secs(2));
        let (written, rss) = (
            source.seen.written.load(Ordering::SeqCst),
            rss_kib(forward.pid()),
        );
        std::thread::sleep(Duration::from_secs(2));
        let (written_later, rss_later) = (
            source.seen.written.load(Ordering::SeqCst),
            rss_kib(forward.pid()),
        );
        println!(
            "{}: reader paused after {} MiB: upstream wrote {} MiB, then {} MiB more; resident {} -> {} MiB",
            runtime.name(),
            got / MIB,
            written / MIB,
            (written_later - written) / MIB,
            rss / 1024,
            rss_later / 1024
        );
        assert!(
            written < 64 * MIB,
            "the upstream wrote {written} bytes to a reader that stopped"
        );
        assert!(
            written_later - written < MIB,
            "the upstream kept being read"
        );
        assert!(
            rss_later <= rss + 4 * 1024,
            "memory grew while the reader waited"
        );
        // Reading again, the rest arrives intact.
        while got < size {
            let n = stream.read(&mut chunk).expect("body");
            assert!(n > 0, "closed after {got} bytes");
            assert!(is_pattern(got, &chunk[..n]), "bytes {got}.. differ");
            got += n as u64;
        }
        assert_eq!(got, size);
    });
}
