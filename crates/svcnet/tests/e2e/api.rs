//! Kubernetes API mode end to end: the real binary, the real kube-rs client,
//! and an HTTP fake of the API server started by the test.

use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::json;
use svcnet_fakeapi::FakeApi;
use tempfile::TempDir;

use crate::harness::{Answer, Server, query, wait_until};

pub(crate) fn service(ns: &str, name: &str, ip: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": ns, "name": name},
           "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
}

pub(crate) fn headless(ns: &str, name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": ns, "name": name},
           "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}})
}

pub(crate) fn slice(
    ns: &str,
    svc: &str,
    endpoints: &[(&str, Option<&str>, bool)],
) -> serde_json::Value {
    let eps: Vec<_> = endpoints
        .iter()
        .map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": ready}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"namespace": ns, "name": format!("{svc}-abcde"), "labels": {"kubernetes.io/service-name": svc}},
           "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}], "endpoints": eps})
}

pub(crate) fn namespace(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub(crate) fn lookup(s: &Server, name: &str, rtype: RecordType) -> (String, Vec<String>) {
    let a = Answer::from_message("hickory-udp", &s.udp(&query(name, rtype)));
    let data = a.rdata(&rtype.to_string());
    (a.status, data)
}

pub(crate) fn answers(s: &Server, name: &str, want: (&str, &[&str])) -> bool {
    let (status, mut got) = lookup(s, name, RecordType::A);
    got.sort();
    let mut w: Vec<String> = want.1.iter().map(|x| (*x).to_owned()).collect();
    w.sort();
    status == want.0 && got == w
}

pub(crate) fn await_answers(s: &Server, name: &str, want: (&str, &[&str])) {
    let took = wait_until(Duration::from_secs(10), || answers(s, name, want));
    assert!(
        took.is_some(),
        "{name}: want {want:?}, got {:?}\n{}",
        lookup(s, name, RecordType::A),
        s.log_text()
    );
}

/// [`await_answers`] for each name in turn.
pub(crate) fn await_all(s: &Server, expected: &[(&str, (&str, &[&str]))]) {
    for &(name, want) in expected {
        await_answers(s, name, want);
    }
}

#[test]
fn api_mode_serves_services_and_endpoints_and_follows_changes() {
    let api = FakeApi::start();
    api.apply(namespace("default"));
    api.apply(namespace("shop"));
    api.apply(service("shop", "cart", "10.96.5.5"));
    api.apply(headless("default", "nginx"));
    api.apply(slice(
        "default",
        "nginx",
        &[
            ("10.244.0.10", Some("web-0"), true),
            ("10.244.0.11", Some("web-1"), false),
        ],
    ));
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());
    let s = Server::start(&[
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--pods",
        "disabled",
        "--no-admin",
    ]);
    await_all(
        &s,
        &[
            ("cart.shop.svc.cluster.local", ("NOERROR", &["10.96.5.5"])),
            (
                "nginx.default.svc.cluster.local",
                ("NOERROR", &["10.244.0.10"]),
            ),
            (
                "web-0.nginx.default.svc.cluster.local",
                ("NOERROR", &["10.244.0.10"]),
            ),
            ("web-1.nginx.default.svc.cluster.local", ("NXDOMAIN", &[])),
        ],
    );
    let (status, srv) = lookup(
        &s,
        "_web._tcp.nginx.default.svc.cluster.local",
        RecordType::SRV,
    );
    assert_eq!(status, "NOERROR");
    assert!(
        srv.iter()
            .any(|r| r.contains("8080") && r.contains("web-0.nginx")),
        "{srv:?}"
    );

    // Live changes: an endpoint becomes ready, a service goes, one comes.
    api.apply(slice(
        "default",
        "nginx",
        &[
            ("10.244.0.10", Some("web-0"), true),
            ("10.244.0.11", Some("web-1"), true),
        ],
    ));
    await_answers(
        &s,
        "web-1.nginx.default.svc.cluster.local",
        ("NOERROR", &["10.244.0.11"]),
    );
    api.delete("Service", "shop", "cart");
    await_answers(&s, "cart.shop.svc.cluster.local", ("NXDOMAIN", &[]));
    api.apply(service("shop", "checkout", "10.96.5.6"));
    await_answers(
        &s,
        "checkout.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.6"]),
    );

    // A relist (410 Gone) replaces state without a gap; changes made
    // meanwhile arrive.
    api.force_gone();
    api.apply(service("shop", "cart", "10.96.5.7"));
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.7"]),
    );
    assert!(answers(
        &s,
        "checkout.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.6"])
    ));

    // Outage: the last known state keeps answering; recovery resumes.
    api.set_outage(true);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        answers(
            &s,
            "checkout.shop.svc.cluster.local",
            ("NOERROR", &["10.96.5.6"])
        ),
        "{}",
        s.log_text()
    );
    api.set_outage(false);
    api.apply(service("shop", "after", "10.96.5.8"));
    await_answers(
        &s,
        "after.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.8"]),
    );
}

