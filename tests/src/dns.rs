//! DNS servers for the resolver's tests, on loopback ports: dnsmasq with a
//! test zone, a server that never answers, and one that answers garbage.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Names `big.test` has: more A records than a 512-byte UDP answer holds.
pub const BIG_COUNT: usize = 60;

/// dnsmasq serving the zone `test` (TTL 1 s), killed on drop:
/// - `www.test`: 127.0.0.1 and ::1; `v6.test`: ::1 only;
/// - `alias.test` → CNAME `mid.test` → CNAME `www.test`;
/// - `big.test`: [`BIG_COUNT`] addresses 127.0.1.1 and up (TCP only);
/// - `*.stall.test`: forwarded to a server that never answers;
/// - any other name in `test`: NXDOMAIN.
pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _silent: Silent,
    _dir: PathBuf,
}

impl Dnsmasq {
    pub fn start() -> Dnsmasq {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("dnsmasq is not installed: apt-get install dnsmasq-base (make setup does)");
        let silent = Silent::start();
        let dir = crate::unique_temp_path("dns");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hosts = dir.join("big.hosts");
        let lines: String = (1..=BIG_COUNT)
            .map(|i| format!("127.0.1.{i} big.test\n"))
            .collect();
        std::fs::write(&hosts, lines).expect("hosts file");
        for _attempt in 0..5 {
            let port = crate::free_port();
            let mut child = Command::new(&bin)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--user=root",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--log-facility=-",
                    "--log-queries",
                    "--local-ttl=1",
                    "--local=/test/",
                    "--host-record=www.test,127.0.0.1,::1",
                    "--host-record=v6.test,::1",
                    "--cname=alias.test,mid.test",
                    "--cname=mid.test,www.test",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--addn-hosts={}", hosts.display()))
                .arg(format!(
                    "--server=/stall.test/{}#{}",
                    silent.addr.ip(),
                    silent.addr.port()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("dnsmasq starts");
            let log = Arc::new(Mutex::new(Vec::new()));
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let stderr = child.stderr.take().expect("piped stderr");
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("read ") && line.contains("big.hosts") {
                        let _ = started_tx.send(true);
                    }
                    if line.contains("failed to create listening socket") {
                        let _ = started_tx.send(false);
                    }
                    sink.lock().expect("log").push(line);
                }
            });
            match started_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(true) => {
                    return Dnsmasq {
                        child,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        log,
                        _silent: silent,
                        _dir: dir,
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("dnsmasq did not start on a free port in 5 attempts");
    }

    /// How many queries for `name` of `kind` (`A`, `AAAA`) it has logged,
    /// over UDP and TCP alike.
    pub fn queries(&self, kind: &str, name: &str) -> usize {
        let want = format!("query[{kind}] {name} from");
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(&want))
            .count()
    }

    /// Every line it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// A UDP port that takes queries and never answers.
pub struct Silent {
    pub addr: SocketAddr,
    _socket: UdpSocket,
}

impl Silent {
    pub fn start() -> Silent {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a silent server");
        Silent {
            addr: socket.local_addr().expect("address"),
            _socket: socket,
        }
    }
}

/// How [`Hostile`] answers each query.
#[derive(Clone, Copy, Debug)]
pub enum Garbage {
    /// The query's id, then bytes that are no DNS message.
    Junk,
    /// dnsmasq's real answer, cut in half.
    CutShort,
}

/// A DNS server on a loopback port that answers every query wrongly, for
/// as long as it lives.
pub struct Hostile {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub answered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Hostile {
    /// `real` is asked for the true answer when `how` needs one.
    pub fn start(how: Garbage, real: SocketAddr) -> Hostile {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a hostile server");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = socket.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let reply = match how {
                    Garbage::Junk => {
                        let mut r = buf[..2.min(n)].to_vec();
                        r.extend((0..300u32).map(|i| (i.wrapping_mul(97) % 253) as u8 | 0xc0));
                        r
                    }
                    Garbage::CutShort => {
                        let full = ask(real, &buf[..n]);
                        full[..full.len() / 2].to_vec()
                    }
                };
                let _ = socket.send_to(&reply, from);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Hostile {
            addr,
            stop,
            answered,
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The answer `server` gives to `query` (over UDP, within 5 s).
fn ask(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket.send_to(query, server).expect("send");
    let mut buf = [0u8; 1500];
    let started = Instant::now();
    let (n, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{server} did not answer in {:?}: {e}", started.elapsed()));
    buf[..n].to_vec()
}

/// The queries a server was asked, as they came: the port each came from,
/// and the message.
pub type Asked = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

/// A DNS server that passes each query to `real` and its answer back after
/// `delay`: a slow resolver, for the test that a loop never waits on one.
pub struct Delayed {
    pub addr: SocketAddr,
    pub asked: Asked,
    /// When each answer went back.
    pub answered: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

/// QTYPE AAAA (RFC 3596).
const AAAA: u16 = 28;

impl Delayed {
    pub fn start(real: SocketAddr, delay: Duration) -> Delayed {
        Delayed::relay(real, delay, false)
    }

    /// Passes A queries on at once and never answers AAAA ones: a server,
    /// or a path, that loses IPv6's answers.
    pub fn without_aaaa(real: SocketAddr) -> Delayed {
        Delayed::relay(real, Duration::ZERO, true)
    }

    fn relay(real: SocketAddr, delay: Duration, drop_aaaa: bool) -> Delayed {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a delaying server");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = socket.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let asked: Asked = Arc::default();
        let answered: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (flag, log, times) = (stop.clone(), asked.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let query = buf[..n].to_vec();
                if let Ok(mut log) = log.lock() {
                    log.push((from.port(), query.clone()));
                }
                if drop_aaaa && asked_type(&query) == Some(AAAA) {
                    continue;
                }
                let reply_to = socket.try_clone().expect("clone");
                let times = times.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let reply = ask(real, &query);
                    // Noted before it goes: the client may be done, and the
                    // test looking, before this thread runs again.
                    if let Ok(mut times) = times.lock() {
                        times.push(Instant::now());
                    }
                    let _ = reply_to.send_to(&reply, from);
                });
            }
        });
        Delayed {
            addr,
            asked,
            answered,
            stop,
        }
    }
}

/// The type a query asks for (1 A, 28 AAAA): the two bytes after its name.
pub fn asked_type(query: &[u8]) -> Option<u16> {
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        at += len;
    }
    Some(u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]))
}

/// The name a query asks about, dotted (`www.test`): its labels after
/// the 12-byte header.
pub fn asked_name(query: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut at = 12;
    while let Some(&len) = query.get(at) {
        let len = usize::from(len);
        if len == 0 || at + 1 + len > query.len() {
            break;
        }
        labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
        at += 1 + len;
    }
    labels.join(".")
}

impl Drop for Delayed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
