//! The path_* and directory functions below a preopened directory, and every
//! way out of it a guest could try: links (absolute, relative, in the middle
//! of a path, dangling, looping), `..` after a link, absolute paths, a
//! directory renamed while it holds a link, hard links to what is outside,
//! and hostile arguments (pointers past memory, NUL bytes, bad flags).
//!
//! Run as `abi_transcript files` with `--dir /sandbox:DIR`, where the test
//! laid out DIR as `tests/tests/abi_transcript.rs` describes (`sandbox_tree`).

use crate::ffi::*;
use crate::memory::{read_u64, straddling, Buf};
use crate::transcript::Transcript;

/// The preopened directory: WasmEdge numbers preopens from 3.
const SANDBOX: u32 = 3;
const FOLLOW: u32 = 1;
const CREAT: u32 = 1;
const DIRECTORY: u32 = 2;
const EXCL: u32 = 4;
const TRUNC: u32 = 8;
const READ: u64 = 1 << 1;
const SEEK: u64 = 1 << 2;
const WRITE: u64 = 1 << 6;
const READDIR: u64 = 1 << 14;
const POLL: u64 = 1 << 27;

/// A path as the transcript shows it: a long one by its length and ends.
fn shown(path: &[u8]) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\0', "\\0");
    match path.len() {
        0..=200 => text(path),
        n => format!(
            "{n} bytes: {}...{}",
            text(&path[..8]),
            text(&path[n - 40..])
        ),
    }
}

fn lookup_name(lookup: u32) -> &'static str {
    if lookup & FOLLOW != 0 {
        "follow"
    } else {
        "nofollow"
    }
}

/// Opens `path`; on success reads what it holds (up to 64 bytes), closes
/// it, and prints the bytes, so a read from outside would show.
fn open_and_read(t: &mut Transcript, dirfd: u32, lookup: u32, path: &[u8]) {
    let name = Buf::from(path);
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            dirfd,
            lookup,
            name.ptr(),
            path.len() as u32,
            0,
            READ | SEEK,
            0,
            0,
            out.ptr(),
        )
    };
    let call = format!(
        "path_open({}, {}, {:?}, read)",
        t.fd(dirfd),
        lookup_name(lookup),
        shown(path)
    );
    if e != 0 {
        t.log(&call, e, "");
        return;
    }
    let fd = out.u32_at(0);
    let content = read_all(fd);
    // SAFETY: closing the descriptor just opened.
    unsafe { fd_close(fd) };
    t.log(&call, e, &format!("read={content:?}"));
}

fn read_all(fd: u32) -> String {
    read_up_to(fd, 64)
}

/// At most `room` bytes read from `fd`, as text.
fn read_up_to(fd: u32, room: u32) -> String {
    let data = Buf::zeroed(room as usize);
    let iov = {
        let mut iov = Buf::zeroed(8);
        iov.set_u32(0, data.ptr());
        iov.set_u32(4, room);
        iov
    };
    let n = Buf::zeroed(4);
    // SAFETY: the iovec points into `data`.
    let e = unsafe { fd_read(fd, iov.ptr(), 1, n.ptr()) };
    if e != 0 {
        return format!("<fd_read errno {e}>");
    }
    String::from_utf8_lossy(&data.bytes()[..n.u32_at(0) as usize]).into_owned()
}

/// Creates (or truncates) `path` for writing and writes a line into it.
fn create_and_write(t: &mut Transcript, lookup: u32, path: &[u8], oflags: u32) {
    let name = Buf::from(path);
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            lookup,
            name.ptr(),
            path.len() as u32,
            oflags,
            READ | WRITE | SEEK,
            0,
            0,
            out.ptr(),
        )
    };
    let call = format!(
        "path_open(sandbox, {}, {:?}, oflags={oflags}, write)",
        lookup_name(lookup),
        shown(path)
    );
    if e != 0 {
        t.log(&call, e, "");
        return;
    }
    let fd = out.u32_at(0);
    let data = Buf::from(b"planted\n");
    let mut iov = Buf::zeroed(8);
    iov.set_u32(0, data.ptr());
    iov.set_u32(4, 8);
    let n = Buf::zeroed(4);
    // SAFETY: the iovec points into `data`; then the new descriptor is closed.
    let w = unsafe { fd_write(fd, iov.ptr(), 1, n.ptr()) };
    unsafe { fd_close(fd) };
    t.log(&call, e, &format!("write={} n={}", w, n.u32_at(0)));
}

fn filestat(t: &mut Transcript, lookup: u32, path: &[u8]) {
    let name = Buf::from(path);
    let out = Buf::zeroed(64);
    // SAFETY: `out` holds a whole filestat record.
    let e = unsafe { path_filestat_get(SANDBOX, lookup, name.ptr(), path.len() as u32, out.ptr()) };
    let outs = if e == 0 {
        // A link's size is its text's length, which names a scratch path.
        let size = match out.bytes()[16] {
            7 => "-".to_string(),
            _ => read_u64(out.at(32)).to_string(),
        };
        format!("filetype={} size={size}", out.bytes()[16])
    } else {
        String::new()
    };
    t.log(
        &format!(
            "path_filestat_get(sandbox, {}, {:?})",
            lookup_name(lookup),
            shown(path)
        ),
        e,
        &outs,
    );
}

