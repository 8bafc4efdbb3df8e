//! Responses that a [`Service`](super::Service) returns, and their encoding.

use super::body::Outgoing;
use super::date::{response_stamp, stamping};
use super::framing::{is_field_value, is_framing_field};
use super::scan::{eq_ignore_ascii_case, is_token};
use super::StatusCode;
use crate::short_copy::push_all;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A response's header fields, the first few held inline (no allocation).
type Fields<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, [u8]>); 4]>;

/// A response: status, header fields and body.
///
/// The connection owns framing: it writes `Content-Length` and `Connection`
/// itself, so a service's own `Content-Length`, `Transfer-Encoding` and
/// `Connection` fields are dropped, with three exceptions: a service's
/// `Connection: close` is honoured (the connection closes after this
/// response); a `Connection` field listing `Upgrade` (a 426's) is sent as
/// `Connection: Upgrade`; and a HEAD answered without the body keeps the
/// service's `Content-Length`, the one length the connection cannot know.
/// A `Transfer-Encoding` naming a coding other than chunked (`gzip`, a
/// response passed on as an upstream sent it) would leave the client
/// with coded bytes it cannot tell from the body: a response with a
/// body (or a HEAD's, which gets what GET would) and such a field is
/// answered 500 in its place, and the connection closes.
/// (`Content-Encoding` is the field for a compressed body.)
///
/// ```
/// use edgepoll::http::{Response, StatusCode};
/// let response = Response::new(StatusCode::OK)
///     .header("Content-Type", "text/plain")
///     .body("hi\n");
/// assert_eq!(response.status(), StatusCode::OK);
/// ```
///
/// `'a` is invariant (the fields are a `SmallVec`, which is): a
/// `Response<'static>` is not taken where a `Response<'a>` is asked for. A
/// helper that makes responses takes the lifetime from its caller:
///
/// ```
/// use edgepoll::http::{Reply, Response, StatusCode};
/// fn text<'a>(status: StatusCode, body: &'static str) -> Response<'a> {
///     Response::new(status).header("Content-Type", "text/plain").body(body)
/// }
/// fn refuse<'a>() -> Reply<'a> {
///     Reply::Now(text(StatusCode::FORBIDDEN, "no\n"))
/// }
/// # let _ = refuse();
/// ```
#[derive(Clone, Debug)]
pub struct Response<'a> {
    status: StatusCode,
    headers: Fields<'a>,
    body: Cow<'a, [u8]>,
    /// A `Transfer-Encoding` field names a coding other than chunked
    /// (see [`Response`]): noted as fields are added, so that
    /// writing a response looks at one flag.
    coded: bool,
}

impl<'a> Response<'a> {
    /// An empty response with this status.
    ///
    /// ```
    /// use edgepoll::http::{Response, StatusCode};
    /// let empty = Response::new(StatusCode::NO_CONTENT);
    /// assert!(empty.body_bytes().is_empty());
    /// ```
    #[inline]
    pub fn new(status: StatusCode) -> Self {
        Response {
            status,
            headers: Fields::new(),
            body: Cow::Borrowed(&[]),
            coded: false,
        }
    }

