//! A reference for a forwarder on a Wasm runtime, for `bench/forwarding.py`
//! and `bench/proxy.py`: bench/native_pipe's byte pipe as a guest, on
//! edgepoll's `Poll` and `net`. Each client connection is paired with an
//! upstream connection of its own and bytes are copied between them, a
//! stream's end passed on as a shutdown; nothing is parsed. So what it costs
//! per request under a runtime is mostly what that runtime and the kernel
//! charge for one outbound exchange per request. It is one lean design, not
//! a proven least. For `make bench` only: `wasm_pipe LISTEN UPSTREAM`.

#[cfg(target_os = "wasi")]
fn main() -> std::io::Result<()> {
    pipe::run()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("wasm_pipe runs on wasm32-wasip1");
    std::process::exit(2);
}

#[cfg(target_os = "wasi")]
#[path = "../../native_pipe/src/pairs.rs"]
mod pairs;

#[cfg(target_os = "wasi")]
mod pipe {
    use crate::pairs::{address, pair, send_through};
    use edgepoll::net::{self, Shutdown, TcpStream};
    use edgepoll::{Events, Interest, Poll, Token};
    use std::io::{self, ErrorKind};

    const LISTENER: Token = Token(usize::MAX);

    /// One end of a pair: its socket, the bytes from its partner it has not
    /// taken yet, whether its connect is under way, whether its own stream
    /// has ended, whether its sending side was shut down after its
    /// partner's ended, and what the poll watches it for. Ends are stored
    /// in pairs, so `token ^ 1` is the partner's token.
    struct End {
        stream: TcpStream,
        unsent: Vec<u8>,
        connecting: bool,
        read_done: bool,
        write_shut: bool,
        watched: Option<Interest>,
    }

    impl End {
        fn new(stream: TcpStream, connecting: bool) -> End {
            End {
                stream,
                unsent: Vec::new(),
                connecting,
                read_done: false,
                write_shut: false,
                watched: None,
            }
        }

        /// Whether it takes no more bytes for now: still connecting, or
        /// holding some.
        fn full(&self) -> bool {
            self.connecting || !self.unsent.is_empty()
        }

        /// What the poll should watch it for: room while it is full; bytes
        /// to read while its stream goes on and its partner takes more
        /// (backpressure: a source is not read while its sink is full).
        fn wanted(&self, partner: &End) -> Option<Interest> {
            let read = !self.connecting && !self.read_done && !partner.full();
            match (read, self.full()) {
                (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
                (true, false) => Some(Interest::READABLE),
                (false, true) => Some(Interest::WRITABLE),
                (false, false) => None,
            }
        }

        fn finished(&self, partner: &End) -> bool {
            self.read_done && partner.read_done && self.write_shut && partner.write_shut
        }
    }

    pub fn run() -> io::Result<()> {
        let mut args = std::env::args().skip(1);
        let listen = address(args.next(), "LISTEN", "wasm_pipe")?;
        let upstream = address(args.next(), "UPSTREAM", "wasm_pipe")?;
        let listener = net::bind(listen)?;
        let mut poll = Poll::new();
        // As the library's server splits them, so that the two compare.
        poll.set_split_quiet(true);
        poll.register(&listener, LISTENER, Interest::READABLE)?;
        // In every call, as the library's server keeps its listener.
        poll.pin(&listener)?;
        println!("listening on {listen}");
        let mut ends: Vec<Option<End>> = Vec::new();
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent_upstream = Vec::new();
        loop {
            poll.poll(&mut events, None)?;
            for event in events.iter() {
                if event.token() == LISTENER {
                    loop {
                        let client = match net::accept(&listener) {
                            Ok((client, _)) => client,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                            Err(e) => return Err(e),
                        };
                        let outbound = net::connect(upstream)?;
                        ends.push(Some(End::new(client, false)));
                        ends.push(Some(End::new(outbound, true)));
                        let at = ends.len() - 2;
                        settle(&mut poll, &mut ends, at)?;
                    }
                    continue;
                }
                let index = event.token().0;
                if ends.get(index).is_none_or(Option::is_none) {
                    continue;
                }
                match relay(&mut ends, index, event.is_readable(), &mut buf) {
                    Ok(true) => sent_upstream.push(index | 1),
                    Ok(false) => {}
                    Err(_) => {
                        close(&mut poll, &mut ends, index);
                        continue;
                    }
                }
                settle(&mut poll, &mut ends, index & !1)?;
            }
            // The answer to bytes just sent upstream is read before the
            // next poll, as the library's client reads a response
            // (`upstream::read_ahead`): a nearby upstream has usually sent
            // it by then, and it costs no poll event. Where the client keeps
            // an idle connection in the busy calls, so that the poll vouches
            // it is quiet before its next request, the pipe, which need not
            // know, chills its upstream once a read came short of the
            // buffer (the answer is likely whole): under WasmEdge each
            // subscription costs an `epoll_ctl` per call. Found nothing (or
            // a full buffer), it is warmed: the rest must not wait for a
            // full call.
            for index in sent_upstream.drain(..) {
                let found = match read_ahead(&mut ends, index, &mut buf) {
                    Ok(found) => found,
                    Err(_) => {
                        close(&mut poll, &mut ends, index);
                        continue;
                    }
                };
                settle(&mut poll, &mut ends, index & !1)?;
                if let Some(end) = ends[index].as_ref().filter(|end| end.watched.is_some()) {
                    match found {
                        Some(n) if n > 0 && n < buf.len() => poll.chill(&end.stream)?,
                        _ => poll.warm(&end.stream)?,
                    }
                }
            }
        }
    }

