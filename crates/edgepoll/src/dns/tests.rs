//! The resolver fed datagrams by hand: no sockets.

use super::message::parse_name;
use super::*;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{RData, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(3);

fn resolver() -> Resolver {
    Resolver::new(Some("127.0.0.1:5353".parse().unwrap()), TIMEOUT)
}

/// The server's answer to `query`, built by `fill`.
fn answer(query: &[u8], fill: impl FnOnce(&Query, &mut Message)) -> Vec<u8> {
    let asked = Message::from_vec(query).unwrap();
    let q = asked.queries[0].clone();
    let mut m = Message::response(asked.metadata.id, OpCode::Query);
    // As a recursive resolver answers.
    m.metadata.recursion_available = true;
    m.add_query(q.clone());
    fill(&q, &mut m);
    m.to_vec().unwrap()
}

/// A server failure (SERVFAIL) in answer to `query`.
fn servfail(query: &[u8]) -> Vec<u8> {
    answer(query, |_, m| {
        m.metadata.response_code = ResponseCode::ServFail;
    })
}

/// A resolver that looked `name` up at `now` and got both families'
/// addresses, kept for `ttl` seconds.
fn answered(name: &str, ttl: u32, now: Instant) -> Resolver {
    let mut r = resolver();
    r.lookup(name, now);
    for q in std::mem::take(&mut r.datagrams) {
        r.on_datagram(&answer(&q, |q, m| addresses(q, m, ttl)), now);
    }
    r
}

fn addresses(q: &Query, m: &mut Message, ttl: u32) {
    let rdata = match q.query_type() {
        RecordType::A => RData::A(A(Ipv4Addr::new(10, 1, 2, 3))),
        _ => RData::AAAA(AAAA(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))),
    };
    m.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata));
}

fn v4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
}
fn v6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
}

#[test]
fn literals_and_localhost_never_reach_the_server() {
    let mut r = resolver();
    let now = Instant::now();
    assert_eq!(
        r.lookup("192.0.2.7", now),
        Lookup::Ready(Ok(vec!["192.0.2.7".parse().unwrap()]))
    );
    assert_eq!(
        r.lookup("[::1]", now),
        Lookup::Ready(Ok(vec!["::1".parse().unwrap()]))
    );
    assert!(matches!(r.lookup("LocalHost.", now), Lookup::Ready(Ok(a)) if a[0].is_loopback()));
    // An address with a final dot is the address, as without a server.
    assert_eq!(
        r.lookup("192.0.2.7.", now),
        Lookup::Ready(Ok(vec!["192.0.2.7".parse().unwrap()]))
    );
    assert!(r.datagrams.is_empty());
}

#[test]
fn a_name_with_an_empty_label_is_refused_before_it_is_asked() {
    let mut r = resolver();
    let now = Instant::now();
    // And names that are no names: a last label that is a number (glibc
    // reads `127.1` as 127.0.0.1, DNS as a name), an escape.
    for bad in [
        "api.test..",
        "..",
        ".",
        "a..test",
        "127.1",
        "0x7f.1",
        "2130706433",
        "%6Cocalhost",
        // Under localhost too: it is no loopback name then.
        "a..localhost",
        "%.localhost",
    ] {
        assert_eq!(
            r.lookup(bad, now),
            Lookup::Ready(Err(ResolveError::InvalidName)),
            "{bad}"
        );
    }
    assert!(r.datagrams.is_empty());
    assert_eq!(r.lookup("api.test.", now), Lookup::Pending);
}

#[test]
fn a_and_aaaa_are_asked_at_once_and_shared_by_concurrent_lookups() {
    let mut r = resolver();
    let now = Instant::now();
    assert_eq!(r.lookup("api.test", now), Lookup::Pending);
    assert_eq!(r.lookup("API.test.", now), Lookup::Pending);
    let queries = std::mem::take(&mut r.datagrams);
    assert_eq!(queries.len(), 2, "one A and one AAAA query, shared");
    let ids: Vec<u16> = queries
        .iter()
        .map(|q| Message::from_vec(q).unwrap().metadata.id)
        .collect();
    assert_ne!(ids[0], ids[1]);
    // Answers in either order; the outcome lists IPv4 first.
    r.on_datagram(&answer(&queries[1], |q, m| addresses(q, m, 30)), now);
    assert!(r.finished.is_empty());
    r.on_datagram(&answer(&queries[0], |q, m| addresses(q, m, 60)), now);
    assert_eq!(r.finished, vec![("api.test".into(), Ok(vec![v4(), v6()]))]);
    assert!(!r.is_busy());
    // Kept for the shorter TTL (30 s), then asked again.
    let later = now + Duration::from_secs(20);
    assert_eq!(
        r.lookup("api.test", later),
        Lookup::Ready(Ok(vec![v4(), v6()]))
    );
    assert!(r.datagrams.is_empty());
    assert_eq!(
        r.lookup("api.test", now + Duration::from_secs(31)),
        Lookup::Pending
    );
    assert_eq!(r.datagrams.len(), 2);
}

