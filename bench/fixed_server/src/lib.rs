//! The minimal server's job as an edgepoll service: every request, whatever
//! its method, target or body, gets the minimal server's fixed response. The
//! echo example does more (it sends back the body and the `Content-Type`),
//! so `make bench` also measures edgepoll on exactly this job.

use edgepoll::http::{Handler, Limits, Request, Response, StatusCode};
use std::time::Instant;

/// Answers as `bench/minimal_server` does: `200 OK` with the body `ok`
/// (inline, as the echo example's service is, so that both are measured alike).
#[inline]
pub fn fixed<'a>(_: &Request<'a>) -> Response<'a> {
    Response::new(StatusCode::OK).body("ok")
}

/// Whether [`fixed`], through a `Handler`, sends the minimal server's
/// response byte for byte (the benchmarks check before they measure).
pub fn answers_as_minimal_server(request: &[u8]) -> bool {
    let mut conn = Handler::new(Limits::default(), Instant::now());
    conn.receive(request, Instant::now(), &mut fixed);
    conn.pending_output() == minimal_server::RESPONSE
}
