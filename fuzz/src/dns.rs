//! The DNS target: datagrams into the resolver's reading of an answer to
//! its query for `a.test` (A or AAAA), as a server (or anyone who can reach
//! the socket) may send them.
//!
//! Beyond no panic and no hang (compression pointers that chain or loop):
//! a datagram with another id is never an answer; a too long one is not
//! read; addresses are of the family asked, none unspecified or repeated,
//! and each stands in the datagram (none made up); a TTL is at most
//! 2^31 - 1 (RFC 2181 §8).

use crate::{Reached, Rng, Target};
use edgepoll::dns::fuzzing::{read_answer, Answer, Family, NotAnswer, MAX_ANSWER_BYTES};
use std::net::IpAddr;

const HOST: &str = "a.test";
const ID: u16 = 0x5ee5;

pub fn target() -> Target {
    Target {
        name: "dns",
        seeds: seeds(),
        tokens: TOKENS,
        bytes: &[
            0x00, 0x01, 0x05, 0x06, 0x1c, 0x3f, 0x40, 0x80, 0x81, 0xc0, 0xff,
        ],
        check,
        must_reach: &[
            "addresses",
            "addresses through an alias",
            "no address",
            "no such name",
            "truncated",
            "failed",
            "not recursive",
            "malformed",
            "another's",
            "too long",
        ],
    }
}

/// A record: name (bytes as on the wire), type, class IN, TTL, data.
fn record(name: &[u8], kind: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend(kind.to_be_bytes());
    out.extend(1u16.to_be_bytes());
    out.extend(ttl.to_be_bytes());
    out.extend((data.len() as u16).to_be_bytes());
    out.extend(data);
    out
}

/// An answer to the query for `a.test` and `family`: `flags` (QR set by
/// the caller's bits), the counts of answer and authority records, then
/// those records.
fn answer(family: Family, flags: u16, answers: &[Vec<u8>], authority: &[Vec<u8>]) -> Vec<u8> {
    let kind: u16 = match family {
        Family::V4 => 1,
        Family::V6 => 28,
    };
    let mut out = Vec::new();
    out.extend(ID.to_be_bytes());
    out.extend(flags.to_be_bytes());
    for count in [1, answers.len(), authority.len(), 0] {
        out.extend((count as u16).to_be_bytes());
    }
    out.extend(b"\x01a\x04test\x00");
    out.extend(kind.to_be_bytes());
    out.extend(1u16.to_be_bytes());
    for r in answers.iter().chain(authority) {
        out.extend(r);
    }
    out
}

fn seeds() -> Vec<Vec<u8>> {
    // QR, RD, RA; then the response code in the low bits.
    const OK: u16 = 0x8180;
    // The question's name, by a pointer to it (offset 12).
    const ASKED: &[u8] = b"\xc0\x0c";
    let soa = {
        let mut data = b"\x02ns\xc0\x0e\x05admin\xc0\x0e".to_vec();
        for n in [1u32, 3600, 600, 86400, 300] {
            data.extend(n.to_be_bytes());
        }
        record(b"\xc0\x0e", 6, 900, &data)
    };
    vec![
        answer(
            Family::V4,
            OK,
            &[record(ASKED, 1, 60, &[127, 0, 0, 1])],
            &[],
        ),
        answer(
            Family::V4,
            OK,
            &[
                record(ASKED, 1, 60, &[127, 0, 0, 2]),
                record(ASKED, 1, 30, &[127, 0, 0, 3]),
            ],
            &[],
        ),
        answer(
            Family::V6,
            OK,
            &[record(
                ASKED,
                28,
                60,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            )],
            &[],
        ),
        // An alias (b.test, in the first record's data: offset 36), then
        // its address.
        answer(
            Family::V4,
            OK,
            &[
                record(ASKED, 5, 60, b"\x01b\xc0\x0e"),
                record(b"\xc0\x24", 1, 60, &[127, 0, 0, 4]),
            ],
            &[],
        ),
        answer(Family::V4, OK | 3, &[], std::slice::from_ref(&soa)),
        answer(Family::V4, OK, &[], &[soa]),
        answer(Family::V4, OK | 0x0200, &[], &[]),
        answer(Family::V4, OK | 2, &[], &[]),
        answer(Family::V4, 0x8100, &[], &[]),
    ]
}

