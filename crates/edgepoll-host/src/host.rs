//! The runtime's per-guest state: what the linker's functions hand to each
//! area (guest memory, the descriptor table, the poller).

use crate::errno::{Errno, FAULT};
use crate::fd_table::FdTable;
use crate::memory::GuestMemory;
use crate::poll::Poller;
use wasmtime::{Caller, Memory};

/// The module every import this runtime provides belongs to.
pub const M: &str = "wasi_snapshot_preview1";

/// What each host function is called with.
pub type C<'a> = Caller<'a, Host>;

pub struct Host {
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub fds: FdTable,
    pub poller: Poller,
    pub memory: Option<Memory>,
    pub memory_report: MemoryReport,
    /// With several instances: the guest's stdout and stderr, a line at a
    /// time, each tagged with the instance's number.
    pub tagged: Option<crate::output::Tagged>,
    /// With `--instances`: the CPU time of the instance's thread when the
    /// instance began. Its CPU-time clocks (process and thread) count from
    /// there, as a WasmEdge process of its own would; the host process's
    /// counted every instance, the compiler's threads, and each run before
    /// a restart (on the same thread).
    pub cpu_since: Option<u64>,
}

/// Reports the guest's linear memory size on every growth to the file named by
/// `EDGEPOLL_HOST_MEMORY_FILE` (for `make bench`); wasm memory never shrinks,
/// so the file holds the guest's peak heap footprint. With `--instances N`,
/// instance K reports to the file's name followed by `.K`.
/// It also holds the guest to `--memory-page-limit`.
#[derive(Default)]
pub struct MemoryReport {
    pub file: Option<std::path::PathBuf>,
    /// Most bytes one memory may grow to.
    pub max_bytes: Option<u64>,
    /// Elements of all the guest's tables together.
    pub table_elements: usize,
}

/// The most memory a guest gets: all 4 GiB a wasm32 guest could address but
/// the last 64 KiB page. Then every guest pointer the host has checked lies
/// below 2^32 - 65536, and adding a record's offset (or a length just
/// checked) to it cannot wrap around to the start of memory. WasmEdge grants
/// the last page too; no guest wants it.
pub const MOST_GUEST_BYTES: u64 = (1 << 32) - 65536;

/// The most elements a guest's tables hold together (8 MiB of host memory).
/// A program's table holds its functions called indirectly, a few thousand;
/// WasmEdge sets no bound, and a guest's `table.grow` by 2^31 would make the
/// host allocate 16 GiB (or a hundred tables of a million each, 800 MiB).
pub const MOST_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for MemoryReport {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The module's own maximum first, and silently, as WasmEdge's
        // `growPage` refuses it before its page limit.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let limit = self
            .max_bytes
            .map_or(MOST_GUEST_BYTES, |l| l.min(MOST_GUEST_BYTES));
        if desired as u64 > limit {
            // As WasmEdge says each one under its page limit (on stdout,
            // with its log's prefix): an operator learns why the guest
            // ran short. Without the option, a failed grow is silent on both.
            // Never `eprintln!`, which panics on a stderr that takes no
            // more (a reader gone), under the guest's `memory.grow`.
            if let Some(line) = self.refusal(desired) {
                crate::output::say(&line);
            }
            return Ok(false);
        }
        if let Some(file) = &self.file {
            // Written beside it, then renamed over it: a reader never finds
            // it empty halfway through (bench/run.py read that as 0).
            let mut temp = file.clone().into_os_string();
            temp.push(".tmp");
            if std::fs::write(&temp, format!("{desired}\n")).is_ok() {
                let _ = std::fs::rename(&temp, file);
            }
        }
        Ok(true)
    }

    /// Tables live in host memory, outside the page limit: past
    /// [`MOST_TABLE_ELEMENTS`] over all of them a `table.grow` fails
    /// (returns -1), and a module declaring more fails to start, instead of
    /// making the host allocate gigabytes.
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_elements
            .saturating_sub(current)
            .saturating_add(desired);
        if total > MOST_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }
}

impl MemoryReport {
    /// The line a grow to `desired` bytes refused for `--memory-page-limit`
    /// gets, if that limit is what refused it.
    fn refusal(&self, desired: usize) -> Option<String> {
        let max = self.max_bytes.filter(|&max| max < MOST_GUEST_BYTES)?;
        let pages = (desired as u64).div_ceil(65536);
        Some(format!(
            "memory grow to {pages} pages refused: over --memory-page-limit {}",
            max / 65536
        ))
    }
}

/// Runs `f` with the guest's memory and the host state at once.
pub fn with_memory<R>(
    caller: &mut Caller<'_, Host>,
    f: impl FnOnce(&mut GuestMemory<'_>, &mut Host) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let memory = caller.data().memory.ok_or(FAULT)?;
    let (bytes, host) = memory.data_and_store_mut(caller);
    f(&mut GuestMemory(bytes), host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_last_page_of_4_gib_is_never_granted() {
        let mut limits = MemoryReport::default();
        let most = MOST_GUEST_BYTES as usize;
        assert!(limits.memory_growing(0, most, None).unwrap());
        assert!(!limits.memory_growing(most, most + 65536, None).unwrap());
        let mut capped = MemoryReport {
            max_bytes: Some(1 << 20),
            ..MemoryReport::default()
        };
        assert!(capped.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!capped.memory_growing(0, (1 << 20) + 65536, None).unwrap());
        // A refusal for the limit is said; one for 4 GiB alone is not, as
        // WasmEdge says nothing without its page limit.
        assert_eq!(
            capped.refusal((1 << 20) + 65536).as_deref(),
            Some("memory grow to 17 pages refused: over --memory-page-limit 16")
        );
        assert_eq!(limits.refusal(most + 65536), None);
        // Past the module's own maximum: refused, whatever the limit.
        assert!(!limits.memory_growing(0, 2 << 16, Some(1 << 16)).unwrap());
    }

    #[test]
    fn tables_grow_only_so_far() {
        let mut limits = MemoryReport::default();
        assert!(limits.table_growing(1, MOST_TABLE_ELEMENTS, None).unwrap());
        assert!(!limits
            .table_growing(1, MOST_TABLE_ELEMENTS + 1, None)
            .unwrap());
        assert!(!limits.table_growing(1, 0x7fff_ffff, None).unwrap());
        assert!(!limits.table_growing(1, 10, Some(5)).unwrap());
        // All tables together: a second one gets only what the first left.
        let mut limits = MemoryReport::default();
        let half = MOST_TABLE_ELEMENTS / 2;
        assert!(limits.table_growing(0, half, None).unwrap());
        assert!(limits.table_growing(0, half, None).unwrap());
        assert!(!limits.table_growing(0, 1, None).unwrap());
        assert!(!limits.table_growing(half, half + 1, None).unwrap());
    }
}
