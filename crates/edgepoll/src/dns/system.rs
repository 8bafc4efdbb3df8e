//! The runtime's resolver: `sock_getaddrinfo` under WasmEdge (the host's
//! `getaddrinfo`: /etc/hosts, then its DNS), the C library's natively.

use super::{ResolveError, MAX_ADDRESSES};
use std::net::IpAddr;

/// Records asked of the runtime's `getaddrinfo`: twice [`MAX_ADDRESSES`],
/// so that the family it lists second still has room after up to 32 of
/// the first (16 records were asked once, and 16 IPv4 addresses hid every
/// IPv6 one). The runtime writes no more than this, so a family listed
/// first with more than 32 addresses leaves less for the other.
#[cfg(any(target_os = "wasi", test))]
const MAX_RESULTS: usize = 2 * MAX_ADDRESSES;

/// The failure `getaddrinfo` reported as WasmEdge numbers it (WASI's errno
/// values 77 to 87, for `EAI_ADDRFAMILY` to `EAI_SYSTEM`), with the name
/// glibc's `gai_strerror` gives it: the C library of a wasm32-wasip1
/// program knows none of them (78, `EAI_AGAIN`, reads "Success").
/// `EAI_NONAME` and `EAI_NODATA` are no failure of the resolver's, and
/// are answered before this is asked.
#[cfg(any(target_os = "wasi", test))]
fn eai_failure(errno: u32) -> ResolveError {
    let (name, says) = match errno {
        77 => (
            "EAI_ADDRFAMILY",
            "the name has no address in the family asked for",
        ),
        78 => ("EAI_AGAIN", "temporary failure in name resolution"),
        79 => ("EAI_BADFLAGS", "bad value for ai_flags"),
        80 => ("EAI_FAIL", "non-recoverable failure in name resolution"),
        81 => ("EAI_FAMILY", "ai_family not supported"),
        82 => ("EAI_MEMORY", "memory allocation failure"),
        85 => ("EAI_SERVICE", "service not supported for ai_socktype"),
        86 => ("EAI_SOCKTYPE", "ai_socktype not supported"),
        87 => ("EAI_SYSTEM", "system error"),
        other => {
            let e = std::io::Error::from_raw_os_error(other as i32);
            return ResolveError::System(format!("getaddrinfo: {e}"));
        }
    };
    ResolveError::System(format!("getaddrinfo: {says} ({name})"))
}

/// The addresses of `host` (see [`answer`]).
#[cfg(not(target_os = "wasi"))]
pub(crate) fn lookup(host: &str) -> Result<Vec<IpAddr>, ResolveError> {
    use std::net::ToSocketAddrs;
    let found = (host, 0)
        .to_socket_addrs()
        .map_err(|e| ResolveError::System(e.to_string()))?;
    answer(found.map(|addr| addr.ip()))
}

/// What the system's resolver found, as a lookup's answer: in its order,
/// deduplicated, at most [`MAX_ADDRESSES`] of each family (as a DNS
/// server's answer is kept), and without `0.0.0.0` or `::` (an
/// `/etc/hosts` blocklist's "no", which a connect would take to this
/// host), as DNS answers are.
fn answer(found: impl IntoIterator<Item = IpAddr>) -> Result<Vec<IpAddr>, ResolveError> {
    let mut addrs = Vec::new();
    let mut kept = [0usize; 2];
    for ip in found {
        let family = usize::from(ip.is_ipv6());
        if kept[family] < MAX_ADDRESSES {
            let before = addrs.len();
            super::message::push_new(&mut addrs, ip);
            kept[family] += addrs.len() - before;
        }
    }
    match addrs.is_empty() {
        true => Err(ResolveError::NoAddress),
        false => Ok(addrs),
    }
}

