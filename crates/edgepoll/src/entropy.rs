//! Secret random bytes that do not rest on one `random_get` call.
//!
//! WasmEdge 0.14 answers each `random_get` from a `minstd_rand0` engine
//! seeded anew with one value of `std::random_device`
//! (`Environ::randomGet`): whatever its length, the buffer one call fills
//! is one of fewer than 2^31 sequences. (`tests/tests/conformance.rs`
//! finds the seeds of two 32-byte answers of WasmEdge's by trying them
//! all, and checks that each call has a seed of its own.) ring draws a key
//! exchange's private key (X25519, P-256, P-384) in one call, so under
//! WasmEdge such a key could be found from the public key a handshake
//! shows by trying every seed (an X25519 multiplication each: some fifteen
//! hours of one core), and with it every byte of the connection read. So
//! could a session token or anything else a program draws in one call,
//! and std's hash keys (`RandomState`) are one such draw.
//!
//! [`fill`] hashes the answers of [`DRAWS`] separate calls with SHA-256 for
//! each 32 bytes: about 8 × 31 bits under WasmEdge 0.14 (as long as the
//! host's `random_device`, RDSEED, RDRAND or the kernel's, is sound), the
//! full 256 under a runtime that passes on the system's own source
//! (edgepoll-host, wasmtime, a native build). From 0.15 on, WasmEdge
//! answers every call from one engine per thread, seeded once with 64
//! bits: there nothing drawn holds more than those 64 bits, and the
//! conformance test fails, as a reminder. A block whose draws repeat one
//! another is drawn again, and a source that keeps repeating itself is an
//! error, not a key: a stuck source would otherwise give the same bytes
//! every time. edgepoll's TLS draws its keys and its handshakes' random
//! values from it, its resolver its query ids.
//!
//! ```
//! let mut token = [0u8; 16];
//! edgepoll::entropy::fill(&mut token).unwrap();
//! ```

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Calls of the system's source per 32 bytes of output.
pub const DRAWS: usize = 8;

/// Times a block whose draws repeat one another is drawn again. Under
/// WasmEdge two of eight draws are alike about once in 10^8 blocks; a stuck
/// source is alike every time.
const REDRAWS: usize = 3;

/// Fills `dest` with secret random bytes; an error only when the system's
/// source fails or keeps repeating itself (then `dest` is zeroed).
///
/// ```
/// let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
/// edgepoll::entropy::fill(&mut a).unwrap();
/// edgepoll::entropy::fill(&mut b).unwrap();
/// assert_ne!(a, b);
/// ```
pub fn fill(dest: &mut [u8]) -> std::io::Result<()> {
    fill_from(
        |drawn| getrandom::getrandom(drawn).map_err(|_| Failed),
        dest,
    )
    .map_err(|_| std::io::Error::other("the system's random source failed or repeats itself"))
}

/// The source failed, or repeated itself.
#[derive(Debug, PartialEq)]
struct Failed;

/// [`fill`] from `draw`, one call of the source each time it is called.
fn fill_from(
    mut draw: impl FnMut(&mut [u8]) -> Result<(), Failed>,
    dest: &mut [u8],
) -> Result<(), Failed> {
    let mut drawn = [[0u8; 32]; DRAWS];
    let mut outcome = Ok(());
    for out in dest.chunks_mut(32) {
        outcome = draw_block(&mut draw, &mut drawn);
        if outcome.is_err() {
            break;
        }
        let mut hash = Sha256::new();
        for one in &drawn {
            hash.update(one);
        }
        let mut digest: [u8; 32] = hash.finalize().into();
        out.copy_from_slice(&digest[..out.len()]);
        digest.zeroize();
    }
    drawn.zeroize();
    if outcome.is_err() {
        dest.zeroize();
    }
    outcome
}

/// Fills `drawn` with [`DRAWS`] answers of `draw`, none like another.
fn draw_block(
    draw: &mut impl FnMut(&mut [u8]) -> Result<(), Failed>,
    drawn: &mut [[u8; 32]; DRAWS],
) -> Result<(), Failed> {
    for _ in 0..=REDRAWS {
        for one in drawn.iter_mut() {
            draw(one)?;
        }
        let repeats = (1..DRAWS).any(|i| drawn[..i].contains(&drawn[i]));
        if !repeats {
            return Ok(());
        }
    }
    Err(Failed)
}

/// rustls' source for what else its handshakes draw (the client's random,
/// session ids), from [`fill`] too.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct ForRustls;

#[cfg(feature = "tls")]
impl rustls::crypto::SecureRandom for ForRustls {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        fill(buf).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source as weak as WasmEdge's: every answer is one of a few
    /// sequences (there 2^31), one seed a call, from `seeds` in turn.
    fn weak_source(seeds: &[u8]) -> impl FnMut(&mut [u8]) -> Result<(), Failed> + '_ {
        let mut calls = 0;
        move |out: &mut [u8]| {
            let seed = seeds[calls % seeds.len()];
            calls += 1;
            for (i, b) in out.iter_mut().enumerate() {
                *b = seed.wrapping_mul(31).wrapping_add(i as u8);
            }
            Ok(())
        }
    }

    #[test]
    fn every_32_bytes_take_eight_calls_and_depend_on_each() {
        let mut calls = 0u8;
        let mut out = [0u8; 48];
        let counting = |drawn: &mut [u8]| {
            calls += 1;
            drawn.fill(calls);
            Ok(())
        };
        fill_from(counting, &mut out).expect("filled");
        assert_eq!(
            usize::from(calls),
            2 * DRAWS,
            "48 bytes are two blocks of 32"
        );
        let seeds: Vec<u8> = (1..=DRAWS as u8).collect();
        let mut base = [0u8; 32];
        fill_from(weak_source(&seeds), &mut base).expect("filled");
        // A change in any one call's answer changes the output.
        for changed in 0..DRAWS {
            let mut other = seeds.clone();
            other[changed] = 100;
            let mut out = [0u8; 32];
            fill_from(weak_source(&other), &mut out).expect("filled");
            assert_ne!(out, base, "call {changed} left no mark");
        }
    }

    #[test]
    fn a_block_whose_draws_repeat_is_drawn_again_and_a_stuck_source_fails() {
        // The first block's third and fifth draws are alike: all eight are
        // drawn again, and the second time they differ.
        let seeds: Vec<u8> = [1, 2, 3, 4, 3, 6, 7, 8].into_iter().chain(11..19).collect();
        let mut out = [0u8; 32];
        fill_from(weak_source(&seeds), &mut out).expect("filled");
        let mut again = [0u8; 32];
        fill_from(weak_source(&seeds[DRAWS..]), &mut again).expect("filled");
        assert_eq!(out, again, "the repeating block was not kept");
        let mut stuck = [5u8; 32];
        assert_eq!(fill_from(weak_source(&[9]), &mut stuck), Err(Failed));
        assert_eq!(stuck, [0; 32]);
    }

    #[test]
    fn a_failing_source_fails_the_fill_and_leaves_no_bytes() {
        let mut calls = 0u8;
        let failing = |drawn: &mut [u8]| {
            calls += 1;
            drawn.fill(calls);
            match calls {
                11 => Err(Failed),
                _ => Ok(()),
            }
        };
        let mut out = [5u8; 40];
        assert_eq!(fill_from(failing, &mut out), Err(Failed));
        assert_eq!(out, [0; 40]);
    }

    #[test]
    fn the_system_source_gives_distinct_bytes() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).expect("filled");
        fill(&mut b).expect("filled");
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }
}
