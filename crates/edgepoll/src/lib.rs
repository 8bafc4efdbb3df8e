//! edgepoll: non-blocking network programs for WasmEdge.
pub mod http;
