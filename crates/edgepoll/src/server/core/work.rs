//! Settling the application's work: its answers delivered, bodies moved,
//! its callbacks told what happened, its timers fired.

use super::{Core, PipeEnd, Work};
use crate::app::{misused, Answer, Responder, Source};
use crate::client::ExchangeId;
use crate::http::{Response, StatusCode, StreamError};
use crate::server::connection::Role;
use crate::server::driven::{Driven, Inbound};
use crate::server::held::AtClient;
use crate::server::names::{self};
use crate::server::{bodies, ws_router};
use std::time::Instant;

impl Core {
    /// Settles the application's work, and reads the responses to the
    /// requests sent since the last poll (see `upstream::read_ahead`),
    /// which may answer requests and so make more work.
    pub(super) fn settle_before_poll<D: Driven>(&mut self, driven: &mut D) {
        for _ in 0..4 {
            let now = Instant::now();
            if self.work.is_pending() {
                self.settle_work(now, driven);
            }
            if self.work.read_ahead.is_empty() {
                return;
            }
            self.work_through(
                |w| &mut w.read_ahead,
                |core, (index, serial)| {
                    let Some(Some(conn)) = core.slots.get(index) else {
                        return;
                    };
                    match &conn.role {
                        Role::Upstream(up) if conn.serial == serial && up.read_ahead => {}
                        // Stepped since, or gone.
                        _ => return,
                    }
                    let next = core.step_upstream(index, false, true, now);
                    core.settle(index, next, now);
                    if core.work.is_pending() {
                        core.settle_work(now, driven);
                    }
                },
            );
        }
        // Sent by the last round's callbacks: left to the poll, which must
        // cover them.
        self.work_through(
            |w| &mut w.read_ahead,
            |core, (index, serial)| {
                if let Some(Some(conn)) = core.slots.get_mut(index) {
                    if let (true, Role::Upstream(up)) = (conn.serial == serial, &mut conn.role) {
                        up.read_ahead = false;
                        let _ = core.poll.warm(&conn.stream);
                    }
                }
            },
        );
    }

    /// Works through a queue of the loop's work with `each`, which may queue
    /// more (left for the next pass). The queue then gets its buffer back:
    /// a busy loop queues about as many each round, which would otherwise
    /// allocate anew each time.
    pub(super) fn work_through<T>(
        &mut self,
        queue: fn(&mut Work) -> &mut Vec<T>,
        mut each: impl FnMut(&mut Core, T),
    ) {
        let mut items = std::mem::take(queue(&mut self.work));
        for item in items.drain(..) {
            each(self, item);
        }
        let left = queue(&mut self.work);
        if left.is_empty() {
            *left = items;
        }
    }

