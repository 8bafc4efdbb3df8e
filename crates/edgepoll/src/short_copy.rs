//! Copies of a few bytes (header names and values, status lines) done with
//! loads and stores instead of `memory.copy`.
//!
//! Why: a wasm32 build copies a slice of unknown length with `memory.copy`,
//! which WasmEdge's AOT code runs as a call into the runtime: 11 ns for 12
//! bytes on this project's machine against under 2 ns for two overlapping
//! 8-byte loads and stores (measured in a loop of twenty million), and a
//! proxied request made some thirty such copies. WasmEdge's interpreter
//! pays the other way (a dozen instructions against one), so only the copies
//! of a forwarder's path are short ones, not the echo server's ([`push_all`]
//! does either).

/// Appends `src` to `out`.
#[inline]
pub(crate) fn extend_short(out: &mut Vec<u8>, src: &[u8]) {
    out.reserve(src.len());
    let len = out.len();
    // SAFETY: `reserve` made room for `src.len()` bytes past the length;
    // `src` cannot overlap `out`, which is borrowed mutably.
    unsafe {
        copy_short(src, out.as_mut_ptr().add(len));
        out.set_len(len + src.len());
    }
}

/// Appends the parts to `out` with one capacity check: a response head or a
/// header field is written in a handful of pieces, and checking each costs
/// the interpreter more than the copy of a short one. `short`: parts of up
/// to 32 bytes are copied with loads and stores instead of `memory.copy`
/// (see the module notes); the echo server's responses say `false`.
#[inline(always)]
pub(crate) fn push_all<const N: usize>(out: &mut Vec<u8>, parts: [&[u8]; N], short: bool) {
    // Summed in 64 bits, which a handful of slice lengths cannot overflow
    // (a saturating sum in the word size costs a compare and a select per
    // part); more than fits makes `reserve` panic, as a `push` past memory
    // would, never wrap into a write past the room.
    let total: u64 = parts.iter().map(|part| part.len() as u64).sum();
    out.reserve(usize::try_from(total).unwrap_or(usize::MAX));
    let mut len = out.len();
    for part in parts {
        // SAFETY: `reserve` made room for `total` bytes past the length, and
        // the parts add up to `total`; source and destination are distinct
        // (`out` is borrowed mutably, the parts shared).
        unsafe {
            let to = out.as_mut_ptr().add(len);
            match short {
                true => copy_short(part, to),
                false => std::ptr::copy_nonoverlapping(part.as_ptr(), to, part.len()),
            }
        }
        len += part.len();
    }
    // SAFETY: the bytes up to `len` were written just above.
    unsafe { out.set_len(len) };
}

/// `src` as a new `Vec`, exactly as long.
#[inline]
pub(crate) fn to_vec_short(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    extend_short(&mut out, src);
    out
}

/// `text` as a new `String`, exactly as long.
#[inline]
pub(crate) fn string_short(text: &str) -> String {
    let bytes = to_vec_short(text.as_bytes());
    // SAFETY: the bytes are a copy of a `str`'s, so UTF-8.
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// Copies `src` to `dst`: up to 32 bytes with two loads and two stores of
/// the widest size that fits (overlapping where the length is not a power
/// of two; a wasm32 build splits each 16-byte one in two), more with
/// `memory.copy`.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    match n {
        0 => {}
        1..=3 => {
            // First, middle and last byte: all of one, two or three.
            *dst = *s;
            *dst.add(n / 2) = *s.add(n / 2);
            *dst.add(n - 1) = *s.add(n - 1);
        }
        4..=7 => copy_two::<u32>(s, dst, n),
        8..=16 => copy_two::<u64>(s, dst, n),
        17..=32 => copy_two::<u128>(s, dst, n),
        _ => std::ptr::copy_nonoverlapping(s, dst, n),
    }
}

/// Copies `n` bytes, `size_of::<T>() <= n <= 2 * size_of::<T>()`, as two
/// `T`: one from the start, one ending at the end (overlapping the first
/// unless `n` is twice the size).
///
/// # Safety
/// As [`copy_short`], for `n` bytes of `s` and of `dst`.
#[inline(always)]
unsafe fn copy_two<T: Copy>(s: *const u8, dst: *mut u8, n: usize) {
    let w = std::mem::size_of::<T>();
    let (a, b) = (
        s.cast::<T>().read_unaligned(),
        s.add(n - w).cast::<T>().read_unaligned(),
    );
    dst.cast::<T>().write_unaligned(a);
    dst.add(n - w).cast::<T>().write_unaligned(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_copied_exactly_and_nothing_beyond_it() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let mut dst = vec![0xEEu8; 48];
            // SAFETY: 48 bytes of room for at most 40.
            unsafe { copy_short(&src[..n], dst.as_mut_ptr().add(3)) };
            assert_eq!(&dst[3..3 + n], &src[..n], "length {n}");
            assert!(dst[..3].iter().all(|&b| b == 0xEE), "before, length {n}");
            assert!(dst[3 + n..].iter().all(|&b| b == 0xEE), "after, length {n}");
        }
    }

    #[test]
    fn extend_and_to_vec_append_and_copy() {
        let mut out = b"ab".to_vec();
        extend_short(&mut out, b"cdef");
        extend_short(&mut out, b"");
        extend_short(&mut out, &[b'g'; 30]);
        assert_eq!(out.len(), 36);
        assert!(out.starts_with(b"abcdefg") && out.ends_with(b"ggg"));
        for n in 0..20 {
            let v: Vec<u8> = (0..n).collect();
            assert_eq!(to_vec_short(&v), v);
        }
        for text in ["", "é", "GET", "127.0.0.1", "/a/longer/path?with=query"] {
            assert_eq!(string_short(text), text);
        }
    }
}
