//! The resolver's state, free of I/O: lookups under way, the cache, and
//! what is to be sent. The event loop owns the sockets
//! (`server/names.rs`): it sends [`Resolver::datagrams`], asks
//! [`Resolver::over_tcp`] again over TCP, and hands back what arrives.
//!
//! One lookup asks for A and AAAA at once (two queries: servers answer one
//! question per message), resends unanswered queries every
//! [`RESEND_AFTER`], and ends at its timeout with what it has. Concurrent
//! lookups of one name share it; answers are kept for their TTL, and a
//! name used in the last quarter of its TTL is asked again in the
//! background, so that a name in use never makes its users wait.
//!
//! A socket error (an ICMP port unreachable: nothing listens at the
//! server's port, as while it restarts) ends only its own lookup, and only
//! when it comes again from the fresh socket its next query opens (the
//! other family's, sent at once, or the resend): glibc too tries a refused
//! server again before it gives up, and the other lookups under way may
//! well be answered. A lookup refused once and then never answered ends at
//! its timeout with the refusal, the likelier cause.
//!
//! Each lookup is named by a *tag* (the id its first query first went
//! under, kept when a retry takes a new one: [`Resolver::tag_of`]):
//! the loop sends each lookup's datagrams from a UDP socket of its own, so
//! that every lookup leaves from a fresh random port (RFC 5452 §9.2: a
//! forged answer must guess the port as well as the 16-bit id), and takes
//! only the answers to that lookup from it ([`Resolver::on_datagram_for`]).

use super::message::{self, Answer, Family, NotAnswer};
use super::{system, ResolveError};
use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a query waits for its answer before it is sent again.
pub const RESEND_AFTER: Duration = Duration::from_millis(1000);
/// Names kept at most; the expired go first, then any.
pub const MAX_CACHED: usize = 1024;
/// How long a system lookup (`getaddrinfo`, which gives no TTL) is kept.
pub const SYSTEM_TTL: Duration = Duration::from_secs(5);
/// How long a failure to get an answer (a timeout, SERVFAIL, REFUSED, an
/// unreachable server) is kept: RFC 9520 §3.2's least. Not kept, each
/// request for a name that fails asked again (four queries, with the
/// SERVFAIL retries): a proxy forwarding N requests a second to such a
/// name would ask the failing server 4N times a second.
pub const FAILURE_TTL: Duration = Duration::from_secs(1);
/// The longest a positive answer is kept, whatever its TTL says.
const MAX_TTL: u32 = 3600;
/// The longest a negative answer (NXDOMAIN, no address) is kept (RFC 2308
/// §5 suggests one to three hours at most; a typo fixed in a zone should
/// show sooner).
const MAX_NEGATIVE_TTL: u32 = 300;
/// Addresses kept per family of one answer: an answer may hold thousands.
pub const MAX_ADDRESSES: usize = 32;
/// Lookups under way at once; more wait their turn, up to
/// [`MAX_WAITING`] names, and past that fail at once.
pub const MAX_PENDING: usize = 256;
/// Names waiting for a lookup to end so that theirs can start.
pub const MAX_WAITING: usize = 4096;
/// Once IPv4 has addresses (or the name is known not to exist), how long
/// IPv6 is waited for (RFC 8305 §3 waits 50 ms before using IPv4 alone; a
/// little more here, as the client takes the first address anyway). IPv6
/// addresses first wait for IPv4's as long as the lookup may take.
pub const OTHER_FAMILY_GRACE: Duration = Duration::from_millis(100);

/// The outcome of a lookup: the addresses, IPv4 before IPv6, each in the
/// server's order (or `getaddrinfo`'s order, kept as it is).
///
/// ```no_run
/// # #[cfg(target_os = "wasi")]
/// # fn main() {
/// let resolved: edgepoll::dns::Resolved =
///     edgepoll::dns::resolve("localhost", std::time::Duration::from_secs(5));
/// match resolved {
///     Ok(addresses) => println!("first: {}", addresses[0]),
///     Err(e) => eprintln!("localhost: {e}"),
/// }
/// # }
/// # #[cfg(not(target_os = "wasi"))] fn main() {}
/// ```
pub type Resolved = Result<Vec<IpAddr>, ResolveError>;

