//! Random-number streams. Replicate `r` of a run with seed `s` always uses the
//! ChaCha8 stream `(key = s, stream = r)`, so its draws do not depend on which
//! thread or shard runs it, nor on how many replicates ran before it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator used throughout crtsim.
pub type TrialRng = ChaCha8Rng;

/// The independent stream for replicate `rep` of a run seeded with `seed`.
pub fn replicate_rng(seed: u64, rep: u64) -> TrialRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(rep);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let mut r1 = replicate_rng(7, 3);
        let mut r2 = replicate_rng(7, 3);
        let mut r3 = replicate_rng(7, 4);
        let mut r4 = replicate_rng(8, 3);
        let x1: u64 = r1.random();
        assert_eq!(x1, r2.random::<u64>());
        assert_ne!(x1, r3.random::<u64>());
        assert_ne!(x1, r4.random::<u64>());
    }
}
