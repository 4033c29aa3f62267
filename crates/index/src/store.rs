//! Per-cluster object stores fed by deltas (kube-rs `watcher::Event` shape).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use svcnet_model::{
    Cidr, Delta, Kind, Labels, Meta, Object, ObjectKey, Pod, PodStatus, PodTemplate, Scope,
};

use crate::snapshot::{PodMode, Snapshot};

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

/// A pod as the store keeps it: what the index reads (namespace, name,
/// status). A cluster has many more pods than anything else, so they are
/// kept apart from the other objects, with interned strings, in a fraction
/// of an [`Object`]'s size; labels, spec, node and owner are dropped (the
/// endpoints controller that reads them runs before the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPod {
    phase: Option<Arc<str>>,
    ready_condition: Option<bool>,
    terminating: bool,
    ips: Box<[IpAddr]>,
}

impl StoredPod {
    /// The pod's addresses.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }
}

type PodKey = (Arc<str>, Box<str>);

/// Objects by key, pods apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    objects: BTreeMap<ObjectKey, Vec<Object>>,
    pods: BTreeMap<PodKey, StoredPod>,
}

/// One cluster's objects. Several objects may share a key (the slices made
/// from the subsets of one Endpoints object).
#[derive(Clone, Debug, Default)]
pub struct ClusterStore {
    state: State,
    /// Replacements in progress, one per scope (each Kubernetes watcher
    /// relists its own kind independently).
    init: BTreeMap<Scope, State>,
    /// Namespaces and pod phases, each held once.
    strings: BTreeSet<Arc<str>>,
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

    fn stored(&mut self, pod: Pod) -> (PodKey, StoredPod) {
        let ns = self.intern(&pod.meta.namespace);
        let phase = pod.status.phase.as_deref().map(|p| self.intern(p));
        let stored = StoredPod {
            phase,
            ready_condition: pod.status.ready_condition,
            terminating: pod.status.terminating,
            ips: pod.status.ips.into_boxed_slice(),
        };
        ((ns, pod.meta.name.into_boxed_str()), stored)
    }

    /// Applies one delta; returns whether the visible state changed.
    pub fn apply(&mut self, delta: Delta) -> bool {
        match delta {
            Delta::Init(scope) => {
                self.init.insert(scope, State::default());
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
                        let (key, stored) = self.stored(pod);
                        self.init.entry(scope).or_default().pods.insert(key, stored);
                    }
                    obj => {
                        // Room for one: a first push would reserve four
                        // objects, and almost every key holds one (an
                        // Endpoints object's subsets being the exception).
                        self.init
                            .entry(scope)
                            .or_default()
                            .objects
                            .entry(obj.key())
                            .or_insert_with(|| Vec::with_capacity(1))
                            .push(obj);
                    }
                }
                false
            }
            Delta::InitDone(scope) => {
                let Some(next) = self.init.remove(&scope) else {
                    return false;
                };
                if scope == Scope::All {
                    // Everything is replaced: no need to move the new state
                    // over one object at a time.
                    let changed = self.state != next;
                    self.state = next;
                    return changed;
                }
                let old_objects: BTreeMap<ObjectKey, Vec<Object>> = self
                    .state
                    .objects
                    .extract_if(.., |k, _| scope.covers(k))
                    .collect();
                let old_pods: BTreeMap<PodKey, StoredPod> = self
                    .state
                    .pods
                    .extract_if(.., |k, _| scope.covers_kind_in(Kind::Pod, &k.0))
                    .collect();
                let changed = old_objects != next.objects || old_pods != next.pods;
                self.state.objects.extend(next.objects);
                self.state.pods.extend(next.pods);
                changed
            }
            Delta::Apply(Object::Pod(pod)) => {
                let (key, stored) = self.stored(pod);
                self.state.pods.insert(key, stored.clone()) != Some(stored)
            }
            Delta::Apply(obj) => {
                let key = obj.key();
                let next = vec![obj];
                if self.state.objects.get(&key) == Some(&next) {
                    return false;
                }
                self.state.objects.insert(key, next);
                true
            }
            Delta::Delete(key) if key.kind == Kind::Pod => {
                let Some(ns) = self.strings.get(key.namespace.as_str()).cloned() else {
                    return false;
                };
                let key = (ns, key.name.into_boxed_str());
                self.state.pods.remove(&key).is_some()
            }
            Delta::Delete(key) => self.state.objects.remove(&key).is_some(),
        }
    }

    /// Every object but the pods, in key order (see [`Self::pods`]).
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.state.objects.values().flatten()
    }

    /// The pods: namespace, name and what is kept of them, in that order.
    pub fn pods(&self) -> impl Iterator<Item = (&str, &str, &StoredPod)> {
        self.state
            .pods
            .iter()
            .map(|((ns, name), p)| (&**ns, &**name, p))
    }

    /// The pods as objects (what is kept of them: namespace, name, status).
    pub fn pod_objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.pods().map(|(ns, name, p)| {
            Object::Pod(Pod {
                meta: Meta {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                    labels: Labels::new(),
                    origin: None,
                },
                spec: PodTemplate::default(),
                status: PodStatus {
                    phase: p.phase.as_deref().map(str::to_owned),
                    ready_condition: p.ready_condition,
                    terminating: p.terminating,
                    ips: p.ips.to_vec(),
                },
                node: None,
                owner: None,
            })
        })
    }

    /// The number of pods.
    pub fn pod_count(&self) -> usize {
        self.state.pods.len()
    }

    /// The number of objects, pods included.
    pub fn len(&self) -> usize {
        self.state.objects.values().map(Vec::len).sum::<usize>() + self.state.pods.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.state.objects.is_empty() && self.state.pods.is_empty()
    }
}

/// All clusters' state and the snapshot generation counter.
#[derive(Clone, Debug)]
pub struct Index {
    config: IndexConfig,
    clusters: Vec<(String, ClusterStore)>,
    generation: u64,
    complete: bool,
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
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Replaces the configuration (a reload); the next snapshot is built
    /// with it. Returns whether it differs.
    pub fn set_config(&mut self, config: IndexConfig) -> bool {
        let changed = config != self.config;
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

    /// Builds the next snapshot (the generation, and so the SOA serial, increases).
    pub fn build(&mut self) -> Snapshot {
        self.generation += 1;
        crate::build::build(self, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, ip: [u8; 4]) -> Object {
        Object::Pod(Pod {
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
        })
    }

    fn pods(s: &ClusterStore) -> Vec<(String, IpAddr)> {
        s.pods()
            .map(|(ns, name, p)| (format!("{ns}/{name}"), p.ips()[0]))
            .collect()
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
}
