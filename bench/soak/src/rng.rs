//! Deterministic randomness: every request's shape and body follow from the
//! run's seed and the request's number, so a seed replays the same requests.

/// SplitMix64: tiny, fast, and good enough to spread shapes and fill bodies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one item (`salt` names the kind: request, connection…).
    pub fn for_item(seed: u64, salt: u64, n: u64) -> Self {
        let mut r = Rng(seed ^ salt.wrapping_mul(0xA076_1D64_78BD_642F));
        r.0 ^= n.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// Log-uniform in `low..high`: many near `low`, a long tail towards `high`.
    pub fn log_range(&mut self, low: u64, high: u64) -> u64 {
        let (l, h) = ((low as f64).ln(), (high as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(low, high)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// `len` bytes of the stream, all byte values included.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
