//! A minimal keep-alive HTTP server on `wasmedge_wasi_socket` alone: one
//! `Vec` buffer per connection, httparse, the crate's own `poll`, and a fixed
//! response with Content-Length (the body is read and dropped; the request
//! handling is in lib.rs). It does as little per request as a server can
//! while keeping connections alive, so `make bench` compares the echo
//! server's instructions per request against it. Takes ADDR and, for
//! counting, `--exit-after N`. For `make bench` only.

#[cfg(target_os = "wasi")]
fn main() -> std::io::Result<()> {
    use minimal_server::{complete, RESPONSE};
    use std::io::{ErrorKind, Read, Write};
    use wasmedge_wasi_socket::poll::{poll, EventType, Subscription};
    use wasmedge_wasi_socket::{TcpListener, TcpStream};

    const LISTENER: u64 = u64::MAX;

    struct Conn {
        stream: TcpStream,
        input: Vec<u8>,
    }

    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1237".into());
    let exit_after: Option<u64> = match (args.next().as_deref(), args.next()) {
        (Some("--exit-after"), Some(n)) => n.parse().ok(),
        _ => None,
    };
    let listener = TcpListener::bind(&addr, true)?;
    println!("listening on {addr}");
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut served = 0u64;
    loop {
        let mut subs = vec![Subscription::io(LISTENER, &listener, true, false, None)];
        for (i, conn) in conns.iter().enumerate() {
            if let Some(conn) = conn {
                subs.push(Subscription::io(i as u64, &conn.stream, true, false, None));
            }
        }
        for event in poll(&subs)? {
            if event.userdata == LISTENER {
                while let Ok((stream, _)) = listener.accept(true) {
                    let conn = Some(Conn {
                        stream,
                        input: Vec::new(),
                    });
                    match conns.iter().position(Option::is_none) {
                        Some(free) => conns[free] = conn,
                        None => conns.push(conn),
                    }
                }
                continue;
            }
            let index = event.userdata as usize;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let mut open = !matches!(event.event_type, EventType::Error(_));
            while open {
                match conn.stream.read(&mut buf) {
                    Ok(0) => open = false,
                    Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => open = false,
                }
            }
            while let Some(request) = complete(&conn.input) {
                match request {
                    Ok(len) => {
                        conn.input.drain(..len);
                        open = open && conn.stream.write_all(RESPONSE).is_ok();
                        served += 1;
                    }
                    Err(()) => open = false,
                }
                if !open {
                    break;
                }
            }
            if !open {
                conns[index] = None;
            }
        }
        if exit_after.is_some_and(|n| served >= n) {
            return Ok(());
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("minimal_server runs on wasm32-wasip1");
    std::process::exit(2);
}