/// Calls a function of one directory and one path.
fn one_path(
    t: &mut Transcript,
    what: &str,
    path: &[u8],
    f: unsafe extern "C" fn(u32, u32, u32) -> u32,
) {
    let name = Buf::from(path);
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { f(SANDBOX, name.ptr(), path.len() as u32) };
    t.log(&format!("{what}(sandbox, {:?})", shown(path)), e, "");
}

/// Calls a function of two paths, each passed as pointer and length, and
/// logs it as `{call}"from", "to")`.
fn two_paths(
    t: &mut Transcript,
    call: &str,
    from: &[u8],
    to: &[u8],
    f: impl FnOnce((u32, u32), (u32, u32)) -> u32,
) {
    let (a, b) = (Buf::from(from), Buf::from(to));
    let e = f((a.ptr(), from.len() as u32), (b.ptr(), to.len() as u32));
    t.log(&format!("{call}{:?}, {:?})", shown(from), shown(to)), e, "");
}

fn rename(t: &mut Transcript, from: &[u8], to: &[u8]) {
    // SAFETY: the runtime checks the pointers.
    two_paths(t, "path_rename(", from, to, |(a, al), (b, bl)| unsafe {
        path_rename(SANDBOX, a, al, SANDBOX, b, bl)
    });
}

fn link(t: &mut Transcript, lookup: u32, from: &[u8], to: &[u8]) {
    let call = format!("path_link({}, ", lookup_name(lookup));
    // SAFETY: the runtime checks the pointers.
    two_paths(t, &call, from, to, |(a, al), (b, bl)| unsafe {
        path_link(SANDBOX, lookup, a, al, SANDBOX, b, bl)
    });
}

fn symlink(t: &mut Transcript, target: &[u8], at: &[u8]) {
    // SAFETY: the runtime checks the pointers.
    two_paths(t, "path_symlink(", target, at, |(a, al), (b, bl)| unsafe {
        path_symlink(a, al, SANDBOX, b, bl)
    });
}

fn readlink(t: &mut Transcript, path: &[u8], room: u32) {
    let name = Buf::from(path);
    let buf = Buf::zeroed(room.max(1) as usize);
    let used = Buf::zeroed(4);
    // SAFETY: the runtime checks the pointers.
    let e = unsafe {
        path_readlink(
            SANDBOX,
            name.ptr(),
            path.len() as u32,
            buf.ptr(),
            room,
            used.ptr(),
        )
    };
    let outs = if e == 0 {
        let n = used.u32_at(0) as usize;
        format!("text={:?}", String::from_utf8_lossy(&buf.bytes()[..n]))
    } else {
        String::new()
    };
    t.log(
        &format!("path_readlink({:?}, {room} bytes)", shown(path)),
        e,
        &outs,
    );
}

/// Opens `path` in the sandbox as a directory with the right to list it
/// alone: the errno, and the descriptor (when it is 0).
fn open_to_list(path: &[u8]) -> (u32, u32) {
    let (name, out) = (Buf::from(path), Buf::zeroed(4));
    let len = path.len() as u32;
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            0,
            name.ptr(),
            len,
            DIRECTORY,
            READDIR,
            0,
            0,
            out.ptr(),
        )
    };
    (e, out.u32_at(0))
}

/// The sandbox's entries by name (sorted: the order is the file system's),
/// read with a buffer of `room` bytes at a time.
fn list(t: &mut Transcript, room: u32) {
    let (e, dir) = open_to_list(b".");
    if e != 0 {
        t.log("path_open(sandbox, \".\", directory)", e, "");
        return;
    }
    let mut names = Vec::new();
    let mut cookie = 0u64;
    let mut calls = 0;
    let mut status;
    'read: loop {
        let buf = Buf::zeroed(room as usize);
        let used = Buf::zeroed(4);
        calls += 1;
        // SAFETY: `buf` holds `room` bytes.
        status = unsafe { fd_readdir(dir, buf.ptr(), room, cookie, used.ptr()) };
        if status != 0 || calls > 1000 {
            break;
        }
        let used = used.u32_at(0) as usize;
        let bytes = &buf.bytes()[..used];
        let mut at = 0;
        while at + 24 <= used {
            let next = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
            let len =
                u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap_or_default()) as usize;
            let kind = bytes[at + 20];
            if at + 24 + len > used {
                break;
            }
            names.push(format!(
                "{}:{kind}",
                String::from_utf8_lossy(&bytes[at + 24..at + 24 + len])
            ));
            cookie = next;
            at += 24 + len;
        }
        if used < room as usize {
            break 'read;
        }
    }
    // SAFETY: closing the descriptor just opened.
    unsafe { fd_close(dir) };
    names.sort();
    t.log(
        &format!("fd_readdir(sandbox, {room}-byte buffer)"),
        status,
        &format!("entries=[{}]", names.join(" ")),
    );
}