/// The addresses of `host` (see [`answer`]).
#[cfg(target_os = "wasi")]
pub(crate) fn lookup(host: &str) -> Result<Vec<IpAddr>, ResolveError> {
    use crate::sys::wasi::{self, AddrInfo, SockAddr};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Room for the host's `sockaddr_in6` after its family field: 26
    /// bytes on Linux, which WasmEdge copies whatever the length it is
    /// given; room to spare for a build that copies more (an older macOS
    /// one copied 27).
    const SA_DATA: usize = 32;
    const FAMILY_INET4: u8 = 1;
    const FAMILY_INET6: u8 = 2;
    const SOCKTYPE_STREAM: u8 = 2;
    // WASI's errno values for getaddrinfo's EAI_NODATA and EAI_NONAME.
    const AI_NODATA: u32 = 83;
    const AI_NONAME: u32 = 84;

    if host.contains('\0') {
        return Err(ResolveError::InvalidName);
    }
    let mut node = host.as_bytes().to_vec();
    node.push(0);
    let mut data = [[0u8; SA_DATA]; MAX_RESULTS];
    let mut sockaddrs: Vec<SockAddr> = data
        .iter_mut()
        .map(|d| SockAddr {
            family: 0,
            _pad: [0; 3],
            data_len: SA_DATA as u32,
            data: d.as_mut_ptr(),
        })
        .collect();
    // No canonical name is asked for (the hints' flags are 0): the runtime
    // writes none, whatever the length says. Asking for one would need
    // room for the whole name, as WasmEdge copies it regardless.
    let mut names = [[0u8; 1]; MAX_RESULTS];
    // Every pointer handed over comes from one borrow of its vector or
    // array (one `iter_mut`, one `as_mut_ptr`): indexing a vector again
    // would borrow it whole anew and, to the aliasing model, end the
    // pointers taken before.
    let mut records: Vec<AddrInfo> = sockaddrs
        .iter_mut()
        .zip(names.iter_mut())
        .map(|(addr, name)| AddrInfo {
            addr,
            canonname: name.as_mut_ptr(),
            canonname_len: 1,
            ..AddrInfo::default()
        })
        .collect();
    let base = records.as_mut_ptr();
    for i in 1..MAX_RESULTS {
        // SAFETY: `i - 1` and `i` are within `records`, which does not
        // move or grow while the chain is in use.
        unsafe { (*base.add(i - 1)).next = base.add(i) };
    }
    let hints = AddrInfo {
        socktype: SOCKTYPE_STREAM,
        ..AddrInfo::default()
    };
    let mut first = base as u32;
    let mut count = 0u32;
    // SAFETY: every pointer in the chain and the hints points into the
    // vectors and arrays above, alive and unmoved for the call; the
    // runtime writes at most MAX_RESULTS records and SA_DATA bytes each.
    let errno = unsafe {
        wasi::sock_getaddrinfo(
            node.as_ptr(),
            node.len() as u32,
            std::ptr::null(),
            0,
            &hints,
            &mut first,
            MAX_RESULTS as u32,
            &mut count,
        )
    };
    match errno {
        0 => {}
        AI_NONAME => return Err(ResolveError::NoSuchName),
        AI_NODATA => return Err(ResolveError::NoAddress),
        e => return Err(eai_failure(e)),
    }
    // The runtime wrote through raw pointers: read the records afresh.
    let records = std::hint::black_box(records);
    let sockaddrs = std::hint::black_box(sockaddrs);
    let data = std::hint::black_box(data);
    let mut addrs: Vec<IpAddr> = Vec::new();
    for i in 0..(count as usize).min(MAX_RESULTS) {
        let d = &data[i];
        // Only what the runtime says it wrote: the sockaddr's own family
        // and length (an older WasmEdge copies 14 bytes, too few for IPv6).
        let written = sockaddrs[i].data_len as usize;
        if records[i].addrlen == 0 {
            continue;
        }
        let ip = match sockaddrs[i].family {
            FAMILY_INET4 if written >= 6 => IpAddr::V4(Ipv4Addr::new(d[2], d[3], d[4], d[5])),
            FAMILY_INET6 if written >= 22 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&d[6..22]);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            _ => continue,
        };
        addrs.push(ip);
    }
    answer(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocklists_unspecified_address_is_no_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let found = [
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
            "10.0.0.1",
            "10.0.0.1",
            "::1",
        ];
        assert_eq!(answer(found.map(ip)), Ok(vec![ip("10.0.0.1"), ip("::1")]));
        assert_eq!(
            answer(["0.0.0.0", "::"].map(ip)),
            Err(ResolveError::NoAddress)
        );
    }

    #[test]
    fn each_family_keeps_its_first_addresses_whichever_comes_first() {
        // 40 IPv6 addresses listed before 3 IPv4 ones, as RFC 6724's order
        // may list them: all fit the records asked for, and the IPv4 ones
        // are kept beside the first 32 IPv6 ones.
        let v6 = (1..=40u16).map(|i| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, i]));
        let v4 = (1..=3u8).map(|i| IpAddr::from([10, 0, 0, i]));
        let found: Vec<IpAddr> = v6.chain(v4).collect();
        assert!(found.len() <= MAX_RESULTS);
        let Ok(kept) = answer(found.iter().copied()) else {
            panic!("no answer");
        };
        assert_eq!(kept.iter().filter(|a| a.is_ipv6()).count(), MAX_ADDRESSES);
        assert_eq!(&kept[..MAX_ADDRESSES], &found[..MAX_ADDRESSES]);
        assert_eq!(&kept[MAX_ADDRESSES..], &found[40..]);
        // A repeat takes no room.
        let twice = [found[0], found[0], found[40]];
        assert_eq!(answer(twice), Ok(vec![found[0], found[40]]));
    }

    #[test]
    fn getaddrinfo_failures_are_named_as_glibc_names_them() {
        // 78: what a host resolver that got no answer, or REFUSED, reports.
        assert_eq!(
            eai_failure(78).to_string(),
            "getaddrinfo: temporary failure in name resolution (EAI_AGAIN)"
        );
        assert_eq!(
            eai_failure(80).to_string(),
            "getaddrinfo: non-recoverable failure in name resolution (EAI_FAIL)"
        );
        for errno in [77, 79, 81, 82, 85, 86, 87] {
            let said = eai_failure(errno).to_string();
            assert!(said.ends_with(')') && said.contains("(EAI_"), "{said}");
        }
    }
}
