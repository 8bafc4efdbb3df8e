//! Which upstream gets the next request: the one with the fewest requests
//! outstanding, round-robin among equals, and none that failed lately.
//!
//! Health is passive, as nginx's `max_fails=1 fail_timeout`: an upstream
//! whose connection was refused, reset or timed out, or that answered
//! garbage, is ejected for a while; after that, one request at a time probes
//! it, and the first success brings it back. A lone upstream is never
//! ejected (nginx does the same): there is nowhere else to send to, and
//! refusing would only hide its recovery.

use edgepoll::Url;
use std::time::{Duration, Instant};

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    /// Where it is (`http://host:port`).
    pub url: Url,
    /// Requests sent and not yet answered.
    outstanding: usize,
    health: Health,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    /// Failed: no request until then.
    Ejected(Instant),
    /// The ejection is over: one request at a time finds out.
    Probing,
}

/// How an exchange with an upstream ended, as far as its health goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Answered,
    /// It refused, reset, timed out or answered garbage.
    Failed,
    /// The request was given up on our side: says nothing of the upstream.
    Dropped,
}

/// The upstreams and the choice among them (tested below).
#[derive(Debug)]
pub struct Balancer {
    upstreams: Vec<Upstream>,
    /// Where the round-robin among equals resumes.
    cursor: usize,
    eject_for: Duration,
}

impl Balancer {
    pub fn new(urls: Vec<Url>, eject_for: Duration) -> Balancer {
        Balancer {
            upstreams: urls
                .into_iter()
                .map(|url| Upstream {
                    url,
                    outstanding: 0,
                    health: Health::Up,
                })
                .collect(),
            cursor: 0,
            eject_for,
        }
    }

    pub fn upstream(&self, index: usize) -> &Upstream {
        &self.upstreams[index]
    }

