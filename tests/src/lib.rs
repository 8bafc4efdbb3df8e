//! Harness for the end-to-end tests: builds the `.wasm` programs once, finds
//! every runtime present (the bundled `edgepoll-host` always; WasmEdge's
//! interpreter and its AOT compiler when `wasmedge` is on PATH), starts
//! programs on free loopback ports and stops them when dropped, even when a
//! test fails. `EDGEPOLL_RUNTIME=host|wasmedge|aot` narrows the runs to one.

pub mod dns;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// A runtime that can run the wasm programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// The bundled runtime, at this path.
    Host(PathBuf),
    /// `wasmedge` interpreting the module.
    WasmEdge,
    /// `wasmedge` running the module compiled by `wasmedge compile`.
    WasmEdgeAot,
}

impl Runtime {
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Host(_) => "edgepoll-host",
            Runtime::WasmEdge => "wasmedge interpreter",
            Runtime::WasmEdgeAot => "wasmedge AOT",
        }
    }

    /// The command running `wasm` with runtime options `flags` (`--dir`,
    /// `--env`, spelled as WasmEdge spells them); the program's own arguments
    /// follow with `.args()`.
    pub fn command_with(&self, wasm: &Path, flags: &[&str]) -> Command {
        self.command_with_os(wasm, flags.iter().map(std::ffi::OsStr::new))
    }

    /// [`command_with`](Self::command_with) with flags that need not be
    /// UTF-8.
    pub fn command_with_os<'a>(
        &self,
        wasm: &Path,
        flags: impl IntoIterator<Item = &'a std::ffi::OsStr>,
    ) -> Command {
        let mut cmd = match self {
            Runtime::Host(bin) => Command::new(bin),
            Runtime::WasmEdge | Runtime::WasmEdgeAot => Command::new("wasmedge"),
        };
        cmd.args(flags);
        match self {
            Runtime::WasmEdgeAot => cmd.arg(aot_module(wasm)),
            _ => cmd.arg(wasm),
        };
        cmd
    }

    pub fn command(&self, wasm: &Path) -> Command {
        self.command_with(wasm, &[])
    }

    /// Makes program `name` ready to start: for AOT, compiles it now (once),
    /// so that a time measured next is the program's, not the compiler's.
    pub fn prepare(&self, name: &str) {
        if *self == Runtime::WasmEdgeAot {
            aot_module(&wasm(name));
        }
    }
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the runtime and the wasm programs (release) once per test process.
pub fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // As the Makefile (WASM_BUILD): the https:// programs apart, so that
        // only they get edgepoll's `tls` feature, and with whole-program
        // optimisation, which the workspace's profile cannot give the wasm
        // programs alone.
        let plain = ["-p", "poll_http_server", "-p", "ws_chat", "-p", "conformance_guest", "-p", "abi_transcript", "-p", "forward_guest"];
        let tls = ["-p", "nonblock_http_client", "-p", "proxy"];
        for programs in [&plain[..], &tls[..]] {
            let status = Command::new(&cargo)
                .current_dir(root())
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip1"])
                .args(programs)
                .env("CARGO_PROFILE_RELEASE_LTO", "fat")
                .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the wasm programs failed (is the target installed? run: rustup target add wasm32-wasip1)");
        }
        let status = Command::new(&cargo)
            .current_dir(root())
            // With the workspace's features, as `make build` and `cargo
            // test --workspace` build it, so that wasmtime is built once.
            .args(["build", "--quiet", "--release", "--workspace", "--bin", "edgepoll-host"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building edgepoll-host failed");
    });
}

pub fn wasm(name: &str) -> PathBuf {
    build();
    target_dir()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"))
}

