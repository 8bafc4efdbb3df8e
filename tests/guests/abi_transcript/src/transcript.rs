//! The transcript: one line per host call, in a form that is the same on every
//! runtime that behaves the same.
//!
//! Descriptors the runtime hands out are random on WasmEdge, and ports are
//! ephemeral, so both are printed by name: `fd3` is the third descriptor this
//! program received, `p2` the port it learned second from its own sockets.
//! A port value that is a known port with its bytes swapped prints as
//! `swap(p2)`, so a runtime that forgets (or adds) a byte swap shows up.
//! Values the program made up itself (a descriptor of -1, say) print as they
//! are.

use std::io::Write;

/// WASI errno names (0–76), then WasmEdge's `getaddrinfo` errors (77–87).
const ERRNO_NAMES: [&str; 88] = [
    "ok",
    "E2BIG",
    "EACCES",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "EAFNOSUPPORT",
    "EAGAIN",
    "EALREADY",
    "EBADF",
    "EBADMSG",
    "EBUSY",
    "ECANCELED",
    "ECHILD",
    "ECONNABORTED",
    "ECONNREFUSED",
    "ECONNRESET",
    "EDEADLK",
    "EDESTADDRREQ",
    "EDOM",
    "EDQUOT",
    "EEXIST",
    "EFAULT",
    "EFBIG",
    "EHOSTUNREACH",
    "EIDRM",
    "EILSEQ",
    "EINPROGRESS",
    "EINTR",
    "EINVAL",
    "EIO",
    "EISCONN",
    "EISDIR",
    "ELOOP",
    "EMFILE",
    "EMLINK",
    "EMSGSIZE",
    "EMULTIHOP",
    "ENAMETOOLONG",
    "ENETDOWN",
    "ENETRESET",
    "ENETUNREACH",
    "ENFILE",
    "ENOBUFS",
    "ENODEV",
    "ENOENT",
    "ENOEXEC",
    "ENOLCK",
    "ENOLINK",
    "ENOMEM",
    "ENOMSG",
    "ENOPROTOOPT",
    "ENOSPC",
    "ENOSYS",
    "ENOTCONN",
    "ENOTDIR",
    "ENOTEMPTY",
    "ENOTRECOVERABLE",
    "ENOTSOCK",
    "ENOTSUP",
    "ENOTTY",
    "ENXIO",
    "EOVERFLOW",
    "EOWNERDEAD",
    "EPERM",
    "EPIPE",
    "EPROTO",
    "EPROTONOSUPPORT",
    "EPROTOTYPE",
    "ERANGE",
    "EROFS",
    "ESPIPE",
    "ESRCH",
    "ESTALE",
    "ETIMEDOUT",
    "ETXTBSY",
    "EXDEV",
    "ENOTCAPABLE",
    "EAI_ADDRFAMILY",
    "EAI_AGAIN",
    "EAI_BADFLAGS",
    "EAI_FAIL",
    "EAI_FAMILY",
    "EAI_MEMORY",
    "EAI_NODATA",
    "EAI_NONAME",
    "EAI_SERVICE",
    "EAI_SOCKTYPE",
    "EAI_SYSTEM",
];

/// The name of a WASI errno as the transcript prints it.
pub fn errno_name(errno: u32) -> String {
    match ERRNO_NAMES.get(errno as usize) {
        Some(name) => name.to_string(),
        None => format!("errno{errno}"),
    }
}

/// Exit status of a run that learned a port it cannot print unambiguously
/// (EX_TEMPFAIL: run it again).
pub const AMBIGUOUS_PORT: i32 = 75;

/// Records calls and prints them as they happen (so a trap loses nothing).
#[derive(Default)]
pub struct Transcript {
    calls: u32,
    fds: Vec<u32>,
    ports: Vec<u16>,
}

impl Transcript {
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// How many calls were recorded.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// A heading; not a call.
    pub fn section(&mut self, title: &str) {
        self.print(&format!("# {title}"));
    }

    /// A line about the program's own reasoning; not a call.
    pub fn note(&mut self, text: &str) {
        self.print(&format!("  {text}"));
    }

    /// One call: what was called, what it returned, and its out-values.
    pub fn log(&mut self, call: &str, errno: u32, outs: &str) {
        self.calls += 1;
        let line = if outs.is_empty() {
            format!("{:03} {call} -> {}", self.calls, errno_name(errno))
        } else {
            format!("{:03} {call} -> {} {outs}", self.calls, errno_name(errno))
        };
        self.print(&line);
    }

    fn print(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Names a descriptor the runtime just handed out.
    pub fn adopt(&mut self, raw: u32) -> String {
        if !self.fds.contains(&raw) {
            self.fds.push(raw);
        }
        self.fd(raw)
    }

    /// A descriptor as printed: its name if the runtime handed it out.
    pub fn fd(&self, raw: u32) -> String {
        match self.fds.iter().position(|&fd| fd == raw) {
            Some(i) => format!("fd{}", i + 1),
            None => format!("{}", raw as i32),
        }
    }

    /// Remembers a port of one of the program's own sockets. Each learning
    /// gets a new name, even for a value seen before: the kernel hands a
    /// closed socket's port out again, and names must follow the calls made,
    /// not the numbers the kernel picked.
    ///
    /// A port whose two bytes are equal (one in 256) reads the same
    /// byte-swapped, and one may be another's swap, so the transcript could
    /// not tell whether a runtime swaps it: the program then ends with
    /// [`AMBIGUOUS_PORT`] and the test runs it again, on other ports.
    pub fn learn_port(&mut self, port: u16) {
        let swapped = port.swap_bytes();
        if port != 0 && (swapped == port || self.ports.contains(&swapped)) {
            println!("ephemeral port {port} reads the same byte-swapped; run again");
            std::process::exit(AMBIGUOUS_PORT);
        }
        if port != 0 {
            self.ports.push(port);
        }
    }

    /// A port as printed: `pN` for a known one (the latest learned with that
    /// value), `swap(pN)` byte-swapped.
    pub fn port(&self, value: u32) -> String {
        let as_port = |v: u32| self.ports.iter().rposition(|&p| u32::from(p) == v);
        if let Some(i) = as_port(value) {
            format!("p{}", i + 1)
        } else if let Some(i) = as_port(u32::from((value as u16).swap_bytes())) {
            if value <= 0xffff {
                format!("swap(p{})", i + 1)
            } else {
                format!("{value:#x}")
            }
        } else {
            format!("{value}")
        }
    }
}
