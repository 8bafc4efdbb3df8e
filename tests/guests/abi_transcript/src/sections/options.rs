//! sock_getsockopt / sock_setsockopt: every option name and level, on TCP and
//! UDP, with hostile sizes and pointers.

use crate::ffi::*;
use crate::memory::{straddling, Buf};
use crate::steps::*;
use crate::transcript::Transcript;

const NAMES: [&str; 15] = [
    "SO_REUSEADDR",
    "SO_TYPE",
    "SO_ERROR",
    "SO_DONTROUTE",
    "SO_BROADCAST",
    "SO_SNDBUF",
    "SO_RCVBUF",
    "SO_KEEPALIVE",
    "SO_OOBINLINE",
    "SO_LINGER",
    "SO_RCVLOWAT",
    "SO_RCVTIMEO",
    "SO_SNDTIMEO",
    "SO_ACCEPTCONN",
    "SO_BINDTODEVICE",
];

fn name(n: u32) -> String {
    NAMES
        .get(n as usize)
        .map_or_else(|| format!("name {n:#x}"), |s| s.to_string())
}

/// Buffer sizes differ between kernels; the transcript keeps only that
/// they are positive, so it reads the same on any Linux.
fn shown_value(option: u32, value: &Buf, size: u32) -> String {
    let bytes = &value.bytes()[..size.min(16) as usize];
    if (option == 5 || option == 6) && size == 4 {
        let v = value.u32_at(0) as i32;
        return format!("value={}", if v > 0 { "positive" } else { "not positive" });
    }
    format!("value={bytes:?}")
}

fn get(t: &mut Transcript, fd: u32, level: u32, option: u32, size: u32) {
    let value = Buf::zeroed(64);
    let mut len = Buf::zeroed(4);
    len.set_u32(0, size);
    // SAFETY: `value` holds 64 bytes, more than any size passed here.
    let e = unsafe { sock_getsockopt(fd, level, option, value.ptr(), len.ptr()) };
    let outs = if e == 0 {
        let got = len.u32_at(0);
        format!("size={got} {}", shown_value(option, &value, got))
    } else {
        String::new()
    };
    t.log(
        &format!(
            "sock_getsockopt({}, level {level}, {}, {size})",
            t.fd(fd),
            name(option)
        ),
        e,
        &outs,
    );
}

fn set(t: &mut Transcript, fd: u32, level: u32, option: u32, bytes: &[u8]) {
    let value = Buf::from(bytes);
    // SAFETY: `value` holds `bytes.len()` bytes.
    let e = unsafe { sock_setsockopt(fd, level, option, value.ptr(), bytes.len() as u32) };
    t.log(
        &format!(
            "sock_setsockopt({}, level {level}, {}, {bytes:?})",
            t.fd(fd),
            name(option)
        ),
        e,
        "",
    );
}

/// The size each option's value has (SO_ERROR and SO_TYPE must be asked
/// with 4: with less room WasmEdge 0.14.1 ends the process, which no
/// transcript can compare).
fn natural_size(option: u32) -> u32 {
    match option {
        9 => 8,
        11 | 12 => 16,
        14 => 16,
        _ => 4,
    }
}

pub fn socket_options(t: &mut Transcript) {
    t.section("sock_getsockopt / sock_setsockopt: every name at SOL_SOCKET, TCP and UDP");
    let (tcp, _) = listener(t, INET4);
    let udp = open(t, INET6, DGRAM);
    for fd in [tcp, udp] {
        for option in 0..15 {
            get(t, fd, 0, option, natural_size(option));
        }
        let one = 1i32.to_le_bytes();
        for option in 0..15 {
            match option {
                9 => set(t, fd, 0, option, &[1, 0, 0, 0, 5, 0, 0, 0]),
                11 | 12 => set(
                    t,
                    fd,
                    0,
                    option,
                    &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ),
                14 => set(t, fd, 0, option, &[]),
                _ => set(t, fd, 0, option, &one),
            }
        }
        for option in [0u32, 7, 9, 11] {
            get(t, fd, 0, option, natural_size(option));
        }
    }

    t.section("socket options: levels, names, sizes and pointers out of range");
    for level in [1u32, 6, 17, 0xffff] {
        get(t, tcp, level, 0, 4);
        set(t, tcp, level, 0, &1i32.to_le_bytes());
    }
    for option in [15u32, 0xffff_ffff] {
        get(t, tcp, 0, option, 4);
        set(t, tcp, 0, option, &1i32.to_le_bytes());
    }
    for size in [0u32, 2, 8, 64] {
        get(t, tcp, 0, 7, size);
    }
    set(t, tcp, 0, 7, &[1, 0]);
    set(t, tcp, 0, 9, &[1, 0, 0, 0]);
    let value = Buf::zeroed(8);
    let mut len = Buf::zeroed(4);
    len.set_u32(0, 4);
    for (what, v, l) in [
        ("size straddling the end", value.ptr(), straddling(4)),
        ("value straddling the end", straddling(4), len.ptr()),
    ] {
        for (fd_name, fd) in [("tcp", tcp), ("-1", u32::MAX)] {
            // SAFETY: the runtime checks every pointer.
            let e = unsafe { sock_getsockopt(fd, 0, 7, v, l) };
            t.log(
                &format!("sock_getsockopt({fd_name}, SOL_SOCKET, SO_KEEPALIVE, {what})"),
                e,
                "",
            );
        }
    }
    // SAFETY: as above.
    let e = unsafe { sock_setsockopt(tcp, 0, 7, straddling(4), 4) };
    t.log(
        "sock_setsockopt(tcp, SOL_SOCKET, SO_KEEPALIVE, value straddling the end)",
        e,
        "",
    );
    let e = unsafe { sock_setsockopt(tcp, 0, 7, value.ptr(), u32::MAX) };
    t.log(
        "sock_setsockopt(tcp, SOL_SOCKET, SO_KEEPALIVE, 4 GiB value)",
        e,
        "",
    );
    for fd in [u32::MAX, 1_000_000_007, 1] {
        get(t, fd, 0, 7, 4);
        set(t, fd, 0, 7, &1i32.to_le_bytes());
    }
    close(t, tcp);
    close(t, udp);
}