const TOKENS: &[&[u8]] = &[
    b"\xc0\x0c",
    b"\xc0\x00",
    b"\xc0\x24",
    b"\x00\x01\x00\x01",
    b"\x00\x1c\x00\x01",
    b"\x00\x05\x00\x01",
    b"\x00\x06\x00\x01",
    b"\x00\x29\x10\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x00\x04\x7f\x00\x00\x01",
    b"\x00\x04\x00\x00\x00\x00",
    b"\x01a\x04test\x00",
    b"\x01b\xc0\x0e",
    b"\x3f",
    b"\x00\x00",
];

fn check(input: &[u8], _: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    for family in [Family::V4, Family::V6] {
        let read = |id| read_answer(input, id, HOST, family, false).ok_or("a.test is no host name");
        // Another query's id than the datagram's: never an answer,
        // whatever else it says.
        let id = input
            .get(..2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let other = id.wrapping_add(1);
        if read(other)? != Err(NotAnswer::Other) {
            return Err(format!("{family:?}: taken as the answer to another id"));
        }
        let answer = read(ID)?;
        // A datagram within 512 bytes reads as the same message over TCP.
        if input.len() <= 512
            && read_answer(input, ID, HOST, family, true).as_ref() != Some(&answer)
        {
            return Err(format!("{family:?}: read otherwise as a datagram"));
        }
        // Now and then the same, made longer than is read (inputs stay
        // far shorter).
        if input.len().is_multiple_of(16) && input.get(..2) == Some(&ID.to_be_bytes()[..]) {
            let mut long = input.to_vec();
            long.resize(MAX_ANSWER_BYTES + 1, 0);
            match read_answer(&long, ID, HOST, family, false) {
                Some(Err(NotAnswer::TooLong)) => reached.mark("too long"),
                other => return Err(format!("{family:?}: {} bytes read: {other:?}", long.len())),
            }
            // As a datagram, however long, it is asked for over TCP (or is
            // not ours): never dropped as too long.
            if let Some(Err(NotAnswer::TooLong)) = read_answer(&long, ID, HOST, family, true) {
                return Err(format!(
                    "{family:?}: a long datagram dropped, not asked over TCP"
                ));
            }
        }
        reached.mark(match &answer {
            Ok(Answer::Addresses { addrs, ttl }) => {
                addresses(input, family, addrs, *ttl)?;
                match addrs.is_empty() {
                    true => "no address",
                    // The addresses of the asked name stand after its
                    // record; an alias's are the only other way in.
                    false if aliased(input) => "addresses through an alias",
                    false => "addresses",
                }
            }
            Ok(Answer::NoSuchName { ttl }) => {
                checked_ttl(*ttl)?;
                "no such name"
            }
            Ok(Answer::Truncated) => "truncated",
            Ok(Answer::Failed(_)) => "failed",
            Ok(Answer::NotRecursive) => "not recursive",
            Err(NotAnswer::Malformed) => "malformed",
            Err(NotAnswer::Other) => "another's",
            Err(NotAnswer::TooLong) => {
                return Err(format!("{family:?}: too long at {} bytes", input.len()))
            }
        });
    }
    Ok(())
}

/// Whether the datagram holds a CNAME record's type and class.
fn aliased(input: &[u8]) -> bool {
    input.windows(4).any(|w| w == b"\x00\x05\x00\x01")
}

fn checked_ttl(ttl: u32) -> Result<(), String> {
    match ttl <= i32::MAX as u32 {
        true => Ok(()),
        false => Err(format!("a TTL of {ttl}, over 2^31 - 1")),
    }
}

/// The addresses' own checks (see the module's).
fn addresses(input: &[u8], family: Family, addrs: &[IpAddr], ttl: u32) -> Result<(), String> {
    checked_ttl(ttl)?;
    for (i, addr) in addrs.iter().enumerate() {
        let bytes = match (family, addr) {
            (Family::V4, IpAddr::V4(a)) => a.octets().to_vec(),
            (Family::V6, IpAddr::V6(a)) => a.octets().to_vec(),
            _ => return Err(format!("{addr} for a {family:?} query")),
        };
        if addr.to_canonical().is_unspecified() {
            return Err(format!("the unspecified address {addr}"));
        }
        if addrs[..i].contains(addr) {
            return Err(format!("{addr} twice"));
        }
        if !input.windows(bytes.len()).any(|w| w == bytes) {
            return Err(format!("{addr}, which the datagram does not hold"));
        }
    }
    Ok(())
}
