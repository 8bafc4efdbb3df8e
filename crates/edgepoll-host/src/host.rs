//! The runtime's per-guest state, reached from every host function.

use crate::errno::{Errno, FAULT};
use crate::fd_table::FdTable;
use crate::memory::GuestMemory;
use crate::poll::Poller;
use wasmtime::{Caller, Memory};

pub struct Host {
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub fds: FdTable,
    pub preopens: Vec<u32>,
    pub poller: Poller,
    pub memory: Option<Memory>,
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
