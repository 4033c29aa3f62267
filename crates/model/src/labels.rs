//! Label maps, kept small and shared.
//!
//! A cluster has a label map on nearly every object, and every pod of a
//! workload carries a copy of its template's. A `BTreeMap<String, String>`
//! costs a node of room for eleven pairs even for one label (over 500
//! bytes), and a slice of string pairs an allocation per key and per value;
//! this is one buffer behind a reference count instead (the pairs' lengths
//! and bytes one after another, in key order), so a map is one small
//! allocation and a copy is a count.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A label (or equality selector) map, ordered by key so output and
/// hashing are deterministic. Cloning shares the pairs.
///
/// The buffer: the number of pairs, then for each its key's and value's
/// lengths and their bytes (lengths as four bytes, little-endian); no
/// buffer for no pairs. Keys are unique and in order, so equal maps have
/// equal buffers.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Option<Arc<[u8]>>);

/// One `key=value`.
type Pair = (Box<str>, Box<str>);

fn read_u32(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize)
}

fn push_len(buf: &mut Vec<u8>, len: usize) {
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

impl Labels {
    /// No labels.
    pub const fn new() -> Self {
        Self(None)
    }

    fn from_sorted(pairs: Vec<Pair>) -> Self {
        Self::encode(pairs.iter().map(|(k, v)| (&**k, &**v)))
    }

    /// The map of `pairs`, given in key order with unique keys.
    fn encode<'p>(pairs: impl ExactSizeIterator<Item = (&'p str, &'p str)> + Clone) -> Self {
        if pairs.len() == 0 {
            return Self(None);
        }
        let bytes: usize = pairs.clone().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(4 + bytes);
        push_len(&mut buf, pairs.len());
        for (k, v) in pairs {
            push_len(&mut buf, k.len());
            push_len(&mut buf, v.len());
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        Self(Some(buf.into()))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .take_while(|(k, _)| *k <= key)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaced. The pairs are
    /// copied (maps are small and rarely changed after they are made).
    pub fn insert(
        &mut self,
        key: impl Into<Box<str>>,
        value: impl Into<Box<str>>,
    ) -> Option<Box<str>> {
        let (key, value) = (key.into(), value.into());
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        let old = match pairs.binary_search_by(|(k, _)| (*k).cmp(&key)) {
            Ok(i) => pairs
                .get_mut(i)
                .map(|(_, v)| Box::from(std::mem::replace(v, &value))),
            Err(i) => {
                pairs.insert(i, (&key, &value));
                None
            }
        };
        *self = Self::encode(pairs.into_iter());
        old
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, |b| read_u32(b, 0))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The pairs in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: self.0.as_deref().and_then(|b| b.get(4..)).unwrap_or(&[]),
            left: self.len(),
        }
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

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Pair by pair, as the pairs compare.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

/// The pairs of a [`Labels`] in key order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (k, v) = (read_u32(self.rest, 0), read_u32(self.rest, 4));
        let key = self.rest.get(8..8 + k).unwrap_or(&[]);
        let value = self.rest.get(8 + k..8 + k + v).unwrap_or(&[]);
        self.rest = self.rest.get(8 + k + v..).unwrap_or(&[]);
        // Written from strings: always UTF-8.
        let text = |b| std::str::from_utf8(b).unwrap_or_default();
        Some((text(key), text(value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
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
    fn maps_order_pair_by_pair() {
        let a = Labels::from([("app", "x")]);
        let b = Labels::from([("app", "x"), ("b", "")]);
        let c = Labels::from([("app", "y")]);
        let d = Labels::from([("apq", "")]);
        assert!(Labels::new() < a && a < b && b < c && c < d);
        assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
        // Keys and values of any length and text come back as given.
        let long = "k".repeat(70_000);
        let odd = Labels::from([(long.as_str(), "é\0"), ("", "v")]);
        let pairs: Vec<(&str, &str)> = odd.iter().collect();
        assert_eq!(pairs, [("", "v"), (long.as_str(), "é\0")]);
        assert_eq!(odd.get(&long), Some("é\0"));
        assert_eq!(odd.get(""), Some("v"));
        assert_eq!(odd.iter().len(), 2);
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
