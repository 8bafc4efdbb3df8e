//! The subscription list `Poll` hands to the runtime, kept between polls.
//!
//! The list is laid out as `[clock | hot records | cold records]`: record 0 is
//! the poll's timeout (rewritten per poll), then the records of registrations
//! that were active lately, then the quiet ones. A poll of the hot
//! registrations hands the runtime the prefix `[clock | hot]`; a full poll the
//! whole list. Registering, deregistering and moving a registration between
//! the regions are O(1) swaps, and nothing is rebuilt per poll.
//!
//! Each registration has a number of the table's own, small and reused, and
//! its state sits in an array under that number. A record's userdata holds
//! the token (low 32 bits; tokens are 32-bit on wasm32) and that number
//! (high 32 bits), so an event, and every move of a record between the
//! regions, finds its registration by an array index. Only the calls that
//! name a descriptor look it up, in a hash map: WasmEdge numbers descriptors
//! at random in [0, 2^31), so they cannot index an array. (With the map for
//! everything, a proxied request spent about 500 Wasm instructions in this
//! table; with the numbers, some 200 fewer.)

use crate::headroom;
use crate::sys::abi::{RawSubscription, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE};
use crate::{Interest, Token};
use rustc_hash::FxHashMap;
use std::io;

const NONE: u32 = u32::MAX;

/// What a look at a cold socket's receive queue found (see
/// [`SubscriptionTable::probe_cold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
pub(crate) enum Peek {
    /// Nothing to read yet.
    Empty,
    /// Bytes wait to be read.
    Data,
    /// The peer has closed its side: a read returns end of stream.
    Closed,
    /// The socket's error (a reset, a refusal), as a WASI errno: the peek
    /// took it from the socket, so it must be reported from here.
    Error(u16),
    /// This socket cannot be looked at this way (a listener, a blocking
    /// socket): the runtime's poll must say.
    Unknown,
}

/// Whether a registration's socket may be peeked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peekable {
    /// Not tried since it was registered: the first look checks the socket
    /// (a blocking one would block the peek).
    Unchecked,
    Yes,
    No,
}

/// One registration: its descriptor, where its two records sit in the list
/// (`NONE`: absent), and what the polling policy knows of it.
#[derive(Clone, Copy, Debug)]
struct Slot {
    fd: u32,
    read: u32,
    write: u32,
    /// In the hot region.
    hot: bool,
    /// Kept hot whatever its activity (a listener).
    pinned: bool,
    /// When it last had an event, in the poller's clock (milliseconds).
    active_at: u64,
    peekable: Peekable,
    /// The number of runtime calls made (see [`SubscriptionTable::calls`])
    /// when its read record was last added, when it last became hot, and
    /// when it last had an event: what tells whether the last call watched
    /// it and found nothing.
    read_since: u64,
    hot_since: u64,
    event_call: u64,
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

/// The userdata of a record: token in the low half, the registration's
/// number in the high.
pub(crate) fn userdata(slot: u32, token: Token) -> u64 {
    (u64::from(slot) << 32) | u64::from(token.0 as u32)
}

/// The token and registration number a record's userdata carries.
pub(crate) fn split_userdata(userdata: u64) -> (Token, u32) {
    (Token(userdata as u32 as usize), (userdata >> 32) as u32)
}

/// The runtime's subscription records, and where each registration's are.
#[derive(Debug)]
pub(crate) struct SubscriptionTable {
    subs: Vec<RawSubscription>,
    /// Records `1..hot_end` are hot; `hot_end..` cold.
    hot_end: usize,
    /// The registrations by number; a free number's slot has fd `NONE`.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The number of each registered descriptor.
    by_fd: FxHashMap<u32, u32>,
    scratch: Vec<u32>,
    /// Runtime calls begun, whether the last one covered every record, and
    /// whether it failed (and so watched nothing).
    calls: u64,
    last_full: bool,
    last_failed: bool,
}

impl Default for SubscriptionTable {
    fn default() -> Self {
        SubscriptionTable {
            subs: vec![RawSubscription::default()],
            hot_end: 1,
            slots: Vec::new(),
            free: Vec::new(),
            by_fd: FxHashMap::default(),
            scratch: Vec::new(),
            calls: 0,
            last_full: false,
            last_failed: false,
        }
    }
}

impl SubscriptionTable {
    /// The records, clock first: `[clock | hot | cold]`.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn records_mut(&mut self) -> &mut [RawSubscription] {
        &mut self.subs
    }