/// Read subscriptions on a regular file and on the sandbox, and a 10 ms
/// clock (WasmEdge waits without a limit when nothing else can wake it).
fn poll_file_and_directory(t: &mut Transcript) {
    let name = Buf::from(b"file.txt");
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            FOLLOW,
            name.ptr(),
            8,
            0,
            READ | POLL,
            0,
            0,
            out.ptr(),
        )
    };
    if e != 0 {
        t.log("path_open(\"file.txt\", read and poll)", e, "");
        return;
    }
    let file = out.u32_at(0);
    let mut subs = Buf::zeroed(48 * 3);
    for (i, (fd, tag)) in [(file, 1u8), (SANDBOX, 1), (0, 0)].iter().enumerate() {
        let at = 48 * i;
        subs.set_u64(at, 100 + i as u64);
        subs.bytes_mut()[at + 8] = *tag;
        if *tag == 0 {
            subs.set_u32(at + 16, 1); // the monotonic clock
            subs.set_u64(at + 24, 10_000_000);
        } else {
            subs.set_u32(at + 16, *fd);
        }
    }
    let events = Buf::zeroed(32 * 3);
    let count = Buf::zeroed(4);
    // SAFETY: the buffers hold three subscriptions and three events.
    let e = unsafe { poll_oneoff(subs.ptr(), events.ptr(), 3, count.ptr()) };
    let n = count.u32_at(0) as usize;
    let mut shown: Vec<String> = (0..n.min(3))
        .map(|i| {
            let at = 32 * i;
            format!(
                "{}:error={},type={}",
                read_u64(events.at(at)),
                u16::from_le_bytes([events.bytes()[at + 8], events.bytes()[at + 9]]),
                events.bytes()[at + 10]
            )
        })
        .collect();
    shown.sort();
    t.log(
        "poll_oneoff(file read, sandbox read, clock 10 ms)",
        e,
        &format!("n={n} [{}]", shown.join(" ")),
    );
    // SAFETY: closing the descriptor opened above.
    unsafe { fd_close(file) };
}

