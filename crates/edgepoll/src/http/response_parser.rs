//! The client side: reading one response from the bytes a server sends.

use super::body::Incoming;
use super::chunked::{ChunkedDecoder, ChunkedError};
use super::framing::{BodyFraming, FieldSummary, FramingError};
use super::head::{HeadError, ResponseHeadParser};
use super::request::HeaderSpan;
use super::scan::ascii_str;
use super::{StatusCode, Version};
use crate::short_copy::{string_short, to_vec_short};

/// A response's buffer grows fallibly past this ([`ResponseError::NoMemory`]).
const FALLIBLE_ABOVE: usize = 64 * 1024;

/// How many bytes of chunked framing a buffered body may hold before they
/// are cut out.
const FRAMING_KEPT_UP_TO: usize = 4096;

/// A complete response as a client reads it.
///
/// ```
/// use edgepoll::http::{ResponseParser, StatusCode};
/// let mut parser = ResponseParser::new(false);
/// let response = parser
///     .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nhi")
///     .unwrap()
///     .unwrap();
/// assert_eq!(response.status, StatusCode::OK);
/// assert_eq!(response.header("x-a"), Some(&b"1"[..]));
/// assert_eq!(response.body, b"hi");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The status code.
    pub status: StatusCode,
    /// The protocol version it came with (a forwarder names it in `Via`).
    pub version: Version,
    /// The reason phrase as sent.
    pub reason: String,
    /// Header fields in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
    /// What the TLS connection it came over agreed on (`https://` only).
    /// Boxed: the response then stays within 64 bytes, which a wasm32 build
    /// moves with loads and stores instead of a `memory.copy` (a call into
    /// the runtime under WasmEdge's AOT code), and it is moved several times
    /// on its way to the application.
    pub tls: Option<Box<crate::tls::TlsInfo>>,
}

impl ParsedResponse {
    /// The value of the first header field with this name (case-insensitive).
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// let response = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
    /// assert_eq!(response.header("content-type"), Some(&b"text/plain"[..]));
    /// ```
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| super::same_name(n, name))
            .map(|(_, v)| v.as_slice())
    }

    /// The `Content-Length` field's number, if it has one (a response whose
    /// field is not one number is refused by the parser): the body's
    /// length, or for a response to HEAD (and a 304) the length a GET would
    /// have had. What `Context::respond_pipe` takes for a body passed on.
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// let response = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").unwrap().unwrap();
    /// assert_eq!(response.content_length(), Some(2));
    /// ```
    pub fn content_length(&self) -> Option<u64> {
        super::framing::parse_content_length(self.header("content-length")?)?
    }

    /// The first transfer coding of the body other than chunked, if it has
    /// one (`gzip` in `Transfer-Encoding: gzip, chunked`). The parser takes
    /// off a final chunked alone (with another coding last, as in
    /// `chunked, gzip`, it reads until the close and takes off nothing), so
    /// such a body is still coded, and no field that stays with the message
    /// says so (`Transfer-Encoding` is hop-by-hop): a client that writes the
    /// body out, or a proxy that passes it on, must refuse it or decode it.
    /// An answer without a body (to HEAD, a 204, a 304) may name a coding
    /// too, which then codes nothing: the caller, who knows the request,
    /// tells those apart.
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// let response = parser
    ///     .feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n")
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(response.undecoded_coding(), Some(&b"gzip"[..]));
    /// assert_eq!(response.body, b"\x1f\x8b");
    /// ```
    pub fn undecoded_coding(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .filter(|(name, _)| super::same_name(name, "transfer-encoding"))
            .flat_map(|(_, value)| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"chunked"))
    }
}

/// Why a response could not be read.
///
/// ```
/// use edgepoll::http::{FramingError, ResponseError, ResponseParser};
/// let mut parser = ResponseParser::new(false);
/// let smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi";
/// assert_eq!(
///     parser.feed(smuggled),
///     Err(ResponseError::Framing(FramingError::ConflictingLengths))
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The status line or a header field is malformed.
    MalformedHead,
    /// The head is larger than the parser accepts (64 KiB by default), or
    /// folds more lines (obs-fold) than it takes (32).
    HeadTooLarge,
    /// The head has more header fields than the parser accepts (512): each
    /// is kept as a name and a value of their own.
    TooManyFields,
    /// The fields cannot frame the body: the same rules as for requests.
    Framing(FramingError),
    /// The chunked body is malformed.
    InvalidChunked(ChunkedError),
    /// The body is larger than the parser accepts.
    BodyTooLarge,
    /// The connection closed before the response was complete.
    Truncated,
    /// A 101 (Switching Protocols) to a request that offered no upgrade,
    /// before all of the request was sent (the new protocol begins where
    /// the request ends: RFC 9110 §7.8), or without an `Upgrade` field to
    /// name its protocol (§15.2.2).
    UnexpectedSwitch,
    /// No memory was free to hold more of the response (a runtime's
    /// `--memory-page-limit` reached): this side's shortage, not the
    /// server's fault. A streamed body (`Context::fetch_stream`'s) is held
    /// a read at a time.
    NoMemory,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::MalformedHead => f.write_str("malformed response head"),
            ResponseError::HeadTooLarge => f.write_str("response head too large"),
            ResponseError::TooManyFields => {
                write!(f, "response head has more than {MAX_FIELDS} header fields")
            }
            ResponseError::Framing(e) => write!(f, "response framing: {e}"),
            ResponseError::InvalidChunked(e) => write!(f, "chunked response body: {}", e.as_str()),
            ResponseError::BodyTooLarge => f.write_str("response body over the size limit"),
            ResponseError::Truncated => {
                f.write_str("connection closed before the response was complete")
            }
            ResponseError::UnexpectedSwitch => f.write_str(
                "101 Switching Protocols to a request that offered no upgrade or was not all sent, or naming no protocol",
            ),
            ResponseError::NoMemory => f.write_str("no memory free to hold the response"),
        }
    }
}

