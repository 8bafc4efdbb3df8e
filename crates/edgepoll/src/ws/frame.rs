//! Frame headers (RFC 6455 §5.2): read from the front of a buffer, written
//! in front of a payload.

/// A frame's opcode.
///
/// ```
/// use edgepoll::ws::frame::{read_header, Opcode};
/// let ping = read_header(&[0x89, 0x00]).unwrap().unwrap();
/// assert_eq!(ping.opcode, Opcode::Ping);
/// assert!(ping.opcode.is_control());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// More of a fragmented message.
    Continuation,
    /// A UTF-8 text message (or its first fragment).
    Text,
    /// A binary message (or its first fragment).
    Binary,
    /// The close handshake.
    Close,
    /// A ping, to be answered with a pong.
    Ping,
    /// A pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented.
    ///
    /// ```
    /// use edgepoll::ws::frame::Opcode;
    /// assert!(Opcode::Ping.is_control() && !Opcode::Text.is_control());
    /// ```
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
///
/// ```
/// use edgepoll::ws::frame::read_header;
/// // A whole binary frame of 300 bytes, unmasked: a 16-bit length.
/// let header = read_header(&[0x82, 126, 0x01, 0x2C]).unwrap().unwrap();
/// assert!(header.fin && header.mask.is_none());
/// assert_eq!((header.payload_len, header.header_len), (300, 4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is a message's last frame.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key, if the frame is masked (every client frame must be).
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Header length in bytes (2 to 14).
    pub header_len: usize,
}

/// Why a frame header is refused: each is a protocol error (close code 1002).
///
/// ```
/// use edgepoll::ws::frame::{read_header, FrameError};
/// assert_eq!(read_header(&[0xC1, 0x00]), Err(FrameError::ReservedBits)); // RSV1
/// assert_eq!(read_header(&[0x83, 0x00]), Err(FrameError::UnknownOpcode));
/// assert_eq!(read_header(&[0x09, 0x00]), Err(FrameError::BadControlFrame)); // a fragmented ping
/// assert_eq!(read_header(&[0x82, 126, 0, 5]), Err(FrameError::BadLength)); // 5 in 16 bits
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A reserved bit is set, and no extension was agreed.
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    UnknownOpcode,
    /// A control frame longer than 125 bytes, or fragmented.
    BadControlFrame,
    /// A 64-bit length with its top bit set, or a length in a longer form
    /// than it needs (RFC 6455 §5.2).
    BadLength,
}