    /// Picks an upstream for a request, skipping those in `tried` (a bit per
    /// upstream index, the first 64), and counts the request as outstanding
    /// there. `None` when every one is ejected, probed or tried.
    pub fn pick(&mut self, now: Instant, tried: u64) -> Option<usize> {
        let n = self.upstreams.len();
        let mut best: Option<usize> = None;
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if i < 64 && tried & (1 << i) != 0 {
                continue;
            }
            let up = &self.upstreams[i];
            // An ejected upstream is probed once its time is up and nothing
            // sent before the ejection is still out: an answer to such a
            // request must not pass for the probe's.
            match up.health {
                Health::Ejected(until) if now < until || up.outstanding > 0 => continue,
                Health::Probing if up.outstanding > 0 => continue,
                _ => {}
            }
            let outstanding = up.outstanding;
            if best.is_none_or(|b| outstanding < self.upstreams[b].outstanding) {
                best = Some(i);
            }
        }
        let chosen = best?;
        let up = &mut self.upstreams[chosen];
        if matches!(up.health, Health::Ejected(_)) {
            up.health = Health::Probing;
        }
        up.outstanding += 1;
        self.cursor = (chosen + 1) % n;
        Some(chosen)
    }

    /// The request sent to `index` is over; returns true when this outcome
    /// ejected the upstream.
    pub fn finish(&mut self, index: usize, outcome: Outcome, now: Instant) -> bool {
        let lone = self.upstreams.len() == 1;
        let up = &mut self.upstreams[index];
        up.outstanding = up.outstanding.saturating_sub(1);
        match outcome {
            // An answer to a request sent before an ejection does not end
            // it: only the probe's (or any while up) counts.
            Outcome::Answered if matches!(up.health, Health::Ejected(_)) => false,
            Outcome::Answered => {
                up.health = Health::Up;
                false
            }
            Outcome::Failed if !lone && !matches!(up.health, Health::Ejected(_)) => {
                up.health = Health::Ejected(now + self.eject_for);
                true
            }
            Outcome::Failed => false,
            // A probe that was given up leaves the next request to probe.
            Outcome::Dropped => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request sent before the ejection and answered after its time was
    /// up neither ends the ejection nor keeps a probe waiting behind it.
    #[test]
    fn only_a_probe_sent_after_the_ejection_ends_it() {
        let mut b = balancer(2);
        let now = Instant::now();
        assert_eq!(b.pick(now, 0), Some(0)); // slow, answered late
        assert_eq!(b.pick(now, 1 << 1), Some(0)); // refused
        assert!(b.finish(0, Outcome::Failed, now));
        let later = now + Duration::from_secs(11);
        assert_eq!(
            b.pick(later, 0),
            Some(1),
            "no probe while the old one is out"
        );
        assert!(matches!(b.upstreams[0].health, Health::Ejected(_)));
        b.finish(0, Outcome::Answered, later);
        assert!(
            matches!(b.upstreams[0].health, Health::Ejected(_)),
            "not the probe's answer"
        );
        assert_eq!(b.pick(later, 1 << 1), Some(0), "now probed");
        assert_eq!(b.upstreams[0].health, Health::Probing);
        b.finish(0, Outcome::Answered, later);
        assert_eq!(b.upstreams[0].health, Health::Up);
    }

    fn balancer(n: usize) -> Balancer {
        let urls = (0..n)
            .map(|i| Url::parse(&format!("http://127.0.0.1:{}", 8000 + i)).unwrap())
            .collect();
        Balancer::new(urls, Duration::from_secs(10))
    }

    #[test]
    fn equals_take_turns_and_the_least_loaded_goes_first() {
        let mut b = balancer(3);
        let now = Instant::now();
        let first: Vec<usize> = (0..3).map(|_| b.pick(now, 0).unwrap()).collect();
        assert_eq!(first, [0, 1, 2]);
        // 1 answers: it is now the only one with fewer outstanding.
        b.finish(1, Outcome::Answered, now);
        assert_eq!(b.pick(now, 0), Some(1));
        // All equal again (one each): round-robin resumes after 1.
        b.finish(0, Outcome::Answered, now);
        b.finish(1, Outcome::Answered, now);
        b.finish(2, Outcome::Answered, now);
        let turns: Vec<usize> = (0..3)
            .map(|_| {
                let i = b.pick(now, 0).unwrap();
                b.finish(i, Outcome::Answered, now);
                i
            })
            .collect();
        assert_eq!(turns, [2, 0, 1]);
    }

    #[test]
    fn a_failed_upstream_is_ejected_then_probed_once_then_restored() {
        let mut b = balancer(2);
        let now = Instant::now();
        let i = b.pick(now, 0).unwrap();
        assert!(b.finish(i, Outcome::Failed, now));
        let other = 1 - i;
        for _ in 0..5 {
            assert_eq!(b.pick(now, 0), Some(other));
        }
        let later = now + Duration::from_secs(11);
        // One probe while the other is busier; no second one meanwhile.
        assert_eq!(b.pick(later, 0), Some(i));
        for _ in 0..3 {
            assert_eq!(b.pick(later, 0), Some(other));
        }
        assert!(!b.finish(i, Outcome::Answered, later));
        assert_eq!(b.pick(later, 0), Some(i));
        assert_eq!(b.pick(later, 0), Some(i));
    }

    #[test]
    fn an_answer_sent_before_the_ejection_does_not_end_it() {
        let mut b = balancer(2);
        let now = Instant::now();
        let (first, second) = (b.pick(now, 0).unwrap(), b.pick(now, 0).unwrap());
        let third = b.pick(now, 0).unwrap();
        assert_eq!(third, first);
        assert!(b.finish(first, Outcome::Failed, now));
        // The other request in flight to it answers a moment later.
        assert!(!b.finish(third, Outcome::Answered, now));
        for _ in 0..4 {
            assert_eq!(b.pick(now, 0), Some(second), "still ejected");
        }
    }

    #[test]
    fn a_failed_probe_ejects_again_and_all_ejected_means_none() {
        let mut b = balancer(2);
        let now = Instant::now();
        b.pick(now, 0);
        b.pick(now, 0);
        assert!(b.finish(0, Outcome::Failed, now));
        assert!(b.finish(1, Outcome::Failed, now));
        assert_eq!(b.pick(now, 0), None);
        let later = now + Duration::from_secs(11);
        assert_eq!(b.pick(later, 0), Some(0));
        assert!(b.finish(0, Outcome::Failed, later));
        assert_eq!(b.pick(later, 0), Some(1));
        assert_eq!(b.pick(later, 0), None);
    }

    #[test]
    fn tried_upstreams_are_skipped_and_a_lone_one_is_never_ejected() {
        let mut b = balancer(2);
        let now = Instant::now();
        assert_eq!(b.pick(now, 0b01), Some(1));
        assert_eq!(b.pick(now, 0b11), None);
        let mut lone = balancer(1);
        let i = lone.pick(now, 0).unwrap();
        assert!(!lone.finish(i, Outcome::Failed, now));
        assert_eq!(lone.pick(now, 0), Some(0));
    }
}