impl std::error::Error for ResponseError {}

#[derive(Debug)]
enum Body {
    Length(usize),
    /// The decoder, the raw bytes read and the end of the decoded ones.
    Chunked(Box<ChunkedDecoder>, usize, usize),
    UntilClose,
    /// Streaming: the head is handed over alone, the body read by the caller.
    Stream(Incoming),
}

#[derive(Debug)]
struct Head {
    response: ParsedResponse,
    len: usize,
    body: Body,
    keep_alive: bool,
}

/// The most header fields a response may have, each kept as a name and a
/// value of their own (a head of 64 KiB could hold 16 000 empty ones).
/// nginx counts none (its default head limit, 4 or 8 KiB, holds a few
/// hundred short fields); hyper's client takes 100. Responses with many
/// `Set-Cookie` or policy fields pass 128.
const MAX_FIELDS: usize = 512;

/// The most folded lines in one head: each that arrives has the head
/// unfolded and parsed again from its start. Servers stopped folding long
/// ago (RFC 7230 made it obsolete in 2014).
const MAX_FOLDS: usize = 32;
// Counted in a u8.
const _: () = assert!(MAX_FOLDS <= u8::MAX as usize);

/// Room for the fields' spans kept while the response's body is read: a
/// head with more gives its room back once parsed (up to 512 spans, some
/// 16 KiB, held for as long as a streamed body lasts).
const SPANS_KEPT: usize = 64;

/// The most interim responses kept for the caller per response: a server
/// may send any number, and each is passed on.
const MAX_INTERIM: u8 = 8;

/// Reads one response, fed incrementally; interim `1xx` responses before it
/// are not the response (see [`take_interim`](Self::take_interim)).
/// Bodies are framed by the rules requests follow ([`FramingError`]), and a
/// body over the limit ([`with_max_body`](Self::with_max_body)) is an error,
/// not an allocation.
///
/// ```
/// use edgepoll::http::ResponseParser;
/// let mut parser = ResponseParser::new(false);
/// assert_eq!(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
/// let response = parser.feed(b"gth: 2\r\n\r\nhi").unwrap().unwrap();
/// assert_eq!(response.body, b"hi");
/// assert!(parser.is_reusable());
/// ```
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    to_head: bool,
    head: Option<Head>,
    max_head: usize,
    max_body: u64,
    reusable: bool,
    /// Hand the head over alone; the body is streamed ([`Self::streaming`]).
    streams: bool,
    /// Where the head's fields are, while it is parsed.
    spans: Vec<HeaderSpan>,
    /// Where the head still arriving was left.
    head_parser: ResponseHeadParser,
    /// Interim responses parsed, not yet taken; and how many were kept.
    interim: Vec<ParsedResponse>,
    interim_kept: u8,
    /// Whether any interim response was read, a `100 Continue` too.
    heard_interim: bool,
    /// Folded lines unfolded in the head being read.
    folds: u8,
    /// Whether a byte was fed: interim heads and a streamed head leave
    /// `buf` empty again.
    fed: bool,
}

impl ResponseParser {
    /// A parser for the response to one request; `to_head` is true when the
    /// request was `HEAD`, whose response has no body. The body limit is
    /// 64 MiB.
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// // To a HEAD, Content-Length tells what a GET would get: no body follows.
    /// let mut parser = ResponseParser::new(true);
    /// let response = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\n\r\n").unwrap().unwrap();
    /// assert!(response.body.is_empty() && parser.is_reusable());
    /// ```
    pub fn new(to_head: bool) -> Self {
        ResponseParser {
            buf: Vec::new(),
            to_head,
            head: None,
            max_head: 64 * 1024,
            max_body: 64 << 20,
            reusable: false,
            streams: false,
            spans: Vec::new(),
            head_parser: ResponseHeadParser::default(),
            interim: Vec::new(),
            interim_kept: 0,
            heard_interim: false,
            folds: 0,
            fed: false,
        }
    }

    /// The next interim response (a 1xx other than 100 and 101, such as
    /// `103 Early Hints`) that came before the final one, oldest first:
    /// what a proxy passes on (RFC 9110 §15.2). `100 Continue` answers an
    /// expectation, which is the one who sent it to keep, and is not kept;
    /// nor are more than eight before one response.
    ///
    /// ```
    /// use edgepoll::http::{ResponseParser, StatusCode};
    /// let mut parser = ResponseParser::new(false);
    /// let early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
    /// assert_eq!(parser.feed(early).unwrap(), None);
    /// let hints = parser.take_interim().unwrap();
    /// assert_eq!(hints.status, StatusCode::from_u16(103).unwrap());
    /// assert_eq!(hints.header("link"), Some(&b"</a.css>; rel=preload"[..]));
    /// assert!(parser.take_interim().is_none());
    /// ```
    pub fn take_interim(&mut self) -> Option<ParsedResponse> {
        match self.interim.is_empty() {
            true => None,
            false => Some(self.interim.remove(0)),
        }
    }