    /// Adds a header field. Fields whose name is not a token (RFC 9110
    /// §5.1: no space, colon or control byte) or whose value holds a
    /// control byte (CR, LF, NUL...; tab aside) or DEL are left out when
    /// the response is written: they cannot split the response or add a
    /// field of their own, and what goes out is what a parser of fields
    /// takes (RFC 9110 §5.5).
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// fn moved<'a>(_: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::MOVED_PERMANENTLY)
    ///         .header("Location", "/new")
    ///         .header("Bad\r\nName", "dropped") // not a token: left out
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /old HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut moved);
    /// let out = String::from_utf8_lossy(conn.pending_output()).into_owned();
    /// assert!(out.contains("\r\nLocation: /new\r\n") && !out.contains("dropped"));
    /// ```
    #[inline]
    pub fn header(mut self, name: impl Into<Cow<'a, str>>, value: impl AsBytes<'a>) -> Self {
        self.append_header(name, value);
        self
    }

    /// Adds a header field in place, as [`header`](Self::header) does: for
    /// a loop over many fields, where the builder would move the whole
    /// response (120 bytes in a wasm32 build, moved with a `memory.copy`) at
    /// each one.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    ///
    /// fn tagged<'a>(_: &Request<'a>) -> Response<'a> {
    ///     let mut response = Response::new(StatusCode::OK);
    ///     for (name, value) in [("Cache-Control", "no-store"), ("X-Served-By", "edgepoll")] {
    ///         response.append_header(name, value);
    ///     }
    ///     response
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut tagged);
    /// let out = String::from_utf8_lossy(conn.pending_output()).into_owned();
    /// assert!(out.contains("\r\nCache-Control: no-store\r\nX-Served-By: edgepoll\r\n"));
    /// ```
    #[inline]
    pub fn append_header(&mut self, name: impl Into<Cow<'a, str>>, value: impl AsBytes<'a>) {
        let (name, value) = (name.into(), value.into_bytes());
        if name.len() == 17 {
            self.coded |= names_a_coding_in(&name, &value);
        }
        self.headers.push((name, value));
    }

    /// Sets the body.
    ///
    /// ```
    /// use edgepoll::http::{Response, StatusCode};
    /// let owned = Response::new(StatusCode::OK).body(vec![1u8, 2, 3]);
    /// let borrowed = Response::new(StatusCode::OK).body("text");
    /// assert_eq!((owned.body_bytes(), borrowed.body_bytes()), (&[1u8, 2, 3][..], &b"text"[..]));
    /// ```
    #[inline]
    pub fn body(mut self, body: impl AsBytes<'a>) -> Self {
        self.body = body.into_bytes();
        self
    }

    /// The status.
    ///
    /// ```
    /// use edgepoll::http::{Response, StatusCode};
    /// assert_eq!(Response::new(StatusCode::NOT_FOUND).status().as_u16(), 404);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    ///
    /// ```
    /// use edgepoll::http::{Response, StatusCode};
    /// assert_eq!(Response::new(StatusCode::OK).body("hi").body_bytes(), b"hi");
    /// ```
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Whether a field names a transfer coding the connection would not
    /// (see [`Response`]): it is answered by a 500.
    pub(crate) fn is_coded(&self) -> bool {
        self.coded
    }

    /// Appends the encoded response to `out` in one piece, so that it leaves in
    /// one send: a head sent apart from its body stalls on Nagle's algorithm,
    /// which WasmEdge sockets cannot turn off. `keep_alive` says whether the
    /// connection may stay open; returns whether it does (not when the
    /// service's own `Connection` field says `close`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, keep_alive: KeepAlive, head_only: bool) -> bool {
        let body_allowed = !self.status.forbids_body();
        // 101 hands the connection over: its `Connection: Upgrade` is the
        // service's to write, and nothing about keep-alive applies.
        let switching = self.status == StatusCode::SWITCHING_PROTOCOLS;
        if self.status.as_u16() < 200 && !switching {
            return refused_500(out, head_only, INTERIM);
        }
        // Where no body goes (a 204, a 304), a coding codes nothing; a
        // HEAD gets what GET would, without the body.
        if self.coded && body_allowed && !switching {
            return refused_500(out, head_only, CODED);
        }
        push_status_line(out, self.status);
        // A HEAD answered without the body: its length is not known here
        // (RFC 9110 §8.6: none, or the one GET would have), so the
        // service's own Content-Length goes, if it gave one.
        let length_given = head_only && body_allowed && self.body.is_empty();
        let kind = match switching {
            true => HeadKind::Switching,
            false => HeadKind::Final,
        };
        let service_closes = self.push_fields(out, kind, length_given, false);
        if !switching && stamping() {
            self.push_date(out, false);
        }
        let length = Decimal::new(if body_allowed { self.body.len() } else { 0 } as u64);
        let stays_open = switching || (!service_closes && keep_alive != KeepAlive::No);
        // The head's end, each with the CRLF of a Content-Length line
        // before it, to go in one piece with it.
        let end: &[u8] = match (switching, stays_open, keep_alive) {
            (true, _, _) if self.names_upgrade() => b"\r\n\r\n",
            // A 101 names its upgrade among the connection's options (RFC
            // 9110 §7.8), which a client checks (RFC 6455 §4.1).
            (true, _, _) => b"\r\nConnection: Upgrade\r\n\r\n",
            (_, false, _) => b"\r\nConnection: close\r\n\r\n",
            (_, true, KeepAlive::Http10) => b"\r\nConnection: keep-alive\r\n\r\n",
            (_, true, _) => b"\r\n\r\n",
        };
        let (name, digits, end): (&[u8], &[u8], &[u8]) = match body_allowed && !length_given {
            true => (b"Content-Length: ", length.as_bytes(), end),
            false => (b"", b"", &end[2..]),
        };
        let body: &[u8] = match body_allowed && !head_only && !switching {
            true => &self.body,
            false => b"",
        };
        push_all(out, [name, digits, end, body], false);
        stays_open
    }

    /// Appends the service's fields for a head of `kind`; returns
    /// whether one of them was `Connection: close`. `length_given`: the
    /// service's Content-Length (digits only) goes too. `short`: see
    /// [`push_all`].
    #[inline(always)]
    fn push_fields(
        &self,
        out: &mut Vec<u8>,
        kind: HeadKind,
        mut length_given: bool,
        short: bool,
    ) -> bool {
        let mut service_closes = false;
        for (name, value) in &self.headers {
            let (name, value) = (name.as_bytes(), &value[..]);
            // A 101's own `Connection` names the upgrade, and goes as given;
            // nothing frames a body it does not have.
            let switching_options = kind == HeadKind::Switching && name.len() == 10;
            if is_framing_field(name) && !switching_options {
                if length_given && name.len() == 14 && push_given_length(out, value) {
                    // One is enough: a second, even the same, is a fault
                    // some readers refuse the response for.
                    length_given = false;
                }
                if name.len() == 10 {
                    service_closes |= lists_option(value, b"close");
                    // A 426 names its Upgrade option (RFC 9110 §7.8), which
                    // the connection's own field would not.
                    if kind == HeadKind::Final && lists_option(value, b"upgrade") {
                        push_all(out, [b"Connection: Upgrade\r\n"], short);
                    }
                }
                continue;
            }
            // Names are the service's own, perhaps from a request's input:
            // one that is not a token (`Set-Cookie: x;y` would read as a
            // field of the attacker's choice, `Content-Length ` as a second
            // length) leaves the field out, as a control byte in a value
            // (which would break the head) does.
            if !is_token(name) || !is_field_value(value) {
                continue;
            }
            push_all(out, [name, b": ", value, b"\r\n"], short);
        }
        service_closes
    }

    /// Appends the loop's `Date` (see `ServerOptions::date`) unless the
    /// service gave its own. Out of line: a loop that does not date pays
    /// only the look at its flag.
    #[inline(never)]
    fn push_date(&self, out: &mut Vec<u8>, short: bool) {
        // One whose value `push_fields` left out (a control byte) is none.
        let given = self.headers.iter().any(|(name, value)| {
            name.len() == 4
                && eq_ignore_ascii_case(name.as_bytes(), b"date")
                && is_field_value(value)
        });
        if let (false, Some(date)) = (given, response_stamp()) {
            push_all(out, [b"Date: ", &date, b"\r\n"], short);
        }
    }

    /// Whether an `Upgrade` field of the service's names a protocol, as
    /// a 101 must (RFC 9110 §7.8): a switch to nothing named would leave
    /// the client to guess what the connection now speaks.
    #[cold]
    pub(crate) fn names_protocol(&self) -> bool {
        self.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("upgrade")
                && crate::http::framing::list_items(value).next().is_some()
        })
    }

    /// Whether a `Connection` field of the service's names `upgrade`.
    #[cold]
    fn names_upgrade(&self) -> bool {
        self.headers.iter().any(|(name, value)| {
            let name = name.as_bytes();
            name.len() == 10 && is_framing_field(name) && lists_option(value, b"upgrade")
        })
    }

    /// Appends an interim response's head (status and fields, none that
    /// frames a message or names the connection's options: an interim
    /// response has neither body nor say over the connection).
    pub(crate) fn encode_interim(&self, out: &mut Vec<u8>) {
        push_status_line(out, self.status);
        self.push_fields(out, HeadKind::Interim, false, true);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the head of a response whose body is streamed after it:
    /// `length` bytes, or chunked where the peer speaks HTTP/1.1
    /// (`chunked_ok`), or until the connection closes. Returns whether the
    /// connection stays open, how the body's pieces are framed (none for
    /// a status without a body; dropped for HEAD), and whether a whole 500
    /// went in the head's place. Names and values are
    /// copied with loads and stores: a streamed head is nearly always a
    /// forwarder's, which WasmEdge runs compiled (see `short_copy`).
    pub(crate) fn encode_streamed(
        &self,
        out: &mut Vec<u8>,
        keep_alive: KeepAlive,
        head_only: bool,
        length: Option<u64>,
        chunked_ok: bool,
    ) -> StreamedHead {
        if self.status.as_u16() < 200 {
            return StreamedHead::refused(refused_500(out, head_only, INTERIM));
        }
        let body_allowed = !self.status.forbids_body();
        if self.coded && body_allowed {
            return StreamedHead::refused(refused_500(out, head_only, CODED));
        }
        push_status_line(out, self.status);
        let service_closes = self.push_fields(out, HeadKind::Final, false, true);
        if stamping() {
            self.push_date(out, true);
        }
        let mut stays_open = !service_closes && keep_alive != KeepAlive::No;
        let framing = match (body_allowed, length) {
            (false, _) => Outgoing::Length(0),
            (true, Some(n)) => {
                push_all(
                    out,
                    [b"Content-Length: ", Decimal::new(n).as_bytes(), b"\r\n"],
                    true,
                );
                Outgoing::Length(n)
            }
            // A HEAD's body is not sent, and how GET would frame it is not
            // known here: nothing is announced, and the connection stays.
            (true, None) if head_only => Outgoing::Discard,
            (true, None) if chunked_ok => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                Outgoing::Chunked
            }
            (true, None) => {
                // Without chunked coding, only the close can end the body.
                stays_open = false;
                Outgoing::Close
            }
        };
        // One copy of a constant length in each arm: a slice chosen by the
        // match would be copied with `memory.copy`.
        match (stays_open, keep_alive) {
            (false, _) => out.extend_from_slice(b"Connection: close\r\n\r\n"),
            (true, KeepAlive::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n\r\n"),
            (true, _) => out.extend_from_slice(b"\r\n"),
        }
        let framing = match head_only && body_allowed {
            true => Outgoing::Discard,
            false => framing,
        };
        StreamedHead {
            stays_open,
            framing,
            refused: false,
        }
    }
}

