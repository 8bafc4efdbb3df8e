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
//! per call for each quiet descriptor. Each wait has room for an event from
//! every descriptor in epoll, parked ones too, so that every listed one that
//! is ready is reported, as WasmEdge reports them all.
//!
//! To compare, it keeps the previous call's records (48 bytes each), per
//! subscription an error code, room for its event and for an epoll event,
//! and per descriptor named (valid or not) a hash map entry: about 150
//! bytes of host memory per subscription, 200 at most, held from call to
//! call. WasmEdge takes about as much: a list of 1.4 million clocks in a
//! guest of 64 MiB, as long as its memory holds (read and written in
//! place), took it to 168 MB of resident memory, and this host to 200 MB
//! without the bound that follows. So that a guest cannot turn its memory
//! into three times as much of the host's (13 GB for 4 GiB), a call lists
//! at most one subscription per [`HOST_BYTES_PER_SUBSCRIPTION`] bytes of
//! the guest's memory, or [`ALWAYS_LISTED`] whatever its memory; more is
//! NOMEM, where WasmEdge would try. A longer list would take over a sixth
//! of the guest's memory on its own: no program polls so, and one that
//! does is told, rather than the host (every instance of it) being killed
//! for want of memory.
//!
//! `epoll_oneoff` is WasmEdge's edge-triggered variant; as WasmEdge re-arms
//! every subscription on each call, a guest observes level-triggered
//! readiness for what it passes, and this poller gives the same.

mod diff;
mod epoll_set;
pub mod link;
mod report;

use crate::clock;
use crate::errno::{self, Errno, WasiResult, BADF, EXIST, FAULT, INVAL, NOMEM, NOTCAPABLE};
use crate::fd_table::{rights, Descriptor, Entry, FdTable};
use crate::memory::GuestMemory;
use rustc_hash::FxHashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The layout of `poll_oneoff`'s records (WASI preview1, as WasmEdge
/// reads and writes them): the one place the runtime, its tests and its
/// fuzzer take these from.
pub mod abi {
    /// Bytes of one subscription record.
    pub const SUBSCRIPTION_SIZE: usize = 48;
    /// Bytes of one event record.
    pub const EVENT_SIZE: u32 = 32;
    /// Event types (a subscription's tag, an event's type).
    pub const CLOCK: u8 = 0;
    pub const FD_READ: u8 = 1;
    pub const FD_WRITE: u8 = 2;
    /// The event flag for a peer that hung up.
    pub const HANGUP: u16 = 1;
    /// The subscription-clock flag for an absolute time.
    pub const ABSTIME: u16 = 1;
}

use abi::{ABSTIME, CLOCK, EVENT_SIZE, FD_READ, FD_WRITE, HANGUP, SUBSCRIPTION_SIZE as SUB_SIZE};
const NONE: u32 = u32::MAX;

/// A call's bookkeeping may take as much host memory as the guest has, at
/// this many bytes per subscription (above what it takes at most).
pub const HOST_BYTES_PER_SUBSCRIPTION: usize = 256;

/// Subscriptions a call may list whatever the guest's memory (some 16 MB
/// of bookkeeping at most).
pub const ALWAYS_LISTED: usize = 1 << 16;

/// The longest list a guest with `memory` bytes may pass (see the module
/// documentation).
fn most_listed(memory: usize) -> usize {
    (memory / HOST_BYTES_PER_SUBSCRIPTION).max(ALWAYS_LISTED)
}

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
    /// The host descriptor registered: the one to take out of epoll when
    /// the guest's number stops naming it (a renumbered socket keeps its
    /// host descriptor, and so its registration, under another number).
    host: RawFd,
    dirty: bool,
}

