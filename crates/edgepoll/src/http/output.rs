//! Bytes waiting to be sent: one `Vec`, how much of it already went out, and
//! perhaps a large body sent from the buffer it was received in, or the
//! pieces of a streamed body.
//!
//! A body above [`KEEP_CAPACITY`] that the service echoes from its request
//! (the common case for large bodies) is not copied: the connection hands the
//! whole input buffer over as a *lent body* and starts a fresh one. That
//! saves a copy as large as the body, and the memory for it: a large request
//! costs one body-sized allocation, not two.

use bytes::Bytes;
use std::collections::VecDeque;
use std::ops::Range;

/// A connection keeps buffers up to this size between requests; a larger one
/// (a big response or body) is freed once it is done with.
pub(crate) const KEEP_CAPACITY: usize = 16 * 1024;

/// The most parts one send hands over (`net::send_vectored`). Output
/// left for a second send would wait for the client's delayed
/// acknowledgement of the first, if that was under a full segment
/// (WasmEdge leaves Nagle's algorithm on): so only pieces of a streamed
/// body of 16 KiB or more are parts of their own (and a large body lent,
/// and WebSocket messages shared by many queues), and all between them is
/// one part. A response's send cut short by this limit
/// has nearly always taken four such pieces, 64 KiB, more than a segment
/// on loopback, which the client acknowledges at once.
///
/// ```
/// // What `Handler::pending_output_parts` gives at most.
/// assert_eq!(edgepoll::http::MAX_SEND_PARTS, 8);
/// ```
pub const MAX_SEND_PARTS: usize = 8;

/// Pieces of a streamed body this long or longer are sent from where
/// they are; shorter ones are copied behind the output (see
/// [`MAX_SEND_PARTS`]). Pipelined responses of small bodies, each a head
/// and a piece, went out in sends of four, and the second waited 40 ms.
pub(crate) const SHARED_FROM: usize = 16 * 1024;

/// What is to be sent next, in parts for one vectored send, in order. The
/// send skips empty parts; when the second is empty, so is every one after
/// it (one part alone is the common send).
pub(crate) type Parts<'a> = [&'a [u8]; MAX_SEND_PARTS];

/// `bytes` as the one part to send.
#[inline]
pub(crate) fn one_part(bytes: &[u8]) -> Parts<'_> {
    let mut parts: Parts<'_> = [&[]; MAX_SEND_PARTS];
    parts[0] = bytes;
    parts
}

/// The output of one connection, oldest byte first.
#[derive(Debug, Default)]
pub(crate) struct OutputBuffer {
    bytes: Vec<u8>,
    sent: usize,
    /// Goes out after `bytes`; boxed, as most connections never lend.
    lent: Option<Box<LentBody>>,
    /// Pieces of a streamed body, after `bytes` (never with `lent`: a lent
    /// body becomes a piece when streaming starts).
    tail: Option<Box<Tail>>,
}