    /// Whether an interim response came before the final one, kept or not
    /// (`100 Continue` too): the server has read the request. A client
    /// that retries a request its server seemed to drop unread (a `408`
    /// on a reused connection) must not, after one.
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// assert!(!parser.heard_interim());
    /// assert_eq!(parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap(), None);
    /// assert!(parser.heard_interim());
    /// assert!(parser.take_interim().is_none());
    /// ```
    pub fn heard_interim(&self) -> bool {
        self.heard_interim
    }

    /// A parser that hands the head over as soon as it is complete, with an
    /// empty body: the body is then read with [`take_stream`](Self::take_stream),
    /// as long as it is (no size limit).
    pub(crate) fn streaming(to_head: bool) -> Self {
        ResponseParser {
            max_body: u64::MAX,
            streams: true,
            ..ResponseParser::new(to_head)
        }
    }

    /// After a streamed head: how its body is delimited, whether the
    /// connection may carry another request once the body is read, and the
    /// bytes that came after the head.
    pub(crate) fn take_stream(&mut self) -> Option<(Incoming, bool, Vec<u8>)> {
        let Head {
            body: Body::Stream(incoming),
            keep_alive,
            len,
            ..
        } = self.head.take()?
        else {
            return None;
        };
        let mut rest = std::mem::take(&mut self.buf);
        rest.drain(..len);
        Some((incoming, keep_alive, rest))
    }