    /// How many records are in `[clock | hot]`.
    pub(crate) fn hot_prefix(&self) -> usize {
        self.hot_end
    }

    /// Subscriptions (one per interest), clock not counted.
    pub(crate) fn len(&self) -> usize {
        self.subs.len() - 1
    }

    /// Cold subscriptions.
    pub(crate) fn cold_len(&self) -> usize {
        self.subs.len() - self.hot_end
    }

    /// The registration a record belongs to.
    fn slot_of(&self, sub: &RawSubscription) -> Option<&Slot> {
        self.slots.get(split_userdata(sub.userdata).1 as usize)
    }

    /// Whether any hot registration is not pinned: when none is, only quiet
    /// ones and pinned ones are left, and a full poll may as well block.
    pub(crate) fn has_unpinned_hot(&self) -> bool {
        self.subs[1..self.hot_end]
            .iter()
            .any(|s| self.slot_of(s).is_some_and(|slot| !slot.pinned))
    }

    pub(crate) fn register(
        &mut self,
        fd: u32,
        token: Token,
        interest: Interest,
        now: u64,
    ) -> io::Result<()> {
        if self.by_fd.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        // Room first, with headroom beside it: with memory short (a
        // runtime's limit reached), this registration fails, not the process.
        let full = self.slots.len() == self.slots.capacity()
            || self.subs.capacity() - self.subs.len() < 2
            || self.by_fd.len() == self.by_fd.capacity();
        let room = full.then(|| {
            headroom::grow(|| {
                (self.slots.try_reserve(1))
                    .and(self.subs.try_reserve(2))
                    .and(self.by_fd.try_reserve(1))
            })
        });
        if matches!(room, Some(Err(_))) {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let slot = Slot {
            fd,
            read: NONE,
            write: NONE,
            hot: false,
            pinned: false,
            active_at: now,
            peekable: Peekable::Unchecked,
            read_since: 0,
            hot_since: 0,
            event_call: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_fd.insert(fd, id);
        self.set(id, token, interest.is_readable(), interest.is_writable());
        // A new registration is about to be busy: start it hot.
        self.promote(id);
        Ok(())
    }

    pub(crate) fn reregister(
        &mut self,
        fd: u32,
        token: Token,
        interest: Interest,
        now: u64,
    ) -> io::Result<()> {
        let id = self.id(fd)?;
        // The source may have changed, or its mode: check it again.
        self.slots[id as usize].peekable = Peekable::Unchecked;
        self.set(id, token, interest.is_readable(), interest.is_writable());
        self.touch_slot(id, now);
        Ok(())
    }

    pub(crate) fn deregister(&mut self, fd: u32) -> io::Result<()> {
        let id = self.id(fd)?;
        self.set(id, Token(0), false, false);
        self.by_fd.remove(&fd);
        self.slots[id as usize].fd = NONE;
        self.free.push(id);
        Ok(())
    }

    /// Keeps `fd` hot for good.
    pub(crate) fn pin(&mut self, fd: u32) -> io::Result<()> {
        let id = self.id(fd)?;
        self.slots[id as usize].pinned = true;
        self.promote(id);
        Ok(())
    }

    /// `fd` had an event at `now`: it is (or becomes) hot.
    pub(crate) fn touch(&mut self, fd: u32, now: u64) {
        if let Ok(id) = self.id(fd) {
            self.touch_slot(id, now);
        }
    }

    /// The registration of a record whose `userdata` the runtime reported
    /// had an event at `now`: it is (or becomes) hot. Returns the token.
    #[inline]
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn touch_record(&mut self, userdata: u64, now: u64) -> Token {
        let (token, id) = split_userdata(userdata);
        self.touch_slot(id, now);
        token
    }

    #[inline]
    fn touch_slot(&mut self, id: u32, now: u64) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.active_at = now;
            slot.event_call = self.calls;
            if !slot.hot {
                self.promote(id);
            }
        }
    }

    /// A runtime call over the first `records` records begins.
    pub(crate) fn begin_call(&mut self, records: usize) {
        self.calls += 1;
        self.last_full = records >= self.subs.len();
        self.last_failed = false;
    }