pub fn files(t: &mut Transcript) {
    t.section("fd_prestat_get / fd_prestat_dir_name");
    // The record filled with 0xFF first: what the call leaves shows.
    let mut pre = Buf::zeroed(8);
    pre.set_u32(0, u32::MAX);
    // SAFETY: the runtime checks the pointers.
    let e = unsafe { fd_prestat_get(SANDBOX, pre.ptr()) };
    t.log(
        "fd_prestat_get(sandbox)",
        e,
        &format!("record={:02x?} len={}", &pre.bytes()[..4], pre.u32_at(4)),
    );
    for room in [0u32, 4, 8, 64] {
        let name = Buf::zeroed(64);
        // SAFETY: `name` holds 64 bytes.
        let e = unsafe { fd_prestat_dir_name(SANDBOX, name.ptr(), room) };
        let text = String::from_utf8_lossy(&name.bytes()[..room.min(8) as usize]).replace('\0', "");
        t.log(
            &format!("fd_prestat_dir_name(sandbox, {room})"),
            e,
            &format!("name={text:?}"),
        );
    }
    for fd in [0u32, 1, 2, 4, u32::MAX] {
        // SAFETY: the runtime checks the pointer.
        let e = unsafe { fd_prestat_get(fd, pre.ptr()) };
        t.log(&format!("fd_prestat_get({})", fd as i32), e, "");
    }
    // A record past the end of memory: which is checked first, the
    // descriptor or the pointer.
    for fd in [SANDBOX, 99] {
        // SAFETY: the runtime checks the pointer.
        let e = unsafe { fd_prestat_get(fd, straddling(8)) };
        t.log(&format!("fd_prestat_get({fd}, straddling)"), e, "");
    }

    t.section("path_open for reading: inside, and every way out");
    let paths: [&[u8]; 18] = [
        b"file.txt",
        b"sub/inner.txt",
        b"./sub/../file.txt",
        b"link_file",
        b"link_mid/inner.txt",
        b"sub/up/file.txt",
        b"link_abs",
        b"link_rel",
        b"linkdir/secret.txt",
        b"sub/upup/outside/secret.txt",
        b"link_mid/../../outside/secret.txt",
        b"../outside/secret.txt",
        b"/etc/passwd",
        b"loop",
        b"loop/x",
        b"missing.txt",
        b"file.txt/",
        b"",
    ];
    for path in paths {
        open_and_read(t, SANDBOX, FOLLOW, path);
    }
    // Longer than the kernel resolves whole (4096 bytes of directories,
    // 4351 in all): WasmEdge walks a path a name at a time.
    for (dots, tail) in [
        (2100, &b"sub/inner.txt"[..]),
        (5000, b"sub/../file.txt"),
        (5000, b"sub/../../outside/secret.txt"),
        (2100, b"link_mid/inner.txt"),
    ] {
        open_and_read(
            t,
            SANDBOX,
            FOLLOW,
            &[b"./".repeat(dots), tail.to_vec()].concat(),
        );
    }
    for path in [
        &b"link_file"[..],
        b"link_abs",
        b"link_rel",
        b"sub/up/file.txt",
    ] {
        open_and_read(t, SANDBOX, 0, path);
    }
    // A directory named with a final slash, whose path the kernel takes
    // whole (4095 bytes) but not with the `/.` that opens it as a
    // directory: walked, as WasmEdge walks every path.
    let to_sub = [b"./".repeat(2046), b"sub/".to_vec()].concat();
    open_and_read(t, SANDBOX, FOLLOW, &to_sub);
    filestat(t, FOLLOW, &to_sub);

    t.section("path_open creating files: through links that lead out, and inside");
    create_and_write(t, FOLLOW, b"linkdir/new.txt", CREAT);
    create_and_write(t, FOLLOW, b"dangling_out", CREAT);
    create_and_write(t, 0, b"dangling_out", CREAT);
    create_and_write(t, FOLLOW, b"sub/upup/outside/new.txt", CREAT);
    create_and_write(t, FOLLOW, b"dangling_in", CREAT);
    create_and_write(t, FOLLOW, b"made.txt", CREAT | EXCL);
    create_and_write(t, FOLLOW, b"made.txt", CREAT | EXCL);
    create_and_write(t, FOLLOW, b"made.txt", TRUNC);
    open_and_read(t, SANDBOX, FOLLOW, b"made.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"sub/new_from_link.txt");

    t.section("path_filestat_get");
    for path in [
        &b"file.txt"[..],
        b"sub",
        b"link_file",
        b"link_rel",
        b"link_abs",
        b"linkdir",
        b"loop",
        b"sub/upup",
    ] {
        filestat(t, FOLLOW, path);
        filestat(t, 0, path);
    }

    t.section("directories, names and links below the sandbox, and through links out");
    one_path(t, "path_create_directory", b"newdir", path_create_directory);
    one_path(t, "path_create_directory", b"newdir", path_create_directory);
    one_path(
        t,
        "path_create_directory",
        b"linkdir/newdir",
        path_create_directory,
    );
    one_path(
        t,
        "path_create_directory",
        b"sub/upup/outside/newdir",
        path_create_directory,
    );
    one_path(
        t,
        "path_unlink_file",
        b"linkdir/secret.txt",
        path_unlink_file,
    );
    one_path(t, "path_unlink_file", b"newdir", path_unlink_file);
    one_path(
        t,
        "path_remove_directory",
        b"linkdir",
        path_remove_directory,
    );
    one_path(
        t,
        "path_remove_directory",
        b"file.txt",
        path_remove_directory,
    );
    one_path(t, "path_remove_directory", b"sub", path_remove_directory);
    one_path(t, "path_remove_directory", b"newdir", path_remove_directory);
    rename(t, b"linkdir/secret.txt", b"stolen.txt");
    rename(t, b"made.txt", b"linkdir/planted.txt");
    rename(t, b"made.txt", b"sub/renamed.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"sub/renamed.txt");
    link(t, 0, b"linkdir/secret.txt", b"hard.txt");
    link(t, FOLLOW, b"link_rel", b"hard.txt");
    link(t, 0, b"link_rel", b"hard_to_link");
    link(t, FOLLOW, b"link_file", b"hard_file.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"hard_file.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"hard_to_link");
    symlink(t, b"../outside", b"newlink");
    open_and_read(t, SANDBOX, FOLLOW, b"newlink/secret.txt");
    symlink(t, b"/etc", b"abslink");
    symlink(t, b"file.txt", b"file.txt");
    symlink(t, b"sub/inner.txt", b"good_link");
    open_and_read(t, SANDBOX, FOLLOW, b"good_link");
    readlink(t, b"link_rel", 64);
    readlink(t, b"link_rel", 4);
    readlink(t, b"file.txt", 64);
    readlink(t, b"linkdir/secret.txt", 64);

    t.section("a directory renamed while it holds links");
    rename(t, b"sub", b"sub2");
    open_and_read(t, SANDBOX, FOLLOW, b"sub2/up/file.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"sub2/upup/outside/secret.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"sub2/abs_up/etc/passwd");
    rename(t, b"sub2", b"sub");
    rename(t, b"link_mid", b"link_mid2");
    rename(t, b"linkdir", b"linkdir2");
    one_path(
        t,
        "path_create_directory",
        b"dangling_in",
        path_create_directory,
    );
    one_path(
        t,
        "path_create_directory",
        b"dangling_out",
        path_create_directory,
    );

    t.section("path_filestat_set_times");
    for (lookup, path) in [
        (FOLLOW, &b"file.txt"[..]),
        (FOLLOW, b"link_rel"),
        (0, b"link_rel"),
        (FOLLOW, b"linkdir/secret.txt"),
    ] {
        let name = Buf::from(path);
        // SAFETY: the runtime checks the pointer.
        let e = unsafe {
            path_filestat_set_times(
                SANDBOX,
                lookup,
                name.ptr(),
                path.len() as u32,
                1_000_000_000,
                2_000_000_000,
                1 | 4,
            )
        };
        t.log(
            &format!(
                "path_filestat_set_times({}, {:?})",
                lookup_name(lookup),
                shown(path)
            ),
            e,
            "",
        );
    }

    set_times_through_a_directory(t);

    t.section("WasmEdge's lookup: nested links, followed last links, ./");
    // c1 -> c2 -> ... -> c8 -> file.txt; d1 -> ... -> d7 -> file.txt.
    open_and_read(t, SANDBOX, FOLLOW, b"c1");
    open_and_read(t, SANDBOX, FOLLOW, b"c2");
    open_and_read(t, SANDBOX, FOLLOW, b"d1");
    filestat(t, FOLLOW, b"c1");
    filestat(t, FOLLOW, b"d1");
    // e1 -> ... -> e8 -> deep, f1 -> ... -> f7 -> deep; to_deep -> deep,
    // deep/up -> ..: links in the middle count with the last ones, eight
    // in all being one too many (the host's kernel followed forty there).
    open_and_read(t, SANDBOX, FOLLOW, b"e1/inner.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"f1/inner.txt");
    filestat(t, 0, b"e1/inner.txt");
    filestat(t, 0, b"f1/inner.txt");
    filestat(t, 0, b"f2/../f1/inner.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"to_deep/../d1");
    open_and_read(t, SANDBOX, FOLLOW, b"deep/../d1");
    open_and_read(t, SANDBOX, FOLLOW, b"deep/up/d2");
    open_and_read(t, SANDBOX, FOLLOW, b"deep/up/d1");
    open_and_read(t, SANDBOX, FOLLOW, b"f1/up/f1/inner.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"to_deep/up/to_deep/inner.txt");
    open_and_read(t, SANDBOX, FOLLOW, b"./");
    open_and_read(t, SANDBOX, FOLLOW, b"sub/./");
    open_and_read(t, SANDBOX, FOLLOW, b".");
    // victim_link -> victim.txt; sym_at -> sym_made; hard_at -> hard_made.
    one_path(t, "path_unlink_file", b"victim_link/", path_unlink_file);
    open_and_read(t, SANDBOX, FOLLOW, b"victim.txt");
    symlink(t, b"file.txt", b"sym_at");
    readlink(t, b"sym_made", 64);
    link(t, FOLLOW, b"file.txt", b"hard_at");
    open_and_read(t, SANDBOX, FOLLOW, b"hard_made");
    link(t, 0, b"file.txt", b"hard_at");

    t.section("poll_oneoff on a file and a directory, beside a clock");
    poll_file_and_directory(t);

    t.section("fd_readdir");
    for room in [4096, 100, 30] {
        list(t, room);
    }

    t.section("hostile arguments");
    let name = Buf::from(b"file.txt");
    let out = Buf::zeroed(4);
    let cases: [(&str, u32, u32, u32, u32, u64); 10] = [
        ("path past memory", SANDBOX, straddling(8), 8, 0, READ),
        ("length 2^31", SANDBOX, name.ptr(), 1 << 31, 0, READ),
        ("length u32::MAX", SANDBOX, name.ptr(), u32::MAX, 0, READ),
        ("a file as the directory", 0, name.ptr(), 8, 0, READ),
        ("no such descriptor", 0x7fff_0000, name.ptr(), 8, 0, READ),
        ("unknown oflags", SANDBOX, name.ptr(), 8, 0x10, READ),
        (
            "oflags past 16 bits",
            SANDBOX,
            name.ptr(),
            8,
            0x1_0000,
            READ,
        ),
        ("unknown rights", SANDBOX, name.ptr(), 8, 0, 1 << 40),
        (
            "directory with read and write",
            SANDBOX,
            name.ptr(),
            8,
            DIRECTORY,
            READ | WRITE,
        ),
        (
            "directory flag on a file",
            SANDBOX,
            name.ptr(),
            8,
            DIRECTORY,
            READDIR,
        ),
    ];
    for (what, dirfd, ptr, len, oflags, rights) in cases {
        // SAFETY: the runtime checks every pointer.
        let e = unsafe { path_open(dirfd, FOLLOW, ptr, len, oflags, rights, 0, 0, out.ptr()) };
        if e == 0 {
            // SAFETY: closing what was opened.
            unsafe { fd_close(out.u32_at(0)) };
        }
        t.log(&format!("path_open({what})"), e, "");
    }
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, 2, name.ptr(), 8, 0, READ, 0, 0, out.ptr()) };
    t.log("path_open(unknown lookup flags)", e, "");
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, FOLLOW, name.ptr(), 8, 0, READ, 0, 0, straddling(4)) };
    t.log("path_open(out-pointer past memory)", e, "");
    let nul = Buf::from(b"file.txt\0/../../outside/secret.txt");
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, FOLLOW, nul.ptr(), 34, 0, READ, 0, 0, out.ptr()) };
    t.log("path_open(a NUL in the path)", e, "");
    let e = unsafe { path_create_directory(SANDBOX, nul.ptr(), 34) };
    t.log("path_create_directory(a NUL in the path)", e, "");
    let e = unsafe { path_unlink_file(0x7fff_0000, name.ptr(), 8) };
    t.log("path_unlink_file(no such descriptor)", e, "");
    let e = unsafe { path_symlink(straddling(4), 4, SANDBOX, name.ptr(), 8) };
    t.log("path_symlink(target past memory)", e, "");
    let used = Buf::zeroed(4);
    let e = unsafe { path_readlink(SANDBOX, name.ptr(), 8, straddling(16), 16, used.ptr()) };
    t.log("path_readlink(buffer past memory)", e, "");
    // Its buffer and out-pointer are checked before its path is.
    let (abs, nul) = (Buf::from(b"/abs"), Buf::from(b"a\0"));
    let e = unsafe { path_readlink(SANDBOX, name.ptr(), 0, straddling(16), 16, used.ptr()) };
    t.log("path_readlink(empty path, buffer past memory)", e, "");
    let e = unsafe { path_readlink(SANDBOX, nul.ptr(), 2, straddling(16), 16, used.ptr()) };
    t.log(
        "path_readlink(a NUL in the path, buffer past memory)",
        e,
        "",
    );
    let e = unsafe { path_readlink(SANDBOX, abs.ptr(), 4, used.ptr(), 4, straddling(4)) };
    t.log(
        "path_readlink(absolute path, out-pointer past memory)",
        e,
        "",
    );
    let e = unsafe { fd_readdir(SANDBOX, straddling(64), 64, 0, used.ptr()) };
    t.log("fd_readdir(buffer past memory)", e, "");
    let e = unsafe { fd_readdir(0, out.ptr(), 4, 0, used.ptr()) };
    t.log("fd_readdir(stdin)", e, "");
    // A cookie of 2^63 or more is no position a directory has: WasmEdge's
    // `seekdir` ignores the failed seek and reads on from where the stream
    // was (here its end, after a whole listing), not EINVAL.
    let listing = Buf::zeroed(4096);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { fd_readdir(SANDBOX, listing.ptr(), 4096, 0, used.ptr()) };
    t.log("fd_readdir(the whole listing)", e, "");
    let e = unsafe { fd_readdir(SANDBOX, listing.ptr(), 4096, 1 << 63, used.ptr()) };
    let size = format!("{} bytes", used.u32_at(0));
    t.log("fd_readdir(cookie 2^63, after the whole listing)", e, &size);
    // A file under another process's write lease (the test's): an open
    // with O_NONBLOCK is refused EAGAIN by the open itself, which no retry
    // of the lookup ends (the host spun on it until the lease broke).
    let leased = Buf::from(b"leased.txt");
    const NONBLOCK: u32 = 1 << 2;
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            0,
            leased.ptr(),
            10,
            0,
            READ,
            0,
            NONBLOCK,
            out.ptr(),
        )
    };
    if e == 0 {
        // SAFETY: closing what was opened.
        unsafe { fd_close(out.u32_at(0)) };
    }
    t.log("path_open(leased.txt, non-blocking)", e, "");
    // An empty text or name is refused before the directory is looked at.
    let e = unsafe { path_symlink(name.ptr(), 0, 0x7fff_0000, name.ptr(), 8) };
    t.log("path_symlink(empty text, no such descriptor)", e, "");
    let nul_name = Buf::from(b"a\0");
    let e = unsafe { path_symlink(name.ptr(), 0, SANDBOX, nul_name.ptr(), 2) };
    t.log("path_symlink(empty text, a NUL in the name)", e, "");
    let e = unsafe { path_symlink(name.ptr(), 8, SANDBOX, name.ptr(), 0) };
    t.log("path_symlink(empty name)", e, "");
    slash_ends_and_check_order(t);
    readdir_on_a_file(t);
    readdir_of_a_removed_directory(t);
    // Last: it closes the sandbox's descriptor.
    flags_rights_and_renumbering(t);
}

