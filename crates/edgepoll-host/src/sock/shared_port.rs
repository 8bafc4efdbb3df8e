//! `--instances`: a port named in a bind is shared (`SO_REUSEPORT`) so that
//! the kernel spreads its connections over the instances that listen on
//! it. Shared with them alone: `SO_REUSEPORT` lets any socket of the same
//! user join, so a port another process holds that way (nginx's
//! `reuseport`, many Go and Rust servers) would have its connections or
//! datagrams split with the guest. A bind to such a port is made unshared,
//! and fails as it fails on WasmEdge (EADDRINUSE).

use crate::errno::{check, WasiResult};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Sets `SO_REUSEPORT` on `raw`, to be bound to `ip` and `port`, unless a
/// socket of another process listens (TCP) or is bound (UDP) where that
/// bind would meet it.
pub fn share_unless_taken(raw: i32, ip: IpAddr, port: u16) -> WasiResult {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` is a c_int of the size given; `raw` is open.
    check(unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if others_hold(kind == libc::SOCK_STREAM, ip, port) {
        return Ok(());
    }
    let on: libc::c_int = 1;
    // SAFETY: `on` is a c_int of the size given; `raw` is open.
    check(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// Whether a socket not of this process (one it inherited counts as its
/// own) holds `port` where a bind to `ip` would meet it (see [`overlap`]):
/// listens there (TCP; a connection's local port is its listener's, or one
/// the kernel picked) or is bound there (UDP). Read from the kernel's tables
/// of this network namespace; one that cannot be read counts as held, so
/// nothing is shared unseen.
///
/// The tables and this process's descriptors cannot be read at one instant,
/// and other instances open and close their listeners meanwhile (all of them
/// at once when they exit together). So the tables are read before and after
/// the descriptors: a socket in both readings was open all along (an inode
/// is not reused while the counter that numbers them has not wrapped), so
/// also when the descriptors were read, where it is seen if it is ours. One
/// in a single reading was closed meanwhile (it holds nothing) or opened
/// meanwhile (as one opened just after the check, which no check can see).
fn others_hold(stream: bool, ip: IpAddr, port: u16) -> bool {
    let Some(first) = holders(stream, ip, port) else {
        return true;
    };
    if first.is_empty() {
        return false;
    }
    let Some(own) = own_sockets() else {
        return true;
    };
    let Some(second) = holders(stream, ip, port) else {
        return true;
    };
    (first.iter()).any(|inode| second.contains(inode) && !own.contains(inode))
}

/// The inodes of the sockets that listen (TCP) or are bound (UDP) on `port`
/// where a bind to `ip` would meet them, from the kernel's tables; `None`
/// if one cannot be read.
fn holders(stream: bool, ip: IpAddr, port: u16) -> Option<Vec<u64>> {
    let tables: [&str; 2] = match stream {
        true => ["/proc/net/tcp", "/proc/net/tcp6"],
        false => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let mut holders = Vec::new();
    for table in tables {
        match std::fs::read_to_string(table) {
            Ok(text) => holders.extend(inodes_on(&text, ip, port, stream)),
            // A kernel without IPv6 has no tcp6 table, and no such socket.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(holders)
}

/// The inodes of the sockets in a `/proc/net/{tcp,udp}[6]` table whose local
/// port is `port`, at an address that overlaps `ip` (for TCP, those
/// listening).
fn inodes_on(table: &str, ip: IpAddr, port: u16, stream: bool) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for line in table.lines().skip(1) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        let Some((local_ip, local_port)) = local.rsplit_once(':') else {
            continue;
        };
        if u16::from_str_radix(local_port, 16) != Ok(port) || (stream && *state != LISTEN) {
            continue;
        }
        // One the line does not show clearly is taken to meet it.
        if parse_ip(local_ip).is_some_and(|local| !overlap(local, ip)) {
            continue;
        }
        if let Ok(inode) = inode.parse() {
            inodes.push(inode);
        }
    }
    inodes
}

/// An address as the tables print it: each 32-bit word of it in hex, as
/// the machine holds it (so on x86 `0100007F` is 127.0.0.1).
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        let text = hex.get(i * 8..i * 8 + 8)?;
        u32::from_str_radix(text, 16).ok().map(u32::to_ne_bytes)
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// Whether binds to `a` and to `b` (on one port) meet: the same address, or
/// a wildcard of the same family, or `::` (which takes IPv4 too, unless the
/// socket is set to IPv6 alone: taken to meet) beside IPv4. An IPv4-mapped
/// address is its IPv4 one.
fn overlap(a: IpAddr, b: IpAddr) -> bool {
    match (a.to_canonical(), b.to_canonical()) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V6(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(v6), IpAddr::V4(_)) | (IpAddr::V4(_), IpAddr::V6(v6)) => v6.is_unspecified(),
    }
}

/// The inodes of this process's sockets (`socket:[N]` in /proc/self/fd).
fn own_sockets() -> Option<HashSet<u64>> {
    let mut own = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed since it was listed
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            own.insert(inode);
        }
    }
    Some(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_gives_the_sockets_on_a_port_and_tcp_only_the_listening() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n   \
            1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1\n   \
            2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0\n   \
            3: garbage\n";
        let any: IpAddr = Ipv4Addr::UNSPECIFIED.into();
        let other: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(inodes_on(table, any, 8080, true), [111]);
        assert_eq!(inodes_on(table, any, 8080, false), [111, 222]);
        assert_eq!(inodes_on(table, any, 8081, true), [333]);
        assert!(inodes_on(table, any, 9, true).is_empty());
        // 127.0.0.1 does not meet 10.0.0.5; 0.0.0.0 meets any IPv4 address.
        assert!(inodes_on(table, other, 8080, true).is_empty());
        assert_eq!(inodes_on(table, other, 8081, true), [333]);
    }

    #[test]
    fn addresses_read_from_the_tables_and_which_binds_meet() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let loopback6 = format!(
            "{:08X}{:08X}{:08X}{:08X}",
            0,
            0,
            0,
            u32::from_ne_bytes([0, 0, 0, 1])
        );
        assert_eq!(
            parse_ip(&format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]))),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(parse_ip(&loopback6), Some(ip("::1")));
        assert_eq!(parse_ip("12"), None);
        let meet = [
            ("127.0.0.1", "127.0.0.1"),
            ("0.0.0.0", "10.0.0.5"),
            ("::", "10.0.0.5"),
            ("::", "::1"),
            ("::ffff:10.0.0.5", "10.0.0.5"),
        ];
        for (a, b) in meet {
            assert!(overlap(ip(a), ip(b)) && overlap(ip(b), ip(a)), "{a} {b}");
        }
        let apart = [
            ("127.0.0.1", "10.0.0.5"),
            ("::1", "127.0.0.1"),
            ("0.0.0.0", "::1"),
            ("::1", "fd00::1"),
        ];
        for (a, b) in apart {
            assert!(!overlap(ip(a), ip(b)) && !overlap(ip(b), ip(a)), "{a} {b}");
        }
    }

    #[test]
    fn a_port_this_process_listens_on_is_its_own_and_a_free_one_no_ones() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let any = IpAddr::from(Ipv4Addr::UNSPECIFIED);
        assert!(!others_hold(true, any, port), "this process's listener");
        assert!(!own_sockets().unwrap().is_empty());
        drop(listener);
        assert!(!others_hold(true, any, port), "nothing there");
    }

    #[test]
    fn a_listener_of_this_process_that_comes_and_goes_is_never_anothers() {
        // As instances that exit and start again do: this process's
        // listener on the port closes and opens while the port is checked.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (stop, opened) = (
            std::sync::Arc::new(AtomicBool::new(false)),
            std::sync::Arc::new(AtomicUsize::new(0)),
        );
        let churn = std::thread::spawn({
            let (stop, opened) = (stop.clone(), opened.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                        opened.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_micros(500));
                        drop(listener);
                    }
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
        });
        let any = IpAddr::from(Ipv4Addr::UNSPECIFIED);
        // Each check reads the kernel's tables twice (a few ms each where
        // they are large): as many checks as the listener comes and goes
        // a hundred times, and a hundred at least.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (mut checks, mut taken) = (0, 0);
        while checks < 100
            || (opened.load(Ordering::Relaxed) < 100 && std::time::Instant::now() < deadline)
        {
            checks += 1;
            taken += usize::from(others_hold(true, any, port));
        }
        stop.store(true, Ordering::Relaxed);
        churn.join().unwrap();
        let opened = opened.load(Ordering::Relaxed);
        assert!(opened >= 100, "the listener opened only {opened} times");
        assert_eq!(taken, 0, "seen as another's in {taken} of {checks} checks");
    }
}