/// Whether a name's addresses are known now.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Ready(Resolved),
    /// Asked; the outcome comes in [`Resolver::finished`].
    Pending,
}

struct Cached {
    resolved: Resolved,
    until: Instant,
    /// From here on, a use of the entry asks again in the background.
    refresh_at: Instant,
}

/// One query of a lookup.
struct Part {
    family: Family,
    id: u16,
    query: Vec<u8>,
    state: PartState,
    /// A server failure (SERVFAIL) came and the query went again, once:
    /// the outcome if nothing better comes before the deadline.
    failed_once: Option<Answer>,
    /// A datagram that claimed to answer it was refused: the cause to name
    /// if no good answer comes (a timeout's otherwise).
    malformed: bool,
    /// When it is sent again if still unanswered: each family's own (a
    /// failure asked again at once puts off its resend, not the other's).
    resend_at: Instant,
}

/// SERVFAIL: the server could not answer now (its own upstream timed out,
/// say). Asked once more, as musl and glibc do; the other failures would
/// not change.
const SERVER_FAILURE: u16 = 2;

enum PartState {
    Asking,
    /// Truncated over UDP: asked again over TCP.
    OverTcp,
    Done(Result<Answer, ResolveError>),
}

struct Pending {
    /// The lookup's tag: its first query's first id, kept when a retry
    /// takes a new one, for the loop's socket of the lookup is found by it.
    tag: u16,
    key: Box<str>,
    name: Name,
    parts: [Part; 2],
    deadline: Instant,
    /// The deadline before one family's answer cut it to
    /// [`OTHER_FAMILY_GRACE`]: a query gone over to TCP keeps it.
    full_deadline: Instant,
    /// The error a socket of this lookup reported: the next one ends it.
    refused: Option<ResolveError>,
}

impl Pending {
    /// Part `answered` has its answer. IPv4 addresses, or a name that does
    /// not exist (RFC 8020: for any type), cut the wait for the other
    /// family to a short grace: a lost datagram then costs that, not the
    /// whole timeout. IPv6 addresses do not: IPv4 comes first (see the
    /// module's notes), and on a network without IPv6 a lookup that lost
    /// its A datagram would end with addresses it cannot reach; it waits
    /// for the resend. Not while the other is asked over TCP: an answer
    /// too large for a datagram is worth its round trip.
    fn grace_after_answer(&mut self, answered: usize, now: Instant) {
        let part = &self.parts[answered];
        let conclusive = match &part.state {
            PartState::Done(Ok(Answer::Addresses { addrs, .. })) => {
                !addrs.is_empty() && part.family == Family::V4
            }
            PartState::Done(Ok(Answer::NoSuchName { .. })) => true,
            _ => false,
        };
        let over_tcp = self
            .parts
            .iter()
            .any(|p| matches!(p.state, PartState::OverTcp));
        if conclusive && !over_tcp {
            self.deadline = self.deadline.min(now + OTHER_FAMILY_GRACE);
        }
    }
}

