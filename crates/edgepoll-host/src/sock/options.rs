//! `sock_getsockopt` and `sock_setsockopt`: SOL_SOCKET options only, values
//! passed to and from the kernel in guest memory as they are, except SO_ERROR
//! and SO_TYPE, which guests read in WASI numbering.

use super::host_fd;
use crate::errno::{check, from_linux, Errno, WasiResult, INVAL};
use crate::fd_table::FdTable;
use crate::memory::GuestMemory;

const SO_TYPE: u32 = 1;
const SO_ERROR: u32 = 2;

/// WASI option names (level 0, SOL_SOCKET, is the only level) to Linux ones.
fn option(level: u32, name: u32) -> Result<libc::c_int, Errno> {
    if level != 0 {
        return Err(INVAL);
    }
    Ok(match name {
        0 => libc::SO_REUSEADDR,
        1 => libc::SO_TYPE,
        2 => libc::SO_ERROR,
        3 => libc::SO_DONTROUTE,
        4 => libc::SO_BROADCAST,
        5 => libc::SO_SNDBUF,
        6 => libc::SO_RCVBUF,
        7 => libc::SO_KEEPALIVE,
        8 => libc::SO_OOBINLINE,
        9 => libc::SO_LINGER,
        10 => libc::SO_RCVLOWAT,
        11 => libc::SO_RCVTIMEO,
        12 => libc::SO_SNDTIMEO,
        13 => libc::SO_ACCEPTCONN,
        14 => libc::SO_BINDTODEVICE,
        _ => return Err(INVAL),
    })
}

pub fn get(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    level: u32,
    name: u32,
    value: u32,
    size_ptr: u32,
) -> WasiResult {
    let opt = option(level, name)?;
    mem.pointer::<4>(size_ptr)?;
    let size = mem.read_u32(size_ptr)?;
    mem.slice(value, size)?;
    let raw = host_fd(fds, fd)?;
    // Their WASI numbers need four bytes: less would be a part of the
    // kernel's number. (WasmEdge crashes on it, once it has found the
    // socket.)
    if (name == SO_ERROR || name == SO_TYPE) && size < 4 {
        return Err(INVAL);
    }
    let mut len = size as libc::socklen_t;
    let target = mem.slice_mut(value, size)?.as_mut_ptr();
    // SAFETY: the kernel writes at most `len` bytes at `target`, all inside
    // guest memory.
    check(unsafe { libc::getsockopt(raw, libc::SOL_SOCKET, opt, target.cast(), &mut len) })?;
    if (name == SO_ERROR || name == SO_TYPE) && len >= 4 {
        let v = mem.read_u32(value)? as i32;
        let translated = match name {
            SO_ERROR => i32::from(from_linux(v).0),
            // WasmEdge's `fromSockType`: stream 2, datagram 1, none 0.
            _ => match v {
                libc::SOCK_STREAM => 2,
                libc::SOCK_DGRAM => 1,
                _ => 0,
            },
        };
        mem.write_u32(value, translated as u32)?;
    }
    mem.write_u32(size_ptr, len)
}

pub fn set(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    level: u32,
    name: u32,
    value: u32,
    size: u32,
) -> WasiResult {
    let opt = option(level, name)?;
    let bytes = mem.slice(value, size)?;
    let raw = host_fd(fds, fd)?;
    // SAFETY: `bytes` holds `size` readable bytes.
    check(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            opt,
            bytes.as_ptr().cast(),
            size as libc::socklen_t,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd_table::{Descriptor, Entry};

    /// SO_TYPE and SO_ERROR come in WASI's numbering, which needs four
    /// bytes: asked into fewer, they are refused, not given part of the
    /// kernel's number.
    #[test]
    fn numbered_options_need_four_bytes() {
        // SAFETY: a new socket, owned at once.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(raw >= 0);
        let socket = super::super::Socket {
            fd: unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) },
            listening: false,
        };
        let mut table = FdTable::with_stdio(1);
        let fd = table.insert(Descriptor::new(Entry::Socket(socket), 0, 0));
        // The size at 0, the value at 4.
        let mut bytes = [0u8; 8];
        for name in [SO_TYPE, SO_ERROR] {
            for size in 0..4u32 {
                bytes[..4].copy_from_slice(&size.to_le_bytes());
                let mut mem = GuestMemory(&mut bytes);
                assert_eq!(get(&mut mem, &table, fd, 0, name, 4, 0), Err(INVAL));
                // The descriptor is checked first, as on WasmEdge.
                for (other, errno) in [(0, crate::errno::NOTSOCK), (99, crate::errno::BADF)] {
                    assert_eq!(get(&mut mem, &table, other, 0, name, 4, 0), Err(errno));
                }
            }
            bytes[..4].copy_from_slice(&4u32.to_le_bytes());
            let mut mem = GuestMemory(&mut bytes);
            assert_eq!(get(&mut mem, &table, fd, 0, name, 4, 0), Ok(()));
            let expected: u32 = match name {
                SO_TYPE => 2, // a stream socket, in WASI's numbering
                _ => 0,       // no error
            };
            assert_eq!(bytes[4..], expected.to_le_bytes());
        }
    }
}
