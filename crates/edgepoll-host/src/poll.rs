//! `poll_oneoff` (and `epoll_oneoff`) over one epoll instance kept for the
//! life of the guest.
//!
//! What the guest sees is WasmEdge 0.14's `Poller` (lib/host/wasi/
//! inode-linux.cpp): events in subscription order; a subscription that cannot
//! be watched (a bad descriptor, a second one for the same descriptor and
//! direction, a file epoll refuses, an unknown clock) gets an error event but
//! does not end the wait, which lasts until a descriptor is ready or a clock
//! fires; `nbytes` is 1 for a readable socket (0 for a listening one) and the
//! free send-buffer space for a writable one; a hang-up sets the HANGUP flag.
//!
//! What it costs differs: WasmEdge issues one `epoll_ctl` per subscription per
//! call. This poller compares the guest's list with the previous call's (a
//! memcmp when nothing changed) and calls `epoll_ctl` only for descriptors
//! whose interest changed, or that the descriptor table reports opened or
//! closed: a call costs O(changes + ready) system calls. A descriptor that
//! leaves the list stays registered (parked) until epoll reports it or it
//! closes, so a guest alternating between a short and a long list (as
//! edgepoll's `Poll` does with many quiet connections) costs no ADD/DEL pair
//! per call for each quiet descriptor.
//!
//! `epoll_oneoff` is WasmEdge's edge-triggered variant; as WasmEdge re-arms
//! every subscription on each call, a guest observes level-triggered
//! readiness for what it passes, and this poller gives the same.

use crate::clock;
use crate::errno::{self, Errno, WasiResult, BADF, EXIST, FAULT, INVAL, NOTCAPABLE};
use crate::fd_table::{rights, Descriptor, Entry, FdTable};
use crate::memory::GuestMemory;
use rustc_hash::FxHashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

const SUB_SIZE: usize = 48;
const EVENT_SIZE: u32 = 32;
const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
const HANGUP: u16 = 1;
const ABSTIME: u16 = 1;
const NONE: u32 = u32::MAX;

/// The subscriptions of one descriptor in one direction.
#[derive(Clone, Copy)]
struct Direction {
    /// The lowest-numbered subscription: the one that is watched.
    owner: u32,
    /// How many more there are (each gets EEXIST).
    extra: u32,
    /// Why the owner cannot be watched (0: it can).
    error: u16,
}

const NO_DIRECTION: Direction = Direction {
    owner: NONE,
    extra: 0,
    error: 0,
};

/// What the poller knows about one guest descriptor.
#[derive(Clone, Copy)]
struct Watch {
    read: Direction,
    write: Direction,
    /// The epoll mask registered for it (0: not in epoll).
    registered: u32,
    dirty: bool,
}

const UNWATCHED: Watch = Watch {
    read: NO_DIRECTION,
    write: NO_DIRECTION,
    registered: 0,
    dirty: false,
};

impl Watch {
    fn direction(&mut self, tag: u8) -> &mut Direction {
        if tag == FD_READ {
            &mut self.read
        } else {
            &mut self.write
        }
    }
}

