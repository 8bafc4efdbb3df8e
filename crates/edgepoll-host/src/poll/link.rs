//! `poll_oneoff` and WasmEdge's `epoll_oneoff`, wired to the poller.

use crate::errno::status;
use crate::host::with_memory;
use crate::host::{Host, C, M};
use wasmtime::Linker;

/// Defines `name` (with `arity` parameters, see
/// `PROVIDED` in the linker) if this area provides it; false
/// otherwise.
pub fn define(l: &mut Linker<Host>, name: &str, arity: usize) -> wasmtime::Result<bool> {
    match (name, arity) {
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

        _ => return Ok(false),
    };
    Ok(true)
}