/// The resolver: see the module's documentation.
pub struct Resolver {
    server: Option<SocketAddr>,
    timeout: Duration,
    cache: FxHashMap<Box<str>, Cached>,
    /// IP literals parsed lately (see [`Resolver::literal`]).
    literals: Vec<(Box<str>, IpAddr)>,
    pending: Vec<Pending>,
    /// Names to ask once fewer than [`MAX_PENDING`] lookups are under way,
    /// oldest first, and since when: their timeout runs while they wait.
    waiting: std::collections::VecDeque<(Box<str>, Instant)>,
    /// Query ids drawn ahead (see `fresh_id`).
    ids: Vec<u16>,
    /// Ids handed out when the system's source fails.
    next_seed: u64,
    /// Queries to send to the server over UDP, oldest first.
    pub datagrams: Vec<Vec<u8>>,
    /// Queries to ask again over TCP: the id and the message.
    pub over_tcp: Vec<(u16, Vec<u8>)>,
    /// Lookups that ended since this was last emptied, by name.
    pub finished: Vec<(Box<str>, Resolved)>,
    /// The tags of lookups that ended since this was last emptied: their
    /// sockets are closed.
    pub ended_tags: Vec<u16>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(None, Duration::from_secs(5))
    }
}

impl Resolver {
    /// Names go to `server` over the network, or to the runtime's
    /// `getaddrinfo` (blocking) without one; a lookup ends after `timeout`.
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Resolver {
        Resolver {
            server,
            timeout,
            cache: FxHashMap::default(),
            literals: Vec::new(),
            pending: Vec::new(),
            waiting: Default::default(),
            ids: Vec::new(),
            next_seed: 0,
            datagrams: Vec::new(),
            over_tcp: Vec::new(),
            finished: Vec::new(),
            ended_tags: Vec::new(),
        }
    }

    /// The DNS server, if names go to one.
    pub fn server(&self) -> Option<SocketAddr> {
        self.server
    }

    /// `host` as an IP literal (bracketed or not), if it is one. The last
    /// few are remembered: a forwarder names the same upstreams in every
    /// request, and comparing a name costs a tenth of parsing it.
    pub(crate) fn literal(&mut self, host: &str) -> Option<IpAddr> {
        const REMEMBERED: usize = 16;
        let same = |h: &str| crate::http::same_bytes(h.as_bytes(), host.as_bytes());
        if let Some((_, ip)) = self.literals.iter().find(|(h, _)| same(h)) {
            return Some(*ip);
        }
        let ip = literal(host)?;
        if self.literals.len() == REMEMBERED {
            self.literals.remove(0);
        }
        self.literals.push((host.into(), ip));
        Some(ip)
    }

    /// The addresses of `host`: at once for an IP literal, `localhost`
    /// (RFC 6761: never sent to a server), a cached name, or through the
    /// system; otherwise asked of the server.
    pub fn lookup(&mut self, host: &str, now: Instant) -> Lookup {
        let key = key_of(host);
        // With its final dot or without, an address is the address (no
        // top-level domain is all digits: RFC 3696 §2), whether a server
        // or the system would be asked.
        if let Some(ip) = literal(&key) {
            return Lookup::Ready(Ok(vec![ip]));
        }
        // Only one final dot: `a.test..` has an empty label (RFC 1035
        // §3.1), which the system's resolver would pass over. The rest of a
        // name's rules (`dns::is_host_name`: no `127.1`) are checked before
        // it is asked, not on every lookup a cache answers.
        if key.is_empty() || key.ends_with('.') {
            return Lookup::Ready(Err(ResolveError::InvalidName));
        }
        if key.as_ref() == "localhost" || key.ends_with(".localhost") {
            // By the rules of any other name (`a..localhost` is none).
            if !super::is_host_name(&key) {
                return Lookup::Ready(Err(ResolveError::InvalidName));
            }
            let loopback = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
            return Lookup::Ready(Ok(loopback));
        }
        if self.server.is_none() {
            return Lookup::Ready(self.ask_system(host, key, now));
        }
        // Looked for only when the cache does not answer alone: the
        // lookups under way and the names waiting are many at worst.
        if let Some(cached) = self.cache.get(&key) {
            if now < cached.until {
                let resolved = cached.resolved.clone();
                // Prefetch: a name in use is asked again before it expires,
                // so its users never wait for the answer (as unbound does).
                if now >= cached.refresh_at && !self.asking(&key) {
                    // The name was asked before: it parses.
                    let _ = self.ask(key, now, now);
                }
                return Lookup::Ready(resolved);
            }
        }
        if self.asking(&key) {
            return Lookup::Pending;
        }
        match self.ask(key, now, now) {
            Ok(()) => Lookup::Pending,
            Err(e) => Lookup::Ready(Err(e)),
        }
    }

