//! The store's pods, by namespace: a namespace's pod names one after
//! another in one buffer, its pods in a vector of 16-byte entries (an
//! IPv4 address inline, other addresses apart), and a hash table of their
//! positions. A cluster has many more pods than anything else; kept this
//! way a pod with one IPv4 address costs its name's bytes and about 25
//! more, and no allocation of its own (a map from an allocated name to the
//! pod cost about 120 and one allocation a pod, and a million of those are
//! a million holes between what the allocator can give back).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use svcnet_model::{Addresses, AddressesRef};

use crate::build::unique;
use crate::shards::{hash_of, swap_remove_position};

/// Every namespace's pods. A namespace's table is shared: a replacement
/// whose pods of a namespace are those the store holds keeps the store's
/// table (see [`PodTable::share_if_same`]), and a change to a shared table
/// changes a copy.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodTable {
    namespaces: BTreeMap<Arc<str>, Arc<NamespacePods>>,
    len: usize,
}

/// A pod as the store keeps it: what the index reads (namespace, name,
/// status); labels, spec, node and owner are dropped (the endpoints
/// controller that reads them runs before the store). Read out of a
/// [`PodTable`], which keeps it packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPod {
    /// Its phase's number in the store's phases (0: none). A cluster's
    /// pods have a handful of phases between them.
    pub(crate) phase: u32,
    pub(crate) ready_condition: Option<bool>,
    pub(crate) terminating: bool,
    pub(crate) ips: Addresses,
}

impl StoredPod {
    /// The pod's addresses.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    #[cfg(test)]
    pub(crate) fn for_test(ip: IpAddr) -> Self {
        Self {
            phase: 1,
            ready_condition: Some(true),
            terminating: false,
            ips: vec![ip].into(),
        }
    }
}

/// One namespace's pods, in no particular order.
#[derive(Clone, Debug, Default)]
struct NamespacePods {
    entries: Vec<Entry>,
    /// Positions in `entries`, by the hash of the pod's name.
    positions: HashTable<u32>,
    /// The names, one after another.
    names: String,
    /// Bytes of `names` that no entry uses any more.
    unused: usize,
    /// The addresses of the pods that have other than one IPv4 address
    /// (dual-stack, IPv6, none), by number; a free number holds none.
    others: Vec<Addresses>,
    /// Numbers in `others` free to reuse.
    free: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Entry {
    /// Where its name starts in `names`.
    at: u32,
    /// Its IPv4 address (`V4`), or the number of its addresses in
    /// `others`.
    ip: u32,
    /// Its phase's number.
    phase: u32,
    /// Its name's length.
    len: u16,
    /// `READY_KNOWN`, `READY`, `TERMINATING`, `V4`.
    flags: u8,
}

const READY_KNOWN: u8 = 1;
const READY: u8 = 2;
const TERMINATING: u8 = 4;
const V4: u8 = 8;

fn name_in<'n>(names: &'n str, e: &Entry) -> &'n str {
    let at = e.at as usize;
    names.get(at..at + e.len as usize).unwrap_or("")
}

impl NamespacePods {
    fn name(&self, e: &Entry) -> &str {
        name_in(&self.names, e)
    }

    /// Where pod `name` (of hash `hash`) is in `entries`.
    fn position(&self, hash: u64, name: &str) -> Option<usize> {
        let (entries, names) = (&self.entries, &self.names);
        self.positions
            .find(hash, |&i| {
                entries
                    .get(i as usize)
                    .is_some_and(|e| name_in(names, e) == name)
            })
            .map(|&i| i as usize)
    }

    /// The pod of entry `e`.
    fn unpack(&self, e: &Entry) -> StoredPod {
        StoredPod {
            phase: e.phase,
            ready_condition: (e.flags & READY_KNOWN != 0).then_some(e.flags & READY != 0),
            terminating: e.flags & TERMINATING != 0,
            ips: Addresses::from(self.ips(e)),
        }
    }

