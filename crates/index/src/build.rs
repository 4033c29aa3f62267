//! Building a snapshot from the clusters' objects (SPEC §2, §2.1, §3).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use svcnet_model::{
    AddressesRef, Allocator, Cidr, EndpointRef, EndpointSlice, Kind, Object, ObjectKey, Protocol,
    Service, ServiceAddress, joined,
};
use svcnet_wire::{dashed_ip, encode_name, labels, reverse_name, reverse_wire, suffixes};

use crate::packed::{Files, Packed};
use crate::pods::PodTable;
use crate::service_ids::ServiceIds;
use crate::snapshot::{Node, Nodes, PodMode, Snapshot, Srv, Zone, ZoneKind};
use crate::store::{ClusterStore, Index, IndexConfig};

/// One cluster's objects, grouped for building: the services and slices
/// still packed, each service decoded with its slices by the thread that
/// builds its records (decoded all at once they would be most of the
/// store again, typed); the few multi-cluster objects decoded.
pub(crate) struct ClusterObjects<'a> {
    id: &'a str,
    files: &'a Files,
    namespaces: BTreeSet<&'a str>,
    /// The services' keys and objects, by namespace and name.
    services: Vec<(&'a ObjectKey, &'a Packed)>,
    /// The slices' objects by namespace and the service they name (a key
    /// under each service its slices name), sorted; the store's order
    /// within a service.
    slices: Vec<((&'a str, &'a str), &'a Packed)>,
    /// The pods.
    pods: &'a PodTable,
    exports: BTreeSet<(&'a str, &'a str)>,
    imports: Vec<svcnet_model::ServiceImport>,
    /// Imported multi-cluster slices (KEP-1645), by (namespace, import).
    imported: BTreeMap<(&'a str, &'a str), Vec<EndpointSlice>>,
}

impl<'a> ClusterObjects<'a> {
    fn new(id: &'a str, store: &'a ClusterStore) -> Self {
        let files = store.files();
        let pods = store.pod_table();
        let mut c = Self {
            id,
            files,
            namespaces: pods.namespaces().map(|ns| &**ns).collect(),
            services: Vec::new(),
            slices: Vec::new(),
            pods,
            exports: BTreeSet::new(),
            imports: Vec::new(),
            imported: BTreeMap::new(),
        };
        let count = |kinds: &[Kind]| {
            let n: u64 = store
                .object_counts()
                .filter(|(k, _)| kinds.contains(k))
                .map(|(_, n)| n)
                .sum();
            usize::try_from(n).unwrap_or(0)
        };
        c.services.reserve_exact(count(&[Kind::Service]));
        c.slices
            .reserve_exact(count(&[Kind::EndpointSlice, Kind::Endpoints]));
        for (key, packed) in store.packed() {
            let (ns, name) = (key.namespace.as_str(), key.name.as_str());
            if !ns.is_empty() {
                c.namespaces.insert(ns);
            }
            match key.kind {
                Kind::Namespace => {
                    c.namespaces.insert(name);
                }
                Kind::Service => c.services.push((key, packed)),
                Kind::EndpointSlice | Kind::Endpoints => {
                    let mut services: Vec<&str> = packed.raw().map(|r| r.service).collect();
                    services.sort_unstable();
                    services.dedup();
                    c.slices
                        .extend(services.into_iter().map(|svc| ((ns, svc), packed)));
                }
                Kind::ImportedEndpointSlice => {
                    for raw in packed.raw() {
                        if let Some(slice) = raw.decode_slice(files) {
                            c.imported.entry((ns, raw.service)).or_default().push(slice);
                        }
                    }
                }
                Kind::ServiceExport => {
                    c.exports.insert((ns, name));
                }
                Kind::ServiceImport => {
                    for obj in packed.objects(files) {
                        if let Object::ServiceImport(i) = obj {
                            c.imports.push(i);
                        }
                    }
                }
                // The store keeps pods apart (see below); workloads make
                // pods and slices before the store.
                Kind::Pod
                | Kind::StatefulSet
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::DaemonSet => {}
            }
        }
        // A stable sort: a service's slices stay in the store's order.
        c.slices.sort_by_key(|(k, _)| *k);
        c
    }

    /// The Services of `key` (one, unless a relist brought a key twice),
    /// each with the slices of its namespace that name it, decoded.
    fn decode(&self, key: &ObjectKey, packed: &Packed) -> Vec<(Service, Vec<EndpointSlice>)> {
        let files = self.files;
        let services: Vec<Service> = packed
            .raw()
            .filter_map(|r| r.decode_service(files))
            .collect();
        if services.is_empty() {
            return Vec::new();
        }
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let from = self.slices.partition_point(|(k, _)| *k < (ns, name));
        let mut slices: Vec<EndpointSlice> = self.slices[from..]
            .iter()
            .take_while(|(k, _)| *k == (ns, name))
            .flat_map(|(_, p)| p.slices_of(name, files))
            .collect();
        let last = services.len() - 1;
        services
            .into_iter()
            .enumerate()
            .map(|(i, svc)| {
                let of_it = if i == last {
                    std::mem::take(&mut slices)
                } else {
                    slices.clone()
                };
                (svc, of_it)
            })
            .collect()
    }
}

/// Ready endpoints of `slices` with the ports of their slice.
fn ready_endpoints<'s>(
    slices: impl IntoIterator<Item = &'s EndpointSlice>,
) -> Vec<(EndpointRef<'s>, &'s EndpointSlice)> {
    slices
        .into_iter()
        .flat_map(|s| s.endpoints.iter().filter(|e| e.ready).map(move |e| (e, s)))
        .collect()
}

/// Services still packed, by namespace and name.
type PackedServices<'a> = [(&'a ObjectKey, &'a Packed)];

/// SRV weight behind a ClusterIP or ClusterSetIP: one target, the whole
/// weight (SPEC §2 `0 100 <port> <svc>…`, for every named port).
const VIP_WEIGHT: u16 = 100;

/// PTR candidates: the lowest key wins (explicit hostname first, then
/// namespace/name order, SPEC §2 "one canonical PTR per IP"). The last
/// field is the target. An update's; a build keeps [`PtrCandidate`]s.
pub(crate) type PtrKey = (u8, Arc<str>, Arc<str>, PtrName);

