//! The echo service of `poll_http_server`, as a library so that the
//! benchmarks (`bench/native_echo`, `bench/http_layer`) measure the very
//! service the example runs.

pub mod config;

use edgepoll::http::{Reply, Request, Response, StatusCode};
use edgepoll::{App, Context, Responder};

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

/// Bodies longer than this (and chunked ones) are echoed as they arrive
/// instead of whole: the server's memory then depends on its settings, not
/// on how many large bodies happen to arrive at once.
pub const STREAM_ABOVE: u64 = 64 * 1024;

/// The echo server's service: [`echo`] for requests with small bodies (the
/// response goes out in one send, the body sent from where it arrived), and
/// for larger or chunked bodies the body streamed back piece by piece as it
/// arrives ([`Context::respond_with_request_body`]), in bounded memory. A
/// chunked body over `max_body` ends the connection mid-response (its 200
/// went out when it began); a `Content-Length` over it gets 413 first.
///
/// ```
/// use edgepoll::App;
/// use poll_http_server::Echo;
/// fn serves<A: App>(_: &A) {}
/// serves(&Echo::default());
/// ```
#[derive(Clone, Debug)]
pub struct Echo {
    /// Bodies over this many bytes get 413 (or, chunked, a cut).
    pub max_body: u64,
}

impl Default for Echo {
    fn default() -> Self {
        Echo {
            max_body: edgepoll::http::Limits::default().max_body_bytes as u64,
        }
    }
}

impl App for Echo {
    #[inline]
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a> {
        if !request.body_streams() {
            return Reply::Now(echo(request));
        }
        let mut head = Response::new(StatusCode::OK);
        if let Some(content_type) = request.header("content-type") {
            head = head.header("Content-Type", content_type.to_vec());
        }
        cx.respond_with_request_body(responder, head, request.body_length());
        Reply::Later
    }

    #[inline]
    fn streams_request(&mut self, request: &Request<'_>) -> bool {
        // The length first: nearly every body is small, and that is one compare.
        request
            .body_length()
            .is_none_or(|n| n > STREAM_ABOVE && n <= self.max_body)
            && !matches!(request.method(), "GET" | "HEAD")
    }
}
