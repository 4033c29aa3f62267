//! The answering engine against SPEC.md, one test per rule, named after its
//! section (ARCHITECTURE house style 6). No sockets: snapshots are built from
//! manifests exactly as `svcnet serve` builds them, queries go through
//! [`svcnet_dns::answer`], and every reply is re-parsed by hickory-proto
//! (the oracle) before it is compared.
//!
//! Expectations are written in the vector language of `tests/vectors`
//! (see `svcnet_testkit::vector`); the last test runs every vector.

use std::collections::BTreeMap;

use svcnet_dns::{Context, Outcome, Transport as Via, answer, render_zones};
use svcnet_index::Snapshot;
use svcnet_testkit::{
    QuerySpec, Response, Setup, Transport, check_transport, load_vectors, parse_cases, run_vector,
    vectors_dir,
};
use svcnet_wire::rtype;

/// One exchange with the engine, no forwarding.
fn exchange(
    snap: &Snapshot,
    packet: &[u8],
    t: Transport,
    rotation: u32,
) -> Result<Vec<u8>, String> {
    let ctx = Context {
        transport: match t {
            Transport::Udp => Via::Udp,
            Transport::Tcp => Via::Tcp,
        },
        rotation,
        forward: false,
    };
    let mut out = Vec::with_capacity(65535);
    match answer(snap, packet, &ctx, &mut out) {
        Outcome::Reply(n) => Ok(out[..n].to_vec()),
        other => Err(format!("no reply: {other:?}")),
    }
}

/// Asks and decodes (hickory-proto must parse the reply).
#[track_caller]
fn ask_via(snap: &Snapshot, q: &QuerySpec, t: Transport, rotation: u32) -> Response {
    let bytes = exchange(snap, &q.packet(), t, rotation).unwrap_or_else(|e| panic!("{q}: {e}"));
    Response::decode(&bytes).unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// A TCP query of `name` and `qtype` (no size limit).
#[track_caller]
fn ask(snap: &Snapshot, name: &str, qtype: u16) -> Response {
    ask_via(snap, &QuerySpec::new(name, qtype), Transport::Tcp, 0)
}

/// Runs cases written in the vector language against `snap`, over each of
/// their transports, and fails with every difference.
#[track_caller]
fn expect(snap: &Snapshot, script: &str) {
    let at = std::panic::Location::caller();
    let origin = format!("script at {}:{}, line", at.file(), at.line());
    let cases = parse_cases(script, &origin).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for case in &cases {
        for &t in &case.transports {
            let result = exchange(snap, &case.query.packet(), t, 0)
                .and_then(|b| Response::decode(&b))
                .and_then(|r| check_transport(case, t, &r));
            if let Err(e) = result {
                failures.push(format!("[over {}] {e}", t.as_str()));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The A and AAAA data of an answer, sorted.
fn addresses(r: &Response) -> Vec<String> {
    let mut v: Vec<String> = r
        .answer
        .iter()
        .filter(|rr| rr.rtype == "A" || rr.rtype == "AAAA")
        .map(|rr| rr.rdata.clone())
        .collect();
    v.sort();
    v
}

const NGINX_STS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{name: web, containerPort: 80}]}]
"#;

// ---------------------------------------------------------------- SPEC §2

#[test]
fn spec_2_clusterip_a() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.5.5
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: allocated}
spec:
  ports: [{port: 80}]
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query web.shop.svc.cluster.local A
rcode NOERROR
flags aa rd
answer web.shop.svc.cluster.local. 5 IN A 10.96.5.5

query web.shop.svc.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
    // Without spec.clusterIP the emulated control plane allocates one from
    // the service CIDR, never the kubernetes.default address.
    let r = ask(&snap, "allocated.default.svc.cluster.local", rtype::A);
    let ips = r.answer_data("A");
    assert_eq!(ips.len(), 1, "{r}");
    let ip: std::net::Ipv4Addr = ips[0].parse().unwrap();
    assert_eq!(ip.octets()[0], 10);
    assert!(
        (96..112).contains(&ip.octets()[1]),
        "{ip} outside 10.96.0.0/12"
    );
    assert_ne!(ip.to_string(), "10.96.0.1");
}

#[test]
fn spec_2_headless_no_ready_endpoints_is_nxdomain() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status:
  podIP: 10.244.3.1
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  clusterIP: None
  selector: {app: nothing}
"#,
    )
    .snapshot();
    let mut script = String::new();
    for (name, t) in [
        ("db.default.svc.cluster.local", "A"),
        ("db.default.svc.cluster.local", "AAAA"),
        ("db.default.svc.cluster.local", "SRV"),
        ("_pg._tcp.db.default.svc.cluster.local", "SRV"),
        ("db-0.db.default.svc.cluster.local", "A"),
        ("10-244-3-1.db.default.svc.cluster.local", "A"),
        ("empty.default.svc.cluster.local", "A"),
        ("empty.default.svc.cluster.local", "AAAA"),
    ] {
        script.push_str(&format!(
            "query {name} {t}\nrcode NXDOMAIN\nflags aa rd\nauthority cluster.local. 5 IN SOA *\n"
        ));
    }
    expect(&snap, &script);
}

#[test]
fn spec_2_hostname_records() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-a, labels: {app: db}}
spec: {hostname: primary, subdomain: db}
status: {podIP: 10.244.3.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-b, labels: {app: db}}
spec: {hostname: replica, subdomain: db}
status: {podIP: 10.244.3.2}
---
# A hostname without the matching subdomain: named by its IP.
apiVersion: v1
kind: Pod
metadata: {name: db-c, labels: {app: db}}
spec: {hostname: stray, subdomain: other}
status: {podIP: 10.244.3.3}
---
# Replicas of a template with hostname/subdomain share the name.
apiVersion: v1
kind: Pod
metadata: {name: db-d, labels: {app: db}}
spec: {hostname: replica, subdomain: db}
status: {podIP: 10.244.3.4}
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query primary.db.default.svc.cluster.local A
flags aa rd
answer primary.db.default.svc.cluster.local. 5 IN A 10.244.3.1

query replica.db.default.svc.cluster.local A
flags aa rd
answer replica.db.default.svc.cluster.local. 5 IN A 10.244.3.2
answer replica.db.default.svc.cluster.local. 5 IN A 10.244.3.4

query 10-244-3-3.db.default.svc.cluster.local A
flags aa rd
answer 10-244-3-3.db.default.svc.cluster.local. 5 IN A 10.244.3.3

query stray.db.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

# Endpoints with a hostname have no dashed name.
query 10-244-3-1.db.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query primary.db.default.svc.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_dashed_ip_names_v4_v6() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: mixed}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: mixed-v4
  labels: {kubernetes.io/service-name: mixed}
addressType: IPv4
endpoints:
  - addresses: [10.244.1.5]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: mixed-v6
  labels: {kubernetes.io/service-name: mixed}
addressType: IPv6
endpoints:
  - addresses: ["fd00:10:244:1::5"]
  - addresses: ["fd00:10:244:2::"]
  - addresses: ["::7"]
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query 10-244-1-5.mixed.default.svc.cluster.local A
flags aa rd
answer 10-244-1-5.mixed.default.svc.cluster.local. 5 IN A 10.244.1.5

query fd00-10-244-1--5.mixed.default.svc.cluster.local AAAA
flags aa rd
answer fd00-10-244-1--5.mixed.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::5

# A name ending in "-" gets "0" appended (CoreDNS), one starting with it too.
query fd00-10-244-2--0.mixed.default.svc.cluster.local AAAA
flags aa rd
answer fd00-10-244-2--0.mixed.default.svc.cluster.local. 5 IN AAAA fd00:10:244:2::

query 0--7.mixed.default.svc.cluster.local AAAA
flags aa rd
answer 0--7.mixed.default.svc.cluster.local. 5 IN AAAA ::7

query mixed.default.svc.cluster.local AAAA
flags aa rd
answer mixed.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::5
answer mixed.default.svc.cluster.local. 5 IN AAAA fd00:10:244:2::
answer mixed.default.svc.cluster.local. 5 IN AAAA ::7

query fd00-10-244-1--5.mixed.default.svc.cluster.local A
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_srv_port_name_clusterip() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: infra}
spec:
  clusterIP: 10.96.0.10
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
    - {name: metrics, port: 9153, targetPort: 9253}
---
apiVersion: v1
kind: Service
metadata: {name: unnamed}
spec:
  clusterIP: 10.96.0.11
  ports: [{port: 80}]
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query _dns._udp.dns.infra.svc.cluster.local SRV
flags aa rd
answer _dns._udp.dns.infra.svc.cluster.local. 5 IN SRV 0 100 53 dns.infra.svc.cluster.local.
additional dns.infra.svc.cluster.local. 5 IN A 10.96.0.10

# The Service port, not the targetPort: clients dial the ClusterIP.
query _metrics._tcp.dns.infra.svc.cluster.local SRV
flags aa rd
answer _metrics._tcp.dns.infra.svc.cluster.local. 5 IN SRV 0 100 9153 dns.infra.svc.cluster.local.
additional dns.infra.svc.cluster.local. 5 IN A 10.96.0.10

query _dns._tcp.dns.infra.svc.cluster.local SRV
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query _dns-tcp._tcp.dns.infra.svc.cluster.local SRV
flags aa rd
answer _dns-tcp._tcp.dns.infra.svc.cluster.local. 5 IN SRV 0 100 53 dns.infra.svc.cluster.local.
additional dns.infra.svc.cluster.local. 5 IN A 10.96.0.10

# The service name: every named port, each as above (0 100 port).
query dns.infra.svc.cluster.local SRV
flags aa rd
answer dns.infra.svc.cluster.local. 5 IN SRV 0 100 53 dns.infra.svc.cluster.local.
answer dns.infra.svc.cluster.local. 5 IN SRV 0 100 9153 dns.infra.svc.cluster.local.
additional dns.infra.svc.cluster.local. 5 IN A 10.96.0.10

# Only named ports have SRV records.
query unnamed.default.svc.cluster.local SRV
flags aa rd
authority cluster.local. 5 IN SOA *

# The SRV owner labels compare case-insensitively.
query _DNS._UDP.dns.infra.svc.cluster.local SRV
flags aa rd
answer _dns._udp.dns.infra.svc.cluster.local. 5 IN SRV 0 100 53 dns.infra.svc.cluster.local.
additional dns.infra.svc.cluster.local. 5 IN A 10.96.0.10
"#,
    );
}

