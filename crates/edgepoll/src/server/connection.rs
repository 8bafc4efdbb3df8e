//! One connection of the loop, whatever it carries, and the one read/write
//! path ([`pump`]) every kind goes through: an inbound HTTP connection, a
//! WebSocket, an outbound client connection, or one lingering before close
//! (a tunnel moves bytes between two sockets, so it has its own: `tunnel`).

use crate::client::{ClientConnection, ClientEvent, Exchange, Origin};
use crate::http::{Dispatch, Handler, OutputHold, Parts};
use crate::net::{self, TcpStream};
use crate::tls::{Plain, TlsSession};
use crate::ws::WebSocket;
use crate::Interest;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Reads per readiness event, so one fast sender cannot starve the others.
pub(crate) const READS_PER_EVENT: usize = 16;

pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    /// Which connection this is among all that held its slot (and token):
    /// a [`Responder`](crate::Responder) for an earlier one does not reach it.
    pub(crate) serial: u64,
    /// What it is registered for; `None` while it waits for nothing (held
    /// back, nothing to send), when it is not registered at all.
    pub(crate) interest: Option<Interest>,
    /// Set once the write side is shut down: input is drained until EOF or
    /// then; each byte read moves it on, up to the second instant.
    pub(crate) linger_until: Option<(Instant, Instant)>,
    /// Listed in `Work::touched`: listed once, without a look at the list
    /// (a round that answers n requests would otherwise cost n² steps).
    pub(crate) touched: bool,
    pub(crate) role: Role,
}

/// What a connection carries. Nearly every connection is HTTP: its handler
/// stays inline (boxing it would cost each connection an allocation and the
/// hot path an indirection); the rarer kinds are boxed.
#[allow(clippy::large_enum_variant)]
// An explicit tag, read with one load: the niche layout would decode it
// from a field of the handler on every match.
#[repr(u8)]
pub(crate) enum Role {
    /// An accepted HTTP/1.1 connection.
    Http(Handler),
    /// An accepted connection that switched to WebSocket.
    Ws(Box<WebSocket>),
    /// A connection of the loop's client to an upstream server.
    Upstream(Box<Upstream>),
    /// One side of two connections joined byte for byte after an upgrade.
    Tunnel(Box<super::tunnel::Tunnel>),
}

/// An outbound connection and the exchange it carries.
pub(crate) struct Upstream {
    pub(crate) conn: ClientConnection,
    /// Where it goes (the pool's key).
    pub(crate) origin: Origin,
    /// The TLS layer of an `https://` connection.
    pub(crate) tls: Option<Box<TlsSession>>,
    pub(crate) exchange: Option<Exchange>,
    /// Until the connect completes.
    pub(crate) connecting: bool,
    /// The WASI errno a poll reported with an event of the connect (0:
    /// none): a failure the poller's peek took from the socket, which
    /// `SO_ERROR` then no longer holds.
    pub(crate) connect_error: u16,
    pub(crate) last_progress: Instant,
    /// Whether a byte of the current exchange's response has arrived.
    pub(crate) got_bytes: bool,
    /// A timeout ended it: close.
    pub(crate) expired: bool,
    /// Not read: the client its response body goes to has too much to send,
    /// or the application paused this response.
    pub(crate) held: bool,
    /// Its response is to be read before the next poll (see
    /// [`read_ahead`](super::upstream::read_ahead)).
    pub(crate) read_ahead: bool,
    /// Read-aheads in a row that found nothing, and exchanges since the
    /// count passed the limit: a slow upstream is tried only now and then.
    pub(crate) ahead_misses: u8,
    pub(crate) ahead_skipped: u8,
    /// The poll round in which a read last found it empty (or took less
    /// than it asked): reused in a later one, it is read first (unless that
    /// round's poll watched it and saw nothing), so that bytes or a close
    /// its server sent after a response are seen before the next request
    /// goes. (In the same round only a request that may not go twice and
    /// goes straight on after the response reads first: a close that came
    /// with the response's last bytes is rare, and an idempotent request
    /// is sent again.)
    pub(crate) dry_round: u64,
}

