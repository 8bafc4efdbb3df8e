//! Bytes received and not yet consumed: one `Vec`, and where in it the
//! unconsumed bytes start.
//!
//! Consuming a request moves the start; once everything is consumed the
//! `Vec` is cleared and its memory reused for the next request, with no
//! allocation and no copy. Bytes of a pipelined request that follow are moved
//! to the front only when new input would not fit behind them.

use std::ops::{Deref, DerefMut};

/// The input of one connection, oldest byte first.
#[derive(Debug, Default)]
pub(crate) struct InputBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl InputBuffer {
    /// Appends received bytes.
    #[inline]
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        self.make_room(data.len());
        self.bytes.extend_from_slice(data);
    }

    /// Makes room for `additional` more bytes.
    #[inline]
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.make_room(additional);
        self.bytes.reserve(additional);
    }

    /// Drops the first `n` bytes (at most all).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// Bytes of memory held.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Moves the unconsumed bytes to the front if `additional` bytes would
    /// not fit behind them.
    #[inline]
    fn make_room(&mut self, additional: usize) {
        if self.start > 0 && self.bytes.capacity() - self.bytes.len() < additional {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }
}

impl Deref for InputBuffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..]
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
        input.extend_from_slice(b"first second");
        let capacity = input.capacity();
        input.consume(6);
        assert_eq!(&input[..], b"second");
        input.consume(6);
        assert!(input.is_empty());
        assert_eq!(input.capacity(), capacity, "kept for the next request");
        input.extend_from_slice(b"third");
        assert_eq!(&input[..], b"third");
        input.consume(100);
        assert!(input.is_empty());
    }

    #[test]
    fn unconsumed_bytes_move_to_the_front_only_when_room_is_needed() {
        let mut input = InputBuffer::default();
        input.reserve(16);
        input.extend_from_slice(b"0123456789");
        input.consume(8);
        input.extend_from_slice(b"ab");
        assert_eq!((input.start, &input[..]), (8, &b"89ab"[..]));
        input.extend_from_slice(&[b'x'; 64]);
        assert_eq!(input.start, 0);
        assert_eq!(&input[..4], b"89ab");
        assert_eq!(input.len(), 68);
        input[0] = b'!';
        assert_eq!(input[0], b'!');
    }
}
