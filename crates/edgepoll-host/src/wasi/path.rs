//! Opening files and directories below those preopened with `--dir`, and
//! their status. `..` and absolute paths are refused, so a guest cannot name
//! anything outside what `--dir` gave it.

use super::fd::{stat_from, write_filestat};
use crate::errno::{self, Errno, WasiResult, INVAL, NOTCAPABLE, NOTDIR};
use crate::fd_table::{rights, Descriptor, Entry, FdTable, FDFLAGS_APPEND};
use crate::memory::GuestMemory;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

const OFLAGS_CREAT: u32 = 1;
const OFLAGS_DIRECTORY: u32 = 2;
const OFLAGS_EXCL: u32 = 4;
const OFLAGS_TRUNC: u32 = 8;

/// The directory `dirfd` names, and its inheritable rights.
fn directory(fds: &FdTable, dirfd: u32) -> Result<(PathBuf, u64), Errno> {
    let d = fds.get(dirfd)?;
    match &d.entry {
        Entry::Dir { host, .. } => Ok((host.clone(), d.inheriting)),
        _ => Err(NOTDIR),
    }
}

fn resolve(dir: &Path, mem: &GuestMemory<'_>, path: u32, len: u32) -> Result<PathBuf, Errno> {
    let text = std::str::from_utf8(mem.slice(path, len)?).map_err(|_| INVAL)?;
    let mut resolved = dir.to_path_buf();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return Err(NOTCAPABLE),
        }
    }
    Ok(resolved)
}

/// What `path_open` asks for.
pub struct Open {
    pub dirfd: u32,
    pub path: u32,
    pub len: u32,
    pub oflags: u32,
    pub rights: u64,
    pub inheriting: u64,
    pub fdflags: u32,
    pub out: u32,
}

/// `path_open`: the new descriptor gets the rights asked for, as far as the
/// directory lets its files inherit them.
pub fn open(mem: &mut GuestMemory<'_>, fds: &mut FdTable, o: &Open) -> WasiResult {
    let (dir, inheritable) = directory(fds, o.dirfd)?;
    let target = resolve(&dir, mem, o.path, o.len)?;
    mem.pointer::<4>(o.out)?;
    let base = o.rights & inheritable;
    let inheriting = o.inheriting & inheritable;
    let is_dir = std::fs::metadata(&target)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if o.oflags & OFLAGS_DIRECTORY != 0 || is_dir {
        if !is_dir {
            return Err(NOTDIR);
        }
        let guest = String::from_utf8_lossy(mem.slice(o.path, o.len)?).into_owned();
        let fd = fds.insert(Descriptor::new(
            Entry::Dir {
                host: target,
                guest,
            },
            base | rights::PATH_OPEN,
            inheriting,
        ));
        return mem.write_u32(o.out, fd);
    }
    let write = base & rights::FD_WRITE != 0 || o.oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
    let read = base & rights::FD_READ != 0 || !write;
    let append = o.fdflags as u16 & FDFLAGS_APPEND != 0;
    let file = OpenOptions::new()
        .read(read)
        .write(write)
        .append(append)
        .create(o.oflags & OFLAGS_CREAT != 0)
        .create_new(o.oflags & OFLAGS_CREAT != 0 && o.oflags & OFLAGS_EXCL != 0)
        .truncate(o.oflags & OFLAGS_TRUNC != 0)
        .custom_flags(libc::O_CLOEXEC)
        .open(&target)
        .map_err(|e| errno::from_io(&e))?;
    let mut descriptor = Descriptor::new(Entry::File(file), base, inheriting);
    descriptor.append = append;
    let fd = fds.insert(descriptor);
    mem.write_u32(o.out, fd)
}

/// `path_filestat_get` (`follow`: lookup flag 1, follow symbolic links).
pub fn filestat_get(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    follow: bool,
    path: u32,
    len: u32,
    out: u32,
) -> WasiResult {
    let (dir, _) = directory(fds, dirfd)?;
    let target = resolve(&dir, mem, path, len)?;
    let meta = if follow {
        std::fs::metadata(&target)
    } else {
        std::fs::symlink_metadata(&target)
    }
    .map_err(|e| errno::from_io(&e))?;
    write_filestat(mem, out, &stat_from(&meta), false)
}
