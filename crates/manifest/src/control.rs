//! The emulated control plane (SPEC §1.1): what Kubernetes would have made
//! from the manifests — workload pods, pod IPs, ClusterIPs, readiness and
//! the endpoints controller — computed deterministically so the same input
//! always gives the same answers, across runs and reloads.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use svcnet_model::{
    AddressesRef, Allocator, Cidr, EndpointPort, EndpointRef, EndpointSlice, Endpoints, Fnv, Kind,
    Labels, Meta, Object, ObjectKey, Pod, PodStatus, PodTemplate, Service, ServiceAddress,
    ServicePort, ServiceType, TargetPort, Workload, WorkloadKind, decimal, joined,
    selector_matches,
};

/// Settings of the emulation (the flags `--pod-cidr`, `--service-cidr`, `--nodes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlConfig {
    /// Pod CIDRs; one per family (dual-stack when both are given).
    pub pod_cidrs: Vec<Cidr>,
    /// Service CIDRs; ClusterIPs come from the first.
    pub service_cidrs: Vec<Cidr>,
    /// Node names, for DaemonSets.
    pub nodes: Vec<String>,
    /// The cluster id, mixed into address allocation so that two emulated
    /// clusters do not hand out the same pod IPs and ClusterIPs.
    pub cluster: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            pod_cidrs: vec![Cidr {
                network: [10, 244, 0, 0].into(),
                prefix: 16,
            }],
            service_cidrs: vec![Cidr {
                network: [10, 96, 0, 0].into(),
                prefix: 12,
            }],
            nodes: vec!["node-1".to_owned()],
            cluster: "local".to_owned(),
        }
    }
}

/// A pod the workload would have but that does not exist (yet), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPod {
    /// Namespace.
    pub namespace: String,
    /// The pod name it would have.
    pub name: String,
    /// Why it is pending, in words.
    pub reason: String,
}

/// The resolved state of one cluster: what a real control plane would show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Namespaces, Services (addresses allocated), EndpointSlices,
    /// ServiceExports and ServiceImports. No workloads, no pods.
    pub objects: Vec<Object>,
    /// Pods, in (namespace, name) order. Apart from the objects: they are
    /// most of a cluster, and one vector of them is the largest thing the
    /// emulation holds.
    pub pods: Vec<Pod>,
    /// Pods held back by `OrderedReady`.
    pub pending: Vec<PendingPod>,
}

const HASH_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters of the alphabet Kubernetes uses for generated names.
fn safe_encode(mut h: u64, n: usize) -> String {
    let base = HASH_ALPHABET.len() as u64;
    (0..n)
        .map(|_| {
            let c = HASH_ALPHABET[(h % base) as usize];
            h /= base;
            char::from(c)
        })
        .collect()
}

impl ClusterView {
    /// Every object, pods included, copied.
    pub fn all(&self) -> Vec<Object> {
        let mut all = self.objects.clone();
        all.extend(self.pods.iter().map(|p| Object::Pod(Box::new(p.clone()))));
        all
    }
}

/// Runs the control plane over one cluster's decoded objects.
pub fn emulate(objects: &[Object], config: &ControlConfig) -> ClusterView {
    let mut view = ClusterView::default();
    view.pods.reserve_exact(expected_pods(objects, config));
    view.pending = emulate_each(objects, config, &mut |obj| match obj {
        Object::Pod(pod) => view.pods.push(*pod),
        other => view.objects.push(other),
    });
    view.objects.shrink_to_fit();
    view
}

