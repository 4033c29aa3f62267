//! The immutable snapshot the engine answers from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::shards::{Shards, hash_of, swap_remove_position, touch};

/// Pod records `<a-b-c-d>.<ns>.pod.<zone>` (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodMode {
    /// Only for an IP that a pod in that namespace has (the default).
    #[default]
    Verified,
    /// Any well-formed dashed IP answers with that IP (kube-dns behaviour).
    Insecure,
    /// No pod records.
    Disabled,
}

/// What a zone is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// A cluster zone (`cluster.local`).
    Cluster,
    /// The multi-cluster zone (`clusterset.local`).
    ClusterSet,
    /// A reverse zone (`in-addr.arpa`/`ip6.arpa`).
    Reverse,
}

/// A zone we are authoritative for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The apex, lower-case wire form.
    pub apex: Box<[u8]>,
    /// Its kind.
    pub kind: ZoneKind,
    /// SOA MNAME and NS target (`ns.dns.<zone>.`).
    pub ns: Box<[u8]>,
    /// SOA RNAME (`hostmaster.<zone>.`).
    pub hostmaster: Box<[u8]>,
}

/// An SRV record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Srv {
    /// Priority (always 0 here).
    pub priority: u16,
    /// Weight (`100/n`, at least 1).
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target, lower-case wire form; one copy for every SRV record naming
    /// it (an endpoint is the target of each of its service's ports, at
    /// the port's name and at the service's).
    pub target: Arc<[u8]>,
}

/// One owner name and its records. A node with no records is an empty
/// non-terminal: the name exists (NODATA), it just has nothing of any type.
///
/// Most names hold one address or one PTR target (a pod's hostname, a
/// ClusterIP service, a reverse name), so those are kept inline; SRV
/// records alone (the `_<port>._<proto>` names, a sixth of a cluster's)
/// in a slice of their own, and beside one IPv4 address (a ClusterIP
/// service's name); anything else goes to a boxed [`Records`]. A
/// node is 32 bytes, its name's place in the name table included. Nodes
/// compare by their records, not by how they are kept.
#[derive(Clone, Default)]
pub struct Node {
    /// Index of its zone in [`Snapshot::zones`].
    pub zone: u16,
    /// The zone apex (SOA and NS live here).
    pub apex: bool,
    /// Address answers rotate between queries (headless services).
    pub rotate: bool,
    /// Where its name starts in its shard's names, once in a name table
    /// (the four bytes the other fields leave over).
    at: u32,
    data: Data,
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        (self.zone, self.apex, self.rotate) == (other.zone, other.apex, other.rotate)
            && self.a() == other.a()
            && self.aaaa() == other.aaaa()
            && self.srv() == other.srv()
            && self.cname() == other.cname()
            && self.ptr() == other.ptr()
            && self.txt() == other.txt()
    }
}

impl Eq for Node {}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("zone", &self.zone)
            .field("apex", &self.apex)
            .field("rotate", &self.rotate)
            .field("data", &self.data)
            .finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Data {
    #[default]
    Empty,
    A(Ipv4Addr),
    Ptr(Arc<[u8]>),
    Srv(Box<[Srv]>),
    /// One IPv4 address and SRV records: a ClusterIP service with named
    /// ports (the address fits beside the tag).
    ASrv(Ipv4Addr, Box<[Srv]>),
    Full(Box<Records>),
}

fn joined_srv(have: Box<[Srv]>, fresh: Vec<Srv>) -> Box<[Srv]> {
    let mut all = Vec::with_capacity(have.len() + fresh.len());
    all.extend(have);
    all.extend(fresh);
    all.into_boxed_slice()
}

/// The records of a node that holds more than one address or PTR target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Records {
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    srv: Vec<Srv>,
    cname: Option<Box<[u8]>>,
    ptr: Vec<Arc<[u8]>>,
    txt: Option<(Box<[u8]>, u32)>,
}

impl Node {
    /// Reads the records kept out of the node (see [`touch`]).
    fn touch(&self) {
        match &self.data {
            Data::Empty | Data::A(_) => {}
            Data::Ptr(p) => touch(p.first().copied()),
            Data::Srv(s) | Data::ASrv(_, s) => touch(s.first().map(|s| s.port)),
            Data::Full(r) => touch(r.a.first().copied()),
        }
    }

