//! DNS messages: a query for one name and type, and what an answer to it
//! says. Encoding and decoding are hickory-proto's; the rules for what
//! counts as an answer to *our* question are here.

use super::ResolveError;
use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use std::net::IpAddr;

/// CNAME records followed within one answer: a longer chain, or a loop, ends
/// with no address.
const MAX_CNAME_HOPS: usize = 8;

/// The longest answer read. An answer to one A or AAAA question with the
/// 32 addresses kept per family takes well under 2 KiB; a longer one can
/// only be a broken or hostile server's. Compression pointers may chain
/// each name through thousands of earlier ones, so reading a message costs
/// up to the square of its length (80 ms natively for 64 KiB of them, far
/// longer under an interpreter, with every connection waiting); at 16 KiB
/// it is a sixteenth of that.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

// `pointer_hops_bounded` keeps positions in a u16.
const _: () = assert!(MAX_ANSWER_BYTES < u16::MAX as usize);

/// The longest answer taken over UDP. The query has no EDNS record, so a
/// server keeps a datagram to 512 bytes (RFC 1035 §4.2.1) and sets TC on
/// a longer answer; a longer datagram is asked for again over TCP, as a
/// truncated one is. Datagrams are what an off-path sender can try to
/// forge, and a server may send one more than once: each is read at a
/// cost of a few hundred bytes.
pub(crate) const MAX_DATAGRAM_BYTES: usize = 512;

/// The compression pointers one name may follow. Each pointer of a name a
/// server compressed leads to an earlier occurrence of its suffix, at one
/// of its labels, so a name takes at most as many as it has labels (127).
/// More only chain pointers to pointers, to make reading a message cost
/// the square of its length: 590 records whose name goes through 4000
/// pointers took WasmEdge's interpreter 1.6 s per datagram, with every
/// connection waiting.
const MAX_POINTER_HOPS: u8 = 127;

/// The record type asked for: one query per family, as servers answer
/// only one question per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4: an `A` question.
    V4,
    /// IPv6: an `AAAA` question.
    V6,
}

impl Family {
    fn record_type(self) -> RecordType {
        match self {
            Family::V4 => RecordType::A,
            Family::V6 => RecordType::AAAA,
        }
    }
}

/// The name as DNS takes it: absolute (no search list: the guest cannot
/// read the host's resolv.conf, so a name is taken as written).
pub(crate) fn parse_name(host: &str) -> Result<Name, ResolveError> {
    if !super::is_host_name(host) {
        return Err(ResolveError::InvalidName);
    }
    let mut name = Name::from_ascii(host).map_err(|_| ResolveError::InvalidName)?;
    if name.num_labels() == 0 {
        return Err(ResolveError::InvalidName);
    }
    name.set_fqdn(true);
    Ok(name)
}

/// The query message: recursion desired, no EDNS (so a server keeps UDP
/// answers within 512 bytes and sets TC on longer ones).
pub(crate) fn query(id: u16, name: &Name, family: Family) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), family.record_type()));
    // A name that parsed encodes: only a label over 63 bytes or a name
    // over 255 could fail, and `Name::from_ascii` refuses both.
    message.to_vec().unwrap_or_default()
}

/// What one answer says about our question.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The addresses (possibly none: the name exists without this type),
    /// and for how long they may be kept.
    Addresses {
        /// In the answer's order, each once.
        addrs: Vec<IpAddr>,
        /// Seconds.
        ttl: u32,
    },
    /// NXDOMAIN, kept for `ttl` (the zone's negative TTL, 0 without one).
    NoSuchName {
        /// Seconds.
        ttl: u32,
    },
    /// The answer did not fit a datagram: ask again over TCP.
    Truncated,
    /// The server could not answer (SERVFAIL, REFUSED, ...).
    Failed(u16),
    /// No address, from a server that neither recursed (RA=0) nor holds
    /// the name (not authoritative for it, or only for an alias it did not
    /// follow; no SOA for a negative answer): it did not know, and would
    /// not ask. A resolver set to such a server (a
    /// zone's authoritative one, say) is misconfigured: every lookup would
    /// otherwise read as "no address".
    NotRecursive,
}

