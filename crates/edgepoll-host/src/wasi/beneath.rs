//! Containment: every path a guest names is resolved by the kernel beneath
//! the directory descriptor it is relative to, with `openat2` and
//! `RESOLVE_BENEATH`. No path text is joined onto a host path, so a symbolic
//! link (absolute, relative, in the middle of a path, dangling, in a loop),
//! a `..` after a link or a directory renamed while a call runs cannot lead
//! outside what `--dir` gave the guest: the kernel refuses each step that
//! would, atomically with the lookup.
//!
//! Why `openat2` and not `cap-std`: on Linux cap-std does the same thing
//! (it calls `openat2` with `RESOLVE_BENEATH` where the kernel has it), but
//! reports an escape as an error with no errno, and WasmEdge answers
//! escapes with `EPERM`, which the guest must see here too. A kernel without
//! `openat2` (before 5.6) gets `ENOSYS` for every path call: containment
//! fails closed.
//!
//! A path with a link in its middle is walked a name at a time instead
//! (`walk`), as WasmEdge walks every path, so that its links count with the
//! last ones against WasmEdge's limit (the kernel follows forty): each
//! directory is opened with no link followed (`RESOLVE_NO_SYMLINKS`), so
//! every descriptor held is beneath the base, and `..` opens the one before
//! again by its names from the base, beneath it, never above it (`EPERM`).
//!
//! Operations on a path's last component (create, remove, rename, link,
//! read a link, status without following) open the parent directory beneath
//! the base, then name the last component relative to it; the last
//! component is then a single name, which no system call can follow out.

use crate::errno::{self, Errno, NOENT, PERM};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The last component of a path and the directory it is in.
pub struct Leaf {
    /// The directory holding the last component (opened `O_PATH`), or the
    /// base directory itself when the path has one component.
    parent: Option<OwnedFd>,
    base: RawFd,
    /// The last component: one name, never containing `/`; `.` when the
    /// path ends in `.` or `..` (then `parent` is the directory it names),
    /// and empty when it ends in `./` or `../`, which name nothing (every
    /// call's system call then answers ENOENT, as on WasmEdge).
    pub name: CString,
}

impl Leaf {
    /// The directory the name is relative to.
    pub fn dir(&self) -> RawFd {
        self.parent.as_ref().map_or(self.base, AsRawFd::as_raw_fd)
    }
}

/// WasmEdge's checks on a path's text, in its order, before it looks at the
/// directory descriptor: a NUL byte is `EINVAL`, empty is `ENOENT`, absolute
/// is `EPERM`.
pub fn validate(path: &[u8]) -> Result<(), Errno> {
    if path.contains(&0) {
        return Err(errno::INVAL);
    }
    if path.is_empty() {
        return Err(NOENT);
    }
    if path[0] == b'/' {
        return Err(PERM);
    }
    Ok(())
}

fn checked(path: &[u8]) -> Result<CString, Errno> {
    validate(path)?;
    CString::new(path).map_err(|_| errno::INVAL)
}

/// `openat2(base, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
/// An escape (`EXDEV` from the kernel) is `EPERM`, as on WasmEdge.
fn openat2(base: RawFd, path: &CString, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    openat2_resolving(base, path, flags, mode, 0)
}

/// [`openat2`] with more `RESOLVE_` flags (`RESOLVE_NO_SYMLINKS`: a link
/// anywhere in the path is `ELOOP`).
fn openat2_resolving(
    base: RawFd,
    path: &CString,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    // SAFETY: open_how is plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    // O_TMPFILE's bits include O_DIRECTORY's, so it is tested whole.
    if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
        how.mode = u64::from(mode);
    }
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | resolve;
    // A non-blocking open's EAGAIN may be the open's own (a file under
    // another process's lease, some devices), which no retry ends: a few
    // retries, then the guest is told EAGAIN, as a plain open tells it.
    // Any other is most likely the lookup's (a rename raced it), retried
    // many times, but not for ever: a file system that answers EAGAIN to
    // every open (some FUSE and network ones) would hold the guest's
    // thread spinning, and under --instances slow the others.
    let mut retries = match flags & libc::O_NONBLOCK {
        0 => 1024,
        _ => 64,
    };
    loop {
        // SAFETY: `how` is a valid open_how of the size passed; `path` is
        // NUL-terminated.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                base,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        match e {
            // Another thread renamed something during the lookup; the
            // kernel asks for a retry rather than risk a wrong answer.
            libc::EAGAIN if retries > 0 => retries -= 1,
            libc::EXDEV => return Err(PERM),
            _ => return Err(errno::from_linux(e)),
        }
    }
}

