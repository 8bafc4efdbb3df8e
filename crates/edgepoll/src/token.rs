//! Tokens: the caller's name for a registered socket.

/// Associates an event with the socket it was registered for.
///
/// ```
/// use edgepoll::Token;
/// const LISTENER: Token = Token(0);
/// assert_eq!(LISTENER.0, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);
