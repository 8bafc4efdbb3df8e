//! `edgepoll-host --instances N`: one port served by several instances of
//! the echo server (the kernel spreads connections over them), an instance
//! that exits started again while the port keeps answering, a guest that
//! traps at start given up on, `--restart no` and its exit code, and
//! SIGTERM under load: every request answered or refused cleanly, exit 0;
//! a WebSocket handshake finished after SIGTERM closed with 1001; each
//! instance's memory report in a file of its own; a port another process
//! shares left to it. These run on edgepoll-host
//! only: WasmEdge has no such option.

use edgepoll_tests::{free_port, host_runtime, module_importing, scratch_dir, wasm, Runtime};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn host_bin() -> std::path::PathBuf {
    match host_runtime() {
        Runtime::Host(bin) => bin,
        other => unreachable!("host_runtime is edgepoll-host, not {}", other.name()),
    }
}

/// The host running `args`, its output lines (stdout and stderr, each with
/// when it arrived) on a channel.
struct Host {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Host {
    fn start(args: &[&str]) -> Host {
        Host::start_command(Command::new(host_bin()).args(args))
    }

    /// `command` (which runs the host), its output lines on a channel.
    fn start_command(command: &mut Command) -> Host {
        Host::start_reading(command, true)
    }

    /// [`start_command`](Self::start_command), its stderr read or (not
    /// `read_stderr`) a pipe whose reader is gone: every write to it fails.
    fn start_reading(command: &mut Command, read_stderr: bool) -> Host {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgepoll-host starts");
        let (send, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let mut pipes = vec![Box::new(out) as Box<dyn Read + Send>];
        match read_stderr {
            true => pipes.push(Box::new(err)),
            false => drop(err),
        }
        for pipe in pipes {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if send.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        Host {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 60 s) until `count` lines containing `text` were seen.
    fn wait_for(&mut self, text: &str, count: usize) {
        assert!(self.wait_for_unless(text, count, None));
    }

    /// [`wait_for`](Self::wait_for), unless a line containing `unless` comes
    /// first: then false.
    fn wait_for_unless(&mut self, text: &str, count: usize, unless: Option<&str>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count(text) < count {
            if unless.is_some_and(|unless| self.count(unless) > 0) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {count} lines with {text:?} in 60 s: {:#?}", self.seen),
            }
        }
        true
    }

    /// The host running `args(addr)` for an address on a port found free,
    /// once `instances` instances listen there. Instances share one port,
    /// so it cannot be port 0; a port taken between its finding and the
    /// host's bind (the server says it is in use) is given up for another.
    fn on_free_port(instances: usize, args: impl Fn(&str) -> Vec<String>) -> (Host, String) {
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let args = args(&addr);
            let mut host = Host::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
            // "already in use", as each program says it.
            if host.wait_for_unless("listening on", instances, Some("in use")) {
                return (host, addr);
            }
        }
        panic!("no free port was still free when the host bound it, 5 times");
    }

    fn collect(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    fn count(&self, text: &str) -> usize {
        self.seen.iter().filter(|(_, l)| l.contains(text)).count()
    }

    /// Waits for its exit after a stop signal: 0, after one graceful stop.
    fn stops_once_gracefully(&mut self) {
        assert_eq!(self.exit_code(Duration::from_secs(60)), Some(0));
        assert_eq!(
            self.count("stopping: no new connections"),
            1,
            "{:#?}",
            self.seen
        );
    }

    /// Sends it SIGTERM, as a container runtime stopping it does.
    fn terminate(&self) {
        // SAFETY: a signal to the child this test started.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM sent");
    }

    /// `module` as `instances` instances on port 0 (each its own port:
    /// enough for what does not connect), once they listen.
    fn listening(module: &str, instances: usize, read_stderr: bool) -> Host {
        let module = wasm(module);
        let count = instances.to_string();
        let mut command = Command::new(host_bin());
        command.args(["--instances", &count, "--grace", "20"]);
        command.arg(&*module.to_string_lossy()).arg("127.0.0.1:0");
        let mut host = Host::start_reading(&mut command, read_stderr);
        host.wait_for("listening on", instances);
        host
    }

    /// `module` as `instances` instances on a free port, with a grace of
    /// `grace` seconds, once they listen; and the port.
    fn serving(module: &str, instances: usize, grace: u32) -> (Host, String) {
        let module = wasm(module).to_string_lossy().into_owned();
        let (count, grace) = (instances.to_string(), grace.to_string());
        Host::on_free_port(instances, |addr| {
            let args = ["--instances", &count, "--grace", &grace, &module, addr];
            args.map(String::from).to_vec()
        })
    }

    /// Waits (at most `limit`) for the host to exit; its code.
    fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                // Every line it wrote: the readers end at the pipes' end
                // (10 s at most, should something it started hold them).
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "edgepoll-host did not exit within {limit:?}: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to `addr`, or an error within 5 s (a full accept queue
/// drops the handshake, and a plain connect would wait two minutes).
fn connect_within(addr: &str) -> std::io::Result<TcpStream> {
    let addr: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
}

/// One POST on a new connection; whether `hello` came back whole.
fn echo_once(addr: &str) -> bool {
    let Ok(mut stream) = connect_within(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200 OK\r\n") && answer.ends_with(b"\r\n\r\nhello")
}

#[test]
fn two_instances_share_a_port_and_one_that_exits_is_started_again() {
    let module = wasm("poll_http_server");
    let module = module.to_string_lossy();
    let (mut host, addr) = Host::on_free_port(2, |addr| {
        let args = ["--instances", "2", &module, addr, "--exit-after", "100"];
        args.map(String::from).to_vec()
    });
    host.wait_for("[0] listening on", 1);
    host.wait_for("[1] listening on", 1);
    // Each instance exits after 100 requests: 1000 spread over both make
    // each exit (and start again) several times. A connection waiting in
    // the backlog of an instance that exits is reset (SO_REUSEPORT does not
    // move it), so a failed one is tried again, as a client would.
    let mut retries = 0;
    for i in 0..1000 {
        let mut tries = 0;
        while !echo_once(&addr) {
            tries += 1;
            assert!(tries < 50, "request {i} failed 50 times: {:#?}", host.seen);
            std::thread::sleep(Duration::from_millis(20));
        }
        retries += tries;
    }
    host.collect();
    let (zero, one) = (
        host.count("instance 0 exited with code 0; starting it again"),
        host.count("instance 1 exited with code 0; starting it again"),
    );
    println!("1000 requests, {retries} retried; instance 0 exited {zero} times, instance 1 {one}");
    assert!(zero > 0 && one > 0, "not both served: {:#?}", host.seen);
    assert!(
        zero + one >= 8,
        "{zero} + {one} exits for 1000 requests at 100 each"
    );
    // Each start after an exit listens again, promptly: as many lines that
    // say so as starts (the first two and each again), then each in turn.
    // (An exit may still be told while waiting: count again until none is.)
    loop {
        let starts = host.count("starting it again");
        host.wait_for("listening on", 2 + starts);
        if host.count("starting it again") == starts {
            break;
        }
    }
    // Paired by position per instance, not by time: the exit line comes on
    // stderr, the listening line on stdout, each read by its own thread, so
    // their stamps may come out of order. Instance N's k-th exit goes with
    // its (k+1)-th listening line.
    let mut slowest = Duration::ZERO;
    for number in 0..2 {
        let exits: Vec<Instant> = (host.seen.iter())
            .filter(|(_, l)| l.starts_with(&format!("edgepoll-host: instance {number} exited")))
            .map(|(t, _)| *t)
            .collect();
        let listening: Vec<Instant> = (host.seen.iter())
            .filter(|(_, l)| l.starts_with(&format!("[{number}] listening on")))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            listening.len(),
            exits.len() + 1,
            "instance {number}: {:#?}",
            host.seen
        );
        for (exit, listened) in exits.iter().zip(&listening[1..]) {
            slowest = slowest.max(listened.saturating_duration_since(*exit));
        }
    }
    println!("slowest restart, exit to listening: {slowest:?}");
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");
}

/// `EDGEPOLL_HOST_MEMORY_FILE` (the benchmarks' report of the guest's
/// memory): with two instances each reports to a file of its own, named
/// with its number, as a whole number of bytes.
#[test]
fn each_instance_reports_its_memory_to_a_file_of_its_own() {
    let dir = scratch_dir("instance-memory", &host_runtime());
    let file = dir.join("memory");
    let mut command = Command::new(host_bin());
    command.env("EDGEPOLL_HOST_MEMORY_FILE", &file);
    command.args(["--instances", "2", "--grace", "20"]);
    command.arg(&*wasm("poll_http_server").to_string_lossy());
    command.arg("127.0.0.1:0");
    let mut host = Host::start_command(&mut command);
    host.wait_for("listening on", 2);
    for number in 0..2 {
        let own = dir.join(format!("memory.{number}"));
        let text = std::fs::read_to_string(&own).unwrap_or_else(|e| panic!("{own:?}: {e}"));
        let bytes: u64 = text.trim().parse().expect("a number of bytes");
        assert!(bytes >= 64 * 1024, "{own:?}: {text:?}");
    }
    assert!(!file.exists(), "no instance wrote the shared name");
    host.terminate();
    assert_eq!(host.exit_code(Duration::from_secs(30)), Some(0));
}

/// A listener of another process's that shares its port (`SO_REUSEPORT`,
/// as nginx's `reuseport` does) is not joined by the instances: their bind
/// fails as it fails on WasmEdge, rather than the kernel splitting that
/// process's connections with the guest. At an address that bind does not
/// meet, they share the port as ever.
#[test]
fn a_port_another_process_shares_is_not_joined() {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket, set up and handed to a TcpListener that owns it.
    let (outside, port) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let on: libc::c_int = 1;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&on as *const libc::c_int).cast(),
            size,
        );
        assert_eq!(set, 0, "SO_REUSEPORT");
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len),
            0,
            "bind"
        );
        assert_eq!(libc::listen(fd, 128), 0, "listen");
        let listener = std::net::TcpListener::from_raw_fd(fd);
        let port = listener.local_addr().expect("address").port();
        (listener, port)
    };
    let addr = format!("127.0.0.1:{port}");
    let module = wasm("poll_http_server");
    let module = module.to_string_lossy();
    let mut host = Host::start(&["--instances", "2", &module, &addr]);
    let code = host.exit_code(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{:#?}", host.seen);
    assert!(host.count("already in use") >= 2, "{:#?}", host.seen);
    assert_eq!(host.count("listening on"), 0, "{:#?}", host.seen);
    // The same port at an address the other listener's does not meet is
    // still shared by the instances.
    let v6 = format!("[::1]:{port}");
    let mut beside = Host::start(&["--instances", "2", &module, &v6]);
    beside.wait_for("[0] listening on", 1);
    beside.wait_for("[1] listening on", 1);
    assert!(echo_once(&v6), "{:#?}", beside.seen);
    drop(beside);
    // Every connection still comes to the process that had the port.
    outside.set_nonblocking(true).expect("nonblocking");
    for i in 0..20 {
        let _client = connect_within(&addr).expect("connects");
        let deadline = Instant::now() + Duration::from_secs(5);
        while outside.accept().is_err() {
            assert!(
                Instant::now() < deadline,
                "connection {i} not accepted outside"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn a_guest_that_traps_at_start_is_given_up_on() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let mut host = Host::start(&["--instances", "2", &module, "trap"]);
    let code = host.exit_code(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{:#?}", host.seen);
    let last = host
        .seen
        .iter()
        .rev()
        .find(|(_, l)| l.contains("giving up"))
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    assert!(
        last.contains("trapped") && last.contains("5 times in a row"),
        "{:#?}",
        host.seen
    );
}

/// An instance started again gets the directories the run began with,
/// not what their host paths name by then: a guest with a preopen inside
/// another, writable one could swap the inner one's path for a link that
/// leads out (here `../outside`), and the next instance would have had
/// that as its preopen, read and write. (WasmEdge opens them once and has
/// no restarts.)
#[test]
fn an_instance_started_again_gets_the_directories_the_run_began_with() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let root = scratch_dir("nested-preopen", &host_runtime());
    std::fs::create_dir_all(root.join("top/sub")).expect("top/sub");
    std::fs::create_dir_all(root.join("outside")).expect("outside");
    std::fs::write(root.join("outside/secret"), "SECRET").expect("the secret");
    let (a, b) = (
        format!("/a:{}", root.join("top").display()),
        format!("/b:{}", root.join("top/sub").display()),
    );
    let args = [
        "--instances",
        "1",
        "--dir",
        &a,
        "--dir",
        &b,
        &module,
        "swap-nested-preopen",
    ];
    let mut host = Host::start(&args);
    host.wait_for("secret=", 2);
    host.terminate();
    let _ = host.exit_code(Duration::from_secs(60));
    assert_eq!(
        host.count("symlink_errno=0"),
        1,
        "the first run swapped: {:#?}",
        host.seen
    );
    assert_eq!(host.count("secret=none"), 2, "{:#?}", host.seen);
    assert!(
        !root.join("outside/written").exists(),
        "a later instance wrote outside"
    );
    let inside = std::fs::read_to_string(root.join("top/sub_old/written"));
    assert_eq!(inside.ok().as_deref(), Some("by the guest"));
}

/// A stop signal sent to the process and to its group (as GNU `timeout`
/// sends it) comes twice within microseconds: it is one stop, with its
/// grace, not a second signal's "stop at once".
#[test]
fn a_signal_that_comes_twice_at_once_is_one_graceful_stop() {
    let mut host = Host::listening("poll_http_server", 2, true);
    host.terminate();
    // Apart enough that the kernel does not merge them into one.
    std::thread::sleep(Duration::from_millis(30));
    host.terminate();
    host.stops_once_gracefully();
    assert_eq!(
        host.count("stopped before every instance had finished"),
        0,
        "{:#?}",
        host.seen
    );
}

/// A signal the host was started with ignored (as a shell starts a job
/// with `&`: SIGINT) stays ignored: a Ctrl-C meant for the script does not
/// stop the service. SIGTERM still does.
#[test]
fn a_signal_ignored_at_start_stays_ignored() {
    use std::os::unix::process::CommandExt;
    let module = wasm("poll_http_server");
    let mut command = Command::new(host_bin());
    command.args(["--instances", "2", "--grace", "20"]);
    command.arg(&*module.to_string_lossy()).arg("127.0.0.1:0");
    // SAFETY: only `signal`, which is async-signal-safe, runs in the child
    // before it starts the host.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut host = Host::start_reading(&mut command, true);
    host.wait_for("listening on", 2);
    // SAFETY: a signal to the child this test started.
    let sent = unsafe { libc::kill(host.child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT sent");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        host.child.try_wait().expect("wait works").is_none(),
        "SIGINT, ignored when the host started, stopped it"
    );
    while let Ok(line) = host.lines.try_recv() {
        host.seen.push(line);
    }
    assert_eq!(
        host.count("stopping"),
        0,
        "SIGINT began a stop: {:#?}",
        host.seen
    );
    host.terminate();
    host.stops_once_gracefully();
}

/// A second signal that comes later than that ends the host at once,
/// though a request it accepted is still unfinished.
#[test]
fn a_second_signal_later_stops_at_once() {
    let mut host = Host::listening("poll_http_server", 2, true);
    let addr = host
        .seen
        .iter()
        .find_map(|(_, l)| l.split("listening on ").nth(1))
        .and_then(|rest| rest.split([' ', ';', ',']).next())
        .map(str::to_string)
        .expect("a listening line names its address");
    // A request begun: the drain would wait for it (its header timeout).
    let mut held = connect_within(&addr).expect("connect");
    held.write_all(b"GET / HTTP/1.1\r\n").expect("send");
    std::thread::sleep(Duration::from_millis(200));
    host.terminate();
    std::thread::sleep(Duration::from_millis(400));
    host.terminate();
    assert_eq!(host.exit_code(Duration::from_secs(60)), Some(0));
    assert_eq!(
        host.count("stopped before every instance had finished"),
        1,
        "{:#?}",
        host.seen
    );
    drop(held);
}

/// With its stderr gone (a log reader that ended), the host still stops on
/// SIGTERM: its own lines were written with `eprintln!`, which panicked on
/// the failed write, and the stop never began.
#[test]
fn the_host_stops_with_its_stderr_gone() {
    let mut host = Host::listening("poll_http_server", 2, false);
    host.terminate();
    assert_eq!(
        host.exit_code(Duration::from_secs(60)),
        Some(0),
        "{:#?}",
        host.seen
    );
}

/// A module no instance can link (it imports a function no runtime
/// provides, or one with another signature) is refused once, before any
/// instance starts: not started and failed five times over, each.
#[test]
fn a_module_no_instance_can_link_is_refused_before_any_starts() {
    // An unknown name, and a known one of another signature.
    for name in ["sock_nothing", "fd_write"] {
        let module = module_importing("wasi_snapshot_preview1", name);
        let mut host = Host::start(&["--instances", "2", &module.to_string_lossy()]);
        let code = host.exit_code(Duration::from_secs(60));
        let _ = std::fs::remove_file(&module);
        assert_eq!(code, Some(1), "{name}: {:#?}", host.seen);
        assert_eq!(host.count("cannot link"), 1, "{name}: {:#?}", host.seen);
        assert_eq!(host.count(name), 1, "{name}: {:#?}", host.seen);
        assert_eq!(
            host.count("starting it again"),
            0,
            "{name}: {:#?}",
            host.seen
        );
    }
}

/// An instance's process CPU-time clock counts its own time, as a WasmEdge
/// process of its own gives it: two instances that each burn 300 ms of CPU
/// at once read no more than their own thread's, read after it. (They read
/// the host process's: both instances', and the host's own.)
#[test]
fn an_instance_reads_its_own_cpu_time_as_its_process_s() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let args = ["--instances", "2", "--restart", "no", &module, "cpu-clock"];
    let mut host = Host::start(&args);
    assert_eq!(
        host.exit_code(Duration::from_secs(60)),
        Some(0),
        "{:#?}",
        host.seen
    );
    let clocks: Vec<(u64, u64)> = (host.seen.iter())
        .filter_map(|(_, line)| {
            let (_, rest) = line.split_once("process=")?;
            let (process, thread) = rest.split_once(" thread=")?;
            Some((process.parse().ok()?, thread.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(clocks.len(), 2, "{:#?}", host.seen);
    for (process, thread) in clocks {
        assert!(
            (300_000_000..=thread).contains(&process),
            "process {process} ns, thread {thread} ns: {:#?}",
            host.seen
        );
    }
}

#[test]
fn with_restart_no_the_host_exits_with_the_worst_code() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let mut host = Host::start(&["--instances", "3", "--restart", "no", &module, "exit"]);
    assert_eq!(host.exit_code(Duration::from_secs(60)), Some(7));
    assert_eq!(host.count("exited with code 7"), 3, "{:#?}", host.seen);

    let echo = wasm("poll_http_server");
    let echo = echo.to_string_lossy();
    let (mut host, addr) = Host::on_free_port(2, |addr| {
        let args = [
            "--instances",
            "2",
            "--restart",
            "no",
            &echo,
            addr,
            "--exit-after",
            "1",
        ];
        args.map(String::from).to_vec()
    });
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.child.try_wait().expect("wait works").is_none() {
        assert!(Instant::now() < deadline, "{:#?}", host.seen);
        answered += usize::from(echo_once(&addr));
    }
    assert_eq!(host.exit_code(Duration::from_secs(5)), Some(0));
    assert_eq!(answered, 2, "one request each, then both exit");
}

/// With `--restart no`, an instance that failed before a stop began is
/// the host's exit code, though the stop itself ends the others cleanly:
/// a supervisor sees the failure (it exited 0).
#[test]
fn with_restart_no_a_failure_before_a_stop_is_the_exit_code() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let dir = scratch_dir("first-exits", &host_runtime());
    let preopen = format!("/:{}", dir.display());
    let args = [
        "--instances",
        "2",
        "--restart",
        "no",
        "--dir",
        &preopen,
        &module,
        "first-exits",
    ];
    let mut host = Host::start(&args);
    host.wait_for("listening, not first", 1);
    host.wait_for("exited with code 7", 1);
    host.terminate();
    assert_eq!(
        host.exit_code(Duration::from_secs(60)),
        Some(7),
        "{:#?}",
        host.seen
    );
}

/// A stop while an instance waits to be started again ends the wait: the
/// host exits without waiting out a pause longer than its grace.
#[test]
fn a_stop_during_a_pause_before_a_restart_ends_it() {
    let module = wasm("conformance_guest");
    let module = module.to_string_lossy();
    let args = ["--instances", "1", "--grace", "1", &module, "program-name"];
    let mut host = Host::start(&args);
    // Ends at once, again and again: the pause grows to its longest.
    host.wait_for("starting it again in 2s", 1);
    host.terminate();
    assert_eq!(host.exit_code(Duration::from_secs(60)), Some(0));
    assert_eq!(
        host.count("stopped before every instance had finished"),
        0,
        "the stop waited for the pause: {:#?}",
        host.seen
    );
}

/// A descriptor limit too low for each instance's least share is refused
/// before any starts, with what to do, where the last ones started had no
/// descriptor left for their own poller.
#[test]
fn a_descriptor_limit_too_low_for_the_instances_is_refused() {
    let module = wasm("conformance_guest");
    let command = format!(
        "ulimit -n 64 && exec {} --instances 6 {} exit",
        host_bin().display(),
        module.display()
    );
    let mut host = Host::start_command(Command::new("bash").args(["-c", &command]));
    assert_eq!(
        host.exit_code(Duration::from_secs(60)),
        Some(1),
        "{:#?}",
        host.seen
    );
    assert_eq!(host.count("raise it (ulimit -n) or run fewer instances"), 1);
    assert_eq!(host.count("exited with code"), 0, "{:#?}", host.seen);
}

/// Instances share the process's descriptors: each gets its share and
/// EMFILE past it, so one holding all it can leaves the others theirs
/// (one instance could take every descriptor, and the others' accepts and
/// restarts failed). Run under a soft limit of 128: (128 − 48) / 2 = 40
/// each, three of which are stdio.
#[test]
fn instances_share_the_process_descriptors_evenly() {
    let module = wasm("conformance_guest");
    let host = host_bin();
    let command = format!(
        "ulimit -n 128 && exec {} --instances 2 --restart no {} hold-sockets",
        host.display(),
        module.display()
    );
    let mut host = Host::start_command(Command::new("bash").args(["-c", &command]));
    assert_eq!(
        host.exit_code(Duration::from_secs(60)),
        Some(0),
        "{:#?}",
        host.seen
    );
    let held: Vec<(usize, String)> = host
        .seen
        .iter()
        .filter_map(|(_, line)| {
            let rest = line.split("held=").nth(1)?;
            let (count, errno) = rest.split_once(' ')?;
            Some((count.parse().ok()?, errno.to_string()))
        })
        .collect();
    assert_eq!(held.len(), 2, "{:#?}", host.seen);
    for (count, errno) in &held {
        assert_eq!(errno, "errno=Some(33)", "EMFILE: {:#?}", host.seen);
        assert_eq!(
            *count, 37,
            "40 descriptors, 3 of them stdio: {:#?}",
            host.seen
        );
    }
}

/// What clients saw while the host stopped.
#[derive(Default)]
struct Outcome {
    answered: AtomicU64,
    /// Refused, or closed before any byte of a response.
    refused: AtomicU64,
    /// A response cut short or wrong: must stay 0.
    broken: AtomicU64,
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Keep-alive requests on `addr` until `stop`, reconnecting as needed.
fn keep_asking(addr: &str, stop: &AtomicBool, outcome: &Outcome) {
    let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut stream) = connect_within(addr) else {
            outcome.refused.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
        while !stop.load(Ordering::SeqCst) {
            if stream.write_all(request).is_err() {
                outcome.refused.fetch_add(1, Ordering::SeqCst);
                break;
            }
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            let complete = loop {
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    if got.len() >= end + 4 + 5 {
                        break true;
                    }
                }
                match stream.read(&mut chunk) {
                    Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
                    _ => break false,
                }
            };
            match (complete, got.is_empty()) {
                (true, _) if got.starts_with(b"HTTP/1.1 200 OK\r\n") && got.ends_with(b"hello") => {
                    outcome.answered.fetch_add(1, Ordering::SeqCst);
                    if String::from_utf8_lossy(&got).contains("Connection: close") {
                        break;
                    }
                }
                (false, true) => {
                    outcome.refused.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                _ => {
                    eprintln!("broken response: {:?}", String::from_utf8_lossy(&got));
                    outcome.broken.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
    }
}

#[test]
fn sigterm_under_load_answers_or_refuses_every_request_and_exits_0() {
    let (mut host, addr) = Host::serving("poll_http_server", 2, 10);
    let stop = Arc::new(AtomicBool::new(false));
    // The load ends with the test, however it ends (a failed assertion
    // would leave eight threads reconnecting for the rest of the run).
    let _stop_load = StopOnDrop(stop.clone());
    let outcome = Arc::new(Outcome::default());
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop, outcome) = (addr.clone(), stop.clone(), outcome.clone());
            std::thread::spawn(move || keep_asking(&addr, &stop, &outcome))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let before = outcome.answered.load(Ordering::SeqCst);
    let signalled = Instant::now();
    host.terminate();
    let code = host.exit_code(Duration::from_secs(20));
    let took = signalled.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("client thread");
    }
    let (answered, refused, broken) = (
        outcome.answered.load(Ordering::SeqCst),
        outcome.refused.load(Ordering::SeqCst),
        outcome.broken.load(Ordering::SeqCst),
    );
    println!(
        "stopped in {took:?}: {answered} answered ({before} before the signal), {refused} refused or closed cleanly, {broken} broken"
    );
    assert_eq!(code, Some(0), "{:#?}", host.seen);
    assert!(before > 0, "no load before the signal");
    assert_eq!(broken, 0);
    assert!(
        host.count("the listener was shut down") == 2,
        "both instances drained: {:#?}",
        host.seen
    );
}

/// A WebSocket handshake begun before SIGTERM and finished after it: the
/// client gets its 101 and then, as every WebSocket open at the signal
/// did, a close with 1001 (going away); the host exits 0 well within its
/// grace. (The socket stayed open, and the host waited for the grace.)
#[test]
fn a_websocket_opened_while_shutting_down_is_closed_going_away() {
    let (mut host, addr) = Host::serving("ws_chat", 1, 20);
    let mut stream = connect_within(&addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    stream
        .write_all(b"GET /ws?name=late HTTP/1.1\r\nHost: x\r\n")
        .expect("head begun");
    // The server has read the head's start before it is told to stop.
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    host.terminate();
    host.wait_for("finishing what was accepted", 1);
    stream
        .write_all(
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("head finished");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The 101, then a close frame (0x88) whose code is 1001.
    let close = loop {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            // The server's frames, unmasked and short: opcode, length, payload.
            let mut frames = &got[head_end + 4..];
            let mut code = None;
            while let [first, len, rest @ ..] = frames {
                let len = usize::from(len & 0x7f);
                assert!(len < 126, "a short frame");
                if rest.len() < len {
                    break;
                }
                if first & 0x0f == 0x8 && len >= 2 {
                    code = Some(u16::from_be_bytes([rest[0], rest[1]]));
                }
                frames = &rest[len..];
            }
            if let Some(code) = code {
                break code;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "closed without a close frame: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(&got)),
        }
    };
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(close, 1001);
    drop(stream);
    let code = host.exit_code(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{:#?}", host.seen);
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "waited for the grace"
    );
}
