//! Names on every runtime: through dnsmasq on a loopback port (the loop's
//! own resolver, `DNS_SERVER`), through the runtime's `sock_getaddrinfo`
//! (/etc/hosts), and against servers that answer garbage or nothing.

use edgepoll_tests::dns::{asked_name, Delayed, Dnsmasq, Garbage, Hostile, BIG_COUNT};
use edgepoll_tests::upstream::{Behaviour, NativeUpstream};
use edgepoll_tests::{
    echo_load, on_each_runtime, on_each_runtime_alone, run_wasm_with, start_program_with, Runtime,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

fn client(
    runtime: &Runtime,
    dns: Option<std::net::SocketAddr>,
    args: &[&str],
) -> (i32, String, String) {
    let env = dns.map(|d| format!("DNS_SERVER={d}"));
    let flags: Vec<&str> = match &env {
        Some(env) => vec!["--env", env],
        None => vec![],
    };
    let out = run_wasm_with(
        runtime,
        "nonblock_http_client",
        &flags,
        args,
        Duration::from_secs(60),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The addresses `-v` told for `host`.
fn told(stderr: &str, host: &str) -> String {
    let prefix = format!("* {host}: ");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line for {host} in {stderr}"))
        .to_string()
}

/// A, AAAA, a CNAME chain, NXDOMAIN, an answer too long for UDP (asked
/// again over TCP) and a server that never answers, through dnsmasq; the
/// named hosts are then reached.
#[test]
fn names_resolve_through_dnsmasq_on_the_loop() {
    let dns = Dnsmasq::start();
    let echo = NativeUpstream::start(Behaviour::Echo);
    let port = echo.addr.port();
    on_each_runtime(|runtime| {
        let urls = [
            format!("http://www.test:{port}/a"),
            format!("http://alias.test:{port}/b"),
            "http://v6.test:1/".to_string(),
            "http://gone.test:1/".to_string(),
            format!("http://big.test:{port}/"),
            "http://x.stall.test:1/".to_string(),
        ];
        let mut args = vec!["-v", "--timeout", "2", "-d", "hi"];
        args.extend(urls.iter().map(String::as_str));
        let (code, stdout, stderr) = client(runtime, Some(dns.addr), &args);
        assert_eq!(code, 1, "some requests fail: {stderr}");
        let asked = format!("* names go to the DNS server {} (DNS_SERVER)", dns.addr);
        assert!(stderr.lines().any(|l| l == asked), "{stderr}");
        assert_eq!(told(&stderr, "www.test"), "127.0.0.1, ::1");
        assert_eq!(told(&stderr, "alias.test"), "127.0.0.1, ::1");
        assert_eq!(told(&stderr, "v6.test"), "::1");
        assert_eq!(told(&stderr, "gone.test"), "no such name (NXDOMAIN)");
        let big: Vec<String> = told(&stderr, "big.test")
            .split(", ")
            .map(String::from)
            .collect();
        // The answer came over TCP (the truncated datagram carries none
        // that are used), and the client keeps the first 32 (MAX_ADDRESSES).
        const { assert!(BIG_COUNT > 32) };
        assert_eq!(big.len(), 32, "the first 32 addresses, through TCP");
        assert!(big.iter().all(|a| a.starts_with("127.0.1.")), "{big:?}");
        assert_eq!(
            told(&stderr, "x.stall.test"),
            "no answer from the DNS server in 2.0 s"
        );
        // The named hosts were reached at their first address.
        assert!(
            stdout.contains(&format!("[1] POST http://www.test:{port}/a -> 200 OK\nhi")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "[2] POST http://alias.test:{port}/b -> 200 OK\nhi"
            )),
            "{stdout}"
        );
        assert!(stderr.contains("[4] POST http://gone.test:1/ -> error: cannot resolve \"gone.test\": no such name (NXDOMAIN)"), "{stderr}");
        assert!(stderr.contains("[6] POST http://x.stall.test:1/ -> error: cannot resolve \"x.stall.test\": no answer from the DNS server in 2.0 s"), "{stderr}");
        // The timeout is kept: a silent server's name fails in 2 s, not
        // later (the runtime's start-up is in the bound too).
        runtime.prepare("nonblock_http_client");
        let started = Instant::now();
        let (code, _, stderr) = client(
            runtime,
            Some(dns.addr),
            &["--timeout", "2", "http://y.stall.test:1/"],
        );
        let took = started.elapsed();
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("no answer from the DNS server in 2.0 s"),
            "{stderr}"
        );
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "took {took:?}"
        );
        println!(
            "{}: a silent server's name failed after {took:?}",
            runtime.name()
        );
    });
    // The CNAME chain was asked of dnsmasq, not answered elsewhere (the 60
    // addresses of big.test, beyond a datagram's 512 bytes, show TCP).
    assert!(dns.log().iter().any(|l| l.contains("query[A] alias.test")));
}

