//! Opening, binding, listening, connecting and accepting; the addresses of
//! both ends (V2 names here; V1 ones in the binary that imports them).

use crate::ffi::*;
use crate::memory::{end, straddling, Address, Buf};
use crate::steps::*;
use crate::transcript::Transcript;

pub fn open_every_family_and_type(t: &mut Transcript) {
    t.section("sock_open / sock_open_v2: every family and type, hostile out-pointers");
    for family in [0u32, 1, 2, 3, 4, 0x101, 0x102] {
        for kind in [0u32, 1, 2, 3, 0x102] {
            let out = Buf::zeroed(4);
            // SAFETY: `out` is live.
            let e = unsafe { sock_open(family, kind, out.ptr()) };
            let outs = if e == 0 {
                format!("fd={}", t.adopt(out.u32_at(0)))
            } else {
                String::new()
            };
            t.log(&format!("sock_open({family:#x}, {kind:#x})"), e, &outs);
            if e == 0 {
                close(t, out.u32_at(0));
            }
        }
    }
    for (what, ptr) in [
        ("straddling the end", straddling(4)),
        ("at the end", end()),
        ("u32::MAX", u32::MAX),
    ] {
        // SAFETY: the runtime checks the out-pointer; nothing here reads it.
        let e = unsafe { sock_open(INET4, STREAM, ptr) };
        t.log(&format!("sock_open(inet4, stream, out {what})"), e, "");
    }
    for (family, kind) in [(1, 2), (2, 1), (0, 2), (1, 3)] {
        let out = Buf::zeroed(4);
        // SAFETY: `out` is live.
        let e = unsafe { sock_open_v2(family, kind, out.ptr()) };
        let outs = if e == 0 {
            format!("fd={}", t.adopt(out.u32_at(0)))
        } else {
            String::new()
        };
        t.log(&format!("sock_open_v2({family}, {kind})"), e, &outs);
        if e == 0 {
            close(t, out.u32_at(0));
        }
    }
}

/// Descriptors that name nothing: -1, one never handed out, stdout.
fn bad_descriptors(t: &mut Transcript) -> Vec<(String, u32)> {
    let closed = open(t, INET4, STREAM);
    close(t, closed);
    vec![
        ("-1".to_string(), u32::MAX),
        ("never opened".to_string(), 1_000_000_007),
        (format!("closed {}", t.fd(closed)), closed),
        ("stdout".to_string(), 1),
    ]
}

