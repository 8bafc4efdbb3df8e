//! The clocks guests read: realtime, the host's monotonic clock (time since
//! boot, as WasmEdge gives it: a guest computing an earlier instant, such
//! as Rust's `Instant::now() - Duration::from_secs(1)`, must not find it
//! before zero just after starting), and CPU time.

use crate::errno::{Errno, INVAL, IO};
use std::time::{SystemTime, UNIX_EPOCH};

pub const REALTIME: u32 = 0;
pub const MONOTONIC: u32 = 1;
pub const PROCESS_CPUTIME: u32 = 2;
pub const THREAD_CPUTIME: u32 = 3;

/// Nanoseconds of the host's `CLOCK_MONOTONIC`.
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The host's clock for a WASI clock id.
fn host_clock(clock: u32) -> Result<libc::clockid_t, Errno> {
    match clock {
        REALTIME => Ok(libc::CLOCK_REALTIME),
        MONOTONIC => Ok(libc::CLOCK_MONOTONIC),
        PROCESS_CPUTIME => Ok(libc::CLOCK_PROCESS_CPUTIME_ID),
        THREAD_CPUTIME => Ok(libc::CLOCK_THREAD_CPUTIME_ID),
        _ => Err(INVAL),
    }
}

/// The resolution of `clock` in nanoseconds, as the host's `clock_getres`
/// gives it, as WasmEdge gives it (EINVAL for an unknown clock).
pub fn resolution_nanos(clock: u32) -> Result<u64, Errno> {
    let id = host_clock(clock)?;
    // SAFETY: clock_getres writes one timespec.
    nanos_of(|ts| unsafe { libc::clock_getres(id, ts) })
}

/// The nanoseconds of the timespec `call` writes (`IO` if it fails).
fn nanos_of(call: impl FnOnce(&mut libc::timespec) -> libc::c_int) -> Result<u64, Errno> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if call(&mut ts) != 0 {
        return Err(IO);
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The current time of `clock` in nanoseconds (EINVAL for an unknown
/// clock); with `cpu_since` (an instance's, see `Host::cpu_since`), the
/// process's CPU time and the thread's are both the calling thread's since
/// then (the instance's one thread, as its own process's main thread).
pub fn now_nanos(clock: u32, cpu_since: Option<u64>) -> Result<u64, Errno> {
    match (clock, cpu_since) {
        (REALTIME, _) => Ok(realtime_nanos()),
        (MONOTONIC, _) => Ok(monotonic_nanos()),
        (PROCESS_CPUTIME | THREAD_CPUTIME, Some(since)) => {
            Ok(now_nanos(THREAD_CPUTIME, None)?.saturating_sub(since))
        }
        _ => {
            let id = host_clock(clock)?;
            // SAFETY: clock_gettime writes one timespec.
            nanos_of(|ts| unsafe { libc::clock_gettime(id, ts) })
        }
    }
}
