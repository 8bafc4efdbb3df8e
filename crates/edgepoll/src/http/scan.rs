//! Byte scans on the hot path, written for WasmEdge's interpreter.
//!
//! The interpreter pays for every Wasm instruction, and a byte-at-a-time loop
//! costs several per byte. With WebAssembly SIMD (`-C
//! target-feature=+simd128`, as this repository builds) these look at sixteen
//! bytes per step ([`simd`]); otherwise, and for what is left after the last
//! whole block, eight at a time with 64-bit arithmetic ("SWAR": SIMD within a
//! register), which every Wasm runtime has; then byte by byte. memchr's
//! portable fallback works in 32-bit words on wasm32 and costs more here.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

/// Token characters (RFC 9110 §5.6.2): what methods and field names are made of.
pub(crate) const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// For each low nibble, the high nibbles (as bits) that make a byte of the
/// ASCII set `set` with it; only high nibbles below 8 (ASCII) have a bit.
/// With [`HIGH_NIBBLE_BIT`], two table lookups tell whether a byte is in the
/// set, sixteen bytes at a time ([`simd`]).
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
const fn by_low_nibble(set: &[bool; 256]) -> [u8; 16] {
    let mut table = [0u8; 16];
    let mut b = 0;
    while b < 128 {
        if set[b] {
            table[b & 0x0f] |= 1 << (b >> 4);
        }
        b += 1;
    }
    table
}

#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
const TOKEN_BY_LOW_NIBBLE: [u8; 16] = by_low_nibble(&TCHAR);

/// The bit each high nibble stands for in [`TOKEN_BY_LOW_NIBBLE`].
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
const HIGH_NIBBLE_BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0];

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether `test` holds at the offset of every eight-byte word of a value
/// `len` (at least eight) bytes long, the last word ending at its end and
/// overlapping the one before (a byte tested twice is harmless): short
/// values a word at a time, without a byte-by-byte tail.
#[inline(always)]
fn every_word(len: usize, mut test: impl FnMut(usize) -> bool) -> bool {
    let mut at = 0;
    loop {
        if !test(at) {
            return false;
        }
        if at + 8 == len {
            return true;
        }
        at = (at + 8).min(len - 8);
    }
}

/// Eight bytes starting at `at` (which must leave eight), little-endian.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Four bytes starting at `at` (which must leave four), little-endian.
#[inline(always)]
fn half_word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// The high bit of each byte of `w` that is zero (and maybe of the bytes
/// above such a byte, which callers do not look at past the first).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The index of the first `\n` in `bytes`.
#[inline]
pub(crate) fn find_lf(bytes: &[u8]) -> Option<usize> {
    find_byte(bytes, b'\n')
}

/// The index of the first `byte` in `bytes`, sixteen or eight bytes at a
/// time (the standard library's `memchr` costs the interpreter some 120
/// instructions for a short slice, this a few dozen).
#[inline(always)]
pub(crate) fn find_byte(bytes: &[u8], byte: u8) -> Option<usize> {
    let wanted = LO * u64::from(byte);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let mut at = match simd::find_byte(bytes, 0, byte) {
        Ok(found) => return Some(found),
        Err(rest) => rest,
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let found = zero_bytes(word(bytes, at) ^ wanted);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == byte).map(|p| at + p)
}

