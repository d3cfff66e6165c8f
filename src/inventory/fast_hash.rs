//! A fast hasher for maps keyed by names from es.xml and libvirt (the FxHash function rustc
//! uses). std's SipHash resists hash flooding by untrusted input; names in an operator's own
//! es.xml are not that, and hashing 100,000 of them several times over is a measurable share
//! of planning a 10,000-host fleet.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;

/// A map with room for `n` entries.
pub(crate) fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

pub(crate) fn set_with_capacity<T>(n: usize) -> FastSet<T> {
    FastSet::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

/// Rotate, xor, multiply, one machine word at a time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
        // Zero padding alone would make "a" and "a\0" collide.
        self.add(bytes.len() as u64);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// Folds the high bits into the low ones. hashbrown picks a key's bucket from the LOW bits
    /// of the hash, while FxHash's multiply leaves its mixing in the high bits: a low bit of
    /// the product depends only on the bits below it. Names that differ only in a few digits
    /// near their end (`synadm00042vm007`) then crowded into a third of the buckets of a
    /// million-guest table (longer probes, more cache misses). One more multiply spreads them
    /// as well as random keys.
    fn finish(&self) -> u64 {
        let h = self.hash ^ (self.hash >> 29);
        let h = h.wrapping_mul(SEED);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(value: T) -> u64 {
        BuildHasherDefault::<FxHasher>::default().hash_one(value)
    }

    #[test]
    fn names_that_differ_anywhere_hash_apart() {
        let names: Vec<String> = (0..10_000)
            .map(|i| format!("synadm{:05}vm{:03}.example.com", i / 10, i % 10))
            .collect();
        let hashes: FastSet<u64> = names.iter().map(hash).collect();
        assert_eq!(hashes.len(), names.len());
        // A string and its prefix, and strings padded differently, stay apart.
        assert_ne!(hash("abcdefgh"), hash("abcdefgh\0"));
        assert_ne!(hash("a"), hash("a\0"));
        assert_ne!(hash(("ab", "c")), hash(("a", "bc")));
        let map: FastMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        assert_eq!(map[names[1234].as_str()], 1234);
    }

    #[test]
    fn names_that_differ_in_a_few_digits_spread_over_the_low_bits() {
        // hashbrown's bucket is `hash & mask`: 100,000 guest names in a table of 2^17 buckets
        // should start from about as many distinct buckets as random keys would
        // (2^17 · (1 − e^(−100,000 / 2^17)) ≈ 69,950). Without the fold in `finish` they
        // started from 30,379.
        let mask = (1u64 << 17) - 1;
        let buckets: FastSet<u64> = (0..100_000)
            .map(|i| hash(format!("synadm{:05}vm{:03}", i / 10, i % 10)) & mask)
            .collect();
        assert!(buckets.len() > 63_000, "{} distinct buckets", buckets.len());
    }
}
