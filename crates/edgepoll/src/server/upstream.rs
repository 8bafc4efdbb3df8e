//! The loop's side of an outbound connection: connect, send, read the
//! response, then back to the pool, once more on a new connection, or closed.

use super::connection::{
    pump_in, pump_out, Connection, Endpoint, Role, Scratch, TlsEndpoint, Upstream,
    UpstreamEndpoint, READS_PER_EVENT,
};
use super::core::{Next, Work};
use crate::client::{ClientError, ClientEvent, Exchange, ExchangeEvent, Pool};
use crate::http::{BodyError, ParsedResponse, ResponseError, StatusCode};
use crate::tls::{TlsError, TlsSession};
use crate::{net, Interest};
use std::time::Instant;

/// Puts `exchange` on the connection. Its request (with a whole body) is
/// kept for a second attempt only where one may come: idempotent, first
/// try, on a reused connection (an idle close may meet it); or any, on a
/// new connection to a host with other addresses (it may not connect).
pub(crate) fn start(up: &mut Upstream, mut exchange: Exchange, now: Instant, max_body: usize) {
    let may_retry = exchange.body_out.is_none()
        && ((exchange.idempotent && !exchange.retried && up.conn.was_reused())
            // A new connection may fail to connect: kept for the next address.
            || (!up.conn.was_reused() && !exchange.other_addrs.is_empty()));
    let request = match may_retry {
        true => exchange.request.clone(),
        false => std::mem::take(&mut exchange.request),
    };
    if up.conn.was_reused() {
        // A connect to come (its retry's) has the whole connect time.
        exchange.connect_left = None;
    }
    up.conn.start(
        request,
        exchange.body_out.take(),
        exchange.to_head,
        exchange.streams,
        max_body,
        exchange.upgrade,
    );
    // The body pieces that came before the connection; one that does not
    // fit the announced length ends the exchange (see `bodies`).
    let early = exchange.early.take();
    let mut framed = early
        .into_iter()
        .all(|piece| up.conn.send_body(piece).is_ok());
    if exchange.early_end {
        framed &= up.conn.end_body().is_ok();
    }
    up.expired |= !framed;
    exchange.since = now;
    up.exchange = Some(exchange);
    up.got_bytes = false;
    up.held = false;
    up.last_progress = now;
}

/// Moves an outbound connection forward; `round` is the loop's poll round.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    conn: &mut Connection,
    index: usize,
    event: bool,
    mut readable: bool,
    now: Instant,
    round: u64,
    work: &mut Work,
    scratch: &mut Scratch,
) -> Next {
    let serial = conn.serial;
    let Role::Upstream(up) = &mut conn.role else {
        return Next::Close;
    };
    let up = &mut **up;
    let ahead = std::mem::take(&mut up.read_ahead);
    if up.expired {
        // An exchange still on it is one whose early body pieces did not
        // fit its announced length (see `start`; every other expiry ends
        // its exchange first): the client's body is at fault, not the
        // upstream, as when a piece comes later (`bodies`).
        fail(up, ClientError::Abandoned, work);
        return Next::Close;
    }
    if up.conn.is_switched() {
        // No longer HTTP: waits, unread, to be joined to a client.
        return Next::Quiet;
    }
    if up.connecting {
        if !event {
            return Next::Watch(Interest::WRITABLE);
        }
        if !finish_connect(&conn.stream, up, now, work) {
            return Next::Close;
        }
    }
    loop {
        let pumped = pump_once(&conn.stream, up, readable, ahead, now, round, work, scratch);
        // Nothing more can be read or sent on a connection TLS failed on,
        // but what its records carried before the fault (all delivered
        // above) stands: a response it completed is answered.
        let tls_failed = up.tls.as_ref().is_some_and(|tls| tls.error().is_some());
        let Some(exchange) = up.exchange.take() else {
            // Idle: anything but quiet (bytes, a close, an error) ends it;
            // part of a TLS record too (bytes nobody asked for, whose rest
            // would come with the next request's answer and pass for it).
            // Whatever it made of them is no exchange's.
            work.client_events.clear();
            let partial = holds_partial_record(up);
            let quiet = pumped.io.is_ok()
                && !pumped.eof
                && up.conn.is_reusable()
                && !partial
                && !tls_failed;
            return match quiet {
                true => Next::Idle,
                false => Next::Close,
            };
        };
        // Before the events: bytes and the end of the stream may come in
        // one pump, and a response begun is never sent again.
        up.got_bytes |= pumped.received;
        let reported = report_events(up, exchange, pumped.reused, tls_failed, now, work);
        let Some((exchange, over)) = reported else {
            // Sent again on a new connection; this one is done.
            return Next::Close;
        };
        if up.conn.is_switched() {
            // A 101: the connection leaves the pool, for a tunnel.
            work.slot_of.remove(&exchange.id);
            work.pool.closed(&up.origin, index);
            if up.tls.is_some() {
                // A tunnel moves bytes socket to socket: not through TLS.
                return Next::Close;
            }
            work.switched.insert(exchange.id, (index, serial));
            return Next::Quiet;
        }
        if over {
            work.slot_of.remove(&exchange.id);
            let closes = pumped.io.is_err() || pumped.eof || tls_failed;
            match after_response(&conn.stream, up, index, closes, round, now, work, scratch) {
                Some(next) => return next,
                // The next request went on: stepped again, without a read.
                None => {
                    readable = false;
                    continue;
                }
            }
        }
        up.exchange = Some(exchange);
        if tls_failed {
            let fault = tls_fault(&up.tls);
            fail(up, fault, work);
            return Next::Close;
        }
        if let Err(e) = pumped.io {
            let error = broke_off(up, ClientError::from(e));
            retry_or_fail(up, pumped.reused, error, now, work);
            return Next::Close;
        }
        // Just sent: its answer may be read before the next poll.
        let before = pumped.backlog_before;
        if !readable && before > 0 && !up.got_bytes && !up.held && up.conn.request_sent() {
            up.read_ahead = read_ahead(up);
            if up.read_ahead {
                work.read_ahead.push((index, serial));
            }
        }
        return watch_for(up);
    }
}

