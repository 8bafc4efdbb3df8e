//! The top of the runtime: every import a module asks of
//! `wasi_snapshot_preview1`, wired to the area that serves it (WASI preview1
//! in `wasi`, WasmEdge's sockets in `sock`, polling in `poll`). The areas know
//! nothing of each other or of wasmtime; this module is the only one that
//! knows them all.
//!
//! For the unversioned socket names WasmEdge registers its V1 function and,
//! when a module imports the name with another signature, its V2 function
//! instead (`lib/executor/instantiate/import.cpp`); the parameter count
//! chooses here in the same way. Functions this runtime lacks answer ENOSYS,
//! so a guest fails a call, not its start.

use crate::errno::{status, NOSYS};
use crate::host::{with_memory, Host};
use crate::output::Tagged;
use crate::sock::transfer::{Data, RecvKind, RecvOut};
use crate::wasi::fd::Buffers;
use crate::{sock, wasi};
use wasmtime::{Caller, Engine, ExternType, Linker, Module, Val, ValType};

const M: &str = "wasi_snapshot_preview1";

pub fn link(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    // A module may import one function more than once (AssemblyScript
    // does); the first definition serves them all.
    let mut defined = std::collections::HashSet::new();
    for import in module.imports() {
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        if import.module() != M {
            continue;
        }
        let name = import.name();
        if !defined.insert(name.to_string()) {
            continue;
        }
        if define(&mut linker, name, ty.params().len())? {
            continue;
        }
        let returns_errno =
            ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
        let what = name.to_string();
        linker.func_new(M, name, ty.clone(), move |_, _, results| {
            if returns_errno {
                results[0] = Val::I32(NOSYS.0 as i32);
                Ok(())
            } else {
                Err(wasmtime::Error::msg(format!(
                    "{what} is not provided by edgepoll-host"
                )))
            }
        })?;
    }
    linker.define_unknown_imports_as_traps(module)?;
    Ok(linker)
}

type C<'a> = Caller<'a, Host>;

/// Every function this runtime provides. The number is the parameter count
/// that picks the V1 signature of the four unversioned socket names that
/// WasmEdge defines twice (0: the only or the V2 signature); see [`define`].
pub const PROVIDED: &[(&str, usize)] = &[
    ("args_get", 0),
    ("args_sizes_get", 0),
    ("environ_get", 0),
    ("environ_sizes_get", 0),
    ("clock_res_get", 0),
    ("clock_time_get", 0),
    ("random_get", 0),
    ("proc_exit", 0),
    ("proc_raise", 0),
    ("sched_yield", 0),
    ("poll_oneoff", 0),
    ("epoll_oneoff", 0),
    ("fd_read", 0),
    ("fd_write", 0),
    ("fd_close", 0),
    ("fd_fdstat_get", 0),
    ("fd_fdstat_set_flags", 0),
    ("fd_filestat_get", 0),
    ("fd_prestat_get", 0),
    ("fd_prestat_dir_name", 0),
    ("fd_seek", 0),
    ("fd_tell", 0),
    ("fd_sync", 0),
    ("fd_datasync", 0),
    ("fd_pread", 0),
    ("fd_pwrite", 0),
    ("fd_advise", 0),
    ("fd_allocate", 0),
    ("fd_filestat_set_size", 0),
    ("fd_filestat_set_times", 0),
    ("fd_fdstat_set_rights", 0),
    ("fd_renumber", 0),
    ("fd_readdir", 0),
    ("path_open", 0),
    ("path_filestat_get", 0),
    ("path_filestat_set_times", 0),
    ("path_create_directory", 0),
    ("path_remove_directory", 0),
    ("path_unlink_file", 0),
    ("path_rename", 0),
    ("path_link", 0),
    ("path_symlink", 0),
    ("path_readlink", 0),
    ("sock_open", 0),
    ("sock_open_v2", 0),
    ("sock_bind", 0),
    ("sock_bind_v2", 0),
    ("sock_connect", 0),
    ("sock_connect_v2", 0),
    ("sock_listen", 0),
    ("sock_listen_v2", 0),
    ("sock_accept", 2),
    ("sock_accept", 0),
    ("sock_accept_v2", 0),
    ("sock_recv", 0),
    ("sock_recv_v2", 0),
    ("sock_recv_from", 7),
    ("sock_recv_from", 0),
    ("sock_recv_from_v2", 0),
    ("sock_send", 0),
    ("sock_send_v2", 0),
    ("sock_send_to", 0),
    ("sock_send_to_v2", 0),
    ("sock_shutdown", 0),
    ("sock_getlocaladdr", 4),
    ("sock_getpeeraddr", 4),
    ("sock_getlocaladdr", 0),
    ("sock_getpeeraddr", 0),
    ("sock_getlocaladdr_v2", 0),
    ("sock_getpeeraddr_v2", 0),
    ("sock_getsockopt", 0),
    ("sock_setsockopt", 0),
    ("sock_getaddrinfo", 0),
];