pub fn bind_addresses(t: &mut Transcript) {
    t.section("sock_bind / sock_bind_v2: address records of every size, bad descriptors");
    let bad = bad_descriptors(t);
    for (what, fd) in &bad {
        let addr = Address::v4(LOOPBACK4);
        // SAFETY: the address record is live.
        let e = unsafe { sock_bind(*fd, addr.ptr(), 0) };
        t.log(&format!("sock_bind({what}, 127.0.0.1, 0)"), e, "");
    }
    let fd = open(t, INET4, STREAM);
    for size in [0usize, 3, 5, 15, 17, 127, 128] {
        let addr = Address::raw(&vec![0u8; size]);
        // SAFETY: as above.
        let e = unsafe { sock_bind(fd, addr.ptr(), 0) };
        t.log(&format!("sock_bind({}, {size} bytes, 0)", t.fd(fd)), e, "");
    }
    let addr = Address::v4(LOOPBACK4);
    let lying = Address::v4(LOOPBACK4).lying(straddling(4), 4);
    let huge = Address::v4(LOOPBACK4).lying(addr.buf_ptr(), u32::MAX);
    for (what, ptr) in [
        ("record straddling the end", straddling(8)),
        ("record at u32::MAX", u32::MAX),
        ("bytes straddling the end", lying.ptr()),
        ("4 GiB of bytes", huge.ptr()),
    ] {
        // SAFETY: the runtime checks every pointer.
        let e = unsafe { sock_bind(fd, ptr, 0) };
        t.log(&format!("sock_bind({}, {what}, 0)", t.fd(fd)), e, "");
    }
    bind(t, fd, &Address::v6_loopback(), 0, "::1 on an inet4 socket");
    bind(
        t,
        fd,
        &addr,
        0x1_0000,
        "127.0.0.1 port 0x10000 (16 bits: 0)",
    );
    port_of(t, fd);
    bind(t, fd, &addr, 0, "127.0.0.1 again");
    close(t, fd);

    let v6 = open(t, INET6, STREAM);
    bind(
        t,
        v6,
        &Address::v4(LOOPBACK4),
        0,
        "127.0.0.1 on an inet6 socket",
    );
    bind(t, v6, &Address::v6_loopback(), 0, "::1");
    port_of(t, v6);
    close(t, v6);

    for (what, addr, family) in [
        (
            "storage inet4 127.0.0.1",
            Address::storage(1, &LOOPBACK4),
            INET4,
        ),
        (
            "storage inet6 ::1",
            Address::storage(2, &loopback6()),
            INET6,
        ),
        (
            "storage family 0x101 (8 bits: inet4)",
            Address::storage(0x101, &LOOPBACK4),
            INET4,
        ),
        // A family of none of the three (unspecified, and 4).
        ("storage family 0", Address::storage(0, &LOOPBACK4), INET4),
        ("storage family 4", Address::storage(4, &LOOPBACK4), INET4),
        ("raw 4 bytes", Address::v4(LOOPBACK4), INET4),
        ("raw 16 bytes", Address::v6_loopback(), INET6),
        ("127 bytes", Address::raw(&[0u8; 127]), INET4),
        ("0 bytes", Address::raw(&[]), INET4),
    ] {
        let fd = open(t, family, STREAM);
        // SAFETY: the address record is live.
        let e = unsafe { sock_bind_v2(fd, addr.ptr(), 0) };
        t.log(&format!("sock_bind_v2({}, {what}, 0)", t.fd(fd)), e, "");
        if e == 0 {
            port_of(t, fd);
        }
        close(t, fd);
    }
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { sock_bind_v2(u32::MAX, straddling(8), 0) };
    t.log("sock_bind_v2(-1, record straddling the end, 0)", e, "");
}

pub fn loopback6() -> [u8; 16] {
    let mut ip = [0u8; 16];
    ip[15] = 1;
    ip
}

pub fn listen_backlogs(t: &mut Transcript) {
    t.section("sock_listen / sock_listen_v2: backlogs, unbound and datagram sockets");
    for fd in [u32::MAX, 1_000_000_007, 1] {
        listen(t, fd, 8);
    }
    let unbound = open(t, INET4, STREAM);
    listen(t, unbound, 0);
    port_of(t, unbound);
    listen(t, unbound, u32::MAX);
    listen(t, unbound, 0x7fff_ffff);
    close(t, unbound);
    let (udp, _) = udp(t, INET4);
    listen(t, udp, 8);
    close(t, udp);
    let fd = open(t, INET6, STREAM);
    // SAFETY: plain calls.
    let e = unsafe { sock_listen_v2(fd, 4) };
    t.log(&format!("sock_listen_v2({}, 4)", t.fd(fd)), e, "");
    port_of(t, fd);
    let e = unsafe { sock_listen_v2(u32::MAX, 4) };
    t.log("sock_listen_v2(-1, 4)", e, "");
    close(t, fd);
}

