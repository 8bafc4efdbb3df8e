//! Byte layouts of `poll_oneoff`'s subscription and event records.

// Natively only the table's tests use these.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code))]

pub(crate) const EVENTTYPE_CLOCK: u8 = 0;
pub(crate) const EVENTTYPE_FD_READ: u8 = 1;
pub(crate) const EVENTTYPE_FD_WRITE: u8 = 2;
pub(crate) const CLOCKID_MONOTONIC: u32 = 1;
pub(crate) const EVENTRWFLAGS_HANGUP: u16 = 1;

/// WASI `subscription`: 48 bytes, 8-aligned. `id_or_fd` is the clock id for a
/// clock subscription and the descriptor for a read or write subscription.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawSubscription {
    pub(crate) userdata: u64,
    pub(crate) tag: u8,
    pub(crate) _pad0: [u8; 7],
    pub(crate) id_or_fd: u32,
    pub(crate) _pad1: u32,
    pub(crate) timeout: u64,
    pub(crate) precision: u64,
    pub(crate) flags: u16,
    pub(crate) _pad2: [u8; 6],
}

impl RawSubscription {
    pub(crate) fn fd(tag: u8, fd: u32, userdata: u64) -> Self {
        RawSubscription {
            userdata,
            tag,
            id_or_fd: fd,
            ..Default::default()
        }
    }

    pub(crate) fn relative_timeout(nanos: u64) -> Self {
        RawSubscription {
            userdata: u64::MAX,
            tag: EVENTTYPE_CLOCK,
            id_or_fd: CLOCKID_MONOTONIC,
            timeout: nanos,
            ..Default::default()
        }
    }
}

/// WASI `event`: 32 bytes, 8-aligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawEvent {
    pub(crate) userdata: u64,
    pub(crate) error: u16,
    pub(crate) kind: u8,
    pub(crate) _pad0: [u8; 5],
    pub(crate) nbytes: u64,
    pub(crate) flags: u16,
    pub(crate) _pad1: [u8; 6],
}

const _: () = assert!(std::mem::size_of::<RawSubscription>() == 48);
const _: () = assert!(std::mem::size_of::<RawEvent>() == 32);
