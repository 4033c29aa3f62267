//! The compact cluster model: what sources (manifests, the Kubernetes API)
//! produce and the index consumes (ARCHITECTURE "Data flows one way").
//!
//! Kubernetes API types stop at the source; everything here is the trimmed,
//! typed form (`IpAddr`, `u16` ports, plain label maps) of SPEC §1. The
//! emulated control plane (SPEC §1.1) turns workload objects into the
//! [`Pod`]s and [`EndpointSlice`]s a real control plane would have made, so the
//! index only ever sees the resolved state, whichever source fed it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The label that ties a multi-cluster EndpointSlice to its ServiceImport (KEP-1645).
pub const MC_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// The label naming the cluster a multi-cluster EndpointSlice came from (KEP-1645).
pub const MC_SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

mod addresses;
mod endpoints;
mod labels;
pub mod varint;

pub use addresses::{Addresses, AddressesRef};
pub use endpoints::{EndpointRef, Endpoints, Iter as EndpointIter};
pub use labels::{Iter as LabelIter, Labels};

/// Where an object was declared, for diagnostics (`file:line:column`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Origin {
    /// The file as the user named it (or `-` for standard input).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The kinds svcnet reads (SPEC §1). `Endpoints` is kept apart from
/// `EndpointSlice` only so duplicate detection and messages name the kind the
/// user wrote; both become [`EndpointSlice`]s.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Service.
    Service,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Endpoints.
    Endpoints,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// multicluster.x-k8s.io ServiceExport.
    ServiceExport,
    /// multicluster.x-k8s.io ServiceImport.
    ServiceImport,
    /// An EndpointSlice of an imported multi-cluster service (labelled
    /// `multicluster.kubernetes.io/service-name`, KEP-1645): endpoints of a
    /// ServiceImport, not of a local Service.
    ImportedEndpointSlice,
}

impl Kind {
    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::Service => "Service",
            Self::Pod => "Pod",
            Self::Endpoints => "Endpoints",
            Self::EndpointSlice => "EndpointSlice",
            Self::StatefulSet => "StatefulSet",
            Self::Deployment => "Deployment",
            Self::ReplicaSet => "ReplicaSet",
            Self::DaemonSet => "DaemonSet",
            Self::ServiceExport => "ServiceExport",
            Self::ServiceImport => "ServiceImport",
            Self::ImportedEndpointSlice => "EndpointSlice",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object: kind, namespace (empty for cluster-scoped), name.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectKey {
    /// The object's kind.
    pub kind: Kind,
    /// Namespace; empty for Namespace objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Metadata every object carries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// Namespace (`default` when the manifest leaves it out; empty for Namespace objects).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// Where it was declared, when it came from a file.
    pub origin: Option<Origin>,
}

/// Transport protocol of a port.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The SRV label form (`tcp`, `udp`, `sctp`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// A Service's `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TargetPort {
    /// A port number on the pod.
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

/// One entry of `spec.ports` of a Service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServicePort {
    /// Port name; only named ports get SRV records.
    pub name: Option<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// The Service port.
    pub port: u16,
    /// Where traffic goes on the pod (`port` when not given).
    pub target_port: TargetPort,
    /// NodePort, when set (kept for the proxy; DNS ignores it).
    pub node_port: Option<u16>,
}

/// How a Service gets its virtual address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ServiceAddress {
    /// No `clusterIP` given: the control plane allocates one (manifest mode).
    Unallocated,
    /// `clusterIP: None`.
    Headless,
    /// Explicit (or allocated) ClusterIPs, in `clusterIPs` order.
    ClusterIps(Vec<IpAddr>),
    /// `type: ExternalName`: a CNAME to this name (or, we decide, an IP literal).
    ExternalName(String),
}

/// `spec.type` of a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ServiceType {
    /// ClusterIP (default).
    #[default]
    ClusterIp,
    /// NodePort.
    NodePort,
    /// LoadBalancer.
    LoadBalancer,
    /// ExternalName.
    ExternalName,
}

