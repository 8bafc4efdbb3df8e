//! Descriptor functions: read, write, close, status and flags, file status,
//! seek, and the preopened directories' names. Checks run in WasmEdge's order
//! (argument values and pointers, then the descriptor, then its rights), and
//! the status comes from the host descriptor itself (`fstat`, `fcntl`), as
//! WasmEdge reports it.

use crate::errno::{self, check, Errno, WasiResult, INVAL, NOTCAPABLE, NOTDIR};
use crate::fd_table::{
    imply, parse_fd_flags, rights, status_flags, Descriptor, Directory, Entry, FdTable,
    FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_NONBLOCK, FDFLAGS_RSYNC, FDFLAGS_SYNC,
};
use crate::memory::{iovec_buffer, GuestMemory};
use std::sync::atomic::{AtomicBool, Ordering};

/// The guest's buffers for one transfer.
pub struct Buffers {
    pub iovs: u32,
    pub count: u32,
}

/// `fd_read` and `fd_write` (`at`: `None`, at the position) and `fd_pread`
/// and `fd_pwrite` (at an offset, which also takes the right to seek and
/// leaves the position alone; WasmEdge passes the offset on as it is).
pub fn read_or_write(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    buffers: Buffers,
    at: Option<u64>,
    out: u32,
    write: bool,
) -> WasiResult {
    let table = mem.iovec_table(buffers.iovs, buffers.count)?;
    mem.pointer::<4>(out)?;
    let mut vecs = iovec_buffer();
    let n = mem.gather(table, &mut vecs)? as i32;
    let d = fds.get(fd)?;
    let mut needed = if write {
        rights::FD_WRITE
    } else {
        rights::FD_READ
    };
    if at.is_some() {
        needed |= rights::FD_SEEK;
    }
    if !d.can(needed) {
        return Err(NOTCAPABLE);
    }
    let raw = d.host_fd();
    let iov = vecs.as_ptr().cast();
    // SAFETY: the iovecs point into guest memory, which stays borrowed; the
    // first `n` are initialized (gather).
    let r = unsafe {
        match (write, at) {
            (true, None) => {
                if d.append {
                    // WasmEdge's `INode::fdWrite` seeks to the end itself.
                    libc::lseek(raw, 0, libc::SEEK_END);
                }
                libc::writev(raw, iov, n)
            }
            (false, None) => libc::readv(raw, iov, n),
            (true, Some(offset)) => libc::pwritev(raw, iov, n, offset as i64),
            (false, Some(offset)) => libc::preadv(raw, iov, n, offset as i64),
        }
    };
    if r < 0 {
        return Err(errno::last());
    }
    mem.write_u32(out, r as u32)
}

/// Whether `fd` is a pipe, FIFO or socket: what the kernel raises SIGPIPE
/// for (a device's or FUSE file's EPIPE is only an errno, on WasmEdge too).
pub fn is_pipe_or_socket(fds: &FdTable, fd: u32) -> bool {
    let Ok(d) = fds.get(fd) else {
        return false;
    };
    crate::wasi::beneath::fstat(d.host_fd())
        .is_ok_and(|st| matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK))
}

/// Whether this process was started with SIGPIPE ignored (systemd's
/// default, a shell's `trap '' PIPE`) or blocked, as
/// [`record_inherited_sigpipe`] found it before Rust's runtime set it to
/// ignored for its own writes.
static SIGPIPE_INHERITED_HELD: AtomicBool = AtomicBool::new(false);

/// Notes how SIGPIPE was inherited. For the binary's `.init_array`, which
/// runs before `main` and so before Rust's runtime ignores SIGPIPE; an
/// embedder that does not call it gets the default action's behaviour.
///
/// ```no_run
/// // In the binary (Linux): called by the C runtime before `main`.
/// #[used]
/// #[unsafe(link_section = ".init_array")]
/// static RECORD: extern "C" fn() = edgepoll_host::record_inherited_sigpipe;
/// ```
pub extern "C" fn record_inherited_sigpipe() {
    // SAFETY: reading the current action and mask into zeroed structures
    // of the right types.
    let held = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        let ignored = libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut action) == 0
            && action.sa_sigaction == libc::SIG_IGN;
        let mut mask: libc::sigset_t = std::mem::zeroed();
        let blocked = libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) == 0
            && libc::sigismember(&mask, libc::SIGPIPE) == 1;
        ignored || blocked
    };
    SIGPIPE_INHERITED_HELD.store(held, Ordering::Relaxed);
}

