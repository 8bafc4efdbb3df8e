//! A differential transcript of WasmEdge's socket ABI.
//!
//! The guest calls every host function the socket programs import (`sock_*`
//! in their V1 and V2 forms, `poll_oneoff`, `epoll_oneoff`, the `fd_*`
//! functions on sockets, `sock_getaddrinfo` on loopback names) with valid,
//! boundary and hostile arguments, and prints one line per call: the errno and
//! the out-values, with descriptors and ephemeral ports normalised. Run under
//! WasmEdge and under edgepoll-host, the two transcripts must be identical
//! (`tests/tests/abi_transcript.rs`).
//!
//! Cases leave out only what crashes or corrupts WasmEdge 0.14 itself (an
//! address family it cannot translate, a subscription count whose byte size
//! overflows 32 bits); the module docs say where.

#[cfg(target_os = "wasi")]
pub mod ffi;
#[cfg(target_os = "wasi")]
pub mod memory;
#[cfg(target_os = "wasi")]
pub mod sections;
#[cfg(target_os = "wasi")]
pub mod steps;
#[cfg(target_os = "wasi")]
pub mod transcript;
