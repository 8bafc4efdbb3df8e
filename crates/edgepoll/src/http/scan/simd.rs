//! The scans sixteen bytes at a time with WebAssembly SIMD, for builds with
//! `-C target-feature=+simd128` (WasmEdge and wasmtime both run it). Each
//! looks at whole 16-byte blocks only and says where the caller's
//! eight-byte and byte-by-byte code should go on.

use core::arch::wasm32::*;
use std::ops::Range;

/// Sixteen bytes starting at `at`, which must leave sixteen.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> v128 {
    let block = &bytes[at..at + 16];
    // SAFETY: `block` is sixteen readable bytes; v128.load needs no alignment.
    unsafe { v128_load(block.as_ptr().cast()) }
}

/// Bytes read as whole 16-byte blocks: one comparison a block, where a
/// loop's test and a slice's two checks made three (the interpreter runs
/// each).
struct Blocks<'a> {
    bytes: &'a [u8],
    /// Where the last whole block starts: `bytes.len() - 16`.
    last: usize,
}

impl<'a> Blocks<'a> {
    /// `None` if `bytes` holds no whole block.
    #[inline(always)]
    fn new(bytes: &'a [u8]) -> Option<Self> {
        let last = bytes.len().checked_sub(16)?;
        Some(Blocks { bytes, last })
    }

    /// The sixteen bytes at `at`, if they are all there.
    #[inline(always)]
    fn at(&self, at: usize) -> Option<v128> {
        if at > self.last {
            return None;
        }
        // SAFETY: `at <= last == bytes.len() - 16` (as `new` set it, and
        // nothing changes it) leaves sixteen readable bytes at `at`;
        // v128.load needs no alignment.
        Some(unsafe { v128_load(self.bytes.as_ptr().add(at).cast()) })
    }
}

/// The first byte at or after `at` that `stop` flags (`Ok`), or where the
/// blocks ran out (`Err`).
#[inline(always)]
fn first_flagged(bytes: &[u8], mut at: usize, stop: impl Fn(v128) -> v128) -> Result<usize, usize> {
    let Some(blocks) = Blocks::new(bytes) else {
        return Err(at);
    };
    while let Some(v) = blocks.at(at) {
        let flagged = u8x16_bitmask(stop(v));
        if flagged != 0 {
            return Ok(at + flagged.trailing_zeros() as usize);
        }
        at += 16;
    }
    Err(at)
}

pub(super) fn find_byte(bytes: &[u8], at: usize, byte: u8) -> Result<usize, usize> {
    let wanted = u8x16_splat(byte);
    first_flagged(bytes, at, |v| u8x16_eq(v, wanted))
}

/// The first byte that is not a token character. A byte is one when the
/// bit its high nibble selects is set in the entry its low nibble selects
/// (two table lookups per sixteen bytes).
pub(super) fn skip_token(bytes: &[u8], at: usize) -> Result<usize, usize> {
    let by_low = nibble_table(super::TOKEN_BY_LOW_NIBBLE);
    let by_high = nibble_table(super::HIGH_NIBBLE_BIT);
    let low_nibble = u8x16_splat(0x0f);
    let none = u8x16_splat(0);
    first_flagged(bytes, at, |v| {
        let low = u8x16_swizzle(by_low, v128_and(v, low_nibble));
        let high = u8x16_swizzle(by_high, u8x16_shr(v, 4));
        u8x16_eq(v128_and(low, high), none)
    })
}

/// Whether `bytes` (8 to 16 long) is all token characters: the first eight
/// and the last eight as one block, tested as [`skip_token`] tests one
/// (some fifteen instructions where the eight-byte words took ninety, on
/// every field name a response is written with).
#[inline(always)]
pub(super) fn is_short_token(bytes: &[u8]) -> bool {
    let len = bytes.len();
    debug_assert!((8..=16).contains(&len));
    let v = u64x2(super::word(bytes, 0), super::word(bytes, len - 8));
    let low = u8x16_swizzle(
        nibble_table(super::TOKEN_BY_LOW_NIBBLE),
        v128_and(v, u8x16_splat(0x0f)),
    );
    let high = u8x16_swizzle(nibble_table(super::HIGH_NIBBLE_BIT), u8x16_shr(v, 4));
    u8x16_all_true(v128_and(low, high))
}

