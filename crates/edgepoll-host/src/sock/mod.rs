//! WasmEdge 0.14's socket extension: `sock_*` with WasmEdge's numbering,
//! record layouts and quirks.
//!
//! For the unversioned names WasmEdge registers its V1 function and, when a
//! module imports the name with another signature, its V2 function instead;
//! [`add_to_linker`] does the same from the import's parameter count.

mod addr;

use crate::errno::{self, status, Errno, WasiResult, INVAL, NOTSUP};
use crate::fd_table::{Entry, Socket, FDFLAGS_NONBLOCK};
use crate::host::{with_memory, Host};
use crate::memory::GuestMemory;
use crate::wasi::fs::{gather as iovecs, MAX_IOVECS};
use addr::{read_address, to_sockaddr, write_address_v1, write_address_v2, AddressFormat};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use wasmtime::{Caller, Linker};

const M: &str = "wasi_snapshot_preview1";

fn socket_fd(host: &Host, fd: u32) -> Result<i32, Errno> {
    Ok(socket_of(host, fd)?.fd.as_raw_fd())
}

fn socket_of(host: &Host, fd: u32) -> Result<&Socket, Errno> {
    match &host.fds.get(fd)?.entry {
        Entry::Socket(s) => Ok(s),
        _ => Err(errno::NOTSOCK),
    }
}

fn check(r: libc::c_int) -> WasiResult {
    if r < 0 {
        Err(errno::last())
    } else {
        Ok(())
    }
}

fn sock_open(
    mem: &mut GuestMemory<'_>,
    host: &mut Host,
    family: u32,
    kind: u32,
    out: u32,
) -> WasiResult {
    mem.read_u32(out)?;
    let domain = match family {
        1 => libc::AF_INET,
        2 => libc::AF_INET6,
        _ => return Err(Errno(5)), // AFNOSUPPORT: AF_UNIX is refused, as WasmEdge does by default
    };
    let ty = match kind {
        0 | 2 => libc::SOCK_STREAM,
        1 => libc::SOCK_DGRAM,
        _ => return Err(INVAL),
    };
    // SAFETY: plain system call; the result is checked and owned below.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    let socket = Socket {
        // SAFETY: `raw` is a new descriptor nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(raw) },
        family: family as u8,
        kind: if ty == libc::SOCK_DGRAM { 1 } else { 2 },
    };
    let fd = host.fds.insert(Entry::Socket(socket), 0);
    host.poller.invalidate(fd);
    mem.write_u32(out, fd)
}

fn sock_bind_or_connect(
    mem: &mut GuestMemory<'_>,
    host: &mut Host,
    fd: u32,
    address: u32,
    port: u32,
    connect: bool,
) -> WasiResult {
    let raw = socket_fd(host, fd)?;
    let ip = read_address(mem, address)?;
    let (storage, len) = to_sockaddr(ip, port as u16);
    let ptr = (&storage as *const libc::sockaddr_storage).cast();
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let r = unsafe {
        if connect {
            libc::connect(raw, ptr, len)
        } else {
            libc::bind(raw, ptr, len)
        }
    };
    check(r)
}