#[test]
fn spec_2_srv_headless_target_port_seed_004() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: api-headless}
spec:
  clusterIP: None
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, labels: {app: api}}
spec:
  containers: [{name: api, image: api, ports: [{containerPort: 8000}]}]
status: {podIP: 10.244.4.10}
---
apiVersion: v1
kind: Pod
metadata: {name: api-2, labels: {app: api}}
spec:
  containers: [{name: api, image: api, ports: [{containerPort: 8000}]}]
status: {podIP: 10.244.4.11}
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
# Clients of a headless service dial the pod: SRV carries 8000, not 80.
query _http._tcp.api-headless.default.svc.cluster.local SRV
flags aa rd
answer _http._tcp.api-headless.default.svc.cluster.local. 5 IN SRV 0 50 8000 10-244-4-10.api-headless.default.svc.cluster.local.
answer _http._tcp.api-headless.default.svc.cluster.local. 5 IN SRV 0 50 8000 10-244-4-11.api-headless.default.svc.cluster.local.
additional 10-244-4-10.api-headless.default.svc.cluster.local. 5 IN A 10.244.4.10
additional 10-244-4-11.api-headless.default.svc.cluster.local. 5 IN A 10.244.4.11
"#,
    );
}

#[test]
fn spec_2_srv_additional_records() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: kafka}
spec:
  clusterIP: None
  selector: {app: kafka}
  ports:
    - {name: broker, port: 9092}
    - {name: metrics, port: 9404}
---
apiVersion: v1
kind: Pod
metadata: {name: kafka-0, labels: {app: kafka}}
spec: {hostname: kafka-0, subdomain: kafka}
status:
  podIPs: [{ip: 10.244.5.1}, {ip: "fd00:10:244::5:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: kafka-1, labels: {app: kafka}}
spec: {hostname: kafka-1, subdomain: kafka}
status: {podIP: 10.244.5.2}
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query _broker._tcp.kafka.default.svc.cluster.local SRV
flags aa rd
answer _broker._tcp.kafka.default.svc.cluster.local. 5 IN SRV 0 50 9092 kafka-0.kafka.default.svc.cluster.local.
answer _broker._tcp.kafka.default.svc.cluster.local. 5 IN SRV 0 50 9092 kafka-1.kafka.default.svc.cluster.local.
additional kafka-0.kafka.default.svc.cluster.local. 5 IN A 10.244.5.1
additional kafka-0.kafka.default.svc.cluster.local. 5 IN AAAA fd00:10:244::5:1
additional kafka-1.kafka.default.svc.cluster.local. 5 IN A 10.244.5.2

# Two ports, same targets: each target's addresses once.
query kafka.default.svc.cluster.local SRV
flags aa rd
answer kafka.default.svc.cluster.local. 5 IN SRV 0 50 9092 kafka-0.kafka.default.svc.cluster.local.
answer kafka.default.svc.cluster.local. 5 IN SRV 0 50 9092 kafka-1.kafka.default.svc.cluster.local.
answer kafka.default.svc.cluster.local. 5 IN SRV 0 50 9404 kafka-0.kafka.default.svc.cluster.local.
answer kafka.default.svc.cluster.local. 5 IN SRV 0 50 9404 kafka-1.kafka.default.svc.cluster.local.
additional kafka-0.kafka.default.svc.cluster.local. 5 IN A 10.244.5.1
additional kafka-0.kafka.default.svc.cluster.local. 5 IN AAAA fd00:10:244::5:1
additional kafka-1.kafka.default.svc.cluster.local. 5 IN A 10.244.5.2

# No additional records for address queries.
query kafka-0.kafka.default.svc.cluster.local A
flags aa rd
answer kafka-0.kafka.default.svc.cluster.local. 5 IN A 10.244.5.1
"#,
    );
}

#[test]
fn spec_2_ptr_v4_v6_canonical() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIPs: [10.96.7.7, "fd00:10:96::7"]
  ports: [{port: 80}]
---
# The same pod behind two headless services: the one that names it by
# hostname owns the PTR.
apiVersion: v1
kind: Service
metadata: {name: aaa-by-ip}
spec:
  clusterIP: None
  selector: {app: db}
---
apiVersion: v1
kind: Service
metadata: {name: zzz-by-name}
spec:
  clusterIP: None
  selector: {app: db}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec: {hostname: db-0, subdomain: zzz-by-name}
status: {podIP: 10.244.6.1}
---
# Without hostnames, the first service in namespace/name order wins.
apiVersion: v1
kind: Service
metadata: {name: second, namespace: alpha}
spec:
  clusterIP: None
  selector: {app: cache}
---
apiVersion: v1
kind: Service
metadata: {name: first, namespace: alpha}
spec:
  clusterIP: None
  selector: {app: cache}
---
apiVersion: v1
kind: Pod
metadata: {name: cache-0, namespace: alpha, labels: {app: cache}}
status: {podIP: 10.244.6.2}
"#,
    )
    .snapshot();
    let v6 = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa";
    expect(
        &snap,
        &format!(
            r#"
query 7.7.96.10.in-addr.arpa PTR
flags aa rd
answer 7.7.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.

query {v6} PTR
flags aa rd
answer {v6}. 5 IN PTR web.default.svc.cluster.local.

query 1.6.244.10.in-addr.arpa PTR
flags aa rd
answer 1.6.244.10.in-addr.arpa. 5 IN PTR db-0.zzz-by-name.default.svc.cluster.local.

query 2.6.244.10.in-addr.arpa PTR
flags aa rd
answer 2.6.244.10.in-addr.arpa. 5 IN PTR 10-244-6-2.first.alpha.svc.cluster.local.

query 2.6.244.10.IN-ADDR.ARPA PTR
flags aa rd
answer 2.6.244.10.in-addr.arpa. 5 IN PTR 10-244-6-2.first.alpha.svc.cluster.local.

# The reverse name has no address records.
query 7.7.96.10.in-addr.arpa A
flags aa rd
authority 96.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5
"#
        ),
    );
}

#[test]
fn spec_2_ptr_all() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: second, namespace: alpha}
spec:
  clusterIP: None
  selector: {app: cache}
---
apiVersion: v1
kind: Service
metadata: {name: first, namespace: alpha}
spec:
  clusterIP: None
  selector: {app: cache}
---
apiVersion: v1
kind: Pod
metadata: {name: cache-0, namespace: alpha, labels: {app: cache}}
spec: {hostname: cache-0, subdomain: second}
status: {podIP: 10.244.6.2}
"#;
    expect(
        &Setup::yaml(yaml).snapshot(),
        r#"
query 2.6.244.10.in-addr.arpa PTR
flags aa rd
answer 2.6.244.10.in-addr.arpa. 5 IN PTR cache-0.second.alpha.svc.cluster.local.
"#,
    );
    expect(
        &Setup::yaml(yaml).option("ptr", "all").snapshot(),
        r#"
query 2.6.244.10.in-addr.arpa PTR
flags aa rd
answer 2.6.244.10.in-addr.arpa. 5 IN PTR cache-0.second.alpha.svc.cluster.local.
answer 2.6.244.10.in-addr.arpa. 5 IN PTR 10-244-6-2.first.alpha.svc.cluster.local.
"#,
    );
}

const EXTERNAL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: database}
spec: {type: ExternalName, externalName: DB.Example.com.}
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec: {type: ExternalName, externalName: 192.0.2.10}
---
apiVersion: v1
kind: Service
metadata: {name: legacy6}
spec: {type: ExternalName, externalName: "2001:db8::10"}
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  clusterIP: 10.96.1.1
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec: {type: ExternalName, externalName: backend.default.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: alias2}
spec: {type: ExternalName, externalName: alias.default.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: dangling}
spec: {type: ExternalName, externalName: gone.default.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop}
spec: {type: ExternalName, externalName: loop.default.svc.cluster.local}
"#;

#[test]
fn spec_2_externalname_cname() {
    let snap = Setup::yaml(EXTERNAL).snapshot();
    let mut script = String::new();
    // Whatever the type, the name is an alias; without an upstream the
    // target is left to the client's resolver.
    for t in ["A", "AAAA", "CNAME", "SRV", "TXT"] {
        script.push_str(&format!(
            "query database.default.svc.cluster.local {t}\nflags aa rd\n\
             answer database.default.svc.cluster.local. 5 IN CNAME db.example.com.\n"
        ));
    }
    expect(&snap, &script);
}

/// One exchange with forwarding on: the outcome and the reply decoded (a
/// Chase reply is the part answered here).
#[track_caller]
fn ask_forwarding(snap: &Snapshot, name: &str, qtype: u16) -> (&'static str, Response) {
    let ctx = Context {
        transport: Via::Tcp,
        rotation: 0,
        forward: true,
    };
    let mut out = Vec::with_capacity(65535);
    let (kind, n) = match answer(snap, &QuerySpec::new(name, qtype).packet(), &ctx, &mut out) {
        Outcome::Reply(n) => ("reply", n),
        Outcome::Chase(n) => ("chase", n),
        other => panic!("{name}: {other:?}"),
    };
    let r = Response::decode(&out[..n]).unwrap_or_else(|e| panic!("{name}: {e}"));
    (kind, r)
}

#[test]
fn spec_2_externalname_target_resolved_upstream_for_addresses() {
    let snap = Setup::yaml(EXTERNAL).snapshot();
    // A and AAAA: the CNAME is written here and the target goes upstream.
    for t in [rtype::A, rtype::AAAA] {
        let (kind, r) = ask_forwarding(&snap, "database.default.svc.cluster.local", t);
        assert_eq!(kind, "chase");
        assert_eq!(
            r.answer_lines(),
            ["database.default.svc.cluster.local. 5 IN CNAME db.example.com."]
        );
        assert!(r.flags.aa);
    }
    // Other types, in-zone targets and IP literals are answered here alone.
    for (name, t) in [
        ("database.default.svc.cluster.local", rtype::SRV),
        ("database.default.svc.cluster.local", rtype::TXT),
        ("alias2.default.svc.cluster.local", rtype::A),
        ("legacy.default.svc.cluster.local", rtype::A),
        ("dangling.default.svc.cluster.local", rtype::A),
    ] {
        assert_eq!(ask_forwarding(&snap, name, t).0, "reply", "{name} {t}");
    }
}