    /// The addresses of entry `e`: its one IPv4 address, or those kept
    /// in `others`.
    fn ips(&self, e: &Entry) -> AddressesRef<'_> {
        AddressesRef::packed(e.flags & V4 != 0, e.ip, &self.others)
    }

    /// Packs `pod`'s fields but its name into entry `e` (its addresses in
    /// `others` unless one IPv4 address). `Err` when `others` would pass
    /// 4 G pods.
    fn pack(&mut self, e: &mut Entry, pod: StoredPod) -> Result<(), StoredPod> {
        let mut flags = match pod.ready_condition {
            None => 0,
            Some(false) => READY_KNOWN,
            Some(true) => READY_KNOWN | READY,
        };
        if pod.terminating {
            flags |= TERMINATING;
        }
        let ip = match *pod.ips {
            [IpAddr::V4(v4)] => {
                flags |= V4;
                v4.to_bits()
            }
            _ => match self.free.pop() {
                Some(n) => {
                    if let Some(slot) = self.others.get_mut(n as usize) {
                        *slot = pod.ips;
                    }
                    n
                }
                None => {
                    let Ok(n) = u32::try_from(self.others.len()) else {
                        return Err(pod);
                    };
                    self.others.push(pod.ips);
                    n
                }
            },
        };
        self.release(e);
        (e.ip, e.phase, e.flags) = (ip, pod.phase, flags);
        Ok(())
    }

    /// Frees the addresses entry `e` keeps in `others`, if any.
    fn release(&mut self, e: &Entry) {
        if e.flags & V4 == 0
            && let Some(slot) = self.others.get_mut(e.ip as usize)
        {
            *slot = Addresses::new();
            self.free.push(e.ip);
        }
    }

    fn get(&self, name: &str) -> Option<StoredPod> {
        self.entries
            .get(self.position(hash_of(name), name)?)
            .map(|e| self.unpack(e))
    }

    /// Adds or replaces pod `name`; returns the one replaced. `Err` gives
    /// the pod back when the namespace's names would pass 4 GiB, or the
    /// name 64 KiB.
    fn insert(&mut self, name: &str, pod: StoredPod) -> Result<Option<StoredPod>, StoredPod> {
        let hash = hash_of(name);
        if let Some(i) = self.position(hash, name)
            && let Some(mut e) = self.entries.get(i).cloned()
        {
            let old = self.unpack(&e);
            self.pack(&mut e, pod)?;
            if let Some(slot) = self.entries.get_mut(i) {
                *slot = e;
            }
            return Ok(Some(old));
        }
        let (Ok(at), Ok(len), Ok(i)) = (
            u32::try_from(self.names.len()),
            u16::try_from(name.len()),
            u32::try_from(self.entries.len()),
        ) else {
            return Err(pod);
        };
        if at.checked_add(u32::from(len)).is_none() {
            return Err(pod);
        }
        // No address in `others` yet: nothing for `pack` to release.
        let mut e = Entry {
            at,
            ip: 0,
            phase: 0,
            len,
            flags: V4,
        };
        self.pack(&mut e, pod)?;
        self.names.push_str(name);
        self.entries.push(e);
        let (entries, names) = (&self.entries, &self.names);
        self.positions.insert_unique(hash, i, |&j| {
            hash_of(entries.get(j as usize).map_or("", |e| name_in(names, e)))
        });
        Ok(None)
    }

    fn remove(&mut self, name: &str) -> Option<StoredPod> {
        let hash = hash_of(name);
        let i = self.position(hash, name)?;
        let last = self.entries.len().checked_sub(1)?;
        let last_hash = hash_of(self.entries.get(last).map_or("", |e| self.name(e)));
        swap_remove_position(&mut self.positions, hash, i, last, last_hash);
        let removed = self.entries.swap_remove(i);
        let pod = self.unpack(&removed);
        self.release(&removed);
        self.unused += usize::from(removed.len);
        if self.unused > 256 && 2 * self.unused > self.names.len() {
            self.repack();
        }
        Some(pod)
    }

    /// Writes the names again without the bytes no entry uses, and lets go
    /// of spare room.
    fn repack(&mut self) {
        let mut names = String::with_capacity(self.names.len() - self.unused);
        for e in &mut self.entries {
            let at = u32::try_from(names.len()).unwrap_or(u32::MAX);
            names.push_str(name_in(&self.names, e));
            e.at = at;
        }
        self.names = names;
        self.unused = 0;
        // The addresses kept apart, renumbered without the free numbers.
        if !self.free.is_empty() {
            let mut others = Vec::with_capacity(self.others.len() - self.free.len());
            for e in self.entries.iter_mut().filter(|e| e.flags & V4 == 0) {
                let ips = self.others.get_mut(e.ip as usize).map(std::mem::take);
                e.ip = u32::try_from(others.len()).unwrap_or(u32::MAX);
                others.push(ips.unwrap_or_default());
            }
            self.others = others;
            self.free = Vec::new();
        }
        self.others.shrink_to_fit();
        self.entries.shrink_to_fit();
        let (entries, names) = (&self.entries, &self.names);
        self.positions
            .shrink_to_fit(|&j| hash_of(entries.get(j as usize).map_or("", |e| name_in(names, e))));
    }

    fn iter(&self) -> impl Iterator<Item = (&str, StoredPod)> {
        self.entries.iter().map(|e| (self.name(e), self.unpack(e)))
    }

    /// Whether `other` holds the same pods (names and values).
    fn same_as(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .iter()
                .all(|(name, pod)| other.get(name).as_ref() == Some(&pod))
    }
}