/// A path whose last name is `.` or `..` before a final slash (its name is
/// empty once walked): what leads to it is looked up first, so `..` above
/// the preopen and a file before it are told as such. And which of a
/// two-path call's checks comes first: a descriptor, or a path that could
/// never be looked up.
fn slash_ends_and_check_order(t: &mut Transcript) {
    t.section("paths ending in ./ or ../");
    for path in [
        &b"../"[..],
        b"deep/../../",
        b"file.txt/../",
        b"file.txt/./",
        b"deep/../",
        b"deep/./",
        b"./",
        b"link_mid/../",
        b"link_mid/../../",
        b"link_mid2/../../",
        b"missing/../",
    ] {
        filestat(t, FOLLOW, path);
        filestat(t, 0, path);
        open_and_read(t, SANDBOX, FOLLOW, path);
    }
    // Such a path names nothing, yet the call's rights are checked first.
    let out = Buf::zeroed(64);
    let deep = Buf::from(b"deep");
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            0,
            deep.ptr(),
            4,
            DIRECTORY,
            READDIR,
            READDIR,
            0,
            out.ptr(),
        )
    };
    t.log(
        "path_open(sandbox, \"deep\", directory, readdir only)",
        e,
        "",
    );
    let narrow = out.u32_at(0);
    for (dirfd, path) in [
        (SANDBOX, &b"deep/./"[..]),
        (narrow, b"./"),
        (narrow, b"x/../"),
    ] {
        let (name, len) = (Buf::from(path), path.len() as u32);
        let dir = if dirfd == SANDBOX {
            "sandbox"
        } else {
            "deep, readdir only"
        };
        let at = format!("{dir}, {:?}", shown(path));
        // SAFETY: the runtime checks every pointer.
        let calls = unsafe {
            [
                ("path_unlink_file", path_unlink_file(dirfd, name.ptr(), len)),
                (
                    "path_remove_directory",
                    path_remove_directory(dirfd, name.ptr(), len),
                ),
                (
                    "path_filestat_get",
                    path_filestat_get(dirfd, 0, name.ptr(), len, out.ptr()),
                ),
                (
                    "path_readlink",
                    path_readlink(dirfd, name.ptr(), len, out.ptr(), 64, out.ptr()),
                ),
                (
                    "path_open",
                    path_open(dirfd, 0, name.ptr(), len, 0, READ, 0, 0, out.ptr()),
                ),
            ]
        };
        for (call, e) in calls {
            t.log(&format!("{call}({at})"), e, "");
        }
    }
    // SAFETY: closing what was opened.
    unsafe { fd_close(narrow) };
    t.section("two-path calls: which check comes first");
    let (abs, rel, file) = (Buf::from(b"/abs"), Buf::from(b"y"), Buf::from(b"file.txt"));
    // SAFETY: the runtime checks every pointer.
    let calls: [(&str, u32); 10] = unsafe {
        [
            (
                "path_rename(no such descriptor, \"/abs\", sandbox, \"y\")",
                path_rename(99, abs.ptr(), 4, SANDBOX, rel.ptr(), 1),
            ),
            (
                "path_rename(sandbox, \"/abs\", no such descriptor, \"y\")",
                path_rename(SANDBOX, abs.ptr(), 4, 99, rel.ptr(), 1),
            ),
            (
                "path_rename(sandbox, \"y\", no such descriptor, \"/abs\")",
                path_rename(SANDBOX, rel.ptr(), 1, 99, abs.ptr(), 4),
            ),
            (
                "path_rename(stdout, \"y\", sandbox, \"/abs\")",
                path_rename(1, rel.ptr(), 1, SANDBOX, abs.ptr(), 4),
            ),
            (
                "path_link(sandbox, \"/abs\", no such descriptor, \"y\")",
                path_link(SANDBOX, 0, abs.ptr(), 4, 99, rel.ptr(), 1),
            ),
            (
                "path_link(no such descriptor, \"file.txt\", sandbox, \"/abs\")",
                path_link(99, 0, file.ptr(), 8, SANDBOX, abs.ptr(), 4),
            ),
            (
                "path_link(stdout, \"file.txt\", sandbox, \"y\")",
                path_link(1, 0, file.ptr(), 8, SANDBOX, rel.ptr(), 1),
            ),
            (
                "path_symlink(\"y\", stdout, \"/abs\")",
                path_symlink(rel.ptr(), 1, 1, abs.ptr(), 4),
            ),
            (
                "path_symlink(\"y\", no such descriptor, \"/abs\")",
                path_symlink(rel.ptr(), 1, 99, abs.ptr(), 4),
            ),
            (
                "path_symlink(\"y\", stdout, \"y\")",
                path_symlink(rel.ptr(), 1, 1, rel.ptr(), 1),
            ),
        ]
    };
    for (call, e) in calls {
        t.log(call, e, "");
    }
}

