//! The resolver's sockets ([`crate::dns`]): a UDP socket connected to the
//! DNS server per lookup under way (so that each lookup's queries leave
//! from a port of their own, chosen at random by the system: RFC 5452
//! §9.2), closed when the lookup ends or needs no more datagrams, and a
//! TCP connection per query whose answer was truncated. They wait on the
//! loop's `Poll` beside the connections, under tokens of their own at the
//! top of the range; the UDP ones are pinned (in every call while their
//! lookup lasts: a burst of lookups briefly costs WasmEdge's calls one
//! `epoll_ctl` more each). The resolver's state is the pool's
//! (`Pool::names`); this only moves bytes.

use super::Core;
use crate::dns::{ResolveError, MAX_PENDING};
use crate::net::{self, TcpStream, UdpSocket};
use crate::{Interest, Token};
use std::io;
use std::time::Instant;

/// At most this many queries over TCP at once; more fail at once.
const MAX_TCP: usize = 32;
/// One UDP socket per lookup: as many as lookups may be under way.
const MAX_UDP: usize = MAX_PENDING;
/// Tokens from here up are the resolver's (the listener's is the last):
/// the TCP queries', then the UDP sockets'.
pub(crate) const FIRST_TOKEN: usize = usize::MAX - 1 - MAX_TCP - MAX_UDP;
const FIRST_UDP_TOKEN: usize = FIRST_TOKEN + MAX_TCP;

#[derive(Default)]
pub(crate) struct NameSockets {
    udp: Vec<Option<UdpLookup>>,
    tcp: Vec<Option<TcpQuery>>,
}

/// The socket of one lookup's datagrams ([`crate::dns::Resolver::tag_of`]).
struct UdpLookup {
    socket: UdpSocket,
    tag: u16,
    /// The poll round it was opened in (see [`on_event`]).
    round: u64,
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
    /// The poll round it was opened in (see [`on_event`]).
    round: u64,
}

impl NameSockets {
    /// Whether `token` is one of the resolver's.
    pub(crate) fn owns(token: Token) -> bool {
        token.0 >= FIRST_TOKEN && token.0 < usize::MAX
    }

    /// The slot of lookup `tag`'s UDP socket, if it is open.
    fn udp_of(&self, tag: u16) -> Option<usize> {
        self.udp
            .iter()
            .position(|u| matches!(u, Some(u) if u.tag == tag))
    }
}

/// Closes the sockets of lookups that ended, sends what the resolver
/// queued and starts the TCP queries it asked for.
pub(crate) fn flush(core: &mut Core, now: Instant) {
    close_ended(core);
    let names = &mut core.work.pool.names;
    let Some(server) = names.server() else {
        names.datagrams.clear();
        names.over_tcp.clear();
        return;
    };
    if !names.datagrams.is_empty() {
        let datagrams = std::mem::take(&mut names.datagrams);
        send_datagrams(core, server, &datagrams, now);
        // Lookups that failed to open their socket.
        close_ended(core);
    }
    for (id, query) in std::mem::take(&mut core.work.pool.names.over_tcp) {
        if let Err(e) = start_tcp(core, server, id, &query) {
            let error = unreachable_over_tcp(core, e);
            core.work.pool.names.on_tcp_answer(id, Err(error), now);
        }
    }
}

/// Closes the sockets of the lookups that ended since the last call.
fn close_ended(core: &mut Core) {
    for tag in std::mem::take(&mut core.work.pool.names.ended_tags) {
        if let Some(at) = core.names.udp_of(tag) {
            close_udp(core, at);
        }
    }
}

/// Sends each datagram from its lookup's socket, opened on its first. A
/// lookup whose socket cannot be opened ends alone; an error sending (the
/// server unreachable) closes the socket, and the resolver decides (see
/// `Resolver::on_socket_error`), as for one from reading.
fn send_datagrams(core: &mut Core, server: net::SocketAddr, datagrams: &[Vec<u8>], now: Instant) {
    for datagram in datagrams {
        let names = &core.work.pool.names;
        // A query of a lookup that ended since it was queued: not sent.
        let Some(tag) = crate::dns::id_of(datagram).and_then(|id| names.tag_of(id)) else {
            continue;
        };
        let at = match core.names.udp_of(tag) {
            Some(at) => at,
            None => match open_udp(core, server, tag) {
                Ok(at) => at,
                Err(e) => {
                    let error = ResolveError::Unreachable(format!("{server}: {e}"));
                    core.work.pool.names.on_lookup_error(tag, error, now);
                    continue;
                }
            },
        };
        let Some(Some(lookup)) = core.names.udp.get(at) else {
            continue;
        };
        match lookup.socket.send(datagram) {
            Ok(_) => {}
            // Resent at the resolver's next turn.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                let error = ResolveError::Unreachable(format!("{server}: {e}"));
                core.work.pool.names.on_socket_error(tag, error, now);
                close_udp(core, at);
            }
        }
    }
}

