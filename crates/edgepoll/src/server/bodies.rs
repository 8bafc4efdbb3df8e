//! Bodies the loop moves itself: the pieces of streamed request bodies and
//! of streamed responses go where the application piped them (an
//! exchange's request, a waiting request's response) or to the application.
//!
//! Backpressure: a body's source is held (not read) while the place its
//! pieces go has more than [`ServerOptions::body_backlog`] bytes to send,
//! and released once that falls under a quarter of it. The hold is decided
//! after each step, and a step reads at most `body_backlog` (and one read
//! more), so a body's queue stays under twice that plus 64 KiB. So memory
//! is bounded by configuration, not by how fast each side happens to be: a
//! slow reader stops its upstream's socket from being read, and the
//! upstream's socket buffer fills instead of the heap.
//!
//! [`ServerOptions::body_backlog`]: crate::ServerOptions::body_backlog

use super::connection::{Connection, Role, Upstream};
use super::core::{Core, PipeEnd, Work};
use super::driven::{Driven, Inbound};
use super::held::{AtClient, Held};
use crate::app::{Responder, Source};
use crate::client::{ClientError, ExchangeEvent, ExchangeId};
use crate::Token;
use std::time::Instant;

/// Sends a piece (or the end) of a streamed request body on.
pub(crate) fn route_inbound<D: Driven>(
    core: &mut Core,
    responder: Responder,
    inbound: Inbound,
    now: Instant,
    driven: &mut D,
) {
    // Its connection closed while this batch was routed, with its body
    // piped or echoed: not the application's.
    let cut = &core.work.pipes.cut_bodies;
    if !cut.is_empty() && cut.contains(&responder) {
        return;
    }
    if core.work.pipes.echoes(&responder) {
        return to_own_response(core, responder, inbound, now);
    }
    let Some(exchange) = open_pipe_up(&mut core.work, responder) else {
        let first = core.work.pipes.begin_body(&responder);
        match inbound {
            Inbound::Piece(piece) => {
                // With its first piece, the rest may still be echoed.
                core.work.pipes.first_piece = first.then_some(responder);
                let mut cx = core.work.context(now);
                driven.on_request_body(responder, piece, &mut cx);
                core.work.pipes.first_piece = None;
            }
            Inbound::End(result) => {
                let mut cx = core.work.context(now);
                driven.on_request_end(responder, result, &mut cx);
            }
        }
        // An answer given now (a response the body is echoed into, say)
        // must be in place before the body's next pieces, which may follow
        // in this same batch.
        return core.deliver_answers(now, driven);
    };
    let limit = core.options.body_backlog;
    let end = matches!(inbound, Inbound::End(_));
    if let Some(&index) = core.work.slot_of.get(&exchange) {
        if let Some(Some(Connection {
            role: Role::Upstream(up),
            ..
        })) = core.slots.get_mut(index)
        {
            let framed = match inbound {
                Inbound::Piece(piece) => up.conn.send_body(piece).is_ok(),
                Inbound::End(Ok(())) => up.conn.end_body().is_ok(),
                Inbound::End(Err(_)) => false,
            };
            if !framed {
                // The client's body broke off, or does not fit the length
                // the request announced: the upstream request cannot be
                // completed, and its connection is out of step (closed).
                // The loop gives it up: the upstream did nothing wrong.
                up.expired = true;
                super::upstream::fail(up, ClientError::Abandoned, &mut core.work);
            }
            let backlog = up.conn.backlog();
            if backlog > limit {
                hold_request(core, responder, exchange, now);
            }
            // Written with the batch's other pieces (`settle_work`): one
            // write each, the last small one waited for the upstream's
            // delayed ACK of the one before (Nagle's algorithm), 40 ms.
            core.touch(index);
        }
    } else if let Some(queued) = core.work.pool.queued_mut(exchange) {
        match inbound {
            Inbound::Piece(piece) => queued.early.push(piece),
            Inbound::End(Ok(())) => queued.early_end = true,
            Inbound::End(Err(_)) => {
                // Reported failed (not cancelled: the application hears of
                // it); its pipe goes below.
                core.work.pool.withdraw(exchange);
                core.work.pool.fail(exchange, ClientError::Abandoned);
            }
        }
        if core
            .work
            .pool
            .queued_mut(exchange)
            .is_some_and(|queued| queued.early.len() > limit)
        {
            hold_request(core, responder, exchange, now);
        }
    }
    if end {
        // The body is all read: nothing is held back any more.
        core.work.pipes.unpipe_up(&responder);
        core.work.held.unhold_for(exchange);
    }
}

