//! WASI preview1 as Rust std programs use it: arguments, environment, clocks,
//! randomness, process exit and descriptors (see [`fs`]).

pub mod fs;

use crate::errno::{status, Errno, WasiResult, INVAL, IO};
use crate::host::{with_memory, Host};
use crate::memory::GuestMemory;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{Caller, Linker};

/// Asked of the runtime through `proc_exit`: ends the guest with this code.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "guest exited with code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The monotonic clock's zero, so guests see small monotonic times.
pub fn clock_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

const M: &str = "wasi_snapshot_preview1";

/// Writes a list of strings the way `args_get`/`environ_get` want: pointers to
/// NUL-terminated copies.
fn write_strings(mem: &mut GuestMemory<'_>, list: &[Vec<u8>], ptrs: u32, buf: u32) -> WasiResult {
    let mut at = buf;
    for (i, item) in list.iter().enumerate() {
        mem.write_u32(ptrs + 4 * i as u32, at)?;
        mem.write(at, item)?;
        mem.write_u8(at + item.len() as u32, 0)?;
        at += item.len() as u32 + 1;
    }
    Ok(())
}

fn write_sizes(mem: &mut GuestMemory<'_>, list: &[Vec<u8>], count: u32, size: u32) -> WasiResult {
    mem.write_u32(count, list.len() as u32)?;
    mem.write_u32(size, list.iter().map(|s| s.len() as u32 + 1).sum())
}

fn now_nanos(clock: u32) -> Result<u64, Errno> {
    match clock {
        0 => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| IO)?
            .as_nanos() as u64),
        1 => Ok(clock_epoch().elapsed().as_nanos() as u64),
        2 | 3 => {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let id = if clock == 2 {
                libc::CLOCK_PROCESS_CPUTIME_ID
            } else {
                libc::CLOCK_THREAD_CPUTIME_ID
            };
            // SAFETY: clock_gettime writes one timespec.
            if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
                return Err(IO);
            }
            Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
        }
        _ => Err(INVAL),
    }
}

pub fn add_to_linker(
    linker: &mut Linker<Host>,
    name: &str,
    arity: usize,
) -> wasmtime::Result<bool> {
    match name {
        "args_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, argv: u32, buf: u32| {
                status(with_memory(&mut c, |mem, host| {
                    write_strings(mem, &host.args, argv, buf)
                }))
            })?
        }
        "args_sizes_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, count: u32, size: u32| {
                status(with_memory(&mut c, |mem, host| {
                    write_sizes(mem, &host.args, count, size)
                }))
            })?
        }
        "environ_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, envp: u32, buf: u32| {
                status(with_memory(&mut c, |mem, host| {
                    write_strings(mem, &host.env, envp, buf)
                }))
            })?
        }
        "environ_sizes_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, count: u32, size: u32| {
                status(with_memory(&mut c, |mem, host| {
                    write_sizes(mem, &host.env, count, size)
                }))
            })?
        }
        "clock_res_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, clock: u32, out: u32| {
                status(with_memory(&mut c, |mem, _| {
                    if clock > 3 {
                        return Err(INVAL);
                    }
                    mem.write_u64(out, 1)
                }))
            })?
        }
        "clock_time_get" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, clock: u32, _precision: u64, out: u32| {
                status(with_memory(&mut c, |mem, _| {
                    mem.write_u64(out, now_nanos(clock)?)
                }))
            },
        )?,
        "random_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, buf: u32, len: u32| {
                status(with_memory(&mut c, |mem, _| {
                    let target = mem.slice_mut(buf, len)?;
                    let mut filled = 0;
                    while filled < target.len() {
                        // SAFETY: getrandom writes at most the given length.
                        let n = unsafe {
                            libc::getrandom(
                                target[filled..].as_mut_ptr().cast(),
                                target.len() - filled,
                                0,
                            )
                        };
                        if n < 0 {
                            return Err(crate::errno::last());
                        }
                        filled += n as usize;
                    }
                    Ok(())
                }))
            })?
        }
        "proc_exit" => linker.func_wrap(
            M,
            name,
            |_: Caller<'_, Host>, code: u32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::new(Exit(code as i32)))
            },
        )?,
        "proc_raise" => linker.func_wrap(M, name, |_: Caller<'_, Host>, _signal: u32| -> i32 {
            crate::errno::NOSYS.0 as i32
        })?,
        "sched_yield" => linker.func_wrap(M, name, |_: Caller<'_, Host>| -> i32 {
            std::thread::yield_now();
            0
        })?,
        "poll_oneoff" | "epoll_oneoff" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, subs: u32, events: u32, n: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    host.poller.poll(mem, &host.fds, subs, events, n, out)
                }))
            },
        )?,
        _ => return fs::add_to_linker(linker, name, arity),
    };
    Ok(true)
}
