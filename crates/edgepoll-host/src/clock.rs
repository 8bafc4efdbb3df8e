//! The clocks guests read: realtime, a monotonic clock that starts near zero
//! when the runtime does, and CPU time.

use crate::errno::{Errno, INVAL, IO};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub const REALTIME: u32 = 0;
pub const MONOTONIC: u32 = 1;

/// The monotonic clock's zero, so guests see small monotonic times.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The current time of `clock` in nanoseconds (EINVAL for an unknown clock).
pub fn now_nanos(clock: u32) -> Result<u64, Errno> {
    match clock {
        REALTIME => Ok(realtime_nanos()),
        MONOTONIC => Ok(epoch().elapsed().as_nanos() as u64),
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