pub fn connect_and_accept(t: &mut Transcript) {
    t.section("sock_connect / sock_connect_v2 and sock_accept_v2: refused, in progress, connected");
    // A port nobody listens on: bound, learned, closed.
    let gone = open(t, INET4, STREAM);
    bind(t, gone, &Address::v4(LOOPBACK4), 0, "127.0.0.1");
    let refused_port = port_of(t, gone);
    close(t, gone);
    let fd = open(t, INET4, STREAM);
    connect(t, fd, &Address::v4(LOOPBACK4), refused_port, "127.0.0.1");
    close(t, fd);

    let (listener, port) = listener(t, INET4);
    for size in [0usize, 5, 128] {
        let fd = open(t, INET4, STREAM);
        let addr = Address::raw(&vec![0u8; size]);
        // SAFETY: the address record is live.
        let e = unsafe { sock_connect(fd, addr.ptr(), u32::from(port)) };
        t.log(
            &format!(
                "sock_connect({}, {size} bytes, {})",
                t.fd(fd),
                t.port(port.into())
            ),
            e,
            "",
        );
        close(t, fd);
    }
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { sock_connect(u32::MAX, straddling(8), 0) };
    t.log("sock_connect(-1, record straddling the end, 0)", e, "");
    let addr = Address::v4(LOOPBACK4);
    let e = unsafe { sock_connect(u32::MAX, addr.ptr(), u32::from(port)) };
    t.log(
        &format!("sock_connect(-1, 127.0.0.1, {})", t.port(port.into())),
        e,
        "",
    );

    // Blocking connect, then a second one on the same socket.
    let blocking = open(t, INET4, STREAM);
    connect(t, blocking, &addr, port, "127.0.0.1");
    connect(t, blocking, &addr, port, "127.0.0.1 again");
    port_of(t, blocking);
    let accepted = accept(t, listener);
    fdstat(t, accepted);

    // Non-blocking connect: in progress, then writable, then SO_ERROR 0.
    let nonblocking = open(t, INET4, STREAM);
    set_flags(t, nonblocking, NONBLOCK);
    let e = connect(t, nonblocking, &addr, port, "127.0.0.1");
    if e == 26 {
        wait(t, nonblocking, true);
    }
    so_error(t, nonblocking);
    port_of(t, nonblocking);

    // V2 connect with the storage form, to 0.0.0.0 (which means this host).
    let v2 = open(t, INET4, STREAM);
    let any = Address::storage(1, &[0, 0, 0, 0]);
    // SAFETY: the address record is live.
    let e = unsafe { sock_connect_v2(v2, any.ptr(), u32::from(port)) };
    t.log(
        &format!(
            "sock_connect_v2({}, storage 0.0.0.0, {})",
            t.fd(v2),
            t.port(port.into())
        ),
        e,
        "",
    );
    port_of(t, v2);

    // accept_v2: out-pointer, flags, the non-blocking flag.
    // SAFETY: the runtime checks the pointer.
    let e = unsafe { sock_accept_v2(listener, 0, straddling(4)) };
    t.log(
        &format!(
            "sock_accept_v2({}, 0, out straddling the end)",
            t.fd(listener)
        ),
        e,
        "",
    );
    for flags in [0x20u32, 0x100] {
        let out = Buf::zeroed(4);
        // SAFETY: `out` is live.
        let e = unsafe { sock_accept_v2(listener, flags, out.ptr()) };
        t.log(
            &format!("sock_accept_v2({}, {flags:#x})", t.fd(listener)),
            e,
            "",
        );
    }
    let out = Buf::zeroed(4);
    // SAFETY: `out` is live.
    let e = unsafe { sock_accept_v2(listener, NONBLOCK, out.ptr()) };
    let outs = if e == 0 {
        format!("fd={}", t.adopt(out.u32_at(0)))
    } else {
        String::new()
    };
    t.log(
        &format!("sock_accept_v2({}, nonblock)", t.fd(listener)),
        e,
        &outs,
    );
    if e == 0 {
        t.note("which of the two sockets is non-blocking now?");
        fdstat(t, out.u32_at(0));
        fdstat(t, listener);
        close(t, out.u32_at(0));
    }
    // A flag above 16 bits.
    let out = Buf::zeroed(4);
    // SAFETY: `out` is live.
    let e = unsafe { sock_accept_v2(listener, 0x1_0000, out.ptr()) };
    let outs = if e == 0 {
        format!("fd={}", t.adopt(out.u32_at(0)))
    } else {
        String::new()
    };
    t.log(
        &format!("sock_accept_v2({}, 0x10000)", t.fd(listener)),
        e,
        &outs,
    );
    if e == 0 {
        close(t, out.u32_at(0));
    }
    // Nothing pending on a non-blocking listener.
    set_flags(t, listener, NONBLOCK);
    let out = Buf::zeroed(4);
    // SAFETY: `out` is live.
    let e = unsafe { sock_accept_v2(listener, 0, out.ptr()) };
    t.log(
        &format!("sock_accept_v2({}, 0) with nothing pending", t.fd(listener)),
        e,
        "",
    );
    for (what, fd) in [("-1", u32::MAX), ("a connected socket", blocking)] {
        // SAFETY: `out` is live.
        let e = unsafe { sock_accept_v2(fd, 0, out.ptr()) };
        t.log(&format!("sock_accept_v2({what}, 0)"), e, "");
    }
    let (udp, _) = udp(t, INET4);
    // SAFETY: `out` is live.
    let e = unsafe { sock_accept_v2(udp, 0, out.ptr()) };
    t.log(&format!("sock_accept_v2({} udp, 0)", t.fd(udp)), e, "");
    close(t, udp);

    for fd in [blocking, accepted, nonblocking, v2, listener] {
        close(t, fd);
    }

    t.section("IPv6: connect, accept, both ends' addresses");
    let pair = pair(t, INET6);
    for fd in [pair.client, pair.server] {
        peer_v2(t, fd, 128);
    }
    pair.close(t);
}

