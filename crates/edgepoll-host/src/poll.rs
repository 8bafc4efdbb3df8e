//! `poll_oneoff` (and `epoll_oneoff`) over one epoll instance kept for the
//! life of the guest.
//!
//! A guest passes its whole subscription list on every call. WasmEdge 0.14
//! answers with one `epoll_ctl` per subscription per call; this poller compares
//! the list with the previous call's (a memcmp when nothing changed) and calls
//! `epoll_ctl` only for descriptors whose interest changed. A call costs
//! O(changes + ready) system calls, however many sockets wait.
//!
//! `epoll_oneoff` is WasmEdge's edge-triggered variant. WasmEdge re-arms every
//! subscription with `EPOLL_CTL_MOD` on each call, which reports a descriptor
//! that is still ready again, so what a guest observes is level-triggered
//! readiness for the subscriptions it passes; this poller gives the same.

use crate::errno::{self, Errno, EXIST, INVAL};
use crate::fd_table::FdTable;
use crate::memory::GuestMemory;
use rustc_hash::FxHashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUB_SIZE: usize = 48;
const EVENT_SIZE: u32 = 32;
const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
const HANGUP: u16 = 1;
const ABSTIME: u16 = 1;
const NONE: u32 = u32::MAX;

/// What the poller knows about one guest descriptor.
#[derive(Clone, Copy)]
struct Watch {
    read: u32,
    write: u32,
    /// The epoll mask currently registered (0: not in epoll).
    registered: u32,
    /// The host descriptor it was registered under.
    host_fd: RawFd,
    dirty: bool,
    /// Not pollable by epoll (a file): always ready.
    always_ready: bool,
}

const UNWATCHED: Watch = Watch {
    read: NONE,
    write: NONE,
    registered: 0,
    host_fd: -1,
    dirty: false,
    always_ready: false,
};