/// [`emulate`], each resolved object handed to `emit` as it is made instead
/// of collected: first the namespaces, the services (addresses allocated)
/// and the manifests' own EndpointSlices; then, one namespace at a time in
/// name order, its EndpointSlices and its pods (in name order); last the
/// ServiceExports and ServiceImports. The pods of one namespace exist at
/// once, never the whole cluster's: a consumer that keeps them in a smaller
/// form (the index) holds the cluster once, not twice. Returns the pods held
/// back by `OrderedReady`. The objects are read, not taken: a caller can
/// pass the files' own, with no copy.
pub fn emulate_each<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    config: &ControlConfig,
    emit: &mut dyn FnMut(Object),
) -> Vec<PendingPod> {
    let mut pending = Vec::new();
    let mut namespaces = BTreeSet::new();
    let mut services: Vec<Service> = Vec::new();
    let mut explicit_pods: BTreeMap<(String, String), Pod> = BTreeMap::new();
    let mut workloads: Vec<&Workload> = Vec::new();
    let mut slices: Vec<Object> = Vec::new();
    let mut rest: Vec<Object> = Vec::new();
    for obj in objects {
        let meta = obj.meta();
        if !meta.namespace.is_empty() {
            namespaces.insert(meta.namespace.clone());
        }
        match obj {
            Object::Namespace(m) => {
                namespaces.insert(m.name.clone());
            }
            Object::Service(s) => services.push(s.clone()),
            Object::Pod(p) => {
                explicit_pods.insert(
                    (p.meta.namespace.clone(), p.meta.name.clone()),
                    (**p).clone(),
                );
            }
            Object::Workload(w) => workloads.push(w),
            Object::EndpointSlice { .. } => slices.push(obj.clone()),
            Object::ServiceExport(_) | Object::ServiceImport(_) => rest.push(obj.clone()),
        }
    }
    namespaces.insert("default".to_owned());

    add_kubernetes_service(&mut services, config);
    assign_cluster_ips(&mut services, config);
    services
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    // Stable: a namespace's workloads stay in manifest order.
    workloads.sort_by(|a, b| a.meta.namespace.cmp(&b.meta.namespace));
    // Addresses the manifests give are taken before any is handed out, in
    // whichever namespace they are.
    let mut allocators = pod_allocators(explicit_pods.values(), config);

    for name in &namespaces {
        emit(Object::Namespace(Meta {
            namespace: String::new(),
            name: name.clone(),
            labels: Labels::new(),
            origin: None,
        }));
    }
    for svc in &services {
        emit(Object::Service(svc.clone()));
    }
    for slice in slices {
        emit(slice);
    }

    // Every object's namespace is in `namespaces`, visited in order.
    let (mut next_workload, mut next_service) = (0, 0);
    for ns in &namespaces {
        let ns_workloads = take_while_in(&workloads, &mut next_workload, ns, |w| &w.meta.namespace);
        let mut pods = workload_pods(ns_workloads, &mut explicit_pods, &mut pending, config);
        let explicit_here: Vec<(String, String)> = explicit_pods
            .range((ns.clone(), String::new())..)
            .take_while(|((pod_ns, _), _)| pod_ns == ns)
            .map(|(key, _)| key.clone())
            .collect();
        pods.extend(explicit_here.iter().filter_map(|k| explicit_pods.remove(k)));
        sort_by_name(&mut pods);
        assign_pod_ips(&mut pods, &mut allocators, config);

        let ns_services = take_while_in(&services, &mut next_service, ns, |s| &s.meta.namespace);
        if !ns_services.is_empty() {
            // Each service looks only at its namespace's pods, through an
            // index of their labels.
            let labels = LabelIndex::new(&pods);
            for svc in ns_services {
                let candidates = labels.candidates(&pods, svc.selector.as_ref());
                for slice in endpoints_for(svc, candidates) {
                    emit(Object::EndpointSlice {
                        slice,
                        from_endpoints: false,
                    });
                }
            }
        }
        for pod in pods {
            emit(Object::Pod(Box::new(pod)));
        }
    }
    // Pods of a namespace not visited (none: every namespace is) are not lost.
    for pod in explicit_pods.into_values() {
        emit(Object::Pod(Box::new(pod)));
    }
    for obj in rest {
        emit(obj);
    }
    pending
}

