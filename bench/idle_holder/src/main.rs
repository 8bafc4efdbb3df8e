//! Holds N idle keep-alive connections open to a server: each sends one
//! request and reads its response, then all wait. Prints `ready N`, then
//! holds until its standard input closes. For `make bench` only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1234".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let mut held = Vec::with_capacity(count);
    let request = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 4\r\n\r\nidle";
    let mut buf = [0u8; 1024];
    for i in 0..count {
        let connected = TcpStream::connect(&addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(request)?;
            let mut got = Vec::new();
            while !got.ends_with(b"idle") {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got.extend_from_slice(&buf[..n]);
            }
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
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}
