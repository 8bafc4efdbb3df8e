//! WasmEdge 0.14's socket extension, call by call as WasmEdge does it: the
//! same checks in the same order (out-pointers, then argument values, then the
//! descriptor, then the system call), the same numbering, layouts and quirks.
//! Where WasmEdge behaves oddly, a comment names the WasmEdge function copied;
//! `tests/tests/abi_transcript.rs` holds the two runtimes to one transcript.
//!
//! This area knows guest memory and the descriptor table, nothing else.

pub mod address;
pub mod link;
pub mod names;
pub mod options;
pub mod shared_port;
pub mod transfer;

use crate::errno::{check, Errno, WasiResult, INVAL, NOSYS, NOTSOCK};
use crate::fd_table::{
    parse_fd_flags, rights, Descriptor, Entry, FdTable, Socket, FDFLAGS_NONBLOCK,
};
use crate::memory::GuestMemory;
use address::{read_target, to_sockaddr, Target};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The host socket behind guest descriptor `fd`: EBADF when there is
/// none, ENOTSOCK when it is not a socket the guest opened or accepted.
/// For a file or directory that is the kernel's answer too; the runtime's
/// own stdin, stdout and stderr may be sockets (a service manager's), and
/// they are the runtime's, not the guest's to bind, shut down or tune.
pub fn host_fd(fds: &FdTable, fd: u32) -> Result<RawFd, Errno> {
    match &fds.get(fd)?.entry {
        Entry::Socket(socket) => Ok(socket.fd.as_raw_fd()),
        _ => Err(NOTSOCK),
    }
}

/// `sock_open` (V1 and V2 alike).
pub fn open(
    mem: &mut GuestMemory<'_>,
    fds: &mut FdTable,
    family: u32,
    kind: u32,
    out: u32,
) -> WasiResult {
    mem.pointer::<4>(out)?;
    // Both are 8-bit enums in WasmEdge: higher bits are dropped.
    let domain = match family as u8 {
        1 => libc::AF_INET,
        2 => libc::AF_INET6,
        // AF_UNIX: refused unless the runtime runs with --allow-af-unix
        // (WasmEdge's `AllowAFUNIX`).
        3 if fds.allow_af_unix => libc::AF_UNIX,
        3 => return Err(NOSYS),
        _ => return Err(INVAL),
    };
    let ty = match kind as u8 {
        1 => libc::SOCK_DGRAM,
        2 => libc::SOCK_STREAM,
        _ => return Err(INVAL),
    };
    // After the arguments, as WasmEdge meets a full table only in socket().
    fds.check_room()?;
    // SAFETY: plain system call; the result is checked and owned below.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    let socket = Socket {
        // SAFETY: `raw` is a new descriptor nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(raw) },
        listening: false,
    };
    let fd = fds.insert(Descriptor::new(
        Entry::Socket(socket),
        rights::OPENED_SOCKET,
        rights::OPENED_SOCKET,
    ));
    mem.write_u32(out, fd)
}

/// `sock_bind` and `sock_connect`, V1 (`storage` false) and V2.
pub fn bind_or_connect(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    address: u32,
    port: u32,
    storage: bool,
    connect: bool,
) -> WasiResult {
    let target = read_target(mem, address, storage)?;
    let raw = host_fd(fds, fd)?;
    let ip = match target {
        Target::V4(ip) => Some(std::net::IpAddr::from(ip)),
        Target::V6(ip) => Some(std::net::IpAddr::from(ip)),
        Target::Unix(_) => None,
    };
    let (addr, len) = to_sockaddr(target, port as u16);
    // The port as bound: 65536 is port 0, which the kernel picks.
    if let (true, false, 1.., Some(ip)) = (fds.reuse_port, connect, port as u16, ip) {
        // Set where a port is named, not on every socket: one the kernel
        // picks a port for (bound to port 0, or by a connect: a DNS
        // query's) must not share it with another instance's socket, which
        // would then take its answers. A failure is bind's to tell (an
        // address of another family, say).
        let _ = shared_port::share_unless_taken(raw, ip, port as u16);
    }
    let ptr = (&addr as *const libc::sockaddr_storage).cast();
    // SAFETY: `addr` holds a valid sockaddr of `len` bytes.
    check(unsafe {
        if connect {
            libc::connect(raw, ptr, len)
        } else {
            libc::bind(raw, ptr, len)
        }
    })
}