    /// An empty node of zone `zone`.
    pub fn new(zone: u16) -> Self {
        Self {
            zone,
            ..Self::default()
        }
    }

    /// The apex node of zone `zone`.
    pub fn apex(zone: u16) -> Self {
        Self {
            zone,
            apex: true,
            ..Self::default()
        }
    }

    /// Takes the records and flags of `other`; keeps its own name's place
    /// (a node in a name table is replaced this way, never by assignment).
    pub(crate) fn assign(&mut self, other: Self) {
        let at = self.at;
        *self = other;
        self.at = at;
    }

    /// A records.
    pub fn a(&self) -> &[Ipv4Addr] {
        match &self.data {
            Data::A(ip) | Data::ASrv(ip, _) => std::slice::from_ref(ip),
            Data::Full(r) => &r.a,
            _ => &[],
        }
    }

    /// AAAA records.
    pub fn aaaa(&self) -> &[Ipv6Addr] {
        match &self.data {
            Data::Full(r) => &r.aaaa,
            _ => &[],
        }
    }

    /// SRV records.
    pub fn srv(&self) -> &[Srv] {
        match &self.data {
            Data::Srv(s) | Data::ASrv(_, s) => s,
            Data::Full(r) => &r.srv,
            _ => &[],
        }
    }

    /// CNAME target.
    pub fn cname(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Full(r) => r.cname.as_deref(),
            _ => None,
        }
    }

    /// PTR targets.
    pub fn ptr(&self) -> &[Arc<[u8]>] {
        match &self.data {
            Data::Ptr(p) => std::slice::from_ref(p),
            Data::Full(r) => &r.ptr,
            _ => &[],
        }
    }

    /// One TXT string and its TTL.
    pub fn txt(&self) -> Option<(&[u8], u32)> {
        match &self.data {
            Data::Full(r) => r.txt.as_ref().map(|(t, ttl)| (&t[..], *ttl)),
            _ => None,
        }
    }

    /// Whether it holds no record (an empty non-terminal, or the apex).
    pub fn is_empty(&self) -> bool {
        self.data == Data::Empty
    }

    /// Changes the records of every type, spilling an inline record into
    /// the box first.
    fn full(&mut self, change: impl FnOnce(&mut Records)) {
        let mut r = match std::mem::take(&mut self.data) {
            Data::Empty => Box::default(),
            Data::A(ip) => Box::new(Records {
                a: vec![ip],
                ..Records::default()
            }),
            Data::Ptr(p) => Box::new(Records {
                ptr: vec![p],
                ..Records::default()
            }),
            Data::Srv(srv) => Box::new(Records {
                srv: srv.into_vec(),
                ..Records::default()
            }),
            Data::ASrv(ip, srv) => Box::new(Records {
                a: vec![ip],
                srv: srv.into_vec(),
                ..Records::default()
            }),
            Data::Full(b) => b,
        };
        change(&mut r);
        self.data = Data::Full(r);
    }

    /// Adds addresses, each unless it is there already, in linear time (a
    /// headless service may have thousands).
    pub fn extend_addresses(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut seen: FxHashSet<IpAddr> = self
            .a()
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(self.aaaa().iter().map(|a| IpAddr::V6(*a)))
            .collect();
        for ip in ips {
            if !seen.insert(ip) {
                continue;
            }
            match ip {
                IpAddr::V4(v4) if self.data == Data::Empty => self.data = Data::A(v4),
                IpAddr::V4(v4) if matches!(self.data, Data::Srv(_)) => {
                    if let Data::Srv(srv) = std::mem::take(&mut self.data) {
                        self.data = Data::ASrv(v4, srv);
                    }
                }
                IpAddr::V4(v4) => self.full(|r| r.a.push(v4)),
                IpAddr::V6(v6) => self.full(|r| r.aaaa.push(v6)),
            }
        }
    }

    /// Adds SRV records, each unless it is there already, in linear time.
    pub fn extend_srv(&mut self, records: impl IntoIterator<Item = Srv>) {
        let incoming: Vec<Srv> = records.into_iter().collect();
        let keep: Vec<bool> = {
            let mut seen: FxHashSet<&Srv> = self.srv().iter().collect();
            incoming.iter().map(|s| seen.insert(s)).collect()
        };
        let fresh: Vec<Srv> = incoming
            .into_iter()
            .zip(keep)
            .filter_map(|(s, keep)| keep.then_some(s))
            .collect();
        if fresh.is_empty() {
            return;
        }
        match std::mem::take(&mut self.data) {
            Data::Empty => self.data = Data::Srv(fresh.into_boxed_slice()),
            Data::Srv(have) => self.data = Data::Srv(joined_srv(have, fresh)),
            Data::A(ip) => self.data = Data::ASrv(ip, fresh.into_boxed_slice()),
            Data::ASrv(ip, have) => self.data = Data::ASrv(ip, joined_srv(have, fresh)),
            other => {
                self.data = other;
                self.full(|r| r.srv.extend(fresh));
            }
        }
    }

    /// Adds a PTR target unless it is there already.
    pub fn push_ptr(&mut self, target: Arc<[u8]>) {
        match &self.data {
            Data::Empty => self.data = Data::Ptr(target),
            _ if self.ptr().contains(&target) => {}
            _ => self.full(|r| r.ptr.push(target)),
        }
    }

    /// Sets the CNAME target.
    pub fn set_cname(&mut self, target: Box<[u8]>) {
        self.full(|r| r.cname = Some(target));
    }

    /// Sets the TXT string and its TTL.
    pub fn set_txt(&mut self, txt: Box<[u8]>, ttl: u32) {
        self.full(|r| r.txt = Some((txt, ttl)));
    }

    /// Adds the records and flags of `other`, a node of the same name built
    /// apart (a full build's parts meet at the empty non-terminals above
    /// their services, and nowhere else).
    pub(crate) fn absorb(&mut self, other: Self) {
        self.apex |= other.apex;
        self.rotate |= other.rotate;
        if other.is_empty() {
            return;
        }
        let v4 = other.a().iter().map(|a| IpAddr::V4(*a));
        let v6 = other.aaaa().iter().map(|a| IpAddr::V6(*a));
        self.extend_addresses(v4.chain(v6));
        self.extend_srv(other.srv().iter().cloned());
        for p in other.ptr() {
            self.push_ptr(p.clone());
        }
        if let Some(c) = other.cname() {
            self.set_cname(c.into());
        }
        if let Some((t, ttl)) = other.txt() {
            self.set_txt(t.into(), ttl);
        }
    }

    /// Lets go of the room the record lists grew beyond their records
    /// (each list grows by doubling while a build adds to it).
    fn shrink(&mut self) {
        if let Data::Full(r) = &mut self.data {
            r.a.shrink_to_fit();
            r.aaaa.shrink_to_fit();
            r.srv.shrink_to_fit();
            r.ptr.shrink_to_fit();
        }
    }

    /// Orders SRV records so that the records of one target are side by side.
    pub fn sort_srv(&mut self) {
        let srv = match &mut self.data {
            Data::Srv(s) | Data::ASrv(_, s) => &mut s[..],
            Data::Full(r) => &mut r.srv[..],
            _ => return,
        };
        srv.sort_by(|x, y| (&x.target, x.port).cmp(&(&y.target, y.port)));
    }

    /// How many records it holds (the summary's count).
    pub fn records(&self) -> usize {
        self.a().len()
            + self.aaaa().len()
            + self.srv().len()
            + self.ptr().len()
            + usize::from(self.cname().is_some())
    }
}

