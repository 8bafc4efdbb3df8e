//! Streamed bodies, one framing role for both directions (as hyper's
//! `Encoder` and `Decoder`): [`Outgoing`] frames the pieces of a body being
//! sent (a response's, or a client request's), [`Incoming`] takes the pieces
//! of one being received out of the bytes around them.
//!
//! Pieces are [`Bytes`]: a piece read from one connection goes out on
//! another without a copy, and a chunk's framing is a few bytes beside it.
//! `Bytes` rather than a pool of fixed buffers because a piece keeps the size
//! it arrived with (one read, one piece) and frees itself when the last
//! connection it went to has sent it; a pool would add a copy or a size
//! class to every read.

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::output::OutputBuffer;
use bytes::Bytes;
use std::ops::Range;

/// Why a streamed body could not be sent as announced.
///
/// A streamed request body the client broke off:
///
/// ```
/// use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
/// use std::time::Instant;
///
/// #[derive(Default)]
/// struct Upload(Option<Result<(), BodyError>>);
/// impl Dispatch for Upload {
///     const STREAMS: bool = true;
///     fn streams(&mut self, _: &Request<'_>) -> bool {
///         true
///     }
///     fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
///         Reply::Later
///     }
///     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
///         self.0 = Some(result);
///     }
/// }
/// let (now, mut upload) = (Instant::now(), Upload::default());
/// let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
/// conn.receive(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf", now, &mut upload);
/// conn.receive_eof(now, &mut upload);
/// assert_eq!(upload.0, Some(Err(BodyError::Truncated)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// More bytes than the `Content-Length` announced.
    TooLong,
    /// The body ended before the announced length.
    TooShort,
    /// The received body's chunked framing is broken.
    Chunked(ChunkedError),
    /// The peer closed or reset the connection before the body was complete.
    Truncated,
    /// No byte of it came for longer than the idle timeout.
    Stalled,
    /// The response went out first and closed the connection, or the body
    /// ran on past [`Limits::max_body_after_response`](super::Limits::max_body_after_response)
    /// after its response, so the rest of it was never read.
    Unread,
    /// No memory was free to hold what came of it (a runtime's memory
    /// limit reached): the connection closes.
    NoMemory,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLong => f.write_str("more body than its Content-Length"),
            BodyError::TooShort => f.write_str("body ended before its Content-Length"),
            BodyError::Chunked(e) => write!(f, "chunked body: {}", e.as_str()),
            BodyError::Truncated => f.write_str("connection closed before the body was complete"),
            BodyError::Stalled => f.write_str("body stalled past the idle timeout"),
            BodyError::Unread => {
                f.write_str("response closed the connection before the body was read")
            }
            BodyError::NoMemory => f.write_str("no memory free to hold the body"),
        }
    }
}

impl std::error::Error for BodyError {}

/// How a body being sent is framed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Delimited by closing the connection (an HTTP/1.0 peer, length unknown).
    Close,
    /// Not sent at all: the response to HEAD.
    Discard,
}

impl Outgoing {
    /// Queues `piece`, framed, behind what `out` holds.
    pub(crate) fn push(&mut self, piece: Bytes, out: &mut OutputBuffer) -> Result<(), BodyError> {
        if piece.is_empty() {
            return Ok(());
        }
        match self {
            Outgoing::Length(remaining) => {
                let len = piece.len() as u64;
                if len > *remaining {
                    return Err(BodyError::TooLong);
                }
                *remaining -= len;
                out.push_piece(piece);
            }
            Outgoing::Chunked => {
                // Each chunk goes whole, its CRLF with it: a reader that
                // waits for the CRLF (Python's `requests` reading events)
                // has the chunk now, not with the next piece.
                push_size_line(out.buffer(), piece.len());
                out.push_piece(piece);
                out.buffer().extend_from_slice(CRLF);
            }
            Outgoing::Close => out.push_piece(piece),
            Outgoing::Discard => {}
        }
        Ok(())
    }

