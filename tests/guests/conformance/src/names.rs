//! Changing names below a `:readonly` directory through a descriptor the
//! guest opened on it with every right it could ask for: what a read-only
//! directory must refuse, asked of the runtime directly (wasi-libc would use
//! the preopen's own descriptor, whose rights already refuse it).

use std::os::fd::AsRawFd;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
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
    // SAFETY: every pointer and length names a live string.
    unsafe {
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
    }
    Ok(())
}
