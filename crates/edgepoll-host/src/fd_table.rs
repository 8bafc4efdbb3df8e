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

pub const FDFLAGS_APPEND: u16 = 1;
pub const FDFLAGS_DSYNC: u16 = 2;
pub const FDFLAGS_NONBLOCK: u16 = 4;
pub const FDFLAGS_RSYNC: u16 = 8;
pub const FDFLAGS_SYNC: u16 = 16;

/// WASI fd flags as WasmEdge casts them: 16 bits, five flags, else EINVAL.
pub fn parse_fd_flags(flags: u32) -> Result<u16, Errno> {
    let flags = flags as u16;
    if flags & !0x1f != 0 {
        Err(crate::errno::INVAL)
    } else {
        Ok(flags)
    }
}

/// The `O_*` status flags of WASI fd flags (APPEND aside: WasmEdge keeps
/// it itself), for `open` and `fcntl(F_SETFL)` alike.
pub fn status_flags(flags: u16) -> i32 {
    [
        (FDFLAGS_DSYNC, libc::O_DSYNC),
        (FDFLAGS_NONBLOCK, libc::O_NONBLOCK),
        (FDFLAGS_RSYNC, libc::O_RSYNC),
        (FDFLAGS_SYNC, libc::O_SYNC),
    ]
    .iter()
    .filter(|(wasi, _)| flags & wasi != 0)
    .fold(0, |sys, (_, o)| sys | o)
}

/// WASI rights bits (WasmEdge adds the socket ones from bit 29).
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_OPEN: u64 = 1 << 29;
    pub const SOCK_CLOSE: u64 = 1 << 30;
    pub const SOCK_BIND: u64 = 1 << 31;
    pub const SOCK_RECV: u64 = 1 << 32;
    pub const SOCK_RECV_FROM: u64 = 1 << 33;
    pub const SOCK_SEND: u64 = 1 << 34;
    pub const SOCK_SEND_TO: u64 = 1 << 35;

    /// Every right WasmEdge knows; a value with another bit is EINVAL.
    pub const ALL: u64 = (1 << 36) - 1;

    /// A socket from `sock_open` (WasmEdge's `VINode::sockOpen`).
    pub const OPENED_SOCKET: u64 = SOCK_OPEN
        | SOCK_CLOSE
        | SOCK_RECV
        | SOCK_RECV_FROM
        | SOCK_SEND
        | SOCK_SEND_TO
        | SOCK_SHUTDOWN
        | SOCK_BIND
        | POLL_FD_READWRITE
        | FD_FDSTAT_SET_FLAGS
        | FD_READ
        | FD_WRITE;
    /// A socket from `sock_accept` (WasmEdge's `VINode::sockAccept`).
    pub const ACCEPTED_SOCKET: u64 = SOCK_RECV
        | SOCK_RECV_FROM
        | SOCK_SEND
        | SOCK_SEND_TO
        | SOCK_SHUTDOWN
        | POLL_FD_READWRITE
        | FD_FDSTAT_SET_FLAGS
        | FD_READ
        | FD_WRITE;
    /// A `:readonly` preopened directory (WasmEdge's
    /// `kPreOpenBaseRightsReadOnly`): look, list and open.
    pub const PREOPEN_READONLY: u64 =
        PATH_OPEN | FD_READDIR | PATH_READLINK | PATH_FILESTAT_GET | FD_FILESTAT_GET;
    /// What files and directories below it may get: a writable preopen's,
    /// less writing, allocating, sizing and setting times through paths
    /// (WasmEdge's `kPreOpenInheritingRightsReadOnly`; as there, the rights
    /// to create, link, rename and remove names stay, so that a guest that
    /// asks for them, as Rust's std long did for every file, still opens
    /// files; [`Descriptor::readonly`] refuses their use).
    pub const PREOPEN_READONLY_INHERITING: u64 = PREOPEN_INHERITING
        & !(FD_WRITE
            | FD_ALLOCATE
            | PATH_FILESTAT_SET_SIZE
            | PATH_FILESTAT_SET_TIMES
            | FD_FILESTAT_SET_SIZE
            | SOCK_SHUTDOWN);
    /// What a descriptor at or below a `:readonly` directory may not do,
    /// whatever its rights say: change the names below it (create, link,
    /// rename, remove) or times. WasmEdge allows these, so a guest that
    /// opened the directory again with the rights could empty it, or link
    /// one of its files into a writable directory and write it there.
    pub const WITHHELD_BELOW_READONLY: u64 = PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE
        | PATH_FILESTAT_SET_SIZE
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_SET_TIMES;
    /// Stdio as WasmEdge's `Environ::init` sets it up (inheriting nothing).
    pub const STDIN: u64 = FD_ADVISE | FD_FILESTAT_GET | FD_READ | POLL_FD_READWRITE;
    pub const STDOUT: u64 =
        FD_ADVISE | FD_DATASYNC | FD_FILESTAT_GET | FD_SYNC | FD_WRITE | POLL_FD_READWRITE;
    /// A writable preopened directory, and what files below it may get.
    pub const PREOPEN: u64 = PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE
        | PATH_FILESTAT_SET_SIZE;
    /// What files below a preopened directory may get: its own rights plus
    /// reading, writing and the rest of a file's.
    pub const PREOPEN_INHERITING: u64 = PREOPEN
        | FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_SET_SIZE
        | POLL_FD_READWRITE
        | SOCK_SHUTDOWN;
}