    /// The addresses of `host` (known here as `key`) from the system's
    /// resolver, cached for [`SYSTEM_TTL`]: each lookup blocks the loop, so
    /// a failing one is not made again for every request either. A final
    /// dot goes with the name, and the name is cached apart: it tells the
    /// resolver the name is whole (no `search` domains tried first, as
    /// `ndots:5` in Kubernetes would).
    fn ask_system(&mut self, host: &str, key: Box<str>, now: Instant) -> Resolved {
        let key = match host.ends_with('.') {
            true => format!("{key}.").into_boxed_str(),
            false => key,
        };
        if let Some(cached) = self.cache.get(&key).filter(|c| now < c.until) {
            return cached.resolved.clone();
        }
        if !super::is_host_name(&key) {
            return Err(ResolveError::InvalidName);
        }
        crate::client::tell_dns_env_unused();
        let resolved = system::lookup(&key);
        self.keep(key, &resolved, SYSTEM_TTL, now);
        resolved
    }

    /// Whether `key` is being asked, or waits to be.
    fn asking(&self, key: &str) -> bool {
        self.pending.iter().any(|p| *p.key == *key) || self.waiting.iter().any(|(k, _)| **k == *key)
    }

    /// Starts a lookup of `key` through the server, timed from `since` (when
    /// it was first wanted: a name that waited for a turn has had some of
    /// its time).
    fn ask(&mut self, key: Box<str>, now: Instant, since: Instant) -> Result<(), ResolveError> {
        let name = message::parse_name(&key)?;
        if self.pending.len() >= MAX_PENDING {
            // Its turn comes when a lookup ends (`start_waiting`).
            if self.waiting.len() >= MAX_WAITING {
                return Err(ResolveError::TooManyLookups);
            }
            self.waiting.push_back((key, since));
            return Ok(());
        }
        let mut first = None;
        let parts = [Family::V4, Family::V6].map(|family| {
            let id = self.fresh_id(first);
            first = Some(id);
            let query = message::query(id, &name, family);
            self.datagrams.push(query.clone());
            Part {
                family,
                id,
                query,
                state: PartState::Asking,
                failed_once: None,
                malformed: false,
                resend_at: now + RESEND_AFTER.min(self.timeout),
            }
        });
        self.pending.push(Pending {
            tag: parts[0].id,
            key,
            name,
            parts,
            deadline: since + self.timeout,
            full_deadline: since + self.timeout,
            refused: None,
        });
        Ok(())
    }

    /// Whether there is something for the loop: queries to send, or
    /// lookups that ended.
    #[inline]
    pub fn has_output(&self) -> bool {
        !self.datagrams.is_empty()
            || !self.over_tcp.is_empty()
            || !self.finished.is_empty()
            || !self.ended_tags.is_empty()
    }

    /// Names in the cache, expired or not.
    #[cfg(test)]
    pub fn cached_count(&self) -> usize {
        self.cache.len()
    }

    /// Whether lookups are under way.
    #[cfg(test)]
    pub fn is_busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether query `id` waits for its answer over TCP.
    pub fn awaits_tcp(&self, id: u16) -> bool {
        self.part_with(id, true).is_some()
    }

    /// The tag of the lookup under way that query `id` belongs to: the id
    /// its first query first went under.
    pub fn tag_of(&self, id: u16) -> Option<u16> {
        self.pending
            .iter()
            .find(|l| l.parts.iter().any(|p| p.id == id))
            .map(|l| l.tag)
    }

    /// Whether the lookup tagged `tag` still waits for a datagram (a query
    /// of it unanswered over UDP).
    pub fn awaits_datagram(&self, tag: u16) -> bool {
        self.pending
            .iter()
            .any(|l| l.tag == tag && l.parts.iter().any(|p| matches!(p.state, PartState::Asking)))
    }

