//! The unversioned names WasmEdge resolves by signature: imported here with
//! their V2 signatures, so the runtime must link the V2 functions to them
//! (`sock_accept` with flags, `sock_recv_from` with a port, address calls
//! that take the 128-byte storage form).

#[cfg(target_os = "wasi")]
mod by_signature {
    use abi_transcript::memory::{Address, Buf, Iovecs};
    use abi_transcript::steps::*;
    use abi_transcript::transcript::Transcript;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn sock_accept(fd: u32, flags: u32, new_fd: u32) -> u32;
        #[allow(clippy::too_many_arguments)]
        fn sock_recv_from(
            fd: u32,
            iovs: u32,
            iovs_len: u32,
            addr: u32,
            flags: u32,
            port: u32,
            len: u32,
            oflags: u32,
        ) -> u32;
        fn sock_getlocaladdr(fd: u32, addr: u32, port: u32) -> u32;
        fn sock_getpeeraddr(fd: u32, addr: u32, port: u32) -> u32;
    }

    fn address(t: &mut Transcript, peer: bool, fd: u32, size: usize) {
        let addr = Address::out(size);
        let port = Buf::zeroed(4);
        // SAFETY: all pointers are into live buffers.
        let e = unsafe {
            if peer {
                sock_getpeeraddr(fd, addr.ptr(), port.ptr())
            } else {
                sock_getlocaladdr(fd, addr.ptr(), port.ptr())
            }
        };
        let name = if peer {
            "sock_getpeeraddr/3"
        } else {
            "sock_getlocaladdr/3"
        };
        let outs = if e == 0 {
            format!("{} port={}", addr.shown(), t.port(port.u32_at(0)))
        } else {
            String::new()
        };
        t.log(&format!("{name}({}, {size} bytes)", t.fd(fd)), e, &outs);
    }

    pub fn sections(t: &mut Transcript) {
        t.section("unversioned names with V2 signatures");
        let (listener, port) = listener(t, INET4);
        let client = open(t, INET4, STREAM);
        connect(t, client, &loopback(INET4).0, port, "127.0.0.1");
        port_of(t, client);
        let out = Buf::zeroed(4);
        for flags in [0x100u32, 0] {
            // SAFETY: `out` is live.
            let e = unsafe { sock_accept(listener, flags, out.ptr()) };
            let outs = if e == 0 {
                t.adopt(out.u32_at(0))
            } else {
                String::new()
            };
            t.log(
                &format!("sock_accept/3({}, {flags:#x})", t.fd(listener)),
                e,
                &outs,
            );
        }
        let server = out.u32_at(0);
        for size in [128usize, 16, 4] {
            address(t, false, client, size);
            address(t, true, server, size);
        }
        let (a, _) = udp(t, INET4);
        let (b, b_port) = udp(t, INET4);
        let lo = loopback(INET4).0;
        for _ in 0..2 {
            send_to(t, false, a, b"datagram", &lo, b_port, "127.0.0.1");
        }
        wait(t, b, false);
        for size in [128usize, 16] {
            let buf = Iovecs::zeroed(&[64]);
            let addr = Address::out(size);
            let port = Buf::zeroed(4);
            let lens = Buf::zeroed(8);
            // SAFETY: all pointers are into live buffers.
            let e = unsafe {
                sock_recv_from(
                    b,
                    buf.ptr(),
                    1,
                    addr.ptr(),
                    0,
                    port.ptr(),
                    lens.ptr(),
                    lens.at(4),
                )
            };
            let outs = if e == 0 {
                received_from(t, &buf, &addr, port.u32_at(0), &lens)
            } else {
                String::new()
            };
            t.log(
                &format!("sock_recv_from/8({}, [64], {size}-byte address)", t.fd(b)),
                e,
                &outs,
            );
        }
        for fd in [a, b, client, server, listener] {
            close(t, fd);
        }
    }
}

#[cfg(target_os = "wasi")]
fn main() {
    let mut t = abi_transcript::transcript::Transcript::new();
    by_signature::sections(&mut t);
    t.section(&format!("{} calls", t.calls()));
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("abi_transcript_by_signature runs on wasm32-wasip1 only");
    std::process::exit(2);
}