/// The items of `sorted` (by namespace) from `*next` on that are in
/// namespace `ns`; `*next` moves past them. Items of an earlier namespace
/// not visited (none: every namespace is) are passed over.
fn take_while_in<'a, T>(
    sorted: &'a [T],
    next: &mut usize,
    ns: &str,
    namespace: impl Fn(&T) -> &String,
) -> &'a [T] {
    let mut from = (*next).min(sorted.len());
    from += sorted[from..].partition_point(|t| namespace(t).as_str() < ns);
    let len = sorted[from..].partition_point(|t| namespace(t).as_str() == ns);
    *next = from + len;
    &sorted[from..from + len]
}

/// The most pods a vector of them is reserved for at once: manifests asking
/// for more pods than any cluster has grow it as they go instead.
const RESERVED_AT_MOST: usize = 1 << 23;

/// How many pods a workload makes (pods held back by `OrderedReady`
/// included).
fn pods_of(w: &Workload, config: &ControlConfig) -> usize {
    match w.kind {
        WorkloadKind::DaemonSet => config.nodes.len(),
        _ => usize::try_from(w.replicas).unwrap_or(0),
    }
}

/// How many pods the objects make (an upper bound: pods held back by
/// `OrderedReady` are counted), up to [`RESERVED_AT_MOST`].
fn expected_pods(objects: &[Object], config: &ControlConfig) -> usize {
    objects
        .iter()
        .map(|o| match o {
            Object::Pod(_) => 1,
            Object::Workload(w) => pods_of(w, config),
            _ => 0,
        })
        .fold(0, usize::saturating_add)
        .min(RESERVED_AT_MOST)
}

/// Puts the pods in (namespace, name) order, in place. The order is found
/// on their positions and then applied one cycle of the permutation at a
/// time, so each pod moves about once (sorting the pods themselves would
/// move every one of them many times) and no second vector of them exists.
fn sort_by_name(pods: &mut [Pod]) {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&pods[a].meta, &pods[b].meta);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    // Position `i` wants the pod now at `order[i]`; a placed position is
    // marked by `order[i] == i`.
    for start in 0..order.len() {
        let mut i = start;
        while order[i] != start {
            let from = order[i];
            pods.swap(i, from);
            order[i] = i;
            i = from;
        }
        order[i] = i;
    }
}

/// The pods of one namespace by label: each `key=value` → the positions of
/// the pods that carry it.
struct LabelIndex<'p> {
    pairs: FxHashMap<(&'p str, &'p str), Vec<u32>>,
}

impl<'p> LabelIndex<'p> {
    fn new(pods: &'p [Pod]) -> Self {
        let mut pairs: FxHashMap<(&str, &str), Vec<u32>> = FxHashMap::default();
        for (i, pod) in pods.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            for (k, v) in &pod.meta.labels {
                pairs.entry((k, v)).or_default().push(i);
            }
        }
        Self { pairs }
    }

    /// The pods that may match `selector`, in order: those carrying its
    /// rarest `key=value` (the endpoints controller still checks the whole
    /// selector). None for a missing or empty selector, which selects none.
    fn candidates<'a>(
        &'a self,
        pods: &'a [Pod],
        selector: Option<&'a Labels>,
    ) -> impl Iterator<Item = &'a Pod> + 'a {
        let rarest = selector
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| self.pairs.get(&(k, v)).map_or(&[][..], Vec::as_slice))
                    .min_by_key(|c| c.len())
                    .unwrap_or(&[])
            })
            .unwrap_or(&[]);
        rarest
            .iter()
            .filter_map(move |&i| pods.get(usize::try_from(i).ok()?))
    }
}