/// Whether a guest's write to a pipe or socket nobody reads ends the run,
/// as on WasmEdge, which writes with `writev` and leaves SIGPIPE as it
/// found it: so unless SIGPIPE was inherited ignored or blocked, where the
/// write fails with EPIPE on both.
pub fn broken_pipe_ends_the_run() -> bool {
    !SIGPIPE_INHERITED_HELD.load(Ordering::Relaxed)
}

/// Ends the process as SIGPIPE ends one, as WasmEdge ends when its guest
/// writes to a pipe or socket nobody reads (see
/// [`broken_pipe_ends_the_run`]): `wasmedge app.wasm | head -1` ends
/// quietly, status 141 in a shell, and so does this host. Not under
/// `--instances` (threads of one process, which WasmEdge has not), even
/// with one: there the write fails with EPIPE (the stdout and stderr of
/// several take every line, as a terminal would: see `output`), and the
/// other instances go on.
pub fn die_of_broken_pipe() -> ! {
    // SAFETY: restoring a signal's default action and raising it in this
    // thread; the default action ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached (SIGPIPE blocked is told apart at start).
    std::process::exit(128 + libc::SIGPIPE)
}

pub fn close(fds: &mut FdTable, fd: u32) -> WasiResult {
    // Dropping the entry closes its host descriptor (never stdio's).
    fds.remove(fd).map(drop)
}

/// The WASI file type of a host file mode (WasmEdge's `fromFileType`: a
/// socket is always a stream socket, a pipe is "unknown").
fn filetype(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFBLK => 1,
        libc::S_IFCHR => 2,
        libc::S_IFDIR => 3,
        libc::S_IFREG => 4,
        libc::S_IFSOCK => 6,
        libc::S_IFLNK => 7,
        _ => 0,
    }
}

fn stat(d: &Descriptor) -> Result<libc::stat, Errno> {
    super::beneath::fstat(d.host_fd())
}

/// `fd_fdstat_get`: rights from the table, type and flags from the host.
pub fn fdstat_get(mem: &mut GuestMemory<'_>, fds: &FdTable, fd: u32, out: u32) -> WasiResult {
    mem.pointer::<24>(out)?;
    let d = fds.get(fd)?;
    mem.write_u64(out + 8, d.rights)?;
    mem.write_u64(out + 16, d.inheriting)?;
    let st = stat(d)?;
    // SAFETY: plain fcntl on a descriptor the table holds.
    let sys = unsafe { libc::fcntl(d.host_fd(), libc::F_GETFL) };
    check(sys)?;
    let mut flags = 0u16;
    if d.append {
        flags |= FDFLAGS_APPEND;
    }
    if sys & libc::O_DSYNC != 0 {
        flags |= FDFLAGS_DSYNC;
    }
    if sys & libc::O_NONBLOCK != 0 {
        flags |= FDFLAGS_NONBLOCK;
    }
    // WasmEdge tests any bit of O_SYNC, O_DSYNC's included.
    if sys & libc::O_SYNC != 0 {
        flags |= FDFLAGS_RSYNC | FDFLAGS_SYNC;
    }
    mem.write_u8(out, filetype(st.st_mode))?;
    mem.write_u16(out + 2, flags)
}

/// `fd_fdstat_set_flags`: the flags replace the host's status flags.
pub fn fdstat_set_flags(fds: &mut FdTable, fd: u32, flags: u32) -> WasiResult {
    let flags = parse_fd_flags(flags)?;
    let d = fds.get_mut(fd)?;
    let mut needed = rights::FD_FDSTAT_SET_FLAGS;
    if flags & FDFLAGS_DSYNC != 0 {
        needed |= rights::FD_DATASYNC;
    }
    if flags & (FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
        needed |= rights::FD_SYNC;
    }
    if !d.can(needed) {
        return Err(NOTCAPABLE);
    }
    // SAFETY: plain fcntl on a descriptor the table holds.
    check(unsafe { libc::fcntl(d.host_fd(), libc::F_SETFL, status_flags(flags)) })?;
    d.append = flags & FDFLAGS_APPEND != 0;
    Ok(())
}