/// A PTR candidate's target: in wire form (what the record holds: the SRV
/// records' copy of the name, where they name it), or as text for a name
/// too long to encode (no record; it still takes its place in the order).
/// Targets order as their text would, labels joined by dots.
#[derive(Clone, Debug)]
pub(crate) enum PtrName {
    Wire(Target),
    Text(Box<str>),
}

impl PtrName {
    fn new(text: &str, wire: Option<Target>) -> Self {
        match wire {
            Some(w) => Self::Wire(w),
            None => Self::Text(text.into()),
        }
    }

    fn wire(&self) -> Option<&Target> {
        match self {
            Self::Wire(w) => Some(w),
            Self::Text(_) => None,
        }
    }
}

/// The text of wire name `wire`, byte by byte: its labels joined by dots.
fn text_of_wire(wire: &[u8]) -> impl Iterator<Item = u8> + '_ {
    labels(wire).enumerate().flat_map(|(i, label)| {
        let dot = (i > 0).then_some(b'.');
        dot.into_iter().chain(label.iter().copied())
    })
}

impl Ord for PtrName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Self::Wire(a), Self::Wire(b)) if Arc::ptr_eq(a, b) => std::cmp::Ordering::Equal,
            (Self::Wire(a), Self::Wire(b)) => text_of_wire(a).cmp(text_of_wire(b)),
            (Self::Wire(a), Self::Text(b)) => text_of_wire(a).cmp(b.bytes()),
            (Self::Text(a), Self::Wire(b)) => a.bytes().cmp(text_of_wire(b)),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for PtrName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PtrName {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PtrName {}

/// An endpoint address and the name its records are at (the SRV records'
/// copy, where they name it).
struct EndpointOwner {
    ip: IpAddr,
    /// The endpoint has a hostname of its own (its PTR candidate comes first).
    hostname: bool,
    name: PtrName,
}

/// The PTR candidates of one address, in order and without repeats (an
/// update's, by address: see [`ptrs_by_address`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PtrKeys(Vec<PtrKey>);

/// The numbers a part's services take in the builder it is merged into
/// (by the part's own numbers).
fn renumbered(into: &mut ServiceIds, part: &ServiceIds) -> Vec<u32> {
    (0..part.len())
        .map(|id| {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            part.name(id)
                .map_or(u32::MAX, |(ns, name)| into.id(ns, name))
        })
        .collect()
}

/// One PTR candidate of a build: an address, and the key its target
/// competes with (a [`PtrKey`] with its service by number in the build's
/// [`ServiceIds`], its names kept once in one buffer): 48 bytes where the
/// key's two shared strings made 88, and no allocation per service.
/// A full build holds one for every headless endpoint address and
/// ClusterIP until the PTR names are made.
#[derive(Debug)]
pub(crate) struct PtrCandidate {
    ip: IpAddr,
    prio: u8,
    service: u32,
    name: PtrName,
}

/// Sorts PTR candidates by address and key (as [`PtrKey`]s order),
/// without repeats.
fn sort_ptrs(ptrs: &mut Vec<PtrCandidate>, services: &ServiceIds) {
    let order = |a: &PtrCandidate, b: &PtrCandidate| {
        (a.ip, a.prio)
            .cmp(&(b.ip, b.prio))
            .then_with(|| services.name(a.service).cmp(&services.name(b.service)))
            .then_with(|| a.name.cmp(&b.name))
    };
    ptrs.sort_unstable_by(order);
    ptrs.dedup_by(|a, b| order(a, b).is_eq());
}

/// The candidates of each address of sorted `ptrs`, in order.
fn ptr_groups(
    ptrs: &[PtrCandidate],
) -> impl Iterator<Item = (IpAddr, impl Iterator<Item = &PtrCandidate> + Clone)> {
    ptrs.chunk_by(|a, b| a.ip == b.ip)
        .filter_map(|g| Some((g.first()?.ip, g.iter())))
}

/// The PTR candidates of a builder by address.
pub(crate) fn ptrs_by_address(
    mut ptrs: Vec<PtrCandidate>,
    services: &ServiceIds,
) -> BTreeMap<IpAddr, PtrKeys> {
    sort_ptrs(&mut ptrs, services);
    ptr_groups(&ptrs)
        .map(|(ip, group)| {
            let keys = group.map(|c| {
                let (ns, name) = services.name(c.service).unwrap_or_default();
                (c.prio, ns.into(), name.into(), c.name.clone())
            });
            (ip, PtrKeys(keys.collect()))
        })
        .collect()
}

impl PtrKeys {
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, PtrKey> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a PtrKeys {
    type Item = &'a PtrKey;
    type IntoIter = std::slice::Iter<'a, PtrKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The services with a PTR candidate for one address (almost always one).
#[derive(Clone, Debug)]
pub(crate) enum Owners {
    One(u32),
    Many(Box<[u32]>),
}

impl Owners {
    pub(crate) fn ids(&self) -> &[u32] {
        match self {
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    fn from_ids(mut ids: Vec<u32>) -> Option<Self> {
        ids.sort_unstable();
        ids.dedup();
        match ids[..] {
            [] => None,
            [one] => Some(Self::One(one)),
            _ => Some(Self::Many(ids.into_boxed_slice())),
        }
    }
}

/// What an incremental update needs beyond the snapshot it changes: who
/// offers a PTR for each address, and how many PTR names lie below each
/// empty non-terminal of the reverse zones.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    /// The generation of the snapshot it goes with.
    pub(crate) generation: u64,
    /// The owners of an IPv4 address with one (nearly every address): 8
    /// bytes an address, where the map below takes 40.
    ptr_owner_v4: FxHashMap<u32, u32>,
    /// The owners of the other addresses.
    ptr_owners: FxHashMap<IpAddr, Owners>,
    /// The services' numbers.
    service_ids: ServiceIds,
    reverse_ents: FxHashMap<Box<[u8]>, u32>,
    /// (namespace, address) held by more than one pod → how many more
    /// (host-network pods share their node's address).
    pod_dups: FxHashMap<(Box<[u8]>, IpAddr), u32>,
}

/// The verified pod addresses of `pods`, counted by the ledger when there
/// is one (several pods may share an address).
fn add_pods(snap: &mut Snapshot, mut ledger: Option<&mut Ledger>, pods: &PodTable) {
    // Pods come by namespace: its label lower-cased once.
    let mut label: (&str, String) = ("", String::new());
    for (ns, ip) in pods.addresses() {
        if label.0 != &**ns {
            label = (ns, ns.to_ascii_lowercase());
        }
        let ns = label.1.as_bytes();
        match ledger.as_deref_mut() {
            Some(ledger) => ledger.hold_pod(snap, ns, ip),
            None => {
                snap.add_pod(ns, ip);
            }
        }
    }
}

/// A pod's addresses, each once.
pub(crate) fn unique<'a>(ips: impl Into<AddressesRef<'a>>) -> impl Iterator<Item = IpAddr> + 'a {
    let ips = ips.into();
    (0..ips.len()).filter_map(move |i| {
        let (before, ip) = (ips.get(..i)?, *ips.get(i)?);
        (!before.contains(&ip)).then_some(ip)
    })
}

impl Ledger {
    /// One more pod of namespace `ns` has `ip`.
    pub(crate) fn hold_pod(&mut self, snap: &mut Snapshot, ns: &[u8], ip: IpAddr) {
        if !snap.add_pod(ns, ip) {
            *self.pod_dups.entry((ns.into(), ip)).or_default() += 1;
        }
    }

    /// One pod of namespace `ns` less has `ip`.
    pub(crate) fn release_pod(&mut self, snap: &mut Snapshot, ns: &[u8], ip: IpAddr) {
        let key = (Box::from(ns), ip);
        match self.pod_dups.get_mut(&key) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.pod_dups.remove(&key);
            }
            None => snap.remove_pod(ns, ip),
        }
    }

    /// The number of service `ns/name` (never reused).
    pub(crate) fn service_id(&mut self, ns: &str, name: &str) -> u32 {
        self.service_ids.id(ns, name)
    }

    /// The namespace and name of a service number.
    pub(crate) fn service_name(&self, id: u32) -> Option<(&str, &str)> {
        self.service_ids.name(id)
    }

    /// The services with a PTR candidate for `ip`.
    pub(crate) fn ptr_owners(&self, ip: IpAddr) -> &[u32] {
        if let IpAddr::V4(v4) = ip
            && let Some(id) = self.ptr_owner_v4.get(&u32::from(v4))
        {
            return std::slice::from_ref(id);
        }
        self.ptr_owners.get(&ip).map_or(&[], Owners::ids)
    }

    /// Sets the services with a PTR candidate for `ip` (none: takes it out).
    fn set_ptr_owners(&mut self, ip: IpAddr, owners: Option<Owners>) {
        if let IpAddr::V4(v4) = ip {
            self.ptr_owner_v4.remove(&u32::from(v4));
        }
        self.ptr_owners.remove(&ip);
        match (ip, owners) {
            (IpAddr::V4(v4), Some(Owners::One(id))) => {
                self.ptr_owner_v4.insert(u32::from(v4), id);
            }
            (_, Some(owners)) => {
                self.ptr_owners.insert(ip, owners);
            }
            (_, None) => {}
        }
    }

    /// Adds or takes out service `id` as a PTR candidate of `ip`.
    pub(crate) fn set_ptr_owner(&mut self, ip: IpAddr, id: u32, owner: bool) {
        let mut ids: Vec<u32> = self.ptr_owners(ip).to_vec();
        if owner == ids.contains(&id) {
            return;
        }
        if owner {
            ids.push(id);
        } else {
            ids.retain(|x| *x != id);
        }
        self.set_ptr_owners(ip, Owners::from_ids(ids));
    }

    /// One more PTR name below an empty non-terminal of a reverse zone.
    pub(crate) fn hold_reverse_ent(&mut self, ent: &[u8]) {
        match self.reverse_ents.get_mut(ent) {
            Some(n) => *n += 1,
            None => {
                self.reverse_ents.insert(ent.into(), 1);
            }
        }
    }

    /// One PTR name less below an empty non-terminal of a reverse zone;
    /// returns whether none is left.
    pub(crate) fn release_reverse_ent(&mut self, ent: &[u8]) -> bool {
        match self.reverse_ents.get_mut(ent) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.reverse_ents.remove(ent);
                true
            }
        }
    }
}

