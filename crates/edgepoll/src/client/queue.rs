//! Exchanges waiting for a connection: a line per origin, in order of
//! arrival (a retry goes first), each exchange found by its id in one step.
//!
//! Why not one list: a burst of clients leaving a stalled upstream removed
//! each of its exchanges from the middle of a list thousands long (n² in
//! all), and every arrival for a healthy origin was checked after all of a
//! saturated origin's waiting exchanges. Here a departure leaves its id
//! behind in its line, skipped and later dropped, and only origins whose
//! line may move (see [`Queue::stir`]) are looked at.

use super::pool::{Exchange, Origin};
use super::ExchangeId;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// Which of an origin's waiting exchanges may take a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eligible {
    /// The first in line (there is room for a new connection).
    First,
    /// The first that is not a retry (only an idle connection is free, and
    /// a retry must go on a new one).
    FirstFresh,
}

impl Eligible {
    fn allows(self, exchange: &Exchange) -> bool {
        self == Eligible::First || !exchange.retried
    }
}

/// The waiting exchanges of every origin.
#[derive(Default)]
pub(crate) struct Queue {
    /// The one waiting exchange, while no other waits. Most exchanges
    /// place as soon as they come: this spares them the lines' hashing
    /// (a thousand Wasm instructions of a proxied request's 33 000).
    lone: Option<Exchange>,
    /// The waiting exchanges, when more than one waits (`lone` is `None`).
    waiting: FxHashMap<ExchangeId, Exchange>,
    /// Each origin's ids in order. An id no longer in `waiting` left the
    /// line early (cancelled or expired): it is skipped, and dropped once it
    /// reaches the front or such ids outnumber the waiting exchanges.
    lines: FxHashMap<Origin, Line>,
    /// Ids in all lines, departed ones included.
    ids_in_lines: usize,
    /// Origins whose line may move, to be looked at in this order.
    stirred: VecDeque<Origin>,
}

#[derive(Default)]
struct Line {
    ids: VecDeque<ExchangeId>,
    /// Listed in `stirred` already.
    stirred: bool,
}

impl Queue {
    pub(crate) fn is_empty(&self) -> bool {
        self.lone.is_none() && self.waiting.is_empty()
    }

