//! Names numbered in the order they are first seen: a store's pod phases
//! and origin files, the ledger's namespaces. Each name is kept once; a
//! number (from 1; 0 is left for "none") stands for it wherever it recurs.

use std::borrow::Borrow;
use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Names and their numbers, both ways. Numbers are never reused: two
/// numbers are equal exactly when their names are.
#[derive(Clone, Debug)]
pub(crate) struct Numbered<S> {
    names: Vec<S>,
    numbers: FxHashMap<S, u32>,
}

impl<S> Default for Numbered<S> {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            numbers: FxHashMap::default(),
        }
    }
}

impl<S: Clone + Eq + Hash + Borrow<str> + for<'a> From<&'a str>> Numbered<S> {
    /// The number of `name`, numbered now if it is new (none past 4 G
    /// names).
    pub(crate) fn number(&mut self, name: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(name) {
            return Some(n);
        }
        let n = u32::try_from(self.names.len() + 1).ok()?;
        let name = S::from(name);
        self.names.push(name.clone());
        self.numbers.insert(name, n);
        Some(n)
    }

    /// The name of number `n`.
    pub(crate) fn name(&self, n: u32) -> Option<&S> {
        self.names.get(usize::try_from(n.checked_sub(1)?).ok()?)
    }

    /// How many names there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_once_from_one() {
        let mut n: Numbered<Box<str>> = Numbered::default();
        assert_eq!(n.number("Running"), Some(1));
        assert_eq!(n.number("Pending"), Some(2));
        assert_eq!(n.number("Running"), Some(1));
        assert_eq!(n.len(), 2);
        assert_eq!(n.name(2).map(|s| &**s), Some("Pending"));
        assert_eq!(n.name(0), None);
        assert_eq!(n.name(3), None);
    }
}