fn workload_pods(
    workloads: &[&Workload],
    explicit: &mut BTreeMap<(String, String), Pod>,
    pending: &mut Vec<PendingPod>,
    config: &ControlConfig,
) -> Vec<Pod> {
    // As many as the namespace's workloads make, up to the bound. The
    // explicit pods without a workload are added after.
    let wanted = workloads
        .iter()
        .map(|w| pods_of(w, config))
        .fold(0, usize::saturating_add);
    let mut pods = Vec::with_capacity(wanted.min(RESERVED_AT_MOST));
    for w in workloads {
        let ns = &w.meta.namespace;
        let owner = Arc::new(ObjectKey {
            kind: w.kind.kind(),
            namespace: ns.clone(),
            name: w.meta.name.clone(),
        });
        let names: Vec<(String, Option<String>)> = match w.kind {
            WorkloadKind::StatefulSet => (0..w.replicas)
                .map(|i| {
                    let mut digits = [0u8; 20];
                    let ordinal = decimal(u64::from(w.ordinals_start) + u64::from(i), &mut digits);
                    (joined('-', &[&w.meta.name, ordinal]), None)
                })
                .collect(),
            WorkloadKind::Deployment => {
                let hash = safe_encode(w.template_hash, 10);
                (0..w.replicas)
                    .map(|i| {
                        // The hash of "{ns}/{name}/{hash}/{i}".
                        let h = owned_by(w)
                            .write(hash.as_bytes())
                            .write(b"/")
                            .write_decimal(u64::from(i))
                            .finish();
                        (
                            joined('-', &[&w.meta.name, &hash, &safe_encode(h, 5)]),
                            None,
                        )
                    })
                    .collect()
            }
            WorkloadKind::ReplicaSet => (0..w.replicas)
                .map(|i| {
                    let h = owned_by(w).write_decimal(u64::from(i)).finish();
                    (joined('-', &[&w.meta.name, &safe_encode(h, 5)]), None)
                })
                .collect(),
            WorkloadKind::DaemonSet => config
                .nodes
                .iter()
                .map(|node| {
                    let h = owned_by(w).write(node.as_bytes()).finish();
                    (
                        joined('-', &[&w.meta.name, &safe_encode(h, 5)]),
                        Some(node.clone()),
                    )
                })
                .collect(),
        };
        let mut blocked_by: Option<String> = None;
        for (name, node) in names {
            if let Some(by) = &blocked_by {
                pending.push(PendingPod {
                    namespace: ns.clone(),
                    name,
                    reason: format!(
                        "{by} is not Ready and {} {} uses OrderedReady",
                        owner.kind, owner.name
                    ),
                });
                continue;
            }
            // The labels are the pod's own (metadata); the template's copy
            // is the workload's.
            let mut spec = PodTemplate {
                labels: Labels::new(),
                hostname: w.template.hostname.clone(),
                subdomain: w.template.subdomain.clone(),
                container_ports: w.template.container_ports.clone(),
            };
            if w.kind == WorkloadKind::StatefulSet {
                spec.hostname = Some(name.clone());
                spec.subdomain.clone_from(&w.service_name);
            }
            let user = if explicit.is_empty() {
                None
            } else {
                explicit.remove(&(ns.clone(), name.clone()))
            };
            let emulated = Pod {
                meta: Meta {
                    namespace: ns.clone(),
                    name,
                    labels: w.template.labels.clone(),
                    origin: w.meta.origin.clone(),
                },
                spec,
                status: PodStatus {
                    phase: Some("Running".to_owned()),
                    ..PodStatus::default()
                },
                node: node.or_else(|| config.nodes.first().cloned()),
                owner: Some(owner.clone()),
            };
            let pod = match user {
                Some(user) => merge_explicit(emulated, user),
                None => emulated,
            };
            if w.kind == WorkloadKind::StatefulSet && w.ordered_ready && !pod.is_ready() {
                blocked_by = Some(pod.meta.name.clone());
            }
            pods.push(pod);
        }
    }
    pods
}