/// A core/v1 Service, trimmed to what DNS and the proxy need.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    /// Metadata.
    pub meta: Meta,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// The virtual address (or its absence).
    pub address: ServiceAddress,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.selector`; `None` for a selector-less Service.
    pub selector: Option<Labels>,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready: bool,
}

impl Service {
    /// Whether the Service has no virtual IP (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        matches!(self.address, ServiceAddress::Headless)
    }
}

/// A container port of a pod (for named `targetPort` resolution).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ContainerPort {
    /// Port name.
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A pod template: what workloads stamp out.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PodTemplate {
    /// Template labels.
    pub labels: Labels,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// Ports of all containers (shared by the pods of a workload).
    pub container_ports: Arc<[ContainerPort]>,
}

/// Readiness facts of a pod, as its status gives them (SPEC §1.1 "Readiness").
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PodStatus {
    /// `status.phase`, when given.
    pub phase: Option<String>,
    /// The `Ready` condition, when given.
    pub ready_condition: Option<bool>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.podIPs` (or `status.podIP`), when given.
    pub ips: Vec<IpAddr>,
}

/// A pod: explicit in the manifests or API, or made by the emulated control plane.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pod {
    /// Metadata (labels included).
    pub meta: Meta,
    /// Hostname, subdomain and container ports.
    pub spec: PodTemplate,
    /// Readiness facts.
    pub status: PodStatus,
    /// The node it runs on, when known.
    pub node: Option<String>,
    /// The workload that owns it (`StatefulSet web`), for explanations
    /// (shared by the workload's pods).
    pub owner: Option<Arc<ObjectKey>>,
}

/// Why a pod is or is not Ready (SPEC §1.1), in words `svcnet resolve` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Readiness {
    /// Ready.
    Ready,
    /// `status.conditions` has `Ready=False`.
    ConditionFalse,
    /// `status.phase` is given and is not `Running`.
    NotRunning,
    /// `metadata.deletionTimestamp` is set.
    Terminating,
}

impl Pod {
    /// SPEC §1.1 readiness.
    pub fn readiness(&self) -> Readiness {
        if self.status.terminating {
            Readiness::Terminating
        } else if self.status.ready_condition == Some(false) {
            Readiness::ConditionFalse
        } else if self.status.phase.as_deref().is_some_and(|p| p != "Running") {
            Readiness::NotRunning
        } else {
            Readiness::Ready
        }
    }

    /// Whether the pod is Ready.
    pub fn is_ready(&self) -> bool {
        self.readiness() == Readiness::Ready
    }

    /// Whether a terminating pod still serves (its Ready condition, SPEC §1.1).
    pub fn is_serving(&self) -> bool {
        match self.readiness() {
            Readiness::Ready => true,
            Readiness::Terminating => self.status.ready_condition.unwrap_or(true),
            _ => false,
        }
    }
}

/// A workload kind that makes pods.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum WorkloadKind {
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// The object kind.
    pub fn kind(self) -> Kind {
        match self {
            Self::StatefulSet => Kind::StatefulSet,
            Self::Deployment => Kind::Deployment,
            Self::ReplicaSet => Kind::ReplicaSet,
            Self::DaemonSet => Kind::DaemonSet,
        }
    }
}

/// A StatefulSet, Deployment, ReplicaSet or DaemonSet (manifest mode only).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    /// Metadata.
    pub meta: Meta,
    /// Which kind.
    pub kind: WorkloadKind,
    /// `spec.replicas` (default 1; ignored for DaemonSets).
    pub replicas: u32,
    /// `spec.ordinals.start` (StatefulSet).
    pub ordinals_start: u32,
    /// `spec.serviceName` (StatefulSet).
    pub service_name: Option<String>,
    /// `podManagementPolicy` is `OrderedReady` (the default).
    pub ordered_ready: bool,
    /// `spec.selector.matchLabels`.
    pub selector: Labels,
    /// `spec.template`.
    pub template: PodTemplate,
    /// A stable hash of the template as written, for Deployment pod names.
    pub template_hash: u64,
}

