//! WASI errno values and the mapping from Linux errors.

/// A WASI errno (never 0 as an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u16);

pub const BADF: Errno = Errno(8);
pub const EXIST: Errno = Errno(20);
pub const FAULT: Errno = Errno(21);
pub const INVAL: Errno = Errno(28);
pub const IO: Errno = Errno(29);
pub const ISDIR: Errno = Errno(31);
pub const NOSYS: Errno = Errno(52);
pub const NOTDIR: Errno = Errno(54);
pub const NOTSOCK: Errno = Errno(57);
pub const NOTSUP: Errno = Errno(58);
pub const NOTCAPABLE: Errno = Errno(76);

/// Result of a host function body: `Ok` becomes errno 0.
pub type WasiResult = Result<(), Errno>;

/// The status a host function returns to the guest.
pub fn status(result: WasiResult) -> i32 {
    match result {
        Ok(()) => 0,
        Err(Errno(e)) => e as i32,
    }
}

/// Translates a Linux errno into WASI numbering.
pub fn from_linux(errno: i32) -> Errno {
    use libc::*;
    Errno(match errno {
        E2BIG => 1,
        EACCES => 2,
        EADDRINUSE => 3,
        EADDRNOTAVAIL => 4,
        EAFNOSUPPORT => 5,
        EAGAIN => 6,
        EALREADY => 7,
        EBADF => 8,
        EBUSY => 10,
        ECONNABORTED => 13,
        ECONNREFUSED => 14,
        ECONNRESET => 15,
        EDESTADDRREQ => 17,
        EEXIST => 20,
        EFAULT => 21,
        EFBIG => 22,
        EHOSTUNREACH => 23,
        EINPROGRESS => 26,
        EINTR => 27,
        EINVAL => 28,
        EIO => 29,
        EISCONN => 30,
        EISDIR => 31,
        ELOOP => 32,
        EMFILE => 33,
        EMSGSIZE => 35,
        ENAMETOOLONG => 37,
        ENETDOWN => 38,
        ENETRESET => 39,
        ENETUNREACH => 40,
        ENFILE => 41,
        ENOBUFS => 42,
        ENODEV => 43,
        ENOENT => 44,
        ENOMEM => 48,
        ENOPROTOOPT => 50,
        ENOSPC => 51,
        ENOSYS => 52,
        ENOTCONN => 53,
        ENOTDIR => 54,
        ENOTEMPTY => 55,
        ENOTSOCK => 57,
        EOPNOTSUPP => 58,
        ENOTTY => 59,
        EOVERFLOW => 61,
        EPERM => 63,
        EPIPE => 64,
        EPROTONOSUPPORT => 66,
        EPROTOTYPE => 67,
        ERANGE => 68,
        EROFS => 69,
        ESPIPE => 70,
        ETIMEDOUT => 73,
        _ => 29,
    })
}

/// The WASI errno of an `io::Error` (EIO when it carries no OS code).
pub fn from_io(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(IO, from_linux)
}

/// The calling thread's last Linux error, in WASI numbering.
pub fn last() -> Errno {
    from_io(&std::io::Error::last_os_error())
}
