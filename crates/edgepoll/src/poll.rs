//! `Poll`: waits for readiness of registered sockets with WasmEdge's
//! `poll_oneoff`. How it polls is told on [`Poll`] itself (this module is
//! private: its documentation would not show).

use crate::held_writers::HeldWriters;
use crate::subscriptions::{Peek, SubscriptionTable};
#[cfg(target_os = "wasi")]
use crate::sys::abi::{RawEvent, EVENTRWFLAGS_HANGUP, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE};
use crate::{Events, Interest, Token};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Up to this many subscriptions, every call covers them all: the split only
/// pays where WasmEdge's per-subscription cost adds up.
pub const SPLIT_ABOVE: usize = 64;

/// Default of [`Poll::set_full_poll_interval`].
pub const DEFAULT_FULL_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A full call costs WasmEdge two `epoll_ctl` calls per cold registration
/// (added, then removed again by the next partial call). The interval between
/// full calls is multiplied by the number of cold registrations over
/// `COLD_PER_INTERVAL` (at least 1, at most [`MAX_INTERVAL_STRETCH`]; 4999
/// cold stretch it 1.9996 times, not once), so that the cost of a busy second
/// stays bounded however many are quiet.
pub const COLD_PER_INTERVAL: usize = 2500;

/// The most the full-poll interval stretches (see [`COLD_PER_INTERVAL`]).
pub const MAX_INTERVAL_STRETCH: usize = 4;

/// Registers sockets and waits until some are ready — a registry in the style
/// of mio, level-triggered.
///
/// The subscription list handed to the runtime is kept between calls and only
/// edited when registrations change; an unchanged set of sockets is passed as
/// is, so neither side rebuilds it per poll.
///
/// # Hot and cold registrations
///
/// WasmEdge 0.14 calls `epoll_ctl` once per subscription on every
/// `poll_oneoff` call, however few are ready, so a call's cost grows with
/// everything registered. With [`set_split_quiet`](Poll::set_split_quiet)
/// (which [`Server`](crate::Server)'s loop turns on; a `Poll` of your own
/// starts without it, and every call covers every registration, as mio's
/// does), `Poll` splits its registrations: those
/// with events lately are *hot*, those quiet for a while *cold*. While some
/// hot registration is not a listener (the server is busy), most calls hand
/// the runtime only the hot ones, and a full call covering every registration
/// follows at least once per [`full_poll_interval`](Poll::set_full_poll_interval)
/// (stretched when thousands are cold, see [`COLD_PER_INTERVAL`]). A
/// caller that knows nothing is due on a socket says so with
/// [`chill`](Poll::chill) instead of waiting for it to cool.
/// Readiness is level-triggered, so a cold socket's readiness waits for the
/// next full call but is never lost; once reported, the socket is hot again.
/// When nothing is busy, every call is a full one and blocks: an idle program
/// makes no calls at all. (A writer held back, whose retries wake the loop,
/// counts as busy: the cold registrations are then seen at the next full
/// call, not at each wake.) Small sets (up to [`SPLIT_ABOVE`] subscriptions)
/// are never split.
///
/// The price is latency: while others are busy, a socket that was quiet
/// for a while is only looked at in the full calls, so what arrives on it
/// waits up to a full-poll interval (100 ms by default) to be reported. A
/// loop that expects an answer on a quiet socket (a forwarder that just
/// sent a request upstream) [`warm`](Poll::warm)s it; one that must never
/// wait keeps its listener and such sockets [`pin`](Poll::pin)ned, or the
/// split off.
///
/// With [`set_peek_quiet`](Poll::set_peek_quiet), where every cold
/// registration is a non-blocking socket waiting to read, the full call is
/// replaced by a look at each one's receive queue (a `sock_recv` that peeks
/// at one byte: one system call, where WasmEdge's full call costs two
/// `epoll_ctl` per cold socket) and a call over the hot ones; anything else
/// (a socket waiting to write, a listener) still gets the full call. It is
/// off by default because it only pays under WasmEdge AOT: with 5000 quiet
/// connections and one busy one, it cut the server's CPU time to 0.5–0.65×
/// there; under edgepoll-host, whose full calls cost it almost nothing, it
/// raised it three to four times; under WasmEdge's interpreter, where each
/// peek is a costly host call, the two came out close (0.86–1.25× in our
/// runs). `make bench` measures all three.
///
/// A socket waiting only to write whose peer has shut down its sending side
/// makes WasmEdge's `poll_oneoff` return at once with no event while its
/// send buffer is full; `Poll` holds such sockets out of the calls and
/// reports them writable every 10 ms instead (see `held_writers.rs`), so
/// that a program trying to write to a peer that reads nothing wakes 100
/// times a second until it gives up or the peer reads.
///
/// ```
/// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
/// let mut poll = Poll::new();
/// poll.register(&listener, Token(0), Interest::READABLE)?;
/// let _client = net::connect(net::local_addr(&listener)?)?;
/// let mut events = Events::with_capacity(64);
/// poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))?;
/// for event in &events {
///     assert!(event.token() == Token(0) && event.is_readable());
///     let (_stream, _peer) = net::accept(&listener)?;
/// }
/// # Ok(()) }
/// # #[cfg(not(target_os = "wasi"))] fn main() {}
/// ```
#[derive(Debug)]
pub struct Poll {
    table: SubscriptionTable,
    /// Origin of the table's millisecond clock.
    epoch: Instant,
    full_poll_interval: Duration,
    /// When a full call is next due while the split is on.
    next_full: Instant,
    /// When quiet registrations are next moved to the cold region.
    next_cool: Instant,
    #[cfg(target_os = "wasi")]
    raw_events: Vec<RawEvent>,
    /// Whether quiet registrations are left out of busy calls (see
    /// [`Poll`]'s notes).
    split_quiet: bool,
    /// Whether full calls give way to peeks (see [`Poll`]'s notes).
    peek_quiet: bool,
    /// Cold registrations a probe found ready, warmed after the call.
    probed: Vec<(Token, u32, Peek)>,
    /// Writers out of the calls, reported writable on a timer.
    held: HeldWriters,
    /// The write-only registrations looked at after an empty return.
    writers: Vec<(u32, Token)>,
    /// Scratch for the readers of a call that woke empty-handed.
    readers: Vec<(u32, Token)>,
}

