//! An updated snapshot answers exactly as a snapshot built whole from the
//! same state (ARCHITECTURE "Updates are incremental"): random changes to
//! services, slices and pods, each batch applied both ways and compared
//! name by name. And a name several records hold is held once: a PTR
//! record's target is the copy of the name its endpoint's (or service's)
//! SRV records point at.

use std::net::IpAddr;
use std::sync::Arc;

use svcnet_index::{Index, IndexConfig, Node, PodMode, Snapshot};
use svcnet_model::{
    Delta, Endpoint, EndpointPort, EndpointSlice, Endpoints, Kind, Labels, Meta, Object, ObjectKey,
    Pod, PodStatus, PodTemplate, Protocol, Scope, Service, ServiceAddress, ServicePort,
    ServiceType, TargetPort,
};
use svcnet_wire::{encode_name, reverse_wire};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const SERVICES: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

fn meta(ns: &str, name: &str) -> Meta {
    Meta {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        labels: Labels::new(),
        origin: None,
    }
}

/// A pod address: mostly in the pod range (10.244/16, a reverse zone),
/// from a small pool so that services and pods share some.
fn address(rng: &mut Rng, rare_outside: bool) -> IpAddr {
    if rare_outside && rng.chance(3) {
        return IpAddr::from([192, 168, 0, rng.below(4) as u8]);
    }
    if rng.chance(10) {
        return IpAddr::from(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
    }
    IpAddr::from([10, 244, rng.below(3) as u8, 1 + rng.below(12) as u8])
}

fn service(rng: &mut Rng, ns: &str, name: &str) -> Object {
    let address = match rng.below(10) {
        0..=3 => {
            ServiceAddress::ClusterIps(vec![IpAddr::from([10, 96, 0, 1 + rng.below(8) as u8])])
        }
        4..=7 => ServiceAddress::Headless,
        8 => ServiceAddress::ExternalName(
            rng.pick(&["db.example.com", "10.1.2.3", "s0.a.svc.cluster.local"])
                .to_string(),
        ),
        _ => ServiceAddress::Unallocated,
    };
    let service_type = match address {
        ServiceAddress::ExternalName(_) => ServiceType::ExternalName,
        _ => ServiceType::ClusterIp,
    };
    let mut ports = Vec::new();
    for (pname, port, protocol) in [
        (Some("http"), 80, Protocol::Tcp),
        (Some("dns"), 53, Protocol::Udp),
        (None, 9000, Protocol::Tcp),
    ] {
        if rng.chance(50) {
            ports.push(ServicePort {
                name: pname.map(str::to_owned),
                protocol,
                port,
                target_port: TargetPort::Number(port),
                node_port: None,
            });
        }
    }
    Object::Service(Service {
        meta: meta(ns, name),
        service_type,
        address,
        ports,
        selector: None,
        publish_not_ready: false,
    })
}

fn slice(rng: &mut Rng, ns: &str, service: &str, from_endpoints: bool) -> Object {
    let mut endpoints = Vec::new();
    for _ in 0..rng.below(5) {
        let hostname = rng
            .chance(30)
            .then(|| Box::<str>::from(*rng.pick(&["h0", "h1", "web-0"])));
        endpoints.push(Endpoint {
            addresses: [address(rng, true)].into(),
            hostname,
            ready: rng.chance(80),
            serving: true,
            terminating: false,
            pod: rng.chance(50).then(|| format!("p{}", rng.below(6)).into()),
            node: None,
        });
    }
    let ports = [("http", 8080, Protocol::Tcp), ("dns", 53, Protocol::Udp)]
        .into_iter()
        .filter(|_| rng.chance(60))
        .map(|(n, port, protocol)| EndpointPort {
            name: Some(n.to_owned()),
            protocol,
            port,
        })
        .collect();
    let name = if from_endpoints {
        service.to_owned()
    } else {
        format!("{service}-{}", rng.below(2))
    };
    Object::EndpointSlice {
        slice: EndpointSlice {
            meta: meta(ns, &name),
            service: service.to_owned(),
            ports,
            endpoints: endpoints.into(),
        },
        from_endpoints,
    }
}

fn pod(rng: &mut Rng, ns: &str) -> Object {
    Object::Pod(Box::new(Pod {
        meta: meta(ns, &format!("p{}", rng.below(6))),
        spec: PodTemplate::default(),
        status: PodStatus {
            phase: Some("Running".to_owned()),
            ready_condition: Some(true),
            terminating: false,
            ips: vec![address(rng, false)],
        },
        node: None,
        owner: None,
    }))
}

/// One random change. `wide` allows the changes that need a full build
/// (namespaces, exports, new namespaces).
fn delta(rng: &mut Rng, wide: bool) -> Delta {
    let ns_pool: &[&str] = if wide && rng.chance(20) {
        &["a", "b", "c", "d"]
    } else {
        &NAMESPACES
    };
    let ns = *rng.pick(ns_pool);
    let svc = *rng.pick(&SERVICES);
    let obj = match rng.below(20) {
        0..=4 => service(rng, ns, svc),
        5..=11 => slice(rng, ns, svc, false),
        12..=13 => slice(rng, ns, svc, true),
        14..=17 => pod(rng, ns),
        18 if wide => Object::ServiceExport(meta(ns, svc)),
        19 if wide => {
            let name = *rng.pick(&["a", "b", "c", "d"]);
            Object::Namespace(meta("", name))
        }
        _ => pod(rng, ns),
    };
    if rng.chance(25) {
        let mut key = obj.key();
        if key.kind == Kind::EndpointSlice && rng.chance(50) {
            key.name = format!("{svc}-{}", rng.below(2));
        }
        return Delta::Delete(key);
    }
    Delta::Apply(obj)
}

/// A snapshot as comparable data: every name with its node, every pod
/// address, the counts.
type Canonical = (Vec<(Vec<u8>, Node)>, Vec<(Vec<u8>, IpAddr)>, usize, usize);

fn canonical(s: &Snapshot) -> Canonical {
    let mut nodes: Vec<(Vec<u8>, Node)> = s
        .nodes
        .iter()
        .map(|(k, n)| (k.to_vec(), n.clone()))
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pods: Vec<(Vec<u8>, IpAddr)> = s.pods().map(|(ns, ip)| (ns.to_vec(), ip)).collect();
    pods.sort();
    (nodes, pods, s.names(), s.records())
}

fn assert_same(updated: &Snapshot, whole: &Snapshot, step: usize) {
    let (a, b) = (canonical(updated), canonical(whole));
    if a == b {
        return;
    }
    let names = |v: &[(Vec<u8>, Node)]| -> Vec<String> {
        v.iter()
            .map(|(k, n)| format!("{} {n:?}", svcnet_wire::name_to_string(k)))
            .collect()
    };
    let (x, y) = (names(&a.0), names(&b.0));
    let only_updated: Vec<&String> = x.iter().filter(|n| !y.contains(n)).collect();
    let only_whole: Vec<&String> = y.iter().filter(|n| !x.contains(n)).collect();
    panic!(
        "step {step}: the update differs from a full build\n only in the update: {only_updated:#?}\n only in the full build: {only_whole:#?}\n pods {:?} vs {:?}\n names {} vs {}, records {} vs {}",
        a.1, b.1, a.2, b.2, a.3, b.3
    );
}

/// Runs `steps` batches of random changes; returns how many snapshots
/// were updated in place.
fn run(seed: u64, steps: usize, wide: bool, config: IndexConfig) -> usize {
    let mut rng = Rng(seed);
    let mut index = Index::new(config, 1);
    index.apply("local", Delta::Init(Scope::All));
    for ns in NAMESPACES {
        index.apply("local", Delta::InitApply(Object::Namespace(meta("", ns))));
        for svc in SERVICES {
            index.apply("local", Delta::InitApply(service(&mut rng, ns, svc)));
            index.apply("local", Delta::InitApply(slice(&mut rng, ns, svc, false)));
        }
    }
    index.apply("local", Delta::InitDone(Scope::All));
    let mut prev = index.build();
    let mut incremental = 0;
    for step in 0..steps {
        for _ in 0..1 + rng.below(4) {
            index.apply("local", delta(&mut rng, wide));
        }
        if wide && rng.chance(10) {
            // A watcher's relist: one kind replaced, the rest kept.
            let (scope, make): (Scope, fn(&mut Rng, &str) -> Object) = if rng.chance(50) {
                (Scope::Kind(Kind::Pod), pod)
            } else {
                (Scope::Kind(Kind::EndpointSlice), |rng, ns| {
                    let svc = *rng.pick(&SERVICES);
                    slice(rng, ns, svc, false)
                })
            };
            index.apply("local", Delta::Init(scope.clone()));
            for _ in 0..rng.below(8) {
                let ns = *rng.pick(&NAMESPACES);
                index.apply("local", Delta::InitApply(make(&mut rng, ns)));
            }
            index.apply("local", Delta::InitDone(scope));
        }
        let updated = index.update(&prev);
        if index.last_update().incremental {
            incremental += 1;
        }
        let whole = index.clone().build();
        assert_same(&updated, &whole, step);
        // The store's counts by kind follow the changes.
        for (_, store) in index.clusters() {
            let mut counted: std::collections::BTreeMap<Kind, u64> = Default::default();
            for o in store.objects() {
                *counted.entry(o.kind()).or_default() += 1;
            }
            let kept: std::collections::BTreeMap<Kind, u64> = store.object_counts().collect();
            assert_eq!(kept, counted, "step {step}");
        }
        assert_eq!(updated.generation, prev.generation + 1);
        prev = updated;
    }
    incremental
}

#[test]
fn updates_equal_full_builds() {
    for seed in 1..=20u64 {
        let n = run(seed * 7919, 150, false, IndexConfig::default());
        // Outside the reverse zones (192.168/16, fd00::/8) a full build is
        // needed; most batches stay inside.
        assert!(
            n > 40,
            "seed {seed}: only {n} of 150 updates were incremental"
        );
    }
}

#[test]
fn updates_equal_full_builds_with_every_ptr_and_alias_zones() {
    let config = IndexConfig {
        zones: vec!["cluster.local".to_owned(), "alias.example".to_owned()],
        ptr_all: true,
        endpoint_pod_names: true,
        pods: PodMode::Verified,
        ..IndexConfig::default()
    };
    for seed in 1..=10u64 {
        let n = run(seed * 104_729, 150, false, config.clone());
        assert!(
            n > 40,
            "seed {seed}: only {n} of 150 updates were incremental"
        );
    }
}

#[test]
fn changes_that_reach_further_are_built_whole_and_still_equal() {
    for seed in 1..=10u64 {
        run(seed * 31, 150, true, IndexConfig::default());
    }
}

#[test]
fn one_endpoint_change_is_an_update() {
    let mut index = Index::new(IndexConfig::default(), 1);
    let mut rng = Rng(5);
    index.apply("local", Delta::Apply(Object::Namespace(meta("", "a"))));
    index.apply("local", Delta::Apply(service(&mut rng, "a", "s0")));
    let prev = index.build();
    let changed = Object::EndpointSlice {
        slice: EndpointSlice {
            meta: meta("a", "s0-x"),
            service: "s0".to_owned(),
            ports: Vec::new(),
            endpoints: Endpoints::from(vec![Endpoint {
                addresses: [IpAddr::from([10, 244, 0, 7])].into(),
                hostname: Some("web-0".into()),
                ready: true,
                serving: true,
                terminating: false,
                pod: None,
                node: None,
            }]),
        },
        from_endpoints: false,
    };
    index.apply("local", Delta::Apply(changed));
    let next = index.update(&prev);
    let stats = index.last_update();
    assert!(stats.incremental, "{stats:?}");
    assert_eq!(stats.services, 1);
    assert_same(&next, &index.clone().build(), 0);
    // Unchanged shards are shared, not copied.
    let key = ObjectKey {
        kind: Kind::EndpointSlice,
        namespace: "a".to_owned(),
        name: "s0-x".to_owned(),
    };
    index.apply("local", Delta::Delete(key));
    let again = index.update(&next);
    assert!(index.last_update().incremental);
    assert_same(&again, &index.clone().build(), 1);
}

/// A full build large enough to be split among threads equals the build on
/// one thread, name by name, and is updated like it. The generator's small
/// address pool gives services in different parts the same endpoint
/// addresses (PTR candidates merged), and namespaces spanning two parts
/// (their empty non-terminals built in both).
#[test]
fn a_build_on_several_threads_equals_one_on_one() {
    for (seed, config) in [
        (3u64, IndexConfig::default()),
        (
            11,
            IndexConfig {
                zones: vec!["cluster.local".to_owned(), "alias.example".to_owned()],
                ptr_all: true,
                endpoint_pod_names: true,
                ..IndexConfig::default()
            },
        ),
    ] {
        let mut rng = Rng(seed);
        let mut index = Index::new(config, 1);
        index.apply("local", Delta::Init(Scope::All));
        for ns in ["a", "b", "c", "d", "e"] {
            index.apply("local", Delta::InitApply(Object::Namespace(meta("", ns))));
            for i in 0..500 {
                let svc = format!("s{i}");
                index.apply("local", Delta::InitApply(service(&mut rng, ns, &svc)));
                index.apply("local", Delta::InitApply(slice(&mut rng, ns, &svc, false)));
                index.apply("local", Delta::InitApply(pod(&mut rng, ns)));
            }
            // Headless services with many addresses each, a /24 of their
            // own (many PTR names under one empty non-terminal).
            for i in 0..10u8 {
                for obj in many_addresses(&mut rng, ns, i, 250) {
                    index.apply("local", Delta::InitApply(obj));
                }
            }
        }
        index.apply("local", Delta::InitDone(Scope::All));
        index.set_build_threads(1);
        let one = index.clone().build();
        index.set_build_threads(4);
        let four = index.build();
        assert!(one.names() > 5_000, "{} names", one.names());
        assert_same(&four, &one, 0);
        // The ledger of the threaded build serves updates as well: the
        // addresses of the last namespace's (the last part's) first service
        // are cut to 100, the rest of its PTR names under the same empty
        // non-terminal staying.
        let [_, slice] = many_addresses(&mut rng, "e", 0, 100);
        index.apply("local", Delta::Apply(slice));
        let mut prev = index.update(&four);
        assert_same(&prev, &index.clone().build(), 0);
        for step in 1..20 {
            index.apply("local", delta(&mut rng, false));
            let updated = index.update(&prev);
            let mut whole = index.clone();
            whole.set_build_threads(1);
            assert_same(&updated, &whole.build(), step);
            prev = updated;
        }
    }
}

/// Headless service `h<i>` of namespace `ns` and a slice of `n` endpoints
/// with addresses of their own (`10.244.<10 + 10 * ns + i>.<j>`).
fn many_addresses(rng: &mut Rng, ns: &str, i: u8, n: u8) -> [Object; 2] {
    let name = format!("h{i}");
    let mut svc = service(rng, ns, &name);
    if let Object::Service(s) = &mut svc {
        s.address = ServiceAddress::Headless;
        s.service_type = ServiceType::ClusterIp;
    }
    let nth = ns.as_bytes().first().map_or(0, |b| b - b'a');
    let endpoints = (0..n)
        .map(|j| Endpoint {
            addresses: [IpAddr::from([10, 244, 10 + 10 * nth + i, j])].into(),
            hostname: (j % 3 == 0).then(|| format!("w-{j}").into()),
            ready: j % 7 != 0,
            serving: true,
            terminating: false,
            pod: None,
            node: None,
        })
        .collect();
    let slice = EndpointSlice {
        meta: meta(ns, &format!("{name}-x")),
        service: name.clone(),
        ports: Vec::new(),
        endpoints,
    };
    [
        svc,
        Object::EndpointSlice {
            slice,
            from_endpoints: false,
        },
    ]
}

fn named_port_service(name: &str, address: ServiceAddress) -> Object {
    Object::Service(Service {
        meta: meta("a", name),
        service_type: ServiceType::ClusterIp,
        address,
        ports: vec![ServicePort {
            name: Some("http".to_owned()),
            protocol: Protocol::Tcp,
            port: 80,
            target_port: TargetPort::Number(8080),
            node_port: None,
        }],
        selector: None,
        publish_not_ready: false,
    })
}

fn ready_endpoint(ip: [u8; 4], hostname: Option<&str>) -> Endpoint {
    Endpoint {
        addresses: [IpAddr::from(ip)].into(),
        hostname: hostname.map(Box::from),
        ready: true,
        serving: true,
        terminating: false,
        pod: None,
        node: None,
    }
}

fn small_snapshot() -> Snapshot {
    let mut index = Index::new(IndexConfig::default(), 1);
    index.apply("local", Delta::Init(Scope::All));
    let objects = [
        Object::Namespace(meta("", "a")),
        named_port_service("web", ServiceAddress::Headless),
        Object::EndpointSlice {
            slice: EndpointSlice {
                meta: meta("a", "web-1"),
                service: "web".to_owned(),
                ports: vec![EndpointPort {
                    name: Some("http".to_owned()),
                    protocol: Protocol::Tcp,
                    port: 8080,
                }],
                endpoints: Endpoints::from(vec![
                    ready_endpoint([10, 244, 0, 5], Some("web-0")),
                    ready_endpoint([10, 244, 0, 6], None),
                ]),
            },
            from_endpoints: false,
        },
        named_port_service(
            "api",
            ServiceAddress::ClusterIps(vec![IpAddr::from([10, 96, 0, 10])]),
        ),
    ];
    for o in objects {
        index.apply("local", Delta::InitApply(o));
    }
    index.apply("local", Delta::InitDone(Scope::All));
    index.build()
}

fn wire_name(text: &str) -> Vec<u8> {
    encode_name(text).unwrap_or_default()
}

#[test]
fn a_ptr_target_is_the_srv_records_copy_of_the_name() {
    let snap = small_snapshot();
    let srv_of = |owner: &str| {
        let node = snap.nodes.get(&wire_name(owner)).expect("the SRV name");
        node.srv()
            .iter()
            .map(|s| s.target.clone())
            .collect::<Vec<_>>()
    };
    let headless = srv_of("_http._tcp.web.a.svc.cluster.local");
    let vip = srv_of("_http._tcp.api.a.svc.cluster.local");
    assert_eq!((headless.len(), vip.len()), (2, 1));
    for (ip, target) in [
        ([10, 244, 0, 5], "web-0.web.a.svc.cluster.local"),
        ([10, 244, 0, 6], "10-244-0-6.web.a.svc.cluster.local"),
        ([10, 96, 0, 10], "api.a.svc.cluster.local"),
    ] {
        let reverse = reverse_wire(IpAddr::from(ip));
        let node = snap.nodes.get(&reverse).expect("the PTR name");
        let [ptr] = node.ptr() else {
            panic!("one PTR record at {ip:?}: {:?}", node.ptr());
        };
        assert_eq!(&ptr[..], &wire_name(target)[..]);
        let shared = headless.iter().chain(&vip).any(|t| Arc::ptr_eq(t, ptr));
        assert!(
            shared,
            "the PTR record of {target} holds the SRV records' copy"
        );
    }
}