#[test]
fn a_cname_chain_resolves_and_nxdomain_is_typed() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("alias.test", now);
    for q in std::mem::take(&mut r.datagrams) {
        let reply = answer(&q, |q, m| {
            let target = parse_name("real.test").unwrap();
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                10,
                RData::CNAME(CNAME(target.clone())),
            ));
            if q.query_type() == RecordType::A {
                m.add_answer(Record::from_rdata(
                    target,
                    10,
                    RData::A(A(Ipv4Addr::new(10, 1, 2, 3))),
                ));
            }
        });
        r.on_datagram(&reply, now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("alias.test".into(), Ok(vec![v4()])))
    );

    r.lookup("missing.test", now);
    for q in std::mem::take(&mut r.datagrams) {
        let reply = answer(&q, |_, m| {
            m.metadata.response_code = ResponseCode::NXDomain;
        });
        r.on_datagram(&reply, now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("missing.test".into(), Err(ResolveError::NoSuchName)))
    );
}

#[test]
fn stray_and_forged_datagrams_do_not_end_a_lookup() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("api.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    // Wrong id, garbage, our own query echoed, and an empty datagram.
    let mut wrong = answer(&queries[0], |q, m| addresses(q, m, 5));
    wrong[0] ^= 0x55;
    r.on_datagram(&wrong, now);
    r.on_datagram(&[], now);
    r.on_datagram(&queries[0], now);
    let mut garbage = queries[0][..2].to_vec();
    garbage.extend_from_slice(&[0xff; 40]);
    r.on_datagram(&garbage, now);
    assert!(r.finished.is_empty() && r.is_busy());
    for q in &queries {
        r.on_datagram(&answer(q, |q, m| addresses(q, m, 5)), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("api.test".into(), Ok(vec![v4(), v6()])))
    );
}

/// Each lookup is tagged by its first query's id; an answer is taken
/// only from its own lookup's socket, and a lookup answered over UDP no
/// longer waits for datagrams (its socket can close).
#[test]
fn each_lookup_has_a_tag_and_takes_answers_only_from_its_own_socket() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("one.test", now);
    r.lookup("two.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let id = |q: &Vec<u8>| Message::from_vec(q).unwrap().metadata.id;
    let ids: Vec<u16> = queries.iter().map(id).collect();
    let (one, two) = (ids[0], ids[2]);
    assert_ne!(one, two);
    assert_eq!(r.tag_of(ids[0]), Some(one));
    assert_eq!(
        r.tag_of(ids[1]),
        Some(one),
        "A and AAAA share their lookup's tag"
    );
    assert_eq!(r.tag_of(ids[3]), Some(two));
    let unused = (0..=u16::MAX).find(|x| !ids.contains(x)).unwrap();
    assert_eq!(r.tag_of(unused), None);
    assert!(r.awaits_datagram(one) && r.awaits_datagram(two));

    // one.test's answers, arriving on two.test's socket: not taken.
    for q in &queries[..2] {
        r.on_datagram_for(two, &answer(q, |q, m| addresses(q, m, 5)), now);
    }
    assert!(r.finished.is_empty() && r.awaits_datagram(one));
    // On its own socket: taken.
    for q in &queries[..2] {
        r.on_datagram_for(one, &answer(q, |q, m| addresses(q, m, 5)), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("one.test".into(), Ok(vec![v4(), v6()])))
    );
    assert!(!r.awaits_datagram(one) && r.tag_of(ids[0]).is_none());
    assert_eq!(
        std::mem::take(&mut r.ended_tags),
        [one],
        "its socket is to close"
    );
    assert!(r.awaits_datagram(two));

    // A lookup whose socket fails ends alone, with that error.
    r.lookup("three.test", now);
    let three = r.tag_of(id(&r.datagrams[0])).unwrap();
    let refused = ResolveError::Unreachable("no socket".into());
    r.on_lookup_error(two, refused.clone(), now);
    assert_eq!(r.finished.pop(), Some(("two.test".into(), Err(refused))));
    assert_eq!(std::mem::take(&mut r.ended_tags), [two]);
    assert!(r.awaits_datagram(three) && r.finished.is_empty());
}

#[test]
fn unanswered_queries_are_resent_then_time_out_with_a_typed_error() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("silent.test", now);
    let first = std::mem::take(&mut r.datagrams);
    assert_eq!(r.deadline(), Some(now + RESEND_AFTER));
    r.handle_timeout(now + RESEND_AFTER);
    assert_eq!(r.datagrams, first, "the same queries, sent again");
    r.handle_timeout(now + TIMEOUT);
    assert_eq!(
        r.finished.pop(),
        Some(("silent.test".into(), Err(ResolveError::Timeout(TIMEOUT))))
    );
    assert_eq!(r.deadline(), None);
    // A failure is kept for a second (RFC 9520 §3.2), then asked again.
    r.datagrams.clear();
    let timed_out = Lookup::Ready(Err(ResolveError::Timeout(TIMEOUT)));
    let almost = now + TIMEOUT + FAILURE_TTL - Duration::from_millis(1);
    assert_eq!(r.lookup("silent.test", now + TIMEOUT), timed_out);
    assert_eq!(r.lookup("silent.test", almost), timed_out);
    assert!(r.datagrams.is_empty(), "not asked while kept");
    let after = now + TIMEOUT + FAILURE_TTL;
    assert_eq!(r.lookup("silent.test", after), Lookup::Pending);
    assert_eq!(r.datagrams.len(), 2, "asked again");
}

