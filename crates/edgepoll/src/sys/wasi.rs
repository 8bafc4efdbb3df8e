//! Functions imported from the runtime (`wasi_snapshot_preview1`).
//!
//! Signatures match those `wasmedge_wasi_socket` 0.5.5 declares for the same
//! names: a module may import a name only once, with one signature.

use super::abi::{RawEvent, RawSubscription};

/// WasmEdge's `{ buf, buf_len }` address record.
#[repr(C)]
pub(crate) struct WasiAddress {
    pub(crate) buf: *mut u8,
    pub(crate) size: usize,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    pub(crate) fn poll_oneoff(
        subs: *const RawSubscription,
        events: *mut RawEvent,
        nsubs: usize,
        nevents: *mut usize,
    ) -> u16;
    pub(crate) fn sock_accept(fd: u32, new_fd: *mut u32) -> u32;
    pub(crate) fn sock_connect(fd: u32, addr: *mut WasiAddress, port: u32) -> u32;
    pub(crate) fn sock_getlocaladdr(
        fd: u32,
        addr: *mut WasiAddress,
        addr_type: *mut u32,
        port: *mut u32,
    ) -> u32;
    pub(crate) fn sock_getpeeraddr(
        fd: u32,
        addr: *mut WasiAddress,
        addr_type: *mut u32,
        port: *mut u32,
    ) -> u32;
}