/// `SO_ERROR`, as a non-blocking connect's result is read.
pub fn so_error(t: &mut Transcript, fd: u32) {
    let value = Buf::zeroed(4);
    let mut size = Buf::zeroed(4);
    size.set_u32(0, 4);
    // SAFETY: both buffers are live.
    let e = unsafe { sock_getsockopt(fd, 0, 2, value.ptr(), size.ptr()) };
    let outs = if e == 0 {
        format!("value={} size={}", value.u32_at(0) as i32, size.u32_at(0))
    } else {
        String::new()
    };
    t.log(
        &format!("sock_getsockopt({}, SOL_SOCKET, SO_ERROR, 4)", t.fd(fd)),
        e,
        &outs,
    );
}

fn peer_v2(t: &mut Transcript, fd: u32, size: usize) {
    let addr = Address::out(size);
    let port = Buf::zeroed(4);
    // SAFETY: all pointers are into live buffers.
    let e = unsafe { sock_getpeeraddr_v2(fd, addr.ptr(), port.ptr()) };
    let outs = if e == 0 {
        format!("{} port={}", addr.shown(), t.port(port.u32_at(0)))
    } else {
        String::new()
    };
    t.log(
        &format!("sock_getpeeraddr_v2({}, {size} bytes)", t.fd(fd)),
        e,
        &outs,
    );
}

pub fn addresses_v2(t: &mut Transcript) {
    t.section("sock_getlocaladdr_v2 / sock_getpeeraddr_v2: sizes, pointers, unconnected");
    let pair = pair(t, INET4);
    for size in [128usize, 16, 4, 0, 127] {
        peer_v2(t, pair.client, size);
    }
    let addr = Address::out(128);
    let port = Buf::zeroed(4);
    let lying = Address::out(128).lying(straddling(128), 128);
    for (what, a, p) in [
        ("record straddling the end", straddling(8), port.ptr()),
        ("bytes straddling the end", lying.ptr(), port.ptr()),
        ("port straddling the end", addr.ptr(), straddling(4)),
        ("port at u32::MAX", addr.ptr(), u32::MAX),
    ] {
        for (name, fd) in [("client", pair.client), ("-1", u32::MAX)] {
            // SAFETY: the runtime checks every pointer.
            let e = unsafe { sock_getlocaladdr_v2(fd, a, p) };
            t.log(&format!("sock_getlocaladdr_v2({name}, {what})"), e, "");
        }
    }
    // The port written over the record that describes the address buffer.
    let overlap = Address::out(128);
    // SAFETY: the port lands in the record, which is live.
    let e = unsafe { sock_getlocaladdr_v2(pair.server, overlap.ptr(), overlap.ptr()) };
    t.log(
        &format!(
            "sock_getlocaladdr_v2({}, port written over the record)",
            t.fd(pair.server)
        ),
        e,
        &format!(
            "{} record_buf_is_port={}",
            overlap.shown(),
            t.port(crate::memory::read_u32(overlap.ptr()))
        ),
    );
    let (udp, _) = udp(t, INET4);
    peer_v2(t, udp, 128);
    let unbound = open(t, INET6, DGRAM);
    port_of(t, unbound);
    peer_v2(t, pair.listener, 128);
    for fd in [udp, unbound] {
        close(t, fd);
    }
    pair.close(t);
}
