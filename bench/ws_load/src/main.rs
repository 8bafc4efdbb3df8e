//! WebSocket fan-out load for `make bench`, against any server speaking
//! ws_chat's protocol (`/ws?name=NAME`; every text message is broadcast to
//! everyone as "NAME: text").
//!
//! `ws_load ADDR CLIENTS SECONDS [--size BYTES] [--window N]` connects CLIENTS
//! clients, then client c0 sends numbered messages of BYTES bytes, keeping at
//! most N of them not yet received by every client. Each client checks that
//! it gets every message once and in order. After a one-second warm-up it
//! counts deliveries (one message arriving at one client) for SECONDS, then
//! lets the last messages arrive and prints
//! `fanout {"clients": .., "seconds": .., "delivered": .., "per_second": ..}`.
//! A lost, repeated or reordered message, or a stall of 10 s, exits 1.
//!
//! `ws_load ADDR CLIENTS --hold` connects CLIENTS clients, waits until all
//! notices have arrived, prints `ready CLIENTS` and holds them idle until its
//! standard input closes.

use edgepoll::ws::frame::write_masked_frame;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

const STALL: Duration = Duration::from_secs(10);

struct Client {
    stream: TcpStream,
    input: Vec<u8>,
    /// The last message number received from c0 (0: none yet).
    last_seq: u64,
}

/// One server frame: (opcode, payload range), or None if incomplete.
fn next_frame(buf: &[u8]) -> Option<(u8, std::ops::Range<usize>)> {
    let [first, second, ..] = *buf else {
        return None;
    };
    let (len, head) = match second & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (buf.len() >= head + len).then_some((first & 0x0f, head..head + len))
}

/// A masked client text frame.
fn text_frame(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, 0x81, [0x5a, 0x13, 0xc7, 0x2e], text);
    out
}

fn fail(message: String) -> ! {
    eprintln!("ws_load: {message}");
    std::process::exit(1);
}

/// Connects and upgrades one client (blocking), then hands it to `poll`.
fn connect(addr: &str, i: usize, poll: &Poll) -> Client {
    let mut stream = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| fail(format!("connection {i} failed: {e}")));
    let request = format!(
        "GET /ws?name=c{i} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let _ = stream.set_read_timeout(Some(STALL));
    if let Err(e) = stream.write_all(request.as_bytes()) {
        fail(format!("handshake {i}: {e}"));
    }
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = input.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => fail(format!("handshake {i}: no answer")),
            Ok(n) => input.extend_from_slice(&buf[..n]),
        }
    };
    if !input.starts_with(b"HTTP/1.1 101") {
        fail(format!(
            "handshake {i}: {}",
            String::from_utf8_lossy(&input[..head_end])
        ));
    }
    input.drain(..head_end);
    let _ = stream.set_nonblocking(true);
    let _ = stream.set_nodelay(true);
    let mut stream = TcpStream::from_std(stream);
    poll.registry()
        .register(&mut stream, Token(i), Interest::READABLE)
        .unwrap_or_else(|e| fail(format!("register {i}: {e}")));
    Client {
        stream,
        input,
        last_seq: 0,
    }
}

/// Counts of the messages of c0 so far.
#[derive(Default)]
struct Tally {
    /// Receptions per message number, for those not yet everywhere.
    pending: std::collections::BTreeMap<u64, usize>,
    /// Messages received by every client.
    complete: u64,
    /// Receptions of any message.
    delivered: u64,
}

/// Reads what client `i` has and tallies c0's messages in it.
fn drain(i: usize, client: &mut Client, clients: usize, tally: &mut Tally) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match client.stream.read(&mut buf) {
            Ok(0) => fail(format!("client c{i} was disconnected")),
            Ok(n) => client.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => fail(format!("client c{i}: {e}")),
        }
    }
    let mut start = 0;
    while let Some((opcode, payload)) = next_frame(&client.input[start..]) {
        let text = &client.input[start + payload.start..start + payload.end];
        if opcode == 0x8 {
            fail(format!("client c{i} got a close frame {text:?}"));
        }
        if let Some(rest) = text.strip_prefix(b"c0: m") {
            let seq: u64 = std::str::from_utf8(&rest[..rest.len().min(10)])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| fail(format!("client c{i}: bad message {text:?}")));
            if seq != client.last_seq + 1 {
                fail(format!(
                    "client c{i} got message {seq} after {}",
                    client.last_seq
                ));
            }
            client.last_seq = seq;
            tally.delivered += 1;
            let count = tally.pending.entry(seq).or_insert(0);
            *count += 1;
            if *count == clients {
                tally.pending.remove(&seq);
                tally.complete += 1;
            }
        }
        start += payload.end;
    }
    client.input.drain(..start);
}

