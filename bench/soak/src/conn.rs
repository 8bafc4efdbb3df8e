//! One load connection: sends its plan's requests (alone, with
//! `Expect: 100-continue`, or in pipelined bursts), reads the responses and
//! compares every body byte with what was sent.

use crate::plan::{self, ConnPlan, Shape, Version};
use crate::work::{Failure, Work};
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

/// Chance that a batch is a pipelined burst (of 2 to 16 requests).
const BURST_CHANCE: f64 = 0.1;
/// The most a response head may take.
const MAX_HEAD: usize = 16 << 10;

struct Exchange {
    shape: Shape,
    body: Vec<u8>,
    expect: bool,
    after_continue: Vec<u8>,
    burst: usize,
    sent_at: Instant,
}

enum Reading {
    Head(Vec<u8>),
    Body { offset: usize },
    /// A chunked response (the echo of a chunked upload streams back as it
    /// arrives): where in the body, and where in the framing.
    Chunked { offset: usize, at: Chunk },
}

/// Where a chunked body's reader is.
enum Chunk {
    /// Reading a size line (hex digits, maybe extensions) up to its LF.
    Size(Vec<u8>),
    /// This many data bytes left in the chunk.
    Data(usize),
    /// The CRLF after a chunk's data: bytes of it still to come.
    DataEnd(u8),
    /// Trailer lines after the last chunk, up to the empty one.
    Trailer(Vec<u8>),
}

pub enum Status {
    Open,
    /// Finished its plan (or found no more work) and closed cleanly.
    Done,
    /// Failed; the failure is recorded.
    Failed,
}

pub struct Conn {
    pub id: u64,
    pub stream: TcpStream,
    plan: ConnPlan,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    pending: VecDeque<Exchange>,
    reading: Reading,
    /// HTTP/1.0 without keep-alive answered: only the server's close may follow.
    awaiting_close: bool,
    /// Asked to finish after the current batch (fewer connections wanted).
    pub wind_down: bool,
}

impl Conn {
    pub fn new(id: u64, stream: TcpStream, plan: ConnPlan) -> Conn {
        Conn {
            id,
            stream,
            plan,
            connected: false,
            out: Vec::new(),
            out_pos: 0,
            pending: VecDeque::new(),
            reading: Reading::Head(Vec::new()),
            awaiting_close: false,
            wind_down: false,
        }
    }

    /// Does all the I/O the socket allows now.
    pub fn drive(&mut self, work: &mut Work, buf: &mut [u8]) -> Status {
        match self.step(work, buf) {
            Ok(status) => status,
            Err(failure) => {
                self.lose_pending(work);
                work.fail(failure);
                Status::Failed
            }
        }
    }

