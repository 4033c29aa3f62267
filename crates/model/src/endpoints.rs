//! The endpoints of a slice, packed.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::{Addresses, AddressesRef, Endpoint};

/// The endpoints of an EndpointSlice. A cluster has about as many of these
/// as pods, so they are packed: each in a 20-byte entry with its address
/// when it has one IPv4 address (other addresses apart), their pod names
/// and hostnames one after another in one string (a StatefulSet pod's
/// hostname, which is its name, once), each node's name once. An endpoint
/// costs its names' bytes and about 30 more, with no allocation of its own.
///
/// Two lists are equal when their endpoints are, however they were packed.
/// Read with [`Self::iter`], which gives each as an [`EndpointRef`].
#[derive(Clone, Default)]
pub struct Endpoints {
    entries: Vec<Packed>,
    /// The names, one after another.
    text: String,
    /// Where each name in `text` ends (it starts where the one before ends).
    ends: Vec<u32>,
    nodes: Vec<Arc<str>>,
    /// The addresses of the endpoints with other than one IPv4 address
    /// (dual-stack, IPv6, none), by number.
    others: Vec<Addresses>,
}

/// No name, no node.
const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Packed {
    /// Its IPv4 address (`V4`), or the number of its addresses in
    /// `others`.
    ip: u32,
    /// Numbers of its names in `ends`, and of its node in `nodes`.
    pod: u32,
    hostname: u32,
    node: u32,
    /// `READY`, `SERVING`, `TERMINATING`, `V4`.
    flags: u8,
}

const READY: u8 = 1;
const SERVING: u8 = 2;
const TERMINATING: u8 = 4;
const V4: u8 = 8;

/// One endpoint of an [`Endpoints`] list, as read from it: the fields of an
/// [`Endpoint`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EndpointRef<'a> {
    /// Its addresses (one per family in practice).
    pub addresses: AddressesRef<'a>,
    /// `hostname`, when the pod has one and its subdomain is the Service.
    pub hostname: Option<&'a str>,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The pod behind it, when known.
    pub pod: Option<&'a str>,
    /// The node it runs on, when known.
    pub node: Option<&'a Arc<str>>,
}

impl EndpointRef<'_> {
    /// An owned copy.
    pub fn to_endpoint(&self) -> Endpoint {
        Endpoint {
            addresses: Addresses::from(self.addresses),
            hostname: self.hostname.map(Box::from),
            ready: self.ready,
            serving: self.serving,
            terminating: self.terminating,
            pod: self.pod.map(Box::from),
            node: self.node.cloned(),
        }
    }
}

impl<'a> From<&'a Endpoint> for EndpointRef<'a> {
    fn from(e: &'a Endpoint) -> Self {
        Self {
            addresses: AddressesRef::from(&e.addresses),
            hostname: e.hostname.as_deref(),
            ready: e.ready,
            serving: e.serving,
            terminating: e.terminating,
            pod: e.pod.as_deref(),
            node: e.node.as_ref(),
        }
    }
}

impl Endpoints {
    /// No endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Endpoint `i`.
    pub fn get(&self, i: usize) -> Option<EndpointRef<'_>> {
        self.entries.get(i).map(|p| self.unpack(p))
    }

    /// The endpoints, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            entries: self.entries.iter(),
        }
    }

    fn name(&self, n: u32) -> Option<&str> {
        let n = usize::try_from(n).ok()?;
        let end = *self.ends.get(n)? as usize;
        let start = match n.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        self.text.get(start..end)
    }

    fn unpack<'s>(&'s self, p: &'s Packed) -> EndpointRef<'s> {
        EndpointRef {
            addresses: AddressesRef::packed(p.flags & V4 != 0, p.ip, &self.others),
            hostname: self.name(p.hostname),
            ready: p.flags & READY != 0,
            serving: p.flags & SERVING != 0,
            terminating: p.flags & TERMINATING != 0,
            pod: self.name(p.pod),
            node: usize::try_from(p.node).ok().and_then(|n| self.nodes.get(n)),
        }
    }

    /// Adds `name` to the text; its number. `NONE` when the text would
    /// pass 4 GiB (the name is then left out).
    fn add_name(&mut self, name: &str) -> u32 {
        let (Ok(n), Ok(end)) = (
            u32::try_from(self.ends.len()),
            u32::try_from(self.text.len() + name.len()),
        ) else {
            return NONE;
        };
        if n == NONE {
            return NONE;
        }
        self.text.push_str(name);
        self.ends.push(end);
        n
    }

    fn add_node(&mut self, node: &Arc<str>) -> u32 {
        // A slice's endpoints run on a handful of nodes, most often the
        // last one's.
        if let Some(i) = self.nodes.iter().rposition(|n| n == node) {
            return u32::try_from(i).unwrap_or(NONE);
        }
        let Ok(i) = u32::try_from(self.nodes.len()) else {
            return NONE;
        };
        self.nodes.push(node.clone());
        i
    }

    /// Adds an endpoint at the end.
    pub fn push(&mut self, e: EndpointRef<'_>) {
        let pod = e.pod.map_or(NONE, |p| self.add_name(p));
        let hostname = match e.hostname {
            None => NONE,
            Some(h) if Some(h) == e.pod => pod,
            Some(h) => self.add_name(h),
        };
        let node = e.node.map_or(NONE, |n| self.add_node(n));
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let mut flags =
            flag(e.ready, READY) | flag(e.serving, SERVING) | flag(e.terminating, TERMINATING);
        let ip = match *e.addresses {
            [IpAddr::V4(v4)] => {
                flags |= V4;
                v4.to_bits()
            }
            // Past 4 G lists apart, the addresses are left out (`NONE`
            // numbers none).
            _ => match u32::try_from(self.others.len()) {
                Ok(n) if n != NONE => {
                    self.others.push(Addresses::from(e.addresses));
                    n
                }
                _ => NONE,
            },
        };
        self.entries.push(Packed {
            ip,
            pod,
            hostname,
            node,
            flags,
        });
    }

    /// Lets go of spare room (a list kept as long as its slice is).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.nodes.shrink_to_fit();
        self.others.shrink_to_fit();
    }
}

