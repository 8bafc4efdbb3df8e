//! The runtime behind the `edgepoll-host` command: wasmtime plus WasmEdge
//! 0.14's WASI and socket functions. A library so that the command
//! (`main.rs`) and the host-import fuzzer (`fuzz/src/bin/host_imports.rs`)
//! share it; its API is those two users', not a stable one.

// Top: loading and running, and the linker that wires the areas below to
// the guest's imports.
pub mod compile_cache;
pub mod host;
pub mod instances;
pub mod linker;
pub mod output;
pub mod runtime;

// Areas, each unaware of the others: WASI preview1, WasmEdge's sockets, polling.
pub mod poll;
mod sock;
mod wasi;
/// For the command's `.init_array`: how SIGPIPE was inherited.
pub use wasi::fd::record_inherited_sigpipe;
/// `proc_exit`'s end of a guest (what a caller of its functions, such as
/// the fuzzer, tells apart from a failure).
pub use wasi::Exit;

// Shared pieces at the bottom.
mod clock;
pub mod errno;
pub mod fd_table;
pub mod memory;

#[cfg(test)]
mod layering;
mod logging;