/// Each lookup asks from a port of its own, chosen at random by the
/// system, even while other lookups are under way (RFC 5452 §9.2: a forged
/// answer must guess the port as well as the 16-bit id). The server holds
/// its answers back, so that the four lookups overlap.
#[test]
fn each_lookup_asks_from_a_port_of_its_own() {
    let dns = Dnsmasq::start();
    let slow = Delayed::start(dns.addr, Duration::from_millis(300));
    on_each_runtime(|runtime| {
        slow.asked.lock().expect("lock").clear();
        let names = ["www.test", "alias.test", "v6.test", "gone.test"];
        let urls: Vec<String> = names.iter().map(|n| format!("http://{n}:1/")).collect();
        // Without -v, which would look each name up alone first.
        let mut args = vec!["--timeout", "5"];
        args.extend(urls.iter().map(String::as_str));
        let (code, _, stderr) = client(runtime, Some(slow.addr), &args);
        // Every lookup got its answer through the slow server: gone.test
        // has none, the others resolve and are refused at port 1.
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("cannot resolve \"gone.test\": no such name (NXDOMAIN)"),
            "{stderr}"
        );
        for name in &names[..3] {
            assert!(
                !stderr.contains(&format!("cannot resolve \"{name}\"")),
                "{stderr}"
            );
            assert!(
                stderr.contains(&format!("http://{name}:1/ -> error")),
                "{stderr}"
            );
        }
        let asked = slow.asked.lock().expect("lock").clone();
        let mut ports: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        for (port, query) in &asked {
            ports.entry(asked_name(query)).or_default().insert(*port);
        }
        let expected: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            ports.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{asked:?}"
        );
        // A lookup's two queries (A and AAAA) share its port; no two
        // lookups share one.
        for (name, used) in &ports {
            assert_eq!(used.len(), 1, "{name} asked from {used:?}");
        }
        let distinct: BTreeSet<u16> = ports.values().flatten().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{ports:?}");
        println!("{}: lookups asked from ports {ports:?}", runtime.name());
    });
}

/// Garbage and cut-short answers end a lookup with a typed error, not a
/// hang or a crash, on every runtime.
#[test]
fn hostile_dns_answers_end_as_bad_answers() {
    let dns = Dnsmasq::start();
    for how in [Garbage::Junk, Garbage::CutShort] {
        let hostile = Hostile::start(how, dns.addr);
        on_each_runtime(|runtime| {
            let args = ["--timeout", "2", "http://www.test:1/"];
            let (code, _, stderr) = client(runtime, Some(hostile.addr), &args);
            assert_eq!(code, 1, "{how:?}: {stderr}");
            assert!(
                stderr.contains(
                    "cannot resolve \"www.test\": bad answer from the DNS server: malformed answer"
                ),
                "{how:?}: {stderr}"
            );
        });
        let answered = hostile.answered.load(std::sync::atomic::Ordering::Relaxed);
        assert!(answered > 0, "{how:?}: the hostile server was asked");
    }
}