/// Owner names (lower-case wire form) and their nodes, in shards that
/// snapshots share (see `shards.rs`).
#[derive(Clone, Debug, Default)]
pub struct Nodes(Shards<NameShard>);

/// One shard of the name table: its nodes in a vector, a hash table of
/// their positions, and their names one after another in one buffer, each
/// after its length. A name costs its length, five bytes and its slot in
/// the table (four bytes and a control byte), where a name of its own
/// would be an allocation and a pointer and a node in the table's slots
/// would leave its room empty in every free slot (tables are a power of
/// two, about 60% full); and a shard is copied (when a snapshot changes it)
/// in three copies, not one per name.
#[derive(Clone, Debug, Default)]
pub(crate) struct NameShard {
    /// Positions in `nodes`, by the hash of their names.
    index: HashTable<u32>,
    nodes: Vec<Node>,
    names: Vec<u8>,
    /// Bytes of `names` that no node uses any more.
    unused: usize,
}

/// The name at `at` in `names`: its length byte, then the name.
fn name_in(names: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    let Some(&len) = names.get(at) else {
        return &[];
    };
    names.get(at + 1..at + 1 + usize::from(len)).unwrap_or(&[])
}

impl NameShard {
    fn name(&self, node: &Node) -> &[u8] {
        name_in(&self.names, node.at)
    }