impl Default for Poll {
    fn default() -> Self {
        Poll::new()
    }
}

impl Poll {
    /// An empty registry.
    ///
    /// ```
    /// let poll = edgepoll::Poll::new();
    /// assert_eq!(poll.subscription_count(), 0);
    /// ```
    pub fn new() -> Poll {
        let now = Instant::now();
        Poll {
            table: SubscriptionTable::default(),
            epoch: now,
            full_poll_interval: DEFAULT_FULL_POLL_INTERVAL,
            next_full: now,
            next_cool: now,
            #[cfg(target_os = "wasi")]
            raw_events: Vec::new(),
            split_quiet: false,
            peek_quiet: false,
            probed: Vec::new(),
            held: HeldWriters::default(),
            writers: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// Starts watching `source` for `interest`; events carry `token` (tokens
    /// are 32-bit on wasm32). Registering a descriptor twice is an error
    /// (`AlreadyExists`), but for a writer the poll holds out of its calls
    /// (see [`Poll`]'s notes): that one is taken for a socket closed
    /// without being deregistered, whose number now names another, and
    /// registered anew under `token`.
    ///
    /// As with mio, `source` must be non-blocking (what [`net`](crate::net)
    /// opens is): of a blocking socket waiting only to write whose peer
    /// half-closed, WasmEdge reports nothing, and the poll cannot tell
    /// whether it may hold it out of its calls, so it returns at once,
    /// again and again.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut poll = Poll::new();
    /// poll.register(&listener, Token(0), Interest::READABLE)?;
    /// assert_eq!(poll.subscription_count(), 1);
    /// // A second registration of the same socket is refused.
    /// let again = poll.register(&listener, Token(1), Interest::READABLE);
    /// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn register(
        &mut self,
        source: &impl AsRawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let fd = fd_of(source)?;
        if self.is_held(fd) {
            // Held, its socket was closed without being deregistered, and
            // the number now names another.
            self.held.release(fd);
        }
        let now = self.millis(Instant::now());
        self.table.register(fd, token, interest, now)
    }

    /// Changes the token or interest of a registered source.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let stream = net::connect(net::local_addr(&listener)?)?;
    /// let mut poll = Poll::new();
    /// poll.register(&stream, Token(1), Interest::WRITABLE)?;
    /// // Once its writable event came and `net::take_error` found no error:
    /// // connected; from now on, wait for what the peer sends.
    /// poll.reregister(&stream, Token(1), Interest::READABLE)?;
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn reregister(
        &mut self,
        source: &impl AsRawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let fd = fd_of(source)?;
        let now = self.millis(Instant::now());
        if self.is_held(fd) {
            // Still only writing: held on. Reading too: its hang-up is an
            // event again, so back into the calls.
            if !interest.is_readable() {
                self.held.retoken(fd, token);
                return Ok(());
            }
            self.held.release(fd);
            return self.table.register(fd, token, interest, now);
        }
        self.table.reregister(fd, token, interest, now)
    }

    /// Stops watching `source`, in O(1). Do it before closing the socket:
    /// a closed descriptor still registered is reported (an error event)
    /// only when a call returns for another reason, as WasmEdge's wait does
    /// not return for it alone (a [`poll`](Self::poll) without a timeout
    /// and nothing else to wake it would not return). A held writer (see
    /// [`Poll`]'s notes) closed without it is reported writable every
    /// 10 ms for as long as its descriptor number is open, and a file or
    /// socket opened later may take that number.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let stream = net::connect(net::local_addr(&listener)?)?;
    /// let mut poll = Poll::new();
    /// poll.register(&stream, Token(1), Interest::READABLE)?;
    /// poll.deregister(&stream)?;
    /// assert_eq!(poll.subscription_count(), 0);
    /// drop(stream); // closed after it left the registry
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn deregister(&mut self, source: &impl AsRawFd) -> io::Result<()> {
        let fd = fd_of(source)?;
        if self.is_held(fd) {
            self.held.release(fd);
            return Ok(());
        }
        self.table.deregister(fd)
    }

    /// Whether `fd` is held out of the calls (see [`Poll`]'s notes).
    #[inline]
    fn is_held(&self, fd: u32) -> bool {
        !self.held.is_empty() && self.held.contains(fd)
    }

    /// Keeps a registered source in every call, never cold: for a listener,
    /// whose new connections should not wait for a full call.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut poll = Poll::new();
    /// poll.register(&listener, Token(0), Interest::READABLE)?;
    /// poll.pin(&listener)?;
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn pin(&mut self, source: &impl AsRawFd) -> io::Result<()> {
        let fd = fd_of(source)?;
        if self.is_held(fd) {
            return Ok(());
        }
        self.table.pin(fd)
    }

    /// Counts a registered source as active now, as an event would: it is in
    /// every call for the next two full-poll intervals at least. For a
    /// socket about to get an answer (a request just sent) that had no
    /// events lately, so that the answer does not wait for a full call.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// # let upstream = net::local_addr(&listener)?;
    /// let stream = net::connect(upstream)?;
    /// let mut poll = Poll::new();
    /// poll.register(&stream, Token(1), Interest::READABLE)?;
    /// poll.warm(&stream)?;
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn warm(&mut self, source: &impl AsRawFd) -> io::Result<()> {
        self.warm_at(source, Instant::now())
    }

    /// [`warm`](Self::warm) with the time the caller read already (the
    /// clock is a call into the runtime).
    pub(crate) fn warm_at(&mut self, source: &impl AsRawFd, now: Instant) -> io::Result<()> {
        let now = self.millis(now);
        self.table.touch(fd_of(source)?, now);
        Ok(())
    }

    /// Counts a registered source as quiet now, as two intervals without
    /// an event would: until its next event, [`warm`](Self::warm) or
    /// [`reregister`](Self::reregister), it is only in the full calls. For a
    /// socket nothing is due on, such as an idle pooled connection, which
    /// only its server's close can wake: while others are busy, that close
    /// is seen at the next full call (within the
    /// [`full_poll_interval`](Self::full_poll_interval), stretched with
    /// thousands of cold ones), and the busy calls no longer pay for the
    /// socket (under WasmEdge, one `epoll_ctl` each). Without
    /// [`set_split_quiet`](Self::set_split_quiet), and in small sets (up to
    /// [`SPLIT_ABOVE`] subscriptions), which are never split, the source
    /// stays in every call (it counts in [`cold_count`](Self::cold_count),
    /// and starts cold if the split is turned on); a pinned source stays
    /// in every call.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// # let upstream = net::local_addr(&listener)?;
    /// let idle = net::connect(upstream)?;
    /// let mut poll = Poll::new();
    /// poll.register(&idle, Token(1), Interest::READABLE)?;
    /// poll.chill(&idle)?;
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn chill(&mut self, source: &impl AsRawFd) -> io::Result<()> {
        let fd = fd_of(source)?;
        if self.is_held(fd) {
            return Ok(());
        }
        self.table.chill(fd)
    }

    /// Whether the runtime call that ended the last poll watched `source`
    /// for reading and reported no event for it: nothing was waiting to be
    /// read on it when the poll returned. A caller about to reuse an idle
    /// connection may then skip the read that would check it is still
    /// quiet. False when that call left it out (it was cold, or registered
    /// since), when it had an event, or when it is not registered.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Events, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// # let upstream = net::local_addr(&listener)?;
    /// let idle = net::connect(upstream)?;
    /// let mut poll = Poll::new();
    /// poll.register(&idle, Token(1), Interest::READABLE)?;
    /// let mut events = Events::with_capacity(8);
    /// poll.poll(&mut events, Some(std::time::Duration::ZERO))?;
    /// if poll.polled_quiet(&idle) {
    ///     // Nothing had arrived: a request may go on it without a read.
    /// }
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn polled_quiet(&self, source: &impl AsRawFd) -> bool {
        fd_of(source).is_ok_and(|fd| self.table.watched_quiet(fd))
    }

    /// With [`set_split_quiet`](Self::set_split_quiet) (without it every
    /// call is full, and this changes nothing): while other registrations
    /// are busy, a quiet one's readiness is seen
    /// within this interval (default [`DEFAULT_FULL_POLL_INTERVAL`]),
    /// stretched in proportion with thousands of quiet registrations: twice
    /// as long with 5000 (see [`COLD_PER_INTERVAL`]).
    /// Shorter means quiet sockets are answered sooner and every busy second
    /// costs more full calls. Clamped to 1 ms ..= 1 hour.
    ///
    /// ```
    /// let mut poll = edgepoll::Poll::new();
    /// poll.set_full_poll_interval(std::time::Duration::from_millis(20));
    /// assert_eq!(poll.full_poll_interval().as_millis(), 20);
    /// ```
    pub fn set_full_poll_interval(&mut self, interval: Duration) {
        // At most an hour, so that stretched deadlines stay representable.
        self.full_poll_interval =
            interval.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        // A shorter one counts from now, not from a full call due later.
        let now = Instant::now();
        self.next_full = self.next_full.min(now + self.stretched_interval());
        self.next_cool = self.next_cool.min(now + self.full_poll_interval);
    }

    /// See [`set_full_poll_interval`](Self::set_full_poll_interval).
    ///
    /// ```
    /// use edgepoll::{Poll, DEFAULT_FULL_POLL_INTERVAL};
    /// assert_eq!(Poll::new().full_poll_interval(), DEFAULT_FULL_POLL_INTERVAL);
    /// ```
    pub fn full_poll_interval(&self) -> Duration {
        self.full_poll_interval
    }

    /// While other registrations are busy, leaves the quiet ones out of
    /// most calls (see [`Poll`]'s notes on hot and cold registrations):
    /// under WasmEdge, whose every call costs a system call per
    /// subscription, a busy loop with thousands of idle connections then
    /// pays for the busy ones alone, and what arrives on an idle one is
    /// reported within a [`full_poll_interval`](Self::full_poll_interval).
    /// Off by default, as in mio, where readiness is reported at once;
    /// [`Server`](crate::Server)'s loop turns it on and warms what it
    /// waits on.
    ///
    /// ```
    /// let mut poll = edgepoll::Poll::new();
    /// assert!(!poll.splits_quiet());
    /// poll.set_split_quiet(true);
    /// assert!(poll.splits_quiet());
    /// ```
    pub fn set_split_quiet(&mut self, on: bool) {
        self.split_quiet = on;
    }

    /// See [`set_split_quiet`](Self::set_split_quiet).
    ///
    /// ```
    /// assert!(!edgepoll::Poll::new().splits_quiet());
    /// ```
    pub fn splits_quiet(&self) -> bool {
        self.split_quiet
    }

    /// While other registrations are busy, looks at quiet sockets waiting
    /// to read by peeking at their receive queues instead of handing them all to
    /// the runtime (see [`Poll`]'s notes): worth it under WasmEdge AOT with
    /// thousands of quiet connections, costly elsewhere; off by default.
    /// Turning it on turns on [`set_split_quiet`](Self::set_split_quiet)
    /// too, whose full calls the peeks stand in for.
    /// Registered sockets must be non-blocking (those of [`net`](crate::net)
    /// are): one found blocking when first looked at, or made blocking and
    /// registered again, is left to full calls, but one made blocking
    /// afterwards without registering it again would block the peek.
    ///
    /// ```
    /// let mut poll = edgepoll::Poll::new();
    /// assert!(!poll.peeks_quiet());
    /// poll.set_peek_quiet(true);
    /// assert!(poll.peeks_quiet() && poll.splits_quiet());
    /// ```
    pub fn set_peek_quiet(&mut self, on: bool) {
        self.peek_quiet = on;
        // Peeks stand in for the full calls of a split: no split, nothing
        // to peek for.
        self.split_quiet |= on;
    }

    /// See [`set_peek_quiet`](Self::set_peek_quiet).
    ///
    /// ```
    /// assert!(!edgepoll::Poll::new().peeks_quiet());
    /// ```
    pub fn peeks_quiet(&self) -> bool {
        self.peek_quiet
    }

    /// How many subscriptions (one per interest) the runtime is given.
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let stream = net::connect(net::local_addr(&listener)?)?;
    /// let mut poll = Poll::new();
    /// poll.register(&stream, Token(1), Interest::READABLE | Interest::WRITABLE)?;
    /// assert_eq!(poll.subscription_count(), 2);
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn subscription_count(&self) -> usize {
        self.table.len()
    }

    /// How many of them are cold: handed to the runtime only in full calls
    /// (while the split is on: [`set_split_quiet`](Self::set_split_quiet);
    /// without it, only [`chill`](Self::chill) makes one cold, and it is
    /// in every call all the same).
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Interest, Poll, Token};
    /// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut poll = Poll::new();
    /// poll.register(&listener, Token(0), Interest::READABLE)?;
    /// assert_eq!(poll.cold_count(), 0); // new registrations start hot
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn cold_count(&self) -> usize {
        self.table.cold_len()
    }

