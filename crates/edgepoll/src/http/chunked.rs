//! Decoding of `Transfer-Encoding: chunked` bodies, in place.
//!
//! The decoder copies chunk data towards the front of the same buffer it reads
//! from, so a chunked body needs no second buffer: decoded bytes never outrun
//! the raw bytes they come from.

/// Why a chunked body was rejected.
///
/// ```
/// use edgepoll::http::{ChunkedDecoder, ChunkedError};
/// let mut buf = b"zz\r\nhello\r\n0\r\n\r\n".to_vec();
/// let mut decoder = ChunkedDecoder::new(1 << 20, 4096, 8192);
/// assert_eq!(decoder.decode_in_place(&mut buf, 0, 0), Err(ChunkedError::InvalidSize));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// A chunk-size line that is not hex digits, optional extensions and CRLF.
    InvalidSize,
    /// A chunk-size line (with its extensions) longer than the limit.
    SizeLineTooLong,
    /// Chunk data not followed by CRLF.
    MissingDataTerminator,
    /// The decoded body would exceed the body limit.
    BodyTooLarge,
    /// The trailer section exceeds the head size limit.
    TrailersTooLarge,
    /// A trailer line that is not a field (`name: value`), or holds a bare LF
    /// or a control byte.
    InvalidTrailer,
}

impl ChunkedError {
    /// A short description for logs and error bodies.
    ///
    /// ```
    /// use edgepoll::http::ChunkedError;
    /// assert_eq!(ChunkedError::InvalidSize.as_str(), "invalid chunk size line");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkedError::InvalidSize => "invalid chunk size line",
            ChunkedError::SizeLineTooLong => "chunk size line too long",
            ChunkedError::MissingDataTerminator => "chunk data not followed by CRLF",
            ChunkedError::BodyTooLarge => "chunked body over the size limit",
            ChunkedError::TrailersTooLarge => "trailer section over the size limit",
            ChunkedError::InvalidTrailer => "invalid trailer line",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `any` says whether one was seen.
    Size { any: bool },
    /// After the digits: optional whitespace, then `;` extensions or CR.
    SizeTail,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// Saw CR after the size line, expecting LF.
    SizeLf,
    /// Copying chunk data; `remaining` bytes left in this chunk.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// At the start of a line after a trailer field: also where a fold
    /// (obs-fold: the field's value going on after blanks) may begin.
    TrailerNext,
    /// Inside a trailer field's name.
    TrailerName,
    /// Inside a trailer field's value.
    TrailerValue,
    /// Saw CR inside a trailer line, expecting LF.
    TrailerLf,
    /// Saw CR of the final empty line, expecting LF.
    EndLf,
    /// The body is complete.
    Done,
}

/// Where a call to [`ChunkedDecoder::decode_in_place`] stopped.
///
/// A body arriving in pieces is decoded as each comes, the next call
/// starting where the last stopped:
///
/// ```
/// use edgepoll::http::ChunkedDecoder;
/// let mut decoder = ChunkedDecoder::new(1 << 20, 4096, 8192);
/// let mut buf = b"5\r\nhel".to_vec();
/// let first = decoder.decode_in_place(&mut buf, 0, 0).unwrap();
/// assert_eq!((&buf[..first.written], first.read, first.done), (&b"hel"[..], 6, false));
/// buf.extend_from_slice(b"lo\r\n0\r\n\r\n");
/// let rest = decoder.decode_in_place(&mut buf, first.read, first.written).unwrap();
/// assert!(rest.done);
/// assert_eq!(&buf[..rest.written], b"hello");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Raw bytes consumed up to here (an index into the buffer).
    pub read: usize,
    /// Decoded bytes end here (an index into the buffer; `<= read`).
    pub written: usize,
    /// Whether the last chunk and the trailer section have been read.
    pub done: bool,
}