/// A broken datagram is the cause named for its own query only: one that
/// a good answer followed does not relabel the other query's timeout.
#[test]
fn a_broken_datagram_answered_after_does_not_name_the_other_querys_timeout() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("quiet.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let mut cut = answer(&queries[0], |_, _| {});
    cut.truncate(cut.len() - 3);
    r.on_datagram(&cut, now);
    r.on_datagram(&answer(&queries[0], |_, _| {}), now); // no address
    r.handle_timeout(now + TIMEOUT);
    assert_eq!(
        r.finished.pop(),
        Some(("quiet.test".into(), Err(ResolveError::Timeout(TIMEOUT))))
    );
}

#[test]
fn only_garbage_back_ends_as_a_bad_answer() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("junk.test", now);
    for q in std::mem::take(&mut r.datagrams) {
        let mut cut = answer(&q, |q, m| addresses(q, m, 5));
        cut.truncate(cut.len() - 3);
        r.on_datagram(&cut, now);
    }
    r.handle_timeout(now + TIMEOUT);
    assert_eq!(
        r.finished.pop(),
        Some((
            "junk.test".into(),
            Err(ResolveError::BadAnswer("malformed answer"))
        ))
    );
}

/// A lookup of `big.test` begun at `now`: the resolver, its two queries,
/// and a truncated answer to the first.
fn big_lookup(now: Instant) -> (Resolver, Vec<Vec<u8>>, Vec<u8>) {
    let mut r = resolver();
    r.lookup("big.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let truncated = answer(&queries[0], |_, m| {
        m.metadata.truncation = true;
    });
    (r, queries, truncated)
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let now = Instant::now();
    let (mut r, queries, truncated) = big_lookup(now);
    r.on_datagram(&truncated, now);
    r.on_datagram(&answer(&queries[1], |_, _| {}), now);
    let (id, query) = r.over_tcp.pop().expect("asked over TCP");
    assert_eq!(query, queries[0]);
    // A UDP answer for it now is ignored: it is TCP's to answer.
    r.on_datagram(&answer(&queries[0], |q, m| addresses(q, m, 5)), now);
    assert!(r.finished.is_empty());
    r.on_tcp_answer(id, Ok(&answer(&query, |q, m| addresses(q, m, 5))), now);
    assert_eq!(r.finished.pop(), Some(("big.test".into(), Ok(vec![v4()]))));
}

/// `query` asked again: the same question under another id.
fn asked_again(query: &[u8], retry: &[u8]) -> bool {
    id_of(query) != id_of(retry) && query[2..] == retry[2..]
}

/// `query` answered SERVFAIL, and so is the retry that brings.
fn failed_twice(r: &mut Resolver, query: &[u8], now: Instant) {
    r.on_datagram(&servfail(query), now);
    let retry = std::mem::take(&mut r.datagrams);
    assert!(retry.len() == 1 && asked_again(query, &retry[0]));
    r.on_datagram(&servfail(&retry[0]), now);
}

