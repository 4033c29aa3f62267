//! The addresses of an endpoint or a pod.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Deref;

/// A list of addresses. Nearly every endpoint and pod has one, so one is
/// kept inline and only a longer list (dual-stack) is boxed: a cluster's
/// million endpoints are a million allocations fewer.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addresses(Inner);

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Inner {
    One(IpAddr),
    Many(Box<[IpAddr]>),
}

impl Addresses {
    /// No address.
    pub fn new() -> Self {
        Self(Inner::Many(Box::default()))
    }
}

impl Default for Addresses {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Addresses {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        match &self.0 {
            Inner::One(ip) => std::slice::from_ref(ip),
            Inner::Many(ips) => ips,
        }
    }
}

impl From<Vec<IpAddr>> for Addresses {
    fn from(ips: Vec<IpAddr>) -> Self {
        match ips.as_slice() {
            [ip] => Self(Inner::One(*ip)),
            _ => Self(Inner::Many(ips.into_boxed_slice())),
        }
    }
}

impl From<&[IpAddr]> for Addresses {
    fn from(ips: &[IpAddr]) -> Self {
        match ips {
            [ip] => Self(Inner::One(*ip)),
            _ => Self(Inner::Many(ips.into())),
        }
    }
}

impl<const N: usize> From<[IpAddr; N]> for Addresses {
    fn from(ips: [IpAddr; N]) -> Self {
        Self::from(&ips[..])
    }
}

impl FromIterator<IpAddr> for Addresses {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Addresses {
    type Item = &'a IpAddr;
    type IntoIter = std::slice::Iter<'a, IpAddr>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Addresses {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Addresses {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<IpAddr>::deserialize(deserializer).map(Self::from)
    }
}

/// Addresses as read out of a packed list: one or two addresses copied out
/// of its entry, or a borrowed list. Reads as a slice, like [`Addresses`].
#[derive(Clone, Copy)]
pub struct AddressesRef<'a>(RefInner<'a>);

#[derive(Clone, Copy)]
enum RefInner<'a> {
    One(IpAddr),
    Two([IpAddr; 2]),
    Many(&'a [IpAddr]),
}

impl<'a> AddressesRef<'a> {
    /// Just `ip`.
    pub fn one(ip: IpAddr) -> Self {
        Self(RefInner::One(ip))
    }

    /// Just these two (a dual-stack endpoint's).
    pub fn two(ips: [IpAddr; 2]) -> Self {
        Self(RefInner::Two(ips))
    }

    /// The addresses of a packed entry that keeps one IPv4 address inline
    /// (`inline`: `ip` is its bits) or else the number `ip` of its list in
    /// `others` (none for a number `others` lacks).
    pub fn packed(inline: bool, ip: u32, others: &'a [Addresses]) -> Self {
        if inline {
            Self::one(IpAddr::V4(Ipv4Addr::from_bits(ip)))
        } else {
            others
                .get(ip as usize)
                .map_or(Self(RefInner::Many(&[])), Self::from)
        }
    }
}

impl<'a> From<&'a [IpAddr]> for AddressesRef<'a> {
    fn from(ips: &'a [IpAddr]) -> Self {
        Self(RefInner::Many(ips))
    }
}

impl<'a> From<&'a Addresses> for AddressesRef<'a> {
    fn from(ips: &'a Addresses) -> Self {
        Self(RefInner::Many(ips))
    }
}

impl From<AddressesRef<'_>> for Addresses {
    fn from(ips: AddressesRef<'_>) -> Self {
        Self::from(&*ips)
    }
}

impl Deref for AddressesRef<'_> {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        match &self.0 {
            RefInner::One(ip) => std::slice::from_ref(ip),
            RefInner::Two(ips) => ips,
            RefInner::Many(ips) => ips,
        }
    }
}

impl PartialEq for AddressesRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for AddressesRef<'_> {}

impl fmt::Debug for AddressesRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl serde::Serialize for AddressesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn one_two_or_none_read_as_slices() {
        let none = Addresses::new();
        assert!(none.is_empty());
        let one = Addresses::from(vec![ip("10.0.0.1")]);
        assert_eq!(&one[..], &[ip("10.0.0.1")]);
        let two: Addresses = [ip("10.0.0.1"), ip("fd00::1")].into_iter().collect();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1], ip("fd00::1"));
        assert_eq!(format!("{one:?}"), "[10.0.0.1]");
        // However it was made, the same list is equal.
        assert_eq!(Addresses::from([ip("10.0.0.1")]), one);
        assert_eq!(Addresses::from(Vec::new()), none);
        // Read out of a packed list: the same slice however it is kept.
        let inline = AddressesRef::one(ip("10.0.0.1"));
        assert_eq!(inline, AddressesRef::from(&one));
        assert_eq!(Addresses::from(inline), one);
        assert_ne!(inline, AddressesRef::from(&two));
        assert_eq!(format!("{inline:?}"), "[10.0.0.1]");
    }

    #[test]
    fn serializes_as_a_list() {
        let two = Addresses::from([ip("10.0.0.1"), ip("10.0.0.2")]);
        let json = serde_json::to_string(&two).unwrap_or_default();
        assert_eq!(json, r#"["10.0.0.1","10.0.0.2"]"#);
        let back: Addresses = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, two);
    }
}
