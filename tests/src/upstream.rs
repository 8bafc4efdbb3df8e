//! Upstream servers the tests start on loopback ports: a small native
//! HTTP/1.1 server in the test process (keep-alive, echo, delays, stalls),
//! and nginx with a generated configuration.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the native upstream answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Keep-alive; the body echoed; `/delay/MS...` waits MS milliseconds
    /// first. Every response names its path in `X-Path`.
    Echo,
    /// Accepts and reads, never answers.
    Stall,
}

/// What the native upstream saw.
#[derive(Default)]
pub struct Seen {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted in all.
    pub accepted: AtomicUsize,
    /// Requests answered, by path, in the order answered.
    pub answered: Mutex<Vec<String>>,
}

/// A native upstream, running until the test process ends.
pub struct NativeUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl NativeUpstream {
    pub fn start(behaviour: Behaviour) -> NativeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
        let addr = listener.local_addr().expect("upstream address");
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = shared.clone();
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                seen.open.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    serve(stream, behaviour, &seen);
                    seen.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        NativeUpstream { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// One request: path and body; `None` at EOF or on garbage.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let path = head.split(' ').nth(1)?.to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((path, body));
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &Seen) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut buf = Vec::new();
    while let Some((path, body)) = read_request(&mut stream, &mut buf) {
        if let Behaviour::Stall = behaviour {
            // Hold the connection until the peer leaves.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).is_ok_and(|n| n > 0) {}
            return;
        }
        if let Some(ms) = path
            .strip_prefix("/delay/")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Path: {path}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        seen.answered.lock().expect("lock").push(path);
        if stream
            .write_all(&[head.as_bytes(), &body].concat())
            .is_err()
        {
            return;
        }
    }
}

/// nginx on a loopback port with a generated configuration, stopped on drop.
pub struct Nginx {
    pub addr: SocketAddr,
    /// Its document root: tests put files here before requesting them.
    pub root: PathBuf,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// nginx serving `root` (static files), `/fixed` (`return 200`) and
    /// whatever `extra` adds inside its `server` block.
    pub fn start(extra: &str) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("nginx is needed for this test; install it: apt-get install -y nginx-light (make setup does)")
            });
        let dir = std::env::temp_dir().join(format!(
            "edgepoll-nginx-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).expect("nginx root");
        let port = crate::free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
events {{ worker_connections 1024; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    location = /fixed {{ return 200 \"fixed answer from nginx\\n\"; }}\n    {extra}\n  }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let started = std::time::Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            addr,
            root,
            child,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