/// Whether `held` grants all of `wanted`, with what it implies; at or below
/// a `:readonly` directory (`readonly`), never what
/// [`rights::WITHHELD_BELOW_READONLY`] names.
pub fn grants(held: u64, readonly: bool, wanted: u64) -> bool {
    imply(held) & wanted == wanted && !(readonly && wanted & rights::WITHHELD_BELOW_READONLY != 0)
}

/// Rights with what they imply, as WasmEdge checks them (`VINode::imply`):
/// seeking lets a descriptor tell, syncing lets it sync data.
pub fn imply(mut rights: u64) -> u64 {
    if rights & rights::FD_SEEK != 0 {
        rights |= rights::FD_TELL;
    }
    if rights & rights::FD_SYNC != 0 {
        rights |= rights::FD_DATASYNC;
    }
    rights
}

pub enum Entry {
    /// Host descriptor 0, 1 or 2, shared with the runtime itself.
    Stdio(RawFd),
    /// A directory, opened `O_RDONLY | O_DIRECTORY`: every path beneath it
    /// is resolved relative to this descriptor (`wasi::beneath`).
    Dir(Directory),
    File(File),
    Socket(Socket),
}

pub struct Directory {
    pub fd: OwnedFd,
    /// The guest's name for it when `--dir GUEST:HOST` preopened it.
    pub preopened: Option<String>,
}

pub struct Socket {
    pub fd: OwnedFd,
    /// Whether `sock_listen` succeeded on it: only such a socket's
    /// `FIONREAD` may fail (see `poll::report::read_nbytes`). It stays set
    /// for good: the supervisor of `--instances` forgets a listener by it
    /// when it closes.
    pub listening: bool,
}

pub struct Descriptor {
    pub entry: Entry,
    pub rights: u64,
    pub inheriting: u64,
    /// WasmEdge keeps the APPEND flag itself rather than in the host file.
    pub append: bool,
    /// A `:readonly` preopened directory, or opened below one: no right
    /// in [`rights::WITHHELD_BELOW_READONLY`] is granted, whatever its
    /// rights say.
    pub readonly: bool,
}

impl Descriptor {
    pub fn new(entry: Entry, rights: u64, inheriting: u64) -> Descriptor {
        Descriptor {
            entry,
            rights,
            inheriting,
            append: false,
            readonly: false,
        }
    }

    /// The host descriptor behind this entry (every entry has one).
    pub fn host_fd(&self) -> RawFd {
        match &self.entry {
            Entry::Socket(s) => s.fd.as_raw_fd(),
            Entry::File(f) => f.as_raw_fd(),
            Entry::Stdio(fd) => *fd,
            Entry::Dir(d) => d.fd.as_raw_fd(),
        }
    }