/// Streamed pieces, and what was queued after them.
#[derive(Debug, Default)]
struct Tail {
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces`.
    queued: usize,
    after: Vec<u8>,
}

/// A body sent from the buffer it arrived in, and what was queued after it.
#[derive(Debug)]
struct LentBody {
    buffer: Vec<u8>,
    unsent: Range<usize>,
    after: Vec<u8>,
}

impl OutputBuffer {
    /// What is still to be sent, or at least its first part: see
    /// [`pending_parts`](Self::pending_parts).
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        let head = &self.bytes[self.sent..];
        match (&self.lent, &self.tail) {
            (Some(lent), _) if head.is_empty() => &lent.buffer[lent.unsent.clone()],
            (_, Some(tail)) if head.is_empty() => tail.first(),
            _ => head,
        }
    }

    /// The first parts of what is to be sent, for one vectored send (see
    /// [`MAX_SEND_PARTS`] for how many).
    #[inline]
    pub(crate) fn pending_parts(&self) -> Parts<'_> {
        let parts = self.parts();
        debug_assert!(
            !parts[1].is_empty() || parts[2..].iter().all(|p| p.is_empty()),
            "one part alone is told by the second (see `Parts`)"
        );
        parts
    }

    #[inline]
    fn parts(&self) -> Parts<'_> {
        let head = &self.bytes[self.sent..];
        match (&self.lent, &self.tail) {
            (Some(lent), _) => {
                let mut parts = one_part(head);
                parts[1] = &lent.buffer[lent.unsent.clone()];
                // What was queued behind it (the next pipelined response)
                // goes in the same send: apart, it waited on Nagle.
                parts[2] = &lent.after;
                parts
            }
            (None, Some(tail)) => tail.parts(head),
            (None, None) => one_part(head),
        }
    }

    /// What is to be sent, if that is one part: no body lent or streamed.
    #[inline]
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    pub(crate) fn lone(&self) -> Option<&[u8]> {
        match self.lent.is_none() && self.tail.is_none() {
            true => Some(&self.bytes[self.sent..]),
            false => None,
        }
    }

    /// How many bytes [`pending_parts`](Self::pending_parts) gives.
    pub(crate) fn parts_len(&self) -> usize {
        self.parts().iter().map(|part| part.len()).sum()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        let head = self.bytes.len() - self.sent;
        match (&self.lent, &self.tail) {
            (Some(lent), _) => head + lent.unsent.len() + lent.after.len(),
            (None, Some(tail)) => head + tail.queued + tail.after.len(),
            (None, None) => head,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        // A lent body is dropped as soon as it is sent, so its presence means
        // bytes are pending.
        self.sent == self.bytes.len() && self.lent.is_none() && self.tail.is_none()
    }

    /// Where new output is appended (behind a lent body, if there is one).
    #[inline]
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        match (&mut self.lent, &mut self.tail) {
            (Some(lent), _) => &mut lent.after,
            (None, Some(tail)) => &mut tail.after,
            (None, None) => &mut self.bytes,
        }
    }

    /// Whether a body is lent or streamed: another one is copied instead.
    pub(crate) fn has_lent_body(&self) -> bool {
        self.lent.is_some() || self.tail.is_some()
    }

    /// Queues a piece of a streamed body behind everything pending: by
    /// reference if it is [`SHARED_FROM`] bytes or more, else copied, so
    /// that a send's [`MAX_SEND_PARTS`] seldom cut the output short (see
    /// there).
    pub(crate) fn push_piece(&mut self, piece: Bytes) {
        match piece.len() < SHARED_FROM {
            true => self.buffer().extend_from_slice(&piece),
            false => self.push_shared(piece),
        }
    }

    /// Queues `piece` behind everything pending, by reference whatever its
    /// length (a WebSocket message shared by the queues it goes to).
    pub(crate) fn push_shared(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        let tail = self.tail_mut();
        if tail.after.is_empty() {
            tail.queued += piece.len();
            tail.pieces.push_back(piece);
        } else {
            // Bytes were queued after the pieces: they go first.
            let after = Bytes::from(std::mem::take(&mut tail.after));
            tail.queued += after.len() + piece.len();
            tail.pieces.push_back(after);
            tail.pieces.push_back(piece);
        }
    }

    /// The tail, made if need be; a lent body becomes its first pieces.
    fn tail_mut(&mut self) -> &mut Tail {
        if self.tail.is_none() {
            let mut tail = Box::<Tail>::default();
            if let Some(lent) = self.lent.take() {
                let LentBody {
                    buffer,
                    unsent,
                    after,
                } = *lent;
                let body = Bytes::from(buffer).slice(unsent);
                tail.queued = body.len();
                tail.pieces.push_back(body);
                tail.after = after;
            }
            self.tail = Some(tail);
        }
        self.tail.get_or_insert_with(Default::default)
    }

    /// Queues `buffer[body]` behind what is pending, without copying it.
    /// Only one body is lent at a time (see [`has_lent_body`](Self::has_lent_body)).
    pub(crate) fn lend(&mut self, buffer: Vec<u8>, body: Range<usize>) {
        debug_assert!(self.lent.is_none() && body.end <= buffer.len());
        self.lent = Some(Box::new(LentBody {
            buffer,
            unsent: body,
            after: Vec::new(),
        }));
    }

    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
            + self
                .lent
                .as_ref()
                .map_or(0, |lent| lent.buffer.capacity() + lent.after.capacity())
            + self
                .tail
                .as_ref()
                .map_or(0, |tail| tail.queued + tail.after.capacity())
    }

    /// Marks `n` more bytes as sent (at most what is pending); whether
    /// nothing is left (as [`is_empty`](Self::is_empty), known here for less).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) -> bool {
        let head = self.bytes.len() - self.sent;
        if n > head && self.lent.is_some() {
            self.consume_into_lent(n, head);
            self.is_empty()
        } else if n >= head && self.tail.is_some() {
            self.consume_into_tail(n, head);
            self.is_empty()
        } else {
            self.consume_bytes(n);
            // The head all sent, and no tail (else the branch above): only a
            // lent body could be left.
            n >= head && self.lent.is_none()
        }
    }

    /// [`consume`](Self::consume) past the head, into streamed pieces.
    #[cold]
    #[inline(never)]
    fn consume_into_tail(&mut self, n: usize, head: usize) {
        self.consume_bytes(head);
        let Some(tail) = &mut self.tail else {
            return;
        };
        let mut left = n - head;
        while left > 0 {
            let Some(front) = tail.pieces.front_mut() else {
                break;
            };
            let take = left.min(front.len());
            let _ = front.split_to(take);
            tail.queued -= take;
            left -= take;
            if front.is_empty() {
                tail.pieces.pop_front();
            }
        }
        if tail.pieces.is_empty() {
            // The pieces are out: what was queued behind them comes to the
            // front. With nothing queued the buffer stays, as after any
            // response (a streamed response is the proxy's every response).
            let after = std::mem::take(&mut tail.after);
            self.tail = None;
            if !after.is_empty() {
                self.bytes = after;
                self.sent = 0;
            }
            self.consume_bytes(left);
        }
    }

    /// [`consume`](Self::consume) past the head, into a lent body (out of
    /// line: the common response has none).
    #[cold]
    #[inline(never)]
    fn consume_into_lent(&mut self, n: usize, head: usize) {
        let Some(lent) = &mut self.lent else {
            return self.consume_bytes(n);
        };
        self.sent = self.bytes.len();
        let body = (n - head).min(lent.unsent.len());
        lent.unsent.start += body;
        if lent.unsent.is_empty() {
            // The body is out: its buffer goes, and what was queued behind it
            // comes to the front.
            let after = std::mem::take(&mut lent.after);
            self.lent = None;
            self.bytes = after;
            self.sent = 0;
            self.consume(n - head - body);
        } else {
            self.consume_bytes(n);
        }
    }

    /// Marks up to `n` bytes of `bytes` as sent.
    #[inline]
    fn consume_bytes(&mut self, n: usize) {
        self.sent += n.min(self.bytes.len() - self.sent);
        if self.sent == self.bytes.len() {
            if self.bytes.capacity() > KEEP_CAPACITY {
                self.bytes = Vec::new();
            } else {
                self.bytes.clear();
            }
            self.sent = 0;
        } else if self.sent >= KEEP_CAPACITY && self.sent * 2 >= self.bytes.len() {
            // A pipelining peer that never lets the buffer drain must not make
            // the sent prefix grow without bound.
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Frees the memory if nothing is pending.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = OutputBuffer::default();
        }
    }
}

impl Tail {
    fn first(&self) -> &[u8] {
        self.pieces.front().map_or(&self.after[..], |p| &p[..])
    }

    /// The head (if any left) and the pieces after it, as many as a send
    /// takes.
    fn parts<'s>(&'s self, head: &'s [u8]) -> Parts<'s> {
        let mut rest = ((!head.is_empty()).then_some(head).into_iter())
            .chain(self.pieces.iter().map(|p| &p[..]))
            .chain(std::iter::once(&self.after[..]));
        std::array::from_fn(|_| rest.next().unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_pieces_go_out_in_order_with_what_came_before_and_after() {
        let (one, two) = (vec![b'1'; SHARED_FROM], vec![b'2'; SHARED_FROM + 1]);
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"head:");
        out.lend(b"..LENT..".to_vec(), 2..6);
        out.buffer().extend_from_slice(b":mid:");
        out.push_piece(Bytes::from(one.clone()));
        out.push_piece(Bytes::from_static(b"small"));
        out.push_piece(Bytes::from(two.clone()));
        out.buffer().extend_from_slice(b":end");
        out.push_piece(Bytes::from_static(b"!"));
        let expected = [&b"head:LENT:mid:"[..], &one, b"small", &two, b":end!"].concat();
        assert_eq!(out.len(), expected.len());
        let mut sent = Vec::new();
        for step in [2, 7, 1, 3, 20_000, 100_000].into_iter().cycle() {
            if out.is_empty() {
                break;
            }
            let both = out.pending_parts().concat();
            let n = step.min(both.len());
            sent.extend_from_slice(&both[..n]);
            // What `consume` says is what `is_empty` says.
            let all_sent = out.consume(n);
            assert_eq!(all_sent, out.is_empty(), "{} sent", sent.len());
        }
        assert!(sent == expected);
        assert!(!out.has_lent_body());
        // The connection's own buffer outlives the pieces, for the next
        // response.
        assert!(out.capacity() > 0);
    }

    #[test]
    fn output_is_one_part_unless_a_long_body_is_lent_or_streamed_behind_it() {
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"head");
        assert_eq!(out.lone(), Some(&b"head"[..]));
        assert_eq!(out.pending_parts(), one_part(b"head"));
        // A short piece is copied behind it.
        out.push_piece(Bytes::from_static(b"piece"));
        assert_eq!(out.lone(), Some(&b"headpiece"[..]));
        let long = Bytes::from(vec![b'x'; SHARED_FROM]);
        out.push_piece(long.clone());
        assert_eq!(out.lone(), None);
        assert_eq!(out.pending_parts()[..3], [&b"headpiece"[..], &long, b""]);
        let mut out = OutputBuffer::default();
        out.lend(b"xBODYx".to_vec(), 1..5);
        assert_eq!(out.lone(), None);
        assert_eq!(out.pending_parts()[..2], [&b""[..], b"BODY"]);
    }

    /// A send takes at most `MAX_SEND_PARTS` parts: pipelined responses
    /// of short bodies are one part, and when the parts run past a send it
    /// has taken at least 64 KiB, more than a segment on loopback (a
    /// second send after less would wait for the first's delayed ACK).
    #[test]
    fn a_send_cut_short_by_its_parts_takes_64_kib() {
        let mut out = OutputBuffer::default();
        for _ in 0..16 {
            out.buffer()
                .extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n");
            out.push_piece(Bytes::from(vec![b'x'; 2000]));
        }
        assert!(out.lone().is_some(), "one part");
        for size in [SHARED_FROM, SHARED_FROM * 3] {
            let mut out = OutputBuffer::default();
            for _ in 0..16 {
                out.buffer().extend_from_slice(b"head");
                out.push_piece(Bytes::from(vec![b'x'; size]));
            }
            let parts = out.pending_parts();
            assert!(parts.iter().all(|p| !p.is_empty()), "a full send");
            assert!(parts.iter().map(|p| p.len()).sum::<usize>() >= 64 * 1024);
        }
    }

    #[test]
    fn sent_bytes_are_dropped_and_small_buffers_kept() {
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"hello world");
        assert!(!out.consume(6));
        assert_eq!(out.pending(), b"world");
        out.buffer().extend_from_slice(b"!");
        assert!(out.consume(100));
        assert!(out.is_empty());
        assert!(
            out.capacity() > 0,
            "a small buffer stays for the next response"
        );
        out.release();
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn a_large_buffer_is_freed_once_sent_and_a_long_prefix_compacted() {
        let mut out = OutputBuffer::default();
        out.buffer().resize(KEEP_CAPACITY * 4, b'x');
        out.consume(KEEP_CAPACITY * 3);
        assert_eq!(out.len(), KEEP_CAPACITY);
        assert!(
            out.bytes.len() == KEEP_CAPACITY,
            "the sent prefix was compacted"
        );
        out.consume(KEEP_CAPACITY);
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn a_lent_body_goes_out_between_the_bytes_before_and_after_it() {
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"head:");
        out.lend(b"..BODY..".to_vec(), 2..6);
        out.buffer().extend_from_slice(b":tail");
        assert!(out.has_lent_body());
        assert_eq!(out.len(), 14);
        assert_eq!(
            out.pending_parts()[..3],
            [&b"head:"[..], &b"BODY"[..], &b":tail"[..]]
        );
        let mut sent = Vec::new();
        for step in [3, 4, 1, 100, 100, 100].into_iter().cycle() {
            if out.is_empty() {
                break;
            }
            let n = step.min(out.pending().len());
            sent.extend_from_slice(&out.pending()[..n]);
            let all_sent = out.consume(n);
            assert_eq!(all_sent, out.is_empty(), "{sent:?}");
        }
        assert_eq!(sent, b"head:BODY:tail");
        assert!(out.is_empty() && !out.has_lent_body());
    }

    #[test]
    fn one_consume_may_cover_the_bytes_the_body_and_what_follows() {
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"ab");
        out.lend(b"cd".to_vec(), 0..2);
        out.buffer().extend_from_slice(b"ef");
        assert!(!out.consume(5));
        assert_eq!(out.pending(), b"f");
        assert!(out.consume(9));
        assert!(out.is_empty());
        assert!(out.capacity() > 0, "the small buffer behind the body stays");
    }
}
