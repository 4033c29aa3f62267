//! The endpoints of a slice, packed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::varint::{put_prefixed, put_varint, take_bytes, take_prefixed, take_varint};
use crate::{Addresses, AddressesRef, Endpoint};

/// The endpoints of an EndpointSlice. A cluster has about as many of these
/// as pods, so they are packed one after another in one buffer: each a
/// byte of flags, its address (4 bytes for the usual one IPv4 address),
/// its pod's name and hostname (a StatefulSet pod's hostname, which is its
/// name, once), each after its length, and the number of its node's name
/// in a table of the slice's node names kept after the endpoints. An
/// endpoint costs its names' bytes and about 8 more; the list is one
/// allocation (a second only for endpoints with more than two addresses).
///
/// Two lists are equal when their endpoints are, however they were packed.
/// Read with [`Self::iter`], which gives each as an [`EndpointRef`].
#[derive(Clone, Default)]
pub struct Endpoints {
    /// The endpoints, then the node names from `nodes_at` on.
    buf: Vec<u8>,
    /// How many endpoints there are.
    len: u32,
    /// Where the node names start in `buf`.
    nodes_at: u32,
    /// The addresses of endpoints with more than two, by number. Boxed:
    /// nearly every list has none, and a pointer is a third of a vector.
    #[allow(clippy::box_collection)]
    many: Option<Box<Vec<Addresses>>>,
}

// An endpoint's flags.
const READY: u8 = 1;
const SERVING: u8 = 2;
const TERMINATING: u8 = 4;
const POD: u8 = 8;
/// The hostname is the pod's name (else, with `HOST`, its own).
const HOST_IS_POD: u8 = 16;
const HOST: u8 = 32;
const NODE: u8 = 64;
/// One IPv4 address, its 4 bytes next; without it a byte saying which of
/// the other cases follows.
const V4: u8 = 128;

// The address cases besides one IPv4 address.
const NO_ADDRESS: u8 = 0;
const ONE_V6: u8 = 1;
/// Two addresses, each after a byte 4 or 6.
const TWO: u8 = 2;
/// More: the number of their list in `many`.
const MANY: u8 = 3;

fn take_array<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    take_bytes(buf, N)?.try_into().ok()
}

/// A name after its length.
fn put_name(buf: &mut Vec<u8>, name: &str) {
    put_prefixed(buf, name.as_bytes());
}

fn take_name<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(take_prefixed(buf)?).ok()
}

/// An address after a byte 4 or 6.
fn put_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            buf.push(4);
            buf.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            buf.push(6);
            buf.extend_from_slice(&v6.octets());
        }
    }
}

