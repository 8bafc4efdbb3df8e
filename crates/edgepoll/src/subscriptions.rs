//! The subscription list `Poll` hands to the runtime, kept between polls.
//!
//! Registering appends, deregistering swap-removes: both O(1), and the array is
//! never rebuilt, so an unchanged set of sockets costs the guest nothing per
//! poll and lets the runtime see an unchanged list.
//!
//! Where each descriptor's records sit is kept in a hash map, never in an
//! array indexed by descriptor: WasmEdge numbers descriptors at random in
//! [0, 2^31), so they are neither small nor dense.

use crate::sys::abi::{RawSubscription, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE};
use crate::{Interest, Token};
use rustc_hash::FxHashMap;
use std::io;

const NONE: u32 = u32::MAX;

/// Where one descriptor's two records sit in the list (`NONE`: absent).
#[derive(Clone, Copy, Debug)]
struct Slot {
    read: u32,
    write: u32,
}

impl Slot {
    fn at(&mut self, tag: u8) -> &mut u32 {
        if tag == EVENTTYPE_FD_READ {
            &mut self.read
        } else {
            &mut self.write
        }
    }
}

/// The runtime's subscription records, and where each descriptor's are.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionTable {
    subs: Vec<RawSubscription>,
    slots: FxHashMap<u32, Slot>,
}

impl SubscriptionTable {
    #[cfg(test)]
    pub(crate) fn as_slice(&self) -> &[RawSubscription] {
        &self.subs
    }

    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    /// The list with room for one more record at the end (the poll timeout).
    pub(crate) fn list_mut(&mut self) -> &mut Vec<RawSubscription> {
        &mut self.subs
    }

    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    pub(crate) fn register(&mut self, fd: u32, token: Token, interest: Interest) -> io::Result<()> {
        if self.slots.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        self.slots.insert(
            fd,
            Slot {
                read: NONE,
                write: NONE,
            },
        );
        self.set(fd, token, interest.is_readable(), interest.is_writable());
        Ok(())
    }

    pub(crate) fn reregister(
        &mut self,
        fd: u32,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.slot(fd)?;
        self.set(fd, token, interest.is_readable(), interest.is_writable());
        Ok(())
    }

    pub(crate) fn deregister(&mut self, fd: u32) -> io::Result<()> {
        self.slot(fd)?;
        self.set(fd, Token(0), false, false);
        self.slots.remove(&fd);
        Ok(())
    }

