//! Services numbered for the ledger: a service's number names it in the
//! PTR owners of the addresses it offers, and reads back as its namespace
//! and name. One a service in a cluster of 100,000: kept as one entry of
//! 12 bytes, its name in a shared buffer, and 4 bytes in a hash table,
//! instead of a string and map entries of its own.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::numbered::Numbered;

/// Service numbers by namespace and name, and back.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceIds {
    namespaces: Numbered<Box<str>>,
    /// Each service's namespace number, and where its name is in `names`.
    services: Vec<Entry>,
    names: String,
    /// Service numbers by the hash of namespace and name.
    index: HashTable<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    namespace: u32,
    at: u32,
    len: u32,
}

fn hash_of(ns: &str, name: &str) -> u64 {
    FxBuildHasher.hash_one((ns, name))
}

impl ServiceIds {
    fn entry(&self, id: u32) -> Option<(&str, &str)> {
        let e = self.services.get(usize::try_from(id).ok()?)?;
        let ns = self.namespaces.name(e.namespace)?;
        let at = usize::try_from(e.at).ok()?;
        let name = self.names.get(at..at + usize::try_from(e.len).ok()?)?;
        Some((ns, name))
    }

    /// The number of service `ns/name`, numbered now if it has none
    /// (`u32::MAX` past 4 G services or 4 GiB of names).
    pub(crate) fn id(&mut self, ns: &str, name: &str) -> u32 {
        let hash = hash_of(ns, name);
        if let Some(&id) = self
            .index
            .find(hash, |&id| self.entry(id) == Some((ns, name)))
        {
            return id;
        }
        let Some(namespace) = self.namespaces.number(ns) else {
            return u32::MAX;
        };
        let (Ok(id), Ok(at), Ok(len)) = (
            u32::try_from(self.services.len()),
            u32::try_from(self.names.len()),
            u32::try_from(name.len()),
        ) else {
            return u32::MAX;
        };
        if id == u32::MAX || at.checked_add(len).is_none() {
            return u32::MAX;
        }
        self.services.push(Entry { namespace, at, len });
        self.names.push_str(name);
        // The table is taken out while it grows: its rehash reads the
        // names.
        let mut index = std::mem::take(&mut self.index);
        let ids = &*self;
        index.insert_unique(hash, id, |&id| {
            ids.entry(id).map_or(0, |(ns, name)| hash_of(ns, name))
        });
        self.index = index;
        id
    }

    /// The namespace and name of service number `id`.
    pub(crate) fn name(&self, id: u32) -> Option<(&str, &str)> {
        self.entry(id)
    }

    /// How many services are numbered (their numbers are `0..len`).
    pub(crate) fn len(&self) -> usize {
        self.services.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_numbered_once_and_read_back() {
        let mut ids = ServiceIds::default();
        let mut want = Vec::new();
        for i in 0..2000 {
            let (ns, name) = (format!("ns{}", i % 7), format!("svc-{i}"));
            want.push(ids.id(&ns, &name));
        }
        assert_eq!(want, (0..2000).collect::<Vec<u32>>());
        assert_eq!(ids.namespaces.len(), 7);
        // Again: the same numbers, nothing added.
        for i in (0..2000).rev() {
            let (ns, name) = (format!("ns{}", i % 7), format!("svc-{i}"));
            assert_eq!(ids.id(&ns, &name), i);
            assert_eq!(ids.name(i), Some((ns.as_str(), name.as_str())));
        }
        assert_eq!(ids.services.len(), 2000);
        // The same name in another namespace is another service.
        assert_eq!(ids.id("ns1", "svc-0"), 2000);
        assert_eq!(ids.name(2001), None);
    }
}
