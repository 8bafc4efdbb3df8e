//! Which upstream gets the next request: the one with the fewest requests
//! outstanding, round-robin among equals, and none that failed lately.
//!
//! Health is passive, as nginx's `max_fails=1 fail_timeout`: an upstream
//! whose connection was refused, unreachable, reset or timed out, or that
//! answered garbage, before its response head or in the body after it (a
//! body quiet past the timeout is no failure: a stream may be), is
//! ejected for a while; after that, one request at a time probes it
//! (another too once a probe has been out longer than its failure could
//! take: a long upload), sent there even when others have fewer requests
//! out, and the first success brings it back. A lone upstream is never
//! ejected (nginx does the same): there is nowhere else to send to, and
//! refusing would only hide its recovery. Nor are all of them left out at
//! once: when every upstream is ejected (or probed), they are all taken
//! back, as nginx marks all its peers live again "for quick recovery";
//! else a few requests to a slow endpoint, one timing out at each
//! upstream, would have every other client refused for `--eject` seconds.

use edgepoll::Url;
use std::time::{Duration, Instant};

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    /// Where it is (`http://host:port`).
    pub url: Url,
    /// Requests sent and not yet over: answered with their bodies through,
    /// failed or given up. A response body still streaming keeps its
    /// connection busy, so it counts.
    outstanding: usize,
    health: Health,
    /// How many times it was ejected: a request sent before the latest
    /// ejection says nothing of its health since.
    epoch: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    /// Failed: no request until then; after it, the next one probes.
    Ejected(Instant),
    /// One request finds out (its ticket has the current epoch), sent at
    /// this time. A probe out for longer than its failure could take (see
    /// `probe_for`) lets another request probe too: a long upload is no
    /// answer for as long as it lasts, and would keep a working upstream
    /// out all that while.
    Probing(Instant),
}

/// A request counted at an upstream: which one, and in which epoch it was
/// sent. Each ticket is given back once: to [`Balancer::failed`] or
/// [`Balancer::done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub upstream: usize,
    epoch: u32,
}

/// The upstreams and the choice among them (tested below).
#[derive(Debug)]
pub struct Balancer {
    upstreams: Vec<Upstream>,
    /// Where the round-robin among equals resumes.
    cursor: usize,
    eject_for: Duration,
    /// How long a probe is the only one: at least as long as a request
    /// may take to fail.
    probe_for: Duration,
    /// The connections one upstream may have (`--max-per-upstream`): a
    /// probe is sent only while fewer requests are out there, or it would
    /// wait in the pool behind them.
    per_upstream: usize,
    /// Every upstream was taken back (see `pick`), not yet logged.
    revived: bool,
}

impl Balancer {
    pub fn new(
        urls: Vec<Url>,
        eject_for: Duration,
        probe_for: Duration,
        per_upstream: usize,
    ) -> Balancer {
        Balancer {
            upstreams: urls
                .into_iter()
                .map(|url| Upstream {
                    url,
                    outstanding: 0,
                    health: Health::Up,
                    epoch: 0,
                })
                .collect(),
            cursor: 0,
            eject_for,
            probe_for,
            per_upstream,
            revived: false,
        }
    }

    pub fn upstream(&self, index: usize) -> &Upstream {
        &self.upstreams[index]
    }

    /// Picks an upstream for a request, skipping those in `tried` (a bit per
    /// upstream index, the first 64), and counts the request as outstanding
    /// there. An ejected upstream whose time is up is probed by one request
    /// at a time (another once a probe has been out `probe_for`), whatever
    /// was sent to it before (answers to those no longer
    /// count), once a connection to it may be free. When every upstream
    /// is ejected or probed, all of them are taken back (see the module's
    /// doc; [`take_revived`](Self::take_revived) says so once). `None`
    /// when every one is tried, or the rest are ejected or probed while a
    /// tried one is up.
    pub fn pick(&mut self, now: Instant, tried: u64) -> Option<Ticket> {
        let (per_upstream, probe_for) = (self.per_upstream, self.probe_for);
        let available = |up: &Upstream| match up.health {
            Health::Up => true,
            Health::Ejected(until) => now >= until && up.outstanding < per_upstream,
            Health::Probing(since) => {
                now.saturating_duration_since(since) >= probe_for && up.outstanding < per_upstream
            }
        };
        // A probe goes first, however many requests older than its
        // ejection are still out there: one long download (or a stream)
        // kept it from ever having the fewest, and the upstream out for as
        // long as that lasted.
        let due = |up: &Upstream| up.health != Health::Up && available(up);
        let chosen = match self
            .least_outstanding(tried, due)
            .or_else(|| self.least_outstanding(tried, available))
        {
            Some(i) => i,
            // Every one ejected or probed, and one not yet tried: all back.
            None if self.upstreams.iter().all(|up| up.health != Health::Up) => {
                let chosen = self.least_outstanding(tried, |_| true)?;
                for up in &mut self.upstreams {
                    up.health = Health::Up;
                }
                self.revived = true;
                chosen
            }
            None => return None,
        };
        let n = self.upstreams.len();
        let up = &mut self.upstreams[chosen];
        if up.health != Health::Up {
            up.health = Health::Probing(now);
        }
        up.outstanding += 1;
        self.cursor = (chosen + 1) % n;
        Some(Ticket {
            upstream: chosen,
            epoch: up.epoch,
        })
    }

