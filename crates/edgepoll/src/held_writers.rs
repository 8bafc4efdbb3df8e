//! Sockets waiting to write whose peer has shut down its sending side, held
//! out of the runtime's calls and woken by a timer instead.
//!
//! WasmEdge 0.14 asks epoll for `EPOLLRDHUP` with every write subscription.
//! Once the peer's FIN has arrived, a socket whose send buffer is full wakes
//! `epoll_wait` with `EPOLLRDHUP` alone, which WasmEdge maps to no WASI event:
//! `poll_oneoff` returns at once with nothing (unless something else is
//! ready), every call, until the buffer drains. Left in the calls, such a
//! socket turns the loop into a busy one (a client that sends a large
//! request, half-closes and reads its response slowly, or never, burned a
//! whole core). `Poll` notices a call that returns no event at all, peeks
//! at that call's sockets waiting only to write, and holds here those whose
//! receive queue shows the FIN; if none does, those with unread bytes (a
//! FIN may wait behind them, unseen), which may be innocent: a held socket
//! is written at most a send buffer's worth per retry until its hold ends.
//! Held, a socket is out of the calls and reported writable every
//! [`RETRY`] so that its owner tries again. A hold ends when its owner
//! wants to read it too or deregisters it, or when it is found closed.

use crate::Token;
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// How often a held socket is reported writable. Shorter drains a slow
/// reader's buffer sooner (a send buffer's worth per retry); longer costs
/// less while nobody reads: at 10 ms, the echo server waiting on a client
/// that never reads used 1% of a core (it burned all of one before), and
/// all held sockets share the same wake-ups, which are partial calls when
/// many registrations are quiet.
pub(crate) const RETRY: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Held {
    token: Token,
    due: Instant,
}

/// The held sockets, by descriptor: usually none or a few, but as many as
/// the clients that half-close and read slowly, and every registration
/// change asks whether its socket is held.
#[derive(Debug, Default)]
pub(crate) struct HeldWriters {
    held: FxHashMap<u32, Held>,
}

impl HeldWriters {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(crate) fn contains(&self, fd: u32) -> bool {
        self.held.contains_key(&fd)
    }

    /// Holds `fd` (its events carry `token`): first reported writable at
    /// `now + RETRY`.
    pub(crate) fn hold(&mut self, fd: u32, token: Token, now: Instant) {
        let due = now + RETRY;
        self.held.insert(fd, Held { token, due });
    }

    /// Changes the token of held `fd`; false if it is not held.
    pub(crate) fn retoken(&mut self, fd: u32, token: Token) -> bool {
        match self.held.get_mut(&fd) {
            Some(held) => {
                held.token = token;
                true
            }
            None => false,
        }
    }

    /// Ends the hold of `fd`; whether it was held.
    pub(crate) fn release(&mut self, fd: u32) -> bool {
        self.held.remove(&fd).is_some()
    }

    /// When the next held socket is to be reported.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|h| h.due).min()
    }

    /// Calls `report` with the descriptor and token of each socket due by
    /// `now` (in no particular order) and schedules its next report; one
    /// for which `report` returns false is released.
    pub(crate) fn take_due(&mut self, now: Instant, mut report: impl FnMut(u32, Token) -> bool) {
        self.held.retain(|&fd, held| {
            if held.due > now {
                return true;
            }
            held.due = now + RETRY;
            report(fd, held.token)
        });
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
        held.take_due(start + RETRY / 4, |_, t| {
            seen.push(t);
            true
        });
        assert!(seen.is_empty(), "reported before its time: {seen:?}");
        held.take_due(start + RETRY, |_, t| {
            seen.push(t);
            true
        });
        assert_eq!(seen, [Token(1)]);
        // Next due: the second one, then the first again a retry later.
        assert_eq!(held.next_due(), Some(start + RETRY / 2 + RETRY));

        assert!(held.retoken(9, Token(5)) && !held.retoken(8, Token(5)));
        seen.clear();
        held.take_due(start + 2 * RETRY, |_, t| {
            seen.push(t);
            true
        });
        seen.sort_by_key(|t| t.0);
        assert_eq!(seen, [Token(1), Token(5)]);

        assert!(held.release(7) && !held.release(7));
        assert!(!held.contains(7) && held.contains(9));
        // Held again: one entry, with the new token.
        held.hold(9, Token(6), start + 2 * RETRY);
        seen.clear();
        held.take_due(start + 4 * RETRY, |fd, t| {
            seen.push(t);
            fd != 9
        });
        // Reported one last time, then released (its socket was closed).
        assert_eq!(seen, [Token(6)]);
        assert!(held.is_empty() && !held.release(9));
    }
}
