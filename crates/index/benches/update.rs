//! How fast the index follows endpoint changes at scale: a full build, then
//! endpoint changes one snapshot each (the latency from a change to a
//! snapshot that has it), then bursts of changes that share a snapshot (the
//! index thread drains what arrived together).
//!
//!   cargo bench -p svcnet-index --bench update -- [--services N] [--endpoints K] [--changes C] [--burst B]
//!
//! Defaults: 100,000 services (half ClusterIP, half headless with hostnames,
//! in 100 namespaces) with 10 ready endpoints each and their pods, about
//! 1M endpoints; 300 single changes; bursts of 100. A change replaces one
//! EndpointSlice with one endpoint moved to a new address, as a pod
//! restarting behind a Service does.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use svcnet_index::{Index, IndexConfig, Snapshot};
use svcnet_model::{
    Cidr, Delta, Endpoint, EndpointPort, EndpointSlice, Labels, Meta, Object, Pod, PodStatus,
    PodTemplate, Protocol, Scope, Service, ServiceAddress, ServicePort, ServiceType, TargetPort,
};

struct Args {
    services: usize,
    endpoints: usize,
    changes: usize,
    burst: usize,
}

fn args() -> Args {
    let mut a = Args {
        services: 100_000,
        endpoints: 10,
        changes: 300,
        burst: 100,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse().ok());
        match (argv[i].as_str(), value) {
            ("--services", Some(v)) => a.services = v,
            ("--endpoints", Some(v)) => a.endpoints = v,
            ("--changes", Some(v)) => a.changes = v,
            ("--burst", Some(v)) => a.burst = v,
            // cargo bench passes `--bench`.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn meta(ns: &str, name: &str) -> Meta {
    Meta {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        labels: Labels::new(),
        origin: None,
    }
}

/// Address number `n` of the pod range, 10.128.0.0/9 (as `bench/gen.py`
/// configures it: 8M addresses).
fn pod_ip(n: usize) -> IpAddr {
    let n = u32::try_from(n).unwrap_or(0) + (10 << 24 | 128 << 16);
    IpAddr::from(n.to_be_bytes())
}

/// The reverse zones of the service range and of that pod range.
fn config() -> IndexConfig {
    let cidr = |network: [u8; 4], prefix| Cidr {
        network: network.into(),
        prefix,
    };
    IndexConfig {
        reverse_cidrs: vec![cidr([10, 96, 0, 0], 12), cidr([10, 128, 0, 0], 9)],
        ..IndexConfig::default()
    }
}

fn names(s: usize) -> (String, String) {
    (format!("ns-{}", s % 100), format!("svc-{s}"))
}

fn slice(s: usize, endpoints: usize, first_ip: usize) -> Object {
    let (ns, name) = names(s);
    let headless = s % 2 == 1;
    Object::EndpointSlice {
        slice: EndpointSlice {
            meta: meta(&ns, &format!("{name}-abcde")),
            service: name.clone(),
            ports: vec![EndpointPort {
                name: Some("http".to_owned()),
                protocol: Protocol::Tcp,
                port: 8080,
            }],
            endpoints: (0..endpoints)
                .map(|e| Endpoint {
                    addresses: [pod_ip(first_ip + e)].into(),
                    hostname: headless.then(|| format!("{name}-{e}").into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                    pod: Some(format!("{name}-{e}").into()),
                    node: None,
                })
                .collect(),
        },
        from_endpoints: false,
    }
}

fn objects(a: &Args) -> Vec<Object> {
    let mut out = Vec::new();
    for s in 0..a.services {
        let (ns, name) = names(s);
        let address = if s % 2 == 1 {
            ServiceAddress::Headless
        } else {
            let n = u32::try_from(s).unwrap_or(0) + (10 << 24 | 96 << 16);
            ServiceAddress::ClusterIps(vec![IpAddr::from(n.to_be_bytes())])
        };
        out.push(Object::Service(Service {
            meta: meta(&ns, &name),
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
        }));
        out.push(slice(s, a.endpoints, s * a.endpoints));
        for e in 0..a.endpoints {
            out.push(pod(&ns, &format!("{name}-{e}"), s * a.endpoints + e));
        }
    }
    out
}

/// A running pod with address number `ip`.
fn pod(ns: &str, name: &str, ip: usize) -> Object {
    Object::Pod(Box::new(Pod {
        meta: meta(ns, name),
        spec: PodTemplate::default(),
        status: PodStatus {
            phase: Some("Running".to_owned()),
            ready_condition: Some(true),
            terminating: false,
            ips: vec![pod_ip(ip)],
        },
        node: None,
        owner: None,
    }))
}

/// Change number `i`: service `s`'s slice with its endpoints moved to fresh
/// addresses (past the first ones), and the pod of its first endpoint.
fn change(a: &Args, i: usize) -> Vec<Delta> {
    let s = (i * 7919) % a.services;
    let fresh = a.services * a.endpoints + i * a.endpoints;
    let (ns, name) = names(s);
    vec![
        Delta::Apply(pod(&ns, &format!("{name}-0"), fresh)),
        Delta::Apply(slice(s, a.endpoints, fresh)),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let a = args();
    let mut index = Index::new(config(), 1);
    index.apply("local", Delta::Init(Scope::All));
    for o in objects(&a) {
        index.apply("local", Delta::InitApply(o));
    }
    index.apply("local", Delta::InitDone(Scope::All));
    let started = Instant::now();
    let mut snap: Snapshot = index.build();
    let full = started.elapsed();
    println!(
        "full build: {:.2} s for {} services, {} endpoints: {} names, {} records",
        full.as_secs_f64(),
        a.services,
        a.services * a.endpoints,
        snap.names(),
        snap.records()
    );

    // One change, one snapshot: the index's share of change-to-answer.
    let mut took = Vec::new();
    for i in 0..a.changes {
        for d in change(&a, i) {
            index.apply("local", d);
        }
        let started = Instant::now();
        let next = index.update(&snap);
        took.push(started.elapsed());
        assert!(index.last_update().incremental, "{:?}", index.last_update());
        snap = next;
    }
    took.sort();
    println!(
        "one change per snapshot ({} changes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} snapshots/s",
        a.changes,
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        percentile(&took, 1.0).as_secs_f64() * 1e3,
        a.changes as f64 / took.iter().sum::<Duration>().as_secs_f64()
    );

    // Bursts: many changes, one snapshot.
    let rounds = (a.changes / a.burst.max(1)).max(1);
    let mut burst = Duration::ZERO;
    for r in 0..rounds {
        for i in 0..a.burst {
            for d in change(&a, a.changes + r * a.burst + i) {
                index.apply("local", d);
            }
        }
        let started = Instant::now();
        snap = index.update(&snap);
        burst += started.elapsed();
        assert!(index.last_update().incremental, "{:?}", index.last_update());
    }
    println!(
        "bursts of {} changes ({} bursts): {:.1} ms per burst, {:.0} changes/s",
        a.burst,
        rounds,
        burst.as_secs_f64() * 1e3 / rounds as f64,
        (rounds * a.burst) as f64 / burst.as_secs_f64()
    );
    println!(
        "full build / one update (p50): {:.0}x",
        full.as_secs_f64() / percentile(&took, 0.5).as_secs_f64()
    );
}
