//! What the two fuzzers share: their command line and a small seeded
//! random source, so that a run replays from its seed.

/// `--seconds N` (default 60) and `--seed N` (default: from the clock and
/// the process id); exits 2 with `usage` on anything else.
pub fn options(usage: &str) -> (u64, u64) {
    let mut seconds = 60u64;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut seed = clock.as_nanos() as u64 ^ u64::from(std::process::id());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: {usage} [--seconds N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    (seconds, seed)
}

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

/// The outcomes a fuzz target's inputs reached (a status answered, a
/// refusal, a limit met), each named by the target.
#[derive(Default)]
pub struct Reached(std::collections::BTreeSet<&'static str>);

impl Reached {
    pub fn mark(&mut self, outcome: &'static str) {
        self.0.insert(outcome);
    }

    /// Those of `wanted` not reached.
    pub fn missing(&self, wanted: &[&'static str]) -> Vec<&'static str> {
        wanted
            .iter()
            .copied()
            .filter(|w| !self.0.contains(w))
            .collect()
    }
}