/// An incremental, allocation-free decoder for chunked transfer coding.
///
/// ```
/// use edgepoll::http::ChunkedDecoder;
/// let mut buf = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n".to_vec();
/// let mut decoder = ChunkedDecoder::new(1 << 20, 4096, 8192);
/// let progress = decoder.decode_in_place(&mut buf, 0, 0).unwrap();
/// assert!(progress.done);
/// assert_eq!(&buf[..progress.written], b"hello");
/// assert_eq!(progress.read, buf.len());
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    remaining: u64,
    decoded: u64,
    line_len: usize,
    trailer_len: usize,
    max_body: u64,
    max_line: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder that accepts at most `max_body` decoded bytes (a `u64`: a
    /// body streamed through may outgrow a 32-bit address space), size lines
    /// of at most `max_line` bytes and a trailer section of at most
    /// `max_trailers` bytes.
    ///
    /// ```
    /// use edgepoll::http::{ChunkedDecoder, ChunkedError};
    /// let mut decoder = ChunkedDecoder::new(4, 64, 1024);
    /// let mut buf = b"5\r\nhello\r\n0\r\n\r\n".to_vec();
    /// assert_eq!(decoder.decode_in_place(&mut buf, 0, 0).unwrap_err(), ChunkedError::BodyTooLarge);
    /// ```
    pub fn new(max_body: u64, max_line: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { any: false },
            size: 0,
            remaining: 0,
            decoded: 0,
            line_len: 0,
            trailer_len: 0,
            max_body,
            max_line,
            max_trailers,
        }
    }

    /// Whether the whole body has been decoded.
    ///
    /// ```
    /// use edgepoll::http::ChunkedDecoder;
    /// let mut decoder = ChunkedDecoder::new(1024, 64, 1024);
    /// let mut buf = b"2\r\nhi\r\n".to_vec();
    /// decoder.decode_in_place(&mut buf, 0, 0).unwrap();
    /// assert!(!decoder.is_done()); // the last chunk has not come
    /// let mut rest = b"0\r\n\r\n".to_vec();
    /// decoder.decode_in_place(&mut rest, 0, 0).unwrap();
    /// assert!(decoder.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `buf[read..]`, writing chunk data to `buf[written..]`.
    ///
    /// `written <= read` must hold (it does when both start at the same place and
    /// only the returned [`Progress`] is fed back). Stops at the end of the buffer
    /// or right after the body's last byte, so bytes of a following message stay
    /// untouched at `buf[progress.read..]`.
    ///
    /// ```
    /// use edgepoll::http::ChunkedDecoder;
    /// let mut decoder = ChunkedDecoder::new(1024, 64, 1024);
    /// let mut buf = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /next".to_vec();
    /// let p = decoder.decode_in_place(&mut buf, 0, 0).unwrap();
    /// assert!(p.done);
    /// assert_eq!(&buf[..p.written], b"abcde"); // the body, decoded where it was
    /// assert_eq!(&buf[p.read..], b"GET /next"); // what follows, untouched
    /// ```
    pub fn decode_in_place(
        &mut self,
        buf: &mut [u8],
        mut read: usize,
        mut written: usize,
    ) -> Result<Progress, ChunkedError> {
        debug_assert!(written <= read);
        while read < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                let available = buf.len() - read;
                let n = (self.remaining.min(available as u64)) as usize;
                buf.copy_within(read..read + n, written);
                read += n;
                written += n;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = buf[read];
            read += 1;
            self.step(byte)?;
        }
        Ok(Progress {
            read,
            written,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Size { .. } | State::SizeTail | State::Extension | State::SizeLf => {
                self.line_len += 1;
                if self.line_len > self.max_line {
                    return Err(ChunkedError::SizeLineTooLong);
                }
            }
            State::TrailerStart
            | State::TrailerNext
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::EndLf => {
                self.trailer_len += 1;
                if self.trailer_len > self.max_trailers {
                    return Err(ChunkedError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        self.state = match (self.state, byte) {
            (State::Size { .. }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = (byte as char).to_digit(16).unwrap_or(0) as u64;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkedError::BodyTooLarge)?;
                // Checked, not saturated: without a limit (u64::MAX) a
                // saturated sum is never over it, and the total would wrap.
                if self
                    .decoded
                    .checked_add(self.size)
                    .is_none_or(|total| total > self.max_body)
                {
                    return Err(ChunkedError::BodyTooLarge);
                }
                State::Size { any: true }
            }
            // Blanks after the size are RFC 9112's BWS before a `;`; a
            // line that ends after them (`5 \r\n`) is taken too, as hyper
            // and nginx take it: the size is unambiguous, and a body is
            // framed anew when it is passed on, never relayed as it came.
            (State::Size { any: true }, b' ' | b'\t') => State::SizeTail,
            (State::Size { any: true } | State::SizeTail, b';') => State::Extension,
            (State::Size { any: true } | State::SizeTail | State::Extension, b'\r') => {
                State::SizeLf
            }
            (State::SizeTail, b' ' | b'\t') => State::SizeTail,
            (State::Extension, b'\n') => return Err(ChunkedError::InvalidSize),
            (State::Extension, b) if b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80 => {
                State::Extension
            }
            (State::SizeLf, b'\n') => {
                self.line_len = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    self.decoded += self.size;
                    self.remaining = self.size;
                    self.size = 0;
                    State::Data
                }
            }
            (State::Size { .. } | State::SizeTail | State::Extension | State::SizeLf, _) => {
                return Err(ChunkedError::InvalidSize)
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { any: false },
            (State::DataCr | State::DataLf, _) => return Err(ChunkedError::MissingDataTerminator),
            (State::TrailerStart | State::TrailerNext, b'\r') => State::EndLf,
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(ChunkedError::InvalidTrailer),
            // A trailer is a header field: a token name (no space before
            // the colon), a colon, then a value.
            (State::TrailerStart | State::TrailerNext | State::TrailerName, b)
                if super::scan::TCHAR[b as usize] =>
            {
                State::TrailerName
            }
            // A folded value goes on (RFC 9112 §5.2: a recipient may take
            // it as a space). Trailers are dropped, never passed on, so
            // none is unfolded; a response's head takes folds as well.
            (State::TrailerNext, b' ' | b'\t') => State::TrailerValue,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b) if b == b'\t' || b >= b' ' && b != 0x7f => State::TrailerValue,
            (State::TrailerLf, b'\n') => State::TrailerNext,
            (
                State::TrailerStart
                | State::TrailerNext
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf,
                _,
            ) => return Err(ChunkedError::InvalidTrailer),
            (State::Data | State::Done, _) => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streamed through, a body has no limit: a 4 GiB chunk is taken on
    /// wasm32 too (the limit was cut to usize::MAX there, and such a body
    /// broke off as too large).
    #[test]
    fn chunks_past_4_gib_pass_without_a_limit() {
        let mut decoder = ChunkedDecoder::new(u64::MAX, 64, 256);
        let mut buf = b"100000000\r\nabc".to_vec();
        let progress = decoder
            .decode_in_place(&mut buf, 0, 0)
            .expect("not too large");
        assert_eq!(&buf[..progress.written], b"abc");
        assert!(!progress.done);
    }

    fn decode_split(input: &[u8], split: usize) -> Result<(Vec<u8>, usize), ChunkedError> {
        // Feed input in two parts, the way data arrives from a socket.
        let mut decoder = ChunkedDecoder::new(1 << 20, 64, 256);
        let mut buf = input[..split].to_vec();
        let mut p = decoder.decode_in_place(&mut buf, 0, 0)?;
        buf.extend_from_slice(&input[split..]);
        p = decoder.decode_in_place(&mut buf, p.read, p.written)?;
        assert!(p.done, "not done for split {split}");
        Ok((buf[..p.written].to_vec(), p.read))
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers_at_every_split() {
        let input =
            b"4\r\nWiki\r\n5 ;a=b;c\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..=input.len() {
            let (body, read) = decode_split(input, split).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(&input[read..], b"NEXT");
        }
    }

    /// A trailer field folded onto a second line (obs-fold) is taken, as a
    /// response's head takes it; a line that begins with a blank right
    /// after the last chunk folds nothing and is refused. (A fold failed
    /// the whole body.)
    #[test]
    fn a_folded_trailer_is_taken_at_every_split() {
        let input = b"1\r\na\r\n0\r\nX-T: a\r\n b\r\n\tc\r\nY: 2\r\n\r\nNEXT";
        for split in 0..=input.len() {
            let (body, read) = decode_split(input, split).unwrap();
            assert_eq!(body, b"a");
            assert_eq!(&input[read..], b"NEXT");
        }
        let mut d = ChunkedDecoder::new(1 << 20, 64, 256);
        let mut buf = b"0\r\n b\r\n\r\n".to_vec();
        assert_eq!(
            d.decode_in_place(&mut buf, 0, 0),
            Err(ChunkedError::InvalidTrailer)
        );
    }

    #[test]
    fn rejects_malformed_size_lines() {
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"5\n",
            b"5 x\r\n",
            b"5;\n",
        ] {
            let mut d = ChunkedDecoder::new(1 << 20, 64, 256);
            let mut buf = bad.to_vec();
            assert_eq!(
                d.decode_in_place(&mut buf, 0, 0),
                Err(ChunkedError::InvalidSize),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rejects_sizes_over_the_limit_and_overflowing_sizes() {
        for bad in [&b"100001\r\n"[..], b"ffffffffffffffffffff\r\n"] {
            let mut d = ChunkedDecoder::new(1 << 20, 64, 256);
            let mut buf = bad.to_vec();
            assert_eq!(
                d.decode_in_place(&mut buf, 0, 0),
                Err(ChunkedError::BodyTooLarge)
            );
        }
    }

    /// Without a limit, chunks whose sizes add up past what a u64 holds
    /// are too large: the total wrapped (or, with overflow checks, panicked).
    #[test]
    fn chunks_that_add_up_past_u64_are_too_large_without_a_limit() {
        let mut d = ChunkedDecoder::new(u64::MAX, 64, 256);
        let mut buf = b"1\r\nX\r\nffffffffffffffff\r\n".to_vec();
        assert_eq!(
            d.decode_in_place(&mut buf, 0, 0),
            Err(ChunkedError::BodyTooLarge)
        );
    }

    #[test]
    fn rejects_missing_crlf_after_data_and_long_lines() {
        let mut d = ChunkedDecoder::new(1 << 20, 64, 256);
        let mut buf = b"2\r\nabX".to_vec();
        assert_eq!(
            d.decode_in_place(&mut buf, 0, 0),
            Err(ChunkedError::MissingDataTerminator)
        );
        let mut d = ChunkedDecoder::new(1 << 20, 8, 256);
        let mut buf = b"1;aaaaaaaaaaaa\r\n".to_vec();
        assert_eq!(
            d.decode_in_place(&mut buf, 0, 0),
            Err(ChunkedError::SizeLineTooLong)
        );
    }
}
