//! Two connections joined byte for byte: after an upgrade switched them
//! (an [`App`](crate::App) passed an upstream's 101 on to its client with
//! [`Context::respond_tunnel`](crate::Context::respond_tunnel)), whatever
//! one side sends goes to the other unread and unchanged, both ways, until
//! both have closed (or a drain ends it, as if both sides had broken:
//! each is written what it is owed, then closes).
//!
//! What one side sends is written straight into the other's socket from
//! the read buffer; only what that socket does not take is kept, and the
//! sending side is not read while the backlog limit or more waits (so a
//! peer that does not read stalls its sender through TCP, not the heap;
//! the read that reaches the limit may pass it by up to one read buffer,
//! 64 KiB, as a body's backlog does).
//! An end of input on one side becomes a shutdown of the other's write
//! side once what it was owed is out (a half-close passes through). When
//! one side breaks (reset, or a write refused), the other is still given
//! what that side sent before it broke, read or still in its socket (up to
//! the backlog limit more than it was owed), then
//! closes as an HTTP
//! connection does (write side shut, lingering): a reset is no reason to
//! lose the bytes read before it, such as a WebSocket's close frame. Left
//! alone, it has the HTTP idle timeout to take them, not the tunnel's. An
//! idle pair holds no buffer.

use super::connection::{Connection, Role};
use super::core::Next;
use crate::net::{self, Shutdown, TcpStream};
use crate::Interest;
use std::io;
use std::time::Instant;

/// Reads per step, so that one busy tunnel cannot starve the loop.
const READS_PER_STEP: usize = 16;

/// One side of a tunnel.
pub(crate) struct Tunnel {
    /// The other side's slot, and which connection held it.
    pub(crate) peer: usize,
    pub(crate) peer_serial: u64,
    /// Bytes from the other side that this socket has yet to take.
    out: Vec<u8>,
    /// This side's input ended.
    read_closed: bool,
    /// This side's write side is shut down (the other's input ended).
    write_closed: bool,
    /// The other side broke, or a drain ends the tunnel: this one only
    /// writes what it is still owed, and closing it no longer closes the
    /// other.
    pub(crate) alone: bool,
    /// When a byte last moved either way.
    pub(crate) last_progress: Instant,
}

impl Tunnel {
    /// One side joined to the connection at `peer`, owing this side `out`
    /// (bytes that came before the join).
    pub(crate) fn new(peer: usize, peer_serial: u64, out: Vec<u8>, now: Instant) -> Tunnel {
        Tunnel {
            peer,
            peer_serial,
            out,
            read_closed: false,
            write_closed: false,
            alone: false,
            last_progress: now,
        }
    }

