//! Descriptor functions: read, write, close, flags, stat, seek, and opening
//! files below directories preopened with `--dir`.

use crate::errno::{self, status, Errno, WasiResult, BADF, INVAL, ISDIR, NOTCAPABLE, NOTDIR};
use crate::fd_table::{Descriptor, Entry, FDFLAGS_APPEND, FDFLAGS_NONBLOCK};
use crate::host::{with_memory, Host};
use crate::memory::GuestMemory;
use std::fs::{Metadata, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use wasmtime::{Caller, Linker};

const M: &str = "wasi_snapshot_preview1";
/// Most buffers one vectored call passes on; more make a short transfer.
pub const MAX_IOVECS: usize = 64;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const OFLAGS_CREAT: u32 = 1;
const OFLAGS_DIRECTORY: u32 = 2;
const OFLAGS_EXCL: u32 = 4;
const OFLAGS_TRUNC: u32 = 8;

fn host_fd(d: &Descriptor) -> Result<RawFd, Errno> {
    match &d.entry {
        Entry::Stdio(fd) => Ok(*fd),
        Entry::File(f) => Ok(f.as_raw_fd()),
        Entry::Socket(s) => Ok(s.fd.as_raw_fd()),
        Entry::Dir { .. } => Err(ISDIR),
    }
}

/// Builds host iovecs that point straight into guest memory, so reads and
/// writes copy nothing on the way.
pub fn gather(
    mem: &mut GuestMemory<'_>,
    iovs: u32,
    count: u32,
    out: &mut [libc::iovec; MAX_IOVECS],
) -> Result<usize, Errno> {
    let base = mem.0.as_mut_ptr();
    let mut n = 0;
    for (buf, len) in mem.iovecs(iovs, count)? {
        if n == MAX_IOVECS {
            break; // a short transfer, which callers must accept anyway
        }
        // SAFETY: `iovecs` checked that buf..buf+len lies inside guest memory.
        out[n] = libc::iovec {
            iov_base: unsafe { base.add(buf as usize) }.cast(),
            iov_len: len as usize,
        };
        n += 1;
    }
    Ok(n)
}

fn readv(mem: &mut GuestMemory<'_>, fd: RawFd, iovs: u32, count: u32) -> Result<usize, Errno> {
    let mut vec = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let n = gather(mem, iovs, count, &mut vec)?;
    // SAFETY: the iovecs point into guest memory that stays borrowed for the call.
    let r = unsafe { libc::readv(fd, vec.as_ptr(), n as i32) };
    if r < 0 {
        Err(errno::last())
    } else {
        Ok(r as usize)
    }
}

fn writev(mem: &mut GuestMemory<'_>, fd: RawFd, iovs: u32, count: u32) -> Result<usize, Errno> {
    let mut vec = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let n = gather(mem, iovs, count, &mut vec)?;
    // SAFETY: as in `readv`.
    let r = unsafe { libc::writev(fd, vec.as_ptr(), n as i32) };
    if r < 0 {
        Err(errno::last())
    } else {
        Ok(r as usize)
    }
}

fn filetype(d: &Descriptor) -> u8 {
    match &d.entry {
        Entry::Stdio(_) => 2,
        Entry::Dir { .. } => 3,
        Entry::File(_) => 4,
        Entry::Socket(s) if s.kind == 1 => 5,
        Entry::Socket(_) => 6,
    }
}

fn meta_filetype(m: &Metadata) -> u8 {
    let t = m.file_type();
    if t.is_dir() {
        3
    } else if t.is_file() {
        4
    } else if t.is_symlink() {
        7
    } else if t.is_char_device() {
        2
    } else if t.is_block_device() {
        1
    } else if t.is_socket() {
        6
    } else {
        0
    }
}

fn write_filestat(
    mem: &mut GuestMemory<'_>,
    out: u32,
    m: Option<&Metadata>,
    filetype: u8,
) -> WasiResult {
    let mut record = [0u8; 64];
    if let Some(m) = m {
        record[0..8].copy_from_slice(&m.dev().to_le_bytes());
        record[8..16].copy_from_slice(&m.ino().to_le_bytes());
        record[24..32].copy_from_slice(&m.nlink().to_le_bytes());
        record[32..40].copy_from_slice(&m.size().to_le_bytes());
        let nanos = |s: i64, ns: i64| (s.max(0) as u64) * 1_000_000_000 + ns.max(0) as u64;
        record[40..48].copy_from_slice(&nanos(m.atime(), m.atime_nsec()).to_le_bytes());
        record[48..56].copy_from_slice(&nanos(m.mtime(), m.mtime_nsec()).to_le_bytes());
        record[56..64].copy_from_slice(&nanos(m.ctime(), m.ctime_nsec()).to_le_bytes());
    }
    record[16] = filetype;
    mem.write(out, &record)
}

/// Resolves a guest path below a preopened directory; `..` and absolute paths
/// are refused, so a guest cannot name anything outside what `--dir` gave it.
fn resolve(
    host: &mut Host,
    mem: &GuestMemory<'_>,
    dirfd: u32,
    path: u32,
    len: u32,
) -> Result<PathBuf, Errno> {
    let dir = match &host.fds.get(dirfd)?.entry {
        Entry::Dir { host, .. } => host.clone(),
        _ => return Err(NOTDIR),
    };
    let text = std::str::from_utf8(mem.slice(path, len)?).map_err(|_| INVAL)?;
    let mut resolved = dir;
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return Err(NOTCAPABLE),
        }
    }
    Ok(resolved)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    mem: &mut GuestMemory<'_>,
    host: &mut Host,
    dirfd: u32,
    path: u32,
    len: u32,
    oflags: u32,
    rights: u64,
    fdflags: u32,
    out: u32,
) -> WasiResult {
    let target = resolve(host, mem, dirfd, path, len)?;
    mem.read_u32(out)?;
    let is_dir = std::fs::metadata(&target)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if oflags & OFLAGS_DIRECTORY != 0 || is_dir {
        if !is_dir {
            return Err(NOTDIR);
        }
        let guest = String::from_utf8_lossy(mem.slice(path, len)?).into_owned();
        let fd = host.fds.insert(
            Entry::Dir {
                host: target,
                guest,
            },
            0,
        );
        host.poller.invalidate(fd);
        return mem.write_u32(out, fd);
    }
    let write = rights & RIGHT_FD_WRITE != 0 || oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
    let read = rights & RIGHT_FD_READ != 0 || !write;
    let file = OpenOptions::new()
        .read(read)
        .write(write)
        .append(fdflags as u16 & FDFLAGS_APPEND != 0)
        .create(oflags & OFLAGS_CREAT != 0)
        .create_new(oflags & OFLAGS_CREAT != 0 && oflags & OFLAGS_EXCL != 0)
        .truncate(oflags & OFLAGS_TRUNC != 0)
        .custom_flags(libc::O_CLOEXEC)
        .open(&target)
        .map_err(|e| errno::from_io(&e))?;
    let fd = host.fds.insert(Entry::File(file), fdflags as u16);
    host.poller.invalidate(fd);
    mem.write_u32(out, fd)
}