    /// Sets the most body bytes accepted.
    ///
    /// ```
    /// use edgepoll::http::{ResponseError, ResponseParser};
    /// let mut parser = ResponseParser::new(false).with_max_body(4);
    /// let refused = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    /// assert_eq!(refused, Err(ResponseError::BodyTooLarge));
    /// ```
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body as u64;
        self
    }

    /// Whether no byte of a response has arrived yet (a `100 Continue`, or
    /// any interim response, is some: the request was read).
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// assert!(parser.is_untouched());
    /// parser.feed(b"HTTP/1.1 2").unwrap();
    /// assert!(!parser.is_untouched());
    /// let mut parser = ResponseParser::new(false);
    /// parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    /// assert!(!parser.is_untouched());
    /// ```
    pub fn is_untouched(&self) -> bool {
        !self.fed
    }

    /// After a complete response: whether the connection can carry another
    /// request (the server keeps it alive, the body was not delimited by
    /// the close, and nothing unasked-for followed the response).
    ///
    /// ```
    /// use edgepoll::http::ResponseParser;
    /// let mut parser = ResponseParser::new(false);
    /// parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
    /// assert!(parser.is_reusable());
    /// let mut closing = ResponseParser::new(false);
    /// closing.feed(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap().unwrap();
    /// assert!(!closing.is_reusable());
    /// ```
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Feeds received bytes; returns the response once it is complete.
    ///
    /// ```
    /// use edgepoll::http::{ResponseError, ResponseParser};
    /// let mut parser = ResponseParser::new(false);
    /// let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    /// let mut done = None;
    /// for byte in wire {
    ///     // What the upstream sent may be refused: an error, never a panic.
    ///     if let Some(response) = parser.feed(std::slice::from_ref(byte))? {
    ///         done = Some(response);
    ///     }
    /// }
    /// assert_eq!(done.map(|r| r.body), Some(b"hello".to_vec()));
    /// # Ok::<(), ResponseError>(())
    /// ```
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<ParsedResponse>, ResponseError> {
        self.fed |= !data.is_empty();
        // Growth past a head and a small body, which the server decides, is
        // fallible: its refusal, not an abort of the process with every
        // connection (see `headroom`). Below, it grows as any small
        // allocation does: the headroom's probe (256 KiB taken and given
        // back) would cost every exchange, whose parser starts empty.
        let needed = self.buf.len().saturating_add(data.len());
        if needed > FALLIBLE_ABOVE && needed > self.buf.capacity() {
            super::input::reserve_up_to(&mut self.buf, data.len(), usize::MAX)
                .map_err(|_| ResponseError::NoMemory)?;
        }
        self.buf.extend_from_slice(data);
        if self.head.is_none() && !self.parse_head_if_due(data)? {
            return Ok(None);
        }
        let Some(head) = &mut self.head else {
            return Ok(None);
        };
        let (body_end, raw_end) = match &mut head.body {
            Body::Length(n) => {
                if self.buf.len() < head.len + *n {
                    return Ok(None);
                }
                (head.len + *n, head.len + *n)
            }
            Body::Chunked(decoder, read, written) => {
                let p = decoder
                    .decode_in_place(&mut self.buf, *read, *written)
                    .map_err(|e| match e {
                        ChunkedError::BodyTooLarge => ResponseError::BodyTooLarge,
                        e => ResponseError::InvalidChunked(e),
                    })?;
                (*read, *written) = (p.read, p.written);
                // The framing already read goes (see the server's handler):
                // held bytes follow the decoded size, not the wire's.
                if p.read - p.written >= FRAMING_KEPT_UP_TO {
                    self.buf.drain(p.written..p.read);
                    *read = p.written;
                }
                if !p.done {
                    return Ok(None);
                }
                (p.written, *read)
            }
            Body::UntilClose => {
                if (self.buf.len() - head.len) as u64 > self.max_body {
                    return Err(ResponseError::BodyTooLarge);
                }
                return Ok(None);
            }
            Body::Stream(_) => {
                // The head alone, moved out (only the body's framing stays
                // behind); the body is the caller's to read.
                self.reusable = head.keep_alive;
                let empty = ParsedResponse {
                    status: head.response.status,
                    version: head.response.version,
                    reason: String::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    tls: None,
                };
                return Ok(Some(std::mem::replace(&mut head.response, empty)));
            }
        };
        self.reusable = head.keep_alive && self.buf.len() == raw_end;
        Ok(self.take(body_end))
    }

    /// Whether the response being read has a body that runs until the
    /// connection closes.
    pub(crate) fn reads_until_close(&self) -> bool {
        matches!(
            self.head,
            Some(Head {
                body: Body::UntilClose,
                ..
            })
        )
    }

    /// Tells the parser the connection closed; completes a response whose body
    /// runs until close, and reports any other incomplete response as truncated.
    ///
    /// ```
    /// use edgepoll::http::{ResponseError, ResponseParser};
    /// let mut parser = ResponseParser::new(false);
    /// assert_eq!(parser.feed(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap(), None);
    /// assert_eq!(parser.finish().unwrap().body, b"all of it"); // the close ended it
    /// let mut cut = ResponseParser::new(false);
    /// cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf").unwrap();
    /// assert_eq!(cut.finish().unwrap_err(), ResponseError::Truncated);
    /// ```
    pub fn finish(&mut self) -> Result<ParsedResponse, ResponseError> {
        self.reusable = false;
        match &self.head {
            Some(Head {
                body: Body::UntilClose,
                ..
            }) => {
                let end = self.buf.len();
                self.take(end).ok_or(ResponseError::Truncated)
            }
            _ => Err(ResponseError::Truncated),
        }
    }

    fn take(&mut self, body_end: usize) -> Option<ParsedResponse> {
        let Head {
            mut response, len, ..
        } = self.head.take()?;
        let mut buf = std::mem::take(&mut self.buf);
        // A small body in a larger buffer is copied, not kept in it (where
        // memory is free for the copy).
        if body_end - len < buf.capacity() / 2 {
            let mut body = Vec::new();
            if body.try_reserve_exact(body_end - len).is_ok() {
                body.extend_from_slice(&buf[len..body_end]);
                response.body = body;
                return Some(response);
            }
        }
        // A large body keeps the buffer it came in (moved down over the
        // head): a copy would hold it twice, at a size of up to `max_body`.
        buf.truncate(body_end);
        buf.drain(..len);
        // Grown by doubling, it may be twice the body's size.
        buf.shrink_to_fit();
        response.body = buf;
        Some(response)
    }

    /// Parses the head again only when `data` (just added to the buffer) may
    /// have moved it on: a line ended (a field, or the blank line), or it
    /// brought some of the status line's first bytes, so that what is not
    /// HTTP fails at once, however long the read that brings it (one of 50
    /// bytes without a line end waited for the response timeout). Each
    /// parse goes on from the last whole line ([`ResponseHeadParser`]): from
    /// the head's start each time, a server sending it a byte at a time made
    /// that quadratic (64 KiB: two billion steps), and a line at a time
    /// 4.9 ms for 512 fields in 64 KiB natively (0.2 ms now).
    fn parse_head_if_due(&mut self, data: &[u8]) -> Result<bool, ResponseError> {
        const STATUS_PREFIX: usize = b"HTTP/1.1 200".len();
        let before = self.buf.len() - data.len();
        if before < STATUS_PREFIX || super::scan::find_lf(data).is_some() {
            return self.parse_head();
        }
        match self.buf.len() > self.max_head {
            true => Err(ResponseError::HeadTooLarge),
            false => Ok(false),
        }
    }

    /// Parses what the buffer holds: interim heads, then the final head if
    /// it is whole. The interim ones are dropped from the buffer once, at the
    /// end: a read holding thousands of them would otherwise move the rest
    /// of the buffer once for each.
    fn parse_head(&mut self) -> Result<bool, ResponseError> {
        let mut start = 0;
        let parsed = self.parse_heads_from(&mut start);
        if start > 0 {
            self.buf.drain(..start);
        }
        parsed
    }

    /// [`parse_head`](Self::parse_head) from `start`, which it moves past
    /// each interim head; a final head is kept with offsets from `start`.
    fn parse_heads_from(&mut self, start: &mut usize) -> Result<bool, ResponseError> {
        loop {
            let spans = &mut self.spans;
            let parsed = self
                .head_parser
                .parse(&self.buf[*start..], MAX_FIELDS, spans);
            // A head whole or refused (unfolded, it is parsed anew), and
            // the next is parsed from its start.
            if !matches!(parsed, Ok(None)) {
                self.head_parser.reset();
            }
            let (line, len) = match parsed {
                Ok(Some(head)) => head,
                Ok(None) if self.buf.len() - *start > self.max_head => {
                    return Err(ResponseError::HeadTooLarge)
                }
                Ok(None) => return Ok(false),
                Err(HeadError::TooManyFields) => return Err(ResponseError::TooManyFields),
                // Only a head that fails is looked at for folds: the
                // common one costs no second pass. Folded lines have a
                // limit of their own, since each one that arrives costs a
                // pass over the head.
                Err(_) => match unfold(&mut self.buf[*start..]) {
                    0 => return Err(ResponseError::MalformedHead),
                    n if usize::from(self.folds) + n > MAX_FOLDS => {
                        return Err(ResponseError::HeadTooLarge)
                    }
                    n => {
                        self.folds += n as u8;
                        continue;
                    }
                },
            };
            if len > self.max_head {
                return Err(ResponseError::HeadTooLarge);
            }
            self.folds = 0;
            let status = StatusCode::from_u16(line.code).ok_or(ResponseError::MalformedHead)?;
            if status.as_u16() < 200 && status.as_u16() != 101 {
                // An interim response (100 Continue, 103 Early Hints): the
                // real one follows. 101 is final: the protocol changes.
                self.heard_interim = true;
                if status != StatusCode::CONTINUE && self.interim_kept < MAX_INTERIM {
                    self.interim_kept += 1;
                    let buf = &self.buf[*start..];
                    let headers = spans.iter().map(|span| field_at(buf, span)).collect();
                    self.interim.push(ParsedResponse {
                        status,
                        version: line.version,
                        reason: string_short(ascii_str(&buf[line.reason]).unwrap_or_default()),
                        headers,
                        body: Vec::new(),
                        tls: None,
                    });
                }
                *start += len;
                continue;
            }
            let buf = &self.buf[*start..];
            let version = line.version;
            let mut summary = FieldSummary::default();
            let mut fields = Vec::with_capacity(spans.len());
            for span in spans.iter() {
                summary
                    .add(buf, span.name.clone(), span.value.clone())
                    .map_err(ResponseError::Framing)?;
                fields.push(field_at(buf, span));
            }
            let framing = summary
                .response_framing(version, status, self.to_head)
                .map_err(ResponseError::Framing)?;
            let body = match framing {
                // What follows a 101 is the new protocol's, for the caller
                // (see `take_stream`).
                _ if status == StatusCode::SWITCHING_PROTOCOLS => Body::Stream(Incoming::Length(0)),
                // A length past what a u64 counts (read as u64::MAX): no
                // such body will ever be whole, streamed or not.
                BodyFraming::Length(u64::MAX) => return Err(ResponseError::BodyTooLarge),
                _ if self.streams => Body::Stream(match framing {
                    BodyFraming::Length(n) => Incoming::Length(n),
                    BodyFraming::Chunked => Incoming::chunked(u64::MAX, 4096, self.max_head),
                    BodyFraming::UntilClose => Incoming::UntilClose,
                }),
                BodyFraming::Chunked => Body::Chunked(
                    Box::new(ChunkedDecoder::new(
                        self.max_body.min(usize::MAX as u64),
                        4096,
                        self.max_head,
                    )),
                    len,
                    len,
                ),
                // At most half the address space, which no buffer holds:
                // `head + n` cannot wrap, whatever the limit.
                BodyFraming::Length(n) if n <= self.max_body.min((usize::MAX / 2) as u64) => {
                    Body::Length(n as usize)
                }
                BodyFraming::Length(_) => return Err(ResponseError::BodyTooLarge),
                BodyFraming::UntilClose => Body::UntilClose,
            };
            let keep_alive = summary.keeps_alive(version)
                && !summary.claims_body_on_204(status)
                && !matches!(body, Body::UntilClose | Body::Stream(Incoming::UntilClose))
                && status != StatusCode::SWITCHING_PROTOCOLS;
            let response = ParsedResponse {
                status,
                version,
                reason: string_short(ascii_str(&buf[line.reason]).unwrap_or_default()),
                headers: fields,
                body: Vec::new(),
                tls: None,
            };
            if self.spans.capacity() > SPANS_KEPT {
                self.spans = Vec::new();
            }
            self.head = Some(Head {
                response,
                len,
                body,
                keep_alive,
            });
            return Ok(true);
        }
    }
}

