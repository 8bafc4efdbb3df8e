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
    /// Reads a `Content-Length` body of any size as it comes, checks it is
    /// the [`pattern`], and answers `bytes=N intact=BOOL`.
    Sink,
    /// `GET /bytes/N`: answers N bytes of the [`pattern`], as fast as the
    /// connection takes them (counted in [`Seen::written`]).
    Source,
    /// Keep-alive; answers each request with its own head (request line
    /// and fields, as received) as the body; the body it came with is read
    /// and dropped. For what a proxy changes in the fields. A path under
    /// `/early-hints` gets `103 Early Hints` first (with `Link` and a
    /// hop-by-hop field), in a write of its own 50 ms before the answer.
    Reflect,
    /// A [`Behaviour::Reflect`] that sends each body 50 ms after its head,
    /// in a write of its own: a reader that wrongly takes the head for the
    /// whole response finds the body later, as if it began the next one.
    ReflectInTwo,
    /// Answers with the start of a body in `Transfer-Encoding: gzip` (a
    /// coding a proxy cannot pass on without saying so), which runs until
    /// the close; then sends nothing more and waits for the client to close.
    Gzipped,
    /// Keep-alive; answers every request with status 999 (outside the
    /// 100–599 that RFC 9110 §15 allows) and a body of 2 bytes.
    OddStatus,
    /// Answers every request with bytes that are not HTTP, then closes.
    Garbage,
    /// Keep-alive; answers each request with an empty body and its path in
    /// `X-Path`, but a `HEAD` with a head announcing a body, and then, 20 ms
    /// later in a write of its own, that body: a whole response of its own
    /// (`X-Path: /forged`). A client that reuses the connection without
    /// looking at it first takes it for the answer to its next request.
    /// Noted in [`Seen::answered`] as `forged` once sent.
    LateHeadBody,
    /// Announces 1 MB, sends 1000 bytes of it, then closes; under
    /// a path ending in `/chunked`, sends a chunk of 1000 bytes of a chunked body instead,
    /// then closes (no last chunk).
    DiesMidBody,
    /// A [`Behaviour::Sink`] for requests with a body, a
    /// [`Behaviour::Source`] for the others: both directions on one upstream.
    Bulk,
    /// A tunnel's far end: answers any request with `101 Switching
    /// Protocols` (offered or not) and `early;` right after it, then echoes
    /// every byte (those that came with the request first) until the end of
    /// its input, then sends `bye` and closes. For a target
    /// `/reset-after/N` it sends N bytes of the test pattern after `early;`
    /// instead, waits for a byte from the client, leaves it unread and
    /// closes: a reset.
    Switch,
    /// An HTTP/1.0 server: answers one request per connection (noted in
    /// [`Seen::received`] as its path, and ` chunked` if its head says
    /// `Transfer-Encoding`) in HTTP/1.0 with the body its `Content-Length`
    /// gave, then closes.
    Http10,
    /// Reads each request whole (noted in [`Seen::received`]) and closes
    /// the connection without a byte of answer, as a server that crashed
    /// while handling it; for a path under `/reset`, with a reset.
    HangsUp,
    /// Keep-alive in word only: answers the first request on each
    /// connection as [`Behaviour::Echo`] does, and meets the second as a
    /// server whose idle timeout fired just as it came: with a close and no
    /// answer, or, for a path under `/408/`, with `408 Request Timeout` and a
    /// close (under `/103-408/`, after a `103 Early Hints`; under
    /// `/100-408/`, after a `100 Continue`).
    OnePerConnection,
    /// Reads a request's head, answers `413 Content Too Large` at once and
    /// closes with the body unread (as a server with a body limit does): a
    /// reset follows its answer, which a client still sending the body
    /// meets on its next send.
    RefusesBody,
}

/// Byte `offset` of the test pattern: every position has its own value,
/// so a lost, repeated or misplaced piece shows.
#[inline]
fn pattern_word(word: u64) -> u64 {
    word.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (word >> 7)
}

/// Fills `buf` with the pattern from absolute position `offset`.
pub fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let p = offset + i as u64;
        *b = (pattern_word(p / 8) >> (8 * (p % 8))) as u8;
    }
}