#[test]
fn spec_2_autopath_answers_the_first_search_expansion_that_exists() {
    let plain = Setup::yaml(EXTERNAL).snapshot();
    let snap = Setup::yaml(EXTERNAL).option("autopath", "").snapshot();
    // `backend.default` asked by a pod in `default`: its first expansion
    // does not exist, its second does.
    let first = "backend.default.default.svc.cluster.local";
    assert_eq!(ask(&plain, first, rtype::A).rcode_name(), "NXDOMAIN");
    // Then a fully qualified in-zone name after the search suffix: the bare
    // name is the expansion that exists.
    for name in [
        first,
        "backend.default.svc.cluster.local.default.svc.cluster.local",
    ] {
        expect(
            &snap,
            &format!(
                "query {name} A\nflags aa rd\n\
                 answer {name}. 5 IN CNAME backend.default.svc.cluster.local.\n\
                 answer backend.default.svc.cluster.local. 5 IN A 10.96.1.1\n"
            ),
        );
    }
    // The expansion is followed like any CNAME (to an ExternalName's alias).
    let r = ask(&snap, "alias2.default.default.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 4, "{r}");
    // NODATA at an expansion makes the search go on, as a stub resolver
    // does; with nothing found and no upstream it stays NXDOMAIN.
    assert_eq!(ask(&snap, first, rtype::AAAA).rcode_name(), "NXDOMAIN");
    assert_eq!(
        ask(&snap, "nothing.default.svc.cluster.local", rtype::A).rcode_name(),
        "NXDOMAIN"
    );
    // Only `<X>.<ns>.svc.<zone>` of an existing namespace is an expansion.
    for name in [
        "backend.default.nowhere.svc.cluster.local",
        "backend.default.pod.cluster.local",
        "backend.default.svc.cluster.local.cluster.local",
    ] {
        assert_eq!(
            ask(&snap, name, rtype::A).rcode_name(),
            "NXDOMAIN",
            "{name}"
        );
    }
    // Names that exist are never rewritten.
    assert_eq!(
        ask(&snap, "backend.default.svc.cluster.local", rtype::A).answer_lines(),
        ["backend.default.svc.cluster.local. 5 IN A 10.96.1.1"]
    );
    // With an upstream, the bare name outside our zones is resolved there.
    let (kind, r) = ask_forwarding(&snap, "api.example.com.default.svc.cluster.local", rtype::A);
    assert_eq!(kind, "chase");
    assert_eq!(
        r.answer_lines(),
        ["api.example.com.default.svc.cluster.local. 5 IN CNAME api.example.com."]
    );
    let (kind, _) = ask_forwarding(
        &plain,
        "api.example.com.default.svc.cluster.local",
        rtype::A,
    );
    assert_eq!(kind, "reply");
}

#[test]
fn spec_2_externalname_ip_literal() {
    let snap = Setup::yaml(EXTERNAL).snapshot();
    expect(
        &snap,
        r#"
query legacy.default.svc.cluster.local A
flags aa rd
answer legacy.default.svc.cluster.local. 5 IN A 192.0.2.10

query legacy.default.svc.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *

query legacy.default.svc.cluster.local CNAME
flags aa rd
authority cluster.local. 5 IN SOA *

query legacy6.default.svc.cluster.local AAAA
flags aa rd
answer legacy6.default.svc.cluster.local. 5 IN AAAA 2001:db8::10
"#,
    );
}

#[test]
fn spec_2_1_externalname_in_zone_followed() {
    let snap = Setup::yaml(EXTERNAL).snapshot();
    expect(
        &snap,
        r#"
query alias.default.svc.cluster.local A
flags aa rd
answer alias.default.svc.cluster.local. 5 IN CNAME backend.default.svc.cluster.local.
answer backend.default.svc.cluster.local. 5 IN A 10.96.1.1

query alias2.default.svc.cluster.local A
flags aa rd
answer alias2.default.svc.cluster.local. 5 IN CNAME alias.default.svc.cluster.local.
answer alias.default.svc.cluster.local. 5 IN CNAME backend.default.svc.cluster.local.
answer backend.default.svc.cluster.local. 5 IN A 10.96.1.1

query alias.default.svc.cluster.local SRV
flags aa rd
answer alias.default.svc.cluster.local. 5 IN CNAME backend.default.svc.cluster.local.
answer backend.default.svc.cluster.local. 5 IN SRV 0 100 80 backend.default.svc.cluster.local.
additional backend.default.svc.cluster.local. 5 IN A 10.96.1.1

# The target has no AAAA: NODATA for the target, the CNAME still answers.
query alias.default.svc.cluster.local AAAA
flags aa rd
answer alias.default.svc.cluster.local. 5 IN CNAME backend.default.svc.cluster.local.
authority cluster.local. 5 IN SOA *

# RFC 6604: the RCODE is the last name's.
query dangling.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
answer dangling.default.svc.cluster.local. 5 IN CNAME gone.default.svc.cluster.local.
authority cluster.local. 5 IN SOA *

# A loop is answered once, not repeated until the chain limit.
query loop.default.svc.cluster.local A
flags aa rd
answer loop.default.svc.cluster.local. 5 IN CNAME loop.default.svc.cluster.local.
"#,
    );
}

const POD_RECORDS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team}
status:
  podIPs: [{ip: 10.244.9.9}, {ip: "fd00:10:244::9"}]
"#;

#[test]
fn spec_2_pod_records_verified() {
    let snap = Setup::yaml(POD_RECORDS).snapshot();
    expect(
        &snap,
        r#"
query 10-244-9-9.team.pod.cluster.local A
flags aa rd
answer 10-244-9-9.team.pod.cluster.local. 5 IN A 10.244.9.9

query fd00-10-244--9.team.pod.cluster.local AAAA
flags aa rd
answer fd00-10-244--9.team.pod.cluster.local. 5 IN AAAA fd00:10:244::9

query 10-244-9-9.team.pod.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *

# Another namespace, or an IP no pod has: no record.
query 10-244-9-9.default.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query 10-244-9-8.team.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query team.pod.cluster.local A
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_pod_records_insecure() {
    let snap = Setup::yaml(POD_RECORDS)
        .option("pods", "insecure")
        .snapshot();
    expect(
        &snap,
        r#"
# Any well-formed dashed IP, any namespace (kube-dns behaviour).
query 1-2-3-4.anywhere.pod.cluster.local A
flags aa rd
answer 1-2-3-4.anywhere.pod.cluster.local. 5 IN A 1.2.3.4

query 10-244-9-9.team.pod.cluster.local A
flags aa rd
answer 10-244-9-9.team.pod.cluster.local. 5 IN A 10.244.9.9

query 2001-db8--1.default.pod.cluster.local AAAA
flags aa rd
answer 2001-db8--1.default.pod.cluster.local. 5 IN AAAA 2001:db8::1

query 1-2-3-4.default.pod.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *

query not-an-ip.default.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query 1-2-3-400.default.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query x.1-2-3-4.default.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

# Pod names exist in the cluster zones only.
query 1-2-3-4.default.pod.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_pod_records_disabled() {
    let snap = Setup::yaml(POD_RECORDS)
        .option("pods", "disabled")
        .snapshot();
    expect(
        &snap,
        r#"
query 10-244-9-9.team.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query 1-2-3-4.team.pod.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_dns_version() {
    let snap = Setup::yaml(NGINX_STS).option("ttl", "30").snapshot();
    expect(
        &snap,
        r#"
query dns-version.cluster.local TXT
flags aa rd
answer dns-version.cluster.local. 28800 IN TXT "1.1.0"

query DNS-Version.Cluster.Local TXT
flags aa rd
answer dns-version.cluster.local. 28800 IN TXT "1.1.0"

query dns-version.cluster.local A
flags aa rd
authority cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 30
"#,
    );
}

#[test]
fn spec_2_soa_ns_apex() {
    let mut pipeline = Setup::yaml(NGINX_STS).pipeline().unwrap();
    let snap = pipeline.index.build();
    let serial = snap.serial();
    expect(
        &snap,
        &format!(
            r#"
query cluster.local SOA
flags aa rd
answer cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5

query cluster.local NS
flags aa rd
answer cluster.local. 5 IN NS ns.dns.cluster.local.
additional ns.dns.cluster.local. 5 IN A 127.0.0.1

query ns.dns.cluster.local A
flags aa rd
answer ns.dns.cluster.local. 5 IN A 127.0.0.1

query ns.dns.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *

query cluster.local ANY
flags aa rd
answer cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5
answer cluster.local. 5 IN NS ns.dns.cluster.local.

query clusterset.local SOA
flags aa rd
answer clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. {serial} 7200 1800 86400 5

query 96.10.in-addr.arpa SOA
flags aa rd
answer 96.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5
"#
        ),
    );
    // The serial is the state generation: it increases with every snapshot.
    let next = pipeline.index.build();
    assert!(next.serial() > serial);
    let r = ask(&next, "cluster.local", rtype::SOA);
    assert_eq!(
        r.answer[0].rdata.split(' ').nth(2),
        Some(&*next.serial().to_string())
    );
    // --advertise sets the name server's addresses.
    let snap = Setup::yaml(NGINX_STS)
        .option("advertise", "192.0.2.53 2001:db8::53")
        .snapshot();
    expect(
        &snap,
        r#"
query ns.dns.cluster.local A
flags aa rd
answer ns.dns.cluster.local. 5 IN A 192.0.2.53

query ns.dns.cluster.local AAAA
flags aa rd
answer ns.dns.cluster.local. 5 IN AAAA 2001:db8::53
"#,
    );
}

#[test]
fn spec_2_nodata_vs_nxdomain() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec:
  clusterIP: 10.96.5.5
  ports: [{name: http, port: 80}]
"#,
    )
    .snapshot();
    let mut script = String::new();
    let nodata = [
        ("web.team.svc.cluster.local", "AAAA"),
        ("web.team.svc.cluster.local", "TXT"),
        ("web.team.svc.cluster.local", "PTR"),
        ("web.team.svc.cluster.local", "CNAME"),
        ("team.svc.cluster.local", "A"),
        ("default.svc.cluster.local", "A"),
        ("team.svc.cluster.local", "SRV"),
        ("svc.cluster.local", "A"),
        ("pod.cluster.local", "A"),
        ("cluster.local", "A"),
        ("cluster.local", "TXT"),
        ("_http._tcp.web.team.svc.cluster.local", "A"),
        ("svc.clusterset.local", "A"),
    ];
    for (name, t) in nodata {
        let zone = if name.ends_with("clusterset.local") {
            "clusterset.local"
        } else {
            "cluster.local"
        };
        script.push_str(&format!(
            "query {name} {t}\nrcode NOERROR\nflags aa rd\nauthority {zone}. 5 IN SOA *\n"
        ));
    }
    let nxdomain = [
        ("nope.svc.cluster.local", "A"),
        ("web.nope.svc.cluster.local", "A"),
        ("web.default.svc.cluster.local", "A"),
        ("x.web.team.svc.cluster.local", "A"),
        ("_http._udp.web.team.svc.cluster.local", "SRV"),
        ("www.cluster.local", "A"),
        ("team.cluster.local", "A"),
        ("web.team.cluster.local", "A"),
    ];
    for (name, t) in nxdomain {
        script.push_str(&format!(
            "query {name} {t}\nrcode NXDOMAIN\nflags aa rd\nauthority cluster.local. 5 IN SOA *\n"
        ));
    }
    expect(&snap, &script);
}

#[test]
fn spec_2_nxdomain_soa_authority() {
    // SOA TTL = min(TTL, minimum), and minimum = TTL.
    for ttl in [0, 5, 30, 3600] {
        let snap = Setup::yaml(NGINX_STS)
            .option("ttl", &ttl.to_string())
            .snapshot();
        let serial = snap.serial();
        expect(
            &snap,
            &format!(
                r#"
query missing.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. {ttl} IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 {ttl}

query missing.default.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. {ttl} IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. {serial} 7200 1800 86400 {ttl}

query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. {ttl} IN A *
"#
            ),
        );
    }
}

#[test]
fn spec_2_outside_zone_refused() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    let mut script = String::new();
    for name in [
        "example.com",
        "local",
        "cluster.local.example.com",
        "xcluster.local",
        "in-addr.arpa",
        "8.8.8.8.in-addr.arpa",
        "arpa",
        ".",
    ] {
        script.push_str(&format!(
            "query {name} A\nrcode REFUSED\nflags rd -ra\nquery {name} A edns\nrcode REFUSED\nflags rd -ra\n"
        ));
    }
    expect(&snap, &script);
}

#[test]
fn spec_2_axfr_refused() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query cluster.local AXFR tcp
rcode REFUSED
flags rd

query cluster.local IXFR
rcode REFUSED
flags rd

query clusterset.local AXFR tcp
rcode REFUSED
flags rd

query 96.10.in-addr.arpa AXFR tcp
rcode REFUSED
flags rd
"#,
    );
}

// ---------------------------------------------------- SPEC §2 "Protocol"

#[test]
fn spec_2_protocol_qdcount_formerr() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.cluster.local A qdcount=0 id=4242
rcode FORMERR
flags rd

query web-0.nginx.default.svc.cluster.local A qdcount=2 id=7
rcode FORMERR
flags rd

query web-0.nginx.default.svc.cluster.local A qdcount=65535 norec
rcode FORMERR
flags
"#,
    );
    // A header and nothing more: FORMERR too. Less than a header: dropped.
    let mut header = QuerySpec::new("x", rtype::A).id(99).packet();
    header.truncate(12);
    let r = Response::decode(&exchange(&snap, &header, Transport::Udp, 0).unwrap()).unwrap();
    assert_eq!((r.id, r.rcode_name().as_str()), (99, "FORMERR"));
    for len in 0..12 {
        let ctx = Context {
            transport: Via::Udp,
            rotation: 0,
            forward: false,
        };
        let mut out = Vec::new();
        assert_eq!(answer(&snap, &header[..len], &ctx, &mut out), Outcome::Drop);
    }
}

