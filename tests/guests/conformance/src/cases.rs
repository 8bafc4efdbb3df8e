use edgepoll::net::{self, Shutdown, SocketAddr, TcpListener, TcpStream};
use edgepoll::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};
use wasmedge_wasi_socket::socket::{Socket, SocketOptLevel, SocketOptName};

type Result<T> = std::result::Result<T, String>;

fn err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e} ({:?})", e.kind())
}

fn addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Waits up to 5 s for `stream` to be ready for `interest`.
fn wait(stream: &impl std::os::fd::AsRawFd, interest: Interest) -> Result<edgepoll::Event> {
    let mut poll = Poll::new();
    poll.register(stream, Token(1), interest)
        .map_err(err("register"))?;
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(5)))
        .map_err(err("poll"))?;
    events
        .iter()
        .next()
        .copied()
        .ok_or_else(|| "no readiness within 5 s".to_string())
}

fn accept(listener: &TcpListener) -> Result<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match net::accept(listener) {
            Ok(pair) => return Ok(pair),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                wait(listener, Interest::READABLE)?;
            }
            Err(e) => return Err(err("accept")(e)),
        }
    }
}

/// A connected (client, server) pair on `host`.
fn pair(host: &str) -> Result<(TcpStream, TcpStream, SocketAddr)> {
    let listener = net::bind(addr(&format!("{host}:0"))).map_err(err("bind"))?;
    let local = net::local_addr(&listener).map_err(err("local_addr"))?;
    let client = net::connect(local).map_err(err("connect"))?;
    let (server, peer) = accept(&listener)?;
    wait(&client, Interest::WRITABLE)?;
    if let Some(e) = net::take_error(&client).map_err(err("take_error"))? {
        return Err(err("connect completion")(e));
    }
    Ok((client, server, peer))
}

fn read_some(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(n) => return Ok(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                wait(stream, Interest::READABLE)?;
            }
            Err(e) => return Err(err("read")(e)),
        }
    }
}

