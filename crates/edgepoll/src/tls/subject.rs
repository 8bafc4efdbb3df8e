//! The subject of an X.509 certificate, read from its DER encoding with
//! bounds on every length (the certificate comes from the network), for
//! `-v` output: `CN=www.test, O=edgepoll tests`. Control characters are
//! escaped (`\u{1b}`), as OpenSSL's name printing does: a certificate
//! from a private CA must not write escape sequences to a terminal, nor
//! reorder the line with bidirectional controls (U+202E).

/// The subject's attributes of common types, in order; `None` if the
/// certificate is not DER as expected.
pub(crate) fn of(der: &[u8]) -> Option<String> {
    let (certificate, _) = element(der, 0x30)?;
    let (mut tbs, _) = element(certificate, 0x30)?;
    // version [0] is optional; then serial, signature, issuer, validity.
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30, 0x30] {
        tbs = element(tbs, tag)?.1;
    }
    let (mut name, _) = element(tbs, 0x30)?;
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = element(name, 0x31)?;
        name = rest;
        // A multi-valued name (`CN=a+O=b`) has several in its set.
        let mut values = Vec::new();
        while !set.is_empty() {
            let (attribute, more) = element(set, 0x30)?;
            set = more;
            let (oid, value) = element(attribute, 0x06)?;
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => continue,
            };
            // A value of a type not read here is left out, as the
            // attributes not named are.
            if let Some(text) = any_string(value) {
                values.push(format!("{label}={}", printable(&text)));
            }
        }
        if !values.is_empty() {
            parts.push(values.join("+"));
        }
    }
    Some(parts.join(", "))
}

