//! Per-cluster object stores fed by deltas (kube-rs `watcher::Event` shape).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use svcnet_model::{
    Cidr, Delta, EndpointSlice, Kind, Labels, Meta, Object, ObjectKey, Pod, PodStatus, PodTemplate,
    Scope, Service,
};

use crate::build::Ledger;
use crate::numbered::Numbered;
use crate::packed::{Files, Packed};
use crate::pods::{PodTable, StoredPod};
use crate::snapshot::{PodMode, Snapshot};
use crate::update::UpdateStats;

/// What the snapshot is built with (the `serve` flags that shape answers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    /// Cluster zones (`--zone`, default `cluster.local`).
    pub zones: Vec<String>,
    /// The multi-cluster zone (KEP-1645).
    pub clusterset_zone: String,
    /// Record TTL (0–3600).
    pub ttl: u32,
    /// Pod records (`--pods`).
    pub pods: PodMode,
    /// Every PTR for an address instead of one canonical (`--ptr all`).
    pub ptr_all: bool,
    /// Addresses of `ns.dns.<zone>` (`--advertise`).
    pub advertise: Vec<IpAddr>,
    /// `<clusterid>.<svc>.<ns>.svc.clusterset.local` names (`--no-cluster-names` turns off).
    pub cluster_names: bool,
    /// ClusterSetIP range (`--clusterset-cidr`).
    pub clusterset_cidr: Cidr,
    /// Service and pod CIDRs: we are authoritative for their reverse zones.
    pub reverse_cidrs: Vec<Cidr>,
    /// The cluster whose state `cluster.local` answers (else the first).
    pub local_cluster: Option<String>,
    /// Endpoints without a hostname are named by their pod's name instead
    /// of their dashed IP (CoreDNS `endpoint_pod_names`).
    pub endpoint_pod_names: bool,
    /// Answer `<X>.<ns>.svc.<zone>` that does not exist with the first
    /// search-path expansion of X that does (`--autopath`).
    pub autopath: bool,
}

impl IndexConfig {
    /// The reverse zones of the service and pod CIDRs, as octet- (nibble-)
    /// aligned ranges.
    pub(crate) fn reverse_zones(&self) -> Vec<Cidr> {
        self.reverse_cidrs
            .iter()
            .flat_map(|c| c.reverse_zones())
            .collect()
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            zones: vec!["cluster.local".to_owned()],
            clusterset_zone: "clusterset.local".to_owned(),
            ttl: 5,
            pods: PodMode::Verified,
            ptr_all: false,
            advertise: vec![[127, 0, 0, 1].into()],
            cluster_names: true,
            clusterset_cidr: Cidr {
                network: [10, 112, 0, 0].into(),
                prefix: 12,
            },
            reverse_cidrs: vec![
                Cidr {
                    network: [10, 96, 0, 0].into(),
                    prefix: 12,
                },
                Cidr {
                    network: [10, 244, 0, 0].into(),
                    prefix: 16,
                },
            ],
            local_cluster: None,
            endpoint_pod_names: false,
            autopath: false,
        }
    }
}

pub(crate) type PodKey = (Arc<str>, Box<str>);

/// The pod phases a store has seen, each with its number (from 1; 0 is a
/// pod without one). Numbers are never reused: two pods have the same
/// phase exactly when they have the same number.
#[derive(Clone, Debug, Default)]
struct Phases(Numbered<Box<str>>);

impl Phases {
    fn number(&mut self, phase: Option<&str>) -> u32 {
        phase.map_or(0, |p| self.0.number(p).unwrap_or(u32::MAX))
    }

    fn name(&self, number: u32) -> Option<&str> {
        self.0.name(number).map(|n| &**n)
    }
}

/// Every kind an object key can have.
const KINDS: [Kind; 12] = [
    Kind::Namespace,
    Kind::Service,
    Kind::Pod,
    Kind::Endpoints,
    Kind::EndpointSlice,
    Kind::StatefulSet,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::DaemonSet,
    Kind::ServiceExport,
    Kind::ServiceImport,
    Kind::ImportedEndpointSlice,
];

/// A full build's threads by default: one. Built in parts on threads,
/// each part's records are allocated by its thread among what that thread
/// decodes and drops meanwhile, and glibc cannot give those holes back: at
/// 100k services two threads built the snapshot in 2.3-2.6 s instead of
/// 3.2 s, but left 495-498 MiB resident (450 in a few loads) instead of
/// 448, with a peak of 555 MiB instead of 503. [`Index::set_build_threads`]
/// trades the memory for the time.
const BUILD_THREADS: usize = 1;

/// Past this many changed keys between two snapshots the store stops
/// noting them one by one: the next snapshot is built whole.
const CHANGE_LIMIT: usize = 100_000;

