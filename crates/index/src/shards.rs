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

/// Reads `value` for its cache line's sake. A load whose result nothing
/// uses would be removed; this one stays, and loads that do not depend on
/// each other wait for memory together.
pub(crate) fn touch<T: Copy>(value: T) {
    std::hint::black_box(value);
}

/// The hash every sharded table uses for its keys.
pub(crate) fn hash_of<K: Hash + ?Sized>(key: &K) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// Takes position `i` (of hash `hash`) out of `positions`, a table of
/// positions in a vector whose entry `i` is being swap-removed: the last
/// entry (at `last`, of hash `last_hash`) takes its place.
pub(crate) fn swap_remove_position(
    positions: &mut HashTable<u32>,
    hash: u64,
    i: usize,
    last: usize,
    last_hash: u64,
) {
    if let Ok(slot) = positions.find_entry(hash, |&j| j as usize == i) {
        slot.remove();
    }
    if i != last
        && let Some(slot) = positions.find_mut(last_hash, |&j| j as usize == last)
    {
        *slot = u32::try_from(i).unwrap_or(u32::MAX);
    }
}

/// About this many entries per shard: a change copies the shards of the
/// names it touches (a service's names hash to as many shards), so they
/// are small; the shard pointers are still few next to the entries.
const ENTRIES_PER_SHARD: usize = 64;

/// At most 2^16 shards.
const MAX_BITS: u32 = 16;

/// Shards are grouped in pages of 2^6: a copy of the table copies the page
/// pointers, and a change copies the pages of the shards it changes (the
/// pointers of one page): about `2 * sqrt(shards * touched)` pointers,
/// where one flat array would be all of them. Each pointer copied is a
/// reference count touched in another cache line.
const PAGE_BITS: u32 = 6;

type Page<S> = Arc<Vec<Arc<S>>>;

/// A table of shards `S` (`2^bits` of them), chosen by hash bits 32 and up
/// (the tables themselves use the low bits for the bucket and the top seven
/// for the control byte, so every bit they read stays random in a shard).
#[derive(Clone, Debug)]
pub(crate) struct Shards<S> {
    bits: u32,
    pages: Vec<Page<S>>,
    len: usize,
}

impl<S: Clone + Default> Default for Shards<S> {
    fn default() -> Self {
        Self::for_entries(0)
    }
}

/// A shard is a hash table (`HashTable<T>`), or a table with data its
/// entries share (the names of the name table).
impl<S: Clone + Default> Shards<S> {
    /// An empty table sized for about `entries` entries.
    pub(crate) fn for_entries(entries: usize) -> Self {
        let wanted = entries.div_ceil(ENTRIES_PER_SHARD).max(1);
        let bits = (usize::BITS - (wanted - 1).leading_zeros()).min(MAX_BITS);
        Self::with_bits(if wanted == 1 { 0 } else { bits })
    }

    fn with_bits(bits: u32) -> Self {
        let per_page = 1usize << bits.min(PAGE_BITS);
        // Shards grow to what they get: made at the expected size, every
        // one would have the room of the fullest (the sizes of hash tables
        // go by powers of two, and half the shards get more than the mean).
        let page = || Arc::new((0..per_page).map(|_| Arc::new(S::default())).collect());
        Self {
            bits,
            pages: (0..(1usize << bits) / per_page).map(|_| page()).collect(),
            len: 0,
        }
    }

    /// The page and the place in it of the shard of `hash`.
    fn locate(&self, hash: u64) -> (usize, usize) {
        let i = ((hash >> 32) as usize) & ((1usize << self.bits) - 1);
        (i >> PAGE_BITS, i & ((1 << PAGE_BITS) - 1))
    }

    /// The shard of `hash`.
    pub(crate) fn shard(&self, hash: u64) -> &S {
        let (page, slot) = self.locate(hash);
        &self.pages[page][slot]
    }

    /// Brings into the cache what finding each of `hashes` reads, for
    /// many at once, in rounds over all of them: the pages, the shard
    /// pointers, the shards' headers (`head` reads them), then `last` on
    /// each shard (to read its table). The loads of one round do not
    /// depend on each other, so their misses overlap, where one lookup
    /// after another waits for each in turn. A batch of queries is warmed
    /// this way before it is answered.
    pub(crate) fn warm(&self, hashes: &[u64], head: impl Fn(&S), mut last: impl FnMut(&S, u64)) {
        for &h in hashes {
            let (page, _) = self.locate(h);
            touch(self.pages[page].len());
        }
        for &h in hashes {
            let (page, slot) = self.locate(h);
            touch(Arc::as_ptr(&self.pages[page][slot]));
        }
        for &h in hashes {
            head(self.shard(h));
        }
        for &h in hashes {
            last(self.shard(h), h);
        }
    }

    /// The shard of `hash`, copied first if another snapshot shares it.
    pub(crate) fn shard_mut(&mut self, hash: u64) -> &mut S {
        let (page, slot) = self.locate(hash);
        Arc::make_mut(&mut Arc::make_mut(&mut self.pages[page])[slot])
    }

    /// The shard of `hash` to change, when `wanted` accepts it as it is (it
    /// holds the entry to change): a shared shard is copied only then. A
    /// shard no other table shares (a full build, or one copied already)
    /// is changed in place without asking.
    pub(crate) fn shard_mut_if(
        &mut self,
        hash: u64,
        wanted: impl FnOnce(&S) -> bool,
    ) -> Option<&mut S> {
        let (page, slot) = self.locate(hash);
        let unique = Arc::get_mut(&mut self.pages[page])
            .is_some_and(|p| Arc::get_mut(&mut p[slot]).is_some());
        if !unique && !wanted(&self.pages[page][slot]) {
            return None;
        }
        Some(self.shard_mut(hash))
    }

