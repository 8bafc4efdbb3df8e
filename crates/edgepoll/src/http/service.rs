//! The traits an application implements to answer requests: [`Service`]
//! answers at once; [`Dispatch`] may answer later.

use super::{BodyError, Request, Response};

/// Answers one request with one response. The connection calls it once per
/// complete request, in the order requests arrived.
///
/// The response may borrow from the request, so an echo needs no copy of its own:
///
/// ```
/// use edgepoll::http::{Request, Response, Service, StatusCode};
/// struct Echo;
/// impl Service for Echo {
///     fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
///         Response::new(StatusCode::OK).body(request.body())
///     }
/// }
/// ```
pub trait Service {
    /// Builds the response to `request`.
    ///
    /// ```
    /// use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
    /// use std::time::Instant;
    /// // A plain function is a service too (a `fn` item: a closure's
    /// // signature cannot say that its response borrows from its request,
    /// // so the compiler finds it "not general enough").
    /// fn hello<'a>(request: &Request<'a>) -> Response<'a> {
    ///     Response::new(StatusCode::OK).body(format!("hello, {}", request.path()))
    /// }
    /// let mut conn = Handler::new(Limits::default(), Instant::now());
    /// conn.receive(b"GET /you HTTP/1.1\r\nHost: x\r\n\r\n", Instant::now(), &mut hello);
    /// assert!(conn.pending_output().ends_with(b"hello, /you"));
    /// ```
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a>;

    /// Whether CONNECT requests reach [`call`](Self::call). By default the
    /// connection answers them 501 itself: it never turns into a tunnel, and a
    /// 2xx to CONNECT would tell the client it had one. A service that opts in
    /// answers CONNECT as it likes (a target other than `host:port` still gets
    /// 400 first), but for a 2xx, which goes out as a 500 (RFC 9110 §9.3.6:
    /// the client would take what follows the head for the tunnel's bytes);
    /// the connection closes after that answer.
    ///
    /// ```
    /// use edgepoll::http::{Request, Response, Service, StatusCode};
    /// struct Refuser;
    /// impl Service for Refuser {
    ///     fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
    ///         Response::new(StatusCode::METHOD_NOT_ALLOWED).header("Allow", "GET, POST")
    ///     }
    ///     fn handles_connect(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    fn handles_connect(&self) -> bool {
        false
    }
}

impl<F> Service for F
where
    F: for<'a> FnMut(&Request<'a>) -> Response<'a>,
{
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        self(request)
    }
}

/// A service's answer to one request: a response now, or one later through
/// [`Handler::respond`](super::Handler::respond) (the event loop's
/// [`Responder`](crate::Responder) on WasmEdge).
///
/// ```
/// use edgepoll::http::{Dispatch, Reply, Request, RequestId, Response, StatusCode};
///
/// /// Answers `/health` at once; the rest wait for a backend.
/// struct Gateway(Vec<RequestId>);
/// impl Dispatch for Gateway {
///     fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
///         if request.path() == "/health" {
///             return Reply::Now(Response::new(StatusCode::OK).body("up"));
///         }
///         self.0.push(id);
///         Reply::Later
///     }
/// }
/// ```
///
/// `'a` is invariant, as [`Response`]'s is: a helper returns `Reply<'a>`
/// for its caller's `'a`, not `Reply<'static>` (see [`Response`]).
#[derive(Debug)]
// Returned by value and matched at once, never stored: boxing the response
// would cost every request an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply<'a> {
    /// The response, sent as soon as the responses before it are.
    Now(Response<'a>),
    /// The response comes later, or a 504 at [`Limits::respond_timeout`](super::Limits::respond_timeout).
    Later,
}

