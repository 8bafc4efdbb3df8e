//! The guest's descriptor table: stdio, preopened directories, files and
//! sockets in one numbering, as the guest sees it.
//!
//! The runtime owns this table instead of building on `wasmtime-wasi`: WasmEdge's
//! socket functions need host sockets in the same table as files, with
//! WasmEdge's numbering and flags, and a poller that sees them all.
//!
//! Numbering copies WasmEdge 0.14 (`Environ::init` and
//! `generateRandomFdToNode` in `include/host/wasi/environ.h`): 0–2 are stdio,
//! preopened directories follow from 3, and every other new descriptor gets a
//! random unused number in [0, 2^31). A guest that assumes small or dense
//! numbers fails here as it would on WasmEdge.

use crate::errno::{Errno, BADF};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub const FDFLAGS_APPEND: u16 = 1;
pub const FDFLAGS_NONBLOCK: u16 = 4;

pub enum Entry {
    /// Host descriptor 0, 1 or 2, shared with the runtime itself.
    Stdio(RawFd),
    /// A preopened directory: `--dir GUEST::HOST`.
    Dir {
        host: PathBuf,
        guest: String,
    },
    File(File),
    Socket(Socket),
}

pub struct Socket {
    pub fd: OwnedFd,
    /// 1 = IPv4, 2 = IPv6 (WASI address family).
    pub family: u8,
    /// 1 = datagram, 2 = stream (WASI socket type).
    pub kind: u8,
}

pub struct Descriptor {
    pub entry: Entry,
    pub flags: u16,
}

impl Descriptor {
    /// The host descriptor behind this entry (none for a directory).
    pub fn host_fd(&self) -> Option<RawFd> {
        match &self.entry {
            Entry::Socket(s) => Some(s.fd.as_raw_fd()),
            Entry::File(f) => Some(f.as_raw_fd()),
            Entry::Stdio(fd) => Some(*fd),
            Entry::Dir { .. } => None,
        }
    }
}

pub struct FdTable {
    entries: FxHashMap<u32, Descriptor>,
    /// splitmix64 state: random numbers without a syscall per descriptor.
    state: u64,
}

/// WasmEdge draws new numbers uniformly from [0, 0x7FFF_FFFF].
const RANDOM_FD_MASK: u64 = 0x7FFF_FFFF;

impl FdTable {
    /// A table with stdio at 0, 1 and 2 and numbers drawn from `seed`.
    pub fn with_stdio(seed: u64) -> FdTable {
        let mut table = FdTable {
            entries: FxHashMap::default(),
            state: seed,
        };
        for fd in 0..3 {
            table.insert_at(fd, Entry::Stdio(fd as RawFd), 0);
        }
        table
    }

    /// Puts a descriptor at a chosen number (stdio and preopened directories).
    pub fn insert_at(&mut self, fd: u32, entry: Entry, flags: u16) {
        self.entries.insert(fd, Descriptor { entry, flags });
    }

    /// Adds a descriptor at a random unused number in [0, 2^31): expected
    /// O(1), as the table is far from full.
    pub fn insert(&mut self, entry: Entry, flags: u16) -> u32 {
        loop {
            let fd = (self.next_random() & RANDOM_FD_MASK) as u32;
            if let MapEntry::Vacant(slot) = self.entries.entry(fd) {
                slot.insert(Descriptor { entry, flags });
                return fd;
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.entries.get(&fd).ok_or(BADF)
    }

    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.entries.get_mut(&fd).ok_or(BADF)
    }

    pub fn remove(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        self.entries.remove(&fd).ok_or(BADF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn dir() -> Entry {
        Entry::Dir {
            host: PathBuf::from("/"),
            guest: "/".into(),
        }
    }

    #[test]
    fn stdio_and_chosen_numbers_stay_put() {
        let mut table = FdTable::with_stdio(1);
        table.insert_at(3, dir(), 0);
        for fd in 0..4 {
            assert!(table.get(fd).is_ok(), "descriptor {fd}");
        }
        assert!(table.remove(3).is_ok());
        assert!(table.remove(3).is_err(), "a double close is EBADF");
    }

    #[test]
    fn new_numbers_are_random_below_two_to_the_31_and_never_collide() {
        let mut table = FdTable::with_stdio(0x5EED);
        let mut live: Vec<u32> = (0..3).collect();
        let mut live_set: HashSet<u32> = live.iter().copied().collect();
        let mut above_2_20 = 0;
        let mut x = 7u64;
        for _ in 0..100_000 {
            let fd = table.insert(dir(), 0);
            assert!(fd < 1 << 31, "{fd} is outside [0, 2^31)");
            assert!(live_set.insert(fd), "{fd} was handed out twice");
            live.push(fd);
            if fd >= 1 << 20 {
                above_2_20 += 1;
            }
            // Keep about a hundred open; close a pseudo-random one.
            if live.len() > 100 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let victim = live.swap_remove(3 + (x >> 33) as usize % (live.len() - 3));
                assert!(table.remove(victim).is_ok());
                live_set.remove(&victim);
            }
        }
        assert!(above_2_20 > 99_000, "only {above_2_20} numbers above 2^20");
        for fd in 0..3 {
            assert!(matches!(
                table.get(fd).map(|d| &d.entry),
                Ok(Entry::Stdio(_))
            ));
        }
    }
}
