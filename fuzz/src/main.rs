//! A mutation fuzzer for the HTTP state machine, on stable Rust.
//!
//! `cargo fuzz` needs a nightly toolchain, which machines here cannot fetch, so
//! this is a small self-contained fuzzer: it mutates a corpus of requests
//! (byte flips, HTTP-shaped tokens, splices, cuts) and checks, for every input:
//! no panic; the same output whether fed whole, split at a random offset or in
//! random small pieces; output made only of complete responses with a status
//! the server documents. A failing input is written to `fuzz/crashes/` and the
//! run exits 1; add such inputs to the unit tests.
//!
//! `cargo run --release -p edgepoll-fuzz -- [--seconds N] [--seed N]`

use edgepoll::http::{
    ChunkedDecoder, Handler, Limits, Request, Response, ResponseParser, StatusCode,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nWiki\r\n0\r\nT: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\nHost: a\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b" ",
    b"\0",
    b"0\r\n\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Host: h\r\n",
    b"99999999999999999999",
    b"ffffffff",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b";ext=\"v\"",
    b"-1",
    b"\xff\xfe",
];

const STATUSES: &[u16] = &[100, 200, 400, 408, 413, 417, 431, 501, 505];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = *b"\r\n: 0aZ\x00\xff;".get(rng.below(10)).unwrap_or(&b'x');
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let piece = input[start..end].to_vec();
                input.splice(at..at, piece);
            }
            5 => {
                let other = SEEDS[rng.below(SEEDS.len())];
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(at),
        }
    }
    input.truncate(4096);
}

fn limits() -> Limits {
    // Small limits, so mutations reach every limit path.
    Limits {
        max_head_bytes: 256,
        max_headers: 8,
        max_body_bytes: 1024,
        max_chunk_line_bytes: 32,
        max_pending_output_bytes: 512,
        ..Limits::default()
    }
}

fn echo<'a>(request: &Request<'a>) -> Response<'a> {
    // Marks answers to HEAD: they announce a length but carry no body, which a
    // reader of the output alone could not tell.
    let response = Response::new(StatusCode::OK).body(request.body());
    if request.method() == "HEAD" {
        response.header("X-Head", "1")
    } else {
        response
    }
}

/// The length of the first complete response in `bytes`.
fn first_response(bytes: &[u8]) -> Option<(usize, u16)> {
    for head_only in [true, false] {
        for n in 1..=bytes.len() {
            if let Ok(Some(r)) = ResponseParser::new(head_only).feed(&bytes[..n]) {
                if head_only && r.header("x-head").is_none() {
                    break;
                }
                return Some((n, r.status.as_u16()));
            }
        }
    }
    None
}

/// Feeds the pieces, draining output as a socket would; returns all output
/// with interim 100 responses removed.
fn feed(pieces: &[&[u8]]) -> Vec<u8> {
    let now = Instant::now();
    let mut conn = Handler::new(limits(), now);
    let mut service = echo;
    let mut out = Vec::new();
    let mut drain = |conn: &mut Handler, out: &mut Vec<u8>| {
        while conn.wants_write() {
            out.extend_from_slice(conn.pending_output());
            let n = conn.pending_output().len();
            conn.consume_output(n, now);
            conn.process(now, &mut service);
        }
    };
    for piece in pieces {
        conn.receive(piece, now, &mut echo);
        drain(&mut conn, &mut out);
    }
    conn.receive_eof(now, &mut echo);
    drain(&mut conn, &mut out);
    conn.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut conn, &mut out);
    assert!(
        conn.is_finished(),
        "connection not finished after EOF and timeout"
    );
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    while let Some(i) = out.windows(interim.len()).position(|w| w == interim) {
        out.drain(i..i + interim.len());
    }
    out
}

fn check(input: &[u8], rng: &mut Rng) -> Result<(), String> {
    let whole = feed(&[input]);
    let split = rng.below(input.len() + 1);
    let halves = feed(&[&input[..split], &input[split..]]);
    if halves != whole {
        return Err(format!("output differs when split at {split}"));
    }
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(7));
        pieces.push(&rest[..n]);
        rest = &rest[n..];
    }
    if feed(&pieces) != whole {
        return Err("output differs when fed in small pieces".into());
    }
    let mut remaining: &[u8] = &whole;
    while !remaining.is_empty() {
        let (n, status) = first_response(remaining).ok_or_else(|| {
            format!(
                "unparseable output: {:?}",
                String::from_utf8_lossy(remaining)
            )
        })?;
        if !STATUSES.contains(&status) {
            return Err(format!("undocumented status {status}"));
        }
        remaining = &remaining[n..];
    }
    // The decoders on their own: any bytes, no panic.
    let mut buf = input.to_vec();
    let _ = ChunkedDecoder::new(1024, 32, 256).decode_in_place(&mut buf, 0, 0);
    let _ = ResponseParser::new(false).feed(input);
    Ok(())
}

fn main() {
    let mut seconds = 60u64;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut seed = clock.as_nanos() as u64 ^ std::process::id() as u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: edgepoll-fuzz [--seconds N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    println!("fuzzing the HTTP state machine for {seconds} s (seed {seed})");
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..100 {
            let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
            mutate(&mut rng, &mut input);
            let mut check_rng = Rng(rng.next() | 1);
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &mut check_rng)))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                    Err(format!("panic: {}", what.unwrap_or_default()))
                });
            runs += 1;
            if let Err(problem) = outcome {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes");
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("crash-{seed}-{runs}.bin"));
                let _ = std::fs::write(&file, &input);
                println!(
                    "FAILED after {runs} inputs: {problem}\ninput: {:?}\nsaved to {}",
                    String::from_utf8_lossy(&input),
                    file.display()
                );
                std::process::exit(1);
            }
        }
    }
    println!("{runs} inputs, no failure");
}