#[test]
fn spec_2_protocol_opcode_notimp() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    let mut script = String::new();
    for opcode in [1, 2, 3, 4, 5, 6, 15] {
        script.push_str(&format!(
            "query web-0.nginx.default.svc.cluster.local A opcode={opcode}\nrcode NOTIMP\nflags rd\n"
        ));
    }
    expect(&snap, &script);
}

#[test]
fn spec_2_protocol_edns_badvers() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.cluster.local A edns-version=1
rcode BADVERS
flags rd
edns 1232

query web-0.nginx.default.svc.cluster.local A edns-version=255 edns=4096
rcode BADVERS
flags rd
edns 1232

query example.com A edns-version=1
rcode BADVERS
flags rd
edns 1232
"#,
    );
}

#[test]
fn spec_2_protocol_class_refused() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query version.bind TXT class=CH
rcode REFUSED
flags rd

query web-0.nginx.default.svc.cluster.local A class=CH
rcode REFUSED
flags rd

query web-0.nginx.default.svc.cluster.local A class=HS
rcode REFUSED
flags rd

query web-0.nginx.default.svc.cluster.local A class=NONE
rcode REFUSED
flags rd

# QCLASS ANY (RFC 1035 §3.2.5) is answered with the IN data.
query web-0.nginx.default.svc.cluster.local A class=ANY
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *
"#,
    );
}

#[test]
fn spec_2_protocol_edns_echo_payload() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.cluster.local A edns=512
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *
edns 1232

query web-0.nginx.default.svc.cluster.local A edns=100
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *
edns 1232

query web-0.nginx.default.svc.cluster.local A edns=65535
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *
edns 1232

query missing.default.svc.cluster.local A edns
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
edns 1232

# No OPT in, no OPT out.
query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *
edns none
"#,
    );
    // RFC 3225 §3: the DO bit is copied into the response.
    let mut q = QuerySpec::new("web-0.nginx.default.svc.cluster.local", rtype::A).edns(1232);
    for dnssec_ok in [false, true] {
        q.edns.as_mut().unwrap().dnssec_ok = dnssec_ok;
        let r = ask_via(&snap, &q, Transport::Udp, 0);
        assert_eq!(r.edns.map(|e| e.dnssec_ok), Some(dnssec_ok), "{r}");
    }
}

#[test]
fn spec_2_protocol_malformed_formerr_or_drop() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    let valid = QuerySpec::new("web-0.nginx.default.svc.cluster.local", rtype::A)
        .id(0xbeef)
        .packet();
    let formerr = |packet: &[u8], what: &str| {
        let bytes =
            exchange(&snap, packet, Transport::Udp, 0).unwrap_or_else(|e| panic!("{what}: {e}"));
        let r = Response::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.rcode_name(), "FORMERR", "{what}\n{r}");
        assert_eq!(r.id, 0xbeef, "{what}");
        assert!(r.flags.qr && !r.flags.aa, "{what}\n{r}");
    };
    // The question cut short, at every length past the header.
    for len in 13..valid.len() {
        formerr(&valid[..len], &format!("question cut at {len}"));
    }
    // A compression pointer in the question.
    let mut p = valid.clone();
    p[12] = 0xc0;
    p[13] = 12;
    formerr(&p, "pointer in the question");
    // A label longer than the packet.
    let mut p = valid.clone();
    p[12] = 63;
    formerr(&p, "label past the end");
    // An OPT record in the answer section, and two OPT records.
    let opt = [0u8, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0];
    let mut p = valid.clone();
    p[7] = 1;
    p.extend_from_slice(&opt);
    formerr(&p, "OPT in the answer section");
    let mut p = valid.clone();
    p[11] = 2;
    p.extend_from_slice(&opt);
    p.extend_from_slice(&opt);
    formerr(&p, "two OPT records");
    // A record count with no records behind it.
    let mut p = valid.clone();
    p[11] = 1;
    formerr(&p, "ARCOUNT 1, nothing there");
    // A response is never answered (that is how loops start).
    let mut p = valid;
    p[2] |= 0x80;
    let ctx = Context {
        transport: Via::Udp,
        rotation: 0,
        forward: false,
    };
    let mut out = Vec::new();
    assert_eq!(answer(&snap, &p, &ctx, &mut out), Outcome::Drop);
}

const BIG_HEADLESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: big}
spec:
  clusterIP: None
  selector: {app: big}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 200
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers: [{name: c, image: c, ports: [{name: http, containerPort: 80}]}]
"#;

/// (owner, type) → count: an RRset per key.
fn rrsets(rrs: &[svcnet_testkit::Rr]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in rrs {
        *m.entry((r.owner.to_ascii_lowercase(), r.rtype.clone()))
            .or_default() += 1;
    }
    m
}

#[test]
fn spec_2_protocol_truncation_whole_rrsets() {
    let snap = Setup::yaml(BIG_HEADLESS).snapshot();
    let name = "big.default.svc.cluster.local";
    for qtype in [rtype::A, rtype::SRV, rtype::ANY] {
        let tcp = ask_via(&snap, &QuerySpec::new(name, qtype), Transport::Tcp, 0);
        assert!(!tcp.flags.tc, "{tcp}");
        let full = rrsets(&tcp.answer);
        let expected_total = if qtype == rtype::ANY { 400 } else { 200 };
        assert_eq!(tcp.answer.len(), expected_total, "full answer over TCP");
        for edns in [None, Some(512), Some(1232), Some(4096)] {
            let mut q = QuerySpec::new(name, qtype);
            if let Some(size) = edns {
                q = q.edns(size);
            }
            let udp = ask_via(&snap, &q, Transport::Udp, 0);
            assert!(
                udp.len <= q.udp_limit(),
                "{q}: {} > {}",
                udp.len,
                q.udp_limit()
            );
            assert!(udp.flags.tc, "{q}: TC must be set\n{udp}");
            assert!(udp.flags.aa);
            // Only whole RRsets: each one present is complete.
            for (key, n) in rrsets(&udp.answer) {
                assert_eq!(full.get(&key), Some(&n), "{q}: partial RRset {key:?}");
            }
            assert!(
                udp.additional.is_empty() && udp.authority.is_empty(),
                "{udp}"
            );
        }
    }
    // What fits is sent whole, with no TC: 15 endpoints in 1232 octets.
    let small = BIG_HEADLESS.replace("replicas: 200", "replicas: 15");
    let snap = Setup::yaml(&small).snapshot();
    let q = QuerySpec::new(name, rtype::A).edns(1232);
    let r = ask_via(&snap, &q, Transport::Udp, 0);
    assert!(!r.flags.tc && r.answer.len() == 15, "{r}");
    // An SRV answer that fits keeps TC clear even when glue is dropped
    // (RFC 2181 §9: TC is for the answer section).
    let q = QuerySpec::new(&format!("_http._tcp.{name}"), rtype::SRV).edns(1232);
    let r = ask_via(&snap, &q, Transport::Udp, 0);
    assert_eq!(r.answer.len(), 15, "{r}");
    assert!(!r.flags.tc, "{r}");
    assert!(
        !r.additional.is_empty() && r.additional.len() < 15,
        "glue was expected to be cut: {r}"
    );
    assert!(r.len <= 1232);
    // Some RRsets fit, the next does not: the ones before it are kept whole.
    let q = QuerySpec::new(name, rtype::ANY);
    let r = ask_via(&snap, &q, Transport::Udp, 0);
    assert!(r.flags.tc, "{r}");
    assert_eq!(
        rrsets(&r.answer).into_iter().collect::<Vec<_>>(),
        [((name.to_owned() + ".", "A".to_owned()), 15)]
    );
}

