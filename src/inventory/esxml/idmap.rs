//! Hash maps keyed by es.xml ids. A file with 100,000 guests resolves over a million id
//! references; the std SipHash guards against hostile keys berth does not face here (the file
//! is the operator's own), so a multiply-rotate hash in the style of rustc's FxHasher is used.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(super) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An empty map with room for `capacity` ids.
pub(super) fn id_map<K, V>(capacity: usize) -> IdMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for IdHasher {
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

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::Hash;

    use super::*;

    #[test]
    fn similar_ids_hash_apart_and_lookups_work() {
        let hash = |s: &str| {
            let mut h = IdHasher::default();
            s.hash(&mut h);
            h.finish()
        };
        assert_ne!(hash("exa01adm01vm01_id"), hash("exa01adm01vm02_id"));
        assert_ne!(hash("a"), hash("a\0"));
        let mut map = id_map(4);
        for i in 0..1000 {
            map.insert(format!("synadm{i:05}_id"), i);
        }
        assert!((0..1000).all(|i| map[&format!("synadm{i:05}_id")] == i));
    }
}
