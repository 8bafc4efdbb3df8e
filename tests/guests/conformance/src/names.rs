//! Changing names below a `:readonly` directory through a descriptor the
//! guest opened on it with every right it could ask for: what a read-only
//! directory must refuse, asked of the runtime directly (wasi-libc would use
//! the preopen's own descriptor, whose rights already refuse it).

use std::os::fd::AsRawFd;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn path_open(
        fd: u32,
        dirflags: u32,
        path: *const u8,
        len: usize,
        oflags: u32,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u32,
        opened: *mut u32,
    ) -> u16;
    fn fd_filestat_set_times(fd: u32, atim: u64, mtim: u64, flags: u32) -> u16;
    fn fd_fdstat_get(fd: u32, stat: *mut u64) -> u16;
    fn fd_fdstat_set_rights(fd: u32, base: u64, inheriting: u64) -> u16;
    fn path_create_directory(fd: u32, path: *const u8, len: usize) -> u16;
    fn path_unlink_file(fd: u32, path: *const u8, len: usize) -> u16;
    fn path_link(
        old_fd: u32,
        old_flags: u32,
        old_path: *const u8,
        old_len: usize,
        new_fd: u32,
        new_path: *const u8,
        new_len: usize,
    ) -> u16;
    fn path_rename(
        fd: u32,
        old_path: *const u8,
        old_len: usize,
        new_fd: u32,
        new_path: *const u8,
        new_len: usize,
    ) -> u16;
}

/// The rights Rust's std asked for on each file it opened to read, before
/// it went through wasi-libc (`OpenOptions::rights_base`), by bit: the
/// read rights and, whatever the mode, those to change names and times.
const BROAD: u64 = {
    let bits = [
        1, 14, // FD_READ, FD_READDIR
        7, 3, 21, 23, 2, 4,
        5, // FD_ADVISE, _FDSTAT_SET_FLAGS, _FILESTAT_GET, _FILESTAT_SET_TIMES, _SEEK, _SYNC, _TELL
        9, 10, 18, 11, 12, 13,
        15, // PATH_CREATE_DIRECTORY, _CREATE_FILE, _FILESTAT_GET, _LINK_SOURCE, _LINK_TARGET, _OPEN, _READLINK
        25, 16, 17, 24, 26,
        27, // PATH_REMOVE_DIRECTORY, _RENAME_SOURCE, _RENAME_TARGET, _SYMLINK, _UNLINK_FILE, POLL_FD_READWRITE
    ];
    let mut rights = 0u64;
    let mut i = 0;
    while i < bits.len() {
        rights |= 1 << bits[i];
        i += 1;
    }
    rights
};

/// `path_open`'s flag for a directory.
const OFLAGS_DIRECTORY: u32 = 2;

/// Prints the errno (0: done) of each name change asked below `/data`,
/// with `/work` (writable) as the other end of a link or a rename.
pub fn readonly_names() -> Result<(), String> {
    let open = |path: &str| std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"));
    let (data, work) = (open("/data")?, open("/work")?);
    let (d, w) = (data.as_raw_fd() as u32, work.as_raw_fd() as u32);
    let name = |s: &'static str| (s.as_ptr(), s.len());
    let (sub, hello, link, moved) = (
        name("sub"),
        name("hello.txt"),
        name("link.txt"),
        name("moved.txt"),
    );
    // SAFETY: every pointer and length names a live string, and `file` is
    // a live u32.
    unsafe {
        // Opened to read, asking for every right a file could have (as
        // Rust's std long did): granted; setting its times is not.
        let mut file = 0u32;
        println!(
            "open_broad={}",
            path_open(d, 0, hello.0, hello.1, 0, BROAD, BROAD, 0, &mut file)
        );
        // Rights only shrink, so a descriptor may always be given the
        // rights it holds, even those it may not use below `/data`.
        // fdstat: filetype and flags, then base and inheriting rights.
        let mut stat = [0u64; 3];
        let held = fd_fdstat_get(file, stat.as_mut_ptr());
        println!(
            "set_own_rights={}",
            if held != 0 {
                held
            } else {
                fd_fdstat_set_rights(file, stat[1], stat[2])
            }
        );
        // FST_MTIM_NOW (8): set the modification time to now.
        println!("set_times={}", fd_filestat_set_times(file, 0, 0, 8));
        println!("mkdir={}", path_create_directory(d, sub.0, sub.1));
        println!(
            "link={}",
            path_link(d, 0, hello.0, hello.1, w, link.0, link.1)
        );
        println!(
            "rename={}",
            path_rename(d, hello.0, hello.1, w, moved.0, moved.1)
        );
        println!("unlink={}", path_unlink_file(d, hello.0, hello.1));
        // A directory asked for a right that writes (FD_DATASYNC, 1 << 0,
        // beside FD_READ, 1 << 1) is refused as the kernel refuses it to
        // `O_RDWR`: EISDIR, below a read-only directory as anywhere.
        let (dot, mut dir) = (name("."), 0u32);
        println!(
            "open_dir_to_write={}",
            path_open(d, 0, dot.0, dot.1, OFLAGS_DIRECTORY, 0b11, 0, 0, &mut dir)
        );
    }
    Ok(())
}
