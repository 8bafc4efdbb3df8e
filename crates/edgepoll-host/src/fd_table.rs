//! The guest's descriptor table: stdio, preopened directories, files and
//! sockets in one numbering, as the guest sees it.
//!
//! The runtime owns this table instead of building on `wasmtime-wasi`: WasmEdge's
//! socket functions need host sockets in the same table as files, with
//! WasmEdge's numbering and flags, and a poller that sees them all.

use crate::errno::{Errno, BADF};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
    /// The host descriptor to poll, and whether epoll can watch it.
    pub fn pollable(&self) -> Option<RawFd> {
        match &self.entry {
            Entry::Socket(s) => Some(s.fd.as_raw_fd()),
            Entry::Stdio(fd) => Some(*fd),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct FdTable {
    slots: Vec<Option<Descriptor>>,
    /// Freed numbers, smallest first: POSIX-style lowest-free allocation in
    /// O(log n) instead of a scan per accept.
    free: BinaryHeap<Reverse<u32>>,
}

impl FdTable {
    pub fn with_stdio() -> FdTable {
        let mut table = FdTable::default();
        for fd in 0..3 {
            table.insert(Entry::Stdio(fd), 0);
        }
        table
    }

    /// Adds a descriptor at the lowest free number.
    pub fn insert(&mut self, entry: Entry, flags: u16) -> u32 {
        let descriptor = Some(Descriptor { entry, flags });
        match self.free.pop() {
            Some(Reverse(fd)) => {
                self.slots[fd as usize] = descriptor;
                fd
            }
            None => {
                self.slots.push(descriptor);
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(BADF)
    }

    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(BADF)
    }

    pub fn socket(&self, fd: u32) -> Result<&Socket, Errno> {
        match &self.get(fd)?.entry {
            Entry::Socket(s) => Ok(s),
            _ => Err(crate::errno::NOTSOCK),
        }
    }

    pub fn remove(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        let removed = self
            .slots
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(BADF)?;
        self.free.push(Reverse(fd));
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_allocated_lowest_free_first() {
        let mut table = FdTable::with_stdio();
        let dir = || Entry::Dir {
            host: PathBuf::from("/"),
            guest: "/".into(),
        };
        let fds: Vec<u32> = (0..5).map(|_| table.insert(dir(), 0)).collect();
        assert_eq!(fds, [3, 4, 5, 6, 7]);
        assert!(table.remove(6).is_ok());
        assert!(table.remove(4).is_ok());
        assert!(
            table.remove(4).is_err(),
            "double close is EBADF and frees nothing"
        );
        assert_eq!(table.insert(dir(), 0), 4);
        assert_eq!(table.insert(dir(), 0), 6);
        assert_eq!(table.insert(dir(), 0), 8);
    }
}
