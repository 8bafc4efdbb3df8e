//! Misbehaving clients, mixed into the load on purpose. Each checks that it
//! gets what the README promises (a 408, or a close at the idle timeout),
//! while the other connections carry on.

use crate::rng::Rng;
use mio::net::TcpStream;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Slack for a timeout answered late under full load.
const LATE: Duration = Duration::from_secs(5);
/// How early a timeout may fire (timer granularity).
const EARLY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Resets the connection in the middle of a request body.
    ResetMidBody,
    /// Uploads 8 MiB, reads the start of the echo, then stops reading.
    StopReading,
    /// Connects and sends nothing.
    QuietBeforeRequest,
    /// One request, then nothing.
    QuietAfterResponse,
    /// Half a request head, then nothing.
    PartialHead,
    /// A head and 10 of 1000 body bytes, then nothing.
    StalledBody,
}

pub const KINDS: [Kind; 6] = [
    Kind::ResetMidBody,
    Kind::StopReading,
    Kind::QuietBeforeRequest,
    Kind::QuietAfterResponse,
    Kind::PartialHead,
    Kind::StalledBody,
];

pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

enum Phase {
    Connecting,
    Sending,
    /// Reading until `until` bytes (or a whole response) arrived.
    Reading,
    /// Not reading, until the instant.
    Paused(Instant),
    /// Reading until the server closes.
    Draining,
}

pub struct Fault {
    pub kind: Kind,
    /// Taken (closed) once the fault has its outcome: a reset mid-body is
    /// sent only as the socket closes.
    pub stream: Option<TcpStream>,
    phase: Phase,
    out: Vec<u8>,
    out_pos: usize,
    got: Vec<u8>,
    got_total: usize,
    body: Vec<u8>,
    /// When the client last did something the server's timeout counts from.
    since: Instant,
    deadline: Instant,
    pub outcome: Option<Result<String, String>>,
}

/// The error of a fault driven after its socket closed.
fn closed() -> String {
    "its socket is closed".to_string()
}

fn connect(addr: SocketAddr, small_receive_buffer: bool) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if small_receive_buffer {
        // So that the server cannot park the whole response in the kernel.
        socket.set_recv_buffer_size(4096)?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc_einprogress())
                || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

fn libc_einprogress() -> i32 {
    115 // EINPROGRESS on Linux
}