/// Names one request of one connection, in the order requests arrived
/// (from 0). Each connection counts its own: a loop driving many
/// handlers pairs it with its own name for the connection (as the
/// library's loop does in its `Responder`), or an
/// answer meant for one connection's request 3 goes to another's.
///
/// ```
/// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId};
/// use std::time::Instant;
///
/// struct Keep(Vec<RequestId>);
/// impl Dispatch for Keep {
///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
///         self.0.push(id);
///         Reply::Later
///     }
/// }
/// let (now, mut keep) = (Instant::now(), Keep(Vec::new()));
/// let mut conn = Handler::new(Limits::default(), now);
/// conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut keep);
/// assert_eq!(keep.0.iter().map(|id| id.get()).collect::<Vec<_>>(), [0, 1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The request's number on its connection, from 0.
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// use std::time::Instant;
    /// struct Numbers(Vec<u64>);
    /// impl Dispatch for Numbers {
    ///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
    ///         self.0.push(id.get());
    ///         Reply::Later
    ///     }
    /// }
    /// let (now, mut numbers) = (Instant::now(), Numbers(Vec::new()));
    /// let mut conn = Handler::new(Limits::default(), now);
    /// conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut numbers);
    /// assert_eq!(numbers.0, [0, 1]);
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What a [`Handler`](super::Handler) calls for each request. Every
/// [`Service`] is one (it always answers now); a service that waits on
/// something returns [`Reply::Later`] and keeps `id` to answer with.
///
/// ```
/// use edgepoll::http::{Dispatch, Handler, Limits, Reply, Request, RequestId, Response, StatusCode};
/// use std::time::Instant;
///
/// #[derive(Default)]
/// struct Waits(Vec<RequestId>);
/// impl Dispatch for Waits {
///     fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
///         self.0.push(id);
///         Reply::Later
///     }
/// }
/// let (mut conn, mut service, now) = (Handler::new(Limits::default(), Instant::now()), Waits::default(), Instant::now());
/// conn.receive(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut service);
/// assert!(conn.pending_output().is_empty());
/// // The second is answered first, and waits for the first.
/// conn.respond(service.0[1], Response::new(StatusCode::OK).body("b"), now).unwrap();
/// assert!(conn.pending_output().is_empty());
/// conn.respond(service.0[0], Response::new(StatusCode::OK).body("a"), now).unwrap();
/// assert!(conn.pending_output().ends_with(b"\r\n\r\nb"));
/// ```
pub trait Dispatch {
    /// Whether [`streams`](Self::streams) may ever say yes: when false (a
    /// [`Service`]), the handler does not ask.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// # /// Streams the body of every PUT.
    /// # #[derive(Default)]
    /// # struct Upload { bytes: usize, ended: Option<Result<(), BodyError>> }
    /// # impl Dispatch for Upload {
    /// #     const STREAMS: bool = true;
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
    /// #         Reply::Later // answered once the body has ended
    /// #     }
    /// #     fn streams(&mut self, request: &Request<'_>) -> bool {
    /// #         request.method() == "PUT"
    /// #     }
    /// #     fn body(&mut self, _: RequestId, piece: &[u8]) {
    /// #         self.bytes += piece.len(); // written on, say, to a file
    /// #     }
    /// #     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
    /// #         self.ended = Some(result);
    /// #     }
    /// # }
    /// # let (now, mut upload) = (Instant::now(), Upload::default());
    /// # let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// // Without STREAMS = true, `streams` is never asked and every body comes whole.
    /// assert!(Upload::STREAMS);
    /// ```
    const STREAMS: bool = false;