/// Files are created with mode 0644 (less the umask), as WasmEdge creates
/// them.
const FILE_MODE: u32 = 0o644;

/// Opens what a [`leaf`] names, never following a link there (the lookup
/// already followed the ones it should): WasmEdge's `O_NOFOLLOW`.
pub fn open_leaf(leaf: &Leaf, flags: i32) -> Result<OwnedFd, Errno> {
    openat2(leaf.dir(), &leaf.name, flags | libc::O_NOFOLLOW, FILE_MODE)
}

/// The status of what a [`leaf`] names (a link's own).
pub fn stat_leaf(leaf: &Leaf) -> Result<libc::stat, Errno> {
    // SAFETY: zeroed stat is valid; fstatat writes one record.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    errno::check(unsafe {
        libc::fstatat(
            leaf.dir(),
            leaf.name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `fstat` of a host descriptor (`O_PATH` ones included).
pub fn fstat(fd: RawFd) -> Result<libc::stat, Errno> {
    // SAFETY: zeroed stat is valid; fstat writes one record.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    errno::check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// What a path's trailing slashes mean for [`leaf`]; WasmEdge's lookup
/// differs by call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trailing {
    /// `name/` is walked as a directory: a link there is followed, a file
    /// is `ENOTDIR`, and a directory is the parent with the name `.`.
    Walked,
    /// The slashes are dropped (creating and removing directories,
    /// renaming).
    Dropped,
}

/// The longest name of one directory entry (Linux's `NAME_MAX`).
const NAME_MAX: i32 = 255;

/// The longest path the kernel resolves whole: a directory path and a name.
/// A longer one is walked a name at a time, as WasmEdge walks every path.
const LONGEST_WHOLE: usize = (libc::PATH_MAX + NAME_MAX) as usize;

/// The longest path a lookup reads (WasmEdge has no limit): a longer one is
/// `ENAMETOOLONG`, not copied into the host's memory (a guest may pass
/// gigabytes).
pub const LONGEST_PATH: usize = 1 << 20;

/// One more than the links one lookup follows, in the middle of a path and
/// in the last place together (WasmEdge's `kMaxNestedLinks`: its eighth is
/// `ELOOP`).
const MAX_LINKS: usize = 8;

/// Splits `path` into its directory, opened beneath `base`, and its last
/// component, as WasmEdge's lookup ends: a path that ends in `.` or `..`
/// names a directory, which is opened whole, and the name is `.` (empty
/// with a final slash after it: see [`Leaf::name`]); a link in
/// the last place is followed when `follow_last` says so (or a walked
/// trailing slash does), its text taking the link's name.
pub fn leaf(
    base: BorrowedFd<'_>,
    path: &[u8],
    follow_last: bool,
    trailing: Trailing,
) -> Result<Leaf, Errno> {
    validate(path)?;
    if path.len() > LONGEST_PATH {
        return Err(errno::NAMETOOLONG);
    }
    let base = base.as_raw_fd();
    if path.len() > LONGEST_WHOLE {
        return walk(base, path, follow_last, trailing);
    }
    let original = path;
    let mut path = path.to_vec();
    for _ in 0..MAX_LINKS {
        let walked = trailing == Trailing::Walked && path.last() == Some(&b'/');
        let end = path.iter().rposition(|&b| b != b'/').map_or(1, |i| i + 1);
        path.truncate(end);
        let last = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
        if walked && (last == b"." || last == b"..") {
            // WasmEdge's walk leaves an empty name for `./`, `a/../`, once
            // what leads there is found (a `..` above the base is EPERM, a
            // file before it ENOTDIR, as it walks): the call's own checks
            // come next, then its system call finds nothing there (ENOENT).
            return match split(base, &path) {
                Err(e) if walks(e) => walk(base, original, follow_last, trailing),
                split => Ok(Leaf {
                    name: CString::default(),
                    ..split?
                }),
            };
        }
        // A link in the middle counts against the same limit as the last
        // ones: such a path is walked a name at a time, as WasmEdge walks
        // every path (the kernel would follow forty).
        let leaf = match split(base, &path) {
            Err(e) if walks(e) => return walk(base, original, follow_last, trailing),
            split => split?,
        };
        if leaf.name.as_bytes() == b"." {
            return Ok(leaf);
        }
        // Only a link that is to be followed is read, as WasmEdge reads
        // one: reading it sets its access time.
        let text = match walked || follow_last {
            true => link_text(leaf.dir(), &leaf.name),
            false => None,
        };
        match text {
            Some(text) => {
                // The link's text replaces its name; an absolute one leads out.
                if text.first() == Some(&b'/') {
                    return Err(PERM);
                }
                let dir_len = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                path.truncate(dir_len);
                path.extend_from_slice(&text);
            }
            None if walked => {
                // One name at a time when the `/.` makes it too long.
                path.extend_from_slice(b"/.");
                return match split(base, &path) {
                    Err(e) if walks(e) => walk(base, original, follow_last, trailing),
                    split => split,
                };
            }
            None => return Ok(leaf),
        }
    }
    Err(errno::from_linux(libc::ELOOP))
}

/// Whether a whole-path lookup's failure is for the walk to settle: a link
/// in the middle (`ELOOP` under `RESOLVE_NO_SYMLINKS`), a directory part
/// longer than the kernel takes, or a permission refused on the way: the
/// kernel searches each directory a path passes, `noexec/..` too, where
/// WasmEdge's walk goes back to the one it holds (and reads `noexec/../f`
/// with `noexec` readable but not searchable).
fn walks(e: Errno) -> bool {
    e == errno::from_linux(libc::ELOOP)
        || e == errno::NAMETOOLONG
        || e == errno::from_linux(libc::EACCES)
}

/// [`leaf`] for a path with a link in the middle, or too long for the
/// kernel, as WasmEdge's
/// `resolvePath` walks every path: a name at a time from `base`, each
/// directory opened with no link followed (so every descriptor held is
/// beneath `base`), `..` back to the directory before (above `base`:
/// `EPERM`), and a link's text put in its place, counted with every other
/// link followed against [`MAX_LINKS`]. At most two descriptors are held at
/// once, however deep the path.
fn walk(base: RawFd, path: &[u8], follow_last: bool, trailing: Trailing) -> Result<Leaf, Errno> {
    // Where the walk is: the names of the directories from the base, and
    // the last one open. Only it is held (WasmEdge holds one per level: a
    // deep path would hold thousands of descriptors, past any share); `..`
    // opens the one before again, by its names from the base, beneath it.
    let mut dirs = Dirs {
        base,
        names: Vec::new(),
        open: None,
        walked_back: 0,
    };
    let mut path = path.to_vec();
    let mut at = 0;
    let mut links = 0;
    // An empty name (`./`, `a/../`) is one no system call finds, as on
    // WasmEdge (see `leaf`).
    let leaf_in = |dirs: Dirs, name: &[u8]| {
        Ok(Leaf {
            parent: dirs.open,
            base,
            name: CString::new(name).map_err(|_| errno::INVAL)?,
        })
    };
    loop {
        let here = dirs.fd();
        let rest = &path[at..];
        let slash = rest.iter().position(|&b| b == b'/');
        let end = at + slash.unwrap_or(rest.len());
        let mut next = end;
        while path.get(next) == Some(&b'/') {
            next += 1;
        }
        let remain = next < path.len();
        let last = !remain && (trailing == Trailing::Dropped || slash.is_none());
        let part = path[at..end].to_vec();
        if part == b"." || part == b".." {
            if part == b".." {
                dirs.up()?;
            }
            if last {
                return leaf_in(dirs, b".");
            }
            at = next;
            continue;
        }
        if last && !follow_last {
            return leaf_in(dirs, &part);
        }
        let name = CString::new(part.as_slice()).map_err(|_| errno::INVAL)?;
        // SAFETY: zeroed stat is valid; fstatat writes one record.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let stat =
            unsafe { libc::fstatat(here, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if stat != 0 {
            if last {
                return leaf_in(dirs, &part);
            }
            return Err(errno::last());
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                links += 1;
                if links >= MAX_LINKS {
                    return Err(errno::from_linux(libc::ELOOP));
                }
                let mut text = link_text(here, &name).ok_or_else(errno::last)?;
                if remain {
                    if text.last() != Some(&b'/') {
                        text.push(b'/');
                    }
                    text.extend_from_slice(&path[next..]);
                }
                if text.first() == Some(&b'/') {
                    return Err(PERM);
                }
                path = text;
                at = 0;
            }
            _ if last => return leaf_in(dirs, &part),
            libc::S_IFDIR => {
                let child =
                    openat2_resolving(here, &name, DIR_FLAGS, 0, libc::RESOLVE_NO_SYMLINKS)?;
                dirs.names.push(part);
                dirs.open = Some(child);
                if !remain {
                    return leaf_in(dirs, b".");
                }
                at = next;
            }
            _ => return Err(errno::NOTDIR),
        }
    }
}

const DIR_FLAGS: i32 = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;

/// Where a [`walk`] is.
struct Dirs {
    base: RawFd,
    /// The directories from the base to here, by name (none a link).
    names: Vec<Vec<u8>>,
    /// Here, unless here is the base.
    open: Option<OwnedFd>,
    /// The names opened again by `up` so far, against [`MOST_WALKED_BACK`].
    walked_back: usize,
}

/// The most names one walk opens again to go back up (`..`): each `..`
/// opens its directory again by its names from the base, so a path that
/// goes thousands of levels down and back up many times costs their
/// product. Past this (some 4 million, a few tenths of a second here;
/// 2100 levels down and all the way back up take half of it) the path is
/// `ENAMETOOLONG`: a guest's one call could otherwise hold the host
/// thread for minutes (262 144 levels down, then 100 000 `..`, fit in a
/// path of a MiB). WasmEdge, holding a descriptor per level, refuses
/// such paths far sooner, at its limit of descriptors (`EMFILE`).
const MOST_WALKED_BACK: usize = 1 << 22;

impl Dirs {
    fn fd(&self) -> RawFd {
        self.open.as_ref().map_or(self.base, AsRawFd::as_raw_fd)
    }

    /// To the directory before (above the base: `EPERM`), opened again
    /// beneath the base with no link followed, by its names from the base,
    /// as many in one `openat2` as the kernel takes in a path: one call but
    /// for the deepest trees, and a few there, where a name at a time made
    /// a walk with many `..` in a tree thousands deep take seconds.
    fn up(&mut self) -> Result<(), Errno> {
        self.names.pop().ok_or(PERM)?;
        self.walked_back += self.names.len();
        if self.walked_back > MOST_WALKED_BACK {
            return Err(errno::NAMETOOLONG);
        }
        let flags = DIR_FLAGS & !libc::O_NOFOLLOW;
        let mut open: Option<OwnedFd> = None;
        let mut names = self.names.iter().peekable();
        let mut path = Vec::new();
        while names.peek().is_some() {
            path.clear();
            // At least one name (none is longer than NAME_MAX), and as
            // many more as fit with their slashes and the NUL.
            while let Some(name) = names.next_if(|name| {
                path.is_empty() || path.len() + 1 + name.len() < libc::PATH_MAX as usize
            }) {
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
            }
            let here = open.as_ref().map_or(self.base, AsRawFd::as_raw_fd);
            let part = checked(&path)?;
            open = Some(openat2_resolving(
                here,
                &part,
                flags,
                0,
                libc::RESOLVE_NO_SYMLINKS,
            )?);
        }
        self.open = open;
        Ok(())
    }
}

/// The text of the link `name` in `dir`, or `None` when it is no link.
fn link_text(dir: RawFd, name: &CString) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most `buf.len()` bytes into it.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Splits `path` into the directory it names beneath `base_fd` (opened
/// with no link followed: a link in it is `ELOOP`, for [`walk`]) and its
/// last name.
fn split(base_fd: RawFd, path: &[u8]) -> Result<Leaf, Errno> {
    let whole = checked(path)?;
    let no_links = libc::RESOLVE_NO_SYMLINKS;
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&b""[..], path),
    };
    if name.is_empty() || name == b"." || name == b".." {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let parent = openat2_resolving(base_fd, &whole, flags, 0, no_links)?;
        return Ok(Leaf {
            parent: Some(parent),
            base: base_fd,
            name: c".".into(),
        });
    }
    let parent = if dir.is_empty() {
        None
    } else {
        Some(openat2_resolving(
            base_fd,
            &checked(dir)?,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            no_links,
        )?)
    };
    Ok(Leaf {
        parent,
        base: base_fd,
        name: CString::new(name).map_err(|_| errno::INVAL)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    /// The kernel's lookup beneath `base`, the primitive every call uses.
    fn open(base: BorrowedFd<'_>, path: &[u8], flags: i32) -> Result<OwnedFd, Errno> {
        openat2(base.as_raw_fd(), &checked(path)?, flags, FILE_MODE)
    }

    /// Opens `path` through [`leaf`], as `path_open` does.
    fn open_path(base: BorrowedFd<'_>, path: &[u8], follow: bool) -> Result<OwnedFd, Errno> {
        open_leaf(&leaf(base, path, follow, Trailing::Walked)?, libc::O_RDONLY)
    }

    /// A scratch tree: `inside/` is the base; `outside/secret` must never
    /// be reachable from it.
    struct Tree {
        root: std::path::PathBuf,
        base: std::fs::File,
    }

    impl Tree {
        fn new(name: &str) -> Tree {
            let root = std::env::temp_dir()
                .join(format!("edgepoll-beneath-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("inside/sub")).unwrap();
            std::fs::create_dir_all(root.join("outside")).unwrap();
            std::fs::write(root.join("outside/secret"), "secret").unwrap();
            std::fs::write(root.join("inside/sub/file"), "file").unwrap();
            let base = std::fs::File::open(root.join("inside")).unwrap();
            Tree { root, base }
        }
        fn link(&self, name: &str, target: &str) {
            symlink(target, self.root.join("inside").join(name)).unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// `noexec/../file`, `noexec` readable but not searchable: WasmEdge's
    /// walk goes back to the directory it holds, and reads `file`; the
    /// kernel's lookup of the whole path was refused (EACCES).
    #[test]
    fn a_dot_dot_after_a_directory_that_cannot_be_searched_goes_back() {
        let t = Tree::new("noexec");
        let noexec = t.root.join("inside/noexec");
        std::fs::create_dir(&noexec).unwrap();
        std::fs::write(t.root.join("inside/file"), "file").unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(&t.root, 0o755), (&t.root.join("inside"), 0o755)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(
            t.root.join("inside/file"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // Permissions bind root in no way: as root, the lookup runs in a
        // child as nobody (65534), on the base opened here. 0: read; 1:
        // refused.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            let read = open_path(t.base.as_fd(), b"noexec/../file", true);
            std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert!(read.is_ok(), "{read:?}");
            return;
        }
        let base = t.base.as_raw_fd();
        // SAFETY: the child calls setgid/setuid, the lookup (glibc's malloc
        // is fork-safe) and _exit; the parent waits for it.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            let code = unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    libc::_exit(2);
                }
                let base = BorrowedFd::borrow_raw(base);
                // A panic must not unwind into the child's copy of the
                // test harness.
                let read = std::panic::catch_unwind(|| open_path(base, b"noexec/../file", true));
                match read {
                    Ok(Ok(_)) => 0,
                    Ok(Err(_)) => 1,
                    Err(_) => 3,
                }
            };
            unsafe { libc::_exit(code) };
        }
        // Within 30 s: a child forked from a threaded harness that
        // deadlocked (on a lock another thread held at the fork) must fail
        // the test, not hang it.
        let mut status = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // SAFETY: polls the child forked above, which only this waits for.
            let got = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
            assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
            if got == child {
                break;
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: the child forked above, not yet reaped.
                unsafe { libc::kill(child, libc::SIGKILL) };
                // SAFETY: reaps it.
                unsafe { libc::waitpid(child, &mut status, 0) };
                panic!("the lookup as nobody did not end within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(libc::WIFEXITED(status), "{status}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "noexec/../file refused (2: could not become nobody, 65534: \
             run the tests where root can; 3: the lookup panicked)"
        );
        std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A link in the last place is read only when it is to be followed,
    /// as on WasmEdge: reading it sets its access time, which a stat of
    /// the link itself (or an unlink) must leave as it was.
    #[test]
    fn a_last_link_not_followed_is_not_read() {
        let t = Tree::new("atime");
        t.link("lnk", "sub/file");
        let path =
            std::ffi::CString::new(t.root.join("inside/lnk").as_os_str().as_bytes()).unwrap();
        let atime = || {
            // SAFETY: zeroed stat is valid; lstat writes one record.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::lstat(path.as_ptr(), &mut st) }, 0);
            st.st_atime
        };
        let set_old = || {
            // 2001: older than a day, so that relatime updates it on a read.
            let old = libc::timespec {
                tv_sec: 978_307_200,
                tv_nsec: 0,
            };
            let times = [old, old];
            let flags = libc::AT_SYMLINK_NOFOLLOW;
            // SAFETY: a valid path and two timespecs.
            assert_eq!(
                unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), flags) },
                0
            );
        };
        let base = t.base.as_fd();
        set_old();
        let l = leaf(base, b"lnk", false, Trailing::Dropped).unwrap();
        assert_eq!(l.name.as_bytes(), b"lnk");
        assert_eq!(atime(), 978_307_200, "the link was read, not only named");
        // That a read shows, here (a filesystem mounted noatime would not).
        let l = leaf(base, b"lnk", true, Trailing::Dropped).unwrap();
        assert_eq!(l.name.as_bytes(), b"file");
        assert_ne!(
            atime(),
            978_307_200,
            "following the link read it without setting its access time: \
             this filesystem does not keep access times (noatime); run the \
             tests with TMPDIR on one that does"
        );
    }

    #[test]
    fn links_that_lead_out_are_refused_with_eperm() {
        let t = Tree::new("out");
        t.link("abs", &t.root.join("outside/secret").display().to_string());
        t.link("rel", "../outside/secret");
        t.link("reldir", "../outside");
        t.link("subup", "sub/../../outside");
        t.link("dangling_out", "../outside/new");
        let base = t.base.as_fd();
        for path in [
            "abs",
            "rel",
            "reldir/secret",
            "subup/secret",
            "sub/../../outside/secret",
            "..",
            "sub/../..",
        ] {
            assert_eq!(
                open(base, path.as_bytes(), libc::O_RDONLY).err(),
                Some(PERM),
                "{path}"
            );
        }
        assert_eq!(
            open(base, b"dangling_out", libc::O_CREAT | libc::O_WRONLY).err(),
            Some(PERM)
        );
        assert!(!t.root.join("outside/new").exists());
        for path in ["rel", "abs", "reldir", "subup", "dangling_out"] {
            assert_eq!(
                open_path(base, path.as_bytes(), true).err(),
                Some(PERM),
                "{path} through leaf"
            );
        }
        assert_eq!(
            leaf(base, b"reldir/new", false, Trailing::Walked).err(),
            Some(PERM),
            "a parent through a link out"
        );
        assert_eq!(open(base, b"/etc/passwd", libc::O_RDONLY).err(), Some(PERM));
        assert_eq!(open(base, b"", libc::O_RDONLY).err(), Some(NOENT));
    }

    /// A path with a link in the middle is walked a name at a time (see
    /// `walk`): no link, `..` or absolute text leads it out, and its links
    /// count with the last ones, eight being too many.
    #[test]
    fn links_in_the_middle_are_walked_and_counted_and_lead_nowhere_out() {
        let t = Tree::new("middle");
        t.link("reldir", "../outside");
        t.link("subup", "sub/../../outside");
        t.link("tosub", "sub");
        t.link("abs", &t.root.join("outside").display().to_string());
        t.link("sub/up", "..");
        let base = t.base.as_fd();
        for path in [
            "reldir/secret",
            "subup/secret",
            "tosub/../../outside/secret",
            "abs/secret",
            "tosub/up/../outside/secret",
            "sub/up/../outside/secret",
        ] {
            for follow in [false, true] {
                assert_eq!(
                    open_path(base, path.as_bytes(), follow).err(),
                    Some(PERM),
                    "{path} follow={follow}"
                );
            }
        }
        assert!(open_path(base, b"tosub/up/tosub/file", false).is_ok());
        // Chains through directories: seven links in all are followed.
        for (name, links) in [("seven", 7), ("eight", 8)] {
            for i in 1..links {
                t.link(&format!("{name}{i}"), &format!("{name}{}", i + 1));
            }
            t.link(&format!("{name}{links}"), "sub");
        }
        assert!(open_path(base, b"seven1/file", false).is_ok());
        let too_many = Some(errno::from_linux(libc::ELOOP));
        assert_eq!(open_path(base, b"eight1/file", false).err(), too_many);
        assert_eq!(
            open_path(base, b"tosub/up/seven1/file", false).err(),
            too_many
        );
    }

    /// A `..` out of a directory deeper than the kernel takes as one path
    /// (2100 levels: 4200 bytes) goes back by names cut in two paths.
    #[test]
    fn a_dot_dot_deeper_than_a_whole_path_is_walked_back() {
        let t = Tree::new("deep");
        let mut here: OwnedFd = t.base.try_clone().expect("dup").into();
        for level in 1..=2100 {
            let fd = here.as_raw_fd();
            // SAFETY: plain calls on a descriptor held; the result is owned.
            here = unsafe {
                assert_eq!(libc::mkdirat(fd, c"d".as_ptr(), 0o755), 0);
                if level == 2100 {
                    let file =
                        libc::openat(fd, c"f".as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
                    assert!(file >= 0);
                    libc::close(file);
                }
                let next = libc::openat(fd, c"d".as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
                assert!(next >= 0);
                OwnedFd::from_raw_fd(next)
            };
        }
        let base = t.base.as_fd();
        let path = [b"d/".repeat(2100), b"../f".to_vec()].concat();
        assert!(open_path(base, &path, false).is_ok());
        let path = [b"d/".repeat(2100), b"../g".to_vec()].concat();
        assert_eq!(open_path(base, &path, false).err(), Some(NOENT));
        // Back and down again, across where the names are cut in two.
        let path = [b"d/".repeat(2100), b"../../../../d/d/d/f".to_vec()].concat();
        assert!(open_path(base, &path, false).is_ok());
        let path = [b"d/".repeat(2100), b"../".repeat(2100), b"f".to_vec()].concat();
        assert_eq!(open_path(base, &path, false).err(), Some(NOENT));
        let path = [b"d/".repeat(2100), b"../".repeat(2101), b"f".to_vec()].concat();
        assert_eq!(open_path(base, &path, false).err(), Some(PERM));
        // Down and back up until the names opened again pass
        // `MOST_WALKED_BACK`: refused, not walked on for as long as the
        // path goes (each round 2.2 million names).
        let round = [b"d/".repeat(2100), b"../".repeat(2100)].concat();
        assert!(open_path(base, &[round.clone(), b"d".to_vec()].concat(), false).is_ok());
        let rounds = [round.repeat(2), b"d".to_vec()].concat();
        assert_eq!(
            open_path(base, &rounds, false).err(),
            Some(errno::NAMETOOLONG)
        );
    }

    /// A path longer than the kernel takes is walked a name at a time, as
    /// WasmEdge walks every path: it opens (a directory part of 4096 bytes
    /// or more included); past [`LONGEST_PATH`] it is refused before it is
    /// copied.
    #[test]
    fn paths_longer_than_the_kernel_takes_are_walked() {
        let t = Tree::new("long");
        let base = t.base.as_fd();
        assert!(open_path(base, b"././sub/file", false).is_ok());
        let long = |len: usize, tail: &[u8]| {
            let mut path = b"./".repeat(len / 2);
            path.truncate(len - tail.len());
            if path.last() != Some(&b'/') {
                path.push(b'/');
            }
            path.extend_from_slice(tail);
            path
        };
        for len in [libc::PATH_MAX as usize + 8, 4352, 4353, 5000, 1 << 20] {
            let path = long(len, b"sub/file");
            assert!(
                open_path(base, &path, false).is_ok(),
                "{} bytes",
                path.len()
            );
            // Out of the base, however far in the path: EPERM.
            let out = long(len, b"sub/../../file");
            assert_eq!(open_path(base, &out, false).err(), Some(PERM));
        }
        let path = long(LONGEST_PATH + 2, b"sub/file");
        assert_eq!(
            open_path(base, &path, false).err(),
            Some(errno::NAMETOOLONG)
        );
    }

    #[test]
    fn links_that_stay_inside_are_followed() {
        let t = Tree::new("in");
        t.link("tosub", "sub");
        t.link("tofile", "sub/file");
        t.link("loop", "loop");
        let base = t.base.as_fd();
        assert!(open(base, b"tosub/file", libc::O_RDONLY).is_ok());
        assert!(open(base, b"tofile", libc::O_RDONLY).is_ok());
        assert!(open(base, b"sub/../tofile", libc::O_RDONLY).is_ok());
        assert_eq!(
            open(base, b"tofile", libc::O_RDONLY | libc::O_NOFOLLOW).err(),
            Some(errno::from_linux(libc::ELOOP))
        );
        assert_eq!(
            open(base, b"loop", libc::O_RDONLY).err(),
            Some(errno::from_linux(libc::ELOOP))
        );
        let link = open(base, b"tofile", libc::O_PATH | libc::O_NOFOLLOW).unwrap();
        let st = fstat(link.as_raw_fd()).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        let l = leaf(base, b"tosub/x", false, Trailing::Walked).unwrap();
        assert_eq!(l.name.as_bytes(), b"x");
        let l = leaf(base, b"tosub//", false, Trailing::Walked).unwrap();
        assert_eq!(l.name.as_bytes(), b"sub", "a walked link is followed");
        let l = leaf(base, b"sub//", false, Trailing::Walked).unwrap();
        assert_eq!(l.name.as_bytes(), b".");
        let l = leaf(base, b"sub/./", false, Trailing::Walked).unwrap();
        assert_eq!(l.name.as_bytes(), b"", "named nothing: found by no call");
        assert_eq!(open_leaf(&l, libc::O_RDONLY).err(), Some(NOENT));
        let l = leaf(base, b"tofile", false, Trailing::Walked).unwrap();
        assert_eq!(l.name.as_bytes(), b"tofile", "a last link is not followed");
        assert_eq!(
            leaf(base, b"sub/file/", false, Trailing::Walked).err(),
            Some(errno::from_linux(libc::ENOTDIR))
        );
        let l = leaf(base, b"tosub//", true, Trailing::Dropped).unwrap();
        assert_eq!(
            l.name.as_bytes(),
            b"sub",
            "the link is followed to its target"
        );
        assert_eq!(
            leaf(base, b"loop", true, Trailing::Dropped).err(),
            Some(errno::from_linux(libc::ELOOP))
        );
        assert!(open_path(base, b"tofile", true).is_ok());
        assert!(open_path(base, b"tosub/../tofile", true).is_ok());
        assert_eq!(
            open_path(base, b"tofile", false).err(),
            Some(errno::from_linux(libc::ELOOP))
        );
        let l = leaf(base, b"sub/..", true, Trailing::Dropped).unwrap();
        assert_eq!(l.name.as_bytes(), b".");
    }
}