/// Whether `buf` is the pattern from position `offset`.
pub fn is_pattern(offset: u64, buf: &[u8]) -> bool {
    if offset.is_multiple_of(8) {
        let words = buf.chunks_exact(8);
        let tail = words.remainder();
        let word0 = offset / 8;
        let aligned = words.enumerate().all(|(i, w)| {
            u64::from_le_bytes(w.try_into().expect("8 bytes")) == pattern_word(word0 + i as u64)
        });
        let done = (buf.len() - tail.len()) as u64;
        return aligned && is_pattern_slow(offset + done, tail);
    }
    is_pattern_slow(offset, buf)
}

fn is_pattern_slow(offset: u64, buf: &[u8]) -> bool {
    buf.iter().enumerate().all(|(i, &b)| {
        let p = offset + i as u64;
        b == (pattern_word(p / 8) >> (8 * (p % 8))) as u8
    })
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
    /// Requests read, by path, in the order read (before any delay).
    pub received: Mutex<Vec<String>>,
    /// Body bytes a [`Behaviour::Source`] has written.
    pub written: std::sync::atomic::AtomicU64,
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

/// The head of one request: its path and `Content-Length`, with the bytes
/// read past the head left in `buf`.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, u64)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1)?.to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<u64>().ok())?
                })
                .unwrap_or(0);
            return Some((path, length));
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn sink(mut stream: TcpStream) {
    let mut buf = Vec::new();
    while let Some((_, length)) = read_head(&mut stream, &mut buf) {
        if !sink_one(&mut stream, &mut buf, length) {
            return;
        }
    }
}

/// Reads a body of `length` bytes (some already in `buf`), checks it is the
/// pattern, and answers `bytes=N intact=BOOL`. False once the connection
/// is done.
fn sink_one(stream: &mut TcpStream, buf: &mut Vec<u8>, length: u64) -> bool {
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut got, mut intact) = (0u64, true);
    let first = buf.len().min(length as usize);
    intact &= is_pattern(0, &buf[..first]);
    got += first as u64;
    buf.drain(..first);
    while got < length {
        let want = ((length - got) as usize).min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(n) if n > 0 => {
                intact &= is_pattern(got, &chunk[..n]);
                got += n as u64;
            }
            _ => return false,
        }
    }
    let body = format!("bytes={got} intact={intact}\n");
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all((head + &body).as_bytes()).is_ok()
}

fn source(mut stream: TcpStream, seen: &Seen) {
    let mut buf = Vec::new();
    while let Some((path, _)) = read_head(&mut stream, &mut buf) {
        if !source_one(&mut stream, &path, seen) {
            return;
        }
    }
}

/// Answers `/bytes/N` with N bytes of the pattern. False once the
/// connection is done.
fn source_one(stream: &mut TcpStream, path: &str, seen: &Seen) -> bool {
    let length: u64 = path
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut chunk = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < length {
        let n = ((length - sent) as usize).min(chunk.len());
        pattern(sent, &mut chunk[..n]);
        if stream.write_all(&chunk[..n]).is_err() {
            return false;
        }
        sent += n as u64;
        seen.written.fetch_add(n as u64, Ordering::SeqCst);
    }
    true
}

/// [`Behaviour::Bulk`]: a request with a body is a [`Behaviour::Sink`]'s,
/// one without a [`Behaviour::Source`]'s.
fn bulk(mut stream: TcpStream, seen: &Seen) {
    let mut buf = Vec::new();
    while let Some((path, length)) = read_head(&mut stream, &mut buf) {
        let going = match length {
            0 => source_one(&mut stream, &path, seen),
            _ => sink_one(&mut stream, &mut buf, length),
        };
        if !going {
            return;
        }
    }
}

/// [`Behaviour::Switch`]: its 101 names `websocket`, or `echo` for a
/// target under `/echo-protocol`.
fn switch(mut stream: TcpStream) {
    let mut buf = Vec::new();
    let Some((path, _)) = read_head(&mut stream, &mut buf) else {
        return;
    };
    let protocol = match path.starts_with("/echo-protocol") {
        true => "echo",
        false => "websocket",
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: upgrade\r\nX-Far: end\r\n\r\nearly;"
    );
    if stream.write_all(answer.as_bytes()).is_err() {
        return;
    }
    if let Some(n) = path.strip_prefix("/reset-after/") {
        let mut bytes = vec![0u8; n.parse().unwrap_or(0)];
        pattern(0, &mut bytes);
        if stream.write_all(&bytes).is_ok() && all_taken(&stream) {
            // A close with input unread is a reset (RFC 9293 §3.6.1).
            let _ = stream.peek(&mut [0u8; 1]);
        }
        return;
    }
    if stream.write_all(&buf).is_err() {
        return;
    }
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if stream.write_all(&chunk[..n]).is_ok() => {}
            _ => return,
        }
    }
    let _ = stream.write_all(b"bye");
}