/// What changed in a store since the last snapshot: each changed key with
/// its value before the first change (`None`: it did not exist).
#[derive(Clone, Debug, Default)]
pub(crate) struct Changes {
    pub(crate) objects: BTreeMap<ObjectKey, Option<Packed>>,
    pub(crate) pods: BTreeMap<PodKey, Option<StoredPod>>,
    /// Too many to follow one by one (a relist that changed much).
    pub(crate) overflow: bool,
}

impl Changes {
    /// Stops following changes one by one.
    fn overflow(&mut self) {
        self.objects.clear();
        self.pods.clear();
        self.overflow = true;
    }

    fn full(&mut self) -> bool {
        if self.objects.len() + self.pods.len() >= CHANGE_LIMIT {
            self.overflow();
        }
        self.overflow
    }

    fn object(&mut self, key: &ObjectKey, old: Option<Packed>) {
        if !self.full() && !self.objects.contains_key(key) {
            self.objects.insert(key.clone(), old);
        }
    }

    fn pod(&mut self, ns: &Arc<str>, name: &str, old: Option<StoredPod>) {
        if self.full() {
            return;
        }
        let key: PodKey = (ns.clone(), name.into());
        self.pods.entry(key).or_insert(old);
    }

    /// Notes the difference between a replaced part of the state and its
    /// replacement; returns whether they differ. What is equal in both
    /// keeps `old`'s allocations in `new`: a relist that changed little
    /// leaves the objects where they were, and what it read in goes with
    /// what it freed (a reload at 100k services otherwise left 120 MiB more
    /// resident, the old copies' room scattered among the records that
    /// stay).
    fn replaced(&mut self, mut old: State, new: &mut State) -> bool {
        let sizes = |s: &State| s.objects.len() + s.pods.len();
        if sizes(&old).abs_diff(sizes(new)) >= CHANGE_LIMIT {
            self.overflow();
            return true;
        }
        let objects = diff(old.objects, &mut new.objects, |k, v| self.object(k, v));
        let pods = PodTable::diff(&mut old.pods, &mut new.pods, |ns, name, v| {
            self.pod(ns, name, v)
        });
        objects || pods
    }
}

/// Walks two sorted maps side by side, calling `note` with each key whose
/// value differs and its old value; returns whether any did. A value equal
/// in both is moved from `old` into `new` (the older allocation kept).
fn diff<K: Ord, V: PartialEq>(
    old: BTreeMap<K, V>,
    new: &mut BTreeMap<K, V>,
    mut note: impl FnMut(&K, Option<V>),
) -> bool {
    let mut changed = false;
    let mut old = old.into_iter().peekable();
    let mut new = new.iter_mut().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return changed,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some((k, v)) = old.next() {
                    changed = true;
                    note(&k, Some(v));
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some((k, _)) = new.next() {
                    changed = true;
                    note(k, None);
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some((k, v)), Some((_, w))) = (old.next(), new.next()) {
                    if v == *w {
                        *w = v;
                    } else {
                        changed = true;
                        note(&k, Some(v));
                    }
                }
            }
        }
    }
}

/// Objects by key (packed), pods apart, and how many objects of each kind.
#[derive(Clone, Debug, Default)]
struct State {
    objects: BTreeMap<ObjectKey, Packed>,
    pods: PodTable,
    counts: BTreeMap<Kind, u64>,
}

/// Adds the entries of `next` to `map`. Into an empty map (the first list
/// of a kind) they move whole; a large addition is packed with what it
/// joins (entries inserted one at a time in key order leave every node
/// about half empty, and the store holds a cluster's pods in one of
/// these); a small one is inserted.
fn join<K: Ord, V>(map: &mut BTreeMap<K, V>, next: BTreeMap<K, V>) {
    if map.is_empty() {
        *map = next;
        return;
    }
    let added = next.len();
    map.extend(next);
    if 2 * added > map.len() {
        *map = std::mem::take(map).into_iter().collect();
    }
}

/// Adds `added` objects of kind `kind` to `counts` and takes `removed` away.
fn count(counts: &mut BTreeMap<Kind, u64>, kind: Kind, added: usize, removed: usize) {
    let n = counts.entry(kind).or_default();
    *n = (*n + added as u64).saturating_sub(removed as u64);
}