    pub fn can(&self, wanted: u64) -> bool {
        grants(self.rights, self.readonly, wanted)
    }
}

pub struct FdTable {
    entries: FxHashMap<u32, Descriptor>,
    /// splitmix64 state: random numbers without a syscall per descriptor.
    state: u64,
    /// Numbers added or removed since the poller last looked; `None` once
    /// too many piled up (a guest that opens and closes without polling),
    /// which tells the poller to look at every descriptor it watches.
    changes: Option<Vec<u32>>,
    /// Sockets opened through this table share the ports they name with
    /// the other instances' (`SO_REUSEPORT`), never one another process
    /// holds (see `sock::shared_port`): set when several instances of one
    /// guest serve one port (`--instances`).
    pub reuse_port: bool,
    /// `sock_open` may open Unix domain sockets (`--allow-af-unix`).
    pub allow_af_unix: bool,
    /// What a supervisor of several instances sees of this one's sockets.
    pub shared: Option<std::sync::Arc<Shared>>,
    /// Most descriptors the guest may hold: its share of the process's
    /// when instances share one process (`--instances`), so that one
    /// cannot take every descriptor from the others and from the host.
    /// `None`: the process's limit alone, as under WasmEdge.
    pub max_descriptors: Option<usize>,
}

/// The host descriptor of `d` if it is a listening socket a supervisor
/// watches.
fn listening_fd(shared: &Option<std::sync::Arc<Shared>>, d: &Descriptor) -> Option<RawFd> {
    match (shared, &d.entry) {
        (Some(_), Entry::Socket(socket)) if socket.listening => Some(socket.fd.as_raw_fd()),
        _ => None,
    }
}

/// What the supervisor of several instances (`--instances`) sees of one:
/// its listening sockets, so that it can stop them accepting, and how many
/// connections it accepted, so that it can tell a start that fails from a
/// failure after serving.
#[derive(Debug, Default)]
pub struct Shared {
    listeners: std::sync::Mutex<Vec<RawFd>>,
    /// Connections accepted so far: whether it served anyone.
    accepted: std::sync::atomic::AtomicU64,
    /// Set by [`stop_accepting`](Shared::stop_accepting): a listener added
    /// later is shut down at once.
    stopped: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn listeners(&self) -> std::sync::MutexGuard<'_, Vec<RawFd>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a listening socket (it is forgotten before it closes, so a
    /// number reused afterwards is never touched).
    pub fn add_listener(&self, fd: RawFd) {
        let mut listeners = self.listeners();
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: `fd` is open (its caller holds it).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        listeners.push(fd);
    }

    /// Listeners noted (tests).
    #[cfg(test)]
    pub fn listener_count(&self) -> usize {
        self.listeners().len()
    }

    pub fn forget_listener(&self, fd: RawFd) {
        self.listeners().retain(|&l| l != fd);
    }

    /// Forgets every listener: the instance's table is about to go.
    pub fn forget_listeners(&self) {
        self.listeners().clear();
    }

