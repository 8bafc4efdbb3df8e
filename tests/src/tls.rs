//! TLS servers for the client's tests, on loopback ports, with a CA and
//! certificates generated at test time by the openssl command: `openssl
//! s_server` with good, wrong-name, expired and self-signed certificates
//! and a TLS 1.2-only mode; a server that stalls in the handshake; one
//! that answers garbage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test CA and server certificates, in a temporary directory removed on
/// drop. Every certificate is issued for `localhost` and 127.0.0.1 unless
/// its name says otherwise.
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl Pki {
    pub fn new() -> Pki {
        let dir = crate::unique_temp_path("pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut ca = vec!["req", "-x509"];
        ca.extend(KEY);
        ca.extend([
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3",
            "-subj",
            "/O=edgepoll tests/CN=edgepoll test CA",
        ]);
        openssl(&dir, &ca);
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        let conf = format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\n\
certificate = {d}/ca.pem\nprivate_key = {d}/ca.key\nserial = {d}/serial\ndefault_md = sha256\n\
policy = any\nunique_subject = no\n[any]\ncommonName = supplied\norganizationName = optional\n",
            d = dir.display()
        );
        std::fs::write(dir.join("ca.cnf"), conf).expect("ca.cnf");
        let pki = Pki { dir };
        pki.issue(
            "good",
            "localhost",
            "DNS:localhost,IP:127.0.0.1,IP:::1",
            None,
        );
        pki.issue("wrong-name", "other.test", "DNS:other.test", None);
        pki.issue(
            "expired",
            "localhost",
            "DNS:localhost,IP:127.0.0.1",
            Some(("20200101000000Z", "20200102000000Z")),
        );
        let mut own = vec!["req", "-x509"];
        own.extend(KEY);
        own.extend([
            "-nodes",
            "-keyout",
            "self-signed.key",
            "-out",
            "self-signed.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]);
        openssl(&pki.dir, &own);
        pki
    }

    /// `NAME.pem` and `NAME.key`: a server certificate for `cn` with these
    /// subject alternative names, signed by the CA, valid from now for a
    /// day or over `dates` (start, end).
    fn issue(&self, name: &str, cn: &str, san: &str, dates: Option<(&str, &str)>) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/O=edgepoll tests/CN={cn}");
        let mut req = vec!["req"];
        req.extend(KEY);
        req.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(&self.dir, &req);
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("extensions");
        let (start, end) = dates.unwrap_or(("", ""));
        let mut sign = vec![
            "ca", "-batch", "-notext", "-config", "ca.cnf", "-extfile", &ext,
        ];
        sign.extend(["-in", &csr, "-out", &pem]);
        match dates {
            Some(_) => sign.extend(["-startdate", start, "-enddate", end]),
            None => sign.extend(["-days", "1"]),
        }
        openssl(&self.dir, &sign);
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl s_server -www` on a loopback port (127.0.0.1's, or another
/// loopback address's: [`SServer::start_at`]) with the certificate `name`
/// of `pki` and `extra` options, killed on drop.
pub struct SServer {
    pub addr: SocketAddr,
    child: Child,
}

impl SServer {
    pub fn start(pki: &Pki, name: &str, extra: &[&str]) -> SServer {
        SServer::start_at(pki, name, "127.0.0.1:0", extra)
    }

    /// On `accept`, a loopback address with port 0 (`[::1]:0`).
    pub fn start_at(pki: &Pki, name: &str, accept: &str, extra: &[&str]) -> SServer {
        let mut child = Command::new("openssl")
            .arg("s_server")
            .args(["-accept", accept])
            .args(["-cert", &pki.path(&format!("{name}.pem"))])
            .args(["-key", &pki.path(&format!("{name}.key"))])
            .args(["-www", "-naccept", "1000"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let said = child.stdout.take();
        // Killed on drop from here on, whatever fails.
        let mut server = SServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
        };
        server.addr = accepting(said, |lines| lines.for_each(drop));
        server
    }
}

/// The address `openssl s_server -accept 127.0.0.1:0` listens on, from the
/// first line it prints once it does (`ACCEPT 127.0.0.1:PORT`): so the
/// port is its own, never one another process took in between. The lines
/// after that one go to `rest` (see [`announced`]).
fn accepting(
    said: Option<std::process::ChildStdout>,
    rest: impl FnOnce(&mut dyn Iterator<Item = String>) + Send + 'static,
) -> SocketAddr {
    let parse = |line: &str| line.strip_prefix("ACCEPT ")?.parse().ok();
    announced(said, parse, rest, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("openssl s_server did not say within 10 s that it listens"))
}

/// The address a server's output announces: the first line `parse` reads
/// one from, within `limit` (`None` past it, or at the output's end). A
/// thread reads the output, then hands the lines after that one to `rest`,
/// which reads them all, so that the server never waits on a full pipe.
fn announced(
    said: Option<std::process::ChildStdout>,
    parse: impl Fn(&str) -> Option<SocketAddr> + Send + 'static,
    rest: impl FnOnce(&mut dyn Iterator<Item = String>) + Send + 'static,
    limit: Duration,
) -> Option<SocketAddr> {
    use std::io::BufRead;
    let (tell, told) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(said) = said else { return };
        let mut lines = std::io::BufReader::new(said).lines().map_while(Result::ok);
        let _ = tell.send(lines.by_ref().find_map(|line| parse(&line)));
        rest(&mut lines);
    });
    told.recv_timeout(limit).ok().flatten()
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_server` (TLS 1.3, the good certificate) that takes one
/// request and never answers it: from the request on, it sends a KeyUpdate
/// (a record with no plaintext) every 300 ms, 40 in all. Killed on drop.
pub struct KeyUpdater {
    pub addr: SocketAddr,
    child: Child,
}

impl KeyUpdater {
    pub fn start(pki: &Pki) -> KeyUpdater {
        let mut child = Command::new("openssl")
            .arg("s_server")
            .args(["-accept", "127.0.0.1:0", "-tls1_3"])
            .args([
                "-cert",
                &pki.path("good.pem"),
                "-key",
                &pki.path("good.key"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let (mut commands, said) = (child.stdin.take(), child.stdout.take());
        // Killed on drop from here on, whatever fails.
        let mut server = KeyUpdater {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
        };
        server.addr = accepting(said, move |mut lines| {
            // s_server shows what the client sent: the request's line.
            let asked = Iterator::any(&mut lines, |l| l.starts_with("GET "));
            // A command is a letter alone on a line, read once connected.
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(300));
                let sent = commands
                    .as_mut()
                    .map(|c| c.write_all(b"k\n").and_then(|_| c.flush()));
                if !asked || !matches!(sent, Some(Ok(()))) {
                    break;
                }
            }
            lines.for_each(drop);
        });
        server
    }
}

impl Drop for KeyUpdater {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`RawServer`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Raw {
    /// Reads the ClientHello and never answers.
    Stall,
    /// Answers the ClientHello with bytes that are no TLS record.
    Garbage,
    /// Answers with a TLS handshake record whose content is garbage.
    BadRecord,
    /// Resets the connection once the ClientHello is read.
    Reset,
}

/// A TCP server on a loopback port that misbehaves as TLS, stopped on drop.
pub struct RawServer {
    pub addr: SocketAddr,
    /// ClientHellos (first reads) received so far.
    pub hellos: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawServer {
    pub fn start(how: Raw) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let hellos = Arc::new(AtomicUsize::new(0));
        let counted = hellos.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut hello = [0u8; 2048];
                let _ = stream.read(&mut hello);
                counted.fetch_add(1, Ordering::Relaxed);
                let reply: Vec<u8> = match how {
                    Raw::Reset => {
                        crate::reset(stream);
                        continue;
                    }
                    Raw::Stall => Vec::new(),
                    Raw::Garbage => b"HTTP/1.1 400 Bad Request\r\n\r\nthis is no TLS".to_vec(),
                    Raw::BadRecord => {
                        let mut r = vec![0x16, 0x03, 0x03, 0x00, 0x40];
                        r.extend((0..0x40u8).map(|i| i.wrapping_mul(37) | 1));
                        r
                    }
                };
                let _ = stream.write_all(&reply);
                held.push(stream);
            }
        });
        RawServer { addr, hellos, stop }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TLS server (Python's `ssl`, with the PKI's good certificate) that
/// answers each request with a body that runs until the close, then
/// closes: with close_notify (`clean`), or with a bare TCP close, as an
/// attacker's injected FIN would look (`clean` false). Stopped on drop.
pub struct CloseDelimited {
    pub addr: SocketAddr,
    child: Child,
}

/// Ends its response by closing: with close_notify (`clean`) or without.
const CLOSE_DELIMITED: &str = r#"
def serve(raw):
    conn = ctx.wrap_socket(raw, server_side=True)
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1000)
    if sys.argv[3] == "clean":
        conn.unwrap().close()
    else:
        # The TCP stream ends with no close_notify before it.
        socket.socket(fileno=conn.detach()).close()
"#;

impl CloseDelimited {
    pub fn start(pki: &Pki, clean: bool) -> CloseDelimited {
        let how = if clean { "clean" } else { "cut" };
        let (child, addr) = python_tls_server(CLOSE_DELIMITED, pki, &[how]);
        CloseDelimited { addr, child }
    }
}

/// An HTTPS server that answers a connection's first request (`first`),
/// then, while the connection is idle, sends the first half of a TLS record
/// holding a response nobody asked for (`stray`). Its other half goes only
/// with the answer to a second request on the same connection: a client
/// that reused the connection would read `stray` as that answer. Stopped on
/// drop.
pub struct Straggler {
    pub addr: SocketAddr,
    child: Child,
}

/// TLS by hand (memory BIOs), to cut a record where it likes.
const STRAGGLER: &str = r#"
def serve(raw):
    tls, out, flush, pull, read_request = by_hand(raw)
    read_request()
    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
    flush()
    time.sleep(0.3)
    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
    record = out.read()
    raw.sendall(record[: len(record) // 2])
    read_request()
    raw.sendall(record[len(record) // 2 :])
    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
    flush()
    while True:
        pull()
"#;

impl Straggler {
    pub fn start(pki: &Pki) -> Straggler {
        let (child, addr) = python_tls_server(STRAGGLER, pki, &[]);
        Straggler { addr, child }
    }
}

impl Drop for Straggler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One of this module's Python TLS servers, stopped on drop.
pub struct PythonServer {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When [`fault_after_answer`]'s forged record comes.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// In the same send as the answer.
    Same,
    /// 300 ms after it.
    Later,
    /// In the same send as an answer two bytes short.
    Short,
}

const FAULT_AFTER_ANSWER: &str = r#"
def serve(raw):
    tls, out, flush, pull, read_request = by_hand(raw)
    read_request()
    mode = sys.argv[3]
    body = b"hel" if mode == "Short" else b"hello"
    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
    answer = out.read()
    forged = b"\x17\x03\x03\x00\x20" + bytes(32)
    if mode == "Later":
        raw.sendall(answer)
        time.sleep(0.3)
        raw.sendall(forged)
    else:
        raw.sendall(answer + forged)
    until_closed(pull)
"#;

/// An HTTPS server that answers with `Content-Length: 5`, then sends an
/// application-data record no key opens (a forged or corrupted record,
/// which fails the client's TLS), as `fault` says.
pub fn fault_after_answer(pki: &Pki, fault: Fault) -> PythonServer {
    let mode = format!("{fault:?}");
    let (child, addr) = python_tls_server(FAULT_AFTER_ANSWER, pki, &[&mode]);
    PythonServer { addr, child }
}

const SLOW_AT_EACH_STEP: &str = r#"
def serve(raw):
    hold = float(sys.argv[3])
    tls, out, flush, pull, read_request = by_hand(raw, hold)
    read_request()
    time.sleep(hold)
    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
    flush()
    until_closed(pull)
"#;

/// An HTTPS server whose handshake starts `hold` after the connection and
/// whose answer comes `hold` after the request: each wait within a timeout
/// over `hold`, both together past it. One connection at a time: the next
/// is taken once the client closed the last.
pub fn slow_at_each_step(pki: &Pki, hold: Duration) -> PythonServer {
    let hold = format!("{}", hold.as_secs_f64());
    let (child, addr) = python_tls_server(SLOW_AT_EACH_STEP, pki, &[&hold]);
    PythonServer { addr, child }
}

/// What every Python TLS server here shares: the context with the good
/// certificate and key (its first two arguments), a listener whose port it
/// prints, and the reading of a request head.
const PYTHON_PRELUDE: &str = r#"
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
print(listener.getsockname()[1], flush=True)

def by_hand(raw, hold=0):
    """TLS over memory BIOs, handshaken (after `hold` seconds): the
    connection, its output BIO, and how to send that, read more, and read
    a request head."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_side=True)
    def flush():
        data = out.read()
        if data:
            raw.sendall(data)
    def pull():
        data = raw.recv(16384)
        if not data:
            raise OSError("closed")
        inc.write(data)
    def read_request():
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                piece = tls.read(16384)
                if not piece:
                    raise OSError("close_notify")
                data += piece
            except ssl.SSLWantReadError:
                flush()
                pull()
    time.sleep(hold)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            pull()
    flush()
    return tls, out, flush, pull, read_request

def until_closed(pull):
    """Reads until the client closes (`pull` raises then, or at the
    socket's 30 s timeout), so that the next connection, waiting in the
    listen queue, is taken at once."""
    while True:
        pull()

def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(16384)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body
"#;

/// Serves each connection with the script's `serve(raw)`, one at a time.
const PYTHON_LOOP: &str = r#"
while True:
    raw, _ = listener.accept()
    raw.settimeout(30)
    try:
        serve(raw)
    except (OSError, ssl.SSLError, ValueError):
        pass
    raw.close()
"#;

/// Starts the Python TLS server whose `serve` is `script`, with the PKI's
/// good certificate and key, then `args`; waits for its port.
fn python_tls_server(script: &str, pki: &Pki, args: &[&str]) -> (Child, SocketAddr) {
    let program = format!("{PYTHON_PRELUDE}{script}{PYTHON_LOOP}");
    let mut child = Command::new("python3")
        .args(["-c", &program, &pki.path("good.pem"), &pki.path("good.key")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs (apt-get install python3)");
    // Its first line is its port; read apart, so that a server that never
    // says it fails the test instead of holding it.
    let port = |line: &str| {
        Some(SocketAddr::from((
            [127, 0, 0, 1],
            line.trim().parse().ok()?,
        )))
    };
    let drain = |lines: &mut dyn Iterator<Item = String>| lines.for_each(drop);
    match announced(child.stdout.take(), port, drain, Duration::from_secs(30)) {
        Some(addr) => (child, addr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the TLS server did not say its port within 30 s");
        }
    }
}

/// An HTTPS server that answers each request with `Connection: close`,
/// sends its close_notify and waits for the client's (RFC 8446 §6.1), or
/// (`keep_alive`) answers keeping the connection and waits for the client
/// to end it: each connection appends `clean` to `log` when the client's
/// close_notify came, `cut` when the TCP stream ended without it. Stopped
/// on drop.
pub struct NotifyCheck {
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

/// Logs whether the client's close_notify came after its own.
const NOTIFY_CHECK: &str = r#"
def serve(raw):
    outcome = "handshake failed"
    try:
        conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        read_head(conn)
        if sys.argv[4] == "keep-alive":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            outcome = "cut"
            # Nothing more, then the client's close_notify (a bare TCP
            # close raises, ragged EOFs not suppressed).
            if conn.recv(1) == b"":
                outcome = "clean"
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            outcome = "cut"
            conn.unwrap()
            outcome = "clean"
    finally:
        with open(sys.argv[3], "a") as f:
            f.write(outcome + "\n")
"#;

impl NotifyCheck {
    pub fn start(pki: &Pki, keep_alive: bool) -> NotifyCheck {
        let log = crate::unique_temp_path("notify-log");
        let path = log.to_string_lossy().into_owned();
        let mode = if keep_alive { "keep-alive" } else { "close" };
        let (child, addr) = python_tls_server(NOTIFY_CHECK, pki, &[&path, mode]);
        NotifyCheck { addr, log, child }
    }

    /// The outcomes logged so far, waiting up to 10 s for `count` of them.
    pub fn outcomes(&self, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= count || started.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NotifyCheck {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An HTTPS server that reads a request body slowly (16 KiB every 5 ms,
/// through a small receive buffer), so that a client's socket stays full,
/// and answers 200 with how many body bytes it read (the request must
/// carry Content-Length). Stopped on drop.
pub struct SlowReader {
    pub addr: SocketAddr,
    child: Child,
}

/// Reads a body of Content-Length bytes 16 KiB at a time, 5 ms apart.
const SLOW_READER: &str = r#"
def serve(raw):
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    conn = ctx.wrap_socket(raw, server_side=True)
    head, body = read_head(conn)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    got = len(body)
    while got < length:
        time.sleep(0.005)
        piece = conn.recv(16384)
        if not piece:
            break
        got += len(piece)
    answer = str(got).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
    conn.unwrap().close()
"#;

impl SlowReader {
    pub fn start(pki: &Pki) -> SlowReader {
        let (child, addr) = python_tls_server(SLOW_READER, pki, &[]);
        SlowReader { addr, child }
    }
}

impl Drop for SlowReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CloseDelimited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