pub fn add_to_linker(
    linker: &mut Linker<Host>,
    name: &str,
    arity: usize,
) -> wasmtime::Result<bool> {
    match name {
        "fd_write" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, iovs: u32, n: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = host_fd(host.fds.get(fd)?)?;
                    mem.read_u32(out)?;
                    let written = writev(mem, raw, iovs, n)?;
                    mem.write_u32(out, written as u32)
                }))
            },
        )?,
        "fd_read" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, iovs: u32, n: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let raw = host_fd(host.fds.get(fd)?)?;
                    mem.read_u32(out)?;
                    let read = readv(mem, raw, iovs, n)?;
                    mem.write_u32(out, read as u32)
                }))
            },
        )?,
        "fd_close" => linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32| {
            let host = c.data_mut();
            let result = host.fds.remove(fd).map(drop);
            host.poller.invalidate(fd);
            status(result)
        })?,
        "fd_fdstat_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let d = host.fds.get(fd)?;
                    let mut record = [0u8; 24];
                    record[0] = filetype(d);
                    record[2..4].copy_from_slice(&d.flags.to_le_bytes());
                    record[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                    record[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
                    mem.write(out, &record)
                }))
            })?
        }
        "fd_fdstat_set_flags" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, flags: u32| {
                let host = c.data_mut();
                status((|| {
                    let d = host.fds.get_mut(fd)?;
                    let flags = flags as u16;
                    if let Entry::Socket(s) = &d.entry {
                        set_nonblocking(s.fd.as_raw_fd(), flags & FDFLAGS_NONBLOCK != 0)?;
                    }
                    d.flags = flags;
                    Ok(())
                })())
            })?
        }
        "fd_prestat_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    match &host.fds.get(fd)?.entry {
                        Entry::Dir { guest, .. } if host.preopens.contains(&fd) => {
                            mem.write_u32(out, 0)?;
                            mem.write_u32(out + 4, guest.len() as u32)
                        }
                        _ => Err(BADF),
                    }
                }))
            })?
        }
        "fd_prestat_dir_name" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, path: u32, len: u32| {
                status(with_memory(&mut c, |mem, host| {
                    match &host.fds.get(fd)?.entry {
                        Entry::Dir { guest, .. } if host.preopens.contains(&fd) => {
                            let bytes = guest.as_bytes();
                            mem.write(path, &bytes[..bytes.len().min(len as usize)])
                        }
                        _ => Err(BADF),
                    }
                }))
            },
        )?,
        "fd_filestat_get" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let d = host.fds.get(fd)?;
                    let meta = match &d.entry {
                        Entry::File(f) => Some(f.metadata().map_err(|e| errno::from_io(&e))?),
                        Entry::Dir { host, .. } => {
                            Some(std::fs::metadata(host).map_err(|e| errno::from_io(&e))?)
                        }
                        _ => None,
                    };
                    let kind = meta.as_ref().map_or(filetype(d), meta_filetype);
                    write_filestat(mem, out, meta.as_ref(), kind)
                }))
            })?
        }
        "path_filestat_get" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, dirfd: u32, flags: u32, path: u32, len: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let target = resolve(host, mem, dirfd, path, len)?;
                    let meta = if flags & 1 != 0 {
                        std::fs::metadata(&target)
                    } else {
                        std::fs::symlink_metadata(&target)
                    }
                    .map_err(|e| errno::from_io(&e))?;
                    write_filestat(mem, out, Some(&meta), meta_filetype(&meta))
                }))
            },
        )?,
        "fd_seek" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>, fd: u32, offset: i64, whence: u32, out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    let Entry::File(file) = &mut host.fds.get_mut(fd)?.entry else {
                        return Err(Errno(70)); // ESPIPE
                    };
                    let from = match whence {
                        0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| INVAL)?),
                        1 => SeekFrom::Current(offset),
                        2 => SeekFrom::End(offset),
                        _ => return Err(INVAL),
                    };
                    let at = file.seek(from).map_err(|e| errno::from_io(&e))?;
                    mem.write_u64(out, at)
                }))
            },
        )?,
        "fd_tell" => linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32, out: u32| {
            status(with_memory(&mut c, |mem, host| {
                let Entry::File(file) = &mut host.fds.get_mut(fd)?.entry else {
                    return Err(Errno(70));
                };
                let at = file.stream_position().map_err(|e| errno::from_io(&e))?;
                mem.write_u64(out, at)
            }))
        })?,
        "fd_sync" | "fd_datasync" => {
            linker.func_wrap(M, name, |mut c: Caller<'_, Host>, fd: u32| {
                let host = c.data_mut();
                status(match &host.fds.get(fd).map(|d| &d.entry) {
                    Ok(Entry::File(f)) => f.sync_all().map_err(|e| errno::from_io(&e)),
                    Ok(_) => Ok(()),
                    Err(e) => Err(*e),
                })
            })?
        }
        "path_open" => linker.func_wrap(
            M,
            name,
            |mut c: Caller<'_, Host>,
             dirfd: u32,
             _lookup: u32,
             path: u32,
             len: u32,
             oflags: u32,
             rights: u64,
             _inheriting: u64,
             fdflags: u32,
             out: u32| {
                status(with_memory(&mut c, |mem, host| {
                    path_open(mem, host, dirfd, path, len, oflags, rights, fdflags, out)
                }))
            },
        )?,
        _ => return crate::sock::add_to_linker(linker, name, arity),
    };
    Ok(true)
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> WasiResult {
    // SAFETY: fcntl on a descriptor we own; results are checked.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(errno::last());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags && libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(errno::last());
        }
    }
    Ok(())
}
