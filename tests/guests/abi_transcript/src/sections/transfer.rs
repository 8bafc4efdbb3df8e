//! Moving bytes: sock_send/recv (V1 and V2 names), fd_read/fd_write on
//! sockets, shutdown, a peer that resets, and UDP with sock_send_to and
//! sock_recv_from_v2.

use crate::ffi::*;
use crate::memory::{end, read_u16, straddling, Address, Buf, Iovecs, Subscriptions};
use crate::steps::*;
use crate::transcript::Transcript;

/// One sock_send (or sock_send_v2) of prepared iovecs.
#[allow(clippy::too_many_arguments)]
fn send_iovecs(
    t: &mut Transcript,
    v2: bool,
    fd: u32,
    iovs: u32,
    n: u32,
    flags: u32,
    out: u32,
    what: &str,
) {
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        if v2 {
            sock_send_v2(fd, iovs, n, flags, out)
        } else {
            sock_send(fd, iovs, n, flags, out)
        }
    };
    let name = if v2 { "sock_send_v2" } else { "sock_send" };
    let outs = if e == 0 && out < end() - 4 {
        format!("sent={}", crate::memory::read_u32(out))
    } else {
        String::new()
    };
    t.log(
        &format!("{name}({}, {what}, flags={flags:#x})", t.fd(fd)),
        e,
        &outs,
    );
}

/// One sock_recv (or sock_recv_v2) into prepared iovecs.
#[allow(clippy::too_many_arguments)]
fn recv_iovecs(
    t: &mut Transcript,
    v2: bool,
    fd: u32,
    iov: &Iovecs,
    n: u32,
    flags: u32,
    out: u32,
    what: &str,
) {
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        if v2 {
            sock_recv_v2(fd, iov.ptr(), n, flags, out, out + 4)
        } else {
            sock_recv(fd, iov.ptr(), n, flags, out, out + 4)
        }
    };
    let name = if v2 { "sock_recv_v2" } else { "sock_recv" };
    let outs = if e == 0 && out < end() - 8 {
        let len = crate::memory::read_u32(out) as usize;
        format!(
            "len={len} roflags={} data={}",
            read_u16(out + 4),
            iov.received(len)
        )
    } else {
        String::new()
    };
    t.log(
        &format!("{name}({}, {what}, flags={flags:#x})", t.fd(fd)),
        e,
        &outs,
    );
}