    /// The call begun last failed: it watched nothing.
    pub(crate) fn call_failed(&mut self) {
        self.last_failed = true;
    }

    /// Whether the last runtime call watched `fd` for reading and reported
    /// no event for it: nothing had arrived on it when that call returned.
    pub(crate) fn watched_quiet(&self, fd: u32) -> bool {
        let Some(slot) = self
            .by_fd
            .get(&fd)
            .and_then(|&id| self.slots.get(id as usize))
        else {
            return false;
        };
        // Listed in that call: registered to read before it, and for a call
        // over the hot records, hot since before it.
        let listed = !self.last_failed
            && slot.read != NONE
            && slot.read_since < self.calls
            && (self.last_full || (slot.hot && slot.hot_since < self.calls));
        listed && slot.event_call != self.calls
    }

    /// Moves `fd`'s records to the cold region now, unless it is pinned.
    pub(crate) fn chill(&mut self, fd: u32) -> io::Result<()> {
        let id = self.id(fd)?;
        if !self.slots[id as usize].pinned {
            self.demote(id);
        }
        Ok(())
    }

    /// Moves every hot, unpinned registration without an event since
    /// `quiet_since` to the cold region.
    pub(crate) fn cool(&mut self, quiet_since: u64) {
        let mut stale = std::mem::take(&mut self.scratch);
        stale.clear();
        for sub in &self.subs[1..self.hot_end] {
            if let Some(slot) = self.slot_of(sub) {
                if !slot.pinned && slot.active_at < quiet_since {
                    stale.push(split_userdata(sub.userdata).1);
                }
            }
        }
        // A registration listed to read and to write comes twice: once each
        // (sorted, not searched, so many at once cost n log n, not n²).
        stale.sort_unstable();
        stale.dedup();
        for &id in &stale {
            self.demote(id);
        }
        self.scratch = stale;
    }

    /// Looks at every cold registration with `peek(fd, first_look)` instead
    /// of handing it to the runtime: a peek costs one system call where a
    /// full poll costs WasmEdge two `epoll_ctl` calls per cold descriptor
    /// (added, then removed again by the next partial poll). Pushes those
    /// found readable to `ready` as (token, descriptor, what was seen).
    /// Returns false when some cold registration cannot be looked at so
    /// (it waits to write, or `peek` could not tell): then a full poll is
    /// due, as without peeking, and `ready` keeps only the errors found (a
    /// peek that finds an error takes it from its socket: the full poll
    /// would report a reset connection as a plain end of the stream).
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn probe_cold(
        &mut self,
        mut peek: impl FnMut(u32, bool) -> Peek,
        ready: &mut Vec<(Token, u32, Peek)>,
    ) -> bool {
        ready.clear();
        // First without a single peek, which the fallback would waste.
        if !self.subs[self.hot_end..].iter().all(|sub| {
            sub.tag == EVENTTYPE_FD_READ
                && self
                    .slot_of(sub)
                    .is_some_and(|slot| slot.peekable != Peekable::No)
        }) {
            return false;
        }
        for sub in &self.subs[self.hot_end..] {
            let (token, id) = split_userdata(sub.userdata);
            let Some(slot) = self.slots.get_mut(id as usize) else {
                continue;
            };
            let seen = peek(slot.fd, slot.peekable == Peekable::Unchecked);
            if seen == Peek::Unknown {
                slot.peekable = Peekable::No;
                ready.retain(|&(_, _, seen)| matches!(seen, Peek::Error(_)));
                return false;
            }
            slot.peekable = Peekable::Yes;
            if seen != Peek::Empty {
                ready.push((token, slot.fd, seen));
            }
        }
        true
    }

    /// The registrations watched for reading among the first `records`
    /// records (the clock's included), as (descriptor, token).
    pub(crate) fn readers(&self, records: usize, out: &mut Vec<(u32, Token)>) {
        self.listed(records, EVENTTYPE_FD_READ, |_| true, out);
    }

    /// The registrations among the first `records` records (the clock's
    /// included) that wait only to write, as (descriptor, token).
    pub(crate) fn write_only(&self, records: usize, out: &mut Vec<(u32, Token)>) {
        self.listed(records, EVENTTYPE_FD_WRITE, |slot| slot.read == NONE, out);
    }