/// The exchange `responder`'s body is piped into, while that is under way.
/// A pipe into one that is over, its end not yet routed (an upstream that
/// answered early, its end found in this same batch), ends here: the rest
/// of the body is the application's, as once that end is routed
/// ([`forget_exchange`], which also unpipes the response, still to come).
/// (The rest was dropped, and its end never told.)
fn open_pipe_up(work: &mut Work, responder: Responder) -> Option<ExchangeId> {
    let exchange = work.pipes.up_into(&responder)?;
    if work.slot_of.contains_key(&exchange) || work.pool.queued_mut(exchange).is_some() {
        return Some(exchange);
    }
    work.pipes.unpipe_up_into(exchange);
    if let Some(held) = work.held.unhold_for(exchange) {
        work.release.push(Source::Request(held));
    }
    None
}

/// A piece of a request body that is its own response's body.
fn to_own_response(core: &mut Core, responder: Responder, inbound: Inbound, now: Instant) {
    let limit = core.options.body_backlog;
    if let Inbound::End(_) = inbound {
        core.work.pipes.unpipe_echo(&responder);
        (core.work.held).unhold_at(responder.token.0, AtClient::Echo(responder));
    }
    let mut hold = false;
    let Some(handler) = core.handler_of(responder) else {
        core.work.pipes.unpipe_echo(&responder);
        return;
    };
    let id = responder.id;
    match inbound {
        Inbound::Piece(piece) => {
            if handler.send_body(id, piece, now).is_err() {
                // Over its length, or gone: the response cannot be completed.
                let _ = handler.abort_body(id, now);
            } else if handler.body_backlog(id) > limit {
                handler.pause_body(responder.id, true, now);
                hold = true;
            }
        }
        Inbound::End(result) => {
            let _ = match result {
                Ok(()) => handler.end_body(id, now),
                Err(_) => handler.abort_body(id, now),
            };
        }
    }
    if hold {
        (core.work.held).hold_at(responder.token.0, AtClient::Echo(responder));
    }
    // With the head and the batch's other pieces, in one write (see
    // `route_inbound`).
    core.touch(responder.token.0);
}

/// Below this many bytes queued, a connection's write waits for the end of
/// the round of work ([`Core::touch`]), so that small pieces leave together
/// rather than as small writes that Nagle holds back; above, it goes now,
/// so that a large body keeps flowing.
const COALESCE_BELOW: usize = 4 * 1024;

/// Writes what was just queued on the connection at `index`: now if it is
/// much, at the end of the round if little.
fn write_soon<D: Driven>(
    core: &mut Core,
    index: usize,
    queued: usize,
    now: Instant,
    driven: &mut D,
) {
    match queued < COALESCE_BELOW {
        true => core.touch(index),
        false => core.step_now(index, now, driven),
    }
}

/// Stops reading a streamed request body until the exchange it is piped
/// into has sent most of it.
fn hold_request(core: &mut Core, responder: Responder, exchange: ExchangeId, now: Instant) {
    if let Some(handler) = core.handler_of(responder) {
        handler.pause_body(responder.id, true, now);
        core.work.held.hold_for(exchange, responder);
    }
}

