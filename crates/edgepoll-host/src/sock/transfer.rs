//! `sock_recv`, `sock_recv_from`, `sock_send`, `sock_send_to`: V1 and V2, with
//! WasmEdge's order of checks and its way of reporting where a datagram came
//! from.

use super::address::{
    from_sockaddr, read_target, record, to_sockaddr, write_received, Destination,
};
use super::host_fd;
use crate::errno::{self, Errno, WasiResult, INVAL};
use crate::fd_table::FdTable;
use crate::memory::{iovec_buffer, GuestMemory};

const RECV_PEEK: u16 = 1;
const RECV_WAITALL: u16 = 2;
const RECV_DATA_TRUNCATED: u16 = 1;

/// riflags: 16 bits, PEEK and WAITALL only.
fn recv_flags(flags: u32) -> Result<libc::c_int, Errno> {
    let flags = flags as u16;
    if flags & !(RECV_PEEK | RECV_WAITALL) != 0 {
        return Err(INVAL);
    }
    let mut sys = 0;
    if flags & RECV_PEEK != 0 {
        sys |= libc::MSG_PEEK;
    }
    if flags & RECV_WAITALL != 0 {
        sys |= libc::MSG_WAITALL;
    }
    Ok(sys)
}

/// siflags: 16 bits, none defined.
fn send_flags(flags: u32) -> WasiResult {
    if flags as u16 != 0 {
        Err(INVAL)
    } else {
        Ok(())
    }
}

/// An iovec array argument: where, and how many entries.
#[derive(Clone, Copy)]
pub struct Data {
    pub iovs: u32,
    pub count: u32,
}

/// Where a receive writes its results.
pub struct RecvOut {
    pub len: u32,
    pub flags: u32,
}

/// Which `sock_recv*` is being served, and the address outputs it has.
pub enum RecvKind {
    /// `sock_recv`: no address.
    Plain,
    /// `sock_recv_from` V1: an address record of any size, no port.
    FromV1 { address: u32 },
    /// `sock_recv_from` V2: 4, 16 or 128 bytes, and a 16-bit port.
    FromV2 { address: u32, port: u32 },
}

/// Every `sock_recv*`, checked in WasmEdge's order.
pub fn recv(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    data: Data,
    flags: u32,
    kind: RecvKind,
    out: RecvOut,
) -> WasiResult {
    let Data { iovs, count } = data;
    let mut dest = None;
    let mut port_at = None;
    match kind {
        RecvKind::Plain => {}
        RecvKind::FromV1 { address } => {
            let (buf, len) = record(mem, address)?;
            dest = Some(Destination {
                buf,
                len,
                storage: false,
            });
        }
        RecvKind::FromV2 { address, port } => {
            let (buf, len) = record(mem, address)?;
            if !matches!(len, 4 | 16 | 128) {
                return Err(INVAL);
            }
            dest = Some(Destination {
                buf,
                len,
                storage: len == 128,
            });
            port_at = Some(port);
        }
    }
    let sys_flags = recv_flags(flags)?;
    if count as usize > crate::memory::MAX_IOVECS {
        return Err(INVAL);
    }
    if let Some(port) = port_at {
        mem.pointer::<2>(port)?;
    }
    let table = mem.iovec_table(iovs, count)?;
    mem.pointer::<4>(out.len)?;
    mem.pointer::<2>(out.flags)?;
    let mut vecs = iovec_buffer();
    let n = mem.gather(table, &mut vecs)?;
    let raw = host_fd(fds, fd)?;

    // SAFETY: zeroed sockaddr_storage and msghdr are valid initial values.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // WasmEdge asks for the sender only when there is somewhere to put it.
    let wants_address = port_at.is_some() || dest.as_ref().is_some_and(|d| d.len > 0);
    if wants_address {
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
    }
    // The first `n` entries are initialized (gather).
    msg.msg_iov = vecs.as_mut_ptr().cast();
    msg.msg_iovlen = n;
    // SAFETY: msg points at live buffers for the duration of the call.
    let r = unsafe { libc::recvmsg(raw, &mut msg, sys_flags) };
    if r < 0 {
        return Err(errno::last());
    }
    mem.write_u32(out.len, r as u32)?;
    if wants_address {
        // A family WASI cannot name (WasmEdge: `sockRecvFrom`'s default case).
        let peer = from_sockaddr(&from).ok_or(Errno(52))?;
        if let Some(dest) = &dest {
            write_received(mem, dest, &peer)?;
        }
        if let Some(port) = port_at {
            if matches!(peer.family, 1 | 2) {
                // WasmEdge's `sockRecvFrom` stores `sin_port` as it is, in
                // network order: the guest reads the port byte-swapped.
                mem.write(port, &peer.port.to_be_bytes())?;
            }
        }
        let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
        mem.write_u16(out.flags, if truncated { RECV_DATA_TRUNCATED } else { 0 })?;
        // No sender address (a connected TCP socket): WasmEdge also logs a
        // warning to stdout ("remote address unavailable"), its diagnostic,
        // not the guest's output; none here.
        if let Some(dest) = dest.filter(|d| d.storage && peer.family != 0) {
            mem.write_u16(dest.buf, u16::from(peer.family))?;
        }
        return Ok(());
    }
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
    mem.write_u16(out.flags, if truncated { RECV_DATA_TRUNCATED } else { 0 })
}

/// Every `sock_send*`: `to` is the address argument of `sock_send_to`
/// (`storage`: the V2 form), checked in WasmEdge's order.
pub fn send(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    data: Data,
    to: Option<(u32, u32, bool)>,
    flags: u32,
    out_len: u32,
) -> WasiResult {
    let Data { iovs, count } = data;
    let target = match to {
        Some((address, port, storage)) => Some((read_target(mem, address, storage)?, port)),
        None => None,
    };
    send_flags(flags)?;
    let table = mem.iovec_table(iovs, count)?;
    mem.pointer::<4>(out_len)?;
    let mut vecs = iovec_buffer();
    let n = mem.gather(table, &mut vecs)?;
    let raw = host_fd(fds, fd)?;
    // SAFETY: a zeroed msghdr is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    let mut name = target.map(|(t, port)| to_sockaddr(t, port as u16));
    if let Some((storage, len)) = &mut name {
        msg.msg_name = (storage as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = *len;
    }
    // The first `n` entries are initialized (gather).
    msg.msg_iov = vecs.as_mut_ptr().cast();
    msg.msg_iovlen = n;
    // MSG_NOSIGNAL: a send to a reset peer is EPIPE for the guest, not SIGPIPE
    // for the whole runtime (WasmEdge passes it too).
    // SAFETY: msg points at live buffers for the duration of the call.
    let r = unsafe { libc::sendmsg(raw, &msg, libc::MSG_NOSIGNAL) };
    if r < 0 {
        return Err(errno::last());
    }
    mem.write_u32(out_len, r as u32)
}