    /// How many entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Counts entries added (`added`) and taken out (`removed`) through
    /// [`Self::shard_mut`].
    pub(crate) fn count(&mut self, added: usize, removed: usize) {
        self.len = (self.len + added).saturating_sub(removed);
    }

    /// Every shard.
    pub(crate) fn shards(&self) -> impl Iterator<Item = &S> {
        self.pages.iter().flat_map(|p| p.iter()).map(|s| &**s)
    }

    /// Every shard, taken out (copied where another table shares it).
    pub(crate) fn into_shards(self) -> impl Iterator<Item = S> {
        self.pages
            .into_iter()
            .flat_map(|p| Arc::try_unwrap(p).unwrap_or_else(|shared| (*shared).clone()))
            .map(|s| Arc::try_unwrap(s).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Changes every shard in place.
    pub(crate) fn for_each_shard_mut(&mut self, mut f: impl FnMut(&mut S)) {
        for page in &mut self.pages {
            for shard in Arc::make_mut(page) {
                f(Arc::make_mut(shard));
            }
        }
    }

    /// An empty table sized for this one's entries, when they are more
    /// than twice what it was sized for (a full build sizes it from an
    /// estimate) and it can have more shards.
    pub(crate) fn larger(&self) -> Option<Self> {
        if self.len <= (2 * ENTRIES_PER_SHARD) << self.bits {
            return None;
        }
        let next = Self::for_entries(self.len);
        (next.bits > self.bits).then_some(next)
    }

    /// How many shards (each a separate allocation).
    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.shards().count()
    }
}

impl<T: Clone> Shards<HashTable<T>> {
    /// The entry `eq` accepts among those of hash `hash`.
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        self.shard(hash).find(hash, eq)
    }

    /// Every entry, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards().flat_map(|s| s.iter())
    }

    /// Adds `value`, which the table must not hold yet; returns it in place.
    pub(crate) fn insert_unique(
        &mut self,
        hash: u64,
        value: T,
        hasher: impl Fn(&T) -> u64,
    ) -> &mut T {
        self.len += 1;
        self.shard_mut(hash)
            .insert_unique(hash, value, hasher)
            .into_mut()
    }

    /// Takes out the entry `eq` accepts. The shard is copied only when the
    /// entry is there.
    pub(crate) fn remove(&mut self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<T> {
        let shard = self.shard_mut_if(hash, |s| s.find(hash, &mut eq).is_some())?;
        let value = shard.find_entry(hash, eq).ok()?.remove().0;
        self.len -= 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(x: &u64) -> u64 {
        hash_of(x)
    }

    /// The entry `eq` accepts, to change: its shard copied only if it is there.
    fn find_mut<T: Clone>(
        s: &mut Shards<HashTable<T>>,
        hash: u64,
        mut eq: impl FnMut(&T) -> bool,
    ) -> Option<&mut T> {
        s.shard_mut_if(hash, |t| t.find(hash, &mut eq).is_some())?
            .find_mut(hash, eq)
    }

    /// The table moved to more shards when [`Shards::larger`] says so.
    fn resized(s: Shards<HashTable<u64>>) -> Shards<HashTable<u64>> {
        let Some(mut next) = s.larger() else {
            return s;
        };
        for x in s.into_shards().flatten() {
            next.insert_unique(key(&x), x, key);
        }
        next
    }

    #[test]
    fn sizes_shards_from_the_expected_entries() {
        assert_eq!(Shards::<u64>::for_entries(0).shard_count(), 1);
        assert_eq!(Shards::<u64>::for_entries(64).shard_count(), 1);
        assert_eq!(Shards::<u64>::for_entries(65).shard_count(), 2);
        assert_eq!(Shards::<u64>::for_entries(1_000_000).shard_count(), 16384);
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
        let most = a.shards().map(|s| s.len()).max().unwrap_or(0);
        assert!(most < 2 * 100_000 / a.shard_count(), "{most}");
        let mut b = a.clone();
        assert_eq!(b.remove(key(&7), |v| *v == 7), Some(7));
        assert_eq!(b.remove(key(&7), |v| *v == 7), None);
        b.insert_unique(key(&200_000), 200_000, key);
        if let Some(v) = find_mut(&mut b, key(&8), |v| *v == 8) {
            *v = 8;
        }
        let shared = a
            .shards()
            .zip(b.shards())
            .filter(|(x, y)| std::ptr::eq(*x, *y))
            .count();
        // 7, 200,000 and 8 touched at most three shards, and three pages.
        assert!(shared >= a.shard_count() - 3);
        let pages = a
            .pages
            .iter()
            .zip(&b.pages)
            .filter(|(x, y)| !Arc::ptr_eq(x, y))
            .count();
        assert!((1..=3).contains(&pages), "{pages}");
        assert!(a.find(key(&7), |v| *v == 7).is_some());
        assert!(b.find(key(&7), |v| *v == 7).is_none());
        assert!(b.find(key(&200_000), |v| *v == 200_000).is_some());
        assert_eq!((a.len(), b.len()), (100_000, 100_000));
        assert_eq!(b.iter().count(), 100_000);
    }

    #[test]
    fn an_underestimated_table_is_resized() {
        let mut a = Shards::for_entries(64);
        for x in 0..10_000u64 {
            a.insert_unique(key(&x), x, key);
        }
        assert_eq!(a.shard_count(), 1);
        let a = resized(a);
        assert_eq!(a.shard_count(), 256);
        assert_eq!(a.len(), 10_000);
        assert!((0..10_000u64).all(|x| a.find(key(&x), |v| *v == x).is_some()));
        // Sized right: left as it is.
        assert_eq!(resized(a).shard_count(), 256);
    }
}
