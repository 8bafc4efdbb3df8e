//! The `path_*` functions: opening, creating, removing, renaming and linking
//! below a directory descriptor, and the status of what a path names.
//!
//! Every path is resolved by the kernel beneath its directory
//! ([`super::beneath`]), never by joining strings. The rest follows
//! WasmEdge 0.14.1 (`VINode` in `lib/host/wasi/vinode.cpp`): the path is
//! resolved first, then the directory's rights are checked, then the call
//! is made; files are created with mode 0644 and opened with `O_NOFOLLOW`
//! unless the lookup flags ask to follow the last link.

use super::beneath::{self, Leaf, Trailing};
use super::fd::{filestat_times, write_filestat};
use crate::errno::{self, check, Errno, WasiResult, INVAL, ISDIR, NOENT, NOTCAPABLE, NOTDIR};
use crate::fd_table::{
    grants, imply, parse_fd_flags, rights, status_flags, Descriptor, Directory, Entry, FdTable,
    FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_RSYNC,
};
use crate::memory::GuestMemory;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;
const OFLAGS_CREAT: u16 = 1;
const OFLAGS_DIRECTORY: u16 = 2;
const OFLAGS_EXCL: u16 = 4;
const OFLAGS_TRUNC: u16 = 8;

/// The directory `dirfd` names and its rights (with what they imply).
struct Base<'a> {
    fd: BorrowedFd<'a>,
    rights: u64,
    inheriting: u64,
    /// At or below a `:readonly` directory.
    readonly: bool,
}

impl Base<'_> {
    fn require(&self, wanted: u64) -> WasiResult {
        if grants(self.rights, self.readonly, wanted) {
            Ok(())
        } else {
            Err(NOTCAPABLE)
        }
    }
}

fn base(fds: &FdTable, dirfd: u32) -> Result<Base<'_>, Errno> {
    let d = fds.get(dirfd)?;
    match &d.entry {
        Entry::Dir(dir) => Ok(Base {
            fd: dir.fd.as_fd(),
            rights: d.rights,
            inheriting: d.inheriting,
            readonly: d.readonly,
        }),
        _ => Err(NOTDIR),
    }
}

/// Lookup flags as WasmEdge casts them: one flag, else EINVAL.
fn lookup_follows(flags: u32) -> Result<bool, Errno> {
    if flags & !LOOKUP_SYMLINK_FOLLOW != 0 {
        return Err(INVAL);
    }
    Ok(flags & LOOKUP_SYMLINK_FOLLOW != 0)
}

/// WASI rights as WasmEdge casts them: bits past the last right are EINVAL.
fn parse_rights(value: u64) -> Result<u64, Errno> {
    if value & !rights::ALL != 0 {
        Err(INVAL)
    } else {
        Ok(value)
    }
}

fn path<'m>(mem: &'m GuestMemory<'_>, ptr: u32, len: u32) -> Result<&'m [u8], Errno> {
    mem.slice(ptr, len)
}

/// A copy of a checked path, kept for after the guest's memory is written:
/// only so much of it as the lookup reads before it refuses one too long
/// (a guest may pass gigabytes, which the host would copy).
fn copied(checked: &[u8]) -> Vec<u8> {
    checked[..checked.len().min(beneath::LONGEST_PATH + 1)].to_vec()
}

/// A path checked as WasmEdge checks it before the directory descriptor.
fn valid_path<'m>(mem: &'m GuestMemory<'_>, ptr: u32, len: u32) -> Result<&'m [u8], Errno> {
    let p = mem.slice(ptr, len)?;
    beneath::validate(p)?;
    Ok(p)
}

/// What `path_open` asks for, as the guest passed it.
pub struct Open {
    pub dirfd: u32,
    pub lookup: u32,
    pub path: u32,
    pub len: u32,
    pub oflags: u32,
    pub rights: u64,
    pub inheriting: u64,
    pub fdflags: u32,
    pub out: u32,
}