/// `sock_listen` (V1 and V2 alike).
pub fn listen(fds: &mut FdTable, fd: u32, backlog: u32) -> WasiResult {
    let raw = host_fd(fds, fd)?;
    // SAFETY: plain system call.
    check(unsafe { libc::listen(raw, backlog as i32) })?;
    let shared = fds.shared.clone();
    if let Ok(Descriptor {
        entry: Entry::Socket(socket),
        ..
    }) = fds.get_mut(fd)
    {
        // Listening again (allowed, to change the backlog) is not another
        // listener for the supervisor.
        if let (false, Some(shared)) = (socket.listening, shared) {
            shared.add_listener(raw);
        }
        socket.listening = true;
    }
    Ok(())
}

/// `sock_accept`: V1 passes no flags, V2 a flags argument.
pub fn accept(
    mem: &mut GuestMemory<'_>,
    fds: &mut FdTable,
    fd: u32,
    flags: Option<u32>,
    out: u32,
) -> WasiResult {
    mem.pointer::<4>(out)?;
    let nonblocking = match flags {
        None => false,
        Some(flags) => parse_fd_flags(flags)? & FDFLAGS_NONBLOCK != 0,
    };
    let listener = host_fd(fds, fd)?;
    fds.check_room()?;
    // SAFETY: plain system call; the result is checked and owned below.
    let raw = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    check(raw)?;
    // SAFETY: a new descriptor nothing else owns (closed on any error below).
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    if nonblocking {
        // WasmEdge's `INode::sockAccept` sets O_NONBLOCK on the *listener*
        // (with the new socket's other flags), not on the new socket.
        // SAFETY: fcntl on descriptors we hold.
        let new_flags = unsafe { libc::fcntl(raw, libc::F_GETFL) } | libc::O_NONBLOCK;
        if unsafe { libc::fcntl(listener, libc::F_SETFL, new_flags) } != 0 {
            return Err(crate::errno::last());
        }
    }
    let socket = Socket {
        fd: owned,
        listening: false,
    };
    let new = fds.insert(Descriptor::new(
        Entry::Socket(socket),
        rights::ACCEPTED_SOCKET,
        rights::ACCEPTED_SOCKET,
    ));
    if let Some(shared) = &fds.shared {
        shared.note_accepted();
    }
    mem.write_u32(out, new)
}

/// `sock_shutdown`.
pub fn shutdown(fds: &FdTable, fd: u32, how: u32) -> WasiResult {
    // An 8-bit set of RD (1) and WR (2).
    let how = how as u8;
    if how & !3 != 0 {
        return Err(INVAL);
    }
    let raw = host_fd(fds, fd)?;
    // WasmEdge's `INode::sockShutdown` passes 0 (SHUT_RD) for an empty set.
    let sys = match how {
        1 => libc::SHUT_RD,
        2 => libc::SHUT_WR,
        3 => libc::SHUT_RDWR,
        _ => 0,
    };
    // SAFETY: plain system call.
    check(unsafe { libc::shutdown(raw, sys) })
}

