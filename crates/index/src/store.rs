//! Per-cluster object stores fed by deltas (kube-rs `watcher::Event` shape).

use std::collections::BTreeMap;
use std::net::IpAddr;

use svcnet_model::{Cidr, Delta, Object, ObjectKey, Scope};

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

/// One cluster's objects. Several objects may share a key (the slices made
/// from the subsets of one Endpoints object).
#[derive(Clone, Debug, Default)]
pub struct ClusterStore {
    objects: BTreeMap<ObjectKey, Vec<Object>>,
    /// Replacements in progress, one per scope (each Kubernetes watcher
    /// relists its own kind independently).
    init: BTreeMap<Scope, BTreeMap<ObjectKey, Vec<Object>>>,
}

impl ClusterStore {
    /// Applies one delta; returns whether the visible state changed.
    pub fn apply(&mut self, delta: Delta) -> bool {
        match delta {
            Delta::Init(scope) => {
                self.init.insert(scope, BTreeMap::new());
                false
            }
            Delta::InitApply(obj) => {
                let key = obj.key();
                // The most specific replacement in progress takes it.
                let scope = self
                    .init
                    .keys()
                    .filter(|s| s.covers(&key))
                    .max_by_key(|s| match s {
                        Scope::All => 0,
                        Scope::Kind(_) => 1,
                        Scope::Namespaced(..) => 2,
                    })
                    .cloned()
                    .unwrap_or(Scope::Kind(key.kind));
                // Room for one: a first push would reserve four objects,
                // and almost every key holds one (an Endpoints object's
                // subsets being the exception).
                self.init
                    .entry(scope)
                    .or_default()
                    .entry(key)
                    .or_insert_with(|| Vec::with_capacity(1))
                    .push(obj);
                false
            }
            Delta::InitDone(scope) => {
                let Some(next) = self.init.remove(&scope) else {
                    return false;
                };
                if scope == Scope::All {
                    // Everything is replaced: no need to move the new state
                    // over one object at a time.
                    let changed = self.objects != next;
                    self.objects = next;
                    return changed;
                }
                let old: BTreeMap<ObjectKey, Vec<Object>> = self
                    .objects
                    .extract_if(.., |k, _| scope.covers(k))
                    .collect();
                let changed = old != next;
                self.objects.extend(next);
                changed
            }
            Delta::Apply(obj) => {
                let key = obj.key();
                let next = vec![obj];
                if self.objects.get(&key) == Some(&next) {
                    return false;
                }
                self.objects.insert(key, next);
                true
            }
            Delta::Delete(key) => self.objects.remove(&key).is_some(),
        }
    }

    /// Every object, in key order.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values().flatten()
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.values().map(Vec::len).sum()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
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