    /// The waiting exchanges, in no particular order.
    pub(crate) fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.lone.iter().chain(self.waiting.values())
    }

    /// Adds `exchange` at the end of its origin's line, or at the front.
    pub(crate) fn push(&mut self, exchange: Exchange, front: bool) {
        if self.is_empty() {
            self.lone = Some(exchange);
            return;
        }
        // It came first: in line before the new one (unless that is a retry).
        if let Some(lone) = self.lone.take() {
            self.line_up(lone, false);
        }
        self.line_up(exchange, front);
    }

    fn line_up(&mut self, exchange: Exchange, front: bool) {
        let line = self.lines.entry(exchange.origin.clone()).or_default();
        match front {
            true => line.ids.push_front(exchange.id),
            false => line.ids.push_back(exchange.id),
        }
        self.ids_in_lines += 1;
        if !line.stirred {
            line.stirred = true;
            self.stirred.push_back(exchange.origin.clone());
        }
        self.waiting.insert(exchange.id, exchange);
        self.drop_departed_if_many();
    }

    pub(crate) fn get_mut(&mut self, id: ExchangeId) -> Option<&mut Exchange> {
        match &mut self.lone {
            Some(lone) if lone.id == id => Some(lone),
            _ => self.waiting.get_mut(&id),
        }
    }

    /// Takes exchange `id` out, wherever it is in its line.
    pub(crate) fn remove(&mut self, id: ExchangeId) -> Option<Exchange> {
        if self.lone.as_ref().is_some_and(|lone| lone.id == id) {
            return self.lone.take();
        }
        let exchange = self.waiting.remove(&id)?;
        self.drop_departed_if_many();
        Some(exchange)
    }

    /// Takes out the exchanges `expired` says so of, in order of their ids.
    pub(crate) fn remove_where(
        &mut self,
        mut expired: impl FnMut(&Exchange) -> bool,
    ) -> Vec<Exchange> {
        if self.lone.as_ref().is_some_and(&mut expired) {
            return self.lone.take().into_iter().collect();
        }
        let mut ids: Vec<ExchangeId> = (self.waiting.iter())
            .filter(|(_, exchange)| expired(exchange))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let gone = ids
            .iter()
            .filter_map(|id| self.waiting.remove(id))
            .collect();
        self.drop_departed_if_many();
        gone
    }

    /// Something changed for `origin` (a connection parked or closed) that
    /// may let its line move.
    pub(crate) fn stir(&mut self, origin: &Origin) {
        if self.waiting.is_empty() {
            return;
        }
        if let Some(line) = self.lines.get_mut(origin) {
            if !line.stirred {
                line.stirred = true;
                self.stirred.push_back(origin.clone());
            }
        }
    }

    /// When the first exchange still waiting in `origin`'s line was queued;
    /// `None` when none waits. Departed ids at the front are dropped on the
    /// way, so that asking again does not walk them again.
    pub(crate) fn first_since(&mut self, origin: &Origin) -> Option<Instant> {
        if let Some(lone) = &self.lone {
            return (lone.origin == *origin).then_some(lone.since);
        }
        let waiting = &self.waiting;
        let line = self.lines.get_mut(origin)?;
        while let Some(id) = line.ids.front() {
            if let Some(exchange) = waiting.get(id) {
                return Some(exchange.since);
            }
            line.ids.pop_front();
            self.ids_in_lines -= 1;
        }
        None
    }

    /// The next exchange that may go, from the stirred origins in turn:
    /// `eligible` says which of an origin's exchanges may, if any. An origin
    /// stays stirred until it has nothing more that may go.
    pub(crate) fn next(
        &mut self,
        mut eligible: impl FnMut(&Origin) -> Option<Eligible>,
    ) -> Option<Exchange> {
        if let Some(lone) = &self.lone {
            // Nothing else waits (whatever is stirred has left).
            return match eligible(&lone.origin) {
                Some(which) if which.allows(lone) => self.lone.take(),
                _ => None,
            };
        }
        while let Some(origin) = self.stirred.front() {
            let (taken, emptied) = match eligible(origin) {
                Some(which) => {
                    let origin = origin.clone();
                    self.take(&origin, which)
                }
                None => (None, true),
            };
            // Settled when it has nothing that may go now (its line may
            // hold only retries, which an idle connection may not take),
            // and as soon as nothing is left to ask about: an exchange that
            // places at once costs no second look at its origin.
            if emptied || taken.is_none() {
                if let Some(origin) = self.stirred.pop_front() {
                    self.settle(&origin);
                }
            }
            if taken.is_some() {
                return taken;
            }
        }
        None
    }

    /// The first of `origin`'s exchanges that `which` allows.
    pub(crate) fn take_first(&mut self, origin: &Origin, which: Eligible) -> Option<Exchange> {
        if let Some(lone) = &self.lone {
            return match lone.origin == *origin && which.allows(lone) {
                true => self.lone.take(),
                false => None,
            };
        }
        match self.waiting.is_empty() {
            true => None,
            false => self.take(origin, which).0,
        }
    }

    /// The first of `origin`'s exchanges that `which` allows, and whether
    /// its line is empty now.
    fn take(&mut self, origin: &Origin, which: Eligible) -> (Option<Exchange>, bool) {
        let Some(line) = self.lines.get_mut(origin) else {
            return (None, true);
        };
        let mut at = 0;
        let id = loop {
            let Some(&id) = line.ids.get(at) else {
                return (None, line.ids.is_empty());
            };
            match self.waiting.get(&id) {
                None if at == 0 => {
                    line.ids.pop_front();
                    self.ids_in_lines -= 1;
                }
                None => at += 1,
                Some(exchange) if !which.allows(exchange) => at += 1,
                Some(_) => break id,
            }
        };
        line.ids.remove(at);
        self.ids_in_lines -= 1;
        (self.waiting.remove(&id), line.ids.is_empty())
    }

    /// `origin` is no longer stirred.
    fn settle(&mut self, origin: &Origin) {
        if let Some(line) = self.lines.get_mut(origin) {
            line.stirred = false;
        }
    }

    /// Drops departed ids, and lines left empty, once they outnumber the
    /// waiting exchanges (plus some slack): memory stays bounded by what
    /// waits, and the pass costs less than the departures that called for
    /// it. An empty line is kept till then, so that an origin's steady
    /// traffic does not make and free a line for each exchange.
    fn drop_departed_if_many(&mut self) {
        let waiting = self.waiting.len();
        if self.ids_in_lines <= 2 * waiting + 64 && self.lines.len() <= 2 * waiting + 64 {
            return;
        }
        let waiting = &self.waiting;
        self.lines.retain(|_, line| {
            line.ids.retain(|id| waiting.contains_key(id));
            line.stirred || !line.ids.is_empty()
        });
        self.ids_in_lines = self.waiting.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;

    fn origin(port: u16) -> Origin {
        Origin::plain(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn exchange(id: u64, port: u16, retried: bool) -> Exchange {
        Box::new(super::super::pool::ExchangeState {
            id: ExchangeId(id),
            origin: origin(port),
            request: Vec::new(),
            to_head: false,
            idempotent: true,
            retried,
            since: Instant::now(),
            streams: false,
            body_out: None,
            early: Default::default(),
            early_end: false,
            answered: false,
            upgrade: false,
            other_addrs: Vec::new(),
            connect_left: None,
        })
    }

    fn ids(taken: impl IntoIterator<Item = Exchange>) -> Vec<u64> {
        taken.into_iter().map(|ex| ex.id.0).collect()
    }

    #[test]
    fn each_origin_keeps_its_order_and_a_retry_goes_first() {
        let mut queue = Queue::default();
        for (id, port) in [(1, 1), (2, 2), (3, 1), (4, 2)] {
            queue.push(exchange(id, port, false), false);
        }
        queue.push(exchange(5, 1, true), true);
        // Origin 1 is stirred first, and gives all it has before origin 2.
        let all = std::iter::from_fn(|| queue.next(|_| Some(Eligible::First)));
        assert_eq!(ids(all), [5, 1, 3, 2, 4]);
        assert!(queue.is_empty() && queue.stirred.is_empty());
        assert_eq!(queue.ids_in_lines, 0);
    }

    #[test]
    fn a_lone_exchange_waits_leaves_and_lines_up_like_any_other() {
        let mut queue = Queue::default();
        queue.push(exchange(1, 1, false), false);
        assert!(queue.next(|_| None).is_none(), "held by its origin");
        assert!(queue.get_mut(ExchangeId(1)).is_some());
        assert!(queue.take_first(&origin(2), Eligible::First).is_none());
        assert_eq!(queue.remove(ExchangeId(1)).map(|ex| ex.id.0), Some(1));
        assert!(queue.is_empty());
        // A retry that comes while one waits goes before it.
        queue.push(exchange(2, 1, false), false);
        queue.push(exchange(3, 1, true), true);
        let all = std::iter::from_fn(|| queue.next(|_| Some(Eligible::First)));
        assert_eq!(ids(all), [3, 2]);
        queue.push(exchange(4, 1, true), false);
        assert!(queue.take_first(&origin(1), Eligible::FirstFresh).is_none());
        assert_eq!(ids(queue.remove_where(|_| true)), [4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_line_of_retries_offered_only_an_idle_connection_waits() {
        let mut queue = Queue::default();
        queue.push(exchange(1, 1, true), false);
        queue.push(exchange(2, 1, true), false);
        // Nothing may go: asked once, and left for a stir (a closed
        // connection makes room).
        let mut asked = 0;
        let fresh_only = |_: &Origin| {
            asked += 1;
            Some(Eligible::FirstFresh)
        };
        assert!(queue.next(fresh_only).is_none());
        assert_eq!(asked, 1);
        queue.stir(&origin(1));
        let all = std::iter::from_fn(|| queue.next(|_| Some(Eligible::First)));
        assert_eq!(ids(all), [1, 2]);
    }

    #[test]
    fn a_held_origin_is_not_walked_and_moves_once_stirred() {
        let mut queue = Queue::default();
        for id in 0..1000 {
            queue.push(exchange(id, 1, false), false);
        }
        queue.push(exchange(1000, 2, false), false);
        let mut asked = Vec::new();
        let mut ask = |o: &Origin| {
            asked.push(o.addr.port());
            (o.addr.port() == 2).then_some(Eligible::First)
        };
        assert_eq!(queue.next(&mut ask).map(|ex| ex.id.0), Some(1000));
        assert_eq!(queue.next(&mut ask).map(|ex| ex.id.0), None);
        // Each origin asked about once per stirring, never per exchange;
        // origin 2, emptied, not again.
        assert_eq!(asked, [1, 2]);
        // Nothing changed for origin 1: it is not asked about again.
        assert!(queue.next(|_| panic!("nothing is stirred")).is_none());
        queue.stir(&origin(1));
        assert_eq!(
            queue.next(|_| Some(Eligible::First)).map(|ex| ex.id.0),
            Some(0)
        );
    }

    #[test]
    fn an_idle_connection_goes_to_the_first_exchange_that_is_not_a_retry() {
        let mut queue = Queue::default();
        queue.push(exchange(1, 1, false), false);
        queue.push(exchange(2, 1, true), true);
        let fresh = queue.take_first(&origin(1), Eligible::FirstFresh);
        assert_eq!(fresh.map(|ex| ex.id.0), Some(1));
        assert!(queue.take_first(&origin(1), Eligible::FirstFresh).is_none());
        let retry = queue.take_first(&origin(1), Eligible::First);
        assert_eq!(retry.map(|ex| ex.id.0), Some(2));
    }

    #[test]
    fn lines_of_origins_no_longer_used_do_not_pile_up() {
        let mut queue = Queue::default();
        for id in 0..10_000 {
            queue.push(exchange(id, id as u16, false), false);
            let taken = queue.next(|_| Some(Eligible::First));
            assert_eq!(taken.map(|ex| ex.id.0), Some(id));
        }
        // At most twice what waits (one, while it is pushed), plus slack.
        assert!(
            queue.lines.len() <= 2 + 64,
            "{} lines kept",
            queue.lines.len()
        );
    }

    #[test]
    fn departures_leave_the_order_intact_and_their_ids_are_dropped() {
        let mut queue = Queue::default();
        for id in 0..10_000 {
            queue.push(exchange(id, 1, false), false);
        }
        // All but every hundredth leave, from the middle of the line.
        for id in (0..10_000).filter(|id| id % 100 != 0) {
            assert!(queue.remove(ExchangeId(id)).is_some());
            assert!(queue.get_mut(ExchangeId(id)).is_none());
        }
        assert!(queue.remove(ExchangeId(1)).is_none(), "already gone");
        assert!(queue.ids_in_lines <= 2 * queue.waiting.len() + 64);
        let expired = queue.remove_where(|ex| ex.id.0 >= 5000);
        assert_eq!(ids(expired), (50..100).map(|n| n * 100).collect::<Vec<_>>());
        let rest = std::iter::from_fn(|| queue.next(|_| Some(Eligible::First)));
        assert_eq!(ids(rest), (0..50).map(|n| n * 100).collect::<Vec<_>>());
        // Nothing is left behind, departed ids included.
        assert!(queue.stirred.is_empty());
        assert!(queue.lines.values().all(|line| line.ids.is_empty()));
        assert_eq!(queue.ids_in_lines, 0);
    }
}