/// `sock_getlocaladdr` / `sock_getpeeraddr`: V1 (with `kind`, the address
/// type out-pointer, and a 4- or 16-byte buffer) or V2 (a 128-byte storage
/// record), in WasmEdge's order of checks and writes.
pub fn name(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    peer: bool,
    address: u32,
    kind: Option<u32>,
    port: u32,
) -> WasiResult {
    let (buf, len) = address::record(mem, address)?;
    match kind {
        Some(kind) => {
            if len != 4 && len != 16 {
                return Err(INVAL);
            }
            mem.pointer::<4>(kind)?;
            mem.pointer::<4>(port)?;
        }
        None => {
            mem.pointer::<4>(port)?;
            if len != 128 {
                return Err(INVAL);
            }
        }
    }
    let raw = host_fd(fds, fd)?;
    // SAFETY: zeroed storage is valid; the call writes at most `size` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut size = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr = (&mut storage as *mut libc::sockaddr_storage).cast();
    check(unsafe {
        if peer {
            libc::getpeername(raw, ptr, &mut size)
        } else {
            libc::getsockname(raw, ptr, &mut size)
        }
    })?;
    let named = address::from_sockaddr(&storage).ok_or(NOSYS)?;
    match kind {
        Some(kind) => {
            address::write_named(mem, buf, len as usize, &named)?;
            mem.write_u32(port, u32::from(named.port))?;
            // WasmEdge's compatibility quirk (`WasiSockGetLocalAddrV1`): 4 or
            // 6, not the family enum.
            mem.write_u32(kind, if named.family == 1 { 4 } else { 6 })
        }
        None => {
            address::write_named(mem, buf + 2, 126, &named)?;
            mem.write_u16(buf, u16::from(named.family))?;
            mem.write_u32(port, u32::from(named.port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::BADF;

    /// The runtime's own stdin, stdout and stderr are never taken for the
    /// guest's sockets, whatever they are on the host.
    #[test]
    fn only_the_guest_s_own_sockets_are_sockets() {
        let fds = FdTable::with_stdio(1);
        for stdio in 0..3 {
            assert_eq!(host_fd(&fds, stdio), Err(NOTSOCK));
        }
        assert_eq!(host_fd(&fds, 99), Err(BADF));
    }

    /// With its share of descriptors full (under `--instances`), a
    /// `sock_open` with a bad argument is refused for that argument, as
    /// WasmEdge checks its arguments before it opens anything.
    #[test]
    fn sock_open_checks_its_arguments_before_its_room() {
        let mut table = FdTable::with_stdio(1);
        table.max_descriptors = Some(3);
        let mut bytes = [0u8; 8];
        let mut mem = GuestMemory(&mut bytes);
        assert_eq!(open(&mut mem, &mut table, 0, 2, 0), Err(INVAL));
        assert_eq!(open(&mut mem, &mut table, 3, 2, 0), Err(NOSYS));
        assert_eq!(open(&mut mem, &mut table, 1, 0, 0), Err(INVAL));
        assert_eq!(
            open(&mut mem, &mut table, 1, 2, 0),
            Err(crate::errno::MFILE)
        );
    }

    /// Listening again (to change the backlog) is not another listener:
    /// the supervisor's list grew by one per call, in host memory outside
    /// the guest's limit.
    #[test]
    fn listening_again_is_one_listener_for_the_supervisor() {
        // SAFETY: a new socket, owned at once.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(raw >= 0);
        let socket = Socket {
            fd: unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) },
            listening: false,
        };
        let mut table = FdTable::with_stdio(1);
        let shared = std::sync::Arc::new(crate::fd_table::Shared::default());
        table.shared = Some(shared.clone());
        let fd = table.insert(Descriptor::new(Entry::Socket(socket), 0, 0));
        for backlog in [16, 32, 64] {
            assert_eq!(listen(&mut table, fd, backlog), Ok(()));
        }
        assert_eq!(shared.listener_count(), 1);
        // Shut for reading (a TCP listener is disconnected) and listening
        // again, it is still the one listener.
        assert_eq!(shutdown(&table, fd, 1), Ok(()));
        assert_eq!(listen(&mut table, fd, 16), Ok(()));
        assert_eq!(shared.listener_count(), 1);
    }
}
