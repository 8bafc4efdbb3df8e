//! The run's shared state: which request comes next, and the tallies.

use crate::plan::{Shape, MAX_LARGE_IN_FLIGHT};
use std::collections::VecDeque;

#[derive(Default)]
pub struct Tally {
    pub completed: u64,
    pub bytes_echoed: u64,
    pub mismatches: u64,
    pub errors: u64,
    /// Requests lost with a failed connection (each failure is in `errors`
    /// or `mismatches` once).
    pub requests_lost: u64,
    /// Requests an intermediary could not complete because its upstream
    /// failed (`--upstream-failures`): a 502, 503 or 504, or the
    /// connection cut while a request was under way.
    pub upstream_failures: u64,
    pub latencies_us: Vec<u32>,
    pub chunked: u64,
    pub expect: u64,
    pub http10: u64,
    pub bursts: u64,
    pub connections: u64,
    pub peak_connections: usize,
    pub first_failure: Option<String>,
}

pub struct Work {
    pub seed: u64,
    pub total: u64,
    next_id: u64,
    /// Large requests put off while [`MAX_LARGE_IN_FLIGHT`] were under way.
    deferred_large: VecDeque<u64>,
    pub large_in_flight: usize,
    pub tally: Tally,
    /// Whether a failure of an upstream behind the server is expected
    /// (counted, not an error)...
    pub upstream_failures_expected: bool,
    /// ...from this many requests done on (when the upstream is killed),
    /// and for [`FAILURE_WINDOW`] from the first: a proxy that cut
    /// responses at other times would otherwise pass as one restart.
    pub failures_from: u64,
    first_upstream_failure: Option<std::time::Instant>,
}

/// How long after the first of them upstream failures are expected: the
/// killed upstream is down for a second, left out for ten, then probed;
/// requests in flight to it end at once or at the proxy's timeout (30 s).
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

pub enum Failure {
    /// A response body that differs from what was sent.
    Mismatch(String),
    /// Anything else the server should not have done.
    Error(String),
    /// A 502, 503 or 504: an error unless upstream failures are expected.
    Gateway(String),
    /// The connection closed or reset while a request was under way: an
    /// error unless upstream failures are expected.
    Cut(String),
}

impl Work {
    pub fn new(seed: u64, total: u64) -> Work {
        Work {
            seed,
            total,
            next_id: 0,
            deferred_large: VecDeque::new(),
            large_in_flight: 0,
            upstream_failures_expected: false,
            failures_from: 0,
            first_upstream_failure: None,
            tally: Tally {
                latencies_us: Vec::with_capacity(total as usize),
                ..Tally::default()
            },
        }
    }

    /// Whether [`take`](Self::take) would give a request now.
    pub fn available(&self) -> bool {
        self.next_id < self.total
            || (!self.deferred_large.is_empty() && self.large_in_flight < MAX_LARGE_IN_FLIGHT)
    }

    /// The next request to send.
    pub fn take(&mut self) -> Option<Shape> {
        if self.large_in_flight < MAX_LARGE_IN_FLIGHT {
            if let Some(id) = self.deferred_large.pop_front() {
                self.large_in_flight += 1;
                return Some(Shape::of(self.seed, id));
            }
        }
        while self.next_id < self.total {
            let shape = Shape::of(self.seed, self.next_id);
            self.next_id += 1;
            if !shape.is_large() {
                return Some(shape);
            }
            if self.large_in_flight < MAX_LARGE_IN_FLIGHT {
                self.large_in_flight += 1;
                return Some(shape);
            }
            self.deferred_large.push_back(shape.id);
        }
        None
    }

    /// A request is over (answered or lost).
    pub fn release(&mut self, shape: &Shape) {
        if shape.is_large() {
            self.large_in_flight -= 1;
        }
    }

    /// Whether a 502-504 or a cut now can be the restart's: after it
    /// began, and within [`FAILURE_WINDOW`] of the first.
    fn expects_upstream_failure(&mut self) -> bool {
        if !self.upstream_failures_expected || self.tally.completed < self.failures_from {
            return false;
        }
        let now = std::time::Instant::now();
        let first = *self.first_upstream_failure.get_or_insert(now);
        now.duration_since(first) <= FAILURE_WINDOW
    }

    pub fn fail(&mut self, failure: Failure) {
        let text = match failure {
            Failure::Mismatch(text) => {
                self.tally.mismatches += 1;
                text
            }
            Failure::Gateway(_) | Failure::Cut(_) if self.expects_upstream_failure() => {
                self.tally.upstream_failures += 1;
                return;
            }
            Failure::Error(text) | Failure::Gateway(text) | Failure::Cut(text) => {
                self.tally.errors += 1;
                text
            }
        };
        if self.tally.first_failure.is_none() {
            eprintln!("soak: FAILURE: {text}");
            self.tally.first_failure = Some(text);
        }
    }
}