/// Opens `path` below `dirfd` with `oflags` and `rights` (inheriting them
/// too) and closes it again; returns the errno.
fn open_with(t: &mut Transcript, dirfd: u32, path: &[u8], oflags: u32, rights: u64) -> u32 {
    let name = Buf::from(path);
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            dirfd,
            0,
            name.ptr(),
            path.len() as u32,
            oflags,
            rights,
            rights,
            0,
            out.ptr(),
        )
    };
    if e == 0 {
        // SAFETY: closing what was opened.
        unsafe { fd_close(out.u32_at(0)) };
    }
    let call = format!(
        "path_open({}, {:?}, oflags={oflags}, rights={rights:#x})",
        t.fd(dirfd),
        shown(path)
    );
    t.log(&call, e, "");
    e
}

/// Opens `deep` as a directory with no rights and `fdflags` (APPEND, DSYNC,
/// NONBLOCK, RSYNC or SYNC); logs the errno and the flags `fd_fdstat_get`
/// then reports.
fn open_path_with_fdflags(t: &mut Transcript, fdflags: u32) {
    let name = Buf::from(b"deep");
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        path_open(
            SANDBOX,
            0,
            name.ptr(),
            4,
            DIRECTORY,
            0,
            0,
            fdflags,
            out.ptr(),
        )
    };
    let mut shown = String::new();
    if e == 0 {
        let fd = out.u32_at(0);
        let stat = Buf::zeroed(24);
        // SAFETY: the runtime checks every pointer.
        let e = unsafe { fd_fdstat_get(fd, stat.ptr()) };
        shown = format!("fdstat={e} flags={}", stat.u32_at(0) >> 16);
        // SAFETY: closing what was opened.
        unsafe { fd_close(fd) };
    }
    t.log(
        &format!("path_open(deep, directory, no rights, fdflags={fdflags})"),
        e,
        &shown,
    );
}