impl Fault {
    pub fn start(kind: Kind, addr: SocketAddr, seed: u64) -> std::io::Result<Fault> {
        let stream = connect(addr, kind == Kind::StopReading)?;
        let mut body = Vec::new();
        let out = match kind {
            Kind::ResetMidBody => {
                let mut out =
                    b"POST /fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048576\r\n\r\n"
                        .to_vec();
                out.extend_from_slice(&Rng::new(seed).bytes(64 << 10));
                out
            }
            Kind::StopReading => {
                body = Rng::new(seed).bytes(8 << 20);
                let mut out = format!(
                    "POST /fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                out
            }
            Kind::QuietBeforeRequest => Vec::new(),
            Kind::QuietAfterResponse => {
                body = b"quiet".to_vec();
                b"POST /fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nquiet"
                    .to_vec()
            }
            Kind::PartialHead => b"POST /fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le".to_vec(),
            Kind::StalledBody => {
                b"POST /fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789"
                    .to_vec()
            }
        };
        let now = Instant::now();
        Ok(Fault {
            kind,
            stream: Some(stream),
            phase: Phase::Connecting,
            out,
            out_pos: 0,
            got: Vec::new(),
            got_total: 0,
            body,
            since: now,
            deadline: now + Duration::from_secs(120),
            outcome: None,
        })
    }

    /// Acts on socket readiness and on time passing; sets `outcome` when done.
    pub fn drive(&mut self, timeouts: &Timeouts, buf: &mut [u8]) {
        if self.outcome.is_none() {
            if let Err(e) = self.step(timeouts, buf) {
                self.outcome = Some(Err(format!("{:?}: {e}", self.kind)));
            } else if self.outcome.is_none() && Instant::now() > self.deadline {
                self.outcome = Some(Err(format!("{:?}: no answer in time", self.kind)));
            }
        }
    }

    fn step(&mut self, t: &Timeouts, buf: &mut [u8]) -> Result<(), String> {
        if let Phase::Connecting = self.phase {
            match self.stream.as_ref().ok_or_else(closed)?.peer_addr() {
                Ok(_) => {
                    self.phase = Phase::Sending;
                    self.since = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
        }
        if let Phase::Sending = self.phase {
            while self.out_pos < self.out.len() {
                match self
                    .stream
                    .as_mut()
                    .ok_or_else(closed)?
                    .write(&self.out[self.out_pos..])
                {
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("write failed: {e}")),
                }
            }
            if self.out_pos < self.out.len() {
                // The echo of an upload can arrive before the upload ends.
                if self.kind != Kind::StopReading {
                    return Ok(());
                }
            } else {
                self.since = Instant::now();
                if self.kind == Kind::ResetMidBody {
                    let socket = socket2::SockRef::from(self.stream.as_ref().ok_or_else(closed)?);
                    socket
                        .set_linger(Some(Duration::ZERO))
                        .map_err(|e| e.to_string())?;
                    self.outcome = Some(Ok("reset mid-body; the others carried on".into()));
                    return Ok(());
                }
                self.phase = match self.kind {
                    Kind::StopReading | Kind::QuietAfterResponse => Phase::Reading,
                    _ => Phase::Draining,
                };
            }
        }
        if let Phase::Paused(until) = self.phase {
            if Instant::now() < until {
                return Ok(());
            }
            self.phase = Phase::Draining;
            self.deadline = until + LATE * 2;
        }
        loop {
            match self.stream.as_mut().ok_or_else(closed)?.read(buf) {
                Ok(0) => return self.on_close(t),
                Ok(n) => self.on_data(&buf[..n], t)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if e.kind() == ErrorKind::ConnectionReset && self.kind == Kind::StopReading =>
                {
                    return self.on_close(t)
                }
                Err(e) => return Err(format!("read failed: {e}")),
            }
            if let Phase::Paused(_) = self.phase {
                return Ok(());
            }
        }
    }

    fn on_data(&mut self, data: &[u8], t: &Timeouts) -> Result<(), String> {
        self.got_total += data.len();
        if self.got.len() < 64 << 10 {
            self.got
                .extend_from_slice(&data[..data.len().min((64 << 10) - self.got.len())]);
        }
        match (self.kind, &self.phase) {
            (Kind::StopReading, Phase::Reading | Phase::Sending) if self.got_total >= 64 << 10 => {
                self.check_echo_prefix()?;
                self.since = Instant::now();
                self.phase = Phase::Paused(self.since + t.idle + Duration::from_millis(1500));
            }
            (Kind::QuietAfterResponse, Phase::Reading) => {
                let expected = b"HTTP/1.1 200 OK\r\n";
                if self.got.ends_with(b"\r\n\r\nquiet") {
                    if !self.got.starts_with(expected) {
                        return Err(format!(
                            "unexpected response {:?}",
                            String::from_utf8_lossy(&self.got)
                        ));
                    }
                    self.since = Instant::now();
                    self.phase = Phase::Draining;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_echo_prefix(&self) -> Result<(), String> {
        let text = &self.got;
        let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err("no response head in the first 64 KiB".into());
        };
        if !text.starts_with(b"HTTP/1.1 200 ") {
            return Err(format!(
                "unexpected response {:?}",
                String::from_utf8_lossy(&text[..end])
            ));
        }
        let echoed = &text[end + 4..];
        if echoed != &self.body[..echoed.len()] {
            return Err("echo differs from the upload".into());
        }
        Ok(())
    }

    /// The server closed: right answer, at the right time?
    fn on_close(&mut self, t: &Timeouts) -> Result<(), String> {
        let waited = self.since.elapsed();
        let within = |timeout: Duration| -> Result<(), String> {
            if waited + EARLY < timeout || waited > timeout + LATE {
                Err(format!(
                    "closed after {waited:?}, the timeout is {timeout:?}"
                ))
            } else {
                Ok(())
            }
        };
        let response = String::from_utf8_lossy(&self.got).into_owned();
        let outcome = match self.kind {
            Kind::ResetMidBody => unreachable!("a reset fault is done before it reads"),
            Kind::QuietBeforeRequest => {
                if self.got_total != 0 {
                    return Err(format!("expected a silent close, got {response:?}"));
                }
                within(t.idle)?;
                format!("closed silently after {waited:.1?} (idle timeout)")
            }
            Kind::QuietAfterResponse => {
                if !matches!(self.phase, Phase::Draining) {
                    return Err(format!("closed before the response ended: {response:?}"));
                }
                within(t.idle)?;
                format!("closed after {waited:.1?} of quiet (idle timeout)")
            }
            Kind::PartialHead | Kind::StalledBody => {
                if !response.starts_with("HTTP/1.1 408 ")
                    || !response.to_ascii_lowercase().contains("connection: close")
                {
                    return Err(format!("expected 408 and close, got {response:?}"));
                }
                within(if self.kind == Kind::PartialHead {
                    t.header
                } else {
                    t.idle
                })?;
                format!("408 and close after {waited:.1?}")
            }
            Kind::StopReading => {
                if !matches!(self.phase, Phase::Draining) {
                    return Err(format!(
                        "closed before the client stopped reading ({} B read)",
                        self.got_total
                    ));
                }
                if self.got_total >= self.body.len() {
                    return Err("the whole echo arrived; the server never had to wait".into());
                }
                format!(
                    "dropped at the idle timeout after {} of {} B",
                    self.got_total,
                    self.body.len()
                )
            }
        };
        self.outcome = Some(Ok(outcome));
        Ok(())
    }
}