/// One port of an EndpointSlice (or an Endpoints subset).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct EndpointPort {
    /// Port name (matches the Service port name).
    pub name: Option<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// The port on the endpoint.
    pub port: u16,
}

/// One endpoint of an EndpointSlice. A cluster has about as many of these
/// as pods, so the strings are exact (no spare capacity) and the node name
/// is shared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Its addresses (one per family in practice).
    pub addresses: Addresses,
    /// `hostname`, when the pod has one and its subdomain is the Service.
    pub hostname: Option<Box<str>>,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The pod behind it, when known.
    pub pod: Option<Box<str>>,
    /// The node it runs on, when known.
    pub node: Option<Arc<str>>,
}

/// A discovery.k8s.io/v1 EndpointSlice (core/v1 Endpoints are converted to these).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointSlice {
    /// Metadata.
    pub meta: Meta,
    /// The Service it belongs to (`kubernetes.io/service-name`, or the
    /// Endpoints object's own name).
    pub service: String,
    /// Ports every endpoint of the slice has.
    pub ports: Vec<EndpointPort>,
    /// The endpoints.
    pub endpoints: Endpoints,
}

/// `ServiceImport.spec.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImportType {
    /// A virtual ClusterSetIP.
    ClusterSetIp,
    /// Headless: the endpoints of every exporting cluster.
    Headless,
}

/// A multicluster.x-k8s.io ServiceImport (KEP-1645).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceImport {
    /// Metadata.
    pub meta: Meta,
    /// `spec.type`.
    pub import_type: ImportType,
    /// `spec.ips`.
    pub ips: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<EndpointPort>,
}

/// Every object the model knows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Object {
    /// A namespace.
    Namespace(Meta),
    /// A Service.
    Service(Service),
    /// A Pod (boxed, as is a workload: they are larger than the rest, and
    /// a store keeps many services and slices in an object's room).
    Pod(Box<Pod>),
    /// An EndpointSlice; `from_endpoints` when it was a core/v1 Endpoints.
    EndpointSlice {
        /// The slice.
        slice: EndpointSlice,
        /// It was written as a core/v1 Endpoints object.
        from_endpoints: bool,
    },
    /// A workload (manifest mode).
    Workload(Box<Workload>),
    /// A ServiceExport.
    ServiceExport(Meta),
    /// A ServiceImport.
    ServiceImport(ServiceImport),
}

impl Object {
    /// The object's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Self::Namespace(m) | Self::ServiceExport(m) => m,
            Self::Service(s) => &s.meta,
            Self::Pod(p) => &p.meta,
            Self::EndpointSlice { slice, .. } => &slice.meta,
            Self::Workload(w) => &w.meta,
            Self::ServiceImport(i) => &i.meta,
        }
    }

    /// The object's metadata, to change.
    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Self::Namespace(m) | Self::ServiceExport(m) => m,
            Self::Service(s) => &mut s.meta,
            Self::Pod(p) => &mut p.meta,
            Self::EndpointSlice { slice, .. } => &mut slice.meta,
            Self::Workload(w) => &mut w.meta,
            Self::ServiceImport(i) => &mut i.meta,
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Namespace(_) => Kind::Namespace,
            Self::ServiceExport(_) => Kind::ServiceExport,
            Self::Service(_) => Kind::Service,
            Self::Pod(_) => Kind::Pod,
            Self::EndpointSlice {
                from_endpoints: true,
                ..
            } => Kind::Endpoints,
            Self::EndpointSlice { slice, .. }
                if slice.meta.labels.contains_key(MC_SERVICE_NAME_LABEL) =>
            {
                Kind::ImportedEndpointSlice
            }
            Self::EndpointSlice { .. } => Kind::EndpointSlice,
            Self::Workload(w) => w.kind.kind(),
            Self::ServiceImport(_) => Kind::ServiceImport,
        }
    }

    /// The object's identity.
    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        ObjectKey {
            kind: self.kind(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        }
    }
}

