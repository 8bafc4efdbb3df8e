//! Native code compiled from a module, kept for the next run of the same
//! bytes (like `wasmedge compile`, but automatic), in
//! `$EDGEPOLL_HOST_CACHE` (default `$XDG_CACHE_HOME/edgepoll-host` or
//! `~/.cache/edgepoll-host`; `EDGEPOLL_HOST_CACHE=off` disables it).
//!
//! The host runs that code outside any sandbox, so the cache must be the
//! host's alone: a guest that could write an entry could run code of its
//! choosing on the next start. Hence:
//! - a cache directory that a writable `--dir` holds (as `--dir .:.` from
//!   the home directory holds `~/.cache`) is not used, and its entries are
//!   removed before such a run's guest starts (a host running as root lets
//!   its guest rewrite a genuine entry) and when the run ends normally (one
//!   stopped by a signal, which a guest can bring about with a write to a
//!   pipe nobody reads, as on WasmEdge, leaves what its guest wrote, which
//!   the next point keeps from being run);
//! - the directory must be the user's own, writable by no one else;
//! - an entry is read only as the host writes it: a regular file of the
//!   user's, mode 0500 (a guest cannot make such a file: WASI has no chmod,
//!   and the host creates a guest's files 0644 less its umask, never
//!   executable), one link (not another entry linked in), and a header
//!   naming the module it was compiled from; checked on the file opened,
//!   not on its path, and read from it;
//! - a host running as root keeps no cache unless `EDGEPOLL_HOST_CACHE`
//!   names one: mode bits do not bind root, so a root guest given the
//!   default directory (by `--dir /:/`, say, in another run) could rewrite
//!   an entry, or move a 0500 file of its making in, and a host killed
//!   before its clean-up would leave it for the next run to execute. A
//!   directory named is the operator's word that no guest is given it.
//!
//! The code itself carries no checksum: an entry is written whole and on
//! disk before it takes its name ([`write_entry`]), and only this host
//! writes one, so what could change its bytes afterwards (the disk, or
//! the user, who can change the host's own binary as well) is outside
//! what a cache guards against. Hashing 5 MB would add milliseconds to
//! every start.
//!
//! Each build of a module is another entry (5 MB for the echo server), so
//! a developer's rebuilds would fill the disk: the cache keeps the
//! [`MAX_ENTRIES`] entries used last, and no more than [`MAX_BYTES`] of
//! them. A hit marks its entry used (its modification time); each entry
//! written removes the least recently used past those bounds, and
//! temporary files a stopped host left an hour ago.

use crate::runtime::Preopen;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// Where entries are kept, if anywhere.
pub enum Cache {
    Off,
    /// The host's alone: used.
    Private(PathBuf),
    /// A guest of this run can write there: not used, and emptied before
    /// the guest starts and at the end of the run ([`forget_exposed`]). Held open from before the
    /// guest ran: the guest may put a link in the path's place meanwhile.
    Exposed(std::fs::File),
}

/// What begins an entry: a tag, then the module's length and a hash of its
/// bytes other than the one in the entry's name.
const MAGIC: &[u8; 8] = b"EPHcache";
const HEADER: usize = 24;

/// An entry's mode: read and execute, the owner only. No file a guest makes
/// has an execute bit (see the module documentation).
const ENTRY_MODE: u32 = 0o500;

/// How many entries a cache keeps (see the module documentation).
pub const MAX_ENTRIES: usize = 64;

/// How many bytes of entries a cache keeps, at most.
pub const MAX_BYTES: u64 = 512 << 20;

/// The cache a run with these preopened directories may use.
pub fn open(preopens: &[Preopen]) -> Cache {
    let dir = match std::env::var_os("EDGEPOLL_HOST_CACHE") {
        Some(v) if v == "off" => return Cache::Off,
        Some(v) => PathBuf::from(v),
        // SAFETY: geteuid has no preconditions.
        None if unsafe { libc::geteuid() } == 0 => return Cache::Off,
        None => match std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        {
            Some(base) => base.join("edgepoll-host"),
            None => return Cache::Off,
        },
    };
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let Ok(dir) = made.and_then(|()| dir.canonicalize()) else {
        return Cache::Off;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    // Checked, and mended, on the directory opened, not by its path.
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dir);
    let Ok((opened, meta)) = opened.and_then(|d| d.metadata().map(|m| (d, m))) else {
        return Cache::Off;
    };
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Cache::Off;
    }
    // Made under a umask that took the owner's right to read or search it
    // (0177 leaves 0600): its entries could not be reached.
    if meta.mode() & 0o500 != 0o500 {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(meta.mode() & 0o7777 | 0o700);
        if opened.set_permissions(mode).is_err() {
            return Cache::Off;
        }
    }
    let guest_writes = |preopen: &Preopen| {
        !preopen.readonly && (preopen.host.canonicalize()).is_ok_and(|host| dir.starts_with(host))
    };
    match preopens.iter().any(guest_writes) {
        false => Cache::Private(dir),
        true => Cache::Exposed(opened),
    }
}