    /// Tells the application of its timers due at `now`: those set before
    /// this round's, in time order (times past were taken as the time they
    /// were set in, `Context::set_timer`; a timer cancelled by an earlier one's
    /// callback does not fire), and then settles what they did, once:
    /// deadlines that fall due together give up their exchanges before a
    /// connection one of them frees goes to a queued exchange that a later
    /// one gives up too (settled after each, a pool of 2 with 6 such
    /// deadlines made 6 connections). One set meanwhile, even for a time
    /// past, waits for the next round: a timer set anew from its own
    /// callback cannot hold the loop.
    pub(super) fn fire_timers<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        let set_before = self.work.timers.last_serial();
        while let Some(timer) = self.work.timers.take_due(now, set_before) {
            driven.on_timer(timer, &mut self.work.context(now));
        }
        if self.work.is_pending() {
            self.settle_work(now, driven);
        }
    }

    /// Starts what the application asked of the client, delivers what it
    /// answered and sent, moves bodies, and tells it what happened, until
    /// nothing is left (or for 1000 rounds at most: an application that
    /// answers each callback with more work does not hold the loop).
    pub(crate) fn settle_work<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        // Bodies drained are told of once a call: the application's next
        // piece drains as soon as a fast reader takes it, and told again
        // within the call, one response would be fed round after round
        // while every other connection's events waited. What drains
        // meanwhile is told at the next call (after the next event, or the
        // next poll, which then does not wait).
        let mut drained_told = false;
        self.work.pipes.cut_bodies.clear();
        for _round in 0..1000 {
            let mut acted = false;
            if !self.work.pipes.fresh_up.is_empty() {
                self.check_fresh_pipes();
            }
            if !self.work.responses.is_empty() {
                acted = true;
                self.deliver_answers(now, driven);
                // With request body pieces to route, written after them: an
                // echoed or forwarded body's head leaves with its first
                // pieces (alone, the pieces' last small write would wait for
                // the peer's delayed ACK of the head: Nagle's algorithm).
                if self.work.inbound.is_empty() {
                    self.write_touched(now, driven);
                }
            }
            if !self.work.inbound.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.inbound,
                    |core, (responder, inbound)| {
                        bodies::route_inbound(core, responder, inbound, now, driven);
                    },
                );
                self.work.pipes.cut_bodies.clear();
                self.write_touched(now, driven);
            }
            if !self.work.abandoned.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.abandoned,
                    |core, responder| {
                        driven.on_abandoned(responder, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.cut_pipes.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.cut_pipes,
                    |core, (exchange, end)| {
                        let end = match end {
                            PipeEnd::Whole => Ok(()),
                            PipeEnd::Cut => Err(crate::ClientError::Abandoned),
                        };
                        driven.on_response_end(exchange, end, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.closed_ws.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.closed_ws,
                    |core, token| {
                        driven.on_ws_close(token, &mut core.work.context(now));
                    },
                );
            }
            if !self.work.pool.cancelled.is_empty() {
                self.close_cancelled(now);
                if !self.work.touched.is_empty() {
                    acted = true;
                    self.write_touched(now, driven);
                }
            }
            if self.work.pool.names.has_output() {
                acted = true;
                names::flush(self, now);
                self.work.pool.take_resolved(now);
            }
            if self.work.pool.has_queued() {
                self.start_exchanges(now);
            }
            if !self.work.pool.events.is_empty() {
                acted = true;
                self.route_exchange_events(now, driven);
                self.write_touched(now, driven);
            }
            if !self.work.paused.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.paused,
                    |core, (source, paused)| {
                        // Checked here, not when asked: a pipe asked for in
                        // the same callback is laid only after it.
                        if core.work.pipes.carries(source) {
                            return;
                        }
                        match paused {
                            true => bodies::pause(core, source, now),
                            false => bodies::release(core, source, now, driven),
                        }
                    },
                );
            }
            if !self.work.release.is_empty() {
                acted = true;
                self.work_through(
                    |w| &mut w.release,
                    |core, release| {
                        bodies::release(core, release, now, driven);
                    },
                );
            }
            if !self.work.drained.is_empty() && !drained_told {
                acted = true;
                drained_told = true;
                self.work_through(
                    |w| &mut w.drained,
                    |core, responder| {
                        // Not for a request the application was told is gone
                        // (its connection failed in the step that drained
                        // it), nor for a body it has ended since.
                        let takes = (core.handler_of(responder))
                            .is_some_and(|handler| handler.takes_body(responder.id));
                        if takes {
                            driven.on_body_drained(responder, &mut core.work.context(now));
                        }
                    },
                );
            }
            if !self.work.outbox.is_empty() {
                acted = true;
                ws_router::deliver(self, now, driven);
            }
            if !self.work.touched.is_empty() {
                acted = true;
                self.write_touched(now, driven);
            }
            if !acted {
                return;
            }
        }
    }

    /// A request piped into an exchange whose connection is gone (it closed
    /// earlier in the batch that laid the pipe) will send no body: the
    /// exchange's body breaks off, as if the client had left mid-body,
    /// rather than wait for pieces that never come.
    /// A body the application paused before it had the loop carry it is
    /// read again: the loop holds a body it carries by its own backlog, and
    /// a resume asked now would be ignored (see `settle_work`), so the body
    /// would wait for ever. (Nothing of it has moved yet: the pause is the
    /// application's, not the loop's.)
    fn check_fresh_pipes(&mut self) {
        self.work_through(
            |w| &mut w.pipes.fresh_up,
            |core, responder| {
                let paused = core
                    .handler_of(responder)
                    .map(|h| h.is_body_paused(responder.id));
                match paused {
                    None if core.work.pipes.up_into(&responder).is_some() => {
                        let broken = Err(crate::http::BodyError::Truncated);
                        core.work.inbound.push((responder, Inbound::End(broken)));
                    }
                    Some(true) => core.work.release.push(Source::Request(responder)),
                    _ => {}
                }
            },
        );
    }

    /// Routes what happened to the exchanges (as `work_through`, with a
    /// look at the next event: a body's piece with more of the same
    /// exchange next, its end or another piece, is written with them).
    fn route_exchange_events<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        let mut events = std::mem::take(&mut self.work.pool.events);
        let mut batch = events.drain(..).peekable();
        while let Some((exchange, event)) = batch.next() {
            // Cancelled by an earlier callback of this batch: none of its
            // events is reported, and it stays listed, so that its
            // connection closes next round.
            if self.work.pool.is_cancelled(exchange) {
                // A connection it switched has no one to join now.
                if self.work.switched.contains_key(&exchange) {
                    self.drop_switched(exchange, now);
                }
                continue;
            }
            let more_next = matches!(batch.peek(), Some((next, _)) if *next == exchange);
            bodies::route_exchange_event(self, exchange, event, more_next, now, driven);
        }
        drop(batch);
        if self.work.pool.events.is_empty() {
            self.work.pool.events = events;
        }
    }

    /// Delivers what the application answered so far.
    pub(crate) fn deliver_answers<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        while !self.work.responses.is_empty() {
            self.work_through(
                |w| &mut w.responses,
                |core, (responder, answer)| {
                    core.deliver_answer(responder, answer, now, driven);
                },
            );
        }
    }

    /// Steps the connections given something to send since the last call
    /// (see [`touch`](Self::touch)).
    fn write_touched<D: Driven>(&mut self, now: Instant, driven: &mut D) {
        while !self.work.touched.is_empty() {
            self.work_through(
                |w| &mut w.touched,
                |core, (index, serial)| {
                    if let Some(Some(conn)) = core.slots.get_mut(index) {
                        if conn.serial == serial {
                            // Unmarked first: the step may give it more to send.
                            conn.touched = false;
                            core.step_now(index, now, driven);
                        }
                    }
                },
            );
        }
    }

    /// Delivers a 101 whose connection is to be joined to its client's
    /// (`Answer::Tunnel`), or a 502 where it cannot be.
    #[cold]
    fn deliver_tunnel<D: Driven>(
        &mut self,
        responder: Responder,
        answer: Answer,
        now: Instant,
        driven: &mut D,
    ) {
        let Answer::Tunnel(_, exchange) = &answer else {
            return;
        };
        let exchange = *exchange;
        let waits = self.handler_of(responder).is_some();
        // Only a connection a 101 switched, still held for the join,
        // can be joined: without it, a 101 would promise a tunnel that
        // is not there.
        let joinable = self.work.switched.contains_key(&exchange);
        let draining = self.draining;
        let switching = match (self.handler_of(responder), answer) {
            // Shutting down, a new tunnel would only end at once (see
            // `drain`): its client is told so, as a WebSocket is.
            (Some(handler), Answer::Tunnel(..)) if draining => {
                let refused = Response::new(StatusCode::SERVICE_UNAVAILABLE)
                    .header("Content-Type", "text/plain")
                    .body(&b"shutting down\n"[..]);
                let _ = handler.respond(responder.id, refused, now);
                false
            }
            (Some(handler), Answer::Tunnel(head, _)) => {
                let switched = joinable && handler.respond_switch(responder.id, head, now).is_ok();
                if !switched {
                    // Its request made no offer the connection took (or
                    // the head was no 101): it cannot follow the
                    // upstream, which is closed.
                    let refused = Response::new(StatusCode::BAD_GATEWAY)
                        .header("Content-Type", "text/plain")
                        .body(
                            &b"the upstream switched protocols for a request that could not\n"[..],
                        );
                    let _ = handler.respond(responder.id, refused, now);
                }
                switched
            }
            _ => false,
        };
        if !switching {
            self.drop_switched(exchange, now);
        }
        // Not a slot since taken by another connection.
        if waits {
            self.step_now(responder.token.0, now, driven);
        }
    }

    /// Gives the connection of `responder` what the application answered:
    /// a response, a streamed one's head, piece or end, an interim one.
    fn deliver_answer<D: Driven>(
        &mut self,
        responder: Responder,
        answer: Answer,
        now: Instant,
        driven: &mut D,
    ) {
        if matches!(answer, Answer::Tunnel(..)) {
            return self.deliver_tunnel(responder, answer, now, driven);
        }
        if matches!(answer, Answer::Disconnect) {
            // What its connection was answered before it in this batch
            // leaves first (the others' wait for the batch's end, as ever).
            let index = responder.token.0;
            let touched = self.slots.get(index).and_then(Option::as_ref);
            if touched.is_some_and(|conn| conn.touched && conn.serial == responder.serial) {
                self.step_now(index, now, driven);
            }
            return self.disconnect(responder, now);
        }
        let backlog_limit = self.options.body_backlog;
        // Only a body that has gone nowhere yet can be piped whole: any
        // other would leave the client's response waiting for it.
        let mut answer = answer;
        if let Answer::Head(_, _, Some(exchange)) = &answer {
            if !self.work.pipes.take_pipeable(*exchange) {
                answer = Answer::Whole(misused(
                    "the response body was to come from a response that cannot give it\n",
                ));
            }
        }
        // The application's own pieces for a response whose body comes
        // through a pipe would be mixed into it.
        if matches!(answer, Answer::Piece(_) | Answer::End | Answer::Abort)
            && self.work.pipes.is_piped_down(&responder)
        {
            return;
        }
        let Some(handler) = self.handler_of(responder) else {
            if let Answer::Head(_, _, Some(exchange)) = answer {
                self.drop_pipe(exchange, PipeEnd::Cut);
            }
            return;
        };
        let id = responder.id;
        // A response that closes the connection, given before a request
        // body's end, gives that body up: told now (to the application, the
        // upstream it is piped to, or the response it is echoed into), not
        // at the close or the next sweep.
        let mut broken = None;
        let delivered = match answer {
            Answer::Whole(response) => {
                let given = handler.respond(id, response, now).is_ok();
                broken = handler.take_broken_body();
                given
            }
            Answer::Head(head, length, piped) => {
                // To HEAD, and with a status that has no body (204, 304),
                // the application's stream ends with its head: its pieces
                // would be dropped, and an endless one, asked for piece
                // after piece, would spin the loop for nothing (a 204's
                // never ended, and held the connection). (A piped one ends
                // at its first piece, and its exchange is cut: see
                // `bodies`. One with no body ends at its end, and its
                // connection goes back to the pool.)
                let ends_at_head =
                    piped.is_none() && (handler.answers_head(id) || head.status().forbids_body());
                let started = handler.respond_stream(id, head, length, now).is_ok();
                if started && ends_at_head {
                    let _ = handler.end_body(id, now);
                }
                broken = handler.take_broken_body();
                match (started, piped) {
                    (true, Some(exchange)) => {
                        self.work.pipes.pipe_down(exchange, responder);
                        // Paused by the application before the pipe (see
                        // `check_fresh_pipes`): read again.
                        if bodies::is_held(self, exchange) {
                            self.work.release.push(Source::Exchange(exchange));
                        }
                    }
                    (false, Some(exchange)) => self.drop_pipe(exchange, PipeEnd::Cut),
                    _ => {}
                }
                started
            }
            Answer::Piece(piece) => {
                // An empty piece is no piece: told of, an application that
                // answers each notice with one would spin the loop.
                let empty = piece.is_empty();
                let pushed = handler.send_body(id, piece, now);
                // Past the length its head announced, the response cannot
                // be the one meant: cut where it is (the connection closes
                // after what fits), not left waiting for an end whose
                // drained notice never comes.
                let past_length = matches!(pushed, Err(StreamError::Body(_)));
                if past_length {
                    let _ = handler.abort_body(id, now);
                    broken = handler.take_broken_body();
                }
                let sent = pushed.is_ok();
                // Over the limit, it is held, and told once the backlog
                // has fallen to a quarter of it; under, it is told at
                // once (at the next telling): either way each piece taken
                // is followed by an `on_body_drained`, so an app that sends
                // a piece and waits for it never stalls. Told once for
                // the pieces of one callback: the notice is at the end of
                // `drained` when they come in a row.
                if sent && handler.body_backlog(id) > backlog_limit {
                    let slot = responder.token.0;
                    (self.work.held).hold_at(slot, AtClient::Streamed(responder));
                } else if sent && !empty && self.work.drained.last() != Some(&responder) {
                    self.work.drained.push(responder);
                }
                sent || past_length
            }
            // Short of its length, it still ended (the connection closes
            // after what was sent): stepped, not left for the next sweep.
            Answer::End => {
                let ended = handler.end_body(id, now);
                broken = handler.take_broken_body();
                !matches!(ended, Err(StreamError::Gone))
            }
            // Cut where it is: the connection closes after what was sent.
            Answer::Abort => {
                let cut = handler.abort_body(id, now);
                broken = handler.take_broken_body();
                cut.is_ok()
            }
            Answer::Interim(head) => {
                // Written with what follows it in this batch, if anything:
                // a small write after it would wait for the client's
                // acknowledgement (Nagle's algorithm).
                handler.respond_interim(id, &head, now) == Ok(true)
            }
            Answer::Tunnel(..) | Answer::Disconnect => false,
        };
        if let Some((id, error)) = broken {
            let broken = Responder { id, ..responder };
            self.work.inbound.push((broken, Inbound::End(Err(error))));
        }
        // Written once the batch is delivered (`write_touched`), not now:
        // a piped head leaves with its body's first pieces, which usually
        // come in the same batch of the exchange's events; answers given
        // together to one connection leave in one write; and all of them
        // are given before a write finds the client gone (written one by
        // one, the first write's failure abandoned the rest, which the
        // application had answered).
        if delivered {
            self.touch(responder.token.0);
        }
    }

    /// Closes the connection of `responder`, now and with a reset (see
    /// `Context::disconnect`): the close tells what it gives up. Not for a
    /// request its connection is done with (answered whole, or its stream
    /// ended): the connection may serve others by then.
    #[cold]
    fn disconnect(&mut self, responder: Responder, now: Instant) {
        if (self.handler_of(responder)).is_some_and(|handler| handler.holds(responder.id)) {
            self.end(responder.token.0, now, true);
        }
    }

    /// A response to pipe whose client is gone (or no longer waits for it):
    /// the exchange stops, and the application hears of its end, as of any
    /// pipe cut short (an unbounded body was read to its end, and the end
    /// reported only then).
    pub(crate) fn drop_pipe(&mut self, exchange: ExchangeId, end: PipeEnd) {
        self.work.pool.cancel(exchange);
        self.work.cut_pipes.push((exchange, end));
    }
}