/// Reads the header at the front of `buf`: `Ok(None)` until all of it is
/// there.
///
/// ```
/// use edgepoll::ws::frame::{read_header, Opcode};
/// let header = read_header(&[0x81, 0x85, 1, 2, 3, 4]).unwrap().unwrap();
/// assert_eq!((header.fin, header.opcode, header.payload_len), (true, Opcode::Text, 5));
/// assert_eq!(header.mask, Some([1, 2, 3, 4]));
/// assert_eq!(read_header(&[0x81]), Ok(None));
/// ```
pub fn read_header(buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let opcode = Opcode::from_bits(first & 0x0F).ok_or(FrameError::UnknownOpcode)?;
    let fin = first & 0x80 != 0;
    let short = second & 0x7F;
    if opcode.is_control() && (!fin || short > 125) {
        return Err(FrameError::BadControlFrame);
    }
    let (payload_len, mut header_len) = match short {
        // Each length in the shortest form that holds it (RFC 6455 §5.2).
        126 => match buf.get(2..4) {
            Some(b) => match u16::from_be_bytes([b[0], b[1]]) {
                ..126 => return Err(FrameError::BadLength),
                n => (u64::from(n), 4),
            },
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(b);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 || len <= u64::from(u16::MAX) {
                    return Err(FrameError::BadLength);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if second & 0x80 != 0 {
        let Some(b) = buf.get(header_len..header_len + 4) else {
            return Ok(None);
        };
        header_len += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// Appends one unmasked, unfragmented frame (as a server sends them).
///
/// ```
/// use edgepoll::ws::frame::{write_frame, Opcode};
/// let mut out = Vec::new();
/// write_frame(&mut out, Opcode::Text, b"hi");
/// assert_eq!(out, [0x81, 2, b'h', b'i']);
/// ```
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.reserve(frame_len(payload.len()));
    out.push(0x80 | opcode.bits());
    push_length(out, 0, payload.len());
    out.extend_from_slice(payload);
}

/// Appends one masked frame, as a client sends it. `first` is the frame's
/// first byte as it goes on the wire (FIN, reserved bits and opcode: `0x81`
/// is a whole text message, `0x01` the first fragment of one), so that
/// frames a server must refuse can be built too.
///
/// ```
/// use edgepoll::ws::frame::{read_header, write_masked_frame, Opcode};
/// let mut out = Vec::new();
/// write_masked_frame(&mut out, 0x81, [1, 2, 3, 4], b"hi");
/// let header = read_header(&out).unwrap().unwrap();
/// assert_eq!((header.opcode, header.mask), (Opcode::Text, Some([1, 2, 3, 4])));
/// assert_eq!(&out[header.header_len..], [b'h' ^ 1, b'i' ^ 2]);
/// ```
pub fn write_masked_frame(out: &mut Vec<u8>, first: u8, mask: [u8; 4], payload: &[u8]) {
    out.reserve(frame_len(payload.len()) + 4);
    out.push(first);
    push_length(out, 0x80, payload.len());
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// The second byte of a header (`mask_bit` and a 7-bit length) and the
/// extended length, if any.
fn push_length(out: &mut Vec<u8>, mask_bit: u8, len: usize) {
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// The encoded size of an unmasked frame with `payload_len` bytes.
///
/// ```
/// use edgepoll::ws::frame::{frame_len, write_frame, Opcode};
/// let mut out = Vec::new();
/// write_frame(&mut out, Opcode::Binary, &[0; 1000]);
/// assert_eq!(out.len(), frame_len(1000)); // 4 bytes of header
/// ```
pub fn frame_len(payload_len: usize) -> usize {
    payload_len
        + match payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        }
}

/// Unmasks (or masks) `payload` in place; `offset` is the position of its
/// first byte within the frame's payload.
///
/// ```
/// use edgepoll::ws::frame::apply_mask;
/// let mut payload = *b"hello";
/// apply_mask(&mut payload, [1, 2, 3, 4], 0);
/// assert_ne!(&payload, b"hello");
/// // Masking is its own inverse; a payload read in two pieces unmasks
/// // with each piece's offset.
/// let (first, rest) = payload.split_at_mut(2);
/// apply_mask(first, [1, 2, 3, 4], 0);
/// apply_mask(rest, [1, 2, 3, 4], 2);
/// assert_eq!(&payload, b"hello");
/// ```
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_in_all_three_forms_round_trip() {
        for len in [0, 125, 126, 65535, 65536, 200_000] {
            let payload = vec![7u8; len];
            let mut out = Vec::new();
            write_frame(&mut out, Opcode::Binary, &payload);
            assert_eq!(out.len(), frame_len(len));
            let header = read_header(&out).unwrap().unwrap();
            assert_eq!(header.payload_len, len as u64);
            assert_eq!(&out[header.header_len..], &payload[..]);
            for cut in 0..header.header_len {
                assert_eq!(read_header(&out[..cut]), Ok(None), "cut at {cut}");
            }
        }
    }

    #[test]
    fn bad_headers_are_protocol_errors() {
        assert_eq!(read_header(&[0xC1, 0x80]), Err(FrameError::ReservedBits));
        assert_eq!(read_header(&[0x83, 0x80]), Err(FrameError::UnknownOpcode));
        assert_eq!(read_header(&[0x09, 0x80]), Err(FrameError::BadControlFrame));
        assert_eq!(read_header(&[0x89, 0xFE]), Err(FrameError::BadControlFrame));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(read_header(&huge), Err(FrameError::BadLength));
        // 5 and 125 in the 16-bit form, 65535 in the 64-bit one.
        assert_eq!(read_header(&[0x82, 0xFE, 0, 5]), Err(FrameError::BadLength));
        assert_eq!(
            read_header(&[0x82, 0xFE, 0, 125]),
            Err(FrameError::BadLength)
        );
        let mut long = vec![0x82, 0xFF];
        long.extend_from_slice(&65535u64.to_be_bytes());
        assert_eq!(read_header(&long), Err(FrameError::BadLength));
        // The shortest forms of the smallest lengths each needs are fine.
        assert!(read_header(&[0x82, 0x7E, 0, 126]).is_ok_and(|h| h.is_some()));
        let mut least = vec![0x82, 0x7F];
        least.extend_from_slice(&65536u64.to_be_bytes());
        assert!(read_header(&least).is_ok_and(|h| h.is_some()));
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let mut data = *b"hello world";
        apply_mask(&mut data[..3], [1, 2, 3, 4], 0);
        apply_mask(&mut data[3..], [1, 2, 3, 4], 3);
        assert_ne!(&data, b"hello world");
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_eq!(&data, b"hello world");
    }
}