/// The field at `span` of a parsed head, copied out. A name is a token:
/// ASCII. Both are copied with loads and stores (see `short_copy`).
#[inline(always)]
fn field_at(buf: &[u8], span: &HeaderSpan) -> (String, Vec<u8>) {
    let name = ascii_str(&buf[span.name.clone()]).unwrap_or_default();
    (string_short(name), to_vec_short(&buf[span.value.clone()]))
}

/// Replaces each obs-fold of a response head (a line end followed by a
/// space or tab) with spaces, as RFC 9112 §5.2 asks of a user agent and
/// allows a proxy: the folded value reads as one, with spaces where the
/// line ended. The head's end (an empty line) stops it, so no byte of a
/// body is touched; a fold not yet whole (a line end last in `buf`) waits
/// for the next byte. Requests keep refusing folds (400), as servers must.
/// Returns how many it replaced.
fn unfold(buf: &mut [u8]) -> usize {
    let mut unfolded = 0;
    // Past the empty lines a server may send before its status line, and
    // past that line: a line that begins with white space right after it
    // continues no field, and is left for the head to be refused (RFC 9112
    // §2.2), not taken into the reason phrase.
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let Some(status_line) = buf[blank..].iter().position(|&b| b == b'\n') else {
        return 0;
    };
    let mut i = blank + status_line + 1;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b' ' | b'\t') => {
                    buf[i] = b' ';
                    if i > 0 && buf[i - 1] == b'\r' {
                        buf[i - 1] = b' ';
                    }
                    unfolded += 1;
                }
                // An empty line: the head is over.
                Some(b'\r' | b'\n') => return unfolded,
                _ => {}
            }
        }
        i += 1;
    }
    unfolded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body the server sends that memory cannot hold is refused
    /// (`NoMemory`), where the buffer's growth aborted the process.
    #[test]
    fn a_body_no_memory_is_free_for_is_refused() {
        let mut parser = ResponseParser::new(false);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n";
        assert_eq!(parser.feed(head), Ok(None));
        assert_eq!(parser.feed(&[b'a'; 40 * 1024]), Ok(None));
        let fed = crate::test_alloc::with_allocations_failing_from(32 * 1024, || {
            parser.feed(&[b'a'; 48 * 1024])
        });
        assert_eq!(fed, Err(ResponseError::NoMemory));
    }

    #[test]
    fn only_chunked_is_a_coding_the_parser_takes_off() {
        let coded = |fields: &[(&str, &str)]| {
            let response = ParsedResponse {
                status: StatusCode::OK,
                version: Version::Http11,
                reason: String::new(),
                headers: (fields.iter())
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                body: Vec::new(),
                tls: None,
            };
            let coding = response.undecoded_coding();
            coding.map(|c| String::from_utf8_lossy(c).into_owned())
        };
        let te = |value| coded(&[("Transfer-Encoding", value)]);
        assert_eq!(te("chunked"), None);
        assert_eq!(te(" Chunked "), None);
        assert_eq!(te("gzip, chunked").as_deref(), Some("gzip"));
        assert_eq!(te("gzip").as_deref(), Some("gzip"));
        assert_eq!(te("chunked, ,identity").as_deref(), Some("identity"));
        let two = [
            ("Transfer-Encoding", "chunked"),
            ("transfer-encoding", "br"),
        ];
        assert_eq!(coded(&two).as_deref(), Some("br"));
        assert_eq!(coded(&[("Content-Length", "3")]), None);
    }

    /// A head sent a byte at a time is parsed once per line (not per byte),
    /// and still read right; what is not HTTP fails within its first bytes.
    #[test]
    fn a_head_a_byte_at_a_time_is_read_right_and_garbage_fails_at_once() {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..50 {
            wire.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(500)).as_bytes());
        }
        wire.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        let mut parser = ResponseParser::new(false);
        let mut got = None;
        for byte in wire.chunks(1) {
            got = got.or(parser.feed(byte).expect("valid"));
        }
        let response = got.expect("complete");
        assert_eq!(response.body, b"ok");
        assert_eq!(response.headers.len(), 51);
        let mut parser = ResponseParser::new(false);
        let garbage = b"SSH-2.0-OpenSSH_9.2p1 Debian";
        let failed = garbage.iter().position(|b| parser.feed(&[*b]).is_err());
        assert!(failed.is_some_and(|at| at < 12), "{failed:?}");
        // In one read, or in reads of any size, without a line end: an
        // HTTP/2 server's first frame, a mail server's greeting.
        let mut h2 = b"\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec();
        h2.resize(50, 0x7f);
        for garbage in [
            &h2[..],
            b"220 mail.test ESMTP ready, more than twelve bytes",
        ] {
            for step in [1, 5, 10, 13, garbage.len()] {
                let mut parser = ResponseParser::new(false);
                let failed = garbage
                    .chunks(step)
                    .position(|piece| parser.feed(piece).is_err());
                assert!(
                    failed.is_some_and(|at| at * step < 12),
                    "step {step}: {failed:?}"
                );
            }
        }
    }

    /// A folded field of a response is read as one value, spaces where its
    /// lines ended, however the head arrives; the body is left as it came.
    #[test]
    fn a_folded_response_field_is_unfolded_and_the_body_left_alone() {
        let wire = b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\tthree\r\nContent-Length: 8\r\n\r\nab\r\n cd\n";
        for step in [1, 3, wire.len()] {
            let mut parser = ResponseParser::new(false);
            let mut got = None;
            for piece in wire.chunks(step) {
                got = got.or(parser.feed(piece).expect("valid"));
            }
            let response = got.expect("complete");
            let value = response
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-a"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            let words: Option<Vec<String>> =
                value.map(|v| v.split_whitespace().map(str::to_string).collect());
            assert_eq!(
                words,
                Some(vec!["one".into(), "two".into(), "three".into()]),
                "step {step}"
            );
            assert_eq!(response.body, b"ab\r\n cd\n", "step {step}");
        }
    }

    /// A line that begins with white space right after the status line
    /// folds onto no field: the head is refused (RFC 9112 §2.2), however it
    /// arrives, not read with that line in its reason phrase.
    #[test]
    fn white_space_before_the_first_field_is_refused() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: 0\r\n\r\n"[..],
            b"\r\nHTTP/1.1 200 OK\r\n\tX-A: 1\r\nX-B: b\r\n c\r\n\r\n",
            b"HTTP/1.1 204 No Content\n X-A: 1\n\n",
        ] {
            for step in [1, 3, wire.len()] {
                let mut parser = ResponseParser::new(false);
                let failed = wire
                    .chunks(step)
                    .map(|piece| parser.feed(piece))
                    .find_map(Result::err);
                assert_eq!(failed, Some(ResponseError::MalformedHead), "step {step}");
            }
        }
    }

    /// Folded lines have a limit of their own: a server sending a head of
    /// thousands of folds, a line at a time, would have the head parsed and
    /// unfolded again for each.
    #[test]
    fn a_head_of_more_folds_than_allowed_is_refused() {
        let head = |folds| {
            [
                &b"HTTP/1.1 200 OK\r\nX: a\r\n"[..],
                &b" b\r\n".repeat(folds),
            ]
            .concat()
        };
        let lines = |wire: &[u8]| -> Vec<Vec<u8>> {
            wire.split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect()
        };
        let mut parser = ResponseParser::new(false);
        let wire = [head(MAX_FOLDS), b"Content-Length: 0\r\n\r\n".to_vec()].concat();
        let whole = lines(&wire)
            .iter()
            .map(|line| parser.feed(line))
            .find(|r| r != &Ok(None));
        assert!(matches!(whole, Some(Ok(Some(_)))), "{whole:?}");
        let mut parser = ResponseParser::new(false);
        let refused = lines(&head(MAX_FOLDS + 1))
            .iter()
            .position(|line| parser.feed(line).is_err());
        // The status line and `X: a` come first.
        assert_eq!(
            refused,
            Some(2 + MAX_FOLDS),
            "refused at the fold past the limit"
        );
        let mut parser = ResponseParser::new(false);
        assert_eq!(parser.feed(&head(1000)), Err(ResponseError::HeadTooLarge));
    }

    /// Up to 512 fields pass (a response heavy with `Set-Cookie` passes
    /// 128, which was the limit), fed whole or a line at a time; one more
    /// is refused as what it is; and the room a long head took is given
    /// back once it is parsed.
    #[test]
    fn a_head_of_512_fields_passes_and_one_more_is_refused() {
        let head = |fields: usize| {
            let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..fields - 1 {
                wire.extend(format!("Set-Cookie: c{i}=v\r\n").as_bytes());
            }
            wire.extend(b"Content-Length: 2\r\n\r\nok");
            wire
        };
        for by_line in [false, true] {
            let mut parser = ResponseParser::new(false);
            let wire = head(MAX_FIELDS);
            let pieces: Vec<&[u8]> = match by_line {
                true => wire.split_inclusive(|&b| b == b'\n').collect(),
                false => vec![&wire[..]],
            };
            let got = pieces
                .iter()
                .map(|piece| parser.feed(piece))
                .find(|r| r != &Ok(None));
            let response = match got {
                Some(Ok(Some(response))) => response,
                other => panic!("by line {by_line}: {other:?}"),
            };
            assert_eq!(response.headers.len(), MAX_FIELDS);
            assert_eq!(response.body, b"ok");
            assert!(parser.spans.capacity() <= SPANS_KEPT);
            let mut parser = ResponseParser::new(false);
            let refused = head(MAX_FIELDS + 1)
                .split_inclusive(|&b| b == b'\n')
                .map(|line| parser.feed(line))
                .find_map(Result::err);
            assert_eq!(refused, Some(ResponseError::TooManyFields));
        }
        assert_eq!(
            ResponseError::TooManyFields.to_string(),
            "response head has more than 512 header fields"
        );
    }

    /// Any number of interim responses in one read are passed over to the
    /// final one, its body right, however the bytes are split. (That they
    /// leave the buffer at once, not one by one, is a cost no test times.)
    #[test]
    fn thousands_of_interim_responses_in_one_read_lead_to_the_final_one() {
        let mut wire = b"HTTP/1.1 102 Processing\r\n\r\n".repeat(4000);
        wire.extend(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast");
        for step in [wire.len(), 4096, 7] {
            let mut parser = ResponseParser::new(false);
            let got = wire
                .chunks(step)
                .map(|piece| parser.feed(piece))
                .find(|r| r != &Ok(None));
            let Some(Ok(Some(response))) = got else {
                panic!("{got:?} fed {step} at a time");
            };
            assert_eq!(
                (response.status.as_u16(), &response.body[..]),
                (200, &b"last"[..])
            );
        }
    }

    /// A few empty lines before the status line are passed over; a run of
    /// them (each one a parse from the start) is refused early.
    #[test]
    fn a_few_empty_lines_before_the_status_line_pass_and_many_do_not() {
        let mut parser = ResponseParser::new(false);
        let wire = b"\r\n\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(wire
            .chunks(1)
            .any(|b| parser.feed(b).expect("valid").is_some()));
        let mut parser = ResponseParser::new(false);
        let failed = (0..65536).position(|_| parser.feed(b"\r\n").is_err());
        assert!(failed.is_some_and(|at| at < 8), "{failed:?}");
    }

    /// Without a limit a length past what a buffer holds is still too large
    /// (`head + n` wrapped, and the body's range panicked).
    #[test]
    fn a_length_no_buffer_could_hold_is_too_large_even_without_a_limit() {
        for n in [usize::MAX as u64, usize::MAX as u64 - 1, u64::MAX - 1] {
            let mut parser = ResponseParser::new(false).with_max_body(usize::MAX);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\nabc");
            let got = parser.feed(head.as_bytes());
            assert!(
                matches!(got, Err(ResponseError::BodyTooLarge)),
                "{n}: {got:?}"
            );
        }
    }

    /// A length with more digits than a u64 holds is refused streaming too,
    /// rather than read until the connection ends.
    #[test]
    fn a_length_past_a_u64_is_refused_when_streaming() {
        let mut parser = ResponseParser::streaming(false);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(parser.feed(head), Err(ResponseError::BodyTooLarge));
    }

    /// A body of one-byte chunks with kilobytes of extension each is held
    /// at about its decoded size while it arrives.
    #[test]
    fn a_chunked_body_does_not_keep_its_framing() {
        let chunk = format!("1;e={}\r\nB\r\n", "y".repeat(4000));
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..1000 {
            wire.extend_from_slice(chunk.as_bytes());
        }
        wire.extend_from_slice(b"0\r\n\r\nHTTP/1.1");
        let mut parser = ResponseParser::new(false);
        let (mut most, mut response) = (0, None);
        for piece in wire.chunks(16 * 1024) {
            response = response.or(parser.feed(piece).expect("valid"));
            most = most.max(parser.buf.capacity());
        }
        assert!(most < 128 * 1024, "held {most} bytes");
        assert_eq!(response.expect("complete").body, vec![b'B'; 1000]);
        assert!(
            !parser.is_reusable(),
            "bytes after the body spoil the connection"
        );
    }

    /// Feeds `input` whole, split in two at every offset and byte by byte:
    /// each way must complete at the last byte with the same response.
    fn parse(input: &[u8], head_only: bool) -> ParsedResponse {
        let whole = ResponseParser::new(head_only)
            .feed(input)
            .expect("valid")
            .expect("complete");
        for split in 0..input.len() {
            let mut p = ResponseParser::new(head_only);
            let first = p.feed(&input[..split]).expect("valid");
            assert_eq!(first, None, "complete too early at {split}");
            assert_eq!(
                p.feed(&input[split..]).expect("valid").as_ref(),
                Some(&whole)
            );
        }
        whole
    }

    #[test]
    fn interim_responses_are_skipped_until_the_final_one() {
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            false,
        );
        assert_eq!((r.status.as_u16(), r.body.as_slice()), (200, &b"final"[..]));
        assert!(
            r.header("link").is_none(),
            "fields of an interim response are not the final's"
        );
    }

    /// Interim responses other than 100 are kept for the caller, in order,
    /// however the bytes come; at most eight before one response.
    #[test]
    fn interim_responses_are_kept_in_order_but_100_and_the_excess_are_not() {
        let wire = [
            &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
            b"HTTP/1.1 102 Processing\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        for step in [1, wire.len()] {
            let mut parser = ResponseParser::new(false);
            let mut kept = Vec::new();
            for piece in wire.chunks(step) {
                parser.feed(piece).expect("valid");
                kept.extend(std::iter::from_fn(|| parser.take_interim()));
            }
            let seen: Vec<_> = kept.iter().map(|r| r.status.as_u16()).collect();
            assert_eq!(seen, [103, 102], "fed {step} at a time");
            assert_eq!(kept[0].header("link"), Some(&b"</a.css>"[..]));
        }
        let flood = b"HTTP/1.1 103 Early Hints\r\n\r\n".repeat(20);
        let mut parser = ResponseParser::new(false);
        assert_eq!(parser.feed(&flood).expect("valid"), None);
        assert_eq!(std::iter::from_fn(|| parser.take_interim()).count(), 8);
    }

    #[test]
    fn no_content_and_not_modified_end_at_their_head_whatever_length_they_state() {
        for (head, status) in [
            (
                &b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"[..],
                204,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n",
                304,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                304,
            ),
        ] {
            let r = parse(head, false);
            assert_eq!((r.status.as_u16(), r.body.len()), (status, 0));
        }
    }

    #[test]
    fn a_response_to_head_has_no_body_whatever_its_length() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true);
        assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
        assert_eq!(r.header("content-length"), Some(&b"100"[..]));
    }

    #[test]
    fn switching_protocols_is_final() {
        let r = parse(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            false,
        );
        assert_eq!(r.status.as_u16(), 101);
    }
}