/// [`Behaviour::Http10`]: one request, answered, then the close.
fn http10(mut stream: TcpStream, seen: &Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let field = |wanted: &str| {
        head.lines().skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_string())
        })
    };
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let noted = match field("transfer-encoding") {
        Some(_) => format!("{path} chunked"),
        None => path,
    };
    seen.received.lock().expect("lock").push(noted);
    let length: usize = field("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf.split_off(end + 4);
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    body.truncate(length);
    let answer = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let _ = stream.write_all(&[answer.as_bytes(), &body].concat());
}

/// Waits (up to 10 s) until the peer has acknowledged every byte sent:
/// a reset drops what it has not, and a test of what came before a reset
/// must not count those as lost by the proxy.
fn all_taken(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let mut unacknowledged: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to the pointer given.
        let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unacknowledged) };
        if r != 0 {
            return false;
        }
        if unacknowledged == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// [`Behaviour::Reflect`] and its kin, [`Behaviour::Garbage`], [`Behaviour::OddStatus`],
/// [`Behaviour::DiesMidBody`].
fn answer_heads(mut stream: TcpStream, behaviour: Behaviour, seen: &Seen) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w: &[u8]| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
            continue;
        };
        let head = buf[..end + 4].to_vec();
        let text = String::from_utf8_lossy(&head).into_owned();
        let length: usize = text
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        buf.drain(..end + 4 + length);
        let path = text.split(' ').nth(1).unwrap_or("").to_string();
        seen.answered.lock().expect("lock").push(path.clone());
        let reply = match behaviour {
            Behaviour::ReflectInTwo => {
                let first = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", head.len());
                if stream.write_all(first.as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
                head
            }
            Behaviour::Gzipped => {
                // The start of a gzip stream; these bytes only have to arrive.
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00");
                let mut rest = [0u8; 1024];
                while stream.read(&mut rest).is_ok_and(|n| n > 0) {}
                return;
            }
            Behaviour::Reflect if path.starts_with("/early-hints") => {
                let hints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n";
                if stream.write_all(hints.as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", head.len())
                    .into_bytes()
                    .into_iter()
                    .chain(head)
                    .collect()
            }
            Behaviour::Reflect => [
                format!("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: {}\r\n\r\n", head.len()).into_bytes(),
                head,
            ]
            .concat(),
            Behaviour::Garbage => b"SPDY/9 banana\r\n\0\0\r\n\r\n".to_vec(),
            Behaviour::OddStatus => b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Behaviour::LateHeadBody if text.starts_with("HEAD ") => {
                let forged = b"HTTP/1.1 200 OK\r\nX-Path: /forged\r\nContent-Length: 0\r\n\r\n";
                let head = format!("HTTP/1.1 200 OK\r\nX-Path: {path}\r\nContent-Length: {}\r\n\r\n", forged.len());
                // Each write leaves at once: Nagle's algorithm would hold
                // the forged bytes back until the client's next request
                // acknowledged the head, and they would come after it.
                if stream.set_nodelay(true).is_err() || stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
                if stream.write_all(forged).is_err() {
                    return;
                }
                seen.answered.lock().expect("lock").push("forged".into());
                continue;
            }
            Behaviour::LateHeadBody => {
                format!("HTTP/1.1 200 OK\r\nX-Path: {path}\r\nContent-Length: 0\r\n\r\n").into_bytes()
            }
            Behaviour::DiesMidBody if path.ends_with("/chunked") => {
                let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n";
                [head.to_vec(), vec![b'x'; 1000], b"\r\n".to_vec()].concat()
            }
            _ => [b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec(), vec![b'x'; 1000]].concat(),
        };
        let keeps_alive = matches!(
            behaviour,
            Behaviour::Reflect
                | Behaviour::ReflectInTwo
                | Behaviour::LateHeadBody
                | Behaviour::OddStatus
        );
        if stream.write_all(&reply).is_err() || !keeps_alive {
            return;
        }
    }
}

