//! The loop's side of an outbound connection: connect, send, read the
//! response, then back to the pool, once more on a new connection, or closed.

use super::connection::{pump, Connection, Role, Upstream, UpstreamEndpoint};
use crate::client::{ClientError, ClientOptions, Exchange, Pool};
use crate::http::ResponseError;
use crate::net;
use crate::Interest;
use std::net::SocketAddr;
use std::time::Instant;

/// Puts `exchange` on the connection. Its request is kept for a second
/// attempt only where one may come: idempotent, first try, reused connection.
pub(crate) fn start(up: &mut Upstream, mut exchange: Exchange, now: Instant, max_body: usize) {
    let may_retry = exchange.idempotent && !exchange.retried && up.conn.was_reused();
    let request = match may_retry {
        true => exchange.request.clone(),
        false => std::mem::take(&mut exchange.request),
    };
    up.conn.start(request, exchange.to_head, max_body);
    exchange.since = now;
    up.exchange = Some(exchange);
    up.got_bytes = false;
    up.last_progress = now;
}

/// Moves an outbound connection forward; returns the readiness to wait for
/// next, or `None` to close it.
pub(crate) fn step(
    conn: &mut Connection,
    index: usize,
    event: bool,
    readable: bool,
    now: Instant,
    pool: &mut Pool,
    scratch: &mut [u8],
) -> Option<Interest> {
    let addr = conn.peer;
    let Role::Upstream(up) = &mut conn.role else {
        return None;
    };
    if up.expired {
        return None;
    }
    if up.connecting {
        if !event {
            return Some(Interest::WRITABLE);
        }
        match net::take_error(&conn.stream) {
            Ok(None) => {
                up.connecting = false;
                up.last_progress = now;
            }
            Ok(Some(e)) | Err(e) => {
                fail(up, ClientError::from(e), pool);
                return None;
            }
        }
    }
    loop {
        let reused = up.conn.was_reused();
        let before = up.conn.pending_output().len();
        let mut endpoint = UpstreamEndpoint {
            conn: &mut up.conn,
            outcome: None,
            eof: false,
            received: false,
        };
        let io = pump(&conn.stream, &mut endpoint, readable, scratch);
        let (outcome, eof, received) = (endpoint.outcome, endpoint.eof, endpoint.received);
        if received || up.conn.pending_output().len() != before {
            up.last_progress = now;
        }
        up.got_bytes |= received;
        let Some(exchange) = up.exchange.take() else {
            // Idle: anything but quiet (bytes, a close, an error) ends it.
            let quiet = io.is_ok() && !eof && up.conn.is_reusable();
            return quiet.then_some(Interest::READABLE);
        };
        match (outcome, io) {
            (Some(Ok(response)), io) => {
                pool.finished.push((exchange.id, Ok(response)));
                if io.is_err() || eof || !up.conn.is_reusable() {
                    return None;
                }
                // Straight on to a request waiting for this origin, or idle.
                match pool.take_for(addr) {
                    Some(next) => {
                        start(up, next, now, pool.options.max_body_bytes);
                        continue;
                    }
                    None => {
                        pool.park(addr, index);
                        return Some(Interest::READABLE);
                    }
                }
            }
            (Some(Err(e)), _) => {
                up.exchange = Some(exchange);
                let error = match e {
                    ResponseError::Truncated => ClientError::Reset,
                    e => ClientError::BadResponse(e),
                };
                retry_or_fail(up, reused, error, now, pool);
                return None;
            }
            (None, Err(e)) => {
                up.exchange = Some(exchange);
                retry_or_fail(up, reused, ClientError::from(e), now, pool);
                return None;
            }
            (None, Ok(())) => {
                up.exchange = Some(exchange);
                return Some(match up.conn.wants_write() {
                    true => Interest::READABLE | Interest::WRITABLE,
                    false => Interest::READABLE,
                });
            }
        }
    }
}

/// The exchange broke. If the server closed a reused connection before any
/// byte of the response (its idle timeout racing our request), an
/// idempotent request goes once more, on a new connection.
fn retry_or_fail(
    up: &mut Upstream,
    reused: bool,
    error: ClientError,
    now: Instant,
    pool: &mut Pool,
) {
    let Some(mut exchange) = up.exchange.take() else {
        return;
    };
    let closed = matches!(error, ClientError::Reset | ClientError::Io(_));
    if reused && closed && !up.got_bytes && exchange.idempotent && !exchange.retried {
        exchange.retried = true;
        exchange.since = now;
        pool.requeue(exchange);
    } else {
        pool.finished.push((exchange.id, Err(error)));
    }
}

fn fail(up: &mut Upstream, error: ClientError, pool: &mut Pool) {
    if let Some(exchange) = up.exchange.take() {
        pool.finished.push((exchange.id, Err(error)));
    }
}

/// The connection is gone: the pool forgets it, and an exchange still on
/// it ends.
pub(crate) fn closed(
    up: &mut Upstream,
    addr: SocketAddr,
    index: usize,
    _now: Instant,
    pool: &mut Pool,
) {
    pool.closed(addr, index);
    fail(up, ClientError::Reset, pool);
}

/// Ends what waited too long: a connect, a response, an idle connection.
/// Returns the next deadline.
pub(crate) fn handle_timeout(
    up: &mut Upstream,
    now: Instant,
    options: &ClientOptions,
    pool: &mut Pool,
) -> Option<Instant> {
    let (limit, error) = match (&up.exchange, up.connecting) {
        (_, true) => (
            options.connect_timeout,
            Some(ClientError::ConnectTimeout(options.connect_timeout)),
        ),
        (Some(_), false) => (
            options.response_timeout,
            Some(ClientError::Timeout(options.response_timeout)),
        ),
        (None, false) => (options.idle_timeout, None),
    };
    let deadline = up.last_progress + limit;
    if now < deadline {
        return Some(deadline);
    }
    if let Some(error) = error {
        fail(up, error, pool);
    }
    up.expired = true;
    None
}