/// A replacement in progress: its objects as they come, made into a
/// [`State`] when it is done. A first list or a manifest load brings a
/// whole cluster: the objects collected and sorted once, the map is built
/// in one pass, with full nodes, instead of an insertion each. Each
/// object is packed as it comes (typed, a whole cluster's would be most of
/// a load's peak), and the pods go to their table (of two pods of one key
/// the later is kept).
#[derive(Clone, Debug, Default)]
struct Pending {
    objects: Vec<(ObjectKey, Packed)>,
    pods: PodTable,
    /// The namespace of the last pod that came: when the next is of
    /// another, this one's pods are all there (the emulation gives them a
    /// namespace at a time), and its table is shared with the store's when
    /// the same ([`PodTable::share_if_same`]; pods in another order only
    /// share less).
    open: Option<Arc<str>>,
}

impl Pending {
    /// Notes that the pods coming now are of namespace `ns` (`None`: no
    /// more come): when that is another, the last one's pods are all there,
    /// and take `held`'s table when the same.
    fn pods_of(&mut self, ns: Option<&Arc<str>>, held: &PodTable) {
        if self.open.as_ref() == ns {
            return;
        }
        if let Some(done) = std::mem::replace(&mut self.open, ns.cloned()) {
            self.pods.share_if_same(&done, held);
        }
    }

    fn into_state(mut self, files: &mut Files) -> State {
        // A stable sort: objects of one key keep their order.
        self.objects.sort_by(|a, b| a.0.cmp(&b.0));
        let mut objects: Vec<(ObjectKey, Packed)> = Vec::new();
        let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
        let mut sorted = self.objects.into_iter().peekable();
        while let Some((key, mut packed)) = sorted.next() {
            // Almost every key holds one object (an Endpoints object's
            // subsets being the exception): those of a key packed anew
            // together.
            if sorted.peek().is_some_and(|(k, _)| *k == key) {
                let mut of_key = packed.objects(files);
                while let Some((_, more)) = sorted.next_if(|(k, _)| *k == key) {
                    of_key.extend(more.objects(files));
                }
                packed = Packed::pack(of_key, files);
            }
            count(&mut counts, key.kind, packed.len(), 0);
            objects.push((key, packed));
        }
        self.pods.shrink();
        State {
            objects: objects.into_iter().collect(),
            pods: self.pods,
            counts,
        }
    }
}

impl State {
    fn count(&mut self, kind: Kind, added: usize, removed: usize) {
        count(&mut self.counts, kind, added, removed);
    }
}

/// One cluster's objects. Several objects may share a key (the slices made
/// from the subsets of one Endpoints object).
#[derive(Clone, Debug, Default)]
pub struct ClusterStore {
    state: State,
    /// Replacements in progress, one per scope (each Kubernetes watcher
    /// relists its own kind independently).
    init: BTreeMap<Scope, Pending>,
    /// Namespaces, each held once.
    strings: BTreeSet<Arc<str>>,
    /// Pod phases, numbered.
    phases: Phases,
    /// The objects' files, numbered.
    files: Files,
    /// What changed since the last snapshot.
    changes: Changes,
}

impl ClusterStore {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    fn stored(&mut self, pod: Pod) -> (Arc<str>, String, StoredPod) {
        let ns = self.intern(&pod.meta.namespace);
        let phase = self.phases.number(pod.status.phase.as_deref());
        let stored = StoredPod {
            phase,
            ready_condition: pod.status.ready_condition,
            terminating: pod.status.terminating,
            ips: pod.status.ips.into(),
        };
        (ns, pod.meta.name, stored)
    }

