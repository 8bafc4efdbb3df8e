//! UTF-8 checked as fragments arrive, so a bad text message fails at the
//! fragment that breaks it, not after the whole message was buffered.

/// How far `bytes` is valid UTF-8, not counting a code point cut off at the
/// end (it may continue in the next fragment); `None` if it is invalid.
pub(crate) fn valid_prefix(bytes: &[u8]) -> Option<usize> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Some(bytes.len()),
        Err(e) if e.error_len().is_none() => Some(e.valid_up_to()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_prefix;

    #[test]
    fn a_cut_code_point_is_pending_and_a_bad_one_is_invalid() {
        let euro = "€".as_bytes();
        assert_eq!(valid_prefix(b"abc"), Some(3));
        assert_eq!(valid_prefix(&[b'a', euro[0], euro[1]]), Some(1));
        assert_eq!(valid_prefix(&[b'a', 0xFF]), None);
        assert_eq!(valid_prefix(&[0xED, 0xA0, 0x80]), None, "a surrogate");
    }
}