/// Why a datagram is not an answer to the query `id` for `name`.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnswer {
    /// Not a DNS message at all, or cut short.
    Malformed,
    /// Longer than [`MAX_ANSWER_BYTES`]: not read.
    TooLong,
    /// Some other query's answer (or a stray datagram): ignore it.
    Other,
}

/// A TTL as RFC 2181 §8 reads it: one with the top bit set is 0.
fn ttl_of(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

/// The id of a message, when it has at least a header's first two bytes.
pub(crate) fn id_of(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Adds `addr` unless it is there already.
pub(crate) fn push_new(addrs: &mut Vec<IpAddr>, addr: IpAddr) {
    // All zeros is how a blocking resolver says no, and a connect to it
    // reaches this host: not an address of the name.
    if addr.to_canonical().is_unspecified() {
        return;
    }
    if !addrs.contains(&addr) {
        addrs.push(addr);
    }
}

/// The header and question of a message (the count of questions is
/// checked to be 0 or 1 before).
fn head_of(bytes: &[u8]) -> Option<(Header, Option<Query>)> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    let question = match header.counts.queries {
        0 => None,
        _ => Some(Query::read(&mut decoder).ok()?),
    };
    Some((header, question))
}

/// Whether no name that could start anywhere in `bytes` follows more than
/// [`MAX_POINTER_HOPS`] compression pointers. Which bytes are names is
/// known only once the records are read, which is the work this bounds, so
/// every position is taken for a name's start: in one pass back, where its
/// labels lead (a pointer, the root, or nowhere); in one pass forward, the
/// pointers it follows from there. A pointer leads before the start of the
/// labels it ends (as hickory-proto requires), so the hops of its target
/// are known by then. Linear in the message's length.
fn pointer_hops_bounded(bytes: &[u8]) -> bool {
    const NOWHERE: u16 = u16::MAX;
    let len = bytes.len();
    // Where the labels from each position end: at a pointer or the root.
    let mut end = vec![NOWHERE; len];
    for at in (0..len).rev() {
        end[at] = match bytes[at] {
            0 | 0xC0..=0xFF => at as u16,
            label @ 1..=63 => end.get(at + 1 + label as usize).copied().unwrap_or(NOWHERE),
            _ => NOWHERE,
        };
    }
    let mut hops = vec![0u8; len];
    for at in 0..len {
        let stop = end[at] as usize;
        let (Some(&high), Some(&low)) = (bytes.get(stop), bytes.get(stop + 1)) else {
            continue;
        };
        if high < 0xC0 {
            continue;
        }
        let target = usize::from(high & 0x3F) << 8 | usize::from(low);
        if target < at {
            if hops[target] >= MAX_POINTER_HOPS {
                return false;
            }
            hops[at] = hops[target] + 1;
        }
    }
    true
}

/// Reads `bytes` as the answer to query `id` for `name` and `family`,
/// which came over UDP or TCP (`over_udp`).
pub(crate) fn read_answer(
    bytes: &[u8],
    id: u16,
    name: &Name,
    family: Family,
    over_udp: bool,
) -> Result<Answer, NotAnswer> {
    if id_of(bytes) != Some(id) {
        return Err(NotAnswer::Other);
    }
    // A datagram of any length over 512 bytes is asked for again over TCP
    // (below): one over 16 KiB too, where it was dropped and the lookup
    // waited for its timeout.
    if bytes.len() > MAX_ANSWER_BYTES && !over_udp {
        return Err(NotAnswer::TooLong);
    }
    // An answer repeats our one question or leaves it out. Refused before
    // parsing: the parser reserves room for as many questions as the
    // header claims (65535 of them: megabytes for a 12-byte datagram).
    if bytes
        .get(4..6)
        .is_some_and(|count| count[0] != 0 || count[1] > 1)
    {
        return Err(NotAnswer::Malformed);
    }
    let (header, question) = head_of(bytes).ok_or(NotAnswer::Malformed)?;
    if header.message_type != MessageType::Response || header.op_code != OpCode::Query {
        return Err(NotAnswer::Other);
    }
    let asked = family.record_type();
    // The whole question must be ours (RFC 5452 §9.1): name, type and class.
    match question {
        Some(q) if &q.name == name && q.query_type == asked && q.query_class == DNSClass::IN => {}
        // A server may leave the question out of a truncated answer, and
        // out of a refusal (FORMERR, SERVFAIL, NOTIMP, REFUSED: RFC 1035
        // §4.1.1 does not ask for it). Not out of an answer that is kept:
        // addresses or NXDOMAIN.
        None if header.truncation
            || !matches!(
                header.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) => {}
        _ => return Err(NotAnswer::Other),
    }
    // Before the records: a truncated answer may end in the middle of one
    // (RFC 1035 §4.2.1 cuts it at 512 bytes), and is asked again over TCP
    // whatever it holds.
    if header.truncation || (over_udp && bytes.len() > MAX_DATAGRAM_BYTES) {
        return Ok(Answer::Truncated);
    }
    if !pointer_hops_bounded(bytes) {
        return Err(NotAnswer::Malformed);
    }
    let message = Message::from_vec(bytes).map_err(|_| NotAnswer::Malformed)?;
    // The whole message's header from here: its response code takes the
    // high bits an OPT record carries.
    let header = &message.metadata;
    let negative_ttl = || {
        message
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(ttl_of(soa.minimum).min(ttl_of(r.ttl))),
                _ => None,
            })
            .unwrap_or(0)
    };
    match header.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        code => return Ok(Answer::Failed(u16::from(code))),
    }
    // The chain is walked for a negative answer too: it is the last name's
    // (RFC 6604), and kept no longer than the aliases that led to it.
    let (addrs, ttl, current) = follow_aliases(&message, name, asked);
    if header.response_code == ResponseCode::NXDomain {
        return Ok(Answer::NoSuchName {
            ttl: negative_ttl().min(ttl),
        });
    }
    // Authority covers the name asked (RFC 1034 §4.3.1), not the end of
    // an alias it did not follow.
    let knows = header.recursion_available
        || (header.authoritative && current == *name)
        || message
            .authorities
            .iter()
            .any(|r| matches!(r.data, RData::SOA(_)));
    if addrs.is_empty() && !knows {
        return Ok(Answer::NotRecursive);
    }
    if addrs.is_empty() {
        return Ok(Answer::Addresses {
            addrs,
            ttl: negative_ttl().min(ttl),
        });
    }
    Ok(Answer::Addresses { addrs, ttl })
}