    fn step(&mut self, work: &mut Work, buf: &mut [u8]) -> Result<Status, Failure> {
        if !self.connected {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(self.error(format!("connect failed: {e}")));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Status::Open),
                Err(e) => return Err(self.error(format!("connect failed: {e}"))),
            }
        }
        loop {
            let mut progress = false;
            // Read everything there is.
            loop {
                match self.stream.read(buf) {
                    Ok(0) => return self.on_eof(),
                    Ok(n) => {
                        progress = true;
                        self.consume(&buf[..n], work)?;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.cut(format!("read failed: {e}"))),
                }
            }
            if self.pending.is_empty() && self.out_pos == self.out.len() && !self.awaiting_close {
                if self.plan.requests == 0 || self.wind_down || !self.start_batch(work) {
                    // Nothing asked for may have come after the last answer.
                    if matches!(&self.reading, Reading::Head(head) if !head.is_empty()) {
                        return Err(self.error("bytes after the last response".into()));
                    }
                    return Ok(Status::Done);
                }
                progress = true;
            }
            // Write what is queued.
            while self.out_pos < self.out.len() {
                match self.stream.write(&self.out[self.out_pos..]) {
                    Ok(0) => return Err(self.error("write returned 0".into())),
                    Ok(n) => {
                        self.out_pos += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.cut(format!("write failed: {e}"))),
                }
            }
            if self.out_pos == self.out.len() && !self.out.is_empty() {
                self.out_pos = 0;
                if self.out.capacity() > 1 << 20 {
                    self.out = Vec::new();
                } else {
                    self.out.clear();
                }
            }
            if !progress {
                return Ok(Status::Open);
            }
        }
    }

    /// Queues the next request, or a burst of them. False if there is none.
    fn start_batch(&mut self, work: &mut Work) -> bool {
        let version = self.plan.version;
        let burst = if version != Version::Http10Close && self.plan.rng.chance(BURST_CHANCE) {
            (self.plan.rng.range(2, 16) as u32).min(self.plan.requests) as usize
        } else {
            1
        };
        let now = Instant::now();
        for _ in 0..burst {
            let Some(shape) = work.take() else { break };
            self.plan.requests -= 1;
            let body = shape.body(work.seed);
            let expect =
                burst == 1 && version == Version::Http11 && shape.expect && !body.is_empty();
            let encoded = plan::encode(&shape, &body, version, expect, &mut self.plan.rng);
            self.out.extend_from_slice(&encoded.now);
            let tally = &mut work.tally;
            tally.expect += u64::from(expect);
            tally.http10 += u64::from(version != Version::Http11);
            tally.chunked += u64::from(
                version == Version::Http11 && matches!(shape.upload, plan::Upload::Chunked { .. }),
            );
            self.pending.push_back(Exchange {
                shape,
                body,
                expect,
                after_continue: encoded.after_continue,
                burst,
                sent_at: now,
            });
        }
        work.tally.bursts += u64::from(self.pending.len() > 1);
        !self.pending.is_empty()
    }

    fn consume(&mut self, mut data: &[u8], work: &mut Work) -> Result<(), Failure> {
        while !data.is_empty() {
            // Also for bytes that came in the same read as that response.
            if self.awaiting_close {
                return Err(self.error(
                    "bytes after the response to an HTTP/1.0 request without keep-alive".into(),
                ));
            }
            match &mut self.reading {
                Reading::Head(head) => {
                    let from = head.len().saturating_sub(3);
                    head.extend_from_slice(data);
                    let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") else {
                        if head.len() > MAX_HEAD {
                            return Err(self.error("response head over 16 KiB".into()));
                        }
                        return Ok(());
                    };
                    let end = from + end + 4;
                    let rest = head.len() - end;
                    data = &data[data.len() - rest..];
                    let head = std::mem::take(head);
                    self.on_head(&head[..end])?;
                    if matches!(self.reading, Reading::Body { .. })
                        && self.pending.front().is_some_and(|e| e.body.is_empty())
                    {
                        self.complete(work);
                    }
                }
                Reading::Chunked { .. } => {
                    let used = self.consume_chunked(data, work)?;
                    data = &data[used..];
                }
                Reading::Body { offset } => {
                    let Some(exchange) = self.pending.front() else {
                        return Err(self.error("body without a request".into()));
                    };
                    let n = (exchange.body.len() - *offset).min(data.len());
                    let expected = &exchange.body[*offset..*offset + n];
                    if expected != &data[..n] {
                        let at = *offset
                            + expected
                                .iter()
                                .zip(data)
                                .position(|(a, b)| a != b)
                                .unwrap_or(0);
                        return Err(Failure::Mismatch(format!(
                            "{}: response body differs from the request body at byte {at} of {}",
                            self.describe(exchange),
                            exchange.body.len()
                        )));
                    }
                    *offset += n;
                    data = &data[n..];
                    if *offset == exchange.body.len() {
                        self.complete(work);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads framing and data of a chunked response from `data`; returns how
    /// many bytes it used (it stops at the end of the response).
    fn consume_chunked(&mut self, data: &[u8], work: &mut Work) -> Result<usize, Failure> {
        let Reading::Chunked { mut offset, mut at } =
            std::mem::replace(&mut self.reading, Reading::Head(Vec::new()))
        else {
            return Ok(0);
        };
        let Some(exchange) = self.pending.front() else {
            return Err(self.error("body without a request".into()));
        };
        let body_len = exchange.body.len();
        let mut used = 0;
        while used < data.len() {
            match &mut at {
                Chunk::Size(line) => {
                    let b = data[used];
                    used += 1;
                    if b != b'\n' {
                        line.push(b);
                        if line.len() > 1024 {
                            return Err(self.error("chunk size line over 1 KiB".into()));
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(line).into_owned();
                    let digits = text.trim_end_matches('\r').split(';').next().unwrap_or("").trim();
                    let Ok(size) = usize::from_str_radix(digits, 16) else {
                        return Err(self.error(format!("bad chunk size line {text:?}")));
                    };
                    at = match size {
                        0 => Chunk::Trailer(Vec::new()),
                        n => Chunk::Data(n),
                    };
                }
                Chunk::Data(left) => {
                    let n = (*left).min(data.len() - used);
                    let matches = exchange
                        .body
                        .get(offset..offset + n)
                        .is_some_and(|expected| expected == &data[used..used + n]);
                    if !matches {
                        return Err(Failure::Mismatch(format!(
                            "{}: response body differs from the request body near byte {offset} of {body_len}",
                            self.describe(exchange),
                        )));
                    }
                    offset += n;
                    *left -= n;
                    used += n;
                    if *left == 0 {
                        at = Chunk::DataEnd(2);
                    }
                }
                Chunk::DataEnd(left) => {
                    let expected = if *left == 2 { b'\r' } else { b'\n' };
                    if data[used] != expected {
                        return Err(self.error("chunk data not followed by CRLF".into()));
                    }
                    used += 1;
                    *left -= 1;
                    if *left == 0 {
                        at = Chunk::Size(Vec::new());
                    }
                }
                Chunk::Trailer(line) => {
                    let b = data[used];
                    used += 1;
                    if b != b'\n' {
                        line.push(b);
                        continue;
                    }
                    if line.as_slice() == b"\r" || line.is_empty() {
                        if offset != body_len {
                            return Err(Failure::Mismatch(format!(
                                "{}: chunked response of {offset} B, sent {body_len} B",
                                self.describe(exchange),
                            )));
                        }
                        self.complete(work);
                        return Ok(used);
                    }
                    line.clear();
                }
            }
        }
        self.reading = Reading::Chunked { offset, at };
        Ok(used)
    }

    fn on_head(&mut self, head: &[u8]) -> Result<(), Failure> {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        if !matches!(response.parse(head), Ok(httparse::Status::Complete(_))) {
            return Err(self.error(format!(
                "unparsable response head: {:?}",
                String::from_utf8_lossy(head)
            )));
        }
        let code = response.code.unwrap_or(0);
        let Some(exchange) = self.pending.front_mut() else {
            return Err(self.error(format!("response {code} without a request")));
        };
        if code == 100 {
            if !exchange.expect || exchange.after_continue.is_empty() {
                return Err(self.error("100 Continue not asked for".into()));
            }
            let body = std::mem::take(&mut exchange.after_continue);
            self.out.extend_from_slice(&body);
            self.reading = Reading::Head(Vec::new());
            return Ok(());
        }
        let field = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let text = String::from_utf8_lossy(head).into_owned();
        let describe = self.describe(self.pending.front().expect("checked above"));
        if matches!(code, 502..=504) {
            return Err(Failure::Gateway(format!(
                "{describe}: status {code}: {text:?}"
            )));
        }
        if code != 200 {
            return Err(Failure::Error(format!(
                "{describe}: status {code}: {text:?}"
            )));
        }
        let exchange = self.pending.front().expect("checked above");
        if !exchange.after_continue.is_empty() {
            return Err(Failure::Error(format!(
                "{describe}: answered before 100 Continue"
            )));
        }
        let chunked = field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = field("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        // A chunked upload is echoed chunked, as it arrives; anything else
        // with its length.
        // (HTTP/1.0 always uploads with a length, see `plan::encode`.)
        let framing_ok = match (exchange.shape.upload, self.plan.version) {
            (plan::Upload::Chunked { .. }, Version::Http11) => chunked && length.is_none(),
            _ => !chunked && length == Some(exchange.body.len()),
        };
        if !framing_ok {
            return Err(Failure::Mismatch(format!(
                "{describe}: Content-Length {length:?}, chunked {chunked}, sent {} B",
                exchange.body.len()
            )));
        }
        if exchange.shape.content_type
            && field("content-type") != Some(plan::content_type(exchange.shape.id))
        {
            return Err(Failure::Mismatch(format!(
                "{describe}: Content-Type not echoed: {text:?}"
            )));
        }
        let connection = field("connection").map(|v| v.to_ascii_lowercase());
        let expected = match self.plan.version {
            Version::Http11 => None,
            Version::Http10Close => Some("close"),
            Version::Http10KeepAlive => Some("keep-alive"),
        };
        if connection.as_deref() != expected {
            return Err(Failure::Error(format!(
                "{describe}: Connection {connection:?}, expected {expected:?}"
            )));
        }
        self.reading = match chunked {
            true => Reading::Chunked {
                offset: 0,
                at: Chunk::Size(Vec::new()),
            },
            false => Reading::Body { offset: 0 },
        };
        Ok(())
    }

    fn complete(&mut self, work: &mut Work) {
        let Some(exchange) = self.pending.pop_front() else {
            return;
        };
        let tally = &mut work.tally;
        tally.completed += 1;
        tally.bytes_echoed += exchange.body.len() as u64;
        tally
            .latencies_us
            .push(exchange.sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
        work.release(&exchange.shape);
        self.reading = Reading::Head(Vec::new());
        if self.plan.version == Version::Http10Close {
            self.awaiting_close = true;
        }
    }

    fn on_eof(&mut self) -> Result<Status, Failure> {
        if self.awaiting_close {
            return Ok(Status::Done);
        }
        let what = match self.pending.front() {
            Some(exchange) => format!(
                "{}: connection closed before its response ({} of {} queued bytes sent, {:?} after the request)",
                self.describe(exchange),
                self.out_pos,
                self.out.len(),
                exchange.sent_at.elapsed()
            ),
            None => format!("connection {} closed by the server while in use", self.id),
        };
        Err(self.cut(what))
    }

    /// What the connection waits for, if a request: for a stall's report.
    pub fn waiting_on(&self) -> Option<String> {
        let exchange = self.pending.front()?;
        let reading = match &self.reading {
            Reading::Head(head) => format!("{} B of the head", head.len()),
            Reading::Body { offset } => format!("{offset} B of the body"),
            Reading::Chunked { offset, .. } => format!("{offset} B of the chunked body"),
        };
        Some(format!(
            "{} ({} requests pending, {} of {} queued bytes sent, {reading} read)",
            self.describe(exchange),
            self.pending.len(),
            self.out_pos,
            self.out.len()
        ))
    }

    fn describe(&self, exchange: &Exchange) -> String {
        format!(
            "{} on connection {}",
            plan::describe(
                &exchange.shape,
                self.plan.version,
                exchange.expect,
                exchange.burst
            ),
            self.id
        )
    }

    fn error(&self, what: String) -> Failure {
        match self.pending.front() {
            Some(exchange) => Failure::Error(format!("{}: {what}", self.describe(exchange))),
            None => Failure::Error(format!("connection {}: {what}", self.id)),
        }
    }

    /// The connection broke: cut short if a request was under way.
    fn cut(&self, what: String) -> Failure {
        match self.error(what) {
            Failure::Error(text) if !self.pending.is_empty() => Failure::Cut(text),
            failure => failure,
        }
    }

    /// The connection failed: its unanswered requests are lost.
    fn lose_pending(&mut self, work: &mut Work) {
        for exchange in self.pending.drain(..) {
            work.release(&exchange.shape);
            work.tally.requests_lost += 1;
        }
    }
}