/// A headless service with 5,000 ready endpoints (issue "large answers"):
/// every query shape answers, in time linear in what is written, and an
/// answer bigger than a TCP message still says what it can.
#[test]
fn large_headless_service_of_five_thousand_endpoints() {
    let yaml = BIG_HEADLESS
        .replace("replicas: 200", "replicas: 5000")
        .replace(
            "clusterIP: None",
            "clusterIP: None\n  publishNotReadyAddresses: true",
        );
    let snap = Setup::yaml(&yaml)
        .option("pod-cidr", "10.0.0.0/8")
        .snapshot();
    let name = "big.default.svc.cluster.local";
    let started = std::time::Instant::now();
    for qtype in [rtype::A, rtype::SRV, rtype::ANY] {
        for t in [Transport::Udp, Transport::Tcp] {
            for rotation in 0..20 {
                let r = ask_via(&snap, &QuerySpec::new(name, qtype).edns(1232), t, rotation);
                // Over UDP the RRset does not fit whole: TC, so the client
                // asks again over TCP (SPEC §2, whole RRsets).
                assert!(r.flags.tc, "{t:?} {qtype}: {r}");
                if t == Transport::Tcp {
                    // 5,000 records do not fit in 65,535 octets: as many as
                    // fit, flagged incomplete.
                    assert!(r.flags.tc, "{r}");
                    assert!(
                        r.answer.len() >= 1000,
                        "{} records over TCP",
                        r.answer.len()
                    );
                }
            }
        }
    }
    eprintln!(
        "120 answers from a 5,000-endpoint service in {:?}",
        started.elapsed()
    );
}

#[test]
fn spec_2_protocol_case_echo() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query WEB-0.NGINX.default.SVC.Cluster.Local A
case exact
flags aa rd
answer WEB-0.NGINX.default.SVC.Cluster.Local. 5 IN A *

query Missing.Default.Svc.Cluster.Local A
case exact
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query _WEB._Tcp.Nginx.Default.Svc.Cluster.Local SRV
case exact
flags aa rd
answer _WEB._Tcp.Nginx.Default.Svc.Cluster.Local. 5 IN SRV 0 50 80 web-0.nginx.default.svc.cluster.local.
answer _WEB._Tcp.Nginx.Default.Svc.Cluster.Local. 5 IN SRV 0 50 80 web-1.nginx.default.svc.cluster.local.
additional * 5 IN A *
additional * 5 IN A *
"#,
    );
}

#[test]
fn spec_2_protocol_headless_rotation() {
    let snap = Setup::yaml(
        BIG_HEADLESS
            .replace("replicas: 200", "replicas: 3")
            .as_str(),
    )
    .snapshot();
    let q = QuerySpec::new("big.default.svc.cluster.local", rtype::A);
    let orders: Vec<Vec<String>> = (0..3)
        .map(|rot| ask_via(&snap, &q, Transport::Udp, rot).answer_data("A"))
        .collect();
    let mut firsts: Vec<&String> = orders.iter().map(|o| &o[0]).collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(
        firsts.len(),
        3,
        "each endpoint comes first once: {orders:?}"
    );
    for o in &orders {
        let (mut a, mut b) = (o.clone(), orders[0].clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "rotation changes the order only");
    }
    // ClusterIP answers do not rotate.
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIPs: [10.96.7.7, "fd00:10:96::7"]
"#,
    )
    .snapshot();
    let q = QuerySpec::new("web.default.svc.cluster.local", rtype::A);
    assert_eq!(
        ask_via(&snap, &q, Transport::Udp, 0).answer,
        ask_via(&snap, &q, Transport::Udp, 1).answer
    );
}

// ---------------------------------------------------------- SPEC §1

#[test]
fn spec_1_objects_and_workloads() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: agent, namespace: ops}
    spec:
      clusterIP: None
      selector: {app: agent}
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent, namespace: ops}
    spec:
      selector: {matchLabels: {app: agent}}
      template:
        metadata: {labels: {app: agent}}
        spec: {containers: [{name: a, image: a}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
data: {a: b}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: a, image: a}]}
---
apiVersion: v1
kind: Service
metadata: {name: rs}
spec:
  clusterIP: None
  selector: {app: rs}
---
# Replicas of a template with hostname and subdomain share the name.
apiVersion: apps/v1
kind: Deployment
metadata: {name: shared}
spec:
  replicas: 2
  selector: {matchLabels: {app: shared}}
  template:
    metadata: {labels: {app: shared}}
    spec:
      hostname: box
      subdomain: shared
      containers: [{name: a, image: a}]
---
apiVersion: v1
kind: Service
metadata: {name: shared}
spec:
  clusterIP: None
  selector: {app: shared}