/// The hash of `<namespace>/<name>/` of workload `w`: what the names of
/// its pods are hashed from, the rest added by the caller.
fn owned_by(w: &Workload) -> Fnv {
    Fnv::new()
        .write(w.meta.namespace.as_bytes())
        .write(b"/")
        .write(w.meta.name.as_bytes())
        .write(b"/")
}

/// An explicit Pod replaces the emulated one of the same name; what it leaves
/// out (labels, hostname, ports) is taken from the workload, so a user can
/// write just the status to mark `web-0` not Ready.
fn merge_explicit(emulated: Pod, mut user: Pod) -> Pod {
    if user.meta.labels.is_empty() {
        user.meta.labels = emulated.meta.labels;
    }
    if user.spec.hostname.is_none() {
        user.spec.hostname = emulated.spec.hostname;
    }
    if user.spec.subdomain.is_none() {
        user.spec.subdomain = emulated.spec.subdomain;
    }
    if user.spec.container_ports.is_empty() {
        user.spec.container_ports = emulated.spec.container_ports;
    }
    if user.node.is_none() {
        user.node = emulated.node;
    }
    user.owner = emulated.owner;
    user
}

/// One allocator per pod CIDR, the addresses `explicit` pods have taken.
fn pod_allocators<'p>(
    explicit: impl IntoIterator<Item = &'p Pod>,
    config: &ControlConfig,
) -> Vec<Allocator> {
    let mut allocators: Vec<Allocator> = config
        .pod_cidrs
        .iter()
        .map(|c| Allocator::new(*c, []))
        .collect();
    for pod in explicit {
        for ip in &pod.status.ips {
            for a in &mut allocators {
                a.reserve(*ip);
            }
        }
    }
    allocators
}

/// Addresses for the pods that have none (and are not `Pending`), in the
/// order given. A pod's allocation key is `<cluster>/<namespace>/<name>`.
fn assign_pod_ips(pods: &mut [Pod], allocators: &mut [Allocator], config: &ControlConfig) {
    let cluster = Fnv::new().write(config.cluster.as_bytes()).write(b"/");
    for pod in pods.iter_mut() {
        if !pod.status.ips.is_empty() || pod.status.phase.as_deref() == Some("Pending") {
            continue;
        }
        let key = cluster
            .write(pod.meta.namespace.as_bytes())
            .write(b"/")
            .write(pod.meta.name.as_bytes())
            .finish();
        let mut ips = Vec::with_capacity(allocators.len());
        ips.extend(allocators.iter_mut().filter_map(|a| a.allocate_hashed(key)));
        pod.status.ips = ips;
    }
}

fn add_kubernetes_service(services: &mut Vec<Service>, config: &ControlConfig) {
    if services
        .iter()
        .any(|s| s.meta.namespace == "default" && s.meta.name == "kubernetes")
    {
        return;
    }
    let Some(cidr) = config.service_cidrs.first() else {
        return;
    };
    services.push(Service {
        meta: Meta {
            namespace: "default".to_owned(),
            name: "kubernetes".to_owned(),
            labels: Labels::from([("component".to_owned(), "apiserver".to_owned())]),
            origin: None,
        },
        service_type: ServiceType::ClusterIp,
        address: ServiceAddress::ClusterIps(vec![cidr.nth(1)]),
        ports: vec![ServicePort {
            name: Some("https".to_owned()),
            protocol: svcnet_model::Protocol::Tcp,
            port: 443,
            target_port: TargetPort::Number(6443),
            node_port: None,
        }],
        selector: None,
        publish_not_ready: false,
    });
}

fn assign_cluster_ips(services: &mut [Service], config: &ControlConfig) {
    let Some(cidr) = config.service_cidrs.first() else {
        return;
    };
    let mut alloc = Allocator::new(*cidr, [cidr.nth(1)]);
    for svc in services.iter() {
        if let ServiceAddress::ClusterIps(ips) = &svc.address {
            ips.iter().for_each(|ip| alloc.reserve(*ip));
        }
    }
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&services[a].meta, &services[b].meta);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    for i in order {
        let svc = &mut services[i];
        if svc.address == ServiceAddress::Unallocated {
            let key = format!(
                "{}/{}/{}",
                config.cluster, svc.meta.namespace, svc.meta.name
            );
            svc.address = ServiceAddress::ClusterIps(alloc.allocate(&key).into_iter().collect());
        }
    }
}