/// Whether `bytes` holds a byte no field value may (RFC 9110 §5.5): a
/// control byte other than tab, or DEL. Exactly what the head parser
/// refuses in a value ([`skip_field_value_bytes`], tab let through), so
/// that what the client and the server write reads back as written; CR, LF
/// and NUL among them would end a field or a head early (CWE-113). Fields
/// are short, so the tail is looked at as one more word that overlaps the
/// one before, not byte by byte.
#[inline(always)]
pub(crate) fn has_control_byte(bytes: &[u8]) -> bool {
    const LOW7: u64 = LO * 0x7f;
    // One test rules out nearly every word: with the high bits dropped and
    // one added, a control byte or DEL (and a byte from 0x80 to 0x9F, or
    // 0xFF) falls below 0x21, and only such a word is looked at exactly.
    let flagged = |w: u64| {
        bytes_below(((w & LOW7) + LO) & LOW7, 0x21) != 0
            && w.to_le_bytes().iter().any(|&b| is_control(b))
    };
    let len = bytes.len();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if len >= 8 {
        return simd::has_control_byte(bytes);
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    if len >= 8 {
        return !every_word(len, |at| !flagged(word(bytes, at)));
    }
    if len >= 4 {
        return flagged(half_word(bytes, 0) | HIGH_HALF)
            || flagged(half_word(bytes, len - 4) | HIGH_HALF);
    }
    bytes.iter().any(|&b| is_control(b))
}

/// A byte no field value may hold: see [`has_control_byte`].
#[inline(always)]
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Fills the upper four bytes of a [`half_word`] with bytes no search flags.
const HIGH_HALF: u64 = 0x2020_2020_0000_0000;

/// Fills the upper four bytes of a [`half_word`] with letters (`a`), which
/// [`is_reg_name`]'s word test passes.
const HIGH_HALF_PLAIN: u64 = 0x6161_6161_0000_0000;

/// The high bit of each byte of `w` below `n` (`n` ≤ 0x80), exact for the
/// lowest such byte (the borrow only disturbs bytes above it).
#[inline(always)]
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO * n as u64) & !w & HI
}

/// The index of the byte whose high bit is the lowest set bit of `found`.
#[inline(always)]
fn first(found: u64) -> usize {
    (found.trailing_zeros() / 8) as usize
}

/// The high bit of each byte of `w` (all below 0x80) within `lo..=hi`. Exact
/// for every byte: with the high bits clear, the sums never carry over.
#[inline(always)]
fn bytes_within(w: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = w + LO * u64::from(0x80 - lo);
    let above_hi = w + LO * u64::from(0x7f - hi);
    at_least_lo & !above_hi & HI
}

/// The end of the run of token characters starting at `at`.
#[inline]
pub(crate) fn skip_token_bytes(bytes: &[u8], at: usize) -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let at = match simd::skip_token(bytes, at) {
        Ok(stop) => return stop,
        Err(rest) => rest,
    };
    let mut at = skip_common_token_bytes(bytes, at);
    while let Some(&b) = bytes.get(at) {
        if !TCHAR[b as usize] {
            break;
        }
        at += 1;
    }
    at
}

/// The end of the run of `A-Z a-z 0-9 -` bytes starting at `at`, eight at a
/// time: what most methods and field names are made of. Other token
/// characters are left to the caller's byte-by-byte check.
fn skip_common_token_bytes(bytes: &[u8], mut at: usize) -> usize {
    let uncommon = |w: u64| outside_alnum_and(w, b'-', b'-');
    let (start, len) = (at, bytes.len());
    while at + 8 <= len {
        let other = uncommon(word(bytes, at));
        if other != 0 {
            return at + first(other);
        }
        at += 8;
    }
    // The last few bytes as the word that ends with them, overlapping bytes
    // already passed (which cannot be flagged), not one by one.
    if at < len && len >= start + 8 {
        let other = uncommon(word(bytes, len - 8));
        return match other {
            0 => len,
            _ => len - 8 + first(other),
        };
    }
    at
}

/// The high bit of each byte of `w` that is not an ASCII letter or digit
/// or within `lo..=hi` (ASCII punctuation).
#[inline(always)]
fn outside_alnum_and(w: u64, lo: u8, hi: u8) -> u64 {
    const CASE: u64 = LO * 0x20;
    let low = w & !HI;
    // Setting bit 0x20 maps only the uppercase letters onto the lowercase.
    let inside = bytes_within(low | CASE, b'a', b'z')
        | bytes_within(low, b'0', b'9')
        | bytes_within(low, lo, hi);
    HI & !(inside & !w)
}