    /// The position of `name` in `nodes`.
    fn position(&self, hash: u64, name: &[u8]) -> Option<usize> {
        let (nodes, names) = (&self.nodes, &self.names);
        let at = |i: u32| {
            nodes
                .get(i as usize)
                .map_or(&[][..], |n| name_in(names, n.at))
        };
        let i = *self.index.find(hash, |&i| at(i) == name)?;
        Some(i as usize)
    }

    fn find(&self, hash: u64, name: &[u8]) -> Option<&Node> {
        self.nodes.get(self.position(hash, name)?)
    }

    fn find_mut(&mut self, hash: u64, name: &[u8]) -> Option<&mut Node> {
        let i = self.position(hash, name)?;
        self.nodes.get_mut(i)
    }

    /// Adds `name`, which it must not hold. None for a name longer than a
    /// wire name can be (or a shard of 4 GiB of names or nodes): not added.
    fn insert(&mut self, hash: u64, name: &[u8], mut node: Node) -> Option<&mut Node> {
        node.at = u32::try_from(self.names.len()).ok()?;
        let len = u8::try_from(name.len()).ok()?;
        let i = u32::try_from(self.nodes.len()).ok()?;
        self.names.push(len);
        self.names.extend_from_slice(name);
        self.nodes.push(node);
        let (nodes, names) = (&self.nodes, &self.names);
        self.index.insert_unique(hash, i, |&i| {
            hash_of(
                nodes
                    .get(i as usize)
                    .map_or(&[][..], |n| name_in(names, n.at)),
            )
        });
        self.nodes.last_mut()
    }

    /// Takes out `name`; the last node takes its place, and the names'
    /// bytes are reclaimed once most of the buffer is unused.
    fn remove(&mut self, hash: u64, name: &[u8]) -> Option<Node> {
        let i = self.position(hash, name)?;
        let last = self.nodes.len().checked_sub(1)?;
        let last_hash = hash_of(self.nodes.get(last).map_or(&[][..], |n| self.name(n)));
        swap_remove_position(&mut self.index, hash, i, last, last_hash);
        let node = self.nodes.swap_remove(i);
        self.unused += 1 + name.len();
        if self.unused > 256 && 2 * self.unused > self.names.len() {
            let mut names = Vec::with_capacity(self.names.len() - self.unused);
            for n in &mut self.nodes {
                let at = u32::try_from(names.len()).unwrap_or(u32::MAX);
                let name = name_in(&self.names, n.at);
                names.push(name.len() as u8);
                names.extend_from_slice(name);
                n.at = at;
            }
            self.names = names;
            self.unused = 0;
        }
        Some(node)
    }

    /// Its nodes and names at their size.
    fn shrink(&mut self) {
        self.names.shrink_to_fit();
        self.nodes.shrink_to_fit();
        self.index.shrink_to_fit(|&i| {
            let node = self.nodes.get(i as usize);
            hash_of(node.map_or(&[][..], |n| name_in(&self.names, n.at)))
        });
        self.nodes.iter_mut().for_each(Node::shrink);
    }
}

impl Nodes {
    /// An empty map sized for about `names` names.
    pub(crate) fn for_names(names: usize) -> Self {
        Self(Shards::for_entries(names))
    }

    /// Adds the names of `other`, built apart; a name both have gets the
    /// records of both. Name by name, whatever the shards of each.
    pub(crate) fn merge(&mut self, other: Self) {
        let mut added = 0;
        for NameShard { nodes, names, .. } in other.0.into_shards() {
            for node in nodes {
                let name = name_in(&names, node.at);
                let hash = hash_of(name);
                let mine = self.0.shard_mut(hash);
                match mine.find_mut(hash, name) {
                    Some(have) => have.absorb(node),
                    None => {
                        if mine.insert(hash, name, node).is_some() {
                            added += 1;
                        }
                    }
                }
            }
        }
        self.0.count(added, 0);
    }

    /// The hash [`Self::get`] finds `name` by.
    pub fn hash(name: &[u8]) -> u64 {
        hash_of(name)
    }