/// A protocol as the read/write path sees it: bytes in, bytes out.
pub(crate) trait Endpoint {
    /// Called before each round of reads and writes: a layer between the
    /// socket and the protocol (TLS) moves what it holds.
    #[inline]
    fn prepare(&mut self) {}
    fn wants_read(&self) -> bool;
    fn receive(&mut self, data: &[u8]);
    fn receive_eof(&mut self);
    /// The stream ended in a way that does not show it ended where the peer
    /// meant it to (TLS without close_notify).
    #[inline]
    fn receive_cut(&mut self) {
        self.receive_eof();
    }
    /// A read found nothing more waiting (it would block, or took less than
    /// asked): the peer had sent nothing further at that moment.
    #[inline]
    fn read_dry(&mut self) {}
    /// Said by a layer below (TLS) before it hands plaintext on: whether
    /// output it took from the endpoint has not all left yet. A response
    /// complete meanwhile came before its request's tail went.
    #[inline]
    fn unsent_below(&mut self, _unsent: bool) {}
    fn wants_write(&self) -> bool;
    /// The pending output, in parts sent together (a head and a body, a
    /// streamed body's chunks: see [`Parts`]).
    fn output(&self) -> Parts<'_>;
    /// The pending output if it is one part, known for less than all of
    /// [`output`](Self::output) (an HTTP response's nearly always is).
    #[inline]
    fn lone_output(&self) -> Option<&[u8]> {
        None
    }
    fn sent(&mut self, n: usize);
}

/// The loop's one read buffer, with how much one step may read into a
/// connection.
pub(crate) struct Scratch {
    bytes: Vec<u8>,
    /// Bytes one step takes at most (one read may pass it): this bounds
    /// what a step adds to a body's backlog before the loop can hold the
    /// body's source, which it decides after the step.
    budget: usize,
}