/// Opens the socket of lookup `tag`, in a free slot: its index.
fn open_udp(core: &mut Core, server: net::SocketAddr, tag: u16) -> io::Result<usize> {
    // The resolver keeps at most MAX_PENDING lookups under way, and the
    // sockets of those that ended are closed first: a slot is free.
    let at = free_slot(&mut core.names.udp, MAX_UDP, "too many lookups at once")?;
    let socket = UdpSocket::connect(server)?;
    core.poll
        .register(&socket, Token(FIRST_UDP_TOKEN + at), Interest::READABLE)?;
    // Answers never wait for a full poll (as the listener's accepts).
    if let Err(e) = core.poll.pin(&socket) {
        let _ = core.poll.deregister(&socket);
        return Err(e);
    }
    core.names.udp[at] = Some(UdpLookup {
        socket,
        tag,
        round: core.round,
    });
    Ok(at)
}

/// The index of a free slot in `slots`, which grows up to `max`.
fn free_slot<T>(slots: &mut Vec<Option<T>>, max: usize, full: &str) -> io::Result<usize> {
    if let Some(at) = slots.iter().position(Option::is_none) {
        return Ok(at);
    }
    if slots.len() >= max {
        return Err(io::Error::other(full.to_string()));
    }
    slots.push(None);
    Ok(slots.len() - 1)
}

fn close_udp(core: &mut Core, at: usize) {
    if let Some(lookup) = core.names.udp.get_mut(at).and_then(Option::take) {
        let _ = core.poll.deregister(&lookup.socket);
    }
}

fn start_tcp(core: &mut Core, server: net::SocketAddr, id: u16, query: &[u8]) -> io::Result<()> {
    let at = free_slot(
        &mut core.names.tcp,
        MAX_TCP,
        "too many queries over TCP at once",
    )?;
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
        round: core.round,
    });
    Ok(())
}

/// A readiness event for one of the resolver's sockets.
/// A DNS socket's event; `error`: the errno it came with (0: none), which
/// the poll took from the socket (see `Poll`'s pending errors).
pub(crate) fn on_event(core: &mut Core, token: Token, error: u16, now: Instant) {
    // A socket opened in this round was not in the poll that gave the
    // round's events: one for its slot was its predecessor's (closed
    // since), whose error would fail this one's lookup.
    let opened = match token.0.checked_sub(FIRST_UDP_TOKEN) {
        Some(at) => core
            .names
            .udp
            .get(at)
            .and_then(Option::as_ref)
            .map(|u| u.round),
        None => {
            let at = token.0 - FIRST_TOKEN;
            core.names
                .tcp
                .get(at)
                .and_then(Option::as_ref)
                .map(|t| t.round)
        }
    };
    if opened == Some(core.round) {
        return;
    }
    if token.0 >= FIRST_UDP_TOKEN {
        let at = token.0 - FIRST_UDP_TOKEN;
        read_datagrams(core, at, error, now);
        // Answered (or failed): the lookup's port is given up at once,
        // also when its other query went over to TCP.
        close_ended(core);
        if let Some(Some(lookup)) = core.names.udp.get(at) {
            if !core.work.pool.names.awaits_datagram(lookup.tag) {
                close_udp(core, at);
            }
        }
    } else {
        step_tcp(core, token.0 - FIRST_TOKEN, error, now);
    }
    core.work.pool.take_resolved(now);
}

