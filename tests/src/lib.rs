//! Harness for the end-to-end tests: builds the `.wasm` programs once, picks
//! the runtime (`wasmedge` on PATH, else the bundled `edgepoll-host`;
//! `EDGEPOLL_RUNTIME=wasmedge|host` overrides), starts programs on free
//! loopback ports and stops them when dropped, even when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A runtime that can run the wasm programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    Host(PathBuf),
    WasmEdge,
}

impl Runtime {
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Host(_) => "edgepoll-host",
            Runtime::WasmEdge => "wasmedge",
        }
    }

    pub fn command(&self, wasm: &Path) -> Command {
        let mut cmd = match self {
            Runtime::Host(bin) => Command::new(bin),
            Runtime::WasmEdge => Command::new("wasmedge"),
        };
        cmd.arg(wasm);
        cmd
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
        let status = Command::new(&cargo)
            .current_dir(root())
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip1"])
            .args(["-p", "poll_http_server", "-p", "nonblock_http_client", "-p", "conformance_guest"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the wasm programs failed (is the target installed? run: rustup target add wasm32-wasip1)");
        let status = Command::new(&cargo)
            .current_dir(root())
            .args(["build", "--quiet", "--release", "-p", "edgepoll-host"])
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

pub fn host_runtime() -> Runtime {
    build();
    Runtime::Host(target_dir().join("release/edgepoll-host"))
}

fn wasmedge_on_path() -> bool {
    Command::new("wasmedge")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The runtime the tests use, announced once on stderr.
pub fn runtime() -> Runtime {
    static CHOICE: OnceLock<Runtime> = OnceLock::new();
    CHOICE
        .get_or_init(|| {
            let choice = match std::env::var("EDGEPOLL_RUNTIME").as_deref() {
                Ok("wasmedge") => Runtime::WasmEdge,
                Ok("host") => host_runtime(),
                Ok(other) => panic!("EDGEPOLL_RUNTIME must be wasmedge or host, not {other:?}"),
                Err(_) if wasmedge_on_path() => Runtime::WasmEdge,
                Err(_) => host_runtime(),
            };
            eprintln!("e2e runtime: {}", choice.name());
            choice
        })
        .clone()
}

/// Every runtime present: edgepoll-host always, wasmedge when on PATH.
pub fn all_runtimes() -> Vec<Runtime> {
    let mut all = vec![host_runtime()];
    if wasmedge_on_path() {
        all.push(Runtime::WasmEdge);
    } else {
        eprintln!("NOTE: wasmedge is not on PATH: only the bundled runtime (edgepoll-host) ran these cases");
    }
    all
}

/// Runs a wasm program to completion (at most `limit`); kills it past that.
pub fn run_wasm(runtime: &Runtime, name: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = runtime
        .command(&wasm(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runtime starts");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait works").is_some() {
            return child.wait_with_output().expect("output readable");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output readable");
            panic!(
                "{name} {args:?} did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running program, killed on drop.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    /// Lines the program wrote to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Whether the process is still alive.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the echo server on a free port with extra arguments; waits for its
/// `listening on` line.
pub fn start_server(extra: &[&str]) -> Running {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid address");
    let mut child = runtime()
        .command(&wasm("poll_http_server"))
        .arg(addr.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runtime starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let running = Running {
        child,
        addr,
        stderr: err_rx,
    };
    match line_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) if line.starts_with("listening on") => running,
        other => {
            let errors = running.stderr_lines().join("\n");
            panic!("server did not start: {other:?}; stderr: {errors}");
        }
    }
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

/// Sends raw bytes and reads until the server closes (or 10 s pass).
pub fn exchange_until_close(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// Reads exactly one response (Content-Length framed) from the stream.
pub fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("response head arrives");
        assert!(
            n > 0,
            "connection closed mid-head after {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
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

/// Runs `curl` with arguments; fails with install advice when curl is missing.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("curl is needed for these tests ({e}); install it: apt-get install -y curl")
        })
}
