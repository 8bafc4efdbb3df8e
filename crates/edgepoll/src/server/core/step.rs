//! One step of an HTTP or WebSocket connection: its state machine fed what
//! was read, and what it queued written.

use super::{Next, Work};
use crate::app::Responder;
use crate::http::Handler;
use crate::net::{Shutdown, SocketAddr};
use crate::server::connection::{
    pump, pump_in, pump_out, Connection, HttpEndpoint, Role, Scratch, WsEndpoint,
};
use crate::server::driven::{Dispatcher, Driven, Inbound};
use crate::server::ServerOptions;
use crate::ws::WebSocket;
use crate::{Interest, Token};
use std::io;
use std::time::Instant;

/// Moves an HTTP connection forward.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_http<D: Driven>(
    conn: &mut Connection,
    token: Token,
    readable: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    let Role::Http(handler) = &mut conn.role else {
        return Next::Close;
    };
    let serial = conn.serial;
    let mut dispatcher = Dispatcher {
        driven,
        work,
        now,
        token,
        serial,
    };
    if !readable {
        // Requests read while responses were owed may go on now.
        handler.process(now, &mut dispatcher);
    }
    let mut endpoint = HttpEndpoint {
        handler,
        dispatch: &mut dispatcher,
        now,
        hold_for: options.hold_for_body,
        hold_most: options.body_backlog,
        hold: false,
        hold_until: None,
    };
    let mut io = pump_in(&conn.stream, &mut endpoint, readable, scratch);
    // Output may wait a moment for more to join it: a streamed body's rest,
    // or the next pipelined answer, still owed. Asked after the reads: an
    // answer they gave at once may be one to hold (asked before them, it
    // went as soon as it was made, and the owed one alone, after the
    // client's delayed acknowledgement).
    endpoint.decide_hold();
    if io.is_ok() {
        io = pump_out(&conn.stream, &mut endpoint);
    }
    let (hold, hold_until) = (endpoint.hold, endpoint.hold_until);
    if let Some(until) = hold_until {
        work.held_output.push_back((token.0, serial, until));
    }
    if handler.has_abandoned() {
        take_reports(handler, token, serial, work);
    }
    if let Err(e) = io {
        // A reset between requests is a client's way of leaving (browsers
        // and load generators do it), no more worth a line than a close
        // there: one per client would flood the log. Anywhere else it is
        // said.
        let leaving = handler.is_between_requests()
            && matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            );
        if !leaving {
            report(options, conn.peer, &format!("connection failed: {e}"));
        }
        return Next::Close;
    }
    if let Some(incident) = handler.take_incident() {
        report(options, conn.peer, &incident.to_string());
    }
    if handler.is_finished() {
        // Requests it gave up as it closed (a client that stopped reading,
        // dropped at its idle timeout) were told above; what such a client
        // left unread goes with a reset.
        if handler.wants_write() {
            return Next::Reset;
        }
        return start_lingering(conn, now, options);
    }
    // WRITABLE only while output waits (and is not held back); READABLE
    // unless backpressure says stop.
    match (handler.wants_read(), handler.wants_write() && !hold) {
        (true, true) => Next::Watch(Interest::READABLE | Interest::WRITABLE),
        (false, true) => Next::Watch(Interest::WRITABLE),
        (true, false) => Next::Watch(Interest::READABLE),
        (false, false) => Next::Quiet,
    }
}

/// What a step of `handler` gave up: requests abandoned, and with them a
/// request body it will not read on, told now rather than at the close or
/// the next sweep.
#[cold]
fn take_reports(handler: &mut Handler, token: Token, serial: u64, work: &mut Work) {
    work.abandoned.extend(
        handler
            .take_abandoned()
            .map(|id| Responder { token, serial, id }),
    );
    tell_broken_body(handler, token, serial, work);
}

/// A request body `handler` will not read on (it stalled, or a response
/// that closes the connection came before its end), if any: its end goes
/// to the application, the upstream the body is piped to, or the response
/// it is echoed into.
pub(super) fn tell_broken_body(handler: &mut Handler, token: Token, serial: u64, work: &mut Work) {
    if let Some((id, error)) = handler.take_broken_body() {
        let responder = Responder { token, serial, id };
        work.inbound.push((responder, Inbound::End(Err(error))));
    }
}

/// Closes a WebSocket as the server shuts down (1001).
pub(super) fn going_away(socket: &mut WebSocket, now: Instant) {
    socket.close(
        crate::ws::CloseCode::GOING_AWAY,
        "server shutting down",
        now,
    );
}