/// Hands on what happened to an exchange: to the application, or down the
/// pipe to the request whose response body it is. `more_next`: the batch's
/// next event is the same exchange's (more of its body, or its end).
pub(crate) fn route_exchange_event<D: Driven>(
    core: &mut Core,
    exchange: ExchangeId,
    event: ExchangeEvent,
    more_next: bool,
    now: Instant,
    driven: &mut D,
) {
    match event {
        ExchangeEvent::Response(result) => {
            if result.is_err() {
                forget_exchange(&mut core.work, exchange);
            }
            driven.on_response(exchange, result, &mut core.work.context(now));
            // A switched connection the application did not take closes.
            if core.work.switched.contains_key(&exchange)
                && !core.work.pipes.tunnels.contains_key(&exchange)
            {
                core.drop_switched(exchange, now);
            }
            // A response piped now must be in place before the body's
            // pieces, which may follow in this same batch.
            core.deliver_answers(now, driven);
        }
        ExchangeEvent::Interim(response) => {
            driven.on_interim(exchange, response, &mut core.work.context(now));
            // Passed on now, ahead of the response it precedes.
            core.deliver_answers(now, driven);
        }
        ExchangeEvent::Body(piece) => match core.work.pipes.down_into(exchange) {
            Some(responder) => {
                let limit = core.options.body_backlog;
                let Some(handler) = core.handler_of(responder) else {
                    // The client is gone: so is the reason to read on.
                    return cut_down(core, exchange, PipeEnd::Cut);
                };
                if handler.send_body(responder.id, piece, now).is_err() {
                    // The response was cut short here (its request body
                    // broke off): the rest of it is wanted no more.
                    let _ = handler.abort_body(responder.id, now);
                    core.touch(responder.token.0);
                    return cut_down(core, exchange, PipeEnd::Cut);
                }
                let backlog = handler.body_backlog(responder.id);
                // Nothing queued (asked first: the lookup below is the rare
                // case): maybe a response to HEAD, whose pieces are dropped
                // (`body_backlog` is 0 for it). It is complete with its
                // head, and the exchange is not read on for it: an endless
                // body would be read as fast as it came, for nothing, with
                // no backlog ever to hold it back.
                if backlog == 0 && handler.answers_head(responder.id) {
                    let _ = handler.end_body(responder.id, now);
                    core.touch(responder.token.0);
                    return cut_down(core, exchange, PipeEnd::Whole);
                }
                if backlog > limit {
                    hold_exchange(core, exchange, responder.token.0);
                }
                match more_next {
                    // The piece goes with what follows it in the batch (a
                    // chunked body's last chunk with its end, which alone
                    // would wait for the client's delayed ACK of the chunk
                    // before it). They are all read already: held to the
                    // batch's end, they take no more memory.
                    true => core.touch(responder.token.0),
                    false => write_soon(core, responder.token.0, backlog, now, driven),
                }
            }
            None => {
                // Its body has begun to go to the application: no pipe takes it now.
                core.work.pipes.take_pipeable(exchange);
                driven.on_response_body(exchange, piece, &mut core.work.context(now));
            }
        },
        ExchangeEvent::End(result) => match core.work.pipes.down_into(exchange) {
            Some(responder) => {
                forget_exchange(&mut core.work, exchange);
                if let Some(handler) = core.handler_of(responder) {
                    let _ = match result {
                        Ok(()) => handler.end_body(responder.id, now),
                        // Cut short upstream: the client must see it cut short.
                        Err(_) => handler.abort_body(responder.id, now),
                    };
                    core.touch(responder.token.0);
                }
                // The application is told too: the pipe was its exchange.
                driven.on_response_end(exchange, result, &mut core.work.context(now));
            }
            None => {
                forget_exchange(&mut core.work, exchange);
                driven.on_response_end(exchange, result, &mut core.work.context(now));
            }
        },
    }
}