    /// The upstream with the fewest requests outstanding among those not
    /// `tried` and `available`, the first from the cursor among equals.
    fn least_outstanding(
        &self,
        tried: u64,
        available: impl Fn(&Upstream) -> bool,
    ) -> Option<usize> {
        let n = self.upstreams.len();
        let mut best: Option<usize> = None;
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let up = &self.upstreams[i];
            if (i < 64 && tried & (1 << i) != 0) || !available(up) {
                continue;
            }
            if best.is_none_or(|b| up.outstanding < self.upstreams[b].outstanding) {
                best = Some(i);
            }
        }
        best
    }

    /// Whether every upstream was taken back since this was last asked:
    /// worth a line in the log.
    pub fn take_revived(&mut self) -> bool {
        std::mem::take(&mut self.revived)
    }

    /// The upstream answered the request (its response head came): it is
    /// up, unless the request was sent before its latest ejection. The
    /// request stays outstanding until [`done`](Self::done).
    pub fn answered(&mut self, ticket: Ticket) {
        let up = &mut self.upstreams[ticket.upstream];
        // Ejected yet of this epoch: a probe beside one given up on (which
        // put the state back to Ejected), whose answer counts as much.
        if ticket.epoch == up.epoch && up.health != Health::Up {
            up.health = Health::Up;
        }
    }

    /// The upstream refused, was unreachable, reset, timed out or answered garbage: the
    /// request is over, and the upstream is ejected unless it is alone or
    /// the request was sent before its latest ejection. True when this
    /// ejected it. (An upstream ejected, and of the request's epoch, was
    /// left so by a probe given up on, with another probe still out: its
    /// failure ejects it for the full time, not until the next request.)
    pub fn failed(&mut self, ticket: Ticket, now: Instant) -> bool {
        let lone = self.upstreams.len() == 1;
        let up = &mut self.upstreams[ticket.upstream];
        up.outstanding = up.outstanding.saturating_sub(1);
        if lone || ticket.epoch != up.epoch {
            return false;
        }
        up.health = Health::Ejected(now + self.eject_for);
        up.epoch = up.epoch.wrapping_add(1);
        true
    }

    /// The request is over without saying anything of the upstream's
    /// health: answered with its body through, or given up on our side. A
    /// probe given up on leaves the next request to probe.
    pub fn done(&mut self, ticket: Ticket, now: Instant) {
        let up = &mut self.upstreams[ticket.upstream];
        up.outstanding = up.outstanding.saturating_sub(1);
        if ticket.epoch == up.epoch && matches!(up.health, Health::Probing(_)) {
            up.health = Health::Ejected(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: usize) -> Balancer {
        let urls = (0..n)
            .map(|i| Url::parse(&format!("http://127.0.0.1:{}", 8000 + i)).unwrap())
            .collect();
        Balancer::new(urls, Duration::from_secs(10), Duration::from_secs(40), 4)
    }

    /// Answered and through: what most requests are.
    fn through(b: &mut Balancer, ticket: Ticket, now: Instant) {
        b.answered(ticket);
        b.done(ticket, now);
    }

    /// A request sent before the ejection neither ends it when answered
    /// after its time was up nor keeps a probe waiting behind it.
    #[test]
    fn only_a_probe_sent_after_the_ejection_ends_it() {
        let mut b = balancer(2);
        let now = Instant::now();
        let slow = b.pick(now, 0).unwrap(); // answered late
        let refused = b.pick(now, 1 << 1).unwrap();
        assert_eq!((slow.upstream, refused.upstream), (0, 0));
        assert!(b.failed(refused, now));
        let later = now + Duration::from_secs(11);
        let probe = b.pick(later, 1 << 1).unwrap();
        assert_eq!(probe.upstream, 0, "probed though the slow one is out");
        assert_eq!(b.upstreams[0].health, Health::Probing(later));
        through(&mut b, slow, later);
        assert_eq!(
            b.upstreams[0].health,
            Health::Probing(later),
            "not the probe's answer"
        );
        assert_eq!(b.pick(later, 1 << 1), None, "one probe at a time");
        through(&mut b, probe, later);
        assert_eq!(b.upstreams[0].health, Health::Up);
        assert_eq!(b.upstreams[0].outstanding, 0);
    }

    #[test]
    fn equals_take_turns_and_the_least_loaded_goes_first() {
        let mut b = balancer(3);
        let now = Instant::now();
        let first: Vec<Ticket> = (0..3).map(|_| b.pick(now, 0).unwrap()).collect();
        let order: Vec<usize> = first.iter().map(|t| t.upstream).collect();
        assert_eq!(order, [0, 1, 2]);
        // 1's answer is through: it is now the only one with fewer out.
        through(&mut b, first[1], now);
        let again = b.pick(now, 0).unwrap();
        assert_eq!(again.upstream, 1);
        // All equal again (none out): round-robin resumes after 1.
        for ticket in [first[0], again, first[2]] {
            through(&mut b, ticket, now);
        }
        let turns: Vec<usize> = (0..3)
            .map(|_| {
                let ticket = b.pick(now, 0).unwrap();
                through(&mut b, ticket, now);
                ticket.upstream
            })
            .collect();
        assert_eq!(turns, [2, 0, 1]);
    }

    /// A response whose body still streams keeps its upstream busy: it
    /// counts until its end, not from its head on. (Counted only to the
    /// head, an upstream busy with long downloads drew half the requests,
    /// which waited for its connections and timed out.)
    #[test]
    fn a_response_counts_until_its_body_is_through() {
        let mut b = balancer(2);
        let now = Instant::now();
        let download = b.pick(now, 0).unwrap();
        b.answered(download);
        for _ in 0..3 {
            let ticket = b.pick(now, 0).unwrap();
            assert_eq!(ticket.upstream, 1 - download.upstream);
            through(&mut b, ticket, now);
        }
        b.done(download, now);
        let next = b.pick(now, 0).unwrap();
        assert_eq!(next.upstream, download.upstream, "round-robin again");
    }

    #[test]
    fn a_failed_upstream_is_ejected_then_probed_once_then_restored() {
        let mut b = balancer(2);
        let now = Instant::now();
        let ticket = b.pick(now, 0).unwrap();
        let i = ticket.upstream;
        assert!(b.failed(ticket, now));
        let other = 1 - i;
        let mut out = Vec::new();
        for _ in 0..5 {
            let t = b.pick(now, 0).unwrap();
            assert_eq!(t.upstream, other);
            out.push(t);
        }
        let later = now + Duration::from_secs(11);
        // One probe while the other is busier; no second one meanwhile.
        let probe = b.pick(later, 0).unwrap();
        assert_eq!(probe.upstream, i);
        for _ in 0..3 {
            assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(other));
        }
        b.answered(probe);
        assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(i));
        assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(i));
    }

    #[test]
    fn an_answer_sent_before_the_ejection_does_not_end_it() {
        let mut b = balancer(2);
        let now = Instant::now();
        let (first, second) = (b.pick(now, 0).unwrap(), b.pick(now, 0).unwrap());
        let third = b.pick(now, 0).unwrap();
        assert_eq!(third.upstream, first.upstream);
        assert!(b.failed(first, now));
        // Another request in flight to it fails a moment later, or
        // answers: neither changes the ejection.
        let fourth = b.pick(now, 1 << second.upstream);
        assert_eq!(fourth, None, "only the ejected one was left to try");
        assert!(!b.failed(third, now), "ejected once, not again");
        for _ in 0..4 {
            let t = b.pick(now, 0).unwrap();
            assert_eq!(t.upstream, second.upstream, "still ejected");
        }
    }

    /// While a probe is out, and after it restored the upstream, requests
    /// sent before the ejection say nothing: an answer does not end the
    /// probe, and a failure does not eject again.
    #[test]
    fn requests_sent_before_the_ejection_neither_end_the_probe_nor_eject_again() {
        let mut b = balancer(2);
        let now = Instant::now();
        let first = b.pick(now, 1 << 1).unwrap();
        let (old_a, old_b) = (b.pick(now, 1 << 1).unwrap(), b.pick(now, 1 << 1).unwrap());
        assert!(b.failed(first, now));
        let later = now + Duration::from_secs(11);
        let probe = b.pick(later, 1 << 1).unwrap();
        assert_eq!(probe.upstream, 0);
        through(&mut b, old_a, later);
        assert_eq!(
            b.upstreams[0].health,
            Health::Probing(later),
            "the old answer is no probe's"
        );
        assert!(
            !b.failed(old_b, later),
            "nor does an old failure eject again"
        );
        assert_eq!(b.upstreams[0].health, Health::Probing(later));
        through(&mut b, probe, later);
        assert_eq!(b.upstreams[0].health, Health::Up);
        let new = b.pick(later, 1 << 1).unwrap();
        assert!(b.failed(new, later), "a new one's failure ejects");
    }

    /// A probe still out after as long as a failure could take (a long
    /// upload, whose answer comes at its end) lets another request probe,
    /// and the second's answer brings the upstream back; the first's, in
    /// the other order. (One long probe kept it out all along.)
    #[test]
    fn a_probe_that_lasts_lets_another_request_probe() {
        for second_answers_first in [true, false] {
            let mut b = balancer(2);
            let now = Instant::now();
            let first = b.pick(now, 1 << 1).unwrap();
            assert!(b.failed(first, now));
            let later = now + Duration::from_secs(11);
            let upload = b.pick(later, 1 << 1).unwrap();
            assert_eq!(upload.upstream, 0);
            let soon = later + Duration::from_secs(39);
            assert_eq!(b.pick(soon, 1 << 1), None, "one probe at a time");
            let long = later + Duration::from_secs(40);
            let probe = b.pick(long, 1 << 1).unwrap();
            assert_eq!(probe.upstream, 0, "a second probe");
            assert_eq!(b.pick(long, 1 << 1), None, "not a third beside it");
            let (answer, other) = match second_answers_first {
                true => (probe, upload),
                false => (upload, probe),
            };
            through(&mut b, answer, long);
            assert_eq!(b.upstreams[0].health, Health::Up);
            through(&mut b, other, long);
            assert_eq!(b.upstreams[0].health, Health::Up);
            assert_eq!(b.upstreams[0].outstanding, 0);
        }
    }

    /// Upstream 0 ejected, then probed by an upload, and by a second
    /// request once the upload has been out `probe_for`: the balancer, the
    /// two probes and the time of the second.
    fn two_probes_out() -> (Balancer, Ticket, Ticket, Instant) {
        let mut b = balancer(2);
        let now = Instant::now();
        let first = b.pick(now, 1 << 1).unwrap();
        assert!(b.failed(first, now));
        let later = now + Duration::from_secs(11);
        let upload = b.pick(later, 1 << 1).unwrap();
        let long = later + Duration::from_secs(40);
        let probe = b.pick(long, 1 << 1).unwrap();
        assert_eq!((upload.upstream, probe.upstream), (0, 0));
        (b, upload, probe, long)
    }

    /// Of two probes out, one given up on (its client left) and then the
    /// other failing: ejected anew for the full time. (The first left the
    /// upstream ejected until then, and the failure of the second was taken
    /// for one of a request sent before the ejection.)
    #[test]
    fn a_probe_that_fails_beside_one_given_up_on_ejects_again() {
        let (mut b, upload, probe, long) = two_probes_out();
        b.done(probe, long);
        assert!(b.failed(upload, long), "the failed probe ejects");
        assert_eq!(
            b.upstreams[0].health,
            Health::Ejected(long + Duration::from_secs(10))
        );
        assert_eq!(b.pick(long, 1 << 1), None, "out for its time");
        assert_eq!(b.upstreams[0].outstanding, 0);
    }

    /// No probe while as many requests as it may have connections are out
    /// to it: the probe would wait in the pool behind them.
    #[test]
    fn no_probe_while_the_upstreams_connections_are_all_taken() {
        let mut b = balancer(2);
        let now = Instant::now();
        let old: Vec<Ticket> = (0..4).map(|_| b.pick(now, 1 << 1).unwrap()).collect();
        assert!(b.failed(old[0], now));
        let later = now + Duration::from_secs(11);
        // Three still out, under the limit of four: probed.
        let probe = b.pick(later, 1 << 1).unwrap();
        assert_eq!(probe.upstream, 0);
        // Given up on: the next request probes, unless four are out.
        b.done(probe, later);
        b.upstreams[0].outstanding += 1; // a fourth old one, say
        assert_eq!(b.pick(later, 1 << 1), None, "all four connections taken");
        b.done(old[1], later);
        assert_eq!(b.pick(later, 1 << 1).map(|t| t.upstream), Some(0));
    }

    #[test]
    fn a_failed_probe_ejects_again_and_all_ejected_are_all_taken_back() {
        let mut b = balancer(2);
        let now = Instant::now();
        let (a, c) = (b.pick(now, 0).unwrap(), b.pick(now, 0).unwrap());
        assert!(b.failed(a, now));
        assert!(!b.take_revived());
        let later = now + Duration::from_secs(11);
        let probe = b.pick(later, 0).unwrap();
        assert_eq!(probe.upstream, 0);
        assert!(b.failed(probe, later));
        assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(1));
        // Both ejected now: neither is refused, as nginx takes all back.
        assert!(b.failed(c, later));
        assert!(!b.take_revived());
        let again = b.pick(later, 0).unwrap();
        assert!(b.take_revived(), "said once");
        assert!(!b.take_revived());
        assert_eq!(b.upstreams[0].health, Health::Up);
        assert_eq!(b.upstreams[1].health, Health::Up);
        // The least loaded: 1 still has the request picked above.
        assert_eq!(again.upstream, 0);
        // A failure ejects again as usual.
        assert!(b.failed(again, later));
        assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(1));
    }

    /// Only the upstreams not yet tried are taken back: a request that
    /// failed on every one is refused.
    #[test]
    fn all_ejected_but_tried_means_none() {
        let mut b = balancer(2);
        let now = Instant::now();
        let first = b.pick(now, 0).unwrap();
        assert!(b.failed(first, now));
        let tried = 1 << first.upstream;
        let other = b.pick(now, tried).unwrap();
        assert!(b.failed(other, now));
        assert_eq!(b.pick(now, 0b11), None);
        assert!(!b.take_revived());
        assert_eq!(
            b.upstreams[first.upstream].health,
            Health::Ejected(now + Duration::from_secs(10))
        );
    }

    #[test]
    fn a_probe_given_up_on_leaves_the_next_request_to_probe() {
        let mut b = balancer(2);
        let now = Instant::now();
        let first = b.pick(now, 0).unwrap();
        assert!(b.failed(first, now));
        let later = now + Duration::from_secs(11);
        let probe = b.pick(later, 1 << 1).unwrap();
        assert_eq!(b.pick(later, 1 << 1), None);
        b.done(probe, later);
        assert_eq!(b.pick(later, 1 << 1).map(|t| t.upstream), Some(0));
    }

    /// A probe is not put off while requests sent before the ejection are
    /// still out (a long download): it goes before the upstream has the
    /// fewest out.
    #[test]
    fn a_probe_goes_first_however_many_old_requests_are_out() {
        let mut b = balancer(2);
        let now = Instant::now();
        let download = b.pick(now, 1 << 1).unwrap();
        let refused = b.pick(now, 1 << 1).unwrap();
        assert!(b.failed(refused, now));
        let later = now + Duration::from_secs(11);
        let probe = b.pick(later, 0).unwrap();
        assert_eq!(probe.upstream, 0, "1 has none out, 0 its download");
        assert_eq!(b.pick(later, 0).map(|t| t.upstream), Some(1));
        through(&mut b, probe, later);
        b.done(download, later);
        assert_eq!(b.upstreams[0].health, Health::Up);
    }

    /// Two probes out (the first lasted), the first given up on: the
    /// second's answer still brings the upstream back.
    #[test]
    fn a_second_probe_answers_for_a_first_given_up_on() {
        let (mut b, upload, probe, long) = two_probes_out();
        b.done(upload, long);
        b.answered(probe);
        assert_eq!(b.upstreams[0].health, Health::Up);
        b.done(probe, long);
        assert_eq!(b.upstreams[0].health, Health::Up);
    }

    #[test]
    fn tried_upstreams_are_skipped_and_a_lone_one_is_never_ejected() {
        let mut b = balancer(2);
        let now = Instant::now();
        assert_eq!(b.pick(now, 0b01).map(|t| t.upstream), Some(1));
        assert_eq!(b.pick(now, 0b11), None);
        let mut lone = balancer(1);
        let ticket = lone.pick(now, 0).unwrap();
        assert!(!lone.failed(ticket, now));
        assert_eq!(lone.pick(now, 0).map(|t| t.upstream), Some(0));
    }
}
