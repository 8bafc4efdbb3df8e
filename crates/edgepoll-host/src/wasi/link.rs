//! The WASI preview1 imports this area serves (process, arguments,
//! environment, clocks, randomness, descriptors, paths), each wired to the
//! function that does its work; the linker asks each area in turn.

use crate::errno::{self, status};
use crate::host::with_memory;
use crate::host::{Host, C, M};
use crate::output::Tagged;
use crate::wasi;
use crate::wasi::fd::Buffers;
use wasmtime::Linker;

/// Defines `name` (with `arity` parameters, see
/// `PROVIDED` in the linker) if this area provides it; false
/// otherwise.
pub fn define(l: &mut Linker<Host>, name: &str, arity: usize) -> wasmtime::Result<bool> {
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
                status(with_memory(&mut c, |mem, host| {
                    wasi::clock_time_get(mem, clock, out, host.cpu_since)
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
        ("proc_raise", _) => l.func_wrap(M, name, |_: C, signal: u32| -> i32 {
            wasi::proc_raise(signal).0 as i32
        })?,
        ("sched_yield", _) => l.func_wrap(M, name, |_: C| -> i32 {
            std::thread::yield_now();
            0
        })?,

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
                        let done = wasi::fd::read_or_write(
                            mem,
                            &h.fds,
                            fd,
                            Buffers { iovs, count: n },
                            None,
                            out,
                            write,
                        );
                        // Not under --instances (`shared`, even with one).
                        if done == Err(errno::PIPE)
                            && write
                            && h.fds.shared.is_none()
                            && wasi::fd::broken_pipe_ends_the_run()
                            && wasi::fd::is_pipe_or_socket(&h.fds, fd)
                        {
                            wasi::fd::die_of_broken_pipe();
                        }
                        done
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

        _ => return Ok(false),
    };
    Ok(true)
}
