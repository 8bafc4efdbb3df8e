//! WasmEdge's socket imports (`sock_*`, V1 and V2), each wired to the
//! function that does its work. For the unversioned names WasmEdge
//! registers its V1 function and, when a module imports the name with
//! another signature, its V2 function; the parameter count chooses here.

use crate::errno::status;
use crate::host::with_memory;
use crate::host::{Host, C, M};
use crate::sock;
use crate::sock::transfer::{Data, RecvKind, RecvOut};
use wasmtime::Linker;

/// Defines `name` (with `arity` parameters, see
/// `PROVIDED` in the linker) if this area provides it; false
/// otherwise.
pub fn define(l: &mut Linker<Host>, name: &str, arity: usize) -> wasmtime::Result<bool> {
    match (name, arity) {
        // WasmEdge's sockets.
        ("sock_open" | "sock_open_v2", _) => {
            l.func_wrap(M, name, |mut c: C, family: u32, kind: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::open(mem, &mut h.fds, family, kind, out)
                }))
            })?
        }
        ("sock_bind" | "sock_bind_v2" | "sock_connect" | "sock_connect_v2", _) => {
            let storage = name.ends_with("_v2");
            let connect = name.starts_with("sock_connect");
            l.func_wrap(M, name, move |mut c: C, fd: u32, addr: u32, port: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::bind_or_connect(mem, &h.fds, fd, addr, port, storage, connect)
                }))
            })?
        }
        ("sock_listen" | "sock_listen_v2", _) => {
            l.func_wrap(M, name, |mut c: C, fd: u32, backlog: u32| {
                status(sock::listen(&mut c.data_mut().fds, fd, backlog))
            })?
        }
        ("sock_accept", 2) => l.func_wrap(M, name, |mut c: C, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, h| {
                sock::accept(mem, &mut h.fds, fd, None, out)
            }))
        })?,
        ("sock_accept" | "sock_accept_v2", _) => {
            l.func_wrap(M, name, |mut c: C, fd: u32, flags: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::accept(mem, &mut h.fds, fd, Some(flags), out)
                }))
            })?
        }
        ("sock_recv" | "sock_recv_v2", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, iovs: u32, n: u32, flags: u32, len: u32, oflags: u32| {
                let out = RecvOut { len, flags: oflags };
                status(with_memory(&mut c, |mem, h| {
                    sock::transfer::recv(
                        mem,
                        &h.fds,
                        fd,
                        Data { iovs, count: n },
                        flags,
                        RecvKind::Plain,
                        out,
                    )
                }))
            },
        )?,
        ("sock_recv_from", 7) => l.func_wrap(
            M,
            name,
            |mut c: C,
             fd: u32,
             iovs: u32,
             n: u32,
             address: u32,
             flags: u32,
             len: u32,
             oflags: u32| {
                let out = RecvOut { len, flags: oflags };
                status(with_memory(&mut c, |mem, h| {
                    sock::transfer::recv(
                        mem,
                        &h.fds,
                        fd,
                        Data { iovs, count: n },
                        flags,
                        RecvKind::FromV1 { address },
                        out,
                    )
                }))
            },
        )?,
        ("sock_recv_from" | "sock_recv_from_v2", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             fd: u32,
             iovs: u32,
             n: u32,
             address: u32,
             flags: u32,
             port: u32,
             len: u32,
             oflags: u32| {
                let out = RecvOut { len, flags: oflags };
                status(with_memory(&mut c, |mem, h| {
                    sock::transfer::recv(
                        mem,
                        &h.fds,
                        fd,
                        Data { iovs, count: n },
                        flags,
                        RecvKind::FromV2 { address, port },
                        out,
                    )
                }))
            },
        )?,
        ("sock_send" | "sock_send_v2", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, iovs: u32, n: u32, flags: u32, len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::transfer::send(mem, &h.fds, fd, Data { iovs, count: n }, None, flags, len)
                }))
            },
        )?,
        ("sock_send_to" | "sock_send_to_v2", _) => {
            let storage = name.ends_with("_v2");
            l.func_wrap(
                M,
                name,
                move |mut c: C,
                      fd: u32,
                      iovs: u32,
                      n: u32,
                      address: u32,
                      port: u32,
                      flags: u32,
                      len: u32| {
                    let to = Some((address, port, storage));
                    status(with_memory(&mut c, |mem, h| {
                        sock::transfer::send(
                            mem,
                            &h.fds,
                            fd,
                            Data { iovs, count: n },
                            to,
                            flags,
                            len,
                        )
                    }))
                },
            )?
        }
        ("sock_shutdown", _) => l.func_wrap(M, name, |c: C, fd: u32, how: u32| {
            status(sock::shutdown(&c.data().fds, fd, how))
        })?,
        ("sock_getlocaladdr" | "sock_getpeeraddr", 4) => {
            let peer = name == "sock_getpeeraddr";
            l.func_wrap(
                M,
                name,
                move |mut c: C, fd: u32, address: u32, kind: u32, port: u32| {
                    status(with_memory(&mut c, |mem, h| {
                        sock::name(mem, &h.fds, fd, peer, address, Some(kind), port)
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
            l.func_wrap(
                M,
                name,
                move |mut c: C, fd: u32, address: u32, port: u32| {
                    status(with_memory(&mut c, |mem, h| {
                        sock::name(mem, &h.fds, fd, peer, address, None, port)
                    }))
                },
            )?
        }
        ("sock_getsockopt", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, level: u32, opt: u32, value: u32, size: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::options::get(mem, &h.fds, fd, level, opt, value, size)
                }))
            },
        )?,
        ("sock_setsockopt", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, level: u32, opt: u32, value: u32, size: u32| {
                status(with_memory(&mut c, |mem, h| {
                    sock::options::set(mem, &h.fds, fd, level, opt, value, size)
                }))
            },
        )?,
        ("sock_getaddrinfo", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             node: u32,
             node_len: u32,
             service: u32,
             service_len: u32,
             hints: u32,
             res: u32,
             max: u32,
             res_len: u32|
             -> wasmtime::Result<i32> {
                let args = sock::names::Lookup {
                    node,
                    node_len,
                    service,
                    service_len,
                    hints,
                    res,
                    max,
                    res_len,
                };
                let result = with_memory(&mut c, |mem, _| Ok(sock::names::getaddrinfo(mem, &args)));
                match result {
                    Ok(Ok(r)) => Ok(status(r)),
                    Ok(Err(trap)) => Err(wasmtime::Error::new(trap)),
                    Err(e) => Ok(status(Err(e))),
                }
            },
        )?,
        _ => return Ok(false),
    };
    Ok(true)
}