    /// Ends the body: the last chunk, or a check that the length was met.
    pub(crate) fn finish(&mut self, out: &mut OutputBuffer) -> Result<(), BodyError> {
        match self {
            Outgoing::Length(0) | Outgoing::Close | Outgoing::Discard => Ok(()),
            Outgoing::Length(_) => Err(BodyError::TooShort),
            Outgoing::Chunked => {
                out.buffer().extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
        }
    }
}

/// Appends a chunk's size line: its length in hex, and CRLF.
fn push_size_line(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let (mut at, mut left) = (digits.len(), len);
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[left & 15];
        left >>= 4;
        if left == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(CRLF);
}

/// The end of a chunk's data.
const CRLF: &[u8] = b"\r\n";

/// How a body being received is delimited.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// This many bytes still to come.
    Length(u64),
    /// Boxed: the decoder is large.
    Chunked(Box<ChunkedDecoder>),
    /// Everything until the connection closes.
    UntilClose,
}

/// What [`Incoming::decode`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The body bytes, where they now lie in the buffer.
    pub(crate) data: Range<usize>,
    /// Raw bytes used up (framing included).
    pub(crate) consumed: usize,
    /// Whether the body is complete.
    pub(crate) done: bool,
}

impl Incoming {
    /// Decodes the body bytes at the front of `buf` in place; the caller
    /// hands on `buf[data]` and drops the first `consumed` bytes. Bytes after
    /// the body's end are left alone.
    pub(crate) fn decode(&mut self, buf: &mut [u8]) -> Result<Decoded, BodyError> {
        match self {
            Incoming::Length(remaining) => {
                let n = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= n as u64;
                Ok(Decoded {
                    data: 0..n,
                    consumed: n,
                    done: *remaining == 0,
                })
            }
            Incoming::Chunked(decoder) => {
                let progress = decoder
                    .decode_in_place(buf, 0, 0)
                    .map_err(BodyError::Chunked)?;
                Ok(Decoded {
                    data: 0..progress.written,
                    consumed: progress.read,
                    done: progress.done,
                })
            }
            Incoming::UntilClose => Ok(Decoded {
                data: 0..buf.len(),
                consumed: buf.len(),
                done: false,
            }),
        }
    }

    /// The connection closed: whether that completes the body.
    pub(crate) fn finish(&self) -> Result<(), BodyError> {
        match self {
            Incoming::UntilClose | Incoming::Length(0) => Ok(()),
            _ => Err(BodyError::Truncated),
        }
    }