#[test]
fn cluster_local_answers_for_the_first_kubeconfig_whichever_syncs_first() {
    // SPEC §3: without a --cluster-id naming one of them, cluster.local
    // answers for the first cluster given. The first one here is the slower.
    let (east, west) = (FakeApi::start(), FakeApi::start());
    for (api, ip) in [(&east, "10.96.1.1"), (&west, "10.96.2.2")] {
        api.apply(namespace("shop"));
        api.apply(service("shop", "cart", ip));
        api.apply(
            json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                         "metadata": {"namespace": "shop", "name": "cart"}}),
        );
    }
    east.set_response_delay(Duration::from_millis(500));
    let dir = TempDir::new().expect("temp dir");
    let mut args = Vec::new();
    for (id, api) in [("east", &east), ("west", &west)] {
        let sub = dir.path().join(id);
        std::fs::create_dir_all(&sub).expect("kubeconfig dir");
        args.push(format!("{id}={}", api.write_kubeconfig(&sub).display()));
    }
    let s = Server::start(&[
        "--kubeconfig",
        &args[0],
        "--kubeconfig",
        &args[1],
        "--pods",
        "disabled",
        "--no-admin",
    ]);
    await_all(
        &s,
        &[
            (
                "east.cart.shop.svc.clusterset.local",
                ("NOERROR", &["10.96.1.1"]),
            ),
            (
                "west.cart.shop.svc.clusterset.local",
                ("NOERROR", &["10.96.2.2"]),
            ),
        ],
    );
    assert!(
        answers(
            &s,
            "cart.shop.svc.cluster.local",
            ("NOERROR", &["10.96.1.1"])
        ),
        "{:?}",
        lookup(&s, "cart.shop.svc.cluster.local", RecordType::A)
    );
}

/// KEP-1645 in API mode: a multi-cluster controller wrote ServiceImports and
/// EndpointSlices labelled `multicluster.kubernetes.io/service-name`; svcnet
/// answers `clusterset.local` from them (what Submariner Lighthouse serves).
#[test]
fn api_mode_serves_clusterset_from_service_imports_and_their_slices() {
    let api = FakeApi::start();
    api.apply(namespace("default"));
    api.apply(
        json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"namespace": "default", "name": "db"},
        "spec": {"type": "Headless", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
    );
    api.apply(json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "ClusterSetIP", "ips": ["10.112.0.9"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
    for (cluster, ip) in [("east", "10.1.0.5"), ("west", "10.2.0.5")] {
        api.apply(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": format!("db-{cluster}"),
                "labels": {"multicluster.kubernetes.io/service-name": "db",
                           "multicluster.kubernetes.io/source-cluster": cluster}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "hostname": "db-0", "conditions": {"ready": true}}]}),
        );
    }
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());
    let s = Server::start(&[
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--pods",
        "disabled",
        "--no-admin",
    ]);
    await_all(
        &s,
        &[
            (
                "db.default.svc.clusterset.local",
                ("NOERROR", &["10.1.0.5", "10.2.0.5"]),
            ),
            (
                "db-0.west.db.default.svc.clusterset.local",
                ("NOERROR", &["10.2.0.5"]),
            ),
            (
                "east.db.default.svc.clusterset.local",
                ("NOERROR", &["10.1.0.5"]),
            ),
            (
                "web.default.svc.clusterset.local",
                ("NOERROR", &["10.112.0.9"]),
            ),
        ],
    );
    let (status, srv) = lookup(
        &s,
        "_http._tcp.web.default.svc.clusterset.local",
        RecordType::SRV,
    );
    assert_eq!(status, "NOERROR");
    assert_eq!(srv, ["0 100 80 web.default.svc.clusterset.local."]);
    // The imported slices are not a local service's endpoints.
    await_answers(&s, "db.default.svc.cluster.local", ("NXDOMAIN", &[]));
}
