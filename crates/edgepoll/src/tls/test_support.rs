//! What the record cipher's tests share.

/// Bytes from hex digits, whitespace ignored.
pub(super) fn hex(digits: &str) -> Vec<u8> {
    let digits: String = digits.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// A fixed pseudo-random byte sequence (xorshift64), so that a failure
/// replays.
pub(super) fn bytes_from(mut seed: u64) -> impl FnMut() -> u8 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    }
}