    /// Waits until a registered source is ready or `deadline` passes
    /// (`None`: no deadline); it may also return early with no event (see
    /// [`Events::is_empty`]).
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Events, Interest, Poll, Token};
    /// use std::time::{Duration, Instant};
    /// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut poll = Poll::new();
    /// poll.register(&listener, Token(0), Interest::READABLE)?;
    /// let mut events = Events::with_capacity(64);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// // Nobody connects: the wait ends at the deadline (or earlier, empty).
    /// poll.poll_until(&mut events, Some(deadline))?;
    /// assert!(events.is_empty());
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn poll_until(&mut self, events: &mut Events, deadline: Option<Instant>) -> io::Result<()> {
        events.list.clear();
        self.check_can_wait(deadline.is_some())?;
        self.wait(events, deadline)
    }

    /// Waits until a registered source is ready or `timeout` passes
    /// (`None`: wait without limit). Fills `events`, replacing what it held;
    /// empty after a timeout, or after a wake-up with nothing to report
    /// (see [`Events::is_empty`]).
    ///
    /// ```
    /// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
    /// use edgepoll::{net, Events, Interest, Poll, Token};
    /// use std::time::Duration;
    /// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut poll = Poll::new();
    /// poll.register(&listener, Token(0), Interest::READABLE)?;
    /// let _client = net::connect(net::local_addr(&listener)?)?;
    /// let mut events = Events::with_capacity(64);
    /// poll.poll(&mut events, Some(Duration::from_secs(10)))?;
    /// assert!(events.iter().any(|e| e.token() == Token(0) && e.is_readable()));
    /// # Ok(()) }
    /// # #[cfg(not(target_os = "wasi"))] fn main() {}
    /// ```
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        self.check_can_wait(timeout.is_some())?;
        // A timeout too far for the clock to count to is a year: a wait
        // with nothing registered needs some deadline (without one the
        // runtime would be asked to wait on nothing, which it refuses).
        let now = Instant::now();
        let deadline = timeout.map(|t| {
            now.checked_add(t)
                .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
        });
        self.wait(events, deadline)
    }

    fn check_can_wait(&self, has_deadline: bool) -> io::Result<()> {
        if self.table.len() == 0 && self.held.is_empty() && !has_deadline {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "poll without registrations or timeout would wait forever",
            ));
        }
        Ok(())
    }

    /// Calls the runtime until something is reported or `deadline` passes.
    fn wait(&mut self, events: &mut Events, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            let mut now = Instant::now();
            // Held writers wake the loop every retry: those wakes need not
            // cover the quiet registrations either.
            let split = self.split_quiet
                && self.table.len() > SPLIT_ABOVE
                && self.table.cold_len() > 0
                && (self.table.has_unpinned_hot() || !self.held.is_empty());
            let mut full = !split || now >= self.next_full;
            // A full call while the split is on: peek at the cold ones instead
            // where that can tell, and call the runtime over the hot ones.
            let peeks = split && full && self.peek_quiet;
            let probed = peeks && self.probe_cold(events);
            if peeks {
                // Thousands of peeks take time: the wait is from after them.
                now = Instant::now();
            }
            if probed {
                full = false;
                self.next_full = now + self.stretched_interval();
            }
            let (records, mut until) = if full {
                (self.table.records_mut().len(), deadline)
            } else {
                let until = deadline.map_or(self.next_full, |d| d.min(self.next_full));
                (self.table.hot_prefix(), Some(until))
            };
            if let Some(due) = self.held.next_due() {
                until = Some(until.map_or(due, |u| u.min(due)));
            }
            // Cold ones found ready are reported now: the call only adds to them.
            let timeout = match events.list.is_empty() {
                true => until.map(|u| u.saturating_duration_since(now)),
                false => Some(Duration::ZERO),
            };
            self.table.begin_call(records);
            let reported = events.list.len();
            let called = self.call_runtime(events, records, timeout);
            if called.is_err() {
                self.table.call_failed();
            }
            if !probed && !self.probed.is_empty() {
                // Errors peeks took before falling back to this full call:
                // its own event for those sockets would read as a plain end.
                self.drop_reported_again(events, reported);
            }
            let after = Instant::now();
            if probed {
                // Warmed only now: hot during the call, they would be reported twice.
                let warmed = self.millis(after);
                for &(_, fd, _) in &self.probed {
                    self.table.touch(fd, warmed);
                }
                self.probed.clear();
            }
            let called = match called {
                Ok(n) => Some(n),
                // What the peeks found is reported, not dropped with the
                // failed call: a peeked error is taken from its socket,
                // and would not be found again.
                Err(_) if !events.list.is_empty() => None,
                // A signal cut the wait short: wait on, to the deadline.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if called == Some(0) {
                // Woken with nothing to report: a pending error with
                // nothing to read, or WasmEdge's hang-up of a socket that
                // waits only to write (see [`Poll`]'s notes).
                let explained = self.report_pending_errors(records, events);
                self.hold_half_closed_writers(records, after, explained, events);
            }
            if !self.held.is_empty() {
                // One closed without being deregistered is forgotten: its
                // number may come back as another socket.
                self.held.take_due(after, |fd, token| {
                    let open = is_open(fd);
                    if open {
                        events
                            .list
                            .push(crate::event::Event::new(token, false, true, false, 0));
                    }
                    open
                });
            }
            // A full call that failed watched nothing: the next is due still.
            let full = full && called.is_some();
            if full {
                self.next_full = after + self.stretched_interval();
            }
            let splits = self.split_quiet && self.table.len() > SPLIT_ABOVE;
            if (full || probed) && after >= self.next_cool && splits {
                // Cold: no event for two intervals.
                let quiet_since = self.millis(after).saturating_sub(self.ttl_millis());
                self.table.cool(quiet_since);
                self.next_cool = after + self.full_poll_interval;
            }
            let timed_out = deadline.is_some_and(|d| after >= d);
            // A full call that returned empty-handed waited out the deadline
            // (or was woken for nothing); a partial one may only have reached
            // the time of the next full call.
            if !events.list.is_empty() || full || timed_out {
                return Ok(());
            }
        }
    }

    /// Peeks at every cold registration (see [`Poll`]'s notes) and reports
    /// those found readable; false if some cannot be peeked at, and then a
    /// full call is due.
    fn probe_cold(&mut self, events: &mut Events) -> bool {
        // Without all, the errors found are reported still (see
        // `SubscriptionTable::probe_cold`), and the full call the rest.
        let all = self.table.probe_cold(peek, &mut self.probed);
        for &(token, _, seen) in &self.probed {
            // A peer's end of sending is readable (EOF), as the runtime
            // reports it: HANGUP is its flag for a connection closed both
            // ways, which a peek cannot tell apart.
            let error = match seen {
                Peek::Error(errno) => errno,
                _ => 0,
            };
            let event = crate::event::Event::new(token, true, false, false, error);
            events.list.push(event);
        }
        // On the fallback `probed` keeps the errors reported, for
        // `drop_reported_again`.
        all
    }

    /// Drops the events after the first `reported` whose token is one of
    /// the fallback's errors (see [`Poll::probe_cold`]), warms those
    /// sockets (they had an event: not quiet, as the call alone would say)
    /// and forgets them. By token: another registration under the same
    /// token loses its event of this call too, and gets it at the next
    /// (readiness is level-triggered).
    #[cold]
    #[inline(never)]
    fn drop_reported_again(&mut self, events: &mut Events, reported: usize) {
        let errored = &self.probed;
        let mut at = 0;
        events.list.retain(|event| {
            at += 1;
            at <= reported || !errored.iter().any(|&(token, _, _)| token == event.token())
        });
        let warmed = self.millis(Instant::now());
        for &(_, fd, _) in &self.probed {
            self.table.touch(fd, warmed);
        }
        self.probed.clear();
    }

    /// After a call over the first `records` records woke with nothing to
    /// report: holds out of the calls the sockets of that call waiting only
    /// to write whose receive queue shows their peer's FIN (a peek that
    /// returns 0). Only if none does, and nothing else `explained` the
    /// wake, those with bytes waiting, behind which a FIN may hide (one
    /// with neither has had none: a FIN would make the peek return 0). A
    /// writer whose peek finds an error is reported writable with it.
    fn hold_half_closed_writers(
        &mut self,
        records: usize,
        now: Instant,
        explained: bool,
        events: &mut Events,
    ) {
        let mut writers = std::mem::take(&mut self.writers);
        self.table.write_only(records, &mut writers);
        let mut hidden = Vec::new();
        let mut held_any = explained;
        for &(fd, token) in &writers {
            match peek(fd, true) {
                Peek::Closed => held_any |= self.hold(fd, token, now),
                Peek::Data => hidden.push((fd, token)),
                Peek::Error(errno) => {
                    held_any = true;
                    let event = crate::event::Event::new(token, false, true, false, errno);
                    events.list.push(event);
                }
                Peek::Empty | Peek::Unknown => {}
            }
        }
        if !held_any {
            for (fd, token) in hidden {
                self.hold(fd, token, now);
            }
        }
        self.writers = writers;
    }

    /// After a call over the first `records` records woke with nothing to
    /// report: a socket whose only news is an error (a datagram socket
    /// refused by an ICMP message) wakes epoll with `EPOLLERR` alone, which
    /// WasmEdge turns into no event, call after call. Such sockets among
    /// the call's readers are reported readable, with the error, which the
    /// peek that found it has taken: their owner learns it from the event.
    /// Whether any was.
    fn report_pending_errors(&mut self, records: usize, events: &mut Events) -> bool {
        let mut readers = std::mem::take(&mut self.readers);
        self.table.readers(records, &mut readers);
        let mut found = false;
        for &(fd, token) in &readers {
            if let Peek::Error(errno) = peek(fd, true) {
                found = true;
                self.table.touch(fd, self.millis(Instant::now()));
                let event = crate::event::Event::new(token, true, false, false, errno);
                events.list.push(event);
            }
        }
        self.readers = readers;
        found
    }

    fn hold(&mut self, fd: u32, token: Token, now: Instant) -> bool {
        let out = self.table.deregister(fd).is_ok();
        if out {
            self.held.hold(fd, token, now);
        }
        out
    }

    /// The time to the next full call: longer with many cold registrations.
    fn stretched_interval(&self) -> Duration {
        stretched(self.full_poll_interval, self.table.cold_len())
    }

    fn ttl_millis(&self) -> u64 {
        2 * self.full_poll_interval.as_millis() as u64
    }

    /// Milliseconds since the registry was made: the table's clock.
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// One `poll_oneoff` over the first `records` records (record 0 is the
    /// clock, left out without a timeout): how many events the runtime
    /// wrote, the clock's included.
    #[cfg(target_os = "wasi")]
    fn call_runtime(
        &mut self,
        events: &mut Events,
        records: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        use crate::event::Event;
        let list = &mut self.table.records_mut()[..records];
        let list = match timeout {
            Some(timeout) => {
                let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
                list[0] = crate::sys::abi::RawSubscription::relative_timeout(nanos);
                &list[..]
            }
            None => &list[1..],
        };
        let listed = list.len();
        if self.raw_events.len() < listed {
            self.raw_events.resize(listed, RawEvent::default());
        }
        let mut n = 0usize;
        // SAFETY: `list` and `raw_events` outlive the call, and `raw_events`
        // holds at least `list.len()` records, the most the runtime writes.
        let errno = unsafe {
            crate::sys::wasi::poll_oneoff(
                list.as_ptr(),
                self.raw_events.as_mut_ptr(),
                list.len(),
                &mut n,
            )
        };
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno as i32));
        }
        let now = self.millis(Instant::now());
        let before = events.list.len();
        let mut interrupted = false;
        // No more events than subscriptions: past them lie older calls'.
        for raw in &self.raw_events[..n.min(listed)] {
            // WasmEdge marks every event of an interrupted wait so.
            if raw.error == ERRNO_INTR {
                interrupted = true;
                break;
            }
            let (readable, writable) = match raw.kind {
                EVENTTYPE_FD_READ => (true, false),
                EVENTTYPE_FD_WRITE => (false, true),
                _ => continue, // the timeout clock
            };
            let token = self.table.touch_record(raw.userdata, now);
            let hang_up = raw.flags & EVENTRWFLAGS_HANGUP != 0;
            events
                .list
                .push(Event::new(token, readable, writable, hang_up, raw.error));
        }
        if interrupted {
            events.list.truncate(before);
            self.after_interrupted_wait();
            return Err(io::ErrorKind::Interrupted.into());
        }
        Ok(n)
    }

    /// A wait a signal interrupted (SIGSTOP and SIGCONT, a debugger) comes
    /// back from WasmEdge with EINTR on every subscription, and leaves its
    /// poller holding that call's descriptors (it returns before it forgets
    /// them), so that the next call listing one answers EEXIST for it.
    /// Nothing happened to the sockets: a call with only a clock that has
    /// already run out lets the poller forget them (again while a signal
    /// interrupts that one too). edgepoll-host goes on waiting instead.
    #[cfg(target_os = "wasi")]
    fn after_interrupted_wait(&mut self) {
        let clock = [crate::sys::abi::RawSubscription::relative_timeout(0)];
        let mut event = [RawEvent::default()];
        // Each round again takes another signal: this cannot spin.
        loop {
            let mut n = 0usize;
            // SAFETY: one subscription and room for its one event.
            let errno = unsafe {
                crate::sys::wasi::poll_oneoff(clock.as_ptr(), event.as_mut_ptr(), 1, &mut n)
            };
            if errno != 0 || n == 0 || event[0].error != ERRNO_INTR {
                return;
            }
        }
    }

    #[cfg(not(target_os = "wasi"))]
    fn call_runtime(
        &mut self,
        _events: &mut Events,
        _records: usize,
        _timeout: Option<Duration>,
    ) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "edgepoll's Poll runs on wasm32-wasip1 under WasmEdge or edgepoll-host",
        ))
    }
}