    /// Brings into the cache what looking up the names of `hashes` (each
    /// [`Self::hash`] of a name) will read: the shards, their tables, and
    /// the nodes, names and records that may match. Lookups of a batch of
    /// queries wait on one cache miss after another (a shard, its table,
    /// the node, its name); warmed together first, their misses overlap.
    pub fn warm(&self, hashes: &[u64]) {
        let head = |shard: &NameShard| {
            touch((
                shard.index.len(),
                shard.nodes.as_ptr(),
                shard.names.as_ptr(),
            ));
        };
        self.0.warm(hashes, head, |shard, hash| {
            shard.index.find(hash, |&i| {
                if let Some(node) = shard.nodes.get(i as usize) {
                    touch(shard.names.get(node.at as usize).copied());
                    node.touch();
                }
                false
            });
        });
    }

    /// The node of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        let hash = hash_of(name);
        self.0.shard(hash).find(hash, name)
    }

    /// Whether `name` exists.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Every name and its node, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.0
            .shards()
            .flat_map(|s| s.nodes.iter().map(move |n| (s.name(n), n)))
    }

    /// Every name, in no order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(k, _)| k)
    }

    /// Every node, in no order.
    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.iter().map(|(_, n)| n)
    }

    /// The node of `name`, to change (to replace it, [`Node::assign`]).
    pub(crate) fn get_mut(&mut self, name: &[u8]) -> Option<&mut Node> {
        let hash = hash_of(name);
        let shard = self
            .0
            .shard_mut_if(hash, |s| s.find(hash, name).is_some())?;
        shard.find_mut(hash, name)
    }

    /// Adds `name`, which must not exist yet; returns its node (none for a
    /// name too long to be a wire name, which is not added).
    pub(crate) fn insert_new(&mut self, name: &[u8], node: Node) -> Option<&mut Node> {
        let hash = hash_of(name);
        u8::try_from(name.len()).ok()?;
        self.0.count(1, 0);
        self.0.shard_mut(hash).insert(hash, name, node)
    }

    /// Takes out `name`.
    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<Node> {
        let hash = hash_of(name);
        let node = self
            .0
            .shard_mut_if(hash, |s| s.find(hash, name).is_some())?
            .remove(hash, name)?;
        self.0.count(0, 1);
        Some(node)
    }

    /// The map with its shards sized for its names (see `Shards::larger`),
    /// each name buffer and record list no larger than what it holds: one
    /// grown name by name (record by record) has up to half of it spare.
    pub(crate) fn resized(self) -> Self {
        let mut next = match self.0.larger() {
            None => self,
            Some(next) => {
                let mut next = Self(next);
                for shard in self.0.into_shards() {
                    for node in &shard.nodes {
                        next.insert_new(shard.name(node), node.clone());
                    }
                }
                next
            }
        };
        next.0.for_each_shard_mut(NameShard::shrink);
        next
    }

    /// Every name and its node, taken out.
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (Box<[u8]>, Node)> {
        self.0.into_shards().flat_map(|s| {
            let NameShard { nodes, names, .. } = s;
            nodes
                .into_iter()
                .map(move |n| (Box::from(name_in(&names, n.at)), n))
                .collect::<Vec<_>>()
        })
    }

    /// Changes every node in place.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut Node)) {
        self.0
            .for_each_shard_mut(|s| s.nodes.iter_mut().for_each(&mut f));
    }
}

/// The verified pod records: the addresses of each namespace's pods.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodAddresses {
    /// The namespace label (lower case) → its number in the sets below.
    namespaces: FxHashMap<Box<[u8]>, u32>,
    /// `namespace number << 32 | IPv4 address`.
    v4: Shards<HashTable<u64>>,
    /// `(namespace number, IPv6 address)`.
    v6: Shards<HashTable<(u32, u128)>>,
}