pub fn stream_transfer(t: &mut Transcript) {
    t.section("sock_send / sock_recv: iovec arrays, flags, pointers, partial reads");
    let pair = pair(t, INET4);
    set_flags(t, pair.server, NONBLOCK);
    let out = Buf::zeroed(8);
    for v2 in [false, true] {
        let one = Iovecs::of(&[b"hello"]);
        send_iovecs(
            t,
            v2,
            pair.client,
            one.ptr(),
            1,
            0,
            out.ptr(),
            "[\"hello\"]",
        );
        send_iovecs(t, v2, pair.client, one.ptr(), 0, 0, out.ptr(), "no iovecs");
        send_iovecs(
            t,
            v2,
            pair.client,
            one.ptr(),
            1,
            1,
            out.ptr(),
            "[\"hello\"]",
        );
        send_iovecs(
            t,
            v2,
            pair.client,
            one.ptr(),
            1,
            0x1_0000,
            out.ptr(),
            "[\"hello\"]",
        );
        send_iovecs(
            t,
            v2,
            pair.client,
            one.ptr(),
            1025,
            0,
            out.ptr(),
            "1025 iovecs",
        );
        send_iovecs(
            t,
            v2,
            pair.client,
            straddling(8),
            1,
            0,
            out.ptr(),
            "iovec table straddling the end",
        );
        send_iovecs(
            t,
            v2,
            pair.client,
            one.ptr(),
            1,
            0,
            straddling(4),
            "[\"hello\"], length out straddling the end",
        );
        let mut hostile = Iovecs::of(&[b"x"]);
        hostile.point(0, straddling(16), 16);
        send_iovecs(
            t,
            v2,
            pair.client,
            hostile.ptr(),
            1,
            0,
            out.ptr(),
            "a buffer straddling the end",
        );
        hostile.point(0, end() + 100, 0);
        send_iovecs(
            t,
            v2,
            pair.client,
            hostile.ptr(),
            1,
            0,
            out.ptr(),
            "an empty buffer past the end",
        );
        hostile.point(0, one.buf(0).ptr(), u32::MAX);
        send_iovecs(
            t,
            v2,
            pair.client,
            hostile.ptr(),
            1,
            0,
            out.ptr(),
            "a 4 GiB buffer",
        );
    }
    // 100 one-byte iovecs, then 1024: all sent in one call.
    let bytes: Vec<u8> = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
    for count in [100usize, 1024] {
        let parts: Vec<&[u8]> = bytes[..count].chunks(1).collect();
        let many = Iovecs::of(&parts);
        send_iovecs(
            t,
            false,
            pair.client,
            many.ptr(),
            many.len(),
            0,
            out.ptr(),
            &format!("{count} one-byte iovecs"),
        );
    }
    wait(t, pair.server, false);

    let small = Iovecs::zeroed(&[3, 4]);
    recv_iovecs(
        t,
        false,
        pair.server,
        &small,
        2,
        1,
        out.ptr(),
        "[3, 4] peek",
    );
    recv_iovecs(t, false, pair.server, &small, 2, 0, out.ptr(), "[3, 4]");
    recv_iovecs(t, true, pair.server, &small, 2, 0, out.ptr(), "[3, 4]");
    recv_iovecs(t, false, pair.server, &small, 2, 4, out.ptr(), "[3, 4]");
    recv_iovecs(
        t,
        false,
        pair.server,
        &small,
        2,
        0x1_0000,
        out.ptr(),
        "[3, 4]",
    );
    recv_iovecs(t, false, pair.server, &small, 0, 0, out.ptr(), "no iovecs");
    recv_iovecs(
        t,
        false,
        pair.server,
        &small,
        1025,
        0,
        out.ptr(),
        "1025 iovecs",
    );
    recv_iovecs(
        t,
        false,
        pair.server,
        &small,
        2,
        0,
        straddling(4),
        "[3, 4], length out straddling the end",
    );
    let mut hostile = Iovecs::zeroed(&[8]);
    hostile.point(0, straddling(8), 8);
    recv_iovecs(
        t,
        false,
        pair.server,
        &hostile,
        1,
        0,
        out.ptr(),
        "a buffer straddling the end",
    );
    hostile.point(0, end() + 100, 0);
    recv_iovecs(
        t,
        true,
        pair.server,
        &hostile,
        1,
        0,
        out.ptr(),
        "an empty buffer past the end",
    );
    // The length lands inside the buffer just filled.
    let landing = Iovecs::zeroed(&[16]);
    let into = landing.buf(0).at(4);
    recv_iovecs(
        t,
        false,
        pair.server,
        &landing,
        1,
        0,
        into,
        "[16], length written into the data",
    );
    let big = Iovecs::zeroed(&[4096]);
    recv_iovecs(
        t,
        false,
        pair.server,
        &big,
        1,
        2,
        out.ptr(),
        "[4096] waitall",
    );
    recv_iovecs(t, false, pair.server, &big, 1, 0, out.ptr(), "[4096]");
    recv_iovecs(
        t,
        true,
        pair.server,
        &big,
        1,
        0,
        out.ptr(),
        "[4096] when empty",
    );

    t.section("fd_read / fd_write on sockets");
    let iov = Iovecs::of(&[b"via fd_write"]);
    // SAFETY: iovecs and `out` are live.
    let e = unsafe { fd_write(pair.client, iov.ptr(), 1, out.ptr()) };
    t.log(
        &format!("fd_write({}, [\"via fd_write\"])", t.fd(pair.client)),
        e,
        &format!("n={}", out.u32_at(0)),
    );
    wait(t, pair.server, false);
    let back = Iovecs::zeroed(&[32]);
    // SAFETY: as above.
    let e = unsafe { fd_read(pair.server, back.ptr(), 1, out.ptr()) };
    let n = out.u32_at(0) as usize;
    t.log(
        &format!("fd_read({}, [32])", t.fd(pair.server)),
        e,
        &format!("n={n} data={}", back.received(n)),
    );
    // SAFETY: as above.
    let e = unsafe { fd_read(pair.server, back.ptr(), 1, out.ptr()) };
    t.log(
        &format!("fd_read({}, [32]) when empty", t.fd(pair.server)),
        e,
        "",
    );
    let e = unsafe { fd_read(pair.server, straddling(8), 1, out.ptr()) };
    t.log(
        &format!(
            "fd_read({}, iovec table straddling the end)",
            t.fd(pair.server)
        ),
        e,
        "",
    );
    let e = unsafe { fd_write(u32::MAX, iov.ptr(), 1, out.ptr()) };
    t.log("fd_write(-1, [\"via fd_write\"])", e, "");

    t.section("sock_shutdown: every direction, and what follows");
    // A socket never connected.
    let fresh = open(t, INET4, STREAM);
    // SAFETY: plain call.
    let e = unsafe { sock_shutdown(fresh, 1) };
    t.log(
        &format!("sock_shutdown({}, rd), never connected", t.fd(fresh)),
        e,
        "",
    );
    close(t, fresh);
    for how in [4u32, 0x101, 0] {
        // SAFETY: plain call.
        let e = unsafe { sock_shutdown(pair.client, how) };
        t.log(
            &format!("sock_shutdown({}, {how:#x})", t.fd(pair.client)),
            e,
            "",
        );
    }
    recv(t, pair.client, 8);
    // SAFETY: plain calls.
    let e = unsafe { sock_shutdown(pair.client, 2) };
    t.log(&format!("sock_shutdown({}, wr)", t.fd(pair.client)), e, "");
    send(t, pair.client, b"after shutdown");
    wait(t, pair.server, false);
    recv(t, pair.server, 8);
    let e = unsafe { sock_shutdown(pair.server, 3) };
    t.log(
        &format!("sock_shutdown({}, rd|wr)", t.fd(pair.server)),
        e,
        "",
    );
    for fd in [u32::MAX, pair.listener] {
        // SAFETY: plain call.
        let e = unsafe { sock_shutdown(fd, 1) };
        t.log(&format!("sock_shutdown({}, rd)", t.fd(fd)), e, "");
    }
    // Shut for reading, a listener is disconnected: no longer listening.
    poll(
        t,
        false,
        &Subscriptions::new().read(1, pair.listener).timeout(9, 30),
        &format!(
            "read {} (a listener shut for reading), 30 ms",
            t.fd(pair.listener)
        ),
    );
    pair.close(t);

    t.section("a peer that resets");
    let pair = crate::steps::pair(t, INET4);
    send(t, pair.server, b"unread");
    wait(t, pair.client, false);
    let linger = Buf::from(&[1, 0, 0, 0, 0, 0, 0, 0]);
    // SAFETY: `linger` is live.
    let e = unsafe { sock_setsockopt(pair.client, 0, 9, linger.ptr(), 8) };
    t.log(
        &format!(
            "sock_setsockopt({}, SOL_SOCKET, SO_LINGER, {{on, 0 s}})",
            t.fd(pair.client)
        ),
        e,
        "",
    );
    close(t, pair.client);
    wait(t, pair.server, false);
    recv(t, pair.server, 8);
    recv(t, pair.server, 8);
    send(t, pair.server, b"to nobody");
    close(t, pair.server);
    close(t, pair.listener);
}