    /// A datagram that arrived on the socket of lookup `tag`. One carrying
    /// the id of another lookup's query is dropped: it came to the wrong
    /// port, as only a stray or forged one would.
    pub fn on_datagram_for(&mut self, tag: u16, bytes: &[u8], now: Instant) {
        let id = message::id_of(bytes);
        if id.and_then(|id| self.tag_of(id)) == Some(tag) {
            self.on_datagram(bytes, now);
        }
    }

    /// A datagram from the server.
    pub fn on_datagram(&mut self, bytes: &[u8], now: Instant) {
        let Some(id) = message::id_of(bytes) else {
            return;
        };
        let Some((at, part)) = self.part_with(id, false) else {
            return;
        };
        let lookup = &mut self.pending[at];
        let p = &mut lookup.parts[part];
        let mut ask_again = false;
        match message::read_answer(bytes, id, &lookup.name, p.family, true) {
            Ok(Answer::Truncated) => {
                p.state = PartState::OverTcp;
                self.over_tcp.push((id, p.query.clone()));
                // An answer too large for a datagram is worth its round
                // trip over TCP: not cut short by the other family's grace.
                lookup.deadline = lookup.full_deadline;
            }
            // One server failure is asked again at once: ended, it would
            // leave the other family's addresses alone (IPv6 only, on a
            // network without a route for it), or fail the lookup.
            Ok(failure @ Answer::Failed(SERVER_FAILURE)) if p.failed_once.is_none() => {
                p.failed_once = Some(failure);
                ask_again = true;
                p.resend_at = now + RESEND_AFTER;
            }
            Ok(answer) => {
                p.state = PartState::Done(Ok(answer));
                lookup.grace_after_answer(part, now);
            }
            // Kept waiting: a forged or broken datagram must not end a
            // lookup that a good answer may still complete.
            Err(NotAnswer::Malformed | NotAnswer::TooLong) => p.malformed = true,
            Err(NotAnswer::Other) => {}
        }
        if ask_again {
            // Under a new id: a copy of the failure (a server may send its
            // answer twice, a network may deliver it twice) would otherwise
            // be taken for the second answer and end the lookup.
            let id = self.fresh_id(None);
            let lookup = &mut self.pending[at];
            let p = &mut lookup.parts[part];
            p.id = id;
            p.query = message::query(id, &lookup.name, p.family);
            self.datagrams.push(p.query.clone());
        }
        self.finish_done(now);
    }

    /// The answer to a query asked over TCP (the message without its
    /// length prefix), or why none came.
    pub fn on_tcp_answer(&mut self, id: u16, answer: Result<&[u8], ResolveError>, now: Instant) {
        let Some((at, part)) = self.part_with(id, true) else {
            return;
        };
        let lookup = &mut self.pending[at];
        let p = &mut lookup.parts[part];
        p.state = PartState::Done(match answer {
            Ok(bytes) => match message::read_answer(bytes, id, &lookup.name, p.family, false) {
                Ok(Answer::Truncated) => Err(ResolveError::BadAnswer("truncated over TCP")),
                Ok(answer) => Ok(answer),
                Err(NotAnswer::TooLong) => Err(ResolveError::BadAnswer("answer over 16 KiB")),
                Err(_) => Err(ResolveError::BadAnswer("malformed answer over TCP")),
            },
            Err(e) => Err(e),
        });
        lookup.grace_after_answer(part, now);
        self.finish_done(now);
    }

    /// The socket of lookup `tag` reported `error` (the server's port
    /// unreachable, say). The loop closes that socket; the lookup's next
    /// resend goes from a fresh one, and a second error ends it. The other
    /// lookups go on.
    pub fn on_socket_error(&mut self, tag: u16, error: ResolveError, now: Instant) {
        let Some(lookup) = self.pending.iter_mut().find(|l| l.tag == tag) else {
            return;
        };
        match lookup.refused {
            Some(_) => self.on_lookup_error(tag, error, now),
            None => lookup.refused = Some(error),
        }
    }