#[derive(Clone, Copy)]
struct ReadyEvent {
    index: u32,
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

pub struct Poller {
    epoll: OwnedFd,
    /// The previous call's subscription records, as raw bytes.
    prev: Vec<u8>,
    /// Per subscription: the error its event reports (0: none).
    sub_error: Vec<u16>,
    errored: usize,
    /// Per guest descriptor (WasmEdge numbers them at random: never index by them).
    watches: FxHashMap<u32, Watch>,
    dirty: Vec<u32>,
    clocks: Vec<u32>,
    changed: Vec<u32>,
    reelect: Vec<(u32, u8)>,
    ready: Vec<libc::epoll_event>,
    out: Vec<ReadyEvent>,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            prev: Vec::new(),
            sub_error: Vec::new(),
            errored: 0,
            watches: FxHashMap::default(),
            dirty: Vec::new(),
            clocks: Vec::new(),
            changed: Vec::new(),
            reelect: Vec::new(),
            ready: Vec::new(),
            out: Vec::new(),
        })
    }

    /// One `poll_oneoff` call: subscriptions at `in_ptr`, events to `out_ptr`.
    pub fn poll(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fds: &mut FdTable,
        in_ptr: u32,
        out_ptr: u32,
        nsubs: u32,
        nevents_ptr: u32,
    ) -> WasiResult {
        // WasmEdge computes these sizes in 32 bits and would read past memory
        // when they wrap; refusing is the safe reading of that.
        let bytes = u32::try_from(u64::from(nsubs) * SUB_SIZE as u64).map_err(|_| FAULT)?;
        mem.slice(in_ptr, bytes)?;
        mem.slice(out_ptr, nsubs.checked_mul(EVENT_SIZE).ok_or(FAULT)?)?;
        mem.pointer::<4>(nevents_ptr)?;
        if nsubs == 0 {
            // WasmEdge's epoll_wait with room for no events fails at once:
            // the call succeeds with nothing to report.
            return mem.write_u32(nevents_ptr, 0);
        }
        let start = Instant::now();
        self.note_table_changes(fds);
        let subs = mem.slice(in_ptr, bytes)?;
        if subs != &self.prev[..] {
            self.apply_changes(subs);
        }
        self.register_dirty(fds);

        self.out.clear();
        let earliest = self.earliest_clock(start);
        self.ready
            .resize(nsubs as usize, libc::epoll_event { events: 0, u64: 0 });
        loop {
            let timeout_ms = match earliest {
                None => -1,
                Some(d) => {
                    let wait = d.saturating_duration_since(Instant::now());
                    // Round up: waking early would report a clock that has not fired.
                    wait.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
                }
            };
            // SAFETY: `ready` has room for the `len` events epoll may write.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    self.ready.as_mut_ptr(),
                    self.ready.len() as i32,
                    timeout_ms,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                // A signal to the runtime is not the guest's business: wait on.
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(errno::from_io(&e));
            }
            let mut parked_only = n > 0;
            for i in 0..n as usize {
                let event = self.ready[i];
                parked_only &= self.report_ready(fds, event.events, event.u64 as u32);
            }
            // Only descriptors the guest no longer lists woke us: they are out
            // of epoll now, and the guest's wait goes on.
            if !parked_only || !self.out.is_empty() {
                break;
            }
        }
        self.fire_clocks(start);
        self.report_errors();

        self.out.sort_unstable_by_key(|e| e.index);
        let n = self.out.len().min(nsubs as usize);
        for (i, event) in self.out[..n].iter().enumerate() {
            let mut record = [0u8; EVENT_SIZE as usize];
            record[0..8].copy_from_slice(&event.userdata.to_le_bytes());
            record[8..10].copy_from_slice(&event.error.to_le_bytes());
            record[10] = event.kind;
            record[16..24].copy_from_slice(&event.nbytes.to_le_bytes());
            record[24..26].copy_from_slice(&event.flags.to_le_bytes());
            mem.write(out_ptr + i as u32 * EVENT_SIZE, &record)?;
        }
        mem.write_u32(nevents_ptr, n as u32)
    }

    /// Descriptors opened or closed since the last call are looked at again:
    /// a closed one took its epoll registration with it.
    fn note_table_changes(&mut self, fds: &mut FdTable) {
        let listed = fds.take_changes(&mut self.changed);
        let everything: Vec<u32>;
        let which: &[u32] = if listed {
            &self.changed
        } else {
            everything = self.watches.keys().copied().collect();
            &everything
        };
        for &fd in which {
            if let Some(watch) = self.watches.get_mut(&fd) {
                watch.registered = 0;
                if !watch.dirty {
                    watch.dirty = true;
                    self.dirty.push(fd);
                }
            }
        }
    }

    /// Diffs the new list against the previous one: every changed or dropped
    /// record is detached first, then the new ones attached, so records that
    /// only moved are never seen as duplicates.
    fn apply_changes(&mut self, subs: &[u8]) {
        let new_len = subs.len() / SUB_SIZE;
        let old_len = self.prev.len() / SUB_SIZE;
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        for i in 0..old_len {
            let old = &self.prev[i * SUB_SIZE..(i + 1) * SUB_SIZE];
            if i >= new_len || old != &subs[i * SUB_SIZE..(i + 1) * SUB_SIZE] {
                self.detach(i as u32, record(old));
                if i < new_len {
                    changed.push(i as u32);
                }
            }
        }
        changed.extend(old_len as u32..new_len as u32);
        self.sub_error.resize(new_len, 0);
        for &i in &changed {
            let at = i as usize * SUB_SIZE;
            self.attach(i, record(&subs[at..at + SUB_SIZE]));
        }
        self.changed = changed;
        self.prev.clear();
        self.prev.extend_from_slice(subs);
        while let Some((fd, tag)) = self.reelect.pop() {
            self.elect(fd, tag);
        }
    }

    fn set_error(&mut self, index: u32, errno: u16) {
        let e = &mut self.sub_error[index as usize];
        match (*e, errno) {
            (0, 0) => {}
            (0, _) => self.errored += 1,
            (_, 0) => self.errored -= 1,
            _ => {}
        }
        *e = errno;
    }

    fn mark_dirty(&mut self, fd: u32) {
        if let Some(watch) = self.watches.get_mut(&fd) {
            if !watch.dirty {
                watch.dirty = true;
                self.dirty.push(fd);
            }
        }
    }

    fn detach(&mut self, index: u32, sub: Record) {
        if (index as usize) < self.sub_error.len() {
            self.set_error(index, 0);
        }
        match sub.tag {
            CLOCK => self.clocks.retain(|&c| c != index),
            FD_READ | FD_WRITE => {
                let Some(watch) = self.watches.get_mut(&sub.fd) else {
                    return;
                };
                let dir = watch.direction(sub.tag);
                if dir.owner != index {
                    dir.extra = dir.extra.saturating_sub(1);
                    return;
                }
                dir.owner = NONE;
                if dir.extra > 0 {
                    self.reelect.push((sub.fd, sub.tag));
                }
                self.mark_dirty(sub.fd);
            }
            _ => {}
        }
    }

    fn attach(&mut self, index: u32, sub: Record) {
        match sub.tag {
            CLOCK => {
                self.clocks.push(index);
                // WasmEdge: an unknown clock id or flag is EINVAL, and so are
                // the CPU-time clocks its timerfd cannot arm.
                let valid = sub.clock_id <= clock::MONOTONIC && sub.flags & !ABSTIME == 0;
                if !valid {
                    self.set_error(index, INVAL.0);
                }
            }
            FD_READ | FD_WRITE => {
                let watch = self.watches.entry(sub.fd).or_insert(UNWATCHED);
                let dir = watch.direction(sub.tag);
                let duplicate = if dir.owner == NONE {
                    dir.owner = index;
                    None
                } else if index < dir.owner {
                    let displaced = dir.owner;
                    dir.owner = index;
                    dir.extra += 1;
                    Some(displaced)
                } else {
                    dir.extra += 1;
                    Some(index)
                };
                if let Some(duplicate) = duplicate {
                    self.set_error(duplicate, EXIST.0);
                }
                self.mark_dirty(sub.fd);
            }
            _ => self.set_error(index, INVAL.0),
        }
    }

    /// The owner of `fd`'s `tag` subscriptions left while duplicates remain:
    /// the lowest-numbered one takes over, as in WasmEdge's list order.
    fn elect(&mut self, fd: u32, tag: u8) {
        let mut found = Vec::new();
        for (i, chunk) in self.prev.chunks_exact(SUB_SIZE).enumerate() {
            let r = record(chunk);
            if r.tag == tag && r.fd == fd {
                found.push(i as u32);
            }
        }
        let Some(watch) = self.watches.get_mut(&fd) else {
            return;
        };
        let dir = watch.direction(tag);
        dir.owner = found.first().copied().unwrap_or(NONE);
        dir.extra = found.len().saturating_sub(1) as u32;
        if let Some(&owner) = found.first() {
            self.set_error(owner, 0);
        }
        for &i in found.iter().skip(1) {
            self.set_error(i, EXIST.0);
        }
        self.mark_dirty(fd);
    }

    /// Brings epoll in line with what dirty descriptors now want.
    fn register_dirty(&mut self, fds: &FdTable) {
        while let Some(fd) = self.dirty.pop() {
            let Some(mut watch) = self.watches.get(&fd).copied() else {
                continue;
            };
            watch.dirty = false;
            let descriptor = fds.get(fd).ok();
            let host = descriptor.map(Descriptor::host_fd);
            if is_unlisted(&watch) {
                if watch.registered != 0 && host.is_some() {
                    // Parked: left in epoll, as a guest that alternates
                    // between a short and a long list will likely list it
                    // again; removed once epoll reports it ready.
                    watch.read.error = 0;
                    watch.write.error = 0;
                    self.watches.insert(fd, watch);
                } else {
                    self.watches.remove(&fd);
                }
                continue;
            }
            let (mut read_error, mut write_error) = match descriptor {
                None => (BADF.0, BADF.0),
                // WasmEdge's `VPoller::read`/`write`: polling needs the poll
                // right or the right to read (write) the descriptor.
                Some(d) => (
                    if d.rights & (rights::POLL_FD_READWRITE | rights::FD_READ) != 0 {
                        0
                    } else {
                        NOTCAPABLE.0
                    },
                    if d.rights & (rights::POLL_FD_READWRITE | rights::FD_WRITE) != 0 {
                        0
                    } else {
                        NOTCAPABLE.0
                    },
                ),
            };
            let mut want = 0u32;
            if watch.read.owner != NONE && read_error == 0 {
                want |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            }
            if watch.write.owner != NONE && write_error == 0 {
                want |= libc::EPOLLOUT as u32;
            }
            match host {
                None => {
                    watch.registered = 0;
                    if descriptor.is_some() {
                        read_error = read_error.max(NOTCAPABLE.0);
                        write_error = write_error.max(NOTCAPABLE.0);
                    }
                }
                Some(host) => {
                    let op = match (watch.registered, want) {
                        (0, 0) => None,
                        (0, _) => Some(libc::EPOLL_CTL_ADD),
                        (_, 0) => Some(libc::EPOLL_CTL_DEL),
                        (old, new) if old != new => Some(libc::EPOLL_CTL_MOD),
                        _ => None,
                    };
                    if let Some(op) = op {
                        match self.epoll_ctl(op, host, want, fd) {
                            Ok(()) => watch.registered = want,
                            // A file epoll refuses (EPERM), for instance: each
                            // subscription that wanted it reports the error.
                            Err(e) => {
                                if want & libc::EPOLLIN as u32 != 0 {
                                    read_error = e.0;
                                }
                                if want & libc::EPOLLOUT as u32 != 0 {
                                    write_error = e.0;
                                }
                                watch.registered = 0;
                            }
                        }
                    }
                }
            }
            watch.read.error = read_error;
            watch.write.error = write_error;
            for dir in [watch.read, watch.write] {
                if dir.owner != NONE {
                    self.set_error(dir.owner, dir.error);
                }
            }
            self.watches.insert(fd, watch);
        }
    }

    fn epoll_ctl(&self, op: i32, host_fd: RawFd, mask: u32, guest_fd: u32) -> Result<(), Errno> {
        let mut event = libc::epoll_event {
            events: mask,
            u64: guest_fd as u64,
        };
        // SAFETY: plain system call with a valid event pointer.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, host_fd, &mut event) };
        if r < 0 {
            Err(errno::last())
        } else {
            Ok(())
        }
    }

    /// One epoll event, as WasmEdge's `Poller::wait` maps it: a read event on
    /// EPOLLIN, a write event on EPOLLOUT, both on a bare hang-up. Returns
    /// whether it was for a parked descriptor (one no subscription lists),
    /// which then leaves epoll.
    fn report_ready(&mut self, fds: &FdTable, mask: u32, fd: u32) -> bool {
        let Some(watch) = self.watches.get(&fd).copied() else {
            return false;
        };
        if is_unlisted(&watch) {
            if let Some(host) = fds.get(fd).ok().map(Descriptor::host_fd) {
                let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, host, 0, fd);
            }
            self.watches.remove(&fd);
            return true;
        }
        let hangup = mask & libc::EPOLLHUP as u32 != 0;
        let bare_hangup = hangup && mask & (libc::EPOLLIN | libc::EPOLLOUT) as u32 == 0;
        let flags = if hangup { HANGUP } else { 0 };
        let descriptor = fds.get(fd).ok();
        if watch.read.owner != NONE && (mask & libc::EPOLLIN as u32 != 0 || bare_hangup) {
            let nbytes = descriptor.map_or(0, read_nbytes);
            self.push_fd_event(watch.read.owner, FD_READ, nbytes, flags);
        }
        if watch.write.owner != NONE && (mask & libc::EPOLLOUT as u32 != 0 || bare_hangup) {
            let nbytes = descriptor.map_or(1, |d| write_nbytes(d.host_fd()));
            self.push_fd_event(watch.write.owner, FD_WRITE, nbytes, flags);
        }
        false
    }

    fn push_fd_event(&mut self, index: u32, kind: u8, nbytes: u64, flags: u16) {
        if self.sub_error.get(index as usize).is_some_and(|&e| e != 0) {
            return;
        }
        let sub = self.record_at(index);
        self.out.push(ReadyEvent {
            index,
            userdata: sub.userdata,
            error: 0,
            kind,
            nbytes,
            flags,
        });
    }

    /// Every subscription with an error reports it, each call.
    fn report_errors(&mut self) {
        if self.errored == 0 {
            return;
        }
        for i in 0..self.sub_error.len() {
            let e = self.sub_error[i];
            if e != 0 {
                let sub = self.record_at(i as u32);
                self.out.push(ReadyEvent {
                    index: i as u32,
                    userdata: sub.userdata,
                    error: e,
                    kind: sub.tag,
                    nbytes: 0,
                    flags: 0,
                });
            }
        }
    }

    fn record_at(&self, index: u32) -> Record {
        let at = index as usize * SUB_SIZE;
        record(&self.prev[at..at + SUB_SIZE])
    }

    /// When a valid clock subscription fires (`None`: it is not valid).
    fn clock_deadline(&self, index: u32, start: Instant) -> Option<Instant> {
        if self.sub_error[index as usize] != 0 {
            return None;
        }
        let sub = self.record_at(index);
        // WasmEdge arms a timer of at least 1 ns: 0 would disarm it.
        let timeout = Duration::from_nanos(sub.timeout.max(1));
        if sub.flags & ABSTIME == 0 {
            return Some(start + timeout);
        }
        let now = Instant::now();
        Some(match sub.clock_id {
            clock::REALTIME => {
                now + timeout.saturating_sub(Duration::from_nanos(clock::realtime_nanos()))
            }
            _ => clock::epoch() + timeout,
        })
    }

    fn earliest_clock(&self, start: Instant) -> Option<Instant> {
        self.clocks
            .iter()
            .filter_map(|&c| self.clock_deadline(c, start))
            .min()
    }

    fn fire_clocks(&mut self, start: Instant) {
        let now = Instant::now();
        for i in 0..self.clocks.len() {
            let c = self.clocks[i];
            if self.clock_deadline(c, start).is_some_and(|d| d <= now) {
                let sub = self.record_at(c);
                self.out.push(ReadyEvent {
                    index: c,
                    userdata: sub.userdata,
                    error: 0,
                    kind: CLOCK,
                    nbytes: 0,
                    flags: 0,
                });
            }
        }
    }
}