/// `interval` stretched in proportion to `cold` registrations (see
/// [`COLD_PER_INTERVAL`]). In proportion, not by whole multiples: with whole
/// multiples, 4990 cold registrations (5000 less a few that woke up) got the
/// interval of 2500 and twice the `epoll_ctl` churn that 5000 got.
fn stretched(interval: Duration, cold: usize) -> Duration {
    let cold = cold.clamp(COLD_PER_INTERVAL, MAX_INTERVAL_STRETCH * COLD_PER_INTERVAL);
    let nanos = interval.as_nanos() * cold as u128 / COLD_PER_INTERVAL as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A look at `fd`'s receive queue that takes nothing from it; `check` first
/// makes sure the socket does not block (a peek at an empty blocking socket
/// would wait for data).
#[cfg(target_os = "wasi")]
fn peek_raw(fd: u32, check: bool) -> Option<(u32, usize)> {
    use crate::sys::wasi;
    if check {
        let mut stat = wasi::FdStat::default();
        // SAFETY: `stat` is a live, writable fdstat record.
        let errno = unsafe { wasi::fd_fdstat_get(fd, &mut stat) };
        if errno != 0 || stat.flags & wasi::FDFLAGS_NONBLOCK == 0 {
            return None;
        }
    }
    let mut byte = 0u8;
    let mut buffer = wasi::Iovec {
        buf: &mut byte,
        size: 1,
    };
    let (mut received, mut out_flags) = (0usize, 0usize);
    // SAFETY: one record naming one writable byte, and two live outputs.
    let errno = unsafe {
        wasi::sock_recv(
            fd,
            &mut buffer,
            1,
            wasi::RIFLAGS_RECV_PEEK,
            &mut received,
            &mut out_flags,
        )
    };
    Some((errno, received))
}

/// Without the runtime nothing can be peeked at.
#[cfg(not(target_os = "wasi"))]
fn peek_raw(_fd: u32, _check: bool) -> Option<(u32, usize)> {
    None
}

/// WASI's `again`: the operation would block.
const ERRNO_AGAIN: u32 = 6;
/// WASI's `intr`: a wait a signal interrupted.
#[cfg(target_os = "wasi")]
const ERRNO_INTR: u16 = 27;

/// What a read of socket `fd` would find. An error a read would report (a
/// refusal, a reset, an unreachable host) is taken from the socket by the
/// peek that finds it, and must be reported from here.
fn peek(fd: u32, check: bool) -> Peek {
    match peek_raw(fd, check) {
        Some((0, 0)) => Peek::Closed,
        Some((0, _)) => Peek::Data,
        Some((ERRNO_AGAIN, _)) => Peek::Empty,
        // BADF, INVAL, NOTCONN, NOTSOCK and NOTSUP: no connected socket to
        // peek at (a listener, say); the runtime's poll reports it. The
        // rest are the socket's own errors (an ICMP message can leave many:
        // refused, unreachable, prohibited, ...).
        Some((errno, _)) if !matches!(errno, 8 | 28 | 53 | 57 | 58) => Peek::Error(errno as u16),
        // Blocking (not looked at), or not peekable.
        _ => Peek::Unknown,
    }
}

/// Whether descriptor `fd` is open.
#[cfg(target_os = "wasi")]
fn is_open(fd: u32) -> bool {
    let mut stat = crate::sys::wasi::FdStat::default();
    // SAFETY: `stat` is a live, writable fdstat record.
    unsafe { crate::sys::wasi::fd_fdstat_get(fd, &mut stat) != crate::sys::wasi::ERRNO_BADF }
}

#[cfg(not(target_os = "wasi"))]
fn is_open(_fd: u32) -> bool {
    true
}

fn fd_of(source: &impl AsRawFd) -> io::Result<u32> {
    u32::try_from(source.as_raw_fd())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor number standing for a socket.
    struct Fd(i32);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0
        }
    }

    /// A held writer stays held while it only writes, comes back to the
    /// calls when it wants to read too, and ends with its deregistration
    /// or with its number registered anew (its socket closed unsaid).
    #[test]
    fn held_writers_stay_out_of_the_calls_until_they_read_or_go() {
        let mut poll = Poll::new();
        let (a, b, c) = (Fd(1_000_003), Fd(7), Fd(1_999_999_999));
        poll.register(&a, Token(1), Interest::WRITABLE).unwrap();
        poll.register(&b, Token(2), Interest::READABLE).unwrap();
        poll.register(&c, Token(3), Interest::WRITABLE).unwrap();
        assert_eq!(poll.subscription_count(), 3);
        let now = Instant::now();
        assert!(poll.hold(1_000_003, Token(1), now) && poll.hold(1_999_999_999, Token(3), now));
        assert!(poll.is_held(1_000_003) && poll.is_held(1_999_999_999) && !poll.is_held(7));
        assert_eq!(
            poll.subscription_count(),
            1,
            "held writers are out of the calls"
        );
        // Only a timeout and held writers: a poll may wait (they are due).
        assert!(poll.check_can_wait(false).is_ok());

        // Still writing only: held on, under its new token.
        poll.reregister(&a, Token(11), Interest::WRITABLE).unwrap();
        assert!(poll.is_held(1_000_003) && poll.subscription_count() == 1);
        // The ordinary calls on it succeed and change nothing.
        poll.warm(&a).unwrap();
        poll.chill(&a).unwrap();
        poll.pin(&a).unwrap();
        assert!(poll.is_held(1_000_003));
        let mut due = Vec::new();
        poll.held
            .take_due(now + crate::held_writers::RETRY, |fd, token| {
                due.push((fd, token));
                true
            });
        due.sort_unstable();
        assert_eq!(due, [(1_000_003, Token(11)), (1_999_999_999, Token(3))]);

        // Reading too: back in the calls, both interests.
        poll.reregister(&a, Token(12), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        assert!(!poll.is_held(1_000_003));
        assert_eq!(poll.subscription_count(), 3);
        assert!(poll.register(&a, Token(13), Interest::READABLE).is_err());

        // Deregistered while held: gone from both.
        poll.deregister(&c).unwrap();
        assert!(!poll.is_held(1_999_999_999));
        assert!(poll.deregister(&c).is_err(), "deregistered twice");
        poll.register(&c, Token(4), Interest::WRITABLE).unwrap();
        assert!(poll.hold(1_999_999_999, Token(4), now));
        // Its number registered anew: the stale hold gives way.
        poll.register(&c, Token(5), Interest::READABLE).unwrap();
        assert!(!poll.is_held(1_999_999_999) && poll.held.is_empty());
        assert_eq!(poll.subscription_count(), 4);

        // Nothing left at all: a wait without timeout is refused.
        for fd in [&a, &b, &c] {
            poll.deregister(fd).unwrap();
        }
        assert!(poll.check_can_wait(false).is_err());
    }

    /// A quiet socket reset by its peer, found by the peek at the quiet
    /// ones, is reported with its error: the peek takes the error from
    /// the socket, and a read after it finds a clean end of stream (so a
    /// response delimited by the close read as whole).
    #[cfg(target_os = "wasi")]
    #[test]
    fn a_quiet_socket_reset_is_reported_with_its_error_by_the_peek() {
        use crate::net;
        use std::io::{Read, Write};
        let listener = net::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let addr = net::local_addr(&listener).expect("bound");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pairs = Vec::new();
        while pairs.len() < SPLIT_ABOVE + 6 {
            let near = net::connect(addr).expect("connects");
            loop {
                match net::accept(&listener) {
                    Ok((far, _)) => break pairs.push((near, far)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no connection to accept");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        }
        let mut poll = Poll::new();
        poll.set_split_quiet(true);
        poll.set_peek_quiet(true);
        poll.set_full_poll_interval(Duration::from_millis(10));
        for (i, (near, _)) in pairs.iter().enumerate() {
            poll.register(near, Token(i), Interest::READABLE)
                .expect("registers");
        }
        let mut events = Events::with_capacity(256);
        // Pair 0 stays busy (the calls split only while one is hot); the
        // rest go quiet.
        let mut step = |pairs: &mut Vec<(net::TcpStream, net::TcpStream)>, poll: &mut Poll| {
            assert!(Instant::now() < deadline, "timed out");
            pairs[0].1.write_all(b"x").expect("writes");
            poll.poll(&mut events, Some(Duration::from_millis(5)))
                .expect("polls");
            let _ = pairs[0].0.read(&mut [0; 64]);
            events.iter().copied().collect::<Vec<_>>()
        };
        while poll.table.cold_len() < pairs.len() - 1 {
            step(&mut pairs, &mut poll);
        }
        // Reset: the far end closes with bytes unread.
        pairs[1].0.write_all(b"unread").expect("writes");
        std::thread::sleep(Duration::from_millis(20));
        let far = std::mem::replace(&mut pairs[1].1, net::connect(addr).expect("connects"));
        // Closed as a file: a stream's drop would shut it down first, and
        // its FIN would hide the reset from reads.
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: the descriptor is the stream's own, and moves over.
        drop(unsafe { std::fs::File::from_raw_fd(far.into_raw_fd()) });
        let event = loop {
            let events = step(&mut pairs, &mut poll);
            if let Some(event) = events.iter().find(|e| e.token() == Token(1)) {
                break *event;
            }
        };
        // Told once, by the event or by the read after it; not lost.
        let read = pairs[1].0.read(&mut [0; 64]);
        let reset = matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset);
        assert!(
            event.is_readable() && (event.is_error() || reset),
            "{event:?}, then {read:?}"
        );
    }

    #[test]
    fn the_full_poll_interval_stretches_in_proportion_to_the_cold() {
        let base = Duration::from_millis(100);
        let ms = |cold| stretched(base, cold).as_secs_f64() * 1000.0;
        assert_eq!(ms(0), 100.0);
        assert_eq!(ms(COLD_PER_INTERVAL), 100.0);
        assert_eq!(ms(2 * COLD_PER_INTERVAL), 200.0);
        // 5000 idle less a few that woke up: nearly twice, not once.
        assert!(
            (199.0..200.0).contains(&ms(2 * COLD_PER_INTERVAL - 6)),
            "{}",
            ms(4994)
        );
        assert_eq!(ms(MAX_INTERVAL_STRETCH * COLD_PER_INTERVAL), 400.0);
        assert_eq!(ms(usize::MAX), 400.0);
        let mut last = 0.0;
        for cold in (0..12_000).step_by(7) {
            let now = ms(cold);
            assert!(now >= last, "shrank at {cold} cold");
            last = now;
        }
    }

    /// A shorter interval takes effect from now, not after a full call
    /// that the longer one set far off.
    #[test]
    fn a_shorter_full_poll_interval_brings_the_next_full_call_forward() {
        let mut poll = Poll::new();
        poll.set_full_poll_interval(Duration::from_secs(3600));
        poll.next_full = Instant::now() + Duration::from_secs(3600);
        poll.set_full_poll_interval(Duration::from_millis(100));
        assert!(poll.next_full <= Instant::now() + Duration::from_millis(100));
    }

    #[test]
    fn the_longest_interval_stretched_stays_representable() {
        let mut poll = Poll::new();
        poll.set_full_poll_interval(Duration::MAX);
        assert_eq!(poll.full_poll_interval(), Duration::from_secs(3600));
        let longest = stretched(poll.full_poll_interval(), usize::MAX);
        assert_eq!(longest, Duration::from_secs(4 * 3600));
        assert!(Instant::now().checked_add(longest).is_some());
    }
}