    /// Lookup `tag` cannot be asked (its socket could not be opened or
    /// used): it ends with `error`, the others go on.
    pub fn on_lookup_error(&mut self, tag: u16, error: ResolveError, now: Instant) {
        for lookup in &mut self.pending {
            if lookup.tag != tag {
                continue;
            }
            for p in &mut lookup.parts {
                if matches!(p.state, PartState::Asking) {
                    p.state = PartState::Done(Err(error.clone()));
                }
            }
        }
        self.finish_done(now);
    }

    /// Resends unanswered queries and ends lookups past their timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for lookup in &mut self.pending {
            if now >= lookup.deadline {
                for p in &mut lookup.parts {
                    let cause = match (&lookup.refused, p.malformed) {
                        (Some(error), _) => error.clone(),
                        (None, true) => ResolveError::BadAnswer("malformed answer"),
                        (None, false) => ResolveError::Timeout(self.timeout),
                    };
                    // A server failure, asked again with no answer since,
                    // is the outcome; not one the retry took over TCP, nor
                    // beside a refusal (which the module says it ends with).
                    let failed = match (&p.state, &lookup.refused) {
                        (PartState::Asking, None) => p.failed_once.take(),
                        _ => None,
                    };
                    if !matches!(p.state, PartState::Done(_)) {
                        p.state = PartState::Done(match failed {
                            Some(failure) => Ok(failure),
                            None => Err(cause),
                        });
                    }
                }
            } else {
                for p in &mut lookup.parts {
                    if matches!(p.state, PartState::Asking) && now >= p.resend_at {
                        self.datagrams.push(p.query.clone());
                        p.resend_at = now + RESEND_AFTER;
                    }
                }
            }
        }
        self.finish_done(now);
    }

    /// When [`Resolver::handle_timeout`] has something to do next.
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        // Asked every round of the loop: nearly always nothing is under way.
        if self.pending.is_empty() && self.waiting.is_empty() {
            return None;
        }
        self.lookups_deadline()
    }

    #[inline(never)]
    fn lookups_deadline(&self) -> Option<Instant> {
        let waited = self.waiting.front().map(|(_, since)| *since + self.timeout);
        self.pending
            .iter()
            .map(|lookup| {
                let asking = lookup
                    .parts
                    .iter()
                    .filter(|p| matches!(p.state, PartState::Asking));
                asking
                    .map(|p| p.resend_at)
                    .fold(lookup.deadline, Instant::min)
            })
            .chain(waited)
            .min()
    }

    fn part_with(&self, id: u16, over_tcp: bool) -> Option<(usize, usize)> {
        self.pending.iter().enumerate().find_map(|(at, lookup)| {
            let part = lookup.parts.iter().position(|p| {
                p.id == id
                    && match p.state {
                        PartState::Asking => !over_tcp,
                        PartState::OverTcp => over_tcp,
                        PartState::Done(_) => false,
                    }
            })?;
            Some((at, part))
        })
    }

    /// A query id no lookup under way uses: random, so that an off-path
    /// sender cannot guess it (with the random source port). Drawn from
    /// [`entropy`](crate::entropy), sixteen at a time, not from std's hash
    /// keys: those are one `random_get`, which under WasmEdge two ids seen
    /// would give away, and with them every id after.
    fn fresh_id(&mut self, also_taken: Option<u16>) -> u16 {
        loop {
            if self.ids.is_empty() {
                let mut block = [0u8; 32];
                match crate::entropy::fill(&mut block) {
                    Ok(()) => {
                        let pairs = block.chunks_exact(2);
                        self.ids
                            .extend(pairs.map(|pair| u16::from_le_bytes([pair[0], pair[1]])));
                    }
                    // Ids told apart still, if guessable.
                    Err(_) => {
                        self.next_seed += 1;
                        self.ids.push(self.next_seed as u16);
                    }
                }
            }
            let id = self.ids.pop().unwrap_or(0);
            // Nor a tag still in use: that of a lookup whose first query
            // was asked again under a new id names its socket.
            let taken = also_taken == Some(id)
                || self
                    .pending
                    .iter()
                    .any(|l| l.tag == id || l.parts.iter().any(|p| p.id == id));
            if !taken {
                return id;
            }
        }
    }

    fn finish_done(&mut self, now: Instant) {
        let mut at = 0;
        while at < self.pending.len() {
            let done = self.pending[at]
                .parts
                .iter()
                .all(|p| matches!(p.state, PartState::Done(_)));
            if !done {
                at += 1;
                continue;
            }
            let lookup = self.pending.swap_remove(at);
            self.ended_tags.push(lookup.tag);
            let (resolved, ttl, partial) = combine(lookup.parts);
            // A refresh that heard from one family only leaves an entry,
            // still good, that holds the other family too: its users keep
            // both. Asked again no sooner than a partial answer would be.
            let whole = match self.cache.get_mut(&lookup.key) {
                Some(cached) if partial && now < cached.until && holds_both(&cached.resolved) => {
                    cached.refresh_at = cached.until.min(now + SYSTEM_TTL);
                    Some(cached.resolved.clone())
                }
                _ => None,
            };
            let resolved = match whole {
                Some(whole) => whole,
                None => {
                    self.keep(lookup.key.clone(), &resolved, ttl, now);
                    resolved
                }
            };
            self.finished.push((lookup.key, resolved));
        }
        self.start_waiting(now);
    }

    /// Asks the names that waited for room, while there is room.
    fn start_waiting(&mut self, now: Instant) {
        self.expire_waiting(now);
        while self.pending.len() < MAX_PENDING {
            let Some((key, since)) = self.waiting.pop_front() else {
                return;
            };
            // It parsed when it was put here: only room could fail it.
            if let Err(e) = self.ask(key.clone(), now, since) {
                self.finished.push((key, Err(e)));
            }
        }
    }

    /// Ends the lookups of names that waited their whole timeout for a
    /// turn: a lookup takes at most its timeout, asked or not (behind a
    /// server that answers nothing, thousands of names would otherwise be
    /// asked long after those who wanted them gave up).
    fn expire_waiting(&mut self, now: Instant) {
        while let Some((_, since)) = self.waiting.front() {
            if now < *since + self.timeout {
                return;
            }
            if let Some((key, _)) = self.waiting.pop_front() {
                self.finished
                    .push((key, Err(ResolveError::Timeout(self.timeout))));
            }
        }
    }

    fn keep(&mut self, key: Box<str>, resolved: &Resolved, ttl: Duration, now: Instant) {
        if let (Some(cached), Err(e)) = (self.cache.get_mut(&key), resolved) {
            // A failed refresh leaves the entry to its own expiry, and is
            // not made again sooner than a partial answer's: each use of a
            // name in its last quarter would ask a failing server again.
            if now < cached.until && !is_the_names(e) {
                cached.refresh_at = cached.until.min(now + SYSTEM_TTL);
                return;
            }
        }
        if ttl.is_zero() {
            // Expired; or the name's answer (its addresses, or that it has
            // none) now comes with TTL 0, not to be kept: the old addresses
            // are not handed out either.
            self.cache.remove(&key);
            return;
        }
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&key) {
            self.cache.retain(|_, c| now < c.until);
            if self.cache.len() >= MAX_CACHED {
                if let Some(any) = self.cache.keys().next().cloned() {
                    self.cache.remove(&any);
                }
            }
        }
        let until = now + ttl;
        let refresh_at = match resolved {
            // A failure is not refreshed: asked again once it expires.
            Err(e) if !is_the_names(e) => until,
            _ => until - ttl / 4,
        };
        self.cache.insert(
            key,
            Cached {
                resolved: resolved.clone(),
                until,
                refresh_at,
            },
        );
    }
}