/// The AOT-compiled form of `wasm`, compiled once per distinct module: the
/// cache key is a hash of the module's bytes and of `wasmedge --version`, so
/// a rebuild, or another WasmEdge, compiles afresh.
fn aot_module(wasm: &Path) -> PathBuf {
    static COMPILED: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(done) = compiled.get(wasm) {
        return done.clone();
    }
    let bytes =
        std::fs::read(wasm).unwrap_or_else(|e| panic!("cannot read {}: {e}", wasm.display()));
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    // And the compiler's version: another WasmEdge's AOT code is not reused
    // (it may run it interpreted, or not at all).
    wasmedge_version().hash(&mut hasher);
    let stem = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("module");
    let dir = target_dir().join("wasmedge-aot");
    let out = dir.join(format!("{stem}-{:016x}.wasm", hasher.finish()));
    if !out.exists() {
        std::fs::create_dir_all(&dir).expect("create target/wasmedge-aot");
        // Removed however the compile ends (renamed away when it succeeds).
        let partial = TempPath(out.with_extension(format!("partial{}", std::process::id())));
        let result = output_bounded(
            Command::new("wasmedge")
                .arg("compile")
                .arg(wasm)
                .arg(&partial.0),
            Duration::from_secs(600),
        );
        assert!(
            result.status.success(),
            "wasmedge compile {} failed: {}",
            wasm.display(),
            String::from_utf8_lossy(&result.stderr)
        );
        std::fs::rename(&partial.0, &out).expect("move the compiled module in place");
    }
    compiled.insert(wasm.to_path_buf(), out.clone());
    out
}

/// A module whose `_start` does nothing, that imports `module::name`, a
/// function of no arguments that returns an i32; written to a file of its
/// own in the temporary directory (the caller removes it). Names are under
/// 128 bytes (their lengths are written as one byte).
pub fn module_importing(module: &str, name: &str) -> TempPath {
    let import = [
        &[module.len() as u8][..],
        module.as_bytes(),
        &[name.len() as u8],
        name.as_bytes(),
        &[0, 0], // a function of type 0
    ]
    .concat();
    let path = std::env::temp_dir().join(format!(
        "edgepoll-imports-{module}-{name}-{}.wasm",
        std::process::id()
    ));
    let bytes = [
        &b"\0asm\x01\0\0\0"[..],
        &[1, 8, 2, 0x60, 0, 1, 0x7f, 0x60, 0, 0], // types: [] -> [i32], [] -> []
        &[2, import.len() as u8 + 1, 1],
        &import,
        &[3, 2, 1, 1], // one function of type 1
        &[7, 10, 1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 1], // exported as _start
        &[10, 4, 1, 2, 0, 0x0b], // its body: nothing
    ]
    .concat();
    std::fs::write(&path, bytes).expect("write");
    TempPath(path)
}

pub fn host_runtime() -> Runtime {
    build();
    Runtime::Host(target_dir().join("release/edgepoll-host"))
}

/// `wasmedge --version`'s output, if it ran and succeeded within 30 s
/// (`None` without a working one).
fn wasmedge_probe() -> Option<&'static str> {
    static VERSION: OnceLock<Option<String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let child = Command::new("wasmedge")
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let out = finish_within(child, Duration::from_secs(30)).ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .as_deref()
}

/// `wasmedge --version`'s output (empty without one).
fn wasmedge_version() -> &'static str {
    wasmedge_probe().unwrap_or_default()
}

fn wasmedge_on_path() -> bool {
    wasmedge_probe().is_some()
}