/// Stops reading an exchange's response until the client connection at
/// `client` drains.
fn hold_exchange(core: &mut Core, exchange: ExchangeId, client: usize) {
    if let Some((_, up)) = upstream_of(core, exchange) {
        up.held = true;
        (core.work.held).hold_at(client, AtClient::Exchange(exchange));
    }
}

/// Whether `exchange`'s response is not being read (held back).
pub(crate) fn is_held(core: &mut Core, exchange: ExchangeId) -> bool {
    upstream_of(core, exchange).is_some_and(|(_, up)| up.held)
}

/// The outbound connection `exchange` is on (its slot too), while it is.
fn upstream_of(core: &mut Core, exchange: ExchangeId) -> Option<(usize, &mut Upstream)> {
    let index = *core.work.slot_of.get(&exchange)?;
    match core.slots.get_mut(index) {
        Some(Some(Connection {
            role: Role::Upstream(up),
            ..
        })) => Some((index, up)),
        _ => None,
    }
}

/// After a connection was stepped: sources it was holding back whose
/// pieces it has now mostly sent are released, and an application told that
/// its streamed response drained.
#[inline]
pub(crate) fn after_step(conn: &mut Connection, index: usize, work: &mut Work, limit: usize) {
    // Nearly always nothing is held back: one check, no call.
    if work.held.is_empty() {
        return;
    }
    release_drained(conn, index, work, limit);
}

#[inline(never)]
fn release_drained(conn: &mut Connection, index: usize, work: &mut Work, limit: usize) {
    let low = limit / 4;
    let Work {
        pipes,
        held,
        drained,
        release,
        ..
    } = work;
    match &mut conn.role {
        Role::Http(handler) => {
            let Some(mut list) = held.take_at(index) else {
                return;
            };
            let here = |r: &Responder| r.token.0 == index && r.serial == conn.serial;
            list.retain(|source| match *source {
                // Of a request on a connection gone from this slot: nothing
                // is waiting for it (exchanges are released, to be cut off).
                AtClient::Echo(r) | AtClient::Streamed(r) if !here(&r) => false,
                AtClient::Exchange(exchange) => match pipes.down_into(exchange) {
                    Some(r) if here(&r) && handler.body_backlog(r.id) > low => true,
                    _ => {
                        release.push(Source::Exchange(exchange));
                        false
                    }
                },
                // A request body echoed into its own response: read on once
                // the response has mostly gone out.
                AtClient::Echo(r) => match handler.body_backlog(r.id) > low {
                    true => true,
                    false => {
                        release.push(Source::Request(r));
                        false
                    }
                },
                AtClient::Streamed(r) => match handler.body_backlog(r.id) > low {
                    true => true,
                    false => {
                        drained.push(r);
                        false
                    }
                },
            });
            held.keep_at(index, list);
        }
        Role::Upstream(up) => {
            let Some(exchange) = &up.exchange else {
                return;
            };
            if held.is_held_for(exchange.id) && up.conn.backlog() <= low {
                if let Some(r) = held.unhold_for(exchange.id) {
                    release.push(Source::Request(r));
                }
            }
        }
        Role::Ws(_) | Role::Tunnel(_) => switched(held, release, index),
    }
}

/// The client connection at `index` switched protocols (a WebSocket, or a
/// tunnel after an upstream's 101): what it held for its HTTP responses
/// goes. Those responses were all out before the 101, so nothing waits on
/// them; an exchange is read again (it is over, or will be). Left held,
/// they stayed until the slot served HTTP again, and every step of every
/// connection took the slow path meanwhile.
pub(crate) fn switched(held: &mut Held, release: &mut Vec<Source>, index: usize) {
    for source in held.take_at(index).into_iter().flatten() {
        if let AtClient::Exchange(exchange) = source {
            release.push(Source::Exchange(exchange));
        }
    }
}