/// A server failure (SERVFAIL) is asked again at once, once: a passing one
/// no longer leaves the other family's addresses alone (IPv6 only, where
/// there may be no route for it); a second ends the family with it.
#[test]
fn a_server_failure_is_asked_again_once() {
    let now = Instant::now();
    let mut r = resolver();
    r.lookup("flaky.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    r.on_datagram(&servfail(&queries[0]), now);
    let retry = std::mem::take(&mut r.datagrams);
    assert!(
        retry.len() == 1 && asked_again(&queries[0], &retry[0]),
        "asked again at once"
    );
    // The same failure again (a server's or a network's duplicate) is not
    // the retry's answer: it used to end the lookup with the failure.
    r.on_datagram(&servfail(&queries[0]), now);
    r.on_datagram(&answer(&queries[1], |q, m| addresses(q, m, 5)), now);
    assert!(r.finished.is_empty(), "A is still asked");
    r.on_datagram(&answer(&retry[0], |q, m| addresses(q, m, 5)), now);
    assert_eq!(
        r.finished.pop(),
        Some(("flaky.test".into(), Ok(vec![v4(), v6()])))
    );
    // Failing twice, the family ends with the failure: here the lookup.
    let mut r = resolver();
    r.lookup("down.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    for q in &queries {
        r.on_datagram(&servfail(q), now);
    }
    let retries = std::mem::take(&mut r.datagrams);
    assert!(
        retries.len() == 2 && queries.iter().zip(&retries).all(|(q, r)| asked_again(q, r)),
        "each asked again"
    );
    for q in &retries {
        r.on_datagram(&servfail(q), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("down.test".into(), Err(ResolveError::ServerFailure(2))))
    );
    // A failure just before the timer's resend: the retry is waited for
    // a whole interval, not sent twice.
    let mut r = resolver();
    r.lookup("slow.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let just_before = now + RESEND_AFTER - Duration::from_millis(10);
    r.on_datagram(&servfail(&queries[0]), just_before);
    r.on_datagram(&answer(&queries[1], |q, m| addresses(q, m, 5)), just_before);
    let retry = std::mem::take(&mut r.datagrams);
    assert!(retry.len() == 1 && asked_again(&queries[0], &retry[0]));
    r.handle_timeout(now + RESEND_AFTER);
    assert!(r.datagrams.is_empty(), "sent twice");
    // The other family's resend is not put off by it: its datagram lost,
    // it goes at its own time.
    let mut r = resolver();
    r.lookup("lossy.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    r.on_datagram(&servfail(&queries[0]), just_before);
    let retry = std::mem::take(&mut r.datagrams);
    assert!(retry.len() == 1 && asked_again(&queries[0], &retry[0]));
    assert_eq!(r.deadline(), Some(now + RESEND_AFTER));
    r.handle_timeout(now + RESEND_AFTER);
    assert_eq!(r.datagrams, [queries[1].clone()], "the lost one, again");
    r.datagrams.clear();
    assert_eq!(r.deadline(), Some(just_before + RESEND_AFTER));
    r.handle_timeout(just_before + RESEND_AFTER);
    assert_eq!(r.datagrams, retry, "the retry, unanswered, again");
    // Failed once and then silent, it ends with the failure at its deadline.
    let mut r = resolver();
    r.lookup("mute.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    for q in &queries {
        r.on_datagram(&servfail(q), now);
    }
    r.handle_timeout(now + TIMEOUT);
    assert_eq!(
        r.finished.pop(),
        Some(("mute.test".into(), Err(ResolveError::ServerFailure(2))))
    );
}

/// The first query asked again under a new id: the lookup keeps its tag,
/// so the retry's answer, come to the lookup's socket, is taken, and the
/// socket is let go by that tag.
#[test]
fn a_lookup_keeps_its_tag_when_its_first_query_is_asked_again() {
    let now = Instant::now();
    let mut r = resolver();
    r.lookup("retag.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let tag = id_of(&queries[0]).expect("an id");
    r.on_datagram_for(tag, &servfail(&queries[0]), now);
    let retry = std::mem::take(&mut r.datagrams);
    assert!(retry.len() == 1 && asked_again(&queries[0], &retry[0]));
    assert_eq!(id_of(&retry[0]).and_then(|id| r.tag_of(id)), Some(tag));
    assert!(r.awaits_datagram(tag));
    r.on_datagram_for(tag, &answer(&queries[1], |q, m| addresses(q, m, 5)), now);
    r.on_datagram_for(tag, &answer(&retry[0], |q, m| addresses(q, m, 5)), now);
    assert_eq!(
        r.finished.pop(),
        Some(("retag.test".into(), Ok(vec![v4(), v6()])))
    );
    assert_eq!(r.ended_tags, [tag]);
}

/// A truncated answer cut off in the middle of a record, as RFC 1035
/// §4.2.1 has a server (or a proxy keeping to 512 bytes) cut it, is asked
/// again over TCP too: its records are not read. (It was taken for
/// garbage, and the lookup waited out its timeout.)
#[test]
fn an_answer_cut_off_mid_record_is_asked_again_over_tcp() {
    let now = Instant::now();
    let (mut r, queries, _) = big_lookup(now);
    let mut cut = answer(&queries[0], |q, m| {
        m.metadata.truncation = true;
        addresses(q, m, 5);
    });
    cut.truncate(cut.len() - 2);
    r.on_datagram(&cut, now);
    let (_, query) = r.over_tcp.pop().expect("asked over TCP");
    assert_eq!(query, queries[0]);
}

/// One family's addresses cut the wait for the other to a short grace, but
/// not when the other's answer was too large for a datagram and is being
/// asked over TCP, whichever came first.
#[test]
fn an_answer_asked_again_over_tcp_is_waited_for_its_full_time() {
    for truncated_first in [true, false] {
        let now = Instant::now();
        let (mut r, queries, truncated) = big_lookup(now);
        let v6 = answer(&queries[1], |q, m| addresses(q, m, 5));
        let order = match truncated_first {
            true => [&truncated, &v6],
            false => [&v6, &truncated],
        };
        for datagram in order {
            r.on_datagram(datagram, now);
        }
        let (id, query) = r.over_tcp.pop().expect("asked over TCP");
        // Well past the grace, the TCP answer is still waited for.
        let later = now + OTHER_FAMILY_GRACE * 5;
        assert!(r.deadline().is_some_and(|d| d > later), "{truncated_first}");
        r.handle_timeout(later);
        assert!(r.finished.is_empty(), "{truncated_first}");
        r.on_tcp_answer(id, Ok(&answer(&query, |q, m| addresses(q, m, 5))), later);
        let (_, found) = r.finished.pop().expect("finished");
        assert_eq!(
            found.map(|a| a.len()),
            Ok(2),
            "both families: {truncated_first}"
        );
    }
}

#[test]
fn a_tcp_failure_and_an_unreachable_server_are_reported() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("big.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    for q in &queries {
        r.on_datagram(
            &answer(q, |_, m| {
                m.metadata.truncation = true;
            }),
            now,
        );
    }
    for (id, _) in std::mem::take(&mut r.over_tcp) {
        r.on_tcp_answer(id, Ok(b"\x00"), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some((
            "big.test".into(),
            Err(ResolveError::BadAnswer("malformed answer over TCP"))
        ))
    );
}

/// A socket error (nothing listens at the server's port: it restarts)
/// ends only its own lookup, and only when the fresh socket of the next
/// resend reports one too; until then, and for the others, answers count.
#[test]
fn a_refused_query_is_asked_again_and_ends_only_its_own_lookup() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("a.test", now);
    r.lookup("b.test", now);
    r.lookup("c.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    let tag = |r: &Resolver, q: &Vec<u8>| r.tag_of(crate::dns::id_of(q).unwrap()).unwrap();
    let (a, b, c) = (
        tag(&r, &queries[0]),
        tag(&r, &queries[2]),
        tag(&r, &queries[4]),
    );
    let refused = || ResolveError::Unreachable("connection refused".into());
    r.on_socket_error(a, refused(), now);
    r.on_socket_error(c, refused(), now);
    assert!(r.finished.is_empty(), "no lookup ends at a first error");
    // The server is back: b's answers, and a's resent queries answered.
    for q in &queries[2..4] {
        r.on_datagram_for(b, &answer(q, |q, m| addresses(q, m, 5)), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("b.test".into(), Ok(vec![v4(), v6()])))
    );
    r.handle_timeout(now + RESEND_AFTER);
    let resent = std::mem::take(&mut r.datagrams);
    assert_eq!(resent.len(), 4, "a's and c's queries, sent again");
    let of_a: Vec<_> = resent.iter().filter(|q| tag(&r, q) == a).collect();
    assert_eq!(of_a.len(), 2);
    for q in of_a {
        r.on_datagram_for(a, &answer(q, |q, m| addresses(q, m, 5)), now);
    }
    assert_eq!(
        r.finished.pop(),
        Some(("a.test".into(), Ok(vec![v4(), v6()])))
    );
    // c's fresh socket is refused too: c ends, with that error.
    r.on_socket_error(c, refused(), now + RESEND_AFTER);
    assert_eq!(r.finished.pop(), Some(("c.test".into(), Err(refused()))));
    assert!(!r.is_busy());
    // Refused once, then unanswered: the timeout names the refusal.
    r.lookup("d.test", now);
    let asked = std::mem::take(&mut r.datagrams);
    let d = tag(&r, &asked[0]);
    r.on_socket_error(d, refused(), now);
    r.handle_timeout(now + TIMEOUT);
    assert_eq!(r.finished.pop(), Some(("d.test".into(), Err(refused()))));
}

/// Addresses for one family, or NXDOMAIN, cut the wait for the other
/// family's lost datagram to the grace, however the answer came.
#[test]
fn a_conclusive_answer_over_tcp_or_nxdomain_cuts_the_wait_for_the_other_family() {
    // A over TCP with addresses; the AAAA datagram lost.
    let now = Instant::now();
    let (mut r, _, truncated) = big_lookup(now);
    r.on_datagram(&truncated, now);
    let (id, query) = r.over_tcp.pop().expect("asked over TCP");
    let later = now + Duration::from_millis(300);
    r.on_tcp_answer(id, Ok(&answer(&query, |q, m| addresses(q, m, 5))), later);
    assert_eq!(r.deadline(), Some(later + OTHER_FAMILY_GRACE));
    r.handle_timeout(later + OTHER_FAMILY_GRACE);
    assert_eq!(r.finished.pop(), Some(("big.test".into(), Ok(vec![v4()]))));

    // NXDOMAIN for A; the AAAA datagram lost.
    let mut r = resolver();
    r.lookup("gone.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    r.on_datagram(
        &answer(&queries[0], |_, m| {
            m.metadata.response_code = ResponseCode::NXDomain;
        }),
        now,
    );
    assert_eq!(r.deadline(), Some(now + OTHER_FAMILY_GRACE));
    r.handle_timeout(now + OTHER_FAMILY_GRACE);
    assert_eq!(
        r.finished.pop(),
        Some(("gone.test".into(), Err(ResolveError::NoSuchName)))
    );
}

#[test]
fn a_zero_ttl_answer_is_used_but_not_kept() {
    let now = Instant::now();
    let mut r = answered("fleeting.test", 0, now);
    assert_eq!(
        r.finished.pop(),
        Some(("fleeting.test".into(), Ok(vec![v4(), v6()])))
    );
    assert_eq!(r.lookup("fleeting.test", now), Lookup::Pending);
}

#[test]
fn the_cache_is_bounded() {
    let mut r = resolver();
    let now = Instant::now();
    for i in 0..(MAX_CACHED + 10) {
        r.lookup(&format!("n{i}.test"), now);
        for q in std::mem::take(&mut r.datagrams) {
            r.on_datagram(&answer(&q, |q, m| addresses(q, m, 300)), now);
        }
    }
    assert_eq!(r.finished.len(), MAX_CACHED + 10);
    assert!(r.cached_count() <= MAX_CACHED);
}

#[test]
fn dns_server_is_ip_and_port_or_an_ip_alone() {
    assert_eq!(
        parse_server("127.0.0.1:5353"),
        Ok("127.0.0.1:5353".parse().unwrap())
    );
    assert_eq!(parse_server("::1"), Ok("[::1]:53".parse().unwrap()));
    assert_eq!(parse_server("[::1]"), Ok("[::1]:53".parse().unwrap()));
    assert!(parse_server("dns.example:53")
        .unwrap_err()
        .contains("not an address"));
    // An address alone, or an address and a port: the brackets say which.
    for ambiguous in ["::1:5353", "fd00::1:53", "2001:db8::1:853"] {
        assert!(
            parse_server(ambiguous).unwrap_err().contains("ambiguous"),
            "{ambiguous}"
        );
    }
    assert_eq!(
        parse_server("[::1:5353]"),
        Ok("[::1:5353]:53".parse().unwrap())
    );
    assert_eq!(
        parse_server("[::1]:5353"),
        Ok("[::1]:5353".parse().unwrap())
    );
    assert!(parse_server("[fe80::1%2]:53").unwrap_err().contains("zone"));
    for no_port in ["127.0.0.1:0", "[::1]:0"] {
        assert!(
            parse_server(no_port).unwrap_err().contains("port 0"),
            "{no_port}"
        );
    }
    // A last group that cannot be a port, or a head that is no address.
    for plain in ["2001:db8::53", "::1", "fd00::abcd", "1:2:3:4:5:6:7:8"] {
        assert!(parse_server(plain).is_ok(), "{plain}");
    }
}

#[test]
fn a_name_in_use_is_asked_again_before_it_expires_and_its_users_never_wait() {
    let now = Instant::now();
    let mut r = answered("busy.test", 8, now);
    r.finished.clear();
    // Early in its TTL: from the cache, nothing asked.
    assert_eq!(
        r.lookup("busy.test", now + Duration::from_secs(5)),
        Lookup::Ready(Ok(vec![v4(), v6()]))
    );
    assert!(r.datagrams.is_empty());
    // In its last quarter: still from the cache, and asked again once.
    let late = now + Duration::from_secs(7);
    assert_eq!(
        r.lookup("busy.test", late),
        Lookup::Ready(Ok(vec![v4(), v6()]))
    );
    assert_eq!(
        r.lookup("busy.test", late),
        Lookup::Ready(Ok(vec![v4(), v6()]))
    );
    let refresh = std::mem::take(&mut r.datagrams);
    assert_eq!(refresh.len(), 2);
    // A failed refresh leaves the entry to its expiry.
    let refresh_tag = r.tag_of(crate::dns::id_of(&refresh[0]).unwrap()).unwrap();
    r.on_lookup_error(
        refresh_tag,
        ResolveError::Unreachable("refused".into()),
        late,
    );
    r.finished.clear();
    assert!(matches!(r.lookup("busy.test", late), Lookup::Ready(Ok(_))));
    assert!(
        r.datagrams.is_empty(),
        "a failed refresh made again at once"
    );
    // Expired: asked again, and the new answer counts from its arrival.
    let expired = now + Duration::from_secs(8);
    assert_eq!(r.lookup("busy.test", expired), Lookup::Pending);
    let fresh = std::mem::take(&mut r.datagrams);
    for q in fresh {
        r.on_datagram(&answer(&q, |q, m| addresses(q, m, 8)), expired);
    }
    assert!(matches!(
        r.lookup("busy.test", now + Duration::from_secs(13)),
        Lookup::Ready(Ok(_))
    ));
    assert!(r.datagrams.is_empty());
}

/// A refresh that fails is made again no sooner than [`SYSTEM_TTL`] later
/// (each use of a name in its last quarter asked a failing server again);
/// one answered with TTL 0 ends the entry (its addresses are not to be
/// kept, the old ones no more than the new), as does an NXDOMAIN not to
/// be kept.
#[test]
fn a_failed_refresh_backs_off_and_one_with_ttl_0_ends_the_entry() {
    let now = Instant::now();
    let mut r = answered("flaky.test", 100, now);
    r.finished.clear();
    let at = |secs| now + Duration::from_secs(secs);
    assert!(matches!(
        r.lookup("flaky.test", at(80)),
        Lookup::Ready(Ok(_))
    ));
    let refresh = std::mem::take(&mut r.datagrams);
    assert_eq!(refresh.len(), 2);
    for q in &refresh {
        failed_twice(&mut r, q, at(80));
    }
    assert_eq!(r.finished.len(), 1, "the refresh ended");
    let until_backoff = at(80) + SYSTEM_TTL - Duration::from_millis(1);
    for t in [at(80), until_backoff] {
        assert_eq!(
            r.lookup("flaky.test", t),
            Lookup::Ready(Ok(vec![v4(), v6()]))
        );
        assert!(r.datagrams.is_empty(), "asked again before the backoff");
    }
    let again = at(80) + SYSTEM_TTL;
    assert!(matches!(
        r.lookup("flaky.test", again),
        Lookup::Ready(Ok(_))
    ));
    let refresh = std::mem::take(&mut r.datagrams);
    assert_eq!(refresh.len(), 2, "asked again after the backoff");
    for q in &refresh {
        r.on_datagram(&answer(q, |q, m| addresses(q, m, 0)), again);
    }
    r.datagrams.clear();
    assert_eq!(
        r.lookup("flaky.test", again),
        Lookup::Pending,
        "kept past TTL 0"
    );
    // So does a refresh that says the name is gone, uncacheable (no SOA):
    // that is the name's answer, not a failure to get one.
    let mut r = answered("gone.test", 100, now);
    assert!(matches!(
        r.lookup("gone.test", at(80)),
        Lookup::Ready(Ok(_))
    ));
    for q in std::mem::take(&mut r.datagrams) {
        let nxdomain = answer(&q, |_, m| m.metadata.response_code = ResponseCode::NXDomain);
        r.on_datagram(&nxdomain, at(80));
    }
    r.datagrams.clear();
    assert_eq!(
        r.lookup("gone.test", at(80)),
        Lookup::Pending,
        "kept past NXDOMAIN"
    );
}

/// A refresh that hears from one family only (the other's server failed)
/// leaves the whole entry while it is good: it had replaced it with the
/// one family, for its users an IPv6-only answer on a network that may
/// have no route for it.
#[test]
fn a_refresh_of_one_family_leaves_the_whole_entry() {
    let now = Instant::now();
    let mut r = answered("both.test", 8, now);
    let late = now + Duration::from_secs(7);
    assert!(matches!(r.lookup("both.test", late), Lookup::Ready(Ok(_))));
    let refresh = std::mem::take(&mut r.datagrams);
    failed_twice(&mut r, &refresh[0], late);
    r.on_datagram(&answer(&refresh[1], |q, m| addresses(q, m, 8)), late);
    assert_eq!(
        r.finished.pop(),
        Some(("both.test".into(), Ok(vec![v4(), v6()])))
    );
    assert_eq!(
        r.lookup("both.test", late),
        Lookup::Ready(Ok(vec![v4(), v6()]))
    );
    // Asked again no sooner than a partial answer would have been.
    assert!(r.datagrams.is_empty(), "asked again at once");
    // An entry of one family is not kept over the other's: a refresh of
    // an IPv6-only answer that gets IPv4 alone takes it.
    let mut r = resolver();
    r.lookup("one.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    failed_twice(&mut r, &queries[0], now);
    r.on_datagram(&answer(&queries[1], |q, m| addresses(q, m, 8)), now);
    assert_eq!(r.finished.pop(), Some(("one.test".into(), Ok(vec![v6()]))));
    let late = now + Duration::from_secs(4);
    assert!(matches!(r.lookup("one.test", late), Lookup::Ready(Ok(_))));
    let refresh = std::mem::take(&mut r.datagrams);
    r.on_datagram(&answer(&refresh[0], |q, m| addresses(q, m, 8)), late);
    failed_twice(&mut r, &refresh[1], late);
    assert_eq!(r.finished.pop(), Some(("one.test".into(), Ok(vec![v4()]))));
}

/// IPv6 addresses first do not cut the wait for IPv4's: its datagram lost,
/// it is asked again, and the lookup ends with both (IPv4 first). (It
/// ended after the grace with IPv6 alone, which a network without IPv6
/// cannot reach.)
#[test]
fn an_ipv6_answer_first_waits_for_the_ipv4_one() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("v6first.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    r.on_datagram(&answer(&queries[1], |q, m| addresses(q, m, 30)), now);
    assert!(r.finished.is_empty());
    assert_eq!(r.deadline(), Some(now + RESEND_AFTER));
    r.handle_timeout(now + RESEND_AFTER);
    assert!(r.finished.is_empty(), "ended at the grace");
    let again = std::mem::take(&mut r.datagrams);
    assert_eq!(again, [queries[0].clone()], "the A query again");
    let later = now + RESEND_AFTER + Duration::from_millis(20);
    r.on_datagram(&answer(&again[0], |q, m| addresses(q, m, 30)), later);
    assert_eq!(
        r.finished.pop(),
        Some(("v6first.test".into(), Ok(vec![v4(), v6()])))
    );
}

#[test]
fn a_family_that_never_answers_costs_only_a_short_grace() {
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("v4only.test", now);
    let queries = std::mem::take(&mut r.datagrams);
    // The A answer comes; the AAAA query is dropped by the server.
    r.on_datagram(&answer(&queries[0], |q, m| addresses(q, m, 30)), now);
    assert!(r.finished.is_empty());
    assert_eq!(r.deadline(), Some(now + OTHER_FAMILY_GRACE));
    r.handle_timeout(now + OTHER_FAMILY_GRACE);
    assert_eq!(
        r.finished.pop(),
        Some(("v4only.test".into(), Ok(vec![v4()])))
    );
    // Kept only briefly, not for the answer's 30 s: the lost query may
    // have been the family the caller needs.
    let done = now + OTHER_FAMILY_GRACE;
    assert_eq!(
        r.lookup("v4only.test", done + SYSTEM_TTL / 2),
        Lookup::Ready(Ok(vec![v4()]))
    );
    assert_eq!(
        r.lookup("v4only.test", done + SYSTEM_TTL + Duration::from_secs(1)),
        Lookup::Pending
    );
}

#[test]
fn negative_answers_are_kept_briefly_and_long_answers_are_cut() {
    use hickory_proto::rr::rdata::SOA;
    let mut r = resolver();
    let now = Instant::now();
    r.lookup("gone.test", now);
    for q in std::mem::take(&mut r.datagrams) {
        let reply = answer(&q, |_, m| {
            m.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(
                parse_name("test").unwrap(),
                parse_name("a.test").unwrap(),
                1,
                1,
                1,
                1,
                u32::MAX >> 1,
            );
            m.add_authority(Record::from_rdata(
                parse_name("test").unwrap(),
                u32::MAX >> 1,
                RData::SOA(soa),
            ));
        });
        r.on_datagram(&reply, now);
    }
    r.finished.clear();
    // A day-long negative TTL is kept five minutes.
    let soon = now + Duration::from_secs(299);
    assert_eq!(
        r.lookup("gone.test", soon),
        Lookup::Ready(Err(ResolveError::NoSuchName))
    );
    assert_eq!(
        r.lookup("gone.test", now + Duration::from_secs(301)),
        Lookup::Pending
    );
    r.datagrams.clear();

    r.lookup("many.test", now);
    let many = |q: &Query, m: &mut Message| {
        if q.query_type() == RecordType::A {
            for i in 0..200u32 {
                let ip = Ipv4Addr::from(0x0a00_0000 + i);
                m.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
            }
        }
    };
    for q in std::mem::take(&mut r.datagrams) {
        r.on_datagram(&answer(&q, many), now);
    }
    // Over 512 bytes, a datagram is not read: the answer is asked for
    // over TCP, as a truncated one is.
    assert!(r.finished.is_empty());
    let (id, query) = r.over_tcp.pop().expect("asked over TCP");
    r.on_tcp_answer(id, Ok(&answer(&query, many)), now);
    let (_, resolved) = r.finished.pop().expect("done");
    assert_eq!(resolved.map(|a| a.len()), Ok(MAX_ADDRESSES));
}

/// Past MAX_PENDING lookups a name waits for one to end, then is asked;
/// past MAX_WAITING more it fails at once. (Every name past 256 failed at
/// once: `send_all` to many hosts lost all but the first 256.)
#[test]
fn lookups_under_way_are_bounded_and_ids_never_repeat() {
    let mut r = resolver();
    let now = Instant::now();
    for i in 0..MAX_PENDING {
        assert_eq!(r.lookup(&format!("n{i}.test"), now), Lookup::Pending);
    }
    let asked = std::mem::take(&mut r.datagrams);
    assert_eq!(asked.len(), 2 * MAX_PENDING);
    assert_eq!(r.lookup("one-more.test", now), Lookup::Pending);
    assert_eq!(
        r.lookup("ONE-MORE.test.", now),
        Lookup::Pending,
        "waits once"
    );
    for i in 1..MAX_WAITING {
        assert_eq!(r.lookup(&format!("w{i}.test"), now), Lookup::Pending);
    }
    assert_eq!(
        r.lookup("too-many.test", now),
        Lookup::Ready(Err(ResolveError::TooManyLookups))
    );
    assert!(r.datagrams.is_empty(), "the waiting are not asked yet");
    // One lookup ends (NXDOMAIN): the first waiting name is asked.
    for q in &asked[..2] {
        let reply = answer(q, |_, m| m.metadata.response_code = ResponseCode::NXDomain);
        r.on_datagram(&reply, now);
    }
    let next: Vec<String> = (r.datagrams.iter())
        .map(|q| Message::from_vec(q).unwrap().queries[0].name.to_string())
        .collect();
    assert_eq!(next, ["one-more.test.", "one-more.test."]);
    let mut ids: Vec<u16> = asked
        .iter()
        .chain(&r.datagrams)
        .map(|q| Message::from_vec(q).unwrap().metadata.id)
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "every query of every lookup has its own id");
}

/// A name that waits for a turn waits no longer than its timeout: it then
/// ends as a timeout, and is not asked (behind a server that answers
/// nothing, names were asked a wave of 256 at a time, minutes after their
/// users had given up).
#[test]
fn a_name_waiting_its_whole_timeout_for_a_turn_times_out_unasked() {
    let mut r = resolver();
    let start = Instant::now();
    for i in 0..MAX_PENDING {
        assert_eq!(r.lookup(&format!("n{i}.test"), start), Lookup::Pending);
    }
    r.datagrams.clear();
    let later = start + TIMEOUT / 2;
    assert_eq!(r.lookup("late.test", later), Lookup::Pending);
    assert_eq!(r.deadline(), Some(start + RESEND_AFTER));
    // The lookups under way time out, and make room for it: it is asked.
    r.handle_timeout(start + TIMEOUT);
    assert_eq!(r.finished.len(), MAX_PENDING);
    r.finished.clear();
    assert_eq!(r.datagrams.len(), 2, "asked once its turn came");
    // Within what is left of its time: it was wanted at `later`.
    r.handle_timeout(later + TIMEOUT - Duration::from_millis(1));
    assert!(r.finished.is_empty());
    r.handle_timeout(later + TIMEOUT);
    assert_eq!(
        r.finished,
        [("late.test".into(), Err(ResolveError::Timeout(TIMEOUT)))]
    );
    r.finished.clear();

    // Again, but its turn comes only after its own timeout.
    let mut r = resolver();
    for i in 0..MAX_PENDING {
        assert_eq!(r.lookup(&format!("n{i}.test"), start), Lookup::Pending);
    }
    assert_eq!(r.lookup("late.test", start), Lookup::Pending);
    r.datagrams.clear();
    // Every resend in time, then all at once past the timeout.
    r.handle_timeout(start + TIMEOUT + Duration::from_millis(1));
    let late: Vec<_> = r
        .finished
        .iter()
        .filter(|(k, _)| &**k == "late.test")
        .collect();
    assert_eq!(
        late,
        [&("late.test".into(), Err(ResolveError::Timeout(TIMEOUT)))],
        "ended as a timeout"
    );
    assert!(r.datagrams.is_empty(), "and not asked");
    assert_eq!(r.deadline(), None, "nothing left to wait for");
}