/// A DNS_SERVER that is no address stops the client and the proxy at the
/// start, as a bad argument, before anything is asked or sent.
#[test]
fn a_dns_server_that_is_no_address_is_a_bad_argument() {
    let programs: [(&str, &[&str]); 2] = [
        ("nonblock_http_client", &["http://www.test:1/"]),
        (
            "proxy",
            &["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"],
        ),
    ];
    on_each_runtime(|runtime| {
        for (program, args) in programs {
            let flags = ["--env", "DNS_SERVER=dns.local:53"];
            let out = run_wasm_with(runtime, program, &flags, args, Duration::from_secs(30));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{program}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "{program}: DNS_SERVER=\"dns.local:53\" is not an address"
                )),
                "{program}: {stderr}"
            );
            assert!(!stderr.contains("system's resolver"), "{program}: {stderr}");
        }
    });
}

/// Without DNS_SERVER, names go to the runtime's `sock_getaddrinfo`:
/// `localhost` and the names /etc/hosts gives a loopback address (the
/// machine's own name among them, as a container's /etc/hosts usually has
/// it) resolve, to the addresses the host's resolver gives (in its order);
/// a name the host also resolves beyond loopback is not asked about.
#[test]
fn names_resolve_through_the_runtime() {
    // Only names /etc/hosts answers: a client connects to what it resolves
    // to, tests talk to loopback alone, and a name the file does not hold
    // would be asked of the machine's DNS server, which may be elsewhere.
    let mut names = vec!["localhost".to_string()];
    let hosts = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts readable");
    for line in hosts.lines().map(|l| l.split('#').next().unwrap_or("")) {
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|ip| ip.parse::<IpAddr>().ok()) else {
            continue;
        };
        if ip.is_loopback() {
            for name in fields {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    let own = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    if !names.iter().any(|n| n == own.trim()) {
        println!(
            "NOTE: {} (/etc/hostname) has no loopback address in /etc/hosts: not asked about",
            own.trim()
        );
    }
    // What the system resolves each to; a name that also has another
    // address in the file (a container's name often has its network's) is
    // left out: the client would connect there.
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        // localhost is answered by edgepoll itself (RFC 6761).
        if name == "localhost" {
            expected.push((name, vec!["127.0.0.1".into(), "::1".into()]));
            continue;
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in (name.as_str(), 0)
            .to_socket_addrs()
            .expect("the host resolves it")
        {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        if ips.iter().all(IpAddr::is_loopback) {
            expected.push((name, ips.iter().map(IpAddr::to_string).collect()));
        } else {
            println!("NOTE: {name} resolves beyond loopback ({ips:?}): not asked about");
        }
    }
    let echo = NativeUpstream::start(Behaviour::Echo);
    let urls: Vec<String> = (expected.iter())
        .map(|(n, _)| format!("http://{n}:1/"))
        .collect();
    on_each_runtime(|runtime| {
        let local = format!("http://localhost:{}/", echo.addr.port());
        let mut args = vec!["-v", "--timeout", "5", local.as_str()];
        args.extend(urls.iter().map(String::as_str));
        let (_, stdout, stderr) = client(runtime, None, &args);
        for (name, ips) in &expected {
            assert_eq!(told(&stderr, name), ips.join(", "), "{name}");
        }
        assert!(
            stdout.contains(&format!("[1] GET {local} -> 200 OK")),
            "{stdout}\n{stderr}"
        );
        println!(
            "{}: {} names through sock_getaddrinfo",
            runtime.name(),
            expected.len()
        );
    });
}

/// 64 keep-alive clients load a forwarding service whose upstream is a
/// name (TTL 1 s) on a slow DNS server (100 ms per answer): the name is
/// refreshed before it expires, so its requests stall no more often than
/// the same service's with the upstream's literal address (the p99s are
/// printed, not compared). A loop that blocked on the
/// lookup, or let requests wait for it, would hold every client for the
/// 100 ms at each refresh (once a turn here): on a fast runtime that
/// is too few requests to move the p99, so those stalls are counted too.
#[test]
fn resolving_on_every_request_adds_no_stall() {
    const DELAY: Duration = Duration::from_millis(100);
    let dns = Dnsmasq::start();
    let slow_dns = Delayed::start(dns.addr, DELAY);
    let echo = NativeUpstream::start(Behaviour::Echo);
    let port = echo.addr.port();
    on_each_runtime_alone(|runtime| {
        let env = format!("DNS_SERVER={}", slow_dns.addr);
        let literal = start_program_with(
            runtime,
            "forward_guest",
            &[],
            &[],
            &[&format!("/=http://127.0.0.1:{port}")],
        );
        let named = start_program_with(
            runtime,
            "forward_guest",
            &["--env", &env],
            &[],
            &[&format!("/=http://www.test:{port}")],
        );
        let (mut by_literal, mut by_name) = (Vec::new(), Vec::new());
        // Short turns in alternation, so the machine's own hiccups fall on
        // both sides alike.
        for _turn in 0..4 {
            // Each turn is warmed first: a name left unused while the other
            // server had its turn has expired, and its first lookup is a
            // cold start that the first requests wait for (as they would
            // for a first connection).
            load(literal.addr, Duration::from_millis(300));
            by_literal.extend(load(literal.addr, Duration::from_secs(1)));
            load(named.addr, Duration::from_millis(300));
            by_name.extend(load(named.addr, Duration::from_secs(1)));
        }
        let p99 = |l: &mut Vec<Duration>| {
            l.sort();
            l[l.len() * 99 / 100]
        };
        let stalled = |l: &[Duration]| l.iter().filter(|d| **d >= DELAY.mul_f64(0.9)).count();
        let (literal_p99, named_p99) = (p99(&mut by_literal), p99(&mut by_name));
        let (literal_stalled, named_stalled) = (stalled(&by_literal), stalled(&by_name));
        println!(
            "{}: p99 {literal_p99:?} with the address ({} requests, {literal_stalled} over 90 ms), \
             {named_p99:?} with the name ({} requests, {named_stalled} over 90 ms)",
            runtime.name(),
            by_literal.len(),
            by_name.len()
        );
        // The p99s are told, not compared: at a millisecond or two the
        // machine's noise is larger than any ratio. Two stalls of all 64
        // clients are allowed for the machine's own hiccups; a loop that
        // waits for its lookups makes one a turn.
        assert!(
            named_stalled <= literal_stalled + 128,
            "{named_stalled} requests by name took over 90 ms, {literal_stalled} by address"
        );
    });
    // The name was asked about once per TTL, not once per request.
    let asked = dns.queries("A", "www.test");
    // About 5 s of use per runtime, with a TTL of 1 s: a cold lookup and a
    // refresh a turn, some 8 lookups each.
    let most = 20 * edgepoll_tests::all_runtimes().len();
    assert!((2..most).contains(&asked), "www.test asked {asked} times");
}

/// 64 keep-alive clients sending POSTs for `length`: each request's latency.
fn load(addr: std::net::SocketAddr, length: Duration) -> Vec<Duration> {
    echo_load(addr, 64, "", Instant::now() + length)
}

/// `localhost` is 127.0.0.1 then ::1: a server on ::1 alone is reached
/// after 127.0.0.1 refuses, as curl does.
#[test]
fn a_refused_address_falls_back_to_the_hosts_next_one() {
    // Nothing listens on the port at 127.0.0.1, and nothing can while the
    // test runs: a socket holds it there without listening.
    let (_refusing, listener) = (0..5)
        .find_map(|_| {
            let held = edgepoll_tests::refused_port();
            let listener = std::net::TcpListener::bind(("::1", held.port)).ok()?;
            Some((held, listener))
        })
        .expect("a port free on both loopback addresses");
    let port = answer_over_v6(listener);
    on_each_runtime(|runtime| {
        let url = format!("http://localhost:{port}/");
        let (code, stdout, stderr) = client(runtime, None, &["--timeout", "5", &url]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("[1] GET {url} -> 200 OK\nover v6")),
            "{stdout}"
        );
    });
}

/// Answers every connection to `listener` (on ::1) with a 200 saying so,
/// on a thread; returns its port.
fn answer_over_v6(listener: std::net::TcpListener) -> u16 {
    use std::io::{Read, Write};
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nover v6\n",
            );
        }
    });
    port
}

