//! Which connection an outbound request goes on: per-origin pools of
//! keep-alive connections, a limit per origin and one over all origins, and
//! a queue for requests that find every connection busy. At the overall
//! limit, origins with room of their own wait in line, and a connection
//! that goes idle or closes is granted to the first, which closes the idle
//! connection used least recently (whatever its origin, as nginx's upstream
//! keep-alive cache evicts) for one of its own (see `Pool::gives_way` for
//! when a busy origin's connection goes to it). Bookkeeping only: the event
//! loop opens, drives and closes the connections and tells the pool.

use super::queue::{Eligible, Queue};
use super::{ClientError, ClientOptions, ClientRequest, ExchangeId, RequestError};
use crate::dns::{resolver, Lookup, Resolved, Resolver};
use crate::held_pieces::HeldPieces;
use crate::http::{Outgoing, ParsedResponse, Version};
use crate::tls::TlsError;
use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Addresses of a host tried after the first, at most.
const MAX_OTHER_ADDRS: usize = 3;

/// How long an address whose connect failed (refused, unreachable, timed
/// out) goes after its host's other addresses, as nginx's `fail_timeout`
/// keeps a failed server out: without it, every exchange to a host whose
/// first address drops packets waited out the connect timeout there before
/// it tried the next.
const UNREACHABLE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// How many such addresses a pool remembers; past it, no more until some
/// expire.
const MAX_UNREACHABLE: usize = 256;

/// At the overall connection limit, how long an origin holding fewer
/// connections than another waits before that one gives way to it (see
/// `Pool::gives_way`).
const GIVE_WAY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a connection goes, and so which connections an exchange may
/// share: the address, and for TLS the name the server's certificate must
/// bear (an `https://` exchange never takes a plain connection, nor one
/// opened for another name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<Arc<str>>,
}

impl Origin {
    #[cfg(test)]
    pub(crate) fn plain(addr: SocketAddr) -> Origin {
        Origin { addr, tls: None }
    }
}

/// How many origins known to speak HTTP/1.0 a pool remembers.
const MAX_HTTP10_ORIGINS: usize = 1024;

/// One request on its way: from [`Pool::submit`] to its result. Boxed: it
/// moves from the queue to a connection and in and out of that connection's
/// step, and at 128 bytes each move of it unboxed was a `memory.copy` in a
/// wasm32 build (a call into the runtime under WasmEdge's AOT code).
pub(crate) type Exchange = Box<ExchangeState>;

/// What an [`Exchange`] holds.
#[derive(Debug)]
pub(crate) struct ExchangeState {
    pub(crate) id: ExchangeId,
    /// Where it goes; the address is its host's, once known.
    pub(crate) origin: Origin,
    /// The encoded request.
    pub(crate) request: Vec<u8>,
    pub(crate) to_head: bool,
    pub(crate) idempotent: bool,
    /// Sent once already on a reused connection that closed before any
    /// response byte, or answered 408 before any: this time it goes on a
    /// new connection, and not again.
    pub(crate) retried: bool,
    /// When it last made progress (queued, connected, sent, received).
    pub(crate) since: Instant,
    /// The response is handed over as its head, then its body's pieces.
    pub(crate) streams: bool,
    /// The request body is streamed after the head, framed so.
    pub(crate) body_out: Option<Outgoing>,
    /// Pieces of a streamed request body that came before the exchange had
    /// a connection, and whether its end did.
    pub(crate) early: HeldPieces,
    pub(crate) early_end: bool,
    /// A streamed response's head was handed over: a failure now is its
    /// body's.
    pub(crate) answered: bool,
    /// The request offers to switch protocols: a 101 ends the exchange and
    /// takes the connection out of the pool.
    pub(crate) upgrade: bool,
    /// The host's other addresses, tried in turn when a connection to
    /// this one fails before a byte of the request went (refused,
    /// unreachable, no connection in time), as curl does.
    pub(crate) other_addrs: Vec<IpAddr>,
    /// While its host's addresses are tried in turn: what the attempts
    /// before left of the connect timeout (see
    /// [`attempt_by`](Self::attempt_by)); a wait in the queue between two
    /// attempts is not counted, which the response timeout bounds.
    pub(crate) connect_left: Option<Duration>,
}

impl ExchangeState {
    /// Whether it could be sent again if a reused connection turned out
    /// closed: idempotent, not sent twice already, its body whole.
    pub(crate) fn may_go_again(&self) -> bool {
        self.idempotent && !self.retried && self.body_out.is_none()
    }

    /// Whether a failed connect moves it to another address: its host has
    /// one, and the request can be sent again as it is (its body whole,
    /// not streamed).
    fn has_next_address(&self) -> bool {
        !self.other_addrs.is_empty() && self.body_out.is_none() && !self.request.is_empty()
    }

    /// Moves to the host's next address, if [it may](Self::has_next_address),
    /// from a connect begun at `started` that failed at `now`; `timeout`:
    /// the client's connect timeout, which the attempts share.
    pub(crate) fn next_address(
        &mut self,
        started: Instant,
        now: Instant,
        timeout: Duration,
    ) -> bool {
        if !self.has_next_address() {
            return false;
        }
        let spent = now.saturating_duration_since(started);
        let left = self.connect_left.unwrap_or(timeout).saturating_sub(spent);
        self.connect_left = Some(left);
        let ip = self.other_addrs.remove(0);
        self.origin.addr.set_ip(ip);
        true
    }

    /// When a connect begun at `started` has waited too long: the connect
    /// timeout is the host's, and an attempt with other addresses behind
    /// it gets half of what the attempts before left, the last all of it,
    /// as curl shares it. Each its own whole timeout, a first address that
    /// drops what is sent to it (a dead host, a broken IPv6 route) took all
    /// of a caller's time before the next was tried.
    pub(crate) fn attempt_by(&self, started: Instant, timeout: Duration) -> Instant {
        let left = self.connect_left.unwrap_or(timeout);
        match self.has_next_address() {
            true => started + left / 2,
            false => started + left,
        }
    }
}

/// What happened to an exchange, in order: its response (whole, or the head
/// of a streamed one), then for a streamed one its body's pieces and end.
#[derive(Debug)]
pub(crate) enum ExchangeEvent {
    Interim(ParsedResponse),
    Response(Result<ParsedResponse, ClientError>),
    Body(Bytes),
    End(Result<(), ClientError>),
}

/// Where an exchange goes now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On this idle connection (the loop's slot index).
    Reuse(usize),
    /// On a new connection (counted against the limits already), once the
    /// loop has closed the idle connection `evict` names, if any: the
    /// overall limit was reached.
    Connect { evict: Option<usize> },
}

