//! `--instances`: a port named in a bind is shared (`SO_REUSEPORT`) so that
//! the kernel spreads its connections over the instances that listen on
//! it. Shared with them alone: `SO_REUSEPORT` lets any socket of the same
//! user join, so a port another process holds that way (nginx's
//! `reuseport`, many Go and Rust servers) would have its connections or
//! datagrams split with the guest. A bind to such a port is made unshared,
//! and fails as it fails on WasmEdge (EADDRINUSE).

use crate::errno::{check, WasiResult};
use std::collections::HashSet;

/// Sets `SO_REUSEPORT` on `raw`, to be bound to `port`, unless a socket
/// of another process listens there (TCP) or is bound there (UDP).
pub fn share_unless_taken(raw: i32, port: u16) -> WasiResult {
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
    if others_hold(kind == libc::SOCK_STREAM, port) {
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

/// Whether a socket not of this process holds `port`: listens on it (TCP;
/// a connection's local port is its listener's, or one the kernel picked)
/// or is bound to it (UDP), at any address and of either family (a socket
/// on `::` takes IPv4 too). Read from the kernel's tables of this network
/// namespace; one that cannot be read counts as held, so nothing is shared
/// unseen.
fn others_hold(stream: bool, port: u16) -> bool {
    let tables: [&str; 2] = match stream {
        true => ["/proc/net/tcp", "/proc/net/tcp6"],
        false => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let mut holders = Vec::new();
    for table in tables {
        match std::fs::read_to_string(table) {
            Ok(text) => holders.extend(inodes_on(&text, port, stream)),
            // A kernel without IPv6 has no tcp6 table, and no such socket.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return true,
        }
    }
    if holders.is_empty() {
        return false;
    }
    match own_sockets() {
        Some(own) => holders.iter().any(|inode| !own.contains(inode)),
        None => true,
    }
}

/// The inodes of the sockets in a `/proc/net/{tcp,udp}[6]` table whose local
/// port is `port` (for TCP, those listening).
fn inodes_on(table: &str, port: u16, stream: bool) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for line in table.lines().skip(1) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
        if local_port != Some(port) || (stream && *state != LISTEN) {
            continue;
        }
        if let Ok(inode) = inode.parse() {
            inodes.push(inode);
        }
    }
    inodes
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
        assert_eq!(inodes_on(table, 8080, true), [111]);
        assert_eq!(inodes_on(table, 8080, false), [111, 222]);
        assert_eq!(inodes_on(table, 8081, true), [333]);
        assert!(inodes_on(table, 9, true).is_empty());
    }

    #[test]
    fn a_port_this_process_listens_on_is_its_own_and_a_free_one_no_ones() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!others_hold(true, port), "this process's listener");
        assert!(!own_sockets().unwrap().is_empty());
        drop(listener);
        assert!(!others_hold(true, port), "nothing there");
    }
}