/// The endpoints of an [`Endpoints`] list, in order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    list: &'a Endpoints,
    entries: std::slice::Iter<'a, Packed>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = EndpointRef<'a>;

    fn next(&mut self) -> Option<EndpointRef<'a>> {
        self.entries.next().map(|p| self.list.unpack(p))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries.next_back().map(|p| self.list.unpack(p))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Endpoints {
    type Item = EndpointRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for Endpoints {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Endpoints {}

impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Endpoint>> for Endpoints {
    fn from(endpoints: Vec<Endpoint>) -> Self {
        endpoints.into_iter().collect()
    }
}

impl FromIterator<Endpoint> for Endpoints {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        let mut out = Self::new();
        for e in iter {
            out.push(EndpointRef::from(&e));
        }
        out.shrink_to_fit();
        out
    }
}

impl<'a> FromIterator<EndpointRef<'a>> for Endpoints {
    fn from_iter<I: IntoIterator<Item = EndpointRef<'a>>>(iter: I) -> Self {
        let mut out = Self::new();
        for e in iter {
            out.push(e);
        }
        out.shrink_to_fit();
        out
    }
}

/// Written as a list of [`Endpoint`]s.
impl serde::Serialize for Endpoints {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Endpoints {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Endpoint>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(
        ip: [u8; 4],
        hostname: Option<&str>,
        pod: Option<&str>,
        node: Option<&str>,
    ) -> Endpoint {
        Endpoint {
            addresses: [IpAddr::from(ip)].into(),
            hostname: hostname.map(Box::from),
            ready: ip[3].is_multiple_of(2),
            serving: ip[3].is_multiple_of(3),
            terminating: ip[3].is_multiple_of(5),
            pod: pod.map(Box::from),
            node: node.map(Arc::from),
        }
    }

    fn sample() -> Vec<Endpoint> {
        vec![
            endpoint([10, 0, 0, 1], Some("web-0"), Some("web-0"), Some("n1")),
            endpoint(
                [10, 0, 0, 2],
                Some("db"),
                Some("db-7d9f8-x2k4p"),
                Some("n2"),
            ),
            endpoint([10, 0, 0, 3], None, Some("api-7d9f8-q1w2e"), Some("n1")),
            endpoint([10, 0, 0, 4], None, None, None),
            endpoint([10, 0, 0, 5], Some(""), Some(""), None),
            endpoint([10, 0, 0, 6], Some("héte"), None, Some("n3")),
            Endpoint {
                addresses: Addresses::from(vec![
                    IpAddr::from([10, 0, 0, 7]),
                    IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 7]),
                ]),
                ..endpoint([10, 0, 0, 7], None, Some("dual"), None)
            },
            endpoint([10, 0, 0, 8], None, None, None),
        ]
    }

    #[test]
    fn endpoints_read_back_as_they_were_added() {
        let owned = sample();
        let packed = Endpoints::from(owned.clone());
        assert_eq!(packed.len(), owned.len());
        let back: Vec<Endpoint> = packed.iter().map(|e| e.to_endpoint()).collect();
        assert_eq!(back, owned);
        assert_eq!(packed.get(2).and_then(|e| e.pod), Some("api-7d9f8-q1w2e"));
        assert_eq!(packed.get(8), None);
        // A hostname that is the pod's name is kept once; node names once.
        assert_eq!(packed.ends.len(), 7);
        assert_eq!(packed.nodes.len(), 3);
        // Only the dual-stack endpoint's addresses are kept apart.
        assert_eq!(packed.others.len(), 1);
        assert_eq!(size_of::<Packed>(), 20);
        // Equal however packed: one by one, without shrinking.
        let mut one_by_one = Endpoints::new();
        for e in &owned {
            one_by_one.push(e.into());
        }
        assert_eq!(one_by_one, packed);
        let mut other = owned.clone();
        other[1].hostname = Some("db2".into());
        assert_ne!(Endpoints::from(other), packed);
        assert_ne!(Endpoints::from(owned[..7].to_vec()), packed);
    }

    #[test]
    fn endpoints_are_written_as_a_list_of_endpoints_and_collected() {
        let owned = sample();
        let packed = Endpoints::from(owned.clone());
        let as_list = serde_json::to_string(&owned).unwrap_or_default();
        assert_eq!(serde_json::to_string(&packed).unwrap_or_default(), as_list);
        let read: Endpoints = serde_json::from_str(&as_list).unwrap_or_default();
        assert_eq!(read, packed);
        let ready: Endpoints = packed.iter().filter(|e| e.ready).collect();
        let want: Vec<Endpoint> = owned.into_iter().filter(|e| e.ready).collect();
        assert_eq!(ready, Endpoints::from(want));
        assert_eq!(ready.len(), 4);
    }
}
