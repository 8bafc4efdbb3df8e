//! The subscription list `Poll` hands to the runtime, kept between polls.
//!
//! Registering appends, deregistering swap-removes: both O(1), and the array is
//! never rebuilt, so an unchanged set of sockets costs the guest nothing per
//! poll and lets the runtime see an unchanged list.

use crate::sys::abi::{RawSubscription, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE};
use crate::{Interest, Token};
use std::io;

const NONE: u32 = u32::MAX;

/// Where one descriptor's subscriptions sit in the list.
#[derive(Clone, Copy, Debug)]
struct Slot {
    registered: bool,
    read: u32,
    write: u32,
}

const EMPTY: Slot = Slot {
    registered: false,
    read: NONE,
    write: NONE,
};

/// Subscriptions indexed by descriptor.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionTable {
    subs: Vec<RawSubscription>,
    slots: Vec<Slot>,
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
        let index = fd as usize;
        if index >= self.slots.len() {
            self.slots.resize(index + 1, EMPTY);
        }
        if self.slots[index].registered {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        self.slots[index].registered = true;
        self.set(fd, token, interest);
        Ok(())
    }

    pub(crate) fn reregister(
        &mut self,
        fd: u32,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.slot(fd)?;
        self.set(fd, token, interest);
        Ok(())
    }

    pub(crate) fn deregister(&mut self, fd: u32) -> io::Result<()> {
        let read = self.slot(fd)?.read;
        self.remove(read);
        self.point(fd, EVENTTYPE_FD_READ, NONE);
        // Removing the read record may have moved the write record: look again.
        let write = self.slots[fd as usize].write;
        self.remove(write);
        self.slots[fd as usize] = EMPTY;
        Ok(())
    }

    fn slot(&self, fd: u32) -> io::Result<Slot> {
        match self.slots.get(fd as usize) {
            Some(slot) if slot.registered => Ok(*slot),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not registered"),
            )),
        }
    }

    fn set(&mut self, fd: u32, token: Token, interest: Interest) {
        let userdata = token.0 as u64;
        for (wanted, tag) in [
            (interest.is_readable(), EVENTTYPE_FD_READ),
            (interest.is_writable(), EVENTTYPE_FD_WRITE),
        ] {
            let slot = self.slots[fd as usize];
            let at = if tag == EVENTTYPE_FD_READ {
                slot.read
            } else {
                slot.write
            };
            match (wanted, at) {
                (true, NONE) => {
                    let at = self.subs.len() as u32;
                    self.subs.push(RawSubscription::fd(tag, fd, userdata));
                    self.point(fd, tag, at);
                }
                (true, at) => self.subs[at as usize].userdata = userdata,
                (false, NONE) => {}
                (false, at) => {
                    self.remove(at);
                    self.point(fd, tag, NONE);
                }
            }
        }
    }

    fn point(&mut self, fd: u32, tag: u8, at: u32) {
        let slot = &mut self.slots[fd as usize];
        if tag == EVENTTYPE_FD_READ {
            slot.read = at;
        } else {
            slot.write = at;
        }
    }

    /// Swap-removes record `at` and repoints the record that moved into its place.
    fn remove(&mut self, at: u32) {
        if at == NONE {
            return;
        }
        self.subs.swap_remove(at as usize);
        if let Some(moved) = self.subs.get(at as usize) {
            let (fd, tag) = (moved.id_or_fd, moved.tag);
            self.point(fd, tag, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(table: &SubscriptionTable) {
        // Every record is found where its slot says, and nothing else.
        let mut expected = 0;
        for (fd, slot) in table.slots.iter().enumerate() {
            for (at, tag) in [
                (slot.read, EVENTTYPE_FD_READ),
                (slot.write, EVENTTYPE_FD_WRITE),
            ] {
                if at != NONE {
                    expected += 1;
                    let sub = table.subs[at as usize];
                    assert_eq!((sub.id_or_fd as usize, sub.tag), (fd, tag));
                }
            }
        }
        assert_eq!(expected, table.subs.len());
    }

    #[test]
    fn register_reregister_deregister_keep_the_list_consistent() {
        let mut table = SubscriptionTable::default();
        let both = Interest::READABLE | Interest::WRITABLE;
        for fd in 3..40u32 {
            let interest = if fd % 3 == 0 {
                both
            } else {
                Interest::READABLE
            };
            table
                .register(fd, Token(fd as usize * 10), interest)
                .unwrap();
        }
        check(&table);
        for fd in (3..40u32).step_by(2) {
            table.deregister(fd).unwrap();
            check(&table);
        }
        for fd in (4..40u32).step_by(2) {
            table.reregister(fd, Token(fd as usize), both).unwrap();
            check(&table);
            table
                .reregister(fd, Token(fd as usize), Interest::WRITABLE)
                .unwrap();
            check(&table);
        }
        assert_eq!(table.len(), 18);
        assert!(table
            .as_slice()
            .iter()
            .all(|s| s.tag == EVENTTYPE_FD_WRITE && s.userdata == s.id_or_fd as u64));
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
        for fd in 0..100 {
            table
                .register(fd, Token(fd as usize), Interest::READABLE)
                .unwrap();
        }
        let before = table.as_slice().to_vec();
        table.reregister(50, Token(50), Interest::READABLE).unwrap();
        assert_eq!(table.as_slice(), &before[..]);
    }
}