/// Listed by no subscription (parked if still registered in epoll).
fn is_unlisted(watch: &Watch) -> bool {
    watch.read.owner == NONE
        && watch.write.owner == NONE
        && watch.read.extra == 0
        && watch.write.extra == 0
}

/// `nbytes` of a read event as WasmEdge reports it: its `FIONREAD` check is
/// inverted, so 1 when the ioctl works (any socket but a listening one, a
/// pipe) and 0 when it fails.
fn read_nbytes(d: &Descriptor) -> u64 {
    match &d.entry {
        Entry::Socket(s) => u64::from(!s.listening),
        _ => {
            let fd = d.host_fd();
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            u64::from(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } == 0)
        }
    }
}

/// `nbytes` of a write event as WasmEdge reports it: the send buffer's free
/// space, or 1 when either query fails.
fn write_nbytes(fd: RawFd) -> u64 {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let mut used: libc::c_int = 0;
    // SAFETY: getsockopt and ioctl each write one int.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
            && libc::ioctl(fd, libc::TIOCOUTQ, &mut used) == 0
    };
    if ok {
        i64::from(size - used) as u64
    } else {
        1
    }
}

/// The fields of one subscription record that matter here.
#[derive(Clone, Copy)]
struct Record {
    userdata: u64,
    tag: u8,
    fd: u32,
    clock_id: u32,
    timeout: u64,
    flags: u16,
}

fn record(bytes: &[u8]) -> Record {
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Record {
        userdata: u64_at(0),
        tag: bytes[8],
        fd: u32_at(16),
        clock_id: u32_at(16),
        timeout: u64_at(24),
        flags: u16::from_le_bytes([bytes[40], bytes[41]]),
    }
}
