//! The floor for a forwarder on a Wasm runtime, for `bench/forwarding.py`:
//! bench/native_pipe's byte pipe as a guest, on edgepoll's `Poll` and
//! `net`. Each client connection is paired with an upstream connection of
//! its own and bytes are copied between them; nothing is parsed. So what it
//! costs per request under a runtime is what that runtime charges any
//! forwarder making one outbound exchange per request, and little else.
//! For `make bench` only: `wasm_pipe LISTEN UPSTREAM`.

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
    use crate::pairs::{address, pair};
    use edgepoll::net::{self, TcpStream};
    use edgepoll::{Events, Interest, Poll, Token};
    use std::io::{self, ErrorKind};

    const LISTENER: Token = Token(usize::MAX);

    /// One end of a pair: its socket, the bytes from its partner it has not
    /// taken yet, and what the poll watches it for (`None`: nothing, while
    /// its partner cannot take more). Ends are stored in pairs, so
    /// `token ^ 1` is the partner's token.
    struct End {
        stream: TcpStream,
        unsent: Vec<u8>,
        connecting: bool,
        watched: Option<Interest>,
    }

    impl End {
        /// What the poll should watch: room while connecting or holding
        /// bytes; else bytes to read, unless the partner holds some
        /// (backpressure).
        fn wanted(&self, partner_full: bool) -> Option<Interest> {
            if self.connecting || !self.unsent.is_empty() {
                Some(Interest::WRITABLE)
            } else if partner_full {
                None
            } else {
                Some(Interest::READABLE)
            }
        }
    }

    pub fn run() -> io::Result<()> {
        let mut args = std::env::args().skip(1);
        let listen = address(args.next(), "LISTEN", "wasm_pipe")?;
        let upstream = address(args.next(), "UPSTREAM", "wasm_pipe")?;
        let listener = net::bind(listen)?;
        let mut poll = Poll::new();
        poll.register(&listener, LISTENER, Interest::READABLE)?;
        println!("listening on {listen}");
        let mut ends: Vec<Option<End>> = Vec::new();
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent_upstream = Vec::new();
        loop {
            poll.poll(&mut events, None)?;
            for event in events.iter() {
                if event.token() == LISTENER {
                    while let Ok((client, _)) = net::accept(&listener) {
                        let outbound = net::connect(upstream)?;
                        for (stream, connecting) in [(client, false), (outbound, true)] {
                            ends.push(Some(End {
                                stream,
                                unsent: Vec::new(),
                                connecting,
                                watched: None,
                            }));
                        }
                        let at = ends.len() - 2;
                        settle(&mut poll, &mut ends, at)?;
                    }
                    continue;
                }
                let index = event.token().0;
                if ends.get(index).is_none_or(Option::is_none) {
                    continue;
                }
                match relay(&mut ends, index, &mut buf) {
                    Ok(true) => sent_upstream.push(index | 1),
                    Ok(false) => {}
                    Err(_) => {
                        close(&mut poll, &mut ends, index);
                        continue;
                    }
                }
                settle(&mut poll, &mut ends, index & !1)?;
            }
            // As the loop's client does (`upstream::read_ahead`): the answer
            // to bytes just sent upstream is read before the next poll, as
            // a nearby upstream has usually sent it by then. Found so, the
            // upstream connection is chilled, out of the busy calls, which
            // under WasmEdge cost an `epoll_ctl` per subscription.
            // Not found, it is warmed: its answer must not wait for a
            // full call.
            for index in sent_upstream.drain(..) {
                match read_ahead(&mut ends, index, &mut buf) {
                    Ok(found) => {
                        if let Some(end) = ends[index].as_ref().filter(|end| end.watched.is_some())
                        {
                            if found {
                                poll.chill(&end.stream)?;
                            } else {
                                poll.warm(&end.stream)?;
                            }
                        }
                    }
                    Err(_) => {
                        close(&mut poll, &mut ends, index);
                        continue;
                    }
                }
                settle(&mut poll, &mut ends, index & !1)?;
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

    /// One read of the upstream end `index` if it is read at all now: true
    /// if it found bytes (passed on to the client).
    fn read_ahead(ends: &mut [Option<End>], index: usize, buf: &mut [u8]) -> io::Result<bool> {
        let Ok((this, partner)) = pair(ends, index) else {
            return Ok(false);
        };
        if this.watched != Some(Interest::READABLE) || !partner.unsent.is_empty() {
            return Ok(false);
        }
        let Some(n) = receive(this, buf)? else {
            return Ok(false);
        };
        partner.unsent.extend_from_slice(&buf[..n]);
        flush(partner)?;
        Ok(true)
    }

    /// One read: `None` if nothing was waiting; end of stream is an error.
    fn receive(end: &mut End, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match net::recv(&end.stream, buf) {
            Ok(0) => Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Brings the poll's watch of the pair at `base` to what each end wants,
    /// changing only what changed.
    fn settle(poll: &mut Poll, ends: &mut [Option<End>], base: usize) -> io::Result<()> {
        let full = |end: &Option<End>| {
            end.as_ref()
                .is_some_and(|e| !e.unsent.is_empty() || e.connecting)
        };
        let partner_full = [full(&ends[base + 1]), full(&ends[base])];
        for (at, partner_full) in [base, base + 1].into_iter().zip(partner_full) {
            let Some(end) = ends[at].as_mut() else {
                continue;
            };
            let wanted = end.wanted(partner_full);
            if wanted == end.watched {
                continue;
            }
            match (end.watched, wanted) {
                (None, Some(interest)) => poll.register(&end.stream, Token(at), interest)?,
                (Some(_), Some(interest)) => poll.reregister(&end.stream, Token(at), interest)?,
                (Some(_), None) => poll.deregister(&end.stream)?,
                (None, None) => {}
            }
            end.watched = wanted;
        }
        Ok(())
    }

    /// Finishes a connect, hands `index` what it can take of its unsent
    /// bytes, then moves what it has to read to its partner: true if that
    /// partner is the upstream end. An error or end of stream on either
    /// side ends the pair.
    fn relay(ends: &mut [Option<End>], index: usize, buf: &mut [u8]) -> io::Result<bool> {
        let (this, partner) = pair(ends, index)?;
        if this.connecting {
            if let Some(e) = net::take_error(&this.stream)? {
                return Err(e);
            }
            this.connecting = false;
        }
        flush(this)?;
        if !partner.unsent.is_empty()
            || partner.connecting
            || this.watched != Some(Interest::READABLE)
        {
            return Ok(false);
        }
        // One read per event: the poll is level-triggered, so bytes left
        // behind are reported again.
        let Some(n) = receive(this, buf)? else {
            return Ok(false);
        };
        partner.unsent.extend_from_slice(&buf[..n]);
        flush(partner)?;
        Ok(index & 1 == 0)
    }

    fn flush(end: &mut End) -> io::Result<()> {
        while !end.unsent.is_empty() && !end.connecting {
            match net::send(&end.stream, &end.unsent) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => drop(end.unsent.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