    /// Applies one delta; returns whether the visible state changed.
    pub fn apply(&mut self, delta: Delta) -> bool {
        match delta {
            Delta::Init(scope) => {
                self.init.insert(scope, Pending::default());
                false
            }
            Delta::InitApply(obj) => {
                let (kind, ns) = (obj.kind(), obj.meta().namespace.as_str());
                // The most specific replacement in progress takes it.
                let scope = self
                    .init
                    .keys()
                    .filter(|s| s.covers_kind_in(kind, ns))
                    .max_by_key(|s| match s {
                        Scope::All => 0,
                        Scope::Kind(_) => 1,
                        Scope::Namespaced(..) => 2,
                    })
                    .cloned()
                    .unwrap_or(Scope::Kind(kind));
                match obj {
                    Object::Pod(pod) => {
                        let (ns, name, stored) = self.stored(*pod);
                        let pending = self.init.entry(scope).or_default();
                        pending.pods_of(Some(&ns), &self.state.pods);
                        // Not kept only past 4 GiB of names in a namespace
                        // (or a name of 64 KiB, which Kubernetes would not
                        // have taken).
                        let _ = pending.pods.insert(&ns, &name, stored);
                    }
                    obj => {
                        let key = obj.key();
                        let packed = Packed::pack(vec![obj], &mut self.files)
                            .shared_if_equal(self.state.objects.get(&key));
                        let pending = self.init.entry(scope).or_default();
                        pending.objects.push((key, packed));
                    }
                }
                false
            }
            Delta::InitDone(scope) => {
                let Some(mut next) = self.init.remove(&scope) else {
                    return false;
                };
                next.pods_of(None, &self.state.pods);
                let mut next = next.into_state(&mut self.files);
                let covered = self.state.objects.keys().filter(|k| scope.covers(k));
                if covered.eq(next.objects.keys()) {
                    return self.replace_values(&scope, next);
                }
                if scope == Scope::All {
                    // Everything is replaced: no need to move the new state
                    // over one object at a time.
                    let old = std::mem::replace(&mut self.state, next);
                    return self.changes.replaced(old, &mut self.state);
                }
                let old_objects: BTreeMap<ObjectKey, Packed> = self
                    .state
                    .objects
                    .extract_if(.., |k, _| scope.covers(k))
                    .collect();
                let old_pods = self
                    .state
                    .pods
                    .extract(|ns| scope.covers_kind_in(Kind::Pod, ns));
                for (k, v) in &old_objects {
                    self.state.count(k.kind, 0, v.len());
                }
                for (kind, n) in &next.counts {
                    self.state.count(*kind, usize::try_from(*n).unwrap_or(0), 0);
                }
                let old = State {
                    objects: old_objects,
                    pods: old_pods,
                    counts: BTreeMap::new(),
                };
                let changed = self.changes.replaced(old, &mut next);
                join(&mut self.state.objects, next.objects);
                self.state.pods.join(next.pods);
                changed
            }
            Delta::Apply(Object::Pod(pod)) => {
                let (ns, name, stored) = self.stored(*pod);
                if self.state.pods.get(&ns, &name).as_ref() == Some(&stored) {
                    return false;
                }
                // Not kept only past 4 GiB of names in a namespace (or a
                // name of 64 KiB, which Kubernetes would not have taken).
                let Ok(old) = self.state.pods.insert(&ns, &name, stored) else {
                    return false;
                };
                self.changes.pod(&ns, &name, old);
                true
            }
            Delta::Apply(obj) => {
                let key = obj.key();
                let next = Packed::pack(vec![obj], &mut self.files);
                if self.state.objects.get(&key) == Some(&next) {
                    return false;
                }
                let old = self.state.objects.insert(key.clone(), next);
                self.state
                    .count(key.kind, 1, old.as_ref().map_or(0, Packed::len));
                self.changes.object(&key, old);
                true
            }
            Delta::Delete(key) if key.kind == Kind::Pod => {
                let Some(ns) = self.strings.get(key.namespace.as_str()).cloned() else {
                    return false;
                };
                let Some(old) = self.state.pods.remove(&ns, &key.name) else {
                    return false;
                };
                self.changes.pod(&ns, &key.name, Some(old));
                true
            }
            Delta::Delete(key) => {
                let Some(old) = self.state.objects.remove(&key) else {
                    return false;
                };
                self.state.count(key.kind, 0, old.len());
                self.changes.object(&key, Some(old));
                true
            }
        }
    }

    /// Ends a replacement that brought the keys there were (a relist that
    /// changed little): the changed objects are replaced where they are,
    /// so the map keeps its nodes and the unchanged objects their
    /// allocations. Returns whether anything changed.
    fn replace_values(&mut self, scope: &Scope, mut next: State) -> bool {
        let mut changed = false;
        let State {
            objects, counts, ..
        } = &mut self.state;
        let covered = objects.iter_mut().filter(|(k, _)| scope.covers(k));
        for ((key, value), (_, new)) in covered.zip(std::mem::take(&mut next.objects)) {
            if *value != new {
                changed = true;
                count(counts, key.kind, new.len(), value.len());
                let old = std::mem::replace(value, new);
                self.changes.object(key, Some(old));
            }
        }
        let mut old_pods = self
            .state
            .pods
            .extract(|ns| scope.covers_kind_in(Kind::Pod, ns));
        let changes = &mut self.changes;
        changed |= PodTable::diff(&mut old_pods, &mut next.pods, |ns, name, v| {
            changes.pod(ns, name, v)
        });
        self.state.pods.join(next.pods);
        changed
    }

    /// Takes what changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The Services the slices of key `key` belong to (read beside the
    /// packed slices, not decoded).
    pub(crate) fn slice_services(&self, key: &ObjectKey) -> impl Iterator<Item = &str> {
        let packed = self.state.objects.get(key);
        packed.into_iter().flat_map(|p| p.raw().map(|r| r.service))
    }

    /// Whether there is an object of key `key`.
    pub(crate) fn contains(&self, key: &ObjectKey) -> bool {
        self.state.objects.contains_key(key)
    }

