//! Bytes received and not yet consumed: one `Vec`, and where in it the
//! unconsumed bytes start.
//!
//! Consuming a request moves the start; once everything is consumed the
//! `Vec` is cleared and its memory reused for the next request, with no
//! allocation and no copy (unless it grew past `KEEP_CAPACITY` for a large
//! body: then it is freed). Bytes of a pipelined request that follow are moved
//! to the front only when new input would not fit behind them.
//!
//! Growth is fallible: what a peer sends decides how large the buffer gets
//! (up to the limits), so running out of memory there is the peer's
//! request refused (503), not the process aborted with every connection.

use super::output::KEEP_CAPACITY;
use crate::headroom;
pub(crate) use crate::headroom::NoMemory;
use std::ops::{Deref, DerefMut};

/// The input of one connection, oldest byte first.
#[derive(Debug, Default)]
pub(crate) struct InputBuffer {
    bytes: Vec<u8>,
    start: usize,
    /// Where the current request ends (from the start), if known: growth
    /// stops there instead of doubling past it.
    end_hint: usize,
}

impl InputBuffer {
    /// Appends received bytes; `Err` (nothing appended) when no memory is
    /// free for them.
    #[inline(always)]
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), NoMemory> {
        self.make_room(data.len())?;
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    /// Makes room for `additional` more bytes, if memory is free.
    #[inline]
    pub(crate) fn reserve(&mut self, additional: usize) -> Result<(), NoMemory> {
        self.make_room(additional)
    }

    /// Caps growth at `end` bytes from the start while that request is read;
    /// growth still at most doubles, so a peer that declares a large body and
    /// sends little makes the buffer no larger than twice what it sent.
    #[inline]
    pub(crate) fn grow_up_to(&mut self, end: usize) {
        self.end_hint = end;
    }

    /// Drops the first `n` bytes (at most all).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            if self.bytes.capacity() > KEEP_CAPACITY {
                // A large body is done with: a busy connection must not hold
                // its memory until it goes quiet.
                self.bytes = Vec::new();
            } else {
                self.bytes.clear();
            }
            self.start = 0;
        }
        self.end_hint = 0;
    }

    /// Drops the unconsumed bytes in `range`; those after it move up.
    pub(crate) fn remove(&mut self, range: std::ops::Range<usize>) {
        // Saturating, and never before `start`: the unchecked view of the
        // unread bytes (`deref`) relies on `start` staying within the bytes.
        let len = self.bytes.len();
        let from = self.start.saturating_add(range.start).min(len);
        let to = self.start.saturating_add(range.end).clamp(from, len);
        self.bytes.drain(from..to);
    }

    /// Takes the whole buffer out, so that its first `n` unconsumed bytes can
    /// be sent from where they are; the bytes after them (a pipelined request)
    /// move to a fresh buffer. Returns the buffer and where its unconsumed
    /// bytes start.
    pub(crate) fn take_front(&mut self, n: usize) -> (Vec<u8>, usize) {
        let start = self.start;
        let mut bytes = std::mem::take(&mut self.bytes);
        let end = start.saturating_add(n).min(bytes.len());
        self.bytes.extend_from_slice(&bytes[end..]);
        bytes.truncate(end);
        self.start = 0;
        self.end_hint = 0;
        (bytes, start)
    }

    /// How many bytes are unconsumed: without the slice's bounds check,
    /// which a `len` through `Deref` pays (`start` never passes the end).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Whether every byte is consumed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.len() == self.start
    }

    /// Bytes of memory held.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Moves the unconsumed bytes to the front if `additional` bytes would
    /// not fit behind them.
    #[inline]
    fn make_room(&mut self, additional: usize) -> Result<(), NoMemory> {
        if self.bytes.capacity() - self.bytes.len() >= additional {
            return Ok(());
        }
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
            if self.bytes.capacity() - self.bytes.len() >= additional {
                return Ok(());
            }
        }
        reserve_up_to(&mut self.bytes, additional, self.end_hint)
    }
}