/// Every runtime present: edgepoll-host always; WasmEdge's interpreter and
/// AOT when `wasmedge` is on PATH. Prints which ones (the test's output, shown
/// by `make test`), and a note when WasmEdge is missing.
pub fn all_runtimes() -> Vec<Runtime> {
    let mut all = vec![host_runtime()];
    if wasmedge_on_path() {
        all.push(Runtime::WasmEdge);
        all.push(Runtime::WasmEdgeAot);
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(
        !(ci && std::env::var_os("EDGEPOLL_RUNTIME").is_some()),
        "CI=true runs every runtime present: unset EDGEPOLL_RUNTIME (.ci/run does)"
    );
    match std::env::var("EDGEPOLL_RUNTIME").as_deref() {
        Ok("host") => all.retain(|r| matches!(r, Runtime::Host(_))),
        Ok("wasmedge") => all.retain(|r| *r == Runtime::WasmEdge),
        Ok("aot") => all.retain(|r| *r == Runtime::WasmEdgeAot),
        Ok(other) => panic!("EDGEPOLL_RUNTIME must be host, wasmedge or aot, not {other:?}"),
        Err(_) => {}
    }
    assert!(
        !all.is_empty(),
        "EDGEPOLL_RUNTIME names a runtime that is not present (is wasmedge on PATH?)"
    );
    let names: Vec<&str> = all.iter().map(Runtime::name).collect();
    println!("runtimes: {}", names.join(", "));
    // CI has WasmEdge (../shared/wasmedge): a run without it would pass on
    // the bundled runtime alone and say so only in a note.
    assert!(
        wasmedge_on_path() || !ci,
        "CI=true but no working wasmedge on PATH: install WasmEdge 0.14.1 (../shared/wasmedge, or $WASMEDGE_DIR)"
    );
    if !wasmedge_on_path() {
        println!(
            "NOTE: wasmedge is not on PATH: only the bundled runtime (edgepoll-host) ran this test"
        );
    }
    all
}

/// The tests of one binary run side by side on the machine's two cores. A
/// test that compares latencies holds this for writing while it measures
/// ([`on_each_runtime_alone`]), so no other end-to-end test of its binary
/// loads the machine meanwhile; the others hold it for reading.
static MEASURING: RwLock<()> = RwLock::new(());

/// Runs `test` once on each runtime present; a failure names the runtime.
/// Not to be called inside another: the inner call would wait for a
/// measuring test that waits for the outer one.
pub fn on_each_runtime(test: impl Fn(&Runtime)) {
    each_runtime(test, false);
}

/// [`on_each_runtime`] for a test that measures latencies: no other test
/// using these helpers runs in its binary meanwhile (a p99 taken while
/// another test's guest had the second core failed CI once).
pub fn on_each_runtime_alone(test: impl Fn(&Runtime)) {
    each_runtime(test, true);
}

fn each_runtime(test: impl Fn(&Runtime), alone: bool) {
    use std::sync::PoisonError;
    for runtime in all_runtimes() {
        let shared = (!alone).then(|| MEASURING.read().unwrap_or_else(PoisonError::into_inner));
        let only = alone.then(|| MEASURING.write().unwrap_or_else(PoisonError::into_inner));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&runtime)));
        drop((shared, only));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("on {}: {message}", runtime.name());
        }
    }
}

/// Runs a wasm program to completion (at most `limit`); kills it past that.
pub fn run_wasm(runtime: &Runtime, name: &str, args: &[&str], limit: Duration) -> Output {
    run_wasm_with(runtime, name, &[], args, limit)
}