/// The endpoints controller for one Service: pods of its namespace matching
/// its selector and having an IP, one slice per distinct set of resolved ports.
pub fn endpoints_for<'p>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'p Pod>,
) -> Vec<EndpointSlice> {
    let Some(selector) = &svc.selector else {
        return Vec::new();
    };
    if matches!(svc.address, ServiceAddress::ExternalName(_)) {
        return Vec::new();
    }
    let mut groups: BTreeMap<Vec<EndpointPort>, Endpoints> = BTreeMap::new();
    for pod in pods {
        if pod.meta.namespace != svc.meta.namespace
            || pod.status.ips.is_empty()
            || !selector_matches(selector, &pod.meta.labels)
        {
            continue;
        }
        let ports: Vec<EndpointPort> = svc
            .ports
            .iter()
            .filter_map(|sp| {
                let port = match &sp.target_port {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(name) => {
                        pod.spec
                            .container_ports
                            .iter()
                            .find(|cp| {
                                cp.name.as_deref() == Some(name) && cp.protocol == sp.protocol
                            })?
                            .port
                    }
                };
                Some(EndpointPort {
                    name: sp.name.clone(),
                    protocol: sp.protocol,
                    port,
                })
            })
            .collect();
        if ports.is_empty() && !svc.ports.is_empty() {
            continue;
        }
        let hostname = match (&pod.spec.hostname, &pod.spec.subdomain) {
            (Some(h), Some(sub)) if *sub == svc.meta.name => Some(h.as_str()),
            _ => None,
        };
        let ready = pod.is_ready() || svc.publish_not_ready;
        groups.entry(ports).or_default().push(EndpointRef {
            addresses: AddressesRef::from(&pod.status.ips[..]),
            hostname,
            ready,
            serving: pod.is_serving() || svc.publish_not_ready,
            terminating: pod.status.terminating,
            pod: Some(&pod.meta.name),
            node: pod.node.as_deref(),
        });
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (ports, mut endpoints))| {
            // Kept as long as the slice is: no room for more.
            endpoints.shrink_to_fit();
            EndpointSlice {
                meta: Meta {
                    namespace: svc.meta.namespace.clone(),
                    name: format!("{}-{}", svc.meta.name, safe_encode(i as u64, 5)),
                    labels: Labels::from([(
                        "kubernetes.io/service-name".to_owned(),
                        svc.meta.name.clone(),
                    )]),
                    origin: None,
                },
                service: svc.meta.name.clone(),
                ports,
                endpoints,
            }
        })
        .collect()
}

/// Explains a pod's readiness in words (for `svcnet resolve`).
pub fn readiness_words(pod: &Pod) -> &'static str {
    match pod.readiness() {
        svcnet_model::Readiness::Ready => "Ready",
        svcnet_model::Readiness::ConditionFalse => "not Ready (condition Ready=False)",
        svcnet_model::Readiness::NotRunning => "not Ready (phase is not Running)",
        svcnet_model::Readiness::Terminating => "not Ready (terminating)",
    }
}