/// The addresses of the type `asked` for `name` in the answer section,
/// through its aliases (CNAME records, at most `MAX_CNAME_HOPS`): the
/// addresses, the least TTL of the records that led to them, and the last
/// name reached.
fn follow_aliases(message: &Message, name: &Name, asked: RecordType) -> (Vec<IpAddr>, u32, Name) {
    let mut current = name.clone();
    let mut ttl = u32::MAX;
    let mut addrs = Vec::new();
    for _hop in 0..=MAX_CNAME_HOPS {
        let mut alias = None;
        let ours = |r: &&Record| r.name == current && r.dns_class == DNSClass::IN;
        for record in message.answers.iter().filter(ours) {
            match &record.data {
                // A record repeated (RFC 2181 §5 asks that duplicates be
                // suppressed) is one address: a second copy would take one
                // of the few fallbacks a connect tries.
                RData::A(a) if asked == RecordType::A => {
                    push_new(&mut addrs, IpAddr::V4(a.0));
                    ttl = ttl.min(ttl_of(record.ttl));
                }
                RData::AAAA(a) if asked == RecordType::AAAA => {
                    push_new(&mut addrs, IpAddr::V6(a.0));
                    ttl = ttl.min(ttl_of(record.ttl));
                }
                RData::CNAME(target) if alias.is_none() => {
                    alias = Some(target.0.clone());
                    ttl = ttl.min(ttl_of(record.ttl));
                }
                _ => {}
            }
        }
        match alias {
            Some(target) if addrs.is_empty() => current = target,
            _ => break,
        }
    }
    (addrs, ttl, current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
    use hickory_proto::rr::Record;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn name(s: &str) -> Name {
        parse_name(s).unwrap()
    }

    fn response(id: u16, q: &str, family: Family, code: ResponseCode) -> Message {
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.response_code = code;
        // As a recursive resolver answers.
        m.metadata.recursion_available = true;
        m.add_query(Query::query(name(q), family.record_type()));
        m
    }

    fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
    }

    fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn a_query_names_its_question_and_asks_for_recursion() {
        let bytes = query(0x1234, &name("www.example.test"), Family::V6);
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].query_type, RecordType::AAAA);
        assert_eq!(m.queries[0].name, name("www.example.test"));
    }

    #[test]
    fn a_cname_chain_is_followed_and_the_shortest_ttl_kept() {
        let mut m = response(7, "www.test", Family::V4, ResponseCode::NoError);
        m.add_answer(cname("www.test", 300, "mid.test"));
        m.add_answer(cname("mid.test", 60, "end.test"));
        m.add_answer(a("end.test", 120, [10, 0, 0, 1]));
        m.add_answer(a("end.test", 120, [10, 0, 0, 2]));
        // An address for a name outside the chain is not ours.
        m.add_answer(a("other.test", 1, [10, 9, 9, 9]));
        let got = read_answer(
            &m.to_vec().unwrap(),
            7,
            &name("WWW.test"),
            Family::V4,
            false,
        );
        assert_eq!(
            got,
            Ok(Answer::Addresses {
                addrs: vec![
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
                ],
                ttl: 60
            })
        );
    }

    #[test]
    fn a_cname_loop_ends_without_addresses() {
        let mut m = response(7, "a.test", Family::V4, ResponseCode::NoError);
        m.add_answer(cname("a.test", 30, "b.test"));
        m.add_answer(cname("b.test", 30, "a.test"));
        let got = read_answer(&m.to_vec().unwrap(), 7, &name("a.test"), Family::V4, false);
        assert!(matches!(got, Ok(Answer::Addresses { addrs, .. }) if addrs.is_empty()));
    }

    #[test]
    fn nxdomain_is_kept_for_the_zones_negative_ttl() {
        let mut m = response(9, "gone.test", Family::V6, ResponseCode::NXDomain);
        let soa = SOA::new(name("test"), name("admin.test"), 1, 60, 60, 600, 45);
        m.add_authority(Record::from_rdata(name("test"), 300, RData::SOA(soa)));
        let got = read_answer(
            &m.to_vec().unwrap(),
            9,
            &name("gone.test"),
            Family::V6,
            false,
        );
        assert_eq!(got, Ok(Answer::NoSuchName { ttl: 45 }));
    }

    /// A negative answer reached through an alias is kept no longer than
    /// the alias: it may point elsewhere once that expires.
    #[test]
    fn a_negative_answer_through_an_alias_is_kept_no_longer_than_it() {
        for (code, family) in [
            (ResponseCode::NXDomain, Family::V4),
            (ResponseCode::NoError, Family::V6),
        ] {
            let mut m = response(9, "www.a.test", family, code);
            m.add_answer(cname("www.a.test", 5, "gone.cdn.test"));
            let soa = SOA::new(
                name("cdn.test"),
                name("admin.cdn.test"),
                1,
                60,
                60,
                600,
                300,
            );
            m.add_authority(Record::from_rdata(name("cdn.test"), 300, RData::SOA(soa)));
            let got = read_answer(&m.to_vec().unwrap(), 9, &name("www.a.test"), family, false);
            let expected = match code {
                ResponseCode::NXDomain => Answer::NoSuchName { ttl: 5 },
                _ => Answer::Addresses {
                    addrs: vec![],
                    ttl: 5,
                },
            };
            assert_eq!(got, Ok(expected), "{code:?}");
        }
    }

    #[test]
    fn a_header_claiming_more_records_than_fit_is_refused_before_parsing() {
        // Our question, then nothing of the 65535 records each section
        // count claims: the parser would reserve room for them all.
        let name = name("x.test");
        let asked = response(7, "x.test", Family::V4, ResponseCode::NoError);
        let bytes = asked.to_vec().expect("encodes");
        for count in [6, 8, 10] {
            let mut lying = bytes.clone();
            lying[count..count + 2].copy_from_slice(&[0xff, 0xff]);
            let (got, largest) = crate::test_alloc::largest_allocation_in(|| {
                read_answer(&lying, 7, &name, Family::V4, false)
            });
            assert_eq!(got, Err(NotAnswer::Malformed), "count at {count}");
            assert!(
                largest < 4096,
                "{largest} bytes reserved for a {}-byte datagram",
                lying.len()
            );
        }
        // As many as fit are read: an answer of one record is one.
        let mut one = response(7, "x.test", Family::V4, ResponseCode::NoError);
        one.add_answer(a("x.test", 60, [127, 0, 0, 1]));
        let got = read_answer(&one.to_vec().expect("encodes"), 7, &name, Family::V4, false);
        assert!(matches!(got, Ok(Answer::Addresses { .. })), "{got:?}");
    }

    #[test]
    fn a_header_claiming_many_questions_is_refused_before_parsing() {
        // A 12-byte header that claims 65535 questions: the parser would
        // reserve room for all of them.
        let mut bytes = vec![0, 7, 0x81, 0x80, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
        let name = name("x.test");
        let (got, largest) = crate::test_alloc::largest_allocation_in(|| {
            read_answer(&bytes, 7, &name, Family::V4, false)
        });
        assert_eq!(got, Err(NotAnswer::Malformed));
        assert!(
            largest < 4096,
            "{largest} bytes reserved for a 12-byte datagram"
        );
        bytes[4..6].copy_from_slice(&[1, 0]);
        assert_eq!(
            read_answer(&bytes, 7, &name, Family::V4, false),
            Err(NotAnswer::Malformed)
        );
    }

    #[test]
    fn a_repeated_record_is_one_address() {
        let mut m = response(9, "x.test", Family::V4, ResponseCode::NoError);
        for octet in [1, 2, 1, 1] {
            m.add_answer(a("x.test", 5, [10, 0, 0, octet]));
        }
        let bytes = m.to_vec().unwrap();
        let Ok(Answer::Addresses { addrs, .. }) =
            read_answer(&bytes, 9, &name("x.test"), Family::V4, false)
        else {
            panic!("not addresses");
        };
        let expected: Vec<IpAddr> = vec![[10, 0, 0, 1].into(), [10, 0, 0, 2].into()];
        assert_eq!(addrs, expected);
    }

    /// 0.0.0.0 and :: (a blocking resolver's no) are no address: a name
    /// answered only with them has none.
    #[test]
    fn an_address_of_all_zeros_is_none() {
        let mut m = response(9, "x.test", Family::V4, ResponseCode::NoError);
        m.add_answer(a("x.test", 5, [0, 0, 0, 0]));
        m.add_answer(a("x.test", 5, [10, 0, 0, 1]));
        let bytes = m.to_vec().unwrap();
        let Ok(Answer::Addresses { addrs, .. }) =
            read_answer(&bytes, 9, &name("x.test"), Family::V4, false)
        else {
            panic!("not addresses");
        };
        assert_eq!(addrs, [IpAddr::from([10, 0, 0, 1])]);
        for mapped in [
            Ipv6Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
        ] {
            let mut m = response(9, "x.test", Family::V6, ResponseCode::NoError);
            m.add_answer(Record::from_rdata(
                name("x.test"),
                5,
                RData::AAAA(AAAA(mapped)),
            ));
            let bytes = m.to_vec().unwrap();
            let Ok(Answer::Addresses { addrs, .. }) =
                read_answer(&bytes, 9, &name("x.test"), Family::V6, false)
            else {
                panic!("not an answer");
            };
            assert!(addrs.is_empty(), "{mapped}: {addrs:?}");
        }
    }

    #[test]
    fn other_answers_are_not_ours() {
        let mut m = response(9, "x.test", Family::V4, ResponseCode::NoError);
        m.add_answer(a("x.test", 5, [1, 2, 3, 4]));
        let bytes = m.to_vec().unwrap();
        assert_eq!(
            read_answer(&bytes, 8, &name("x.test"), Family::V4, false),
            Err(NotAnswer::Other)
        );
        assert_eq!(
            read_answer(&bytes, 9, &name("y.test"), Family::V4, false),
            Err(NotAnswer::Other)
        );
        assert_eq!(
            read_answer(&bytes, 9, &name("x.test"), Family::V6, false),
            Err(NotAnswer::Other)
        );
        // Our own query echoed back is not an answer.
        let echoed = query(9, &name("x.test"), Family::V4);
        assert_eq!(
            read_answer(&echoed, 9, &name("x.test"), Family::V4, false),
            Err(NotAnswer::Other)
        );
        // The question in another class (CHAOS), or the answer in one.
        let mut chaos = Message::response(9, OpCode::Query);
        chaos.add_query(
            Query::query(name("x.test"), RecordType::A)
                .set_query_class(DNSClass::CH)
                .clone(),
        );
        chaos.add_answer(a("x.test", 5, [1, 2, 3, 4]));
        assert_eq!(
            read_answer(
                &chaos.to_vec().unwrap(),
                9,
                &name("x.test"),
                Family::V4,
                false
            ),
            Err(NotAnswer::Other)
        );
        let mut record = a("x.test", 5, [1, 2, 3, 4]);
        record.dns_class = DNSClass::CH;
        let mut m = response(9, "x.test", Family::V4, ResponseCode::NoError);
        m.add_answer(record);
        assert!(matches!(
            read_answer(&m.to_vec().unwrap(), 9, &name("x.test"), Family::V4, false),
            Ok(Answer::Addresses { addrs, .. }) if addrs.is_empty()
        ));
    }

    #[test]
    fn cut_short_and_garbage_are_malformed_at_every_length() {
        let mut m = response(3, "x.test", Family::V6, ResponseCode::NoError);
        let ip = Ipv6Addr::LOCALHOST;
        m.add_answer(Record::from_rdata(name("x.test"), 5, RData::AAAA(AAAA(ip))));
        let bytes = m.to_vec().unwrap();
        for cut in 2..bytes.len() {
            let got = read_answer(&bytes[..cut], 3, &name("x.test"), Family::V6, false);
            assert!(got.is_err(), "cut at {cut} read as {got:?}");
        }
        let whole = read_answer(&bytes, 3, &name("x.test"), Family::V6, false);
        assert_eq!(
            whole,
            Ok(Answer::Addresses {
                addrs: vec![IpAddr::V6(ip)],
                ttl: 5
            })
        );
        let mut garbage = vec![0u8, 3];
        garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
        assert!(read_answer(&garbage, 3, &name("x.test"), Family::V6, false).is_err());
    }

    /// An empty answer from a server that neither recursed nor holds the
    /// name is its not knowing, not the name's having no address; from a
    /// resolver (RA), an authoritative server (AA), or with the zone's SOA,
    /// it is "no address". Addresses are addresses, from any server.
    #[test]
    fn an_empty_answer_from_a_server_that_does_not_recurse_is_told_apart() {
        let asked = name("www.test");
        let read = |m: Message| read_answer(&m.to_vec().unwrap(), 9, &asked, Family::V4, false);
        let plain = || {
            let mut m = response(9, "www.test", Family::V4, ResponseCode::NoError);
            m.metadata.recursion_available = false;
            m
        };
        assert_eq!(read(plain()), Ok(Answer::NotRecursive));
        let mut referral = plain();
        referral.add_answer(cname("www.test", 60, "elsewhere.example"));
        assert_eq!(
            read(referral.clone()),
            Ok(Answer::NotRecursive),
            "an alias, not followed"
        );
        // Authoritative for the alias only: its end is not the server's.
        referral.metadata.authoritative = true;
        assert_eq!(
            read(referral),
            Ok(Answer::NotRecursive),
            "authority for the alias"
        );
        let no_address = Ok(Answer::Addresses {
            addrs: Vec::new(),
            ttl: 0,
        });
        assert_eq!(
            read(response(9, "www.test", Family::V4, ResponseCode::NoError)),
            no_address
        );
        let mut authoritative = plain();
        authoritative.metadata.authoritative = true;
        assert_eq!(read(authoritative), no_address);
        let mut with_soa = plain();
        let soa = SOA::new(name("test"), name("admin.test"), 1, 60, 60, 60, 30);
        with_soa.add_authority(Record::from_rdata(name("test"), 30, RData::SOA(soa)));
        let found = read(with_soa);
        assert!(
            matches!(found, Ok(Answer::Addresses { ref addrs, ttl: 30 }) if addrs.is_empty()),
            "{found:?}"
        );
        let mut answered = plain();
        answered.add_answer(a("www.test", 60, [10, 0, 0, 1]));
        let addrs = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
        assert_eq!(read(answered), Ok(Answer::Addresses { addrs, ttl: 60 }));
    }

    #[test]
    fn truncation_and_server_failures_are_told_apart() {
        let mut m = response(4, "big.test", Family::V4, ResponseCode::NoError);
        m.metadata.truncation = true;
        let got = read_answer(
            &m.to_vec().unwrap(),
            4,
            &name("big.test"),
            Family::V4,
            false,
        );
        assert_eq!(got, Ok(Answer::Truncated));
        let m = response(4, "big.test", Family::V4, ResponseCode::ServFail);
        let got = read_answer(
            &m.to_vec().unwrap(),
            4,
            &name("big.test"),
            Family::V4,
            false,
        );
        assert_eq!(got, Ok(Answer::Failed(2)));
    }

    /// An answer whose last record's owner is a chain of `hops` compression
    /// pointers, each to the one before, laid out in an earlier record's
    /// opaque data (a NULL record): every hop points backwards, as the
    /// format allows, so only a bound on hops or on depth stops the reader.
    fn pointer_chain_answer(id: u16, hops: usize) -> Vec<u8> {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m[..2].copy_from_slice(&id.to_be_bytes());
        m.extend_from_slice(b"\x01x\x04test\x00\x00\x01\x00\x01");
        // The NULL record, owned by the question's name (at 12).
        m.extend_from_slice(&[0xC0, 12, 0, 10, 0, 1, 0, 0, 0, 0]);
        let rdata_len = 1 + 2 * hops;
        m.extend_from_slice(&(rdata_len as u16).to_be_bytes());
        let root = m.len();
        m.push(0);
        let mut previous = root;
        for _ in 0..hops {
            let here = m.len();
            m.extend_from_slice(&(0xC000 | previous as u16).to_be_bytes());
            previous = here;
        }
        // An A record owned by the chain's last pointer.
        m.extend_from_slice(&(0xC000 | previous as u16).to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        m
    }

    #[test]
    fn a_chain_of_thousands_of_compression_pointers_is_refused_unread() {
        // The A record's name, a pointer to the chain's end, takes one hop
        // more than the chain. Up to the most a name of 127 labels can
        // take, it is read (as sound: the record reads as one of another
        // name, no address of ours); one hop more is refused before
        // hickory-proto reads it, and so are 8 000 (as many as fit below
        // offset 0x3FFF), which the parser would follow for each record
        // that names the chain's end.
        for hops in [1, 100, 126] {
            let bytes = pointer_chain_answer(5, hops);
            let got = read_answer(&bytes, 5, &name("x.test"), Family::V4, false);
            assert!(
                matches!(&got, Ok(Answer::Addresses { addrs, .. }) if addrs.is_empty()),
                "{hops} hops: {got:?}"
            );
        }
        for hops in [127, 8_000] {
            let bytes = pointer_chain_answer(5, hops);
            assert!(bytes.len() <= MAX_ANSWER_BYTES, "{}", bytes.len());
            let got = read_answer(&bytes, 5, &name("x.test"), Family::V4, false);
            assert_eq!(got, Err(NotAnswer::Malformed), "{hops} hops");
        }
    }

    /// A chain of aliases, each target one label longer than the one before
    /// and written as that label and a pointer to it, as a compressing
    /// server writes it: the last target follows 123 pointers (its 123
    /// labels of one letter, before `x.test`, fill the 255 bytes a name
    /// may take), and is read.
    #[test]
    fn a_server_compressed_answer_is_read_whatever_its_names_depth() {
        const ALIASES: u16 = 123;
        let mut m = vec![0, 4, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&ALIASES.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x01x\x04test\x00\x00\x01\x00\x01");
        let mut previous = 12u16;
        for _ in 0..ALIASES {
            // Owned by the question's name; its target, `a.` and the one before.
            m.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4]);
            let here = m.len() as u16;
            m.extend_from_slice(b"\x01a");
            m.extend_from_slice(&(0xC000 | previous).to_be_bytes());
            previous = here;
        }
        assert!(pointer_hops_bounded(&m));
        let got = read_answer(&m, 4, &name("x.test"), Family::V4, false);
        assert!(
            matches!(&got, Ok(Answer::Addresses { addrs, .. }) if addrs.is_empty()),
            "{got:?}"
        );
        // hickory-proto took every target: the longest is there, whole.
        let message = Message::from_vec(&m).expect("read");
        let longest = message.answers.iter().filter_map(|r| match &r.data {
            RData::CNAME(target) => Some(target.0.num_labels()),
            _ => None,
        });
        assert_eq!(longest.max(), Some(ALIASES as u8 + 2));
    }

    #[test]
    fn an_answer_longer_than_a_datagram_goes_over_tcp() {
        let mut m = response(6, "x.test", Family::V4, ResponseCode::NoError);
        for i in 0..40 {
            m.add_answer(a("x.test", 5, [10, 0, 0, i]));
        }
        let bytes = m.to_vec().unwrap();
        assert!(bytes.len() > MAX_DATAGRAM_BYTES);
        let got = read_answer(&bytes, 6, &name("x.test"), Family::V4, true);
        assert_eq!(got, Ok(Answer::Truncated));
        let got = read_answer(&bytes, 6, &name("x.test"), Family::V4, false);
        assert!(matches!(got, Ok(Answer::Addresses { addrs, .. }) if addrs.len() == 40));
    }

    #[test]
    fn an_answer_over_the_limit_is_not_read() {
        let mut m = response(6, "x.test", Family::V4, ResponseCode::NoError);
        let record = |n: usize| a("x.test", 5, [10, 0, (n >> 8) as u8, n as u8]);
        let length = |count: usize| {
            let mut m = m.clone();
            for i in 0..count {
                m.add_answer(record(i));
            }
            m.to_vec().unwrap().len()
        };
        // The fewest records that go past the limit, found by halving
        // (serializing after each record added was quadratic: 10 s under
        // the interpreter).
        let (mut fit, mut over) = (0, 4096);
        assert!(length(over) > MAX_ANSWER_BYTES);
        while over - fit > 1 {
            let mid = (fit + over) / 2;
            match length(mid) > MAX_ANSWER_BYTES {
                true => over = mid,
                false => fit = mid,
            }
        }
        let n = over;
        for i in 0..n {
            m.add_answer(record(i));
        }
        let bytes = m.to_vec().unwrap();
        assert!(bytes.len() > MAX_ANSWER_BYTES);
        let got = read_answer(&bytes, 6, &name("x.test"), Family::V4, false);
        assert_eq!(got, Err(NotAnswer::TooLong));
        // As a datagram, it is asked for over TCP, as any over 512 bytes.
        let got = read_answer(&bytes, 6, &name("x.test"), Family::V4, true);
        assert_eq!(got, Ok(Answer::Truncated));
        // One record fewer fits, and is read.
        m.answers.pop();
        let fits = m.to_vec().unwrap();
        assert!(fits.len() <= MAX_ANSWER_BYTES);
        let got = read_answer(&fits, 6, &name("x.test"), Family::V4, false);
        assert!(matches!(got, Ok(Answer::Addresses { addrs, .. }) if addrs.len() == n - 1));
    }

    #[test]
    fn a_refusal_without_the_question_is_read_and_an_answer_without_it_is_not() {
        for (code, expect) in [
            (ResponseCode::ServFail, Ok(Answer::Failed(2))),
            (ResponseCode::Refused, Ok(Answer::Failed(5))),
            (ResponseCode::FormErr, Ok(Answer::Failed(1))),
            (ResponseCode::NXDomain, Err(NotAnswer::Other)),
            (ResponseCode::NoError, Err(NotAnswer::Other)),
        ] {
            let mut m = response(7, "x.test", Family::V6, code);
            m.queries.clear();
            let got = read_answer(&m.to_vec().unwrap(), 7, &name("x.test"), Family::V6, false);
            assert_eq!(got, expect, "{code:?}");
        }
    }

    #[test]
    fn invalid_names_are_refused() {
        assert_eq!(parse_name(""), Err(ResolveError::InvalidName));
        assert_eq!(parse_name(&"a".repeat(64)), Err(ResolveError::InvalidName));
        assert!(parse_name("service.namespace.svc.cluster.local").is_ok());
    }
}
