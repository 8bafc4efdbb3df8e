//! The command-line conventions edgepoll's example programs share: the
//! arguments as UTF-8 (one that is not is a mistake to name, where
//! `std::env::args` would panic), `--name=value` as `--name value`, and an
//! option of one value given once (a second is refused, not silently put
//! over the first), and an address to listen on refused, or failing, in
//! one message.

use std::net::SocketAddr;

/// The program's arguments after its name, each as UTF-8.
pub fn utf8() -> Result<Vec<String>, String> {
    std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| format!("not UTF-8: {arg:?}"))
        })
        .collect()
}

/// `--name=value` as the name and its value; any other argument as it is,
/// with none.
///
/// ```
/// use example_args::split_inline;
/// assert_eq!(split_inline("--timeout=5".into()), ("--timeout".into(), Some("5".into())));
/// assert_eq!(split_inline("a=b".into()), ("a=b".into(), None));
/// ```
pub fn split_inline(arg: String) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((name, value)) if name.starts_with("--") => {
            (name.to_string(), Some(value.to_string()))
        }
        _ => (arg, None),
    }
}

/// The options of one value given so far.
///
/// ```
/// let mut given = example_args::Given::default();
/// assert!(given.once("--timeout").is_ok());
/// assert_eq!(given.once("--timeout"), Err("--timeout is given twice".to_string()));
/// ```
#[derive(Debug, Default)]
pub struct Given(Vec<String>);

impl Given {
    /// Notes `name`; a mistake if it was noted before.
    pub fn once(&mut self, name: &str) -> Result<(), String> {
        match self.0.iter().any(|seen| seen == name) {
            true => Err(format!("{name} is given twice")),
            false => {
                self.0.push(name.to_string());
                Ok(())
            }
        }
    }
}

/// `text` as an address to listen on. The refusal names it, and says it
/// came from `$LISTEN` when that is its value (`listen_env`) and no
/// argument gave it, with the forms an address takes; an IPv6 address and
/// port without brackets (`::1:8080`) is told so.
///
/// ```
/// use example_args::listen_addr;
/// assert_eq!(listen_addr("[::1]:8080", None), Ok("[::1]:8080".parse().unwrap()));
/// assert_eq!(
///     listen_addr("::1:8080", Some("::1:8080")).unwrap_err(),
///     "\"::1:8080\" ($LISTEN) is not an address like 127.0.0.1:1234 or [::1]:1234 \
///      (an IPv6 address goes in brackets)"
/// );
/// ```
pub fn listen_addr(text: &str, listen_env: Option<&str>) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        let from = match listen_env == Some(text) {
            true => " ($LISTEN)",
            false => "",
        };
        let hint = match text.contains("::") || text.matches(':').count() > 1 {
            true if !text.starts_with('[') => " (an IPv6 address goes in brackets)",
            _ => "",
        };
        format!("{text:?}{from} is not an address like 127.0.0.1:1234 or [::1]:1234{hint}")
    })
}

/// Why listening on `addr` failed, in words: a port in use said so, and a
/// raw error's number named as WASI's (Rust on WASI says "os error 3" for
/// WASI's EADDRINUSE, which is Linux's ESRCH).
///
/// ```
/// use std::io::{Error, ErrorKind};
/// let addr = "127.0.0.1:8080".parse().unwrap();
/// assert_eq!(
///     example_args::cannot_listen(addr, &Error::from(ErrorKind::AddrInUse)),
///     "cannot listen on 127.0.0.1:8080: the port is already in use"
/// );
/// ```
pub fn cannot_listen(addr: SocketAddr, error: &std::io::Error) -> String {
    let why = match (error.kind(), error.raw_os_error()) {
        (std::io::ErrorKind::AddrInUse, _) => "the port is already in use".to_string(),
        (kind, Some(errno)) if cfg!(target_os = "wasi") => format!("{kind} (WASI errno {errno})"),
        _ => error.to_string(),
    };
    format!("cannot listen on {addr}: {why}")
}