/// Everything the engine needs to answer, immutable once built.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Generation: the SOA serial.
    pub generation: u64,
    /// Every source has delivered its first complete state (or the startup
    /// timeout passed). Until then names in our zones get SERVFAIL: an
    /// answer from a partial state would be a false NXDOMAIN.
    pub complete: bool,
    /// TTL of every record but `dns-version`.
    pub ttl: u32,
    /// Pod record mode.
    pub pods: PodMode,
    /// Answer a search-path expansion that does not exist with the first
    /// expansion that does (`--autopath`).
    pub autopath: bool,
    /// Our zones (shared with the snapshots updated from this one).
    pub zones: Arc<Vec<Zone>>,
    /// Apex (lower-case wire) → index into `zones`.
    pub zone_index: Arc<ZoneIndex>,
    /// Owner (lower-case wire) → records.
    pub nodes: Nodes,
    /// Verified pod records (`--pods verified`), kept as addresses rather
    /// than as names (one per pod would be most of the snapshot).
    pub(crate) pods_by_namespace: PodAddresses,
    /// How many records the nodes hold.
    pub(crate) records: usize,
}

/// Zone apexes (lower-case wire) and their number in [`Snapshot::zones`].
/// A query's name is tried at each of its label boundaries; the lengths
/// the apexes have are kept apart, so that only a suffix of one of those
/// lengths (most often one, or none) is hashed and looked up.
#[derive(Clone, Debug, Default)]
pub struct ZoneIndex {
    apexes: FxHashMap<Box<[u8]>, u16>,
    /// Bit `n` set: some apex is `n` octets long (a wire name is at most 255).
    lengths: [u64; 4],
}

impl ZoneIndex {
    /// The zone whose apex is `name`.
    pub fn get(&self, name: &[u8]) -> Option<u16> {
        let n = name.len();
        if n > 255 || self.lengths[n / 64] & (1 << (n % 64)) == 0 {
            return None;
        }
        self.apexes.get(name).copied()
    }

    /// Adds an apex.
    pub fn insert(&mut self, apex: Box<[u8]>, zone: u16) {
        let n = apex.len();
        if n <= 255 {
            self.lengths[n / 64] |= 1 << (n % 64);
        }
        self.apexes.insert(apex, zone);
    }
}

fn pod_v4(ns: u32, ip: Ipv4Addr) -> u64 {
    u64::from(ns) << 32 | u64::from(u32::from(ip))
}

impl Snapshot {
    /// The zone containing a lower-case wire name (longest match), if any.
    pub fn find_zone(&self, name: &[u8]) -> Option<(u16, usize)> {
        let mut pos = 0;
        loop {
            if let Some(z) = self.zone_index.get(&name[pos..]) {
                return Some((z, pos));
            }
            let len = usize::from(*name.get(pos)?);
            if len == 0 {
                return None;
            }
            pos += 1 + len;
        }
    }

    /// Whether a pod of namespace `ns` (its lower-case label) has address
    /// `ip` (the verified pod records).
    pub fn has_pod(&self, ns: &[u8], ip: IpAddr) -> bool {
        let p = &self.pods_by_namespace;
        let Some(&n) = p.namespaces.get(ns) else {
            return false;
        };
        match ip {
            IpAddr::V4(v4) => {
                let k = pod_v4(n, v4);
                p.v4.find(hash_of(&k), |x| *x == k).is_some()
            }
            IpAddr::V6(v6) => {
                let k = (n, u128::from(v6));
                p.v6.find(hash_of(&k), |x| *x == k).is_some()
            }
        }
    }

    /// Records a verified pod address; returns whether it is new.
    pub fn add_pod(&mut self, ns: &[u8], ip: IpAddr) -> bool {
        let p = &mut self.pods_by_namespace;
        let n = match p.namespaces.get(ns) {
            Some(&n) => n,
            None => {
                let next = u32::try_from(p.namespaces.len()).unwrap_or(u32::MAX);
                p.namespaces.insert(ns.into(), next);
                next
            }
        };
        match ip {
            IpAddr::V4(v4) => {
                let k = pod_v4(n, v4);
                let hash = hash_of(&k);
                if p.v4.find(hash, |x| *x == k).is_some() {
                    return false;
                }
                p.v4.insert_unique(hash, k, hash_of);
            }
            IpAddr::V6(v6) => {
                let k = (n, u128::from(v6));
                let hash = hash_of(&k);
                if p.v6.find(hash, |x| *x == k).is_some() {
                    return false;
                }
                p.v6.insert_unique(hash, k, hash_of);
            }
        }
        true
    }

