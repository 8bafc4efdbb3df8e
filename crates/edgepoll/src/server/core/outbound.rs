//! The loop's outbound side: exchanges put on pooled or new connections,
//! stepped, cancelled, and switched connections joined into tunnels.

use super::step::start_lingering;
use super::{Core, Next, Work};
use crate::client::{ClientError, ExchangeId, Placement};
use crate::net::{self};
use crate::server::connection::{Connection, Role, Upstream};
use crate::server::tunnel::{self, Tunnel};
use crate::server::{bodies, upstream};
use crate::tls::TlsSession;
use crate::Interest;
use std::io;
use std::time::Instant;

impl Core {
    /// Keeps the error a poll reported for an upstream still connecting,
    /// for its step to fail the connect with (see `Upstream::connect_error`).
    #[cold]
    pub(super) fn note_connect_error(&mut self, index: usize, errno: u16) {
        if let Some(Some(conn)) = self.slots.get_mut(index) {
            if let Role::Upstream(up) = &mut conn.role {
                if up.connecting {
                    up.connect_error = errno;
                }
            }
        }
    }

    /// Moves an outbound connection forward.
    pub(super) fn step_upstream(
        &mut self,
        index: usize,
        event: bool,
        readable: bool,
        now: Instant,
    ) -> Next {
        let Core {
            slots,
            scratch,
            work,
            options,
            poll,
            ..
        } = self;
        let Some(Some(conn)) = slots.get_mut(index) else {
            return Next::Close;
        };
        let round = self.round;
        let next = upstream::step(conn, index, event, readable, now, round, work, scratch);
        if let Role::Upstream(up) = &conn.role {
            // It waits on an answer no read-ahead looks for: the poll must
            // cover it. Even after an event: parked and chilled by an
            // earlier event of the same batch, it may carry a new request.
            if next != Next::Close && up.exchange.is_some() && !up.read_ahead {
                let _ = poll.warm(&conn.stream);
            }
        }
        bodies::after_step(conn, index, work, options.body_backlog);
        next
    }

    /// Moves bytes through a tunnel; settles the other side here.
    pub(super) fn step_tunnel(&mut self, index: usize, readable: bool, now: Instant) -> Next {
        let limit = self.options.body_backlog;
        let (next, peer) = tunnel::step(
            &mut self.slots,
            index,
            readable,
            now,
            &mut self.scratch,
            limit,
        );
        if let Some((peer, peer_next)) = peer {
            let peer_next = self.finish_alone(peer, peer_next, now);
            self.settle(peer, peer_next, now);
        }
        self.finish_alone(index, next, now)
    }