"#,
    )
    .option("nodes", "node-a,node-b,node-c")
    .snapshot();
    // A DaemonSet: one pod per node.
    let r = ask(&snap, "agent.ops.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 3, "{r}");
    let r = ask(&snap, "rs.default.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 3, "{r}");
    let r = ask(&snap, "box.shared.default.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 2, "{r}");
    // The namespace used by the List's objects exists.
    expect(
        &snap,
        r#"
query ops.svc.cluster.local A
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

// ---------------------------------------------------------- SPEC §1.1

#[test]
fn spec_1_1_statefulset_ordered_ready() {
    let yaml = format!(
        "{NGINX_STS}{}",
        r#"
---
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  podIP: 10.244.12.1
  conditions: [{type: Ready, status: "False"}]
"#
    )
    .replace("replicas: 2", "replicas: 4");
    let pipeline = Setup::yaml(&yaml).pipeline().unwrap();
    let pending: Vec<&str> = pipeline.loads[0]
        .1
        .view
        .pending
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(pending, ["web-2", "web-3"]);
    let snap = Setup::yaml(&yaml).snapshot();
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *

# Not Ready: no record, but the pod exists with its IP.
query web-1.nginx.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query 10-244-12-1.default.pod.cluster.local A
flags aa rd
answer 10-244-12-1.default.pod.cluster.local. 5 IN A 10.244.12.1

# Held back by OrderedReady: pending, no IP, no record.
query web-2.nginx.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query nginx.default.svc.cluster.local A
flags aa rd
answer nginx.default.svc.cluster.local. 5 IN A *
"#,
    );
    // Parallel: nothing is held back.
    let parallel = yaml.replace(
        "serviceName: nginx",
        "serviceName: nginx\n  podManagementPolicy: Parallel",
    );
    let snap = Setup::yaml(&parallel).snapshot();
    let r = ask(&snap, "nginx.default.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 3, "web-0, web-2, web-3\n{r}");
    expect(
        &snap,
        r#"
query web-3.nginx.default.svc.cluster.local A
flags aa rd
answer web-3.nginx.default.svc.cluster.local. 5 IN A *
"#,
    );
    // spec.ordinals.start.
    let snap =
        Setup::yaml(&NGINX_STS.replace("replicas: 2", "replicas: 2\n  ordinals: {start: 5}"))
            .snapshot();
    expect(
        &snap,
        r#"
query web-5.nginx.default.svc.cluster.local A
flags aa rd
answer web-5.nginx.default.svc.cluster.local. 5 IN A *

query web-6.nginx.default.svc.cluster.local A
flags aa rd
answer web-6.nginx.default.svc.cluster.local. 5 IN A *

query web-0.nginx.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_1_1_explicit_pod_wins() {
    let yaml = format!(
        "{NGINX_STS}{}",
        r#"
---
# Only the status: labels, hostname and subdomain come from the workload.
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {podIP: 10.244.77.7}
"#
    );
    let snap = Setup::yaml(&yaml).snapshot();
    expect(
        &snap,
        r#"
query web-1.nginx.default.svc.cluster.local A
flags aa rd
answer web-1.nginx.default.svc.cluster.local. 5 IN A 10.244.77.7

query 7.77.244.10.in-addr.arpa PTR
flags aa rd
answer 7.77.244.10.in-addr.arpa. 5 IN PTR web-1.nginx.default.svc.cluster.local.
"#,
    );
    let r = ask(&snap, "nginx.default.svc.cluster.local", rtype::A);
    assert_eq!(r.answer.len(), 2, "{r}");
    assert!(addresses(&r).contains(&"10.244.77.7".to_owned()), "{r}");
}

#[test]
fn spec_1_1_readiness_rules() {
    let pods = r#"
apiVersion: v1
kind: Service
metadata: {name: rr}
spec:
  clusterIP: None
  selector: {app: rr}
---
apiVersion: v1
kind: Pod
metadata: {name: ok, labels: {app: rr}}
status: {podIP: 10.244.20.1, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: no-status, labels: {app: rr}}
status: {podIP: 10.244.20.2}
---
apiVersion: v1
kind: Pod
metadata: {name: cond-false, labels: {app: rr}}
status: {podIP: 10.244.20.3, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cond-unknown, labels: {app: rr}}
status: {podIP: 10.244.20.4, conditions: [{type: Ready, status: Unknown}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pending, labels: {app: rr}}
status: {podIP: 10.244.20.5, phase: Pending}
---
apiVersion: v1
kind: Pod
metadata: {name: succeeded, labels: {app: rr}}
status: {podIP: 10.244.20.6, phase: Succeeded, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: terminating, labels: {app: rr}, deletionTimestamp: "2026-01-01T00:00:00Z"}
status: {podIP: 10.244.20.7, conditions: [{type: Ready, status: "True"}]}
---
# Pending without an IP: no IP is allocated, no endpoint at all.
apiVersion: v1
kind: Pod
metadata: {name: unscheduled, labels: {app: rr}}
status: {phase: Pending}
"#;
    let snap = Setup::yaml(pods).snapshot();
    expect(
        &snap,
        r#"
query rr.default.svc.cluster.local A
flags aa rd
answer rr.default.svc.cluster.local. 5 IN A 10.244.20.1
answer rr.default.svc.cluster.local. 5 IN A 10.244.20.2
"#,
    );
    // publishNotReadyAddresses: every pod with an IP is an endpoint.
    let snap = Setup::yaml(&pods.replace(
        "selector: {app: rr}",
        "selector: {app: rr}\n  publishNotReadyAddresses: true",
    ))
    .snapshot();
    let r = ask(&snap, "rr.default.svc.cluster.local", rtype::A);
    assert_eq!(
        addresses(&r),
        (1..=7)
            .map(|i| format!("10.244.20.{i}"))
            .collect::<Vec<_>>(),
        "{r}"
    );
}

#[test]
fn spec_1_1_publish_not_ready() {
    let yaml = format!(
        "{NGINX_STS}{}",
        r#"
---
apiVersion: v1
kind: Pod
metadata: {name: web-0}
status:
  podIP: 10.244.30.1
  conditions: [{type: Ready, status: "False"}]
"#
    )
    .replace(
        "  clusterIP: None\n",
        "  clusterIP: None\n  publishNotReadyAddresses: true\n",
    );
    let snap = Setup::yaml(&yaml).snapshot();
    // Peers find each other before they are Ready (StatefulSet bootstrap);
    // OrderedReady still holds web-1 back.
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A 10.244.30.1

query nginx.default.svc.cluster.local A
flags aa rd
answer nginx.default.svc.cluster.local. 5 IN A 10.244.30.1

query web-1.nginx.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_1_1_named_target_port() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  clusterIP: None
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: v1
kind: Service
metadata: {name: app-vip}
spec:
  clusterIP: 10.96.40.1
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: app}}
spec:
  containers: [{name: c, image: c, ports: [{name: web, containerPort: 8080}]}]
status: {podIP: 10.244.40.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: app}}
spec:
  containers: [{name: c, image: c, ports: [{name: metrics, containerPort: 9000}, {name: web, containerPort: 9090}]}]
status: {podIP: 10.244.40.2}
---
# No port named "web": not an endpoint for that port.
apiVersion: v1
kind: Pod
metadata: {name: c, labels: {app: app}}
spec:
  containers: [{name: c, image: c, ports: [{name: metrics, containerPort: 9000}]}]
status: {podIP: 10.244.40.3}
---
# "web" over UDP is another port.
apiVersion: v1
kind: Pod
metadata: {name: d, labels: {app: app}}
spec:
  containers: [{name: c, image: c, ports: [{name: web, containerPort: 7070, protocol: UDP}]}]
status: {podIP: 10.244.40.4}
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query _http._tcp.app.default.svc.cluster.local SRV
flags aa rd
answer _http._tcp.app.default.svc.cluster.local. 5 IN SRV 0 50 8080 10-244-40-1.app.default.svc.cluster.local.
answer _http._tcp.app.default.svc.cluster.local. 5 IN SRV 0 50 9090 10-244-40-2.app.default.svc.cluster.local.
additional 10-244-40-1.app.default.svc.cluster.local. 5 IN A 10.244.40.1
additional 10-244-40-2.app.default.svc.cluster.local. 5 IN A 10.244.40.2

query app.default.svc.cluster.local A
flags aa rd
answer app.default.svc.cluster.local. 5 IN A 10.244.40.1
answer app.default.svc.cluster.local. 5 IN A 10.244.40.2

# Behind a ClusterIP, SRV carries the Service port.
query _http._tcp.app-vip.default.svc.cluster.local SRV
flags aa rd
answer _http._tcp.app-vip.default.svc.cluster.local. 5 IN SRV 0 100 80 app-vip.default.svc.cluster.local.
additional app-vip.default.svc.cluster.local. 5 IN A 10.96.40.1
"#,
    );
}

#[test]
fn spec_1_1_selectorless_endpoints_and_slices() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: ext-a}
spec:
  clusterIP: None
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext-a}
subsets:
  - addresses: [{ip: 192.0.2.1, hostname: one}, {ip: 192.0.2.2}]
    notReadyAddresses: [{ip: 192.0.2.3}]
    ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext-b}
spec:
  clusterIP: None
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ext-b-x1
  labels: {kubernetes.io/service-name: ext-b}
addressType: IPv4
ports: [{name: grpc, port: 9000}]
endpoints:
  - addresses: [192.0.2.10]
    hostname: h
    conditions: {ready: true}
  - addresses: [192.0.2.11]
    conditions: {ready: false}
  - addresses: [192.0.2.12]
---
apiVersion: v1
kind: Service
metadata: {name: ext-c}
spec:
  clusterIP: 10.96.8.8
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext-c}
subsets:
  - addresses: [{ip: 192.0.2.20}]
    ports: [{name: http, port: 8080}]
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query ext-a.default.svc.cluster.local A
flags aa rd
answer ext-a.default.svc.cluster.local. 5 IN A 192.0.2.1
answer ext-a.default.svc.cluster.local. 5 IN A 192.0.2.2

query one.ext-a.default.svc.cluster.local A
flags aa rd
answer one.ext-a.default.svc.cluster.local. 5 IN A 192.0.2.1

query _http._tcp.ext-a.default.svc.cluster.local SRV
flags aa rd
answer _http._tcp.ext-a.default.svc.cluster.local. 5 IN SRV 0 50 8080 one.ext-a.default.svc.cluster.local.
answer _http._tcp.ext-a.default.svc.cluster.local. 5 IN SRV 0 50 8080 192-0-2-2.ext-a.default.svc.cluster.local.
additional one.ext-a.default.svc.cluster.local. 5 IN A 192.0.2.1
additional 192-0-2-2.ext-a.default.svc.cluster.local. 5 IN A 192.0.2.2

query 192-0-2-3.ext-a.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

# EndpointSlice conditions: ready defaults to true.
query ext-b.default.svc.cluster.local A
flags aa rd
answer ext-b.default.svc.cluster.local. 5 IN A 192.0.2.10
answer ext-b.default.svc.cluster.local. 5 IN A 192.0.2.12

# A headless service without ports takes SRV names from its slices (§2.1).
query _grpc._tcp.ext-b.default.svc.cluster.local SRV
flags aa rd
answer _grpc._tcp.ext-b.default.svc.cluster.local. 5 IN SRV 0 50 9000 h.ext-b.default.svc.cluster.local.
answer _grpc._tcp.ext-b.default.svc.cluster.local. 5 IN SRV 0 50 9000 192-0-2-12.ext-b.default.svc.cluster.local.
additional h.ext-b.default.svc.cluster.local. 5 IN A 192.0.2.10
additional 192-0-2-12.ext-b.default.svc.cluster.local. 5 IN A 192.0.2.12

# Behind a ClusterIP, the endpoints do not show.
query ext-c.default.svc.cluster.local A
flags aa rd
answer ext-c.default.svc.cluster.local. 5 IN A 10.96.8.8

query 192-0-2-20.ext-c.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_1_1_kubernetes_default() {
    let snap = Setup::yaml(NGINX_STS).snapshot();
    expect(
        &snap,
        r#"
query kubernetes.default.svc.cluster.local A
flags aa rd
answer kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1

query _https._tcp.kubernetes.default.svc.cluster.local SRV
flags aa rd
answer _https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local.
additional kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1

query 1.0.96.10.in-addr.arpa PTR
flags aa rd
answer 1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local.
"#,
    );
    let snap = Setup::yaml(NGINX_STS)
        .option("service-cidr", "10.100.0.0/16")
        .snapshot();
    expect(
        &snap,
        r#"
query kubernetes.default.svc.cluster.local A
flags aa rd
answer kubernetes.default.svc.cluster.local. 5 IN A 10.100.0.1
"#,
    );
    // A kubernetes Service in the manifests replaces the built-in one.
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: kubernetes}
spec:
  clusterIP: 10.96.0.99
  ports: [{name: https, port: 6443}]
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query kubernetes.default.svc.cluster.local A
flags aa rd
answer kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.99
"#,
    );
}

#[test]
fn spec_1_1_ips_stable() {
    let yaml = format!(
        "{NGINX_STS}---\n{}",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: team}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: api}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: team}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80}]
"#
    );
    // Same input, separate loads: the same zone, record for record.
    let mut a = Setup::yaml(&yaml).snapshot();
    let b = Setup::yaml(&yaml).snapshot();
    a.generation = b.generation;
    assert_eq!(render_zones(&a), render_zones(&b));
    // An unrelated addition moves nobody.
    let web0 = ask(&a, "web-0.nginx.default.svc.cluster.local", rtype::A).answer_data("A");
    let api = ask(&a, "api.team.svc.cluster.local", rtype::A).answer_data("A");
    let more = format!(
        "{yaml}---\n{}",
        r#"
apiVersion: v1
kind: Service
metadata: {name: another}
spec:
  selector: {app: another}
"#
    );
    let c = Setup::yaml(&more).snapshot();
    assert_eq!(
        ask(&c, "web-0.nginx.default.svc.cluster.local", rtype::A).answer_data("A"),
        web0
    );
    assert_eq!(
        ask(&c, "api.team.svc.cluster.local", rtype::A).answer_data("A"),
        api
    );
    assert_eq!(web0.len(), 1);
}

// ---------------------------------------------------------- SPEC §2.1

