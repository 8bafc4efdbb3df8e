//! What the two byte pipes (bench/native_pipe and, through `#[path]`,
//! bench/wasm_pipe) share: their arguments, ends stored in pairs, and how
//! bytes go out.

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

/// Sends what `unsent` holds, then `more`, as far as `send` takes them
/// (`WouldBlock`: no further now); what is left waits in `unsent`. Bytes
/// that go at once are sent from `more` as they are, not copied first.
/// True once nothing is left.
pub fn send_through(
    unsent: &mut Vec<u8>,
    mut more: &[u8],
    mut send: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<bool> {
    while !unsent.is_empty() || !more.is_empty() {
        let (bytes, held) = match unsent.is_empty() {
            true => (more, false),
            false => (&unsent[..], true),
        };
        match send(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) if held => drop(unsent.drain(..n)),
            Ok(n) => more = &more[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                unsent.extend_from_slice(more);
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
