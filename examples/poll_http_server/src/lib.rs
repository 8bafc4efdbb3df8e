//! The echo service of `poll_http_server`, as a library so that the
//! benchmarks (`bench/native_echo`, `bench/http_layer`) measure the very
//! service the example runs.

use edgepoll::http::{Request, Response, StatusCode};

/// What `GET /` answers.
pub const USAGE: &str = "edgepoll echo server: send a body and get it back, \
e.g. curl -d 'name=WasmEdge' -X POST http://127.0.0.1:1234/\n";

/// Answers `GET /` with [`USAGE`], other GETs with 404, and any other
/// method with its own body (and `Content-Type`, if it had one).
///
/// ```
/// use edgepoll::http::{Handler, Limits};
/// use std::time::Instant;
///
/// let mut conn = Handler::new(Limits::default(), Instant::now());
/// let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
/// conn.receive(request, Instant::now(), &mut poll_http_server::echo);
/// let response = conn.pending_output();
/// assert!(response.starts_with(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"));
/// assert!(response.ends_with(b"\r\n\r\nhi"));
/// ```
#[inline]
pub fn echo<'a>(request: &Request<'a>) -> Response<'a> {
    match request.method() {
        "GET" | "HEAD" if request.path() == "/" => Response::new(StatusCode::OK)
            .header("Content-Type", "text/plain")
            .body(USAGE),
        "GET" | "HEAD" => Response::new(StatusCode::NOT_FOUND)
            .header("Content-Type", "text/plain")
            .body("not found; POST a body to / to have it echoed\n"),
        _ => {
            let response = Response::new(StatusCode::OK);
            match request.header("content-type") {
                Some(content_type) => response.header("Content-Type", content_type),
                None => response,
            }
            .body(request.body())
        }
    }
}