    /// Makes every listener stop accepting: new connections are refused by
    /// the kernel; those accepted go on.
    pub fn stop_accepting(&self) {
        let listeners = self.listeners();
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for &fd in listeners.iter() {
            // SAFETY: `fd` is open: it is forgotten, under this lock,
            // before it closes.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// A connection was accepted.
    pub fn note_accepted(&self) {
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Past this many unseen changes the log is dropped for "everything changed".
const MAX_CHANGES: usize = 4096;

/// WasmEdge draws new numbers uniformly from [0, 0x7FFF_FFFF].
const RANDOM_FD_MASK: u64 = 0x7FFF_FFFF;

impl FdTable {
    /// A table with stdio at 0, 1 and 2 and numbers drawn from `seed`.
    pub fn with_stdio(seed: u64) -> FdTable {
        let mut table = FdTable {
            entries: FxHashMap::default(),
            state: seed,
            changes: Some(Vec::new()),
            reuse_port: false,
            allow_af_unix: false,
            shared: None,
            max_descriptors: None,
        };
        table.insert_at(0, Descriptor::new(Entry::Stdio(0), rights::STDIN, 0));
        for fd in 1..3 {
            table.insert_at(
                fd,
                Descriptor::new(Entry::Stdio(fd as RawFd), rights::STDOUT, 0),
            );
        }
        table
    }

    /// Puts a descriptor at a chosen number (stdio and preopened directories).
    pub fn insert_at(&mut self, fd: u32, descriptor: Descriptor) {
        if let Some(raw) = listening_fd(&self.shared, &descriptor) {
            // A listener renumbered here (`remove` forgot it).
            self.shared.iter().for_each(|s| s.add_listener(raw));
        }
        let replaced = self.entries.insert(fd, descriptor);
        if let Some(raw) = replaced
            .as_ref()
            .and_then(|d| listening_fd(&self.shared, d))
        {
            self.shared.iter().for_each(|s| s.forget_listener(raw));
        }
        self.note_change(fd);
    }

    /// Records that descriptor `fd` changed (opened, closed, or its rights
    /// set), for the poller to look at it again.
    pub fn note_change(&mut self, fd: u32) {
        if let Some(log) = &mut self.changes {
            if log.len() < MAX_CHANGES {
                log.push(fd);
            } else {
                self.changes = None;
            }
        }
    }

    /// Whether another descriptor may be opened: EMFILE at the guest's
    /// share, as the kernel answers at the process's limit. Asked before
    /// the host opens anything (a file `path_open` would create, a
    /// connection `sock_accept` would take).
    pub fn check_room(&self) -> Result<(), Errno> {
        match self.max_descriptors {
            Some(max) if self.entries.len() >= max => Err(crate::errno::MFILE),
            _ => Ok(()),
        }
    }

    /// Adds a descriptor at a random unused number in [0, 2^31): expected
    /// O(1), as the table is far from full.
    pub fn insert(&mut self, descriptor: Descriptor) -> u32 {
        loop {
            let fd = (self.next_random() & RANDOM_FD_MASK) as u32;
            if let MapEntry::Vacant(slot) = self.entries.entry(fd) {
                slot.insert(descriptor);
                self.note_change(fd);
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

    /// Every descriptor and its number, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Descriptor)> {
        self.entries.iter().map(|(&fd, d)| (fd, d))
    }

    pub fn remove(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        let removed = self.entries.remove(&fd).ok_or(BADF)?;
        self.note_change(fd);
        if let Some(raw) = listening_fd(&self.shared, &removed) {
            self.shared.iter().for_each(|s| s.forget_listener(raw));
        }
        Ok(removed)
    }

    /// Moves the numbers added or removed since the last call into `into`
    /// (cleared first); false when there were too many to list, and every
    /// descriptor must be looked at again.
    pub fn take_changes(&mut self, into: &mut Vec<u32>) -> bool {
        into.clear();
        match &mut self.changes {
            Some(log) => {
                std::mem::swap(into, log);
                true
            }
            None => {
                self.changes = Some(std::mem::take(into));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn dir() -> Descriptor {
        let fd = std::fs::File::open("/").expect("/ opens").into();
        Descriptor::new(
            Entry::Dir(Directory {
                fd,
                preopened: Some("/".into()),
            }),
            0,
            0,
        )
    }

    #[test]
    fn preopen_rights_are_wasmedges() {
        // lib/host/wasi/environ.cpp at 0.14.1, written out as numbers.
        assert_eq!(rights::PREOPEN, 0x07BF_FE00);
        assert_eq!(rights::PREOPEN_INHERITING, 0x1FFF_FFFF);
        assert_eq!(rights::PREOPEN_READONLY, 0x0024_E000);
        assert_eq!(rights::PREOPEN_READONLY_INHERITING, 0x0FA7_FEBF);
    }

    #[test]
    fn stdio_and_chosen_numbers_stay_put() {
        let mut table = FdTable::with_stdio(1);
        table.insert_at(3, dir());
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
            let fd = table.insert(dir());
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
