//! The store's pods, by namespace: a namespace's pod names one after
//! another in one buffer, its pods in a vector, and a hash table of their
//! positions. A cluster has many more pods than anything else; kept this
//! way a pod costs its name's bytes and about 50 more, and no allocation
//! of its own (a map from an allocated name to the pod cost about 120 and
//! one allocation a pod, and a million of those are a million holes
//! between what the allocator can give back).

use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::shards::hash_of;
use crate::store::StoredPod;

/// Every namespace's pods.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodTable {
    namespaces: BTreeMap<Arc<str>, NamespacePods>,
    len: usize,
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
}

#[derive(Clone, Debug)]
struct Entry {
    pod: StoredPod,
    /// Where its name starts in `names`.
    at: u32,
    /// Its length.
    len: u32,
}

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

    fn get(&self, name: &str) -> Option<&StoredPod> {
        self.entries
            .get(self.position(hash_of(name), name)?)
            .map(|e| &e.pod)
    }

    /// Adds or replaces pod `name`; returns the one replaced. `Err` gives
    /// the pod back when the namespace's names would pass 4 GiB.
    fn insert(&mut self, name: &str, pod: StoredPod) -> Result<Option<StoredPod>, StoredPod> {
        let hash = hash_of(name);
        if let Some(i) = self.position(hash, name)
            && let Some(e) = self.entries.get_mut(i)
        {
            return Ok(Some(std::mem::replace(&mut e.pod, pod)));
        }
        let (Ok(at), Ok(len), Ok(i)) = (
            u32::try_from(self.names.len()),
            u32::try_from(name.len()),
            u32::try_from(self.entries.len()),
        ) else {
            return Err(pod);
        };
        if at.checked_add(len).is_none() {
            return Err(pod);
        }
        self.names.push_str(name);
        self.entries.push(Entry { pod, at, len });
        let (entries, names) = (&self.entries, &self.names);
        self.positions.insert_unique(hash, i, |&j| {
            hash_of(entries.get(j as usize).map_or("", |e| name_in(names, e)))
        });
        Ok(None)
    }

    fn remove(&mut self, name: &str) -> Option<StoredPod> {
        let hash = hash_of(name);
        let i = self.position(hash, name)?;
        self.positions
            .find_entry(hash, |&j| j as usize == i)
            .ok()?
            .remove();
        let removed = self.entries.swap_remove(i);
        self.unused += removed.len as usize;
        // The last entry took its place: point its position there.
        if let Some(moved) = self.entries.get(i) {
            let (from, to) = (self.entries.len(), i);
            let moved_hash = hash_of(name_in(&self.names, moved));
            if let Some(p) = self.positions.find_mut(moved_hash, |&j| j as usize == from) {
                *p = u32::try_from(to).unwrap_or(u32::MAX);
            }
        }
        if self.unused > 256 && 2 * self.unused > self.names.len() {
            self.repack();
        }
        Some(removed.pod)
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
        self.entries.shrink_to_fit();
        let (entries, names) = (&self.entries, &self.names);
        self.positions
            .shrink_to_fit(|&j| hash_of(entries.get(j as usize).map_or("", |e| name_in(names, e))));
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &StoredPod)> {
        self.entries.iter().map(|e| (self.name(e), &e.pod))
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
    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<&StoredPod> {
        self.namespaces.get(ns)?.get(name)
    }

    /// Adds or replaces pod `ns/name`; returns the one replaced (`Err`:
    /// not added, its namespace's names would pass 4 GiB).
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
        let old = pods.insert(name, pod)?;
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// Takes out pod `ns/name`.
    pub(crate) fn remove(&mut self, ns: &str, name: &str) -> Option<StoredPod> {
        let pods = self.namespaces.get_mut(ns)?;
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
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &str, &StoredPod)> {
        self.namespaces
            .iter()
            .flat_map(|(ns, pods)| pods.iter().map(move |(name, p)| (ns, name, p)))
    }

    /// Every pod, by namespace and name.
    pub(crate) fn sorted(&self) -> impl Iterator<Item = (&Arc<str>, &str, &StoredPod)> {
        self.namespaces.iter().flat_map(|(ns, pods)| {
            let mut order: Vec<&Entry> = pods.entries.iter().collect();
            order.sort_unstable_by(|a, b| pods.name(a).cmp(pods.name(b)));
            order.into_iter().map(move |e| (ns, pods.name(e), &e.pod))
        })
    }

    /// Takes out the namespaces `take` names, with their pods.
    pub(crate) fn extract(&mut self, mut take: impl FnMut(&str) -> bool) -> Self {
        let namespaces: BTreeMap<Arc<str>, NamespacePods> =
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
                    let _ = self.insert(&ns, name, pod.clone());
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
        for pods in self.namespaces.values_mut() {
            pods.repack();
        }
    }

    /// Calls `note` with each pod whose value differs between `old` and
    /// `new` (namespace, name and its old value, `None` for a pod `old`
    /// lacks); returns whether any did.
    pub(crate) fn diff(
        old: &Self,
        new: &Self,
        mut note: impl FnMut(&Arc<str>, &str, Option<StoredPod>),
    ) -> bool {
        let mut changed = false;
        for (ns, pods) in &old.namespaces {
            let other = new.namespaces.get(ns);
            for (name, pod) in pods.iter() {
                if other.and_then(|o| o.get(name)) != Some(pod) {
                    changed = true;
                    note(ns, name, Some(pod.clone()));
                }
            }
        }
        for (ns, pods) in &new.namespaces {
            let other = old.namespaces.get(ns);
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
            .map(|(ns, name, p)| (ns.to_string(), name.to_owned(), p.clone()))
            .collect()
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
        assert_eq!(t.get("a", "web-7"), Some(&pod(77)));
        assert_eq!(t.get("b", "web-0"), Some(&pod(200)));
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
            assert_eq!(t.get("a", &format!("web-{i}")).cloned(), want, "web-{i}");
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
        let old = t.extract(|ns| ns == "a" || ns == "b");
        assert_eq!(old.len(), 3);
        assert_eq!(t.len(), 1);
        let mut new = PodTable::default();
        for (ns, name, ip) in [(&a, "x", 1), (&a, "y", 9), (&b, "w", 5)] {
            assert_eq!(new.insert(ns, name, pod(ip)), Ok(None));
        }
        new.shrink();
        let mut noted = Vec::new();
        assert!(PodTable::diff(&old, &new, |ns, name, was| {
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
        assert!(!PodTable::diff(&new, &new.clone(), |_, _, _| {}));
        t.join(new);
        assert_eq!(t.len(), 4);
        assert_eq!(
            all(&t)
                .into_iter()
                .map(|(ns, n, _)| format!("{ns}/{n}"))
                .collect::<Vec<_>>(),
            ["a/x", "a/y", "b/w", "c/z"]
        );
        assert_eq!(t.get("a", "y"), Some(&pod(9)));
    }
}