#[test]
fn spec_2_1_dual_stack() {
    let yaml = format!(
        "{NGINX_STS}---\n{}",
        r#"
apiVersion: v1
kind: Service
metadata: {name: web-vip}
spec:
  clusterIPs: [10.96.3.3, "fd00:10:96::3"]
  ports: [{name: http, port: 80}]
"#
    );
    let snap = Setup::yaml(&yaml)
        .option("pod-cidr", "10.244.0.0/16 fd00:10:244::/64")
        .snapshot();
    expect(
        &snap,
        r#"
query web-vip.default.svc.cluster.local A
flags aa rd
answer web-vip.default.svc.cluster.local. 5 IN A 10.96.3.3

query web-vip.default.svc.cluster.local AAAA
flags aa rd
answer web-vip.default.svc.cluster.local. 5 IN AAAA fd00:10:96::3

query _http._tcp.web-vip.default.svc.cluster.local SRV
flags aa rd
answer _http._tcp.web-vip.default.svc.cluster.local. 5 IN SRV 0 100 80 web-vip.default.svc.cluster.local.
additional web-vip.default.svc.cluster.local. 5 IN A 10.96.3.3
additional web-vip.default.svc.cluster.local. 5 IN AAAA fd00:10:96::3

query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN A *

query web-0.nginx.default.svc.cluster.local AAAA
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 5 IN AAAA *
"#,
    );
    // Each pod got one address of each family; the service has both.
    let v4 = ask(&snap, "nginx.default.svc.cluster.local", rtype::A).answer_data("A");
    let v6 = ask(&snap, "nginx.default.svc.cluster.local", rtype::AAAA).answer_data("AAAA");
    assert_eq!((v4.len(), v6.len()), (2, 2));
    let web0_v6 =
        ask(&snap, "web-0.nginx.default.svc.cluster.local", rtype::AAAA).answer_data("AAAA");
    let ip: std::net::Ipv6Addr = web0_v6[0].parse().unwrap();
    assert_eq!(ip.segments()[..4], [0xfd00, 0x10, 0x244, 0]);
    // Its PTR (ip6.arpa) and its pod record.
    let reverse = svcnet_wire::reverse_name(ip.into());
    expect(
        &snap,
        &format!(
            "query {reverse} PTR\nflags aa rd\nanswer {reverse} 5 IN PTR web-0.nginx.default.svc.cluster.local.\n\
             query {dashed}.default.pod.cluster.local AAAA\nflags aa rd\nanswer {dashed}.default.pod.cluster.local. 5 IN AAAA {ip}\n",
            dashed = svcnet_wire::dashed_ip(ip.into()),
        ),
    );
    // An unknown address in the IPv6 pod range: NXDOMAIN from its reverse zone.
    let unknown = svcnet_wire::reverse_name("fd00:10:244::dead".parse().unwrap());
    let apex = "0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    expect(
        &snap,
        &format!(
            "query {unknown} PTR\nrcode NXDOMAIN\nflags aa rd\n\
             authority {apex} 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5\n"
        ),
    );
    // Dashed names of IPv6 endpoints without hostname.
    let deploy = r#"
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  clusterIP: None
  selector: {app: api}
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, labels: {app: api}}
status: {podIPs: [{ip: 10.244.50.1}, {ip: "fd00:10:244::50:1"}]}
"#;
    let snap = Setup::yaml(deploy)
        .option("pod-cidr", "10.244.0.0/16 fd00:10:244::/64")
        .snapshot();
    expect(
        &snap,
        r#"
query fd00-10-244--50-1.api.default.svc.cluster.local AAAA
flags aa rd
answer fd00-10-244--50-1.api.default.svc.cluster.local. 5 IN AAAA fd00:10:244::50:1

query 10-244-50-1.api.default.svc.cluster.local A
flags aa rd
answer 10-244-50-1.api.default.svc.cluster.local. 5 IN A 10.244.50.1

query 10-244-50-1.api.default.svc.cluster.local AAAA
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_1_shared_cluster_ip() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: zeta, namespace: alpha}
spec:
  clusterIP: 10.96.4.4
---
apiVersion: v1
kind: Service
metadata: {name: alpha, namespace: beta}
spec:
  clusterIP: 10.96.4.4
"#;
    let snap = Setup::yaml(yaml).snapshot();
    expect(
        &snap,
        r#"
query zeta.alpha.svc.cluster.local A
flags aa rd
answer zeta.alpha.svc.cluster.local. 5 IN A 10.96.4.4

query alpha.beta.svc.cluster.local A
flags aa rd
answer alpha.beta.svc.cluster.local. 5 IN A 10.96.4.4

# The older one (namespace/name order) owns the PTR.
query 4.4.96.10.in-addr.arpa PTR
flags aa rd
answer 4.4.96.10.in-addr.arpa. 5 IN PTR zeta.alpha.svc.cluster.local.
"#,
    );
    expect(
        &Setup::yaml(yaml).option("ptr", "all").snapshot(),
        r#"
query 4.4.96.10.in-addr.arpa PTR
flags aa rd
answer 4.4.96.10.in-addr.arpa. 5 IN PTR zeta.alpha.svc.cluster.local.
answer 4.4.96.10.in-addr.arpa. 5 IN PTR alpha.beta.svc.cluster.local.
"#,
    );
}

#[test]
fn spec_2_1_reverse_zone_nxdomain() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  clusterIP: 172.16.0.10
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
# Unknown addresses of the service and pod CIDRs: NXDOMAIN, authoritative,
# with the SOA of their reverse zone.
query 200.0.97.10.in-addr.arpa PTR
rcode NXDOMAIN
flags aa rd
authority 97.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5

query 2.0.96.10.in-addr.arpa PTR
rcode NXDOMAIN
flags aa rd
authority 96.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5

query 9.9.244.10.in-addr.arpa PTR
rcode NXDOMAIN
flags aa rd
authority 244.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5

# 0.96.10.in-addr.arpa exists (above 1.0.96.10, kubernetes.default): NODATA.
query 0.96.10.in-addr.arpa PTR
flags aa rd
authority 96.10.in-addr.arpa. 5 IN SOA *

query 5.96.10.in-addr.arpa PTR
rcode NXDOMAIN
flags aa rd
authority 96.10.in-addr.arpa. 5 IN SOA *

# A ClusterIP outside the CIDRs: its own reverse name is served.
query 10.0.16.172.in-addr.arpa PTR
flags aa rd
answer 10.0.16.172.in-addr.arpa. 5 IN PTR outside.default.svc.cluster.local.

# Anything else is not ours: REFUSED without an upstream.
query 11.0.16.172.in-addr.arpa PTR
rcode REFUSED
flags rd

query 8.8.8.8.in-addr.arpa PTR
rcode REFUSED
flags rd

query 1.0.0.10.in-addr.arpa PTR
rcode REFUSED
flags rd

query 10.in-addr.arpa PTR
rcode REFUSED
flags rd

query 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa PTR
rcode REFUSED
flags rd
"#,
    );
}

#[test]
fn spec_2_1_no_hostnames_under_clusterip() {
    let snap = Setup::yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: 10.96.60.1
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status: {podIP: 10.244.60.1}
"#,
    )
    .snapshot();
    expect(
        &snap,
        r#"
query db.default.svc.cluster.local A
flags aa rd
answer db.default.svc.cluster.local. 5 IN A 10.96.60.1

query db-0.db.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query 10-244-60-1.db.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *

query _pg._tcp.db.default.svc.cluster.local SRV
flags aa rd
answer _pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 100 5432 db.default.svc.cluster.local.
additional db.default.svc.cluster.local. 5 IN A 10.96.60.1

# Its endpoints have no PTR either: only the ClusterIP does.
query 1.60.244.10.in-addr.arpa PTR
rcode NXDOMAIN
flags aa rd
authority 244.10.in-addr.arpa. 5 IN SOA *

query 1.60.96.10.in-addr.arpa PTR
flags aa rd
answer 1.60.96.10.in-addr.arpa. 5 IN PTR db.default.svc.cluster.local.
"#,
    );
    // ClusterSetIP: no per-endpoint names either.
    let west = r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: 10.100.60.1
  selector: {app: db}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status: {podIP: 10.245.60.1}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: db}
"#;
    let snap = Setup::yaml(NGINX_STS).cluster_yaml("west", west).snapshot();
    expect(
        &snap,
        r#"
query west.db.default.svc.clusterset.local A
flags aa rd
answer west.db.default.svc.clusterset.local. 5 IN A 10.100.60.1

query db-0.west.db.default.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_2_1_ipv6_single_stack() {
    let snap = Setup::yaml(NGINX_STS)
        .option("service-cidr", "fd00:10:96::/112")
        .option("pod-cidr", "fd00:10:244::/64")
        .snapshot();
    let kube_v6 = svcnet_wire::reverse_name("fd00:10:96::1".parse().unwrap());
    let kube_zone = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    expect(
        &snap,
        &format!(
            r#"
query kubernetes.default.svc.cluster.local AAAA
flags aa rd
answer kubernetes.default.svc.cluster.local. 5 IN AAAA fd00:10:96::1

query kubernetes.default.svc.cluster.local A
flags aa rd
authority cluster.local. 5 IN SOA *

query {kube_v6} PTR
flags aa rd
answer {kube_v6} 5 IN PTR kubernetes.default.svc.cluster.local.

query {unknown} PTR
rcode NXDOMAIN
flags aa rd
authority {kube_zone} 5 IN SOA *

query web-0.nginx.default.svc.cluster.local A
flags aa rd
authority cluster.local. 5 IN SOA *

query web-1.nginx.default.svc.cluster.local AAAA
flags aa rd
answer web-1.nginx.default.svc.cluster.local. 5 IN AAAA *
"#,
            unknown = svcnet_wire::reverse_name("fd00:10:96::abcd".parse().unwrap()),
        ),
    );
}

#[test]
fn spec_2_zones_and_ttl_configurable() {
    let snap = Setup::yaml(NGINX_STS)
        .option("zone", "example.internal cluster.local")
        .option("ttl", "30")
        .snapshot();
    expect(
        &snap,
        r#"
query web-0.nginx.default.svc.example.internal A
flags aa rd
answer web-0.nginx.default.svc.example.internal. 30 IN A *

query web-0.nginx.default.svc.cluster.local A
flags aa rd
answer web-0.nginx.default.svc.cluster.local. 30 IN A *

query example.internal SOA
flags aa rd
answer example.internal. 30 IN SOA ns.dns.example.internal. hostmaster.example.internal. * 7200 1800 86400 30

query dns-version.example.internal TXT
flags aa rd
answer dns-version.example.internal. 28800 IN TXT "1.1.0"

# PTR targets are in the first zone.
query 1.0.96.10.in-addr.arpa PTR
flags aa rd
answer 1.0.96.10.in-addr.arpa. 30 IN PTR kubernetes.default.svc.example.internal.

query 1.0.96.10.in-addr.arpa A
flags aa rd
authority 96.10.in-addr.arpa. 30 IN SOA ns.dns.example.internal. hostmaster.example.internal. * 7200 1800 86400 30
"#,
    );
    // --zone replaces the default.
    let snap = Setup::yaml(NGINX_STS)
        .option("zone", "Example.Internal.")
        .snapshot();
    expect(
        &snap,
        r#"
query kubernetes.default.svc.cluster.local A
rcode REFUSED
flags rd

query kubernetes.default.svc.example.internal A
flags aa rd
answer kubernetes.default.svc.example.internal. 5 IN A 10.96.0.1
"#,
    );
}

// ---------------------------------------------------------- SPEC §3

const WEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  clusterIP: 10.100.0.50
  ports: [{name: http, port: 80}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: backend}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: data, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status: {podIP: 10.245.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: data, labels: {app: db}}
spec: {hostname: db-1, subdomain: db}
status: {podIP: 10.245.0.2, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata: {name: db, namespace: data}
---
apiVersion: v1
kind: Service
metadata: {name: shared}
spec:
  clusterIP: 10.100.0.60
  ports: [{name: http, port: 8080}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: shared}
"#;

const LOCAL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: data, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status: {podIP: 10.244.0.1}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: db, namespace: data}
---
apiVersion: v1
kind: Service
metadata: {name: shared}
spec:
  clusterIP: 10.96.0.60
  ports: [{name: http, port: 8080}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: shared}
---
apiVersion: v1
kind: Service
metadata: {name: private}
spec:
  clusterIP: 10.96.0.70
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: shared}
spec:
  type: ClusterSetIP
  ips: [10.112.9.9]
  ports: [{name: http, port: 8080}]
