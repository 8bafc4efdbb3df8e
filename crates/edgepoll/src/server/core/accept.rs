//! Taking connections from the listener, and making room when descriptors
//! run out.

use super::{Core, LISTENER};
use crate::http::Handler;
use crate::net::{self, TcpListener};
use crate::server::connection::{Connection, Role};
use crate::Interest;
use std::io;
use std::time::{Duration, Instant};

impl Core {
    /// The listener is pinned: new connections never wait for a full poll.
    pub(super) fn watch_listener(&mut self, listener: &TcpListener) -> io::Result<()> {
        self.poll.register(listener, LISTENER, Interest::READABLE)?;
        self.poll.pin(listener)
    }

    /// Takes the connections waiting on the listener, at most
    /// `ACCEPTS_PER_EVENT` of them: the listener stays readable while more
    /// wait, so the rest come at the next poll, after the connections
    /// already open have had their turn (a flood of connects would
    /// otherwise keep them waiting).
    pub(super) fn accept_all(&mut self, listener: &TcpListener, now: Instant) -> io::Result<()> {
        // Room is made once per call: when what one shed freed is not
        // enough (or was taken elsewhere, or the whole system is out), the
        // accepts pause rather than close connection after connection.
        let mut shed_once = false;
        for _ in 0..ACCEPTS_PER_EVENT {
            match net::accept(listener) {
                Ok((stream, peer)) => {
                    let local = net::local_addr(&stream).ok();
                    let mut handler = Handler::new(self.options.limits.clone(), now);
                    handler.set_addresses(Some(peer), local);
                    // On failure the stream is dropped: the client sees a
                    // close, the server goes on.
                    let role = Role::Http(handler);
                    if let Err(e) = self.add(stream, peer, Interest::READABLE, role) {
                        if let Some(untold) = self.not_taken_told.tell(now) {
                            (self.options.log)(&format!(
                                "edgepoll: {peer}: not taken: {e}{}",
                                since(untold, "more not taken")
                            ));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The peer gave up before we accepted: nothing to serve.
                Err(e) if is_transient(&e) => {
                    // One that failed its set-up calls is said, so that a
                    // runtime failing every one does not go unnoticed.
                    if e.get_ref().is_some() {
                        (self.options.log)(&format!(
                            "edgepoll: a connection could not be set up ({e}); dropped"
                        ));
                    }
                    continue;
                }
                // Shut down (by a supervisor stopping the service): serve
                // what was accepted, then end.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    let _ = self.poll.deregister(listener);
                    self.drain(now, "the listener was shut down");
                    return Ok(());
                }
                Err(e) => {
                    // Out of descriptors: the quietest keep-alive connections
                    // make room, as nginx's reusable ones do, so that idle
                    // connections (or a peer opening them by the thousand)
                    // cannot keep new clients out until their idle timeout.
                    if is_out_of_descriptors(&e) && !shed_once {
                        shed_once = true;
                        let shed = self.shed_idle(now);
                        if shed > 0 {
                            (self.options.log)(&format!(
                                "edgepoll: accept failed ({e}); closed {shed} idle keep-alive connections"
                            ));
                            continue;
                        }
                    }
                    // Out of descriptors with none to spare, or worse. The
                    // listener stays readable while connections wait, so stop
                    // watching it for a moment instead of spinning.
                    // (A pause of nothing would be that spin.)
                    let pause = self.options.accept_backoff.max(Duration::from_millis(10));
                    // Paced: out of descriptors for minutes (WebSockets
                    // are never shed) made ten lines a second.
                    if let Some(untold) = self.pause_told.tell(now) {
                        (self.options.log)(&format!(
                            "edgepoll: accept failed ({e}); pausing accepts for {pause:?}{}",
                            since(untold, "more pauses")
                        ));
                    }
                    self.poll.deregister(listener)?;
                    self.accept_paused_until = Some(now + pause);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Closes up to `SHED_AT_ONCE` HTTP connections that are between
    /// requests ([`Handler::is_between_requests`]), the longest quiet
    /// first; returns how many. Not those active in this round (accepted
    /// or answered just now: a request may be on its way). A scan of every
    /// slot, made only when descriptors run out.
    fn shed_idle(&mut self, now: Instant) -> usize {
        let mut quiet: Vec<(Instant, usize)> = (self.slots.iter().enumerate())
            .filter_map(|(index, conn)| match conn {
                Some(Connection {
                    role: Role::Http(handler),
                    linger_until: None,
                    ..
                }) if handler.is_between_requests() && handler.last_progress() < now => {
                    Some((handler.last_progress(), index))
                }
                _ => None,
            })
            .collect();
        quiet.sort_unstable();
        quiet.truncate(SHED_AT_ONCE);
        for &(_, index) in &quiet {
            self.close(index, now);
        }
        quiet.len()
    }
}

/// The most connections the loop accepts for one readiness of its
/// listener, as a burst's share beside the connections already open.
const ACCEPTS_PER_EVENT: usize = 128;

/// The most idle connections closed at once when descriptors run out
/// (nginx closes as many of its reusable ones).
const SHED_AT_ONCE: usize = 32;

/// EMFILE (WASI 33) or ENFILE (41): the process or the system is out of
/// descriptors.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(33 | 41))
}

/// An accept error of the one connection it would have handed over, not of
/// the listener: the next may be accepted at once. Besides an abort or a
/// reset, the network errors Linux's accept(2) passes on from the new
/// socket, which it asks to be retried as EAGAIN is: WASI's ENETDOWN (38),
/// EPROTO (65), ENOPROTOOPT (50), EHOSTUNREACH (23), ENETUNREACH (40),
/// ENOTSUP (58) and EPERM (63, a firewall's). Each takes one connection
/// from the queue, so retrying them cannot spin.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23 | 38 | 40 | 50 | 58 | 63 | 65))
}

/// A kind of log line said at most every `TOLD_EVERY`, those between
/// counted in the next: what happens once per connection or per pause
/// while the process is short of descriptors or memory would flood the log.
#[derive(Debug, Default)]
pub(super) struct Paced {
    last: Option<Instant>,
    untold: u32,
}

impl Paced {
    /// How many went untold since the last line, when one may be said now;
    /// else `None`, and this one is counted.
    fn tell(&mut self, now: Instant) -> Option<u32> {
        match self.last {
            Some(at) if now < at + TOLD_EVERY => {
                self.untold = self.untold.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.untold))
            }
        }
    }
}

/// The least time between two lines of one [`Paced`] kind.
const TOLD_EVERY: Duration = Duration::from_secs(10);

/// ` (N WHAT since the last such line)`, or nothing for none.
fn since(untold: u32, what: &str) -> String {
    match untold {
        0 => String::new(),
        n => format!(" ({n} {what} since the last such line)"),
    }
}