#[cfg(test)]
mod tests {
    use super::Work;
    use std::time::{Duration, Instant};

    /// Timers set from the callbacks of a round's firing, for a time past
    /// as for now, sort behind those the round still has to fire: each of
    /// these is found first, not past all those set meanwhile (20 000
    /// callbacks that each set one for a time past made one round of
    /// WasmEdge's interpreter take 90 s).
    #[test]
    fn timers_set_while_a_round_fires_wait_behind_its_own() {
        let now = Instant::now();
        let mut work = Work::default();
        let due: Vec<_> = (0..100)
            .map(|i| work.context(now).set_timer(now - Duration::from_millis(i)))
            .collect();
        let limit = work.timers.last_serial();
        let mut fired = Vec::new();
        while let Some(timer) = work.timers.take_due(now, limit) {
            fired.push(timer);
            let again = work.context(now).set_timer(now - Duration::from_secs(1));
            assert_eq!(again.at(), now, "a time past is taken as now");
            if fired.len() < due.len() {
                let first = work.timers.first_serial();
                assert!(first.is_some_and(|s| s <= limit), "{first:?} ahead");
            }
        }
        assert_eq!(fired.len(), due.len());
        assert!(fired.iter().all(|timer| due.contains(timer)));
        assert_eq!(
            work.timers
                .take_due(now, work.timers.last_serial())
                .map(|t| t.at()),
            Some(now)
        );
    }
}
