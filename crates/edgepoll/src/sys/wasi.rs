//! Functions imported from the runtime (`wasi_snapshot_preview1`).
//!
//! Signatures match those `wasmedge_wasi_socket` 0.5.5 declares for the same
//! names: a module may import a name only once, with one signature.

use super::abi::{RawEvent, RawSubscription};

/// A `{ buf, buf_len }` buffer record, as `sock_recv` and `sock_send` take
/// them (`sock_recv` one here, `sock_send` up to
/// [`MAX_SEND_PARTS`](crate::net::MAX_SEND_PARTS)).
#[repr(C)]
pub(crate) struct Iovec {
    pub(crate) buf: *mut u8,
    pub(crate) size: usize,
}

/// WasmEdge's `{ buf, buf_len }` address record.
#[repr(C)]
pub(crate) struct WasiAddress {
    pub(crate) buf: *mut u8,
    pub(crate) size: usize,
}

/// WasmEdge's `addrinfo` record (28 bytes): what `sock_getaddrinfo` takes
/// as hints and fills in, one per result, chained through `next`.
#[repr(C)]
pub(crate) struct AddrInfo {
    pub(crate) flags: u16,
    pub(crate) family: u8,
    pub(crate) socktype: u8,
    pub(crate) protocol: u8,
    pub(crate) _pad: [u8; 3],
    pub(crate) addrlen: u32,
    pub(crate) addr: *mut SockAddr,
    pub(crate) canonname: *mut u8,
    pub(crate) canonname_len: u32,
    pub(crate) next: *mut AddrInfo,
}

impl Default for AddrInfo {
    fn default() -> Self {
        AddrInfo {
            flags: 0,
            family: 0,
            socktype: 0,
            protocol: 0,
            _pad: [0; 3],
            addrlen: 0,
            addr: std::ptr::null_mut(),
            canonname: std::ptr::null_mut(),
            canonname_len: 0,
            next: std::ptr::null_mut(),
        }
    }
}

/// WasmEdge's `sockaddr` record (12 bytes): the family, and a buffer that
/// gets the host's `sockaddr` after its family field.
#[repr(C)]
pub(crate) struct SockAddr {
    pub(crate) family: u8,
    pub(crate) _pad: [u8; 3],
    pub(crate) data_len: u32,
    pub(crate) data: *mut u8,
}

#[cfg(target_arch = "wasm32")]
const _: () = assert!(std::mem::size_of::<AddrInfo>() == 28);
#[cfg(target_arch = "wasm32")]
const _: () = assert!(std::mem::size_of::<SockAddr>() == 12);

/// WASI `fdstat`: 24 bytes, 8-aligned.
#[repr(C)]
#[derive(Default)]
pub(crate) struct FdStat {
    _filetype: u8,
    pub(crate) flags: u16,
    _rights_base: u64,
    _rights_inheriting: u64,
}

const _: () = assert!(std::mem::size_of::<FdStat>() == 24);

/// `fdflags`: the descriptor does not block.
pub(crate) const FDFLAGS_NONBLOCK: u16 = 4;
/// `riflags`: look at the data without taking it.
pub(crate) const RIFLAGS_RECV_PEEK: u16 = 1;
/// WASI's `badf`, as `fd_fdstat_get` returns it.
pub(crate) const ERRNO_BADF: u16 = 8;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    pub(crate) fn fd_fdstat_get(fd: u32, stat: *mut FdStat) -> u16;
    pub(crate) fn poll_oneoff(
        subs: *const RawSubscription,
        events: *mut RawEvent,
        nsubs: usize,
        nevents: *mut usize,
    ) -> u16;
    pub(crate) fn sock_accept(fd: u32, new_fd: *mut u32) -> u32;
    pub(crate) fn sock_recv(
        fd: u32,
        iovs: *mut Iovec,
        iovs_len: usize,
        flags: u16,
        received: *mut usize,
        out_flags: *mut usize,
    ) -> u32;
    pub(crate) fn sock_send(
        fd: u32,
        iovs: *const Iovec,
        iovs_len: u32,
        flags: u16,
        sent: *mut u32,
    ) -> u32;
    pub(crate) fn sock_getaddrinfo(
        node: *const u8,
        node_len: u32,
        service: *const u8,
        service_len: u32,
        hints: *const AddrInfo,
        res: *mut u32,
        max_len: u32,
        res_len: *mut u32,
    ) -> u32;
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