/// [`run_wasm`] with runtime options (`--dir`, `--env`) before the module.
pub fn run_wasm_with(
    runtime: &Runtime,
    name: &str,
    flags: &[&str],
    args: &[&str],
    limit: Duration,
) -> Output {
    let child = runtime
        .command_with(&wasm(name), flags)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runtime starts");
    match finish_within(child, limit) {
        Ok(out) => out,
        Err(out) => panic!(
            "{name} {args:?} did not finish within {limit:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Waits for `child` to end, for at most `limit` (then kills it and
/// fails); its output.
pub fn wait_bounded(child: std::process::Child, limit: Duration) -> Output {
    match finish_within(child, limit) {
        Ok(out) => out,
        Err(out) => panic!(
            "the program did not finish within {limit:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// [`wait_bounded`] for a command not started yet: its stdin empty, its
/// output piped.
pub fn output_bounded(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    wait_bounded(child, limit)
}

/// `child`'s exit status once it ends, or `None` if it runs past `limit`
/// (it is left running).
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The output of `child` once it ends, or, past `limit`, what it wrote
/// before it was killed. Its pipes are read meanwhile, so that a program
/// that writes more than a pipe holds does not stall on them; what a
/// process it started still holds open is not waited for past a second.
pub fn finish_within(mut child: std::process::Child, limit: Duration) -> Result<Output, Output> {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
        let (done, read) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            let _ = done.send(out);
        });
        read
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let (status, finished) = match wait_within(&mut child, limit) {
        Some(status) => (status, true),
        None => {
            let _ = child.kill();
            (child.wait().expect("wait works"), false)
        }
    };
    // The child is gone, so its pipes close; a reader thread may still
    // be slow to be scheduled on a loaded machine.
    let rest = |read: mpsc::Receiver<Vec<u8>>| {
        read.recv_timeout(Duration::from_secs(10))
            .unwrap_or_default()
    };
    let out = Output {
        status,
        stdout: rest(stdout),
        stderr: rest(stderr),
    };
    match finished {
        true => Ok(out),
        false => Err(out),
    }
}

/// Looks at `done` every 20 ms until it holds or `within` has passed;
/// says whether it held.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to `within`) until `count` stops moving: the same value
/// over two windows of half a second in a row, so that a process stalled
/// for one window is not taken for one held back. Whether it did.
pub fn wait_until_still(within: Duration, mut count: impl FnMut() -> u64) -> bool {
    let mut last = count();
    let mut still = 0;
    wait_until(within, || {
        std::thread::sleep(Duration::from_millis(500));
        let now = count();
        still = if std::mem::replace(&mut last, now) == now {
            still + 1
        } else {
            0
        };
        still >= 2
    })
}

/// A path in the temporary directory no other test, in this process or
/// another, has: `edgepoll-{tag}-{pid}-{n}`, n counting up. (A port found
/// free served here once; the kernel may give the same one twice, and one
/// test's clean-up removed another's files.)
pub fn unique_temp_path(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("edgepoll-{tag}-{}-{n}", std::process::id()))
}

/// A child process killed and reaped when dropped, as a test's helper
/// processes are: a test that panics leaves none behind (holding a port, a
/// file, or the pipe CI reads the tests' output from).
#[derive(Debug)]
pub struct KilledOnDrop(Option<Child>);

impl KilledOnDrop {
    pub fn new(child: Child) -> KilledOnDrop {
        KilledOnDrop(Some(child))
    }

    /// The child, no longer killed on drop (to be waited for: see
    /// [`wait_bounded`]).
    pub fn into_child(mut self) -> Child {
        self.0.take().expect("held until now")
    }
}

impl std::ops::Deref for KilledOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("held until into_child")
    }
}

impl std::ops::DerefMut for KilledOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("held until into_child")
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response read to the close: its head (to the blank line) as text, and
/// the bytes after it. Fails the test without a head.
pub fn split_head(got: &[u8]) -> (String, &[u8]) {
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (
        String::from_utf8_lossy(&got[..end]).into_owned(),
        &got[end..],
    )
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A loopback port no one listens on, held for as long as this lives: a
/// socket is bound to it and never listens, so connections to it are
/// refused and no other process is given the port meanwhile (a port found
/// free and released could be).
pub struct RefusedPort {
    _held: std::os::fd::OwnedFd,
    pub port: u16,
}

pub fn refused_port() -> RefusedPort {
    refused_port_at(std::net::Ipv4Addr::LOCALHOST.into())
}

/// [`refused_port`] on the address `ip` (`::1`, say).
pub fn refused_port_at(ip: std::net::IpAddr) -> RefusedPort {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // address structures are initialised before use, and each call is
    // given the size of the one it gets.
    unsafe {
        let family = match ip {
            std::net::IpAddr::V4(_) => libc::AF_INET,
            std::net::IpAddr::V6(_) => libc::AF_INET6,
        };
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let held = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = match ip {
            std::net::IpAddr::V4(v4) => {
                let addr = std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr_in>();
                (*addr).sin_family = libc::AF_INET as libc::sa_family_t;
                (*addr).sin_addr.s_addr = u32::from(v4).to_be();
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::IpAddr::V6(v6) => {
                let addr = std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr_in6>();
                (*addr).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*addr).sin6_addr.s6_addr = v6.octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        } as libc::socklen_t;
        let bound = libc::bind(fd, std::ptr::addr_of!(storage).cast(), len);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let mut got_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let named = libc::getsockname(fd, std::ptr::addr_of_mut!(storage).cast(), &mut got_len);
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        // The port sits at the same place in both structures.
        let port = (*std::ptr::addr_of!(storage).cast::<libc::sockaddr_in>()).sin_port;
        RefusedPort {
            _held: held,
            port: u16::from_be(port),
        }
    }
}

/// Seconds since 1970 by this machine's clock.
pub fn unix_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("a clock after 1970").as_secs()
}

/// Whether `head` holds one `Date` field, of a second from `since` to now
/// (RFC 9110 §5.6.7's IMF-fixdate).
pub fn dated_since(head: &str, since: u64) -> bool {
    let dates: Vec<&str> = head
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("date:"))
        .collect();
    let written = |secs| {
        format!(
            "Date: {}",
            String::from_utf8_lossy(&edgepoll::http::imf_fixdate(secs))
        )
    };
    dates.len() == 1 && (since..=unix_now()).any(|secs| dates[0] == written(secs))
}

/// A running program, killed on drop.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    /// Lines the program wrote to stderr since the last call: each line
    /// is handed out once.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Lines the program writes to stderr from the last call until `done`
    /// holds for them, or all it wrote `within` that time. A line the
    /// program wrote before its answer may reach the test after it: a
    /// reader thread carries them.
    pub fn stderr_until(
        &self,
        within: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        wait_until(within, || {
            lines.extend(self.stderr_lines());
            done(&lines)
        });
        lines
    }

    /// Ends the program (killed) and returns every line it wrote to stderr
    /// that was not handed out yet, to the end of its stderr or for at most
    /// `within`. What a check that a line is absent reads: a line written
    /// before the kill cannot still be on its way to the test.
    pub fn stderr_to_end(&mut self, within: Duration) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let by = Instant::now() + within;
        let mut lines = Vec::new();
        while let Some(left) = by.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        lines
    }

    /// The runtime process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still alive.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Running {
    /// Killed; when a test fails with it, what the program was doing is
    /// printed for the test's report: whether it had ended and how, and
    /// the last of its stderr that the test had not read (a failure seen
    /// once in CI is otherwise hard to tell from another).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let ended = self.exit_status();
            let lines = self.stderr_to_end(Duration::from_secs(2));
            match ended {
                Some(status) => println!("the program had ended: {status}"),
                None => println!("the program was still running"),
            }
            println!("the last of its stderr:\n{}", last_lines(&lines, 30));
        }
        // Its group, if it leads one (`tracing_sends`) and was not reaped
        // (its pid, and so the group's id, cannot be another's yet).
        if let (Ok(None), Ok(pid)) = (
            self.child.try_wait(),
            libc::pid_t::try_from(self.child.id()),
        ) {
            // SAFETY: a plain kill(2) of a process group; no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `count` distinct runs of `lines`, a run of one line repeated
/// given once with how many times it came.
fn last_lines(lines: &[String], count: usize) -> String {
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for line in lines {
        match runs.last_mut() {
            Some((last, times)) if *last == line.as_str() => *times += 1,
            _ => runs.push((line, 1)),
        }
    }
    let skip = runs.len().saturating_sub(count);
    let shown = runs[skip..].iter().map(|(line, times)| match times {
        1 => format!("  {line}"),
        _ => format!("  {line}  (×{times})"),
    });
    let mut text = String::new();
    if skip > 0 {
        text.push_str(&format!("  ({skip} earlier runs of lines left out)\n"));
    }
    text.push_str(&shown.collect::<Vec<_>>().join("\n"));
    text
}

/// Starts the echo server under `runtime` on a port of its choosing (see
/// [`start_program`]) with extra arguments; waits for its `listening on` line.
pub fn start_server(runtime: &Runtime, extra: &[&str]) -> Running {
    start_program(runtime, "poll_http_server", &[], extra)
}

/// Starts wasm program `name` under `runtime` with `before` as its first
/// arguments, then `127.0.0.1:0`, then `after`; waits for its `listening on
/// ADDR` line, which names the port it bound (so no other process can take
/// a port between its choice and its bind).
pub fn start_program(runtime: &Runtime, name: &str, before: &[&str], after: &[&str]) -> Running {
    start_program_with(runtime, name, &[], before, after)
}

/// [`start_program`] with runtime options (`--env`, `--dir`) before the
/// module.
pub fn start_program_with(
    runtime: &Runtime,
    name: &str,
    flags: &[&str],
    before: &[&str],
    after: &[&str],
) -> Running {
    let mut command = runtime.command_with(&wasm(name), flags);
    command.args(before).arg("127.0.0.1:0").args(after);
    start_command(command)
}

/// Starts `command`, a program given the address `127.0.0.1:0`, and waits
/// for its `listening on ADDR` line (see [`start_program`]).
pub fn start_command(command: Command) -> Running {
    start_command_with_stderr(command, Stdio::piped())
}

/// [`start_command`] with the program's stderr going to `stderr` (where
/// it is not piped, [`Running::stderr_lines`] has none).
pub fn start_command_with_stderr(mut command: Command, stderr: Stdio) -> Running {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("runtime starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
    }
    let mut running = Running {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        stderr: err_rx,
    };
    let line = line_rx.recv_timeout(Duration::from_secs(60));
    // `listening on ADDR`, then `,` or `;` and more, or nothing.
    let bound = line.as_ref().ok().and_then(|line| {
        let rest = line.strip_prefix("listening on ")?;
        let end = rest.find([',', ';', ' ']).unwrap_or(rest.len());
        rest[..end].parse::<SocketAddr>().ok()
    });
    match bound {
        Some(addr) if addr.port() != 0 => {
            running.addr = addr;
            running
        }
        _ => {
            let errors = running.stderr_lines().join("\n");
            panic!("server did not start: {line:?}; stderr: {errors}");
        }
    }
}

/// The resident memory of a process, in KiB; None once it has exited (a
/// zombie's status has no VmRSS line).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user and system) process `pid` has used, in clock ticks
/// (10 ms here): a busy loop burns about 100 a second.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Closes `stream` with a reset (SO_LINGER of 0), not a FIN: as a client
/// that crashed or gave up hard.
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and option of the size given.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}