"#;

fn clusterset() -> Setup {
    Setup::yaml(LOCAL).cluster_yaml("west", WEST)
}

#[test]
fn spec_3_clustersetip() {
    let snap = clusterset().snapshot();
    // Exported from west only: a ClusterSetIP from 10.112.0.0/12.
    let r = ask(&snap, "backend.default.svc.clusterset.local", rtype::A);
    let ips = r.answer_data("A");
    assert_eq!(ips.len(), 1, "{r}");
    let ip: std::net::Ipv4Addr = ips[0].parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (112..128).contains(&ip.octets()[1]),
        "{ip}"
    );
    assert!(r.flags.aa);
    // Exported from both, with a ServiceImport giving the IP: one service.
    expect(
        &snap,
        r#"
query shared.default.svc.clusterset.local A
flags aa rd
answer shared.default.svc.clusterset.local. 5 IN A 10.112.9.9

query shared.default.svc.clusterset.local AAAA
flags aa rd
authority clusterset.local. 5 IN SOA *
"#,
    );
    // Stable: the same input allocates the same ClusterSetIP.
    let again = clusterset().snapshot();
    assert_eq!(
        ask(&again, "backend.default.svc.clusterset.local", rtype::A).answer_data("A"),
        ips
    );
}

#[test]
fn spec_3_headless_across_clusters() {
    let snap = clusterset().snapshot();
    expect(
        &snap,
        r#"
# Ready endpoints of every exporting cluster (west's db-1 is not Ready).
query db.data.svc.clusterset.local A
flags aa rd
answer db.data.svc.clusterset.local. 5 IN A 10.244.0.1
answer db.data.svc.clusterset.local. 5 IN A 10.245.0.1

# cluster.local answers only the local cluster.
query db.data.svc.cluster.local A
flags aa rd
answer db.data.svc.cluster.local. 5 IN A 10.244.0.1
"#,
    );
    // No ready endpoint anywhere: NXDOMAIN.
    let local = LOCAL.replace(
        "status: {podIP: 10.244.0.1}",
        "status: {podIP: 10.244.0.1, phase: Failed}",
    );
    let west = WEST.replace(
        "status: {podIP: 10.245.0.1}",
        "status: {podIP: 10.245.0.1, phase: Failed}",
    );
    let snap = Setup::yaml(&local).cluster_yaml("west", &west).snapshot();
    expect(
        &snap,
        r#"
query db.data.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_3_cluster_id_names() {
    let snap = clusterset().snapshot();
    expect(
        &snap,
        r#"
query west.backend.default.svc.clusterset.local A
flags aa rd
answer west.backend.default.svc.clusterset.local. 5 IN A 10.100.0.50

query local.shared.default.svc.clusterset.local A
flags aa rd
answer local.shared.default.svc.clusterset.local. 5 IN A 10.96.0.60

query west.shared.default.svc.clusterset.local A
flags aa rd
answer west.shared.default.svc.clusterset.local. 5 IN A 10.100.0.60

# backend is not exported from local.
query local.backend.default.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *

query west.db.data.svc.clusterset.local A
flags aa rd
answer west.db.data.svc.clusterset.local. 5 IN A 10.245.0.1

query db-0.west.db.data.svc.clusterset.local A
flags aa rd
answer db-0.west.db.data.svc.clusterset.local. 5 IN A 10.245.0.1

query db-0.local.db.data.svc.clusterset.local A
flags aa rd
answer db-0.local.db.data.svc.clusterset.local. 5 IN A 10.244.0.1

query db-1.west.db.data.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *

query east.db.data.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *
"#,
    );
    let snap = clusterset().option("no-cluster-names", "").snapshot();
    expect(
        &snap,
        r#"
query west.backend.default.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *

query backend.default.svc.clusterset.local A
flags aa rd
answer backend.default.svc.clusterset.local. 5 IN A *

# The MCS hostname form stays.
query db-0.west.db.data.svc.clusterset.local A
flags aa rd
answer db-0.west.db.data.svc.clusterset.local. 5 IN A 10.245.0.1
"#,
    );
}

#[test]
fn spec_3_not_exported_nxdomain() {
    let snap = clusterset().snapshot();
    expect(
        &snap,
        r#"
query private.default.svc.clusterset.local A
rcode NXDOMAIN
flags aa rd
authority clusterset.local. 5 IN SOA *

query private.default.svc.cluster.local A
flags aa rd
answer private.default.svc.cluster.local. 5 IN A 10.96.0.70

# Exported by west only: not in the local cluster.local.
query backend.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

#[test]
fn spec_3_dns_version() {
    let snap = clusterset().snapshot();
    expect(
        &snap,
        r#"
query dns-version.clusterset.local TXT
flags aa rd
answer dns-version.clusterset.local. 28800 IN TXT "1.0.0"

query dns-version.cluster.local TXT
flags aa rd
answer dns-version.cluster.local. 28800 IN TXT "1.1.0"
"#,
    );
}

#[test]
fn spec_3_srv() {
    let snap = clusterset().snapshot();
    expect(
        &snap,
        r#"
query _http._tcp.shared.default.svc.clusterset.local SRV
flags aa rd
answer _http._tcp.shared.default.svc.clusterset.local. 5 IN SRV 0 100 8080 shared.default.svc.clusterset.local.
additional shared.default.svc.clusterset.local. 5 IN A 10.112.9.9

query _pg._tcp.db.data.svc.clusterset.local SRV
flags aa rd
answer _pg._tcp.db.data.svc.clusterset.local. 5 IN SRV 0 50 5432 db-0.local.db.data.svc.clusterset.local.
answer _pg._tcp.db.data.svc.clusterset.local. 5 IN SRV 0 50 5432 db-0.west.db.data.svc.clusterset.local.
additional db-0.local.db.data.svc.clusterset.local. 5 IN A 10.244.0.1
additional db-0.west.db.data.svc.clusterset.local. 5 IN A 10.245.0.1
"#,
    );
}

#[test]
fn spec_3_cluster_local_answers_for_cluster_id() {
    // With several clusters, cluster.local answers for the one named by
    // --cluster-id (here the -f cluster is "west").
    let snap = Setup::new()
        .cluster_yaml("west", WEST)
        .cluster_yaml("local", LOCAL)
        .snapshot();
    expect(
        &snap,
        r#"
query backend.default.svc.cluster.local A
flags aa rd
answer backend.default.svc.cluster.local. 5 IN A 10.100.0.50

query private.default.svc.cluster.local A
rcode NXDOMAIN
flags aa rd
authority cluster.local. 5 IN SOA *
"#,
    );
}

// ---------------------------------------------------------- SPEC §4

/// `svcnet zone` prints the records `serve` answers: every RRset of the
/// rendered zones is exactly what a query for it returns.
#[test]
fn spec_4_zone_is_what_serve_answers() {
    let snap = Setup::dir("examples/local")
        .cluster_dir("west", "examples/west")
        .option("pod-cidr", "10.244.0.0/16 fd00:10:244::/64")
        .snapshot();
    let mut rrsets: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in render_zones(&snap).lines() {
        if line.is_empty() || line.starts_with('$') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let [owner, ttl, class, rtype, rdata] = fields[..] else {
            panic!("zone line {line:?}");
        };
        rrsets
            .entry((owner.to_owned(), rtype.to_owned()))
            .or_default()
            .push(format!("{owner} {ttl} {class} {rtype} {rdata}"));
    }
    assert!(rrsets.len() > 50, "{}", rrsets.len());
    for ((owner, t), mut want) in rrsets {
        let qtype = svcnet_wire::parse_type(&t).unwrap();
        let r = ask(&snap, &owner, qtype);
        let mut got: Vec<String> = r
            .answer
            .iter()
            .filter(|rr| rr.rtype == t)
            .map(ToString::to_string)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{owner} {t}\n{r}");
        assert!(r.flags.aa, "{r}");
    }
}

// ---------------------------------------------------------- vectors

/// Every vector of `tests/vectors`, over both transports, through the engine.
#[test]
fn spec_vectors() {
    let vectors = load_vectors(&vectors_dir());
    assert!(!vectors.is_empty());
    let mut failures = Vec::new();
    for v in &vectors {
        let snap = v.setup.snapshot();
        let mut rotation = 0;
        let result = run_vector(v, |t, packet| {
            rotation += 1;
            exchange(&snap, packet, t, rotation)
        });
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
