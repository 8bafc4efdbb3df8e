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
    r5: [u64; 5],
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
        self.r5.zeroize();
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

/// The arithmetic of a limb: one u64, or in WebAssembly with SIMD two in
/// the lanes of a register, so that one multiply serves both paths.
trait Limb: Copy {
    fn add(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    /// The low 26 bits.
    fn low(self) -> Self;
    /// The bits above the low 26.
    fn high(self) -> Self;
    fn times5(self) -> Self;
}

impl Limb for u64 {
    #[inline(always)]
    fn add(self, other: u64) -> u64 {
        self + other
    }
    #[inline(always)]
    fn mul(self, other: u64) -> u64 {
        self * other
    }
    #[inline(always)]
    fn low(self) -> u64 {
        self & LIMB
    }
    #[inline(always)]
    fn high(self) -> u64 {
        self >> 26
    }
    #[inline(always)]
    fn times5(self) -> u64 {
        self * 5
    }
}

/// h · r mod 2^130 - 5, partly reduced: limbs below 2^26, but h1 may keep
/// a bit more. `r5` is 5r (2^130 ≡ 5 mod p: the limbs past the top fold
/// back times 5). Limbs of h below 2^28 and of r below 2^26 (5r below
/// 2^29): five such products sum to less than 2^60.
#[inline(always)]
fn multiply<L: Limb>(h: [L; 5], r: &[L; 5], r5: &[L; 5]) -> [L; 5] {
    // d_k = Σ h_i · r_(k-i), with r5 where k-i goes below zero.
    let d = core::array::from_fn(|k| {
        (1..5).fold(h[0].mul(r[k]), |sum, i| {
            let factor = if i <= k { r[k - i] } else { r5[k + 5 - i] };
            sum.add(h[i].mul(factor))
        })
    });
    carry(d)
}

/// Carries limbs (each below 2^60) back to 26 bits, the top's excess
/// folded into the bottom times 5; h1 may keep a bit more.
#[inline(always)]
fn carry<L: Limb>([d0, d1, d2, d3, d4]: [L; 5]) -> [L; 5] {
    let d1 = d1.add(d0.high());
    let d2 = d2.add(d1.high());
    let d3 = d3.add(d2.high());
    let d4 = d4.add(d3.high());
    let h0 = d0.low().add(d4.high().times5());
    [
        h0.low(),
        d1.low().add(h0.high()),
        d2.low(),
        d3.low(),
        d4.low(),
    ]
}

fn times5(r: [u64; 5]) -> [u64; 5] {
    r.map(Limb::times5)
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
        let r5 = times5(r);
        Poly1305 {
            r,
            r5,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            r2: multiply(r, &r, &r5),
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
                self.h = simd::blocks_by_two(self.h, &self.r, &self.r5, &self.r2, &data[..pairs]);
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
            h = multiply(h, &self.r, &self.r5);
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
    use super::{carry, multiply, times5, Limb, LIMB};
    use core::arch::wasm32::*;

    impl Limb for v128 {
        #[inline(always)]
        fn add(self, other: v128) -> v128 {
            u64x2_add(self, other)
        }
        #[inline(always)]
        fn mul(self, other: v128) -> v128 {
            u64x2_mul(self, other)
        }
        #[inline(always)]
        fn low(self) -> v128 {
            v128_and(self, u64x2_splat(LIMB))
        }
        #[inline(always)]
        fn high(self) -> v128 {
            u64x2_shr(self, 26)
        }
        #[inline(always)]
        fn times5(self) -> v128 {
            u64x2_add(u64x2_shl(self, 2), self)
        }
    }

    #[inline(always)]
    fn word(data: &[u8], at: usize) -> u64 {
        u64::from(super::le32(&data[at..]))
    }

    /// The two blocks of `pair` (32 bytes) as lanes of five limbs.
    #[inline(always)]
    fn limbs(pair: &[u8]) -> [v128; 5] {
        let both =
            |at: usize, shift: u32| u64x2(word(pair, at) >> shift, word(pair, 16 + at) >> shift);
        [
            both(0, 0).low(),
            both(3, 2).low(),
            both(6, 4).low(),
            both(9, 6).low(),
            v128_or(both(12, 8), u64x2_splat(super::FULL_BLOCK)),
        ]
    }

    /// Adds `data` (whole pairs of blocks, at least one pair) to `h`; `r5`
    /// is 5r and `r2` r².
    pub(super) fn blocks_by_two(
        h: [u64; 5],
        r: &[u64; 5],
        r5: &[u64; 5],
        r2: &[u64; 5],
        data: &[u8],
    ) -> [u64; 5] {
        debug_assert!(data.len() >= 32 && data.len().is_multiple_of(32));
        let r2_5 = times5(*r2);
        let both = |a: &[u64; 5], b: &[u64; 5]| -> [v128; 5] {
            core::array::from_fn(|i| u64x2(a[i], b[i]))
        };
        let (squared, squared_5) = (both(r2, r2), both(&r2_5, &r2_5));
        let (last, last_5) = (both(r2, r), both(&r2_5, r5));
        let mut acc: [v128; 5] = core::array::from_fn(|i| u64x2(h[i], 0));
        let (body, final_pair) = data.split_at(data.len() - 32);
        for pair in body.chunks_exact(32) {
            let m = limbs(pair);
            acc = multiply(
                core::array::from_fn(|i| acc[i].add(m[i])),
                &squared,
                &squared_5,
            );
        }
        let m = limbs(final_pair);
        acc = multiply(core::array::from_fn(|i| acc[i].add(m[i])), &last, &last_5);
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

    /// RFC 8439 Appendix A.3, vectors 5 to 11: the final reduction's edge
    /// cases (h at or past p, h + s wrapping, 131-bit intermediate and
    /// final results), which pseudo-random inputs all but never reach.
    #[test]
    fn rfc8439_a_3_reduction_edge_cases() {
        let r2 = format!("02{}", "00".repeat(31));
        let r1 = format!("01{}", "00".repeat(31));
        let r_wide = format!("0100000000000000 0400000000000000{}", "00".repeat(16));
        let wide = "E33594D7505E43B9 0000000000000000 3394D7505E4379CD 0100000000000000 \
                    00000000000000000000000000000000";
        let cases = [
            // #5: h + s wraps past 2^128.
            (
                r2.clone(),
                "FF".repeat(16),
                format!("03{}", "00".repeat(15)),
            ),
            // #6: s of all ones.
            (
                format!("02{}{}", "00".repeat(15), "FF".repeat(16)),
                format!("02{}", "00".repeat(15)),
                format!("03{}", "00".repeat(15)),
            ),
            // #7: h reaches p exactly, and more.
            (
                r1.clone(),
                format!(
                    "{}F0{}11{}",
                    "FF".repeat(16),
                    "FF".repeat(15),
                    "00".repeat(15)
                ),
                format!("05{}", "00".repeat(15)),
            ),
            // #8: h is p: the tag is zero.
            (
                r1,
                format!(
                    "{}FB{}{}",
                    "FF".repeat(16),
                    "FE".repeat(15),
                    "01".repeat(16)
                ),
                "00".repeat(16),
            ),
            // #9: h is 2^130 - 6, one under p.
            (
                r2,
                format!("FD{}", "FF".repeat(15)),
                format!("FA{}", "FF".repeat(15)),
            ),
            // #10: a 131-bit intermediate result.
            (
                r_wide.clone(),
                format!("{wide}01{}", "00".repeat(15)),
                "1400000000000000 5500000000000000".to_string(),
            ),
            // #11: a 131-bit final result.
            (r_wide, wide.to_string(), format!("13{}", "00".repeat(15))),
        ];
        for (i, (key, message, tag)) in cases.iter().enumerate() {
            let (key, message, tag) = (hex(key), hex(message), hex(tag));
            assert_eq!(mac(&key, &message), tag, "vector {}", i + 5);
            assert_eq!(
                reference(&key, &message),
                tag,
                "vector {} by the reference",
                i + 5
            );
        }
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
