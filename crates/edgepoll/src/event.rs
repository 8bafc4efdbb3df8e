//! Readiness events that [`Poll::poll`](crate::Poll) reports.

use crate::Token;

/// One readiness report for a registered socket.
///
/// Hang-ups and per-socket errors arrive here rather than failing the poll.
/// The runtime reports each direction on its own: a socket registered for
/// reading and writing may come as two events in one poll, one readable
/// and one writable, with the same token (mio merges them into one).
///
/// ```
/// use edgepoll::{Event, Token};
/// let event = Event::readable(Token(3));
/// assert!(event.is_readable() && !event.is_error());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    token: Token,
    readable: bool,
    writable: bool,
    hang_up: bool,
    error: u16,
}

impl Event {
    /// A plain readable event (for tests and tools).
    ///
    /// ```
    /// use edgepoll::{Event, Token};
    /// let event = Event::readable(Token(7));
    /// assert!(event.is_readable() && !event.is_writable() && !event.is_hang_up());
    /// ```
    pub fn readable(token: Token) -> Event {
        Event::new(token, true, false, false, 0)
    }

    pub(crate) fn new(
        token: Token,
        readable: bool,
        writable: bool,
        hang_up: bool,
        error: u16,
    ) -> Event {
        Event {
            token,
            readable,
            writable,
            hang_up,
            error,
        }
    }

    /// The token the socket was registered with.
    ///
    /// ```
    /// use edgepoll::{Event, Token};
    /// assert_eq!(Event::readable(Token(7)).token(), Token(7));
    /// ```
    pub fn token(&self) -> Token {
        self.token
    }

    /// Reading will not block: data, EOF, or a connection to accept.
    ///
    /// ```
    /// # use edgepoll::{Event, Token};
    /// assert!(Event::readable(Token(0)).is_readable());
    /// ```
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// Writing will not block, or a non-blocking connect finished (check its
    /// result with [`net::take_error`](crate::net::take_error)).
    ///
    /// ```
    /// # use edgepoll::{Event, Token};
    /// assert!(!Event::readable(Token(0)).is_writable());
    /// ```
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The connection is closed both ways or reset (the runtime's HANGUP
    /// flag): reads return what is left, then (after a reset) the reset's
    /// error once, then EOF; writes fail. A peer's
    /// end of sending alone (a half-close) is no hang-up: it is readable,
    /// and a read returns EOF.
    ///
    /// ```
    /// # use edgepoll::{Event, Token};
    /// assert!(!Event::readable(Token(0)).is_hang_up());
    /// ```
    pub fn is_hang_up(&self) -> bool {
        self.hang_up
    }

    /// The runtime refused this subscription (for example a closed
    /// descriptor), or the socket has an error and nothing else to report
    /// (a datagram socket refused by an ICMP message: WasmEdge reports no
    /// event for it, so [`Poll`](crate::Poll) peeks, and the peek takes the
    /// error from the socket: a read will not report it again).
    ///
    /// ```
    /// # use edgepoll::{Event, Token};
    /// let event = Event::readable(Token(0));
    /// assert!(!event.is_error() && event.raw_error() == 0);
    /// ```
    pub fn is_error(&self) -> bool {
        self.error != 0
    }

    /// The WASI errno of [`is_error`](Self::is_error), 0 when there is none.
    ///
    /// ```
    /// # use edgepoll::{Event, Token};
    /// assert_eq!(Event::readable(Token(0)).raw_error(), 0);
    /// ```
    pub fn raw_error(&self) -> u16 {
        self.error
    }
}

/// A reusable list of events, filled by [`Poll::poll`](crate::Poll).
///
/// ```
/// let events = edgepoll::Events::with_capacity(1024);
/// assert!(events.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Events {
    pub(crate) list: Vec<Event>,
}

impl Events {
    /// Room for `capacity` events before the list grows.
    ///
    /// ```
    /// let events = edgepoll::Events::with_capacity(64);
    /// assert_eq!(events.len(), 0);
    /// ```
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity),
        }
    }

    /// The events of the last poll.
    ///
    /// ```
    /// let events = edgepoll::Events::with_capacity(64);
    /// for event in events.iter() {
    ///     println!("{:?} is ready", event.token());
    /// }
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Whether the last poll reported nothing: its timeout passed, or the
    /// runtime woke it with nothing to report (a wake-up WASI has no event
    /// for). Check the time rather than take an empty list for a timeout.
    ///
    /// ```
    /// assert!(edgepoll::Events::with_capacity(8).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many events the last poll reported.
    ///
    /// ```
    /// assert_eq!(edgepoll::Events::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
