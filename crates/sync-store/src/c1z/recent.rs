//! A bounded map of the records written last. Grants embed their
//! entitlement's id and resource, and entitlements their whole resource; the driver sends an
//! entitlement soon after its resource and a resource's grants together, so
//! the last few thousand records answer nearly every lookup, and the
//! database answers the rest. Nothing grows with the tenant.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Keys and values, forgetting the oldest insertion beyond `cap` entries.
pub(super) struct Recent<V> {
    map: HashMap<String, V, BuildHasherDefault<IdHasher>>,
    order: VecDeque<String>,
    cap: usize,
}

impl<V> Recent<V> {
    /// A map of at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Recent<V> {
        let cap = cap.max(1);
        Recent {
            map: HashMap::with_capacity_and_hasher(cap.min(1 << 16), Default::default()),
            order: VecDeque::with_capacity(cap.min(1 << 16)),
            cap,
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    /// Sets `key`; a new key may push out the oldest one.
    pub fn insert(&mut self, key: &str, value: V) {
        if let Some(v) = self.map.get_mut(key) {
            *v = value;
            return;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(key.to_string());
        self.map.insert(key.to_string(), value);
    }
}

/// A fast hash for the cache's keys (the ids of our own sync, looked up
/// once a grant: SipHash's flooding resistance buys nothing here). The
/// multiply-rotate mix of rustc's FxHash, eight bytes at a time.
#[derive(Default)]
pub(super) struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entries_go_first() {
        let mut r = Recent::new(2);
        r.insert("a", 1);
        r.insert("b", 2);
        r.insert("a", 10);
        assert_eq!(r.get("a"), Some(&10));
        r.insert("c", 3);
        assert_eq!(r.get("a"), None);
        assert_eq!((r.get("b"), r.get("c")), (Some(&2), Some(&3)));
        assert_eq!(r.map.len(), 2);
        assert_eq!(r.order.len(), 2);
    }
}
