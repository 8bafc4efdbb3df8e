//! `tls_client handshakes N PORT CA` : N requests to https://localhost:PORT/fixed,
//! one after another, each on a new connection (`Connection: close`), with
//! the client's session cache as edgepoll's (rustls' default: resumption).
//! `tls_client download PORT PATH OUT CA`: one GET, the body written to the
//! file OUT as it arrives (what `nonblock_http_client -o OUT` does).
//! Prints `seconds=S bytes=B`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args.split_first().expect("usage: tls_client handshakes|download ...");
    let ca = std::fs::read(rest.last().expect("CA file")).expect("read the CA file");
    let config = edgepoll::tls::client_config(Some(&ca)).expect("TLS configuration");
    let started = Instant::now();
    let bytes = match mode.as_str() {
        "handshakes" => {
            let n: usize = rest[0].parse().expect("N");
            let port: u16 = rest[1].parse().expect("PORT");
            (0..n).map(|_| get(&config, port, "/fixed", None)).sum()
        }
        "download" => {
            let port: u16 = rest[0].parse().expect("PORT");
            let mut out = std::fs::File::create(&rest[2]).expect("create OUT");
            get(&config, port, &rest[1], Some(&mut out))
        }
        _ => panic!("unknown mode {mode}"),
    };
    println!("seconds={} bytes={bytes}", started.elapsed().as_secs_f64());
}

/// One GET on a new connection; returns the response's length. What came is
/// written to `out`, head and all (the head is a few hundred bytes of 64 MiB).
/// Fails unless the answer is a 200 that came whole (its `Content-Length`),
/// within 60 s of silence at most.
fn get(config: &Arc<rustls::ClientConfig>, port: u16, path: &str, mut out: Option<&mut std::fs::File>) -> usize {
    let name = "localhost".try_into().expect("name");
    let mut conn = rustls::ClientConnection::new(config.clone(), name).expect("connection");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let limit = std::time::Duration::from_secs(60);
    let mut socket = TcpStream::connect_timeout(&addr, limit).expect("connect");
    socket.set_read_timeout(Some(limit)).expect("a read timeout");
    socket.set_write_timeout(Some(limit)).expect("a write timeout");
    let mut tls = rustls::Stream::new(&mut conn, &mut socket);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).expect("send");
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    let mut head = Vec::new();
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(out) = out.as_mut() {
                    out.write_all(&buf[..n]).expect("write OUT");
                }
                if head.len() < 4096 {
                    head.extend_from_slice(&buf[..n.min(4096)]);
                }
                total += n
            }
            // nginx closes without close_notify after Connection: close.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 200 "), "not a 200: {:?}", text.lines().next());
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    let length: usize = text[..end]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(total, end + length, "the body came short");
    total
}