/// Holds a source the application paused: its connection is not read
/// until it resumes it. (Not one the loop carries: see `Core::settle_work`.)
pub(crate) fn pause(core: &mut Core, source: Source, now: Instant) {
    match source {
        Source::Request(responder) => {
            // Not one that ended: the connection has one pause, and it
            // would be the next body's (a pipelined one the loop holds).
            if let Some(handler) = core.handler_of(responder) {
                if handler.reads_body_of(responder.id) {
                    handler.pause_body(responder.id, true, now);
                }
            }
        }
        Source::Exchange(exchange) => {
            if let Some((_, up)) = upstream_of(core, exchange) {
                up.held = true;
            }
        }
    }
}

/// Reads a held source again.
pub(crate) fn release<D: Driven>(core: &mut Core, release: Source, now: Instant, driven: &mut D) {
    let index = match release {
        Source::Request(responder) => {
            let Some(handler) = core.handler_of(responder) else {
                return;
            };
            handler.pause_body(responder.id, false, now);
            responder.token.0
        }
        Source::Exchange(exchange) => {
            let Some((index, up)) = upstream_of(core, exchange) else {
                return;
            };
            // Its time to answer starts over: while held it was not asked.
            if std::mem::take(&mut up.held) {
                up.last_progress = now;
            }
            index
        }
    };
    core.step_now(index, now, driven);
}

/// The response of `exchange`, piped down to a client, is wanted no more:
/// unpiped, stopped, and the application told of its end.
fn cut_down(core: &mut Core, exchange: ExchangeId, end: PipeEnd) {
    forget_exchange(&mut core.work, exchange);
    core.drop_pipe(exchange, end);
}

/// A client connection closed: the exchanges piped to or from it stop.
/// Returns those its request body was going up into and whose response
/// went nowhere here: their uploads broke off, for [`abandon_upload`].
pub(crate) fn forget_connection(work: &mut Work, token: Token) -> Vec<ExchangeId> {
    let (up, down) = work.pipes.unpipe_slot(token.0);
    for &exchange in &up {
        work.held.unhold_for(exchange);
    }
    work.cut_pipes
        .extend(down.iter().map(|&exchange| (exchange, PipeEnd::Cut)));
    // What it released is gone with it (all it held was its own).
    work.held.take_at(token.0);
    for &exchange in &down {
        work.pool.cancel(exchange);
    }
    // One piped both ways is told of as a cut pipe (above).
    up.into_iter().filter(|e| !down.contains(e)).collect()
}

/// The client whose request body went up into `exchange` is gone: the
/// exchange fails as when that body breaks off (`ClientError::Abandoned`,
/// to `on_response` or `on_response_end`), so that the application, which
/// may have answered that client already, hears of its end.
pub(crate) fn abandon_upload(core: &mut Core, exchange: ExchangeId) {
    if let Some(&index) = core.work.slot_of.get(&exchange) {
        if let Some(Some(Connection {
            role: Role::Upstream(up),
            ..
        })) = core.slots.get_mut(index)
        {
            // Out of step (its request cannot be completed): closed.
            up.expired = true;
            super::upstream::fail(up, ClientError::Abandoned, &mut core.work);
            core.touch(index);
            return;
        }
    }
    if core.work.pool.queued_mut(exchange).is_some() {
        core.work.pool.withdraw(exchange);
        core.work.pool.fail(exchange, ClientError::Abandoned);
    } else if core.work.switched.contains_key(&exchange) {
        // Switched, not yet joined: there is no one to join now.
        core.work.pool.cancel(exchange);
    }
    // Otherwise it is over, its end reported or about to be: a cancel
    // would drop that report.
}