/// Open flags on a directory, what a read-only descriptor may not do, a
/// directory below the preopen as the base of a lookup (`..` above it is
/// as above the preopen), and the preopen renumbered, then closed. Last:
/// the preopen is gone after it.
fn flags_rights_and_renumbering(t: &mut Transcript) {
    t.section("open flags on a directory, a read-only descriptor, a base below the preopen");
    open_with(t, SANDBOX, b"deep", TRUNC, READ | WRITE);
    open_with(t, SANDBOX, b"deep", DIRECTORY, WRITE);
    open_with(t, SANDBOX, b"made_dir", CREAT | DIRECTORY, READDIR);
    open_with(t, SANDBOX, b"deep", CREAT | DIRECTORY, READDIR);
    open_with(t, SANDBOX, b"deep", CREAT | EXCL | DIRECTORY, READDIR);
    // No right to read or write it: a directory opened for its path alone,
    // which takes no fd flag (WasmEdge's `openat` drops them).
    for fdflags in [1, 1 << 1, 1 << 2, 1 << 3, 1 << 4] {
        open_path_with_fdflags(t, fdflags);
    }
    let name = Buf::from(b"deep/inner.txt");
    let out = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, 0, name.ptr(), 14, 0, READ, 0, 0, out.ptr()) };
    t.log("path_open(deep/inner.txt, read only)", e, "");
    if e == 0 {
        let fd = out.u32_at(0);
        // SAFETY: the runtime checks every pointer.
        let e = unsafe { fd_filestat_set_size(fd, 1) };
        t.log("fd_filestat_set_size(read only, 1)", e, "");
        let e = unsafe { fd_allocate(fd, 0, 4096) };
        t.log("fd_allocate(read only, 0, 4096)", e, "");
        let data = Buf::from(b"x");
        let mut iov = Buf::zeroed(8);
        iov.set_u32(0, data.ptr());
        iov.set_u32(4, 1);
        let n = Buf::zeroed(4);
        let e = unsafe { fd_write(fd, iov.ptr(), 1, n.ptr()) };
        t.log("fd_write(read only)", e, "");
        let content = read_all(fd);
        // SAFETY: closing the descriptor just opened.
        unsafe { fd_close(fd) };
        t.log(
            "fd_read(read only) after all that",
            0,
            &format!("read={content:?}"),
        );
    }
    let name = Buf::from(b"deep");
    let all = READ | SEEK | READDIR | (1 << 13) | (1 << 21);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, 0, name.ptr(), 4, DIRECTORY, all, all, 0, out.ptr()) };
    t.log("path_open(deep, directory)", e, "");
    if e != 0 {
        return;
    }
    let deep = out.u32_at(0);
    t.adopt(deep);
    open_and_read(t, deep, 0, b"inner.txt");
    open_and_read(t, deep, 0, b"../file.txt");
    open_and_read(t, deep, FOLLOW, b"up/file.txt");
    open_and_read(t, deep, FOLLOW, b"up");
    open_and_read(t, deep, 0, b".");
    let prestat = Buf::zeroed(8);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { fd_prestat_get(deep, prestat.ptr()) };
    t.log("fd_prestat_get(deep)", e, "");
    // The preopen's number, now deep's.
    let e = unsafe { fd_renumber(deep, SANDBOX) };
    t.log("fd_renumber(deep, sandbox)", e, "");
    open_and_read(t, SANDBOX, 0, b"inner.txt");
    open_and_read(t, SANDBOX, 0, b"file.txt");
    let e = unsafe { fd_prestat_get(SANDBOX, prestat.ptr()) };
    t.log("fd_prestat_get(3, after the renumbering)", e, "");
    let e = unsafe { fd_renumber(deep, SANDBOX) };
    t.log("fd_renumber(deep again, 3)", e, "");
    let e = unsafe { fd_close(SANDBOX) };
    t.log("fd_close(3)", e, "");
    open_and_read(t, SANDBOX, 0, b"inner.txt");
    let e = unsafe { fd_close(SANDBOX) };
    t.log("fd_close(3) again", e, "");
}