    /// A tunnel's side left alone (its peer broke, or a drain) that has
    /// written all it was owed closes as an HTTP connection does.
    fn finish_alone(&mut self, index: usize, next: Next, now: Instant) -> Next {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return next;
        };
        match &conn.role {
            Role::Tunnel(side) if next != Next::Close && side.is_finished_alone() => {
                start_lingering(conn, now, &self.options)
            }
            _ => next,
        }
    }

    /// Joins the client connection at `index`, whose 101 is queued, to the
    /// connection `exchange` switched.
    pub(super) fn open_tunnel(&mut self, index: usize, exchange: ExchangeId, now: Instant) -> Next {
        self.work.pipes.tunnels.remove(&exchange);
        let Some((up_index, up_serial)) = self.work.switched.remove(&exchange) else {
            return Next::Close;
        };
        let rest = match self.slots.get_mut(up_index) {
            Some(Some(Connection {
                serial,
                role: Role::Upstream(up),
                ..
            })) if *serial == up_serial => up.conn.take_switched().unwrap_or_default(),
            // The upstream went away first: so does its client.
            _ => return Next::Close,
        };
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return Next::Close;
        };
        let Role::Http(handler) = &mut conn.role else {
            return Next::Close;
        };
        // The 101 and what the upstream sent after it go to the client;
        // what the client sent after its request goes to the upstream.
        let (mut to_client, to_upstream) = handler.take_upgraded();
        to_client.extend_from_slice(&rest);
        let client_serial = conn.serial;
        // A 101 switched before a drain and sent during it (behind the
        // responses before it) opens a tunnel the drain ends at once, as
        // it ends those open when it began.
        let draining = self.draining;
        let side = |peer, serial, out| {
            let mut side = Tunnel::new(peer, serial, out, now);
            if draining {
                side.leave_alone(now);
            }
            Role::Tunnel(Box::new(side))
        };
        conn.role = side(up_index, up_serial, to_client);
        if let Some(Some(up)) = self.slots.get_mut(up_index) {
            up.role = side(index, client_serial, to_upstream);
        }
        if !self.work.held.is_empty() {
            let Work { held, release, .. } = &mut self.work;
            bodies::switched(held, release, index);
        }
        self.step_tunnel(index, true, now)
    }

    /// Gives up a switched connection no client will be joined to: closes it.
    pub(crate) fn drop_switched(&mut self, exchange: ExchangeId, now: Instant) {
        self.work.pipes.tunnels.remove(&exchange);
        if let Some((index, serial)) = self.work.switched.remove(&exchange) {
            if matches!(self.slots.get(index), Some(Some(conn)) if conn.serial == serial) {
                self.close(index, now);
            }
        }
    }

    /// Closes the connections of cancelled exchanges. A response piped
    /// from one to a client still there is cut short where it is: the
    /// rest will not come.
    pub(super) fn close_cancelled(&mut self, now: Instant) {
        self.work.pool.drop_cancelled_events();
        self.work_through(
            |w| &mut w.pool.cancelled,
            |core, id| {
                if let Some(responder) = core.work.pipes.down_into(id) {
                    if let Some(handler) = core.handler_of(responder) {
                        // Already ended, when it was cut for its client.
                        let _ = handler.abort_body(responder.id, now);
                        core.touch(responder.token.0);
                    }
                }
                bodies::forget_exchange(&mut core.work, id);
                if core.work.switched.contains_key(&id) {
                    core.drop_switched(id, now);
                    return;
                }
                let Some(index) = core.work.slot_of.remove(&id) else {
                    return;
                };
                if let Some(Some(Connection {
                    role: Role::Upstream(up),
                    ..
                })) = core.slots.get_mut(index)
                {
                    up.exchange = None;
                }
                core.close(index, now);
            },
        );
        // Events their connections queued meanwhile (a step for a piped
        // request body, say) go too: none is reported.
        self.work.pool.drop_cancelled_events();
        self.work.pool.forget_cancelled();
    }

    /// Puts queued exchanges on idle connections or new ones, as the pool
    /// allows.
    pub(super) fn start_exchanges(&mut self, now: Instant) {
        let max_body = self.work.pool.options.max_body_bytes;
        while let Some((exchange, placement)) = self.work.pool.next_placement(now) {
            match placement {
                Placement::Reuse(index) => {
                    // The pool names only idle upstream connections; were
                    // that ever wrong, the exchange fails, not vanishes.
                    let gone =
                        || ClientError::Io(io::Error::other("its pooled connection was gone"));
                    let Some(Some(conn)) = self.slots.get(index) else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    let Role::Upstream(up) = &conn.role else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    // Neither read empty in this round nor watched without
                    // an event by its poll (which leaves cold ones out):
                    // read now. Bytes or a close while idle end it, and the
                    // exchange, of which nothing was sent, goes on another
                    // connection. (Not for every request that may not go
                    // twice: a read per POST cost a forwarder 2% of its
                    // instructions, against a close that came with the last
                    // response's bytes in this same round.)
                    if up.dry_round != self.round && !self.poll.polled_quiet(&conn.stream) {
                        let next = self.step_upstream(index, true, true, now);
                        if next != Next::Idle {
                            self.settle(index, next, now);
                            self.work.pool.requeue(exchange);
                            continue;
                        }
                    }
                    let Some(Some(conn)) = self.slots.get_mut(index) else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    let Role::Upstream(up) = &mut conn.role else {
                        self.work.pool.fail(exchange.id, gone());
                        continue;
                    };
                    self.work.slot_of.insert(exchange.id, index);
                    upstream::start(up, exchange, now, max_body);
                    let next = self.step_upstream(index, false, false, now);
                    self.settle(index, next, now);
                }
                Placement::Connect { evict } => {
                    if let Some(idle) = evict {
                        // At the overall limit: an idle connection gives way.
                        self.close(idle, now);
                    }
                    let (origin, id) = (exchange.origin.clone(), exchange.id);
                    let tls = match &origin.tls {
                        None => None,
                        Some(name) => {
                            let session = self
                                .work
                                .pool
                                .tls_config()
                                .and_then(|config| TlsSession::new(config, name));
                            match session {
                                Ok(session) => Some(Box::new(session)),
                                Err(e) => {
                                    self.work.pool.closed(&origin, usize::MAX);
                                    self.work.pool.fail(id, ClientError::Tls(e));
                                    continue;
                                }
                            }
                        }
                    };
                    let stream = match net::connect(origin.addr) {
                        Ok(stream) => stream,
                        Err(e) => {
                            self.work.pool.closed(&origin, usize::MAX);
                            let mut exchange = exchange;
                            let timeout = self.work.pool.options.connect_timeout;
                            if exchange.next_address(now, now, timeout) {
                                self.work.pool.requeue(exchange);
                            } else {
                                self.work.pool.fail(id, ClientError::connecting(e));
                            }
                            continue;
                        }
                    };
                    let mut up = Box::new(Upstream {
                        conn: Default::default(),
                        origin: origin.clone(),
                        tls,
                        exchange: None,
                        connecting: true,
                        connect_error: 0,
                        last_progress: now,
                        got_bytes: false,
                        expired: false,
                        held: false,
                        read_ahead: false,
                        ahead_misses: 0,
                        ahead_skipped: 0,
                        dry_round: 0,
                    });
                    upstream::start(&mut up, exchange, now, max_body);
                    if up.expired {
                        // Its early body pieces did not fit its length: the
                        // client's body is at fault, told before a connect
                        // that may time out passes for the upstream's.
                        self.work.pool.closed(&origin, usize::MAX);
                        self.work.pool.fail(id, ClientError::Abandoned);
                        continue;
                    }
                    let role = Role::Upstream(up);
                    match self.add(stream, origin.addr, Interest::WRITABLE, role) {
                        Ok(index) => {
                            self.work.slot_of.insert(id, index);
                        }
                        Err(e) => {
                            self.work.pool.closed(&origin, usize::MAX);
                            self.work.pool.fail(id, ClientError::Connect(e));
                        }
                    }
                }
            }
        }
    }
}
