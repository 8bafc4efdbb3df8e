//! What the two byte pipes (bench/native_pipe and, through `#[path]`,
//! bench/wasm_pipe) share: their arguments, and ends stored in pairs.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

/// The address argument `what` (`LISTEN` or `UPSTREAM`) of `program`.
pub fn address(text: Option<String>, what: &str, program: &str) -> io::Result<SocketAddr> {
    text.ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!("usage: {program} LISTEN UPSTREAM (no {what})"),
        )
    })?
    .parse()
    .map_err(|e| io::Error::new(ErrorKind::InvalidInput, format!("{what}: {e}")))
}

/// The end at `index` and its partner, ends being stored in pairs (`index
/// ^ 1` is the partner's): `NotConnected` once either is gone.
pub fn pair<T>(ends: &mut [Option<T>], index: usize) -> io::Result<(&mut T, &mut T)> {
    let base = index & !1;
    let (first, second) = ends[base..base + 2].split_at_mut(1);
    match (first[0].as_mut(), second[0].as_mut()) {
        (Some(a), Some(b)) if index == base => Ok((a, b)),
        (Some(a), Some(b)) => Ok((b, a)),
        _ => Err(ErrorKind::NotConnected.into()),
    }
}
