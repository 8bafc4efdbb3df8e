//! poll_oneoff and epoll_oneoff: clocks, descriptors, errors per
//! subscription, hang-ups, and lists that change from call to call.

use crate::ffi::*;
use crate::memory::{end, straddling, Buf, Iovecs, Subscriptions, CLOCK_MONOTONIC, CLOCK_REALTIME};
use crate::steps::*;
use crate::transcript::Transcript;

pub fn polling(t: &mut Transcript) {
    t.section("poll_oneoff: the call's own arguments");
    let subs = Subscriptions::new().timeout(1, 1).to_buf();
    let events = Buf::zeroed(64);
    let count = Buf::zeroed(4);
    // SAFETY: the runtime checks every pointer; the buffers are live.
    let e = unsafe { poll_oneoff(subs.ptr(), events.ptr(), 0, count.ptr()) };
    t.log(
        "poll_oneoff(no subscriptions)",
        e,
        &format!("n={}", count.u32_at(0)),
    );
    let too_many = end() / 48 + 16;
    for (what, s, ev, n, c) in [
        (
            "subscriptions straddling the end",
            straddling(48),
            events.ptr(),
            1,
            count.ptr(),
        ),
        (
            "events straddling the end",
            subs.ptr(),
            straddling(32),
            1,
            count.ptr(),
        ),
        (
            "count straddling the end",
            subs.ptr(),
            events.ptr(),
            1,
            straddling(4),
        ),
        (
            "more subscriptions than memory holds",
            subs.ptr(),
            events.ptr(),
            too_many,
            count.ptr(),
        ),
    ] {
        // SAFETY: as above.
        let e = unsafe { poll_oneoff(s, ev, n, c) };
        t.log(&format!("poll_oneoff({what})"), e, "");
    }

    t.section("clocks and sizes: pointers checked first, nothing half written");
    let out = Buf::zeroed(8);
    // SAFETY: the runtime checks every pointer.
    let e = unsafe { clock_time_get(9, 0, straddling(8)) };
    t.log("clock_time_get(clock 9, out past memory)", e, "");
    let e = unsafe { clock_time_get(9, 0, out.ptr()) };
    t.log("clock_time_get(clock 9)", e, "");
    let e = unsafe { clock_res_get(9, straddling(8)) };
    t.log("clock_res_get(clock 9, out past memory)", e, "");
    // The host's clock_getres (1 ns with high-resolution timers).
    for clock in 0..4 {
        let res = Buf::zeroed(8);
        // SAFETY: `res` holds a timestamp.
        let e = unsafe { clock_res_get(clock, res.ptr()) };
        let value = u64::from(res.u32_at(0)) | (u64::from(res.u32_at(4)) << 32);
        t.log(
            &format!("clock_res_get(clock {clock})"),
            e,
            &format!("res={value}"),
        );
    }
    let mut argc = Buf::zeroed(4);
    argc.set_u32(0, 0xAAAA_AAAA);
    let e = unsafe { args_sizes_get(argc.ptr(), straddling(4)) };
    let kept = argc.u32_at(0) == 0xAAAA_AAAA;
    t.log(
        "args_sizes_get(size past memory)",
        e,
        &format!("argc untouched: {kept}"),
    );

    // Only signals whose raise leaves the process as it was: WasmEdge
    // raises the others in its own process. The number is read as a byte.
    for signal in [0u32, 16, 17, 22, 27, 31, 255, 256, 0x10_0010, 287] {
        // SAFETY: no pointer.
        let e = unsafe { proc_raise(signal) };
        t.log(&format!("proc_raise({signal:#x})"), e, "");
    }

    t.section("poll_oneoff: clocks");
    poll(
        t,
        false,
        &Subscriptions::new().timeout(7, 20),
        "monotonic 20 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new().clock(7, CLOCK_REALTIME, 20_000_000, 0),
        "realtime 20 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new().clock(7, CLOCK_MONOTONIC, 0, 0),
        "monotonic 0 ns",
    );
    poll(
        t,
        false,
        &Subscriptions::new().clock(7, CLOCK_MONOTONIC, 1, 1),
        "monotonic absolute 1 ns (long past)",
    );
    // The monotonic clock counts from the host's boot, not the guest's
    // start: 60 s after it is long past.
    poll(
        t,
        false,
        &Subscriptions::new()
            .clock(7, CLOCK_MONOTONIC, 60_000_000_000, 1)
            .timeout(8, 300),
        "monotonic absolute 60 s (past since boot), then monotonic 300 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .clock(5, 2, 1_000_000, 0)
            .timeout(6, 30),
        "process-cputime clock, then monotonic 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .clock(5, 9, 1_000_000, 0)
            .timeout(6, 30),
        "clock id 9, then monotonic 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .clock(5, CLOCK_MONOTONIC, 1_000_000, 2)
            .timeout(6, 30),
        "clock flags 2, then monotonic 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new().timeout(5, 300).timeout(6, 10),
        "300 ms and 10 ms",
    );

    t.section("poll_oneoff: descriptors");
    let pair = pair(t, INET4);
    poll(
        t,
        false,
        &Subscriptions::new().read(1, pair.server).timeout(9, 30),
        &format!("read {} (nothing sent), 30 ms", t.fd(pair.server)),
    );
    poll(
        t,
        false,
        &Subscriptions::new().write(2, pair.server).timeout(9, 5000),
        &format!("write {}", t.fd(pair.server)),
    );
    send(t, pair.client, b"ping");
    poll(
        t,
        false,
        &Subscriptions::new()
            .timeout(9, 5000)
            .write(2, pair.server)
            .read(1, pair.server),
        &format!("clock, write {0}, read {0}", t.fd(pair.server)),
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(1, pair.server)
            .read(3, pair.server)
            .timeout(9, 5000),
        &format!("read {0} twice", t.fd(pair.server)),
    );
    // The first of the two changes while the second stays in its place:
    // the second takes over; then a first comes back ahead of it.
    poll(
        t,
        false,
        &Subscriptions::new()
            .timeout(8, 5000)
            .read(3, pair.server)
            .timeout(9, 5000),
        &format!(
            "clock where the first read was, read {0}",
            t.fd(pair.server)
        ),
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(1, pair.server)
            .read(3, pair.server)
            .timeout(9, 5000),
        &format!("read {0} twice again", t.fd(pair.server)),
    );
    let closed = open(t, INET4, STREAM);
    close(t, closed);
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(4, u32::MAX)
            .write(5, closed)
            .read(6, 1_000_000_007)
            .timeout(9, 30),
        "read -1, write a closed descriptor, read one never opened, 30 ms",
    );
    // A duplicate of a subscription that fails gets the same error, not
    // EEXIST: WasmEdge checks the descriptor before it looks for the
    // duplicate, and forgets a registration epoll refused.
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(4, 1_000_000_007)
            .read(5, 1_000_000_007)
            .timeout(9, 30),
        "read one never opened, twice, 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .tagged(4, 3, pair.server)
            .tagged(5, 0x81, pair.server)
            .timeout(9, 30),
        "tag 3, tag 0x81, 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new().write(6, 1).timeout(9, 5000),
        "write stdout",
    );
    poll(
        t,
        false,
        &Subscriptions::new().read(6, 0).timeout(9, 30),
        "read stdin, 30 ms",
    );
    poll(
        t,
        false,
        &Subscriptions::new().read(6, 0).read(7, 0).timeout(9, 30),
        "read stdin twice, 30 ms",
    );
    // A listener with a connection waiting.
    let waiting = open(t, INET4, STREAM);
    let port = port_of(t, pair.listener);
    connect(t, waiting, &loopback(INET4).0, port, "127.0.0.1");
    poll(
        t,
        false,
        &Subscriptions::new().read(7, pair.listener).timeout(9, 5000),
        &format!("read {} (a connection waits)", t.fd(pair.listener)),
    );
    let accepted = accept(t, pair.listener);

    t.section("poll_oneoff: a list that changes between calls");
    let both = Subscriptions::new()
        .read(1, pair.server)
        .read(2, accepted)
        .timeout(9, 30);
    poll(t, false, &both, "read server, read accepted, 30 ms");
    recv(t, pair.server, 16);
    poll(t, false, &both, "the same list again, 30 ms");
    send(t, waiting, b"x");
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(2, accepted)
            .read(1, pair.server)
            .timeout(9, 5000),
        "the two reads swapped",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(2, accepted)
            .read(2, accepted)
            .timeout(9, 5000),
        "read accepted twice",
    );
    poll(
        t,
        false,
        &Subscriptions::new().read(2, accepted).timeout(9, 5000),
        "read accepted once",
    );
    close(t, accepted);
    poll(
        t,
        false,
        &Subscriptions::new().read(2, accepted).timeout(9, 30),
        "read accepted after closing it, 30 ms",
    );

    t.section("poll_oneoff: hang-ups");
    close(t, pair.client);
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(1, pair.server)
            .write(2, pair.server)
            .timeout(9, 5000),
        "read and write the server side after the client closed",
    );
    recv(t, pair.server, 16);
    // SAFETY: plain call.
    let e = unsafe { sock_shutdown(pair.server, 3) };
    t.log(
        &format!("sock_shutdown({}, rd|wr)", t.fd(pair.server)),
        e,
        "",
    );
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(1, pair.server)
            .write(2, pair.server)
            .timeout(9, 5000),
        "read and write after shutting down both ways",
    );
    let refused = open(t, INET4, STREAM);
    set_flags(t, refused, NONBLOCK);
    let gone = open(t, INET4, STREAM);
    bind(t, gone, &loopback(INET4).0, 0, "127.0.0.1");
    let gone_port = port_of(t, gone);
    close(t, gone);
    connect(t, refused, &loopback(INET4).0, gone_port, "127.0.0.1");
    poll(
        t,
        false,
        &Subscriptions::new().write(3, refused).timeout(9, 5000),
        "write a socket whose connect was refused",
    );
    crate::sections::lifecycle::so_error(t, refused);
    // WasmEdge asks epoll for EPOLLRDHUP with a write as with a read: a
    // full socket whose peer shut down its sending side wakes the wait
    // with an epoll event that maps to no WASI event, so the call returns
    // at once, empty-handed (and again each call while the buffer is full).
    let full = crate::steps::pair(t, INET4);
    set_flags(t, full.server, NONBLOCK);
    let filled = fill(full.server);
    t.log(
        &format!(
            "sock_send({}, 64 KiB) until it would block",
            t.fd(full.server)
        ),
        filled,
        "",
    );
    // SAFETY: plain call.
    let e = unsafe { sock_shutdown(full.client, 2) };
    t.log(&format!("sock_shutdown({}, wr)", t.fd(full.client)), e, "");
    let write_only = Subscriptions::new().write(2, full.server).timeout(9, 30);
    let what = format!(
        "write {} (full, its peer shut down), 30 ms",
        t.fd(full.server)
    );
    poll(t, false, &write_only, &what);
    poll(t, false, &write_only, &format!("{what}, again"));
    poll(
        t,
        false,
        &Subscriptions::new()
            .read(1, full.server)
            .write(2, full.server)
            .timeout(9, 30),
        &format!(
            "read and write {} (full, its peer shut down), 30 ms",
            t.fd(full.server)
        ),
    );
    full.close(t);

    t.section("epoll_oneoff");
    poll(
        t,
        true,
        &Subscriptions::new().timeout(1, 10),
        "monotonic 10 ms",
    );
    poll(
        t,
        true,
        &Subscriptions::new().read(1, pair.server).timeout(9, 5000),
        "read the server side (shut down both ways)",
    );
    poll(
        t,
        true,
        &Subscriptions::new().read(1, u32::MAX).timeout(9, 10),
        "read -1, 10 ms",
    );
    for fd in [refused, waiting, pair.server, pair.listener] {
        close(t, fd);
    }
}

/// Sends to `fd` (non-blocking) until its send buffer is full: the errno
/// that stopped it (EAGAIN when full; how many bytes fit varies).
fn fill(fd: u32) -> u32 {
    let chunk = vec![b'x'; 64 * 1024];
    let iov = Iovecs::of(&[&chunk]);
    let out = Buf::zeroed(4);
    for _ in 0..10_000 {
        // SAFETY: the iovecs and `out` are live.
        let e = unsafe { sock_send(fd, iov.ptr(), 1, 0, out.ptr()) };
        if e != 0 {
            return e;
        }
    }
    0
}
