//! Hash tables in shards that snapshots share.
//!
//! A snapshot is immutable and readers hold it while the next one is built.
//! Keeping its tables in `Arc`'d shards lets the next snapshot start as a
//! copy of the shard pointers and copy only the shards a change touches:
//! one endpoint change copies a few hundred entries, not the zone.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// The hash every sharded table uses for its keys.
pub(crate) fn hash_of<K: Hash + ?Sized>(key: &K) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// About this many entries per shard: copying one is cheap next to the work
/// of a change, and the shard pointers are few next to the entries.
const ENTRIES_PER_SHARD: usize = 512;

/// At most 2^16 shards.
const MAX_BITS: u32 = 16;

/// A hash table of `T` in `2^bits` shards, chosen by hash bits 32 and up
/// (the tables themselves use the low bits for the bucket and the top seven
/// for the control byte, so every bit they read stays random in a shard).
#[derive(Clone, Debug)]
pub(crate) struct Shards<T> {
    bits: u32,
    shards: Vec<Arc<HashTable<T>>>,
    len: usize,
}

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Self::for_entries(0)
    }
}

impl<T> Shards<T> {
    /// An empty table sized for about `entries` entries.
    pub(crate) fn for_entries(entries: usize) -> Self {
        let wanted = entries.div_ceil(ENTRIES_PER_SHARD).max(1);
        let bits = (usize::BITS - (wanted - 1).leading_zeros()).min(MAX_BITS);
        let bits = if wanted == 1 { 0 } else { bits };
        Self {
            bits,
            shards: (0..1usize << bits)
                .map(|_| Arc::new(HashTable::new()))
                .collect(),
            len: 0,
        }
    }

    fn shard(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) & ((1usize << self.bits) - 1)
    }

    /// The entry `eq` accepts among those of hash `hash`.
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        self.shards[self.shard(hash)].find(hash, eq)
    }

    /// How many entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// How many shards (each a separate allocation).
    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

impl<T: Clone> Shards<T> {
    /// The shard of `hash`, copied first if another snapshot shares it.
    fn shard_mut(&mut self, hash: u64) -> &mut HashTable<T> {
        let i = self.shard(hash);
        Arc::make_mut(&mut self.shards[i])
    }

    /// The entry `eq` accepts, to change in place. The shard is copied only
    /// when the entry is there.
    pub(crate) fn find_mut(&mut self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        self.find(hash, &mut eq)?;
        self.shard_mut(hash).find_mut(hash, eq)
    }

    /// Adds `value`, which the table must not hold yet.
    pub(crate) fn insert_unique(&mut self, hash: u64, value: T, hasher: impl Fn(&T) -> u64) {
        self.shard_mut(hash).insert_unique(hash, value, hasher);
        self.len += 1;
    }

    /// Takes out the entry `eq` accepts. The shard is copied only when the
    /// entry is there.
    pub(crate) fn remove(&mut self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<T> {
        self.find(hash, &mut eq)?;
        let value = self.shard_mut(hash).find_entry(hash, eq).ok()?.remove().0;
        self.len -= 1;
        Some(value)
    }

    /// Every entry, taken out (copied from shards another table shares).
    pub(crate) fn into_values(self) -> impl Iterator<Item = T> {
        self.shards
            .into_iter()
            .flat_map(|s| Arc::try_unwrap(s).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Changes every entry in place.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        for shard in &mut self.shards {
            Arc::make_mut(shard).iter_mut().for_each(&mut f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(x: &u64) -> u64 {
        hash_of(x)
    }

    #[test]
    fn sizes_shards_from_the_expected_entries() {
        assert_eq!(Shards::<u64>::for_entries(0).shard_count(), 1);
        assert_eq!(Shards::<u64>::for_entries(512).shard_count(), 1);
        assert_eq!(Shards::<u64>::for_entries(513).shard_count(), 2);
        assert_eq!(Shards::<u64>::for_entries(2_000_000).shard_count(), 4096);
        assert_eq!(
            Shards::<u64>::for_entries(usize::MAX).shard_count(),
            1 << 16
        );
    }

    #[test]
    fn a_copy_shares_what_it_does_not_change() {
        let mut a = Shards::for_entries(100_000);
        for x in 0..100_000u64 {
            a.insert_unique(key(&x), x, key);
        }
        assert_eq!(a.len(), 100_000);
        // Evenly spread: no shard holds more than twice its share.
        let most = a.shards.iter().map(|s| s.len()).max().unwrap_or(0);
        assert!(most < 2 * 100_000 / a.shard_count(), "{most}");
        let mut b = a.clone();
        assert_eq!(b.remove(key(&7), |v| *v == 7), Some(7));
        assert_eq!(b.remove(key(&7), |v| *v == 7), None);
        b.insert_unique(key(&200_000), 200_000, key);
        if let Some(v) = b.find_mut(key(&8), |v| *v == 8) {
            *v = 8;
        }
        let shared = a
            .shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        // 7, 200,000 and 8 touched at most three shards.
        assert!(shared >= a.shard_count() - 3);
        assert!(a.find(key(&7), |v| *v == 7).is_some());
        assert!(b.find(key(&7), |v| *v == 7).is_none());
        assert!(b.find(key(&200_000), |v| *v == 200_000).is_some());
        assert_eq!((a.len(), b.len()), (100_000, 100_000));
        assert_eq!(b.iter().count(), 100_000);
    }
}
