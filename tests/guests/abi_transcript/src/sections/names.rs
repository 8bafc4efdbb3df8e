//! sock_getaddrinfo, on loopback names and numeric addresses only (nothing
//! here may reach a name server).
//!
//! Services are numeric (or refused as names with AI_NUMERICSERV), so no
//! lookup depends on the machine's /etc/services.
//!
//! Every lookup names a socket type: with none, the C library also returns
//! raw-socket results, which WasmEdge 0.14 cannot translate (its
//! `fromSockType` has no case for them and the behaviour is undefined).

use crate::ffi::*;
use crate::memory::{read_u16, read_u32, straddling, Buf};
use crate::transcript::Transcript;

const PASSIVE: u16 = 1;
const CANONNAME: u16 = 2;
const NUMERICHOST: u16 = 4;
const NUMERICSERV: u16 = 8;

/// A chain of `count` result records, each with its own sockaddr, sa_data
/// and canonical-name buffers, as the guest library lays them out.
struct Results {
    nodes: Vec<Buf>,
    sockaddrs: Vec<Buf>,
    data: Vec<Buf>,
    names: Vec<Buf>,
    head: Buf,
}

impl Results {
    fn new(count: usize) -> Results {
        let mut r = Results {
            nodes: Vec::new(),
            sockaddrs: Vec::new(),
            data: Vec::new(),
            names: Vec::new(),
            head: Buf::zeroed(4),
        };
        for _ in 0..count {
            let data = Buf::zeroed(32);
            let name = Buf::zeroed(64);
            let mut sockaddr = Buf::zeroed(12);
            sockaddr.set_u32(4, 26);
            sockaddr.set_u32(8, data.ptr());
            let mut node = Buf::zeroed(28);
            node.set_u32(12, sockaddr.ptr());
            node.set_u32(16, name.ptr());
            node.set_u32(20, 64);
            r.nodes.push(node);
            r.sockaddrs.push(sockaddr);
            r.data.push(data);
            r.names.push(name);
        }
        for i in 1..count {
            let next = r.nodes[i].ptr();
            r.nodes[i - 1].set_u32(24, next);
        }
        // The last record links past the end of memory: a runtime that walks
        // further than `max` records faults instead of reading stray memory.
        if let Some(last) = r.nodes.last_mut() {
            last.set_u32(24, u32::MAX - 64);
        }
        let first = r.nodes.first().map_or(0, Buf::ptr);
        r.head.set_u32(0, first);
        r
    }

    fn shown(&self, n: u32) -> String {
        let mut out = Vec::new();
        for i in 0..(n as usize).min(self.nodes.len()) {
            let node = &self.nodes[i];
            let sockaddr = &self.sockaddrs[i];
            let sa_len = read_u32(sockaddr.at(4)) as usize;
            let data = &self.data[i].bytes()[..sa_len.min(32)];
            let name_len = read_u32(node.at(20)) as usize;
            let name =
                String::from_utf8_lossy(&self.names[i].bytes()[..name_len.min(64)]).into_owned();
            out.push(format!(
                "{{flags={:#x} family={} socktype={} protocol={} addrlen={} sa_family={} sa_data={data:?} canonname={name:?}}}",
                read_u16(node.at(0)),
                node.bytes()[2],
                node.bytes()[3],
                node.bytes()[4],
                read_u32(node.at(8)),
                sockaddr.bytes()[0],
            ));
        }
        out.join(" ")
    }
}

fn hints(flags: u16, family: u8, socktype: u8, protocol: u8) -> Buf {
    let mut h = Buf::zeroed(28);
    h.set_u16(0, flags);
    h.bytes_mut()[2] = family;
    h.bytes_mut()[3] = socktype;
    h.bytes_mut()[4] = protocol;
    h
}

#[allow(clippy::too_many_arguments)]
fn lookup(
    t: &mut Transcript,
    node: &[u8],
    service: &[u8],
    hint: (u16, u8, u8, u8),
    max: u32,
    chain: usize,
) {
    let n = Buf::from(node);
    let s = Buf::from(service);
    let h = hints(hint.0, hint.1, hint.2, hint.3);
    let results = Results::new(chain);
    let count = Buf::zeroed(4);
    // SAFETY: every pointer is into a live buffer, and the chain holds
    // `chain` records (fewer than `max` is a hostile case on purpose).
    let e = unsafe {
        sock_getaddrinfo(
            n.ptr(),
            node.len() as u32,
            s.ptr(),
            service.len() as u32,
            h.ptr(),
            results.head.ptr(),
            max,
            count.ptr(),
        )
    };
    let outs = if e == 0 {
        let got = count.u32_at(0);
        format!("n={got} {}", results.shown(got))
    } else {
        String::new()
    };
    t.log(
        &format!(
            "sock_getaddrinfo({:?}, {:?}, flags={:#x} family={} socktype={} protocol={}, max={max}, chain of {chain})",
            shown_name(node),
            shown_name(service),
            hint.0,
            hint.1,
            hint.2,
            hint.3
        ),
        e,
        &outs,
    );
}

/// A name as the transcript shows it: a long one by its length and ends.
fn shown_name(name: &[u8]) -> String {
    match name.len() {
        0..=64 => String::from_utf8_lossy(name).into_owned(),
        n => format!(
            "{}…({n} bytes)…{}",
            String::from_utf8_lossy(&name[..8]),
            String::from_utf8_lossy(&name[n - 8..])
        ),
    }
}