/// What [`Response::encode_streamed`] wrote.
pub(crate) struct StreamedHead {
    /// Whether the connection stays open after the response.
    pub(crate) stays_open: bool,
    /// How the body's pieces are framed.
    pub(crate) framing: Outgoing,
    /// A whole 500 went in the head's place (a head that cannot start a
    /// body: an interim status, a transfer coding not applied): no body
    /// of the service's follows.
    pub(crate) refused: bool,
}

impl StreamedHead {
    fn refused(stays_open: bool) -> StreamedHead {
        StreamedHead {
            stays_open,
            framing: Outgoing::Length(0),
            refused: true,
        }
    }
}

/// The kind of head whose fields are written: what of the service's own
/// framing and connection fields it takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadKind {
    /// A final response: the connection frames it, and says `Connection:
    /// Upgrade` for a 426 that names its option.
    Final,
    /// A 101: the service's `Connection` and `Upgrade` go as they are.
    Switching,
    /// An interim response: no framing, and no say over the connection.
    Interim,
}

/// Whether the connection may stay open after a response, and how to say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeepAlive {
    /// It closes: `Connection: close`.
    No,
    /// HTTP/1.1 stays open unless told otherwise: nothing to say.
    Http11,
    /// HTTP/1.0 closes unless told otherwise: `Connection: keep-alive`.
    Http10,
}