    /// The registrations with a `tag` record among the first `records`
    /// records that `keep` keeps.
    fn listed(
        &self,
        records: usize,
        tag: u8,
        keep: impl Fn(&Slot) -> bool,
        out: &mut Vec<(u32, Token)>,
    ) {
        out.clear();
        let end = records.min(self.subs.len());
        for sub in self.subs.get(1..end).unwrap_or_default() {
            if sub.tag != tag {
                continue;
            }
            if let Some(slot) = self.slot_of(sub).filter(|slot| keep(slot)) {
                out.push((slot.fd, split_userdata(sub.userdata).0));
            }
        }
    }

    /// The number of `fd`'s registration.
    fn id(&self, fd: u32) -> io::Result<u32> {
        self.by_fd.get(&fd).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not registered"),
            )
        })
    }

    /// Makes registration `id`'s records match the wanted directions, all
    /// carrying `token`.
    fn set(&mut self, id: u32, token: Token, read: bool, write: bool) {
        let data = userdata(id, token);
        for (wanted, tag) in [(read, EVENTTYPE_FD_READ), (write, EVENTTYPE_FD_WRITE)] {
            let Some(slot) = self.slots.get_mut(id as usize) else {
                return;
            };
            let (hot, fd) = (slot.hot, slot.fd);
            let at = *slot.at(tag);
            match (wanted, at) {
                (true, NONE) => {
                    if tag == EVENTTYPE_FD_READ {
                        slot.read_since = self.calls;
                    }
                    *slot.at(tag) = self.subs.len() as u32;
                    self.subs.push(RawSubscription::fd(tag, fd, data));
                    if hot {
                        // Appended to the cold region: bring it over.
                        self.swap_into_hot(self.subs.len() - 1);
                    }
                }
                (true, at) => self.subs[at as usize].userdata = data,
                (false, NONE) => {}
                (false, at) => self.remove(at as usize),
            }
        }
    }

    /// Moves registration `id`'s records into the hot region.
    fn promote(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if !slot.hot {
            slot.hot_since = self.calls;
        }
        slot.hot = true;
        for tag in [EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE] {
            // Read afresh: moving the first record may have moved the second.
            let at = *self.slots[id as usize].at(tag);
            if at != NONE && at as usize >= self.hot_end {
                self.swap_into_hot(at as usize);
            }
        }
    }

    /// Moves registration `id`'s records into the cold region.
    fn demote(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        slot.hot = false;
        for tag in [EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE] {
            let at = *self.slots[id as usize].at(tag);
            if at != NONE && (at as usize) < self.hot_end {
                let last_hot = self.hot_end - 1;
                self.swap(at as usize, last_hot);
                self.hot_end -= 1;
            }
        }
    }

    /// Swaps the cold record at `at` with the first cold record, which
    /// then joins the hot region.
    fn swap_into_hot(&mut self, at: usize) {
        let first_cold = self.hot_end;
        self.swap(at, first_cold);
        self.hot_end += 1;
    }

    /// Swaps two records and repoints both slots.
    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.subs.swap(a, b);
        self.repoint(a);
        self.repoint(b);
    }

    /// Points the slot of the record at `at` at it.
    fn repoint(&mut self, at: usize) {
        let sub = self.subs[at];
        if let Some(slot) = self.slots.get_mut(split_userdata(sub.userdata).1 as usize) {
            *slot.at(sub.tag) = at as u32;
        }
    }

    /// Removes the record at `at`, keeping both regions whole.
    fn remove(&mut self, mut at: usize) {
        let sub = self.subs[at];
        if at < self.hot_end {
            // Out of the hot region first: swap with its last record.
            let last_hot = self.hot_end - 1;
            self.swap(at, last_hot);
            self.hot_end -= 1;
            at = last_hot;
        }
        self.subs.swap_remove(at);
        if at < self.subs.len() {
            self.repoint(at);
        }
        if let Some(slot) = self.slots.get_mut(split_userdata(sub.userdata).1 as usize) {
            *slot.at(sub.tag) = NONE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record is where its slot says, each slot's records are in the
    /// region its `hot` flag names, and nothing else is in the list.
    fn check(table: &SubscriptionTable) {
        let mut expected = 0;
        let mut registered = 0;
        for (id, slot) in table.slots.iter().enumerate() {
            if slot.fd == NONE {
                assert!(table.free.contains(&(id as u32)), "number {id} lost");
                assert_eq!((slot.read, slot.write), (NONE, NONE));
                continue;
            }
            registered += 1;
            let fd = slot.fd;
            assert_eq!(table.by_fd.get(&fd), Some(&(id as u32)));
            for (at, tag) in [
                (slot.read, EVENTTYPE_FD_READ),
                (slot.write, EVENTTYPE_FD_WRITE),
            ] {
                if at != NONE {
                    expected += 1;
                    let sub = table.subs[at as usize];
                    assert_eq!((sub.id_or_fd, sub.tag), (fd, tag));
                    assert_eq!(split_userdata(sub.userdata).1, id as u32);
                    assert_eq!(
                        (at as usize) < table.hot_end,
                        slot.hot,
                        "descriptor {fd} in the wrong region"
                    );
                    assert!(at >= 1, "record 0 is the clock");
                }
            }
        }
        assert_eq!(expected, table.len());
        assert_eq!(registered, table.by_fd.len());
        assert_eq!(registered + table.free.len(), table.slots.len());
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
                .register(sparse(i), Token(i as usize * 10), interest, 0)
                .unwrap();
        }
        check(&table);
        for i in (3..40u32).step_by(2) {
            table.deregister(sparse(i)).unwrap();
            check(&table);
        }
        for i in (4..40u32).step_by(2) {
            table
                .reregister(sparse(i), Token(i as usize), both, 1)
                .unwrap();
            check(&table);
            table
                .reregister(sparse(i), Token(i as usize), Interest::WRITABLE, 1)
                .unwrap();
            check(&table);
        }
        assert_eq!(table.len(), 18);
        for sub in &table.subs[1..] {
            assert_eq!(sub.tag, EVENTTYPE_FD_WRITE);
            let (token, id) = split_userdata(sub.userdata);
            assert_eq!(table.slots[id as usize].fd, sub.id_or_fd);
            assert_eq!(sparse(token.0 as u32), sub.id_or_fd, "the token given last");
        }
    }

    #[test]
    fn tokens_and_registration_numbers_travel_together_in_userdata() {
        for (id, token) in [
            (0, 0),
            (u32::MAX - 1, u32::MAX as usize),
            (1_825_245_264, 7),
        ] {
            assert_eq!(
                split_userdata(userdata(id, Token(token))),
                (Token(token), id)
            );
        }
    }

    #[test]
    fn an_event_finds_its_registration_by_number_and_numbers_are_reused() {
        let mut table = readers(3);
        table.touch(sparse(0), 100);
        table.cool(50);
        assert_eq!(table.cold_len(), 2);
        // What the runtime reports for sparse(2)'s record: its userdata.
        let record = table.subs[table.hot_end..]
            .iter()
            .find(|sub| sub.id_or_fd == sparse(2))
            .copied()
            .unwrap();
        assert_eq!(table.touch_record(record.userdata, 200), Token(2));
        assert_eq!(table.cold_len(), 1, "its event warmed it");
        check(&table);
        // Churn: a descriptor goes and another comes, many times over; the
        // table holds as many slots as were ever registered at once.
        for i in 3..1000 {
            table.deregister(sparse(i - 2)).unwrap();
            table
                .register(sparse(i), Token(i as usize), Interest::READABLE, 0)
                .unwrap();
            check(&table);
        }
        assert_eq!(table.slots.len(), 3);
    }

    #[test]
    fn descriptors_near_two_to_the_31_cost_no_memory_of_their_size() {
        let mut table = SubscriptionTable::default();
        for fd in [0x7fff_ffff, 1_825_245_264, 115_383_992, 0] {
            table.register(fd, Token(1), Interest::READABLE, 0).unwrap();
        }
        check(&table);
        assert_eq!(table.len(), 4);
        assert!(table.slots.capacity() < 64);
    }

    #[test]
    fn double_register_and_unknown_deregister_are_errors() {
        let mut table = SubscriptionTable::default();
        table.register(5, Token(1), Interest::READABLE, 0).unwrap();
        assert_eq!(
            table
                .register(5, Token(2), Interest::READABLE, 0)
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
                .reregister(7, Token(1), Interest::READABLE, 0)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        table.deregister(5).unwrap();
        assert_eq!(table.len(), 0);
        table.register(5, Token(2), Interest::READABLE, 0).unwrap();
    }

    /// A table of `n` registrations waiting to read, token `i` on `sparse(i)`.
    fn readers(n: u32) -> SubscriptionTable {
        let mut table = SubscriptionTable::default();
        for i in 0..n {
            table
                .register(sparse(i), Token(i as usize), Interest::READABLE, 0)
                .unwrap();
        }
        table
    }

    #[test]
    fn quiet_registrations_cool_and_an_event_warms_them() {
        let mut table = readers(10);
        table.pin(sparse(0)).unwrap();
        assert_eq!(table.hot_prefix(), 11, "new registrations start hot");
        for i in 5..10 {
            table.touch(sparse(i), 100);
        }
        table.cool(50);
        check(&table);
        assert_eq!(
            table.hot_prefix(),
            1 + 1 + 5,
            "the pinned one and the five active"
        );
        assert_eq!(table.cold_len(), 4);
        table.touch(sparse(2), 200);
        check(&table);
        assert_eq!(table.cold_len(), 3);
        table.cool(1000);
        check(&table);
        assert_eq!(table.hot_prefix(), 2, "only the pinned one stays");
        assert!(!table.has_unpinned_hot());
    }

    #[test]
    fn watched_quiet_means_listed_in_the_last_call_without_an_event() {
        let mut table = readers(4);
        table.chill(sparse(3)).unwrap();
        assert!(!table.watched_quiet(sparse(0)), "no call yet");
        let hot = table.hot_prefix();
        table.begin_call(hot);
        assert!(table.watched_quiet(sparse(0)));
        assert!(!table.watched_quiet(sparse(3)), "cold: left out");
        assert!(!table.watched_quiet(sparse(99)), "not registered");
        // An event in that call: it had something to read.
        table.touch_record(userdata(table.by_fd[&sparse(1)], Token(1)), 10);
        assert!(!table.watched_quiet(sparse(1)));
        // Registered, warmed or made a reader after the call: not in it.
        table
            .register(sparse(4), Token(4), Interest::WRITABLE, 10)
            .unwrap();
        table.touch(sparse(3), 10);
        table
            .reregister(sparse(4), Token(4), Interest::READABLE, 10)
            .unwrap();
        assert!(!table.watched_quiet(sparse(3)));
        assert!(!table.watched_quiet(sparse(4)));
        // The next call over the hot ones lists them all, but a chilled one.
        table.chill(sparse(2)).unwrap();
        let hot = table.hot_prefix();
        table.begin_call(hot);
        for i in [0, 1, 3, 4] {
            assert!(table.watched_quiet(sparse(i)), "{i}");
        }
        assert!(!table.watched_quiet(sparse(2)));
        // A full call lists the cold ones too; a writer only is not read.
        table
            .reregister(sparse(4), Token(4), Interest::WRITABLE, 20)
            .unwrap();
        table.chill(sparse(4)).unwrap();
        table.begin_call(table.len() + 1);
        assert!(table.watched_quiet(sparse(2)));
        assert!(!table.watched_quiet(sparse(4)));
        // A call that failed watched nothing.
        table.begin_call(table.len() + 1);
        table.call_failed();
        assert!(!table.watched_quiet(sparse(2)));
        check(&table);
    }

    #[test]
    fn a_chilled_registration_is_cold_at_once_until_its_next_event() {
        let mut table = readers(10);
        table.pin(sparse(0)).unwrap();
        table.chill(sparse(0)).unwrap();
        table.chill(sparse(3)).unwrap();
        check(&table);
        assert_eq!(table.cold_len(), 1, "the pinned one stays hot");
        table
            .reregister(sparse(3), Token(3), Interest::READABLE, 5)
            .unwrap();
        check(&table);
        assert_eq!(table.cold_len(), 0, "a change of interest warms it");
        table.chill(sparse(3)).unwrap();
        table.chill(sparse(4)).unwrap();
        table.touch(sparse(4), 6);
        check(&table);
        assert_eq!(table.cold_len(), 1, "an event warms it");
        assert!(table.chill(sparse(99)).is_err(), "not registered");
    }

    #[test]
    fn cold_readers_are_peeked_and_anything_else_falls_back_to_a_full_poll() {
        let mut table = readers(10);
        table.touch(sparse(0), 100);
        table.cool(50);
        assert_eq!(table.cold_len(), 9);
        let mut ready = Vec::new();
        let mut looks = Vec::new();
        let seen = |fd: u32| match fd {
            fd if fd == sparse(3) => Peek::Data,
            fd if fd == sparse(4) => Peek::Closed,
            _ => Peek::Empty,
        };
        assert!(table.probe_cold(
            |fd, first| {
                looks.push((fd, first));
                seen(fd)
            },
            &mut ready
        ));
        ready.sort_by_key(|r| r.0 .0);
        assert_eq!(
            ready,
            [
                (Token(3), sparse(3), Peek::Data),
                (Token(4), sparse(4), Peek::Closed)
            ]
        );
        assert_eq!(looks.len(), 9, "every cold one, no hot one");
        assert!(looks.iter().all(|&(fd, first)| first && fd != sparse(0)));
        // Checked once: later looks skip the check.
        looks.clear();
        assert!(table.probe_cold(
            |fd, first| {
                looks.push((fd, first));
                seen(fd)
            },
            &mut ready
        ));
        assert!(looks.iter().all(|&(_, first)| !first));
        check(&table);

        // One that cannot be peeked (a listener, a blocking socket): a full
        // poll is due, now and from then on, without another look at it.
        // An error a peek took before it is kept: the full poll would not
        // see it again.
        let listener = sparse(6);
        let mut before = Vec::new();
        assert!(!table.probe_cold(
            |fd, _| match fd {
                fd if fd == listener => Peek::Unknown,
                fd => {
                    before.push(fd);
                    match before.len() {
                        1 => Peek::Error(15),
                        _ => Peek::Data,
                    }
                }
            },
            &mut ready
        ));
        assert!(
            !before.is_empty(),
            "the listener is not the first looked at"
        );
        assert_eq!(ready.len(), 1);
        assert_eq!((ready[0].1, ready[0].2), (before[0], Peek::Error(15)));
        let mut peeked = 0;
        assert!(!table.probe_cold(
            |_, _| {
                peeked += 1;
                Peek::Empty
            },
            &mut ready
        ));
        assert_eq!(peeked, 0);
        // Registered again, it is checked again.
        table
            .reregister(listener, Token(6), Interest::READABLE, 0)
            .unwrap();
        table.cool(50);
        assert!(table.probe_cold(|_, _| Peek::Empty, &mut ready));

        // A cold one waiting to write needs the runtime's poll.
        table
            .reregister(sparse(7), Token(7), Interest::WRITABLE, 0)
            .unwrap();
        table.cool(50);
        assert!(!table.probe_cold(|_, _| Peek::Empty, &mut ready));
        check(&table);
    }

    #[test]
    fn unchanged_registrations_leave_the_list_untouched() {
        let mut table = readers(100);
        let before = table.subs.clone();
        table
            .reregister(sparse(50), Token(50), Interest::READABLE, 0)
            .unwrap();
        assert_eq!(table.subs, before);
    }

    #[test]
    fn a_random_walk_of_changes_keeps_the_list_consistent() {
        let mut table = SubscriptionTable::default();
        let mut registered = std::collections::HashSet::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fd = sparse((x % 64) as u32);
            let interest = match (x >> 8) % 3 {
                0 => Interest::READABLE,
                1 => Interest::WRITABLE,
                _ => Interest::READABLE | Interest::WRITABLE,
            };
            match (registered.contains(&fd), (x >> 16) % 5) {
                (true, 0) => {
                    table.deregister(fd).unwrap();
                    registered.remove(&fd);
                }
                (true, 1) => table
                    .reregister(fd, Token(fd as usize), interest, step)
                    .unwrap(),
                (true, 2) => table.touch(fd, step),
                (true, 3) => table.cool(step.saturating_sub(x >> 60)),
                (true, _) if x >> 63 == 0 => table.chill(fd).unwrap(),
                (true, _) => table.pin(fd).unwrap(),
                (false, _) => {
                    table
                        .register(fd, Token(fd as usize), interest, step)
                        .unwrap();
                    registered.insert(fd);
                }
            }
            check(&table);
        }
    }
}