    /// Takes out a verified pod address.
    pub fn remove_pod(&mut self, ns: &[u8], ip: IpAddr) {
        let p = &mut self.pods_by_namespace;
        let Some(&n) = p.namespaces.get(ns) else {
            return;
        };
        match ip {
            IpAddr::V4(v4) => {
                let k = pod_v4(n, v4);
                p.v4.remove(hash_of(&k), |x| *x == k);
            }
            IpAddr::V6(v6) => {
                let k = (n, u128::from(v6));
                p.v6.remove(hash_of(&k), |x| *x == k);
            }
        }
    }

    /// Sizes the pod address sets for about `pods` addresses (before the
    /// first is added).
    pub(crate) fn expect_pods(&mut self, pods: usize) {
        if self.pod_count() == 0 {
            self.pods_by_namespace.v4 = Shards::for_entries(pods);
        }
    }

    /// Every verified pod address with its namespace label.
    pub fn pods(&self) -> impl Iterator<Item = (&[u8], IpAddr)> {
        let p = &self.pods_by_namespace;
        let names: FxHashMap<u32, &[u8]> = p.namespaces.iter().map(|(k, v)| (*v, &k[..])).collect();
        let v4 = p.v4.iter().filter_map(|k| {
            let ns = u32::try_from(k >> 32).ok()?;
            let ip = Ipv4Addr::from(u32::try_from(k & 0xffff_ffff).ok()?);
            Some((ns, IpAddr::V4(ip)))
        });
        let v6 =
            p.v6.iter()
                .map(|(ns, ip)| (*ns, IpAddr::V6(Ipv6Addr::from(*ip))));
        v4.chain(v6)
            .filter_map(move |(ns, ip)| Some((*names.get(&ns)?, ip)))
    }

    /// How many verified pod addresses.
    pub fn pod_count(&self) -> usize {
        self.pods_by_namespace.v4.len() + self.pods_by_namespace.v6.len()
    }

    /// How many names it answers: the nodes and the verified pod records.
    pub fn names(&self) -> usize {
        self.nodes.len() + self.pod_count()
    }

    /// How many records: those of the nodes and the verified pod records.
    pub fn records(&self) -> usize {
        self.records + self.pod_count()
    }

    /// Counts the nodes' records again (after a full build).
    pub(crate) fn count_records(&mut self) {
        self.records = self.nodes.values().map(Node::records).sum();
    }

    /// Adjusts the count of the nodes' records after a change.
    pub(crate) fn adjust_records(&mut self, before: usize, after: usize) {
        self.records = (self.records + after).saturating_sub(before);
    }