/// A service's Content-Length for a HEAD answered without the body, if it
/// is a length (digits, at most 19 of them: it fits a u64); whether it was.
#[cold]
#[inline(never)]
fn push_given_length(out: &mut Vec<u8>, value: &[u8]) -> bool {
    let digits = value.trim_ascii();
    let valid = !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit);
    if valid {
        push_all(out, [b"Content-Length: ", digits, b"\r\n"], false);
    }
    valid
}

/// A service's answer that cannot go as it is, replaced by a 500 saying
/// `why`, after which the connection closes. Returns false: it does not
/// stay open. For an interim status (1xx other than 101) in place of a
/// final one, the client would take it as interim and the next response
/// as this request's. For a `Transfer-Encoding` naming a coding other
/// than chunked (`gzip`, say, passed on from an upstream), the connection
/// frames the body itself and names no coding, so the client would take
/// the coded bytes for the body (`Content-Encoding` is the field for a
/// body a service compressed).
#[cold]
#[inline(never)]
fn refused_500(out: &mut Vec<u8>, head_only: bool, why: &'static [u8]) -> bool {
    Response::new(StatusCode::INTERNAL_SERVER_ERROR)
        .header("Content-Type", "text/plain")
        .body(why)
        .encode(out, KeepAlive::No, head_only)
}

