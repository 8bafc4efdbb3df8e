//! The floor for a forwarder, for `bench/forwarding.py`: a single-threaded
//! mio loop that pairs each client connection with an upstream connection of
//! its own and copies bytes between them. It parses nothing, so what it
//! costs per request is what any forwarder making one outbound exchange per
//! request pays the kernel over loopback, and little else. For `make bench`
//! only: `native_pipe LISTEN UPSTREAM`.

mod pairs;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use pairs::{address, pair};
use std::io::{self, ErrorKind, Read, Write};

const LISTENER: Token = Token(usize::MAX);

/// One end of a pair: its socket and the bytes read from its partner that
/// it has not taken yet. Ends are stored in pairs, so `token ^ 1` is the
/// partner's token.
struct End {
    stream: TcpStream,
    unsent: Vec<u8>,
    /// Registered for room to write (else for bytes to read).
    watching_room: bool,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = address(args.next(), "LISTEN", "native_pipe")?;
    let upstream = address(args.next(), "UPSTREAM", "native_pipe")?;
    let mut listener = TcpListener::bind(listen)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {listen}");
    let mut ends: Vec<Option<End>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut client, _)) = listener.accept() {
                    // A blocking connect is fine here: wrk opens its
                    // connections once, before anything is measured.
                    let outbound = std::net::TcpStream::connect(upstream)?;
                    outbound.set_nodelay(true)?;
                    outbound.set_nonblocking(true)?;
                    let mut outbound = TcpStream::from_std(outbound);
                    client.set_nodelay(true)?;
                    let at = ends.len();
                    poll.registry()
                        .register(&mut client, Token(at), Interest::READABLE)?;
                    poll.registry()
                        .register(&mut outbound, Token(at + 1), Interest::READABLE)?;
                    for stream in [client, outbound] {
                        ends.push(Some(End {
                            stream,
                            unsent: Vec::new(),
                            watching_room: false,
                        }));
                    }
                }
                continue;
            }
            let index = event.token().0;
            if relay(&mut ends, index, &mut buf).is_err() {
                for at in [index, index ^ 1] {
                    if let Some(mut end) = ends[at].take() {
                        let _ = poll.registry().deregister(&mut end.stream);
                    }
                }
                continue;
            }
            for at in [index, index ^ 1] {
                if let Some(end) = ends[at].as_mut() {
                    // An end with bytes left to take is watched for room,
                    // and its partner is not read meanwhile (backpressure).
                    // Registrations are edge-triggered: one is changed only
                    // when what it watches changes, as a lean loop does.
                    let blocked = !end.unsent.is_empty();
                    if blocked != end.watching_room {
                        let interest = if blocked {
                            Interest::WRITABLE
                        } else {
                            Interest::READABLE
                        };
                        poll.registry()
                            .reregister(&mut end.stream, Token(at), interest)?;
                        end.watching_room = blocked;
                    }
                }
            }
        }
    }
}

/// Moves what `index` can take from its unsent bytes, then what it has to
/// read, to its partner. An error or end of stream on either side ends the
/// pair.
fn relay(ends: &mut [Option<End>], index: usize, buf: &mut [u8]) -> io::Result<()> {
    let (this, partner) = pair(ends, index)?;
    flush(this)?;
    if !partner.unsent.is_empty() {
        return Ok(());
    }
    loop {
        let n = match this.stream.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        partner.unsent.extend_from_slice(&buf[..n]);
        flush(partner)?;
        // A read that did not fill the buffer emptied the socket: on Linux
        // the next bytes to arrive raise a new edge, so the read that would
        // only say WouldBlock is spared (the floor should be lean).
        if !partner.unsent.is_empty() || n < buf.len() {
            return Ok(());
        }
    }
}

fn flush(end: &mut End) -> io::Result<()> {
    while !end.unsent.is_empty() {
        match end.stream.write(&end.unsent) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => drop(end.unsent.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