/// A connect the poll reported on: whether it succeeded. If not, the
/// exchange goes to the host's next address or fails.
#[cold]
fn finish_connect(
    stream: &net::TcpStream,
    up: &mut Upstream,
    now: Instant,
    work: &mut Work,
) -> bool {
    // No error and a peer: connected. (The poller's peek may have taken a
    // failed connect's error, which it reports in the event, kept in
    // `connect_error`; the peer's absence still tells.)
    let connected = net::take_error(stream).map(|error| match error {
        None if net::peer_addr(stream).is_err() => Some(match up.connect_error {
            0 => std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the connection failed",
            ),
            errno => std::io::Error::from_raw_os_error(errno.into()),
        }),
        other => other,
    });
    match connected {
        Ok(None) => {
            up.connecting = false;
            up.last_progress = now;
            if let Some(exchange) = &mut up.exchange {
                // Its next connect, if one comes, has a timeout of its own.
                exchange.connect_left = None;
            }
            work.pool.note_reachable(up.origin.addr);
            true
        }
        Ok(Some(e)) | Err(e) => {
            let error = ClientError::connecting(e);
            // The server's failure, not this side's (no port free, say).
            if !error.is_local() {
                work.pool.note_unreachable(up.origin.addr, now);
            }
            if !try_next_address(up, now, work) {
                fail(up, error, work);
            }
            false
        }
    }
}

/// What one pump of an outbound connection did.
struct Pumped {
    io: std::io::Result<()>,
    /// The peer ended its stream.
    eof: bool,
    /// Bytes came (plaintext, under TLS).
    received: bool,
    /// The connection had served an exchange before this pump's.
    reused: bool,
    /// Request bytes queued before the pump.
    backlog_before: usize,
}