/// The 500's body for an interim status.
const INTERIM: &[u8] = b"the service answered with an interim (1xx) status\n";
/// The 500's body for a transfer coding not applied.
const CODED: &[u8] = b"the service named a transfer coding the server does not apply\n";

/// Whether field `name: value` is a `Transfer-Encoding` naming a coding
/// other than chunked (or identity, which codes nothing: RFC 2616 had it).
#[cold]
fn names_a_coding_in(name: &str, value: &[u8]) -> bool {
    if !name.eq_ignore_ascii_case("transfer-encoding") {
        return false;
    }
    value.split(|&b| b == b',').any(|coding| {
        let coding = coding.trim_ascii();
        !coding.is_empty()
            && !coding.eq_ignore_ascii_case(b"chunked")
            && !coding.eq_ignore_ascii_case(b"identity")
    })
}

/// `HTTP/1.1 <code> <reason>\r\n`; the common 200 in one piece.
#[inline]
fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    let code = status.as_u16();
    if code == 200 {
        push_all(out, [b"HTTP/1.1 200 OK\r\n"], false);
        return;
    }
    // A status is three digits (100..=999): no formatting loop needed.
    let digit = |n: u16| b'0' + (n % 10) as u8;
    let line = [
        b'H',
        b'T',
        b'T',
        b'P',
        b'/',
        b'1',
        b'.',
        b'1',
        b' ',
        digit(code / 100),
        digit(code / 10),
        digit(code),
        b' ',
    ];
    push_all(out, [&line, status.reason().as_bytes(), b"\r\n"], false);
}

/// Whether a `Connection` value lists the `close` option.
fn lists_option(value: &[u8], option: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|listed| listed.trim_ascii().eq_ignore_ascii_case(option))
}

/// "00" to "99": two digits per division.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A number in decimal, formatted on the stack.
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    #[inline(always)]
    pub(crate) fn new(mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            i -= 1;
            digits[i] = b'0' + n as u8;
        }
        Decimal { digits, start: i }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// Things a header value or body can be made from: byte slices, strings and