/// What a full replacement replaces: a manifest source replaces a whole
/// cluster, each Kubernetes watcher only the objects of its own kind.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    /// Every object of the cluster.
    All,
    /// The objects of one kind.
    Kind(Kind),
    /// The objects of one kind in one namespace (a namespaced watcher).
    Namespaced(Kind, String),
}

impl Scope {
    /// Whether the object with `key` belongs to the scope.
    pub fn covers(&self, key: &ObjectKey) -> bool {
        self.covers_kind_in(key.kind, &key.namespace)
    }

    /// Whether an object of `kind` in namespace `ns` belongs to the scope
    /// (without making its key).
    pub fn covers_kind_in(&self, kind: Kind, ns: &str) -> bool {
        match self {
            Self::All => true,
            Self::Kind(k) => *k == kind,
            Self::Namespaced(k, n) => *k == kind && n == ns,
        }
    }
}

/// A change to one cluster's state, in the shape of kube-rs's `watcher::Event`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Delta {
    /// A full replacement of the scope begins; objects follow as `InitApply`.
    Init(Scope),
    /// One object of a full replacement.
    InitApply(Object),
    /// The full replacement of the scope is complete: publish it atomically.
    InitDone(Scope),
    /// An object was added or changed.
    Apply(Object),
    /// An object went away.
    Delete(ObjectKey),
}

/// Whether `labels` satisfy an equality `selector` (an empty selector
/// matches nothing for Services, as in Kubernetes).
pub fn selector_matches(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// An address range (`10.96.0.0/12`, `fd00:10:96::/112`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub network: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

/// Why a CIDR does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a CIDR (want ADDRESS/PREFIX, e.g. 10.96.0.0/12)",
            self.0
        )
    }
}

impl std::error::Error for CidrError {}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(err());
        }
        let network = Self::mask(addr, prefix);
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    fn bits(self) -> u8 {
        if self.network.is_ipv4() { 32 } else { 128 }
    }

    fn to_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let host = bits - u32::from(prefix);
        let v = Self::to_u128(ip);
        let masked = if host >= 128 { 0 } else { (v >> host) << host };
        Self::from_u128(ip.is_ipv4(), masked)
    }

    fn from_u128(v4: bool, v: u128) -> IpAddr {
        if v4 {
            IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(v))
        }
    }

    /// Whether `ip` is inside the range.
    pub fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4() && Self::mask(ip, self.prefix) == self.network
    }

    /// The number of host addresses usable for allocation (network address
    /// excluded; capped to keep arithmetic in range).
    pub fn size(self) -> u128 {
        let host = u32::from(self.bits() - self.prefix);
        if host >= 64 { 1 << 64 } else { 1u128 << host }
    }

    /// The address at `offset` from the network address.
    pub fn nth(self, offset: u128) -> IpAddr {
        Self::from_u128(self.network.is_ipv4(), Self::to_u128(self.network) + offset)
    }

    /// Splits the range into the reverse zones that cover it exactly: octet
    /// boundaries for IPv4, nibble boundaries for IPv6 (a /12 becomes sixteen
    /// /16 zones). Capped at 256 zones.
    pub fn reverse_zones(self) -> Vec<Self> {
        let step = if self.network.is_ipv4() { 8 } else { 4 };
        let aligned = self.prefix.div_ceil(step) * step;
        let extra = u32::from(aligned - self.prefix).min(8);
        let host = u32::from(self.bits() - aligned);
        (0..(1u128 << extra))
            .map(|i| {
                let net = Self::to_u128(self.network) + (i << host);
                Self {
                    network: Self::from_u128(self.network.is_ipv4(), net),
                    prefix: aligned,
                }
            })
            .collect()
    }
}

