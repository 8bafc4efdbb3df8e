//! The resolver's sockets ([`crate::dns`]): one UDP socket connected to
//! the DNS server, opened on the first lookup, and a TCP connection per
//! query whose answer was truncated. They wait on the loop's `Poll` beside
//! the connections, under tokens of their own at the top of the range.
//! The resolver's state is the pool's (`Pool::names`); this only moves
//! bytes.

use super::Core;
use crate::dns::ResolveError;
use crate::net::{self, TcpStream, UdpSocket};
use crate::{Interest, Token};
use std::io;
use std::time::Instant;

/// At most this many queries over TCP at once; more fail at once.
const MAX_TCP: usize = 32;
/// Tokens from here up are the resolver's (the listener's is the last).
pub(crate) const FIRST_TOKEN: usize = usize::MAX - 2 - MAX_TCP;
const UDP: Token = Token(usize::MAX - 1);

#[derive(Default)]
pub(crate) struct NameSockets {
    udp: Option<UdpSocket>,
    tcp: Vec<Option<TcpQuery>>,
}

/// One query over TCP: the message with its length prefix out, the answer
/// with its prefix in.
struct TcpQuery {
    stream: TcpStream,
    id: u16,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
    connecting: bool,
}

impl NameSockets {
    /// Whether `token` is one of the resolver's.
    pub(crate) fn owns(token: Token) -> bool {
        token.0 >= FIRST_TOKEN && token.0 < usize::MAX
    }
}

/// Sends what the resolver queued and starts the TCP queries it asked for.
pub(crate) fn flush(core: &mut Core, now: Instant) {
    let names = &mut core.work.pool.names;
    let Some(server) = names.server() else {
        names.datagrams.clear();
        names.over_tcp.clear();
        return;
    };
    if !names.datagrams.is_empty() {
        let datagrams = std::mem::take(&mut names.datagrams);
        if let Err(e) = send_datagrams(core, server, &datagrams) {
            let error = ResolveError::Unreachable(format!("{server}: {e}"));
            core.work.pool.names.on_server_error(error, now);
        }
    }
    for (id, query) in std::mem::take(&mut core.work.pool.names.over_tcp) {
        if let Err(e) = start_tcp(core, server, id, &query) {
            let error = ResolveError::Unreachable(format!("{server} over TCP: {e}"));
            core.work.pool.names.on_tcp_answer(id, Err(error), now);
        }
    }
}