impl Scratch {
    /// Bytes one step takes at most (see the field).
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    pub(crate) fn new(len: usize, budget: usize) -> Scratch {
        Scratch {
            bytes: vec![0; len],
            budget: budget.max(1),
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// Moves bytes between the socket and the endpoint: reads (if `readable`)
/// at most [`READS_PER_EVENT`] times and until the scratch's budget is
/// taken, then writes until the endpoint has nothing left or the socket is
/// full. An error ends the connection.
#[inline]
pub(crate) fn pump(
    stream: &TcpStream,
    endpoint: &mut impl Endpoint,
    readable: bool,
    scratch: &mut Scratch,
) -> io::Result<()> {
    pump_in(stream, endpoint, readable, scratch)?;
    pump_out(stream, endpoint)
}

/// The reading half of [`pump`]: an HTTP connection decides between the
/// halves whether its output waits, with what the reads gave in view.
#[inline]
pub(crate) fn pump_in(
    stream: &TcpStream,
    endpoint: &mut impl Endpoint,
    readable: bool,
    scratch: &mut Scratch,
) -> io::Result<()> {
    endpoint.prepare();
    if readable && endpoint.wants_read() {
        let (mut reads, mut taken) = (0, 0);
        while reads < READS_PER_EVENT && taken < scratch.budget {
            match net::recv(stream, scratch) {
                Ok(0) => {
                    endpoint.receive_eof();
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    taken += n;
                    endpoint.receive(&scratch[..n]);
                    if n < scratch.len() {
                        endpoint.read_dry();
                        break;
                    }
                    if !endpoint.wants_read() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    endpoint.read_dry();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The writing half of [`pump`].
#[inline]
pub(crate) fn pump_out(stream: &TcpStream, endpoint: &mut impl Endpoint) -> io::Result<()> {
    while endpoint.wants_write() {
        let sent = match endpoint.lone_output() {
            Some(all) => net::send(stream, all),
            None => match endpoint.output() {
                // See `Parts`: one part alone.
                parts if parts[1].is_empty() => net::send(stream, parts[0]),
                parts => net::send_vectored(stream, &parts),
            },
        };
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => endpoint.sent(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An HTTP connection's handler with the service it calls.
pub(crate) struct HttpEndpoint<'x, D> {
    pub(crate) handler: &'x mut Handler,
    pub(crate) dispatch: &'x mut D,
    pub(crate) now: Instant,
    /// How long output waits for more (see [`Handler::hold_output`]).
    pub(crate) hold_for: Duration,
    /// The most a body of known length is held back for whole (the
    /// body's backlog).
    pub(crate) hold_most: usize,
    /// Its output is held back for now: decided after the reads
    /// (`pump_in`), and again after a send that left some.
    pub(crate) hold: bool,
    /// A hold began, to be looked at again then.
    pub(crate) hold_until: Option<Instant>,
}

impl<D: Dispatch> HttpEndpoint<'_, D> {
    /// Decides whether the pending output waits for more (see
    /// [`Handler::hold_output`]).
    #[inline]
    pub(crate) fn decide_hold(&mut self) {
        self.hold = match self
            .handler
            .hold_output(self.now, self.hold_for, self.hold_most)
        {
            OutputHold::Send => false,
            OutputHold::Held => true,
            OutputHold::Begun(until) => {
                self.hold_until = Some(until);
                true
            }
        };
    }
}

impl<D: Dispatch> Endpoint for HttpEndpoint<'_, D> {
    #[inline]
    fn wants_read(&self) -> bool {
        self.handler.wants_read()
    }

    #[inline]
    fn receive(&mut self, data: &[u8]) {
        self.handler.receive(data, self.now, self.dispatch);
    }

    fn receive_eof(&mut self) {
        self.handler.receive_eof(self.now, self.dispatch);
    }

    #[inline]
    fn wants_write(&self) -> bool {
        !self.hold && self.handler.wants_write()
    }

    #[inline]
    fn output(&self) -> Parts<'_> {
        self.handler.pending_output_parts()
    }

    #[inline]
    fn lone_output(&self) -> Option<&[u8]> {
        self.handler.lone_output()
    }

    #[inline]
    fn sent(&mut self, n: usize) {
        self.handler.consume_output(n, self.now);
        // A drained buffer may unblock pipelined requests.
        if !self.handler.wants_write() {
            self.handler.process(self.now, self.dispatch);
        }
        // What is left (a send cut by its parts), or what those requests
        // gave, may wait for more as the first output did.
        if self.handler.wants_write() {
            self.decide_hold();
        }
    }
}

/// A WebSocket with what to do with each message.
pub(crate) struct WsEndpoint<'x, F> {
    pub(crate) socket: &'x mut WebSocket,
    /// Hands a message to the application; returns the bytes it has queued
    /// in this step (replies go out after the step).
    pub(crate) on_message: F,
    /// What `on_message` last returned: counted as queued already, so
    /// that a burst of small messages read in one step cannot queue more
    /// replies than the connection may hold (it was dropped for them).
    pub(crate) replies: usize,
    pub(crate) now: Instant,
    /// The peer closed without a close frame.
    pub(crate) gone: bool,
    /// Messages went to the application in this step.
    pub(crate) handed: bool,
}

impl<F: FnMut(crate::ws::Message<'_>) -> usize> Endpoint for WsEndpoint<'_, F> {
    fn wants_read(&self) -> bool {
        !self.gone && self.socket.wants_read_with(self.replies)
    }

    fn receive(&mut self, data: &[u8]) {
        let (handed, replies) = (&mut self.handed, &mut self.replies);
        let on_message = &mut self.on_message;
        self.socket.receive(data, self.now, |message| {
            *handed = true;
            *replies = on_message(message);
        });
    }

    fn receive_eof(&mut self) {
        self.gone = true;
    }

    /// A step that handed messages over writes what is queued but holds
    /// the close frame back: the replies to those messages are delivered
    /// after the step, and go out ahead of it.
    fn wants_write(&self) -> bool {
        !self.gone
            && match self.handed {
                true => self.socket.has_output_before_close(),
                false => self.socket.wants_write(),
            }
    }

    fn output(&self) -> Parts<'_> {
        self.socket.pending_output_parts()
    }

    fn sent(&mut self, n: usize) {
        self.socket.consume_output(n, self.now);
    }
}

/// A connection being closed: what still arrives is read and dropped.
#[derive(Default)]
pub(crate) struct Draining {
    pub(crate) ended: bool,
    /// Bytes came in.
    pub(crate) read: bool,
}

impl Endpoint for Draining {
    fn wants_read(&self) -> bool {
        !self.ended
    }

    fn receive(&mut self, data: &[u8]) {
        self.read |= !data.is_empty();
    }

    fn receive_eof(&mut self) {
        self.ended = true;
    }

    fn wants_write(&self) -> bool {
        false
    }

    fn output(&self) -> Parts<'_> {
        crate::http::one_part(&[])
    }

    fn sent(&mut self, _: usize) {}
}

/// An outbound connection: what the server sends makes events of its
/// exchange.
pub(crate) struct UpstreamEndpoint<'x> {
    pub(crate) conn: &'x mut ClientConnection,
    pub(crate) events: Vec<ClientEvent>,
    pub(crate) eof: bool,
    pub(crate) received: bool,
    pub(crate) held: bool,
    /// A read found the socket empty (see [`Endpoint::read_dry`]).
    pub(crate) dry: bool,
}

impl Endpoint for UpstreamEndpoint<'_> {
    fn wants_read(&self) -> bool {
        !self.eof && !self.held
    }

    fn receive(&mut self, data: &[u8]) {
        self.received = true;
        self.conn.receive(data, &mut self.events);
    }

    fn receive_eof(&mut self) {
        self.eof = true;
        self.conn.receive_eof(&mut self.events);
    }

    fn receive_cut(&mut self) {
        self.eof = true;
        self.conn.receive_cut(&mut self.events);
    }

    fn read_dry(&mut self) {
        self.dry = true;
    }

    fn unsent_below(&mut self, unsent: bool) {
        self.conn.set_unsent_below(unsent);
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    fn output(&self) -> Parts<'_> {
        self.conn.pending_output()
    }

    fn sent(&mut self, n: usize) {
        self.conn.consume_output(n);
    }
}

/// TLS between the socket and an endpoint: ciphertext on the socket side,
/// plaintext on the endpoint's.
pub(crate) struct TlsEndpoint<'x, E> {
    pub(crate) tls: &'x mut TlsSession,
    pub(crate) inner: E,
}

impl<E: Endpoint> TlsEndpoint<'_, E> {
    /// Plaintext received to the endpoint, while it takes it.
    fn deliver(&mut self) {
        loop {
            if !self.inner.wants_read() {
                return;
            }
            let unsent = self.tls.has_unsent();
            match self.tls.plain() {
                Plain::Data(data) => {
                    let n = data.len();
                    self.inner.unsent_below(unsent);
                    self.inner.receive(data);
                    self.tls.consume(n);
                    // Room again for what rustls did not take.
                    self.tls.retry_input();
                }
                Plain::Nothing => return,
                Plain::End => {
                    self.inner.receive_eof();
                    return;
                }
                Plain::Cut => {
                    self.inner.receive_cut();
                    return;
                }
            }
        }
    }

    /// The endpoint's output into TLS, and TLS's into the socket's queue.
    fn encrypt(&mut self) {
        while self.inner.wants_write() {
            let [part, ..] = self.inner.output();
            let n = self.tls.send(part);
            if n == 0 {
                break;
            }
            self.inner.sent(n);
        }
        self.tls.fill_output();
    }
}

impl<E: Endpoint> Endpoint for TlsEndpoint<'_, E> {
    fn prepare(&mut self) {
        self.inner.prepare();
        self.deliver();
        self.encrypt();
    }