impl PodTable {
    /// The number of pods.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pod `ns/name`.
    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<StoredPod> {
        self.namespaces.get(ns)?.get(name)
    }

    /// Adds or replaces pod `ns/name`; returns the one replaced (`Err`:
    /// not added, its namespace's names would pass 4 GiB, or its name 64
    /// KiB).
    pub(crate) fn insert(
        &mut self,
        ns: &Arc<str>,
        name: &str,
        pod: StoredPod,
    ) -> Result<Option<StoredPod>, StoredPod> {
        let pods = match self.namespaces.get_mut(&**ns) {
            Some(pods) => pods,
            None => self.namespaces.entry(ns.clone()).or_default(),
        };
        let pods = Arc::make_mut(pods);
        let old = match pods.insert(name, pod) {
            Ok(old) => old,
            Err(pod) => {
                // A namespace is there only with pods.
                if pods.entries.is_empty() {
                    self.namespaces.remove(&**ns);
                }
                return Err(pod);
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// Takes out pod `ns/name`.
    pub(crate) fn remove(&mut self, ns: &str, name: &str) -> Option<StoredPod> {
        let pods = self.namespaces.get_mut(ns)?;
        // A shared table is copied only to take out a pod it holds.
        pods.position(hash_of(name), name)?;
        let pods = Arc::make_mut(pods);
        let old = pods.remove(name)?;
        self.len -= 1;
        if pods.entries.is_empty() {
            self.namespaces.remove(ns);
        }
        Some(old)
    }

    /// Whether namespace `ns` has a pod.
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.contains_key(ns)
    }

    /// Every pod: namespace, name and pod; by namespace, in no order
    /// within one.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &str, StoredPod)> {
        self.namespaces
            .iter()
            .flat_map(|(ns, pods)| pods.iter().map(move |(name, p)| (ns, name, p)))
    }

    /// Every pod, by namespace and name.
    pub(crate) fn sorted(&self) -> impl Iterator<Item = (&Arc<str>, &str, StoredPod)> {
        self.namespaces.iter().flat_map(|(ns, pods)| {
            let mut order: Vec<&Entry> = pods.entries.iter().collect();
            order.sort_unstable_by(|a, b| pods.name(a).cmp(pods.name(b)));
            order
                .into_iter()
                .map(move |e| (ns, pods.name(e), pods.unpack(e)))
        })
    }

    /// Every pod's addresses, each once a pod, with its namespace; by
    /// namespace, in no order within one.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = (&Arc<str>, IpAddr)> {
        self.namespaces.iter().flat_map(|(ns, pods)| {
            pods.entries
                .iter()
                .flat_map(move |e| unique(pods.ips(e)).map(move |ip| (ns, ip)))
        })
    }

    /// The namespaces with pods.
    pub(crate) fn namespaces(&self) -> impl Iterator<Item = &Arc<str>> {
        self.namespaces.keys()
    }

