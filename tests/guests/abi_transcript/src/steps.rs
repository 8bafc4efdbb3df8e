//! Building blocks the sections share: each one is a real call, recorded like
//! any other, so setting up a case is part of the transcript too. A step that
//! fails records the failure and hands back something unusable (descriptor
//! -1), and the transcript goes on: a difference shows as a line, not a trap.

use crate::ffi::*;
use crate::memory::{read_u16, read_u32, read_u64, Address, Buf, Iovecs, Subscriptions};
use crate::transcript::Transcript;

pub const INET4: u32 = 1;
pub const INET6: u32 = 2;
pub const DGRAM: u32 = 1;
pub const STREAM: u32 = 2;
pub const NONBLOCK: u32 = 4;
pub const BAD: u32 = u32::MAX;
pub const LOOPBACK4: [u8; 4] = [127, 0, 0, 1];

pub fn family_name(family: u32) -> &'static str {
    match family {
        INET4 => "inet4",
        INET6 => "inet6",
        _ => "?",
    }
}

pub fn open(t: &mut Transcript, family: u32, kind: u32) -> u32 {
    let out = Buf::zeroed(4);
    // SAFETY: `out` is a live 4-byte buffer.
    let e = unsafe { sock_open(family, kind, out.ptr()) };
    let kind_name = if kind == DGRAM { "dgram" } else { "stream" };
    if e == 0 {
        let fd = out.u32_at(0);
        let name = t.adopt(fd);
        t.log(
            &format!("sock_open({}, {kind_name})", family_name(family)),
            e,
            &format!("fd={name}"),
        );
        fd
    } else {
        t.log(
            &format!("sock_open({}, {kind_name})", family_name(family)),
            e,
            "",
        );
        BAD
    }
}

pub fn close(t: &mut Transcript, fd: u32) {
    // SAFETY: plain call; no pointers.
    let e = unsafe { fd_close(fd) };
    t.log(&format!("fd_close({})", t.fd(fd)), e, "");
}

pub fn bind(t: &mut Transcript, fd: u32, addr: &Address, port: u32, what: &str) -> u32 {
    // SAFETY: the record and its bytes live in `addr`.
    let e = unsafe { sock_bind(fd, addr.ptr(), port) };
    t.log(&format!("sock_bind({}, {what}, {port})", t.fd(fd)), e, "");
    e
}

/// The socket's local port, learned by the transcript (via V2 getlocaladdr).
pub fn port_of(t: &mut Transcript, fd: u32) -> u16 {
    let addr = Address::out(128);
    let port = Buf::zeroed(4);
    // SAFETY: all pointers are into live buffers.
    let e = unsafe { sock_getlocaladdr_v2(fd, addr.ptr(), port.ptr()) };
    let p = port.u32_at(0);
    t.learn_port(p as u16);
    let outs = if e == 0 {
        format!("{} port={}", addr.shown(), t.port(p))
    } else {
        String::new()
    };
    t.log(
        &format!("sock_getlocaladdr_v2({}, storage128)", t.fd(fd)),
        e,
        &outs,
    );
    p as u16
}

pub fn listen(t: &mut Transcript, fd: u32, backlog: u32) -> u32 {
    // SAFETY: plain call.
    let e = unsafe { sock_listen(fd, backlog) };
    t.log(
        &format!("sock_listen({}, {})", t.fd(fd), backlog as i32),
        e,
        "",
    );
    e
}

pub fn accept(t: &mut Transcript, fd: u32) -> u32 {
    let out = Buf::zeroed(4);
    // SAFETY: `out` is live.
    let e = unsafe { sock_accept_v2(fd, 0, out.ptr()) };
    if e == 0 {
        let new = out.u32_at(0);
        let name = t.adopt(new);
        t.log(
            &format!("sock_accept_v2({}, 0)", t.fd(fd)),
            e,
            &format!("fd={name}"),
        );
        new
    } else {
        t.log(&format!("sock_accept_v2({}, 0)", t.fd(fd)), e, "");
        BAD
    }
}

pub fn connect(t: &mut Transcript, fd: u32, addr: &Address, port: u16, what: &str) -> u32 {
    // SAFETY: the record and its bytes live in `addr`.
    let e = unsafe { sock_connect(fd, addr.ptr(), u32::from(port)) };
    t.log(
        &format!(
            "sock_connect({}, {what}, {})",
            t.fd(fd),
            t.port(port.into())
        ),
        e,
        "",
    );
    e
}