/// Writes a filestat record field by field.
pub fn write_filestat(
    mem: &mut GuestMemory<'_>,
    out: u32,
    st: &libc::stat,
    hide: bool,
) -> WasiResult {
    // As WasmEdge's `fromTimespec`: seconds times 10^9 plus the nanoseconds,
    // wrapping (a time before 1970 or after 2262 reads wrapped; no panic).
    let nanos = |s: i64, ns: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ns as u64)
    };
    let shown = |v: u64| if hide { 0 } else { v };
    mem.write_u64(out, shown(st.st_dev))?;
    mem.write_u64(out + 8, shown(st.st_ino))?;
    mem.write_u8(out + 16, filetype(st.st_mode))?;
    mem.write_u64(out + 24, shown(st.st_nlink))?;
    mem.write_u64(out + 32, shown(st.st_size as u64))?;
    mem.write_u64(out + 40, shown(nanos(st.st_atime, st.st_atime_nsec)))?;
    mem.write_u64(out + 48, shown(nanos(st.st_mtime, st.st_mtime_nsec)))?;
    mem.write_u64(out + 56, shown(nanos(st.st_ctime, st.st_ctime_nsec)))
}

/// `fd_filestat_get`. Stdio's device, inode, size and times read as zero,
/// as WasmEdge hides them.
pub fn filestat_get(mem: &mut GuestMemory<'_>, fds: &FdTable, fd: u32, out: u32) -> WasiResult {
    mem.pointer::<64>(out)?;
    let d = fds.get(fd)?;
    if !d.can(rights::FD_FILESTAT_GET) {
        return Err(NOTCAPABLE);
    }
    let st = stat(d)?;
    write_filestat(mem, out, &st, matches!(d.entry, Entry::Stdio(_)))
}

/// The guest's name of a preopened directory; EINVAL for any other open
/// descriptor (WasmEdge: a node without a name).
fn preopened(fds: &FdTable, fd: u32) -> Result<&str, Errno> {
    match &fds.get(fd)?.entry {
        Entry::Dir(Directory {
            preopened: Some(name),
            ..
        }) => Ok(name),
        _ => Err(INVAL),
    }
}

/// `fd_prestat_get`: the length of a preopened directory's guest name.
pub fn prestat_get(mem: &mut GuestMemory<'_>, fds: &FdTable, fd: u32, out: u32) -> WasiResult {
    // The record's room first, as WasmEdge: EFAULT before EBADF, and a
    // call that fails writes nothing.
    mem.pointer::<8>(out)?;
    let name = preopened(fds, fd)?;
    // The tag (0, a directory) alone: WasmEdge leaves the padding after it
    // as the guest had it.
    mem.write_u8(out, 0)?;
    mem.write_u32(out + 4, name.len() as u32)
}

/// `fd_prestat_dir_name`.
pub fn prestat_dir_name(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    path: u32,
    len: u32,
) -> WasiResult {
    mem.slice(path, len)?;
    let bytes = preopened(fds, fd)?.as_bytes();
    if (len as usize) < bytes.len() {
        return Err(errno::NAMETOOLONG);
    }
    mem.write(path, bytes)
}

/// `fd_seek` (`whence`: 0 set, 1 current, 2 end) and `fd_tell` (`None`).
pub fn seek(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    to: Option<(i64, u32)>,
    out: u32,
) -> WasiResult {
    // WasmEdge reads `whence` as one byte.
    let (offset, whence, right) = match to {
        None => (0, libc::SEEK_CUR, rights::FD_TELL),
        Some((offset, whence)) => match whence as u8 {
            0 => (offset, libc::SEEK_SET, rights::FD_SEEK),
            1 => (offset, libc::SEEK_CUR, rights::FD_SEEK),
            2 => (offset, libc::SEEK_END, rights::FD_SEEK),
            _ => return Err(INVAL),
        },
    };
    mem.pointer::<8>(out)?;
    let d = fds.get(fd)?;
    if !d.can(right) {
        return Err(NOTCAPABLE);
    }
    // SAFETY: plain lseek on a descriptor the table holds.
    let at = unsafe { libc::lseek(d.host_fd(), offset, whence) };
    check(at)?;
    mem.write_u64(out, at as u64)
}

/// `fd_sync` and `fd_datasync`.
pub fn sync(fds: &FdTable, fd: u32, data_only: bool) -> WasiResult {
    let d = fds.get(fd)?;
    let right = if data_only {
        rights::FD_DATASYNC
    } else {
        rights::FD_SYNC
    };
    if !d.can(right) {
        return Err(NOTCAPABLE);
    }
    let raw = d.host_fd();
    // SAFETY: plain fsync/fdatasync on a descriptor the table holds.
    check(unsafe {
        if data_only {
            libc::fdatasync(raw)
        } else {
            libc::fsync(raw)
        }
    })
}