/// The outbound side's bookkeeping.
#[derive(Default)]
pub(crate) struct Pool {
    pub(crate) options: ClientOptions,
    /// Exchanges waiting for a connection.
    queue: Queue,
    /// Host names to addresses; its sockets are the loop's.
    pub(crate) names: Resolver,
    /// Exchanges waiting for their host's addresses, with the name.
    resolving: FxHashMap<ExchangeId, (Box<str>, Exchange)>,
    /// The TLS configuration, made for the first `https://` exchange.
    tls_config: Option<Result<Arc<crate::tls::ClientConfig>, TlsError>>,
    /// A name whose lookup's outcome is wanted as it is (by `resolve`).
    pub(crate) watched: Option<(Box<str>, Option<Resolved>)>,
    /// Idle connections per origin, the most recently used last, each with
    /// its place in the order all were parked in (`parked`).
    idle: FxHashMap<Origin, Vec<(usize, u64)>>,
    idle_total: usize,
    parked: u64,
    /// Open connections per origin (connecting, busy or idle), and in all.
    open: FxHashMap<Origin, usize>,
    open_total: usize,
    /// Origins with room of their own whose exchanges wait for the overall
    /// limit, each once, in the order they began to, and since when: the
    /// first is looked at again when a connection closes or parks.
    starved: VecDeque<(Origin, Instant)>,
    starved_set: FxHashSet<Origin>,
    /// The starved origin last given the room a connection left: the only
    /// one that may close another origin's idle connection for its own.
    granted: Option<Origin>,
    next_id: u64,
    /// What happened to exchanges since the service was last told.
    pub(crate) events: Vec<(ExchangeId, ExchangeEvent)>,
    /// Exchanges cancelled: the loop forgets their pipes, drops their
    /// events not yet reported, and closes the connection of one that was
    /// on one.
    pub(crate) cancelled: Vec<ExchangeId>,
    /// The same, to look an exchange up in: an event of one cancelled by a
    /// callback of the batch being reported is not reported.
    cancelled_set: FxHashSet<ExchangeId>,
    /// No waiting exchange began before this (a lower bound: it may have
    /// left since), so the expiry scan is skipped until its timeout.
    earliest_since: Option<Instant>,
    /// Origins whose last response came in HTTP/1.0: no chunked request
    /// body goes to them (see [`RequestError::LengthRequired`]). Others
    /// are taken to speak HTTP/1.1 until they answer otherwise, as a
    /// forwarder configured for HTTP/1.1 upstreams takes them (nginx's
    /// `proxy_http_version 1.1`).
    http10: FxHashSet<Origin>,
    /// Addresses whose connect failed lately, and until when they go last
    /// among their host's (see [`UNREACHABLE_FOR`]).
    unreachable: FxHashMap<SocketAddr, Instant>,
    /// When the last of them expires: then all go at once, and the map is
    /// empty again (looked at no more).
    unreachable_until: Option<Instant>,
}

impl Pool {
    pub(crate) fn new(options: ClientOptions) -> Pool {
        use crate::timer::bounded;
        let options = ClientOptions {
            connect_timeout: bounded(options.connect_timeout),
            response_timeout: bounded(options.response_timeout),
            idle_timeout: bounded(options.idle_timeout),
            dns_timeout: bounded(options.dns_timeout),
            ..options
        };
        Pool {
            names: Resolver::new(options.dns_server, options.dns_timeout),
            options,
            ..Pool::default()
        }
    }

    /// Queues a request; refuses one that cannot be sent as it is, and one
    /// with a streamed body ([`ClientRequest::streamed_body`]), whose
    /// pieces would have no source: it would announce a body that never
    /// comes, and wait out its timeout. A host that does not resolve ends
    /// the exchange at once, reported with the others.
    pub(crate) fn submit(
        &mut self,
        request: &ClientRequest,
        now: Instant,
        streams: bool,
    ) -> Result<ExchangeId, RequestError> {
        if request.body_framing().is_some() {
            return Err(RequestError::BodyFrom);
        }
        self.submit_piped(request, now, streams)
    }