/// `fd_filestat_set_times` on a directory opened with that right alone (no
/// right to read it: the runtimes open it for no reading) and with reading.
fn set_times_through_a_directory(t: &mut Transcript) {
    const SET_TIMES: u64 = 1 << 23;
    // The sandbox itself, opened again as `list` opens it.
    let name = Buf::from(b".");
    let out = Buf::zeroed(4);
    for (what, rights) in [
        ("set times only", SET_TIMES),
        ("readdir too", SET_TIMES | READDIR),
    ] {
        // SAFETY: the runtime checks every pointer.
        let e = unsafe {
            path_open(
                SANDBOX,
                0,
                name.ptr(),
                name.bytes().len() as u32,
                DIRECTORY,
                rights,
                0,
                0,
                out.ptr(),
            )
        };
        if e != 0 {
            t.log(&format!("path_open(., {what})"), e, "");
            continue;
        }
        let fd = out.u32_at(0);
        // SAFETY: a descriptor just opened.
        let e = unsafe { fd_filestat_set_times(fd, 1_000_000_000, 2_000_000_000, 1 | 4) };
        t.log(&format!("fd_filestat_set_times(., {what})"), e, "");
        // SAFETY: closing the descriptor just opened.
        unsafe { fd_close(fd) };
    }
}

/// `fd_readdir` of a directory removed while open, from cookie 0: an
/// empty listing (glibc's `readdir`, which WasmEdge calls, takes the
/// kernel's ENOENT for the end), twice.
fn readdir_of_a_removed_directory(t: &mut Transcript) {
    let name = Buf::from(b"gone");
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { path_create_directory(SANDBOX, name.ptr(), 4) };
    t.log("path_create_directory(sandbox, \"gone\")", e, "");
    let (e, fd) = open_to_list(b"gone");
    t.log(
        "path_open(sandbox, \"gone\", directory, readdir only)",
        e,
        "",
    );
    if e != 0 {
        return;
    }
    let listing = Buf::zeroed(1024);
    let used = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_remove_directory(SANDBOX, name.ptr(), 4) };
    t.log("path_remove_directory(sandbox, \"gone\"), open", e, "");
    for when in ["after its removal", "again"] {
        // SAFETY: the runtime checks every pointer.
        let e = unsafe { fd_readdir(fd, listing.ptr(), 1024, 0, used.ptr()) };
        let size = format!("{} bytes", used.u32_at(0));
        t.log(&format!("fd_readdir(gone, {when})"), e, &size);
    }
    // SAFETY: closing the descriptor just opened.
    unsafe { fd_close(fd) };
}

/// `fd_readdir` on a file opened with the right to it (wasi-libc asks for
/// it on every read-only open): refused, and the file's position stays.
fn readdir_on_a_file(t: &mut Transcript) {
    let name = Buf::from(b"file.txt");
    let out = Buf::zeroed(4);
    let rights = READ | SEEK | READDIR;
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { path_open(SANDBOX, FOLLOW, name.ptr(), 8, 0, rights, 0, 0, out.ptr()) };
    if e != 0 {
        t.log("path_open(file.txt, read and readdir)", e, "");
        return;
    }
    let fd = out.u32_at(0);
    let first = read_up_to(fd, 4);
    let listing = Buf::zeroed(256);
    let used = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { fd_readdir(fd, listing.ptr(), 256, 0, used.ptr()) };
    let rest = read_up_to(fd, 4);
    // SAFETY: closing the descriptor just opened.
    unsafe { fd_close(fd) };
    t.log(
        "fd_readdir(a file), between two reads",
        e,
        &format!("read {first:?}, then {rest:?}"),
    );
}