    /// The objects by key, packed (read them with [`Self::files`]).
    pub(crate) fn packed(&self) -> impl Iterator<Item = (&ObjectKey, &Packed)> {
        self.state.objects.iter()
    }

    /// The files the packed objects' origins name.
    pub(crate) fn files(&self) -> &Files {
        &self.files
    }

    /// A pod by namespace and name.
    pub(crate) fn pod(&self, key: &PodKey) -> Option<StoredPod> {
        self.state.pods.get(&key.0, &key.1)
    }

    /// The Service `ns/name`.
    pub(crate) fn service(&self, ns: &str, name: &str) -> Option<Service> {
        let packed = self.state.objects.get(&key(Kind::Service, ns, name))?;
        packed.service(&self.files)
    }

    /// The slices of Service `ns/name`, with their keys: those of its
    /// Endpoints object and the EndpointSlices of its namespace that name it.
    pub(crate) fn slices_of(&self, ns: &str, name: &str) -> Vec<(&ObjectKey, EndpointSlice)> {
        // Every name of namespace `ns` sorts before `ns` + NUL.
        let from = key(Kind::EndpointSlice, ns, "");
        let to = key(Kind::EndpointSlice, &format!("{ns}\0"), "");
        let labelled = self.state.objects.range(from..to);
        self.state
            .objects
            .get_key_value(&key(Kind::Endpoints, ns, name))
            .into_iter()
            .chain(labelled)
            .flat_map(|(k, p)| {
                p.slices_of(name, &self.files)
                    .into_iter()
                    .map(move |s| (k, s))
            })
            .collect()
    }

    /// Whether namespace `ns` has an object of any kind, or is one.
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        self.state
            .objects
            .contains_key(&key(Kind::Namespace, "", ns))
            || self.state.pods.has_namespace(ns)
            || KINDS.iter().any(|&kind| {
                self.state
                    .objects
                    .range(key(kind, ns, "")..)
                    .next()
                    .is_some_and(|(k, _)| k.kind == kind && k.namespace == ns)
            })
    }

    /// Every object but the pods, in key order (see [`Self::pods`]),
    /// decoded.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.state
            .objects
            .values()
            .flat_map(|p| p.objects(&self.files))
    }

    /// The pods, as the store keeps them.
    pub(crate) fn pod_table(&self) -> &PodTable {
        &self.state.pods
    }

    /// The pods: namespace, name and what is kept of them; by namespace,
    /// in no order within one.
    pub fn pods(&self) -> impl Iterator<Item = (&str, &str, StoredPod)> {
        self.state.pods.iter().map(|(ns, name, p)| (&**ns, name, p))
    }

    /// The pods as objects (what is kept of them: namespace, name, status),
    /// by namespace and name.
    pub fn pod_objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.state.pods.sorted().map(|(ns, name, p)| {
            Object::Pod(Box::new(Pod {
                meta: Meta {
                    namespace: ns.to_string(),
                    name: name.to_owned(),
                    labels: Labels::new(),
                    origin: None,
                },
                spec: PodTemplate::default(),
                status: PodStatus {
                    phase: self.phases.name(p.phase).map(str::to_owned),
                    ready_condition: p.ready_condition,
                    terminating: p.terminating,
                    ips: p.ips().to_vec(),
                },
                node: None,
                owner: None,
            }))
        })
    }

    /// How many objects of each kind there are, pods apart (kept as the
    /// objects change: reporting them costs nothing per change).
    pub fn object_counts(&self) -> impl Iterator<Item = (Kind, u64)> + '_ {
        self.state
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
    }

    /// The number of pods.
    pub fn pod_count(&self) -> usize {
        self.state.pods.len()
    }

    /// The number of objects, pods included.
    pub fn len(&self) -> usize {
        let objects: u64 = self.state.counts.values().sum();
        usize::try_from(objects).unwrap_or(usize::MAX) + self.state.pods.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.state.objects.is_empty() && self.state.pods.is_empty()
    }
}

