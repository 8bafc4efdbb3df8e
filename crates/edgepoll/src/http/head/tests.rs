use super::*;
use std::mem::MaybeUninit;

/// What a parser made of a head, comparable between the two parsers.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Parsed {
        len: usize,
        method: Vec<u8>,
        target: Vec<u8>,
        version: Version,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Refused(HeadError),
    /// httparse wanted more bytes: never right for a complete head.
    Partial,
}

/// This module's parser on all of `buf` at once; `None` while the head is
/// incomplete.
fn ours(buf: &[u8], max_fields: usize) -> Option<Outcome> {
    ours_in_pieces(buf, max_fields, &[buf.len()]).0
}

/// This module's parser fed `buf` in pieces ending at `ends` (the last one
/// `buf.len()`), as a connection receives it; also whether a bare LF was seen.
fn ours_in_pieces(buf: &[u8], max_fields: usize, ends: &[usize]) -> (Option<Outcome>, bool) {
    let mut parser = HeadParser::default();
    let mut fields = Vec::new();
    for &end in ends {
        let outcome = match parser.parse(&buf[..end], max_fields, &mut fields) {
            Ok(None) => continue,
            Ok(Some(head)) => {
                let outcome = Outcome::Parsed {
                    len: head.len,
                    method: buf[head.line.method].to_vec(),
                    target: buf[head.line.target].to_vec(),
                    version: head.line.version,
                    fields: fields
                        .iter()
                        .map(|f| (buf[f.name.clone()].to_vec(), buf[f.value.clone()].to_vec()))
                        .collect(),
                };
                return (Some(outcome), head.bare_lf);
            }
            Err(e) => Outcome::Refused(e),
        };
        return (Some(outcome), false);
    }
    (None, false)
}

/// `buf` with a later HTTP/1 minor version at `at` written as `HTTP/1.1`: the
/// one place ours reads a head httparse refuses (RFC 9112 §2.3).
fn later_minor_as_11(buf: &[u8], at: usize) -> Vec<u8> {
    let mut copy = buf.to_vec();
    if let Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ b'2'..=b'9']) =
        copy.get_mut(at..at + 8)
    {
        *minor = b'1';
    }
    copy
}

/// Where a request line's version would start: after any empty lines, the
/// method and the target, each followed by one space.
fn request_version_at(buf: &[u8]) -> usize {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let mut spaces = buf[start..]
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ' || b == b'\n');
    match (spaces.next(), spaces.next()) {
        (Some((_, b' ')), Some((second, b' '))) => start + second + 1,
        _ => buf.len(),
    }
}

/// httparse on all of `buf`, its errors sorted into the same classes.
fn reference(buf: &[u8], max_fields: usize) -> Outcome {
    let buf = &later_minor_as_11(buf, request_version_at(buf))[..];
    let mut scratch = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); max_fields];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(buf, &mut scratch) {
        Ok(httparse::Status::Complete(len)) => Outcome::Parsed {
            len,
            method: request.method.unwrap_or_default().as_bytes().to_vec(),
            target: request.path.unwrap_or_default().as_bytes().to_vec(),
            version: match request.version {
                Some(0) => Version::Http10,
                _ => Version::Http11,
            },
            fields: request
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
        },
        Ok(httparse::Status::Partial) => Outcome::Partial,
        Err(httparse::Error::Token) => Outcome::Refused(HeadError::RequestLine),
        Err(httparse::Error::Version) => Outcome::Refused(HeadError::Version),
        Err(httparse::Error::TooManyHeaders) => Outcome::Refused(HeadError::TooManyFields),
        Err(_) => Outcome::Refused(HeadError::Field),
    }
}

/// Both parsers on `buf`: the same outcome whenever ours has one, and never
/// a complete head where ours waits for more.
fn assert_agree(buf: &[u8], max_fields: usize) -> Option<Outcome> {
    let reference = reference(buf, max_fields);
    let Some(ours) = ours(buf, max_fields) else {
        assert!(
            !matches!(reference, Outcome::Parsed { .. }),
            "ours waits on a head httparse completes: {:?}",
            String::from_utf8_lossy(buf)
        );
        return None;
    };
    assert_eq!(
        ours,
        reference,
        "on {:?} (at most {max_fields} fields)",
        String::from_utf8_lossy(buf)
    );
    Some(ours)
}

#[test]
fn a_plain_head_gives_its_parts_and_length() {
    let buf = b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \t\r\nX-Empty:\r\n\r\nhello";
    let Some(Outcome::Parsed {
        len,
        method,
        target,
        version,
        fields,
    }) = assert_agree(buf, 8)
    else {
        panic!("not parsed");
    };
    assert_eq!(len, buf.len() - 5);
    assert_eq!((&method[..], &target[..]), (&b"POST"[..], &b"/a?b"[..]));
    assert_eq!(version, Version::Http11);
    let fields: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        fields,
        [
            (&b"Host"[..], &b"x"[..]),
            (b"Content-Length", b"5"),
            (b"X-Empty", b""),
        ]
    );
}