/// A connection whose receive buffer is a few KiB, set before it connects
/// (the window is agreed then), so that a response it leaves unread fills
/// the server's socket at once instead of the client's buffer.
pub fn connect_with_a_small_receive_buffer(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("the test server listens on IPv4, not {addr}");
    };
    // SAFETY: a new socket, owned by the TcpStream from its creation on;
    // the option and address pointers are valid for the sizes given.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let size: libc::c_int = 4096;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&to as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    for timeout in [
        stream.set_read_timeout(Some(Duration::from_secs(10))),
        stream.set_write_timeout(Some(Duration::from_secs(10))),
    ] {
        timeout.expect("timeout set");
    }
    stream
}

/// Opens a connection with 10 s read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    stream
}

/// The most [`exchange_until_close`] reads before it fails: far more than
/// any test's answer, a bound for a server that never stops sending.
const MAX_EXCHANGE_BYTES: usize = 64 << 20;

/// Sends raw bytes and reads until the server closes (a reset counts: a
/// server may reset a client that sent more than it read); fails if it has
/// not within 10 s of silence or 60 s in all, or has sent more than 64 MiB.
pub fn exchange_until_close(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    let _ = stream.write_all(request);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero() && out.len() <= MAX_EXCHANGE_BYTES,
            "the server did not close the connection within 60 s and 64 MiB: {} bytes, starting {:?}",
            out.len(),
            String::from_utf8_lossy(&out[..out.len().min(512)])
        );
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_secs(10))));
        match stream.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "the server did not close the connection: {e} after {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Reads until the server closes the connection (or resets it) and returns