    /// Takes out the namespaces `take` names, with their pods.
    pub(crate) fn extract(&mut self, mut take: impl FnMut(&str) -> bool) -> Self {
        let namespaces: BTreeMap<Arc<str>, Arc<NamespacePods>> =
            self.namespaces.extract_if(.., |ns, _| take(ns)).collect();
        let len = namespaces.values().map(|p| p.entries.len()).sum();
        self.len -= len;
        Self { namespaces, len }
    }

    /// Adds the pods of `other`, which replace those of the same name.
    pub(crate) fn join(&mut self, other: Self) {
        for (ns, pods) in other.namespaces {
            if self.namespaces.contains_key(&*ns) {
                for (name, pod) in pods.iter() {
                    // A namespace's names stay under 4 GiB: those that
                    // fitted one table fit the other.
                    let _ = self.insert(&ns, name, pod);
                }
            } else {
                self.len += pods.entries.len();
                self.namespaces.insert(ns, pods);
            }
        }
    }

    /// Lets go of the spare room the vectors and tables grew with (after
    /// a whole replacement was read in).
    pub(crate) fn shrink(&mut self) {
        // A shared table is the store's own, left as the store keeps it.
        for pods in self.namespaces.values_mut().filter_map(Arc::get_mut) {
            pods.repack();
        }
    }

    /// Where namespace `ns`'s table is (null for none): a test tells a
    /// kept table from a new one by it.
    #[cfg(test)]
    pub(crate) fn table_place(&self, ns: &str) -> *const u8 {
        self.namespaces
            .get(ns)
            .map_or(std::ptr::null(), |t| Arc::as_ptr(t).cast())
    }

    /// Takes `old`'s table of namespace `ns` in place of this one's when
    /// they hold the same pods: a relist of a large cluster would otherwise
    /// hold the pods of every unchanged namespace twice until it ends. Called
    /// when a replacement's pods move on to another namespace (the
    /// emulation's, and an API server's list, come a namespace at a time;
    /// called earlier, it only shares less).
    pub(crate) fn share_if_same(&mut self, ns: &str, old: &Self) {
        if let (Some(mine), Some(theirs)) = (self.namespaces.get_mut(ns), old.namespaces.get(ns))
            && !Arc::ptr_eq(mine, theirs)
            && mine.same_as(theirs)
        {
            *mine = Arc::clone(theirs);
        }
    }