const UNWATCHED: Watch = Watch {
    read: NO_DIRECTION,
    write: NO_DIRECTION,
    registered: 0,
    host: -1,
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
    /// The clock subscriptions' indexes (a set: a guest swapping thousands
    /// of clocks from call to call must not cost it quadratic time).
    clocks: rustc_hash::FxHashSet<u32>,
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
            clocks: Default::default(),
            changed: Vec::new(),
            reelect: Vec::new(),
            ready: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Room for the bookkeeping of `n` subscriptions (about 150 bytes each,
    /// more than the guest's 48), or NOMEM, as WasmEdge answers when its
    /// own reservation fails: a guest listing tens of millions must not
    /// make the runtime abort on an allocation, every instance with it.
    fn reserve_for(&mut self, n: usize) -> Result<(), Errno> {
        /// Room for `total` in all.
        fn room<T>(list: &mut Vec<T>, total: usize) -> bool {
            list.try_reserve(total.saturating_sub(list.len())).is_ok()
        }
        // The old list's descriptors leave the watches only after the new
        // ones came in: both at once, at most.
        let watched = self.watches.len().saturating_add(n);
        let reserved = room(&mut self.prev, n.saturating_mul(SUB_SIZE))
            && room(&mut self.sub_error, n)
            && room(&mut self.changed, n)
            && room(&mut self.out, n)
            && room(&mut self.dirty, watched)
            && room(&mut self.ready, watched)
            && self.watches.try_reserve(n).is_ok()
            && self
                .clocks
                .try_reserve(n.saturating_sub(self.clocks.len()))
                .is_ok();
        match reserved {
            true => Ok(()),
            false => Err(NOMEM),
        }
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
        if nsubs as usize > most_listed(mem.0.len()) {
            return Err(NOMEM);
        }
        self.reserve_for(nsubs as usize)?;
        let start = Instant::now();
        self.note_table_changes(fds);
        let subs = mem.slice(in_ptr, bytes)?;
        if subs != &self.prev[..] {
            self.apply_changes(subs);
        }
        self.register_dirty(fds);

        self.out.clear();
        let earliest = self.earliest_clock(start);
        // Room for every descriptor in epoll, parked ones included: with
        // room for the call's own only, ready parked ones ahead in epoll's
        // list crowded out a listed one, which WasmEdge (whose epoll holds
        // only the listed) reports.
        let room = self.watches.len().max(nsubs as usize);
        self.ready
            .resize(room, libc::epoll_event { events: 0, u64: 0 });
        loop {
            let n = wait_ready(self.epoll.as_raw_fd(), &mut self.ready, earliest);
            // The wait ended before the clock's time (a wait longer than
            // epoll's limit, or rounded): the guest's wait goes on.
            if n == 0 && earliest.is_some_and(|d| Instant::now() < d) {
                continue;
            }
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
}

/// Waits for events on `epoll` until `deadline` (`None`: for ever): to the
/// nanosecond with `epoll_pwait2` (Linux 5.11), as WasmEdge's timerfd is,
/// else to the millisecond, rounded up (waking early would report a
/// clock that has not fired). The number of events, or -1 (see errno).
fn wait_ready(epoll: RawFd, ready: &mut [libc::epoll_event], deadline: Option<Instant>) -> i32 {
    static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
    let room = ready.len().min(i32::MAX as usize) as i32;
    let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if !NO_PWAIT2.load(Ordering::Relaxed) {
        let timeout = wait.map(|w| libc::timespec {
            tv_sec: w.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: w.subsec_nanos() as libc::c_long,
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `ready` has room for `room` events; the timeout is a
        // timespec or null; no signal mask.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epoll,
                ready.as_mut_ptr(),
                room,
                timeout_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        // ENOSYS: a kernel before 5.11; EPERM: a seccomp filter that does
        // not know the call (it has no EPERM of its own).
        let missing = matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS | libc::EPERM)
        );
        if n >= 0 || !missing {
            return n as i32;
        }
        NO_PWAIT2.store(true, Ordering::Relaxed);
    }
    let timeout_ms = match wait {
        None => -1,
        Some(w) => w.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
    };
    // SAFETY: `ready` has room for the `room` events epoll may write.
    unsafe { libc::epoll_wait(epoll, ready.as_mut_ptr(), room, timeout_ms) }
}