/// The first byte that cannot be in a request target (a control byte,
/// space or DEL), and whether a byte ≥ 0x80 or a `#` may have come before
/// it (see `scan::skip_target_bytes`).
pub(super) fn skip_target(bytes: &[u8], mut at: usize) -> (Result<usize, usize>, bool) {
    let space = u8x16_splat(b' ');
    let del = u8x16_splat(0x7f);
    let hash = u8x16_splat(b'#');
    let mut high = 0u16;
    let Some(blocks) = Blocks::new(bytes) else {
        return (Err(at), false);
    };
    while let Some(v) = blocks.at(at) {
        let stop = u8x16_bitmask(v128_or(u8x16_le(v, space), u8x16_eq(v, del)));
        high |= u8x16_bitmask(v128_or(v, u8x16_eq(v, hash)));
        if stop != 0 {
            return (Ok(at + stop.trailing_zeros() as usize), high != 0);
        }
        at += 16;
    }
    (Err(at), high != 0)
}

/// The first control byte (tab included) or DEL.
pub(super) fn skip_field_value(bytes: &[u8], at: usize) -> Result<usize, usize> {
    let below_space = u8x16_splat(b' ');
    let del = u8x16_splat(0x7f);
    first_flagged(bytes, at, |v| {
        v128_or(u8x16_lt(v, below_space), u8x16_eq(v, del))
    })
}

/// Whether `bytes` (at least eight) holds a control byte other than tab,
/// or DEL (see `scan::has_control_byte`). The last block overlaps the one
/// before instead of leaving a tail; under sixteen bytes, the block is the
/// first eight and the last eight.
pub(super) fn has_control_byte(bytes: &[u8]) -> bool {
    let (space, tab, del) = (u8x16_splat(0x20), u8x16_splat(b'\t'), u8x16_splat(0x7f));
    // Below 0x20 or DEL: one test rules them out for nearly every block,
    // and only a block with such a byte (a tab, say) is looked at exactly.
    let flagged = |v: v128| {
        let suspect = v128_or(u8x16_lt(v, space), u8x16_eq(v, del));
        v128_any_true(suspect) && v128_any_true(v128_andnot(suspect, u8x16_eq(v, tab)))
    };
    let len = bytes.len();
    if len < 16 {
        let ends = u64x2(super::word(bytes, 0), super::word(bytes, len - 8));
        return flagged(ends);
    }
    let mut at = 0;
    while at + 16 < len {
        if flagged(load(bytes, at)) {
            return true;
        }
        at += 16;
    }
    flagged(load(bytes, len - 16))
}

/// Bit masks over the bytes of a short Host value, bit 0 for its first byte.
pub(crate) struct HostMasks {
    /// One bit per byte of the value.
    pub(crate) all: u32,
    /// Registered-name bytes and colons.
    pub(crate) host: u32,
    pub(crate) colon: u32,
    pub(crate) digit: u32,
}

/// The masks of `buf[value]`, if it is at most sixteen bytes long and `buf`
/// holds a block of sixteen around it.
#[inline]
pub(super) fn short_host_masks(buf: &[u8], value: Range<usize>) -> Option<HostMasks> {
    let len = value.end.checked_sub(value.start)?;
    if len > 16 || buf.len() < 16 || value.end > buf.len() {
        return None;
    }
    // The block starts at the value, or ends at the buffer's end.
    let at = value.start.min(buf.len() - 16);
    let shift = value.start - at;
    let v = load(buf, at);
    let all = (1u32 << len) - 1;
    let bits = |flags: v128| (u32::from(u8x16_bitmask(flags)) >> shift) & all;
    let by_low = nibble_table(super::HOST_BY_LOW_NIBBLE);
    let by_high = nibble_table(super::HIGH_NIBBLE_BIT);
    let low = u8x16_swizzle(by_low, v128_and(v, u8x16_splat(0x0f)));
    let high = u8x16_swizzle(by_high, u8x16_shr(v, 4));
    let digit = v128_and(
        u8x16_ge(v, u8x16_splat(b'0')),
        u8x16_le(v, u8x16_splat(b'9')),
    );
    Some(HostMasks {
        all,
        host: bits(v128_not(u8x16_eq(v128_and(low, high), u8x16_splat(0)))),
        colon: bits(u8x16_eq(v, u8x16_splat(b':'))),
        digit: bits(digit),
    })
}

#[inline(always)]
fn nibble_table(t: [u8; 16]) -> v128 {
    u8x16(
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
        t[14], t[15],
    )
}
