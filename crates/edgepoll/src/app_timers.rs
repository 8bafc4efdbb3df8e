//! Timers an [`App`](crate::App) sets on the loop: a wake-up at a time of
//! its choosing, for a deadline of its own (a request given up on sooner
//! than the loop's timeouts would), a retry after a pause, or periodic work.
//!
//! The loop waits for the earliest of them beside its sockets, so a timer
//! costs nothing while it waits. Kept ordered by (time, serial): setting and
//! cancelling cost O(log n), and a timer cancelled is gone, not left to
//! be skipped when its time comes.

// The loop that reads them exists only for WASI; the native build (the
// state machines' tests) sets timers through `Context` alone.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code))]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A timer set with [`Context::set_timer`](crate::Context::set_timer):
/// what [`App::on_timer`](crate::App::on_timer) is called with when it
/// fires, and what [`Context::cancel_timer`](crate::Context::cancel_timer)
/// takes.
///
/// ```
/// use edgepoll::TimerId;
/// fn due(timer: TimerId) -> std::time::Instant {
///     timer.at()
/// }
/// # let _ = due;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    // In this order: timers compare by time, then by when they were set.
    at: Instant,
    serial: u64,
}

impl TimerId {
    /// When the timer fires (or fired).
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// The timers set and not yet fired or cancelled.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<TimerId>,
    serial: u64,
}

impl Timers {
    pub(crate) fn set(&mut self, at: Instant) -> TimerId {
        self.serial += 1;
        let timer = TimerId {
            at,
            serial: self.serial,
        };
        self.set.insert(timer);
        timer
    }

    /// Whether it was still set.
    pub(crate) fn cancel(&mut self, timer: TimerId) -> bool {
        self.set.remove(&timer)
    }

    /// When the earliest fires.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.set.first().map(TimerId::at)
    }

    /// The latest timer set so far: those set after it (from the callbacks
    /// of the timers firing now) wait for the next round, so that a timer
    /// set anew for now from its own callback cannot hold the loop.
    pub(crate) fn last_serial(&self) -> u64 {
        self.serial
    }

    /// The earliest timer due at `now` that was set up to `serial`, taken
    /// out. Those set since, even for an earlier time, are passed over, not
    /// waited behind: an app that sets a timer for a time past from each
    /// callback would otherwise keep the others from ever firing.
    pub(crate) fn take_due(&mut self, now: Instant, serial: u64) -> Option<TimerId> {
        let due = self
            .set
            .iter()
            .take_while(|timer| timer.at <= now)
            .find(|timer| timer.serial <= serial)
            .copied()?;
        self.set.remove(&due);
        Some(due)
    }

    /// The serial of the first timer in time order, for the tests of a
    /// round's order.
    #[cfg(test)]
    pub(crate) fn first_serial(&self) -> Option<u64> {
        self.set.first().map(|timer| timer.serial)
    }
}

/// When the tick after the one `due` falls, every `period` (more than 0),
/// for a loop that got to it at `now`: a whole period after it, or, when the
/// loop was busy past that, the first of its beats after `now` (the ticks
/// missed are skipped, not made up in a burst).
pub(crate) fn next_tick(due: Instant, period: Duration, now: Instant) -> Instant {
    let next = due + period;
    if next > now {
        return next;
    }
    let missed = now.duration_since(next).as_nanos() / period.as_nanos() + 1;
    let skip = u32::try_from(missed)
        .ok()
        .and_then(|n| period.checked_mul(n));
    skip.map_or(now + period, |skip| next + skip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tick_falls_a_period_after_the_last_and_missed_ones_are_skipped() {
        let (t0, ms) = (Instant::now(), Duration::from_millis);
        // On time, or a little late: a period after the one due.
        assert_eq!(next_tick(t0, ms(50), t0), t0 + ms(50));
        assert_eq!(next_tick(t0, ms(50), t0 + ms(49)), t0 + ms(50));
        // Busy past the next: the first beat after now, on the same grid.
        assert_eq!(next_tick(t0, ms(50), t0 + ms(50)), t0 + ms(100));
        assert_eq!(next_tick(t0, ms(50), t0 + ms(130)), t0 + ms(150));
        assert_eq!(next_tick(t0, ms(50), t0 + ms(150)), t0 + ms(200));
        // Hours behind at 1 ms: still one step, ahead of now.
        let late = t0 + Duration::from_secs(5 * 3600);
        let next = next_tick(t0, ms(1), late);
        assert!(next > late && next <= late + ms(1));
    }

    #[test]
    fn timers_fire_in_time_order_and_a_cancelled_one_never() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let late = timers.set(now + Duration::from_millis(20));
        let early = timers.set(now + Duration::from_millis(10));
        let same = timers.set(now + Duration::from_millis(10));
        let gone = timers.set(now + Duration::from_millis(5));
        assert!(timers.cancel(gone));
        assert!(!timers.cancel(gone), "cancelled once");
        assert_eq!(timers.earliest(), Some(early.at()));
        let limit = timers.last_serial();
        assert_eq!(timers.take_due(now, limit), None, "none due yet");
        let at = now + Duration::from_millis(15);
        assert_eq!(timers.take_due(at, limit), Some(early));
        assert_eq!(timers.take_due(at, limit), Some(same), "set in order");
        assert_eq!(timers.take_due(at, limit), None);
        assert_eq!(
            timers.take_due(now + Duration::from_secs(1), limit),
            Some(late)
        );
        assert_eq!(timers.earliest(), None);
    }

    #[test]
    fn a_timer_set_while_timers_fire_waits_for_the_next_round() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let first = timers.set(now);
        let limit = timers.last_serial();
        assert_eq!(timers.take_due(now, limit), Some(first));
        // Set from `first`'s callback, due at once (even earlier).
        let again = timers.set(now - Duration::from_millis(1));
        assert_eq!(timers.take_due(now, limit), None);
        assert_eq!(timers.take_due(now, timers.last_serial()), Some(again));
    }

    #[test]
    fn a_timer_set_for_a_time_past_while_timers_fire_holds_none_of_them_back() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let first = timers.set(now - Duration::from_millis(2));
        let second = timers.set(now);
        let limit = timers.last_serial();
        assert_eq!(timers.take_due(now, limit), Some(first));
        // Set from `first`'s callback, earlier than `second`.
        let again = timers.set(now - Duration::from_millis(1));
        assert_eq!(timers.take_due(now, limit), Some(second));
        assert_eq!(timers.take_due(now, limit), None);
        assert_eq!(timers.take_due(now, timers.last_serial()), Some(again));
    }
}
