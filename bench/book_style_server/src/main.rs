//! The WasmEdge book's `poll_http_server` behaviour, minus its bugs: every
//! response says `Connection: close` and the connection ends after one request.
//! Written on edgepoll's raw `Poll`, run under the same runtime as the echo
//! server, to show what keep-alive and the state machine buy. `make bench` only.

#[cfg(target_os = "wasi")]
fn main() -> std::io::Result<()> {
    use edgepoll::{net, Events, Interest, Poll, Token};
    use std::io::{ErrorKind, Read, Write};

    struct Conn {
        stream: net::TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        sent: usize,
    }

    /// The response once the request is complete.
    fn respond(input: &[u8]) -> Option<Vec<u8>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let head =
            match request.parse(input) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return None,
                Err(_) => return Some(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec(),
                ),
            };
        let length = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        let body = input.get(head..head + length)?;
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
                .into_bytes();
        out.extend_from_slice(body);
        Some(out)
    }

    const LISTENER: Token = Token(usize::MAX);
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1236".into());
    let listener = net::bind(
        addr.parse()
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?,
    )?;
    let mut poll = Poll::new();
    poll.register(&listener, LISTENER, Interest::READABLE)?;
    println!("listening on {addr}");
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((stream, _)) = net::accept(&listener) {
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.register(&stream, Token(slot), Interest::READABLE)?;
                    conns[slot] = Some(Conn {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        sent: 0,
                    });
                }
                continue;
            }
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let mut done = false;
            if conn.output.is_empty() {
                loop {
                    match conn.stream.read(&mut buf) {
                        Ok(0) => {
                            done = true;
                            break;
                        }
                        Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            done = true;
                            break;
                        }
                    }
                }
                if let Some(out) = respond(&conn.input) {
                    conn.output = out;
                }
            }
            while !done && !conn.output.is_empty() && conn.sent < conn.output.len() {
                match conn.stream.write(&conn.output[conn.sent..]) {
                    Ok(n) => conn.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => done = true,
                }
            }
            if !conn.output.is_empty() && conn.sent == conn.output.len() {
                done = true;
            }
            if done {
                let _ = poll.deregister(&conn.stream);
                conns[index] = None;
            } else if !conn.output.is_empty() {
                poll.reregister(&conn.stream, Token(index), Interest::WRITABLE)?;
            }
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("book_style_server runs on wasm32-wasip1");
    std::process::exit(2);
}