pub(crate) struct Builder<'c> {
    cfg: &'c IndexConfig,
    pub(crate) snap: Snapshot,
    /// Every PTR candidate, in the order they came (sorted, without
    /// repeats, when the PTR names are made). One vector, not a map of small
    /// lists: a full build holds one for every headless endpoint address
    /// and ClusterIP until the PTR names are made, and as many small
    /// allocations freed then would stay as holes between the records.
    pub(crate) ptrs: Vec<PtrCandidate>,
    /// The services of `ptrs`, by number.
    pub(crate) ptr_services: ServiceIds,
    /// Filled by a full build for the updates that follow it.
    ledger: Option<Ledger>,
    /// Threads a full build may use.
    threads: usize,
    /// A part of a full build, merged into it later: its name table lacks
    /// the zone apexes, which it makes when it has records for them.
    part: bool,
}

/// A full build splits the services among its threads only when each gets
/// at least this many: below, a thread's start and the merge cost more
/// than they save.
const SERVICES_PER_PART: usize = 512;

/// An SRV target in wire form, shared by the records that name it.
type Target = Arc<[u8]>;

/// `name` as an SRV target (none for a name too long to be one).
fn target(name: &str) -> Option<Target> {
    wire(name).map(Target::from)
}

pub(crate) fn wire(name: &str) -> Option<Box<[u8]>> {
    let mut key = encode_name(name).ok()?;
    // Length octets are below 64: folding case leaves them alone.
    key.make_ascii_lowercase();
    Some(key.into_boxed_slice())
}

impl<'c> Builder<'c> {
    /// A builder for one service's records alone, with the zones of `like`
    /// (an incremental update builds a service's old and new records apart,
    /// then swaps them).
    pub(crate) fn scratch(cfg: &'c IndexConfig, like: &Snapshot) -> Self {
        Self {
            cfg,
            snap: Snapshot {
                zones: like.zones.clone(),
                zone_index: like.zone_index.clone(),
                ..Snapshot::default()
            },
            ptrs: Vec::new(),
            ptr_services: ServiceIds::default(),
            ledger: None,
            threads: 1,
            part: false,
        }
    }