/// Whether `error` is the name's own answer (no such name, no address), not
/// a failure to get one.
fn is_the_names(error: &ResolveError) -> bool {
    matches!(error, ResolveError::NoSuchName | ResolveError::NoAddress)
}

/// Whether `resolved` holds addresses of both families.
fn holds_both(resolved: &Resolved) -> bool {
    let Ok(addrs) = resolved else {
        return false;
    };
    addrs.iter().any(IpAddr::is_ipv4) && addrs.iter().any(IpAddr::is_ipv6)
}

/// One outcome from the two queries' answers, how long to keep it, and
/// whether it is one family's addresses while the other's query failed or
/// went unanswered.
fn combine(parts: [Part; 2]) -> (Resolved, Duration, bool) {
    let mut addrs = Vec::new();
    let mut ttl = MAX_TTL;
    let mut negative: Option<(ResolveError, u32)> = None;
    let mut failure = None;
    let mut unanswered = false;
    for p in parts {
        match p.state {
            PartState::Done(Ok(Answer::Addresses {
                addrs: found,
                ttl: t,
            })) => {
                if found.is_empty() {
                    let t = t.min(MAX_NEGATIVE_TTL);
                    match &mut negative {
                        Some((_, kept)) => *kept = (*kept).min(t),
                        None => negative = Some((ResolveError::NoAddress, t)),
                    }
                } else {
                    addrs.extend(found.into_iter().take(MAX_ADDRESSES));
                    ttl = ttl.min(t);
                }
            }
            PartState::Done(Ok(Answer::NoSuchName { ttl: t })) => {
                let t = t.min(MAX_NEGATIVE_TTL);
                let kept = negative.as_ref().map_or(t, |(_, k)| (*k).min(t));
                negative = Some((ResolveError::NoSuchName, kept));
            }
            PartState::Done(Ok(Answer::Failed(code))) => {
                failure.get_or_insert(ResolveError::ServerFailure(code));
            }
            PartState::Done(Ok(Answer::NotRecursive)) => {
                failure.get_or_insert(ResolveError::NotRecursive);
            }
            PartState::Done(Err(e)) => {
                failure.get_or_insert(e);
            }
            PartState::Done(Ok(Answer::Truncated)) | PartState::Asking | PartState::OverTcp => {
                unanswered = true;
            }
        }
    }
    if !addrs.is_empty() {
        // One family's addresses while the other's query failed or went
        // unanswered (a lost datagram): kept only briefly, so that the
        // next lookup asks again rather than going without that family
        // (IPv4, say) for the whole TTL.
        let partial = failure.is_some() || unanswered;
        let keep = match partial {
            true => SYSTEM_TTL.min(Duration::from_secs(ttl.into())),
            false => Duration::from_secs(ttl.into()),
        };
        return (Ok(addrs), keep, partial);
    }
    // NXDOMAIN wins over a failure of the other query; a failure is kept
    // for FAILURE_TTL; "no address" is kept only when both queries said so.
    let (resolved, keep) = match (negative, failure) {
        (Some((ResolveError::NoSuchName, t)), _) => {
            (Err(ResolveError::NoSuchName), Duration::from_secs(t.into()))
        }
        (_, Some(e)) => (Err(e), FAILURE_TTL),
        (Some((e, t)), None) => (Err(e), Duration::from_secs(t.into())),
        (None, None) => (Err(ResolveError::NoAddress), Duration::ZERO),
    };
    (resolved, keep, false)
}

/// The name a host is known by here: lower case, without its final dot.
pub fn key_of(host: &str) -> Box<str> {
    host.strip_suffix('.')
        .unwrap_or(host)
        .to_ascii_lowercase()
        .into()
}

/// An IP literal, bracketed or not.
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}
