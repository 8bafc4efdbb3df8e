//! The runtime conformance suite: each WasmEdge socket function on loopback,
//! success and failure, asserted on every runtime present.

use edgepoll_tests::{
    all_runtimes, connect, on_each_runtime, read_response, run_wasm, start_program, Runtime,
};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

fn facts(runtime: &Runtime, case: &str) -> HashMap<String, String> {
    let out = run_wasm(
        runtime,
        "conformance_guest",
        &[case],
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{case} on {} failed: {stdout}\n{}",
        runtime.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_case(case: &str, expected: &[(&str, &str)]) {
    for runtime in all_runtimes() {
        let facts = facts(&runtime, case);
        for (key, value) in expected {
            assert_eq!(
                facts.get(*key).map(String::as_str),
                Some(*value),
                "{case}: {key} on {} (all facts: {facts:?})",
                runtime.name()
            );
        }
    }
}

/// WasmEdge 0.14.1's `random_get` fills a buffer from `minstd_rand0`
/// seeded with one `std::random_device` value, drawn as libstdc++'s
/// `uniform_int_distribution<uint32_t>` draws (a high part in 0..=2, then
/// a low part), four bytes a draw: `None` unless some seed gives `bytes`;
/// else the seed nearest them (a seed whose first words are refused gives
/// what the state after them gives), and the engine's state after `bytes`.
///
/// The first word tells the engine's state when it was taken (its low
/// part is that state less one), so the seeds that could give it are that
/// state stepped back: by two draws (its high part and its low part), two
/// more for each word refused before it (a third of them overflow 32 bits)
/// and one for each high part refused (one in a billion). Each is tried
/// forward against all of `bytes`, up to `MOST_DRAWS` back: some 4096
/// words refused in a row (a chance of 3^-4096) are past it. Trying every seed
/// took 10 to 20 s of one core a call.
fn wasmedge_seed_of(bytes: &[u8]) -> Option<(u64, u64)> {
    const MOST_DRAWS: u64 = 8192;
    let first = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    // A's inverse modulo the prime M (Fermat): one draw back.
    let (back, _, _) = (0..64).fold((1u64, MINSTD_A, MINSTD_M - 2), |(inverse, square, e), _| {
        let inverse = if e & 1 == 1 {
            inverse * square % MINSTD_M
        } else {
            inverse
        };
        (inverse, square * square % MINSTD_M, e >> 1)
    });
    let taken = u64::from(first) % (MINSTD_M - 1) + 1;
    let mut seed = taken;
    (1..=MOST_DRAWS).find_map(|_| {
        seed = seed * back % MINSTD_M;
        let (drawn, left) = minstd_bytes(seed, bytes.len());
        (drawn == bytes).then_some((seed, left))
    })
}

const MINSTD_M: u64 = 2_147_483_647;
const MINSTD_A: u64 = 16807;

/// `len` bytes as WasmEdge's `random_get` draws them from `seed` (see
/// [`wasmedge_seed_of`]), and the engine's state after them.
fn minstd_bytes(seed: u64, len: usize) -> (Vec<u8>, u64) {
    const M: u64 = MINSTD_M;
    let step = |x: &mut u64| {
        *x = *x * MINSTD_A % M;
        *x - 1
    };
    let word = |x: &mut u64| loop {
        let scaling = (M - 2) / 3;
        let high = loop {
            let r = step(x);
            if r < 3 * scaling {
                break r / scaling;
            }
        };
        let base = (M - 1) * high;
        let value = base + step(x);
        if value <= u64::from(u32::MAX) && value >= base {
            return value as u32;
        }
    };
    let mut x = seed;
    let words = (0..len.div_ceil(4)).map(|_| word(&mut x).to_le_bytes());
    let drawn = words.flatten().take(len).collect();
    (drawn, x)
}

/// The search by stepping back finds a seed of bytes drawn from any seed
/// (first words refused among them): that seed itself, or where the
/// refusals left it; and none for bytes no seed gives.
#[test]
fn the_seed_search_finds_the_seed_of_drawn_bytes_and_none_of_others() {
    let mut refused_first = 0;
    for i in 0..400u64 {
        let seed = (i * 2_654_435_761 + 1) % (MINSTD_M - 1) + 1;
        let (bytes, left) = minstd_bytes(seed, 32);
        let Some((found, found_left)) = wasmedge_seed_of(&bytes) else {
            panic!("no seed found for seed {seed}");
        };
        assert_eq!(
            minstd_bytes(found, 32),
            (bytes.clone(), left),
            "seed {seed}"
        );
        assert_eq!(found_left, left, "seed {seed}");
        // The first word drawn from the seed itself: taken, or refused.
        let mut x = seed * MINSTD_A % MINSTD_M;
        let high = (x - 1) / ((MINSTD_M - 2) / 3);
        x = x * MINSTD_A % MINSTD_M;
        let refused = (MINSTD_M - 1) * high + (x - 1) > u64::from(u32::MAX);
        refused_first += usize::from(refused);
        if !refused {
            assert_eq!(found, seed);
        }
        let mut changed = bytes.clone();
        changed[31] ^= 1;
        assert_eq!(
            wasmedge_seed_of(&changed),
            None,
            "seed {seed}, a byte changed"
        );
    }
    assert!(
        refused_first > 50,
        "{refused_first} of 400 seeds had a first word refused"
    );
    assert_eq!(wasmedge_seed_of(&[0xab; 32]), None);
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// What `edgepoll::entropy` rests on, checked where it matters: on
/// WasmEdge each `random_get` of 32 bytes is found again from a 31-bit
/// seed, and the next call's seed is a new one, not where the first left
/// its engine (so that many calls hold more than one); edgepoll-host's
/// `random_get` is the system's, a difference kept on purpose. On one
/// WasmEdge, `entropy::fill`'s bytes are no raw answer either. If a
/// WasmEdge ever answers otherwise, this fails, and `edgepoll::entropy` and the README's HTTPS
/// section are out of date.
#[test]
fn each_random_get_on_wasmedge_holds_a_31_bit_seed_of_its_own() {
    for runtime in all_runtimes() {
        let facts = facts(&runtime, "random");
        let name = runtime.name();
        assert_eq!(facts.get("errno").map(String::as_str), Some("0"), "{name}");
        let bytes = |key: &str| unhex(facts.get(key).map_or("", String::as_str));
        let (raw, next, mixed) = (bytes("raw"), bytes("next"), bytes("mixed"));
        let lengths = (raw.len(), next.len(), mixed.len());
        assert_eq!(lengths, (32, 32, 32), "{name}: {facts:?}");
        let seed = wasmedge_seed_of(&raw);
        if let Runtime::Host(_) = runtime {
            assert_eq!(seed, None, "{name}: {facts:?}");
            continue;
        }
        let (Some((_, left)), Some(_)) = (seed, wasmedge_seed_of(&next)) else {
            panic!("{name}: no seed gives {facts:?}");
        };
        // The engine the first call left would have drawn other bytes.
        let continued = minstd_bytes(left, next.len()).0;
        assert_ne!(continued, next, "{name}: one engine for both calls");
        if let Runtime::WasmEdge = runtime {
            assert_eq!(wasmedge_seed_of(&mixed), None, "{name}: {facts:?}");
        }
    }
}

#[test]
fn new_descriptors_get_random_unused_numbers_below_two_to_the_31() {
    assert_case(
        "descriptor-numbers",
        &[
            ("collisions", "0"),
            ("all_below_2_31", "true"),
            ("mostly_above_2_20", "true"),
        ],
    );
}

/// A guest's `argv[0]` is its module's file name, its extension `.wasm`
/// (not the path it was given by), and its monotonic clock counts from the
/// host's boot, so an instant a second before its start exists (Rust's
/// `Instant::now() - 1 s` panicked on edgepoll-host, whose clock started at
/// zero).
#[test]
fn the_program_name_and_the_monotonic_clock_are_as_wasmedge_gives_them() {
    for runtime in all_runtimes() {
        let facts = facts(&runtime, "program-name");
        let argv0 = facts.get("argv0").cloned().unwrap_or_default();
        assert!(
            argv0.starts_with("conformance_guest")
                && argv0.ends_with(".wasm")
                && !argv0.contains('/'),
            "{}: argv[0] is {argv0:?}",
            runtime.name()
        );
        assert_eq!(
            facts.get("instant_minus_a_second").map(String::as_str),
            Some("true"),
            "{}",
            runtime.name()
        );
    }
}

/// What the quiet-readiness cases must show, with full polls or with peeks.
const QUIET_READINESS: &[(&str, &str)] = &[
    ("busy_polls_return", "true"),
    ("quiet_went_cold", "true"),
    ("quiet_reported_within_2s", "true"),
    ("listener_reported_within_2s", "true"),
    ("reported_one_is_hot", "true"),
    ("closed_quiet_reported_within_2s", "true"),
    ("blocking_and_listener_went_cold", "true"),
    ("blocking_and_listener_reported_within_2s", "true"),
];

#[test]
fn quiet_registrations_go_cold_and_their_readiness_still_arrives() {
    assert_case("quiet-readiness", QUIET_READINESS);
}

#[test]
fn quiet_registrations_looked_at_by_peeking_report_the_same_readiness() {
    assert_case("quiet-readiness-peek", QUIET_READINESS);
}

/// A `Poll` of one's own does not split (`Poll::set_split_quiet` is off,
/// as in mio): a quiet socket's readiness waits for no full call.
#[test]
fn unsplit_registrations_report_a_quiet_ones_readiness_at_once() {
    assert_case(
        "quiet-unsplit",
        &[
            ("busy_polls_return", "true"),
            ("none_went_cold", "true"),
            ("quiet_reported_by_the_next_poll", "true"),
        ],
    );
}

#[test]
fn bind_to_a_port_in_use_is_addr_in_use() {
    assert_case("bind-in-use", &[("second_bind", "AddrInUse")]);
}

#[test]
fn connect_to_a_closed_port_is_refused_blocking_and_nonblocking() {
    assert_case(
        "connect-refused",
        &[
            ("blocking", "ConnectionRefused"),
            ("hang_up", "true"),
            ("error_event", "false"),
            ("nonblocking", "ConnectionRefused"),
            ("then_read", "Ok(0)"),
        ],
    );
}

#[test]
fn an_ipv6_zone_is_refused_rather_than_dropped() {
    assert_case(
        "ipv6-zone",
        &[
            ("bind", "InvalidInput"),
            ("connect", "InvalidInput"),
            ("unzoned", "::1"),
        ],
    );
}

#[test]
fn nonblocking_connect_completes_through_writable() {
    assert_case("nonblocking-connect", &[("connected", "ok")]);
}

#[test]
fn accept_drains_the_backlog_then_would_block() {
    assert_case(
        "accept-until-wouldblock",
        &[("accepted", "3"), ("then", "WouldBlock")],
    );
}

#[test]
fn recv_returns_zero_after_the_peer_closes() {
    assert_case("recv-after-close", &[("read_after_close", "0")]);
}

#[test]
fn send_after_the_peer_reset_fails_without_killing_the_runtime() {
    for runtime in all_runtimes() {
        let facts = facts(&runtime, "send-after-reset");
        let error = facts.get("send_error").map(String::as_str);
        assert!(
            matches!(error, Some("ConnectionReset" | "BrokenPipe")),
            "{} gave {error:?}",
            runtime.name()
        );
    }
}

#[test]
fn shutdown_closes_each_half_separately() {
    assert_case(
        "shutdown",
        &[
            ("peer_reads_after_write_shutdown", "0"),
            ("other_half", "still open"),
            ("read_after_read_shutdown", "0"),
            ("shutdown_both", "ok"),
        ],
    );
}

#[test]
fn local_and_peer_addresses_are_real_for_ipv4_and_ipv6_in_release_builds() {
    assert_case(
        "addresses",
        &[
            ("v4_ip", "127.0.0.1"),
            ("v4_peer_matches", "true"),
            ("v4_local_matches", "true"),
            ("v4_port_nonzero", "true"),
            ("v6_ip", "::1"),
            ("v6_peer_matches", "true"),
            ("v6_local_matches", "true"),
            ("v6_port_nonzero", "true"),
        ],
    );
}

#[test]
fn socket_options_round_trip() {
    assert_case(
        "sockopts",
        &[
            ("keepalive", "true"),
            ("keepalive_off", "true"),
            ("rcvbuf_at_least_set", "true"),
            ("type_is_stream", "true"),
            ("no_pending_error", "true"),
        ],
    );
}

#[test]
fn poll_with_only_a_clock_sleeps_until_it_fires() {
    assert_case(
        "poll-clocks",
        &[
            ("events", "0"),
            ("waited_at_least_100ms", "true"),
            ("woke_within_2s", "true"),
        ],
    );
}

#[test]
fn poll_reports_a_hang_up_on_the_event() {
    assert_case(
        "poll-hangup",
        &[
            ("second_shutdown", "ok"),
            ("readable", "true"),
            ("hang_up", "true"),
            ("read", "0"),
        ],
    );
}

#[test]
fn a_polled_socket_renumbered_is_polled_under_its_new_number() {
    assert_case(
        "poll-renumbered",
        &[
            ("before", "timeout"),
            ("renumber", "0"),
            ("after", "timeout"),
            ("ready", "read"),
            ("sleep", "timeout"),
            ("slept_100ms", "true"),
        ],
    );
}

/// A datagram socket refused by an ICMP message is reported, with the
/// error (14, CONNREFUSED), as soon as the refusal comes.
#[test]
fn a_refused_datagram_socket_is_reported_at_once() {
    assert_case("udp-refused", &[("events", "7:14"), ("within_1s", "true")]);
}

/// A socket that gave up its right to be polled (fd_fdstat_set_rights)
/// gets NOTCAPABLE (76) in its event from the next poll of the same list,
/// as WasmEdge checks rights on every call; edgepoll-host, which compares
/// the list with the last call's, kept watching it.
#[test]
fn a_socket_that_gave_up_its_poll_rights_is_refused_at_the_next_poll() {
    assert_case(
        "poll-after-rights-dropped",
        &[
            ("before", "write"),
            ("set_rights", "0"),
            ("after", "error 76+timeout"),
        ],
    );
}

#[test]
fn the_same_fd_subscribed_twice_gets_eexist_on_the_second() {
    for runtime in all_runtimes() {
        let facts = facts(&runtime, "same-fd-twice");
        assert_eq!(
            facts.get("event_2").map(String::as_str),
            Some("AlreadyExists"),
            "{}: {facts:?}",
            runtime.name()
        );
        // The first is served as any other (a connection waits on it).
        assert_eq!(
            facts.get("event_1").map(String::as_str),
            Some("read"),
            "{}: {facts:?}",
            runtime.name()
        );
    }
}

#[test]
fn a_service_learns_the_peer_and_local_address_of_each_request() {
    on_each_runtime(|rt| {
        let mut server = start_program(rt, "conformance_guest", &["serve-addresses"], &[]);
        let mut stream = connect(server.addr);
        let client = stream.local_addr().expect("client address");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let (_, body) = read_response(&mut stream);
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("peer={client} local={}", server.addr)
        );
        let _ = stream.write_all(b"GET /exit HTTP/1.1\r\nHost: t\r\n\r\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while server.is_alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!server.is_alive(), "the guest did not exit on /exit");
    });
}

/// Every listed socket that is ready is reported, however many sockets
/// listed in an earlier call (which edgepoll-host keeps in its epoll set)
/// are ready too: a partial call's room for events was the call's size,
/// and left-out sockets ahead in epoll's ready list crowded a listed one
/// out. `Poll::polled_quiet` counts on it.
#[test]
fn every_ready_listed_socket_is_reported_whatever_else_is_ready() {
    assert_case(
        "poll-every-ready-reported",
        &[
            ("all_listed", "clock"),
            ("two_listed", "clock"),
            ("reported", "3,4"),
        ],
    );
}

/// A guest opens a Unix domain socket and reaches a host socket by its path
/// only when the runtime allows it (`--allow-af-unix`, WasmEdge's flag);
/// otherwise `sock_open` answers NOSYS (52), as WasmEdge does. (The host
/// had no such flag: its command line refused it.)
#[test]
fn a_unix_domain_socket_is_opened_only_when_allowed() {
    use std::os::unix::net::UnixListener;
    on_each_runtime(|rt| {
        let name = rt.name();
        let dir = edgepoll_tests::scratch_dir("unix", rt);
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("a Unix listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let echo = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < deadline, "no connection came");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).expect("blocking");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("a timeout");
            let mut line = [0u8; 15];
            std::io::Read::read_exact(&mut stream, &mut line).expect("the line");
            stream.write_all(&line).expect("its echo");
        });
        let shown = path.to_str().expect("a UTF-8 path");
        let limit = Duration::from_secs(60);
        let out = edgepoll_tests::run_wasm_with(
            rt,
            "conformance_guest",
            &["--allow-af-unix"],
            &["unix-echo", shown],
            limit,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("echo=hello over unix"),
            "{name}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        echo.join().expect("the echo");
        let out = run_wasm(rt, "conformance_guest", &["unix-echo", shown], limit);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("open_errno=52"), "{name}: {stdout}");
        let _ = std::fs::remove_file(&path);
    });
}

/// A wait that a signal interrupts (here SIGSTOP, then SIGCONT, as a
/// shell's Ctrl-Z and `fg` or a debugger make) is no event: WasmEdge
/// answers every subscription of that call with EINTR, and the next call
/// listing the same sockets with EEXIST on each, which `Poll` passed on as
/// the sockets' own errors (a connection being made then failed, a DNS
/// socket closed). Nothing happened to the sockets.
#[test]
fn a_wait_a_signal_interrupts_reports_no_socket_error() {
    use std::io::BufRead;
    for runtime in all_runtimes() {
        // Killed if the test fails: a guest left stopped would hold the
        // pipe CI reads the tests' output from.
        let mut child = edgepoll_tests::KilledOnDrop::new(
            runtime
                .command(&edgepoll_tests::wasm("conformance_guest"))
                .arg("poll-through-a-stop")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                // Its own message, if it fails, shows with the test's.
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("the guest starts"),
        );
        // Lines read apart, so that a guest that never says `ready` fails
        // the test instead of holding it.
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let (tell, told) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tell.send(line);
            }
        });
        let ready = told.recv_timeout(Duration::from_secs(30));
        if ready.as_deref() != Ok("ready") {
            panic!("{}: the guest said {ready:?}", runtime.name());
        }
        let pid = child.id() as libc::pid_t;
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signals to the child this test started, still running.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        let status = edgepoll_tests::wait_within(&mut child, Duration::from_secs(30));
        // The guest gone (killed if it is not), its output ends: all of it
        // is read.
        drop(child);
        let _ = reader.join();
        let said: Vec<String> = told.try_iter().collect();
        assert!(
            status.is_some_and(|s| s.success()),
            "{}: {status:?} {said:?}",
            runtime.name()
        );
        for fact in ["events=0", "error_events=0", "stopped_in_a_poll=true"] {
            assert!(
                said.iter().any(|l| l == fact),
                "{}: {fact} in {said:?}",
                runtime.name()
            );
        }
    }
}