/// An address that drops a connect's SYN (a dead host, a broken route)
/// leaves time for the host's next: its connect waits half the connect
/// timeout, not all of it, which `nonblock_http_client` (its connect
/// timeout its `--timeout`) had spent before it tried ::1, so that the
/// answer came after its deadline. 127.0.0.1 drops the SYN here as a
/// listener whose queue of connections not yet accepted is full does.
#[test]
fn an_address_that_never_answers_leaves_time_for_the_hosts_next_one() {
    use std::os::fd::AsRawFd;
    let (silent, listener) = (0..5)
        .find_map(|_| {
            let silent = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let port = silent.local_addr().ok()?.port();
            let listener = std::net::TcpListener::bind(("::1", port)).ok()?;
            Some((silent, listener))
        })
        .expect("a port free on both loopback addresses");
    // SAFETY: listen on a socket `silent` owns, to shorten its queue.
    let shortened = unsafe { libc::listen(silent.as_raw_fd(), 1) };
    assert_eq!(shortened, 0, "listen: {}", std::io::Error::last_os_error());
    // Connections never accepted fill the queue, however long the kernel
    // keeps it (a backlog of 1 holds two on Linux): the next connect's SYN
    // is dropped, which a connect that does not complete shows.
    let addr = silent.local_addr().expect("address");
    let mut queued = Vec::new();
    let full = (0..8).any(|_| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => {
                queued.push(stream);
                false
            }
            Err(_) => true,
        }
    });
    assert!(
        full,
        "127.0.0.1 took {} connections, none dropped",
        queued.len()
    );
    let port = answer_over_v6(listener);
    on_each_runtime(|runtime| {
        let url = format!("http://localhost:{port}/");
        let started = Instant::now();
        let (code, stdout, stderr) = client(runtime, None, &["--timeout", "4", &url]);
        assert_eq!(code, 0, "{}: {stdout}\n{stderr}", runtime.name());
        assert!(
            stdout.contains(&format!("[1] GET {url} -> 200 OK\nover v6")),
            "{stdout}"
        );
        // Half the timeout on 127.0.0.1, then ::1 at once.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2),
            "{took:?}: 127.0.0.1 answered?"
        );
    });
}

