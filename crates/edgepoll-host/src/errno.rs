//! WASI errno values, the mapping from Linux errors, and the rare host-function
//! failure that ends the guest instead of returning an errno.

/// A WASI errno (never 0 as an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u16);

pub const BADF: Errno = Errno(8);
pub const EXIST: Errno = Errno(20);
pub const FAULT: Errno = Errno(21);
pub const INVAL: Errno = Errno(28);
pub const IO: Errno = Errno(29);
pub const ISDIR: Errno = Errno(31);
pub const MFILE: Errno = Errno(33);
pub const NAMETOOLONG: Errno = Errno(37);
pub const NOENT: Errno = Errno(44);
pub const NOMEM: Errno = Errno(48);
pub const NOSYS: Errno = Errno(52);
pub const NOTDIR: Errno = Errno(54);
pub const NOTSOCK: Errno = Errno(57);
pub const PERM: Errno = Errno(63);
pub const PIPE: Errno = Errno(64);
pub const NOTCAPABLE: Errno = Errno(76);
/// WasmEdge's `getaddrinfo` errors follow the WASI ones.
pub const AI_FAMILY: Errno = Errno(81);
pub const AI_MEMORY: Errno = Errno(82);
pub const AI_NONAME: Errno = Errno(84);
pub const AI_BADFLAG: Errno = Errno(79);

/// Result of a host function body: `Ok` becomes errno 0.
pub type WasiResult = Result<(), Errno>;

/// The status a host function returns to the guest.
pub fn status(result: WasiResult) -> i32 {
    match result {
        Ok(()) => 0,
        Err(Errno(e)) => e as i32,
    }
}

/// A host function that fails as a function, not with an errno: the guest
/// traps. WasmEdge 0.14 does this in a few places (see where it is raised).
#[derive(Debug)]
pub struct Trap(pub Errno);

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host function failed with errno {}", self.0 .0)
    }
}

impl std::error::Error for Trap {}

/// A host function that fails as a function and says why (the guest
/// traps): where WasmEdge's fails with no errno to tell.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Translates a Linux errno into WASI numbering (every errno WASI names).
pub fn from_linux(errno: i32) -> Errno {
    use libc::*;
    Errno(match errno {
        0 => 0,
        E2BIG => 1,
        EACCES => 2,
        EADDRINUSE => 3,
        EADDRNOTAVAIL => 4,
        EAFNOSUPPORT => 5,
        EAGAIN => 6,
        EALREADY => 7,
        EBADF => 8,
        EBADMSG => 9,
        EBUSY => 10,
        ECANCELED => 11,
        ECHILD => 12,
        ECONNABORTED => 13,
        ECONNREFUSED => 14,
        ECONNRESET => 15,
        EDEADLK => 16,
        EDESTADDRREQ => 17,
        EDOM => 18,
        EDQUOT => 19,
        EEXIST => 20,
        EFAULT => 21,
        EFBIG => 22,
        EHOSTUNREACH => 23,
        EIDRM => 24,
        EILSEQ => 25,
        EINPROGRESS => 26,
        EINTR => 27,
        EINVAL => 28,
        EIO => 29,
        EISCONN => 30,
        EISDIR => 31,
        ELOOP => 32,
        EMFILE => 33,
        EMLINK => 34,
        EMSGSIZE => 35,
        EMULTIHOP => 36,
        ENAMETOOLONG => 37,
        ENETDOWN => 38,
        ENETRESET => 39,
        ENETUNREACH => 40,
        ENFILE => 41,
        ENOBUFS => 42,
        ENODEV => 43,
        ENOENT => 44,
        ENOEXEC => 45,
        ENOLCK => 46,
        ENOLINK => 47,
        ENOMEM => 48,
        ENOMSG => 49,
        ENOPROTOOPT => 50,
        ENOSPC => 51,
        ENOSYS => 52,
        ENOTCONN => 53,
        ENOTDIR => 54,
        ENOTEMPTY => 55,
        ENOTRECOVERABLE => 56,
        ENOTSOCK => 57,
        EOPNOTSUPP => 58,
        ENOTTY => 59,
        ENXIO => 60,
        EOVERFLOW => 61,
        EOWNERDEAD => 62,
        EPERM => 63,
        EPIPE => 64,
        EPROTO => 65,
        EPROTONOSUPPORT => 66,
        EPROTOTYPE => 67,
        ERANGE => 68,
        EROFS => 69,
        ESPIPE => 70,
        ESRCH => 71,
        ESTALE => 72,
        ETIMEDOUT => 73,
        ETXTBSY => 74,
        EXDEV => 75,
        _ => 29,
    })
}

/// Translates a `getaddrinfo` error (glibc's `EAI_*`, negative) into
/// WasmEdge's numbering, which lists them from 77.
pub fn from_eai(code: i32) -> Errno {
    Errno(match code {
        -9 => 77,  // EAI_ADDRFAMILY
        -3 => 78,  // EAI_AGAIN
        -1 => 79,  // EAI_BADFLAGS
        -4 => 80,  // EAI_FAIL
        -6 => 81,  // EAI_FAMILY
        -10 => 82, // EAI_MEMORY
        -5 => 83,  // EAI_NODATA
        -2 => 84,  // EAI_NONAME
        -8 => 85,  // EAI_SERVICE
        -7 => 86,  // EAI_SOCKTYPE
        -11 => 87, // EAI_SYSTEM
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

/// Checks a libc return value: negative means failure with `errno` set.
pub fn check(r: impl Into<i64>) -> WasiResult {
    if r.into() < 0 {
        Err(last())
    } else {
        Ok(())
    }
}
