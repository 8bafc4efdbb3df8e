//! UTF-8 checked as a text message arrives, so a bad one fails at the first
//! wrong byte (RFC 6455 §8.1: "fail fast"), not after the rest of it was
//! buffered: whether it comes in fragments or as one frame split over reads.

/// How far `bytes` is valid UTF-8, not counting a code point cut off at the
/// end (it may continue in the next piece); `None` if it is invalid.
pub(crate) fn valid_prefix(bytes: &[u8]) -> Option<usize> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Some(bytes.len()),
        Err(e) if e.error_len().is_none() => Some(e.valid_up_to()),
        Err(_) => None,
    }
}

/// UTF-8 checked piece by piece: what it keeps between pieces is the start of
/// a code point cut off at the end of the last one (at most three bytes).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Utf8Stream {
    cut: [u8; 4],
    cut_len: u8,
}

impl Utf8Stream {
    /// Takes the next bytes of the text; false once it cannot be UTF-8,
    /// whatever comes after.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        // First finish the code point the last piece cut off, a byte at a
        // time: it needs at most three more.
        while self.cut_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return true;
            };
            bytes = rest;
            self.cut[usize::from(self.cut_len)] = byte;
            self.cut_len += 1;
            match valid_prefix(&self.cut[..usize::from(self.cut_len)]) {
                None => return false,
                Some(n) if n == usize::from(self.cut_len) => self.cut_len = 0,
                Some(_) => {} // still short of its end
            }
        }
        let Some(n) = valid_prefix(bytes) else {
            return false;
        };
        let tail = &bytes[n..];
        self.cut[..tail.len()].copy_from_slice(tail);
        self.cut_len = tail.len() as u8;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{valid_prefix, Utf8Stream};

    #[test]
    fn a_cut_code_point_is_pending_and_a_bad_one_is_invalid() {
        let euro = "€".as_bytes();
        assert_eq!(valid_prefix(b"abc"), Some(3));
        assert_eq!(valid_prefix(&[b'a', euro[0], euro[1]]), Some(1));
        assert_eq!(valid_prefix(&[b'a', 0xFF]), None);
        assert_eq!(valid_prefix(&[0xED, 0xA0, 0x80]), None, "a surrogate");
    }

    /// Fed in every split into pieces of `step` bytes.
    fn fed(bytes: &[u8], step: usize) -> (bool, u8) {
        let mut stream = Utf8Stream::default();
        let ok = bytes.chunks(step).all(|piece| stream.feed(piece));
        (ok, stream.cut_len)
    }

    #[test]
    fn text_fed_in_pieces_is_judged_as_a_whole_and_at_its_first_wrong_byte() {
        let text = "a€😀é\u{10FFFF}z".as_bytes();
        for step in 1..=text.len() {
            assert_eq!(fed(text, step), (true, 0), "step {step}");
            // Cut before its last byte: valid so far, one code point open.
            assert_eq!(fed(&text[..text.len() - 2], step), (true, 3), "step {step}");
        }
        let wrong: [&[u8]; 5] = [
            &[0xE2, 0x82, 0x41],       // a code point cut by ASCII
            &[0xF4, 0x90, 0x80, 0x80], // past U+10FFFF
            &[0xED, 0xA0, 0x80],       // a surrogate
            &[0xC0, 0x80],             // overlong
            &[0xE2, 0xFF],
        ];
        for bytes in wrong {
            for step in 1..=bytes.len() {
                assert!(!fed(bytes, step).0, "{bytes:x?} step {step}");
            }
        }
        // Wrong at its second byte: known then, before any more comes.
        let mut stream = Utf8Stream::default();
        assert!(stream.feed(&[0xF4]));
        assert!(!stream.feed(&[0x90]));
    }
}
