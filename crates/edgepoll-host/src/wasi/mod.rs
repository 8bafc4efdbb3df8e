//! WASI preview1 as Rust std programs use it: arguments, environment, clocks,
//! randomness and process exit here; descriptors in [`fd`], paths in [`path`].

mod beneath;
pub mod fd;
pub mod link;
pub mod path;

use crate::clock;
use crate::errno::{Errno, WasiResult, FAULT, INVAL, NOSYS};
use crate::memory::GuestMemory;

/// Asked of the runtime through `proc_exit`: ends the guest with this code.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "guest exited with code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Writes a list of strings the way `args_get`/`environ_get` want: pointers to
/// NUL-terminated copies. Both areas are checked before anything is
/// written, as WasmEdge does: a call that fails leaves memory as it was.
pub fn write_strings(
    mem: &mut GuestMemory<'_>,
    list: &[Vec<u8>],
    ptrs: u32,
    buf: u32,
) -> WasiResult {
    let count = u32::try_from(list.len() * 4).map_err(|_| FAULT)?;
    mem.slice(ptrs, count)?;
    mem.slice(buf, total_size(list).ok_or(FAULT)?)?;
    // In bounds now: no offset below passes the end of memory.
    let mut at = buf;
    for (i, item) in list.iter().enumerate() {
        mem.write_u32(ptrs + 4 * i as u32, at)?;
        mem.write(at, item)?;
        mem.write_u8(at + item.len() as u32, 0)?;
        at += item.len() as u32 + 1;
    }
    Ok(())
}

/// The bytes the strings take with their NULs, if that fits 32 bits.
fn total_size(list: &[Vec<u8>]) -> Option<u32> {
    list.iter().try_fold(0u32, |sum, s| {
        sum.checked_add(u32::try_from(s.len()).ok()?.checked_add(1)?)
    })
}

/// `args_sizes_get` / `environ_sizes_get`: both pointers checked first.
pub fn write_sizes(
    mem: &mut GuestMemory<'_>,
    list: &[Vec<u8>],
    count: u32,
    size: u32,
) -> WasiResult {
    mem.pointer::<4>(count)?;
    mem.pointer::<4>(size)?;
    mem.write_u32(count, list.len() as u32)?;
    mem.write_u32(size, total_size(list).ok_or(FAULT)?)
}

/// The pointer is checked before the clock, as WasmEdge does.
pub fn clock_res_get(mem: &mut GuestMemory<'_>, clock: u32, out: u32) -> WasiResult {
    mem.pointer::<8>(out)?;
    mem.write_u64(out, clock::resolution_nanos(clock)?)
}

/// The pointer is checked before the clock, as WasmEdge does.
pub fn clock_time_get(
    mem: &mut GuestMemory<'_>,
    clock: u32,
    out: u32,
    cpu_since: Option<u64>,
) -> WasiResult {
    mem.pointer::<8>(out)?;
    mem.write_u64(out, clock::now_nanos(clock, cpu_since)?)
}

/// `proc_raise`. The signal is read as WasmEdge reads it (its low byte;
/// above 30, SYS, `EINVAL`). Those whose raise leaves a running process as
/// it was (none, CHLD, CONT, URG, WINCH: ignored, or a test) succeed, as
/// WasmEdge's `raise` does. Any other WasmEdge raises in its own process,
/// so a guest could stop or kill the runtime (under `--instances`, every
/// instance with it): not done here (a guest never reaches outside what
/// it was given), `ENOSYS`. Rust programs do not call it.
pub fn proc_raise(signal: u32) -> Errno {
    const NONE: u8 = 0;
    const CHLD: u8 = 16;
    const CONT: u8 = 17;
    const URG: u8 = 22;
    const WINCH: u8 = 27;
    const SYS: u8 = 30;
    match signal as u8 {
        NONE | CHLD | CONT | URG | WINCH => Errno(0),
        s if s > SYS => INVAL,
        _ => NOSYS,
    }
}

pub fn random_get(mem: &mut GuestMemory<'_>, buf: u32, len: u32) -> WasiResult {
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
            // A signal (the supervisor's SIGTERM) is no failure: WasmEdge's
            // never fails.
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(crate::errno::last());
        }
        filled += n as usize;
    }
    Ok(())
}