/// Deterministic address allocation (SPEC §1.1): each key hashes to a
/// preferred offset in the range; collisions probe forward. Callers allocate
/// in a stable order, so the same input always gives the same addresses.
#[derive(Clone, Debug)]
pub struct Allocator {
    cidr: Cidr,
    taken: Taken,
}

/// Ranges of up to this many addresses keep what is taken in a bitmap
/// (2 MiB at most: a /8, or an IPv6 /104); larger ones in a hash set.
const BITMAP_MAX: u128 = 1 << 24;

/// The addresses handed out or reserved. A cluster's pod range (a /9 for a
/// million pods) is a bitmap of a megabyte that stays in the cache, where a
/// hash set of a million addresses is tens of megabytes probed at random.
#[derive(Clone, Debug)]
enum Taken {
    /// One bit per offset in the range. An address outside it is never
    /// handed out, so reserving one keeps nothing.
    Bits(Vec<u64>),
    Set(std::collections::HashSet<IpAddr>),
}

impl Taken {
    fn new(cidr: Cidr) -> Self {
        let size = cidr.size();
        if size <= BITMAP_MAX {
            let words = usize::try_from(size.div_ceil(64)).unwrap_or(0);
            Self::Bits(vec![0; words])
        } else {
            Self::Set(std::collections::HashSet::new())
        }
    }

    /// Marks `ip` taken; false when it was already.
    fn insert(&mut self, cidr: Cidr, ip: IpAddr) -> bool {
        match self {
            Self::Bits(words) => {
                let offset = cidr
                    .contains(ip)
                    .then(|| Cidr::to_u128(ip) - Cidr::to_u128(cidr.network))
                    .and_then(|o| usize::try_from(o).ok())
                    .filter(|o| o / 64 < words.len());
                let Some(offset) = offset else {
                    return true;
                };
                let (word, bit) = (&mut words[offset / 64], 1u64 << (offset % 64));
                let new = *word & bit == 0;
                *word |= bit;
                new
            }
            Self::Set(set) => set.insert(ip),
        }
    }
}

impl Allocator {
    /// An allocator over `cidr`; `reserved` addresses are never handed out.
    pub fn new(cidr: Cidr, reserved: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut a = Self {
            cidr,
            taken: Taken::new(cidr),
        };
        for ip in reserved {
            a.reserve(ip);
        }
        a.reserve(cidr.network);
        if cidr.network.is_ipv4() && cidr.prefix < 31 {
            a.reserve(cidr.nth(cidr.size() - 1));
        }
        a
    }

    /// The range.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Marks an address as used (explicitly assigned by the user).
    pub fn reserve(&mut self, ip: IpAddr) {
        self.taken.insert(self.cidr, ip);
    }

    /// Allocates the address for `key`; `None` when the range is full.
    pub fn allocate(&mut self, key: &str) -> Option<IpAddr> {
        self.allocate_hashed(fnv1a64(key.as_bytes()))
    }