    fn close(poll: &mut Poll, ends: &mut [Option<End>], index: usize) {
        for at in [index, index ^ 1] {
            if let Some(end) = ends[at].take() {
                if end.watched.is_some() {
                    let _ = poll.deregister(&end.stream);
                }
            }
        }
    }

    /// Brings the poll's watch of the pair at `base` to what each end
    /// wants, changing only what changed; closes a pair that is finished.
    fn settle(poll: &mut Poll, ends: &mut [Option<End>], base: usize) -> io::Result<()> {
        let Ok((first, second)) = pair(ends, base) else {
            return Ok(());
        };
        if first.finished(second) {
            close(poll, ends, base);
            return Ok(());
        }
        let wanted = [first.wanted(second), second.wanted(first)];
        for (at, wanted) in [base, base + 1].into_iter().zip(wanted) {
            let Some(end) = ends[at].as_mut() else {
                continue;
            };
            match (end.watched, wanted) {
                (old, new) if old == new => continue,
                (None, Some(interest)) => poll.register(&end.stream, Token(at), interest)?,
                (Some(_), Some(interest)) => poll.reregister(&end.stream, Token(at), interest)?,
                (Some(_), None) => poll.deregister(&end.stream)?,
                (None, None) => {}
            }
            end.watched = wanted;
        }
        Ok(())
    }

    /// Finishes a connect; hands `index` what it can take of its unsent
    /// bytes, and if that made room where there was none, takes what its
    /// partner's socket held back meanwhile; then, on a read event, moves
    /// what `index` has to read to its partner. True if bytes went to the
    /// upstream end.
    fn relay(
        ends: &mut [Option<End>],
        index: usize,
        readable: bool,
        buf: &mut [u8],
    ) -> io::Result<bool> {
        let (this, partner) = pair(ends, index)?;
        if this.connecting {
            if let Some(e) = net::take_error(&this.stream)? {
                return Err(e);
            }
            this.connecting = false;
        }
        let was_full = !this.unsent.is_empty();
        flush(this, partner, &[])?;
        if was_full && !this.full() {
            pump(partner, this, buf)?;
        }
        // Read only when watched for it: otherwise a source whose sink is
        // full would be read anyway.
        let watched_read = this.watched.is_some_and(|w| w.is_readable());
        let sent = readable && watched_read && pump(this, partner, buf)?.is_some_and(|n| n > 0);
        Ok(sent && index & 1 == 0)
    }

    /// One read of the upstream end `index`, passed on to the client, if it
    /// is read at all now: how many bytes it found (`None`: none waiting).
    fn read_ahead(
        ends: &mut [Option<End>],
        index: usize,
        buf: &mut [u8],
    ) -> io::Result<Option<usize>> {
        let Ok((this, partner)) = pair(ends, index) else {
            return Ok(None);
        };
        if this.wanted(partner).is_none_or(|w| !w.is_readable()) {
            return Ok(None);
        }
        pump(this, partner, buf)
    }

    /// One read of `from` into `to`, unless `from` is connecting or has
    /// ended or `to` is full (the poll is level-triggered: bytes left
    /// behind are reported again). How many bytes it read; `None` if none
    /// were waiting.
    fn pump(from: &mut End, to: &mut End, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if from.connecting || from.read_done || to.full() {
            return Ok(None);
        }
        let n = match net::recv(&from.stream, buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        if n == 0 {
            from.read_done = true;
        }
        flush(to, from, &buf[..n])?;
        Ok(Some(n))
    }

    /// Sends `end` its unsent bytes and then `more`, as far as it takes
    /// them (nothing while it connects); once all are gone and its
    /// partner's stream has ended, shuts down its sending side, passing the
    /// end on.
    fn flush(end: &mut End, partner: &End, more: &[u8]) -> io::Result<()> {
        if end.connecting {
            end.unsent.extend_from_slice(more);
            return Ok(());
        }
        let stream = &end.stream;
        if send_through(&mut end.unsent, more, |bytes| net::send(stream, bytes))?
            && partner.read_done
            && !end.write_shut
        {
            end.stream.shutdown(Shutdown::Write)?;
            end.write_shut = true;
        }
        Ok(())
    }
}