/// An exchange ended or was cancelled: its pipes go, and a request body
/// held back for it is read again (its pieces now go to the application).
pub(crate) fn forget_exchange(work: &mut Work, exchange: ExchangeId) {
    work.pipes.unpipe_up_into(exchange);
    work.pipes.take_pipeable(exchange);
    // Even when the request was piped on into another exchange since (its
    // hold would stay, and with it the slow path of every step).
    if let Some(responder) = work.held.unhold_for(exchange) {
        work.release.push(Source::Request(responder));
    }
    if let Some(responder) = work.pipes.unpipe_down(exchange) {
        (work.held).unhold_at(responder.token.0, AtClient::Exchange(exchange));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pair::pair;
    use super::*;
    use crate::net;
    use crate::ws::{WebSocket, WsLimits};
    use bytes::Bytes;

    /// Records what of a request body comes to the application.
    #[derive(Default)]
    struct Told {
        pieces: Vec<Bytes>,
        ended: Option<Result<(), crate::http::BodyError>>,
    }

    impl crate::App for Told {
        fn call<'a>(
            &mut self,
            _: &crate::http::Request<'a>,
            _: Responder,
            _: &mut crate::Context<'_>,
        ) -> crate::http::Reply<'a> {
            crate::http::Reply::Later
        }

        fn on_request_body(&mut self, _: Responder, piece: Bytes, _: &mut crate::Context<'_>) {
            self.pieces.push(piece);
        }

        fn on_request_end(
            &mut self,
            _: Responder,
            result: Result<(), crate::http::BodyError>,
            _: &mut crate::Context<'_>,
        ) {
            self.ended = Some(result);
        }
    }

    /// The rest of a request body piped into an exchange that is over, its
    /// end not yet routed (an upstream that answered early, found in the
    /// same batch), comes to the application, as it does once that end is
    /// routed. (It was dropped, and `on_request_end` never came.)
    #[test]
    fn a_body_piped_into_an_exchange_that_is_over_comes_to_the_application() {
        let mut core = Core::new(crate::ServerOptions::default());
        let (responder, exchange) = (Responder::at(0, 1), ExchangeId(5));
        core.work.pipes.body_unbegun(responder);
        assert!(core.work.pipes.begin_body(&responder));
        core.work.pipes.pipe_up(responder, exchange);
        let mut app = crate::server::driven::Apps(Told::default());
        let (now, piece) = (Instant::now(), Bytes::from_static(b"rest"));
        route_inbound(&mut core, responder, Inbound::Piece(piece), now, &mut app);
        route_inbound(&mut core, responder, Inbound::End(Ok(())), now, &mut app);
        assert_eq!(app.0.pieces, [Bytes::from_static(b"rest")]);
        assert_eq!(app.0.ended, Some(Ok(())));
        assert!(core.work.pipes.up_into(&responder).is_none());
    }

    /// A client connection that switched to a WebSocket after a pipelined
    /// request holds nothing once stepped: its exchange is read again, its
    /// streamed response's hold goes, and another connection's hold stays.
    /// (They stayed until the slot served HTTP again.)
    #[test]
    fn a_switched_connection_lets_go_of_what_it_held() {
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let (near, _far) = pair(&listener);
        let now = Instant::now();
        let mut conn = Connection {
            stream: near,
            peer: "127.0.0.1:1".parse().expect("an address"),
            serial: 1,
            interest: None,
            linger_until: None,
            touched: false,
            role: Role::Ws(Box::new(WebSocket::new(WsLimits::default(), now))),
        };
        let mut work = Work::default();
        let streamed = AtClient::Streamed(Responder::at(0, 1));
        let other = AtClient::Exchange(ExchangeId(9));
        assert!(work.held.hold_at(0, AtClient::Exchange(ExchangeId(7))));
        assert!(work.held.hold_at(0, streamed));
        assert!(work.held.hold_at(1, other));
        after_step(&mut conn, 0, &mut work, 1 << 20);
        assert_eq!(work.release, vec![Source::Exchange(ExchangeId(7))]);
        assert!(work.held.take_at(0).is_none(), "slot 0 holds nothing");
        assert_eq!(work.held.take_at(1), Some(vec![other]));
        assert!(work.held.is_empty() && work.drained.is_empty());
    }
}