pub fn run(case: &str) -> Result<()> {
    match case {
        "bind-in-use" => {
            let first = net::bind(addr("127.0.0.1:0")).map_err(err("first bind"))?;
            let taken = net::local_addr(&first).map_err(err("local_addr"))?;
            match net::bind(taken) {
                Ok(_) => println!("second_bind=ok"),
                Err(e) => println!("second_bind={:?}", e.kind()),
            }
        }
        "connect-refused" => {
            let free = {
                let l = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
                net::local_addr(&l).map_err(err("local_addr"))?
            };
            match TcpStream::connect(free) {
                Ok(_) => println!("blocking=ok"),
                Err(e) => println!("blocking={:?}", e.kind()),
            }
            let stream = net::connect(free).map_err(err("connect"))?;
            let event = wait(&stream, Interest::WRITABLE)?;
            // As `net::connect`'s docs say: a hang-up, not an error event.
            println!("hang_up={}", event.is_hang_up());
            println!("error_event={}", event.is_error());
            match net::take_error(&stream).map_err(err("take_error"))? {
                None => println!("nonblocking=ok"),
                Some(e) => println!("nonblocking={:?}", e.kind()),
            }
            match net::recv(&stream, &mut [0; 8]) {
                Ok(n) => println!("then_read=Ok({n})"),
                Err(e) => println!("then_read={:?}", e.kind()),
            }
        }
        "ipv6-zone" => {
            // WasmEdge's sockets carry no scope id: refused, not dropped.
            match net::bind(addr("[::1%1]:0")) {
                Ok(_) => println!("bind=ok"),
                Err(e) => println!("bind={:?}", e.kind()),
            }
            // Loopback with a zone: were the refusal to fail, the connect
            // would still reach nothing beyond this machine.
            match net::connect(addr("[::1%2]:1")) {
                Ok(_) => println!("connect=ok"),
                Err(e) => println!("connect={:?}", e.kind()),
            }
            let unzoned = net::bind(addr("[::1]:0")).map_err(err("bind [::1]"))?;
            let local = net::local_addr(&unzoned).map_err(err("local_addr"))?;
            println!("unzoned={}", local.ip());
        }
        "nonblocking-connect" => {
            let (_client, _server, _) = pair("127.0.0.1")?;
            println!("connected=ok");
        }
        "accept-until-wouldblock" => {
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            let local = net::local_addr(&listener).map_err(err("local_addr"))?;
            let clients: Vec<TcpStream> = (0..3)
                .map(|_| net::connect(local))
                .collect::<io::Result<_>>()
                .map_err(err("connect"))?;
            for c in &clients {
                wait(c, Interest::WRITABLE)?;
            }
            wait(&listener, Interest::READABLE)?;
            let mut accepted = 0;
            let outcome = loop {
                match net::accept(&listener) {
                    Ok(_) => accepted += 1,
                    Err(e) => break format!("{:?}", e.kind()),
                }
            };
            println!("accepted={accepted}");
            println!("then={outcome}");
        }
        "recv-after-close" => {
            let (client, mut server, _) = pair("127.0.0.1")?;
            drop(client);
            println!("read_after_close={}", read_some(&mut server)?.len());
        }
        "send-after-reset" => {
            let (client, mut server, _) = pair("127.0.0.1")?;
            let socket: &Socket = client.as_ref();
            // SO_LINGER {on, 0 s}: close sends RST instead of FIN.
            socket
                .setsockopt(
                    SocketOptLevel::SolSocket,
                    SocketOptName::SoLinger,
                    [1i32, 0i32],
                )
                .map_err(err("SO_LINGER"))?;
            drop(client);
            let _ = wait(&server, Interest::READABLE);
            let mut outcome = "never failed".to_string();
            for _ in 0..100 {
                match server.write(b"data") {
                    Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        outcome = format!("{:?}", e.kind());
                        break;
                    }
                }
            }
            println!("send_error={outcome}");
        }
        "shutdown" => {
            let (mut client, mut server, _) = pair("127.0.0.1")?;
            client
                .shutdown(Shutdown::Write)
                .map_err(err("shutdown write"))?;
            println!(
                "peer_reads_after_write_shutdown={}",
                read_some(&mut server)?.len()
            );
            server.write_all(b"still open").map_err(err("write back"))?;
            println!(
                "other_half={}",
                String::from_utf8_lossy(&read_some(&mut client)?)
            );
            client
                .shutdown(Shutdown::Read)
                .map_err(err("shutdown read"))?;
            println!("read_after_read_shutdown={}", read_some(&mut client)?.len());
            match client.shutdown(Shutdown::Both) {
                Ok(()) => println!("shutdown_both=ok"),
                Err(e) => println!("shutdown_both={:?}", e.kind()),
            }
        }
        "addresses" => {
            for host in ["127.0.0.1", "[::1]"] {
                let (client, server, accepted_peer) = pair(host)?;
                let client_local = net::local_addr(&client).map_err(err("local_addr"))?;
                let server_peer = net::peer_addr(&server).map_err(err("peer_addr"))?;
                let client_peer = net::peer_addr(&client).map_err(err("peer_addr"))?;
                let server_local = net::local_addr(&server).map_err(err("local_addr"))?;
                let family = if client_local.is_ipv4() { "v4" } else { "v6" };
                println!("{family}_ip={}", client_local.ip());
                println!(
                    "{family}_peer_matches={}",
                    server_peer == client_local && accepted_peer == client_local
                );
                println!("{family}_local_matches={}", client_peer == server_local);
                println!("{family}_port_nonzero={}", client_local.port() != 0);
            }
        }
        "sockopts" => {
            let (client, _server, _) = pair("127.0.0.1")?;
            let socket: &Socket = client.as_ref();
            socket
                .setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoKeepalive, 1i32)
                .map_err(err("SO_KEEPALIVE"))?;
            println!(
                "keepalive={}",
                socket.keepalive().map_err(err("get keepalive"))?
            );
            socket
                .setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoKeepalive, 0i32)
                .map_err(err("SO_KEEPALIVE"))?;
            println!(
                "keepalive_off={}",
                !socket.keepalive().map_err(err("get keepalive"))?
            );
            socket
                .setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoRcvbuf, 65536i32)
                .map_err(err("SO_RCVBUF"))?;
            println!(
                "rcvbuf_at_least_set={}",
                socket.recv_buffer_size().map_err(err("get rcvbuf"))? >= 65536
            );
            println!(
                "type_is_stream={}",
                matches!(
                    socket.r#type(),
                    Ok(wasmedge_wasi_socket::socket::SocketType::Stream)
                )
            );
            println!(
                "no_pending_error={}",
                net::take_error(&client).map_err(err("SO_ERROR"))?.is_none()
            );
        }
        "poll-clocks" => {
            let mut poll = Poll::new();
            let mut events = Events::with_capacity(1);
            let start = Instant::now();
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .map_err(err("poll"))?;
            let waited = start.elapsed();
            println!("events={}", events.len());
            println!(
                "waited_at_least_100ms={}",
                waited >= Duration::from_millis(100)
            );
            println!("woke_within_2s={}", waited < Duration::from_secs(2));
        }
        "poll-hangup" => {
            let (client, server, _) = pair("127.0.0.1")?;
            client.shutdown(Shutdown::Write).map_err(err("shutdown"))?;
            match client.shutdown(Shutdown::Write) {
                Ok(()) => println!("second_shutdown=ok"),
                Err(e) => println!("second_shutdown={:?}", e.kind()),
            }
            drop(server);
            let event = wait(&client, Interest::READABLE)?;
            println!("readable={}", event.is_readable());
            println!("hang_up={}", event.is_hang_up());
            let mut client = client;
            println!("read={}", read_some(&mut client)?.len());
        }
        "quiet-readiness" => quiet_readiness(false)?,
        "quiet-readiness-peek" => quiet_readiness(true)?,
        "quiet-unsplit" => quiet_unsplit()?,
        "same-fd-twice" => {
            use wasmedge_wasi_socket::poll::{poll, EventType, Subscription};
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            // A connection waits: the first subscription is ready to read.
            let local = net::local_addr(&listener).map_err(err("local_addr"))?;
            let _client = net::connect(local).map_err(err("connect"))?;
            let subs = [
                Subscription::io(1, &listener, true, false, None),
                Subscription::io(2, &listener, true, false, None),
                Subscription::timeout(3, std::time::SystemTime::now() + Duration::from_millis(50)),
            ];
            let events = poll(&subs).map_err(err("poll"))?;
            for e in events {
                let what = match e.event_type {
                    EventType::Timeout => "timeout".to_string(),
                    EventType::Error(e) => format!("{:?}", e.kind()),
                    EventType::Read => "read".to_string(),
                    EventType::Write => "write".to_string(),
                };
                println!("event_{}={what}", e.userdata);
            }
        }
        "udp-refused" => {
            // A datagram to a port nobody listens on: the ICMP refusal
            // leaves the socket with an error and nothing to read, which
            // wakes WasmEdge's epoll with EPOLLERR alone and so no WASI
            // event. Poll must report it, not wait out its timeout (woken
            // at once each time, it spun until then).
            let closed = {
                let probe = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
                net::local_addr(&probe).map_err(err("local_addr"))?
            };
            let socket = net::UdpSocket::connect(closed).map_err(err("connect"))?;
            let mut poll = Poll::new();
            poll.register(&socket, Token(7), Interest::READABLE)
                .map_err(err("register"))?;
            socket.send(b"anyone?").map_err(err("send"))?;
            let mut events = Events::with_capacity(4);
            let start = Instant::now();
            poll.poll(&mut events, Some(Duration::from_secs(3)))
                .map_err(err("poll"))?;
            let seen: Vec<String> = events
                .iter()
                .map(|e| format!("{}:{}", e.token().0, e.raw_error()))
                .collect();
            println!("events={}", seen.join(","));
            println!("within_1s={}", start.elapsed() < Duration::from_secs(1));
        }
        "poll-after-rights-dropped" => {
            // A socket polled, then given up its right to be polled for
            // writing: the next poll of the same list says so (WasmEdge
            // checks rights on every call). The records are written here,
            // zeroed, so that both calls pass the same bytes, as a loop
            // that changed nothing does.
            use std::os::fd::AsRawFd;
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn fd_fdstat_set_rights(fd: u32, base: u64, inheriting: u64) -> u16;
                fn poll_oneoff(subs: *const u8, events: *mut u8, n: u32, got: *mut u32) -> u16;
            }
            let (client, _server, _) = pair("127.0.0.1")?;
            let mut subs = [0u8; 96];
            // 1: FD_WRITE (tag 2) on the client.
            subs[0] = 1;
            subs[8] = 2;
            subs[16..20].copy_from_slice(&(client.as_raw_fd() as u32).to_le_bytes());
            // 2: the monotonic clock (id 1), 500 ms from the call (tag 0).
            subs[48] = 2;
            subs[64..68].copy_from_slice(&1u32.to_le_bytes());
            subs[72..80].copy_from_slice(&500_000_000u64.to_le_bytes());
            let poll = |subs: &[u8; 96]| -> Result<String> {
                let mut events = [0u8; 64];
                let mut got = 0u32;
                // SAFETY: two records in, room for two events out.
                let errno = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2, &mut got) };
                if errno != 0 {
                    return Err(format!("poll_oneoff: {errno}"));
                }
                let mut seen: Vec<String> = events
                    .chunks(32)
                    .take(got as usize)
                    .map(|e| {
                        let error = u16::from_le_bytes([e[8], e[9]]);
                        match (e[0], error) {
                            (2, _) => "timeout".to_string(),
                            (_, 0) => "write".to_string(),
                            (_, errno) => format!("error {errno}"),
                        }
                    })
                    .collect();
                seen.sort();
                Ok(seen.join("+"))
            };
            println!("before={}", poll(&subs)?);
            // SOCK_RECV (bit 29) and SOCK_SEND (30) only: no FD_WRITE (6),
            // no POLL_FD_READWRITE (27).
            // SAFETY: a plain call on an open descriptor.
            let set = unsafe { fd_fdstat_set_rights(client.as_raw_fd() as u32, 3 << 29, 0) };
            println!("set_rights={set}");
            println!("after={}", poll(&subs)?);
        }
        "poll-every-ready-reported" => {
            // Four sockets listed, then two of them; all four made readable,
            // the two left out between the listed ones. Every listed socket
            // that is ready is reported: WasmEdge drops the left-out ones
            // from its epoll set, while edgepoll-host keeps them (parked),
            // and its room for events was the call's size, so a batch of
            // left-out ones could crowd a listed one out.
            use std::os::fd::AsRawFd;
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn poll_oneoff(subs: *const u8, events: *mut u8, n: u32, got: *mut u32) -> u16;
            }
            let mut pairs = Vec::new();
            for _ in 0..4 {
                let (client, server, _) = pair("127.0.0.1")?;
                pairs.push((client, server));
            }
            let servers: Vec<u32> = pairs.iter().map(|(_, s)| s.as_raw_fd() as u32).collect();
            // FD_READ (tag 1) on each listed server side, userdata its
            // number (1 to 4); then the monotonic clock (tag 0, id 1).
            let call = |listed: &[usize], nanos: u64| -> Result<String> {
                let mut subs = Vec::new();
                for &i in listed {
                    let mut record = [0u8; 48];
                    record[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                    record[8] = 1;
                    record[16..20].copy_from_slice(&servers[i].to_le_bytes());
                    subs.extend_from_slice(&record);
                }
                let mut clock = [0u8; 48];
                clock[16..20].copy_from_slice(&1u32.to_le_bytes());
                clock[24..32].copy_from_slice(&nanos.to_le_bytes());
                subs.extend_from_slice(&clock);
                let n = listed.len() + 1;
                let mut events = vec![0u8; 32 * n];
                let mut got = 0u32;
                // SAFETY: `n` records in, room for `n` events out.
                let errno =
                    unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), n as u32, &mut got) };
                if errno != 0 {
                    return Err(format!("poll_oneoff: {errno}"));
                }
                let mut seen: Vec<String> = events
                    .chunks(32)
                    .take(got as usize)
                    .map(|e| match e[10] {
                        0 => "clock".to_string(),
                        _ => e[0].to_string(),
                    })
                    .collect();
                seen.sort();
                Ok(seen.join(","))
            };
            println!("all_listed={}", call(&[0, 1, 2, 3], 0)?);
            println!("two_listed={}", call(&[2, 3], 0)?);
            for i in [0, 2, 1, 3] {
                pairs[i].0.write_all(b"x").map_err(err("write"))?;
            }
            // Readable in that order before the call: loopback delivers as
            // it sends, and a moment more is waited out on the clock alone
            // (a sleep is a poll, which would change what is listed).
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            println!("reported={}", call(&[2, 3], 2_000_000_000)?);
        }
        "poll-renumbered" => {
            // A polled listener moved to another number (fd_renumber) is
            // polled under the new one as any other; and a sleep afterwards
            // sleeps (its old registration must not wake it).
            use std::os::fd::AsRawFd;
            use wasmedge_wasi_socket::poll::{poll, EventType, Subscription};
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn fd_renumber(from: u32, to: u32) -> u16;
            }
            let describe = |events: Vec<wasmedge_wasi_socket::poll::Event>| {
                let mut seen: Vec<String> = events
                    .into_iter()
                    .map(|e| match e.event_type {
                        EventType::Timeout => "timeout".to_string(),
                        EventType::Error(e) => format!("{:?}", e.kind()),
                        EventType::Read => "read".to_string(),
                        EventType::Write => "write".to_string(),
                    })
                    .collect();
                seen.sort();
                seen.join("+")
            };
            let soon = || std::time::SystemTime::now() + Duration::from_millis(20);
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            let port = net::local_addr(&listener)
                .map_err(err("local_addr"))?
                .port();
            let other = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            let before = [
                Subscription::io(1, &listener, true, false, None),
                Subscription::timeout(2, soon()),
            ];
            println!("before={}", describe(poll(&before).map_err(err("poll"))?));
            // SAFETY: both numbers are open; the listener's old number is
            // then closed by the move, so its value is forgotten, not dropped.
            let moved =
                unsafe { fd_renumber(listener.as_raw_fd() as u32, other.as_raw_fd() as u32) };
            println!("renumber={moved}");
            std::mem::forget(listener);
            let listener = other;
            let after = [
                Subscription::io(1, &listener, true, false, None),
                Subscription::timeout(2, soon()),
            ];
            println!("after={}", describe(poll(&after).map_err(err("poll"))?));
            let _client =
                net::connect(addr(&format!("127.0.0.1:{port}"))).map_err(err("connect"))?;
            let ready = [
                Subscription::io(1, &listener, true, false, None),
                Subscription::timeout(2, std::time::SystemTime::now() + Duration::from_secs(2)),
            ];
            println!("ready={}", describe(poll(&ready).map_err(err("poll"))?));
            let start = Instant::now();
            let sleep = [Subscription::timeout(
                2,
                std::time::SystemTime::now() + Duration::from_millis(100),
            )];
            println!("sleep={}", describe(poll(&sleep).map_err(err("poll"))?));
            println!(
                "slept_100ms={}",
                start.elapsed() >= Duration::from_millis(100)
            );
        }
        "descriptor-numbers" => {
            // 100 000 sockets opened and closed, 64 kept open at a time: every
            // new number must differ from those in use, and they are spread
            // over [0, 2^31) as WasmEdge spreads them.
            use std::collections::{HashSet, VecDeque};
            use std::os::fd::AsRawFd;
            let mut live: VecDeque<Socket> = VecDeque::new();
            let mut in_use: HashSet<i32> = HashSet::new();
            let (mut collisions, mut above_2_20, mut below_2_31) = (0, 0, 0);
            for _ in 0..100_000 {
                let socket = Socket::new(
                    wasmedge_wasi_socket::socket::AddressFamily::Inet4,
                    wasmedge_wasi_socket::socket::SocketType::Stream,
                )
                .map_err(err("socket"))?;
                let fd = socket.as_raw_fd();
                if !in_use.insert(fd) {
                    collisions += 1;
                }
                if fd >= 1 << 20 {
                    above_2_20 += 1;
                }
                if (0..i32::MAX).contains(&fd) {
                    below_2_31 += 1;
                }
                live.push_back(socket);
                if live.len() > 64 {
                    if let Some(old) = live.pop_front() {
                        in_use.remove(&old.as_raw_fd());
                    }
                }
            }
            println!("collisions={collisions}");
            println!("all_below_2_31={}", below_2_31 == 100_000);
            println!("mostly_above_2_20={}", above_2_20 > 99_000);
        }
        "unix-echo" => {
            // A Unix domain socket, reached by its path (a V2 address
            // record: family 3, then the path), as WasmEdge opens one only
            // with --allow-af-unix: sends a line and reads its echo.
            #[repr(C)]
            struct Record {
                buf: *const u8,
                size: u32,
            }
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                #[link_name = "sock_open"]
                fn open_socket(family: u8, kind: u8, fd: *mut u32) -> u32;
                fn sock_connect_v2(fd: u32, addr: *const Record, port: u32) -> u32;
            }
            let path = std::env::args().nth(2).unwrap_or_default();
            let mut storage = [0u8; 128];
            if path.len() > 107 {
                return Err(format!("{path}: too long for a Unix socket"));
            }
            storage[0] = 3;
            storage[2..2 + path.len()].copy_from_slice(path.as_bytes());
            let mut fd = 0u32;
            // SAFETY: `fd` is a live u32 the runtime writes.
            let e = unsafe { open_socket(3, 2, &mut fd) };
            println!("open_errno={e}");
            if e != 0 {
                return Ok(());
            }
            let record = Record {
                buf: storage.as_ptr(),
                size: 128,
            };
            // SAFETY: the record and its storage are live for the call.
            let e = unsafe { sock_connect_v2(fd, &record, 0) };
            println!("connect_errno={e}");
            if e != 0 {
                return Ok(());
            }
            // SAFETY: `fd` is the socket just opened, owned from here on.
            let mut stream =
                unsafe { <TcpStream as std::os::wasi::io::FromRawFd>::from_raw_fd(fd as i32) };
            let line = b"hello over unix";
            stream.write_all(line).map_err(err("send"))?;
            let mut echo = vec![0u8; line.len()];
            stream.read_exact(&mut echo).map_err(err("recv"))?;
            println!("echo={}", String::from_utf8_lossy(&echo));
        }
        "download-switch" => {
            // `download` of a request that offers to switch protocols: a
            // 101 is its whole answer.
            let url = std::env::args().nth(2).unwrap_or_default();
            let request = edgepoll::ClientRequest::new("GET", &url)
                .map_err(|e| e.to_string())?
                .upgrade(b"websocket");
            let mut body = 0;
            let got = edgepoll::download(&request, Duration::from_secs(20), |piece| {
                body += piece.len();
                Ok(())
            });
            match got {
                Ok(head) => println!("status={} body={body}", head.status.as_u16()),
                Err(e) => println!("error={e}"),
            }
        }
        "serve-addresses" => {
            // An edgepoll Server whose service answers with the addresses its
            // requests report; a request for /exit ends the program.
            use edgepoll::http::{Request, Response, Service, StatusCode};
            struct Addresses;
            impl Service for Addresses {
                fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
                    if request.path() == "/exit" {
                        std::process::exit(0);
                    }
                    let shown =
                        |a: Option<SocketAddr>| a.map_or("-".to_string(), |a| a.to_string());
                    Response::new(StatusCode::OK).body(format!(
                        "peer={} local={}",
                        shown(request.peer_addr()),
                        shown(request.local_addr())
                    ))
                }
            }
            let at = addr(&std::env::args().nth(2).unwrap_or_default());
            let listener = net::bind(at).map_err(err("bind"))?;
            let local = net::local_addr(&listener).map_err(err("local_addr"))?;
            println!("listening on {local}");
            edgepoll::Server::new(listener, Default::default())
                .serve(Addresses)
                .map_err(err("serve"))?;
        }
        "release-addresses" => {
            // edgepoll's own address calls against the crate's (which may read
            // 0.0.0.0 in release builds); informational beside `addresses`.
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            println!(
                "edgepoll_ip={}",
                net::local_addr(&listener).map_err(err("local_addr"))?.ip()
            );
        }
        "read-file" => {
            // A file below a directory preopened with --dir.
            let text =
                std::fs::read_to_string("/data/hello.txt").map_err(err("read /data/hello.txt"))?;
            println!("content={}", text.trim());
            std::fs::write("/data/written.txt", b"from the guest")
                .map_err(err("write /data/written.txt"))?;
            println!(
                "escape_refused={}",
                std::fs::read_to_string("/data/../etc/passwd").is_err()
            );
        }
        "swap-nested-preopen" => {
            // Given `--dir /a:DIR --dir /b:DIR/sub`: what /b holds, then
            // (the first time) /a/sub renamed away and a link to
            // ../outside put in its place, for a guest started later to
            // open /b through, if its runtime looked /b's path up again.
            use std::os::fd::AsRawFd;
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn path_symlink(
                    old: *const u8,
                    old_len: u32,
                    fd: u32,
                    new: *const u8,
                    new_len: u32,
                ) -> u16;
            }
            let secret = std::fs::read_to_string("/b/secret");
            println!("secret={}", secret.as_deref().map_or("none", str::trim));
            std::fs::write("/b/written", b"by the guest").map_err(err("write /b/written"))?;
            if std::fs::metadata("/a/swapped").is_err() {
                std::fs::rename("/a/sub", "/a/sub_old").map_err(err("rename /a/sub"))?;
                let a = std::fs::File::open("/a").map_err(err("open /a"))?;
                let (old, new) = (b"../outside", b"sub");
                // SAFETY: both names are valid for their lengths.
                let e = unsafe {
                    path_symlink(
                        old.as_ptr(),
                        old.len() as u32,
                        a.as_raw_fd() as u32,
                        new.as_ptr(),
                        new.len() as u32,
                    )
                };
                println!("symlink_errno={e}");
                std::fs::write("/a/swapped", b"").map_err(err("write /a/swapped"))?;
            }
        }
        "list-cache" => {
            // What a guest finds of the compile cache a --dir exposes.
            let entries =
                std::fs::read_dir("/data/compiled").map_err(err("read_dir /data/compiled"))?;
            println!("entries={}", entries.count());
        }
        "readonly-names" => crate::names::readonly_names()?,
        "env" => println!("greeting={}", std::env::var("GREETING").unwrap_or_default()),
        "environ" => {
            // The entries as the runtime gives them: std's `vars_os` skips
            // one without `=`.
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn environ_sizes_get(count: *mut usize, size: *mut usize) -> u16;
                fn environ_get(entries: *mut *mut u8, buf: *mut u8) -> u16;
            }
            let (mut count, mut size) = (0, 0);
            // SAFETY: each writes one usize.
            let errno = unsafe { environ_sizes_get(&mut count, &mut size) };
            let (mut entries, mut buf) = (vec![std::ptr::null_mut(); count], vec![0u8; size]);
            // SAFETY: the sizes are what environ_sizes_get said it needs.
            let errno2 = unsafe { environ_get(entries.as_mut_ptr(), buf.as_mut_ptr()) };
            println!("errno={errno},{errno2} count={count} environ={buf:?}");
        }
        "random" => {
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn random_get(buf: *mut u8, len: u32) -> u16;
            }
            let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            // One call each, as a program (or ring, for a key) draws.
            let (mut raw, mut next) = ([0u8; 32], [0u8; 32]);
            // SAFETY: random_get writes at most `len` bytes into the buffer.
            let errno = unsafe { random_get(raw.as_mut_ptr(), raw.len() as u32) }
                | unsafe { random_get(next.as_mut_ptr(), next.len() as u32) };
            let mut mixed = [0u8; 32];
            edgepoll::entropy::fill(&mut mixed).map_err(err("entropy"))?;
            println!("errno={errno}");
            println!("raw={}", hex(&raw));
            println!("next={}", hex(&next));
            println!("mixed={}", hex(&mixed));
        }
        "program-name" => {
            println!("argv0={}", std::env::args().next().unwrap_or_default());
            let since_boot = std::time::Instant::now().checked_sub(Duration::from_secs(1));
            println!("instant_minus_a_second={}", since_boot.is_some());
        }
        "hold-sockets" => {
            // Opens listening sockets until refused, holds them a while (so
            // that other instances meet them), and says how many it got.
            let mut held = Vec::new();
            let error = loop {
                match net::bind(addr("127.0.0.1:0")) {
                    Ok(listener) => held.push(listener),
                    Err(e) => break e,
                }
                if held.len() == 100_000 {
                    return Err("never refused".into());
                }
            };
            println!("held={} errno={:?}", held.len(), error.raw_os_error());
            std::thread::sleep(Duration::from_secs(2));
        }
        "write-until-refused" => {
            // Lines to stdout until a write fails (at most 256 MiB): the
            // reader closing its end is a broken pipe.
            let line = [b'x'; 4095];
            let mut out = io::stdout().lock();
            for _ in 0..65_536 {
                if let Err(e) = out.write_all(&line).and_then(|()| out.write_all(b"\n")) {
                    eprintln!("stdout refused: errno {:?}", e.raw_os_error());
                    std::process::exit(3);
                }
            }
            return Err("no write was refused".into());
        }
        "poll-through-a-stop" => {
            // Polls a listener and both ends of a quiet connection for 3 s,
            // while the harness stops and continues the process: the wait
            // a signal interrupted is no event and no socket's error.
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            let (client, server, _) = pair("127.0.0.1")?;
            let mut poll = Poll::new();
            poll.register(&listener, Token(0), Interest::READABLE)
                .map_err(err("register"))?;
            poll.register(&client, Token(1), Interest::READABLE)
                .map_err(err("register"))?;
            poll.register(&server, Token(2), Interest::READABLE)
                .map_err(err("register"))?;
            println!("ready");
            io::stdout().flush().map_err(err("flush"))?;
            let mut events = Events::with_capacity(8);
            let (mut errors, mut seen, mut longest) = (0, 0, Duration::ZERO);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                let called = Instant::now();
                poll.poll(&mut events, Some(Duration::from_millis(100)))
                    .map_err(err("poll"))?;
                longest = longest.max(called.elapsed());
                seen += events.len();
                errors += events.iter().filter(|e| e.raw_error() != 0).count();
            }
            println!("events={seen}");
            println!("error_events={errors}");
            // The stop (300 ms) fell in a call of `poll` (nearly all of the
            // loop's time is a wait), not before or after the loop.
            println!(
                "stopped_in_a_poll={}",
                longest >= Duration::from_millis(250)
            );
        }
        "first-exits" => {
            // The first instance to claim `claim` in the preopened
            // directory exits 7 at once; the others listen until the
            // host's stop wakes their accept, then end cleanly.
            let claimed = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open("claim");
            if claimed.is_ok() {
                std::process::exit(7);
            }
            let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
            println!("listening, not first");
            io::stdout().flush().map_err(err("flush"))?;
            loop {
                match net::accept(&listener) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        "cpu-clock" => {
            // Burns 300 ms of its thread's CPU time, then reads the process's.
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            extern "C" {
                fn clock_time_get(clock: u32, precision: u64, time: *mut u64) -> u16;
            }
            let read = |clock| {
                let mut time = 0;
                // SAFETY: writes one u64.
                let errno = unsafe { clock_time_get(clock, 1, &mut time) };
                (errno == 0)
                    .then_some(time)
                    .ok_or(format!("clock {clock}: errno {errno}"))
            };
            let start = read(3)?;
            let mut spins = 0u64;
            while read(3)? < start + 300_000_000 {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            println!("process={} thread={}", read(2)?, read(3)?);
        }
        "exit" => std::process::exit(7),
        "exit-minus-one" => std::process::exit(-1),
        "trap" => trap_here(),
        "recurse" => {
            let depth = std::env::args()
                .nth(2)
                .and_then(|a| a.parse().ok())
                .ok_or("recurse DEPTH")?;
            println!("depth={}", recurse(depth));
        }
        other => return Err(format!("unknown case {other:?}")),
    }
    Ok(())
}

/// Calls itself `depth` deep and returns the depth: each call's result goes
/// through memory (volatile), so that no compiler turns it into a loop, and
/// its frames stay on the runtime's stack (no local has its address taken).
#[inline(never)]
fn recurse(depth: u32) -> u32 {
    static mut BELOW: u32 = 0;
    if depth == 0 {
        return 0;
    }
    let below = recurse(depth - 1);
    // SAFETY: one thread; the static is only ever read and written here.
    unsafe {
        std::ptr::write_volatile(&raw mut BELOW, below);
        std::ptr::read_volatile(&raw const BELOW) + 1
    }
}

/// Many registrations, one of them always ready: the quiet ones go cold, and
/// a cold one's readiness is still reported, within a few full-poll intervals,
/// and brings it back to the hot ones. The pinned listener's new connections
/// are reported meanwhile. With `peek`, quiet sockets are looked at by
/// peeking (`Poll::set_peek_quiet`) where they can be, and the same holds.
fn quiet_readiness(peek: bool) -> Result<()> {
    let mut poll = Poll::new();
    poll.set_split_quiet(true);
    poll.set_peek_quiet(peek);
    let (listener, mut clients, servers) = busy_among_quiet(&mut poll)?;
    let local = net::local_addr(&listener).map_err(err("local_addr"))?;
    let mut events = Events::with_capacity(256);
    let cold = poll.cold_count();
    println!("quiet_went_cold={}", cold == QUIET);

    // One quiet connection speaks, and a new connection arrives.
    send_when_connected(&mut clients[QUIET / 2], b"y")?;
    let newcomer = net::connect(local).map_err(err("connect newcomer"))?;
    let start = Instant::now();
    let (mut quiet_seen, mut listener_seen) = (false, false);
    while !(quiet_seen && listener_seen) && start.elapsed() < Duration::from_secs(2) {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .map_err(err("poll"))?;
        for event in &events {
            quiet_seen |= event.token() == Token(QUIET / 2);
            listener_seen |= event.token() == Token(usize::MAX);
        }
    }
    println!("quiet_reported_within_2s={quiet_seen}");
    println!("listener_reported_within_2s={listener_seen}");
    println!("reported_one_is_hot={}", poll.cold_count() == cold - 1);

    // A cold connection's peer closes: its end of stream is reported too.
    let closing = QUIET / 3;
    clients[closing]
        .shutdown(Shutdown::Write)
        .map_err(err("shutdown"))?;
    let closed_seen = poll_for(&mut poll, &[Token(closing)])?;
    println!("closed_quiet_reported_within_2s={closed_seen}");

    // Two more kinds of source go cold: a socket made blocking (and
    // registered again) and a listener that is not pinned. Their readiness
    // arrives as well.
    let blocking = QUIET / 4;
    servers[blocking]
        .set_nonblocking(false)
        .map_err(err("set_nonblocking"))?;
    poll.reregister(&servers[blocking], Token(blocking), Interest::READABLE)
        .map_err(err("reregister"))?;
    let unpinned = net::bind(addr("127.0.0.1:0")).map_err(err("bind unpinned"))?;
    let unpinned_local = net::local_addr(&unpinned).map_err(err("local_addr"))?;
    poll.register(&unpinned, Token(usize::MAX - 1), Interest::READABLE)
        .map_err(err("register unpinned"))?;
    let cold_before = poll.cold_count();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400) {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .map_err(err("poll"))?;
    }
    println!(
        "blocking_and_listener_went_cold={}",
        poll.cold_count() == cold_before + 2
    );
    send_when_connected(&mut clients[blocking], b"z")?;
    let second_newcomer = net::connect(unpinned_local).map_err(err("connect unpinned"))?;
    let seen = poll_for(&mut poll, &[Token(blocking), Token(usize::MAX - 1)])?;
    println!("blocking_and_listener_reported_within_2s={seen}");
    drop((newcomer, second_newcomer));
    Ok(())
}