fn take_ip(buf: &mut &[u8]) -> Option<IpAddr> {
    match take_array::<1>(buf)? {
        [4] => Some(Ipv4Addr::from(take_array::<4>(buf)?).into()),
        [6] => Some(Ipv6Addr::from(take_array::<16>(buf)?).into()),
        _ => None,
    }
}

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
    pub node: Option<&'a str>,
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
            node: self.node.map(Arc::from),
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
            node: e.node.as_deref(),
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
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Endpoint `i` (read through the ones before it).
    pub fn get(&self, i: usize) -> Option<EndpointRef<'_>> {
        self.iter().nth(i)
    }

    /// The endpoints, in order.
    pub fn iter(&self) -> Iter<'_> {
        let (records, nodes) = self
            .buf
            .split_at_checked(self.nodes_at as usize)
            .unwrap_or((&[], &[]));
        Iter {
            records,
            nodes,
            many: self.many.as_deref().map_or(&[], Vec::as_slice),
            left: self.len(),
        }
    }

    /// Where node `node`'s name is in the node names, adding it if new.
    fn node_number(&mut self, node: &str) -> usize {
        let table = self.buf.get(self.nodes_at as usize..).unwrap_or_default();
        let mut rest = table;
        while !rest.is_empty() {
            let at = table.len() - rest.len();
            match take_name(&mut rest) {
                Some(name) if name == node => return at,
                Some(_) => {}
                None => break,
            }
        }
        let at = table.len();
        put_name(&mut self.buf, node);
        at
    }

    /// Adds an endpoint at the end. One that would take the list past
    /// 4 GiB (or 4 G endpoints) is left out.
    pub fn push(&mut self, e: EndpointRef<'_>) {
        let old_len = self.buf.len();
        let node = e.node.map(|n| self.node_number(n));
        let record_at = self.buf.len();
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let host = match e.hostname {
            None => 0,
            Some(h) if Some(h) == e.pod => HOST_IS_POD,
            Some(_) => HOST,
        };
        let mut pushed_many = false;
        self.buf.push(
            flag(e.ready, READY)
                | flag(e.serving, SERVING)
                | flag(e.terminating, TERMINATING)
                | flag(e.pod.is_some(), POD)
                | flag(node.is_some(), NODE)
                | flag(matches!(*e.addresses, [IpAddr::V4(_)]), V4)
                | host,
        );
        match *e.addresses {
            [IpAddr::V4(v4)] => self.buf.extend_from_slice(&v4.octets()),
            [] => self.buf.push(NO_ADDRESS),
            [IpAddr::V6(v6)] => {
                self.buf.push(ONE_V6);
                self.buf.extend_from_slice(&v6.octets());
            }
            [a, b] => {
                self.buf.push(TWO);
                put_ip(&mut self.buf, a);
                put_ip(&mut self.buf, b);
            }
            _ => {
                pushed_many = true;
                self.buf.push(MANY);
                let many = self.many.get_or_insert_default();
                put_varint(&mut self.buf, many.len());
                many.push(Addresses::from(e.addresses));
            }
        }
        if let Some(pod) = e.pod {
            put_name(&mut self.buf, pod);
        }
        if let (Some(h), HOST) = (e.hostname, host) {
            put_name(&mut self.buf, h);
        }
        if let Some(node) = node {
            put_varint(&mut self.buf, node);
        }
        let record = self.buf.len() - record_at;
        let (Ok(len), Ok(nodes_at), Ok(_)) = (
            u32::try_from(self.len() + 1),
            u32::try_from(self.nodes_at as usize + record),
            u32::try_from(self.buf.len()),
        ) else {
            self.buf.truncate(old_len);
            if let Some(many) = self.many.as_mut().filter(|_| pushed_many) {
                many.pop();
            }
            return;
        };
        // The record goes before the node names (new ones among them).
        if let Some(after) = self.buf.get_mut(self.nodes_at as usize..) {
            after.rotate_right(record);
        }
        (self.len, self.nodes_at) = (len, nodes_at);
    }

    /// Lets go of spare room (a list kept as long as its slice is).
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
        if let Some(many) = &mut self.many {
            many.shrink_to_fit();
        }
    }
}

/// The endpoints of an [`Endpoints`] list, in order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    records: &'a [u8],
    nodes: &'a [u8],
    many: &'a [Addresses],
    left: usize,
}

impl<'a> Iter<'a> {
    fn take(&mut self) -> Option<EndpointRef<'a>> {
        let buf = &mut self.records;
        let [flags] = take_array::<1>(buf)?;
        let addresses = if flags & V4 != 0 {
            AddressesRef::one(Ipv4Addr::from(take_array::<4>(buf)?).into())
        } else {
            match take_array::<1>(buf)? {
                [NO_ADDRESS] => AddressesRef::from(&[][..]),
                [ONE_V6] => AddressesRef::one(Ipv6Addr::from(take_array::<16>(buf)?).into()),
                [TWO] => AddressesRef::two([take_ip(buf)?, take_ip(buf)?]),
                [MANY] => AddressesRef::from(self.many.get(take_varint(buf)?)?),
                _ => return None,
            }
        };
        let pod = if flags & POD != 0 {
            Some(take_name(buf)?)
        } else {
            None
        };
        let hostname = if flags & HOST_IS_POD != 0 {
            pod
        } else if flags & HOST != 0 {
            Some(take_name(buf)?)
        } else {
            None
        };
        let node = if flags & NODE != 0 {
            let mut name = self.nodes.get(take_varint(buf)?..)?;
            Some(take_name(&mut name)?)
        } else {
            None
        };
        Some(EndpointRef {
            addresses,
            hostname,
            ready: flags & READY != 0,
            serving: flags & SERVING != 0,
            terminating: flags & TERMINATING != 0,
            pod,
            node,
        })
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = EndpointRef<'a>;