/// Once IPv4's addresses have come, IPv6's are waited for
/// `OTHER_FAMILY_GRACE` (100 ms) and no longer, as the resolver's docs
/// say: a lookup whose AAAA answer is lost does not also wait for the
/// loop's next look at its deadlines, which the sweep makes half a
/// granularity to one later (5 s / 8 here: 0.3 to 0.6 s). Timed from the
/// A answer's going out to the client's connection, the median of three
/// runs, against four times the grace.
#[test]
fn a_lost_ipv6_answer_is_waited_for_the_grace_alone() {
    let dns = Dnsmasq::start();
    let relay = Delayed::without_aaaa(dns.addr);
    on_each_runtime_alone(|runtime| {
        let mut waits = Vec::new();
        for _run in 0..3 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("address").port();
            let accepted = std::thread::spawn(move || answer_one(listener));
            let url = format!("http://www.test:{port}/");
            let (code, stdout, stderr) = client(runtime, Some(relay.addr), &[&url]);
            assert_eq!(code, 0, "{stdout}\n{stderr}");
            let at = accepted.join().expect("the connection was answered");
            let answered = relay.answered.lock().expect("times").last().copied();
            let answered = answered.expect("the A query was answered");
            waits.push(at.saturating_duration_since(answered));
        }
        waits.sort();
        let median = waits[waits.len() / 2];
        println!("{}: connected {waits:?} after the A answer", runtime.name());
        assert!(
            median < Duration::from_millis(400),
            "{}: the lookup waited {median:?} (median) for a lost AAAA answer",
            runtime.name()
        );
    });
}

/// Accepts one connection within 60 s, answers it 200, and returns when it
/// came.
fn answer_one(listener: std::net::TcpListener) -> Instant {
    use std::io::{Read, Write};
    listener.set_nonblocking(true).expect("non-blocking");
    let give_up = Instant::now() + Duration::from_secs(60);
    let (mut stream, at) = loop {
        match listener.accept() {
            Ok((stream, _)) => break (stream, Instant::now()),
            Err(_) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("no connection in 60 s: {e}"),
        }
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    at
}
