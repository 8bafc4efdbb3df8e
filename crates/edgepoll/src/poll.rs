//! `Poll`: waits for readiness of registered sockets with WasmEdge's `poll_oneoff`.

use crate::subscriptions::SubscriptionTable;
#[cfg(target_os = "wasi")]
use crate::sys::abi::{
    RawEvent, RawSubscription, EVENTRWFLAGS_HANGUP, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE,
};
use crate::{Events, Interest, Token};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Registers sockets and waits until some are ready — a registry in the style
/// of mio, level-triggered.
///
/// The subscription list handed to the runtime is kept between calls and only
/// edited when registrations change; an unchanged set of sockets is passed as
/// is, so neither side rebuilds it per poll.
///
/// ```no_run
/// # #[cfg(target_os = "wasi")] fn main() -> std::io::Result<()> {
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// let listener = net::bind("127.0.0.1:1234".parse().unwrap())?;
/// let mut poll = Poll::new();
/// poll.register(&listener, Token(0), Interest::READABLE)?;
/// let mut events = Events::with_capacity(64);
/// poll.poll(&mut events, Some(std::time::Duration::from_secs(1)))?;
/// for event in &events {
///     assert_eq!(event.token(), Token(0));
/// }
/// # Ok(()) }
/// # #[cfg(not(target_os = "wasi"))] fn main() {}
/// ```
#[derive(Debug, Default)]
pub struct Poll {
    table: SubscriptionTable,
    #[cfg(target_os = "wasi")]
    raw_events: Vec<RawEvent>,
}

impl Poll {
    /// An empty registry.
    pub fn new() -> Poll {
        Poll::default()
    }

    /// Starts watching `source` for `interest`; events carry `token`.
    /// Registering a descriptor twice is an error (`AlreadyExists`).
    pub fn register(
        &mut self,
        source: &impl AsRawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.table.register(fd_of(source)?, token, interest)
    }

    /// Changes the token or interest of a registered source.
    pub fn reregister(
        &mut self,
        source: &impl AsRawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.table.reregister(fd_of(source)?, token, interest)
    }

    /// Stops watching `source`, in O(1). Do it before closing the socket.
    pub fn deregister(&mut self, source: &impl AsRawFd) -> io::Result<()> {
        self.table.deregister(fd_of(source)?)
    }

    /// How many subscriptions (one per interest) the runtime is given.
    pub fn subscription_count(&self) -> usize {
        self.table.len()
    }

    /// Waits until a registered source is ready or `deadline` passes
    /// (`None`: no deadline).
    pub fn poll_until(&mut self, events: &mut Events, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        self.poll(events, timeout)
    }

    /// Waits until a registered source is ready or `timeout` passes
    /// (`None`: wait without limit). Fills `events`, replacing what it held;
    /// empty after a timeout.
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        if self.table.len() == 0 && timeout.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "poll without registrations or timeout would wait forever",
            ));
        }
        self.poll_sys(events, timeout)
    }

    #[cfg(target_os = "wasi")]
    fn poll_sys(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        use crate::event::Event;
        let list = self.table.list_mut();
        if let Some(timeout) = timeout {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            list.push(RawSubscription::relative_timeout(nanos));
        }
        if self.raw_events.len() < list.len() {
            self.raw_events.resize(list.len(), RawEvent::default());
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
        if timeout.is_some() {
            list.pop();
        }
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno as i32));
        }
        for raw in &self.raw_events[..n.min(self.raw_events.len())] {
            let (readable, writable) = match raw.kind {
                EVENTTYPE_FD_READ => (true, false),
                EVENTTYPE_FD_WRITE => (false, true),
                _ => continue, // the timeout clock
            };
            let hang_up = raw.flags & EVENTRWFLAGS_HANGUP != 0;
            events.list.push(Event::new(
                Token(raw.userdata as usize),
                readable,
                writable,
                hang_up,
                raw.error,
            ));
        }
        Ok(())
    }

    #[cfg(not(target_os = "wasi"))]
    fn poll_sys(&mut self, _events: &mut Events, _timeout: Option<Duration>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "edgepoll's Poll runs on wasm32-wasip1 under WasmEdge or edgepoll-host",
        ))
    }
}

fn fd_of(source: &impl AsRawFd) -> io::Result<u32> {
    u32::try_from(source.as_raw_fd())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))
}