/// `fd_advise`: the advice is checked (0-5), then passed to the kernel.
pub fn advise(fds: &FdTable, fd: u32, offset: u64, len: u64, advice: u32) -> WasiResult {
    let advice = match advice as u8 {
        0 => libc::POSIX_FADV_NORMAL,
        1 => libc::POSIX_FADV_SEQUENTIAL,
        2 => libc::POSIX_FADV_RANDOM,
        3 => libc::POSIX_FADV_WILLNEED,
        4 => libc::POSIX_FADV_DONTNEED,
        5 => libc::POSIX_FADV_NOREUSE,
        _ => return Err(INVAL),
    };
    let d = fds.get(fd)?;
    if !d.can(rights::FD_ADVISE) {
        return Err(NOTCAPABLE);
    }
    // SAFETY: plain posix_fadvise; it returns the error rather than set errno.
    match unsafe { libc::posix_fadvise(d.host_fd(), offset as i64, len as i64, advice) } {
        0 => Ok(()),
        e => Err(errno::from_linux(e)),
    }
}

/// `fd_allocate` (`posix_fallocate`, as WasmEdge).
pub fn allocate(fds: &FdTable, fd: u32, offset: u64, len: u64) -> WasiResult {
    let d = fds.get(fd)?;
    if !d.can(rights::FD_ALLOCATE) {
        return Err(NOTCAPABLE);
    }
    // SAFETY: plain posix_fallocate; it returns the error rather than set errno.
    match unsafe { libc::posix_fallocate(d.host_fd(), offset as i64, len as i64) } {
        0 => Ok(()),
        e => Err(errno::from_linux(e)),
    }
}

/// `fd_filestat_set_size`.
pub fn filestat_set_size(fds: &FdTable, fd: u32, size: u64) -> WasiResult {
    let d = fds.get(fd)?;
    if !d.can(rights::FD_FILESTAT_SET_SIZE) {
        return Err(NOTCAPABLE);
    }
    // SAFETY: plain ftruncate on a descriptor the table holds.
    check(unsafe { libc::ftruncate(d.host_fd(), size as i64) })
}

const FSTFLAGS_ATIM: u16 = 1;
const FSTFLAGS_ATIM_NOW: u16 = 2;
const FSTFLAGS_MTIM: u16 = 4;
const FSTFLAGS_MTIM_NOW: u16 = 8;

/// The two timespecs `utimensat` takes for WASI's times and flags; a time
/// both given and "now" is EINVAL (WasmEdge's cast of the flags).
pub fn filestat_times(atim: u64, mtim: u64, flags: u32) -> Result<[libc::timespec; 2], Errno> {
    let flags = flags as u16;
    if flags & !0xf != 0
        || flags & (FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW) == FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW
        || flags & (FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW) == FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW
    {
        return Err(INVAL);
    }
    let time = |nanos: u64, set: u16, now: u16| {
        if flags & set != 0 {
            libc::timespec {
                tv_sec: (nanos / 1_000_000_000) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            }
        } else {
            libc::timespec {
                tv_sec: 0,
                tv_nsec: if flags & now != 0 {
                    libc::UTIME_NOW
                } else {
                    libc::UTIME_OMIT
                },
            }
        }
    };
    Ok([
        time(atim, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW),
        time(mtim, FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW),
    ])
}

/// `fd_filestat_set_times`.
pub fn filestat_set_times(fds: &FdTable, fd: u32, atim: u64, mtim: u64, flags: u32) -> WasiResult {
    let times = filestat_times(atim, mtim, flags)?;
    let d = fds.get(fd)?;
    if !d.can(rights::FD_FILESTAT_SET_TIMES) {
        return Err(NOTCAPABLE);
    }
    // `futimens`, as WasmEdge's `INode::fdFilestatSetTimes`: a directory
    // opened with no right to read it (O_PATH) gets EBADF there, as here.
    // SAFETY: `times` holds two timespecs.
    check(unsafe { libc::futimens(d.host_fd(), times.as_ptr()) })
}