/// The end of the run of request-target bytes (`!`..=`~` and 0x80..=0xFF)
/// starting at `at`, and whether a byte ≥ 0x80 or a `#` may be among them
/// (then the caller looks: for UTF-8, for a fragment). Noted in the same
/// pass, so that a plain target is not read again for either.
#[inline]
pub(crate) fn skip_target_bytes(bytes: &[u8], at: usize) -> (usize, bool) {
    const DEL: u64 = LO * 0x7f;
    const HASH: u64 = LO * b'#' as u64;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let (mut at, mut high) = match simd::skip_target(bytes, at) {
        (Ok(stop), high) => return (stop, high),
        (Err(rest), high) => (rest, if high { HI } else { 0 }),
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let (mut at, mut high) = (at, 0);
    while at + 8 <= bytes.len() {
        let w = word(bytes, at);
        let stop = bytes_below(w, 0x21) | zero_bytes(w ^ DEL);
        high |= w | zero_bytes(w ^ HASH);
        if stop != 0 {
            return (at + first(stop), high & HI != 0);
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b <= b' ' || b == 0x7f {
            break;
        }
        high |= u64::from(b) | if b == b'#' { HI } else { 0 };
        at += 1;
    }
    (at, high & HI != 0)
}

/// The end of the run of field-value bytes starting at `at`: stops at any
/// control byte (tab included, which the caller lets through) and DEL.
#[inline]
pub(crate) fn skip_field_value_bytes(bytes: &[u8], at: usize) -> usize {
    const DEL: u64 = LO * 0x7f;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let mut at = match simd::skip_field_value(bytes, at) {
        Ok(stop) => return stop,
        Err(rest) => rest,
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let mut at = at;
    while at + 8 <= bytes.len() {
        let w = word(bytes, at);
        let stop = bytes_below(w, 0x20) | zero_bytes(w ^ DEL);
        if stop != 0 {
            return at + first(stop);
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b < b' ' || b == 0x7f {
            break;
        }
        at += 1;
    }
    at
}

/// Whether `a` and `b` are equal ignoring ASCII case, eight bytes at a time
/// (the standard library's byte-by-byte version costs the interpreter about
/// forty instructions a byte).
#[inline]
pub(crate) fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let len = a.len();
    if len < 8 {
        if len < 4 {
            return a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y));
        }
        // Two four-byte words, overlapping when shorter than eight.
        return words_eq_ignore_case(half_word(a, 0), half_word(b, 0))
            && words_eq_ignore_case(half_word(a, len - 4), half_word(b, len - 4));
    }
    every_word(len, |at| words_eq_ignore_case(word(a, at), word(b, at)))
}

/// Whether `a` and `b` hold the same bytes, a word or two at a time (the
/// last overlapping the one before): for a literal `b` the compiler folds
/// its words to constants; for short runtime values, such as host names,
/// `==` would call a `memcmp` that goes byte by byte.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    match len {
        0..=3 => a == b,
        4..=8 => {
            half_word(a, 0) == half_word(b, 0) && half_word(a, len - 4) == half_word(b, len - 4)
        }
        _ => every_word(len, |at| word(a, at) == word(b, at)),
    }
}

/// Whether `bytes` is a token (RFC 9110 §5.6.2): one or more token
/// characters, as a method or a field name must be. One SIMD block for 8 to
/// 16 bytes, where it is built with SIMD; otherwise eight bytes at a time (a
/// byte at a time cost a forwarder some 25 instructions per byte of its
/// field names).
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    let len = bytes.len();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if (8..=16).contains(&len) {
        return simd::is_short_token(bytes);
    }
    // Most field names (`Content-Type`) are 8 to 16 letters, digits and
    // hyphens: two overlapping words tell, without the loop.
    let common = |at| outside_alnum_and(word(bytes, at), b'-', b'-') == 0;
    if (8..=16).contains(&len) && common(0) && common(len - 8) {
        return true;
    }
    len != 0 && skip_token_bytes(bytes, 0) == len
}

/// Whether a token (token characters only, such as a field name the head
/// parser admitted) is `lower` (lowercase letters, digits and `-` only),
/// ignoring ASCII case. Setting bit 0x20 lowercases a letter and leaves digits
/// and `-` alone; the only byte it maps onto one of those besides themselves
/// and the uppercase letters is CR (onto `-`), which no token holds. So one
/// OR and one compare per word suffice, with `lower` folded to constants.
#[inline(always)]
pub(crate) fn token_is(token: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = LO * 0x20;
    let len = token.len();
    if len != lower.len() {
        return false;
    }
    let fold = |w: u64| w | CASE;
    match len {
        0..=3 => token.iter().zip(lower).all(|(&t, &l)| t | 0x20 == l),
        4..=8 => {
            fold(half_word(token, 0)) == fold(half_word(lower, 0))
                && fold(half_word(token, len - 4)) == fold(half_word(lower, len - 4))
        }
        _ => every_word(len, |at| fold(word(token, at)) == fold(word(lower, at))),
    }
}

