//! WasmEdge's address records and their conversion to and from host
//! `sockaddr`s.
//!
//! An address argument points at `{ buf: u32, buf_len: u32 }`. `buf_len` 4 or
//! 16 means raw IPv4 or IPv6 bytes in network order; the V2 functions also
//! take 128, a storage record: the family (u16: 1 IPv4, 2 IPv6, 3 Unix)
//! followed by 126 bytes of address.

use crate::errno::{Errno, INVAL, NOMEM, NOSYS};
use crate::memory::GuestMemory;

const SUN_PATH: usize = 108;

/// The address a bind, connect or send names.
#[derive(Clone, Copy)]
pub enum Target {
    V4([u8; 4]),
    V6([u8; 16]),
    Unix([u8; SUN_PATH]),
}

/// The `{ buf, buf_len }` of an address record, both checked.
pub fn record(mem: &GuestMemory<'_>, ptr: u32) -> Result<(u32, u32), Errno> {
    mem.pointer::<8>(ptr)?;
    let (buf, len) = (mem.read_u32(ptr)?, mem.read_u32(ptr + 4)?);
    mem.slice(buf, len)?;
    Ok((buf, len))
}

/// Reads an address argument as WasmEdge's `sock_bind`, `sock_connect` and
/// `sock_send_to` do: record, then bytes, then size (`storage`: the V2 forms,
/// which also take the 128-byte record).
pub fn read_target(mem: &GuestMemory<'_>, ptr: u32, storage: bool) -> Result<Target, Errno> {
    let (buf, len) = record(mem, ptr)?;
    let bytes = mem.slice(buf, len)?;
    match (len, storage) {
        (4, _) => Ok(Target::V4(array(bytes, 0))),
        (16, _) => Ok(Target::V6(array(bytes, 0))),
        // WasmEdge reads the 16-bit family as its 8-bit enum (0x101 is IPv4).
        (128, true) => match bytes[0] {
            1 => Ok(Target::V4(array(bytes, 2))),
            2 => Ok(Target::V6(array(bytes, 2))),
            // Any other family is read as Unix's, as WasmEdge 0.14.1's
            // build does (its `assumingUnreachable` leaves the last branch):
            // the kernel refuses it on an inet socket (EAFNOSUPPORT).
            _ => Ok(Target::Unix(array(bytes, 2))),
        },
        _ => Err(INVAL),
    }
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// A host `sockaddr` for `target` and `port`.
pub fn to_sockaddr(target: Target, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let base = (&mut storage as *mut libc::sockaddr_storage).cast::<u8>();
    let len = match target {
        Target::V4(ip) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *base.cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(ip);
            std::mem::size_of::<libc::sockaddr_in>()
        }
        Target::V6(ip) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *base.cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = ip;
            std::mem::size_of::<libc::sockaddr_in6>()
        }
        Target::Unix(path) => {
            // SAFETY: as above, for sockaddr_un.
            let sun = unsafe { &mut *base.cast::<libc::sockaddr_un>() };
            sun.sun_family = libc::AF_UNIX as u16;
            for (dst, src) in sun.sun_path.iter_mut().zip(path) {
                *dst = src as libc::c_char;
            }
            std::mem::size_of::<libc::sockaddr_un>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A host address split into what guests see.
pub struct Peer {
    /// WASI family: 1 IPv4, 2 IPv6, 3 Unix; 0 when the host gave none.
    pub family: u8,
    pub bytes: [u8; SUN_PATH],
    pub len: usize,
    /// The port in host order.
    pub port: u16,
}

/// Splits a host address; `None` for a family WASI cannot name.
pub fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<Peer> {
    let base = (storage as *const libc::sockaddr_storage).cast::<u8>();
    let mut peer = Peer {
        family: 0,
        bytes: [0; SUN_PATH],
        len: 0,
        port: 0,
    };
    match storage.ss_family as i32 {
        libc::AF_UNSPEC => {}
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*base.cast::<libc::sockaddr_in>() };
            peer.family = 1;
            peer.bytes[..4].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
            peer.len = 4;
            peer.port = u16::from_be(sin.sin_port);
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe { &*base.cast::<libc::sockaddr_in6>() };
            peer.family = 2;
            peer.bytes[..16].copy_from_slice(&sin6.sin6_addr.s6_addr);
            peer.len = 16;
            peer.port = u16::from_be(sin6.sin6_port);
        }
        libc::AF_UNIX => {
            // SAFETY: the family says this is a sockaddr_un.
            let sun = unsafe { &*base.cast::<libc::sockaddr_un>() };
            peer.family = 3;
            for (dst, src) in peer.bytes.iter_mut().zip(sun.sun_path) {
                *dst = src as u8;
            }
            peer.len = SUN_PATH;
        }
        _ => return None,
    }
    Some(peer)
}

/// Where a received address goes: the record's buffer, and whether it is
/// the 128-byte storage form (address bytes after the 2-byte family).
pub struct Destination {
    pub buf: u32,
    pub len: u32,
    pub storage: bool,
}

/// Copies a received address as WasmEdge's `sockRecvFrom` does: as many
/// bytes as the family has, if the buffer holds them, else nothing (a Unix
/// path that does not fit is EINVAL).
pub fn write_received(
    mem: &mut GuestMemory<'_>,
    dest: &Destination,
    peer: &Peer,
) -> Result<(), Errno> {
    let (at, room) = if dest.storage {
        (dest.buf + 2, 126)
    } else {
        (dest.buf, dest.len as usize)
    };
    match peer.family {
        0 => Ok(()),
        1 | 2 if room >= peer.len => mem.write(at, &peer.bytes[..peer.len]),
        1 | 2 => Ok(()),
        3 if room >= SUN_PATH => mem.write(at, &peer.bytes),
        3 => Err(INVAL),
        _ => Err(NOSYS),
    }
}

/// Copies a socket's own or peer address as WasmEdge's `sockGetLocalAddr`
/// does: NOMEM when the buffer is too small for the family.
pub fn write_named(
    mem: &mut GuestMemory<'_>,
    at: u32,
    room: usize,
    peer: &Peer,
) -> Result<(), Errno> {
    match peer.family {
        1..=3 if room < peer.len => Err(NOMEM),
        1..=3 => mem.write(at, &peer.bytes[..peer.len]),
        _ => Err(NOSYS),
    }
}