/// their owned forms.
///
/// ```
/// use edgepoll::http::{Response, StatusCode};
/// let name = String::from("edgepoll");
/// let response = Response::new(StatusCode::OK)
///     .header("Server", name) // an owned String
///     .header("X-Raw", &b"\x01\x02"[..]) // borrowed bytes
///     .body(vec![b'h', b'i']); // an owned Vec<u8>
/// assert_eq!(response.body_bytes(), b"hi");
/// ```
pub trait AsBytes<'a> {
    /// The bytes, borrowed where possible.
    ///
    /// ```
    /// use edgepoll::http::AsBytes;
    /// use std::borrow::Cow;
    /// assert!(matches!("text".into_bytes(), Cow::Borrowed(bytes) if bytes == b"text"));
    /// // (String has an inherent `into_bytes`: name the trait.)
    /// assert!(matches!(AsBytes::into_bytes(String::from("owned")), Cow::Owned(_)));
    /// ```
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> AsBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a, const N: usize> AsBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> AsBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> AsBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> AsBytes<'a> for String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl<'a> AsBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_the_formatter() {
        let mut samples: Vec<u64> = (0..=10_000).collect();
        samples.extend((1..20).map(|p| 10u64.pow(p)));
        samples.extend((1..20).map(|p| 10u64.pow(p) - 1));
        samples.extend([u64::MAX, u64::MAX - 1, 1 << 32, 123_456_789_012]);
        for n in samples {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    /// A name that is not a token is left out: copied from input, it
    /// would add a field of the sender's choosing (`Set-Cookie: ...;x: 1`)
    /// or a second length (`Content-Length `). A value with a CR or LF is
    /// left out too. A 101 sends its own `Connection`, and no framing.
    #[test]
    fn fields_that_would_add_fields_are_left_out() {
        let mut out = Vec::new();
        Response::new(StatusCode::OK)
            .header("Set-Cookie: sid=evil; Path=/;x", "1")
            .header("Content-Length ", "5")
            .header("", "empty name")
            .header("X-Split", "a\r\nX-Injected: 1")
            .header("X-Kept", "yes")
            .body("hi")
            .encode(&mut out, KeepAlive::Http11, false);
        let wire = String::from_utf8(out).expect("text");
        assert_eq!(
            wire, "HTTP/1.1 200 OK\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nhi",
            "{wire}"
        );
        let mut out = Vec::new();
        Response::new(StatusCode::SWITCHING_PROTOCOLS)
            .header("Connection", "Upgrade")
            .header("Transfer-Encoding", "chunked")
            .header("Content-Length", "5")
            .encode(&mut out, KeepAlive::Http11, false);
        let wire = String::from_utf8(out).expect("text");
        assert_eq!(
            wire, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
            "{wire}"
        );
    }

    /// While a loop dates its responses (`ServerOptions::date`), every
    /// final response encoded on its thread carries the loop's `Date`,
    /// unless the service gave one; not a 101, not an interim response,
    /// and nothing once the loop is gone.
    #[test]
    fn with_the_loops_dates_on_each_final_response_without_one_is_dated() {
        use super::super::date::ResponseDates;
        let whole = |response: Response, head_only: bool| {
            let mut out = Vec::new();
            response.encode(&mut out, KeepAlive::Http11, head_only);
            String::from_utf8(out).expect("text")
        };
        let streamed = |response: Response| {
            let mut out = Vec::new();
            response.encode_streamed(&mut out, KeepAlive::Http11, false, None, true);
            String::from_utf8(out).expect("text")
        };
        let dates = ResponseDates::start(std::time::Instant::now(), true);
        let stamp = response_stamp().expect("stamped while the dates live");
        let field = format!("\r\nDate: {}\r\n", String::from_utf8_lossy(&stamp));
        for wire in [
            whole(Response::new(StatusCode::OK).body("hi"), false),
            whole(
                Response::new(StatusCode::NOT_FOUND).header("X-A", "1"),
                true,
            ),
            whole(Response::new(StatusCode::BAD_GATEWAY), false),
            streamed(Response::new(StatusCode::OK).header("X-A", "1")),
        ] {
            assert_eq!(wire.matches(&field).count(), 1, "{wire}");
        }
        let own = whole(Response::new(StatusCode::OK).header("DATE", "x"), false);
        assert!(
            own.contains("DATE: x\r\n") && !own.contains("Date:"),
            "{own}"
        );
        // One left out for a control byte is no `Date` given.
        let broken = whole(
            Response::new(StatusCode::OK).header("Date", "x\r\ny"),
            false,
        );
        assert_eq!(broken.matches(&field).count(), 1, "{broken}");
        // The 500 that stands in for an interim status, and a HEAD's
        // streamed head, are final responses too.
        let interim_500 = whole(Response::new(StatusCode::from_u16(102).unwrap()), false);
        assert!(interim_500.starts_with("HTTP/1.1 500"), "{interim_500}");
        let mut head = Vec::new();
        Response::new(StatusCode::OK).encode_streamed(
            &mut head,
            KeepAlive::Http11,
            true,
            None,
            true,
        );
        for wire in [interim_500, String::from_utf8(head).expect("text")] {
            assert_eq!(wire.matches(&field).count(), 1, "{wire}");
        }
        let switching = whole(
            Response::new(StatusCode::SWITCHING_PROTOCOLS).header("Upgrade", "websocket"),
            false,
        );
        let mut interim = Vec::new();
        Response::new(StatusCode::from_u16(103).unwrap()).encode_interim(&mut interim);
        for wire in [switching, String::from_utf8(interim).expect("text")] {
            assert!(!wire.contains("Date"), "{wire}");
        }
        // A loop run inside another gives the outer one's stamp back; one
        // that does not date stamps nothing meanwhile.
        drop(ResponseDates::start(std::time::Instant::now(), true));
        assert_eq!(response_stamp(), Some(stamp));
        let undated = ResponseDates::start(std::time::Instant::now(), false);
        assert_eq!(response_stamp(), None);
        drop(undated);
        assert_eq!(response_stamp(), Some(stamp));
        drop(dates);
        assert_eq!(response_stamp(), None);
        let after = whole(Response::new(StatusCode::OK), false);
        assert!(!after.contains("Date"), "{after}");
    }

    #[test]
    fn the_status_line_names_code_and_reason() {
        for (status, line) in [
            (StatusCode::OK, &b"HTTP/1.1 200 OK\r\n"[..]),
            (StatusCode::NOT_FOUND, b"HTTP/1.1 404 Not Found\r\n"),
            (StatusCode::from_u16(799).unwrap(), b"HTTP/1.1 799 \r\n"),
        ] {
            let mut out = Vec::new();
            Response::new(status).encode(&mut out, KeepAlive::Http11, false);
            assert!(out.starts_with(line), "{:?}", String::from_utf8_lossy(&out));
        }
    }
}