/// `fd_fdstat_set_rights`: rights can only shrink. What is held is
/// compared, not what may be used: below a `:readonly` directory a
/// descriptor holds rights it may not use, and may keep them.
pub fn fdstat_set_rights(fds: &mut FdTable, fd: u32, base: u64, inheriting: u64) -> WasiResult {
    if (base | inheriting) & !rights::ALL != 0 {
        return Err(INVAL);
    }
    let d = fds.get_mut(fd)?;
    if imply(d.rights) & base != base || imply(d.inheriting) & inheriting != inheriting {
        return Err(NOTCAPABLE);
    }
    d.rights = base;
    d.inheriting = inheriting;
    // The poller checks rights when a descriptor changes: WasmEdge checks
    // them on every call, so a poll after this one sees the new ones.
    fds.note_change(fd);
    Ok(())
}

/// `fd_renumber`: `from` takes `to`'s number, closing what `to` held; both
/// must be open (WasmEdge's `Environ::fdRenumber`).
pub fn renumber(fds: &mut FdTable, from: u32, to: u32) -> WasiResult {
    fds.get(from)?;
    if from == to {
        return Ok(());
    }
    fds.get(to)?;
    let moved = fds.remove(from)?;
    drop(fds.remove(to)?);
    fds.insert_at(to, moved);
    Ok(())
}

/// `fd_readdir`: entries from `cookie` on as WASI dirents (24-byte header,
/// then the name), the last one cut off when the buffer ends inside it.
/// Each entry's `d_next` is the kernel's offset after it, and a cookie is
/// such an offset (0: the start), as WasmEdge's `seekdir` takes it.
pub fn readdir(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    buf: u32,
    len: u32,
    cookie: u64,
    out: u32,
) -> WasiResult {
    mem.slice(buf, len)?;
    mem.pointer::<4>(out)?;
    let d = fds.get(fd)?;
    if !d.can(rights::FD_READDIR) {
        return Err(NOTCAPABLE);
    }
    // Refused before the seek below, which would move a file's position
    // (WasmEdge's `fdopendir` refuses a file before it seeks).
    if !matches!(d.entry, Entry::Dir(_)) {
        return Err(NOTDIR);
    }
    let raw = d.host_fd();
    // A failed seek (a cookie of 2^63 or more, which no entry gives) is
    // ignored, and the listing goes on from where it was, as WasmEdge's
    // `seekdir` goes on.
    // SAFETY: plain lseek on a directory descriptor.
    let _ = unsafe { libc::lseek(raw, cookie as i64, libc::SEEK_SET) };
    let mut written = 0usize;
    let target = mem.slice_mut(buf, len)?;
    // Room for a few records (one is at most 280 bytes) up to 32 KiB.
    let mut chunk = vec![0u8; (len as usize).clamp(1024, 32 * 1024)];
    'fill: while written < target.len() {
        // SAFETY: getdents64 writes at most `chunk.len()` bytes into it.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, raw, chunk.as_mut_ptr(), chunk.len()) };
        if n < 0 {
            match errno::last() {
                // A directory removed while open reads as ENOENT, which
                // glibc's `readdir`, and so WasmEdge, takes as its end
                // (POSIX has it so): a listing from cookie 0 is empty on
                // both (WasmEdge may still hand out what it read ahead).
                e if e == errno::NOENT => break,
                e => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
            let field = |o: usize, w: usize| &chunk[at + o..at + o + w];
            let ino = u64::from_ne_bytes(field(0, 8).try_into().unwrap_or_default());
            let next = u64::from_ne_bytes(field(8, 8).try_into().unwrap_or_default());
            let reclen = u16::from_ne_bytes(field(16, 2).try_into().unwrap_or_default()) as usize;
            let kind = chunk[at + 18];
            let name_area = &chunk[at + 19..at + reclen];
            let name = &name_area[..name_area
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_area.len())];
            let mut header = [0u8; 24];
            header[..8].copy_from_slice(&next.to_le_bytes());
            header[8..16].copy_from_slice(&ino.to_le_bytes());
            header[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            header[20] = dirent_type(kind);
            for part in [&header[..], name] {
                let take = part.len().min(target.len() - written);
                target[written..written + take].copy_from_slice(&part[..take]);
                written += take;
            }
            if written == target.len() {
                break 'fill;
            }
            at += reclen;
        }
    }
    mem.write_u32(out, written as u32)
}

/// The WASI file type of a `d_type` (WasmEdge's `fromFileType`).
fn dirent_type(kind: u8) -> u8 {
    match kind {
        libc::DT_BLK => 1,
        libc::DT_CHR => 2,
        libc::DT_DIR => 3,
        libc::DT_REG => 4,
        libc::DT_SOCK => 6,
        libc::DT_LNK => 7,
        _ => 0,
    }
}
