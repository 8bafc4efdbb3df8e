//! Bytes waiting to be sent: one `Vec`, and how much of it already went out.

/// A connection keeps buffers up to this size between requests; a larger one
/// (a big response or body) is freed once it is done with.
pub(crate) const KEEP_CAPACITY: usize = 16 * 1024;

/// The output of one connection, oldest byte first.
#[derive(Debug, Default)]
pub(crate) struct OutputBuffer {
    bytes: Vec<u8>,
    sent: usize,
}

impl OutputBuffer {
    /// What is still to be sent.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where new output is appended.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Marks `n` more bytes as sent (at most what is pending).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.sent += n.min(self.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_bytes_are_dropped_and_small_buffers_kept() {
        let mut out = OutputBuffer::default();
        out.buffer().extend_from_slice(b"hello world");
        out.consume(6);
        assert_eq!(out.pending(), b"world");
        out.buffer().extend_from_slice(b"!");
        out.consume(100);
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
}
