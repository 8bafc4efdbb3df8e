//! What the two fuzzers share: a small seeded random source, so that a run
//! replays from its seed.

/// xorshift64: fast, and a run replays from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero would stall xorshift).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}