fn read_datagrams(core: &mut Core, at: usize, error: u16, now: Instant) {
    let Some(Some(lookup)) = core.names.udp.get(at) else {
        return;
    };
    let mut error = error;
    // A few at most each time: the socket takes datagrams from the server
    // alone, but one that floods it must not keep the loop here (what is
    // left wakes the next poll).
    for _ in 0..16 {
        // The event's error once, in place of the first read.
        let received = match std::mem::take(&mut error) {
            0 => lookup.socket.recv(&mut core.scratch),
            errno => Err(io::Error::from_raw_os_error(i32::from(errno))),
        };
        match received {
            Ok(n) => {
                let tag = lookup.tag;
                let names = &mut core.work.pool.names;
                names.on_datagram_for(tag, &core.scratch[..n], now);
                if !names.awaits_datagram(tag) {
                    // Answered: the rest is not read (the socket closes).
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Nothing listens at the server's port (an ICMP error
                // came back), or the socket broke.
                let server = core.work.pool.names.server();
                let why = match server {
                    Some(server) => format!("{server}: {e}"),
                    None => e.to_string(),
                };
                let tag = lookup.tag;
                core.work
                    .pool
                    .names
                    .on_socket_error(tag, ResolveError::Unreachable(why), now);
                close_ended(core);
                close_udp(core, at);
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
    /// The connection to the server failed.
    Broken(io::Error),
}

/// The server could not be reached over TCP: named, as its failures over
/// UDP are.
fn unreachable_over_tcp(core: &Core, e: io::Error) -> ResolveError {
    match core.work.pool.names.server() {
        Some(server) => ResolveError::Unreachable(format!("{server} over TCP: {e}")),
        None => ResolveError::Unreachable(format!("over TCP: {e}")),
    }
}

/// Moves a TCP query on; `error` is the event's (a peek may have taken it
/// from the socket, where `take_error` would no longer find it).
fn step_tcp(core: &mut Core, at: usize, error: u16, now: Instant) {
    let Some(Some(query)) = core.names.tcp.get_mut(at) else {
        return;
    };
    let mut progress = match error {
        0 => advance(query, &mut core.scratch),
        errno => Progress::Broken(io::Error::from_raw_os_error(i32::from(errno))),
    };
    let id = query.id;
    if let Progress::Waiting(interest) = progress {
        let token = Token(FIRST_TOKEN + at);
        match core.poll.reregister(&query.stream, token, interest) {
            Ok(()) => return,
            Err(e) => progress = Progress::Broken(e),
        }
    }
    let failed = match progress {
        Progress::Waiting(_) => return,
        Progress::Answered(answer) => {
            close_tcp(core, at);
            return core.work.pool.names.on_tcp_answer(id, Ok(&answer), now);
        }
        Progress::Failed(error) => error,
        Progress::Broken(e) => unreachable_over_tcp(core, e),
    };
    close_tcp(core, at);
    core.work.pool.names.on_tcp_answer(id, Err(failed), now);
}

fn advance(query: &mut TcpQuery, scratch: &mut [u8]) -> Progress {
    let unreachable = Progress::Broken;
    if query.connecting {
        match net::take_error(&query.stream) {
            Ok(None) => query.connecting = false,
            Ok(Some(e)) | Err(e) => return unreachable(e),
        }
    }
    while query.sent < query.out.len() {
        match net::send(&query.stream, &query.out[query.sent..]) {
            // Nothing taken from a non-empty write: it would spin.
            Ok(0) => return unreachable(io::Error::from(io::ErrorKind::WriteZero)),
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
            if len > crate::dns::MAX_ANSWER_BYTES {
                return Progress::Failed(ResolveError::BadAnswer("answer over 16 KiB"));
            }
            if query.input.len() >= 2 + len {
                return Progress::Answered(query.input[2..2 + len].to_vec());
            }
        }
        match net::recv(&query.stream, scratch) {
            Ok(0) => {
                let why = "the server closed the connection before its answer";
                return Progress::Failed(ResolveError::BadAnswer(why));
            }
            // An answer read is at most MAX_ANSWER_BYTES and its prefix:
            // the buffer is bounded by the prefix's reading above.
            Ok(n) => {
                let room = (2 + crate::dns::MAX_ANSWER_BYTES).saturating_sub(query.input.len());
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

/// Closes the sockets of lookups that ended (timed out) and the TCP
/// queries the resolver no longer waits for (their lookup timed out). A
/// lookup that goes over to TCP does so on reading its socket, whose event
/// closes it ([`on_event`]).
pub(crate) fn close_abandoned(core: &mut Core) {
    close_ended(core);
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