/// what came; fails the test if the read timed out instead: a hang.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let ended = stream.read_to_end(&mut got);
    let closed = match &ended {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "{ended:?} after {:?}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads exactly one response (Content-Length framed, or chunked: its body
/// decoded) from the stream,
/// whose head may be 64 KiB at the most.
pub fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert!(
            buf.len() < 64 << 10,
            "a response head over 64 KiB: {:?}",
            String::from_utf8_lossy(&buf[..512])
        );
        let n = stream.read(&mut byte).expect("response head arrives");
        assert!(
            n > 0,
            "connection closed mid-head after {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if chunked {
        let body = read_chunked_body(stream);
        return (head, body);
    }
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().expect("numeric length"))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("body arrives");
    (head, body)
}

/// A chunked body, decoded, and its trailer section read past.
fn read_chunked_body(stream: &mut TcpStream) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(stream);
        let hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).expect("a chunk size");
        if size == 0 {
            while !read_line(stream).is_empty() {}
            return body;
        }
        let mut data = vec![0u8; size + 2];
        stream.read_exact(&mut data).expect("chunk arrives");
        assert!(data.ends_with(b"\r\n"), "a chunk not ended by CRLF");
        body.extend_from_slice(&data[..size]);
    }
}

/// A line ended by CRLF, without it.
fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert!(line.len() < 4096, "a line over 4 KiB");
        let n = stream.read(&mut byte).expect("line arrives");
        assert!(n > 0, "connection closed mid-line");
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8_lossy(&line).into_owned()
}

/// A directory of the test's own for `rt` (named by `tag`, the process and
/// the runtime), made if need be: to preopen with `--dir`. Removed, with
/// what it holds, when dropped.
pub fn scratch_dir(tag: &str, rt: &Runtime) -> TempPath {
    let dir = std::env::temp_dir().join(format!(
        "edgepoll-{tag}-{}-{}",
        std::process::id(),
        rt.name().replace(' ', "-")
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    TempPath(dir)
}

/// A file or directory a test made in the temporary directory, removed
/// when dropped, so that runs do not pile their leftovers up there (a
/// test that fails leaves it too, unless it panics while unwinding).
#[derive(Debug)]
pub struct TempPath(pub PathBuf);

impl std::ops::Deref for TempPath {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempPath {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempPath {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = match self.0.is_dir() {
            true => std::fs::remove_dir_all(&self.0),
            false => std::fs::remove_file(&self.0),
        };
    }
}

/// Runs `curl` with arguments; fails with install advice when curl is missing.
/// Never through a proxy the environment names: tests talk to loopback only.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--noproxy",
            "*",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("curl is needed for these tests ({e}); install it: apt-get install -y curl")
        })
}