fn usage() -> ! {
    fail("usage: ws_load ADDR CLIENTS (SECONDS [--size BYTES] [--window N] | --hold)".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().cloned().unwrap_or_else(|| usage());
    let clients: usize = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| usage());
    let hold = args.get(2).map(String::as_str) == Some("--hold");
    let seconds: f64 = if hold {
        0.0
    } else {
        args.get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args.get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            })
            .unwrap_or(default)
    };
    let size = option("--size", 64).clamp(16, 65535);
    let window = option("--window", 32).max(1) as u64;

    let mut poll = Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}")));
    let mut events = Events::with_capacity(1024);
    let mut tally = Tally::default();
    let mut all = Vec::with_capacity(clients);
    for i in 0..clients {
        all.push(connect(&addr, i, &poll));
        // Read the join notices as they come, so no queue builds up.
        if i % 64 == 63 {
            for (j, client) in all.iter_mut().enumerate() {
                drain(j, client, clients, &mut tally);
            }
        }
    }
    // Message 0's arrival everywhere means every notice before it arrived.
    let mut sent = 0u64;
    let mut out: Vec<u8> = Vec::new();
    let send = |sent: &mut u64, out: &mut Vec<u8>| {
        *sent += 1;
        let mut text = format!("m{:010} ", *sent).into_bytes();
        text.resize(size - 4, b'x');
        out.extend_from_slice(&text_frame(&text));
    };
    send(&mut sent, &mut out);
    let started = Instant::now();
    // The deliveries counted when the warm-up ended.
    let mut window_start: Option<(Instant, u64)> = None;
    // And when sending stopped.
    let mut window_end: Option<(Instant, u64)> = None;
    let mut last_progress = (Instant::now(), 0u64);
    let warm_up = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(seconds);
    loop {
        let now = Instant::now();
        let measuring = !hold && now < started + warm_up + measure;
        if tally.complete >= 1 && window_start.is_none() && now >= started + warm_up {
            window_start = Some((now, tally.delivered));
        }
        if !measuring && window_end.is_none() {
            window_end = Some((now, tally.delivered));
        }
        if hold && tally.complete == 1 {
            break;
        }
        if !measuring && tally.complete == sent {
            break;
        }
        while measuring && sent - tally.complete < window {
            send(&mut sent, &mut out);
        }
        if !out.is_empty() {
            match all[0].stream.write(&out) {
                Ok(n) => drop(out.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => fail(format!("sender: {e}")),
            }
        }
        if tally.delivered != last_progress.1 {
            last_progress = (now, tally.delivered);
        } else if now - last_progress.0 > STALL {
            fail(format!(
                "stalled: {} of {sent} messages reached every client",
                tally.complete
            ));
        }
        let timeout = if out.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(1)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            fail(format!("poll: {e}"));
        }
        for event in &events {
            let i = event.token().0;
            drain(i, &mut all[i], clients, &mut tally);
        }
    }
    if hold {
        println!("ready {clients}");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    let (Some((from, before)), Some((to, after))) = (window_start, window_end) else {
        fail("no message arrived in the warm-up".into())
    };
    // The last messages' arrival (checked above) is not counted.
    let elapsed = (to - from).as_secs_f64();
    let delivered = after - before;
    println!(
        "fanout {{\"clients\": {clients}, \"size\": {size}, \"window\": {window}, \"seconds\": {elapsed:.2}, \"messages\": {sent}, \"delivered\": {delivered}, \"per_second\": {:.0}}}",
        delivered as f64 / elapsed
    );
}