    fn slot(&self, fd: u32) -> io::Result<Slot> {
        self.slots.get(&fd).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not registered"),
            )
        })
    }

    /// Makes `fd`'s records match the wanted directions, all carrying `token`.
    fn set(&mut self, fd: u32, token: Token, read: bool, write: bool) {
        let userdata = token.0 as u64;
        for (wanted, tag) in [(read, EVENTTYPE_FD_READ), (write, EVENTTYPE_FD_WRITE)] {
            let Some(slot) = self.slots.get_mut(&fd) else {
                return;
            };
            let at = *slot.at(tag);
            match (wanted, at) {
                (true, NONE) => {
                    *slot.at(tag) = self.subs.len() as u32;
                    self.subs.push(RawSubscription::fd(tag, fd, userdata));
                }
                (true, at) => self.subs[at as usize].userdata = userdata,
                (false, NONE) => {}
                (false, at) => {
                    *slot.at(tag) = NONE;
                    self.remove(at);
                }
            }
        }
    }

    /// Swap-removes record `at` and repoints the record that moved into its place.
    fn remove(&mut self, at: u32) {
        self.subs.swap_remove(at as usize);
        if let Some(moved) = self.subs.get(at as usize) {
            let (fd, tag) = (moved.id_or_fd, moved.tag);
            if let Some(slot) = self.slots.get_mut(&fd) {
                *slot.at(tag) = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(table: &SubscriptionTable) {
        // Every record is found where its slot says, and nothing else.
        let mut expected = 0;
        for (&fd, slot) in &table.slots {
            for (at, tag) in [
                (slot.read, EVENTTYPE_FD_READ),
                (slot.write, EVENTTYPE_FD_WRITE),
            ] {
                if at != NONE {
                    expected += 1;
                    let sub = table.subs[at as usize];
                    assert_eq!((sub.id_or_fd, sub.tag), (fd, tag));
                }
            }
        }
        assert_eq!(expected, table.subs.len());
    }

    /// Descriptors as WasmEdge hands them out: anywhere in [0, 2^31).
    fn sparse(i: u32) -> u32 {
        i.wrapping_mul(2_654_435_761) & 0x7fff_ffff
    }

    #[test]
    fn register_reregister_deregister_keep_the_list_consistent() {
        let mut table = SubscriptionTable::default();
        let both = Interest::READABLE | Interest::WRITABLE;
        for i in 3..40u32 {
            let interest = if i % 3 == 0 { both } else { Interest::READABLE };
            table
                .register(sparse(i), Token(i as usize * 10), interest)
                .unwrap();
        }
        check(&table);
        for i in (3..40u32).step_by(2) {
            table.deregister(sparse(i)).unwrap();
            check(&table);
        }
        for i in (4..40u32).step_by(2) {
            table
                .reregister(sparse(i), Token(i as usize), both)
                .unwrap();
            check(&table);
            table
                .reregister(sparse(i), Token(i as usize), Interest::WRITABLE)
                .unwrap();
            check(&table);
        }
        assert_eq!(table.len(), 18);
        assert!(table
            .as_slice()
            .iter()
            .all(|s| s.tag == EVENTTYPE_FD_WRITE && sparse(s.userdata as u32) == s.id_or_fd));
    }

    #[test]
    fn descriptors_near_two_to_the_31_cost_no_memory_of_their_size() {
        let mut table = SubscriptionTable::default();
        for fd in [0x7fff_ffff, 1_825_245_264, 115_383_992, 0] {
            table.register(fd, Token(1), Interest::READABLE).unwrap();
        }
        check(&table);
        assert_eq!(table.len(), 4);
        assert!(table.slots.capacity() < 64);
    }

    #[test]
    fn double_register_and_unknown_deregister_are_errors() {
        let mut table = SubscriptionTable::default();
        table.register(5, Token(1), Interest::READABLE).unwrap();
        assert_eq!(
            table
                .register(5, Token(2), Interest::READABLE)
                .unwrap_err()
                .kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            table.deregister(6).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            table
                .reregister(7, Token(1), Interest::READABLE)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        table.deregister(5).unwrap();
        assert_eq!(table.len(), 0);
        table.register(5, Token(2), Interest::READABLE).unwrap();
    }

    #[test]
    fn unchanged_registrations_leave_the_list_untouched() {
        let mut table = SubscriptionTable::default();
        for i in 0..100 {
            table
                .register(sparse(i), Token(i as usize), Interest::READABLE)
                .unwrap();
        }
        let before = table.as_slice().to_vec();
        table
            .reregister(sparse(50), Token(50), Interest::READABLE)
            .unwrap();
        assert_eq!(table.as_slice(), &before[..]);
    }

    #[test]
    fn a_random_walk_of_changes_keeps_the_list_consistent() {
        let mut table = SubscriptionTable::default();
        let mut registered = std::collections::HashSet::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fd = sparse((x % 64) as u32);
            let interest = match (x >> 8) % 3 {
                0 => Interest::READABLE,
                1 => Interest::WRITABLE,
                _ => Interest::READABLE | Interest::WRITABLE,
            };
            if registered.contains(&fd) {
                if (x >> 16) & 1 == 0 {
                    table.deregister(fd).unwrap();
                    registered.remove(&fd);
                } else {
                    table.reregister(fd, Token(fd as usize), interest).unwrap();
                }
            } else {
                table.register(fd, Token(fd as usize), interest).unwrap();
                registered.insert(fd);
            }
            check(&table);
        }
    }
}