    /// What this side waits for, given its peer.
    fn next(&self, peer: &Tunnel, limit: usize) -> Next {
        let read = !self.read_closed && peer.out.len() < limit;
        let write = !self.out.is_empty();
        match (read, write) {
            (true, true) => Next::Watch(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Next::Watch(Interest::READABLE),
            (false, true) => Next::Watch(Interest::WRITABLE),
            (false, false) => Next::Quiet,
        }
    }

    /// Ends the tunnel on this side (a drain): it writes what it is owed,
    /// with the time a response would be given to take it, then closes.
    pub(crate) fn leave_alone(&mut self, now: Instant) {
        self.alone = true;
        self.last_progress = now;
    }

    fn is_done(&self) -> bool {
        self.read_closed && self.out.is_empty()
    }

    /// Left alone with nothing more to write: it is to close as an HTTP
    /// connection does (write side shut, then lingering).
    pub(crate) fn is_finished_alone(&self) -> bool {
        self.alone && self.out.is_empty()
    }

    /// What a side left alone waits for: room for what it is owed, or
    /// nothing (finished; see [`is_finished_alone`](Self::is_finished_alone)).
    fn next_alone(&self) -> Next {
        match self.out.is_empty() {
            true => Next::Quiet,
            false => Next::Watch(Interest::WRITABLE),
        }
    }
}

/// Which side of a transfer broke.
enum Broken {
    /// The side being stepped.
    This,
    /// Its peer.
    Peer,
}

/// Moves bytes between the connection at `index` and its peer: what each is
/// owed is written, and (if `readable`) what `index` sends is read and
/// passed on, while the peer has less than `limit` waiting. Returns what
/// `index` waits for next, and its peer (slot and what it waits for).
pub(crate) fn step(
    slots: &mut [Option<Connection>],
    index: usize,
    readable: bool,
    now: Instant,
    scratch: &mut [u8],
    limit: usize,
) -> (Next, Option<(usize, Next)>) {
    if let Some(Some(Connection {
        stream,
        role: Role::Tunnel(t),
        ..
    })) = slots.get_mut(index)
    {
        if t.alone {
            return match flush(stream, t, false) {
                Ok(moved) => {
                    if moved {
                        t.last_progress = now;
                    }
                    (t.next_alone(), None)
                }
                Err(_) => (Next::Close, None),
            };
        }
    }
    let Some((a, b, peer)) = joined(slots, index) else {
        return (Next::Close, None);
    };
    let (Role::Tunnel(ta), Role::Tunnel(tb)) = (&mut a.role, &mut b.role) else {
        return (Next::Close, Some((peer, Next::Close)));
    };
    let moved = transfer(&a.stream, ta, &b.stream, tb, readable, scratch, limit);
    match moved {
        Ok(true) => {
            ta.last_progress = now;
            tb.last_progress = now;
        }
        Ok(false) => {}
        // A side broke: the other is left alone to write what it is owed,
        // with what the broken one sent before it broke and was not read.
        Err(broken) => {
            ta.alone = true;
            tb.alone = true;
            return match broken {
                Broken::This => {
                    salvage(&a.stream, tb, scratch, limit);
                    (Next::Close, Some((peer, tb.next_alone())))
                }
                Broken::Peer => {
                    salvage(&b.stream, ta, scratch, limit);
                    (ta.next_alone(), Some((peer, Next::Close)))
                }
            };
        }
    }
    if ta.is_done() && tb.is_done() {
        return (Next::Close, Some((peer, Next::Close)));
    }
    (ta.next(tb, limit), Some((peer, tb.next(ta, limit))))
}

/// The connection at `index`, its peer, and the peer's slot, while the
/// two are still joined.
fn joined(
    slots: &mut [Option<Connection>],
    index: usize,
) -> Option<(&mut Connection, &mut Connection, usize)> {
    let (peer, peer_serial) = match slots.get(index)? {
        Some(Connection {
            role: Role::Tunnel(t),
            ..
        }) => (t.peer, t.peer_serial),
        _ => return None,
    };
    if peer == index || peer >= slots.len() {
        return None;
    }
    let (low, high) = slots.split_at_mut(index.max(peer));
    let (first, second) = (low[index.min(peer)].as_mut()?, high[0].as_mut()?);
    let (a, b) = match index < peer {
        true => (first, second),
        false => (second, first),
    };
    (b.serial == peer_serial).then_some((a, b, peer))
}

/// Writes what each side is owed and passes on what `a` sent; whether any
/// byte moved, or which side broke.
fn transfer(
    a: &TcpStream,
    ta: &mut Tunnel,
    b: &TcpStream,
    tb: &mut Tunnel,
    readable: bool,
    scratch: &mut [u8],
    limit: usize,
) -> Result<bool, Broken> {
    let mut moved = flush(a, ta, tb.read_closed).map_err(|_| Broken::This)?;
    if readable && !ta.read_closed {
        for _ in 0..READS_PER_STEP {
            if tb.out.len() >= limit {
                break;
            }
            match net::recv(a, scratch) {
                Ok(0) => {
                    ta.read_closed = true;
                    break;
                }
                Ok(n) => {
                    moved = true;
                    pass_on(b, tb, &scratch[..n]).map_err(|_| Broken::Peer)?;
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Broken::This),
            }
        }
    }
    moved |= flush(b, tb, ta.read_closed).map_err(|_| Broken::Peer)?;
    Ok(moved)
}

/// Reads what a side that broke still holds for `to` (a reset leaves what
/// came before it readable: a write refused by a peer that sent its last
/// bytes, a WebSocket close frame say, and then reset): up to `limit` more
/// than `to` is owed already (and at most one read buffer past that),
/// which may be the limit itself (that is why the broken side was not being
/// read). Past that the rest is lost, as TCP
/// allows after a reset; the memory stays bounded.
fn salvage(from: &TcpStream, to: &mut Tunnel, scratch: &mut [u8], limit: usize) {
    let cap = to.out.len().saturating_add(limit);
    while to.out.len() < cap {
        match net::recv(from, scratch) {
            Ok(0) => break,
            Ok(n) => to.out.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// Sends `data` to `to` now, keeping what its socket does not take.
fn pass_on(to: &TcpStream, t: &mut Tunnel, data: &[u8]) -> io::Result<()> {
    let mut rest = data;
    while t.out.is_empty() && !rest.is_empty() {
        match net::send(to, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    t.out.extend_from_slice(rest);
    Ok(())
}

/// Writes what `t`'s socket is owed; once all is out and the other side's
/// input has ended, shuts the write side down. Whether any byte went.
fn flush(stream: &TcpStream, t: &mut Tunnel, other_ended: bool) -> io::Result<bool> {
    let mut sent = 0;
    while sent < t.out.len() {
        match net::send(stream, &t.out[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    match sent == t.out.len() {
        // All out: an idle side keeps no buffer.
        true => t.out = Vec::new(),
        false => drop(t.out.drain(..sent)),
    }
    if t.out.is_empty() && other_ended && !t.write_closed {
        t.write_closed = true;
        stream.shutdown(Shutdown::Write)?;
    }
    Ok(sent > 0)
}

#[cfg(test)]
mod tests {
    use super::super::test_pair::pair;
    use super::*;
    use std::time::Duration;

    /// The side in slot `1 - peer` (serial: its slot + 1) of a tunnel
    /// between slots 0 and 1.
    fn side(stream: TcpStream, peer: usize, out: Vec<u8>) -> Option<Connection> {
        let now = Instant::now();
        let serial = peer as u64 + 1;
        Some(Connection {
            stream,
            peer: "127.0.0.1:1".parse().expect("an address"),
            serial: 2 - peer as u64,
            interest: None,
            linger_until: None,
            touched: false,
            role: Role::Tunnel(Box::new(Tunnel::new(peer, serial, out, now))),
        })
    }

    /// One side resets while the other is owed more than its socket takes
    /// (its reader is slow): the one left still writes all it was owed,
    /// then is finished. (Both closed at once, and the bytes were lost.)
    #[test]
    fn when_one_side_breaks_the_other_still_gets_what_it_was_owed() {
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let (a, a_far) = pair(&listener);
        let (b, b_far) = pair(&listener);
        let owed: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        // A close with input unread is a reset: a's next write fails.
        assert_eq!(net::send(&a, b"x").ok(), Some(1));
        std::thread::sleep(Duration::from_millis(50));
        drop(a_far);
        std::thread::sleep(Duration::from_millis(50));
        let mut slots = vec![side(a, 1, b"to a".to_vec()), side(b, 0, owed.clone())];
        let (now, mut scratch) = (Instant::now(), vec![0u8; 64 * 1024]);
        let (next, peer) = step(&mut slots, 0, true, now, &mut scratch, 16 << 20);
        assert!(
            next == Next::Close,
            "the side that broke closes: {next:?} {peer:?}"
        );
        let left = peer.map(|(at, next)| (at, next == Next::Watch(Interest::WRITABLE)));
        assert_eq!(left, Some((1, true)), "the other is left to write");
        slots[0] = None;
        b_far.set_nonblocking(true).expect("non-blocking");
        let (mut got, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(60));
        let mut finished = false;
        while got.len() < owed.len() || !finished {
            assert!(
                Instant::now() < deadline,
                "{} of {} bytes",
                got.len(),
                owed.len()
            );
            let (next, peer) = step(&mut slots, 1, false, now, &mut scratch, 16 << 20);
            assert!(peer.is_none() && next != Next::Close);
            finished = next == Next::Quiet;
            loop {
                match net::recv(&b_far, &mut scratch) {
                    Ok(n) if n > 0 => got.extend_from_slice(&scratch[..n]),
                    Ok(_) => panic!("closed after {} bytes", got.len()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        assert!(got == owed, "every byte owed, in order");
        let Some(Some(Connection {
            role: Role::Tunnel(t),
            ..
        })) = slots.get(1)
        else {
            panic!("the side left is gone")
        };
        assert!(t.is_finished_alone());
    }

    /// Side `a`'s far end says its last word and resets (a close with
    /// input unread) while `b` is owed "owed; "; `a` is stepped with no
    /// readable event, so the write of what it is owed fails first. The
    /// slots after, what `a` waits for next, and `b`'s far end.
    fn a_resets_after_its_last_word(
        limit: usize,
        scratch: &mut [u8],
    ) -> (Vec<Option<Connection>>, Next, TcpStream) {
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let (a, a_far) = pair(&listener);
        let (b, b_far) = pair(&listener);
        assert_eq!(net::send(&a_far, b"last word").ok(), Some(9));
        assert_eq!(net::send(&a, b"x").ok(), Some(1));
        std::thread::sleep(Duration::from_millis(50));
        drop(a_far);
        std::thread::sleep(Duration::from_millis(50));
        let mut slots = vec![side(a, 1, b"to a".to_vec()), side(b, 0, b"owed; ".to_vec())];
        let (next, _) = step(&mut slots, 0, false, Instant::now(), scratch, limit);
        (slots, next, b_far)
    }

    /// The same while the other side is owed as much as the backlog limit
    /// (which is why the broken side was not being read): what the broken
    /// side holds is taken all the same, up to the limit more. (Nothing was
    /// taken, and the last word was lost.)
    #[test]
    fn what_a_broken_side_holds_is_taken_though_the_other_is_owed_the_limit() {
        let mut scratch = vec![0u8; 64 * 1024];
        let (slots, next, _b_far) = a_resets_after_its_last_word(6, &mut scratch);
        assert!(next == Next::Close, "{next:?}");
        let Some(Some(Connection {
            role: Role::Tunnel(t),
            ..
        })) = slots.get(1)
        else {
            panic!("the side left is gone")
        };
        assert_eq!(String::from_utf8_lossy(&t.out), "owed; last word");
    }

    /// A side whose write is refused (its peer reset) still had bytes in its
    /// socket from before the reset, unread: they reach the other side,
    /// after what it was already owed.
    #[test]
    fn what_a_side_sent_before_its_reset_reaches_the_other_though_unread() {
        let mut scratch = vec![0u8; 64 * 1024];
        let (mut slots, next, b_far) = a_resets_after_its_last_word(16 << 20, &mut scratch);
        assert!(next == Next::Close, "{next:?}");
        slots[0] = None;
        b_far.set_nonblocking(true).expect("non-blocking");
        let now = Instant::now();
        let (mut got, deadline) = (Vec::new(), now + Duration::from_secs(60));
        while got != b"owed; last word" {
            assert!(
                Instant::now() < deadline,
                "got {:?}",
                String::from_utf8_lossy(&got)
            );
            let (next, _) = step(&mut slots, 1, false, now, &mut scratch, 16 << 20);
            assert!(next != Next::Close);
            match net::recv(&b_far, &mut scratch) {
                Ok(n) if n > 0 => got.extend_from_slice(&scratch[..n]),
                Ok(_) => panic!("closed after {:?}", String::from_utf8_lossy(&got)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}
