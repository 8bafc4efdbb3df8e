//! The transcript with the unversioned socket names imported by their V1
//! signatures (`sock_accept` with 2 parameters, `sock_recv_from` with 7,
//! `sock_getlocaladdr`/`sock_getpeeraddr` with 4), next to every `_v2` name.

#[cfg(target_os = "wasi")]
mod v1 {
    use abi_transcript::memory::{read_u16, straddling, Address, Buf, Iovecs};
    use abi_transcript::steps::*;
    use abi_transcript::transcript::Transcript;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn sock_accept(fd: u32, new_fd: u32) -> u32;
        #[allow(clippy::too_many_arguments)]
        fn sock_recv_from(
            fd: u32,
            iovs: u32,
            iovs_len: u32,
            addr: u32,
            flags: u32,
            len: u32,
            oflags: u32,
        ) -> u32;
        fn sock_getlocaladdr(fd: u32, addr: u32, kind: u32, port: u32) -> u32;
        fn sock_getpeeraddr(fd: u32, addr: u32, kind: u32, port: u32) -> u32;
    }

    fn address(t: &mut Transcript, peer: bool, fd: u32, size: usize) {
        let addr = Address::out(size);
        let out = Buf::zeroed(8);
        // SAFETY: all pointers are into live buffers.
        let e = unsafe {
            if peer {
                sock_getpeeraddr(fd, addr.ptr(), out.ptr(), out.at(4))
            } else {
                sock_getlocaladdr(fd, addr.ptr(), out.ptr(), out.at(4))
            }
        };
        let name = if peer {
            "sock_getpeeraddr"
        } else {
            "sock_getlocaladdr"
        };
        let outs = if e == 0 {
            format!(
                "{} type={} port={}",
                addr.shown(),
                out.u32_at(0),
                t.port(out.u32_at(4))
            )
        } else {
            String::new()
        };
        t.log(&format!("{name}({}, {size} bytes)", t.fd(fd)), e, &outs);
    }

    fn accept_v1(t: &mut Transcript, fd: u32, out: u32, what: &str) -> u32 {
        // SAFETY: the runtime checks the pointer.
        let e = unsafe { sock_accept(fd, out) };
        if e == 0 {
            let new = abi_transcript::memory::read_u32(out);
            let name = t.adopt(new);
            t.log(
                &format!("sock_accept({}, {what})", t.fd(fd)),
                e,
                &format!("fd={name}"),
            );
            new
        } else {
            t.log(&format!("sock_accept({}, {what})", t.fd(fd)), e, "");
            BAD
        }
    }

    fn recv_from_v1(t: &mut Transcript, fd: u32, max: usize, size: usize) {
        let iov = Iovecs::zeroed(&[max]);
        let addr = Address::out(size);
        let out = Buf::zeroed(8);
        // SAFETY: all pointers are into live buffers.
        let e = unsafe { sock_recv_from(fd, iov.ptr(), 1, addr.ptr(), 0, out.ptr(), out.at(4)) };
        let outs = if e == 0 {
            let n = out.u32_at(0) as usize;
            format!(
                "len={n} roflags={} data={} from={}",
                read_u16(out.at(4)),
                iov.received(n),
                addr.shown()
            )
        } else {
            String::new()
        };
        t.log(
            &format!("sock_recv_from({}, [{max}], {size}-byte address)", t.fd(fd)),
            e,
            &outs,
        );
    }

    pub fn sections(t: &mut Transcript) {
        t.section("sock_accept (V1): the new socket is blocking, pointers are checked first");
        let (listener, port) = listener(t, INET4);
        let client = open(t, INET4, STREAM);
        connect(t, client, &loopback(INET4).0, port, "127.0.0.1");
        port_of(t, client);
        accept_v1(t, listener, straddling(4), "out straddling the end");
        accept_v1(t, u32::MAX, Buf::zeroed(4).ptr(), "-1");
        let out = Buf::zeroed(4);
        let server = accept_v1(t, listener, out.ptr(), "out");
        fdstat(t, server);

        t.section("sock_getlocaladdr / sock_getpeeraddr (V1): sizes, families, pointers");
        for size in [4usize, 16, 3, 0, 128] {
            address(t, false, client, size);
            address(t, true, client, size);
        }
        address(t, true, listener, 4);
        address(t, false, u32::MAX, 4);
        let addr = Address::out(4);
        let out = Buf::zeroed(8);
        for (what, a, k, p) in [
            (
                "record straddling the end",
                straddling(8),
                out.ptr(),
                out.at(4),
            ),
            (
                "type straddling the end",
                addr.ptr(),
                straddling(4),
                out.at(4),
            ),
            (
                "port straddling the end",
                addr.ptr(),
                out.ptr(),
                straddling(4),
            ),
        ] {
            for (name, fd) in [("client", client), ("-1", u32::MAX)] {
                // SAFETY: the runtime checks every pointer.
                let e = unsafe { sock_getlocaladdr(fd, a, k, p) };
                t.log(&format!("sock_getlocaladdr({name}, {what})"), e, "");
            }
        }
        // Type and port written to the same place: the port comes last.
        let same = Buf::zeroed(4);
        // SAFETY: both out-values land in `same`, which is live.
        let e = unsafe { sock_getpeeraddr(server, addr.ptr(), same.ptr(), same.ptr()) };
        t.log(
            &format!(
                "sock_getpeeraddr({}, type and port at one address)",
                t.fd(server)
            ),
            e,
            &format!("value={}", t.port(same.u32_at(0))),
        );
        let v6 = pair(t, INET6);
        for size in [16usize, 4] {
            address(t, false, v6.client, size);
            address(t, true, v6.server, size);
        }
        v6.close(t);
        for fd in [client, server, listener] {
            close(t, fd);
        }

        t.section("sock_recv_from (V1): address buffers of every size");
        let (a, _) = udp(t, INET4);
        let (b, b_port) = udp(t, INET4);
        set_flags(t, b, NONBLOCK);
        let lo = loopback(INET4).0;
        for word in ["alpha", "beta", "gamma", "delta"] {
            send_to(t, false, a, word.as_bytes(), &lo, b_port, "127.0.0.1");
        }
        wait(t, b, false);
        recv_from_v1(t, b, 64, 4);
        recv_from_v1(t, b, 64, 16);
        recv_from_v1(t, b, 3, 4);
        recv_from_v1(t, b, 64, 128);
        recv_from_v1(t, b, 64, 5);
        recv_from_v1(t, u32::MAX, 64, 4);
        let (c, c_port) = udp(t, INET6);
        let (d, _) = udp(t, INET6);
        set_flags(t, c, NONBLOCK);
        for _ in 0..2 {
            send_to(t, false, d, b"v6", &Address::v6_loopback(), c_port, "::1");
        }
        wait(t, c, false);
        recv_from_v1(t, c, 64, 4);
        recv_from_v1(t, c, 64, 16);
        recv_from_v1(t, c, 64, 16);
        let pair = pair(t, INET4);
        send(t, pair.client, b"tcp");
        wait(t, pair.server, false);
        recv_from_v1(t, pair.server, 64, 16);
        pair.close(t);
        for fd in [a, b, c, d] {
            close(t, fd);
        }
    }
}

/// Without arguments: every case that leaves the program running. With
/// `files`: the filesystem cases, below a directory preopened as `/sandbox`.
/// With `fatal CASE`: one case after which WasmEdge ends the program.
#[cfg(target_os = "wasi")]
fn main() {
    let mut t = abi_transcript::transcript::Transcript::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            abi_transcript::sections::shared(&mut t);
            v1::sections(&mut t);
            t.section(&format!("{} calls", t.calls()));
        }
        [files] if files == "files" => {
            abi_transcript::sections::files::files(&mut t);
            t.section(&format!("{} calls", t.calls()));
        }
        [fatal, case] if fatal == "fatal" => {
            if abi_transcript::sections::names::fatal(&mut t, case) {
                t.section("still running");
            } else {
                eprintln!("abi_transcript: no fatal case {case:?}");
                std::process::exit(2);
            }
        }
        _ => {
            eprintln!("usage: abi_transcript [files | fatal CASE]");
            std::process::exit(2);
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("abi_transcript runs on wasm32-wasip1 only");
    std::process::exit(2);
}