    /// A builder for a part of a full build: the same zones, an empty name
    /// table of as many shards, to be merged back ([`Self::absorb`]).
    fn part(&self) -> Self {
        Self {
            cfg: self.cfg,
            snap: Snapshot {
                zones: self.snap.zones.clone(),
                zone_index: self.snap.zone_index.clone(),
                // One shard: one hash table and one name buffer, grown by
                // doubling, large, so mapped and unmapped whole. A table of
                // as many small shards as the snapshot's, freed after the
                // merge among the records the part keeps, left their room as
                // holes the allocator could not give back (50 MiB at 100k).
                nodes: Nodes::for_names(0),
                ..Snapshot::default()
            },
            ptrs: Vec::new(),
            ptr_services: ServiceIds::default(),
            ledger: None,
            threads: 1,
            part: true,
        }
    }

    /// Takes in the names and PTR candidates of a part built apart. Parts'
    /// names meet only at the empty non-terminals above their services (the
    /// names below a service's own are its alone) and at zone apexes.
    fn absorb(&mut self, part: Builder<'_>) {
        self.snap.nodes.merge(part.snap.nodes);
        let numbers = renumbered(&mut self.ptr_services, &part.ptr_services);
        self.ptrs
            .extend(part.ptrs.into_iter().map(|c| PtrCandidate {
                service: numbers.get(c.service as usize).copied().unwrap_or(u32::MAX),
                ..c
            }));
    }