/// The key of object `ns/name` of kind `kind`.
pub(crate) fn key(kind: Kind, ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

/// All clusters' state and the snapshot generation counter.
#[derive(Clone, Debug)]
pub struct Index {
    config: IndexConfig,
    clusters: Vec<(String, ClusterStore)>,
    generation: u64,
    complete: bool,
    /// What the last snapshot needs to be updated in place (none until a
    /// full build, and after a new configuration).
    ledger: Option<Ledger>,
    last: UpdateStats,
    /// Snapshots built whole, and updated in place.
    builds: (u64, u64),
    /// Threads a full build may use.
    build_threads: usize,
}

impl Index {
    /// An empty index. `first_generation` seeds the SOA serial (callers pass
    /// the start time in seconds so serials keep increasing across restarts).
    pub fn new(config: IndexConfig, first_generation: u64) -> Self {
        Self {
            config,
            clusters: Vec::new(),
            generation: first_generation,
            complete: true,
            ledger: None,
            last: UpdateStats::default(),
            builds: (0, 0),
            build_threads: BUILD_THREADS,
        }
    }

    /// Lets a full build use up to `threads` threads (at least one; by
    /// default one, see [`BUILD_THREADS`]).
    pub fn set_build_threads(&mut self, threads: usize) {
        self.build_threads = threads.max(1);
    }

    /// Threads a full build may use.
    pub fn build_threads(&self) -> usize {
        self.build_threads
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Replaces the configuration (a reload); the next snapshot is built
    /// with it. Returns whether it differs.
    pub fn set_config(&mut self, config: IndexConfig) -> bool {
        let changed = config != self.config;
        if changed {
            self.ledger = None;
        }
        self.config = config;
        changed
    }

    /// Applies a delta to `cluster` (created on first use, in order of first
    /// appearance); returns whether the state changed.
    pub fn apply(&mut self, cluster: &str, delta: Delta) -> bool {
        let pos = match self.clusters.iter().position(|(id, _)| id == cluster) {
            Some(pos) => pos,
            None => {
                self.clusters
                    .push((cluster.to_owned(), ClusterStore::default()));
                self.clusters.len() - 1
            }
        };
        self.clusters[pos].1.apply(delta)
    }

    /// The clusters, in order of first appearance.
    pub fn clusters(&self) -> &[(String, ClusterStore)] {
        &self.clusters
    }

    /// The cluster `cluster.local` answers for.
    pub fn local_cluster(&self) -> Option<&(String, ClusterStore)> {
        match &self.config.local_cluster {
            Some(id) => self.clusters.iter().find(|(c, _)| c == id),
            None => self.clusters.first(),
        }
    }

    /// Marks whether every source has delivered a complete state; snapshots
    /// built while it is `false` answer SERVFAIL in our zones.
    pub fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    /// Whether snapshots are built as complete.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The generation of the last snapshot built.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Builds the next snapshot whole (the generation, and so the SOA
    /// serial, increases).
    pub fn build(&mut self) -> Snapshot {
        self.generation += 1;
        for (_, store) in &mut self.clusters {
            store.take_changes();
        }
        let (snap, ledger) = crate::build::build(self, self.generation);
        self.ledger = Some(ledger);
        self.last = UpdateStats::default();
        self.builds.0 += 1;
        snap
    }

    /// The next snapshot after `prev`, the last one this index built: a
    /// copy of it with only the changed services' records rebuilt when the
    /// changes allow, else built whole (see `update.rs`).
    pub fn update(&mut self, prev: &Snapshot) -> Snapshot {
        let because = match self.ledger.take() {
            Some(mut ledger)
                if ledger.generation == prev.generation && prev.generation == self.generation =>
            {
                let changes: Vec<Changes> = self
                    .clusters
                    .iter_mut()
                    .map(|(_, s)| s.take_changes())
                    .collect();
                let next = self.generation + 1;
                match crate::update::update(self, prev, &mut ledger, &changes, next) {
                    Ok((snap, stats)) => {
                        self.generation = next;
                        ledger.generation = next;
                        self.ledger = Some(ledger);
                        self.last = stats;
                        self.builds.1 += 1;
                        return snap;
                    }
                    Err(because) => because,
                }
            }
            Some(_) => "not the last snapshot built",
            None => "a new configuration",
        };
        let snap = self.build();
        self.last.built_whole_because = Some(because);
        snap
    }

    /// How many snapshots were built whole, and how many updated in place.
    pub fn build_counts(&self) -> (u64, u64) {
        self.builds
    }

    /// What the last [`Self::update`] or [`Self::build`] did.
    pub fn last_update(&self) -> UpdateStats {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, ip: [u8; 4]) -> Object {
        Object::Pod(Box::new(Pod {
            meta: Meta {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                labels: Labels::from([("app".to_owned(), "x".to_owned())]),
                origin: None,
            },
            spec: PodTemplate::default(),
            status: PodStatus {
                phase: Some("Running".to_owned()),
                ready_condition: Some(true),
                terminating: false,
                ips: vec![ip.into()],
            },
            node: Some("n1".to_owned()),
            owner: None,
        }))
    }

    fn pods(s: &ClusterStore) -> Vec<(String, IpAddr)> {
        s.pods()
            .map(|(ns, name, p)| (format!("{ns}/{name}"), p.ips()[0]))
            .collect()
    }

    #[test]
    fn a_stored_pod_is_small_and_keeps_its_phase() {
        assert!(size_of::<StoredPod>() <= 32);
        let mut phases = Phases::default();
        let (running, none, pending) = (
            phases.number(Some("Running")),
            phases.number(None),
            phases.number(Some("Pending")),
        );
        assert_eq!(phases.number(Some("Running")), running);
        assert_ne!(running, pending);
        assert_eq!(
            [running, none, pending].map(|n| phases.name(n)),
            [Some("Running"), None, Some("Pending")]
        );
    }

    #[test]
    fn pods_are_kept_apart_and_replaced_by_scope() {
        let mut s = ClusterStore::default();
        s.apply(Delta::Init(Scope::All));
        s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
        s.apply(Delta::InitApply(pod("b", "q", [10, 0, 0, 2])));
        assert!(s.apply(Delta::InitDone(Scope::All)));
        assert_eq!(s.len(), 2);
        assert_eq!(s.objects().count(), 0);
        // Same again: nothing changed.
        assert!(!s.apply(Delta::Apply(pod("a", "p", [10, 0, 0, 1]))));
        assert!(s.apply(Delta::Apply(pod("a", "p", [10, 0, 0, 3]))));
        // A relist of namespace b's pods leaves a's alone.
        let scope = Scope::Namespaced(Kind::Pod, "b".to_owned());
        s.apply(Delta::Init(scope.clone()));
        s.apply(Delta::InitApply(pod("b", "r", [10, 0, 0, 4])));
        assert!(s.apply(Delta::InitDone(scope)));
        assert_eq!(
            pods(&s),
            [
                ("a/p".to_owned(), IpAddr::from([10, 0, 0, 3])),
                ("b/r".to_owned(), IpAddr::from([10, 0, 0, 4]))
            ]
        );
        let key = |ns: &str, name: &str| ObjectKey {
            kind: Kind::Pod,
            namespace: ns.to_owned(),
            name: name.to_owned(),
        };
        assert!(!s.apply(Delta::Delete(key("c", "p"))));
        assert!(s.apply(Delta::Delete(key("a", "p"))));
        // Back as an object: what is kept (status), not labels or node.
        let Some(Object::Pod(back)) = s.pod_objects().next() else {
            panic!("one pod left");
        };
        assert_eq!(
            (back.meta.namespace.as_str(), back.meta.name.as_str()),
            ("b", "r")
        );
        assert_eq!(back.status.phase.as_deref(), Some("Running"));
        assert!(back.meta.labels.is_empty() && back.node.is_none());
    }

    fn namespace(name: &str, label: &str) -> Object {
        Object::Namespace(Meta {
            namespace: String::new(),
            name: name.to_owned(),
            labels: Labels::from([("v", label)]),
            origin: None,
        })
    }

    #[test]
    fn a_replacement_keeps_the_last_pod_of_a_key_and_every_object_in_order() {
        let mut s = ClusterStore::default();
        s.apply(Delta::Init(Scope::All));
        // Out of order, a key twice each.
        s.apply(Delta::InitApply(pod("b", "q", [10, 0, 0, 2])));
        s.apply(Delta::InitApply(namespace("n", "1")));
        s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
        s.apply(Delta::InitApply(pod("b", "q", [10, 0, 0, 9])));
        s.apply(Delta::InitApply(namespace("m", "0")));
        s.apply(Delta::InitApply(namespace("n", "2")));
        assert!(s.apply(Delta::InitDone(Scope::All)));
        assert_eq!(
            pods(&s),
            [
                ("a/p".to_owned(), IpAddr::from([10, 0, 0, 1])),
                ("b/q".to_owned(), IpAddr::from([10, 0, 0, 9]))
            ]
        );
        let objects: Vec<Object> = s.objects().collect();
        let labels: Vec<(&str, Option<&str>)> = objects
            .iter()
            .map(|o| (o.meta().name.as_str(), o.meta().labels.get("v")))
            .collect();
        assert_eq!(
            labels,
            [("m", Some("0")), ("n", Some("1")), ("n", Some("2"))]
        );
        let namespaces = s.object_counts().find(|(k, _)| *k == Kind::Namespace);
        assert_eq!(namespaces, Some((Kind::Namespace, 3)));
    }

    #[test]
    fn a_relist_of_the_same_objects_keeps_them_where_they_were() {
        let places = |s: &ClusterStore| -> Vec<*const u8> {
            s.packed()
                .filter_map(|(_, p)| match p {
                    Packed::Bytes(b) => Some(b.as_ptr()),
                    Packed::Whole(_) => None,
                })
                .collect()
        };
        let relist = |s: &mut ClusterStore, second: &str| {
            s.apply(Delta::Init(Scope::All));
            s.apply(Delta::InitApply(namespace("m", "0")));
            s.apply(Delta::InitApply(namespace("n", second)));
            s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
            s.apply(Delta::InitDone(Scope::All))
        };
        let mut s = ClusterStore::default();
        assert!(relist(&mut s, "1"));
        s.take_changes();
        let before = places(&s);
        assert_eq!(before.len(), 2);
        // Nothing changed: the same allocations, no change noted.
        assert!(!relist(&mut s, "1"));
        assert_eq!(places(&s), before);
        // One changed: only it is new.
        assert!(relist(&mut s, "2"));
        let after = places(&s);
        assert_eq!(after[0], before[0]);
        assert_eq!(s.take_changes().objects.len(), 1);
        let labels: Vec<Option<String>> = s
            .objects()
            .map(|o| o.meta().labels.get("v").map(str::to_owned))
            .collect();
        assert_eq!(labels, [Some("0".to_owned()), Some("2".to_owned())]);
        // Another key as well: the whole map is replaced, the unchanged
        // objects still where they were.
        s.apply(Delta::Init(Scope::All));
        s.apply(Delta::InitApply(namespace("m", "0")));
        s.apply(Delta::InitApply(namespace("n", "2")));
        s.apply(Delta::InitApply(namespace("o", "3")));
        assert!(s.apply(Delta::InitDone(Scope::All)));
        assert_eq!(places(&s)[..2], after[..]);
        assert_eq!(s.take_changes().objects.len(), 1);
    }

    #[test]
    fn a_relist_with_a_namespace_s_pods_apart_delivers_what_it_listed() {
        let mut s = ClusterStore::default();
        s.apply(Delta::Init(Scope::All));
        s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
        s.apply(Delta::InitApply(pod("b", "x", [10, 0, 1, 1])));
        s.apply(Delta::InitApply(pod("c", "y", [10, 0, 2, 1])));
        s.apply(Delta::InitDone(Scope::All));
        s.take_changes();
        // `a`'s pod comes twice, apart: shared with the store's table when
        // `b`'s first pod comes, then changed (in a copy) by the later one.
        s.apply(Delta::Init(Scope::All));
        s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
        s.apply(Delta::InitApply(pod("b", "x", [10, 0, 1, 1])));
        s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 2])));
        s.apply(Delta::InitApply(pod("c", "y", [10, 0, 2, 1])));
        let key: PodKey = (Arc::from("a"), "p".into());
        let ips = |s: &ClusterStore| s.pod(&key).map(|p| p.ips().to_vec());
        assert_eq!(ips(&s), Some(vec![IpAddr::from([10, 0, 0, 1])]));
        assert!(s.apply(Delta::InitDone(Scope::All)));
        assert_eq!(ips(&s), Some(vec![IpAddr::from([10, 0, 0, 2])]));
        let changes = s.take_changes();
        assert_eq!(changes.pods.len(), 1);
        assert!(changes.pods.contains_key(&key));
        assert_eq!(s.pod_count(), 3);
    }

    #[test]
    fn a_relist_keeps_the_pod_tables_of_unchanged_namespaces() {
        let relist = |s: &mut ClusterStore, last: u8| {
            s.apply(Delta::Init(Scope::All));
            s.apply(Delta::InitApply(pod("a", "p", [10, 0, 0, 1])));
            s.apply(Delta::InitApply(pod("a", "q", [10, 0, 0, 2])));
            s.apply(Delta::InitApply(pod("b", "p", [10, 0, 1, 1])));
            s.apply(Delta::InitApply(pod("c", "p", [10, 0, 2, last])));
            s.apply(Delta::InitDone(Scope::All))
        };
        let tables = |s: &ClusterStore| -> Vec<*const u8> {
            ["a", "b", "c"]
                .iter()
                .map(|ns| s.state.pods.table_place(ns))
                .collect()
        };
        let mut s = ClusterStore::default();
        assert!(relist(&mut s, 1));
        s.take_changes();
        let before = tables(&s);
        assert!(!relist(&mut s, 1));
        assert_eq!(tables(&s), before);
        assert!(s.take_changes().pods.is_empty());
        // The last namespace changed (its pods end with the relist): only
        // its table is new, and only its pod noted.
        assert!(relist(&mut s, 9));
        let after = tables(&s);
        assert_eq!(after[..2], before[..2]);
        assert_ne!(after[2], before[2]);
        let changes = s.take_changes();
        assert_eq!(changes.pods.len(), 1);
        let key: PodKey = (Arc::from("c"), "p".into());
        assert!(changes.pods.contains_key(&key));
        assert_eq!(
            s.pod(&key).map(|p| p.ips().to_vec()),
            Some(vec![IpAddr::from([10, 0, 2, 9])])
        );
    }
}