    /// Answers `request` now, or later with `id`.
    ///
    /// ```
    /// use edgepoll::http::{Dispatch, Reply, Request, RequestId, Response, StatusCode};
    /// struct Cached(Vec<RequestId>);
    /// impl Dispatch for Cached {
    ///     fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a> {
    ///         match request.path() {
    ///             "/health" => Reply::Now(Response::new(StatusCode::OK)),
    ///             _ => {
    ///                 self.0.push(id); // answered once the backend has replied
    ///                 Reply::Later
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    fn dispatch<'a>(&mut self, request: &Request<'a>, id: RequestId) -> Reply<'a>;

    /// Asked when the head of a request with a body is complete: whether the
    /// body is handed over in pieces as it arrives ([`body`](Self::body),
    /// then [`body_end`](Self::body_end)) rather than whole. A streamed body
    /// is held to [`Limits::max_stream_bytes`](crate::http::Limits::max_stream_bytes)
    /// instead of `max_body_bytes`, and `dispatch` is called at once, with
    /// an empty body. Not asked for a body of at most
    /// [`Limits::stream_above`](crate::http::Limits::stream_above) bytes,
    /// nor for one declared over `max_stream_bytes`: those come whole (413
    /// past `max_body_bytes`).
    ///
    /// ```
    /// use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// use std::time::Instant;
    /// /// Streams the body of every PUT.
    /// #[derive(Default)]
    /// struct Upload { bytes: usize, ended: Option<Result<(), BodyError>> }
    /// impl Dispatch for Upload {
    ///     const STREAMS: bool = true;
    ///     fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
    ///         Reply::Later // answered once the body has ended
    ///     }
    ///     fn streams(&mut self, request: &Request<'_>) -> bool {
    ///         request.method() == "PUT"
    ///     }
    ///     fn body(&mut self, _: RequestId, piece: &[u8]) {
    ///         self.bytes += piece.len(); // written on, say, to a file
    ///     }
    ///     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
    ///         self.ended = Some(result);
    ///     }
    /// }
    /// let (now, mut upload) = (Instant::now(), Upload::default());
    /// let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", now, &mut upload);
    /// assert_eq!((upload.bytes, upload.ended), (5, Some(Ok(()))));
    /// ```
    fn streams(&mut self, request: &Request<'_>) -> bool {
        let _ = request;
        false
    }

    /// A piece of the streamed body of request `id`.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// # /// Streams the body of every PUT.
    /// # #[derive(Default)]
    /// # struct Upload { bytes: usize, ended: Option<Result<(), BodyError>> }
    /// # impl Dispatch for Upload {
    /// #     const STREAMS: bool = true;
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
    /// #         Reply::Later // answered once the body has ended
    /// #     }
    /// #     fn streams(&mut self, request: &Request<'_>) -> bool {
    /// #         request.method() == "PUT"
    /// #     }
    /// #     fn body(&mut self, _: RequestId, piece: &[u8]) {
    /// #         self.bytes += piece.len(); // written on, say, to a file
    /// #     }
    /// #     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
    /// #         self.ended = Some(result);
    /// #     }
    /// # }
    /// # let (now, mut upload) = (Instant::now(), Upload::default());
    /// # let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", now, &mut upload);
    /// assert_eq!(upload.bytes, 3); // a piece as it came, before the body's end
    /// assert!(upload.ended.is_none());
    /// ```
    fn body(&mut self, id: RequestId, piece: &[u8]) {
        let _ = (id, piece);
    }

    /// The streamed body of request `id` is complete, or broke off.
    ///
    /// ```
    /// # use edgepoll::http::{BodyError, Dispatch, Handler, Limits, Reply, Request, RequestId};
    /// # use std::time::Instant;
    /// # /// Streams the body of every PUT.
    /// # #[derive(Default)]
    /// # struct Upload { bytes: usize, ended: Option<Result<(), BodyError>> }
    /// # impl Dispatch for Upload {
    /// #     const STREAMS: bool = true;
    /// #     fn dispatch<'a>(&mut self, _: &Request<'a>, _: RequestId) -> Reply<'a> {
    /// #         Reply::Later // answered once the body has ended
    /// #     }
    /// #     fn streams(&mut self, request: &Request<'_>) -> bool {
    /// #         request.method() == "PUT"
    /// #     }
    /// #     fn body(&mut self, _: RequestId, piece: &[u8]) {
    /// #         self.bytes += piece.len(); // written on, say, to a file
    /// #     }
    /// #     fn body_end(&mut self, _: RequestId, result: Result<(), BodyError>) {
    /// #         self.ended = Some(result);
    /// #     }
    /// # }
    /// # let (now, mut upload) = (Instant::now(), Upload::default());
    /// # let mut conn = Handler::new(Limits { stream_above: 0, ..Limits::default() }, now);
    /// conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", now, &mut upload);
    /// conn.receive_eof(now, &mut upload); // the client left six bytes short
    /// assert!(matches!(upload.ended, Some(Err(_))));
    /// ```
    fn body_end(&mut self, id: RequestId, result: Result<(), BodyError>) {
        let _ = (id, result);
    }

    /// As [`Service::handles_connect`].
    fn handles_connect(&self) -> bool {
        false
    }
}

impl<S: Service + ?Sized> Dispatch for S {
    #[inline]
    fn dispatch<'a>(&mut self, request: &Request<'a>, _: RequestId) -> Reply<'a> {
        Reply::Now(self.call(request))
    }

    fn handles_connect(&self) -> bool {
        Service::handles_connect(self)
    }
}