    /// The records of a cluster's services (SPEC §2): split among up to
    /// `self.threads` parts of at least [`SERVICES_PER_PART`], the first
    /// built on this builder and the others on builders of their own on
    /// threads, merged in, in order. With `pods`, the verified pod
    /// addresses too, on a thread of their own meanwhile.
    fn services(&mut self, z: u16, zone: &str, c: &ClusterObjects<'_>, first: bool, pods: bool) {
        let services = c.services.as_slice();
        let parts = self.threads.min(services.len() / SERVICES_PER_PART).max(1);
        if parts == 1 {
            for (key, packed) in services {
                self.packed_service(z, zone, c, key, packed, first);
            }
            if pods {
                add_pods(&mut self.snap, self.ledger.as_mut(), c.pods);
            }
            return;
        }
        let mut chunks = services.chunks(services.len().div_ceil(parts));
        let mine = chunks.next().unwrap_or_default();
        let others: Vec<(Self, &PackedServices<'_>)> =
            chunks.map(|chunk| (self.part(), chunk)).collect();
        // The pod addresses' tables, moved out to be filled apart (nothing
        // else adds to them) and moved back.
        let mut pod_part = pods.then(|| {
            let snap = Snapshot {
                pods_by_namespace: std::mem::take(&mut self.snap.pods_by_namespace),
                ..Snapshot::default()
            };
            (snap, self.ledger.as_ref().map(|_| Ledger::default()))
        });
        let built: Vec<Self> = std::thread::scope(|scope| {
            let running: Vec<_> = others
                .into_iter()
                .map(|(mut b, chunk)| {
                    scope.spawn(move || {
                        for (key, packed) in chunk {
                            b.packed_service(z, zone, c, key, packed, first);
                        }
                        b
                    })
                })
                .collect();
            let adding = pod_part
                .as_mut()
                .map(|(snap, ledger)| scope.spawn(move || add_pods(snap, ledger.as_mut(), c.pods)));
            for (key, packed) in mine {
                self.packed_service(z, zone, c, key, packed, first);
            }
            if let Some(t) = adding {
                t.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            }
            running
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for part in built {
            self.absorb(part);
        }
        if let Some((snap, ledger)) = pod_part {
            self.snap.pods_by_namespace = snap.pods_by_namespace;
            if let (Some(mine), Some(theirs)) = (&mut self.ledger, ledger) {
                for (key, n) in theirs.pod_dups {
                    *mine.pod_dups.entry(key).or_default() += n;
                }
            }
        }
    }

    fn zone(&mut self, apex: &str, kind: ZoneKind, ns_zone: &str) -> Option<u16> {
        let key = wire(apex)?;
        if let Some(z) = self.snap.zone_index.get(&key) {
            return Some(z);
        }
        let z = u16::try_from(self.snap.zones.len()).ok()?;
        Arc::make_mut(&mut self.snap.zones).push(Zone {
            apex: key.clone(),
            kind,
            ns: wire(&format!("ns.dns.{ns_zone}"))?,
            hostmaster: wire(&format!("hostmaster.{ns_zone}"))?,
        });
        Arc::make_mut(&mut self.snap.zone_index).insert(key.clone(), z);
        self.snap.nodes.remove(&key);
        self.snap.nodes.insert_new(&key, Node::apex(z));
        Some(z)
    }

    /// The node for `name` (absolute, in zone `z`), creating it and its
    /// ancestors up to the apex as empty non-terminals.
    fn node(&mut self, z: u16, name: &str) -> Option<&mut Node> {
        self.node_at(z, &wire(name)?)
    }

    /// [`Self::node`] of a name already in lower-case wire form.
    fn node_at(&mut self, z: u16, key: &[u8]) -> Option<&mut Node> {
        let apex_len = self.snap.zones[usize::from(z)].apex.len();
        if self.part && key.len() == apex_len && !self.snap.nodes.contains_key(key) {
            return self.snap.nodes.insert_new(key, Node::apex(z));
        }
        if key.len() > apex_len && !self.snap.nodes.contains_key(key) {
            // A new name: its ancestors up to the first one that exists
            // (whose own ancestors exist already), then the name itself.
            for suffix in suffixes(key).skip(1) {
                if suffix.len() <= apex_len || self.snap.nodes.contains_key(suffix) {
                    break;
                }
                self.snap.nodes.insert_new(suffix, Node::new(z));
            }
            return self.snap.nodes.insert_new(key, Node::new(z));
        }
        self.snap.nodes.get_mut(key)
    }

    fn add_ips(&mut self, z: u16, name: &str, ips: impl IntoIterator<Item = IpAddr>) {
        if let Some(key) = wire(name) {
            self.add_ips_at(z, &key, ips);
        }
    }

    /// [`Self::add_ips`] of a name already in lower-case wire form.
    fn add_ips_at(&mut self, z: u16, key: &[u8], ips: impl IntoIterator<Item = IpAddr>) {
        if let Some(node) = self.node_at(z, key) {
            node.extend_addresses(ips);
        }
    }

    /// SRV records at `owners`, all with `weight` (SPEC §2: 100 behind a
    /// virtual IP, `100/n` over n ready endpoints).
    fn add_srv(&mut self, z: u16, owners: &[String], records: &[(u16, Target)], weight: u16) {
        for owner in owners {
            if let Some(node) = self.node(z, owner) {
                node.extend_srv(records.iter().map(|(port, target)| Srv {
                    priority: 0,
                    weight,
                    port: *port,
                    target: target.clone(),
                }));
            }
        }
    }

    /// SRV records behind a virtual IP at `base`: one per named port (at
    /// `_<port>._<proto>.<base>`) and all of them at `base`, each naming
    /// `base` (SPEC §2 `0 100 <port> <svc>…`).
    fn vip_srv<'p>(
        &mut self,
        z: u16,
        base: &str,
        base_target: Option<&Target>,
        ports: impl IntoIterator<Item = (Option<&'p str>, Protocol, u16)>,
    ) {
        let Some(base_target) = base_target else {
            return;
        };
        let mut all = Vec::new();
        for (name, protocol, port) in ports {
            let Some(pname) = name else { continue };
            let owner = format!("_{pname}._{}.{base}", protocol.label());
            let rec = [(port, base_target.clone())];
            self.add_srv(z, &[owner], &rec, VIP_WEIGHT);
            all.extend(rec);
        }
        self.add_srv(z, &[base.to_owned()], &all, VIP_WEIGHT);
    }

    fn apex_records(&mut self, z: u16, zone: &str, version: &str) {
        let advertise = self.cfg.advertise.clone();
        self.add_ips(z, &format!("ns.dns.{zone}"), advertise);
        if let Some(node) = self.node(z, &format!("dns-version.{zone}")) {
            node.set_txt(version.as_bytes().into(), 28800);
        }
    }

    fn cluster_zone(&mut self, zone: &str, c: &ClusterObjects<'_>, first: bool) {
        let Some(z) = self.zone(zone, ZoneKind::Cluster, zone) else {
            return;
        };
        self.apex_records(z, zone, "1.1.0");
        self.node(z, &format!("svc.{zone}"));
        self.node(z, &format!("pod.{zone}"));
        for ns in &c.namespaces {
            self.node(z, &format!("{ns}.svc.{zone}"));
            self.node(z, &format!("{ns}.pod.{zone}"));
        }
        // Pod addresses are the same in every cluster zone: added once.
        let pods = self.cfg.pods == PodMode::Verified && first;
        self.services(z, zone, c, first, pods);
    }

    /// [`Self::service`] of a packed service of `c`, decoded here.
    fn packed_service(
        &mut self,
        z: u16,
        zone: &str,
        c: &ClusterObjects<'_>,
        key: &ObjectKey,
        packed: &Packed,
        first: bool,
    ) {
        for (svc, slices) in c.decode(key, packed) {
            let slices: Vec<&EndpointSlice> = slices.iter().collect();
            self.service(z, zone, &svc, &slices, first);
        }
    }

    /// The records of Service `svc` with its slices `slices` (SPEC §2).
    pub(crate) fn service(
        &mut self,
        z: u16,
        zone: &str,
        svc: &Service,
        slices: &[&EndpointSlice],
        first: bool,
    ) {
        let (ns, name) = (&svc.meta.namespace, &svc.meta.name);
        let base = format!("{name}.{ns}.svc.{zone}");
        match &svc.address {
            ServiceAddress::ExternalName(target) => {
                if let Ok(ip) = target.parse::<IpAddr>() {
                    self.add_ips(z, &base, [ip]);
                } else if let (Some(target), Some(node)) = (wire(target), self.node(z, &base)) {
                    node.set_cname(target);
                }
            }
            ServiceAddress::ClusterIps(ips) => {
                self.add_ips(z, &base, ips.iter().copied());
                let ports = svc.ports.iter();
                let base_target = target(&base);
                self.vip_srv(
                    z,
                    &base,
                    base_target.as_ref(),
                    ports.map(|p| (p.name.as_deref(), p.protocol, p.port)),
                );
                if first {
                    let service = self.ptr_services.id(ns, name);
                    let target = PtrName::new(&base, base_target);
                    for &ip in ips {
                        self.ptr(ip, 1, service, target.clone());
                    }
                }
            }
            ServiceAddress::Headless | ServiceAddress::Unallocated => {
                let ready = ready_endpoints(slices.iter().copied());
                if ready.is_empty() {
                    return; // SPEC §2: NXDOMAIN when no endpoint is ready.
                }
                let owners = self.headless(z, &base, &ready, |_, host| joined('.', &[host, &base]));
                if first {
                    let service = self.ptr_services.id(ns, name);
                    for o in owners {
                        let prio = if o.hostname { 0 } else { 2 };
                        self.ptr(o.ip, prio, service, o.name);
                    }
                }
            }
        }
    }

    /// Records of a headless service (or of a headless import): the service
    /// name, one name per endpoint, SRV per named port. `host_name` gives the
    /// owner of an endpoint's records from (endpoint index, its label).
    /// Returns each endpoint address with the name its records are at.
    fn headless(
        &mut self,
        z: u16,
        base: &str,
        ready: &[(EndpointRef<'_>, &EndpointSlice)],
        host_name: impl Fn(usize, &str) -> String,
    ) -> Vec<EndpointOwner> {
        let mut owners = Vec::new();
        let mut per_port: BTreeMap<(String, Protocol), Vec<(u16, Target)>> = BTreeMap::new();
        // The service name's addresses, added at once.
        let mut all = Vec::new();
        for (i, (ep, slice)) in ready.iter().enumerate() {
            all.extend(ep.addresses.iter().copied());
            let hostname = ep.hostname.is_some();
            let named = self.endpoint_name(ep);
            let mut add = |host: &str, ips: &[IpAddr]| {
                let owner = host_name(i, host);
                let wire = target(&owner);
                // Its name encoded once, for its node and its targets (a
                // name too long to encode has neither).
                if let Some(w) = &wire {
                    self.add_ips_at(z, w, ips.iter().copied());
                    for p in &slice.ports {
                        if let Some(pname) = &p.name {
                            per_port
                                .entry((pname.clone(), p.protocol))
                                .or_default()
                                .push((p.port, w.clone()));
                        }
                    }
                }
                let name = PtrName::new(&owner, wire);
                owners.extend(ips.iter().map(|&ip| EndpointOwner {
                    ip,
                    hostname,
                    name: name.clone(),
                }));
            };
            match named {
                Some(h) => add(h, &ep.addresses),
                None => {
                    for ip in ep.addresses.iter() {
                        add(&dashed_ip(*ip), std::slice::from_ref(ip));
                    }
                }
            }
        }
        self.add_ips(z, base, all);
        if let Some(node) = self.node(z, base) {
            node.rotate = true;
        }
        for ((pname, proto), mut recs) in per_port {
            recs.sort();
            recs.dedup();
            let weight = u16::try_from((100 / recs.len().max(1)).max(1)).unwrap_or(1);
            let owner = format!("_{pname}._{}.{base}", proto.label());
            self.add_srv(z, &[owner, base.to_owned()], &recs, weight);
        }
        owners
    }

    /// The label of an endpoint's own name: its hostname; with
    /// `--endpoint-pod-names` (CoreDNS `endpoint_pod_names`) else its pod's
    /// name; `None` means it is named by its dashed IP.
    fn endpoint_name<'e>(&self, ep: &EndpointRef<'e>) -> Option<&'e str> {
        ep.hostname.or_else(|| {
            // A pod name may be a dotted subdomain; only a single label
            // can name an endpoint.
            ep.pod
                .filter(|p| !p.contains('.') && p.len() <= 63)
                .filter(|_| self.cfg.endpoint_pod_names)
        })
    }

    fn ptr(&mut self, ip: IpAddr, prio: u8, service: u32, name: PtrName) {
        self.ptrs.push(PtrCandidate {
            ip,
            prio,
            service,
            name,
        });
    }

    fn reverse_zones(&mut self, ns_zone: &str) {
        let zones: Vec<(Cidr, Option<u16>)> = self
            .cfg
            .reverse_zones()
            .into_iter()
            .map(|c| (c, self.zone(&reverse_apex(c), ZoneKind::Reverse, ns_zone)))
            .collect();
        // On one thread: a PTR name costs about what merging it from a
        // part built apart would. The ledger notes each address's services.
        let mut ptrs = std::mem::take(&mut self.ptrs);
        let services = std::mem::take(&mut self.ptr_services);
        sort_ptrs(&mut ptrs, &services);
        for (ip, keys) in ptr_groups(&ptrs) {
            if let Some(ledger) = &mut self.ledger {
                let ids = keys
                    .clone()
                    .map(|k| {
                        let (ns, name) = services.name(k.service).unwrap_or_default();
                        ledger.service_id(ns, name)
                    })
                    .collect();
                if let Some(owners) = Owners::from_ids(ids) {
                    ledger.set_ptr_owners(ip, Some(owners));
                }
            }
            let z = match zones.iter().find(|(c, _)| c.contains(ip)) {
                Some((_, z)) => *z,
                None => self.zone(&reverse_name(ip), ZoneKind::Reverse, ns_zone),
            };
            if let Some(z) = z {
                self.ptr_name(ip, keys.map(|k| &k.name), z);
            }
        }
    }

    /// The PTR name of `ip` in zone `z`, with the targets of its candidates.
    fn ptr_name<'k>(&mut self, ip: IpAddr, names: impl IntoIterator<Item = &'k PtrName>, z: u16) {
        // Made in wire form at once: a cluster has as many of these names
        // as addresses, and formatting each as text to encode it was most
        // of their cost.
        let key = reverse_wire(ip);
        let targets = ptr_targets(self.cfg, names);
        if let Some(node) = self.node_at(z, &key) {
            for t in targets {
                node.push_ptr(t);
            }
        }
        if let Some(ledger) = &mut self.ledger {
            let apex_len = self.snap.zones[usize::from(z)].apex.len();
            for ent in reverse_ents(&key, apex_len) {
                ledger.hold_reverse_ent(ent);
            }
        }
    }
}

/// The PTR targets of an address from its candidates' names, in order: the
/// first, or all of them with `--ptr all`.
pub(crate) fn ptr_targets<'k>(
    cfg: &IndexConfig,
    names: impl IntoIterator<Item = &'k PtrName>,
) -> Vec<Target> {
    let take = if cfg.ptr_all { usize::MAX } else { 1 };
    names
        .into_iter()
        .take(take)
        .filter_map(|n| n.wire().cloned())
        .collect()
}

/// The ancestors of reverse name `key` strictly below its zone's apex (of
/// `apex_len` octets): the empty non-terminals a PTR name needs.
pub(crate) fn reverse_ents(key: &[u8], apex_len: usize) -> impl Iterator<Item = &[u8]> {
    suffixes(key)
        .skip(1)
        .take_while(move |s| s.len() > apex_len)
}

/// The reverse zone apex of an octet- (nibble-) aligned range.
pub(crate) fn reverse_apex(cidr: Cidr) -> String {
    let full = reverse_name(cidr.network);
    let (total, step) = if cidr.network.is_ipv4() {
        (32, 8)
    } else {
        (128, 4)
    };
    let skip = usize::from((total - cidr.prefix) / step);
    full.splitn(skip + 1, '.')
        .last()
        .unwrap_or(&full)
        .to_owned()
}

/// One imported service of the clusterset: the exporting clusters' services.
struct Import<'a> {
    /// Each exporting cluster with its Service and the Service's slices.
    exporters: Vec<(&'a ClusterObjects<'a>, Service, Vec<EndpointSlice>)>,
    /// API mode: endpoints a multi-cluster controller imported, with the
    /// cluster each came from.
    imported: Vec<(&'a str, &'a EndpointSlice)>,
    /// The ServiceImport's ports, for an import without a loaded exporter.
    ports: &'a [svcnet_model::EndpointPort],
    ips: Vec<IpAddr>,
    headless: bool,
}

