//! Spreading tenants over several `serve` processes: each runs the tenants
//! that rendezvous hashing gives its index, so every tenant is synced by
//! exactly one replica, and when the count changes only the tenants whose
//! best index changed move (about 1/N of them), not nearly all as with
//! `hash % N`.

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

/// This process's share: index `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most replicas one tenant set may be spread over.
const MAX_COUNT: u32 = 10_000;

impl Shard {
    /// The whole set: one process runs every tenant.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `INDEX/COUNT` (`--shard 0/3`).
    pub fn parse(text: &str) -> anyhow::Result<Shard> {
        let hint = "--shard takes INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3";
        let (i, n) = text.split_once('/').context(hint)?;
        let index: u32 = i.trim().parse().ok().context(hint)?;
        let count: u32 = n.trim().parse().ok().context(hint)?;
        Shard::new(index, count).context(hint)
    }

    fn new(index: u32, count: u32) -> Option<Shard> {
        ((1..=MAX_COUNT).contains(&count) && index < count).then_some(Shard { index, count })
    }

    /// The index a StatefulSet pod's name ends in (`connector-2` → 2), with
    /// `count` replicas.
    pub fn from_pod_name(name: &str, count: u32) -> anyhow::Result<Shard> {
        let hint = || {
            format!(
                "--shards {count} takes this replica's index from its pod name ending in -INDEX (a StatefulSet's), but the name is {:?}: pass --shard INDEX/{count}",
                crate::terminal::escape(&name.chars().take(80).collect::<String>())
            )
        };
        let (_, tail) = name.rsplit_once('-').with_context(hint)?;
        let index: u32 = tail.parse().ok().with_context(hint)?;
        match Shard::new(index, count) {
            Some(s) => Ok(s),
            None if count == 0 || count > MAX_COUNT => {
                bail!("--shards must be between 1 and {MAX_COUNT}")
            }
            None => bail!(
                "this pod is replica {index} but --shards is {count}: raise --shards to the StatefulSet's replicas"
            ),
        }
    }

    /// Whether `tenant` is this process's to run.
    pub fn owns(&self, tenant: &str) -> bool {
        self.count <= 1 || owner(tenant, self.count) == self.index
    }
}

/// The index with the highest score for `tenant`: a stable hash of the
/// tenant and the index (SHA-256, the same on every machine and build).
pub fn owner(tenant: &str, count: u32) -> u32 {
    (0..count)
        .max_by_key(|i| {
            let mut h = Sha256::new();
            h.update(tenant.as_bytes());
            h.update([0]);
            h.update(i.to_be_bytes());
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            (u64::from_be_bytes(first), *i)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn tenants(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tenant-{i}")).collect()
    }

    #[test]
    fn every_tenant_has_exactly_one_owner() {
        for count in 1..6 {
            for t in tenants(500) {
                let owners = (0..count)
                    .filter(|&i| Shard { index: i, count }.owns(&t))
                    .count();
                assert_eq!(owners, 1, "{t} of {count}");
            }
        }
    }

    #[test]
    fn the_shares_are_even_enough() {
        let count = 4;
        let mut per = vec![0usize; count as usize];
        for t in tenants(4000) {
            per[owner(&t, count) as usize] += 1;
        }
        for n in &per {
            assert!((800..1200).contains(n), "{per:?}");
        }
    }

    #[test]
    fn growing_from_4_to_5_moves_only_tenants_to_the_new_replica() {
        let all = tenants(4000);
        let mut moved = 0;
        for t in &all {
            let (before, after) = (owner(t, 4), owner(t, 5));
            if before != after {
                assert_eq!(after, 4, "{t} moved between old replicas");
                moved += 1;
            }
        }
        // About a fifth move, nowhere near all.
        assert!((600..1000).contains(&moved), "{moved} moved");
    }

    #[test]
    fn shard_flags_parse_and_refuse() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::from_pod_name("connector-marketplace-2", 3).unwrap(),
            Shard { index: 2, count: 3 }
        );
        let e = Shard::from_pod_name("connector-marketplace-5", 3).unwrap_err();
        assert!(e.to_string().contains("raise --shards"), "{e}");
        let e = Shard::from_pod_name("laptop", 3).unwrap_err();
        assert!(e.to_string().contains("--shard INDEX/3"), "{e}");
    }
}