/// A string value of any of the types names use: BMPString as UTF-16
/// (big-endian), the others as UTF-8 (of which ASCII is a part).
fn any_string(der: &[u8]) -> Option<String> {
    let tag = *der.first()?;
    let (text, _) = match tag {
        0x0c | 0x13 | 0x14 | 0x16 | 0x1e => element(der, tag)?,
        _ => return None,
    };
    Some(match tag {
        0x1e => {
            let units = text.chunks(2).map(|pair| match pair {
                [high, low] => u16::from_be_bytes([*high, *low]),
                _ => 0xFFFD,
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => String::from_utf8_lossy(text).into_owned(),
    })
}

/// `text` with its control characters escaped, and the format characters
/// that reorder or hide text (bidirectional controls, zero-width ones).
pub(super) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hides = matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        );
        match c.is_control() || hides {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// The content of the element at the start of `der` if its tag is `tag`,
/// and what follows it.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *der.first()? != tag {
        return None;
    }
    let first = *der.get(1)?;
    let (len, header) = match first {
        0..=0x7f => (first as usize, 2),
        0x81..=0x84 => {
            let count = (first & 0x7f) as usize;
            let bytes = der.get(2..2 + count)?;
            let len = bytes.iter().fold(0usize, |n, b| (n << 8) | *b as usize);
            (len, 2 + count)
        }
        _ => return None,
    };
    let end = header.checked_add(len)?;
    Some((der.get(header..end)?, der.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate made by `openssl req -x509 -subj "/C=DE/O=edgepoll tests/CN=www.test"`,
    /// cut to what the reader looks at (the rest is not read).
    fn sample() -> Vec<u8> {
        let utf8 = |oid: &'static [u8], text: &str| (oid, 0x0c, text.as_bytes().to_vec());
        certificate(&[
            utf8(&[0x55, 4, 6], "DE"),
            utf8(&[0x55, 4, 10], "edgepoll tests"),
            utf8(&[0x2a, 0x86, 0x48], "ignored"),
            utf8(&[0x55, 4, 3], "www.test"),
        ])
    }

    /// A certificate whose subject has `parts`: (OID, string tag, value).
    /// One attribute: its OID, its value's tag, its value.
    type Attribute<'a> = (&'a [u8], u8, Vec<u8>);

    fn certificate(parts: &[Attribute<'_>]) -> Vec<u8> {
        let sets: Vec<&[Attribute<'_>]> = parts.iter().map(std::slice::from_ref).collect();
        certificate_of_sets(&sets)
    }

    /// A certificate whose subject has these sets of attributes.
    fn certificate_of_sets(sets: &[&[Attribute<'_>]]) -> Vec<u8> {
        let name = |sets: &[&[Attribute<'_>]]| {
            let mut seq = Vec::new();
            for parts in sets {
                let mut set = Vec::new();
                for (oid, tag, value) in parts.iter() {
                    let mut attr = vec![0x06, oid.len() as u8];
                    attr.extend_from_slice(oid);
                    attr.extend([*tag, value.len() as u8]);
                    attr.extend_from_slice(value);
                    set.extend([0x30, attr.len() as u8]);
                    set.extend(attr);
                }
                seq.extend([0x31, set.len() as u8]);
                seq.extend(set);
            }
            let mut out = vec![0x30, seq.len() as u8];
            out.extend(seq);
            out
        };
        let mut tbs = vec![0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07, 0x30, 0x00];
        tbs.extend(name(&[&[(&[0x55, 4, 3], 0x0c, b"issuer".to_vec())]]));
        tbs.extend([0x30, 0x00]);
        tbs.extend(name(sets));
        let mut tbs_seq = vec![0x30, 0x81, tbs.len() as u8];
        tbs_seq.extend(tbs);
        let mut cert = vec![0x30, 0x81, tbs_seq.len() as u8];
        cert.extend(tbs_seq);
        cert
    }

    #[test]
    fn the_subject_is_read_in_order() {
        assert_eq!(
            of(&sample()).as_deref(),
            Some("C=DE, O=edgepoll tests, CN=www.test")
        );
    }

    /// Control characters (a terminal's escape sequences) are escaped;
    /// a BMPString is read as UTF-16.
    #[test]
    fn control_characters_are_escaped_and_bmp_strings_decoded() {
        let bmp: Vec<u8> = "Zürich".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let cert = certificate(&[
            (&[0x55, 4, 10], 0x0c, b"evil\x1b[2J\r\ncorp".to_vec()),
            (&[0x55, 4, 7], 0x1e, bmp),
        ]);
        assert_eq!(
            of(&cert).as_deref(),
            Some("O=evil\\u{1b}[2J\\r\\ncorp, L=Zürich")
        );
    }

    /// A value of a type not read (UniversalString, a BIT STRING) leaves
    /// out that attribute, not the whole subject; the attributes of a
    /// multi-valued name are all read; bidirectional controls are escaped.
    #[test]
    fn odd_values_leave_out_only_themselves() {
        let cert = certificate(&[
            (&[0x55, 4, 10], 0x1c, b"\0\0\0a".to_vec()),
            (&[0x55, 4, 11], 0x03, b"\0\x01".to_vec()),
            (&[0x55, 4, 3], 0x0c, "a\u{202e}gnp.exe".as_bytes().to_vec()),
        ]);
        assert_eq!(of(&cert).as_deref(), Some("CN=a\\u{202e}gnp.exe"));
        let multi = certificate_of_sets(&[
            &[(&[0x55, 4, 6], 0x13, b"DE".to_vec())],
            &[
                (&[0x55, 4, 3], 0x0c, b"a".to_vec()),
                (&[0x55, 4, 10], 0x0c, b"b".to_vec()),
            ],
        ]);
        assert_eq!(of(&multi).as_deref(), Some("C=DE, CN=a+O=b"));
    }

    #[test]
    fn every_cut_and_corruption_is_refused_or_read_without_panic() {
        let cert = sample();
        for cut in 0..cert.len() {
            assert_eq!(of(&cert[..cut]), None, "cut at {cut}");
        }
        for at in 0..cert.len() {
            for byte in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut bad = cert.clone();
                bad[at] = byte;
                let _ = of(&bad);
            }
        }
    }
}