/// Runs Python's `websockets` clients (tests/ws/clients.py) against the
/// chat at `addr` (served by process `pid`, whose memory one case watches):
/// the named cases, or all. Returns whether all passed and their report;
/// the whole run is bounded by `limit`.
pub fn run_ws_clients(
    addr: SocketAddr,
    pid: u32,
    cases: &[&str],
    limit: Duration,
) -> (bool, String) {
    let probe = Command::new("python3")
        .args(["-c", "import websockets"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "Python 3 with the websockets package is needed: python3 -m pip install websockets (make test installs it)"
    );
    let child = Command::new("python3")
        .arg(root().join("tests/ws/clients.py"))
        .arg(addr.to_string())
        .arg(pid.to_string())
        .args(cases)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    // The script bounds each case; this bounds the whole run (its output
    // read meanwhile, so that it never waits on a full pipe).
    match finish_within(child, limit) {
        Ok(out) => {
            let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
            report.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), report)
        }
        Err(out) => panic!(
            "the WebSocket clients did not finish within {limit:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `clients` keep-alive clients sending POSTs to `{prefix}/{client}/{n}`
/// until `until`, each body checked as echoed with 200: every request's
/// latency.
pub fn echo_load(addr: SocketAddr, clients: usize, prefix: &str, until: Instant) -> Vec<Duration> {
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut latencies = Vec::new();
                let mut n = 0;
                while Instant::now() < until {
                    let body = format!("client {client} request {n}");
                    let request = format!(
                        "POST {prefix}/{client}/{n} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let started = Instant::now();
                    stream.write_all(request.as_bytes()).expect("send");
                    let (head, echoed) = read_response(&mut stream);
                    latencies.push(started.elapsed());
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    assert_eq!(echoed, body.as_bytes(), "a response went to the wrong request");
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect()
}

/// `inner` (a runtime and its program) under strace, its sends (`sendmsg`,
/// `sendto`) written to `trace` once it exits. Fails if strace is missing
/// or tracing is forbidden (a container may forbid ptrace).
pub fn tracing_sends(inner: &Command, trace: &Path) -> Command {
    let traced = Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .output();
    assert!(
        traced.is_ok_and(|out| out.status.success()),
        "this test needs strace, and ptrace allowed: apt-get install strace (make setup installs it)"
    );
    let mut command = Command::new("strace");
    // A group of its own, killed whole when the program is dropped: a
    // kill of strace alone leaves the program it traces running.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=sendmsg,sendto",
            "-e",
            "signal=none",
        ])
        .arg("-o")
        .arg(trace)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
}

/// The sends of each of the `served` responses of `program`, started with
/// [`tracing_sends`] to exit once it served them (`--exit-after`), from
/// its trace: once it exits, strace has written the trace whole.
pub fn sends_of_responses(program: &mut Running, trace: &Path, served: usize) -> Vec<Vec<usize>> {
    let written = finished_trace(program, trace, served);
    let sends = response_sends(&written);
    assert_eq!(
        sends.len(),
        served,
        "the sends of {served} responses: {written}"
    );
    sends
}

/// The trace [`tracing_sends`] wrote of `program`, once it has exited
/// after `served` requests (`--exit-after`).
pub fn finished_trace(program: &mut Running, trace: &Path, served: usize) -> String {
    let ended = wait_until(Duration::from_secs(30), || !program.is_alive());
    assert!(ended, "the program did not exit after {served} requests");
    let _ = program.stderr_to_end(Duration::from_secs(10));
    let written = std::fs::read_to_string(trace).unwrap_or_default();
    let _ = std::fs::remove_file(trace);
    written
}

/// The sends of each `200` response in a trace of [`tracing_sends`], in
/// order: what each took, from the one that begins it up to the next
/// response's, on the descriptor it began on (a request a proxy sends
/// upstream meanwhile is none of them). A send that failed (`EAGAIN`:
/// nothing went) is none either. A send the kernel took only part of (its
/// send buffer full) is counted with the next, as one: the split is the
/// kernel's, not the program's.
pub fn response_sends(trace: &str) -> Vec<Vec<usize>> {
    let mut responses: Vec<Vec<usize>> = Vec::new();
    let mut client = None;
    let mut cut_short = false;
    for line in trace.lines() {
        let Some((_, result)) = line.rsplit_once(" = ") else {
            // A call another thread interrupted has its result on a line of
            // its own ("resumed"): not what a single-threaded guest makes.
            panic!("no result on {line}");
        };
        let Ok(sent) = result.trim().parse::<usize>() else {
            continue;
        };
        // `PID sendmsg(FD, ...`
        let fd = line
            .split_once('(')
            .and_then(|(_, args)| args.split_once(','));
        let fd = fd.map(|(fd, _)| fd);
        match responses.last_mut() {
            _ if line.contains("\"HTTP/1.1 200") => {
                client = fd;
                responses.push(vec![sent]);
            }
            Some(sends) if fd == client => match (cut_short, sends.last_mut()) {
                (true, Some(last)) => *last += sent,
                _ => sends.push(sent),
            },
            _ => continue,
        }
        cut_short = sent < send_asked(line);
    }
    responses
}

/// How many bytes a `sendmsg` line of strace asked to send: the sum of its
/// `iov_len`s (at most `http::MAX_SEND_PARTS`, under the 32 strace shows).
fn send_asked(line: &str) -> usize {
    let parts = line.split("iov_len=").skip(1);
    let lengths = parts.map(|part| {
        let digits = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        part[..digits].parse::<usize>().unwrap_or(0)
    });
    lengths.sum()
}

#[cfg(test)]
mod tests {
    use super::response_sends;

    /// A send the kernel took only part of counts with the next; a send of
    /// all its parts does not, however many; sends on the client's
    /// descriptor alone; a send that failed is none.
    #[test]
    fn a_response_s_sends_are_what_the_program_sent_to_its_client() {
        let trace = r#"7 sendmsg(5, {msg_iov=[{iov_base="HTTP/1.1 200 OK\r\n"..., iov_len=100}, {iov_base="ab"..., iov_len=65536}], msg_iovlen=2}, MSG_NOSIGNAL) = 65636
7 sendmsg(6, {msg_iov=[{iov_base="GET / HTTP/1.1\r\n"..., iov_len=40}], msg_iovlen=1}, MSG_NOSIGNAL) = 40
7 sendmsg(5, {msg_iov=[{iov_base="cd"..., iov_len=70000}, {iov_base="\r\n", iov_len=2}], msg_iovlen=2}, MSG_NOSIGNAL) = 69998
7 sendmsg(5, {msg_iov=[{iov_base="cd\r\n", iov_len=4}], msg_iovlen=1}, MSG_NOSIGNAL) = -1 EAGAIN (Resource temporarily unavailable)
7 sendmsg(5, {msg_iov=[{iov_base="cd\r\n", iov_len=4}], msg_iovlen=1}, MSG_NOSIGNAL) = 4
7 sendmsg(5, {msg_iov=[{iov_base="0\r\n\r\n", iov_len=5}], msg_iovlen=1}, MSG_NOSIGNAL) = 5
7 sendmsg(5, {msg_iov=[{iov_base="HTTP/1.1 200 OK\r\n"..., iov_len=90}], msg_iovlen=1}, MSG_NOSIGNAL) = 90
7 sendmsg(5, {msg_iov=[{iov_base="a", iov_len=1}, {iov_base="b", iov_len=1}, {iov_base="c", iov_len=1}, {iov_base="d", iov_len=1}, {iov_base="e", iov_len=1}, {iov_base="f", iov_len=1}, {iov_base="g", iov_len=1}, {iov_base="h", iov_len=1}], msg_iovlen=8}, MSG_NOSIGNAL) = 8
7 sendmsg(5, {msg_iov=[{iov_base="\r\n", iov_len=2}], msg_iovlen=1}, MSG_NOSIGNAL) = 2
7 sendmsg(5, {msg_iov=[{iov_base="0\r\n\r\n", iov_len=5}], msg_iovlen=1}, MSG_NOSIGNAL) = 5
"#;
        assert_eq!(
            response_sends(trace),
            [vec![65636, 70002, 5], vec![90, 8, 2, 5]]
        );
    }
}
