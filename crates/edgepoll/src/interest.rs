//! Interest: which readiness a registration waits for.

use std::ops::BitOr;

/// Readable, writable, or both.
///
/// ```
/// use edgepoll::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both.remove(Interest::WRITABLE), Some(Interest::READABLE));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(u8);

const READ: u8 = 1;
const WRITE: u8 = 2;

impl Interest {
    /// Wait until reading would not block (data, a connection to accept, or EOF).
    ///
    /// ```
    /// assert!(edgepoll::Interest::READABLE.is_readable());
    /// ```
    pub const READABLE: Interest = Interest(READ);
    /// Wait until writing would not block (or a connect completed).
    ///
    /// ```
    /// assert!(!edgepoll::Interest::WRITABLE.is_readable());
    /// ```
    pub const WRITABLE: Interest = Interest(WRITE);

    /// Both interests.
    ///
    /// ```
    /// use edgepoll::Interest;
    /// const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE);
    /// assert_eq!(BOTH, Interest::READABLE | Interest::WRITABLE);
    /// ```
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// `self` without `other`; `None` if nothing is left.
    ///
    /// ```
    /// use edgepoll::Interest;
    /// assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
    /// ```
    pub fn remove(self, other: Interest) -> Option<Interest> {
        let left = self.0 & !other.0;
        (left != 0).then_some(Interest(left))
    }

    /// Whether readable readiness is wanted.
    ///
    /// ```
    /// use edgepoll::Interest;
    /// assert!((Interest::READABLE | Interest::WRITABLE).is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.0 & READ != 0
    }

    /// Whether writable readiness is wanted.
    ///
    /// ```
    /// use edgepoll::Interest;
    /// assert!(!Interest::READABLE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.0 & WRITE != 0
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}