/// `path_open` (WasmEdge's `WasiPathOpen` and `VINode::pathOpen`): the new
/// descriptor keeps exactly the rights asked for, which the directory's
/// inheriting rights must cover.
pub fn open(mem: &mut GuestMemory<'_>, fds: &mut FdTable, o: &Open) -> WasiResult {
    let follow = lookup_follows(o.lookup)?;
    // WasmEdge casts the flags to 16 bits before it checks them.
    let oflags = o.oflags as u16;
    if oflags & !0xf != 0 {
        return Err(INVAL);
    }
    let mut base_rights = parse_rights(o.rights)?;
    let mut inheriting = parse_rights(o.inheriting)?;
    let fdflags = parse_fd_flags(o.fdflags)?;
    let name = path(mem, o.path, o.len)?;
    // Checked whole now, refused in its turn below.
    let valid = beneath::validate(name);
    let name = copied(name);
    mem.pointer::<4>(o.out)?;
    if oflags & OFLAGS_DIRECTORY != 0
        && base_rights & rights::FD_READ != 0
        && base_rights & rights::FD_WRITE != 0
    {
        return Err(ISDIR);
    }
    valid?;
    if oflags & OFLAGS_DIRECTORY != 0 {
        base_rights &= !rights::FD_SEEK;
    } else {
        base_rights &= !rights::PATH_FILESTAT_GET;
        inheriting &= !rights::PATH_FILESTAT_GET;
    }
    let mut required = rights::PATH_OPEN;
    if oflags & OFLAGS_CREAT != 0 {
        required |= rights::PATH_CREATE_FILE;
    }
    if oflags & OFLAGS_TRUNC != 0 {
        required |= rights::PATH_FILESTAT_SET_SIZE;
    }
    let mut required_inheriting = base_rights | inheriting;
    if fdflags & FDFLAGS_RSYNC != 0 {
        required_inheriting |= rights::FD_SYNC;
    }
    if fdflags & FDFLAGS_DSYNC != 0 {
        required_inheriting |= rights::FD_DATASYNC;
    }
    let read = base_rights & (rights::FD_READ | rights::FD_READDIR) != 0;
    let write = base_rights
        & (rights::FD_DATASYNC
            | rights::FD_WRITE
            | rights::FD_ALLOCATE
            | rights::FD_FILESTAT_SET_SIZE)
        != 0;

    let dir = base(fds, o.dirfd)?;
    let dir_readonly = dir.readonly;
    // The path is resolved before the rights are looked at, as on WasmEdge.
    let leaf = beneath::leaf(dir.fd, &name, follow, Trailing::Walked)?;
    dir.require(required)?;
    if imply(dir.inheriting) & required_inheriting != required_inheriting {
        return Err(NOTCAPABLE);
    }
    // Below a read-only preopen nothing is opened for writing on the host,
    // whatever rights remain (`FD_DATASYNC` alone would ask for it).
    let wants_write = write;
    let write = write && !dir_readonly;
    let mut flags = match (read, write) {
        (true, true) => libc::O_RDWR,
        (true, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        (false, false) if oflags == OFLAGS_DIRECTORY => libc::O_PATH,
        (false, false) => libc::O_RDONLY,
    };
    for (wasi, sys) in [
        (OFLAGS_CREAT, libc::O_CREAT),
        (OFLAGS_DIRECTORY, libc::O_DIRECTORY),
        (OFLAGS_EXCL, libc::O_EXCL),
    ] {
        if oflags & wasi != 0 {
            flags |= sys;
        }
    }
    if oflags & OFLAGS_TRUNC != 0 && write {
        flags |= libc::O_TRUNC;
    }
    flags |= status_flags(fdflags);
    if flags & libc::O_PATH != 0 {
        // O_PATH takes no other flag but these: `openat` (WasmEdge's) drops
        // the rest, `openat2` refuses them (EINVAL).
        flags &= libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    }
    // Where the kernel would say EMFILE: after every other check.
    fds.check_room()?;
    let opened = beneath::open_leaf(&leaf, flags)?;
    let is_dir = beneath::fstat(opened.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && wants_write && !write {
        // What the kernel says to a directory opened for writing, as it
        // does here below a writable preopen and on WasmEdge below either.
        return Err(ISDIR);
    }
    let entry = if is_dir {
        Entry::Dir(Directory {
            fd: opened,
            preopened: None,
        })
    } else {
        Entry::File(opened.into())
    };
    let mut descriptor = Descriptor::new(entry, base_rights, inheriting);
    descriptor.append = fdflags & FDFLAGS_APPEND != 0;
    descriptor.readonly = dir_readonly;
    let fd = fds.insert(descriptor);
    mem.write_u32(o.out, fd)
}

/// `path_filestat_get`.
pub fn filestat_get(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    lookup: u32,
    path_ptr: u32,
    len: u32,
    out: u32,
) -> WasiResult {
    let follow = lookup_follows(lookup)?;
    let name = path(mem, path_ptr, len)?;
    mem.pointer::<64>(out)?;
    beneath::validate(name)?;
    let lookup = Lookup {
        follow_last: follow,
        trailing: Trailing::Walked,
    };
    let leaf = leaf_with(fds, dirfd, name, rights::PATH_FILESTAT_GET, lookup)?;
    let st = beneath::stat_leaf(&leaf)?;
    write_filestat(mem, out, &st, false)
}

/// `path_filestat_set_times`.
#[allow(clippy::too_many_arguments)]
pub fn filestat_set_times(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    lookup: u32,
    path_ptr: u32,
    len: u32,
    atim: u64,
    mtim: u64,
    fst_flags: u32,
) -> WasiResult {
    let follow = lookup_follows(lookup)?;
    let times = filestat_times(atim, mtim, fst_flags)?;
    let name = valid_path(mem, path_ptr, len)?;
    let lookup = Lookup {
        follow_last: follow,
        trailing: Trailing::Walked,
    };
    let leaf = leaf_with(fds, dirfd, name, rights::PATH_FILESTAT_SET_TIMES, lookup)?;
    // SAFETY: `times` holds two timespecs; the name is one component of
    // `leaf.dir()`, and a link there is changed itself, not followed.
    check(unsafe {
        libc::utimensat(
            leaf.dir(),
            leaf.name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// How a call looks up its path's last component: WasmEdge's
/// `resolvePath` arguments for that call.
#[derive(Clone, Copy)]
struct Lookup {
    follow_last: bool,
    trailing: Trailing,
}

/// Creating, removing and renaming: a link in the last place is followed
/// and trailing slashes are dropped.
const MADE_OR_MOVED: Lookup = Lookup {
    follow_last: true,
    trailing: Trailing::Dropped,
};

/// Unlinking and reading a link: the last component as named.
const AS_NAMED: Lookup = Lookup {
    follow_last: false,
    trailing: Trailing::Walked,
};

/// Resolves `name`'s directory and checks `right` on `dirfd`, in WasmEdge's
/// order: a path no lookup could take (empty, absolute; and a NUL, which
/// WasmEdge refuses on reading the path) before the
/// descriptor, then the lookup, then the right.
fn leaf_with(
    fds: &FdTable,
    dirfd: u32,
    name: &[u8],
    right: u64,
    lookup: Lookup,
) -> Result<Leaf, Errno> {
    beneath::validate(name)?;
    let dir = base(fds, dirfd)?;
    let leaf = beneath::leaf(dir.fd, name, lookup.follow_last, lookup.trailing)?;
    dir.require(right)?;
    Ok(leaf)
}

/// `path_create_directory`.
pub fn create_directory(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    p: u32,
    len: u32,
) -> WasiResult {
    let name = valid_path(mem, p, len)?;
    let leaf = leaf_with(
        fds,
        dirfd,
        name,
        rights::PATH_CREATE_DIRECTORY,
        MADE_OR_MOVED,
    )?;
    // SAFETY: plain mkdirat on a directory descriptor and a C string.
    check(unsafe { libc::mkdirat(leaf.dir(), leaf.name.as_ptr(), 0o755) })
}

/// `path_remove_directory` and `path_unlink_file`.
pub fn remove(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    p: u32,
    len: u32,
    directory: bool,
) -> WasiResult {
    let (right, flags, lookup) = if directory {
        (
            rights::PATH_REMOVE_DIRECTORY,
            libc::AT_REMOVEDIR,
            MADE_OR_MOVED,
        )
    } else {
        (rights::PATH_UNLINK_FILE, 0, AS_NAMED)
    };
    let leaf = leaf_with(fds, dirfd, valid_path(mem, p, len)?, right, lookup)?;
    // SAFETY: plain unlinkat on a directory descriptor and a C string.
    check(unsafe { libc::unlinkat(leaf.dir(), leaf.name.as_ptr(), flags) })
}

/// Two paths, refused as a pair when either holds a NUL byte (WasmEdge
/// checks both texts before either descriptor).
fn two_paths<'m>(
    mem: &'m GuestMemory<'_>,
    old: (u32, u32, u32),
    new: (u32, u32, u32),
) -> Result<(&'m [u8], &'m [u8]), Errno> {
    let old_name = path(mem, old.1, old.2)?;
    let new_name = path(mem, new.1, new.2)?;
    if old_name.contains(&0) || new_name.contains(&0) {
        return Err(INVAL);
    }
    Ok((old_name, new_name))
}

/// `path_rename`.
pub fn rename(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    old: (u32, u32, u32),
    new: (u32, u32, u32),
) -> WasiResult {
    let (old_name, new_name) = two_paths(mem, old, new)?;
    let from = leaf_with(
        fds,
        old.0,
        old_name,
        rights::PATH_RENAME_SOURCE,
        MADE_OR_MOVED,
    )?;
    let to = leaf_with(
        fds,
        new.0,
        new_name,
        rights::PATH_RENAME_TARGET,
        MADE_OR_MOVED,
    )?;
    // SAFETY: plain renameat on directory descriptors and C strings.
    check(unsafe { libc::renameat(from.dir(), from.name.as_ptr(), to.dir(), to.name.as_ptr()) })
}

/// `path_link`: a hard link. With the follow flag a link in the last place
/// of either path is followed beneath its directory (WasmEdge applies the
/// old path's flags to both), so linkat itself never follows one.
pub fn link(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    old: (u32, u32, u32),
    lookup: u32,
    new: (u32, u32, u32),
) -> WasiResult {
    let follow_last = lookup_follows(lookup)?;
    let (old_name, new_name) = two_paths(mem, old, new)?;
    let lookup = Lookup {
        follow_last,
        trailing: Trailing::Walked,
    };
    // WasmEdge asks whether the new directory's descriptor exists first.
    fds.get(new.0)?;
    let from = leaf_with(fds, old.0, old_name, rights::PATH_LINK_SOURCE, lookup)?;
    let to = leaf_with(fds, new.0, new_name, rights::PATH_LINK_TARGET, lookup)?;
    // SAFETY: plain linkat on directory descriptors and C strings; without
    // AT_SYMLINK_FOLLOW a link is linked, not followed.
    check(unsafe {
        libc::linkat(
            from.dir(),
            from.name.as_ptr(),
            to.dir(),
            to.name.as_ptr(),
            0,
        )
    })
}

/// `path_symlink`: the link's text is stored as given; whether it leads
/// out is decided when a path through it is resolved.
pub fn symlink(
    mem: &GuestMemory<'_>,
    fds: &FdTable,
    target: (u32, u32),
    dirfd: u32,
    p: u32,
    len: u32,
) -> WasiResult {
    let text = path(mem, target.0, target.1)?;
    let name = path(mem, p, len)?;
    // WasmEdge refuses an empty text or name first, whatever the directory.
    if text.is_empty() || name.is_empty() {
        return Err(NOENT);
    }
    // WasmEdge refuses a link to an absolute path outright.
    if text.contains(&0) || name.contains(&0) || text.first() == Some(&b'/') {
        return Err(INVAL);
    }
    // Longer than the kernel takes: refused as it would be, after the
    // lookup, without a copy of it.
    let text = match text.len() < libc::PATH_MAX as usize {
        true => Some(std::ffi::CString::new(text).map_err(|_| INVAL)?),
        false => None,
    };
    // Then whether the descriptor exists, before the name is looked at.
    fds.get(dirfd)?;
    // WasmEdge looks the new name up with its "follow" lookup.
    let at = Lookup {
        follow_last: true,
        trailing: Trailing::Walked,
    };
    let leaf = leaf_with(fds, dirfd, name, rights::PATH_SYMLINK, at)?;
    let text = text.ok_or(errno::NAMETOOLONG)?;
    // SAFETY: plain symlinkat with C strings and a directory descriptor.
    check(unsafe { libc::symlinkat(text.as_ptr(), leaf.dir(), leaf.name.as_ptr()) })
}

/// `path_readlink`: the link's text, cut to the buffer.
#[allow(clippy::too_many_arguments)]
pub fn readlink(
    mem: &mut GuestMemory<'_>,
    fds: &FdTable,
    dirfd: u32,
    p: u32,
    len: u32,
    buf: u32,
    buf_len: u32,
    out: u32,
) -> WasiResult {
    // Every span first, then the path (WasmEdge's order).
    let name = mem.slice(p, len)?;
    mem.slice(buf, buf_len)?;
    mem.pointer::<4>(out)?;
    beneath::validate(name)?;
    let name = copied(name);
    let leaf = leaf_with(fds, dirfd, &name, rights::PATH_READLINK, AS_NAMED)?;
    let target = mem.slice_mut(buf, buf_len)?;
    // SAFETY: readlinkat writes at most `target.len()` bytes into it.
    let n = unsafe {
        libc::readlinkat(
            leaf.dir(),
            leaf.name.as_ptr(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    };
    if n < 0 {
        return Err(errno::last());
    }
    mem.write_u32(out, n as u32)
}