/// The first IP of each family, for display.
pub fn ips_text(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "no IP".to_owned();
    }
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a kind is one the control plane replaces by its products.
pub fn is_workload(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::StatefulSet | Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::load::load_bytes;

    fn view(yaml: &str) -> ClusterView {
        let file = load_bytes(
            PathBuf::from("t.yaml"),
            Arc::from("t.yaml"),
            yaml.as_bytes(),
        );
        assert!(file.diagnostics.is_empty(), "{:?}", file.diagnostics);
        emulate(&file.objects, &ControlConfig::default())
    }

    fn endpoint_pods(v: &ClusterView, service: &str) -> Vec<String> {
        let mut pods: Vec<String> = v
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::EndpointSlice { slice, .. } if slice.service == service => Some(slice),
                _ => None,
            })
            .flat_map(|s| s.endpoints.iter().filter_map(|e| e.pod.map(str::to_owned)))
            .collect();
        pods.sort();
        pods
    }

    fn statefulset(name: &str, ns: &str, app: &str, replicas: u32) -> String {
        format!(
            "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  serviceName: {name}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template: {{metadata: {{labels: {{app: {app}, tier: web}}}}, spec: {{containers: [{{name: c}}]}}}}\n"
        )
    }

    /// a-0, a-1 and b-0..b-2 in namespace n; c-0 in `other` with a's labels.
    fn workloads() -> String {
        [
            statefulset("a", "n", "a", 2),
            statefulset("b", "n", "b", 3),
            statefulset("c", "other", "a", 1),
        ]
        .concat()
    }

    fn service(name: &str, selector: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: n}}\nspec:\n  selector: {selector}\n  ports: [{{port: 80}}]\n"
        )
    }

    #[test]
    fn pod_names_are_made_to_their_length() {
        let mut digits = [0u8; 20];
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            assert_eq!(decimal(n, &mut digits), n.to_string());
        }
        let name = joined('-', &["web", "7d9f8b6c5", "abcde"]);
        assert_eq!(name, "web-7d9f8b6c5-abcde");
        assert_eq!(name.capacity(), name.len());
        assert_eq!(joined('-', &["web", decimal(3, &mut digits)]), "web-3");
        assert_eq!(joined('-', &[]), "");
    }

    #[test]
    fn selectors_match_through_the_label_index() {
        let yaml = [
            workloads(),
            service("web", "{tier: web}"),
            service("only-b", "{tier: web, app: b}"),
            service("none", "{tier: web, app: z}"),
            service("empty", "{}"),
        ]
        .concat();
        let v = view(&yaml);
        assert_eq!(
            endpoint_pods(&v, "web"),
            ["a-0", "a-1", "b-0", "b-1", "b-2"]
        );
        assert_eq!(endpoint_pods(&v, "only-b"), ["b-0", "b-1", "b-2"]);
        assert!(endpoint_pods(&v, "none").is_empty());
        assert!(endpoint_pods(&v, "empty").is_empty());
    }

    #[test]
    fn pods_come_out_in_name_order() {
        // Ordinals past 9 sort between 1 and 2, and two namespaces come in
        // reverse: the permutation has cycles of several pods.
        let yaml = [
            statefulset("web", "b", "web", 12),
            statefulset("db", "a", "db", 3),
            statefulset("api", "b", "api", 11),
        ]
        .concat();
        let v = view(&yaml);
        let names: Vec<(&str, &str)> = v
            .pods
            .iter()
            .map(|p| (p.meta.namespace.as_str(), p.meta.name.as_str()))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 26);
        sorted.dedup();
        assert_eq!(sorted.len(), 26, "a pod was lost or doubled");
        // Each pod moved whole: a StatefulSet pod's hostname is its name.
        for pod in &v.pods {
            assert_eq!(pod.spec.hostname.as_deref(), Some(pod.meta.name.as_str()));
        }
    }

    #[test]
    fn an_address_a_manifest_gives_is_not_handed_out_in_an_earlier_namespace() {
        // Six addresses (a /29 less its network and broadcast): namespace
        // `a` gets five pods, and a pod in `b` (made one namespace after
        // `a`) takes one address itself. Every address is handed out
        // once.
        let taken = "10.244.0.3";
        let yaml = [
            statefulset("web", "a", "web", 5),
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: fixed, namespace: b}}\nstatus: {{podIP: {taken}}}\n"
            ),
        ]
        .concat();
        let file = load_bytes(
            PathBuf::from("t.yaml"),
            Arc::from("t.yaml"),
            yaml.as_bytes(),
        );
        assert!(file.diagnostics.is_empty(), "{:?}", file.diagnostics);
        let config = ControlConfig {
            pod_cidrs: vec![Cidr {
                network: [10, 244, 0, 0].into(),
                prefix: 29,
            }],
            ..ControlConfig::default()
        };
        let v = emulate(&file.objects, &config);
        let mut ips: Vec<(String, IpAddr)> = v
            .pods
            .iter()
            .flat_map(|p| p.status.ips.iter().map(|ip| (p.meta.name.clone(), *ip)))
            .collect();
        assert_eq!(ips.len(), 6, "{ips:?}");
        let fixed = ips
            .iter()
            .find(|(name, _)| name == "fixed")
            .map(|(_, ip)| *ip);
        assert_eq!(fixed, taken.parse().ok());
        ips.sort_by_key(|(_, ip)| *ip);
        ips.dedup_by_key(|(_, ip)| *ip);
        assert_eq!(ips.len(), 6, "an address was handed out twice: {ips:?}");
    }

    #[test]
    fn each_emulated_object_is_handed_out_once_with_a_namespace_s_pods_together() {
        let yaml = [
            workloads(),
            service("all-a", "{app: a}"),
            statefulset("z", "zz", "z", 2),
        ]
        .concat();
        let file = load_bytes(
            PathBuf::from("t.yaml"),
            Arc::from("t.yaml"),
            yaml.as_bytes(),
        );
        let config = ControlConfig::default();
        let mut streamed = Vec::new();
        let pending = emulate_each(&file.objects, &config, &mut |o| streamed.push(o));
        let view = emulate(&file.objects, &config);
        assert_eq!(pending, view.pending);
        // The same objects as the collected view, in the order it has them.
        let (pods, objects): (Vec<Object>, Vec<Object>) = streamed
            .iter()
            .cloned()
            .partition(|o| matches!(o, Object::Pod(_)));
        assert_eq!(objects, view.objects);
        assert_eq!(
            pods,
            view.pods
                .iter()
                .map(|p| Object::Pod(Box::new(p.clone())))
                .collect::<Vec<_>>()
        );
        // Namespaces and services come before any pod; a namespace's pods
        // are handed out together.
        let first_pod = streamed.iter().position(|o| matches!(o, Object::Pod(_)));
        let last_service = streamed
            .iter()
            .rposition(|o| matches!(o, Object::Service(_)));
        assert!(last_service < first_pod);
        let mut namespaces_of_pods: Vec<&str> = streamed
            .iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p.meta.namespace.as_str()),
                _ => None,
            })
            .collect();
        namespaces_of_pods.dedup();
        assert_eq!(namespaces_of_pods, ["n", "other", "zz"]);
    }

    #[test]
    fn an_object_without_a_namespace_does_not_hold_up_the_others() {
        // Decoded manifests always have one; objects made in code may not.
        let yaml = [workloads(), service("all-a", "{app: a}")].concat();
        let file = load_bytes(
            PathBuf::from("t.yaml"),
            Arc::from("t.yaml"),
            yaml.as_bytes(),
        );
        let mut objects = file.objects.clone();
        for o in &file.objects {
            let mut o = o.clone();
            match &mut o {
                Object::Service(s) => s.meta.namespace.clear(),
                Object::Workload(w) => w.meta.namespace.clear(),
                _ => continue,
            }
            objects.push(o);
        }
        let whole = emulate(&file.objects, &ControlConfig::default());
        let v = emulate(&objects, &ControlConfig::default());
        assert_eq!(endpoint_pods(&v, "all-a"), ["a-0", "a-1"]);
        for pod in &whole.pods {
            assert!(v.pods.contains(pod), "{} lost", pod.meta.name);
        }
    }
}