fn sock_accept(
    mem: &mut GuestMemory<'_>,
    host: &mut Host,
    fd: u32,
    flags: u32,
    out: u32,
) -> WasiResult {
    mem.read_u32(out)?;
    let listener = socket_of(host, fd)?;
    let (raw, family) = (listener.fd.as_raw_fd(), listener.family);
    let nonblocking = flags as u16 & FDFLAGS_NONBLOCK != 0;
    let mut accept_flags = libc::SOCK_CLOEXEC;
    if nonblocking {
        accept_flags |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain system call; the result is checked and owned below.
    let new = unsafe {
        libc::accept4(
            raw,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            accept_flags,
        )
    };
    check(new)?;
    let socket = Socket {
        // SAFETY: a new descriptor nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(new) },
        family,
        kind: 2,
    };
    let fd = host.fds.insert(
        Entry::Socket(socket),
        if nonblocking { FDFLAGS_NONBLOCK } else { 0 },
    );
    host.poller.invalidate(fd);
    mem.write_u32(out, fd)
}

/// recvmsg into guest memory; returns (bytes, peer address).
fn recv(
    mem: &mut GuestMemory<'_>,
    raw: i32,
    iovs: u32,
    count: u32,
    riflags: u32,
) -> Result<(usize, u16, libc::sockaddr_storage), Errno> {
    let mut vec = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let n = iovecs(mem, iovs, count, &mut vec)?;
    // SAFETY: zeroed sockaddr_storage and msghdr are valid initial values.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
    msg.msg_iov = vec.as_mut_ptr();
    msg.msg_iovlen = n;
    let mut flags = 0;
    if riflags & 1 != 0 {
        flags |= libc::MSG_PEEK;
    }
    if riflags & 2 != 0 {
        flags |= libc::MSG_WAITALL;
    }
    // SAFETY: msg points at live buffers for the duration of the call.
    let r = unsafe { libc::recvmsg(raw, &mut msg, flags) };
    if r < 0 {
        return Err(errno::last());
    }
    let roflags = if msg.msg_flags & libc::MSG_TRUNC != 0 {
        1
    } else {
        0
    };
    Ok((r as usize, roflags, from))
}

fn send(
    mem: &mut GuestMemory<'_>,
    raw: i32,
    iovs: u32,
    count: u32,
    to: Option<(libc::sockaddr_storage, u32)>,
) -> Result<usize, Errno> {
    let mut vec = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let n = iovecs(mem, iovs, count, &mut vec)?;
    // SAFETY: a zeroed msghdr is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    let mut to = to;
    if let Some((storage, len)) = &mut to {
        msg.msg_name = (storage as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = *len;
    }
    msg.msg_iov = vec.as_mut_ptr();
    msg.msg_iovlen = n;
    // MSG_NOSIGNAL: a send to a reset peer is EPIPE for the guest, not SIGPIPE
    // for the whole runtime.
    // SAFETY: msg points at live buffers for the duration of the call.
    let r = unsafe { libc::sendmsg(raw, &msg, libc::MSG_NOSIGNAL) };
    if r < 0 {
        Err(errno::last())
    } else {
        Ok(r as usize)
    }
}

fn name_of(
    mem: &mut GuestMemory<'_>,
    host: &Host,
    fd: u32,
    peer: bool,
) -> Result<libc::sockaddr_storage, Errno> {
    let raw = socket_fd(host, fd)?;
    // SAFETY: zeroed storage is valid; the call writes at most `len` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as u32;
    let ptr = (&mut storage as *mut libc::sockaddr_storage).cast();
    let r = unsafe {
        if peer {
            libc::getpeername(raw, ptr, &mut len)
        } else {
            libc::getsockname(raw, ptr, &mut len)
        }
    };
    check(r)?;
    let _ = mem;
    Ok(storage)
}

/// WASI option names (SOL_SOCKET only) to Linux ones.
fn option_name(name: u32) -> Result<i32, Errno> {
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

fn sock_getsockopt(
    mem: &mut GuestMemory<'_>,
    host: &Host,
    fd: u32,
    level: u32,
    name: u32,
    value: u32,
    size_ptr: u32,
) -> WasiResult {
    let raw = socket_fd(host, fd)?;
    if level != 0 {
        return Err(NOTSUP);
    }
    let opt = option_name(name)?;
    let size = mem.read_u32(size_ptr)?.min(64);
    mem.slice(value, size)?;
    let mut buf = [0u8; 64];
    let mut len = size;
    // SAFETY: `buf` has room for `len` bytes.
    check(unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            opt,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    if (opt == libc::SO_ERROR || opt == libc::SO_TYPE) && len >= 4 {
        let v = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        // The guest reads these in WASI numbering: errno values and socket types.
        let translated = match opt {
            libc::SO_ERROR if v != 0 => errno::from_linux(v).0 as i32,
            libc::SO_TYPE if v == libc::SOCK_DGRAM => 1,
            libc::SO_TYPE => 2,
            _ => v,
        };
        buf[..4].copy_from_slice(&translated.to_le_bytes());
    }
    mem.write(value, &buf[..len as usize])?;
    mem.write_u32(size_ptr, len)
}

fn sock_setsockopt(
    mem: &mut GuestMemory<'_>,
    host: &Host,
    fd: u32,
    level: u32,
    name: u32,
    value: u32,
    size: u32,
) -> WasiResult {
    let raw = socket_fd(host, fd)?;
    if level != 0 {
        return Err(NOTSUP);
    }
    let opt = option_name(name)?;
    let bytes = mem.slice(value, size.min(64))?;
    // SAFETY: `bytes` holds `len` readable bytes.
    check(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            opt,
            bytes.as_ptr().cast(),
            bytes.len() as u32,
        )
    })
}

pub fn add_to_linker(
    linker: &mut Linker<Host>,
    name: &str,
    arity: usize,
) -> wasmtime::Result<bool> {
    match (name, arity) {
        ("sock_open" | "sock_open_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, af: u32, ty: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_open(mem, host, af, ty, out)
                }))
            },
        )?,
        ("sock_bind" | "sock_bind_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, a: u32, port: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_bind_or_connect(mem, host, fd, a, port, false)
                }))
            },
        )?,
        ("sock_connect" | "sock_connect_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, a: u32, port: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_bind_or_connect(mem, host, fd, a, port, true)
                }))
            },
        )?,
        ("sock_listen" | "sock_listen_v2", _) => {
            linker.func_wrap(M, name, |c: Caller<'_, Host>, fd: u32, backlog: i32| {
                status(
                    socket_fd(c.data(), fd)
                        .and_then(|raw| check(unsafe { libc::listen(raw, backlog) })),
                )
            })?
        }
        ("sock_accept", 2) => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_accept(mem, host, fd, 0, out)
                }))
            })?
        }
        ("sock_accept" | "sock_accept_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, flags: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_accept(mem, host, fd, flags, out)
                }))
            },
        )?,
        ("sock_recv" | "sock_recv_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             fd: u32,
             iovs: u32,
             n: u32,
             flags: u32,
             out_len: u32,
             out_flags: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = socket_fd(host, fd)?;
                    mem.read_u32(out_len)?;
                    mem.read_u16(out_flags)?;
                    let (len, roflags, _) = recv(mem, raw, iovs, n, flags)?;
                    mem.write_u32(out_len, len as u32)?;
                    mem.write_u16(out_flags, roflags)
                }))
            },
        )?,
        ("sock_recv_from", 7) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             fd: u32,
             iovs: u32,
             n: u32,
             a: u32,
             flags: u32,
             out_len: u32,
             out_flags: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = socket_fd(host, fd)?;
                    let (len, roflags, from) = recv(mem, raw, iovs, n, flags)?;
                    write_address_v1(mem, a, &from, None)?;
                    mem.write_u32(out_len, len as u32)?;
                    mem.write_u16(out_flags, roflags)
                }))
            },
        )?,
        ("sock_recv_from" | "sock_recv_from_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             fd: u32,
             iovs: u32,
             n: u32,
             a: u32,
             flags: u32,
             port: u32,
             out_len: u32,
             out_flags: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = socket_fd(host, fd)?;
                    let (len, roflags, from) = recv(mem, raw, iovs, n, flags)?;
                    match addr::format_of(mem, a)? {
                        AddressFormat::Storage => write_address_v2(mem, a, &from, port)?,
                        AddressFormat::Raw => {
                            write_address_v1(mem, a, &from, Some(port)).map(drop)?
                        }
                    }
                    mem.write_u32(out_len, len as u32)?;
                    mem.write_u16(out_flags, roflags)
                }))
            },
        )?,
        ("sock_send" | "sock_send_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, iovs: u32, n: u32, _flags: u32, out_len: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = socket_fd(host, fd)?;
                    mem.read_u32(out_len)?;
                    let sent = send(mem, raw, iovs, n, None)?;
                    mem.write_u32(out_len, sent as u32)
                }))
            },
        )?,
        ("sock_send_to" | "sock_send_to_v2", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             fd: u32,
             iovs: u32,
             n: u32,
             a: u32,
             port: u32,
             _flags: u32,
             out_len: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = socket_fd(host, fd)?;
                    let ip = read_address(mem, a)?;
                    let (storage, len) = to_sockaddr(ip, port as u16);
                    let sent = send(mem, raw, iovs, n, Some((storage, len)))?;
                    mem.write_u32(out_len, sent as u32)
                }))
            },
        )?,
        ("sock_shutdown", _) => {
            linker.func_wrap(M, name, |c: Caller<'_, Host>, fd: u32, how: u32| {
                let how = match how {
                    1 => libc::SHUT_RD,
                    2 => libc::SHUT_WR,
                    3 => libc::SHUT_RDWR,
                    _ => return status(Err(INVAL)),
                };
                status(
                    socket_fd(c.data(), fd)
                        .and_then(|raw| check(unsafe { libc::shutdown(raw, how) })),
                )
            })?
        }
        ("sock_getlocaladdr" | "sock_getpeeraddr", 4) => {
            let peer = name == "sock_getpeeraddr";
            linker.func_wrap(
                M,
                name,
                move |mut c: Caller<'_, Host>, fd: u32, a: u32, kind: u32, port: u32| {
                    status(with_memory(&mut c, |mem, host| {
                        let storage = name_of(mem, host, fd, peer)?;
                        mem.read_u32(kind)?;
                        let family = write_address_v1(mem, a, &storage, Some(port))?;
                        // WasmEdge's compatibility quirk: 4 or 6, not the family enum.
                        mem.write_u32(kind, if family == 1 { 4 } else { 6 })
                    }))
                },
            )?
        }
        (
            "sock_getlocaladdr"
            | "sock_getpeeraddr"
            | "sock_getlocaladdr_v2"
            | "sock_getpeeraddr_v2",
            _,
        ) => {
            let peer = name.starts_with("sock_getpeeraddr");
            linker.func_wrap(
                M,
                name,
                move |mut c: Caller<'_, Host>, fd: u32, a: u32, port: u32| {
                    status(with_memory(&mut c, |mem, host| {
                        let storage = name_of(mem, host, fd, peer)?;
                        write_address_v2(mem, a, &storage, port)
                    }))
                },
            )?
        }
        ("sock_getsockopt", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, level: u32, opt: u32, value: u32, size: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_getsockopt(mem, host, fd, level, opt, value, size)
                }))
            },
        )?,
        ("sock_setsockopt", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, level: u32, opt: u32, value: u32, size: u32| {
                status(with_memory(&mut c, |mem, host| {
                    sock_setsockopt(mem, host, fd, level, opt, value, size)
                }))
            },
        )?,
        ("sock_getaddrinfo", _) => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             node: u32,
             node_len: u32,
             service: u32,
             service_len: u32,
             hints: u32,
             res: u32,
             max: u32,
             out_len: u32| {
                status(with_memory(&mut c, |mem, _| {
                    addr::getaddrinfo(
                        mem,
                        node,
                        node_len,
                        service,
                        service_len,
                        hints,
                        res,
                        max,
                        out_len,
                    )
                }))
            },
        )?,
        _ => return Ok(false),
    };
    Ok(true)
}
