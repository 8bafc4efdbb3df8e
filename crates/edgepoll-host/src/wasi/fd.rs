//! Descriptor functions: read, write, close, status and flags, file status,
//! seek, and the preopened directories' names. Checks run in WasmEdge's order
//! (argument values and pointers, then the descriptor, then its rights), and
//! the status comes from the host descriptor itself (`fstat`, `fcntl`), as
//! WasmEdge reports it.

use crate::errno::{self, check, Errno, WasiResult, BADF, INVAL, ISDIR, NOTCAPABLE, SPIPE};
use crate::fd_table::{
    parse_fd_flags, rights, Descriptor, Entry, FdTable, FDFLAGS_APPEND, FDFLAGS_DSYNC,
    FDFLAGS_NONBLOCK, FDFLAGS_RSYNC, FDFLAGS_SYNC,
};
use crate::memory::{iovec_buffer, GuestMemory};
use std::io::{Seek, SeekFrom};
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;

fn io_fd(d: &Descriptor) -> Result<RawFd, Errno> {
    d.host_fd().ok_or(ISDIR)
}

/// `fd_read` and `fd_write`.
pub fn read_or_write(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    fd: u32,
    iovs: u32,
    count: u32,
    out: u32,
    write: bool,
) -> WasiResult {
    let table = mem.iovec_table(iovs, count)?;
    mem.pointer::<4>(out)?;
    let mut vecs = iovec_buffer();
    let n = mem.gather(table, &mut vecs)?;
    let d = fds.get(fd)?;
    let needed = if write {
        rights::FD_WRITE
    } else {
        rights::FD_READ
    };
    if !d.can(needed) {
        return Err(NOTCAPABLE);
    }
    let raw = io_fd(d)?;
    // SAFETY: the iovecs point into guest memory, which stays borrowed; the
    // first `n` are initialized (gather).
    let r = unsafe {
        if write {
            if d.append {
                // WasmEdge's `INode::fdWrite` seeks to the end itself.
                libc::lseek(raw, 0, libc::SEEK_END);
            }
            libc::writev(raw, vecs.as_ptr().cast(), n as i32)
        } else {
            libc::readv(raw, vecs.as_ptr().cast(), n as i32)
        }
    };
    if r < 0 {
        return Err(errno::last());
    }
    mem.write_u32(out, r as u32)
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
    match (&d.entry, d.host_fd()) {
        (_, Some(fd)) => {
            // SAFETY: fstat writes one stat record.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            check(unsafe { libc::fstat(fd, &mut st) })?;
            Ok(st)
        }
        (Entry::Dir { host, .. }, None) => std::fs::metadata(host)
            .map(|meta| stat_from(&meta))
            .map_err(|e| errno::from_io(&e)),
        _ => Err(BADF),
    }
}

/// The fields of a `stat` that guests see, from file metadata.
pub fn stat_from(meta: &std::fs::Metadata) -> libc::stat {
    // SAFETY: zeroed stat is valid; only the fields set here are read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_mode = meta.mode();
    st.st_dev = meta.dev();
    st.st_ino = meta.ino();
    st.st_nlink = meta.nlink();
    st.st_size = meta.size() as i64;
    st.st_atime = meta.atime();
    st.st_atime_nsec = meta.atime_nsec();
    st.st_mtime = meta.mtime();
    st.st_mtime_nsec = meta.mtime_nsec();
    st.st_ctime = meta.ctime();
    st.st_ctime_nsec = meta.ctime_nsec();
    st
}

/// `fd_fdstat_get`: rights from the table, type and flags from the host.
pub fn fdstat_get(mem: &mut GuestMemory<'_>, fds: &FdTable, fd: u32, out: u32) -> WasiResult {
    mem.pointer::<24>(out)?;
    let d = fds.get(fd)?;
    mem.write_u64(out + 8, d.rights)?;
    mem.write_u64(out + 16, d.inheriting)?;
    let st = stat(d)?;
    let sys = match d.host_fd() {
        // SAFETY: plain fcntl on a descriptor the table holds.
        Some(fd) => unsafe { libc::fcntl(fd, libc::F_GETFL) },
        None => 0,
    };
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
    let mut sys = 0;
    if flags & FDFLAGS_NONBLOCK != 0 {
        sys |= libc::O_NONBLOCK;
    }
    if flags & FDFLAGS_DSYNC != 0 {
        sys |= libc::O_DSYNC;
    }
    if flags & FDFLAGS_RSYNC != 0 {
        sys |= libc::O_RSYNC;
    }
    if flags & FDFLAGS_SYNC != 0 {
        sys |= libc::O_SYNC;
    }
    if let Some(raw) = d.host_fd() {
        // SAFETY: plain fcntl on a descriptor the table holds.
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, sys) })?;
    }
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
    let nanos = |s: i64, ns: i64| (s.max(0) as u64) * 1_000_000_000 + ns.max(0) as u64;
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

/// `fd_prestat_get`: the length of a preopened directory's guest name.
pub fn prestat_get(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    preopens: &[u32],
    fd: u32,
    out: u32,
) -> WasiResult {
    match &fds.get(fd)?.entry {
        Entry::Dir { guest, .. } if preopens.contains(&fd) => {
            mem.write_u32(out, 0)?;
            mem.write_u32(out + 4, guest.len() as u32)
        }
        _ => Err(BADF),
    }
}

/// `fd_prestat_dir_name`.
pub fn prestat_dir_name(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    preopens: &[u32],
    fd: u32,
    path: u32,
    len: u32,
) -> WasiResult {
    match &fds.get(fd)?.entry {
        Entry::Dir { guest, .. } if preopens.contains(&fd) => {
            let bytes = guest.as_bytes();
            mem.write(path, &bytes[..bytes.len().min(len as usize)])
        }
        _ => Err(BADF),
    }
}

/// `fd_seek` (`whence`: 0 set, 1 current, 2 end) and `fd_tell` (`None`).
pub fn seek(
    mem: &mut GuestMemory<'_>,
    fds: &mut FdTable,
    fd: u32,
    to: Option<(i64, u32)>,
    out: u32,
) -> WasiResult {
    let Entry::File(file) = &mut fds.get_mut(fd)?.entry else {
        return Err(SPIPE);
    };
    let from = match to {
        None => SeekFrom::Current(0),
        Some((offset, 0)) => SeekFrom::Start(u64::try_from(offset).map_err(|_| INVAL)?),
        Some((offset, 1)) => SeekFrom::Current(offset),
        Some((offset, 2)) => SeekFrom::End(offset),
        Some(_) => return Err(INVAL),
    };
    let at = file.seek(from).map_err(|e| errno::from_io(&e))?;
    mem.write_u64(out, at)
}

/// `fd_sync` and `fd_datasync`.
pub fn sync(fds: &FdTable, fd: u32) -> WasiResult {
    match &fds.get(fd)?.entry {
        Entry::File(f) => f.sync_all().map_err(|e| errno::from_io(&e)),
        _ => Ok(()),
    }
}
