//! The client side: reading one response from the bytes a server sends.

use super::chunked::ChunkedDecoder;
use super::StatusCode;

/// A complete response as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as sent.
    pub reason: String,
    /// Header fields in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
}

impl ParsedResponse {
    /// The value of the first header field with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Why a response could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The status line or a header field is malformed.
    MalformedHead,
    /// The head is larger than the parser accepts.
    HeadTooLarge,
    /// The `Content-Length` field is invalid or contradictory.
    InvalidLength,
    /// The chunked body is malformed or too large.
    InvalidChunked,
    /// The body is larger than the parser accepts.
    BodyTooLarge,
    /// The connection closed before the response was complete.
    Truncated,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseError::MalformedHead => "malformed response head",
            ResponseError::HeadTooLarge => "response head too large",
            ResponseError::InvalidLength => "invalid Content-Length in response",
            ResponseError::InvalidChunked => "malformed chunked response body",
            ResponseError::BodyTooLarge => "response body too large",
            ResponseError::Truncated => "connection closed before the response was complete",
        })
    }
}

impl std::error::Error for ResponseError {}

#[derive(Debug)]
enum BodyKind {
    Length(usize),
    Chunked(ChunkedDecoder, usize, usize),
    UntilClose,
}

/// Reads one response, fed incrementally; skips interim `1xx` responses.
///
/// ```
/// use edgepoll::http::ResponseParser;
/// let mut parser = ResponseParser::new(false);
/// assert_eq!(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
/// let response = parser.feed(b"gth: 2\r\n\r\nhi").unwrap().unwrap();
/// assert_eq!(response.body, b"hi");
/// ```
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    head_only: bool,
    head: Option<(ParsedResponse, usize, BodyKind)>,
    max_head: usize,
    max_body: usize,
}

impl ResponseParser {
    /// A parser for the response to one request; `head_only` is true when the
    /// request was `HEAD`, whose response has no body.
    pub fn new(head_only: bool) -> Self {
        ResponseParser {
            buf: Vec::new(),
            head_only,
            head: None,
            max_head: 64 * 1024,
            max_body: 1 << 30,
        }
    }

    /// Feeds received bytes; returns the response once it is complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<ParsedResponse>, ResponseError> {
        self.buf.extend_from_slice(data);
        if self.head.is_none() && !self.parse_head()? {
            return Ok(None);
        }
        let Some((_, head_len, kind)) = &mut self.head else {
            return Ok(None);
        };
        let body_end = match kind {
            BodyKind::Length(n) => {
                if self.buf.len() < *head_len + *n {
                    return Ok(None);
                }
                *head_len + *n
            }
            BodyKind::Chunked(decoder, read, written) => {
                let p = decoder
                    .decode_in_place(&mut self.buf, *read, *written)
                    .map_err(|_| ResponseError::InvalidChunked)?;
                (*read, *written) = (p.read, p.written);
                if !p.done {
                    return Ok(None);
                }
                p.written
            }
            BodyKind::UntilClose => return Ok(None),
        };
        Ok(self.take(body_end))
    }

    /// Tells the parser the connection closed; completes a response whose body
    /// runs until close, and reports any other incomplete response as truncated.
    pub fn finish(&mut self) -> Result<ParsedResponse, ResponseError> {
        match &self.head {
            Some((_, _, BodyKind::UntilClose)) => {
                let end = self.buf.len();
                self.take(end).ok_or(ResponseError::Truncated)
            }
            _ => Err(ResponseError::Truncated),
        }
    }

    fn take(&mut self, body_end: usize) -> Option<ParsedResponse> {
        let (mut response, head_len, _) = self.head.take()?;
        response.body = self.buf[head_len..body_end].to_vec();
        Some(response)
    }

    fn parse_head(&mut self) -> Result<bool, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.buf.len() > self.max_head => {
                return Err(ResponseError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
            Err(_) => return Err(ResponseError::MalformedHead),
        };
        let status = parsed
            .code
            .and_then(StatusCode::from_u16)
            .ok_or(ResponseError::MalformedHead)?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut fields = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let text =
                    std::str::from_utf8(h.value).map_err(|_| ResponseError::InvalidLength)?;
                let n: usize = text
                    .trim()
                    .parse()
                    .map_err(|_| ResponseError::InvalidLength)?;
                if length.is_some_and(|old| old != n) {
                    return Err(ResponseError::InvalidLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            fields.push((h.name.to_string(), h.value.to_vec()));
        }
        let response = ParsedResponse {
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            headers: fields,
            body: Vec::new(),
        };
        if status.as_u16() < 200 && status.as_u16() != 101 {
            // An interim response (100 Continue, 103 Early Hints): the real
            // one follows. 101 is final: the connection changes protocol.
            self.buf.drain(..head_len);
            return self.parse_head();
        }
        let kind = if self.head_only || status.forbids_body() {
            BodyKind::Length(0)
        } else if chunked {
            BodyKind::Chunked(
                ChunkedDecoder::new(self.max_body, 4096, self.max_head),
                head_len,
                head_len,
            )
        } else if let Some(n) = length {
            if n > self.max_body {
                return Err(ResponseError::BodyTooLarge);
            }
            BodyKind::Length(n)
        } else {
            BodyKind::UntilClose
        };
        self.head = Some((response, head_len, kind));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
