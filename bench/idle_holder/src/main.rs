//! Holds N idle keep-alive connections open to a server: each sends one
//! request and reads its response, then all wait. Prints `ready N`, then
//! holds until its standard input closes. For `make bench` only.
//!
//! With `--probe-every MS`, one held connection at a time (round robin)
//! sends a request every MS milliseconds and times its response: how long a
//! quiet connection that becomes active waits while the server is busy with
//! others. On exit it prints `probe {"count": .., "p50_us": .., "p99_us": ..,
//! "max_us": ..}`.
//!
//! Usage: `idle_holder ADDR COUNT [--probe-every MS]`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 4\r\n\r\nidle";

/// Sends one request and reads until its echoed body arrived.
fn exchange(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    stream.write_all(REQUEST)?;
    let mut got = Vec::new();
    while !got.ends_with(b"idle") {
        let n = stream.read(buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let count: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let probe_every = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--probe-every"), Some(ms)) => ms.parse().ok().map(Duration::from_millis),
        _ => None,
    };
    let mut held = Vec::with_capacity(count);
    let mut buf = [0u8; 1024];
    for i in 0..count {
        let connected = TcpStream::connect(&addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            exchange(&mut s, &mut buf)?;
            Ok(s)
        });
        match connected {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("idle_holder: connection {i} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("ready {}", held.len());
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe_every.map(|every| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || probe(held, every, &stop))
    });
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    stop.store(true, Ordering::Relaxed);
    if let Some(prober) = prober {
        match prober.join() {
            Ok(Ok(mut latencies)) => {
                latencies.sort_unstable();
                let at = |q: f64| {
                    latencies
                        .get(
                            ((latencies.len() as f64 * q) as usize)
                                .min(latencies.len().saturating_sub(1)),
                        )
                        .copied()
                        .unwrap_or(0)
                };
                println!(
                    "probe {{\"count\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
                    latencies.len(),
                    at(0.5),
                    at(0.99),
                    latencies.last().copied().unwrap_or(0)
                );
            }
            Ok(Err(e)) => {
                eprintln!("idle_holder: probe failed: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
}

/// Every `every`, the next quiet connection sends a request; returns each
/// response's latency in microseconds.
fn probe(
    mut held: Vec<TcpStream>,
    every: Duration,
    stop: &AtomicBool,
) -> std::io::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut buf = [0u8; 1024];
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) && !held.is_empty() {
        std::thread::sleep(every);
        let start = Instant::now();
        exchange(&mut held[next], &mut buf)?;
        latencies.push(start.elapsed().as_micros() as u64);
        // Far apart in the list: each probed connection has been quiet long.
        next = (next + held.len() / 7 + 1) % held.len();
    }
    Ok(latencies)
}
