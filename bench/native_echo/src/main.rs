//! The native baseline: a single-threaded mio event loop driving the same
//! sans-IO `Handler` with the same service as the wasm echo server, so the
//! difference between the two is what wasm and the runtime cost. For `make
//! bench` only.

use edgepoll::http::{DateCache, Handler, Limits, Request, Response, Service};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

const LISTENER: Token = Token(usize::MAX);

/// The echo server's service with the `Date` the wasm echo server's loop
/// adds (`ServerOptions::date`, on by default), so that both send the
/// same responses.
struct DatedEcho(DateCache);

impl Service for DatedEcho {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        let date = self.0.bytes_at(Instant::now()).to_vec();
        poll_http_server::echo(request).header("Date", date)
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1235".into());
    let mut listener = TcpListener::bind(
        addr.parse()
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?,
    )?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {addr}");
    let mut conns: Vec<Option<(mio::net::TcpStream, Handler)>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut service = DatedEcho(DateCache::new());
    loop {
        poll.poll(&mut events, None)?;
        let now = Instant::now();
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(&mut stream, Token(slot), Interest::READABLE)?;
                    conns[slot] = Some((stream, Handler::new(Limits::default(), now)));
                }
                continue;
            }
            let index = event.token().0;
            let Some((stream, handler)) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let mut open = true;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        handler.receive_eof(now, &mut service);
                        break;
                    }
                    Ok(n) => handler.receive(&buf[..n], now, &mut service),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            while open && handler.wants_write() {
                match stream.write(handler.pending_output()) {
                    Ok(n) => {
                        handler.consume_output(n, now);
                        handler.process(now, &mut service);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => open = false,
                }
            }
            let interest = if handler.wants_write() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if !open || handler.is_finished() {
                let _ = poll.registry().deregister(stream);
                conns[index] = None;
            } else {
                poll.registry().reregister(stream, Token(index), interest)?;
            }
        }
    }
}