/// Eight bytes each, equal ignoring ASCII case: they may differ only in bit
/// 0x20, and only where the byte is an ASCII letter.
#[inline(always)]
fn words_eq_ignore_case(a: u64, b: u64) -> bool {
    const CASE: u64 = LO * 0x20;
    let diff = a ^ b;
    if diff & !CASE != 0 {
        return false;
    }
    let letters = bytes_within((a & !HI) | CASE, b'a', b'z') & !a;
    (diff << 2) & HI & !letters == 0
}

/// `bytes` as text if it is ASCII, without the cost of a UTF-8 decoder
/// (methods and targets the head parser admitted are nearly always ASCII).
#[inline]
pub(crate) fn ascii_str(bytes: &[u8]) -> Option<&str> {
    // Field names, the usual bytes here, are short: a word or two (which
    // may overlap) OR-ed together tell, where `is_ascii` walks up to an
    // aligned start first.
    let len = bytes.len();
    let ascii = match len {
        0..=3 => bytes.iter().all(u8::is_ascii),
        4..=7 => (half_word(bytes, 0) | half_word(bytes, len - 4)) & HI == 0,
        8..=16 => (word(bytes, 0) | word(bytes, len - 8)) & HI == 0,
        _ => bytes.is_ascii(),
    };
    if ascii {
        // SAFETY: ASCII, checked just above, is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

/// Bytes a registered name may hold besides `%`-escapes (RFC 3986:
/// unreserved and sub-delims).
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// What a short Host value holds when it is a plain name or IPv4 address
/// with an optional port: registered-name bytes (no `%`-escape) and `:`.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
const HOST_BY_LOW_NIBBLE: [u8; 16] = {
    let mut set = REG_NAME;
    set[b':' as usize] = true;
    by_low_nibble(&set)
};

/// Whether the Host value `buf[value]` is valid, when a quick look can
/// tell: a value of at most sixteen bytes of name bytes and colons (nearly
/// every Host) is decided with one SIMD block; `None` leaves the value to the
/// exact check. `buf` may hold bytes beyond the value: the block is read
/// from the buffer, not the value alone.
#[inline]
pub(crate) fn short_host_is_valid(buf: &[u8], value: std::ops::Range<usize>) -> Option<bool> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let masks = simd::short_host_masks(buf, value)?;
        // Any other byte (`%`, `[`, or one that is never valid): exact check.
        if masks.host != masks.all {
            return None;
        }
        let colon = masks.colon;
        if colon == 0 {
            return Some(true);
        }
        // Two colons put one in the name part; one first leaves no name.
        if colon & (colon - 1) != 0 || colon == 1 {
            return Some(false);
        }
        let port = masks.all & !(colon | (colon - 1));
        Some(masks.digit & port == port)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let _ = (buf, value);
        None
    }
}