    /// [`Self::allocate`] for a key whose [`fnv1a64`] is `hash` (see
    /// [`Fnv`] to hash a key made of parts without putting it together).
    pub fn allocate_hashed(&mut self, hash: u64) -> Option<IpAddr> {
        let size = self.cidr.size();
        let start = u128::from(hash) % size;
        let tries = size.min(1 << 20);
        let cidr = self.cidr;
        (0..tries)
            .map(|i| cidr.nth((start + i) % size))
            .find(|ip| self.taken.insert(cidr, *ip))
    }
}

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`) for names and
/// addresses that must not change between runs or Rust versions.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv::new().write(bytes).finish()
}

/// `parts` joined by `sep`, in a string with no spare capacity: names the
/// emulation and the build make by the million (pods, endpoints) are kept
/// as made, where a string grown by `format!` keeps room it never uses (and
/// cut to its length in place, its larger block).
pub fn joined(sep: char, parts: &[&str]) -> String {
    let len = parts
        .iter()
        .map(|p| p.len() + sep.len_utf8())
        .sum::<usize>()
        .saturating_sub(sep.len_utf8());
    let mut s = String::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            s.push(sep);
        }
        s.push_str(part);
    }
    s
}

/// `n` in decimal, written into `buf` (no allocation).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// [`fnv1a64`] of bytes given in parts: the hash of their concatenation.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    /// The hash of nothing yet.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds `bytes`.
    #[must_use]
    pub fn write(self, bytes: &[u8]) -> Self {
        Self(bytes.iter().fold(self.0, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }))
    }

    /// Adds `n` in decimal, as `format!("{n}")` writes it.
    #[must_use]
    pub fn write_decimal(self, n: u64) -> Self {
        let mut digits = [0u8; 20];
        self.write(decimal(n, &mut digits).as_bytes())
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_contains_split() {
        let c: Cidr = "10.96.0.0/12".parse().unwrap();
        assert!(c.contains("10.100.1.1".parse().unwrap()));
        assert!(!c.contains("10.112.0.1".parse().unwrap()));
        assert_eq!(c.reverse_zones().len(), 16);
        assert_eq!(c.reverse_zones()[15].to_string(), "10.111.0.0/16");
        let v6: Cidr = "fd00::/106".parse().unwrap();
        assert_eq!(v6.reverse_zones().len(), 4);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("bogus".parse::<Cidr>().is_err());
    }

    #[test]
    fn allocation_is_stable_and_unique() {
        let c: Cidr = "10.0.0.0/29".parse().unwrap();
        let mut a = Allocator::new(c, []);
        let ips: Vec<_> = (0..6)
            .map(|i| a.allocate(&format!("k{i}")).unwrap())
            .collect();
        let mut dedup = ips.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 6);
        assert_eq!(a.allocate("k7"), None);
        let mut b = Allocator::new(c, []);
        assert_eq!(b.allocate("k0"), Some(ips[0]));
    }

    #[test]
    fn a_bitmap_and_a_hash_set_hand_out_the_same_addresses() {
        // The same keys over a range kept in a bitmap and, forced, in a
        // hash set: the same addresses, collisions and reservations
        // included (an address outside the range reserved too).
        let c: Cidr = "10.0.0.0/22".parse().unwrap();
        let reserved: Vec<IpAddr> = ["10.0.0.7", "10.0.3.0", "192.0.2.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut bits = Allocator::new(c, reserved.clone());
        assert!(matches!(bits.taken, Taken::Bits(_)));
        let mut set = Allocator {
            cidr: c,
            taken: Taken::Set(std::collections::HashSet::new()),
        };
        for ip in reserved
            .iter()
            .copied()
            .chain([c.network, c.nth(c.size() - 1)])
        {
            set.reserve(ip);
        }
        let a: Vec<_> = (0..1030).map(|i| bits.allocate(&format!("p{i}"))).collect();
        let b: Vec<_> = (0..1030).map(|i| set.allocate(&format!("p{i}"))).collect();
        assert_eq!(a, b);
        // 1024 addresses, 4 of them reserved: the last two keys find none.
        assert_eq!(a.iter().filter(|ip| ip.is_some()).count(), 1020);
        assert!(!a.contains(&Some("10.0.0.7".parse().unwrap())));
        let mut v6 = Allocator::new("fd00::/120".parse().unwrap(), []);
        assert!(matches!(v6.taken, Taken::Bits(_)));
        assert!(v6.allocate("x").is_some());
        let big = Allocator::new("fd00::/64".parse().unwrap(), []);
        assert!(matches!(big.taken, Taken::Set(_)));
    }

    #[test]
    fn hashing_in_parts_is_hashing_the_whole() {
        let whole = fnv1a64(b"default/web/7d9f/12");
        let parts = Fnv::new()
            .write(b"default/web/")
            .write(b"7d9f/")
            .write_decimal(12)
            .finish();
        assert_eq!(whole, parts);
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(
                Fnv::new().write_decimal(n).finish(),
                fnv1a64(n.to_string().as_bytes())
            );
        }
    }
}