fn clusterset(b: &mut Builder<'_>, clusters: &[ClusterObjects<'_>]) {
    let zone = b.cfg.clusterset_zone.clone();
    let Some(z) = b.zone(&zone, ZoneKind::ClusterSet, &zone) else {
        return;
    };
    b.apex_records(z, &zone, "1.0.0");
    b.node(z, &format!("svc.{zone}"));
    for c in clusters {
        for ns in &c.namespaces {
            b.node(z, &format!("{ns}.svc.{zone}"));
        }
    }
    let mut imports: BTreeMap<(&str, &str), Import<'_>> = BTreeMap::new();
    for c in clusters {
        for (object_key, packed) in &c.services {
            let key = (object_key.namespace.as_str(), object_key.name.as_str());
            if !c.exports.contains(&key) {
                continue;
            }
            for (svc, slices) in c.decode(object_key, packed) {
                if matches!(svc.address, ServiceAddress::ExternalName(_)) {
                    continue;
                }
                imports
                    .entry(key)
                    .or_insert_with(|| Import {
                        exporters: Vec::new(),
                        imported: Vec::new(),
                        ports: &[],
                        ips: Vec::new(),
                        headless: svc.is_headless(),
                    })
                    .exporters
                    .push((c, svc, slices));
            }
        }
    }
    let mut alloc = Allocator::new(b.cfg.clusterset_cidr, []);
    for c in clusters {
        for imp in &c.imports {
            let key = (imp.meta.namespace.as_str(), imp.meta.name.as_str());
            // A ServiceImport without a loaded exporter (API mode, where a
            // multi-cluster controller made it) stands on its own.
            let i = imports.entry(key).or_insert_with(|| Import {
                exporters: Vec::new(),
                imported: Vec::new(),
                ports: &imp.ports,
                ips: Vec::new(),
                headless: false,
            });
            i.headless = imp.import_type == svcnet_model::ImportType::Headless;
            i.ips.clone_from(&imp.ips);
            imp.ips.iter().for_each(|ip| alloc.reserve(*ip));
            for slice in c.imported.get(&key).into_iter().flatten() {
                let source = slice.meta.labels.get(svcnet_model::MC_SOURCE_CLUSTER_LABEL);
                i.imported.push((source.unwrap_or(c.id), slice));
            }
        }
    }
    for ((ns, name), imp) in &mut imports {
        if !imp.headless && imp.ips.is_empty() {
            imp.ips = alloc
                .allocate(&format!("{ns}/{name}"))
                .into_iter()
                .collect();
        }
    }
    for ((ns, name), imp) in &imports {
        let base = format!("{name}.{ns}.svc.{zone}");
        if imp.headless {
            let mut ready = Vec::new();
            let mut owners = Vec::new();
            for (c, _, slices) in &imp.exporters {
                for r in ready_endpoints(slices) {
                    ready.push(r);
                    owners.push(c.id);
                }
            }
            for (source, slice) in &imp.imported {
                for e in slice.endpoints.iter().filter(|e| e.ready) {
                    ready.push((e, *slice));
                    owners.push(*source);
                }
            }
            if ready.is_empty() {
                continue;
            }
            b.headless(z, &base, &ready, |i, host| {
                format!("{host}.{}.{base}", owners[i])
            });
            if b.cfg.cluster_names {
                let mut per_cluster: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
                for (i, (ep, _)) in ready.iter().enumerate() {
                    per_cluster
                        .entry(owners[i])
                        .or_default()
                        .extend(ep.addresses.iter().copied());
                }
                for (cluster, ips) in per_cluster {
                    b.add_ips(z, &format!("{cluster}.{base}"), ips);
                }
            }
        } else {
            b.add_ips(z, &base, imp.ips.iter().copied());
            let ports: Vec<(Option<&str>, Protocol, u16)> = match imp.exporters.first() {
                Some((_, svc, _)) => svc
                    .ports
                    .iter()
                    .map(|p| (p.name.as_deref(), p.protocol, p.port))
                    .collect(),
                None => imp
                    .ports
                    .iter()
                    .map(|p| (p.name.as_deref(), p.protocol, p.port))
                    .collect(),
            };
            b.vip_srv(z, &base, target(&base).as_ref(), ports);
            if b.cfg.cluster_names {
                for (c, svc, slices) in &imp.exporters {
                    let owner = format!("{}.{base}", c.id);
                    match &svc.address {
                        ServiceAddress::ClusterIps(ips) => {
                            b.add_ips(z, &owner, ips.iter().copied())
                        }
                        _ => {
                            let ips: Vec<IpAddr> = ready_endpoints(slices)
                                .iter()
                                .flat_map(|(e, _)| e.addresses.iter().copied())
                                .collect();
                            if !ips.is_empty() {
                                b.add_ips(z, &owner, ips);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Builds the whole snapshot, and the ledger that lets the next ones be
/// updates of it.
pub(crate) fn build(index: &Index, generation: u64) -> (Snapshot, Ledger) {
    let cfg = index.config();
    // Sized from the objects: a name or two per pod and per service.
    let (objects, pods) = index.clusters().iter().fold((0, 0), |(o, p), (_, s)| {
        (o + s.len() - s.pod_count(), p + s.pod_count())
    });
    let mut snap = Snapshot {
        generation,
        complete: index.is_complete(),
        ttl: cfg.ttl,
        pods: cfg.pods,
        autopath: cfg.autopath,
        nodes: Nodes::for_names(2 * (objects + pods)),
        ..Snapshot::default()
    };
    if cfg.pods == PodMode::Verified {
        snap.expect_pods(pods);
    }
    let mut b = Builder {
        cfg,
        snap,
        ptrs: Vec::new(),
        ptr_services: ServiceIds::default(),
        ledger: Some(Ledger {
            generation,
            ..Ledger::default()
        }),
        threads: index.build_threads(),
        part: false,
    };
    let clusters: Vec<ClusterObjects<'_>> = index
        .clusters()
        .iter()
        .map(|(id, store)| ClusterObjects::new(id, store))
        .collect();
    let local = index
        .local_cluster()
        .and_then(|(id, _)| clusters.iter().find(|c| c.id == id));
    let empty = ClusterStore::default();
    let fallback = ClusterObjects::new("local", &empty);
    let local = local.unwrap_or(&fallback);
    for (i, zone) in cfg.zones.iter().enumerate() {
        b.cluster_zone(zone, local, i == 0);
    }
    clusterset(&mut b, &clusters);
    let ns_zone = cfg
        .zones
        .first()
        .cloned()
        .unwrap_or_else(|| "cluster.local".to_owned());
    b.reverse_zones(&ns_zone);
    // Records of one target side by side: the engine adds each target's
    // addresses to the additional section once (several ports, one target).
    b.snap.nodes.for_each_mut(Node::sort_srv);
    // Sized from an estimate: resharded when the names outgrew it, so that
    // an update copies shards of the intended size.
    b.snap.nodes = std::mem::take(&mut b.snap.nodes).resized();
    b.snap.count_records();
    let ledger = b.ledger.take().unwrap_or_default();
    (b.snap, ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptr_owners_move_between_their_two_maps() {
        let mut l = Ledger::default();
        let v4 = IpAddr::from([10, 0, 0, 1]);
        let v6: IpAddr = "fd00::1".parse().unwrap_or(v4);
        for ip in [v4, v6] {
            assert!(l.ptr_owners(ip).is_empty());
            l.set_ptr_owner(ip, 7, true);
            assert_eq!(l.ptr_owners(ip), [7]);
            l.set_ptr_owner(ip, 3, true);
            assert_eq!(l.ptr_owners(ip), [3, 7]);
            l.set_ptr_owner(ip, 3, true);
            assert_eq!(l.ptr_owners(ip), [3, 7]);
            l.set_ptr_owner(ip, 7, false);
            assert_eq!(l.ptr_owners(ip), [3]);
            l.set_ptr_owner(ip, 3, false);
            assert!(l.ptr_owners(ip).is_empty());
        }
        assert!(l.ptr_owner_v4.is_empty() && l.ptr_owners.is_empty());
        // An IPv4 address with one owner takes the small map only.
        l.set_ptr_owner(v4, 1, true);
        assert_eq!((l.ptr_owner_v4.len(), l.ptr_owners.len()), (1, 0));
        l.set_ptr_owner(v4, 2, true);
        assert_eq!((l.ptr_owner_v4.len(), l.ptr_owners.len()), (0, 1));
    }

    #[test]
    fn a_part_s_services_take_the_builder_s_numbers() {
        let mut mine = ServiceIds::default();
        assert_eq!(mine.id("default", "web"), 0);
        assert_eq!(mine.id("kube-system", "kube-dns"), 1);
        let mut part = ServiceIds::default();
        assert_eq!(part.id("shop", "cart"), 0);
        assert_eq!(part.id("default", "web"), 1);
        assert_eq!(renumbered(&mut mine, &part), [2, 0]);
        assert_eq!(mine.name(2), Some(("shop", "cart")));
        assert_eq!(mine.name(3), None);
        assert!(size_of::<PtrCandidate>() <= 48);
    }

    #[test]
    fn candidates_of_one_service_from_two_parts_are_one() {
        // A part numbers its services apart; merged, the same service is
        // one number and still one candidate.
        let mut services = ServiceIds::default();
        let first = services.id("default", "web");
        let mut part = ServiceIds::default();
        let other = part.id("shop", "cart");
        let again = part.id("default", "web");
        let numbers = renumbered(&mut services, &part);
        assert_eq!(numbers.get(again as usize), Some(&first));
        assert_ne!(numbers.get(other as usize), Some(&first));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let n = "web.default.svc.cluster.local";
        let cand = |service| PtrCandidate {
            ip,
            prio: 1,
            service,
            name: PtrName::new(n, target(n)),
        };
        let merged = numbers.get(again as usize).copied().unwrap_or(u32::MAX);
        let by_address = ptrs_by_address(vec![cand(first), cand(merged)], &services);
        assert_eq!(by_address.get(&ip).map(|k| k.iter().count()), Some(1));
    }

    #[test]
    fn ptr_candidates_sort_as_their_keys() {
        let mut services = ServiceIds::default();
        let b = services.id("b", "svc");
        let a = services.id("a", "svc");
        let ip = IpAddr::from([10, 0, 0, 1]);
        let name = |n: &str| PtrName::new(n, target(n));
        let cand = |ip, prio, service, n: &str| PtrCandidate {
            ip,
            prio,
            service,
            name: name(n),
        };
        let ptrs = vec![
            cand(IpAddr::from([10, 0, 0, 2]), 0, b, "z.b"),
            cand(ip, 2, a, "y.a"),
            cand(ip, 2, b, "x.b"),
            cand(ip, 0, b, "w.b"),
            cand(ip, 2, a, "y.a"),
            cand(ip, 2, a, "c.a"),
        ];
        let by_address = ptrs_by_address(ptrs, &services);
        let keys: Vec<Vec<(u8, String, String)>> = by_address
            .values()
            .map(|k| {
                k.iter()
                    .map(|(p, ns, _, n)| {
                        let text = text_of_wire(n.wire().map_or(&[][..], |w| w)).collect();
                        (
                            *p,
                            ns.to_string(),
                            String::from_utf8(text).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .collect();
        let k = |p, ns: &str, n: &str| (p, ns.to_owned(), n.to_owned());
        assert_eq!(
            keys,
            [
                vec![
                    k(0, "b", "w.b"),
                    k(2, "a", "c.a"),
                    k(2, "a", "y.a"),
                    k(2, "b", "x.b")
                ],
                vec![k(0, "b", "z.b")]
            ]
        );
    }

    #[test]
    fn ptr_targets_order_as_their_text() {
        let names = [
            "a.b",
            "a-b.c",
            "a.bc",
            "ab.c",
            "web-0.nginx.default.svc.cluster.local",
            "web-1.nginx.default.svc.cluster.local",
            "web.nginx.default.svc.cluster.local",
            "10-244-0-5.nginx.default.svc.cluster.local",
            "x",
        ];
        for a in names {
            let wa = PtrName::new(a, target(a));
            let ta = PtrName::Text(a.into());
            assert_eq!(
                text_of_wire(wa.wire().map_or(&[][..], |w| w)).collect::<Vec<u8>>(),
                a.as_bytes()
            );
            for b in names {
                let wb = PtrName::new(b, target(b));
                let tb = PtrName::Text(b.into());
                let want = a.cmp(b);
                assert_eq!(wa.cmp(&wb), want, "{a} {b}");
                assert_eq!(wa.cmp(&tb), want, "{a} {b}");
                assert_eq!(ta.cmp(&wb), want, "{a} {b}");
                assert_eq!(ta.cmp(&tb), want, "{a} {b}");
            }
        }
    }
}
