//! The trait an application implements to answer requests.

use super::{Request, Response};

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
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a>;

    /// Whether CONNECT requests reach [`call`](Self::call). By default the
    /// connection answers them 501 itself: it never turns into a tunnel, and a
    /// 2xx to CONNECT would tell the client it had one. A service that opts in
    /// answers CONNECT as it likes; the connection closes after that answer.
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