    /// A chunked decoder for a body of at most `max_body` bytes.
    pub(crate) fn chunked(max_body: u64, max_line: usize, max_trailers: usize) -> Incoming {
        Incoming::Chunked(Box::new(ChunkedDecoder::new(
            max_body,
            max_line,
            max_trailers,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::output::SHARED_FROM;

    fn drain(out: &mut OutputBuffer) -> Vec<u8> {
        let mut sent = Vec::new();
        while !out.is_empty() {
            let pending = out.pending().to_vec();
            out.consume(pending.len());
            sent.extend_from_slice(&pending);
        }
        sent
    }

    #[test]
    fn chunked_pieces_are_framed_and_decode_back_whatever_the_split() {
        let mut out = OutputBuffer::default();
        let mut framing = Outgoing::Chunked;
        for piece in [&b"hello"[..], b"", b" ", &[b'x'; 300]] {
            framing
                .push(Bytes::copy_from_slice(piece), &mut out)
                .unwrap();
        }
        framing.finish(&mut out).unwrap();
        let wire = drain(&mut out);
        assert!(wire.starts_with(b"5\r\nhello\r\n1\r\n \r\n12c\r\n"));
        assert!(wire.ends_with(b"\r\n0\r\n\r\n"));
        let expected = [&b"hello "[..], &[b'x'; 300]].concat();
        for step in [1, 2, 7, 64, wire.len()] {
            let mut incoming = Incoming::chunked(u64::MAX, 4096, 4096);
            let (mut buffered, mut body, mut done) = (Vec::new(), Vec::new(), false);
            for piece in wire.chunks(step) {
                buffered.extend_from_slice(piece);
                let decoded = incoming.decode(&mut buffered).unwrap();
                body.extend_from_slice(&buffered[decoded.data]);
                buffered.drain(..decoded.consumed);
                done = decoded.done;
            }
            assert!(done && buffered.is_empty(), "step {step}");
            assert_eq!(body, expected, "step {step}");
        }
    }

    /// A chunk's CRLF goes with it, not with the next piece: an event
    /// stream's reader that waits for it has each event at once. Sent in
    /// between by any amount (the CRLF in part too), queued or not, the
    /// wire is the same.
    #[test]
    fn each_chunk_is_whole_on_the_wire_as_soon_as_it_is_queued() {
        let pieces: [&[u8]; 4] = [b"data: 1\n\n", b"\r\n", b"data: 2\n\n", b"x"];
        let mut whole = OutputBuffer::default();
        let mut framing = Outgoing::Chunked;
        for piece in pieces {
            framing.push(Bytes::from_static(piece), &mut whole).unwrap();
        }
        framing.finish(&mut whole).unwrap();
        let expected = drain(&mut whole);
        assert_eq!(
            expected,
            b"9\r\ndata: 1\n\n\r\n2\r\n\r\n\r\n9\r\ndata: 2\n\n\r\n1\r\nx\r\n0\r\n\r\n"
        );
        // Sends of every size between the pieces, the CRLF cut too.
        for step in 0..=13 {
            let mut out = OutputBuffer::default();
            let mut framing = Outgoing::Chunked;
            let mut wire = Vec::new();
            for piece in pieces {
                framing.push(Bytes::from_static(piece), &mut out).unwrap();
                let sent = out.pending().len().min(step);
                wire.extend_from_slice(&out.pending()[..sent]);
                out.consume(sent);
                if step == 13 {
                    // All sent that is queued: the chunk is whole.
                    wire.extend(drain(&mut out));
                    assert!(wire.ends_with(b"\r\n"), "chunk {piece:?} whole");
                }
            }
            framing.finish(&mut out).unwrap();
            wire.extend(drain(&mut out));
            assert_eq!(wire, expected, "sent {step} at a time");
        }
    }

    /// A chunk leaves whole in one send, its size line and CRLF with it,
    /// not its CRLF in a second, small send that Nagle's algorithm may hold
    /// back. Short pieces are copied, so that a head, its chunks and the
    /// body's end are one part (in parts, the end of a response given whole
    /// went apart, and waited 40 ms for the client's delayed ACK); a long
    /// piece is a part of its own, and the next size line joins its CRLF.
    #[test]
    fn chunks_go_whole_and_short_ones_in_one_part() {
        let mut out = OutputBuffer::default();
        let mut framing = Outgoing::Chunked;
        out.buffer().extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        for piece in ["a", "bc", "def"] {
            framing.push(Bytes::from(piece), &mut out).unwrap();
        }
        framing.finish(&mut out).unwrap();
        let whole = b"HTTP/1.1 200 OK\r\n\r\n1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n";
        assert_eq!(out.lone(), Some(&whole[..]), "all in one part");
        assert_eq!(drain(&mut out), whole);

        let long = Bytes::from(vec![b'x'; SHARED_FROM]);
        let mut out = OutputBuffer::default();
        framing.push(long.clone(), &mut out).unwrap();
        let parts: [&[u8]; 4] = [b"4000\r\n", &long, b"\r\n", b""];
        assert_eq!(out.pending_parts()[..4], parts);
        framing.push(Bytes::from_static(b"hi"), &mut out).unwrap();
        framing.finish(&mut out).unwrap();
        let parts: [&[u8]; 4] = [b"4000\r\n", &long, b"\r\n2\r\nhi\r\n0\r\n\r\n", b""];
        assert_eq!(out.pending_parts()[..4], parts);
    }

    #[test]
    fn a_length_is_held_to_in_both_directions() {
        let mut out = OutputBuffer::default();
        let mut framing = Outgoing::Length(4);
        framing.push(Bytes::from_static(b"abc"), &mut out).unwrap();
        assert_eq!(
            framing.push(Bytes::from_static(b"de"), &mut out),
            Err(BodyError::TooLong)
        );
        assert_eq!(framing.finish(&mut out), Err(BodyError::TooShort));
        framing.push(Bytes::from_static(b"d"), &mut out).unwrap();
        assert_eq!(framing.finish(&mut out), Ok(()));
        assert_eq!(drain(&mut out), b"abcd");

        let mut incoming = Incoming::Length(3);
        let mut buf = b"abcNEXT".to_vec();
        let decoded = incoming.decode(&mut buf).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                data: 0..3,
                consumed: 3,
                done: true
            }
        );
        assert_eq!(Incoming::Length(2).finish(), Err(BodyError::Truncated));
    }
}