    fn next(&mut self) -> Option<EndpointRef<'a>> {
        self.left = self.left.checked_sub(1)?;
        let e = self.take();
        if e.is_none() {
            self.left = 0;
        }
        e
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
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

/// Written as a list of [`Endpoint`]s for people (JSON); packed as it is
/// for a binary format (the store's packed objects): its counts, its
/// buffer, and the lists of endpoints with more than two addresses. A
/// packed list is checked whole when read back.
impl serde::Serialize for Endpoints {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_seq(self.iter());
        }
        let many = self.many.as_deref().map_or(&[][..], Vec::as_slice);
        (self.len, self.nodes_at, Bytes(&self.buf), many).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoints {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return Vec::<Endpoint>::deserialize(deserializer).map(Self::from);
        }
        let (len, nodes_at, ByteBuf(buf), many) =
            <(u32, u32, ByteBuf, Vec<Addresses>)>::deserialize(deserializer)?;
        let list = Self {
            buf,
            len,
            nodes_at,
            many: (!many.is_empty()).then(|| Box::new(many)),
        };
        if !list.is_whole() {
            return Err(serde::de::Error::custom("malformed packed endpoints"));
        }
        Ok(list)
    }
}

impl Endpoints {
    /// Whether the buffer reads as `len` endpoints and nothing more, each
    /// naming a node and an address list that exist.
    fn is_whole(&self) -> bool {
        let mut it = self.iter();
        let read = it.by_ref().count();
        let nodes_at = self.nodes_at as usize;
        read == self.len() && it.records.is_empty() && nodes_at <= self.buf.len()
    }
}

/// Bytes written as one run (not a list of numbers).
struct Bytes<'a>(&'a [u8]);

impl serde::Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Bytes read back from one run.
struct ByteBuf(Vec<u8>);

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ByteBuf, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
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
            Endpoint {
                addresses: Addresses::from([IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 9])]),
                ..endpoint(
                    [10, 0, 0, 9],
                    Some("v6"),
                    Some(&"p".repeat(300)),
                    Some("n1"),
                )
            },
            Endpoint {
                addresses: Addresses::new(),
                ..endpoint([10, 0, 0, 10], None, None, Some(&"n".repeat(200)))
            },
            Endpoint {
                addresses: Addresses::from(vec![
                    IpAddr::from([10, 0, 0, 11]),
                    IpAddr::from([10, 0, 0, 12]),
                    IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 11]),
                ]),
                ..endpoint([10, 0, 0, 11], None, None, Some("n2"))
            },
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
        assert_eq!(packed.get(11), None);
        // Node names once, each after the endpoints (a long one after a
        // two-byte length).
        let nodes = packed
            .buf
            .get(packed.nodes_at as usize..)
            .unwrap_or_default();
        assert_eq!(nodes.get(..9), Some(&b"\x02n1\x02n2\x02n3"[..]));
        assert_eq!(nodes.get(9..11), Some(&[200, 1][..]));
        assert_eq!(nodes.len(), 11 + 200);
        // Only the endpoint with three addresses has them apart.
        assert_eq!(packed.many.as_ref().map(|m| m.len()), Some(1));
        assert!(size_of::<Endpoints>() <= 40);
        let first = Endpoints::from(owned[..8].to_vec());
        assert!(first.many.is_none());
        // Equal however packed: one by one, without shrinking.
        let mut one_by_one = Endpoints::new();
        for e in &owned {
            one_by_one.push(e.into());
        }
        assert_eq!(one_by_one, packed);
        let mut other = owned.clone();
        other[1].hostname = Some("db2".into());
        assert_ne!(Endpoints::from(other), packed);
        assert_ne!(first, packed);
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
        assert_eq!(ready.len(), 5);
    }

    #[test]
    fn endpoints_pack_as_they_are_and_a_malformed_pack_is_refused() {
        let packed = Endpoints::from(sample());
        let bytes = postcard::to_allocvec(&packed).unwrap_or_default();
        let back: Option<Endpoints> = postcard::from_bytes(&bytes).ok();
        assert_eq!(back.as_ref(), Some(&packed));
        assert_eq!(back.map(|b| b.buf), Some(packed.buf.clone()));
        // A count that does not match, a node past the names, a cut buffer.
        for bad in [
            Endpoints {
                len: packed.len + 1,
                ..packed.clone()
            },
            Endpoints {
                len: packed.len - 1,
                ..packed.clone()
            },
            Endpoints {
                nodes_at: packed.nodes_at + 3,
                ..packed.clone()
            },
            Endpoints {
                buf: packed.buf[..packed.buf.len() / 2].to_vec(),
                ..packed.clone()
            },
            Endpoints {
                many: None,
                ..packed.clone()
            },
        ] {
            let bytes = postcard::to_allocvec(&bad).unwrap_or_default();
            assert!(postcard::from_bytes::<Endpoints>(&bytes).is_err());
        }
    }
}
