//! Sends exactly REQUESTS keep-alive POSTs of BODY bytes, spread over
//! CONNECTIONS connections (one thread each), checks every response echoes
//! its body, and prints one JSON line: requests, errors, duration and
//! latency percentiles. wrk runs for a time; this runs for a count, which is
//! what counting a server's instructions per request needs. For `make bench`.
//!
//! Usage: `loadgen ADDR CONNECTIONS REQUESTS [BODY_BYTES [any]]`; with `any`,
//! a response's body need not echo the request's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(buf[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(conns), Some(total)) = (
        args.first().cloned(),
        args.get(1).and_then(|v| v.parse::<usize>().ok()),
        args.get(2).and_then(|v| v.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: loadgen ADDR CONNECTIONS REQUESTS [BODY_BYTES [any]]");
        std::process::exit(2);
    };
    let body_len: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(128);
    let any_body = args.get(4).is_some_and(|v| v == "any");
    let started = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            let count = total / conns + usize::from(c < total % conns);
            std::thread::spawn(move || {
                let body = vec![b'a' + (c % 26) as u8; body_len];
                let mut request = format!(
                    "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\r\n"
                )
                .into_bytes();
                request.extend_from_slice(&body);
                let mut latencies = Vec::with_capacity(count);
                let mut errors = 0usize;
                let mut buf = Vec::new();
                let mut stream = TcpStream::connect(&addr).ok();
                for _ in 0..count {
                    let Some(s) = stream.as_mut() else {
                        errors += 1;
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    let at = Instant::now();
                    match s.write_all(&request).and_then(|_| response(s, &mut buf)) {
                        Ok(got) if any_body || got == body => latencies.push(at.elapsed()),
                        _ => {
                            errors += 1;
                            stream = TcpStream::connect(&addr).ok();
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().unwrap_or_default();
        latencies.extend(l);
        errors += e;
    }
    let duration = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "RESULT {{\"requests\": {}, \"errors\": {errors}, \"duration_us\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
        latencies.len(),
        duration.as_micros(),
        pct(0.50),
        pct(0.99),
        latencies.last().map_or(0, |d| d.as_micros())
    );
}