pub fn datagrams(t: &mut Transcript) {
    t.section("UDP: sock_send_to / sock_send_to_v2 / sock_recv_from_v2, IPv4 and IPv6");
    let (a, a_port) = udp(t, INET4);
    let (b, b_port) = udp(t, INET4);
    set_flags(t, b, NONBLOCK);
    let lo = Address::v4(LOOPBACK4);
    send_to(t, false, a, b"one", &lo, b_port, "127.0.0.1");
    send_to(
        t,
        true,
        a,
        b"two",
        &Address::storage(1, &LOOPBACK4),
        b_port,
        "storage 127.0.0.1",
    );
    send_to(
        t,
        false,
        a,
        b"three",
        &Address::raw(&[127, 0, 0]),
        b_port,
        "3 bytes",
    );
    send_to(
        t,
        true,
        a,
        b"four",
        &Address::raw(&[0u8; 127]),
        b_port,
        "127 bytes",
    );
    send_to(
        t,
        false,
        a,
        b"five",
        &Address::v4(LOOPBACK4).lying(straddling(4), 4),
        b_port,
        "bytes straddling the end",
    );
    send_to(
        t,
        false,
        a,
        b"any",
        &Address::v4([0, 0, 0, 0]),
        b_port,
        "0.0.0.0",
    );
    send_to(t, false, u32::MAX, b"six", &lo, b_port, "127.0.0.1");
    wait(t, b, false);
    recv_from_v2(t, b, 64, 128, 1);
    recv_from_v2(t, b, 64, 128, 0);
    recv_from_v2(t, b, 64, 4, 0);
    recv_from_v2(t, b, 2, 16, 0);
    recv_from_v2(t, b, 64, 128, 0);
    recv_from_v2(t, b, 64, 128, 0);
    recv_from_v2(t, b, 64, 5, 0);
    recv_from_v2(t, b, 64, 128, 8);
    recv_from_v2(t, u32::MAX, 64, 128, 0);
    let iov = Iovecs::zeroed(&[8]);
    let out = Buf::zeroed(12);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe {
        sock_recv_from_v2(
            b,
            iov.ptr(),
            1,
            straddling(8),
            0,
            out.ptr(),
            out.at(4),
            out.at(8),
        )
    };
    t.log(
        &format!(
            "sock_recv_from_v2({}, address record straddling the end)",
            t.fd(b)
        ),
        e,
        "",
    );
    let addr = Address::out(128);
    let e = unsafe {
        sock_recv_from_v2(
            b,
            iov.ptr(),
            1,
            addr.ptr(),
            0,
            straddling(2),
            out.at(4),
            out.at(8),
        )
    };
    t.log(
        &format!("sock_recv_from_v2({}, port straddling the end)", t.fd(b)),
        e,
        "",
    );
    // A datagram via send on a connected UDP socket, read with sock_recv.
    connect(t, a, &lo, b_port, "127.0.0.1");
    send(t, a, b"connected");
    wait(t, b, false);
    recv(t, b, 4);
    recv(t, b, 4);
    let _ = a_port;

    t.section("UDP: datagrams aimed at 0.0.0.0 (this host), from every kind of sender");
    let any = Address::v4([0, 0, 0, 0]);
    let (to_lo, to_lo_port) = udp(t, INET4);
    set_flags(t, to_lo, NONBLOCK);
    let to_any = open(t, INET4, DGRAM);
    bind(t, to_any, &any, 0, "0.0.0.0");
    let to_any_port = port_of(t, to_any);
    set_flags(t, to_any, NONBLOCK);
    let unbound = open(t, INET4, DGRAM);
    let bound_any = open(t, INET4, DGRAM);
    bind(t, bound_any, &any, 0, "0.0.0.0");
    port_of(t, bound_any);
    for (sender, who) in [
        (unbound, "unbound"),
        (bound_any, "bound to 0.0.0.0"),
        (a, "bound to 127.0.0.1"),
    ] {
        for (port, whom) in [
            (to_lo_port, "receiver on 127.0.0.1"),
            (to_any_port, "receiver on 0.0.0.0"),
        ] {
            send_to(
                t,
                false,
                sender,
                who.as_bytes(),
                &any,
                port,
                &format!("0.0.0.0 ({whom})"),
            );
            send_to(
                t,
                true,
                sender,
                who.as_bytes(),
                &Address::storage(1, &[0, 0, 0, 0]),
                port,
                &format!("storage 0.0.0.0 ({whom})"),
            );
        }
    }
    port_of(t, unbound);
    for receiver in [to_lo, to_any] {
        wait(t, receiver, false);
        for _ in 0..7 {
            recv_from_v2(t, receiver, 64, 16, 0);
        }
    }
    for fd in [to_lo, to_any, unbound, bound_any] {
        close(t, fd);
    }

    t.section("UDP: a reply to the sender that sock_recv_from_v2 reports");
    t.note("WasmEdge reports the sender's port byte-swapped: the reply goes elsewhere");
    let (client, _) = udp(t, INET4);
    set_flags(t, client, NONBLOCK);
    let (server, server_port) = udp(t, INET4);
    send_to(t, false, client, b"ping", &lo, server_port, "127.0.0.1");
    wait(t, server, false);
    let iov = Iovecs::zeroed(&[16]);
    let from = Address::out(4);
    let reported = Buf::zeroed(4);
    let lens = Buf::zeroed(8);
    // SAFETY: all pointers are into live buffers.
    let e = unsafe {
        sock_recv_from_v2(
            server,
            iov.ptr(),
            1,
            from.ptr(),
            0,
            reported.ptr(),
            lens.ptr(),
            lens.at(4),
        )
    };
    let port = reported.u32_at(0);
    t.log(
        &format!("sock_recv_from_v2({}, [16], 4-byte address)", t.fd(server)),
        e,
        &format!("from={} port={}", from.shown(), t.port(port)),
    );
    let back = Address::raw(from.bytes());
    send_to(
        t,
        false,
        server,
        b"pong",
        &back,
        port as u16,
        "the reported sender",
    );
    poll(
        t,
        false,
        &Subscriptions::new().read(1, client).timeout(9, 100),
        &format!("read {} for the reply, 100 ms", t.fd(client)),
    );
    recv(t, client, 16);
    close(t, client);
    close(t, server);

    let (c, c_port) = udp(t, INET6);
    let (d, _) = udp(t, INET6);
    send_to(t, false, d, b"six", &Address::v6_loopback(), c_port, "::1");
    send_to(
        t,
        true,
        d,
        b"seven",
        &Address::storage(2, &crate::sections::lifecycle::loopback6()),
        c_port,
        "storage ::1",
    );
    send_to(
        t,
        false,
        d,
        b"to v4",
        &lo,
        c_port,
        "127.0.0.1 from an inet6 socket",
    );
    wait(t, c, false);
    recv_from_v2(t, c, 64, 128, 0);
    recv_from_v2(t, c, 64, 4, 0);
    for fd in [a, b, c, d] {
        close(t, fd);
    }
}
