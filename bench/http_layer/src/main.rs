//! The HTTP work of a request without the sockets: `http_layer edgepoll N`
//! feeds N copies of the benchmark's request (loadgen's: 128-byte POST with
//! Content-Type) to one keep-alive `Handler` answering with the echo
//! example's service; `http_layer minimal N` does what the minimal server
//! does with each (httparse, Content-Length, fixed response);
//! `http_layer fixed N` gives the minimal server's job to the `Handler`
//! (`fixed_server`'s service: the same fixed response, byte for byte), so
//! that the two are compared on the same work. Run under
//! `wasmedge`, it measures the interpreter's cost of the HTTP layer alone:
//! no poll, no syscalls, no second process competing for the CPU. Prints the
//! bytes answered. For `make bench` only.

use edgepoll::http::{Handler, Limits, Service};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

const BODY_BYTES: usize = 128;

fn request() -> Vec<u8> {
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + BODY_BYTES, b'x');
    request
}

/// Bytes of response for `n` requests through edgepoll's `Handler`.
fn edgepoll(n: u64, request: &[u8], mut service: impl Service) -> usize {
    let now = Instant::now();
    let mut conn = Handler::new(Limits::default(), now);
    let mut answered = 0;
    for _ in 0..n {
        conn.receive(black_box(request), now, &mut service);
        let sent = conn.pending_output().len();
        answered += sent;
        conn.consume_output(sent, now);
    }
    answered
}

/// Bytes of response for `n` requests handled as the minimal server does.
fn minimal(n: u64, request: &[u8]) -> usize {
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut answered = 0;
    for _ in 0..n {
        input.extend_from_slice(black_box(request));
        while let Some(Ok(len)) = minimal_server::complete(&input) {
            input.drain(..len);
            output.extend_from_slice(minimal_server::RESPONSE);
        }
        answered += output.len();
        output.clear();
    }
    answered
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.get(1).and_then(|n| n.parse::<u64>().ok());
    let answered = match (args.first().map(String::as_str), n) {
        (Some("edgepoll"), Some(n)) => edgepoll(n, &request(), poll_http_server::echo),
        (Some("fixed"), Some(n)) if fixed_server::answers_as_minimal_server(&request()) => {
            edgepoll(n, &request(), fixed_server::fixed)
        }
        (Some("fixed"), Some(_)) => {
            eprintln!("http_layer: the fixed service no longer answers as the minimal server does");
            return ExitCode::FAILURE;
        }
        (Some("minimal"), Some(n)) => minimal(n, &request()),
        _ => {
            eprintln!("usage: http_layer edgepoll|fixed|minimal REQUESTS");
            return ExitCode::from(2);
        }
    };
    println!("{answered}");
    ExitCode::SUCCESS
}