fn send_datagrams(
    core: &mut Core,
    server: net::SocketAddr,
    datagrams: &[Vec<u8>],
) -> io::Result<()> {
    if core.names.udp.is_none() {
        let udp = UdpSocket::connect(server)?;
        core.poll.register(&udp, UDP, Interest::READABLE)?;
        // Answers never wait for a full poll (as the listener's accepts).
        if let Err(e) = core.poll.pin(&udp) {
            let _ = core.poll.deregister(&udp);
            return Err(e);
        }
        core.names.udp = Some(udp);
    }
    let Some(udp) = &core.names.udp else {
        return Ok(());
    };
    for datagram in datagrams {
        match udp.send(datagram) {
            Ok(_) => {}
            // Resent at the resolver's next turn.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn start_tcp(core: &mut Core, server: net::SocketAddr, id: u16, query: &[u8]) -> io::Result<()> {
    let free = core.names.tcp.iter().position(Option::is_none);
    let at = match free {
        Some(at) => at,
        None if core.names.tcp.len() < MAX_TCP => {
            core.names.tcp.push(None);
            core.names.tcp.len() - 1
        }
        None => return Err(io::Error::other("too many queries over TCP at once")),
    };
    let stream = net::connect(server)?;
    core.poll
        .register(&stream, Token(FIRST_TOKEN + at), Interest::WRITABLE)?;
    let mut out = (query.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(query);
    core.names.tcp[at] = Some(TcpQuery {
        stream,
        id,
        out,
        sent: 0,
        input: Vec::new(),
        connecting: true,
    });
    Ok(())
}

/// A readiness event for one of the resolver's sockets.
pub(crate) fn on_event(core: &mut Core, token: Token, now: Instant) {
    if token == UDP {
        read_datagrams(core, now);
    } else {
        step_tcp(core, token.0 - FIRST_TOKEN, now);
    }
    core.work.pool.take_resolved();
}

fn read_datagrams(core: &mut Core, now: Instant) {
    let Some(udp) = &core.names.udp else {
        return;
    };
    loop {
        match udp.recv(&mut core.scratch) {
            Ok(n) => core.work.pool.names.on_datagram(&core.scratch[..n], now),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Nothing listens at the server's port (an ICMP error
                // came back), or the socket broke: start afresh next time.
                let server = core.work.pool.names.server();
                let why = match server {
                    Some(server) => format!("{server}: {e}"),
                    None => e.to_string(),
                };
                core.work
                    .pool
                    .names
                    .on_server_error(ResolveError::Unreachable(why), now);
                if let Some(udp) = core.names.udp.take() {
                    let _ = core.poll.deregister(&udp);
                }
                return;
            }
        }
    }
}

/// What a TCP query has come to.
enum Progress {
    Waiting(Interest),
    Answered(Vec<u8>),
    Failed(ResolveError),
}

fn step_tcp(core: &mut Core, at: usize, now: Instant) {
    let Some(Some(query)) = core.names.tcp.get_mut(at) else {
        return;
    };
    let progress = advance(query, &mut core.scratch);
    let id = query.id;
    match progress {
        Progress::Waiting(interest) => {
            let token = Token(FIRST_TOKEN + at);
            if let Err(e) = core.poll.reregister(&query.stream, token, interest) {
                let error = ResolveError::Unreachable(e.to_string());
                close_tcp(core, at);
                core.work.pool.names.on_tcp_answer(id, Err(error), now);
            }
        }
        Progress::Answered(answer) => {
            close_tcp(core, at);
            core.work.pool.names.on_tcp_answer(id, Ok(&answer), now);
        }
        Progress::Failed(error) => {
            close_tcp(core, at);
            core.work.pool.names.on_tcp_answer(id, Err(error), now);
        }
    }
}

fn advance(query: &mut TcpQuery, scratch: &mut [u8]) -> Progress {
    let unreachable = |e: io::Error| Progress::Failed(ResolveError::Unreachable(e.to_string()));
    if query.connecting {
        match net::take_error(&query.stream) {
            Ok(None) => query.connecting = false,
            Ok(Some(e)) | Err(e) => return unreachable(e),
        }
    }
    while query.sent < query.out.len() {
        match net::send(&query.stream, &query.out[query.sent..]) {
            Ok(n) => query.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Progress::Waiting(Interest::WRITABLE)
            }
            Err(e) => return unreachable(e),
        }
    }
    loop {
        if query.input.len() >= 2 {
            let len = u16::from_be_bytes([query.input[0], query.input[1]]) as usize;
            if query.input.len() >= 2 + len {
                return Progress::Answered(query.input[2..2 + len].to_vec());
            }
        }
        match net::recv(&query.stream, scratch) {
            Ok(0) => {
                let why = "the server closed the connection before its answer";
                return Progress::Failed(ResolveError::BadAnswer(why));
            }
            // An answer is at most 65535 bytes and its prefix: the buffer
            // is bounded by the prefix's reading above.
            Ok(n) => {
                let room = (2 + u16::MAX as usize).saturating_sub(query.input.len());
                query.input.extend_from_slice(&scratch[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Progress::Waiting(Interest::READABLE)
            }
            Err(e) => return unreachable(e),
        }
    }
}

fn close_tcp(core: &mut Core, at: usize) {
    if let Some(query) = core.names.tcp.get_mut(at).and_then(Option::take) {
        let _ = core.poll.deregister(&query.stream);
    }
}

/// Closes TCP queries the resolver no longer waits for (their lookup timed
/// out), and the UDP socket once no lookup is under way: the next lookup
/// opens a new one, on a new random port (RFC 5452 §9.2: a port that never
/// changes leaves only the 16-bit id against a forged answer).
pub(crate) fn close_abandoned(core: &mut Core) {
    if !core.work.pool.names.is_busy() {
        if let Some(udp) = core.names.udp.take() {
            let _ = core.poll.deregister(&udp);
        }
    }
    for at in 0..core.names.tcp.len() {
        let stale = match &core.names.tcp[at] {
            Some(query) => !core.work.pool.names.awaits_tcp(query.id),
            None => false,
        };
        if stale {
            close_tcp(core, at);
        }
    }
}
