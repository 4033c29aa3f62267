//! Label maps, kept small and shared.
//!
//! A cluster has a label map on nearly every object, and every pod of a
//! workload carries a copy of its template's. A `BTreeMap<String, String>`
//! costs a node of room for eleven pairs even for one label (over 500
//! bytes); this is one sorted slice behind a reference count instead, so a
//! map of one label is one small allocation and a copy is a count.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A label (or equality selector) map, ordered by key so output and
/// hashing are deterministic. Cloning shares the pairs.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Option<Arc<[Pair]>>);

/// One `key=value`.
type Pair = (Box<str>, Box<str>);

impl Labels {
    /// No labels.
    pub const fn new() -> Self {
        Self(None)
    }

    fn pairs(&self) -> &[Pair] {
        self.0.as_deref().unwrap_or(&[])
    }

    fn from_sorted(pairs: Vec<Pair>) -> Self {
        if pairs.is_empty() {
            Self(None)
        } else {
            Self(Some(pairs.into()))
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.pairs().binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.position(key).ok()?;
        self.pairs().get(i).map(|(_, v)| &**v)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaced. The pairs are
    /// copied (maps are small and rarely changed after they are made).
    pub fn insert(
        &mut self,
        key: impl Into<Box<str>>,
        value: impl Into<Box<str>>,
    ) -> Option<Box<str>> {
        let key = key.into();
        let mut pairs = self.pairs().to_vec();
        let old = match self.position(&key) {
            Ok(i) => pairs
                .get_mut(i)
                .map(|(_, v)| std::mem::replace(v, value.into())),
            Err(i) => {
                pairs.insert(i, (key, value.into()));
                None
            }
        };
        *self = Self::from_sorted(pairs);
        old
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.pairs().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The pairs in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.pairs().iter())
    }

    /// Whether both share the same pairs (a clone of the other), without
    /// comparing them.
    pub fn shares(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The pairs of a [`Labels`] in key order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, Pair>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (&**k, &**v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for Labels {
    /// Later pairs win over earlier ones with the same key, as inserting
    /// them one by one would.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<Pair> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable: among equal keys the last one given stays last.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<Pair> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match kept.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => kept.push(pair),
            }
        }
        Self::from_sorted(kept)
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::from_sorted(
            map.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_follow_key_order_and_later_pairs_win() {
        let labels = Labels::from_iter([("tier", "web"), ("app", "x"), ("tier", "db")]);
        assert_eq!(labels.len(), 2);
        assert_eq!(labels.get("tier"), Some("db"));
        assert_eq!(labels.get("app"), Some("x"));
        assert_eq!(labels.get("zone"), None);
        assert!(labels.contains_key("app"));
        let keys: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["app", "tier"]);
    }

    #[test]
    fn insert_keeps_order_and_returns_the_replaced_value() {
        let mut labels = Labels::new();
        assert!(labels.is_empty());
        assert_eq!(labels.insert("b", "1"), None);
        assert_eq!(labels.insert("a", "2"), None);
        assert_eq!(labels.insert("b", "3").as_deref(), Some("1"));
        assert_eq!(format!("{labels:?}"), r#"{"a": "2", "b": "3"}"#);
    }

    #[test]
    fn clones_share_and_equal_maps_compare_equal() {
        let a = Labels::from([("app", "x")]);
        let b = a.clone();
        assert!(a.shares(&b));
        let c = Labels::from([("app".to_owned(), "x".to_owned())]);
        assert!(!a.shares(&c));
        assert_eq!(a, c);
        // An empty map is the same whichever way it was made.
        assert_eq!(
            Labels::from_iter(Vec::<(String, String)>::new()),
            Labels::new()
        );
    }

    #[test]
    fn serializes_as_a_map() {
        let labels = Labels::from([("b", "2"), ("a", "1")]);
        let json = serde_json::to_string(&labels).unwrap_or_default();
        assert_eq!(json, r#"{"a":"1","b":"2"}"#);
        let back: Labels = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, labels);
    }
}