pub fn set_flags(t: &mut Transcript, fd: u32, flags: u32) -> u32 {
    // SAFETY: plain call.
    let e = unsafe { fd_fdstat_set_flags(fd, flags) };
    t.log(
        &format!("fd_fdstat_set_flags({}, {flags:#x})", t.fd(fd)),
        e,
        "",
    );
    e
}

/// `fd_fdstat_get`, printing file type, flags and rights.
pub fn fdstat(t: &mut Transcript, fd: u32) {
    let out = Buf::zeroed(24);
    // SAFETY: `out` holds a whole fdstat record.
    let e = unsafe { fd_fdstat_get(fd, out.ptr()) };
    let outs = if e == 0 {
        format!(
            "filetype={} flags={:#x} rights={:#x} inheriting={:#x}",
            out.bytes()[0],
            read_u16(out.at(2)),
            read_u64(out.at(8)),
            read_u64(out.at(16))
        )
    } else {
        String::new()
    };
    t.log(&format!("fd_fdstat_get({})", t.fd(fd)), e, &outs);
}

pub fn send(t: &mut Transcript, fd: u32, data: &[u8]) -> u32 {
    let iov = Iovecs::of(&[data]);
    let out = Buf::zeroed(4);
    // SAFETY: the iovecs and `out` are live.
    let e = unsafe { sock_send(fd, iov.ptr(), 1, 0, out.ptr()) };
    let outs = if e == 0 {
        format!("sent={}", out.u32_at(0))
    } else {
        String::new()
    };
    t.log(
        &format!(
            "sock_send({}, {:?})",
            t.fd(fd),
            String::from_utf8_lossy(data)
        ),
        e,
        &outs,
    );
    e
}

pub fn recv(t: &mut Transcript, fd: u32, max: usize) -> u32 {
    let iov = Iovecs::zeroed(&[max]);
    let out = Buf::zeroed(8);
    // SAFETY: the iovecs and `out` are live.
    let e = unsafe { sock_recv(fd, iov.ptr(), 1, 0, out.ptr(), out.at(4)) };
    let outs = if e == 0 {
        let n = out.u32_at(0) as usize;
        format!(
            "len={n} roflags={} data={}",
            read_u16(out.at(4)),
            iov.received(n)
        )
    } else {
        String::new()
    };
    t.log(&format!("sock_recv({}, [{max}], 0)", t.fd(fd)), e, &outs);
    e
}

/// Formats the events a poll wrote.
pub fn events(events: &Buf, n: u32) -> String {
    let mut shown = Vec::new();
    for i in 0..n.min(events.bytes().len() as u32 / 32) {
        let at = i * 32;
        let nbytes = read_u64(events.at(at as usize + 16));
        let nbytes = if nbytes > 1 {
            ">1".to_string()
        } else {
            nbytes.to_string()
        };
        shown.push(format!(
            "{{u={} {} type={} nbytes={} flags={}}}",
            read_u64(events.at(at as usize)),
            crate::transcript::errno_name(u32::from(read_u16(events.at(at as usize + 8)))),
            events.bytes()[at as usize + 10],
            nbytes,
            read_u16(events.at(at as usize + 24)),
        ));
    }
    format!("n={n} [{}]", shown.join(" "))
}

/// One `poll_oneoff` (or `epoll_oneoff`) call with these subscriptions.
pub fn poll(t: &mut Transcript, edge: bool, subs: &Subscriptions, what: &str) -> u32 {
    let input = subs.to_buf();
    let out = Buf::zeroed(32 * subs.len().max(1) as usize);
    let count = Buf::zeroed(4);
    // SAFETY: `input`, `out` and `count` are live and large enough.
    let e = unsafe {
        if edge {
            epoll_oneoff(input.ptr(), out.ptr(), subs.len(), count.ptr())
        } else {
            poll_oneoff(input.ptr(), out.ptr(), subs.len(), count.ptr())
        }
    };
    let name = if edge { "epoll_oneoff" } else { "poll_oneoff" };
    let outs = if e == 0 {
        events(&out, read_u32(count.ptr()))
    } else {
        String::new()
    };
    t.log(&format!("{name}({what})"), e, &outs);
    e
}

/// Waits up to 5 s for `fd` to be readable (or writable).
pub fn wait(t: &mut Transcript, fd: u32, writable: bool) {
    let subs = if writable {
        Subscriptions::new().write(1, fd)
    } else {
        Subscriptions::new().read(1, fd)
    }
    .timeout(99, 5000);
    let what = format!(
        "{} {}, timeout 5 s",
        if writable { "write" } else { "read" },
        t.fd(fd)
    );
    poll(t, false, &subs, &what);
}

