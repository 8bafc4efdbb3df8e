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
}

impl<F> Service for F
where
    F: for<'a> FnMut(&Request<'a>) -> Response<'a>,
{
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        self(request)
    }
}