    /// Calls `note` with each pod whose value differs between `old` and
    /// `new` (namespace, name and its old value, `None` for a pod `old`
    /// lacks); returns whether any did.
    pub(crate) fn diff(
        old: &mut Self,
        new: &mut Self,
        mut note: impl FnMut(&Arc<str>, &str, Option<StoredPod>),
    ) -> bool {
        let mut changed = false;
        for (ns, pods) in &mut old.namespaces {
            let mut other = new.namespaces.get_mut(ns);
            if other.as_ref().is_some_and(|o| Arc::ptr_eq(o, pods)) {
                continue; // One table: the same pods.
            }
            let mut same = other
                .as_ref()
                .is_some_and(|o| o.entries.len() == pods.entries.len());
            for (name, pod) in pods.iter() {
                if other.as_ref().and_then(|o| o.get(name)).as_ref() != Some(&pod) {
                    same = false;
                    changed = true;
                    note(ns, name, Some(pod));
                }
            }
            // As many pods, each found the same: the same namespace, whose
            // older table `new` takes.
            if let Some(o) = other.as_mut().filter(|_| same) {
                std::mem::swap(*o, pods);
            }
        }
        for (ns, pods) in &new.namespaces {
            let other = old.namespaces.get(ns);
            if other.is_some_and(|o| Arc::ptr_eq(o, pods)) {
                continue;
            }
            for (name, _) in pods.iter() {
                if other.and_then(|o| o.get(name)).is_none() {
                    changed = true;
                    note(ns, name, None);
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn pod(last: u8) -> StoredPod {
        StoredPod::for_test(IpAddr::from([10, 244, 0, last]))
    }

    fn all(t: &PodTable) -> Vec<(String, String, StoredPod)> {
        t.sorted()
            .map(|(ns, name, p)| (ns.to_string(), name.to_owned(), p))
            .collect()
    }

    #[test]
    fn a_namespace_of_the_same_pods_shares_the_older_table_and_changes_a_copy() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let fill = |t: &mut PodTable, ns: &Arc<str>, last: u8| {
            for i in 0..5u8 {
                let _ = t.insert(ns, &format!("web-{i}"), pod(if i == 4 { last } else { i }));
            }
        };
        let mut old = PodTable::default();
        fill(&mut old, &a, 4);
        fill(&mut old, &b, 4);
        let mut new = PodTable::default();
        fill(&mut new, &a, 4);
        fill(&mut new, &b, 9);
        new.share_if_same("a", &old);
        new.share_if_same("b", &old);
        new.share_if_same("c", &old);
        let shared = |t: &PodTable, u: &PodTable, ns: &str| matches!((t.namespaces.get(ns), u.namespaces.get(ns)), (Some(x), Some(y)) if Arc::ptr_eq(x, y));
        assert!(shared(&new, &old, "a"));
        assert!(!shared(&new, &old, "b"));
        // Only what differs is noted, and both tables read as before.
        let mut noted = Vec::new();
        assert!(PodTable::diff(
            &mut old.clone(),
            &mut new.clone(),
            |ns, name, _| {
                noted.push(format!("{ns}/{name}"));
            }
        ));
        assert_eq!(noted, ["b/web-4"]);
        // A change to a shared table leaves the other as it was.
        assert_eq!(new.insert(&a, "web-0", pod(50)), Ok(Some(pod(0))));
        assert_eq!(new.remove("a", "web-1"), Some(pod(1)));
        assert_eq!(new.remove("a", "web-9"), None);
        assert_eq!(old.get("a", "web-0"), Some(pod(0)));
        assert_eq!(old.get("a", "web-1"), Some(pod(1)));
        assert_eq!((old.len(), new.len()), (10, 9));
        assert!(!shared(&new, &old, "a"));
        old.shrink();
        assert_eq!(all(&old).len(), 10);
    }

    #[test]
    fn pods_are_found_replaced_and_removed_by_name() {
        let mut t = PodTable::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for i in 0..100u8 {
            assert_eq!(t.insert(&a, &format!("web-{i}"), pod(i)), Ok(None));
        }
        assert_eq!(t.insert(&b, "web-0", pod(200)), Ok(None));
        assert_eq!(t.len(), 101);
        assert_eq!(t.insert(&a, "web-7", pod(77)), Ok(Some(pod(7))));
        assert_eq!(t.len(), 101);
        assert_eq!(t.get("a", "web-7"), Some(pod(77)));
        assert_eq!(t.get("b", "web-0"), Some(pod(200)));
        assert_eq!(t.get("a", "web-100"), None);
        assert_eq!(t.get("c", "web-0"), None);
        // Removing most of them repacks the names; every other pod is
        // still found by its name.
        for i in (0..100u8).filter(|i| i % 10 != 3) {
            let want = if i == 7 { pod(77) } else { pod(i) };
            assert_eq!(t.remove("a", &format!("web-{i}")), Some(want), "web-{i}");
            assert_eq!(t.remove("a", &format!("web-{i}")), None);
        }
        assert_eq!(t.len(), 11);
        for i in 0..100u8 {
            let want = (i % 10 == 3).then(|| pod(i));
            assert_eq!(t.get("a", &format!("web-{i}")), want, "web-{i}");
        }
        let names: Vec<String> = all(&t)
            .into_iter()
            .map(|(ns, n, _)| format!("{ns}/{n}"))
            .collect();
        assert_eq!(names.len(), 11);
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        // A namespace without pods goes.
        assert!(t.has_namespace("b"));
        assert_eq!(t.remove("b", "web-0"), Some(pod(200)));
        assert!(!t.has_namespace("b"));
        assert_eq!(t.iter().filter(|(ns, _, _)| &***ns == "a").count(), 10);
    }

    #[test]
    fn a_replacement_is_taken_out_joined_and_compared_by_namespace() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("a"), Arc::from("b"), Arc::from("c"));
        let mut t = PodTable::default();
        for (ns, name, ip) in [(&a, "x", 1), (&a, "y", 2), (&b, "x", 3), (&c, "z", 4)] {
            assert_eq!(t.insert(ns, name, pod(ip)), Ok(None));
        }
        let mut old = t.extract(|ns| ns == "a" || ns == "b");
        assert_eq!(old.len(), 3);
        assert_eq!(t.len(), 1);
        let mut new = PodTable::default();
        for (ns, name, ip) in [(&a, "x", 1), (&a, "y", 9), (&b, "w", 5)] {
            assert_eq!(new.insert(ns, name, pod(ip)), Ok(None));
        }
        new.shrink();
        let mut noted = Vec::new();
        assert!(PodTable::diff(&mut old, &mut new, |ns, name, was| {
            noted.push((ns.to_string(), name.to_owned(), was));
        }));
        noted.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        assert_eq!(
            noted,
            [
                ("a".to_owned(), "y".to_owned(), Some(pod(2))),
                ("b".to_owned(), "w".to_owned(), None),
                ("b".to_owned(), "x".to_owned(), Some(pod(3))),
            ]
        );
        // The same pods: nothing noted, and the namespaces' older tables
        // taken.
        let mut older = new.clone();
        let places = |t: &PodTable| -> Vec<*const Entry> {
            t.namespaces.values().map(|p| p.entries.as_ptr()).collect()
        };
        let before = places(&older);
        assert!(!PodTable::diff(&mut older, &mut new, |_, _, _| {}));
        assert_eq!(places(&new), before);
        t.join(new);
        assert_eq!(t.len(), 4);
        assert_eq!(
            all(&t)
                .into_iter()
                .map(|(ns, n, _)| format!("{ns}/{n}"))
                .collect::<Vec<_>>(),
            ["a/x", "a/y", "b/w", "c/z"]
        );
        assert_eq!(t.get("a", "y"), Some(pod(9)));
    }

    #[test]
    fn a_pod_keeps_its_status_and_any_addresses() {
        assert_eq!(size_of::<Entry>(), 16);
        let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 7]);
        let v4 = IpAddr::from([10, 244, 1, 2]);
        let with = |ips: Vec<IpAddr>, ready_condition, terminating| StoredPod {
            phase: 3,
            ready_condition,
            terminating,
            ips: ips.into(),
        };
        let kinds = [
            with(vec![v4], None, false),
            with(vec![v4, v6], Some(false), true),
            with(vec![v6], Some(true), false),
            with(vec![], None, true),
        ];
        let mut t = PodTable::default();
        let ns: Arc<str> = Arc::from("a");
        // A pod not taken leaves no namespace behind.
        let long = "x".repeat(70_000);
        assert!(t.insert(&Arc::from("b"), &long, pod(1)).is_err());
        assert!(!t.has_namespace("b") && t.is_empty());
        for round in 0..3 {
            for (i, pod) in kinds.iter().enumerate() {
                // Each name takes each kind in turn: the addresses kept
                // apart are given back and reused.
                let name = format!("p{}", (i + round) % kinds.len());
                let old = t.insert(&ns, &name, pod.clone());
                assert_eq!(old.map(|o| o.is_some()), Ok(round > 0), "{name}");
                assert_eq!(t.get("a", &name).as_ref(), Some(pod), "{name}");
            }
        }
        let pods = &t.namespaces["a"];
        assert!(pods.others.len() - pods.free.len() <= 3, "{pods:?}");
        let mut all: Vec<IpAddr> = t.addresses().map(|(_, ip)| ip).collect();
        all.sort();
        assert_eq!(all, [v4, v4, v6, v6]);
        // Removing repacks: what is left keeps its addresses.
        for i in 0..300 {
            assert_eq!(t.insert(&ns, &format!("filler-{i:03}"), pod(1)), Ok(None));
        }
        for i in 0..300 {
            assert!(t.remove("a", &format!("filler-{i:03}")).is_some());
        }
        // The last round left kind `n` at name `p{n + 2}`.
        assert_eq!(t.remove("a", "p0"), Some(kinds[2].clone()));
        t.shrink();
        for n in 1..4 {
            let name = format!("p{n}");
            let want = &kinds[(n + 2) % kinds.len()];
            assert_eq!(t.get("a", &name).as_ref(), Some(want), "{name}");
        }
        let pods = &t.namespaces["a"];
        assert!(pods.free.is_empty() && pods.others.len() == 2, "{pods:?}");
    }
}
