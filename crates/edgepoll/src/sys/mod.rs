//! The WASI preview1 and WasmEdge socket ABI: record layouts (all targets, so
//! the bookkeeping above them is tested natively) and the imported functions
//! (`wasm32-wasip1` only).

pub(crate) mod abi;
#[cfg(target_os = "wasi")]
pub(crate) mod wasi;
