//! The request handling of the minimal server, shared with `bench/http_layer`
//! (which runs it in-process): httparse, the request's length from its
//! `Content-Length`, and a fixed response.

/// The one response the minimal server sends.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// The length of the first complete request in `input`, if there is one
/// (`Err` for a malformed head).
#[inline]
pub fn complete(input: &[u8]) -> Option<Result<usize, ()>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(input) {
        Ok(httparse::Status::Complete(head)) => {
            let length = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            (input.len() >= head + length).then_some(Ok(head + length))
        }
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Err(())),
    }
}