#[cfg(test)]
mod framing_tests {
    use super::*;

    fn first_error(input: &[u8]) -> ResponseError {
        let mut parser = ResponseParser::new(false);
        match parser.feed(input) {
            Err(e) => e,
            Ok(_) => parser.finish().expect_err("an error"),
        }
    }

    /// The rules a request is held to hold for a response too: nothing
    /// that two readers could frame differently gets through.
    #[test]
    fn ambiguous_framing_is_refused_as_it_is_in_requests() {
        for (input, error) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                FramingError::LengthAndTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                FramingError::ConflictingLengths,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
                FramingError::InvalidLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
                FramingError::InvalidLength,
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                FramingError::TransferEncodingInHttp10,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                FramingError::InvalidTransferEncoding,
            ),
        ] {
            assert_eq!(
                first_error(input),
                ResponseError::Framing(error),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_coding_after_chunked_is_read_until_close_and_not_reused() {
        let mut parser = ResponseParser::new(false);
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(parser.feed(head).unwrap(), None);
        assert_eq!(parser.feed(b"raw bytes").unwrap(), None);
        let response = parser.finish().unwrap();
        assert_eq!(response.body, b"raw bytes");
        assert!(!parser.is_reusable());
    }

    #[test]
    fn reuse_needs_keep_alive_and_nothing_after_the_response() {
        let cases: [(&[u8], bool); 10] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", true),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx",
                true,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", false),
            // A 204 that claims a body may be followed by it.
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (
                b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                false,
            ),
            // A 304's length is its representation's (RFC 9110 §8.6).
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
        ];
        for (input, reusable) in cases {
            let mut parser = ResponseParser::new(false);
            assert!(parser.feed(input).unwrap().is_some());
            assert_eq!(
                parser.is_reusable(),
                reusable,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        // An HTTP/1.0 response with Transfer-Encoding has faulty framing
        // (RFC 9112 §6.1), even where it has no body: not reused.
        for (input, to_head) in [
            (&b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"[..], true),
            (b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n", false),
        ] {
            let mut parser = ResponseParser::new(to_head);
            assert!(parser.feed(input).unwrap().is_some());
            assert!(!parser.is_reusable(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bodies_over_the_limit_are_refused_however_they_are_framed() {
        for input in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n123456789",
        ] {
            let mut parser = ResponseParser::new(false).with_max_body(8);
            assert_eq!(parser.feed(input), Err(ResponseError::BodyTooLarge));
        }
    }
}
