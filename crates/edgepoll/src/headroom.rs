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
//!
//! The margin is checked at each growth, not set aside: what is allocated
//! infallibly between two growths (a round of answers, say) shares it. A
//! refusal that finds not even its own few hundred bytes free closes its
//! connection unanswered instead (`Handler::refuse`).

/// What growth leaves free: two copies of a 64 KiB body (the largest the
/// echo server holds whole; larger ones stream) with room over.
pub(crate) const HEADROOM: usize = 256 * 1024;

/// No memory was free to grow (nothing in the error: a unit returns in a
/// register, where `TryReserveError` would go through memory on every
/// read's path).
#[derive(Debug)]
pub(crate) struct NoMemory;

/// Runs `grow`, a fallible reservation, while [`HEADROOM`] bytes are held
/// aside, so that as much is still free after it; `Err` when the headroom
/// or the growth cannot be had. Out of line: inlined into the read path,
/// it cost the echo server 13 Wasm instructions per request it never took.
#[cold]
#[inline(never)]
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
    use crate::test_alloc::{with_allocations_failing_from, with_memory_budget};

    #[test]
    fn growth_needs_the_headroom_beside_it() {
        let mut table: Vec<u8> = Vec::new();
        // Asserted outside: a failing assert's report allocates.
        let (first, more, free, not_free) = with_memory_budget(HEADROOM + 160 * 1024, || {
            let first = grow(|| table.try_reserve_exact(64 * 1024));
            // 192 KiB would fit, but leave less than the headroom free.
            let more = grow(|| table.try_reserve_exact(192 * 1024));
            (
                first,
                more,
                is_free(HEADROOM),
                is_free(HEADROOM + 128 * 1024),
            )
        });
        assert!(first.is_ok() && more.is_err() && free && !not_free);
        assert!(table.capacity() < 192 * 1024, "grown into the headroom");
        // Headroom there, growth not: refused.
        let large = with_allocations_failing_from(HEADROOM + 1, || {
            grow(|| table.try_reserve_exact(HEADROOM + 1))
        });
        assert!(large.is_err());
        assert!(grow(|| table.try_reserve_exact(HEADROOM + 1)).is_ok());
    }
}