    /// [`submit`](Self::submit) for a request whose streamed body the loop
    /// pipes from a waiting request's.
    pub(crate) fn submit_piped(
        &mut self,
        request: &ClientRequest,
        now: Instant,
        streams: bool,
    ) -> Result<ExchangeId, RequestError> {
        let encoded = request.encode()?;
        let id = ExchangeId(self.next_id);
        self.next_id += 1;
        let url = request.url();
        let exchange = Box::new(ExchangeState {
            id,
            origin: Origin {
                addr: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), url.port),
                // Names are case-insensitive (RFC 4343): `API.test` and
                // `api.test` share connections, and present one SNI.
                tls: url.tls.then(|| Arc::from(url.host.to_ascii_lowercase())),
            },
            request: encoded,
            // Methods are case-sensitive (RFC 9110 §9.1): `head` is some other
            // method, whose answer has a body to read.
            to_head: request.method_bytes() == b"HEAD",
            idempotent: request.is_idempotent(),
            retried: false,
            since: now,
            streams,
            body_out: request.body_framing(),
            early: HeldPieces::default(),
            early_end: false,
            answered: false,
            upgrade: request.offers_upgrade(),
            other_addrs: Vec::new(),
            connect_left: None,
        });
        self.place(&url.host, exchange, now);
        Ok(id)
    }

    /// Queues `exchange` for the first address of `host`, fails it, or
    /// leaves it waiting for the name.
    fn place(&mut self, host: &str, exchange: Exchange, now: Instant) {
        if let Some(ip) = self.names.literal(host) {
            return self.settle_addrs(exchange, &[ip], now);
        }
        match self.names.lookup(host, now) {
            Lookup::Ready(resolved) => self.settle_name(host, exchange, resolved, now),
            Lookup::Pending => {
                self.note_waiting(exchange.since);
                let key = resolver::key_of(host);
                self.resolving.insert(exchange.id, (key, exchange));
            }
        }
    }

    fn settle_name(&mut self, host: &str, exchange: Exchange, resolved: Resolved, now: Instant) {
        match resolved {
            Ok(addrs) => self.settle_addrs(exchange, &addrs, now),
            Err(error) => {
                let host = host.to_string();
                self.fail(exchange.id, ClientError::Resolve { host, error });
            }
        }
    }

    /// Queues `exchange` for the first of its host's `addrs` (the
    /// resolver's order, but those whose connect failed lately last), with
    /// the next ones to try if it fails.
    fn settle_addrs(&mut self, mut exchange: Exchange, addrs: &[IpAddr], now: Instant) {
        if self.unreachable_until.is_some_and(|until| now >= until) {
            self.unreachable.clear();
            self.unreachable_until = None;
        }
        let port = exchange.origin.addr.port();
        let failed = |ip: &&IpAddr| {
            !self.unreachable.is_empty()
                && (self.unreachable.get(&SocketAddr::new(**ip, port))).is_some_and(|t| now < *t)
        };
        let mut ordered = (addrs.iter().filter(|ip| !failed(ip)))
            .chain(addrs.iter().filter(failed))
            .copied();
        // The resolver answers no empty list; a literal is one address.
        if let Some(first) = ordered.next() {
            exchange.origin.addr.set_ip(first);
        }
        exchange.other_addrs = ordered.take(MAX_OTHER_ADDRS).collect();
        let chunked = matches!(exchange.body_out, Some(Outgoing::Chunked));
        if chunked && !self.http10.is_empty() && self.http10.contains(&exchange.origin) {
            let refused = ClientError::Request(RequestError::LengthRequired);
            return self.fail(exchange.id, refused);
        }
        self.enqueue(exchange, false);
    }

    /// `addr`'s connect failed at `now`: for a while its host's other
    /// addresses go first (see [`UNREACHABLE_FOR`]).
    pub(crate) fn note_unreachable(&mut self, addr: SocketAddr, now: Instant) {
        if self.unreachable.len() >= MAX_UNREACHABLE && !self.unreachable.contains_key(&addr) {
            self.unreachable.retain(|_, until| now < *until);
            if self.unreachable.len() >= MAX_UNREACHABLE {
                return;
            }
        }
        self.unreachable.insert(addr, now + UNREACHABLE_FOR);
        self.unreachable_until = Some(now + UNREACHABLE_FOR);
    }

    /// `addr` took a connection: it goes in its host's order again.
    pub(crate) fn note_reachable(&mut self, addr: SocketAddr) {
        if !self.unreachable.is_empty() {
            self.unreachable.remove(&addr);
        }
    }

    /// The version `origin`'s latest response came in (see `http10`).
    #[inline]
    pub(crate) fn note_version(&mut self, origin: &Origin, version: Version) {
        match version {
            // Bounded: a client of many HTTP/1.0 servers forgets them all
            // at once, and learns again from their next answers.
            Version::Http10 if self.http10.len() >= MAX_HTTP10_ORIGINS => {
                self.http10.clear();
                self.http10.insert(origin.clone());
                self.refuse_chunked_to(origin);
            }
            Version::Http10 if self.http10.insert(origin.clone()) => self.refuse_chunked_to(origin),
            Version::Http10 => {}
            _ if !self.http10.is_empty() => drop(self.http10.remove(origin)),
            _ => {}
        }
    }

    /// Ends the exchanges queued for `origin`, just found to speak
    /// HTTP/1.0, whose bodies would go chunked: checked when they were
    /// queued, they would otherwise go as they are to the next connection
    /// it frees.
    #[cold]
    fn refuse_chunked_to(&mut self, origin: &Origin) {
        let chunked =
            |ex: &Exchange| ex.origin == *origin && matches!(ex.body_out, Some(Outgoing::Chunked));
        for exchange in self.queue.remove_where(chunked) {
            let refused = ClientError::Request(RequestError::LengthRequired);
            self.fail(exchange.id, refused);
        }
    }

    /// The TLS configuration for `https://` connections.
    pub(crate) fn tls_config(&mut self) -> Result<Arc<crate::tls::ClientConfig>, TlsError> {
        let ca = self.options.ca_certificates.as_deref();
        self.tls_config
            .get_or_insert_with(|| crate::tls::client_config(ca))
            .clone()
    }

    /// Moves the exchanges whose names the resolver has answered on: to
    /// the queue, or to their failure.
    pub(crate) fn take_resolved(&mut self, now: Instant) {
        for (key, resolved) in std::mem::take(&mut self.names.finished) {
            if let Some((watched, outcome)) = &mut self.watched {
                if *watched == key {
                    *outcome = Some(resolved.clone());
                }
            }
            // One pass: a name many exchanges wait on is answered for all
            // of them in n steps, not n²; they queue in the order they came.
            let mut answered: Vec<_> = self
                .resolving
                .extract_if(|_, (host, _)| *host == key)
                .collect();
            answered.sort_unstable_by_key(|(id, _)| *id);
            for (_, (host, exchange)) in answered {
                self.settle_name(&host, exchange, resolved.clone(), now);
            }
        }
    }

    /// Gives up an exchange: a queued one is dropped, a finished one not
    /// reported, one on a connection left for the loop to close. Listed in
    /// `cancelled` either way: the loop also forgets its pipes (a request
    /// body held back for a queued exchange would wait for ever) and drops
    /// its events not yet reported, for all the exchanges cancelled
    /// together at once ([`Pool::drop_cancelled_events`]): one look
    /// through the events per cancel cost a sweep that timed out N
    /// exchanges N times N.
    pub(crate) fn cancel(&mut self, id: ExchangeId) {
        self.withdraw(id);
        if self.cancelled_set.insert(id) {
            self.cancelled.push(id);
        }
    }

    /// Whether `id` is listed in `cancelled`.
    #[inline]
    pub(crate) fn is_cancelled(&self, id: ExchangeId) -> bool {
        !self.cancelled_set.is_empty() && self.cancelled_set.contains(&id)
    }

    /// Drops the events not yet reported of the exchanges in `cancelled`.
    pub(crate) fn drop_cancelled_events(&mut self) {
        if !self.events.is_empty() && !self.cancelled_set.is_empty() {
            let cancelled = &self.cancelled_set;
            self.events.retain(|(id, _)| !cancelled.contains(id));
        }
    }

    /// Forgets the cancelled exchanges the loop has taken from
    /// `cancelled`, keeping those listed since.
    pub(crate) fn forget_cancelled(&mut self) {
        self.cancelled_set.clear();
        self.cancelled_set.extend(self.cancelled.iter().copied());
    }

    /// Takes an exchange out of the queue, or out of the wait for its
    /// host's addresses; whether it was there.
    pub(crate) fn withdraw(&mut self, id: ExchangeId) -> bool {
        self.queue.remove(id).is_some() || self.resolving.remove(&id).is_some()
    }

    /// Reports that exchange `id` failed before it had a response.
    pub(crate) fn fail(&mut self, id: ExchangeId, error: ClientError) {
        self.events.push((id, ExchangeEvent::Response(Err(error))));
    }

    /// A queued exchange, or one waiting for its host's addresses, to add
    /// body pieces to it before it has a connection.
    pub(crate) fn queued_mut(&mut self, id: ExchangeId) -> Option<&mut Exchange> {
        match self.queue.get_mut(id) {
            Some(exchange) => Some(exchange),
            None => self.resolving.get_mut(&id).map(|(_, exchange)| exchange),
        }
    }

    /// Puts an exchange back at the front (a retry).
    pub(crate) fn requeue(&mut self, exchange: Exchange) {
        self.enqueue(exchange, true);
    }

    fn enqueue(&mut self, exchange: Exchange, front: bool) {
        self.note_waiting(exchange.since);
        self.queue.push(exchange, front);
    }

    fn note_waiting(&mut self, since: Instant) {
        self.earliest_since = Some(self.earliest_since.map_or(since, |e| e.min(since)));
    }

    /// The first queued exchange that can go now, and where.
    pub(crate) fn next_placement(&mut self, now: Instant) -> Option<(Exchange, Placement)> {
        if let Some(found) = self.try_placement(now) {
            return Some(found);
        }
        // At the overall limit with an idle connection that no request of
        // its own origin waits for: none may park or close to make room for
        // a starved origin, so room is granted now.
        match self.grant_unwanted_idle() {
            true => self.try_placement(now),
            false => None,
        }
    }

    fn try_placement(&mut self, now: Instant) -> Option<(Exchange, Placement)> {
        let max = self.options.max_per_origin.max(1);
        // Room for one more: under the limit; at it, an idle connection to
        // close, for the origin granted it, or one of the origin's own (a
        // retry must have a new connection).
        let under = self.open_total < self.options.max_connections.max(1);
        // Granted, but what it was granted went to its own origin meanwhile:
        // nothing to close, and a new one would pass the limit.
        let granted = self.granted.as_ref().filter(|_| self.idle_total > 0);
        let open = &self.open;
        let idle = &self.idle;
        let (starved, starved_set) = (&mut self.starved, &mut self.starved_set);
        let exchange = self.queue.next(|origin| {
            let own_room = open.get(origin).copied().unwrap_or(0) < max;
            // Looked up only at the limit, or at the origin's own limit.
            let own_idle = || idle.get(origin).is_some_and(|v| !v.is_empty());
            let room = under || granted == Some(origin) || own_idle();
            match own_room && room {
                true => Some(Eligible::First),
                false if own_idle() => Some(Eligible::FirstFresh),
                false => {
                    if own_room && starved_set.insert(origin.clone()) {
                        starved.push_back((origin.clone(), now));
                    }
                    None
                }
            }
        })?;
        let reuse = match exchange.retried {
            true => None,
            false => self.take_idle(&exchange.origin),
        };
        let placement = match reuse {
            Some(slot) => Placement::Reuse(slot),
            None => {
                // A grant is spent by the connection it opens, whether in
                // room a close left or by closing another origin's idle one:
                // left standing, it would hold off the next grant
                // (`grant_unwanted_idle`).
                let granted = self.granted.as_ref() == Some(&exchange.origin);
                if granted {
                    self.granted = None;
                }
                let evict = match self.open_total >= self.options.max_connections.max(1) {
                    true if granted => self.take_least_recent_idle(),
                    // A retry at the limit: one of its origin's own.
                    true => self.take_idle(&exchange.origin),
                    false => None,
                };
                *self.open.entry(exchange.origin.clone()).or_insert(0) += 1;
                self.open_total += 1;
                Placement::Connect { evict }
            }
        };
        Some((exchange, placement))
    }

    /// `origin`'s idle connection used last.
    fn take_idle(&mut self, origin: &Origin) -> Option<usize> {
        let (slot, _) = self.idle.get_mut(origin)?.pop()?;
        self.idle_total -= 1;
        Some(slot)
    }

    /// The idle connection, of any origin, parked longest ago. A scan of the
    /// origins with idle connections, at most the overall limit of them, and
    /// only when that limit is reached.
    fn take_least_recent_idle(&mut self) -> Option<usize> {
        let origin = (self.idle.iter())
            .filter_map(|(origin, idle)| Some((idle.first()?.1, origin)))
            .min_by_key(|(order, _)| *order)?
            .1
            .clone();
        let idle = self.idle.get_mut(&origin)?;
        let (slot, _) = idle.remove(0);
        if idle.is_empty() {
            self.idle.remove(&origin);
        }
        self.idle_total -= 1;
        Some(slot)
    }

    /// Where in `starved` the origin waiting longest for the overall limit
    /// is, other than `freed` (whose connection just parked or closed,
    /// and which keeps its place), that could take a new connection (one
    /// of its exchanges waits, and it is under its own limit), and since
    /// when it waits. Those found unable are dropped: they are listed
    /// again if they come to wait again.
    fn first_starved(&mut self, freed: Option<&Origin>) -> Option<(usize, Instant)> {
        let max = self.options.max_per_origin.max(1);
        let mut at = 0;
        while let Some((origin, since)) = self.starved.get(at) {
            if Some(origin) == freed {
                at += 1;
                continue;
            }
            let since = *since;
            let under = self.open.get(origin).copied().unwrap_or(0) < max;
            if under && self.queue.first_since(&self.starved[at].0).is_some() {
                return Some((at, since));
            }
            if let Some((gone, _)) = self.starved.remove(at) {
                self.starved_set.remove(&gone);
            }
        }
        None
    }

    /// Room for one more connection (`freed`'s parked or closed): granted
    /// to the origin waiting longest for the overall limit, whose line is
    /// looked at first. One origin, not all: one connection serves one,
    /// and every starved origin looked at on every completion was
    /// quadratic with thousands of them. Whether one was granted.
    fn stir_starved(&mut self, freed: Option<&Origin>) -> bool {
        let Some((at, _)) = self.first_starved(freed) else {
            return false;
        };
        let Some((origin, _)) = self.starved.remove(at) else {
            return false;
        };
        self.starved_set.remove(&origin);
        self.queue.stir(&origin);
        self.granted = Some(origin);
        true
    }

    /// Grants room to a starved origin when an idle connection is there to
    /// close that no request of its own origin waits for, and no grant
    /// that is still wanted holds it. Whether one was granted.
    fn grant_unwanted_idle(&mut self) -> bool {
        if self.idle_total == 0 || self.starved.is_empty() {
            return false;
        }
        let queue = &mut self.queue;
        let mut wanted = |origin: &Origin| queue.first_since(origin).is_some();
        if self.granted.as_ref().is_some_and(&mut wanted) {
            return false;
        }
        // At most the overall limit of origins, and only while one starves
        // beside an idle connection. (An origin's list stays when its last
        // idle connection is taken, for the next to park in: empty, it
        // holds none to give.)
        let unwanted = (self.idle.iter()).any(|(origin, idle)| !idle.is_empty() && !wanted(origin));
        unwanted && self.stir_starved(None)
    }

    /// Whether a connection of `origin` that frees up at the overall limit,
    /// with an exchange of its own waiting, goes back to the pool for the
    /// origin waiting longest instead: when that one holds two fewer
    /// connections (the move evens them out), or fewer and has waited
    /// [`GIVE_WAY_AFTER`] since it began to wait for the limit (a share of
    /// none, with more busy origins than connections, rotates, at most once
    /// per that time each, instead of starving). Origins at the limit so converge on equal shares, and
    /// two that hold as many keep their connections: no handshake churn.
    fn gives_way(&mut self, origin: &Origin, now: Instant) -> bool {
        if self.starved.is_empty() || self.open_total < self.options.max_connections.max(1) {
            return false;
        }
        let Some((at, since)) = self.first_starved(Some(origin)) else {
            return false;
        };
        let held = |o: &Origin| self.open.get(o).copied().unwrap_or(0);
        let (theirs, ours) = (held(&self.starved[at].0), held(origin));
        theirs + 1 < ours
            || (theirs < ours && now.saturating_duration_since(since) >= GIVE_WAY_AFTER)
    }

    /// A queued exchange for `origin` that may go on a connection just
    /// freed, unless it gives way (see [`gives_way`](Self::gives_way)).
    pub(crate) fn take_for(&mut self, origin: &Origin, now: Instant) -> Option<Exchange> {
        if self.gives_way(origin, now) {
            return None;
        }
        self.queue.take_first(origin, Eligible::FirstFresh)
    }

    /// The connection at `slot` is idle and reusable. It may go to the
    /// origin waiting longest for the overall limit (closing it for one of
    /// its own) when its own origin has nothing waiting, or gives way.
    pub(crate) fn park(&mut self, origin: &Origin, slot: usize, now: Instant) {
        let starved = !self.starved.is_empty();
        if starved && (self.queue.first_since(origin).is_none() || self.gives_way(origin, now)) {
            self.stir_starved(Some(origin));
        }
        self.queue.stir(origin);
        self.parked += 1;
        let order = self.parked;
        self.idle
            .entry(origin.clone())
            .or_default()
            .push((slot, order));
        self.idle_total += 1;
    }

    /// The connection at `slot` is closed (or never opened).
    pub(crate) fn closed(&mut self, origin: &Origin, slot: usize) {
        // Room once it is counted out, unless a new connection took its
        // place already (an eviction's close).
        if self.open_total <= self.options.max_connections.max(1) || self.idle_total > 0 {
            self.stir_starved(Some(origin));
        }
        self.queue.stir(origin);
        if let Some(idle) = self.idle.get_mut(origin) {
            let before = idle.len();
            idle.retain(|&(s, _)| s != slot);
            self.idle_total -= before - idle.len();
            if idle.is_empty() {
                self.idle.remove(origin);
            }
        }
        if let Some(open) = self.open.get_mut(origin) {
            *open -= 1;
            self.open_total -= 1;
            if *open == 0 {
                self.open.remove(origin);
            }
        }
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Ends queued exchanges that waited past the response timeout; returns
    /// the earliest deadline of the rest.
    pub(crate) fn expire_queued(&mut self, now: Instant) -> Option<Instant> {
        let timeout = self.options.response_timeout;
        if self.queue.is_empty() && self.resolving.is_empty() {
            self.earliest_since = None;
        }
        match self.earliest_since.map(|since| since + timeout) {
            None => return None,
            Some(deadline) if now < deadline => return Some(deadline),
            Some(_) => {}
        }
        let expired = |ex: &Exchange| now >= ex.since + timeout;
        let mut gone: Vec<ExchangeId> = (self.queue.remove_where(expired).iter())
            .map(|ex| ex.id)
            .collect();
        let resolving = (self.resolving)
            .extract_if(|_, (_, ex)| expired(ex))
            .map(|(id, _)| id);
        gone.extend(resolving);
        gone.sort_unstable();
        for id in gone {
            let error = ClientError::Queued(timeout);
            self.events.push((id, ExchangeEvent::Response(Err(error))));
        }
        let waiting = (self.queue.exchanges()).chain(self.resolving.values().map(|(_, ex)| ex));
        self.earliest_since = waiting.map(|ex| ex.since).min();
        self.earliest_since.map(|since| since + timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(url: &str) -> ClientRequest {
        ClientRequest::new("GET", url).unwrap()
    }

    /// A pool of at most `per_origin` connections to an origin, `total` in all.
    fn pool_of(per_origin: usize, total: usize) -> Pool {
        Pool::new(ClientOptions {
            max_per_origin: per_origin,
            max_connections: total,
            ..Default::default()
        })
    }

    /// A GET to 127.0.0.1:`port`, submitted at `now`.
    fn submit(pool: &mut Pool, port: u16, now: Instant) -> crate::ExchangeId {
        let url = format!("http://127.0.0.1:{port}/");
        pool.submit(&request(&url), now, false).unwrap()
    }

    /// A streamed body with nothing to stream it from is refused before
    /// anything is queued: it would announce a body that never comes. (It
    /// waited out its response timeout, and `body()` after
    /// `streamed_body()` sent its bytes unframed, a request behind it.)
    #[test]
    fn a_streamed_body_without_a_source_is_refused_and_body_replaces_it() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions::default());
        let streamed = ClientRequest::new("POST", "http://127.0.0.1:1/")
            .unwrap()
            .streamed_body(None);
        assert_eq!(
            pool.submit(&streamed, now, false),
            Err(RequestError::BodyFrom)
        );
        assert_eq!(
            pool.submit(&streamed, now, true),
            Err(RequestError::BodyFrom)
        );
        assert!(pool.submit_piped(&streamed, now, true).is_ok());
        let smuggled = b"GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
        // Announced as 0 bytes streamed, these went after the head as a
        // request of their own.
        let whole = streamed.streamed_body(Some(0)).body(smuggled.to_vec());
        let text = String::from_utf8(whole.encode().unwrap()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", smuggled.len())),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert_eq!(body.as_bytes(), smuggled);
        assert!(pool.submit(&whole, now, false).is_ok());
    }

    /// Chunked bodies queued for an origin that then answers in HTTP/1.0
    /// are refused, as those submitted after its answer are: they would
    /// go to the next connection it frees, where a server of 1.0 reads
    /// the chunks as requests of their own. Others wait on.
    #[test]
    fn chunked_bodies_queued_for_a_server_found_to_speak_1_0_are_refused() {
        let now = Instant::now();
        let mut pool = pool_of(1, 8);
        let url = "http://127.0.0.1:1/";
        submit(&mut pool, 1, now);
        assert!(pool.next_placement(now).is_some());
        let chunked = ClientRequest::new("POST", url).unwrap().streamed_body(None);
        let sized = ClientRequest::new("POST", url)
            .unwrap()
            .streamed_body(Some(3));
        let a = pool.submit_piped(&chunked, now, false).unwrap();
        let b = pool.submit_piped(&sized, now, false).unwrap();
        let c = pool.submit_piped(&chunked, now, false).unwrap();
        assert!(pool.next_placement(now).is_none(), "all three wait");
        pool.note_version(&origin(1), Version::Http11);
        assert!(pool.events.is_empty());
        pool.note_version(&origin(1), Version::Http10);
        let refused: Vec<_> = (pool.events.drain(..))
            .map(|(id, event)| match event {
                ExchangeEvent::Response(Err(ClientError::Request(
                    RequestError::LengthRequired,
                ))) => id,
                _ => panic!("{id:?}: another event"),
            })
            .collect();
        assert_eq!(refused, [a, c]);
        let next = pool.take_for(&origin(1), now).map(|ex| ex.id);
        assert_eq!(next, Some(b));
        assert!(!pool.has_queued());
        // One submitted now is refused at once, as before.
        let d = pool.submit_piped(&chunked, now, false).unwrap();
        assert_eq!(pool.events.len(), 1);
        assert_eq!(pool.events[0].0, d);
    }

    #[test]
    fn connections_are_opened_up_to_the_limit_then_requests_wait_and_reuse() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions {
            max_per_origin: 2,
            ..Default::default()
        });
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..3 {
            pool.submit(&request("http://127.0.0.1:1/"), now, false)
                .unwrap();
        }
        pool.submit(&request("http://127.0.0.1:2/"), now, false)
            .unwrap();
        let placed: Vec<_> = std::iter::from_fn(|| pool.next_placement(now))
            .map(|(ex, p)| (ex.origin.addr.port(), p))
            .collect();
        // The third for :1 waits; the one for :2 passes it.
        assert_eq!(
            placed,
            [
                (1, Placement::Connect { evict: None }),
                (1, Placement::Connect { evict: None }),
                (2, Placement::Connect { evict: None })
            ]
        );
        assert!(pool.has_queued());
        // A connection to :1 finishes: the waiting request takes it.
        assert_eq!(
            pool.take_for(&Origin::plain(a), now)
                .map(|ex| ex.origin.addr),
            Some(a)
        );
        assert!(!pool.has_queued());
        // Parked, then reused by the next request, which opens nothing.
        pool.park(&Origin::plain(a), 7, now);
        pool.submit(&request("http://127.0.0.1:1/"), now, false)
            .unwrap();
        assert_eq!(
            pool.next_placement(now).map(|(_, p)| p),
            Some(Placement::Reuse(7))
        );
        // A closed connection makes room for a new one.
        pool.submit(&request("http://127.0.0.1:1/"), now, false)
            .unwrap();
        assert!(pool.next_placement(now).is_none());
        pool.closed(&Origin::plain(a), 7);
        assert_eq!(
            pool.next_placement(now).map(|(_, p)| p),
            Some(Placement::Connect { evict: None })
        );
    }

    /// The next placement, as the port it goes to and where.
    fn place(pool: &mut Pool, now: Instant) -> Option<(u16, Placement)> {
        pool.next_placement(now)
            .map(|(ex, p)| (ex.origin.addr.port(), p))
    }

    fn origin(port: u16) -> Origin {
        Origin::plain(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn at_the_overall_limit_the_idle_connection_used_least_recently_gives_way() {
        let now = Instant::now();
        let mut pool = pool_of(8, 2);
        submit(&mut pool, 1, now);
        submit(&mut pool, 2, now);
        submit(&mut pool, 3, now);
        assert_eq!(
            place(&mut pool, now),
            Some((1, Placement::Connect { evict: None }))
        );
        assert_eq!(
            place(&mut pool, now),
            Some((2, Placement::Connect { evict: None }))
        );
        // Both busy: :3 waits, however often asked.
        assert_eq!(place(&mut pool, now), None);
        assert_eq!(place(&mut pool, now), None);
        // :2's connection (slot 20) goes idle, then :1's (slot 10): :3 takes
        // the place of the one idle longest.
        pool.park(&origin(2), 20, now);
        pool.park(&origin(1), 10, now);
        assert_eq!(
            place(&mut pool, now),
            Some((3, Placement::Connect { evict: Some(20) }))
        );
        pool.closed(&origin(2), 20);
        // :1's idle connection still serves :1, and makes room for nothing
        // while busy again.
        submit(&mut pool, 1, now);
        submit(&mut pool, 4, now);
        assert_eq!(place(&mut pool, now), Some((1, Placement::Reuse(10))));
        assert_eq!(place(&mut pool, now), None);
        // A connection that closes lets :4 open one, evicting nothing.
        pool.closed(&origin(3), usize::MAX);
        assert_eq!(
            place(&mut pool, now),
            Some((4, Placement::Connect { evict: None }))
        );
        assert_eq!((pool.open_total, pool.idle_total), (2, 0));
        assert!(!pool.has_queued());
    }

    /// At the overall limit, a connection that finishes goes to the origin
    /// waiting longest instead of its own origin's next request only when
    /// that evens the shares out (two fewer), or the other holds fewer and
    /// has waited `GIVE_WAY_AFTER`: origins converge on equal shares, and
    /// two with as many keep their connections (no handshake per request).
    #[test]
    fn a_busy_origin_gives_way_only_to_even_out_or_after_a_wait() {
        let t0 = Instant::now();
        let mut pool = pool_of(8, 2);
        let (a, b) = (origin(1), origin(2));
        for url in ["http://127.0.0.1:1/"; 4] {
            pool.submit(&request(url), t0, false).unwrap();
        }
        for url in ["http://127.0.0.1:2/"; 2] {
            pool.submit(&request(url), t0, false).unwrap();
        }
        assert_eq!(
            place(&mut pool, t0),
            Some((1, Placement::Connect { evict: None }))
        );
        assert_eq!(
            place(&mut pool, t0),
            Some((1, Placement::Connect { evict: None }))
        );
        assert_eq!(place(&mut pool, t0), None);
        // :1 holds both, :2 none: :1's first to finish (slot 10) goes to :2.
        assert!(pool.take_for(&a, t0).is_none());
        pool.park(&a, 10, t0);
        assert_eq!(
            place(&mut pool, t0),
            Some((2, Placement::Connect { evict: Some(10) }))
        );
        pool.closed(&a, 10);
        assert_eq!(place(&mut pool, t0), None);
        // One each: both go straight on, however long the other waits.
        let later = t0 + GIVE_WAY_AFTER * 5;
        assert!(pool.take_for(&a, later).is_some());
        assert!(pool.take_for(&b, later).is_some());
        // A third origin with none: it waits its turn, then :1 gives way.
        pool.submit(&request("http://127.0.0.1:3/"), later, false)
            .unwrap();
        assert_eq!(place(&mut pool, later), None);
        assert!(pool.take_for(&a, later).is_some(), "before GIVE_WAY_AFTER");
        let turn = later + GIVE_WAY_AFTER;
        assert!(pool.take_for(&a, turn).is_none());
        pool.park(&a, 11, turn);
        assert_eq!(
            place(&mut pool, turn),
            Some((3, Placement::Connect { evict: Some(11) }))
        );
        pool.closed(&a, 11);
        assert_eq!((pool.open_total, pool.idle_total), (2, 0));
    }

    /// At the overall limit, only the origin granted a freed connection may
    /// close another's idle one: a busy origin whose request came in the
    /// same pass does not take the connection its own origin still needs.
    #[test]
    fn at_the_limit_an_idle_connection_goes_to_its_own_origin_unless_granted() {
        let now = Instant::now();
        let mut pool = pool_of(8, 2);
        for port in [1u16, 2] {
            let url = format!("http://127.0.0.1:{port}/");
            pool.submit(&request(&url), now, false).unwrap();
            let placed = place(&mut pool, now);
            assert_eq!(placed, Some((port, Placement::Connect { evict: None })));
        }
        for url in ["http://127.0.0.1:1/", "http://127.0.0.1:2/"] {
            pool.submit(&request(url), now, false).unwrap();
        }
        assert_eq!(place(&mut pool, now), None);
        // One each, both with a request waiting; :2 gets another, and :1's
        // connection parks (not straight on: read it first).
        pool.submit(&request("http://127.0.0.1:2/"), now, false)
            .unwrap();
        pool.park(&origin(1), 10, now);
        assert_eq!(place(&mut pool, now), Some((1, Placement::Reuse(10))));
        assert_eq!(place(&mut pool, now), None);
        assert_eq!((pool.open_total, pool.idle_total), (2, 0));
        // A grant whose idle connection went to its own origin meanwhile
        // opens nothing past the limit.
        pool.submit(&request("http://127.0.0.1:3/"), now, false)
            .unwrap();
        pool.granted = Some(origin(3));
        assert_eq!(place(&mut pool, now), None);
        assert_eq!(pool.open_total, 2);
    }

    /// A grant a close made is spent when its origin opens a connection in
    /// the room the close left: left standing, it stopped the next origin
    /// waiting from being granted an idle connection no one wanted (it
    /// failed with `Queued` beside it), and let the granted origin close
    /// another's idle connection which that origin's own request wanted.
    #[test]
    fn a_grant_is_spent_by_a_connection_opened_in_the_room_a_close_left() {
        let now = Instant::now();
        let mut pool = pool_of(1, 2);
        for port in [1, 2] {
            submit(&mut pool, port, now);
            assert_eq!(
                place(&mut pool, now),
                Some((port, Placement::Connect { evict: None }))
            );
        }
        submit(&mut pool, 3, now);
        assert_eq!(place(&mut pool, now), None, ":3 waits for the limit");
        // :1's connection closes: :3 is granted the room, and takes it
        // under the limit, closing nothing.
        pool.closed(&origin(1), 10);
        assert_eq!(
            place(&mut pool, now),
            Some((3, Placement::Connect { evict: None }))
        );
        assert_eq!(pool.granted, None, "spent");
        // :2's connection parks with nothing of its own waiting; :3 (at its
        // own limit) and a new origin :4 ask.
        pool.park(&origin(2), 20, now);
        submit(&mut pool, 3, now);
        submit(&mut pool, 4, now);
        assert_eq!(
            place(&mut pool, now),
            Some((4, Placement::Connect { evict: Some(20) }))
        );
    }

    /// At the overall limit with every connection idle, nothing parks or
    /// closes to make room: a request to a new origin closes an idle
    /// connection at once instead of waiting (it failed with `Queued`).
    /// One whose own origin has a request waiting is not taken, and a
    /// grant whose request went away holds nothing back.
    #[test]
    fn at_the_limit_a_new_origin_closes_an_idle_connection_no_one_waits_for() {
        let now = Instant::now();
        let mut pool = pool_of(8, 1);
        submit(&mut pool, 1, now);
        assert_eq!(
            place(&mut pool, now),
            Some((1, Placement::Connect { evict: None }))
        );
        pool.park(&origin(1), 10, now);
        submit(&mut pool, 2, now);
        assert_eq!(
            place(&mut pool, now),
            Some((2, Placement::Connect { evict: Some(10) }))
        );
        pool.closed(&origin(1), 10);
        // :2's connection idle, :1 waiting for it and granted; :1's request
        // goes away (cancelled) before the connection is taken.
        pool.park(&origin(2), 20, now);
        let gone = submit(&mut pool, 1, now);
        pool.granted = Some(origin(1));
        pool.cancel(gone);
        submit(&mut pool, 3, now);
        assert_eq!(
            place(&mut pool, now),
            Some((3, Placement::Connect { evict: Some(20) }))
        );
        pool.closed(&origin(2), 20);
        // :3's connection idle with a request of its own waiting (it is
        // read before reuse): a new origin does not take it.
        pool.park(&origin(3), 30, now);
        submit(&mut pool, 3, now);
        submit(&mut pool, 4, now);
        assert_eq!(place(&mut pool, now), Some((3, Placement::Reuse(30))));
        assert_eq!(place(&mut pool, now), None);
        assert_eq!((pool.open_total, pool.idle_total), (1, 0));
    }

    /// A queued exchange that is cancelled is dropped and listed for the
    /// loop, which forgets its pipes (a client's upload held back for it
    /// stayed paused for ever, its connection with it); one that fails
    /// while queued (`withdraw`) is not listed: its failure is reported.
    #[test]
    fn a_cancelled_queued_exchange_is_listed_for_the_loop() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions {
            max_per_origin: 1,
            ..Default::default()
        });
        let ids: Vec<_> = (0..3)
            .map(|_| {
                pool.submit(&request("http://127.0.0.1:1/"), now, false)
                    .unwrap()
            })
            .collect();
        assert!(place(&mut pool, now).is_some());
        pool.cancel(ids[1]);
        assert!(pool.withdraw(ids[2]));
        assert_eq!(pool.cancelled, [ids[1]]);
        assert!(!pool.has_queued());
        assert!(!pool.withdraw(ids[1]), "gone from the queue");
    }

    /// Exchanges cancelled together have their events dropped in one look
    /// through the events, and only theirs; one cancelled twice is listed
    /// once; those the loop took are forgotten, one cancelled since is not.
    #[test]
    fn the_events_of_exchanges_cancelled_together_are_dropped_at_once() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions::default());
        let ids: Vec<_> = (0..20_000)
            .map(|_| {
                pool.submit(&request("http://127.0.0.1:1/"), now, false)
                    .unwrap()
            })
            .collect();
        for &id in &ids {
            pool.withdraw(id);
            pool.fail(id, ClientError::Abandoned);
        }
        for &id in ids.iter().step_by(2) {
            pool.cancel(id);
        }
        pool.cancel(ids[0]);
        pool.drop_cancelled_events();
        assert_eq!(pool.cancelled.len(), 10_000);
        let kept: Vec<_> = pool.events.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            kept,
            ids.iter().skip(1).step_by(2).copied().collect::<Vec<_>>()
        );
        assert!(pool.is_cancelled(ids[0]) && !pool.is_cancelled(ids[1]));
        // The loop takes the list; one more is cancelled meanwhile.
        pool.cancelled.clear();
        pool.cancel(ids[1]);
        pool.forget_cancelled();
        assert!(!pool.is_cancelled(ids[0]) && pool.is_cancelled(ids[1]));
        assert_eq!(pool.cancelled, [ids[1]]);
    }

    /// Timeouts of `Duration::MAX` mean "never": `since + timeout`
    /// panicked.
    #[test]
    fn timeouts_of_duration_max_never_expire() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions {
            max_per_origin: 1,
            connect_timeout: Duration::MAX,
            response_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
            dns_timeout: Duration::MAX,
            ..Default::default()
        });
        for _ in 0..2 {
            pool.submit(&request("http://127.0.0.1:1/"), now, false)
                .unwrap();
        }
        pool.next_placement(now).unwrap();
        let later = now + Duration::from_secs(10 * 365 * 24 * 3600);
        assert!(pool.expire_queued(later).is_some_and(|d| d > later));
        assert!(pool.events.is_empty());
    }

    #[test]
    fn a_retry_never_takes_an_idle_connection() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions::default());
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        pool.submit(&request("http://127.0.0.1:1/"), now, false)
            .unwrap();
        let (mut exchange, _) = pool.next_placement(now).unwrap();
        pool.park(&Origin::plain(a), 3, now);
        exchange.retried = true;
        pool.requeue(exchange);
        assert_eq!(pool.take_for(&Origin::plain(a), now).map(|ex| ex.id), None);
        assert_eq!(
            pool.next_placement(now).map(|(_, p)| p),
            Some(Placement::Connect { evict: None })
        );
    }

    /// A pool whose names go to a DNS server (that the tests answer for it).
    fn pool_asking_dns() -> Pool {
        Pool::new(ClientOptions {
            dns_server: Some("127.0.0.1:9".parse().unwrap()),
            ..Default::default()
        })
    }

    /// Answers the pool's queries, those for names starting `unanswered`
    /// apart, with `addrs` as A records (AAAA queries get none).
    fn answer_queries(pool: &mut Pool, addrs: &[&str], unanswered: Option<&str>, now: Instant) {
        use hickory_proto::op::{Message, OpCode};
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
        for query in std::mem::take(&mut pool.names.datagrams) {
            let asked = Message::from_vec(&query).unwrap();
            let question = asked.queries[0].clone();
            if unanswered.is_some_and(|start| question.name.to_string().starts_with(start)) {
                continue;
            }
            let mut reply = Message::response(asked.metadata.id, OpCode::Query);
            reply.metadata.recursion_available = true;
            if question.query_type == RecordType::A {
                for addr in addrs {
                    let a = RData::A(A(addr.parse().unwrap()));
                    reply.add_answer(Record::from_rdata(question.name.clone(), 600, a));
                }
            }
            reply.add_query(question);
            pool.names.on_datagram(&reply.to_vec().unwrap(), now);
        }
        pool.take_resolved(now);
    }

    /// The connect timeout is the host's: an attempt with addresses behind
    /// it waits half of what the attempts before left, the last all of it;
    /// a wait in the queue between two attempts is not counted.
    #[test]
    fn a_hosts_addresses_share_its_connect_timeout() {
        let now = Instant::now();
        let mut pool = pool_asking_dns();
        pool.submit(&request("http://three.test:8080/"), now, false)
            .unwrap();
        answer_queries(&mut pool, &["10.0.0.7", "10.0.0.8", "10.0.0.9"], None, now);
        let (mut exchange, _) = pool.next_placement(now).expect("placed");
        let timeout = Duration::from_secs(8);
        let s = Duration::from_secs;
        assert_eq!(exchange.attempt_by(now, timeout), now + s(4));
        // The first failed at once (refused): half of the 8 s left.
        assert!(exchange.next_address(now, now, timeout));
        assert_eq!(exchange.attempt_by(now, timeout), now + s(4));
        // The second timed out; the last, started after a second in the
        // queue (not counted), has the 4 s left.
        assert!(exchange.next_address(now, now + s(4), timeout));
        assert_eq!(exchange.attempt_by(now + s(5), timeout), now + s(9));
        assert!(!exchange.next_address(now + s(5), now + s(9), timeout));
    }

    /// An address whose connect failed goes after its host's others for
    /// `UNREACHABLE_FOR` (each exchange waited out half its connect timeout
    /// there first), and in the resolver's order again after it, or once
    /// it took a connection.
    #[test]
    fn an_address_that_failed_goes_last_for_a_while() {
        let now = Instant::now();
        let mut pool = pool_asking_dns();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let at = |ip: IpAddr| SocketAddr::new(ip, 8080);
        let (first, second) = (ip("10.0.0.7"), ip("10.0.0.8"));
        pool.submit(&request("http://two.test:8080/"), now, false)
            .unwrap();
        answer_queries(&mut pool, &["10.0.0.7", "10.0.0.8"], None, now);
        let next = |pool: &mut Pool, t: Instant| {
            pool.submit(&request("http://two.test:8080/"), t, false)
                .unwrap();
            let (exchange, _) = pool.next_placement(t).expect("placed");
            (exchange.origin.addr.ip(), exchange.other_addrs)
        };
        let (placed, _) = pool.next_placement(now).expect("placed");
        assert_eq!(placed.origin.addr, at(first));
        assert_eq!(placed.other_addrs, [second]);
        pool.note_unreachable(at(first), now);
        assert_eq!(next(&mut pool, now), (second, vec![first]));
        let later = now + UNREACHABLE_FOR;
        assert_eq!(next(&mut pool, later), (first, vec![second]));
        assert!(pool.unreachable.is_empty(), "all expired: let go");
        // Both failed: the resolver's order. One reached again: first.
        pool.note_unreachable(at(second), later);
        pool.note_unreachable(at(first), later);
        assert_eq!(next(&mut pool, later), (first, vec![second]));
        pool.note_reachable(at(second));
        assert_eq!(next(&mut pool, later), (second, vec![first]));
        // Another port of the same address is another server.
        pool.submit(&request("http://two.test:8081/"), later, false)
            .unwrap();
        let (other_port, _) = pool.next_placement(later).expect("placed");
        assert_eq!(other_port.origin.addr, SocketAddr::new(first, 8081));
    }

    #[test]
    fn the_addresses_remembered_as_failed_are_bounded() {
        let now = Instant::now();
        let mut pool = pool_of(8, 8);
        for port in 0..MAX_UNREACHABLE as u16 + 10 {
            pool.note_unreachable(SocketAddr::from(([10, 0, 0, 1], port)), now);
        }
        assert_eq!(pool.unreachable.len(), MAX_UNREACHABLE);
        // Expired ones make room.
        let later = now + UNREACHABLE_FOR;
        pool.note_unreachable(SocketAddr::from(([10, 0, 0, 2], 1)), later);
        assert_eq!(pool.unreachable.len(), 1);
    }

    #[test]
    fn exchanges_wait_for_their_name_then_go_to_its_first_address() {
        let now = Instant::now();
        let mut pool = pool_asking_dns();
        let first = pool
            .submit(&request("http://api.test:8080/"), now, false)
            .unwrap();
        // Another name between them, left unanswered: it keeps waiting.
        let other = pool
            .submit(&request("http://other.test:8080/"), now, false)
            .unwrap();
        let second = pool
            .submit(&request("http://API.test:8080/x"), now, false)
            .unwrap();
        let gone = pool
            .submit(&request("http://api.test:8080/y"), now, false)
            .unwrap();
        pool.cancel(gone);
        assert!(!pool.has_queued());
        // A streamed body's first pieces find the exchange while it waits
        // for the name (they were dropped, and the upstream got a body with
        // its beginning missing).
        assert!(pool.queued_mut(first).is_some());
        answer_queries(&mut pool, &["10.0.0.7"], Some("other."), now);
        let placed: Vec<_> = std::iter::from_fn(|| pool.next_placement(now)).collect();
        let ids: Vec<_> = placed.iter().map(|(ex, _)| ex.id).collect();
        assert_eq!(ids, vec![first, second]);
        assert!(pool.queued_mut(other).is_some(), "still waits for its name");
        let want: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        assert!(placed.iter().all(|(ex, _)| ex.origin.addr == want));
        // Its other addresses are kept for a failed connection.
        let mut first_placed = placed.into_iter().next().expect("placed").0;
        let timeout = Duration::from_secs(5);
        assert!(
            !first_placed.next_address(now, now, timeout),
            "one address only"
        );
        first_placed.other_addrs = vec!["10.0.0.8".parse().unwrap()];
        assert!(first_placed.next_address(now, now, timeout));
        assert_eq!(first_placed.origin.addr, "10.0.0.8:8080".parse().unwrap());
        // Known now: the next request goes straight to the queue.
        pool.submit(&request("http://api.test:8080/"), now, false)
            .unwrap();
        assert!(pool.has_queued() && pool.names.datagrams.is_empty());
    }

    /// A TLS origin is one whatever the case its name is written in.
    /// (Keyed as written, `API.test` opened its own connections.)
    #[test]
    fn a_tls_origin_is_one_in_any_case() {
        let now = Instant::now();
        let mut pool = pool_asking_dns();
        let upper = pool.submit(&request("https://API.test:8443/"), now, false);
        let lower = pool.submit(&request("https://api.test:8443/"), now, false);
        let mut name = |id| {
            let exchange = pool.queued_mut(id).expect("waits for its name");
            exchange.origin.tls.clone()
        };
        let (upper, lower) = (name(upper.unwrap()), name(lower.unwrap()));
        assert_eq!(upper.as_deref(), Some("api.test"));
        assert_eq!(upper, lower);
    }

    #[test]
    fn unresolvable_hosts_and_stale_queue_entries_end_with_errors() {
        let now = Instant::now();
        let mut pool = Pool::new(ClientOptions {
            max_per_origin: 1,
            dns_server: Some("127.0.0.1:9".parse().unwrap()),
            ..Default::default()
        });
        // A name no resolver takes is refused with its URL, before the pool;
        // one put in a URL by hand, by the resolver.
        let long_label = format!("http://{}.test/", "a".repeat(64));
        assert!(matches!(
            ClientRequest::new("GET", &long_label),
            Err(crate::RequestError::Url(crate::UrlError::InvalidHost))
        ));
        let by_hand = crate::Url {
            tls: false,
            host: "a..test".into(),
            port: 80,
            path: "/".into(),
        };
        pool.submit(
            &request("http://api.test/").with_origin(&by_hand),
            now,
            false,
        )
        .unwrap();
        assert!(matches!(
            &pool.events[..],
            [(
                _,
                ExchangeEvent::Response(Err(ClientError::Resolve {
                    error: crate::dns::ResolveError::InvalidName,
                    ..
                }))
            )]
        ));
        pool.submit(&request("http://127.0.0.1:1/"), now, false)
            .unwrap();
        pool.submit(&request("http://127.0.0.1:1/"), now, false)
            .unwrap();
        pool.next_placement(now).unwrap();
        let timeout = pool.options.response_timeout;
        assert_eq!(pool.expire_queued(now), Some(now + timeout));
        assert_eq!(pool.expire_queued(now + timeout), None);
        assert!(matches!(
            pool.events[1],
            (_, ExchangeEvent::Response(Err(ClientError::Queued(_))))
        ));
    }

    #[test]
    fn queued_exchanges_expire_by_their_own_start_once_the_first_has_gone() {
        let t0 = Instant::now();
        let mut pool = Pool::new(ClientOptions {
            max_per_origin: 1,
            ..Default::default()
        });
        let timeout = pool.options.response_timeout;
        let later = t0 + Duration::from_secs(5);
        pool.submit(&request("http://127.0.0.1:1/"), t0, false)
            .unwrap();
        let waits = pool
            .submit(&request("http://127.0.0.1:1/"), later, false)
            .unwrap();
        assert!(pool.next_placement(later).is_some());
        // Held back by the origin's limit, on every ask.
        assert!(pool.next_placement(later).is_none());
        assert!(pool.next_placement(later).is_none());
        // The first left the queue: its deadline may still wake the loop,
        // but ends nothing; the second's own deadline does.
        assert!(pool.expire_queued(t0).is_some_and(|d| d <= later + timeout));
        assert_eq!(pool.expire_queued(t0 + timeout), Some(later + timeout));
        assert!(pool.events.is_empty());
        assert_eq!(pool.expire_queued(later + timeout), None);
        assert!(matches!(
            pool.events[..],
            [(id, ExchangeEvent::Response(Err(ClientError::Queued(_))))] if id == waits
        ));
        // Nothing waits: no deadline, and a new exchange places at once
        // once the connection closes.
        assert_eq!(pool.expire_queued(later + timeout * 2), None);
        pool.submit(&request("http://127.0.0.1:1/"), later, false)
            .unwrap();
        assert!(pool.next_placement(later).is_none());
        pool.closed(&Origin::plain("127.0.0.1:1".parse().unwrap()), usize::MAX);
        assert!(pool.next_placement(later).is_some());
    }
}