    fn wants_read(&self) -> bool {
        self.tls.takes_input() && (self.tls.is_handshaking() || self.inner.wants_read())
    }

    fn receive(&mut self, data: &[u8]) {
        self.tls.receive(data);
        self.deliver();
        // A handshake answers at once; a response may free the request's
        // sending.
        self.encrypt();
    }

    fn receive_eof(&mut self) {
        self.tls.receive_eof();
        self.deliver();
    }

    /// Dry only if rustls holds no part of a record either: those bytes
    /// came after what was read, as a plain socket would have shown.
    fn read_dry(&mut self) {
        if !self.tls.holds_partial_record() {
            self.inner.read_dry();
        }
    }

    fn wants_write(&self) -> bool {
        !self.tls.output().is_empty()
    }

    fn output(&self) -> Parts<'_> {
        crate::http::one_part(self.tls.output())
    }

    fn sent(&mut self, n: usize) {
        self.tls.sent(n);
        if self.tls.output().is_empty() {
            self.encrypt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pair::pair;
    use super::*;
    use crate::ws::frame::{read_header, write_masked_frame};
    use crate::ws::{Outbox, WsLimits};
    use crate::Token;
    use std::time::Duration;

    /// A burst of small messages, each answered, is read only as far as
    /// the answers fit the connection's queue, however much of it one step
    /// could read: every answer arrives. (A step read up to 16 reads' worth
    /// and queued the answers after it; past the queue limit the connection
    /// was dropped, a reader and all.)
    #[test]
    fn a_burst_of_messages_is_read_only_as_far_as_their_replies_fit() {
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let (near, far) = pair(&listener);
        let limits = WsLimits {
            max_queued_bytes: 16 * 1024,
            ..WsLimits::default()
        };
        let now = Instant::now();
        let mut socket = WebSocket::new(limits, now);
        // 600 messages of 100 bytes: four times the queue limit.
        let messages: Vec<String> = (0..600).map(|i| format!("{i:0100}")).collect();
        let mut burst = Vec::new();
        for m in &messages {
            write_masked_frame(&mut burst, 0x81, [7, 1, 2, 9], m.as_bytes());
        }
        let mut at = 0;
        while at < burst.len() {
            at += net::send(&far, &burst[at..]).expect("the burst fits the socket buffers");
        }
        // All of it waits in the socket before the first read.
        std::thread::sleep(Duration::from_millis(100));
        far.set_nonblocking(true).expect("non-blocking");
        // Reads of 4 KiB, 16 to a step: a step could read all 64 KB.
        let mut scratch = Scratch::new(4 * 1024, usize::MAX);
        let (mut back, mut got) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut round = 0;
        while got.len() < messages.len() {
            assert!(Instant::now() < deadline, "{} answers", got.len());
            round += 1;
            let mut outbox = Outbox::default();
            let mut endpoint = WsEndpoint {
                socket: &mut socket,
                on_message: |message: crate::ws::Message<'_>| {
                    outbox.send(Token(0), message);
                    outbox.queued_bytes()
                },
                replies: 0,
                now,
                gone: false,
                handed: false,
            };
            pump(&near, &mut endpoint, true, &mut scratch).expect("reads");
            // Delivered as the loop's router does, then written.
            outbox.drain(|_, frames, _| {
                assert!(
                    socket.queue_round(frames, None, round, now),
                    "the reader was dropped"
                )
            });
            // A round never takes the queue past its limit: the reads
            // stopped where their answers would have.
            let queued: usize = socket.pending_output_parts().iter().map(|p| p.len()).sum();
            assert!(queued <= 16 * 1024, "{queued} bytes queued");
            let mut endpoint = WsEndpoint {
                socket: &mut socket,
                on_message: |_: crate::ws::Message<'_>| 0,
                replies: 0,
                now,
                gone: false,
                handed: false,
            };
            pump(&near, &mut endpoint, false, &mut scratch).expect("writes");
            loop {
                match net::recv(&far, &mut scratch) {
                    Ok(0) => panic!("closed after {} answers", got.len()),
                    Ok(n) => back.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            while let Ok(Some(header)) = read_header(&back) {
                let end = header.header_len + header.payload_len as usize;
                if back.len() < end {
                    break;
                }
                got.push(String::from_utf8_lossy(&back[header.header_len..end]).into_owned());
                back.drain(..end);
            }
        }
        assert!(got == messages, "every answer, in order");
    }

    /// Takes whatever comes, as a body's source does.
    #[derive(Default)]
    struct Sink {
        taken: usize,
    }

    impl Endpoint for Sink {
        fn wants_read(&self) -> bool {
            true
        }
        fn receive(&mut self, data: &[u8]) {
            self.taken += data.len();
        }
        fn receive_eof(&mut self) {}
        fn wants_write(&self) -> bool {
            false
        }
        fn output(&self) -> Parts<'_> {
            crate::http::one_part(&[])
        }
        fn sent(&mut self, _: usize) {}
    }

    /// A step takes its budget and at most one read more, however much
    /// waits: what it adds to a body's queue before the loop can hold the
    /// source is bounded by the budget (`body_backlog`), not by 16 reads.
    #[test]
    fn a_step_reads_its_budget_and_no_more() {
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let (near, far) = pair(&listener);
        let mut sent = 0;
        while sent < 96 * 1024 {
            sent += net::send(&far, &[7; 8 * 1024]).expect("fits the socket buffers");
        }
        std::thread::sleep(Duration::from_millis(100));
        // Reads of 4 KiB, 16 to a step: 64 KiB without the budget.
        let mut scratch = Scratch::new(4 * 1024, 10 * 1024);
        let mut sink = Sink::default();
        pump(&near, &mut sink, true, &mut scratch).expect("reads");
        assert_eq!(
            sink.taken,
            12 * 1024,
            "three reads: the third passes 10 KiB"
        );
        pump(&near, &mut sink, true, &mut scratch).expect("reads");
        assert_eq!(sink.taken, 24 * 1024, "as much again in the next step");
    }
}
