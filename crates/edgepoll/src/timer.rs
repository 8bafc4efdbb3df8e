//! `Sweep`: one clock for many connection deadlines.
//!
//! Keeping a timer per connection would mean work on every request, as each
//! request moves its connection's deadline. Instead the event loop wakes at the
//! earliest deadline it knows of, but at least every `granularity` and at
//! most every half of it, and then checks all connections. Deadlines fire at
//! most `granularity` late; thousands of connections whose deadlines are
//! spread over time (each its own idle timeout) cost two sweeps per
//! granularity, not one per deadline.

use std::time::{Duration, Instant};

/// The longest timeout taken as given: a century never passes in a
/// program's life, and `Instant::now() + FOREVER` cannot overflow, as
/// `now + Duration::MAX` would (a panic, on a value meant as "never").
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `timeout`, or [`FOREVER`] when longer.
pub(crate) fn bounded(timeout: Duration) -> Duration {
    timeout.min(FOREVER)
}

/// The longest time between two sweeps.
const LONGEST_GRANULARITY: Duration = Duration::from_secs(24 * 3600);

/// When the event loop next checks deadlines.
///
/// ```
/// use edgepoll::Sweep;
/// use std::time::{Duration, Instant};
/// let now = Instant::now();
/// let mut sweep = Sweep::new(Duration::from_millis(100), now);
/// assert!(!sweep.is_due(now));
/// sweep.rearm(now, Some(now + Duration::from_millis(70)));
/// assert_eq!(sweep.next(), now + Duration::from_millis(70));
/// assert!(sweep.is_due(now + Duration::from_millis(70)));
/// // A deadline sooner than half the granularity waits for it.
/// sweep.rearm(now, Some(now + Duration::from_millis(10)));
/// assert_eq!(sweep.next(), now + Duration::from_millis(50));
/// // No granularity is too long for the clock.
/// let rare = Sweep::new(Duration::MAX, now);
/// assert_eq!(rare.next(), now + Duration::from_secs(24 * 3600));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    granularity: Duration,
    next: Instant,
}

impl Sweep {
    /// A sweep every `granularity` at the latest, the first one `granularity`
    /// after `now`. A granularity over a day is a day: a clock must be able
    /// to count to the next sweep; one under a millisecond is a millisecond,
    /// so that a loop waiting for the next sweep never spins.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let sweep = edgepoll::Sweep::new(Duration::from_secs(1), now);
    /// assert_eq!(sweep.next(), now + Duration::from_secs(1));
    /// let eager = edgepoll::Sweep::new(Duration::ZERO, now);
    /// assert_eq!(eager.next(), now + Duration::from_millis(1));
    /// ```
    pub fn new(granularity: Duration, now: Instant) -> Sweep {
        let granularity = granularity.clamp(Duration::from_millis(1), LONGEST_GRANULARITY);
        Sweep {
            granularity,
            next: now + granularity,
        }
    }

    /// When the next check is due.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let sweep = edgepoll::Sweep::new(Duration::from_millis(100), now);
    /// // What a loop hands its poll as the deadline.
    /// let wait = sweep.next().saturating_duration_since(now);
    /// assert_eq!(wait, Duration::from_millis(100));
    /// ```
    pub fn next(&self) -> Instant {
        self.next
    }

    /// Whether a check is due at `now`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let sweep = edgepoll::Sweep::new(Duration::from_millis(100), now);
    /// assert!(!sweep.is_due(now + Duration::from_millis(99)));
    /// assert!(sweep.is_due(now + Duration::from_millis(100)));
    /// ```
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Plans the next check after one at `now` found `earliest` as the nearest deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let mut sweep = edgepoll::Sweep::new(Duration::from_millis(100), now);
    /// // No deadline at all: the next check a granularity from now.
    /// sweep.rearm(now, None);
    /// assert_eq!(sweep.next(), now + Duration::from_millis(100));
    /// // A deadline far off: still a granularity from now, no later.
    /// sweep.rearm(now, Some(now + Duration::from_secs(60)));
    /// assert_eq!(sweep.next(), now + Duration::from_millis(100));
    /// ```
    pub fn rearm(&mut self, now: Instant, earliest: Option<Instant>) {
        let latest = now + self.granularity;
        let soonest = now + self.granularity / 2;
        self.next = earliest.map_or(latest, |e| e.clamp(soonest, latest));
    }
}