/// [`Behaviour::RefusesBody`].
fn refuse_body(mut stream: TcpStream, seen: &Seen) {
    let mut buf = Vec::new();
    let Some((path, _)) = read_head(&mut stream, &mut buf) else {
        return;
    };
    seen.received.lock().expect("lock").push(path);
    let answer =
        "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large";
    // Closed at once, with what came of the body unread: a reset.
    let _ = stream.write_all(answer.as_bytes());
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &Seen) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    match behaviour {
        Behaviour::Sink => return sink(stream),
        Behaviour::Source => return source(stream, seen),
        Behaviour::Reflect
        | Behaviour::ReflectInTwo
        | Behaviour::Gzipped
        | Behaviour::Garbage
        | Behaviour::OddStatus
        | Behaviour::LateHeadBody
        | Behaviour::DiesMidBody => return answer_heads(stream, behaviour, seen),
        Behaviour::Switch => return switch(stream),
        Behaviour::Bulk => return bulk(stream, seen),
        Behaviour::Http10 => return http10(stream, seen),
        Behaviour::RefusesBody => return refuse_body(stream, seen),
        Behaviour::Echo | Behaviour::Stall | Behaviour::OnePerConnection | Behaviour::HangsUp => {}
    }
    let mut buf = Vec::new();
    let mut answered = 0;
    while let Some((path, body)) = read_request(&mut stream, &mut buf) {
        if matches!(behaviour, Behaviour::OnePerConnection) && answered == 1 {
            if path.starts_with("/103-408/") {
                // It read the request: an interim answer, then a refusal.
                let _ = stream.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
            }
            if path.starts_with("/100-408/") {
                let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            if ["/408/", "/103-408/", "/100-408/"]
                .iter()
                .any(|p| path.starts_with(p))
            {
                let _ = stream.write_all(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
            }
            return;
        }
        answered += 1;
        seen.received.lock().expect("lock").push(path.clone());
        if let Behaviour::HangsUp = behaviour {
            if path.starts_with("/reset") {
                crate::reset(stream);
            }
            return;
        }
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
        Nginx::start_listening("", extra)
    }

    /// [`Nginx::start`] with `listen_options` on its `listen` line (`ssl`,
    /// with `ssl_certificate` and `ssl_certificate_key` in `extra`).
    pub fn start_listening(listen_options: &str, extra: &str) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("nginx is needed for this test; install it: apt-get install -y nginx-light (make setup does)")
            });
        let dir = crate::unique_temp_path("nginx");
        let root = dir.join("root");
        std::fs::create_dir_all(&root).expect("nginx root");
        // A port found free may be taken before nginx binds it: then nginx
        // tries again for 2.5 s and exits, and it is started again on
        // another. It writes its pid file only once it listens, so the file
        // tells this nginx from another listener on the port.
        let pid_file = dir.join("nginx.pid");
        for _ in 0..5 {
            let port = crate::free_port();
            let _ = std::fs::remove_file(&pid_file);
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
    events {{ worker_connections 1024; }}\n\
    http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
      server {{\n    listen 127.0.0.1:{port} {listen_options};\n    root {root};\n    location = /fixed {{ return 200 \"fixed answer from nginx\\n\"; }}\n    {extra}\n  }}\n}}\n",
                dir = dir.display(),
                root = root.display(),
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Its log goes to error.log: a pipe nobody read would
                // block it once full.
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx starts");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
            let started = std::time::Instant::now();
            let exited = |child: &mut std::process::Child| matches!(child.try_wait(), Ok(Some(_)));
            let mut listening = false;
            let written = || std::fs::metadata(&pid_file).is_ok_and(|m| m.len() > 0);
            while started.elapsed() < Duration::from_secs(10) && !exited(&mut child) {
                if written()
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
                {
                    listening = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if listening && !exited(&mut child) {
                return Nginx {
                    addr,
                    root,
                    child,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        panic!("nginx did not start in 5 attempts; its log:\n{log}");
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
