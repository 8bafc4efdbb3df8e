//! The fd_* functions on sockets (and stdio beside them): status, flags,
//! file status, close.

use crate::ffi::*;
use crate::memory::{read_u64, straddling, Buf};
use crate::steps::*;
use crate::transcript::Transcript;

fn filestat(t: &mut Transcript, fd: u32) {
    let out = Buf::zeroed(64);
    // SAFETY: `out` holds a whole filestat record.
    let e = unsafe { fd_filestat_get(fd, out.ptr()) };
    let outs = if e == 0 {
        // Device and inode numbers and times differ between machines: only
        // whether they are zero is kept.
        let nonzero = |off: usize| read_u64(out.at(off)) != 0;
        format!(
            "filetype={} dev_set={} ino_set={} nlink={} size={} times_set={}",
            out.bytes()[16],
            nonzero(0),
            nonzero(8),
            read_u64(out.at(24)),
            read_u64(out.at(32)),
            nonzero(40) || nonzero(48) || nonzero(56)
        )
    } else {
        String::new()
    };
    t.log(&format!("fd_filestat_get({})", t.fd(fd)), e, &outs);
}

pub fn descriptor_functions(t: &mut Transcript) {
    t.section("fd_fdstat_get / fd_fdstat_set_flags / fd_filestat_get / fd_close on sockets");
    let pair = pair(t, INET4);
    let (udp, _) = udp(t, INET6);
    for fd in [
        pair.client,
        pair.server,
        pair.listener,
        udp,
        0,
        1,
        2,
        u32::MAX,
    ] {
        fdstat(t, fd);
    }
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { fd_fdstat_get(pair.client, straddling(24)) };
    t.log(
        &format!(
            "fd_fdstat_get({}, out straddling the end)",
            t.fd(pair.client)
        ),
        e,
        "",
    );
    let e = unsafe { fd_fdstat_get(u32::MAX, straddling(24)) };
    t.log("fd_fdstat_get(-1, out straddling the end)", e, "");
    for flags in [NONBLOCK, 0, 1, 2, 8, 16, 0x20, 0x1_0004, 0x5] {
        set_flags(t, pair.client, flags);
        fdstat(t, pair.client);
    }
    set_flags(t, u32::MAX, 0);
    set_flags(t, udp, NONBLOCK);
    fdstat(t, udp);
    for fd in [pair.client, udp, 1, u32::MAX] {
        filestat(t, fd);
    }
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { fd_filestat_get(1, straddling(64)) };
    t.log("fd_filestat_get(1, out straddling the end)", e, "");
    close(t, udp);
    close(t, udp);
    close(t, u32::MAX);
    pair.close(t);
}
