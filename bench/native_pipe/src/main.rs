//! A reference for a forwarder, for `bench/forwarding.py` and
//! `bench/proxy.py`: a single-threaded mio loop that pairs each client
//! connection with an upstream connection of its own and copies bytes
//! between them, a stream's end passed on as a shutdown. It parses nothing,
//! so what it costs per request is mostly what the kernel charges for one
//! outbound exchange per request over loopback. For `make bench` only:
//! `native_pipe LISTEN UPSTREAM`.

mod pairs;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use pairs::{address, pair, send_through};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;

const LISTENER: Token = Token(usize::MAX);

/// One end of a pair: its socket, the bytes from its partner it has not
/// taken yet, whether its own stream has ended, and whether its sending
/// side was shut down after its partner's ended. Ends are stored in pairs,
/// so `token ^ 1` is the partner's token.
struct End {
    stream: TcpStream,
    unsent: Vec<u8>,
    read_done: bool,
    write_shut: bool,
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
                loop {
                    let mut client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // A connection that failed before it was taken:
                        // the next may be fine (the listener is
                        // edge-triggered, so all are taken now).
                        Err(_) => continue,
                    };
                    // Connected blocking, for brevity: a connect to the
                    // upstream on loopback takes microseconds, once per
                    // connection of wrk's.
                    let outbound = std::net::TcpStream::connect(upstream)?;
                    outbound.set_nodelay(true)?;
                    outbound.set_nonblocking(true)?;
                    let mut outbound = TcpStream::from_std(outbound);
                    client.set_nodelay(true)?;
                    let at = ends.len();
                    // Edge-triggered, both ways, once: an edge for room
                    // comes only after a send found none, so nothing is
                    // ever registered again.
                    let both = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut client, Token(at), both)?;
                    poll.registry()
                        .register(&mut outbound, Token(at + 1), both)?;
                    for stream in [client, outbound] {
                        ends.push(Some(End {
                            stream,
                            unsent: Vec::new(),
                            read_done: false,
                            write_shut: false,
                        }));
                    }
                }
                continue;
            }
            let index = event.token().0;
            // A stream's end that came with its last bytes shows only in
            // the event: a read short of the buffer does not tell it.
            let read = match (event.is_readable(), event.is_read_closed()) {
                (_, true) => Some(Drain::ToTheEnd),
                (true, false) => Some(Drain::ToAShortRead),
                (false, false) => None,
            };
            match relay(&mut ends, index, read, &mut buf) {
                Ok(false) => {}
                // Both ways ended, or failed: the pair goes.
                Ok(true) | Err(_) => {
                    for at in [index, index ^ 1] {
                        if let Some(mut end) = ends.get_mut(at).and_then(Option::take) {
                            let _ = poll.registry().deregister(&mut end.stream);
                        }
                    }
                }
            }
        }
    }
}

/// How far a socket is read.
#[derive(Clone, Copy, PartialEq)]
enum Drain {
    /// Until a read does not fill the buffer: that one emptied the socket,
    /// and on Linux the next bytes to arrive raise a new edge, so the read
    /// that would only say WouldBlock is spared (the pipe should be lean).
    ToAShortRead,
    /// Until WouldBlock or the stream's end.
    ToTheEnd,
}

/// Hands `index` what it can take of its unsent bytes; if that made room
/// where there was none, takes what its partner's socket held back
/// meanwhile (its edge long gone: read to the end); then, on a read event,
/// moves what `index` has to read to its partner. True once both ways have
/// ended and every byte is delivered.
fn relay(
    ends: &mut [Option<End>],
    index: usize,
    read: Option<Drain>,
    buf: &mut [u8],
) -> io::Result<bool> {
    let (this, partner) = pair(ends, index)?;
    let had_unsent = !this.unsent.is_empty();
    flush(this, partner, &[])?;
    if had_unsent && this.unsent.is_empty() {
        pump(partner, this, Drain::ToTheEnd, buf)?;
    }
    if let Some(drain) = read {
        pump(this, partner, drain, buf)?;
    }
    Ok(this.read_done && partner.read_done && this.write_shut && partner.write_shut)
}

/// Reads `from` into `to` as far as `drain` says, while `to` takes all it
/// is given.
fn pump(from: &mut End, to: &mut End, drain: Drain, buf: &mut [u8]) -> io::Result<()> {
    while !from.read_done && to.unsent.is_empty() {
        let n = match from.stream.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            from.read_done = true;
        }
        flush(to, from, &buf[..n])?;
        if drain == Drain::ToAShortRead && n < buf.len() {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends `end` its unsent bytes and then `more`, as far as it takes them;
/// once all are gone and its partner's stream has ended, shuts down its
/// sending side, passing the end on.
fn flush(end: &mut End, partner: &End, more: &[u8]) -> io::Result<()> {
    let stream = &mut end.stream;
    if send_through(&mut end.unsent, more, |bytes| stream.write(bytes))?
        && partner.read_done
        && !end.write_shut
    {
        end.stream.shutdown(Shutdown::Write)?;
        end.write_shut = true;
    }
    Ok(())
}
