//! Secret random bytes that do not rest on one `random_get` call (with the
//! cargo feature `tls`, as they are hashed with ring's SHA-256).
//!
//! WasmEdge 0.14.1 answers each `random_get` from a `minstd_rand0` engine
//! seeded with one value of `std::random_device` (`Environ::randomGet`):
//! whatever its length, the buffer one call fills is one of fewer than
//! 2^31 sequences. (Checked: each of three 32-byte answers of WasmEdge's
//! was found again from its seed by trying them all, in 1 to 11 s of one
//! core.) ring draws a key exchange's private key (X25519, P-256, P-384)
//! in one call, so under WasmEdge such a key could be found from the
//! public key a handshake shows by trying every seed (about a day of one
//! core, minutes of many), and with it every byte of the connection read.
//! So could a session token or anything else a program draws in one call,
//! and std's hash keys (`RandomState`) are one such draw.
//!
//! [`fill`] hashes the answers of [`DRAWS`] separate calls with SHA-256 for
//! each 32 bytes: at least 8 × 31 bits under WasmEdge, the full 256 under a
//! runtime that passes on the system's own source (edgepoll-host, wasmtime,
//! a native build). edgepoll's TLS draws its keys and its handshakes'
//! random values from it.
//!
//! ```
//! let mut token = [0u8; 16];
//! edgepoll::entropy::fill(&mut token).unwrap();
//! ```

use ring::digest;
use ring::error::Unspecified;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

/// Calls of the system's source per 32 bytes of output.
pub const DRAWS: usize = 8;

/// Fills `dest` with secret random bytes; an error only when the system's
/// source fails (then `dest` is zeroed).
///
/// ```
/// let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
/// edgepoll::entropy::fill(&mut a).unwrap();
/// edgepoll::entropy::fill(&mut b).unwrap();
/// assert_ne!(a, b);
/// ```
pub fn fill(dest: &mut [u8]) -> std::io::Result<()> {
    let system = SystemRandom::new();
    fill_from(|drawn| system.fill(drawn), dest)
        .map_err(|_| std::io::Error::other("the system's random source failed"))
}

/// [`fill`] from `draw`, one call of the source each time it is called.
fn fill_from(
    mut draw: impl FnMut(&mut [u8]) -> Result<(), Unspecified>,
    dest: &mut [u8],
) -> Result<(), Unspecified> {
    let mut drawn = [0u8; 32];
    let mut outcome = Ok(());
    for out in dest.chunks_mut(32) {
        let mut hash = digest::Context::new(&digest::SHA256);
        for _ in 0..DRAWS {
            outcome = draw(&mut drawn);
            if outcome.is_err() {
                break;
            }
            hash.update(&drawn);
        }
        if outcome.is_err() {
            break;
        }
        out.copy_from_slice(&hash.finish().as_ref()[..out.len()]);
    }
    drawn.zeroize();
    if outcome.is_err() {
        dest.zeroize();
    }
    outcome
}

/// rustls' source for what else its handshakes draw (the client's random,
/// session ids), from [`fill`] too.
#[derive(Debug)]
pub(crate) struct ForRustls;

impl rustls::crypto::SecureRandom for ForRustls {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        fill(buf).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source as weak as WasmEdge's: every answer is one of `seeds`
    /// sequences (here a handful, there 2^31), each call's seed its own.
    fn weak_source(seeds: &[u8]) -> impl FnMut(&mut [u8]) -> Result<(), Unspecified> + '_ {
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
        let mut calls = 0;
        let mut out = [0u8; 48];
        let counting = |drawn: &mut [u8]| {
            calls += 1;
            drawn.fill(7);
            Ok(())
        };
        fill_from(counting, &mut out).expect("filled");
        assert_eq!(calls, 2 * DRAWS, "48 bytes are two blocks of 32");
        // A change in any one call's answer changes the output.
        let base = {
            let mut out = [0u8; 32];
            fill_from(weak_source(&[1; DRAWS]), &mut out).expect("filled");
            out
        };
        for changed in 0..DRAWS {
            let mut seeds = [1u8; DRAWS];
            seeds[changed] = 2;
            let mut out = [0u8; 32];
            fill_from(weak_source(&seeds), &mut out).expect("filled");
            assert_ne!(out, base, "call {changed} left no mark");
        }
    }

    #[test]
    fn a_failing_source_fails_the_fill_and_leaves_no_bytes() {
        let mut calls = 0;
        let failing = |drawn: &mut [u8]| {
            calls += 1;
            drawn.fill(9);
            match calls {
                3 => Err(Unspecified),
                _ => Ok(()),
            }
        };
        let mut out = [5u8; 40];
        assert!(fill_from(failing, &mut out).is_err());
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