/// Moves an upgraded connection over to a [`WebSocket`]: the 101 and the
/// bytes that followed the request go with it.
#[allow(clippy::too_many_arguments)]
pub(super) fn upgrade<D: Driven>(
    conn: &mut Connection,
    token: Token,
    shutting_down: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    // Only a handshake this loop answered may switch; a plain service's own
    // 101 has no protocol to switch to here.
    let Some(opened) = driven.take_upgrade() else {
        return Next::Close;
    };
    let Role::Http(handler) = &mut conn.role else {
        return Next::Close;
    };
    let (output, input) = handler.take_upgraded();
    let mut socket = WebSocket::new(options.ws_limits.clone(), now);
    socket.queue_raw(&output);
    let mut cx = work.context(now);
    let before = cx.outbox.queued_bytes();
    driven.on_ws_open(token, &opened, &mut cx);
    // What the application queued as the socket opened (a greeting) goes
    // ahead of a close read behind the handshake, as replies to messages
    // do: it was sent before that close was read. (Queued for others
    // only, it holds the close back until the next turn of the loop.)
    let mut handed = cx.outbox.queued_bytes() > before;
    socket.receive(&input, now, |message| {
        handed = true;
        driven.on_ws_message(token, message, &mut cx)
    });
    if shutting_down {
        // A handshake begun before the drain is answered, as a request is;
        // the socket then goes as those open at the drain went.
        going_away(&mut socket, now);
    }
    conn.role = Role::Ws(Box::new(socket));
    step_ws(
        conn, token, false, handed, now, driven, work, scratch, options,
    )
}

/// Moves a WebSocket connection forward: each message goes to the
/// application; what is queued is written. `handed`: messages went to the
/// application just before (frames behind a handshake), or it queued
/// frames as the socket opened, which are not delivered yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step_ws<D: Driven>(
    conn: &mut Connection,
    token: Token,
    readable: bool,
    handed: bool,
    now: Instant,
    driven: &mut D,
    work: &mut Work,
    scratch: &mut Scratch,
    options: &ServerOptions,
) -> Next {
    let Role::Ws(socket) = &mut conn.role else {
        return Next::Close;
    };
    // What the application queues in this step, answering what it reads.
    let before = work.outbox.queued_bytes();
    let mut cx = work.context(now);
    let mut endpoint = WsEndpoint {
        socket,
        on_message: |message: crate::ws::Message<'_>| {
            driven.on_ws_message(token, message, &mut cx);
            cx.outbox.queued_bytes().saturating_sub(before)
        },
        replies: 0,
        now,
        gone: false,
        handed,
    };
    let io = pump(&conn.stream, &mut endpoint, readable, scratch);
    let (gone, handed) = (endpoint.gone, endpoint.handed);
    if !handed {
        // The replies to what was read before a close have been queued
        // (this step comes after their delivery): later frames no longer
        // go ahead of the close.
        socket.replies_done();
    }
    if io.is_err() || gone {
        return Next::Close;
    }
    if socket.is_dropped() {
        // Dropped for not reading (its queue full, or its send timed out),
        // or as dead: what it left unsent goes with a reset (see
        // `Next::Reset`); a dead one's end is a close.
        return match socket.left_unsent() {
            true => Next::Reset,
            false => Next::Close,
        };
    }
    if socket.is_finished() {
        // The close frame is out: the peer's answer is drained while lingering.
        driven.on_ws_close(token, &mut work.context(now));
        return start_lingering(conn, now, options);
    }
    if !socket.wants_write() {
        // An idle WebSocket costs no buffer memory.
        socket.release_buffers();
        return Next::Watch(Interest::READABLE);
    }
    // Closing, it reads nothing until its close frame is out: watched for
    // reading, a peer that sends on would wake every poll at once
    // (readiness is level-triggered) while a slow reader drains the queue.
    match socket.wants_read() {
        true => Next::Watch(Interest::READABLE | Interest::WRITABLE),
        false => Next::Watch(Interest::WRITABLE),
    }
}

fn report(options: &ServerOptions, peer: SocketAddr, what: &str) {
    (options.log)(&format!("edgepoll: {peer}: {what}"));
}

/// Shuts the write side of a connection that has said all it will, and
/// reads (and drops) what its peer still sends for a while before the
/// close, so that a close with unread input does not become a reset that
/// could destroy the last response before the peer reads it (RFC 9112
/// §9.6).
pub(super) fn start_lingering(
    conn: &mut Connection,
    now: Instant,
    options: &ServerOptions,
) -> Next {
    let _ = conn.stream.shutdown(Shutdown::Write);
    conn.linger_until = Some(lingering(now, options));
    Next::Watch(Interest::READABLE)
}

/// The deadlines of a connection that starts lingering at `now`: the next
/// (moved on by each byte read) and the last.
fn lingering(now: Instant, options: &ServerOptions) -> (Instant, Instant) {
    let most = now + options.linger_most.max(options.linger);
    (now + options.linger, most)
}