/// Registrations in a `Poll` of one's own, not split (as in mio): the
/// quiet ones never go cold while another is busy, and one that speaks is
/// reported by the very next call.
fn quiet_unsplit() -> Result<()> {
    let mut poll = Poll::new();
    let (_listener, mut clients, _servers) = busy_among_quiet(&mut poll)?;
    println!("none_went_cold={}", poll.cold_count() == 0);
    send_when_connected(&mut clients[QUIET / 2], b"y")?;
    // Delivered on loopback by the time the send returns; a moment more
    // all the same.
    std::thread::sleep(Duration::from_millis(20));
    let mut events = Events::with_capacity(256);
    poll.poll(&mut events, Some(Duration::from_secs(5)))
        .map_err(err("poll"))?;
    let seen = (&events).into_iter().any(|e| e.token() == Token(QUIET / 2));
    println!("quiet_reported_by_the_next_poll={seen}");
    Ok(())
}

/// Quiet connections in `poll` beside the busy ones of a quiet-readiness case.
const QUIET: usize = 100;

/// `QUIET + 1` accepted connections registered in `poll` (full polls every
/// 50 ms) and the listener pinned; connection 0 is busy (one unread byte
/// keeps it readable) and polled for 400 ms, in which the others go cold
/// where `poll` splits them. Returns the listener, the clients and the
/// server sides.
fn busy_among_quiet(poll: &mut Poll) -> Result<(TcpListener, Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = net::bind(addr("127.0.0.1:0")).map_err(err("bind"))?;
    let local = net::local_addr(&listener).map_err(err("local_addr"))?;
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    poll.set_full_poll_interval(Duration::from_millis(50));
    for i in 0..=QUIET {
        clients.push(net::connect(local).map_err(err("connect"))?);
        let (server, _) = accept(&listener)?;
        poll.register(&server, Token(i), Interest::READABLE)
            .map_err(err("register"))?;
        servers.push(server);
    }
    poll.register(&listener, Token(usize::MAX), Interest::READABLE)
        .map_err(err("register listener"))?;
    poll.pin(&listener).map_err(err("pin"))?;
    send_when_connected(&mut clients[0], b"x")?;
    let mut events = Events::with_capacity(256);
    let start = Instant::now();
    let mut polls = 0u32;
    while start.elapsed() < Duration::from_millis(400) {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .map_err(err("poll"))?;
        polls += 1;
    }
    println!("busy_polls_return={}", polls > 10);
    Ok((listener, clients, servers))
}

/// Polls busily for up to 2 s until every one of `tokens` has had an event.
fn poll_for(poll: &mut Poll, tokens: &[Token]) -> Result<bool> {
    let mut events = Events::with_capacity(256);
    let mut seen = vec![false; tokens.len()];
    let start = Instant::now();
    while seen.contains(&false) && start.elapsed() < Duration::from_secs(2) {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .map_err(err("poll"))?;
        for event in &events {
            for (token, seen) in tokens.iter().zip(&mut seen) {
                *seen |= event.token() == *token;
            }
        }
    }
    Ok(!seen.contains(&false))
}

/// Writes `bytes` once the non-blocking connect of `client` has finished.
fn send_when_connected(client: &mut TcpStream, bytes: &[u8]) -> Result<()> {
    wait(client, Interest::WRITABLE)?;
    client.write_all(bytes).map_err(err("write"))
}

/// Panics: a Rust panic in wasm ends in an `unreachable` trap, which the
/// runtime must report with the function it happened in (so never inlined).
#[inline(never)]
fn trap_here() {
    let values: Vec<u32> = std::env::args().map(|a| a.len() as u32).collect();
    if values.len() < 100 {
        panic!("deliberate trap for the conformance suite");
    }
}