/// Cases that end the program on WasmEdge 0.14: a result chain shorter than
/// `max`, or a canonical-name buffer past the end of memory, make its
/// `sock_getaddrinfo` fail as a host function (a trap), not with an errno.
pub fn fatal(t: &mut Transcript, case: &str) -> bool {
    match case {
        "getaddrinfo-short-chain" => {
            lookup(t, b"127.0.0.1", b"80", (0, 0, 2, 0), 3, 2);
            true
        }
        "getaddrinfo-name-past-the-end" => {
            let node = Buf::from(b"localhost");
            let service = Buf::from(b"80");
            let h = hints(CANONNAME, 1, 2, 0);
            let mut results = Results::new(1);
            results.nodes[0].set_u32(16, straddling(64));
            let count = Buf::zeroed(4);
            // SAFETY: the runtime checks every pointer.
            let e = unsafe {
                sock_getaddrinfo(
                    node.ptr(),
                    9,
                    service.ptr(),
                    2,
                    h.ptr(),
                    results.head.ptr(),
                    1,
                    count.ptr(),
                )
            };
            t.log(
                "sock_getaddrinfo(\"localhost\", \"80\", canonical name buffer straddling the end)",
                e,
                "",
            );
            true
        }
        _ => false,
    }
}

pub fn addresses_by_name(t: &mut Transcript) {
    t.section("sock_getaddrinfo: loopback names and numeric addresses");
    lookup(t, b"127.0.0.1", b"80", (0, 0, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"", (NUMERICHOST, 1, 1, 2), 4, 4);
    lookup(
        t,
        b"::1",
        b"8080",
        (NUMERICHOST | NUMERICSERV, 2, 2, 1),
        4,
        4,
    );
    lookup(t, b"::1", b"8080", (0, 1, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"http", (NUMERICSERV, 0, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 0, 2, 1), 1, 1);
    lookup(t, b"127.0.0.1\0junk", b"80", (0, 0, 2, 0), 2, 2);
    lookup(t, b"", b"80", (PASSIVE, 1, 2, 0), 2, 2);
    lookup(t, b"localhost", b"80", (0, 1, 2, 0), 4, 4);
    lookup(t, b"localhost", b"80", (CANONNAME, 1, 2, 0), 1, 1);
    lookup(t, b"localhost", b"80", (NUMERICHOST, 0, 2, 0), 4, 4);
    // Any socket type: the system gives one record per type (a raw one
    // among them) for each address.
    lookup(t, b"127.0.0.1", b"80", (NUMERICHOST, 1, 0, 0), 4, 4);

    t.section("sock_getaddrinfo: refusals before and after the lookup");
    lookup(t, b"", b"", (0, 0, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 0, 2, 0), 0, 4);
    lookup(t, b"127.0.0.1", b"80", (0x80, 0, 2, 0), 4, 4);
    lookup(t, b"", b"80", (CANONNAME, 0, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 3, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 9, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 0, 9, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 0, 2, 9), 4, 4);
    lookup(t, b"127.0.0.1", b"80", (0, 2, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", b"65536", (0, 0, 2, 0), 4, 4);
    // Services longer than any name: a port number of any length is read
    // as one (the C library's `strtoul`); anything else is no service.
    let port = [&[b'0'; 5000][..], b"80"].concat();
    lookup(t, b"127.0.0.1", &port, (NUMERICHOST, 1, 2, 0), 4, 4);
    let signed = [&b" +"[..], &port].concat();
    lookup(t, b"127.0.0.1", &signed, (NUMERICHOST, 1, 2, 0), 4, 4);
    let negative = [&b"-"[..], &port].concat();
    lookup(t, b"127.0.0.1", &negative, (NUMERICHOST, 1, 2, 0), 4, 4);
    let past_u64 = [b'9'; 5000];
    lookup(t, b"127.0.0.1", &past_u64, (NUMERICHOST, 1, 2, 0), 4, 4);
    let named = [&port[..], b"x"].concat();
    lookup(t, b"127.0.0.1", &named, (NUMERICHOST, 1, 2, 0), 4, 4);
    lookup(t, b"127.0.0.1", &named, (NUMERICSERV, 1, 2, 0), 4, 4);
    lookup(t, &[b'a'; 5000], b"80", (NUMERICHOST, 1, 2, 0), 4, 4);
    // A name too long to look up, beside a service that is no number and
    // no name: the service is answered first, as the C library answers.
    lookup(t, &[b'a'; 5000], b"8a", (0, 1, 2, 0), 4, 4);

    let node = Buf::from(b"127.0.0.1");
    let service = Buf::from(b"80");
    let h = hints(0, 0, 2, 0);
    let results = Results::new(1);
    let count = Buf::zeroed(4);
    for (what, args) in [
        (
            "node straddling the end",
            [
                straddling(9),
                9,
                service.ptr(),
                2,
                h.ptr(),
                results.head.ptr(),
                count.ptr(),
            ],
        ),
        (
            "service straddling the end",
            [
                node.ptr(),
                9,
                straddling(2),
                2,
                h.ptr(),
                results.head.ptr(),
                count.ptr(),
            ],
        ),
        (
            "hints straddling the end",
            [
                node.ptr(),
                9,
                service.ptr(),
                2,
                straddling(28),
                results.head.ptr(),
                count.ptr(),
            ],
        ),
        (
            "result pointer straddling the end",
            [
                node.ptr(),
                9,
                service.ptr(),
                2,
                h.ptr(),
                straddling(4),
                count.ptr(),
            ],
        ),
        (
            "count straddling the end",
            [
                node.ptr(),
                9,
                service.ptr(),
                2,
                h.ptr(),
                results.head.ptr(),
                straddling(4),
            ],
        ),
    ] {
        // SAFETY: the runtime checks every pointer.
        let e = unsafe {
            sock_getaddrinfo(
                args[0], args[1], args[2], args[3], args[4], args[5], 1, args[6],
            )
        };
        t.log(&format!("sock_getaddrinfo({what})"), e, "");
    }
}