/// Whether `host` is a registered name or IPv4 address (RFC 3986 `reg-name`,
/// `%HH` escapes included).
#[inline]
pub(crate) fn is_reg_name(host: &[u8]) -> bool {
    // Most hosts are letters, digits, dots and hyphens only (IPv4 addresses
    // and DNS names): a word or two tell (the last overlapping the one
    // before), where the loop below costs some ten instructions a byte.
    let plain = |w: u64| outside_alnum_and(w, b'-', b'.') == 0;
    let len = host.len();
    let all_plain = match len {
        0..=3 => false,
        4..=7 => {
            plain(half_word(host, 0) | HIGH_HALF_PLAIN)
                && plain(half_word(host, len - 4) | HIGH_HALF_PLAIN)
        }
        _ => every_word(len, |at| plain(word(host, at))),
    };
    if all_plain {
        return true;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if REG_NAME[b as usize] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_lf_agrees_with_a_plain_search_at_every_position_and_length() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'x'; len];
                if at < len {
                    bytes[at] = b'\n';
                }
                let expected = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&bytes), expected, "len {len}, LF at {at}");
            }
        }
        // Bytes that differ from LF by one bit, and high bytes, are not LF.
        assert_eq!(find_lf(b"\x0b\x0e\x8a\xff\x00\x09\x0b\x0c\x0a"), Some(8));
    }

    #[test]
    fn find_byte_finds_the_first_of_any_byte_at_every_position_and_length() {
        for wanted in [0u8, b':', 0x80, 0xff] {
            for len in 0..40 {
                for at in 0..=len {
                    // A second one after the first: the first is reported.
                    let mut bytes: Vec<u8> = (0..len).map(|i| (i as u8) ^ wanted ^ 0x55).collect();
                    bytes
                        .iter_mut()
                        .for_each(|b| *b = if *b == wanted { !wanted } else { *b });
                    for i in [at, at + 3] {
                        if i < len {
                            bytes[i] = wanted;
                        }
                    }
                    let expected = bytes.iter().position(|&b| b == wanted);
                    assert_eq!(
                        find_byte(&bytes, wanted),
                        expected,
                        "{wanted:#x}, len {len}, at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_bytes_is_equality_for_every_length_and_every_differing_byte() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(same_bytes(&a, &a.clone()), "len {len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "len {len}, differing at {at}");
            }
            assert!(!same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }

    #[test]
    fn ascii_text_is_told_from_any_high_byte_at_any_position_and_length() {
        for len in 0..40 {
            assert_eq!(ascii_str(&vec![b'a'; len]), Some("a".repeat(len).as_str()));
            for at in 0..len {
                for high in [0x80, 0xc3, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = high;
                    assert_eq!(ascii_str(&bytes), None, "{high:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn a_token_is_token_characters_only_whatever_byte_spoils_it_and_where() {
        assert!(!is_token(b""));
        assert!(is_token(b"X-Forwarded-For") && is_token(b"!#$%&'*+-.^_`|~09azAZ"));
        for bad in 0..=255u8 {
            for len in 1..40 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = bad;
                    assert_eq!(
                        is_token(&bytes),
                        TCHAR[bad as usize],
                        "{bad} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn control_bytes_are_found_anywhere_and_nothing_else() {
        // Every byte value at every position of values shorter and longer
        // than a word and a SIMD block: flagged exactly when it is a
        // control byte other than tab, or DEL.
        for b in 0..=255u8 {
            for len in 1..40 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let expected = (b < 0x20 && b != b'\t') || b == 0x7f;
                    assert_eq!(has_control_byte(&bytes), expected, "{b} at {at} of {len}");
                }
            }
        }
        // Nothing flagged at any length, with tabs and obs-text about.
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| [b'\t', 0x80, 0x9f, 0xff, b' ', b'~'][i % 6])
                .collect();
            assert!(!has_control_byte(&bytes), "clean, {len} bytes");
        }
        // Agrees with the head parser's rule for a value, byte for byte.
        for b in 0..=255u8 {
            let value = [b'x', b, b'y'];
            let parser_takes = skip_field_value_bytes(&value, 0) == 3 || b == b'\t';
            assert_eq!(!has_control_byte(&value), parser_takes, "{b}");
        }
    }

    /// Each scan against its byte-by-byte definition, with every byte value
    /// at every position of buffers shorter and longer than a word and a
    /// SIMD block, starting at an offset or not.
    #[test]
    fn scans_agree_with_their_definitions_for_every_byte() {
        type Scan = fn(&[u8], usize) -> usize;
        type Passes = fn(u8) -> bool;
        // (scan, the bytes it passes over, a byte it passes, whether it may
        // stop early where less than a word is left)
        let scans: [(Scan, Passes, u8, bool); 4] = [
            (
                skip_common_token_bytes,
                |b| b.is_ascii_alphanumeric() || b == b'-',
                b'x',
                true,
            ),
            (skip_token_bytes, |b| TCHAR[b as usize], b'x', false),
            (
                |bytes, at| skip_target_bytes(bytes, at).0,
                |b| b > b' ' && b != 0x7f,
                b'/',
                false,
            ),
            (
                skip_field_value_bytes,
                |b| b >= b' ' && b != 0x7f,
                b'v',
                false,
            ),
        ];
        for (scan, passes, filler, partial) in scans {
            for len in [3, 8, 9, 15, 16, 17, 24, 32, 33, 40] {
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut bytes = vec![filler; len];
                        bytes[at] = b;
                        for start in [0, 1, 5].into_iter().filter(|&s| s <= len) {
                            let end = scan(&bytes, start);
                            let stop = (start..len).find(|&i| !passes(bytes[i])).unwrap_or(len);
                            let early_ok = partial && end < stop && len - end < 8;
                            assert!(end == stop || early_ok, "byte {b:#x} at {at} of {len}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn target_scan_reports_bytes_above_0x7f_and_hashes() {
        assert_eq!(skip_target_bytes(b"/abc/def/ghi HTTP", 0), (12, false));
        for target in [
            "/#",
            "/abcdefg#",
            "/abcdefgh#",
            "/0123456789abcdef0123456789#",
        ] {
            let line = format!("{target} HTTP/1.1");
            assert_eq!(skip_target_bytes(line.as_bytes(), 0), (target.len(), true));
            assert_eq!(
                skip_target_bytes(target.as_bytes(), 0),
                (target.len(), true)
            );
        }
        let plain = b"/0123456789abcdef0123456789abcdefghij?a=b&c=%23";
        assert_eq!(skip_target_bytes(plain, 0), (plain.len(), false));
        assert_eq!(
            skip_target_bytes(b"/abc/d\xc3\xa9f/ghi HTTP", 0),
            (13, true)
        );
        assert_eq!(skip_target_bytes(b"/\xff", 0), (2, true));
        assert_eq!(skip_target_bytes(b"/a b\xff", 0), (2, false));
        let long = b"/0123456789abcdef0123456789abcdef\xc3\xa9 HTTP/1.1";
        assert_eq!(skip_target_bytes(long, 0), (35, true));
        assert_eq!(skip_target_bytes(&long[..33], 0), (33, false));
    }

    #[test]
    fn tokens_compare_with_lowercase_names_like_the_standard_library() {
        let names: [&[u8]; 6] = [
            b"te",
            b"host",
            b"expect",
            b"connection",
            b"content-length",
            b"transfer-encoding",
        ];
        for name in names {
            for at in 0..name.len() {
                for b in (0..=255u8).filter(|&b| TCHAR[b as usize]) {
                    let mut token = name.to_vec();
                    token[at] = b;
                    assert_eq!(
                        token_is(&token, name),
                        token.eq_ignore_ascii_case(name),
                        "{:?}",
                        String::from_utf8_lossy(&token)
                    );
                }
            }
            assert!(token_is(&name.to_ascii_uppercase(), name));
            assert!(!token_is(&name[1..], name));
        }
    }

    #[test]
    fn case_blind_comparison_matches_the_standard_library_for_every_pair() {
        // Every pair of bytes at every position of short and long inputs.
        // (The inputs made once per position: made for each pair, they
        // took half a minute under WasmEdge's interpreter.)
        for len in [1, 3, 4, 6, 8, 12, 16] {
            for at in 0..len {
                let (mut a, mut b) = (vec![b'k'; len], vec![b'K'; len]);
                for x in 0..=255u8 {
                    for y in 0..=255u8 {
                        a[at] = x;
                        b[at] = y;
                        assert_eq!(
                            eq_ignore_ascii_case(&a, &b),
                            a.eq_ignore_ascii_case(&b),
                            "{x:#x} and {y:#x} at {at} of {len}"
                        );
                    }
                }
            }
        }
        assert!(eq_ignore_ascii_case(b"Content-Type", b"content-type"));
        assert!(!eq_ignore_ascii_case(b"Content-Type", b"content-typ"));
    }

    #[test]
    fn registered_names_and_escapes() {
        for good in [
            &b""[..],
            b"x",
            b"127.0.0.1",
            b"a-b.c_d~e",
            b"x%41y",
            b"!$&'()*+,;=",
        ] {
            assert!(is_reg_name(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"a@b",
            b"a%4",
            b"a%zz",
            b"[::1]",
            b"a:b",
            b"\xff",
        ] {
            assert!(!is_reg_name(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_word_test_for_plain_hosts_agrees_with_the_byte_rules_for_every_byte() {
        // The rules byte by byte, as RFC 3986 gives them.
        fn reference(host: &[u8]) -> bool {
            let mut i = 0;
            while i < host.len() {
                match host[i] {
                    b'%' if host
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        i += 3
                    }
                    b if REG_NAME[b as usize] && b != b'%' => i += 1,
                    _ => return false,
                }
            }
            true
        }
        for len in 1..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut host: Vec<u8> = (0..len).map(|i| b"a0.-Z9"[i % 6]).collect();
                    host[at] = b;
                    assert_eq!(is_reg_name(&host), reference(&host), "{host:?}");
                }
            }
        }
    }
}