/// `pump`, and when a send fails, the reads that find what came before
/// the failure: a server that refuses a request as it comes (a 413 to an
/// upload) answers and closes with the body unread, and the reset that
/// fails a send of the body's rest follows its answer, which waits in the
/// socket (RFC 9112 §9.5: a client watches for an answer while it sends).
/// Data only: the connection ends with the send's error, not an end of
/// stream.
#[inline]
fn pump_heeding_answers(
    stream: &net::TcpStream,
    endpoint: &mut impl Endpoint,
    readable: bool,
    scratch: &mut Scratch,
) -> std::io::Result<()> {
    pump_in(stream, endpoint, readable, scratch)?;
    let sent = pump_out(stream, endpoint);
    if sent.is_err() {
        // As many as a step's reads, and no more (see `Scratch`).
        let (mut reads, mut taken) = (0, 0);
        while reads < READS_PER_EVENT && taken < scratch.budget() && endpoint.wants_read() {
            match net::recv(stream, scratch) {
                Ok(0) => break,
                Ok(n) => {
                    (reads, taken) = (reads + 1, taken + n);
                    endpoint.receive(&scratch[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    sent
}

/// Reads and writes what the connection can (through TLS if it has it),
/// leaving the response's events in `work.client_events`, and keeps count
/// of its progress: the idle clock, empty reads, read-ahead misses.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pump_once(
    stream: &net::TcpStream,
    up: &mut Upstream,
    readable: bool,
    ahead: bool,
    now: Instant,
    round: u64,
    work: &mut Work,
    scratch: &mut Scratch,
) -> Pumped {
    let reused = up.conn.was_reused();
    let before = up.conn.backlog();
    let was_handshaking = up.tls.as_ref().is_some_and(|tls| tls.is_handshaking());
    let ciphertext_before = up.tls.as_ref().map_or(0, |tls| tls.received());
    let mut endpoint = UpstreamEndpoint {
        conn: &mut up.conn,
        events: std::mem::take(&mut work.client_events),
        eof: false,
        received: false,
        held: up.held,
        dry: false,
    };
    let io = match &mut up.tls {
        Some(tls) => {
            let mut layered = TlsEndpoint {
                tls,
                inner: endpoint,
            };
            let io = pump_heeding_answers(stream, &mut layered, readable, scratch);
            endpoint = layered.inner;
            io
        }
        None => pump_heeding_answers(stream, &mut endpoint, readable, scratch),
    };
    let UpstreamEndpoint {
        events,
        eof,
        received,
        dry,
        ..
    } = endpoint;
    work.client_events = events;
    if dry {
        up.dry_round = round;
    } else if received {
        // Read without finding it empty (the round's reads ran out first):
        // what an earlier pump of this round found no longer says the
        // socket is empty.
        up.dry_round = 0;
    }
    // Request bytes taken into TLS before its handshake ends (rustls holds
    // 64 KiB) are no answer from the server: a body trickling in would hold
    // the handshake's timeout off for as long as it came. The handshake's
    // end is one, and sends what rustls held: the response's wait starts
    // there, not at the connect.
    let handshaking = up.tls.as_ref().is_some_and(|tls| tls.is_handshaking());
    let sent = up.conn.backlog() != before || was_handshaking;
    // Past the handshake, part of a record is progress too: a slow link
    // brings a 16 KiB record's plaintext only at its end, and a plain
    // connection counts every byte. Only part of one: a whole record with
    // no plaintext (a session ticket, a key update, which a server may send
    // for ever) is no answer. (Nor anything while idle: there only the idle
    // timeout runs.)
    let ciphertext = up.exchange.is_some()
        && up
            .tls
            .as_ref()
            .is_some_and(|tls| tls.received() != ciphertext_before && tls.holds_partial_record());
    if received || ((sent || ciphertext) && !handshaking) {
        up.last_progress = now;
    }
    if ahead && readable {
        up.ahead_misses = match received {
            true => 0,
            false => up.ahead_misses.saturating_add(1),
        };
    }
    Pumped {
        io,
        eof,
        received,
        reused,
        backlog_before: before,
    }
}

/// Reports the response's events the pump left in `work.client_events` as
/// `exchange`'s; returns it, and whether it is over, or `None` when it was
/// requeued instead (the server closed the reused connection as the
/// request raced in).
#[inline]
fn report_events(
    up: &mut Upstream,
    mut exchange: Exchange,
    reused: bool,
    tls_failed: bool,
    now: Instant,
    work: &mut Work,
) -> Option<(Exchange, bool)> {
    let mut over = false;
    let mut events = std::mem::take(&mut work.client_events);
    let ours = work.pool.events.len();
    for event in events.drain(..) {
        let event = match event {
            ClientEvent::Response(result)
                if reused
                    && (!tls_failed || result.is_ok())
                    && raced_idle_close(&result, up.got_bytes, up.conn.heard_interim())
                    && retry(&mut exchange, now) =>
            {
                work.slot_of.remove(&exchange.id);
                work.pool.requeue(exchange);
                return None;
            }
            ClientEvent::Response(result) => {
                let failed = result.is_err();
                let mut result = result.map_err(|e| match e {
                    ResponseError::Truncated if reused && !up.got_bytes => ClientError::IdleClosed,
                    e => response_error(e),
                });
                if let (Ok(response), Some(tls)) = (&mut result, &up.tls) {
                    response.tls = Some(Box::new(tls.info()));
                }
                over = failed || !exchange.streams;
                exchange.answered = !failed;
                if let Ok(head) = &result {
                    work.pool.note_version(&up.origin, head.version);
                    // A body to follow, which may be piped (a 101's
                    // connection is joined instead).
                    if exchange.streams && head.status.as_u16() != 101 {
                        work.pipes.head_out(exchange.id);
                    }
                }
                ExchangeEvent::Response(result)
            }
            ClientEvent::Interim(response) => ExchangeEvent::Interim(response),
            ClientEvent::Body(piece) => ExchangeEvent::Body(piece),
            ClientEvent::End(result) => {
                over = true;
                ExchangeEvent::End(result.map_err(body_error))
            }
        };
        work.pool.events.push((exchange.id, event));
    }
    work.client_events = events;
    if tls_failed {
        name_the_fault(&mut work.pool.events[ours..], &up.tls);
    }
    Some((exchange, over))
}

/// An exchange's response is over (`closes`: the connection failed or
/// ended with it). Returns what the connection waits for next, or `None`
/// when the next request waiting for its origin went on it.
#[allow(clippy::too_many_arguments)]
#[inline]
fn after_response(
    stream: &net::TcpStream,
    up: &mut Upstream,
    index: usize,
    closes: bool,
    round: u64,
    now: Instant,
    work: &mut Work,
    scratch: &mut Scratch,
) -> Option<Next> {
    // A hold (the loop's, or the application's pause) ends with the body:
    // idle, the connection is read for a close.
    up.held = false;
    // Bytes after the response, still part of a TLS record, would be read
    // as the next request's answer.
    if closes || holds_partial_record(up) || !up.conn.is_reusable() {
        return Some(Next::Close);
    }
    // Straight on to a request waiting for this origin when a read just
    // found nothing after the response (it is sent without reading again);
    // otherwise idle, and the pool's next request reads it first (see
    // `Upstream::dry_round`).
    let waiting = match up.dry_round == round {
        true => work.pool.take_for(&up.origin, now),
        false => None,
    };
    match waiting {
        // A request that may not be sent twice goes on only where a read
        // shows nothing after the response: a short read ended the round,
        // and a close that came with it would fail the request, which no
        // retry may repair.
        Some(next) if !next.may_go_again() && !nothing_waits(stream, scratch) => {
            work.pool.requeue(next);
            Some(Next::Close)
        }
        Some(next) => {
            work.slot_of.insert(next.id, index);
            let max_body = work.pool.options.max_body_bytes;
            start(up, next, now, max_body);
            if up.expired {
                // Its early body pieces did not fit (see `step`).
                fail(up, ClientError::Abandoned, work);
                return Some(Next::Close);
            }
            None
        }
        None => {
            work.pool.park(&up.origin, index, now);
            Some(Next::Idle)
        }
    }
}

/// Whether TLS holds part of a record: bytes nobody has seen whole.
fn holds_partial_record(up: &Upstream) -> bool {
    up.tls
        .as_ref()
        .is_some_and(|tls| tls.holds_partial_record())
}

/// What an exchange under way waits for. What TLS holds encrypted is output
/// too: the request may all have gone into it while the socket was full.
/// During the handshake the request waits in rustls (64 KiB of it), not for
/// room in the socket: watching for room then would wake every poll at once.
#[inline]
fn watch_for(up: &Upstream) -> Next {
    let wants_write = match &up.tls {
        None => up.conn.wants_write(),
        Some(tls) => !tls.output().is_empty() || (up.conn.wants_write() && !tls.is_handshaking()),
    };
    match (up.held, wants_write) {
        (false, true) => Next::Watch(Interest::READABLE | Interest::WRITABLE),
        (false, false) => Next::Watch(Interest::READABLE),
        (true, true) => Next::Watch(Interest::WRITABLE),
        (true, false) => Next::Quiet,
    }
}

/// Whether to read the response to a request just sent before the next
/// poll instead of waiting for the poll to report it. The loop does that
/// read after the round of events that sent the request: a nearby upstream
/// has usually answered by then, and the response costs no poll event.
/// (Parked afterwards, the connection stays in the busy calls for a while,
/// warmed, not chilled: so that the poll vouches it is quiet before its next
/// request, see [`Next::Idle`].) A read that
/// finds nothing costs one system call; after two in a row (a slow
/// upstream) only every 16th exchange tries, so that a faster upstream is
/// noticed again.
fn read_ahead(up: &mut Upstream) -> bool {
    if up.ahead_misses < 2 {
        return true;
    }
    up.ahead_skipped = up.ahead_skipped.wrapping_add(1);
    up.ahead_skipped.is_multiple_of(16)
}

/// Whether a reused connection's answer is the server giving up the idle
/// connection as our request raced in: a close before any byte, or a 408
/// (its word on the idle connection, read as the answer; browsers take it
/// so too) before any interim response, which would have shown the
/// request read.
fn raced_idle_close(
    result: &Result<ParsedResponse, ResponseError>,
    got_bytes: bool,
    interim: bool,
) -> bool {
    match result {
        Err(ResponseError::Truncated) => !got_bytes,
        Ok(response) => response.status == StatusCode::REQUEST_TIMEOUT && !interim,
        Err(_) => false,
    }
}

/// Whether `exchange` may go once more (marks it so).
fn retry(exchange: &mut Exchange, now: Instant) -> bool {
    if exchange.idempotent && !exchange.retried && !exchange.request.is_empty() {
        exchange.retried = true;
        exchange.since = now;
        return true;
    }
    false
}

/// What TLS failed with, once it has: in the handshake, before anything
/// of the request went, or after.
#[cold]
fn tls_fault(tls: &Option<Box<TlsSession>>) -> ClientError {
    let fault = tls.as_ref().and_then(|tls| tls.error()).cloned();
    let fault = fault.unwrap_or(TlsError::Truncated);
    match tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
        true => ClientError::TlsHandshake(fault),
        false => ClientError::Tls(fault),
    }
}

/// What a connection that broke off with `error` reports: in the TLS
/// handshake, the handshake's failure (see `ClientError::in_handshake`).
fn broke_off(up: &Upstream, error: ClientError) -> ClientError {
    match up.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
        true => error.in_handshake(),
        false => error,
    }
}

/// Names TLS's fault as the cause of the exchange's `events` that ended
/// it cut short (the close it brought reads as one).
#[cold]
fn name_the_fault(
    events: &mut [(crate::ExchangeId, ExchangeEvent)],
    tls: &Option<Box<TlsSession>>,
) {
    for (_, event) in events {
        if let ExchangeEvent::Response(Err(e)) | ExchangeEvent::End(Err(e)) = event {
            if matches!(e, ClientError::Closed | ClientError::IdleClosed) {
                *e = tls_fault(tls);
            }
        }
    }
}

fn response_error(error: ResponseError) -> ClientError {
    match error {
        ResponseError::Truncated => ClientError::Closed,
        e => ClientError::BadResponse(e),
    }
}

fn body_error(error: BodyError) -> ClientError {
    match error {
        BodyError::Chunked(e) => ClientError::BadResponse(ResponseError::InvalidChunked(e)),
        _ => ClientError::Closed,
    }
}

/// The connection broke. If the server closed a reused connection before
/// any byte of the response (its idle timeout racing our request), an
/// idempotent request goes once more, on a new connection.
fn retry_or_fail(
    up: &mut Upstream,
    reused: bool,
    error: ClientError,
    now: Instant,
    work: &mut Work,
) {
    let Some(mut exchange) = up.exchange.take() else {
        return;
    };
    let closed = matches!(
        error,
        ClientError::Reset | ClientError::Closed | ClientError::Io(_)
    );
    work.slot_of.remove(&exchange.id);
    let raced = reused && closed && !up.got_bytes;
    if raced && retry(&mut exchange, now) {
        work.pool.requeue(exchange);
    } else if raced {
        end_with(&mut work.pool, &exchange, ClientError::IdleClosed);
    } else {
        end_with(&mut work.pool, &exchange, error);
    }
}

/// Reports `exchange` failed: before its response, or (streamed) in its body.
fn end_with(pool: &mut Pool, exchange: &Exchange, error: ClientError) {
    // After a streamed response's head, the failure is its body's.
    let event = match exchange.answered {
        true => ExchangeEvent::End(Err(error)),
        false => ExchangeEvent::Response(Err(error)),
    };
    pool.events.push((exchange.id, event));
}

/// A connection that never connected: its exchange goes to the host's
/// next address, if there is one.
fn try_next_address(up: &mut Upstream, now: Instant, work: &mut Work) -> bool {
    let Some(mut exchange) = up.exchange.take() else {
        return false;
    };
    let timeout = work.pool.options.connect_timeout;
    if exchange.next_address(up.last_progress, now, timeout) {
        work.slot_of.remove(&exchange.id);
        work.pool.requeue(exchange);
        return true;
    }
    up.exchange = Some(exchange);
    false
}

pub(crate) fn fail(up: &mut Upstream, error: ClientError, work: &mut Work) {
    if let Some(exchange) = up.exchange.take() {
        work.slot_of.remove(&exchange.id);
        end_with(&mut work.pool, &exchange, error);
    }
}

/// The connection is gone: the pool forgets it, and an exchange still on
/// it ends.
pub(crate) fn closed(up: &mut Upstream, index: usize, _now: Instant, work: &mut Work) {
    if !up.conn.is_switched() {
        // A switched one left the pool already.
        work.pool.closed(&up.origin, index);
    }
    let error = broke_off(up, ClientError::Reset);
    fail(up, error, work);
}

/// Whether a client's streamed request body is the body of `exchange`.
fn is_piped(work: &Work, exchange: crate::ExchangeId) -> bool {
    work.pipes.up_from(exchange).is_some()
}

/// Ends what waited too long: a connect, a response, an idle connection.
/// Returns the next deadline.
pub(crate) fn handle_timeout(up: &mut Upstream, now: Instant, work: &mut Work) -> Option<Instant> {
    // Switched, it waits for its client's 101 to go out behind the responses
    // before it, however long they take: the client's own timeouts bound
    // that, and its leaving (or the application's not taking it) closes
    // this connection. The pool's idle timeout would close it under the
    // client's 101.
    if up.conn.is_switched() {
        return None;
    }
    let handshaking = up.tls.as_ref().is_some_and(|tls| tls.is_handshaking());
    let options = &work.pool.options;
    let (connect, response, idle) = (
        options.connect_timeout,
        options.response_timeout,
        options.idle_timeout,
    );
    let since = up.last_progress;
    let (deadline, error) = match (&up.exchange, up.connecting) {
        // Its share of the host's connect time, which the attempts at its
        // addresses share.
        (Some(ex), true) => (
            ex.attempt_by(since, connect),
            Some(ClientError::ConnectTimeout(connect)),
        ),
        (None, true) => (since + connect, Some(ClientError::ConnectTimeout(connect))),
        // The handshake is part of connecting.
        (_, false) if handshaking => (
            since + connect,
            Some(ClientError::TlsHandshake(TlsError::HandshakeTimeout(
                connect,
            ))),
        ),
        // Held back by its client is not silence, nor is waiting for the
        // rest of a request body its client is slow to send (the client's
        // own idle timeout covers that). A body no client pipes into any
        // more (its client left, or its pipe was dropped) has no such
        // cover: it is timed.
        (Some(ex), false) if up.held || up.conn.waits_for_body() && is_piped(work, ex.id) => {
            return None
        }
        (Some(_), false) => (since + response, Some(ClientError::Timeout(response))),
        (None, false) => (since + idle, None),
    };
    if now < deadline {
        return Some(deadline);
    }
    if up.connecting {
        work.pool.note_unreachable(up.origin.addr, now);
        if try_next_address(up, now, work) {
            up.expired = true;
            return None;
        }
    }
    if let (Some(error), Some(exchange)) = (error, up.exchange.take()) {
        work.slot_of.remove(&exchange.id);
        end_with(&mut work.pool, &exchange, error);
    }
    up.expired = true;
    None
}

/// Whether a read finds nothing waiting on `stream` (it would block): no
/// close, nor any byte, came after what was read.
fn nothing_waits(stream: &net::TcpStream, scratch: &mut [u8]) -> bool {
    matches!(net::recv(stream, scratch), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
