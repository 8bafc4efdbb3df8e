//! Memory kept free when a peer makes the server grow: what a peer sends
//! decides how large its buffers get and how many connections are held, so
//! that growth is fallible (the peer refused, not the process aborted), and
//! it succeeds only where [`HEADROOM`] more is free beside it.
//!
//! Why the margin: the loop and the service allocate infallibly (a
//! response's head and body, a log line, a new connection's state), and
//! growth that took memory to its last byte made the next of those abort
//! the process with every connection. With 200 connections each holding
//! most of a 60 KB body under an 8 MiB limit, six runs in eight on a busy
//! machine aborted so: the buffers grew in turns, and an echo's 272-byte
//! head, or a refusal's, found nothing left. Growth is a doubling, a new
//! connection's first read or a table's doubling, so the block taken and
//! given back for it is rare next to the reads.

/// What growth leaves free: two echoes of the largest body held whole
/// (64 KiB: larger ones stream) with room over.
pub(crate) const HEADROOM: usize = 256 * 1024;

/// No memory was free to grow (nothing in the error: a unit returns in a
/// register, where `TryReserveError` would go through memory on every
/// read's path).
#[derive(Debug)]
pub(crate) struct NoMemory;

/// Runs `grow`, a fallible reservation, while [`HEADROOM`] bytes are held
/// aside, so that as much is still free after it; `Err` when the headroom
/// or the growth cannot be had.
#[inline]
pub(crate) fn grow<E>(grow: impl FnOnce() -> Result<(), E>) -> Result<(), NoMemory> {
    let aside = taken(HEADROOM).ok_or(NoMemory)?;
    let grown = grow().map_err(|_| NoMemory);
    drop(aside);
    grown
}

/// Whether `bytes` could be allocated now (tried, and given back).
pub(crate) fn is_free(bytes: usize) -> bool {
    taken(bytes).is_some()
}

/// A block of `bytes`, if memory is free for it. Behind `black_box`: an
/// allocation never used is one the compiler may remove, and assume had
/// succeeded (it did so in the WebAssembly build, where the memory ran out
/// with every probe passed).
fn taken(bytes: usize) -> Option<Vec<u8>> {
    let mut block = Vec::new();
    block.try_reserve_exact(bytes).ok()?;
    Some(std::hint::black_box(block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_alloc::with_allocations_failing_from;

    #[test]
    fn growth_needs_the_headroom_beside_it() {
        let mut table: Vec<u64> = Vec::new();
        assert!(grow(|| table.try_reserve(8)).is_ok());
        assert!(table.capacity() >= 8);
        // Growth that would itself fit, with no headroom to spare: refused.
        let small = with_allocations_failing_from(HEADROOM, || grow(|| table.try_reserve(64)));
        assert!(small.is_err());
        assert!(table.capacity() < 64, "grown without headroom");
        // Headroom there, growth not: refused.
        let large =
            with_allocations_failing_from(HEADROOM + 1, || grow(|| table.try_reserve(HEADROOM)));
        assert!(large.is_err());
        assert!(is_free(4096));
        assert!(!with_allocations_failing_from(4096, || is_free(4096)));
    }
}