    /// The SOA serial (RFC 1982 arithmetic wraps it into 32 bits).
    pub fn serial(&self) -> u32 {
        self.generation as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_small() {
        // Its name's place in the name table included.
        assert!(size_of::<Node>() <= 32);
    }

    fn srv(port: u16, target: &str) -> Srv {
        Srv {
            priority: 0,
            weight: 50,
            port,
            target: Arc::from(target.as_bytes()),
        }
    }

    #[test]
    fn srv_records_alone_are_kept_apart_and_spill_with_the_rest() {
        let mut node = Node::new(0);
        node.extend_srv([srv(80, "b"), srv(80, "a")]);
        node.extend_srv([srv(80, "a"), srv(443, "a")]);
        assert!(matches!(node.data, Data::Srv(_)));
        node.sort_srv();
        let ports: Vec<(u16, &[u8])> = node.srv().iter().map(|s| (s.port, &s.target[..])).collect();
        assert_eq!(ports, [(80, &b"a"[..]), (443, b"a"), (80, b"b")]);
        assert_eq!(node.records(), 3);
        // The same records kept in the box compare equal.
        let mut boxed = Node::new(0);
        boxed.full(|r| r.srv = node.srv().to_vec());
        assert!(matches!(boxed.data, Data::Full(_)));
        assert_eq!(node, boxed);
        // One IPv4 address stays beside them, in either order; a second
        // spills both into the box, every one kept.
        node.extend_addresses([IpAddr::from([10, 0, 0, 1])]);
        assert!(matches!(node.data, Data::ASrv(..)));
        assert_eq!((node.srv().len(), node.a().len()), (3, 1));
        assert_ne!(node, boxed);
        let mut first_a = Node::new(0);
        first_a.extend_addresses([IpAddr::from([10, 0, 0, 1])]);
        first_a.extend_srv(node.srv().iter().rev().cloned());
        first_a.extend_srv([srv(80, "a")]);
        first_a.sort_srv();
        assert!(matches!(first_a.data, Data::ASrv(..)));
        assert_eq!(first_a, node);
        node.extend_addresses([IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]);
        assert!(matches!(node.data, Data::Full(_)));
        assert_eq!((node.srv().len(), node.a().len()), (3, 2));
    }

    fn name(i: usize) -> Vec<u8> {
        svcnet_wire::encode_name(&format!("host-{i}.svc-{}.ns.svc.cluster.local", i % 7))
            .unwrap_or_default()
    }

    #[test]
    fn names_are_found_changed_and_taken_out() {
        let mut nodes = Nodes::for_names(1_000);
        for i in 0..1_000 {
            let node = nodes.insert_new(&name(i), Node::new(0));
            assert!(node.is_some());
        }
        assert_eq!(nodes.len(), 1_000);
        // A name longer than a wire name can be is not added.
        assert!(nodes.insert_new(&[1; 300], Node::new(0)).is_none());
        assert_eq!(nodes.len(), 1_000);
        if let Some(n) = nodes.get_mut(&name(5)) {
            n.rotate = true;
        }
        assert!(nodes.get(&name(5)).is_some_and(|n| n.rotate));
        // A copy shares the shards until one changes.
        let before = nodes.clone();
        // Most of the names go: each shard's buffer is compacted on the way,
        // and every name left must still be found by its own bytes.
        for i in (0..1_000).filter(|i| i % 10 != 0) {
            assert!(nodes.remove(&name(i)).is_some(), "{i}");
            assert!(nodes.remove(&name(i)).is_none(), "{i} twice");
        }
        assert_eq!(nodes.len(), 100);
        for i in 0..1_000 {
            assert_eq!(nodes.contains_key(&name(i)), i % 10 == 0, "{i}");
            assert!(before.contains_key(&name(i)), "the copy lost {i}");
        }
        let mut kept: Vec<Vec<u8>> = nodes.keys().map(<[u8]>::to_vec).collect();
        kept.sort();
        let mut want: Vec<Vec<u8>> = (0..1_000).step_by(10).map(name).collect();
        want.sort();
        assert_eq!(kept, want);
        // Each name is where its node says.
        for shard in nodes.0.shards() {
            for (i, n) in shard.nodes.iter().enumerate() {
                let name = shard.name(n);
                assert_eq!(shard.position(hash_of(name), name), Some(i));
            }
        }
        let unused: usize = nodes.0.shards().map(|s| s.unused).sum();
        let held: usize = nodes.0.shards().map(|s| s.names.len()).sum();
        assert!(
            2 * unused <= held.max(512),
            "{unused} of {held} bytes unused"
        );
    }

    #[test]
    fn records_spill_in_order_without_duplicates() {
        let mut n = Node::new(0);
        assert!(n.is_empty());
        n.extend_addresses([IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 1])]);
        assert_eq!(n.a(), &[Ipv4Addr::from([10, 0, 0, 1])]);
        n.push_ptr(b"\x01x\x00"[..].into());
        n.extend_addresses([IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 1])]);
        assert_eq!(
            n.a(),
            &[[10, 0, 0, 1].into(), Ipv4Addr::from([10, 0, 0, 2])]
        );
        assert_eq!(n.ptr(), &[Arc::from(&b"\x01x\x00"[..])]);
        let mut p = Node::new(0);
        p.push_ptr(b"\x01y\x00"[..].into());
        p.push_ptr(b"\x01y\x00"[..].into());
        assert_eq!(p.ptr().len(), 1);
        assert!(p.a().is_empty() && p.cname().is_none() && p.txt().is_none());
    }

    #[test]
    fn pod_addresses_per_namespace() {
        let mut s = Snapshot::default();
        s.add_pod(b"a", [10, 0, 0, 1].into());
        s.add_pod(
            b"b",
            IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        );
        assert!(s.has_pod(b"a", [10, 0, 0, 1].into()));
        assert!(!s.has_pod(b"b", [10, 0, 0, 1].into()));
        assert!(!s.has_pod(b"c", [10, 0, 0, 1].into()));
        assert!(s.has_pod(
            b"b",
            IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
        ));
        let mut all: Vec<(&[u8], IpAddr)> = s.pods().collect();
        all.sort();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], (&b"a"[..], IpAddr::from([10, 0, 0, 1])));
        assert_eq!(s.names(), 2);
    }
}