struct ReadyEvent {
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
    /// Per subscription index: an error to report on every call (EEXIST, BADF).
    sub_error: Vec<u16>,
    errored: usize,
    /// Per guest descriptor (WasmEdge numbers them at random: never index by them).
    watches: FxHashMap<u32, Watch>,
    dirty: Vec<u32>,
    clocks: Vec<u32>,
    always_ready: Vec<u32>,
    changed: Vec<u32>,
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
            always_ready: Vec::new(),
            changed: Vec::new(),
            ready: Vec::new(),
            out: Vec::new(),
        })
    }

    /// The guest closed or reopened `fd`: its host descriptor changed, so its
    /// registration must be made again on the next call.
    pub fn invalidate(&mut self, fd: u32) {
        if let Some(watch) = self.watches.get_mut(&fd) {
            if watch.registered != 0 {
                // The old host descriptor may still be open (dup'd elsewhere); drop it
                // from epoll explicitly. Failure means it is already gone.
                // SAFETY: plain system call on our epoll descriptor.
                unsafe {
                    libc::epoll_ctl(
                        self.epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        watch.host_fd,
                        std::ptr::null_mut(),
                    );
                }
            }
            watch.registered = 0;
            watch.host_fd = -1;
            if !watch.dirty && (watch.read != NONE || watch.write != NONE) {
                watch.dirty = true;
                self.dirty.push(fd);
            }
        }
    }

    /// One `poll_oneoff` call: subscriptions at `in_ptr`, events to `out_ptr`.
    pub fn poll(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fds: &FdTable,
        in_ptr: u32,
        out_ptr: u32,
        nsubs: u32,
        nevents_ptr: u32,
    ) -> Result<(), Errno> {
        if nsubs == 0 {
            return Err(INVAL);
        }
        let start = Instant::now();
        let bytes = nsubs.checked_mul(SUB_SIZE as u32).ok_or(INVAL)?;
        mem.slice(out_ptr, nsubs.checked_mul(EVENT_SIZE).ok_or(INVAL)?)?;
        mem.read_u32(nevents_ptr)?;
        let subs = mem.slice(in_ptr, bytes)?;
        if subs != &self.prev[..] {
            self.apply_changes(subs);
        }
        self.register_dirty(fds);

        self.out.clear();
        self.collect_immediate();
        let deadline = self.earliest_clock(start)?;
        let timeout_ms = if !self.out.is_empty() {
            0
        } else {
            match deadline {
                None => -1,
                Some(d) => {
                    let wait = d.saturating_duration_since(Instant::now());
                    // Round up: waking early would report a clock that has not fired.
                    (wait.as_nanos().div_ceil(1_000_000)).min(i32::MAX as u128) as i32
                }
            }
        };
        // Level-triggered: whatever does not fit is reported by the next call.
        self.ready.resize(
            (nsubs as usize).min(1024),
            libc::epoll_event { events: 0, u64: 0 },
        );
        let count = loop {
            // SAFETY: `ready` has room for the `len` events epoll may write.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    self.ready.as_mut_ptr(),
                    self.ready.len() as i32,
                    timeout_ms,
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(errno::from_io(&e));
            }
        };
        for i in 0..count {
            let event = self.ready[i];
            let (mask, fd) = (event.events, event.u64 as u32);
            let Some(watch) = self.watches.get(&fd).copied() else {
                continue;
            };
            let hangup = if mask & libc::EPOLLHUP as u32 != 0 {
                HANGUP
            } else {
                0
            };
            let failed = mask & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            if watch.read != NONE
                && (mask & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 || failed)
            {
                let nbytes = readable_bytes(watch.host_fd);
                self.push_fd_event(watch.read, FD_READ, nbytes, hangup);
            }
            if watch.write != NONE && (mask & libc::EPOLLOUT as u32 != 0 || failed) {
                self.push_fd_event(watch.write, FD_WRITE, 1, hangup);
            }
        }
        self.fire_clocks(start)?;

        let n = self.out.len().min(nsubs as usize);
        for (i, event) in self.out.iter().take(n).enumerate() {
            let at = out_ptr + i as u32 * EVENT_SIZE;
            let mut record = [0u8; EVENT_SIZE as usize];
            record[0..8].copy_from_slice(&event.userdata.to_le_bytes());
            record[8..10].copy_from_slice(&event.error.to_le_bytes());
            record[10] = event.kind;
            record[16..24].copy_from_slice(&event.nbytes.to_le_bytes());
            record[24..26].copy_from_slice(&event.flags.to_le_bytes());
            mem.write(at, &record)?;
        }
        mem.write_u32(nevents_ptr, n as u32)
    }

    /// Diffs the new list against the previous one, detaching every changed or
    /// dropped record first, then attaching the new ones, so records that only
    /// moved are never seen as duplicates.
    fn apply_changes(&mut self, subs: &[u8]) {
        let new_len = subs.len() / SUB_SIZE;
        let old_len = self.prev.len() / SUB_SIZE;
        self.changed.clear();
        for i in 0..old_len {
            let old = &self.prev[i * SUB_SIZE..(i + 1) * SUB_SIZE];
            if i >= new_len || old != &subs[i * SUB_SIZE..(i + 1) * SUB_SIZE] {
                let old = record(old);
                self.detach(i as u32, old);
                if i < new_len {
                    self.changed.push(i as u32);
                }
            }
        }
        self.changed.extend(old_len as u32..new_len as u32);
        self.prev.clear();
        self.prev.extend_from_slice(subs);
        self.sub_error.resize(new_len, 0);
        let changed = std::mem::take(&mut self.changed);
        for &i in &changed {
            let sub = record(&subs[i as usize * SUB_SIZE..(i as usize + 1) * SUB_SIZE]);
            self.attach(i, sub);
        }
        self.changed = changed;
    }

    fn detach(&mut self, index: u32, sub: Record) {
        if let Some(e) = self.sub_error.get_mut(index as usize) {
            if *e != 0 {
                *e = 0;
                self.errored -= 1;
            }
        }
        match sub.tag {
            CLOCK => self.clocks.retain(|&c| c != index),
            FD_READ | FD_WRITE => {
                let Some(watch) = self.watches.get_mut(&sub.fd) else {
                    return;
                };
                let slot = if sub.tag == FD_READ {
                    &mut watch.read
                } else {
                    &mut watch.write
                };
                if *slot == index {
                    *slot = NONE;
                    if !watch.dirty {
                        watch.dirty = true;
                        self.dirty.push(sub.fd);
                    }
                }
            }
            _ => {}
        }
    }

    fn attach(&mut self, index: u32, sub: Record) {
        match sub.tag {
            CLOCK => self.clocks.push(index),
            FD_READ | FD_WRITE => {
                let watch = self.watches.entry(sub.fd).or_insert(UNWATCHED);
                let slot = if sub.tag == FD_READ {
                    &mut watch.read
                } else {
                    &mut watch.write
                };
                if *slot != NONE {
                    // WasmEdge answers a second subscription of the same
                    // descriptor and direction with EEXIST on that event.
                    self.set_error(index, EXIST);
                    return;
                }
                *slot = index;
                if !watch.dirty {
                    watch.dirty = true;
                    self.dirty.push(sub.fd);
                }
            }
            _ => self.set_error(index, INVAL),
        }
    }

    fn set_error(&mut self, index: u32, errno: Errno) {
        let e = &mut self.sub_error[index as usize];
        if *e == 0 {
            self.errored += 1;
        }
        *e = errno.0;
    }

    /// Brings epoll in line with what dirty descriptors now want.
    fn register_dirty(&mut self, fds: &FdTable) {
        while let Some(fd) = self.dirty.pop() {
            let mut watch = self.watches[&fd];
            watch.dirty = false;
            let host = fds.get(fd).map(|d| match d.entry {
                crate::fd_table::Entry::File(_) | crate::fd_table::Entry::Dir { .. } => None,
                _ => d.host_fd(),
            });
            let mut want = 0u32;
            if watch.read != NONE {
                want |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            }
            if watch.write != NONE {
                want |= libc::EPOLLOUT as u32;
            }
            let was_always = watch.always_ready;
            watch.always_ready = false;
            let mut failure = None;
            match host {
                Err(e) => {
                    failure = Some(e);
                    if watch.registered != 0 {
                        let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, watch.host_fd, 0, fd);
                        watch.registered = 0;
                    }
                }
                Ok(None) => watch.always_ready = want != 0,
                Ok(Some(host_fd)) => {
                    let op = match (watch.registered, want) {
                        (0, 0) => None,
                        (0, _) => Some(libc::EPOLL_CTL_ADD),
                        (_, 0) => Some(libc::EPOLL_CTL_DEL),
                        (old, new) if old != new => Some(libc::EPOLL_CTL_MOD),
                        _ => None,
                    };
                    if let Some(op) = op {
                        match self.epoll_ctl(op, host_fd, want, fd) {
                            Ok(()) => {
                                watch.registered = want;
                                watch.host_fd = host_fd;
                            }
                            // A descriptor epoll cannot watch (a regular file on
                            // stdin): always ready, as poll(2) would say.
                            Err(e) if e.0 == 63 => watch.always_ready = want != 0,
                            Err(e) => failure = Some(e),
                        }
                    }
                }
            }
            for index in [watch.read, watch.write] {
                if index == NONE {
                    continue;
                }
                match failure {
                    Some(e) => self.set_error(index, e),
                    None => {
                        if self.sub_error[index as usize] != 0
                            && self.sub_error[index as usize] != EXIST.0
                        {
                            self.sub_error[index as usize] = 0;
                            self.errored -= 1;
                        }
                    }
                }
            }
            if watch.always_ready && !was_always {
                self.always_ready.push(fd);
            } else if was_always && !watch.always_ready {
                self.always_ready.retain(|&f| f != fd);
            }
            if watch.read == NONE && watch.write == NONE && watch.registered == 0 {
                self.watches.remove(&fd);
            } else {
                self.watches.insert(fd, watch);
            }
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

    /// Events known without waiting: per-subscription errors and files.
    fn collect_immediate(&mut self) {
        if self.errored > 0 {
            for (i, &e) in self.sub_error.iter().enumerate() {
                if e != 0 {
                    let sub = record(&self.prev[i * SUB_SIZE..(i + 1) * SUB_SIZE]);
                    self.out.push(ReadyEvent {
                        userdata: sub.userdata,
                        error: e,
                        kind: sub.tag,
                        nbytes: 0,
                        flags: 0,
                    });
                }
            }
        }
        for i in 0..self.always_ready.len() {
            let watch = self.watches[&self.always_ready[i]];
            if watch.read != NONE {
                self.push_fd_event(watch.read, FD_READ, 0, 0);
            }
            if watch.write != NONE {
                self.push_fd_event(watch.write, FD_WRITE, 0, 0);
            }
        }
    }

    fn push_fd_event(&mut self, index: u32, kind: u8, nbytes: u64, flags: u16) {
        if self.sub_error.get(index as usize).is_some_and(|&e| e != 0) {
            return;
        }
        let sub = record(&self.prev[index as usize * SUB_SIZE..(index as usize + 1) * SUB_SIZE]);
        self.out.push(ReadyEvent {
            userdata: sub.userdata,
            error: 0,
            kind,
            nbytes,
            flags,
        });
    }

    fn clock_deadline(&self, index: u32, start: Instant) -> Result<Instant, Errno> {
        let sub = record(&self.prev[index as usize * SUB_SIZE..(index as usize + 1) * SUB_SIZE]);
        let timeout = Duration::from_nanos(sub.timeout);
        if sub.flags & ABSTIME == 0 {
            return Ok(start + timeout);
        }
        match sub.clock_id {
            0 => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Ok(Instant::now() + timeout.saturating_sub(now))
            }
            1 => Ok(crate::wasi::clock_epoch() + timeout),
            _ => Err(INVAL),
        }
    }

    fn earliest_clock(&self, start: Instant) -> Result<Option<Instant>, Errno> {
        let mut earliest: Option<Instant> = None;
        for &c in &self.clocks {
            let d = self.clock_deadline(c, start)?;
            earliest = Some(earliest.map_or(d, |e| e.min(d)));
        }
        Ok(earliest)
    }

    fn fire_clocks(&mut self, start: Instant) -> Result<(), Errno> {
        let now = Instant::now();
        for i in 0..self.clocks.len() {
            let c = self.clocks[i];
            if self.clock_deadline(c, start)? <= now {
                let sub = record(&self.prev[c as usize * SUB_SIZE..(c as usize + 1) * SUB_SIZE]);
                self.out.push(ReadyEvent {
                    userdata: sub.userdata,
                    error: 0,
                    kind: CLOCK,
                    nbytes: 0,
                    flags: 0,
                });
            }
        }
        Ok(())
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

fn readable_bytes(host_fd: RawFd) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(host_fd, libc::FIONREAD, &mut n) };
    if r == 0 {
        n.max(0) as u64
    } else {
        1
    }
}
