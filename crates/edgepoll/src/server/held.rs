//! Sources held back while the place their pieces go has too much to send
//! (see [`bodies`](super::bodies)), each filed under what releases it: the
//! client connection whose sending drains it, or the exchange whose
//! request body it is.
//!
//! Why filed so: a step of a connection looks only at what that connection
//! releases. With one list for all, every step of every connection walked
//! every held source, so a thousand slow downloads taxed each request of
//! every other client.

use crate::app::Responder;
use crate::client::ExchangeId;
use rustc_hash::FxHashMap;

/// A source that a client connection's sending releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtClient {
    /// An exchange whose response body is piped to a request of the client.
    Exchange(ExchangeId),
    /// A request body echoed into its own response.
    Echo(Responder),
    /// A response the application streams, over the backlog: the
    /// application is told once it drains.
    Streamed(Responder),
}

/// The held sources.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// By the slot of the client connection that releases them.
    at_client: FxHashMap<usize, Vec<AtClient>>,
    /// Request bodies piped into exchanges, by the exchange.
    for_exchange: FxHashMap<ExchangeId, Responder>,
}

impl Held {
    /// Whether nothing is held: checked after every step.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.at_client.is_empty() && self.for_exchange.is_empty()
    }

    /// Holds `source` until the client connection at `slot` drains; once.
    /// Returns whether it was not held already.
    pub(crate) fn hold_at(&mut self, slot: usize, source: AtClient) -> bool {
        let list = self.at_client.entry(slot).or_default();
        let new = !list.contains(&source);
        if new {
            list.push(source);
        }
        new
    }

    pub(crate) fn unhold_at(&mut self, slot: usize, source: AtClient) {
        if self.at_client.is_empty() {
            return;
        }
        if let Some(list) = self.at_client.get_mut(&slot) {
            list.retain(|held| *held != source);
            if list.is_empty() {
                self.at_client.remove(&slot);
            }
        }
    }

    /// What the client connection at `slot` holds, taken out to be looked
    /// at; what stays held goes back with [`keep_at`](Self::keep_at).
    pub(crate) fn take_at(&mut self, slot: usize) -> Option<Vec<AtClient>> {
        self.at_client.remove(&slot)
    }

    pub(crate) fn keep_at(&mut self, slot: usize, list: Vec<AtClient>) {
        if !list.is_empty() {
            self.at_client.insert(slot, list);
        }
    }

    /// Holds the request body of `responder`, piped into `exchange`, until
    /// the exchange's connection has sent most of what it has.
    pub(crate) fn hold_for(&mut self, exchange: ExchangeId, responder: Responder) {
        self.for_exchange.insert(exchange, responder);
    }

    /// The request body held for `exchange`, no longer held.
    pub(crate) fn unhold_for(&mut self, exchange: ExchangeId) -> Option<Responder> {
        match self.for_exchange.is_empty() {
            true => None,
            false => self.for_exchange.remove(&exchange),
        }
    }

    pub(crate) fn is_held_for(&self, exchange: ExchangeId) -> bool {
        !self.for_exchange.is_empty() && self.for_exchange.contains_key(&exchange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_found_by_what_releases_them() {
        let mut held = Held::default();
        assert!(held.is_empty());
        assert!(held.hold_at(3, AtClient::Exchange(ExchangeId(7))));
        assert!(!held.hold_at(3, AtClient::Exchange(ExchangeId(7))), "once");
        assert!(held.hold_at(3, AtClient::Streamed(Responder::at(3, 1))));
        held.hold_for(ExchangeId(8), Responder::at(4, 2));
        assert!(held.is_held_for(ExchangeId(8)) && !held.is_held_for(ExchangeId(7)));
        // Slot 3's step sees its two; one stays held.
        let mut list = held.take_at(3).expect("two held");
        assert_eq!(list.len(), 2);
        assert!(held.take_at(3).is_none());
        list.retain(|source| matches!(source, AtClient::Exchange(_)));
        held.keep_at(3, list);
        held.unhold_at(3, AtClient::Exchange(ExchangeId(7)));
        assert_eq!(held.unhold_for(ExchangeId(8)), Some(Responder::at(4, 2)));
        assert_eq!(held.unhold_for(ExchangeId(8)), None);
        assert!(held.is_empty(), "{held:?}");
    }
}