#[test]
fn each_class_of_refusal() {
    use HeadError::*;
    let cases: &[(&[u8], HeadError)] = &[
        (b"G@T / HTTP/1.1\r\n\r\n", RequestLine),
        (b"GET  / HTTP/1.1\r\n\r\n", RequestLine),
        (b" GET / HTTP/1.1\r\n\r\n", RequestLine),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", RequestLine),
        (b"GET /\xff HTTP/1.1\r\n\r\n", RequestLine),
        (b"GET / HTTP/2.0\r\n\r\n", Version),
        (b"GET / HTTP/1.1 \r\n\r\n", Field),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", Field),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", Field),
        (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", Field),
        (b"GET / HTTP/1.1\r\n folded\r\n\r\n", Field),
        (b"\rGET / HTTP/1.1\r\n\r\n", Field),
        (
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            TooManyFields,
        ),
    ];
    for (buf, class) in cases {
        assert_eq!(
            assert_agree(buf, 2),
            Some(Outcome::Refused(*class)),
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn accepted_oddities_agree_with_httparse() {
    for buf in [
        &b"\r\n\nGET / HTTP/1.0\n\n"[..],
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \ta\tb \t\r\nY:\t\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: obs\x80\xfftext\r\n\r\n",
        b"M-SEARCH * HTTP/1.1\r\n~!#$%&'*+-.^_`|: v\r\n\r\n",
    ] {
        assert!(
            matches!(assert_agree(buf, 8), Some(Outcome::Parsed { .. })),
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn the_hostile_corpus_gets_the_same_answers_from_both_parsers() {
    let corpus: &[(&[u8], u16)] = include!("../../../../../tests/corpus/hostile_requests.rs");
    let mut compared = 0;
    for (request, _) in corpus {
        compared += usize::from(assert_agree(request, 64).is_some());
    }
    assert!(
        compared > corpus.len() / 2,
        "only {compared} had a whole head"
    );
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Mostly (7 in 8) one of the first `good` items, else any.
    fn mostly<T: Copy>(&mut self, items: &[T], good: usize) -> T {
        if self.below(8) == 0 {
            self.pick(items)
        } else {
            self.pick(&items[..good])
        }
    }
}

/// Line ends: mostly CRLF, sometimes a bare LF.
const ENDS: &[&[u8]] = &[b"\r\n", b"\r\n", b"\r\n", b"\n"];

/// Up to `most - 1` field lines from `names` and `values`, each mostly one
/// of its first (valid) entries, then the blank line.
fn field_lines(
    rng: &mut Rng,
    head: &mut Vec<u8>,
    most: usize,
    (names, good_names): (&[&[u8]], usize),
    (values, good_values): (&[&[u8]], usize),
) {
    for _ in 0..rng.below(most) {
        head.extend_from_slice(rng.mostly(names, good_names));
        head.extend_from_slice(rng.mostly(&[&b": "[..], b":", b":\t", b" :"], 3));
        head.extend_from_slice(rng.mostly(values, good_values));
        head.extend_from_slice(rng.pick(ENDS));
    }
    head.extend_from_slice(rng.pick(ENDS));
}

/// Sometimes a few bytes changed, inserted or removed: the bytes parsers
/// disagree on sit next to the delimiters.
fn mangle(rng: &mut Rng, head: &mut Vec<u8>) {
    const BYTES: &[u8] = b"\r\n\t :/\x00\x7f\x80\xffaZ0-";
    for _ in 0..rng.below(8).saturating_sub(4) {
        let at = rng.below(head.len() + 1);
        match rng.below(3) {
            0 if at < head.len() => head[at] = rng.pick(BYTES),
            1 => head.insert(at, rng.pick(BYTES)),
            _ if at < head.len() => {
                head.remove(at);
            }
            _ => {}
        }
    }
}

/// A head from plausible parts (the first few of each list are valid), then
/// sometimes a few bytes changed, inserted or removed: the bytes parsers
/// disagree on sit next to the delimiters.
fn generated_head(rng: &mut Rng) -> Vec<u8> {
    const METHODS: &[&[u8]] = &[b"GET", b"POST", b"HEAD", b"M-SEARCH", b"G@T", b"", b"get"];
    const TARGETS: &[&[u8]] = &[
        b"/",
        b"/a/b?c=d",
        b"*",
        b"http://x/y",
        b"x:443",
        b"/caf\xc3\xa9",
        b"/\xc3",
        b"/a b",
        b"/\x7f",
    ];
    const VERSIONS: &[&[u8]] = &[
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/2.0",
        b"HTTP/1.2",
        b"HTTP/1.9",
        b"HTTP/1.",
        b"http/1.1",
    ];
    const NAMES: &[&[u8]] = &[
        b"Host",
        b"Content-Length",
        b"content-type",
        b"X",
        b"Bad Name",
        b"",
        b"~!#$%&'*+-.^_`|",
    ];
    const VALUES: &[&[u8]] = &[
        b"x",
        b"",
        b"  padded \t",
        b"a\tb",
        b"obs\x80\xff",
        b"12345678901234567890",
        b"ctl\x01",
        b"del\x7f",
    ];
    let mut head = Vec::new();
    for _ in 0..rng.below(3).saturating_sub(1) {
        head.extend_from_slice(rng.pick(ENDS));
    }
    head.extend_from_slice(rng.mostly(METHODS, 4));
    head.push(b' ');
    head.extend_from_slice(rng.mostly(TARGETS, 6));
    head.push(b' ');
    head.extend_from_slice(rng.mostly(VERSIONS, 2));
    head.extend_from_slice(rng.pick(ENDS));
    field_lines(rng, &mut head, 6, (NAMES, 4), (VALUES, 6));
    mangle(rng, &mut head);
    // Body bytes or a pipelined request may follow the head.
    head.extend_from_slice(rng.pick(&[&b""[..], b"body", b"GET / HTTP/1.1\r\n\r\n"]));
    head
}

#[test]
fn both_parsers_agree_on_a_hundred_thousand_generated_heads() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut compared, mut parsed) = (0, 0);
    for _ in 0..100_000 {
        let head = generated_head(&mut rng);
        let max_fields = rng.pick(&[0, 1, 3, 64]);
        if let Some(outcome) = assert_agree(&head, max_fields) {
            compared += 1;
            parsed += usize::from(matches!(outcome, Outcome::Parsed { .. }));
        }
    }
    // Both kinds of outcome must be well represented for this to mean much.
    assert!(compared > 50_000, "{compared} compared");
    assert!(
        parsed > 10_000 && compared - parsed > 10_000,
        "{parsed} of {compared} parsed"
    );
}

#[test]
fn every_split_of_a_head_gives_the_outcome_of_the_whole() {
    let mut rng = Rng(0x51_7cc1_b727_220a);
    for round in 0..20_000 {
        let head = generated_head(&mut rng);
        let whole = ours_in_pieces(&head, 8, &[head.len()]);
        let mut ends: Vec<usize> = if round % 50 == 0 {
            (1..=head.len()).collect()
        } else {
            (0..rng.below(4))
                .map(|_| rng.below(head.len() + 1))
                .collect()
        };
        ends.push(head.len());
        ends.sort_unstable();
        assert_eq!(
            ours_in_pieces(&head, 8, &ends),
            whole,
            "{:?} split at {ends:?}",
            String::from_utf8_lossy(&head)
        );
    }
}

#[test]
fn a_bare_lf_anywhere_is_noted() {
    for buf in [
        &b"\nGET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\n\r\n",
        b"GET / HTTP/1.1\r\nX: y\n\r\n",
        b"GET / HTTP/1.1\r\nX: y\r\n\n",
    ] {
        assert!(
            ours_in_pieces(buf, 8, &[buf.len()]).1,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
    let clean = b"\r\nGET / HTTP/1.1\r\nX: y\r\n\r\n";
    assert!(!ours_in_pieces(clean, 8, &[clean.len()]).1);
}

/// What a parser made of a response head: `None` while incomplete, else
/// status code, reason, fields and length, or a refusal (only too many
/// fields is told apart: a client answers every other fault alike).
type ResponseOutcome = Option<Result<(u16, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, usize), bool>>;

fn our_response(buf: &[u8], max_fields: usize) -> ResponseOutcome {
    let mut fields = Vec::new();
    let parsed = parse_response_head(buf, max_fields, &mut fields);
    response_outcome(buf, parsed, &fields)
}

/// A parse's result, with the fields it found in `buf`, as an outcome.
fn response_outcome(
    buf: &[u8],
    parsed: Result<Option<(StatusLine, usize)>, HeadError>,
    fields: &[HeaderSpan],
) -> ResponseOutcome {
    match parsed {
        Ok(None) => None,
        Ok(Some((line, len))) => Some(Ok((
            line.code,
            buf[line.reason].to_vec(),
            fields
                .iter()
                .map(|f| (buf[f.name.clone()].to_vec(), buf[f.value.clone()].to_vec()))
                .collect(),
            len,
        ))),
        Err(e) => Some(Err(e == HeadError::TooManyFields)),
    }
}

fn reference_response(buf: &[u8], max_fields: usize) -> ResponseOutcome {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf = &later_minor_as_11(buf, start)[..];
    let mut scratch = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); max_fields];
    let mut response = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    match config.parse_response_with_uninit_headers(&mut response, buf, &mut scratch) {
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(len)) => Some(Ok((
            response.code.unwrap_or_default(),
            response.reason.unwrap_or_default().as_bytes().to_vec(),
            response
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
            len,
        ))),
        Err(e) => Some(Err(e == httparse::Error::TooManyHeaders)),
    }
}

/// A response head from plausible parts, sometimes with bytes changed,
/// inserted or removed.
fn generated_response(rng: &mut Rng) -> Vec<u8> {
    const VERSIONS: &[&[u8]] = &[
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/2.0",
        b"HTTP/1.2",
        b"HTTP/1.",
        b"http/1.1",
    ];
    const CODES: &[&[u8]] = &[b"200", b"101", b"404", b"099", b"20", b"2x0", b"1000"];
    const REASONS: &[&[u8]] = &[
        b" OK",
        b" Not Found",
        b"",
        b" ",
        b" caf\xc3\xa9",
        b" tab\there",
        b" ctl\x01",
        b" del\x7f",
        b"  two spaces",
    ];
    const NAMES: &[&[u8]] = &[
        b"Content-Length",
        b"Via",
        b"X",
        b"Bad Name",
        b"",
        b"~!#$%&'*+-.^_`|",
    ];
    const VALUES: &[&[u8]] = &[
        b"5",
        b"",
        b"  padded \t",
        b"obs\x80\xff",
        b"ctl\x01",
        b"del\x7f",
    ];
    let mut head = Vec::new();
    for _ in 0..rng.below(3).saturating_sub(1) {
        head.extend_from_slice(rng.pick(ENDS));
    }
    head.extend_from_slice(rng.mostly(VERSIONS, 2));
    head.extend_from_slice(rng.mostly(&[&b" "[..], b"  ", b""], 1));
    head.extend_from_slice(rng.mostly(CODES, 3));
    head.extend_from_slice(rng.mostly(REASONS, 6));
    head.extend_from_slice(rng.pick(ENDS));
    field_lines(rng, &mut head, 5, (NAMES, 3), (VALUES, 3));
    mangle(rng, &mut head);
    head.extend_from_slice(rng.pick(&[&b""[..], b"hello", b"HTTP/1.1 200 OK\r\n\r\n"]));
    head
}

#[test]
fn response_heads_read_as_httparse_reads_them_whole_and_cut_short() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..100_000 {
        let head = generated_response(&mut rng);
        let max_fields = rng.pick(&[0, 1, 3, 64]);
        let ours = our_response(&head, max_fields);
        assert_eq!(
            ours,
            reference_response(&head, max_fields),
            "on {:?} (at most {max_fields} fields)",
            String::from_utf8_lossy(&head)
        );
        parsed += usize::from(matches!(ours, Some(Ok(_))));
        refused += usize::from(matches!(ours, Some(Err(_))));
        // Every shorter prefix: incomplete or refused, never a head.
        let cut = rng.below(head.len() + 1);
        assert_eq!(
            our_response(&head[..cut], max_fields),
            reference_response(&head[..cut], max_fields),
            "on {:?}",
            String::from_utf8_lossy(&head[..cut])
        );
    }
    assert!(
        parsed > 15_000 && refused > 15_000,
        "{parsed} parsed, {refused} refused"
    );
}

/// A head fed as it grows to one [`ResponseHeadParser`], which goes on from
/// the last whole line, reads at every step as the whole prefix read from
/// its start does, up to its first answer.
#[test]
fn a_response_head_parsed_as_it_grows_reads_as_each_prefix_parsed_whole() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut answered = 0;
    for _ in 0..20_000 {
        let head = generated_response(&mut rng);
        let max_fields = rng.pick(&[0, 1, 3, 64]);
        let mut parser = ResponseHeadParser::default();
        let mut fields = Vec::new();
        let mut end = 0;
        while end < head.len() {
            end = (end + 1 + rng.below(8)).min(head.len());
            let buf = &head[..end];
            let parsed = parser.parse(buf, max_fields, &mut fields);
            let grown = response_outcome(buf, parsed, &fields);
            assert_eq!(
                grown,
                our_response(buf, max_fields),
                "on {:?}",
                String::from_utf8_lossy(buf)
            );
            if grown.is_some() {
                answered += 1;
                break;
            }
        }
    }
    assert!(answered > 10_000, "{answered} answered");
}