/// A listening TCP socket on loopback and its port.
pub fn listener(t: &mut Transcript, family: u32) -> (u32, u16) {
    let fd = open(t, family, STREAM);
    let (addr, what) = loopback(family);
    bind(t, fd, &addr, 0, what);
    listen(t, fd, 16);
    let port = port_of(t, fd);
    (fd, port)
}

pub fn loopback(family: u32) -> (Address, &'static str) {
    if family == INET6 {
        (Address::v6_loopback(), "::1")
    } else {
        (Address::v4(LOOPBACK4), "127.0.0.1")
    }
}

/// A connected TCP pair on loopback: (listener, client, server side).
pub struct Pair {
    pub listener: u32,
    pub client: u32,
    pub server: u32,
}

pub fn pair(t: &mut Transcript, family: u32) -> Pair {
    let (listener, port) = listener(t, family);
    let client = open(t, family, STREAM);
    let (addr, what) = loopback(family);
    connect(t, client, &addr, port, what);
    port_of(t, client);
    let server = accept(t, listener);
    Pair {
        listener,
        client,
        server,
    }
}

impl Pair {
    pub fn close(&self, t: &mut Transcript) {
        for fd in [self.client, self.server, self.listener] {
            close(t, fd);
        }
    }
}

/// A UDP socket bound to loopback, and its port.
pub fn udp(t: &mut Transcript, family: u32) -> (u32, u16) {
    let fd = open(t, family, DGRAM);
    let (addr, what) = loopback(family);
    bind(t, fd, &addr, 0, what);
    let port = port_of(t, fd);
    (fd, port)
}

/// One sock_send_to (or sock_send_to_v2) of `data` to `addr`:`port`.
pub fn send_to(
    t: &mut Transcript,
    v2: bool,
    fd: u32,
    data: &[u8],
    addr: &Address,
    port: u16,
    what: &str,
) {
    let iov = Iovecs::of(&[data]);
    let out = Buf::zeroed(4);
    // SAFETY: all pointers are into live buffers.
    let e = unsafe {
        if v2 {
            sock_send_to_v2(fd, iov.ptr(), 1, addr.ptr(), u32::from(port), 0, out.ptr())
        } else {
            sock_send_to(fd, iov.ptr(), 1, addr.ptr(), u32::from(port), 0, out.ptr())
        }
    };
    let name = if v2 {
        "sock_send_to_v2"
    } else {
        "sock_send_to"
    };
    let outs = if e == 0 {
        format!("sent={}", out.u32_at(0))
    } else {
        String::new()
    };
    t.log(
        &format!(
            "{name}({}, {:?}, {what}, {})",
            t.fd(fd),
            String::from_utf8_lossy(data),
            t.port(port.into())
        ),
        e,
        &outs,
    );
}

/// sock_recv_from_v2 into a buffer of `max` bytes and an address of `size`.
pub fn recv_from_v2(t: &mut Transcript, fd: u32, max: usize, size: usize, flags: u32) {
    let iov = Iovecs::zeroed(&[max]);
    let addr = Address::out(size);
    let port = Buf::zeroed(4);
    let out = Buf::zeroed(8);
    // SAFETY: all pointers are into live buffers.
    let e = unsafe {
        sock_recv_from_v2(
            fd,
            iov.ptr(),
            1,
            addr.ptr(),
            flags,
            port.ptr(),
            out.ptr(),
            out.at(4),
        )
    };
    let outs = if e == 0 {
        received_from(t, &iov, &addr, port.u32_at(0), &out)
    } else {
        String::new()
    };
    t.log(
        &format!(
            "sock_recv_from_v2({}, [{max}], {size}-byte address, flags={flags:#x})",
            t.fd(fd)
        ),
        e,
        &outs,
    );
}

/// What a successful receive with a sender address got: length, flags, data,
/// sender and port (`lens`: the length, then the flags).
pub fn received_from(
    t: &Transcript,
    iov: &Iovecs,
    addr: &Address,
    port: u32,
    lens: &Buf,
) -> String {
    let n = lens.u32_at(0) as usize;
    format!(
        "len={n} roflags={} data={} from={} port={}",
        read_u16(lens.at(4)),
        iov.received(n),
        addr.shown(),
        t.port(port)
    )
}
