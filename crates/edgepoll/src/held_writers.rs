//! Sockets waiting to write whose peer has shut down its sending side, held
//! out of the runtime's calls and woken by a timer instead.
//!
//! WasmEdge 0.14 asks epoll for `EPOLLRDHUP` with every write subscription.
//! Once the peer's FIN has arrived, a socket whose send buffer is full wakes
//! `epoll_wait` with `EPOLLRDHUP` alone, which WasmEdge maps to no WASI event:
//! `poll_oneoff` returns at once with nothing, every call, until the buffer
//! drains. Left in the calls, such a socket turns the loop into a busy one
//! (a client that sends a large request, half-closes and reads its response
//! slowly, or never, burned a whole core). `Poll` notices the empty return,
//! finds the sockets whose receive queue shows the FIN (or bytes that may
//! hide one), and holds them here: out of the calls, each reported writable
//! every [`RETRY`] so that its owner tries again. A hold ends when its owner
//! wants to read it too or deregisters it.

use crate::Token;
use std::time::{Duration, Instant};

/// How often a held socket is reported writable. Shorter drains a slow
/// reader's buffer sooner (a socket buffer's worth, hundreds of KiB, per
/// retry); longer costs less while nobody reads: at 10 ms a held socket
/// whose peer never reads costs about 1% of a core, and all held ones share
/// the same wake-ups.
pub(crate) const RETRY: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Held {
    fd: u32,
    token: Token,
    due: Instant,
}

/// The held sockets (a handful at most: a linear search is the fastest).
#[derive(Debug, Default)]
pub(crate) struct HeldWriters {
    held: Vec<Held>,
}

impl HeldWriters {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(crate) fn contains(&self, fd: u32) -> bool {
        self.held.iter().any(|h| h.fd == fd)
    }

    /// Holds `fd` (its events carry `token`): first reported writable at
    /// `now + RETRY`.
    pub(crate) fn hold(&mut self, fd: u32, token: Token, now: Instant) {
        self.release(fd);
        self.held.push(Held {
            fd,
            token,
            due: now + RETRY,
        });
    }

    /// Changes the token of held `fd`; false if it is not held.
    pub(crate) fn retoken(&mut self, fd: u32, token: Token) -> bool {
        match self.held.iter_mut().find(|h| h.fd == fd) {
            Some(held) => {
                held.token = token;
                true
            }
            None => false,
        }
    }

    /// Ends the hold of `fd`; whether it was held.
    pub(crate) fn release(&mut self, fd: u32) -> bool {
        let before = self.held.len();
        self.held.retain(|h| h.fd != fd);
        self.held.len() != before
    }

    /// When the next held socket is to be reported.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.due).min()
    }

    /// Calls `report` with the token of each socket due by `now`, and
    /// schedules its next report.
    pub(crate) fn take_due(&mut self, now: Instant, mut report: impl FnMut(Token)) {
        for held in &mut self.held {
            if held.due <= now {
                report(held.token);
                held.due = now + RETRY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_sockets_are_reported_each_retry_until_released() {
        let start = Instant::now();
        let mut held = HeldWriters::default();
        assert!(held.is_empty() && held.next_due().is_none());
        held.hold(7, Token(1), start);
        held.hold(9, Token(2), start + RETRY / 2);
        assert!(held.contains(7) && held.contains(9) && !held.contains(8));
        assert_eq!(held.next_due(), Some(start + RETRY));

        let mut seen = Vec::new();
        held.take_due(start + RETRY / 4, |t| seen.push(t));
        assert!(seen.is_empty(), "reported before its time: {seen:?}");
        held.take_due(start + RETRY, |t| seen.push(t));
        assert_eq!(seen, [Token(1)]);
        // Next due: the second one, then the first again a retry later.
        assert_eq!(held.next_due(), Some(start + RETRY / 2 + RETRY));

        assert!(held.retoken(9, Token(5)) && !held.retoken(8, Token(5)));
        seen.clear();
        held.take_due(start + 2 * RETRY, |t| seen.push(t));
        assert_eq!(seen, [Token(1), Token(5)]);

        assert!(held.release(7) && !held.release(7));
        assert!(!held.contains(7) && held.contains(9));
        // Held again: one entry, with the new token.
        held.hold(9, Token(6), start + 2 * RETRY);
        seen.clear();
        held.take_due(start + 4 * RETRY, |t| seen.push(t));
        assert_eq!(seen, [Token(6)]);
        assert!(held.release(9) && held.is_empty());
    }
}