/// Defines `name` if this runtime provides it; false otherwise.
pub fn define(linker: &mut Linker<Host>, name: &str, arity: usize) -> wasmtime::Result<bool> {
    let l = linker;
    match (name, arity) {
        // Process, arguments, environment, clocks, randomness.
        ("args_get", _) => l.func_wrap(M, name, |mut c: C, argv: u32, buf: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::write_strings(mem, &h.args, argv, buf)
            }))
        })?,
        ("args_sizes_get", _) => l.func_wrap(M, name, |mut c: C, n: u32, size: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::write_sizes(mem, &h.args, n, size)
            }))
        })?,
        ("environ_get", _) => l.func_wrap(M, name, |mut c: C, envp: u32, buf: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::write_strings(mem, &h.env, envp, buf)
            }))
        })?,
        ("environ_sizes_get", _) => l.func_wrap(M, name, |mut c: C, n: u32, size: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::write_sizes(mem, &h.env, n, size)
            }))
        })?,
        ("clock_res_get", _) => l.func_wrap(M, name, |mut c: C, clock: u32, out: u32| {
            status(with_memory(&mut c, |mem, _| {
                wasi::clock_res_get(mem, clock, out)
            }))
        })?,
        ("clock_time_get", _) => l.func_wrap(
            M,
            name,
            |mut c: C, clock: u32, _precision: u64, out: u32| {
                status(with_memory(&mut c, |mem, _| {
                    wasi::clock_time_get(mem, clock, out)
                }))
            },
        )?,
        ("random_get", _) => l.func_wrap(M, name, |mut c: C, buf: u32, len: u32| {
            status(with_memory(&mut c, |mem, _| {
                wasi::random_get(mem, buf, len)
            }))
        })?,
        ("proc_exit", _) => l.func_wrap(M, name, |_: C, code: u32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(wasi::Exit(code as i32)))
        })?,
        ("proc_raise", _) => {
            l.func_wrap(M, name, |_: C, _signal: u32| -> i32 { NOSYS.0 as i32 })?
        }
        ("sched_yield", _) => l.func_wrap(M, name, |_: C| -> i32 {
            std::thread::yield_now();
            0
        })?,

        // Polling.
        ("poll_oneoff" | "epoll_oneoff", _) => l.func_wrap(
            M,
            name,
            |mut c: C, subs: u32, events: u32, n: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    h.poller.poll(mem, &mut h.fds, subs, events, n, out)
                }))
            },
        )?,

        // Descriptors.
        ("fd_read" | "fd_write", _) => {
            let write = name == "fd_write";
            l.func_wrap(
                M,
                name,
                move |mut c: C, fd: u32, iovs: u32, n: u32, out: u32| {
                    status(with_memory(&mut c, |mem, h| {
                        if let (true, Some(tagged)) = (write, &mut h.tagged) {
                            if let Some(stream) = Tagged::stream_of(&h.fds, fd) {
                                return tagged.write(mem, stream, iovs, n, out);
                            }
                        }
                        wasi::fd::read_or_write(
                            mem,
                            &h.fds,
                            fd,
                            Buffers { iovs, count: n },
                            None,
                            out,
                            write,
                        )
                    }))
                },
            )?
        }
        ("fd_close", _) => l.func_wrap(M, name, |mut c: C, fd: u32| {
            status(wasi::fd::close(&mut c.data_mut().fds, fd))
        })?,
        ("fd_fdstat_get", _) => l.func_wrap(M, name, |mut c: C, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::fd::fdstat_get(mem, &h.fds, fd, out)
            }))
        })?,
        ("fd_fdstat_set_flags", _) => l.func_wrap(M, name, |mut c: C, fd: u32, flags: u32| {
            status(wasi::fd::fdstat_set_flags(&mut c.data_mut().fds, fd, flags))
        })?,
        ("fd_filestat_get", _) => l.func_wrap(M, name, |mut c: C, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::fd::filestat_get(mem, &h.fds, fd, out)
            }))
        })?,
        ("fd_prestat_get", _) => l.func_wrap(M, name, |mut c: C, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::fd::prestat_get(mem, &h.fds, fd, out)
            }))
        })?,
        ("fd_prestat_dir_name", _) => {
            l.func_wrap(M, name, |mut c: C, fd: u32, path: u32, len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::fd::prestat_dir_name(mem, &h.fds, fd, path, len)
                }))
            })?
        }
        ("fd_seek", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, offset: i64, whence: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::fd::seek(mem, &h.fds, fd, Some((offset, whence)), out)
                }))
            },
        )?,
        ("fd_tell", _) => l.func_wrap(M, name, |mut c: C, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, h| {
                wasi::fd::seek(mem, &h.fds, fd, None, out)
            }))
        })?,
        ("fd_sync" | "fd_datasync", _) => {
            let data_only = name == "fd_datasync";
            l.func_wrap(M, name, move |c: C, fd: u32| {
                status(wasi::fd::sync(&c.data().fds, fd, data_only))
            })?
        }
        ("fd_pread" | "fd_pwrite", _) => {
            let write = name == "fd_pwrite";
            l.func_wrap(
                M,
                name,
                move |mut c: C, fd: u32, iovs: u32, n: u32, offset: u64, out: u32| {
                    status(with_memory(&mut c, |mem, h| {
                        wasi::fd::read_or_write(
                            mem,
                            &h.fds,
                            fd,
                            Buffers { iovs, count: n },
                            Some(offset),
                            out,
                            write,
                        )
                    }))
                },
            )?
        }
        ("fd_advise", _) => l.func_wrap(
            M,
            name,
            |c: C, fd: u32, offset: u64, len: u64, advice: u32| {
                status(wasi::fd::advise(&c.data().fds, fd, offset, len, advice))
            },
        )?,
        ("fd_allocate", _) => l.func_wrap(M, name, |c: C, fd: u32, offset: u64, len: u64| {
            status(wasi::fd::allocate(&c.data().fds, fd, offset, len))
        })?,
        ("fd_filestat_set_size", _) => l.func_wrap(M, name, |c: C, fd: u32, size: u64| {
            status(wasi::fd::filestat_set_size(&c.data().fds, fd, size))
        })?,
        ("fd_filestat_set_times", _) => l.func_wrap(
            M,
            name,
            |c: C, fd: u32, atim: u64, mtim: u64, flags: u32| {
                status(wasi::fd::filestat_set_times(
                    &c.data().fds,
                    fd,
                    atim,
                    mtim,
                    flags,
                ))
            },
        )?,
        ("fd_fdstat_set_rights", _) => {
            l.func_wrap(M, name, |mut c: C, fd: u32, base: u64, inheriting: u64| {
                status(wasi::fd::fdstat_set_rights(
                    &mut c.data_mut().fds,
                    fd,
                    base,
                    inheriting,
                ))
            })?
        }
        ("fd_renumber", _) => l.func_wrap(M, name, |mut c: C, from: u32, to: u32| {
            status(wasi::fd::renumber(&mut c.data_mut().fds, from, to))
        })?,
        ("fd_readdir", _) => l.func_wrap(
            M,
            name,
            |mut c: C, fd: u32, buf: u32, len: u32, cookie: u64, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::fd::readdir(mem, &h.fds, fd, buf, len, cookie, out)
                }))
            },
        )?,
        ("path_open", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             dirfd: u32,
             lookup: u32,
             path: u32,
             len: u32,
             oflags: u32,
             rights: u64,
             inheriting: u64,
             fdflags: u32,
             out: u32| {
                let open = wasi::path::Open {
                    dirfd,
                    lookup,
                    path,
                    len,
                    oflags,
                    rights,
                    inheriting,
                    fdflags,
                    out,
                };
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::open(mem, &mut h.fds, &open)
                }))
            },
        )?,
        ("path_filestat_get", _) => l.func_wrap(
            M,
            name,
            |mut c: C, dirfd: u32, flags: u32, path: u32, len: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::filestat_get(mem, &h.fds, dirfd, flags, path, len, out)
                }))
            },
        )?,
        ("path_filestat_set_times", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             dirfd: u32,
             flags: u32,
             path: u32,
             len: u32,
             atim: u64,
             mtim: u64,
             fst: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::filestat_set_times(
                        mem, &h.fds, dirfd, flags, path, len, atim, mtim, fst,
                    )
                }))
            },
        )?,
        ("path_create_directory", _) => {
            l.func_wrap(M, name, |mut c: C, dirfd: u32, path: u32, len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::create_directory(mem, &h.fds, dirfd, path, len)
                }))
            })?
        }
        ("path_remove_directory" | "path_unlink_file", _) => {
            let directory = name == "path_remove_directory";
            l.func_wrap(M, name, move |mut c: C, dirfd: u32, path: u32, len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::remove(mem, &h.fds, dirfd, path, len, directory)
                }))
            })?
        }
        ("path_rename", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             dirfd: u32,
             path: u32,
             len: u32,
             new_dirfd: u32,
             new_path: u32,
             new_len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::rename(
                        mem,
                        &h.fds,
                        (dirfd, path, len),
                        (new_dirfd, new_path, new_len),
                    )
                }))
            },
        )?,
        ("path_link", _) => l.func_wrap(
            M,
            name,
            |mut c: C,
             dirfd: u32,
             flags: u32,
             path: u32,
             len: u32,
             new_dirfd: u32,
             new_path: u32,
             new_len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::link(
                        mem,
                        &h.fds,
                        (dirfd, path, len),
                        flags,
                        (new_dirfd, new_path, new_len),
                    )
                }))
            },
        )?,
        ("path_symlink", _) => l.func_wrap(
            M,
            name,
            |mut c: C, target: u32, target_len: u32, dirfd: u32, path: u32, len: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::symlink(mem, &h.fds, (target, target_len), dirfd, path, len)
                }))
            },
        )?,
        ("path_readlink", _) => l.func_wrap(
            M,
            name,
            |mut c: C, dirfd: u32, path: u32, len: u32, buf: u32, buf_len: u32, out: u32| {
                status(with_memory(&mut c, |mem, h| {
                    wasi::path::readlink(mem, &h.fds, dirfd, path, len, buf, buf_len, out)
                }))
            },
        )?,

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_listed_as_provided_is_defined() {
        let engine = Engine::default();
        for &(name, arity) in PROVIDED {
            let mut linker = Linker::new(&engine);
            assert!(
                define(&mut linker, name, arity).expect("defines"),
                "{name} ({arity} parameters) is listed but not defined"
            );
        }
        let mut linker = Linker::new(&engine);
        assert!(!define(&mut linker, "fd_no_such_function", 0).expect("answers"));
    }
}
