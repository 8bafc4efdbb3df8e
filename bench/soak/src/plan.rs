//! What the soak sends: each request's shape follows from the seed and its
//! number alone, each connection's from the seed and its number, so
//! `--seed S` replays the same requests (their interleaving is the network's).

use crate::rng::Rng;

/// The largest body sent.
pub const MAX_BODY: usize = 8 << 20;
/// Bodies above this are "large": at most [`MAX_LARGE_IN_FLIGHT`] at once, so
/// the server's memory peak is the same in the warm-up and in the run.
pub const LARGE: usize = 1 << 20;
pub const MAX_LARGE_IN_FLIGHT: usize = 4;
/// The first requests carry the largest bodies, four rounds of as many as may
/// be in flight, next to the first round of faults: the warm-up meets the
/// run's worst case for memory.
pub const WARMUP_LARGE: u64 = 4 * MAX_LARGE_IN_FLIGHT as u64;

const REQUEST: u64 = 1;
const CONNECTION: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    Length,
    Chunked { trailer: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http11,
    /// HTTP/1.0 without keep-alive: one request, then the server closes.
    Http10Close,
    /// HTTP/1.0 with `Connection: keep-alive`.
    Http10KeepAlive,
}

/// One request's shape.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub id: u64,
    pub body_len: usize,
    pub upload: Upload,
    pub content_type: bool,
    /// Sent with `Expect: 100-continue` when it goes alone on HTTP/1.1.
    pub expect: bool,
}

impl Shape {
    pub fn of(seed: u64, id: u64) -> Shape {
        let mut rng = Rng::for_item(seed, REQUEST, id);
        let r = rng.unit();
        // Mostly small, a long tail of large ones (about 1.5 GB each way per
        // million requests).
        let body_len = if id < WARMUP_LARGE {
            MAX_BODY
        } else if r < 0.94 {
            rng.range(0, 512) as usize
        } else if r < 0.9975 {
            rng.log_range(512, 16 << 10) as usize
        } else if r < 0.9998 {
            rng.log_range(16 << 10, LARGE as u64) as usize
        } else {
            rng.range(LARGE as u64 + 1, MAX_BODY as u64) as usize
        };
        // Chunked is the costlier upload for the server's memory (its buffer
        // cannot be sized from a length); the warm-up's large bodies use it.
        let upload = if id < WARMUP_LARGE || rng.chance(0.2) {
            Upload::Chunked {
                trailer: rng.chance(0.1),
            }
        } else {
            Upload::Length
        };
        Shape {
            id,
            body_len,
            upload,
            content_type: rng.chance(0.3),
            expect: rng.chance(0.1),
        }
    }

    pub fn is_large(&self) -> bool {
        self.body_len > LARGE
    }

    /// The body: `body_len` bytes of every value, from the request's own stream.
    pub fn body(&self, seed: u64) -> Vec<u8> {
        Rng::for_item(seed ^ 0x5eed, REQUEST, self.id).bytes(self.body_len)
    }
}

/// One connection's plan.
pub struct ConnPlan {
    pub version: Version,
    pub requests: u32,
    /// Decides bursts and chunk sizes as the connection goes.
    pub rng: Rng,
}

impl ConnPlan {
    pub fn of(seed: u64, id: u64) -> ConnPlan {
        let mut rng = Rng::for_item(seed, CONNECTION, id);
        let r = rng.unit();
        let version = if r < 0.03 {
            Version::Http10Close
        } else if r < 0.05 {
            Version::Http10KeepAlive
        } else {
            Version::Http11
        };
        let requests = match version {
            Version::Http10Close => 1,
            _ => rng.range(1, 400) as u32,
        };
        ConnPlan {
            version,
            requests,
            rng,
        }
    }
}

/// A request ready to send: `now` goes out at once, `after_continue` once the
/// server's `100 Continue` arrived.
pub struct Encoded {
    pub now: Vec<u8>,
    pub after_continue: Vec<u8>,
}

pub fn content_type(id: u64) -> String {
    format!("application/x-soak-{}", id % 7)
}

/// Encodes a request. HTTP/1.0 always uses Content-Length (RFC 9112 §6.1:
/// Transfer-Encoding in an HTTP/1.0 message is faulty framing).
pub fn encode(
    shape: &Shape,
    body: &[u8],
    version: Version,
    expect: bool,
    rng: &mut Rng,
) -> Encoded {
    use std::fmt::Write;
    let mut head = String::with_capacity(160);
    let v = if version == Version::Http11 {
        "1.1"
    } else {
        "1.0"
    };
    let _ = write!(
        head,
        "POST /soak/{} HTTP/{v}\r\nHost: 127.0.0.1\r\n",
        shape.id
    );
    if version == Version::Http10KeepAlive {
        head.push_str("Connection: keep-alive\r\n");
    }
    if shape.content_type {
        let _ = write!(head, "Content-Type: {}\r\n", content_type(shape.id));
    }
    let chunked = match shape.upload {
        Upload::Chunked { trailer } if version == Version::Http11 => Some(trailer),
        _ => None,
    };
    match chunked {
        Some(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        None => {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
    }
    if expect {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");
    let mut wire = match chunked {
        Some(trailer) => chunk(body, trailer, rng),
        None => Vec::new(),
    };
    if chunked.is_none() {
        wire.extend_from_slice(body);
    }
    let mut now = head.into_bytes();
    if expect {
        Encoded {
            now,
            after_continue: wire,
        }
    } else {
        now.extend_from_slice(&wire);
        Encoded {
            now,
            after_continue: Vec::new(),
        }
    }
}

/// Chunked encoding with sizes from 1 byte to 64 KiB, hex in either case,
/// an occasional chunk extension and trailer field.
fn chunk(body: &[u8], trailer: bool, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 64);
    let mut rest = body;
    while !rest.is_empty() {
        let n = (rng.log_range(1, 64 << 10) as usize).min(rest.len());
        let size = if rng.chance(0.5) {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        out.extend_from_slice(size.as_bytes());
        if rng.chance(0.05) {
            out.extend_from_slice(b";soak=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Soak-Trailer: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A short description for failure reports.
pub fn describe(shape: &Shape, version: Version, expect: bool, burst: usize) -> String {
    let v = match version {
        Version::Http11 => "HTTP/1.1",
        Version::Http10Close => "HTTP/1.0",
        Version::Http10KeepAlive => "HTTP/1.0 keep-alive",
    };
    let upload = match shape.upload {
        Upload::Chunked { .. } if version == Version::Http11 => "chunked",
        _ => "Content-Length",
    };
    let mut d = format!("request {} ({v}, {upload}, {} B", shape.id, shape.body_len);
    if expect {
        d.push_str(", Expect: 100-continue");
    }
    if burst > 1 {
        d.push_str(&format!(", in a pipelined burst of {burst}"));
    }
    d.push(')');
    d
}
