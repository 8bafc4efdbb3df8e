//! Delivers what a WebSocket application queued in its [`Outbox`]: each
//! frame is encoded once, however many connections it goes to.

use super::connection::Role;
use super::core::{step_ws, Core};
use super::driven::Driven;
use crate::ws::{self, WebSocket};
use crate::Token;
use bytes::Bytes;
use std::time::Instant;

/// Broadcast rounds, and messages sent to each of a list, of at least this
/// many bytes are shared between the queues, not copied into each.
const SHARE_FROM: usize = 4096;

/// Delivers the outbox until it stays empty (delivering may close
/// connections, and the application may queue more when told).
pub(crate) fn deliver<D: Driven>(core: &mut Core, now: Instant, driven: &mut D) {
    while !core.work.outbox.is_empty() {
        // Each round is written before the next: a queue counts only what
        // it held before a round against its limit (`queue_round`).
        core.ws_rounds += 1;
        let round = core.ws_rounds;
        let mut outbox = std::mem::take(&mut core.work.outbox);
        let mut touched = Vec::new();
        let mut everyone = false;
        outbox.drain(|action, frames, peers| match action {
            ws::Action::Send(to, _) => {
                if let Some(socket) = open_socket(core, to.0) {
                    socket.queue_round(frames, None, round, now);
                    touched.push(to.0);
                }
            }
            ws::Action::SendEach(..) => {
                let listed = peers.iter().map(|peer| peer.0);
                queue_to_each(core, frames, listed, round, now, |index| {
                    touched.push(index)
                });
            }
            ws::Action::Broadcast(_) => {
                everyone = true;
                queue_to_each(core, frames, 0..core.slots.len(), round, now, |_| {});
            }
            ws::Action::Close(to, code) => {
                if let Some(socket) = open_socket(core, to.0) {
                    socket.close(*code, "", now);
                    touched.push(to.0);
                }
            }
        });
        // Keep the outbox's memory for the next round, and what the
        // application queued meanwhile (nothing: it was not called).
        core.work.outbox = outbox;
        if everyone {
            // Every open WebSocket (those sent to or closed among them).
            touched.clear();
            touched.extend((0..core.slots.len()).filter(|&i| open_socket(core, i).is_some()));
        } else {
            touched.sort_unstable();
            touched.dedup();
        }
        for index in touched {
            let Core {
                slots,
                scratch,
                work,
                options,
                ..
            } = &mut *core;
            let Some(Some(conn)) = slots.get_mut(index) else {
                continue;
            };
            let wanted = step_ws(
                conn,
                Token(index),
                false,
                false,
                now,
                driven,
                work,
                scratch,
                options,
            );
            core.settle(index, wanted, now);
        }
    }
}

/// Queues `frames` (a broadcast's run, or a message to a list) to each
/// open WebSocket among `indices`, and names each to `queued`. A run of
/// `SHARE_FROM` bytes or more is held once, by every queue it goes to; a
/// small one is cheaper copied than counted.
fn queue_to_each(
    core: &mut Core,
    frames: &[u8],
    indices: impl Iterator<Item = usize>,
    round: u64,
    now: Instant,
    mut queued: impl FnMut(usize),
) {
    let shared = (frames.len() >= SHARE_FROM).then(|| Bytes::copy_from_slice(frames));
    for index in indices {
        if let Some(socket) = open_socket(core, index) {
            socket.queue_round(frames, shared.as_ref(), round, now);
            queued(index);
        }
    }
}

/// The WebSocket of a connection at `index` that is not lingering (it may
/// be closing, its close frame not yet out: see `WebSocket::queue_frame`).
fn open_socket(core: &mut Core, index: usize) -> Option<&mut WebSocket> {
    match core.slots.get_mut(index) {
        Some(Some(conn)) if conn.linger_until.is_none() => match &mut conn.role {
            Role::Ws(socket) => Some(socket),
            _ => None,
        },
        _ => None,
    }
}