/// Compiles `bytes`, or takes the code compiled from them from the cache.
pub fn load(engine: &Engine, bytes: &[u8], cache: &Cache) -> wasmtime::Result<Module> {
    let Cache::Private(dir) = cache else {
        return Module::new(engine, bytes);
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let path = dir.join(format!("{:016x}.cwasm", hasher.finish()));
    let header = header(bytes);
    if let Some(entry) = read_entry(&path) {
        if let Some(code) = entry.strip_prefix(&header[..]) {
            // SAFETY: an entry as only this host writes it (see the module
            // documentation) from `Module::serialize` of this same build
            // (the name's hash includes the engine's compatibility hash),
            // for these very bytes (the header); wasmtime checks its own
            // header before use.
            if let Ok(module) = unsafe { Module::deserialize(engine, code) } {
                return Ok(module);
            }
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Ok(serialized) = module.serialize() {
        write_entry(&path, &[&header[..], &serialized].concat());
        prune(dir, MAX_ENTRIES, MAX_BYTES, std::time::SystemTime::now());
    }
    Ok(module)
}

/// Removes the least recently used entries of `dir` past `max_entries`
/// or `max_bytes` in all, and temporary files older than an hour (a host
/// stopped while writing one; a newer one may be another host's, at work).
fn prune(dir: &Path, max_entries: usize, max_bytes: u64, now: std::time::SystemTime) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries = Vec::new();
    for item in listing.flatten() {
        let name = item.file_name();
        let name = name.as_bytes();
        let Ok(meta) = item.metadata() else {
            continue;
        };
        let Ok(used) = meta.modified() else {
            continue;
        };
        if !is_entry_name(name) || !meta.is_file() {
            continue;
        }
        if !name.ends_with(b".cwasm") {
            let stale = now
                .duration_since(used)
                .is_ok_and(|age| age > std::time::Duration::from_secs(3600));
            if stale {
                let _ = std::fs::remove_file(item.path());
            }
            continue;
        }
        entries.push((used, meta.len(), item.path()));
    }
    // Newest first: the first that pass a bound and all after it go.
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let mut bytes = 0u64;
    for (kept, (_, len, path)) in entries.into_iter().enumerate() {
        bytes = bytes.saturating_add(len);
        if kept >= max_entries || bytes > max_bytes {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Empties an exposed cache of its entries: before a guest that could write
/// them runs (one before it may have), and after.
pub fn forget_exposed(cache: &Cache) {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let Cache::Exposed(held) = cache else {
        return;
    };
    // The directory held, wherever its path now leads.
    let fd = held.as_raw_fd();
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{fd}")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_entry_name(name.as_bytes()) {
            continue;
        }
        let Ok(name) = std::ffi::CString::new(name.as_bytes()) else {
            continue;
        };
        // SAFETY: a directory descriptor held open and a NUL-ended name.
        if unsafe { libc::unlinkat(fd, name.as_ptr(), 0) } != 0 {
            // A directory the guest made under an entry's name would keep
            // the entry from being written for good: it is moved to a name
            // no entry has (`aside-...`), with what it holds, as one
            // rename (removing a tree a guest made deep could take the
            // host's stack, and long).
            let aside = format!("aside-{}-{}", std::process::id(), unique());
            let Ok(aside) = std::ffi::CString::new(aside) else {
                continue;
            };
            // SAFETY: the same descriptor, and two NUL-ended names.
            unsafe { libc::renameat(fd, name.as_ptr(), fd, aside.as_ptr()) };
        }
    }
}

/// A number no other call in this process gets.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Whether `name` is one the host gives an entry or its temporary file:
/// sixteen hex digits, then `.cwasm` or `.tmp` and a process number.
fn is_entry_name(name: &[u8]) -> bool {
    let (hash, rest) = name.split_at(name.len().min(16));
    let pid = |digits: &[u8]| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
    hash.len() == 16
        && hash.iter().all(u8::is_ascii_hexdigit)
        && (rest == b".cwasm" || rest.strip_prefix(b".tmp").is_some_and(pid))
}

fn header(bytes: &[u8]) -> [u8; HEADER] {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (MAGIC, bytes).hash(&mut hasher);
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    header[16..].copy_from_slice(&hasher.finish().to_le_bytes());
    header
}

/// An entry's bytes, if it is one as the host writes it: checked on the
/// file opened (not a link, not a FIFO to hang on), then read from it, so
/// that no other file can take its place between the two. Marks it used
/// now (see [`prune`]).
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let as_written = meta.is_file() && meta.uid() == me && meta.mode() & 0o7777 == ENTRY_MODE;
    if !as_written || meta.nlink() != 1 {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    // The owner may set a file's times through any descriptor of it.
    let _ = file.set_modified(std::time::SystemTime::now());
    Some(bytes)
}

/// Writes an entry: to a new file (never one already there, nor where a
/// link there points), mode [`ENTRY_MODE`], on disk before it is renamed
/// into place (a crash leaves no entry whose code was never written). A
/// temporary file this host made and could not put in place is removed;
/// one it could not make (another host's, of the same process number in
/// another namespace) is left alone.
fn write_entry(path: &Path, contents: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(ENTRY_MODE)
        .open(&temp)
    else {
        return;
    };
    // Its mode exactly, whatever the umask took from it (0177 would leave
    // 0400, which no read takes for an entry).
    use std::os::unix::fs::PermissionsExt;
    let placed = file
        .set_permissions(std::fs::Permissions::from_mode(ENTRY_MODE))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if placed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// The entries used last stay, up to the count and the bytes; older
    /// ones go, as do temporary files an hour old; a newer temporary file
    /// and files of other names stay. A hit marks its entry used.
    #[test]
    fn the_cache_keeps_the_entries_used_last_within_its_bounds() {
        let dir = std::env::temp_dir().join(format!("edgepoll-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let now = SystemTime::now();
        let put = |name: &str, len: usize, age_secs: u64| {
            let path = dir.join(name);
            std::fs::write(&path, vec![0u8; len]).expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(now - Duration::from_secs(age_secs))
                .expect("set time");
        };
        // Six entries of 100 bytes, the newest first; a 30-byte one older.
        for i in 0..6u64 {
            put(&format!("{i:016x}.cwasm"), 100, 10 + i * 10);
        }
        put("00000000000000ff.cwasm", 30, 5000);
        put("00000000000000aa.tmp41", 10, 7200);
        put("00000000000000bb.tmp42", 10, 60);
        put("notes.txt", 10, 99_999);
        let names = || {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        // By count: four stay.
        prune(&dir, 4, u64::MAX, now);
        let mut expected: Vec<String> = (0..4u64).map(|i| format!("{i:016x}.cwasm")).collect();
        expected.extend(["00000000000000bb.tmp42".into(), "notes.txt".into()]);
        expected.sort();
        assert_eq!(names(), expected);
        // Used now (a hit), the oldest becomes the newest; by bytes, 250
        // keep two of the four.
        let oldest = dir.join(format!("{:016x}.cwasm", 3));
        std::fs::set_permissions(&oldest, std::os::unix::fs::PermissionsExt::from_mode(0o500))
            .expect("chmod");
        assert!(read_entry(&oldest).is_some(), "an entry as written");
        prune(&dir, 64, 250, SystemTime::now());
        let mut expected = vec![
            format!("{:016x}.cwasm", 0),
            format!("{:016x}.cwasm", 3),
            "00000000000000bb.tmp42".to_string(),
            "notes.txt".to_string(),
        ];
        expected.sort();
        assert_eq!(names(), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Only the names the host gives are removed from an exposed cache: a
    /// user's own files there (`notes.tmpl`, `a.cwasm`) stay.
    #[test]
    fn only_the_hosts_own_names_are_entries() {
        for name in ["0123456789abcdef.cwasm", "0123456789ABCDEF.tmp4242"] {
            assert!(is_entry_name(name.as_bytes()), "{name}");
        }
        for name in [
            "a.cwasm",
            "notes.tmpl",
            "0123456789abcdef.tmp",
            "0123456789abcdef.tmp1x",
            "0123456789abcdeg.cwasm",
            "0123456789abcdef.cwasm.bak",
            "",
        ] {
            assert!(!is_entry_name(name.as_bytes()), "{name}");
        }
    }

    /// An entry that cannot be put in place (a directory has its name)
    /// leaves no temporary file behind; one put in place is whole.
    #[test]
    fn an_entry_not_put_in_place_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("edgepoll-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let blocked = dir.join("0123456789abcdef.cwasm");
        std::fs::create_dir(&blocked).expect("a directory in the entry's place");
        write_entry(&blocked, b"code");
        let names = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&dir), ["0123456789abcdef.cwasm"]);
        let free = dir.join("fedcba9876543210.cwasm");
        write_entry(&free, b"code");
        assert_eq!(std::fs::read(&free).expect("the entry"), b"code");
        assert_eq!(names(&dir).len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