/// Makes room in `bytes` for `additional` more bytes: its capacity at least
/// doubles (growth in amortised O(1)), but not past `most` when that is
/// room enough, so that a buffer bounded by a limit is not held at twice
/// it by the doubling alone. `Err` when no memory is free for that, with
/// [`HEADROOM`](headroom::HEADROOM) more to spare: a peer decides how large
/// these buffers grow, and its refusal is better than an abort of every
/// connection.
#[inline]
pub(crate) fn reserve_up_to(
    bytes: &mut Vec<u8>,
    additional: usize,
    most: usize,
) -> Result<(), NoMemory> {
    if bytes.capacity() - bytes.len() >= additional {
        return Ok(());
    }
    let needed = bytes.len().saturating_add(additional);
    let doubled = needed.max(bytes.capacity().saturating_mul(2));
    let capacity = match most >= needed {
        true => doubled.min(most),
        false => doubled,
    };
    headroom::grow(|| bytes.try_reserve_exact(capacity - bytes.len()))
}

impl Deref for InputBuffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        debug_assert!(self.start <= self.bytes.len());
        // SAFETY: `start` never passes the end: `consume` clamps it there,
        // `remove` drains only after it, and every other change sets it to
        // 0. The handler derefs its input a handful of times per request,
        // and the bounds check of each was a WasmEdge interpreter's cost.
        unsafe { self.bytes.get_unchecked(self.start..) }
    }
}

impl DerefMut for InputBuffer {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_bytes_go_and_the_memory_stays() {
        let mut input = InputBuffer::default();
        input.extend_from_slice(b"first second").unwrap();
        let capacity = input.capacity();
        input.consume(6);
        assert_eq!(&input[..], b"second");
        input.consume(6);
        assert!(input.is_empty());
        assert_eq!(input.capacity(), capacity, "kept for the next request");
        input.extend_from_slice(b"third").unwrap();
        assert_eq!(&input[..], b"third");
        input.consume(100);
        assert!(input.is_empty());
    }

    #[test]
    fn bytes_removed_from_the_middle_close_up() {
        let mut input = InputBuffer::default();
        input.extend_from_slice(b"skip head--gone--tail").unwrap();
        input.consume(5);
        input.remove(4..12);
        assert_eq!(&input[..], b"headtail");
        input.remove(4..100);
        assert_eq!(&input[..], b"head");
    }

    #[test]
    fn a_large_buffer_is_freed_once_consumed() {
        let mut input = InputBuffer::default();
        input
            .extend_from_slice(&vec![7; KEEP_CAPACITY + 1])
            .unwrap();
        input.consume(KEEP_CAPACITY);
        assert!(input.capacity() > KEEP_CAPACITY, "still holds a byte");
        input.consume(1);
        assert_eq!(input.capacity(), 0);
    }

    #[test]
    fn the_front_is_taken_out_and_the_rest_stays() {
        let mut input = InputBuffer::default();
        input.extend_from_slice(b"xxBODYnext").unwrap();
        input.consume(2);
        let (bytes, start) = input.take_front(4);
        assert_eq!(&bytes[start..], b"BODY");
        assert_eq!(&input[..], b"next");
        let (bytes, start) = input.take_front(10);
        assert_eq!(&bytes[start..], b"next");
        assert!(input.is_empty());
    }

    #[test]
    fn growth_stops_at_the_end_of_the_request() {
        let mut input = InputBuffer::default();
        input.extend_from_slice(&[1; 100]).unwrap();
        input.grow_up_to(1000);
        while input.len() < 1000 {
            input.extend_from_slice(&[2; 30]).unwrap();
            assert!(input.capacity() <= 1000.max(input.len()));
            assert!(
                input.capacity() <= 2 * input.len().max(100) + 30,
                "at most doubles"
            );
        }
        assert_eq!(input.capacity(), 1000, "exactly the request");
        input.extend_from_slice(&[3; 10]).unwrap();
        assert_eq!(input.len(), 1010, "past the hint it grows as usual");
        input.consume(1010);
        input.extend_from_slice(&[4; 2000]).unwrap();
        assert_eq!(&input[..], &[4; 2000][..], "the hint ends with its request");
    }

    #[test]
    fn unconsumed_bytes_move_to_the_front_only_when_room_is_needed() {
        let mut input = InputBuffer::default();
        input.reserve(16).unwrap();
        input.extend_from_slice(b"0123456789").unwrap();
        input.consume(8);
        input.extend_from_slice(b"ab").unwrap();
        assert_eq!((input.start, &input[..]), (8, &b"89ab"[..]));
        input.extend_from_slice(&[b'x'; 64]).unwrap();
        assert_eq!(input.start, 0);
        assert_eq!(&input[..4], b"89ab");
        assert_eq!(input.len(), 68);
        input[0] = b'!';
        assert_eq!(input[0], b'!');
    }
}
